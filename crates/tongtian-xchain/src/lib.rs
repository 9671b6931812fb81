//! Cross-chain trust, on the module seam: what one chain keeps to verify
//! another by itself, without trusting whoever carries the bytes.
//!
//! - [`client`]: light clients of other chains (BFT and Raft trust
//!   models), updated by anyone with certified headers, frozen by proven
//!   misbehaviour, and checking state proofs against verified roots;
//! - [`channel`]: channels and packets (send, recv, acknowledge, timeout),
//!   every step proven through the client of the other chain;
//! - [`transfer`]: fungible tokens over channels, escrowed at their source
//!   and minted as path-named vouchers elsewhere (ICS-20's rules).
//!
//! Relayers carry packets and proofs between chains and are trusted for
//! nothing but liveness: a lying relayer's message fails its checks.

pub mod channel;
pub mod client;
pub mod transfer;
