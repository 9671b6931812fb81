//! `tongtian party serve`, `tongtian compute ...` and `tongtian job ...`:
//! the party agent and the privacy jobs it serves.

use crate::util::{self, parse_address, print, usage, Ctx};
use crate::{ComputeCommand, JobCommand, PartyCommand};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tongtian_agent::{Agent, AgentConfig, JobParams};
use tongtian_data::job::JobMsg;
use tongtian_privacy::SessionConfig;
use tongtian_types::{Address, H256};

/// Run `party serve` until a signal.
pub async fn party(ctx: &Ctx, node: &str, cmd: PartyCommand) -> Result<()> {
    let PartyCommand::Serve {
        home,
        key,
        password,
        listen,
        session_timeout,
    } = cmd;
    let key = util::load_key(&key, password.as_deref())?;
    let agent = Agent::start(
        AgentConfig {
            home: home.clone(),
            node: node.to_string(),
            chain: ctx.client.chain_name().map(str::to_string),
            listen,
            session: SessionConfig {
                timeout: Duration::from_secs(session_timeout.max(1)),
                ..SessionConfig::default()
            },
            poll: Duration::from_millis(300),
        },
        key,
    )
    .await?;
    let out = json!({
        "agent": agent.address().to_string(),
        "listen": agent.local_addr().to_string(),
        "home": home.display().to_string(),
    });
    print(ctx.json, &out, || {
        format!(
            "party agent {} on {} (datasets in {}, outputs in {})",
            agent.address(),
            agent.local_addr(),
            home.join("data").display(),
            home.join("results").display()
        )
    })?;
    util::wait_for_signal().await;
    agent.stop();
    Ok(())
}

async fn send(
    ctx: &Ctx,
    signer: &crate::SignerArgs,
    msg: JobMsg,
) -> Result<tongtian_types::Receipt> {
    let tx = util::sign(&ctx.client, signer, msg.action(), None).await?;
    let hash = ctx.client.submit(&tx).await?;
    let r = util::wait_receipt(&ctx.client, &hash, ctx.wait).await?;
    if !r.is_success() {
        return Err(util::Reported(format!("refused: {}", util::status_text(&r.status))).into());
    }
    Ok(r)
}

/// A job with its own event log, as `job show` prints it.
async fn job_view(ctx: &Ctx, id: u64) -> Result<Value> {
    let mut v = ctx
        .client
        .module_query("job", &format!("jobs/{id}"))
        .await?;
    v["events"] = ctx
        .client
        .module_query("job", &format!("jobs/{id}/events"))
        .await?;
    Ok(v)
}

/// Run a `compute` command.
pub async fn compute(ctx: &Ctx, cmd: ComputeCommand) -> Result<()> {
    let ComputeCommand::Psi {
        assets,
        protocol,
        key_column,
        output_to,
        cardinality,
        pay,
        timeout_blocks,
        wait,
        out,
        signer,
    } = cmd;
    if assets.len() != 2 {
        return Err(usage(
            "bad_args",
            "PSI takes two assets: the receiver's, then the sender's",
        ));
    }
    let key = util::load_key(&signer.key, signer.password.as_deref())?;
    let me = Address::from_public_key(key.suite(), key.public_key());
    let output_to = match output_to {
        Some(a) => parse_address(&a)?,
        None => me,
    };
    let started = Instant::now();
    let r = send(
        ctx,
        &signer,
        JobMsg::Create {
            protocol: protocol.clone(),
            assets: assets.clone(),
            columns: vec![key_column.clone()],
            params: JobParams {
                key_column,
                cardinality,
            }
            .encode(),
            output_to,
            payment: pay,
            timeout_blocks,
        },
    )
    .await?;
    let id = u64::from_le_bytes(
        r.output[..8]
            .try_into()
            .context("the chain answered no job id")?,
    );
    eprintln!("job {id}: filed at block {}, {pay} in escrow", r.height);
    if !wait {
        let v = json!({ "job": id, "status": "open" });
        return print(ctx.json, &v, || format!("job {id} filed"));
    }
    let mut last = String::new();
    let mut abort_sent = false;
    let job = loop {
        let j = ctx
            .client
            .module_query("job", &format!("jobs/{id}"))
            .await?;
        let status = j["status"].as_str().unwrap_or("").to_string();
        if status != last {
            eprintln!(
                "job {id}: {status} after {:.1} s ({} of {} accepted)",
                started.elapsed().as_secs_f64(),
                j["accepted"].as_array().map_or(0, Vec::len),
                assets.len()
            );
            last = status.clone();
        }
        if status == "completed" || status == "aborted" {
            break j;
        }
        let height = ctx.client.status().await?.height;
        if !abort_sent && height > j["deadline"].as_u64().unwrap_or(u64::MAX) {
            // Nobody finished it in time: take the escrow back.
            abort_sent = true;
            eprintln!("job {id}: past its timeout block, aborting");
            if let Err(e) = send(ctx, &signer, JobMsg::Abort { job: id }).await {
                eprintln!("job {id}: abort: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    let status = job["status"].as_str().unwrap_or("").to_string();
    let commitment = job["result_commitment"].as_str().map(str::to_string);
    let mut size = Value::Null;
    let mut location = Value::Null;
    if status == "completed" && output_to == me {
        let on_chain = util::parse_hash(commitment.as_deref().unwrap_or(""))?;
        let size_and_file = fetch_output(ctx, &key, id, &assets, &on_chain).await?;
        size = size_and_file.0.into();
        if let Some(path) = out {
            std::fs::write(&path, &size_and_file.1)
                .with_context(|| format!("cannot write {}", path.display()))?;
            location = path.display().to_string().into();
        }
    }
    let v = json!({
        "job": id,
        "status": status,
        "intersection_size": size,
        "transcript_hash": job["transcript_hash"],
        "result_commitment": job["result_commitment"],
        "seconds": seconds,
        "output": location,
        "payments": job["payments"],
    });
    print(ctx.json, &v, || {
        format!(
            "job {id} {status} in {seconds:.1} s; intersection size {size}; result commitment {}",
            commitment.as_deref().unwrap_or("-")
        )
    })
}

/// Fetch job `id`'s output from its receiving agent (the first asset's)
/// and check it against the chain: the intersection's size and the file.
async fn fetch_output(
    ctx: &Ctx,
    key: &tongtian_crypto::Keypair,
    id: u64,
    assets: &[u64],
    on_chain: &H256,
) -> Result<(usize, Vec<u8>)> {
    let a = ctx
        .client
        .module_query("data", &format!("assets/{}", assets[0]))
        .await?;
    let agent = a["agent"].as_str().unwrap_or("").to_string();
    let agent_key = a["agent_key"].as_str().unwrap_or("");
    let agent_key = hex::decode(agent_key.strip_prefix("0x").unwrap_or(agent_key))
        .context("the asset's agent key is not hex")?;
    let chain_id = ctx.client.status().await?.chain_id;
    let got = tongtian_agent::results::fetch(
        &agent,
        &agent_key,
        key,
        chain_id,
        id,
        on_chain,
        SessionConfig::default(),
    )
    .await
    .with_context(|| format!("fetching job {id}'s output from {agent}"))?;
    let text = String::from_utf8_lossy(&got.bytes);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let size = if header == "intersection_size" {
        lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    } else {
        lines.count()
    };
    Ok((size, got.bytes))
}

/// Run a `job` command.
pub async fn job(ctx: &Ctx, cmd: JobCommand) -> Result<()> {
    match cmd {
        JobCommand::List { status } => {
            let path = match status {
                Some(s) => format!("jobs?status={s}"),
                None => "jobs".into(),
            };
            let v = ctx.client.module_query("job", &path).await?;
            print(ctx.json, &v, || {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|j| {
                        format!(
                            "{}  {}  {}  assets {}  by {}",
                            j["id"],
                            j["protocol"].as_str().unwrap_or(""),
                            j["status"].as_str().unwrap_or(""),
                            j["assets"],
                            j["requester"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        JobCommand::Show { id } => {
            let v = job_view(ctx, id).await?;
            print(ctx.json, &v, || {
                let mut out = vec![format!(
                    "job {id}: {} {} over assets {}, requested by {}, output to {}",
                    v["protocol"].as_str().unwrap_or(""),
                    v["status"].as_str().unwrap_or(""),
                    v["assets"],
                    v["requester"].as_str().unwrap_or(""),
                    v["output_to"].as_str().unwrap_or("")
                )];
                for e in v["events"].as_array().into_iter().flatten() {
                    out.push(format!(
                        "  block {}  {}  by {}",
                        e["height"],
                        e["action"].as_str().unwrap_or(""),
                        e["by"].as_str().unwrap_or("")
                    ));
                }
                for p in v["payments"].as_array().into_iter().flatten() {
                    out.push(format!(
                        "  paid {} to {}",
                        p["amount"].as_str().unwrap_or(""),
                        p["to"].as_str().unwrap_or("")
                    ));
                }
                out.join("\n")
            })
        }
        JobCommand::Abort { id, signer } => {
            send(ctx, &signer, JobMsg::Abort { job: id }).await?;
            let v = job_view(ctx, id).await?;
            print(ctx.json, &v, || {
                format!("job {id} aborted, escrow refunded")
            })
        }
    }
}
