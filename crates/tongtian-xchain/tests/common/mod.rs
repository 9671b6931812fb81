//! A chain in a test: an executor with the project's modules over a real
//! store on disk, one block per transaction, each certified by its single
//! validator, so other chains' light clients can follow it.

#![allow(clippy::unwrap_used, dead_code)]

pub mod anvil;

use std::collections::BTreeMap;
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_execution::{BlockEnv, Executor, Mode};
use tongtian_storage::{BlockCommit, ChainStore, StateStore};
use tongtian_types::{
    Action, Address, Block, BlockHeader, Certificate, CertificateSignature, ChainSpec, Transaction,
    TxStatus, ValidatorSet, ValidatorSpec, H256,
};
use tongtian_xchain::channel::Proven;
use tongtian_xchain::client::SignedHeader;

pub struct Chain {
    pub _dir: tempfile::TempDir,
    pub id: u64,
    pub store: ChainStore,
    pub ex: Executor,
    pub validator: Keypair,
    pub height: u64,
    pub nonces: BTreeMap<Address, u64>,
}

pub fn addr(k: &Keypair) -> Address {
    Address::from_public_key(SuiteId::Standard, k.public_key())
}

pub fn vset(k: &Keypair) -> ValidatorSet {
    ValidatorSet {
        version: 0,
        validators: vec![ValidatorSpec {
            name: "v".into(),
            public_key: k.public_key().to_vec(),
        }],
    }
}

impl Chain {
    /// Chain `id` from `spec` (genesis committed), certified by `validator`.
    pub fn from_spec(id: u64, validator: Keypair, spec: ChainSpec) -> Chain {
        let ex = tongtian_modules::build(Executor::new(spec.clone()), &spec)
            .unwrap()
            .with_vm(tongtian_vm_evm::EvmVm::new());
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("c.redb"), SuiteId::Standard).unwrap();
        let mut c = Chain {
            _dir: dir,
            id,
            store,
            ex,
            validator,
            height: 0,
            nonces: BTreeMap::new(),
        };
        let genesis = c.ex.genesis_changes().unwrap();
        c.commit(genesis);
        c
    }

    pub fn commit(&mut self, changes: tongtian_storage::StateChanges) {
        let staged = self.store.stage(changes).unwrap();
        let header = BlockHeader {
            chain_id: self.id,
            height: self.height,
            timestamp_ms: 1_000 * (self.height + 1),
            parent_hash: H256::ZERO,
            tx_root: H256::ZERO,
            receipts_root: H256::ZERO,
            state_root: staged.root,
            tx_count: 0,
            proposer: Address::ZERO,
        };
        let cert = self.certify(&header);
        self.store
            .commit_block(BlockCommit {
                block: &Block {
                    header,
                    txs: vec![],
                },
                tx_hashes: &[],
                receipts: &[],
                certificate: &cert,
                state: &staged,
                filters: Default::default(),
                block_events: &[],
            })
            .unwrap();
    }

    pub fn certify(&self, header: &BlockHeader) -> Certificate {
        let hash = header.hash(SuiteId::Standard);
        Certificate {
            engine: "solo".into(),
            block_hash: hash,
            round: 0,
            signatures: vec![CertificateSignature {
                public_key: self.validator.public_key().to_vec(),
                signature: self.validator.sign(&BlockHeader::commit_bytes(&hash, 0)),
            }],
        }
    }

    /// One block with one transaction; its status code and output.
    pub fn send(&mut self, k: &Keypair, action: Action) -> (String, Vec<u8>) {
        let n = self.nonces.entry(addr(k)).or_default();
        let tx = Transaction {
            chain_id: self.id,
            nonce: *n,
            gas_limit: 10_000_000,
            gas_price: 1,
            action,
        }
        .sign(k);
        *n += 1;
        self.height += 1;
        let env = BlockEnv {
            height: self.height,
            timestamp_ms: 1_000 * (self.height + 1),
            proposer: Address::ZERO,
        };
        let out = self
            .ex
            .execute(
                &self.store,
                &env,
                vec![tongtian_types::CheckedTx::new(tx, SuiteId::Standard)],
                Mode::Verify,
            )
            .unwrap();
        let r = out.receipts[0].clone();
        let out = self.ex.finish_block(&self.store, &env, out).unwrap();
        self.commit(out.changes);
        let code = match r.status {
            TxStatus::Success => "success".to_string(),
            TxStatus::Failed { code, message } => {
                if std::env::var("TT_DEBUG").is_ok() {
                    eprintln!("{code}: {message}");
                }
                code
            }
        };
        (code, r.output)
    }

    /// An empty block.
    pub fn tick(&mut self) {
        self.height += 1;
        let env = BlockEnv {
            height: self.height,
            timestamp_ms: 1_000 * (self.height + 1),
            proposer: Address::ZERO,
        };
        let out = self
            .ex
            .execute(&self.store, &env, vec![], Mode::Verify)
            .unwrap();
        let out = self.ex.finish_block(&self.store, &env, out).unwrap();
        self.commit(out.changes);
    }

    pub fn q(&self, module: &str, path: &str) -> serde_json::Value {
        self.ex
            .query_module(&self.store, module, path, &BTreeMap::new())
            .unwrap()
            .unwrap()
    }

    pub fn balance(&self, a: &Address, denom: &str) -> u128 {
        self.q("transfer", &format!("balances/{a}"))
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["denom"] == denom)
            .map_or(0, |b| b["amount"].as_str().unwrap().parse().unwrap())
    }

    pub fn signed(&self, h: u64) -> SignedHeader {
        let header = self.store.header(h).unwrap().unwrap();
        SignedHeader {
            certificate: self.certify(&header),
            header,
        }
    }

    pub fn prove(&self, key: &[u8], h: u64) -> Proven {
        Proven {
            height: h,
            proof: tongtian_xchain::channel::PacketProof::State(self.store.prove(key, h).unwrap()),
        }
    }
}

/// A client `id` of EVM chain `chain_id` that `threshold` of `attesters`
/// attest.
pub fn attested_init(
    id: &str,
    chain_id: u64,
    attesters: &[tongtian_crypto::eth::EthKey],
    threshold: u32,
) -> tongtian_xchain::client::ClientInit {
    tongtian_xchain::client::ClientInit {
        id: id.into(),
        chain_id,
        suite: SuiteId::Standard,
        model: tongtian_xchain::client::TrustModel::Attested { threshold },
        height: 0,
        header_hash: H256::ZERO,
        state_root: None,
        timestamp_ms: 0,
        validators: ValidatorSet {
            version: 0,
            validators: attesters
                .iter()
                .enumerate()
                .map(|(i, k)| ValidatorSpec {
                    name: format!("org-{i}"),
                    public_key: k.address().to_vec(),
                })
                .collect(),
        },
        trusting_blocks: 1_000,
        trusting_ms: 10_000_000,
    }
}
