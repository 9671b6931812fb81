//! The `params` module: the chain parameters governance may change while
//! the chain runs.
//!
//! A chain's spec fixes what its genesis needs (suite, engine, gas
//! schedule, the decoder's size cap); the parameters here are the ones an
//! operator tunes later, each enforced in the authorize phase of every
//! transaction (so mempool admission and block execution refuse the same
//! transactions, with the same code):
//!
//! | name            | refuses a transaction whose           | code                      |
//! |-----------------|---------------------------------------|---------------------------|
//! | `min_gas_price` | gas price is below it (unless fee-free) | `gas_price_below_minimum` |
//! | `max_tx_gas`    | gas limit is above it                 | `gas_limit_above_maximum` |
//! | `max_tx_bytes`  | encoding is longer (at most the spec's `limits.max_tx_bytes`) | `tx_too_large` |
//!
//! The genesis section may set any of them (`{"min_gas_price": 2}`); a
//! passed `set-param` proposal (or, on a sub-chain, its attested
//! directive) changes one. Only `gov` and `directive` send [`ParamsMsg`].

use crate::{decode_msg, only_from_authority, to_json};
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::BTreeMap;
use tongtian_execution::module::{
    FeePolicy, Module, ModuleCtx, ModuleError, ModuleResult, ModuleState,
};
use tongtian_types::{ChainSpec, CheckedTx};

/// The module's id.
pub const ID: &str = "params";

/// The parameters, with the smallest value each takes.
pub const NAMES: [(&str, u64); 3] = [
    ("min_gas_price", 0),
    ("max_tx_gas", 21_000),
    ("max_tx_bytes", 1_024),
];

/// Messages of the `params` module (from `gov` or `directive` only).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ParamsMsg {
    /// Set one parameter.
    Set {
        /// Its name (one of [`NAMES`]).
        name: String,
        /// Its value.
        value: u64,
    },
}

impl ParamsMsg {
    /// Encoded.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("params messages encode")
    }
}

/// Check that `name` may be set to `value` on a chain whose spec caps
/// transactions at `max_tx_bytes_cap` bytes.
pub fn check(name: &str, value: u64, max_tx_bytes_cap: u64) -> Result<(), ModuleError> {
    let Some((_, min)) = NAMES.iter().find(|(n, _)| *n == name) else {
        return Err(ModuleError::new(
            "unknown_param",
            format!(
                "no chain parameter {name:?} (parameters: {})",
                NAMES.map(|(n, _)| n).join(", ")
            ),
        ));
    };
    if value < *min {
        return Err(ModuleError::new(
            "bad_param_value",
            format!("{name} is at least {min}, not {value}"),
        ));
    }
    if name == "max_tx_bytes" && value > max_tx_bytes_cap {
        return Err(ModuleError::new(
            "bad_param_value",
            format!(
                "max_tx_bytes is at most the chain spec's cap, {max_tx_bytes_cap}, not {value}"
            ),
        ));
    }
    Ok(())
}

/// Every set parameter under one key: the authorize phase reads one key
/// per transaction.
const VALUES: &[u8] = b"values";
const CAP: &[u8] = b"cap";

fn values(state: &ModuleState<'_, '_>) -> ModuleResult<BTreeMap<String, u64>> {
    Ok(state.get_typed(VALUES)?.unwrap_or_default())
}

/// The spec's cap on `max_tx_bytes` as this chain's `params` answers it.
pub fn cap_of(answer: &serde_json::Value) -> u64 {
    answer["max_tx_bytes_cap"].as_u64().unwrap_or(u64::MAX)
}

/// The `params` module.
#[derive(Debug, Default)]
pub struct Params;

impl Module for Params {
    fn id(&self) -> &'static str {
        ID
    }

    fn genesis(
        &self,
        state: &mut ModuleState<'_, '_>,
        spec: &ChainSpec,
        section: Option<&serde_json::Value>,
    ) -> ModuleResult<()> {
        let cap = u64::from(spec.limits.max_tx_bytes);
        state.set_typed(CAP, &cap);
        let values: BTreeMap<String, u64> = match section {
            None => BTreeMap::new(),
            Some(s) => serde_json::from_value(s.clone()).map_err(|e| {
                ModuleError::new(
                    "bad_genesis",
                    format!("params section: a map of parameter names to numbers: {e}"),
                )
            })?,
        };
        for (name, value) in &values {
            check(name, *value, cap).map_err(|e| ModuleError::new("bad_genesis", e.message))?;
        }
        if !values.is_empty() {
            state.set_typed(VALUES, &values);
        }
        Ok(())
    }

    fn execute(&self, ctx: &mut ModuleCtx<'_, '_>, msg: &[u8]) -> ModuleResult<Vec<u8>> {
        let ParamsMsg::Set { name, value } = decode_msg(ID, msg)?;
        only_from_authority(&ctx.caller, "changing a chain parameter")?;
        let cap: u64 = ctx.state.get_typed(CAP)?.unwrap_or(u64::MAX);
        check(&name, value, cap)?;
        let mut all = values(&ctx.state)?;
        let old = all.insert(name.clone(), value);
        ctx.state.set_typed(VALUES, &all);
        ctx.emit(
            "param_changed",
            vec![
                ("name".into(), name),
                (
                    "old".into(),
                    old.map_or_else(|| "default".into(), |v| v.to_string()),
                ),
                ("new".into(), value.to_string()),
            ],
        );
        Ok(Vec::new())
    }

    fn authorize(
        &self,
        state: &mut ModuleState<'_, '_>,
        tx: &CheckedTx,
        fee: FeePolicy,
    ) -> ModuleResult<()> {
        let t = &tx.tx.tx;
        let Some(bytes) = state.get(VALUES)? else {
            return Ok(());
        };
        let all: BTreeMap<String, u64> = tongtian_types::codec::decode("params", &bytes)
            .map_err(|e| tongtian_execution::ExecutionError::Corrupt(e.to_string()))?;
        let get = |name: &str| all.get(name).copied();
        if let Some(min) = get("min_gas_price").filter(|_| fee == FeePolicy::Charged) {
            if t.gas_price < min {
                return Err(ModuleError::new(
                    "gas_price_below_minimum",
                    format!(
                        "gas price {} is below the chain's minimum, {min}",
                        t.gas_price
                    ),
                )
                .into());
            }
        }
        if let Some(max) = get("max_tx_gas") {
            if t.gas_limit > max {
                return Err(ModuleError::new(
                    "gas_limit_above_maximum",
                    format!(
                        "gas limit {} is above the chain's maximum, {max}",
                        t.gas_limit
                    ),
                )
                .into());
            }
        }
        if let Some(max) = get("max_tx_bytes") {
            if tx.encoded_len as u64 > max {
                return Err(ModuleError::new(
                    "tx_too_large",
                    format!(
                        "the transaction is {} bytes, the chain takes at most {max}",
                        tx.encoded_len
                    ),
                )
                .into());
            }
        }
        Ok(())
    }

    fn query(
        &self,
        state: &mut ModuleState<'_, '_>,
        path: &str,
        _params: &BTreeMap<String, String>,
    ) -> ModuleResult<serde_json::Value> {
        if path == "params" {
            let all = values(state)?;
            let mut out = BTreeMap::new();
            for (name, _) in NAMES {
                out.insert(name, all.get(name).copied());
            }
            out.insert("max_tx_bytes_cap", state.get_typed(CAP)?);
            return Ok(to_json(&out));
        }
        Err(ModuleError::new(
            "unknown_query",
            format!("params answers `params` (null: the spec's value applies), not {path}"),
        )
        .into())
    }
}
