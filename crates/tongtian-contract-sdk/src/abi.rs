//! The value encoding of WASM contract inputs, outputs, events and (by
//! convention) stored records.
//!
//! A value is one tag byte and its body, little-endian:
//! `0` bool (1 byte), `1` integer (u128, 16 bytes), `2` string and `3`
//! bytes (u32 length, then the bytes), `4` list (u32 count, then values),
//! `5` map (u32 count, then string key and value pairs). A call's input is
//! the method name (a string value) followed by a list of arguments. No
//! floats: every value decodes the same way on every machine.

use alloc::string::String;
use alloc::vec::Vec;

/// A contract value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// An unsigned integer.
    Int(u128),
    /// UTF-8 text.
    Str(String),
    /// Raw bytes (addresses are 20 of them).
    Bytes(Vec<u8>),
    /// An ordered list.
    List(Vec<Value>),
    /// String-keyed entries, in order.
    Map(Vec<(String, Value)>),
}

/// Bytes that are not a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError;

impl Value {
    /// Append the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let len = |out: &mut Vec<u8>, n: usize| out.extend_from_slice(&(n as u32).to_le_bytes());
        match self {
            Value::Bool(b) => {
                out.push(0);
                out.push(*b as u8);
            }
            Value::Int(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Str(s) => {
                out.push(2);
                len(out, s.len());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Bytes(b) => {
                out.push(3);
                len(out, b.len());
                out.extend_from_slice(b);
            }
            Value::List(xs) => {
                out.push(4);
                len(out, xs.len());
                for x in xs {
                    x.encode_into(out);
                }
            }
            Value::Map(kvs) => {
                out.push(5);
                len(out, kvs.len());
                for (k, v) in kvs {
                    len(out, k.len());
                    out.extend_from_slice(k.as_bytes());
                    v.encode_into(out);
                }
            }
        }
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decode one value that spans all of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
        let mut r = Reader(bytes);
        let v = r.value(0)?;
        if r.0.is_empty() {
            Ok(v)
        } else {
            Err(DecodeError)
        }
    }

    /// An integer, or a string of decimal digits.
    pub fn as_u128(&self) -> Option<u128> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Str(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// Text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Bytes.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// A 20-byte address.
    pub fn as_address(&self) -> Option<[u8; 20]> {
        self.as_bytes().and_then(|b| b.try_into().ok())
    }

    /// A boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A list's items.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(xs) => Some(xs),
            _ => None,
        }
    }

    /// A map entry.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(kvs) => kvs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Deepest nesting accepted when decoding.
const MAX_DEPTH: u32 = 32;

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn len(&mut self) -> Result<usize, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.len()?;
        let b = self.take(n)?;
        core::str::from_utf8(b)
            .map(String::from)
            .map_err(|_| DecodeError)
    }

    fn value(&mut self, depth: u32) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError);
        }
        let tag = self.take(1)?[0];
        Ok(match tag {
            0 => match self.take(1)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                _ => return Err(DecodeError),
            },
            1 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(self.take(16)?);
                Value::Int(u128::from_le_bytes(b))
            }
            2 => Value::Str(self.string()?),
            3 => {
                let n = self.len()?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            4 => {
                let n = self.len()?;
                // Each value is at least two bytes: bound the allocation.
                let mut xs = Vec::with_capacity(n.min(self.0.len() / 2));
                for _ in 0..n {
                    xs.push(self.value(depth + 1)?);
                }
                Value::List(xs)
            }
            5 => {
                let n = self.len()?;
                let mut kvs = Vec::with_capacity(n.min(self.0.len() / 6));
                for _ in 0..n {
                    let k = self.string()?;
                    kvs.push((k, self.value(depth + 1)?));
                }
                Value::Map(kvs)
            }
            _ => return Err(DecodeError),
        })
    }
}

/// A call's input: method name and arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Method name.
    pub method: String,
    /// Arguments.
    pub args: Vec<Value>,
}

impl Input {
    /// Encode `method(args)`.
    pub fn encode(method: &str, args: &[Value]) -> Vec<u8> {
        let mut out = Value::Str(method.into()).encode();
        Value::List(args.to_vec()).encode_into(&mut out);
        out
    }

    /// Decode an input.
    pub fn decode(bytes: &[u8]) -> Result<Input, DecodeError> {
        let mut r = Reader(bytes);
        let method = match r.value(0)? {
            Value::Str(s) => s,
            _ => return Err(DecodeError),
        };
        let args = match r.value(0)? {
            Value::List(xs) => xs,
            _ => return Err(DecodeError),
        };
        if !r.0.is_empty() {
            return Err(DecodeError);
        }
        Ok(Input { method, args })
    }
}

/// A zero-copy reader of a call's input: the method name and the
/// arguments, read in order straight from the input bytes (no allocation).
/// [`Input::decode`] is the convenient form; this is the cheap one.
#[derive(Clone, Debug)]
pub struct ArgReader<'a> {
    rest: &'a [u8],
    left: u32,
}

impl<'a> ArgReader<'a> {
    /// Split an input into its method name and an argument reader.
    pub fn parse(input: &'a [u8]) -> Option<(&'a str, ArgReader<'a>)> {
        let mut r = Reader(input);
        if r.take(1).ok()?[0] != 2 {
            return None;
        }
        let n = r.len().ok()?;
        let method = core::str::from_utf8(r.take(n).ok()?).ok()?;
        if r.take(1).ok()?[0] != 4 {
            return None;
        }
        let left = r.len().ok()? as u32;
        Some((method, ArgReader { rest: r.0, left }))
    }

    fn next(&mut self, tag: u8) -> Option<&'a [u8]> {
        if self.left == 0 || self.rest.first() != Some(&tag) {
            return None;
        }
        let mut r = Reader(&self.rest[1..]);
        let body = match tag {
            1 => r.take(16).ok()?,
            2 | 3 => {
                let n = r.len().ok()?;
                r.take(n).ok()?
            }
            _ => return None,
        };
        self.rest = r.0;
        self.left -= 1;
        Some(body)
    }

    /// The next argument as an integer.
    pub fn u128(&mut self) -> Option<u128> {
        self.next(1).map(|b| {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            u128::from_le_bytes(a)
        })
    }

    /// The next argument as bytes.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        self.next(3)
    }

    /// The next argument as a 20-byte address.
    pub fn address(&mut self) -> Option<[u8; 20]> {
        self.bytes().and_then(|b| b.try_into().ok())
    }

    /// The next argument as text.
    pub fn str(&mut self) -> Option<&'a str> {
        self.next(2).and_then(|b| core::str::from_utf8(b).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn values_round_trip_and_reject_garbage() {
        let v = Value::Map(vec![
            ("a".into(), Value::Int(u128::MAX)),
            (
                "b".into(),
                Value::List(vec![
                    Value::Bool(true),
                    Value::Bytes(vec![1, 2]),
                    Value::Str("x".into()),
                ]),
            ),
        ]);
        assert_eq!(Value::decode(&v.encode()), Ok(v.clone()));
        let mut long = v.encode();
        long.push(0);
        assert_eq!(Value::decode(&long), Err(DecodeError));
        assert_eq!(Value::decode(&[4, 255, 255, 255, 255]), Err(DecodeError));
        assert_eq!(Value::decode(&[0, 2]), Err(DecodeError));
        assert_eq!(Value::decode(&[9]), Err(DecodeError));
        for n in [
            0u128,
            7,
            10_000_000_000_000_000_000,
            u128::MAX,
            12_345_678_901_234_567_890_123,
        ] {
            assert_eq!(crate::dec(n), alloc::format!("{n}"));
        }
        let raw = Input::encode(
            "pay",
            &[
                Value::Bytes(vec![9; 20]),
                Value::Int(5),
                Value::Str("m".into()),
            ],
        );
        let (m, mut a) = ArgReader::parse(&raw).unwrap();
        assert_eq!(m, "pay");
        assert_eq!(a.address(), Some([9; 20]));
        assert_eq!(a.str(), None, "wrong type is refused");
        assert_eq!(a.u128(), Some(5));
        assert_eq!(a.str(), Some("m"));
        assert_eq!(a.u128(), None, "no arguments left");
        let input = Input::encode("go", &[Value::Int(3)]);
        let d = Input::decode(&input).unwrap();
        assert_eq!((d.method.as_str(), d.args), ("go", vec![Value::Int(3)]));
    }
}
