//! State proofs against a sparse Merkle root, checkable with nothing but
//! the chain's suite and a trusted root (what a light client holds).
//!
//! The tree itself lives in `tongtian-storage`; the hashing rules are here
//! so that prover and verifier share one definition.

use crate::H256;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use tongtian_crypto::{CryptoSuite, Hash32};

/// Bit `depth` of a path, most significant first.
pub fn bit(path: &Hash32, depth: usize) -> bool {
    (path[depth / 8] >> (7 - depth % 8)) & 1 == 1
}

/// Hash of a leaf: `H(0x00 || path || value_hash)`.
pub fn leaf_hash(s: &dyn CryptoSuite, path: &Hash32, value_hash: &Hash32) -> Hash32 {
    s.hash_parts(&[&[0u8], path, value_hash])
}

/// Hash of an internal node: `H(0x01 || left || right)`.
pub fn internal_hash(s: &dyn CryptoSuite, left: &Hash32, right: &Hash32) -> Hash32 {
    s.hash_parts(&[&[1u8], left, right])
}

/// A proof that a key has a value (or none) under a state root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct StateProof {
    /// The state key.
    #[serde(with = "crate::serde_hex")]
    pub key: Vec<u8>,
    /// Its value, or `None` to prove absence.
    #[serde(default, with = "opt_hex")]
    pub value: Option<Vec<u8>>,
    /// Sibling hashes from the root down.
    pub siblings: Vec<H256>,
    /// The leaf the path ends at: `(path, value_hash)`, or none for an empty subtree.
    pub leaf: Option<(H256, H256)>,
}

mod opt_hex {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&format!("0x{}", hex::encode(b))),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let o: Option<String> = Option::deserialize(d)?;
        o.map(|s| hex::decode(s.strip_prefix("0x").unwrap_or(&s)).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The recomputed root differs from the trusted one.
    #[error("proof does not lead to the trusted root")]
    RootMismatch,
    /// The proof claims a value but its leaf is for another key or value.
    #[error("proof leaf does not match the claimed key and value")]
    LeafMismatch,
    /// An absence proof ends at a leaf not on the key's path.
    #[error("absence proof ends at a leaf off the key's path")]
    NotOnPath,
    /// More than 256 siblings.
    #[error("proof is deeper than the tree can be")]
    TooDeep,
}

impl StateProof {
    /// Check the proof against a trusted root.
    pub fn verify(&self, s: &dyn CryptoSuite, root: &H256) -> Result<(), ProofError> {
        if self.siblings.len() > 256 {
            return Err(ProofError::TooDeep);
        }
        let path = s.hash(&self.key);
        match (&self.value, &self.leaf) {
            (Some(v), Some((p, vh))) => {
                if p.0 != path || vh.0 != s.hash(v) {
                    return Err(ProofError::LeafMismatch);
                }
            }
            (Some(_), None) => return Err(ProofError::LeafMismatch),
            (None, Some((p, _))) => {
                if p.0 == path {
                    return Err(ProofError::LeafMismatch);
                }
                if (0..self.siblings.len()).any(|d| bit(&p.0, d) != bit(&path, d)) {
                    return Err(ProofError::NotOnPath);
                }
            }
            (None, None) => {}
        }
        let mut cur = match &self.leaf {
            Some((p, vh)) => leaf_hash(s, &p.0, &vh.0),
            None => [0u8; 32],
        };
        for (depth, sib) in self.siblings.iter().enumerate().rev() {
            cur = if bit(&path, depth) {
                internal_hash(s, &sib.0, &cur)
            } else {
                internal_hash(s, &cur, &sib.0)
            };
        }
        if cur == root.0 {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        }
    }
}
