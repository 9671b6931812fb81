//! The `job` module: privacy jobs over data assets, escrowed and paid on
//! chain.
//!
//! Lifecycle: `create` (the requester names the protocol, the assets, the
//! columns, who receives the output and a payment, escrowed at once and
//! at least the assets' prices) → `open`; `accept` by each asset's owner
//! (or its agent's account), which spends a use of the requester's grant
//! through [`crate::data::DataMsg::Use`] (the owner's own assets need
//! none) → `running` once every asset accepted; `complete` with the
//! result commitment and transcript hash, signed by every asset's agent
//! key over the same values → `completed`, each owner paid its price and
//! the rest refunded; `abort` by anyone once the job's timeout block has
//! passed without completion → `aborted`, the whole escrow refunded.
//! Escrow is paid out once: completion and abort both need an unfinished
//! job.

use crate::data::{self, Asset, DataMsg, PROTOCOLS};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tongtian_execution::module::{Module, ModuleCtx, ModuleError, ModuleResult, ModuleState};
use tongtian_types::{serde_hex, serde_u128, Address, ChainSpec, H256};

/// The module's id.
pub const ID: &str = data::JOB;

/// Where a job stands.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for the owners to accept.
    Open,
    /// Every owner accepted; the agents compute.
    Running,
    /// Done: result recorded, owners paid.
    Completed,
    /// Timed out: escrow refunded.
    Aborted,
}

/// A payment a job made.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Payment {
    /// To whom.
    pub to: Address,
    /// How much.
    #[serde(with = "serde_u128")]
    pub amount: u128,
}

/// A job.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Job {
    /// Its id (from 1).
    pub id: u64,
    /// Who asked and pays.
    pub requester: Address,
    /// The protocol's id.
    pub protocol: String,
    /// The assets, in role order.
    pub assets: Vec<u64>,
    /// The columns used (empty: the ones the protocol needs, all).
    pub columns: Vec<String>,
    /// The protocol's parameters (opaque to the chain).
    #[serde(with = "serde_hex")]
    pub params: Vec<u8>,
    /// Who receives the output.
    pub output_to: Address,
    /// What is held in escrow.
    #[serde(with = "serde_u128")]
    pub escrow: u128,
    /// The block after which it can be aborted.
    pub deadline: u64,
    /// The assets whose owners accepted.
    pub accepted: Vec<u64>,
    /// The parties: each asset's agent key, in role order.
    pub parties: Vec<String>,
    /// Status.
    pub status: JobStatus,
    /// The result's commitment, once completed.
    pub result_commitment: Option<H256>,
    /// The session transcript's hash, once completed.
    pub transcript_hash: Option<H256>,
    /// Payments made.
    pub payments: Vec<Payment>,
}

/// One party's signature of a completion.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct PartySignature {
    /// The agent's public key.
    #[serde(with = "serde_hex")]
    pub public_key: Vec<u8>,
    /// Its signature over [`completion_digest`].
    #[serde(with = "serde_hex")]
    pub signature: Vec<u8>,
}

/// Messages of the `job` module.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum JobMsg {
    /// File a job, escrowing `payment` from the sender: its id.
    Create {
        /// The protocol.
        protocol: String,
        /// The assets, in role order.
        assets: Vec<u64>,
        /// The columns it uses.
        columns: Vec<String>,
        /// The protocol's parameters.
        params: Vec<u8>,
        /// Who receives the output.
        output_to: Address,
        /// The payment (at least the assets' prices).
        payment: u128,
        /// Blocks until it may be aborted.
        timeout_blocks: u64,
    },
    /// Accept the job for one asset (its owner, or its agent's account).
    Accept {
        /// The job.
        job: u64,
        /// The asset.
        asset: u64,
    },
    /// Record the result (anyone, with every party's signature).
    Complete {
        /// The job.
        job: u64,
        /// The result's commitment.
        result_commitment: H256,
        /// The transcript's hash.
        transcript_hash: H256,
        /// Every party's signature.
        signatures: Vec<PartySignature>,
    },
    /// Abort a job past its deadline (anyone): the escrow goes back.
    Abort {
        /// The job.
        job: u64,
    },
    /// Record one round of a running multi-round job (`fl`): who took
    /// part and a commitment to the round's model; only the first
    /// asset's agent (the aggregator), rounds in order from 1. A job with
    /// rounds completes with the signatures of the aggregator and the
    /// last round's participants, and pays their owners.
    Round {
        /// The job.
        job: u64,
        /// Its number (the next one).
        round: u32,
        /// The roles whose updates it used.
        participants: Vec<u32>,
        /// The round's model commitment.
        model_commitment: H256,
    },
}

/// One recorded round of a job.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct JobRound {
    /// Its number.
    pub round: u32,
    /// The roles whose updates it used.
    pub participants: Vec<u32>,
    /// The round's model commitment.
    pub model_commitment: H256,
    /// The block it was recorded in.
    pub height: u64,
}

fn rkey(job: u64, round: u32) -> Vec<u8> {
    format!("r/{job:020}/{round:010}").into_bytes()
}

fn rounds(state: &ModuleState<'_, '_>, job: u64) -> ModuleResult<Vec<JobRound>> {
    data::scan_typed(state, format!("r/{job:020}/").as_bytes())
}

impl JobMsg {
    /// As a transaction action.
    pub fn action(&self) -> tongtian_types::Action {
        tongtian_types::Action::Module {
            module: ID.into(),
            msg: borsh::to_vec(self).expect("job messages encode"),
        }
    }
}

/// What every party signs to complete job `job` on chain `chain_id`.
pub fn completion_digest(chain_id: u64, job: u64, result: &H256, transcript: &H256) -> Vec<u8> {
    [
        &b"tongtian/job-complete/v1"[..],
        &chain_id.to_be_bytes(),
        &job.to_be_bytes(),
        &result.0,
        &transcript.0,
    ]
    .concat()
}

fn refuse(code: &str, message: impl Into<String>) -> ModuleError {
    ModuleError::new(code, message)
}

fn jkey(id: u64) -> Vec<u8> {
    format!("j/{id:020}").into_bytes()
}

fn load(state: &ModuleState<'_, '_>, id: u64) -> ModuleResult<Job> {
    Ok(state
        .get_typed(&jkey(id))?
        .ok_or_else(|| refuse("unknown_job", format!("there is no job {id}")))?)
}

fn asset(ctx: &mut ModuleCtx<'_, '_>, id: u64) -> ModuleResult<Asset> {
    let v = ctx.query(data::ID, &format!("assets/{id}"), &BTreeMap::new())?;
    Ok(serde_json::from_value(v)
        .map_err(|e| tongtian_execution::ExecutionError::Corrupt(e.to_string()))?)
}

/// The `job` module.
#[derive(Debug, Default)]
pub struct JobModule;

impl JobModule {
    /// Emit event `name` and keep it in the job's own log
    /// (`jobs/ID/events`).
    fn emit(ctx: &mut ModuleCtx<'_, '_>, name: &str, job: &Job, extra: Vec<(&str, String)>) {
        let mut attrs = vec![
            ("job".to_string(), job.id.to_string()),
            (
                "status".to_string(),
                format!("{:?}", job.status).to_lowercase(),
            ),
        ];
        attrs.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
        let count = format!("en/{:020}", job.id).into_bytes();
        let n: u64 = ctx.state.get_typed(&count).ok().flatten().unwrap_or(0);
        ctx.state.set_typed(&count, &(n + 1));
        let entry = data::HistoryEntry {
            height: ctx.block.height,
            action: name.to_string(),
            by: ctx.caller,
            detail: attrs.iter().cloned().collect(),
        };
        ctx.state
            .set_typed(format!("e/{:020}/{n:020}", job.id).as_bytes(), &entry);
        ctx.emit(name, attrs);
    }

    fn unfinished(job: &Job) -> ModuleResult<()> {
        if matches!(job.status, JobStatus::Completed | JobStatus::Aborted) {
            return Err(refuse(
                "job_finished",
                format!("job {} is {:?} already", job.id, job.status).to_lowercase(),
            )
            .into());
        }
        Ok(())
    }
}

impl Module for JobModule {
    fn id(&self) -> &'static str {
        ID
    }

    fn genesis(
        &self,
        _state: &mut ModuleState<'_, '_>,
        _spec: &ChainSpec,
        section: Option<&serde_json::Value>,
    ) -> ModuleResult<()> {
        tongtian_execution::module::expect_empty_section(
            section,
            "job starts empty: its section is {}",
        )
    }

    fn execute(&self, ctx: &mut ModuleCtx<'_, '_>, msg: &[u8]) -> ModuleResult<Vec<u8>> {
        let msg: JobMsg = borsh::from_slice(msg).map_err(|e| ModuleError::bad_message(ID, e))?;
        match msg {
            JobMsg::Create {
                protocol,
                assets,
                columns,
                params,
                output_to,
                payment,
                timeout_blocks,
            } => {
                if !PROTOCOLS.contains(&protocol.as_str()) {
                    return Err(refuse(
                        "unknown_protocol",
                        format!("{protocol:?} is not a protocol"),
                    )
                    .into());
                }
                if assets.is_empty() || assets.len() > 64 {
                    return Err(refuse("bad_job", "a job uses 1-64 assets").into());
                }
                let mut sorted = assets.clone();
                sorted.sort_unstable();
                sorted.dedup();
                if sorted.len() != assets.len() {
                    return Err(refuse("bad_job", "an asset appears once in a job").into());
                }
                if params.len() > 64 * 1024 || timeout_blocks == 0 {
                    return Err(refuse(
                        "bad_job",
                        "parameters are at most 64 KiB and a job has a timeout",
                    )
                    .into());
                }
                let mut price = 0u128;
                let mut parties = Vec::new();
                for id in &assets {
                    let a = asset(ctx, *id)?;
                    if a.status != data::AssetStatus::Active {
                        return Err(
                            refuse("asset_retired", format!("asset {id} is retired")).into()
                        );
                    }
                    price = price.saturating_add(a.price);
                    parties.push(hex_of(&a.agent_key));
                }
                // Every column is some asset's.
                let mut schemas = Vec::new();
                for id in &assets {
                    schemas.extend(asset(ctx, *id)?.schema.into_iter().map(|c| c.name));
                }
                if let Some(c) = columns.iter().find(|c| !schemas.contains(c)) {
                    return Err(refuse(
                        "unknown_column",
                        format!("no asset of the job has a column {c:?}"),
                    )
                    .into());
                }
                if payment < price {
                    return Err(refuse(
                        "payment_short",
                        format!("the assets cost {price}, {payment} offered"),
                    )
                    .into());
                }
                ctx.collect(payment)?;
                let n: u64 = ctx.state.get_typed(b"next")?.unwrap_or(0) + 1;
                ctx.state.set_typed(b"next", &n);
                let job = Job {
                    id: n,
                    requester: ctx.caller,
                    protocol,
                    assets,
                    columns,
                    params,
                    output_to,
                    escrow: payment,
                    deadline: ctx.block.height.saturating_add(timeout_blocks),
                    accepted: Vec::new(),
                    parties,
                    status: JobStatus::Open,
                    result_commitment: None,
                    transcript_hash: None,
                    payments: Vec::new(),
                };
                ctx.state.set_typed(&jkey(n), &job);
                Self::emit(
                    ctx,
                    "job_created",
                    &job,
                    vec![
                        ("requester", job.requester.to_string()),
                        ("escrow", payment.to_string()),
                    ],
                );
                Ok(n.to_le_bytes().to_vec())
            }
            JobMsg::Accept { job, asset: id } => {
                let mut j = load(&ctx.state, job)?;
                if j.status != JobStatus::Open {
                    return Err(refuse("job_not_open", format!("job {job} is not open")).into());
                }
                if !j.assets.contains(&id) {
                    return Err(
                        refuse("not_in_job", format!("job {job} does not use asset {id}")).into(),
                    );
                }
                if j.accepted.contains(&id) {
                    return Err(refuse(
                        "already_accepted",
                        format!("asset {id} accepted job {job} already"),
                    )
                    .into());
                }
                let a = asset(ctx, id)?;
                let agent = Address::from_public_key(ctx.chain.suite, &a.agent_key);
                if ctx.caller != a.owner && ctx.caller != agent {
                    return Err(refuse(
                        "not_owner",
                        format!("only asset {id}'s owner or agent accepts for it"),
                    )
                    .into());
                }
                ctx.call(
                    data::ID,
                    &borsh::to_vec(&DataMsg::Use {
                        asset: id,
                        user: j.requester,
                        protocol: j.protocol.clone(),
                        columns: j.columns.clone(),
                    })
                    .expect("data messages encode"),
                )?;
                j.accepted.push(id);
                if j.accepted.len() == j.assets.len() {
                    j.status = JobStatus::Running;
                }
                ctx.state.set_typed(&jkey(job), &j);
                Self::emit(ctx, "job_accepted", &j, vec![("asset", id.to_string())]);
                Ok(Vec::new())
            }
            JobMsg::Complete {
                job,
                result_commitment,
                transcript_hash,
                signatures,
            } => {
                let mut j = load(&ctx.state, job)?;
                if j.status != JobStatus::Running {
                    return Err(refuse(
                        "job_not_running",
                        format!("job {job} is {:?}", j.status).to_lowercase(),
                    )
                    .into());
                }
                let digest = completion_digest(
                    ctx.chain.chain_id,
                    job,
                    &result_commitment,
                    &transcript_hash,
                );
                let s = tongtian_crypto::suite(ctx.chain.suite);
                // A job with rounds: the aggregator and the last round's
                // participants; else every party.
                let recorded = rounds(&ctx.state, job)?;
                let roles: Vec<usize> = match recorded.last() {
                    Some(r) => {
                        let mut v: Vec<usize> =
                            r.participants.iter().map(|p| *p as usize).collect();
                        if !v.contains(&0) {
                            v.push(0);
                        }
                        v.sort_unstable();
                        v
                    }
                    None => (0..j.parties.len()).collect(),
                };
                for party in roles.iter().filter_map(|r| j.parties.get(*r)) {
                    let ok = signatures.iter().any(|sig| {
                        hex_of(&sig.public_key) == *party
                            && s.verify(&sig.public_key, &digest, &sig.signature).is_ok()
                    });
                    if !ok {
                        return Err(refuse(
                            "incomplete_signatures",
                            format!("party {party} did not sign this result and transcript"),
                        )
                        .into());
                    }
                }
                let mut left = j.escrow;
                for id in roles.iter().filter_map(|r| j.assets.get(*r).copied()) {
                    let a = asset(ctx, id)?;
                    ctx.pay_out(a.owner, a.price)?;
                    left -= a.price;
                    j.payments.push(Payment {
                        to: a.owner,
                        amount: a.price,
                    });
                }
                if left > 0 {
                    ctx.pay_out(j.requester, left)?;
                    j.payments.push(Payment {
                        to: j.requester,
                        amount: left,
                    });
                }
                j.escrow = 0;
                j.status = JobStatus::Completed;
                j.result_commitment = Some(result_commitment);
                j.transcript_hash = Some(transcript_hash);
                ctx.state.set_typed(&jkey(job), &j);
                Self::emit(
                    ctx,
                    "job_completed",
                    &j,
                    vec![
                        ("result_commitment", result_commitment.to_string()),
                        ("transcript_hash", transcript_hash.to_string()),
                    ],
                );
                Ok(Vec::new())
            }
            JobMsg::Round {
                job,
                round,
                participants,
                model_commitment,
            } => {
                let j = load(&ctx.state, job)?;
                if j.status != JobStatus::Running {
                    return Err(
                        refuse("job_not_running", format!("job {job} is not running")).into(),
                    );
                }
                let a = asset(ctx, j.assets[0])?;
                let agent = Address::from_public_key(ctx.chain.suite, &a.agent_key);
                if ctx.caller != agent && ctx.caller != a.owner {
                    return Err(refuse(
                        "not_aggregator",
                        format!("only asset {}'s agent records job {job}'s rounds", a.id),
                    )
                    .into());
                }
                let next = rounds(&ctx.state, job)?.len() as u32 + 1;
                if round != next {
                    return Err(refuse(
                        "round_out_of_order",
                        format!("job {job}'s next round is {next}, not {round}"),
                    )
                    .into());
                }
                if participants.is_empty()
                    || participants.iter().any(|p| *p as usize >= j.parties.len())
                    || participants.windows(2).any(|w| w[0] >= w[1])
                {
                    return Err(refuse(
                        "bad_round",
                        "participants are the job's roles, in order, each once",
                    )
                    .into());
                }
                let r = JobRound {
                    round,
                    participants,
                    model_commitment,
                    height: ctx.block.height,
                };
                ctx.state.set_typed(&rkey(job, round), &r);
                Self::emit(
                    ctx,
                    "job_round",
                    &j,
                    vec![
                        ("round", round.to_string()),
                        ("model_commitment", model_commitment.to_string()),
                    ],
                );
                Ok(Vec::new())
            }
            JobMsg::Abort { job } => {
                let mut j = load(&ctx.state, job)?;
                Self::unfinished(&j)?;
                if ctx.block.height <= j.deadline {
                    return Err(refuse(
                        "timeout_not_reached",
                        format!("job {job} runs until block {}", j.deadline),
                    )
                    .into());
                }
                if j.escrow > 0 {
                    ctx.pay_out(j.requester, j.escrow)?;
                    j.payments.push(Payment {
                        to: j.requester,
                        amount: j.escrow,
                    });
                }
                j.escrow = 0;
                j.status = JobStatus::Aborted;
                ctx.state.set_typed(&jkey(job), &j);
                Self::emit(ctx, "job_aborted", &j, vec![]);
                Ok(Vec::new())
            }
        }
    }

    fn query(
        &self,
        state: &mut ModuleState<'_, '_>,
        path: &str,
        params: &BTreeMap<String, String>,
    ) -> ModuleResult<serde_json::Value> {
        let json = |v: &Job| serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
        if path == "jobs" {
            // `?party=HEX` (an agent key), `?status=open,running`,
            // `?requester=ADDRESS`: only those jobs.
            let party = params.get("party").map(|p| p.to_lowercase());
            let statuses: Option<Vec<&str>> = params.get("status").map(|s| s.split(',').collect());
            let requester = params.get("requester").map(|r| r.to_lowercase());
            let mut out = Vec::new();
            for (_, v) in state.scan(b"j/", None, 100_000)? {
                let j: Job = borsh::from_slice(&v)
                    .map_err(|e| tongtian_execution::ExecutionError::Corrupt(e.to_string()))?;
                let v = json(&j);
                if party.as_ref().is_some_and(|p| !j.parties.contains(p))
                    || statuses
                        .as_ref()
                        .is_some_and(|s| !s.contains(&v["status"].as_str().unwrap_or("")))
                    || requester
                        .as_ref()
                        .is_some_and(|r| j.requester.to_string().to_lowercase() != *r)
                {
                    continue;
                }
                out.push(v);
            }
            return Ok(serde_json::Value::Array(out));
        }
        if let Some(id) = path
            .strip_prefix("jobs/")
            .and_then(|p| p.strip_suffix("/events"))
        {
            let id: u64 = id
                .parse()
                .map_err(|_| refuse("bad_job", format!("{id:?} is not a job id")))?;
            load(state, id)?;
            let log: Vec<data::HistoryEntry> =
                data::scan_typed(state, format!("e/{id:020}/").as_bytes())?;
            return Ok(serde_json::to_value(log).unwrap_or_default());
        }
        if let Some(id) = path.strip_prefix("jobs/") {
            let id: u64 = id
                .parse()
                .map_err(|_| refuse("bad_job", format!("{id:?} is not a job id")))?;
            let mut v = json(&load(state, id)?);
            v["rounds"] = serde_json::to_value(rounds(state, id)?).unwrap_or_default();
            return Ok(v);
        }
        Err(refuse(
            "unknown_query",
            format!("job answers jobs, jobs/ID and jobs/ID/events, not {path}"),
        )
        .into())
    }
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
