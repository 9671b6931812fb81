//! The `registry` module: the sub-chains of the network.
//!
//! A passed `create-chain` proposal writes an entry: name, chain id,
//! engine, suite, VMs, member organisations, validators, genesis accounts,
//! status. The validators are fixed when the entry is written: for each
//! member organisation (in id order), its first node that registered a
//! validator key for the chain's suite in the `org` module. That is how a
//! sub-chain's validator keys are known before its genesis: a node
//! registers one key per suite when its organisation joins (or later with
//! `SetNodes`), and every member node derives the identical genesis spec
//! from the entry with [`spec_of`]. Entries are changed only by `gov`.

use crate::org::{self, Organisation};
use crate::{decode_msg, only_from, to_json};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tongtian_crypto::SuiteId;
use tongtian_execution::module::{Module, ModuleCtx, ModuleError, ModuleResult, ModuleState};
use tongtian_types::{serde_hex, ChainSpec, GenesisAccount, ModuleSections, SpecBuilder, VmKind};

/// The module's id.
pub const ID: &str = "registry";

/// The consensus engines a sub-chain may run.
pub const ENGINES: [&str; 3] = ["solo", "raft", "bft"];

/// What a `create-chain` proposal asks for.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ChainRequest {
    /// Name (1-32 of a-z, 0-9, -).
    pub name: String,
    /// solo, raft or bft.
    pub engine: String,
    /// Crypto suite.
    pub suite: SuiteId,
    /// Member organisations.
    pub orgs: Vec<String>,
    /// VMs (default both).
    #[serde(default = "all_vms")]
    pub vms: Vec<VmKind>,
    /// Accounts funded at genesis.
    #[serde(default)]
    pub fund: Vec<GenesisAccount>,
    /// Chain id (default: the next free one after the main chain's).
    #[serde(default)]
    pub chain_id: Option<u64>,
    /// Only the funded accounts and the members' admins may send
    /// transactions (the `access` module).
    #[serde(default)]
    pub restricted: bool,
}

fn all_vms() -> Vec<VmKind> {
    VmKind::ALL.to_vec()
}

/// A sub-chain validator: which organisation's node, with which key.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ChainValidator {
    /// The organisation.
    pub org: String,
    /// Its node's name.
    pub node: String,
    /// The node's transport key (where its votes come from).
    #[serde(with = "serde_hex")]
    pub transport_key: Vec<u8>,
    /// The validator key under the chain's suite.
    #[serde(with = "serde_hex")]
    pub public_key: Vec<u8>,
}

/// Active or stopped.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ChainStatus {
    /// Its nodes run it.
    Active,
    /// Its nodes stopped it (and keep its data).
    Stopped,
}

/// A registered sub-chain.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ChainEntry {
    /// Name.
    pub name: String,
    /// Chain id.
    pub chain_id: u64,
    /// Engine.
    pub engine: String,
    /// Suite.
    pub suite: SuiteId,
    /// VMs.
    pub vms: Vec<VmKind>,
    /// Member organisations.
    pub orgs: Vec<String>,
    /// Validators.
    pub validators: Vec<ChainValidator>,
    /// Transport keys of every node of the member organisations (who may
    /// receive the chain's traffic).
    pub members: Vec<MemberNode>,
    /// Genesis accounts.
    pub accounts: Vec<GenesisAccount>,
    /// Whether the `access` module keeps it to its accounts.
    pub restricted: bool,
    /// Status.
    pub status: ChainStatus,
    /// Main-chain height it was created at.
    pub created_height: u64,
    /// Its genesis time: the creating block's time.
    pub genesis_time_ms: u64,
    /// What votes decided for it since, in order (directive `i + 1` is
    /// `directives[i]`); its validators carry each over (see
    /// [`crate::directive`]).
    #[serde(default)]
    pub directives: Vec<crate::directive::Directive>,
    /// Its link to the main chain, made at its birth when the main chain
    /// runs the cross-chain modules: each side's client of the other and a
    /// transfer channel (the sub-chain's `channel-0`).
    #[serde(default)]
    pub xchain: Option<XchainLink>,
}

/// How a sub-chain and the main chain know each other from the start.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct XchainLink {
    /// The main chain's transfer channel to the sub-chain (the sub-chain's
    /// `channel-0`).
    pub main_channel: String,
    /// The main chain's NFT channel to it (the sub-chain's `channel-1`),
    /// when the main chain runs `nft-transfer`.
    #[serde(default)]
    pub main_nft_channel: Option<String>,
    /// The sub-chain's starting trust in the main chain (its client `main`).
    pub main_client: tongtian_xchain::client::ClientInit,
}

impl XchainLink {
    /// The channel pairs between the main chain and sub-chain `name`: its
    /// transfer channel, and its NFT channel where there is one.
    pub fn paths(&self, name: &str) -> Vec<tongtian_xchain::relay::Path> {
        let pair = |main: &str, sub: &str| tongtian_xchain::relay::Path {
            a_channel: main.to_string(),
            a_client: name.to_string(),
            b_channel: sub.into(),
            b_client: "main".into(),
        };
        let mut paths = vec![pair(&self.main_channel, "channel-0")];
        if let Some(nft) = &self.main_nft_channel {
            paths.push(pair(nft, "channel-1"));
        }
        paths
    }
}

/// One end of a channel a vote asks for.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ChannelSide {
    /// The sub-chain (none: the main chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// The port there: a module id (`transfer`, ...) or a contract's
    /// address.
    pub port: String,
}

impl ChannelSide {
    /// The chain's name, `main` for the main chain.
    pub fn chain_name(&self) -> &str {
        self.chain.as_deref().unwrap_or("main")
    }
}

/// A channel a vote asks for.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ChannelRequest {
    /// One end.
    pub a: ChannelSide,
    /// The other.
    pub b: ChannelSide,
    /// Packets delivered in sequence only.
    pub ordered: bool,
    /// The application's version string.
    pub version: String,
}

/// One end of a channel opened by vote, as relayers need it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct LinkEnd {
    /// The chain (`main` for the main chain).
    pub chain: String,
    /// The channel there.
    pub channel: String,
    /// The client there of the other end's chain.
    pub client: String,
    /// The port there.
    pub port: String,
}

/// A channel opened by vote.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ChannelLink {
    /// The proposal that opened it.
    pub proposal: u64,
    /// One end.
    pub a: LinkEnd,
    /// The other.
    pub b: LinkEnd,
    /// Ordered.
    pub ordered: bool,
    /// The application's version string.
    pub version: String,
}

/// A pair of chains a relayer serves and the channels between them.
#[derive(Clone, Debug)]
pub struct RelayPair {
    /// One chain (`main` for the main chain).
    pub a: String,
    /// The other.
    pub b: String,
    /// The channels, `a`'s end first.
    pub paths: Vec<tongtian_xchain::relay::Path>,
}

impl RelayPair {
    /// A name for reports: the sub-chain for a pair with the main chain,
    /// else `a+b`.
    pub fn name(&self) -> String {
        if self.a == "main" {
            self.b.clone()
        } else {
            format!("{}+{}", self.a, self.b)
        }
    }
}

/// Every pair of chains with channels between them: each active linked
/// sub-chain with the main chain, and the ends of channels opened by vote
/// (merged into the same pair where the chains are the same).
pub fn relay_pairs(entries: &[ChainEntry], links: &[ChannelLink]) -> Vec<RelayPair> {
    let active = |name: &str| {
        name == "main"
            || entries
                .iter()
                .any(|e| e.name == name && e.status == ChainStatus::Active)
    };
    let mut pairs: Vec<RelayPair> = entries
        .iter()
        .filter(|e| e.status == ChainStatus::Active)
        .filter_map(|e| {
            e.xchain.as_ref().map(|x| RelayPair {
                a: "main".into(),
                b: e.name.clone(),
                paths: x.paths(&e.name),
            })
        })
        .collect();
    for l in links {
        if !active(&l.a.chain) || !active(&l.b.chain) {
            continue;
        }
        let (first, second) = if l.b.chain == "main" {
            (&l.b, &l.a)
        } else {
            (&l.a, &l.b)
        };
        let path = tongtian_xchain::relay::Path {
            a_channel: first.channel.clone(),
            a_client: first.client.clone(),
            b_channel: second.channel.clone(),
            b_client: second.client.clone(),
        };
        if let Some(p) = pairs
            .iter_mut()
            .find(|p| p.a == first.chain && p.b == second.chain)
        {
            p.paths.push(path);
        } else {
            pairs.push(RelayPair {
                a: first.chain.clone(),
                b: second.chain.clone(),
                paths: vec![path],
            });
        }
    }
    pairs
}

/// Trusting period of the clients made at a sub-chain's birth: two weeks,
/// in milliseconds and in one-second blocks. Relayers refresh them long
/// before; a vote revives one that lapsed.
pub const TRUSTING_MS: u64 = 14 * 24 * 3600 * 1000;
/// See [`TRUSTING_MS`].
pub const TRUSTING_BLOCKS: u64 = 14 * 24 * 3600;

/// The trust model of a chain's engine.
pub fn trust_model(engine: &str) -> tongtian_xchain::client::TrustModel {
    if engine == "raft" {
        tongtian_xchain::client::TrustModel::Raft
    } else {
        tongtian_xchain::client::TrustModel::Bft
    }
}

/// A node that may take part in a sub-chain.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct MemberNode {
    /// Its organisation.
    pub org: String,
    /// Its name.
    pub node: String,
    /// Its transport key.
    #[serde(with = "serde_hex")]
    pub transport_key: Vec<u8>,
}

/// Messages of the `registry` module.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum RegistryMsg {
    /// Check a request without writing anything (any caller).
    Check {
        /// The request.
        request: ChainRequest,
    },
    /// Create the chain (from `gov` only).
    Create {
        /// The request.
        request: ChainRequest,
    },
    /// Check that a chain can be stopped (any caller).
    CheckStop {
        /// Its name.
        name: String,
    },
    /// Stop a chain (from `gov` only).
    Stop {
        /// Its name.
        name: String,
    },
    /// Check that a directive can be given to a chain (any caller).
    CheckDirect {
        /// The chain's name.
        name: String,
        /// The directive.
        directive: crate::directive::Directive,
    },
    /// Append a directive to a chain's entry (from `gov` only).
    Direct {
        /// The chain's name.
        name: String,
        /// The directive.
        directive: crate::directive::Directive,
    },
    /// Check that a channel can be opened (any caller).
    CheckChannel {
        /// The channel asked for.
        request: ChannelRequest,
    },
    /// Open a channel decided by proposal `proposal` (from `gov` only):
    /// the main chain's end at once, a sub-chain's by a directive.
    OpenChannel {
        /// The proposal.
        proposal: u64,
        /// The channel.
        request: ChannelRequest,
    },
}

impl RegistryMsg {
    /// Encoded.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("registry messages encode")
    }
}

/// What the registry keeps about the main chain.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
struct MainChain {
    name: String,
    chain_id: u64,
    engine: String,
}

const MAIN: &[u8] = b"main";

fn key(name: &str) -> Vec<u8> {
    format!("c/{name}").into_bytes()
}

/// Every registered chain, in name order.
pub fn all(state: &ModuleState<'_, '_>) -> ModuleResult<Vec<ChainEntry>> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = state.scan(b"c/", after.as_deref(), 256)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (_, v) in &page {
            out.push(
                tongtian_types::codec::decode::<ChainEntry>("chain entry", v)
                    .map_err(|e| tongtian_execution::ExecutionError::Corrupt(e.to_string()))?,
            );
        }
        if page.len() < 256 {
            break;
        }
    }
    Ok(out)
}

fn refuse(code: &str, message: impl Into<String>) -> ModuleError {
    ModuleError::new(code, message)
}

/// Check `r` against the organisations and the chains there are, and make
/// the entry it would create at `height` / `time_ms`.
fn entry_for(
    r: &ChainRequest,
    orgs: &[Organisation],
    chains: &[ChainEntry],
    main: &MainChain,
    height: u64,
    time_ms: u64,
) -> Result<ChainEntry, ModuleError> {
    let valid_name = !r.name.is_empty()
        && r.name.len() <= 32
        && r.name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid_name {
        return Err(refuse(
            "bad_chain_name",
            format!("{:?}: a chain name is 1-32 of a-z, 0-9 and -", r.name),
        ));
    }
    if r.name == main.name || r.name == "main" || chains.iter().any(|c| c.name == r.name) {
        return Err(refuse(
            "duplicate_chain",
            format!("a chain named {} exists already", r.name),
        ));
    }
    if !ENGINES.contains(&r.engine.as_str()) {
        return Err(refuse(
            "unknown_engine",
            format!("engine {:?}: one of {}", r.engine, ENGINES.join(", ")),
        ));
    }
    if r.vms.is_empty() {
        return Err(refuse(
            "no_vms",
            "a chain needs at least one VM (wasm, evm)",
        ));
    }
    if r.orgs.is_empty() {
        return Err(refuse(
            "no_validators",
            "a chain needs at least one member organisation",
        ));
    }
    let mut member_ids = r.orgs.clone();
    member_ids.sort();
    member_ids.dedup();
    if member_ids.len() != r.orgs.len() {
        return Err(refuse("duplicate_org", "an organisation is named twice"));
    }
    let mut validators = Vec::new();
    let mut members = Vec::new();
    for id in &member_ids {
        let org = orgs
            .iter()
            .find(|o| &o.id == id)
            .ok_or_else(|| refuse("unknown_org", format!("there is no organisation {id}")))?;
        let node = org.nodes.iter().find(|n| n.key_for(r.suite).is_some()).ok_or_else(|| {
            refuse(
                "no_validator_key",
                format!("{id} has no node with a {} validator key (its admin registers one with its nodes)", r.suite),
            )
        })?;
        validators.push(ChainValidator {
            org: id.clone(),
            node: node.name.clone(),
            transport_key: node.transport_key.clone(),
            public_key: node.key_for(r.suite).expect("found above").to_vec(),
        });
        members.extend(org.nodes.iter().map(|n| MemberNode {
            org: id.clone(),
            node: n.name.clone(),
            transport_key: n.transport_key.clone(),
        }));
    }
    if r.engine == "solo" && validators.len() != 1 {
        return Err(refuse(
            "solo_needs_one_validator",
            "a solo chain has exactly one member organisation",
        ));
    }
    let used = |id: u64| id == main.chain_id || chains.iter().any(|c| c.chain_id == id);
    let chain_id = match r.chain_id {
        Some(id) if used(id) => {
            return Err(refuse(
                "duplicate_chain_id",
                format!("chain id {id} is taken"),
            ));
        }
        Some(0) => return Err(refuse("bad_chain_id", "chain id 0 is reserved")),
        Some(id) => id,
        None => (main.chain_id + 1..)
            .find(|id| !used(*id))
            .expect("a free chain id"),
    };
    let mut addrs: Vec<_> = r.fund.iter().map(|a| a.address).collect();
    addrs.sort();
    addrs.dedup();
    if addrs.len() != r.fund.len() {
        return Err(refuse("duplicate_account", "an account is funded twice"));
    }
    Ok(ChainEntry {
        name: r.name.clone(),
        chain_id,
        engine: r.engine.clone(),
        suite: r.suite,
        vms: r.vms.clone(),
        orgs: member_ids,
        validators,
        members,
        accounts: r.fund.clone(),
        restricted: r.restricted,
        status: ChainStatus::Active,
        created_height: height,
        genesis_time_ms: time_ms,
        directives: Vec::new(),
        xchain: None,
    })
}

/// When the main chain runs the cross-chain modules: its client of the new
/// chain (trusting its genesis validators), its channel to it, and what
/// the new chain's genesis needs to trust the main chain back.
fn link(
    ctx: &mut ModuleCtx<'_, '_>,
    entry: &ChainEntry,
    main: &MainChain,
) -> ModuleResult<Option<XchainLink>> {
    use tongtian_xchain::{channel, client};
    let none = BTreeMap::new();
    let Ok(channels) = ctx.query(channel::ID, "channels", &none) else {
        return Ok(None);
    };
    if ctx.query(client::ID, "clients", &none).is_err() {
        return Ok(None);
    }
    let main_channel = format!("channel-{}", channels.as_array().map_or(0, |a| a.len()));
    let genesis_validators = tongtian_types::ValidatorSet {
        version: 0,
        validators: entry
            .validators
            .iter()
            .map(|v| tongtian_types::ValidatorSpec {
                name: format!("{}/{}", v.org, v.node),
                public_key: v.public_key.clone(),
            })
            .collect(),
    };
    ctx.call(
        client::ID,
        &client::ClientMsg::Create(client::ClientInit {
            id: entry.name.clone(),
            chain_id: entry.chain_id,
            suite: entry.suite,
            model: trust_model(&entry.engine),
            height: 0,
            header_hash: tongtian_types::H256::ZERO,
            state_root: None,
            timestamp_ms: 0,
            validators: genesis_validators,
            trusting_blocks: TRUSTING_BLOCKS,
            trusting_ms: TRUSTING_MS,
        })
        .encode(),
    )?;
    ctx.call(
        channel::ID,
        &channel::ChannelMsg::Open(channel::ChannelInit {
            id: main_channel.clone(),
            port: tongtian_xchain::transfer::ID.into(),
            client: entry.name.clone(),
            counterparty_channel: "channel-0".into(),
            counterparty_port: tongtian_xchain::transfer::ID.into(),
            ordered: false,
            version: "ics20-1".into(),
        })
        .encode(),
    )?;
    let has_nft = !matches!(
        ctx.query(tongtian_xchain::nft::ID, "classes/-", &none),
        Err(tongtian_execution::module::ModuleFailure::Module(ref e)) if e.code == "unknown_module"
    ) && !matches!(
        ctx.query(tongtian_xchain::nft_transfer::ID, "-", &none),
        Err(tongtian_execution::module::ModuleFailure::Module(ref e)) if e.code == "unknown_module"
    );
    let main_nft_channel = if has_nft {
        let id = format!("channel-{}", channels.as_array().map_or(0, |a| a.len()) + 1);
        ctx.call(
            channel::ID,
            &channel::ChannelMsg::Open(channel::ChannelInit {
                id: id.clone(),
                port: tongtian_xchain::nft_transfer::ID.into(),
                client: entry.name.clone(),
                counterparty_channel: "channel-1".into(),
                counterparty_port: tongtian_xchain::nft_transfer::ID.into(),
                ordered: false,
                version: "ics721-1".into(),
            })
            .encode(),
        )?;
        Some(id)
    } else {
        None
    };
    Ok(Some(XchainLink {
        main_channel,
        main_nft_channel,
        main_client: client::ClientInit {
            id: "main".into(),
            chain_id: main.chain_id,
            suite: ctx.chain.suite,
            model: trust_model(&main.engine),
            // The last committed main-chain block, known by the set that
            // signs the next one.
            height: ctx.block.height.saturating_sub(1),
            header_hash: tongtian_types::H256::ZERO,
            state_root: None,
            timestamp_ms: 0,
            validators: ctx.state.validator_set()?,
            trusting_blocks: TRUSTING_BLOCKS,
            trusting_ms: TRUSTING_MS,
        },
    }))
}

/// The genesis spec of a registered chain: the same on every node.
pub fn spec_of(entry: &ChainEntry, admins: &[tongtian_types::Address]) -> ChainSpec {
    let mut modules = ModuleSections::default();
    if let Some(x) = &entry.xchain {
        modules.insert(
            tongtian_xchain::client::ID,
            serde_json::json!({ "clients": [x.main_client] }),
        );
        let mut channels = vec![tongtian_xchain::channel::ChannelInit {
            id: "channel-0".into(),
            port: tongtian_xchain::transfer::ID.into(),
            client: "main".into(),
            counterparty_channel: x.main_channel.clone(),
            counterparty_port: tongtian_xchain::transfer::ID.into(),
            ordered: false,
            version: "ics20-1".into(),
        }];
        if let Some(nft) = &x.main_nft_channel {
            channels.push(tongtian_xchain::channel::ChannelInit {
                id: "channel-1".into(),
                port: tongtian_xchain::nft_transfer::ID.into(),
                client: "main".into(),
                counterparty_channel: nft.clone(),
                counterparty_port: tongtian_xchain::nft_transfer::ID.into(),
                ordered: false,
                version: "ics721-1".into(),
            });
            modules.insert(tongtian_xchain::nft::ID, serde_json::json!({}));
            modules.insert(tongtian_xchain::nft_transfer::ID, serde_json::json!({}));
        }
        modules.insert(
            tongtian_xchain::channel::ID,
            serde_json::json!({ "channels": channels }),
        );
        modules.insert(tongtian_xchain::transfer::ID, serde_json::json!({}));
    }
    // What carries out the main chain's votes for it.
    for id in [
        crate::directive::ID,
        crate::params::ID,
        crate::contracts::ID,
    ] {
        modules.insert(id, serde_json::json!({}));
    }
    if entry.restricted {
        let mut allowed: Vec<String> = entry
            .accounts
            .iter()
            .map(|a| a.address.to_string())
            .chain(admins.iter().map(|a| a.to_string()))
            .collect();
        allowed.sort();
        allowed.dedup();
        modules.insert(
            crate::access::ID,
            serde_json::json!({ "accounts": allowed }),
        );
    }
    let mut b = SpecBuilder::new(&entry.name, entry.chain_id)
        .suite(entry.suite)
        .engine(&entry.engine)
        .intervals(if entry.engine == "solo" { 100 } else { 200 }, 1_000)
        .max_block_txs(10_000)
        .vms(&entry.vms)
        .genesis_time_ms(entry.genesis_time_ms);
    for v in &entry.validators {
        b = b.validator(&format!("{}/{}", v.org, v.node), &v.public_key);
    }
    for a in &entry.accounts {
        b = b.fund(a.address, a.balance);
    }
    for (id, section) in modules.0 {
        b = b.module(&id, section);
    }
    b.build_unchecked()
}

fn link_key(proposal: u64) -> Vec<u8> {
    format!("l/{proposal:020}").into_bytes()
}

/// The channels opened by vote.
pub fn links(state: &ModuleState<'_, '_>) -> ModuleResult<Vec<ChannelLink>> {
    let mut out = Vec::new();
    for (_, v) in state.scan(b"l/", None, 100_000)? {
        out.push(
            tongtian_types::codec::decode::<ChannelLink>("channel link", &v)
                .map_err(|e| tongtian_execution::ExecutionError::Corrupt(e.to_string()))?,
        );
    }
    Ok(out)
}

fn valid_port(port: &str) -> bool {
    tongtian_xchain::port::contract_port(port).is_some()
        || (!port.is_empty()
            && port.len() <= 64
            && port
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
}

/// Check a channel request; each side's sub-chain entry (`None` for the
/// main chain).
fn check_channel(
    ctx: &mut ModuleCtx<'_, '_>,
    r: &ChannelRequest,
) -> ModuleResult<[Option<ChainEntry>; 2]> {
    if r.a.chain_name() == r.b.chain_name() {
        return Err(refuse("same_chain", "a channel joins two different chains").into());
    }
    if r.version.len() > 64 {
        return Err(refuse("bad_version", "a channel version is at most 64 bytes").into());
    }
    let mut out = [None, None];
    for (i, side) in [&r.a, &r.b].into_iter().enumerate() {
        if !valid_port(&side.port) {
            return Err(refuse(
                "bad_port",
                format!(
                    "{:?}: a port is a module id or a contract address",
                    side.port
                ),
            )
            .into());
        }
        match &side.chain {
            None => {
                if ctx
                    .query(tongtian_xchain::channel::ID, "channels", &BTreeMap::new())
                    .is_err()
                {
                    return Err(refuse(
                        "not_linked",
                        "the main chain does not run the cross-chain modules",
                    )
                    .into());
                }
            }
            Some(name) => {
                let entry = stoppable(&ctx.state, name)?;
                if entry.xchain.is_none() {
                    return Err(refuse(
                        "not_linked",
                        format!("{name} was born without the cross-chain modules"),
                    )
                    .into());
                }
                out[i] = Some(entry);
            }
        }
    }
    Ok(out)
}

/// The main chain's client of sub-chain `entry`, as the starting trust of
/// a client of it elsewhere: its latest verified height, header, root and
/// next validators.
fn client_from_main(
    ctx: &mut ModuleCtx<'_, '_>,
    entry: &ChainEntry,
) -> ModuleResult<tongtian_xchain::client::ClientInit> {
    use tongtian_xchain::client;
    let none = BTreeMap::new();
    let c = ctx.query(client::ID, &format!("clients/{}", entry.name), &none)?;
    if c["frozen"] == true {
        return Err(refuse(
            "client_frozen",
            format!("the main chain's client of {} is frozen", entry.name),
        )
        .into());
    }
    let h = c["latest_height"].as_u64().unwrap_or(0);
    let cs: client::ConsensusState = serde_json::from_value(ctx.query(
        client::ID,
        &format!("clients/{}/consensus/{h}", entry.name),
        &none,
    )?)
    .map_err(|e| tongtian_execution::ExecutionError::Corrupt(e.to_string()))?;
    Ok(client::ClientInit {
        id: entry.name.clone(),
        chain_id: entry.chain_id,
        suite: entry.suite,
        model: trust_model(&entry.engine),
        height: cs.height,
        header_hash: cs.header_hash,
        state_root: cs.state_root,
        timestamp_ms: cs.timestamp_ms,
        validators: cs.next_validators,
        trusting_blocks: TRUSTING_BLOCKS,
        trusting_ms: TRUSTING_MS,
    })
}

/// Append `directive` to chain `name`'s entry: its number.
fn direct(
    ctx: &mut ModuleCtx<'_, '_>,
    name: String,
    directive: crate::directive::Directive,
) -> ModuleResult<u64> {
    let mut entry = check_direct(&ctx.state, &name, &directive)?;
    let what = crate::directive::directive_name(&directive);
    entry.directives.push(directive);
    let seq = entry.directives.len() as u64;
    ctx.state.set_typed(&key(&name), &entry);
    ctx.emit(
        "chain_directed",
        vec![
            ("chain".into(), name),
            ("seq".into(), seq.to_string()),
            ("directive".into(), what.into()),
        ],
    );
    Ok(seq)
}

/// Open the channel of proposal `proposal`.
fn open_channel(
    ctx: &mut ModuleCtx<'_, '_>,
    proposal: u64,
    r: &ChannelRequest,
) -> ModuleResult<ChannelLink> {
    use tongtian_xchain::channel::ChannelInit;
    let entries = check_channel(ctx, r)?;
    let id = format!("channel-p{proposal}");
    let sides = [&r.a, &r.b];
    // Each end's client of the other end's chain.
    let mut inits = Vec::new();
    for i in 0..2 {
        let (here, there) = (&entries[i], &entries[1 - i]);
        inits.push(match (here, there) {
            (_, None) => {
                // Of the main chain: every linked sub-chain has it ("main").
                let x = here
                    .as_ref()
                    .and_then(|e| e.xchain.as_ref())
                    .ok_or_else(|| {
                        refuse(
                            "not_linked",
                            "a channel end needs a client of the other chain",
                        )
                    })?;
                x.main_client.clone()
            }
            (_, Some(t)) => client_from_main(ctx, t)?,
        });
    }
    let mut ends = Vec::new();
    for i in 0..2 {
        let (side, other) = (sides[i], sides[1 - i]);
        let channel = ChannelInit {
            id: id.clone(),
            port: side.port.clone(),
            client: inits[i].id.clone(),
            counterparty_channel: id.clone(),
            counterparty_port: other.port.clone(),
            ordered: r.ordered,
            version: r.version.clone(),
        };
        ends.push(LinkEnd {
            chain: side.chain_name().to_string(),
            channel: id.clone(),
            client: inits[i].id.clone(),
            port: side.port.clone(),
        });
        match &side.chain {
            None => crate::directive::open_channel_end(ctx, &inits[i], &channel)?,
            Some(name) => {
                direct(
                    ctx,
                    name.clone(),
                    crate::directive::Directive::OpenChannel {
                        client: Box::new(inits[i].clone()),
                        channel,
                    },
                )?;
            }
        }
    }
    let b = ends.pop().expect("two ends");
    let a = ends.pop().expect("two ends");
    let link = ChannelLink {
        proposal,
        a,
        b,
        ordered: r.ordered,
        version: r.version.clone(),
    };
    ctx.state.set_typed(&link_key(proposal), &link);
    ctx.emit(
        "channel_link_opened",
        vec![
            ("proposal".into(), proposal.to_string()),
            ("channel".into(), id),
            ("a".into(), link.a.chain.clone()),
            ("b".into(), link.b.chain.clone()),
        ],
    );
    Ok(link)
}

/// The active chain called `name`.
fn stoppable(state: &ModuleState<'_, '_>, name: &str) -> ModuleResult<ChainEntry> {
    let entry: ChainEntry = state
        .get_typed(&key(name))?
        .ok_or_else(|| refuse("unknown_chain", format!("there is no sub-chain {name}")))?;
    if entry.status == ChainStatus::Stopped {
        return Err(refuse("chain_stopped", format!("{name} is stopped already")).into());
    }
    Ok(entry)
}

/// The active chain `name`, if `directive` suits it: new validators'
/// keys must be keys of the chain's suite.
fn check_direct(
    state: &ModuleState<'_, '_>,
    name: &str,
    directive: &crate::directive::Directive,
) -> ModuleResult<ChainEntry> {
    let entry = stoppable(state, name)?;
    if let crate::directive::Directive::SetValidators { validators } = directive {
        let s = tongtian_crypto::suite(entry.suite);
        let probe = vec![0u8; s.signature_len()];
        if let Some(v) = validators.iter().find(|v| {
            matches!(
                s.verify(&v.public_key, b"", &probe),
                Err(tongtian_crypto::CryptoError::InvalidPublicKey { .. })
            )
        }) {
            return Err(refuse(
                "invalid_validator_key",
                format!("{} has no valid {} key", v.name, entry.suite),
            )
            .into());
        }
    }
    Ok(entry)
}

/// The `registry` module.
#[derive(Debug, Default)]
pub struct Registry;

impl Module for Registry {
    fn id(&self) -> &'static str {
        ID
    }

    fn genesis(
        &self,
        state: &mut ModuleState<'_, '_>,
        spec: &ChainSpec,
        section: Option<&serde_json::Value>,
    ) -> ModuleResult<()> {
        tongtian_execution::module::expect_empty_section(
            section,
            "the registry starts empty: its section is {}",
        )?;
        state.set_typed(
            MAIN,
            &MainChain {
                name: spec.name.clone(),
                chain_id: spec.chain_id,
                engine: spec.consensus.engine.clone(),
            },
        );
        Ok(())
    }

    fn execute(&self, ctx: &mut ModuleCtx<'_, '_>, msg: &[u8]) -> ModuleResult<Vec<u8>> {
        let msg: RegistryMsg = decode_msg(ID, msg)?;
        let main: MainChain = ctx.state.get_typed(MAIN)?.ok_or_else(|| {
            tongtian_execution::ExecutionError::Corrupt("registry has no main chain".into())
        })?;
        match msg {
            RegistryMsg::Check { request } => {
                let orgs = org::read_all(ctx)?;
                entry_for(
                    &request,
                    &orgs,
                    &all(&ctx.state)?,
                    &main,
                    ctx.block.height,
                    ctx.block.timestamp_ms,
                )?;
                Ok(Vec::new())
            }
            RegistryMsg::Create { request } => {
                only_from(&ctx.caller, crate::gov::ID, "creating a chain")?;
                let orgs = org::read_all(ctx)?;
                let entry = entry_for(
                    &request,
                    &orgs,
                    &all(&ctx.state)?,
                    &main,
                    ctx.block.height,
                    ctx.block.timestamp_ms,
                )?;
                let mut entry = entry;
                entry.xchain = link(ctx, &entry, &main)?;
                ctx.state.set_typed(&key(&entry.name), &entry);
                ctx.emit(
                    "chain_created",
                    vec![
                        ("chain".into(), entry.name.clone()),
                        ("chain_id".into(), entry.chain_id.to_string()),
                        ("engine".into(), entry.engine.clone()),
                        ("suite".into(), entry.suite.to_string()),
                        ("orgs".into(), entry.orgs.join(",")),
                    ],
                );
                Ok(entry.chain_id.to_le_bytes().to_vec())
            }
            RegistryMsg::CheckStop { name } => {
                stoppable(&ctx.state, &name)?;
                Ok(Vec::new())
            }
            RegistryMsg::Stop { name } => {
                only_from(&ctx.caller, crate::gov::ID, "stopping a chain")?;
                let mut entry = stoppable(&ctx.state, &name)?;
                entry.status = ChainStatus::Stopped;
                ctx.state.set_typed(&key(&name), &entry);
                ctx.emit("chain_stopped", vec![("chain".into(), name)]);
                Ok(Vec::new())
            }
            RegistryMsg::CheckDirect { name, directive } => {
                check_direct(&ctx.state, &name, &directive)?;
                Ok(Vec::new())
            }
            RegistryMsg::Direct { name, directive } => {
                only_from(&ctx.caller, crate::gov::ID, "directing a chain")?;
                Ok(direct(ctx, name, directive)?.to_le_bytes().to_vec())
            }
            RegistryMsg::CheckChannel { request } => {
                check_channel(ctx, &request)?;
                Ok(Vec::new())
            }
            RegistryMsg::OpenChannel { proposal, request } => {
                only_from(&ctx.caller, crate::gov::ID, "opening a channel")?;
                open_channel(ctx, proposal, &request)?;
                Ok(Vec::new())
            }
        }
    }

    fn query(
        &self,
        state: &mut ModuleState<'_, '_>,
        path: &str,
        _params: &BTreeMap<String, String>,
    ) -> ModuleResult<serde_json::Value> {
        if path == "chains" {
            return Ok(to_json(&all(state)?));
        }
        if path == "links" {
            return Ok(to_json(&links(state)?));
        }
        if let Some(name) = path.strip_prefix("chains/") {
            let entry: ChainEntry = state
                .get_typed(&key(name))?
                .ok_or_else(|| refuse("not_found", format!("there is no sub-chain {name}")))?;
            return Ok(to_json(&entry));
        }
        Err(refuse(
            "unknown_query",
            format!("registry answers chains, chains/NAME and links, not {path}"),
        )
        .into())
    }
}
