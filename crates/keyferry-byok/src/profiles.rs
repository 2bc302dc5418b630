//! Vendor HSM profiles, kept as data in `profiles/vendors.json` (embedded at build time): where
//! each vendor's PKCS#11 module usually lives and which mechanism quirks it has (the RFC 5649
//! key-wrap mechanism number, whether RSA-OAEP with SHA-256 is known to work). Only the SoftHSM2
//! profile is tested on this project's machines; the others come from vendor documentation.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};
use crate::pkcs11::KwpMechanism;

const VENDORS_JSON: &str = include_str!("../profiles/vendors.json");

/// One vendor's profile.
#[derive(Debug, Clone, Deserialize)]
pub struct HsmProfile {
    /// Name used with `--hsm-profile`.
    pub name: String,
    /// Other accepted names.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Human name.
    pub display_name: String,
    /// Candidate module paths, most likely first.
    pub module_paths: Vec<PathBuf>,
    /// The RFC 5649 key-wrap mechanism, as a hex string (`0x210A`, `0x80000171`).
    kwp_mechanism: String,
    /// The mechanism's name, for messages.
    pub kwp_mechanism_name: String,
    /// Whether RSA-OAEP with SHA-256 is known to work (`None`: probe at run time).
    pub oaep_sha256: Option<bool>,
    /// Whether the profile is exercised by this project's tests.
    pub tested: bool,
    /// Quirks and setup hints.
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Deserialize)]
struct ProfileFile {
    profiles: Vec<HsmProfile>,
}

impl HsmProfile {
    /// The profile's RFC 5649 key-wrap mechanism.
    pub fn kwp_mechanism(&self) -> Result<KwpMechanism> {
        KwpMechanism::parse(&self.kwp_mechanism)
    }

    /// The first candidate module path that exists on this machine, else the first candidate.
    pub fn module_path(&self) -> Option<&Path> {
        self.module_paths
            .iter()
            .find(|p| p.exists())
            .or_else(|| self.module_paths.first())
            .map(PathBuf::as_path)
    }

    fn matches(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}

/// All embedded profiles.
pub fn all() -> Result<Vec<HsmProfile>> {
    let file: ProfileFile = serde_json::from_str(VENDORS_JSON).map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            format!("the embedded vendors.json is invalid: {e}"),
        )
    })?;
    Ok(file.profiles)
}

/// The profile called `name` (or one of its aliases), case-insensitive.
pub fn by_name(name: &str) -> Result<HsmProfile> {
    let profiles = all()?;
    let names: Vec<String> = profiles.iter().map(|p| p.name.clone()).collect();
    profiles
        .into_iter()
        .find(|p| p.matches(name))
        .ok_or_else(|| {
            Error::usage(format!(
                "unknown HSM profile \"{name}\"; known profiles: {}",
                names.join(", ")
            ))
        })
}

/// The profile whose module paths include `module` (by file name), if any; used to apply a
/// vendor's quirks when only `module-path` was given.
pub fn for_module(module: &Path) -> Result<Option<HsmProfile>> {
    let file_name = module.file_name();
    Ok(all()?.into_iter().find(|p| {
        p.module_paths
            .iter()
            .any(|c| c == module || (file_name.is_some() && c.file_name() == file_name))
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn embedded_profiles_parse_and_are_consistent() {
        let all = all().unwrap();
        let names: Vec<_> = all.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["softhsm2", "luna", "cloudhsm", "yubihsm2"]);
        for p in &all {
            p.kwp_mechanism().unwrap();
            assert!(!p.module_paths.is_empty(), "{}", p.name);
        }
        // Only SoftHSM2 is tested here, and every other profile says so.
        for p in &all {
            assert_eq!(p.tested, p.name == "softhsm2");
            if !p.tested {
                assert!(
                    p.notes.iter().any(|n| n.contains("Not tested here")),
                    "{}",
                    p.name
                );
            }
        }
    }

    #[test]
    fn lookup_by_name_alias_and_module() {
        assert_eq!(by_name("DPoD").unwrap().name, "luna");
        assert_eq!(
            by_name("cloudhsm")
                .unwrap()
                .kwp_mechanism()
                .unwrap()
                .value(),
            0x8000_216F
        );
        assert_eq!(
            by_name("luna").unwrap().kwp_mechanism().unwrap().value(),
            0x8000_0171
        );
        let soft = by_name("softhsm2").unwrap();
        assert_eq!(
            soft.kwp_mechanism().unwrap(),
            KwpMechanism::AES_KEY_WRAP_PAD
        );
        assert_eq!(soft.oaep_sha256, Some(false));
        let e = by_name("nshield").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert!(e.message().contains("softhsm2, luna, cloudhsm, yubihsm2"));
        let m = for_module(Path::new("/somewhere/else/libsofthsm2.so"))
            .unwrap()
            .unwrap();
        assert_eq!(m.name, "softhsm2");
        assert!(
            for_module(Path::new("/usr/lib/opensc-pkcs11.so"))
                .unwrap()
                .is_none()
        );
    }
}
