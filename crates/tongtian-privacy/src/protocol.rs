//! The seam every privacy protocol plugs into.

use crate::session::Session;
use crate::PrivacyError;
use async_trait::async_trait;

/// A privacy-preserving computation between parties, each running its
/// role with the others over [`Session`]s; `reference` computes the same
/// answer in the clear (for tests and for benchmarks' ratios).
#[async_trait]
pub trait PrivacyProtocol: Send + Sync {
    /// The job's parameters (the same for every party).
    type Params: Send + Sync;
    /// What one party brings.
    type Input: Send;
    /// What one party gets.
    type Output: Send;

    /// The protocol's stable id, as grants and jobs name it (`psi-ecdh`).
    fn id(&self) -> &'static str;

    /// Its roles, in order (a party's role is its index here).
    fn roles(&self) -> &'static [&'static str];

    /// Run role `role` over `session` with `input`: this party's output,
    /// the session's transcript hash at the end and what it sent. The
    /// session stays open for what the parties say after (the result's
    /// commitment and their signatures of it).
    async fn run(
        &self,
        role: usize,
        session: &mut Session,
        params: &Self::Params,
        input: Self::Input,
    ) -> Result<Ran<Self::Output>, PrivacyError>;

    /// Every role's output, computed in the clear from every role's input
    /// (in role order).
    fn reference(&self, params: &Self::Params, inputs: Vec<Self::Input>) -> Vec<Self::Output>;
}

/// What one party's run ended with.
#[derive(Clone, Debug)]
pub struct Ran<O> {
    /// Its output.
    pub output: O,
    /// The session's transcript hash (the same on both sides).
    pub transcript: [u8; 32],
    /// Bytes it sent.
    pub bytes_sent: u64,
}

impl<O> Ran<O> {
    /// The report of a run that ended with `output` on `session`.
    pub fn of(output: O, session: &Session) -> Self {
        Ran {
            output,
            transcript: session.transcript(),
            bytes_sent: session.bytes_sent(),
        }
    }
}

/// A PSI party's input: the join column's values, one per row.
#[derive(Clone, Debug, Default)]
pub struct PsiInput {
    /// The keys (normalised by the protocol: trimmed, duplicates dropped).
    pub keys: Vec<String>,
}

/// A PSI party's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PsiOutput {
    /// The intersection, sorted (the receiver).
    Intersection(Vec<String>),
    /// Its size only (the receiver, with `cardinality`).
    Size(usize),
    /// Nothing but the other set's size (the sender).
    Nothing,
}

/// A PSI job's parameters.
#[derive(Clone, Debug)]
pub struct PsiParams {
    /// The job id: sessions bind it, and keys are hashed under it, so
    /// nothing links across jobs.
    pub job: [u8; 32],
    /// Reveal only the intersection's size to the receiver.
    pub cardinality: bool,
    /// The largest set either side takes from the other.
    pub max_set: usize,
}

impl PsiParams {
    /// Parameters for job `job`.
    pub fn new(job: [u8; 32]) -> Self {
        PsiParams {
            job,
            cardinality: false,
            max_set: 1 << 24,
        }
    }
}

/// Keys as PSI compares them: trimmed, each once, in first-seen order.
pub fn normalise(keys: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    keys.iter()
        .map(|k| k.trim().to_string())
        .filter(|k| seen.insert(k.clone()))
        .collect()
}

/// The plaintext intersection (a hash join): the receiver's output.
pub fn plain_intersection(receiver: &[String], sender: &[String], cardinality: bool) -> PsiOutput {
    let theirs: std::collections::HashSet<String> = normalise(sender).into_iter().collect();
    let mut both: Vec<String> = normalise(receiver)
        .into_iter()
        .filter(|k| theirs.contains(k))
        .collect();
    both.sort();
    if cardinality {
        PsiOutput::Size(both.len())
    } else {
        PsiOutput::Intersection(both)
    }
}
