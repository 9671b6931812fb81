//! The data model of Tongtian: everything that crosses a crate boundary or
//! the wire.
//!
//! * [`Address`] and [`H256`]: 20-byte accounts and 32-byte digests.
//! * [`Transaction`], [`SignedTransaction`]: what users sign; each binds a
//!   chain id and a per-account nonce.
//! * [`Block`], [`BlockHeader`], [`Certificate`]: what consensus orders and
//!   signs; a header commits to its transactions, receipts and post-state root.
//! * [`Receipt`], [`Event`]: what execution reports.
//! * [`ChainSpec`]: a chain's genesis and parameters.
//! * [`codec`]: the one canonical binary encoding (Borsh, no trailing bytes).

pub mod api;
pub mod codec;
pub mod eth;
mod merkle;
mod primitives;
pub mod proof;
mod spec;
mod tx;

pub use merkle::{merkle_proof, merkle_root, verify_merkle_proof, MerkleStep};
pub use primitives::{serde_hex, serde_u128, Address, H256};
pub use spec::{
    Account, ChainSpec, ConsensusSpec, GasSchedule, GenesisAccount, Limits, ModuleSections,
    SpecBuilder, ValidatorSpec,
};
pub use tx::{verify_signatures, verify_signatures_by};
pub use tx::{
    Action, Block, BlockHeader, Certificate, CertificateSignature, CheckedTx, Event, Receipt,
    SignedTransaction, Transaction, TxStatus, ValidatorSet, VmKind,
};

/// Errors from decoding or validating model values.
#[derive(Debug, thiserror::Error)]
pub enum TypesError {
    /// Bytes did not decode as the expected type.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What we tried to decode.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// A hex string was not valid.
    #[error("invalid hex for {what}: {value:?}")]
    Hex {
        /// What we tried to parse.
        what: &'static str,
        /// The offending text.
        value: String,
    },
    /// A chain spec is inconsistent.
    #[error("invalid chain spec: {0}")]
    Spec(String),
}
