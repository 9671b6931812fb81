//! What agents (and an output account fetching a result) say to each
//! other on a session, around a protocol's own messages.

use borsh::{BorshDeserialize, BorshSerialize};
use tongtian_privacy::{PrivacyError, Session};

/// A job's tag as sessions bind it and protocols hash under it: the chain
/// id and the job id (8 bytes each, big-endian), then a domain. It names
/// one job on one chain, so a message of another job cannot enter.
pub fn job_tag(chain_id: u64, job: u64) -> [u8; 32] {
    let mut t = [0u8; 32];
    t[..8].copy_from_slice(&chain_id.to_be_bytes());
    t[8..16].copy_from_slice(&job.to_be_bytes());
    t[16..].copy_from_slice(b"tongtian/job/v1\0");
    t
}

/// The chain and job a tag names, if it is one.
pub fn untag(tag: &[u8; 32]) -> Option<(u64, u64)> {
    if &tag[16..] != b"tongtian/job/v1\0" {
        return None;
    }
    Some((
        u64::from_be_bytes(tag[..8].try_into().ok()?),
        u64::from_be_bytes(tag[8..16].try_into().ok()?),
    ))
}

/// The first message of a session to an agent.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub enum Request {
    /// Run the job: the dialling party's role `role` with the agent's
    /// role `to` (lower).
    Run {
        /// The dialling party's role.
        role: u32,
        /// The role it calls.
        to: u32,
    },
    /// Send the job's output (the job's output account only).
    Fetch,
}

/// After a run, every other role to role 0: the transcripts of its
/// sessions with the roles other than 0, as `(lower role, higher role,
/// transcript)`.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct Report {
    /// The sessions.
    pub pairs: Vec<(u32, u32, [u8; 32])>,
}

/// Then role 0 to every other role: the result's commitment and every
/// pair's session transcript, from which all derive the job's transcript
/// hash ([`job_transcript`]) and sign the completion.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct Finish {
    /// The result's commitment.
    pub result_commitment: [u8; 32],
    /// Every pair's transcript, in pair order.
    pub transcripts: Vec<(u32, u32, [u8; 32])>,
}

/// The job's transcript hash: every pair of roles' session transcript, in
/// pair order.
pub fn job_transcript(pairs: &[(u32, u32, [u8; 32])]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"tongtian/job-transcript/v1");
    for (a, b, t) in pairs {
        h.update(a.to_le_bytes());
        h.update(b.to_le_bytes());
        h.update(t);
    }
    h.finalize().into()
}

/// The other roles' answer to [`Finish`]: their signature of the same
/// completion over their own transcript.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct Countersign {
    /// The signature.
    pub signature: Vec<u8>,
}

/// An agent's answer to [`Request::Fetch`].
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub enum Fetched {
    /// The output: the result file's bytes and the salt of its commitment.
    Result {
        /// The salt.
        salt: [u8; 32],
        /// The file.
        bytes: Vec<u8>,
    },
    /// Refused, with a code and why.
    Refused {
        /// A stable code.
        code: String,
        /// Why.
        message: String,
    },
}

/// Send a borsh value as one message.
pub async fn put<T: BorshSerialize>(s: &mut Session, v: &T) -> Result<(), PrivacyError> {
    s.send(&borsh::to_vec(v).expect("wire values encode")).await
}

/// Receive one message as a borsh value.
pub async fn get<T: BorshDeserialize>(s: &mut Session) -> Result<T, PrivacyError> {
    let b = s.recv().await?;
    borsh::from_slice(&b).map_err(|e| PrivacyError::BadMessage(format!("agent message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_one_job_on_one_chain() {
        let t = job_tag(7, 42);
        assert_eq!(untag(&t), Some((7, 42)));
        assert_ne!(job_tag(7, 43), t);
        assert_ne!(job_tag(8, 42), t);
        assert_eq!(untag(&[3u8; 32]), None);
    }
}
