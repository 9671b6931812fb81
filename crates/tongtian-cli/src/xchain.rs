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
        XchainCommand::Transfer {
            from_chain,
            to_chain,
            to,
            amount,
            denom,
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
                },
                amount,
                &denom,
                timeout_blocks,
                wait,
                &signer,
            )
            .await
        }
    }
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

/// The transfer channel on `from` whose client follows chain `to_id`.
async fn channel_to(from: &Client, to_id: u64) -> Result<(String, String)> {
    let channels = from.module_query("channel", "channels").await?;
    for c in channels.as_array().into_iter().flatten() {
        if c["port"] != "transfer" {
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
        format!("no transfer channel leads from this chain to chain {to_id} (sub-chains reach each other through the main chain)"),
    ))
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
}

async fn transfer(
    ctx: &Ctx,
    route: &Route<'_>,
    amount: u128,
    denom: &str,
    timeout_blocks: u64,
    wait: bool,
    signer: &crate::SignerArgs,
) -> Result<()> {
    let Route {
        from_chain,
        to_chain,
        to,
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
        chains.into_iter().next()
    } else {
        chains.into_iter().find(|c| {
            c["name"] == to_chain
                || c["chain_id"].as_u64().map(|i| i.to_string()).as_deref() == Some(to_chain)
        })
    }
    .ok_or_else(|| {
        usage(
            "unknown_chain",
            format!("the node knows no chain {to_chain}"),
        )
    })?;
    let dest_id = listing["chain_id"].as_u64().unwrap_or_default();
    let (channel, dest_channel) = channel_to(&from, dest_id).await?;
    let dest_height = match dest.status().await {
        Ok(st) => st.height,
        Err(_) => {
            let client = from
                .module_query("channel", &format!("channels/{channel}"))
                .await?["client"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            from.module_query("client", &format!("clients/{client}"))
                .await?["latest_height"]
                .as_u64()
                .unwrap_or(0)
        }
    };
    let action = TransferMsg::Transfer {
        channel: channel.clone(),
        receiver,
        amount,
        denom: denom.to_string(),
        timeout_height: dest_height + timeout_blocks,
        timeout_ms: 0,
    }
    .action();
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
    let back = format!("transfer/{channel}/");
    let denom_on_destination = match denom.strip_prefix(&back) {
        Some(local) => local.to_string(),
        None => format!("transfer/{dest_channel}/{denom}"),
    };
    let mut out = json!({
        "tx_hash": hash,
        "packet": {
            "source_chain": from_status.chain_name,
            "source_channel": channel,
            "sequence": sequence,
        },
        "denom_on_destination": denom_on_destination,
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
            out["status"] = json!(match dest
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
            "tx        {hash}\npacket    {} {channel} #{sequence}\nstatus    {}\ndenom     {denom_on_destination} on {to_chain}",
            out["packet"]["source_chain"].as_str().unwrap_or(""),
            out["status"].as_str().unwrap_or("")
        )
    })
}
