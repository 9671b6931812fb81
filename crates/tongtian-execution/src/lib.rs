//! Deterministic execution of ordered transactions over the state.
//!
//! The [`Executor`] applies a block's transactions, in order, to a
//! [`StateOverlay`] on top of a [`StateStore`], producing receipts and the
//! set of state changes; the caller stages those changes for a new state
//! root and commits them with the block. The executor never touches the
//! database directly.
//!
//! Native modules today: accounts and transfers with gas fees. Every state
//! key is namespaced (`acct/` + address) so later modules and VMs share the
//! one 20-byte address space.

#[cfg(feature = "testing")]
pub mod testing;
pub mod vm;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use tongtian_crypto::suite;
use tongtian_storage::{StateChanges, StateStore, StorageError};
use tongtian_types::codec::{decode, encode};
use tongtian_types::eth::{create_address, AccessList, EthTx};
use tongtian_types::{
    verify_signatures, Account, Action, Address, ChainSpec, CheckedTx, Event, Receipt,
    SignedTransaction, TxStatus, ValidatorSet, ValidatorSpec, VmKind, H256,
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
}

/// State key of an account.
pub fn account_key(a: &Address) -> Vec<u8> {
    let mut k = b"acct/".to_vec();
    k.extend_from_slice(&a.0);
    k
}

/// State key of the validator set.
pub const VALIDATORS_KEY: &[u8] = b"consensus/validators";

/// The validator set in (overlaid) state.
pub fn read_validator_set(overlay: &StateOverlay<'_>) -> Result<ValidatorSet, ExecutionError> {
    let bytes = overlay
        .get_raw(VALIDATORS_KEY)?
        .ok_or_else(|| ExecutionError::Corrupt("no validator set in state".into()))?;
    decode("validator set", &bytes).map_err(|e| ExecutionError::Corrupt(e.to_string()))
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
}

/// What a read-only call produced.
#[derive(Clone, Debug)]
pub struct Simulation {
    /// Output or failure, and gas used (intrinsic included).
    pub result: CallResult,
    /// Events it would emit.
    pub events: Vec<Event>,
}

impl Executor {
    /// An executor for a chain, with no virtual machines.
    pub fn new(spec: ChainSpec) -> Self {
        Executor {
            spec,
            vms: VmRegistry::default(),
        }
    }

    /// Enable a VM, if the chain spec allows it (else it is ignored).
    pub fn with_vm(mut self, vm: std::sync::Arc<dyn Vm>) -> Self {
        if self.spec.vms.contains(&vm.kind()) {
            self.vms.insert(vm);
        }
        self
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

    /// The genesis state: prefunded accounts.
    pub fn genesis_changes(&self) -> StateChanges {
        let mut changes: StateChanges = self
            .spec
            .accounts
            .iter()
            .map(|g| {
                (
                    account_key(&g.address),
                    Some(encode(&Account {
                        balance: g.balance,
                        nonce: 0,
                    })),
                )
            })
            .collect();
        let set = ValidatorSet {
            version: 0,
            validators: self.spec.validators.clone(),
        };
        changes.insert(VALIDATORS_KEY.to_vec(), Some(encode(&set)));
        changes
    }

    /// Check and apply a validator-set change; `Err` is the failed
    /// receipt's (code, message).
    fn set_validators(
        &self,
        overlay: &mut StateOverlay<'_>,
        next: &[ValidatorSpec],
        approvals: &[tongtian_types::CertificateSignature],
    ) -> Result<Result<Event, (String, String)>, ExecutionError> {
        let fail = |code: &str, message: String| Ok(Err((code.to_string(), message)));
        let current = read_validator_set(overlay)?;
        if next.is_empty() {
            return fail(
                "empty_validator_set",
                "a chain needs at least one validator".into(),
            );
        }
        let mut keys: Vec<&[u8]> = next.iter().map(|v| v.public_key.as_slice()).collect();
        keys.sort_unstable();
        keys.dedup();
        if keys.len() != next.len() {
            return fail(
                "duplicate_validator",
                "a key appears twice in the new set".into(),
            );
        }
        let s = suite(self.spec.suite);
        let probe = vec![0u8; s.signature_len()];
        if let Some(v) = next.iter().find(|v| {
            matches!(
                s.verify(&v.public_key, b"", &probe),
                Err(tongtian_crypto::CryptoError::InvalidPublicKey { .. })
            )
        }) {
            return fail(
                "invalid_validator_key",
                format!("{} has no valid {} key", v.name, self.spec.suite),
            );
        }
        let approved = current.approvals_valid(s, self.spec.chain_id, next, approvals);
        if approved < current.quorum() {
            return fail(
                "insufficient_approvals",
                format!(
                    "{approved} valid approvals of version {}, {} needed",
                    current.version,
                    current.quorum()
                ),
            );
        }
        let set = ValidatorSet {
            version: current.version + 1,
            validators: next.to_vec(),
        };
        overlay.set_raw(VALIDATORS_KEY.to_vec(), encode(&set));
        Ok(Ok(Event {
            emitter: Address::ZERO,
            name: "validators_changed".into(),
            attributes: vec![
                ("version".into(), set.version.to_string()),
                ("validators".into(), set.validators.len().to_string()),
            ],
        }))
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
        self.run(
            StateOverlay::new(store),
            block,
            Outcome::default(),
            txs,
            mode,
        )
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
        } = prior;
        let overlay = StateOverlay::resume(store, changes, touched);
        let out = Outcome {
            included,
            receipts,
            dropped,
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

    /// Apply one transaction: `Err(InclusionError)` leaves state untouched.
    fn apply(
        &self,
        overlay: &mut StateOverlay<'_>,
        block: &BlockEnv,
        index: u32,
        t: &CheckedTx,
    ) -> Result<Result<Receipt, InclusionError>, ExecutionError> {
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
        let mut sender = overlay.account(&t.sender)?;
        if sender.nonce != tx.nonce {
            return Ok(Err(InclusionError::BadNonce {
                expected: sender.nonce,
                got: tx.nonce,
            }));
        }
        let target = contract_target(t)?;
        // Contract calls reserve their whole gas limit up front (as in
        // Ethereum) and are refunded what they do not use.
        let reserved_gas = if target.is_some() {
            tx.gas_limit
        } else {
            intrinsic
        };
        let max_fee = reserved_gas as u128 * tx.gas_price as u128;
        if sender.balance < max_fee {
            return Ok(Err(InclusionError::CannotPayFee {
                balance: sender.balance,
                fee: max_fee,
            }));
        }
        // From here the transaction is included: fee and nonce always apply,
        // and the action's effects apply only if it succeeds.
        sender.balance -= max_fee;
        let mut output = Vec::new();
        let mut contract_address = None;
        let mut gas_used = intrinsic;
        let (status, events) = if let Some((target, access_list)) = target {
            overlay.set_account(t.sender, sender);
            let run = self.run_contract(overlay, block, t, intrinsic, target, access_list)?;
            gas_used = run.gas_used;
            contract_address = run.contract_address;
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
            let mut s = overlay.account(&t.sender)?;
            s.nonce = tx.nonce + 1;
            s.balance = s
                .balance
                .saturating_add((reserved_gas - gas_used) as u128 * tx.gas_price as u128);
            overlay.set_account(t.sender, s);
            (status, run.events)
        } else {
            sender.nonce += 1;
            overlay.set_account(t.sender, sender);
            self.apply_native(overlay, t)?
        };
        let fee = gas_used as u128 * tx.gas_price as u128;
        let mut p = overlay.account(&block.proposer)?;
        p.balance = p.balance.saturating_add(fee);
        overlay.set_account(block.proposer, p);
        Ok(Ok(Receipt {
            tx_hash: t.hash,
            height: block.height,
            index,
            sender: t.sender,
            status,
            gas_used,
            fee,
            events,
            output,
            contract_address,
        }))
    }

    /// The effects of a native action (fee and nonce already applied).
    fn apply_native(
        &self,
        overlay: &mut StateOverlay<'_>,
        t: &CheckedTx,
    ) -> Result<(TxStatus, Vec<Event>), ExecutionError> {
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
                    (TxStatus::Success, vec![event])
                }
            }
            Action::SetValidators {
                validators,
                approvals,
            } => match self.set_validators(overlay, validators, approvals)? {
                Ok(event) => (TxStatus::Success, vec![event]),
                Err((code, message)) => (TxStatus::Failed { code, message }, vec![]),
            },
            Action::Deploy { .. } | Action::Call { .. } | Action::Ethereum { .. } => {
                unreachable!("contract actions run in run_contract")
            }
        })
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
        let mut host = Host::new(overlay, block, &chain, &self.vms);
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
        Action::Transfer { .. } | Action::SetValidators { .. } => return Ok(None),
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
        let staged = store.stage(ex.genesis_changes()).unwrap();
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
                action: Action::SetValidators {
                    validators: next,
                    approvals,
                },
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
}
