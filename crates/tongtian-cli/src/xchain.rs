//! `tongtian xchain ...`: light clients, channels, packets and token
//! transfers between the chains of the network.

use crate::util::{self, parse_address, print, usage, Ctx};
use crate::{EvidenceCommand, XchainCommand};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tongtian_client::Client;
use tongtian_xchain::channel::Ack;
use tongtian_xchain::client::{ClientMsg, SignedHeader};
use tongtian_xchain::transfer::TransferMsg;

/// Run an `xchain` command.
pub async fn run(ctx: &Ctx, cmd: XchainCommand) -> Result<()> {
    match cmd {
        XchainCommand::Clients => {
            let v = ctx.client.module_query("client", "clients").await?;
            print(ctx.json, &v, || {
                table(&v, &["id", "chain_id", "model", "latest_height", "frozen"])
            })
        }
        XchainCommand::Channels => {
            let v = ctx.client.module_query("channel", "channels").await?;
            print(ctx.json, &v, || {
                table(
                    &v,
                    &["id", "port", "client", "counterparty_channel", "next_send"],
                )
            })
        }
        XchainCommand::Packets { channel, .. } => {
            let channels: Vec<String> = match channel {
                Some(c) => vec![c],
                None => ctx
                    .client
                    .module_query("channel", "channels")
                    .await?
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["id"].as_str().map(str::to_string))
                    .collect(),
            };
            let mut out = Vec::new();
            for c in channels {
                let v = ctx
                    .client
                    .module_query("channel", &format!("packets/{c}"))
                    .await?;
                out.extend(v.as_array().cloned().unwrap_or_default());
            }
            let v = Value::Array(out);
            print(ctx.json, &v, || {
                table(
                    &v,
                    &[
                        "source_channel",
                        "sequence",
                        "dest_channel",
                        "timeout_height",
                    ],
                )
            })
        }
        XchainCommand::Balances { address } => {
            let a = parse_address(&address)?;
            let v = ctx
                .client
                .module_query("transfer", &format!("balances/{a}"))
                .await?;
            print(ctx.json, &v, || table(&v, &["denom", "amount"]))
        }
        XchainCommand::Evidence(EvidenceCommand::Submit { file, signer }) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            #[derive(serde::Deserialize)]
            struct Evidence {
                client: String,
                a: SignedHeader,
                b: SignedHeader,
            }
            let e: Evidence = serde_json::from_str(&text).map_err(|e| {
                usage(
                    "bad_evidence",
                    format!(
                        "{}: {{\"client\", \"a\", \"b\"}} with headers and certificates: {e}",
                        file.display()
                    ),
                )
            })?;
            let action = ClientMsg::Misbehaviour {
                client: e.client,
                a: e.a,
                b: e.b,
            }
            .action();
            let tx = util::sign(&ctx.client, &signer, action, None).await?;
            let hash = ctx.client.submit(&tx).await?;
            util::conclude(ctx, hash, true, |_, _| String::new()).await?;
            Ok(())
        }
        XchainCommand::OpenChannel {
            from_chain,
            to_chain,
            port,
            counterparty_port,
            ordered,
            version,
            signer,
        } => {
            let from = handle(&ctx.client, &from_chain);
            let clients = from.module_query("client", "clients").await?;
            let chains = ctx.client.chains().await?;
            let target_id = chains
                .iter()
                .find(|c| c["name"] == to_chain.as_str())
                .and_then(|c| c["chain_id"].as_u64());
            let client = clients
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| {
                    c["id"] == to_chain.as_str()
                        || (target_id.is_some() && c["chain_id"].as_u64() == target_id)
                })
                .and_then(|c| c["id"].as_str())
                .ok_or_else(|| {
                    usage(
                        "no_client",
                        format!("{from_chain} has no client of {to_chain}"),
                    )
                })?
                .to_string();
            let action = tongtian_xchain::channel::ChannelMsg::OpenInit {
                port,
                client,
                counterparty_port,
                ordered,
                version,
            }
            .action();
            let tx = util::sign(&from, &signer, action, None).await?;
            let hash = from.submit(&tx).await?;
            let receipt = util::wait_receipt(&from, &hash, ctx.wait).await?;
            if !receipt.is_success() {
                return Err(util::Reported(format!(
                    "refused: {}",
                    util::status_text(&receipt.status)
                ))
                .into());
            }
            let id = String::from_utf8_lossy(&receipt.output).into_owned();
            print(
                ctx.json,
                &json!({ "channel": id, "state": "init", "tx_hash": hash }),
                || format!("proposed {id} (the relayers carry the handshake on)"),
            )
        }
        XchainCommand::Transfer {
            from_chain,
            to_chain,
            to,
            amount,
            denom,
            timeout_blocks,
            channel,
            wait,
            signer,
        } => {
            transfer(
                ctx,
                &Route {
                    from_chain: &from_chain,
                    to_chain: &to_chain,
                    to: &to,
                    channel: channel.as_deref(),
                },
                Payload::Tokens {
                    amount,
                    denom: &denom,
                },
                timeout_blocks,
                wait,
                &signer,
            )
            .await
        }
        XchainCommand::NftTransfer {
            from_chain,
            to_chain,
            to,
            class,
            id,
            timeout_blocks,
            wait,
            signer,
        } => {
            transfer(
                ctx,
                &Route {
                    from_chain: &from_chain,
                    to_chain: &to_chain,
                    to: &to,
                    channel: None,
                },
                Payload::Nfts {
                    class: &class,
                    ids: &id,
                },
                timeout_blocks,
                wait,
                &signer,
            )
            .await
        }
        XchainCommand::Nft(cmd) => nft(ctx, cmd).await,
    }
}

/// Run an `xchain nft ...` command.
async fn nft(ctx: &Ctx, cmd: crate::NftCommand) -> Result<()> {
    use tongtian_xchain::nft::NftMsg;
    let (msg, signer) = match cmd {
        crate::NftCommand::Owned { address } => {
            let a = parse_address(&address)?;
            let v = ctx
                .client
                .module_query("nft", &format!("owned/{a}"))
                .await?;
            return print(ctx.json, &v, || table(&v, &["class", "id", "uri"]));
        }
        crate::NftCommand::CreateClass { class, uri, signer } => {
            (NftMsg::CreateClass { class, uri }, signer)
        }
        crate::NftCommand::Mint {
            class,
            id,
            uri,
            data,
            owner,
            signer,
        } => {
            let key = util::load_key(&signer.key, signer.password.as_deref())?;
            let owner = match owner {
                Some(o) => parse_address(&o)?,
                None => tongtian_types::Address::from_public_key(key.suite(), key.public_key()),
            };
            let data = hex::decode(data.strip_prefix("0x").unwrap_or(&data))
                .map_err(|_| usage("bad_args", "--data: hex bytes"))?;
            (
                NftMsg::Mint {
                    class,
                    id,
                    uri,
                    data,
                    owner,
                },
                signer,
            )
        }
    };
    let tx = util::sign(&ctx.client, &signer, msg.action(), None).await?;
    let hash = ctx.client.submit(&tx).await?;
    util::conclude(ctx, hash, true, |_, _| String::new()).await?;
    Ok(())
}

/// Rows of `cols` from an array of objects.
fn table(v: &Value, cols: &[&str]) -> String {
    let mut text = cols.join("  ");
    for row in v.as_array().into_iter().flatten() {
        text.push('\n');
        let cells: Vec<String> = cols
            .iter()
            .map(|c| match &row[*c] {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                other => other.to_string(),
            })
            .collect();
        text.push_str(&cells.join("  "));
    }
    text
}

/// The handle of a chain by name or id (`main`: the node's main chain).
fn handle(client: &Client, chain: &str) -> Client {
    client.chain(Some(chain))
}

/// The channel of `port` on `from` whose client follows chain `to_id`.
async fn channel_to(from: &Client, to_id: u64, port: &str) -> Result<(String, String)> {
    let channels = from.module_query("channel", "channels").await?;
    for c in channels.as_array().into_iter().flatten() {
        if c["port"] != port {
            continue;
        }
        let Some(client) = c["client"].as_str() else {
            continue;
        };
        let state = from
            .module_query("client", &format!("clients/{client}"))
            .await?;
        if state["chain_id"].as_u64() == Some(to_id) {
            return Ok((
                c["id"].as_str().unwrap_or_default().to_string(),
                c["counterparty_channel"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
    }
    Err(usage(
        "no_channel",
        format!("no {port} channel leads from this chain to chain {to_id} (sub-chains reach each other through the main chain)"),
    ))
}

/// The latest height of chain `of`: from its own status where this node
/// hosts it, else from the client of it behind `channel` on `via`.
async fn height_of(of: &Client, via: &Client, channel: &str) -> Result<u64> {
    if let Ok(st) = of.status().await {
        return Ok(st.height);
    }
    let client = via
        .module_query("channel", &format!("channels/{channel}"))
        .await?["client"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok(via
        .module_query("client", &format!("clients/{client}"))
        .await?["latest_height"]
        .as_u64()
        .unwrap_or(0))
}

/// How the source closed packet `sequence` on `channel`, by its events.
async fn closed_as(from: &Client, channel: &str, sequence: u64) -> Result<&'static str> {
    let seq = sequence.to_string();
    let top = from.status().await?.height;
    let emitter = tongtian_execution::module::module_address(tongtian_xchain::channel::ID);
    let events = from
        .events(Some(&emitter), top.saturating_sub(999), Some(top))
        .await?;
    for e in events.iter().rev() {
        let get = |k: &str| {
            e.event
                .attributes
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.as_str())
        };
        if get("channel") != Some(channel) || get("sequence") != Some(seq.as_str()) {
            continue;
        }
        match e.event.name.as_str() {
            "timeout_packet" => return Ok("timed_out"),
            "acknowledge_packet" if get("success") == Some("true") => return Ok("acknowledged"),
            "acknowledge_packet" => return Ok("error"),
            _ => {}
        }
    }
    Ok("closed")
}

/// Where a transfer goes.
struct Route<'a> {
    from_chain: &'a str,
    to_chain: &'a str,
    to: &'a str,
    /// The channel, when the caller names it.
    channel: Option<&'a str>,
}

/// What a transfer moves.
pub(crate) enum Payload<'a> {
    /// Fungible tokens over the `transfer` port.
    Tokens {
        /// How much.
        amount: u128,
        /// Which.
        denom: &'a str,
    },
    /// NFTs of one class over the `nft-transfer` port.
    Nfts {
        /// The class.
        class: &'a str,
        /// The token ids.
        ids: &'a [String],
    },
}

impl Payload<'_> {
    fn port(&self) -> &'static str {
        match self {
            Payload::Tokens { .. } => "transfer",
            Payload::Nfts { .. } => "nft-transfer",
        }
    }

    /// The denomination or class as the sender names it.
    fn name(&self) -> &str {
        match self {
            Payload::Tokens { denom, .. } => denom,
            Payload::Nfts { class, .. } => class,
        }
    }
}

async fn transfer(
    ctx: &Ctx,
    route: &Route<'_>,
    payload: Payload<'_>,
    timeout_blocks: u64,
    wait: bool,
    signer: &crate::SignerArgs,
) -> Result<()> {
    let Route {
        from_chain,
        to_chain,
        to,
        channel: named,
    } = *route;
    let receiver = parse_address(to)?;
    let from = handle(&ctx.client, from_chain);
    let dest = handle(&ctx.client, to_chain);
    let from_status = from.status().await?;
    // The destination by the node's chain list (it may not host it); its
    // height from its own status where it does, else from the source's
    // client of it.
    let chains = ctx.client.chains().await?;
    // The main chain is listed first.
    let listing = if to_chain == "main" {
        chains.first().cloned()
    } else {
        chains
            .iter()
            .find(|c| {
                c["name"] == to_chain
                    || c["chain_id"].as_u64().map(|i| i.to_string()).as_deref() == Some(to_chain)
            })
            .cloned()
    };
    let dest_id = match listing {
        Some(l) => l["chain_id"].as_u64().unwrap_or_default(),
        // A chain outside the network (an external EVM chain): named by
        // the source's client of it.
        None => from
            .module_query("client", &format!("clients/{to_chain}"))
            .await
            .ok()
            .and_then(|c| c["chain_id"].as_u64())
            .ok_or_else(|| {
                usage(
                    "unknown_chain",
                    format!("the node knows no chain {to_chain}, and {from_chain} has no client of that name"),
                )
            })?,
    };
    let main_id = chains.first().and_then(|c| c["chain_id"].as_u64());
    // A direct channel, or (tokens between two sub-chains) two hops
    // through the main chain, which forwards them.
    let direct = match named {
        Some(ch) => {
            let end = from
                .module_query("channel", &format!("channels/{ch}"))
                .await?;
            Ok((
                ch.to_string(),
                end["counterparty_channel"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ))
        }
        None => channel_to(&from, dest_id, payload.port()).await,
    };
    let (channel, dest_channel, hop) = match direct {
        Ok((c, d)) => (c, d, None),
        Err(e) => {
            let (Payload::Tokens { .. }, Some(main_id)) = (&payload, main_id) else {
                return Err(e);
            };
            if main_id == dest_id || from_status.chain_id == main_id {
                return Err(e);
            }
            let hub = handle(&ctx.client, "main");
            let (c, d) = channel_to(&from, main_id, payload.port()).await?;
            let (hc, hd) = channel_to(&hub, dest_id, payload.port()).await?;
            (c, d, Some((hub, hc, hd)))
        }
    };
    // Heights of the first hop's destination and (with a hop) the final
    // one, each from its own status where this node hosts it, else from
    // the client of it on the chain before it.
    let first_dest = hop.as_ref().map_or(&dest, |(hub, _, _)| hub);
    let first_height = height_of(first_dest, &from, &channel).await?;
    let timeout_height = first_height + timeout_blocks;
    let forward = match &hop {
        Some((hub, hub_channel, _)) => Some(tongtian_xchain::transfer::Forward {
            channel: hub_channel.clone(),
            // The second hop leaves later: twice the allowance.
            timeout_height: height_of(&dest, hub, hub_channel).await? + 2 * timeout_blocks,
            timeout_ms: 0,
        }),
        None => None,
    };
    let action = match &payload {
        Payload::Tokens { amount, denom } => TransferMsg::Transfer {
            channel: channel.clone(),
            receiver,
            amount: *amount,
            denom: denom.to_string(),
            timeout_height,
            timeout_ms: 0,
            forward,
        }
        .action(),
        Payload::Nfts { class, ids } => tongtian_xchain::nft_transfer::NftTransferMsg::Transfer {
            channel: channel.clone(),
            class: class.to_string(),
            ids: ids.to_vec(),
            receiver,
            timeout_height,
            timeout_ms: 0,
        }
        .action(),
    };
    let tx = util::sign(&from, signer, action, None).await?;
    let hash = from.submit(&tx).await?;
    let receipt = util::wait_receipt(&from, &hash, ctx.wait).await?;
    if !receipt.is_success() {
        print(ctx.json, &util::receipt_json(&receipt), || {
            format!("refused: {}", util::status_text(&receipt.status))
        })?;
        return Err(
            util::Reported(format!("refused: {}", util::status_text(&receipt.status))).into(),
        );
    }
    let sequence = receipt
        .output
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0);
    let port = payload.port();
    let arrives_as = |name: &str, channel: &str, dest_channel: &str| match name
        .strip_prefix(&format!("{port}/{channel}/"))
    {
        Some(local) => local.to_string(),
        None => format!("{port}/{dest_channel}/{name}"),
    };
    let mut on_destination = arrives_as(payload.name(), &channel, &dest_channel);
    if let Some((_, hc, hd)) = &hop {
        on_destination = arrives_as(&on_destination, hc, hd);
    }
    let key = match payload {
        Payload::Tokens { .. } => "denom_on_destination",
        Payload::Nfts { .. } => "class_on_destination",
    };
    let mut out = json!({
        "tx_hash": hash,
        "packet": {
            "source_chain": from_status.chain_name,
            "source_channel": channel,
            "sequence": sequence,
        },
        key: on_destination,
        "status": "sent",
    });
    // With --wait, follow the packet until its source closes it.
    if wait {
        let deadline = Instant::now() + ctx.wait;
        loop {
            let pending = from
                .module_query("channel", &format!("packets/{channel}"))
                .await?;
            let open = pending
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["sequence"].as_u64() == Some(sequence));
            if !open {
                break;
            }
            if Instant::now() > deadline {
                out["status"] = json!("pending");
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if out["status"] == "sent" {
            // The first hop's ack (a forwarded one waits for the second).
            out["status"] = json!(match first_dest
                .module_query("channel", &format!("acks/{dest_channel}/{sequence}"))
                .await
            {
                Ok(ack) => match serde_json::from_value::<Ack>(ack) {
                    Ok(Ack::Success(_)) => "acknowledged",
                    Ok(Ack::Error(e)) => {
                        out["error"] = json!(e);
                        "error"
                    }
                    Err(_) => "timed_out",
                },
                // The destination is not on this node: the source's own
                // record of how the packet ended.
                Err(_) => closed_as(&from, &channel, sequence).await?,
            });
        }
    }
    print(ctx.json, &out, || {
        format!(
            "tx        {hash}\npacket    {} {channel} #{sequence}\nstatus    {}\non dest   {on_destination} on {to_chain}",
            out["packet"]["source_chain"].as_str().unwrap_or(""),
            out["status"].as_str().unwrap_or("")
        )
    })
}
