//! The root key in an HSM (`--root-key-pkcs11 URI`): the token holds a non-extractable,
//! sensitive AES-256 key; the server's working root key (32 random bytes, the same `RootKey`
//! as with `--root-key-file`) is kept in `<data>/root.key.hsm` encrypted under it with
//! CKM_AES_GCM inside the token, and decrypted in the token at every start. The HSM key never
//! leaves the token; the working key lives only in memory (zeroized on drop).
//!
//! `root.key.hsm` (mode 0600, 68 bytes):
//! `"KFHSMRK1"` (8) ‖ IV (12, from the token's RNG) ‖ AES-256-GCM ciphertext of the working key
//! (32) ‖ tag (16), with the additional data `"keyferry root.key.hsm v1"`.
//!
//! The PKCS#11 layer (RFC 7512 URI, module loading, token selection, login, PIN from the URI's
//! `pin-source`/`pin-value` or `KEYFERRY_PKCS11_PIN`) is the import client's
//! (`keyferry_byok::{uri, pkcs11}`), so both sides take the same URIs and say the same things
//! about a wrong PIN or a missing token.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{KeyType, ObjectClass};
use keyferry_byok::pkcs11::{ObjectQuery, TokenSession};
use keyferry_byok::uri::{Pkcs11Uri, resolve_pin};
use keyferry_crypto::seal::RootKey;
use zeroize::Zeroizing;

/// The file in the data directory holding the working root key sealed by the HSM key.
pub const SEALED_FILE: &str = "root.key.hsm";
/// The module used when the URI has no `module-path` (as `keyferry import` does).
pub const MODULE_ENV: &str = "KEYFERRY_PKCS11_MODULE";

const MAGIC: &[u8; 8] = b"KFHSMRK1";
const AAD: &[u8] = b"keyferry root.key.hsm v1";
const IV_LEN: usize = 12;
const TAG_BITS: u64 = 128;
const FILE_LEN: usize = MAGIC.len() + IV_LEN + RootKey::LEN + 16;

/// The command that creates a suitable key (shown in messages and the README).
pub const KEYGEN_HINT: &str = "pkcs11-tool --module MODULE --token-label TOKEN --login --keygen --key-type AES:32 --label keyferry-root --sensitive --usage-decrypt (without --extractable)";

/// A `--root-key-pkcs11` URI; `Debug` hides a `pin-value`.
#[derive(Clone)]
pub struct RootKeyUri(pub String);

impl fmt::Debug for RootKeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Pkcs11Uri::parse(&self.0) {
            Ok(u) => f.write_str(&u.redacted()),
            Err(_) => f.write_str("<unparsable PKCS#11 URI>"),
        }
    }
}

/// The HSM key, found and checked, in a logged-in session.
pub struct HsmRoot {
    token: TokenSession,
    key: cryptoki::object::ObjectHandle,
    /// The URI without any PIN, for messages.
    pub shown: String,
}

impl HsmRoot {
    /// Parse the URI, load the module, log in to the token and find the key; refuse a key
    /// that is not a sensitive, non-extractable AES-256 secret key.
    pub fn open(uri: &RootKeyUri) -> anyhow::Result<HsmRoot> {
        let parsed =
            Pkcs11Uri::parse(&uri.0).map_err(|e| anyhow::anyhow!("--root-key-pkcs11: {e}"))?;
        let shown = parsed.redacted();
        if parsed.object.is_none() && parsed.id.is_none() {
            bail!(
                "--root-key-pkcs11 {shown}: name the root key with object=LABEL or id=%XX in the URI"
            );
        }
        let named = parsed
            .module()
            .map_err(|e| anyhow::anyhow!("--root-key-pkcs11 {shown}: {e}"))?;
        let module: PathBuf = match named {
            Some(m) => m,
            None => match std::env::var_os(MODULE_ENV) {
                Some(m) if !m.is_empty() => PathBuf::from(m),
                _ => bail!(
                    "--root-key-pkcs11 {shown}: no PKCS#11 module; add module-path=/path/to/module.so (or module-name=NAME) to the URI or set {MODULE_ENV}"
                ),
            },
        };
        let (pin, _) =
            resolve_pin(&parsed).map_err(|e| anyhow::anyhow!("--root-key-pkcs11 {shown}: {e}"))?;
        let token = TokenSession::open(&module, &parsed, &pin)
            .map_err(|e| anyhow::anyhow!("--root-key-pkcs11 {shown}: {e}"))?;
        let mut query = ObjectQuery::from_uri(&parsed);
        query.class = Some(ObjectClass::SECRET_KEY);
        let obj = token
            .find_key(&query)
            .map_err(|e| anyhow::anyhow!("--root-key-pkcs11 {shown}: {e}"))?;
        if obj.key_type != Some(KeyType::AES) || obj.value_len != Some(32) {
            bail!(
                "--root-key-pkcs11 {shown}: the {} is not an AES-256 key; create one with `{KEYGEN_HINT}`",
                obj.describe()
            );
        }
        if obj.extractable != Some(false) || obj.sensitive != Some(true) {
            bail!(
                "--root-key-pkcs11 {shown}: the {} can leave the token (CKA_EXTRACTABLE={}, CKA_SENSITIVE={}), so the HSM would not protect the root key; create a sensitive, non-extractable key with `{KEYGEN_HINT}` and use its label",
                obj.describe(),
                show_bool(obj.extractable),
                show_bool(obj.sensitive)
            );
        }
        Ok(HsmRoot {
            token,
            key: obj.handle,
            shown,
        })
    }

    fn seal(&self, plain: &[u8]) -> anyhow::Result<Vec<u8>> {
        let session = self.token.session();
        let mut iv = session
            .generate_random_vec(IV_LEN as u32)
            .map_err(|e| anyhow::anyhow!("the token's C_GenerateRandom failed: {e}"))?;
        let ct = {
            let params = GcmParams::new(&mut iv, AAD, TAG_BITS.into())
                .map_err(|e| anyhow::anyhow!("AES-GCM parameters: {e}"))?;
            session
                .encrypt(&Mechanism::AesGcm(params), self.key, plain)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "the token refused to encrypt with the root key ({e}); the key needs CKA_ENCRYPT and CKA_DECRYPT (pkcs11-tool --usage-decrypt) and the token CKM_AES_GCM"
                    )
                })?
        };
        let mut out = Vec::with_capacity(FILE_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&iv);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn unseal(&self, file: &Path, sealed: &[u8]) -> anyhow::Result<RootKey> {
        let plain = self.unseal_bytes(file, sealed)?;
        RootKey::from_bytes(&plain)
            .map_err(|_| anyhow::anyhow!("{} holds no 32-byte root key", file.display()))
    }

    fn unseal_bytes(&self, file: &Path, sealed: &[u8]) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        if sealed.len() != FILE_LEN || &sealed[..MAGIC.len()] != MAGIC {
            bail!(
                "{} is not a Keyferry HSM-sealed root key (expected {FILE_LEN} bytes starting with KFHSMRK1); restore it from backup",
                file.display()
            );
        }
        let mut iv = sealed[MAGIC.len()..MAGIC.len() + IV_LEN].to_vec();
        let ct = &sealed[MAGIC.len() + IV_LEN..];
        let params = GcmParams::new(&mut iv, AAD, TAG_BITS.into())
            .map_err(|e| anyhow::anyhow!("AES-GCM parameters: {e}"))?;
        let plain = Zeroizing::new(
            self.token
                .session()
                .decrypt(&Mechanism::AesGcm(params), self.key, ct)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "the HSM key {} does not open {} (the token answered {}): it was sealed by another HSM key. Start with the URI of the key that created it, or restore the {} that belongs to this key",
                        self.shown,
                        file.display(),
                        short(&e),
                        SEALED_FILE
                    )
                })?,
        );
        Ok(plain)
    }
}

/// A PKCS#11 error as its return value (`CKR_…` in cryptoki's spelling), without cryptoki's
/// long description.
fn short(e: &cryptoki::error::Error) -> String {
    match e {
        cryptoki::error::Error::Pkcs11(rv, _) => format!("{rv:?}"),
        other => other.to_string(),
    }
}

fn show_bool(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "true",
        Some(false) => "false",
        None => "unknown",
    }
}

/// Open `<data>/root.key.hsm` with the HSM key. `Ok(None)`: the file does not exist (the caller
/// decides whether a new one may be created).
pub fn load(hsm: &HsmRoot, data_dir: &Path) -> anyhow::Result<Option<RootKey>> {
    let path = data_dir.join(SEALED_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => hsm.unseal(&path, &bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The raw working root key in the sealed file `path` (e.g. a backup's copy), opened by the
/// HSM key; `Ok(None)`: the file does not exist.
pub fn load_bytes(hsm: &HsmRoot, path: &Path) -> anyhow::Result<Option<Zeroizing<Vec<u8>>>> {
    match std::fs::read(path) {
        Ok(bytes) => hsm.unseal_bytes(path, &bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Create a new working root key, seal it with the HSM key and write `<data>/root.key.hsm`
/// (mode 0600, never overwriting one).
pub fn create(hsm: &HsmRoot, data_dir: &Path) -> anyhow::Result<RootKey> {
    create_at(hsm, &data_dir.join(SEALED_FILE))
}

/// Create a new working root key sealed by the HSM key in the new file `path` (0600).
pub fn create_at(hsm: &HsmRoot, path: &Path) -> anyhow::Result<RootKey> {
    let path = path.to_path_buf();
    let fresh = RootKey::generate();
    let sealed = hsm.seal(&fresh)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(&sealed)?;
    f.sync_all()?;
    // The working key must open again before anything is sealed under it.
    let again = hsm.unseal_bytes(&path, &sealed)?;
    if again.as_slice() != fresh.as_slice() {
        bail!("the token did not give back the root key it sealed");
    }
    RootKey::from_bytes(&fresh).map_err(|_| anyhow::anyhow!("root key generation failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_a_pin_value() {
        let uri = RootKeyUri(
            "pkcs11:token=t;object=keyferry-root?module-path=/m.so&pin-value=123456".into(),
        );
        let shown = format!("{uri:?}");
        assert!(!shown.contains("123456"), "{shown}");
        assert!(shown.contains("pin-value=<redacted>"), "{shown}");
        assert!(shown.contains("object=keyferry-root"), "{shown}");
        let bad = format!("{:?}", RootKeyUri("token=t;pin-value=123456".into()));
        assert!(!bad.contains("123456"), "{bad}");
    }
}
