//! Vendor HSM profiles as data (`profiles/vendors.json`, embedded at build time): where each
//! vendor's PKCS#11 module lives and which mechanism quirks it has (e.g. CloudHSM's RFC 5649 wrap
//! is the vendor mechanism CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD). Only SoftHSM2 is tested here.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::pkcs11::KwpMechanism;

const VENDORS_JSON: &str = include_str!("../profiles/vendors.json");

/// One vendor profile.
#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    /// Name used with `--hsm-profile`.
    pub name: String,
    /// Human name.
    pub display_name: String,
    /// Candidate module paths, most common first.
    pub module_paths: Vec<String>,
    /// The RFC 5649 key wrap mechanism, as a number (`0x210A`, `0x8000216F`).
    pub kwp_mechanism: String,
    /// The PKCS#11 name of that mechanism.
    pub kwp_mechanism_name: String,
    /// Whether RSA-OAEP wrapping with SHA-256 is expected to work (`None`: unknown).
    pub oaep_sha256: Option<bool>,
    /// Whether RSA-OAEP can wrap private keys (`None`: unknown; the probe decides).
    pub oaep_wraps_private_keys: Option<bool>,
    /// Whether this profile is exercised by this project's tests.
    pub tested: bool,
    /// Whether the mechanism ids were checked against vendor documentation or headers.
    pub verified: bool,
    /// Quirks and setup hints.
    pub notes: String,
}

#[derive(Deserialize)]
struct ProfileFile {
    profiles: Vec<Profile>,
}

/// All embedded profiles.
pub fn all() -> Result<Vec<Profile>> {
    let f: ProfileFile = serde_json::from_str(VENDORS_JSON).map_err(|e| {
        Error::new(
            crate::ErrorKind::Internal,
            format!("embedded vendor profiles are malformed: {e}"),
        )
    })?;
    Ok(f.profiles)
}

/// The profile called `name` (case-insensitive).
pub fn by_name(name: &str) -> Result<Profile> {
    let all = all()?;
    let names: Vec<String> = all.iter().map(|p| p.name.clone()).collect();
    all.into_iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            Error::usage(format!(
                "unknown HSM profile \"{name}\"; known profiles: {}",
                names.join(", ")
            ))
        })
}

impl Profile {
    /// The first candidate module path that exists, else the first candidate.
    pub fn module_path(&self) -> Option<PathBuf> {
        self.module_paths
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .or_else(|| self.module_paths.first().map(PathBuf::from))
    }

    /// The RFC 5649 wrap mechanism to use with this vendor.
    pub fn kwp(&self) -> Result<KwpMechanism> {
        KwpMechanism::parse(&self.kwp_mechanism)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn embedded_profiles_parse_and_are_consistent() {
        let all = all().unwrap();
        for name in ["softhsm2", "luna", "dpod", "cloudhsm", "yubihsm2"] {
            let p = by_name(name).unwrap();
            assert!(!p.module_paths.is_empty(), "{name}");
            p.kwp().unwrap();
        }
        assert_eq!(all.iter().filter(|p| p.tested).count(), 1);
        assert_eq!(by_name("CloudHSM").unwrap().kwp().unwrap().value(), 0x8000_216F);
        assert_eq!(by_name("luna").unwrap().kwp().unwrap().value(), 0x8000_0171);
        assert_eq!(by_name("softhsm2").unwrap().kwp().unwrap().value(), 0x210A);
        assert!(by_name("nope").is_err());
    }
}
