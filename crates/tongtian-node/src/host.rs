//! A node that hosts many chains: the main chain and the sub-chains its
//! registry names this node for.
//!
//! A [`Node`] owns the node's transport identity and network, its
//! validator keys (one per crypto suite, apart from the transport key), the
//! main chain and a set of sub-chain handles. [`Node::follow_registry`]
//! watches the main chain: after every block it reads the `registry`
//! module, starts each active sub-chain whose members include this node
//! (its directory `chains/{name}` under the node's home, its genesis spec
//! derived from the entry, its network view scoped to its member nodes)
//! and stops each one the registry marks stopped (keeping its data).
//! A [`ChainObserver`] (the API's chain directory) hears of every start
//! and stop.

use crate::{ChainRuntime, NodeError, RunningChain};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_modules::registry::{spec_of, ChainEntry, ChainStatus};
use tongtian_network::{Network, PeerId};

/// Told when the node starts or stops a chain.
pub trait ChainObserver: Send + Sync {
    /// `chain` runs now.
    fn started(&self, chain: Arc<ChainRuntime>);
    /// The chain called `name` stopped.
    fn stopped(&self, name: &str);
}

/// The keys a node validates with, one per suite.
#[derive(Clone, Debug, Default)]
pub struct ValidatorKeys {
    keys: BTreeMap<String, Keypair>,
}

impl ValidatorKeys {
    /// Add (or replace) the key of its suite.
    pub fn insert(&mut self, key: Keypair) {
        self.keys.insert(key.suite().to_string(), key);
    }

    /// The key for `suite`.
    pub fn get(&self, suite: SuiteId) -> Option<&Keypair> {
        self.keys.get(&suite.to_string())
    }
}

struct Hosted {
    runtime: Arc<ChainRuntime>,
    running: Option<RunningChain>,
}

/// A node and the chains it hosts.
pub struct Node {
    home: PathBuf,
    transport_key: Vec<u8>,
    network: Option<Network>,
    keys: ValidatorKeys,
    main: Arc<ChainRuntime>,
    subs: tokio::sync::Mutex<BTreeMap<String, Hosted>>,
    observer: Mutex<Option<Arc<dyn ChainObserver>>>,
    /// Sub-chains that failed to start, and why (reported once, retried
    /// quietly after every main-chain block).
    failed: Mutex<BTreeMap<String, String>>,
    /// Directive attestations sent and when, by (chain, number): not sent
    /// again while they may still be on their way.
    attested: Mutex<BTreeMap<(String, u64), std::time::Instant>>,
}

/// A launched node: its main chain's engine and its registry follower
/// running. [`Launched::shutdown`] stops them in order.
pub struct Launched {
    /// The node.
    pub node: Arc<Node>,
    running: RunningChain,
    follower: tokio::task::JoinHandle<()>,
    relayer: Option<tokio::task::JoinHandle<()>>,
}

/// What [`Node::launch`] needs.
pub struct LaunchConfig {
    /// Where sub-chains live (`chains/{name}` below it).
    pub home: PathBuf,
    /// The main chain, opened.
    pub main: Arc<ChainRuntime>,
    /// The transport (none for a single dev node).
    pub network: Option<Network>,
    /// The node's transport public key.
    pub transport_key: Vec<u8>,
    /// Its validator keys, one per suite.
    pub keys: ValidatorKeys,
    /// Simulated misbehaviour of the main chain's engine (tests only).
    pub faults: tongtian_consensus::Faults,
    /// Told of every sub-chain started and stopped (the API).
    pub observer: Option<Arc<dyn ChainObserver>>,
    /// Relay packets between the main chain and the sub-chains hosted
    /// here ([`crate::relay`]).
    pub relay: bool,
}

impl Launched {
    /// Stop the registry follower, every sub-chain, then the main chain's
    /// engine after its block in progress.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        self.follower.abort();
        if let Some(r) = &self.relayer {
            r.abort();
        }
        self.node.stop_all().await;
        self.running.stop(STOP_TIMEOUT).await
    }
}

/// Validator key to transport identity for every registered node whose
/// keys differ (empty when the chain keeps no organisations).
fn validator_transports(
    main: &ChainRuntime,
) -> Result<std::collections::HashMap<Vec<u8>, PeerId>, NodeError> {
    let v = match main.query_module("org", "orgs", &BTreeMap::new(), None)? {
        Ok(v) => v,
        Err(_) => return Ok(Default::default()),
    };
    let orgs: Vec<tongtian_modules::org::Organisation> =
        serde_json::from_value(v).map_err(|e| NodeError::Config(format!("org answer: {e}")))?;
    Ok(orgs
        .into_iter()
        .flat_map(|o| o.nodes)
        .flat_map(|n| {
            let t = n.transport_key.clone();
            n.validator_keys
                .into_iter()
                .filter(move |k| k.public_key != t)
                .map(move |k| (k.public_key, PeerId(n.transport_key.clone())))
        })
        .collect())
}

/// How long a stopping chain's engine may take to finish its block.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Node {
    /// A node whose main chain is `main` (already started by the caller),
    /// its sub-chains under `home/chains/`, talking over `network` (none
    /// for a single-node dev chain) as `transport_key`.
    pub fn new(
        home: &Path,
        main: Arc<ChainRuntime>,
        network: Option<Network>,
        transport_key: Vec<u8>,
        keys: ValidatorKeys,
    ) -> Arc<Node> {
        Arc::new(Node {
            home: home.to_path_buf(),
            transport_key,
            network,
            keys,
            main,
            subs: tokio::sync::Mutex::new(BTreeMap::new()),
            observer: Mutex::new(None),
            failed: Mutex::new(BTreeMap::new()),
            attested: Mutex::new(BTreeMap::new()),
        })
    }

    /// The launch sequence: start the main chain's engine, then the
    /// registry follower (which starts the sub-chains the registry names
    /// this node for, telling `observer`).
    pub fn launch(cfg: LaunchConfig) -> Result<Launched, NodeError> {
        // The main chain's validators are reached by their nodes' transport
        // identities, as the organisations registered them.
        cfg.main.set_transport_of(validator_transports(&cfg.main)?);
        let running = cfg
            .main
            .start_with_faults(cfg.network.clone(), cfg.faults)?;
        let node = Node::new(
            &cfg.home,
            cfg.main,
            cfg.network,
            cfg.transport_key,
            cfg.keys,
        );
        if let Some(o) = cfg.observer {
            node.set_observer(o);
        }
        let follower = tokio::spawn(node.clone().follow_registry());
        let relayer = cfg
            .relay
            .then(|| tokio::spawn(node.clone().relay_forever()));
        Ok(Launched {
            node,
            running,
            follower,
            relayer,
        })
    }

    /// Who hears of started and stopped chains.
    pub fn set_observer(&self, o: Arc<dyn ChainObserver>) {
        *self.observer.lock() = Some(o);
    }

    /// The main chain.
    pub fn main(&self) -> &Arc<ChainRuntime> {
        &self.main
    }

    /// This node's validator key for chains of `suite`.
    pub fn validator_key(&self, suite: SuiteId) -> Option<Keypair> {
        self.keys.get(suite).cloned()
    }

    /// The sub-chain `name`, if it runs here.
    pub async fn hosted(&self, name: &str) -> Option<Arc<ChainRuntime>> {
        self.subs
            .lock()
            .await
            .get(name)
            .filter(|h| h.running.is_some())
            .map(|h| h.runtime.clone())
    }

    /// The sub-chains running now.
    pub async fn sub_chains(&self) -> Vec<Arc<ChainRuntime>> {
        self.subs
            .lock()
            .await
            .values()
            .filter(|h| h.running.is_some())
            .map(|h| h.runtime.clone())
            .collect()
    }

    /// The registry's entries (empty when the main chain keeps none).
    pub fn registry(&self) -> Result<Vec<ChainEntry>, NodeError> {
        match self
            .main
            .query_module("registry", "chains", &BTreeMap::new(), None)?
        {
            Ok(v) => serde_json::from_value(v)
                .map_err(|e| NodeError::Config(format!("registry answer: {e}"))),
            Err(_) => Ok(Vec::new()),
        }
    }

    /// The chain pairs a relayer serves (see
    /// [`tongtian_modules::registry::relay_pairs`]).
    pub fn relay_pairs(&self) -> Result<Vec<tongtian_modules::registry::RelayPair>, NodeError> {
        let entries = self.registry()?;
        let links = match self
            .main
            .query_module("registry", "links", &BTreeMap::new(), None)?
        {
            Ok(v) => serde_json::from_value(v)
                .map_err(|e| NodeError::Config(format!("registry links: {e}")))?,
            Err(_) => Vec::new(),
        };
        Ok(tongtian_modules::registry::relay_pairs(&entries, &links))
    }

    /// Admin accounts of the organisations `orgs` (for a restricted
    /// chain's access list).
    fn admins(&self, orgs: &[String]) -> Result<Vec<tongtian_types::Address>, NodeError> {
        let v = match self
            .main
            .query_module("org", "orgs", &BTreeMap::new(), None)?
        {
            Ok(v) => v,
            Err(_) => return Ok(Vec::new()),
        };
        let all: Vec<tongtian_modules::org::Organisation> =
            serde_json::from_value(v).map_err(|e| NodeError::Config(format!("org answer: {e}")))?;
        Ok(all
            .into_iter()
            .filter(|o| orgs.contains(&o.id))
            .map(|o| o.admin)
            .collect())
    }

    /// Whether this node takes part in `entry`.
    fn is_member(&self, entry: &ChainEntry) -> bool {
        entry
            .members
            .iter()
            .any(|m| m.transport_key == self.transport_key)
    }

    /// The transport keys of every node of every current organisation
    /// (`None` when the main chain keeps no organisations).
    fn org_nodes(&self) -> Result<Option<std::collections::HashSet<Vec<u8>>>, NodeError> {
        let v = match self
            .main
            .query_module("org", "orgs", &BTreeMap::new(), None)?
        {
            Ok(v) => v,
            Err(_) => return Ok(None),
        };
        let all: Vec<tongtian_modules::org::Organisation> =
            serde_json::from_value(v).map_err(|e| NodeError::Config(format!("org answer: {e}")))?;
        Ok(Some(
            all.into_iter()
                .flat_map(|o| o.nodes.into_iter().map(|n| n.transport_key))
                .collect(),
        ))
    }

    /// Bring the network's admissions and the running sub-chains in line
    /// with the main chain: only nodes of current organisations stay
    /// connected; registry entries naming this node run, stopped ones stop.
    pub async fn reconcile(&self) -> Result<(), NodeError> {
        if let (Some(net), Some(keys)) = (&self.network, self.org_nodes()?) {
            net.admit_only(&keys);
            // Validators a vote named since launch are reached the same way.
            self.main
                .set_transport_of(validator_transports(&self.main)?);
        }
        let entries = self.registry()?;
        for e in entries {
            let running = self
                .subs
                .lock()
                .await
                .get(&e.name)
                .is_some_and(|h| h.running.is_some());
            match e.status {
                ChainStatus::Active if self.is_member(&e) && !running => {
                    match self.start_chain(&e).await {
                        Ok(_) => {
                            self.failed.lock().remove(&e.name);
                        }
                        Err(err) => {
                            let why = err.to_string();
                            let before = self.failed.lock().insert(e.name.clone(), why.clone());
                            if before.as_deref() != Some(why.as_str()) {
                                tracing::error!(chain = %e.name, error = %why, "cannot start sub-chain; retrying after each main-chain block");
                            } else {
                                tracing::debug!(chain = %e.name, error = %why, "sub-chain still cannot start");
                            }
                        }
                    }
                }
                ChainStatus::Active if running => {
                    if let Err(err) = self.relay_directive(&e).await {
                        tracing::warn!(chain = %e.name, error = %err, "cannot attest the chain's directive");
                    }
                }
                ChainStatus::Stopped if running => {
                    if let Err(err) = self.stop_chain(&e.name).await {
                        tracing::error!(chain = %e.name, error = %err, "sub-chain did not stop cleanly");
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Carry the next directive the main chain decided for `entry`'s chain
    /// over to it: when this node validates it and has not attested that
    /// directive yet, submit the attestation signed by its validator key
    /// (see [`tongtian_modules::directive`]).
    async fn relay_directive(&self, entry: &ChainEntry) -> Result<(), NodeError> {
        use tongtian_modules::directive::{self, DirectiveMsg};
        if entry.directives.is_empty() {
            return Ok(());
        }
        let Some(rt) = self
            .subs
            .lock()
            .await
            .get(&entry.name)
            .map(|h| h.runtime.clone())
        else {
            return Ok(());
        };
        let Some(key) = self.keys.get(entry.suite).cloned() else {
            return Ok(());
        };
        let none = BTreeMap::new();
        let Ok(next) = rt.query_module(directive::ID, "next", &none, None)? else {
            return Ok(());
        };
        let seq = next.as_u64().unwrap_or(1);
        let Some(d) = entry.directives.get(seq as usize - 1) else {
            return Ok(());
        };
        if !rt
            .validator_set()
            .validators
            .iter()
            .any(|v| v.public_key == key.public_key())
        {
            return Ok(());
        }
        let me = tongtian_types::Address::from_public_key(entry.suite, key.public_key());
        let done = rt.query_module(directive::ID, &format!("attested/{seq}/{me}"), &none, None)?;
        if done.is_ok_and(|v| v == serde_json::Value::Bool(true)) {
            return Ok(());
        }
        {
            let mut sent = self.attested.lock();
            let k = (entry.name.clone(), seq);
            if sent
                .get(&k)
                .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
            {
                return Ok(());
            }
            sent.retain(|(c, n), _| c != &entry.name || *n >= seq);
            sent.insert(k, std::time::Instant::now());
        }
        let tx = tongtian_types::Transaction {
            chain_id: entry.chain_id,
            nonce: rt.account(&me)?.nonce,
            gas_limit: 1_000_000,
            gas_price: rt.spec().gas.min_gas_price,
            action: DirectiveMsg::Attest {
                seq,
                directive: d.clone(),
            }
            .action(),
        }
        .sign(&key);
        let raw = tongtian_types::codec::encode(&tx);
        let result = tokio::task::spawn_blocking(move || rt.submit_batch(&[&raw]).remove(0))
            .await
            .map_err(|e| NodeError::Config(format!("attestation task: {e}")))?;
        match result {
            Ok(hash) => {
                tracing::info!(chain = %entry.name, seq, directive = directive::directive_name(d), tx = %hash, "attested directive");
                Ok(())
            }
            Err(e) => Err(NodeError::Config(format!("attestation refused: {e}"))),
        }
    }

    /// Start the sub-chain of `entry` on this node.
    pub async fn start_chain(&self, entry: &ChainEntry) -> Result<Arc<ChainRuntime>, NodeError> {
        let spec = spec_of(entry, &self.admins(&entry.orgs)?);
        let key = self.keys.get(entry.suite).cloned().ok_or_else(|| {
            NodeError::Config(format!(
                "this node has no {} validator key for chain {}",
                entry.suite, entry.name
            ))
        })?;
        let dir = self.home.join("chains").join(&entry.name);
        // A stopped chain's runtime may still be held by a reader that is
        // finishing; its store closes when the last handle goes.
        let runtime = {
            let mut tries = 0;
            loop {
                match ChainRuntime::open(&dir, spec.clone(), key.clone()) {
                    Ok(r) => break r,
                    Err(e) if tries < 20 => {
                        tries += 1;
                        tracing::debug!(chain = %entry.name, error = %e, "store busy; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let view = self.network.as_ref().map(|n| {
            n.join(
                entry.chain_id,
                entry
                    .members
                    .iter()
                    .map(|m| PeerId(m.transport_key.clone())),
            )
        });
        // Genesis validators as the entry names them, and every registered
        // node's keys (validators a later vote names).
        let mut transports = validator_transports(&self.main)?;
        transports.extend(
            entry
                .validators
                .iter()
                .map(|v| (v.public_key.clone(), PeerId(v.transport_key.clone()))),
        );
        runtime.set_transport_of(transports);
        let running = runtime.start(view)?;
        tracing::info!(chain = %entry.name, chain_id = entry.chain_id, engine = %entry.engine, suite = %entry.suite, "sub-chain started");
        self.subs.lock().await.insert(
            entry.name.clone(),
            Hosted {
                runtime: runtime.clone(),
                running: Some(running),
            },
        );
        let observer = self.observer.lock().clone();
        if let Some(o) = observer {
            o.started(runtime.clone());
        }
        Ok(runtime)
    }

    /// Stop the sub-chain called `name`: its engine finishes the block in
    /// progress, every task it started ends, and its store closes once the
    /// API lets go of it. Its data stays.
    pub async fn stop_chain(&self, name: &str) -> Result<(), NodeError> {
        let hosted = self.subs.lock().await.remove(name);
        let Some(mut h) = hosted else {
            return Ok(());
        };
        let observer = self.observer.lock().clone();
        if let Some(o) = observer {
            o.stopped(name);
        }
        let result = match h.running.take() {
            Some(r) => r.stop(STOP_TIMEOUT).await,
            None => Ok(()),
        };
        tracing::info!(chain = %name, "sub-chain stopped");
        result
    }

    /// Stop every sub-chain (the main chain is the caller's).
    pub async fn stop_all(&self) {
        let names: Vec<String> = self.subs.lock().await.keys().cloned().collect();
        for n in names {
            if let Err(e) = self.stop_chain(&n).await {
                tracing::error!(chain = %n, error = %e, "sub-chain did not stop cleanly");
            }
        }
    }

    /// Follow the main chain's registry until the main chain's block
    /// stream ends: reconcile now and after every block.
    pub async fn follow_registry(self: Arc<Self>) {
        let mut blocks = self.main.subscribe();
        if let Err(e) = self.reconcile().await {
            tracing::error!(error = %e, "cannot read the registry");
        }
        loop {
            match blocks.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
            if let Err(e) = self.reconcile().await {
                tracing::error!(error = %e, "cannot read the registry");
            }
        }
    }
}
