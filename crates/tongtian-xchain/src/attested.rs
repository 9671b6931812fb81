//! Attested clients: how a Tongtian chain follows a chain that is not
//! ours (an Ethereum-compatible chain such as anvil, Hardhat or a
//! consortium Geth), whose blocks carry no certificate we can check.
//!
//! A threshold of named **attesters** (organisations' secp256k1 keys,
//! kept as the client's "validator set" by their 20-byte Ethereum
//! addresses) sign the external chain's block number, hash, state root
//! and time once the block is past the finality depth they agreed on
//! ([`Attestation::digest`]). The client stores each attested root; below
//! it, values in a contract's storage are proven with the Merkle-Patricia
//! proofs of `eth_getProof` ([`EthStorageProof`]), checked here, so a
//! relayer still cannot lie about what the chain holds.
//!
//! **Trust**: unlike the BFT and Raft light clients, this one trusts its
//! attesters: if `threshold` of them sign a root the external chain never
//! had, the client accepts it. Two attested roots for one height freeze
//! the client, as conflicting headers freeze a light client, and the
//! evidence (both attestations) is kept.

use alloy_rlp::Encodable;
use alloy_trie::{proof::verify_proof, Nibbles, TrieAccount};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use tongtian_crypto::eth::{keccak256, recover_address};
use tongtian_execution::module::ModuleError;
use tongtian_types::{serde_hex, Address, ValidatorSet, H256};

/// What the attesters sign about one block of the external chain.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Attestation {
    /// The external chain's id (its EIP-155 chain id).
    pub chain_id: u64,
    /// The block number.
    pub height: u64,
    /// The block hash.
    pub block_hash: H256,
    /// The block's state root.
    pub state_root: H256,
    /// The block's time, ms.
    pub timestamp_ms: u64,
}

/// Domain separation for attestation digests.
const DOMAIN: &[u8] = b"tongtian/attestation/v1";

impl Attestation {
    /// The 32-byte digest attesters sign (with a plain secp256k1 signature
    /// over it, `r || s || v`, `v` 27 or 28): Keccak-256 of the domain,
    /// then the fields big-endian, so a Solidity contract can rebuild it
    /// with `abi.encodePacked`.
    pub fn digest(&self) -> [u8; 32] {
        let mut b = Vec::with_capacity(DOMAIN.len() + 8 * 3 + 64);
        b.extend_from_slice(DOMAIN);
        b.extend_from_slice(&self.chain_id.to_be_bytes());
        b.extend_from_slice(&self.height.to_be_bytes());
        b.extend_from_slice(&self.block_hash.0);
        b.extend_from_slice(&self.state_root.0);
        b.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        keccak256(&b)
    }
}

/// What attesters sign for an EVM port contract (see
/// `contracts/evm-port/TongtianPort.sol`) to accept a packet that Tongtian
/// chain `chain_id` committed (`commitment`: the packet's commitment).
pub fn packet_digest(chain_id: u64, commitment: &[u8; 32]) -> [u8; 32] {
    keccak256(
        &[
            b"tongtian/packet/v1",
            &chain_id.to_be_bytes()[..],
            commitment,
        ]
        .concat(),
    )
}

/// What attesters sign for an EVM port contract to accept `ack` (Borsh)
/// as Tongtian chain `chain_id`'s acknowledgement of the packet with
/// `commitment` the contract sent.
pub fn ack_digest(chain_id: u64, commitment: &[u8; 32], ack: &[u8]) -> [u8; 32] {
    keccak256(
        &[
            b"tongtian/ack/v1",
            &chain_id.to_be_bytes()[..],
            commitment,
            &keccak256(ack),
        ]
        .concat(),
    )
}

/// What attesters sign for an EVM port contract to refund the packet with
/// `commitment`: Tongtian chain `chain_id` passed its timeout without
/// receiving it.
pub fn timeout_digest(chain_id: u64, commitment: &[u8; 32]) -> [u8; 32] {
    keccak256(
        &[
            b"tongtian/timeout/v1",
            &chain_id.to_be_bytes()[..],
            commitment,
        ]
        .concat(),
    )
}

/// An attestation with its signatures, as a relayer submits it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct SignedAttestation {
    /// What is attested.
    pub attestation: Attestation,
    /// Attesters' 65-byte signatures `r || s || v` over its digest.
    pub signatures: Vec<Signature65>,
}

/// A 65-byte recoverable secp256k1 signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Signature65(#[serde(with = "serde_hex")] pub Vec<u8>);

/// The attester address a set member stands for (its key field holds the
/// 20-byte address).
fn member(set: &ValidatorSet, who: &[u8; 20]) -> bool {
    set.validators.iter().any(|v| v.public_key == who)
}

/// Distinct attesters of `set` whose signatures over `a` check.
pub fn attesters_signed(set: &ValidatorSet, a: &SignedAttestation) -> usize {
    let digest = a.attestation.digest();
    let mut seen: Vec<[u8; 20]> = Vec::new();
    for sig in &a.signatures {
        let Some((rs, v)) = split(&sig.0) else {
            continue;
        };
        let Ok(who) = recover_address(&digest, &rs, v) else {
            continue;
        };
        if member(set, &who) && !seen.contains(&who) {
            seen.push(who);
        }
    }
    seen.len()
}

/// The attester of `set` whose signature over `digest` `sig` is, if any.
pub fn attester_of(set: &ValidatorSet, digest: &[u8; 32], sig: &Signature65) -> Option<[u8; 20]> {
    let (rs, v) = split(&sig.0)?;
    let who = recover_address(digest, &rs, v).ok()?;
    member(set, &who).then_some(who)
}

fn split(sig: &[u8]) -> Option<([u8; 64], u8)> {
    if sig.len() != 65 {
        return None;
    }
    let v = match sig[64] {
        27 | 28 => sig[64] - 27,
        0 | 1 => sig[64],
        _ => return None,
    };
    Some((sig[..64].try_into().ok()?, v))
}

/// A value in a contract's storage on the external chain, with the
/// `eth_getProof` proofs that show it under a state root.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct EthStorageProof {
    /// The contract.
    pub address: Address,
    /// Its nonce.
    pub nonce: u64,
    /// Its balance (32 bytes, big-endian).
    pub balance: H256,
    /// Its storage root.
    pub storage_root: H256,
    /// Its code hash.
    pub code_hash: H256,
    /// Trie nodes from the state root to the account.
    pub account_proof: Vec<ProofNode>,
    /// The storage slot.
    pub slot: H256,
    /// The value there (zero: the slot is empty).
    pub value: H256,
    /// Trie nodes from the storage root to the slot.
    pub storage_proof: Vec<ProofNode>,
}

/// One RLP-encoded trie node.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ProofNode(#[serde(with = "serde_hex")] pub Vec<u8>);

fn bad(message: impl Into<String>) -> ModuleError {
    ModuleError::new("proof_invalid", message)
}

impl EthStorageProof {
    /// Read the answer of `eth_getProof(address, [slot], block)` (its
    /// `result`) for its first storage key.
    pub fn from_rpc(result: &serde_json::Value) -> Result<Self, String> {
        let hex_bytes = |v: &serde_json::Value, what: &str| -> Result<Vec<u8>, String> {
            let s = v.as_str().ok_or(format!("{what} is not a string"))?;
            let s = s.strip_prefix("0x").unwrap_or(s);
            let s = if s.len() % 2 == 1 {
                format!("0{s}")
            } else {
                s.to_string()
            };
            hex::decode(s).map_err(|e| format!("{what}: {e}"))
        };
        let word = |v: &serde_json::Value, what: &str| -> Result<H256, String> {
            let b = hex_bytes(v, what)?;
            if b.len() > 32 {
                return Err(format!("{what} is longer than 32 bytes"));
            }
            let mut w = [0u8; 32];
            w[32 - b.len()..].copy_from_slice(&b);
            Ok(H256(w))
        };
        let nodes = |v: &serde_json::Value, what: &str| -> Result<Vec<ProofNode>, String> {
            v.as_array()
                .ok_or(format!("{what} is not a list"))?
                .iter()
                .map(|n| hex_bytes(n, what).map(ProofNode))
                .collect()
        };
        let storage = &result["storageProof"][0];
        let address: [u8; 20] = hex_bytes(&result["address"], "address")?
            .try_into()
            .map_err(|_| "address is not 20 bytes".to_string())?;
        let nonce = u64::from_str_radix(
            result["nonce"]
                .as_str()
                .ok_or("nonce is not a string")?
                .trim_start_matches("0x"),
            16,
        )
        .map_err(|e| format!("nonce: {e}"))?;
        Ok(EthStorageProof {
            address: Address(address),
            nonce,
            balance: word(&result["balance"], "balance")?,
            storage_root: word(&result["storageHash"], "storageHash")?,
            code_hash: word(&result["codeHash"], "codeHash")?,
            account_proof: nodes(&result["accountProof"], "accountProof")?,
            slot: word(&storage["key"], "storage key")?,
            value: word(&storage["value"], "storage value")?,
            storage_proof: nodes(&storage["proof"], "storage proof")?,
        })
    }

    /// Check it under `state_root`: the account under the state root, the
    /// slot's value (or its absence, for zero) under the account's
    /// storage root.
    pub fn verify(&self, state_root: &H256) -> Result<(), ModuleError> {
        let account = TrieAccount {
            nonce: self.nonce,
            balance: alloy_primitives::U256::from_be_bytes(self.balance.0),
            storage_root: self.storage_root.0.into(),
            code_hash: self.code_hash.0.into(),
        };
        let mut encoded = Vec::new();
        account.encode(&mut encoded);
        let nodes: Vec<alloy_primitives::Bytes> = self
            .account_proof
            .iter()
            .map(|n| n.0.clone().into())
            .collect();
        verify_proof(
            state_root.0.into(),
            Nibbles::unpack(keccak256(&self.address.0)),
            Some(encoded),
            &nodes,
        )
        .map_err(|e| bad(format!("account proof: {e}")))?;
        let value = alloy_primitives::U256::from_be_bytes(self.value.0);
        let expected = (!value.is_zero()).then(|| alloy_rlp::encode(value));
        let nodes: Vec<alloy_primitives::Bytes> = self
            .storage_proof
            .iter()
            .map(|n| n.0.clone().into())
            .collect();
        verify_proof(
            self.storage_root.0.into(),
            Nibbles::unpack(keccak256(&self.slot.0)),
            expected,
            &nodes,
        )
        .map_err(|e| bad(format!("storage proof: {e}")))
    }
}

/// The EVM side's port contract (`contracts/evm-port/TongtianPort.sol`),
/// as relayers and tests call it.
pub mod evm_port {
    use crate::channel::Packet;
    use alloy_sol_types::sol;

    sol! {
        /// A packet as the port contract takes it.
        struct SolPacket {
            uint64 sequence;
            string sourcePort;
            string sourceChannel;
            string destPort;
            string destChannel;
            bytes data;
            uint64 timeoutHeight;
            uint64 timeoutMs;
        }

        /// The port contract.
        interface ITongtianEvmPort {
            function sendTransfer(address token, uint256 amount, bytes20 receiver, uint64 timeoutHeight, uint64 timeoutMs) external returns (uint64);
            function recvPacket(SolPacket p, bytes[] sigs) external;
            function acknowledgePacket(SolPacket p, bytes ack, bytes[] sigs) external;
            function timeoutPacket(SolPacket p, bytes[] sigs) external;
            function escrowed(address token) external view returns (uint256);
            event SendPacket(uint64 sequence, bytes packet);
            event RecvPacket(uint64 sequence, bytes ack);
        }
    }

    /// `p` as the port contract takes it.
    pub fn to_sol(p: &Packet) -> SolPacket {
        SolPacket {
            sequence: p.sequence,
            sourcePort: p.source_port.clone(),
            sourceChannel: p.source_channel.clone(),
            destPort: p.dest_port.clone(),
            destChannel: p.dest_channel.clone(),
            data: p.data.clone().into(),
            timeoutHeight: p.timeout_height,
            timeoutMs: p.timeout_ms,
        }
    }
}
