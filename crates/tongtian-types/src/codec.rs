//! The canonical binary encoding: Borsh.
//!
//! Borsh is deterministic (one encoding per value: little-endian integers,
//! length-prefixed sequences, no maps with free order) which is what hashes
//! and signatures need. [`decode`] refuses trailing bytes, so a value has
//! exactly one accepted encoding.

use crate::TypesError;
use borsh::{BorshDeserialize, BorshSerialize};

/// Encode a value canonically.
pub fn encode<T: BorshSerialize>(value: &T) -> Vec<u8> {
    // Invariant: writing into a Vec cannot fail.
    borsh::to_vec(value).expect("in-memory encoding cannot fail")
}

/// Decode a value, refusing trailing bytes.
pub fn decode<T: BorshDeserialize>(what: &'static str, bytes: &[u8]) -> Result<T, TypesError> {
    borsh::from_slice(bytes).map_err(|e| TypesError::Malformed {
        what,
        reason: e.to_string(),
    })
}
