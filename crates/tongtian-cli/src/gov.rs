//! `tongtian org ...` and `tongtian gov ...`: the organisations of the
//! chain network and their governance, on the main chain (or the chain
//! `--chain` names).

use crate::util::{self, parse_address, print, usage, Ctx};
use crate::{GovCommand, OrgCommand, ProposeCommand, SignerArgs};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use tongtian_modules::gov::{Choice, GovMsg, ProposalKind};
use tongtian_modules::org::Organisation;
use tongtian_modules::registry::ChainRequest;
use tongtian_types::GenesisAccount;

/// Run an `org` command.
pub async fn org(ctx: &Ctx, cmd: OrgCommand) -> Result<()> {
    match cmd {
        OrgCommand::List => {
            let orgs = ctx.client.module_query("org", "orgs").await?;
            print(ctx.json, &orgs, || {
                let mut text = format!(
                    "{:<16} {:<24} {:>6}  {:<42}  nodes",
                    "id", "name", "weight", "admin"
                );
                for o in orgs.as_array().into_iter().flatten() {
                    text.push_str(&format!(
                        "\n{:<16} {:<24} {:>6}  {:<42}  {}",
                        o["id"].as_str().unwrap_or(""),
                        o["name"].as_str().unwrap_or(""),
                        o["weight"],
                        o["admin"].as_str().unwrap_or(""),
                        o["nodes"].as_array().map_or(0, |n| n.len())
                    ));
                }
                text
            })
        }
        OrgCommand::Show { id } => {
            let o = ctx
                .client
                .module_query("org", &format!("orgs/{id}"))
                .await?;
            print(ctx.json, &o, || {
                serde_json::to_string_pretty(&o).unwrap_or_default()
            })
        }
        OrgCommand::SetNodes { id, home, signer } => {
            let mut nodes = Vec::new();
            for h in &home {
                nodes.push(node_info(h)?);
            }
            let msg = tongtian_modules::org::OrgMsg::SetNodes { id, nodes };
            let action = tongtian_types::Action::Module {
                module: tongtian_modules::org::ID.into(),
                msg: msg.encode(),
            };
            let tx = util::sign(&ctx.client, &signer, action, None).await?;
            let hash = ctx.client.submit(&tx).await?;
            util::conclude(ctx, hash, true, |_, _| String::new()).await?;
            Ok(())
        }
    }
}

/// What a node home says of its node: name, transport key (`transport.key`,
/// or in older homes and dev data directories `node.key`), validator keys.
fn node_info(home: &std::path::Path) -> Result<tongtian_modules::org::NodeInfo> {
    let node = util::load_key(&home.join("node.key"), None)
        .with_context(|| format!("{} is not a node home", home.display()))?;
    let mut keys = vec![tongtian_modules::org::SuiteKey {
        suite: node.suite(),
        public_key: node.public_key().to_vec(),
    }];
    for suite in [
        tongtian_crypto::SuiteId::Standard,
        tongtian_crypto::SuiteId::Sm,
    ] {
        let p = home.join(format!("validator-{suite}.key"));
        if p.exists() && suite != node.suite() {
            let k = util::load_key(&p, None)?;
            keys.push(tongtian_modules::org::SuiteKey {
                suite,
                public_key: k.public_key().to_vec(),
            });
        }
    }
    let transport = match home.join("transport.key") {
        p if p.exists() => util::load_key(&p, None)?,
        _ => node.clone(),
    };
    let name = home
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "node".into());
    Ok(tongtian_modules::org::NodeInfo {
        name,
        transport_key: transport.public_key().to_vec(),
        validator_keys: keys,
    })
}

/// Run a `gov` command.
pub async fn gov(ctx: &Ctx, cmd: GovCommand) -> Result<()> {
    match cmd {
        GovCommand::Propose(p) => propose(ctx, p).await,
        GovCommand::Vote { id, choice, signer } => {
            let choice: Choice = choice.parse().map_err(|e: String| usage("bad_args", e))?;
            let msg = GovMsg::Vote {
                proposal: id,
                choice,
            };
            send(ctx, &signer, msg, Some(id)).await
        }
        GovCommand::Show { id } => {
            let p = ctx
                .client
                .module_query("gov", &format!("proposals/{id}"))
                .await?;
            print(ctx.json, &p, || summary(&p))
        }
        GovCommand::List { open } => {
            let path = if open {
                "proposals?open=true"
            } else {
                "proposals"
            };
            let list = ctx.client.module_query("gov", path).await?;
            print(ctx.json, &list, || {
                let mut text = format!(
                    "{:>4}  {:<13} {:<9} {:<10} tally",
                    "id", "kind", "status", "proposer"
                );
                for p in list.as_array().into_iter().flatten() {
                    text.push_str(&format!(
                        "\n{:>4}  {:<13} {:<9} {:<10} {} yes / {} no / {} abstain of {}",
                        p["id"],
                        p["kind"]["kind"].as_str().unwrap_or(""),
                        p["status"].as_str().unwrap_or(""),
                        p["proposer"].as_str().unwrap_or(""),
                        p["tally"]["yes"],
                        p["tally"]["no"],
                        p["tally"]["abstain"],
                        p["tally"]["total"]
                    ));
                }
                text
            })
        }
    }
}

fn summary(p: &Value) -> String {
    let mut text = format!(
        "proposal  {}\nkind      {}\nstatus    {}\nproposer  {}\ntally     {} yes, {} no, {} abstain of {}\nvoting    until height {}",
        p["id"],
        p["kind"]["kind"].as_str().unwrap_or(""),
        p["status"].as_str().unwrap_or(""),
        p["proposer"].as_str().unwrap_or(""),
        p["tally"]["yes"],
        p["tally"]["no"],
        p["tally"]["abstain"],
        p["tally"]["total"],
        p["voting_end_height"]
    );
    if let Some(e) = p["execution_error"].as_str() {
        text.push_str(&format!("\nexecution failed: {e}"));
    }
    text
}

fn fund_entry(s: &str) -> Result<GenesisAccount> {
    let (a, amount) = s
        .split_once('=')
        .ok_or_else(|| usage("bad_args", format!("--fund {s:?}: expected ADDRESS=AMOUNT")))?;
    let balance = amount.parse::<u128>().map_err(|_| {
        usage(
            "bad_args",
            format!("--fund {s:?}: {amount:?} is not an amount"),
        )
    })?;
    Ok(GenesisAccount {
        address: parse_address(a)?,
        balance,
    })
}

/// New contract code from a file: a WASM binary as it is, anything else
/// as hex text (EVM runtime code, `0x` optional).
fn read_code(path: &std::path::Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.starts_with(b"\0asm") {
        return Ok(bytes);
    }
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    hex::decode(text.strip_prefix("0x").unwrap_or(text)).map_err(|_| {
        usage(
            "bad_code",
            format!("{}: neither a WASM module nor hex bytecode", path.display()),
        )
    })
}

async fn propose(ctx: &Ctx, cmd: ProposeCommand) -> Result<()> {
    let (kind, signer) = match cmd {
        ProposeCommand::CreateChain {
            name,
            engine,
            suite,
            orgs,
            vms,
            fund,
            chain_id,
            restricted,
            signer,
        } => (
            ProposalKind::CreateChain {
                chain: ChainRequest {
                    name,
                    engine,
                    suite,
                    orgs,
                    vms,
                    fund: fund.iter().map(|f| fund_entry(f)).collect::<Result<_>>()?,
                    chain_id,
                    restricted,
                },
            },
            signer,
        ),
        ProposeCommand::StopChain { name, signer } => (ProposalKind::StopChain { name }, signer),
        ProposeCommand::AddOrg {
            id,
            name,
            admin,
            weight,
            signer,
        } => (
            ProposalKind::AddOrg {
                org: Organisation {
                    name: name.unwrap_or_else(|| id.clone()),
                    id,
                    admin: parse_address(&admin)?,
                    weight,
                    nodes: Vec::new(),
                },
            },
            signer,
        ),
        ProposeCommand::RemoveOrg { id, signer } => (ProposalKind::RemoveOrg { id }, signer),
        ProposeCommand::FreezeContract {
            address,
            target,
            signer,
        } => (
            ProposalKind::FreezeContract {
                address: parse_address(&address)?,
                chain: target,
            },
            signer,
        ),
        ProposeCommand::UnfreezeContract {
            address,
            target,
            signer,
        } => (
            ProposalKind::UnfreezeContract {
                address: parse_address(&address)?,
                chain: target,
            },
            signer,
        ),
        ProposeCommand::UpgradeContract {
            address,
            code,
            target,
            signer,
        } => (
            ProposalKind::UpgradeContract {
                address: parse_address(&address)?,
                code: read_code(&code)?,
                chain: target,
            },
            signer,
        ),
        ProposeCommand::UnfreezeClient {
            client,
            target,
            signer,
        } => (
            ProposalKind::UnfreezeClient {
                client,
                chain: target,
            },
            signer,
        ),
        ProposeCommand::OpenChannel {
            a_chain,
            a_port,
            b_chain,
            b_port,
            ordered,
            version,
            signer,
        } => {
            let side = |chain: String, port: String| tongtian_modules::registry::ChannelSide {
                chain: (chain != "main").then_some(chain),
                port: port.to_lowercase(),
            };
            (
                ProposalKind::OpenChannel {
                    a: side(a_chain, a_port),
                    b: side(b_chain, b_port),
                    ordered,
                    version,
                },
                signer,
            )
        }
        ProposeCommand::ConnectEvm {
            client,
            evm_chain_id,
            attesters,
            threshold,
            channel,
            port,
            counterparty_channel,
            counterparty_port,
            target,
            signer,
        } => {
            let mut validators = Vec::new();
            for (i, a) in attesters.iter().enumerate() {
                validators.push(tongtian_types::ValidatorSpec {
                    name: format!("attester-{i}"),
                    public_key: parse_address(a)?.0.to_vec(),
                });
            }
            let counterparty_port = parse_address(&counterparty_port)?.to_string();
            (
                ProposalKind::ConnectExternal {
                    client: Box::new(tongtian_xchain::client::ClientInit {
                        id: client.clone(),
                        chain_id: evm_chain_id,
                        suite: tongtian_crypto::SuiteId::Standard,
                        model: tongtian_xchain::client::TrustModel::Attested { threshold },
                        height: 0,
                        header_hash: tongtian_types::H256::ZERO,
                        state_root: None,
                        timestamp_ms: 0,
                        validators: tongtian_types::ValidatorSet {
                            version: 0,
                            validators,
                        },
                        trusting_blocks: tongtian_modules::registry::TRUSTING_BLOCKS,
                        trusting_ms: tongtian_modules::registry::TRUSTING_MS,
                    }),
                    channel: tongtian_xchain::channel::ChannelInit {
                        id: channel,
                        port,
                        client,
                        counterparty_channel,
                        counterparty_port,
                        ordered: false,
                        version: "ics20-1".into(),
                    },
                    chain: target,
                },
                signer,
            )
        }
        ProposeCommand::ReviveClient {
            client,
            target,
            signer,
        } => (
            ProposalKind::ReviveClient {
                client,
                chain: target,
            },
            signer,
        ),
        ProposeCommand::SetParam {
            name,
            value,
            target,
            signer,
        } => (
            ProposalKind::SetParam {
                name,
                value,
                chain: target,
            },
            signer,
        ),
        ProposeCommand::SetValidators {
            nodes,
            target,
            signer,
        } => (
            ProposalKind::SetValidators {
                nodes,
                chain: target,
            },
            signer,
        ),
        ProposeCommand::SetWeight { id, weight, signer } => {
            (ProposalKind::SetWeight { id, weight }, signer)
        }
    };
    send(ctx, &signer, GovMsg::Propose { kind }, None).await
}

/// Sign and send a governance message, wait for its receipt, and print it
/// with the proposal id and where the proposal stands.
async fn send(ctx: &Ctx, signer: &SignerArgs, msg: GovMsg, proposal: Option<u64>) -> Result<()> {
    let tx = crate::util::sign(&ctx.client, signer, msg.action(), None).await?;
    let hash = ctx.client.submit(&tx).await?;
    let receipt = util::wait_receipt(&ctx.client, &hash, ctx.wait).await?;
    let id = proposal.or_else(|| {
        receipt
            .output
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    });
    let mut out = util::receipt_json(&receipt);
    let standing = match (receipt.is_success(), id) {
        (true, Some(id)) => Some(
            ctx.client
                .module_query("gov", &format!("proposals/{id}"))
                .await
                .context("reading the proposal back")?,
        ),
        _ => None,
    };
    if let Some(id) = id.filter(|_| receipt.is_success()) {
        out["proposal"] = json!(id);
    }
    if let Some(p) = &standing {
        out["proposal_status"] = p["status"].clone();
        out["tally"] = p["tally"].clone();
    }
    print(ctx.json, &out, || {
        let mut text = format!(
            "tx        {hash}\nresult    {}",
            util::status_text(&receipt.status)
        );
        if let Some(p) = &standing {
            text.push('\n');
            text.push_str(&summary(p));
        }
        text
    })?;
    if !receipt.is_success() {
        return Err(
            util::Reported(format!("refused: {}", util::status_text(&receipt.status))).into(),
        );
    }
    Ok(())
}
