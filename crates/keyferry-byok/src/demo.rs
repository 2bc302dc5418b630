//! `keyferry demo`: the whole bring-your-own-key walk-through with nothing installed. It starts
//! `keyferry serve` as a child process (this same executable) on a free loopback port with a
//! temporary data directory, makes software key material for AES-256, HMAC-256, EC P-256 and
//! RSA-2048 in a temporary directory, imports each with the code path of `keyferry import`, and
//! prints the proof for each.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use keyferry_types::KeySpec;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::cli::summary;
use crate::client::{Connect, Expiry, ImportRequest, SourceSpec, import, kms_client};
use crate::error::{Error, ErrorKind, Result};

/// The key specs the demo imports, with the file each is written to.
pub const DEMO_KEYS: &[(KeySpec, &str)] = &[
    (KeySpec::SYMMETRIC_DEFAULT, "aes-256.bin"),
    (KeySpec::HMAC_256, "hmac-256.bin"),
    (KeySpec::ECC_NIST_P256, "ec-p256.p8.der"),
    (KeySpec::RSA_2048, "rsa-2048.p8.der"),
];

fn internal(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Internal, format!("demo: {what}: {e}"))
}

/// A running child server; killed when dropped.
struct ChildServer {
    child: tokio::process::Child,
    endpoint: String,
    access_key_id: String,
    secret: String,
}

async fn start_server(exe: &Path, data: &Path) -> Result<ChildServer> {
    let mut child = tokio::process::Command::new(exe)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--wrapping-pool-size",
            "1",
            "--data",
        ])
        .arg(data)
        .env_remove("KEYFERRY_ACCESS_KEY_ID")
        .env_remove("KEYFERRY_SECRET_ACCESS_KEY")
        .env_remove("KEYFERRY_DATABASE_URL")
        .env_remove("KEYFERRY_ROOT_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| internal(&format!("cannot start {} serve", exe.display()), e))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| internal("server", "no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let (mut endpoint, mut akid, mut secret) = (None, None, None);
    let read = async {
        while let Some(line) = lines
            .next_line()
            .await
            .map_err(|e| internal("server output", e))?
        {
            if let Some(rest) = line.strip_prefix("keyferry: listening on ") {
                endpoint = rest.split_whitespace().next().map(str::to_string);
            } else if let Some(v) = line.trim().strip_prefix("AWS_ACCESS_KEY_ID=") {
                akid = Some(v.to_string());
            } else if let Some(v) = line.trim().strip_prefix("AWS_SECRET_ACCESS_KEY=") {
                secret = Some(v.to_string());
            }
            if endpoint.is_some() && akid.is_some() && secret.is_some() {
                return Ok(());
            }
        }
        Err(internal(
            "server",
            "it exited before announcing its address and development credential",
        ))
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .map_err(|_| internal("server", "no address announced within 60 s"))??;
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    match (endpoint, akid, secret) {
        (Some(endpoint), Some(access_key_id), Some(secret)) => Ok(ChildServer {
            child,
            endpoint,
            access_key_id,
            secret,
        }),
        _ => Err(internal("server", "incomplete announcement")),
    }
}

/// Write fresh software material for every demo key into `dir`; returns the files.
pub fn make_material(dir: &Path) -> Result<Vec<(KeySpec, PathBuf)>> {
    let mut out = Vec::new();
    for (spec, name) in DEMO_KEYS {
        let material = keyferry_crypto::material::generate(*spec)?;
        let path = dir.join(name);
        std::fs::write(&path, material.as_slice()).map_err(|e| Error::io("write", &path, e))?;
        out.push((*spec, path));
    }
    Ok(out)
}

/// Run the demo; returns the exit code (0 when every key was imported and verified).
pub async fn run_demo() -> u8 {
    match demo().await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("keyferry demo: error: {}", e.message());
            e.kind().exit_code()
        }
    }
}

async fn demo() -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| internal("cannot find this executable", e))?;
    let tmp = tempfile::tempdir().map_err(|e| internal("cannot make a temporary directory", e))?;
    let data = tmp.path().join("server-data");
    let keys = tmp.path().join("keys");
    std::fs::create_dir_all(&keys).map_err(|e| Error::io("create", &keys, e))?;

    println!("keyferry demo: bring your own key, end to end, on a throwaway server");
    println!("1. Starting `keyferry serve` with a temporary data directory…");
    let mut server = start_server(&exe, &data).await?;
    println!("   listening on {}", server.endpoint);

    println!(
        "2. Making software key material in {} (stays on this machine; only wrapped copies are sent)…",
        keys.display()
    );
    let files = make_material(&keys)?;
    for (spec, path) in &files {
        println!("   {spec:<18} {}", path.display());
    }

    let client = kms_client(&Connect {
        endpoint_url: Some(server.endpoint.clone()),
        region: Some("us-east-1".to_string()),
        profile: None,
        static_credentials: Some((server.access_key_id.clone(), server.secret.clone())),
    })
    .await?;
    println!(
        "3. Importing each: CreateKey (Origin EXTERNAL) → GetParametersForImport → wrap → ImportKeyMaterial → verify\n"
    );
    let mut failures = 0;
    for (spec, path) in &files {
        let req = ImportRequest {
            key_id: None,
            key_spec: Some(*spec),
            description: Some(format!("keyferry demo {spec}")),
            alias: None,
            expiry: Expiry::Never,
            wrapping_algorithm: None,
            wrapping_key_spec: None,
            allow_duplicate: true,
        };
        match import(&client, &SourceSpec::File(path.clone()), &req).await {
            Ok(o) => println!("{}", summary(&o)),
            Err(e) => {
                failures += 1;
                eprintln!("{spec}: FAILED: {}\n", e.message());
            }
        }
    }
    let _ = server.child.kill().await;
    if failures > 0 {
        return Err(Error::new(
            ErrorKind::Verification,
            format!("{failures} of {} demo imports failed", files.len()),
        ));
    }
    println!(
        "All {} keys imported and verified. With your own keys: `keyferry import --material FILE` or `--pkcs11-uri 'pkcs11:…'` against `keyferry serve` or AWS KMS.",
        files.len()
    );
    Ok(())
}
