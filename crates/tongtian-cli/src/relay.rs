//! `tongtian relay start`: a standalone relayer over the nodes' APIs.
//!
//! It finds the sub-chains linked to the main chain in the main chain's
//! registry, a node hosting each, and runs the relayer's steps
//! ([`tongtian_xchain::relay`]) between the main chain and each of them,
//! signing with the `--key` of each chain's suite (a validator's key
//! relays for free; any other pays the usual fees). It keeps nothing
//! that correctness depends on: restarted, it reads where every packet
//! stands from the chains.

use crate::util::{usage, Ctx};
use anyhow::Result;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tongtian_client::Client;
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_types::proof::StateProof;
use tongtian_types::{Action, Address, Transaction};
use tongtian_xchain::client::SignedHeader;
use tongtian_xchain::relay::{self, Endpoint, Path, RelayError, StepReport};

/// One chain through a node's API.
struct HttpEndpoint {
    client: Client,
    name: String,
    chain_id: u64,
    suite: SuiteId,
    key: Keypair,
    wait: Duration,
}

impl HttpEndpoint {
    fn err(&self, e: impl std::fmt::Display) -> RelayError {
        RelayError::Chain {
            chain: self.name.clone(),
            message: e.to_string(),
        }
    }
}

#[async_trait]
impl Endpoint for HttpEndpoint {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn query(&self, module: &str, path: &str) -> Result<serde_json::Value, RelayError> {
        self.client
            .module_query(module, path)
            .await
            .map_err(|e| self.err(e))
    }

    async fn latest(&self) -> Result<u64, RelayError> {
        Ok(self
            .client
            .status()
            .await
            .map_err(|e| self.err(e))?
            .certified_height)
    }

    async fn signed_header(&self, height: u64) -> Result<SignedHeader, RelayError> {
        let v = self
            .client
            .state_proof(
                &tongtian_execution::membership::validators_key(),
                Some(height),
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(SignedHeader {
            header: v.header,
            certificate: v.certificate,
        })
    }

    async fn prove(&self, key: &[u8], height: u64) -> Result<StateProof, RelayError> {
        Ok(self
            .client
            .state_proof(key, Some(height))
            .await
            .map_err(|e| self.err(e))?
            .proof)
    }

    async fn submit(&self, actions: Vec<Action>) -> Result<(), RelayError> {
        let me = Address::from_public_key(self.suite, self.key.public_key());
        let mut nonce = self
            .client
            .account(&me)
            .await
            .map_err(|e| self.err(e))?
            .pending_nonce;
        let raws: Vec<Vec<u8>> = actions
            .into_iter()
            .map(|action| {
                let tx = Transaction {
                    chain_id: self.chain_id,
                    nonce,
                    gas_limit: 10_000_000,
                    gas_price: 1,
                    action,
                }
                .sign(&self.key);
                nonce += 1;
                tongtian_types::codec::encode(&tx)
            })
            .collect();
        let items = self
            .client
            .submit_batch(&raws)
            .await
            .map_err(|e| self.err(e))?;
        let mut hashes = Vec::new();
        for item in items {
            match (item.hash, item.error) {
                (Some(h), _) => hashes.push(h),
                (None, Some(e)) => {
                    return Err(self.err(format!("refused: {}: {}", e.code, e.message)))
                }
                (None, None) => return Err(self.err("empty answer")),
            }
        }
        let deadline = Instant::now() + self.wait;
        for h in hashes {
            loop {
                match self.client.receipt(&h).await {
                    Ok(_) => break,
                    Err(e) if e.code() == Some("not_found") && Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    Err(e) => return Err(self.err(e)),
                }
            }
        }
        Ok(())
    }
}

/// What `relay start` was given.
pub struct RelayArgs {
    /// Node URLs; the first serves the main chain.
    pub nodes: Vec<String>,
    /// Keys, one per suite.
    pub keys: Vec<Keypair>,
    /// Only these sub-chains (default: every linked one).
    pub chains: Option<Vec<String>>,
    /// One pass, then exit (for scripts and tests).
    pub once: bool,
}

/// A pair of chains to relay between.
struct Link {
    name: String,
    a: HttpEndpoint,
    b: HttpEndpoint,
    paths: Vec<Path>,
    failures: u32,
    next_try: Instant,
}

async fn endpoint(client: Client, keys: &[Keypair], wait: Duration) -> Result<HttpEndpoint> {
    let st = client.status().await?;
    let suite: SuiteId = st.suite.parse().map_err(|_| {
        usage(
            "bad_suite",
            format!("chain {} has suite {}", st.chain_name, st.suite),
        )
    })?;
    let key = keys
        .iter()
        .find(|k| k.suite() == suite)
        .cloned()
        .ok_or_else(|| {
            usage(
                "no_key",
                format!(
                    "no --key of suite {suite} to sign on chain {}",
                    st.chain_name
                ),
            )
        })?;
    Ok(HttpEndpoint {
        client,
        name: st.chain_name,
        chain_id: st.chain_id,
        suite,
        key,
        wait,
    })
}

/// The chain pairs the main chain's registry names (each sub-chain with
/// the main chain, and channels opened by vote), each chain served by a
/// node that hosts it.
async fn discover(ctx: &Ctx, args: &RelayArgs) -> Result<Vec<Link>> {
    let main_url = args
        .nodes
        .first()
        .ok_or_else(|| usage("bad_args", "relay needs at least one --node"))?;
    let main_client = Client::with_timeout(main_url, Duration::from_secs(30));
    let entries: Vec<tongtian_modules::registry::ChainEntry> =
        serde_json::from_value(main_client.module_query("registry", "chains").await?)
            .map_err(|e| usage("bad_answer", format!("registry chains: {e}")))?;
    // Older main chains answer no `links`: no channels opened by vote.
    let links: Vec<tongtian_modules::registry::ChannelLink> =
        match main_client.module_query("registry", "links").await {
            Ok(v) => serde_json::from_value(v)
                .map_err(|e| usage("bad_answer", format!("registry links: {e}")))?,
            Err(_) => Vec::new(),
        };
    let mut hosts: Vec<(Client, Vec<serde_json::Value>)> = Vec::new();
    for url in &args.nodes {
        let c = Client::with_timeout(url, Duration::from_secs(30));
        let list = c.chains().await.unwrap_or_default();
        hosts.push((c, list));
    }
    let host_of = |name: &str| -> Option<Client> {
        if name == "main" {
            return Some(main_client.chain(None));
        }
        hosts
            .iter()
            .find(|(_, list)| {
                list.iter()
                    .any(|c| c["name"] == name && c["hosted"] == true)
            })
            .map(|(c, _)| c.chain(Some(name)))
    };
    let mut out = Vec::new();
    for pair in tongtian_modules::registry::relay_pairs(&entries, &links) {
        let name = pair.name();
        let served = |c: &str| {
            c == "main"
                || args
                    .chains
                    .as_ref()
                    .is_none_or(|l| l.iter().any(|x| x == c))
        };
        if !served(&pair.a) || !served(&pair.b) {
            continue;
        }
        let (Some(a), Some(b)) = (host_of(&pair.a), host_of(&pair.b)) else {
            eprintln!("relay: no --node hosts both of {name}; skipped");
            continue;
        };
        out.push(Link {
            name,
            a: endpoint(a, &args.keys, ctx.wait).await?,
            b: endpoint(b, &args.keys, ctx.wait).await?,
            paths: pair.paths,
            failures: 0,
            next_try: Instant::now(),
        });
    }
    Ok(out)
}

fn report_line(ctx: &Ctx, chain: &str, r: &StepReport, total: &BTreeMap<String, StepReport>) {
    let t = &total[chain];
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({
                "chain": chain,
                "received": r.received,
                "acknowledged": r.acknowledged,
                "timed_out": r.timed_out,
                "updates": r.updates,
                "pending": r.pending,
                "total_received": t.received,
                "total_acknowledged": t.acknowledged,
                "total_timed_out": t.timed_out,
            })
        );
    } else {
        eprintln!(
            "relay {chain}: {} received, {} acknowledged, {} timed out ({} pending)",
            r.received, r.acknowledged, r.timed_out, r.pending
        );
    }
}

/// Run the relayer until SIGINT/SIGTERM (or one pass with `once`).
pub async fn run(ctx: &Ctx, args: RelayArgs) -> Result<()> {
    let mut links = discover(ctx, &args).await?;
    if links.is_empty() && !args.once {
        eprintln!("relay: no linked sub-chain yet; looking again every 5 s");
    }
    let mut totals: BTreeMap<String, StepReport> = BTreeMap::new();
    let mut last_discovery = Instant::now();
    let stop = crate::util::wait_for_signal();
    tokio::pin!(stop);
    loop {
        for l in links.iter_mut() {
            if Instant::now() < l.next_try {
                continue;
            }
            let name = l.name.clone();
            match relay::step_all(&l.a, &l.b, &l.paths).await {
                Ok(r) => {
                    l.failures = 0;
                    totals.entry(name.clone()).or_default().add(&r);
                    if r.received + r.acknowledged + r.timed_out > 0 {
                        report_line(ctx, &name, &r, &totals);
                    }
                }
                Err(e) => {
                    l.failures += 1;
                    let backoff = Duration::from_millis(250 << l.failures.min(5));
                    l.next_try = Instant::now() + backoff;
                    if ctx.json {
                        println!(
                            "{}",
                            serde_json::json!({"chain": name, "error": e.to_string(), "retry_in_ms": backoff.as_millis() as u64})
                        );
                    } else {
                        eprintln!("relay {name}: {e}; retrying in {backoff:?}");
                    }
                }
            }
        }
        if args.once {
            return Ok(());
        }
        if last_discovery.elapsed() > Duration::from_secs(5) {
            if let Ok(found) = discover(ctx, &args).await {
                for f in found {
                    // A channel opened by vote may join a pair already served.
                    match links.iter_mut().find(|l| l.name == f.name) {
                        Some(l) => l.paths = f.paths,
                        None => links.push(f),
                    }
                }
            }
            last_discovery = Instant::now();
        }
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}
