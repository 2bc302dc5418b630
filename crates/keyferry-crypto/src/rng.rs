//! Random bytes from the aws-lc-rs system RNG.

use crate::Secret;

/// `n` fresh random bytes, in a zeroizing buffer.
pub fn random_bytes(n: usize) -> Secret {
    let mut out = Secret::new(vec![0u8; n]);
    fill(&mut out);
    out
}

/// Fill `dest` with random bytes.
///
/// aws-lc's `RAND_bytes` never reports failure: when the entropy source fails it aborts the process
/// itself. The `Result` of the Rust wrapper is therefore always `Ok`; should it ever not be, aborting
/// is the only safe choice (continuing with predictable bytes would be far worse).
pub(crate) fn fill(dest: &mut [u8]) {
    if aws_lc_rs::rand::fill(dest).is_err() {
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_distinct_values() {
        assert!(random_bytes(0).is_empty());
        let a = random_bytes(32);
        let b = random_bytes(32);
        assert_eq!(a.len(), 32);
        assert_ne!(*a, *b);
        assert_ne!(*a, vec![0u8; 32]);
    }
}
