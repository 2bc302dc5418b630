//! A JSON writer for responses that prints exactly what `serde_json::to_vec` prints, cheaper.
//!
//! - Strings are checked for bytes that need escaping (`"`, `\`, controls) a chunk at a time and
//!   then copied whole; the rare string that needs escaping is written by serde_json itself.
//! - A [`Blob`](crate::Blob) is base64-encoded straight into the output (base64 never needs
//!   escaping), without a temporary `String`.
//! - The output is sized by a first, counting pass, so the buffer is allocated once, exactly,
//!   and never reallocated (no stray copies of plaintext data keys left behind in freed memory).
//! - Numbers, booleans, `null` and anything escaped are delegated to serde_json's own serializer.
//!
//! Whatever this writer does not handle (enum variants with data, non-string map keys, an error
//! raised by a `Serialize` impl, ...) makes the whole value go through `serde_json::to_vec`, so
//! the output and the errors are serde_json's by construction.

use std::fmt;
use std::io;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde::ser::{self, Impossible};
use zeroize::Zeroize;

/// The newtype-struct name `Blob` serializes under; serde_json and other formats see through it.
pub(crate) const BLOB_TOKEN: &str = "$keyferry_types::Blob";

/// `serde_json::to_vec(value)`, byte for byte and error for error.
pub fn to_vec<T: ?Sized + Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    match write(value) {
        Ok(out) => Ok(out),
        Err(Fallback) => serde_json::to_vec(value),
    }
}

/// The fast path alone: count, allocate once, write.
fn write<T: ?Sized + Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut size = Count(0);
    value.serialize(Ser(&mut size))?;
    let mut out = Vec::with_capacity(size.0);
    if let Err(e) = value.serialize(Ser(&mut out)) {
        // A partial response may hold secrets.
        out.zeroize();
        return Err(e);
    }
    Ok(out)
}

/// "Not handled here": the caller falls back to serde_json.
#[derive(Debug)]
pub(crate) struct Fallback;

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not handled by the fast JSON writer")
    }
}

impl std::error::Error for Fallback {}

impl ser::Error for Fallback {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Fallback
    }
}

type Result<T = ()> = std::result::Result<T, Fallback>;

/// Where the JSON goes: the output buffer, or a byte counter that sizes it.
trait Sink: io::Write {
    fn put(&mut self, bytes: &[u8]);
    fn put_base64(&mut self, raw: &[u8]) -> Result;
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    #[inline]
    fn put_base64(&mut self, raw: &[u8]) -> Result {
        let start = self.len();
        let n = base64::encoded_len(raw.len(), true).ok_or(Fallback)?;
        self.resize(start + n, 0);
        match B64.encode_slice(raw, &mut self[start..]) {
            Ok(written) if written == n => Ok(()),
            _ => Err(Fallback),
        }
    }
}

/// Counts the bytes that would be written.
struct Count(usize);

impl io::Write for Count {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for Count {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }

    #[inline]
    fn put_base64(&mut self, raw: &[u8]) -> Result {
        self.0 += base64::encoded_len(raw.len(), true).ok_or(Fallback)?;
        Ok(())
    }
}

/// True when no byte of `s` needs escaping in a JSON string (serde_json escapes `"`, `\` and
/// the controls below 0x20, nothing else). Checked 16 bytes at a time, branch-free within the
/// 16 (this vectorizes); a tail is checked as the last 16 bytes, a short string padded to 16.
#[inline]
fn is_plain(s: &[u8]) -> bool {
    #[inline(always)]
    fn plain16(c: &[u8; 16]) -> bool {
        let mut special = 0u8;
        for &b in c {
            special |= u8::from(b < 0x20) | u8::from(b == b'"') | u8::from(b == b'\\');
        }
        special == 0
    }
    if s.len() < 16 {
        let mut padded = [b' '; 16];
        padded[..s.len()].copy_from_slice(s);
        return plain16(&padded);
    }
    let mut chunks = s.chunks_exact(16);
    if !chunks.all(|c| <&[u8; 16]>::try_from(c).is_ok_and(plain16)) {
        return false;
    }
    <&[u8; 16]>::try_from(&s[s.len() - 16..]).is_ok_and(plain16)
}

/// Append `s` to `out` as a JSON string, exactly as serde_json writes it (the audit trail's
/// writer uses this too: one escape check in the project).
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a `Vec` does not fail.
    let _ = write_str(out, s);
}

#[inline]
fn write_str<S: Sink>(out: &mut S, s: &str) -> Result {
    if is_plain(s.as_bytes()) {
        out.put(b"\"");
        out.put(s.as_bytes());
        out.put(b"\"");
        Ok(())
    } else {
        json(out, |j| ser::Serializer::serialize_str(j, s))
    }
}

/// Let serde_json write one scalar.
#[inline]
fn json<S: Sink>(
    out: &mut S,
    f: impl FnOnce(&mut serde_json::Serializer<&mut S>) -> serde_json::Result<()>,
) -> Result {
    f(&mut serde_json::Serializer::new(out)).map_err(|_| Fallback)
}

struct Ser<'a, S>(&'a mut S);

macro_rules! delegate {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(
            #[inline]
            fn $method(self, v: $ty) -> Result {
                json(self.0, |j| ser::Serializer::$method(j, v))
            }
        )*
    };
}

impl<'a, S: Sink> ser::Serializer for Ser<'a, S> {
    type Ok = ();
    type Error = Fallback;
    type SerializeSeq = Compound<'a, S>;
    type SerializeTuple = Compound<'a, S>;
    type SerializeTupleStruct = Compound<'a, S>;
    type SerializeTupleVariant = Impossible<(), Fallback>;
    type SerializeMap = Compound<'a, S>;
    type SerializeStruct = Compound<'a, S>;
    type SerializeStructVariant = Impossible<(), Fallback>;

    delegate!(
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_i128: i128,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_u128: u128,
        serialize_f32: f32,
        serialize_f64: f64,
        serialize_char: char,
        serialize_bytes: &[u8],
    );

    #[inline]
    fn serialize_bool(self, v: bool) -> Result {
        self.0.put(if v { b"true" } else { b"false" });
        Ok(())
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result {
        write_str(self.0, v)
    }

    #[inline]
    fn serialize_none(self) -> Result {
        self.0.put(b"null");
        Ok(())
    }

    #[inline]
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result {
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result {
        self.0.put(b"null");
        Ok(())
    }

    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result {
        self.serialize_unit()
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result {
        write_str(self.0, variant)
    }

    #[inline]
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result {
        if name == BLOB_TOKEN {
            value.serialize(BlobSer(self.0))
        } else if name.starts_with("$serde_json::") {
            Err(Fallback)
        } else {
            value.serialize(self)
        }
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result {
        Err(Fallback)
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'a, S>> {
        self.0.put(b"[");
        Ok(Compound::open(self.0, len, b"]"))
    }

    #[inline]
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a, S>> {
        self.serialize_seq(Some(len))
    }

    #[inline]
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a, S>> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(Fallback)
    }

    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'a, S>> {
        self.0.put(b"{");
        Ok(Compound::open(self.0, len, b"}"))
    }

    #[inline]
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Compound<'a, S>> {
        // serde_json's own number and raw-value tokens (with its optional features).
        if name.starts_with("$serde_json::") {
            return Err(Fallback);
        }
        self.serialize_map(Some(len))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(Fallback)
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum State {
    Empty,
    First,
    Rest,
}

/// An array or object being written, with serde_json's state machine: a known length of 0
/// closes it at once (`[]`, `{}`).
struct Compound<'a, S> {
    out: &'a mut S,
    state: State,
    close: &'static [u8],
}

impl<'a, S: Sink> Compound<'a, S> {
    #[inline]
    fn open(out: &'a mut S, len: Option<usize>, close: &'static [u8]) -> Self {
        let state = if len == Some(0) {
            out.put(close);
            State::Empty
        } else {
            State::First
        };
        Compound { out, state, close }
    }

    #[inline]
    fn separate(&mut self) {
        if self.state != State::First {
            self.out.put(b",");
        }
        self.state = State::Rest;
    }

    #[inline]
    fn close(self) -> Result {
        if self.state != State::Empty {
            self.out.put(self.close);
        }
        Ok(())
    }
}

impl<S: Sink> ser::SerializeSeq for Compound<'_, S> {
    type Ok = ();
    type Error = Fallback;

    #[inline]
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result {
        self.separate();
        value.serialize(Ser(&mut *self.out))
    }

    #[inline]
    fn end(self) -> Result {
        self.close()
    }
}

impl<S: Sink> ser::SerializeTuple for Compound<'_, S> {
    type Ok = ();
    type Error = Fallback;

    #[inline]
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result {
        ser::SerializeSeq::serialize_element(self, value)
    }

    #[inline]
    fn end(self) -> Result {
        self.close()
    }
}

impl<S: Sink> ser::SerializeTupleStruct for Compound<'_, S> {
    type Ok = ();
    type Error = Fallback;

    #[inline]
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result {
        ser::SerializeSeq::serialize_element(self, value)
    }

    #[inline]
    fn end(self) -> Result {
        self.close()
    }
}

impl<S: Sink> ser::SerializeMap for Compound<'_, S> {
    type Ok = ();
    type Error = Fallback;

    #[inline]
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result {
        self.separate();
        key.serialize(KeySer(&mut *self.out))
    }

    #[inline]
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result {
        self.out.put(b":");
        value.serialize(Ser(&mut *self.out))
    }

    #[inline]
    fn end(self) -> Result {
        self.close()
    }
}

impl<S: Sink> ser::SerializeStruct for Compound<'_, S> {
    type Ok = ();
    type Error = Fallback;

    #[inline]
    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Result {
        self.separate();
        write_str(self.out, key)?;
        self.out.put(b":");
        value.serialize(Ser(&mut *self.out))
    }

    #[inline]
    fn end(self) -> Result {
        self.close()
    }
}

/// Methods of the two narrow serializers below that only fall back.
macro_rules! reject {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(
            fn $method(self, _v: $ty) -> Result {
                Err(Fallback)
            }
        )*
    };
}

macro_rules! reject_rest {
    () => {
        type SerializeSeq = Impossible<(), Fallback>;
        type SerializeTuple = Impossible<(), Fallback>;
        type SerializeTupleStruct = Impossible<(), Fallback>;
        type SerializeTupleVariant = Impossible<(), Fallback>;
        type SerializeMap = Impossible<(), Fallback>;
        type SerializeStruct = Impossible<(), Fallback>;
        type SerializeStructVariant = Impossible<(), Fallback>;

        reject!(
            serialize_bool: bool,
            serialize_i8: i8,
            serialize_i16: i16,
            serialize_i32: i32,
            serialize_i64: i64,
            serialize_i128: i128,
            serialize_u8: u8,
            serialize_u16: u16,
            serialize_u32: u32,
            serialize_u64: u64,
            serialize_u128: u128,
            serialize_f32: f32,
            serialize_f64: f64,
            serialize_char: char,
        );

        fn serialize_none(self) -> Result {
            Err(Fallback)
        }

        fn serialize_some<T: ?Sized + Serialize>(self, _value: &T) -> Result {
            Err(Fallback)
        }

        fn serialize_unit(self) -> Result {
            Err(Fallback)
        }

        fn serialize_unit_struct(self, _name: &'static str) -> Result {
            Err(Fallback)
        }

        fn serialize_newtype_variant<T: ?Sized + Serialize>(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _value: &T,
        ) -> Result {
            Err(Fallback)
        }

        fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq> {
            Err(Fallback)
        }

        fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple> {
            Err(Fallback)
        }

        fn serialize_tuple_struct(
            self,
            _name: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeTupleStruct> {
            Err(Fallback)
        }

        fn serialize_tuple_variant(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeTupleVariant> {
            Err(Fallback)
        }

        fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap> {
            Err(Fallback)
        }

        fn serialize_struct(
            self,
            _name: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeStruct> {
            Err(Fallback)
        }

        fn serialize_struct_variant(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeStructVariant> {
            Err(Fallback)
        }
    };
}

/// A map key: strings (and what serde_json also prints as strings: unit variants, newtypes of
/// strings); any other key falls back to serde_json, which quotes numbers or refuses.
struct KeySer<'a, S>(&'a mut S);

impl<S: Sink> ser::Serializer for KeySer<'_, S> {
    type Ok = ();
    type Error = Fallback;

    reject_rest!();
    reject!(serialize_bytes: &[u8]);

    #[inline]
    fn serialize_str(self, v: &str) -> Result {
        write_str(self.0, v)
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result {
        write_str(self.0, variant)
    }

    #[inline]
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result {
        if name.starts_with("$serde_json::") {
            return Err(Fallback);
        }
        value.serialize(self)
    }
}

/// Inside a `Blob`: takes its raw bytes (it reports itself not human-readable, which is how
/// `Blob` knows to hand them over instead of a base64 `String`) and writes them as base64.
struct BlobSer<'a, S>(&'a mut S);

impl<S: Sink> ser::Serializer for BlobSer<'_, S> {
    type Ok = ();
    type Error = Fallback;

    reject_rest!();
    reject!(serialize_str: &str);

    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bytes(self, raw: &[u8]) -> Result {
        self.0.put(b"\"");
        self.0.put_base64(raw)?;
        self.0.put(b"\"");
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
    ) -> Result {
        Err(Fallback)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _value: &T,
    ) -> Result {
        Err(Fallback)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::collections::BTreeMap;

    use serde::de::{self, Deserialize, DeserializeSeed, IntoDeserializer, Visitor};

    use super::*;
    use crate::*;

    /// Every string case that matters to escaping.
    const STRINGS: &[&str] = &[
        "",
        "a",
        "SYMMETRIC_DEFAULT",
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "alias/with \"quotes\"",
        "back\\slash\\",
        "\"",
        "\\",
        "ctl \u{0}\u{1}\u{8}\u{9}\u{a}\u{b}\u{c}\u{d}\u{1b}\u{1f} end",
        "del \u{7f} is not escaped",
        "n\u{f6}n-\u{c4}SCII \u{2603} \u{1f600} \u{2028}\u{2029}",
        "</script><!-- & ' -->",
        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"kms:*\"}]}",
        "a plain string that is rather longer than sixteen bytes, and longer than thirty-two too",
        "0123456789abcde\"",
        "0123456789abcdef\"",
        "0123456789abcdef0123456789abcde\n",
    ];
    const FLOATS: &[f64] = &[
        0.0,
        -0.0,
        1.0,
        1.7e9,
        1_700_000_000.0,
        1_700_000_000.25,
        1_712_345_678.123_456_7,
        -1.5,
        1e-7,
        1e15,
        1e16,
        1e21,
        1e22,
        123_456_789_012_345_680.0,
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
    ];
    const INTS: &[i64] = &[0, 1, -1, 7, 1024, 86_400, i64::MAX, i64::MIN];
    const BLOB_LENS: &[usize] = &[0, 1, 2, 3, 4, 32, 184, 4096];

    #[derive(Clone, Copy, PartialEq)]
    enum Options {
        Present,
        Absent,
        Mixed,
    }

    /// Makes an arbitrary value of any model type: a `Deserializer` that answers every request
    /// with a value picked pseudo-randomly from the cases above.
    struct Gen {
        rng: u64,
        options: Options,
    }

    impl Gen {
        fn next(&mut self) -> u64 {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            self.rng
        }
        fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
            xs[(self.next() % xs.len() as u64) as usize]
        }
        fn len(&mut self) -> usize {
            self.pick(&[0, 1, 3])
        }
    }

    struct Arb<'g>(&'g mut Gen);

    type E = de::value::Error;

    impl<'de> de::Deserializer<'de> for Arb<'_> {
        type Error = E;

        fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> std::result::Result<V::Value, E> {
            panic!("the model asks for a type the generator does not know")
        }
        fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, E> {
            v.visit_bool(self.0.next() & 1 == 1)
        }
        fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, E> {
            v.visit_i64(self.0.pick(INTS))
        }
        fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, E> {
            v.visit_f64(self.0.pick(FLOATS))
        }
        fn deserialize_str<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, E> {
            self.deserialize_string(v)
        }
        fn deserialize_string<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, E> {
            if std::any::type_name::<V>().ends_with("BlobVisitor") {
                let n = self.0.pick(BLOB_LENS);
                let bytes: Vec<u8> = (0..n).map(|_| self.0.next() as u8).collect();
                v.visit_string(B64.encode(bytes))
            } else {
                v.visit_str(self.0.pick(STRINGS))
            }
        }
        fn deserialize_option<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, E> {
            let some = match self.0.options {
                Options::Present => true,
                Options::Absent => false,
                Options::Mixed => self.0.next() & 1 == 1,
            };
            if some {
                v.visit_some(self)
            } else {
                v.visit_none()
            }
        }
        fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, E> {
            let n = self.0.len();
            v.visit_seq(Items(self.0, n))
        }
        fn deserialize_map<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, E> {
            let n = self.0.len();
            v.visit_map(Entries(self.0, n))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            v: V,
        ) -> std::result::Result<V::Value, E> {
            v.visit_map(Fields(self.0, fields))
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            variants: &'static [&'static str],
            v: V,
        ) -> std::result::Result<V::Value, E> {
            v.visit_enum(self.0.pick(variants).into_deserializer())
        }

        serde::forward_to_deserialize_any! {
            i8 i16 i32 i128 u8 u16 u32 u64 u128 f32 char bytes byte_buf unit unit_struct
            newtype_struct tuple tuple_struct identifier ignored_any
        }
    }

    struct Items<'g>(&'g mut Gen, usize);

    impl<'de> de::SeqAccess<'de> for Items<'_> {
        type Error = E;
        fn next_element_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> std::result::Result<Option<T::Value>, E> {
            if self.1 == 0 {
                return Ok(None);
            }
            self.1 -= 1;
            seed.deserialize(Arb(self.0)).map(Some)
        }
    }

    struct Entries<'g>(&'g mut Gen, usize);

    impl<'de> de::MapAccess<'de> for Entries<'_> {
        type Error = E;
        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> std::result::Result<Option<K::Value>, E> {
            if self.1 == 0 {
                return Ok(None);
            }
            self.1 -= 1;
            seed.deserialize(Arb(self.0)).map(Some)
        }
        fn next_value_seed<V: DeserializeSeed<'de>>(
            &mut self,
            seed: V,
        ) -> std::result::Result<V::Value, E> {
            seed.deserialize(Arb(self.0))
        }
    }

    struct Fields<'g>(&'g mut Gen, &'static [&'static str]);

    impl<'de> de::MapAccess<'de> for Fields<'_> {
        type Error = E;
        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> std::result::Result<Option<K::Value>, E> {
            let Some((first, rest)) = self.1.split_first() else {
                return Ok(None);
            };
            self.1 = rest;
            seed.deserialize(first.into_deserializer()).map(Some)
        }
        fn next_value_seed<V: DeserializeSeed<'de>>(
            &mut self,
            seed: V,
        ) -> std::result::Result<V::Value, E> {
            seed.deserialize(Arb(self.0))
        }
    }

    /// The fast path is taken (no fallback) and prints serde_json's bytes.
    fn same<T: Serialize>(v: &T) {
        let expected = serde_json::to_vec(v).unwrap();
        let fast = write(v)
            .unwrap_or_else(|_| panic!("fell back for {}", String::from_utf8_lossy(&expected)));
        assert_eq!(
            String::from_utf8_lossy(&fast),
            String::from_utf8_lossy(&expected)
        );
        assert_eq!(fast, expected);
        assert_eq!(fast.capacity(), fast.len(), "sized exactly");
        assert_eq!(to_vec(v).unwrap(), expected);
    }

    fn arbitrary<T: Serialize + for<'de> Deserialize<'de>>(rounds: u64) {
        for options in [Options::Present, Options::Absent, Options::Mixed] {
            for seed in 1..=rounds {
                let mut g = Gen {
                    rng: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
                    options,
                };
                let v = T::deserialize(Arb(&mut g)).unwrap();
                same(&v);
                // Every member really was there (floats are finite, so no `null`).
                let out = write(&v).unwrap();
                if options == Options::Present {
                    assert!(!out.windows(4).any(|w| w == b"null"));
                }
                if options == Options::Absent && !out.starts_with(b"{") {
                    panic!("not an object");
                }
            }
        }
    }

    macro_rules! every {
        ($($t:ident),* $(,)?) => {
            $( arbitrary::<$t>(40); )*
        };
    }

    #[test]
    fn every_response_prints_as_serde_json_does() {
        every!(
            CancelKeyDeletionResponse,
            ConnectCustomKeyStoreResponse,
            CreateCustomKeyStoreResponse,
            CreateGrantResponse,
            CreateKeyResponse,
            DecryptResponse,
            DeleteCustomKeyStoreResponse,
            DeleteImportedKeyMaterialResponse,
            DeriveSharedSecretResponse,
            DescribeCustomKeyStoresResponse,
            DescribeKeyResponse,
            DisconnectCustomKeyStoreResponse,
            EncryptResponse,
            GenerateDataKeyPairResponse,
            GenerateDataKeyPairWithoutPlaintextResponse,
            GenerateDataKeyResponse,
            GenerateDataKeyWithoutPlaintextResponse,
            GenerateMacResponse,
            GenerateRandomResponse,
            GetKeyLastUsageResponse,
            GetKeyPolicyResponse,
            GetKeyRotationStatusResponse,
            GetParametersForImportResponse,
            GetPublicKeyResponse,
            ImportKeyMaterialResponse,
            ListAliasesResponse,
            ListGrantsResponse,
            ListKeyPoliciesResponse,
            ListKeyRotationsResponse,
            ListKeysResponse,
            ListResourceTagsResponse,
            ReEncryptResponse,
            ReplicateKeyResponse,
            RotateKeyOnDemandResponse,
            ScheduleKeyDeletionResponse,
            SignResponse,
            UpdateCustomKeyStoreResponse,
            VerifyMacResponse,
            VerifyResponse,
            // Nested members on their own too.
            KeyMetadata,
            GrantListEntry,
            Tag,
        );
    }

    #[test]
    fn strings_blobs_and_scalars_print_as_serde_json_does() {
        for s in STRINGS {
            same(s);
        }
        // A special byte at every position around the 16-byte chunks, and every byte value.
        for len in 0..50 {
            for at in 0..len {
                for special in ["\"", "\\", "\n", "\u{0}", "\u{1f}", "\u{7f}", "\u{e9}", " "] {
                    let mut s = "x".repeat(len);
                    s.replace_range(at..at + 1, special);
                    same(&s);
                }
            }
        }
        for c in 0..=0x7fu8 {
            same(&format!("ab{}cd", c as char));
        }
        for n in 0..70 {
            same(&Blob::new((0..n).map(|i| (i * 37) as u8).collect()));
        }
        same(&Blob::new(vec![0xff; 100_000]));
        for f in FLOATS {
            same(&Timestamp(*f));
            same(&Timestamp(-f));
        }
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            same(&Timestamp(f));
        }
        for i in INTS {
            same(i);
        }
        same(&());
        same(&true);
        same(&false);
        same(&None::<String>);
        same(&Vec::<String>::new());
        same(&vec![vec![1, 2], vec![]]);
        same(&BTreeMap::<String, String>::new());
        let map: BTreeMap<String, String> = STRINGS
            .iter()
            .map(|s| (s.to_string(), s.to_string()))
            .collect();
        same(&map);
        same(&EncryptResponse::default());
        let mut g = Gen {
            rng: 3,
            options: Options::Present,
        };
        let full = write(&KeyMetadata::deserialize(Arb(&mut g)).unwrap()).unwrap();
        let full = String::from_utf8(full).unwrap();
        for member in [
            "\"CreationDate\":",
            "\"MultiRegionConfiguration\":{",
            "\"XksKeyConfiguration\":{",
        ] {
            assert!(full.contains(member), "{member} in {full}");
        }
        same(&DescribeKeyResponse {
            key_metadata: Some(KeyMetadata::default()),
        });
    }

    #[test]
    fn what_the_fast_path_does_not_handle_falls_back_to_serde_json() {
        #[derive(Serialize)]
        enum Data {
            Newtype(u8),
            Tuple(u8, u8),
            Struct { a: u8 },
        }
        struct Failing;
        impl Serialize for Failing {
            fn serialize<S: ser::Serializer>(&self, _s: S) -> std::result::Result<S::Ok, S::Error> {
                Err(ser::Error::custom("no"))
            }
        }
        fn fallback<T: Serialize>(v: &T) {
            assert!(write(v).is_err());
            assert_eq!(
                to_vec(v).map_err(|e| e.to_string()),
                serde_json::to_vec(v).map_err(|e| e.to_string())
            );
        }
        fallback(&Data::Newtype(1));
        fallback(&Data::Tuple(1, 2));
        fallback(&Data::Struct { a: 1 });
        fallback(&BTreeMap::from([(1, 2), (3, 4)]));
        fallback(&BTreeMap::from([(true, 2)]));
        fallback(&BTreeMap::from([(vec![1], 2)]));
        fallback(&Failing);
        fallback(&vec![Some(Failing)]);
        // A newtype of a string as a map key is a string to serde_json too.
        #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
        struct Name(String);
        same(&BTreeMap::from([(Name("k\"".into()), 1)]));
    }

    #[test]
    fn blob_is_base64_text_to_serde_json_and_bytes_elsewhere() {
        let b = Blob::new(b"secret".to_vec());
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::Value::String("c2VjcmV0".into())
        );
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"c2VjcmV0\"");
        assert_eq!(to_vec(&b).unwrap(), b"\"c2VjcmV0\"");
    }

    /// Blob's deserializer before it decoded from borrowed text.
    struct OldBlob(Vec<u8>);

    impl<'de> Deserialize<'de> for OldBlob {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            let s = String::deserialize(d)?;
            B64.decode(s.as_bytes())
                .map(OldBlob)
                .map_err(|_| de::Error::custom("blob is not valid base64"))
        }
    }

    #[derive(Deserialize)]
    struct Wrap<B> {
        #[serde(rename = "P")]
        _p: B,
    }

    #[test]
    fn blob_decodes_and_fails_as_before() {
        for text in [
            r#""c2VjcmV0""#,
            r#""\u0063\u0032VjcmV0""#,
            r#""""#,
            r#""***""#,
            r#""c2Vjc""#,
            r#""c2VjcmV0\n""#,
            "5",
            "null",
            "true",
            "[1,2]",
            r#"{"a":1}"#,
            r#""unterminated"#,
        ] {
            let new = serde_json::from_str::<Blob>(text)
                .map(|b| b.as_slice().to_vec())
                .map_err(|e| e.to_string());
            let old = serde_json::from_str::<OldBlob>(text)
                .map(|b| b.0)
                .map_err(|e| e.to_string());
            assert_eq!(new, old, "{text}");
            let wrapped = format!(r#"{{"P": {text}}}"#);
            let new = serde_json::from_str::<Wrap<Blob>>(&wrapped).map_err(|e| e.to_string());
            let old = serde_json::from_str::<Wrap<OldBlob>>(&wrapped).map_err(|e| e.to_string());
            assert_eq!(new.err(), old.err(), "{wrapped}");
            let value: std::result::Result<serde_json::Value, _> = serde_json::from_str(text);
            if let Ok(value) = value {
                let new = Blob::deserialize(value.clone())
                    .map(|b| b.as_slice().to_vec())
                    .map_err(|e| e.to_string());
                let old = OldBlob::deserialize(value)
                    .map(|b| b.0)
                    .map_err(|e| e.to_string());
                assert_eq!(new, old, "{text} as a Value");
            }
        }
    }
}
