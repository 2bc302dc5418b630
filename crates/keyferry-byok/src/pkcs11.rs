//! A safe, small wrapper over `cryptoki` for what an import needs: find a token and a key, log in,
//! import the KMS wrapping public key as a session object, wrap inside the HSM (RSA-OAEP and
//! AES key wrap with padding), read public attributes, compute an HMAC, and detect what the token
//! can do. Every temporary object is a [`TempObject`] that is destroyed when dropped, so error
//! paths leave nothing behind. PKCS#11 return codes become [`Error`]s that say what to do.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use keyferry_types::{KeySpec, MacAlgorithmSpec};
use secrecy::SecretString;

use keyferry_pkcs11_raw::RawModule;

use crate::der;
use crate::error::{Error, ErrorKind, Result};
use crate::uri::{ObjectType, Pkcs11Uri};

/// CKM_AES_KEY_WRAP_PAD: RFC 5649 in SoftHSM2 and nShield (spec-wise PKCS#7 padding + RFC 3394).
pub const CKM_AES_KEY_WRAP_PAD: u64 = 0x210A;
/// CKM_AES_KEY_WRAP_KWP (PKCS#11 3.0, RFC 5649). cryptoki 0.12 cannot send it.
pub const CKM_AES_KEY_WRAP_KWP: u64 = 0x210B;
/// NSS's vendor AES key wrap with padding (CKM_NSS + 2).
pub const CKM_NSS_AES_KEY_WRAP_PAD: u64 = 0xCE53_4352;
/// PKCS#11 vendor-defined mechanisms start here.
pub const CKM_VENDOR_DEFINED: u64 = 0x8000_0000;

/// The hash of RSA-OAEP (MGF1 uses the same hash, the label is empty, as KMS requires).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OaepHash {
    /// SHA-1 (RSAES_OAEP_SHA_1, RSA_AES_KEY_WRAP_SHA_1)
    Sha1,
    /// SHA-256 (RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_256)
    Sha256,
}

impl OaepHash {
    fn params(self) -> PkcsOaepParams<'static> {
        match self {
            Self::Sha1 => PkcsOaepParams::new(
                MechanismType::SHA1,
                PkcsMgfType::MGF1_SHA1,
                PkcsOaepSource::empty(),
            ),
            Self::Sha256 => PkcsOaepParams::new(
                MechanismType::SHA256,
                PkcsMgfType::MGF1_SHA256,
                PkcsOaepSource::empty(),
            ),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA-1",
            Self::Sha256 => "SHA-256",
        }
    }
}

/// An AES key-wrap-with-padding mechanism to try for RFC 5649 in C_WrapKey. Which number gives
/// RFC 5649 depends on the token (SoftHSM2: 0x210A; Kryoptic and PKCS#11 3.0: 0x210B; Luna,
/// CloudHSM: vendor numbers; NSS's 0x210A is PKCS#7 padding + RFC 3394), so a mechanism is only
/// used after the known-answer probe in [`TokenSession::capabilities`] vouched for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KwpMechanism(u64);

impl KwpMechanism {
    /// CKM_AES_KEY_WRAP_PAD (0x210A).
    pub const AES_KEY_WRAP_PAD: KwpMechanism = KwpMechanism(CKM_AES_KEY_WRAP_PAD);
    /// CKM_AES_KEY_WRAP_KWP (0x210B), sent with a raw C_WrapKey.
    pub const AES_KEY_WRAP_KWP: KwpMechanism = KwpMechanism(CKM_AES_KEY_WRAP_KWP);

    /// A mechanism by number: 0x210A, 0x210B, or a vendor-defined value (≥ 0x80000000); other
    /// standard values are not AES key wrap with padding.
    pub fn new(value: u64) -> Result<Self> {
        if value == CKM_AES_KEY_WRAP_PAD
            || value == CKM_AES_KEY_WRAP_KWP
            || value >= CKM_VENDOR_DEFINED
        {
            Ok(Self(value))
        } else {
            Err(Error::usage(format!(
                "mechanism {value:#x} is not an AES key wrap with padding mechanism; use 0x210B (CKM_AES_KEY_WRAP_KWP), 0x210A (CKM_AES_KEY_WRAP_PAD) or a vendor-defined RFC 5649 mechanism (≥ 0x80000000)"
            )))
        }
    }

    /// Parse `0x210A`, `8465`, `CKM_AES_KEY_WRAP_PAD` or `CKM_AES_KEY_WRAP_KWP`.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("CKM_AES_KEY_WRAP_PAD") {
            return Ok(Self::AES_KEY_WRAP_PAD);
        }
        if s.eq_ignore_ascii_case("CKM_AES_KEY_WRAP_KWP") {
            return Ok(Self::AES_KEY_WRAP_KWP);
        }
        let v = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            u64::from_str_radix(h, 16)
        } else {
            s.parse::<u64>()
        }
        .map_err(|_| Error::usage(format!("\"{s}\" is not a mechanism number (e.g. 0x210B)")))?;
        Self::new(v)
    }

    /// The numeric mechanism type.
    pub fn value(self) -> u64 {
        self.0
    }

    /// The cryptoki mechanism, or None when it must be sent raw (0x210B).
    fn mechanism(self) -> Result<Option<Mechanism<'static>>> {
        if self.0 == CKM_AES_KEY_WRAP_PAD {
            return Ok(Some(Mechanism::AesKeyWrapPad));
        }
        if self.0 == CKM_AES_KEY_WRAP_KWP {
            return Ok(None);
        }
        let t = MechanismType::new_vendor_defined(self.0 as _)
            .map_err(|_| Error::usage(format!("mechanism {:#x} is not vendor-defined", self.0)))?;
        Ok(Some(Mechanism::VendorDefined(
            VendorDefinedMechanism::new::<()>(t, None),
        )))
    }
}

impl Default for KwpMechanism {
    fn default() -> Self {
        Self::AES_KEY_WRAP_PAD
    }
}

impl fmt::Display for KwpMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            CKM_AES_KEY_WRAP_PAD => write!(f, "CKM_AES_KEY_WRAP_PAD (0x210A)"),
            CKM_AES_KEY_WRAP_KWP => write!(f, "CKM_AES_KEY_WRAP_KWP (0x210B)"),
            v => write!(f, "vendor mechanism {v:#x}"),
        }
    }
}

/// Turn a cryptoki error into a message that says what to do. `doing` describes the step.
pub(crate) fn map_ck(e: CkError, doing: &str) -> Error {
    match e {
        CkError::Pkcs11(rv, func) => {
            let (kind, msg) = match rv {
                RvError::KeyUnextractable => (
                    ErrorKind::NotExtractable,
                    format!(
                        "{doing}: the token refuses to wrap the key (CKR_KEY_UNEXTRACTABLE): the key's CKA_EXTRACTABLE attribute is false; re-create it extractable (CKA_EXTRACTABLE=true, e.g. pkcs11-tool --extractable), or import it from a backup with --material instead"
                    ),
                ),
                RvError::KeyNotWrappable => (
                    ErrorKind::Unsupported,
                    format!(
                        "{doing}: the token cannot wrap this kind of key with this mechanism (CKR_KEY_NOT_WRAPPABLE); use --wrapping-algorithm RSA_AES_KEY_WRAP_SHA_256 (or _SHA_1), which wraps with AES key wrap"
                    ),
                ),
                RvError::MechanismInvalid => (
                    ErrorKind::MechanismMissing,
                    format!(
                        "{doing}: the token does not support the mechanism (CKR_MECHANISM_INVALID); list its mechanisms with `pkcs11-tool --module <module> -M`, choose another wrapping algorithm, or set the vendor's mechanism in the HSM profile"
                    ),
                ),
                RvError::MechanismParamInvalid | RvError::ArgumentsBad => (
                    ErrorKind::MechanismMissing,
                    format!(
                        "{doing}: the token rejected the mechanism parameters ({rv}); it lacks this variant"
                    ),
                ),
                RvError::PinIncorrect => (
                    ErrorKind::Pin,
                    "the token rejected the PIN (CKR_PIN_INCORRECT); check KEYFERRY_PKCS11_PIN, the URI's pin-source file, or retype it; repeated failures can lock the user PIN".to_string(),
                ),
                RvError::PinLocked => (
                    ErrorKind::Pin,
                    "the user PIN is locked (CKR_PIN_LOCKED); the security officer must unblock or reset it before keys can be used".to_string(),
                ),
                RvError::PinExpired => (
                    ErrorKind::Pin,
                    "the user PIN has expired (CKR_PIN_EXPIRED); change it with the vendor tool first".to_string(),
                ),
                RvError::PinInvalid | RvError::PinLenRange => (
                    ErrorKind::Pin,
                    format!("the PIN has an invalid format or length ({rv}); check it"),
                ),
                RvError::UserNotLoggedIn => (
                    ErrorKind::Pin,
                    format!("{doing}: the session is not logged in (CKR_USER_NOT_LOGGED_IN)"),
                ),
                RvError::KeyFunctionNotPermitted => (
                    ErrorKind::Unsupported,
                    format!(
                        "{doing}: the key's attributes forbid this use (CKR_KEY_FUNCTION_NOT_PERMITTED); e.g. an HMAC check needs CKA_SIGN=true on the secret key"
                    ),
                ),
                RvError::TokenNotPresent | RvError::DeviceRemoved => (
                    ErrorKind::TokenNotFound,
                    format!("{doing}: the token is no longer present ({rv})"),
                ),
                other => (
                    ErrorKind::Internal,
                    format!("{doing}: {func} failed: {other}"),
                ),
            };
            Error::new(kind, msg)
        }
        CkError::LibraryLoading(e) => Error::new(
            ErrorKind::Module,
            format!("{doing}: cannot load the PKCS#11 module: {e}"),
        ),
        other => Error::new(ErrorKind::Internal, format!("{doing}: {other}")),
    }
}

/// A loaded module: cryptoki's context and the raw function list for the calls cryptoki cannot
/// make (None when the module could not be opened a second time, which never happens in practice).
#[derive(Clone)]
struct Loaded {
    ctx: Pkcs11,
    raw: Option<Arc<RawModule>>,
}

fn modules() -> &'static Mutex<HashMap<PathBuf, Loaded>> {
    static M: OnceLock<Mutex<HashMap<PathBuf, Loaded>>> = OnceLock::new();
    M.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Which kind of module a path is, for advice that names its own configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    /// SoftHSM2 (configuration: SOFTHSM2_CONF).
    SoftHsm,
    /// NSS softoken (configuration: the database directory in C_Initialize's pReserved).
    Nss,
    /// openCryptoki (configuration: pkcsslotd and /etc/opencryptoki/opencryptoki.conf).
    OpenCryptoki,
    /// Kryoptic (configuration: KRYOPTIC_CONF).
    Kryoptic,
    /// Anything else.
    Other,
}

impl ModuleKind {
    /// Guess the module from its file name.
    pub fn of(module: &Path) -> Self {
        let name = module
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.contains("softhsm") {
            Self::SoftHsm
        } else if name.contains("softokn") || name.contains("nss") {
            Self::Nss
        } else if name.contains("opencryptoki") {
            Self::OpenCryptoki
        } else if name.contains("kryoptic") {
            Self::Kryoptic
        } else {
            Self::Other
        }
    }

    /// What to check when the module finds no token or cannot start.
    pub fn config_advice(self) -> String {
        let env = |v: &str| match std::env::var_os(v) {
            Some(x) => format!("{v}={}", x.to_string_lossy()),
            None => format!("{v} is not set"),
        };
        match self {
            Self::SoftHsm => format!(
                "SoftHSM2 reads its token directory from the file SOFTHSM2_CONF names ({}); check that the file exists, that its directories.tokendir exists, and that a token was made there with `softhsm2-util --init-token`",
                env("SOFTHSM2_CONF")
            ),
            Self::Nss => "NSS softoken needs its database directory: add x-nss-db=/path/to/nssdb to the URI's query (or --module-init-args \"configdir='sql:/path/to/nssdb' certPrefix='' keyPrefix='' secmod='secmod.db'\"); the directory must hold cert9.db/key4.db (certutil -N -d sql:/path/to/nssdb)".to_string(),
            Self::OpenCryptoki => "openCryptoki needs the pkcsslotd daemon running (`pkcsslotd`), the token configured in /etc/opencryptoki/opencryptoki.conf and initialised (`pkcsconf -I`, `pkcsconf -u`), and the user in the pkcs11 group".to_string(),
            Self::Kryoptic => format!(
                "Kryoptic reads its token database from KRYOPTIC_CONF ({}); check that the file exists and names a database a token was initialised in",
                env("KRYOPTIC_CONF")
            ),
            Self::Other => "check the vendor's client configuration (configuration file, environment variables, a running daemon or network connection to the HSM) and that a token is initialised".to_string(),
        }
    }
}

/// Load and initialise a PKCS#11 module once per process (C_Initialize may only run once).
pub fn load_module(path: &Path) -> Result<Pkcs11> {
    load_module_with(path, None).map(|l| l.ctx)
}

/// The same, passing `init_args` in C_Initialize's `pReserved` (NSS softoken's configuration,
/// e.g. `configdir='sql:/path' certPrefix='' keyPrefix='' secmod='secmod.db'`). Only the first
/// load of a module in a process initialises it.
pub fn load_module_with_args(path: &Path, init_args: Option<&str>) -> Result<Pkcs11> {
    load_module_with(path, init_args).map(|l| l.ctx)
}

fn load_module_with(path: &Path, init_args: Option<&str>) -> Result<Loaded> {
    let mut map = modules()
        .lock()
        .map_err(|_| Error::new(ErrorKind::Internal, "PKCS#11 module table poisoned"))?;
    if let Some(l) = map.get(path) {
        return Ok(l.clone());
    }
    if !path.exists() {
        return Err(Error::new(
            ErrorKind::Module,
            format!(
                "the PKCS#11 module {} does not exist; install the vendor's client or give the right path with module-path= in the URI or --hsm-profile",
                path.display()
            ),
        ));
    }
    let ctx = Pkcs11::new(path).map_err(|e| {
        Error::new(
            ErrorKind::Module,
            format!(
                "cannot load the PKCS#11 module {}: {e}; check that it is a PKCS#11 library for this architecture",
                path.display()
            ),
        )
    })?;
    let kind = ModuleKind::of(path);
    let args = match init_args {
        Some(a) => {
            let c = std::ffi::CString::new(a).map_err(|_| {
                Error::usage("the module initialisation arguments contain a NUL character")
            })?;
            // Leaked on purpose: the module may keep the pointer; once per module per process.
            let c: &'static std::ffi::CStr = Box::leak(c.into_boxed_c_str());
            keyferry_pkcs11_raw::init_args_with_reserved(CInitializeFlags::OS_LOCKING_OK, c)
        }
        None => CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK),
    };
    match ctx.initialize(args) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(CkError::Pkcs11(rv, _)) => {
            return Err(Error::new(
                ErrorKind::Module,
                format!(
                    "the PKCS#11 module {} could not start (C_Initialize returned {rv:?}). {}",
                    path.display(),
                    kind.config_advice()
                ),
            ));
        }
        Err(e) => return Err(map_ck(e, &format!("initialising {}", path.display()))),
    }
    let raw = match RawModule::open(path) {
        Ok(r) => Some(Arc::new(r)),
        Err(e) => {
            tracing::debug!("cannot open {} for raw calls: {e}", path.display());
            None
        }
    };
    let loaded = Loaded { ctx, raw };
    map.insert(path.to_path_buf(), loaded.clone());
    Ok(loaded)
}

/// A key (or other object) found in the token and the attributes the import needs.
#[derive(Debug, Clone)]
pub struct KeyObject {
    /// The object handle in this session.
    pub handle: ObjectHandle,
    /// CKA_CLASS.
    pub class: ObjectClass,
    /// CKA_KEY_TYPE, when the object is a key.
    pub key_type: Option<KeyType>,
    /// CKA_LABEL (lossy UTF-8).
    pub label: String,
    /// CKA_ID.
    pub id: Vec<u8>,
    /// CKA_VALUE_LEN for secret keys.
    pub value_len: Option<usize>,
    /// CKA_EXTRACTABLE, when readable.
    pub extractable: Option<bool>,
    /// CKA_SENSITIVE, when readable.
    pub sensitive: Option<bool>,
    /// CKA_EC_PARAMS for EC keys.
    pub ec_params: Option<Vec<u8>>,
    /// CKA_EC_POINT for EC public keys.
    pub ec_point: Option<Vec<u8>>,
    /// CKA_MODULUS for RSA keys (public, also readable on private keys).
    pub modulus: Option<Vec<u8>>,
    /// CKA_PUBLIC_EXPONENT for RSA keys.
    pub public_exponent: Option<Vec<u8>>,
}

impl KeyObject {
    /// A short description for messages: class, label and id.
    pub fn describe(&self) -> String {
        format!(
            "{} \"{}\" (id {})",
            class_name(self.class),
            self.label,
            if self.id.is_empty() {
                "none".to_string()
            } else {
                hex::encode(&self.id)
            }
        )
    }
}

fn class_name(c: ObjectClass) -> &'static str {
    if c == ObjectClass::SECRET_KEY {
        "secret key"
    } else if c == ObjectClass::PRIVATE_KEY {
        "private key"
    } else if c == ObjectClass::PUBLIC_KEY {
        "public key"
    } else if c == ObjectClass::CERTIFICATE {
        "certificate"
    } else {
        "object"
    }
}

/// What to look for: label, id and class (all optional; all given must match).
#[derive(Debug, Clone, Default)]
pub struct ObjectQuery {
    /// CKA_LABEL.
    pub label: Option<String>,
    /// CKA_ID.
    pub id: Option<Vec<u8>>,
    /// CKA_CLASS.
    pub class: Option<ObjectClass>,
}

impl ObjectQuery {
    /// The object selection a PKCS#11 URI describes.
    pub fn from_uri(uri: &Pkcs11Uri) -> Self {
        Self {
            label: uri.object.clone(),
            id: uri.id.clone(),
            class: uri.object_type.map(|t| match t {
                ObjectType::Public => ObjectClass::PUBLIC_KEY,
                ObjectType::Private => ObjectClass::PRIVATE_KEY,
                ObjectType::Secret => ObjectClass::SECRET_KEY,
                ObjectType::Cert => ObjectClass::CERTIFICATE,
                ObjectType::Data => ObjectClass::DATA,
            }),
        }
    }

    fn template(&self) -> Vec<Attribute> {
        let mut t = Vec::new();
        if let Some(l) = &self.label {
            t.push(Attribute::Label(l.as_bytes().to_vec()));
        }
        if let Some(id) = &self.id {
            t.push(Attribute::Id(id.clone()));
        }
        if let Some(c) = self.class {
            t.push(Attribute::Class(c));
        }
        t
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(l) = &self.label {
            parts.push(format!("label \"{l}\""));
        }
        if let Some(id) = &self.id {
            parts.push(format!("id {}", hex::encode(id)));
        }
        if let Some(c) = self.class {
            parts.push(format!("class {}", class_name(c)));
        }
        if parts.is_empty() {
            "any object".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// What the token can do for an import, found by C_GetMechanismList and a probe wrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCapabilities {
    /// CKM_RSA_PKCS_OAEP is listed.
    pub oaep: bool,
    /// RSA-OAEP wrapping with SHA-256 works (probed with a throwaway key).
    pub oaep_sha256: bool,
    /// RSA-OAEP wrapping with SHA-1 works.
    pub oaep_sha1: bool,
    /// A mechanism gives RFC 5649 as KMS expects (the known-answer probe vouched for it).
    pub kwp: bool,
    /// That mechanism.
    pub kwp_mechanism: Option<KwpMechanism>,
    /// AES-256 key generation (CKM_AES_KEY_GEN) is listed, needed for RSA_AES_KEY_WRAP.
    pub aes_keygen: bool,
    /// The token can RSA-OAEP-wrap private keys (many tokens only wrap secret keys that way).
    pub oaep_wraps_private_keys: bool,
    /// Human lines explaining fallbacks, for the summary.
    pub notes: Vec<String>,
    /// What each AES key wrap with padding mechanism did in the probe (for error messages).
    pub kwp_findings: Vec<String>,
}

impl TokenCapabilities {
    /// A software source can do everything.
    pub fn software() -> Self {
        Self {
            oaep: true,
            oaep_sha256: true,
            oaep_sha1: true,
            kwp: true,
            kwp_mechanism: None,
            aes_keygen: true,
            oaep_wraps_private_keys: true,
            notes: Vec::new(),
            kwp_findings: Vec::new(),
        }
    }
}

/// An object created for one operation (wrapping public key, ephemeral AES key); destroyed on drop.
pub struct TempObject<'s> {
    session: &'s Session,
    handle: ObjectHandle,
}

impl TempObject<'_> {
    /// The object's handle.
    pub fn handle(&self) -> ObjectHandle {
        self.handle
    }
}

impl Drop for TempObject<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.session.destroy_object(self.handle) {
            tracing::warn!("could not destroy a temporary PKCS#11 object: {e}");
        }
    }
}

/// A logged-in session on one token.
pub struct TokenSession {
    ctx: Pkcs11,
    raw: Option<Arc<RawModule>>,
    session: Session,
    slot: Slot,
    token_label: String,
    token_serial: String,
    kwp: KwpMechanism,
    kwp_explicit: bool,
    kwp_vouched: std::cell::Cell<Option<KwpMechanism>>,
    module_path: PathBuf,
}

impl fmt::Debug for TokenSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSession")
            .field("module", &self.module_path)
            .field("slot", &self.slot.id())
            .field("token", &self.token_label)
            .field("kwp", &self.kwp)
            .finish()
    }
}

fn trimmed(s: &str) -> &str {
    s.trim_end_matches([' ', '\0'])
}

impl TokenSession {
    /// Load `module`, find the token the URI names (label, serial, manufacturer, model, slot-id;
    /// the only token if none is given), open a read-write session and log in as the user.
    /// A token whose info cryptoki cannot parse (openCryptoki's blank `utcTime`) is read field by
    /// field instead, so it is still listed and usable.
    pub fn open(module: &Path, uri: &Pkcs11Uri, pin: &SecretString) -> Result<Self> {
        let init_args = uri.init_args();
        let loaded = load_module_with(module, init_args.as_deref())?;
        let ctx = loaded.ctx.clone();
        let kind = ModuleKind::of(module);
        let slots = ctx
            .get_slots_with_token()
            .map_err(|e| map_ck(e, "listing the module's slots"))?;
        let mut found = Vec::new();
        let mut seen = Vec::new();
        let mut uninitialised = 0;
        for slot in slots {
            let info = match ctx.get_token_info(slot) {
                Ok(i) => Some(keyferry_pkcs11_raw::RawTokenInfo {
                    label: trimmed(i.label()).to_string(),
                    manufacturer: trimmed(i.manufacturer_id()).to_string(),
                    model: trimmed(i.model()).to_string(),
                    serial: trimmed(i.serial_number()).to_string(),
                    flags: if i.token_initialized() {
                        keyferry_pkcs11_raw::CKF_TOKEN_INITIALIZED
                    } else {
                        0
                    },
                }),
                Err(e) => {
                    tracing::debug!(
                        "slot {}: cryptoki cannot read the token info: {e}",
                        slot.id()
                    );
                    loaded
                        .raw
                        .as_ref()
                        .and_then(|r| r.token_info(slot.id()).ok())
                }
            };
            let Some(info) = info else {
                seen.push(format!("slot {} (token info unreadable)", slot.id()));
                continue;
            };
            let initialised = info.flags & keyferry_pkcs11_raw::CKF_TOKEN_INITIALIZED != 0;
            if initialised {
                seen.push(format!(
                    "\"{}\" (serial {}, slot {})",
                    info.label,
                    info.serial,
                    slot.id()
                ));
            } else {
                uninitialised += 1;
                seen.push(format!(
                    "an uninitialised token \"{}\" in slot {}",
                    info.label,
                    slot.id()
                ));
            }
            // An uninitialised token is taken only when the URI names it.
            let named = uri.token.is_some() || uri.slot_id.is_some() || uri.serial.is_some();
            let ok = (initialised || named)
                && uri.token.as_deref().is_none_or(|t| t == info.label)
                && uri.serial.as_deref().is_none_or(|s| s == info.serial)
                && uri
                    .manufacturer
                    .as_deref()
                    .is_none_or(|m| m == info.manufacturer)
                && uri.model.as_deref().is_none_or(|m| m == info.model)
                && uri.slot_id.is_none_or(|id| id == slot.id());
            if ok {
                found.push((slot, info.label.clone(), info.serial.clone()));
            }
        }
        let (slot, token_label, token_serial) = match found.len() {
            1 => found.remove(0),
            0 => {
                let initialised = seen.len() - uninitialised;
                return Err(Error::new(
                    ErrorKind::TokenNotFound,
                    format!(
                        "no token matches {}; tokens in {}: {}.{}",
                        uri.redacted(),
                        module.display(),
                        if seen.is_empty() {
                            "none".to_string()
                        } else {
                            seen.join(", ")
                        },
                        if initialised == 0 {
                            format!(" {}", kind.config_advice())
                        } else {
                            " Fix token=, serial= or slot-id= in the URI.".to_string()
                        }
                    ),
                ));
            }
            _ => {
                return Err(Error::usage(format!(
                    "several tokens match {}: {}; add token=, serial= or slot-id= to the URI",
                    uri.redacted(),
                    seen.join(", ")
                )));
            }
        };
        let session = ctx
            .open_rw_session(slot)
            .map_err(|e| map_ck(e, &format!("opening a session on token \"{token_label}\"")))?;
        match session.login(UserType::User, Some(pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => {
                let err = map_ck(e, &format!("logging in to token \"{token_label}\""));
                let msg = format!("token \"{token_label}\": {}", err.message());
                return Err(Error::new(err.kind(), msg));
            }
        }
        Ok(Self {
            ctx,
            raw: loaded.raw,
            session,
            slot,
            token_label,
            token_serial,
            kwp: KwpMechanism::default(),
            kwp_explicit: false,
            kwp_vouched: std::cell::Cell::new(None),
            module_path: module.to_path_buf(),
        })
    }

    /// Use another AES key-wrap-with-padding mechanism (vendor profiles, `--kwp-mechanism`).
    pub fn set_kwp_mechanism(&mut self, kwp: KwpMechanism) {
        self.kwp = kwp;
        self.kwp_explicit = true;
    }

    /// The KWP mechanism in use.
    pub fn kwp_mechanism(&self) -> KwpMechanism {
        self.kwp
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    /// The token's serial number.
    pub fn token_serial(&self) -> &str {
        &self.token_serial
    }

    /// The module's path.
    pub fn module_path(&self) -> &Path {
        &self.module_path
    }

    /// The underlying cryptoki session (for callers that need an operation not wrapped here,
    /// e.g. tests creating keys).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// All objects matching the query.
    pub fn find_objects(&self, query: &ObjectQuery) -> Result<Vec<KeyObject>> {
        let handles = self
            .session
            .find_objects(&query.template())
            .map_err(|e| map_ck(e, "searching the token"))?;
        handles.into_iter().map(|h| self.key_object(h)).collect()
    }

    /// The single key the query names. When both a private and a public key match (same label),
    /// the private key is taken. Errors name what was searched and what exists.
    pub fn find_key(&self, query: &ObjectQuery) -> Result<KeyObject> {
        let mut all = self.find_objects(query)?;
        all.retain(|o| {
            o.class == ObjectClass::SECRET_KEY
                || o.class == ObjectClass::PRIVATE_KEY
                || o.class == ObjectClass::PUBLIC_KEY
        });
        if query.class.is_none() && all.iter().any(|o| o.class != ObjectClass::PUBLIC_KEY) {
            all.retain(|o| o.class != ObjectClass::PUBLIC_KEY);
        }
        match all.len() {
            1 => Ok(all.remove(0)),
            0 => Err(Error::new(
                ErrorKind::ObjectNotFound,
                format!(
                    "no key with {} in token \"{}\"; list the token's objects with `pkcs11-tool --module {} --token-label \"{}\" --login -O` and fix object= or id= in the URI",
                    query.describe(),
                    self.token_label,
                    self.module_path.display(),
                    self.token_label
                ),
            )),
            n => Err(Error::new(
                ErrorKind::ObjectNotFound,
                format!(
                    "{n} keys match {} in token \"{}\": {}; add id= or type= to the URI to pick one",
                    query.describe(),
                    self.token_label,
                    all.iter()
                        .map(KeyObject::describe)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// Read the attributes of one object.
    pub fn key_object(&self, handle: ObjectHandle) -> Result<KeyObject> {
        let attrs = self
            .session
            .get_attributes(
                handle,
                &[
                    AttributeType::Class,
                    AttributeType::KeyType,
                    AttributeType::Label,
                    AttributeType::Id,
                    AttributeType::ValueLen,
                    AttributeType::Extractable,
                    AttributeType::Sensitive,
                    AttributeType::EcParams,
                    AttributeType::EcPoint,
                    AttributeType::Modulus,
                    AttributeType::PublicExponent,
                ],
            )
            .map_err(|e| map_ck(e, "reading an object's attributes"))?;
        let mut o = KeyObject {
            handle,
            class: ObjectClass::DATA,
            key_type: None,
            label: String::new(),
            id: Vec::new(),
            value_len: None,
            extractable: None,
            sensitive: None,
            ec_params: None,
            ec_point: None,
            modulus: None,
            public_exponent: None,
        };
        for a in attrs {
            match a {
                Attribute::Class(c) => o.class = c,
                Attribute::KeyType(k) => o.key_type = Some(k),
                Attribute::Label(l) => o.label = String::from_utf8_lossy(&l).into_owned(),
                Attribute::Id(i) => o.id = i,
                Attribute::ValueLen(v) => o.value_len = usize::try_from(u64::from(v)).ok(),
                Attribute::Extractable(b) => o.extractable = Some(b),
                Attribute::Sensitive(b) => o.sensitive = Some(b),
                Attribute::EcParams(p) => o.ec_params = Some(p),
                Attribute::EcPoint(p) => o.ec_point = Some(p),
                Attribute::Modulus(m) => o.modulus = Some(m),
                Attribute::PublicExponent(e) => o.public_exponent = Some(e),
                _ => {}
            }
        }
        Ok(o)
    }

    /// Fail early, with the attribute named, when a key cannot leave the token wrapped.
    pub fn check_extractable(&self, key: &KeyObject) -> Result<()> {
        if key.extractable == Some(false) {
            return Err(Error::new(
                ErrorKind::NotExtractable,
                format!(
                    "the {} in token \"{}\" cannot be wrapped: the key's CKA_EXTRACTABLE attribute is false; re-create it extractable (CKA_EXTRACTABLE=true; pkcs11-tool --extractable) or import it from a backup with --material. PKCS#11 never lets CKA_EXTRACTABLE change from false to true",
                    key.describe(),
                    self.token_label
                ),
            ));
        }
        Ok(())
    }

    /// The mechanisms the token lists.
    pub fn mechanisms(&self) -> Result<Vec<MechanismType>> {
        self.ctx
            .get_mechanism_list(self.slot)
            .map_err(|e| map_ck(e, "listing the token's mechanisms"))
    }

    /// Create the KMS wrapping public key (SPKI DER) as a session object that can wrap.
    pub fn import_rsa_public_key(&self, spki_der: &[u8]) -> Result<TempObject<'_>> {
        let (n, e) = keyferry_crypto::wrap::rsa_public_components(spki_der)?;
        let handle = self
            .session
            .create_object(&[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(KeyType::RSA),
                Attribute::Token(false),
                Attribute::Private(false),
                Attribute::Wrap(true),
                Attribute::Encrypt(true),
                Attribute::Verify(false),
                Attribute::Modulus(n),
                Attribute::PublicExponent(e),
                Attribute::Label(b"keyferry-kms-wrapping-key".to_vec()),
            ])
            .map_err(|e| map_ck(e, "importing the KMS wrapping public key into the token"))?;
        Ok(TempObject {
            session: &self.session,
            handle,
        })
    }

    /// Generate an ephemeral, extractable AES-256 session key for RSA_AES_KEY_WRAP.
    pub fn generate_ephemeral_aes256(&self) -> Result<TempObject<'_>> {
        let handle = self
            .session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(false),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(true),
                    Attribute::Wrap(true),
                    Attribute::Encrypt(false),
                    Attribute::Decrypt(false),
                    Attribute::Label(b"keyferry-ephemeral-kek".to_vec()),
                ],
            )
            .map_err(|e| map_ck(e, "generating the ephemeral AES-256 key (CKM_AES_KEY_GEN)"))?;
        Ok(TempObject {
            session: &self.session,
            handle,
        })
    }

    /// C_WrapKey with CKM_RSA_PKCS_OAEP (MGF1 with the same hash, empty source).
    pub fn wrap_oaep(
        &self,
        hash: OaepHash,
        wrapping_key: ObjectHandle,
        key: ObjectHandle,
    ) -> Result<Vec<u8>> {
        let params = hash.params();
        self.session
            .wrap_key(&Mechanism::RsaPkcsOaep(params), wrapping_key, key)
            .map_err(|e| {
                map_ck(
                    e,
                    &format!("wrapping with CKM_RSA_PKCS_OAEP ({})", hash.name()),
                )
            })
    }

    /// C_WrapKey with the AES key wrap with padding mechanism the probe vouched for (before
    /// [`Self::capabilities`]: the configured hint).
    pub fn wrap_kwp(&self, kek: ObjectHandle, key: ObjectHandle) -> Result<Vec<u8>> {
        self.wrap_kwp_with(self.kwp_vouched.get().unwrap_or(self.kwp), kek, key)
    }

    /// C_WrapKey with one AES key wrap with padding mechanism (0x210B through a raw call).
    pub fn wrap_kwp_with(
        &self,
        kwp: KwpMechanism,
        kek: ObjectHandle,
        key: ObjectHandle,
    ) -> Result<Vec<u8>> {
        let doing = format!("wrapping with {kwp}");
        match kwp.mechanism()? {
            Some(mech) => self
                .session
                .wrap_key(&mech, kek, key)
                .map_err(|e| map_ck(e, &doing)),
            None => {
                let raw = self.raw.as_ref().ok_or_else(|| {
                    Error::new(
                        ErrorKind::MechanismMissing,
                        format!("{doing}: the module cannot be called directly"),
                    )
                })?;
                raw.wrap_key(
                    self.session.handle(),
                    kwp.value(),
                    None,
                    kek.handle(),
                    key.handle(),
                )
                .map_err(|e| map_ck(e, &doing))
            }
        }
    }

    /// The AES key wrap with padding mechanism the probe vouched for, if any.
    pub fn vouched_kwp_mechanism(&self) -> Option<KwpMechanism> {
        self.kwp_vouched.get()
    }

    /// The SubjectPublicKeyInfo DER of an asymmetric key in the token: from CKA_MODULUS and
    /// CKA_PUBLIC_EXPONENT for RSA (readable on the private key), from the matching public key
    /// object's CKA_EC_POINT for EC (same CKA_ID, else same label).
    pub fn public_key_spki(&self, key: &KeyObject) -> Result<(KeySpec, Vec<u8>)> {
        match key.key_type {
            Some(k) if k == KeyType::RSA => {
                let (Some(n), Some(e)) = (&key.modulus, &key.public_exponent) else {
                    return Err(Error::new(
                        ErrorKind::Internal,
                        format!(
                            "the token does not reveal CKA_MODULUS/CKA_PUBLIC_EXPONENT of {}",
                            key.describe()
                        ),
                    ));
                };
                Ok((rsa_spec(n)?, der::rsa_spki(n, e)))
            }
            Some(k) if k == KeyType::EC => {
                let params = key.ec_params.as_ref().ok_or_else(|| {
                    Error::new(
                        ErrorKind::Internal,
                        format!(
                            "the token does not reveal CKA_EC_PARAMS of {}",
                            key.describe()
                        ),
                    )
                })?;
                let spec = der::ec_spec_from_params(params)?;
                let point = match &key.ec_point {
                    Some(p) => p.clone(),
                    None => self.find_ec_public_point(key)?,
                };
                let point = der::ec_point_from_attribute(spec, &point)?;
                Ok((spec, der::ec_spki(params, &point)))
            }
            _ => Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{} is not an RSA or EC key; it has no public key",
                    key.describe()
                ),
            )),
        }
    }

    fn find_ec_public_point(&self, key: &KeyObject) -> Result<Vec<u8>> {
        let mut queries = Vec::new();
        if !key.id.is_empty() {
            queries.push(ObjectQuery {
                label: None,
                id: Some(key.id.clone()),
                class: Some(ObjectClass::PUBLIC_KEY),
            });
        }
        if !key.label.is_empty() {
            queries.push(ObjectQuery {
                label: Some(key.label.clone()),
                id: None,
                class: Some(ObjectClass::PUBLIC_KEY),
            });
        }
        for q in queries {
            let found = self.find_objects(&q)?;
            let matching: Vec<_> = found
                .into_iter()
                .filter(|o| o.ec_params.as_ref() == key.ec_params.as_ref() && o.ec_point.is_some())
                .collect();
            if let [one] = matching.as_slice()
                && let Some(p) = &one.ec_point
            {
                return Ok(p.clone());
            }
        }
        Err(Error::new(
            ErrorKind::ObjectNotFound,
            format!(
                "the public key of {} was not found in the token (no public key object with the same CKA_ID or label); it is needed to verify the import",
                key.describe()
            ),
        ))
    }

    /// HMAC of `message` computed in the token with the secret key (needs CKA_SIGN=true).
    pub fn hmac(
        &self,
        alg: MacAlgorithmSpec,
        key: ObjectHandle,
        message: &[u8],
    ) -> Result<Vec<u8>> {
        let mech = match alg {
            MacAlgorithmSpec::HMAC_SHA_224 => Mechanism::Sha224Hmac,
            MacAlgorithmSpec::HMAC_SHA_256 => Mechanism::Sha256Hmac,
            MacAlgorithmSpec::HMAC_SHA_384 => Mechanism::Sha384Hmac,
            MacAlgorithmSpec::HMAC_SHA_512 => Mechanism::Sha512Hmac,
        };
        self.session
            .sign(&mech, key, message)
            .map_err(|e| map_ck(e, &format!("computing {alg} in the token")))
    }

    /// Find out what the token does, by doing it with known values in session objects (all
    /// destroyed afterwards): a known AES-256 key is RSA-OAEP-wrapped under a software RSA key
    /// for each hash and unwrapped here (the hash is vouched for only when the known key comes
    /// back); the same AES key wraps a known 20-byte secret with each AES key wrap with padding
    /// candidate (the configured hint first, then 0x210B and 0x210A), and a mechanism is used
    /// only when its output is exactly RFC 5649, as KMS unwraps it (NSS's 0x210A, PKCS#7 padding
    /// + RFC 3394, is not). The mechanism list is not trusted: it only names what to try.
    pub fn capabilities(&self) -> Result<TokenCapabilities> {
        let mechs = self.mechanisms().unwrap_or_default();
        let mut caps = TokenCapabilities {
            oaep: mechs.is_empty() || mechs.contains(&MechanismType::RSA_PKCS_OAEP),
            oaep_sha256: false,
            oaep_sha1: false,
            kwp: false,
            kwp_mechanism: None,
            aes_keygen: false,
            oaep_wraps_private_keys: false,
            notes: Vec::new(),
            kwp_findings: Vec::new(),
        };
        caps.aes_keygen = match self.generate_ephemeral_aes256() {
            Ok(_k) => true,
            Err(e) if e.kind() == ErrorKind::Pin => return Err(e),
            Err(e) => {
                tracing::debug!("no AES-256 key generation: {e}");
                false
            }
        };
        let known = match self.create_known_secret(KeyType::AES, &PROBE_AES_KEY, true) {
            Ok(k) => Some(k),
            Err(e) if e.kind() == ErrorKind::Pin => return Err(e),
            Err(e) => {
                tracing::debug!("cannot create the probe AES key: {e}");
                None
            }
        };
        if let (Some(known), Some(pair)) = (&known, probe_key_pair()) {
            let public = self.import_rsa_public_key(&pair.public_key_der())?;
            for hash in [OaepHash::Sha256, OaepHash::Sha1] {
                let alg = match hash {
                    OaepHash::Sha256 => keyferry_types::AlgorithmSpec::RSAES_OAEP_SHA_256,
                    OaepHash::Sha1 => keyferry_types::AlgorithmSpec::RSAES_OAEP_SHA_1,
                };
                let ok = match self.wrap_oaep(hash, public.handle(), known.handle()) {
                    Ok(ct) => keyferry_crypto::wrap::unwrap(alg, pair, &ct)
                        .is_ok_and(|pt| pt[..] == PROBE_AES_KEY[..]),
                    Err(e) if e.kind() == ErrorKind::Pin => return Err(e),
                    Err(e) => {
                        tracing::debug!("RSA-OAEP {} probe: {e}", hash.name());
                        false
                    }
                };
                match hash {
                    OaepHash::Sha256 => caps.oaep_sha256 = ok,
                    OaepHash::Sha1 => caps.oaep_sha1 = ok,
                }
            }
            caps.oaep = caps.oaep_sha256 || caps.oaep_sha1;
        }
        if let Some(known) = &known {
            let (vouched, findings) = self.probe_kwp(known)?;
            caps.kwp = vouched.is_some();
            caps.kwp_mechanism = vouched;
            caps.kwp_findings = findings;
            self.kwp_vouched.set(vouched);
            if let Some(v) = vouched
                && self.kwp_explicit
                && v != self.kwp
            {
                caps.notes.push(format!(
                    "{} (from the HSM profile or --kwp-mechanism) did not give RFC 5649 in the probe; {v} did and is used",
                    self.kwp
                ));
            }
        } else {
            caps.kwp_findings
                .push("the token refused to create the probe's session AES key".to_string());
        }
        if caps.oaep_sha1 || caps.oaep_sha256 {
            let hash = if caps.oaep_sha256 {
                OaepHash::Sha256
            } else {
                OaepHash::Sha1
            };
            caps.oaep_wraps_private_keys = self.probe_oaep_private_key(hash)?;
        }
        if !caps.oaep {
            caps.notes.push(format!(
                "token \"{}\" cannot RSA-OAEP-wrap a key so that it unwraps correctly (neither SHA-256 nor SHA-1); it cannot wrap for KMS",
                self.token_label
            ));
        } else if !caps.oaep_sha256 && caps.oaep_sha1 {
            caps.notes.push(format!(
                "token \"{}\" wraps with RSA-OAEP using SHA-1 only (SoftHSM2 2.6 has this limitation): the SHA-1 variant of the wrapping algorithm is used; SHA-1 in OAEP is still accepted by KMS and remains secure for this use",
                self.token_label
            ));
        }
        Ok(caps)
    }

    /// Try each AES key wrap with padding candidate on a known secret under the known AES key;
    /// the first whose output is RFC 5649 wins. Returns it and one line per candidate tried.
    fn probe_kwp(&self, kek: &TempObject<'_>) -> Result<(Option<KwpMechanism>, Vec<String>)> {
        let secret = self.create_known_secret(KeyType::GENERIC_SECRET, PROBE_SECRET, false)?;
        let expected = keyferry_crypto::wrap::kwp_wrap(&PROBE_AES_KEY, PROBE_SECRET)?;
        // SoftHSM2 and CloudHSM zero-pad the key to 8 bytes inside the RFC 5649 payload; KMS
        // accepts that for private keys (a DER element followed by < 8 zero bytes), which are
        // the only keys RSA_AES_KEY_WRAP carries.
        let mut padded = PROBE_SECRET.to_vec();
        padded.resize(PROBE_SECRET.len().div_ceil(8) * 8, 0);
        let zero_padded = keyferry_crypto::wrap::kwp_wrap(&PROBE_AES_KEY, &padded)?;
        let mut candidates = vec![
            self.kwp,
            KwpMechanism::AES_KEY_WRAP_KWP,
            KwpMechanism::AES_KEY_WRAP_PAD,
        ];
        if ModuleKind::of(&self.module_path) == ModuleKind::Nss {
            // CKM_NSS_AES_KEY_WRAP_PAD (CKM_NSS + 2), NSS's own padded AES key wrap.
            candidates.push(KwpMechanism(CKM_NSS_AES_KEY_WRAP_PAD));
        }
        let mut tried = Vec::new();
        let mut findings = Vec::new();
        for c in candidates {
            if tried.contains(&c) {
                continue;
            }
            tried.push(c);
            match self.wrap_kwp_with(c, kek.handle(), secret.handle()) {
                Ok(out) if out == expected => {
                    findings.push(format!("{c} gives RFC 5649"));
                    return Ok((Some(c), findings));
                }
                Ok(out) if out == zero_padded => {
                    findings.push(format!(
                        "{c} gives RFC 5649 over the key zero-padded to 8 bytes (as SoftHSM2 and CloudHSM do), which KMS accepts for private keys"
                    ));
                    return Ok((Some(c), findings));
                }
                Ok(out) => findings.push(format!(
                    "{c} works but its output is not RFC 5649 ({}){}",
                    kwp_variant(&out, expected.len()),
                    if c == KwpMechanism::AES_KEY_WRAP_PAD {
                        ", as PKCS#11 3.0 defines 0x210A and NSS implements it"
                    } else {
                        ""
                    }
                )),
                Err(e) if e.kind() == ErrorKind::Pin => return Err(e),
                Err(e) => {
                    tracing::debug!("{c}: {e}");
                    findings.push(format!(
                        "{c} is not supported{}",
                        if c == KwpMechanism::AES_KEY_WRAP_KWP && self.raw.is_none() {
                            " (cannot be sent)"
                        } else {
                            ""
                        }
                    ));
                }
            }
        }
        Ok((None, findings))
    }

    /// A session secret key with a known value (CKA_SENSITIVE false, extractable); `wrap` makes
    /// it usable as a key-encryption key.
    fn create_known_secret(
        &self,
        key_type: KeyType,
        value: &[u8],
        wrap: bool,
    ) -> Result<TempObject<'_>> {
        let mut t = vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(key_type),
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Value(value.to_vec()),
            Attribute::Label(b"keyferry-probe".to_vec()),
        ];
        if wrap {
            t.push(Attribute::Wrap(true));
        }
        let handle = self
            .session
            .create_object(&t)
            .map_err(|e| map_ck(e, "creating a probe session key"))?;
        Ok(TempObject {
            session: &self.session,
            handle,
        })
    }
}

/// What an AES key wrap with padding output that is not RFC 5649 looks like, for messages.
fn kwp_variant(out: &[u8], rfc5649_len: usize) -> &'static str {
    if out.len() == rfc5649_len {
        "same length, different bytes: e.g. PKCS#7 padding + RFC 3394"
    } else {
        "a different length: e.g. PKCS#7 padding + RFC 3394"
    }
}

/// The known AES-256 key of the probes (a session object; never a real key).
const PROBE_AES_KEY: [u8; 32] = *b"keyferry-known-answer-probe-key!";
/// The known secret the probe wraps: 20 bytes, so that the padding scheme shows.
const PROBE_SECRET: &[u8] = b"keyferry-kwp-probe!!";

/// A software RSA-2048 key pair for the OAEP probes, generated once per process.
fn probe_key_pair() -> Option<&'static keyferry_crypto::wrap::WrappingKeyPair> {
    static P: OnceLock<Option<keyferry_crypto::wrap::WrappingKeyPair>> = OnceLock::new();
    P.get_or_init(|| {
        keyferry_crypto::wrap::WrappingKeyPair::generate(keyferry_types::WrappingKeySpec::RSA_2048)
            .ok()
    })
    .as_ref()
}

impl TokenSession {
    /// Whether RSA-OAEP can wrap a private key: wrap a throwaway session EC P-256 key.
    fn probe_oaep_private_key(&self, hash: OaepHash) -> Result<bool> {
        let (pub_h, priv_h) = match self.session.generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::EcParams(der::OID_P256.to_vec()),
            ],
            &[
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(true),
                Attribute::Sign(true),
            ],
        ) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!("cannot generate a probe EC key: {e}");
                return Ok(false);
            }
        };
        let _pub_guard = TempObject {
            session: &self.session,
            handle: pub_h,
        };
        let _priv_guard = TempObject {
            session: &self.session,
            handle: priv_h,
        };
        let Some(pair) = probe_key_pair() else {
            return Ok(false);
        };
        let probe_pub = self.import_rsa_public_key(&pair.public_key_der())?;
        let alg = match hash {
            OaepHash::Sha256 => keyferry_types::AlgorithmSpec::RSAES_OAEP_SHA_256,
            OaepHash::Sha1 => keyferry_types::AlgorithmSpec::RSAES_OAEP_SHA_1,
        };
        match self.wrap_oaep(hash, probe_pub.handle(), priv_h) {
            // Vouched only when what comes out is a private key (PKCS#8), as KMS expects.
            Ok(ct) => Ok(keyferry_crypto::wrap::unwrap(alg, pair, &ct)
                .is_ok_and(|pt| keyferry_crypto::keyfile::private_key_to_pkcs8(&pt).is_ok())),
            Err(e) if e.kind() == ErrorKind::Internal || e.kind() == ErrorKind::Pin => Err(e),
            Err(e) => {
                tracing::debug!("RSA-OAEP cannot wrap private keys here: {e}");
                Ok(false)
            }
        }
    }
}

/// A throwaway RSA-2048 public key used only to probe which OAEP hashes the token can wrap with.
pub const PROBE_RSA_PUBLIC_KEY: &[u8] = include_bytes!("../data/probe-rsa2048-public.der");

/// The RSA key spec of a modulus.
pub fn rsa_spec(modulus: &[u8]) -> Result<KeySpec> {
    let skip = modulus.iter().take_while(|b| **b == 0).count();
    let bits = (modulus.len() - skip) * 8;
    match bits {
        2048 => Ok(KeySpec::RSA_2048),
        3072 => Ok(KeySpec::RSA_3072),
        4096 => Ok(KeySpec::RSA_4096),
        other => Err(Error::new(
            ErrorKind::Material,
            format!(
                "the RSA key has {other} bits; KMS imports RSA keys of 2048, 3072 or 4096 bits"
            ),
        )),
    }
}
