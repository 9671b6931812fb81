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
    /// Also each column's minimum and maximum (a tournament of secure
    /// comparisons, log2(rows) layers).
    pub extremes: bool,
    /// Also a histogram of each column over these bin edges (ascending):
    /// the rows in `[e_i, e_{i+1})`, by secure comparison with each edge.
    pub edges: Vec<f64>,
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
    /// Minimum per column (with `extremes`).
    #[serde(default)]
    pub min: BTreeMap<String, f64>,
    /// Maximum per column (with `extremes`).
    #[serde(default)]
    pub max: BTreeMap<String, f64>,
    /// Rows per bin per column (with `edges`).
    #[serde(default)]
    pub histogram: BTreeMap<String, Vec<u64>>,
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
        if p.edges.windows(2).any(|w| w[0] >= w[1]) || p.edges.len() == 1 {
            return Err(bad("bin edges ascend, two at least"));
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
        peers.check_role(role)?;
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
                // Refuse what would wrap: the sum of squares must stay
                // below 2^126 at 2f fractional bits.
                let bound = (126.0 - 2.0 * f as f64 - (n.max(1) as f64).log2()) / 2.0;
                if let Some(x) = v.iter().find(|x| !x.is_finite() || x.abs() >= bound.exp2()) {
                    return Err(bad(format!(
                        "value_out_of_range: {x} in column {name} (|x| must be finite and below 2^{bound:.1})"
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

        // Extremes: a tournament per column, all columns at once.
        let k = p.columns.len();
        let mut extremes = Shared {
            a: vec![],
            b: vec![],
        };
        if p.extremes && n > 0 {
            let (mut lo, mut hi): (Vec<Shared<u128>>, Vec<Shared<u128>>) = p
                .columns
                .iter()
                .map(|(c, _)| (cols[c].clone(), cols[c].clone()))
                .unzip();
            let mut len = n;
            while len > 1 {
                let h = len / 2;
                // Pairs (i, h + i) of every column's lows and highs at once.
                let firsts: Vec<Shared<u128>> =
                    lo.iter().chain(&hi).map(|v| v.slice(0..h)).collect();
                let seconds: Vec<Shared<u128>> =
                    lo.iter().chain(&hi).map(|v| v.slice(h..2 * h)).collect();
                let a = Shared::concat(&firsts.iter().collect::<Vec<_>>());
                let b = Shared::concat(&seconds.iter().collect::<Vec<_>>());
                let d = a.sub(&b);
                let ge = e.non_negative(&d).await?;
                let sd = e.mul(&ge, &d).await?;
                for (j, v) in lo.iter_mut().chain(hi.iter_mut()).enumerate() {
                    let part = sd.slice(j * h..(j + 1) * h);
                    let picked = if j < k {
                        // min = a - [a >= b] (a - b)
                        firsts[j].sub(&part)
                    } else {
                        // max = b + [a >= b] (a - b)
                        seconds[j].add(&part)
                    };
                    let rest = v.slice(2 * h..len);
                    *v = Shared::concat(&[&picked, &rest]);
                }
                len = h + (len - 2 * h);
            }
            let all: Vec<&Shared<u128>> = lo.iter().chain(&hi).collect();
            extremes = Shared::concat(&all);
        }
        // Histograms: [x >= e] for every edge, counted per edge.
        let mut counts = Shared {
            a: vec![],
            b: vec![],
        };
        if !p.edges.is_empty() && n > 0 {
            let mut diffs = Vec::new();
            for (c, _) in &p.columns {
                for edge in &p.edges {
                    diffs.push(cols[c].sub(&e.constant::<u128>(*edge, n)));
                }
            }
            let ge = e
                .non_negative(&Shared::concat(&diffs.iter().collect::<Vec<_>>()))
                .await?;
            let sums: Vec<Shared<u128>> = (0..diffs.len())
                .map(|i| ge.slice(i * n..(i + 1) * n).sum())
                .collect();
            counts = Shared::concat(&sums.iter().collect::<Vec<_>>());
        }

        // 4. The sums to role 0 only.
        let mut all: Vec<&Shared<u128>> = s1.iter().collect();
        all.push(&dots);
        all.push(&extremes);
        all.push(&counts);
        let revealed = e.reveal_to(0, &Shared::concat(&all)).await?;
        let out = revealed.map(|v| {
            let pairs = p.corr.len();
            let s1: Vec<f64> = v[..k].iter().map(|x| x.decode(f)).collect();
            let s2: Vec<f64> = v[k..2 * k].iter().map(|x| x.decode(2 * f)).collect();
            let sab: Vec<f64> = v[2 * k..2 * k + pairs]
                .iter()
                .map(|x| x.decode(2 * f))
                .collect();
            let mut r = finish(p, n as u64, &s1, &s2, &sab);
            let mut at = 2 * k + pairs;
            if p.extremes && n > 0 {
                for (i, (c, _)) in p.columns.iter().enumerate() {
                    r.min.insert(c.clone(), v[at + i].decode(f));
                    r.max.insert(c.clone(), v[at + k + i].decode(f));
                }
                at += 2 * k;
            }
            if !p.edges.is_empty() && n > 0 {
                let m = p.edges.len();
                for (i, (c, _)) in p.columns.iter().enumerate() {
                    let ge: Vec<u64> = v[at + i * m..at + (i + 1) * m]
                        .iter()
                        .map(|x| *x as u64)
                        .collect();
                    r.histogram.insert(
                        c.clone(),
                        ge.windows(2).map(|w| w[0].saturating_sub(w[1])).collect(),
                    );
                }
            }
            r
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
        let mut r = finish(p, keys.len() as u64, &s1, &s2, &sab);
        for (c, _) in &p.columns {
            let v = col(c);
            if p.extremes && !v.is_empty() {
                r.min
                    .insert(c.clone(), v.iter().copied().fold(f64::INFINITY, f64::min));
                r.max.insert(
                    c.clone(),
                    v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                );
            }
            if !p.edges.is_empty() && !v.is_empty() {
                r.histogram.insert(
                    c.clone(),
                    p.edges
                        .windows(2)
                        .map(|w| v.iter().filter(|x| **x >= w[0] && **x < w[1]).count() as u64)
                        .collect(),
                );
            }
        }
        let mut out = vec![None; inputs.len()];
        out[0] = Some(r);
        out
    }
}
