//! `stats` among three parties over real sessions: the statistics role 0
//! learns equal the plaintext reference within fixed-point tolerance (on
//! rows each party holds in its own order, with negative values, zeros
//! and large magnitudes); the others learn nothing; key sets that differ,
//! or a duplicated key, stop the run.

#![allow(clippy::unwrap_used)]

use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeMap;
use tongtian_privacy::protocol::loopback_mesh;
use tongtian_privacy::stats::{Stats, StatsInput, StatsParams};
use tongtian_privacy::{PrivacyError, PrivacyProtocol, SessionConfig};

const JOB: [u8; 32] = [5; 32];

fn params() -> StatsParams {
    StatsParams {
        job: JOB,
        frac: 20,
        columns: vec![
            ("a".into(), 0),
            ("b".into(), 1),
            ("c".into(), 2),
            ("d".into(), 1),
        ],
        corr: vec![
            ("a".into(), "b".into()),
            ("b".into(), "c".into()),
            ("a".into(), "d".into()),
        ],
        extremes: true,
        edges: vec![-1e6, -1e3, -1.0, 0.0, 1.0, 1e3, 1e6],
    }
}

/// Party `r`'s input: every key (shuffled), its columns.
fn inputs(n: usize) -> Vec<StatsInput> {
    let mut rng = rand::thread_rng();
    let keys: Vec<String> = (0..n).map(|i| format!("k{i:06}")).collect();
    let a: Vec<f64> = (0..n).map(|_| rng.gen_range(-1e6..1e6)).collect();
    let b: Vec<f64> = a
        .iter()
        .map(|x| 0.5 * x + rng.gen_range(-1e5..1e5))
        .collect();
    let c: Vec<f64> = (0..n)
        .map(|i| {
            if i % 3 == 0 {
                0.0
            } else {
                rng.gen_range(-3.0..3.0)
            }
        })
        .collect();
    let d: Vec<f64> = a.iter().map(|x| -x * 1e-3).collect();
    let mut out = Vec::new();
    for cols in [vec![("a", &a)], vec![("b", &b), ("d", &d)], vec![("c", &c)]] {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let mut columns = BTreeMap::new();
        for (name, v) in cols {
            columns.insert(name.to_string(), order.iter().map(|&i| v[i]).collect());
        }
        out.push(StatsInput {
            keys: order.iter().map(|&i| format!(" {} ", keys[i])).collect(),
            columns,
        });
    }
    out
}

async fn run(
    p: StatsParams,
    ins: Vec<StatsInput>,
) -> Vec<Result<Option<tongtian_privacy::stats::StatsResult>, PrivacyError>> {
    let peers = loopback_mesh(3, JOB, SessionConfig::default())
        .await
        .unwrap();
    let mut handles = Vec::new();
    for (mut peer, input) in peers.into_iter().zip(ins) {
        let p = p.clone();
        handles.push(tokio::spawn(async move {
            let role = peer.me();
            Stats
                .run(role, &mut peer, &p, input)
                .await
                .map(|r| r.output)
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn stats_equal_the_plaintext_reference() {
    let ins = inputs(5_000);
    let want = Stats.reference(&params(), ins.clone())[0].clone().unwrap();
    let got = run(params(), ins).await;
    assert!(got[1].as_ref().unwrap().is_none() && got[2].as_ref().unwrap().is_none());
    let got = got[0].as_ref().unwrap().clone().unwrap();
    assert_eq!(got.count, 5_000);
    for (c, m) in &want.mean {
        let tol = 1e-5 * m.abs().max(1.0);
        assert!(
            (got.mean[c] - m).abs() <= tol,
            "mean {c}: {} vs {m}",
            got.mean[c]
        );
        let v = want.variance[c];
        assert!(
            (got.variance[c] - v).abs() <= 1e-5 * v.max(1.0),
            "variance {c}: {} vs {v}",
            got.variance[c]
        );
    }
    for (k, r) in &want.corr {
        assert!(
            (got.corr[k] - r).abs() <= 1e-6,
            "corr {k}: {} vs {r}",
            got.corr[k]
        );
    }
    assert!(got.corr["a,b"] > 0.9 && (got.corr["a,d"] + 1.0).abs() < 1e-6);
    // Minimum, maximum and histograms by secure comparison.
    for (c, m) in &want.min {
        assert!(
            (got.min[c] - m).abs() < 1e-5,
            "min {c}: {} vs {m}",
            got.min[c]
        );
        assert!((got.max[c] - want.max[c]).abs() < 1e-5, "max {c}");
    }
    assert_eq!(got.histogram, want.histogram);
    assert_eq!(got.histogram["c"].iter().sum::<u64>(), 5_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn different_key_sets_or_duplicates_stop_the_run() {
    let mut ins = inputs(100);
    ins[2].keys[7] = "someone-else".into();
    let got = run(params(), ins).await;
    for r in &got {
        assert!(
            matches!(r, Err(PrivacyError::BadMessage(m)) if m.contains("key sets differ")),
            "{r:?}"
        );
    }
    let mut ins = inputs(100);
    ins[1].keys[3] = ins[1].keys[4].clone();
    let got = run(params(), ins).await;
    assert!(matches!(&got[1], Err(PrivacyError::BadMessage(m)) if m.contains("twice")));
    // A value that would wrap the ring, or is not a number: refused.
    for badv in [1e30, f64::NAN] {
        let mut ins = inputs(50);
        ins[2].columns.get_mut("c").unwrap()[5] = badv;
        let got = run(params(), ins).await;
        assert!(
            matches!(&got[2], Err(PrivacyError::BadMessage(m)) if m.contains("value_out_of_range")),
            "{:?}",
            got[2]
        );
    }
    // A column its owner does not hold.
    let mut p = params();
    p.columns.push(("zz".into(), 2));
    let got = run(p, inputs(50)).await;
    assert!(matches!(&got[2], Err(PrivacyError::BadMessage(m)) if m.contains("no column zz")));
}
