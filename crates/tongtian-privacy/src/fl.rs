//! `fl`: horizontal federated learning with secure aggregation. Every
//! party holds rows with the same columns; role 0 also aggregates.
//!
//! Each round: role 0 sends the global model to every client still in;
//! each client (role 0 too) trains locally on its own training rows
//! (logistic regression or a one-hidden-layer perceptron, a few epochs of
//! mini-batch gradient descent) and
//! contributes `n_i · (w_i - w)` and `n_i` through [`crate::secagg`], so
//! role 0 learns only the sum; the new model is `w + Σ n_i (w_i - w) /
//! Σ n_i` (FedAvg). A client whose session fails is dropped for the rest
//! of the job; the round still sums exactly while at least the threshold
//! remain. Each round's survivors and a hash of its model are reported.
//!
//! Features are used as they are (the parties should agree on their
//! scaling out of band); each party holds out its own rows by a hash of
//! the job and the row's key, and role 0 measures the final model's
//! accuracy on its own held-out rows.
//!
//! **Security**: that of [`crate::secagg`] (semi-honest, the aggregator
//! sees only masked updates and the sum); every client learns each
//! round's global model, role 0 learns the final one and reports it.

use crate::mpc::Ring;
use crate::protocol::{Peers, PrivacyProtocol, Ran};
use crate::secagg::{aggregate, Client, Keys, Sealed, SecAggParams, Unmask};
use crate::PrivacyError;
use async_trait::async_trait;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Fractional bits of the aggregated updates.
const FRAC: u32 = 24;

/// An `fl` job's parameters.
#[derive(Clone, Debug)]
pub struct FlParams {
    /// The job's tag.
    pub job: [u8; 32],
    /// Feature columns (every party has them).
    pub features: Vec<String>,
    /// The label column (0 or 1).
    pub label: String,
    /// Rounds.
    pub rounds: u32,
    /// Clients needed for a round to count (at least a majority).
    pub min_clients: usize,
    /// Local epochs per round.
    pub local_epochs: u32,
    /// The local step size.
    pub learning_rate: f64,
    /// Rows per local batch.
    pub batch: usize,
    /// The fraction of each party's rows held out.
    pub holdout: f64,
    /// Hidden units: 0 for logistic regression, else a one-hidden-layer
    /// perceptron (tanh units, a sigmoid output).
    pub hidden: usize,
}

/// One party's rows.
#[derive(Clone, Debug, Default)]
pub struct FlInput {
    /// Row keys (for the holdout split).
    pub keys: Vec<String>,
    /// Columns by name.
    pub columns: BTreeMap<String, Vec<f64>>,
}

/// One round as role 0 reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlRound {
    /// From 1.
    pub round: u32,
    /// The roles whose updates it summed.
    pub participants: Vec<u32>,
    /// SHA-256 of the round's global model (its weights as f64 bits).
    pub model_commitment: [u8; 32],
}

/// The trained model and the rounds, as role 0 learns them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlModel {
    /// `logistic` or `mlp`.
    pub model: String,
    /// Hidden units (`mlp`).
    pub hidden: usize,
    /// Feature names, in weight order.
    pub features: Vec<String>,
    /// Logistic: a weight per feature. MLP: every parameter, flattened
    /// (hidden × (features + 1) input weights with their biases, then
    /// hidden output weights, then the output bias).
    pub weights: Vec<f64>,
    /// The bias (logistic).
    pub bias: f64,
    /// Every round.
    pub rounds: Vec<FlRound>,
    /// Accuracy on role 0's held-out rows.
    pub accuracy: Option<f64>,
}

/// The protocol.
#[derive(Debug, Default, Clone, Copy)]
pub struct Federated;

fn bad(m: impl Into<String>) -> PrivacyError {
    PrivacyError::BadMessage(m.into())
}

/// Rows as (features + 1 for the bias, label), split (train, test).
type Rows = (Vec<Vec<f64>>, Vec<f64>);

fn rows(p: &FlParams, input: &FlInput) -> Result<(Rows, Rows), PrivacyError> {
    let col = |c: &str| {
        input
            .columns
            .get(c)
            .ok_or_else(|| bad(format!("this party holds no column {c}")))
    };
    let feats: Vec<&Vec<f64>> = p
        .features
        .iter()
        .map(|c| col(c))
        .collect::<Result<_, _>>()?;
    let y = col(&p.label)?;
    let (mut tr, mut te): (Rows, Rows) = Default::default();
    for (r, key) in input.keys.iter().enumerate() {
        let mut x: Vec<f64> = feats.iter().map(|f| f[r]).collect();
        x.push(1.0);
        let side = if crate::lr::held_out(&p.job, key, p.holdout) {
            &mut te
        } else {
            &mut tr
        };
        side.0.push(x);
        side.1.push(y[r]);
    }
    Ok((tr, te))
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// `epochs` of mini-batch gradient descent from `w` on `(x, y)`.
pub fn train_local(w: &[f64], data: &Rows, epochs: u32, rate: f64, batch: usize) -> Vec<f64> {
    let mut w = w.to_vec();
    let (x, y) = data;
    for _ in 0..epochs {
        for (xb, yb) in x.chunks(batch.max(1)).zip(y.chunks(batch.max(1))) {
            let mut g = vec![0.0; w.len()];
            for (xi, yi) in xb.iter().zip(yb) {
                let e = sigmoid(xi.iter().zip(&w).map(|(a, b)| a * b).sum()) - yi;
                for (gj, xj) in g.iter_mut().zip(xi) {
                    *gj += e * xj;
                }
            }
            for (wj, gj) in w.iter_mut().zip(&g) {
                *wj -= rate * gj / xb.len() as f64;
            }
        }
    }
    w
}

/// The share of held-out rows `w` classifies right.
pub fn accuracy(w: &[f64], data: &Rows) -> Option<f64> {
    let (x, y) = data;
    if x.is_empty() {
        return None;
    }
    let right = x
        .iter()
        .zip(y)
        .filter(|(xi, yi)| {
            let z: f64 = xi.iter().zip(w).map(|(a, b)| a * b).sum();
            ((z > 0.0) as u8 as f64) == **yi
        })
        .count();
    Some(right as f64 / x.len() as f64)
}

/// Parameters of the model `p` names, for `k` inputs (the bias column
/// included).
fn size(p: &FlParams, k: usize) -> usize {
    if p.hidden == 0 {
        k
    } else {
        p.hidden * k + p.hidden + 1
    }
}

/// The starting model: zeros for logistic regression; small weights drawn
/// from the job's tag for a perceptron (zeros would keep its units alike).
pub fn initial_model(p: &FlParams, k: usize) -> Vec<f64> {
    let mut w = vec![0.0; size(p, k)];
    if p.hidden > 0 {
        let mut x = u64::from_le_bytes(p.job[..8].try_into().expect("8 bytes")) | 1;
        let scale = 1.0 / (k as f64).sqrt();
        for v in w.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *v = ((x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale;
        }
    }
    w
}

/// The model's logit for `x` (with its bias column), and its hidden units.
fn forward(p: &FlParams, w: &[f64], x: &[f64], h: &mut Vec<f64>) -> f64 {
    if p.hidden == 0 {
        return x.iter().zip(w).map(|(a, b)| a * b).sum();
    }
    let k = x.len();
    h.clear();
    for u in 0..p.hidden {
        let z: f64 = w[u * k..(u + 1) * k]
            .iter()
            .zip(x)
            .map(|(a, b)| a * b)
            .sum();
        h.push(z.tanh());
    }
    let out = &w[p.hidden * k..];
    h.iter().zip(out).map(|(a, b)| a * b).sum::<f64>() + out[p.hidden]
}

/// Local training of the model `p` names from `w`.
pub fn train_model(p: &FlParams, w: &[f64], data: &Rows) -> Vec<f64> {
    if p.hidden == 0 {
        return train_local(w, data, p.local_epochs, p.learning_rate, p.batch);
    }
    let mut w = w.to_vec();
    let (x, y) = data;
    let k = x.first().map_or(0, Vec::len);
    let mut h = Vec::with_capacity(p.hidden);
    for _ in 0..p.local_epochs {
        for (xb, yb) in x.chunks(p.batch.max(1)).zip(y.chunks(p.batch.max(1))) {
            let mut g = vec![0.0; w.len()];
            for (xi, yi) in xb.iter().zip(yb) {
                let e = sigmoid(forward(p, &w, xi, &mut h)) - yi;
                let out = p.hidden * k;
                for u in 0..p.hidden {
                    g[out + u] += e * h[u];
                    let dh = e * w[out + u] * (1.0 - h[u] * h[u]);
                    for (j, xj) in xi.iter().enumerate() {
                        g[u * k + j] += dh * xj;
                    }
                }
                g[out + p.hidden] += e;
            }
            for (wj, gj) in w.iter_mut().zip(&g) {
                *wj -= p.learning_rate * gj / xb.len() as f64;
            }
        }
    }
    w
}

/// The share of `data` the model `p` names classifies right.
pub fn model_accuracy(p: &FlParams, w: &[f64], data: &Rows) -> Option<f64> {
    let (x, y) = data;
    if x.is_empty() {
        return None;
    }
    let mut h = Vec::new();
    let right = x
        .iter()
        .zip(y)
        .filter(|(xi, yi)| ((forward(p, w, xi, &mut h) > 0.0) as u8 as f64) == **yi)
        .count();
    Some(right as f64 / x.len() as f64)
}

/// The model as role 0 reports it.
fn model_of(p: &FlParams, w: Vec<f64>, rounds: Vec<FlRound>, acc: Option<f64>) -> FlModel {
    let (weights, bias) = if p.hidden == 0 {
        let k = w.len();
        (w[..k - 1].to_vec(), w[k - 1])
    } else {
        (w, 0.0)
    };
    FlModel {
        model: if p.hidden == 0 { "logistic" } else { "mlp" }.into(),
        hidden: p.hidden,
        features: p.features.clone(),
        weights,
        bias,
        rounds,
        accuracy: acc,
    }
}

fn commit(w: &[f64]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"tongtian/fl-model/v1");
    for v in w {
        h.update(v.to_bits().to_le_bytes());
    }
    h.finalize().into()
}

/// What role 0 sends a client each round.
#[derive(BorshSerialize, BorshDeserialize)]
enum Down {
    /// The global model and who is in this round.
    Model {
        round: u32,
        weights: Vec<f64>,
        clients: Vec<u32>,
    },
    /// Every client's keys.
    Keys(Vec<Keys>),
    /// The shares dealt to this client.
    Shares(Vec<Sealed>),
    /// The survivors.
    Survivors(Vec<u32>),
    /// Training is over.
    Done,
}

/// What a client sends role 0.
#[derive(BorshSerialize, BorshDeserialize)]
enum Up {
    Keys(Keys),
    Shares(Vec<Sealed>),
    Masked(Vec<u64>),
    Unmask(Unmask),
}

async fn send<T: BorshSerialize>(s: &mut crate::Session, v: &T) -> Result<(), PrivacyError> {
    s.send(&borsh::to_vec(v).expect("fl messages encode")).await
}

async fn recv<T: BorshDeserialize>(s: &mut crate::Session) -> Result<T, PrivacyError> {
    borsh::from_slice(&s.recv().await?).map_err(|e| bad(format!("fl message: {e}")))
}

/// The update a client contributes: `n (w_i - w)` and `n`, fixed point;
/// refused when it is not finite or would wrap the ring.
fn contribution(w: &[f64], local: &[f64], n: usize) -> Result<Vec<u64>, PrivacyError> {
    let limit = (62 - FRAC) as f64;
    if local.iter().zip(w).any(|(a, b)| {
        !((a - b) * n as f64).is_finite() || ((a - b) * n as f64).abs() >= limit.exp2()
    }) {
        return Err(bad(
            "value_out_of_range: a local update that is not finite or too large",
        ));
    }
    let mut v: Vec<u64> = local
        .iter()
        .zip(w)
        .map(|(a, b)| u64::encode((a - b) * n as f64, FRAC))
        .collect();
    v.push(u64::encode(n as f64, FRAC));
    Ok(v)
}

fn round_tag(job: &[u8; 32], round: u32) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"tongtian/fl-round/v1")
        .chain_update(job)
        .chain_update(round.to_le_bytes())
        .finalize()
        .into()
}

impl Federated {
    async fn aggregator(
        peers: &mut Peers,
        p: &FlParams,
        train: &Rows,
        test: &Rows,
    ) -> Result<Option<FlModel>, PrivacyError> {
        let n = peers.len();
        let k = p.features.len() + 1;
        let mut w = initial_model(p, k);
        let dim = w.len();
        // Only the clients that came are in.
        let mut alive: Vec<u32> = (0..n as u32)
            .filter(|r| *r == 0 || peers.has(*r as usize))
            .collect();
        let mut rounds = Vec::new();
        for round in 1..=p.rounds {
            let sp = SecAggParams {
                round: round_tag(&p.job, round),
                clients: n,
                threshold: p.min_clients.max(n / 2 + 1),
                neighbours: 2 * (n as f64).log2().ceil() as usize,
                dim: dim + 1,
            };
            // Who is still in; a client whose session fails drops out.
            let out = |alive: &mut Vec<u32>, r: u32, e: &PrivacyError| {
                tracing::warn!(round, client = r, "dropped: {e}");
                alive.retain(|x| *x != r);
            };
            for r in alive.clone().into_iter().filter(|r| *r != 0) {
                let m = Down::Model {
                    round,
                    weights: w.clone(),
                    clients: alive.clone(),
                };
                if let Err(e) = send(peers.with(r as usize)?, &m).await {
                    out(&mut alive, r, &e);
                }
            }
            let (mut me, my_keys) = Client::new(sp.clone(), 0)?;
            let mut keys = vec![my_keys];
            for r in alive.clone().into_iter().filter(|r| *r != 0) {
                match recv::<Up>(peers.with(r as usize)?).await {
                    Ok(Up::Keys(k)) if k.id == r => keys.push(k),
                    Ok(_) => out(&mut alive, r, &bad("out of turn")),
                    Err(e) => out(&mut alive, r, &e),
                }
            }
            if alive.len() < sp.threshold {
                return Err(bad(format!(
                    "round {round}: {} clients, {} needed",
                    alive.len(),
                    sp.threshold
                )));
            }
            for r in alive.clone().into_iter().filter(|r| *r != 0) {
                if let Err(e) = send(peers.with(r as usize)?, &Down::Keys(keys.clone())).await {
                    out(&mut alive, r, &e);
                }
            }
            let mut sealed = me.share(&keys)?;
            for r in alive.clone().into_iter().filter(|r| *r != 0) {
                match recv::<Up>(peers.with(r as usize)?).await {
                    Ok(Up::Shares(s)) if s.iter().all(|x| x.from == r) => sealed.extend(s),
                    Ok(_) => out(&mut alive, r, &bad("out of turn")),
                    Err(e) => out(&mut alive, r, &e),
                }
            }
            for r in alive.clone().into_iter().filter(|r| *r != 0) {
                let mine: Vec<Sealed> = sealed.iter().filter(|s| s.to == r).cloned().collect();
                if let Err(e) = send(peers.with(r as usize)?, &Down::Shares(mine)).await {
                    out(&mut alive, r, &e);
                }
            }
            // Our own update, then the others'.
            let local = train_model(p, &w, train);
            let own: Vec<Sealed> = sealed.iter().filter(|s| s.to == 0).cloned().collect();
            let mut masked = BTreeMap::new();
            masked.insert(
                0u32,
                me.masked(&own, &contribution(&w, &local, train.0.len())?)?,
            );
            for r in alive.clone().into_iter().filter(|r| *r != 0) {
                match recv::<Up>(peers.with(r as usize)?).await {
                    Ok(Up::Masked(y)) if y.len() == sp.dim => {
                        masked.insert(r, y);
                    }
                    Ok(_) => out(&mut alive, r, &bad("a masked update of the wrong shape")),
                    Err(e) => out(&mut alive, r, &e),
                }
            }
            let survivors: Vec<u32> = masked.keys().copied().collect();
            let mut answers = vec![me.unmask(&survivors)?];
            for r in survivors.iter().copied().filter(|r| *r != 0) {
                let got = match send(peers.with(r as usize)?, &Down::Survivors(survivors.clone()))
                    .await
                {
                    Ok(()) => recv::<Up>(peers.with(r as usize)?).await,
                    Err(e) => Err(e),
                };
                match got {
                    Ok(Up::Unmask(u)) if u.id == r => answers.push(u),
                    Ok(_) => out(&mut alive, r, &bad("out of turn")),
                    Err(e) => out(&mut alive, r, &e),
                }
            }
            let sum = aggregate(&sp, &keys, &masked, &answers)?;
            let total = sum[dim].decode(FRAC);
            if total <= 0.0 {
                return Err(bad("a round without training rows"));
            }
            for (wj, s) in w.iter_mut().zip(&sum[..dim]) {
                *wj += s.decode(FRAC) / total;
            }
            rounds.push(FlRound {
                round,
                participants: survivors,
                model_commitment: commit(&w),
            });
        }
        for r in alive.into_iter().filter(|r| *r != 0) {
            let _ = send(peers.with(r as usize)?, &Down::Done).await;
        }
        let acc = model_accuracy(p, &w, test);
        Ok(Some(model_of(p, w, rounds, acc)))
    }

    async fn client(peers: &mut Peers, p: &FlParams, train: &Rows) -> Result<(), PrivacyError> {
        let me = peers.me();
        let n = peers.len();
        let dim = size(p, p.features.len() + 1);
        let s = peers.with(0)?;
        loop {
            let (round, w) = match recv::<Down>(s).await? {
                Down::Model { round, weights, .. } if weights.len() == dim => (round, weights),
                Down::Done => return Ok(()),
                _ => return Err(bad("out of turn")),
            };
            let sp = SecAggParams {
                round: round_tag(&p.job, round),
                clients: n,
                threshold: p.min_clients.max(n / 2 + 1),
                neighbours: 2 * (n as f64).log2().ceil() as usize,
                dim: dim + 1,
            };
            let (mut c, keys) = Client::new(sp, me)?;
            send(s, &Up::Keys(keys)).await?;
            let Down::Keys(all) = recv::<Down>(s).await? else {
                return Err(bad("out of turn"));
            };
            send(s, &Up::Shares(c.share(&all)?)).await?;
            let Down::Shares(mine) = recv::<Down>(s).await? else {
                return Err(bad("out of turn"));
            };
            let local = train_local(&w, train, p.local_epochs, p.learning_rate, p.batch);
            send(
                s,
                &Up::Masked(c.masked(&mine, &contribution(&w, &local, train.0.len())?)?),
            )
            .await?;
            let Down::Survivors(alive) = recv::<Down>(s).await? else {
                return Err(bad("out of turn"));
            };
            send(s, &Up::Unmask(c.unmask(&alive)?)).await?;
        }
    }
}

#[async_trait]
impl PrivacyProtocol for Federated {
    type Params = FlParams;
    type Input = FlInput;
    type Output = Option<FlModel>;

    fn id(&self) -> &'static str {
        "fl"
    }

    fn roles(&self) -> &'static [&'static str] {
        &["aggregator", "client"]
    }

    async fn run(
        &self,
        role: usize,
        peers: &mut Peers,
        p: &FlParams,
        input: FlInput,
    ) -> Result<Ran<Option<FlModel>>, PrivacyError> {
        if p.rounds == 0 || p.features.is_empty() || peers.len() < 3 {
            return Err(bad(
                "fl needs three parties at least, a round and a feature",
            ));
        }
        let (train, test) = rows(p, &input)?;
        let out = if role == 0 {
            Self::aggregator(peers, p, &train, &test).await?
        } else {
            Self::client(peers, p, &train).await?;
            None
        };
        Ok(Ran::of(out, peers))
    }

    /// FedAvg without masking and without dropouts: the same rounds,
    /// local training and averaging in the clear (role 0's output).
    fn reference(&self, p: &FlParams, inputs: Vec<FlInput>) -> Vec<Option<FlModel>> {
        let data: Vec<(Rows, Rows)> = inputs.iter().filter_map(|i| rows(p, i).ok()).collect();
        let k = p.features.len() + 1;
        let mut w = initial_model(p, k);
        let mut rounds = Vec::new();
        for round in 1..=p.rounds {
            let mut sum = vec![0.0; w.len()];
            let mut total = 0.0;
            for (train, _) in &data {
                let local = train_model(p, &w, train);
                for (s, (a, b)) in sum.iter_mut().zip(local.iter().zip(&w)) {
                    *s += (a - b) * train.0.len() as f64;
                }
                total += train.0.len() as f64;
            }
            for (wj, s) in w.iter_mut().zip(&sum) {
                *wj += s / total;
            }
            rounds.push(FlRound {
                round,
                participants: (0..data.len() as u32).collect(),
                model_commitment: commit(&w),
            });
        }
        let mut out = vec![None; inputs.len()];
        let acc = data.first().and_then(|d| model_accuracy(p, &w, &d.1));
        out[0] = Some(model_of(p, w, rounds, acc));
        out
    }
}
