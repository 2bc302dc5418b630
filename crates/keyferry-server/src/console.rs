//! The web console: static assets (HTML, CSS, plain JavaScript) embedded in the binary and
//! served at `/console/`. The console is a client of the public KMS API only: it signs its
//! requests with SigV4 in the browser (WebCrypto) and sends them to `POST /` like any SDK, so the
//! same authentication and the same checks apply. Nothing here touches key state.
//!
//! Every response carries a strict Content-Security-Policy (scripts, styles and connections to
//! this origin only; no inline script, no frames, no forms posting elsewhere), `nosniff` and
//! `no-referrer`. See `console/README.md`.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The Content-Security-Policy of every console response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// One embedded file: name under `/console/`, bytes, content type.
struct Asset {
    name: &'static str,
    body: &'static [u8],
    content_type: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        body: include_bytes!("../console/index.html"),
        content_type: HTML,
    },
    Asset {
        name: "app.css",
        body: include_bytes!("../console/app.css"),
        content_type: CSS,
    },
    Asset {
        name: "app.js",
        body: include_bytes!("../console/app.js"),
        content_type: JS,
    },
    Asset {
        name: "kms.js",
        body: include_bytes!("../console/kms.js"),
        content_type: JS,
    },
    Asset {
        name: "sigv4.js",
        body: include_bytes!("../console/sigv4.js"),
        content_type: JS,
    },
    Asset {
        name: "zip.js",
        body: include_bytes!("../console/zip.js"),
        content_type: JS,
    },
    Asset {
        name: "policy.js",
        body: include_bytes!("../console/policy.js"),
        content_type: JS,
    },
];

/// The console's routes (`/console`, `/console/`, `/console/<file>`), for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(redirect).head(redirect))
        .route("/console/", get(index).head(index))
        .route("/console/{file}", get(asset).head(asset))
}

fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn redirect() -> Response {
    secure(
        (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, HeaderValue::from_static("/console/"))],
        )
            .into_response(),
    )
}

async fn index(method: Method) -> Response {
    serve_file("index.html", &method)
}

async fn asset(method: Method, Path(file): Path<String>) -> Response {
    serve_file(&file, &method)
}

fn serve_file(name: &str, method: &Method) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == name) else {
        return secure(
            (
                StatusCode::NOT_FOUND,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                "Not found\n",
            )
                .into_response(),
        );
    };
    let body = if method == Method::HEAD {
        &[][..]
    } else {
        a.body
    };
    let mut r = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(a.content_type),
        )],
        body,
    )
        .into_response();
    if method == Method::HEAD
        && let Ok(v) = HeaderValue::from_str(&a.body.len().to_string())
    {
        r.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    secure(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get_path(path: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let app: Router = routes();
        let r = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let body = r.into_body().collect().await.unwrap().to_bytes().to_vec();
        (status, headers, body)
    }

    #[tokio::test]
    async fn index_and_assets_with_types_and_csp() {
        for (path, ct, needle) in [
            ("/console/", HTML, "<title>"),
            ("/console/index.html", HTML, "app.js"),
            ("/console/app.js", JS, "import"),
            ("/console/sigv4.js", JS, "AWS4-HMAC-SHA256"),
            ("/console/zip.js", JS, "crc32"),
            ("/console/policy.js", JS, "key-consolepolicy-3"),
            ("/console/kms.js", JS, "TrentService."),
            ("/console/app.css", CSS, "@media"),
        ] {
            let (status, h, body) = get_path(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(h[header::CONTENT_TYPE], ct, "{path}");
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP, "{path}");
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            let text = String::from_utf8(body).unwrap();
            assert!(text.contains(needle), "{path} lacks {needle}");
        }
    }

    #[tokio::test]
    async fn redirect_and_not_found() {
        let (status, h, _) = get_path("/console").await;
        assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
        assert_eq!(h[header::LOCATION], "/console/");
        let (status, h, _) = get_path("/console/Cargo.toml").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP);
        let (status, _, _) = get_path("/console/secret.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Nothing outside the embedded table is reachable (no file system access at all).
        let (status, _, _) = get_path("/console/%2e%2e%2fCargo.toml").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn no_inline_script_or_remote_origin() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        // Every <script> has a src (CSP forbids inline script) and nothing loads from elsewhere.
        for tag in html.split("<script").skip(1) {
            let head = tag.split('>').next().unwrap();
            assert!(head.contains("src=\""), "inline script: {head}");
        }
        for a in ASSETS {
            let text = std::str::from_utf8(a.body).unwrap();
            assert!(
                !text.contains("https://"),
                "{} names a remote origin",
                a.name
            );
            assert!(
                !text.contains(" style=\""),
                "{} has an inline style",
                a.name
            );
        }
    }
}
