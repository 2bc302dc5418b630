//! Process hardening for the server: no core dumps (they would hold key material), not
//! dumpable (on Linux this also makes `/proc/<pid>/environ` and `/proc/<pid>/mem` readable by
//! root only, not by other processes of the same user), and as many file descriptors as the hard
//! limit allows (each connection is one); and, once the configuration is read, the values of
//! the secret-bearing environment variables overwritten with NUL bytes in the process's original
//! environment block (Linux: [`scrub_secret_env`]).

/// Apply what the platform allows; failures are logged, not fatal.
pub fn harden_process() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let zero = Rlimit {
            current: Some(0),
            maximum: Some(0),
        };
        if let Err(e) = setrlimit(Resource::Core, zero) {
            tracing::warn!(error = %e, "cannot disable core dumps");
        }
        let nofile = getrlimit(Resource::Nofile);
        if nofile.current != nofile.maximum {
            let raised = Rlimit {
                current: nofile.maximum,
                maximum: nofile.maximum,
            };
            if let Err(e) = setrlimit(Resource::Nofile, raised) {
                tracing::warn!(error = %e, "cannot raise the open-file limit");
            }
        }
    }
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::warn!(error = %e, "cannot mark the process not dumpable");
    }
}

/// The soft open-file limit now (for the start-up line and the connection cap check).
pub fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The environment variables whose values are secrets: overwritten by [`scrub_secret_env`].
/// `KEYFERRY_NEW_ROOT_KEY` and `PGPASSWORD` are not read by `serve` itself (sqlx reads
/// `PGPASSWORD` when it opens a PostgreSQL store), but a root key or a password in the environment
/// is scrubbed whoever reads it.
pub const SECRET_ENV: [&str; 5] = [
    "KEYFERRY_SECRET_ACCESS_KEY",
    "KEYFERRY_ROOT_KEY",
    "KEYFERRY_NEW_ROOT_KEY",
    "KEYFERRY_PKCS11_PIN",
    "PGPASSWORD",
];

/// `NAME=value` holds a secret: a name of [`SECRET_ENV`], a `KEYFERRY_DATABASE_URL` with a
/// password (`scheme://user:password@…` or a `password=` parameter), a `KEYFERRY_ROOT_KEY_PKCS11`
/// URI with a `pin-value`.
pub fn is_secret_env(name: &[u8], value: &[u8]) -> bool {
    if SECRET_ENV.iter().any(|s| s.as_bytes() == name) {
        return true;
    }
    let has = |needle: &[u8]| {
        value
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    match name {
        b"KEYFERRY_DATABASE_URL" => {
            let userinfo_has_colon = value
                .windows(3)
                .position(|w| w == b"://")
                .and_then(|s| {
                    let rest = &value[s + 3..];
                    let at = rest.iter().rposition(|&b| b == b'@')?;
                    Some(rest[..at].contains(&b':'))
                })
                .unwrap_or(false);
            userinfo_has_colon || has(b"password=")
        }
        b"KEYFERRY_ROOT_KEY_PKCS11" => has(b"pin-value="),
        _ => false,
    }
}

/// `env_start` and `env_end` (fields 50 and 51) of a `/proc/<pid>/stat` line: the addresses of
/// the environment block the kernel set up at `execve`. The fields are counted after the last
/// `)`, which ends the command name (it may hold spaces and parentheses).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn env_block_range(stat: &str) -> Option<(u64, u64)> {
    let (_, after_comm) = stat.rsplit_once(')')?;
    // The first field after the name is field 3 (state).
    let mut fields = after_comm.split_ascii_whitespace().skip(50 - 3);
    let start: u64 = fields.next()?.parse().ok()?;
    let end: u64 = fields.next()?.parse().ok()?;
    (start != 0 && end > start).then_some((start, end))
}

/// A secret value found in the environment block: its variable's name and where its bytes are
/// (offset from the block's start, length).
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct SecretValue {
    name: String,
    offset: usize,
    len: usize,
}

/// The non-empty values in `block` (`NAME=value` entries separated by NUL bytes, as
/// `/proc/<pid>/environ` shows them) for which `is_secret(name, value)` holds, every occurrence.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn secret_values(block: &[u8], is_secret: impl Fn(&[u8], &[u8]) -> bool) -> Vec<SecretValue> {
    let mut out = Vec::new();
    let mut offset = 0;
    for entry in block.split(|&b| b == 0) {
        // As libc and Rust's std read an entry: the name ends at the first '=' after its first byte.
        if let Some(eq) = entry.iter().skip(1).position(|&b| b == b'=').map(|p| p + 1) {
            let (name, value) = (&entry[..eq], &entry[eq + 1..]);
            if !value.is_empty() && is_secret(name, value) {
                out.push(SecretValue {
                    name: String::from_utf8_lossy(name).into_owned(),
                    offset: offset + eq + 1,
                    len: value.len(),
                });
            }
        }
        offset += entry.len() + 1;
    }
    out
}

/// Overwrite the values of the secret-bearing variables ([`is_secret_env`]) with NUL bytes in
/// place, in the environment block the kernel gave the process (which `/proc/<pid>/environ`
/// shows and `getenv` reads): afterwards they read as empty. Call it once everything that reads
/// them has read them. No `unsafe`: the block is found from `/proc/self/stat` and
/// `/proc/self/environ` and written through `/proc/self/mem`. Where that is not possible (not
/// Linux, no `/proc`, the write refused) one warning is logged, naming no value.
pub fn scrub_secret_env() {
    #[cfg(target_os = "linux")]
    match scrub_env_linux(is_secret_env) {
        Ok(names) if names.is_empty() => {}
        Ok(names) => tracing::info!(
            variables = %names.join(","),
            "secret environment values overwritten in place"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            "cannot overwrite the secret environment values in place; they stay in /proc/<pid>/environ (readable by root only)"
        ),
    }
    #[cfg(not(target_os = "linux"))]
    {
        let set: Vec<String> = std::env::vars_os()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), v))
            .filter(|(k, v)| {
                !v.is_empty() && is_secret_env(k.as_bytes(), v.to_string_lossy().as_bytes())
            })
            .map(|(k, _)| k)
            .collect();
        if !set.is_empty() {
            tracing::warn!(
                variables = %set.join(","),
                "secret environment values cannot be removed on this platform; prefer the _FILE variables"
            );
        }
    }
}

/// The Linux scrub: the names of the variables overwritten, or why it failed.
#[cfg(target_os = "linux")]
fn scrub_env_linux(is_secret: impl Fn(&[u8], &[u8]) -> bool) -> Result<Vec<String>, String> {
    use std::os::unix::fs::FileExt;
    let stat = std::fs::read_to_string("/proc/self/stat")
        .map_err(|e| format!("cannot read /proc/self/stat: {e}"))?;
    let (start, end) = env_block_range(&stat)
        .ok_or_else(|| "no environment block in /proc/self/stat".to_owned())?;
    let read_block = || {
        std::fs::read("/proc/self/environ")
            .map_err(|e| format!("cannot read /proc/self/environ: {e}"))
    };
    let block = zeroize::Zeroizing::new(read_block()?);
    if block.len() as u64 > end - start {
        return Err("/proc/self/environ is longer than the environment block".to_owned());
    }
    let found = secret_values(&block, &is_secret);
    drop(block);
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let mem = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/mem")
        .map_err(|e| format!("cannot open /proc/self/mem for writing: {e}"))?;
    for v in &found {
        let zeros = vec![0u8; v.len];
        mem.write_all_at(&zeros, start + v.offset as u64)
            .map_err(|e| format!("cannot overwrite {}: {e}", v.name))?;
    }
    // Check: every value now reads as NUL bytes.
    let after = zeroize::Zeroizing::new(read_block()?);
    for v in &found {
        let now = after.get(v.offset..v.offset + v.len);
        if now.is_none_or(|b| b.iter().any(|&c| c != 0)) {
            return Err(format!("{} still holds its value after the write", v.name));
        }
    }
    let mut names: Vec<String> = found.into_iter().map(|v| v.name).collect();
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A `/proc/<pid>/stat` line with `comm` and fields 3.. as the kernel writes them; fields 50
    /// and 51 are `env_start`/`env_end`.
    fn stat_line(comm: &str, env_start: u64, env_end: u64) -> String {
        let mut fields: Vec<String> = (3..=52).map(|i| (i * 10).to_string()).collect();
        fields[0] = "S".into();
        fields[50 - 3] = env_start.to_string();
        fields[51 - 3] = env_end.to_string();
        format!("4242 ({comm}) {}\n", fields.join(" "))
    }

    #[test]
    fn env_block_range_counts_fields_after_the_last_parenthesis() {
        assert_eq!(
            env_block_range(&stat_line("keyferry", 140_000, 140_500)),
            Some((140_000, 140_500))
        );
        // A command name with spaces, ')' and digits inside must not shift the fields.
        for comm in ["a b) 1 2 3", ") (", "x)", "tokio-runtime-w", "((1) 2)"] {
            assert_eq!(
                env_block_range(&stat_line(comm, 7_000_000, 7_000_123)),
                Some((7_000_000, 7_000_123)),
                "{comm:?}"
            );
        }
        // Older kernels (fewer fields), zeros (no mm), garbage: none.
        assert_eq!(env_block_range("1 (init) S 0 1 1"), None);
        assert_eq!(env_block_range(&stat_line("k", 0, 0)), None);
        assert_eq!(env_block_range("no parenthesis at all"), None);
    }

    #[test]
    fn env_block_range_of_this_process_holds_its_environ() {
        #[cfg(target_os = "linux")]
        {
            let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
            let (start, end) = env_block_range(&stat).unwrap();
            let environ = std::fs::read("/proc/self/environ").unwrap();
            assert!(environ.len() as u64 <= end - start);
        }
    }

    #[test]
    fn secret_values_are_located_by_offset() {
        let block = b"PATH=/bin\0KEYFERRY_ROOT_KEY=abcd\0KEYFERRY_ACCESS_KEY_ID=AKIA\0\
                      KEYFERRY_SECRET_ACCESS_KEY=s3cr=t\0KEYFERRY_PKCS11_PIN=\0\
                      =weird\0KEYFERRY_ROOT_KEY=again\0";
        let found = secret_values(block, is_secret_env);
        let shown: Vec<(&str, &[u8])> = found
            .iter()
            .map(|v| (v.name.as_str(), &block[v.offset..v.offset + v.len]))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("KEYFERRY_ROOT_KEY", &b"abcd"[..]),
                ("KEYFERRY_SECRET_ACCESS_KEY", &b"s3cr=t"[..]),
                ("KEYFERRY_ROOT_KEY", &b"again"[..]),
            ]
        );
        // The byte before each value is its '=' and the byte after it the entry's NUL.
        for v in &found {
            assert_eq!(block[v.offset - 1], b'=');
            assert_eq!(block[v.offset + v.len], 0);
        }
        // A block without a final NUL (truncated) still finds its last entry.
        let found = secret_values(b"A=1\0KEYFERRY_PKCS11_PIN=1234", is_secret_env);
        assert_eq!(
            found,
            vec![SecretValue {
                name: "KEYFERRY_PKCS11_PIN".into(),
                offset: 24,
                len: 4
            }]
        );
    }

    #[test]
    fn which_values_are_secret() {
        assert!(is_secret_env(b"KEYFERRY_SECRET_ACCESS_KEY", b"x"));
        assert!(is_secret_env(b"KEYFERRY_ROOT_KEY", b"ab"));
        assert!(is_secret_env(b"KEYFERRY_PKCS11_PIN", b"1234"));
        assert!(!is_secret_env(b"KEYFERRY_ACCESS_KEY_ID", b"AKIA"));
        assert!(!is_secret_env(b"KEYFERRY_ROOT_KEY_FILE", b"/k"));
        assert!(!is_secret_env(b"KEYFERRY_SECRET_ACCESS_KEY_FILE", b"/s"));
        assert!(is_secret_env(
            b"KEYFERRY_DATABASE_URL",
            b"postgres://kf:pw@db:5432/kf"
        ));
        assert!(is_secret_env(
            b"KEYFERRY_DATABASE_URL",
            b"postgres://db/kf?user=kf&password=pw"
        ));
        assert!(!is_secret_env(
            b"KEYFERRY_DATABASE_URL",
            b"postgres://kf@db:5432/kf"
        ));
        assert!(!is_secret_env(
            b"KEYFERRY_DATABASE_URL",
            b"postgres://db:5432/kf"
        ));
        assert!(is_secret_env(
            b"KEYFERRY_ROOT_KEY_PKCS11",
            b"pkcs11:token=t;object=o?pin-value=1234"
        ));
        assert!(!is_secret_env(
            b"KEYFERRY_ROOT_KEY_PKCS11",
            b"pkcs11:token=t;object=o?pin-source=/p"
        ));
    }
}
