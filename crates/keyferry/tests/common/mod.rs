//! Test harness: start the real `keyferry serve` binary on a free loopback port with a fresh
//! data directory, and talk to it as AWS clients do.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const DEV_AKID: &str = "AKIAKEYFERRYDEV00001";
pub const DEV_SECRET: &str = "keyferry-development-secret-not-for-production";

pub struct Server {
    pub child: Child,
    pub endpoint: String,
    pub data: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// A server with its own temporary data directory.
    pub fn start() -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut s = Server::start_in(&data, &[]);
        s._tmp = Some(tmp);
        s
    }

    /// A server on an existing data directory (for restart tests), with extra flags.
    pub fn start_in(data: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keyferry"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .env_remove("KEYFERRY_ACCESS_KEY_ID")
            .env_remove("KEYFERRY_SECRET_ACCESS_KEY")
            .env_remove("KEYFERRY_ROOT_KEY")
            .env_remove("KEYFERRY_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start keyferry serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let endpoint = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .unwrap();
            if let Some(rest) = line.strip_prefix("keyferry: listening on ") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            endpoint,
            data: data.to_path_buf(),
            _tmp: None,
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Environment for the aws CLI / boto3 pointing at this server.
    pub fn aws_env(&self, cmd: &mut Command) {
        cmd.env("AWS_ACCESS_KEY_ID", DEV_AKID)
            .env("AWS_SECRET_ACCESS_KEY", DEV_SECRET)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("KEYFERRY_ENDPOINT", &self.endpoint)
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    }

    pub async fn sdk(&self) -> aws_sdk_kms::Client {
        sdk_client(&self.endpoint, DEV_AKID, DEV_SECRET).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn sdk_client(endpoint: &str, akid: &str, secret: &str) -> aws_sdk_kms::Client {
    let creds = aws_credential_types::Credentials::new(akid, secret, None, None, "test");
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .load()
        .await;
    aws_sdk_kms::Client::new(&conf)
}

/// Run a Python script from `tests/py/` against the server; panics with its output on failure.
pub fn run_python(server: &Server, script: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let mut cmd = Command::new("python3");
    cmd.arg(&path).args(args);
    server.aws_env(&mut cmd);
    let out = cmd.output().expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "{script} failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    stdout
}

/// Run a bash script from `tests/sh/` against the server; panics with its output on failure.
pub fn run_bash(server: &Server, script: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sh")
        .join(script);
    let work = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(&path).current_dir(work.path());
    server.aws_env(&mut cmd);
    let out = cmd.output().expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "{script} failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    stdout
}

/// True if `needle` occurs anywhere in any file under `dir`.
pub fn bytes_occur_under(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    for entry in walk(dir) {
        let data = std::fs::read(&entry).unwrap_or_default();
        if data.windows(needle.len()).any(|w| w == needle) {
            return Some(entry);
        }
    }
    None
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// GetParametersForImport → wrap in software → ImportKeyMaterial (no expiry), as a client does.
pub async fn import_material(
    kms: &aws_sdk_kms::Client,
    key_id: &str,
    alg: aws_sdk_kms::types::AlgorithmSpec,
    wspec: aws_sdk_kms::types::WrappingKeySpec,
    material: &[u8],
) -> Result<
    (),
    aws_sdk_kms::error::SdkError<
        aws_sdk_kms::operation::import_key_material::ImportKeyMaterialError,
    >,
> {
    let params = kms
        .get_parameters_for_import()
        .key_id(key_id)
        .wrapping_algorithm(alg.clone())
        .wrapping_key_spec(wspec)
        .send()
        .await
        .unwrap();
    let ours: keyferry_types::AlgorithmSpec = alg.as_str().parse().unwrap();
    let wrapped =
        keyferry_crypto::wrap::wrap(ours, params.public_key.unwrap().as_ref(), material).unwrap();
    kms.import_key_material()
        .key_id(key_id)
        .import_token(params.import_token.unwrap())
        .encrypted_key_material(aws_sdk_kms::primitives::Blob::new(wrapped))
        .expiration_model(aws_sdk_kms::types::ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await
        .map(|_| ())
}
