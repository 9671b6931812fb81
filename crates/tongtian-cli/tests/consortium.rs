//! Multi-process consortium tests: four `tongtian node start` processes on
//! loopback ports, driven over HTTP, with nodes killed and the network
//! partitioned through the transport's fault-injection endpoint.

#![allow(clippy::unwrap_used)]

mod common;

use common::{address, bin, ok_json, transfer};

use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tongtian_crypto::keyfile::KeyFile;
use tongtian_crypto::Keypair;
use tongtian_types::codec::encode;
use tongtian_types::{Address, H256};

const CHAIN_ID: u64 = 8646;

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn port_free(p: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
}

/// A base port whose API and transport ports are all free.
fn free_base(n: u16) -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let seed = (std::process::id() as u16).wrapping_mul(7);
    for _ in 0..200u16 {
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let base = 20_000 + seed.wrapping_add(k.wrapping_mul(53)) % 9_000;
        if (0..n).all(|i| port_free(base + i) && port_free(base + 1000 + i)) {
            return base;
        }
    }
    panic!("no free port range");
}

struct Testnet {
    dir: PathBuf,
    base: u16,
    nodes: Vec<Option<Child>>,
    keys: Vec<Keypair>,
    /// Transport keys (what peers and fault injection name a node by).
    transports: Vec<Keypair>,
}

impl Testnet {
    fn init(dir: &Path, engine: &str, n: usize) -> Testnet {
        Testnet::init_with(dir, engine, n, &[])
    }

    /// Like `init`, with simulated misbehaviour for some nodes.
    fn init_with(dir: &Path, engine: &str, n: usize, byzantine: &[(usize, &str)]) -> Testnet {
        let base = free_base(n as u16);
        let out = Command::new(bin())
            .args([
                "testnet",
                "init",
                "--nodes",
                &n.to_string(),
                "--consensus",
                engine,
                "--dir",
            ])
            .arg(dir)
            .args(["--base-port", &base.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut keys = Vec::new();
        let mut transports = Vec::new();
        for i in 0..n {
            let home = dir.join(format!("node-{i}"));
            let cfg = std::fs::read_to_string(home.join("config.toml")).unwrap();
            assert!(cfg.contains("fault_injection = false"));
            let mut cfg = cfg.replacen("fault_injection = false", "fault_injection = true", 1);
            if let Some((_, faults)) = byzantine.iter().find(|(j, _)| *j == i) {
                cfg = cfg.replacen("byzantine = \"\"", &format!("byzantine = \"{faults}\""), 1);
            }
            std::fs::write(home.join("config.toml"), cfg).unwrap();
            keys.push(
                KeyFile::read(&home.join("node.key"))
                    .unwrap()
                    .open(None)
                    .unwrap(),
            );
            // The transport identity is a key of its own.
            transports.push(
                KeyFile::read(&home.join("transport.key"))
                    .unwrap()
                    .open(None)
                    .unwrap(),
            );
        }
        let mut t = Testnet {
            dir: dir.to_path_buf(),
            base,
            nodes: (0..n).map(|_| None).collect(),
            keys,
            transports,
        };
        for i in 0..n {
            t.start(i);
        }
        for i in 0..n {
            t.wait_ready(i);
        }
        // Every node connected to every other.
        let deadline = Instant::now() + Duration::from_secs(30);
        while (0..n).any(|i| t.status(i).is_none_or(|s| s["peers"] != n - 1)) {
            assert!(Instant::now() < deadline, "mesh did not form");
            std::thread::sleep(Duration::from_millis(100));
        }
        // A clean start is quiet: no warning or error at the default log
        // level (a raft start used to log a dozen of openraft's), but the
        // one these tests ask for: that fault injection is switched on.
        if byzantine.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
            for i in 0..n {
                let log = std::fs::read_to_string(dir.join(format!("node-{i}.log"))).unwrap();
                let loud: Vec<&str> = log
                    .lines()
                    .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
                    .filter(|l| !l.contains("fault injection is enabled"))
                    .collect();
                assert!(
                    loud.is_empty(),
                    "node {i} of a clean {engine} start: {loud:#?}"
                );
            }
        }
        t
    }

    /// Run the CLI against node 0.
    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin())
            .args(["--node", &self.url(0)])
            .args(args)
            .output()
            .unwrap()
    }

    /// Write `next` as a set file and have each of `approvers` sign it with
    /// `tongtian validators approve`; returns the set file and approval files.
    fn approve(&self, dir: &Path, next: &[&Value], approvers: &[usize]) -> (PathBuf, Vec<String>) {
        let set_file = dir.join("next.json");
        std::fs::write(&set_file, serde_json::to_string(next).unwrap()).unwrap();
        let mut approvals = Vec::new();
        for i in approvers {
            let key = dir.join(format!("node-{i}/node.key"));
            let out = self.cli(&[
                "validators",
                "approve",
                "--key",
                key.to_str().unwrap(),
                "--set",
                set_file.to_str().unwrap(),
            ]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let path = dir.join(format!("approval-{i}.json"));
            std::fs::write(&path, &out.stdout).unwrap();
            approvals.push(path.to_str().unwrap().to_string());
        }
        (set_file, approvals)
    }

    fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.base + i as u16)
    }

    fn start(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("node-{i}.log")))
            .unwrap();
        let child = Command::new(bin())
            .args(["node", "start", "--home"])
            .arg(self.dir.join(format!("node-{i}")))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.nodes[i] = Some(child);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn wait_ready(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.status(i).is_none() {
            assert!(Instant::now() < deadline, "node {i} not ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn status(&self, i: usize) -> Option<Value> {
        let r = http()
            .get(format!("{}/v1/status", self.url(i)))
            .send()
            .ok()?;
        r.json().ok()
    }

    fn height(&self, i: usize) -> u64 {
        self.status(i).map_or(0, |s| s["height"].as_u64().unwrap())
    }

    fn get(&self, i: usize, path: &str) -> (u16, Value) {
        let r = http()
            .get(format!("{}{}", self.url(i), path))
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap())
    }

    fn dev_key(&self, n: usize) -> Keypair {
        KeyFile::read(&self.dir.join("dev-keys").join(format!("dev-{n}.key")))
            .unwrap()
            .open(None)
            .unwrap()
    }

    /// Submit a batch to node `i`; returns accepted hashes.
    fn submit(&self, i: usize, txs: &[tongtian_types::SignedTransaction]) -> Vec<H256> {
        let raws: Vec<String> = txs
            .iter()
            .map(|t| format!("0x{}", hex::encode(encode(t))))
            .collect();
        let Ok(r) = http()
            .post(format!("{}/v1/txs/batch", self.url(i)))
            .json(&json!({ "raws": raws }))
            .send()
        else {
            return vec![];
        };
        let v: Value = r.json().unwrap();
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x["hash"].as_str().map(|h| h.parse().unwrap()))
            .collect()
    }

    fn partition(&self, i: usize, cut: &[usize]) {
        let keys: Vec<String> = cut
            .iter()
            .map(|j| hex::encode(self.transports[*j].public_key()))
            .collect();
        let r = http()
            .post(format!("{}/v1/debug/network", self.url(i)))
            .json(&json!({ "block": keys }))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }

    /// Receipts of `hashes` on node `i`, waiting up to `timeout` for all.
    fn wait_receipts(&self, i: usize, hashes: &[H256], timeout: Duration) -> HashMap<H256, Value> {
        let deadline = Instant::now() + timeout;
        let mut got = HashMap::new();
        while got.len() < hashes.len() {
            for h in hashes {
                if !got.contains_key(h) {
                    let (s, v) = self.get(i, &format!("/v1/receipts/{h}"));
                    if s == 200 {
                        got.insert(*h, v);
                    }
                }
            }
            if got.len() < hashes.len() {
                assert!(
                    Instant::now() < deadline,
                    "node {i}: {} of {} receipts after {timeout:?}",
                    got.len(),
                    hashes.len()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        got
    }

    /// Index of the node that proposed the latest block on node `i`.
    fn proposer_of_latest(&self, i: usize) -> Option<usize> {
        let (_, b) = self.get(i, "/v1/blocks/latest");
        let p: Address = b["header"]["proposer"].as_str()?.parse().ok()?;
        self.keys.iter().position(|k| address(k) == p)
    }

    /// Every node's chain, compared height by height; each transaction once.
    fn assert_consistent(&self, nodes: &[usize], must_contain: &[H256]) {
        let heights: Vec<u64> = nodes.iter().map(|i| self.height(*i)).collect();
        let top = *heights.iter().min().unwrap();
        let mut reference: Vec<String> = Vec::new();
        for (k, i) in nodes.iter().enumerate() {
            let mut seen: HashSet<String> = HashSet::new();
            for h in 0..=top {
                let (s, b) = self.get(*i, &format!("/v1/blocks/{h}"));
                assert_eq!(s, 200);
                let hash = b["hash"].as_str().unwrap().to_string();
                if k == 0 {
                    reference.push(hash);
                } else {
                    assert_eq!(
                        reference[h as usize], hash,
                        "node {i} disagrees at height {h}"
                    );
                }
                for t in b["tx_hashes"].as_array().unwrap() {
                    assert!(
                        seen.insert(t.as_str().unwrap().to_string()),
                        "node {i}: tx committed twice"
                    );
                }
            }
            for h in must_contain {
                assert!(
                    seen.contains(&h.to_string()),
                    "node {i} lost committed transaction {h}"
                );
            }
        }
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// Transfers from dev key `k` starting at `nonce`.
fn transfers(key: &Keypair, nonce: u64, n: u64) -> Vec<tongtian_types::SignedTransaction> {
    (0..n)
        .map(|j| transfer(CHAIN_ID, key, nonce + j, Address([0x33; 20]), 1 + j as u128))
        .collect()
}

#[test]
fn raft_survives_leader_kill_and_catches_up() {
    survives_proposer_kill_and_catches_up("raft");
}

#[test]
fn bft_survives_proposer_kill_and_catches_up() {
    survives_proposer_kill_and_catches_up("bft");
}

/// Kill the node that proposed the latest block while transactions flow;
/// the other three keep committing; the killed node restarts, catches up,
/// and every node holds the same block at every height with each receipted
/// transaction exactly once.
fn survives_proposer_kill_and_catches_up(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut net = Testnet::init(dir.path(), engine, 4);
    let st = net.status(0).unwrap();
    assert_eq!(st["consensus"], engine);
    assert_eq!(st["validator"], true);
    // Phase 1: transactions through every node.
    let mut committed: Vec<H256> = Vec::new();
    for i in 0..4 {
        let key = net.dev_key(i);
        let hs = net.submit(i, &transfers(&key, 0, 10));
        assert_eq!(hs.len(), 10);
        committed.extend(hs);
    }
    let mut nonces = [10u64; 4];
    net.wait_receipts(0, &committed, Duration::from_secs(30));
    let leader = net.proposer_of_latest(0).expect("a validator proposed");

    // Phase 2: kill the leader under load; the others elect a new one and go on.
    let alive: Vec<usize> = (0..4).filter(|i| *i != leader).collect();
    let load = Load::start(net.url(alive[0]), net.dev_key(9));
    std::thread::sleep(Duration::from_millis(300));
    net.kill(leader);
    let mut phase2 = Vec::new();
    for i in alive.iter() {
        let key = net.dev_key(*i);
        let hs = net.submit(*i, &transfers(&key, nonces[*i], 5));
        assert_eq!(hs.len(), 5, "node {i} refused transactions");
        nonces[*i] += 5;
        phase2.extend(hs);
    }
    net.wait_receipts(alive[0], &phase2, Duration::from_secs(40));
    let new_leader = net.proposer_of_latest(alive[0]).unwrap();
    assert_ne!(new_leader, leader, "the dead leader cannot have proposed");
    committed.extend(&phase2);

    // Phase 3: the old leader restarts and catches up.
    net.start(leader);
    net.wait_ready(leader);
    let target = net.height(alive[0]);
    let deadline = Instant::now() + Duration::from_secs(40);
    while net.height(leader) < target {
        assert!(
            Instant::now() < deadline,
            "restarted node stuck at {} < {target}",
            net.height(leader)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let loaded = load.stop();
    assert!(
        loaded.len() >= 20,
        "the background load barely ran: {}",
        loaded.len()
    );
    committed.extend(&loaded);
    for i in 0..4 {
        net.wait_receipts(i, &committed, Duration::from_secs(40));
    }
    net.assert_consistent(&[0, 1, 2, 3], &committed);
}

/// Transfers submitted continuously from one key to one node, in nonce
/// order, until stopped.
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<Vec<H256>>,
}

impl Load {
    fn start(url: String, key: Keypair) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut accepted = Vec::new();
            let mut nonce = 0u64;
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let txs = transfers(&key, nonce, 10);
                let raws: Vec<String> = txs
                    .iter()
                    .map(|t| format!("0x{}", hex::encode(encode(t))))
                    .collect();
                if let Ok(r) = http()
                    .post(format!("{url}/v1/txs/batch"))
                    .json(&json!({ "raws": raws }))
                    .send()
                {
                    let v: Value = r.json().unwrap();
                    for item in v["results"].as_array().unwrap() {
                        match item["hash"].as_str() {
                            Some(h) => {
                                accepted.push(h.parse().unwrap());
                                nonce += 1;
                            }
                            None => break,
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            accepted
        });
        Load { stop, handle }
    }

    fn stop(self) -> Vec<H256> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.join().unwrap()
    }
}

#[test]
fn raft_partition_2_2_is_safe_and_heals() {
    partition_2_2_is_safe_and_heals("raft");
}

#[test]
fn bft_partition_2_2_is_safe_and_heals() {
    partition_2_2_is_safe_and_heals("bft");
}

/// Cut four nodes 2|2: neither side may commit conflicting blocks; after
/// the cut heals, everything submitted on either side commits everywhere.
fn partition_2_2_is_safe_and_heals(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let net = Testnet::init(dir.path(), engine, 4);
    let k0 = net.dev_key(0);
    let k2 = net.dev_key(2);
    let first = net.submit(0, &transfers(&k0, 0, 5));
    net.wait_receipts(0, &first, Duration::from_secs(30));
    // Cut {0,1} from {2,3}: neither side has a majority of 4.
    for (i, cut) in [(0, [2, 3]), (1, [2, 3]), (2, [0, 1]), (3, [0, 1])] {
        net.partition(i, &cut);
    }
    let before: Vec<u64> = (0..4).map(|i| net.height(i)).collect();
    let side_a = net.submit(0, &transfers(&k0, 5, 5));
    let side_b = net.submit(2, &transfers(&k2, 0, 5));
    assert_eq!(side_a.len() + side_b.len(), 10);
    std::thread::sleep(Duration::from_secs(4));
    // Safety: whatever either side has, no height holds two different blocks.
    let during: Vec<u64> = (0..4).map(|i| net.height(i)).collect();
    let common = *during.iter().min().unwrap();
    for h in 0..=common {
        let hashes: HashSet<String> = (0..4)
            .map(|i| {
                net.get(i, &format!("/v1/blocks/{h}")).1["hash"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            hashes.len(),
            1,
            "conflicting blocks at height {h} during the partition"
        );
    }
    assert!(
        during.iter().zip(&before).all(|(d, b)| d <= &(b + 1)),
        "a minority kept committing: {before:?} -> {during:?}"
    );
    // Heal: everything submitted on both sides commits everywhere.
    for i in 0..4 {
        net.partition(i, &[]);
    }
    let mut all = first.clone();
    all.extend(&side_a);
    all.extend(&side_b);
    for i in 0..4 {
        net.wait_receipts(i, &all, Duration::from_secs(40));
    }
    net.assert_consistent(&[0, 1, 2, 3], &all);
}

/// Remove one of four raft validators through a quorum-approved
/// transaction: afterwards two live nodes (of three voters) still commit,
/// which two of four could not.
#[test]
fn raft_validator_removal_changes_the_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = Testnet::init(dir.path(), "raft", 4);
    let (_, set) = net.get(0, "/v1/validators");
    assert_eq!(set["version"], 0);
    let validators = set["validators"].as_array().unwrap();
    assert_eq!(validators.len(), 4);
    // New set: everyone but node-3.
    let next: Vec<&Value> = validators
        .iter()
        .filter(|v| v["name"] != "node-3")
        .collect();
    let (set_file, approvals) = net.approve(dir.path(), &next, &[0, 1, 2]);
    let cli = |args: &[&str]| net.cli(args);
    // Two approvals are not a quorum of four.
    let payer = dir.path().join("dev-keys/dev-0.key");
    let two = approvals[..2].join(",");
    let out = cli(&[
        "validators",
        "propose",
        "--key",
        payer.to_str().unwrap(),
        "--set",
        set_file.to_str().unwrap(),
        "--approvals",
        &two,
        "--wait",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("insufficient_approvals"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let three = approvals.join(",");
    let out = cli(&[
        "validators",
        "propose",
        "--key",
        payer.to_str().unwrap(),
        "--set",
        set_file.to_str().unwrap(),
        "--approvals",
        &three,
        "--wait",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, set) = net.get(0, "/v1/validators");
    assert_eq!(set["version"], 1);
    assert_eq!(set["validators"].as_array().unwrap().len(), 3);
    // Give the leader a moment to move Raft's voters to the new set, then
    // stop node-3 (removed) and node-2: nodes 0 and 1 are two of three.
    std::thread::sleep(Duration::from_secs(3));
    net.kill(3);
    net.kill(2);
    let k5 = net.dev_key(5);
    let hs = net.submit(0, &transfers(&k5, 0, 3));
    assert_eq!(hs.len(), 3);
    net.wait_receipts(1, &hs, Duration::from_secs(30));
    net.assert_consistent(&[0, 1], &hs);
}

/// `testnet up` runs every node of a directory with one prefixed log and
/// stops them all on SIGINT.
#[test]
fn testnet_up_starts_and_stops_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(3);
    let out = Command::new(bin())
        .args([
            "testnet",
            "init",
            "--nodes",
            "3",
            "--consensus",
            "raft",
            "--dir",
        ])
        .arg(dir.path())
        .args(["--base-port", &base.to_string(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let init: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(init["nodes"].as_array().unwrap().len(), 3);

    // A node that cannot start is reported by name, the others are
    // stopped, and `up` exits non-zero.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", base)).unwrap();
    let failed = Command::new(bin())
        .args(["testnet", "up", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let failed = failed.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success(),
        "testnet up succeeded with node-0's port taken"
    );
    assert!(
        text.contains("[node-0] FAILED to start") && text.contains("Address already in use"),
        "{text}"
    );
    assert!(text.contains("1 of 3 nodes failed to start"), "{text}");
    drop(squatter);
    for i in 1..3 {
        assert!(
            port_free(base + i),
            "node {i} left running after the failed start"
        );
    }

    // `--log warn` reaches the nodes: none logs at INFO.
    let log = dir.path().join("up.log");
    let mut up = Command::new(bin())
        .args(["--log", "warn", "testnet", "up", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = |i: u16| {
        http()
            .get(format!("http://127.0.0.1:{}/v1/status", base + i))
            .send()
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .is_some_and(|s| s["peers"] == 2)
    };
    while !(0..3).all(ready) {
        assert!(Instant::now() < deadline, "testnet did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    // `up` has seen every node start (it may still be checking the last
    // one when the APIs already answer).
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("all 3 nodes started")
    {
        assert!(
            Instant::now() < deadline,
            "testnet up did not report the start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A node that dies later is named.
    let home2 = dir.path().join("node-2");
    let killed = Command::new("pkill")
        .args(["-KILL", "-f"])
        .arg(format!("node start --home {}$", home2.display()))
        .status()
        .unwrap();
    assert!(killed.success(), "no node-2 process to kill");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("[node-2] DIED")
    {
        assert!(Instant::now() < deadline, "node-2's death was not reported");
        std::thread::sleep(Duration::from_millis(100));
    }
    Command::new("kill")
        .args(["-INT", &up.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = up.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "testnet up did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    for i in 0..3 {
        assert!(
            port_free(base + i),
            "node {i} still listening after testnet up stopped"
        );
    }
    let text = std::fs::read_to_string(&log).unwrap();
    for i in 0..3 {
        assert!(
            text.contains(&format!(
                "[node-{i}] started: api http://127.0.0.1:{}",
                base + i as u16
            )),
            "node-{i}'s start was not reported: {text}"
        );
    }
    assert!(
        !text.contains(" INFO "),
        "--log warn did not reach the nodes: {text}"
    );
}

/// One of four bft validators double-signs every vote and proposes blocks
/// with a forged state root: the three honest nodes keep committing the
/// same chain, and log evidence of both kinds of misbehaviour.
#[test]
fn bft_byzantine_validator_cannot_break_safety() {
    let dir = tempfile::tempdir().unwrap();
    let net = Testnet::init_with(dir.path(), "bft", 4, &[(3, "equivocate,invalid-proposals")]);
    // Several heights, so the Byzantine node gets its turns as proposer.
    let mut all = Vec::new();
    for round in 0..6u64 {
        let key = net.dev_key(round as usize % 3);
        let hs = net.submit(round as usize % 3, &transfers(&key, round / 3 * 2, 2));
        assert_eq!(hs.len(), 2, "honest node refused transactions");
        net.wait_receipts(0, &hs, Duration::from_secs(60));
        all.extend(hs);
    }
    for i in 0..3 {
        net.wait_receipts(i, &all, Duration::from_secs(30));
    }
    net.assert_consistent(&[0, 1, 2], &all);
    // No committed block was proposed with the forged root.
    let top = net.height(0);
    for h in 1..=top {
        let (_, b) = net.get(0, &format!("/v1/blocks/{h}"));
        assert_ne!(
            b["header"]["state_root"],
            format!("0x{}", "ee".repeat(32)),
            "a forged block was committed"
        );
    }
    let logs: String = (0..3)
        .map(|i| std::fs::read_to_string(dir.path().join(format!("node-{i}.log"))).unwrap())
        .collect();
    assert!(
        logs.contains("evidence=\"equivocation\""),
        "no equivocation evidence logged"
    );
    assert!(
        logs.contains("evidence=\"invalid proposal\""),
        "no invalid-proposal evidence logged"
    );
}

/// Remove two of four bft validators by an approved change: from the next
/// height on their votes no longer count, no later certificate carries
/// their signatures, and the two remaining validators (a quorum of two)
/// commit on their own, which two of the old four could not.
#[test]
fn bft_validator_removal_takes_effect_next_height() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = Testnet::init(dir.path(), "bft", 4);
    let (_, set) = net.get(0, "/v1/validators");
    let validators = set["validators"].as_array().unwrap().clone();
    let removed: Vec<String> = validators
        .iter()
        .filter(|v| v["name"] == "node-2" || v["name"] == "node-3")
        .map(|v| v["public_key"].as_str().unwrap().to_string())
        .collect();
    let next: Vec<&Value> = validators
        .iter()
        .filter(|v| v["name"] != "node-2" && v["name"] != "node-3")
        .collect();
    let (set_file, approvals) = net.approve(dir.path(), &next, &[0, 1, 2]);
    let cli = |args: &[&str]| net.cli(args);
    let payer = dir.path().join("dev-keys/dev-0.key");
    let out = cli(&[
        "validators",
        "propose",
        "--key",
        payer.to_str().unwrap(),
        "--set",
        set_file.to_str().unwrap(),
        "--approvals",
        &approvals.join(","),
        "--wait",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let receipt: Value = serde_json::from_slice(&out.stdout).unwrap();
    let changed_at = receipt["height"].as_u64().unwrap();
    // Blocks after the change, with the removed nodes still running...
    let k4 = net.dev_key(4);
    let mut hs = Vec::new();
    for n in 0..3 {
        let batch = net.submit(1, &transfers(&k4, n * 2, 2));
        net.wait_receipts(1, &batch, Duration::from_secs(30));
        hs.extend(batch);
    }
    // ...and after they are gone.
    net.kill(3);
    net.kill(2);
    let more = net.submit(0, &transfers(&k4, 6, 2));
    net.wait_receipts(1, &more, Duration::from_secs(30));
    hs.extend(more);
    let top = net.height(0);
    assert!(top > changed_at + 1);
    for h in (changed_at + 1)..=top {
        let (_, b) = net.get(0, &format!("/v1/blocks/{h}"));
        let signers: Vec<&str> = b["certificate"]["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["public_key"].as_str().unwrap())
            .collect();
        assert!(
            removed.iter().all(|k| !signers.contains(&k.as_str())),
            "height {h} counted a removed validator"
        );
        assert!(
            signers.len() >= 2,
            "height {h}: {} signatures, the quorum of two is two",
            signers.len()
        );
    }
    net.assert_consistent(&[0, 1], &hs);
}

/// Contract blocks are re-executed by every bft validator before it votes:
/// WASM and EVM execution must be deterministic for the chain to go on, and
/// every node must end with the same blocks (headers commit to the state
/// and receipts roots) and answer queries alike.
#[test]
fn bft_validators_agree_on_contract_execution() {
    let dir = tempfile::tempdir().unwrap();
    let net = Testnet::init(dir.path(), "bft", 4);
    let key = net.dir.join("dev-keys/dev-0.key").display().to_string();
    let contracts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts");
    let c = |rel: &str| contracts.join(rel).display().to_string();
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let notary = ok(net.cli(&[
        "contract",
        "deploy",
        "--key",
        &key,
        "--wasm",
        &c("notary/notary.wasm"),
    ]));
    ok(net.cli(&[
        "contract",
        "call",
        "--key",
        &key,
        "--address",
        &notary,
        "--method",
        "register",
        "--args",
        r#"["0xab", "on four nodes"]"#,
        "--wait",
    ]));
    let abi = c("token/Token.abi");
    let token = ok(net.cli(&[
        "contract",
        "deploy",
        "--key",
        &key,
        "--evm",
        &c("token/Token.bin"),
        "--abi",
        &abi,
        "--args",
        r#"["T", "T", "1000"]"#,
    ]));
    ok(net.cli(&[
        "contract",
        "call",
        "--key",
        &key,
        "--abi",
        &abi,
        "--address",
        &token,
        "--method",
        "transfer",
        "--args",
        r#"["0x00000000000000000000000000000000000000e1", "7"]"#,
        "--wait",
    ]));
    // An Ethereum-signed payment through node 2's JSON-RPC.
    let eth = tongtian_crypto::eth::EthKey::dev_accounts(1).remove(0);
    let raw = tongtian_types::eth::sign_eip1559(
        &eth,
        CHAIN_ID,
        0,
        1,
        21_000,
        Some(Address([0xe2; 20])),
        9,
        &[],
    );
    let sent: Value = http()
        .post(format!("{}/eth", net.url(2)))
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction",
            "params": [format!("0x{}", hex::encode(raw))]}),
        )
        .send()
        .unwrap()
        .json()
        .unwrap();
    let eth_hash: H256 = sent["result"].as_str().unwrap().parse().unwrap();
    let receipts = net.wait_receipts(2, &[eth_hash], Duration::from_secs(30));
    assert_eq!(receipts[&eth_hash]["status"]["status"], "success");
    // Let every node reach the same height, then compare chains.
    let deadline = Instant::now() + Duration::from_secs(30);
    let target = net.height(0).max(net.height(2));
    while (0..4).any(|i| net.height(i) < target) {
        assert!(Instant::now() < deadline, "nodes did not catch up");
        std::thread::sleep(Duration::from_millis(100));
    }
    net.assert_consistent(&[0, 1, 2, 3], &[eth_hash]);
    for i in 0..4 {
        let q = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": ["0xe2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2", "latest"]});
        let v: Value = http()
            .post(format!("{}/eth", net.url(i)))
            .json(&q)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(v["result"], "0x9", "node {i}");
    }
    let (_, events) = net.get(3, &format!("/v1/events?emitter={notary}"));
    assert_eq!(events[0]["event"]["name"], "registered");
}

/// An idle testnet still makes a block about every second (as `tongtian
/// dev` does), so Ethereum clients waiting for "the next block" are not
/// left hanging; every node agrees on those blocks.
#[test]
fn idle_testnets_make_empty_blocks_and_agree() {
    for engine in ["raft", "bft"] {
        let dir = tempfile::tempdir().unwrap();
        let net = Testnet::init(dir.path(), engine, 4);
        let start: Vec<u64> = (0..4).map(|i| net.height(i)).collect();
        std::thread::sleep(Duration::from_millis(3_500));
        for (i, h) in start.iter().enumerate() {
            let now = net.height(i);
            assert!(
                now >= h + 2,
                "{engine} node {i}: height {h} -> {now} while idle"
            );
        }
        net.assert_consistent(&[0, 1, 2, 3], &[]);
    }
}

/// Send a signal to node `i`'s process.
fn signal(t: &Testnet, i: usize, sig: &str) {
    let pid = t.nodes[i].as_ref().expect("node is running").id();
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill {sig} {pid}");
}

/// Wait until every node of `nodes` is at `height` or above.
fn wait_height(t: &Testnet, nodes: &[usize], height: u64, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    while nodes.iter().any(|&i| t.height(i) < height) {
        assert!(
            Instant::now() < deadline,
            "{what}: heights {:?}, wanted {height}",
            nodes.iter().map(|&i| t.height(i)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Faults a trusted BFT network passes: one node frozen with SIGSTOP for
/// 30 s while the other three go on, then SIGCONT, and it rejoins; then two
/// of four killed, and the remaining two make no block (no quorum) and do
/// not fork; both restarted, every node catches up, and every receipted
/// transaction is on every node exactly once.
#[test]
fn bft_freeze_and_two_down_halt_without_fork_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::init(dir.path(), "bft", 4);
    let k = t.dev_key(0);
    let mut nonce = 0;
    let mut committed: Vec<H256> = Vec::new();
    let mut send = |t: &Testnet, node: usize, n: u64| -> Vec<H256> {
        let txs = transfers(&k, nonce, n);
        nonce += n;
        t.submit(node, &txs)
    };
    let first = send(&t, 0, 20);
    t.wait_receipts(0, &first, Duration::from_secs(30));
    committed.extend(&first);

    // Node 3 frozen for 30 s: the others keep committing.
    signal(&t, 3, "-STOP");
    let frozen_at = t.height(0);
    let during = send(&t, 1, 20);
    t.wait_receipts(1, &during, Duration::from_secs(30));
    committed.extend(&during);
    std::thread::sleep(Duration::from_secs(30));
    let moved_on = t.height(0);
    assert!(
        moved_on > frozen_at + 5,
        "three of four made too few blocks: {frozen_at} -> {moved_on}"
    );
    signal(&t, 3, "-CONT");
    wait_height(
        &t,
        &[3],
        moved_on,
        Duration::from_secs(60),
        "node 3 after SIGCONT",
    );
    t.assert_consistent(&[0, 1, 2, 3], &committed);

    // Two of four down: no quorum, so no block, and no fork.
    t.kill(1);
    t.kill(2);
    std::thread::sleep(Duration::from_secs(2));
    let halted = [t.height(0), t.height(3)];
    let stuck = send(&t, 0, 5);
    std::thread::sleep(Duration::from_secs(6));
    let later = [t.height(0), t.height(3)];
    assert!(
        later[0] <= halted[0] + 1 && later[1] <= halted[1] + 1,
        "blocks without a quorum: {halted:?} -> {later:?}"
    );
    t.assert_consistent(&[0, 3], &committed);

    // Both back: every node catches up, the held transactions commit.
    t.start(1);
    t.start(2);
    t.wait_ready(1);
    t.wait_ready(2);
    let top = later[0].max(later[1]) + 3;
    wait_height(
        &t,
        &[0, 1, 2, 3],
        top,
        Duration::from_secs(90),
        "after the restart",
    );
    t.wait_receipts(2, &stuck, Duration::from_secs(60));
    committed.extend(&stuck);
    t.assert_consistent(&[0, 1, 2, 3], &committed);
}

/// The CLI against node `i`.
fn cli_at(t: &Testnet, i: usize, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(["--node", &t.url(i)])
        .args(args)
        .output()
        .unwrap()
}

/// Four organisations, one node each, on a BFT main chain. A vote creates
/// `trade` (bft, SM suite, organisations 1-3) and `trace` (raft, standard,
/// all four); each runs on exactly the nodes it names, takes transfers,
/// and every member agrees on its blocks; a non-member votes in vain and
/// a second vote by one organisation is refused; a node killed under load
/// restarts into all its chains; a vote stops `trace` and every node stops it.
#[test]
fn sub_chains_are_created_by_vote_and_run_on_their_members() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::init(dir.path(), "bft", 4);
    let admin = |j: usize| {
        dir.path()
            .join(format!("orgs/org-{j}/admin.key"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let orgs = ok_json(t.cli(&["org", "list", "--json"]));
    assert_eq!(orgs.as_array().unwrap().len(), 4, "{orgs}");
    // An SM account funded in trade's genesis.
    let sm_key = dir.path().join("trader.key");
    let k = ok_json(t.cli(&[
        "key",
        "new",
        "--suite",
        "sm",
        "--out",
        sm_key.to_str().unwrap(),
        "--json",
    ]));
    let trader = k["address"].as_str().unwrap().to_string();
    let fund = format!("{trader}=5000000");
    let p = ok_json(cli_at(
        &t,
        1,
        &[
            "gov",
            "propose",
            "create-chain",
            "--name",
            "trade",
            "--engine",
            "bft",
            "--suite",
            "sm",
            "--orgs",
            "org-1,org-2,org-3",
            "--fund",
            &fund,
            "--key",
            &admin(1),
            "--json",
        ],
    ));
    let trade_id = p["proposal"].as_u64().unwrap();
    assert_eq!(p["proposal_status"], "open");
    // One more yes is 2 of 4: not yet.
    let v = ok_json(cli_at(
        &t,
        2,
        &[
            "gov",
            "vote",
            &trade_id.to_string(),
            "yes",
            "--key",
            &admin(2),
            "--json",
        ],
    ));
    assert_eq!(v["proposal_status"], "open", "{v}");
    // A second vote by the same organisation is refused (non-zero exit).
    let again = cli_at(
        &t,
        2,
        &[
            "gov",
            "vote",
            &trade_id.to_string(),
            "yes",
            "--key",
            &admin(2),
            "--json",
        ],
    );
    assert!(!again.status.success());
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["error"]["code"], "already_voted", "{again}");
    // A non-member's vote is refused.
    let dev = dir.path().join("dev-keys/dev-0.key");
    let out = cli_at(
        &t,
        0,
        &[
            "gov",
            "vote",
            &trade_id.to_string(),
            "yes",
            "--key",
            dev.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(!out.status.success());
    let created = Instant::now();
    let v = ok_json(cli_at(
        &t,
        3,
        &[
            "gov",
            "vote",
            &trade_id.to_string(),
            "yes",
            "--key",
            &admin(3),
            "--json",
        ],
    ));
    assert_eq!(v["proposal_status"], "executed", "{v}");
    let shown = ok_json(t.cli(&["gov", "show", &trade_id.to_string(), "--json"]));
    assert_eq!(shown["status"], "executed");
    assert_eq!(shown["tally"]["yes"], 3);

    // trace: all four organisations.
    let p = ok_json(t.cli(&[
        "gov",
        "propose",
        "create-chain",
        "--name",
        "trace",
        "--engine",
        "raft",
        "--orgs",
        "org-0,org-1,org-2,org-3",
        "--key",
        &admin(0),
        "--json",
    ]));
    let trace_id = p["proposal"].as_u64().unwrap().to_string();
    for j in 1..3 {
        ok_json(cli_at(
            &t,
            j,
            &[
                "gov",
                "vote",
                &trace_id,
                "yes",
                "--key",
                &admin(j),
                "--json",
            ],
        ));
    }

    for i in 1..4 {
        wait_chain_height(&t, i, "trade", 1, 60);
    }
    eprintln!(
        "trade: last vote to a first block on all three members in {:?}",
        created.elapsed()
    );
    for i in 0..4 {
        wait_chain_height(&t, i, "trace", 1, 60);
    }
    // trade is not hosted by node 0, which still lists it.
    let (code, err) = t.get(0, "/v1/chains/trade/status");
    assert_eq!((code, err["code"].as_str()), (404, Some("unknown_chain")));
    let list = ok_json(t.cli(&["chain", "list", "--json"]));
    let trade = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "trade")
        .unwrap()
        .clone();
    assert_eq!(trade["hosted"], false);
    assert_eq!(trade["engine"], "bft");
    assert_eq!(trade["suite"], "sm");
    assert_eq!(
        trade["orgs"],
        serde_json::json!(["org-1", "org-2", "org-3"])
    );
    assert!(node0_log_has_no_trade_traffic(dir.path()));

    // Transfers on both sub-chains, through different members.
    let to = "0x00000000000000000000000000000000000000f1";
    let sent = ok_json(cli_at(
        &t,
        2,
        &[
            "--chain",
            "trade",
            "transfer",
            "--key",
            sm_key.to_str().unwrap(),
            "--to",
            to,
            "--amount",
            "77",
            "--wait",
            "--json",
        ],
    ));
    assert_eq!(sent["status"], "success", "{sent}");
    let dev1 = dir.path().join("dev-keys/dev-1.key");
    // trace funds no one: a dev account has nothing there and cannot pay.
    let out = cli_at(
        &t,
        0,
        &[
            "--chain",
            "trace",
            "transfer",
            "--key",
            dev1.to_str().unwrap(),
            "--to",
            to,
            "--amount",
            "1",
            "--json",
        ],
    );
    assert!(!out.status.success(), "an unfunded account paid on trace");
    // Kill node 2 (a member of all three chains) under load. trade has
    // three validators, so BFT needs all of them and halts; the main chain
    // and trace (four each) go on. After the restart node 2 runs all its
    // chains again and trade resumes.
    let mut load = vec![sent["tx_hash"].as_str().unwrap().to_string()];
    for n in 0..5 {
        let out = cli_at(
            &t,
            1,
            &[
                "--chain",
                "trade",
                "transfer",
                "--key",
                sm_key.to_str().unwrap(),
                "--to",
                to,
                "--amount",
                "1",
                "--nonce",
                &(1 + n).to_string(),
                "--json",
            ],
        );
        load.push(ok_json(out)["tx_hash"].as_str().unwrap().to_string());
    }
    t.kill(2);
    let main_target = t.height(0) + 2;
    let deadline = Instant::now() + Duration::from_secs(60);
    while t.height(1) < main_target {
        assert!(
            Instant::now() < deadline,
            "the main chain stalled with one node down"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let trace_h = t.get(0, "/v1/chains/trace/status").1["height"]
        .as_u64()
        .unwrap();
    wait_chain_height(&t, 1, "trace", trace_h + 2, 60);
    t.start(2);
    t.wait_ready(2);
    wait_chain_height(&t, 2, "trace", trace_h + 2, 60);
    let target = t.get(1, "/v1/chains/trade/status").1["height"]
        .as_u64()
        .unwrap()
        + 2;
    for i in 1..4 {
        wait_chain_height(&t, i, "trade", target, 90);
    }
    let acct = t.get(3, &format!("/v1/chains/trade/accounts/{to}")).1;
    assert_eq!(acct["balance"], "82", "{acct}");
    // Every receipted transaction is in exactly one place, the same on
    // every member, and its block lists it once.
    for h in &load {
        let places: Vec<(Value, Value)> = (1..4)
            .map(|i| {
                let (code, r) = t.get(i, &format!("/v1/chains/trade/receipts/{h}"));
                assert_eq!(code, 200, "node {i}: {r}");
                (r["height"].clone(), r["index"].clone())
            })
            .collect();
        assert!(places.iter().all(|p| *p == places[0]), "{h}: {places:?}");
        let (_, block) = t.get(1, &format!("/v1/chains/trade/blocks/{}", places[0].0));
        let listed = block
            .to_string()
            .matches(h.trim_start_matches("0x"))
            .count();
        assert!(listed >= 1, "{h} not in its block: {block}");
    }
    // Every member agrees on trade's blocks.
    let h = target;
    let hashes: Vec<Value> = (1..4)
        .map(|i| t.get(i, &format!("/v1/chains/trade/blocks/{h}")).1["hash"].clone())
        .collect();
    assert!(
        hashes.iter().all(|x| *x == hashes[0] && x.is_string()),
        "{hashes:?}"
    );

    // Stop trace by vote: every node stops it.
    let p = ok_json(t.cli(&[
        "gov",
        "propose",
        "stop-chain",
        "--name",
        "trace",
        "--key",
        &admin(0),
        "--json",
    ]));
    let stop_id = p["proposal"].as_u64().unwrap().to_string();
    for j in 1..3 {
        ok_json(cli_at(
            &t,
            j,
            &["gov", "vote", &stop_id, "yes", "--key", &admin(j), "--json"],
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while (0..4).any(|i| t.get(i, "/v1/chains/trace/status").0 != 404) {
        assert!(Instant::now() < deadline, "trace did not stop everywhere");
        std::thread::sleep(Duration::from_millis(100));
    }
    // trade goes on.
    let h = t.get(1, "/v1/chains/trade/status").1["height"]
        .as_u64()
        .unwrap();
    wait_chain_height(&t, 3, "trade", h, 30);

    // Removing an organisation by vote disconnects its node everywhere
    // (more than half the weight: org-0, org-1 and org-2).
    let p = ok_json(t.cli(&[
        "gov",
        "propose",
        "remove-org",
        "--id",
        "org-3",
        "--key",
        &admin(0),
        "--json",
    ]));
    let rm = p["proposal"].as_u64().unwrap().to_string();
    ok_json(cli_at(
        &t,
        1,
        &["gov", "vote", &rm, "yes", "--key", &admin(1), "--json"],
    ));
    let v = ok_json(cli_at(
        &t,
        2,
        &["gov", "vote", &rm, "yes", "--key", &admin(2), "--json"],
    ));
    assert_eq!(v["proposal_status"], "executed", "{v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while (0..3).any(|i| t.status(i).is_none_or(|s| s["peers"] != 2)) {
        assert!(Instant::now() < deadline, "org-3's node is still connected");
        std::thread::sleep(Duration::from_millis(100));
    }
    let orgs = ok_json(t.cli(&["org", "list", "--json"]));
    assert_eq!(orgs.as_array().unwrap().len(), 3);
}

/// Wait until node `i` serves `chain` at height `h` or more.
fn wait_chain_height(t: &Testnet, i: usize, chain: &str, h: u64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (code, st) = t.get(i, &format!("/v1/chains/{chain}/status"));
        if code == 200 && st["height"].as_u64().unwrap_or(0) >= h {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {i}: {chain} did not reach {h}: {code} {st}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Node 0 (not a member of trade) never logged anything about trade.
fn node0_log_has_no_trade_traffic(dir: &Path) -> bool {
    let log = std::fs::read_to_string(dir.join("node-0.log")).unwrap();
    !log.contains("chain=trade") && !log.contains("sub-chain started chain=trade")
}

/// A standalone relayer process.
struct Relayer(Child);

impl Relayer {
    fn start(t: &Testnet, keys: &[&Path], log: &Path) -> Relayer {
        let mut cmd = Command::new(bin());
        cmd.args(["--json", "relay", "start"]);
        for i in 0..t.nodes.len() {
            cmd.args(["--node", &t.url(i)]);
        }
        for k in keys {
            cmd.arg("--key").arg(k);
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        Relayer(cmd.stdout(out).stderr(Stdio::null()).spawn().unwrap())
    }
}

impl Drop for Relayer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn voucher_balance(t: &Testnet, i: usize, chain: &str, a: &str, denom: &str) -> u128 {
    let (code, v) = t.get(
        i,
        &format!("/v1/chains/{chain}/modules/transfer/balances/{a}"),
    );
    assert_eq!(code, 200, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .find(|b| b["denom"] == denom)
        .map_or(0, |b| b["amount"].as_str().unwrap().parse().unwrap())
}

#[test]
fn a_standalone_relayer_carries_tokens_and_resumes_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let t = Testnet::init(dir.path(), "bft", 4);
    let admin = |j: usize| {
        dir.path()
            .join(format!("orgs/org-{j}/admin.key"))
            .to_str()
            .unwrap()
            .to_string()
    };
    // The relayer's SM key, funded in trade's genesis (it pays its fees
    // there); on the main chain it signs with dev-0, which is funded.
    let sm_key = dir.path().join("relayer-sm.key");
    let k = ok_json(t.cli(&[
        "key",
        "new",
        "--suite",
        "sm",
        "--out",
        sm_key.to_str().unwrap(),
        "--json",
    ]));
    let sm_addr = k["address"].as_str().unwrap().to_string();
    let fund = format!("{sm_addr}=1000000000000");
    let p = ok_json(cli_at(
        &t,
        1,
        &[
            "gov",
            "propose",
            "create-chain",
            "--name",
            "trade",
            "--engine",
            "bft",
            "--suite",
            "sm",
            "--orgs",
            "org-1,org-2,org-3",
            "--fund",
            &fund,
            "--key",
            &admin(1),
            "--json",
        ],
    ));
    let id = p["proposal"].as_u64().unwrap().to_string();
    for j in [2, 3] {
        ok_json(cli_at(
            &t,
            j,
            &["gov", "vote", &id, "yes", "--key", &admin(j), "--json"],
        ));
    }
    for i in 1..4 {
        wait_chain_height(&t, i, "trade", 1, 60);
    }
    let dev0 = dir.path().join("dev-keys/dev-0.key");
    let dev0_addr = address(&t.dev_key(0)).to_string();
    let log = dir.path().join("relayer.log");
    let relayer = Relayer::start(&t, &[&dev0, &sm_key], &log);

    // Main -> trade, waited for through node 1 (which hosts both).
    let sent = ok_json(cli_at(
        &t,
        1,
        &[
            "xchain",
            "transfer",
            "--from-chain",
            "main",
            "--to-chain",
            "trade",
            "--to",
            &sm_addr,
            "--amount",
            "1000",
            "--key",
            dev0.to_str().unwrap(),
            "--wait",
            "--json",
        ],
    ));
    assert_eq!(sent["status"], "acknowledged", "{sent}");
    let voucher = sent["denom_on_destination"].as_str().unwrap().to_string();
    assert_eq!(voucher_balance(&t, 2, "trade", &sm_addr, &voucher), 1000);

    // Kill the relayer with a packet in flight; a new one picks it up
    // from what the chains say.
    drop(relayer);
    let sent = ok_json(cli_at(
        &t,
        0,
        &[
            "xchain",
            "transfer",
            "--from-chain",
            "main",
            "--to-chain",
            "trade",
            "--to",
            &sm_addr,
            "--amount",
            "500",
            "--key",
            dev0.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(sent["status"], "sent", "{sent}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(voucher_balance(&t, 2, "trade", &sm_addr, &voucher), 1000);
    let _relayer = Relayer::start(&t, &[&dev0, &sm_key], &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    while voucher_balance(&t, 2, "trade", &sm_addr, &voucher) != 1500 {
        assert!(
            Instant::now() < deadline,
            "the restarted relayer did not deliver"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Back to main, from node 3.
    let back = ok_json(cli_at(
        &t,
        3,
        &[
            "xchain",
            "transfer",
            "--from-chain",
            "trade",
            "--to-chain",
            "main",
            "--to",
            &dev0_addr,
            "--amount",
            "600",
            "--denom",
            &voucher,
            "--key",
            sm_key.to_str().unwrap(),
            "--wait",
            "--json",
        ],
    ));
    assert_eq!(back["status"], "acknowledged", "{back}");
    // Invariant across the two chains, read from different nodes.
    let (_, supply) = t.get(
        2,
        &format!("/v1/chains/trade/modules/transfer/supply/{voucher}"),
    );
    let channel = sent["packet"]["source_channel"].as_str().unwrap();
    let (_, escrow) = t.get(0, &format!("/v1/modules/transfer/escrow/{channel}/native"));
    assert_eq!(supply, "900");
    assert_eq!(escrow, "900");
    // The relayer reported its progress as JSON lines.
    let lines = std::fs::read_to_string(&log).unwrap();
    assert!(lines.lines().any(|l| l.contains("\"received\"")), "{lines}");
}
