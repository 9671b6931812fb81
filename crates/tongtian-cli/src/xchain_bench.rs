//! `tongtian bench xchain`: token transfers from the main chain to a
//! sub-chain of the same node, relayed by the node itself, measured from
//! each packet's submission to its acknowledgement on the source.
//!
//! It starts a dev node (which relays for its sub-chains), votes a solo
//! sub-chain `xbench` into existence, sends `--packets` transfers from the
//! dev accounts, and watches the main chain's pending packets until every
//! one is acknowledged. It then reads the relayer's transactions back from
//! the sub-chain to report what a `recv` costs on chain (gas, proof bytes)
//! and times a light-client header check (certificate and validator-set
//! proof) locally.

use crate::bench::{percentile, spawn_dev, wait_ready};
use crate::util::load_key;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tongtian_client::Client;
use tongtian_crypto::SuiteId;
use tongtian_modules::gov::{GovMsg, ProposalKind};
use tongtian_modules::registry::ChainRequest;
use tongtian_types::{Action, Address, Transaction, H256};
use tongtian_xchain::channel::ChannelMsg;
use tongtian_xchain::client::ClientMsg;
use tongtian_xchain::transfer::TransferMsg;

/// `tongtian bench xchain` options.
#[derive(Args, Debug)]
pub struct XchainBenchArgs {
    /// Transfers to relay.
    #[arg(long, default_value_t = 1_000)]
    pub packets: usize,
    /// Transfers per HTTP request.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
}

/// What the benchmark prints.
#[derive(Debug, Serialize)]
pub struct XchainBenchReport {
    /// Always `xchain`.
    pub bench: &'static str,
    /// Transfers sent.
    pub packets: usize,
    /// Acknowledged on the source.
    pub acknowledged: usize,
    /// First submission to last acknowledgement, seconds.
    pub duration_s: f64,
    /// Acknowledged packets per second.
    pub packets_per_s: f64,
    /// Median submission-to-acknowledgement latency.
    pub latency_ms_p50: f64,
    /// 99th percentile of it.
    pub latency_ms_p99: f64,
    /// The slower chain's block interval (ms), for the 3-interval target.
    pub block_interval_ms: u64,
    /// Mean gas of a relayed `recv` on the sub-chain.
    pub recv_gas: f64,
    /// Mean bytes of a `recv`'s commitment proof.
    pub recv_proof_bytes: f64,
    /// `recv` transactions sampled for the two figures above.
    pub recv_sampled: usize,
    /// Mean time to check one client update's certificate and validator
    /// proof locally, microseconds.
    pub client_update_check_us: f64,
    /// Mean gas of a relayed client update on the sub-chain (its on-chain
    /// cost: the certificate's signatures, the validator-set proof, the
    /// consensus state written).
    pub client_update_gas: f64,
    /// Client updates among the sampled blocks' transactions (the relayer
    /// sends one only with packets to prove).
    pub client_updates_sampled: usize,
}

/// One-line summary.
pub fn summary(r: &XchainBenchReport) -> String {
    format!(
        "{} packets acknowledged in {:.2} s: {:.0} packets/s, send-to-ack p50 {:.0} ms, p99 {:.0} ms (blocks every {} ms); recv {:.0} gas, {:.0} proof bytes; client update check {:.0} us, {:.0} gas on chain",
        r.acknowledged,
        r.duration_s,
        r.packets_per_s,
        r.latency_ms_p50,
        r.latency_ms_p99,
        r.block_interval_ms,
        r.recv_gas,
        r.recv_proof_bytes,
        r.client_update_check_us,
        r.client_update_gas
    )
}

async fn wait_receipt(client: &Client, hash: &H256) -> Result<tongtian_types::Receipt> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.receipt(hash).await {
            Ok(r) => return Ok(r),
            Err(e) if e.code() == Some("not_found") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Run the benchmark.
pub async fn run(args: XchainBenchArgs) -> Result<XchainBenchReport> {
    if args.packets == 0 || args.batch == 0 {
        bail!("--packets and --batch must be positive");
    }
    let (_process, url, keys_dir) = spawn_dev(SuiteId::Standard)?;
    let main = Client::new(&url);
    wait_ready(&main, Duration::from_secs(30)).await?;
    let data_dir = keys_dir
        .parent()
        .context("the dev node's data directory")?
        .to_path_buf();
    let admin = load_key(&data_dir.join("orgs/org-0/admin.key"), None)?;
    let status = main.status().await?;
    // The sub-chain, by the dev organisation's vote.
    let propose = GovMsg::Propose {
        kind: ProposalKind::CreateChain {
            chain: ChainRequest {
                name: "xbench".into(),
                engine: "solo".into(),
                suite: SuiteId::Standard,
                orgs: vec!["org-0".into()],
                vms: vec![tongtian_types::VmKind::Wasm],
                fund: vec![],
                chain_id: None,
                restricted: false,
            },
        },
    };
    let admin_addr = Address::from_public_key(SuiteId::Standard, admin.public_key());
    let nonce = main.account(&admin_addr).await?.pending_nonce;
    let tx = Transaction {
        chain_id: status.chain_id,
        nonce,
        gas_limit: 10_000_000,
        gas_price: 1,
        action: propose.action(),
    }
    .sign(&admin);
    let h = main.submit(&tx).await?;
    let r = wait_receipt(&main, &h).await?;
    if !r.is_success() {
        bail!("creating the sub-chain failed: {:?}", r.status);
    }
    let sub = main.chain(Some("xbench"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while sub.status().await.is_err() {
        if Instant::now() > deadline {
            bail!("the sub-chain did not start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let channel = main.module_query("channel", "channels").await?[0]["id"]
        .as_str()
        .context("the main chain's channel")?
        .to_string();
    let sub_status = sub.status().await?;

    // Senders: the dev accounts, each with its own nonce sequence.
    let mut keys = Vec::new();
    for i in 0.. {
        let p = keys_dir.join(format!("dev-{i}.key"));
        if !p.exists() {
            break;
        }
        keys.push(load_key(&p, None)?);
    }
    let receiver = Address([0x5b; 20]);
    let mut nonces: Vec<u64> = Vec::new();
    for k in &keys {
        let a = Address::from_public_key(SuiteId::Standard, k.public_key());
        nonces.push(main.account(&a).await?.pending_nonce);
    }
    let mut raws = Vec::with_capacity(args.packets);
    for i in 0..args.packets {
        let s = i % keys.len();
        let tx = Transaction {
            chain_id: status.chain_id,
            nonce: nonces[s],
            gas_limit: 1_000_000,
            gas_price: 1,
            action: TransferMsg::Transfer {
                channel: channel.clone(),
                receiver,
                amount: 1,
                denom: "native".into(),
                timeout_height: sub_status.height + 100_000,
                timeout_ms: 0,
                forward: None,
            }
            .action(),
        }
        .sign(&keys[s]);
        nonces[s] += 1;
        raws.push(tongtian_types::codec::encode(&tx));
    }
    let start = Instant::now();
    let mut sent_at: Vec<(H256, Instant)> = Vec::with_capacity(args.packets);
    for chunk in raws.chunks(args.batch) {
        let t = Instant::now();
        for item in main.submit_batch(chunk).await? {
            match (item.hash, item.error) {
                (Some(h), _) => sent_at.push((h, t)),
                (None, Some(e)) => bail!("a transfer was refused: {}: {}", e.code, e.message),
                _ => bail!("empty answer"),
            }
        }
    }
    // Watch the pending packets until all are acknowledged; note when each
    // sequence closed.
    let mut closed_at: HashMap<u64, Instant> = HashMap::new();
    let mut seen_open: std::collections::HashSet<u64> = Default::default();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let pending = main
            .module_query("channel", &format!("packets/{channel}"))
            .await?;
        let now = Instant::now();
        let open: std::collections::HashSet<u64> = pending
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["sequence"].as_u64())
            .collect();
        for s in &seen_open {
            if !open.contains(s) {
                closed_at.entry(*s).or_insert(now);
            }
        }
        seen_open.extend(open.iter().copied());
        let next_send: u64 = main
            .module_query("channel", &format!("channels/{channel}"))
            .await?["next_send"]
            .as_u64()
            .unwrap_or(1);
        // Sequences sent and closed between two polls were never seen open.
        for s in 1..next_send {
            if !open.contains(&s) && !seen_open.contains(&s) {
                closed_at.entry(s).or_insert(now);
            }
        }
        if closed_at.len() >= args.packets {
            break;
        }
        if now > deadline {
            bail!(
                "only {} of {} packets acknowledged in 600 s",
                closed_at.len(),
                args.packets
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let end = closed_at.values().max().copied().unwrap_or(start);
    let duration = end.duration_since(start).as_secs_f64();
    // Each transaction's sequence, from its receipt.
    let mut lat = Vec::new();
    for (h, t) in &sent_at {
        let r = wait_receipt(&main, h).await?;
        let seq = r
            .output
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes);
        if let Some(c) = seq.and_then(|s| closed_at.get(&s)) {
            lat.push(c.duration_since(*t).as_secs_f64() * 1000.0);
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));

    // What a recv costs, from the relayer's transactions on the sub-chain.
    let (mut gas, mut proof_bytes, mut sampled) = (0u64, 0usize, 0usize);
    let mut update_sample = None;
    let (mut update_gas, mut updates) = (0u64, 0usize);
    let top = sub.status().await?.height;
    'blocks: for height in 1..=top {
        let block = sub.block(&height.to_string()).await?;
        for h in &block.tx_hashes {
            let tx = sub.tx(h).await?;
            let Action::Module { module, msg } = &tx.tx.tx.action else {
                continue;
            };
            if module == "channel" {
                if let Ok(ChannelMsg::Recv { proven, .. }) = borsh::from_slice::<ChannelMsg>(msg) {
                    let r = sub.receipt(h).await?;
                    gas += r.gas_used;
                    proof_bytes += borsh::to_vec(&proven.proof).map(|b| b.len()).unwrap_or(0);
                    sampled += 1;
                }
            } else if module == "client" {
                if let Ok(ClientMsg::Update {
                    signed, validators, ..
                }) = borsh::from_slice::<ClientMsg>(msg)
                {
                    let r = sub.receipt(h).await?;
                    if r.is_success() {
                        update_gas += r.gas_used;
                        updates += 1;
                    }
                    if update_sample.is_none() {
                        update_sample = Some((signed, validators));
                    }
                }
            }
            if sampled >= 200 && update_sample.is_some() {
                break 'blocks;
            }
        }
    }
    // A client update's checks, timed locally.
    let client_update_check_us = match &update_sample {
        Some((signed, proof)) => {
            let s = tongtian_crypto::suite(SuiteId::Standard);
            let set = main.validators().await?;
            let keys: Vec<Vec<u8>> = set
                .validators
                .iter()
                .map(|v| v.public_key.clone())
                .collect();
            let n = 200;
            let t = Instant::now();
            for _ in 0..n {
                let hash = signed.header.hash(SuiteId::Standard);
                let ok = signed
                    .certificate
                    .verify(s, &keys, keys.len() * 2 / 3 + 1, &hash)
                    && proof.verify(s, &signed.header.state_root).is_ok();
                if !ok {
                    bail!("a relayed client update does not check");
                }
            }
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        }
        None => 0.0,
    };
    Ok(XchainBenchReport {
        bench: "xchain",
        packets: args.packets,
        acknowledged: closed_at.len(),
        duration_s: duration,
        packets_per_s: if duration > 0.0 {
            closed_at.len() as f64 / duration
        } else {
            0.0
        },
        latency_ms_p50: percentile(&lat, 0.5),
        latency_ms_p99: percentile(&lat, 0.99),
        // The dev main chain and a solo sub-chain both propose every 100 ms.
        block_interval_ms: 100,
        recv_gas: if sampled > 0 {
            gas as f64 / sampled as f64
        } else {
            0.0
        },
        recv_proof_bytes: if sampled > 0 {
            proof_bytes as f64 / sampled as f64
        } else {
            0.0
        },
        recv_sampled: sampled,
        client_update_check_us,
        client_update_gas: if updates > 0 {
            update_gas as f64 / updates as f64
        } else {
            0.0
        },
        client_updates_sampled: updates,
    })
}
