//! `tongtian bench lr`: vertical logistic regression among three parties
//! (features split across them, the label with role 0) over real Noise
//! sessions on 127.0.0.1, on synthetic data, beside central training of
//! the same model on the pooled rows in the same run.

use anyhow::{bail, Result};
use clap::Args;
use rand::Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;
use tongtian_privacy::lr::{LogisticRegression, LrInput, LrParams, Sigmoid};
use tongtian_privacy::protocol::loopback_mesh;
use tongtian_privacy::{PrivacyProtocol, SessionConfig};

/// `tongtian bench lr` options.
#[derive(Args, Debug)]
pub struct LrBenchArgs {
    /// Rows.
    #[arg(long, default_value_t = 100_000)]
    pub rows: usize,
    /// Features (split across the parties).
    #[arg(long, default_value_t = 50)]
    pub features: usize,
    /// Parties (the engine is three-party).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=3))]
    pub parties: u64,
    /// Epochs.
    #[arg(long, default_value_t = 1)]
    pub epochs: u32,
    /// Rows per mini-batch.
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
}

/// What the benchmark prints.
#[derive(Debug, Serialize)]
pub struct LrBenchReport {
    /// Always `lr`.
    pub bench: &'static str,
    /// Rows, features, parties, epochs.
    pub rows: usize,
    /// Features.
    pub features: usize,
    /// Parties.
    pub parties: u64,
    /// Epochs.
    pub epochs: u32,
    /// The whole run (alignment, sharing, training, evaluation), seconds.
    pub seconds: f64,
    /// `seconds / epochs`.
    pub seconds_per_epoch: f64,
    /// Bytes all parties sent.
    pub bytes_sent: u64,
    /// Central training of the same model on the pooled rows, seconds.
    pub plaintext_seconds: f64,
    /// Accuracy on the held-out rows.
    pub accuracy: f64,
    /// Central training's accuracy on the same rows.
    pub central_accuracy: f64,
}

/// One-line summary.
pub fn summary(r: &LrBenchReport) -> String {
    format!(
        "lr-vertical, {} rows x {} features, {} parties: {:.2} s per epoch, {:.1} MB sent; central {:.2} s; accuracy {:.4} (central {:.4})",
        r.rows,
        r.features,
        r.parties,
        r.seconds_per_epoch,
        r.bytes_sent as f64 / 1e6,
        r.plaintext_seconds,
        r.accuracy,
        r.central_accuracy
    )
}

/// Run it.
pub async fn run(args: LrBenchArgs) -> Result<LrBenchReport> {
    let (n, k) = (args.rows, args.features);
    let mut rng = rand::thread_rng();
    let truth: Vec<f64> = (0..k).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let x: Vec<Vec<f64>> = (0..n)
        .map(|_| (0..k).map(|_| rng.gen_range(-2.0..2.0)).collect())
        .collect();
    let y: Vec<f64> = x
        .iter()
        .map(|row| {
            let z: f64 = row.iter().zip(&truth).map(|(a, b)| a * b).sum();
            ((z + rng.gen_range(-1.0..1.0)) > 0.0) as u8 as f64
        })
        .collect();
    let features: Vec<(String, usize)> = (0..k).map(|c| (format!("f{c}"), c * 3 / k)).collect();
    let job = [0x1du8; 32];
    let params = LrParams {
        job,
        frac: 16,
        features: features.clone(),
        label: "y".into(),
        epochs: args.epochs,
        learning_rate: 0.5,
        batch: args.batch,
        holdout: 0.2,
        sigmoid: Sigmoid::Clipped,
    };
    let keys: Vec<String> = (0..n).map(|i| format!("row-{i:08}")).collect();
    let mut inputs: Vec<LrInput> = (0..3).map(|_| LrInput::default()).collect();
    for (r, input) in inputs.iter_mut().enumerate() {
        input.keys = keys.clone();
        let mut cols = BTreeMap::new();
        for (c, (name, owner)) in features.iter().enumerate() {
            if *owner == r {
                cols.insert(name.clone(), x.iter().map(|row| row[c]).collect());
            }
        }
        if r == 0 {
            cols.insert("y".into(), y.clone());
        }
        input.columns = cols;
    }
    let started = Instant::now();
    let central = LogisticRegression.reference(&params, inputs.clone())[0]
        .clone()
        .and_then(|m| m.accuracy)
        .unwrap_or(0.0);
    let plaintext_seconds = started.elapsed().as_secs_f64();

    let peers = loopback_mesh(3, job, SessionConfig::default()).await?;
    let started = Instant::now();
    let mut handles = Vec::new();
    for (mut peer, input) in peers.into_iter().zip(inputs) {
        let p = params.clone();
        handles.push(tokio::spawn(async move {
            let role = peer.me();
            LogisticRegression.run(role, &mut peer, &p, input).await
        }));
    }
    let mut ran = Vec::new();
    for h in handles {
        ran.push(h.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    let Some(model) = ran[0].output.clone() else {
        bail!("role 0 learned no model");
    };
    Ok(LrBenchReport {
        bench: "lr",
        rows: n,
        features: k,
        parties: args.parties,
        epochs: args.epochs,
        seconds,
        seconds_per_epoch: seconds / args.epochs.max(1) as f64,
        bytes_sent: ran.iter().map(|r| r.bytes_sent).sum(),
        plaintext_seconds,
        accuracy: model.accuracy.unwrap_or(0.0),
        central_accuracy: central,
    })
}
