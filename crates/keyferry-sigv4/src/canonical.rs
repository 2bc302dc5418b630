//! The SigV4 canonical request, hashed incrementally (no intermediate string).

use aws_lc_rs::digest;
use http::HeaderMap;

const HEX: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Lowercase hex of a 32-byte value into `buf`.
pub(crate) fn hex_lower<'b>(bytes: &[u8], buf: &'b mut [u8; 64]) -> &'b str {
    for (i, b) in bytes.iter().take(32).enumerate() {
        buf[2 * i] = HEX[usize::from(b >> 4)];
        buf[2 * i + 1] = HEX[usize::from(b & 0x0f)];
    }
    // Only ASCII hex digits were written.
    std::str::from_utf8(&buf[..]).unwrap_or("")
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 percent-encoding of `input` (keeping `/` if `keep_slash`), fed to `out`.
fn uri_encode(input: &[u8], keep_slash: bool, out: &mut impl FnMut(&[u8])) {
    let mut start = 0;
    for (i, &b) in input.iter().enumerate() {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            continue;
        }
        if start < i {
            out(&input[start..i]);
        }
        out(&[
            b'%',
            HEX_UPPER[usize::from(b >> 4)],
            HEX_UPPER[usize::from(b & 0x0f)],
        ]);
        start = i + 1;
    }
    if start < input.len() {
        out(&input[start..]);
    }
}

fn uri_encode_to_vec(input: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(input.len());
    uri_encode(input, false, &mut |b| v.extend_from_slice(b));
    v
}

fn percent_decode(input: &str) -> Vec<u8> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The canonical URI as botocore computes it for non-S3 services: remove dot segments and
/// empty segments, keep a trailing slash, then URI-encode the (already encoded) path again.
fn canonical_uri(path: &str, out: &mut impl FnMut(&[u8])) {
    if path.is_empty() || path == "/" {
        out(b"/");
        return;
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    if path.starts_with('/') {
        out(b"/");
    }
    for (i, seg) in segments.iter().enumerate() {
        if i > 0 {
            out(b"/");
        }
        uri_encode(seg.as_bytes(), false, out);
    }
    if path.ends_with('/') && !segments.is_empty() {
        out(b"/");
    }
}

/// Sorted, re-encoded `name=value` pairs joined by `&`.
fn canonical_query(query: &str, out: &mut impl FnMut(&[u8])) {
    if query.is_empty() {
        return;
    }
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode_to_vec(&percent_decode(k)),
                uri_encode_to_vec(&percent_decode(v)),
            )
        })
        .collect();
    pairs.sort();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out(b"&");
        }
        out(k);
        out(b"=");
        out(v);
    }
}

/// Header value trimmed, inner whitespace runs collapsed to one space (`' '.join(v.split())`).
fn header_value(value: &[u8], out: &mut impl FnMut(&[u8])) {
    let mut first = true;
    for word in value
        .split(|b| b.is_ascii_whitespace() || *b == 0x0b)
        .filter(|w| !w.is_empty())
    {
        if !first {
            out(b" ");
        }
        out(word);
        first = false;
    }
}

/// SHA-256 of the canonical request.
pub(crate) fn canonical_request_hash<'n>(
    method: &str,
    path: &str,
    query: &str,
    names: impl Iterator<Item = &'n str>,
    signed_headers: &str,
    headers: &HeaderMap,
    payload_hash_hex: &str,
) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut feed = |b: &[u8]| ctx.update(b);
    feed(method.as_bytes());
    feed(b"\n");
    canonical_uri(path, &mut feed);
    feed(b"\n");
    canonical_query(query, &mut feed);
    feed(b"\n");
    for name in names {
        feed(name.as_bytes());
        feed(b":");
        for (i, v) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                feed(b",");
            }
            header_value(v.as_bytes(), &mut feed);
        }
        feed(b"\n");
    }
    feed(b"\n");
    feed(signed_headers.as_bytes());
    feed(b"\n");
    feed(payload_hash_hex.as_bytes());
    let d = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Lower-case, sorted, de-duplicated names of the headers to sign.
pub(crate) fn signable_header_names(headers: &HeaderMap, exclude: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = headers
        .keys()
        .map(|k| k.as_str())
        .filter(|k| !exclude.contains(k))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(f: impl FnOnce(&mut dyn FnMut(&[u8]))) -> String {
        let mut v = Vec::new();
        f(&mut |b| v.extend_from_slice(b));
        String::from_utf8(v).unwrap_or_default()
    }

    #[test]
    fn uri_normalisation_and_double_encoding() {
        let c = |p: &str| collect(|o| canonical_uri(p, &mut |b| o(b)));
        assert_eq!(c(""), "/");
        assert_eq!(c("/"), "/");
        assert_eq!(c("/example/.."), "/");
        assert_eq!(c("/./a//b/../c/"), "/a/c/");
        assert_eq!(c("/%20/foo"), "/%2520/foo");
        assert_eq!(c("/-._~"), "/-._~");
        assert_eq!(c("/ሴ"), "/%E1%88%B4");
    }

    #[test]
    fn query_sorted_and_encoded() {
        let c = |q: &str| collect(|o| canonical_query(q, &mut |b| o(b)));
        assert_eq!(c(""), "");
        assert_eq!(
            c("Param2=value2&Param1=value1"),
            "Param1=value1&Param2=value2"
        );
        assert_eq!(
            c("Param1=value2&Param1=Value1"),
            "Param1=Value1&Param1=value2"
        );
        assert_eq!(c("a=b c&flag"), "a=b%20c&flag=");
        assert_eq!(c("k=%7e%41"), "k=~A");
        assert_eq!(c("k=100%"), "k=100%25");
    }

    #[test]
    fn header_values_trimmed_and_collapsed() {
        let c = |v: &[u8]| collect(|o| header_value(v, &mut |b| o(b)));
        assert_eq!(c(b"  a   b\t c  "), "a b c");
        assert_eq!(c(b""), "");
    }
}
