//! Durable storage of one chain: blocks, transactions, receipts,
//! certificates, and the authenticated state, on the embedded `redb`
//! database (ACID, copy-on-write B-trees, fsync on commit).
//!
//! Everything a block changes is written in **one** redb write transaction
//! ([`ChainStore::commit_block`]), so a process killed at any instant finds
//! either the whole block or none of it on restart.
//!
//! The transaction-hash index is the exception that proves the rule: its
//! keys are random, so it is written in batches (see `TxTail`), and the
//! batch not yet written is rebuilt from the blocks on open.
//!
//! State is kept twice, in the same transaction: a flat table of the latest
//! values for fast reads, and a [`smt`] sparse Merkle tree whose root goes
//! into each block header and whose nodes prove any key at any version.

pub mod chunk;
pub mod smt;

use borsh::{BorshDeserialize, BorshSerialize};
use redb::{Database, ReadableTable, TableDefinition};
use smt::{Node, NodeReader, StateProof, TreeUpdate, EMPTY};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use tongtian_crypto::{suite, CryptoSuite, Hash32, SuiteId};
use tongtian_types::codec::{decode, encode};
use tongtian_types::{Block, BlockHeader, Certificate, Receipt, SignedTransaction, H256};

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The embedded database failed.
    #[error("database: {0}")]
    Db(String),
    /// Stored bytes are not what we wrote: corruption or a bug.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// A block does not extend the stored chain.
    #[error("block {height} does not extend the chain (expected height {expected})")]
    NotNext {
        /// Offered height.
        height: u64,
        /// The next height the store expects.
        expected: u64,
    },
    /// State was staged against a root that is no longer the latest.
    #[error("staged state is stale: staged on {staged}, latest is {latest}")]
    StaleStage {
        /// Root the stage started from.
        staged: H256,
        /// Current root.
        latest: H256,
    },
    /// No state root stored for that version.
    #[error("no state at version {0}")]
    UnknownVersion(u64),
    /// A past version's state was asked to change.
    #[error("the state at version {0} is read-only")]
    Historical(u64),
}

fn db_err<E: std::fmt::Display>(e: E) -> StorageError {
    StorageError::Db(e.to_string())
}

fn bad_chunk(height: u64) -> StorageError {
    StorageError::Corrupt(format!("malformed record chunk in block {height}"))
}

fn corrupt(e: tongtian_types::TypesError) -> StorageError {
    StorageError::Corrupt(e.to_string())
}

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const HEADERS: TableDefinition<u64, &[u8]> = TableDefinition::new("headers");
const BLOCK_TXS: TableDefinition<u64, &[u8]> = TableDefinition::new("block_txs");
const CERTS: TableDefinition<u64, &[u8]> = TableDefinition::new("certificates");
const HASH_HEIGHT: TableDefinition<&[u8], u64> = TableDefinition::new("hash_to_height");
/// Transaction hash index: (first 8 bytes of the hash, height, index in
/// block), with no value. A whole-hash key was 32 bytes of slice plus a
/// 12-byte value; these fixed 20-byte keys fit more than twice as many to
/// a page, so a batch of random keys copies half as many pages. Two hashes
/// that share a prefix are two keys: a lookup takes every position under
/// its prefix and keeps the one whose transaction has the whole hash.
const TX_INDEX: TableDefinition<(u64, u64, u32), ()> = TableDefinition::new("tx_index");
/// Layout 3's index, whole hash to (height, index); moved into [`TX_INDEX`]
/// when a layout-3 store is opened.
const TX_POS_V3: TableDefinition<&[u8], (u64, u32)> = TableDefinition::new("tx_positions");
/// Transactions by position. Keys grow with the chain, so a block's
/// transactions append to the end of the tree instead of rewriting pages
/// all over it, as hash keys did.
const TXS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("txs_by_position");
/// Receipts by position, for the same reason.
const RECEIPTS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("receipts_by_position");
/// (height, chunk) → (gas used, events emitted) by the block's receipts
/// before that chunk of [`RECEIPTS`], for chunks after the first: a
/// receipt's place in its block (Ethereum's cumulative gas and log index)
/// then takes reading its own chunk only. Blocks written before it existed
/// have none, and are summed from their receipts.
const RECEIPT_MARKS: TableDefinition<(u64, u32), (u64, u32)> =
    TableDefinition::new("receipt_marks");
/// [`BlockStats`] by height. Blocks written before it existed have none.
const BLOCK_STATS: TableDefinition<u64, &[u8]> = TableDefinition::new("block_stats");
/// Height → encoded `Vec<Event>` of the block's own events (only blocks
/// that have some).
const BLOCK_EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("block_events");
const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
const SMT_NODES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("smt_nodes");
const SMT_VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("smt_values");
const ROOTS: TableDefinition<u64, &[u8]> = TableDefinition::new("state_roots");

const LATEST: &str = "latest_height";
/// Meta key: the first height whose transactions are not yet in
/// [`TX_INDEX`] (every lower height's are). Absent in stores written before
/// the index was batched, which indexed every block as it came.
const TX_INDEXED: &str = "tx_index_next_height";
/// The hash index is written once this many transactions wait for it...
const TAIL_MAX_TXS: usize = 16_384;
/// ...or once this many blocks do (idle chains make many empty blocks, and
/// opening the store rescans the blocks still waiting).
const TAIL_MAX_BLOCKS: u64 = 256;
/// While more blocks are coming (the caller says it is busy), the index
/// waits for up to this many transactions instead of [`TAIL_MAX_TXS`], so a
/// burst is not held up by it; it is written once the burst is over.
const TAIL_BUSY_MAX_TXS: usize = 65_536;
/// Meta key of the layout version this code writes.
const SCHEMA: &str = "schema_version";
/// Layout version: 4 indexes transaction hashes by prefix ([`TX_INDEX`]);
/// 3 by whole hash, and is upgraded on open; 3 and 4 store transactions and
/// receipts in chunks by position (1 keyed them by hash).
const SCHEMA_VERSION: u32 = 4;

/// Pending state writes: key to new value, `None` deletes.
pub type StateChanges = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Key-value pairs a prefix scan found, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Where a transaction sits in the chain.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TxRecord {
    /// Block height.
    pub height: u64,
    /// Index within the block.
    pub index: u32,
    /// The transaction.
    pub tx: SignedTransaction,
}

/// State changes with their new root computed but not yet written.
#[derive(Debug, Clone)]
pub struct StagedState {
    /// Root the changes were applied to.
    pub base_root: H256,
    /// Root after the changes.
    pub root: H256,
    changes: StateChanges,
    nodes: HashMap<Hash32, Node>,
}

/// The authenticated state seam: reads of the latest committed state,
/// staging of changes into a new root, and proofs at any version. The
/// executor sees only this trait, never the database.
pub trait StateStore: Send + Sync {
    /// Latest committed value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    /// Latest committed values of several keys, read in one snapshot.
    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StorageError>;
    /// Compute the root that `changes` would give on top of the latest state.
    fn stage(&self, changes: StateChanges) -> Result<StagedState, StorageError>;
    /// State root at `version` (block height).
    fn root(&self, version: u64) -> Result<Option<H256>, StorageError>;
    /// Prove `key` (value or absence) at `version`.
    fn prove(&self, key: &[u8], version: u64) -> Result<StateProof, StorageError>;
    /// Hash of the committed block at `height`, if there is one (what the
    /// EVM's `BLOCKHASH` returns). Stores without blocks have none.
    fn block_hash(&self, height: u64) -> Result<Option<H256>, StorageError> {
        let _ = height;
        Ok(None)
    }
    /// Every latest `(key, value)` whose key starts with `prefix`, in key
    /// order, at most `limit` of them after `start_after` (exclusive) when
    /// given: how a native module lists what it holds. Past versions
    /// cannot be scanned (their values live only in the tree).
    fn scan_prefix(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StorageError>;
}

/// The smallest key greater than every key that starts with `prefix`
/// (`None` when there is none: the prefix is all 0xff).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Filters over what a block's events hold, made by the caller when the
/// block is written and kept in its [`BlockStats`], so that a query for
/// some events can skip the blocks that cannot hold them. The store does
/// not look inside; a node keeps 2048-bit blooms in Ethereum's form.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockFilters {
    /// Over the block's Ethereum logs: their addresses and topics.
    pub logs: [u8; 256],
    /// Over the emitters of all its events, of any VM or native module.
    pub emitters: [u8; 256],
}

impl Default for BlockFilters {
    fn default() -> Self {
        BlockFilters {
            logs: [0; 256],
            emitters: [0; 256],
        }
    }
}

/// Figures of a block that views of it ask for (Ethereum's block object
/// has size, gas and logs bloom), kept when it is written so that a view
/// need not read and decode the block's transactions and receipts again.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockStats {
    /// Length of the block's encoding, in bytes.
    pub size: u64,
    /// Gas its transactions used, summed over the receipts.
    pub gas_used: u64,
    /// The caller's filters over its events ([`BlockCommit::filters`]).
    pub filters: BlockFilters,
}

/// A receipt with what the receipts before it in its block add up to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedReceipt {
    /// The receipt.
    pub receipt: Receipt,
    /// Gas used by the block's receipts before it.
    pub gas_before: u64,
    /// Events emitted by the block's receipts before it.
    pub events_before: u32,
}

/// Everything one block writes.
pub struct BlockCommit<'a> {
    /// The block.
    pub block: &'a Block,
    /// Its transactions' hashes, in order.
    pub tx_hashes: &'a [H256],
    /// Its receipts, in order.
    pub receipts: &'a [Receipt],
    /// Its commit certificate.
    pub certificate: &'a Certificate,
    /// Its state changes, staged against the parent's state.
    pub state: &'a StagedState,
    /// Filters over its events, kept in its [`BlockStats`] for event
    /// queries to skip the block by.
    pub filters: BlockFilters,
    /// Events of the block itself rather than of a transaction (native
    /// modules' begin- and end-block hooks), kept in their own table.
    pub block_events: &'a [tongtian_types::Event],
}

/// A chain's store on disk.
pub struct ChainStore {
    db: Database,
    suite: SuiteId,
    tail: RwLock<TxTail>,
}

/// Positions of the latest blocks' transactions, not yet in [`TX_INDEX`].
///
/// Transaction hashes are random, so each insert into the hash index lands
/// on a different page of its B-tree, and redb copies and rewrites a whole
/// page for it: with a few thousand transactions a block, the index cost
/// about a tenth of a busy node's CPU. So the index is written once per
/// [`TAIL_MAX_TXS`] transactions or [`TAIL_MAX_BLOCKS`] blocks, where many
/// keys share each page, by [`ChainStore::flush_tx_index_if_due`] in a write
/// transaction of its own (a node calls it after announcing a block, so
/// the tens of milliseconds it takes do not delay that block's commit).
/// Until then lookups find those transactions here. Nothing is lost
/// to a crash: `since` is stored with every batch, and opening the store
/// rebuilds the tail from the blocks' own hash lists ([`BLOCK_TXS`]), which
/// are written with each block.
#[derive(Debug, Default)]
struct TxTail {
    /// First height not yet in the index.
    since: u64,
    positions: HashMap<H256, (u64, u32)>,
}

/// The [`TX_INDEX`] key prefix of a transaction hash.
fn hash_prefix(hash: &H256) -> u64 {
    let mut p = [0u8; 8];
    p.copy_from_slice(&hash.0[..8]);
    u64::from_be_bytes(p)
}

/// Record `index` of block `height` from an open chunked table.
fn chunk_item<T: BorshDeserialize>(
    t: &impl ReadableTable<(u64, u32), &'static [u8]>,
    (height, index): (u64, u32),
    what: &'static str,
) -> Result<T, StorageError> {
    let key = (height, index / chunk::CHUNK as u32);
    let g = t.get(key).map_err(db_err)?.ok_or_else(|| {
        StorageError::Corrupt(format!("{what} {height}/{index} indexed but missing"))
    })?;
    let item =
        chunk::get(g.value(), index as usize % chunk::CHUNK).ok_or_else(|| bad_chunk(height))?;
    decode(what, item).map_err(corrupt)
}

/// The first `n` records of a chunk of block `height` (all of them when
/// `n` is `None`), decoded.
fn chunk_records<T: BorshDeserialize>(
    c: &[u8],
    n: Option<usize>,
    height: u64,
    what: &'static str,
) -> Result<Vec<T>, StorageError> {
    let len = chunk::len(c).ok_or_else(|| bad_chunk(height))?;
    (0..n.unwrap_or(len).min(len))
        .map(|i| {
            let item = chunk::get(c, i).ok_or_else(|| bad_chunk(height))?;
            decode(what, item).map_err(corrupt)
        })
        .collect()
}

/// Gas used and events emitted by some of a block's receipts, summed: what
/// [`RECEIPT_MARKS`] keeps and [`PlacedReceipt`] reports.
#[derive(Clone, Copy, Default)]
struct Tally {
    gas: u64,
    events: u32,
}

impl Tally {
    fn add(&mut self, r: &Receipt) {
        self.gas += r.gas_used;
        self.events += r.events.len() as u32;
    }
}

/// Move a layout-3 store's whole-hash index into [`TX_INDEX`], in the
/// opening write transaction (so a crash leaves layout 3 as it was).
fn upgrade_index_v3(w: &redb::WriteTransaction) -> Result<(), StorageError> {
    let mut keys = Vec::new();
    {
        let old = w.open_table(TX_POS_V3).map_err(db_err)?;
        for entry in old.iter().map_err(db_err)? {
            let (h, pos) = entry.map_err(db_err)?;
            let (height, i) = pos.value();
            let h = H256::from_slice(h.value())
                .map_err(|_| StorageError::Corrupt("malformed hash in the index".into()))?;
            keys.push((hash_prefix(&h), height, i));
        }
    }
    keys.sort_unstable();
    let mut index = w.open_table(TX_INDEX).map_err(db_err)?;
    for k in keys {
        index.insert(k, ()).map_err(db_err)?;
    }
    w.delete_table(TX_POS_V3).map_err(db_err)?;
    Ok(())
}

/// A committed transaction's position (height, index), with the
/// transaction when finding it meant reading it.
type Located = ((u64, u32), Option<SignedTransaction>);

/// Each of a block's transaction hashes with its position in the chain.
fn block_positions(height: u64, hashes: &[H256]) -> impl Iterator<Item = (H256, (u64, u32))> + '_ {
    hashes
        .iter()
        .zip(0u32..)
        .map(move |(h, i)| (*h, (height, i)))
}

struct TxnReader<'t, T: ReadableTable<&'static [u8], &'static [u8]>>(&'t T);

impl<T: ReadableTable<&'static [u8], &'static [u8]>> NodeReader for TxnReader<'_, T> {
    fn node(&self, hash: &Hash32) -> Result<Option<Node>, StorageError> {
        match self.0.get(hash.as_slice()).map_err(db_err)? {
            None => Ok(None),
            Some(g) => Ok(Some(decode("tree node", g.value()).map_err(corrupt)?)),
        }
    }
}

impl ChainStore {
    /// Open (or create) the store at `path`.
    pub fn open(path: &Path, suite: SuiteId) -> Result<Self, StorageError> {
        let db = Database::create(path).map_err(db_err)?;
        let w = db.begin_write().map_err(db_err)?;
        {
            w.open_table(META).map_err(db_err)?;
            w.open_table(HEADERS).map_err(db_err)?;
            w.open_table(BLOCK_TXS).map_err(db_err)?;
            w.open_table(CERTS).map_err(db_err)?;
            w.open_table(HASH_HEIGHT).map_err(db_err)?;
            w.open_table(TX_INDEX).map_err(db_err)?;
            w.open_table(TXS).map_err(db_err)?;
            w.open_table(RECEIPTS).map_err(db_err)?;
            w.open_table(BLOCK_STATS).map_err(db_err)?;
            w.open_table(BLOCK_EVENTS).map_err(db_err)?;
            w.open_table(RECEIPT_MARKS).map_err(db_err)?;
            w.open_table(STATE).map_err(db_err)?;
            w.open_table(SMT_NODES).map_err(db_err)?;
            w.open_table(SMT_VALUES).map_err(db_err)?;
            w.open_table(ROOTS).map_err(db_err)?;
            let mut meta = w.open_table(META).map_err(db_err)?;
            let has_blocks = meta.get(LATEST).map_err(db_err)?.is_some();
            let version = meta
                .get(SCHEMA)
                .map_err(db_err)?
                .and_then(|g| <[u8; 4]>::try_from(g.value()).ok())
                .map(u32::from_le_bytes);
            match version {
                Some(SCHEMA_VERSION) => {}
                Some(3) => {
                    upgrade_index_v3(&w)?;
                    meta.insert(SCHEMA, SCHEMA_VERSION.to_le_bytes().as_slice())
                        .map_err(db_err)?;
                    tracing::info!(path = %path.display(), "store layout 3 upgraded to 4");
                }
                None if !has_blocks => {
                    meta.insert(SCHEMA, SCHEMA_VERSION.to_le_bytes().as_slice())
                        .map_err(db_err)?;
                    meta.insert(TX_INDEXED, 0u64.to_le_bytes().as_slice())
                        .map_err(db_err)?;
                }
                other => {
                    return Err(StorageError::Corrupt(format!(
                        "{} has store layout {}, this build reads layout {SCHEMA_VERSION}: \
                         start a fresh data directory",
                        path.display(),
                        other.map_or("1".to_string(), |v| v.to_string())
                    )))
                }
            }
        }
        w.commit().map_err(db_err)?;
        let store = ChainStore {
            db,
            suite,
            tail: RwLock::new(TxTail::default()),
        };
        store.rebuild_tail()?;
        Ok(store)
    }

    /// Fill the tail with the blocks stored since the index was last
    /// written.
    fn rebuild_tail(&self) -> Result<(), StorageError> {
        let next = self.latest_height()?.map_or(0, |h| h + 1);
        let since = match self.meta(TX_INDEXED)? {
            Some(b) => u64::from_le_bytes(
                b.as_slice()
                    .try_into()
                    .map_err(|_| StorageError::Corrupt("malformed index height".into()))?,
            ),
            None => next,
        };
        let mut positions = HashMap::new();
        for height in since..next {
            let hashes = self.block_tx_hashes(height)?.ok_or_else(|| {
                StorageError::Corrupt(format!("block {height} has no transaction list"))
            })?;
            positions.extend(block_positions(height, &hashes));
        }
        tracing::debug!(
            since,
            txs = positions.len(),
            "transaction index tail rebuilt"
        );
        *self.tail_mut() = TxTail { since, positions };
        Ok(())
    }

    fn tail(&self) -> RwLockReadGuard<'_, TxTail> {
        // Updates are single assignments or inserts, never half done.
        self.tail.read().unwrap_or_else(|p| p.into_inner())
    }

    fn tail_mut(&self) -> RwLockWriteGuard<'_, TxTail> {
        self.tail.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The suite hashes are computed with.
    pub fn suite(&self) -> &'static dyn CryptoSuite {
        suite(self.suite)
    }

    /// Read a small metadata value.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(META).map_err(db_err)?;
        Ok(t.get(key).map_err(db_err)?.map(|g| g.value().to_vec()))
    }

    /// Write a small metadata value (its own transaction).
    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let w = self.db.begin_write().map_err(db_err)?;
        w.open_table(META)
            .map_err(db_err)?
            .insert(key, value)
            .map_err(db_err)?;
        w.commit().map_err(db_err)
    }

    /// Height of the latest committed block, if any.
    pub fn latest_height(&self) -> Result<Option<u64>, StorageError> {
        Ok(self.meta(LATEST)?.map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[..8]);
            u64::from_le_bytes(a)
        }))
    }

    /// Read one value from a table and decode it.
    fn read<K, T>(
        &self,
        table: TableDefinition<K, &[u8]>,
        key: K::SelfType<'_>,
        what: &'static str,
    ) -> Result<Option<T>, StorageError>
    where
        K: redb::Key + 'static,
        T: BorshDeserialize,
    {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(table).map_err(db_err)?;
        let value = t.get(key).map_err(db_err)?;
        value
            .map(|g| decode(what, g.value()).map_err(corrupt))
            .transpose()
    }

    /// Header at a height.
    pub fn header(&self, height: u64) -> Result<Option<BlockHeader>, StorageError> {
        self.read(HEADERS, height, "header")
    }

    /// Commit certificate of the block at a height.
    pub fn certificate(&self, height: u64) -> Result<Option<Certificate>, StorageError> {
        self.read(CERTS, height, "certificate")
    }

    /// Replace the certificate of the committed block at `height` with
    /// another for the same header (a Raft block's majority certificate
    /// after its leader's). `false`, and nothing written, when there is no
    /// block there or the certificate is for another header.
    pub fn replace_certificate(
        &self,
        height: u64,
        certificate: &Certificate,
    ) -> Result<bool, StorageError> {
        let Some(header) = self.header(height)? else {
            return Ok(false);
        };
        if header.hash(self.suite) != certificate.block_hash {
            return Ok(false);
        }
        let w = self.db.begin_write().map_err(db_err)?;
        w.open_table(CERTS)
            .map_err(db_err)?
            .insert(height, encode(certificate).as_slice())
            .map_err(db_err)?;
        w.commit().map_err(db_err)?;
        Ok(true)
    }

    /// Transaction hashes of the block at a height.
    pub fn block_tx_hashes(&self, height: u64) -> Result<Option<Vec<H256>>, StorageError> {
        self.read(BLOCK_TXS, height, "block tx list")
    }

    /// The full block at a height.
    pub fn block(&self, height: u64) -> Result<Option<Block>, StorageError> {
        let Some(header) = self.header(height)? else {
            return Ok(None);
        };
        let txs: Vec<SignedTransaction> = self.all_chunked(TXS, height, "transaction")?;
        if txs.len() != header.tx_count as usize {
            return Err(StorageError::Corrupt(format!(
                "block {height} has {} transactions stored, its header says {}",
                txs.len(),
                header.tx_count
            )));
        }
        Ok(Some(Block { header, txs }))
    }

    /// The [`BlockStats`] of the block at a height (`None` for a height not
    /// committed, or committed before stats were kept).
    pub fn block_stats(&self, height: u64) -> Result<Option<BlockStats>, StorageError> {
        self.read(BLOCK_STATS, height, "block stats")
    }

    /// The block's own events (of native modules' block hooks), none for
    /// most blocks.
    pub fn block_events(&self, height: u64) -> Result<Vec<tongtian_types::Event>, StorageError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = match r.open_table(BLOCK_EVENTS) {
            Ok(t) => t,
            // A store written before the table existed.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db_err(e)),
        };
        match t.get(height).map_err(db_err)? {
            Some(v) => tongtian_types::codec::decode("block events", v.value()).map_err(corrupt),
            None => Ok(Vec::new()),
        }
    }

    /// The [`BlockStats`] of the blocks from `from` to `to` inclusive that
    /// have them, in height order, read in one snapshot.
    pub fn block_stats_range(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, BlockStats)>, StorageError> {
        if from > to {
            return Ok(Vec::new());
        }
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(BLOCK_STATS).map_err(db_err)?;
        let mut out = Vec::new();
        for e in t.range(from..=to).map_err(db_err)? {
            let (k, v) = e.map_err(db_err)?;
            out.push((
                k.value(),
                decode("block stats", v.value()).map_err(corrupt)?,
            ));
        }
        Ok(out)
    }

    /// Receipt `index` of the block at `height` with its place in the
    /// block, reading only its own chunk (`None` past the block's end or
    /// for a height not committed).
    pub fn receipt_at(
        &self,
        height: u64,
        index: u32,
    ) -> Result<Option<PlacedReceipt>, StorageError> {
        let k = index / chunk::CHUNK as u32;
        let r = self.db.begin_read().map_err(db_err)?;
        let receipts = r.open_table(RECEIPTS).map_err(db_err)?;
        let Some(g) = receipts.get((height, k)).map_err(db_err)? else {
            return Ok(None);
        };
        let mark = if k == 0 {
            Some(Tally::default())
        } else {
            let marks = r.open_table(RECEIPT_MARKS).map_err(db_err)?;
            let mark = marks.get((height, k)).map_err(db_err)?;
            mark.map(|m| {
                let (gas, events) = m.value();
                Tally { gas, events }
            })
        };
        let mut before = match mark {
            Some(m) => m,
            // A block written before marks were kept: sum the chunks
            // before this one.
            None => {
                let mut sum = Tally::default();
                for e in receipts.range((height, 0)..(height, k)).map_err(db_err)? {
                    let (_, v) = e.map_err(db_err)?;
                    for r in chunk_records::<Receipt>(v.value(), None, height, "receipt")? {
                        sum.add(&r);
                    }
                }
                sum
            }
        };
        // This chunk up to the receipt, which comes last.
        let at = index as usize % chunk::CHUNK;
        let mut upto: Vec<Receipt> = chunk_records(g.value(), Some(at + 1), height, "receipt")?;
        if upto.len() <= at {
            return Ok(None);
        }
        let receipt = upto.pop().expect("at least at + 1 records");
        for r in &upto {
            before.add(r);
        }
        Ok(Some(PlacedReceipt {
            receipt,
            gas_before: before.gas,
            events_before: before.events,
        }))
    }

    /// The receipts of the block at a height, in order (none for a height
    /// not committed).
    pub fn block_receipts(&self, height: u64) -> Result<Vec<Receipt>, StorageError> {
        self.all_chunked(RECEIPTS, height, "receipt")
    }

    /// Every record of block `height` in a chunked table, in order.
    fn all_chunked<T: BorshDeserialize>(
        &self,
        table: TableDefinition<(u64, u32), &[u8]>,
        height: u64,
        what: &'static str,
    ) -> Result<Vec<T>, StorageError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(table).map_err(db_err)?;
        let mut out = Vec::new();
        for e in t.range((height, 0)..=(height, u32::MAX)).map_err(db_err)? {
            let (_, v) = e.map_err(db_err)?;
            out.extend(chunk_records(v.value(), None, height, what)?);
        }
        Ok(out)
    }

    /// Height of the block with this header hash.
    pub fn height_of(&self, hash: &H256) -> Result<Option<u64>, StorageError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(HASH_HEIGHT).map_err(db_err)?;
        Ok(t.get(hash.as_bytes()).map_err(db_err)?.map(|g| g.value()))
    }

    /// Position (height, index) of a committed transaction.
    fn tx_position(&self, hash: &H256) -> Result<Option<(u64, u32)>, StorageError> {
        Ok(self.locate(hash)?.map(|(pos, _)| pos))
    }

    /// Position of a committed transaction, with the transaction itself
    /// when finding it meant reading it (on disk, to check the whole hash).
    fn locate(&self, hash: &H256) -> Result<Option<Located>, StorageError> {
        // The tail first: it is emptied only after its entries are
        // committed to the index, so a miss here is then found below.
        if let Some(pos) = self.tail().positions.get(hash) {
            return Ok(Some((*pos, None)));
        }
        let r = self.db.begin_read().map_err(db_err)?;
        let index = r.open_table(TX_INDEX).map_err(db_err)?;
        let p = hash_prefix(hash);
        let candidates = index
            .range((p, 0, 0)..=(p, u64::MAX, u32::MAX))
            .map_err(db_err)?;
        // Almost always one; more only for hashes that share a prefix.
        let txs = r.open_table(TXS).map_err(db_err)?;
        for entry in candidates {
            let (_, height, index) = entry.map_err(db_err)?.0.value();
            let tx: SignedTransaction = chunk_item(&txs, (height, index), "transaction")?;
            if tx.hash(self.suite) == *hash {
                return Ok(Some(((height, index), Some(tx))));
            }
        }
        Ok(None)
    }

    /// Record `index` of block `height` from a chunked table.
    fn chunked<T: BorshDeserialize>(
        &self,
        table: TableDefinition<(u64, u32), &[u8]>,
        pos: (u64, u32),
        what: &'static str,
    ) -> Result<T, StorageError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(table).map_err(db_err)?;
        chunk_item(&t, pos, what)
    }

    /// Transaction `index` of the block at `height`, read alone (`None`
    /// past the block's end or for a height not committed).
    pub fn tx_at(
        &self,
        height: u64,
        index: u32,
    ) -> Result<Option<SignedTransaction>, StorageError> {
        match self.header(height)? {
            Some(h) if index < h.tx_count => {
                self.chunked(TXS, (height, index), "transaction").map(Some)
            }
            _ => Ok(None),
        }
    }

    /// A committed transaction by hash.
    pub fn tx(&self, hash: &H256) -> Result<Option<TxRecord>, StorageError> {
        let Some(((height, index), read)) = self.locate(hash)? else {
            return Ok(None);
        };
        let tx = match read {
            Some(tx) => tx,
            None => self.chunked(TXS, (height, index), "transaction")?,
        };
        Ok(Some(TxRecord { height, index, tx }))
    }

    /// Whether a transaction is committed.
    pub fn has_tx(&self, hash: &H256) -> Result<bool, StorageError> {
        Ok(self.tx_position(hash)?.is_some())
    }

    /// A receipt by transaction hash.
    pub fn receipt(&self, hash: &H256) -> Result<Option<Receipt>, StorageError> {
        match self.tx_position(hash)? {
            None => Ok(None),
            Some(pos) => self.chunked(RECEIPTS, pos, "receipt").map(Some),
        }
    }

    fn latest_root(&self) -> Result<H256, StorageError> {
        match self.latest_height()? {
            None => Ok(H256(EMPTY)),
            Some(h) => self.root(h)?.ok_or(StorageError::UnknownVersion(h)),
        }
    }

    /// Write a block with everything it changed, atomically. The block must
    /// be the next height and its state must be staged on the latest root.
    pub fn commit_block(&self, c: BlockCommit<'_>) -> Result<(), StorageError> {
        let height = c.block.header.height;
        let expected = self.latest_height()?.map_or(0, |h| h + 1);
        if height != expected {
            return Err(StorageError::NotNext { height, expected });
        }
        let latest = self.latest_root()?;
        if c.state.base_root != latest {
            return Err(StorageError::StaleStage {
                staged: c.state.base_root,
                latest,
            });
        }
        let n = c.block.txs.len();
        if c.tx_hashes.len() != n
            || c.receipts.len() != n
            || c.receipts.iter().zip(0u32..).any(|(r, i)| r.index != i)
        {
            return Err(StorageError::Corrupt(format!(
                "block {height}: {n} transactions, {} hashes and {} receipts (in order) do not match",
                c.tx_hashes.len(),
                c.receipts.len()
            )));
        }
        let s = self.suite();
        let hash = c.block.header.hash(self.suite);
        let w = self.db.begin_write().map_err(db_err)?;
        {
            let header = encode(&c.block.header);
            w.open_table(HEADERS)
                .map_err(db_err)?
                .insert(height, header.as_slice())
                .map_err(db_err)?;
            w.open_table(BLOCK_TXS)
                .map_err(db_err)?
                .insert(height, encode(&c.tx_hashes.to_vec()).as_slice())
                .map_err(db_err)?;
            w.open_table(CERTS)
                .map_err(db_err)?
                .insert(height, encode(c.certificate).as_slice())
                .map_err(db_err)?;
            w.open_table(HASH_HEIGHT)
                .map_err(db_err)?
                .insert(hash.as_bytes(), height)
                .map_err(db_err)?;
            // The block's encoding is its header, the transaction count
            // (4 bytes) and the transactions, each encoded as stored here.
            let mut size = (header.len() + 4) as u64;
            let mut txs = w.open_table(TXS).map_err(db_err)?;
            for (k, part) in c.block.txs.chunks(chunk::CHUNK).enumerate() {
                let encoded: Vec<Vec<u8>> = part.iter().map(encode).collect();
                size += encoded.iter().map(|e| e.len() as u64).sum::<u64>();
                txs.insert((height, k as u32), chunk::pack(&encoded).as_slice())
                    .map_err(db_err)?;
            }
            let stats = BlockStats {
                size,
                gas_used: c.receipts.iter().map(|r| r.gas_used).sum(),
                filters: c.filters.clone(),
            };
            w.open_table(BLOCK_STATS)
                .map_err(db_err)?
                .insert(height, encode(&stats).as_slice())
                .map_err(db_err)?;
            if !c.block_events.is_empty() {
                w.open_table(BLOCK_EVENTS)
                    .map_err(db_err)?
                    .insert(height, encode(&c.block_events.to_vec()).as_slice())
                    .map_err(db_err)?;
            }
            let mut receipts = w.open_table(RECEIPTS).map_err(db_err)?;
            let mut marks = w.open_table(RECEIPT_MARKS).map_err(db_err)?;
            let mut before = Tally::default();
            for (k, part) in c.receipts.chunks(chunk::CHUNK).enumerate() {
                let encoded: Vec<Vec<u8>> = part.iter().map(encode).collect();
                receipts
                    .insert((height, k as u32), chunk::pack(&encoded).as_slice())
                    .map_err(db_err)?;
                if k > 0 {
                    marks
                        .insert((height, k as u32), (before.gas, before.events))
                        .map_err(db_err)?;
                }
                for r in part {
                    before.add(r);
                }
            }
            let mut state = w.open_table(STATE).map_err(db_err)?;
            let mut values = w.open_table(SMT_VALUES).map_err(db_err)?;
            for (k, v) in &c.state.changes {
                match v {
                    Some(v) => {
                        state.insert(k.as_slice(), v.as_slice()).map_err(db_err)?;
                        values
                            .insert(s.hash(v).as_slice(), v.as_slice())
                            .map_err(db_err)?;
                    }
                    None => {
                        state.remove(k.as_slice()).map_err(db_err)?;
                    }
                }
            }
            let mut nodes = w.open_table(SMT_NODES).map_err(db_err)?;
            for (h, n) in &c.state.nodes {
                nodes
                    .insert(h.as_slice(), encode(n).as_slice())
                    .map_err(db_err)?;
            }
            w.open_table(ROOTS)
                .map_err(db_err)?
                .insert(height, c.state.root.as_bytes())
                .map_err(db_err)?;
            w.open_table(META)
                .map_err(db_err)?
                .insert(LATEST, height.to_le_bytes().as_slice())
                .map_err(db_err)?;
        }
        w.commit().map_err(db_err)?;
        self.tail_mut()
            .positions
            .extend(block_positions(height, c.tx_hashes));
        tracing::debug!(height, txs = c.block.txs.len(), root = %c.state.root, "block committed");
        Ok(())
    }

    /// Write the transaction hash index from the tail when the tail holds
    /// `TAIL_MAX_TXS` (16,384) transactions (`TAIL_BUSY_MAX_TXS`, 65,536,
    /// when `busy`: the caller has more blocks to commit right away) or
    /// spans `TAIL_MAX_BLOCKS` (256) blocks (see `TxTail`), in a write transaction
    /// of its own; whether it wrote. Lookups use the tail until it is
    /// written, and a crash before then loses nothing (the tail is rebuilt
    /// on open).
    pub fn flush_tx_index_if_due(&self, busy: bool) -> Result<bool, StorageError> {
        let Some(latest) = self.latest_height()? else {
            return Ok(false);
        };
        let mut keys: Vec<(u64, u64, u32)> = {
            let tail = self.tail();
            let max_txs = if busy {
                TAIL_BUSY_MAX_TXS
            } else {
                TAIL_MAX_TXS
            };
            let due = tail.positions.len() >= max_txs
                || (latest + 1).saturating_sub(tail.since) >= TAIL_MAX_BLOCKS;
            if !due {
                return Ok(false);
            }
            tail.positions
                .iter()
                .filter(|(_, (height, _))| *height <= latest)
                .map(|(h, (height, i))| (hash_prefix(h), *height, *i))
                .collect()
        };
        // Hash keys are random: insert them in key order, so each index
        // page is visited once.
        keys.sort_unstable();
        let w = self.db.begin_write().map_err(db_err)?;
        {
            let mut index = w.open_table(TX_INDEX).map_err(db_err)?;
            for k in &keys {
                index.insert(*k, ()).map_err(db_err)?;
            }
            w.open_table(META)
                .map_err(db_err)?
                .insert(TX_INDEXED, (latest + 1).to_le_bytes().as_slice())
                .map_err(db_err)?;
        }
        w.commit().map_err(db_err)?;
        // Blocks committed meanwhile (none, on a node) stay in the tail.
        let mut tail = self.tail_mut();
        tail.positions.retain(|_, (height, _)| *height > latest);
        tail.since = latest + 1;
        tracing::debug!(
            height = latest,
            txs = keys.len(),
            "transaction index written"
        );
        Ok(true)
    }
}

impl ChainStore {
    /// Stage `changes` on top of the latest committed state or, with
    /// `parent`, on top of that staged (not yet committed) state.
    fn stage_over(
        &self,
        parent: Option<&StagedState>,
        changes: StateChanges,
    ) -> Result<StagedState, StorageError> {
        let s = self.suite();
        let base_root = match parent {
            Some(p) => p.root,
            None => self.latest_root()?,
        };
        let mut ups: Vec<(Hash32, Option<Hash32>)> = changes
            .iter()
            .map(|(k, v)| (s.hash(k), v.as_ref().map(|v| s.hash(v))))
            .collect();
        ups.sort_unstable_by_key(|u| u.0);
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(SMT_NODES).map_err(db_err)?;
        let reader = Layered {
            top: parent.map(|p| &p.nodes),
            base: TxnReader(&t),
        };
        let mut upd = TreeUpdate::new(s, &reader);
        let root = upd.apply(base_root.0, &ups)?;
        Ok(StagedState {
            base_root,
            root: H256(root),
            changes,
            nodes: upd.created,
        })
    }

    /// The state as it will be once `staged`, the state of the block
    /// `height` with hash `hash`, is committed; read while that commit may
    /// still be under way. Lets the next block be executed while the
    /// previous one is being written. Reads see `staged`'s changes over the
    /// committed state; [`StateStore::stage`] stages on top of `staged`, so
    /// its result commits once `staged` has.
    pub fn ahead<'a>(&'a self, staged: &'a StagedState, height: u64, hash: H256) -> Ahead<'a> {
        Ahead {
            store: self,
            staged,
            height,
            hash,
        }
    }

    /// The state as it was after the block at `version`, read through the
    /// Merkle tree (tree nodes are never overwritten, so every committed
    /// version stays readable).
    pub fn at(&self, version: u64) -> Result<StateAt<'_>, StorageError> {
        self.root(version)?
            .ok_or(StorageError::UnknownVersion(version))?;
        Ok(StateAt {
            store: self,
            version,
        })
    }
}

/// A read-only view of the state after one committed block; see
/// [`ChainStore::at`]. Reads walk the tree, so they cost more than reads of
/// the latest state.
pub struct StateAt<'a> {
    store: &'a ChainStore,
    version: u64,
}

impl StateAt<'_> {
    /// The block height whose post-state this is.
    pub fn version(&self) -> u64 {
        self.version
    }
}

impl StateStore for StateAt<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.store.prove(key, self.version)?.value)
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    fn stage(&self, _changes: StateChanges) -> Result<StagedState, StorageError> {
        Err(StorageError::Historical(self.version))
    }

    fn scan_prefix(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StorageError> {
        if self.store.latest_height()? == Some(self.version) {
            return self.store.scan_prefix(prefix, start_after, limit);
        }
        Err(StorageError::Historical(self.version))
    }

    fn root(&self, version: u64) -> Result<Option<H256>, StorageError> {
        if version > self.version {
            return Ok(None);
        }
        self.store.root(version)
    }

    fn prove(&self, key: &[u8], version: u64) -> Result<StateProof, StorageError> {
        if version > self.version {
            return Err(StorageError::UnknownVersion(version));
        }
        self.store.prove(key, version)
    }

    fn block_hash(&self, height: u64) -> Result<Option<H256>, StorageError> {
        if height > self.version {
            return Ok(None);
        }
        self.store.block_hash(height)
    }
}

/// Tree nodes of a staged state first, then the committed ones.
struct Layered<'a, R> {
    top: Option<&'a HashMap<Hash32, Node>>,
    base: R,
}

impl<R: NodeReader> NodeReader for Layered<'_, R> {
    fn node(&self, hash: &Hash32) -> Result<Option<Node>, StorageError> {
        if let Some(n) = self.top.and_then(|t| t.get(hash)) {
            return Ok(Some(*n));
        }
        self.base.node(hash)
    }
}

/// The state after a staged block that may not be committed yet; see
/// [`ChainStore::ahead`]. Keys the staged block did not change read the
/// committed store, whose values for them that block's commit leaves as
/// they were, so reads agree whether or not the commit has landed.
pub struct Ahead<'a> {
    store: &'a ChainStore,
    staged: &'a StagedState,
    height: u64,
    hash: H256,
}

impl StateStore for Ahead<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        match self.staged.changes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.store.get(key),
        }
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let missing: Vec<&[u8]> = keys
            .iter()
            .filter(|k| !self.staged.changes.contains_key(**k))
            .copied()
            .collect();
        let mut below = self.store.get_many(&missing)?.into_iter();
        Ok(keys
            .iter()
            .map(|k| match self.staged.changes.get(*k) {
                Some(v) => v.clone(),
                None => below.next().flatten(),
            })
            .collect())
    }

    fn stage(&self, changes: StateChanges) -> Result<StagedState, StorageError> {
        self.store.stage_over(Some(self.staged), changes)
    }

    fn root(&self, version: u64) -> Result<Option<H256>, StorageError> {
        if version == self.height {
            return Ok(Some(self.staged.root));
        }
        self.store.root(version)
    }

    fn prove(&self, key: &[u8], version: u64) -> Result<StateProof, StorageError> {
        // Proofs are served from committed blocks only.
        if version >= self.height {
            return Err(StorageError::UnknownVersion(version));
        }
        self.store.prove(key, version)
    }

    fn block_hash(&self, height: u64) -> Result<Option<H256>, StorageError> {
        if height == self.height {
            return Ok(Some(self.hash));
        }
        if height > self.height {
            return Ok(None);
        }
        self.store.block_hash(height)
    }

    fn scan_prefix(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StorageError> {
        merge_scan(self.store, &self.staged.changes, prefix, start_after, limit)
    }
}

/// A prefix scan of `base` as `changes` (written over it) leave it.
pub fn merge_scan(
    base: &dyn StateStore,
    changes: &StateChanges,
    prefix: &[u8],
    start_after: Option<&[u8]>,
    limit: usize,
) -> Result<Entries, StorageError> {
    use std::ops::Bound;
    let lower = match start_after {
        Some(k) if k >= prefix => Bound::Excluded(k.to_vec()),
        _ => Bound::Included(prefix.to_vec()),
    };
    let upper = match prefix_end(prefix) {
        Some(e) => Bound::Excluded(e),
        None => Bound::Unbounded,
    };
    let over: Vec<(&Vec<u8>, &Option<Vec<u8>>)> = changes.range((lower, upper)).collect();
    // Every change can hide at most one base entry: ask for that many more.
    let below = base.scan_prefix(prefix, start_after, limit.saturating_add(over.len()))?;
    let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = below.into_iter().collect();
    for (k, v) in over {
        match v {
            Some(v) => merged.insert(k.clone(), v.clone()),
            None => merged.remove(k),
        };
    }
    Ok(merged.into_iter().take(limit).collect())
}

impl StateStore for ChainStore {
    fn block_hash(&self, height: u64) -> Result<Option<H256>, StorageError> {
        Ok(self.header(height)?.map(|h| h.hash(self.suite)))
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(STATE).map_err(db_err)?;
        Ok(t.get(key).map_err(db_err)?.map(|g| g.value().to_vec()))
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(STATE).map_err(db_err)?;
        keys.iter()
            .map(|k| Ok(t.get(*k).map_err(db_err)?.map(|g| g.value().to_vec())))
            .collect()
    }

    fn stage(&self, changes: StateChanges) -> Result<StagedState, StorageError> {
        self.stage_over(None, changes)
    }

    fn scan_prefix(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StorageError> {
        use std::ops::Bound;
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(STATE).map_err(db_err)?;
        let lower = match start_after {
            Some(k) if k >= prefix => Bound::Excluded(k),
            _ => Bound::Included(prefix),
        };
        let end = prefix_end(prefix);
        let upper = match &end {
            Some(e) => Bound::Excluded(e.as_slice()),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for item in t
            .range::<&[u8]>((lower, upper))
            .map_err(db_err)?
            .take(limit)
        {
            let (k, v) = item.map_err(db_err)?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn root(&self, version: u64) -> Result<Option<H256>, StorageError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(ROOTS).map_err(db_err)?;
        t.get(version)
            .map_err(db_err)?
            .map(|g| H256::from_slice(g.value()).map_err(corrupt))
            .transpose()
    }

    fn prove(&self, key: &[u8], version: u64) -> Result<StateProof, StorageError> {
        let root = self
            .root(version)?
            .ok_or(StorageError::UnknownVersion(version))?;
        let s = self.suite();
        let r = self.db.begin_read().map_err(db_err)?;
        let nodes = r.open_table(SMT_NODES).map_err(db_err)?;
        let (siblings, leaf) = smt::prove_path(s, &TxnReader(&nodes), root.0, key)?;
        let path = s.hash(key);
        let value = match &leaf {
            Some((p, vh)) if p.0 == path => {
                let values = r.open_table(SMT_VALUES).map_err(db_err)?;
                let g = values
                    .get(vh.as_bytes())
                    .map_err(db_err)?
                    .ok_or_else(|| StorageError::Corrupt(format!("missing state value {vh}")))?;
                Some(g.value().to_vec())
            }
            _ => None,
        };
        Ok(StateProof {
            key: key.to_vec(),
            value,
            siblings,
            leaf,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tongtian_types::{Address, BlockHeader};

    fn header(height: u64, root: H256) -> BlockHeader {
        BlockHeader {
            chain_id: 1,
            height,
            timestamp_ms: 0,
            parent_hash: H256::ZERO,
            tx_root: H256::ZERO,
            receipts_root: H256::ZERO,
            state_root: root,
            tx_count: 0,
            proposer: Address::ZERO,
        }
    }

    fn commit(store: &ChainStore, height: u64, changes: StateChanges) -> H256 {
        let staged = store.stage(changes).unwrap();
        let root = staged.root;
        let block = Block {
            header: header(height, root),
            txs: vec![],
        };
        store
            .commit_block(BlockCommit {
                block: &block,
                tx_hashes: &[],
                receipts: &[],
                certificate: &Certificate::default(),
                state: &staged,
                filters: BlockFilters::default(),
                block_events: &[],
            })
            .unwrap();
        root
    }

    fn changes(kv: &[(&str, Option<&str>)]) -> StateChanges {
        kv.iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn a_blocks_own_events_are_kept_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("e.redb"), SuiteId::Standard).unwrap();
        commit(&store, 0, StateChanges::new());
        assert!(store.block_events(0).unwrap().is_empty());
        let staged = store.stage(StateChanges::new()).unwrap();
        let block = Block {
            header: header(1, staged.root),
            txs: vec![],
        };
        let ev = tongtian_types::Event {
            emitter: Address([0xff; 20]),
            name: "proposal_decided".into(),
            attributes: vec![("status".into(), "rejected".into())],
        };
        store
            .commit_block(BlockCommit {
                block: &block,
                tx_hashes: &[],
                receipts: &[],
                certificate: &Certificate::default(),
                state: &staged,
                filters: BlockFilters::default(),
                block_events: std::slice::from_ref(&ev),
            })
            .unwrap();
        assert_eq!(store.block_events(1).unwrap(), vec![ev]);
    }

    #[test]
    fn prefix_scans_list_in_order_page_and_see_uncommitted_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("s.redb"), SuiteId::Standard).unwrap();
        commit(
            &store,
            0,
            changes(&[
                ("mod/a/1", Some("one")),
                ("mod/a/2", Some("two")),
                ("mod/a/3", Some("three")),
                ("mod/b/1", Some("other module")),
                ("mod/a", Some("not under mod/a/")),
            ]),
        );
        let keys = |v: Vec<(Vec<u8>, Vec<u8>)>| -> Vec<String> {
            v.into_iter()
                .map(|(k, _)| String::from_utf8(k).unwrap())
                .collect()
        };
        assert_eq!(
            keys(store.scan_prefix(b"mod/a/", None, 10).unwrap()),
            ["mod/a/1", "mod/a/2", "mod/a/3"]
        );
        // Paging: two, then what follows the last one seen.
        assert_eq!(
            keys(store.scan_prefix(b"mod/a/", None, 2).unwrap()),
            ["mod/a/1", "mod/a/2"]
        );
        assert_eq!(
            keys(store.scan_prefix(b"mod/a/", Some(b"mod/a/2"), 2).unwrap()),
            ["mod/a/3"]
        );
        // Changes not committed yet: a deletion hides, an insertion shows.
        let pending = changes(&[("mod/a/1", None), ("mod/a/25", Some("new"))]);
        assert_eq!(
            keys(merge_scan(&store, &pending, b"mod/a/", None, 2).unwrap()),
            ["mod/a/2", "mod/a/25"]
        );
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }

    #[test]
    fn ahead_reads_and_stages_over_an_uncommitted_block() {
        let dir = tempfile::tempdir().unwrap();
        let run = |name: &str, ahead: bool| {
            let store = ChainStore::open(&dir.path().join(name), SuiteId::Standard).unwrap();
            commit(
                &store,
                0,
                changes(&[("a", Some("a0")), ("b", Some("b0")), ("c", Some("c0"))]),
            );
            // Block 1 is staged; block 2 is built before (ahead) or after
            // block 1 is committed.
            let one = store
                .stage(changes(&[
                    ("a", Some("a1")),
                    ("c", None),
                    ("d", Some("d1")),
                ]))
                .unwrap();
            let block1 = Block {
                header: header(1, one.root),
                txs: vec![],
            };
            let hash1 = block1.header.hash(SuiteId::Standard);
            let write1 = || {
                store
                    .commit_block(BlockCommit {
                        block: &block1,
                        tx_hashes: &[],
                        receipts: &[],
                        certificate: &Certificate::default(),
                        state: &one,
                        filters: BlockFilters::default(),
                        block_events: &[],
                    })
                    .unwrap()
            };
            let two_changes = changes(&[("b", Some("b2")), ("d", None), ("e", Some("e2"))]);
            let two = if ahead {
                let view = store.ahead(&one, 1, hash1);
                let keys: [&[u8]; 5] = [b"a", b"b", b"c", b"d", b"z"];
                let want = [Some("a1"), Some("b0"), None, Some("d1"), None]
                    .map(|v| v.map(|v| v.as_bytes().to_vec()));
                for (k, w) in keys.iter().zip(&want) {
                    assert_eq!(&view.get(k).unwrap(), w);
                }
                assert_eq!(view.get_many(&keys).unwrap(), want.to_vec());
                assert_eq!(view.root(1).unwrap(), Some(one.root));
                assert_eq!(view.block_hash(1).unwrap(), Some(hash1));
                assert_eq!(view.block_hash(2).unwrap(), None);
                assert!(view.prove(b"a", 1).is_err());
                let two = view.stage(two_changes).unwrap();
                write1();
                two
            } else {
                write1();
                store.stage(two_changes).unwrap()
            };
            assert_eq!(two.base_root, one.root);
            store
                .commit_block(BlockCommit {
                    block: &Block {
                        header: header(2, two.root),
                        txs: vec![],
                    },
                    tx_hashes: &[],
                    receipts: &[],
                    certificate: &Certificate::default(),
                    state: &two,
                    filters: BlockFilters::default(),
                    block_events: &[],
                })
                .unwrap();
            let proof = store.prove(b"e", 2).unwrap();
            assert_eq!(proof.value.as_deref(), Some(b"e2".as_slice()));
            two.root
        };
        assert_eq!(run("ahead.redb", true), run("after.redb", false));
    }

    #[test]
    fn versions_prove_independently_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.redb");
        let (r0, r1);
        {
            let store = ChainStore::open(&path, SuiteId::Standard).unwrap();
            let mut c = StateChanges::new();
            c.insert(b"k".to_vec(), Some(b"v0".to_vec()));
            r0 = commit(&store, 0, c);
            let mut c = StateChanges::new();
            c.insert(b"k".to_vec(), Some(b"v1".to_vec()));
            c.insert(b"other".to_vec(), Some(b"x".to_vec()));
            r1 = commit(&store, 1, c);
            // wrong height refused
            let staged = store.stage(StateChanges::new()).unwrap();
            let block = Block {
                header: header(5, staged.root),
                txs: vec![],
            };
            assert!(matches!(
                store.commit_block(BlockCommit {
                    block: &block,
                    tx_hashes: &[],
                    receipts: &[],
                    certificate: &Certificate::default(),
                    state: &staged,
                    filters: BlockFilters::default(),
                    block_events: &[],
                }),
                Err(StorageError::NotNext {
                    height: 5,
                    expected: 2
                })
            ));
        }
        let store = ChainStore::open(&path, SuiteId::Standard).unwrap();
        assert_eq!(store.latest_height().unwrap(), Some(1));
        assert_eq!(store.get(b"k").unwrap(), Some(b"v1".to_vec()));
        let s = store.suite();
        let p0 = store.prove(b"k", 0).unwrap();
        assert_eq!(p0.value.as_deref(), Some(&b"v0"[..]));
        p0.verify(s, &r0).unwrap();
        assert!(p0.verify(s, &r1).is_err());
        let p1 = store.prove(b"k", 1).unwrap();
        assert_eq!(p1.value.as_deref(), Some(&b"v1"[..]));
        p1.verify(s, &r1).unwrap();
        let absent = store.prove(b"other", 0).unwrap();
        assert_eq!(absent.value, None);
        absent.verify(s, &r0).unwrap();
        assert!(matches!(
            store.prove(b"k", 9),
            Err(StorageError::UnknownVersion(9))
        ));
    }

    /// A block of `n` signed transfers at `height`, with their hashes and
    /// receipts.
    fn block_of_transfers(
        store: &ChainStore,
        height: u64,
        n: u32,
    ) -> (Block, Vec<H256>, Vec<Receipt>, StagedState) {
        let key = tongtian_crypto::Keypair::generate(SuiteId::Standard);
        let txs: Vec<SignedTransaction> = (0..n)
            .map(|i| {
                tongtian_types::Transaction {
                    chain_id: 1,
                    nonce: height * 10_000 + u64::from(i),
                    gas_limit: 21_000,
                    gas_price: 1,
                    action: tongtian_types::Action::Transfer {
                        to: Address([i as u8; 20]),
                        amount: u128::from(i) + 1,
                        memo: vec![],
                    },
                }
                .sign(&key)
            })
            .collect();
        let hashes: Vec<H256> = txs.iter().map(|t| t.hash(SuiteId::Standard)).collect();
        let receipts: Vec<Receipt> = hashes
            .iter()
            .zip(0u32..)
            .map(|(h, index)| Receipt {
                tx_hash: *h,
                height,
                index,
                sender: Address::ZERO,
                status: tongtian_types::TxStatus::Success,
                gas_used: 21_000 + u64::from(index),
                fee: 0,
                events: (0..index % 3)
                    .map(|_| tongtian_types::Event {
                        emitter: Address::ZERO,
                        name: "e".into(),
                        attributes: vec![],
                    })
                    .collect(),
                output: vec![],
                contract_address: None,
            })
            .collect();
        let staged = store.stage(StateChanges::new()).unwrap();
        let mut header = header(height, staged.root);
        header.tx_count = n;
        (Block { header, txs }, hashes, receipts, staged)
    }

    #[test]
    fn transactions_and_receipts_are_found_by_hash_and_by_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.redb");
        let mut blocks = Vec::new();
        {
            let store = ChainStore::open(&path, SuiteId::Standard).unwrap();
            commit(&store, 0, StateChanges::new());
            for height in 1..=2 {
                let (block, hashes, receipts, staged) =
                    block_of_transfers(&store, height, 300 * height as u32);
                // Receipts that do not match the transactions are refused.
                let short = commit_with(&store, &block, &hashes, &receipts[1..], &staged);
                assert!(matches!(short, Err(StorageError::Corrupt(_))));
                commit_with(&store, &block, &hashes, &receipts, &staged).unwrap();
                blocks.push((block, hashes, receipts));
            }
        }
        let store = ChainStore::open(&path, SuiteId::Standard).unwrap();
        for (block, hashes, receipts) in &blocks {
            let height = block.header.height;
            assert_eq!(store.block(height).unwrap().as_ref(), Some(block));
            assert_eq!(
                store.block_tx_hashes(height).unwrap().as_ref(),
                Some(hashes)
            );
            assert_eq!(&store.block_receipts(height).unwrap(), receipts);
            let n = block.txs.len() as u32;
            assert_eq!(
                store.tx_at(height, n - 1).unwrap().as_ref(),
                block.txs.last()
            );
            assert_eq!(store.tx_at(height, n).unwrap(), None);
            for (i, h) in hashes.iter().enumerate() {
                assert_eq!(
                    store.tx_at(height, i as u32).unwrap().as_ref(),
                    Some(&block.txs[i])
                );
                let rec = store.tx(h).unwrap().unwrap();
                assert_eq!((rec.height, rec.index), (height, i as u32));
                assert_eq!(rec.tx, block.txs[i]);
                assert!(store.has_tx(h).unwrap());
                assert_eq!(store.receipt(h).unwrap().as_ref(), Some(&receipts[i]));
            }
        }
        // Each receipt read alone, with what the receipts before it add up
        // to; the same again for blocks stored before the chunk marks were
        // kept (the marks removed), which are summed from the receipts.
        let places = |store: &ChainStore| {
            for (block, _, receipts) in &blocks {
                let height = block.header.height;
                let (mut gas, mut events) = (0, 0);
                for (i, r) in receipts.iter().enumerate() {
                    let want = PlacedReceipt {
                        receipt: r.clone(),
                        gas_before: gas,
                        events_before: events,
                    };
                    assert_eq!(store.receipt_at(height, i as u32).unwrap(), Some(want));
                    gas += r.gas_used;
                    events += r.events.len() as u32;
                }
                assert_eq!(
                    store.receipt_at(height, receipts.len() as u32).unwrap(),
                    None
                );
            }
            assert_eq!(store.receipt_at(3, 0).unwrap(), None);
        };
        places(&store);
        let w = store.db.begin_write().unwrap();
        assert!(w.delete_table(RECEIPT_MARKS).unwrap());
        w.open_table(RECEIPT_MARKS).unwrap();
        w.commit().unwrap();
        places(&store);
        // Each block's stats, as written, match the block itself.
        let stats = store.block_stats_range(0, 9).unwrap();
        assert_eq!(stats.iter().map(|(h, _)| *h).collect::<Vec<_>>(), [0, 1, 2]);
        for ((height, got), (block, _, receipts)) in stats[1..].iter().zip(&blocks) {
            let want = BlockStats {
                size: encode(block).len() as u64,
                gas_used: receipts.iter().map(|r| r.gas_used).sum(),
                filters: BlockFilters {
                    logs: [*height as u8; 256],
                    emitters: [!(*height as u8); 256],
                },
            };
            assert_eq!(got, &want);
            assert_eq!(store.block_stats(*height).unwrap(), Some(want));
        }
        assert_eq!(stats[0].1.gas_used, 0);
        assert_eq!(
            stats[0].1.size,
            encode(&store.block(0).unwrap().unwrap()).len() as u64
        );
        assert_eq!(store.block_stats(3).unwrap(), None);
        assert!(store.block_stats_range(2, 1).unwrap().is_empty());
        let unknown = H256([9; 32]);
        assert!(!store.has_tx(&unknown).unwrap());
        assert_eq!(store.tx(&unknown).unwrap(), None);
        assert_eq!(store.receipt(&unknown).unwrap(), None);
        assert_eq!(store.block(3).unwrap(), None);
        assert_eq!(store.tx_at(3, 0).unwrap(), None);
        assert!(store.block_receipts(3).unwrap().is_empty());
    }

    fn commit_with(
        store: &ChainStore,
        block: &Block,
        tx_hashes: &[H256],
        receipts: &[Receipt],
        state: &StagedState,
    ) -> Result<(), StorageError> {
        store.commit_block(BlockCommit {
            block,
            tx_hashes,
            receipts,
            certificate: &Certificate::default(),
            block_events: &[],
            state,
            // Any bytes: the store keeps them without looking inside.
            filters: BlockFilters {
                logs: [block.header.height as u8; 256],
                emitters: [!(block.header.height as u8); 256],
            },
        })
    }

    /// The first position the on-disk index holds under `hash`'s prefix.
    fn indexed_on_disk(store: &ChainStore, hash: &H256) -> Option<(u64, u32)> {
        let r = store.db.begin_read().unwrap();
        let t = r.open_table(TX_INDEX).unwrap();
        let p = hash_prefix(hash);
        let mut range = t.range((p, 0, 0)..=(p, u64::MAX, u32::MAX)).unwrap();
        range.next().map(|e| {
            let (_, height, i) = e.unwrap().0.value();
            (height, i)
        })
    }

    /// A store with one block of `n` transfers at height 1, its index
    /// written to disk (by empty blocks up to the tail's block limit).
    fn store_with_indexed_block(path: &Path, n: u32) -> (ChainStore, Vec<H256>) {
        let store = ChainStore::open(path, SuiteId::Standard).unwrap();
        commit(&store, 0, StateChanges::new());
        let (block, hashes, receipts, staged) = block_of_transfers(&store, 1, n);
        commit_with(&store, &block, &hashes, &receipts, &staged).unwrap();
        for height in 2..TAIL_MAX_BLOCKS {
            commit(&store, height, StateChanges::new());
        }
        assert!(store.flush_tx_index_if_due(false).unwrap());
        assert!(store.tail().positions.is_empty(), "index not written");
        (store, hashes)
    }

    #[test]
    fn index_entries_under_a_shared_prefix_are_told_apart_by_the_whole_hash() {
        let dir = tempfile::tempdir().unwrap();
        let (store, hashes) = store_with_indexed_block(&dir.path().join("c.redb"), 10);
        // A hash that shares transaction 9's prefix but is not committed,
        // and a stray entry that puts transaction 2 under 9's prefix too
        // (sorted before 9's own), as two hashes with one prefix would.
        let mut stranger = hashes[9];
        stranger.0[31] ^= 1;
        let w = store.db.begin_write().unwrap();
        w.open_table(TX_INDEX)
            .unwrap()
            .insert((hash_prefix(&hashes[9]), 1, 2), ())
            .unwrap();
        w.commit().unwrap();
        assert_eq!(indexed_on_disk(&store, &hashes[9]), Some((1, 2)));
        assert_eq!(
            store.tx(&hashes[9]).unwrap().map(|r| (r.height, r.index)),
            Some((1, 9))
        );
        assert!(!store.has_tx(&stranger).unwrap());
        assert_eq!(store.receipt(&stranger).unwrap(), None);
        assert_eq!(store.tx(&hashes[2]).unwrap().map(|r| r.index), Some(2));
    }

    #[test]
    fn a_layout_3_store_has_its_index_upgraded_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        let (store, hashes) = store_with_indexed_block(&path, 20);
        // Rewrite the index as layout 3 kept it: whole hash to position.
        let w = store.db.begin_write().unwrap();
        w.delete_table(TX_INDEX).unwrap();
        {
            let mut old = w.open_table(TX_POS_V3).unwrap();
            for (h, i) in hashes.iter().zip(0u32..) {
                old.insert(h.as_bytes(), (1, i)).unwrap();
            }
            w.open_table(META)
                .unwrap()
                .insert(SCHEMA, 3u32.to_le_bytes().as_slice())
                .unwrap();
        }
        w.commit().unwrap();
        drop(store);
        let store = ChainStore::open(&path, SuiteId::Standard).unwrap();
        assert_eq!(
            store.meta(SCHEMA).unwrap(),
            Some(SCHEMA_VERSION.to_le_bytes().to_vec())
        );
        for (h, i) in hashes.iter().zip(0u32..) {
            assert_eq!(indexed_on_disk(&store, h), Some((1, i)));
            assert_eq!(store.tx(h).unwrap().map(|r| r.index), Some(i));
        }
        let r = store.db.begin_read().unwrap();
        assert!(r.open_table(TX_POS_V3).is_err(), "old index kept");
    }

    #[test]
    fn the_hash_index_is_written_in_batches_and_rebuilt_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.redb");
        let store = ChainStore::open(&path, SuiteId::Standard).unwrap();
        commit(&store, 0, StateChanges::new());
        let (block, hashes, receipts, staged) = block_of_transfers(&store, 1, 50);
        commit_with(&store, &block, &hashes, &receipts, &staged).unwrap();
        // Found at once, though not yet in the on-disk index.
        assert_eq!(store.tx(&hashes[7]).unwrap().map(|r| r.index), Some(7));
        assert_eq!(indexed_on_disk(&store, &hashes[7]), None);
        // Dropped without writing it (as a crash would): rebuilt on open.
        drop(store);
        let store = ChainStore::open(&path, SuiteId::Standard).unwrap();
        assert_eq!(
            store.receipt(&hashes[49]).unwrap().as_ref(),
            Some(&receipts[49])
        );
        assert_eq!(indexed_on_disk(&store, &hashes[49]), None);
        // Empty blocks up to the block limit make the index due; it is
        // written when asked, after the block that fills the tail.
        let mut height = 2;
        while indexed_on_disk(&store, &hashes[0]).is_none() {
            assert!(
                height <= TAIL_MAX_BLOCKS,
                "index not written by height {height}"
            );
            commit(&store, height, StateChanges::new());
            assert_eq!(
                store.flush_tx_index_if_due(false).unwrap(),
                height + 1 == TAIL_MAX_BLOCKS
            );
            height += 1;
        }
        assert_eq!(height, TAIL_MAX_BLOCKS);
        assert!(store.tail().positions.is_empty());
        assert_eq!(store.tail().since, height);
        for (i, h) in hashes.iter().enumerate() {
            assert_eq!(indexed_on_disk(&store, h), Some((1, i as u32)));
            assert!(store.has_tx(h).unwrap());
        }
        drop(store);
        let store = ChainStore::open(&path, SuiteId::Standard).unwrap();
        assert_eq!(store.tail().since, TAIL_MAX_BLOCKS);
        assert_eq!(
            store.tx(&hashes[3]).unwrap().map(|r| (r.height, r.index)),
            Some((1, 3))
        );
        assert_eq!(store.tx(&H256([9; 32])).unwrap(), None);
    }

    #[test]
    fn a_busy_caller_defers_the_index_to_the_larger_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("chain.redb"), SuiteId::Standard).unwrap();
        commit(&store, 0, StateChanges::new());
        commit(&store, 1, StateChanges::new());
        // Positions of block 1 stand in for its transactions: only their
        // number decides when the index is written.
        let fill = |n: usize| {
            let mut tail = store.tail_mut();
            for i in tail.positions.len()..n {
                let mut h = [0u8; 32];
                h[..8].copy_from_slice(&(i as u64).to_be_bytes());
                tail.positions.insert(H256(h), (1, i as u32));
            }
        };
        fill(TAIL_MAX_TXS);
        assert!(!store.flush_tx_index_if_due(true).unwrap());
        assert_eq!(store.tail().positions.len(), TAIL_MAX_TXS);
        assert!(store.flush_tx_index_if_due(false).unwrap());
        assert!(store.tail().positions.is_empty());
        // Busy or not, the larger limit is where it waits no longer.
        fill(TAIL_BUSY_MAX_TXS - 1);
        assert!(!store.flush_tx_index_if_due(true).unwrap());
        fill(TAIL_BUSY_MAX_TXS);
        assert!(store.flush_tx_index_if_due(true).unwrap());
        assert!(store.tail().positions.is_empty());
        assert_eq!(store.tail().since, 2);
    }

    #[test]
    fn a_store_of_another_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.redb");
        {
            let store = ChainStore::open(&path, SuiteId::Standard).unwrap();
            commit(&store, 0, StateChanges::new());
            store.set_meta(SCHEMA, &1u32.to_le_bytes()).unwrap();
        }
        let err = ChainStore::open(&path, SuiteId::Standard).err().unwrap();
        assert!(err.to_string().contains("layout 1"), "{err}");
    }

    #[test]
    fn past_versions_read_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("c.redb"), SuiteId::Standard).unwrap();
        let mut c = StateChanges::new();
        c.insert(b"k".to_vec(), Some(b"v0".to_vec()));
        commit(&store, 0, c);
        let mut c = StateChanges::new();
        c.insert(b"k".to_vec(), Some(b"v1".to_vec()));
        c.insert(b"new".to_vec(), Some(b"n".to_vec()));
        commit(&store, 1, c);
        let mut c = StateChanges::new();
        c.insert(b"k".to_vec(), None);
        commit(&store, 2, c);
        let v0 = store.at(0).unwrap();
        assert_eq!(v0.get(b"k").unwrap(), Some(b"v0".to_vec()));
        assert_eq!(v0.get(b"new").unwrap(), None);
        assert_eq!(
            store.at(1).unwrap().get_many(&[b"k", b"new"]).unwrap(),
            vec![Some(b"v1".to_vec()), Some(b"n".to_vec())]
        );
        assert_eq!(store.at(2).unwrap().get(b"k").unwrap(), None);
        assert_eq!(store.get(b"k").unwrap(), None);
        assert!(matches!(store.at(3), Err(StorageError::UnknownVersion(3))));
        assert!(matches!(
            v0.stage(StateChanges::new()),
            Err(StorageError::Historical(0))
        ));
        assert_eq!(v0.block_hash(1).unwrap(), None);
        assert!(store.at(1).unwrap().block_hash(1).unwrap().is_some());
    }

    #[test]
    fn stale_stage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("c.redb"), SuiteId::Sm).unwrap();
        let mut c = StateChanges::new();
        c.insert(b"a".to_vec(), Some(b"1".to_vec()));
        let stale = store.stage(c.clone()).unwrap();
        commit(&store, 0, c);
        let block = Block {
            header: header(1, stale.root),
            txs: vec![],
        };
        assert!(matches!(
            store.commit_block(BlockCommit {
                block: &block,
                tx_hashes: &[],
                receipts: &[],
                certificate: &Certificate::default(),
                state: &stale,
                filters: BlockFilters::default(),
                block_events: &[],
            }),
            Err(StorageError::StaleStage { .. })
        ));
    }
}
