//! The `org` module: the organisations of the chain network.
//!
//! An organisation has an id (`org-0`), a name, an admin account (whose
//! key signs its votes), a voting weight, and its nodes: each node's
//! transport key (what the network admits) and a validator key per crypto
//! suite (so a sub-chain of either suite can name it as a validator before
//! its genesis). Genesis names the founders; joining, leaving and weight
//! changes come only from `gov`. An organisation's admin may replace the
//! list of its own nodes ([`OrgMsg::SetNodes`]).

use crate::{decode_msg, only_from, to_json};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tongtian_crypto::SuiteId;
use tongtian_execution::module::{Module, ModuleCtx, ModuleError, ModuleResult, ModuleState};
use tongtian_types::{serde_hex, Address, ChainSpec};

/// The module's id.
pub const ID: &str = "org";

/// A node's validator key for one suite.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct SuiteKey {
    /// The suite.
    pub suite: SuiteId,
    /// The public key.
    #[serde(with = "serde_hex")]
    pub public_key: Vec<u8>,
}

/// A node of an organisation.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its name (e.g. `node-1`).
    pub name: String,
    /// Its transport public key (its network identity).
    #[serde(with = "serde_hex")]
    pub transport_key: Vec<u8>,
    /// Its validator keys, one per suite it can validate.
    #[serde(default)]
    pub validator_keys: Vec<SuiteKey>,
}

impl NodeInfo {
    /// This node's validator key under `suite`.
    pub fn key_for(&self, suite: SuiteId) -> Option<&[u8]> {
        self.validator_keys
            .iter()
            .find(|k| k.suite == suite)
            .map(|k| k.public_key.as_slice())
    }
}

/// An organisation.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Organisation {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The admin account: its key signs proposals and votes.
    pub admin: Address,
    /// Voting weight.
    pub weight: u64,
    /// Its nodes.
    #[serde(default)]
    pub nodes: Vec<NodeInfo>,
}

/// Messages of the `org` module.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum OrgMsg {
    /// Admit an organisation (from `gov` only).
    Add(Organisation),
    /// Remove one (from `gov` only).
    Remove {
        /// Its id.
        id: String,
    },
    /// Change a weight (from `gov` only).
    SetWeight {
        /// Its id.
        id: String,
        /// The new weight.
        weight: u64,
    },
    /// Replace an organisation's nodes (from its admin).
    SetNodes {
        /// Its id.
        id: String,
        /// The nodes.
        nodes: Vec<NodeInfo>,
    },
}

impl OrgMsg {
    /// Encoded for [`tongtian_types::Action::Module`] or a module call.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("org messages encode")
    }
}

/// The genesis section: `{"orgs": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Genesis {
    orgs: Vec<Organisation>,
}

fn key(id: &str) -> Vec<u8> {
    format!("o/{id}").into_bytes()
}

/// Every organisation in state, in id order.
pub fn all(state: &ModuleState<'_, '_>) -> ModuleResult<Vec<Organisation>> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = state.scan(b"o/", after.as_deref(), 256)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (_, v) in &page {
            out.push(
                tongtian_types::codec::decode::<Organisation>("organisation", v)
                    .map_err(|e| tongtian_execution::ExecutionError::Corrupt(e.to_string()))?,
            );
        }
        if page.len() < 256 {
            break;
        }
    }
    Ok(out)
}

/// The organisations as `gov` and `registry` read them (through a query).
pub fn read_all(ctx: &mut ModuleCtx<'_, '_>) -> ModuleResult<Vec<Organisation>> {
    let v = ctx.query(ID, "orgs", &BTreeMap::new())?;
    serde_json::from_value(v)
        .map_err(|e| tongtian_execution::ExecutionError::Corrupt(e.to_string()).into())
}

fn check(org: &Organisation, others: &[Organisation]) -> Result<(), ModuleError> {
    let valid_id = !org.id.is_empty()
        && org.id.len() <= 64
        && org
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid_id {
        return Err(ModuleError::new(
            "bad_org_id",
            format!(
                "{:?}: an organisation id is 1-64 of a-z, 0-9, - and _",
                org.id
            ),
        ));
    }
    if org.weight == 0 {
        return Err(ModuleError::new(
            "bad_weight",
            "a voting weight must be positive",
        ));
    }
    if others.iter().any(|o| o.id == org.id) {
        return Err(ModuleError::new(
            "org_exists",
            format!("organisation {} exists already", org.id),
        ));
    }
    if others.iter().any(|o| o.admin == org.admin) {
        return Err(ModuleError::new(
            "admin_taken",
            format!("{} is already another organisation's admin", org.admin),
        ));
    }
    Ok(())
}

/// The `org` module.
#[derive(Debug, Default)]
pub struct Org;

impl Module for Org {
    fn id(&self) -> &'static str {
        ID
    }

    fn genesis(
        &self,
        state: &mut ModuleState<'_, '_>,
        _spec: &ChainSpec,
        section: Option<&serde_json::Value>,
    ) -> ModuleResult<()> {
        let Some(section) = section else {
            return Err(ModuleError::new("bad_genesis", "org needs {\"orgs\": [...]}").into());
        };
        let g: Genesis = serde_json::from_value(section.clone())
            .map_err(|e| ModuleError::new("bad_genesis", format!("org section: {e}")))?;
        if g.orgs.is_empty() {
            return Err(
                ModuleError::new("bad_genesis", "at least one founding organisation").into(),
            );
        }
        let mut seen: Vec<Organisation> = Vec::new();
        for o in g.orgs {
            check(&o, &seen)?;
            state.set_typed(&key(&o.id), &o);
            seen.push(o);
        }
        Ok(())
    }

    fn execute(&self, ctx: &mut ModuleCtx<'_, '_>, msg: &[u8]) -> ModuleResult<Vec<u8>> {
        let msg: OrgMsg = decode_msg(ID, msg)?;
        match msg {
            OrgMsg::Add(org) => {
                only_from(&ctx.caller, crate::gov::ID, "admitting an organisation")?;
                check(&org, &all(&ctx.state)?)?;
                ctx.state.set_typed(&key(&org.id), &org);
                ctx.emit(
                    "org_added",
                    vec![
                        ("org".into(), org.id.clone()),
                        ("weight".into(), org.weight.to_string()),
                    ],
                );
            }
            OrgMsg::Remove { id } => {
                only_from(&ctx.caller, crate::gov::ID, "removing an organisation")?;
                let orgs = all(&ctx.state)?;
                if !orgs.iter().any(|o| o.id == id) {
                    return Err(unknown(&id).into());
                }
                if orgs.len() == 1 {
                    return Err(
                        ModuleError::new("last_org", "the last organisation cannot leave").into(),
                    );
                }
                ctx.state.delete(&key(&id));
                ctx.emit("org_removed", vec![("org".into(), id)]);
            }
            OrgMsg::SetWeight { id, weight } => {
                only_from(&ctx.caller, crate::gov::ID, "changing a weight")?;
                let mut org: Organisation = ctx
                    .state
                    .get_typed(&key(&id))?
                    .ok_or_else(|| unknown(&id))?;
                if weight == 0 {
                    return Err(
                        ModuleError::new("bad_weight", "a voting weight must be positive").into(),
                    );
                }
                org.weight = weight;
                ctx.state.set_typed(&key(&id), &org);
                ctx.emit(
                    "org_weight_changed",
                    vec![("org".into(), id), ("weight".into(), weight.to_string())],
                );
            }
            OrgMsg::SetNodes { id, nodes } => {
                let mut org: Organisation = ctx
                    .state
                    .get_typed(&key(&id))?
                    .ok_or_else(|| unknown(&id))?;
                if ctx.caller != org.admin {
                    return Err(ModuleError::new(
                        "not_org_admin",
                        format!("only {}'s admin {} may change its nodes", org.id, org.admin),
                    )
                    .into());
                }
                org.nodes = nodes;
                ctx.state.set_typed(&key(&id), &org);
                ctx.emit(
                    "org_nodes_changed",
                    vec![
                        ("org".into(), id),
                        ("nodes".into(), org.nodes.len().to_string()),
                    ],
                );
            }
        }
        Ok(Vec::new())
    }

    fn query(
        &self,
        state: &mut ModuleState<'_, '_>,
        path: &str,
        _params: &BTreeMap<String, String>,
    ) -> ModuleResult<serde_json::Value> {
        if path == "orgs" {
            return Ok(to_json(&all(state)?));
        }
        if let Some(id) = path.strip_prefix("orgs/") {
            let org: Organisation = state.get_typed(&key(id))?.ok_or_else(|| not_found(id))?;
            return Ok(to_json(&org));
        }
        Err(ModuleError::new(
            "unknown_query",
            format!("org answers orgs and orgs/ID, not {path}"),
        )
        .into())
    }
}

fn unknown(id: &str) -> ModuleError {
    ModuleError::new("unknown_org", format!("there is no organisation {id}"))
}

fn not_found(id: &str) -> ModuleError {
    ModuleError::new("not_found", format!("there is no organisation {id}"))
}
