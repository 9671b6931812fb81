//! A chain network in one process, for tests.
//!
//! [`TestNet::start`] makes `n` nodes, one organisation each (`org-i`
//! owns node i, equal weights), a main chain of the given engine whose
//! genesis is built with [`tongtian_types::SpecBuilder`] and the modules'
//! sections, and launches every node with [`tongtian_node::host::Node::launch`]
//! over the real transport on loopback ports: the same code path as
//! `tongtian node start`, minus the process boundary and the HTTP API, so
//! multi-chain scenarios (sub-chains by vote, members only, stop, restart)
//! run in seconds. Real processes stay in the CLI's tests for the product
//! path.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_modules::gov::GovMsg;
use tongtian_network::{Network, NetworkConfig, PeerSpec};
use tongtian_node::host::{LaunchConfig, Launched, Node, ValidatorKeys};
use tongtian_node::ChainRuntime;
use tongtian_types::codec::encode;
use tongtian_types::{Action, Address, ChainSpec, Receipt, SpecBuilder, Transaction, H256};

/// How the test nodes talk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// Channels in memory.
    Memory,
    /// The Noise transport over TCP on 127.0.0.1.
    Loopback,
}

/// Chain id of the test main chain.
pub const MAIN_CHAIN_ID: u64 = 7_000;

/// A node of the test network.
pub struct TestNode {
    /// Its main-chain validator key.
    pub key: Keypair,
    /// Its transport identity (a key of its own).
    pub transport: Keypair,
    /// Its validator key of the other suite.
    pub other: Keypair,
    /// Its organisation's admin key.
    pub admin: Keypair,
    /// Its home directory.
    pub home: PathBuf,
    /// Its transport.
    pub network: Network,
    launched: Option<Launched>,
}

impl TestNode {
    /// The running node (panics if it is stopped).
    pub fn node(&self) -> &Arc<Node> {
        &self.launched.as_ref().expect("node is running").node
    }
}

/// `n` nodes of one chain network.
pub struct TestNet {
    _dir: tempfile::TempDir,
    /// The main chain's spec.
    pub spec: ChainSpec,
    /// The nodes.
    pub nodes: Vec<TestNode>,
    peers: Vec<PeerSpec>,
    /// Prefunded accounts (of the main chain's suite) for tests to spend.
    pub funded: Vec<Keypair>,
    /// Whether the nodes relay between the chains they host (set before
    /// the nodes are (re)launched, e.g. with [`TestNet::restart`]).
    pub relay: bool,
}

fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("its address")
}

fn address(k: &Keypair) -> Address {
    Address::from_public_key(k.suite(), k.public_key())
}

/// Balance of each prefunded account.
pub const BALANCE: u128 = 1_000_000_000_000_000_000;

impl TestNet {
    /// Start `n` nodes of a main chain run by `engine` under `suite`,
    /// talking in memory.
    pub async fn start(n: usize, engine: &str, suite: SuiteId) -> TestNet {
        Self::start_with(n, engine, suite, Wire::Memory).await
    }

    /// [`TestNet::start`] over the given wire.
    pub async fn start_with(n: usize, engine: &str, suite: SuiteId, wire: Wire) -> TestNet {
        Self::start_opts(n, engine, suite, wire, false).await
    }

    /// [`TestNet::start_with`], every node relaying between the chains it
    /// hosts when `relay` is set.
    pub async fn start_opts(
        n: usize,
        engine: &str,
        suite: SuiteId,
        wire: Wire,
        relay: bool,
    ) -> TestNet {
        let hub = tongtian_network::MemoryHub::new();
        let dir = tempfile::tempdir().expect("a temp dir");
        let keys: Vec<Keypair> = (0..n).map(|_| Keypair::generate(suite)).collect();
        let other_suite = tongtian_node::dev::other_suite(suite);
        let others: Vec<Keypair> = (0..n).map(|_| Keypair::generate(other_suite)).collect();
        let admins: Vec<Keypair> = (0..n).map(|_| Keypair::generate(suite)).collect();
        let transports: Vec<Keypair> = (0..n)
            .map(|_| Keypair::generate(SuiteId::Standard))
            .collect();
        let funded: Vec<Keypair> = (0..4).map(|_| Keypair::generate(suite)).collect();
        let mut b = SpecBuilder::new("main", MAIN_CHAIN_ID)
            .suite(suite)
            .engine(engine)
            .intervals(100, 1_000);
        for (i, k) in keys.iter().enumerate() {
            b = b.validator(&format!("node-{i}"), k.public_key());
        }
        for k in &funded {
            b = b.fund(address(k), BALANCE);
        }
        let mut spec = b.build().expect("a valid main chain spec");
        let orgs = (0..n)
            .map(|i| {
                tongtian_node::dev::organisation(
                    &format!("org-{i}"),
                    address(&admins[i]),
                    &format!("node-{i}"),
                    &transports[i],
                    &[&keys[i], &others[i]],
                )
            })
            .collect();
        tongtian_node::dev::with_founding_orgs(&mut spec, orgs, 50);
        let peers: Vec<PeerSpec> = transports
            .iter()
            .map(|k| PeerSpec {
                public_key: k.public_key().to_vec(),
                addr: free_addr(),
            })
            .collect();
        let mut net = TestNet {
            relay,
            _dir: dir,
            spec,
            nodes: Vec::new(),
            peers,
            funded,
        };
        for i in 0..n {
            let home = net._dir.path().join(format!("node-{i}"));
            let config = NetworkConfig {
                identity: transports[i].clone(),
                listen: net.peers[i].addr,
                peers: net.peers.clone(),
                max_frame: 8 << 20,
            };
            let network = match wire {
                Wire::Memory => Network::start_in_memory(config, &hub),
                Wire::Loopback => Network::start(config).await.expect("the transport starts"),
            };
            net.nodes.push(TestNode {
                key: keys[i].clone(),
                transport: transports[i].clone(),
                other: others[i].clone(),
                admin: admins[i].clone(),
                home,
                network,
                launched: None,
            });
            net.launch(i).await;
        }
        net
    }

    async fn launch(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        // After a restart, the last handles of the old runtime (tasks that
        // are still finishing) may hold its store for a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        let main = loop {
            match ChainRuntime::open(&n.home.join("main"), self.spec.clone(), n.key.clone()) {
                Ok(m) => break m,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the main chain does not open: {e}"),
            }
        };
        let mut keys = ValidatorKeys::default();
        keys.insert(n.key.clone());
        keys.insert(n.other.clone());
        let launched = Node::launch(LaunchConfig {
            home: n.home.clone(),
            main,
            network: Some(n.network.clone()),
            transport_key: n.transport.public_key().to_vec(),
            keys,
            faults: Default::default(),
            observer: None,
            relay: self.relay,
        })
        .expect("the node launches");
        n.launched = Some(launched);
    }

    /// Shut node `i` down (its chains stop, its stores close) and launch it
    /// again on the same data.
    pub async fn restart(&mut self, i: usize) {
        if let Some(l) = self.nodes[i].launched.take() {
            l.shutdown().await.expect("a clean stop");
        }
        self.launch(i).await;
    }

    /// Chain `name` on node `i`, if it runs it.
    pub async fn chain(&self, i: usize, name: &str) -> Option<Arc<ChainRuntime>> {
        let node = self.nodes[i].node();
        if node.main().spec().name == name {
            return Some(node.main().clone());
        }
        node.sub_chains()
            .await
            .into_iter()
            .find(|c| c.spec().name == name)
    }

    /// Wait until node `i` runs `name` at height `h` or more.
    pub async fn wait_height(&self, i: usize, name: &str, h: u64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(c) = self.chain(i, name).await {
                if c.latest().0 >= h {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {i}: {name} did not reach height {h}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until node `i` does not run `name`.
    pub async fn wait_stopped(&self, i: usize, name: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while self.chain(i, name).await.is_some() {
            assert!(Instant::now() < deadline, "node {i} still runs {name}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sign `action` with `key` for `chain` (its next nonce counting
    /// pending transactions), submit it on node `i` and wait for its receipt.
    pub async fn send(&self, i: usize, chain: &str, key: &Keypair, action: Action) -> Receipt {
        let c = self
            .chain(i, chain)
            .await
            .unwrap_or_else(|| panic!("node {i} runs no {chain}"));
        let from = address(key);
        let committed = c.account(&from).expect("account").nonce;
        let nonce = c
            .mempool()
            .next_nonce(&from)
            .unwrap_or(committed)
            .max(committed);
        let tx = Transaction {
            chain_id: c.spec().chain_id,
            nonce,
            gas_limit: 1_000_000,
            gas_price: 1,
            action,
        }
        .sign(key);
        let raw = encode(&tx);
        let hash: H256 = c
            .submit_batch(&[&raw])
            .remove(0)
            .unwrap_or_else(|e| panic!("refused: {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(r) = c.store().receipt(&hash).expect("store") {
                return r;
            }
            assert!(Instant::now() < deadline, "no receipt for {hash}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A governance message from organisation `org`'s admin, sent to its node.
    pub async fn gov(&self, org: usize, msg: GovMsg) -> Receipt {
        let admin = self.nodes[org].admin.clone();
        self.send(org, "main", &admin, msg.action()).await
    }

    /// Frames each node received about `chain_id`.
    pub fn frames(&self, chain_id: u64) -> Vec<u64> {
        self.nodes
            .iter()
            .map(|n| n.network.frames_received(chain_id))
            .collect()
    }

    /// Stop every node.
    pub async fn shutdown(mut self) {
        for n in &mut self.nodes {
            if let Some(l) = n.launched.take() {
                let _ = l.shutdown().await;
            }
            n.network.shutdown();
        }
    }

    /// Balances of `address` on `chain` as each node that runs it sees them.
    pub async fn balances(&self, chain: &str, address: &Address) -> HashMap<usize, u128> {
        let mut out = HashMap::new();
        for i in 0..self.nodes.len() {
            if let Some(c) = self.chain(i, chain).await {
                out.insert(i, c.account(address).expect("account").balance);
            }
        }
        out
    }
}
