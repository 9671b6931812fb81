//! A node's home directory: `config.toml`, `node.key`, `chain-spec.json`
//! and the `data/` directory; and `testnet init`, which writes a set of
//! node homes for one chain.

use crate::dev::DEV_ACCOUNTS;
use crate::NodeError;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tongtian_crypto::keyfile::KeyFile;
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_network::{NetworkConfig, PeerSpec};
use tongtian_types::{
    Address, ChainSpec, ConsensusSpec, GasSchedule, GenesisAccount, Limits, ValidatorSpec,
};

/// Chain id of chains made by `testnet init`.
pub const TESTNET_CHAIN_ID: u64 = 8646;
/// Offset from a node's API port to its transport port.
pub const P2P_PORT_OFFSET: u16 = 1000;

fn default_spec() -> PathBuf {
    "chain-spec.json".into()
}
fn default_key() -> PathBuf {
    "node.key".into()
}
fn default_data() -> PathBuf {
    "data".into()
}
fn default_max_frame() -> usize {
    64 << 20
}

/// Another node of the chain.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerConfig {
    /// Its name (informational).
    pub name: String,
    /// Its public key, hex; connections from any other key are refused.
    pub public_key: String,
    /// Its transport address.
    pub p2p: SocketAddr,
}

/// `config.toml` of a node home. Paths are relative to the home.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeConfig {
    /// Node name, e.g. `node-0`.
    pub name: String,
    /// REST API listen address.
    pub api: SocketAddr,
    /// Transport (Noise over TCP) listen address.
    pub p2p: SocketAddr,
    /// Chain spec file.
    #[serde(default = "default_spec")]
    pub chain_spec: PathBuf,
    /// This node's validator key file for the main chain.
    #[serde(default = "default_key")]
    pub key: PathBuf,
    /// Its transport identity's key file (what peers admit); absent in
    /// homes made before it existed, where the validator key doubles as it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_key: Option<PathBuf>,
    /// Directory of the chain's store and the engine's state.
    #[serde(default = "default_data")]
    pub data_dir: PathBuf,
    /// Largest transport frame accepted, in bytes.
    #[serde(default = "default_max_frame")]
    pub max_frame: usize,
    /// The other nodes.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Serve `POST /v1/debug/network` so tests can cut this node off from
    /// peers. Never enable in production.
    #[serde(default)]
    pub fault_injection: bool,
    /// With `fault_injection`: misbehaviour to simulate, comma-separated
    /// (`equivocate`, `invalid-proposals`). For Byzantine-tolerance tests.
    #[serde(default)]
    pub byzantine: String,
}

fn cfg<E: std::fmt::Display>(e: E) -> NodeError {
    NodeError::Config(e.to_string())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A node home, loaded.
pub struct NodeHome {
    /// The config.
    pub config: NodeConfig,
    /// The chain spec.
    pub spec: ChainSpec,
    /// The node's validator key for the main chain.
    pub key: Keypair,
    /// Its transport identity (the validator key in older homes).
    pub transport: Keypair,
    /// Absolute data directory.
    pub data_dir: PathBuf,
}

impl NodeHome {
    /// Load `home/config.toml` and what it points to. `password` opens an
    /// encrypted key file.
    pub fn load(home: &Path, password: Option<&str>) -> Result<NodeHome, NodeError> {
        let path = home.join("config.toml");
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let config: NodeConfig = toml::from_str(&text)
            .map_err(|e| NodeError::Config(format!("{}: {e}", path.display())))?;
        let spec_path = home.join(&config.chain_spec);
        let spec =
            ChainSpec::from_json(&std::fs::read_to_string(&spec_path).map_err(io(&spec_path))?)
                .map_err(cfg)?;
        let key = KeyFile::read(&home.join(&config.key))
            .map_err(cfg)?
            .open(password)
            .map_err(cfg)?;
        if key.suite() != spec.suite {
            return Err(NodeError::Config(format!(
                "node key is {} but the chain uses {}",
                key.suite(),
                spec.suite
            )));
        }
        let transport = match &config.transport_key {
            Some(p) => KeyFile::read(&home.join(p))
                .map_err(cfg)?
                .open(password)
                .map_err(cfg)?,
            None => key.clone(),
        };
        Ok(NodeHome {
            data_dir: home.join(&config.data_dir),
            config,
            spec,
            key,
            transport,
        })
    }

    /// The transport configuration: this node's key, and every peer (the allow-list).
    pub fn network_config(&self) -> Result<NetworkConfig, NodeError> {
        let peers = self
            .config
            .peers
            .iter()
            .map(|p| {
                let public_key =
                    hex::decode(p.public_key.trim_start_matches("0x")).map_err(|_| {
                        NodeError::Config(format!("peer {}: public_key is not hex", p.name))
                    })?;
                Ok(PeerSpec {
                    public_key,
                    addr: p.p2p,
                })
            })
            .collect::<Result<Vec<_>, NodeError>>()?;
        Ok(NetworkConfig {
            identity: self.transport.clone(),
            listen: self.config.p2p,
            peers,
            max_frame: self.config.max_frame,
        })
    }
}

/// What `testnet init` made.
#[derive(Debug)]
pub struct Testnet {
    /// Node homes.
    pub homes: Vec<PathBuf>,
    /// Dev account key files.
    pub dev_keys: Vec<PathBuf>,
    /// The spec.
    pub spec: ChainSpec,
    /// The founding organisations: id and admin key file.
    pub orgs: Vec<(String, PathBuf)>,
}

/// Write `dir/node-0` .. `dir/node-{n-1}` and `dir/dev-keys` for one main
/// chain run by `engine`. Node i serves its API on `base_port + i` and its
/// transport on `base_port + 1000 + i`, all on 127.0.0.1. The chain's
/// founding organisations `org-0` .. `org-{m-1}` (`orgs`, default one per
/// node) own the nodes (node i belongs to `org-{i mod m}`), with equal
/// weights and admin keys at `dir/orgs/org-{j}/admin.key`; each node also
/// gets a validator key of the other suite (`validator-{suite}.key`), so
/// sub-chains of either suite can name it.
pub fn testnet_init(
    dir: &Path,
    nodes: usize,
    engine: &str,
    suite: SuiteId,
    base_port: u16,
    orgs: Option<usize>,
) -> Result<Testnet, NodeError> {
    if nodes == 0 {
        return Err(NodeError::Config("--nodes must be at least 1".into()));
    }
    let n_orgs = orgs.unwrap_or(nodes);
    if n_orgs == 0 || n_orgs > nodes {
        return Err(NodeError::Config(format!(
            "--orgs must be between 1 and the number of nodes ({nodes})"
        )));
    }
    if dir.join("node-0").exists() {
        return Err(NodeError::Config(format!(
            "{} already holds a testnet; remove it first",
            dir.display()
        )));
    }
    let port = |i: usize, off: u16| -> Result<u16, NodeError> {
        u16::try_from(base_port as usize + off as usize + i)
            .map_err(|_| NodeError::Config("ports exceed 65535".into()))
    };
    let keys: Vec<Keypair> = (0..nodes).map(|_| Keypair::generate(suite)).collect();
    let mut dev_keys = Vec::new();
    let mut accounts = Vec::new();
    for n in 0..DEV_ACCOUNTS {
        let k = Keypair::generate(suite);
        let path = dir.join("dev-keys").join(format!("dev-{n}.key"));
        KeyFile::seal(&k, None)
            .map_err(cfg)?
            .write(&path)
            .map_err(cfg)?;
        accounts.push(GenesisAccount {
            address: Address::from_public_key(suite, k.public_key()),
            balance: crate::dev::DEV_BALANCE,
        });
        dev_keys.push(path);
    }
    let mut spec = ChainSpec {
        name: "tongtian-testnet".into(),
        chain_id: TESTNET_CHAIN_ID,
        suite,
        consensus: ConsensusSpec {
            engine: engine.to_string(),
            block_interval_ms: 200,
            max_block_txs: 20_000,
            // A block every idle second, as on dev chains: Ethereum clients
            // wait for "the next block" after a receipt.
            empty_block_interval_ms: 1_000,
        },
        validators: keys
            .iter()
            .enumerate()
            .map(|(i, k)| ValidatorSpec {
                name: format!("node-{i}"),
                public_key: k.public_key().to_vec(),
            })
            .collect(),
        accounts: accounts
            .into_iter()
            .chain(crate::dev::ethereum_dev_accounts())
            .collect(),
        gas: GasSchedule::default(),
        limits: Limits::default(),
        genesis_time_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        vms: tongtian_types::VmKind::ALL.to_vec(),
        modules: Default::default(),
    };
    let other_suite = crate::dev::other_suite(suite);
    let others: Vec<Keypair> = (0..nodes).map(|_| Keypair::generate(other_suite)).collect();
    // Each node's transport identity is its own key, apart from the keys
    // it validates with.
    let transports: Vec<Keypair> = (0..nodes)
        .map(|_| Keypair::generate(SuiteId::Standard))
        .collect();
    let mut org_files = Vec::new();
    let mut founders = Vec::new();
    for j in 0..n_orgs {
        let id = format!("org-{j}");
        let admin_path = dir.join("orgs").join(&id).join("admin.key");
        let admin = crate::dev::load_or_make_key(&admin_path, suite)?;
        let mut org = crate::dev::organisation(
            &id,
            Address::from_public_key(suite, admin.public_key()),
            &format!("node-{j}"),
            &transports[j],
            &[&keys[j], &others[j]],
        );
        org.nodes = (j..nodes)
            .step_by(n_orgs)
            .map(|i| {
                crate::dev::organisation(
                    &id,
                    org.admin,
                    &format!("node-{i}"),
                    &transports[i],
                    &[&keys[i], &others[i]],
                )
                .nodes
                .remove(0)
            })
            .collect();
        founders.push(org);
        org_files.push((id, admin_path));
    }
    crate::dev::with_founding_orgs(&mut spec, founders, 600);
    spec.validate().map_err(cfg)?;
    // Invariant: ChainSpec holds only serializable plain data.
    let spec_json = serde_json::to_string_pretty(&spec).expect("spec serializes");
    let mut homes = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let home = dir.join(format!("node-{i}"));
        std::fs::create_dir_all(&home).map_err(io(&home))?;
        KeyFile::seal(key, None)
            .map_err(cfg)?
            .write(&home.join("node.key"))
            .map_err(cfg)?;
        KeyFile::seal(&others[i], None)
            .map_err(cfg)?
            .write(&home.join(format!("validator-{other_suite}.key")))
            .map_err(cfg)?;
        KeyFile::seal(&transports[i], None)
            .map_err(cfg)?
            .write(&home.join("transport.key"))
            .map_err(cfg)?;
        std::fs::write(home.join("chain-spec.json"), &spec_json).map_err(io(&home))?;
        let mut peers = Vec::new();
        for (j, other) in transports.iter().enumerate() {
            if j != i {
                peers.push(PeerConfig {
                    name: format!("node-{j}"),
                    public_key: hex::encode(other.public_key()),
                    p2p: SocketAddr::from(([127, 0, 0, 1], port(j, P2P_PORT_OFFSET)?)),
                });
            }
        }
        let config = NodeConfig {
            name: format!("node-{i}"),
            api: SocketAddr::from(([127, 0, 0, 1], port(i, 0)?)),
            p2p: SocketAddr::from(([127, 0, 0, 1], port(i, P2P_PORT_OFFSET)?)),
            chain_spec: default_spec(),
            key: default_key(),
            transport_key: Some(PathBuf::from("transport.key")),
            data_dir: default_data(),
            max_frame: default_max_frame(),
            peers,
            fault_injection: false,
            byzantine: String::new(),
        };
        let text = format!(
            "# Tongtian node home. api: REST API; p2p: Noise-encrypted transport\n# (API port + {P2P_PORT_OFFSET}). Peers not listed here are refused.\n{}",
            toml::to_string_pretty(&config).map_err(cfg)?
        );
        let path = home.join("config.toml");
        std::fs::write(&path, text).map_err(io(&path))?;
        homes.push(home);
    }
    Ok(Testnet {
        homes,
        dev_keys,
        spec,
        orgs: org_files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn testnet_homes_load_and_agree() {
        let dir = tempfile::tempdir().unwrap();
        let net = testnet_init(dir.path(), 4, "raft", SuiteId::Sm, 20_000, None).unwrap();
        assert_eq!(net.homes.len(), 4);
        assert_eq!(net.dev_keys.len(), DEV_ACCOUNTS);
        let homes: Vec<NodeHome> = net
            .homes
            .iter()
            .map(|h| NodeHome::load(h, None).unwrap())
            .collect();
        for (i, h) in homes.iter().enumerate() {
            assert_eq!(h.spec, net.spec);
            assert_eq!(h.config.api.port(), 20_000 + i as u16);
            assert_eq!(h.config.p2p.port(), 21_000 + i as u16);
            let nc = h.network_config().unwrap();
            assert_eq!(nc.peers.len(), 3);
            assert!(nc
                .peers
                .iter()
                .all(|p| p.public_key != h.transport.public_key()));
            assert_ne!(
                h.transport.public_key(),
                h.key.public_key(),
                "transport apart"
            );
            assert_eq!(h.spec.validators[i].public_key, h.key.public_key());
        }
        assert!(
            testnet_init(dir.path(), 4, "raft", SuiteId::Sm, 20_000, None).is_err(),
            "must not clobber"
        );
    }
}
