//! Chain spec (genesis and parameters) and the account record.

use crate::primitives::{serde_hex, serde_u128};
use crate::{Address, TypesError, H256};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use tongtian_crypto::{suite, SuiteId};

/// An account as stored in state.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Account {
    /// Spendable balance.
    #[serde(with = "serde_u128")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub balance: u128,
    /// Next nonce the account must use.
    pub nonce: u64,
}

/// A prefunded account in genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct GenesisAccount {
    /// Address.
    pub address: Address,
    /// Initial balance.
    #[serde(with = "serde_u128")]
    pub balance: u128,
}

/// A validator: named in genesis, or added by a validator-set change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidatorSpec {
    /// Human name (node id).
    pub name: String,
    /// Encoded public key under the chain's suite.
    #[serde(with = "serde_hex")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub public_key: Vec<u8>,
}

/// Consensus parameters. `engine` is opaque outside the consensus crate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct ConsensusSpec {
    /// Engine name, e.g. `solo`.
    pub engine: String,
    /// Target time between blocks.
    #[serde(default = "default_interval")]
    pub block_interval_ms: u64,
    /// Most transactions in one block.
    #[serde(default = "default_max_block_txs")]
    pub max_block_txs: u32,
    /// When no transaction is pending, still produce an empty block once
    /// this long has passed since the last one (0: never). Dev chains use
    /// it so Ethereum tools that wait for "the next block" get one.
    #[serde(default)]
    pub empty_block_interval_ms: u64,
}

fn default_interval() -> u64 {
    200
}
fn default_max_block_txs() -> u32 {
    10_000
}

/// Gas prices of native operations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct GasSchedule {
    /// Base gas of any transaction.
    pub tx_base: u64,
    /// Extra gas per byte of encoded transaction.
    pub per_byte: u64,
    /// Smallest gas price the mempool admits.
    pub min_gas_price: u64,
}

impl Default for GasSchedule {
    fn default() -> Self {
        GasSchedule {
            tx_base: 21_000,
            per_byte: 16,
            min_gas_price: 1,
        }
    }
}

/// Size limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct Limits {
    /// Largest encoded transaction accepted, in bytes.
    pub max_tx_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tx_bytes: 256 * 1024,
        }
    }
}

/// A chain's genesis: identity, crypto suite, consensus, validators and
/// initial balances. Nodes of one chain must hold byte-identical specs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct ChainSpec {
    /// Human-readable chain name.
    pub name: String,
    /// Numeric chain id; bound into every transaction.
    pub chain_id: u64,
    /// Crypto suite for hashes, signatures and addresses.
    pub suite: SuiteId,
    /// Consensus engine and parameters.
    pub consensus: ConsensusSpec,
    /// Initial validators.
    pub validators: Vec<ValidatorSpec>,
    /// Prefunded accounts.
    pub accounts: Vec<GenesisAccount>,
    /// Gas schedule.
    #[serde(default)]
    pub gas: GasSchedule,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// Genesis time, milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    /// Virtual machines contracts may run on.
    #[serde(default = "all_vms")]
    pub vms: Vec<crate::VmKind>,
    /// Native modules' genesis sections, by module id (each module reads
    /// its own and refuses one it does not understand).
    #[serde(default, skip_serializing_if = "ModuleSections::is_empty")]
    pub modules: ModuleSections,
}

/// The `modules` part of a chain spec: module id to that module's genesis
/// section, any JSON. In the spec's canonical encoding (what its hash
/// covers) it is the compact JSON text with keys sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ModuleSections(pub std::collections::BTreeMap<String, serde_json::Value>);

impl ModuleSections {
    /// No section at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One module's section.
    pub fn get(&self, module: &str) -> Option<&serde_json::Value> {
        self.0.get(module)
    }

    /// Set one module's section.
    pub fn insert(&mut self, module: impl Into<String>, section: serde_json::Value) {
        self.0.insert(module.into(), section);
    }
}

impl BorshSerialize for ModuleSections {
    fn serialize<W: std::io::Write>(&self, writer: &mut W) -> std::io::Result<()> {
        // serde_json's maps are sorted (no preserve_order), so this text is
        // canonical for a given value.
        let text = serde_json::to_string(&self.0).map_err(std::io::Error::other)?;
        BorshSerialize::serialize(&text, writer)
    }
}

impl BorshDeserialize for ModuleSections {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        let text = String::deserialize_reader(reader)?;
        serde_json::from_str(&text)
            .map(ModuleSections)
            .map_err(std::io::Error::other)
    }
}

fn all_vms() -> Vec<crate::VmKind> {
    crate::VmKind::ALL.to_vec()
}

impl ChainSpec {
    /// Check internal consistency.
    pub fn validate(&self) -> Result<(), TypesError> {
        if self.validators.is_empty() {
            return Err(TypesError::Spec(
                "at least one validator is required".into(),
            ));
        }
        let s = suite(self.suite);
        for v in &self.validators {
            // A key the suite cannot use for verification is useless as a validator key.
            if s.verify(&v.public_key, b"", &vec![0u8; s.signature_len()])
                .is_err_and(|e| matches!(e, tongtian_crypto::CryptoError::InvalidPublicKey { .. }))
            {
                return Err(TypesError::Spec(format!(
                    "validator {} has an invalid {} key",
                    v.name, self.suite
                )));
            }
        }
        let mut addrs: Vec<_> = self.accounts.iter().map(|a| a.address).collect();
        addrs.sort();
        addrs.dedup();
        if addrs.len() != self.accounts.len() {
            return Err(TypesError::Spec("duplicate genesis account".into()));
        }
        if self.consensus.max_block_txs == 0 {
            return Err(TypesError::Spec("max_block_txs must be positive".into()));
        }
        Ok(())
    }

    /// Identity of the spec: the suite hash of its canonical encoding. The
    /// genesis header's parent hash.
    pub fn hash(&self) -> H256 {
        H256(suite(self.suite).hash(&crate::codec::encode(self)))
    }

    /// The address validators' fees go to: validator 0's account.
    pub fn validator_address(&self, index: usize) -> Option<Address> {
        self.validators
            .get(index)
            .map(|v| Address::from_public_key(self.suite, &v.public_key))
    }

    /// Parse from JSON.
    pub fn from_json(text: &str) -> Result<Self, TypesError> {
        let spec: ChainSpec =
            serde_json::from_str(text).map_err(|e| TypesError::Spec(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }
}

/// Builds chain specs for tests, tools and generated chains, so no one
/// writes a spec literal by hand: every field has a sensible default
/// (solo engine, standard suite, both VMs, default gas and limits).
#[derive(Clone, Debug)]
pub struct SpecBuilder {
    spec: ChainSpec,
}

impl SpecBuilder {
    /// A spec called `name` with chain id `chain_id`.
    pub fn new(name: &str, chain_id: u64) -> Self {
        SpecBuilder {
            spec: ChainSpec {
                name: name.into(),
                chain_id,
                suite: SuiteId::Standard,
                consensus: ConsensusSpec {
                    engine: "solo".into(),
                    block_interval_ms: default_interval(),
                    max_block_txs: default_max_block_txs(),
                    empty_block_interval_ms: 0,
                },
                validators: Vec::new(),
                accounts: Vec::new(),
                gas: GasSchedule::default(),
                limits: Limits::default(),
                genesis_time_ms: 0,
                vms: all_vms(),
                modules: ModuleSections::default(),
            },
        }
    }

    /// The crypto suite.
    pub fn suite(mut self, suite: SuiteId) -> Self {
        self.spec.suite = suite;
        self
    }

    /// The consensus engine (`solo`, `raft`, `bft`).
    pub fn engine(mut self, engine: &str) -> Self {
        self.spec.consensus.engine = engine.into();
        self
    }

    /// Block interval and, if positive, the idle interval of empty blocks.
    pub fn intervals(mut self, block_ms: u64, empty_block_ms: u64) -> Self {
        self.spec.consensus.block_interval_ms = block_ms;
        self.spec.consensus.empty_block_interval_ms = empty_block_ms;
        self
    }

    /// Most transactions per block.
    pub fn max_block_txs(mut self, n: u32) -> Self {
        self.spec.consensus.max_block_txs = n;
        self
    }

    /// Add a validator by public key.
    pub fn validator(mut self, name: &str, public_key: &[u8]) -> Self {
        self.spec.validators.push(ValidatorSpec {
            name: name.into(),
            public_key: public_key.to_vec(),
        });
        self
    }

    /// Fund an account at genesis.
    pub fn fund(mut self, address: Address, balance: u128) -> Self {
        self.spec.accounts.push(GenesisAccount { address, balance });
        self
    }

    /// Only these VMs.
    pub fn vms(mut self, vms: &[crate::VmKind]) -> Self {
        self.spec.vms = vms.to_vec();
        self
    }

    /// A module's genesis section.
    pub fn module(mut self, id: &str, section: serde_json::Value) -> Self {
        self.spec.modules.insert(id, section);
        self
    }

    /// The genesis time.
    pub fn genesis_time_ms(mut self, t: u64) -> Self {
        self.spec.genesis_time_ms = t;
        self
    }

    /// The spec, unchecked (tests of invalid specs need that).
    pub fn build_unchecked(self) -> ChainSpec {
        self.spec
    }

    /// The spec, validated.
    pub fn build(self) -> Result<ChainSpec, TypesError> {
        self.spec.validate()?;
        Ok(self.spec)
    }
}
