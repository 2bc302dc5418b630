//! PEM parsing (RFC 7468) with a small strict base64 decoder, so the crate needs no extra dependency.

use crate::Secret;

/// One PEM block: its label, whether it carries RFC 1421 encryption headers, and its DER contents.
pub(crate) struct PemBlock {
    pub(crate) label: String,
    pub(crate) encrypted_headers: bool,
    pub(crate) der: Secret,
}

fn b64_value(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some(u32::from(c - b'A')),
        b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Decode standard base64, ignoring ASCII whitespace; `None` on any other invalid input.
pub(crate) fn base64_decode(text: &[u8]) -> Option<Secret> {
    let mut clean: Vec<u8> = text
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if !clean.len().is_multiple_of(4) {
        clean.fill(0);
        return None;
    }
    let pad = clean.iter().rev().take_while(|c| **c == b'=').count();
    if pad > 2 {
        return None;
    }
    let mut out = Secret::new(Vec::with_capacity(clean.len() / 4 * 3));
    let body_len = clean.len() - pad;
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut ok = true;
    for &c in &clean[..body_len] {
        match b64_value(c) {
            Some(v) => {
                acc = (acc << 6) | v;
                bits += 6;
                if bits >= 8 {
                    bits -= 8;
                    out.push((acc >> bits) as u8);
                    acc &= (1 << bits) - 1;
                }
            }
            None => ok = false,
        }
    }
    clean.fill(0);
    // Leftover bits must be zero padding bits.
    (ok && acc == 0).then_some(out)
}

/// Encode bytes as standard base64 with padding.
#[cfg(test)]
pub(crate) fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Whether the input looks like PEM text (starts with a BEGIN line after optional whitespace).
pub(crate) fn is_pem(input: &[u8]) -> bool {
    let start = input
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(input.len());
    input[start..].starts_with(b"-----BEGIN ")
}

/// All PEM blocks in the input, in order; `None` if the PEM is malformed.
pub(crate) fn parse_blocks(input: &[u8]) -> Option<Vec<PemBlock>> {
    let text = std::str::from_utf8(input).ok()?;
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.trim();
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = zeroize::Zeroizing::new(String::new());
        let mut encrypted_headers = false;
        let mut closed = false;
        for l in lines.by_ref() {
            let l = l.trim();
            if l == end {
                closed = true;
                break;
            }
            if l.contains(':') {
                // RFC 1421 headers such as "Proc-Type: 4,ENCRYPTED" / "DEK-Info: ...".
                encrypted_headers |= l.contains("ENCRYPTED") || l.starts_with("DEK-Info");
                continue;
            }
            body.push_str(l);
        }
        if !closed {
            return None;
        }
        let der = base64_decode(body.as_bytes())?;
        blocks.push(PemBlock {
            label: label.to_owned(),
            encrypted_headers,
            der,
        });
    }
    Some(blocks)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn base64_round_trip_and_rejects() {
        for n in 0..40u8 {
            let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            let enc = base64_encode(&data);
            assert_eq!(*base64_decode(enc.as_bytes()).unwrap(), data);
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(&base64_decode(b"Zm9v\nYg==").unwrap()[..], b"foob");
        assert!(base64_decode(b"Zm9").is_none());
        assert!(base64_decode(b"Zm9*").is_none());
        assert!(base64_decode(b"Zh==").is_none()); // non-zero padding bits
        assert!(base64_decode(b"Z===").is_none());
    }

    #[test]
    fn blocks() {
        let pem = "junk\n-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n\
                   -----BEGIN X-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES\n\nZm9v\n-----END X-----\n";
        assert!(is_pem(format!("  \n{pem}").as_bytes()) || !is_pem(pem.as_bytes()));
        let b = parse_blocks(pem.as_bytes()).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].label, "EC PARAMETERS");
        assert!(!b[0].encrypted_headers);
        assert!(b[1].encrypted_headers);
        assert_eq!(&b[1].der[..], b"foo");
        assert!(parse_blocks(b"-----BEGIN X-----\nZm9v\n").is_none());
    }
}
