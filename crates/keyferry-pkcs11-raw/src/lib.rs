//! The few raw PKCS#11 calls that the `cryptoki` crate (0.12, the newest) cannot make, kept in
//! one small crate so that every other crate of the workspace keeps `unsafe_code = "forbid"`:
//!
//! - `C_WrapKey` with any mechanism number and parameter bytes: cryptoki has no variant for
//!   `CKM_AES_KEY_WRAP_KWP` (0x210B, PKCS#11 3.0's RFC 5649) and builds `MechanismType`s only
//!   for its known names or vendor-defined values;
//! - `C_GetTokenInfo` read field by field: cryptoki refuses the whole structure when `utcTime`
//!   is not a valid date (openCryptoki fills it with blanks although it sets
//!   `CKF_CLOCK_ON_TOKEN`), which hid such tokens;
//! - `C_Initialize` with `pReserved` (NSS softoken reads its database directory from there).
//!
//! The module is opened a second time with `dlopen`, which returns the handle the process
//! already has for the same file, so the function list is the one cryptoki uses and session
//! and object handles are shared.

use std::ffi::{CStr, c_void};
use std::path::Path;
use std::ptr::NonNull;

use cryptoki::context::Function;
use cryptoki::context::{CInitializeArgs, CInitializeFlags};
use cryptoki::error::{Error, Rv};
use cryptoki_sys as sys;

/// A PKCS#11 module's function list, for the raw calls below.
pub struct RawModule {
    _lib: libloading::Library,
    functions: NonNull<sys::CK_FUNCTION_LIST>,
}

// SAFETY: the function list is a static table inside the loaded library, never written by us;
// PKCS#11 modules initialised with CKF_OS_LOCKING_OK (as Keyferry does) are thread-safe.
unsafe impl Send for RawModule {}
// SAFETY: as above.
unsafe impl Sync for RawModule {}

impl std::fmt::Debug for RawModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawModule")
    }
}

/// What `C_GetTokenInfo` says, with only the text fields and flags (no dates, no counters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTokenInfo {
    /// CKA_LABEL of the token (trailing blanks removed).
    pub label: String,
    /// manufacturerID.
    pub manufacturer: String,
    /// model.
    pub model: String,
    /// serialNumber.
    pub serial: String,
    /// flags (CKF_TOKEN_INITIALIZED = 0x400, CKF_USER_PIN_INITIALIZED = 0x8, …).
    pub flags: u64,
}

/// CKF_TOKEN_INITIALIZED.
pub const CKF_TOKEN_INITIALIZED: u64 = 0x0000_0400;
/// CKF_USER_PIN_INITIALIZED.
pub const CKF_USER_PIN_INITIALIZED: u64 = 0x0000_0008;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_end_matches([' ', '\0'])
        .to_string()
}

impl RawModule {
    /// Open `path` (already loaded by cryptoki or not) and get its function list.
    pub fn open(path: &Path) -> Result<Self, String> {
        // SAFETY: loading a PKCS#11 module runs its initialisers, exactly as cryptoki's own
        // Pkcs11::new does for the same file.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
        // SAFETY: C_GetFunctionList has this signature in every PKCS#11 module.
        let get: libloading::Symbol<
            unsafe extern "C" fn(*mut *mut sys::CK_FUNCTION_LIST) -> sys::CK_RV,
        > = unsafe { lib.get(b"C_GetFunctionList\0") }.map_err(|e| e.to_string())?;
        let mut list: *mut sys::CK_FUNCTION_LIST = std::ptr::null_mut();
        // SAFETY: `list` is a valid out pointer.
        let rv = unsafe { get(&mut list) };
        if rv != sys::CKR_OK {
            return Err(format!("C_GetFunctionList returned {rv:#x}"));
        }
        let functions = NonNull::new(list).ok_or("C_GetFunctionList returned no list")?;
        Ok(Self {
            _lib: lib,
            functions,
        })
    }

    fn list(&self) -> &sys::CK_FUNCTION_LIST {
        // SAFETY: the pointer came from C_GetFunctionList and lives as long as the library,
        // which `self` keeps loaded.
        unsafe { self.functions.as_ref() }
    }

    /// `C_GetTokenInfo`, reading the text fields and flags only.
    pub fn token_info(&self, slot: u64) -> cryptoki::error::Result<RawTokenInfo> {
        let f = self
            .list()
            .C_GetTokenInfo
            .ok_or(Error::NullFunctionPointer)?;
        let mut info = sys::CK_TOKEN_INFO::default();
        // SAFETY: `info` is a valid, writable CK_TOKEN_INFO.
        let rv = unsafe { f(slot as sys::CK_SLOT_ID, &mut info) };
        Rv::from(rv).into_result(Function::GetTokenInfo)?;
        Ok(RawTokenInfo {
            label: text(&info.label),
            manufacturer: text(&info.manufacturerID),
            model: text(&info.model),
            serial: text(&info.serialNumber),
            flags: info.flags,
        })
    }

    /// `C_WrapKey` with mechanism number `mechanism` and `parameter` as its raw parameter bytes.
    pub fn wrap_key(
        &self,
        session: u64,
        mechanism: u64,
        parameter: Option<&[u8]>,
        wrapping_key: u64,
        key: u64,
    ) -> cryptoki::error::Result<Vec<u8>> {
        let f = self.list().C_WrapKey.ok_or(Error::NullFunctionPointer)?;
        let mut param = parameter.map(<[u8]>::to_vec).unwrap_or_default();
        let mut mech = sys::CK_MECHANISM {
            mechanism: mechanism as sys::CK_MECHANISM_TYPE,
            pParameter: if param.is_empty() {
                std::ptr::null_mut()
            } else {
                param.as_mut_ptr().cast::<c_void>()
            },
            ulParameterLen: param.len() as sys::CK_ULONG,
        };
        let mut len: sys::CK_ULONG = 0;
        // SAFETY: a size query: null output buffer and a valid length pointer; `mech` and the
        // parameter bytes outlive the call.
        let rv = unsafe {
            f(
                session as sys::CK_SESSION_HANDLE,
                &mut mech,
                wrapping_key as sys::CK_OBJECT_HANDLE,
                key as sys::CK_OBJECT_HANDLE,
                std::ptr::null_mut(),
                &mut len,
            )
        };
        Rv::from(rv).into_result(Function::WrapKey)?;
        let mut out = vec![0u8; len as usize];
        // SAFETY: `out` has `len` writable bytes, as the module asked for.
        let rv = unsafe {
            f(
                session as sys::CK_SESSION_HANDLE,
                &mut mech,
                wrapping_key as sys::CK_OBJECT_HANDLE,
                key as sys::CK_OBJECT_HANDLE,
                out.as_mut_ptr(),
                &mut len,
            )
        };
        Rv::from(rv).into_result(Function::WrapKey)?;
        out.truncate(len as usize);
        Ok(out)
    }
}

/// `C_Initialize` arguments whose `pReserved` points at `reserved` (a NUL-terminated string, as
/// NSS softoken expects: `configdir='sql:/path' certPrefix='' keyPrefix='' secmod='secmod.db'`).
pub fn init_args_with_reserved(
    flags: CInitializeFlags,
    reserved: &'static CStr,
) -> CInitializeArgs {
    let ptr = NonNull::from(reserved).cast::<c_void>();
    // SAFETY: the pointer is to a 'static, NUL-terminated string, which is what the modules that
    // read pReserved (NSS softoken) expect; modules that do not read it ignore it.
    unsafe { CInitializeArgs::new_with_reserved(flags, ptr) }
}
