//! The JSON shapes of the REST API, shared by the server (`tongtian-api`)
//! and the Rust SDK (`tongtian-client`) so the two cannot drift apart.

use crate::primitives::serde_u128;
use crate::proof::StateProof;
use crate::{Account, Address, BlockHeader, Certificate, SignedTransaction, H256};
use serde::{Deserialize, Serialize};

/// `GET /v1/status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusInfo {
    /// Numeric chain id.
    pub chain_id: u64,
    /// Chain name from the spec.
    pub chain_name: String,
    /// Latest committed height.
    pub height: u64,
    /// Latest committed header hash.
    pub latest_hash: H256,
    /// Crypto suite (`standard` or `sm`).
    pub suite: String,
    /// Consensus engine name.
    pub consensus: String,
    /// Connected peers.
    pub peers: usize,
    /// Whether this node validates the chain.
    pub validator: bool,
    /// Pending transactions.
    pub mempool_size: usize,
    /// Queued transactions: admitted, but waiting for an earlier nonce of
    /// their sender.
    #[serde(default)]
    pub mempool_queued: usize,
    /// Queued transactions evicted since the node started, each to make
    /// room for one nearer its sender's next nonce.
    #[serde(default)]
    pub mempool_queued_evicted: u64,
    /// Frames about this chain dropped because their sender is not one of
    /// its member nodes (0 when the chain is not scoped, e.g. a main chain).
    #[serde(default)]
    pub frames_from_non_members: u64,
    /// The latest height whose certificate a light client accepts (below
    /// `height` on a Raft chain until its voters' majority signed).
    #[serde(default)]
    pub certified_height: u64,
    /// Node software version.
    pub version: String,
}

/// An error answer: a stable code and a message.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiErrorBody {
    /// Stable machine-readable code, e.g. `bad_signature`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// `POST /v1/txs`: one transaction in its canonical encoding, as hex.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmitRequest {
    /// `0x`-prefixed hex of the Borsh-encoded signed transaction.
    pub raw: String,
}

/// Answer to an accepted submission.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmitResponse {
    /// Transaction hash.
    pub hash: H256,
}

/// `POST /v1/txs/batch`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchSubmitRequest {
    /// Hex-encoded transactions; a sender's may come in any nonce order
    /// (one after a gap is queued until the gap fills).
    pub raws: Vec<String>,
}

/// One result of a batch submission.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchItem {
    /// Hash when accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<H256>,
    /// Error when refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiErrorBody>,
}

/// Answer to a batch submission, one item per input.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchSubmitResponse {
    /// Results in input order.
    pub results: Vec<BatchItem>,
}

/// `GET /v1/blocks/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockView {
    /// Header hash.
    pub hash: H256,
    /// Header.
    pub header: BlockHeader,
    /// Transaction hashes in order.
    pub tx_hashes: Vec<H256>,
    /// Commit certificate.
    pub certificate: Certificate,
}

/// `GET /v1/txs/{hash}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TxView {
    /// Hash.
    pub hash: H256,
    /// `pending` or `committed`.
    pub status: String,
    /// Block height once committed.
    pub height: Option<u64>,
    /// Index in the block once committed.
    pub index: Option<u32>,
    /// Sender.
    pub sender: Address,
    /// The transaction.
    pub tx: SignedTransaction,
}

/// `GET /v1/accounts/{address}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountView {
    /// Address.
    pub address: Address,
    /// Balance.
    #[serde(with = "serde_u128")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub balance: u128,
    /// Next nonce by committed state.
    pub nonce: u64,
    /// Next nonce counting this node's pending transactions of the account.
    pub pending_nonce: u64,
    /// Height the values were read at.
    pub height: u64,
}

/// `GET /v1/accounts/{address}/proof`: an account with everything needed
/// to check it against a certified header.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountProofView {
    /// Address.
    pub address: Address,
    /// Height proven at.
    pub height: u64,
    /// The account, or none if it does not exist.
    pub account: Option<Account>,
    /// Header whose `state_root` the proof leads to.
    pub header: BlockHeader,
    /// Certificate over that header.
    pub certificate: Certificate,
    /// The Merkle proof.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub proof: StateProof,
}

/// `GET /v1/state/proof?key=&height=`: any state key's value (or
/// absence) with everything a light client needs to check it: what
/// relayers carry between chains.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateProofView {
    /// Height proven at.
    pub height: u64,
    /// Header whose `state_root` the proof leads to.
    pub header: BlockHeader,
    /// Certificate over that header.
    pub certificate: Certificate,
    /// The Merkle proof (with the key and its value, if any).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub proof: StateProof,
}

/// One message of the block stream (`GET /v1/blocks/stream`, SSE event `block`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockEvent {
    /// Height.
    pub height: u64,
    /// Header hash.
    pub hash: H256,
    /// Proposal time.
    pub timestamp_ms: u64,
    /// Hashes of the block's transactions.
    pub txs: Vec<H256>,
    /// Hashes of those whose receipt status is failed.
    pub failed: Vec<H256>,
}

/// A committed event with where it was emitted (`GET /v1/events`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    /// Block height.
    pub height: u64,
    /// Transaction hash.
    pub tx_hash: H256,
    /// Transaction index in the block.
    pub tx_index: u32,
    /// Event index among the block's events.
    pub log_index: u32,
    /// The event.
    pub event: crate::Event,
}
