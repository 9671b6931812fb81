//! The `client` module: light clients of other chains, kept on this one.
//!
//! A client of chain X stores what this chain has verified of X: per
//! height, the header hash, the state root, the time, and the validator
//! set that signs X's *next* block (X keeps its set in state, under
//! `mod/membership/validators`, so a header's state root commits to it and
//! an update proves it with a state proof).
//!
//! **Update** (anyone may send one; relayers do): X's header, its commit
//! certificate, and a proof of X's validator set in the header's state.
//! - Adjacent (the next height after the latest trusted one): validators
//!   holding more than 2/3 (BFT) or more than 1/2 (Raft) of the trusted
//!   next set signed it.
//! - Skipping ahead (BFT): more than 1/3 of the trusted set signed it (so
//!   at least one honest validator vouches for it, Tendermint's skipping
//!   rule) *and* more than 2/3 of the set the header itself proves signed
//!   it (which holds where the set was stable at that height); otherwise
//!   the relayer must step through the change. Raft clients skip only
//!   while the set is unchanged.
//! - Trusting period: a client not updated within its period (in this
//!   chain's blocks and milliseconds) is expired and refuses updates and
//!   proofs until a governance vote revives it.
//!
//! **Misbehaviour**: two headers of one height with different hashes,
//! each certified by the trusted set below them, or a certified header
//! whose time is not after the trusted one before it, freeze the client:
//! it refuses every update and proof until a vote unfreezes it. The
//! evidence is kept (`clients/{id}/evidence`).
//!
//! **Proofs**: [`ClientMsg::VerifyState`] checks a value (or its absence)
//! under X's state root at a verified height, with the sparse Merkle
//! proofs X's API serves: what the channel module builds on.
//!
//! Trust: a BFT client trusts that no more than 1/3 of a validator set it
//! trusts is faulty within the trusting period; a Raft client (majority
//! certificates) trusts that no majority of X's voters signs two
//! histories, which is weaker: Raft tolerates crashes, not liars.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tongtian_crypto::{suite, SuiteId};
use tongtian_execution::module::{Module, ModuleCtx, ModuleError, ModuleResult, ModuleState};
use tongtian_types::{proof::StateProof, BlockHeader, Certificate, ChainSpec, ValidatorSet, H256};

/// The module's id.
pub const ID: &str = "client";

/// Modules that create, revive and unfreeze clients (governance, and the
/// registry when a sub-chain is born).
pub const AUTHORITIES: [&str; 3] = ["gov", "directive", "registry"];

/// How the other chain certifies its blocks.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TrustModel {
    /// More than 2/3 of the validators sign each block (BFT, solo).
    Bft,
    /// More than 1/2 of the voters sign each committed block (Raft).
    Raft,
    /// An external chain whose blocks `threshold` named attesters sign
    /// (see [`crate::attested`]); its "validators" are their addresses.
    Attested {
        /// Attesters needed.
        threshold: u32,
    },
}

impl TrustModel {
    /// Signatures of a set of `n` that certify a block.
    pub fn quorum(self, n: usize) -> usize {
        match self {
            TrustModel::Bft => n * 2 / 3 + 1,
            TrustModel::Raft => n / 2 + 1,
            TrustModel::Attested { threshold } => threshold as usize,
        }
    }
}

/// What a client starts from: a height of the other chain it trusts.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ClientInit {
    /// The client's id on this chain (e.g. `main`, `trade`).
    pub id: String,
    /// The other chain's id.
    pub chain_id: u64,
    /// Its crypto suite.
    pub suite: SuiteId,
    /// How it certifies blocks.
    pub model: TrustModel,
    /// The trusted height (0: its genesis).
    pub height: u64,
    /// The header hash there (zero when only the validators are known).
    pub header_hash: H256,
    /// The state root there, if known.
    pub state_root: Option<H256>,
    /// Its time there (ms).
    pub timestamp_ms: u64,
    /// The validator set that signs the next block.
    pub validators: ValidatorSet,
    /// Blocks of this chain the client stays valid without an update.
    pub trusting_blocks: u64,
    /// Milliseconds of this chain's time it stays valid without an update.
    pub trusting_ms: u64,
}

/// A client as kept in state.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ClientState {
    /// Its id.
    pub id: String,
    /// The other chain's id.
    pub chain_id: u64,
    /// Its suite.
    pub suite: SuiteId,
    /// Its trust model.
    pub model: TrustModel,
    /// The latest verified height.
    pub latest_height: u64,
    /// Trusting period in this chain's blocks.
    pub trusting_blocks: u64,
    /// Trusting period in this chain's milliseconds.
    pub trusting_ms: u64,
    /// This chain's height at the last update (or revival).
    pub refreshed_height: u64,
    /// This chain's time then.
    pub refreshed_ms: u64,
    /// Frozen by misbehaviour.
    pub frozen: bool,
}

/// What the client keeps per verified height.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ConsensusState {
    /// The height.
    pub height: u64,
    /// The header hash.
    pub header_hash: H256,
    /// The state root (none for a starting point known by its validators only).
    pub state_root: Option<H256>,
    /// The header's time.
    pub timestamp_ms: u64,
    /// The set that signs the block after it.
    pub next_validators: ValidatorSet,
}

/// A header with its certificate.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct SignedHeader {
    /// The header.
    pub header: BlockHeader,
    /// Its commit certificate.
    pub certificate: Certificate,
}

/// Evidence that froze a client.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Evidence {
    /// `conflicting_headers` or `time_backwards`.
    pub kind: String,
    /// The offending header(s).
    pub headers: Vec<SignedHeader>,
    /// The conflicting attestations (attested clients).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<crate::attested::SignedAttestation>,
    /// Who submitted it.
    pub submitted_by: tongtian_types::Address,
    /// This chain's height when it was accepted.
    pub height: u64,
}

/// Messages of the `client` module.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ClientMsg {
    /// Create a client (from an authority).
    Create(ClientInit),
    /// Verify and store a newer header of the other chain (anyone).
    Update {
        /// The client.
        client: String,
        /// Header and certificate.
        signed: SignedHeader,
        /// Proof of the other chain's validator set in the header's state.
        validators: StateProof,
    },
    /// Two conflicting certified headers of one height (anyone).
    Misbehaviour {
        /// The client.
        client: String,
        /// One header.
        a: SignedHeader,
        /// The other.
        b: SignedHeader,
    },
    /// Check a value (or, with `value: None`, its absence) in the other
    /// chain's state at a verified height (any caller; writes nothing).
    VerifyState {
        /// The client.
        client: String,
        /// The other chain's height.
        height: u64,
        /// The state key.
        key: Vec<u8>,
        /// The value claimed.
        value: Option<Vec<u8>>,
        /// The proof.
        proof: StateProof,
    },
    /// Lift a freeze (from an authority, after a vote).
    Unfreeze {
        /// The client.
        client: String,
    },
    /// Restart an expired client's trusting period (from an authority).
    Revive {
        /// The client.
        client: String,
    },
    /// Store a block of an external chain its attesters signed (anyone);
    /// a second, different block for a height already attested freezes
    /// the client.
    Attest {
        /// The (attested) client.
        client: String,
        /// The attestation and its signatures.
        signed: crate::attested::SignedAttestation,
    },
    /// One attester's signature, kept on this chain for whoever needs the
    /// threshold of them: a block of the external chain (stored as a
    /// verified height once `threshold` attesters signed the same one), or
    /// a packet or acknowledgement of this chain for the external chain's
    /// port contract (fetched with the query
    /// `clients/{id}/cosigned/{digest}`). The attester pays the fee.
    Cosign {
        /// The (attested) client.
        client: String,
        /// What is signed.
        item: CosignItem,
        /// The attester's 65-byte signature over the item's digest.
        signature: crate::attested::Signature65,
    },
    /// Check a value in a contract's storage on an external chain at an
    /// attested height (any caller; writes nothing).
    VerifyEthStorage {
        /// The (attested) client.
        client: String,
        /// The external chain's block number.
        height: u64,
        /// The `eth_getProof` proofs.
        proof: crate::attested::EthStorageProof,
    },
}

impl ClientMsg {
    /// Encoded.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("client messages encode")
    }

    /// As a transaction action.
    pub fn action(&self) -> tongtian_types::Action {
        tongtian_types::Action::Module {
            module: ID.into(),
            msg: self.encode(),
        }
    }
}

/// What an attester signs with [`ClientMsg::Cosign`].
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CosignItem {
    /// A block of the external chain.
    Block(crate::attested::Attestation),
    /// A packet this chain sent on `channel` (pending here) to the
    /// external chain: [`crate::attested::packet_digest`].
    Packet {
        /// The channel here.
        channel: String,
        /// Its sequence.
        sequence: u64,
    },
    /// This chain's acknowledgement of `packet`, received from the
    /// external chain: [`crate::attested::ack_digest`].
    Ack {
        /// The packet as the external chain sent it.
        packet: crate::channel::Packet,
    },
    /// `packet`, sent by the external chain, was not received here and
    /// can no longer be (this chain passed its timeout height or time):
    /// [`crate::attested::timeout_digest`], for the port's refund.
    Timeout {
        /// The packet as the external chain sent it.
        packet: crate::channel::Packet,
    },
}

/// The `client` module's genesis section.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Clients the chain starts with.
    #[serde(default)]
    pub clients: Vec<ClientInit>,
}

fn ckey(id: &str) -> Vec<u8> {
    format!("c/{id}").into_bytes()
}

fn cskey(id: &str, height: u64) -> Vec<u8> {
    format!("cs/{id}/{height:020}").into_bytes()
}

fn cokey(id: &str, digest: &[u8; 32]) -> String {
    format!("co/{id}/{}/", hex::encode(digest))
}

fn evkey(id: &str) -> Vec<u8> {
    format!("ev/{id}").into_bytes()
}

fn refuse(code: &str, message: impl Into<String>) -> ModuleError {
    ModuleError::new(code, message)
}

fn load(state: &ModuleState<'_, '_>, id: &str) -> ModuleResult<ClientState> {
    Ok(state
        .get_typed(&ckey(id))?
        .ok_or_else(|| refuse("unknown_client", format!("there is no client {id}")))?)
}

fn consensus(
    state: &ModuleState<'_, '_>,
    id: &str,
    height: u64,
) -> ModuleResult<Option<ConsensusState>> {
    Ok(state.get_typed(&cskey(id, height))?)
}

/// The latest consensus state strictly below `height`.
fn trusted_below(
    state: &ModuleState<'_, '_>,
    id: &str,
    height: u64,
) -> ModuleResult<Option<ConsensusState>> {
    let prefix = format!("cs/{id}/");
    let mut best = None;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = state.scan(prefix.as_bytes(), after.as_deref(), 256)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (_, v) in &page {
            let cs: ConsensusState = tongtian_types::codec::decode("consensus state", v)
                .map_err(|e| tongtian_execution::ExecutionError::Corrupt(e.to_string()))?;
            if cs.height < height {
                best = Some(cs);
            }
        }
        if page.len() < 256 {
            break;
        }
    }
    Ok(best)
}

/// Distinct members of `set` whose signatures over the certificate's
/// header (in its round) check.
fn signers(suite_id: SuiteId, set: &ValidatorSet, cert: &Certificate) -> usize {
    let s = suite(suite_id);
    let msg = BlockHeader::commit_bytes(&cert.block_hash, cert.round);
    let mut seen: Vec<&[u8]> = Vec::new();
    for sig in &cert.signatures {
        if seen.contains(&sig.public_key.as_slice())
            || !set
                .validators
                .iter()
                .any(|v| v.public_key == sig.public_key)
        {
            continue;
        }
        if s.verify(&sig.public_key, &msg, &sig.signature).is_ok() {
            seen.push(&sig.public_key);
        }
    }
    seen.len()
}

/// The header's hash, checked against its certificate.
fn certified_hash(c: &ClientState, sh: &SignedHeader) -> Result<H256, ModuleError> {
    if sh.header.chain_id != c.chain_id {
        return Err(refuse(
            "wrong_chain",
            format!(
                "header of chain {}, client {} follows chain {}",
                sh.header.chain_id, c.id, c.chain_id
            ),
        ));
    }
    let hash = sh.header.hash(c.suite);
    if sh.certificate.block_hash != hash {
        return Err(refuse(
            "certificate_mismatch",
            "the certificate is for another header",
        ));
    }
    Ok(hash)
}

fn usable(c: &ClientState, block: &tongtian_execution::BlockEnv) -> Result<(), ModuleError> {
    if c.frozen {
        return Err(refuse(
            "client_frozen",
            format!(
                "client {} is frozen by misbehaviour; only a vote unfreezes it",
                c.id
            ),
        ));
    }
    if block.height > c.refreshed_height.saturating_add(c.trusting_blocks)
        || block.timestamp_ms > c.refreshed_ms.saturating_add(c.trusting_ms)
    {
        return Err(refuse(
            "client_expired",
            format!(
                "client {} was last updated at height {}, past its trusting period; only a vote revives it",
                c.id, c.refreshed_height
            ),
        ));
    }
    Ok(())
}

/// An attested client's threshold; other clients refuse attestations.
fn attested_threshold(c: &ClientState) -> Result<u32, ModuleError> {
    match c.model {
        TrustModel::Attested { threshold } => Ok(threshold),
        _ => Err(refuse(
            "wrong_client_type",
            format!(
                "client {} follows certified headers, not attestations",
                c.id
            ),
        )),
    }
}

/// Refuse headers and Tongtian state proofs for an attested client.
fn not_attested(c: &ClientState) -> Result<(), ModuleError> {
    if matches!(c.model, TrustModel::Attested { .. }) {
        Err(refuse(
            "wrong_client_type",
            format!(
                "client {} follows an external chain by attestations: send Attest and VerifyEthStorage",
                c.id
            ),
        ))
    } else {
        Ok(())
    }
}

fn only_authority(ctx: &ModuleCtx<'_, '_>, what: &str) -> Result<(), ModuleError> {
    if tongtian_execution::module::is_module_caller(&ctx.caller, &AUTHORITIES) {
        Ok(())
    } else {
        Err(refuse(
            "governance_only",
            format!("{what} is decided by a governance vote"),
        ))
    }
}

fn create(
    state: &mut ModuleState<'_, '_>,
    init: &ClientInit,
    height: u64,
    time_ms: u64,
) -> ModuleResult<()> {
    let valid_id = !init.id.is_empty()
        && init.id.len() <= 64
        && init
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid_id {
        return Err(refuse(
            "bad_client_id",
            format!("{:?}: 1-64 of a-z, 0-9, - and _", init.id),
        )
        .into());
    }
    if state.get(&ckey(&init.id))?.is_some() {
        return Err(refuse("client_exists", format!("client {} exists", init.id)).into());
    }
    if init.validators.validators.is_empty() {
        return Err(refuse(
            "no_validators",
            "a client needs the validator set it trusts",
        )
        .into());
    }
    if init.trusting_blocks == 0 || init.trusting_ms == 0 {
        return Err(refuse("bad_trusting_period", "a trusting period is positive").into());
    }
    if let TrustModel::Attested { threshold } = init.model {
        let n = init.validators.validators.len();
        if threshold == 0 || threshold as usize > n {
            return Err(refuse(
                "bad_threshold",
                format!("a threshold of {threshold} of {n} attesters"),
            )
            .into());
        }
        if init
            .validators
            .validators
            .iter()
            .any(|v| v.public_key.len() != 20)
        {
            return Err(refuse(
                "bad_attester",
                "an attester is named by its 20-byte Ethereum address",
            )
            .into());
        }
    }
    state.set_typed(
        &ckey(&init.id),
        &ClientState {
            id: init.id.clone(),
            chain_id: init.chain_id,
            suite: init.suite,
            model: init.model,
            latest_height: init.height,
            trusting_blocks: init.trusting_blocks,
            trusting_ms: init.trusting_ms,
            refreshed_height: height,
            refreshed_ms: time_ms,
            frozen: false,
        },
    );
    state.set_typed(
        &cskey(&init.id, init.height),
        &ConsensusState {
            height: init.height,
            header_hash: init.header_hash,
            state_root: init.state_root,
            timestamp_ms: init.timestamp_ms,
            next_validators: init.validators.clone(),
        },
    );
    Ok(())
}

/// The `client` module.
#[derive(Debug, Default)]
pub struct Client;

impl Client {
    fn freeze(
        ctx: &mut ModuleCtx<'_, '_>,
        mut c: ClientState,
        kind: &str,
        headers: Vec<SignedHeader>,
        attestations: Vec<crate::attested::SignedAttestation>,
    ) -> ModuleResult<Vec<u8>> {
        c.frozen = true;
        let height = headers
            .first()
            .map(|h| h.header.height)
            .or(attestations.first().map(|a| a.attestation.height))
            .unwrap_or(0);
        ctx.state.set_typed(&ckey(&c.id), &c);
        ctx.state.set_typed(
            &evkey(&c.id),
            &Evidence {
                kind: kind.into(),
                headers,
                attestations,
                submitted_by: ctx.caller,
                height: ctx.block.height,
            },
        );
        ctx.emit(
            "client_frozen",
            vec![
                ("client".into(), c.id.clone()),
                ("reason".into(), kind.into()),
                ("height".into(), height.to_string()),
            ],
        );
        Ok(Vec::new())
    }

    fn update(
        ctx: &mut ModuleCtx<'_, '_>,
        id: &str,
        sh: SignedHeader,
        proof: StateProof,
    ) -> ModuleResult<Vec<u8>> {
        let c = load(&ctx.state, id)?;
        usable(&c, ctx.block)?;
        not_attested(&c)?;
        let hash = certified_hash(&c, &sh)?;
        let h = sh.header.height;
        if h <= c.latest_height {
            return Err(refuse(
                "stale_header",
                format!("client {id} trusts height {} already; send a newer header (conflicting ones go as misbehaviour)", c.latest_height),
            )
            .into());
        }
        let trusted = consensus(&ctx.state, id, c.latest_height)?.ok_or_else(|| {
            tongtian_execution::ExecutionError::Corrupt(format!(
                "client {id} lost its latest state"
            ))
        })?;
        // The set that signs the block after this header, proven in its state.
        if proof.key != tongtian_execution::membership::validators_key() {
            return Err(refuse("proof_invalid", "the proof is not of the validator set").into());
        }
        let s = suite(c.suite);
        proof
            .verify(s, &sh.header.state_root)
            .map_err(|e| refuse("proof_invalid", format!("validator set proof: {e}")))?;
        let next: ValidatorSet = proof
            .value
            .as_deref()
            .and_then(|v| tongtian_types::codec::decode("validator set", v).ok())
            .ok_or_else(|| refuse("proof_invalid", "the proof shows no validator set"))?;
        let tset = &trusted.next_validators;
        let by_trusted = signers(c.suite, tset, &sh.certificate);
        if h == c.latest_height + 1 {
            if by_trusted < c.model.quorum(tset.validators.len()) {
                return Err(refuse(
                    "insufficient_power",
                    format!(
                        "{by_trusted} of the {} trusted validators signed; {} needed",
                        tset.validators.len(),
                        c.model.quorum(tset.validators.len())
                    ),
                )
                .into());
            }
        } else {
            let trust_ok = match c.model {
                TrustModel::Bft => by_trusted > tset.validators.len() / 3,
                TrustModel::Raft => {
                    next.version == tset.version
                        && by_trusted >= c.model.quorum(tset.validators.len())
                }
                // Refused above (`not_attested`).
                TrustModel::Attested { .. } => false,
            };
            if !trust_ok {
                return Err(refuse(
                    "insufficient_power",
                    format!(
                        "skipping from {} to {h}: {by_trusted} of the {} trusted validators signed, not enough to skip; update height by height",
                        c.latest_height,
                        tset.validators.len()
                    ),
                )
                .into());
            }
            let by_own = signers(c.suite, &next, &sh.certificate);
            if by_own < c.model.quorum(next.validators.len()) {
                return Err(refuse(
                    "cannot_skip_validator_change",
                    format!("the validator set changed at or before height {h}: step through it"),
                )
                .into());
            }
        }
        if sh.header.timestamp_ms <= trusted.timestamp_ms && c.latest_height > 0 {
            return Self::freeze(ctx, c, "time_backwards", vec![sh], Vec::new());
        }
        Ok(Self::store_verified(
            ctx,
            c,
            ConsensusState {
                height: h,
                header_hash: hash,
                state_root: Some(sh.header.state_root),
                timestamp_ms: sh.header.timestamp_ms,
                next_validators: next,
            },
        ))
    }

    /// Keep `cs` as verified, refresh the client: the height, as answers.
    fn store_verified(
        ctx: &mut ModuleCtx<'_, '_>,
        mut c: ClientState,
        cs: ConsensusState,
    ) -> Vec<u8> {
        let h = cs.height;
        let hash = cs.header_hash;
        ctx.state.set_typed(&cskey(&c.id, h), &cs);
        c.latest_height = c.latest_height.max(h);
        c.refreshed_height = ctx.block.height;
        c.refreshed_ms = ctx.block.timestamp_ms;
        ctx.state.set_typed(&ckey(&c.id), &c);
        ctx.emit(
            "client_updated",
            vec![
                ("client".into(), c.id.clone()),
                ("height".into(), h.to_string()),
                ("header_hash".into(), hash.to_string()),
            ],
        );
        h.to_le_bytes().to_vec()
    }

    fn attest(
        ctx: &mut ModuleCtx<'_, '_>,
        id: &str,
        signed: crate::attested::SignedAttestation,
    ) -> ModuleResult<Vec<u8>> {
        let c = load(&ctx.state, id)?;
        usable(&c, ctx.block)?;
        let threshold = attested_threshold(&c)?;
        let a = &signed.attestation;
        if a.chain_id != c.chain_id {
            return Err(refuse(
                "wrong_chain",
                format!(
                    "attestation of chain {}, client {id} follows chain {}",
                    a.chain_id, c.chain_id
                ),
            )
            .into());
        }
        let trusted = consensus(&ctx.state, id, c.latest_height)?.ok_or_else(|| {
            tongtian_execution::ExecutionError::Corrupt(format!(
                "client {id} lost its latest state"
            ))
        })?;
        let set = trusted.next_validators;
        let by = crate::attested::attesters_signed(&set, &signed);
        if by < threshold as usize {
            return Err(refuse(
                "insufficient_power",
                format!(
                    "{by} of the {} attesters signed; {threshold} needed",
                    set.validators.len()
                ),
            )
            .into());
        }
        let h = a.height;
        if let Some(known) = consensus(&ctx.state, id, h)? {
            if known.header_hash == a.block_hash && known.state_root == Some(a.state_root) {
                return Err(refuse(
                    "stale_header",
                    format!("client {id} has height {h} attested already"),
                )
                .into());
            }
            // Two attested blocks for one height: the attesters lied.
            let earlier = crate::attested::SignedAttestation {
                attestation: crate::attested::Attestation {
                    chain_id: c.chain_id,
                    height: h,
                    block_hash: known.header_hash,
                    state_root: known.state_root.unwrap_or_default(),
                    timestamp_ms: known.timestamp_ms,
                },
                signatures: Vec::new(),
            };
            return Self::freeze(
                ctx,
                c,
                "conflicting_attestations",
                Vec::new(),
                vec![earlier, signed],
            );
        }
        Ok(Self::store_verified(
            ctx,
            c,
            ConsensusState {
                height: h,
                header_hash: a.block_hash,
                state_root: Some(a.state_root),
                timestamp_ms: a.timestamp_ms,
                next_validators: set,
            },
        ))
    }

    /// The signatures kept for `digest` of client `id`.
    fn cosigned(
        state: &ModuleState<'_, '_>,
        id: &str,
        digest: &[u8; 32],
    ) -> ModuleResult<Vec<crate::attested::Signature65>> {
        Ok(state
            .scan(cokey(id, digest).as_bytes(), None, 1_000)?
            .into_iter()
            .map(|(_, v)| crate::attested::Signature65(v))
            .collect())
    }

    fn cosign(
        ctx: &mut ModuleCtx<'_, '_>,
        id: &str,
        item: CosignItem,
        signature: crate::attested::Signature65,
    ) -> ModuleResult<Vec<u8>> {
        use crate::attested;
        let c = load(&ctx.state, id)?;
        usable(&c, ctx.block)?;
        let threshold = attested_threshold(&c)?;
        let none = BTreeMap::new();
        let chain_id = ctx.chain.chain_id;
        let on_channel = |ctx: &mut ModuleCtx<'_, '_>, ch: &str| -> ModuleResult<()> {
            let end = ctx.query(crate::channel::ID, &format!("channels/{ch}"), &none)?;
            if end["client"] != id {
                return Err(refuse(
                    "wrong_channel",
                    format!("channel {ch} does not run through client {id}"),
                )
                .into());
            }
            Ok(())
        };
        let digest = match &item {
            CosignItem::Block(a) => {
                if a.chain_id != c.chain_id {
                    return Err(refuse(
                        "wrong_chain",
                        format!(
                            "attestation of chain {}, client {id} follows chain {}",
                            a.chain_id, c.chain_id
                        ),
                    )
                    .into());
                }
                a.digest()
            }
            CosignItem::Packet { channel, sequence } => {
                on_channel(ctx, channel)?;
                let p = ctx.query(
                    crate::channel::ID,
                    &format!("packet/{channel}/{sequence}"),
                    &none,
                )?;
                let p: crate::channel::Packet = serde_json::from_value(p).map_err(|_| {
                    refuse(
                        "unknown_packet",
                        format!("no pending packet {sequence} on {channel}"),
                    )
                })?;
                let commitment: [u8; 32] = p.commitment().try_into().expect("32-byte commitment");
                attested::packet_digest(chain_id, &commitment)
            }
            CosignItem::Ack { packet } => {
                on_channel(ctx, &packet.dest_channel)?;
                let ack = ctx.query(
                    crate::channel::ID,
                    &format!("acks/{}/{}", packet.dest_channel, packet.sequence),
                    &none,
                )?;
                let ack: crate::channel::Ack = serde_json::from_value(ack).map_err(|_| {
                    refuse(
                        "unknown_packet",
                        format!(
                            "no ack of packet {} on {}",
                            packet.sequence, packet.dest_channel
                        ),
                    )
                })?;
                let commitment: [u8; 32] =
                    packet.commitment().try_into().expect("32-byte commitment");
                attested::ack_digest(
                    chain_id,
                    &commitment,
                    &borsh::to_vec(&ack).expect("acks encode"),
                )
            }
            CosignItem::Timeout { packet } => {
                on_channel(ctx, &packet.dest_channel)?;
                let received = ctx.query(
                    crate::channel::ID,
                    &format!("receipts/{}/{}", packet.dest_channel, packet.sequence),
                    &none,
                )?;
                let passed = (packet.timeout_height != 0
                    && ctx.block.height >= packet.timeout_height)
                    || (packet.timeout_ms != 0 && ctx.block.timestamp_ms >= packet.timeout_ms);
                if received == true || !passed {
                    return Err(refuse(
                        "timeout_not_reached",
                        format!(
                            "packet {} on {} was received here or can still be",
                            packet.sequence, packet.dest_channel
                        ),
                    )
                    .into());
                }
                let commitment: [u8; 32] =
                    packet.commitment().try_into().expect("32-byte commitment");
                attested::timeout_digest(chain_id, &commitment)
            }
        };
        let set = consensus(&ctx.state, id, c.latest_height)?
            .ok_or_else(|| {
                tongtian_execution::ExecutionError::Corrupt(format!(
                    "client {id} lost its latest state"
                ))
            })?
            .next_validators;
        let Some(signer) = attested::attester_of(&set, &digest, &signature) else {
            return Err(refuse(
                "not_an_attester",
                format!("the signature is not by an attester of client {id}"),
            )
            .into());
        };
        let key = format!("{}{}", cokey(id, &digest), hex::encode(signer));
        ctx.state.set(key.as_bytes(), signature.0.clone());
        ctx.emit(
            "cosigned",
            vec![
                ("client".into(), id.into()),
                ("digest".into(), hex::encode(digest)),
                ("attester".into(), format!("0x{}", hex::encode(signer))),
            ],
        );
        if let CosignItem::Block(a) = item {
            let sigs = Self::cosigned(&ctx.state, id, &digest)?;
            let known = consensus(&ctx.state, id, a.height)?;
            let done = known.is_some_and(|k| {
                k.header_hash == a.block_hash && k.state_root == Some(a.state_root)
            });
            if sigs.len() >= threshold as usize && !done {
                return Self::attest(
                    ctx,
                    id,
                    attested::SignedAttestation {
                        attestation: a,
                        signatures: sigs,
                    },
                );
            }
        }
        Ok(Vec::new())
    }

    fn misbehaviour(
        ctx: &mut ModuleCtx<'_, '_>,
        id: &str,
        a: SignedHeader,
        b: SignedHeader,
    ) -> ModuleResult<Vec<u8>> {
        let c = load(&ctx.state, id)?;
        if c.frozen {
            return Err(refuse("client_frozen", format!("client {id} is frozen already")).into());
        }
        not_attested(&c)?;
        let ha = certified_hash(&c, &a)?;
        let hb = certified_hash(&c, &b)?;
        let h = a.header.height;
        if b.header.height != h || ha == hb {
            return Err(refuse(
                "misbehaviour_not_proven",
                "evidence is two different headers of one height",
            )
            .into());
        }
        let trusted = trusted_below(&ctx.state, id, h)?.ok_or_else(|| {
            refuse(
                "unknown_height",
                format!("client {id} trusts no height below {h}"),
            )
        })?;
        let set = &trusted.next_validators;
        let q = c.model.quorum(set.validators.len());
        if signers(c.suite, set, &a.certificate) < q || signers(c.suite, set, &b.certificate) < q {
            return Err(refuse(
                "misbehaviour_not_proven",
                "each header must be certified by the validators the client trusts",
            )
            .into());
        }
        Self::freeze(ctx, c, "conflicting_headers", vec![a, b], Vec::new())
    }
}

impl Module for Client {
    fn id(&self) -> &'static str {
        ID
    }

    fn genesis(
        &self,
        state: &mut ModuleState<'_, '_>,
        spec: &ChainSpec,
        section: Option<&serde_json::Value>,
    ) -> ModuleResult<()> {
        let g: Genesis = match section {
            None => Genesis::default(),
            Some(s) => serde_json::from_value(s.clone())
                .map_err(|e| refuse("bad_genesis", format!("client section: {e}")))?,
        };
        for init in &g.clients {
            create(state, init, 0, spec.genesis_time_ms)?;
        }
        Ok(())
    }

    fn fee_policy(
        &self,
        state: &mut ModuleState<'_, '_>,
        tx: &tongtian_types::CheckedTx,
        _msg: &[u8],
    ) -> tongtian_execution::module::FeePolicy {
        crate::relay_fee(state, tx)
    }

    fn execute(&self, ctx: &mut ModuleCtx<'_, '_>, msg: &[u8]) -> ModuleResult<Vec<u8>> {
        let msg: ClientMsg = borsh::from_slice(msg).map_err(|e| ModuleError::bad_message(ID, e))?;
        match msg {
            ClientMsg::Create(init) => {
                only_authority(ctx, "creating a client")?;
                let (height, time) = (ctx.block.height, ctx.block.timestamp_ms);
                create(&mut ctx.state, &init, height, time)?;
                ctx.emit("client_created", vec![("client".into(), init.id)]);
                Ok(Vec::new())
            }
            ClientMsg::Update {
                client,
                signed,
                validators,
            } => Self::update(ctx, &client, signed, validators),
            ClientMsg::Misbehaviour { client, a, b } => Self::misbehaviour(ctx, &client, a, b),
            ClientMsg::VerifyState {
                client,
                height,
                key,
                value,
                proof,
            } => {
                let c = load(&ctx.state, &client)?;
                usable(&c, ctx.block)?;
                not_attested(&c)?;
                let root = consensus(&ctx.state, &client, height)?
                    .and_then(|cs| cs.state_root)
                    .ok_or_else(|| {
                        refuse(
                            "unknown_height",
                            format!("client {client} has verified no state at height {height}"),
                        )
                    })?;
                if proof.key != key || proof.value != value {
                    return Err(
                        refuse("proof_invalid", "the proof is of another key or value").into(),
                    );
                }
                proof
                    .verify(suite(c.suite), &root)
                    .map_err(|e| refuse("proof_invalid", e.to_string()))?;
                Ok(Vec::new())
            }
            ClientMsg::Attest { client, signed } => Self::attest(ctx, &client, signed),
            ClientMsg::Cosign {
                client,
                item,
                signature,
            } => Self::cosign(ctx, &client, item, signature),
            ClientMsg::VerifyEthStorage {
                client,
                height,
                proof,
            } => {
                let c = load(&ctx.state, &client)?;
                usable(&c, ctx.block)?;
                if !matches!(c.model, TrustModel::Attested { .. }) {
                    return Err(refuse(
                        "wrong_client_type",
                        format!("client {client} follows a Tongtian chain: send VerifyState"),
                    )
                    .into());
                }
                let root = consensus(&ctx.state, &client, height)?
                    .and_then(|cs| cs.state_root)
                    .ok_or_else(|| {
                        refuse(
                            "unknown_height",
                            format!("client {client} has no attested block {height}"),
                        )
                    })?;
                proof.verify(&root)?;
                Ok(Vec::new())
            }
            ClientMsg::Unfreeze { client } => {
                only_authority(ctx, "unfreezing a client")?;
                let mut c = load(&ctx.state, &client)?;
                c.frozen = false;
                c.refreshed_height = ctx.block.height;
                c.refreshed_ms = ctx.block.timestamp_ms;
                ctx.state.set_typed(&ckey(&client), &c);
                ctx.emit("client_unfrozen", vec![("client".into(), client)]);
                Ok(Vec::new())
            }
            ClientMsg::Revive { client } => {
                only_authority(ctx, "reviving a client")?;
                let mut c = load(&ctx.state, &client)?;
                c.refreshed_height = ctx.block.height;
                c.refreshed_ms = ctx.block.timestamp_ms;
                ctx.state.set_typed(&ckey(&client), &c);
                ctx.emit("client_revived", vec![("client".into(), client)]);
                Ok(Vec::new())
            }
        }
    }

    fn query(
        &self,
        state: &mut ModuleState<'_, '_>,
        path: &str,
        _params: &BTreeMap<String, String>,
    ) -> ModuleResult<serde_json::Value> {
        if path == "clients" {
            let mut out = Vec::new();
            for (_, v) in state.scan(b"c/", None, 10_000)? {
                let c: ClientState = tongtian_types::codec::decode("client", &v)
                    .map_err(|e| tongtian_execution::ExecutionError::Corrupt(e.to_string()))?;
                out.push(json(&c));
            }
            return Ok(serde_json::Value::Array(out));
        }
        if let Some(rest) = path.strip_prefix("clients/") {
            let mut parts = rest.splitn(3, '/');
            let id = parts.next().unwrap_or("");
            match (parts.next(), parts.next()) {
                (None, _) => return Ok(json(&load(state, id)?)),
                (Some("cosigned"), Some(d)) => {
                    let digest: [u8; 32] = hex::decode(d.trim_start_matches("0x"))
                        .ok()
                        .and_then(|b| b.try_into().ok())
                        .ok_or_else(|| {
                            refuse("bad_digest", format!("{d:?} is not a 32-byte hex digest"))
                        })?;
                    let sigs = Self::cosigned(state, id, &digest)?;
                    return Ok(json(&sigs));
                }
                (Some("evidence"), None) => {
                    let e: Option<Evidence> = state.get_typed(&evkey(id))?;
                    return Ok(e.map_or(serde_json::Value::Null, |e| json(&e)));
                }
                (Some("consensus"), Some(h)) => {
                    let h: u64 = h
                        .parse()
                        .map_err(|_| refuse("bad_height", format!("{h:?} is not a height")))?;
                    let cs = consensus(state, id, h)?.ok_or_else(|| {
                        refuse("not_found", format!("client {id} has no state at {h}"))
                    })?;
                    return Ok(json(&cs));
                }
                _ => {}
            }
        }
        Err(refuse(
            "unknown_query",
            format!("client answers clients, clients/ID, clients/ID/consensus/HEIGHT and clients/ID/evidence, not {path}"),
        )
        .into())
    }
}

/// Anything serializable, as JSON (module answers).
fn json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}
