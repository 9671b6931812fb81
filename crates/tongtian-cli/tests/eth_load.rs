//! Ethereum clients under load: concurrent senders whose nonces reach the
//! node out of order, as they do from any multi-threaded client or from
//! JSON-RPC batches sent in parallel.

#![allow(clippy::unwrap_used)]

mod common;

use common::DevNode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tongtian_crypto::eth::EthKey;
use tongtian_types::eth::{create_address, sign_eip1559};
use tongtian_types::Address;

const CHAIN_ID: u64 = 8645;
const SENDERS: usize = 8;
const TRANSFERS: usize = 10_000;
const THREADS: usize = 4;
const BATCH: usize = 100;

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Post a JSON-RPC request or batch; the answer must be HTTP 200.
fn rpc(c: &reqwest::blocking::Client, node: &str, body: &Value) -> Value {
    let r = c.post(format!("{node}/eth")).json(body).send().unwrap();
    assert_eq!(r.status(), 200);
    r.json().unwrap()
}

fn call(c: &reqwest::blocking::Client, node: &str, method: &str, params: Value) -> Value {
    let v = rpc(
        c,
        node,
        &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
    );
    assert!(v.get("error").is_none(), "{method}: {v}");
    v["result"].clone()
}

fn send_raw(c: &reqwest::blocking::Client, node: &str, raw: &[u8]) -> Value {
    call(c, node, "eth_sendRawTransaction", json!([hex0x(raw)]))
}

fn hex0x(b: &[u8]) -> String {
    format!("0x{}", hex::encode(b))
}

fn quantity(v: &Value) -> u128 {
    u128::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// `transfer(to, amount)` calldata of an ERC-20.
fn transfer_call(to: &Address, amount: u128) -> Vec<u8> {
    let mut data = vec![0xa9, 0x05, 0x9c, 0xbb];
    data.extend_from_slice(&[0; 12]);
    data.extend_from_slice(&to.0);
    data.extend_from_slice(&[0; 16]);
    data.extend_from_slice(&amount.to_be_bytes());
    data
}

/// `balanceOf(who)` of the ERC-20 at `token`.
fn token_balance(
    c: &reqwest::blocking::Client,
    node: &str,
    token: &Address,
    who: &Address,
) -> u128 {
    let mut data = vec![0x70, 0xa0, 0x82, 0x31];
    data.extend_from_slice(&[0; 12]);
    data.extend_from_slice(&who.0);
    let out = call(
        c,
        node,
        "eth_call",
        json!([{"to": token.to_string(), "data": hex0x(&data)}, "latest"]),
    );
    let word = out.as_str().unwrap().trim_start_matches("0x");
    u128::from_str_radix(&word[word.len() - 32..], 16).unwrap()
}

/// Wait until `who`'s committed nonce reaches `n`.
fn wait_nonce(c: &reqwest::blocking::Client, node: &str, who: &Address, n: u128, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = quantity(&call(
            c,
            node,
            "eth_getTransactionCount",
            json!([who.to_string(), "latest"]),
        ));
        if got >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{who}: nonce {got} of {n} after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// 10,000 ERC-20 transfers of 8 senders, sent from 4 threads in JSON-RPC
/// batches with each sender's nonces split across the threads (two of
/// them walk their share from the highest nonce down): every transfer is
/// admitted, every one commits with a successful receipt, and every
/// balance comes out right. Before the pool held far-ahead nonces, most of
/// such a burst was refused as `nonce too high` and the rest then waited
/// behind the gaps forever.
#[test]
fn interleaved_nonces_from_concurrent_clients_all_commit() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), "standard");
    let url = node.url();
    let c = http();
    let keys = EthKey::dev_accounts(SENDERS as u32 + 1);
    let addr = |k: &EthKey| Address(k.address());
    let deployer = &keys[0];
    let senders = &keys[1..];
    let price = quantity(&call(&c, &url, "eth_gasPrice", json!([])));

    // Deploy the example ERC-20 (its whole supply to the deployer) and
    // give each sender enough for its share.
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = std::fs::read_to_string(repo.join("contracts/token/Token.bin")).unwrap();
    let abi = tongtian_vm_evm::abi::parse_abi(
        &std::fs::read_to_string(repo.join("contracts/token/Token.abi")).unwrap(),
    )
    .unwrap();
    let mut init = hex::decode(bin.trim().trim_start_matches("0x")).unwrap();
    let supply: u128 = 1_000_000_000;
    init.extend(
        tongtian_vm_evm::abi::encode_constructor(&abi, &json!(["Tong", "TT", supply.to_string()]))
            .unwrap(),
    );
    let raw = sign_eip1559(deployer, CHAIN_ID, 0, price, 3_000_000, None, 0, &init);
    send_raw(&c, &url, &raw);
    let token = create_address(&addr(deployer), 0);
    let per_sender = TRANSFERS / SENDERS;
    let share: u128 = 1_000_000;
    for (i, s) in senders.iter().enumerate() {
        let raw = sign_eip1559(
            deployer,
            CHAIN_ID,
            1 + i as u64,
            price,
            100_000,
            Some(token),
            0,
            &transfer_call(&addr(s), share),
        );
        send_raw(&c, &url, &raw);
    }
    wait_nonce(
        &c,
        &url,
        &addr(deployer),
        1 + SENDERS as u128,
        Duration::from_secs(60),
    );
    for s in senders {
        assert_eq!(token_balance(&c, &url, &token, &addr(s)), share);
    }

    // Sign the burst: sender s's nonce n pays recipient (s + n) % 16 an
    // amount 1 + n % 7.
    let recipients: Vec<Address> = (0..16u8).map(|i| Address([0x40 + i; 20])).collect();
    let mut expected: HashMap<Address, u128> = HashMap::new();
    let mut work: Vec<Vec<Vec<u8>>> = vec![Vec::new(); THREADS];
    for (si, s) in senders.iter().enumerate() {
        for n in 0..per_sender {
            let to = recipients[(si + n) % recipients.len()];
            let amount = 1 + (n % 7) as u128;
            *expected.entry(to).or_default() += amount;
            *expected.entry(addr(s)).or_insert(share) -= amount;
            let raw = sign_eip1559(
                s,
                CHAIN_ID,
                n as u64,
                price,
                100_000,
                Some(token),
                0,
                &transfer_call(&to, amount),
            );
            work[n % THREADS].push(raw);
        }
    }
    for (t, w) in work.iter_mut().enumerate() {
        // Threads 1 and 3 send their share highest nonce first.
        if t % 2 == 1 {
            w.reverse();
        }
    }

    // Four threads, each posting JSON-RPC batches of 100 raw transactions.
    let started = Instant::now();
    let refused: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = work
            .iter()
            .map(|w| {
                let url = url.clone();
                scope.spawn(move || {
                    let c = http();
                    let mut refused = Vec::new();
                    for (b, chunk) in w.chunks(BATCH).enumerate() {
                        let body: Vec<Value> = chunk
                            .iter()
                            .enumerate()
                            .map(|(i, raw)| {
                                json!({"jsonrpc": "2.0", "id": b * BATCH + i,
                                    "method": "eth_sendRawTransaction",
                                    "params": [hex0x(raw)]})
                            })
                            .collect();
                        let answers = rpc(&c, &url, &Value::Array(body));
                        for a in answers.as_array().unwrap() {
                            if let Some(e) = a.get("error") {
                                refused.push(e.to_string());
                            }
                        }
                    }
                    refused
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let refused: Vec<String> = refused.into_iter().flatten().collect();
    assert!(
        refused.is_empty(),
        "{} of {TRANSFERS} refused, e.g. {}",
        refused.len(),
        refused[0]
    );
    for s in senders {
        wait_nonce(
            &c,
            &url,
            &addr(s),
            per_sender as u128,
            Duration::from_secs(240),
        );
    }
    eprintln!(
        "{TRANSFERS} transfers of {SENDERS} senders from {THREADS} threads committed in {:?}",
        started.elapsed()
    );

    // Every transfer has a successful receipt, and every balance is what
    // the transfers add up to.
    let hashes: Vec<String> = work
        .iter()
        .flatten()
        .map(|raw| hex0x(&tongtian_crypto::eth::keccak256(raw)))
        .collect();
    for chunk in hashes.chunks(BATCH) {
        let body: Vec<Value> = chunk
            .iter()
            .map(|h| json!({"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionReceipt", "params": [h]}))
            .collect();
        for (h, a) in chunk
            .iter()
            .zip(rpc(&c, &url, &Value::Array(body)).as_array().unwrap())
        {
            assert_eq!(a["result"]["status"], "0x1", "receipt of {h}: {a}");
        }
    }
    for (who, want) in &expected {
        assert_eq!(
            token_balance(&c, &url, &token, who),
            *want,
            "token balance of {who}"
        );
    }
    let status: Value = c
        .get(format!("{url}/v1/status"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(status["mempool_queued"], 0, "{status}");
    assert_eq!(status["mempool_queued_evicted"], 0, "{status}");
}
