//! Offline (air-gapped) import files, in the shapes the AWS console and CLI produce:
//!
//! - `ImportParameters.zip` as the console downloads it: `wrappingKey_<keyid>_<MMDDHHmm>` (the
//!   wrapping public key, DER SubjectPublicKeyInfo), `importToken_<keyid>_<MMDDHHmm>` (the opaque
//!   import token) and `README_<keyid>_<MMDDHHmm>.txt`;
//! - or the two files separately, raw (DER / binary) or as the base64 text that
//!   `aws kms get-parameters-for-import --query PublicKey --output text` writes (a PEM public key is
//!   accepted too, since the manual procedures convert it);
//! - `EncryptedKeyMaterial.bin`: the wrapped material, raw bytes, as `import-key-material
//!   --encrypted-key-material fileb://EncryptedKeyMaterial.bin` expects.

use std::io::{Cursor, Read, Write};
use std::path::Path;

use base64::Engine;
use keyferry_types::{AlgorithmSpec, WrappingKeySpec};
use time::OffsetDateTime;

use crate::error::{Error, ErrorKind, Result};

/// The file name the console and the AWS documentation use for wrapped material.
pub const ENCRYPTED_KEY_MATERIAL_FILE: &str = "EncryptedKeyMaterial.bin";
/// The file name the console uses for the downloaded parameters.
pub const IMPORT_PARAMETERS_ZIP: &str = "ImportParameters.zip";

/// Largest file read as a wrapping key, import token or zip (far above real sizes).
const MAX_FILE: u64 = 1 << 20;

/// A wrapping public key and import token, with what the file names said about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportParameters {
    /// The KMS key id the parameters belong to, when known (from the zip's file names).
    pub key_id: Option<String>,
    /// The `MMDDHHmm` stamp of the zip's file names, when known.
    pub stamp: Option<String>,
    /// The wrapping public key, DER SubjectPublicKeyInfo.
    pub wrapping_public_key: Vec<u8>,
    /// The opaque import token.
    pub import_token: Vec<u8>,
}

impl ImportParameters {
    /// Parameters from a wrapping key and an import token (checks that the key is RSA).
    pub fn new(wrapping_public_key: Vec<u8>, import_token: Vec<u8>) -> Result<Self> {
        let p = Self {
            key_id: None,
            stamp: None,
            wrapping_public_key,
            import_token,
        };
        p.wrapping_key_spec()?;
        if p.import_token.is_empty() {
            return Err(Error::new(ErrorKind::Io, "the import token is empty"));
        }
        Ok(p)
    }

    /// The RSA size of the wrapping key.
    pub fn wrapping_key_spec(&self) -> Result<WrappingKeySpec> {
        let len = keyferry_crypto::wrap::rsa_public_key_len(&self.wrapping_public_key).map_err(|_| {
            Error::new(
                ErrorKind::Io,
                "the wrapping key is not an RSA public key (DER SubjectPublicKeyInfo, base64 of it, or PEM)",
            )
        })?;
        match len {
            256 => Ok(WrappingKeySpec::RSA_2048),
            384 => Ok(WrappingKeySpec::RSA_3072),
            512 => Ok(WrappingKeySpec::RSA_4096),
            other => Err(Error::new(
                ErrorKind::Io,
                format!(
                    "the wrapping key is a {}-bit RSA key; KMS issues 2048, 3072 or 4096-bit wrapping keys",
                    other * 8
                ),
            )),
        }
    }

    /// Read an `ImportParameters.zip`.
    pub fn read_zip(path: &Path) -> Result<Self> {
        let bytes = read_limited(path, "read the import parameters zip")?;
        Self::from_zip_bytes(&bytes)
            .map_err(|e| Error::new(e.kind(), format!("{}: {}", path.display(), e.message())))
    }

    /// Parse the bytes of an `ImportParameters.zip`.
    pub fn from_zip_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |m: String| Error::new(ErrorKind::Io, m);
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
            bad(format!(
                "not a zip file ({e}); expected the console's ImportParameters.zip"
            ))
        })?;
        let mut wrapping: Option<(String, Vec<u8>)> = None;
        let mut token: Option<(String, Vec<u8>)> = None;
        for i in 0..zip.len() {
            let mut entry = zip
                .by_index(i)
                .map_err(|e| bad(format!("cannot read the zip entry #{i}: {e}")))?;
            if entry.is_dir() {
                continue;
            }
            let full = entry.name().to_string();
            let base = full.rsplit('/').next().unwrap_or(&full).to_string();
            let slot = if base.starts_with("wrappingKey_") {
                &mut wrapping
            } else if base.starts_with("importToken_") {
                &mut token
            } else {
                continue;
            };
            if slot.is_some() {
                return Err(bad(format!(
                    "the zip holds more than one {} file; unzip it and give --wrapping-key and --import-token",
                    base.split('_').next().unwrap_or(&base)
                )));
            }
            let mut data = Vec::new();
            (&mut entry)
                .take(MAX_FILE)
                .read_to_end(&mut data)
                .map_err(|e| bad(format!("cannot read {full} from the zip: {e}")))?;
            *slot = Some((base, data));
        }
        let (wname, wdata) = wrapping
            .ok_or_else(|| bad("the zip has no wrappingKey_… file; is it the ImportParameters.zip from the console?".into()))?;
        let (tname, tdata) = token
            .ok_or_else(|| bad("the zip has no importToken_… file; is it the ImportParameters.zip from the console?".into()))?;
        let (key_id, stamp) = split_name(&wname, "wrappingKey_");
        if let (Some(k), (Some(k2), _)) = (&key_id, split_name(&tname, "importToken_"))
            && k != &k2
        {
            return Err(bad(format!(
                "the zip's wrapping key ({wname}) and import token ({tname}) belong to different keys"
            )));
        }
        let mut p = Self::new(decode_key_file(&wdata)?, decode_blob(&tdata))?;
        p.key_id = key_id;
        p.stamp = stamp;
        Ok(p)
    }

    /// Read a separate wrapping key file and import token file (raw, or base64 text).
    pub fn read_files(wrapping_key: &Path, import_token: &Path) -> Result<Self> {
        let w = read_limited(wrapping_key, "read the wrapping key file")?;
        let t = read_limited(import_token, "read the import token file")?;
        let key = decode_key_file(&w).map_err(|e| {
            Error::new(
                e.kind(),
                format!("{}: {}", wrapping_key.display(), e.message()),
            )
        })?;
        let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        let mut params = Self::new(key, decode_blob(&t))?;
        if let Some(n) = name(wrapping_key) {
            let (k, s) = split_name(&n, "wrappingKey_");
            params.key_id = k;
            params.stamp = s;
        }
        Ok(params)
    }

    /// Write a zip in the console's shape. `key_id` may be a key ARN; the file names use the key
    /// id. `valid_to` and `algorithm` go into the README.
    pub fn write_zip(
        &self,
        path: &Path,
        key_id: &str,
        algorithm: AlgorithmSpec,
        valid_to: Option<OffsetDateTime>,
    ) -> Result<()> {
        let id = key_id.rsplit_once(":key/").map_or(key_id, |(_, id)| id);
        let now = OffsetDateTime::now_utc();
        // MMDDHHmm, as in the console's downloads (e.g. `wrappingKey_<id>_03151209`).
        let stamp = format!(
            "{:02}{:02}{:02}{:02}",
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute()
        );
        let spec = self.wrapping_key_spec()?;
        let valid = valid_to
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| "24 hours after they were issued".to_string());
        let readme = format!(
            "Import parameters for KMS key {key_id}\n\n\
             wrappingKey_{id}_{stamp}: the wrapping public key ({spec}), DER-encoded X.509 SubjectPublicKeyInfo.\n\
             importToken_{id}_{stamp}: the import token; upload it with the wrapped key material.\n\n\
             Wrapping algorithm: {algorithm}\n\
             Valid until: {valid}\n\n\
             Wrap the key material with the wrapping key and the algorithm above (e.g.\n\
             `keyferry import wrap --parameters ImportParameters.zip ...` writes EncryptedKeyMaterial.bin),\n\
             then import EncryptedKeyMaterial.bin together with the import token before the parameters expire.\n"
        );
        let mut buf = Cursor::new(Vec::new());
        {
            let mut zip = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            let entries: [(String, &[u8]); 3] = [
                (
                    format!("wrappingKey_{id}_{stamp}"),
                    &self.wrapping_public_key,
                ),
                (format!("importToken_{id}_{stamp}"), &self.import_token),
                (format!("README_{id}_{stamp}.txt"), readme.as_bytes()),
            ];
            for (name, data) in entries {
                zip.start_file(name.as_str(), opts)
                    .and_then(|()| zip.write_all(data).map_err(Into::into))
                    .map_err(|e| Error::new(ErrorKind::Io, format!("cannot build the zip: {e}")))?;
            }
            zip.finish()
                .map_err(|e| Error::new(ErrorKind::Io, format!("cannot build the zip: {e}")))?;
        }
        std::fs::write(path, buf.into_inner()).map_err(|e| Error::io("write", path, e))
    }
}

/// The wrapping algorithm a `README_…txt` in the zip names (`Wrapping algorithm: X`), as the
/// zips Keyferry writes have it; None for zips without one (e.g. the console's).
pub fn zip_wrapping_algorithm(path: &Path) -> Option<AlgorithmSpec> {
    let bytes = read_limited(path, "read the import parameters zip").ok()?;
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).ok()?;
        let base = entry.name().rsplit('/').next().unwrap_or("").to_string();
        if !base.starts_with("README_") {
            continue;
        }
        let mut text = String::new();
        (&mut entry).take(MAX_FILE).read_to_string(&mut text).ok()?;
        return text.lines().find_map(|l| {
            l.strip_prefix("Wrapping algorithm: ")
                .and_then(|a| a.trim().parse().ok())
        });
    }
    None
}

/// When the parameters in a zip expire, from its README's `Valid until: TIME` line (Keyferry's
/// zips have one); None when the zip does not say.
pub fn zip_valid_until(path: &Path) -> Option<OffsetDateTime> {
    let bytes = read_limited(path, "read the import parameters zip").ok()?;
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).ok()?;
        let base = entry.name().rsplit('/').next().unwrap_or("").to_string();
        if !base.starts_with("README_") {
            continue;
        }
        let mut text = String::new();
        (&mut entry).take(MAX_FILE).read_to_string(&mut text).ok()?;
        return text.lines().find_map(|l| {
            l.strip_prefix("Valid until: ").and_then(|t| {
                OffsetDateTime::parse(t.trim(), &time::format_description::well_known::Rfc3339).ok()
            })
        });
    }
    None
}

/// Write wrapped key material (raw bytes) to `path`, typically `EncryptedKeyMaterial.bin`.
pub fn write_encrypted_key_material(path: &Path, wrapped: &[u8]) -> Result<()> {
    std::fs::write(path, wrapped).map_err(|e| Error::io("write", path, e))
}

fn read_limited(path: &Path, what: &str) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(what, path, e))?;
    let mut data = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::io(what, path, e))?;
    if data.len() as u64 > MAX_FILE {
        return Err(Error::new(
            ErrorKind::Io,
            format!("{} is too large to be {what}", path.display()),
        ));
    }
    Ok(data)
}

fn split_name(name: &str, prefix: &str) -> (Option<String>, Option<String>) {
    let Some(rest) = name.strip_prefix(prefix) else {
        return (None, None);
    };
    let rest = rest.strip_suffix(".txt").unwrap_or(rest);
    match rest.rsplit_once('_') {
        Some((id, stamp))
            if (stamp.len() == 8 || stamp.len() == 10)
                && stamp.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (Some(id.to_string()), Some(stamp.to_string()))
        }
        _ if !rest.is_empty() => (Some(rest.to_string()), None),
        _ => (None, None),
    }
}

/// A blob file: base64 text (as `--output text` writes it) is decoded, anything else is raw.
pub fn decode_blob(data: &[u8]) -> Vec<u8> {
    let text: Vec<u8> = data
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let is_b64 = !text.is_empty()
        && text
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if is_b64 && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(&text) {
        return decoded;
    }
    data.to_vec()
}

/// A wrapping key file: DER, base64 of DER, or PEM `PUBLIC KEY`.
pub fn decode_key_file(data: &[u8]) -> Result<Vec<u8>> {
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(start) = text.find("-----BEGIN PUBLIC KEY-----")
    {
        let body = &text[start + "-----BEGIN PUBLIC KEY-----".len()..];
        let end = body
            .find("-----END PUBLIC KEY-----")
            .ok_or_else(|| Error::new(ErrorKind::Io, "the PEM public key has no END line"))?;
        let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
        return base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| Error::new(ErrorKind::Io, "the PEM public key is not valid base64"));
    }
    Ok(decode_blob(data))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::pkcs11::PROBE_RSA_PUBLIC_KEY;

    fn params() -> ImportParameters {
        ImportParameters::new(
            PROBE_RSA_PUBLIC_KEY.to_vec(),
            b"opaque-token\x00\x01\xff".to_vec(),
        )
        .unwrap()
    }

    #[test]
    fn zip_round_trip_in_console_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(IMPORT_PARAMETERS_ZIP);
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/90efd932-24d5-47aa-8d69-8271a9d03ae1";
        params()
            .write_zip(&path, arn, AlgorithmSpec::RSAES_OAEP_SHA_256, None)
            .unwrap();
        // The entry names are the console's.
        let mut z = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
        let mut names: Vec<String> = (0..z.len())
            .map(|i| z.by_index(i).unwrap().name().to_string())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3);
        assert!(
            names[0].starts_with("README_90efd932-24d5-47aa-8d69-8271a9d03ae1_")
                && names[0].ends_with(".txt")
        );
        assert!(names[1].starts_with("importToken_90efd932-24d5-47aa-8d69-8271a9d03ae1_"));
        assert!(names[2].starts_with("wrappingKey_90efd932-24d5-47aa-8d69-8271a9d03ae1_"));
        let back = ImportParameters::read_zip(&path).unwrap();
        assert_eq!(back.wrapping_public_key, PROBE_RSA_PUBLIC_KEY);
        assert_eq!(back.import_token, b"opaque-token\x00\x01\xff");
        assert_eq!(
            back.key_id.as_deref(),
            Some("90efd932-24d5-47aa-8d69-8271a9d03ae1")
        );
        assert_eq!(back.stamp.as_ref().map(String::len), Some(8));
        assert_eq!(back.wrapping_key_spec().unwrap(), WrappingKeySpec::RSA_2048);
    }

    #[test]
    fn zip_with_folder_and_foreign_files() {
        let mut buf = Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            let o = zip::write::SimpleFileOptions::default();
            z.add_directory("ImportParameters/", o).unwrap();
            z.start_file("ImportParameters/wrappingKey_k1_03041220", o)
                .unwrap();
            z.write_all(PROBE_RSA_PUBLIC_KEY).unwrap();
            z.start_file("ImportParameters/importToken_k1_03041220", o)
                .unwrap();
            z.write_all(b"tok").unwrap();
            z.start_file("__MACOSX/._x", o).unwrap();
            z.finish().unwrap();
        }
        let p = ImportParameters::from_zip_bytes(buf.get_ref()).unwrap();
        assert_eq!(p.key_id.as_deref(), Some("k1"));
        assert_eq!(p.stamp.as_deref(), Some("03041220"));
    }

    #[test]
    fn zip_errors() {
        assert_eq!(
            ImportParameters::from_zip_bytes(b"not a zip")
                .unwrap_err()
                .kind(),
            ErrorKind::Io
        );
        let mut buf = Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            let o = zip::write::SimpleFileOptions::default();
            z.start_file("wrappingKey_a_0304122000", o).unwrap();
            z.write_all(PROBE_RSA_PUBLIC_KEY).unwrap();
            z.finish().unwrap();
        }
        let e = ImportParameters::from_zip_bytes(buf.get_ref()).unwrap_err();
        assert!(e.message().contains("importToken"), "{e}");
        let mut buf = Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            let o = zip::write::SimpleFileOptions::default();
            z.start_file("wrappingKey_a_0304122000", o).unwrap();
            z.write_all(PROBE_RSA_PUBLIC_KEY).unwrap();
            z.start_file("importToken_b_0304122000", o).unwrap();
            z.write_all(b"t").unwrap();
            z.finish().unwrap();
        }
        let e = ImportParameters::from_zip_bytes(buf.get_ref()).unwrap_err();
        assert!(e.message().contains("different keys"), "{e}");
        let e = ImportParameters::new(b"\x30\x03\x02\x01\x01".to_vec(), b"t".to_vec()).unwrap_err();
        assert!(e.message().contains("not an RSA public key"), "{e}");
    }

    #[test]
    fn separate_files_raw_base64_and_pem() {
        let dir = tempfile::tempdir().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let token = vec![7u8, 0, 200, 13, 10, 32, 255];
        let w = dir.path().join("wrappingKey_abc_1123160600");
        let t = dir.path().join("token.b64");
        // CLI `--output text` style: base64 and a newline.
        std::fs::write(&w, format!("{}\n", b64.encode(PROBE_RSA_PUBLIC_KEY))).unwrap();
        std::fs::write(&t, format!("{}\n", b64.encode(&token))).unwrap();
        let p = ImportParameters::read_files(&w, &t).unwrap();
        assert_eq!(p.wrapping_public_key, PROBE_RSA_PUBLIC_KEY);
        assert_eq!(p.import_token, token);
        assert_eq!(p.key_id.as_deref(), Some("abc"));
        // Raw DER and raw binary token.
        std::fs::write(&w, PROBE_RSA_PUBLIC_KEY).unwrap();
        std::fs::write(&t, &token).unwrap();
        let p = ImportParameters::read_files(&w, &t).unwrap();
        assert_eq!(p.wrapping_public_key, PROBE_RSA_PUBLIC_KEY);
        assert_eq!(p.import_token, token);
        // PEM, as the manual procedures produce with openssl.
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            b64.encode(PROBE_RSA_PUBLIC_KEY)
        );
        std::fs::write(&w, pem).unwrap();
        assert_eq!(
            ImportParameters::read_files(&w, &t)
                .unwrap()
                .wrapping_public_key,
            PROBE_RSA_PUBLIC_KEY
        );
        let missing = dir.path().join("nope");
        assert_eq!(
            ImportParameters::read_files(&missing, &t)
                .unwrap_err()
                .kind(),
            ErrorKind::Io
        );
    }

    #[test]
    fn writes_encrypted_key_material() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(ENCRYPTED_KEY_MATERIAL_FILE);
        write_encrypted_key_material(&p, &[1, 2, 3]).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), [1, 2, 3]);
    }
}
