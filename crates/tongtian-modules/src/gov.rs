//! The `gov` module: proposals and weighted votes of the organisations.
//!
//! An organisation's admin files a proposal of a typed [`ProposalKind`];
//! the proposer's organisation counts as voting yes. Admins vote yes, no
//! or abstain, once per organisation, until the voting period (in blocks)
//! ends. A proposal **passes** as soon as its yes weight is more than its
//! kind's threshold of the total weight and the weight that voted reaches
//! the quorum; it is then **executed** in the same transaction (so in the
//! block that closed it), by messages to the module it concerns, sent as
//! `gov`. It is **rejected** as soon as it can no longer pass, or when the
//! period ends (at the end of that block). Thresholds and quorums per kind
//! and the period come from genesis; votes are fee-free.
//!
//! Every proposal, vote and result is an event from `gov`'s address, so
//! the chain is its own audit trail.

use crate::directive::Directive;
use crate::org::{self, OrgMsg, Organisation};
use crate::registry::{ChainRequest, RegistryMsg};
use crate::{decode_msg, to_json};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tongtian_execution::module::{
    FeePolicy, Module, ModuleCtx, ModuleError, ModuleResult, ModuleState,
};
use tongtian_execution::BlockEnv;
use tongtian_types::{ChainSpec, Event};

/// The module's id.
pub const ID: &str = "gov";

/// What a proposal asks for.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ProposalKind {
    /// Admit an organisation.
    AddOrg {
        /// The organisation.
        org: Organisation,
    },
    /// Remove an organisation (its nodes are disconnected).
    RemoveOrg {
        /// Its id.
        id: String,
    },
    /// Change an organisation's weight.
    SetWeight {
        /// Its id.
        id: String,
        /// The new weight.
        weight: u64,
    },
    /// Create a sub-chain.
    CreateChain {
        /// What it is to be.
        chain: ChainRequest,
    },
    /// Stop a sub-chain (its nodes stop it and keep its data).
    StopChain {
        /// Its name.
        name: String,
    },
    /// Freeze a contract (no transaction may call it).
    FreezeContract {
        /// Its address.
        address: tongtian_types::Address,
        /// The sub-chain it is on (none: the main chain).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chain: Option<String>,
    },
    /// Unfreeze it.
    UnfreezeContract {
        /// Its address.
        address: tongtian_types::Address,
        /// The sub-chain it is on (none: the main chain).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chain: Option<String>,
    },
    /// Replace a contract's code (same address, VM, storage and balance).
    UpgradeContract {
        /// Its address.
        address: tongtian_types::Address,
        /// The new code.
        #[serde(with = "tongtian_types::serde_hex")]
        code: Vec<u8>,
        /// The sub-chain it is on (none: the main chain).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chain: Option<String>,
    },
    /// Change a chain parameter (see [`crate::params`]).
    SetParam {
        /// Its name.
        name: String,
        /// Its new value.
        value: u64,
        /// The sub-chain (none: the main chain).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chain: Option<String>,
    },
    /// Lift the freeze of a chain's light client of another chain.
    UnfreezeClient {
        /// The client's id.
        client: String,
        /// The sub-chain that keeps it (none: the main chain).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chain: Option<String>,
    },
    /// Restart the trusting period of an expired light client.
    ReviveClient {
        /// The client's id.
        client: String,
        /// The sub-chain that keeps it (none: the main chain).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chain: Option<String>,
    },
    /// Replace a chain's validator set with these nodes (`ORG/NODE`, each
    /// validating with the key its organisation registered for the
    /// chain's suite).
    SetValidators {
        /// The nodes.
        nodes: Vec<String>,
        /// The sub-chain (none: the main chain).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chain: Option<String>,
    },
    /// Connect a chain of the network to a chain outside it (an external
    /// EVM chain, through an attested client): the client, unless the
    /// chain has it, and one channel end on it.
    ConnectExternal {
        /// The client of the external chain.
        client: Box<tongtian_xchain::client::ClientInit>,
        /// The channel end (its client is `client.id`).
        channel: tongtian_xchain::channel::ChannelInit,
        /// The sub-chain (none: the main chain).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chain: Option<String>,
    },
    /// Open a channel between two chains of the network (the main chain
    /// or sub-chains, a direct one between two sub-chains included), each
    /// end on a port: a module id or a contract's address. Both ends get
    /// the id `channel-p{proposal}`.
    OpenChannel {
        /// One end.
        a: crate::registry::ChannelSide,
        /// The other.
        b: crate::registry::ChannelSide,
        /// Packets delivered in sequence only.
        #[serde(default)]
        ordered: bool,
        /// The application's version string.
        #[serde(default)]
        version: String,
    },
}

impl ProposalKind {
    /// The kind's name, as rules and the CLI call it.
    pub fn name(&self) -> &'static str {
        match self {
            ProposalKind::AddOrg { .. } => "add-org",
            ProposalKind::RemoveOrg { .. } => "remove-org",
            ProposalKind::SetWeight { .. } => "set-weight",
            ProposalKind::CreateChain { .. } => "create-chain",
            ProposalKind::StopChain { .. } => "stop-chain",
            ProposalKind::FreezeContract { .. } => "freeze-contract",
            ProposalKind::UnfreezeContract { .. } => "unfreeze-contract",
            ProposalKind::UpgradeContract { .. } => "upgrade-contract",
            ProposalKind::SetParam { .. } => "set-param",
            ProposalKind::SetValidators { .. } => "set-validators",
            ProposalKind::UnfreezeClient { .. } => "unfreeze-client",
            ProposalKind::ReviveClient { .. } => "revive-client",
            ProposalKind::OpenChannel { .. } => "open-channel",
            ProposalKind::ConnectExternal { .. } => "connect-external",
        }
    }

    /// The chain a directive kind is for: `Some(None)` for the main
    /// chain, `Some(Some(name))` for a sub-chain, `None` for the kinds
    /// that are not directives (organisations and chains themselves).
    fn target(&self) -> Option<Option<&str>> {
        match self {
            ProposalKind::FreezeContract { chain, .. }
            | ProposalKind::UnfreezeContract { chain, .. }
            | ProposalKind::UpgradeContract { chain, .. }
            | ProposalKind::SetParam { chain, .. }
            | ProposalKind::SetValidators { chain, .. }
            | ProposalKind::ConnectExternal { chain, .. }
            | ProposalKind::UnfreezeClient { chain, .. }
            | ProposalKind::ReviveClient { chain, .. } => Some(chain.as_deref()),
            _ => None,
        }
    }
}

/// Every kind's name.
pub const KINDS: [&str; 14] = [
    "add-org",
    "remove-org",
    "set-weight",
    "create-chain",
    "stop-chain",
    "freeze-contract",
    "unfreeze-contract",
    "upgrade-contract",
    "set-param",
    "set-validators",
    "unfreeze-client",
    "revive-client",
    "open-channel",
    "connect-external",
];

/// A vote.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    /// For.
    Yes,
    /// Against.
    No,
    /// Counts toward the quorum only.
    Abstain,
}

impl std::str::FromStr for Choice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "yes" => Ok(Choice::Yes),
            "no" => Ok(Choice::No),
            "abstain" => Ok(Choice::Abstain),
            other => Err(format!("a vote is yes, no or abstain, not {other:?}")),
        }
    }
}

/// Messages of the `gov` module.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum GovMsg {
    /// File a proposal (from an organisation's admin).
    Propose {
        /// What it asks for.
        kind: ProposalKind,
    },
    /// Vote on an open proposal (from an organisation's admin).
    Vote {
        /// The proposal.
        proposal: u64,
        /// The vote.
        choice: Choice,
    },
}

impl GovMsg {
    /// As a transaction action.
    pub fn action(&self) -> tongtian_types::Action {
        tongtian_types::Action::Module {
            module: ID.into(),
            msg: borsh::to_vec(self).expect("gov messages encode"),
        }
    }
}

/// A fraction of the total weight.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct Fraction {
    /// Numerator.
    pub num: u64,
    /// Denominator (positive).
    pub den: u64,
}

/// When a kind of proposal passes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct Rule {
    /// Yes weight must be *more than* this fraction of the total.
    pub threshold: Fraction,
    /// The weight that voted (any choice) must be *at least* this fraction.
    pub quorum: Fraction,
}

/// The module's parameters (its genesis section).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Blocks a proposal stays open.
    #[serde(default = "default_period")]
    pub voting_period: u64,
    /// Rules by kind name; kinds not named get the defaults (more than
    /// 1/2 for organisations, more than 2/3 for everything that changes a
    /// chain; quorum 1/2).
    #[serde(default)]
    pub rules: BTreeMap<String, Rule>,
}

fn default_period() -> u64 {
    600
}

impl Params {
    /// The rule of kind `kind`.
    pub fn rule(&self, kind: &str) -> Rule {
        if let Some(r) = self.rules.get(kind) {
            return *r;
        }
        let threshold = match kind {
            "add-org" | "remove-org" | "set-weight" => Fraction { num: 1, den: 2 },
            _ => Fraction { num: 2, den: 3 },
        };
        Rule {
            threshold,
            quorum: Fraction { num: 1, den: 2 },
        }
    }
}

/// Where a proposal stands.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Voting.
    Open,
    /// Passed, but its execution failed (see `execution_error`).
    Passed,
    /// Did not pass.
    Rejected,
    /// Passed and carried out.
    Executed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Passed => "passed",
            Status::Rejected => "rejected",
            Status::Executed => "executed",
        }
    }
}

/// Weight by choice.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct Tally {
    /// Yes weight.
    pub yes: u64,
    /// No weight.
    pub no: u64,
    /// Abstained weight.
    pub abstain: u64,
    /// Total weight of all organisations.
    pub total: u64,
}

/// A proposal as kept in state.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Proposal {
    /// Its id (from 1).
    pub id: u64,
    /// What it asks for.
    pub kind: ProposalKind,
    /// The proposing organisation.
    pub proposer: String,
    /// Where it stands.
    pub status: Status,
    /// Votes by organisation.
    pub votes: BTreeMap<String, Choice>,
    /// The tally (as of the last vote).
    pub tally: Tally,
    /// Height it was filed at.
    pub submitted_height: u64,
    /// Last height votes are taken at.
    pub voting_end_height: u64,
    /// The rule it is judged by.
    pub rule: Rule,
    /// Why execution failed, when it did.
    pub execution_error: Option<String>,
    /// Height it was decided at.
    pub decided_height: Option<u64>,
}

fn pkey(id: u64) -> Vec<u8> {
    format!("p/{id:020}").into_bytes()
}

fn open_key(id: u64) -> Vec<u8> {
    format!("open/{id:020}").into_bytes()
}

const PARAMS: &[u8] = b"params";
const NEXT: &[u8] = b"next";

fn params(state: &ModuleState<'_, '_>) -> ModuleResult<Params> {
    Ok(state
        .get_typed(PARAMS)?
        .ok_or_else(|| tongtian_execution::ExecutionError::Corrupt("gov has no params".into()))?)
}

/// A kind that fell through to the directive arm without being one: a
/// bug in this module, reported as corrupt rather than a panic.
fn not_a_directive(kind: &ProposalKind) -> tongtian_execution::module::ModuleFailure {
    tongtian_execution::ExecutionError::Corrupt(format!("{} is not a directive", kind.name()))
        .into()
}

/// The `gov` module.
#[derive(Debug, Default)]
pub struct Gov;

fn tally(votes: &BTreeMap<String, Choice>, orgs: &[Organisation]) -> Tally {
    let mut t = Tally {
        total: orgs.iter().map(|o| o.weight).sum(),
        ..Tally::default()
    };
    for o in orgs {
        match votes.get(&o.id) {
            Some(Choice::Yes) => t.yes += o.weight,
            Some(Choice::No) => t.no += o.weight,
            Some(Choice::Abstain) => t.abstain += o.weight,
            None => {}
        }
    }
    t
}

/// `a / total > f` (strict), in integers.
fn above(a: u64, total: u64, f: Fraction) -> bool {
    (a as u128) * (f.den as u128) > (f.num as u128) * (total as u128)
}

/// `a / total >= f`.
fn at_least(a: u64, total: u64, f: Fraction) -> bool {
    (a as u128) * (f.den as u128) >= (f.num as u128) * (total as u128)
}

impl Gov {
    /// Judge `p` after a vote: passed (and executed), rejected, or open.
    fn judge(ctx: &mut ModuleCtx<'_, '_>, p: &mut Proposal) -> ModuleResult<()> {
        let t = &p.tally;
        let voted = t.yes + t.no + t.abstain;
        let passes =
            above(t.yes, t.total, p.rule.threshold) && at_least(voted, t.total, p.rule.quorum);
        // Even if every organisation yet to vote voted yes, it would not pass.
        let hopeless = !above(t.total - t.no - t.abstain, t.total, p.rule.threshold);
        if passes {
            p.decided_height = Some(ctx.block.height);
            match Self::execute_kind(ctx, p.id, &p.kind) {
                Ok(()) => p.status = Status::Executed,
                Err(e) => {
                    p.status = Status::Passed;
                    p.execution_error = Some(e.to_string());
                }
            }
        } else if hopeless {
            p.status = Status::Rejected;
            p.decided_height = Some(ctx.block.height);
        }
        Ok(())
    }

    /// Carry out passed proposal `id`, as `gov`.
    fn execute_kind(ctx: &mut ModuleCtx<'_, '_>, id: u64, kind: &ProposalKind) -> ModuleResult<()> {
        match kind {
            ProposalKind::OpenChannel {
                a,
                b,
                ordered,
                version,
            } => ctx.call(
                crate::registry::ID,
                &RegistryMsg::OpenChannel {
                    proposal: id,
                    request: crate::registry::ChannelRequest {
                        a: a.clone(),
                        b: b.clone(),
                        ordered: *ordered,
                        version: version.clone(),
                    },
                }
                .encode(),
            )?,
            ProposalKind::AddOrg { org } => {
                ctx.call(org::ID, &OrgMsg::Add(org.clone()).encode())?
            }
            ProposalKind::RemoveOrg { id } => {
                ctx.call(org::ID, &OrgMsg::Remove { id: id.clone() }.encode())?
            }
            ProposalKind::SetWeight { id, weight } => ctx.call(
                org::ID,
                &OrgMsg::SetWeight {
                    id: id.clone(),
                    weight: *weight,
                }
                .encode(),
            )?,
            ProposalKind::CreateChain { chain } => ctx.call(
                crate::registry::ID,
                &RegistryMsg::Create {
                    request: chain.clone(),
                }
                .encode(),
            )?,
            ProposalKind::StopChain { name } => ctx.call(
                crate::registry::ID,
                &RegistryMsg::Stop { name: name.clone() }.encode(),
            )?,
            _ => match Self::directive_of(ctx, kind)? {
                Some((None, d)) => {
                    d.apply(ctx)?;
                    Vec::new()
                }
                Some((Some(chain), directive)) => ctx.call(
                    crate::registry::ID,
                    &RegistryMsg::Direct {
                        name: chain,
                        directive,
                    }
                    .encode(),
                )?,
                None => return Err(not_a_directive(kind)),
            },
        };
        Ok(())
    }

    /// The directive a kind stands for and the chain it is for (`None`:
    /// the main chain), with a validator set's nodes resolved to the keys
    /// their organisations registered for that chain's suite.
    fn directive_of(
        ctx: &mut ModuleCtx<'_, '_>,
        kind: &ProposalKind,
    ) -> ModuleResult<Option<(Option<String>, Directive)>> {
        let Some(target) = kind.target() else {
            return Ok(None);
        };
        let target = target.map(str::to_string);
        let d = match kind {
            ProposalKind::FreezeContract { address, .. } => {
                Directive::FreezeContract { address: *address }
            }
            ProposalKind::UnfreezeContract { address, .. } => {
                Directive::UnfreezeContract { address: *address }
            }
            ProposalKind::UpgradeContract { address, code, .. } => Directive::UpgradeContract {
                address: *address,
                code: code.clone(),
            },
            ProposalKind::SetParam { name, value, .. } => Directive::SetParam {
                name: name.clone(),
                value: *value,
            },
            ProposalKind::UnfreezeClient { client, .. } => Directive::UnfreezeClient {
                client: client.clone(),
            },
            ProposalKind::ReviveClient { client, .. } => Directive::ReviveClient {
                client: client.clone(),
            },
            ProposalKind::ConnectExternal {
                client, channel, ..
            } => Directive::OpenChannel {
                client: client.clone(),
                channel: channel.clone(),
            },
            ProposalKind::SetValidators { nodes, .. } => {
                let (suite, members) = match &target {
                    None => (ctx.chain.suite, None),
                    Some(chain) => {
                        let v = ctx.query(
                            crate::registry::ID,
                            &format!("chains/{chain}"),
                            &BTreeMap::new(),
                        )?;
                        let entry: crate::registry::ChainEntry = serde_json::from_value(v)
                            .map_err(|e| {
                                tongtian_execution::ExecutionError::Corrupt(e.to_string())
                            })?;
                        (entry.suite, Some(entry.orgs))
                    }
                };
                let orgs = org::read_all(ctx)?;
                let mut validators = Vec::new();
                for n in nodes {
                    let (org_id, node) = n.split_once('/').ok_or_else(|| {
                        ModuleError::new(
                            "bad_node",
                            format!("{n:?}: a validator is named ORG/NODE"),
                        )
                    })?;
                    let o = orgs.iter().find(|o| o.id == org_id).ok_or_else(|| {
                        ModuleError::new(
                            "unknown_org",
                            format!("there is no organisation {org_id}"),
                        )
                    })?;
                    if members
                        .as_ref()
                        .is_some_and(|m| !m.iter().any(|m| m == org_id))
                    {
                        return Err(ModuleError::new(
                            "not_a_member_org",
                            format!("{org_id} is not a member of the chain"),
                        )
                        .into());
                    }
                    let info = o.nodes.iter().find(|x| x.name == node).ok_or_else(|| {
                        ModuleError::new("unknown_node", format!("{org_id} has no node {node}"))
                    })?;
                    let key = info.key_for(suite).ok_or_else(|| {
                        ModuleError::new(
                            "no_validator_key",
                            format!("{n} registered no {suite} validator key"),
                        )
                    })?;
                    validators.push(tongtian_types::ValidatorSpec {
                        name: n.clone(),
                        public_key: key.to_vec(),
                    });
                }
                Directive::SetValidators { validators }
            }
            _ => return Ok(None),
        };
        Ok(Some((target, d)))
    }

    /// Whether a proposal of this kind could be carried out now (checked
    /// when it is filed, so a malformed one never comes to a vote).
    fn check_kind(
        ctx: &mut ModuleCtx<'_, '_>,
        kind: &ProposalKind,
        orgs: &[Organisation],
    ) -> ModuleResult<()> {
        let known = |id: &str| {
            if orgs.iter().any(|o| o.id == id) {
                Ok(())
            } else {
                Err(ModuleError::new(
                    "unknown_org",
                    format!("there is no organisation {id}"),
                ))
            }
        };
        match kind {
            ProposalKind::AddOrg { org } => {
                if orgs.iter().any(|o| o.id == org.id) {
                    return Err(ModuleError::new(
                        "org_exists",
                        format!("organisation {} exists already", org.id),
                    )
                    .into());
                }
            }
            ProposalKind::RemoveOrg { id } => known(id)?,
            ProposalKind::SetWeight { id, weight } => {
                known(id)?;
                if *weight == 0 {
                    return Err(
                        ModuleError::new("bad_weight", "a voting weight must be positive").into(),
                    );
                }
            }
            ProposalKind::CreateChain { chain } => {
                ctx.call(
                    crate::registry::ID,
                    &RegistryMsg::Check {
                        request: chain.clone(),
                    }
                    .encode(),
                )?;
            }
            ProposalKind::StopChain { name } => {
                ctx.call(
                    crate::registry::ID,
                    &RegistryMsg::CheckStop { name: name.clone() }.encode(),
                )?;
            }
            ProposalKind::OpenChannel {
                a,
                b,
                ordered,
                version,
            } => {
                ctx.call(
                    crate::registry::ID,
                    &RegistryMsg::CheckChannel {
                        request: crate::registry::ChannelRequest {
                            a: a.clone(),
                            b: b.clone(),
                            ordered: *ordered,
                            version: version.clone(),
                        },
                    }
                    .encode(),
                )?;
            }
            _ => match Self::directive_of(ctx, kind)? {
                Some((None, d)) => {
                    // The main chain must run the module the directive needs.
                    match ctx.query(d.module(), "params", &BTreeMap::new()) {
                        Ok(answer) if d.module() == crate::params::ID => {
                            d.check(crate::params::cap_of(&answer))?
                        }
                        Err(tongtian_execution::module::ModuleFailure::Module(e))
                            if e.code == "unknown_module" =>
                        {
                            return Err(e.into())
                        }
                        Err(tongtian_execution::module::ModuleFailure::Execution(e)) => {
                            return Err(e.into())
                        }
                        _ => d.check(u64::MAX)?,
                    }
                    if let Directive::UnfreezeClient { client }
                    | Directive::ReviveClient { client } = &d
                    {
                        ctx.query(
                            tongtian_xchain::client::ID,
                            &format!("clients/{client}"),
                            &BTreeMap::new(),
                        )?;
                    }
                    if let Directive::UpgradeContract { address, code } = &d {
                        ctx.call(
                            crate::contracts::ID,
                            &crate::contracts::ContractsMsg::CheckUpgrade {
                                address: *address,
                                code: code.clone(),
                            }
                            .encode(),
                        )?;
                    }
                }
                Some((Some(chain), directive)) => {
                    // Sub-chains take the spec's default cap (see `spec_of`).
                    directive.check(u64::from(tongtian_types::Limits::default().max_tx_bytes))?;
                    ctx.call(
                        crate::registry::ID,
                        &RegistryMsg::CheckDirect {
                            name: chain,
                            directive,
                        }
                        .encode(),
                    )?;
                }
                None => return Err(not_a_directive(kind)),
            },
        }
        Ok(())
    }

    fn event(ctx: &mut ModuleCtx<'_, '_>, name: &str, p: &Proposal) {
        ctx.emit(
            name,
            vec![
                ("proposal".into(), p.id.to_string()),
                ("kind".into(), p.kind.name().into()),
                ("status".into(), p.status.as_str().into()),
                ("yes".into(), p.tally.yes.to_string()),
                ("no".into(), p.tally.no.to_string()),
                ("abstain".into(), p.tally.abstain.to_string()),
                ("total".into(), p.tally.total.to_string()),
            ],
        );
    }
}

impl Module for Gov {
    fn id(&self) -> &'static str {
        ID
    }

    fn genesis(
        &self,
        state: &mut ModuleState<'_, '_>,
        _spec: &ChainSpec,
        section: Option<&serde_json::Value>,
    ) -> ModuleResult<()> {
        let p: Params = match section {
            None => Params {
                voting_period: default_period(),
                rules: BTreeMap::new(),
            },
            Some(s) => serde_json::from_value(s.clone())
                .map_err(|e| ModuleError::new("bad_genesis", format!("gov section: {e}")))?,
        };
        if p.voting_period == 0 {
            return Err(ModuleError::new("bad_genesis", "voting_period must be positive").into());
        }
        for (kind, r) in &p.rules {
            if !KINDS.contains(&kind.as_str()) {
                return Err(ModuleError::new(
                    "bad_genesis",
                    format!("no proposal kind {kind:?} (kinds: {})", KINDS.join(", ")),
                )
                .into());
            }
            if r.threshold.den == 0
                || r.quorum.den == 0
                || r.threshold.num > r.threshold.den
                || r.quorum.num > r.quorum.den
            {
                return Err(ModuleError::new(
                    "bad_genesis",
                    format!(
                        "rule of {kind}: fractions between 0 and 1 with a positive denominator"
                    ),
                )
                .into());
            }
        }
        state.set_typed(PARAMS, &p);
        state.set_typed(NEXT, &1u64);
        Ok(())
    }

    fn fee_policy(
        &self,
        _state: &mut ModuleState<'_, '_>,
        _tx: &tongtian_types::CheckedTx,
        msg: &[u8],
    ) -> FeePolicy {
        match borsh::from_slice::<GovMsg>(msg) {
            Ok(GovMsg::Vote { .. }) => FeePolicy::Free,
            _ => FeePolicy::Charged,
        }
    }

    fn execute(&self, ctx: &mut ModuleCtx<'_, '_>, msg: &[u8]) -> ModuleResult<Vec<u8>> {
        let msg: GovMsg = decode_msg(ID, msg)?;
        let orgs = org::read_all(ctx)?;
        let Some(me) = orgs.iter().find(|o| o.admin == ctx.caller).cloned() else {
            return Err(ModuleError::new(
                "not_a_member",
                format!(
                    "{} is no organisation's admin: only admins propose and vote",
                    ctx.caller
                ),
            )
            .into());
        };
        let params = params(&ctx.state)?;
        match msg {
            GovMsg::Propose { kind } => {
                Self::check_kind(ctx, &kind, &orgs)?;
                let id: u64 = ctx.state.get_typed(NEXT)?.unwrap_or(1);
                ctx.state.set_typed(NEXT, &(id + 1));
                let mut votes = BTreeMap::new();
                votes.insert(me.id.clone(), Choice::Yes);
                let mut p = Proposal {
                    id,
                    rule: params.rule(kind.name()),
                    kind,
                    proposer: me.id.clone(),
                    status: Status::Open,
                    tally: tally(&votes, &orgs),
                    votes,
                    submitted_height: ctx.block.height,
                    voting_end_height: ctx.block.height + params.voting_period,
                    execution_error: None,
                    decided_height: None,
                };
                Self::event(ctx, "proposal_submitted", &p);
                Self::judge(ctx, &mut p)?;
                if p.status == Status::Open {
                    ctx.state.set(&open_key(id), vec![1]);
                } else {
                    Self::event(ctx, "proposal_decided", &p);
                }
                ctx.state.set_typed(&pkey(id), &p);
                Ok(id.to_le_bytes().to_vec())
            }
            GovMsg::Vote { proposal, choice } => {
                let mut p: Proposal = ctx.state.get_typed(&pkey(proposal))?.ok_or_else(|| {
                    ModuleError::new(
                        "unknown_proposal",
                        format!("there is no proposal {proposal}"),
                    )
                })?;
                if p.status != Status::Open {
                    return Err(ModuleError::new(
                        "proposal_closed",
                        format!("proposal {proposal} is {} already", p.status.as_str()),
                    )
                    .into());
                }
                if ctx.block.height > p.voting_end_height {
                    return Err(ModuleError::new(
                        "voting_ended",
                        format!(
                            "voting on proposal {proposal} ended at height {}",
                            p.voting_end_height
                        ),
                    )
                    .into());
                }
                if p.votes.contains_key(&me.id) {
                    return Err(ModuleError::new(
                        "already_voted",
                        format!("{} has voted on proposal {proposal} already", me.id),
                    )
                    .into());
                }
                p.votes.insert(me.id.clone(), choice);
                p.tally = tally(&p.votes, &orgs);
                ctx.emit(
                    "vote_cast",
                    vec![
                        ("proposal".into(), proposal.to_string()),
                        ("org".into(), me.id.clone()),
                        ("choice".into(), format!("{choice:?}").to_lowercase()),
                    ],
                );
                Self::judge(ctx, &mut p)?;
                if p.status != Status::Open {
                    ctx.state.delete(&open_key(proposal));
                    Self::event(ctx, "proposal_decided", &p);
                }
                ctx.state.set_typed(&pkey(proposal), &p);
                Ok(Vec::new())
            }
        }
    }

    fn end_block(
        &self,
        state: &mut ModuleState<'_, '_>,
        block: &BlockEnv,
    ) -> ModuleResult<Vec<Event>> {
        let mut events = Vec::new();
        let open = state.scan(b"open/", None, 1024)?;
        for (k, _) in open {
            let id: u64 = std::str::from_utf8(&k[5..])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let Some(mut p) = state.get_typed::<Proposal>(&pkey(id))? else {
                continue;
            };
            if block.height >= p.voting_end_height {
                p.status = Status::Rejected;
                p.decided_height = Some(block.height);
                state.set_typed(&pkey(id), &p);
                state.delete(&k);
                events.push(Event {
                    emitter: tongtian_execution::module::module_address(ID),
                    name: "proposal_decided".into(),
                    attributes: vec![
                        ("proposal".into(), id.to_string()),
                        ("kind".into(), p.kind.name().into()),
                        ("status".into(), "rejected".into()),
                        ("reason".into(), "voting period ended".into()),
                    ],
                });
            }
        }
        Ok(events)
    }

    fn query(
        &self,
        state: &mut ModuleState<'_, '_>,
        path: &str,
        params_q: &BTreeMap<String, String>,
    ) -> ModuleResult<serde_json::Value> {
        if path == "params" {
            return Ok(to_json(&params(state)?));
        }
        if path == "proposals" {
            let only_open = params_q.get("open").is_some_and(|v| v != "false");
            let mut out = Vec::new();
            let mut after: Option<Vec<u8>> = None;
            loop {
                let page = state.scan(b"p/", after.as_deref(), 256)?;
                let Some((last, _)) = page.last() else { break };
                after = Some(last.clone());
                for (_, v) in &page {
                    let p: Proposal = tongtian_types::codec::decode("proposal", v)
                        .map_err(|e| tongtian_execution::ExecutionError::Corrupt(e.to_string()))?;
                    if !only_open || p.status == Status::Open {
                        out.push(to_json(&p));
                    }
                }
                if page.len() < 256 {
                    break;
                }
            }
            return Ok(serde_json::Value::Array(out));
        }
        if let Some(id) = path.strip_prefix("proposals/") {
            let id: u64 = id.parse().map_err(|_| {
                ModuleError::new("bad_proposal_id", format!("{id:?} is not a proposal id"))
            })?;
            let p: Proposal = state.get_typed(&pkey(id))?.ok_or_else(|| {
                ModuleError::new("not_found", format!("there is no proposal {id}"))
            })?;
            return Ok(to_json(&p));
        }
        Err(ModuleError::new(
            "unknown_query",
            format!("gov answers params, proposals[?open] and proposals/ID, not {path}"),
        )
        .into())
    }
}
