//! Transaction admission and the pending-transaction pool.
//!
//! Admission runs the cheap checks first and the expensive one once:
//! size, decoding, chain id, gas, then the signature (batched across cores
//! for a batch of submissions), then, under the pool lock, duplicate,
//! nonce and balance checks against the committed account plus what that
//! account already has pending. Every rejection is a specific
//! [`AdmissionError`] with a stable [`AdmissionError::code`].
//!
//! The pool is bounded. Transactions stay in it until a block including
//! them is committed ([`Mempool::on_commit`]); the proposer reads them with
//! [`Mempool::pending`].
//!
//! A transaction whose nonce leaves a gap after its sender's pending ones
//! is *queued*, as Ethereum clients queue it, rather than refused: clients
//! that send several transactions at once (viem's and ethers' nonce
//! managers, parallel deployment scripts) cannot promise the node sees them
//! in nonce order. A queued transaction is checked as fully as a pending
//! one, is never proposed, and becomes pending when the gap before it
//! fills. Queues are generous but bounded: at most
//! [`MempoolConfig::max_queued_per_sender`] per sender, no further ahead
//! than that, at most [`MempoolConfig::max_queued`] in all (and all within
//! [`MempoolConfig::max_bytes`]), each kept for
//! [`MempoolConfig::queued_lifetime`]. A bound that is hit evicts rather
//! than refuses where it can: the queued transaction furthest ahead of its
//! sender's next nonce goes first (the oldest of equals), since it is the
//! one least likely to become includable soon, and a newcomer is refused
//! only when it would itself be that one. [`Mempool::queued_evicted`]
//! counts the evictions.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};
use tongtian_crypto::{suite, Combiner, CryptoSuite};
use tongtian_types::codec::decode;
use tongtian_types::{
    verify_signatures_by, Account, Address, ChainSpec, CheckedTx, SignedTransaction, H256,
};

/// Why a transaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// The chain's rules keep the sender (or this transaction) out, e.g. a
    /// restricted sub-chain's `not_allowed`.
    #[error("{message}")]
    Refused {
        /// The module's stable code.
        code: String,
        /// What it said.
        message: String,
    },
    /// Larger than the chain's limit.
    #[error("transaction is {size} bytes, the limit is {limit}")]
    Oversized {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Bytes do not decode as a signed transaction.
    #[error("malformed transaction: {0}")]
    Malformed(String),
    /// Signed for another chain.
    #[error("wrong chain id {got}, this chain is {expected}")]
    WrongChain {
        /// This chain.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// Signature or public key invalid.
    #[error("signature does not verify for the given public key")]
    BadSignature,
    /// Nonce already used.
    #[error("nonce {got} already used; next nonce is {expected}")]
    NonceTooLow {
        /// Next usable nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// Nonce too far ahead of the sender's pending transactions to be
    /// queued.
    #[error(
        "nonce {got} is too far in the future: the sender's next nonce is {expected} and the pool holds at most {limit} ahead of it; send nonces {expected} to {last} first (or wait for them to be mined), then this one",
        last = .got.saturating_sub(1)
    )]
    NonceTooHigh {
        /// Next usable nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
        /// How far ahead the pool queues.
        limit: u64,
    },
    /// Another pending or queued transaction has this nonce, and this one
    /// does not offer enough more per gas to replace it.
    #[error(
        "another transaction in the pool uses nonce {nonce}; a replacement must offer at least {REPLACE_BUMP_PERCENT}% more per gas"
    )]
    NonceTaken {
        /// The nonce.
        nonce: u64,
    },
    /// Cannot pay the maximum fee plus the amount.
    #[error("insufficient funds: available {available}, needed {needed}")]
    InsufficientFunds {
        /// Balance minus pending spends.
        available: u128,
        /// Max fee plus amount.
        needed: u128,
    },
    /// Gas price under the chain's minimum.
    #[error("gas price {got} below minimum {min}")]
    GasPriceTooLow {
        /// Minimum.
        min: u64,
        /// Given.
        got: u64,
    },
    /// Gas limit under the transaction's intrinsic gas (for Ethereum
    /// transactions, or under EIP-7623's calldata floor if that is more).
    #[error("gas limit {limit} below the least the transaction needs ({intrinsic})")]
    IntrinsicGasTooLow {
        /// Given.
        limit: u64,
        /// Needed.
        intrinsic: u64,
    },
    /// Already pending or committed.
    #[error("transaction {0} is already known")]
    AlreadyKnown(H256),
    /// No room.
    #[error(
        "mempool is full ({0} transactions held): retry once the next blocks have drained it, or send the sender's lowest missing nonce first"
    )]
    Full(usize),
    /// The committed state could not be read.
    #[error("state unavailable: {0}")]
    State(String),
}

impl AdmissionError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &str {
        match self {
            AdmissionError::Oversized { .. } => "oversized_tx",
            AdmissionError::Malformed(_) => "malformed_tx",
            AdmissionError::WrongChain { .. } => "wrong_chain_id",
            AdmissionError::BadSignature => "bad_signature",
            AdmissionError::NonceTooLow { .. } => "nonce_too_low",
            AdmissionError::NonceTooHigh { .. } => "nonce_too_high",
            AdmissionError::NonceTaken { .. } => "nonce_taken",
            AdmissionError::InsufficientFunds { .. } => "insufficient_funds",
            AdmissionError::GasPriceTooLow { .. } => "gas_price_too_low",
            AdmissionError::IntrinsicGasTooLow { .. } => "intrinsic_gas_too_low",
            AdmissionError::AlreadyKnown(_) => "already_known",
            AdmissionError::Full(_) => "mempool_full",
            AdmissionError::State(_) => "state_unavailable",
            AdmissionError::Refused { code, .. } => code,
        }
    }
}

/// How much more per gas (in percent) a transaction must offer to replace
/// a pending or queued one of the same sender and nonce (Geth's default).
pub const REPLACE_BUMP_PERCENT: u128 = 10;

/// Whether `new` offers enough more per gas than `old` to replace it.
fn outbids(new: &CheckedTx, old: &CheckedTx) -> bool {
    let (new, old) = (new.tx.tx.gas_price as u128, old.tx.tx.gas_price as u128);
    new > old && new * 100 >= old * (100 + REPLACE_BUMP_PERCENT)
}

/// What admission needs to know about committed state.
pub trait AccountSource: Send + Sync {
    /// The committed account (default if absent).
    fn account(&self, address: &Address) -> Result<Account, String>;
    /// Whether a transaction is already committed.
    fn is_committed(&self, hash: &H256) -> Result<bool, String>;
    /// Whether the chain's rules let this transaction in at all (its
    /// modules' authorize phase); `Err((code, message))` refuses it.
    fn authorize(&self, tx: &CheckedTx) -> Result<(), (String, String)> {
        let _ = tx;
        Ok(())
    }
    /// Whether the chain charges this transaction no fee (a fee-free
    /// module message, such as a governance vote): admission then
    /// reserves no fee from the sender's balance.
    fn fee_free(&self, tx: &CheckedTx) -> bool {
        let _ = tx;
        false
    }
}

/// Pool configuration.
#[derive(Clone, Debug)]
pub struct MempoolConfig {
    /// Most pending transactions in all.
    pub max_txs: usize,
    /// Most pending transactions of one sender.
    pub max_per_sender: usize,
    /// Most bytes of pending and queued transactions in all (contract code
    /// makes transactions up to the size limit; this bounds the pool's
    /// memory).
    pub max_bytes: usize,
    /// Most queued transactions of one sender, and how far past its next
    /// nonce one may be queued.
    pub max_queued_per_sender: usize,
    /// Most queued transactions in all.
    pub max_queued: usize,
    /// How long a queued transaction waits for the gap before it to fill.
    /// Older ones are dropped at the next commit, or when a full pool
    /// needs the room.
    pub queued_lifetime: Duration,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            max_txs: 200_000,
            max_per_sender: 50_000,
            max_bytes: 256 << 20,
            // Geth's defaults are 64 per account and 1,024 in all, kept
            // 3 h; concurrent clients (several threads or JSON-RPC batches
            // of one sender) can run further ahead than 64 within
            // milliseconds, so hold more: a queued transfer is a few
            // hundred bytes, and `max_bytes` bounds them all.
            max_queued_per_sender: 4_096,
            max_queued: 65_536,
            queued_lifetime: Duration::from_secs(600),
        }
    }
}

struct SenderQueue {
    /// Committed account as last seen.
    committed: Account,
    /// Pending transactions, consecutive nonces from `committed.nonce`.
    txs: VecDeque<CheckedTx>,
    /// Sum of the maximum cost of `txs`.
    spend: u128,
    /// Queued transactions by nonce (all above the pending run), with when
    /// each was queued.
    queued: BTreeMap<u64, (CheckedTx, Instant)>,
}

impl SenderQueue {
    fn new(committed: Account) -> Self {
        SenderQueue {
            committed,
            txs: VecDeque::new(),
            spend: 0,
            queued: BTreeMap::new(),
        }
    }

    /// The nonce the next pending transaction must use.
    fn next_nonce(&self) -> u64 {
        self.committed.nonce + self.txs.len() as u64
    }

    /// Sum of the maximum cost of the queued transactions.
    fn queued_spend(&self) -> u128 {
        self.queued.values().map(|(t, _)| max_cost(t)).sum()
    }
}

/// `needed` out of `available`, or the refusal that says so.
fn afford(available: u128, needed: u128) -> Result<(), AdmissionError> {
    if available < needed {
        return Err(AdmissionError::InsufficientFunds { available, needed });
    }
    Ok(())
}

#[derive(Default)]
struct Inner {
    /// Pending and queued hashes and their senders.
    known: HashMap<H256, Address>,
    senders: HashMap<Address, SenderQueue>,
    /// Senders with pending transactions, in order of first arrival.
    order: VecDeque<Address>,
    /// Pending transactions.
    count: usize,
    /// Queued transactions.
    queued: usize,
    /// Senders with queued transactions.
    queued_senders: HashSet<Address>,
    /// No queued transaction was admitted before this (a lower bound, so
    /// [`expire_queued`] scans only when one may be due).
    queued_since: Option<Instant>,
    /// Sum of the encoded sizes of pending and queued transactions.
    bytes: usize,
    /// Queued transactions evicted to make room for nearer ones.
    evicted: u64,
    /// The latest admitted transactions, numbered.
    arrivals: Arrivals,
}

/// Hashes of the last `cap` admitted transactions, oldest first, numbered
/// from 1 in admission order.
struct Arrivals {
    hashes: VecDeque<H256>,
    /// The number of the newest (0: none yet).
    last: u64,
    cap: usize,
}

impl Default for Arrivals {
    fn default() -> Self {
        Arrivals {
            hashes: VecDeque::new(),
            last: 0,
            cap: ARRIVALS_KEPT,
        }
    }
}

impl Arrivals {
    fn push(&mut self, hash: H256) {
        if self.hashes.len() == self.cap {
            self.hashes.pop_front();
        }
        self.hashes.push_back(hash);
        self.last += 1;
    }

    /// The kept hashes numbered `numbers`, in order.
    fn range(&self, numbers: std::ops::RangeInclusive<u64>) -> Vec<H256> {
        let first_kept = self.last + 1 - self.hashes.len() as u64;
        let from = (*numbers.start()).max(first_kept);
        let to = (*numbers.end()).min(self.last);
        if from > to {
            return Vec::new();
        }
        self.hashes
            .iter()
            .skip((from - first_kept) as usize)
            .take((to - from + 1) as usize)
            .copied()
            .collect()
    }
}

/// How many of the latest admitted transactions [`Mempool::arrivals`] can
/// still list.
pub const ARRIVALS_KEPT: usize = 65_536;

/// The pending-transaction pool of one chain.
pub struct Mempool {
    config: MempoolConfig,
    spec: ChainSpec,
    inner: Mutex<Inner>,
    /// Combines the signature checks of concurrent submissions.
    combiner: Combiner,
}

fn max_cost(t: &CheckedTx) -> u128 {
    let tx = &t.tx.tx;
    let fee = if t.is_fee_free() {
        0
    } else {
        tx.gas_limit as u128 * tx.gas_price as u128
    };
    fee.saturating_add(t.value())
}

impl Mempool {
    /// An empty pool for a chain.
    pub fn new(spec: ChainSpec, config: MempoolConfig) -> Self {
        Mempool {
            config,
            spec,
            inner: Mutex::new(Inner::default()),
            combiner: Combiner::new(),
        }
    }

    fn suite(&self) -> &'static dyn CryptoSuite {
        suite(self.spec.suite)
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.inner.lock().count
    }

    /// Number of queued transactions (waiting for a gap in their sender's
    /// nonces to fill).
    pub fn queued_len(&self) -> usize {
        self.inner.lock().queued
    }

    /// How many queued transactions have been evicted so far to make room
    /// for ones nearer their senders' next nonces.
    pub fn queued_evicted(&self) -> u64 {
        self.inner.lock().evicted
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a transaction is pending or queued (its signature was
    /// checked either way).
    pub fn contains(&self, hash: &H256) -> bool {
        self.inner.lock().known.contains_key(hash)
    }

    /// The nonce the sender's next transaction must use, if it has pending ones.
    pub fn next_nonce(&self, sender: &Address) -> Option<u64> {
        let inner = self.inner.lock();
        inner.senders.get(sender).map(SenderQueue::next_nonce)
    }

    /// A pending or queued transaction by hash.
    pub fn get(&self, hash: &H256) -> Option<CheckedTx> {
        let inner = self.inner.lock();
        let sender = inner.known.get(hash)?;
        let q = inner.senders.get(sender)?;
        q.txs
            .iter()
            .chain(q.queued.values().map(|(t, _)| t))
            .find(|t| &t.hash == hash)
            .cloned()
    }

    /// Up to `max` pending and up to `max` queued transactions, of one
    /// sender or of all, each list by sender (in order of first arrival for
    /// pending ones) and nonce.
    pub fn content(
        &self,
        sender: Option<&Address>,
        max: usize,
    ) -> (Vec<CheckedTx>, Vec<CheckedTx>) {
        let inner = self.inner.lock();
        let queues: Vec<&SenderQueue> = match sender {
            Some(a) => inner.senders.get(a).into_iter().collect(),
            None => inner
                .order
                .iter()
                .filter_map(|a| inner.senders.get(a))
                .chain(
                    inner
                        .queued_senders
                        .iter()
                        .filter_map(|a| inner.senders.get(a))
                        .filter(|q| q.txs.is_empty()),
                )
                .collect(),
        };
        let pending = queues
            .iter()
            .flat_map(|q| &q.txs)
            .take(max)
            .cloned()
            .collect();
        let queued = queues
            .iter()
            .flat_map(|q| q.queued.values().map(|(t, _)| t))
            .take(max)
            .cloned()
            .collect();
        (pending, queued)
    }

    /// Whether a transaction is queued (held until the gap before its
    /// nonce fills) rather than pending.
    pub fn is_queued(&self, hash: &H256) -> bool {
        let inner = self.inner.lock();
        inner
            .known
            .get(hash)
            .and_then(|a| inner.senders.get(a))
            .is_some_and(|q| q.queued.values().any(|(t, _)| &t.hash == hash))
    }

    /// Stateless checks of raw bytes: size, decoding, chain id, gas.
    pub fn precheck(&self, raw: &[u8]) -> Result<CheckedTx, AdmissionError> {
        let limit = self.spec.limits.max_tx_bytes as usize;
        if raw.len() > limit {
            return Err(AdmissionError::Oversized {
                size: raw.len(),
                limit,
            });
        }
        let tx: SignedTransaction =
            decode("transaction", raw).map_err(|e| AdmissionError::Malformed(e.to_string()))?;
        let checked = CheckedTx::new(tx, self.spec.suite);
        let tx = &checked.tx.tx;
        if tx.chain_id != self.spec.chain_id {
            return Err(AdmissionError::WrongChain {
                expected: self.spec.chain_id,
                got: tx.chain_id,
            });
        }
        if tx.gas_price < self.spec.gas.min_gas_price {
            return Err(AdmissionError::GasPriceTooLow {
                min: self.spec.gas.min_gas_price,
                got: tx.gas_price,
            });
        }
        let least = checked.min_gas_limit(&self.spec.gas);
        if tx.gas_limit < least {
            return Err(AdmissionError::IntrinsicGasTooLow {
                limit: tx.gas_limit,
                intrinsic: least,
            });
        }
        Ok(checked)
    }

    /// Admit one raw transaction.
    pub fn submit(&self, raw: &[u8], state: &dyn AccountSource) -> Result<H256, AdmissionError> {
        // Invariant: submit_batch returns one result per input.
        self.submit_batch(&[raw], state)
            .pop()
            .expect("one result per input")
    }

    /// Admit many raw transactions; one result per input, in order.
    /// A sender's transactions may come in any nonce order: one that leaves
    /// a gap is queued until the gap fills.
    pub fn submit_batch(
        &self,
        raws: &[&[u8]],
        state: &dyn AccountSource,
    ) -> Vec<Result<H256, AdmissionError>> {
        let mut results: Vec<Result<CheckedTx, AdmissionError>> =
            raws.iter().map(|r| self.precheck(r)).collect();
        // Already pending: refuse before paying for a signature check
        // (re-gossip sends the same transactions again and again).
        {
            let inner = self.inner.lock();
            for r in results.iter_mut() {
                if let Ok(t) = r {
                    if inner.known.contains_key(&t.hash) {
                        *r = Err(AdmissionError::AlreadyKnown(t.hash));
                    }
                }
            }
        }
        // Signatures: one parallel batch for everything that passed so far.
        let passed: Vec<(usize, &SignedTransaction)> = results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().ok().map(|t| (i, &t.tx)))
            .collect();
        let signed: Vec<&SignedTransaction> = passed.iter().map(|(_, t)| *t).collect();
        // Concurrent submissions' checks are combined into larger batches,
        // which cost less per signature.
        let flags = verify_signatures_by(self.suite(), &signed, &|s, items| {
            self.combiner.verify(s, items)
        });
        let bad: Vec<usize> = passed
            .iter()
            .zip(flags)
            .filter(|(_, ok)| !ok)
            .map(|((i, _), _)| *i)
            .collect();
        for i in bad {
            results[i] = Err(AdmissionError::BadSignature);
        }
        // The chain's own rules (its modules' authorize phase), on the
        // committed state, before locking.
        for r in results.iter_mut() {
            if let Ok(t) = r {
                if let Err((code, message)) = state.authorize(t) {
                    *r = Err(AdmissionError::Refused { code, message });
                } else if state.fee_free(t) {
                    t.waive_fee();
                }
            }
        }
        // Committed accounts of senders not yet in the pool, read before locking.
        let mut fresh: HashMap<Address, Result<Account, String>> = HashMap::new();
        {
            let inner = self.inner.lock();
            for t in results.iter().flatten() {
                if !inner.senders.contains_key(&t.sender) {
                    fresh.entry(t.sender).or_insert(Ok(Account::default()));
                }
            }
        }
        for (a, v) in fresh.iter_mut() {
            *v = state.account(a);
        }
        let mut inner = self.inner.lock();
        let mut low = Vec::new();
        let mut out: Vec<Result<H256, AdmissionError>> = results
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let t = r?;
                let hash = t.hash;
                let res = self.insert(&mut inner, t, &fresh, state);
                if let Err(AdmissionError::NonceTooLow { .. }) = res {
                    low.push((i, hash));
                }
                res
            })
            .collect();
        drop(inner);
        // A committed transaction's nonce is below its sender's committed
        // nonce, so only these can be replays; look only them up.
        for (i, hash) in low {
            if let Ok(true) = state.is_committed(&hash) {
                out[i] = Err(AdmissionError::AlreadyKnown(hash));
            }
        }
        out
    }

    fn insert(
        &self,
        inner: &mut Inner,
        t: CheckedTx,
        fresh: &HashMap<Address, Result<Account, String>>,
        state: &dyn AccountSource,
    ) -> Result<H256, AdmissionError> {
        let sender = t.sender;
        let res = self.place(inner, t, fresh, state);
        // A refused transaction leaves no empty queue behind (its committed
        // account would go stale).
        if res.is_err()
            && inner
                .senders
                .get(&sender)
                .is_some_and(|q| q.txs.is_empty() && q.queued.is_empty())
        {
            inner.senders.remove(&sender);
        }
        res
    }

    /// [`Mempool::insert`]'s checks, and the transaction made pending or
    /// queued.
    fn place(
        &self,
        inner: &mut Inner,
        t: CheckedTx,
        fresh: &HashMap<Address, Result<Account, String>>,
        state: &dyn AccountSource,
    ) -> Result<H256, AdmissionError> {
        if inner.known.contains_key(&t.hash) {
            return Err(AdmissionError::AlreadyKnown(t.hash));
        }
        // A new slot must fit in the pool; a replacement takes the slot of
        // the one it replaces (`freed` bytes), so only its size must fit
        // (as in Geth, a full pool still lets a wallet speed a transaction
        // up).
        let room = |held: usize, bytes: usize, freed: usize| {
            if (freed == 0 && held >= self.config.max_txs)
                || bytes - freed + t.encoded_len > self.config.max_bytes
            {
                return Err(AdmissionError::Full(held));
            }
            Ok(())
        };
        if room(inner.count + inner.queued, inner.bytes, 0).is_err()
            || inner.queued >= self.config.max_queued
        {
            // Queued transactions are otherwise expired at commits, which
            // an idle chain may not make: stale ones must not keep a full
            // pool full.
            expire_queued(inner, self.config.queued_lifetime);
        }
        let committed = match inner.senders.get(&t.sender) {
            Some(q) => q.committed.clone(),
            None => match fresh.get(&t.sender) {
                Some(Ok(a)) => a.clone(),
                Some(Err(e)) => return Err(AdmissionError::State(e.clone())),
                // The sender had pending transactions when we looked, and a
                // commit has since emptied its queue: the store is current.
                None => state.account(&t.sender).map_err(AdmissionError::State)?,
            },
        };
        let q = inner
            .senders
            .entry(t.sender)
            .or_insert_with(|| SenderQueue::new(committed));
        let (hash, sender, nonce) = (t.hash, t.sender, t.tx.tx.nonce);
        let expected = q.next_nonce();
        if nonce < q.committed.nonce {
            return Err(AdmissionError::NonceTooLow {
                expected,
                got: nonce,
            });
        }
        let needed = max_cost(&t);
        if nonce < expected {
            // A pending transaction holds the nonce: replaced if outbid.
            let i = (nonce - q.committed.nonce) as usize;
            let old = &q.txs[i];
            if !outbids(&t, old) {
                return Err(AdmissionError::NonceTaken { nonce });
            }
            room(inner.count + inner.queued, inner.bytes, old.encoded_len)?;
            let others = q.spend - max_cost(old);
            afford(q.committed.balance.saturating_sub(others), needed)?;
            q.spend = others + needed;
            let len = t.encoded_len;
            let old = std::mem::replace(&mut q.txs[i], t);
            replaced(inner, &old, hash, sender, len);
            inner.arrivals.push(hash);
            return Ok(hash);
        }
        if let Some((old, _)) = q.queued.get(&nonce) {
            // A queued transaction holds it: the same rule.
            if !outbids(&t, old) {
                return Err(AdmissionError::NonceTaken { nonce });
            }
            room(inner.count + inner.queued, inner.bytes, old.encoded_len)?;
            let others = q.queued_spend() - max_cost(old);
            afford(
                q.committed
                    .balance
                    .saturating_sub(q.spend)
                    .saturating_sub(others),
                needed,
            )?;
            let len = t.encoded_len;
            let (old, _) = q
                .queued
                .insert(nonce, (t, Instant::now()))
                .expect("checked above");
            replaced(inner, &old, hash, sender, len);
            return Ok(hash);
        }
        room(inner.count + inner.queued, inner.bytes, 0)?;
        // Pending spends come first; a queued transaction must also leave
        // room for those queued before it.
        let available = q.committed.balance.saturating_sub(q.spend);
        if nonce > expected {
            let limit = self.config.max_queued_per_sender as u64;
            if nonce - expected > limit {
                return Err(AdmissionError::NonceTooHigh {
                    expected,
                    got: nonce,
                    limit,
                });
            }
            afford(available.saturating_sub(q.queued_spend()), needed)?;
            // A full queue (this sender's or everyone's) gives up its
            // furthest-ahead transaction for a nearer one.
            let sender_full = q.queued.len() >= self.config.max_queued_per_sender;
            if sender_full || inner.queued >= self.config.max_queued {
                let scope = if sender_full { Some(sender) } else { None };
                let victim = furthest_queued(inner, scope)
                    .filter(|v| v.distance > nonce - expected)
                    .ok_or(AdmissionError::Full(inner.count + inner.queued))?;
                evict_queued(inner, victim);
            }
            let q = inner
                .senders
                .get_mut(&sender)
                .expect("the sender's queue is kept while it is admitted");
            inner.bytes += t.encoded_len;
            let now = Instant::now();
            q.queued.insert(nonce, (t, now));
            inner.queued += 1;
            inner.queued_since.get_or_insert(now);
            inner.queued_senders.insert(sender);
            inner.known.insert(hash, sender);
            return Ok(hash);
        }
        if q.txs.len() >= self.config.max_per_sender {
            return Err(AdmissionError::Full(q.txs.len()));
        }
        afford(available, needed)?;
        let has_queued = !q.queued.is_empty();
        inner.bytes += t.encoded_len;
        inner.known.insert(hash, sender);
        push_pending(inner, t, needed);
        if has_queued {
            promote(inner, &sender, self.config.max_per_sender);
        }
        Ok(hash)
    }

    /// The number of the last admitted transaction: admitted transactions
    /// are numbered from 1 in the order they were admitted (0: none yet).
    pub fn last_arrival(&self) -> u64 {
        self.inner.lock().arrivals.last
    }

    /// Hashes of the admitted transactions numbered `numbers`, in order:
    /// those of the last [`ARRIVALS_KEPT`] (older ones are forgotten).
    /// They may have been committed or dropped since.
    pub fn arrivals(&self, numbers: std::ops::RangeInclusive<u64>) -> Vec<H256> {
        self.inner.lock().arrivals.range(numbers)
    }

    /// Up to `max` pending transactions in proposal order: senders by
    /// arrival, each sender's in nonce order. They stay pending until
    /// committed.
    pub fn pending(&self, max: usize) -> Vec<CheckedTx> {
        self.pending_from(max, |_| 0)
    }

    /// [`Mempool::pending`] without what a block being built already holds:
    /// of each sender, the transactions with nonces below `from(sender)`
    /// (`u64::MAX` leaves out all of them). A sender's pending transactions
    /// run in consecutive nonces, so those are passed over by position,
    /// not looked up one by one.
    pub fn pending_from(&self, max: usize, from: impl Fn(&Address) -> u64) -> Vec<CheckedTx> {
        let inner = self.inner.lock();
        let mut out = Vec::with_capacity(max.min(inner.count));
        for a in &inner.order {
            let Some(q) = inner.senders.get(a) else {
                continue;
            };
            let held = from(a).saturating_sub(q.committed.nonce);
            for t in q
                .txs
                .iter()
                .skip(usize::try_from(held).unwrap_or(usize::MAX))
            {
                if out.len() == max {
                    return out;
                }
                out.push(t.clone());
            }
        }
        out
    }

    /// A block was committed: forget its transactions, drop the ones the
    /// proposer could not include (and their successors, whose nonces can
    /// no longer follow), and refresh the committed view of `touched`.
    pub fn on_commit(
        &self,
        included: &[H256],
        dropped: &[(H256, Address)],
        touched: &[(Address, Account)],
    ) {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        for h in included {
            inner.known.remove(h);
        }
        let mut cut: HashMap<Address, H256> = HashMap::new();
        for (h, a) in dropped {
            cut.entry(*a).or_insert(*h);
        }
        for (a, acct) in touched {
            let Some(q) = inner.senders.get_mut(a) else {
                continue;
            };
            q.committed = acct.clone();
        }
        let affected: Vec<Address> = touched
            .iter()
            .map(|(a, _)| *a)
            .chain(cut.keys().copied())
            .collect();
        let mut removed = 0;
        let mut removed_bytes = 0;
        for &a in &affected {
            let Some(q) = inner.senders.get_mut(&a) else {
                continue;
            };
            // Drop what the new nonce has consumed.
            while q
                .txs
                .front()
                .is_some_and(|t| t.tx.tx.nonce < q.committed.nonce)
            {
                let t = q.txs.pop_front().expect("front checked");
                inner.known.remove(&t.hash);
                removed += 1;
                removed_bytes += t.encoded_len;
            }
            // Drop from the first unincludable transaction on, or everything
            // if the queue no longer starts at the committed nonce.
            let gap = q
                .txs
                .front()
                .is_some_and(|t| t.tx.tx.nonce != q.committed.nonce);
            let cut_at = if gap {
                Some(0)
            } else {
                cut.get(&a)
                    .and_then(|h| q.txs.iter().position(|t| &t.hash == h))
            };
            if let Some(i) = cut_at {
                for t in q.txs.drain(i..) {
                    tracing::debug!(tx = %t.hash, "evicted: can no longer be included");
                    inner.known.remove(&t.hash);
                    removed += 1;
                    removed_bytes += t.encoded_len;
                }
            }
            q.spend = q.txs.iter().map(max_cost).sum();
        }
        inner.count -= removed;
        inner.bytes -= removed_bytes;
        let senders = &inner.senders;
        inner
            .order
            .retain(|a| senders.get(a).is_some_and(|q| !q.txs.is_empty()));
        // The new nonces may close the gap before queued transactions.
        for a in &affected {
            promote(inner, a, self.config.max_per_sender);
        }
        expire_queued(inner, self.config.queued_lifetime);
        inner
            .senders
            .retain(|_, q| !q.txs.is_empty() || !q.queued.is_empty());
    }
}

/// Bookkeeping of a replacement: `old`'s hash and size out, the new
/// transaction's (`hash`, `len` bytes) in.
fn replaced(inner: &mut Inner, old: &CheckedTx, hash: H256, sender: Address, len: usize) {
    tracing::debug!(old = %old.hash, new = %hash, "replaced by a higher price");
    inner.known.remove(&old.hash);
    inner.known.insert(hash, sender);
    inner.bytes = inner.bytes - old.encoded_len + len;
}

/// Make `t` (its sender's next nonce, paid for) pending.
fn push_pending(inner: &mut Inner, t: CheckedTx, cost: u128) {
    let (sender, hash) = (t.sender, t.hash);
    let Some(q) = inner.senders.get_mut(&sender) else {
        return;
    };
    if q.txs.is_empty() {
        inner.order.push_back(sender);
    }
    q.spend += cost;
    q.txs.push_back(t);
    inner.count += 1;
    inner.arrivals.push(hash);
}

/// Make `sender`'s queued transactions pending while they follow its
/// pending run. Queued ones the run has passed are forgotten, and one that
/// can no longer be paid for (or would overfill the sender's queue) is
/// dropped, which leaves a gap again.
fn promote(inner: &mut Inner, sender: &Address, max_per_sender: usize) {
    if inner
        .senders
        .get(sender)
        .is_none_or(|q| q.queued.is_empty())
    {
        return;
    }
    loop {
        let Some(q) = inner.senders.get_mut(sender) else {
            return;
        };
        let next = q.next_nonce();
        while let Some(entry) = q.queued.first_entry() {
            if *entry.key() >= next {
                break;
            }
            let (t, _) = entry.remove();
            inner.known.remove(&t.hash);
            inner.bytes -= t.encoded_len;
            inner.queued -= 1;
        }
        let Some((t, _)) = q.queued.remove(&next) else {
            break;
        };
        inner.queued -= 1;
        let cost = max_cost(&t);
        if q.txs.len() >= max_per_sender || q.committed.balance.saturating_sub(q.spend) < cost {
            tracing::debug!(tx = %t.hash, "queued transaction dropped: cannot become pending");
            inner.known.remove(&t.hash);
            inner.bytes -= t.encoded_len;
            break;
        }
        push_pending(inner, t, cost);
    }
    if inner
        .senders
        .get(sender)
        .is_none_or(|q| q.queued.is_empty())
    {
        inner.queued_senders.remove(sender);
    }
}

/// A queued transaction chosen for eviction.
#[derive(Clone, Copy, Debug)]
struct Victim {
    sender: Address,
    nonce: u64,
    /// How far past its sender's next nonce it is.
    distance: u64,
    at: Instant,
}

/// The queued transaction furthest ahead of its sender's next nonce (of
/// equals, the oldest), among `only`'s or everyone's. Only each sender's
/// last queued nonce can be its furthest, so this looks at one entry per
/// sender with queued transactions.
fn furthest_queued(inner: &Inner, only: Option<Address>) -> Option<Victim> {
    let candidate = |a: &Address| {
        let q = inner.senders.get(a)?;
        let (&nonce, (_, at)) = q.queued.last_key_value()?;
        Some(Victim {
            sender: *a,
            nonce,
            distance: nonce.saturating_sub(q.next_nonce()),
            at: *at,
        })
    };
    match only {
        Some(a) => candidate(&a),
        None => inner
            .queued_senders
            .iter()
            .filter_map(candidate)
            .max_by(|x, y| x.distance.cmp(&y.distance).then(y.at.cmp(&x.at))),
    }
}

/// Drop `v` from the queue and count the eviction.
fn evict_queued(inner: &mut Inner, v: Victim) {
    let Some(q) = inner.senders.get_mut(&v.sender) else {
        return;
    };
    let Some((t, _)) = q.queued.remove(&v.nonce) else {
        return;
    };
    tracing::debug!(tx = %t.hash, distance = v.distance, "queued transaction evicted for a nearer one");
    if q.queued.is_empty() {
        inner.queued_senders.remove(&v.sender);
    }
    inner.known.remove(&t.hash);
    inner.bytes -= t.encoded_len;
    inner.queued -= 1;
    inner.evicted += 1;
}

/// Forget queued transactions older than `lifetime`. Cheap when none can
/// be due yet ([`Inner::queued_since`]).
fn expire_queued(inner: &mut Inner, lifetime: Duration) {
    if inner.queued == 0 {
        inner.queued_since = None;
        return;
    }
    let now = Instant::now();
    if inner
        .queued_since
        .is_some_and(|since| now.duration_since(since) < lifetime)
    {
        return;
    }
    let mut oldest: Option<Instant> = None;
    let senders: Vec<Address> = inner.queued_senders.iter().copied().collect();
    for a in senders {
        let Some(q) = inner.senders.get_mut(&a) else {
            inner.queued_senders.remove(&a);
            continue;
        };
        let before = q.queued.len();
        let (known, bytes) = (&mut inner.known, &mut inner.bytes);
        q.queued.retain(|_, (t, at)| {
            let keep = now.duration_since(*at) < lifetime;
            if keep {
                oldest = Some(oldest.map_or(*at, |o| o.min(*at)));
            } else {
                tracing::debug!(tx = %t.hash, "queued transaction expired");
                known.remove(&t.hash);
                *bytes -= t.encoded_len;
            }
            keep
        });
        inner.queued -= before - q.queued.len();
        if q.queued.is_empty() {
            inner.queued_senders.remove(&a);
        }
    }
    inner.queued_since = oldest;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tongtian_crypto::{Keypair, SuiteId};
    use tongtian_types::codec::encode;
    use tongtian_types::{Action, ConsensusSpec, GasSchedule, Limits, Transaction, ValidatorSpec};

    struct State(HashMap<Address, Account>);
    impl AccountSource for State {
        fn account(&self, a: &Address) -> Result<Account, String> {
            Ok(self.0.get(a).cloned().unwrap_or_default())
        }
        fn is_committed(&self, _: &H256) -> Result<bool, String> {
            Ok(false)
        }
    }

    fn spec() -> ChainSpec {
        ChainSpec {
            name: "t".into(),
            chain_id: 5,
            suite: SuiteId::Standard,
            consensus: ConsensusSpec {
                engine: "solo".into(),
                block_interval_ms: 10,
                max_block_txs: 10,
                empty_block_interval_ms: 0,
            },
            validators: vec![ValidatorSpec {
                name: "v".into(),
                public_key: vec![0; 32],
            }],
            accounts: vec![],
            gas: GasSchedule::default(),
            limits: Limits { max_tx_bytes: 400 },
            genesis_time_ms: 0,
            vms: tongtian_types::VmKind::ALL.to_vec(),
            modules: Default::default(),
        }
    }

    fn tx(k: &Keypair, chain: u64, nonce: u64, amount: u128, memo: usize) -> Vec<u8> {
        encode(
            &Transaction {
                chain_id: chain,
                nonce,
                gas_limit: 30_000,
                gas_price: 1,
                action: Action::Transfer {
                    to: Address([1; 20]),
                    amount,
                    memo: vec![7; memo],
                },
            }
            .sign(k),
        )
    }

    /// Committed state where each of `keys` has `balance` and `nonce`.
    fn holding<'a>(
        keys: impl IntoIterator<Item = &'a Keypair>,
        balance: u128,
        nonce: u64,
    ) -> State {
        State(
            keys.into_iter()
                .map(|k| (sender(k), Account { balance, nonce }))
                .collect(),
        )
    }

    fn setup() -> (Mempool, Keypair, State) {
        let k = Keypair::from_seed(SuiteId::Standard, b"a");
        let st = holding([&k], 100_000, 3);
        (
            Mempool::new(
                spec(),
                MempoolConfig {
                    max_txs: 4,
                    max_per_sender: 10,
                    max_bytes: 1 << 20,
                    max_queued_per_sender: 4,
                    max_queued: 8,
                    queued_lifetime: Duration::from_secs(600),
                },
            ),
            k,
            st,
        )
    }

    /// A chain whose module messages are fee-free.
    struct FreeModules(State);

    impl AccountSource for FreeModules {
        fn account(&self, address: &Address) -> Result<Account, String> {
            self.0.account(address)
        }
        fn is_committed(&self, hash: &H256) -> Result<bool, String> {
            self.0.is_committed(hash)
        }
        fn fee_free(&self, tx: &CheckedTx) -> bool {
            matches!(tx.tx.tx.action, Action::Module { .. })
        }
    }

    #[test]
    fn a_fee_free_transaction_needs_no_balance() {
        let (pool, _, _) = setup();
        let poor = Keypair::from_seed(SuiteId::Standard, b"poor");
        let st = holding([&poor], 0, 0);
        let msg = |nonce| {
            encode(
                &Transaction {
                    chain_id: 5,
                    nonce,
                    gas_limit: 30_000,
                    gas_price: 1,
                    action: Action::Module {
                        module: "gov".into(),
                        msg: vec![1],
                    },
                }
                .sign(&poor),
            )
        };
        // Where the chain charges it, an empty account cannot pay.
        assert_eq!(
            pool.submit(&msg(0), &st).unwrap_err().code(),
            "insufficient_funds"
        );
        // Where the chain waives the fee, it is admitted.
        assert!(pool.submit(&msg(0), &FreeModules(st)).is_ok());
    }

    #[test]
    fn every_rejection_is_specific() {
        let (pool, k, st) = setup();
        let code = |r: Result<H256, AdmissionError>| r.unwrap_err().code().to_string();
        assert_eq!(code(pool.submit(&[1, 2, 3], &st)), "malformed_tx");
        assert_eq!(
            code(pool.submit(&tx(&k, 6, 3, 1, 0), &st)),
            "wrong_chain_id"
        );
        assert_eq!(
            code(pool.submit(&tx(&k, 5, 3, 1, 500), &st)),
            "oversized_tx"
        );
        let mut forged = tx(&k, 5, 3, 1, 0);
        let n = forged.len();
        forged[n - 1] ^= 1;
        assert_eq!(code(pool.submit(&forged, &st)), "bad_signature");
        assert_eq!(code(pool.submit(&tx(&k, 5, 2, 1, 0), &st)), "nonce_too_low");
        // Next nonce 3; up to 4 ahead would be queued.
        assert_eq!(
            code(pool.submit(&tx(&k, 5, 8, 1, 0), &st)),
            "nonce_too_high"
        );
        assert_eq!(pool.queued_len(), 0);
        assert_eq!(
            code(pool.submit(&tx(&k, 5, 3, 100_000, 0), &st)),
            "insufficient_funds"
        );
        let good = tx(&k, 5, 3, 1, 0);
        let h = pool.submit(&good, &st).unwrap();
        assert!(pool.contains(&h));
        assert_eq!(code(pool.submit(&good, &st)), "already_known");
        assert_eq!(code(pool.submit(&tx(&k, 5, 3, 2, 0), &st)), "nonce_taken");
        // pending spend counts against the balance: 30_000 max fee + amount each
        pool.submit(&tx(&k, 5, 4, 1, 0), &st).unwrap();
        pool.submit(&tx(&k, 5, 5, 1, 0), &st).unwrap();
        assert_eq!(
            code(pool.submit(&tx(&k, 5, 6, 1, 0), &st)),
            "insufficient_funds"
        );
        assert_eq!(pool.len(), 3);
    }

    #[test]
    fn admitted_transactions_are_numbered_in_order() {
        let (pool, k, st) = setup();
        assert_eq!(pool.last_arrival(), 0);
        let a = pool.submit(&tx(&k, 5, 3, 1, 0), &st).unwrap();
        // Refused transactions get no number.
        assert!(pool.submit(&tx(&k, 5, 9, 1, 0), &st).is_err());
        let b = pool.submit(&tx(&k, 5, 4, 1, 0), &st).unwrap();
        assert_eq!(pool.last_arrival(), 2);
        assert_eq!(pool.arrivals(1..=2), vec![a, b]);
        assert_eq!(pool.arrivals(2..=9), vec![b]);
        assert!(pool.arrivals(3..=9).is_empty());
        // Only the last `cap` are kept.
        let mut ring = Arrivals {
            cap: 3,
            ..Arrivals::default()
        };
        for i in 1..=5u8 {
            ring.push(H256([i; 32]));
        }
        assert_eq!(ring.last, 5);
        assert_eq!(
            ring.range(1..=4),
            vec![H256([3; 32]), H256([4; 32])],
            "1 and 2 are forgotten"
        );
        assert_eq!(ring.range(5..=5), vec![H256([5; 32])]);
    }

    #[test]
    fn pool_is_bounded_and_commit_frees_it() {
        let (by_count, _, _) = setup();
        bounded_pool_frees_on_commit(by_count);
        // The same pool bounded by bytes: room for exactly four transfers.
        let size = tx(&Keypair::from_seed(SuiteId::Standard, &[0]), 5, 0, 1, 0).len();
        let by_bytes = Mempool::new(
            spec(),
            MempoolConfig {
                max_txs: 1000,
                max_per_sender: 10,
                max_bytes: 4 * size + size / 2,
                ..MempoolConfig::default()
            },
        );
        bounded_pool_frees_on_commit(by_bytes);
    }

    fn bounded_pool_frees_on_commit(pool: Mempool) {
        let keys: Vec<Keypair> = (0..5u8)
            .map(|i| Keypair::from_seed(SuiteId::Standard, &[i]))
            .collect();
        let st = holding(&keys, 1 << 40, 0);
        let raws: Vec<Vec<u8>> = keys.iter().map(|k| tx(k, 5, 0, 1, 0)).collect();
        let refs: Vec<&[u8]> = raws.iter().map(|r| r.as_slice()).collect();
        let res = pool.submit_batch(&refs, &st);
        assert!(res[..4].iter().all(|r| r.is_ok()));
        assert_eq!(res[4].as_ref().unwrap_err().code(), "mempool_full");
        let pending = pool.pending(10);
        assert_eq!(pending.len(), 4);
        // Passing over the senders of some (their only transaction, nonce
        // 0) keeps the order of the rest and the limit.
        let held = [pending[0].sender, pending[2].sender];
        let from = |a: &Address| u64::from(held.contains(a));
        let rest: Vec<H256> = pool.pending_from(10, from).iter().map(|t| t.hash).collect();
        assert_eq!(rest, vec![pending[1].hash, pending[3].hash]);
        let one = pool.pending_from(1, from);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].hash, pending[1].hash);
        let none = pool.pending_from(10, |_| u64::MAX);
        assert!(none.is_empty());
        let first = &pending[0];
        pool.on_commit(
            &[first.hash],
            &[],
            &[(
                first.sender,
                Account {
                    balance: 1 << 39,
                    nonce: 1,
                },
            )],
        );
        assert_eq!(pool.len(), 3);
        assert!(!pool.contains(&first.hash));
        pool.submit(&raws[4], &st).unwrap();
    }

    #[test]
    fn dropped_tx_evicts_its_successors() {
        let (pool, k, st) = setup();
        let hs: Vec<H256> = (3..6)
            .map(|n| pool.submit(&tx(&k, 5, n, 1, 0), &st).unwrap())
            .collect();
        let a = Address::from_public_key(SuiteId::Standard, k.public_key());
        // The committed nonce is 3: a block being built that holds 3 and 4
        // leaves 5; one that holds none of them (or another sender's)
        // leaves all three.
        assert_eq!(
            hashes(&pool.pending_from(10, |s| if *s == a { 5 } else { 0 })),
            [hs[2]]
        );
        assert_eq!(
            hashes(&pool.pending_from(10, |s| if *s == a { 0 } else { 9 })),
            hs
        );
        assert_eq!(
            hashes(&pool.pending_from(10, |s| if *s == a { 3 } else { 9 })),
            hs
        );
        assert!(pool.pending_from(10, |_| 6).is_empty());
        // nonce 3 committed, nonce 4 dropped by the proposer
        pool.on_commit(
            &[hs[0]],
            &[(hs[1], a)],
            &[(
                a,
                Account {
                    balance: 50_000,
                    nonce: 4,
                },
            )],
        );
        assert!(pool.is_empty());
        // the sender continues from the committed nonce
        let after = holding([&k], 50_000, 4);
        pool.submit(&tx(&k, 5, 4, 1, 0), &after).unwrap();
        assert_eq!(
            pool.submit(&tx(&k, 5, 3, 1, 0), &st).unwrap_err().code(),
            "nonce_too_low"
        );
    }

    fn sender(k: &Keypair) -> Address {
        Address::from_public_key(SuiteId::Standard, k.public_key())
    }

    fn hashes(txs: &[CheckedTx]) -> Vec<H256> {
        txs.iter().map(|t| t.hash).collect()
    }

    #[test]
    fn out_of_order_nonces_are_queued_until_the_gap_fills() {
        let (pool, k, st) = setup();
        // The committed nonce is 3: 5 and 4 arrive first.
        let h5 = pool.submit(&tx(&k, 5, 5, 1, 0), &st).unwrap();
        let h4 = pool.submit(&tx(&k, 5, 4, 1, 0), &st).unwrap();
        assert_eq!((pool.len(), pool.queued_len()), (0, 2));
        assert!(pool.pending(10).is_empty(), "queued is never proposed");
        let (pending, queued) = pool.content(None, 10);
        assert!(pending.is_empty());
        assert_eq!(hashes(&queued), vec![h4, h5]);
        assert_eq!(pool.content(Some(&Address([9; 20])), 10).1.len(), 0);
        assert_eq!(pool.last_arrival(), 0, "queued is not yet an arrival");
        assert_eq!(pool.next_nonce(&sender(&k)), Some(3));
        assert!(pool.contains(&h5) && pool.is_queued(&h5));
        assert_eq!(pool.get(&h4).map(|t| t.hash), Some(h4));
        assert_eq!(
            pool.submit(&tx(&k, 5, 5, 2, 0), &st).unwrap_err().code(),
            "nonce_taken",
            "a queued nonce is taken"
        );
        assert_eq!(
            pool.submit(&tx(&k, 5, 5, 1, 0), &st).unwrap_err().code(),
            "already_known"
        );
        // Nonce 3 closes the gap: all three are pending, in nonce order.
        let h3 = pool.submit(&tx(&k, 5, 3, 1, 0), &st).unwrap();
        assert_eq!((pool.len(), pool.queued_len()), (3, 0));
        assert!(!pool.is_queued(&h5));
        assert_eq!(hashes(&pool.pending(10)), vec![h3, h4, h5]);
        assert_eq!(hashes(&pool.content(Some(&sender(&k)), 2).0), vec![h3, h4]);
        assert_eq!(pool.arrivals(1..=3), vec![h3, h4, h5]);
        assert_eq!(pool.next_nonce(&sender(&k)), Some(6));
        // In one batch, in any order (the balance pays for three).
        let (pool, k, st) = setup();
        let raws: Vec<Vec<u8>> = [5, 3, 4].iter().map(|&n| tx(&k, 5, n, 1, 0)).collect();
        let refs: Vec<&[u8]> = raws.iter().map(|r| r.as_slice()).collect();
        let res: Vec<H256> = pool
            .submit_batch(&refs, &st)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(hashes(&pool.pending(10)), vec![res[1], res[2], res[0]]);
    }

    #[test]
    fn a_commit_promotes_what_it_unblocks_and_drops_what_it_passes() {
        let (pool, k, st) = setup();
        let a = sender(&k);
        let h4 = pool.submit(&tx(&k, 5, 4, 1, 0), &st).unwrap();
        let h5 = pool.submit(&tx(&k, 5, 5, 1, 0), &st).unwrap();
        let h6 = pool.submit(&tx(&k, 5, 6, 1, 0), &st).unwrap();
        // Nonces 3 and 4 were committed from elsewhere (another node's
        // block): 4 is passed over, 5 and 6 become pending.
        let after = |nonce| {
            [(
                a,
                Account {
                    balance: 100_000,
                    nonce,
                },
            )]
        };
        pool.on_commit(&[], &[], &after(5));
        assert_eq!(hashes(&pool.pending(10)), vec![h5, h6]);
        assert_eq!(pool.queued_len(), 0);
        assert!(!pool.contains(&h4));
        // A queued transaction the balance no longer covers is dropped when
        // its turn comes, and what follows it waits again.
        let (pool, k, st) = setup();
        pool.submit(&tx(&k, 5, 4, 1, 0), &st).unwrap();
        let h5 = pool.submit(&tx(&k, 5, 5, 1, 0), &st).unwrap();
        pool.on_commit(
            &[],
            &[],
            &[(
                a,
                Account {
                    balance: 100,
                    nonce: 4,
                },
            )],
        );
        assert!(pool.is_empty());
        assert_eq!(pool.queued_len(), 1);
        assert!(pool.contains(&h5));
    }

    #[test]
    fn queues_are_bounded_paid_for_and_expire() {
        let (pool, k, st) = setup();
        // Each transfer may cost 30,001; the balance is 100,000.
        pool.submit(&tx(&k, 5, 5, 1, 0), &st).unwrap();
        pool.submit(&tx(&k, 5, 6, 1, 0), &st).unwrap();
        pool.submit(&tx(&k, 5, 7, 1, 0), &st).unwrap();
        assert_eq!(
            pool.submit(&tx(&k, 5, 4, 1, 0), &st).unwrap_err().code(),
            "insufficient_funds",
            "queued spends count against later queued ones"
        );
        // A pending transaction comes before queued ones.
        pool.submit(&tx(&k, 5, 3, 1, 0), &st).unwrap();
        assert_eq!((pool.len(), pool.queued_len()), (1, 3));
        // All senders together: at most `max_queued`.
        let lifetime = Duration::from_millis(300);
        let small = Mempool::new(
            spec(),
            MempoolConfig {
                max_queued: 2,
                queued_lifetime: lifetime,
                ..MempoolConfig::default()
            },
        );
        let keys: Vec<Keypair> = (0..3u8)
            .map(|i| Keypair::from_seed(SuiteId::Standard, &[i]))
            .collect();
        let rich = holding(&keys, 1 << 40, 0);
        let q0 = small.submit(&tx(&keys[0], 5, 1, 1, 0), &rich).unwrap();
        small.submit(&tx(&keys[1], 5, 1, 1, 0), &rich).unwrap();
        assert_eq!(
            small
                .submit(&tx(&keys[2], 5, 1, 1, 0), &rich)
                .unwrap_err()
                .code(),
            "mempool_full"
        );
        let p = small.submit(&tx(&keys[2], 5, 0, 1, 0), &rich).unwrap();
        // Past their lifetime, queued transactions make room for a new one
        // in a full pool, with no commit in between...
        std::thread::sleep(lifetime + Duration::from_millis(50));
        let q1 = small.submit(&tx(&keys[1], 5, 2, 1, 0), &rich).unwrap();
        assert_eq!((small.len(), small.queued_len()), (1, 1));
        assert!(!small.contains(&q0) && small.contains(&q1));
        // ...and are forgotten at the next commit; pending ones stay.
        std::thread::sleep(lifetime + Duration::from_millis(50));
        small.on_commit(&[], &[], &[]);
        assert_eq!((small.len(), small.queued_len()), (1, 0));
        assert!(!small.contains(&q1));
        assert!(small.contains(&p));
        small.submit(&tx(&keys[0], 5, 1, 1, 0), &rich).unwrap();
    }

    #[test]
    fn a_full_queue_evicts_the_furthest_ahead_for_a_nearer_one() {
        let keys: Vec<Keypair> = (0..4u8)
            .map(|i| Keypair::from_seed(SuiteId::Standard, &[i]))
            .collect();
        let rich = holding(&keys, 1 << 40, 0);
        let pool = Mempool::new(
            spec(),
            MempoolConfig {
                max_queued: 3,
                ..MempoolConfig::default()
            },
        );
        let far = pool.submit(&tx(&keys[0], 5, 9, 1, 0), &rich).unwrap();
        let old_near = pool.submit(&tx(&keys[1], 5, 2, 1, 0), &rich).unwrap();
        let near = pool.submit(&tx(&keys[2], 5, 2, 1, 0), &rich).unwrap();
        // Full: a newcomer 2 ahead evicts the one 9 ahead...
        let newcomer = pool.submit(&tx(&keys[3], 5, 2, 1, 0), &rich).unwrap();
        assert!(!pool.contains(&far), "the furthest ahead goes first");
        assert!(pool.contains(&old_near) && pool.contains(&near) && pool.contains(&newcomer));
        assert_eq!((pool.queued_len(), pool.queued_evicted()), (3, 1));
        // ...of equals, the oldest goes first, and a newcomer further ahead
        // than every queued one is refused with what to do.
        let nearer = pool.submit(&tx(&keys[0], 5, 1, 1, 0), &rich).unwrap();
        assert!(!pool.contains(&old_near), "the oldest of equals goes");
        assert!(pool.contains(&nearer) && pool.contains(&near));
        let err = pool.submit(&tx(&keys[1], 5, 5, 1, 0), &rich).unwrap_err();
        assert_eq!(err.code(), "mempool_full");
        assert!(err.to_string().contains("retry"), "{err}");
        assert_eq!(pool.queued_evicted(), 2);
        // The evicted nonce can be sent again once there is room: the gap
        // fills and everything of that sender becomes pending.
        pool.submit(&tx(&keys[1], 5, 0, 1, 0), &rich).unwrap();
        pool.submit(&tx(&keys[1], 5, 1, 1, 0), &rich).unwrap();
        pool.submit(&tx(&keys[1], 5, 2, 1, 0), &rich).unwrap();
        assert_eq!(pool.next_nonce(&sender(&keys[1])), Some(3));
    }

    #[test]
    fn a_nonce_beyond_the_window_is_refused_with_what_to_do() {
        let (pool, k, st) = setup();
        // The committed nonce is 3; the window is 4 ahead.
        pool.submit(&tx(&k, 5, 7, 1, 0), &st).unwrap();
        let err = pool.submit(&tx(&k, 5, 8, 1, 0), &st).unwrap_err();
        assert_eq!(err.code(), "nonce_too_high");
        let msg = err.to_string();
        assert!(
            msg.contains("next nonce is 3") && msg.contains("send nonces 3 to 7 first"),
            "{msg}"
        );
    }

    fn priced(k: &Keypair, nonce: u64, gas_price: u64, amount: u128) -> Vec<u8> {
        encode(
            &Transaction {
                chain_id: 5,
                nonce,
                gas_limit: 30_000,
                gas_price,
                action: Action::Transfer {
                    to: Address([1; 20]),
                    amount,
                    memo: vec![],
                },
            }
            .sign(k),
        )
    }

    #[test]
    fn a_held_nonce_is_replaced_only_by_a_higher_price() {
        let (pool, k, _) = setup();
        let st = holding([&k], 10_000_000, 3);
        let code = |r: Result<H256, AdmissionError>| r.unwrap_err().code().to_string();
        // Pending: the same price, or less than 10% more, is refused.
        let first = pool.submit(&priced(&k, 3, 10, 1), &st).unwrap();
        assert_eq!(code(pool.submit(&priced(&k, 3, 10, 2), &st)), "nonce_taken");
        let second = pool.submit(&priced(&k, 3, 11, 2), &st).unwrap();
        assert_eq!(hashes(&pool.pending(10)), vec![second]);
        assert!(!pool.contains(&first) && pool.contains(&second));
        assert_eq!(pool.arrivals(1..=2), vec![first, second]);
        // Queued: the same rule, and it stays queued.
        let later = pool.submit(&priced(&k, 5, 10, 1), &st).unwrap();
        assert_eq!(code(pool.submit(&priced(&k, 5, 10, 2), &st)), "nonce_taken");
        let later2 = pool.submit(&priced(&k, 5, 20, 1), &st).unwrap();
        assert!(!pool.contains(&later) && pool.is_queued(&later2));
        assert_eq!(pool.queued_len(), 1);
        let gap = pool.submit(&priced(&k, 4, 10, 1), &st).unwrap();
        assert_eq!(hashes(&pool.pending(10)), vec![second, gap, later2]);
        // The replacement must be paid for with the others still held.
        let (pool, k, st) = setup();
        pool.submit(&priced(&k, 3, 1, 0), &st).unwrap();
        pool.submit(&priced(&k, 4, 2, 0), &st).unwrap();
        assert_eq!(
            code(pool.submit(&priced(&k, 3, 2, 0), &st)),
            "insufficient_funds"
        );
        // A full pool refuses a new transaction but still takes a
        // replacement, pending or queued, in the slot it frees.
        let full = Mempool::new(
            spec(),
            MempoolConfig {
                max_txs: 2,
                ..MempoolConfig::default()
            },
        );
        let st = holding([&k], 10_000_000, 3);
        full.submit(&priced(&k, 3, 10, 1), &st).unwrap();
        full.submit(&priced(&k, 5, 10, 1), &st).unwrap();
        assert_eq!(
            code(full.submit(&priced(&k, 4, 10, 1), &st)),
            "mempool_full"
        );
        let faster = full.submit(&priced(&k, 3, 20, 1), &st).unwrap();
        let queued = full.submit(&priced(&k, 5, 20, 1), &st).unwrap();
        assert_eq!(hashes(&full.pending(10)), vec![faster]);
        assert!(full.is_queued(&queued));
        assert_eq!((full.len(), full.queued_len()), (1, 1));
    }

    #[test]
    fn sender_emptied_by_a_commit_during_admission_is_read_from_state() {
        // Admission read committed accounts only for senders without pending
        // transactions; if a commit empties a sender's queue before the
        // insert, the insert must read the (now current) store itself.
        let (pool, k, st) = setup();
        let t = pool.precheck(&tx(&k, 5, 3, 1, 0)).unwrap();
        let mut inner = pool.inner.lock();
        let h = pool.insert(&mut inner, t, &HashMap::new(), &st).unwrap();
        assert!(inner.known.contains_key(&h));
        let t = pool.precheck(&tx(&k, 5, 9, 1, 0)).unwrap();
        assert_eq!(
            pool.insert(&mut inner, t, &HashMap::new(), &st)
                .unwrap_err()
                .code(),
            "nonce_too_high"
        );
    }
}
