//! Helpers for the operator tests (`ops_*.rs`): start the real binary with any flags and
//! environment, capture its stdout and stderr, make certificates with openssl, send signed
//! requests over raw sockets.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DEV_AKID: &str = "AKIAKEYFERRYDEV00001";
pub const DEV_SECRET: &str = "keyferry-development-secret-not-for-production";

pub fn keyferry() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keyferry"));
    for v in [
        "KEYFERRY_ACCESS_KEY_ID",
        "KEYFERRY_SECRET_ACCESS_KEY",
        "KEYFERRY_ACCESS_KEY_ID_FILE",
        "KEYFERRY_SECRET_ACCESS_KEY_FILE",
        "KEYFERRY_ROOT_KEY",
        "KEYFERRY_ROOT_KEY_FILE",
        "KEYFERRY_NEW_ROOT_KEY",
        "KEYFERRY_NEW_ROOT_KEY_FILE",
        "KEYFERRY_DATABASE_URL",
        "KEYFERRY_CONFIG",
        "KEYFERRY_LISTEN",
        "KEYFERRY_DATA",
        "KEYFERRY_LOG",
        "KEYFERRY_LOG_FORMAT",
    ] {
        c.env_remove(v);
    }
    c
}

/// A running `keyferry serve` whose output lines are collected.
pub struct Ops {
    pub child: Child,
    /// `http://…` or `https://…`.
    pub endpoint: String,
    pub addr: String,
    pub admin: Option<String>,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

fn collect(r: impl Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
}

impl Ops {
    /// Start `keyferry serve --data DATA ARGS…` (no `--listen` added: pass it in `args`).
    pub fn start(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Ops {
        Self::try_start(data, args, env).unwrap_or_else(|e| panic!("server did not start: {e}"))
    }

    /// Like `start`, but an exit before listening is `Err(stderr)`.
    pub fn try_start(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Ops, String> {
        Self::try_start_as(&[], data, args, env)
    }

    /// Like `try_start`, with the binary run through `wrapper` (e.g. `setpriv --reuid=…`).
    pub fn try_start_as(
        wrapper: &[&str],
        data: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Ops, String> {
        let mut cmd = if let Some((first, rest)) = wrapper.split_first() {
            let mut c = Command::new(first);
            c.args(rest).arg(env!("CARGO_BIN_EXE_keyferry"));
            c.env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default());
            c
        } else {
            keyferry()
        };
        cmd.arg("serve").arg("--data").arg(data).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .env("KEYFERRY_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start keyferry serve");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        collect(child.stderr.take().unwrap(), stderr.clone());
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut admin = None;
        let endpoint = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    stdout_lines.lock().unwrap().push(line.clone());
                    if let Some(rest) = line.strip_prefix("keyferry: admin endpoints on http://") {
                        admin = Some(rest.split_whitespace().next().unwrap().to_string());
                    }
                    if let Some(rest) = line.strip_prefix("keyferry: listening on ") {
                        break rest.split_whitespace().next().unwrap().to_string();
                    }
                }
                _ => {
                    let _ = child.wait();
                    std::thread::sleep(Duration::from_millis(200));
                    return Err(stderr.lock().unwrap().join("\n"));
                }
            }
        };
        let sink = stdout_lines.clone();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        let addr = endpoint
            .split("://")
            .nth(1)
            .unwrap()
            .trim_end_matches('/')
            .to_string();
        Ok(Ops {
            child,
            endpoint,
            addr,
            admin,
            stdout: stdout_lines,
            stderr,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Wait for the process to exit; `None` if it is still running after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Wait until stderr has a line containing `needle`.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < limit {
            if self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Ops {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tests run as root (they read every process's `/proc/<pid>/environ`).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The environment block of process `pid`, as `/proc/<pid>/environ` shows it (only root reads it
/// when the process is not dumpable, as `keyferry serve` is not).
pub fn environ_of(pid: u32) -> Vec<u8> {
    std::fs::read(format!("/proc/{pid}/environ")).unwrap()
}

/// The `NAME=value` entries of an environment block by name (the first of a repeated name, as
/// `getenv` finds it; a value overwritten with NUL bytes reads as empty, its NULs as empty
/// entries, which are left out).
pub fn environ_entries(block: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for e in block.split(|&b| b == 0) {
        if let Some(eq) = e.iter().position(|&b| b == b'=') {
            out.entry(String::from_utf8_lossy(&e[..eq]).into_owned())
                .or_insert_with(|| String::from_utf8_lossy(&e[eq + 1..]).into_owned());
        }
    }
    out
}

/// `needle` occurs in `hay`.
pub fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A test CA and certificates it issued, made by openssl.
pub struct Pki {
    pub dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// A CA named `name` in `dir/name.{key,pem}`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join(format!("{name}.cnf")),
            format!(
                "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {name}\n[v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n"
            ),
        )
        .unwrap();
        openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &format!("{name}.key"),
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-config",
                &format!("{name}.cnf"),
                "-extensions",
                "v3_ca",
                "-days",
                "2",
                "-out",
                &format!("{name}.pem"),
            ],
        );
        let p = Pki {
            dir: dir.to_path_buf(),
        };
        std::fs::rename(dir.join(format!("{name}.pem")), p.ca_path_named(name)).unwrap();
        p
    }

    fn ca_path_named(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-ca.pem"))
    }

    /// Issue `leaf.{key,pem}` signed by CA `ca` for the server (127.0.0.1, localhost) or a client.
    pub fn issue(&self, ca: &str, leaf: &str, server: bool, serial: u32) -> (PathBuf, PathBuf) {
        let ext = if server {
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nauthorityKeyIdentifier=keyid\n"
        } else {
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nauthorityKeyIdentifier=keyid\n"
        };
        std::fs::write(self.dir.join(format!("{leaf}.ext")), ext).unwrap();
        openssl(
            &self.dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &format!("{leaf}.key"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-key",
                &format!("{leaf}.key"),
                "-subj",
                &format!("/CN={leaf}"),
                "-out",
                &format!("{leaf}.csr"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{leaf}.csr"),
                "-CA",
                &format!("{ca}-ca.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-set_serial",
                &serial.to_string(),
                "-days",
                "2",
                "-extfile",
                &format!("{leaf}.ext"),
                "-out",
                &format!("{leaf}.pem"),
            ],
        );
        (
            self.dir.join(format!("{leaf}.pem")),
            self.dir.join(format!("{leaf}.key")),
        )
    }

    pub fn ca(&self, name: &str) -> PathBuf {
        self.ca_path_named(name)
    }
}

/// Environment for the aws CLI / boto3 with the development credential and no endpoint
/// variable (tests pass `--endpoint-url` / `endpoint_url=` themselves).
pub fn aws_env(cmd: &mut Command) {
    cmd.env("AWS_ACCESS_KEY_ID", DEV_AKID)
        .env("AWS_SECRET_ACCESS_KEY", DEV_SECRET)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
}

/// Run python3 with `code`, the aws environment and `args`; returns (success, stdout, stderr).
pub fn python(code: &str, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(code).args(args);
    aws_env(&mut cmd);
    let out = cmd.output().expect("python3");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A signed KMS request as raw HTTP/1.1 bytes (development credential).
pub fn signed_raw(addr: &str, target: &str, body: &str) -> Vec<u8> {
    signed_raw_as(addr, target, body, DEV_AKID, DEV_SECRET)
}

/// Like `signed_raw`, signed with another access key.
pub fn signed_raw_as(addr: &str, target: &str, body: &str, akid: &str, secret: &str) -> Vec<u8> {
    let mut req = http_request(addr, target, body);
    let creds = keyferry_sigv4::Credentials::new(akid, secret);
    keyferry_sigv4::sign(
        &mut req,
        &creds,
        "us-east-1",
        "kms",
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    to_raw(&req)
}

pub fn http_request(addr: &str, target: &str, body: &str) -> http::Request<Vec<u8>> {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/"))
        .header("host", addr)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", format!("TrentService.{target}"))
        .body(body.as_bytes().to_vec())
        .unwrap()
}

pub fn to_raw(req: &http::Request<Vec<u8>>) -> Vec<u8> {
    let mut out = format!("{} / HTTP/1.1\r\n", req.method()).into_bytes();
    for (k, v) in req.headers() {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", req.body().len()).as_bytes());
    out.extend_from_slice(req.body());
    out
}

/// Read one HTTP response (headers and a Content-Length body) from `s`: (status, body).
pub fn read_response(s: &mut impl Read) -> (u16, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).unwrap();
        assert!(n > 0, "connection closed before the response header");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Send `raw` on a fresh connection and read the response.
pub fn roundtrip(addr: &str, raw: &[u8]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    read_response(&mut s)
}

/// `GET path` on the admin listener: (status, body).
pub fn admin_get(admin: &str, path: &str) -> (u16, String) {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    roundtrip(admin, raw.as_bytes())
}

fn pg_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-test.sh")
}

/// A PostgreSQL server of a test's own (`scripts/pg-test.sh` on a free port in a temporary
/// directory), so that stopping or freezing it disturbs no other test. Resumed and stopped on
/// drop, even when the test fails.
pub struct OwnPg {
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnPg {
    /// Start one: (the server, its URL).
    pub fn start() -> (OwnPg, String) {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = OwnPg { dir, port };
        let url = pg.start_again();
        (pg, url)
    }

    /// Start it again after `stop` (same data, same port); returns its URL.
    pub fn start_again(&self) -> String {
        let out = Command::new(pg_script())
            .arg("start")
            .arg(self.dir.path())
            .arg(self.port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// From now on TCP connections must give a password (scram-sha-256): `kms` gets `password`.
    /// `url` is the URL `start` returned.
    pub fn require_password(&self, url: &str, password: &str) {
        psql(url, &format!("ALTER ROLE kms PASSWORD '{password}'"));
        std::fs::write(
            self.dir.path().join("data/pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        psql(url, "SELECT pg_reload_conf()");
        // The reload is asynchronous: wait until a connection without the password is refused.
        let t = Instant::now();
        while psql_status(url, "SELECT 1", None) {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "PostgreSQL still accepts connections without a password"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(psql_status(url, "SELECT 1", Some(password)));
    }

    /// `pg_ctl stop -m fast`: sessions are ended, new connections refused.
    pub fn stop(&self) {
        let status = Command::new(pg_script())
            .arg("stop")
            .arg(self.dir.path())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The postmaster and its children (backends, background workers).
    fn pids(&self) -> Vec<String> {
        let pid_file = self.dir.path().join("data/postmaster.pid");
        let Ok(text) = std::fs::read_to_string(pid_file) else {
            return Vec::new();
        };
        let postmaster = text.lines().next().unwrap_or_default().trim().to_owned();
        let mut pids = vec![postmaster.clone()];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some(after_comm) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
                continue;
            };
            if after_comm.split_whitespace().nth(1) == Some(postmaster.as_str()) {
                pids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        pids
    }

    /// Send `sig` (`-STOP`, `-CONT`) to the postmaster and all its children.
    pub fn signal(&self, sig: &str) {
        for pid in self.pids() {
            let _ = Command::new("kill")
                .arg(sig)
                .arg(&pid)
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for OwnPg {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = Command::new(pg_script())
            .arg("stop")
            .arg(self.dir.path())
            .stderr(Stdio::null())
            .status();
    }
}

/// `psql URL -Atc SQL` (panics on failure): its output.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-Atc", sql])
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `psql URL -c SQL` with PGPASSWORD `password` (none: no password, never a prompt): succeeded.
pub fn psql_status(url: &str, sql: &str, password: Option<&str>) -> bool {
    let mut c = Command::new("psql");
    c.args(["-w", url, "-Atc", sql]).env_remove("PGPASSWORD");
    if let Some(p) = password {
        c.env("PGPASSWORD", p);
    }
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// A keep-alive HTTP/1.1 connection for a load generator: one request at a time, reconnecting
/// when the server closed it.
pub struct Conn {
    addr: String,
    s: Option<std::net::TcpStream>,
}

impl Conn {
    pub fn new(addr: &str) -> Conn {
        Conn {
            addr: addr.to_owned(),
            s: None,
        }
    }

    /// Send a signed request; (status, body). A connection the server closed is re-opened once.
    pub fn call(&mut self, target: &str, body: &str) -> (u16, String) {
        let raw = signed_raw(&self.addr, target, body);
        for attempt in 0..2 {
            if self.s.is_none() {
                let s = std::net::TcpStream::connect(&self.addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                s.set_nodelay(true).unwrap();
                self.s = Some(s);
            }
            let s = self.s.as_mut().unwrap();
            if s.write_all(&raw).is_ok()
                && let Some(r) = try_read_response(s)
            {
                return r;
            }
            self.s = None;
            assert!(attempt == 0, "{target}: connection lost twice");
        }
        unreachable!()
    }
}

/// Like `read_response`, but `None` when the connection closes before a complete response.
fn try_read_response(s: &mut impl Read) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}
