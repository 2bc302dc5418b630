//! Process hardening for the server: no core dumps (they would hold key material), not
//! dumpable (on Linux this also makes `/proc/<pid>/environ` and `/proc/<pid>/mem` readable by
//! root only, not by other processes of the same user), and as many file descriptors as the hard
//! limit allows (each connection is one).

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
