//! The three-party engine over real Noise sessions on 127.0.0.1: every
//! operation equals its plaintext reference within the fixed-point
//! tolerance, on random inputs with negative numbers, zeros and large
//! magnitudes; reveals reach only the party named; one party's shares
//! alone look random.

#![allow(clippy::unwrap_used)]

use rand::Rng;
use tokio::net::TcpListener;
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_privacy::mpc::{Ring, Rss3, Shared};
use tongtian_privacy::{Peers, Session, SessionConfig};

const JOB: [u8; 32] = [9; 32];

/// Three parties' sessions, every pair connected.
async fn three() -> Vec<Peers> {
    let keys: Vec<Keypair> = (0..3)
        .map(|i| Keypair::from_seed(SuiteId::Standard, format!("party-{i}").as_bytes()))
        .collect();
    let mut peers: Vec<Peers> = (0..3).map(|i| Peers::new(i, 3)).collect();
    for (i, j) in [(0usize, 1usize), (0, 2), (1, 2)] {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let (ki, kj) = (keys[i].clone(), keys[j].clone());
        let j_pub = kj.public_key().to_vec();
        let i_pub = ki.public_key().to_vec();
        let accept = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            Session::accept(s, &ki, &[j_pub], JOB, SessionConfig::default())
                .await
                .unwrap()
        });
        let sj = Session::connect(&addr, &kj, &i_pub, JOB, SessionConfig::default())
            .await
            .unwrap();
        let si = accept.await.unwrap();
        peers[i].insert(j, si);
        peers[j].insert(i, sj);
    }
    peers
}

/// Run `f` as each of the three parties at once; their results in role
/// order.
async fn run<T, F, Fut>(f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Peers) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let mut handles = Vec::new();
    for p in three().await {
        handles.push(tokio::spawn(f(p)));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn randoms(n: usize, scale: f64) -> Vec<f64> {
    let mut rng = rand::thread_rng();
    let mut v: Vec<f64> = (0..n).map(|_| rng.gen_range(-scale..scale)).collect();
    v[0] = 0.0;
    v[1] = -scale * 0.999;
    v[2] = scale * 0.999;
    v
}

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, want {want} (tolerance {tol})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn arithmetic_equals_its_plaintext_reference() {
    const F: u32 = 16;
    let n = 2_000;
    let x = randoms(n, 40.0);
    let y = randoms(n, 40.0);
    let (x2, y2) = (x.clone(), y.clone());
    let outs = run(move |mut p| {
        let (x, y) = (x2.clone(), y2.clone());
        async move {
            let mut e = Rss3::setup(&mut p, F).await.unwrap();
            let me = e.me();
            let xe: Vec<u64> = x.iter().map(|v| u64::encode(*v, F)).collect();
            let ye: Vec<u64> = y.iter().map(|v| u64::encode(*v, F)).collect();
            let xs = e.input(0, (me == 0).then_some(&xe[..]), n).await.unwrap();
            let ys = e.input(1, (me == 1).then_some(&ye[..]), n).await.unwrap();
            let sum = xs.add(&ys);
            let diff = xs.sub(&ys);
            let prod = e.mul_fixed(&xs, &ys).await.unwrap();
            let dot = e.dot(&xs, &ys, 1).await.unwrap();
            let third = e.div_public(&xs, 3).await.unwrap();
            let all = Shared::concat(&[&sum, &diff, &prod, &third]);
            let revealed = e.reveal(&all).await.unwrap();
            let d = e.reveal(&dot).await.unwrap();
            (xs, revealed, d)
        }
    })
    .await;
    let (_, r, d) = &outs[0];
    assert_eq!(outs[1].1, *r, "every party reveals the same");
    let q = (F as f64).exp2().recip();
    for k in 0..n {
        close(r[k].decode(F), x[k] + y[k], 2.0 * q, "add");
        close(r[n + k].decode(F), x[k] - y[k], 2.0 * q, "sub");
        close(
            r[2 * n + k].decode(F),
            x[k] * y[k],
            (x[k].abs() + y[k].abs() + 2.0) * q,
            "mul",
        );
        close(r[3 * n + k].decode(F), x[k] / 3.0, 2.0 * q, "div");
    }
    // The dot product at twice the fractional bits.
    let want: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
    close(d[0].decode(2 * F), want, n as f64 * 80.0 * q, "dot");
    // The sigmoid: its polynomial exactly (within fixed point), and the
    // logistic function within the polynomial's error.
    let outs = run(move |mut p| async move {
        let mut e = Rss3::setup(&mut p, F).await.unwrap();
        let pts: Vec<f64> = (-80..=80).map(|i| i as f64 / 10.0).collect();
        let enc: Vec<u64> = pts.iter().map(|v| u64::encode(*v, F)).collect();
        let me = e.me();
        let xs = e
            .input(2, (me == 2).then_some(&enc[..]), pts.len())
            .await
            .unwrap();
        let s = e.sigmoid(&xs).await.unwrap();
        e.reveal(&s).await.unwrap()
    })
    .await;
    for (i, got) in outs[0].iter().enumerate() {
        let v = (i as f64 - 80.0) / 10.0;
        let poly = 0.5 + 0.15012 * v - 0.001_593 * v * v * v;
        close(got.decode(F), poly, 64.0 * q, "sigmoid polynomial");
        // The polynomial's own error: at most 0.114 on [-8, 8].
        close(got.decode(F), 1.0 / (1.0 + (-v).exp()), 0.115, "logistic");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn large_magnitudes_in_the_wide_ring_and_matrix_products() {
    const F: u32 = 16;
    let n = 500;
    let x = randoms(n, (1u64 << 30) as f64);
    let y = randoms(n, (1u64 << 30) as f64);
    let (rows, inner, cols) = (7usize, 5usize, 3usize);
    let a = randoms(rows * inner, 10.0);
    let b = randoms(inner * cols, 10.0);
    let (x2, y2, a2, b2) = (x.clone(), y.clone(), a.clone(), b.clone());
    let outs = run(move |mut p| {
        let (x, y, a, b) = (x2.clone(), y2.clone(), a2.clone(), b2.clone());
        async move {
            let mut e = Rss3::setup(&mut p, F).await.unwrap();
            let me = e.me();
            let enc = |v: &[f64]| v.iter().map(|x| u128::encode(*x, F)).collect::<Vec<u128>>();
            let (xe, ye, ae, be) = (enc(&x), enc(&y), enc(&a), enc(&b));
            let xs = e
                .input(0, (me == 0).then_some(&xe[..]), xe.len())
                .await
                .unwrap();
            let ys = e
                .input(2, (me == 2).then_some(&ye[..]), ye.len())
                .await
                .unwrap();
            let as_ = e
                .input(1, (me == 1).then_some(&ae[..]), ae.len())
                .await
                .unwrap();
            let bs = e
                .input(2, (me == 2).then_some(&be[..]), be.len())
                .await
                .unwrap();
            let prod = e.mul_fixed(&xs, &ys).await.unwrap();
            let mm = e.matmul(&as_, &bs, rows, inner, cols).await.unwrap();
            let mm = e.trunc(&mm).await.unwrap();
            // Only party 1 sees the products.
            let seen = e
                .reveal_to(1, &Shared::concat(&[&prod, &mm]))
                .await
                .unwrap();
            (me, seen, xs)
        }
    })
    .await;
    assert!(
        outs[0].1.is_none() && outs[2].1.is_none(),
        "only party 1 learns"
    );
    let r = outs[1].1.as_ref().unwrap();
    let q = (F as f64).exp2().recip();
    for k in 0..n {
        let want = x[k] * y[k];
        close(
            r[k].decode(F),
            want,
            (x[k].abs() + y[k].abs() + 2.0) * q,
            "wide mul",
        );
    }
    for i in 0..rows {
        for j in 0..cols {
            let want: f64 = (0..inner).map(|k| a[i * inner + k] * b[k * cols + j]).sum();
            close(
                r[n + i * cols + j].decode(F),
                want,
                40.0 * q * inner as f64,
                "matmul",
            );
        }
    }
    // A party's own shares of x are not x: they look random.
    let (_, _, shares) = &outs[2];
    let xe: Vec<u128> = x.iter().map(|v| u128::encode(*v, F)).collect();
    let equal = shares.a.iter().zip(&xe).filter(|(s, v)| s == v).count();
    assert!(equal < 3, "shares equal to the values: {equal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn comparisons_relu_and_the_clipped_sigmoid() {
    const F: u32 = 16;
    let mut x = randoms(3_000, 1e6);
    x.extend([
        0.0,
        -0.0,
        1e-4,
        -1e-4,
        -((1u64 << 40) as f64),
        (1u64 << 40) as f64,
        -0.5,
        0.5,
    ]);
    let n = x.len();
    let x2 = x.clone();
    let outs = run(move |mut p| {
        let x = x2.clone();
        async move {
            let mut e = Rss3::setup(&mut p, F).await.unwrap();
            let me = e.me();
            let enc: Vec<u64> = x.iter().map(|v| u64::encode(*v, F)).collect();
            let xs = e.input(1, (me == 1).then_some(&enc[..]), n).await.unwrap();
            let neg = e.msb(&xs).await.unwrap();
            let relu = e.relu(&xs).await.unwrap();
            let small = xs.scale(1).slice(0..n);
            let scaled = e.div_public(&small, 1 << 20).await.unwrap();
            let sig = e.sigmoid_clipped(&scaled).await.unwrap();
            e.reveal(&Shared::concat(&[&neg, &relu, &scaled, &sig]))
                .await
                .unwrap()
        }
    })
    .await;
    let r = &outs[0];
    let q = (F as f64).exp2().recip();
    for k in 0..n {
        let enc = u64::encode(x[k], F) as i64;
        assert_eq!(r[k], (enc < 0) as u64, "sign of {}", x[k]);
        close(r[n + k].decode(F), x[k].max(0.0), q, "relu");
        let v = r[2 * n + k].decode(F);
        let want = (v + 0.5).clamp(0.0, 1.0);
        close(r[3 * n + k].decode(F), want, 2.0 * q, "clipped sigmoid");
    }
}
