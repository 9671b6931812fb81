//! The consensus seam.
//!
//! An engine orders blocks and decides when they are final; the node's
//! [`Application`] builds, checks and commits them. The node asks
//! [`engine_for`] for the engine its chain spec names and runs it through
//! the [`ConsensusEngine`] trait, so nothing outside this crate knows which
//! engine runs.
//!
//! Engines today: `solo` (one validator, for development and single-party
//! chains). Its certificates have the same shape every engine's will: the
//! block hash signed by validators, checkable by a light client with
//! [`tongtian_types::Certificate::verify`].

mod bft;
mod raft;
mod solo;

use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use tongtian_crypto::Keypair;
use tongtian_network::Network;
use tongtian_types::{Block, Certificate, ChainSpec, H256};

pub use raft::RaftEngine;
pub use solo::SoloEngine;

/// Errors from an engine or its application.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// The spec names an engine this build does not have.
    #[error("unknown consensus engine {0:?} (available: solo, raft, bft)")]
    UnknownEngine(String),
    /// The engine's configuration does not fit the spec.
    #[error("consensus configuration: {0}")]
    Config(String),
    /// The application failed to build, check or commit a block.
    #[error("application: {0}")]
    App(String),
}

/// What the node offers an engine.
#[async_trait]
pub trait Application: Send + Sync + 'static {
    /// Height and header hash of the latest committed block.
    fn last_committed(&self) -> (u64, H256);

    /// Build (and execute) a proposal for `height` on top of the latest
    /// committed block; `None` when there is nothing to propose.
    async fn propose(&self, height: u64) -> Result<Option<Block>, ConsensusError>;

    /// Check a block proposed by someone else: it must extend the latest
    /// committed block and re-execute to the header's roots.
    async fn verify(&self, block: &Block) -> Result<(), ConsensusError>;

    /// The validator set in the latest committed state (the spec's until
    /// an approved change replaces it).
    fn validators(&self) -> Vec<tongtian_types::ValidatorSpec>;

    /// A committed block with its certificate (to serve block sync).
    fn committed_block(&self, height: u64) -> Option<(Block, Certificate)>;

    /// Persist a finalized block with its certificate.
    async fn commit(&self, block: Block, certificate: Certificate) -> Result<(), ConsensusError>;

    /// [`Application::commit`], for an engine that knows this node will
    /// propose the next height: the application may build that proposal
    /// while the block is written, and answer the next
    /// [`Application::propose`] with it. Returns, like `commit`, once the
    /// block is durable. By default, just `commit`.
    async fn commit_and_prepare(
        &self,
        block: Block,
        certificate: Certificate,
    ) -> Result<(), ConsensusError> {
        self.commit(block, certificate).await
    }

    /// Replace the certificate of the committed block at `height` with a
    /// stronger one for the same header (Raft: the leader's signature
    /// first, then a majority of voters' once they have signed). By
    /// default, ignored.
    fn upgrade_certificate(&self, height: u64, certificate: Certificate) {
        let _ = (height, certificate);
    }

    /// Resolves when transactions may have arrived since the last call
    /// (spurious wake-ups allowed), so an idle proposer need not wait out
    /// its polling interval. By default, never.
    async fn transactions_arrived(&self) {
        std::future::pending::<()>().await
    }

    /// While the engine waits to propose `height` (this node proposes it),
    /// the application may execute what is pending now into that proposal,
    /// so that less is left to do when [`Application::propose`] is called.
    /// Best effort: a failure only loses the head start. By default,
    /// nothing.
    async fn work_ahead(&self, height: u64) {
        let _ = height;
    }
}

/// A consensus engine: runs until `shutdown` turns true.
#[async_trait]
pub trait ConsensusEngine: Send {
    /// Engine name, as written in chain specs.
    fn name(&self) -> &'static str;

    /// Drive the chain.
    async fn run(
        self: Box<Self>,
        app: Arc<dyn Application>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), ConsensusError>;
}

/// What an engine gets from the node besides the spec.
#[derive(Clone)]
pub struct EngineContext {
    /// This node's key (its validator identity when it is one).
    pub key: Keypair,
    /// The transport, multiplexed for this chain; `None` for a single node.
    pub network: Option<Network>,
    /// A directory the engine may keep its own durable state in.
    pub dir: PathBuf,
    /// Misbehaviour to simulate (tests of Byzantine tolerance only).
    pub faults: Faults,
    /// The transport identity of validators whose validator key is not
    /// their transport key (on a sub-chain, a node validates with a key of
    /// the chain's suite but talks with its node key). A validator not
    /// listed talks with its validator key.
    pub transport_of: std::collections::HashMap<Vec<u8>, tongtian_network::PeerId>,
}

impl EngineContext {
    /// Where to reach the validator with `public_key`.
    pub fn peer_of(&self, public_key: &[u8]) -> tongtian_network::PeerId {
        self.transport_of
            .get(public_key)
            .cloned()
            .unwrap_or_else(|| tongtian_network::PeerId(public_key.to_vec()))
    }
}

/// Byzantine behaviour an engine can be told to simulate, so multi-process
/// tests can check that honest nodes stay safe. Off by default; a node
/// enables it only when its config allows fault injection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Sign a second, conflicting vote for every vote and send it first.
    pub equivocate: bool,
    /// Propose blocks whose state root is forged.
    pub invalid_proposals: bool,
}

impl Faults {
    /// Parse a comma-separated list: `equivocate`, `invalid-proposals`.
    pub fn parse(list: &str) -> Result<Faults, ConsensusError> {
        let mut f = Faults::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "equivocate" => f.equivocate = true,
                "invalid-proposals" => f.invalid_proposals = true,
                other => return Err(ConsensusError::Config(format!("unknown fault {other:?}"))),
            }
        }
        Ok(f)
    }
}

/// Build the engine a chain spec asks for.
pub fn engine_for(
    spec: &ChainSpec,
    ctx: EngineContext,
) -> Result<Box<dyn ConsensusEngine>, ConsensusError> {
    match spec.consensus.engine.as_str() {
        "solo" => Ok(Box::new(SoloEngine::new(spec, ctx.key)?)),
        "raft" => Ok(Box::new(RaftEngine::new(spec, ctx)?)),
        "bft" => Ok(Box::new(bft::BftEngine::new(spec, ctx)?)),
        other => Err(ConsensusError::UnknownEngine(other.to_string())),
    }
}

/// How many validator signatures finalize a block for an engine named in a
/// spec (what a light client needs to check a certificate).
pub fn quorum(spec: &ChainSpec) -> usize {
    match spec.consensus.engine.as_str() {
        // Raft trusts members not to lie: the leader's signature certifies.
        "solo" | "raft" => 1,
        // BFT engines: more than two thirds.
        _ => spec.validators.len() * 2 / 3 + 1,
    }
}
