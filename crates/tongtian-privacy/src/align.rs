//! Rows of vertically split data put in one order at every party: each
//! sorts its rows by the key column (trimmed) and sends the others a hash
//! of the job's tag and its sorted keys; all must hold the same entities,
//! else the run stops having revealed only that.

use crate::protocol::Peers;
use crate::PrivacyError;
use sha2::{Digest, Sha256};

fn bad(m: impl Into<String>) -> PrivacyError {
    PrivacyError::BadMessage(m.into())
}

/// The row order: indices sorted by trimmed key; duplicates refused.
pub fn order(keys: &[String]) -> Result<Vec<usize>, PrivacyError> {
    let trimmed: Vec<&str> = keys.iter().map(|k| k.trim()).collect();
    let mut idx: Vec<usize> = (0..keys.len()).collect();
    idx.sort_unstable_by(|a, b| trimmed[*a].cmp(trimmed[*b]));
    if idx.windows(2).any(|w| trimmed[w[0]] == trimmed[w[1]]) {
        return Err(bad("a key appears twice in one party's rows"));
    }
    Ok(idx)
}

fn digest(job: &[u8; 32], keys: &[String], idx: &[usize]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"tongtian/aligned-keys/v1");
    h.update(job);
    for &i in idx {
        let k = keys[i].trim();
        h.update((k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
    }
    h.finalize().into()
}

/// Sort this party's rows by key and check with every other party that
/// all hold the same keys: the keys and the order (row indices by key).
pub async fn align(
    peers: &mut Peers,
    job: [u8; 32],
    keys: Vec<String>,
) -> Result<(Vec<String>, Vec<usize>), PrivacyError> {
    let (keys, idx) = tokio::task::spawn_blocking(move || {
        let idx = order(&keys);
        (keys, idx)
    })
    .await
    .map_err(|e| bad(format!("worker: {e}")))?;
    let idx = idx?;
    let mut msg = digest(&job, &keys, &idx).to_vec();
    msg.extend_from_slice(&(keys.len() as u64).to_le_bytes());
    let me = peers.me();
    let others: Vec<usize> = (0..peers.len()).filter(|r| *r != me).collect();
    for r in &others {
        peers.with(*r)?.send(&msg).await?;
    }
    for r in &others {
        if peers.with(*r)?.recv().await? != msg {
            return Err(bad("the parties' key sets differ"));
        }
    }
    Ok((keys, idx))
}
