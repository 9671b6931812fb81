//! `bft`: Byzantine-fault-tolerant consensus, safe with f faulty of 3f+1
//! validators, on malachite's Tendermint core (`malachitebft-core-consensus`).
//!
//! The core is sans-IO: this shell owns the network, the timers, the keys
//! and the chain, and answers the core's effects.
//!
//! * Proposals carry the whole block. The core trusts proposals it is fed,
//!   so the shell checks a proposal's signature and re-executes its block
//!   ([`Application::verify`]) first; an invalid one is dropped and logged
//!   as evidence, and the round times out to the next proposer.
//! * Votes are signed with the chain's suite. A precommit for a block signs
//!   [`BlockHeader::commit_bytes`] of its hash and round, so the 2f+1
//!   precommits of a decision form a [`Certificate`] a light client checks.
//! * Conflicting votes of one validator for one height, round and kind
//!   are logged as equivocation evidence.
//! * Block sync: nodes announce their height on the `SYNC` channel; a node
//!   behind asks a peer for the blocks it lacks and commits each only if
//!   its certificate carries 2f+1 valid signatures of the validator set.
//!
//! Not yet: a write-ahead log of this node's own votes across restarts (a
//! restarted validator may vote again in the height it crashed in, which
//! counts against f), and vote extensions.

pub mod context;

use crate::{Application, ConsensusEngine, ConsensusError, EngineContext};
use async_trait::async_trait;
use borsh::{BorshDeserialize, BorshSerialize};
use context::{
    round_from_i64, round_i64, round_u32, BftHeight, BftProposal, BftValidatorSet, BftVote,
    BlockId, BlockValue, SuiteSignature, TongtianBft, ValAddr,
};
use malachitebft_core_consensus::{
    Effect, Input, LivenessMsg, LocallyProposedValue, Params, Resume, SignedConsensusMsg, State,
    ThresholdParams, ValuePayload,
};
use malachitebft_core_types::{
    CommitCertificate, NilOrVal, SignedMessage, Timeout, TimeoutKind, VoteType,
};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tongtian_crypto::{suite, CryptoSuite, Keypair};
use tongtian_network::{channels, Inbound, Network};
use tongtian_types::{Block, Certificate, CertificateSignature, ChainSpec, H256};

#[derive(BorshSerialize, BorshDeserialize)]
enum Wire {
    Proposal {
        height: u64,
        round: i64,
        pol_round: i64,
        block: Vec<u8>,
        validator: Vec<u8>,
        signature: Vec<u8>,
    },
    Vote {
        kind: u8,
        height: u64,
        round: i64,
        value: Option<[u8; 32]>,
        validator: Vec<u8>,
        signature: Vec<u8>,
    },
}

#[derive(BorshSerialize, BorshDeserialize)]
enum SyncMsg {
    Status { height: u64 },
    Request { from: u64, to: u64 },
    Blocks { blocks: Vec<(Block, Certificate)> },
}

/// Most blocks in one sync answer.
const SYNC_BATCH: u64 = 32;

fn vote_kind(t: VoteType) -> u8 {
    match t {
        VoteType::Prevote => 0,
        VoteType::Precommit => 1,
    }
}

fn encode_vote(v: &SignedMessage<TongtianBft, BftVote>) -> Vec<u8> {
    let value = match &v.message.value {
        NilOrVal::Val(id) => Some(id.0 .0),
        NilOrVal::Nil => None,
    };
    borsh::to_vec(&Wire::Vote {
        kind: vote_kind(v.message.vote_type),
        height: v.message.height.0,
        round: round_i64(v.message.round),
        value,
        validator: v.message.validator.0.clone(),
        signature: v.signature.0.clone(),
    })
    .unwrap_or_default()
}

/// Actions that need `await`, collected while the core runs.
enum Action {
    GetValue {
        height: u64,
        round: i64,
        timeout: Duration,
    },
    Decide(CommitCertificate<TongtianBft>),
}

/// The BFT engine.
pub struct BftEngine {
    ctx: EngineContext,
    spec: ChainSpec,
    network: Network,
}

impl BftEngine {
    /// Needs the node's network.
    pub fn new(spec: &ChainSpec, ctx: EngineContext) -> Result<Self, ConsensusError> {
        let network = ctx
            .network
            .clone()
            .ok_or_else(|| ConsensusError::Config("bft needs the node's network".into()))?;
        Ok(BftEngine {
            ctx,
            spec: spec.clone(),
            network,
        })
    }
}

fn timeout_duration(t: &Timeout) -> Duration {
    let r = round_u32(t.round).min(10) as u64;
    match t.kind {
        TimeoutKind::Propose => Duration::from_millis(1500 + 250 * r),
        TimeoutKind::Prevote | TimeoutKind::Precommit => Duration::from_millis(600 + 100 * r),
        TimeoutKind::Rebroadcast => Duration::from_millis(2000),
    }
}

fn timeout_key(t: &Timeout) -> (u8, i64) {
    let k = match t.kind {
        TimeoutKind::Propose => 0,
        TimeoutKind::Prevote => 1,
        TimeoutKind::Precommit => 2,
        TimeoutKind::Rebroadcast => 3,
    };
    (k, round_i64(t.round))
}

/// (height, round, vote kind, validator) of a vote.
type VoteKey = (u64, i64, u8, Vec<u8>);

/// The engine's running state.
struct Shell {
    app: Arc<dyn Application>,
    key: Keypair,
    suite: &'static dyn CryptoSuite,
    net: Network,
    chain_id: u64,
    interval: Duration,
    me: ValAddr,
    vset: BftValidatorSet,
    state: Option<State<TongtianBft>>,
    timers: HashMap<(u8, i64), (Timeout, Instant)>,
    /// Blocks proposed at the current height that passed validation.
    blocks: HashMap<BlockId, Block>,
    /// (height, round, kind, validator) -> value, for equivocation evidence.
    seen_votes: HashMap<VoteKey, Option<[u8; 32]>>,
    proposed_tx: mpsc::Sender<(u64, i64, Block)>,
    faults: crate::Faults,
    last_commit: Instant,
    sync_pending: Option<Instant>,
}

impl Shell {
    fn height(&self) -> u64 {
        self.app.last_committed().0 + 1
    }

    fn current_vset(&self) -> BftValidatorSet {
        BftValidatorSet::from_keys(self.app.validators().into_iter().map(|v| v.public_key))
    }

    fn quorum(&self) -> usize {
        self.vset.validators.len() * 2 / 3 + 1
    }

    /// (Re)start the core at the next height to decide.
    fn restart_core(&mut self) -> Vec<Input<TongtianBft>> {
        self.vset = self.current_vset();
        let height = BftHeight(self.height());
        self.state = Some(State::new(
            TongtianBft,
            Params {
                initial_height: height,
                initial_validator_set: self.vset.clone(),
                address: self.me.clone(),
                threshold_params: ThresholdParams::default(),
                value_payload: ValuePayload::ProposalOnly,
            },
            1024,
        ));
        self.timers.clear();
        self.blocks.clear();
        vec![Input::StartHeight(height, self.vset.clone())]
    }

    fn sign(&self, bytes: &[u8]) -> SuiteSignature {
        SuiteSignature(self.key.sign(bytes))
    }

    fn verify_vote(&self, v: &BftVote, sig: &[u8]) -> bool {
        self.vset
            .validators
            .iter()
            .any(|x| x.address == v.validator)
            && self
                .suite
                .verify(&v.validator.0, &v.signing_bytes(), sig)
                .is_ok()
    }

    fn verify_proposal(&self, p: &BftProposal, sig: &[u8]) -> bool {
        self.vset
            .validators
            .iter()
            .any(|x| x.address == p.validator)
            && self
                .suite
                .verify(&p.validator.0, &p.signing_bytes(), sig)
                .is_ok()
    }

    /// A commit certificate is valid when more than two thirds of `vset`
    /// signed a precommit for its block in its round.
    fn check_commit(
        &self,
        c: &CommitCertificate<TongtianBft>,
        vset: &BftValidatorSet,
    ) -> Result<(), malachitebft_core_types::CertificateError<TongtianBft>> {
        let msg = tongtian_types::BlockHeader::commit_bytes(&c.value_id.0, round_u32(c.round));
        let mut signers: Vec<&ValAddr> = Vec::new();
        for s in &c.commit_signatures {
            if !vset.validators.iter().any(|v| v.address == s.address) {
                return Err(malachitebft_core_types::CertificateError::UnknownValidator(
                    s.address.clone(),
                ));
            }
            if self
                .suite
                .verify(&s.address.0, &msg, &s.signature.0)
                .is_err()
            {
                return Err(
                    malachitebft_core_types::CertificateError::InvalidCommitSignature(s.clone()),
                );
            }
            if !signers.contains(&&s.address) {
                signers.push(&s.address);
            }
        }
        let needed = vset.validators.len() * 2 / 3 + 1;
        if signers.len() < needed {
            return Err(
                malachitebft_core_types::CertificateError::NotEnoughVotingPower {
                    signed: signers.len() as u64,
                    total: vset.validators.len() as u64,
                    expected: needed as u64,
                },
            );
        }
        Ok(())
    }

    fn broadcast(&self, bytes: &[u8]) {
        self.net
            .broadcast(self.chain_id, channels::CONSENSUS, bytes);
    }

    /// Answer one effect of the core synchronously; await-needing work goes to `actions`.
    fn on_effect(
        &mut self,
        effect: Effect<TongtianBft>,
        actions: &mut Vec<Action>,
    ) -> Resume<TongtianBft> {
        match effect {
            Effect::ResetTimeouts(_) | Effect::CancelAllTimeouts(_) => {
                self.timers.clear();
                Resume::Continue
            }
            Effect::CancelTimeout(t, _) => {
                self.timers.remove(&timeout_key(&t));
                Resume::Continue
            }
            Effect::ScheduleTimeout(t, _) => {
                self.timers
                    .insert(timeout_key(&t), (t, Instant::now() + timeout_duration(&t)));
                Resume::Continue
            }
            Effect::GetValidatorSet(_, _) => Resume::ValidatorSet(Some(self.vset.clone())),
            Effect::StartRound(height, round, proposer, _, _) => {
                tracing::debug!(height = height.0, round = round_i64(round), %proposer, "round started");
                Resume::Continue
            }
            Effect::PublishConsensusMsg(msg, _) => {
                match msg {
                    SignedConsensusMsg::Vote(v) => self.broadcast(&encode_vote(&v)),
                    SignedConsensusMsg::Proposal(p) => {
                        let m = &p.message;
                        let wire = Wire::Proposal {
                            height: m.height.0,
                            round: round_i64(m.round),
                            pol_round: round_i64(m.pol_round),
                            block: m.value.bytes.as_ref().clone(),
                            validator: m.validator.0.clone(),
                            signature: p.signature.0.clone(),
                        };
                        self.broadcast(&borsh::to_vec(&wire).unwrap_or_default());
                    }
                }
                Resume::Continue
            }
            Effect::PublishLivenessMsg(LivenessMsg::Vote(v), _) | Effect::RepublishVote(v, _) => {
                self.broadcast(&encode_vote(&v));
                Resume::Continue
            }
            Effect::PublishLivenessMsg(_, _) | Effect::RepublishRoundCertificate(_, _) => {
                Resume::Continue
            }
            Effect::GetValue(height, round, timeout, _) => {
                actions.push(Action::GetValue {
                    height: height.0,
                    round: round_i64(round),
                    timeout: timeout_duration(&timeout),
                });
                Resume::Continue
            }
            Effect::RestreamProposal(..) | Effect::SyncValue(..) | Effect::WalAppend(..) => {
                Resume::Continue
            }
            Effect::Decide(cert, _, _) => {
                actions.push(Action::Decide(cert));
                Resume::Continue
            }
            Effect::SignVote(vote, _) => {
                if self.faults.equivocate {
                    // Simulated Byzantine validator: a conflicting vote goes out first.
                    let mut other = vote.clone();
                    other.value = match other.value {
                        NilOrVal::Nil => NilOrVal::Val(BlockId(H256([0xbb; 32]))),
                        NilOrVal::Val(_) => NilOrVal::Nil,
                    };
                    let sig = self.sign(&other.signing_bytes());
                    self.broadcast(&encode_vote(&SignedMessage::new(other, sig)));
                }
                let sig = self.sign(&vote.signing_bytes());
                Resume::SignedVote(SignedMessage::new(vote, sig))
            }
            Effect::SignProposal(p, _) => {
                let sig = self.sign(&p.signing_bytes());
                Resume::SignedProposal(SignedMessage::new(p, sig))
            }
            Effect::VerifySignature(msg, _, _) => {
                let ok = match &msg.message {
                    malachitebft_core_consensus::ConsensusMsg::Vote(v) => {
                        self.verify_vote(v, &msg.signature.0)
                    }
                    malachitebft_core_consensus::ConsensusMsg::Proposal(p) => {
                        self.verify_proposal(p, &msg.signature.0)
                    }
                };
                Resume::SignatureValidity(ok)
            }
            Effect::VerifyCommitCertificate(c, vset, _, _) => {
                Resume::CertificateValidity(self.check_commit(&c, &vset))
            }
            Effect::VerifyPolkaCertificate(c, _, _, _) => Resume::CertificateValidity(Err(
                malachitebft_core_types::CertificateError::UnknownValidator(
                    c.polka_signatures
                        .first()
                        .map(|s| s.address.clone())
                        .unwrap_or(ValAddr(vec![])),
                ),
            )),
            Effect::VerifyRoundCertificate(c, _, _, _) => Resume::CertificateValidity(Err(
                malachitebft_core_types::CertificateError::UnknownValidator(
                    c.round_signatures
                        .first()
                        .map(|s| s.address.clone())
                        .unwrap_or(ValAddr(vec![])),
                ),
            )),
            Effect::ExtendVote(..) => Resume::VoteExtension(None),
            Effect::VerifyVoteExtension(..) => Resume::VoteExtensionValidity(Ok(())),
        }
    }

    /// Feed inputs to the core, then carry out what it asked for.
    async fn drive(&mut self, first: Vec<Input<TongtianBft>>) -> Result<(), ConsensusError> {
        let mut queue: VecDeque<Input<TongtianBft>> = first.into();
        while let Some(input) = queue.pop_front() {
            let mut actions = Vec::new();
            let metrics = ();
            // The core holds the state while effects use the rest of the shell.
            let Some(mut state) = self.state.take() else {
                return Err(ConsensusError::App("consensus state missing".into()));
            };
            let result: Result<(), malachitebft_core_consensus::Error<TongtianBft>> = malachitebft_core_consensus::process!(
                input: input,
                state: &mut state,
                metrics: &metrics,
                with: effect => Ok::<_, ConsensusError>(self.on_effect(effect, &mut actions))
            );
            self.state = Some(state);
            if let Err(e) = result {
                tracing::debug!(error = ?e, "consensus input not processed");
            }
            for a in actions {
                match a {
                    Action::GetValue {
                        height,
                        round,
                        timeout,
                    } => self.spawn_proposal(height, round, timeout),
                    Action::Decide(cert) => queue.extend(self.decide(cert).await?),
                }
            }
        }
        Ok(())
    }

    fn spawn_proposal(&self, height: u64, round: i64, timeout: Duration) {
        let app = self.app.clone();
        let tx = self.proposed_tx.clone();
        let not_before = self.last_commit + self.interval;
        tokio::spawn(async move {
            tokio::time::sleep_until(not_before).await;
            // Propose as soon as there is something; give up just before the
            // others' propose timeout would pass anyway.
            let deadline = Instant::now() + timeout.saturating_sub(Duration::from_millis(300));
            loop {
                match app.propose(height).await {
                    Ok(Some(block)) => {
                        let _ = tx.send((height, round, block)).await;
                        return;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(30)).await
                    }
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot build a proposal");
                        return;
                    }
                }
            }
        });
    }

    /// Commit a decided block; returns the inputs that start the next height.
    async fn decide(
        &mut self,
        cert: CommitCertificate<TongtianBft>,
    ) -> Result<Vec<Input<TongtianBft>>, ConsensusError> {
        let id = cert.value_id;
        let Some(block) = self.blocks.get(&id).cloned() else {
            tracing::warn!(block = %id, "decided a block this node never received; waiting for sync");
            return Ok(vec![]);
        };
        let certificate = Certificate {
            engine: "bft".into(),
            block_hash: id.0,
            round: round_u32(cert.round),
            signatures: cert
                .commit_signatures
                .iter()
                .map(|s| CertificateSignature {
                    public_key: s.address.0.clone(),
                    signature: s.signature.0.clone(),
                })
                .collect(),
        };
        self.app.commit(block, certificate).await?;
        self.last_commit = Instant::now();
        Ok(self.restart_core_next())
    }

    fn restart_core_next(&mut self) -> Vec<Input<TongtianBft>> {
        // A new validator set takes effect at the next height.
        let next = self.current_vset();
        if next != self.vset {
            return self.restart_core();
        }
        self.blocks.clear();
        self.timers.clear();
        vec![Input::StartHeight(
            BftHeight(self.height()),
            self.vset.clone(),
        )]
    }

    /// A consensus message from a peer.
    async fn on_message(&mut self, msg: Inbound) -> Result<(), ConsensusError> {
        let Ok(wire) = borsh::from_slice::<Wire>(&msg.payload) else {
            tracing::warn!(peer = %msg.from, "undecodable consensus message ignored");
            return Ok(());
        };
        let height = self.height();
        match wire {
            Wire::Vote {
                kind,
                height: h,
                round,
                value,
                validator,
                signature,
            } => {
                let vote = BftVote {
                    vote_type: if kind == 0 {
                        VoteType::Prevote
                    } else {
                        VoteType::Precommit
                    },
                    height: BftHeight(h),
                    round: round_from_i64(round),
                    value: value.map_or(NilOrVal::Nil, |v| NilOrVal::Val(BlockId(H256(v)))),
                    validator: ValAddr(validator),
                };
                if !self.verify_vote(&vote, &signature) {
                    tracing::warn!(peer = %msg.from, "vote with a bad signature or from a non-validator ignored");
                    return Ok(());
                }
                let key = (h, round, kind, vote.validator.0.clone());
                match self.seen_votes.get(&key) {
                    Some(prev) if *prev != value => {
                        tracing::warn!(
                            evidence = "equivocation",
                            validator = %vote.validator,
                            height = h,
                            round,
                            kind,
                            first = ?prev.map(hex::encode),
                            second = ?value.map(hex::encode),
                            "validator signed two different votes"
                        );
                        return Ok(());
                    }
                    Some(_) => {}
                    None => {
                        self.seen_votes.insert(key, value);
                    }
                }
                if h == height {
                    self.drive(vec![Input::Vote(SignedMessage::new(
                        vote,
                        SuiteSignature(signature),
                    ))])
                    .await?;
                }
            }
            Wire::Proposal {
                height: h,
                round,
                pol_round,
                block,
                validator,
                signature,
            } => {
                if h != height {
                    return Ok(());
                }
                let Ok(decoded) = borsh::from_slice::<Block>(&block) else {
                    tracing::warn!(peer = %msg.from, evidence = "bad proposal", "undecodable proposed block");
                    return Ok(());
                };
                let id = BlockId(decoded.header.hash(self.suite.id()));
                let proposal = BftProposal {
                    height: BftHeight(h),
                    round: round_from_i64(round),
                    value: BlockValue {
                        id,
                        bytes: Arc::new(block),
                    },
                    pol_round: round_from_i64(pol_round),
                    validator: ValAddr(validator),
                };
                if !self.verify_proposal(&proposal, &signature) {
                    tracing::warn!(peer = %msg.from, "proposal with a bad signature ignored");
                    return Ok(());
                }
                if decoded.header.height != h {
                    tracing::warn!(proposer = %proposal.validator, evidence = "invalid proposal", "block height differs from the proposal's");
                    return Ok(());
                }
                if !self.blocks.contains_key(&id) {
                    if let Err(e) = self.app.verify(&decoded).await {
                        tracing::warn!(proposer = %proposal.validator, height = h, round, evidence = "invalid proposal", error = %e, "proposed block rejected");
                        return Ok(());
                    }
                    self.blocks.insert(id, decoded);
                }
                self.drive(vec![Input::Proposal(SignedMessage::new(
                    proposal,
                    SuiteSignature(signature),
                ))])
                .await?;
            }
        }
        Ok(())
    }

    /// Our own proposal is ready.
    async fn on_proposed(
        &mut self,
        height: u64,
        round: i64,
        mut block: Block,
    ) -> Result<(), ConsensusError> {
        if height != self.height() {
            return Ok(());
        }
        if self.faults.invalid_proposals {
            // Simulated Byzantine proposer: a block whose state root lies.
            block.header.state_root = H256([0xee; 32]);
        }
        let id = BlockId(block.header.hash(self.suite.id()));
        let bytes = borsh::to_vec(&block).map_err(|e| ConsensusError::App(e.to_string()))?;
        self.blocks.insert(id, block);
        let value = BlockValue {
            id,
            bytes: Arc::new(bytes),
        };
        self.drive(vec![Input::Propose(LocallyProposedValue::new(
            BftHeight(height),
            round_from_i64(round),
            value,
        ))])
        .await
    }

    async fn on_timer(&mut self) -> Result<(), ConsensusError> {
        let now = Instant::now();
        let due: Vec<(u8, i64)> = self
            .timers
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(k, _)| *k)
            .collect();
        let mut inputs = Vec::new();
        for k in due {
            if let Some((t, _)) = self.timers.remove(&k) {
                inputs.push(Input::TimeoutElapsed(t));
            }
        }
        self.drive(inputs).await
    }

    fn next_deadline(&self) -> Instant {
        self.timers
            .values()
            .map(|(_, at)| *at)
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    /// Block sync: answer requests, and fetch what we lack.
    async fn on_sync(&mut self, msg: Inbound) -> Result<(), ConsensusError> {
        let Ok(sync) = borsh::from_slice::<SyncMsg>(&msg.payload) else {
            return Ok(());
        };
        match sync {
            SyncMsg::Status { height } => {
                let mine = self.app.last_committed().0;
                let idle = self
                    .sync_pending
                    .is_none_or(|at| at.elapsed() > Duration::from_secs(3));
                if height > mine && idle {
                    let req = SyncMsg::Request {
                        from: mine + 1,
                        to: height.min(mine + SYNC_BATCH),
                    };
                    self.net.send(
                        &msg.from,
                        self.chain_id,
                        channels::SYNC,
                        &borsh::to_vec(&req).unwrap_or_default(),
                    );
                    self.sync_pending = Some(Instant::now());
                }
            }
            SyncMsg::Request { from, to } => {
                let blocks: Vec<(Block, Certificate)> = (from..=to.min(from + SYNC_BATCH))
                    .map_while(|h| self.app.committed_block(h))
                    .collect();
                if !blocks.is_empty() {
                    let reply = borsh::to_vec(&SyncMsg::Blocks { blocks }).unwrap_or_default();
                    self.net
                        .send(&msg.from, self.chain_id, channels::SYNC, &reply);
                }
            }
            SyncMsg::Blocks { blocks } => {
                self.sync_pending = None;
                let mut advanced = false;
                for (block, cert) in blocks {
                    let (height, hash) = self.app.last_committed();
                    if block.header.height != height + 1 || block.header.parent_hash != hash {
                        continue;
                    }
                    let id = block.header.hash(self.suite.id());
                    let keys: Vec<Vec<u8>> = self
                        .current_vset()
                        .validators
                        .iter()
                        .map(|v| v.public_key.0.clone())
                        .collect();
                    let quorum = keys.len() * 2 / 3 + 1;
                    if !cert.verify(self.suite, &keys, quorum, &id) {
                        tracing::warn!(peer = %msg.from, height = block.header.height, "synced block without a valid certificate ignored");
                        break;
                    }
                    self.app.commit(block, cert).await?;
                    advanced = true;
                }
                if advanced {
                    tracing::info!(
                        height = self.app.last_committed().0,
                        "caught up by block sync"
                    );
                    self.last_commit = Instant::now();
                    let inputs = self.restart_core();
                    self.drive(inputs).await?;
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ConsensusEngine for BftEngine {
    fn name(&self) -> &'static str {
        "bft"
    }

    async fn run(
        self: Box<Self>,
        app: Arc<dyn Application>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ConsensusError> {
        let mut consensus_in = self
            .network
            .subscribe(self.spec.chain_id, channels::CONSENSUS);
        let mut sync_in = self.network.subscribe(self.spec.chain_id, channels::SYNC);
        let (proposed_tx, mut proposed_rx) = mpsc::channel(16);
        let me = ValAddr(self.ctx.key.public_key().to_vec());
        let vset = BftValidatorSet::from_keys(app.validators().into_iter().map(|v| v.public_key));
        let mut shell = Shell {
            app: app.clone(),
            key: self.ctx.key.clone(),
            suite: suite(self.spec.suite),
            net: self.network.clone(),
            chain_id: self.spec.chain_id,
            interval: Duration::from_millis(self.spec.consensus.block_interval_ms),
            me,
            vset,
            state: None,
            timers: HashMap::new(),
            blocks: HashMap::new(),
            seen_votes: HashMap::new(),
            proposed_tx,
            faults: self.ctx.faults.clone(),
            last_commit: Instant::now(),
            sync_pending: None,
        };
        let start = shell.restart_core();
        shell.drive(start).await?;
        tracing::info!(
            height = shell.height(),
            validators = shell.vset.validators.len(),
            quorum = shell.quorum(),
            "bft engine started"
        );
        let mut status_tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let deadline = shell.next_deadline();
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                Some(msg) = consensus_in.recv() => shell.on_message(msg).await?,
                Some((h, r, block)) = proposed_rx.recv() => shell.on_proposed(h, r, block).await?,
                _ = tokio::time::sleep_until(deadline) => shell.on_timer().await?,
                Some(msg) = sync_in.recv() => shell.on_sync(msg).await?,
                _ = status_tick.tick() => {
                    let status = SyncMsg::Status { height: app.last_committed().0 };
                    shell.net.broadcast(shell.chain_id, channels::SYNC, &borsh::to_vec(&status).unwrap_or_default());
                    // Forget vote evidence of decided heights.
                    let h = app.last_committed().0;
                    shell.seen_votes.retain(|(vh, ..), _| *vh > h);
                }
            }
        }
    }
}
