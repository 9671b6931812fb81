//! `tongtian bench secagg`: one federated-averaging round of N clients
//! over a D-parameter linear model, with secure aggregation and without
//! it, in the same run. Each client trains locally (one gradient pass
//! over its own rows, generated on the fly), then either sends its update
//! in the clear (FedAvg) or takes part in the four secure-aggregation
//! steps (keys, sealed shares, masked update, unmasking). Both rounds run
//! the clients in parallel on this machine's cores and pass messages in
//! memory, so the difference is the protocol's computation, not a network.

use anyhow::{bail, Result};
use clap::Args;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;
use tongtian_privacy::mpc::Ring;
use tongtian_privacy::secagg::{aggregate, Client, SecAggParams};

/// `tongtian bench secagg` options.
#[derive(Args, Debug)]
pub struct SecAggBenchArgs {
    /// Clients.
    #[arg(long, default_value_t = 20)]
    pub clients: usize,
    /// Model parameters.
    #[arg(long, default_value_t = 1_000_000)]
    pub dim: usize,
    /// Local rows per client (each one pass of the gradient).
    #[arg(long, default_value_t = 32)]
    pub rows: usize,
    /// Clients that drop out after dealing their shares.
    #[arg(long, default_value_t = 0)]
    pub dropouts: usize,
}

/// What the benchmark prints.
#[derive(Debug, Serialize)]
pub struct SecAggBenchReport {
    /// Always `secagg`.
    pub bench: &'static str,
    /// Clients.
    pub clients: usize,
    /// Parameters.
    pub dim: usize,
    /// Local rows per client.
    pub rows: usize,
    /// Mask neighbours per client (SecAgg+'s sparse graph).
    pub neighbours: usize,
    /// Shares needed to unmask.
    pub threshold: usize,
    /// Dropped clients.
    pub dropouts: usize,
    /// A round with secure aggregation, seconds.
    pub seconds_per_round: f64,
    /// The same round in the clear (FedAvg), seconds.
    pub plain_seconds_per_round: f64,
    /// `seconds_per_round / plain_seconds_per_round`.
    pub ratio: f64,
    /// The largest difference between the two rounds' averaged models.
    pub max_error: f64,
}

/// One-line summary.
pub fn summary(r: &SecAggBenchReport) -> String {
    format!(
        "secagg, {} clients x {} parameters ({} neighbours, threshold {}, {} dropped): {:.2} s per round, FedAvg {:.2} s (x{:.2}); max error {:.1e}",
        r.clients, r.dim, r.neighbours, r.threshold, r.dropouts, r.seconds_per_round, r.plain_seconds_per_round, r.ratio, r.max_error
    )
}

/// xorshift64*: the clients' rows, cheap enough that generating them
/// does not stand in for training.
struct Rows(u64);

impl Rows {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// Client `c`'s local gradient of the logistic loss at `w` over its rows.
fn local_update(c: usize, rows: usize, w: &[f64]) -> Vec<f64> {
    let mut rng = Rows(0x9e37_79b9_7f4a_7c15 ^ (c as u64 + 1));
    let mut g = vec![0.0; w.len()];
    let mut x = vec![0.0f64; w.len()];
    for _ in 0..rows {
        for v in x.iter_mut() {
            *v = rng.next();
        }
        let z: f64 = x.iter().zip(w).map(|(a, b)| a * b).sum();
        let y = (rng.next() > 0.0) as u8 as f64;
        let e = 1.0 / (1.0 + (-z).exp()) - y;
        for (gi, xi) in g.iter_mut().zip(&x) {
            *gi += e * xi / rows as f64;
        }
    }
    g
}

/// Run it.
pub async fn run(args: SecAggBenchArgs) -> Result<SecAggBenchReport> {
    let (n, dim) = (args.clients, args.dim);
    if n < 3 || args.dropouts > n / 2 - 1 {
        bail!("at least 3 clients, and fewer dropouts than leave a majority");
    }
    let w = vec![0.01f64; dim];
    let neighbours = (2 * (n as f64).log2().ceil() as usize).min(n - 1);
    let threshold = n / 2 + 1;
    let alive: Vec<usize> = (args.dropouts..n).collect();

    // FedAvg in the clear.
    let started = Instant::now();
    // (A client that drops out sends nothing, so only the others train.)
    let updates: Vec<Vec<f64>> = alive
        .par_iter()
        .map(|c| local_update(*c, args.rows, &w))
        .collect();
    let mut plain = vec![0.0; dim];
    for u in &updates {
        for (s, v) in plain.iter_mut().zip(u) {
            *s += v;
        }
    }
    for s in plain.iter_mut() {
        *s /= alive.len() as f64;
    }
    let plain_seconds = started.elapsed().as_secs_f64();

    // The same round with secure aggregation.
    let p = SecAggParams {
        round: [0x5a; 32],
        clients: n,
        threshold,
        neighbours,
        dim,
    };
    let started = Instant::now();
    let made: Vec<(Client, _)> = (0..n)
        .map(|i| Client::new(p.clone(), i))
        .collect::<Result<_, _>>()?;
    let (mut clients, keys): (Vec<Client>, Vec<_>) = made.into_iter().unzip();
    let sealed: Vec<_> = clients
        .iter_mut()
        .map(|c| c.share(&keys))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    let masked: Vec<(usize, Vec<u64>)> = clients
        .par_iter_mut()
        .enumerate()
        .filter(|(i, _)| *i >= args.dropouts)
        .map(|(i, c)| {
            let g = local_update(i, args.rows, &w);
            let fixed: Vec<u64> = g.iter().map(|v| u64::encode(*v, 24)).collect();
            let mine: Vec<_> = sealed
                .iter()
                .filter(|s| s.to as usize == i)
                .cloned()
                .collect();
            c.masked(&mine, &fixed).map(|y| (i, y))
        })
        .collect::<Result<_, _>>()?;
    let masked: BTreeMap<u32, Vec<u64>> = masked.into_iter().map(|(i, y)| (i as u32, y)).collect();
    let survivors: Vec<u32> = masked.keys().copied().collect();
    let answers: Vec<_> = clients
        .iter()
        .enumerate()
        .filter(|(i, _)| *i >= args.dropouts)
        .map(|(_, c)| c.unmask(&survivors))
        .collect::<Result<_, _>>()?;
    let sum = aggregate(&p, &keys, &masked, &answers)?;
    let secure: Vec<f64> = sum
        .iter()
        .map(|s| s.decode(24) / alive.len() as f64)
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    let max_error = secure
        .iter()
        .zip(&plain)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    Ok(SecAggBenchReport {
        bench: "secagg",
        clients: n,
        dim,
        rows: args.rows,
        neighbours,
        threshold,
        dropouts: args.dropouts,
        seconds_per_round: seconds,
        plain_seconds_per_round: plain_seconds,
        ratio: seconds / plain_seconds.max(1e-9),
        max_error,
    })
}
