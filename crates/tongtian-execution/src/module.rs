//! The native-module seam.
//!
//! A [`Module`] is a piece of chain logic written in Rust and compiled
//! into the node: membership, governance, the chain registry, and later
//! cross-chain clients and data assets. Every module
//!
//! - has a stable id (`membership`, `gov`, ...) and an address derived
//!   from it ([`module_address`]): its events carry that emitter, and
//!   contracts call the module there;
//! - owns the state under `mod/{id}/` and sees only keys relative to it,
//!   through [`ModuleState`]: it cannot read or write another module's raw
//!   keys, accounts or contract storage except through the narrow
//!   [`ModuleCtx`] operations;
//! - takes typed messages (its own Borsh enum) through the one generic
//!   [`tongtian_types::Action::Module`], and answers read-only queries by
//!   path with JSON;
//! - reads its genesis section of the chain spec (`modules.{id}`);
//! - may hook the beginning and end of every block, take part in the
//!   authorize phase of every transaction (for example to keep a
//!   sub-chain to its members), and waive fees for its messages (for
//!   example governance votes);
//! - fails with stable error codes ([`ModuleError::code`]), which become
//!   the failed receipt's code.
//!
//! Modules are kept in a [`ModuleSet`] ordered by id, so every node runs
//! their hooks in the same order.

use crate::vm::{BlockEnv, ChainEnv};
use crate::{ExecutionError, StateOverlay};
use std::collections::BTreeMap;
use std::sync::Arc;
use tongtian_types::{Account, Address, ChainSpec, CheckedTx, Event, H256};

/// Where all module state lives: `mod/` + module id + `/` + the module's key.
pub const MODULE_PREFIX: &[u8] = b"mod/";

/// The state prefix of module `id`.
pub fn module_prefix(id: &str) -> Vec<u8> {
    [MODULE_PREFIX, id.as_bytes(), b"/"].concat()
}

/// The address of module `id`: `0xffff` followed by the first 18 bytes of
/// Keccak-256 of `tongtian/module/{id}`. No key can sign for it (it is a
/// hash image, not a public key's), and the `0xffff` prefix makes module
/// addresses easy to tell apart from accounts and contracts.
pub fn module_address(id: &str) -> Address {
    let h = tongtian_crypto::eth::keccak256(format!("tongtian/module/{id}").as_bytes());
    let mut a = [0u8; 20];
    a[0] = 0xff;
    a[1] = 0xff;
    a[2..].copy_from_slice(&h[..18]);
    Address(a)
}

/// A module's refusal or failure, with a stable code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ModuleError {
    /// Stable, machine-readable (`not_a_member`, `already_voted`, ...).
    pub code: String,
    /// What happened and, where it helps, what to do.
    pub message: String,
}

impl ModuleError {
    /// An error with `code` and `message`.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ModuleError {
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// The message does not decode as one of the module's.
    pub fn bad_message(module: &str, e: impl std::fmt::Display) -> Self {
        ModuleError::new(
            "bad_module_message",
            format!("not a message of module {module}: {e}"),
        )
    }
}

/// A module failure, or a state error that stops the whole block.
#[derive(Debug, thiserror::Error)]
pub enum ModuleFailure {
    /// The module refused or failed: the transaction fails (or, in the
    /// authorize phase, is not included).
    #[error(transparent)]
    Module(#[from] ModuleError),
    /// State could not be read: not the transaction's fault.
    #[error(transparent)]
    Execution(#[from] ExecutionError),
}

/// Result of module code.
pub type ModuleResult<T> = Result<T, ModuleFailure>;

/// Whether a module message pays the usual fee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeePolicy {
    /// Gas is charged at the transaction's gas price.
    Charged,
    /// No fee at all (the transaction still needs a valid nonce and
    /// signature, so it cannot be replayed).
    Free,
}

/// One module's view of state: keys relative to its prefix.
pub struct ModuleState<'a, 's> {
    overlay: &'a mut StateOverlay<'s>,
    prefix: Vec<u8>,
}

impl<'a, 's> ModuleState<'a, 's> {
    /// Module `id`'s view of `overlay`.
    pub fn new(overlay: &'a mut StateOverlay<'s>, id: &str) -> Self {
        ModuleState {
            overlay,
            prefix: module_prefix(id),
        }
    }

    fn key(&self, key: &[u8]) -> Vec<u8> {
        [self.prefix.as_slice(), key].concat()
    }

    /// The value at `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ExecutionError> {
        self.overlay.get_raw(&self.key(key))
    }

    /// A Borsh value at `key`; a value that does not decode is corrupt state.
    pub fn get_typed<T: borsh::BorshDeserialize>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, ExecutionError> {
        self.get(key)?
            .map(|b| {
                tongtian_types::codec::decode::<T>("module state", &b)
                    .map_err(|e| ExecutionError::Corrupt(e.to_string()))
            })
            .transpose()
    }

    /// Write `key`.
    pub fn set(&mut self, key: &[u8], value: Vec<u8>) {
        let k = self.key(key);
        self.overlay.set_raw(k, value);
    }

    /// Write a Borsh value at `key`.
    pub fn set_typed<T: borsh::BorshSerialize>(&mut self, key: &[u8], value: &T) {
        self.set(key, tongtian_types::codec::encode(value));
    }

    /// Delete `key`.
    pub fn delete(&mut self, key: &[u8]) {
        let k = self.key(key);
        self.overlay.delete_raw(k);
    }

    /// Up to `limit` entries whose relative keys start with `prefix`,
    /// after `start_after` (a relative key) when given, in key order, with
    /// relative keys.
    pub fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<tongtian_storage::Entries, ExecutionError> {
        let full = self.key(prefix);
        let after = start_after.map(|k| self.key(k));
        let n = self.prefix.len();
        Ok(self
            .overlay
            .scan_raw(&full, after.as_deref(), limit)?
            .into_iter()
            .map(|(k, v)| (k[n..].to_vec(), v))
            .collect())
    }

    /// The chain's current validator set (the `membership` module's,
    /// read-only: every module may know who validates the chain).
    pub fn validator_set(&self) -> Result<tongtian_types::ValidatorSet, ExecutionError> {
        crate::membership::read_validator_set(self.overlay)
    }

    /// An account's balance and nonce (read-only).
    pub fn account(&mut self, a: &Address) -> Result<Account, ExecutionError> {
        self.overlay.account(a)
    }
}

/// What a module's message handler works with.
pub struct ModuleCtx<'a, 's> {
    /// The module's state.
    pub state: ModuleState<'a, 's>,
    /// The block.
    pub block: &'a BlockEnv,
    /// The chain.
    pub chain: &'a ChainEnv,
    /// Who sent the message: the transaction's sender, or the contract
    /// that called the module.
    pub caller: Address,
    /// The account that signed the transaction.
    pub origin: Address,
    /// Native tokens sent with the message (already moved to the
    /// module's address).
    pub value: u128,
    emitter: Address,
    events: Vec<Event>,
    modules: Option<&'a ModuleSet>,
    vms: Option<&'a crate::vm::VmRegistry>,
    gas_left: u64,
    gas_used: u64,
    depth: u32,
}

impl<'a, 's> ModuleCtx<'a, 's> {
    /// A context for module `id` handling a message from `caller`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        overlay: &'a mut StateOverlay<'s>,
        id: &str,
        block: &'a BlockEnv,
        chain: &'a ChainEnv,
        caller: Address,
        origin: Address,
        value: u128,
    ) -> Self {
        ModuleCtx {
            state: ModuleState::new(overlay, id),
            block,
            chain,
            caller,
            origin,
            value,
            emitter: module_address(id),
            events: Vec::new(),
            modules: None,
            vms: None,
            gas_left: 0,
            gas_used: 0,
            depth: 0,
        }
    }

    /// Let this module call contracts (see [`ModuleCtx::call_contract`])
    /// with up to `gas_limit` gas in all, the message being at call depth
    /// `depth`.
    pub fn with_contracts(
        mut self,
        vms: &'a crate::vm::VmRegistry,
        gas_limit: u64,
        depth: u32,
    ) -> Self {
        self.vms = Some(vms);
        self.gas_left = gas_limit;
        self.depth = depth;
        self
    }

    /// Gas the contracts this message called used (charged on top of the
    /// module's flat price).
    pub fn gas_used(&self) -> u64 {
        self.gas_used
    }

    /// Call the contract at `to` with `input`, as this module (its address
    /// is the caller), with at most `gas` gas (and no more than the
    /// message has left). A failed call's effects are undone; its gas is
    /// still counted. `contracts_unreachable` where the chain runs no VMs
    /// for modules.
    pub fn call_contract(
        &mut self,
        to: Address,
        input: Vec<u8>,
        gas: u64,
    ) -> ModuleResult<crate::vm::CallResult> {
        let Some(vms) = self.vms else {
            return Err(ModuleError::new(
                "contracts_unreachable",
                "this module message cannot call contracts here",
            )
            .into());
        };
        let msg = crate::vm::Message {
            caller: self.emitter,
            origin: self.origin,
            to,
            value: 0,
            input,
            gas_limit: gas.min(self.gas_left),
            gas_price: 0,
            depth: self.depth + 1,
            access_list: Default::default(),
        };
        let mut host = crate::vm::Host::new(&mut *self.state.overlay, self.block, self.chain, vms);
        if let Some(ms) = self.modules {
            host = host.with_modules(ms);
        }
        let r = host.call(&msg)?;
        let events = host.into_events();
        let used = r.gas_used.min(msg.gas_limit);
        self.gas_used += used;
        self.gas_left -= used;
        if r.status.is_ok() {
            self.events.extend(events);
        }
        Ok(r)
    }

    /// Let this module call and query the chain's other modules.
    pub fn with_modules(mut self, modules: &'a ModuleSet) -> Self {
        self.modules = Some(modules);
        self
    }

    fn other(&self, module: &str) -> ModuleResult<Arc<dyn Module>> {
        self.modules
            .and_then(|ms| ms.get(module))
            .cloned()
            .ok_or_else(|| {
                ModuleError::new(
                    "unknown_module",
                    format!("this chain has no module `{module}`"),
                )
                .into()
            })
    }

    /// Send `msg` to another module, as this module (its address is the
    /// caller: that is how a module lets, say, only governance change it).
    /// Its events join this message's; when it fails, its writes are undone.
    pub fn call(&mut self, module: &str, msg: &[u8]) -> ModuleResult<Vec<u8>> {
        let m = self.other(module)?;
        let caller = self.emitter;
        let origin = self.origin;
        let cp = self.state.overlay.checkpoint();
        let mut inner = ModuleCtx {
            state: ModuleState::new(&mut *self.state.overlay, m.id()),
            block: self.block,
            chain: self.chain,
            caller,
            origin,
            value: 0,
            emitter: module_address(m.id()),
            events: Vec::new(),
            modules: self.modules,
            vms: self.vms,
            gas_left: self.gas_left,
            gas_used: 0,
            depth: self.depth,
        };
        let out = m.execute(&mut inner, msg);
        let events = inner.events;
        self.gas_used += inner.gas_used;
        self.gas_left -= inner.gas_used;
        match out {
            Ok(out) => {
                self.events.extend(events);
                Ok(out)
            }
            Err(e) => {
                // A refused call leaves nothing behind, whatever the caller
                // does with the refusal.
                self.state.overlay.revert_to(cp);
                Err(e)
            }
        }
    }

    /// Ask another module a query (its answer over the current state).
    pub fn query(
        &mut self,
        module: &str,
        path: &str,
        params: &BTreeMap<String, String>,
    ) -> ModuleResult<serde_json::Value> {
        let m = self.other(module)?;
        let mut state = ModuleState::new(&mut *self.state.overlay, m.id());
        m.query(&mut state, path, params)
    }

    /// Emit an event from the module's address.
    pub fn emit(&mut self, name: &str, attributes: Vec<(String, String)>) {
        self.events.push(Event {
            emitter: self.emitter,
            name: name.to_string(),
            attributes,
        });
    }

    /// The module's own address.
    pub fn address(&self) -> Address {
        self.emitter
    }

    /// Take `amount` of native tokens from the caller (who sent this
    /// message, so agreed to it) into the module's own balance, as escrow.
    pub fn collect(&mut self, amount: u128) -> ModuleResult<()> {
        let (from, to) = (self.caller, self.emitter);
        let mut src = self.state.overlay.account(&from)?;
        if src.balance < amount {
            return Err(ModuleError::new(
                "insufficient_funds",
                format!("{from} holds {}, {amount} needed", src.balance),
            )
            .into());
        }
        src.balance -= amount;
        self.state.overlay.set_account(from, src);
        let mut dst = self.state.overlay.account(&to)?;
        dst.balance = dst.balance.saturating_add(amount);
        self.state.overlay.set_account(to, dst);
        Ok(())
    }

    /// Pay `amount` from the module's own balance (what it holds in
    /// escrow) to `to`.
    pub fn pay_out(&mut self, to: Address, amount: u128) -> ModuleResult<()> {
        let from = self.emitter;
        let mut src = self.state.overlay.account(&from)?;
        if src.balance < amount {
            return Err(ModuleError::new(
                "module_funds_short",
                format!("the module holds {}, {amount} asked", src.balance),
            )
            .into());
        }
        src.balance -= amount;
        self.state.overlay.set_account(from, src);
        let mut dst = self.state.overlay.account(&to)?;
        dst.balance = dst.balance.saturating_add(amount);
        self.state.overlay.set_account(to, dst);
        Ok(())
    }

    /// Where the code of the contract at `a` is, if it has any (read-only).
    pub fn code_info(&self, a: &Address) -> ModuleResult<Option<crate::vm::CodeInfo>> {
        match self.state.overlay.get_raw(&crate::vm::code_key(a))? {
            Some(b) => Ok(Some(
                tongtian_types::codec::decode("code info", &b)
                    .map_err(|e| ExecutionError::Corrupt(e.to_string()))?,
            )),
            None => Ok(None),
        }
    }

    /// Replace the code of the contract at `a`, keeping its VM, storage
    /// and balance: the one write outside its own prefix a module may make,
    /// for a contract upgrade that governance decided. The old code info
    /// on success; `no_contract` when `a` has no code.
    pub fn replace_code(&mut self, a: &Address, code: &[u8]) -> ModuleResult<crate::vm::CodeInfo> {
        let old: crate::vm::CodeInfo = match self.state.overlay.get_raw(&crate::vm::code_key(a))? {
            Some(b) => tongtian_types::codec::decode("code info", &b)
                .map_err(|e| ExecutionError::Corrupt(e.to_string()))?,
            None => {
                return Err(
                    ModuleError::new("no_contract", format!("{a} holds no contract")).into(),
                )
            }
        };
        let info = crate::vm::CodeInfo {
            vm: old.vm,
            hash: H256(tongtian_crypto::eth::keccak256(code)),
            len: code.len() as u32,
        };
        self.state
            .overlay
            .set_raw(crate::vm::blob_key(&info.hash), code.to_vec());
        self.state
            .overlay
            .set_raw(crate::vm::code_key(a), tongtian_types::codec::encode(&info));
        Ok(old)
    }

    /// The events emitted.
    pub fn into_events(self) -> Vec<Event> {
        self.events
    }
}

/// For a module whose state starts empty: refuse a genesis section other
/// than none or `{}`, with code `bad_genesis` and `why`.
pub fn expect_empty_section(section: Option<&serde_json::Value>, why: &str) -> ModuleResult<()> {
    if section.is_some_and(|s| s.as_object().is_none_or(|o| !o.is_empty())) {
        return Err(ModuleError::new("bad_genesis", why).into());
    }
    Ok(())
}

/// Whether `caller` is the address of one of the modules `ids` (how a
/// module accepts a message from, say, governance only).
pub fn is_module_caller(caller: &Address, ids: &[&str]) -> bool {
    ids.iter().any(|m| *caller == module_address(m))
}

/// A native module. See the [module docs](self).
pub trait Module: Send + Sync + std::fmt::Debug {
    /// Stable id; also the state prefix and, hashed, the address.
    fn id(&self) -> &'static str;

    /// Write the genesis state from the spec (and its `modules.{id}`
    /// section, if any). A section the module does not understand is an
    /// error: the chain does not start.
    fn genesis(
        &self,
        state: &mut ModuleState<'_, '_>,
        spec: &ChainSpec,
        section: Option<&serde_json::Value>,
    ) -> ModuleResult<()>;

    /// Handle one message. On `Err` every write it made is undone and the
    /// transaction fails with the error's code (its fee still paid).
    fn execute(&self, ctx: &mut ModuleCtx<'_, '_>, msg: &[u8]) -> ModuleResult<Vec<u8>>;

    /// Answer a read-only query: `path` below the module (e.g.
    /// `validators`, `orgs/org-1`), `params` from the query string.
    fn query(
        &self,
        state: &mut ModuleState<'_, '_>,
        path: &str,
        params: &BTreeMap<String, String>,
    ) -> ModuleResult<serde_json::Value>;

    /// Whether `msg`, sent in `tx`, pays the usual fee (default: it does).
    /// A module may look at its own state and the sender to decide (e.g.
    /// validators relay for free).
    fn fee_policy(&self, state: &mut ModuleState<'_, '_>, tx: &CheckedTx, msg: &[u8]) -> FeePolicy {
        let _ = (state, tx, msg);
        FeePolicy::Charged
    }

    /// The authorize phase of every transaction on the chain (not only
    /// this module's), knowing whether it pays a fee: `Err` keeps it out
    /// of the block. Default: allow.
    fn authorize(
        &self,
        state: &mut ModuleState<'_, '_>,
        tx: &CheckedTx,
        fee: FeePolicy,
    ) -> ModuleResult<()> {
        let _ = (state, tx, fee);
        Ok(())
    }

    /// Run before the block's first transaction.
    fn begin_block(
        &self,
        state: &mut ModuleState<'_, '_>,
        block: &BlockEnv,
    ) -> ModuleResult<Vec<Event>> {
        let _ = (state, block);
        Ok(Vec::new())
    }

    /// Run after the block's last transaction.
    fn end_block(
        &self,
        state: &mut ModuleState<'_, '_>,
        block: &BlockEnv,
    ) -> ModuleResult<Vec<Event>> {
        let _ = (state, block);
        Ok(Vec::new())
    }
}

/// The modules of one chain, in id order.
#[derive(Clone, Debug, Default)]
pub struct ModuleSet {
    modules: BTreeMap<&'static str, Arc<dyn Module>>,
    by_address: BTreeMap<Address, &'static str>,
}

impl ModuleSet {
    /// Add a module (replacing one with the same id).
    pub fn insert(&mut self, m: Arc<dyn Module>) {
        self.by_address.insert(module_address(m.id()), m.id());
        self.modules.insert(m.id(), m);
    }

    /// The module with `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<dyn Module>> {
        self.modules.get(id)
    }

    /// The module at `address`.
    pub fn at(&self, address: &Address) -> Option<&Arc<dyn Module>> {
        self.by_address.get(address).and_then(|id| self.get(id))
    }

    /// Every module, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Module>> {
        self.modules.values()
    }

    /// The ids, in order.
    pub fn ids(&self) -> Vec<&'static str> {
        self.modules.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_addresses_are_stable_distinct_and_marked() {
        let a = module_address("membership");
        assert_eq!(a, module_address("membership"));
        assert_ne!(a, module_address("gov"));
        assert_eq!(&a.0[..2], &[0xff, 0xff]);
        assert_eq!(module_prefix("gov"), b"mod/gov/".to_vec());
    }
}
