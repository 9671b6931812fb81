//! Transactions, blocks, certificates and receipts.

use crate::codec::encode;
use crate::eth::{floor_gas, EthTx, EthTxError};
use crate::primitives::{serde_hex, serde_u128};
use crate::{Address, GasSchedule, ValidatorSpec, H256};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use tongtian_crypto::{suite, verify_many, BatchCheck, CryptoSuite, Keypair, SuiteId, VerifyItem};

/// Domain tag prepended to a transaction's encoding before signing, so a
/// transaction signature can never be replayed as another kind of message.
pub const TX_SIGNING_DOMAIN: &[u8] = b"tongtian/tx/v1";
/// Domain tag for commit certificates over block hashes.
pub const BLOCK_SIGNING_DOMAIN: &[u8] = b"tongtian/block/v1";

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Action {
    /// Move native tokens to another account.
    Transfer {
        /// Recipient.
        to: Address,
        /// Amount in the smallest unit.
        #[serde(with = "serde_u128")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: u128,
        /// Free-form memo (counted against the size limit and gas).
        #[serde(with = "serde_hex", default)]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        memo: Vec<u8>,
    },
    /// A message to a native module (membership, governance, the chain
    /// registry, ...): the one action every module is reached by. The
    /// module decodes `msg` as its own typed message.
    Module {
        /// The module's stable id (e.g. `membership`).
        module: String,
        /// The module's message, in its encoding (Borsh).
        #[serde(with = "serde_hex")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        msg: Vec<u8>,
    },
    /// Create a contract on one of the chain's virtual machines. The new
    /// contract's address is [`crate::eth::create_address`] of the sender
    /// and this transaction's nonce.
    Deploy {
        /// Which VM runs it.
        vm: VmKind,
        /// WASM module, or EVM init code (constructor arguments appended).
        #[serde(with = "serde_hex")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        code: Vec<u8>,
        /// WASM only: arguments to the contract's `deploy` entry point.
        #[serde(with = "serde_hex", default)]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        args: Vec<u8>,
        /// Native tokens sent to the new contract.
        #[serde(with = "serde_u128", default)]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        value: u128,
    },
    /// Call a contract (or, with empty input, pay any account).
    Call {
        /// The contract.
        to: Address,
        /// WASM: method and arguments (the contract SDK's value encoding);
        /// EVM: ABI call data.
        #[serde(with = "serde_hex")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        input: Vec<u8>,
        /// Native tokens sent with the call.
        #[serde(with = "serde_u128", default)]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        value: u128,
    },
    /// An Ethereum transaction exactly as a wallet signed it (see
    /// [`crate::eth`]); the envelope's signer fields hold the recovered
    /// sender address and no signature.
    Ethereum {
        /// The RLP (typed) transaction bytes.
        #[serde(with = "serde_hex")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        raw: Vec<u8>,
    },
}

/// The virtual machines a contract can run on.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum VmKind {
    /// WebAssembly contracts (Rust and other languages compiled to WASM).
    Wasm,
    /// The Ethereum virtual machine (Solidity).
    Evm,
}

impl VmKind {
    /// Both VMs.
    pub const ALL: [VmKind; 2] = [VmKind::Wasm, VmKind::Evm];
}

impl std::fmt::Display for VmKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VmKind::Wasm => "wasm",
            VmKind::Evm => "evm",
        })
    }
}

impl std::str::FromStr for VmKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "wasm" => Ok(VmKind::Wasm),
            "evm" => Ok(VmKind::Evm),
            other => Err(format!("unknown vm `{other}` (wasm or evm)")),
        }
    }
}

/// Domain tag of validator-set change approvals.
pub const VALIDATOR_CHANGE_DOMAIN: &[u8] = b"tongtian/validators/v1";

/// The chain's validator set as kept in state: the spec's at genesis, then
/// whatever approved changes through the `membership` module made it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidatorSet {
    /// Bumped by every change; approvals name the version they change.
    pub version: u64,
    /// The validators.
    pub validators: Vec<ValidatorSpec>,
}

impl ValidatorSet {
    /// Approvals needed to change this set: more than two thirds.
    pub fn quorum(&self) -> usize {
        self.validators.len() * 2 / 3 + 1
    }

    /// What each approving validator signs to move from this set (at its
    /// version) to `next` on chain `chain_id`.
    pub fn change_bytes(&self, chain_id: u64, next: &[ValidatorSpec]) -> Vec<u8> {
        let mut out = VALIDATOR_CHANGE_DOMAIN.to_vec();
        out.extend(encode(&(chain_id, self.version, next.to_vec())));
        out
    }

    /// Count distinct current validators whose approval verifies.
    pub fn approvals_valid(
        &self,
        s: &dyn CryptoSuite,
        chain_id: u64,
        next: &[ValidatorSpec],
        approvals: &[CertificateSignature],
    ) -> usize {
        let msg = self.change_bytes(chain_id, next);
        let mut seen: Vec<&[u8]> = Vec::new();
        for a in approvals {
            let member = self.validators.iter().any(|v| v.public_key == a.public_key);
            if member
                && !seen.contains(&a.public_key.as_slice())
                && s.verify(&a.public_key, &msg, &a.signature).is_ok()
            {
                seen.push(&a.public_key);
            }
        }
        seen.len()
    }
}

/// The signed body of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Transaction {
    /// The chain this transaction is for; other chains reject it.
    pub chain_id: u64,
    /// The sender's next nonce; each nonce is used exactly once.
    pub nonce: u64,
    /// Most gas the sender will pay for.
    pub gas_limit: u64,
    /// Price per gas unit.
    pub gas_price: u64,
    /// What to do.
    pub action: Action,
}

impl Transaction {
    /// The bytes a sender signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = TX_SIGNING_DOMAIN.to_vec();
        out.extend(encode(self));
        out
    }

    /// Sign with a key pair.
    pub fn sign(self, key: &Keypair) -> SignedTransaction {
        let signature = key.sign(&self.signing_bytes());
        SignedTransaction {
            tx: self,
            public_key: key.public_key().to_vec(),
            signature,
        }
    }
}

/// A transaction with its signer's public key and signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedTransaction {
    /// The body.
    pub tx: Transaction,
    /// Signer's encoded public key (its address is derived from it).
    #[serde(with = "serde_hex")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub public_key: Vec<u8>,
    /// Signature over [`Transaction::signing_bytes`].
    #[serde(with = "serde_hex")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub signature: Vec<u8>,
}

impl SignedTransaction {
    /// Wrap raw Ethereum transaction bytes, recovering the sender.
    pub fn from_ethereum(raw: Vec<u8>) -> Result<SignedTransaction, EthTxError> {
        let eth = EthTx::decode(&raw)?;
        let sender = eth.recover_sender()?;
        let gas_price = u64::try_from(eth.effective_gas_price())
            .map_err(|_| EthTxError::TooLarge("gas price"))?;
        Ok(SignedTransaction {
            tx: Transaction {
                chain_id: eth.chain_id,
                nonce: eth.nonce,
                gas_limit: eth.gas_limit,
                gas_price,
                action: Action::Ethereum { raw },
            },
            public_key: sender.0.to_vec(),
            signature: Vec::new(),
        })
    }

    /// The transaction hash: under the chain's suite (hash of the full
    /// encoding), or Keccak-256 of the raw bytes for Ethereum transactions,
    /// as Ethereum tools compute it.
    pub fn hash(&self, suite_id: SuiteId) -> H256 {
        self.hash_of_encoding(suite_id, None)
    }

    /// [`SignedTransaction::hash`], given this transaction's canonical
    /// encoding if the caller already has it.
    fn hash_of_encoding(&self, suite_id: SuiteId, encoded: Option<&[u8]>) -> H256 {
        match (&self.tx.action, encoded) {
            (Action::Ethereum { raw }, _) => H256(tongtian_crypto::eth::keccak256(raw)),
            (_, Some(bytes)) => H256(suite(suite_id).hash(bytes)),
            (_, None) => H256(suite(suite_id).hash(&encode(self))),
        }
    }

    /// The sender's address.
    pub fn sender(&self, suite_id: SuiteId) -> Address {
        match &self.tx.action {
            Action::Ethereum { .. } => {
                let mut a = [0u8; 20];
                let n = self.public_key.len().min(20);
                a[..n].copy_from_slice(&self.public_key[..n]);
                Address(a)
            }
            _ => Address::from_public_key(suite_id, &self.public_key),
        }
    }

    /// Check the signature: with the chain's suite, or for Ethereum
    /// transactions by recovering the signer and checking that it and every
    /// envelope field match the raw transaction.
    pub fn verify(&self, s: &dyn CryptoSuite) -> Result<(), tongtian_crypto::CryptoError> {
        match &self.tx.action {
            Action::Ethereum { raw } => {
                let ok = SignedTransaction::from_ethereum(raw.clone())
                    .map(|w| w == *self)
                    .unwrap_or(false);
                if ok {
                    Ok(())
                } else {
                    Err(tongtian_crypto::CryptoError::BadSignature)
                }
            }
            _ => s.verify(&self.public_key, &self.tx.signing_bytes(), &self.signature),
        }
    }
}

/// Check many transactions' signatures at once (batched, on all cores);
/// one flag per transaction, in order.
pub fn verify_signatures(s: &dyn CryptoSuite, txs: &[&SignedTransaction]) -> Vec<bool> {
    verify_signatures_by(s, txs, &|s, items| verify_many(s, items))
}

/// [`verify_signatures`], with the suite's signatures checked by `batch`
/// (for instance [`tongtian_crypto::Combiner::verify`], to combine them
/// with other threads' checks). Ethereum signatures are still checked here.
pub fn verify_signatures_by(
    s: &dyn CryptoSuite,
    txs: &[&SignedTransaction],
    batch: &BatchCheck<'_>,
) -> Vec<bool> {
    use rayon::prelude::*;
    let is_eth = |t: &&&SignedTransaction| matches!(t.tx.action, Action::Ethereum { .. });
    if txs.iter().any(|t| is_eth(&t)) {
        // Ethereum signatures recover rather than batch: check them one by
        // one in parallel, and the suite's in one batch.
        let native: Vec<&SignedTransaction> = txs.iter().filter(|t| !is_eth(t)).copied().collect();
        let mut native_ok = verify_signatures_by(s, &native, batch).into_iter();
        let eth_ok: Vec<bool> = txs
            .par_iter()
            .filter(is_eth)
            .map(|t| t.verify(s).is_ok())
            .collect();
        let mut eth_ok = eth_ok.into_iter();
        return txs
            .iter()
            .map(|t| {
                if is_eth(&t) {
                    eth_ok.next().unwrap_or(false)
                } else {
                    native_ok.next().unwrap_or(false)
                }
            })
            .collect();
    }
    let msgs: Vec<Vec<u8>> = txs.iter().map(|t| t.tx.signing_bytes()).collect();
    let items: Vec<VerifyItem> = txs
        .iter()
        .zip(&msgs)
        .map(|(t, m)| VerifyItem {
            public_key: &t.public_key,
            message: m,
            signature: &t.signature,
        })
        .collect();
    batch(s, &items)
}

/// A transaction that passed admission checks, with the values those
/// checks computed (so later stages do not recompute them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedTx {
    /// The transaction.
    pub tx: SignedTransaction,
    /// Its hash ([`SignedTransaction::hash`]).
    pub hash: H256,
    /// Its sender.
    pub sender: Address,
    /// Length of its canonical encoding.
    pub encoded_len: usize,
    /// Native tokens the action moves out of the sender's balance.
    value: u128,
    /// Ethereum transactions: their intrinsic gas by Ethereum's rule
    /// (`u64::MAX` if the raw bytes do not decode, so they never fit).
    eth_intrinsic: Option<u64>,
    /// Ethereum transactions: EIP-7623's calldata floor (`u64::MAX` if the
    /// raw bytes do not decode; 0 for other transactions).
    eth_floor: u64,
    /// The chain waives its fee (a module said so at admission; see
    /// [`CheckedTx::waive_fee`]): admission then reserves no fee for it.
    fee_free: bool,
}

impl CheckedTx {
    /// Gas charged before any execution. Ethereum transactions follow
    /// Ethereum's rule ([`crate::eth::intrinsic_gas`]) so wallets' usual
    /// limits (21,000 for a plain payment) work; native ones pay the
    /// schedule's base plus a price per encoded byte.
    pub fn intrinsic_gas(&self, gas: &GasSchedule) -> u64 {
        self.eth_intrinsic
            .unwrap_or(gas.tx_base + gas.per_byte * self.encoded_len as u64)
    }

    /// The least gas limit that can include it: its intrinsic gas and, for
    /// an Ethereum transaction, EIP-7623's calldata floor
    /// ([`crate::eth::floor_gas`]), which the EVM charges at least.
    pub fn min_gas_limit(&self, gas: &GasSchedule) -> u64 {
        self.intrinsic_gas(gas).max(self.eth_floor)
    }

    /// Native tokens the action moves out of the sender's balance.
    pub fn value(&self) -> u128 {
        self.value
    }

    /// Mark it as one the chain charges no fee for (what mempool
    /// admission learns from the chain's modules). Execution decides fees
    /// by itself; this only tells admission not to reserve one.
    pub fn waive_fee(&mut self) {
        self.fee_free = true;
    }

    /// Whether [`CheckedTx::waive_fee`] marked it.
    pub fn is_fee_free(&self) -> bool {
        self.fee_free
    }

    /// Compute hash, sender, size, value and intrinsic gas (does not
    /// verify the signature). An Ethereum transaction's raw bytes are
    /// decoded here once, not by every later stage.
    pub fn new(tx: SignedTransaction, suite_id: SuiteId) -> Self {
        let bytes = encode(&tx);
        let (value, eth_intrinsic, eth_floor) = match &tx.tx.action {
            Action::Transfer { amount, .. } => (*amount, None, 0),
            Action::Module { .. } => (0, None, 0),
            Action::Deploy { value, .. } | Action::Call { value, .. } => (*value, None, 0),
            Action::Ethereum { raw } => match EthTx::decode(raw) {
                Ok(e) => (e.value, Some(e.intrinsic_gas()), floor_gas(&e.input)),
                Err(_) => (0, Some(u64::MAX), u64::MAX),
            },
        };
        CheckedTx {
            hash: tx.hash_of_encoding(suite_id, Some(&bytes)),
            sender: tx.sender(suite_id),
            encoded_len: bytes.len(),
            value,
            eth_intrinsic,
            eth_floor,
            fee_free: false,
            tx,
        }
    }
}

/// A block header. Its hash is what consensus signs.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockHeader {
    /// Chain id.
    pub chain_id: u64,
    /// Height; genesis is 0.
    pub height: u64,
    /// Proposal time, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Hash of the parent header (genesis: hash of the chain spec).
    pub parent_hash: H256,
    /// Merkle root of the transaction hashes.
    pub tx_root: H256,
    /// Merkle root of the receipt hashes.
    pub receipts_root: H256,
    /// Root of the authenticated state after this block.
    pub state_root: H256,
    /// Number of transactions.
    pub tx_count: u32,
    /// The proposer's address (receives the fees).
    pub proposer: Address,
}

impl BlockHeader {
    /// The header hash.
    pub fn hash(&self, suite_id: SuiteId) -> H256 {
        H256(suite(suite_id).hash(&encode(self)))
    }

    /// The bytes a validator signs to commit this header in consensus
    /// round `round` (0 for engines without rounds). Binding the round
    /// keeps a commit vote of one round from being replayed into another.
    pub fn commit_bytes(hash: &H256, round: u32) -> Vec<u8> {
        let mut out = BLOCK_SIGNING_DOMAIN.to_vec();
        out.extend_from_slice(&hash.0);
        out.extend_from_slice(&round.to_le_bytes());
        out
    }
}

/// A block: header and ordered transactions.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    /// Header.
    pub header: BlockHeader,
    /// Transactions, in execution order.
    pub txs: Vec<SignedTransaction>,
}

/// One validator's signature in a commit certificate.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertificateSignature {
    /// Validator's encoded public key.
    #[serde(with = "serde_hex")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub public_key: Vec<u8>,
    /// Signature over [`BlockHeader::commit_bytes`].
    #[serde(with = "serde_hex")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub signature: Vec<u8>,
}

/// Proof that a header was committed: signatures of validators over its hash.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Certificate {
    /// Engine that produced it (`solo`, ...).
    pub engine: String,
    /// Signed header's hash.
    pub block_hash: H256,
    /// Consensus round the signatures were cast in (0 for solo and raft).
    #[serde(default)]
    pub round: u32,
    /// The signatures.
    pub signatures: Vec<CertificateSignature>,
}

impl Certificate {
    /// Check that at least `quorum` distinct validators of `validators` signed
    /// `block_hash`. This is what a light client runs.
    pub fn verify(
        &self,
        s: &dyn CryptoSuite,
        validators: &[Vec<u8>],
        quorum: usize,
        block_hash: &H256,
    ) -> bool {
        if &self.block_hash != block_hash {
            return false;
        }
        let msg = BlockHeader::commit_bytes(block_hash, self.round);
        let mut seen: Vec<&[u8]> = Vec::new();
        for sig in &self.signatures {
            if !validators.iter().any(|v| v == &sig.public_key)
                || seen.contains(&sig.public_key.as_slice())
            {
                continue;
            }
            if s.verify(&sig.public_key, &msg, &sig.signature).is_ok() {
                seen.push(&sig.public_key);
            }
        }
        seen.len() >= quorum
    }
}

/// A structured event emitted during execution.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Emitting module or contract address (zero for native modules).
    pub emitter: Address,
    /// Event name, e.g. `transfer`.
    pub name: String,
    /// Ordered key/value attributes.
    pub attributes: Vec<(String, String)>,
}

/// Outcome of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum TxStatus {
    /// Applied.
    Success,
    /// Fee charged and nonce used, but the action's effects were rolled back.
    Failed {
        /// Stable machine-readable code.
        code: String,
        /// Human-readable reason.
        message: String,
    },
}

/// What executing one transaction produced.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Receipt {
    /// Transaction hash.
    pub tx_hash: H256,
    /// Block height.
    pub height: u64,
    /// Index within the block.
    pub index: u32,
    /// Sender.
    pub sender: Address,
    /// Outcome.
    pub status: TxStatus,
    /// Gas consumed.
    pub gas_used: u64,
    /// Fee paid (gas_used * gas_price).
    #[serde(with = "serde_u128")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub fee: u128,
    /// Events, empty when failed.
    pub events: Vec<Event>,
    /// What a contract call returned, or a revert's data.
    #[serde(with = "serde_hex", default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub output: Vec<u8>,
    /// The contract a deployment created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_address: Option<Address>,
}

impl Receipt {
    /// Whether the action succeeded.
    pub fn is_success(&self) -> bool {
        matches!(self.status, TxStatus::Success)
    }

    /// Receipt digest for the receipts root.
    pub fn hash(&self, suite_id: SuiteId) -> H256 {
        H256(suite(suite_id).hash(&encode(self)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode;
    use proptest::prelude::*;

    fn arb_tx() -> impl Strategy<Value = SignedTransaction> {
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<[u8; 20]>(),
            any::<u128>(),
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 0..70),
        )
            .prop_map(
                |(c, n, gl, gp, to, amount, memo, pk, sig)| SignedTransaction {
                    tx: Transaction {
                        chain_id: c,
                        nonce: n,
                        gas_limit: gl,
                        gas_price: gp,
                        action: Action::Transfer {
                            to: Address(to),
                            amount,
                            memo,
                        },
                    },
                    public_key: pk,
                    signature: sig,
                },
            )
    }

    proptest! {
        #[test]
        fn tx_encoding_roundtrips(tx in arb_tx()) {
            let bytes = encode(&tx);
            let back: SignedTransaction = decode("tx", &bytes).unwrap();
            prop_assert_eq!(&back, &tx);
            // canonical: re-encoding gives the same bytes
            prop_assert_eq!(encode(&back), bytes.clone());
            // trailing garbage is refused
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(decode::<SignedTransaction>("tx", &longer).is_err());
            // every strict prefix is refused
            if !bytes.is_empty() {
                prop_assert!(decode::<SignedTransaction>("tx", &bytes[..bytes.len() - 1]).is_err());
            }
            // JSON round trip
            let j = serde_json::to_string(&tx).unwrap();
            prop_assert_eq!(serde_json::from_str::<SignedTransaction>(&j).unwrap(), tx);
        }

        #[test]
        fn block_encoding_roundtrips(txs in proptest::collection::vec(arb_tx(), 0..5), h in any::<u64>()) {
            let block = Block {
                header: BlockHeader {
                    chain_id: 1, height: h, timestamp_ms: 5, parent_hash: H256([1; 32]),
                    tx_root: H256([2; 32]), receipts_root: H256([3; 32]), state_root: H256([4; 32]),
                    tx_count: txs.len() as u32, proposer: Address([9; 20]),
                },
                txs,
            };
            let back: Block = decode("block", &encode(&block)).unwrap();
            prop_assert_eq!(back, block);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode::<SignedTransaction>("tx", &bytes);
            let _ = decode::<Block>("block", &bytes);
        }
    }

    #[test]
    fn signature_binds_chain_id_and_nonce() {
        for id in [SuiteId::Standard, SuiteId::Sm] {
            let key = Keypair::generate(id);
            let tx = Transaction {
                chain_id: 7,
                nonce: 0,
                gas_limit: 100,
                gas_price: 1,
                action: Action::Transfer {
                    to: Address([1; 20]),
                    amount: 5,
                    memo: vec![],
                },
            };
            let signed = tx.sign(&key);
            signed.verify(suite(id)).unwrap();
            let mut other_chain = signed.clone();
            other_chain.tx.chain_id = 8;
            assert!(other_chain.verify(suite(id)).is_err());
            let mut other_nonce = signed.clone();
            other_nonce.tx.nonce = 1;
            assert!(other_nonce.verify(suite(id)).is_err());
            assert_ne!(other_nonce.hash(id), signed.hash(id));
        }
    }

    #[test]
    fn certificate_needs_quorum_of_known_validators() {
        let s = suite(SuiteId::Standard);
        let vals: Vec<Keypair> = (0..4)
            .map(|_| Keypair::generate(SuiteId::Standard))
            .collect();
        let pks: Vec<Vec<u8>> = vals.iter().map(|k| k.public_key().to_vec()).collect();
        let h = H256([5; 32]);
        let sign = |k: &Keypair| CertificateSignature {
            public_key: k.public_key().to_vec(),
            signature: k.sign(&BlockHeader::commit_bytes(&h, 0)),
        };
        let mut cert = Certificate {
            engine: "t".into(),
            block_hash: h,
            round: 0,
            signatures: vals[..3].iter().map(sign).collect(),
        };
        assert!(cert.verify(s, &pks, 3, &h));
        assert!(!cert.verify(s, &pks, 3, &H256([6; 32])));
        // duplicates do not count twice
        cert.signatures[2] = cert.signatures[1].clone();
        assert!(!cert.verify(s, &pks, 3, &h));
        // outsiders do not count
        let outsider = Keypair::generate(SuiteId::Standard);
        cert.signatures[2] = sign(&outsider);
        assert!(!cert.verify(s, &pks, 3, &h));
    }
}
