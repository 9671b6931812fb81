//! Secure aggregation: the sum is exact with every client, and with as
//! many dropouts as the threshold allows; fewer survivors than the
//! threshold cannot be unmasked; what the aggregator receives from a
//! client is uniformly masked, whatever that client's update.

#![allow(clippy::unwrap_used)]

use rand::Rng;
use std::collections::BTreeMap;
use tongtian_privacy::mpc::Ring;
use tongtian_privacy::secagg::{aggregate, Client, SecAggParams};

fn params(n: usize, t: usize, k: usize, dim: usize) -> SecAggParams {
    SecAggParams {
        round: [4; 32],
        clients: n,
        threshold: t,
        neighbours: k,
        dim,
    }
}

/// One round where the clients in `drop` vanish after dealing shares:
/// (the aggregator's sum, what it received from each client).
fn round(
    p: &SecAggParams,
    updates: &[Vec<u64>],
    drop: &[usize],
) -> (Result<Vec<u64>, String>, BTreeMap<u32, Vec<u64>>) {
    round_with(p, updates, drop, &[])
}

/// The same, and the clients in `silent` vanish after sending their keys,
/// before dealing shares.
fn round_with(
    p: &SecAggParams,
    updates: &[Vec<u64>],
    drop: &[usize],
    silent: &[usize],
) -> (Result<Vec<u64>, String>, BTreeMap<u32, Vec<u64>>) {
    let (mut clients, keys): (Vec<Client>, Vec<_>) = (0..p.clients)
        .map(|i| Client::new(p.clone(), i).unwrap())
        .unzip();
    let sealed: Vec<_> = clients
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| !silent.contains(i))
        .flat_map(|(_, c)| c.share(&keys).unwrap())
        .collect();
    let drop: Vec<usize> = drop.iter().chain(silent).copied().collect();
    let drop = &drop[..];
    let mut masked = BTreeMap::new();
    for (i, c) in clients.iter_mut().enumerate() {
        if silent.contains(&i) {
            continue;
        }
        let mine: Vec<_> = sealed
            .iter()
            .filter(|s| s.to as usize == i)
            .cloned()
            .collect();
        let y = c.masked(&mine, &updates[i]).unwrap();
        if !drop.contains(&i) {
            masked.insert(i as u32, y);
        }
    }
    let survivors: Vec<u32> = masked.keys().copied().collect();
    let answers: Vec<_> = clients
        .iter()
        .enumerate()
        .filter(|(i, _)| !drop.contains(i))
        .filter_map(|(_, c)| c.unmask(&survivors).ok())
        .collect();
    (
        aggregate(p, &keys, &masked, &answers).map_err(|e| e.to_string()),
        masked,
    )
}

fn updates(n: usize, dim: usize) -> Vec<Vec<u64>> {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| {
            (0..dim)
                .map(|_| u64::encode(rng.gen_range(-3.0..3.0), 16))
                .collect()
        })
        .collect()
}

fn plain_sum(u: &[Vec<u64>], skip: &[usize]) -> Vec<u64> {
    let mut s = vec![0u64; u[0].len()];
    for (i, v) in u.iter().enumerate().filter(|(i, _)| !skip.contains(i)) {
        let _ = i;
        for (a, b) in s.iter_mut().zip(v) {
            *a = a.wrapping_add(*b);
        }
    }
    s
}

#[test]
fn the_sum_is_exact_with_and_without_dropouts() {
    for (n, t, k) in [(5usize, 3usize, 4usize), (10, 6, 4), (12, 7, 11)] {
        let p = params(n, t, k, 2_000);
        let u = updates(n, p.dim);
        let (sum, _) = round(&p, &u, &[]);
        assert_eq!(sum.unwrap(), plain_sum(&u, &[]), "n={n}");
        // As many dropouts as the threshold leaves room for.
        let drop: Vec<usize> = (0..n - t).map(|i| (i * 3 + 1) % n).collect();
        let (sum, _) = round(&p, &u, &drop);
        assert_eq!(
            sum.unwrap(),
            plain_sum(&u, &drop),
            "n={n} dropping {drop:?}"
        );
        // Silent after their keys, before their shares: masked by nobody.
        let silent: Vec<usize> = vec![n - 1];
        let (sum, _) = round_with(&p, &u, &[0], &silent);
        assert_eq!(
            sum.unwrap(),
            plain_sum(&u, &[0, n - 1]),
            "n={n} silent {silent:?}"
        );
        // One more is too many.
        let drop: Vec<usize> = (0..=n - t).collect();
        let (sum, _) = round(&p, &u, &drop);
        assert!(sum.unwrap_err().contains("threshold"));
    }
}

#[test]
fn what_the_aggregator_sees_of_a_client_is_uniformly_masked() {
    let p = params(8, 5, 4, 4_096);
    let mut u = updates(8, p.dim);
    let (_, seen_a) = round(&p, &u, &[]);
    // Client 0's update flipped: everything else alike.
    for v in u[0].iter_mut() {
        *v = v.wrapping_neg();
    }
    let (sum, seen_b) = round(&p, &u, &[]);
    assert_eq!(sum.unwrap(), plain_sum(&u, &[]));
    for seen in [&seen_a[&0], &seen_b[&0]] {
        let equal = seen.iter().zip(&u[0]).filter(|(a, b)| a == b).count();
        assert_eq!(equal, 0, "no coordinate travels in the clear");
        let ones: u32 = seen.iter().map(|w| w.count_ones()).sum();
        let frac = ones as f64 / (64.0 * seen.len() as f64);
        assert!((frac - 0.5).abs() < 0.01, "bits are balanced: {frac}");
    }
    // And the two rounds' messages from client 0 are unrelated.
    let same = seen_a[&0]
        .iter()
        .zip(&seen_b[&0])
        .filter(|(a, b)| a == b)
        .count();
    assert_eq!(same, 0);
}
