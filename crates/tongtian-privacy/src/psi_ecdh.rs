//! `psi-ecdh`: Diffie-Hellman private set intersection on ristretto255.
//!
//! The receiver holds X and a secret scalar `a`, the sender Y and `b`.
//! Each key is hashed to the group properly (SHA-512 of a domain, the job
//! id and the key, mapped with ristretto255's `from_uniform_bytes`, the
//! hash-to-group of RFC 9496). The receiver sends `a·H(x)` for each x; the
//! sender answers `b·(a·H(x))` in the same order and sends `b·H(y)` for
//! each y; the receiver computes `a·(b·H(y))` and keeps the x whose
//! `ab·H(x)` is among them. Points travel compressed (32 bytes) in batches
//! of [`BATCH`]; both parties send and receive at once, and scalar
//! multiplications run off the async threads, so computation and the
//! network overlap.
//!
//! **Security**: semi-honest parties, the decisional Diffie-Hellman
//! assumption in ristretto255 and the hash modelled as a random oracle.
//! What leaks: each side learns the other's set size; the sender learns
//! nothing else, the receiver the intersection (or, with `cardinality`,
//! only its size). A malicious sender can make the receiver's result wrong
//! (by answering with other points) but cannot learn more than the sizes;
//! off-curve or malformed points are refused.

use crate::protocol::Peers;
use crate::protocol::{
    normalise, psi_reference, PrivacyProtocol, PsiInput, PsiOutput, PsiParams, Ran,
};
use crate::session::{SessionRx, SessionTx};
use crate::PrivacyError;
use async_trait::async_trait;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand::RngCore;
use sha2::{Digest, Sha512};
use std::collections::HashSet;

/// Points per message.
pub const BATCH: usize = 4096;

const DOMAIN: &[u8] = b"tongtian/psi-ecdh/v1";

/// The protocol.
#[derive(Debug, Default, Clone, Copy)]
pub struct PsiEcdh;

fn hash_to_group(job: &[u8; 32], key: &str) -> RistrettoPoint {
    let mut h = Sha512::new();
    h.update(DOMAIN);
    h.update(job);
    h.update((key.len() as u64).to_le_bytes());
    h.update(key.as_bytes());
    let wide: [u8; 64] = h.finalize().into();
    RistrettoPoint::from_uniform_bytes(&wide)
}

fn random_scalar() -> Scalar {
    let mut wide = [0u8; 64];
    rand::thread_rng().fill_bytes(&mut wide);
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// `s·H(k)` for each key, compressed and concatenated.
fn blind_keys(job: [u8; 32], s: Scalar, keys: Vec<String>) -> Vec<u8> {
    let mut out = Vec::with_capacity(keys.len() * 32);
    for k in &keys {
        out.extend_from_slice((s * hash_to_group(&job, k)).compress().as_bytes());
    }
    out
}

/// `s·P` for each compressed point of `bytes`.
fn blind_points(s: Scalar, bytes: &[u8]) -> Result<Vec<u8>, PrivacyError> {
    let mut out = Vec::with_capacity(bytes.len());
    for p in bytes.chunks_exact(32) {
        let point = CompressedRistretto::from_slice(p)
            .ok()
            .and_then(|c| c.decompress())
            .ok_or_else(|| {
                PrivacyError::BadMessage("a point that is not on ristretto255".into())
            })?;
        out.extend_from_slice((s * point).compress().as_bytes());
    }
    Ok(out)
}

async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PrivacyError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PrivacyError::BadMessage(format!("worker: {e}")))
}

fn count_of(msg: &[u8], max: usize) -> Result<usize, PrivacyError> {
    let n: [u8; 8] = msg
        .try_into()
        .map_err(|_| PrivacyError::BadMessage("a set size is 8 bytes".into()))?;
    let n = u64::from_le_bytes(n) as usize;
    if n > max {
        return Err(PrivacyError::BadMessage(format!(
            "a set of {n} keys, over the job's {max}"
        )));
    }
    Ok(n)
}

/// Receive `n` points in batches, checking each batch's length.
async fn recv_points(rx: &mut SessionRx, n: usize) -> Result<Vec<Vec<u8>>, PrivacyError> {
    let mut batches = Vec::new();
    let mut left = n;
    while left > 0 {
        let want = left.min(BATCH);
        let b = rx.recv().await?;
        if b.len() != want * 32 {
            return Err(PrivacyError::BadMessage(format!(
                "a batch of {} bytes, {} expected",
                b.len(),
                want * 32
            )));
        }
        left -= want;
        batches.push(b);
    }
    Ok(batches)
}

/// Blind `keys` with `s` batch by batch and send each batch as it is done.
async fn send_blinded(
    tx: &mut SessionTx,
    job: [u8; 32],
    s: Scalar,
    keys: &[String],
) -> Result<(), PrivacyError> {
    tx.send(&(keys.len() as u64).to_le_bytes()).await?;
    for chunk in keys.chunks(BATCH) {
        let chunk = chunk.to_vec();
        let bytes = off_thread(move || blind_keys(job, s, chunk)).await?;
        tx.send(&bytes).await?;
    }
    Ok(())
}

impl PsiEcdh {
    async fn receiver(
        peers: &mut Peers,
        params: &PsiParams,
        keys: Vec<String>,
    ) -> Result<Ran<PsiOutput>, PrivacyError> {
        let session = peers.with(1 - peers.me())?;
        let (tx, rx) = session.halves();
        let (job, max) = (params.job, params.max_set);
        let a = random_scalar();
        let send = send_blinded(tx, job, a, &keys);
        let receive = async {
            let n = count_of(&rx.recv().await?, max)?;
            // The sender's blinded set, then its answers to ours.
            let theirs = recv_points(rx, n).await?;
            let mut set = HashSet::with_capacity(n);
            for b in theirs {
                let twice = off_thread(move || blind_points(a, &b)).await??;
                for p in twice.chunks_exact(32) {
                    set.insert(<[u8; 32]>::try_from(p).expect("32-byte chunks"));
                }
            }
            let answers = recv_points(rx, keys.len()).await?;
            Ok::<_, PrivacyError>((set, answers))
        };
        let (sent, got) = tokio::join!(send, receive);
        sent?;
        let (set, answers) = got?;
        let mut both: Vec<String> = answers
            .iter()
            .flat_map(|b| b.chunks_exact(32))
            .zip(&keys)
            .filter(|(p, _)| set.contains(&<[u8; 32]>::try_from(*p).expect("32-byte chunks")))
            .map(|(_, k)| k.clone())
            .collect();
        both.sort();
        let out = if params.cardinality {
            PsiOutput::Size(both.len())
        } else {
            PsiOutput::Intersection(both)
        };
        Ok(Ran::of(out, peers))
    }

    async fn sender(
        peers: &mut Peers,
        params: &PsiParams,
        keys: Vec<String>,
    ) -> Result<Ran<PsiOutput>, PrivacyError> {
        let session = peers.with(1 - peers.me())?;
        let (tx, rx) = session.halves();
        let (job, max) = (params.job, params.max_set);
        let b = random_scalar();
        // Read the receiver's points as they come while our own go out.
        let (queue_tx, mut queue) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
        let receive = async move {
            let n = count_of(&rx.recv().await?, max)?;
            let mut left = n;
            while left > 0 {
                let want = left.min(BATCH);
                let batch = rx.recv().await?;
                if batch.len() != want * 32 {
                    return Err(PrivacyError::BadMessage(format!(
                        "a batch of {} bytes, {} expected",
                        batch.len(),
                        want * 32
                    )));
                }
                left -= want;
                // The sending side answers in order.
                if queue_tx.send(batch).await.is_err() {
                    break;
                }
            }
            Ok::<_, PrivacyError>(())
        };
        let send = async {
            send_blinded(tx, job, b, &keys).await?;
            while let Some(batch) = queue.recv().await {
                let answer = off_thread(move || blind_points(b, &batch)).await??;
                tx.send(&answer).await?;
            }
            Ok::<_, PrivacyError>(())
        };
        let (got, sent) = tokio::join!(receive, send);
        got?;
        sent?;
        Ok(Ran::of(PsiOutput::Nothing, peers))
    }
}

#[async_trait]
impl PrivacyProtocol for PsiEcdh {
    type Params = PsiParams;
    type Input = PsiInput;
    type Output = PsiOutput;

    fn id(&self) -> &'static str {
        "psi-ecdh"
    }

    fn roles(&self) -> &'static [&'static str] {
        &["receiver", "sender"]
    }

    async fn run(
        &self,
        role: usize,
        peers: &mut Peers,
        params: &PsiParams,
        input: PsiInput,
    ) -> Result<Ran<PsiOutput>, PrivacyError> {
        peers.check_role(role)?;
        let keys = normalise(&input.keys);
        match role {
            0 => Self::receiver(peers, params, keys).await,
            1 => Self::sender(peers, params, keys).await,
            r => Err(PrivacyError::BadMessage(format!(
                "psi-ecdh has roles 0 and 1, not {r}"
            ))),
        }
    }

    fn reference(&self, params: &PsiParams, inputs: Vec<PsiInput>) -> Vec<PsiOutput> {
        psi_reference(params, &inputs)
    }
}
