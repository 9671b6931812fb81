//! `tongtian bench stats`: three parties compute the mean, variance and
//! pairwise correlations of one column each (N rows, the same keys in a
//! different order at each party) over real Noise sessions on 127.0.0.1,
//! beside the same statistics in the clear.

use anyhow::{bail, Result};
use clap::Args;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;
use tongtian_privacy::protocol::loopback_mesh;
use tongtian_privacy::stats::{Stats, StatsInput, StatsParams};
use tongtian_privacy::{PrivacyProtocol, SessionConfig};

/// `tongtian bench stats` options.
#[derive(Args, Debug)]
pub struct StatsBenchArgs {
    /// Rows.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: usize,
    /// Parties (the engine is three-party).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=3))]
    pub parties: u64,
}

/// What the benchmark prints.
#[derive(Debug, Serialize)]
pub struct StatsBenchReport {
    /// Always `stats`.
    pub bench: &'static str,
    /// Rows.
    pub rows: usize,
    /// Parties.
    pub parties: u64,
    /// From the first message to role 0's result (alignment, sharing,
    /// sums, reveal), seconds.
    pub seconds: f64,
    /// Bytes all parties sent.
    pub bytes_sent: u64,
    /// The same statistics computed in the clear (a join on the key and
    /// the sums), seconds.
    pub plaintext_seconds: f64,
    /// `seconds / plaintext_seconds`.
    pub ratio: f64,
    /// The largest difference from the clear result over every mean,
    /// variance (relative) and correlation.
    pub max_error: f64,
    /// What role 0 learned.
    pub result: tongtian_privacy::stats::StatsResult,
}

/// One-line summary.
pub fn summary(r: &StatsBenchReport) -> String {
    format!(
        "stats over {} rows, {} parties: {:.2} s, {:.1} MB sent; in the clear {:.2} s (x{:.1}); max error {:.1e}",
        r.rows,
        r.parties,
        r.seconds,
        r.bytes_sent as f64 / 1e6,
        r.plaintext_seconds,
        r.ratio,
        r.max_error
    )
}

/// The baseline: the same statistics in the clear, as one would compute
/// them with the data pooled (a hash join on the key, then one pass of
/// sums); returns corr(a, b) for a check.
fn plain_stats(inputs: &[StatsInput]) -> f64 {
    use std::collections::HashMap;
    fn index(i: &StatsInput) -> HashMap<&str, usize> {
        i.keys
            .iter()
            .enumerate()
            .map(|(r, k)| (k.as_str(), r))
            .collect()
    }
    let (i1, i2) = (index(&inputs[1]), index(&inputs[2]));
    let (a, b, c) = (
        &inputs[0].columns["a"],
        &inputs[1].columns["b"],
        &inputs[2].columns["c"],
    );
    let mut s = [0f64; 9];
    for (r, k) in inputs[0].keys.iter().enumerate() {
        let (x, y, z) = (a[r], b[i1[k.as_str()]], c[i2[k.as_str()]]);
        for (j, v) in [x, y, z, x * x, y * y, z * z, x * y, y * z, x * z]
            .iter()
            .enumerate()
        {
            s[j] += v;
        }
    }
    let n = inputs[0].keys.len() as f64;
    let (ma, mb) = (s[0] / n, s[1] / n);
    let (va, vb) = (s[3] / n - ma * ma, s[4] / n - mb * mb);
    (s[6] / n - ma * mb) / (va * vb).sqrt()
}

/// Run it.
pub async fn run(args: StatsBenchArgs) -> Result<StatsBenchReport> {
    let n = args.rows;
    let mut rng = rand::thread_rng();
    let a: Vec<f64> = (0..n).map(|_| rng.gen_range(-1000.0..1000.0)).collect();
    let b: Vec<f64> = a
        .iter()
        .map(|x| 0.3 * x + rng.gen_range(-500.0..500.0))
        .collect();
    let c: Vec<f64> = (0..n).map(|_| rng.gen_range(0.0..1.0)).collect();
    let keys: Vec<String> = (0..n).map(|i| format!("row-{i:09}")).collect();
    let mut inputs = Vec::new();
    for (name, col) in [("a", &a), ("b", &b), ("c", &c)] {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        inputs.push(StatsInput {
            keys: order.iter().map(|&i| keys[i].clone()).collect(),
            columns: BTreeMap::from([(name.to_string(), order.iter().map(|&i| col[i]).collect())]),
        });
    }
    let job = [0x51u8; 32];
    let params = StatsParams {
        job,
        frac: 20,
        columns: vec![("a".into(), 0), ("b".into(), 1), ("c".into(), 2)],
        corr: vec![
            ("a".into(), "b".into()),
            ("b".into(), "c".into()),
            ("a".into(), "c".into()),
        ],
        extremes: false,
        edges: vec![],
    };
    let want = Stats.reference(&params, inputs.clone())[0]
        .clone()
        .unwrap_or_default();
    let started = Instant::now();
    let plain = plain_stats(&inputs);
    let plaintext_seconds = started.elapsed().as_secs_f64();
    if (plain - want.corr["a,b"]).abs() > 1e-9 {
        bail!("the plaintext baseline disagrees with the reference");
    }

    let peers = loopback_mesh(3, job, SessionConfig::default()).await?;
    let started = Instant::now();
    let mut handles = Vec::new();
    for (mut peer, input) in peers.into_iter().zip(inputs) {
        let p = params.clone();
        handles.push(tokio::spawn(async move {
            let role = peer.me();
            Stats.run(role, &mut peer, &p, input).await
        }));
    }
    let mut ran = Vec::new();
    for h in handles {
        ran.push(h.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    let Some(got) = ran[0].output.clone() else {
        bail!("role 0 learned nothing");
    };
    let mut max_error = 0f64;
    for (k, m) in &want.mean {
        max_error = max_error.max((got.mean[k] - m).abs() / m.abs().max(1.0));
        let v = want.variance[k];
        max_error = max_error.max((got.variance[k] - v).abs() / v.max(1.0));
    }
    for (k, r) in &want.corr {
        max_error = max_error.max((got.corr[k] - r).abs());
    }
    Ok(StatsBenchReport {
        bench: "stats",
        rows: n,
        parties: args.parties,
        seconds,
        bytes_sent: ran.iter().map(|r| r.bytes_sent).sum(),
        plaintext_seconds,
        ratio: seconds / plaintext_seconds.max(1e-9),
        max_error,
        result: got,
    })
}
