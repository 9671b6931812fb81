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
}
