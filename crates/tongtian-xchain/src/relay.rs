//! The relayer's logic: look at both ends of a channel, carry what one
//! committed to the other with proofs, and keep each side's client of the
//! other fresh enough to check them.
//!
//! It holds no state of its own that correctness depends on: each step
//! reads what the chains say (pending packets, receipts, acks, client
//! heights) and acts on that, so a relayer that restarts, or two racing
//! ones, are safe; the loser of a race gets `packet_already_received` or
//! `unknown_packet` and goes on. An [`Endpoint`] is one chain as the
//! relayer sees it: in process (a node relaying for its own chains) or
//! over the API (a standalone `tongtian relay`).

use crate::channel::{self, Ack, ChannelMsg, Packet, PacketProof, Proven};
use crate::client::{ClientMsg, SignedHeader};
use async_trait::async_trait;
use tongtian_types::{proof::StateProof, Action};

/// Why a relay step failed (it is retried on the next step).
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The chain could not be read or written.
    #[error("{chain}: {message}")]
    Chain {
        /// Which chain.
        chain: String,
        /// What went wrong.
        message: String,
    },
}

/// One chain, as a relayer reads and writes it.
#[async_trait]
pub trait Endpoint: Send + Sync {
    /// The chain's name (for reports).
    fn name(&self) -> String;
    /// A module query's JSON answer.
    async fn query(&self, module: &str, path: &str) -> Result<serde_json::Value, RelayError>;
    /// The latest committed height.
    async fn latest(&self) -> Result<u64, RelayError>;
    /// The committed header at `height` with its certificate.
    async fn signed_header(&self, height: u64) -> Result<SignedHeader, RelayError>;
    /// A proof of `key` at `height`.
    async fn prove(&self, key: &[u8], height: u64) -> Result<StateProof, RelayError>;
    /// Sign and submit these actions, in order, with the relayer's key.
    async fn submit(&self, actions: Vec<Action>) -> Result<(), RelayError>;
}

/// A channel between two chains, as both ends name it.
#[derive(Clone, Debug)]
pub struct Path {
    /// The channel on side A.
    pub a_channel: String,
    /// A's client of B.
    pub a_client: String,
    /// The channel on side B.
    pub b_channel: String,
    /// B's client of A.
    pub b_client: String,
}

/// What one step did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StepReport {
    /// Packets delivered (recv submitted).
    pub received: usize,
    /// Acknowledgements delivered.
    pub acknowledged: usize,
    /// Timeouts delivered.
    pub timed_out: usize,
    /// Client updates submitted.
    pub updates: usize,
    /// Packets still pending on either side after it.
    pub pending: usize,
    /// Channel handshake steps submitted.
    pub handshakes: usize,
}

impl StepReport {
    /// Count `other` in too.
    pub fn add(&mut self, other: &StepReport) {
        self.received += other.received;
        self.acknowledged += other.acknowledged;
        self.timed_out += other.timed_out;
        self.updates += other.updates;
        self.pending += other.pending;
        self.handshakes += other.handshakes;
    }
}

fn chain_err(chain: &dyn Endpoint, e: impl std::fmt::Display) -> RelayError {
    RelayError::Chain {
        chain: chain.name(),
        message: e.to_string(),
    }
}

/// The client update that brings `dst`'s client `client` of `src` to
/// `src`'s height `h`, if it is behind.
async fn update_for(
    src: &dyn Endpoint,
    dst: &dyn Endpoint,
    client: &str,
    h: u64,
) -> Result<Option<Action>, RelayError> {
    let c = dst
        .query(crate::client::ID, &format!("clients/{client}"))
        .await?;
    let latest = c["latest_height"].as_u64().unwrap_or(0);
    if latest >= h {
        return Ok(None);
    }
    let signed = src.signed_header(h).await?;
    let validators = src
        .prove(&tongtian_execution::membership::validators_key(), h)
        .await?;
    Ok(Some(
        ClientMsg::Update {
            client: client.into(),
            signed,
            validators,
        }
        .action(),
    ))
}

/// Carry one direction of a channel: packets `src` sent on `src_channel`
/// to `dst` (recv), and for those `dst` has answered or let time out, the
/// ack or timeout back to `src`.
pub async fn step_one_way(
    src: &dyn Endpoint,
    src_channel: &str,
    src_client: &str,
    dst: &dyn Endpoint,
    dst_client: &str,
    report: &mut StepReport,
) -> Result<(), RelayError> {
    let packets: Vec<Packet> = serde_json::from_value(
        src.query(channel::ID, &format!("packets/{src_channel}"))
            .await?,
    )
    .map_err(|e| chain_err(src, e))?;
    if packets.is_empty() {
        return Ok(());
    }
    let dst_height = dst.latest().await?;
    let dst_time = dst.signed_header(dst_height).await?.header.timestamp_ms;
    let (mut recv, mut acks, mut timeouts) = (Vec::new(), Vec::new(), Vec::new());
    for p in packets {
        let received = dst
            .query(
                channel::ID,
                &format!("receipts/{}/{}", p.dest_channel, p.sequence),
            )
            .await?
            .as_bool()
            .unwrap_or(false);
        let expired = (p.timeout_height != 0 && dst_height >= p.timeout_height)
            || (p.timeout_ms != 0 && dst_time >= p.timeout_ms);
        if received {
            acks.push(p);
        } else if expired {
            timeouts.push(p);
        } else {
            recv.push(p);
        }
    }
    report.pending += recv.len() + acks.len() + timeouts.len();
    if !recv.is_empty() {
        let h = src.latest().await?;
        let mut actions = Vec::new();
        if let Some(u) = update_for(src, dst, dst_client, h).await? {
            actions.push(u);
            report.updates += 1;
        }
        for p in &recv {
            let proof = src
                .prove(&channel::commitment_key(&p.source_channel, p.sequence), h)
                .await?;
            if proof.value.is_none() {
                // Committed after the height we can prove at: next step.
                continue;
            }
            report.received += 1;
            actions.push(
                ChannelMsg::Recv {
                    packet: p.clone(),
                    proven: Proven {
                        height: h,
                        proof: PacketProof::State(proof),
                    },
                }
                .action(),
            );
        }
        if actions.iter().any(|a| !is_update(a)) {
            dst.submit(actions).await?;
        }
    }
    if !acks.is_empty() || !timeouts.is_empty() {
        let g = dst_height;
        let mut actions = Vec::new();
        if let Some(u) = update_for(dst, src, src_client, g).await? {
            actions.push(u);
            report.updates += 1;
        }
        for p in &acks {
            let v = dst
                .query(
                    channel::ID,
                    &format!("acks/{}/{}", p.dest_channel, p.sequence),
                )
                .await?;
            if v.is_null() {
                continue;
            }
            let ack: Ack = serde_json::from_value(v).map_err(|e| chain_err(dst, e))?;
            let proof = dst
                .prove(&channel::ack_key(&p.dest_channel, p.sequence), g)
                .await?;
            if proof.value.is_none() {
                continue;
            }
            actions.push(
                ChannelMsg::Acknowledge {
                    packet: p.clone(),
                    ack,
                    proven: Proven {
                        height: g,
                        proof: PacketProof::State(proof),
                    },
                }
                .action(),
            );
            report.acknowledged += 1;
        }
        for p in &timeouts {
            let proof = dst
                .prove(&channel::receipt_key(&p.dest_channel, p.sequence), g)
                .await?;
            actions.push(
                ChannelMsg::Timeout {
                    packet: p.clone(),
                    proven: Proven {
                        height: g,
                        proof: PacketProof::State(proof),
                    },
                }
                .action(),
            );
            report.timed_out += 1;
        }
        if actions.iter().any(|a| !is_update(a)) {
            src.submit(actions).await?;
        }
    }
    Ok(())
}

/// Whether an action is a client update (sent only with packets to prove).
fn is_update(a: &Action) -> bool {
    matches!(a, Action::Module { module, .. } if module == crate::client::ID)
}

/// The channel ends on `chain` that run through its client `client`.
async fn ends(chain: &dyn Endpoint, client: &str) -> Result<Vec<channel::ChannelEnd>, RelayError> {
    let all: Vec<channel::ChannelEnd> =
        serde_json::from_value(chain.query(channel::ID, "channels").await?)
            .map_err(|e| chain_err(chain, e))?;
    Ok(all
        .into_iter()
        .filter(|e| e.init.client == client)
        .collect())
}

/// The proof of `end` on `src` at its latest height, with the update of
/// `dst`'s client `dst_client` of `src` that lets `dst` check it.
async fn prove_end(
    src: &dyn Endpoint,
    dst: &dyn Endpoint,
    dst_client: &str,
    end: &channel::ChannelEnd,
) -> Result<(Vec<Action>, Proven), RelayError> {
    let h = src.latest().await?;
    let mut actions = Vec::new();
    if let Some(u) = update_for(src, dst, dst_client, h).await? {
        actions.push(u);
    }
    let proof = src.prove(&channel::end_key(&end.init.id), h).await?;
    Ok((
        actions,
        Proven {
            height: h,
            proof: PacketProof::State(proof),
        },
    ))
}

/// Move the handshakes proposed on `a` (through its client `a_client` of
/// `b`) one step: answer an `Init` on `b` (`OpenTry`), open `a`'s end once
/// `b` answered (`OpenAck`), confirm `b`'s once `a`'s is open
/// (`OpenConfirm`). Each step carries the proof of the other end.
async fn handshake_one_way(
    a: &dyn Endpoint,
    a_client: &str,
    b: &dyn Endpoint,
    b_client: &str,
) -> Result<usize, RelayError> {
    use channel::ChannelState::{Init, Open, TryOpen};
    let (on_a, on_b) = (ends(a, a_client).await?, ends(b, b_client).await?);
    let mut steps = 0;
    for end in &on_a {
        let answer = on_b
            .iter()
            .find(|e| e.init.counterparty_channel == end.init.id);
        match (end.state, answer) {
            (Init, None) => {
                let (mut actions, proven) = prove_end(a, b, b_client, end).await?;
                actions.push(
                    ChannelMsg::OpenTry {
                        client: b_client.into(),
                        counterparty: end.clone(),
                        proven,
                    }
                    .action(),
                );
                b.submit(actions).await?;
            }
            (Init, Some(ans)) if ans.state == TryOpen => {
                let (mut actions, proven) = prove_end(b, a, a_client, ans).await?;
                actions.push(
                    ChannelMsg::OpenAck {
                        channel: end.init.id.clone(),
                        counterparty: ans.clone(),
                        proven,
                    }
                    .action(),
                );
                a.submit(actions).await?;
            }
            (Open, Some(ans)) if ans.state == TryOpen => {
                let (mut actions, proven) = prove_end(a, b, b_client, end).await?;
                actions.push(
                    ChannelMsg::OpenConfirm {
                        channel: ans.init.id.clone(),
                        counterparty: end.clone(),
                        proven,
                    }
                    .action(),
                );
                b.submit(actions).await?;
            }
            _ => continue,
        }
        steps += 1;
    }
    Ok(steps)
}

/// The open channels between `a` and `b` (through the clients of
/// `template`), handshaken ones included, as paths, `a`'s end first.
async fn handshaken(
    a: &dyn Endpoint,
    b: &dyn Endpoint,
    template: &Path,
) -> Result<Vec<Path>, RelayError> {
    let on_b = ends(b, &template.b_client).await?;
    Ok(ends(a, &template.a_client)
        .await?
        .into_iter()
        .filter(|e| e.state == channel::ChannelState::Open)
        .filter_map(|e| {
            let there = on_b.iter().find(|x| {
                x.init.id == e.init.counterparty_channel
                    && x.init.counterparty_channel == e.init.id
                    && x.state == channel::ChannelState::Open
            })?;
            Some(Path {
                a_channel: e.init.id.clone(),
                a_client: template.a_client.clone(),
                b_channel: there.init.id.clone(),
                b_client: template.b_client.clone(),
            })
        })
        .collect())
}

/// One step along each of `paths` between `a` and `b`: what they did in
/// all, or the last error (every path is tried, so one stuck channel does
/// not hold up the others). Handshakes between the two (through the
/// clients of the first path) move on too, and the channels they opened
/// are relayed like the others.
pub async fn step_all(
    a: &dyn Endpoint,
    b: &dyn Endpoint,
    paths: &[Path],
) -> Result<StepReport, RelayError> {
    let mut total = StepReport::default();
    let mut failed = None;
    let mut paths = paths.to_vec();
    if let Some(first) = paths.first().cloned() {
        let mut hs = handshake_one_way(a, &first.a_client, b, &first.b_client).await;
        if let Ok(n) = hs {
            hs = handshake_one_way(b, &first.b_client, a, &first.a_client)
                .await
                .map(|m| m + n);
        }
        match hs {
            Ok(n) => total.handshakes += n,
            Err(e) => failed = Some(e),
        }
        match handshaken(a, b, &first).await {
            Ok(found) => {
                for p in found {
                    if !paths.iter().any(|x| x.a_channel == p.a_channel) {
                        paths.push(p);
                    }
                }
            }
            Err(e) => failed = Some(e),
        }
    }
    for path in &paths {
        match step(a, b, path).await {
            Ok(r) => total.add(&r),
            Err(e) => failed = Some(e),
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// One step both ways along `path` between `a` and `b`.
pub async fn step(
    a: &dyn Endpoint,
    b: &dyn Endpoint,
    path: &Path,
) -> Result<StepReport, RelayError> {
    let mut report = StepReport::default();
    step_one_way(
        a,
        &path.a_channel,
        &path.a_client,
        b,
        &path.b_client,
        &mut report,
    )
    .await?;
    step_one_way(
        b,
        &path.b_channel,
        &path.b_client,
        a,
        &path.a_client,
        &mut report,
    )
    .await?;
    Ok(report)
}
