//! The party agent: one per data owner, beside (not inside) the owner's
//! node.
//!
//! It holds the owner's datasets in `DIR/data/` (see [`holdings`]),
//! watches the chain for jobs naming its assets, checks each job's grant
//! on chain before it touches any data, accepts the job, runs its role in
//! the job's protocol with the other parties' agents (found at the
//! addresses their assets registered, over [`tongtian_privacy::Session`]s
//! bound to the job), writes its own output only into `DIR/results/`, and
//! signs the job's completion. A job whose peer goes away ends at its
//! timeout: the agent aborts it on chain (the escrow goes back) and goes
//! on with the next.
//!
//! Sessions form a star: every role dials role 0's agent, which collects
//! the other roles' signatures after the run (see [`wire`]) and completes
//! the job on chain. Role 0 also serves the output to the job's output
//! account, and to nobody else ([`results::fetch`]).

pub mod compute;
pub mod holdings;
pub mod results;
pub mod wire;

use holdings::Holdings;
use parking_lot::Mutex;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tongtian_client::{Client, ClientError};
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_data::data::Asset;
use tongtian_data::job::{completion_digest, Job, JobMsg, JobStatus, PartySignature};
use tongtian_data::rows::Table;
use tongtian_privacy::{Peers, PrivacyError, Session, SessionConfig};
use tongtian_types::{Address, Transaction, H256};
use wire::{Countersign, Fetched, Finish, Report, Request};

pub use compute::SUPPORTED;

/// Why an agent could not do something.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The node answered with an error.
    #[error("node: {0}")]
    Node(#[from] ClientError),
    /// A session or protocol failed.
    #[error("{0}")]
    Privacy(#[from] PrivacyError),
    /// A local file problem.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The other side or the chain refused.
    #[error("{code}: {message}")]
    Refused {
        /// A stable code.
        code: String,
        /// Why.
        message: String,
    },
}

impl AgentError {
    /// A refusal with `code`.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        AgentError::Refused {
            code: code.into(),
            message: message.into(),
        }
    }

    /// Its stable code.
    pub fn code(&self) -> String {
        match self {
            AgentError::Node(e) => e.stable_code().to_string(),
            AgentError::Privacy(e) => e.code().to_string(),
            AgentError::Io(_) => "io".into(),
            AgentError::Refused { code, .. } => code.clone(),
        }
    }
}

/// A job's parameters as agents read them (JSON in the job's `params`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct JobParams {
    /// The column the parties join on.
    pub key_column: String,
    /// PSI: reveal only the intersection's size.
    #[serde(default)]
    pub cardinality: bool,
    /// `stats`: which statistics (`count`, `sum`, `mean`, `variance`,
    /// `corr`; empty: all).
    #[serde(default)]
    pub ops: Vec<String>,
    /// `lr-vertical`: the label column (in the first asset).
    #[serde(default)]
    pub label: Option<String>,
    /// `lr-vertical`: epochs.
    #[serde(default)]
    pub epochs: Option<u32>,
    /// `lr-vertical`: the step size.
    #[serde(default)]
    pub learning_rate: Option<f64>,
    /// `lr-vertical`, `fl`: the held-out fraction.
    #[serde(default)]
    pub holdout: Option<f64>,
    /// `fl`: rounds.
    #[serde(default)]
    pub rounds: Option<u32>,
    /// `fl`: clients a round needs.
    #[serde(default)]
    pub min_clients: Option<usize>,
    /// `fl`: hidden units of a perceptron (none: logistic regression).
    #[serde(default)]
    pub hidden: Option<usize>,
    /// `stats`: histogram bin edges (ascending).
    #[serde(default)]
    pub bins: Vec<f64>,
}

impl JobParams {
    /// As the job's `params` bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("parameters encode")
    }

    /// From a job's `params`.
    pub fn decode(b: &[u8]) -> Result<Self, AgentError> {
        serde_json::from_slice(b)
            .map_err(|e| AgentError::new("bad_params", format!("the job's parameters: {e}")))
    }
}

/// How an agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Its home: datasets in `data/`, outputs in `results/`.
    pub home: PathBuf,
    /// The node's API.
    pub node: String,
    /// The chain (default: the node's main chain).
    pub chain: Option<String>,
    /// Where it takes sessions (the address its assets registered).
    pub listen: SocketAddr,
    /// Each session's bounds; also how long a seat waits for its peers.
    pub session: SessionConfig,
    /// How often it reads the chain's jobs.
    pub poll: Duration,
}

/// One job's seat (an asset of ours in it) and how far it got.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seat {
    Accepted,
    Declined(String),
    Running,
    Done,
    Failed(String),
}

type Call = (usize, Session);
type Slot = (mpsc::Sender<Call>, Option<mpsc::Receiver<Call>>);

struct Inner {
    cfg: AgentConfig,
    key: Keypair,
    me: String,
    client: Client,
    suite: SuiteId,
    chain_id: u64,
    holdings: Mutex<Holdings>,
    seats: Mutex<HashMap<(u64, usize), Seat>>,
    aborted: Mutex<std::collections::HashSet<u64>>,
    slots: Mutex<HashMap<(u64, usize), Slot>>,
    txs: tokio::sync::Mutex<()>,
}

/// A running agent.
pub struct Agent {
    inner: Arc<Inner>,
    addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Agent {
    /// Bind the listener, read the chain's suite and id, and start
    /// watching jobs.
    pub async fn start(cfg: AgentConfig, key: Keypair) -> Result<Agent, AgentError> {
        let client = Client::new(&cfg.node).chain(cfg.chain.as_deref());
        let status = client.status().await?;
        let suite: SuiteId = status
            .suite
            .parse()
            .map_err(|_| AgentError::new("bad_suite", status.suite.clone()))?;
        if suite != key.suite() {
            return Err(AgentError::new(
                "wrong_suite",
                format!("the key is {}, the chain {suite}", key.suite()),
            ));
        }
        std::fs::create_dir_all(cfg.home.join("data"))?;
        std::fs::create_dir_all(cfg.home.join("results"))?;
        let listener = TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            me: hex::encode(key.public_key()),
            holdings: Mutex::new(Holdings::new(cfg.home.join("data"), suite)),
            cfg,
            key,
            client,
            suite,
            chain_id: status.chain_id,
            seats: Mutex::new(HashMap::new()),
            aborted: Mutex::new(Default::default()),
            slots: Mutex::new(HashMap::new()),
            txs: tokio::sync::Mutex::new(()),
        });
        tracing::info!(%addr, chain_id = status.chain_id, "party agent listening");
        let listen = tokio::spawn(Inner::listen(inner.clone(), listener));
        let watch = tokio::spawn(Inner::watch(inner.clone()));
        Ok(Agent {
            inner,
            addr,
            tasks: vec![listen, watch],
        })
    }

    /// Where it takes sessions.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its account.
    pub fn address(&self) -> Address {
        Address::from_public_key(self.inner.suite, self.inner.key.public_key())
    }

    /// Stop it.
    pub fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Inner {
    async fn watch(self: Arc<Self>) {
        loop {
            if let Err(e) = self.clone().tick().await {
                tracing::warn!(code = %e.code(), "reading jobs: {e}");
            }
            tokio::time::sleep(self.cfg.poll).await;
        }
    }

    async fn tick(self: Arc<Self>) -> Result<(), AgentError> {
        let height = self.client.status().await?.height;
        let v = self
            .client
            .module_query(
                "job",
                &format!("jobs?party={}&status=open,running", self.me),
            )
            .await?;
        let jobs: Vec<Job> = serde_json::from_value(v)
            .map_err(|e| AgentError::new("bad_answer", format!("jobs: {e}")))?;
        for j in jobs {
            if height > j.deadline {
                // Past its timeout: abort it (whoever is first), escrow back.
                if self.aborted.lock().insert(j.id) {
                    match self.send(JobMsg::Abort { job: j.id }).await {
                        Ok(()) => tracing::info!(job = j.id, "aborted after its timeout"),
                        Err(e) => tracing::info!(job = j.id, code = %e.code(), "abort: {e}"),
                    }
                }
                continue;
            }
            for (role, asset) in j.assets.iter().enumerate() {
                if j.parties.get(role) != Some(&self.me) {
                    continue;
                }
                let seat = self.seats.lock().get(&(j.id, role)).cloned();
                match (j.status, seat) {
                    (JobStatus::Open, None) if !j.accepted.contains(asset) => {
                        let s = match self.accept(&j, *asset, height).await {
                            Ok(()) => {
                                tracing::info!(job = j.id, asset, role, "accepted");
                                Seat::Accepted
                            }
                            Err(e) => {
                                tracing::warn!(job = j.id, asset, code = %e.code(), "declined: {e}");
                                Seat::Declined(e.code())
                            }
                        };
                        self.seats.lock().insert((j.id, role), s);
                    }
                    (JobStatus::Running, None | Some(Seat::Accepted)) => {
                        self.seats.lock().insert((j.id, role), Seat::Running);
                        let me = self.clone();
                        let job = j.clone();
                        tokio::spawn(async move {
                            let s = match me.clone().run_seat(&job, role).await {
                                Ok(()) => Seat::Done,
                                Err(e) => {
                                    tracing::warn!(job = job.id, role, code = %e.code(), "run failed: {e}");
                                    Seat::Failed(e.code())
                                }
                            };
                            me.seats.lock().insert((job.id, role), s);
                        });
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    async fn asset(&self, id: u64) -> Result<Asset, AgentError> {
        let v = self
            .client
            .module_query("data", &format!("assets/{id}"))
            .await?;
        serde_json::from_value(v).map_err(|e| AgentError::new("bad_answer", format!("asset: {e}")))
    }

    /// Check everything before accepting: the grant on chain first, then
    /// that we hold the asset's rows and can run the protocol on them.
    async fn accept(&self, j: &Job, asset: u64, height: u64) -> Result<(), AgentError> {
        let a = self.asset(asset).await?;
        if j.requester != a.owner {
            self.client
                .module_query(
                    "data",
                    &format!(
                        "assets/{asset}/authorize?user={}&protocol={}&columns={}&at={}",
                        j.requester,
                        j.protocol,
                        j.columns.join(","),
                        height + 1
                    ),
                )
                .await?;
        }
        compute::parties(&j.protocol, j.assets.len())?;
        let params = JobParams::decode(&j.params)?;
        let file = self.held(&a)?;
        let t = Table::read(&file).map_err(|e| AgentError::new(e.code(), e.to_string()))?;
        compute::check(j, &params, &t)?;
        self.send(JobMsg::Accept { job: j.id, asset }).await
    }

    fn held(&self, a: &Asset) -> Result<PathBuf, AgentError> {
        if a.agent_key != self.key.public_key() {
            return Err(AgentError::new(
                "asset_not_held",
                format!("asset {} names another agent", a.id),
            ));
        }
        let mut holdings = self.holdings.lock();
        let found = holdings.find(&a.commitment);
        found.ok_or_else(|| {
            AgentError::new(
                "asset_not_held",
                format!(
                    "no file in {} commits to asset {}'s root {}",
                    holdings.dir().display(),
                    a.id,
                    a.commitment
                ),
            )
        })
    }

    /// Sign `msgs` with consecutive nonces, submit them all, then wait
    /// for every one to be committed (a job's rounds land in a block or
    /// two instead of one block each).
    async fn send_all(&self, msgs: Vec<JobMsg>, within: Duration) -> Result<(), AgentError> {
        let _one_at_a_time = self.txs.lock().await;
        let from = Address::from_public_key(self.suite, self.key.public_key());
        let nonce = self.client.account(&from).await?.pending_nonce;
        let mut hashes = Vec::new();
        for (k, msg) in msgs.iter().enumerate() {
            let tx = Transaction {
                chain_id: self.chain_id,
                nonce: nonce + k as u64,
                gas_limit: 1_000_000,
                gas_price: 1,
                action: msg.action(),
            }
            .sign(&self.key);
            hashes.push(self.client.submit(&tx).await?);
        }
        for h in hashes {
            let r = self.client.wait_receipt(&h, within).await?;
            if let tongtian_types::TxStatus::Failed { code, message } = r.status {
                return Err(AgentError::Refused { code, message });
            }
        }
        Ok(())
    }

    /// Sign and send a `job` message as this agent's account, and wait for
    /// it to be committed.
    async fn send(&self, msg: JobMsg) -> Result<(), AgentError> {
        self.send_all(vec![msg], Duration::from_secs(30)).await
    }

    /// Where calls to our seat `role` of `job` wait for it.
    fn slot(&self, job: u64, role: usize) -> mpsc::Sender<Call> {
        let mut slots = self.slots.lock();
        slots
            .entry((job, role))
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(64);
                (tx, Some(rx))
            })
            .0
            .clone()
    }

    fn take_slot(&self, job: u64, role: usize) -> mpsc::Receiver<Call> {
        self.slot(job, role);
        let mut slots = self.slots.lock();
        let s = slots.get_mut(&(job, role)).expect("just made");
        s.1.take().unwrap_or_else(|| {
            let (tx, rx) = mpsc::channel(64);
            s.0 = tx;
            rx
        })
    }

    async fn listen(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.clone().incoming(stream).await {
                    tracing::info!(%peer, code = %e.code(), "session refused: {e}");
                }
            });
        }
    }

    async fn incoming(self: Arc<Self>, stream: tokio::net::TcpStream) -> Result<(), AgentError> {
        let inc = Session::incoming(stream, &self.key, self.cfg.session).await?;
        let (chain, id) = wire::untag(&inc.job())
            .filter(|(c, _)| *c == self.chain_id)
            .ok_or_else(|| AgentError::new("unknown_job", "a session for no job of this chain"))?;
        let v = self
            .client
            .module_query("job", &format!("jobs/{id}"))
            .await?;
        let j: Job = serde_json::from_value(v)
            .map_err(|e| AgentError::new("bad_answer", format!("job: {e}")))?;
        debug_assert_eq!(chain, self.chain_id);
        let peer_hex = hex::encode(inc.peer());
        let peer_addr = Address::from_public_key(self.suite, inc.peer());
        let party = j.parties.contains(&peer_hex);
        if !party && peer_addr != j.output_to {
            return Err(AgentError::new(
                "not_a_party",
                format!("{peer_addr} is neither a party of job {id} nor its output account"),
            ));
        }
        let allowed = vec![inc.peer().to_vec()];
        let mut s = inc.admit(&allowed).await?;
        match wire::get::<Request>(&mut s).await? {
            Request::Run { role, to } => {
                let (role, to) = (role as usize, to as usize);
                if j.status != JobStatus::Running
                    || j.parties.get(role) != Some(&peer_hex)
                    || to >= role
                    || j.parties.get(to) != Some(&self.me)
                {
                    return Err(AgentError::new(
                        "not_running",
                        format!("job {id} does not run role {role} with this agent's role {to}"),
                    ));
                }
                let _ = self.slot(id, to).send((role, s)).await;
                Ok(())
            }
            Request::Fetch => {
                let answer = self.output(&j, peer_addr);
                let refused = matches!(answer, Fetched::Refused { .. });
                wire::put(&mut s, &answer).await?;
                if refused {
                    return Err(AgentError::new("fetch_refused", format!("job {id}")));
                }
                tracing::info!(job = id, to = %peer_addr, "output sent to the output account");
                Ok(())
            }
        }
    }

    fn output(&self, j: &Job, to: Address) -> Fetched {
        let refuse = |code: &str, message: String| Fetched::Refused {
            code: code.into(),
            message,
        };
        if to != j.output_to {
            return refuse(
                "not_output_account",
                format!("job {}'s output goes to {}", j.id, j.output_to),
            );
        }
        if j.status != JobStatus::Completed {
            return refuse(
                "job_not_completed",
                format!("job {} is not completed", j.id),
            );
        }
        let record = results::record_path(&self.cfg.home, j.id);
        let rec: Option<results::ResultRecord> = std::fs::read(&record)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let bytes = rec.as_ref().map(|r| std::fs::read(&r.file));
        let (Some(rec), Some(Ok(bytes))) = (rec, bytes) else {
            return refuse(
                "no_output",
                format!("this agent holds no output of job {}", j.id),
            );
        };
        let mut salt = [0u8; 32];
        if hex::decode_to_slice(&rec.salt, &mut salt).is_err() {
            return refuse("no_output", "the output's record is damaged".into());
        }
        Fetched::Result { salt, bytes }
    }

    /// Run our seat `role` of running job `j`: sessions with every other
    /// role (dialling the lower roles, taking the higher ones' calls), the
    /// protocol, then the completion: every role reports its session
    /// transcripts to role 0, which sends them all back with the result's
    /// commitment; each role checks the ones it was part of and signs.
    async fn run_seat(self: Arc<Self>, j: &Job, role: usize) -> Result<(), AgentError> {
        let params = JobParams::decode(&j.params)?;
        let mut assets = Vec::new();
        for id in &j.assets {
            assets.push(self.asset(*id).await?);
        }
        let file = self.held(&assets[role])?;
        let table = Table::read(&file).map_err(|e| AgentError::new(e.code(), e.to_string()))?;
        let tag = wire::job_tag(self.chain_id, j.id);
        let n = compute::parties(&j.protocol, j.assets.len())?;
        let star = compute::star(&j.protocol);
        let wait = self.cfg.session.timeout;
        let started = std::time::Instant::now();

        // Every pair of roles gets one session.
        let mut peers = Peers::new(role, n);
        let dial = if star { role.min(1) } else { role };
        for (to, a) in assets.iter().enumerate().take(dial) {
            let mut s = loop {
                match Session::connect(&a.agent, &self.key, &a.agent_key, tag, self.cfg.session)
                    .await
                {
                    Ok(s) => break s,
                    Err(e) if started.elapsed() < wait => {
                        tracing::debug!(job = j.id, to, "dialling: {e}");
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            wire::put(
                &mut s,
                &Request::Run {
                    role: role as u32,
                    to: to as u32,
                },
            )
            .await?;
            peers.insert(to, s);
        }
        let mut calls = self.take_slot(j.id, role);
        let callers = if star && role > 0 { 0 } else { n - 1 - role };
        for _ in 0..callers {
            let left = wait.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, calls.recv()).await {
                Ok(Some((from, s))) => peers.insert(from, s),
                // A star's hub goes on with whoever came.
                Err(_) if star => break,
                Err(_) => return Err(PrivacyError::Timeout(wait).into()),
                Ok(None) => return Err(AgentError::new("peer_timeout", "no session came")),
            }
        }

        let (out, bytes_sent) =
            compute::run(j, &assets, role, &mut peers, &params, &table, tag).await?;
        // Each session's transcript as the protocol left it (what follows
        // is the completion's own talk).
        let others: Vec<usize> = (0..n).filter(|r| *r != role && peers.has(*r)).collect();
        let mut seen: BTreeMap<usize, [u8; 32]> = BTreeMap::new();
        for r in others {
            seen.insert(r, peers.with(r)?.transcript());
        }

        if role == 0 {
            let out = out.ok_or_else(|| AgentError::new("bad_role", "role 0 got no output"))?;
            // Who signs: every role, or a multi-round job's last round.
            let signers: Vec<usize> = match out.rounds.last() {
                Some((_, parts, _)) => parts
                    .iter()
                    .map(|p| *p as usize)
                    .filter(|r| *r != 0)
                    .collect(),
                None => (1..n).collect(),
            };
            // Every pair's transcript: ours, and what the others report of
            // theirs (both ends of a pair must agree).
            let mut pairs: BTreeMap<(u32, u32), [u8; 32]> = BTreeMap::new();
            for r in &signers {
                let t = seen.get(r).ok_or_else(|| {
                    AgentError::new("bad_round", format!("no session with role {r}"))
                })?;
                pairs.insert((0, *r as u32), *t);
            }
            for r in signers.iter().copied() {
                let rep: Report = wire::get(peers.with(r)?).await?;
                for (a, b, t) in rep.pairs {
                    if a == 0 || b as usize >= n || a >= b || (a != r as u32 && b != r as u32) {
                        return Err(AgentError::new(
                            "bad_report",
                            format!("role {r} reported pair {a},{b}"),
                        ));
                    }
                    if let Some(seen) = pairs.insert((a, b), t) {
                        if seen != t {
                            return Err(AgentError::new(
                                "transcripts_differ",
                                format!("roles {a} and {b} saw different sessions"),
                            ));
                        }
                    }
                }
            }
            let list: Vec<(u32, u32, [u8; 32])> =
                pairs.iter().map(|((a, b), t)| (*a, *b, *t)).collect();
            let transcript = H256(wire::job_transcript(&list));
            let mut salt = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut salt);
            let commitment = results::result_commitment(self.suite, &tag, &salt, &out.bytes);
            let digest = completion_digest(self.chain_id, j.id, &commitment, &transcript);
            let mut signatures = vec![PartySignature {
                public_key: self.key.public_key().to_vec(),
                signature: self.key.sign(&digest),
            }];
            for r in signers.iter().copied() {
                let s = peers.with(r)?;
                wire::put(
                    s,
                    &Finish {
                        result_commitment: commitment.0,
                        transcripts: list.clone(),
                    },
                )
                .await?;
            }
            for r in signers.iter().copied() {
                let s = peers.with(r)?;
                let theirs: Countersign = wire::get(s).await?;
                signatures.push(PartySignature {
                    public_key: s.peer().to_vec(),
                    signature: theirs.signature,
                });
            }
            let (file, record) = results::paths(&self.cfg.home, j.id, out.ext);
            std::fs::write(&file, &out.bytes)?;
            let rec = results::ResultRecord {
                job: j.id,
                protocol: j.protocol.clone(),
                file: file.clone(),
                salt: hex::encode(salt),
                result_commitment: commitment,
                transcript_hash: transcript,
                intersection_size: out.intersection_size,
            };
            std::fs::write(
                &record,
                serde_json::to_vec_pretty(&rec).expect("records encode"),
            )?;
            // A multi-round job's rounds first: the chain then knows who
            // must sign the completion.
            self.send_all(
                out.rounds
                    .iter()
                    .map(|(round, participants, commitment)| JobMsg::Round {
                        job: j.id,
                        round: *round,
                        participants: participants.clone(),
                        model_commitment: H256(*commitment),
                    })
                    .collect(),
                Duration::from_secs(60),
            )
            .await?;
            self.send(JobMsg::Complete {
                job: j.id,
                result_commitment: commitment,
                transcript_hash: transcript,
                signatures,
            })
            .await?;
            tracing::info!(
                job = j.id,
                protocol = %j.protocol,
                intersection_size = ?out.intersection_size,
                seconds = started.elapsed().as_secs_f64(),
                bytes_sent,
                "completed"
            );
        } else {
            let mine: Vec<(u32, u32, [u8; 32])> = (1..n)
                .filter(|r| *r != role && seen.contains_key(r))
                .map(|r| (role.min(r) as u32, role.max(r) as u32, seen[&r]))
                .collect();
            wire::put(peers.with(0)?, &Report { pairs: mine }).await?;
            let fin: Finish = wire::get(peers.with(0)?).await?;
            // The list must hold our own sessions as we saw them.
            for r in (0..n).filter(|r| *r != role && seen.contains_key(r)) {
                let (a, b) = (role.min(r) as u32, role.max(r) as u32);
                let ours = seen[&r];
                if !fin
                    .transcripts
                    .iter()
                    .any(|(x, y, t)| (*x, *y, *t) == (a, b, ours))
                {
                    return Err(AgentError::new(
                        "transcripts_differ",
                        format!("role 0 listed another session of roles {a} and {b}"),
                    ));
                }
            }
            let transcript = H256(wire::job_transcript(&fin.transcripts));
            let digest = completion_digest(
                self.chain_id,
                j.id,
                &H256(fin.result_commitment),
                &transcript,
            );
            wire::put(
                peers.with(0)?,
                &Countersign {
                    signature: self.key.sign(&digest),
                },
            )
            .await?;
            tracing::info!(
                job = j.id,
                role,
                seconds = started.elapsed().as_secs_f64(),
                bytes_sent,
                "our part done"
            );
        }
        Ok(())
    }
}
