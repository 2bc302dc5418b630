//! The benchmark's ceiling: the least any JSON-over-HTTP service must do on this machine.
//!
//! An axum server on the same runtime and HTTP stack as `keyferry serve` that reads the whole
//! request body and answers a small fixed JSON document, with no authentication, parsing or
//! cryptography. `bench/run.sh` measures it side by side with Keyferry and moto_server; its
//! requests/s is the upper bound the Keyferry targets are stated against.
//!
//! Usage: `cargo run --release -p keyferry-server --example ceiling -- 127.0.0.1:PORT`
//! (loopback only). Prints `ceiling: listening on http://ADDR` once it accepts connections.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

/// The fixed answer, about the size of a KMS Encrypt response header part.
const ANSWER: &str = r#"{"KeyId":"arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}"#;

async fn answer(body: Bytes) -> impl IntoResponse {
    // Touch the body so the read cannot be optimised away; its length goes nowhere visible.
    std::hint::black_box(body.len());
    ([(CONTENT_TYPE, "application/x-amz-json-1.1")], ANSWER)
}

fn main() -> ExitCode {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4600".to_owned());
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
        println!("ceiling: listening on http://{}", listener.local_addr()?);
        axum::serve(listener, app).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ceiling: {e}");
            ExitCode::from(1)
        }
    }
}
