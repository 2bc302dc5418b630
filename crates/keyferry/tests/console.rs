//! The web console in a real browser: each test starts the real `keyferry serve`, then
//! `tests/console/console_test.py SCENARIO` drives Debian's headless chromium through
//! chromium-driver (selenium) against `/console/`, checking the results with boto3 and wrapping
//! key material with openssl as the seeds do. Screenshots of every step are kept in
//! `target/console-screenshots/`. Needs `scripts/console-deps.sh` (chromium, chromium-driver,
//! selenium, faketime). The browser runs are serialised: one chromium at a time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use common::Server;

static BROWSER: Mutex<()> = Mutex::new(());

fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_scenario(server: &Server, scenario: &str, extra_env: &[(&str, &str)]) {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    for tool in ["chromium", "chromedriver"] {
        assert!(
            Command::new(tool)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "{tool} is missing: run scripts/console-deps.sh"
        );
    }
    // This scenario's screenshots from an earlier run go first.
    let shots = screenshot_dir();
    for e in std::fs::read_dir(&shots).unwrap().flatten() {
        if e.file_name()
            .to_string_lossy()
            .starts_with(&format!("{scenario}-"))
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/console_test.py");
    let work = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(scenario)
        .env("SCREENSHOT_DIR", screenshot_dir())
        .env("WORK_DIR", work.path())
        .env("SE_OFFLINE", "true")
        .current_dir(work.path());
    server.aws_env(&mut cmd);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(&format!("PASS {scenario}")),
        "console scenario {scenario} failed (screenshots in {}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        screenshot_dir().display()
    );
}

/// The identities the console scenarios name as key administrators, key users and other
/// accounts (key policies may name only principals that exist). The account root signs with the
/// development credential the scenarios sign in with.
const IDENTITIES: &str = r#"
[[accounts]]
id = "111122223333"
root = { access_key_id = "AKIAKEYFERRYDEV00001", secret_access_key = "keyferry-development-secret-not-for-production" }
[[accounts.users]]
name = "KMSAdminUser"
[[accounts.users]]
name = "Signer"
[[accounts.roles]]
name = "KeyUserRole"

[[accounts]]
id = "444455556666"
"#;

/// A server with the console scenarios' identities; the directory holds the identities file
/// and the data directory.
fn console_server() -> (tempfile::TempDir, Server) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let ids = tmp.path().join("identities.toml");
    std::fs::write(&ids, IDENTITIES).unwrap();
    std::fs::set_permissions(&ids, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = Server::start_in(
        &tmp.path().join("data"),
        &["--identities", ids.to_str().unwrap()],
    );
    (tmp, server)
}

/// Seed 003 end to end: sign in, External key with alias, ImportParameters.zip read by the
/// test, the seed's `openssl pkeyutl … rsa_oaep_md:sha256`, upload with the token, banner,
/// Enabled (boto3), another account added on the key page, the policy confirmed by GetKeyPolicy.
#[test]
fn console_seed_003_walkthrough() {
    let (_tmp, server) = console_server();
    run_scenario(&server, "seed003", &[]);
}

/// Key list paging and filter, key page sections, enable/disable, schedule (with the window
/// checked) and cancel deletion, description, aliases, tags, the policy JSON editor.
#[test]
fn console_key_list_and_lifecycle() {
    let (_tmp, server) = console_server();
    run_scenario(&server, "lifecycle", &[]);
}

/// A second `keyferry serve` on the same database and root key with its
/// clock 25 hours behind (libfaketime): the import tokens it issues are already expired for the
/// real server, which is the only way to get an expired token out of the binary.
struct LaggingNode {
    child: Child,
    endpoint: String,
}

impl LaggingNode {
    /// `data` is the real server's data directory: the lagging node uses its database and root
    /// key, with a data directory of its own under `dir` (one server per data directory).
    fn start(data: &Path, dir: &Path) -> LaggingNode {
        // libfaketime preloaded into the server itself (not the `faketime` wrapper, which forks:
        // killing the wrapper would leave the server running).
        let lib = [
            "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
            "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
            "/usr/lib/faketime/libfaketime.so.1",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("libfaketime is missing: run scripts/console-deps.sh");
        let mut child = Command::new(env!("CARGO_BIN_EXE_keyferry"))
            .env("LD_PRELOAD", lib)
            .env("FAKETIME", "-25h")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.join("lagging-data"))
            .arg("--database-url")
            .arg(data.join("keyferry.db"))
            .arg("--root-key-file")
            .arg(data.join("root.key"))
            .arg("--identities")
            .arg(dir.join("identities.toml"))
            .env_remove("KEYFERRY_ACCESS_KEY_ID")
            .env_remove("KEYFERRY_SECRET_ACCESS_KEY")
            .env_remove("KEYFERRY_ROOT_KEY")
            .env_remove("KEYFERRY_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the lagging keyferry serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let endpoint = loop {
            let line = lines.next().expect("lagging node exited").unwrap();
            if let Some(rest) = line.strip_prefix("keyferry: listening on ") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        LaggingNode { child, endpoint }
    }
}

impl Drop for LaggingNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The mistakes, each shown in words next to the upload step: no file, the wrong file, files
/// swapped, the token of another key, an expired token, different material on re-import; then
/// an expiring import, the same material re-imported, and Delete key material.
#[test]
fn console_import_errors() {
    let (tmp, server) = console_server();
    let lagging = LaggingNode::start(&server.data, tmp.path());
    run_scenario(
        &server,
        "import_errors",
        &[("EXPIRED_TOKEN_ENDPOINT", lagging.endpoint.as_str())],
    );
}

/// An External RSA_2048 signing key made in the wizard and imported with
/// RSA_AES_KEY_WRAP_SHA_256 / RSA_4096 (openssl enc -id-aes256-wrap-pad + pkeyutl).
#[test]
fn console_rsa_aes_key_wrap() {
    let (_tmp, server) = console_server();
    run_scenario(&server, "rsa_aes_key_wrap", &[]);
}

/// Phone (390 px) and laptop widths, keyboard-only sign-in and wizard, dialogs and Escape;
/// every scenario also checks at each step that every visible control has a label.
#[test]
fn console_layout_and_keyboard() {
    let (_tmp, server) = console_server();
    run_scenario(&server, "layout_keyboard", &[]);
}
