//! `stats`: joint statistics over columns held by three parties, on the
//! [`crate::mpc`] engine, revealed only to role 0 (the job's receiving
//! agent, which serves them to the job's output account).
//!
//! 1. **Alignment.** Each party sorts its rows by the key column (trimmed)
//!    and sends the others a hash of the job's tag and its sorted keys;
//!    the three must hold the same entities (vertical data over the same
//!    rows), else the run stops (`bad_message`, "key sets differ") having
//!    revealed only that.
//! 2. **Input.** Each column's owner secret-shares it, in key order, as
//!    fixed point in Z_2^128 (`frac` fractional bits, 20 by default).
//! 3. **Sums.** Per column the sum (local) and the sum of squares, and per
//!    pair the sum of products (dot products: one word each); no
//!    truncation is needed, so the sums are exact for the encoded values.
//! 4. **Reveal** of those sums to role 0 only, which derives the count,
//!    sum, mean, population variance and Pearson correlation. These are
//!    functions of the revealed sums and the sums of them, so role 0
//!    learns the outputs and nothing else.
//!
//! **Security**: that of the engine (semi-honest, honest majority).
//! What leaks: the row count, and that the key sets are equal. Min, max
//! and histograms need secure comparison, which the engine does not have
//! yet.

use crate::mpc::{Ring, Rss3, Shared};
use crate::protocol::{Peers, PrivacyProtocol, Ran};
use crate::PrivacyError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A `stats` job's parameters (the same for every party).
#[derive(Clone, Debug)]
pub struct StatsParams {
    /// The job's tag.
    pub job: [u8; 32],
    /// Fractional bits.
    pub frac: u32,
    /// Every column, with the role that holds it, in a fixed order.
    pub columns: Vec<(String, usize)>,
    /// The pairs whose correlation is wanted.
    pub corr: Vec<(String, String)>,
}

/// What one party brings: its rows' keys and its columns' values.
#[derive(Clone, Debug, Default)]
pub struct StatsInput {
    /// The key of each row.
    pub keys: Vec<String>,
    /// This party's columns, by name, one value per row.
    pub columns: BTreeMap<String, Vec<f64>>,
}

/// The statistics role 0 learns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsResult {
    /// Rows.
    pub count: u64,
    /// Sum per column.
    pub sum: BTreeMap<String, f64>,
    /// Mean per column.
    pub mean: BTreeMap<String, f64>,
    /// Population variance per column.
    pub variance: BTreeMap<String, f64>,
    /// Pearson correlation per pair, keyed `A,B`.
    pub corr: BTreeMap<String, f64>,
}

/// The protocol.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats;

fn bad(m: impl Into<String>) -> PrivacyError {
    PrivacyError::BadMessage(m.into())
}

/// The statistics from the sums, in the clear.
fn finish(p: &StatsParams, n: u64, s1: &[f64], s2: &[f64], sab: &[f64]) -> StatsResult {
    let nf = n.max(1) as f64;
    let mut r = StatsResult {
        count: n,
        ..Default::default()
    };
    for (k, (name, _)) in p.columns.iter().enumerate() {
        let mean = s1[k] / nf;
        r.sum.insert(name.clone(), s1[k]);
        r.mean.insert(name.clone(), mean);
        r.variance
            .insert(name.clone(), (s2[k] / nf - mean * mean).max(0.0));
    }
    for (k, (a, b)) in p.corr.iter().enumerate() {
        let (ma, mb) = (r.mean[a], r.mean[b]);
        let (va, vb) = (r.variance[a], r.variance[b]);
        let cov = sab[k] / nf - ma * mb;
        let d = (va * vb).sqrt();
        r.corr
            .insert(format!("{a},{b}"), if d > 0.0 { cov / d } else { 0.0 });
    }
    r
}

impl Stats {
    fn check(p: &StatsParams) -> Result<(), PrivacyError> {
        for (a, b) in &p.corr {
            for c in [a, b] {
                if !p.columns.iter().any(|(n, _)| n == c) {
                    return Err(bad(format!("correlation of an unknown column {c}")));
                }
            }
        }
        if p.columns.iter().any(|(_, r)| *r > 2) || p.frac > 40 {
            return Err(bad(
                "columns belong to roles 0-2, at most 40 fractional bits",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl PrivacyProtocol for Stats {
    type Params = StatsParams;
    type Input = StatsInput;
    type Output = Option<StatsResult>;

    fn id(&self) -> &'static str {
        "stats"
    }

    fn roles(&self) -> &'static [&'static str] {
        &["receiver", "party", "party"]
    }

    async fn run(
        &self,
        role: usize,
        peers: &mut Peers,
        p: &StatsParams,
        input: StatsInput,
    ) -> Result<Ran<Option<StatsResult>>, PrivacyError> {
        Self::check(p)?;
        if peers.me() != role {
            return Err(bad(format!(
                "sessions of role {}, run as {role}",
                peers.me()
            )));
        }
        // 1. The same entities everywhere, in the same order.
        let (keys, idx) = crate::align::align(peers, p.job, input.keys).await?;
        let n = keys.len();
        let f = p.frac;

        // 2. Each column shared by its owner, in key order.
        let mut e = Rss3::setup(peers, f).await?;
        let mut cols: BTreeMap<String, Shared<u128>> = BTreeMap::new();
        for (name, owner) in &p.columns {
            let values = if *owner == role {
                let v = input
                    .columns
                    .get(name)
                    .ok_or_else(|| bad(format!("this party holds no column {name}")))?;
                if v.len() != n {
                    return Err(bad(format!(
                        "column {name} has {} values for {n} rows",
                        v.len()
                    )));
                }
                Some(
                    idx.iter()
                        .map(|&i| u128::encode(v[i], f))
                        .collect::<Vec<u128>>(),
                )
            } else {
                None
            };
            let s = e.input(*owner, values.as_deref(), n).await?;
            cols.insert(name.clone(), s);
        }

        // 3. Sums (local) and every dot product in one round.
        let s1: Vec<Shared<u128>> = p.columns.iter().map(|(c, _)| cols[c].sum()).collect();
        let mut pairs: Vec<(&Shared<u128>, &Shared<u128>)> = p
            .columns
            .iter()
            .map(|(c, _)| (&cols[c], &cols[c]))
            .collect();
        for (a, b) in &p.corr {
            pairs.push((&cols[a], &cols[b]));
        }
        let dots = e.dots(&pairs).await?;

        // 4. The sums to role 0 only.
        let mut all: Vec<&Shared<u128>> = s1.iter().collect();
        all.push(&dots);
        let revealed = e.reveal_to(0, &Shared::concat(&all)).await?;
        let out = revealed.map(|v| {
            let k = p.columns.len();
            let s1: Vec<f64> = v[..k].iter().map(|x| x.decode(f)).collect();
            let s2: Vec<f64> = v[k..2 * k].iter().map(|x| x.decode(2 * f)).collect();
            let sab: Vec<f64> = v[2 * k..].iter().map(|x| x.decode(2 * f)).collect();
            finish(p, n as u64, &s1, &s2, &sab)
        });
        Ok(Ran::of(out, peers))
    }

    fn reference(&self, p: &StatsParams, inputs: Vec<StatsInput>) -> Vec<Option<StatsResult>> {
        // Join every party's columns on the key, in the clear.
        let mut by_key: Vec<BTreeMap<String, usize>> = Vec::new();
        for i in &inputs {
            by_key.push(
                i.keys
                    .iter()
                    .enumerate()
                    .map(|(r, k)| (k.trim().to_string(), r))
                    .collect(),
            );
        }
        let keys: Vec<String> = by_key[0].keys().cloned().collect();
        let value = |c: &str, owner: usize, k: &str| inputs[owner].columns[c][by_key[owner][k]];
        let col = |c: &str| {
            let owner = p.columns.iter().find(|(n, _)| n == c).map_or(0, |x| x.1);
            keys.iter()
                .map(|k| value(c, owner, k))
                .collect::<Vec<f64>>()
        };
        let s1: Vec<f64> = p.columns.iter().map(|(c, _)| col(c).iter().sum()).collect();
        let s2: Vec<f64> = p
            .columns
            .iter()
            .map(|(c, _)| col(c).iter().map(|x| x * x).sum())
            .collect();
        let sab: Vec<f64> = p
            .corr
            .iter()
            .map(|(a, b)| col(a).iter().zip(col(b)).map(|(x, y)| x * y).sum())
            .collect();
        let mut out = vec![None; inputs.len()];
        out[0] = Some(finish(p, keys.len() as u64, &s1, &s2, &sab));
        out
    }
}
