//! RFC 7512 PKCS#11 URIs: `pkcs11:token=…;object=…;id=%01%02;type=secret?module-path=…&pin-source=…`.
//!
//! Path attributes select the token and the object; query attributes say which module to load and
//! where the PIN comes from. The PIN is never required in the URI: it may also come from the
//! `KEYFERRY_PKCS11_PIN` environment variable or an interactive prompt (see [`resolve_pin`]).

use std::fmt;
use std::io::IsTerminal;
use std::path::PathBuf;

use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};

/// Environment variable consulted for the user PIN when the URI carries none.
pub const PIN_ENV: &str = "KEYFERRY_PKCS11_PIN";

/// The RFC 7512 `type` attribute: which object class the URI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    /// `type=public`
    Public,
    /// `type=private`
    Private,
    /// `type=secret` (secret key)
    Secret,
    /// `type=cert`
    Cert,
    /// `type=data`
    Data,
}

impl ObjectType {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "public" => Self::Public,
            "private" => Self::Private,
            "secret-key" | "secret" => Self::Secret,
            "cert" => Self::Cert,
            "data" => Self::Data,
            other => {
                return Err(Error::usage(format!(
                    "PKCS#11 URI: type={other} is not one of public, private, secret-key, cert, data"
                )));
            }
        })
    }

    /// The spelling used in URIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
            Self::Secret => "secret-key",
            Self::Cert => "cert",
            Self::Data => "data",
        }
    }
}

/// A parsed PKCS#11 URI. `Debug` and `Display` never show the PIN.
#[derive(Default, Clone)]
pub struct Pkcs11Uri {
    /// `token`: the token label.
    pub token: Option<String>,
    /// `manufacturer`: the token manufacturer id.
    pub manufacturer: Option<String>,
    /// `serial`: the token serial number.
    pub serial: Option<String>,
    /// `model`: the token model.
    pub model: Option<String>,
    /// `slot-id`: the numeric slot id.
    pub slot_id: Option<u64>,
    /// `object`: the object label (CKA_LABEL).
    pub object: Option<String>,
    /// `id`: the object id (CKA_ID), raw bytes.
    pub id: Option<Vec<u8>>,
    /// `type`: the object class.
    pub object_type: Option<ObjectType>,
    /// `module-path` query attribute: the PKCS#11 library to load.
    pub module_path: Option<PathBuf>,
    /// `module-name` query attribute: a library name without directory or suffix.
    pub module_name: Option<String>,
    /// `pin-value` query attribute (discouraged: prefer `pin-source` or the environment).
    pub pin_value: Option<SecretString>,
    /// `pin-source` query attribute: a file (`file:` URI or a path) holding the PIN.
    pub pin_source: Option<String>,
    /// `x-module-init-args` query attribute: the string passed in C_Initialize's `pReserved`
    /// (NSS softoken reads its configuration from there).
    pub module_init_args: Option<String>,
    /// `x-nss-db` query attribute: NSS softoken's database directory, a shorthand for
    /// `x-module-init-args=configdir='sql:DIR' certPrefix='' keyPrefix='' secmod='secmod.db'`.
    pub nss_db: Option<String>,
}

impl Pkcs11Uri {
    /// Parse a `pkcs11:` URI. Unknown standard attributes are rejected (they are usually typos);
    /// vendor attributes (`x-…`) are ignored, as RFC 7512 allows.
    pub fn parse(input: &str) -> Result<Self> {
        let rest = input
            .strip_prefix("pkcs11:")
            .ok_or_else(|| Error::usage("a PKCS#11 URI must start with \"pkcs11:\""))?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut uri = Pkcs11Uri::default();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attr.split_once('=').ok_or_else(|| {
                Error::usage(format!("PKCS#11 URI: path attribute \"{attr}\" has no '='"))
            })?;
            uri.set_path_attr(name, value)?;
        }
        if let Some(query) = query {
            for attr in query.split('&').filter(|a| !a.is_empty()) {
                let (name, value) = attr.split_once('=').ok_or_else(|| {
                    Error::usage("PKCS#11 URI: a query attribute has no '='".to_string())
                })?;
                uri.set_query_attr(name, value)?;
            }
        }
        Ok(uri)
    }

    fn set_path_attr(&mut self, name: &str, raw: &str) -> Result<()> {
        match name {
            "token" => set_once(&mut self.token, name, decode_str(name, raw)?),
            "manufacturer" => set_once(&mut self.manufacturer, name, decode_str(name, raw)?),
            "serial" => set_once(&mut self.serial, name, decode_str(name, raw)?),
            "model" => set_once(&mut self.model, name, decode_str(name, raw)?),
            "slot-id" => {
                let s = decode_str(name, raw)?;
                let id = s.parse::<u64>().map_err(|_| {
                    Error::usage(format!("PKCS#11 URI: slot-id={s} is not a decimal number"))
                })?;
                set_once(&mut self.slot_id, name, id)
            }
            "object" => set_once(&mut self.object, name, decode_str(name, raw)?),
            "id" => set_once(&mut self.id, name, percent_decode(raw)?.to_vec()),
            "type" => {
                let t = ObjectType::parse(&decode_str(name, raw)?)?;
                set_once(&mut self.object_type, name, t)
            }
            // Accepted by RFC 7512 but not used for selection here.
            "library-manufacturer"
            | "library-description"
            | "library-version"
            | "slot-description"
            | "slot-manufacturer" => Ok(()),
            other if other.starts_with("x-") => Ok(()),
            other => Err(Error::usage(format!(
                "PKCS#11 URI: unknown path attribute \"{other}\" (known: token, manufacturer, serial, model, slot-id, object, id, type)"
            ))),
        }
    }

    fn set_query_attr(&mut self, name: &str, raw: &str) -> Result<()> {
        match name {
            "module-path" => set_once(
                &mut self.module_path,
                name,
                PathBuf::from(decode_str(name, raw)?),
            ),
            "module-name" => set_once(&mut self.module_name, name, decode_str(name, raw)?),
            "pin-value" => {
                let bytes = percent_decode(raw)?;
                let s = std::str::from_utf8(&bytes).map_err(|_| {
                    Error::usage("PKCS#11 URI: pin-value is not valid UTF-8 after percent-decoding")
                })?;
                set_once(&mut self.pin_value, name, SecretString::from(s.to_string()))
            }
            "pin-source" => set_once(&mut self.pin_source, name, decode_str(name, raw)?),
            "x-module-init-args" => {
                set_once(&mut self.module_init_args, name, decode_str(name, raw)?)
            }
            "x-nss-db" => set_once(&mut self.nss_db, name, decode_str(name, raw)?),
            other if other.starts_with("x-") => Ok(()),
            other => Err(Error::usage(format!(
                "PKCS#11 URI: unknown query attribute \"{other}\" (known: module-path, module-name, pin-value, pin-source)"
            ))),
        }
    }

    /// The URI in canonical form without `pin-value` (safe to log).
    pub fn redacted(&self) -> String {
        let mut path = Vec::new();
        let push = |v: &mut Vec<String>, k: &str, s: &Option<String>| {
            if let Some(s) = s {
                v.push(format!("{k}={}", percent_encode(s.as_bytes())));
            }
        };
        push(&mut path, "token", &self.token);
        push(&mut path, "manufacturer", &self.manufacturer);
        push(&mut path, "serial", &self.serial);
        push(&mut path, "model", &self.model);
        if let Some(id) = self.slot_id {
            path.push(format!("slot-id={id}"));
        }
        push(&mut path, "object", &self.object);
        if let Some(id) = &self.id {
            path.push(format!("id={}", percent_encode_all(id)));
        }
        if let Some(t) = self.object_type {
            path.push(format!("type={}", t.as_str()));
        }
        let mut query = Vec::new();
        if let Some(p) = &self.module_path {
            query.push(format!(
                "module-path={}",
                percent_encode(p.to_string_lossy().as_bytes())
            ));
        }
        push(&mut query, "module-name", &self.module_name);
        push(&mut query, "pin-source", &self.pin_source);
        push(&mut query, "x-module-init-args", &self.module_init_args);
        push(&mut query, "x-nss-db", &self.nss_db);
        if self.pin_value.is_some() {
            query.push("pin-value=<redacted>".to_string());
        }
        let mut s = format!("pkcs11:{}", path.join(";"));
        if !query.is_empty() {
            s.push('?');
            s.push_str(&query.join("&"));
        }
        s
    }
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pkcs11Uri").field(&self.redacted()).finish()
    }
}

impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::str::FromStr for Pkcs11Uri {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

fn set_once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<()> {
    if slot.is_some() {
        return Err(Error::usage(format!(
            "PKCS#11 URI: attribute \"{name}\" is given twice"
        )));
    }
    *slot = Some(value);
    Ok(())
}

fn decode_str(name: &str, raw: &str) -> Result<String> {
    let bytes = percent_decode(raw)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        Error::usage(format!(
            "PKCS#11 URI: attribute \"{name}\" is not valid UTF-8 after percent-decoding"
        ))
    })
}

/// Percent-decode an attribute value (RFC 3986 `%XX`). The result is zeroized on drop because a
/// `pin-value` passes through here.
pub fn percent_decode(raw: &str) -> Result<Zeroizing<Vec<u8>>> {
    let b = raw.as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(b.len()));
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or_else(|| {
                Error::usage("PKCS#11 URI: '%' must be followed by two hex digits")
            })?;
            let hi = hex_val(hex[0]);
            let lo = hex_val(hex[1]);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => {
                    return Err(Error::usage(
                        "PKCS#11 URI: '%' must be followed by two hex digits",
                    ));
                }
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn percent_encode(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &c in bytes {
        if c.is_ascii_alphanumeric() || b"-._~:[]@!$'()*+,=/".contains(&c) {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

fn percent_encode_all(bytes: &[u8]) -> String {
    bytes.iter().map(|c| format!("%{c:02X}")).collect()
}

/// Where the PIN was found, for a log line that does not show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinOrigin {
    /// The URI's `pin-value`.
    UriValue,
    /// The file named by `pin-source`.
    SourceFile,
    /// The `KEYFERRY_PKCS11_PIN` environment variable.
    Environment,
    /// Typed at an interactive prompt.
    Prompt,
}

impl Pkcs11Uri {
    /// The string for C_Initialize's `pReserved`: `x-module-init-args`, or the NSS form built
    /// from `x-nss-db`.
    pub fn init_args(&self) -> Option<String> {
        self.module_init_args.clone().or_else(|| {
            self.nss_db.as_ref().map(|d| {
                let d = d.strip_prefix("sql:").unwrap_or(d);
                format!("configdir='sql:{d}' certPrefix='' keyPrefix='' secmod='secmod.db'")
            })
        })
    }
}

impl Pkcs11Uri {
    /// The PKCS#11 library this URI names: `module-path`, else `module-name` found as
    /// [`find_module`] finds it; `None` when it names neither.
    pub fn module(&self) -> Result<Option<PathBuf>> {
        if let Some(p) = &self.module_path {
            return Ok(Some(p.clone()));
        }
        match &self.module_name {
            Some(name) => find_module(name).map(Some),
            None => Ok(None),
        }
    }
}

/// The directories p11-kit reads module configurations from (`<name>.module`, with a
/// `module:` line), system ones first, then the user's.
fn p11_kit_config_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![
        PathBuf::from("/etc/pkcs11/modules"),
        PathBuf::from("/usr/share/p11-kit/modules"),
    ];
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".config/pkcs11/modules"));
    }
    dirs
}

/// Where PKCS#11 libraries are installed: p11-kit's module directory first (a relative
/// `module:` path is relative to it), then the library directories of Debian/Ubuntu, Fedora/RHEL
/// and /usr/local, and the vendor directories of the modules this project tests.
fn module_lib_dirs() -> Vec<PathBuf> {
    let multiarch = format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH);
    let bases = [
        multiarch.as_str(),
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
    ];
    let p11_kit = bases.iter().map(|b| PathBuf::from(format!("{b}/pkcs11")));
    let libs = bases.iter().flat_map(|b| {
        std::iter::once(PathBuf::from(b)).chain(
            ["softhsm", "opencryptoki", "nss"]
                .iter()
                .map(move |v| PathBuf::from(format!("{b}/{v}"))),
        )
    });
    p11_kit.chain(libs).collect()
}

/// RFC 7512's `module-name` (a library name without directory or suffix): the p11-kit module
/// of that name (`<name>.module` in p11-kit's configuration directories, as p11-kit-aware tools
/// read it), else `<name>.so` or `lib<name>.so` in the usual library directories.
pub fn find_module(name: &str) -> Result<PathBuf> {
    let config_dirs = p11_kit_config_dirs();
    let lib_dirs = module_lib_dirs();
    find_module_in(name, &config_dirs, &lib_dirs).ok_or_else(|| {
        Error::usage(format!(
            "PKCS#11 URI: no module named \"{name}\" (looked for {name}.module in {} and for {name}.so / lib{name}.so in {}); give its file with module-path=",
            join_dirs(&config_dirs),
            join_dirs(&lib_dirs)
        ))
    })
}

fn join_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn find_module_in(name: &str, config_dirs: &[PathBuf], lib_dirs: &[PathBuf]) -> Option<PathBuf> {
    if name.is_empty() || name.contains('/') || name.contains('\0') {
        return None;
    }
    for dir in config_dirs {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{name}.module"))) else {
            continue;
        };
        // `key: value` lines; `#` starts a comment.
        let module = text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "module").then(|| v.trim().to_owned())
        });
        if let Some(m) = module.filter(|m| !m.is_empty()) {
            let p = PathBuf::from(&m);
            if p.is_absolute() {
                return Some(p);
            }
            if let Some(found) = lib_dirs.iter().map(|d| d.join(&p)).find(|c| c.is_file()) {
                return Some(found);
            }
        }
    }
    let stem = name.strip_suffix(".so").unwrap_or(name);
    let files = [format!("{stem}.so"), format!("lib{stem}.so")];
    lib_dirs
        .iter()
        .flat_map(|d| files.iter().map(move |f| d.join(f)))
        .find(|c| c.is_file())
}

/// `KEYFERRY_PKCS11_PIN` as [`remember_env_pin`] read it, for a process that then overwrites its
/// environment copy (`keyferry keep-alive --every`); unset otherwise, so that no other process
/// keeps the PIN for its whole life.
static REMEMBERED_ENV_PIN: std::sync::OnceLock<Option<Zeroizing<String>>> =
    std::sync::OnceLock::new();

/// Read `KEYFERRY_PKCS11_PIN` now and let [`resolve_pin`] use this copy from then on, whatever
/// the environment says later: for a long-running process that overwrites the environment's
/// copy once it has read it.
pub fn remember_env_pin() {
    REMEMBERED_ENV_PIN.get_or_init(|| std::env::var(PIN_ENV).ok().map(Zeroizing::new));
}

/// Find the user PIN: the URI's `pin-value`, then its `pin-source` file, then
/// `KEYFERRY_PKCS11_PIN`, then (only when stdin is a terminal) an interactive prompt.
pub fn resolve_pin(uri: &Pkcs11Uri) -> Result<(SecretString, PinOrigin)> {
    if let Some(pin) = &uri.pin_value {
        return Ok((pin.clone(), PinOrigin::UriValue));
    }
    if let Some(src) = &uri.pin_source {
        return Ok((read_pin_source(src)?, PinOrigin::SourceFile));
    }
    // An empty KEYFERRY_PKCS11_PIN is "not set": sending it would spend a login attempt.
    let env_pin = match REMEMBERED_ENV_PIN.get() {
        Some(remembered) => remembered.clone(),
        None => std::env::var(PIN_ENV).ok().map(Zeroizing::new),
    };
    let env_empty = env_pin.as_ref().is_some_and(|p| p.is_empty());
    if let Some(pin) = env_pin.filter(|p| !p.is_empty()) {
        return Ok((
            SecretString::from(pin.as_str().to_string()),
            PinOrigin::Environment,
        ));
    }
    if std::io::stdin().is_terminal() {
        let label = uri.token.as_deref().unwrap_or("the token");
        let pin = rpassword::prompt_password(format!("User PIN for {label}: "))
            .map_err(|e| Error::new(ErrorKind::Pin, format!("cannot read the PIN: {e}")))?;
        let pin = Zeroizing::new(pin);
        return Ok((
            SecretString::from(pin.as_str().to_string()),
            PinOrigin::Prompt,
        ));
    }
    Err(Error::new(
        ErrorKind::Pin,
        if env_empty {
            format!(
                "{PIN_ENV} is set but empty, so no PIN was sent to the token (an empty PIN would spend a login attempt); put the user PIN in it, add pin-source=<file> to the URI, or unset it and run on a terminal to be prompted"
            )
        } else {
            format!(
                "no PIN for the PKCS#11 token: set {PIN_ENV}, add pin-source=<file> to the URI, or run on a terminal to be prompted"
            )
        },
    ))
}

fn read_pin_source(src: &str) -> Result<SecretString> {
    let path = src.strip_prefix("file://").unwrap_or(src);
    let path = std::path::Path::new(path);
    let bytes = Zeroizing::new(
        std::fs::read(path).map_err(|e| Error::io("read the pin-source file", path, e))?,
    );
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        Error::new(
            ErrorKind::Pin,
            format!("the pin-source file {} is not UTF-8 text", path.display()),
        )
    })?;
    let pin = text.trim_end_matches(['\r', '\n']);
    if pin.is_empty() {
        return Err(Error::new(
            ErrorKind::Pin,
            format!("the pin-source file {} is empty", path.display()),
        ));
    }
    Ok(SecretString::from(pin.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn module_name_found_through_p11_kit_config_then_library_dirs() {
        let t = tempfile::tempdir().unwrap();
        let (conf, lib, other) = (
            t.path().join("conf"),
            t.path().join("lib"),
            t.path().join("o"),
        );
        for d in [&conf, &lib, &other, &lib.join("vendor")] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(lib.join("vendor/libabs.so"), b"").unwrap();
        std::fs::write(lib.join("librel.so"), b"").unwrap();
        std::fs::write(lib.join("plain.so"), b"").unwrap();
        std::fs::write(other.join("libplain.so"), b"").unwrap();
        let abs = lib.join("vendor/libabs.so");
        std::fs::write(
            conf.join("abs.module"),
            format!("# a comment\nmodule: {}\ncritical: yes\n", abs.display()),
        )
        .unwrap();
        std::fs::write(conf.join("rel.module"), "module: librel.so\n").unwrap();
        std::fs::write(conf.join("empty.module"), "critical: no\n").unwrap();
        let dirs = [lib.clone(), other.clone()];
        let find = |n: &str| find_module_in(n, std::slice::from_ref(&conf), &dirs);
        assert_eq!(find("abs"), Some(abs));
        assert_eq!(find("rel"), Some(lib.join("librel.so")));
        // A configuration without a module line, or no configuration: the library directories.
        assert_eq!(find("plain"), Some(lib.join("plain.so")));
        assert_eq!(find("empty"), None);
        assert_eq!(find("nothing"), None);
        assert_eq!(find("../lib/plain"), None);
        assert_eq!(find(""), None);
        let err = Pkcs11Uri::parse("pkcs11:token=t?module-name=no-such-module-here")
            .unwrap()
            .module()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("no module named \"no-such-module-here\""),
            "{err}"
        );
        let uri = Pkcs11Uri::parse("pkcs11:token=t?module-path=/x/y.so&module-name=other").unwrap();
        assert_eq!(uri.module().unwrap(), Some(PathBuf::from("/x/y.so")));
        assert_eq!(
            Pkcs11Uri::parse("pkcs11:token=t")
                .unwrap()
                .module()
                .unwrap(),
            None
        );
    }

    #[test]
    fn parses_full_uri() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=my%20token;object=aes-1;id=%01%02%ff;type=secret-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:///tmp/pin",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("my token"));
        assert_eq!(u.object.as_deref(), Some("aes-1"));
        assert_eq!(u.id.as_deref(), Some(&[1u8, 2, 0xff][..]));
        assert_eq!(u.object_type, Some(ObjectType::Secret));
        assert_eq!(
            u.module_path.as_deref(),
            Some(std::path::Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(u.pin_source.as_deref(), Some("file:///tmp/pin"));
        assert!(u.pin_value.is_none());
    }

    #[test]
    fn type_secret_and_slot_id() {
        let u = Pkcs11Uri::parse("pkcs11:slot-id=3;type=secret;serial=abc").unwrap();
        assert_eq!(u.slot_id, Some(3));
        assert_eq!(u.serial.as_deref(), Some("abc"));
        assert_eq!(u.object_type, Some(ObjectType::Secret));
        assert!(Pkcs11Uri::parse("pkcs11:slot-id=x").is_err());
    }

    #[test]
    fn pin_value_is_redacted() {
        let u = Pkcs11Uri::parse("pkcs11:token=t?pin-value=s3cr%65t").unwrap();
        assert_eq!(u.pin_value.as_ref().unwrap().expose_secret(), "s3cret");
        let dbg = format!("{u:?}");
        let disp = u.to_string();
        assert!(
            !dbg.contains("s3cret") && !disp.contains("s3cret"),
            "{dbg} {disp}"
        );
        assert!(disp.contains("pin-value=<redacted>"));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(Pkcs11Uri::parse("pkcs12:token=a").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:token").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:token=a;token=b").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:tokn=a").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:id=%0").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:id=%zz").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:type=weird").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:token=a?bogus=1").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:token=%ff%fe").is_err()); // not UTF-8
        // vendor attributes are ignored
        assert!(Pkcs11Uri::parse("pkcs11:x-foo=1;token=a?x-bar=2").is_ok());
    }

    #[test]
    fn redacted_round_trips() {
        let s = "pkcs11:token=a%3Bb;object=k;id=%01%0A;type=private?module-path=/x/y.so";
        let u = Pkcs11Uri::parse(s).unwrap();
        assert_eq!(u.token.as_deref(), Some("a;b"));
        let again = Pkcs11Uri::parse(&u.redacted()).unwrap();
        assert_eq!(again.token, u.token);
        assert_eq!(again.id, u.id);
        assert_eq!(again.object_type, u.object_type);
        assert_eq!(again.module_path, u.module_path);
    }

    #[test]
    fn pin_from_source_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pin");
        std::fs::write(&p, "5678\n").unwrap();
        let u =
            Pkcs11Uri::parse(&format!("pkcs11:token=t?pin-source=file://{}", p.display())).unwrap();
        let (pin, origin) = resolve_pin(&u).unwrap();
        assert_eq!(pin.expose_secret(), "5678");
        assert_eq!(origin, PinOrigin::SourceFile);
        let u = Pkcs11Uri::parse(&format!("pkcs11:token=t?pin-source={}", p.display())).unwrap();
        assert_eq!(resolve_pin(&u).unwrap().0.expose_secret(), "5678");
        std::fs::write(&p, "\n").unwrap();
        assert_eq!(resolve_pin(&u).unwrap_err().kind(), ErrorKind::Pin);
    }
}
