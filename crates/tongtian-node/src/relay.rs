//! A node relaying for the chains it hosts: the main chain and each
//! sub-chain linked to it at birth, through the chains' runtimes in this
//! process, signing with the node's validator key of each chain (relaying
//! is free for validators). `tongtian dev` relays; `node start --relay`
//! turns it on for a network node.

use crate::host::Node;
use crate::{ChainRuntime, NodeError};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tongtian_crypto::Keypair;
use tongtian_storage::StateStore;
use tongtian_types::proof::StateProof;
use tongtian_types::{Action, Address, Transaction};
use tongtian_xchain::client::SignedHeader;
use tongtian_xchain::relay::{self, Endpoint, RelayError};

/// A chain hosted here, as the relayer sees it.
pub struct LocalEndpoint {
    chain: Arc<ChainRuntime>,
    key: Keypair,
}

impl LocalEndpoint {
    /// `chain`, written to with `key`.
    pub fn new(chain: Arc<ChainRuntime>, key: Keypair) -> Self {
        LocalEndpoint { chain, key }
    }

    fn err(&self, e: impl std::fmt::Display) -> RelayError {
        RelayError::Chain {
            chain: self.chain.spec().name.clone(),
            message: e.to_string(),
        }
    }
}

/// How long [`LocalEndpoint::submit`] waits for its transactions' receipts.
const INCLUSION_WAIT: Duration = Duration::from_secs(30);

#[async_trait]
impl Endpoint for LocalEndpoint {
    fn name(&self) -> String {
        self.chain.spec().name.clone()
    }

    async fn query(&self, module: &str, path: &str) -> Result<serde_json::Value, RelayError> {
        match self
            .chain
            .query_module(module, path, &BTreeMap::new(), None)
            .map_err(|e| self.err(e))?
        {
            Ok(v) => Ok(v),
            Err(e) => Err(self.err(format!("{module}/{path}: {}: {}", e.code, e.message))),
        }
    }

    async fn latest(&self) -> Result<u64, RelayError> {
        Ok(self.chain.latest_certified())
    }

    async fn signed_header(&self, height: u64) -> Result<SignedHeader, RelayError> {
        let store = self.chain.store();
        let header = store
            .header(height)
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.err(format!("no block at {height}")))?;
        let certificate = store
            .certificate(height)
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.err(format!("no certificate at {height}")))?;
        Ok(SignedHeader {
            header,
            certificate,
        })
    }

    async fn prove(&self, key: &[u8], height: u64) -> Result<StateProof, RelayError> {
        self.chain
            .store()
            .prove(key, height)
            .map_err(|e| self.err(e))
    }

    async fn submit(&self, actions: Vec<Action>) -> Result<(), RelayError> {
        let suite = self.chain.spec().suite;
        let me = Address::from_public_key(suite, self.key.public_key());
        let committed = self.chain.account(&me).map_err(|e| self.err(e))?.nonce;
        let mut nonce = self
            .chain
            .mempool()
            .next_nonce(&me)
            .unwrap_or(committed)
            .max(committed);
        let raws: Vec<Vec<u8>> = actions
            .into_iter()
            .map(|action| {
                let tx = Transaction {
                    chain_id: self.chain.spec().chain_id,
                    nonce,
                    gas_limit: 10_000_000,
                    gas_price: self.chain.spec().gas.min_gas_price,
                    action,
                }
                .sign(&self.key);
                nonce += 1;
                tongtian_types::codec::encode(&tx)
            })
            .collect();
        let chain = self.chain.clone();
        let results = tokio::task::spawn_blocking(move || {
            let refs: Vec<&[u8]> = raws.iter().map(|r| r.as_slice()).collect();
            chain.submit_batch(&refs)
        })
        .await
        .map_err(|e| self.err(e))?;
        let mut hashes = Vec::new();
        for r in results {
            hashes.push(r.map_err(|e| self.err(format!("refused: {e}")))?);
        }
        // Wait for them, so the next step reads what they did.
        let deadline = Instant::now() + INCLUSION_WAIT;
        for h in hashes {
            loop {
                match self.chain.store().receipt(&h).map_err(|e| self.err(e))? {
                    Some(r) => {
                        if let tongtian_types::TxStatus::Failed { code, message } = r.status {
                            tracing::debug!(chain = %self.name(), %code, %message, "relay transaction failed");
                        }
                        break;
                    }
                    None if Instant::now() > deadline => {
                        return Err(self.err(format!("{h} not included in {INCLUSION_WAIT:?}")))
                    }
                    None => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }
        Ok(())
    }
}

/// How often the node looks for packets to relay.
const RELAY_INTERVAL: Duration = Duration::from_millis(200);

impl Node {
    /// Relay between the main chain and every hosted sub-chain linked to
    /// it, until the task is aborted.
    pub async fn relay_forever(self: Arc<Self>) {
        let mut last_error: BTreeMap<String, String> = BTreeMap::new();
        // Wake on each main-chain block (a packet sent, an ack due), or
        // after the interval at the latest (sub-chain blocks).
        let mut blocks = self.main().subscribe();
        loop {
            if let Err(e) = self.relay_once(&mut last_error).await {
                tracing::debug!(error = %e, "relay round failed");
            }
            tokio::select! {
                _ = blocks.recv() => {}
                _ = tokio::time::sleep(RELAY_INTERVAL) => {}
            }
        }
    }

    /// The chain `name` (`main` for the main chain) if it runs here, with
    /// this node's key for its suite.
    async fn endpoint(&self, name: &str) -> Option<LocalEndpoint> {
        let chain = if name == "main" {
            self.main().clone()
        } else {
            self.hosted(name).await?
        };
        let key = self.validator_key(chain.spec().suite)?;
        Some(LocalEndpoint::new(chain, key))
    }

    async fn relay_once(&self, last_error: &mut BTreeMap<String, String>) -> Result<(), NodeError> {
        for pair in self.relay_pairs()? {
            let (Some(a), Some(b)) = (self.endpoint(&pair.a).await, self.endpoint(&pair.b).await)
            else {
                continue;
            };
            let name = pair.name();
            match relay::step_all(&a, &b, &pair.paths).await {
                Ok(r) => {
                    last_error.remove(&name);
                    if r.received + r.acknowledged + r.timed_out > 0 {
                        tracing::debug!(chain = %name, received = r.received, acknowledged = r.acknowledged, timed_out = r.timed_out, updates = r.updates, "relayed");
                    }
                }
                Err(err) => {
                    let text = err.to_string();
                    if last_error.get(&name) != Some(&text) {
                        tracing::warn!(chain = %name, error = %text, "relaying stalled; retrying");
                        last_error.insert(name, text);
                    }
                }
            }
        }
        Ok(())
    }
}
