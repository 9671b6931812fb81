//! The operational half of an external EVM chain's link: `tongtian attest
//! evm` (one per attester organisation) and `tongtian relay evm` (anyone).
//!
//! Neither trusts the other. An attester reads its own EVM node and the
//! Tongtian chain and posts its signatures on the Tongtian chain with
//! [`ClientMsg::Cosign`]: of EVM blocks past the finality depth (the chain
//! stores a block once the client's threshold signed it), of our packets
//! to the EVM port and of our acknowledgements of its packets. The
//! relayer carries packets both ways: EVM → Tongtian with `eth_getProof`
//! proofs under an attested root (checked by our chain), Tongtian → EVM
//! with the attesters' signatures it reads from our chain (checked by the
//! port contract). Both keep nothing that correctness depends on: each pass
//! reads where every packet stands from the two chains.

use crate::util::{self, usage, Ctx};
use alloy_sol_types::{SolCall, SolEvent};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::time::Duration;
use tongtian_client::Client;
use tongtian_crypto::eth::EthKey;
use tongtian_crypto::Keypair;
use tongtian_types::{Action, Address, H256};
use tongtian_xchain::attested::{self, Attestation, EthStorageProof, Signature65};
use tongtian_xchain::channel::{self, Ack, ChannelMsg, Packet, PacketProof, Proven};
use tongtian_xchain::client::{ClientMsg, CosignItem};

use tongtian_xchain::attested::evm_port::{to_sol, ITongtianEvmPort as IEvmPort};

/// A JSON-RPC endpoint of the EVM chain.
struct Evm {
    http: reqwest::Client,
    url: String,
}

impl Evm {
    fn new(url: &str) -> Self {
        Evm {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client builds"),
            url: url.to_string(),
        }
    }

    async fn rpc(&self, method: &str, params: Value) -> Result<Value> {
        let r: Value = self
            .http
            .post(&self.url)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .send()
            .await
            .with_context(|| format!("EVM node {}", self.url))?
            .json()
            .await?;
        if let Some(e) = r.get("error") {
            bail!("{method}: {e}");
        }
        Ok(r["result"].clone())
    }

    async fn number(&self, method: &str, params: Value) -> Result<u64> {
        let v = self.rpc(method, params).await?;
        quantity(&v)
    }

    /// Logs of `event` from the port.
    async fn logs<E: SolEvent>(&self, port: &str) -> Result<Vec<(u64, E)>> {
        let logs = self
            .rpc(
                "eth_getLogs",
                json!([{"address": port, "fromBlock": "0x0", "toBlock": "latest",
                        "topics": [format!("0x{}", hex::encode(E::SIGNATURE_HASH))]}]),
            )
            .await?;
        let mut out = Vec::new();
        for l in logs.as_array().into_iter().flatten() {
            let data = bytes(&l["data"])?;
            let topics = l["topics"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str()?.parse().ok())
                .collect::<Vec<alloy_primitives::B256>>();
            let e = E::decode_raw_log(topics, &data).map_err(|e| anyhow!("bad log: {e}"))?;
            out.push((quantity(&l["blockNumber"])?, e));
        }
        Ok(out)
    }

    /// The word at `slot` of `port`'s storage.
    async fn slot(&self, port: &str, slot: [u8; 32]) -> Result<[u8; 32]> {
        let v = self
            .rpc(
                "eth_getStorageAt",
                json!([port, format!("0x{}", hex::encode(slot)), "latest"]),
            )
            .await?;
        let b = bytes(&v)?;
        let mut w = [0u8; 32];
        w[32 - b.len().min(32)..].copy_from_slice(&b[b.len().saturating_sub(32)..]);
        Ok(w)
    }

    /// Sign and send a call to `to`, and wait for its receipt: whether it
    /// succeeded.
    async fn send(&self, key: &EthKey, to: &str, input: Vec<u8>) -> Result<bool> {
        let from = format!("0x{}", hex::encode(key.address()));
        let chain_id = self.number("eth_chainId", json!([])).await?;
        let nonce = self
            .number("eth_getTransactionCount", json!([from, "pending"]))
            .await?;
        let price = self.number("eth_gasPrice", json!([])).await?;
        let to_addr: Address = to.parse().map_err(|_| anyhow!("bad port address {to}"))?;
        let raw = tongtian_types::eth::sign_eip1559(
            key,
            chain_id,
            nonce,
            u128::from(price) * 2,
            3_000_000,
            Some(to_addr),
            0,
            &input,
        );
        let hash = self
            .rpc(
                "eth_sendRawTransaction",
                json!([format!("0x{}", hex::encode(raw))]),
            )
            .await?;
        for _ in 0..600 {
            let r = self.rpc("eth_getTransactionReceipt", json!([hash])).await?;
            if !r.is_null() {
                return Ok(r["status"] == "0x1");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("{hash} was not mined in 30 s")
    }
}

fn quantity(v: &Value) -> Result<u64> {
    let s = v.as_str().ok_or_else(|| anyhow!("not a quantity: {v}"))?;
    Ok(u64::from_str_radix(s.trim_start_matches("0x"), 16)?)
}

fn bytes(v: &Value) -> Result<Vec<u8>> {
    let s = v.as_str().ok_or_else(|| anyhow!("not hex: {v}"))?;
    let s = s.trim_start_matches("0x");
    let s = if s.len() % 2 == 1 {
        format!("0{s}")
    } else {
        s.to_string()
    };
    Ok(hex::decode(s)?)
}

fn word(v: &Value) -> Result<H256> {
    let b = bytes(v)?;
    let mut w = [0u8; 32];
    if b.len() > 32 {
        bail!("longer than a word: {v}");
    }
    w[32 - b.len()..].copy_from_slice(&b);
    Ok(H256(w))
}

fn commitment(p: &Packet) -> [u8; 32] {
    p.commitment().try_into().expect("a 32-byte commitment")
}

/// What the Tongtian chain says about its channel to the EVM port.
struct Link {
    chain_id: u64,
    channel: String,
    client: String,
    port: String,
    evm_channel: String,
    threshold: usize,
    latest_height: u64,
}

async fn link(client: &Client, channel: &str) -> Result<Link> {
    let ch = client
        .module_query("channel", &format!("channels/{channel}"))
        .await?;
    let client_id = ch["client"].as_str().unwrap_or_default().to_string();
    let c = client
        .module_query("client", &format!("clients/{client_id}"))
        .await?;
    let Some(threshold) = c["model"]["attested"]["threshold"].as_u64() else {
        return Err(usage(
            "wrong_client_type",
            format!("channel {channel} runs through client {client_id}, which is not an attested client"),
        ));
    };
    Ok(Link {
        chain_id: client.status().await?.chain_id,
        channel: channel.to_string(),
        client: client_id,
        port: ch["counterparty_port"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        evm_channel: ch["counterparty_channel"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        threshold: threshold as usize,
        latest_height: c["latest_height"].as_u64().unwrap_or(0),
    })
}

/// Whether `p` (from the EVM chain) can no longer be received by our
/// chain at `height` (time: this machine's clock, a hint the chain checks).
fn expired_here(p: &Packet, height: u64) -> bool {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    (p.timeout_height != 0 && height >= p.timeout_height)
        || (p.timeout_ms != 0 && now_ms >= p.timeout_ms)
}

async fn received_here(client: &Client, l: &Link, seq: u64) -> Result<bool> {
    Ok(client
        .module_query("channel", &format!("receipts/{}/{seq}", l.channel))
        .await?
        .as_bool()
        .unwrap_or(false))
}

/// Whether the port holds channel value `kind` of its packet `seq`.
async fn port_holds(evm: &Evm, l: &Link, kind: &str, seq: u64) -> Result<bool> {
    Ok(evm
        .slot(&l.port, channel::evm_slot(kind, &l.evm_channel, seq))
        .await?
        != [0u8; 32])
}

/// Our chain's ack of the port's packet `seq`, once there is one.
async fn ack_here(client: &Client, l: &Link, seq: u64) -> Result<Option<Ack>> {
    let v = client
        .module_query("channel", &format!("acks/{}/{seq}", l.channel))
        .await?;
    Ok(serde_json::from_value(v).ok())
}

/// How an EVM transaction ended, for reports.
fn outcome(ok: bool) -> &'static str {
    if ok {
        "success"
    } else {
        "reverted"
    }
}

async fn cosigned(client: &Client, l: &Link, digest: &[u8; 32]) -> Result<Vec<Signature65>> {
    let v = client
        .module_query(
            "client",
            &format!("clients/{}/cosigned/{}", l.client, hex::encode(digest)),
        )
        .await?;
    Ok(serde_json::from_value(v)?)
}

/// Submit `action` to the Tongtian chain and wait for it: its status code.
async fn submit(ctx: &Ctx, key: &Keypair, action: Action) -> Result<String> {
    let signer = crate::SignerArgs {
        key: Default::default(),
        password: None,
        gas_limit: 10_000_000,
        gas_price: 1,
    };
    let tx = util::sign_with(&ctx.client, key, &signer, action, None).await?;
    let hash = ctx.client.submit(&tx).await?;
    let r = util::wait_receipt(&ctx.client, &hash, ctx.wait).await?;
    Ok(match r.status {
        tongtian_types::TxStatus::Success => "success".into(),
        tongtian_types::TxStatus::Failed { code, .. } => code,
    })
}

fn report(ctx: &Ctx, what: &str, done: &[String]) {
    if done.is_empty() {
        return;
    }
    if ctx.json {
        println!("{}", json!({ "role": what, "done": done }));
    } else {
        for d in done {
            eprintln!("{what}: {d}");
        }
    }
}

/// What `attest evm` and `relay evm` are given.
pub struct EvmArgs {
    /// The EVM chain's JSON-RPC URL.
    pub evm: String,
    /// Our channel to the EVM port.
    pub channel: String,
    /// Our chain's key (pays the fees).
    pub key: Keypair,
    /// The EVM key (the attester's, or the relayer's that pays EVM gas).
    pub eth_key: EthKey,
    /// Blocks behind the EVM head an attester signs.
    pub finality: u64,
    /// One pass, then exit.
    pub once: bool,
}

/// One attester's pass: sign what is due and not signed by it yet.
async fn attest_once(ctx: &Ctx, a: &EvmArgs, evm: &Evm) -> Result<Vec<String>> {
    let l = link(&ctx.client, &a.channel).await?;
    let mine = |sigs: &[Signature65], digest: &[u8; 32]| {
        let s = a.eth_key.sign_recoverable(digest);
        sigs.iter().any(|x| x.0 == s)
    };
    let mut done = Vec::new();
    let sign = |item: CosignItem, digest: [u8; 32]| ClientMsg::Cosign {
        client: l.client.clone(),
        item,
        signature: Signature65(a.eth_key.sign_recoverable(&digest).to_vec()),
    };
    // A final block, past the depth.
    let head = evm.number("eth_blockNumber", json!([])).await?;
    let target = head.saturating_sub(a.finality);
    if target > l.latest_height {
        let b = evm
            .rpc(
                "eth_getBlockByNumber",
                json!([format!("0x{target:x}"), false]),
            )
            .await?;
        let at = Attestation {
            chain_id: evm.number("eth_chainId", json!([])).await?,
            height: target,
            block_hash: word(&b["hash"])?,
            state_root: word(&b["stateRoot"])?,
            timestamp_ms: quantity(&b["timestamp"])? * 1000,
        };
        let digest = at.digest();
        if !mine(&cosigned(&ctx.client, &l, &digest).await?, &digest) {
            let code = submit(ctx, &a.key, sign(CosignItem::Block(at), digest).action()).await?;
            done.push(format!("block {target}: {code}"));
        }
    }
    // Our packets to the port.
    let pending: Vec<Packet> = serde_json::from_value(
        ctx.client
            .module_query("channel", &format!("packets/{}", l.channel))
            .await?,
    )?;
    for p in pending {
        let digest = attested::packet_digest(l.chain_id, &commitment(&p));
        if !mine(&cosigned(&ctx.client, &l, &digest).await?, &digest) {
            let item = CosignItem::Packet {
                channel: l.channel.clone(),
                sequence: p.sequence,
            };
            let code = submit(ctx, &a.key, sign(item, digest).action()).await?;
            done.push(format!("packet {}: {code}", p.sequence));
        }
    }
    // Our acks of the port's packets it still waits on.
    for (_, sent) in evm.logs::<IEvmPort::SendPacket>(&l.port).await? {
        let p: Packet = borsh::from_slice(&sent.packet)?;
        if !port_holds(evm, &l, "commit", p.sequence).await? {
            continue;
        }
        if !received_here(&ctx.client, &l, p.sequence).await? {
            if expired_here(&p, ctx.client.status().await?.height) {
                let digest = attested::timeout_digest(l.chain_id, &commitment(&p));
                if !mine(&cosigned(&ctx.client, &l, &digest).await?, &digest) {
                    let item = CosignItem::Timeout { packet: p.clone() };
                    let code = submit(ctx, &a.key, sign(item, digest).action()).await?;
                    done.push(format!("timeout {}: {code}", p.sequence));
                }
            }
            continue;
        }
        let Some(ack) = ack_here(&ctx.client, &l, p.sequence).await? else {
            continue;
        };
        let digest = attested::ack_digest(l.chain_id, &commitment(&p), &borsh::to_vec(&ack)?);
        if !mine(&cosigned(&ctx.client, &l, &digest).await?, &digest) {
            let code = submit(
                ctx,
                &a.key,
                sign(CosignItem::Ack { packet: p.clone() }, digest).action(),
            )
            .await?;
            done.push(format!("ack {}: {code}", p.sequence));
        }
    }
    Ok(done)
}

/// The relayer's pass.
async fn relay_once(ctx: &Ctx, a: &EvmArgs, evm: &Evm) -> Result<Vec<String>> {
    let l = link(&ctx.client, &a.channel).await?;
    let mut done = Vec::new();
    let prove = |kind: &'static str, seq: u64| {
        let slot = channel::evm_slot(kind, &l.evm_channel, seq);
        let (port, h) = (l.port.clone(), l.latest_height);
        async move {
            let r = evm
                .rpc(
                    "eth_getProof",
                    json!([
                        port,
                        [format!("0x{}", hex::encode(slot))],
                        format!("0x{h:x}")
                    ]),
                )
                .await?;
            Ok::<_, anyhow::Error>(Proven {
                height: h,
                proof: PacketProof::Eth(EthStorageProof::from_rpc(&r).map_err(|e| anyhow!(e))?),
            })
        }
    };
    let sigs = |s: Vec<Signature65>| -> Vec<alloy_primitives::Bytes> {
        s.into_iter().map(|x| x.0.into()).collect()
    };
    // EVM -> Tongtian.
    for (block, sent) in evm.logs::<IEvmPort::SendPacket>(&l.port).await? {
        let p: Packet = borsh::from_slice(&sent.packet)?;
        let received = received_here(&ctx.client, &l, p.sequence).await?;
        if !port_holds(evm, &l, "commit", p.sequence).await? {
            continue;
        }
        if !received && expired_here(&p, ctx.client.status().await?.height) {
            // Too late for us: the attesters sign that, the port refunds.
            let digest = attested::timeout_digest(l.chain_id, &commitment(&p));
            let s = cosigned(&ctx.client, &l, &digest).await?;
            if s.len() >= l.threshold {
                let call = IEvmPort::timeoutPacketCall {
                    p: to_sol(&p),
                    sigs: sigs(s),
                };
                let ok = evm.send(&a.eth_key, &l.port, call.abi_encode()).await?;
                done.push(format!("timeout {} there: {}", p.sequence, outcome(ok)));
            }
            continue;
        }
        if !received {
            if l.latest_height < block {
                continue; // not attested that far yet
            }
            let proven = prove("commit", p.sequence).await?;
            let code = submit(
                ctx,
                &a.key,
                ChannelMsg::Recv {
                    packet: p.clone(),
                    proven,
                }
                .action(),
            )
            .await?;
            done.push(format!("recv {} here: {code}", p.sequence));
            continue;
        }
        let Some(ack) = ack_here(&ctx.client, &l, p.sequence).await? else {
            continue;
        };
        let ack_bytes = borsh::to_vec(&ack)?;
        let digest = attested::ack_digest(l.chain_id, &commitment(&p), &ack_bytes);
        let s = cosigned(&ctx.client, &l, &digest).await?;
        if s.len() < l.threshold {
            continue;
        }
        let call = IEvmPort::acknowledgePacketCall {
            p: to_sol(&p),
            ack: ack_bytes.into(),
            sigs: sigs(s),
        };
        let ok = evm.send(&a.eth_key, &l.port, call.abi_encode()).await?;
        done.push(format!("ack {} there: {}", p.sequence, outcome(ok)));
    }
    // Tongtian -> EVM.
    let pending: Vec<Packet> = serde_json::from_value(
        ctx.client
            .module_query("channel", &format!("packets/{}", l.channel))
            .await?,
    )?;
    let mut acks: Option<Vec<(u64, IEvmPort::RecvPacket)>> = None;
    for p in pending {
        let received = port_holds(evm, &l, "receipt", p.sequence).await?;
        if !received {
            let head = evm.number("eth_blockNumber", json!([])).await?;
            let expired = |h: u64| p.timeout_height != 0 && h >= p.timeout_height;
            if expired(l.latest_height) {
                // Past its timeout at an attested height, unreceived: refund here.
                let proven = prove("receipt", p.sequence).await?;
                let code = submit(
                    ctx,
                    &a.key,
                    ChannelMsg::Timeout {
                        packet: p.clone(),
                        proven,
                    }
                    .action(),
                )
                .await?;
                done.push(format!("timeout {} here: {code}", p.sequence));
                continue;
            }
            if expired(head + 1) {
                continue; // the port would refuse it; wait for the attesters
            }
            let digest = attested::packet_digest(l.chain_id, &commitment(&p));
            let s = cosigned(&ctx.client, &l, &digest).await?;
            if s.len() < l.threshold {
                continue;
            }
            let call = IEvmPort::recvPacketCall {
                p: to_sol(&p),
                sigs: sigs(s),
            };
            let ok = evm.send(&a.eth_key, &l.port, call.abi_encode()).await?;
            done.push(format!("recv {} there: {}", p.sequence, outcome(ok)));
            continue;
        }
        if acks.is_none() {
            acks = Some(evm.logs::<IEvmPort::RecvPacket>(&l.port).await?);
        }
        let Some((block, got)) = acks
            .iter()
            .flatten()
            .find(|(_, e)| e.sequence == p.sequence)
        else {
            continue;
        };
        if l.latest_height < *block {
            continue;
        }
        let ack: Ack = borsh::from_slice(&got.ack)?;
        let proven = prove("ack", p.sequence).await?;
        let code = submit(
            ctx,
            &a.key,
            ChannelMsg::Acknowledge {
                packet: p.clone(),
                ack,
                proven,
            }
            .action(),
        )
        .await?;
        done.push(format!("ack {} here: {code}", p.sequence));
    }
    Ok(done)
}

/// Run the attester (`relay: false`) or the relayer until SIGINT/SIGTERM.
pub async fn run(ctx: &Ctx, a: EvmArgs, relay: bool) -> Result<()> {
    let evm = Evm::new(&a.evm);
    let role = if relay { "relay" } else { "attest" };
    let stop = util::wait_for_signal();
    tokio::pin!(stop);
    let mut failures = 0u32;
    loop {
        let pass = if relay {
            relay_once(ctx, &a, &evm).await
        } else {
            attest_once(ctx, &a, &evm).await
        };
        let pause = match pass {
            Ok(done) => {
                failures = 0;
                report(ctx, role, &done);
                Duration::from_millis(300)
            }
            Err(e) => {
                failures += 1;
                if a.once {
                    return Err(e);
                }
                let backoff = Duration::from_millis(250 << failures.min(5));
                eprintln!("{role} evm: {e:#}; retrying in {backoff:?}");
                backoff
            }
        };
        if a.once {
            return Ok(());
        }
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Load an Ethereum key file (`tongtian key import --eth`).
pub fn load_eth_key(path: &std::path::Path, password: Option<&str>) -> Result<EthKey> {
    match util::load_any_key(path, password)? {
        tongtian_crypto::keyfile::AnyKey::Ethereum(k) => Ok(k),
        tongtian_crypto::keyfile::AnyKey::Native(_) => Err(usage(
            "not_an_ethereum_key",
            format!(
                "{} is a native key; --eth-key takes an Ethereum key (`tongtian key import --eth`)",
                path.display()
            ),
        )),
    }
}
