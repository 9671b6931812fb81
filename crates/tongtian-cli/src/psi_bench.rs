//! `tongtian bench psi`: two parties run a PSI protocol over a real
//! Noise session on 127.0.0.1, on N-element sets of which half overlap,
//! beside a plaintext hash join of the same sets in the same run.
//!
//! This measures the protocol and its sessions between two parties in
//! one process (both on this machine's two cores); `--on-chain` also runs
//! one job through a dev node and two party agents and reports what the
//! chain adds around the protocol.

use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;
use std::time::Instant;
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_privacy::protocol::{plain_intersection, PsiParams};
use tongtian_privacy::psi_ecdh::PsiEcdh;
use tongtian_privacy::psi_ot::PsiOt;
use tongtian_privacy::{PrivacyProtocol, PsiInput, PsiOutput, Session, SessionConfig};

/// `tongtian bench psi` options.
#[derive(Args, Debug)]
pub struct PsiBenchArgs {
    /// Keys per party (half of them shared).
    #[arg(long, default_value_t = 1 << 16)]
    pub size: usize,
    /// The protocol.
    #[arg(long, default_value = "psi-ecdh", value_parser = ["psi-ecdh", "psi-ot"])]
    pub protocol: String,
}

/// What the benchmark prints.
#[derive(Debug, Serialize)]
pub struct PsiBenchReport {
    /// Always `psi`.
    pub bench: &'static str,
    /// The protocol.
    pub protocol: String,
    /// Keys per party.
    pub size: usize,
    /// The intersection's size (half the keys, checked).
    pub intersection_size: usize,
    /// From the first byte to the receiver's output, seconds.
    pub seconds: f64,
    /// Bytes both parties sent (framing and encryption included).
    pub bytes_sent: u64,
    /// Peak resident memory of this process (both parties), MB.
    pub peak_rss_mb: f64,
    /// A hash join of the same sets, seconds.
    pub plaintext_seconds: f64,
    /// `seconds / plaintext_seconds`.
    pub ratio: f64,
}

/// One-line summary.
pub fn summary(r: &PsiBenchReport) -> String {
    format!(
        "{} on 2 x {} keys: {:.2} s, {:.1} MB sent, peak RSS {:.0} MB; plaintext join {:.3} s (x{:.0})",
        r.protocol,
        r.size,
        r.seconds,
        r.bytes_sent as f64 / 1e6,
        r.peak_rss_mb,
        r.plaintext_seconds,
        r.ratio
    )
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Run it.
pub async fn run(args: PsiBenchArgs) -> Result<PsiBenchReport> {
    match args.protocol.as_str() {
        "psi-ot" => run_with(PsiOt, args).await,
        _ => run_with(PsiEcdh, args).await,
    }
}

async fn run_with<P>(p: P, args: PsiBenchArgs) -> Result<PsiBenchReport>
where
    P: PrivacyProtocol<Params = PsiParams, Input = PsiInput, Output = PsiOutput> + Copy + 'static,
{
    let n = args.size;
    let x: Vec<String> = (0..n).map(|i| format!("id-{i:08}")).collect();
    let y: Vec<String> = (n / 2..n + n / 2).map(|i| format!("id-{i:08}")).collect();
    let started = Instant::now();
    let want = plain_intersection(&x, &y, false);
    let plaintext_seconds = started.elapsed().as_secs_f64();

    let job = [0x42u8; 32];
    let (r, s) = (
        Keypair::from_seed(SuiteId::Standard, b"bench-receiver"),
        Keypair::from_seed(SuiteId::Standard, b"bench-sender"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let cfg = SessionConfig::default();
    let r_pub = r.public_key().to_vec();
    let s_pub = s.public_key().to_vec();
    let params = PsiParams::new(job);
    let p2 = params.clone();
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let mut session = Session::accept(stream, &s, &[r_pub], job, cfg).await?;
        Ok::<_, anyhow::Error>(p.run(1, &mut session, &p2, PsiInput { keys: y }).await?)
    });
    let mut session = Session::connect(&addr, &r, &s_pub, job, cfg).await?;
    let got = p
        .run(0, &mut session, &params, PsiInput { keys: x })
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let theirs = sender.await??;
    if got.output != want {
        bail!("the protocol's output differs from the plaintext join");
    }
    let PsiOutput::Intersection(both) = &got.output else {
        bail!("no intersection");
    };
    Ok(PsiBenchReport {
        bench: "psi",
        protocol: args.protocol,
        size: n,
        intersection_size: both.len(),
        seconds,
        bytes_sent: got.bytes_sent + theirs.bytes_sent,
        peak_rss_mb: peak_rss_mb(),
        plaintext_seconds,
        ratio: seconds / plaintext_seconds.max(1e-9),
    })
}
