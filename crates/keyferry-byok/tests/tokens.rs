//! The PKCS#11 source on three more real tokens besides SoftHSM2 (`tests/softhsm.rs`): NSS
//! softoken (Debian libnss3, its database directory passed in C_Initialize's reserved
//! argument with the URI's `x-nss-db`), openCryptoki's soft token (Debian opencryptoki, with
//! pkcsslotd started by scripts/tokens/opencryptoki-start.sh) and Kryoptic (crates.io, built by
//! `KEYFERRY_WITH_KRYOPTIC=1 scripts/tokens/install.sh`; its configuration file passed in
//! C_Initialize's reserved argument with the URI's `x-module-init-args=kryoptic_conf=...`).
//! Each token is set up fresh, every key type it can
//! make is made in it (AES-256 and HMAC with known values, EC P-256/P-384, RSA-2048/3072/4096),
//! wrapped inside the token for a software wrapping key with the algorithm the known-answer
//! probes chose, unwrapped here and compared with the key (values, public keys). What a token
//! cannot do is refused up front with the reason. Every case runs in its own process (a module
//! is initialised once per process, with one configuration).
//!
//! Install everything with `scripts/tokens/install.sh`; a token that is not installed fails its
//! test with the install hint (CI installs all four).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::UserType;
use keyferry_byok::ErrorKind;
use keyferry_byok::pkcs11::{KwpMechanism, TokenSession};
use keyferry_byok::source::{Source, TokenOptions, TokenSource};
use keyferry_byok::uri::Pkcs11Uri;
use keyferry_crypto::wrap::{WrappingKeyPair, unwrap};
use keyferry_types::{AlgorithmSpec, KeySpec, MacAlgorithmSpec, WrappingKeySpec};
use secrecy::SecretString;

const CASE_ENV: &str = "KEYFERRY_TOKEN_CASE";
const DIR_ENV: &str = "KEYFERRY_TOKEN_DIR";
const USER_PIN: &str = "5678";
const AES_VALUE: &[u8; 32] = b"known AES-256 key of the matrix!";
const HMAC_VALUE: &[u8; 32] = b"known HMAC-256 key of the matrix";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn first_existing(paths: &[&str], what: &str) -> PathBuf {
    paths
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{what} is not installed: run scripts/tokens/install.sh"))
}

fn run_case(case: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([case, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CASE_ENV, case)
        .env(DIR_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains(&format!("CASE OK {case}")),
        "case {case} failed:\n{stdout}\n{stderr}"
    );
}

fn in_child(case: &str) -> bool {
    std::env::var(CASE_ENV).is_ok_and(|c| c == case)
}

#[test]
fn nss_softoken() {
    if in_child("nss_softoken") {
        return case_nss();
    }
    run_case("nss_softoken");
}

#[test]
fn kryoptic_token() {
    if in_child("kryoptic_token") {
        return case_kryoptic();
    }
    run_case("kryoptic_token");
}

#[test]
fn opencryptoki_soft_token() {
    if in_child("opencryptoki_soft_token") {
        return case_opencryptoki();
    }
    run_case("opencryptoki_soft_token");
}

/// A token under test: module, the URI of its token (no object), and the PIN.
struct Under {
    module: PathBuf,
    uri: String,
}

impl Under {
    fn uri(&self, object: &str) -> Pkcs11Uri {
        let (path, query) = self.uri.split_once('?').unwrap();
        Pkcs11Uri::parse(&format!("{path};object={object}?{query}")).unwrap()
    }

    fn session(&self) -> TokenSession {
        TokenSession::open(
            &self.module,
            &Pkcs11Uri::parse(&self.uri).unwrap(),
            &SecretString::from(USER_PIN.to_string()),
        )
        .unwrap()
    }

    fn open(&self, object: &str, spec: Option<KeySpec>) -> keyferry_byok::Result<TokenSource> {
        TokenSource::open(
            &self.uri(object),
            &TokenOptions {
                key_spec: spec,
                pin: Some(SecretString::from(USER_PIN.to_string())),
                ..Default::default()
            },
        )
    }
}

fn case_nss() {
    let module = first_existing(
        &[
            "/usr/lib/x86_64-linux-gnu/libsoftokn3.so",
            "/usr/lib/aarch64-linux-gnu/libsoftokn3.so",
            "/usr/lib64/libsoftokn3.so",
        ],
        "NSS softoken (libnss3)",
    );
    let db = PathBuf::from(std::env::var(DIR_ENV).unwrap());
    let base = format!(
        "pkcs11:token=NSS%20Certificate%20DB?module-path={}&x-nss-db={}",
        module.display(),
        db.display()
    );
    let uri = Pkcs11Uri::parse(&base).unwrap();
    // A fresh database has no user PIN: set it as the security officer (empty SO PIN).
    let ctx =
        keyferry_byok::pkcs11::load_module_with_args(&module, uri.init_args().as_deref()).unwrap();
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .is_ok_and(|i| i.label().trim_end() == "NSS Certificate DB")
        })
        .expect("NSS Certificate DB token");
    let s = ctx.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&SecretString::from(String::new())))
        .unwrap();
    s.init_pin(&SecretString::from(USER_PIN.to_string()))
        .unwrap();
    s.logout().unwrap();
    drop(s);
    let under = Under { module, uri: base };
    let (caps, _) = matrix("NSS softoken", &under);
    // NSS's 0x210A is PKCS#7 padding + RFC 3394: the known-answer probe refuses it (and NSS's
    // vendor 0xCE534352 too), so RSA keys are refused before any KMS key exists.
    assert_eq!(caps.kwp_mechanism, None, "{caps:?}");
    assert!(
        caps.kwp_findings
            .iter()
            .any(|f| f.contains("(0x210A) works but its output is not RFC 5649")),
        "{caps:?}"
    );

    // Without its database directory NSS finds no usable token, and the message says what to
    // add (its own configuration, not SoftHSM's).
    let advice = keyferry_byok::pkcs11::ModuleKind::of(&under.module).config_advice();
    assert!(
        advice.contains("x-nss-db") && !advice.contains("SOFTHSM2_CONF"),
        "{advice}"
    );
    println!("CASE OK nss_softoken");
}

fn case_opencryptoki() {
    let module = first_existing(
        &[
            "/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so",
            "/usr/lib/x86_64-linux-gnu/opencryptoki/libopencryptoki.so.0",
            "/usr/lib/aarch64-linux-gnu/pkcs11/libopencryptoki.so",
            "/usr/lib/aarch64-linux-gnu/opencryptoki/libopencryptoki.so.0",
        ],
        "openCryptoki",
    );
    let out = Command::new("sh")
        .arg(workspace_root().join("scripts/tokens/opencryptoki-start.sh"))
        .args(["kf-ock", USER_PIN])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "opencryptoki-start.sh: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let under = Under {
        uri: format!("pkcs11:token=kf-ock?module-path={}", module.display()),
        module,
    };
    matrix("openCryptoki", &under);
    println!("CASE OK opencryptoki_soft_token");
}

/// libkryoptic_pkcs11.so: $KRYOPTIC_MODULE, else in $KRYOPTIC_DIR, else where
/// scripts/tokens/install.sh puts it (~/.cache/keyferry/kryoptic).
fn kryoptic_module() -> PathBuf {
    let module = match (
        std::env::var_os("KRYOPTIC_MODULE"),
        std::env::var_os("KRYOPTIC_DIR"),
    ) {
        (Some(m), _) => PathBuf::from(m),
        (None, Some(d)) => PathBuf::from(d).join("libkryoptic_pkcs11.so"),
        (None, None) => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache")
            })
            .join("keyferry/kryoptic/libkryoptic_pkcs11.so"),
    };
    assert!(
        module.exists(),
        "Kryoptic is not installed ({} is missing): run KEYFERRY_WITH_KRYOPTIC=1 scripts/tokens/install.sh",
        module.display()
    );
    module
}

fn case_kryoptic() {
    let module = kryoptic_module();
    let dir = PathBuf::from(std::env::var(DIR_ENV).unwrap());
    let conf = dir.join("kryoptic.conf");
    std::fs::write(
        &conf,
        format!(
            "[[slots]]\nslot = 42\ndbtype = \"sqlite\"\ndbargs = \"{}\"\n",
            dir.join("token.sql").display()
        ),
    )
    .unwrap();
    let init_args = format!("kryoptic_conf={}", conf.display());
    // A fresh database has an uninitialised token: initialise it and set the user PIN.
    let ctx = keyferry_byok::pkcs11::load_module_with_args(&module, Some(&init_args)).unwrap();
    let slot = ctx
        .get_all_slots()
        .unwrap()
        .into_iter()
        .find(|s| s.id() == 42)
        .expect("Kryoptic slot 42 from kryoptic.conf");
    let so_pin = SecretString::from("1234".to_string());
    ctx.init_token(slot, &so_pin, "kf-kryoptic").unwrap();
    let s = ctx.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&so_pin)).unwrap();
    s.init_pin(&SecretString::from(USER_PIN.to_string()))
        .unwrap();
    s.logout().unwrap();
    drop(s);
    let under = Under {
        uri: format!(
            "pkcs11:token=kf-kryoptic?module-path={}&x-module-init-args={}",
            module.display(),
            init_args.replace('=', "%3D")
        ),
        module,
    };
    let (caps, imported) = matrix("Kryoptic", &under);
    // Kryoptic's RFC 5649 is the standard CKM_AES_KEY_WRAP_KWP (0x210B), sent with a raw
    // C_WrapKey: the known-answer probe vouches for it, so its RSA keys import too.
    assert_eq!(
        caps.kwp_mechanism,
        Some(KwpMechanism::AES_KEY_WRAP_KWP),
        "{caps:?}"
    );
    assert!(
        caps.kwp_findings
            .iter()
            .any(|f| f == "CKM_AES_KEY_WRAP_KWP (0x210B) gives RFC 5649"),
        "{caps:?}"
    );
    // Nobody named a mechanism, so no note says a hint failed (the default try of 0x210A
    // first is not the user's choice).
    assert!(caps.notes.is_empty(), "{caps:?}");
    assert_eq!(
        imported,
        [
            (KeySpec::ECC_NIST_P256, AlgorithmSpec::RSAES_OAEP_SHA_256),
            (KeySpec::ECC_NIST_P384, AlgorithmSpec::RSAES_OAEP_SHA_256),
            (KeySpec::RSA_2048, AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256),
            (KeySpec::RSA_3072, AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256),
            (KeySpec::RSA_4096, AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256),
        ],
        "Kryoptic must make and wrap every asymmetric key type"
    );

    // Without its configuration the message names Kryoptic's own variable, not SoftHSM's.
    let advice = keyferry_byok::pkcs11::ModuleKind::of(&under.module).config_advice();
    assert!(
        advice.contains("KRYOPTIC_CONF") && !advice.contains("SOFTHSM2_CONF"),
        "{advice}"
    );
    println!("CASE OK kryoptic_token");
}

fn make_known_secret(s: &TokenSession, label: &str, key_type: KeyType, value: &[u8], sign: bool) {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(key_type),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(label.as_bytes().to_vec()),
        Attribute::Value(value.to_vec()),
    ];
    if sign {
        t.push(Attribute::Sign(true));
    } else {
        t.push(Attribute::Encrypt(true));
    }
    s.session().create_object(&t).unwrap();
}

fn make_key_pair(s: &TokenSession, label: &str, spec: KeySpec) -> bool {
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
        KeySpec::RSA_2048 | KeySpec::RSA_3072 | KeySpec::RSA_4096 => {
            let bits: u64 = spec.as_str()[4..].parse().unwrap();
            public.push(Attribute::ModulusBits(bits.into()));
            public.push(Attribute::PublicExponent(vec![1, 0, 1]));
            Mechanism::RsaPkcsKeyPairGen
        }
        KeySpec::ECC_NIST_P256 => {
            public.push(Attribute::EcParams(keyferry_byok::der::OID_P256.to_vec()));
            Mechanism::EccKeyPairGen
        }
        _ => {
            public.push(Attribute::EcParams(keyferry_byok::der::OID_P384.to_vec()));
            Mechanism::EccKeyPairGen
        }
    };
    match s.session().generate_key_pair(&mech, &public, &private) {
        Ok(_) => true,
        Err(e) => {
            println!("{label}: the token cannot make it: {e}");
            false
        }
    }
}

/// Make every key type in the token and import each through the token source. Returns what
/// the probes found and the asymmetric keys that were made and wrapped, with the algorithm.
fn matrix(
    name: &str,
    under: &Under,
) -> (
    keyferry_byok::pkcs11::TokenCapabilities,
    Vec<(KeySpec, AlgorithmSpec)>,
) {
    let admin = under.session();
    make_known_secret(&admin, "aes-256", KeyType::AES, AES_VALUE, false);
    make_known_secret(
        &admin,
        "hmac-256",
        KeyType::GENERIC_SECRET,
        HMAC_VALUE,
        true,
    );
    let pairs = [
        ("ec-p256", KeySpec::ECC_NIST_P256),
        ("ec-p384", KeySpec::ECC_NIST_P384),
        ("rsa-2048", KeySpec::RSA_2048),
        ("rsa-3072", KeySpec::RSA_3072),
        ("rsa-4096", KeySpec::RSA_4096),
    ];
    let made: Vec<(&str, KeySpec)> = pairs
        .into_iter()
        .filter(|(l, s)| make_key_pair(&admin, l, *s))
        .collect();
    let wk = WrappingKeyPair::generate(WrappingKeySpec::RSA_3072).unwrap();

    // openCryptoki does not report CKA_VALUE_LEN of a key created with a value: say the spec.
    let aes = under
        .open("aes-256", Some(KeySpec::SYMMETRIC_DEFAULT))
        .unwrap();
    let caps = aes.session().capabilities().unwrap();
    println!("{name}: {caps:?}");
    assert!(
        caps.oaep_sha256,
        "{name} must RSA-OAEP-wrap with SHA-256: {caps:?}"
    );
    let vouched = caps.kwp_mechanism;
    let all = caps.clone();
    let src = Source::from(aes);
    let c = src.choose_wrapping().unwrap();
    assert_eq!(c.algorithm, AlgorithmSpec::RSAES_OAEP_SHA_256, "{name}");
    let got = unwrap(
        c.algorithm,
        &wk,
        &src.wrap(c.algorithm, &wk.public_key_der()).unwrap(),
    )
    .unwrap();
    assert_eq!(&got[..], AES_VALUE, "{name}: AES-256");
    println!("{name}: AES-256 ok with {}", c.algorithm);

    let hmac = Source::from(under.open("hmac-256", Some(KeySpec::HMAC_256)).unwrap());
    let c = hmac.choose_wrapping().unwrap();
    assert_eq!(c.algorithm, AlgorithmSpec::RSAES_OAEP_SHA_256, "{name}");
    let got = unwrap(
        c.algorithm,
        &wk,
        &hmac.wrap(c.algorithm, &wk.public_key_der()).unwrap(),
    )
    .unwrap();
    assert_eq!(&got[..], HMAC_VALUE, "{name}: HMAC");
    let msg = b"matrix";
    match hmac.mac(MacAlgorithmSpec::HMAC_SHA_256, msg) {
        Ok(m) => assert_eq!(
            m,
            keyferry_crypto::mac::generate(MacAlgorithmSpec::HMAC_SHA_256, HMAC_VALUE, msg)
        ),
        Err(e) => println!("{name}: no HMAC in the token ({e})"),
    }
    println!("{name}: HMAC_256 ok with {}", c.algorithm);

    let mut imported = Vec::new();
    for (label, spec) in made {
        let tsrc = under.open(label, None).unwrap();
        let src = Source::from(tsrc);
        assert_eq!(src.key_spec(), spec);
        match src.choose_wrapping() {
            Ok(c) => {
                assert!(
                    matches!(
                        c.algorithm,
                        AlgorithmSpec::RSAES_OAEP_SHA_256 | AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256
                    ),
                    "{name} {spec}: {}",
                    c.algorithm
                );
                let wrapped = src.wrap(c.algorithm, &wk.public_key_der()).unwrap();
                let pkcs8 = unwrap(c.algorithm, &wk, &wrapped).unwrap();
                let pkcs8 = keyferry_byok::der::strip_block_zero_padding(&pkcs8);
                assert_eq!(
                    keyferry_crypto::keyfile::public_key_of(spec, pkcs8).unwrap(),
                    src.public_key().unwrap().unwrap(),
                    "{name} {spec}"
                );
                keyferry_crypto::material::canonicalize(spec, pkcs8).unwrap();
                println!("{name}: {spec} ok with {}", c.algorithm);
                imported.push((spec, c.algorithm));
            }
            Err(e) => {
                // Only a token without a vouched RFC 5649 mechanism may refuse, and it must say so.
                assert!(vouched.is_none(), "{name} {spec}: {e}");
                assert_eq!(e.kind(), ErrorKind::MechanismMissing, "{e}");
                assert!(
                    e.message().contains("RFC 5649")
                        && e.message().contains("no KMS key was created"),
                    "{e}"
                );
                println!("{name}: {spec} refused up front: {e}");
            }
        }
    }
    (all, imported)
}
