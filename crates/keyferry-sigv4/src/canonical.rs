//! The SigV4 canonical request, built in one reused buffer and hashed with one digest call
//! (many small digest updates through the aws-lc FFI cost more than the copy).

use std::cell::Cell;

use aws_lc_rs::digest;
use http::{HeaderMap, HeaderValue};

const HEX: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Two lowercase hex digits per byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 0x0f]];
        i += 1;
    }
    t
};

/// Lowercase hex (ASCII) of (the first 32 bytes of) a 32-byte value into `buf`.
pub(crate) fn hex_lower<'b>(bytes: &[u8], buf: &'b mut [u8; 64]) -> &'b [u8] {
    for (pair, b) in buf.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(*b)]);
    }
    &buf[..]
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
    let is_space = |b: &u8| b.is_ascii_whitespace() || *b == 0x0b;
    // The common case: a value without any whitespace (all of which is at most b' ') is its
    // own canonical form. A fold without early exit, so that it vectorises.
    if !value.iter().fold(false, |any, &b| any | (b <= b' ')) {
        out(value);
        return;
    }
    let mut first = true;
    for word in value.split(is_space).filter(|w| !w.is_empty()) {
        if !first {
            out(b" ");
        }
        out(word);
        first = false;
    }
}

/// Any `A`..=`Z` in `s` (a fold without early exit, so that it vectorises).
pub(crate) fn has_ascii_uppercase(s: &str) -> bool {
    s.bytes().fold(false, |any, b| any | b.is_ascii_uppercase())
}

/// The index of the first `needle` in `hay`, eight bytes at a time.
pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(needle);
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(word) ^ pattern;
        // The lowest set high bit marks the first zero byte of `x` (borrows only make
        // false positives above a true zero byte).
        let zero = x.wrapping_sub(LO) & !x & HI;
        if zero != 0 {
            return Some(base + (zero.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    let tail = chunks.remainder();
    tail.iter().position(|&b| b == needle).map(|i| base + i)
}

/// `s` split at every `sep` byte (an ASCII separator), like `str::split(char)` but without
/// the char searcher.
pub(crate) fn split_ascii(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match find_byte(r.as_bytes(), sep) {
            Some(i) => {
                // `i` is the index of an ASCII byte, so both sides are on char boundaries.
                let (head, tail) = r.split_at(i);
                rest = tail.get(1..);
                Some(head)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// With at most this many header values, a signed header's values are found by scanning the
/// map instead of a hashed `get_all` per name (which re-parses and re-hashes the name).
const SCAN_MAX_VALUES: usize = 16;

/// `name:value[,value...]\n` for one signed header, values in `get_all` order.
fn canonical_header<'v>(
    name: &str,
    values: impl Iterator<Item = &'v HeaderValue>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(name.as_bytes());
    out.push(b':');
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        header_value(v.as_bytes(), &mut |b| out.extend_from_slice(b));
    }
    out.push(b'\n');
}

/// The canonical headers for the `;`-separated `signed_headers`, in that order.
fn canonical_headers(signed_headers: &str, headers: &HeaderMap, out: &mut Vec<u8>) {
    let names = split_ascii(signed_headers, b';');
    if headers.len() > SCAN_MAX_VALUES {
        for name in names {
            canonical_header(name, headers.get_all(name).iter(), out);
        }
        return;
    }
    // One pass over the map; `iter` yields each name's values together and in insertion
    // order, as `get_all` does.
    let mut entries: [(&str, Option<&HeaderValue>); SCAN_MAX_VALUES] =
        [("", None); SCAN_MAX_VALUES];
    for (slot, (k, v)) in entries.iter_mut().zip(headers) {
        *slot = (k.as_str(), Some(v));
    }
    let entries = &entries[..headers.len().min(SCAN_MAX_VALUES)];
    let any_uppercase = has_ascii_uppercase(signed_headers);
    for name in names {
        if any_uppercase && has_ascii_uppercase(name) {
            // `get_all` lowercases the name it is given; the stored names are lowercase.
            canonical_header(name, headers.get_all(name).iter(), out);
        } else {
            // A name that is not a valid header name (`:authority`) matches none, as
            // `get_all` finds none.
            let values = entries
                .iter()
                .filter(|(k, _)| *k == name)
                .filter_map(|(_, v)| *v);
            canonical_header(name, values, out);
        }
    }
}

/// The canonical request, written into `out` (appended).
pub(crate) fn write_canonical_request(
    out: &mut Vec<u8>,
    method: &str,
    path: &str,
    query: &str,
    signed_headers: &str,
    headers: &HeaderMap,
    payload_hash_hex: &[u8],
) {
    out.extend_from_slice(method.as_bytes());
    out.push(b'\n');
    canonical_uri(path, &mut |b| out.extend_from_slice(b));
    out.push(b'\n');
    canonical_query(query, &mut |b| out.extend_from_slice(b));
    out.push(b'\n');
    canonical_headers(signed_headers, headers, out);
    out.push(b'\n');
    out.extend_from_slice(signed_headers.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash_hex);
}

/// Scratch buffers above this size are not kept for the next request on the thread.
const SCRATCH_KEEP: usize = 16 * 1024;
/// Initial scratch size: a typical canonical request is a few hundred bytes.
const SCRATCH_INITIAL: usize = 1024;

thread_local! {
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Run `f` with an empty byte buffer reused across calls on this thread (taken out of the
/// thread-local while `f` runs, so a nested call just gets a fresh one). Only public request
/// data goes in it, never secrets.
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buf = SCRATCH.try_with(Cell::take).unwrap_or_default();
    buf.clear();
    if buf.capacity() == 0 {
        buf.reserve(SCRATCH_INITIAL);
    }
    let r = f(&mut buf);
    if buf.capacity() <= SCRATCH_KEEP {
        // Fails only while the thread is being torn down; the buffer is then just dropped.
        let _ = SCRATCH.try_with(|c| c.set(buf));
    }
    r
}

/// SHA-256 of the canonical request.
pub(crate) fn canonical_request_hash(
    method: &str,
    path: &str,
    query: &str,
    signed_headers: &str,
    headers: &HeaderMap,
    payload_hash_hex: &[u8],
) -> [u8; 32] {
    with_scratch(|buf| {
        write_canonical_request(
            buf,
            method,
            path,
            query,
            signed_headers,
            headers,
            payload_hash_hex,
        );
        let d = digest::digest(&digest::SHA256, buf);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    })
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
#[allow(clippy::unwrap_used)]
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
        assert_eq!(c(b"plain"), "plain");
        assert_eq!(c(b"\x0ba\x0bb\x0c"), "a b");
        assert_eq!(c(b"   "), "");
    }

    /// The canonical request as it was built before the buffer: one digest update per piece,
    /// values looked up with `get_all` per name (the reference for the buffered version).
    fn reference_canonical_request(
        method: &str,
        path: &str,
        query: &str,
        signed_headers: &str,
        headers: &HeaderMap,
        payload_hash_hex: &[u8],
    ) -> Vec<u8> {
        let mut v = Vec::new();
        let mut feed = |b: &[u8]| v.extend_from_slice(b);
        feed(method.as_bytes());
        feed(b"\n");
        canonical_uri(path, &mut feed);
        feed(b"\n");
        canonical_query(query, &mut feed);
        feed(b"\n");
        for name in signed_headers.split(';') {
            feed(name.as_bytes());
            feed(b":");
            for (i, v) in headers.get_all(name).iter().enumerate() {
                if i > 0 {
                    feed(b",");
                }
                for (j, word) in v
                    .as_bytes()
                    .split(|b| b.is_ascii_whitespace() || *b == 0x0b)
                    .filter(|w| !w.is_empty())
                    .enumerate()
                {
                    if j > 0 {
                        feed(b" ");
                    }
                    feed(word);
                }
            }
            feed(b"\n");
        }
        feed(b"\n");
        feed(signed_headers.as_bytes());
        feed(b"\n");
        feed(payload_hash_hex);
        v
    }

    fn buffered(
        method: &str,
        path: &str,
        query: &str,
        signed_headers: &str,
        headers: &HeaderMap,
        payload_hash_hex: &[u8],
    ) -> Vec<u8> {
        let mut v = Vec::new();
        write_canonical_request(
            &mut v,
            method,
            path,
            query,
            signed_headers,
            headers,
            payload_hash_hex,
        );
        v
    }

    fn map(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    const EMPTY_SHA256: &[u8] = b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn aws_get_vanilla_canonical_request_known_answer() {
        // AWS SigV4 test suite, get-vanilla: the .creq text and the hash in its .sts.
        let h = map(&[
            ("host", b"example.amazonaws.com"),
            ("x-amz-date", b"20150830T123600Z"),
        ]);
        let creq = buffered("GET", "/", "", "host;x-amz-date", &h, EMPTY_SHA256);
        assert_eq!(
            String::from_utf8(creq).unwrap(),
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let hash = canonical_request_hash("GET", "/", "", "host;x-amz-date", &h, EMPTY_SHA256);
        let mut hex = [0u8; 64];
        assert_eq!(
            hex_lower(&hash, &mut hex),
            b"bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        let bytes: Vec<u8> = (0..32).map(|i| i * 8 + 7).collect();
        assert_eq!(hex_lower(&bytes, &mut hex), hex::encode(&bytes).as_bytes());
    }

    #[test]
    fn buffered_canonical_request_equals_the_reference() {
        let h = map(&[
            ("host", b"kms.us-east-1.amazonaws.com"),
            ("content-type", b"application/x-amz-json-1.1"),
            ("x-amz-date", b"20261123T182233Z"),
            ("x-amz-target", b"TrentService.Encrypt"),
            ("x-amz-meta", b"  a   b\tc  "),
            ("x-amz-meta", b"second"),
            ("user-agent", b"aws-cli/2 Python/3"),
            ("x-empty", b""),
            ("x-amz-meta", b" third value "),
        ]);
        let cases = [
            "content-type;host;x-amz-date;x-amz-target",
            "host;x-amz-date;x-amz-meta",
            "x-amz-meta;host;x-amz-meta",
            ":authority;x-amz-date;x-missing;x-empty",
            "host;;x-amz-date",
            "Host;x-amz-date",
            "h(st;x-amz-date",
            "",
        ];
        for signed in cases {
            for (path, query) in [("/", ""), ("/a/../b//c/", "b=2&a=1&a=0"), ("", "x")] {
                assert_eq!(
                    buffered("POST", path, query, signed, &h, EMPTY_SHA256),
                    reference_canonical_request("POST", path, query, signed, &h, EMPTY_SHA256),
                    "{signed} {path} {query}"
                );
            }
        }
    }

    #[test]
    fn many_and_large_headers_use_the_get_all_path_and_a_large_buffer() {
        // More values than SCAN_MAX_VALUES (get_all per name) and a canonical request larger
        // than the kept scratch buffer.
        let big = vec![b'v'; 4096];
        let mut pairs: Vec<(String, Vec<u8>)> = (0..40)
            .map(|i| (format!("x-h{i:02}"), big.clone()))
            .collect();
        pairs.push(("x-h07".into(), b"  again  ".to_vec()));
        pairs.push(("host".into(), b"example".to_vec()));
        let borrowed: Vec<(&str, &[u8])> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let h = map(&borrowed);
        assert!(h.len() > SCAN_MAX_VALUES);
        let mut names: Vec<String> = (0..40).map(|i| format!("x-h{i:02}")).collect();
        names.push("host".into());
        names.sort();
        let signed = names.join(";");
        let reference = reference_canonical_request("POST", "/", "", &signed, &h, EMPTY_SHA256);
        assert!(reference.len() > SCRATCH_KEEP);
        assert_eq!(
            buffered("POST", "/", "", &signed, &h, EMPTY_SHA256),
            reference
        );
        for _ in 0..2 {
            let hash = canonical_request_hash("POST", "/", "", &signed, &h, EMPTY_SHA256);
            assert_eq!(
                hash.as_slice(),
                digest::digest(&digest::SHA256, &reference).as_ref()
            );
        }
        // The thread's buffer still works (and was not kept at that size).
        with_scratch(|b| {
            assert!(b.is_empty());
            assert!(b.capacity() <= SCRATCH_KEEP);
        });
        // Nested use gets its own buffer.
        with_scratch(|outer| {
            outer.extend_from_slice(b"outer");
            with_scratch(|inner| {
                assert!(inner.is_empty());
                inner.extend_from_slice(b"inner");
            });
            assert_eq!(outer.as_slice(), b"outer");
        });
    }

    #[test]
    fn find_byte_agrees_with_position() {
        let hay: Vec<u8> = (0..40u8).map(|i| b'a' + i % 7).collect();
        for len in 0..hay.len() {
            for needle in [b'a', b'b', b'g', b'z', 0, 0x80, 0xff] {
                let h = &hay[..len];
                assert_eq!(
                    find_byte(h, needle),
                    h.iter().position(|&b| b == needle),
                    "{len} {needle}"
                );
            }
        }
        let mut h = vec![0x81u8; 30];
        h[17] = 0x80;
        assert_eq!(find_byte(&h, 0x80), Some(17));
        h[9] = 0x01;
        h[10] = 0x00;
        assert_eq!(find_byte(&h, 0x00), Some(10));
        assert_eq!(find_byte(&h, 0x01), Some(9));
    }

    #[test]
    fn split_ascii_agrees_with_str_split() {
        for s in ["", ";", "a", "a;b", ";a;;b;", "host;x-amz-date", "ሴ;x;ሴ"] {
            assert_eq!(
                split_ascii(s, b';').collect::<Vec<_>>(),
                s.split(';').collect::<Vec<_>>(),
                "{s:?}"
            );
        }
    }
}
