//! `tongtian bench psi`: two parties run a PSI protocol over a real
//! Noise session on 127.0.0.1, on N-element sets of which half overlap,
//! beside a plaintext hash join of the same sets in the same run.
//!
//! This measures the protocol and its sessions between two parties in
//! one process (both on this machine's two cores); `--on-chain` also runs
//! one job through a dev node and two party agents and reports what the
//! chain adds around the protocol.

use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;
use std::time::Instant;
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_privacy::protocol::{plain_intersection, PsiParams};
use tongtian_privacy::psi_ecdh::PsiEcdh;
use tongtian_privacy::psi_ot::PsiOt;
use tongtian_privacy::{Peers, PrivacyProtocol, PsiInput, PsiOutput, Session, SessionConfig};

/// `tongtian bench psi` options.
#[derive(Args, Debug)]
pub struct PsiBenchArgs {
    /// Keys per party (half of them shared).
    #[arg(long, default_value_t = 1 << 16)]
    pub size: usize,
    /// The protocol.
    #[arg(long, default_value = "psi-ecdh", value_parser = ["psi-ecdh", "psi-ot"])]
    pub protocol: String,
    /// Also run the same sets as one job on a dev node with two party
    /// agents (register, grant, create, accept, run, complete) and report
    /// what the chain adds around the protocol.
    #[arg(long)]
    pub on_chain: bool,
}

/// What the benchmark prints.
#[derive(Debug, Serialize)]
pub struct PsiBenchReport {
    /// Always `psi`.
    pub bench: &'static str,
    /// The protocol.
    pub protocol: String,
    /// Keys per party.
    pub size: usize,
    /// The intersection's size (half the keys, checked).
    pub intersection_size: usize,
    /// From the first byte to the receiver's output, seconds.
    pub seconds: f64,
    /// Bytes both parties sent (framing and encryption included).
    pub bytes_sent: u64,
    /// Peak resident memory of this process (both parties), MB.
    pub peak_rss_mb: f64,
    /// A hash join of the same sets, seconds.
    pub plaintext_seconds: f64,
    /// `seconds / plaintext_seconds`.
    pub ratio: f64,
    /// With `--on-chain`: from submitting the job's `create` to seeing it
    /// completed, seconds.
    pub job_seconds: Option<f64>,
    /// `job_seconds - seconds`: what the on-chain path adds (four
    /// transactions, their blocks, the agents' polling, reading the files).
    pub on_chain_overhead_seconds: Option<f64>,
    /// Blocks from the job's creation to its completion.
    pub job_blocks: Option<u64>,
}

/// One-line summary.
pub fn summary(r: &PsiBenchReport) -> String {
    let chain = match (r.job_seconds, r.on_chain_overhead_seconds, r.job_blocks) {
        (Some(j), Some(o), Some(b)) => {
            format!("; as a job on chain {j:.2} s over {b} blocks (+{o:.2} s around the protocol)")
        }
        _ => String::new(),
    };
    format!(
        "{} on 2 x {} keys: {:.2} s, {:.1} MB sent, peak RSS {:.0} MB; plaintext join {:.3} s (x{:.0}){chain}",
        r.protocol,
        r.size,
        r.seconds,
        r.bytes_sent as f64 / 1e6,
        r.peak_rss_mb,
        r.plaintext_seconds,
        r.ratio
    )
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Run it.
pub async fn run(args: PsiBenchArgs) -> Result<PsiBenchReport> {
    match args.protocol.as_str() {
        "psi-ot" => run_with(PsiOt, args).await,
        _ => run_with(PsiEcdh, args).await,
    }
}

async fn run_with<P>(p: P, args: PsiBenchArgs) -> Result<PsiBenchReport>
where
    P: PrivacyProtocol<Params = PsiParams, Input = PsiInput, Output = PsiOutput> + Copy + 'static,
{
    let n = args.size;
    let x: Vec<String> = (0..n).map(|i| format!("id-{i:08}")).collect();
    let y: Vec<String> = (n / 2..n + n / 2).map(|i| format!("id-{i:08}")).collect();
    let (x_keys, y_keys) = if args.on_chain {
        (x.clone(), y.clone())
    } else {
        (Vec::new(), Vec::new())
    };
    let started = Instant::now();
    let want = plain_intersection(&x, &y, false);
    let plaintext_seconds = started.elapsed().as_secs_f64();

    let job = [0x42u8; 32];
    let (r, s) = (
        Keypair::from_seed(SuiteId::Standard, b"bench-receiver"),
        Keypair::from_seed(SuiteId::Standard, b"bench-sender"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let cfg = SessionConfig::default();
    let r_pub = r.public_key().to_vec();
    let s_pub = s.public_key().to_vec();
    let params = PsiParams::new(job);
    let p2 = params.clone();
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let session = Session::accept(stream, &s, &[r_pub], job, cfg).await?;
        Ok::<_, anyhow::Error>(
            p.run(1, &mut Peers::two(1, session), &p2, PsiInput { keys: y })
                .await?,
        )
    });
    let session = Session::connect(&addr, &r, &s_pub, job, cfg).await?;
    let got = p
        .run(
            0,
            &mut Peers::two(0, session),
            &params,
            PsiInput { keys: x },
        )
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let theirs = sender.await??;
    if got.output != want {
        bail!("the protocol's output differs from the plaintext join");
    }
    let PsiOutput::Intersection(both) = &got.output else {
        bail!("no intersection");
    };
    let on_chain = if args.on_chain {
        Some(on_chain(&args.protocol, &x_keys, &y_keys, both.len()).await?)
    } else {
        None
    };
    Ok(PsiBenchReport {
        bench: "psi",
        protocol: args.protocol,
        size: n,
        intersection_size: both.len(),
        seconds,
        bytes_sent: got.bytes_sent + theirs.bytes_sent,
        peak_rss_mb: peak_rss_mb(),
        plaintext_seconds,
        ratio: seconds / plaintext_seconds.max(1e-9),
        job_seconds: on_chain.map(|o| o.0),
        on_chain_overhead_seconds: on_chain.map(|o| o.0 - seconds),
        job_blocks: on_chain.map(|o| o.1),
    })
}

/// One job over `x` and `y` on a dev node process with two in-process
/// party agents: (seconds from `create` to completed, blocks).
async fn on_chain(protocol: &str, x: &[String], y: &[String], want: usize) -> Result<(f64, u64)> {
    use crate::dev_agents::submit;
    use tongtian_data::data::DataMsg;
    use tongtian_data::job::JobMsg;
    let (_node, url, keys_dir) = crate::bench::spawn_dev(SuiteId::Standard)?;
    let client = tongtian_client::Client::new(&url);
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while client.status().await.is_err() {
        if Instant::now() > deadline {
            bail!("the dev node did not start");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let keys: Vec<Keypair> = (0..3)
        .map(|i| crate::util::load_key(&keys_dir.join(format!("dev-{i}.key")), None))
        .collect::<Result<_>>()?;
    let payer = tongtian_types::Address::from_public_key(keys[2].suite(), keys[2].public_key());
    let homes = tempfile::tempdir()?;
    let mut assets = Vec::new();
    let mut agents = Vec::new();
    for (i, set) in [x, y].into_iter().enumerate() {
        let home = homes.path().join(format!("agent-{i}"));
        std::fs::create_dir_all(home.join("data"))?;
        let file = home.join("data/set.csv");
        let mut text = String::with_capacity(set.len() * 16);
        text.push_str("id\n");
        for k in set {
            text.push_str(k);
            text.push('\n');
        }
        std::fs::write(&file, text)?;
        let salt = [i as u8 + 1; 32];
        std::fs::write(tongtian_data::rows::salt_path(&file), hex::encode(salt))?;
        let table = tongtian_data::rows::Table::read(&file).map_err(crate::data::rows_error)?;
        let c = table.commit(SuiteId::Standard, &salt);
        let listen: std::net::SocketAddr = "127.0.0.1:0".parse()?;
        let agent = tongtian_agent::Agent::start(
            tongtian_agent::AgentConfig {
                home,
                node: url.clone(),
                chain: None,
                listen,
                session: SessionConfig::default(),
                // As `party serve` polls.
                poll: std::time::Duration::from_millis(300),
            },
            keys[i].clone(),
        )
        .await?;
        let r = submit(
            &client,
            &keys[i],
            DataMsg::Register {
                name: format!("bench-{i}"),
                schema: c.schema,
                rows: c.rows,
                commitment: c.root,
                agent: agent.local_addr().to_string(),
                agent_key: keys[i].public_key().to_vec(),
                price: 1,
            }
            .action(),
        )
        .await?;
        let id = u64::from_le_bytes(r.output[..8].try_into()?);
        submit(
            &client,
            &keys[i],
            DataMsg::Grant {
                asset: id,
                to: payer,
                protocols: vec![protocol.to_string()],
                columns: vec![],
                until: 0,
                uses: 0,
            }
            .action(),
        )
        .await?;
        assets.push(id);
        agents.push(agent);
    }
    let started = Instant::now();
    let r = submit(
        &client,
        &keys[2],
        JobMsg::Create {
            protocol: protocol.to_string(),
            assets,
            columns: vec!["id".into()],
            params: tongtian_agent::JobParams {
                key_column: "id".into(),
                ..Default::default()
            }
            .encode(),
            output_to: payer,
            payment: 2,
            timeout_blocks: 100_000,
        }
        .action(),
    )
    .await?;
    let id = u64::from_le_bytes(r.output[..8].try_into()?);
    let created = r.height;
    loop {
        let j = client.module_query("job", &format!("jobs/{id}")).await?;
        match j["status"].as_str() {
            Some("completed") => break,
            Some("aborted") => bail!("the bench job aborted"),
            _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
        if started.elapsed().as_secs() > 600 {
            bail!("the bench job did not complete in 10 minutes");
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let events = client
        .module_query("job", &format!("jobs/{id}/events"))
        .await?;
    let done = events
        .as_array()
        .and_then(|e| e.last())
        .and_then(|e| e["height"].as_u64())
        .unwrap_or(created);
    let out = std::fs::read_to_string(homes.path().join(format!("agent-0/results/job-{id}.csv")))?;
    if out.lines().count() != want + 1 {
        bail!(
            "the job's output has {} rows, {want} expected",
            out.lines().count() - 1
        );
    }
    for a in agents {
        a.stop();
    }
    Ok((seconds, done.saturating_sub(created)))
}
