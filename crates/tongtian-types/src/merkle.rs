//! Binary Merkle root over an ordered list (transactions, receipts).

use crate::H256;
use tongtian_crypto::CryptoSuite;

/// Merkle root of an ordered list of leaf digests.
///
/// Leaves are hashed as `H(0x00 || leaf)` and inner nodes as
/// `H(0x01 || left || right)` (domain separation against second-preimage
/// tricks); an odd node is promoted unchanged. The empty list has root zero.
pub fn merkle_root(suite: &dyn CryptoSuite, leaves: &[H256]) -> H256 {
    if leaves.is_empty() {
        return H256::ZERO;
    }
    let mut level: Vec<[u8; 32]> = leaves
        .iter()
        .map(|l| suite.hash_parts(&[&[0u8], &l.0]))
        .collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => suite.hash_parts(&[&[1u8], l, r]),
                [one] => *one,
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect();
    }
    H256(level[0])
}

/// One step of a Merkle path: the sibling's digest and which side it is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MerkleStep {
    /// The sibling node.
    pub sibling: H256,
    /// Whether the sibling is the left one (the path's node on the right).
    pub left: bool,
}

/// The path from leaf `index` to [`merkle_root`]'s root (levels where the
/// node was promoted without a sibling have no step); `None` when
/// `index` is out of range.
pub fn merkle_proof(
    suite: &dyn CryptoSuite,
    leaves: &[H256],
    index: usize,
) -> Option<Vec<MerkleStep>> {
    if index >= leaves.len() {
        return None;
    }
    let mut level: Vec<[u8; 32]> = leaves
        .iter()
        .map(|l| suite.hash_parts(&[&[0u8], &l.0]))
        .collect();
    let mut at = index;
    let mut path = Vec::new();
    while level.len() > 1 {
        let sib = at ^ 1;
        if sib < level.len() {
            path.push(MerkleStep {
                sibling: H256(level[sib]),
                left: sib < at,
            });
        }
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => suite.hash_parts(&[&[1u8], l, r]),
                [one] => *one,
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect();
        at /= 2;
    }
    Some(path)
}

/// Whether `path` leads from `leaf` to `root`.
pub fn verify_merkle_proof(
    suite: &dyn CryptoSuite,
    leaf: &H256,
    path: &[MerkleStep],
    root: &H256,
) -> bool {
    let mut node = suite.hash_parts(&[&[0u8], &leaf.0]);
    for step in path {
        node = if step.left {
            suite.hash_parts(&[&[1u8], &step.sibling.0, &node])
        } else {
            suite.hash_parts(&[&[1u8], &node, &step.sibling.0])
        };
    }
    node == root.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use tongtian_crypto::{suite, SuiteId};

    #[test]
    fn root_depends_on_every_leaf_and_order() {
        let s = suite(SuiteId::Standard);
        let leaves: Vec<H256> = (0..5u8).map(|i| H256([i; 32])).collect();
        let r = merkle_root(s, &leaves);
        assert_ne!(r, H256::ZERO);
        let mut swapped = leaves.clone();
        swapped.swap(1, 2);
        assert_ne!(merkle_root(s, &swapped), r);
        let mut changed = leaves.clone();
        changed[4] = H256([9; 32]);
        assert_ne!(merkle_root(s, &changed), r);
        assert_ne!(merkle_root(s, &leaves[..4]), r);
        assert_eq!(merkle_root(s, &[]), H256::ZERO);
    }

    #[test]
    fn every_leaf_has_a_path_and_only_its_own() {
        let s = suite(SuiteId::Standard);
        for n in [1usize, 2, 3, 5, 8, 13] {
            let leaves: Vec<H256> = (0..n as u8).map(|i| H256([i + 1; 32])).collect();
            let root = merkle_root(s, &leaves);
            for i in 0..n {
                let p = merkle_proof(s, &leaves, i).unwrap();
                assert!(verify_merkle_proof(s, &leaves[i], &p, &root), "n={n} i={i}");
                let other = H256([0xee; 32]);
                assert!(!verify_merkle_proof(s, &other, &p, &root));
                if let Some(first) = p.first() {
                    let mut bent = p.clone();
                    bent[0].left = !first.left;
                    assert!(!verify_merkle_proof(s, &leaves[i], &bent, &root));
                }
            }
            assert!(merkle_proof(s, &leaves, n).is_none());
        }
    }
}
