//! Cross-chain trust, on the module seam: what one chain keeps to verify
//! another by itself, without trusting whoever carries the bytes.
//!
//! - [`client`]: light clients of other chains (BFT and Raft trust
//!   models), updated by anyone with certified headers, frozen by proven
//!   misbehaviour, and checking state proofs against verified roots;
//! - [`channel`]: channels and packets (send, recv, acknowledge, timeout),
//!   every step proven through the client of the other chain;
//! - [`transfer`]: fungible tokens over channels, escrowed at their source
//!   and minted as path-named vouchers elsewhere (ICS-20's rules);
//! - [`nft`] and [`nft_transfer`]: non-fungible tokens, and their moves
//!   over channels (ICS-721's rules);
//! - [`attested`]: clients of external EVM chains, attested by a
//!   threshold of named keys, with `eth_getProof` storage proofs;
//! - [`port`]: contracts as ports, with callbacks from both VMs;
//! - [`relay`]: the relayer's steps, over any [`relay::Endpoint`].
//!
//! Relayers carry packets and proofs between chains and are trusted for
//! nothing but liveness: a lying relayer's message fails its checks.

pub mod attested;
pub mod channel;
pub mod client;
pub mod nft;
pub mod nft_transfer;
pub mod port;
pub mod relay;
pub mod transfer;

use tongtian_execution::module::{FeePolicy, ModuleState};

/// Relaying is free for the chain's own validators (each node relays for
/// the chains it hosts with the key it validates with, which holds no
/// funds on a new sub-chain); anyone else pays the usual fee.
pub(crate) fn relay_fee(state: &ModuleState<'_, '_>, tx: &tongtian_types::CheckedTx) -> FeePolicy {
    match state.validator_set() {
        Ok(set)
            if set
                .validators
                .iter()
                .any(|v| v.public_key == tx.tx.public_key) =>
        {
            FeePolicy::Free
        }
        _ => FeePolicy::Charged,
    }
}
