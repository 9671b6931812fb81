//! A one-process chain for VM and contract tests: a real [`ChainStore`] in
//! a temporary directory, blocks executed and committed in order, without
//! consensus or networking. Enabled by the `testing` feature.

use crate::{BlockEnv, ExecutionError, Executor, Mode, Outcome, Simulation};
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_storage::{BlockCommit, ChainStore, StateStore};
use tongtian_types::{
    Action, Address, Block, BlockHeader, Certificate, ChainSpec, CheckedTx, ConsensusSpec,
    GasSchedule, GenesisAccount, Limits, Receipt, Transaction, ValidatorSpec, VmKind, H256,
};

/// Chain id of test chains.
pub const TEST_CHAIN_ID: u64 = 77;

/// A chain in a temporary directory.
pub struct TestChain {
    _dir: tempfile::TempDir,
    /// The store.
    pub store: ChainStore,
    /// The executor.
    pub executor: Executor,
    /// Funded native accounts.
    pub keys: Vec<Keypair>,
    /// The proposer, who receives fees.
    pub proposer: Address,
    height: u64,
    nonces: std::collections::HashMap<Address, u64>,
}

impl TestChain {
    /// A chain whose `accounts` (native keys, then extra addresses) hold
    /// 10^30 each; `vms` are enabled.
    pub fn new(extra: &[Address], vms: Vec<std::sync::Arc<dyn crate::Vm>>) -> Self {
        let keys: Vec<Keypair> = (0..4u8)
            .map(|i| Keypair::from_seed(SuiteId::Standard, &[i, 42]))
            .collect();
        let v = Keypair::from_seed(SuiteId::Standard, b"validator");
        let balance = 10u128.pow(30);
        let spec = ChainSpec {
            name: "test".into(),
            chain_id: TEST_CHAIN_ID,
            suite: SuiteId::Standard,
            consensus: ConsensusSpec {
                engine: "solo".into(),
                block_interval_ms: 10,
                max_block_txs: 10_000,
                empty_block_interval_ms: 0,
            },
            validators: vec![ValidatorSpec {
                name: "v".into(),
                public_key: v.public_key().to_vec(),
            }],
            accounts: keys
                .iter()
                .map(|k| Address::from_public_key(SuiteId::Standard, k.public_key()))
                .chain(extra.iter().copied())
                .map(|address| GenesisAccount { address, balance })
                .collect(),
            gas: GasSchedule::default(),
            limits: Limits::default(),
            genesis_time_ms: 0,
            vms: VmKind::ALL.to_vec(),
            modules: Default::default(),
        };
        let mut executor = Executor::new(spec.clone());
        for vm in vms {
            executor = executor.with_vm(vm);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ChainStore::open(&dir.path().join("chain.redb"), SuiteId::Standard)
            .expect("open store");
        let mut chain = TestChain {
            _dir: dir,
            store,
            executor,
            keys,
            proposer: Address::from_public_key(SuiteId::Standard, v.public_key()),
            height: 0,
            nonces: Default::default(),
        };
        let staged = chain
            .store
            .stage(chain.executor.genesis_changes().expect("genesis"))
            .expect("stage genesis");
        chain.commit(vec![], vec![], staged.root, staged);
        chain
    }

    fn commit(
        &mut self,
        txs: Vec<CheckedTx>,
        receipts: Vec<Receipt>,
        root: H256,
        staged: tongtian_storage::StagedState,
    ) {
        let header = BlockHeader {
            chain_id: TEST_CHAIN_ID,
            height: self.height,
            timestamp_ms: 1_700_000_000_000 + self.height * 1000,
            parent_hash: H256::ZERO,
            tx_root: H256::ZERO,
            receipts_root: H256::ZERO,
            state_root: root,
            tx_count: txs.len() as u32,
            proposer: self.proposer,
        };
        let hashes: Vec<H256> = txs.iter().map(|t| t.hash).collect();
        let block = Block {
            header,
            txs: txs.into_iter().map(|t| t.tx).collect(),
        };
        self.store
            .commit_block(BlockCommit {
                block: &block,
                tx_hashes: &hashes,
                receipts: &receipts,
                certificate: &Certificate::default(),
                state: &staged,
                filters: Default::default(),
                block_events: &[],
            })
            .expect("commit");
    }

    /// The next block's environment.
    pub fn env(&self) -> BlockEnv {
        BlockEnv {
            height: self.height + 1,
            timestamp_ms: 1_700_000_000_000 + (self.height + 1) * 1000,
            proposer: self.proposer,
        }
    }

    /// Execute and commit one block (verify mode: every transaction must
    /// be includable).
    pub fn block(&mut self, txs: Vec<CheckedTx>) -> Result<Outcome, ExecutionError> {
        let env = self.env();
        let out = self
            .executor
            .execute(&self.store, &env, txs, Mode::Verify)?;
        let staged = self.store.stage(out.changes.clone())?;
        self.height += 1;
        self.commit(
            out.included.clone(),
            out.receipts.clone(),
            staged.root,
            staged,
        );
        Ok(out)
    }

    /// Sign a native transaction from key `k` with the next nonce.
    pub fn tx(&mut self, k: usize, action: Action, gas_limit: u64) -> CheckedTx {
        let key = &self.keys[k];
        let sender = Address::from_public_key(SuiteId::Standard, key.public_key());
        let nonce = self.nonces.entry(sender).or_insert(0);
        let tx = Transaction {
            chain_id: TEST_CHAIN_ID,
            nonce: *nonce,
            gas_limit,
            gas_price: 1,
            action,
        }
        .sign(key);
        *nonce += 1;
        CheckedTx::new(tx, SuiteId::Standard)
    }

    /// Run one transaction in its own block and return its receipt.
    pub fn run(&mut self, k: usize, action: Action, gas_limit: u64) -> Receipt {
        let t = self.tx(k, action, gas_limit);
        let mut out = self.block(vec![t]).expect("block executes");
        out.receipts.remove(0)
    }

    /// Address of native key `k`.
    pub fn address(&self, k: usize) -> Address {
        Address::from_public_key(SuiteId::Standard, self.keys[k].public_key())
    }

    /// A read-only call against the latest state.
    pub fn query(&self, from: Address, to: Address, input: Vec<u8>) -> Simulation {
        self.executor
            .simulate(
                &self.store,
                &self.env(),
                crate::CallRequest {
                    from,
                    to: Some(to),
                    vm: VmKind::Evm,
                    input,
                    value: 0,
                    gas_limit: 50_000_000,
                    access_list: Vec::new(),
                },
            )
            .expect("simulate")
    }

    /// An account's committed record.
    pub fn account(&self, a: &Address) -> tongtian_types::Account {
        self.store
            .get(&crate::account_key(a))
            .expect("read")
            .and_then(|b| crate::decode_account(&b))
            .unwrap_or_default()
    }
}
