//! Solidity contracts on the Ethereum virtual machine.
//!
//! [`EvmVm`] runs [revm](https://github.com/bluealloy/revm) over Tongtian's
//! state: the EVM sees the same 20-byte accounts and balances as native
//! transfers, storage slots are `stor/` keys of the shared state tree, and
//! logs become receipt events named `log` (topics and data as attributes,
//! which `eth_getLogs` turns back into Ethereum logs).
//!
//! Every message is one revm transaction with fees switched off: the
//! executor has already reserved the fee and settles it from the gas used,
//! and nonces are the executor's to manage. Contracts on other VMs look like
//! code-less accounts from inside the EVM.
//!
//! The chain's native modules are precompiles at their addresses
//! ([`tongtian_execution::module::module_address`]):
//! - a `STATICCALL` (or `CALL`) whose input is the UTF-8 text of a module
//!   query (`validators`, `chains/trade`, `proposals/1`,
//!   `proposals?open=true`) returns the module's JSON answer;
//! - a `CALL` whose input is anything else: one of the module's Borsh
//!   messages (its first byte, the message's variant index, is below
//!   0x20, which no query text has) or an ABI call a module understands
//!   (such as the channel's `sendPacket`, whose arguments hold zero
//!   bytes), hands the message to the module with the calling contract as
//!   the caller, so a contract that is an organisation's admin can vote;
//!   it returns the module's output.
//!
//! Either reverts with the module's `code: message` when the module
//! refuses. A module's writes go straight to chain state, beside revm's
//! journal, so they cannot be undone frame by frame: each message taken
//! leaves a marker in revm's journal (a storage slot of the module's
//! address, never written to state), and if a frame that sent one reverts
//! while the transaction goes on, the marker is gone and the whole
//! transaction fails with `module_write_reverted` instead, undoing
//! everything. Native tokens a module moves (escrow taken from the calling
//! contract, a payout) are mirrored into revm's view of the accounts it
//! has loaded, and the module sees the caller's balance as revm does, so
//! value is neither lost nor made twice between the two. A message in a `STATICCALL`, or any call with a value,
//! reverts.

use parking_lot::Mutex;
use revm::bytecode::Bytecode;
use revm::context::result::{EVMError, ExecutionResult, HaltReason, Output};
use revm::context::transaction::{AccessList, AccessListItem};
use revm::context::{BlockEnv as RevmBlock, CfgEnv, Context, TxEnv};
use revm::database_interface::DBErrorMarker;
use revm::primitives::hardfork::SpecId;
use revm::primitives::{Address as EAddr, Bytes, TxKind, B256, KECCAK_EMPTY, U256};
use revm::state::AccountInfo;
use revm::{Database, ExecuteEvm, MainBuilder, MainContext};
use std::collections::HashMap;
use std::sync::Arc;
use tongtian_execution::vm::{CallResult, CodeInfo, Host, Message, Vm, VmFailure};
use tongtian_execution::ExecutionError;
use tongtian_types::eth::{BloomBuilder, LogsBloom};
use tongtian_types::{Account, Address, Event, VmKind, H256};

pub mod abi;

/// Name of the events EVM logs become.
pub const LOG_EVENT: &str = "log";

/// Ethereum's precompiles plus the chain's modules as precompiles.
struct WithModules {
    eth: revm::handler::EthPrecompiles,
    warm: revm::primitives::AddressSet,
    modules: Vec<EAddr>,
    /// Module messages taken so far in this transaction (each left the
    /// marker slot with this number).
    writes: u64,
}

/// Whether a module's input is a message (Borsh, variant index first, or
/// an ABI call) rather than the text of a query: query text is UTF-8 with
/// no control characters.
fn is_message(input: &[u8]) -> bool {
    input.iter().any(|b| *b < 0x20) || std::str::from_utf8(input).is_err()
}

impl WithModules {
    /// Hand a module message from the calling contract to the module, and
    /// mark it in revm's journal (see the crate docs).
    fn send_message<'a, 'h, 'o: 'h, 's: 'o, CTX>(
        &mut self,
        context: &mut CTX,
        inputs: &revm::interpreter::CallInputs,
        input: Vec<u8>,
        gas: revm::interpreter::Gas,
    ) -> Result<Option<revm::interpreter::InterpreterResult>, String>
    where
        CTX: revm::context_interface::ContextTr<Db = HostDb<'a, 'h, 'o, 's>>,
    {
        use revm::context_interface::{JournalTr, Transaction};
        use revm::interpreter::{InstructionResult, InterpreterResult};
        let revert = |text: String| {
            InterpreterResult::new(
                InstructionResult::Revert,
                Bytes::from(text.into_bytes()),
                gas,
            )
        };
        if inputs.is_static {
            return Ok(Some(revert(
                "a module message changes state: send it with CALL, not STATICCALL".into(),
            )));
        }
        let origin = taddr(&context.tx().caller());
        let caller = taddr(&inputs.caller);
        // The module works on chain state, which does not yet hold what
        // the EVM moved in this transaction: give it the caller's balance
        // as revm sees it.
        let Ok(seen) = context.journal_mut().load_account(inputs.caller) else {
            return Err("cannot read the caller".into());
        };
        let revm_balance = u128_of(seen.data.info.balance);
        {
            let db = context.db_mut();
            match db.host.account(&caller) {
                Ok(mut acct) => {
                    acct.balance = revm_balance;
                    db.host.set_account(caller, acct);
                }
                Err(e) => {
                    db.error = Some(e);
                    return Err("state read failed".into());
                }
            }
        }
        let msg = Message {
            caller,
            origin,
            to: taddr(&inputs.bytecode_address),
            value: 0,
            input,
            gas_limit: tongtian_execution::vm::MODULE_CALL_GAS,
            gas_price: 0,
            depth: 1,
            access_list: Vec::new(),
        };
        let db = context.db_mut();
        let cp = db.host.checkpoint();
        let result = match db.host.call(&msg) {
            Ok(r) => r,
            Err(e) => {
                db.error = Some(e);
                return Err("module message failed".into());
            }
        };
        // Balances the module moved, for accounts revm has already read
        // (the others it will read as the module left them).
        let moved: Vec<(Address, u128, u128)> = if result.status.is_ok() {
            match db.host.balance_changes_since(cp) {
                Ok(m) => m
                    .into_iter()
                    .filter(|(a, _, _)| db.loaded.contains(a) && !self.modules.contains(&eaddr(a)))
                    .collect(),
                Err(e) => {
                    db.error = Some(e);
                    return Err("state read failed".into());
                }
            }
        } else {
            Vec::new()
        };
        let sink = inputs.bytecode_address;
        for (a, before, after) in moved {
            let journal = context.journal_mut();
            let ok = if after > before {
                journal
                    .balance_incr(eaddr(&a), U256::from(after - before))
                    .is_ok()
            } else {
                journal
                    .transfer(eaddr(&a), sink, U256::from(before - after))
                    .map(|e| e.is_none())
                    .unwrap_or(false)
            };
            if !ok {
                return Err("cannot mirror a module's balance change".into());
            }
        }
        match result.status {
            Ok(out) => {
                self.writes += 1;
                let module = inputs.bytecode_address;
                let journal = context.journal_mut();
                let loaded = journal.load_account(module).is_ok();
                if !loaded
                    || journal
                        .sstore(module, U256::from(self.writes), U256::from(1))
                        .is_err()
                {
                    return Err("cannot mark the module message".into());
                }
                Ok(Some(InterpreterResult::new(
                    InstructionResult::Return,
                    Bytes::from(out),
                    gas,
                )))
            }
            Err(VmFailure::Module(e)) => Ok(Some(revert(format!("{}: {}", e.code, e.message)))),
            Err(other) => Ok(Some(revert(other.to_string()))),
        }
    }
}

impl<'a, 'h, 'o: 'h, 's: 'o, CTX> revm::handler::PrecompileProvider<CTX> for WithModules
where
    CTX: revm::context_interface::ContextTr<Db = HostDb<'a, 'h, 'o, 's>>,
{
    type Output = revm::interpreter::InterpreterResult;

    fn set_spec(&mut self, spec: <CTX::Cfg as revm::context_interface::Cfg>::Spec) -> bool {
        let changed =
            <revm::handler::EthPrecompiles as revm::handler::PrecompileProvider<CTX>>::set_spec(
                &mut self.eth,
                spec,
            );
        self.warm = self.eth.warm_addresses().clone();
        self.warm.extend(self.modules.iter().copied());
        changed
    }

    fn run(
        &mut self,
        context: &mut CTX,
        inputs: &revm::interpreter::CallInputs,
    ) -> Result<Option<Self::Output>, String> {
        use revm::interpreter::{Gas, InstructionResult, InterpreterResult};
        if !self.modules.contains(&inputs.bytecode_address) {
            return revm::handler::PrecompileProvider::<CTX>::run(&mut self.eth, context, inputs);
        }
        let input = inputs.input.as_bytes(context).to_vec();
        let mut gas = Gas::new(inputs.gas_limit);
        let revert = |gas: Gas, text: String| {
            InterpreterResult::new(
                InstructionResult::Revert,
                Bytes::from(text.into_bytes()),
                gas,
            )
        };
        if !gas.record_regular_cost(tongtian_execution::vm::MODULE_CALL_GAS) {
            return Ok(Some(InterpreterResult::new(
                InstructionResult::PrecompileOOG,
                Bytes::new(),
                Gas::new_spent_with_reservoir(inputs.gas_limit, 0),
            )));
        }
        if !inputs.value.get().is_zero() {
            return Ok(Some(revert(
                gas,
                "a module takes no value from the EVM".into(),
            )));
        }
        if is_message(&input) {
            return self.send_message(context, inputs, input, gas);
        }
        let Ok(path) = std::str::from_utf8(&input) else {
            return Ok(Some(revert(
                gas,
                "a module query is UTF-8 text, e.g. `validators`".into(),
            )));
        };
        let to = taddr(&inputs.bytecode_address);
        let db = context.db_mut();
        match db.host.query_module_at(&to, path) {
            Ok(Some(Ok(json))) => Ok(Some(InterpreterResult::new(
                InstructionResult::Return,
                Bytes::from(json),
                gas,
            ))),
            Ok(Some(Err(e))) => Ok(Some(revert(gas, format!("{}: {}", e.code, e.message)))),
            Ok(None) => Ok(Some(revert(gas, "no module here".into()))),
            Err(e) => {
                db.error = Some(e);
                Err("state read failed".into())
            }
        }
    }

    fn warm_addresses(&self) -> &revm::primitives::AddressSet {
        &self.warm
    }

    fn contains(&self, address: &EAddr) -> bool {
        self.warm.contains(address)
    }
}

/// The EVM. Keeps analysed bytecode by code hash across calls.
#[derive(Default)]
pub struct EvmVm {
    code_cache: Mutex<HashMap<[u8; 32], Bytecode>>,
}

impl EvmVm {
    /// A new EVM.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
}

/// A state error raised inside revm's database callbacks.
#[derive(Debug, thiserror::Error)]
#[error("state read failed")]
struct DbError;

impl DBErrorMarker for DbError {}

/// revm's view of Tongtian state through a [`Host`].
struct HostDb<'a, 'h, 'o, 's> {
    host: &'h mut Host<'o, 's>,
    cache: &'a Mutex<HashMap<[u8; 32], Bytecode>>,
    error: Option<ExecutionError>,
    /// Accounts revm has read (its view of them may be ahead of chain
    /// state until the transaction ends).
    loaded: std::collections::HashSet<Address>,
}

fn eaddr(a: &Address) -> EAddr {
    EAddr::from(a.0)
}

fn taddr(a: &EAddr) -> Address {
    Address(a.0 .0)
}

impl HostDb<'_, '_, '_, '_> {
    fn fail<T>(&mut self, e: ExecutionError) -> Result<T, DbError> {
        self.error = Some(e);
        Err(DbError)
    }

    fn bytecode(&mut self, hash: &H256) -> Result<Bytecode, DbError> {
        if let Some(b) = self.cache.lock().get(&hash.0) {
            return Ok(b.clone());
        }
        let blob = match self.host.code_blob(hash) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(Bytecode::default()),
            Err(e) => return self.fail(e),
        };
        let code = Bytecode::new_raw(Bytes::from(blob));
        let mut cache = self.cache.lock();
        if cache.len() > 4096 {
            cache.clear();
        }
        cache.insert(hash.0, code.clone());
        Ok(code)
    }
}

impl Database for HostDb<'_, '_, '_, '_> {
    type Error = DbError;

    fn basic(&mut self, address: EAddr) -> Result<Option<AccountInfo>, DbError> {
        let a = taddr(&address);
        self.loaded.insert(a);
        let acct = match self.host.account(&a) {
            Ok(x) => x,
            Err(e) => return self.fail(e),
        };
        let info = match self.host.code_info(&a) {
            Ok(x) => x,
            Err(e) => return self.fail(e),
        };
        let (code_hash, code) = match info {
            Some(c) if c.vm == VmKind::Evm => (B256::from(c.hash.0), Some(self.bytecode(&c.hash)?)),
            _ => (KECCAK_EMPTY, None),
        };
        if acct == Account::default() && code.is_none() {
            return Ok(None);
        }
        Ok(Some(AccountInfo {
            balance: U256::from(acct.balance),
            nonce: acct.nonce,
            code_hash,
            code,
            ..Default::default()
        }))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, DbError> {
        self.bytecode(&H256(code_hash.0))
    }

    fn storage(&mut self, address: EAddr, index: U256) -> Result<U256, DbError> {
        match self
            .host
            .storage(&taddr(&address), &index.to_be_bytes::<32>())
        {
            Ok(Some(v)) => Ok(U256::from_be_slice(&v)),
            Ok(None) => Ok(U256::ZERO),
            Err(e) => self.fail(e),
        }
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, DbError> {
        // revm asks only within the last 256 blocks; those are committed,
        // so every validator answers the same.
        match self.host.block_hash(number) {
            Ok(h) => Ok(B256::from(h.map_or([0; 32], |h| h.0))),
            Err(e) => self.fail(e),
        }
    }
}

fn u128_of(v: U256) -> u128 {
    u128::try_from(v).unwrap_or(u128::MAX)
}

/// Turn an EVM log into a receipt event: `topics` is the topics as
/// 0x-prefixed hex joined by commas, `data` the data as 0x-prefixed hex.
pub fn log_event(address: &EAddr, topics: &[B256], data: &[u8]) -> Event {
    let mut joined = String::with_capacity(topics.len() * 67);
    for (i, t) in topics.iter().enumerate() {
        if i > 0 {
            joined.push(',');
        }
        joined.push_str(&const_hex::encode_prefixed(t));
    }
    Event {
        emitter: taddr(address),
        name: LOG_EVENT.into(),
        attributes: vec![
            ("topics".into(), joined),
            ("data".into(), const_hex::encode_prefixed(data)),
        ],
    }
}

/// The topics of an event made by [`log_event`] (none for other events or
/// malformed attributes).
pub fn log_topics(e: &Event) -> Vec<[u8; 32]> {
    if e.name != LOG_EVENT {
        return Vec::new();
    }
    let Some((_, joined)) = e.attributes.iter().find(|(n, _)| n == "topics") else {
        return Vec::new();
    };
    joined
        .split(',')
        .filter_map(|t| const_hex::decode_to_array::<_, 32>(t).ok())
        .collect()
}

/// Ethereum's logs bloom of the EVM logs among `events` (other events are
/// not Ethereum logs and set nothing). A block's logs repeat addresses and
/// topics (a token's address, its `Transfer` topic), so each distinct item
/// is hashed once.
pub fn logs_bloom<'a>(events: impl IntoIterator<Item = &'a Event>) -> LogsBloom {
    let mut bloom = BloomBuilder::default();
    for e in events.into_iter().filter(|e| e.name == LOG_EVENT) {
        bloom.add(&e.emitter.0);
        for t in log_topics(e) {
            bloom.add(&t);
        }
    }
    bloom.finish()
}

impl EvmVm {
    fn run(
        &self,
        host: &mut Host<'_, '_>,
        msg: &Message,
        kind: TxKind,
        data: Vec<u8>,
    ) -> Result<CallResult, ExecutionError> {
        let create = kind.is_create();
        // Ethereum's intrinsic gas, which revm charges on top of the
        // message's own gas (the executor has already charged it).
        let overhead = tongtian_types::eth::intrinsic_gas(&data, create, &msg.access_list);
        let caller = msg.caller;
        let caller_nonce = host.account(&caller)?.nonce;
        let mut cfg = CfgEnv::new_with_spec(SpecId::PRAGUE);
        cfg.chain_id = host.chain.chain_id;
        cfg.tx_chain_id_check = false;
        cfg.disable_nonce_check = true;
        cfg.disable_base_fee = true;
        cfg.disable_eip3607 = true;
        cfg.disable_block_gas_limit = true;
        cfg.tx_gas_limit_cap = Some(u64::MAX);
        let block = RevmBlock {
            number: U256::from(host.block.height),
            beneficiary: eaddr(&host.block.proposer),
            timestamp: U256::from(host.block.timestamp_ms / 1000),
            ..Default::default()
        };
        let tx = TxEnv {
            caller: eaddr(&caller),
            gas_limit: msg.gas_limit.saturating_add(overhead),
            gas_price: 0,
            kind,
            value: U256::from(msg.value),
            data: Bytes::from(data),
            nonce: caller_nonce,
            chain_id: None,
            // revm reads the access list of typed transactions only.
            tx_type: if msg.access_list.is_empty() { 0 } else { 1 },
            access_list: AccessList(
                msg.access_list
                    .iter()
                    .map(|(a, keys)| AccessListItem {
                        address: eaddr(a),
                        storage_keys: keys.iter().map(|k| B256::from(*k)).collect(),
                    })
                    .collect(),
            ),
            ..Default::default()
        };
        let (outcome, state) = {
            let db = HostDb {
                host: &mut *host,
                cache: &self.code_cache,
                error: None,
                loaded: Default::default(),
            };
            let modules: Vec<EAddr> = db.host.module_addresses().iter().map(eaddr).collect();
            let mut evm = Context::mainnet()
                .with_db(db)
                .with_cfg(cfg)
                .with_block(block)
                .build_mainnet()
                .with_precompiles(WithModules {
                    eth: revm::handler::EthPrecompiles::new(SpecId::PRAGUE),
                    warm: Default::default(),
                    modules,
                    writes: 0,
                });
            let res = evm.transact(tx);
            if let Some(e) = evm.ctx.journaled_state.database.error.take() {
                return Err(e);
            }
            let writes = evm.precompiles.writes;
            match res {
                Ok(r) => (Ok((r.result, writes)), r.state),
                Err(e) => (Err(e), Default::default()),
            }
        };
        let module_addrs: Vec<EAddr> = host.module_addresses().iter().map(eaddr).collect();
        let result = match outcome {
            Err(EVMError::Transaction(e)) => {
                let f = if e.to_string().contains("funds") {
                    VmFailure::InsufficientBalance
                } else {
                    VmFailure::Trap(e.to_string())
                };
                return Ok(CallResult::failed(f, msg.gas_limit));
            }
            Err(e) => {
                return Ok(CallResult::failed(
                    VmFailure::Trap(e.to_string()),
                    msg.gas_limit,
                ))
            }
            Ok((r, writes)) => {
                // Every module message taken must still be marked: a frame
                // that sent one and then reverted cannot be undone alone.
                let kept: usize = module_addrs
                    .iter()
                    .filter_map(|m| state.get(m))
                    .map(|acct| {
                        acct.storage
                            .values()
                            .filter(|v| v.present_value == U256::from(1))
                            .count()
                    })
                    .sum();
                if r.is_success() && kept as u64 != writes {
                    return Ok(CallResult::failed(
                        VmFailure::Trap(
                            "module_write_reverted: a frame that sent a module message reverted while the transaction went on; module changes are not undone frame by frame, so the whole transaction fails".into(),
                        ),
                        r.tx_gas_used().saturating_sub(overhead).min(msg.gas_limit),
                    ));
                }
                r
            }
        };
        let used = result
            .tx_gas_used()
            .saturating_sub(overhead)
            .min(msg.gas_limit);
        let (status, logs) = match result {
            ExecutionResult::Success { output, logs, .. } => {
                let out = match output {
                    Output::Call(b) => b.to_vec(),
                    Output::Create(_, _) => Vec::new(),
                };
                (Ok(out), logs)
            }
            ExecutionResult::Revert { output, .. } => {
                return Ok(CallResult::failed(VmFailure::Revert(output.to_vec()), used))
            }
            ExecutionResult::Halt { reason, .. } => {
                let f = match reason {
                    HaltReason::OutOfGas(_) => VmFailure::OutOfGas,
                    other => VmFailure::Trap(format!("{other:?}")),
                };
                return Ok(CallResult::failed(f, used));
            }
        };
        for (address, account) in state {
            // Modules keep their own state; their marker slots are not it.
            if !account.is_touched() || module_addrs.contains(&address) {
                continue;
            }
            let a = taddr(&address);
            if account.is_selfdestructed() {
                host.set_account(a, Account::default());
                continue;
            }
            let next = Account {
                balance: u128_of(account.info.balance),
                nonce: account.info.nonce,
            };
            if host.account(&a)? != next {
                host.set_account(a, next);
            }
            if account.is_created() {
                if let Some(code) = &account.info.code {
                    let bytes = code.original_bytes();
                    if !bytes.is_empty() {
                        host.set_code(&a, VmKind::Evm, &bytes);
                    }
                }
            }
            for (slot, v) in account.changed_storage_slots() {
                let value = (!v.present_value.is_zero())
                    .then(|| v.present_value.to_be_bytes::<32>().to_vec());
                host.set_storage(&a, &slot.to_be_bytes::<32>(), value);
            }
        }
        // Nonces are the executor's: undo revm's bump of the caller's.
        let mut c = host.account(&caller)?;
        if c.nonce != caller_nonce {
            c.nonce = caller_nonce;
            host.set_account(caller, c);
        }
        for log in logs {
            host.emit(log_event(&log.address, log.data.topics(), &log.data.data));
        }
        Ok(CallResult {
            status,
            gas_used: used,
        })
    }
}

impl Vm for EvmVm {
    fn kind(&self) -> VmKind {
        VmKind::Evm
    }

    fn create(
        &self,
        host: &mut Host<'_, '_>,
        msg: &Message,
        code: &[u8],
    ) -> Result<CallResult, ExecutionError> {
        let mut init = code.to_vec();
        init.extend_from_slice(&msg.input);
        self.run(host, msg, TxKind::Create, init)
    }

    fn call(
        &self,
        host: &mut Host<'_, '_>,
        msg: &Message,
        _code: &CodeInfo,
    ) -> Result<CallResult, ExecutionError> {
        self.run(host, msg, TxKind::Call(eaddr(&msg.to)), msg.input.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tongtian_types::eth::BloomBits;

    #[test]
    fn a_blocks_logs_bloom_holds_each_logs_address_and_topics() {
        let token = EAddr::repeat_byte(0x11);
        let (t0, t1, t2) = (
            B256::repeat_byte(0xdd),
            B256::repeat_byte(0x01),
            B256::repeat_byte(0x02),
        );
        let first = log_event(&token, &[t0, t1], b"x");
        let second = log_event(&token, &[t0, t2], &[]);
        assert_eq!(log_topics(&first), vec![t0.0, t1.0]);
        assert_eq!(log_topics(&second), vec![t0.0, t2.0]);
        // A WASM event is not an Ethereum log: it sets nothing, whatever
        // its attributes say.
        let wasm = Event {
            emitter: Address([0x22; 20]),
            name: "transfer".into(),
            attributes: vec![("topics".into(), format!("{t1:#x}"))],
        };
        assert!(log_topics(&wasm).is_empty());
        assert_eq!(logs_bloom([&wasm]), LogsBloom::default());

        let bloom = logs_bloom([&first, &wasm, &second]);
        for item in [
            token.as_slice(),
            t0.as_slice(),
            t1.as_slice(),
            t2.as_slice(),
        ] {
            assert!(bloom.may_contain(&BloomBits::of(item)));
        }
        // Exactly the items' bits, each item once: the same as adding them
        // one by one.
        let mut want = LogsBloom::default();
        for item in [
            token.as_slice(),
            t0.as_slice(),
            t1.as_slice(),
            t2.as_slice(),
        ] {
            want.accrue(BloomBits::of(item));
        }
        assert_eq!(bloom, want);
        assert!(!bloom.may_contain(&BloomBits::of(&[0x22; 20])));
    }
}
