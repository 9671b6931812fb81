//! `solo`: one validator proposes and finalizes every block.
//!
//! A new block is proposed as soon as the previous one is committed and at
//! least one block interval has passed since the previous proposal began;
//! when there is nothing to propose the engine waits one interval. The
//! certificate is the single validator's signature over the block hash.

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
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let started = Instant::now();
            let (height, _) = app.last_committed();
            if let Some(block) = app.propose(height + 1).await? {
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
            tokio::select! {
                _ = tokio::time::sleep_until(started + self.interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use tongtian_crypto::{suite, SuiteId};
    use tongtian_types::{Address, Block, ConsensusSpec, GasSchedule, Limits, ValidatorSpec, H256};

    struct App {
        committed: Mutex<Vec<(Block, Certificate)>>,
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
            Ok(Some(Block {
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
            }))
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
        tokio::time::timeout(Duration::from_secs(5), async {
            while app.committed.lock().len() < 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
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
