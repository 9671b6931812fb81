//! The `access` module of a restricted sub-chain: only the accounts its
//! genesis names may send transactions (the accounts its registry entry
//! funded and its member organisations' admins). Anyone else's
//! transaction is kept out of every block in the authorize phase, with
//! code `not_allowed`.

use crate::to_json;
use serde::Deserialize;
use std::collections::BTreeMap;
use tongtian_execution::module::{
    FeePolicy, Module, ModuleCtx, ModuleError, ModuleResult, ModuleState,
};
use tongtian_types::{Address, ChainSpec, CheckedTx};

/// The module's id.
pub const ID: &str = "access";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Genesis {
    accounts: Vec<Address>,
}

fn key(a: &Address) -> Vec<u8> {
    [b"a/".as_slice(), &a.0].concat()
}

/// The `access` module.
#[derive(Debug, Default)]
pub struct Access;

impl Module for Access {
    fn id(&self) -> &'static str {
        ID
    }

    fn genesis(
        &self,
        state: &mut ModuleState<'_, '_>,
        _spec: &ChainSpec,
        section: Option<&serde_json::Value>,
    ) -> ModuleResult<()> {
        let g: Genesis = serde_json::from_value(section.cloned().unwrap_or_default())
            .map_err(|e| ModuleError::new("bad_genesis", format!("access section: {e}")))?;
        for a in g.accounts {
            state.set(&key(&a), vec![1]);
        }
        Ok(())
    }

    fn execute(&self, _ctx: &mut ModuleCtx<'_, '_>, _msg: &[u8]) -> ModuleResult<Vec<u8>> {
        Err(ModuleError::new(
            "no_messages",
            "access takes no messages: its list is fixed at genesis",
        )
        .into())
    }

    fn authorize(
        &self,
        state: &mut ModuleState<'_, '_>,
        tx: &CheckedTx,
        _fee: FeePolicy,
    ) -> ModuleResult<()> {
        if state.get(&key(&tx.sender))?.is_some() {
            return Ok(());
        }
        Err(ModuleError::new(
            "not_allowed",
            format!("{} may not send transactions on this chain: it is restricted to its members' accounts", tx.sender),
        )
        .into())
    }

    fn query(
        &self,
        state: &mut ModuleState<'_, '_>,
        path: &str,
        _params: &BTreeMap<String, String>,
    ) -> ModuleResult<serde_json::Value> {
        if path == "accounts" {
            let list: Vec<String> = state
                .scan(b"a/", None, 10_000)?
                .into_iter()
                .map(|(k, _)| format!("0x{}", hex_of(&k[2..])))
                .collect();
            return Ok(to_json(&list));
        }
        Err(ModuleError::new(
            "unknown_query",
            format!("access answers accounts, not {path}"),
        )
        .into())
    }
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
