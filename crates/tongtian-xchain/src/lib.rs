//! Cross-chain trust, on the module seam: what one chain keeps to verify
//! another by itself, without trusting whoever carries the bytes.
//!
//! - [`client`]: light clients of other chains (BFT and Raft trust
//!   models), updated by anyone with certified headers, frozen by proven
//!   misbehaviour, and checking state proofs against verified roots.

pub mod client;
