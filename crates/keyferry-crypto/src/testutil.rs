//! Test helpers: running the openssl CLI.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

/// Run openssl with `args`; panic with its stderr on failure; return stdout.
pub(crate) fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Run openssl with `args` and bytes on stdin.
#[allow(dead_code)] // for the asymmetric/wrap interop tests
pub(crate) fn openssl_stdin(args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `openssl genpkey <args>` then `openssl pkcs8 -topk8 -nocrypt -outform DER`.
pub(crate) fn openssl_pkcs8(dir: &Path, genpkey_args: &[&str]) -> Vec<u8> {
    let pem = dir.join("genpkey.pem");
    let mut args = vec!["genpkey"];
    args.extend_from_slice(genpkey_args);
    args.extend_from_slice(&["-out", pem.to_str().unwrap()]);
    openssl(&args);
    openssl(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        pem.to_str().unwrap(),
        "-outform",
        "DER",
    ])
}

/// PEM text for DER bytes.
pub(crate) fn pem_of(label: &str, der: &[u8]) -> String {
    let b64 = crate::pem::base64_encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}
