//! Fixed-size byte values and serde helpers for their JSON form.

use crate::TypesError;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use tongtian_crypto::{suite, SuiteId};

fn parse_hex<const N: usize>(what: &'static str, s: &str) -> Result<[u8; N], TypesError> {
    let err = || TypesError::Hex {
        what,
        value: s.to_string(),
    };
    // The prefix is optional; `decode_to_array` takes it off itself.
    const_hex::decode_to_array(s).map_err(|_| err())
}

macro_rules! fixed_bytes {
    ($name:ident, $len:expr, $what:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            Default,
            BorshSerialize,
            BorshDeserialize,
        )]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// All zero bytes.
            pub const ZERO: $name = $name([0u8; $len]);

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            /// From a byte slice of exactly the right length.
            pub fn from_slice(b: &[u8]) -> Result<Self, TypesError> {
                let arr: [u8; $len] = b.try_into().map_err(|_| TypesError::Hex {
                    what: $what,
                    value: hex::encode(b),
                })?;
                Ok($name(arr))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // On the stack: block events and responses print thousands.
                f.write_str(const_hex::Buffer::<$len, true>::new().format(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = TypesError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex::<$len>($what, s).map($name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some("^0x[0-9a-fA-F]+$"))
                    .description(Some($doc))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

fixed_bytes!(
    Address,
    20,
    "address",
    "A 20-byte account address, `0x`-prefixed hex in JSON."
);
fixed_bytes!(
    H256,
    32,
    "hash",
    "A 32-byte digest, `0x`-prefixed hex in JSON."
);

impl Address {
    /// The account address of a public key: the last 20 bytes of the
    /// suite's hash of the encoded key (the same shape as Ethereum's).
    pub fn from_public_key(suite_id: SuiteId, public_key: &[u8]) -> Address {
        let h = suite(suite_id).hash(public_key);
        let mut a = [0u8; 20];
        a.copy_from_slice(&h[12..]);
        Address(a)
    }
}

impl From<[u8; 32]> for H256 {
    fn from(b: [u8; 32]) -> Self {
        H256(b)
    }
}

/// Serde helper: `Vec<u8>` as `0x` hex.
pub mod serde_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize bytes as `0x` hex.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&const_hex::encode_prefixed(v))
    }

    /// Deserialize `0x` hex (prefix optional).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <String as Deserialize>::deserialize(d)?;
        const_hex::decode(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde helper: `u128` as a decimal string (JSON numbers lose precision
/// past 2^53 in most clients); numbers are accepted on input.
pub mod serde_u128 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize as a decimal string.
    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        N(u64),
    }

    /// Deserialize from a decimal string or a JSON integer.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        match Either::deserialize(d)? {
            Either::S(s) => s.parse().map_err(serde::de::Error::custom),
            Either::N(n) => Ok(n as u128),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip_and_errors() {
        let a = Address([7u8; 20]);
        let s = a.to_string();
        assert_eq!(s.len(), 42);
        assert_eq!(s.parse::<Address>().unwrap(), a);
        assert!("0x1234".parse::<Address>().is_err());
        assert!("zz".parse::<H256>().is_err());
        let j = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Address>(&j).unwrap(), a);
    }

    #[test]
    fn address_depends_on_suite_and_key() {
        let a = Address::from_public_key(SuiteId::Standard, &[1; 32]);
        assert_ne!(a, Address::from_public_key(SuiteId::Sm, &[1; 32]));
        assert_ne!(a, Address::from_public_key(SuiteId::Standard, &[2; 32]));
    }
}
