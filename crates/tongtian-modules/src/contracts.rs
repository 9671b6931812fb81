//! The `contracts` module: contracts frozen or upgraded by a governance
//! vote.
//!
//! A frozen contract takes no transaction: a call to it (native or
//! Ethereum) is kept out of every block in the authorize phase with code
//! `contract_frozen`, and mempool admission refuses it the same way.
//! Calls that reach a frozen contract from inside another contract are
//! not stopped (the authorize phase sees only the transaction's callee).
//!
//! An upgrade replaces a contract's code in place: same address, same VM,
//! same storage and balance, new code (EVM runtime code, or a WASM
//! module, which must start with the WASM magic). It is the
//! proxy-contract upgrade pattern without the proxy, and like it the new
//! code must read the old storage layout.
//!
//! Only `gov` (main chain) and `directive` (sub-chains) send these
//! messages.

use crate::{decode_msg, only_from_authority, to_json};
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::BTreeMap;
use tongtian_execution::module::{
    FeePolicy, Module, ModuleCtx, ModuleError, ModuleResult, ModuleState,
};
use tongtian_types::{Action, Address, ChainSpec, CheckedTx};

/// The module's id.
pub const ID: &str = "contracts";

/// Messages of the `contracts` module (from `gov` only).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ContractsMsg {
    /// Freeze a contract.
    Freeze {
        /// Its address.
        address: Address,
    },
    /// Unfreeze it.
    Unfreeze {
        /// Its address.
        address: Address,
    },
    /// Check that an upgrade could be carried out now (any caller).
    CheckUpgrade {
        /// Its address.
        address: Address,
        /// The new code.
        code: Vec<u8>,
    },
    /// Replace its code.
    Upgrade {
        /// Its address.
        address: Address,
        /// The new code.
        code: Vec<u8>,
    },
}

impl ContractsMsg {
    /// Encoded.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("contracts messages encode")
    }
}

fn key(a: &Address) -> Vec<u8> {
    [b"frozen/".as_slice(), &a.0].concat()
}

/// The contract a transaction calls at the top level, if any.
fn callee(tx: &CheckedTx) -> Option<Address> {
    match &tx.tx.tx.action {
        Action::Call { to, .. } => Some(*to),
        Action::Ethereum { raw } => tongtian_types::eth::EthTx::decode(raw)
            .ok()
            .and_then(|e| e.to),
        _ => None,
    }
}

/// Whether `code` can replace the code of a contract on `vm`.
fn check_code(address: &Address, vm: tongtian_types::VmKind, code: &[u8]) -> ModuleResult<()> {
    if code.is_empty() {
        return Err(ModuleError::new("bad_code", "an upgrade needs the new code").into());
    }
    if vm == tongtian_types::VmKind::Wasm && !code.starts_with(b"\0asm") {
        return Err(ModuleError::new(
            "bad_code",
            format!("{address} is a WASM contract: its new code must be a WASM module"),
        )
        .into());
    }
    Ok(())
}

/// The `contracts` module.
#[derive(Debug, Default)]
pub struct Contracts;

impl Module for Contracts {
    fn id(&self) -> &'static str {
        ID
    }

    fn genesis(
        &self,
        _state: &mut ModuleState<'_, '_>,
        _spec: &ChainSpec,
        section: Option<&serde_json::Value>,
    ) -> ModuleResult<()> {
        tongtian_execution::module::expect_empty_section(
            section,
            "contracts starts with nothing frozen: its section is {}",
        )
    }

    fn execute(&self, ctx: &mut ModuleCtx<'_, '_>, msg: &[u8]) -> ModuleResult<Vec<u8>> {
        let msg: ContractsMsg = decode_msg(ID, msg)?;
        if let ContractsMsg::CheckUpgrade { address, code } = &msg {
            let old = ctx.code_info(address)?.ok_or_else(|| {
                ModuleError::new("no_contract", format!("{address} holds no contract"))
            })?;
            return check_code(address, old.vm, code).map(|()| Vec::new());
        }
        only_from_authority(&ctx.caller, "freezing or upgrading a contract")?;
        match msg {
            ContractsMsg::CheckUpgrade { .. } => {}
            ContractsMsg::Freeze { address } => {
                ctx.state.set(&key(&address), vec![1]);
                ctx.emit(
                    "contract_frozen",
                    vec![("address".into(), address.to_string())],
                );
            }
            ContractsMsg::Unfreeze { address } => {
                ctx.state.delete(&key(&address));
                ctx.emit(
                    "contract_unfrozen",
                    vec![("address".into(), address.to_string())],
                );
            }
            ContractsMsg::Upgrade { address, code } => {
                if code.is_empty() {
                    return Err(
                        ModuleError::new("bad_code", "an upgrade needs the new code").into(),
                    );
                }
                let old = ctx.replace_code(&address, &code)?;
                if old.vm == tongtian_types::VmKind::Wasm && !code.starts_with(b"\0asm") {
                    return Err(ModuleError::new(
                        "bad_code",
                        format!("{address} is a WASM contract: its new code must be a WASM module"),
                    )
                    .into());
                }
                ctx.emit(
                    "contract_upgraded",
                    vec![
                        ("address".into(), address.to_string()),
                        ("old_code_hash".into(), old.hash.to_string()),
                        (
                            "new_code_hash".into(),
                            tongtian_types::H256(tongtian_crypto::eth::keccak256(&code))
                                .to_string(),
                        ),
                    ],
                );
            }
        }
        Ok(Vec::new())
    }

    fn authorize(
        &self,
        state: &mut ModuleState<'_, '_>,
        tx: &CheckedTx,
        _fee: FeePolicy,
    ) -> ModuleResult<()> {
        match callee(tx) {
            Some(to) if state.get(&key(&to))?.is_some() => Err(ModuleError::new(
                "contract_frozen",
                format!("contract {to} is frozen by a governance vote"),
            )
            .into()),
            _ => Ok(()),
        }
    }

    fn query(
        &self,
        state: &mut ModuleState<'_, '_>,
        path: &str,
        _params: &BTreeMap<String, String>,
    ) -> ModuleResult<serde_json::Value> {
        if path == "frozen" {
            let list: Vec<String> = state
                .scan(b"frozen/", None, 10_000)?
                .into_iter()
                .filter_map(|(k, _)| <[u8; 20]>::try_from(&k[7..]).ok())
                .map(|a| Address(a).to_string())
                .collect();
            return Ok(to_json(&list));
        }
        if let Some(a) = path.strip_prefix("frozen/") {
            let a: Address = a
                .parse()
                .map_err(|_| ModuleError::new("bad_address", format!("{a:?} is not an address")))?;
            return Ok(serde_json::json!(state.get(&key(&a))?.is_some()));
        }
        Err(ModuleError::new(
            "unknown_query",
            format!("contracts answers frozen and frozen/ADDRESS, not {path}"),
        )
        .into())
    }
}
