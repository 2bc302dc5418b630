//! Key material sources: a file (`--material FILE`) or a key in a PKCS#11 token
//! (`--pkcs11-uri URI`). Both answer the same questions — which key spec the material is, how to
//! wrap it for a KMS wrapping key, what its public key or MAC is for verification — so the import
//! steps do not care where the material lives. With a token, wrapping happens inside the HSM and
//! the material never leaves it unwrapped.

use std::fmt;
use std::path::{Path, PathBuf};

use cryptoki::object::{KeyType, ObjectClass};
use keyferry_crypto::Secret;
use keyferry_types::{AlgorithmSpec, KeySpec, MacAlgorithmSpec, WrappingKeySpec};
use secrecy::SecretString;

use crate::der;
use crate::error::{Error, ErrorKind, Result};
use crate::pkcs11::{
    KeyObject, KwpMechanism, OaepHash, ObjectQuery, TokenCapabilities, TokenSession, rsa_spec,
};
use crate::profiles::{self, HsmProfile};
use crate::uri::{self, Pkcs11Uri};

/// The broad kind of material a key spec takes; it decides the valid wrapping algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaterialKind {
    /// SYMMETRIC_DEFAULT: 32 raw bytes.
    Symmetric,
    /// HMAC_*: raw key bytes.
    Hmac,
    /// ECC_*: PKCS#8 private key.
    Ec,
    /// RSA_*: PKCS#8 private key.
    Rsa,
}

impl MaterialKind {
    /// The kind of `spec`, or an error for specs KMS cannot import (or this client cannot wrap).
    pub fn of(spec: KeySpec) -> Result<Self> {
        Ok(match spec {
            KeySpec::SYMMETRIC_DEFAULT => Self::Symmetric,
            KeySpec::HMAC_224 | KeySpec::HMAC_256 | KeySpec::HMAC_384 | KeySpec::HMAC_512 => {
                Self::Hmac
            }
            KeySpec::ECC_NIST_P256
            | KeySpec::ECC_NIST_P384
            | KeySpec::ECC_NIST_P521
            | KeySpec::ECC_SECG_P256K1 => Self::Ec,
            KeySpec::RSA_2048 | KeySpec::RSA_3072 | KeySpec::RSA_4096 => Self::Rsa,
            other => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "key material for {other} cannot be imported (KMS imports SYMMETRIC_DEFAULT, HMAC_*, RSA_* and ECC_* keys; SM2 only in China Regions)"
                    ),
                ));
            }
        })
    }
}

/// The MAC algorithm that matches an HMAC key spec.
pub fn mac_algorithm_for(spec: KeySpec) -> Option<MacAlgorithmSpec> {
    match spec {
        KeySpec::HMAC_224 => Some(MacAlgorithmSpec::HMAC_SHA_224),
        KeySpec::HMAC_256 => Some(MacAlgorithmSpec::HMAC_SHA_256),
        KeySpec::HMAC_384 => Some(MacAlgorithmSpec::HMAC_SHA_384),
        KeySpec::HMAC_512 => Some(MacAlgorithmSpec::HMAC_SHA_512),
        _ => None,
    }
}

fn hmac_min_len(spec: KeySpec) -> usize {
    match spec {
        KeySpec::HMAC_224 => 28,
        KeySpec::HMAC_256 => 32,
        KeySpec::HMAC_384 => 48,
        _ => 64,
    }
}

fn oaep_hash(alg: AlgorithmSpec) -> Option<OaepHash> {
    match alg {
        AlgorithmSpec::RSAES_OAEP_SHA_1 | AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_1 => {
            Some(OaepHash::Sha1)
        }
        AlgorithmSpec::RSAES_OAEP_SHA_256 | AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256 => {
            Some(OaepHash::Sha256)
        }
        _ => None,
    }
}

fn is_rsa_aes(alg: AlgorithmSpec) -> bool {
    matches!(
        alg,
        AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_1 | AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256
    )
}

/// A wrapping algorithm and wrapping key spec for GetParametersForImport, with the reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappingChoice {
    /// The wrapping algorithm.
    pub algorithm: AlgorithmSpec,
    /// The wrapping key spec.
    pub wrapping_key_spec: WrappingKeySpec,
    /// Lines explaining a fallback (e.g. SHA-1 because the token can do nothing else).
    pub notes: Vec<String>,
}

/// The strongest valid combination for `spec` that the source can perform: RSA_4096 with
/// RSAES_OAEP_SHA_256 for symmetric, HMAC and EC material, RSA_AES_KEY_WRAP_SHA_256 for RSA (and
/// for EC when the token cannot OAEP-wrap private keys); the SHA-1 variants, with a note, when
/// the token can only do OAEP with SHA-1.
pub fn choose_wrapping(spec: KeySpec, caps: &TokenCapabilities) -> Result<WrappingChoice> {
    let kind = MaterialKind::of(spec)?;
    let mut notes = Vec::new();
    let hash = if caps.oaep_sha256 {
        OaepHash::Sha256
    } else if caps.oaep_sha1 {
        notes.push(
            "the token can RSA-OAEP-wrap only with SHA-1, so the _SHA_1 wrapping algorithm is used (KMS accepts it; the wrapped material is still protected by RSA-4096)"
                .to_string(),
        );
        OaepHash::Sha1
    } else {
        return Err(Error::new(
            ErrorKind::MechanismMissing,
            "the token cannot wrap with CKM_RSA_PKCS_OAEP (neither SHA-256 nor SHA-1 works), which every KMS wrapping algorithm needs; use a token that supports RSA-OAEP wrapping, or export the key from a backup and use --material",
        ));
    };
    let (oaep, rsa_aes) = match hash {
        OaepHash::Sha256 => (
            AlgorithmSpec::RSAES_OAEP_SHA_256,
            AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256,
        ),
        OaepHash::Sha1 => (
            AlgorithmSpec::RSAES_OAEP_SHA_1,
            AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_1,
        ),
    };
    let rsa_aes_possible = caps.kwp && caps.aes_keygen;
    let algorithm = match kind {
        MaterialKind::Symmetric | MaterialKind::Hmac => oaep,
        MaterialKind::Ec if caps.oaep_wraps_private_keys => oaep,
        MaterialKind::Ec | MaterialKind::Rsa if rsa_aes_possible => {
            if kind == MaterialKind::Ec {
                notes.push(
                    "the token cannot RSA-OAEP-wrap private keys directly, so RSA_AES_KEY_WRAP (an ephemeral AES-256 key, OAEP-wrapped, then the key KWP-wrapped) is used"
                        .to_string(),
                );
            }
            rsa_aes
        }
        _ => {
            return Err(Error::new(
                ErrorKind::MechanismMissing,
                format!(
                    "{spec} keys cannot be imported from this token, and no KMS key was created: {}",
                    rsa_aes_missing(spec, caps)
                ),
            ));
        }
    };
    Ok(WrappingChoice {
        algorithm,
        wrapping_key_spec: WrappingKeySpec::RSA_4096,
        notes,
    })
}

/// Why RSA_AES_KEY_WRAP is impossible on a token, from what its probe found.
fn rsa_aes_missing(spec: KeySpec, caps: &TokenCapabilities) -> String {
    let mut why = Vec::new();
    if !caps.aes_keygen {
        why.push("it cannot generate an AES-256 session key (CKM_AES_KEY_GEN)".to_string());
    }
    if !caps.kwp {
        let found = if caps.kwp_findings.is_empty() {
            String::new()
        } else {
            format!(" ({})", caps.kwp_findings.join("; "))
        };
        why.push(format!(
            "none of its AES key wrap with padding mechanisms gives RFC 5649 as KMS expects{found}"
        ));
    }
    let what = if MaterialKind::of(spec).is_ok_and(|k| k == MaterialKind::Rsa) {
        "RSA private keys need RSA_AES_KEY_WRAP (an AES key wrap with padding, RFC 5649, inside the token)"
    } else {
        "RSA_AES_KEY_WRAP needs an AES key wrap with padding (RFC 5649) inside the token"
    };
    format!(
        "{what}, but {}. If the vendor has an RFC 5649 mechanism under another number, name it with --kwp-mechanism (it is tested before use); otherwise import this key from a backup with --material",
        why.join(" and ")
    )
}

/// Check a wrapping algorithm and key spec given by the user (or by the server) against the key
/// spec and what the source can do. Errors say what to choose instead.
pub fn check_wrapping(
    spec: KeySpec,
    algorithm: AlgorithmSpec,
    wrapping_key_spec: WrappingKeySpec,
    caps: &TokenCapabilities,
) -> Result<()> {
    let kind = MaterialKind::of(spec)?;
    let unsupported = |m: String| Err(Error::new(ErrorKind::Unsupported, m));
    let Some(hash) = oaep_hash(algorithm) else {
        return unsupported(format!(
            "the wrapping algorithm {algorithm} is not supported (KMS dropped RSAES_PKCS1_V1_5 in 2023; SM2PKE is China-only); use RSAES_OAEP_SHA_256 or RSA_AES_KEY_WRAP_SHA_256"
        ));
    };
    if wrapping_key_spec == WrappingKeySpec::SM2 {
        return unsupported("the SM2 wrapping key spec is China-only; use RSA_4096".to_string());
    }
    match (kind, is_rsa_aes(algorithm)) {
        (MaterialKind::Rsa, false) => {
            return unsupported(format!(
                "{spec} private keys are too large for one RSA-OAEP block; KMS requires RSA_AES_KEY_WRAP_SHA_256 (or _SHA_1) for RSA key material"
            ));
        }
        (MaterialKind::Symmetric | MaterialKind::Hmac, true) => {
            return unsupported(format!(
                "KMS accepts only RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1 for {spec} key material, not {algorithm}"
            ));
        }
        (MaterialKind::Ec, false)
            if spec == KeySpec::ECC_NIST_P521 && wrapping_key_spec == WrappingKeySpec::RSA_2048 =>
        {
            return unsupported(
                "an ECC_NIST_P521 private key does not fit in one RSA_2048 OAEP block; use RSA_3072/RSA_4096 or RSA_AES_KEY_WRAP_SHA_256".to_string(),
            );
        }
        _ => {}
    }
    let missing = |m: String| Err(Error::new(ErrorKind::MechanismMissing, m));
    if kind == MaterialKind::Ec && !is_rsa_aes(algorithm) && !caps.oaep_wraps_private_keys {
        let best = if caps.oaep_sha256 { "256" } else { "1" };
        return missing(format!(
            "the token cannot RSA-OAEP-wrap private keys, so {spec} material cannot be sent with {algorithm}; use --wrapping-algorithm RSA_AES_KEY_WRAP_SHA_{best} (or omit --wrapping-algorithm to let keyferry choose)"
        ));
    }
    match hash {
        OaepHash::Sha256 if !caps.oaep_sha256 => {
            return missing(format!(
                "the token cannot RSA-OAEP-wrap with SHA-256 (SoftHSM2 2.6 supports SHA-1 only); use {} instead",
                if is_rsa_aes(algorithm) {
                    "RSA_AES_KEY_WRAP_SHA_1"
                } else {
                    "RSAES_OAEP_SHA_1"
                }
            ));
        }
        OaepHash::Sha1 if !caps.oaep_sha1 => {
            return missing(
                "the token cannot RSA-OAEP-wrap with SHA-1; use the _SHA_256 variant".to_string(),
            );
        }
        _ => {}
    }
    if is_rsa_aes(algorithm) && !(caps.kwp && caps.aes_keygen) {
        return missing(format!(
            "{algorithm} cannot be done by this token: {}",
            rsa_aes_missing(spec, caps)
        ));
    }
    Ok(())
}

fn wrapping_key_spec_of(spki: &[u8]) -> Result<WrappingKeySpec> {
    match keyferry_crypto::wrap::rsa_public_key_len(spki)? {
        256 => Ok(WrappingKeySpec::RSA_2048),
        384 => Ok(WrappingKeySpec::RSA_3072),
        512 => Ok(WrappingKeySpec::RSA_4096),
        n => Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "the wrapping key is a {}-bit RSA key; KMS uses 2048, 3072 or 4096 bits",
                n * 8
            ),
        )),
    }
}

/// Whether raw key material is really text: hex or base64 digits (an optional line end
/// included) that decode to a length key material has. Returns the encoding and decoded length.
/// Random key bytes are practically never all hex or base64 characters.
pub fn text_encoded(bytes: &[u8]) -> Option<(&'static str, usize)> {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let body = &bytes[..end];
    if body.len() < 16 || body.iter().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    if body.len().is_multiple_of(2) && body.iter().all(u8::is_ascii_hexdigit) {
        return Some(("hex", body.len() / 2));
    }
    use base64::Engine;
    if body.len().is_multiple_of(4)
        && body
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(body)
    {
        return Some(("base64", decoded.len()));
    }
    None
}

fn text_material_error(origin: &str, bytes: &[u8], spec: Option<KeySpec>) -> Error {
    let (enc, n) = text_encoded(bytes).unwrap_or(("text", bytes.len()));
    let decode = if enc == "hex" {
        format!("xxd -r -p {origin} > key.bin")
    } else {
        format!("base64 -d {origin} > key.bin")
    };
    let what = spec.map_or_else(
        || "AES and HMAC key material".to_string(),
        |s| format!("{s} key material"),
    );
    Error::new(
        ErrorKind::Material,
        format!(
            "{origin} is {enc} text ({} characters encoding {n} bytes, like `openssl rand -{} {n}` output), but {what} must be the raw bytes; decode it first (`{decode}`) or make raw material with `openssl rand -out key.bin 32`",
            bytes.len(),
            if enc == "hex" { "hex" } else { "base64" },
        ),
    )
}

/// Key material read from a file. `Debug` never shows the material.
pub struct FileSource {
    spec: KeySpec,
    material: Secret,
    public_key: Option<Vec<u8>>,
    origin: String,
    notes: Vec<String>,
}

impl fmt::Debug for FileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSource")
            .field("spec", &self.spec)
            .field("origin", &self.origin)
            .field("material", &"<redacted>")
            .finish()
    }
}

impl FileSource {
    /// Read `path`: raw bytes for SYMMETRIC_DEFAULT / HMAC_*, or a private key (PKCS#8 DER or
    /// PEM, traditional RSA/EC PEM) for RSA_* / ECC_*. Without `key_spec`, a private key's spec is
    /// taken from the key and 32 raw bytes are SYMMETRIC_DEFAULT; other raw lengths need it.
    pub fn read(path: &Path, key_spec: Option<KeySpec>) -> Result<Self> {
        let bytes = Secret::new(std::fs::read(path).map_err(|e| Error::io("read", path, e))?);
        Self::from_bytes(&bytes, key_spec, &path.display().to_string())
    }

    /// The same from bytes; `origin` names them in messages.
    pub fn from_bytes(bytes: &[u8], key_spec: Option<KeySpec>, origin: &str) -> Result<Self> {
        let in_file = |e: Error| Error::new(e.kind(), format!("{origin}: {}", e.message()));
        let looks_pem = bytes.starts_with(b"-----BEGIN")
            || bytes
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .is_some_and(|i| bytes[i..].starts_with(b"-----BEGIN"));
        let mut notes = Vec::new();
        let asymmetric = |spec: Option<KeySpec>| -> Result<Self> {
            let (pkcs8, found) = keyferry_crypto::keyfile::private_key_to_pkcs8(bytes)?;
            let spec = match spec {
                Some(s) if s != found => {
                    return Err(Error::new(
                        ErrorKind::Material,
                        format!("the file holds a {found} private key, but the key spec is {s}"),
                    ));
                }
                _ => found,
            };
            let material = keyferry_crypto::material::canonicalize(spec, &pkcs8)?;
            let public_key = Some(keyferry_crypto::keyfile::public_key_of(spec, &material)?);
            Ok(Self {
                spec,
                material,
                public_key,
                origin: origin.to_string(),
                notes: Vec::new(),
            })
        };
        let spec = match key_spec {
            Some(spec) => spec,
            None => match asymmetric(None) {
                Ok(s) => return Ok(s),
                Err(e) if looks_pem => return Err(in_file(e)),
                Err(_) if text_encoded(bytes).is_some() => {
                    return Err(text_material_error(origin, bytes, None));
                }
                Err(_) => match bytes.len() {
                    32 => {
                        notes.push(
                            "32 raw bytes were taken as SYMMETRIC_DEFAULT (AES-256); give --key-spec HMAC_256 for an HMAC key".to_string(),
                        );
                        KeySpec::SYMMETRIC_DEFAULT
                    }
                    n @ (28 | 48 | 64) => {
                        return Err(Error::new(
                            ErrorKind::Material,
                            format!(
                                "{origin} holds {n} raw bytes, which fits an HMAC key; give --key-spec (e.g. HMAC_{}) to say which",
                                n * 8
                            ),
                        ));
                    }
                    n => {
                        return Err(Error::new(
                            ErrorKind::Material,
                            format!(
                                "{origin} is neither a private key (PKCS#8 DER/PEM, RSA or EC PEM) nor 32 raw bytes of AES-256 material ({n} bytes); give --key-spec for HMAC keys"
                            ),
                        ));
                    }
                },
            },
        };
        match MaterialKind::of(spec)? {
            MaterialKind::Ec | MaterialKind::Rsa => asymmetric(Some(spec)).map_err(in_file),
            MaterialKind::Symmetric | MaterialKind::Hmac => {
                if looks_pem {
                    return Err(Error::new(
                        ErrorKind::Material,
                        format!(
                            "{origin} is a PEM file, but {spec} key material is raw bytes (e.g. `openssl rand -out key.bin 32`)"
                        ),
                    ));
                }
                if text_encoded(bytes).is_some() {
                    return Err(text_material_error(origin, bytes, Some(spec)));
                }
                let material = keyferry_crypto::material::canonicalize(spec, bytes)
                    .map_err(|e| in_file(e.into()))?;
                Ok(Self {
                    spec,
                    material,
                    public_key: None,
                    origin: origin.to_string(),
                    notes,
                })
            }
        }
    }
}

/// How to open a token source.
#[derive(Debug, Clone, Default)]
pub struct TokenOptions {
    /// The PKCS#11 module; overrides the URI's `module-path` and the profile's default.
    pub module: Option<PathBuf>,
    /// A vendor profile name (`--hsm-profile`).
    pub profile: Option<String>,
    /// The RFC 5649 key-wrap mechanism; overrides the profile's.
    pub kwp_mechanism: Option<KwpMechanism>,
    /// The key spec, when it cannot or should not be inferred.
    pub key_spec: Option<KeySpec>,
    /// The PIN; when absent it is resolved from the URI, `KEYFERRY_PKCS11_PIN` or a prompt.
    pub pin: Option<SecretString>,
}

/// The PKCS#11 module to load: `--module`, else the URI's `module-path` or `module-name`, else
/// the profile's (the one place this order is decided).
pub(crate) fn module_for(
    uri: &Pkcs11Uri,
    opts: &TokenOptions,
    profile: Option<&HsmProfile>,
) -> Result<PathBuf> {
    if let Some(m) = &opts.module {
        return Ok(m.clone());
    }
    if let Some(m) = uri.module()? {
        return Ok(m);
    }
    profile
        .and_then(|p| p.module_path().map(Path::to_path_buf))
        .ok_or_else(|| {
            Error::usage(
                "no PKCS#11 module: add module-path=/path/to/module.so (or module-name=NAME) to the URI's query (after '?') or choose --hsm-profile (softhsm2, luna, cloudhsm, yubihsm2)",
            )
        })
}

/// A key in a PKCS#11 token, with a logged-in session and the token's capabilities.
#[derive(Debug)]
pub struct TokenSource {
    session: TokenSession,
    uri: String,
    key: KeyObject,
    spec: KeySpec,
    caps: TokenCapabilities,
    notes: Vec<String>,
}

impl TokenSource {
    /// Resolve the module ([`module_for`]), the PIN, open the token the URI names, find the key, infer its spec and probe what the token can do.
    pub fn open(uri: &Pkcs11Uri, opts: &TokenOptions) -> Result<Self> {
        let profile: Option<HsmProfile> = match &opts.profile {
            Some(name) => Some(profiles::by_name(name)?),
            None => None,
        };
        let module = module_for(uri, opts, profile.as_ref())?;
        let profile = match profile {
            Some(p) => Some(p),
            None => profiles::for_module(&module)?,
        };
        // A hint only when the user or a profile names one: the probe's note that the hint did
        // not give RFC 5649 would otherwise blame a choice nobody made.
        let kwp = match (opts.kwp_mechanism, &profile) {
            (Some(k), _) => Some(k),
            (None, Some(p)) => Some(p.kwp_mechanism()?),
            (None, None) => None,
        };
        let pin = match &opts.pin {
            Some(p) => p.clone(),
            None => uri::resolve_pin(uri)?.0,
        };
        let mut session = TokenSession::open(&module, uri, &pin)?;
        if let Some(kwp) = kwp {
            session.set_kwp_mechanism(kwp);
        }
        let mut src = Self::from_session(session, &ObjectQuery::from_uri(uri), opts.key_spec)?;
        src.uri = uri.redacted();
        if let Some(p) = profile
            && !p.tested
        {
            src.notes.push(format!(
                "HSM profile {} ({}) is not tested by Keyferry; KWP mechanism {}",
                p.name, p.display_name, p.kwp_mechanism_name
            ));
        }
        Ok(src)
    }

    /// A source over an open session: find the key `query` names, infer or check its spec,
    /// check it can be wrapped, and probe the token's capabilities.
    pub fn from_session(
        session: TokenSession,
        query: &ObjectQuery,
        key_spec: Option<KeySpec>,
    ) -> Result<Self> {
        let key = session.find_key(query)?;
        let spec = infer_token_spec(&key, key_spec)?;
        session.check_extractable(&key)?;
        let caps = session.capabilities()?;
        let notes = caps.notes.clone();
        Ok(Self {
            session,
            uri: String::new(),
            key,
            spec,
            caps,
            notes,
        })
    }

    /// The token session.
    pub fn session(&self) -> &TokenSession {
        &self.session
    }

    /// The key object.
    pub fn key(&self) -> &KeyObject {
        &self.key
    }
}

/// The key spec of a token key: from its type and size, checked against `given`.
pub fn infer_token_spec(key: &KeyObject, given: Option<KeySpec>) -> Result<KeySpec> {
    let material = |m: String| Err(Error::new(ErrorKind::Material, m));
    let mismatch = |found: KeySpec, g: KeySpec| {
        material(format!(
            "{} is a {found} key, but the key spec is {g}",
            key.describe()
        ))
    };
    if key.class == ObjectClass::SECRET_KEY {
        let kt = key.key_type;
        // Some tokens (openCryptoki) do not report CKA_VALUE_LEN for keys created with a value:
        // then the user's --key-spec is taken as the length's promise (KMS checks it on import).
        let Some(len) = key.value_len.filter(|l| *l > 0) else {
            let is_hmac = |s: KeySpec| MaterialKind::of(s).is_ok_and(|k| k == MaterialKind::Hmac);
            return match given {
                Some(KeySpec::SYMMETRIC_DEFAULT) if kt == Some(KeyType::AES) => {
                    Ok(KeySpec::SYMMETRIC_DEFAULT)
                }
                Some(g) if kt != Some(KeyType::AES) && is_hmac(g) => Ok(g),
                _ => material(format!(
                    "the token does not say how long {} is (no CKA_VALUE_LEN); give --key-spec ({})",
                    key.describe(),
                    if kt == Some(KeyType::AES) {
                        "SYMMETRIC_DEFAULT if it is AES-256"
                    } else {
                        "HMAC_224, HMAC_256, HMAC_384 or HMAC_512"
                    }
                )),
            };
        };
        if kt == Some(KeyType::AES) {
            return match (len, given) {
                (32, None | Some(KeySpec::SYMMETRIC_DEFAULT)) => Ok(KeySpec::SYMMETRIC_DEFAULT),
                (32, Some(g)) => mismatch(KeySpec::SYMMETRIC_DEFAULT, g),
                (n, _) => material(format!(
                    "{} is AES-{}; KMS symmetric keys (SYMMETRIC_DEFAULT) are AES-256",
                    key.describe(),
                    n * 8
                )),
            };
        }
        let typed = [
            (KeyType::SHA224_HMAC, KeySpec::HMAC_224),
            (KeyType::SHA256_HMAC, KeySpec::HMAC_256),
            (KeyType::SHA384_HMAC, KeySpec::HMAC_384),
            (KeyType::SHA512_HMAC, KeySpec::HMAC_512),
        ]
        .into_iter()
        .find(|(t, _)| kt == Some(*t))
        .map(|(_, s)| s);
        if typed.is_none() && kt != Some(KeyType::GENERIC_SECRET) {
            return material(format!(
                "{} is a secret key of a type KMS cannot import; use an AES-256 key (SYMMETRIC_DEFAULT) or a generic secret (HMAC_*)",
                key.describe()
            ));
        }
        let spec = match (given, typed) {
            (Some(g), _) => g,
            (None, Some(t)) => t,
            (None, None) => {
                let fits: Vec<&str> = [
                    KeySpec::HMAC_224,
                    KeySpec::HMAC_256,
                    KeySpec::HMAC_384,
                    KeySpec::HMAC_512,
                ]
                .into_iter()
                .filter(|s| hmac_min_len(*s) <= len && len <= 128)
                .map(KeySpec::as_str)
                .collect();
                return Err(Error::new(
                    ErrorKind::Material,
                    format!(
                        "{} is a {len}-byte generic secret; give --key-spec to say which HMAC key it is ({})",
                        key.describe(),
                        if fits.is_empty() {
                            "none fits its length".to_string()
                        } else {
                            fits.join(", ")
                        }
                    ),
                ));
            }
        };
        return match MaterialKind::of(spec)? {
            MaterialKind::Hmac if hmac_min_len(spec) <= len && len <= 128 => Ok(spec),
            MaterialKind::Hmac => material(format!(
                "{} is {len} bytes long; {spec} key material must be {} to 128 bytes",
                key.describe(),
                hmac_min_len(spec)
            )),
            MaterialKind::Symmetric if len == 32 => Ok(spec),
            _ => material(format!(
                "{} is a {len}-byte secret key and cannot be {spec} key material",
                key.describe()
            )),
        };
    }
    if key.class == ObjectClass::PRIVATE_KEY {
        let found = if key.key_type == Some(KeyType::EC) {
            let params = key.ec_params.as_deref().ok_or_else(|| {
                Error::new(
                    ErrorKind::Internal,
                    format!(
                        "the token does not reveal CKA_EC_PARAMS of {}",
                        key.describe()
                    ),
                )
            })?;
            der::ec_spec_from_params(params)?
        } else if key.key_type == Some(KeyType::RSA) {
            let n = key.modulus.as_deref().ok_or_else(|| {
                Error::new(
                    ErrorKind::Internal,
                    format!(
                        "the token does not reveal CKA_MODULUS of {}",
                        key.describe()
                    ),
                )
            })?;
            rsa_spec(n)?
        } else {
            return material(format!(
                "{} is neither an RSA nor an EC private key; KMS imports RSA and ECC private keys",
                key.describe()
            ));
        };
        return match given {
            Some(g) if g != found => mismatch(found, g),
            _ => Ok(found),
        };
    }
    Err(Error::new(
        ErrorKind::ObjectNotFound,
        format!(
            "{} is not a secret or private key; point the URI at the key itself (type=secret-key or type=private)",
            key.describe()
        ),
    ))
}

/// Where key material comes from.
#[derive(Debug)]
pub enum Source {
    /// `--material FILE`.
    File(FileSource),
    /// `--pkcs11-uri URI`.
    Token(Box<TokenSource>),
}

impl From<FileSource> for Source {
    fn from(s: FileSource) -> Self {
        Self::File(s)
    }
}

impl From<TokenSource> for Source {
    fn from(s: TokenSource) -> Self {
        Self::Token(Box::new(s))
    }
}

impl Source {
    /// The material's key spec.
    pub fn key_spec(&self) -> KeySpec {
        match self {
            Self::File(f) => f.spec,
            Self::Token(t) => t.spec,
        }
    }

    /// A short description for summaries (file name, or token and key).
    pub fn describe(&self) -> String {
        match self {
            Self::File(f) => format!("file {}", f.origin),
            Self::Token(t) => format!(
                "{} in token \"{}\"",
                t.key.describe(),
                t.session.token_label()
            ),
        }
    }

    /// Provenance tags for a KMS key made from this source (see [`crate::provenance`]).
    pub fn provenance(&self) -> Result<crate::provenance::Tags> {
        use crate::provenance as p;
        let mut t: p::Tags = Vec::new();
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v.as_deref().and_then(p::fit) {
                t.push((k.to_string(), v));
            }
        };
        match self {
            Self::File(f) => {
                push(p::SOURCE_KIND, Some("file".into()));
                let path = Path::new(&f.origin);
                let abs = std::fs::canonicalize(path)
                    .or_else(|_| std::path::absolute(path))
                    .unwrap_or_else(|_| path.to_path_buf());
                push(p::SOURCE, Some(abs.display().to_string()));
            }
            Self::Token(s) => {
                push(p::SOURCE_KIND, Some("pkcs11".into()));
                push(p::SOURCE, (!s.uri.is_empty()).then(|| s.uri.clone()));
                push(
                    p::TOKEN,
                    Some(format!(
                        "{} (serial {})",
                        s.session.token_label(),
                        s.session.token_serial()
                    )),
                );
                push(
                    p::OBJECT,
                    (!s.key.label.is_empty()).then(|| s.key.label.clone()),
                );
                push(
                    p::OBJECT_ID,
                    (!s.key.id.is_empty()).then(|| hex::encode(&s.key.id)),
                );
            }
        }
        if let Some(pk) = self.public_key()? {
            push(
                p::FINGERPRINT,
                Some(format!(
                    "sha256:{}",
                    hex::encode(keyferry_crypto::sha256(&pk))
                )),
            );
        }
        Ok(t)
    }

    /// What the source can do (a file: everything, in software).
    pub fn capabilities(&self) -> TokenCapabilities {
        match self {
            Self::File(_) => TokenCapabilities::software(),
            Self::Token(t) => t.caps.clone(),
        }
    }

    /// Explanations to show in the summary (fallbacks, untested profiles, inferred specs).
    pub fn notes(&self) -> &[String] {
        match self {
            Self::File(f) => &f.notes,
            Self::Token(t) => &t.notes,
        }
    }

    /// The strongest valid wrapping for this material and source.
    pub fn choose_wrapping(&self) -> Result<WrappingChoice> {
        choose_wrapping(self.key_spec(), &self.capabilities())
    }

    /// Wrap the material under the KMS wrapping public key (SPKI DER) with `algorithm`. A file is
    /// wrapped in software; a token key inside the HSM (the wrapping key is imported as a session
    /// object and destroyed afterwards, also on errors).
    pub fn wrap(&self, algorithm: AlgorithmSpec, wrapping_public_key: &[u8]) -> Result<Vec<u8>> {
        let wks = wrapping_key_spec_of(wrapping_public_key)?;
        check_wrapping(self.key_spec(), algorithm, wks, &self.capabilities())?;
        match self {
            Self::File(f) => Ok(keyferry_crypto::wrap::wrap(
                algorithm,
                wrapping_public_key,
                &f.material,
            )?),
            Self::Token(t) => {
                let hash = oaep_hash(algorithm).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Unsupported,
                        format!("{algorithm} is not supported"),
                    )
                })?;
                let s = &t.session;
                let kms_key = s.import_rsa_public_key(wrapping_public_key)?;
                if is_rsa_aes(algorithm) {
                    let kek = s.generate_ephemeral_aes256()?;
                    let mut out = s.wrap_oaep(hash, kms_key.handle(), kek.handle())?;
                    out.extend_from_slice(&s.wrap_kwp(kek.handle(), t.key.handle)?);
                    Ok(out)
                } else {
                    s.wrap_oaep(hash, kms_key.handle(), t.key.handle)
                }
            }
        }
    }

    /// The public key (SPKI DER) of asymmetric material, for comparing with GetPublicKey.
    pub fn public_key(&self) -> Result<Option<Vec<u8>>> {
        match self {
            Self::File(f) => Ok(f.public_key.clone()),
            Self::Token(t) => match MaterialKind::of(t.spec)? {
                MaterialKind::Ec | MaterialKind::Rsa => {
                    let (spec, spki) = t.session.public_key_spki(&t.key)?;
                    if spec != t.spec {
                        return Err(Error::new(
                            ErrorKind::Material,
                            format!("the token key is {spec}, not {}", t.spec),
                        ));
                    }
                    Ok(Some(spki))
                }
                _ => Ok(None),
            },
        }
    }

    /// The MAC of `message` with HMAC material (computed in the token for a token key).
    pub fn mac(&self, algorithm: MacAlgorithmSpec, message: &[u8]) -> Result<Vec<u8>> {
        if MaterialKind::of(self.key_spec())? != MaterialKind::Hmac {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("{} material has no MAC", self.key_spec()),
            ));
        }
        match self {
            Self::File(f) => Ok(keyferry_crypto::mac::generate(
                algorithm,
                &f.material,
                message,
            )),
            Self::Token(t) => t.session.hmac(algorithm, t.key.handle, message),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use keyferry_crypto::wrap::{WrappingKeyPair, unwrap};

    fn sha1_only() -> TokenCapabilities {
        TokenCapabilities {
            oaep_sha256: false,
            oaep_wraps_private_keys: false,
            ..TokenCapabilities::software()
        }
    }

    #[test]
    fn strongest_choice_in_software() {
        let caps = TokenCapabilities::software();
        for (spec, alg) in [
            (
                KeySpec::SYMMETRIC_DEFAULT,
                AlgorithmSpec::RSAES_OAEP_SHA_256,
            ),
            (KeySpec::HMAC_384, AlgorithmSpec::RSAES_OAEP_SHA_256),
            (KeySpec::ECC_NIST_P521, AlgorithmSpec::RSAES_OAEP_SHA_256),
            (KeySpec::RSA_3072, AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256),
        ] {
            let c = choose_wrapping(spec, &caps).unwrap();
            assert_eq!(
                (c.algorithm, c.wrapping_key_spec),
                (alg, WrappingKeySpec::RSA_4096),
                "{spec}"
            );
            assert!(c.notes.is_empty());
            check_wrapping(spec, c.algorithm, c.wrapping_key_spec, &caps).unwrap();
        }
        assert_eq!(
            choose_wrapping(KeySpec::ML_DSA_44, &caps)
                .unwrap_err()
                .kind(),
            ErrorKind::Unsupported
        );
    }

    #[test]
    fn sha1_only_token_falls_back_with_a_note() {
        let caps = sha1_only();
        let c = choose_wrapping(KeySpec::SYMMETRIC_DEFAULT, &caps).unwrap();
        assert_eq!(c.algorithm, AlgorithmSpec::RSAES_OAEP_SHA_1);
        assert!(c.notes[0].contains("SHA-1"));
        let c = choose_wrapping(KeySpec::ECC_NIST_P256, &caps).unwrap();
        assert_eq!(c.algorithm, AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_1);
        assert_eq!(c.notes.len(), 2);
        let c = choose_wrapping(KeySpec::RSA_2048, &caps).unwrap();
        assert_eq!(c.algorithm, AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_1);
        let e = check_wrapping(
            KeySpec::HMAC_256,
            AlgorithmSpec::RSAES_OAEP_SHA_256,
            WrappingKeySpec::RSA_4096,
            &caps,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MechanismMissing);
        assert!(e.message().contains("RSAES_OAEP_SHA_1"), "{e}");
        let none = TokenCapabilities {
            oaep_sha1: false,
            ..caps
        };
        assert_eq!(
            choose_wrapping(KeySpec::HMAC_256, &none)
                .unwrap_err()
                .kind(),
            ErrorKind::MechanismMissing
        );
    }

    #[test]
    fn invalid_combinations_are_refused() {
        let caps = TokenCapabilities::software();
        let bad = [
            (
                KeySpec::RSA_2048,
                AlgorithmSpec::RSAES_OAEP_SHA_256,
                WrappingKeySpec::RSA_4096,
            ),
            (
                KeySpec::ECC_NIST_P521,
                AlgorithmSpec::RSAES_OAEP_SHA_256,
                WrappingKeySpec::RSA_2048,
            ),
            (
                KeySpec::ECC_NIST_P521,
                AlgorithmSpec::RSAES_OAEP_SHA_1,
                WrappingKeySpec::RSA_2048,
            ),
            (
                KeySpec::SYMMETRIC_DEFAULT,
                AlgorithmSpec::RSAES_PKCS1_V1_5,
                WrappingKeySpec::RSA_2048,
            ),
            (
                KeySpec::SYMMETRIC_DEFAULT,
                AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256,
                WrappingKeySpec::RSA_2048,
            ),
            (
                KeySpec::SYMMETRIC_DEFAULT,
                AlgorithmSpec::SM2PKE,
                WrappingKeySpec::SM2,
            ),
        ];
        for (s, a, w) in bad {
            assert_eq!(
                check_wrapping(s, a, w, &caps).unwrap_err().kind(),
                ErrorKind::Unsupported,
                "{s} {a} {w}"
            );
        }
        check_wrapping(
            KeySpec::ECC_NIST_P521,
            AlgorithmSpec::RSAES_OAEP_SHA_256,
            WrappingKeySpec::RSA_3072,
            &caps,
        )
        .unwrap();
        check_wrapping(
            KeySpec::ECC_NIST_P521,
            AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_1,
            WrappingKeySpec::RSA_2048,
            &caps,
        )
        .unwrap();
    }

    #[test]
    fn hex_and_base64_text_is_refused_where_raw_bytes_are_expected() {
        let hex = format!("{}\n", "a1".repeat(32));
        let e =
            FileSource::from_bytes(hex.as_bytes(), Some(KeySpec::HMAC_256), "k.hex").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Material);
        assert!(
            e.message().contains("hex text")
                && e.message().contains("65 characters encoding 32 bytes")
                && e.message().contains("xxd -r -p k.hex"),
            "{e}"
        );
        let e = FileSource::from_bytes(hex.as_bytes(), None, "k.hex").unwrap_err();
        assert!(e.message().contains("openssl rand -hex 32"), "{e}");
        let b64 = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n";
        let e = FileSource::from_bytes(b64.as_bytes(), None, "k.b64").unwrap_err();
        assert!(
            e.message().contains("base64 text") && e.message().contains("base64 -d k.b64"),
            "{e}"
        );
        // Raw random bytes are not text.
        let raw: Vec<u8> = (0u8..32)
            .map(|i| i.wrapping_mul(37).wrapping_add(200))
            .collect();
        assert!(text_encoded(&raw).is_none());
        FileSource::from_bytes(&raw, None, "k.bin").unwrap();
    }

    #[test]
    fn ec_on_a_token_that_cannot_oaep_wrap_private_keys_gets_the_right_advice_first() {
        // SoftHSM2 2.6: OAEP with SHA-1 only, and only for secret keys.
        let caps = sha1_only();
        for alg in [
            AlgorithmSpec::RSAES_OAEP_SHA_256,
            AlgorithmSpec::RSAES_OAEP_SHA_1,
        ] {
            let e = check_wrapping(
                KeySpec::ECC_NIST_P256,
                alg,
                WrappingKeySpec::RSA_4096,
                &caps,
            )
            .unwrap_err();
            assert!(e.message().contains("RSA_AES_KEY_WRAP_SHA_1"), "{alg}: {e}");
            assert!(!e.message().contains("use RSAES_OAEP_SHA_1"), "{alg}: {e}");
        }
    }

    #[test]
    fn file_sources_infer_and_wrap() {
        let wk = WrappingKeyPair::generate(WrappingKeySpec::RSA_2048).unwrap();
        let aes = [7u8; 32];
        let src = Source::from(FileSource::from_bytes(&aes, None, "aes.bin").unwrap());
        assert_eq!(src.key_spec(), KeySpec::SYMMETRIC_DEFAULT);
        assert_eq!(src.notes().len(), 1);
        let c = src.choose_wrapping().unwrap();
        // The test key is RSA_2048; the wrap follows the key given, not the choice's size.
        let wrapped = src.wrap(c.algorithm, &wk.public_key_der()).unwrap();
        assert_eq!(&unwrap(c.algorithm, &wk, &wrapped).unwrap()[..], &aes);
        assert!(format!("{src:?}").contains("<redacted>"));
        assert!(!format!("{src:?}").contains("7, 7"));

        let e = FileSource::from_bytes(&[1u8; 48], None, "h.bin").unwrap_err();
        assert!(
            e.message().contains("--key-spec") && e.message().contains("HMAC_384"),
            "{e}"
        );
        let h = Source::from(
            FileSource::from_bytes(&[1u8; 48], Some(KeySpec::HMAC_384), "h.bin").unwrap(),
        );
        let mac = h.mac(MacAlgorithmSpec::HMAC_SHA_384, b"m").unwrap();
        assert_eq!(
            mac,
            keyferry_crypto::mac::generate(MacAlgorithmSpec::HMAC_SHA_384, &[1u8; 48], b"m")
        );
        let e = FileSource::from_bytes(&[1u8; 20], Some(KeySpec::HMAC_256), "h.bin").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Material);
        let e = FileSource::from_bytes(&[1u8; 31], Some(KeySpec::SYMMETRIC_DEFAULT), "a.bin")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Material);

        let pkcs8 = keyferry_crypto::material::generate(KeySpec::ECC_NIST_P384).unwrap();
        let ec = Source::from(FileSource::from_bytes(&pkcs8, None, "ec.der").unwrap());
        assert_eq!(ec.key_spec(), KeySpec::ECC_NIST_P384);
        let alg = ec.choose_wrapping().unwrap().algorithm;
        let wrapped = ec.wrap(alg, &wk.public_key_der()).unwrap();
        let back = unwrap(alg, &wk, &wrapped).unwrap();
        assert_eq!(
            keyferry_crypto::keyfile::public_key_of(KeySpec::ECC_NIST_P384, &back).unwrap(),
            ec.public_key().unwrap().unwrap()
        );
        let e = FileSource::from_bytes(&pkcs8, Some(KeySpec::ECC_NIST_P256), "ec.der").unwrap_err();
        assert!(
            e.message().contains("ECC_NIST_P384") && e.message().contains("ECC_NIST_P256"),
            "{e}"
        );
        let e = FileSource::from_bytes(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            None,
            "k.pem",
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Material);
        let e = FileSource::from_bytes(
            b"-----BEGIN PRIVATE KEY-----\n",
            Some(KeySpec::SYMMETRIC_DEFAULT),
            "k.pem",
        )
        .unwrap_err();
        assert!(e.message().contains("raw bytes"), "{e}");
    }
}
