//! `solo`: one validator proposes and finalizes every block.
//!
//! A new block is proposed as soon as the previous one is committed and at
//! least one block interval has passed since the previous block's proposal
//! began. When there is nothing to propose the engine waits for the next
//! interval or for transactions to arrive, whichever comes first (never
//! sooner than one interval after the previous block began), so a
//! transaction sent to an idle chain is taken in at once, not up to an
//! interval later. Transactions that arrive while the engine waits are
//! executed into the next block as they come
//! ([`Application::work_ahead`]), so the wait is not lost to execution.
//! The certificate is the single validator's signature over the block
//! hash.

use crate::{Application, ConsensusEngine, ConsensusError};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tongtian_crypto::Keypair;
use tongtian_types::{BlockHeader, Certificate, CertificateSignature, ChainSpec};

/// The single-validator engine.
pub struct SoloEngine {
    key: Keypair,
    interval: Duration,
    suite: tongtian_crypto::SuiteId,
}

impl SoloEngine {
    /// Check that `key` is the spec's one validator.
    pub fn new(spec: &ChainSpec, key: Keypair) -> Result<Self, ConsensusError> {
        if spec.validators.len() != 1 {
            return Err(ConsensusError::Config(format!(
                "solo needs exactly one validator, the spec has {}",
                spec.validators.len()
            )));
        }
        if spec.validators[0].public_key != key.public_key() || key.suite() != spec.suite {
            return Err(ConsensusError::Config(
                "this node's key is not the chain's validator".into(),
            ));
        }
        Ok(SoloEngine {
            key,
            interval: Duration::from_millis(spec.consensus.block_interval_ms.max(1)),
            suite: spec.suite,
        })
    }
}

#[async_trait]
impl ConsensusEngine for SoloEngine {
    fn name(&self) -> &'static str {
        "solo"
    }

    async fn run(
        self: Box<Self>,
        app: Arc<dyn Application>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ConsensusError> {
        tracing::info!(
            interval_ms = self.interval.as_millis() as u64,
            "solo engine started"
        );
        // When the latest block's proposal began.
        let mut last_block: Option<Instant> = None;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let started = Instant::now();
            let (height, _) = app.last_committed();
            let block = app.propose(height + 1).await?;
            let mut idle = block.is_none();
            if let Some(block) = block {
                last_block = Some(started);
                let hash = block.header.hash(self.suite);
                let signature = self.key.sign(&BlockHeader::commit_bytes(&hash, 0));
                let cert = Certificate {
                    engine: "solo".into(),
                    block_hash: hash,
                    round: 0,
                    signatures: vec![CertificateSignature {
                        public_key: self.key.public_key().to_vec(),
                        signature,
                    }],
                };
                // This node proposes every block: build the next one while
                // this one is written.
                app.commit_and_prepare(block, cert).await?;
            }
            // Wait for the next proposal, working ahead on what arrives.
            let mut due = started + self.interval;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => break,
                    _ = app.transactions_arrived() => {}
                    _ = shutdown.changed() => break,
                }
                if idle {
                    // Something arrived at an idle chain: propose as soon
                    // as the spacing from the last block allows.
                    idle = false;
                    let now = Instant::now();
                    due = last_block.map_or(now, |last| (last + self.interval).max(now));
                    if due <= now {
                        break;
                    }
                }
                app.work_ahead(app.last_committed().0 + 1).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tongtian_crypto::{suite, SuiteId};
    use tongtian_types::{Address, Block, ConsensusSpec, GasSchedule, Limits, ValidatorSpec, H256};

    struct App {
        committed: Mutex<Vec<(Block, Certificate)>>,
    }

    /// A block at `height` with nothing in it.
    fn empty_block(height: u64) -> Block {
        Block {
            header: BlockHeader {
                chain_id: 1,
                height,
                timestamp_ms: 0,
                parent_hash: H256::ZERO,
                tx_root: H256::ZERO,
                receipts_root: H256::ZERO,
                state_root: H256::ZERO,
                tx_count: 0,
                proposer: Address::ZERO,
            },
            txs: vec![],
        }
    }

    #[async_trait]
    impl Application for App {
        fn last_committed(&self) -> (u64, H256) {
            (self.committed.lock().len() as u64, H256::ZERO)
        }
        async fn propose(&self, height: u64) -> Result<Option<Block>, ConsensusError> {
            if height > 3 {
                return Ok(None);
            }
            Ok(Some(empty_block(height)))
        }
        fn validators(&self) -> Vec<tongtian_types::ValidatorSpec> {
            vec![]
        }
        fn committed_block(&self, _: u64) -> Option<(Block, Certificate)> {
            None
        }
        async fn verify(&self, _: &Block) -> Result<(), ConsensusError> {
            Ok(())
        }
        async fn commit(
            &self,
            block: Block,
            certificate: Certificate,
        ) -> Result<(), ConsensusError> {
            self.committed.lock().push((block, certificate));
            Ok(())
        }
    }

    fn ctx(key: &Keypair) -> crate::EngineContext {
        crate::EngineContext {
            key: key.clone(),
            network: None,
            dir: std::env::temp_dir(),
            faults: Default::default(),
            transport_of: Default::default(),
        }
    }

    fn spec(key: &Keypair) -> ChainSpec {
        ChainSpec {
            name: "t".into(),
            chain_id: 1,
            suite: SuiteId::Standard,
            consensus: ConsensusSpec {
                engine: "solo".into(),
                block_interval_ms: 5,
                max_block_txs: 1,
                empty_block_interval_ms: 0,
            },
            validators: vec![ValidatorSpec {
                name: "v".into(),
                public_key: key.public_key().to_vec(),
            }],
            accounts: vec![],
            gas: GasSchedule::default(),
            limits: Limits::default(),
            genesis_time_ms: 0,
            vms: tongtian_types::VmKind::ALL.to_vec(),
            modules: Default::default(),
        }
    }

    #[tokio::test]
    async fn commits_signed_blocks_in_order_and_stops() {
        let key = Keypair::from_seed(SuiteId::Standard, b"v");
        let spec = spec(&key);
        let engine = crate::engine_for(&spec, ctx(&key)).unwrap();
        assert_eq!(engine.name(), "solo");
        let app = Arc::new(App {
            committed: Mutex::new(vec![]),
        });
        let (tx, rx) = watch::channel(false);
        let handle = tokio::spawn(engine.run(app.clone(), rx));
        until(|| app.committed.lock().len() >= 3).await;
        tx.send(true).unwrap();
        handle.await.unwrap().unwrap();
        let committed = app.committed.lock();
        assert_eq!(committed.len(), 3);
        let pks = vec![key.public_key().to_vec()];
        for (i, (b, c)) in committed.iter().enumerate() {
            assert_eq!(b.header.height, i as u64 + 1);
            let h = b.header.hash(SuiteId::Standard);
            assert!(c.verify(suite(SuiteId::Standard), &pks, crate::quorum(&spec), &h));
        }
    }

    /// An application whose pool is a counter: it proposes a block when
    /// something is pending, and records the engine's calls.
    #[derive(Default)]
    struct Pool {
        pending: AtomicUsize,
        heights: Mutex<Vec<u64>>,
        arrivals: tokio::sync::Notify,
        worked_ahead: Mutex<Vec<u64>>,
    }

    impl Pool {
        fn arrive(&self) {
            self.pending.fetch_add(1, Ordering::SeqCst);
            self.arrivals.notify_one();
        }
    }

    #[async_trait]
    impl Application for Pool {
        fn last_committed(&self) -> (u64, H256) {
            (self.heights.lock().len() as u64, H256::ZERO)
        }
        async fn propose(&self, height: u64) -> Result<Option<Block>, ConsensusError> {
            if self.pending.swap(0, Ordering::SeqCst) == 0 {
                return Ok(None);
            }
            Ok(Some(empty_block(height)))
        }
        fn validators(&self) -> Vec<tongtian_types::ValidatorSpec> {
            vec![]
        }
        fn committed_block(&self, _: u64) -> Option<(Block, Certificate)> {
            None
        }
        async fn verify(&self, _: &Block) -> Result<(), ConsensusError> {
            Ok(())
        }
        async fn commit(&self, block: Block, _: Certificate) -> Result<(), ConsensusError> {
            self.heights.lock().push(block.header.height);
            Ok(())
        }
        async fn transactions_arrived(&self) {
            self.arrivals.notified().await
        }
        async fn work_ahead(&self, height: u64) {
            self.worked_ahead.lock().push(height);
        }
    }

    async fn until(what: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while !what() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("in time");
    }

    #[tokio::test]
    async fn an_idle_chain_takes_arrivals_at_once_and_works_ahead_between_blocks() {
        let key = Keypair::from_seed(SuiteId::Standard, b"v");
        let mut spec = spec(&key);
        // Far longer than the test: every block below the first is due to
        // an arrival, not to the interval.
        spec.consensus.block_interval_ms = 600_000;
        let engine = crate::engine_for(&spec, ctx(&key)).unwrap();
        let app = Arc::new(Pool::default());
        let (tx, rx) = watch::channel(false);
        let handle = tokio::spawn(engine.run(app.clone(), rx));
        // Idle from the start: the first arrival is proposed at once.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(app.heights.lock().is_empty());
        app.arrive();
        until(|| app.heights.lock().len() == 1).await;
        // The next arrival comes within an interval of that block: it is
        // executed ahead, and waits for the interval to be proposed.
        app.arrive();
        until(|| app.worked_ahead.lock().len() == 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(*app.heights.lock(), vec![1]);
        assert_eq!(*app.worked_ahead.lock(), vec![2]);
        tx.send(true).unwrap();
        handle.await.unwrap().unwrap();
    }

    #[test]
    fn refuses_a_key_that_is_not_the_validator() {
        let key = Keypair::from_seed(SuiteId::Standard, b"v");
        let other = Keypair::from_seed(SuiteId::Standard, b"w");
        assert!(crate::engine_for(&spec(&key), ctx(&other)).is_err());
        let mut s = spec(&key);
        s.consensus.engine = "pbft-homemade".into();
        assert!(matches!(
            crate::engine_for(&s, ctx(&key)),
            Err(ConsensusError::UnknownEngine(_))
        ));
    }
}
