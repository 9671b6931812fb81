//! A job's output: the file role 0 writes into its `results/`, its
//! salted commitment (what the chain records), and the authenticated
//! fetch by which the job's output account gets it.

use crate::wire::{self, Fetched, Request};
use crate::AgentError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tongtian_crypto::{suite, Keypair, SuiteId};
use tongtian_privacy::{Session, SessionConfig};
use tongtian_types::H256;

/// The commitment to a job's output: the chain suite's hash of a domain,
/// the job's tag, a fresh salt (so a guessable result, a size, cannot be
/// found from the commitment) and the output file's bytes.
pub fn result_commitment(s: SuiteId, tag: &[u8; 32], salt: &[u8; 32], bytes: &[u8]) -> H256 {
    let mut b = b"tongtian/job-result/v1".to_vec();
    b.extend_from_slice(tag);
    b.extend_from_slice(salt);
    b.extend_from_slice(bytes);
    H256(suite(s).hash(&b))
}

/// What an agent keeps of a job it produced the output of, beside the
/// output file (`results/job-N.record.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResultRecord {
    /// The job.
    pub job: u64,
    /// The protocol.
    pub protocol: String,
    /// The output file (`results/job-N.csv` for PSI, `job-N.json` for
    /// statistics).
    pub file: PathBuf,
    /// The commitment's salt (hex).
    pub salt: String,
    /// The commitment.
    pub result_commitment: H256,
    /// The session transcript's hash.
    pub transcript_hash: H256,
    /// The intersection's size (PSI).
    pub intersection_size: Option<usize>,
}

/// Where job `job`'s output (with extension `ext`) and record go under
/// `home`.
pub fn paths(home: &Path, job: u64, ext: &str) -> (PathBuf, PathBuf) {
    (
        home.join("results").join(format!("job-{job}.{ext}")),
        record_path(home, job),
    )
}

/// Where job `job`'s record is kept under `home`.
pub fn record_path(home: &Path, job: u64) -> PathBuf {
    home.join("results").join(format!("job-{job}.record.json"))
}

/// A fetched output, checked against the commitment on chain.
#[derive(Clone, Debug)]
pub struct Output {
    /// The output file's bytes.
    pub bytes: Vec<u8>,
    /// Its commitment (equal to the chain's).
    pub commitment: H256,
}

/// Fetch job `job`'s output from the agent at `addr` (key `agent_key`)
/// as the job's output account `me`, and check it against `on_chain`.
pub async fn fetch(
    addr: &str,
    agent_key: &[u8],
    me: &Keypair,
    chain_id: u64,
    job: u64,
    on_chain: &H256,
    cfg: SessionConfig,
) -> Result<Output, AgentError> {
    let tag = wire::job_tag(chain_id, job);
    let mut s = Session::connect(addr, me, agent_key, tag, cfg).await?;
    wire::put(&mut s, &Request::Fetch).await?;
    match wire::get::<Fetched>(&mut s).await? {
        Fetched::Result { salt, bytes } => {
            let c = result_commitment(me.suite(), &tag, &salt, &bytes);
            if c != *on_chain {
                return Err(AgentError::new(
                    "result_mismatch",
                    format!("the agent's output commits to {c}, the chain records {on_chain}"),
                ));
            }
            Ok(Output {
                bytes,
                commitment: c,
            })
        }
        Fetched::Refused { code, message } => Err(AgentError::Refused { code, message }),
    }
}
