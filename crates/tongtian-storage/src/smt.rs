//! A sparse Merkle tree over 256-bit key paths, with leaf compression.
//!
//! Keys are placed at the path `H(key)`. A subtree holding no leaf is the
//! empty hash (all zeroes); a subtree holding exactly one leaf is that leaf
//! itself (so a tree of n keys has about log2(n) levels, not 256); anything
//! else is an internal node. The shape, and so the root, depends only on the
//! set of key/value pairs, never on the order of inserts.
//!
//! Hashes (with the chain suite's hash `H`):
//! * leaf: `H(0x00 || key_path || H(value))`
//! * internal: `H(0x01 || left || right)`
//!
//! Nodes are content-addressed (stored under their own hash) and never
//! overwritten, so the root of any past version still proves against the
//! store: versioned proofs come for free, at the cost of keeping old nodes.

use crate::StorageError;
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::HashMap;
use tongtian_crypto::{CryptoSuite, Hash32};
pub use tongtian_types::proof::{bit, ProofError, StateProof};
use tongtian_types::proof::{internal_hash, leaf_hash};
use tongtian_types::H256;

/// Hash of the empty subtree.
pub const EMPTY: Hash32 = [0u8; 32];

/// A stored tree node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Node {
    /// A key's path and its value's hash.
    Leaf {
        /// `H(key)`.
        path: Hash32,
        /// `H(value)`.
        value_hash: Hash32,
    },
    /// Two children.
    Internal {
        /// Left child (path bit 0).
        left: Hash32,
        /// Right child (path bit 1).
        right: Hash32,
    },
}

impl Node {
    /// This node's hash.
    pub fn hash(&self, s: &dyn CryptoSuite) -> Hash32 {
        match self {
            Node::Leaf { path, value_hash } => leaf_hash(s, path, value_hash),
            Node::Internal { left, right } => internal_hash(s, left, right),
        }
    }
}

/// Where the tree reads nodes it did not create in this batch.
pub trait NodeReader {
    /// The node stored under `hash`, if any.
    fn node(&self, hash: &Hash32) -> Result<Option<Node>, StorageError>;
}

/// One batch of updates against a root, producing a new root and the nodes
/// it created.
pub struct TreeUpdate<'a, R: NodeReader> {
    suite: &'a dyn CryptoSuite,
    reader: &'a R,
    /// Nodes created by this batch, by hash.
    pub created: HashMap<Hash32, Node>,
}

impl<'a, R: NodeReader> TreeUpdate<'a, R> {
    /// Start a batch.
    pub fn new(suite: &'a dyn CryptoSuite, reader: &'a R) -> Self {
        TreeUpdate {
            suite,
            reader,
            created: HashMap::new(),
        }
    }

    fn load(&self, hash: &Hash32) -> Result<Option<Node>, StorageError> {
        if *hash == EMPTY {
            return Ok(None);
        }
        if let Some(n) = self.created.get(hash) {
            return Ok(Some(*n));
        }
        match self.reader.node(hash)? {
            Some(n) => Ok(Some(n)),
            None => Err(StorageError::Corrupt(format!(
                "missing tree node {}",
                hex::encode(hash)
            ))),
        }
    }

    fn put(&mut self, node: Node) -> Hash32 {
        let h = node.hash(self.suite);
        self.created.insert(h, node);
        h
    }

    /// Apply `updates` (sorted by path, unique; `None` deletes) to the tree
    /// rooted at `root` and return the new root.
    pub fn apply(
        &mut self,
        root: Hash32,
        updates: &[(Hash32, Option<Hash32>)],
    ) -> Result<Hash32, StorageError> {
        debug_assert!(
            updates.windows(2).all(|w| w[0].0 < w[1].0),
            "updates sorted and unique"
        );
        self.update(root, 0, updates)
    }

    fn update(
        &mut self,
        node: Hash32,
        depth: usize,
        updates: &[(Hash32, Option<Hash32>)],
    ) -> Result<Hash32, StorageError> {
        if updates.is_empty() {
            return Ok(node);
        }
        match self.load(&node)? {
            None => {
                let leaves: Vec<(Hash32, Hash32)> = updates
                    .iter()
                    .filter_map(|(p, v)| v.map(|v| (*p, v)))
                    .collect();
                Ok(self.build(depth, &leaves))
            }
            Some(Node::Leaf { path, value_hash }) => {
                let mut leaves: Vec<(Hash32, Hash32)> = updates
                    .iter()
                    .filter_map(|(p, v)| v.map(|v| (*p, v)))
                    .collect();
                if updates.binary_search_by(|(p, _)| p.cmp(&path)).is_err() {
                    let at = leaves.partition_point(|(p, _)| *p < path);
                    leaves.insert(at, (path, value_hash));
                }
                Ok(self.build(depth, &leaves))
            }
            Some(Node::Internal { left, right }) => {
                let split = updates.partition_point(|(p, _)| !bit(p, depth));
                let l = self.update(left, depth + 1, &updates[..split])?;
                let r = self.update(right, depth + 1, &updates[split..])?;
                self.join(l, r)
            }
        }
    }

    /// Build a subtree from sorted leaves at `depth`.
    fn build(&mut self, depth: usize, leaves: &[(Hash32, Hash32)]) -> Hash32 {
        match leaves {
            [] => EMPTY,
            [(path, value_hash)] => self.put(Node::Leaf {
                path: *path,
                value_hash: *value_hash,
            }),
            _ => {
                let split = leaves.partition_point(|(p, _)| !bit(p, depth));
                let l = self.build(depth + 1, &leaves[..split]);
                let r = self.build(depth + 1, &leaves[split..]);
                // Two or more leaves below: never collapses to a single leaf.
                self.put(Node::Internal { left: l, right: r })
            }
        }
    }

    /// Join two children, collapsing a lone leaf upwards to keep the tree canonical.
    fn join(&mut self, l: Hash32, r: Hash32) -> Result<Hash32, StorageError> {
        if l == EMPTY && r == EMPTY {
            return Ok(EMPTY);
        }
        if l == EMPTY || r == EMPTY {
            let only = if l == EMPTY { r } else { l };
            if let Some(Node::Leaf { .. }) = self.load(&only)? {
                return Ok(only);
            }
        }
        Ok(self.put(Node::Internal { left: l, right: r }))
    }
}

/// Sibling hashes from the root down, and the leaf `(path, value_hash)` the walk ended at.
pub type ProofPath = (Vec<H256>, Option<(H256, H256)>);

/// Walk from `root` along `H(key)` and collect the proof skeleton
/// (siblings and end leaf); the caller fills in the value.
pub fn prove_path<R: NodeReader>(
    s: &dyn CryptoSuite,
    reader: &R,
    root: Hash32,
    key: &[u8],
) -> Result<ProofPath, StorageError> {
    let path = s.hash(key);
    let mut siblings = Vec::new();
    let mut node = root;
    let mut depth = 0;
    loop {
        if node == EMPTY {
            return Ok((siblings, None));
        }
        match reader.node(&node)? {
            None => {
                return Err(StorageError::Corrupt(format!(
                    "missing tree node {}",
                    hex::encode(node)
                )))
            }
            Some(Node::Leaf {
                path: p,
                value_hash,
            }) => return Ok((siblings, Some((H256(p), H256(value_hash))))),
            Some(Node::Internal { left, right }) => {
                if bit(&path, depth) {
                    siblings.push(H256(left));
                    node = right;
                } else {
                    siblings.push(H256(right));
                    node = left;
                }
                depth += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use tongtian_crypto::{suite, SuiteId};

    #[derive(Default)]
    struct Mem(HashMap<Hash32, Node>);
    impl NodeReader for Mem {
        fn node(&self, h: &Hash32) -> Result<Option<Node>, StorageError> {
            Ok(self.0.get(h).copied())
        }
    }

    /// Apply a batch of key/value changes and persist the created nodes.
    fn apply(
        s: &dyn CryptoSuite,
        mem: &mut Mem,
        root: Hash32,
        changes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> Hash32 {
        let mut ups: Vec<(Hash32, Option<Hash32>)> = changes
            .iter()
            .map(|(k, v)| (s.hash(k), v.as_ref().map(|v| s.hash(v))))
            .collect();
        ups.sort_by_key(|u| u.0);
        let mut t = TreeUpdate::new(s, &*mem);
        let r = t.apply(root, &ups).unwrap();
        let created = std::mem::take(&mut t.created);
        mem.0.extend(created);
        r
    }

    fn proof(
        s: &dyn CryptoSuite,
        mem: &Mem,
        root: Hash32,
        key: &[u8],
        value: Option<Vec<u8>>,
    ) -> StateProof {
        let (siblings, leaf) = prove_path(s, mem, root, key).unwrap();
        StateProof {
            key: key.to_vec(),
            value,
            siblings,
            leaf,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every present key proves its value, every absent key proves absence,
        /// and every tampered proof fails.
        #[test]
        fn proofs_verify_and_tampering_fails(
            batches in proptest::collection::vec(
                proptest::collection::btree_map(0u16..200, proptest::option::weighted(0.8, any::<u32>()), 0..40), 1..4),
            sm in any::<bool>(),
        ) {
            let s = suite(if sm { SuiteId::Sm } else { SuiteId::Standard });
            let mut mem = Mem::default();
            let mut root = EMPTY;
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            for batch in &batches {
                let changes: BTreeMap<Vec<u8>, Option<Vec<u8>>> = batch.iter()
                    .map(|(k, v)| (k.to_be_bytes().to_vec(), v.map(|v| v.to_be_bytes().to_vec()))).collect();
                root = apply(s, &mut mem, root, &changes);
                for (k, v) in changes { match v { Some(v) => { model.insert(k, v); } None => { model.remove(&k); } } }
            }
            // canonical: rebuilding from scratch gives the same root
            let fresh: BTreeMap<Vec<u8>, Option<Vec<u8>>> = model.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
            let mut mem2 = Mem::default();
            prop_assert_eq!(apply(s, &mut mem2, EMPTY, &fresh), root);
            let r = H256(root);
            for k in 0u16..200 {
                let key = k.to_be_bytes().to_vec();
                let value = model.get(&key).cloned();
                let p = proof(s, &mem, root, &key, value.clone());
                prop_assert!(p.verify(s, &r).is_ok());
                // claim the opposite: must fail
                let mut lie = p.clone();
                lie.value = match value { Some(_) => None, None => Some(vec![1, 2, 3]) };
                prop_assert!(lie.verify(s, &r).is_err());
                // wrong value
                if let Some(v) = &p.value {
                    let mut lie = p.clone();
                    let mut v2 = v.clone(); v2[0] ^= 1;
                    lie.value = Some(v2);
                    prop_assert!(lie.verify(s, &r).is_err());
                }
                // flip a sibling
                if !p.siblings.is_empty() {
                    let mut lie = p.clone();
                    lie.siblings[0].0[3] ^= 0x10;
                    prop_assert!(lie.verify(s, &r).is_err());
                    let mut lie = p.clone();
                    lie.siblings.pop();
                    prop_assert!(lie.verify(s, &r).is_err());
                }
            }
        }
    }

    #[test]
    fn empty_tree_and_delete_all() {
        let s = suite(SuiteId::Standard);
        let mut mem = Mem::default();
        let mut ch = BTreeMap::new();
        ch.insert(b"a".to_vec(), Some(b"1".to_vec()));
        ch.insert(b"b".to_vec(), Some(b"2".to_vec()));
        let r = apply(s, &mut mem, EMPTY, &ch);
        assert_ne!(r, EMPTY);
        let mut del = BTreeMap::new();
        del.insert(b"a".to_vec(), None);
        let r1 = apply(s, &mut mem, r, &del);
        // a single remaining leaf is the root itself
        let mut only_b = BTreeMap::new();
        only_b.insert(b"b".to_vec(), Some(b"2".to_vec()));
        assert_eq!(r1, apply(s, &mut Mem::default(), EMPTY, &only_b));
        del.insert(b"b".to_vec(), None);
        assert_eq!(apply(s, &mut mem, r, &del), EMPTY);
    }
}
