//! Deterministic execution of ordered transactions over the state.
//!
//! The [`Executor`] applies a block's transactions, in order, to a
//! [`StateOverlay`] on top of a [`StateStore`], producing receipts and the
//! set of state changes; the caller stages those changes for a new state
//! root and commits them with the block. The executor never touches the
//! database directly.
//!
//! Accounts and transfers with gas fees are built in; everything else
//! native is a [`module::Module`] (the validator set is the `membership`
//! module), reached through the one [`Action::Module`]. Every state key is
//! namespaced (`acct/` + address, `code/`, `stor/`, `mod/{module}/`) so
//! modules and VMs share the one 20-byte address space.
//!
//! A transaction is applied in explicit phases, each a method of
//! [`Executor`]: **validate** (chain id, intrinsic gas, nonce: the checks
//! the mempool shares), **authorize** (every module's
//! [`module::Module::authorize`] hook), **charge** (reserve the fee, or
//! none when the target module waives it), **dispatch** (the transfer,
//! module message or contract run, rolled back on failure) and **settle**
//! (refund unused gas, bump the nonce, pay the proposer, write the
//! receipt). A block starts with the modules' begin-block hooks and ends
//! with their end-block hooks ([`Executor::finish_block`]).

pub mod membership;
pub mod module;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vm;

pub use membership::read_validator_set;
pub use module::{FeePolicy, Module, ModuleError, ModuleSet};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use tongtian_crypto::suite;
use tongtian_storage::{StateChanges, StateStore, StorageError};
use tongtian_types::codec::{decode, encode};
use tongtian_types::eth::{create_address, AccessList, EthTx};
use tongtian_types::{
    verify_signatures, Account, Action, Address, ChainSpec, CheckedTx, Event, Receipt,
    SignedTransaction, TxStatus, VmKind, H256,
};
pub use vm::{BlockEnv, CallResult, ChainEnv, Host, Message, Vm, VmFailure, VmRegistry};

/// Errors that stop execution of a whole block.
#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    /// Reading state failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Stored module state does not decode.
    #[error("corrupt state: {0}")]
    Corrupt(String),
    /// Stored account bytes do not decode.
    #[error("corrupt account record for {0}")]
    CorruptAccount(Address),
    /// A module refused the chain spec's genesis.
    #[error("genesis of module {module}: {error}")]
    Genesis {
        /// The module.
        module: &'static str,
        /// Why.
        error: ModuleError,
    },
    /// A block from elsewhere contains a transaction that cannot be included.
    #[error("transaction {hash} is not includable: {reason}")]
    InvalidTx {
        /// The transaction.
        hash: H256,
        /// Why.
        reason: InclusionError,
    },
}

/// Why a transaction cannot be included in a block at all (as opposed to
/// being included with a failed receipt).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InclusionError {
    /// Signed for another chain.
    #[error("chain id {got} does not match {expected}")]
    WrongChain {
        /// This chain.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// Nonce is not the account's next one.
    #[error("nonce {got} is not the expected {expected}")]
    BadNonce {
        /// The account's next nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// The gas limit does not cover the intrinsic gas.
    #[error("gas limit {limit} below intrinsic gas {intrinsic}")]
    GasLimitTooLow {
        /// The transaction's limit.
        limit: u64,
        /// What it needs.
        intrinsic: u64,
    },
    /// The sender cannot pay the fee.
    #[error("balance {balance} cannot pay fee {fee}")]
    CannotPayFee {
        /// Balance.
        balance: u128,
        /// Fee due.
        fee: u128,
    },
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The transaction's payload does not decode.
    #[error("malformed transaction: {0}")]
    Malformed(String),
    /// A module's authorize hook keeps the transaction off this chain
    /// (for example: the sender is not a member).
    #[error("refused by module {module}: {message} ({code})")]
    Refused {
        /// The module.
        module: &'static str,
        /// Its stable code.
        code: String,
        /// Its message.
        message: String,
    },
}

/// How strictly to treat transactions that cannot be included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Building our own proposal: skip such transactions and report them.
    Propose,
    /// Checking someone else's block: any such transaction invalidates it.
    Verify,
}

/// What executing a block's transactions produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Transactions that were included, in order.
    pub included: Vec<CheckedTx>,
    /// One receipt per included transaction.
    pub receipts: Vec<Receipt>,
    /// Transactions skipped (propose mode only) and why.
    pub dropped: Vec<(H256, Address, InclusionError)>,
    /// State writes.
    pub changes: StateChanges,
    /// Accounts whose records changed, with their new values.
    pub touched: Vec<(Address, Account)>,
    /// Events of the modules' begin- and end-block hooks.
    pub block_events: Vec<Event>,
}

/// State key of an account.
pub fn account_key(a: &Address) -> Vec<u8> {
    let mut k = b"acct/".to_vec();
    k.extend_from_slice(&a.0);
    k
}

/// Decode an account record.
pub fn decode_account(bytes: &[u8]) -> Option<Account> {
    decode("account", bytes).ok()
}

/// One undoable write, for [`StateOverlay::revert_to`].
enum JournalEntry {
    Account {
        addr: Address,
        prev: Option<Account>,
        was_dirty: bool,
    },
    Raw {
        key: Vec<u8>,
        prev: Option<Option<Vec<u8>>>,
    },
}

/// Reads through to the store, buffers writes; the unit of rollback.
/// Writes are journaled so a failed contract call can be undone back to a
/// [`StateOverlay::checkpoint`].
pub struct StateOverlay<'s> {
    store: &'s dyn StateStore,
    accounts: HashMap<Address, Account>,
    dirty: BTreeMap<Address, ()>,
    /// Non-account keys written by native modules and contracts.
    raw: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Non-account values read from the store, kept for later reads (the
    /// store does not change under an overlay). Every call reads its
    /// contract's code record, so without this each one opened a store read.
    read: RefCell<HashMap<Vec<u8>, Option<Vec<u8>>>>,
    journal: Vec<JournalEntry>,
}

impl<'s> StateOverlay<'s> {
    /// An empty overlay over `store`.
    pub fn new(store: &'s dyn StateStore) -> Self {
        StateOverlay {
            store,
            accounts: HashMap::new(),
            dirty: BTreeMap::new(),
            raw: BTreeMap::new(),
            read: RefCell::new(HashMap::new()),
            journal: Vec::new(),
        }
    }

    /// An overlay over `store` that already holds the writes of an earlier
    /// run over the same store (`changes` and `touched` as
    /// [`StateOverlay::into_changes`] gave them), so execution can go on
    /// where that run stopped.
    pub fn resume(
        store: &'s dyn StateStore,
        mut changes: StateChanges,
        touched: Vec<(Address, Account)>,
    ) -> Self {
        let mut overlay = StateOverlay::new(store);
        for (a, acct) in touched {
            changes.remove(&account_key(&a));
            overlay.accounts.insert(a, acct);
            overlay.dirty.insert(a, ());
        }
        overlay.raw = changes;
        overlay
    }

    /// A point [`StateOverlay::revert_to`] can return to.
    pub fn checkpoint(&self) -> usize {
        self.journal.len()
    }

    /// Undo every write made since `checkpoint`.
    pub fn revert_to(&mut self, checkpoint: usize) {
        while self.journal.len() > checkpoint {
            match self.journal.pop() {
                Some(JournalEntry::Account {
                    addr,
                    prev,
                    was_dirty,
                }) => {
                    match prev {
                        Some(a) => self.accounts.insert(addr, a),
                        None => self.accounts.remove(&addr),
                    };
                    if !was_dirty {
                        self.dirty.remove(&addr);
                    }
                }
                Some(JournalEntry::Raw { key, prev }) => {
                    match prev {
                        Some(v) => self.raw.insert(key, v),
                        None => self.raw.remove(&key),
                    };
                }
                None => break,
            }
        }
    }

    /// Accounts whose balance changed since `checkpoint`: address, balance
    /// then, balance now.
    pub fn balance_changes_since(
        &mut self,
        checkpoint: usize,
    ) -> Result<Vec<(Address, u128, u128)>, ExecutionError> {
        let mut first: BTreeMap<Address, Option<Account>> = BTreeMap::new();
        for e in &self.journal[checkpoint.min(self.journal.len())..] {
            if let JournalEntry::Account { addr, prev, .. } = e {
                first.entry(*addr).or_insert_with(|| prev.clone());
            }
        }
        let mut out = Vec::new();
        for (a, prev) in first {
            let before = match prev {
                Some(p) => p.balance,
                None => match self.store.get(&account_key(&a))? {
                    Some(b) => {
                        decode_account(&b)
                            .ok_or(ExecutionError::CorruptAccount(a))?
                            .balance
                    }
                    None => 0,
                },
            };
            let now = self.account(&a)?.balance;
            if now != before {
                out.push((a, before, now));
            }
        }
        Ok(out)
    }

    /// Forget the journal (at a transaction boundary: nothing before it
    /// will be undone).
    pub fn clear_journal(&mut self) {
        self.journal.clear();
    }

    /// Preload many accounts in one read snapshot.
    pub fn prefetch(
        &mut self,
        addrs: impl IntoIterator<Item = Address>,
    ) -> Result<(), ExecutionError> {
        let mut wanted: Vec<Address> = addrs
            .into_iter()
            .filter(|a| !self.accounts.contains_key(a))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let keys: Vec<Vec<u8>> = wanted.iter().map(account_key).collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        for (a, v) in wanted.iter().zip(self.store.get_many(&refs)?) {
            let acct = match v {
                Some(b) => decode_account(&b).ok_or(ExecutionError::CorruptAccount(*a))?,
                None => Account::default(),
            };
            self.accounts.insert(*a, acct);
        }
        Ok(())
    }

    /// Current view of an account.
    pub fn account(&mut self, a: &Address) -> Result<Account, ExecutionError> {
        if let Some(acct) = self.accounts.get(a) {
            return Ok(acct.clone());
        }
        let acct = match self.store.get(&account_key(a))? {
            Some(b) => decode_account(&b).ok_or(ExecutionError::CorruptAccount(*a))?,
            None => Account::default(),
        };
        self.accounts.insert(*a, acct.clone());
        Ok(acct)
    }

    /// Replace an account.
    pub fn set_account(&mut self, a: Address, acct: Account) {
        let prev = self.accounts.insert(a, acct);
        let was_dirty = self.dirty.insert(a, ()).is_some();
        self.journal.push(JournalEntry::Account {
            addr: a,
            prev,
            was_dirty,
        });
    }

    /// Current value of a non-account key.
    pub fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ExecutionError> {
        if let Some(v) = self.raw.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.read.borrow().get(key) {
            return Ok(v.clone());
        }
        let v = self.store.get(key)?;
        self.read.borrow_mut().insert(key.to_vec(), v.clone());
        Ok(v)
    }

    /// Up to `limit` non-account entries under `prefix` (after
    /// `start_after`), as this overlay's writes leave them, in key order.
    pub fn scan_raw(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<tongtian_storage::Entries, ExecutionError> {
        Ok(tongtian_storage::merge_scan(
            self.store,
            &self.raw,
            prefix,
            start_after,
            limit,
        )?)
    }

    /// Hash of the committed block at `height`, if any.
    pub fn block_hash(&self, height: u64) -> Result<Option<H256>, ExecutionError> {
        Ok(self.store.block_hash(height)?)
    }

    /// Write a non-account key.
    pub fn set_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        let prev = self.raw.insert(key.clone(), Some(value));
        self.journal.push(JournalEntry::Raw { key, prev });
    }

    /// Delete a non-account key.
    pub fn delete_raw(&mut self, key: Vec<u8>) {
        let prev = self.raw.insert(key.clone(), None);
        self.journal.push(JournalEntry::Raw { key, prev });
    }

    /// The buffered writes as state changes, and the touched accounts.
    pub fn into_changes(self) -> (StateChanges, Vec<(Address, Account)>) {
        let mut changes: StateChanges = self.raw;
        let mut touched = Vec::with_capacity(self.dirty.len());
        for a in self.dirty.keys() {
            let acct = self.accounts[a].clone();
            changes.insert(account_key(a), Some(encode(&acct)));
            touched.push((*a, acct));
        }
        (changes, touched)
    }
}

/// Applies transactions to state under one chain's rules.
#[derive(Clone, Debug)]
pub struct Executor {
    spec: ChainSpec,
    vms: VmRegistry,
    modules: ModuleSet,
}

/// What a read-only call produced.
#[derive(Clone, Debug)]
pub struct Simulation {
    /// Output or failure, and gas used (intrinsic included).
    pub result: CallResult,
    /// Events it would emit.
    pub events: Vec<Event>,
}

/// What the charge phase reserved from the sender.
struct Charge {
    /// Gas the fee was reserved for.
    reserved_gas: u64,
    /// Price per gas actually charged (0 when the module waives the fee).
    gas_price: u64,
}

/// An empty state, under the genesis overlay.
struct EmptyState;

impl StateStore for EmptyState {
    fn get(&self, _key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(None)
    }
    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        Ok(vec![None; keys.len()])
    }
    fn stage(&self, _changes: StateChanges) -> Result<tongtian_storage::StagedState, StorageError> {
        Err(StorageError::Historical(0))
    }
    fn root(&self, _version: u64) -> Result<Option<H256>, StorageError> {
        Ok(None)
    }
    fn prove(
        &self,
        _key: &[u8],
        version: u64,
    ) -> Result<tongtian_storage::smt::StateProof, StorageError> {
        Err(StorageError::UnknownVersion(version))
    }
    fn scan_prefix(
        &self,
        _prefix: &[u8],
        _start_after: Option<&[u8]>,
        _limit: usize,
    ) -> Result<tongtian_storage::Entries, StorageError> {
        Ok(Vec::new())
    }
}

impl Executor {
    /// An executor for a chain, with its built-in modules (`membership`)
    /// and no virtual machines.
    pub fn new(spec: ChainSpec) -> Self {
        let mut modules = ModuleSet::default();
        modules.insert(std::sync::Arc::new(membership::Membership));
        Executor {
            spec,
            vms: VmRegistry::default(),
            modules,
        }
    }

    /// Enable a VM, if the chain spec allows it (else it is ignored).
    pub fn with_vm(mut self, vm: std::sync::Arc<dyn Vm>) -> Self {
        if self.spec.vms.contains(&vm.kind()) {
            self.vms.insert(vm);
        }
        self
    }

    /// Add a native module.
    pub fn with_module(mut self, m: std::sync::Arc<dyn Module>) -> Self {
        self.modules.insert(m);
        self
    }

    /// The chain's modules.
    pub fn modules(&self) -> &ModuleSet {
        &self.modules
    }

    fn chain_env(&self) -> ChainEnv {
        ChainEnv {
            chain_id: self.spec.chain_id,
            suite: self.spec.suite,
        }
    }

    /// The chain spec.
    pub fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// Gas a transaction uses before doing anything: base plus size.
    pub fn intrinsic_gas(&self, encoded_len: usize) -> u64 {
        self.spec.gas.tx_base + self.spec.gas.per_byte * encoded_len as u64
    }

    /// The genesis state: prefunded accounts and every module's genesis.
    /// A module section naming no module of this chain is refused.
    pub fn genesis_changes(&self) -> Result<StateChanges, ExecutionError> {
        if let Some(unknown) = self
            .spec
            .modules
            .0
            .keys()
            .find(|id| self.modules.get(id).is_none())
        {
            return Err(ExecutionError::Corrupt(format!(
                "the chain spec has a genesis section for module `{unknown}`, which this chain does not run (it runs {})",
                self.modules.ids().join(", ")
            )));
        }
        let empty = EmptyState;
        let mut overlay = StateOverlay::new(&empty);
        for g in &self.spec.accounts {
            overlay.set_account(
                g.address,
                Account {
                    balance: g.balance,
                    nonce: 0,
                },
            );
        }
        for m in self.modules.iter() {
            let mut state = module::ModuleState::new(&mut overlay, m.id());
            match m.genesis(&mut state, &self.spec, self.spec.modules.get(m.id())) {
                Ok(()) => {}
                Err(module::ModuleFailure::Module(error)) => {
                    return Err(ExecutionError::Genesis {
                        module: m.id(),
                        error,
                    })
                }
                Err(module::ModuleFailure::Execution(e)) => return Err(e),
            }
        }
        Ok(overlay.into_changes().0)
    }

    /// Execute `txs` in order at `height`, fees to `proposer`.
    ///
    /// In [`Mode::Verify`] every signature is checked here (batch, all
    /// cores); in [`Mode::Propose`] they were checked at admission.
    pub fn execute(
        &self,
        store: &dyn StateStore,
        block: &BlockEnv,
        txs: Vec<CheckedTx>,
        mode: Mode,
    ) -> Result<Outcome, ExecutionError> {
        self.verify_block(store, block, txs, mode, |_| false)
    }

    /// [`Executor::execute`], except that in [`Mode::Verify`] the signatures
    /// of transactions for which `already_checked` holds are not checked
    /// again (a node's own admitted transactions, whose signatures its
    /// mempool verified).
    pub fn verify_block(
        &self,
        store: &dyn StateStore,
        block: &BlockEnv,
        txs: Vec<CheckedTx>,
        mode: Mode,
        already_checked: impl Fn(&H256) -> bool,
    ) -> Result<Outcome, ExecutionError> {
        let s = suite(self.spec.suite);
        if mode == Mode::Verify {
            let todo: Vec<&CheckedTx> = txs.iter().filter(|t| !already_checked(&t.hash)).collect();
            let signed: Vec<&SignedTransaction> = todo.iter().map(|t| &t.tx).collect();
            if let Some(i) = verify_signatures(s, &signed).iter().position(|ok| !ok) {
                return Err(ExecutionError::InvalidTx {
                    hash: todo[i].hash,
                    reason: InclusionError::BadSignature,
                });
            }
        }
        let mut overlay = StateOverlay::new(store);
        let mut out = Outcome::default();
        self.block_hooks(&mut overlay, block, &mut out, true)?;
        overlay.clear_journal();
        self.run(overlay, block, out, txs, mode)
    }

    /// Run every module's begin-block (`begin`) or end-block hook, in id
    /// order. A hook's failure is the module's bug, not a transaction's:
    /// its writes are undone and it is logged, and the block goes on.
    fn block_hooks(
        &self,
        overlay: &mut StateOverlay<'_>,
        block: &BlockEnv,
        out: &mut Outcome,
        begin: bool,
    ) -> Result<(), ExecutionError> {
        for m in self.modules.iter() {
            let cp = overlay.checkpoint();
            let mut state = module::ModuleState::new(overlay, m.id());
            let result = if begin {
                m.begin_block(&mut state, block)
            } else {
                m.end_block(&mut state, block)
            };
            match result {
                Ok(events) => out.block_events.extend(events),
                Err(module::ModuleFailure::Module(e)) => {
                    overlay.revert_to(cp);
                    tracing::error!(module = m.id(), height = block.height, error = %e, begin, "block hook failed");
                }
                Err(module::ModuleFailure::Execution(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// End the block whose transactions gave `outcome` (over `store`): the
    /// modules' end-block hooks. Call it once, after the last
    /// [`Executor::execute_after`], before staging the changes.
    pub fn finish_block(
        &self,
        store: &dyn StateStore,
        block: &BlockEnv,
        outcome: Outcome,
    ) -> Result<Outcome, ExecutionError> {
        let Outcome {
            included,
            receipts,
            dropped,
            changes,
            touched,
            block_events,
        } = outcome;
        let mut overlay = StateOverlay::resume(store, changes, touched);
        let mut out = Outcome {
            included,
            receipts,
            dropped,
            block_events,
            ..Outcome::default()
        };
        self.block_hooks(&mut overlay, block, &mut out, false)?;
        (out.changes, out.touched) = overlay.into_changes();
        Ok(out)
    }

    /// Go on with a block whose first transactions gave `prior` (executed
    /// over `store`, in propose mode): `txs` run after them, on the state
    /// they left, and the outcome covers the whole block. A prepared block
    /// takes in what arrived after it was built this way.
    pub fn execute_after(
        &self,
        store: &dyn StateStore,
        block: &BlockEnv,
        prior: Outcome,
        txs: Vec<CheckedTx>,
    ) -> Result<Outcome, ExecutionError> {
        let Outcome {
            included,
            receipts,
            dropped,
            changes,
            touched,
            block_events,
        } = prior;
        let overlay = StateOverlay::resume(store, changes, touched);
        let out = Outcome {
            included,
            receipts,
            dropped,
            block_events,
            ..Outcome::default()
        };
        self.run(overlay, block, out, txs, Mode::Propose)
    }

    /// Apply `txs` in order after what `out` already holds.
    fn run(
        &self,
        mut overlay: StateOverlay<'_>,
        block: &BlockEnv,
        mut out: Outcome,
        txs: Vec<CheckedTx>,
        mode: Mode,
    ) -> Result<Outcome, ExecutionError> {
        overlay.prefetch(
            txs.iter()
                .flat_map(|t| {
                    let other = match &t.tx.tx.action {
                        Action::Transfer { to, .. } | Action::Call { to, .. } => *to,
                        _ => t.sender,
                    };
                    [t.sender, other]
                })
                .chain(std::iter::once(block.proposer)),
        )?;
        // Most transactions are included: grow the block's lists once.
        out.receipts.reserve(txs.len());
        out.included.reserve(txs.len());
        for t in txs {
            overlay.clear_journal();
            match self.apply(&mut overlay, block, out.receipts.len() as u32, &t)? {
                Ok(receipt) => {
                    out.receipts.push(receipt);
                    out.included.push(t);
                }
                Err(reason) => match mode {
                    Mode::Propose => {
                        tracing::debug!(tx = %t.hash, %reason, "dropped from proposal");
                        out.dropped.push((t.hash, t.sender, reason));
                    }
                    Mode::Verify => {
                        return Err(ExecutionError::InvalidTx {
                            hash: t.hash,
                            reason,
                        });
                    }
                },
            }
        }
        (out.changes, out.touched) = overlay.into_changes();
        Ok(out)
    }

    /// Apply one transaction, phase by phase: `Err(InclusionError)` (from
    /// validate, authorize or charge) leaves state untouched.
    fn apply(
        &self,
        overlay: &mut StateOverlay<'_>,
        block: &BlockEnv,
        index: u32,
        t: &CheckedTx,
    ) -> Result<Result<Receipt, InclusionError>, ExecutionError> {
        let intrinsic = match self.validate(overlay, t)? {
            Ok(gas) => gas,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = self.authorize(overlay, t)? {
            return Ok(Err(e));
        }
        let target = contract_target(t)?;
        let charge = match self.charge(overlay, t, intrinsic, target.is_some())? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        // From here the transaction is included: fee and nonce always apply,
        // and the action's effects apply only if it succeeds.
        let dispatched = self.dispatch(overlay, block, t, intrinsic, target)?;
        self.settle(overlay, block, index, t, &charge, dispatched)
            .map(Ok)
    }

    /// Validate: the checks that depend only on the transaction and the
    /// sender's nonce (the mempool makes the same ones at admission).
    /// The intrinsic gas on success.
    fn validate(
        &self,
        overlay: &mut StateOverlay<'_>,
        t: &CheckedTx,
    ) -> Result<Result<u64, InclusionError>, ExecutionError> {
        let tx = &t.tx.tx;
        if tx.chain_id != self.spec.chain_id {
            return Ok(Err(InclusionError::WrongChain {
                expected: self.spec.chain_id,
                got: tx.chain_id,
            }));
        }
        let intrinsic = t.intrinsic_gas(&self.spec.gas);
        if tx.gas_limit < intrinsic {
            return Ok(Err(InclusionError::GasLimitTooLow {
                limit: tx.gas_limit,
                intrinsic,
            }));
        }
        let sender = overlay.account(&t.sender)?;
        if sender.nonce != tx.nonce {
            return Ok(Err(InclusionError::BadNonce {
                expected: sender.nonce,
                got: tx.nonce,
            }));
        }
        Ok(Ok(intrinsic))
    }

    /// Authorize: every module may keep the transaction off the chain.
    fn authorize(
        &self,
        overlay: &mut StateOverlay<'_>,
        t: &CheckedTx,
    ) -> Result<Result<(), InclusionError>, ExecutionError> {
        let fee = self.fee_policy(overlay, t);
        for m in self.modules.iter() {
            let mut state = module::ModuleState::new(overlay, m.id());
            match m.authorize(&mut state, t, fee) {
                Ok(()) => {}
                Err(module::ModuleFailure::Module(e)) => {
                    return Ok(Err(InclusionError::Refused {
                        module: m.id(),
                        code: e.code,
                        message: e.message,
                    }))
                }
                Err(module::ModuleFailure::Execution(e)) => return Err(e),
            }
        }
        Ok(Ok(()))
    }

    /// The authorize phase alone, over `store`: what mempool admission asks
    /// before taking a transaction in (`Err((module, code, message))`).
    pub fn authorize_on(
        &self,
        store: &dyn StateStore,
        t: &CheckedTx,
    ) -> Result<Result<(), (String, String)>, ExecutionError> {
        let mut overlay = StateOverlay::new(store);
        Ok(match self.authorize(&mut overlay, t)? {
            Ok(()) => Ok(()),
            Err(InclusionError::Refused { code, message, .. }) => Err((code, message)),
            Err(other) => Err(("refused".into(), other.to_string())),
        })
    }

    /// The fee policy of a transaction: a module message may waive it.
    fn fee_policy(&self, overlay: &mut StateOverlay<'_>, t: &CheckedTx) -> FeePolicy {
        match &t.tx.tx.action {
            Action::Module { module, msg } => match self.modules.get(module) {
                Some(m) => {
                    let mut state = module::ModuleState::new(overlay, m.id());
                    m.fee_policy(&mut state, t, msg)
                }
                None => FeePolicy::Charged,
            },
            _ => FeePolicy::Charged,
        }
    }

    /// [`Executor::fee_policy`] over committed state `store` (what mempool
    /// admission asks, to reserve no fee for a free transaction).
    pub fn fee_policy_on(&self, store: &dyn StateStore, t: &CheckedTx) -> FeePolicy {
        let mut overlay = StateOverlay::new(store);
        self.fee_policy(&mut overlay, t)
    }

    /// Charge: reserve the most the transaction can cost. Contract calls
    /// reserve their whole gas limit up front (as in Ethereum) and are
    /// refunded what they do not use.
    fn charge(
        &self,
        overlay: &mut StateOverlay<'_>,
        t: &CheckedTx,
        intrinsic: u64,
        contract: bool,
    ) -> Result<Result<Charge, InclusionError>, ExecutionError> {
        let tx = &t.tx.tx;
        let gas_price = match self.fee_policy(overlay, t) {
            FeePolicy::Charged => tx.gas_price,
            FeePolicy::Free => 0,
        };
        let reserved_gas = if contract { tx.gas_limit } else { intrinsic };
        let max_fee = reserved_gas as u128 * gas_price as u128;
        let mut sender = overlay.account(&t.sender)?;
        if sender.balance < max_fee {
            return Ok(Err(InclusionError::CannotPayFee {
                balance: sender.balance,
                fee: max_fee,
            }));
        }
        sender.balance -= max_fee;
        overlay.set_account(t.sender, sender);
        Ok(Ok(Charge {
            reserved_gas,
            gas_price,
        }))
    }

    /// Dispatch: run the action. Its effects are undone when it fails.
    fn dispatch(
        &self,
        overlay: &mut StateOverlay<'_>,
        block: &BlockEnv,
        t: &CheckedTx,
        intrinsic: u64,
        target: Option<(Target, AccessList)>,
    ) -> Result<Dispatched, ExecutionError> {
        if let Some((target, access_list)) = target {
            let run = self.run_contract(overlay, block, t, intrinsic, target, access_list)?;
            let mut output = Vec::new();
            let mut contract_address = run.contract_address;
            let status = match run.status {
                Ok(out) => {
                    output = out;
                    TxStatus::Success
                }
                Err(f) => {
                    if let VmFailure::Revert(data) = &f {
                        output = data.clone();
                    }
                    contract_address = None;
                    TxStatus::Failed {
                        code: f.code().into(),
                        message: f.message(),
                    }
                }
            };
            return Ok(Dispatched {
                status,
                events: run.events,
                output,
                gas_used: run.gas_used,
                contract_address,
            });
        }
        let cp = overlay.checkpoint();
        let mut contract_gas = 0;
        let (status, events, output) = self.apply_native(
            overlay,
            block,
            t,
            t.tx.tx.gas_limit.saturating_sub(intrinsic),
            &mut contract_gas,
        )?;
        if !matches!(status, TxStatus::Success) {
            overlay.revert_to(cp);
        }
        Ok(Dispatched {
            status,
            events,
            output,
            gas_used: intrinsic + contract_gas,
            contract_address: None,
        })
    }

    /// Settle: bump the nonce (after dispatch, so the VMs see the nonce the
    /// transaction was signed with, as contract creation addresses need),
    /// refund unused gas, pay the proposer, write the receipt.
    fn settle(
        &self,
        overlay: &mut StateOverlay<'_>,
        block: &BlockEnv,
        index: u32,
        t: &CheckedTx,
        charge: &Charge,
        d: Dispatched,
    ) -> Result<Receipt, ExecutionError> {
        let price = charge.gas_price as u128;
        let refund = charge.reserved_gas.saturating_sub(d.gas_used) as u128 * price;
        let mut s = overlay.account(&t.sender)?;
        s.nonce = t.tx.tx.nonce + 1;
        s.balance = s.balance.saturating_add(refund);
        overlay.set_account(t.sender, s);
        let fee = d.gas_used as u128 * price;
        let mut p = overlay.account(&block.proposer)?;
        p.balance = p.balance.saturating_add(fee);
        overlay.set_account(block.proposer, p);
        Ok(Receipt {
            tx_hash: t.hash,
            height: block.height,
            index,
            sender: t.sender,
            status: d.status,
            gas_used: d.gas_used,
            fee,
            events: d.events,
            output: d.output,
            contract_address: d.contract_address,
        })
    }

    /// The effects of a native action (fee and nonce already applied):
    /// status, events and output. A module message may call contracts with
    /// up to `gas_left` gas; what they used is added to `contract_gas`.
    fn apply_native(
        &self,
        overlay: &mut StateOverlay<'_>,
        block: &BlockEnv,
        t: &CheckedTx,
        gas_left: u64,
        contract_gas: &mut u64,
    ) -> Result<(TxStatus, Vec<Event>, Vec<u8>), ExecutionError> {
        Ok(match &t.tx.tx.action {
            Action::Transfer { to, amount, .. } => {
                let mut from = overlay.account(&t.sender)?;
                if from.balance < *amount {
                    let message = format!("balance {} below amount {}", from.balance, amount);
                    (
                        TxStatus::Failed {
                            code: "insufficient_funds".into(),
                            message,
                        },
                        vec![],
                        vec![],
                    )
                } else {
                    from.balance -= amount;
                    overlay.set_account(t.sender, from);
                    let mut recipient = overlay.account(to)?;
                    // Total supply is fixed at genesis and fits u128, so a
                    // balance cannot overflow; saturate rather than trust that.
                    recipient.balance = recipient.balance.saturating_add(*amount);
                    overlay.set_account(*to, recipient);
                    let event = Event {
                        emitter: Address::ZERO,
                        name: "transfer".into(),
                        attributes: vec![
                            ("from".into(), t.sender.to_string()),
                            ("to".into(), to.to_string()),
                            ("amount".into(), amount.to_string()),
                        ],
                    };
                    (TxStatus::Success, vec![event], vec![])
                }
            }
            Action::Module { module, msg } => {
                let Some(m) = self.modules.get(module) else {
                    return Ok((
                        TxStatus::Failed {
                            code: "unknown_module".into(),
                            message: format!(
                                "this chain has no module `{module}` (it has {})",
                                self.modules.ids().join(", ")
                            ),
                        },
                        vec![],
                        vec![],
                    ));
                };
                let chain = self.chain_env();
                let mut ctx =
                    module::ModuleCtx::new(overlay, m.id(), block, &chain, t.sender, t.sender, 0)
                        .with_modules(&self.modules)
                        .with_contracts(&self.vms, gas_left, 0);
                let result = m.execute(&mut ctx, msg);
                *contract_gas = ctx.gas_used();
                let events = ctx.into_events();
                match result {
                    Ok(output) => (TxStatus::Success, events, output),
                    Err(module::ModuleFailure::Module(e)) => (
                        TxStatus::Failed {
                            code: e.code,
                            message: e.message,
                        },
                        vec![],
                        vec![],
                    ),
                    Err(module::ModuleFailure::Execution(e)) => return Err(e),
                }
            }
            Action::Deploy { .. } | Action::Call { .. } | Action::Ethereum { .. } => {
                unreachable!("contract actions run in run_contract")
            }
        })
    }

    /// Answer a module query over `store` (the latest state, or a past one).
    pub fn query_module(
        &self,
        store: &dyn StateStore,
        module: &str,
        path: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Result<serde_json::Value, ModuleError>, ExecutionError> {
        let Some(m) = self.modules.get(module) else {
            return Ok(Err(ModuleError::new(
                "unknown_module",
                format!(
                    "this chain has no module `{module}` (it has {})",
                    self.modules.ids().join(", ")
                ),
            )));
        };
        let mut overlay = StateOverlay::new(store);
        let mut state = module::ModuleState::new(&mut overlay, m.id());
        match m.query(&mut state, path, params) {
            Ok(v) => Ok(Ok(v)),
            Err(module::ModuleFailure::Module(e)) => Ok(Err(e)),
            Err(module::ModuleFailure::Execution(e)) => Err(e),
        }
    }

    /// Run a contract action's `target`. Gas used includes `intrinsic`.
    fn run_contract(
        &self,
        overlay: &mut StateOverlay<'_>,
        block: &BlockEnv,
        t: &CheckedTx,
        intrinsic: u64,
        target: Target,
        access_list: AccessList,
    ) -> Result<ContractRun, ExecutionError> {
        let tx = &t.tx.tx;
        self.run_target(
            overlay,
            block,
            t.sender,
            tx.nonce,
            tx.gas_price,
            tx.gas_limit - intrinsic,
            target,
            access_list,
        )
        .map(|mut r| {
            r.gas_used += intrinsic;
            r
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn run_target(
        &self,
        overlay: &mut StateOverlay<'_>,
        block: &BlockEnv,
        sender: Address,
        nonce: u64,
        gas_price: u64,
        gas: u64,
        target: Target,
        access_list: AccessList,
    ) -> Result<ContractRun, ExecutionError> {
        let chain = self.chain_env();
        let mut host = Host::new(overlay, block, &chain, &self.vms).with_modules(&self.modules);
        // Called once, on whichever path runs: the list moves into it.
        let msg = move |to: Address, input: Vec<u8>, value: u128| Message {
            caller: sender,
            origin: sender,
            to,
            value,
            input,
            gas_limit: gas,
            gas_price,
            depth: 0,
            access_list,
        };
        let (result, contract_address) = match target {
            Target::Create {
                vm,
                code,
                input,
                value,
            } => {
                let to = create_address(&sender, nonce);
                (host.create(vm, &msg(to, input, value), &code)?, Some(to))
            }
            Target::Call { to, input, value } => (host.call(&msg(to, input, value))?, None),
        };
        let events = if result.status.is_ok() {
            host.into_events()
        } else {
            Vec::new()
        };
        Ok(ContractRun {
            gas_used: result.gas_used.min(gas),
            status: result.status,
            events,
            contract_address,
        })
    }

    /// Run a call or creation without a transaction and without keeping
    /// its effects (`eth_call`, `eth_estimateGas`, `contract query`). The
    /// gas reported includes the intrinsic gas of an equivalent Ethereum
    /// transaction (with its access list).
    pub fn simulate(
        &self,
        store: &dyn StateStore,
        block: &BlockEnv,
        call: CallRequest,
    ) -> Result<Simulation, ExecutionError> {
        let CallRequest {
            from,
            to,
            vm,
            input,
            value,
            gas_limit,
            access_list,
        } = call;
        let mut overlay = StateOverlay::new(store);
        let intrinsic = tongtian_types::eth::intrinsic_gas(&input, to.is_none(), &access_list);
        let nonce = overlay.account(&from)?.nonce;
        let target = match to {
            Some(to) => Target::Call { to, input, value },
            None => Target::Create {
                vm,
                code: input,
                input: Vec::new(),
                value,
            },
        };
        let gas = gas_limit.saturating_sub(intrinsic);
        let run = self.run_target(
            &mut overlay,
            block,
            from,
            nonce,
            0,
            gas,
            target,
            access_list,
        )?;
        Ok(Simulation {
            result: CallResult {
                status: run.status,
                gas_used: run.gas_used + intrinsic,
            },
            events: run.events,
        })
    }
}

/// A call or creation run without a transaction ([`Executor::simulate`]).
#[derive(Clone, Debug)]
pub struct CallRequest {
    /// Caller (and origin).
    pub from: Address,
    /// Callee; `None` creates a contract from `input`.
    pub to: Option<Address>,
    /// The VM a creation deploys to.
    pub vm: VmKind,
    /// Call data, or init code for a creation.
    pub input: Vec<u8>,
    /// Native tokens sent along.
    pub value: u128,
    /// Gas limit, intrinsic gas included.
    pub gas_limit: u64,
    /// EIP-2930 access list (EVM only).
    pub access_list: AccessList,
}

/// What a contract action runs, with its access list: `None` for native
/// actions. An Ethereum transaction whose raw bytes do not decode cannot
/// be in a valid block.
fn contract_target(t: &CheckedTx) -> Result<Option<(Target, AccessList)>, ExecutionError> {
    let target = match &t.tx.tx.action {
        Action::Transfer { .. } | Action::Module { .. } => return Ok(None),
        Action::Deploy {
            vm,
            code,
            args,
            value,
        } => Target::Create {
            vm: *vm,
            code: code.clone(),
            input: args.clone(),
            value: *value,
        },
        Action::Call { to, input, value } => Target::Call {
            to: *to,
            input: input.clone(),
            value: *value,
        },
        Action::Ethereum { raw } => {
            let eth = EthTx::decode(raw).map_err(|e| ExecutionError::InvalidTx {
                hash: t.hash,
                reason: InclusionError::Malformed(e.to_string()),
            })?;
            let target = match eth.to {
                Some(to) => Target::Call {
                    to,
                    input: eth.input,
                    value: eth.value,
                },
                None => Target::Create {
                    vm: VmKind::Evm,
                    code: eth.input,
                    input: Vec::new(),
                    value: eth.value,
                },
            };
            return Ok(Some((target, eth.access_list)));
        }
    };
    Ok(Some((target, AccessList::new())))
}

enum Target {
    Create {
        vm: VmKind,
        code: Vec<u8>,
        input: Vec<u8>,
        value: u128,
    },
    Call {
        to: Address,
        input: Vec<u8>,
        value: u128,
    },
}

/// What the dispatch phase produced.
struct Dispatched {
    status: TxStatus,
    events: Vec<Event>,
    output: Vec<u8>,
    gas_used: u64,
    contract_address: Option<Address>,
}

struct ContractRun {
    status: Result<Vec<u8>, VmFailure>,
    gas_used: u64,
    events: Vec<Event>,
    contract_address: Option<Address>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tongtian_crypto::{Keypair, SuiteId};
    use tongtian_storage::{BlockCommit, ChainStore};
    use tongtian_types::ValidatorSet;
    use tongtian_types::{
        Block, BlockHeader, Certificate, ConsensusSpec, GasSchedule, GenesisAccount, Limits,
        SignedTransaction, Transaction, ValidatorSpec,
    };

    fn spec(keys: &[Keypair], validator: &Keypair) -> ChainSpec {
        ChainSpec {
            name: "t".into(),
            chain_id: 9,
            suite: SuiteId::Standard,
            consensus: ConsensusSpec {
                engine: "solo".into(),
                block_interval_ms: 10,
                max_block_txs: 100,
                empty_block_interval_ms: 0,
            },
            validators: vec![ValidatorSpec {
                name: "v".into(),
                public_key: validator.public_key().to_vec(),
            }],
            accounts: keys
                .iter()
                .map(|k| GenesisAccount {
                    address: Address::from_public_key(SuiteId::Standard, k.public_key()),
                    balance: 1_000_000_000,
                })
                .collect(),
            gas: GasSchedule::default(),
            limits: Limits::default(),
            genesis_time_ms: 0,
            vms: tongtian_types::VmKind::ALL.to_vec(),
            modules: Default::default(),
        }
    }

    fn transfer(k: &Keypair, nonce: u64, to: Address, amount: u128) -> CheckedTx {
        let tx: SignedTransaction = Transaction {
            chain_id: 9,
            nonce,
            gas_limit: 100_000,
            gas_price: 1,
            action: Action::Transfer {
                to,
                amount,
                memo: vec![],
            },
        }
        .sign(k);
        CheckedTx::new(tx, SuiteId::Standard)
    }

    fn env(height: u64, proposer: Address) -> BlockEnv {
        BlockEnv {
            height,
            timestamp_ms: 0,
            proposer,
        }
    }

    fn setup() -> (
        tempfile::TempDir,
        ChainStore,
        Executor,
        Vec<Keypair>,
        Address,
    ) {
        let keys: Vec<Keypair> = (0..3)
            .map(|i| Keypair::from_seed(SuiteId::Standard, &[i]))
            .collect();
        let v = Keypair::from_seed(SuiteId::Standard, b"v");
        let spec = spec(&keys, &v);
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("c.redb"), SuiteId::Standard).unwrap();
        let ex = Executor::new(spec.clone());
        let staged = store.stage(ex.genesis_changes().unwrap()).unwrap();
        let header = BlockHeader {
            chain_id: 9,
            height: 0,
            timestamp_ms: 0,
            parent_hash: spec.hash(),
            tx_root: H256::ZERO,
            receipts_root: H256::ZERO,
            state_root: staged.root,
            tx_count: 0,
            proposer: Address::ZERO,
        };
        store
            .commit_block(BlockCommit {
                block: &Block {
                    header,
                    txs: vec![],
                },
                tx_hashes: &[],
                receipts: &[],
                certificate: &Certificate::default(),
                state: &staged,
                filters: Default::default(),
                block_events: &[],
            })
            .unwrap();
        let proposer = Address::from_public_key(SuiteId::Standard, v.public_key());
        (dir, store, ex, keys, proposer)
    }

    fn total(store: &ChainStore, addrs: &[Address]) -> u128 {
        addrs
            .iter()
            .map(|a| {
                store
                    .get(&account_key(a))
                    .unwrap()
                    .and_then(|b| decode_account(&b))
                    .unwrap_or_default()
                    .balance
            })
            .sum()
    }

    #[test]
    fn transfers_conserve_supply_and_charge_fees() {
        let (_d, store, ex, keys, proposer) = setup();
        let a: Vec<Address> = keys
            .iter()
            .map(|k| Address::from_public_key(SuiteId::Standard, k.public_key()))
            .collect();
        let fresh = Address([0xee; 20]);
        let txs = vec![
            transfer(&keys[0], 0, a[1], 500),
            transfer(&keys[0], 1, fresh, 7),
            transfer(&keys[1], 0, a[1], 3), // self-transfer
            transfer(&keys[2], 0, a[0], 10_000_000_000), // more than it has: included, failed
            transfer(&keys[0], 5, a[1], 1), // bad nonce: dropped
        ];
        let out = ex
            .execute(&store, &env(1, proposer), txs, Mode::Propose)
            .unwrap();
        assert_eq!(out.included.len(), 4);
        assert_eq!(out.dropped.len(), 1);
        assert!(matches!(
            out.dropped[0].2,
            InclusionError::BadNonce {
                expected: 2,
                got: 5
            }
        ));
        assert!(out.receipts[0].is_success());
        assert!(
            matches!(&out.receipts[3].status, TxStatus::Failed { code, .. } if code == "insufficient_funds")
        );
        let fees: u128 = out.receipts.iter().map(|r| r.fee).sum();
        assert!(fees > 0);
        let staged = store.stage(out.changes).unwrap();
        let header = BlockHeader {
            chain_id: 9,
            height: 1,
            timestamp_ms: 0,
            parent_hash: H256::ZERO,
            tx_root: H256::ZERO,
            receipts_root: H256::ZERO,
            state_root: staged.root,
            tx_count: 4,
            proposer,
        };
        let hashes: Vec<H256> = out.included.iter().map(|t| t.hash).collect();
        let block = Block {
            header,
            txs: out.included.iter().map(|t| t.tx.clone()).collect(),
        };
        store
            .commit_block(BlockCommit {
                block: &block,
                tx_hashes: &hashes,
                receipts: &out.receipts,
                certificate: &Certificate::default(),
                state: &staged,
                filters: Default::default(),
                block_events: &[],
            })
            .unwrap();
        let mut everyone = a.clone();
        everyone.push(fresh);
        everyone.push(proposer);
        assert_eq!(total(&store, &everyone), 3_000_000_000);
        assert_eq!(total(&store, &[proposer]), fees);
        let acct0 = decode_account(&store.get(&account_key(&a[0])).unwrap().unwrap()).unwrap();
        assert_eq!(acct0.nonce, 2);
        assert_eq!(
            acct0.balance,
            1_000_000_000 - 507 - out.receipts[0].fee - out.receipts[1].fee
        );
        let acct2 = decode_account(&store.get(&account_key(&a[2])).unwrap().unwrap()).unwrap();
        assert_eq!(acct2.nonce, 1);
        assert_eq!(acct2.balance, 1_000_000_000 - out.receipts[3].fee);
    }

    #[test]
    fn a_block_run_in_two_parts_equals_one_run() {
        let (_d, store, ex, keys, proposer) = setup();
        let a: Vec<Address> = keys
            .iter()
            .map(|k| Address::from_public_key(SuiteId::Standard, k.public_key()))
            .collect();
        let txs = vec![
            transfer(&keys[0], 0, a[1], 500),
            transfer(&keys[1], 0, a[2], 40),
            transfer(&keys[0], 1, Address([0xee; 20]), 7),
            transfer(&keys[0], 9, a[1], 1), // bad nonce: dropped
            transfer(&keys[1], 1, a[0], 3),
            transfer(&keys[2], 0, a[0], 10_000_000_000), // included, failed
            transfer(&keys[0], 2, a[2], 11),
        ];
        let e = env(1, proposer);
        let whole = ex.execute(&store, &e, txs.clone(), Mode::Propose).unwrap();
        // The second part reads what the first wrote: keys[0]'s nonce and
        // the balances of a[1] and a[2].
        let first = ex
            .execute(&store, &e, txs[..3].to_vec(), Mode::Propose)
            .unwrap();
        let parts = ex
            .execute_after(&store, &e, first, txs[3..].to_vec())
            .unwrap();
        let hashes = |o: &Outcome| o.included.iter().map(|t| t.hash).collect::<Vec<_>>();
        assert_eq!(hashes(&parts), hashes(&whole));
        assert_eq!(parts.receipts, whole.receipts);
        assert_eq!(parts.receipts[4].index, 4);
        assert_eq!(parts.changes, whole.changes);
        assert_eq!(parts.touched, whole.touched);
        assert_eq!(parts.dropped.len(), 1);
        assert_eq!(parts.dropped[0].0, whole.dropped[0].0);
    }

    #[test]
    fn verify_mode_rejects_bad_blocks() {
        let (_d, store, ex, keys, proposer) = setup();
        let bad_nonce = vec![transfer(&keys[0], 3, proposer, 1)];
        assert!(matches!(
            ex.execute(&store, &env(1, proposer), bad_nonce, Mode::Verify),
            Err(ExecutionError::InvalidTx {
                reason: InclusionError::BadNonce { .. },
                ..
            })
        ));
        let mut forged = transfer(&keys[0], 0, proposer, 1);
        forged.tx.signature[0] ^= 1;
        assert!(matches!(
            ex.execute(&store, &env(1, proposer), vec![forged], Mode::Verify),
            Err(ExecutionError::InvalidTx {
                reason: InclusionError::BadSignature,
                ..
            })
        ));
        // A caller vouching for a signature skips its check; nobody else does.
        let mut vouched = transfer(&keys[1], 0, proposer, 1);
        vouched.tx.signature[0] ^= 1;
        let h = vouched.hash;
        assert!(ex
            .verify_block(
                &store,
                &env(1, proposer),
                vec![vouched.clone()],
                Mode::Verify,
                |x| *x == h
            )
            .is_ok());
        assert!(ex
            .verify_block(
                &store,
                &env(1, proposer),
                vec![vouched],
                Mode::Verify,
                |_| false
            )
            .is_err());
        let ok = ex
            .execute(
                &store,
                &env(1, proposer),
                vec![transfer(&keys[0], 0, proposer, 1)],
                Mode::Verify,
            )
            .unwrap();
        assert_eq!(ok.receipts.len(), 1);
    }

    fn commit_outcome(store: &ChainStore, height: u64, proposer: Address, out: Outcome) {
        let staged = store.stage(out.changes).unwrap();
        let header = BlockHeader {
            chain_id: 9,
            height,
            timestamp_ms: 0,
            parent_hash: H256::ZERO,
            tx_root: H256::ZERO,
            receipts_root: H256::ZERO,
            state_root: staged.root,
            tx_count: 0,
            proposer,
        };
        let block = Block {
            header,
            txs: vec![],
        };
        store
            .commit_block(BlockCommit {
                block: &block,
                tx_hashes: &[],
                receipts: &[],
                certificate: &Certificate::default(),
                state: &staged,
                filters: Default::default(),
                block_events: &[],
            })
            .unwrap();
    }

    #[test]
    fn validator_set_changes_need_a_quorum_of_the_current_set() {
        let (_d, store, ex, keys, proposer) = setup();
        let v = Keypair::from_seed(SuiteId::Standard, b"v");
        let w = Keypair::from_seed(SuiteId::Standard, b"w");
        let spec_of = |k: &Keypair, name: &str| ValidatorSpec {
            name: name.into(),
            public_key: k.public_key().to_vec(),
        };
        let current = read_validator_set(&StateOverlay::new(&store)).unwrap();
        assert_eq!(current.version, 0);
        assert_eq!(current.validators, vec![spec_of(&v, "v")]);
        let next = vec![spec_of(&v, "v"), spec_of(&w, "w")];
        let approve = |k: &Keypair, set: &ValidatorSet, next: &[ValidatorSpec]| {
            tongtian_types::CertificateSignature {
                public_key: k.public_key().to_vec(),
                signature: k.sign(&set.change_bytes(9, next)),
            }
        };
        let change = |nonce: u64, next: Vec<ValidatorSpec>, approvals| {
            let tx = Transaction {
                chain_id: 9,
                nonce,
                gas_limit: 100_000,
                gas_price: 1,
                action: membership::MembershipMsg::SetValidators {
                    validators: next,
                    approvals,
                }
                .action(),
            }
            .sign(&keys[0]);
            CheckedTx::new(tx, SuiteId::Standard)
        };
        let code = |out: &Outcome, i: usize| match &out.receipts[i].status {
            TxStatus::Failed { code, .. } => code.clone(),
            TxStatus::Success => "success".into(),
        };
        // An outsider's approval does not count; the current validator's does.
        let good = approve(&v, &current, &next);
        let txs = vec![
            change(0, next.clone(), vec![approve(&w, &current, &next)]),
            change(1, vec![], vec![good.clone()]),
            change(
                2,
                vec![spec_of(&v, "v"), spec_of(&v, "again")],
                vec![good.clone()],
            ),
            change(3, next.clone(), vec![good.clone()]),
        ];
        let out = ex
            .execute(&store, &env(1, proposer), txs, Mode::Propose)
            .unwrap();
        assert_eq!(code(&out, 0), "insufficient_approvals");
        assert_eq!(code(&out, 1), "empty_validator_set");
        assert_eq!(code(&out, 2), "duplicate_validator");
        assert_eq!(code(&out, 3), "success");
        assert_eq!(out.receipts[3].events[0].name, "validators_changed");
        commit_outcome(&store, 1, proposer, out);
        let set = read_validator_set(&StateOverlay::new(&store)).unwrap();
        assert_eq!((set.version, set.validators.clone()), (1, next.clone()));
        // Replaying the version-0 approval cannot change the set again, and
        // two members now need two approvals (quorum of 2 is 2).
        let shrink = vec![spec_of(&w, "w")];
        let txs = vec![
            change(4, shrink.clone(), vec![good.clone()]),
            change(5, shrink.clone(), vec![approve(&v, &set, &shrink)]),
            change(
                6,
                shrink.clone(),
                vec![approve(&v, &set, &shrink), approve(&w, &set, &shrink)],
            ),
        ];
        let out = ex
            .execute(&store, &env(2, proposer), txs, Mode::Propose)
            .unwrap();
        assert_eq!(code(&out, 0), "insufficient_approvals");
        assert_eq!(code(&out, 1), "insufficient_approvals");
        assert_eq!(code(&out, 2), "success");
    }

    /// A test module: a counter with a genesis start, a failing message,
    /// a fee-free message, a list to scan and an authorize rule.
    #[derive(Debug)]
    struct Counter;

    #[derive(borsh::BorshSerialize, borsh::BorshDeserialize)]
    enum CounterMsg {
        Add(u64),
        FailAfterWriting,
        FreeAdd(u64),
    }

    impl Module for Counter {
        fn id(&self) -> &'static str {
            "counter"
        }
        fn genesis(
            &self,
            state: &mut module::ModuleState<'_, '_>,
            _spec: &ChainSpec,
            section: Option<&serde_json::Value>,
        ) -> module::ModuleResult<()> {
            let start = section
                .and_then(|s| s.get("start"))
                .and_then(|v| v.as_u64())
                .ok_or_else(|| ModuleError::new("bad_genesis", "counter needs `start`"))?;
            state.set_typed(b"n", &start);
            Ok(())
        }
        fn execute(
            &self,
            ctx: &mut module::ModuleCtx<'_, '_>,
            msg: &[u8],
        ) -> module::ModuleResult<Vec<u8>> {
            let msg: CounterMsg =
                borsh::from_slice(msg).map_err(|e| ModuleError::bad_message("counter", e))?;
            let n: u64 = ctx.state.get_typed(b"n")?.unwrap_or(0);
            match msg {
                CounterMsg::Add(k) | CounterMsg::FreeAdd(k) => {
                    let next = n + k;
                    ctx.state.set_typed(b"n", &next);
                    ctx.state.set(format!("item/{next:04}").as_bytes(), vec![1]);
                    ctx.emit("added", vec![("n".into(), next.to_string())]);
                    Ok(next.to_le_bytes().to_vec())
                }
                CounterMsg::FailAfterWriting => {
                    ctx.state.set_typed(b"n", &999u64);
                    Err(ModuleError::new("counter_refused", "always fails").into())
                }
            }
        }
        fn query(
            &self,
            state: &mut module::ModuleState<'_, '_>,
            path: &str,
            _params: &BTreeMap<String, String>,
        ) -> module::ModuleResult<serde_json::Value> {
            match path {
                "n" => Ok(serde_json::json!(state.get_typed::<u64>(b"n")?)),
                "items" => {
                    let items: Vec<String> = state
                        .scan(b"item/", None, 100)?
                        .into_iter()
                        .map(|(k, _)| String::from_utf8(k).unwrap())
                        .collect();
                    Ok(serde_json::json!(items))
                }
                _ => Err(ModuleError::new("unknown_query", path).into()),
            }
        }
        fn fee_policy(
            &self,
            _state: &mut module::ModuleState<'_, '_>,
            _tx: &CheckedTx,
            msg: &[u8],
        ) -> FeePolicy {
            match borsh::from_slice::<CounterMsg>(msg) {
                Ok(CounterMsg::FreeAdd(_)) => FeePolicy::Free,
                _ => FeePolicy::Charged,
            }
        }
        fn authorize(
            &self,
            _state: &mut module::ModuleState<'_, '_>,
            tx: &CheckedTx,
            _fee: FeePolicy,
        ) -> module::ModuleResult<()> {
            match &tx.tx.tx.action {
                Action::Transfer { memo, .. } if memo == b"blocked" => {
                    Err(ModuleError::new("not_allowed", "blocked memo").into())
                }
                _ => Ok(()),
            }
        }
        fn end_block(
            &self,
            state: &mut module::ModuleState<'_, '_>,
            block: &BlockEnv,
        ) -> module::ModuleResult<Vec<Event>> {
            state.set_typed(b"last_block", &block.height);
            Ok(Vec::new())
        }
    }

    #[test]
    fn modules_get_one_action_their_own_prefix_phases_and_hooks() {
        let keys: Vec<Keypair> = (0..2)
            .map(|i| Keypair::from_seed(SuiteId::Standard, &[i]))
            .collect();
        let v = Keypair::from_seed(SuiteId::Standard, b"v");
        let proposer = Address::from_public_key(SuiteId::Standard, v.public_key());
        let mut spec = spec(&keys, &v);
        // A section for a module the chain does not run is refused.
        spec.modules.insert("nosuch", serde_json::json!({}));
        let ex = Executor::new(spec.clone()).with_module(std::sync::Arc::new(Counter));
        assert!(ex.genesis_changes().is_err());
        spec.modules = Default::default();
        spec.modules
            .insert("counter", serde_json::json!({"start": 5}));
        let ex = Executor::new(spec).with_module(std::sync::Arc::new(Counter));
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("c.redb"), SuiteId::Standard).unwrap();
        let genesis = Outcome {
            changes: ex.genesis_changes().unwrap(),
            ..Outcome::default()
        };
        commit_outcome(&store, 0, proposer, genesis);
        let q = |store: &ChainStore, path: &str| {
            ex.query_module(store, "counter", path, &BTreeMap::new())
                .unwrap()
                .unwrap()
        };
        assert_eq!(q(&store, "n"), serde_json::json!(5));
        // The module's key lives under its prefix only.
        assert!(store.get(b"mod/counter/n").unwrap().is_some());
        assert!(store.get(b"n").unwrap().is_none());

        let sender = Address::from_public_key(SuiteId::Standard, keys[0].public_key());
        let msg = |nonce: u64, m: &CounterMsg, module: &str| {
            let tx = Transaction {
                chain_id: 9,
                nonce,
                gas_limit: 100_000,
                gas_price: 1,
                action: Action::Module {
                    module: module.into(),
                    msg: borsh::to_vec(m).unwrap(),
                },
            }
            .sign(&keys[0]);
            CheckedTx::new(tx, SuiteId::Standard)
        };
        let mut blocked = transfer(&keys[1], 0, sender, 1);
        if let Action::Transfer { memo, .. } = &mut blocked.tx.tx.action {
            *memo = b"blocked".to_vec();
        }
        let blocked = CheckedTx::new(blocked.tx.tx.sign(&keys[1]), SuiteId::Standard);
        let txs = vec![
            msg(0, &CounterMsg::Add(2), "counter"),
            msg(1, &CounterMsg::FailAfterWriting, "counter"),
            msg(2, &CounterMsg::FreeAdd(3), "counter"),
            msg(3, &CounterMsg::Add(1), "nosuch"),
            blocked,
        ];
        let before = total(&store, &[sender]);
        let e = env(1, proposer);
        let out = ex.execute(&store, &e, txs, Mode::Propose).unwrap();
        let out = ex.finish_block(&store, &e, out).unwrap();
        let status = |i: usize| match &out.receipts[i].status {
            TxStatus::Failed { code, .. } => code.clone(),
            TxStatus::Success => "success".into(),
        };
        assert_eq!(status(0), "success");
        assert_eq!(out.receipts[0].output, 7u64.to_le_bytes().to_vec());
        assert_eq!(
            out.receipts[0].events[0].emitter,
            module::module_address("counter")
        );
        assert_eq!(status(1), "counter_refused");
        assert_eq!(status(2), "success");
        assert_eq!(out.receipts[2].fee, 0, "a fee-free message pays nothing");
        assert!(out.receipts[0].fee > 0);
        assert_eq!(status(3), "unknown_module");
        // Authorize kept the blocked transfer out of the block.
        assert_eq!(out.receipts.len(), 4);
        assert!(matches!(
            &out.dropped[0].2,
            InclusionError::Refused { module: "counter", code, .. } if code == "not_allowed"
        ));
        let fees: u128 = out.receipts.iter().map(|r| r.fee).sum();
        commit_outcome(&store, 1, proposer, out);
        // The failed message's write was undone; the others' kept.
        assert_eq!(q(&store, "n"), serde_json::json!(10));
        assert_eq!(
            q(&store, "items"),
            serde_json::json!(["item/0007", "item/0010"])
        );
        assert_eq!(total(&store, &[sender]), before - fees);
        // The end-block hook ran.
        assert!(store.get(b"mod/counter/last_block").unwrap().is_some());
        // Unknown modules and queries answer with their codes.
        let err = ex
            .query_module(&store, "nosuch", "n", &BTreeMap::new())
            .unwrap()
            .unwrap_err();
        assert_eq!(err.code, "unknown_module");
    }
}
