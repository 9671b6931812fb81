//! `lr-vertical`: logistic regression where three parties hold different
//! feature columns of the same entities and role 0 holds the label, on
//! the [`crate::mpc`] engine (fixed point in Z_2^128).
//!
//! 1. **Alignment** by the key column ([`crate::align`]); a row is held
//!    out for testing when a hash of the job and its key falls below the
//!    holdout fraction, so every party splits alike without talking.
//! 2. **Scaling.** Each owner standardises its own columns with the mean
//!    and deviation of its training rows (its own data, in the clear).
//! 3. **Sharing.** Every feature column, a column of ones (the bias) and
//!    the label are secret-shared.
//! 4. **Training.** Mini-batch gradient descent, the batches in an order
//!    every party derives from the job and the epoch: `z = X_b w`,
//!    `p = sigmoid(z)` (by default SecureML's clipped line, by secure
//!    comparison; see [`Sigmoid`]), `w -= (rate / |b|) X_bᵀ (p - y_b)`,
//!    each product one round.
//! 5. **Outputs, to role 0 only:** the weights, each owner's scaling, and
//!    the accuracy on the held-out rows. For that, the held-out logits are
//!    multiplied by a secret random factor in [1, 8) (the product of one
//!    from each party) and revealed to role 0, which compares their signs
//!    with its labels.
//!
//! **Security**: that of the engine (semi-honest, honest majority). What
//! leaks, to role 0: the model, each feature's training mean and
//! deviation, and, on the held-out rows, the predicted class and the
//! ratios between logits (the common factor hides their scale). The label
//! must be in role 0's asset (it sees its own labels only).

use crate::mpc::{Ring, Rss3, Shared};
use crate::protocol::{Peers, PrivacyProtocol, Ran};
use crate::PrivacyError;
use async_trait::async_trait;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// An `lr-vertical` job's parameters.
#[derive(Clone, Debug)]
pub struct LrParams {
    /// The job's tag.
    pub job: [u8; 32],
    /// Fractional bits.
    pub frac: u32,
    /// Feature columns, each with the role that holds it.
    pub features: Vec<(String, usize)>,
    /// The label column (0 or 1), held by role 0.
    pub label: String,
    /// Passes over the training rows.
    pub epochs: u32,
    /// The step size.
    pub learning_rate: f64,
    /// Rows per mini-batch.
    pub batch: usize,
    /// The fraction of rows held out for testing.
    pub holdout: f64,
    /// The sigmoid's approximation in training.
    pub sigmoid: Sigmoid,
}

/// How training approximates the logistic function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sigmoid {
    /// `0.5 + z / 8`, its first-order Taylor expansion: no saturation, but
    /// no reversal either, so training stays convex and stable; one
    /// division, no comparison (cheapest; less accurate).
    Linear,
    /// The engine's cubic (closer on [-8, 8], but it turns back beyond, so
    /// large logits push the wrong way: for short training only).
    Cubic,
    /// SecureML's clipped line: 0 below -1/2, `z + 1/2` between, 1 above
    /// (two secure comparisons per row and step). The default.
    #[default]
    Clipped,
}

/// What one party brings.
#[derive(Clone, Debug, Default)]
pub struct LrInput {
    /// The key of each row.
    pub keys: Vec<String>,
    /// This party's columns (features, and the label at role 0).
    pub columns: BTreeMap<String, Vec<f64>>,
}

/// The trained model, as role 0 learns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrModel {
    /// Feature names, in weight order.
    pub features: Vec<String>,
    /// Weights on the standardised features.
    pub weights: Vec<f64>,
    /// The bias.
    pub bias: f64,
    /// Each feature's training mean and deviation (`x' = (x - m) / s`).
    pub scaling: Vec<(f64, f64)>,
    /// Training rows.
    pub train_rows: usize,
    /// Held-out rows.
    pub test_rows: usize,
    /// Accuracy on the held-out rows (`None` without any).
    pub accuracy: Option<f64>,
}

/// The protocol.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogisticRegression;

fn bad(m: impl Into<String>) -> PrivacyError {
    PrivacyError::BadMessage(m.into())
}

/// Whether the row keyed `key` is held out.
pub fn held_out(job: &[u8; 32], key: &str, fraction: f64) -> bool {
    let d = Sha256::new()
        .chain_update(b"tongtian/holdout/v1")
        .chain_update(job)
        .chain_update(key.trim().as_bytes())
        .finalize();
    let x = u64::from_le_bytes(d[..8].try_into().expect("8 bytes"));
    (x as f64 / u64::MAX as f64) < fraction
}

/// The batch order of `epoch`: the same at every party.
fn batch_order(job: &[u8; 32], epoch: u32, n: usize) -> Vec<usize> {
    let seed: [u8; 32] = Sha256::new()
        .chain_update(b"tongtian/lr-batches/v1")
        .chain_update(job)
        .chain_update(epoch.to_le_bytes())
        .finalize()
        .into();
    let mut rng = rand::rngs::StdRng::from_seed(seed);
    let mut order: Vec<usize> = (0..n).collect();
    rand::seq::SliceRandom::shuffle(&mut order[..], &mut rng);
    order
}

/// Mean and deviation of `v` (deviation 1 for a constant column).
fn scaling(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let s = (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n).sqrt();
    (m, if s > 1e-12 { s } else { 1.0 })
}

/// Rows `rows` of the row-major `n × k` matrix `x`.
fn take_rows<R: Ring>(x: &Shared<R>, k: usize, rows: &[usize]) -> Shared<R> {
    let mut a = Vec::with_capacity(rows.len() * k);
    let mut b = Vec::with_capacity(rows.len() * k);
    for &r in rows {
        a.extend_from_slice(&x.a[r * k..(r + 1) * k]);
        b.extend_from_slice(&x.b[r * k..(r + 1) * k]);
    }
    Shared { a, b }
}

fn transpose<R: Ring>(x: &Shared<R>, rows: usize, cols: usize) -> Shared<R> {
    let t = |v: &[R]| {
        let mut out = vec![R::default(); v.len()];
        for r in 0..rows {
            for c in 0..cols {
                out[c * rows + r] = v[r * cols + c];
            }
        }
        out
    };
    Shared {
        a: t(&x.a),
        b: t(&x.b),
    }
}

/// Columns (each `n` long) side by side as a row-major `n × k` matrix.
fn side_by_side<R: Ring>(cols: &[Shared<R>], n: usize) -> Shared<R> {
    let k = cols.len();
    let mut a = vec![R::default(); n * k];
    let mut b = vec![R::default(); n * k];
    for (c, col) in cols.iter().enumerate() {
        for r in 0..n {
            a[r * k + c] = col.a[r];
            b[r * k + c] = col.b[r];
        }
    }
    Shared { a, b }
}

impl LogisticRegression {
    fn check(p: &LrParams) -> Result<(), PrivacyError> {
        if p.features.is_empty() || p.features.iter().any(|(_, r)| *r > 2) {
            return Err(bad(
                "features belong to roles 0-2, and there is one at least",
            ));
        }
        if !(0.0..0.9).contains(&p.holdout) || p.batch == 0 || p.epochs == 0 || p.frac > 24 {
            return Err(bad(
                "holdout in [0, 0.9), a batch, an epoch, at most 24 fractional bits",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl PrivacyProtocol for LogisticRegression {
    type Params = LrParams;
    type Input = LrInput;
    type Output = Option<LrModel>;

    fn id(&self) -> &'static str {
        "lr-vertical"
    }

    fn roles(&self) -> &'static [&'static str] {
        &["label holder", "party", "party"]
    }

    async fn run(
        &self,
        role: usize,
        peers: &mut Peers,
        p: &LrParams,
        input: LrInput,
    ) -> Result<Ran<Option<LrModel>>, PrivacyError> {
        Self::check(p)?;
        let (keys, idx) = crate::align::align(peers, p.job, input.keys).await?;
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for &i in &idx {
            if held_out(&p.job, &keys[i], p.holdout) {
                test.push(i);
            } else {
                train.push(i);
            }
        }
        let (n, m, f) = (train.len(), test.len(), p.frac);
        if n == 0 {
            return Err(bad("no training rows"));
        }
        let column = |name: &str| {
            input
                .columns
                .get(name)
                .ok_or_else(|| bad(format!("this party holds no column {name}")))
        };
        // This party's features, standardised on its training rows.
        let mut mine: BTreeMap<String, (Vec<f64>, Vec<f64>, (f64, f64))> = BTreeMap::new();
        for (name, owner) in &p.features {
            if *owner == role {
                let v = column(name)?;
                if v.len() != keys.len() {
                    return Err(bad(format!("column {name} has the wrong length")));
                }
                let tr: Vec<f64> = train.iter().map(|&i| v[i]).collect();
                let sc = scaling(&tr);
                let z = |rows: &[usize]| rows.iter().map(|&i| (v[i] - sc.0) / sc.1).collect();
                mine.insert(name.clone(), (z(&train), z(&test), sc));
            }
        }
        let labels = if role == 0 {
            Some(column(&p.label)?.clone())
        } else {
            None
        };
        if let Some(l) = &labels {
            if l.iter().any(|y| *y != 0.0 && *y != 1.0) || l.len() != keys.len() {
                return Err(bad("labels are 0 or 1, one per row"));
            }
        }

        let mut e = Rss3::setup(peers, f).await?;
        let k = p.features.len() + 1;
        // Shares: train and test columns, the bias, the labels.
        let mut train_cols = Vec::with_capacity(k);
        let mut test_cols = Vec::with_capacity(k);
        for (name, owner) in &p.features {
            let (tr, te) = match mine.get(name) {
                Some((tr, te, _)) => (
                    Some(tr.iter().map(|x| u128::encode(*x, f)).collect::<Vec<_>>()),
                    Some(te.iter().map(|x| u128::encode(*x, f)).collect::<Vec<_>>()),
                ),
                None => (None, None),
            };
            train_cols.push(e.input(*owner, tr.as_deref(), n).await?);
            test_cols.push(e.input(*owner, te.as_deref(), m).await?);
        }
        train_cols.push(e.constant::<u128>(1.0, n));
        test_cols.push(e.constant::<u128>(1.0, m));
        let y_train = labels.as_ref().map(|l| {
            train
                .iter()
                .map(|&i| u128::encode(l[i], f))
                .collect::<Vec<_>>()
        });
        let y = e.input(0, y_train.as_deref(), n).await?;
        let x = side_by_side(&train_cols, n);
        let x_test = side_by_side(&test_cols, m);

        // Training.
        let mut w = e.constant::<u128>(0.0, k);
        for epoch in 0..p.epochs {
            let order = batch_order(&p.job, epoch, n);
            for rows in order.chunks(p.batch) {
                let b = rows.len();
                let xb = take_rows(&x, k, rows);
                let yb = Shared {
                    a: rows.iter().map(|&r| y.a[r]).collect(),
                    b: rows.iter().map(|&r| y.b[r]).collect(),
                };
                let z = e.matmul(&xb, &w, b, k, 1).await?;
                let pr = match p.sigmoid {
                    Sigmoid::Linear => e
                        .div_public(&z, 1u64 << (f + 3))
                        .await?
                        .add(&e.constant(0.5, b)),
                    Sigmoid::Cubic => {
                        let z = e.trunc(&z).await?;
                        e.sigmoid(&z).await?
                    }
                    Sigmoid::Clipped => {
                        let z = e.trunc(&z).await?;
                        e.sigmoid_clipped(&z).await?
                    }
                };
                let err = pr.sub(&yb);
                let g = e.matmul(&transpose(&xb, b, k), &err, k, b, 1).await?;
                // (rate / b) g: the constant at 2f bits, one division.
                let step = g.scale(u128::encode(p.learning_rate / b as f64, 2 * f));
                let step = e.div_public(&step, 1u64 << (3 * f).min(63)).await?;
                let step = if 3 * f > 63 {
                    e.div_public(&step, 1u64 << (3 * f - 63)).await?
                } else {
                    step
                };
                w = w.sub(&step);
            }
        }

        // Held-out logits times a secret factor in [1, 8).
        let mut r_mine = [0u128; 1];
        r_mine[0] = u128::encode(rand::thread_rng().gen_range(1.0..2.0), f);
        let mut r = e.input(0, (role == 0).then_some(&r_mine[..]), 1).await?;
        for owner in 1..3 {
            let ri = e
                .input(owner, (role == owner).then_some(&r_mine[..]), 1)
                .await?;
            r = e.mul_fixed(&r, &ri).await?;
        }
        let logits = if m > 0 {
            let z = e.matmul(&x_test, &w, m, k, 1).await?;
            let z = e.trunc(&z).await?;
            let rs = Shared {
                a: vec![r.a[0]; m],
                b: vec![r.b[0]; m],
            };
            e.mul(&z, &rs).await?
        } else {
            Shared {
                a: vec![],
                b: vec![],
            }
        };
        let masked = e.reveal_to(0, &logits).await?;
        let weights = e.reveal_to(0, &w).await?;

        // The owners' scaling to role 0.
        let my_scaling: Vec<(String, f64, f64)> = mine
            .iter()
            .map(|(name, (_, _, (mu, sd)))| (name.clone(), *mu, *sd))
            .collect();
        let mut all_scaling: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        if role == 0 {
            for (name, mu, sd) in my_scaling {
                all_scaling.insert(name, (mu, sd));
            }
            for from in 1..3 {
                let b = peers.with(from)?.recv().await?;
                let theirs: Vec<(String, f64, f64)> =
                    borsh::from_slice(&b).map_err(|e| bad(format!("scaling: {e}")))?;
                for (name, mu, sd) in theirs {
                    if p.features.iter().any(|(f, o)| *f == name && *o == from) {
                        all_scaling.insert(name, (mu, sd));
                    }
                }
            }
        } else {
            let b = borsh::to_vec(&my_scaling).map_err(|e| bad(e.to_string()))?;
            peers.with(0)?.send(&b).await?;
        }

        let out = match (weights, masked, labels) {
            (Some(w), Some(z), Some(l)) => {
                let correct = test
                    .iter()
                    .zip(&z)
                    .filter(|(&i, zi)| ((zi.decode(2 * f) > 0.0) as u8 as f64) == l[i])
                    .count();
                Some(LrModel {
                    features: p.features.iter().map(|(n, _)| n.clone()).collect(),
                    weights: w[..k - 1].iter().map(|x| x.decode(f)).collect(),
                    bias: w[k - 1].decode(f),
                    scaling: p
                        .features
                        .iter()
                        .map(|(n, _)| all_scaling.get(n).copied().unwrap_or((0.0, 1.0)))
                        .collect(),
                    train_rows: n,
                    test_rows: m,
                    accuracy: (m > 0).then(|| correct as f64 / m as f64),
                })
            }
            _ => None,
        };
        Ok(Ran::of(out, peers))
    }

    /// Central training on the pooled rows with the same split, scaling,
    /// batches and steps (and the true logistic function).
    fn reference(&self, p: &LrParams, inputs: Vec<LrInput>) -> Vec<Option<LrModel>> {
        let mut out = vec![None; inputs.len()];
        let index: Vec<BTreeMap<String, usize>> = inputs
            .iter()
            .map(|i| {
                i.keys
                    .iter()
                    .enumerate()
                    .map(|(r, k)| (k.trim().to_string(), r))
                    .collect()
            })
            .collect();
        let keys: Vec<String> = index[0].keys().cloned().collect();
        let value = |c: &str, owner: usize, k: &str| inputs[owner].columns[c][index[owner][k]];
        let (train, test): (Vec<&String>, Vec<&String>) =
            keys.iter().partition(|k| !held_out(&p.job, k, p.holdout));
        let k = p.features.len();
        let mut scalings = Vec::new();
        let mut xtr = vec![vec![0.0; k + 1]; train.len()];
        let mut xte = vec![vec![0.0; k + 1]; test.len()];
        for (c, (name, owner)) in p.features.iter().enumerate() {
            let tr: Vec<f64> = train.iter().map(|key| value(name, *owner, key)).collect();
            let sc = scaling(&tr);
            scalings.push(sc);
            for (r, key) in train.iter().enumerate() {
                xtr[r][c] = (value(name, *owner, key) - sc.0) / sc.1;
            }
            for (r, key) in test.iter().enumerate() {
                xte[r][c] = (value(name, *owner, key) - sc.0) / sc.1;
            }
        }
        for row in xtr.iter_mut().chain(xte.iter_mut()) {
            row[k] = 1.0;
        }
        let ytr: Vec<f64> = train.iter().map(|key| value(&p.label, 0, key)).collect();
        let yte: Vec<f64> = test.iter().map(|key| value(&p.label, 0, key)).collect();
        let mut w = vec![0.0; k + 1];
        for epoch in 0..p.epochs {
            for rows in batch_order(&p.job, epoch, train.len()).chunks(p.batch) {
                let mut g = vec![0.0; k + 1];
                for &r in rows {
                    let z: f64 = xtr[r].iter().zip(&w).map(|(a, b)| a * b).sum();
                    let e = 1.0 / (1.0 + (-z).exp()) - ytr[r];
                    for c in 0..=k {
                        g[c] += e * xtr[r][c];
                    }
                }
                for c in 0..=k {
                    w[c] -= p.learning_rate / rows.len() as f64 * g[c];
                }
            }
        }
        let correct = xte
            .iter()
            .zip(&yte)
            .filter(|(x, y)| {
                let z: f64 = x.iter().zip(&w).map(|(a, b)| a * b).sum();
                ((z > 0.0) as u8 as f64) == **y
            })
            .count();
        out[0] = Some(LrModel {
            features: p.features.iter().map(|(n, _)| n.clone()).collect(),
            weights: w[..k].to_vec(),
            bias: w[k],
            scaling: scalings,
            train_rows: train.len(),
            test_rows: test.len(),
            accuracy: (!test.is_empty()).then(|| correct as f64 / test.len() as f64),
        });
        out
    }
}
