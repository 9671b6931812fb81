//! The virtual-machine seam.
//!
//! A [`Vm`] runs contract code against a [`Host`]: the transaction's view of
//! state (with checkpoints for rollback), the block's context, the events
//! emitted so far, and the other VMs, so a contract on one VM can call a
//! contract on another. Both VMs share the one account space: a contract's
//! balance and nonce are ordinary [`Account`] records, its code is a
//! [`CodeInfo`] under `code/` plus a content-addressed blob, and its storage
//! lives under `stor/` + address + key.

use crate::{ExecutionError, StateOverlay};
use std::collections::HashMap;
use std::sync::Arc;
use tongtian_crypto::SuiteId;
use tongtian_types::codec::{decode, encode};
use tongtian_types::eth::AccessList;
use tongtian_types::{Account, Address, Event, VmKind, H256};

/// The block a transaction executes in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockEnv {
    /// Height.
    pub height: u64,
    /// Block time, milliseconds since the Unix epoch (the header's).
    pub timestamp_ms: u64,
    /// Proposer, who receives the fees.
    pub proposer: Address,
}

impl From<&tongtian_types::BlockHeader> for BlockEnv {
    /// The environment a block's header fixes for its transactions.
    fn from(h: &tongtian_types::BlockHeader) -> Self {
        BlockEnv {
            height: h.height,
            timestamp_ms: h.timestamp_ms,
            proposer: h.proposer,
        }
    }
}

/// Chain-wide facts a VM may read.
#[derive(Clone, Debug)]
pub struct ChainEnv {
    /// Chain id.
    pub chain_id: u64,
    /// The chain's crypto suite (contracts hash and verify with it).
    pub suite: SuiteId,
}

/// One call into a contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Immediate caller (an account or a contract).
    pub caller: Address,
    /// Account that signed the transaction.
    pub origin: Address,
    /// Callee, or for a creation the new contract's address.
    pub to: Address,
    /// Native tokens moved from caller to callee with the call.
    pub value: u128,
    /// Input: call data, or for a creation the constructor input.
    pub input: Vec<u8>,
    /// Gas available.
    pub gas_limit: u64,
    /// Price per gas the origin pays (for `GASPRICE`).
    pub gas_price: u64,
    /// Nesting depth, 0 for the transaction's own call.
    pub depth: u32,
    /// The transaction's EIP-2930 access list, for its own call (depth 0)
    /// into the EVM: paid for up front and warm from the start. Empty for
    /// nested calls and native transactions; the WASM VM ignores it.
    pub access_list: AccessList,
}

/// Why a call failed. Its effects are rolled back; gas used is still paid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VmFailure {
    /// The contract reverted, with data (EVM revert data, or a WASM
    /// contract's message).
    #[error("execution reverted")]
    Revert(Vec<u8>),
    /// Ran out of gas.
    #[error("out of gas")]
    OutOfGas,
    /// The code is not acceptable (malformed, non-deterministic, imports
    /// we do not provide, a start function, a missing entry point).
    #[error("invalid code: {0}")]
    InvalidCode(String),
    /// The contract trapped (unreachable, out of bounds, stack or memory
    /// exhausted) or the EVM halted.
    #[error("trap: {0}")]
    Trap(String),
    /// The VM named by the transaction is not enabled on this chain.
    #[error("the {0} vm is not enabled on this chain")]
    VmDisabled(VmKind),
    /// Calls nested too deeply.
    #[error("call depth limit exceeded")]
    DepthExceeded,
    /// The caller cannot pay the value.
    #[error("balance too low for the value sent")]
    InsufficientBalance,
    /// A contract already exists at the address.
    #[error("address already has code")]
    AddressTaken,
    /// A native module called at its address refused or failed.
    #[error("{}", .0.message)]
    Module(crate::module::ModuleError),
}

impl VmFailure {
    /// Stable machine-readable code, as in failed receipts.
    pub fn code(&self) -> &str {
        match self {
            VmFailure::Module(e) => &e.code,
            VmFailure::Revert(_) => "reverted",
            VmFailure::OutOfGas => "out_of_gas",
            VmFailure::InvalidCode(_) => "invalid_code",
            VmFailure::Trap(_) => "trap",
            VmFailure::VmDisabled(_) => "vm_disabled",
            VmFailure::DepthExceeded => "call_depth_exceeded",
            VmFailure::InsufficientBalance => "insufficient_funds",
            VmFailure::AddressTaken => "address_taken",
        }
    }

    /// A human-readable message, with a revert reason when one decodes.
    pub fn message(&self) -> String {
        match self {
            VmFailure::Revert(data) => match revert_reason(data) {
                Some(r) => format!("execution reverted: {r}"),
                None if data.is_empty() => "execution reverted".into(),
                None => format!("execution reverted (data 0x{})", hex::encode(data)),
            },
            other => other.to_string(),
        }
    }
}

/// The reason string of revert data: Solidity's `Error(string)`, or a WASM
/// contract's UTF-8 message.
pub fn revert_reason(data: &[u8]) -> Option<String> {
    const ERROR_SELECTOR: [u8; 4] = [0x08, 0xc3, 0x79, 0xa0];
    if data.len() >= 68 && data[..4] == ERROR_SELECTOR {
        let len = u64::from_be_bytes(data[60..68].try_into().ok()?) as usize;
        let s = data.get(68..68 + len)?;
        return String::from_utf8(s.to_vec()).ok();
    }
    if !data.is_empty() && data.len() <= 1024 {
        if let Ok(s) = std::str::from_utf8(data) {
            if s.chars().all(|c| !c.is_control()) {
                return Some(s.to_string());
            }
        }
    }
    None
}

/// What a call produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallResult {
    /// Success with output, or the failure.
    pub status: Result<Vec<u8>, VmFailure>,
    /// Gas used (at most the message's limit).
    pub gas_used: u64,
}

impl CallResult {
    /// A failure that used `gas_used`.
    pub fn failed(f: VmFailure, gas_used: u64) -> Self {
        CallResult {
            status: Err(f),
            gas_used,
        }
    }
}

/// Where a contract's code is, under `code/` + address.
#[derive(Clone, Debug, PartialEq, Eq, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct CodeInfo {
    /// The VM that runs it.
    pub vm: VmKind,
    /// Keccak-256 of the code (the key of its blob).
    pub hash: H256,
    /// Code size in bytes.
    pub len: u32,
}

/// A virtual machine.
pub trait Vm: Send + Sync {
    /// Which one.
    fn kind(&self) -> VmKind;

    /// Create a contract at `msg.to` from `code` and run its constructor
    /// with `msg.input`; on success the VM has stored the contract's code.
    /// The VM moves `msg.value` itself.
    fn create(
        &self,
        host: &mut Host<'_, '_>,
        msg: &Message,
        code: &[u8],
    ) -> Result<CallResult, ExecutionError>;

    /// Call the contract at `msg.to`, whose code is `code`. The VM moves
    /// `msg.value` itself.
    fn call(
        &self,
        host: &mut Host<'_, '_>,
        msg: &Message,
        code: &CodeInfo,
    ) -> Result<CallResult, ExecutionError>;
}

/// The VMs a chain enables.
#[derive(Clone, Default)]
pub struct VmRegistry {
    vms: HashMap<VmKind, Arc<dyn Vm>>,
}

impl std::fmt::Debug for VmRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.vms.keys()).finish()
    }
}

impl VmRegistry {
    /// Register a VM.
    pub fn insert(&mut self, vm: Arc<dyn Vm>) {
        self.vms.insert(vm.kind(), vm);
    }

    /// The VM of a kind, if enabled.
    pub fn get(&self, kind: VmKind) -> Option<&Arc<dyn Vm>> {
        self.vms.get(&kind)
    }
}

/// Deepest allowed call nesting.
pub const MAX_CALL_DEPTH: u32 = 64;

const CODE_PREFIX: &[u8] = b"code/";
const BLOB_PREFIX: &[u8] = b"blob/";
const STORAGE_PREFIX: &[u8] = b"stor/";

/// State key of a contract's [`CodeInfo`].
pub fn code_key(a: &Address) -> Vec<u8> {
    [CODE_PREFIX, &a.0].concat()
}

/// State key of a code blob.
pub fn blob_key(hash: &H256) -> Vec<u8> {
    [BLOB_PREFIX, &hash.0].concat()
}

/// State key of a contract storage slot.
pub fn storage_key(a: &Address, key: &[u8]) -> Vec<u8> {
    [STORAGE_PREFIX, &a.0, key].concat()
}

/// Gas a call of a native module costs (on top of the transaction's
/// intrinsic gas): a flat price, as Ethereum's precompiles have.
pub const MODULE_CALL_GAS: u64 = 20_000;

/// A transaction's view of the chain, handed to VMs.
pub struct Host<'o, 's> {
    overlay: &'o mut StateOverlay<'s>,
    /// The block.
    pub block: &'o BlockEnv,
    /// The chain.
    pub chain: &'o ChainEnv,
    vms: &'o VmRegistry,
    modules: Option<&'o crate::module::ModuleSet>,
    events: Vec<Event>,
}

impl<'o, 's> Host<'o, 's> {
    /// A host over `overlay`.
    pub fn new(
        overlay: &'o mut StateOverlay<'s>,
        block: &'o BlockEnv,
        chain: &'o ChainEnv,
        vms: &'o VmRegistry,
    ) -> Self {
        Host {
            overlay,
            block,
            chain,
            vms,
            modules: None,
            events: Vec::new(),
        }
    }

    /// Let contracts call the chain's native modules at their addresses.
    pub fn with_modules(mut self, modules: &'o crate::module::ModuleSet) -> Self {
        self.modules = Some(modules);
        self
    }

    /// The events emitted so far.
    pub fn into_events(self) -> Vec<Event> {
        self.events
    }

    /// Emit an event.
    pub fn emit(&mut self, e: Event) {
        self.events.push(e);
    }

    /// An account (default if absent).
    pub fn account(&mut self, a: &Address) -> Result<Account, ExecutionError> {
        self.overlay.account(a)
    }

    /// Replace an account.
    pub fn set_account(&mut self, a: Address, acct: Account) {
        self.overlay.set_account(a, acct)
    }

    /// Hash of the committed block at `height`, if any (for `BLOCKHASH`;
    /// the EVM asks only for the 256 blocks before this one).
    pub fn block_hash(&self, height: u64) -> Result<Option<H256>, ExecutionError> {
        self.overlay.block_hash(height)
    }

    /// A contract storage slot.
    pub fn storage(&self, a: &Address, key: &[u8]) -> Result<Option<Vec<u8>>, ExecutionError> {
        self.overlay.get_raw(&storage_key(a, key))
    }

    /// Write (or with `None`, delete) a contract storage slot.
    pub fn set_storage(&mut self, a: &Address, key: &[u8], value: Option<Vec<u8>>) {
        let k = storage_key(a, key);
        match value {
            Some(v) => self.overlay.set_raw(k, v),
            None => self.overlay.delete_raw(k),
        }
    }

    /// Where an address's code is, if it has any.
    pub fn code_info(&self, a: &Address) -> Result<Option<CodeInfo>, ExecutionError> {
        match self.overlay.get_raw(&code_key(a))? {
            Some(b) => decode("code info", &b)
                .map(Some)
                .map_err(|e| ExecutionError::Corrupt(e.to_string())),
            None => Ok(None),
        }
    }

    /// A code blob by hash.
    pub fn code_blob(&self, hash: &H256) -> Result<Option<Vec<u8>>, ExecutionError> {
        self.overlay.get_raw(&blob_key(hash))
    }

    /// Install code at an address.
    pub fn set_code(&mut self, a: &Address, vm: VmKind, code: &[u8]) -> CodeInfo {
        let info = CodeInfo {
            vm,
            hash: H256(tongtian_crypto::eth::keccak256(code)),
            len: code.len() as u32,
        };
        self.overlay.set_raw(blob_key(&info.hash), code.to_vec());
        self.overlay.set_raw(code_key(a), encode(&info));
        info
    }

    /// Move native tokens; `false` (and nothing moved) if `from` is short.
    pub fn transfer(
        &mut self,
        from: &Address,
        to: &Address,
        amount: u128,
    ) -> Result<bool, ExecutionError> {
        if amount == 0 || from == to {
            return Ok(self.account(from)?.balance >= amount);
        }
        let mut f = self.account(from)?;
        if f.balance < amount {
            return Ok(false);
        }
        f.balance -= amount;
        self.set_account(*from, f);
        let mut t = self.account(to)?;
        t.balance = t.balance.saturating_add(amount);
        self.set_account(*to, t);
        Ok(true)
    }

    /// A point to roll back to.
    pub fn checkpoint(&self) -> (usize, usize) {
        (self.overlay.checkpoint(), self.events.len())
    }

    /// Accounts whose balance changed since `cp`: address, then, now.
    pub fn balance_changes_since(
        &mut self,
        cp: (usize, usize),
    ) -> Result<Vec<(Address, u128, u128)>, ExecutionError> {
        self.overlay.balance_changes_since(cp.0)
    }

    /// Undo everything since `cp`.
    pub fn revert_to(&mut self, cp: (usize, usize)) {
        self.overlay.revert_to(cp.0);
        self.events.truncate(cp.1);
    }

    /// Run a message on whatever is at `msg.to`: a contract on its VM, or
    /// for an address without code, a plain value transfer. Effects of a
    /// failed call are rolled back here.
    pub fn call(&mut self, msg: &Message) -> Result<CallResult, ExecutionError> {
        if msg.depth > MAX_CALL_DEPTH {
            return Ok(CallResult::failed(VmFailure::DepthExceeded, 0));
        }
        let cp = self.checkpoint();
        if let Some(m) = self.modules.and_then(|ms| ms.at(&msg.to)).cloned() {
            let result = self.call_module(&*m, msg)?;
            if result.status.is_err() {
                self.revert_to(cp);
            }
            return Ok(result);
        }
        let result = match self.code_info(&msg.to)? {
            None => {
                let ok = self.transfer(&msg.caller, &msg.to, msg.value)?;
                CallResult {
                    status: if ok {
                        Ok(Vec::new())
                    } else {
                        Err(VmFailure::InsufficientBalance)
                    },
                    gas_used: 0,
                }
            }
            Some(info) => match self.vms.get(info.vm).cloned() {
                None => CallResult::failed(VmFailure::VmDisabled(info.vm), 0),
                Some(vm) => vm.call(self, msg, &info)?,
            },
        };
        if result.status.is_err() {
            self.revert_to(cp);
        }
        Ok(result)
    }

    /// Whether `a` is one of the chain's native modules (which the EVM
    /// serves as precompiles).
    pub fn is_module(&self, a: &Address) -> bool {
        self.modules.is_some_and(|ms| ms.at(a).is_some())
    }

    /// The module addresses of the chain.
    pub fn module_addresses(&self) -> Vec<Address> {
        self.modules
            .map(|ms| {
                ms.ids()
                    .iter()
                    .map(|id| crate::module::module_address(id))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A read-only query of the module at `a` (`path` as its query route
    /// takes it, e.g. `validators` or `chains/trade`): its JSON answer.
    /// `None` if no module lives at `a`.
    pub fn query_module_at(
        &mut self,
        a: &Address,
        path: &str,
    ) -> Result<Option<Result<Vec<u8>, crate::module::ModuleError>>, ExecutionError> {
        let Some(m) = self.modules.and_then(|ms| ms.at(a)).cloned() else {
            return Ok(None);
        };
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let params = query
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        let mut state = crate::module::ModuleState::new(self.overlay, m.id());
        Ok(Some(match m.query(&mut state, path, &params) {
            Ok(v) => Ok(serde_json::to_vec(&v).unwrap_or_default()),
            Err(crate::module::ModuleFailure::Module(e)) => Err(e),
            Err(crate::module::ModuleFailure::Execution(e)) => return Err(e),
        }))
    }

    /// A call of a native module at its address (a precompile): the value
    /// moves to the module, then the module handles `msg.input` as one of
    /// its messages, with the calling contract as the caller.
    fn call_module(
        &mut self,
        m: &dyn crate::module::Module,
        msg: &Message,
    ) -> Result<CallResult, ExecutionError> {
        let gas = MODULE_CALL_GAS.min(msg.gas_limit);
        if msg.gas_limit < MODULE_CALL_GAS {
            return Ok(CallResult::failed(VmFailure::OutOfGas, gas));
        }
        if !self.transfer(&msg.caller, &msg.to, msg.value)? {
            return Ok(CallResult::failed(VmFailure::InsufficientBalance, gas));
        }
        let mut ctx = crate::module::ModuleCtx::new(
            self.overlay,
            m.id(),
            self.block,
            self.chain,
            msg.caller,
            msg.origin,
            msg.value,
        );
        if let Some(ms) = self.modules {
            ctx = ctx.with_modules(ms);
        }
        ctx = ctx.with_contracts(self.vms, msg.gas_limit - gas, msg.depth);
        let out = m.execute(&mut ctx, &msg.input);
        let gas = gas + ctx.gas_used();
        let events = ctx.into_events();
        match out {
            Ok(output) => {
                self.events.extend(events);
                Ok(CallResult {
                    status: Ok(output),
                    gas_used: gas,
                })
            }
            Err(crate::module::ModuleFailure::Module(e)) => {
                Ok(CallResult::failed(VmFailure::Module(e), gas))
            }
            Err(crate::module::ModuleFailure::Execution(e)) => Err(e),
        }
    }

    /// Create a contract on `vm` at `msg.to`. Effects of a failed creation
    /// are rolled back here.
    pub fn create(
        &mut self,
        vm: VmKind,
        msg: &Message,
        code: &[u8],
    ) -> Result<CallResult, ExecutionError> {
        let Some(imp) = self.vms.get(vm).cloned() else {
            return Ok(CallResult::failed(VmFailure::VmDisabled(vm), 0));
        };
        if self.code_info(&msg.to)?.is_some() {
            return Ok(CallResult::failed(VmFailure::AddressTaken, 0));
        }
        let cp = self.checkpoint();
        let result = imp.create(self, msg, code)?;
        if result.status.is_err() {
            self.revert_to(cp);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revert_reasons_decode() {
        // Error("no") as Solidity encodes it.
        let mut data = vec![0x08, 0xc3, 0x79, 0xa0];
        data.extend([0u8; 31]);
        data.push(0x20);
        data.extend([0u8; 31]);
        data.push(2);
        data.extend(b"no");
        data.extend([0u8; 30]);
        assert_eq!(revert_reason(&data).as_deref(), Some("no"));
        assert_eq!(revert_reason(b"duplicate").as_deref(), Some("duplicate"));
        assert_eq!(revert_reason(&[0xff, 0x00, 0x01]), None);
        assert_eq!(
            VmFailure::Revert(b"duplicate".to_vec()).message(),
            "execution reverted: duplicate"
        );
    }
}
