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

/// A job to file.
struct Filing {
    protocol: String,
    assets: Vec<u64>,
    columns: Vec<String>,
    params: JobParams,
    output_to: Option<String>,
    pay: u128,
    timeout_blocks: u64,
}

/// How a filed job ended, with its output when the signer receives it.
struct Followed {
    id: u64,
    job: Value,
    seconds: f64,
    output: Option<Vec<u8>>,
}

impl Followed {
    /// What every `compute` command prints of a followed job (job, status,
    /// transcript hash, result commitment, seconds, payments), with the
    /// command's own fields in `extra`.
    fn report(&self, extra: Value) -> Value {
        let mut v = json!({
            "job": self.id,
            "status": self.job["status"],
            "transcript_hash": self.job["transcript_hash"],
            "result_commitment": self.job["result_commitment"],
            "seconds": self.seconds,
            "payments": self.job["payments"],
        });
        if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
            v.extend(extra);
        }
        v
    }

    /// Its status.
    fn status(&self) -> &str {
        self.job["status"].as_str().unwrap_or("")
    }

    /// The fetched output as JSON (`null` when there is none).
    fn json_output(&self, what: &str) -> Result<Value> {
        match &self.output {
            Some(b) => serde_json::from_slice(b).with_context(|| format!("the {what} is not JSON")),
            None => Ok(Value::Null),
        }
    }
}

/// What a `compute` command prints of a job filed without `--wait`.
fn filed(ctx: &Ctx, id: u64) -> Result<()> {
    let v = json!({ "job": id, "status": "open" });
    print(ctx.json, &v, || format!("job {id} filed"))
}

/// The numeric columns of `assets` (in order, each once), but `except`.
async fn numeric_columns(ctx: &Ctx, assets: &[u64], except: &[&str]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for id in assets {
        let a = ctx
            .client
            .module_query("data", &format!("assets/{id}"))
            .await?;
        for c in a["schema"].as_array().into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or("").to_string();
            if matches!(c["type"].as_str(), Some("int" | "float"))
                && !except.contains(&name.as_str())
                && !out.contains(&name)
            {
                out.push(name);
            }
        }
    }
    Ok(out)
}

/// File `f`, and with `wait` follow it (progress on stderr, aborting it
/// once past its timeout) and fetch its output when the signer is the
/// output account; `None` without `wait`.
async fn file_and_follow(
    ctx: &Ctx,
    signer: &crate::SignerArgs,
    f: Filing,
    wait: bool,
) -> Result<(u64, Option<Followed>)> {
    let key = util::load_key(&signer.key, signer.password.as_deref())?;
    let me = Address::from_public_key(key.suite(), key.public_key());
    let output_to = match &f.output_to {
        Some(a) => parse_address(a)?,
        None => me,
    };
    let started = Instant::now();
    let r = send(
        ctx,
        signer,
        JobMsg::Create {
            protocol: f.protocol.clone(),
            assets: f.assets.clone(),
            columns: f.columns.clone(),
            params: f.params.encode(),
            output_to,
            payment: f.pay,
            timeout_blocks: f.timeout_blocks,
        },
    )
    .await?;
    let id = u64::from_le_bytes(
        r.output[..8]
            .try_into()
            .context("the chain answered no job id")?,
    );
    eprintln!("job {id}: filed at block {}, {} in escrow", r.height, f.pay);
    if !wait {
        return Ok((id, None));
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
                f.assets.len()
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
            if let Err(e) = send(ctx, signer, JobMsg::Abort { job: id }).await {
                eprintln!("job {id}: abort: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut output = None;
    if job["status"] == "completed" && output_to == me {
        let on_chain = util::parse_hash(job["result_commitment"].as_str().unwrap_or(""))?;
        output = Some(fetch_output(ctx, &key, id, &f.assets, &on_chain).await?);
    }
    Ok((
        id,
        Some(Followed {
            id,
            job,
            seconds,
            output,
        }),
    ))
}

/// Run a `compute` command.
pub async fn compute(ctx: &Ctx, cmd: ComputeCommand) -> Result<()> {
    match cmd {
        ComputeCommand::Fl {
            assets,
            key_column,
            label,
            columns,
            model,
            hidden,
            rounds,
            min_clients,
            epochs,
            learning_rate,
            holdout,
            output_to,
            pay,
            timeout_blocks,
            wait,
            signer,
        } => {
            let hidden = if model == "mlp" { hidden.max(1) } else { 0 };
            if assets.len() < 3 {
                return Err(usage("bad_args", "fl takes three assets or more"));
            }
            let mut features = columns;
            if features.is_empty() {
                features = numeric_columns(ctx, &assets[..1], &[&key_column, &label]).await?;
            }
            let mut all = vec![key_column.clone(), label.clone()];
            all.extend(features.iter().cloned());
            let filing = Filing {
                protocol: "fl".into(),
                assets,
                columns: all,
                params: JobParams {
                    key_column,
                    label: Some(label),
                    epochs: Some(epochs),
                    learning_rate: Some(learning_rate),
                    holdout: Some(holdout),
                    rounds: Some(rounds),
                    min_clients: Some(min_clients),
                    hidden: Some(hidden),
                    ..Default::default()
                },
                output_to,
                pay,
                timeout_blocks,
            };
            let (id, followed) = file_and_follow(ctx, &signer, filing, wait).await?;
            let Some(f) = followed else {
                return filed(ctx, id);
            };
            let model = f.json_output("model")?;
            for r in f.job["rounds"].as_array().into_iter().flatten() {
                eprintln!(
                    "round {}: clients {}, model {}",
                    r["round"],
                    r["participants"],
                    r["model_commitment"].as_str().unwrap_or("")
                );
            }
            let v = f.report(json!({
                "accuracy": model["accuracy"],
                "rounds": f.job["rounds"],
                "model": model,
            }));
            print(ctx.json, &v, || {
                format!(
                    "job {id} {} in {:.1} s; {} rounds; accuracy {}",
                    f.status(),
                    f.seconds,
                    f.job["rounds"].as_array().map_or(0, Vec::len),
                    model["accuracy"]
                )
            })
        }
        ComputeCommand::Lr {
            assets,
            key_column,
            label,
            columns,
            epochs,
            learning_rate,
            holdout,
            output_to,
            pay,
            timeout_blocks,
            wait,
            signer,
        } => {
            compute_lr(
                ctx,
                assets,
                key_column,
                label,
                columns,
                epochs,
                learning_rate,
                holdout,
                output_to,
                pay,
                timeout_blocks,
                wait,
                signer,
            )
            .await
        }
        ComputeCommand::Psi {
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
        } => {
            if assets.len() != 2 {
                return Err(usage(
                    "bad_args",
                    "PSI takes two assets: the receiver's, then the sender's",
                ));
            }
            let filing = Filing {
                protocol,
                assets,
                columns: vec![key_column.clone()],
                params: JobParams {
                    key_column,
                    cardinality,
                    ..Default::default()
                },
                output_to,
                pay,
                timeout_blocks,
            };
            let (id, followed) = file_and_follow(ctx, &signer, filing, wait).await?;
            let Some(f) = followed else {
                return filed(ctx, id);
            };
            let mut size = Value::Null;
            let mut location = Value::Null;
            if let Some(bytes) = &f.output {
                size = psi_size(bytes).into();
                if let Some(path) = out {
                    std::fs::write(&path, bytes)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    location = path.display().to_string().into();
                }
            }
            let v = f.report(json!({
                "intersection_size": size,
                "output": location,
            }));
            print(ctx.json, &v, || {
                format!(
                    "job {id} {} in {:.1} s; intersection size {size}; result commitment {}",
                    f.status(),
                    f.seconds,
                    f.job["result_commitment"].as_str().unwrap_or("-")
                )
            })
        }
        ComputeCommand::Stats {
            assets,
            key_column,
            columns,
            ops,
            bins,
            output_to,
            pay,
            timeout_blocks,
            wait,
            signer,
        } => {
            if assets.len() != 3 {
                return Err(usage(
                    "bad_args",
                    "stats runs among three parties (the engine is three-party): name three assets",
                ));
            }
            let mut all = vec![key_column.clone()];
            all.extend(columns.iter().cloned());
            let filing = Filing {
                protocol: "stats".into(),
                assets,
                columns: all,
                params: JobParams {
                    key_column,
                    ops,
                    bins,
                    ..Default::default()
                },
                output_to,
                pay,
                timeout_blocks,
            };
            let (id, followed) = file_and_follow(ctx, &signer, filing, wait).await?;
            let Some(f) = followed else {
                return filed(ctx, id);
            };
            let result = f.json_output("output")?;
            let v = f.report(json!({ "result": result }));
            print(ctx.json, &v, || {
                format!(
                    "job {id} {} in {:.1} s: {}",
                    f.status(),
                    f.seconds,
                    serde_json::to_string_pretty(&result).unwrap_or_default()
                )
            })
        }
    }
}

/// `compute lr`: the features are the named columns, or every numeric
/// column of the assets but the key and the label.
#[allow(clippy::too_many_arguments)]
async fn compute_lr(
    ctx: &Ctx,
    assets: Vec<u64>,
    key_column: String,
    label: String,
    columns: Vec<String>,
    epochs: u32,
    learning_rate: f64,
    holdout: f64,
    output_to: Option<String>,
    pay: u128,
    timeout_blocks: u64,
    wait: bool,
    signer: crate::SignerArgs,
) -> Result<()> {
    if assets.len() != 3 {
        return Err(usage(
            "bad_args",
            "lr runs among three parties (the engine is three-party): name three assets, the label's first",
        ));
    }
    let mut features = columns;
    if features.is_empty() {
        features = numeric_columns(ctx, &assets, &[&key_column, &label]).await?;
    }
    let mut all = vec![key_column.clone(), label.clone()];
    all.extend(features.iter().cloned());
    let filing = Filing {
        protocol: "lr-vertical".into(),
        assets,
        columns: all,
        params: JobParams {
            key_column,
            label: Some(label),
            epochs: Some(epochs),
            learning_rate: Some(learning_rate),
            holdout: Some(holdout),
            ..Default::default()
        },
        output_to,
        pay,
        timeout_blocks,
    };
    let (id, followed) = file_and_follow(ctx, &signer, filing, wait).await?;
    let Some(f) = followed else {
        return filed(ctx, id);
    };
    let model = f.json_output("model")?;
    let v = f.report(json!({
        "accuracy": model["accuracy"],
        "model": model,
        "features": features,
    }));
    print(ctx.json, &v, || {
        format!(
            "job {id} {} in {:.1} s; held-out accuracy {}; the model is in the first asset's agent's results/job-{id}.json",
            f.status(), f.seconds, model["accuracy"]
        )
    })
}

/// The intersection's size in a PSI output file.
fn psi_size(bytes: &[u8]) -> usize {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    if lines.next() == Some("intersection_size") {
        lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    } else {
        lines.count()
    }
}

/// Fetch job `id`'s output from its receiving agent (the first asset's)
/// and check it against the chain.
async fn fetch_output(
    ctx: &Ctx,
    key: &tongtian_crypto::Keypair,
    id: u64,
    assets: &[u64],
    on_chain: &H256,
) -> Result<Vec<u8>> {
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
    Ok(got.bytes)
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
