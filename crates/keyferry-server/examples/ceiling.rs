//! The benchmark's ceiling: the least any JSON-over-HTTP service must do on this machine.
//!
//! An axum server on the same runtime and HTTP stack as `keyferry serve` that reads the whole
//! request body and answers a small fixed JSON document, with no authentication, parsing or
//! cryptography. `bench/run.sh` measures it side by side with Keyferry and moto_server; its
//! requests/s is the upper bound the Keyferry targets are stated against.
//!
//! Usage: `cargo run --release -p keyferry-server --example ceiling -- 127.0.0.1:PORT`
//! (loopback only). Prints `ceiling: listening on http://ADDR` once it accepts connections.
//!
//! With `--tls-cert CERT.pem --tls-key KEY.pem` after the address it is the TLS ceiling
//! (`ceiling-tls` in `bench/run.sh`): the same answer behind the same rustls configuration as
//! `keyferry serve --tls-cert/--tls-key` (`keyferry_server::tls::TlsState`, aws-lc-rs), on a
//! hyper HTTP/1.1 keep-alive connection with TCP_NODELAY as Keyferry's listener sets them, and
//! prints `ceiling: listening on https://ADDR`.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use keyferry_server::tls::{TlsPaths, TlsState};

/// The fixed answer, about the size of a KMS Encrypt response header part.
const ANSWER: &str = r#"{"KeyId":"arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}"#;

async fn answer(body: Bytes) -> impl IntoResponse {
    // Touch the body so the read cannot be optimised away; its length goes nowhere visible.
    std::hint::black_box(body.len());
    ([(CONTENT_TYPE, "application/x-amz-json-1.1")], ANSWER)
}

/// Accept TLS connections and serve `app` on each, HTTP/1.1 with keep-alive.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: TlsState,
) -> std::io::Result<()> {
    use tower::ServiceExt;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(true);
    let http = std::sync::Arc::new(http);
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let (acceptor, app, http) = (acceptor.clone(), app.clone(), http.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = hyper::service::service_fn(
                move |req: axum::http::Request<hyper::body::Incoming>| {
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let _ = http
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:4600".to_owned());
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(std::path::PathBuf::from)
    };
    let tls = match (flag("--tls-cert"), flag("--tls-key")) {
        (Some(cert), Some(key)) => match TlsState::load(TlsPaths {
            cert,
            key,
            client_ca: None,
        }) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("ceiling: {e:#}");
                return ExitCode::from(2);
            }
        },
        (None, None) => None,
        _ => {
            eprintln!("ceiling: --tls-cert and --tls-key go together");
            return ExitCode::from(2);
        }
    };
    let addr: SocketAddr = match arg.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ceiling: bad address {arg:?}: {e}");
            return ExitCode::from(2);
        }
    };
    if !addr.ip().is_loopback() {
        eprintln!("ceiling: refusing to listen on a non-loopback address");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ceiling: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result: std::io::Result<()> = runtime.block_on(async move {
        let app = Router::new().fallback(answer);
        let listener = tokio::net::TcpListener::bind(addr).await?;
        match tls {
            Some(tls) => {
                println!("ceiling: listening on https://{}", listener.local_addr()?);
                serve_tls(listener, app, tls).await
            }
            None => {
                println!("ceiling: listening on http://{}", listener.local_addr()?);
                axum::serve(listener, app).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ceiling: {e}");
            ExitCode::from(1)
        }
    }
}
