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

    /// Run role `role` over its sessions with the other roles (`peers`)
    /// with `input`: this party's output, the transcript hash of its
    /// sessions at the end and what it sent. The sessions stay open for
    /// what the parties say after (the result's commitment and their
    /// signatures of it).
    async fn run(
        &self,
        role: usize,
        peers: &mut Peers,
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
    /// The report of a run that ended with `output` on `peers`.
    pub fn of(output: O, peers: &Peers) -> Self {
        Ran {
            output,
            transcript: peers.transcript(),
            bytes_sent: peers.bytes_sent(),
        }
    }
}

/// One party's sessions with the other parties of a job, by role.
pub struct Peers {
    me: usize,
    sessions: Vec<Option<Session>>,
}

impl Peers {
    /// Role `me` of `n`, no sessions yet.
    pub fn new(me: usize, n: usize) -> Self {
        Peers {
            me,
            sessions: (0..n).map(|_| None).collect(),
        }
    }

    /// Role `me`'s one session with the other role of a two-party job.
    pub fn two(me: usize, s: Session) -> Self {
        let mut p = Peers::new(me, 2);
        p.insert(1 - me, s);
        p
    }

    /// This party's role.
    pub fn me(&self) -> usize {
        self.me
    }

    /// That these are the sessions of `role` (a protocol run as one role
    /// over another's sessions would talk to the wrong parties).
    pub fn check_role(&self, role: usize) -> Result<(), PrivacyError> {
        if self.me != role {
            return Err(PrivacyError::BadMessage(format!(
                "sessions of role {}, run as role {role}",
                self.me
            )));
        }
        Ok(())
    }

    /// Whether there is a session with `role`.
    pub fn has(&self, role: usize) -> bool {
        self.sessions.get(role).is_some_and(Option::is_some)
    }

    /// How many roles the job has.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether it has no roles.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Add the session with `role`.
    pub fn insert(&mut self, role: usize, s: Session) {
        if role < self.sessions.len() {
            self.sessions[role] = Some(s);
        }
    }

    /// The session with `role`.
    pub fn with(&mut self, role: usize) -> Result<&mut Session, PrivacyError> {
        self.sessions
            .get_mut(role)
            .and_then(Option::as_mut)
            .ok_or_else(|| PrivacyError::BadMessage(format!("no session with role {role}")))
    }

    /// The sessions with two different roles at once.
    pub fn pair(
        &mut self,
        a: usize,
        b: usize,
    ) -> Result<(&mut Session, &mut Session), PrivacyError> {
        if a == b || a >= self.sessions.len() || b >= self.sessions.len() {
            return Err(PrivacyError::BadMessage(format!(
                "no sessions with {a} and {b}"
            )));
        }
        let (lo, hi) = (a.min(b), a.max(b));
        let (left, right) = self.sessions.split_at_mut(hi);
        let (l, h) = (left[lo].as_mut(), right[0].as_mut());
        match (l, h) {
            (Some(l), Some(h)) if a < b => Ok((l, h)),
            (Some(l), Some(h)) => Ok((h, l)),
            _ => Err(PrivacyError::BadMessage(format!(
                "no sessions with {a} and {b}"
            ))),
        }
    }

    /// The hash of this party's sessions' transcripts, each under its pair
    /// of roles (for two parties, the same on both sides).
    pub fn transcript(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"tongtian/peers-transcript/v1");
        for (role, s) in self.sessions.iter().enumerate() {
            if let Some(s) = s {
                let (lo, hi) = (self.me.min(role) as u64, self.me.max(role) as u64);
                h.update(lo.to_le_bytes());
                h.update(hi.to_le_bytes());
                h.update(s.transcript());
            }
        }
        h.finalize().into()
    }

    /// Bytes this party sent on all its sessions.
    pub fn bytes_sent(&self) -> u64 {
        self.sessions
            .iter()
            .flatten()
            .map(Session::bytes_sent)
            .sum()
    }
}

/// `n` parties on this machine, every pair joined by a real session over
/// 127.0.0.1 (keys derived from `job`): for benchmarks and tests that run
/// every party in one process.
pub async fn loopback_mesh(
    n: usize,
    job: [u8; 32],
    cfg: crate::SessionConfig,
) -> Result<Vec<Peers>, PrivacyError> {
    let keys: Vec<tongtian_crypto::Keypair> = (0..n)
        .map(|i| {
            tongtian_crypto::Keypair::from_seed(
                tongtian_crypto::SuiteId::Standard,
                &[&job[..], &(i as u64).to_le_bytes()].concat(),
            )
        })
        .collect();
    let mut peers: Vec<Peers> = (0..n).map(|i| Peers::new(i, n)).collect();
    for i in 0..n {
        for j in i + 1..n {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = l.local_addr()?.to_string();
            let (ki, kj) = (keys[i].clone(), keys[j].clone());
            let j_pub = kj.public_key().to_vec();
            let i_pub = ki.public_key().to_vec();
            let accept = tokio::spawn(async move {
                let (s, _) = l.accept().await?;
                Session::accept(s, &ki, &[j_pub], job, cfg).await
            });
            let sj = Session::connect(&addr, &kj, &i_pub, job, cfg).await?;
            let si = accept
                .await
                .map_err(|e| PrivacyError::BadMessage(format!("accept: {e}")))??;
            peers[i].insert(j, si);
            peers[j].insert(i, sj);
        }
    }
    Ok(peers)
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

/// Every role's output of a two-party PSI, in the clear: the receiver's
/// intersection (or its size), nothing for the sender.
pub fn psi_reference(params: &PsiParams, inputs: &[PsiInput]) -> Vec<PsiOutput> {
    let (r, s) = (&inputs[0].keys, &inputs[1].keys);
    vec![
        plain_intersection(r, s, params.cardinality),
        PsiOutput::Nothing,
    ]
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
