//! `psi-ecdh` and `psi-ot` between two parties over real Noise sessions
//! on 127.0.0.1: each one's output equals the plaintext reference on every
//! shape of input, both sides end with the same transcript hash, and a
//! peer that lies, goes silent, serves another job or holds another key is
//! refused.

#![allow(clippy::unwrap_used)]

use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_privacy::protocol::PsiParams;
use tongtian_privacy::psi_ecdh::PsiEcdh;
use tongtian_privacy::psi_ot::PsiOt;
use tongtian_privacy::{
    Peers, PrivacyError, PrivacyProtocol, PsiInput, PsiOutput, Session, SessionConfig,
};

fn keys() -> (Keypair, Keypair) {
    (
        Keypair::from_seed(SuiteId::Standard, b"receiver"),
        Keypair::from_seed(SuiteId::Standard, b"sender"),
    )
}

const JOB: [u8; 32] = [7; 32];

/// A session pair: (receiver's, sender's), the sender accepting.
async fn pair(
    cfg: SessionConfig,
    sender_job: [u8; 32],
) -> (Result<Session, PrivacyError>, Result<Session, PrivacyError>) {
    let (r, s) = keys();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let r_pub = r.public_key().to_vec();
    let s_pub = s.public_key().to_vec();
    let accept = tokio::spawn(async move {
        let (stream, _) = l.accept().await.unwrap();
        Session::accept(stream, &s, &[r_pub], sender_job, cfg).await
    });
    let connected = Session::connect(&addr, &r, &s_pub, JOB, cfg).await;
    (connected, accept.await.unwrap())
}

trait Psi:
    PrivacyProtocol<Params = PsiParams, Input = PsiInput, Output = PsiOutput> + Copy + 'static
{
}
impl Psi for PsiEcdh {}
impl Psi for PsiOt {}

async fn run_psi(x: &[String], y: &[String], cardinality: bool) -> (PsiOutput, [u8; 32], [u8; 32]) {
    run_with(PsiEcdh, x, y, cardinality).await
}

async fn run_with<P: Psi>(
    p: P,
    x: &[String],
    y: &[String],
    cardinality: bool,
) -> (PsiOutput, [u8; 32], [u8; 32]) {
    let (rs, ss) = pair(SessionConfig::default(), JOB).await;
    let mut params = PsiParams::new(JOB);
    params.cardinality = cardinality;
    let p2 = params.clone();
    let y = y.to_vec();
    let sender = tokio::spawn(async move {
        p.run(
            1,
            &mut Peers::two(1, ss.unwrap()),
            &p2,
            PsiInput { keys: y },
        )
        .await
    });
    let r = p
        .run(
            0,
            &mut Peers::two(0, rs.unwrap()),
            &params,
            PsiInput { keys: x.to_vec() },
        )
        .await
        .unwrap();
    let s = sender.await.unwrap().unwrap();
    assert_eq!(s.output, PsiOutput::Nothing);
    assert!(r.bytes_sent >= 32 * tongtian_privacy::protocol::normalise(x).len() as u64);
    (r.output, r.transcript, s.transcript)
}

fn set(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psi_ecdh_equals_the_plaintext_join_on_every_shape_of_input() {
    equals_the_plaintext_join(PsiEcdh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psi_ot_equals_the_plaintext_join_on_every_shape_of_input() {
    equals_the_plaintext_join(PsiOt).await;
    // Past one matrix chunk (16,384 rows) and one list message.
    let (got, t_r, t_s) = run_with(
        PsiOt,
        &set("k", 0..40_000),
        &set("k", 30_000..300_000),
        false,
    )
    .await;
    assert_eq!(t_r, t_s);
    assert_eq!(
        got,
        PsiOutput::Intersection({
            let mut v = set("k", 30_000..40_000);
            v.sort();
            v
        })
    );
}

async fn equals_the_plaintext_join<P: Psi>(p: P) {
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (vec![], vec![]),
        (vec![], set("k", 0..5)),
        (set("k", 0..5), vec![]),
        (vec!["only".into()], vec!["only".into()]),
        (vec!["a".into()], vec!["b".into()]),
        // Unequal sizes, crossing batch boundaries, 1,000 in common.
        (set("k", 0..1_500), set("k", 500..9_000)),
        // All overlap, no overlap.
        (set("k", 0..700), set("k", 0..700)),
        (set("x", 0..700), set("y", 0..700)),
        // Duplicates and untrimmed keys count once.
        (
            vec![" a".into(), "a".into(), "b ".into(), "c".into(), "c".into()],
            vec!["a".into(), "b".into(), "b".into(), "d".into()],
        ),
    ];
    for (x, y) in cases {
        let want = p.reference(
            &PsiParams::new(JOB),
            vec![PsiInput { keys: x.clone() }, PsiInput { keys: y.clone() }],
        );
        let (got, t_r, t_s) = run_with(p, &x, &y, false).await;
        assert_eq!(got, want[0], "|X| {} |Y| {}", x.len(), y.len());
        assert_eq!(t_r, t_s, "both sides hash the same transcript");
    }
    // A known overlap, checked by hand too, and the size-only mode.
    let (got, _, _) = run_with(p, &set("k", 0..1_500), &set("k", 500..9_000), false).await;
    let PsiOutput::Intersection(both) = got else {
        panic!()
    };
    assert_eq!(both.len(), 1_000);
    assert!(both.contains(&"k500".to_string()) && both.contains(&"k1499".to_string()));
    assert!(!both.contains(&"k499".to_string()));
    let (got, _, _) = run_with(p, &set("k", 0..1_500), &set("k", 500..9_000), true).await;
    assert_eq!(got, PsiOutput::Size(1_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_differ_between_runs_of_the_same_sets() {
    let x = set("k", 0..50);
    let (_, t1, _) = run_psi(&x, &x, false).await;
    let (_, t2, _) = run_psi(&x, &x, false).await;
    assert_ne!(t1, t2, "fresh secrets each run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_of_another_job_or_key_is_refused() {
    let (r, s) = pair(SessionConfig::default(), [8; 32]).await;
    assert!(matches!(r, Err(PrivacyError::Refused(_))), "{:?}", r.err());
    assert!(matches!(s, Err(PrivacyError::Refused(_))), "{:?}", s.err());
    // A key the job does not name.
    let (rk, _) = keys();
    let stranger = Keypair::from_seed(SuiteId::Standard, b"stranger");
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let other = Keypair::from_seed(SuiteId::Standard, b"expected")
        .public_key()
        .to_vec();
    let accept = tokio::spawn(async move {
        let (stream, _) = l.accept().await.unwrap();
        Session::accept(
            stream,
            &stranger,
            &[rk.public_key().to_vec()],
            JOB,
            SessionConfig::default(),
        )
        .await
    });
    let (rk2, _) = keys();
    let c = Session::connect(&addr, &rk2, &other, JOB, SessionConfig::default()).await;
    assert!(
        matches!(c, Err(PrivacyError::Refused(ref m)) if m.contains("not a party")),
        "{:?}",
        c.err()
    );
    let _ = accept.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_curve_points_oversized_and_silent_peers_are_refused() {
    // A sender that answers with bytes that are not points.
    let (rs, ss) = pair(SessionConfig::default(), JOB).await;
    let liar = tokio::spawn(async move {
        let mut s = ss.unwrap();
        let _ = s.recv().await; // the receiver's size
        s.send(&3u64.to_le_bytes()).await.unwrap();
        s.send(&[0xffu8; 96]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    });
    let r = PsiEcdh
        .run(
            0,
            &mut Peers::two(0, rs.unwrap()),
            &PsiParams::new(JOB),
            PsiInput {
                keys: set("k", 0..3),
            },
        )
        .await;
    assert!(
        matches!(r, Err(PrivacyError::BadMessage(ref m)) if m.contains("ristretto")),
        "{:?}",
        r.err()
    );
    liar.await.unwrap();

    // A batch of the wrong length (truncated).
    let (rs, ss) = pair(SessionConfig::default(), JOB).await;
    let liar = tokio::spawn(async move {
        let mut s = ss.unwrap();
        s.send(&3u64.to_le_bytes()).await.unwrap();
        s.send(&[0u8; 40]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    });
    let r = PsiEcdh
        .run(
            0,
            &mut Peers::two(0, rs.unwrap()),
            &PsiParams::new(JOB),
            PsiInput {
                keys: set("k", 0..3),
            },
        )
        .await;
    assert!(
        matches!(r, Err(PrivacyError::BadMessage(_))),
        "{:?}",
        r.err()
    );
    liar.await.unwrap();

    // A set larger than the job takes.
    let (rs, ss) = pair(SessionConfig::default(), JOB).await;
    let liar = tokio::spawn(async move {
        let mut s = ss.unwrap();
        s.send(&(1u64 << 40).to_le_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    });
    let r = PsiEcdh
        .run(
            0,
            &mut Peers::two(0, rs.unwrap()),
            &PsiParams::new(JOB),
            PsiInput {
                keys: set("k", 0..3),
            },
        )
        .await;
    assert!(
        matches!(r, Err(PrivacyError::BadMessage(ref m)) if m.contains("over the job")),
        "{:?}",
        r.err()
    );
    liar.await.unwrap();

    // A message over the session's bound, either way.
    let small = SessionConfig {
        max_message: 1_000,
        timeout: Duration::from_secs(5),
    };
    let (rs, ss) = pair(small, JOB).await;
    let (mut r, mut s) = (rs.unwrap(), ss.unwrap());
    assert!(matches!(
        r.send(&[0u8; 1_001]).await,
        Err(PrivacyError::TooLarge { .. })
    ));
    r.send(&[1u8; 1_000]).await.unwrap();
    assert_eq!(s.recv().await.unwrap().len(), 1_000);

    // A peer that goes silent: the wait ends at the timeout.
    let quick = SessionConfig {
        max_message: 1 << 20,
        timeout: Duration::from_millis(300),
    };
    let (rs, ss) = pair(quick, JOB).await;
    let mut r = rs.unwrap();
    let started = std::time::Instant::now();
    let got = r.recv().await;
    assert!(
        matches!(got, Err(PrivacyError::Timeout(_))),
        "{:?}",
        got.err()
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(ss);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_a_handshake_is_refused() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (r, s) = keys();
    let accept = tokio::spawn(async move {
        let (stream, _) = l.accept().await.unwrap();
        Session::accept(
            stream,
            &s,
            &[r.public_key().to_vec()],
            JOB,
            SessionConfig::default(),
        )
        .await
    });
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(&[5, 0, 1, 2, 3, 4, 5]).await.unwrap();
    let got = accept.await.unwrap();
    assert!(
        matches!(got, Err(PrivacyError::Noise(_))),
        "{:?}",
        got.err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psi_ot_refuses_malformed_messages() {
    use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
    let g = RISTRETTO_BASEPOINT_POINT.compress().to_bytes();
    let hello = |n: u64, m: u64, point: [u8; 32]| {
        let mut h = Vec::new();
        h.extend_from_slice(&n.to_le_bytes());
        h.extend_from_slice(&m.to_le_bytes());
        h.extend_from_slice(&7u64.to_le_bytes());
        h.extend_from_slice(&point);
        h
    };
    let sender_gets = |first: Vec<u8>, then: Option<Vec<u8>>| async move {
        let (rs, ss) = pair(SessionConfig::default(), JOB).await;
        let liar = tokio::spawn(async move {
            let mut r = rs.unwrap();
            r.send(&first).await.unwrap();
            let _ = r.recv().await; // the sender's hello
            if let Some(t) = then {
                let _ = r.send(&t).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        });
        let got = PsiOt
            .run(
                1,
                &mut Peers::two(1, ss.unwrap()),
                &PsiParams::new(JOB),
                PsiInput {
                    keys: set("k", 0..100),
                },
            )
            .await;
        liar.await.unwrap();
        got.err().map(|e| e.to_string()).unwrap_or_default()
    };
    // A table too small for the set, a point off the curve, a truncated
    // hello, a matrix chunk of the wrong length.
    assert!(sender_gets(hello(1_000, 64, g), None)
        .await
        .contains("a table of 64 bins"));
    assert!(sender_gets(hello(10, 320, [0xff; 32]), None)
        .await
        .contains("ristretto"));
    assert!(sender_gets(hello(10, 320, g)[..40].to_vec(), None)
        .await
        .contains("hello of 40"));
    assert!(sender_gets(hello(10, 320, g), Some(vec![0u8; 99]))
        .await
        .contains("matrix chunk"));

    // A sender whose hello is short, or carries points off the curve.
    for bad in [vec![0u8; 100], {
        let mut b = vec![0u8; 8 + 32 + 448 * 32];
        b[40..].fill(0xff);
        b
    }] {
        let (rs, ss) = pair(SessionConfig::default(), JOB).await;
        let liar = tokio::spawn(async move {
            let mut s = ss.unwrap();
            let _ = s.recv().await;
            s.send(&bad).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        });
        let got = PsiOt
            .run(
                0,
                &mut Peers::two(0, rs.unwrap()),
                &PsiParams::new(JOB),
                PsiInput {
                    keys: set("k", 0..100),
                },
            )
            .await;
        assert!(
            matches!(got, Err(PrivacyError::BadMessage(ref m)) if m.contains("hello") || m.contains("ristretto")),
            "{:?}",
            got.err()
        );
        liar.await.unwrap();
    }
}
