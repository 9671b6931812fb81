//! The `contracts` module: contracts frozen by a governance vote.
//!
//! A frozen contract takes no transaction: a call to it (native or
//! Ethereum) is kept out of every block in the authorize phase with code
//! `contract_frozen`, and mempool admission refuses it the same way. Only
//! `gov` freezes and unfreezes. Calls that reach a frozen contract from
//! inside another contract are not stopped yet.

use crate::{decode_msg, only_from, to_json};
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::BTreeMap;
use tongtian_execution::module::{Module, ModuleCtx, ModuleError, ModuleResult, ModuleState};
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
        if section.is_some_and(|s| s.as_object().is_none_or(|o| !o.is_empty())) {
            return Err(ModuleError::new(
                "bad_genesis",
                "contracts starts with nothing frozen: its section is {}",
            )
            .into());
        }
        Ok(())
    }

    fn execute(&self, ctx: &mut ModuleCtx<'_, '_>, msg: &[u8]) -> ModuleResult<Vec<u8>> {
        let msg: ContractsMsg = decode_msg(ID, msg)?;
        only_from(&ctx.caller, crate::gov::ID, "freezing a contract")?;
        match msg {
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
        }
        Ok(Vec::new())
    }

    fn authorize(&self, state: &mut ModuleState<'_, '_>, tx: &CheckedTx) -> ModuleResult<()> {
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
