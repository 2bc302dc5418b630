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

/// A fresh 96-bit AES-GCM nonce.
///
/// Nonces are published (they are part of every ciphertext) and need only be unique, so they
/// are handed out from a per-thread block of aws-lc DRBG output instead of one `RAND_bytes` call
/// (and its per-call RDRAND reseed, slow in a VM) per encryption. Every byte of a block is
/// handed out once. Keyferry never forks without `exec`, so no two processes share a block.
pub fn nonce() -> [u8; 12] {
    use std::cell::RefCell;
    const BLOCK: usize = 12 * 64;
    thread_local! {
        static POOL: RefCell<([u8; BLOCK], usize)> = const { RefCell::new(([0u8; BLOCK], BLOCK)) };
    }
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        let (block, used) = &mut *p;
        if *used == BLOCK {
            fill(block);
            *used = 0;
        }
        let mut n = [0u8; 12];
        n.copy_from_slice(&block[*used..*used + 12]);
        *used += 12;
        n
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_do_not_repeat_across_blocks_and_threads() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            assert!(seen.insert(nonce()), "a nonce repeated");
        }
        let other: Vec<[u8; 12]> = std::thread::spawn(|| (0..200).map(|_| nonce()).collect())
            .join()
            .expect("thread");
        for n in other {
            assert!(seen.insert(n), "a nonce repeated across threads");
        }
        assert!(!seen.contains(&[0u8; 12]));
    }

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
