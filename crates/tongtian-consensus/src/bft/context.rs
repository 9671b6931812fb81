//! Tongtian's types for malachite's Tendermint core: heights, blocks as
//! values, votes, proposals and validator sets, signed with the chain's
//! own crypto suite.
//!
//! Signing bytes are chosen so the commit certificate is checkable by a
//! light client with [`tongtian_types::Certificate::verify`]: a precommit
//! for a block signs exactly [`BlockHeader::commit_bytes`] of the block
//! hash and round. Every other vote and the proposal sign a domain-tagged
//! encoding that binds height, round and kind.

use malachitebft_core_types::{
    Context, Extension, Height, NilOrVal, Proposal, ProposalPart, Round, SigningScheme, Validator,
    ValidatorSet, Value, Vote, VoteType, VotingPower,
};
use std::fmt;
use std::sync::Arc;
use tongtian_types::{BlockHeader, H256};

/// Domain tag of proposal signatures.
const PROPOSAL_DOMAIN: &[u8] = b"tongtian/bft/proposal/v1";
/// Domain tag of prevote and nil-precommit signatures.
const VOTE_DOMAIN: &[u8] = b"tongtian/bft/vote/v1";

/// Block height.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BftHeight(pub u64);

impl fmt::Display for BftHeight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Height for BftHeight {
    const ZERO: Self = BftHeight(0);
    const INITIAL: Self = BftHeight(1);

    fn increment_by(&self, n: u64) -> Self {
        BftHeight(self.0 + n)
    }
    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(BftHeight)
    }
    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator's address: its encoded public key.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValAddr(pub Vec<u8>);

impl fmt::Display for ValAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex::encode(&self.0);
        write!(f, "{}", &h[..h.len().min(12)])
    }
}

impl fmt::Debug for ValAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl malachitebft_core_types::Address for ValAddr {}

/// A block's id: its header hash.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockId(pub H256);

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A proposed value: a whole block (Borsh bytes) and its hash.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlockValue {
    /// Header hash.
    pub id: BlockId,
    /// Borsh-encoded block.
    pub bytes: Arc<Vec<u8>>,
}

impl fmt::Debug for BlockValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Block({}, {} bytes)", self.id, self.bytes.len())
    }
}

impl Value for BlockValue {
    type Id = BlockId;
    fn id(&self) -> BlockId {
        self.id
    }
}

/// A prevote or precommit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BftVote {
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// Height.
    pub height: BftHeight,
    /// Round.
    pub round: Round,
    /// Block voted for, or nil.
    pub value: NilOrVal<BlockId>,
    /// Voter.
    pub validator: ValAddr,
}

impl BftVote {
    /// The bytes the voter signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        match (&self.vote_type, &self.value) {
            (VoteType::Precommit, NilOrVal::Val(id)) => {
                BlockHeader::commit_bytes(&id.0, round_u32(self.round))
            }
            _ => {
                let value = match &self.value {
                    NilOrVal::Val(id) => Some(id.0 .0),
                    NilOrVal::Nil => None,
                };
                let kind: u8 = match self.vote_type {
                    VoteType::Prevote => 0,
                    VoteType::Precommit => 1,
                };
                let mut out = VOTE_DOMAIN.to_vec();
                out.extend(
                    borsh::to_vec(&(kind, self.height.0, round_i64(self.round), value))
                        .unwrap_or_default(),
                );
                out
            }
        }
    }
}

/// A round as a signed integer (-1 for nil).
pub fn round_i64(r: Round) -> i64 {
    r.as_i64()
}

/// A round as u32 (0 for nil, which never appears in a commit).
pub fn round_u32(r: Round) -> u32 {
    r.as_u32().unwrap_or(0)
}

/// A round from its signed-integer form.
pub fn round_from_i64(r: i64) -> Round {
    if r < 0 {
        Round::Nil
    } else {
        Round::new(r as u32)
    }
}

impl Vote<TongtianBft> for BftVote {
    fn height(&self) -> BftHeight {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<BlockId> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<BlockId> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.vote_type
    }
    fn validator_address(&self) -> &ValAddr {
        &self.validator
    }
    fn extension(&self) -> Option<&malachitebft_core_types::SignedExtension<TongtianBft>> {
        None
    }
    fn take_extension(&mut self) -> Option<malachitebft_core_types::SignedExtension<TongtianBft>> {
        None
    }
    fn extend(self, _extension: malachitebft_core_types::SignedExtension<TongtianBft>) -> Self {
        self
    }
}

/// A block proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BftProposal {
    /// Height.
    pub height: BftHeight,
    /// Round.
    pub round: Round,
    /// The block.
    pub value: BlockValue,
    /// Proof-of-lock round (nil if none).
    pub pol_round: Round,
    /// Proposer.
    pub validator: ValAddr,
}

impl BftProposal {
    /// The bytes the proposer signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = PROPOSAL_DOMAIN.to_vec();
        out.extend(
            borsh::to_vec(&(
                self.height.0,
                round_i64(self.round),
                round_i64(self.pol_round),
                self.value.id.0 .0,
            ))
            .unwrap_or_default(),
        );
        out
    }
}

impl Proposal<TongtianBft> for BftProposal {
    fn height(&self) -> BftHeight {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &BlockValue {
        &self.value
    }
    fn take_value(self) -> BlockValue {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &ValAddr {
        &self.validator
    }
}

/// Unused: values travel whole inside proposals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoPart;

impl ProposalPart<TongtianBft> for NoPart {
    fn is_first(&self) -> bool {
        true
    }
    fn is_last(&self) -> bool {
        true
    }
}

/// Unused: no vote extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoExtension;

impl Extension for NoExtension {
    fn size_bytes(&self) -> usize {
        0
    }
}

/// A signature under the chain's suite.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SuiteSignature(pub Vec<u8>);

/// A public key under the chain's suite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuitePublicKey(pub Vec<u8>);

/// Signing through `tongtian-crypto`; keys never enter the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuiteScheme;

impl SigningScheme for SuiteScheme {
    type DecodingError = String;
    type Signature = SuiteSignature;
    type PublicKey = SuitePublicKey;
    type PrivateKey = ();

    fn decode_signature(bytes: &[u8]) -> Result<SuiteSignature, String> {
        Ok(SuiteSignature(bytes.to_vec()))
    }
    fn encode_signature(signature: &SuiteSignature) -> Vec<u8> {
        signature.0.clone()
    }
}

/// One validator, with equal voting power.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BftValidator {
    /// Address (= public key).
    pub address: ValAddr,
    /// Public key.
    pub public_key: SuitePublicKey,
}

impl Validator<TongtianBft> for BftValidator {
    fn address(&self) -> &ValAddr {
        &self.address
    }
    fn public_key(&self) -> &SuitePublicKey {
        &self.public_key
    }
    fn voting_power(&self) -> VotingPower {
        1
    }
}

/// The validator set, sorted by address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BftValidatorSet {
    /// Validators.
    pub validators: Vec<BftValidator>,
}

impl BftValidatorSet {
    /// From encoded public keys.
    pub fn from_keys(keys: impl IntoIterator<Item = Vec<u8>>) -> Self {
        let mut validators: Vec<BftValidator> = keys
            .into_iter()
            .map(|k| BftValidator {
                address: ValAddr(k.clone()),
                public_key: SuitePublicKey(k),
            })
            .collect();
        validators.sort_by(|a, b| a.address.cmp(&b.address));
        validators.dedup_by(|a, b| a.address == b.address);
        BftValidatorSet { validators }
    }
}

impl ValidatorSet<TongtianBft> for BftValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> VotingPower {
        self.validators.len() as VotingPower
    }
    fn get_by_address(&self, address: &ValAddr) -> Option<&BftValidator> {
        self.validators.iter().find(|v| &v.address == address)
    }
    fn get_by_index(&self, index: usize) -> Option<&BftValidator> {
        self.validators.get(index)
    }
}

/// The malachite context of Tongtian chains.
#[derive(Clone, Debug, Default)]
pub struct TongtianBft;

impl Context for TongtianBft {
    type Address = ValAddr;
    type Height = BftHeight;
    type ProposalPart = NoPart;
    type Proposal = BftProposal;
    type Validator = BftValidator;
    type ValidatorSet = BftValidatorSet;
    type Value = BlockValue;
    type Vote = BftVote;
    type Extension = NoExtension;
    type SigningScheme = SuiteScheme;

    fn select_proposer<'a>(
        &self,
        set: &'a BftValidatorSet,
        height: BftHeight,
        round: Round,
    ) -> &'a BftValidator {
        // Round-robin over the sorted set, shifted by height.
        let n = set.validators.len().max(1);
        let i = (height.0 as usize + round_u32(round) as usize) % n;
        &set.validators[i]
    }

    fn new_proposal(
        &self,
        height: BftHeight,
        round: Round,
        value: BlockValue,
        pol_round: Round,
        address: ValAddr,
    ) -> BftProposal {
        BftProposal {
            height,
            round,
            value,
            pol_round,
            validator: address,
        }
    }

    fn new_prevote(
        &self,
        height: BftHeight,
        round: Round,
        value_id: NilOrVal<BlockId>,
        address: ValAddr,
    ) -> BftVote {
        BftVote {
            vote_type: VoteType::Prevote,
            height,
            round,
            value: value_id,
            validator: address,
        }
    }

    fn new_precommit(
        &self,
        height: BftHeight,
        round: Round,
        value_id: NilOrVal<BlockId>,
        address: ValAddr,
    ) -> BftVote {
        BftVote {
            vote_type: VoteType::Precommit,
            height,
            round,
            value: value_id,
            validator: address,
        }
    }
}
