//! The single-node development chain.
//!
//! On first start in a data directory this writes a validator key
//! (`node.key`), ten prefunded account keys (`dev-keys/dev-0.key` ..
//! `dev-9.key`, unencrypted: development only) and the chain spec
//! (`chain-spec.json`, written last and atomically, so its presence means
//! initialization finished). Later starts load those files and resume the
//! chain from disk.
//!
//! The dev chain is a one-node main chain: one founding organisation
//! `org-0` owns the node and holds all the voting weight, its admin key in
//! `orgs/org-0/admin.key`, so a proposal it files passes at once; the node
//! has a validator key for each suite (`node.key` for the chain's own,
//! `validator-{suite}.key` for the other), so a sub-chain of either suite
//! it votes into existence runs in the same process.

use crate::NodeError;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use tongtian_crypto::keyfile::KeyFile;
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_types::{
    Address, ChainSpec, ConsensusSpec, GasSchedule, GenesisAccount, Limits, ValidatorSpec,
};

/// Chain id of development chains.
pub const DEV_CHAIN_ID: u64 = 8645;
/// Number of prefunded development accounts.
pub const DEV_ACCOUNTS: usize = 10;
/// Balance of each development account: one billion tokens of 10^18 units.
pub const DEV_BALANCE: u128 = 1_000_000_000 * 1_000_000_000_000_000_000;

/// A development chain's files, loaded.
#[derive(Debug)]
pub struct DevChain {
    /// The spec.
    pub spec: ChainSpec,
    /// The node's validator key.
    pub validator: Keypair,
    /// Directory holding the chain's store.
    pub chain_dir: PathBuf,
    /// Paths of the dev account key files.
    pub dev_keys: Vec<PathBuf>,
    /// The organisation admin's key file (absent in data directories made
    /// before organisations existed).
    pub admin_key: PathBuf,
    /// The node's validator keys, one per suite.
    pub validator_keys: crate::host::ValidatorKeys,
}

/// Id of the dev chain's organisation.
pub const DEV_ORG: &str = "org-0";

/// Give `spec` the main chain's modules with one organisation, `org-0`,
/// whose admin is `admin` (funded) and whose one node has `transport` as
/// its transport key and `validators` as its validator keys.
pub fn with_founding_orgs(
    spec: &mut ChainSpec,
    orgs: Vec<tongtian_modules::org::Organisation>,
    voting_period: u64,
) {
    for o in &orgs {
        if !spec.accounts.iter().any(|a| a.address == o.admin) {
            spec.accounts.push(GenesisAccount {
                address: o.admin,
                balance: DEV_BALANCE,
            });
        }
    }
    spec.modules.insert(
        tongtian_modules::org::ID,
        serde_json::json!({ "orgs": orgs }),
    );
    spec.modules.insert(
        tongtian_modules::gov::ID,
        serde_json::json!({ "voting_period": voting_period }),
    );
    spec.modules
        .insert(tongtian_modules::registry::ID, serde_json::json!({}));
    spec.modules
        .insert(tongtian_modules::contracts::ID, serde_json::json!({}));
    spec.modules
        .insert(tongtian_modules::params::ID, serde_json::json!({}));
    // Cross-chain: every sub-chain created by vote gets clients and a
    // transfer channel with the main chain.
    for id in [
        tongtian_xchain::client::ID,
        tongtian_xchain::channel::ID,
        tongtian_xchain::transfer::ID,
        tongtian_xchain::nft::ID,
        tongtian_xchain::nft_transfer::ID,
        // Data assets and the jobs that use them.
        tongtian_data::data::ID,
        tongtian_data::job::ID,
    ] {
        spec.modules.insert(id, serde_json::json!({}));
    }
}

/// An organisation record for a node with these keys.
pub fn organisation(
    id: &str,
    admin: Address,
    node_name: &str,
    transport: &Keypair,
    validators: &[&Keypair],
) -> tongtian_modules::org::Organisation {
    tongtian_modules::org::Organisation {
        id: id.into(),
        name: id.into(),
        admin,
        weight: 1,
        nodes: vec![tongtian_modules::org::NodeInfo {
            name: node_name.into(),
            transport_key: transport.public_key().to_vec(),
            validator_keys: validators
                .iter()
                .map(|k| tongtian_modules::org::SuiteKey {
                    suite: k.suite(),
                    public_key: k.public_key().to_vec(),
                })
                .collect(),
        }],
    }
}

/// The other suite (for the node's second validator key).
pub fn other_suite(s: SuiteId) -> SuiteId {
    match s {
        SuiteId::Standard => SuiteId::Sm,
        SuiteId::Sm => SuiteId::Standard,
    }
}

/// Load a key file, or make one of `suite` there.
pub fn load_or_make_key(path: &Path, suite: SuiteId) -> Result<Keypair, NodeError> {
    if path.exists() {
        return KeyFile::read(path).map_err(cfg)?.open(None).map_err(cfg);
    }
    let k = Keypair::generate(suite);
    KeyFile::seal(&k, None)
        .map_err(cfg)?
        .write(path)
        .map_err(cfg)?;
    Ok(k)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn cfg<E: std::fmt::Display>(e: E) -> NodeError {
    NodeError::Config(e.to_string())
}

/// Path of the n-th dev key in a data directory.
pub fn dev_key_path(data_dir: &Path, n: usize) -> PathBuf {
    data_dir.join("dev-keys").join(format!("dev-{n}.key"))
}

/// The ten Ethereum development accounts of Hardhat and Anvil (mnemonic
/// [`tongtian_crypto::eth::DEV_MNEMONIC`]), prefunded on dev chains and
/// testnets so any Ethereum tutorial's first key works.
pub fn ethereum_dev_accounts() -> Vec<GenesisAccount> {
    tongtian_crypto::eth::EthKey::dev_accounts(DEV_ACCOUNTS as u32)
        .iter()
        .map(|k| GenesisAccount {
            address: Address(k.address()),
            balance: DEV_BALANCE,
        })
        .collect()
}

/// A development chain spec for the given validator and accounts (the
/// Ethereum development accounts are added to them).
pub fn dev_spec(suite: SuiteId, validator: &Keypair, accounts: &[Address]) -> ChainSpec {
    ChainSpec {
        name: "tongtian-dev".into(),
        chain_id: DEV_CHAIN_ID,
        suite,
        consensus: ConsensusSpec {
            engine: "solo".into(),
            block_interval_ms: 100,
            // Smaller blocks pipeline better on one node (the next is built
            // while the last is written): 10,000 against 20,000 measured
            // faster and with lower latency under load (decisions.md).
            max_block_txs: 10_000,
            empty_block_interval_ms: 1_000,
        },
        validators: vec![ValidatorSpec {
            name: "node-0".into(),
            public_key: validator.public_key().to_vec(),
        }],
        accounts: accounts
            .iter()
            .map(|a| GenesisAccount {
                address: *a,
                balance: DEV_BALANCE,
            })
            .chain(ethereum_dev_accounts())
            .collect(),
        gas: GasSchedule::default(),
        limits: Limits::default(),
        genesis_time_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        vms: tongtian_types::VmKind::ALL.to_vec(),
        modules: Default::default(),
    }
}

/// Load the dev chain in `data_dir`, creating it on first use. `suite`,
/// when given, must match an existing chain's.
pub fn init_or_load(data_dir: &Path, suite: Option<SuiteId>) -> Result<DevChain, NodeError> {
    let spec_path = data_dir.join("chain-spec.json");
    let node_key = data_dir.join("node.key");
    let dev_keys: Vec<PathBuf> = (0..DEV_ACCOUNTS)
        .map(|n| dev_key_path(data_dir, n))
        .collect();
    if !spec_path.exists() {
        // A previous first start may have died half-way: start over.
        let _ = std::fs::remove_file(&node_key);
        let _ = std::fs::remove_dir_all(data_dir.join("dev-keys"));
        let _ = std::fs::remove_dir_all(data_dir.join("chain"));
        std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
        let suite = suite.unwrap_or(SuiteId::Standard);
        let validator = Keypair::generate(suite);
        KeyFile::seal(&validator, None)
            .map_err(cfg)?
            .write(&node_key)
            .map_err(cfg)?;
        let mut addrs = Vec::new();
        for path in &dev_keys {
            let k = Keypair::generate(suite);
            KeyFile::seal(&k, None)
                .map_err(cfg)?
                .write(path)
                .map_err(cfg)?;
            addrs.push(Address::from_public_key(suite, k.public_key()));
        }
        let _ = std::fs::remove_dir_all(data_dir.join("orgs"));
        let admin = load_or_make_key(&admin_key_path(data_dir), suite)?;
        let other = load_or_make_key(
            &data_dir.join(format!("validator-{}.key", other_suite(suite))),
            other_suite(suite),
        )?;
        let mut spec = dev_spec(suite, &validator, &addrs);
        with_founding_orgs(
            &mut spec,
            vec![organisation(
                DEV_ORG,
                Address::from_public_key(suite, admin.public_key()),
                "node-0",
                &validator,
                &[&validator, &other],
            )],
            100,
        );
        let tmp = data_dir.join("chain-spec.json.tmp");
        // Invariant: ChainSpec holds only serializable plain data.
        let text = serde_json::to_string_pretty(&spec).expect("spec serializes");
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &spec_path).map_err(io(&spec_path))?;
        tracing::info!(dir = %data_dir.display(), %suite, "initialized a new dev chain");
    }
    let text = std::fs::read_to_string(&spec_path).map_err(io(&spec_path))?;
    let spec = ChainSpec::from_json(&text).map_err(cfg)?;
    if let Some(s) = suite {
        if s != spec.suite {
            return Err(NodeError::Config(format!(
                "{} holds a {} chain; remove it or pass --suite {}",
                data_dir.display(),
                spec.suite,
                spec.suite
            )));
        }
    }
    let validator = KeyFile::read(&node_key)
        .map_err(cfg)?
        .open(None)
        .map_err(cfg)?;
    let mut validator_keys = crate::host::ValidatorKeys::default();
    let other = data_dir.join(format!("validator-{}.key", other_suite(spec.suite)));
    if other.exists() {
        validator_keys.insert(load_or_make_key(&other, other_suite(spec.suite))?);
    }
    validator_keys.insert(validator.clone());
    Ok(DevChain {
        spec,
        validator,
        chain_dir: data_dir.join("chain"),
        dev_keys,
        admin_key: admin_key_path(data_dir),
        validator_keys,
    })
}

/// Where the dev organisation's admin key lives.
pub fn admin_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("orgs").join(DEV_ORG).join("admin.key")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChainRuntime;
    use std::time::Duration;
    use tongtian_types::codec::encode;
    use tongtian_types::{Action, Transaction};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dev_chain_commits_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let chain = init_or_load(dir.path(), Some(SuiteId::Sm)).unwrap();
        // Our ten keys, the ten Hardhat/Anvil accounts, the organisation's admin.
        assert_eq!(chain.spec.accounts.len(), 2 * DEV_ACCOUNTS + 1);
        assert!(chain.admin_key.exists());
        assert!(chain.validator_keys.get(SuiteId::Sm).is_some());
        assert!(chain.validator_keys.get(SuiteId::Standard).is_some());
        assert!(chain
            .spec
            .accounts
            .iter()
            .any(|a| a.address.to_string() == "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"));
        assert!(chain.dev_keys.iter().all(|p| p.exists()));
        let key = KeyFile::read(&chain.dev_keys[0])
            .unwrap()
            .open(None)
            .unwrap();
        let rt = ChainRuntime::open(
            &chain.chain_dir,
            chain.spec.clone(),
            chain.validator.clone(),
        )
        .unwrap();
        let running = rt.start(None).unwrap();
        assert_eq!(rt.engine_name(), "solo");
        let mut events = rt.subscribe();
        let to = Address([3; 20]);
        let raws: Vec<Vec<u8>> = (0..5)
            .map(|n| {
                encode(
                    &Transaction {
                        chain_id: DEV_CHAIN_ID,
                        nonce: n,
                        gas_limit: 100_000,
                        gas_price: 1,
                        action: Action::Transfer {
                            to,
                            amount: 10,
                            memo: vec![],
                        },
                    }
                    .sign(&key),
                )
            })
            .collect();
        let refs: Vec<&[u8]> = raws.iter().map(|r| r.as_slice()).collect();
        let hashes: Vec<_> = rt
            .submit_batch(&refs)
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let mut seen = 0;
        while seen < 5 {
            let ev = tokio::time::timeout(Duration::from_secs(10), events.recv())
                .await
                .unwrap()
                .unwrap();
            seen += ev.txs.len();
        }
        assert!(hashes
            .iter()
            .all(|h| rt.store().receipt(h).unwrap().unwrap().is_success()));
        assert_eq!(rt.account(&to).unwrap().balance, 50);
        running.stop(Duration::from_secs(10)).await.unwrap();
        let height = rt.latest().0;
        drop(rt);

        // Resume: same spec and keys, same chain.
        let again = init_or_load(dir.path(), None).unwrap();
        assert_eq!(again.spec, chain.spec);
        assert!(init_or_load(dir.path(), Some(SuiteId::Standard)).is_err());
        let rt = ChainRuntime::open(&again.chain_dir, again.spec, again.validator).unwrap();
        assert_eq!(rt.latest().0, height);
        assert_eq!(rt.account(&to).unwrap().balance, 50);
        // A different spec on the same store is refused.
        let mut other = chain.spec.clone();
        other.chain_id += 1;
        drop(rt);
        assert!(matches!(
            ChainRuntime::open(&again.chain_dir, other, chain.validator),
            Err(NodeError::SpecMismatch { .. })
        ));
    }
}
