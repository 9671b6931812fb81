//! `raft`: crash-fault-tolerant ordering on [openraft], for consortia whose
//! members trust each other not to lie but not to stay up.
//!
//! * Raft node ids are validator indexes in the chain spec; the transport
//!   maps them to public keys.
//! * The leader builds a block ([`Application::propose`]), signs its hash
//!   (the certificate: the leader's signature, quorum 1, because Raft does
//!   not defend against lying members), and replicates `(block, cert)` as a
//!   Raft log entry.
//! * Every node's state machine commits each entry's block through
//!   [`Application::commit`], in log order. An entry whose block does not
//!   extend the committed chain (a proposal left over from an old leader, or
//!   an entry replayed after a crash) is skipped; all nodes see the same log
//!   and skip the same entries.
//! * Log, vote and applied position live in `raft.redb` in the engine's
//!   directory, fsynced before Raft is told they are durable.
//! * RPCs travel over the chain's consensus channel of the encrypted
//!   transport as bincode-encoded requests with correlation ids.
//! * After committing a block, every voter signs its hash and sends the
//!   signature to the others; once a majority of the validator set signed,
//!   each node replaces the block's leader-only certificate with the
//!   majority one ([`Application::upgrade_certificate`]). That is what a
//!   light client of a Raft chain checks: it trusts that no majority of
//!   the voters signs two histories (weaker than BFT, which also survives
//!   liars). The signing runs beside the chain, not in its commit path.

use crate::{Application, ConsensusEngine, ConsensusError, EngineContext};
use async_trait::async_trait;
use openraft::error::{
    InstallSnapshotError, NetworkError as RaftNetError, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, EmptyNode, Entry, EntryPayload, LogId, LogState, RaftLogReader, RaftNetwork,
    RaftNetworkFactory, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership, Vote,
};
use parking_lot::Mutex;
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_network::{channels, Network, PeerId};
use tongtian_types::{Address, Block, BlockHeader, Certificate, CertificateSignature, ChainSpec};

/// A replicated block with its leader certificate (Borsh bytes).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RaftRequest(pub Vec<u8>);

/// Whether an entry's block was committed or skipped.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RaftResponse {
    /// False when the entry did not extend the chain and was skipped.
    pub committed: bool,
}

openraft::declare_raft_types!(
    /// Openraft types of Tongtian chains.
    pub TypeConfig:
        D = RaftRequest,
        R = RaftResponse,
        NodeId = u64,
        Node = EmptyNode,
);

type NodeId = u64;
type StoreResult<T> = Result<T, StorageError<NodeId>>;

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

fn io_err<E: std::fmt::Display>(e: E) -> AnyError {
    AnyError::error(e.to_string())
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    // Invariant: openraft's types and ours serialize infallibly with bincode.
    bincode::serialize(v).expect("bincode serializes raft types")
}

/// Log and metadata on disk; shared by the log store, its readers and the
/// state machine (which records what it applied).
#[derive(Clone)]
struct RaftDisk {
    db: Arc<Database>,
}

impl RaftDisk {
    fn open(path: &std::path::Path) -> Result<Self, ConsensusError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ConsensusError::Config(format!("{}: {e}", dir.display())))?;
        }
        let db =
            Database::create(path).map_err(|e| ConsensusError::Config(format!("raft log: {e}")))?;
        let w = db
            .begin_write()
            .map_err(|e| ConsensusError::Config(e.to_string()))?;
        {
            w.open_table(LOGS)
                .map_err(|e| ConsensusError::Config(e.to_string()))?;
            w.open_table(META)
                .map_err(|e| ConsensusError::Config(e.to_string()))?;
        }
        w.commit()
            .map_err(|e| ConsensusError::Config(e.to_string()))?;
        Ok(RaftDisk { db: Arc::new(db) })
    }

    fn meta<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>, AnyError> {
        let r = self.db.begin_read().map_err(io_err)?;
        let t = r.open_table(META).map_err(io_err)?;
        let v = t.get(key).map_err(io_err)?;
        v.map(|g| bincode::deserialize(g.value()).map_err(io_err))
            .transpose()
    }

    fn set_meta(&self, entries: &[(&str, Vec<u8>)]) -> Result<(), AnyError> {
        let w = self.db.begin_write().map_err(io_err)?;
        {
            let mut t = w.open_table(META).map_err(io_err)?;
            for (k, v) in entries {
                t.insert(*k, v.as_slice()).map_err(io_err)?;
            }
        }
        w.commit().map_err(io_err)
    }

    fn entries(&self, range: impl RangeBounds<u64>) -> Result<Vec<Entry<TypeConfig>>, AnyError> {
        let r = self.db.begin_read().map_err(io_err)?;
        let t = r.open_table(LOGS).map_err(io_err)?;
        let mut out = Vec::new();
        for item in t.range(range).map_err(io_err)? {
            let (_, v) = item.map_err(io_err)?;
            out.push(bincode::deserialize(v.value()).map_err(io_err)?);
        }
        Ok(out)
    }

    fn last_entry(&self) -> Result<Option<Entry<TypeConfig>>, AnyError> {
        let r = self.db.begin_read().map_err(io_err)?;
        let t = r.open_table(LOGS).map_err(io_err)?;
        let last = t.last().map_err(io_err)?;
        last.map(|(_, v)| bincode::deserialize(v.value()).map_err(io_err))
            .transpose()
    }
}

impl RaftLogReader<TypeConfig> for RaftDisk {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        self.entries(range)
            .map_err(|e| StorageIOError::read_logs(e).into())
    }
}

impl RaftLogStorage<TypeConfig> for RaftDisk {
    type LogReader = RaftDisk;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        let purged: Option<LogId<NodeId>> =
            self.meta("purged").map_err(StorageIOError::read_logs)?;
        let last = self
            .last_entry()
            .map_err(StorageIOError::read_logs)?
            .map(|e| e.log_id)
            .or(purged);
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StoreResult<()> {
        self.set_meta(&[("vote", enc(vote))])
            .map_err(|e| StorageIOError::write_vote(e).into())
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        self.meta("vote")
            .map_err(|e| StorageIOError::read_vote(e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StoreResult<()> {
        self.set_meta(&[("committed", enc(&committed))])
            .map_err(|e| StorageIOError::write(e).into())
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId<NodeId>>> {
        Ok(self
            .meta::<Option<LogId<NodeId>>>("committed")
            .map_err(StorageIOError::read)?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let write = || -> Result<(), AnyError> {
            let w = self.db.begin_write().map_err(io_err)?;
            {
                let mut t = w.open_table(LOGS).map_err(io_err)?;
                for e in entries {
                    t.insert(e.log_id.index, enc(&e).as_slice())
                        .map_err(io_err)?;
                }
            }
            // redb's default durability fsyncs on commit.
            w.commit().map_err(io_err)
        };
        let r = write();
        callback.log_io_completed(
            r.as_ref()
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string())),
        );
        r.map_err(|e| StorageIOError::write_logs(e).into())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        let run = || -> Result<(), AnyError> {
            let w = self.db.begin_write().map_err(io_err)?;
            {
                let mut t = w.open_table(LOGS).map_err(io_err)?;
                let keys: Vec<u64> = t
                    .range(log_id.index..)
                    .map_err(io_err)?
                    .filter_map(|r| r.ok().map(|(k, _)| k.value()))
                    .collect();
                for k in keys {
                    t.remove(k).map_err(io_err)?;
                }
            }
            w.commit().map_err(io_err)
        };
        run().map_err(|e| StorageIOError::write_logs(e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        let run = || -> Result<(), AnyError> {
            let w = self.db.begin_write().map_err(io_err)?;
            {
                let mut t = w.open_table(LOGS).map_err(io_err)?;
                let keys: Vec<u64> = t
                    .range(..=log_id.index)
                    .map_err(io_err)?
                    .filter_map(|r| r.ok().map(|(k, _)| k.value()))
                    .collect();
                for k in keys {
                    t.remove(k).map_err(io_err)?;
                }
                w.open_table(META)
                    .map_err(io_err)?
                    .insert("purged", enc(&Some(log_id)).as_slice())
                    .map_err(io_err)?;
            }
            w.commit().map_err(io_err)
        };
        run().map_err(|e| StorageIOError::write_logs(e).into())
    }
}

/// Commits replicated blocks through the node's application.
struct StateMachine {
    app: Arc<dyn Application>,
    disk: RaftDisk,
    suite: SuiteId,
    /// This node's address: blocks it proposed mark it as the leader, which
    /// most likely proposes the next one too.
    me: Address,
    applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, EmptyNode>,
    /// Told of each committed block, to sign it.
    committed: tokio::sync::mpsc::UnboundedSender<(u64, [u8; 32])>,
}

impl StateMachine {
    /// Commit the entry's block if it extends the chain; skip it otherwise.
    async fn apply_block(&self, req: &RaftRequest) -> bool {
        let Ok((block, cert)) = borsh::from_slice::<(Block, Certificate)>(&req.0) else {
            tracing::warn!("undecodable raft entry skipped");
            return false;
        };
        let (height, hash) = self.app.last_committed();
        if block.header.height != height + 1 || block.header.parent_hash != hash {
            tracing::debug!(height = block.header.height, "stale raft entry skipped");
            return false;
        }
        if cert.block_hash != block.header.hash(self.suite) {
            tracing::warn!(
                height = block.header.height,
                "raft entry with a mismatched certificate skipped"
            );
            return false;
        }
        // The leader builds its next proposal while this block is written.
        let (height, hash) = (block.header.height, cert.block_hash.0);
        let committed = if block.header.proposer == self.me {
            self.app.commit_and_prepare(block, cert).await
        } else {
            self.app.commit(block, cert).await
        };
        match committed {
            Ok(()) => {
                let _ = self.committed.send((height, hash));
                true
            }
            Err(e) => {
                // Deterministic execution makes this a local fault (disk,
                // corruption), not a disagreement: skipping would fork.
                tracing::error!(error = %e, "cannot commit a replicated block; halting this node's chain");
                std::process::abort();
            }
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        // The chain store is the state; a snapshot records only the position.
        Ok(Snapshot {
            meta: SnapshotMeta {
                last_log_id: self.applied,
                last_membership: self.membership.clone(),
                snapshot_id: format!("{:?}", self.applied),
            },
            snapshot: Box::new(Cursor::new(Vec::new())),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> StoreResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, EmptyNode>)> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StoreResult<Vec<RaftResponse>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        for e in entries {
            let committed = match &e.payload {
                EntryPayload::Blank => false,
                EntryPayload::Normal(req) => self.apply_block(req).await,
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(e.log_id), m.clone());
                    false
                }
            };
            self.applied = Some(e.log_id);
            out.push(RaftResponse { committed });
        }
        self.disk
            .set_meta(&[
                ("applied", enc(&self.applied)),
                ("membership", enc(&self.membership)),
            ])
            .map_err(StorageIOError::write_state_machine)?;
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        StateMachine {
            app: self.app.clone(),
            disk: self.disk.clone(),
            suite: self.suite,
            me: self.me,
            applied: self.applied,
            membership: self.membership.clone(),
            committed: self.committed.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        _meta: &SnapshotMeta<NodeId, EmptyNode>,
        _snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StoreResult<()> {
        // Logs are never purged (snapshot policy: never), so no leader sends one.
        Err(StorageIOError::write_snapshot(
            None,
            AnyError::error("snapshot install is not supported: logs are kept"),
        )
        .into())
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        Ok(None)
    }
}

#[derive(Serialize, Deserialize)]
enum Rpc {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
}

#[derive(Serialize, Deserialize)]
enum RpcReply {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
}

#[derive(Serialize, Deserialize)]
enum Wire {
    Request {
        id: u64,
        rpc: Rpc,
    },
    Reply {
        id: u64,
        reply: RpcReply,
    },
    /// A voter's signature over a committed block's hash.
    CommitSig {
        height: u64,
        hash: [u8; 32],
        public_key: Vec<u8>,
        signature: Vec<u8>,
    },
}

/// A block hash and the commit signatures gathered for it.
type Gathered = ([u8; 32], Vec<CertificateSignature>);

/// Commit signatures gathered per height, until a majority certificate is
/// written.
struct Signatures {
    app: Arc<dyn Application>,
    suite: SuiteId,
    by_height: Mutex<BTreeMap<u64, Gathered>>,
}

/// Heights kept waiting for signatures (a slow voter's arrive later; a
/// follower that lags gets others' before its own commit).
const SIGNATURE_WINDOW: u64 = 256;

impl Signatures {
    /// Take one signature; write the majority certificate when it is
    /// reached (once per height).
    fn add(&self, height: u64, hash: [u8; 32], public_key: Vec<u8>, signature: Vec<u8>) {
        let validators = self.app.validators();
        if !validators.iter().any(|v| v.public_key == public_key) {
            return;
        }
        let msg = BlockHeader::commit_bytes(&tongtian_types::H256(hash), 0);
        if tongtian_crypto::suite(self.suite)
            .verify(&public_key, &msg, &signature)
            .is_err()
        {
            tracing::debug!(height, "bad raft commit signature ignored");
            return;
        }
        let quorum = validators.len() / 2 + 1;
        let done = {
            let mut all = self.by_height.lock();
            let (h, sigs) = all.entry(height).or_insert_with(|| (hash, Vec::new()));
            if *h != hash || sigs.iter().any(|s| s.public_key == public_key) {
                return;
            }
            sigs.push(CertificateSignature {
                public_key,
                signature,
            });
            if sigs.len() == quorum {
                Some(sigs.clone())
            } else {
                None
            }
        };
        if let Some(signatures) = done {
            // Only for the block this node committed at that height.
            let mine = self
                .app
                .committed_block(height)
                .map(|(b, _)| b.header.hash(self.suite).0);
            if mine == Some(hash) {
                self.app.upgrade_certificate(
                    height,
                    Certificate {
                        engine: "raft".into(),
                        block_hash: tongtian_types::H256(hash),
                        round: 0,
                        signatures,
                    },
                );
            } else {
                // Not committed here yet: count it again when it is.
                self.by_height.lock().entry(height).and_modify(|(_, s)| {
                    s.pop();
                });
            }
        }
        let (top, _) = self.app.last_committed();
        self.by_height
            .lock()
            .retain(|h, _| *h + SIGNATURE_WINDOW > top);
    }
}

/// The Raft node id of a validator key: the first 8 bytes of its SHA-256.
/// Derived, so every node agrees on ids without a registry, and a
/// validator added later gets one too.
pub fn raft_id(public_key: &[u8]) -> u64 {
    let h = tongtian_crypto::suite(SuiteId::Standard).hash(public_key);
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    u64::from_le_bytes(b)
}

/// Request/response over the transport's consensus channel.
struct Rpcs {
    net: Network,
    chain_id: u64,
    peers: Mutex<HashMap<NodeId, PeerId>>,
    /// Validator key to transport identity, where they differ.
    transport_of: HashMap<Vec<u8>, PeerId>,
    next: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<RpcReply>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct RpcFailure(String);

impl Rpcs {
    async fn call(
        &self,
        target: NodeId,
        rpc: Rpc,
        timeout: Duration,
    ) -> Result<RpcReply, RpcFailure> {
        let peer = self
            .peers
            .lock()
            .get(&target)
            .cloned()
            .ok_or_else(|| RpcFailure(format!("no validator with raft id {target}")))?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        if !self.net.send(
            &peer,
            self.chain_id,
            channels::CONSENSUS,
            &enc(&Wire::Request { id, rpc }),
        ) {
            self.pending.lock().remove(&id);
            return Err(RpcFailure(format!("validator {target} is not connected")));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => Ok(r),
            _ => {
                self.pending.lock().remove(&id);
                Err(RpcFailure(format!(
                    "validator {target} did not answer in {timeout:?}"
                )))
            }
        }
    }
}

/// Serve peers' RPCs and route replies to waiting callers.
async fn serve_rpcs(
    rpcs: Arc<Rpcs>,
    raft: openraft::Raft<TypeConfig>,
    mut rx: tokio::sync::mpsc::Receiver<tongtian_network::Inbound>,
    signatures: Arc<Signatures>,
) {
    while let Some(msg) = rx.recv().await {
        let Ok(wire) = bincode::deserialize::<Wire>(&msg.payload) else {
            tracing::warn!(peer = %msg.from, "undecodable raft message ignored");
            continue;
        };
        match wire {
            Wire::CommitSig {
                height,
                hash,
                public_key,
                signature,
            } => {
                let signatures = signatures.clone();
                tokio::task::spawn_blocking(move || {
                    signatures.add(height, hash, public_key, signature)
                });
            }
            Wire::Reply { id, reply } => {
                if let Some(tx) = rpcs.pending.lock().remove(&id) {
                    let _ = tx.send(reply);
                }
            }
            Wire::Request { id, rpc } => {
                let raft = raft.clone();
                let rpcs = rpcs.clone();
                tokio::spawn(async move {
                    let reply = match rpc {
                        Rpc::AppendEntries(r) => {
                            RpcReply::AppendEntries(raft.append_entries(r).await)
                        }
                        Rpc::Vote(r) => RpcReply::Vote(raft.vote(r).await),
                        Rpc::InstallSnapshot(r) => {
                            RpcReply::InstallSnapshot(raft.install_snapshot(r).await)
                        }
                    };
                    rpcs.net.send(
                        &msg.from,
                        rpcs.chain_id,
                        channels::CONSENSUS,
                        &enc(&Wire::Reply { id, reply }),
                    );
                });
            }
        }
    }
}

#[derive(Clone)]
struct NetFactory(Arc<Rpcs>);

struct NetClient {
    rpcs: Arc<Rpcs>,
    target: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for NetFactory {
    type Network = NetClient;
    async fn new_client(&mut self, target: NodeId, _node: &EmptyNode) -> NetClient {
        NetClient {
            rpcs: self.0.clone(),
            target,
        }
    }
}

fn unreachable<E: std::error::Error>(e: RpcFailure) -> RPCError<NodeId, EmptyNode, E> {
    RPCError::Unreachable(Unreachable::new(&e))
}

fn unexpected<E: std::error::Error>() -> RPCError<NodeId, EmptyNode, E> {
    RPCError::Network(RaftNetError::new(&RpcFailure("mismatched reply".into())))
}

impl RaftNetwork<TypeConfig> for NetClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, EmptyNode, RaftError<NodeId>>> {
        match self
            .rpcs
            .call(self.target, Rpc::AppendEntries(rpc), option.hard_ttl())
            .await
            .map_err(unreachable)?
        {
            RpcReply::AppendEntries(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, EmptyNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self
            .rpcs
            .call(self.target, Rpc::InstallSnapshot(rpc), option.hard_ttl())
            .await
            .map_err(unreachable)?
        {
            RpcReply::InstallSnapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, EmptyNode, RaftError<NodeId>>> {
        match self
            .rpcs
            .call(self.target, Rpc::Vote(rpc), option.hard_ttl())
            .await
            .map_err(unreachable)?
        {
            RpcReply::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(unexpected()),
        }
    }
}

/// The Raft engine.
pub struct RaftEngine {
    ctx: EngineContext,
    spec: ChainSpec,
    me: NodeId,
    network: Network,
}

impl RaftEngine {
    /// Check the node is a validator and has a network.
    pub fn new(spec: &ChainSpec, ctx: EngineContext) -> Result<Self, ConsensusError> {
        // A node outside the genesis set may still be added by a validator
        // change later; until then it follows as a non-voter.
        let me = raft_id(ctx.key.public_key());
        let network = ctx
            .network
            .clone()
            .ok_or_else(|| ConsensusError::Config("raft needs the node's network".into()))?;
        Ok(RaftEngine {
            ctx,
            spec: spec.clone(),
            me,
            network,
        })
    }
}

/// Learn the transport identity of every current validator; returns their raft ids.
fn reconcile_peers(rpcs: &Rpcs, app: &dyn Application) -> std::collections::BTreeSet<NodeId> {
    let validators = app.validators();
    let mut peers = rpcs.peers.lock();
    validators
        .iter()
        .map(|v| {
            let id = raft_id(&v.public_key);
            peers.entry(id).or_insert_with(|| {
                rpcs.transport_of
                    .get(&v.public_key)
                    .cloned()
                    .unwrap_or_else(|| PeerId(v.public_key.clone()))
            });
            id
        })
        .collect()
}

/// Leader only: make Raft's voters the chain's current validator set.
async fn reconcile_membership(
    raft: &openraft::Raft<TypeConfig>,
    target: &std::collections::BTreeSet<NodeId>,
) {
    if target.is_empty() {
        return;
    }
    let voters: std::collections::BTreeSet<NodeId> = raft
        .metrics()
        .borrow()
        .membership_config
        .voter_ids()
        .collect();
    if &voters == target {
        return;
    }
    let nodes: std::collections::BTreeSet<NodeId> = raft
        .metrics()
        .borrow()
        .membership_config
        .nodes()
        .map(|(id, _)| *id)
        .collect();
    for id in target.iter().filter(|id| !nodes.contains(id)) {
        if let Err(e) = raft.add_learner(*id, EmptyNode {}, false).await {
            tracing::warn!(id, error = %e, "adding a new validator as learner failed");
            return;
        }
    }
    match raft.change_membership(target.clone(), false).await {
        Ok(_) => tracing::info!(?target, "raft voters now follow the chain's validator set"),
        Err(e) => tracing::warn!(error = %e, "raft membership change failed; will retry"),
    }
}

fn certify(key: &Keypair, suite: SuiteId, block: &Block) -> Certificate {
    let hash = block.header.hash(suite);
    Certificate {
        engine: "raft".into(),
        block_hash: hash,
        round: 0,
        signatures: vec![CertificateSignature {
            public_key: key.public_key().to_vec(),
            signature: key.sign(&BlockHeader::commit_bytes(&hash, 0)),
        }],
    }
}

#[async_trait]
impl ConsensusEngine for RaftEngine {
    fn name(&self) -> &'static str {
        "raft"
    }

    async fn run(
        self: Box<Self>,
        app: Arc<dyn Application>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ConsensusError> {
        let interval = Duration::from_millis(self.spec.consensus.block_interval_ms.max(1));
        let disk = RaftDisk::open(&self.ctx.dir.join("raft.redb"))?;
        let applied: Option<Option<LogId<NodeId>>> = disk
            .meta("applied")
            .map_err(|e| ConsensusError::Config(e.to_string()))?;
        let membership: Option<StoredMembership<NodeId, EmptyNode>> = disk
            .meta("membership")
            .map_err(|e| ConsensusError::Config(e.to_string()))?;
        let (committed_tx, mut committed_rx) = tokio::sync::mpsc::unbounded_channel();
        let sm = StateMachine {
            app: app.clone(),
            disk: disk.clone(),
            suite: self.spec.suite,
            me: Address::from_public_key(self.spec.suite, self.ctx.key.public_key()),
            applied: applied.flatten(),
            membership: membership.unwrap_or_default(),
            committed: committed_tx,
        };
        let signatures = Arc::new(Signatures {
            app: app.clone(),
            suite: self.spec.suite,
            by_height: Mutex::new(BTreeMap::new()),
        });
        let config = openraft::Config {
            cluster_name: self.spec.name.clone(),
            heartbeat_interval: 100,
            election_timeout_min: 400,
            election_timeout_max: 800,
            snapshot_policy: openraft::SnapshotPolicy::Never,
            max_payload_entries: 64,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ConsensusError::Config(e.to_string()))?;
        let rpcs = Arc::new(Rpcs {
            net: self.network.clone(),
            chain_id: self.spec.chain_id,
            peers: Mutex::new(
                self.spec
                    .validators
                    .iter()
                    .map(|v| (raft_id(&v.public_key), self.ctx.peer_of(&v.public_key)))
                    .collect(),
            ),
            transport_of: self.ctx.transport_of.clone(),
            next: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
        });
        let inbound = self
            .network
            .subscribe(self.spec.chain_id, channels::CONSENSUS);
        let raft = openraft::Raft::new(
            self.me,
            Arc::new(config),
            NetFactory(rpcs.clone()),
            disk,
            sm,
        )
        .await
        .map_err(|e| ConsensusError::App(format!("raft start: {e}")))?;
        let server = tokio::spawn(serve_rpcs(
            rpcs.clone(),
            raft.clone(),
            inbound,
            signatures.clone(),
        ));
        // Sign each committed block and send the signature to the others.
        let signer = {
            let (rpcs, signatures, key) = (rpcs.clone(), signatures.clone(), self.ctx.key.clone());
            let is_validator = {
                let app = app.clone();
                move || {
                    app.validators()
                        .iter()
                        .any(|v| v.public_key == key.public_key())
                }
            };
            let key = self.ctx.key.clone();
            tokio::spawn(async move {
                while let Some((height, hash)) = committed_rx.recv().await {
                    if !is_validator() {
                        continue;
                    }
                    let msg = BlockHeader::commit_bytes(&tongtian_types::H256(hash), 0);
                    let signature = key.sign(&msg);
                    let wire = enc(&Wire::CommitSig {
                        height,
                        hash,
                        public_key: key.public_key().to_vec(),
                        signature: signature.clone(),
                    });
                    let peers: Vec<PeerId> = rpcs.peers.lock().values().cloned().collect();
                    for p in peers {
                        rpcs.net.send(&p, rpcs.chain_id, channels::CONSENSUS, &wire);
                    }
                    let (s, pk) = (signatures.clone(), key.public_key().to_vec());
                    let _ = tokio::task::spawn_blocking(move || s.add(height, hash, pk, signature))
                        .await;
                }
            })
        };
        let members: BTreeMap<NodeId, EmptyNode> = self
            .spec
            .validators
            .iter()
            .map(|v| (raft_id(&v.public_key), EmptyNode {}))
            .collect();
        // Every genesis validator may try; only a node with an empty log initializes.
        if members.contains_key(&self.me) {
            if let Err(e) = raft.initialize(members).await {
                tracing::debug!(error = %e, "raft already initialized");
            }
        }
        tracing::info!(
            id = self.me,
            validators = self.spec.validators.len(),
            "raft engine started"
        );
        let mut known_leader = None;
        let result = loop {
            if *shutdown.borrow() {
                break Ok(());
            }
            let leader = raft.metrics().borrow().current_leader;
            if leader != known_leader {
                // openraft's own election chatter is off by default; this
                // is the line that says what came of it.
                match leader {
                    Some(l) => tracing::info!(leader = l, me = l == self.me, "raft leader elected"),
                    None => tracing::info!("raft leader lost; an election follows"),
                }
                known_leader = leader;
            }
            let target = reconcile_peers(&rpcs, app.as_ref());
            if leader == Some(self.me) {
                reconcile_membership(&raft, &target).await;
            }
            if leader == Some(self.me) {
                let (height, _) = app.last_committed();
                match app.propose(height + 1).await {
                    Ok(Some(block)) => {
                        let cert = certify(&self.ctx.key, self.spec.suite, &block);
                        let bytes = borsh::to_vec(&(block, cert))
                            .map_err(|e| ConsensusError::App(e.to_string()))?;
                        match raft.client_write(RaftRequest(bytes)).await {
                            Ok(resp) if resp.data.committed => continue,
                            Ok(_) => {
                                tracing::debug!("proposal was stale when applied; proposing again")
                            }
                            Err(e) => {
                                tracing::info!(error = %e, "proposal not committed (leadership changed?)")
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(e) => break Err(e),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => {}
            }
        };
        server.abort();
        signer.abort();
        let _ = raft.shutdown().await;
        result
    }
}
