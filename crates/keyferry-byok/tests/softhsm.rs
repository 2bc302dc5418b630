//! End-to-end tests of the PKCS#11 source against a real SoftHSM2 token (no mock PKCS#11 layer).
//!
//! SoftHSM reads `SOFTHSM2_CONF` once, at C_Initialize, so every case runs in its own child
//! process (this test binary re-run with `KEYFERRY_SOFTHSM_CASE` set) over its own token
//! directory. Keys are made in the token as sensitive and extractable, wrapped inside the HSM for
//! a software `WrappingKeyPair`, unwrapped with `keyferry_crypto::wrap::unwrap`, and compared with
//! what the token holds.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use keyferry_byok::ErrorKind;
use keyferry_byok::pkcs11::{KwpMechanism, TokenSession};
use keyferry_byok::source::{Source, TokenOptions, TokenSource};
use keyferry_byok::uri::Pkcs11Uri;
use keyferry_crypto::wrap::{WrappingKeyPair, kwp_unwrap, unwrap};
use keyferry_types::{AlgorithmSpec, KeySpec, MacAlgorithmSpec, WrappingKeySpec};

const CASE_ENV: &str = "KEYFERRY_SOFTHSM_CASE";
const LABEL: &str = "kf-test";
const USER_PIN: &str = "5678";

fn module() -> PathBuf {
    let candidates = [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("SoftHSM2 is not installed (apt-get install softhsm2 opensc)"))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Make a fresh token in its own directory (with `softhsm2-util`, or with the setup script),
/// then run `case` in a child process over it.
fn run_case(case: &str, with_script: bool) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("softhsm2.conf");
    if with_script {
        let out = Command::new("sh")
            .arg(workspace_root().join("scripts/softhsm-setup.sh"))
            .arg(dir.path())
            .arg(LABEL)
            .arg("1234")
            .arg(USER_PIN)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "softhsm-setup.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("export SOFTHSM2_CONF={}", conf.display())),
            "{stdout}"
        );
    } else {
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let out = Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                LABEL,
                "--so-pin",
                "1234",
                "--pin",
                USER_PIN,
            ])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "softhsm2-util: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env(CASE_ENV, case)
        .env("SOFTHSM2_CONF", &conf)
        .env("KEYFERRY_PKCS11_PIN", USER_PIN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(&format!("CASE OK {case}")),
        "case {case} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}

#[test]
fn aes_256() {
    run_case("aes_256", false);
}
#[test]
fn hmac_256() {
    run_case("hmac_256", false);
}
#[test]
fn ec_p256() {
    run_case("ec_p256", false);
}
#[test]
fn ec_p384() {
    run_case("ec_p384", false);
}
#[test]
fn rsa_2048() {
    run_case("rsa_2048", false);
}
#[test]
fn failures() {
    run_case("failures", false);
}
#[test]
fn keys_made_by_setup_script() {
    run_case("script_keys", true);
}

/// The child side: does nothing unless started by `run_case`.
#[test]
fn child_entry() {
    let Ok(case) = std::env::var(CASE_ENV) else {
        return;
    };
    match case.as_str() {
        "aes_256" => case_aes_256(),
        "hmac_256" => case_hmac_256(),
        "ec_p256" => case_asymmetric("ec-p256", KeySpec::ECC_NIST_P256),
        "ec_p384" => case_asymmetric("ec-p384", KeySpec::ECC_NIST_P384),
        "rsa_2048" => case_asymmetric("rsa-2048", KeySpec::RSA_2048),
        "failures" => case_failures(),
        "script_keys" => case_script_keys(),
        other => panic!("unknown case {other}"),
    }
    println!("CASE OK {case}");
}

fn uri(object: &str) -> Pkcs11Uri {
    Pkcs11Uri::parse(&format!(
        "pkcs11:token={LABEL};object={object}?module-path={}",
        module().display()
    ))
    .unwrap()
}

fn admin_session() -> TokenSession {
    let pin = secrecy::SecretString::from(USER_PIN.to_string());
    TokenSession::open(
        &module(),
        &Pkcs11Uri::parse(&format!("pkcs11:token={LABEL}")).unwrap(),
        &pin,
    )
    .unwrap()
}

fn secret_template(label: &str, extra: &[Attribute]) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(label.as_bytes().to_vec()),
    ];
    t.extend_from_slice(extra);
    t
}

fn make_aes(s: &TokenSession, label: &str, extractable: bool) -> ObjectHandle {
    let mut t = secret_template(
        label,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Encrypt(true),
            Attribute::Wrap(true),
        ],
    );
    if !extractable {
        t.retain(|a| !matches!(a, Attribute::Extractable(_)));
        t.push(Attribute::Extractable(false));
    }
    s.session().generate_key(&Mechanism::AesKeyGen, &t).unwrap()
}

fn make_key_pair(s: &TokenSession, label: &str, spec: KeySpec) {
    let common = [
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(label.as_bytes().to_vec()),
    ];
    let mut public = common.to_vec();
    let mut private = common.to_vec();
    private.extend([
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::Sign(true),
    ]);
    public.push(Attribute::Verify(true));
    let mech = match spec {
        KeySpec::RSA_2048 => {
            public.push(Attribute::ModulusBits(2048.into()));
            public.push(Attribute::PublicExponent(vec![1, 0, 1]));
            Mechanism::RsaPkcsKeyPairGen
        }
        KeySpec::ECC_NIST_P256 => {
            public.push(Attribute::EcParams(keyferry_byok::der::OID_P256.to_vec()));
            Mechanism::EccKeyPairGen
        }
        KeySpec::ECC_NIST_P384 => {
            public.push(Attribute::EcParams(keyferry_byok::der::OID_P384.to_vec()));
            Mechanism::EccKeyPairGen
        }
        other => panic!("no key pair for {other}"),
    };
    s.session()
        .generate_key_pair(&mech, &public, &private)
        .unwrap();
}

fn object_count(src: &TokenSource) -> usize {
    src.session().session().find_objects(&[]).unwrap().len()
}

fn open(object: &str, key_spec: Option<KeySpec>) -> TokenSource {
    TokenSource::open(
        &uri(object),
        &TokenOptions {
            key_spec,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Wrap in the token with the chosen algorithm (and a second, explicit one), unwrap in software.
fn wrap_and_unwrap(src: &Source, extra: Option<AlgorithmSpec>) -> Vec<zeroize::Zeroizing<Vec<u8>>> {
    let choice = src.choose_wrapping().unwrap();
    assert_eq!(choice.wrapping_key_spec, WrappingKeySpec::RSA_4096);
    let wk = WrappingKeyPair::generate(choice.wrapping_key_spec).unwrap();
    let mut out = Vec::new();
    for alg in std::iter::once(choice.algorithm).chain(extra) {
        let wrapped = src.wrap(alg, &wk.public_key_der()).unwrap();
        out.push(unwrap(alg, &wk, &wrapped).unwrap());
    }
    out
}

fn case_aes_256() {
    let admin = admin_session();
    let aes = make_aes(&admin, "aes", true);
    // A known value the AES key can KWP-wrap: proves the unwrapped bytes are the token's key.
    let known = admin
        .session()
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Value(b"0123456789abcdef0123456789abcdef".to_vec()),
        ])
        .unwrap();
    let by_token = admin.wrap_kwp(aes, known).unwrap();

    let tsrc = open("aes", None);
    let caps = tsrc.session().capabilities().unwrap();
    println!("capabilities: {caps:?}");
    assert!(caps.oaep_sha1 && caps.kwp && caps.aes_keygen);
    let before = object_count(&tsrc);
    let src = Source::from(tsrc);
    assert_eq!(src.key_spec(), KeySpec::SYMMETRIC_DEFAULT);
    let choice = src.choose_wrapping().unwrap();
    if !caps.oaep_sha256 {
        // SoftHSM 2.6.1: SHA-1 only, explained.
        assert_eq!(choice.algorithm, AlgorithmSpec::RSAES_OAEP_SHA_1);
        assert!(choice.notes.iter().any(|n| n.contains("SHA-1")));
        assert!(src.notes().iter().any(|n| n.contains("SHA-1 only")));
    }
    let keys = wrap_and_unwrap(&src, None);
    assert_eq!(keys[0].len(), 32);
    assert_eq!(
        &kwp_unwrap(&keys[0], &by_token).unwrap()[..],
        b"0123456789abcdef0123456789abcdef"
    );
    let Source::Token(t) = &src else { panic!() };
    assert_eq!(
        object_count(t),
        before,
        "a temporary object was left in the token"
    );
}

fn case_hmac_256() {
    let admin = admin_session();
    admin
        .session()
        .generate_key(
            &Mechanism::GenericSecretKeyGen,
            &secret_template(
                "hmac",
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::GENERIC_SECRET),
                    Attribute::ValueLen(32.into()),
                    Attribute::Sign(true),
                ],
            ),
        )
        .unwrap();
    // A generic secret does not say which HMAC it is: the user is asked.
    let e = TokenSource::open(&uri("hmac"), &TokenOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Material);
    assert!(
        e.message().contains("--key-spec") && e.message().contains("HMAC_256"),
        "{e}"
    );

    let src = Source::from(open("hmac", Some(KeySpec::HMAC_256)));
    let keys = wrap_and_unwrap(&src, None);
    assert_eq!(keys[0].len(), 32);
    let msg = b"keyferry hmac check";
    let in_token = src.mac(MacAlgorithmSpec::HMAC_SHA_256, msg).unwrap();
    assert_eq!(
        in_token,
        keyferry_crypto::mac::generate(MacAlgorithmSpec::HMAC_SHA_256, &keys[0], msg)
    );
}

fn case_asymmetric(label: &str, spec: KeySpec) {
    make_key_pair(&admin_session(), label, spec);
    let tsrc = open(label, None);
    let caps = tsrc.session().capabilities().unwrap();
    let before = object_count(&tsrc);
    let src = Source::from(tsrc);
    assert_eq!(src.key_spec(), spec);
    let public = src.public_key().unwrap().unwrap();
    // RSA: the chosen RSA_AES_KEY_WRAP; EC: the chosen one plus RSA_AES_KEY_WRAP explicitly.
    let extra = match (spec, src.choose_wrapping().unwrap().algorithm) {
        (KeySpec::RSA_2048, _) => None,
        (_, AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_1 | AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256) => {
            None
        }
        _ if caps.oaep_sha256 => Some(AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256),
        _ => Some(AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_1),
    };
    for pkcs8 in wrap_and_unwrap(&src, extra) {
        // SoftHSM zero-pads the PKCS#8 to 8 bytes before wrapping (see der::strip_block_zero_padding).
        let pkcs8 = keyferry_byok::der::strip_block_zero_padding(&pkcs8);
        assert_eq!(
            keyferry_crypto::keyfile::public_key_of(spec, pkcs8).unwrap(),
            public
        );
        keyferry_crypto::material::canonicalize(spec, pkcs8).unwrap();
    }
    let Source::Token(t) = &src else { panic!() };
    assert_eq!(
        object_count(t),
        before,
        "a temporary object was left in the token"
    );
    if !caps.oaep_wraps_private_keys && spec != KeySpec::RSA_2048 {
        // Direct OAEP of a private key is refused up front with what to use instead.
        let wk = WrappingKeyPair::generate(WrappingKeySpec::RSA_2048).unwrap();
        let e = src
            .wrap(AlgorithmSpec::RSAES_OAEP_SHA_1, &wk.public_key_der())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MechanismMissing);
        assert!(e.message().contains("RSA_AES_KEY_WRAP"), "{e}");
    }
}

fn case_failures() {
    // Wrong PIN: named, PIN not echoed. (First: once any session of this process is logged in,
    // PKCS#11 treats the whole application as logged in.)
    let bad = Pkcs11Uri::parse(&format!(
        "pkcs11:token={LABEL};object=aes?module-path={}&pin-value=0000",
        module().display()
    ))
    .unwrap();
    let e = TokenSource::open(&bad, &TokenOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Pin, "{e}");
    assert!(
        e.message().contains("CKR_PIN_INCORRECT") && !e.message().contains("0000"),
        "{e}"
    );

    let admin = admin_session();
    make_aes(&admin, "aes", true);
    let nx = make_aes(&admin, "aes-nx", false);
    make_key_pair(&admin, "rsa", KeySpec::RSA_2048);

    // Missing object and missing token.
    let e = TokenSource::open(&uri("no-such-key"), &TokenOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ObjectNotFound, "{e}");
    assert!(
        e.message().contains("no-such-key") && e.message().contains("pkcs11-tool"),
        "{e}"
    );
    let other = Pkcs11Uri::parse(&format!(
        "pkcs11:token=nope;object=aes?module-path={}",
        module().display()
    ))
    .unwrap();
    let e = TokenSource::open(&other, &TokenOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TokenNotFound, "{e}");
    assert!(e.message().contains(LABEL), "{e}");

    // Not extractable: refused up front, and by the token itself if wrapped anyway.
    let e = TokenSource::open(&uri("aes-nx"), &TokenOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotExtractable, "{e}");
    assert!(e.message().contains("CKA_EXTRACTABLE"), "{e}");
    let wk = WrappingKeyPair::generate(WrappingKeySpec::RSA_2048).unwrap();
    let kms = admin.import_rsa_public_key(&wk.public_key_der()).unwrap();
    let e = admin
        .wrap_oaep(keyferry_byok::pkcs11::OaepHash::Sha1, kms.handle(), nx)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotExtractable, "{e}");
    assert!(e.message().contains("CKA_EXTRACTABLE"), "{e}");
    drop(kms);

    // A vendor KWP mechanism SoftHSM does not have, named as the hint: the known-answer probe
    // rejects it, tries the standard numbers (0x210B is not in SoftHSM 2.6; 0x210A is RFC 5649
    // there), uses the one that passed, says so, and leaves no probe object behind.
    let opts = TokenOptions {
        kwp_mechanism: Some(KwpMechanism::new(0x8000_216F).unwrap()),
        ..Default::default()
    };
    let tsrc = TokenSource::open(&uri("rsa"), &opts).unwrap();
    let caps = tsrc.session().capabilities().unwrap();
    assert_eq!(
        caps.kwp_mechanism,
        Some(KwpMechanism::AES_KEY_WRAP_PAD),
        "{caps:?}"
    );
    assert!(
        caps.kwp_findings[0].contains("0x8000216f")
            && caps.kwp_findings[0].contains("not supported"),
        "{caps:?}"
    );
    assert!(
        caps.notes
            .iter()
            .any(|n| n.contains("did not give RFC 5649")),
        "{caps:?}"
    );
    let before = object_count(&tsrc);
    let _ = tsrc.session().capabilities().unwrap();
    assert_eq!(object_count(&tsrc), before, "a probe object survived");
    let src = Source::from(tsrc);
    let alg = src.choose_wrapping().unwrap().algorithm;
    let wrapped = src.wrap(alg, &wk.public_key_der()).unwrap();
    unwrap(alg, &wk, &wrapped).unwrap();

    // Material that does not fit the requested key spec.
    let e = TokenSource::open(
        &uri("rsa"),
        &TokenOptions {
            key_spec: Some(KeySpec::RSA_4096),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Material, "{e}");
    assert!(
        e.message().contains("RSA_2048") && e.message().contains("RSA_4096"),
        "{e}"
    );

    // No PIN anywhere and no terminal: says where to put it (the child inherits no TTY on stdin
    // only when run under cargo; skip the check when a terminal is attached).
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let src = Pkcs11Uri::parse(&format!(
            "pkcs11:token={LABEL};object=aes?module-path={}&pin-source=/nonexistent/pin",
            module().display()
        ))
        .unwrap();
        let e = TokenSource::open(&src, &TokenOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    }
}

fn case_script_keys() {
    // Keys made by scripts/softhsm-setup.sh with pkcs11-tool.
    let aes = Source::from(open("aes-256", None));
    assert_eq!(aes.key_spec(), KeySpec::SYMMETRIC_DEFAULT);
    assert_eq!(wrap_and_unwrap(&aes, None)[0].len(), 32);

    let hmac = Source::from(open("hmac-384", Some(KeySpec::HMAC_384)));
    assert_eq!(wrap_and_unwrap(&hmac, None)[0].len(), 48);

    for (label, spec) in [
        ("ec-p256", KeySpec::ECC_NIST_P256),
        ("ec-p384", KeySpec::ECC_NIST_P384),
        ("rsa-2048", KeySpec::RSA_2048),
    ] {
        let src = Source::from(open(label, None));
        assert_eq!(src.key_spec(), spec);
        let public = src.public_key().unwrap().unwrap();
        let unwrapped = &wrap_and_unwrap(&src, None)[0];
        let pkcs8 = keyferry_byok::der::strip_block_zero_padding(unwrapped);
        assert_eq!(
            keyferry_crypto::keyfile::public_key_of(spec, pkcs8).unwrap(),
            public,
            "{label}"
        );
    }
    let e = TokenSource::open(&uri("aes-256-nx"), &TokenOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotExtractable, "{e}");
}
