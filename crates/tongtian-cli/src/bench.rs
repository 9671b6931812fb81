//! `tongtian bench transfers`: end-to-end throughput and latency of signed
//! native transfers through the REST API.
//!
//! Unless `--keys-dir` points at an existing node's prefunded keys, the
//! benchmark starts a fresh `tongtian dev` node as a child process (real
//! process, real socket, on-disk store) and stops it afterwards.
//!
//! Method: fund `concurrency` fresh sender accounts from the dev accounts;
//! pre-sign `count` transfers between those senders (signing is timed
//! separately as `sign_tps`); subscribe to the block stream; then each
//! sender's task submits its transfers in batches, in nonce order. A
//! transfer's latency runs from the start of its batch's HTTP request to
//! the arrival of the block event that commits it. `tps` is committed
//! transfers divided by the time from the first submission to the last
//! commit. `verify_bound_tps` is, in the same run on the same machine, the
//! rate at which the chain's suite verifies these transactions' signatures
//! the way admission does (batched, on all cores): the ceiling of a node
//! that checks every signature.

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tongtian_client::Client;
use tongtian_crypto::{suite, Keypair, SuiteId};
use tongtian_types::codec::encode;
use tongtian_types::{
    verify_signatures, Action, Address, CheckedTx, SignedTransaction, Transaction, H256,
};

/// Gas limit of each benchmark transfer (covers its intrinsic gas).
const GAS_LIMIT: u64 = 30_000;

/// Arguments of `tongtian bench transfers`.
#[derive(Debug, clap::Args)]
pub struct TransferBenchArgs {
    /// Number of transfers.
    #[arg(long, default_value_t = 20_000)]
    pub count: usize,
    /// Concurrent clients (each a sender account with its own task).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Transfers per HTTP request.
    #[arg(long, default_value_t = 200)]
    pub batch: usize,
    /// Crypto suite of the node the benchmark starts.
    #[arg(long, default_value = "standard", value_parser = crate::suite_parser())]
    pub suite: SuiteId,
    /// Use the node at `--node` (or the nodes of `--nodes`) instead of
    /// starting one; this directory holds the chain's prefunded `dev-*.key`
    /// files. Default with `--nodes`: none (then it is required).
    #[arg(long)]
    pub keys_dir: Option<PathBuf>,
    /// Offer at most this many transfers per second in total (default: as
    /// fast as the node takes them). Finality latency is only meaningful
    /// below saturation.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Spread the clients over these nodes of one chain (comma-separated
    /// URLs); needs `--keys-dir`.
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<String>,
}

/// What the benchmark prints.
#[derive(Debug, Serialize)]
pub struct TransferBenchReport {
    /// Always `transfers`.
    pub bench: &'static str,
    /// Node URL (the first one, with several).
    pub node: String,
    /// Number of nodes the clients were spread over.
    pub nodes: usize,
    /// Consensus engine of the chain.
    pub consensus: String,
    /// Whether the node was started by the benchmark.
    pub spawned_node: bool,
    /// Crypto suite.
    pub suite: String,
    /// Requested transfers.
    pub count: usize,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Transfers per request.
    pub batch: usize,
    /// Offered load cap (transfers per second), if any.
    pub rate: Option<u64>,
    /// Accepted by the node.
    pub submitted: usize,
    /// Refused at submission.
    pub rejected: usize,
    /// Refusal codes and counts.
    pub rejected_codes: HashMap<String, usize>,
    /// Committed with a successful receipt.
    pub committed: usize,
    /// Committed with a failed receipt.
    pub failed: usize,
    /// First submission to last commit, seconds.
    pub duration_s: f64,
    /// Committed transfers per second, end to end.
    pub tps: f64,
    /// Median submission-to-commit latency.
    pub latency_ms_p50: f64,
    /// 99th percentile latency.
    pub latency_ms_p99: f64,
    /// Blocks that carried benchmark transfers.
    pub blocks: usize,
    /// Signatures made per second while pre-signing (all cores).
    pub sign_tps: f64,
    /// Signature verifications per second of the chain's suite, batched on all cores.
    pub verify_bound_tps: f64,
    /// `tps / verify_bound_tps`.
    pub tps_over_verify_bound: f64,
    /// Sampled receipts fetched and found successful.
    pub receipts_checked: usize,
    /// Whether the block stream skipped blocks (latencies then undercount).
    pub stream_lagged: bool,
    /// Cores available.
    pub cores: usize,
}

/// The report as a few lines of text (`--json` prints all of it).
pub fn summary(r: &TransferBenchReport) -> String {
    format!(
        "transfers: {} committed ({} failed, {} refused) in {:.2} s over {} node(s), {} {}\n  tps {:.0}   latency p50 {:.1} ms, p99 {:.1} ms   blocks {}\n  signature bound {:.0}/s (tps is {:.2} of it)   (--json for every figure)",
        r.committed,
        r.failed,
        r.rejected,
        r.duration_s,
        r.nodes,
        r.consensus,
        r.suite,
        r.tps,
        r.latency_ms_p50,
        r.latency_ms_p99,
        r.blocks,
        r.verify_bound_tps,
        r.tps_over_verify_bound
    )
}

/// Kills the child node when dropped.
pub(crate) struct NodeProcess {
    child: Child,
    _dir: tempfile::TempDir,
}

impl NodeProcess {
    /// CPU time (user and system, all threads) the node process has used
    /// so far, from `/proc/<pid>/stat`; `None` where that is unavailable.
    pub(crate) fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // The fields after the command name (in parentheses, which may
        // hold spaces): state is the first, utime the 12th, stime the 13th.
        let fields: Vec<&str> = stat
            .get(stat.rfind(')')? + 1..)?
            .split_whitespace()
            .collect();
        let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        // In USER_HZ ticks, which Linux fixes at 100 a second on the
        // architectures we build for.
        Some(ticks / 100.0)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

pub(crate) async fn wait_ready(client: &Client, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match client.status().await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                bail!("node at {} not ready: {e}", client.base())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

pub(crate) fn spawn_dev(suite: SuiteId) -> Result<(NodeProcess, String, PathBuf)> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let exe = std::env::current_exe().context("locating the tongtian binary")?;
    let child = std::process::Command::new(exe)
        .args(["dev", "--data-dir"])
        .arg(dir.path())
        .args([
            "--api",
            &format!("127.0.0.1:{port}"),
            "--suite",
            suite.name(),
            "--log",
            // The node's log level (default `warn`), for looking into a run.
            &std::env::var("TONGTIAN_BENCH_NODE_LOG").unwrap_or_else(|_| "warn".into()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a dev node")?;
    let keys = dir.path().join("dev-keys");
    Ok((
        NodeProcess { child, _dir: dir },
        format!("http://127.0.0.1:{port}"),
        keys,
    ))
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn transfer(
    chain_id: u64,
    nonce: u64,
    to: Address,
    amount: u128,
    key: &Keypair,
) -> SignedTransaction {
    Transaction {
        chain_id,
        nonce,
        gas_limit: GAS_LIMIT,
        gas_price: 1,
        action: Action::Transfer {
            to,
            amount,
            memo: vec![],
        },
    }
    .sign(key)
}

/// Fund `senders` from the dev keys and wait for every funding receipt.
pub(crate) async fn fund(
    client: &Client,
    chain_id: u64,
    dev_keys: &[Keypair],
    senders: &[Address],
    amount: u128,
) -> Result<()> {
    let mut hashes = Vec::new();
    for (j, dev) in dev_keys.iter().enumerate() {
        let from = Address::from_public_key(dev.suite(), dev.public_key());
        let mut nonce = client.account(&from).await?.pending_nonce;
        let raws: Vec<Vec<u8>> = senders
            .iter()
            .skip(j)
            .step_by(dev_keys.len())
            .map(|to| {
                let tx = transfer(chain_id, nonce, *to, amount, dev);
                nonce += 1;
                encode(&tx)
            })
            .collect();
        if raws.is_empty() {
            continue;
        }
        for item in client.submit_batch(&raws).await? {
            match (item.hash, item.error) {
                (Some(h), _) => hashes.push(h),
                (None, Some(e)) => bail!("funding transfer refused: {}: {}", e.code, e.message),
                (None, None) => bail!("funding transfer: empty answer"),
            }
        }
    }
    for h in hashes {
        let r = client.wait_receipt(&h, Duration::from_secs(60)).await?;
        if !r.is_success() {
            bail!("funding transfer {h} failed: {:?}", r.status);
        }
    }
    Ok(())
}

/// Run the benchmark.
pub async fn transfers(
    node_url: &str,
    chain: Option<&str>,
    args: TransferBenchArgs,
) -> Result<TransferBenchReport> {
    if args.count == 0 || args.concurrency == 0 || args.batch == 0 {
        bail!("--count, --concurrency and --batch must be positive");
    }
    if !args.nodes.is_empty() && args.keys_dir.is_none() {
        bail!("--nodes needs --keys-dir (the chain's dev-keys directory)");
    }
    let (process, url, keys_dir) = match &args.keys_dir {
        Some(dir) => (
            None,
            args.nodes
                .first()
                .cloned()
                .unwrap_or_else(|| node_url.to_string()),
            dir.clone(),
        ),
        None => {
            let (p, url, keys) = spawn_dev(args.suite)?;
            (Some(p), url, keys)
        }
    };
    if chain.is_some() && process.is_some() {
        bail!(
            "--chain names a chain of a running node: pass --keys-dir (and --node or --nodes) too"
        );
    }
    let client = Client::new(&url).chain(chain);
    let clients: Vec<Client> = if args.nodes.is_empty() {
        vec![client.clone()]
    } else {
        args.nodes
            .iter()
            .map(|u| Client::new(u).chain(chain))
            .collect()
    };
    for c in &clients {
        wait_ready(c, Duration::from_secs(60)).await?;
    }
    let status = client.status().await?;
    let suite_id: SuiteId = status.suite.parse()?;
    let chain_id = status.chain_id;

    let mut dev_keys = Vec::new();
    for n in 0..10 {
        let p = keys_dir.join(format!("dev-{n}.key"));
        if p.exists() {
            dev_keys.push(crate::util::load_key(&p, None)?);
        }
    }
    if dev_keys.is_empty() {
        bail!("no dev-N.key files in {}", keys_dir.display());
    }

    // Senders, each sending to the next one (transfers between existing accounts).
    let c = args.concurrency;
    let per_sender = args.count.div_ceil(c);
    let senders: Vec<Keypair> = (0..c).map(|_| Keypair::generate(suite_id)).collect();
    let addrs: Vec<Address> = senders
        .iter()
        .map(|k| Address::from_public_key(suite_id, k.public_key()))
        .collect();
    fund(
        &client,
        chain_id,
        &dev_keys,
        &addrs,
        per_sender as u128 * (GAS_LIMIT as u128 + 1) + 1_000_000,
    )
    .await?;

    // Pre-sign.
    let sign_start = Instant::now();
    let plans: Vec<Vec<CheckedTx>> = (0..c)
        .into_par_iter()
        .map(|i| {
            let n = per_sender.min(args.count.saturating_sub(i * per_sender));
            (0..n as u64)
                .map(|nonce| {
                    CheckedTx::new(
                        transfer(chain_id, nonce, addrs[(i + 1) % c], 1, &senders[i]),
                        suite_id,
                    )
                })
                .collect()
        })
        .collect();
    let total: usize = plans.iter().map(|p| p.len()).sum();
    let sign_tps = total as f64 / sign_start.elapsed().as_secs_f64();
    let timeout = Duration::from_secs(60 + (args.count / 1000) as u64);
    let d = drive(&client, &clients, &plans, args.batch, args.rate, timeout).await?;
    let (commits, failed, nblocks, lagged) = (&d.commits, d.failed, d.blocks, d.lagged);
    let (latencies, duration, rejected_codes) =
        (&d.latencies, d.duration_s, d.rejected_codes.clone());
    let seen = latencies.len();
    let committed = seen.saturating_sub(failed);

    // Spot-check receipts through the API.
    let all: Vec<&CheckedTx> = plans.iter().flatten().collect();
    let mut receipts_checked = 0;
    for i in (0..all.len()).step_by((all.len() / 20).max(1)) {
        if commits[i].is_some()
            && client
                .receipt(&all[i].hash)
                .await
                .is_ok_and(|r| r.is_success())
        {
            receipts_checked += 1;
        }
    }
    drop(process);

    let verify_bound_tps = verify_bound(suite_id, &all)?;
    let tps = committed as f64 / duration;
    let submitted = total - d.rejected;
    Ok(TransferBenchReport {
        bench: "transfers",
        node: url,
        nodes: clients.len(),
        consensus: status.consensus.clone(),
        spawned_node: args.keys_dir.is_none(),
        suite: suite_id.to_string(),
        count: total,
        concurrency: c,
        batch: args.batch,
        rate: args.rate,
        submitted,
        rejected: d.rejected,
        rejected_codes,
        committed,
        failed,
        duration_s: duration,
        tps,
        latency_ms_p50: percentile(latencies, 0.50),
        latency_ms_p99: percentile(latencies, 0.99),
        blocks: nblocks,
        sign_tps,
        verify_bound_tps,
        tps_over_verify_bound: tps / verify_bound_tps,
        receipts_checked,
        stream_lagged: lagged,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

/// The signature-verification ceiling, measured now on this machine: how
/// many of `txs` (at most 20,000) per second the chain's suite checks the
/// way admission does (batched, on all cores). A node that checks every
/// signature cannot admit faster. Fails if any signature does not verify.
pub(crate) fn verify_bound(suite_id: SuiteId, txs: &[&CheckedTx]) -> Result<f64> {
    let signed: Vec<&SignedTransaction> = txs.iter().take(20_000).map(|t| &t.tx).collect();
    let start = Instant::now();
    let ok = verify_signatures(suite(suite_id), &signed);
    let tps = signed.len() as f64 / start.elapsed().as_secs_f64();
    if ok.iter().any(|b| !b) {
        bail!("benchmark signatures failed to verify");
    }
    Ok(tps)
}

/// What [`drive`] measured.
pub(crate) struct Drive {
    /// Commit time of each planned transaction (flattened plan order).
    pub commits: Vec<Option<Instant>>,
    /// Committed with a failed receipt.
    pub failed: usize,
    /// Blocks that carried planned transactions.
    pub blocks: usize,
    /// Whether the block stream skipped blocks.
    pub lagged: bool,
    /// Submission-to-commit latencies, sorted, milliseconds.
    pub latencies: Vec<f64>,
    /// First submission to last commit, seconds.
    pub duration_s: f64,
    /// Refused at submission.
    pub rejected: usize,
    /// Refusal codes and counts.
    pub rejected_codes: HashMap<String, usize>,
}

/// Submit pre-signed `plans` (one per client task, each in nonce order) in
/// batches, spread over `clients`, and time each transaction from its
/// batch's request to the block event that commits it.
pub(crate) async fn drive(
    client: &Client,
    clients: &[Client],
    plans: &[Vec<CheckedTx>],
    batch: usize,
    rate: Option<u64>,
    timeout: Duration,
) -> Result<Drive> {
    let c = plans.len().max(1);
    let total: usize = plans.iter().map(|p| p.len()).sum();
    let index: Arc<HashMap<H256, usize>> = Arc::new(
        plans
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, t)| (t.hash, i))
            .collect(),
    );
    // Follow blocks before the first submission.
    let mut blocks = client.blocks().await?;
    let rejected = Arc::new(AtomicUsize::new(0));
    let submit_done = Arc::new(AtomicBool::new(false));
    let collector = {
        let index = index.clone();
        let rejected = rejected.clone();
        let submit_done = submit_done.clone();
        tokio::spawn(async move {
            let mut commits: Vec<Option<Instant>> = vec![None; total];
            let (mut seen, mut failed, mut nblocks, mut lagged) = (0usize, 0usize, 0usize, false);
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let done = submit_done.load(Ordering::SeqCst);
                if done && seen + rejected.load(Ordering::SeqCst) >= total {
                    break;
                }
                let ev = match tokio::time::timeout_at(deadline, blocks.next()).await {
                    Err(_) | Ok(None) => break,
                    Ok(Some(Err(tongtian_client::ClientError::Lagged(_)))) => {
                        lagged = true;
                        continue;
                    }
                    Ok(Some(Err(_))) => break,
                    Ok(Some(Ok(ev))) => ev,
                };
                let now = Instant::now();
                let mut mine = 0;
                for h in &ev.txs {
                    if let Some(&i) = index.get(h) {
                        if commits[i].is_none() {
                            commits[i] = Some(now);
                            seen += 1;
                            mine += 1;
                        }
                    }
                }
                failed += ev.failed.iter().filter(|h| index.contains_key(h)).count();
                if mine > 0 {
                    nblocks += 1;
                }
            }
            (commits, failed, nblocks, lagged)
        })
    };

    // Encoded before the clock starts, like the signing: preparing the load
    // is not the node's work.
    let encoded: Vec<Vec<Vec<u8>>> = plans
        .iter()
        .map(|plan| plan.iter().map(|t| encode(&t.tx)).collect())
        .collect();
    let start = Instant::now();
    let mut tasks = Vec::new();
    let mut offset = 0;
    for (i, (plan, raws)) in plans.iter().zip(encoded).enumerate() {
        let client = clients[i % clients.len()].clone();
        let rejected = rejected.clone();
        let base = offset;
        offset += plan.len();
        // Offered load per client, when --rate caps the total.
        let per_client = rate.map(|r| r as f64 / c as f64);
        tasks.push(tokio::spawn(async move {
            let mut submits: Vec<(usize, Instant)> = Vec::with_capacity(raws.len());
            let mut codes: HashMap<String, usize> = HashMap::new();
            let mut next = 0;
            while next < raws.len() {
                let end = (next + batch).min(raws.len());
                if let Some(rate) = per_client {
                    // Do not run ahead of the offered rate: a batch leaves
                    // when the rate has paid for all of it, so the first
                    // batches do not all leave at once at the start.
                    let due = start + Duration::from_secs_f64(end as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let t = Instant::now();
                let results = match client.submit_batch(&raws[next..end]).await {
                    Ok(r) => r,
                    Err(e) => {
                        *codes
                            .entry(e.code().unwrap_or("transport").to_string())
                            .or_default() += end - next;
                        rejected.fetch_add(end - next, Ordering::SeqCst);
                        next = end;
                        continue;
                    }
                };
                let mut retry_from = None;
                for (k, item) in results.iter().enumerate() {
                    match &item.error {
                        None => submits.push((base + next + k, t)),
                        Some(e) if e.code == "mempool_full" => {
                            retry_from = Some(next + k);
                            break;
                        }
                        Some(e) => {
                            *codes.entry(e.code.clone()).or_default() += 1;
                            rejected.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                match retry_from {
                    Some(k) => {
                        // Back-pressure: let the node drain, then go on from the refused one.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        next = k;
                    }
                    None => next = end,
                }
            }
            (submits, codes)
        }));
    }
    let mut submits = vec![None; total];
    let mut rejected_codes: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        let (s, codes) = t.await?;
        for (i, at) in s {
            submits[i] = Some(at);
        }
        for (k, v) in codes {
            *rejected_codes.entry(k).or_default() += v;
        }
    }
    submit_done.store(true, Ordering::SeqCst);
    let (commits, failed, nblocks, lagged) = collector.await?;

    let mut latencies: Vec<f64> = Vec::new();
    let mut last_commit = start;
    for (s, c) in submits.iter().zip(&commits) {
        if let (Some(s), Some(c)) = (s, c) {
            latencies.push(c.duration_since(*s).as_secs_f64() * 1000.0);
            last_commit = last_commit.max(*c);
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    Ok(Drive {
        commits,
        failed,
        blocks: nblocks,
        lagged,
        latencies,
        duration_s: last_commit.duration_since(start).as_secs_f64().max(1e-9),
        rejected: rejected.load(Ordering::SeqCst),
        rejected_codes,
    })
}
