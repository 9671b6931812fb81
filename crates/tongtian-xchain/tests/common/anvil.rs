//! Anvil, Foundry's dev EVM chain, installed from npm into `tests/anvil`
//! and run on a free 127.0.0.1 port: the external chain of the attested
//! client tests.

#![allow(clippy::unwrap_used, dead_code)]

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tongtian_types::H256;

/// Anvil on a free 127.0.0.1 port, stopped when dropped.
pub struct Anvil {
    child: Child,
    /// Its JSON-RPC URL.
    pub url: String,
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn anvil() -> Anvil {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/anvil");
    let bin = dir.join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    if !bin.exists() {
        let st = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .expect("npm is needed to install anvil for the attested-client test");
        assert!(st.success(), "npm ci in tests/anvil failed");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--silent",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start anvil");
    let a = Anvil {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while rpc_try(&a, "eth_chainId", json!([])).is_none() {
        assert!(Instant::now() < deadline, "anvil did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    a
}

pub fn rpc_try(a: &Anvil, method: &str, params: Value) -> Option<Value> {
    let r: Value = reqwest::blocking::Client::new()
        .post(&a.url)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .ok()?
        .json()
        .ok()?;
    r.get("result").cloned()
}

pub fn rpc(a: &Anvil, method: &str, params: Value) -> Value {
    rpc_try(a, method, params).unwrap_or_else(|| panic!("{method} failed"))
}

pub fn quantity(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

pub fn word(v: &Value) -> H256 {
    let b = hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap();
    H256(b.try_into().unwrap())
}

/// Send transaction `tx` (an `eth_sendTransaction` object) and wait for
/// its receipt (anvil mines at once; the receipt may lag a moment).
pub fn send_tx(a: &Anvil, tx: Value) -> Value {
    let hash = rpc(a, "eth_sendTransaction", json!([tx]));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = rpc(a, "eth_getTransactionReceipt", json!([hash]));
        if !r.is_null() {
            return r;
        }
        assert!(Instant::now() < deadline, "{hash} not mined");
        std::thread::sleep(Duration::from_millis(20));
    }
}
