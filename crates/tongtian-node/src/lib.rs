//! A Tongtian node: hosts chain runtimes and runs them.
//!
//! A [`ChainRuntime`] is one chain on this node: its store, mempool,
//! executor and consensus engine. It implements the consensus
//! [`Application`]: proposals are built from the mempool and executed on a
//! blocking thread; finalized blocks are committed atomically, then the
//! mempool and subscribers are told. The engine is chosen from the chain
//! spec by `tongtian-consensus`; the runtime only knows it by name.
//!
//! [`dev`] creates and reopens the single-node development chain.

pub mod config;
pub mod dev;
pub mod host;
pub mod relay;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tongtian_consensus::{engine_for, Application, ConsensusError, EngineContext};
use tongtian_crypto::{CryptoSuite, Keypair};
use tongtian_execution::{
    account_key, decode_account, BlockEnv, CallRequest, Executor, Mode, Outcome, Simulation,
};
use tongtian_mempool::{AccountSource, AdmissionError, Mempool, MempoolConfig};
use tongtian_network::{channels, Network};
use tongtian_storage::{
    BlockCommit, BlockFilters, BlockStats, ChainStore, StagedState, StateStore, StorageError,
};
use tongtian_types::api::BlockEvent;
use tongtian_types::eth::{BloomBits, BloomBuilder, LogsBloom};
use tongtian_types::{
    merkle_root, Account, Address, Block, BlockHeader, Certificate, ChainSpec, CheckedTx, TxStatus,
    H256,
};

/// Errors from running a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Consensus failed.
    #[error(transparent)]
    Consensus(#[from] ConsensusError),
    /// Execution failed.
    #[error("execution: {0}")]
    Execution(#[from] tongtian_execution::ExecutionError),
    /// The on-disk chain belongs to another spec.
    #[error("the data directory holds chain {found}, not {expected}: refusing to mix chains")]
    SpecMismatch {
        /// Spec hash on disk.
        found: H256,
        /// Spec hash given.
        expected: H256,
    },
    /// Invalid configuration or files.
    #[error("{0}")]
    Config(String),
    /// I/O.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// A chain whose engine is running.
pub struct RunningChain {
    stop: watch::Sender<bool>,
    handle: JoinHandle<Result<(), NodeError>>,
}

impl RunningChain {
    /// Ask the engine to stop after the block in progress, and wait up to
    /// `timeout` for it. A block is committed atomically, so stopping (or
    /// being killed) at any point leaves a consistent store.
    pub async fn stop(self, timeout: std::time::Duration) -> Result<(), NodeError> {
        let _ = self.stop.send(true);
        match tokio::time::timeout(timeout, self.handle).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(NodeError::Config(format!("engine task failed: {e}"))),
            Err(_) => Err(NodeError::Config(format!(
                "engine did not stop within {timeout:?}"
            ))),
        }
    }
}

/// Threads that check the signatures of other validators' blocks, one per
/// core, at normal priority (see `verify_blocking`).
/// `None` (use the global pool) if the threads cannot be started.
fn block_check_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("block-check-{i}"))
            .build()
            .map_err(
                |e| tracing::warn!(error = %e, "no block-check threads; using the shared pool"),
            )
            .ok()
    })
    .as_ref()
}

/// A proposal that was executed, kept until it is committed.
struct Executed {
    outcome: Outcome,
    staged: StagedState,
}

/// A proposal with its execution, assembled into a block.
struct Built {
    block: Block,
    executed: Executed,
}

/// The next proposal, executed ahead of time on the state of its parent
/// while that parent was being written. It is assembled into a block (state
/// staged, header built) only when proposed, after any top-up, so that work
/// is done once per block.
struct Prepared {
    env: BlockEnv,
    parent_hash: H256,
    outcome: Outcome,
}

/// Most gas a simulated call may use.
pub const MAX_SIMULATION_GAS: u64 = 50_000_000;
/// Most blocks one event query scans.
pub const MAX_EVENT_RANGE: u64 = 10_000;

/// A committed event and where it was emitted.
#[derive(Clone, Debug)]
pub struct EventRecord {
    /// Block height.
    pub height: u64,
    /// Transaction.
    pub tx_hash: H256,
    /// Transaction's index in the block.
    pub tx_index: u32,
    /// Event's index among all events of the block.
    pub log_index: u32,
    /// The event.
    pub event: tongtian_types::Event,
}

/// One chain hosted by this node.
pub struct ChainRuntime {
    spec: ChainSpec,
    store: Arc<ChainStore>,
    mempool: Arc<Mempool>,
    executor: Executor,
    key: Keypair,
    dir: std::path::PathBuf,
    network: RwLock<Option<Network>>,
    /// Validators' transport identities where they differ from their keys.
    transport_of: RwLock<HashMap<Vec<u8>, tongtian_network::PeerId>>,
    engine_name: RwLock<&'static str>,
    last: RwLock<(u64, H256)>,
    executed: Mutex<HashMap<H256, Executed>>,
    /// The next block, built while its parent was written (see
    /// [`Application::commit_and_prepare`]).
    prepared: Mutex<Option<Prepared>>,
    /// How many proposals came from `prepared`.
    prepared_used: std::sync::atomic::AtomicU64,
    /// How many of those took in transactions that arrived after it was built.
    topped_up: std::sync::atomic::AtomicU64,
    events: broadcast::Sender<Arc<BlockEvent>>,
    /// Signalled when the mempool admits transactions, to wake an idle
    /// proposer ([`Application::transactions_arrived`]).
    arrivals: tokio::sync::Notify,
    me: Weak<ChainRuntime>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Committed-state view for mempool admission, with the chain's rules.
struct StoreAccounts<'a>(&'a ChainStore, &'a Executor);

impl AccountSource for StoreAccounts<'_> {
    fn account(&self, a: &Address) -> Result<Account, String> {
        match self.0.get(&account_key(a)).map_err(|e| e.to_string())? {
            None => Ok(Account::default()),
            Some(b) => decode_account(&b).ok_or_else(|| format!("corrupt account {a}")),
        }
    }
    fn is_committed(&self, hash: &H256) -> Result<bool, String> {
        self.0.has_tx(hash).map_err(|e| e.to_string())
    }
    fn authorize(&self, tx: &CheckedTx) -> Result<(), (String, String)> {
        match self.1.authorize_on(self.0, tx) {
            Ok(r) => r,
            Err(e) => Err(("state_unavailable".into(), e.to_string())),
        }
    }
    fn fee_free(&self, tx: &CheckedTx) -> bool {
        self.1.fee_policy_on(self.0, tx) == tongtian_execution::FeePolicy::Free
    }
}

impl ChainRuntime {
    /// Open the chain stored in `dir` (creating its genesis block on first
    /// use). `key` is this node's validator key.
    pub fn open(dir: &Path, spec: ChainSpec, key: Keypair) -> Result<Arc<Self>, NodeError> {
        spec.validate()
            .map_err(|e| NodeError::Config(e.to_string()))?;
        std::fs::create_dir_all(dir).map_err(|source| NodeError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let store = Arc::new(ChainStore::open(&dir.join("chain.redb"), spec.suite)?);
        let executor = Executor::new(spec.clone())
            .with_vm(tongtian_vm_wasm::WasmVm::new())
            .with_vm(tongtian_vm_evm::EvmVm::new());
        let executor = tongtian_modules::build(executor, &spec).map_err(NodeError::Config)?;
        let spec_hash = spec.hash();
        match store.meta("spec_hash")? {
            Some(found) => {
                let found =
                    H256::from_slice(&found).map_err(|e| NodeError::Config(e.to_string()))?;
                if found != spec_hash {
                    return Err(NodeError::SpecMismatch {
                        found,
                        expected: spec_hash,
                    });
                }
            }
            None => store.set_meta("spec_hash", spec_hash.as_bytes())?,
        }
        if store.latest_height()?.is_none() {
            let staged = store.stage(executor.genesis_changes()?)?;
            let header = BlockHeader {
                chain_id: spec.chain_id,
                height: 0,
                timestamp_ms: spec.genesis_time_ms,
                parent_hash: spec_hash,
                tx_root: H256::ZERO,
                receipts_root: H256::ZERO,
                state_root: staged.root,
                tx_count: 0,
                proposer: Address::ZERO,
            };
            let block = Block {
                header,
                txs: vec![],
            };
            store.commit_block(BlockCommit {
                block: &block,
                tx_hashes: &[],
                receipts: &[],
                certificate: &Certificate {
                    engine: "genesis".into(),
                    block_hash: block.header.hash(spec.suite),
                    round: 0,
                    signatures: vec![],
                },
                state: &staged,
                filters: BlockFilters::default(),
                block_events: &[],
            })?;
            tracing::info!(chain = %spec.name, root = %block.header.state_root, "genesis committed");
        }
        let height = store.latest_height()?.unwrap_or(0);
        let header = store
            .header(height)?
            .ok_or_else(|| StorageError::Corrupt(format!("missing header {height}")))?;
        let last = (height, header.hash(spec.suite));
        let (events, _) = broadcast::channel(1024);
        Ok(Arc::new_cyclic(|me| ChainRuntime {
            me: me.clone(),
            mempool: Arc::new(Mempool::new(spec.clone(), MempoolConfig::default())),
            executor,
            store,
            key,
            dir: dir.to_path_buf(),
            network: RwLock::new(None),
            transport_of: RwLock::new(HashMap::new()),
            engine_name: RwLock::new("none"),
            last: RwLock::new(last),
            executed: Mutex::new(HashMap::new()),
            prepared: Mutex::new(None),
            prepared_used: std::sync::atomic::AtomicU64::new(0),
            arrivals: tokio::sync::Notify::new(),
            topped_up: std::sync::atomic::AtomicU64::new(0),
            events,
            spec,
        }))
    }

    /// Tell the engine (before [`ChainRuntime::start`]) where validators
    /// whose transport key differs from their validator key are reached.
    pub fn set_transport_of(&self, map: HashMap<Vec<u8>, tongtian_network::PeerId>) {
        *self.transport_of.write() = map;
    }

    /// Start the chain's consensus engine.
    pub fn start(self: &Arc<Self>, network: Option<Network>) -> Result<RunningChain, NodeError> {
        self.start_with_faults(network, tongtian_consensus::Faults::default())
    }

    /// [`ChainRuntime::start`] with simulated misbehaviour (tests only).
    pub fn start_with_faults(
        self: &Arc<Self>,
        network: Option<Network>,
        faults: tongtian_consensus::Faults,
    ) -> Result<RunningChain, NodeError> {
        if faults != tongtian_consensus::Faults::default() {
            tracing::warn!(?faults, "this node simulates Byzantine faults");
        }
        let ctx = EngineContext {
            key: self.key.clone(),
            network: network.clone(),
            dir: self.dir.join("consensus"),
            faults,
            transport_of: self.transport_of.read().clone(),
        };
        let engine = engine_for(&self.spec, ctx)?;
        // One stop signal ends the engine and every task started here, so
        // a stopped chain holds nothing (its store closes with the last
        // handle) and can be started again in the same process.
        let (stop, stopped) = watch::channel(false);
        if let Some(net) = &network {
            *self.network.write() = Some(net.clone());
            tokio::spawn(gossip_in(
                Arc::downgrade(self),
                net.subscribe(self.spec.chain_id, channels::TX_GOSSIP),
                stopped.clone(),
            ));
            tokio::spawn(regossip(Arc::downgrade(self), net.clone(), stopped.clone()));
        }
        *self.engine_name.write() = engine.name();
        let app: Arc<dyn Application> = self.clone();
        let span = tracing::info_span!("chain", id = self.spec.chain_id);
        let handle = tokio::spawn(tracing::Instrument::instrument(
            async move { engine.run(app, stopped).await.map_err(NodeError::from) },
            span,
        ));
        Ok(RunningChain { stop, handle })
    }

    fn self_arc(&self) -> Arc<Self> {
        // Invariant: a runtime only exists inside the Arc built by `open`.
        self.me
            .upgrade()
            .expect("runtime is alive while its methods run")
    }

    /// The chain spec.
    pub fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// The chain's crypto suite.
    pub fn suite(&self) -> &'static dyn CryptoSuite {
        tongtian_crypto::suite(self.spec.suite)
    }

    /// The store (read access for the API).
    pub fn store(&self) -> &ChainStore {
        &self.store
    }

    /// The mempool.
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// Name of the running consensus engine (`none` before start).
    pub fn engine_name(&self) -> &'static str {
        *self.engine_name.read()
    }

    /// How many of this node's proposals were built ahead, while their
    /// parent block was being written.
    pub fn prepared_proposals(&self) -> u64 {
        self.prepared_used
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many proposals built ahead were topped up when proposed with
    /// transactions that arrived after they were built.
    pub fn topped_up_proposals(&self) -> u64 {
        self.topped_up.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Latest committed height and hash.
    pub fn latest(&self) -> (u64, H256) {
        *self.last.read()
    }

    /// The latest height whose certificate a light client accepts: the
    /// latest for BFT and solo chains; on a Raft chain the latest whose
    /// majority certificate has been gathered (a few blocks back at most).
    pub fn latest_certified(&self) -> u64 {
        let latest = self.latest().0;
        if self.spec.consensus.engine != "raft" {
            return latest;
        }
        let quorum = self.validator_set().validators.len() / 2 + 1;
        (latest.saturating_sub(64)..=latest)
            .rev()
            .find(|h| {
                *h == 0
                    || self
                        .store
                        .certificate(*h)
                        .ok()
                        .flatten()
                        .is_some_and(|c| c.signatures.len() >= quorum)
            })
            .unwrap_or(0)
    }

    /// Committed account.
    pub fn account(&self, a: &Address) -> Result<Account, NodeError> {
        StoreAccounts(&self.store, &self.executor)
            .account(a)
            .map_err(|e| NodeError::Storage(StorageError::Corrupt(e)))
    }

    /// Run a call (or, with `to` empty, a creation) without a transaction;
    /// nothing is kept. It runs on the latest state as the next block, or
    /// with `at`, on the state after that committed block (as the block
    /// after it, with that block's time). Gas is capped at
    /// [`MAX_SIMULATION_GAS`].
    pub fn simulate(&self, at: Option<u64>, call: CallRequest) -> Result<Simulation, NodeError> {
        let proposer = Address::from_public_key(self.spec.suite, self.key.public_key());
        let past;
        let (state, env): (&dyn StateStore, BlockEnv) = match at {
            None => (
                &*self.store,
                BlockEnv {
                    height: self.latest().0 + 1,
                    timestamp_ms: now_ms(),
                    proposer,
                },
            ),
            Some(h) => {
                let header = self
                    .store
                    .header(h)?
                    .ok_or(StorageError::UnknownVersion(h))?;
                past = self.store.at(h)?;
                (
                    &past,
                    BlockEnv {
                        height: h + 1,
                        timestamp_ms: header.timestamp_ms,
                        proposer,
                    },
                )
            }
        };
        let call = CallRequest {
            gas_limit: call.gas_limit.min(MAX_SIMULATION_GAS),
            ..call
        };
        Ok(self.executor.simulate(state, &env, call)?)
    }

    /// Answer a native module's query over the latest committed state, or
    /// with `at` the state after that block (`Ok(Err)`: the module's
    /// refusal, e.g. `unknown_module` or `unknown_query`).
    pub fn query_module(
        &self,
        module: &str,
        path: &str,
        params: &std::collections::BTreeMap<String, String>,
        at: Option<u64>,
    ) -> Result<Result<serde_json::Value, tongtian_execution::ModuleError>, NodeError> {
        Ok(match at {
            None => self
                .executor
                .query_module(&*self.store, module, path, params)?,
            Some(h) => {
                let past = self.store.at(h)?;
                self.executor.query_module(&past, module, path, params)?
            }
        })
    }

    /// Committed events of heights `from..=to` (at most
    /// [`MAX_EVENT_RANGE`] blocks), optionally only those of one emitter
    /// (then only the blocks whose emitters bloom may hold it are read).
    pub fn events(
        &self,
        emitter: Option<Address>,
        from: u64,
        to: u64,
    ) -> Result<Vec<EventRecord>, NodeError> {
        let wanted = emitter.map(|a| BloomBits::of(&a.0));
        self.events_where(emitter, from, to, |f| {
            wanted
                .as_ref()
                .is_none_or(|bits| LogsBloom(f.emitters).may_contain(bits))
        })
    }

    /// [`ChainRuntime::events`] of the blocks whose [`BlockFilters`] pass
    /// `may_match`: a query's bloom test skips the blocks that cannot hold
    /// what it asks for without reading their receipts. Blocks stored
    /// before filters were kept are read whatever the test.
    pub fn events_where(
        &self,
        emitter: Option<Address>,
        from: u64,
        to: u64,
        may_match: impl Fn(&BlockFilters) -> bool,
    ) -> Result<Vec<EventRecord>, NodeError> {
        let to = to.min(self.latest().0);
        if to < from {
            return Ok(Vec::new());
        }
        if to - from >= MAX_EVENT_RANGE {
            return Err(NodeError::Config(format!(
                "at most {MAX_EVENT_RANGE} blocks per event query"
            )));
        }
        let filters: HashMap<u64, BlockFilters> = self
            .store
            .block_stats_range(from, to)?
            .into_iter()
            .map(|(h, s)| (h, s.filters))
            .collect();
        let mut out = Vec::new();
        for height in from..=to {
            if filters.get(&height).is_some_and(|f| !may_match(f)) {
                continue;
            }
            // A block's receipts in order, read by position: no hash lookups.
            let mut log_index = 0u32;
            // The block's own events (module hooks) come after its
            // transactions', with no transaction: hash zero, index u32::MAX.
            let own = self.store.block_events(height)?;
            let receipts = self.store.block_receipts(height)?;
            let own_receipt = (!own.is_empty()).then(|| tongtian_types::Receipt {
                tx_hash: H256::ZERO,
                height,
                index: u32::MAX,
                sender: Address::ZERO,
                status: tongtian_types::TxStatus::Success,
                gas_used: 0,
                fee: 0,
                events: own,
                output: Vec::new(),
                contract_address: None,
            });
            for r in receipts.into_iter().chain(own_receipt) {
                for e in r.events {
                    if emitter.is_none_or(|a| a == e.emitter) {
                        out.push(EventRecord {
                            height,
                            tx_hash: r.tx_hash,
                            tx_index: r.index,
                            log_index,
                            event: e,
                        });
                    }
                    log_index += 1;
                }
            }
        }
        Ok(out)
    }

    /// The [`BlockStats`] of the block at `height`: as stored with it, or,
    /// for a block stored before stats were kept, worked out from its
    /// transactions and receipts. `None` for a height not committed.
    pub fn block_stats(&self, height: u64) -> Result<Option<BlockStats>, NodeError> {
        if let Some(stats) = self.store.block_stats(height)? {
            return Ok(Some(stats));
        }
        let Some(block) = self.store.block(height)? else {
            return Ok(None);
        };
        let receipts = self.store.block_receipts(height)?;
        Ok(Some(BlockStats {
            size: tongtian_types::codec::encode(&block).len() as u64,
            gas_used: receipts.iter().map(|r| r.gas_used).sum(),
            filters: event_filters(&receipts, &self.store.block_events(height)?),
        }))
    }

    /// Subscribe to committed blocks.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BlockEvent>> {
        self.events.subscribe()
    }

    /// Admit raw transactions (CPU-bound: call from a blocking thread).
    pub fn submit_batch(&self, raws: &[&[u8]]) -> Vec<Result<H256, AdmissionError>> {
        let results = self.admit(raws);
        if let Some(net) = self.network.read().as_ref() {
            let accepted: Vec<Vec<u8>> = raws
                .iter()
                .zip(&results)
                .filter(|(_, r)| r.is_ok())
                .map(|(raw, _)| raw.to_vec())
                .collect();
            if !accepted.is_empty() {
                let payload = borsh::to_vec(&accepted).unwrap_or_default();
                net.broadcast(self.spec.chain_id, channels::TX_GOSSIP, &payload);
            }
        }
        results
    }

    /// Offer raw transactions to the mempool, and wake an idle proposer if
    /// any were admitted.
    fn admit(&self, raws: &[&[u8]]) -> Vec<Result<H256, AdmissionError>> {
        let results = self
            .mempool
            .submit_batch(raws, &StoreAccounts(&self.store, &self.executor));
        if results.iter().any(|r| r.is_ok()) {
            self.arrivals.notify_one();
        }
        results
    }

    /// The transport, once started with one.
    pub fn network(&self) -> Option<Network> {
        self.network.read().clone()
    }

    /// The validator set in the latest committed state.
    pub fn validator_set(&self) -> tongtian_types::ValidatorSet {
        let overlay = tongtian_execution::StateOverlay::new(&*self.store);
        tongtian_execution::read_validator_set(&overlay).unwrap_or_else(|e| {
            tracing::error!(error = %e, "validator set unreadable; using the spec's");
            tongtian_types::ValidatorSet {
                version: 0,
                validators: self.spec.validators.clone(),
            }
        })
    }

    /// Number of peers connected on the transport.
    pub fn peer_count(&self) -> usize {
        self.network
            .read()
            .as_ref()
            .map_or(0, |n| n.connected().len())
    }

    /// Whether this node is one of the chain's validators.
    pub fn is_validator(&self) -> bool {
        self.spec
            .validators
            .iter()
            .any(|v| v.public_key == self.key.public_key())
    }

    fn build_header(
        &self,
        height: u64,
        parent_hash: H256,
        outcome: &Outcome,
        state_root: H256,
    ) -> BlockHeader {
        let s = self.suite();
        let tx_hashes: Vec<H256> = outcome.included.iter().map(|t| t.hash).collect();
        let receipt_hashes: Vec<H256> = outcome
            .receipts
            .iter()
            .map(|r| r.hash(self.spec.suite))
            .collect();
        BlockHeader {
            chain_id: self.spec.chain_id,
            height,
            timestamp_ms: now_ms(),
            parent_hash,
            tx_root: merkle_root(s, &tx_hashes),
            receipts_root: merkle_root(s, &receipt_hashes),
            state_root,
            tx_count: tx_hashes.len() as u32,
            proposer: Address::from_public_key(self.spec.suite, self.key.public_key()),
        }
    }

    fn propose_blocking(&self, height: u64) -> Result<Option<Block>, NodeError> {
        let (last_height, parent_hash) = self.latest();
        if height != last_height + 1 {
            return Err(NodeError::Config(format!(
                "asked to propose {height} on top of {last_height}"
            )));
        }
        if let Some(p) = self.take_prepared(height, parent_hash) {
            self.prepared_used
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let env = p.env.clone();
            let outcome = self.top_up(p)?;
            // The parent is committed now: the store is the state the
            // block was executed on.
            let built = self.assemble(&*self.store, &env, parent_hash, outcome)?;
            return Ok(Some(self.offer(built)));
        }
        let (env, outcome) = match self.execute_pending(height)? {
            Some((_, outcome)) if outcome.included.is_empty() => return Ok(None),
            Some(fresh) => fresh,
            None if self.empty_block_due(last_height)? => {
                let env = self.block_env(height, now_ms());
                let outcome = self
                    .executor
                    .execute(&*self.store, &env, vec![], Mode::Propose)?;
                (env, outcome)
            }
            None => return Ok(None),
        };
        let built = self.assemble(&*self.store, &env, parent_hash, outcome)?;
        Ok(Some(self.offer(built)))
    }

    /// The block prepared for `height` on `parent_hash`, if that is what
    /// was prepared; a stale one is discarded.
    fn take_prepared(&self, height: u64, parent_hash: H256) -> Option<Prepared> {
        self.prepared
            .lock()
            .take()
            .filter(|p| p.env.height == height && p.parent_hash == parent_hash)
    }

    /// Execute up to a block of pending transactions for `height` over the
    /// committed state; `None` when nothing is pending. When nothing could
    /// be included, what was dropped leaves the mempool, as it would with
    /// a block.
    fn execute_pending(&self, height: u64) -> Result<Option<(BlockEnv, Outcome)>, NodeError> {
        let txs = self
            .mempool
            .pending(self.spec.consensus.max_block_txs as usize);
        if txs.is_empty() {
            return Ok(None);
        }
        let env = self.block_env(height, now_ms());
        let outcome = self
            .executor
            .execute(&*self.store, &env, txs, Mode::Propose)?;
        if outcome.included.is_empty() {
            let dropped: Vec<(H256, Address)> =
                outcome.dropped.iter().map(|(h, a, _)| (*h, *a)).collect();
            self.mempool.on_commit(&[], &dropped, &[]);
        }
        Ok(Some((env, outcome)))
    }

    /// A prepared block with room left takes in the pending transactions
    /// that arrived after it was built: they run after its own, on the
    /// state they left (its parent is committed now, so the store is the
    /// state it was built on). Its whole outcome.
    fn top_up(&self, prepared: Prepared) -> Result<Outcome, NodeError> {
        let max = self.spec.consensus.max_block_txs as usize;
        let outcome = prepared.outcome;
        let room = max.saturating_sub(outcome.included.len());
        if room == 0 {
            return Ok(outcome);
        }
        let held = held_nonces(&outcome);
        let extra = self
            .mempool
            .pending_from(room, |a| held.get(a).copied().unwrap_or(0));
        if extra.is_empty() {
            return Ok(outcome);
        }
        self.topped_up
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self
            .executor
            .execute_after(&*self.store, &prepared.env, outcome, extra)?)
    }

    /// Execute the pending transactions into the block this node will
    /// propose at `height`, ahead of the proposal: the prepared block is
    /// topped up, or started when there is none. Its parent must be
    /// committed (the engine calls this between blocks).
    fn work_ahead_blocking(&self, height: u64) -> Result<(), NodeError> {
        let (last_height, parent_hash) = self.latest();
        if height != last_height + 1 {
            return Ok(());
        }
        let prepared = match self.take_prepared(height, parent_hash) {
            Some(p) => Prepared {
                env: p.env.clone(),
                parent_hash,
                outcome: self.top_up(p)?,
            },
            None => match self.execute_pending(height)? {
                Some((env, outcome)) if !outcome.included.is_empty() => Prepared {
                    env,
                    parent_hash,
                    outcome,
                },
                _ => return Ok(()),
            },
        };
        *self.prepared.lock() = Some(prepared);
        Ok(())
    }

    /// The environment of a block this node proposes.
    fn block_env(&self, height: u64, timestamp_ms: u64) -> BlockEnv {
        BlockEnv {
            height,
            timestamp_ms,
            proposer: Address::from_public_key(self.spec.suite, self.key.public_key()),
        }
    }

    /// An executed proposal made a block: its changes staged on `state`
    /// (the state it was executed on), the header over them.
    fn assemble(
        &self,
        state: &dyn StateStore,
        env: &BlockEnv,
        parent_hash: H256,
        outcome: Outcome,
    ) -> Result<Built, NodeError> {
        let outcome = self.executor.finish_block(state, env, outcome)?;
        let staged = state.stage(outcome.changes.clone())?;
        let mut header = self.build_header(env.height, parent_hash, &outcome, staged.root);
        header.timestamp_ms = env.timestamp_ms;
        let block = Block {
            txs: outcome.included.iter().map(|t| t.tx.clone()).collect(),
            header,
        };
        Ok(Built {
            block,
            executed: Executed { outcome, staged },
        })
    }

    /// Keep a proposal's execution for its commit, and hand out the block.
    fn offer(&self, built: Built) -> Block {
        self.executed
            .lock()
            .insert(built.block.header.hash(self.spec.suite), built.executed);
        built.block
    }

    /// Whether an empty block is due: the spec asks for them and the last
    /// block is at least that old.
    fn empty_block_due(&self, last_height: u64) -> Result<bool, NodeError> {
        let every = self.spec.consensus.empty_block_interval_ms;
        if every == 0 {
            return Ok(false);
        }
        let last = self
            .store
            .header(last_height)?
            .map_or(0, |h| h.timestamp_ms);
        Ok(now_ms() >= last.saturating_add(every))
    }

    fn verify_blocking(&self, block: &Block) -> Result<H256, NodeError> {
        let (last_height, parent_hash) = self.latest();
        let h = &block.header;
        let bad = |why: String| NodeError::Config(format!("invalid block {}: {why}", h.height));
        if h.height != last_height + 1
            || h.parent_hash != parent_hash
            || h.chain_id != self.spec.chain_id
        {
            return Err(bad("does not extend the latest block".into()));
        }
        let txs: Vec<CheckedTx> = block
            .txs
            .iter()
            .map(|t| CheckedTx::new(t.clone(), self.spec.suite))
            .collect();
        // Transactions this node admitted had their signatures checked then
        // (the hash covers signature and key); check only the others.
        let env = BlockEnv::from(h);
        // Its own pool: a node binary may run rayon's global pool, which
        // admission uses, below normal priority; a block check is on the
        // consensus path and keeps normal priority.
        let check = || {
            self.executor
                .verify_block(&*self.store, &env, txs, Mode::Verify, |hash| {
                    self.mempool.contains(hash)
                })
        };
        let outcome = match block_check_pool() {
            Some(pool) => pool.install(check),
            None => check(),
        }?;
        let outcome = self.executor.finish_block(&*self.store, &env, outcome)?;
        let staged = self.store.stage(outcome.changes.clone())?;
        let mut expect = self.build_header(h.height, parent_hash, &outcome, staged.root);
        expect.timestamp_ms = h.timestamp_ms;
        expect.proposer = h.proposer;
        if &expect != h {
            return Err(bad("roots do not match re-execution".into()));
        }
        let hash = h.hash(self.spec.suite);
        self.executed
            .lock()
            .insert(hash, Executed { outcome, staged });
        Ok(hash)
    }

    /// Execute the block after `parent` (whose state is `staged`, not yet
    /// committed) from pending transactions other than `parent`'s (`held`:
    /// [`held_nonces`] of its outcome; a partial block is topped up when
    /// proposed, and assembled then). `None` when none are pending or
    /// execution fails; the proposal is then built the usual way.
    fn prepare_next(
        &self,
        parent: &BlockHeader,
        parent_hash: H256,
        held: &HashMap<Address, u64>,
        staged: &StagedState,
    ) -> Option<Prepared> {
        let max = self.spec.consensus.max_block_txs as usize;
        let txs = self
            .mempool
            .pending_from(max, |a| held.get(a).copied().unwrap_or(0));
        // A partial block is topped up when it is proposed (`top_up`), so
        // transactions arriving meanwhile still make it in.
        if txs.is_empty() {
            return None;
        }
        let view = self.store.ahead(staged, parent.height, parent_hash);
        let env = self.block_env(parent.height + 1, now_ms().max(parent.timestamp_ms));
        match self.executor.execute(&view, &env, txs, Mode::Propose) {
            Ok(outcome) if outcome.included.is_empty() => None,
            Ok(outcome) => Some(Prepared {
                env,
                parent_hash,
                outcome,
            }),
            Err(e) => {
                tracing::warn!(height = env.height, error = %e, "could not build the next block ahead");
                None
            }
        }
    }

    fn commit_blocking(
        &self,
        block: Block,
        cert: Certificate,
        prepare: bool,
    ) -> Result<(), NodeError> {
        let hash = block.header.hash(self.spec.suite);
        // Idempotent: an engine replaying its log after a crash may hand
        // over a block that is already committed.
        if block.header.height <= self.latest().0 {
            return match self.store.header(block.header.height)? {
                Some(h) if h.hash(self.spec.suite) == hash => Ok(()),
                _ => Err(NodeError::Config(format!(
                    "block {} at height {} conflicts with the committed chain",
                    hash, block.header.height
                ))),
            };
        }
        let cached = self.executed.lock().remove(&hash);
        let Executed { outcome, staged } = match cached {
            Some(e) => e,
            None => {
                self.verify_blocking(&block)?;
                self.executed
                    .lock()
                    .remove(&hash)
                    .ok_or_else(|| NodeError::Config("verified block vanished".into()))?
            }
        };
        let tx_hashes: Vec<H256> = outcome.included.iter().map(|t| t.hash).collect();
        // With `prepare`, the next block is built on another thread, on
        // this block's staged state, while this one is written and announced.
        let header = block.header.clone();
        let held = if prepare {
            held_nonces(&outcome)
        } else {
            HashMap::new()
        };
        let prepared = std::thread::scope(|scope| {
            let preparer =
                prepare.then(|| scope.spawn(|| self.prepare_next(&header, hash, &held, &staged)));
            // Kept with the block, so that event queries and block views
            // need not rebuild them from its receipts.
            let filters = event_filters(&outcome.receipts, &outcome.block_events);
            let written = self.store.commit_block(BlockCommit {
                block: &block,
                tx_hashes: &tx_hashes,
                receipts: &outcome.receipts,
                certificate: &cert,
                state: &staged,
                filters,
                block_events: &outcome.block_events,
            });
            if written.is_ok() {
                self.committed(&block, hash, &outcome, tx_hashes.clone());
                // After the announcement: the index write does not delay
                // it. While transactions wait for the next block, it waits
                // longer, so a burst is not held up by it.
                let busy = !self.mempool.is_empty();
                if let Err(e) = self.store.flush_tx_index_if_due(busy) {
                    tracing::warn!(error = %e, "transaction index not written; kept in memory");
                }
            }
            // Free this block's transactions and receipts here, while the
            // next block is still being built, not after.
            drop((block, outcome));
            // A preparation that panicked only loses its head start.
            let prepared = preparer.and_then(|p| p.join().ok().flatten());
            written.map(|()| prepared)
        })?;
        *self.prepared.lock() = prepared;
        Ok(())
    }

    /// Bookkeeping once a block is durable: the new tip, the mempool, and
    /// the block event.
    fn committed(&self, block: &Block, hash: H256, outcome: &Outcome, tx_hashes: Vec<H256>) {
        *self.last.write() = (block.header.height, hash);
        // Proposals built on the old tip are stale now.
        self.executed.lock().clear();
        let dropped: Vec<(H256, Address)> =
            outcome.dropped.iter().map(|(h, a, _)| (*h, *a)).collect();
        self.mempool
            .on_commit(&tx_hashes, &dropped, &outcome.touched);
        let failed = outcome
            .receipts
            .iter()
            .filter(|r| !matches!(r.status, TxStatus::Success))
            .map(|r| r.tx_hash)
            .collect();
        // An idle chain makes an empty block every interval: those are
        // only worth a line when looking closely.
        if tx_hashes.is_empty() {
            tracing::debug!(height = block.header.height, hash = %hash, "committed an empty block");
        } else {
            tracing::info!(height = block.header.height, txs = tx_hashes.len(), hash = %hash, "committed");
        }
        // No subscribers is fine.
        let _ = self.events.send(Arc::new(BlockEvent {
            height: block.header.height,
            hash,
            timestamp_ms: block.header.timestamp_ms,
            txs: tx_hashes,
            failed,
        }));
    }
}

/// What a block being built holds of each sender's transactions: the
/// nonce after its last included one, or `u64::MAX` for a sender one of
/// whose transactions it dropped (none of its later nonces can follow in
/// this block). Pending transactions below these are left to it
/// ([`Mempool::pending_from`]).
fn held_nonces(outcome: &Outcome) -> HashMap<Address, u64> {
    let mut held: HashMap<Address, u64> = HashMap::new();
    for t in &outcome.included {
        let next = held.entry(t.sender).or_insert(0);
        *next = (*next).max(t.tx.tx.nonce + 1);
    }
    for (_, sender, _) in &outcome.dropped {
        held.insert(*sender, u64::MAX);
    }
    held
}

/// The [`BlockFilters`] of a block with `receipts`: Ethereum's logs bloom
/// of its EVM logs, and a bloom of the same form over the emitters of all
/// its events.
fn event_filters(
    receipts: &[tongtian_types::Receipt],
    block_events: &[tongtian_types::Event],
) -> BlockFilters {
    let events = || receipts.iter().flat_map(|r| &r.events).chain(block_events);
    let mut emitters = BloomBuilder::default();
    for e in events() {
        emitters.add(&e.emitter.0);
    }
    BlockFilters {
        logs: tongtian_vm_evm::logs_bloom(events()).0,
        emitters: emitters.finish().0,
    }
}

/// Every few seconds, offer still-pending transactions to peers again, so a
/// transaction that reached only part of the network (a partition, a peer
/// that was down) still reaches whoever proposes next.
async fn regossip(chain: Weak<ChainRuntime>, net: Network, mut stop: watch::Receiver<bool>) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(2);
    const MAX: usize = 5_000;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => return,
        }
        let Some(chain) = chain.upgrade() else { return };
        let pending = chain.mempool.pending(MAX);
        if pending.is_empty() {
            continue;
        }
        let raws: Vec<Vec<u8>> = pending
            .iter()
            .map(|t| tongtian_types::codec::encode(&t.tx))
            .collect();
        let payload = borsh::to_vec(&raws).unwrap_or_default();
        net.broadcast(chain.spec.chain_id, channels::TX_GOSSIP, &payload);
    }
}

/// Admit transactions gossiped by peers (not gossiped again: the mesh is full).
async fn gossip_in(
    chain: Weak<ChainRuntime>,
    mut rx: tokio::sync::mpsc::Receiver<tongtian_network::Inbound>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let msg = tokio::select! {
            m = rx.recv() => match m { Some(m) => m, None => return },
            _ = stop.changed() => return,
        };
        let Ok(raws) = borsh::from_slice::<Vec<Vec<u8>>>(&msg.payload) else {
            tracing::warn!(peer = %msg.from, "undecodable gossip ignored");
            continue;
        };
        let Some(chain) = chain.upgrade() else { return };
        let _ = tokio::task::spawn_blocking(move || {
            let refs: Vec<&[u8]> = raws.iter().map(|r| r.as_slice()).collect();
            chain.admit(&refs);
        })
        .await;
    }
}

fn app_err(e: NodeError) -> ConsensusError {
    ConsensusError::App(e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) -> Result<T, ConsensusError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ConsensusError::App(format!("worker panicked: {e}")))?
        .map_err(app_err)
}

#[async_trait]
impl Application for ChainRuntime {
    fn last_committed(&self) -> (u64, H256) {
        self.latest()
    }

    fn validators(&self) -> Vec<tongtian_types::ValidatorSpec> {
        self.validator_set().validators
    }

    fn upgrade_certificate(&self, height: u64, certificate: Certificate) {
        match self.store.replace_certificate(height, &certificate) {
            Ok(true) => {}
            Ok(false) => tracing::debug!(height, "certificate for another block ignored"),
            Err(e) => tracing::warn!(height, error = %e, "cannot store the majority certificate"),
        }
    }

    fn committed_block(&self, height: u64) -> Option<(Block, Certificate)> {
        let block = self.store.block(height).ok()??;
        let cert = self.store.certificate(height).ok()??;
        Some((block, cert))
    }

    async fn propose(&self, height: u64) -> Result<Option<Block>, ConsensusError> {
        let me = self.self_arc();
        blocking(move || me.propose_blocking(height)).await
    }

    async fn verify(&self, block: &Block) -> Result<(), ConsensusError> {
        let me = self.self_arc();
        let block = block.clone();
        blocking(move || me.verify_blocking(&block).map(|_| ())).await
    }

    async fn commit(&self, block: Block, certificate: Certificate) -> Result<(), ConsensusError> {
        let me = self.self_arc();
        blocking(move || me.commit_blocking(block, certificate, false)).await
    }

    async fn transactions_arrived(&self) {
        self.arrivals.notified().await
    }

    async fn work_ahead(&self, height: u64) {
        let me = self.self_arc();
        if let Err(e) = blocking(move || me.work_ahead_blocking(height)).await {
            tracing::warn!(height, error = %e, "could not execute ahead of the proposal");
        }
    }

    async fn commit_and_prepare(
        &self,
        block: Block,
        certificate: Certificate,
    ) -> Result<(), ConsensusError> {
        let me = self.self_arc();
        blocking(move || me.commit_blocking(block, certificate, true)).await
    }
}
