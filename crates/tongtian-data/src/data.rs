//! The `data` module.
//!
//! Use is decided here, at [`DataMsg::Use`], which only the `job` module
//! sends when it accepts a job: the owner needs no grant for its own asset;
//! anyone else needs a grant that names them, the job's protocol and every
//! column it uses, that is not revoked, not past its last block and has
//! uses left (one is spent). The refusals are `not_granted` (no such
//! grant) and `grant_expired` (past its block, or used up).

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tongtian_execution::module::{
    module_address, Module, ModuleCtx, ModuleError, ModuleResult, ModuleState,
};
use tongtian_types::{serde_hex, serde_u128, Address, ChainSpec, H256};

/// The module's id.
pub const ID: &str = "data";

/// The protocols a grant may name.
pub const PROTOCOLS: [&str; 5] = ["psi-ecdh", "psi-ot", "stats", "lr-vertical", "fl"];

/// The module that spends grants.
pub const JOB: &str = "job";

/// A column of an asset's schema.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type (`string`, `int`, `float`, ...), as the owner declares it.
    #[serde(rename = "type")]
    pub kind: String,
}

/// Whether an asset can be used.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum AssetStatus {
    /// In use.
    Active,
    /// Retired by its owner: no new grants or jobs.
    Retired,
}

/// A data asset.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Asset {
    /// Its id (from 1).
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its owner.
    pub owner: Address,
    /// Its columns.
    pub schema: Vec<Column>,
    /// Its row count.
    pub rows: u64,
    /// The salted Merkle root over its rows.
    pub commitment: H256,
    /// The commitment's version (from 1; an update bumps it).
    pub version: u32,
    /// The owner agent's endpoint (`host:port`).
    pub agent: String,
    /// The owner agent's public key (it signs sessions and completions).
    #[serde(with = "serde_hex")]
    pub agent_key: Vec<u8>,
    /// Price per job, in the native token.
    #[serde(with = "serde_u128")]
    pub price: u128,
    /// Status.
    pub status: AssetStatus,
}

/// A grant of use.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Grant {
    /// Its id within the asset (from 1).
    pub id: u64,
    /// Who may use the asset.
    pub to: Address,
    /// For which protocols.
    pub protocols: Vec<String>,
    /// Which columns (empty: all).
    pub columns: Vec<String>,
    /// The last block it can be used in (0: no end).
    pub until: u64,
    /// Jobs left (`None`: unlimited).
    pub uses_left: Option<u32>,
    /// Revoked by the owner.
    pub revoked: bool,
}

/// One entry of an asset's history.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The block.
    pub height: u64,
    /// What happened (`registered`, `transferred`, `updated`, `retired`,
    /// `granted`, `revoked`, `used`).
    pub action: String,
    /// Who did it.
    pub by: Address,
    /// The details.
    pub detail: BTreeMap<String, String>,
}

/// Messages of the `data` module.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum DataMsg {
    /// Register an asset owned by the sender: its id.
    Register {
        /// Its name.
        name: String,
        /// Its columns.
        schema: Vec<Column>,
        /// Its row count.
        rows: u64,
        /// The salted Merkle root over its rows.
        commitment: H256,
        /// The owner agent's endpoint.
        agent: String,
        /// The owner agent's public key.
        agent_key: Vec<u8>,
        /// Price per job.
        price: u128,
    },
    /// Give the asset to another account (its owner only).
    Transfer {
        /// The asset.
        asset: u64,
        /// The new owner.
        to: Address,
    },
    /// A new commitment (the data changed; its owner only).
    Update {
        /// The asset.
        asset: u64,
        /// The new root.
        commitment: H256,
        /// The new row count.
        rows: u64,
    },
    /// Retire the asset (its owner only).
    Retire {
        /// The asset.
        asset: u64,
    },
    /// Grant use of the asset (its owner only): the grant's id.
    Grant {
        /// The asset.
        asset: u64,
        /// Who.
        to: Address,
        /// Which protocols.
        protocols: Vec<String>,
        /// Which columns (empty: all).
        columns: Vec<String>,
        /// The last block (0: no end).
        until: u64,
        /// How many jobs (0: unlimited).
        uses: u32,
    },
    /// Revoke a grant (the asset's owner only).
    Revoke {
        /// The asset.
        asset: u64,
        /// The grant.
        grant: u64,
    },
    /// Spend a use of the asset for `user` running `protocol` on `columns`
    /// (from the `job` module only).
    Use {
        /// The asset.
        asset: u64,
        /// Who uses it.
        user: Address,
        /// With which protocol.
        protocol: String,
        /// On which columns (empty: all).
        columns: Vec<String>,
    },
}

impl DataMsg {
    /// As a transaction action.
    pub fn action(&self) -> tongtian_types::Action {
        tongtian_types::Action::Module {
            module: ID.into(),
            msg: borsh::to_vec(self).expect("data messages encode"),
        }
    }
}

fn refuse(code: &str, message: impl Into<String>) -> ModuleError {
    ModuleError::new(code, message)
}

fn akey(id: u64) -> Vec<u8> {
    format!("a/{id:020}").into_bytes()
}

fn gkey(asset: u64, grant: u64) -> Vec<u8> {
    format!("g/{asset:020}/{grant:020}").into_bytes()
}

fn hkey(asset: u64, n: u64) -> Vec<u8> {
    format!("h/{asset:020}/{n:020}").into_bytes()
}

const NEXT_ASSET: &[u8] = b"next";

fn counter(state: &mut ModuleState<'_, '_>, key: &[u8]) -> ModuleResult<u64> {
    let n: u64 = state.get_typed(key)?.unwrap_or(0) + 1;
    state.set_typed(key, &n);
    Ok(n)
}

fn load(state: &ModuleState<'_, '_>, id: u64) -> ModuleResult<Asset> {
    Ok(state
        .get_typed(&akey(id))?
        .ok_or_else(|| refuse("unknown_asset", format!("there is no data asset {id}")))?)
}

fn owned(ctx: &ModuleCtx<'_, '_>, id: u64) -> ModuleResult<Asset> {
    let a = load(&ctx.state, id)?;
    if a.owner != ctx.caller {
        return Err(refuse(
            "not_owner",
            format!("only the owner of asset {id} may do this"),
        )
        .into());
    }
    Ok(a)
}

pub(crate) fn scan_typed<T: BorshDeserialize>(
    state: &ModuleState<'_, '_>,
    prefix: &[u8],
) -> ModuleResult<Vec<T>> {
    let mut out = Vec::new();
    for (_, v) in state.scan(prefix, None, 100_000)? {
        out.push(
            borsh::from_slice(&v)
                .map_err(|e| tongtian_execution::ExecutionError::Corrupt(e.to_string()))?,
        );
    }
    Ok(out)
}

/// The `data` module.
#[derive(Debug, Default)]
pub struct Data;

impl Data {
    fn record(
        ctx: &mut ModuleCtx<'_, '_>,
        asset: u64,
        action: &str,
        detail: Vec<(&str, String)>,
    ) -> ModuleResult<()> {
        let n = counter(&mut ctx.state, format!("hn/{asset:020}").as_bytes())?;
        let detail: BTreeMap<String, String> = detail
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let entry = HistoryEntry {
            height: ctx.block.height,
            action: action.into(),
            by: ctx.caller,
            detail: detail.clone(),
        };
        ctx.state.set_typed(&hkey(asset, n), &entry);
        let mut attrs = vec![("asset".to_string(), asset.to_string())];
        attrs.extend(detail);
        ctx.emit(&format!("asset_{action}"), attrs);
        Ok(())
    }

    fn check_columns(a: &Asset, columns: &[String]) -> ModuleResult<()> {
        if let Some(c) = columns
            .iter()
            .find(|c| !a.schema.iter().any(|s| &s.name == *c))
        {
            return Err(refuse(
                "unknown_column",
                format!("asset {} has no column {c:?}", a.id),
            )
            .into());
        }
        Ok(())
    }

    fn active(a: &Asset) -> ModuleResult<()> {
        if a.status != AssetStatus::Active {
            return Err(refuse("asset_retired", format!("asset {} is retired", a.id)).into());
        }
        Ok(())
    }

    /// Whether `user` may run `protocol` on `columns` of `a` now: the
    /// grant that allows it (`None` for the owner). Of a job's columns,
    /// those of this asset count (a job over several assets names the
    /// columns of all); a job naming none of them uses every column.
    fn authorize(
        state: &ModuleState<'_, '_>,
        height: u64,
        a: &Asset,
        user: &Address,
        protocol: &str,
        columns: &[String],
    ) -> ModuleResult<Option<Grant>> {
        Self::active(a)?;
        let own: Vec<String> = columns
            .iter()
            .filter(|c| a.schema.iter().any(|s| &s.name == *c))
            .cloned()
            .collect();
        let columns = &own[..];
        if *user == a.owner {
            return Ok(None);
        }
        let grants: Vec<Grant> = scan_typed(state, format!("g/{:020}/", a.id).as_bytes())?;
        let covering: Vec<Grant> = grants
            .into_iter()
            .filter(|g| {
                // A grant of some columns covers exactly those; using every
                // column (an empty list) needs a grant of every column.
                let cols_ok = if g.columns.is_empty() {
                    true
                } else {
                    !columns.is_empty() && columns.iter().all(|c| g.columns.contains(c))
                };
                g.to == *user && !g.revoked && g.protocols.iter().any(|p| p == protocol) && cols_ok
            })
            .collect();
        if covering.is_empty() {
            return Err(refuse(
                "not_granted",
                format!(
                    "{user} holds no grant of asset {} for {protocol} on those columns",
                    a.id
                ),
            )
            .into());
        }
        covering
            .into_iter()
            .find(|g| (g.until == 0 || height <= g.until) && g.uses_left != Some(0))
            .map(Some)
            .ok_or_else(|| {
                refuse(
                    "grant_expired",
                    format!(
                        "{user}'s grants of asset {} are past their last block or used up",
                        a.id
                    ),
                )
                .into()
            })
    }
}

impl Module for Data {
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
            "data starts empty: its section is {}",
        )
    }

    fn execute(&self, ctx: &mut ModuleCtx<'_, '_>, msg: &[u8]) -> ModuleResult<Vec<u8>> {
        let msg: DataMsg = borsh::from_slice(msg).map_err(|e| ModuleError::bad_message(ID, e))?;
        match msg {
            DataMsg::Register {
                name,
                schema,
                rows,
                commitment,
                agent,
                agent_key,
                price,
            } => {
                if name.trim().is_empty() || name.len() > 128 {
                    return Err(refuse("bad_asset", "a name is 1-128 bytes").into());
                }
                if schema.is_empty() || schema.len() > 1024 {
                    return Err(refuse("bad_asset", "a schema has 1-1024 columns").into());
                }
                let mut names: Vec<&str> = schema.iter().map(|c| c.name.as_str()).collect();
                names.sort_unstable();
                if names.windows(2).any(|w| w[0] == w[1]) || names.iter().any(|n| n.is_empty()) {
                    return Err(
                        refuse("bad_asset", "column names are non-empty and distinct").into(),
                    );
                }
                if agent.is_empty()
                    || agent.len() > 256
                    || agent_key.is_empty()
                    || agent_key.len() > 128
                {
                    return Err(
                        refuse("bad_asset", "an asset names its agent's endpoint and key").into(),
                    );
                }
                let id = counter(&mut ctx.state, NEXT_ASSET)?;
                let asset = Asset {
                    id,
                    name: name.clone(),
                    owner: ctx.caller,
                    schema,
                    rows,
                    commitment,
                    version: 1,
                    agent,
                    agent_key,
                    price,
                    status: AssetStatus::Active,
                };
                ctx.state.set_typed(&akey(id), &asset);
                Self::record(
                    ctx,
                    id,
                    "registered",
                    vec![
                        ("name", name),
                        ("owner", asset.owner.to_string()),
                        ("commitment", commitment.to_string()),
                        ("rows", rows.to_string()),
                        ("price", price.to_string()),
                    ],
                )?;
                Ok(id.to_le_bytes().to_vec())
            }
            DataMsg::Transfer { asset, to } => {
                let mut a = owned(ctx, asset)?;
                a.owner = to;
                ctx.state.set_typed(&akey(asset), &a);
                Self::record(ctx, asset, "transferred", vec![("to", to.to_string())])?;
                Ok(Vec::new())
            }
            DataMsg::Update {
                asset,
                commitment,
                rows,
            } => {
                let mut a = owned(ctx, asset)?;
                Self::active(&a)?;
                a.commitment = commitment;
                a.rows = rows;
                a.version += 1;
                ctx.state.set_typed(&akey(asset), &a);
                Self::record(
                    ctx,
                    asset,
                    "updated",
                    vec![
                        ("commitment", commitment.to_string()),
                        ("rows", rows.to_string()),
                        ("version", a.version.to_string()),
                    ],
                )?;
                Ok(Vec::new())
            }
            DataMsg::Retire { asset } => {
                let mut a = owned(ctx, asset)?;
                Self::active(&a)?;
                a.status = AssetStatus::Retired;
                ctx.state.set_typed(&akey(asset), &a);
                Self::record(ctx, asset, "retired", vec![])?;
                Ok(Vec::new())
            }
            DataMsg::Grant {
                asset,
                to,
                protocols,
                columns,
                until,
                uses,
            } => {
                let a = owned(ctx, asset)?;
                Self::active(&a)?;
                if protocols.is_empty() {
                    return Err(refuse("bad_grant", "a grant names at least one protocol").into());
                }
                if let Some(p) = protocols.iter().find(|p| !PROTOCOLS.contains(&p.as_str())) {
                    return Err(refuse(
                        "unknown_protocol",
                        format!("{p:?} is not a protocol ({})", PROTOCOLS.join(", ")),
                    )
                    .into());
                }
                Self::check_columns(&a, &columns)?;
                if until != 0 && until < ctx.block.height {
                    return Err(refuse("bad_grant", format!("block {until} has passed")).into());
                }
                let id = counter(&mut ctx.state, format!("gn/{asset:020}").as_bytes())?;
                let g = Grant {
                    id,
                    to,
                    protocols: protocols.clone(),
                    columns: columns.clone(),
                    until,
                    uses_left: (uses != 0).then_some(uses),
                    revoked: false,
                };
                ctx.state.set_typed(&gkey(asset, id), &g);
                Self::record(
                    ctx,
                    asset,
                    "granted",
                    vec![
                        ("grant", id.to_string()),
                        ("to", to.to_string()),
                        ("protocols", protocols.join(",")),
                        ("columns", columns.join(",")),
                        ("until", until.to_string()),
                        ("uses", uses.to_string()),
                    ],
                )?;
                Ok(id.to_le_bytes().to_vec())
            }
            DataMsg::Revoke { asset, grant } => {
                owned(ctx, asset)?;
                let mut g: Grant = ctx.state.get_typed(&gkey(asset, grant))?.ok_or_else(|| {
                    refuse(
                        "unknown_grant",
                        format!("asset {asset} has no grant {grant}"),
                    )
                })?;
                if g.revoked {
                    return Err(refuse(
                        "unknown_grant",
                        format!("grant {grant} is revoked already"),
                    )
                    .into());
                }
                g.revoked = true;
                ctx.state.set_typed(&gkey(asset, grant), &g);
                Self::record(ctx, asset, "revoked", vec![("grant", grant.to_string())])?;
                Ok(Vec::new())
            }
            DataMsg::Use {
                asset,
                user,
                protocol,
                columns,
            } => {
                if ctx.caller != module_address(JOB) {
                    return Err(refuse("job_only", "an asset is used through a job").into());
                }
                let a = load(&ctx.state, asset)?;
                let grant =
                    Self::authorize(&ctx.state, ctx.block.height, &a, &user, &protocol, &columns)?;
                if let Some(mut g) = grant.clone() {
                    if let Some(n) = g.uses_left.as_mut() {
                        *n -= 1;
                    }
                    ctx.state.set_typed(&gkey(asset, g.id), &g);
                }
                Self::record(
                    ctx,
                    asset,
                    "used",
                    vec![
                        ("user", user.to_string()),
                        ("protocol", protocol),
                        ("grant", grant.map_or("owner".into(), |g| g.id.to_string())),
                    ],
                )?;
                Ok(Vec::new())
            }
        }
    }

    fn query(
        &self,
        state: &mut ModuleState<'_, '_>,
        path: &str,
        params: &BTreeMap<String, String>,
    ) -> ModuleResult<serde_json::Value> {
        let parts: Vec<&str> = path.split('/').collect();
        let id_of = |s: &str| -> ModuleResult<u64> {
            Ok(s.parse()
                .map_err(|_| refuse("bad_asset", format!("{s:?} is not an asset id")))?)
        };
        match parts.as_slice() {
            ["assets"] => {
                let all: Vec<Asset> = scan_typed(state, b"a/")?;
                Ok(json(&all))
            }
            ["assets", id] => Ok(json(&load(state, id_of(id)?)?)),
            ["assets", id, "grants"] => {
                let id = id_of(id)?;
                load(state, id)?;
                let g: Vec<Grant> = scan_typed(state, format!("g/{id:020}/").as_bytes())?;
                Ok(json(&g))
            }
            ["assets", id, "history"] => {
                let id = id_of(id)?;
                load(state, id)?;
                let h: Vec<HistoryEntry> = scan_typed(state, format!("h/{id:020}/").as_bytes())?;
                Ok(json(&h))
            }
            // Whether `user` may run `protocol` on `columns` now (writes nothing).
            ["assets", id, "authorize"] => {
                let a = load(state, id_of(id)?)?;
                let user: Address = params
                    .get("user")
                    .and_then(|u| u.parse().ok())
                    .ok_or_else(|| refuse("bad_address", "authorize needs ?user=ADDRESS"))?;
                let protocol = params.get("protocol").cloned().unwrap_or_default();
                let columns: Vec<String> = params
                    .get("columns")
                    .map(|c| c.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect())
                    .unwrap_or_default();
                // `at`: the block the use would be in (the API takes
                // `height` for the state to read).
                let height: u64 = params
                    .get("at")
                    .or_else(|| params.get("height"))
                    .and_then(|h| h.parse().ok())
                    .unwrap_or(0);
                let g = Self::authorize(state, height, &a, &user, &protocol, &columns)?;
                Ok(serde_json::json!({ "allowed": true, "grant": g.map(|g| g.id) }))
            }
            _ => Err(refuse(
                "unknown_query",
                format!("data answers assets, assets/ID, assets/ID/grants, assets/ID/history and assets/ID/authorize, not {path}"),
            )
            .into()),
        }
    }
}

fn json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}
