//! `tongtian bench chains`: transfers into K chains of the same nodes at
//! once, to measure what hosting several chains costs each of them.
//!
//! Chain 1 is the nodes' main chain; chains 2..K are sub-chains
//! `bench-1` .. `bench-{K-1}` (same engine as the main chain, standard
//! suite, every organisation a member, the testnet's dev accounts funded).
//! Missing ones are created through governance first, with the admin keys
//! of the testnet directory (`DIR/orgs/*/admin.key`), and the benchmark
//! waits until every node serves them. Then, for every chain at once, it
//! funds fresh senders, pre-signs `--count` transfers and drives them
//! through all the nodes (the same method as `bench transfers`: latency
//! from a batch's request to the block event that commits it; a chain's
//! `tps` is its committed transfers over its first submission to its last
//! commit). `total_tps` is all chains' committed transfers over the
//! whole run's span.

use crate::bench::{drive, fund, percentile, transfer, wait_ready};
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tongtian_client::Client;
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_modules::gov::{Choice, GovMsg, ProposalKind};
use tongtian_modules::registry::ChainRequest;
use tongtian_types::{Address, CheckedTx, GenesisAccount};

/// Arguments of `tongtian bench chains`.
#[derive(Debug, clap::Args)]
pub struct ChainsBenchArgs {
    /// The nodes (comma-separated API URLs), all running the same chains.
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<String>,
    /// How many chains to load at once (the main chain and K-1 sub-chains).
    #[arg(long, default_value_t = 2)]
    pub chains: usize,
    /// The testnet directory (`testnet init --dir`): its `dev-keys/` fund
    /// the senders and its `orgs/*/admin.key` vote missing sub-chains in.
    #[arg(long)]
    pub dir: PathBuf,
    /// Transfers per chain.
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Sender accounts (client tasks) per chain.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Transfers per HTTP request.
    #[arg(long, default_value_t = 200)]
    pub batch: usize,
}

/// One chain's figures.
#[derive(Debug, Serialize)]
pub struct ChainFigures {
    /// The chain.
    pub chain: String,
    /// Its chain id.
    pub chain_id: u64,
    /// Planned transfers.
    pub count: usize,
    /// Committed successfully.
    pub committed: usize,
    /// Refused at submission.
    pub rejected: usize,
    /// Committed transfers per second.
    pub tps: f64,
    /// Median latency, ms.
    pub latency_ms_p50: f64,
    /// 99th percentile latency, ms.
    pub latency_ms_p99: f64,
    /// Its first submission to its last commit, seconds.
    pub duration_s: f64,
}

/// What the benchmark prints.
#[derive(Debug, Serialize)]
pub struct ChainsBenchReport {
    /// Always `chains`.
    pub bench: &'static str,
    /// Number of chains loaded.
    pub chains: usize,
    /// Number of nodes.
    pub nodes: usize,
    /// Per chain.
    pub per_chain: Vec<ChainFigures>,
    /// All committed transfers over the whole run.
    pub total_tps: f64,
    /// Alias of `total_tps` (the field other benchmarks print).
    pub tps: f64,
    /// Median over every chain's transfers, ms.
    pub latency_ms_p50: f64,
    /// 99th percentile over every chain's transfers, ms.
    pub latency_ms_p99: f64,
    /// Seconds from a create-chain proposal to the new chain answering on
    /// every node (for the chains this run created).
    pub creation_s: Vec<f64>,
    /// Cores available.
    pub cores: usize,
}

/// The report in a few lines.
pub fn summary(r: &ChainsBenchReport) -> String {
    let mut t = format!(
        "{} chains on {} nodes: total {:.0} tps, p50 {:.0} ms, p99 {:.0} ms",
        r.chains, r.nodes, r.total_tps, r.latency_ms_p50, r.latency_ms_p99
    );
    for c in &r.per_chain {
        t.push_str(&format!(
            "\n  {:<16} {:>7.0} tps  p50 {:>5.0} ms  p99 {:>5.0} ms  ({} of {} committed)",
            c.chain, c.tps, c.latency_ms_p50, c.latency_ms_p99, c.committed, c.count
        ));
    }
    t
}

fn load_dir_keys(dir: &std::path::Path, name: &str) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(name))
        .filter(|p| p.exists())
        .collect();
    out.sort();
    Ok(out)
}

/// Create the missing sub-chains `bench-1..` by proposal and votes.
async fn ensure_chains(
    client: &Client,
    clients: &[Client],
    args: &ChainsBenchArgs,
    dev_addrs: &[Address],
) -> Result<(Vec<String>, Vec<f64>)> {
    let status = client.status().await?;
    let mut names = vec![status.chain_name.clone()];
    let mut created = Vec::new();
    let existing: Vec<String> = client
        .chains()
        .await?
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    let admins = load_dir_keys(&args.dir.join("orgs"), "admin.key")?;
    if admins.is_empty() && args.chains > 1 {
        bail!(
            "no admin keys in {}/orgs: is --dir a testnet directory?",
            args.dir.display()
        );
    }
    let orgs: Vec<String> = client
        .module_query("org", "orgs")
        .await?
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["id"].as_str().map(str::to_string))
        .collect();
    for k in 1..args.chains {
        let name = format!("bench-{k}");
        names.push(name.clone());
        if existing.contains(&name) {
            continue;
        }
        let start = Instant::now();
        let request = ChainRequest {
            name: name.clone(),
            engine: status.consensus.clone(),
            suite: SuiteId::Standard,
            orgs: orgs.clone(),
            vms: tongtian_types::VmKind::ALL.to_vec(),
            fund: dev_addrs
                .iter()
                .map(|a| GenesisAccount {
                    address: *a,
                    balance: tongtian_node::dev::DEV_BALANCE,
                })
                .collect(),
            chain_id: None,
            restricted: false,
        };
        let mut id = None;
        for (i, admin) in admins.iter().enumerate() {
            let key = crate::util::load_key(admin, None)?;
            let msg = match id {
                None => GovMsg::Propose {
                    kind: ProposalKind::CreateChain {
                        chain: request.clone(),
                    },
                },
                Some(p) => GovMsg::Vote {
                    proposal: p,
                    choice: Choice::Yes,
                },
            };
            let tx = crate::util::sign_with(
                client,
                &key,
                &crate::SignerArgs {
                    key: admin.clone(),
                    password: None,
                    gas_limit: 1_000_000,
                    gas_price: 1,
                },
                msg.action(),
                None,
            )
            .await?;
            let h = client.submit(&tx).await?;
            let r = client.wait_receipt(&h, Duration::from_secs(60)).await?;
            if !r.is_success() {
                bail!("governance for {name} refused: {:?}", r.status);
            }
            if i == 0 {
                id = r
                    .output
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_le_bytes);
            }
            let p = client
                .module_query("gov", &format!("proposals/{}", id.unwrap_or(0)))
                .await?;
            if p["status"] != "open" {
                break;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        for c in clients {
            while c.chain(Some(&name)).status().await.is_err() {
                if Instant::now() > deadline {
                    bail!("{name} did not start on {}", c.base());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        created.push(start.elapsed().as_secs_f64());
    }
    Ok((names, created))
}

/// Run the benchmark.
pub async fn run(args: ChainsBenchArgs) -> Result<ChainsBenchReport> {
    if args.chains == 0 || args.count == 0 || args.concurrency == 0 || args.batch == 0 {
        bail!("--chains, --count, --concurrency and --batch must be positive");
    }
    let clients: Vec<Client> = args.nodes.iter().map(|u| Client::new(u)).collect();
    for c in &clients {
        wait_ready(c, Duration::from_secs(60)).await?;
    }
    let client = clients[0].clone();
    let dev_paths: Vec<PathBuf> = (0..10)
        .map(|n| args.dir.join("dev-keys").join(format!("dev-{n}.key")))
        .filter(|p| p.exists())
        .collect();
    if dev_paths.is_empty() {
        bail!("no dev-keys/dev-N.key in {}", args.dir.display());
    }
    let dev_keys: Vec<Keypair> = dev_paths
        .iter()
        .map(|p| crate::util::load_key(p, None))
        .collect::<Result<_>>()?;
    let dev_addrs: Vec<Address> = dev_keys
        .iter()
        .map(|k| Address::from_public_key(k.suite(), k.public_key()))
        .collect();
    let (names, creation_s) = ensure_chains(&client, &clients, &args, &dev_addrs).await?;

    // Per chain: fund senders, pre-sign.
    let mut plans_by_chain = Vec::new();
    for name in &names {
        let c = client.chain(Some(name));
        let st = c.status().await?;
        let suite_id: SuiteId = st.suite.parse()?;
        let senders: Vec<Keypair> = (0..args.concurrency)
            .map(|_| Keypair::generate(suite_id))
            .collect();
        let addrs: Vec<Address> = senders
            .iter()
            .map(|k| Address::from_public_key(suite_id, k.public_key()))
            .collect();
        let per = args.count.div_ceil(args.concurrency);
        let chain_keys: Vec<Keypair> = dev_keys
            .iter()
            .filter(|k| k.suite() == suite_id)
            .cloned()
            .collect();
        fund(
            &c,
            st.chain_id,
            &chain_keys,
            &addrs,
            per as u128 * 40_000 + 1_000_000,
        )
        .await?;
        let n = args.concurrency;
        let plans: Vec<Vec<CheckedTx>> = (0..n)
            .into_par_iter()
            .map(|i| {
                let m = per.min(args.count.saturating_sub(i * per));
                (0..m as u64)
                    .map(|nonce| {
                        CheckedTx::new(
                            transfer(st.chain_id, nonce, addrs[(i + 1) % n], 1, &senders[i]),
                            suite_id,
                        )
                    })
                    .collect()
            })
            .collect();
        plans_by_chain.push((name.clone(), st.chain_id, plans));
    }

    // Drive every chain at once.
    let timeout = Duration::from_secs(120 + (args.count / 500) as u64);
    let start = Instant::now();
    let runs = futures_util::future::join_all(plans_by_chain.iter().map(|(name, _, plans)| {
        let main = client.chain(Some(name));
        let per_node: Vec<Client> = clients.iter().map(|c| c.chain(Some(name))).collect();
        async move { drive(&main, &per_node, plans, args.batch, None, timeout).await }
    }))
    .await;
    let span = start.elapsed().as_secs_f64();
    let mut per_chain = Vec::new();
    let mut all_lat = Vec::new();
    let mut total_committed = 0;
    for ((name, chain_id, plans), run) in plans_by_chain.iter().zip(runs) {
        let d = run.with_context(|| format!("driving {name}"))?;
        let count: usize = plans.iter().map(|p| p.len()).sum();
        let committed = d.latencies.len().saturating_sub(d.failed);
        total_committed += committed;
        all_lat.extend(d.latencies.iter().copied());
        per_chain.push(ChainFigures {
            chain: name.clone(),
            chain_id: *chain_id,
            count,
            committed,
            rejected: d.rejected,
            tps: committed as f64 / d.duration_s,
            latency_ms_p50: percentile(&d.latencies, 0.50),
            latency_ms_p99: percentile(&d.latencies, 0.99),
            duration_s: d.duration_s,
        });
    }
    all_lat.sort_by(|a, b| a.total_cmp(b));
    let total_tps = total_committed as f64 / span;
    Ok(ChainsBenchReport {
        bench: "chains",
        chains: names.len(),
        nodes: clients.len(),
        per_chain,
        total_tps,
        tps: total_tps,
        latency_ms_p50: percentile(&all_lat, 0.50),
        latency_ms_p99: percentile(&all_lat, 0.99),
        creation_s,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}
