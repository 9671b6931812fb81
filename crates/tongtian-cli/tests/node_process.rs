//! End-to-end tests against real `tongtian dev` processes over HTTP and
//! through the CLI, including a SIGKILL crash test.

#![allow(clippy::unwrap_used)]

mod common;

use common::{address, transfer, DevNode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tongtian_crypto::{suite, Keypair, SuiteId};
use tongtian_types::api::AccountProofView;
use tongtian_types::codec::encode;
use tongtian_types::{Action, Address, SignedTransaction, Transaction, H256};

const CHAIN_ID: u64 = 8645;

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn raw_hex(tx: &SignedTransaction) -> String {
    format!("0x{}", hex::encode(encode(tx)))
}

/// POST a transaction; returns (status, body).
fn submit(node: &DevNode, raw: &str) -> (u16, Value) {
    let r = http()
        .post(format!("{}/v1/txs", node.url()))
        .json(&json!({ "raw": raw }))
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap())
}

fn get(node: &DevNode, path: &str) -> (u16, Value) {
    let r = http()
        .get(format!("{}{}", node.url(), path))
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap())
}

fn account(node: &DevNode, a: &Address) -> (u128, u64) {
    let (s, v) = get(node, &format!("/v1/accounts/{a}"));
    assert_eq!(s, 200, "{v}");
    (
        v["balance"].as_str().unwrap().parse().unwrap(),
        v["nonce"].as_u64().unwrap(),
    )
}

fn wait_receipt(node: &DevNode, hash: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, v) = get(node, &format!("/v1/receipts/{hash}"));
        if s == 200 {
            return v;
        }
        assert_eq!(s, 404, "{v}");
        assert!(Instant::now() < deadline, "no receipt for {hash}");
        std::thread::sleep(Duration::from_millis(30));
    }
}

fn assert_err(resp: (u16, Value), status: u16, code: &str) {
    assert_eq!(
        resp.0, status,
        "expected HTTP {status} {code}, got {}",
        resp.1
    );
    assert_eq!(resp.1["code"], code, "{}", resp.1);
    assert!(!resp.1["message"].as_str().unwrap().is_empty());
}

#[test]
fn bad_input_gets_specific_errors_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), "standard");
    let k = node.dev_key(0);
    let me = address(&k);
    let to = Address([0x42; 20]);

    // A good transfer first, so there is a used nonce to replay.
    let first = transfer(CHAIN_ID, &k, 0, to, 10);
    let (s, v) = submit(&node, &raw_hex(&first));
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        wait_receipt(&node, v["hash"].as_str().unwrap())["status"]["status"],
        "success"
    );
    let before = (
        account(&node, &me),
        account(&node, &to),
        get(&node, "/v1/status").1["height"].clone(),
    );

    assert_err(submit(&node, "0x0102"), 400, "malformed_tx");
    assert_err(submit(&node, "not hex"), 400, "malformed_tx");
    assert_err(
        submit(&node, &raw_hex(&transfer(CHAIN_ID + 1, &k, 1, to, 1))),
        400,
        "wrong_chain_id",
    );
    let mut forged = transfer(CHAIN_ID, &k, 1, to, 1);
    forged.signature[3] ^= 0x40;
    assert_err(submit(&node, &raw_hex(&forged)), 400, "bad_signature");
    // Someone else's key claiming the transaction.
    let mut stolen = transfer(CHAIN_ID, &k, 1, to, 1);
    stolen.public_key = node.dev_key(1).public_key().to_vec();
    assert_err(submit(&node, &raw_hex(&stolen)), 400, "bad_signature");
    // Replays: the same transaction, and a new one reusing a committed nonce.
    assert_err(submit(&node, &raw_hex(&first)), 409, "already_known");
    assert_err(
        submit(&node, &raw_hex(&transfer(CHAIN_ID, &k, 0, to, 11))),
        400,
        "nonce_too_low",
    );
    // Past a gap a transaction is queued, but only so far ahead.
    assert_err(
        submit(&node, &raw_hex(&transfer(CHAIN_ID, &k, 100_000, to, 1))),
        400,
        "nonce_too_high",
    );
    let pauper = Keypair::generate(SuiteId::Standard);
    assert_err(
        submit(&node, &raw_hex(&transfer(CHAIN_ID, &pauper, 0, to, 1))),
        400,
        "insufficient_funds",
    );
    assert_err(
        submit(
            &node,
            &raw_hex(&transfer(CHAIN_ID, &k, 1, to, u128::MAX / 2)),
        ),
        400,
        "insufficient_funds",
    );
    let big = Transaction {
        chain_id: CHAIN_ID,
        nonce: 1,
        gas_limit: 10_000_000,
        gas_price: 1,
        action: Action::Transfer {
            to,
            amount: 1,
            memo: vec![0u8; 300 * 1024],
        },
    }
    .sign(&k);
    assert_err(submit(&node, &raw_hex(&big)), 413, "oversized_tx");
    let cheap = Transaction {
        chain_id: CHAIN_ID,
        nonce: 1,
        gas_limit: 10,
        gas_price: 1,
        action: Action::Transfer {
            to,
            amount: 1,
            memo: vec![],
        },
    }
    .sign(&k);
    assert_err(
        submit(&node, &raw_hex(&cheap)),
        400,
        "intrinsic_gas_too_low",
    );

    // Malformed API JSON and paths.
    let c = http();
    let url = format!("{}/v1/txs", node.url());
    let r = c
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    assert_err((r.status().as_u16(), r.json().unwrap()), 400, "bad_json");
    let r = c
        .post(&url)
        .json(&json!({ "rawr": "0x00" }))
        .send()
        .unwrap();
    assert_err((r.status().as_u16(), r.json().unwrap()), 400, "bad_json");
    let r = c.post(&url).json(&json!({ "raw": 5 })).send().unwrap();
    assert_err((r.status().as_u16(), r.json().unwrap()), 400, "bad_json");
    let r = c.post(&url).body("{\"raw\":\"0x00\"}").send().unwrap();
    assert_err((r.status().as_u16(), r.json().unwrap()), 415, "bad_json");
    assert_err(get(&node, "/v1/accounts/0x1234"), 400, "bad_address");
    assert_err(get(&node, "/v1/txs/0xzz"), 400, "bad_hash");
    assert_err(
        get(&node, &format!("/v1/txs/{}", H256([9; 32]))),
        404,
        "not_found",
    );
    assert_err(get(&node, "/v1/blocks/99999"), 404, "not_found");
    assert_err(get(&node, "/v1/blocks/tomorrow"), 400, "bad_block_id");
    assert_err(
        get(&node, &format!("/v1/accounts/{me}/proof?height=abc")),
        400,
        "bad_query",
    );
    assert_err(get(&node, "/v1/nothing-here"), 404, "not_found");

    // Batch: per-item answers, good ones admitted.
    let batch = json!({ "raws": ["0x00", raw_hex(&transfer(CHAIN_ID, &k, 1, to, 5)), raw_hex(&transfer(CHAIN_ID, &k, 100_000, to, 5))] });
    let r = c
        .post(format!("{}/v1/txs/batch", node.url()))
        .json(&batch)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["results"][0]["error"]["code"], "malformed_tx");
    let good = v["results"][1]["hash"].as_str().unwrap().to_string();
    assert_eq!(v["results"][2]["error"]["code"], "nonce_too_high");

    // Nothing the rejected inputs carried reached the state.
    assert_eq!(wait_receipt(&node, &good)["status"]["status"], "success");
    let (bal_me, nonce_me) = account(&node, &me);
    let (bal_to, _) = account(&node, &to);
    assert_eq!(
        nonce_me,
        before.0 .1 + 1,
        "only the good batch item was applied"
    );
    assert_eq!(bal_to, before.1 .0 + 5);
    assert!(bal_me < before.0 .0);
    assert_eq!(account(&node, &address(&pauper)), (0, 0));

    // A nonce after a gap is held, not applied, and commits once the gap
    // fills: clients that send several at once cannot promise the order.
    let later = submit(
        &node,
        &raw_hex(&transfer(CHAIN_ID, &k, nonce_me + 1, to, 7)),
    );
    assert_eq!(later.0, 200, "{}", later.1);
    let later = later.1["hash"].as_str().unwrap().to_string();
    assert_eq!(
        get(&node, &format!("/v1/txs/{later}")).1["status"],
        "queued"
    );
    // Geth's txpool namespace shows it as queued, under its nonce.
    let rpc = |method: &str, params: Value| -> Value {
        http()
            .post(format!("{}/eth", node.url()))
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap()["result"]
            .clone()
    };
    assert_eq!(rpc("txpool_status", json!([]))["queued"], "0x1");
    let mine = rpc("txpool_contentFrom", json!([me.to_string()]));
    assert_eq!(
        mine["queued"][(nonce_me + 1).to_string()]["hash"],
        later.as_str()
    );
    assert_eq!(mine["pending"], json!({}));
    let gap = submit(&node, &raw_hex(&transfer(CHAIN_ID, &k, nonce_me, to, 6)));
    assert_eq!(gap.0, 200, "{}", gap.1);
    assert_eq!(wait_receipt(&node, &later)["status"]["status"], "success");
    assert_eq!(account(&node, &me).1, nonce_me + 2);
    assert_eq!(account(&node, &to).0, bal_to + 13);

    // The CLI exits non-zero with a clear message.
    let key0 = node.data_dir.join("dev-keys/dev-0.key");
    let out = node.cli(&[
        "transfer",
        "--key",
        key0.to_str().unwrap(),
        "--to",
        &to.to_string(),
        "--amount",
        "1",
        "--nonce",
        "0",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nonce_too_low"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = node.cli(&[
        "transfer",
        "--key",
        key0.to_str().unwrap(),
        "--to",
        "0xnope",
        "--amount",
        "1",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("is not an address: expected 0x and 40 hex digits"));
    let out = node.cli(&[
        "transfer",
        "--key",
        "/nonexistent.key",
        "--to",
        &to.to_string(),
        "--amount",
        "1",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonexistent.key"));
}

#[test]
fn cli_transfers_proves_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = DevNode::start(&dir.path().join("node"), "sm");
    let keys = node.data_dir.join("dev-keys");
    for n in 0..10 {
        assert!(keys.join(format!("dev-{n}.key")).exists());
    }
    let fresh = dir.path().join("fresh.key");
    let out = node.cli(&[
        "key",
        "new",
        "--out",
        fresh.to_str().unwrap(),
        "--suite",
        "sm",
        "--password",
        "pw",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["suite"], "sm");
    let to = created["address"].as_str().unwrap().to_string();
    let out = node.cli(&[
        "key",
        "show",
        fresh.to_str().unwrap(),
        "--password",
        "pw",
        "--json",
    ]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["address"], created["address"]);
    assert!(!node
        .cli(&[
            "key",
            "show",
            fresh.to_str().unwrap(),
            "--password",
            "wrong"
        ])
        .status
        .success());

    // Absent account: non-inclusion proof.
    let out = node.cli(&["account", "prove", &to, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["exists"], false);
    assert_eq!(p["verified"], true);

    let key0 = keys.join("dev-0.key");
    let out = node.cli(&[
        "transfer",
        "--key",
        key0.to_str().unwrap(),
        "--to",
        &to,
        "--amount",
        "777",
        "--wait",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let receipt: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(receipt["status"], "success");
    let tx_hash = receipt["tx_hash"].as_str().unwrap().to_string();
    let height = receipt["height"].as_u64().unwrap();

    let out = node.cli(&["account", "show", &to, "--json"]);
    let acct: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(acct["balance"], "777");

    let spec = node.data_dir.join("chain-spec.json");
    let out = node.cli(&[
        "account",
        "prove",
        &to,
        "--spec",
        spec.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["account"]["balance"], "777");
    assert_eq!(p["certificate_checked_against"], "spec");

    // A proof tampered with in transit fails the client-side check.
    let (_, v) = get(&node, &format!("/v1/accounts/{to}/proof"));
    let view: AccountProofView = serde_json::from_value(v).unwrap();
    let s = suite(SuiteId::Sm);
    view.proof.verify(s, &view.header.state_root).unwrap();
    let mut lie = view.proof.clone();
    let mut bytes = lie.value.take().unwrap();
    bytes[0] ^= 1;
    lie.value = Some(bytes);
    assert!(lie.verify(s, &view.header.state_root).is_err());

    let out = node.cli(&["tx", "show", &tx_hash, "--json"]);
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["status"], "committed");
    assert_eq!(t["tx_hash"], json!(tx_hash));
    assert_eq!(t["receipt"]["height"], height);
    assert_eq!(t["receipt"]["tx_index"], t["tx_index"]);
    assert_eq!(t["receipt"]["status"], "success");
    let out = node.cli(&["block", "show", &height.to_string(), "--json"]);
    let b: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(b["tx_hashes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h == &json!(tx_hash)));
    assert_eq!(b["certificate"]["signatures"].as_array().unwrap().len(), 1);

    // SIGTERM shuts down cleanly; a restart resumes from disk.
    assert!(node.terminate().success());
    node.restart();
    let (_, st) = get(&node, "/v1/status");
    assert!(st["height"].as_u64().unwrap() >= height);
    assert_eq!(st["suite"], "sm");
    let out = node.cli(&["account", "show", &to, "--json"]);
    let acct: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(acct["balance"], "777");
}

#[test]
fn api_serves_openapi_status_and_block_stream() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), "standard");
    let (s, doc) = get(&node, "/v1/openapi.json");
    assert_eq!(s, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/v1/status",
        "/v1/txs",
        "/v1/txs/batch",
        "/v1/blocks/{id}",
        "/v1/accounts/{address}/proof",
        "/v1/receipts/{hash}",
        "/v1/blocks/stream",
    ] {
        assert!(doc["paths"].get(p).is_some(), "openapi lacks {p}");
    }
    let (_, st) = get(&node, "/v1/status");
    assert_eq!(st["chain_id"], CHAIN_ID);
    assert_eq!(st["consensus"], "solo");
    assert!(st["height"].is_u64());

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use futures_util::StreamExt;
        let client = tongtian_client::Client::new(&node.url());
        let mut blocks = client.blocks().await.unwrap();
        let k = node.dev_key(3);
        let hash = client
            .submit(&transfer(CHAIN_ID, &k, 0, Address([1; 20]), 1))
            .await
            .unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let ev = blocks.next().await.unwrap().unwrap();
                if ev.txs.contains(&hash) {
                    return ev;
                }
            }
        })
        .await
        .unwrap();
        assert!(ev.failed.is_empty());
        let b = client.block(&ev.height.to_string()).await.unwrap();
        assert_eq!(b.hash, ev.hash);
    });
}

/// Admission's signature threads run 10 nice levels below the threads
/// that build and write blocks (which keep the process's own priority).
#[cfg(target_os = "linux")]
#[test]
fn admission_threads_run_below_block_building() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), "standard");
    let tasks = std::path::PathBuf::from(format!("/proc/{}/task", node.pid()));
    // (thread id, name, nice) of every thread; nice is the 19th field of
    // `stat`, the 17th after the parenthesised name.
    let threads: Vec<(u32, String, i64)> = std::fs::read_dir(&tasks)
        .unwrap()
        .map(|t| {
            let t = t.unwrap().path();
            let tid = t.file_name().unwrap().to_str().unwrap().parse().unwrap();
            let name = std::fs::read_to_string(t.join("comm")).unwrap();
            let stat = std::fs::read_to_string(t.join("stat")).unwrap();
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            let nice = after.split(' ').nth(16).unwrap().parse().unwrap();
            (tid, name.trim().to_string(), nice)
        })
        .collect();
    let base = threads.iter().find(|t| t.0 == node.pid()).unwrap().2;
    let (admission, others): (Vec<_>, Vec<_>) = threads
        .iter()
        .partition(|(_, n, _)| n.starts_with("admission-"));
    assert!(!admission.is_empty(), "no admission threads in {threads:?}");
    assert!(
        admission.iter().all(|t| t.2 == (base + 10).min(19)),
        "{threads:?}"
    );
    assert!(others.iter().all(|t| t.2 == base), "{threads:?}");
}

/// Kill the node with SIGKILL several times while it commits under load;
/// after each restart every receipt the client saw must be there, the
/// chain must link up, balances must add up to the genesis supply, and
/// every sender's nonce must equal its committed transactions.
#[test]
fn sigkill_under_load_restarts_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = DevNode::start(&dir.path().join("node"), "standard");
    let senders: Vec<Keypair> = (0..4).map(|n| node.dev_key(n)).collect();
    let recipients: Vec<Address> = (0..3).map(|i| Address([0x10 + i; 20])).collect();
    let total_supply: u128 = 10 * tongtian_node::dev::DEV_BALANCE;
    let mut sender_of: HashMap<H256, usize> = HashMap::new();
    let mut seen_receipts: HashMap<H256, Value> = HashMap::new();
    let c = http();
    let mut rng_state = 0x9e3779b97f4a7c15u64;
    for round in 0..3 {
        // Load: every sender submits batches continuously from its next nonce.
        let mut nonces: Vec<u64> = senders
            .iter()
            .map(|k| account(&node, &address(k)).1)
            .collect();
        let kill_after = Duration::from_millis(600 + (rng_state % 900));
        rng_state = rng_state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let started = Instant::now();
        let mut accepted: Vec<H256> = Vec::new();
        while started.elapsed() < kill_after {
            for (i, k) in senders.iter().enumerate() {
                let txs: Vec<SignedTransaction> = (0..25)
                    .map(|j| {
                        transfer(
                            CHAIN_ID,
                            k,
                            nonces[i] + j,
                            recipients[(i + j as usize) % 3],
                            1 + j as u128,
                        )
                    })
                    .collect();
                let raws: Vec<String> = txs.iter().map(raw_hex).collect();
                let Ok(r) = c
                    .post(format!("{}/v1/txs/batch", node.url()))
                    .json(&json!({ "raws": raws }))
                    .send()
                else {
                    continue;
                };
                let v: Value = r.json().unwrap();
                for (t, item) in txs.iter().zip(v["results"].as_array().unwrap()) {
                    if let Some(h) = item["hash"].as_str() {
                        let h: H256 = h.parse().unwrap();
                        sender_of.insert(h, i);
                        accepted.push(h);
                        nonces[i] = t.tx.nonce + 1;
                    }
                }
            }
            // Collect receipts the node has already returned.
            for h in accepted.iter().rev().take(40) {
                if !seen_receipts.contains_key(h) {
                    let (s, v) = get(&node, &format!("/v1/receipts/{h}"));
                    if s == 200 {
                        seen_receipts.insert(*h, v);
                    }
                }
            }
        }
        node.kill();
        node.restart();

        // Every receipt seen before the kill survived, unchanged.
        for (h, r) in &seen_receipts {
            let (s, v) = get(&node, &format!("/v1/receipts/{h}"));
            assert_eq!(s, 200, "round {round}: receipt of {h} lost");
            assert_eq!(&v, r, "round {round}: receipt of {h} changed");
        }
        // Chain links up; nonces match committed transactions exactly once.
        let (_, st) = get(&node, "/v1/status");
        let height = st["height"].as_u64().unwrap();
        let mut parent: Option<String> = None;
        let mut per_sender = [0u64; 4];
        let mut all: Vec<H256> = Vec::new();
        for h in 0..=height {
            let (s, b) = get(&node, &format!("/v1/blocks/{h}"));
            assert_eq!(s, 200);
            if let Some(p) = &parent {
                assert_eq!(
                    b["header"]["parent_hash"].as_str().unwrap(),
                    p,
                    "block {h} does not link"
                );
            }
            parent = Some(b["hash"].as_str().unwrap().to_string());
            for t in b["tx_hashes"].as_array().unwrap() {
                let t: H256 = t.as_str().unwrap().parse().unwrap();
                all.push(t);
                per_sender[sender_of[&t]] += 1;
            }
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "a transaction was committed twice");
        for (i, k) in senders.iter().enumerate() {
            assert_eq!(
                account(&node, &address(k)).1,
                per_sender[i],
                "round {round}: nonce of sender {i}"
            );
        }
        eprintln!(
            "round {round}: killed after {kill_after:?}; {} accepted this round, {} receipts seen so far, {} committed txs at height {height}",
            accepted.len(),
            seen_receipts.len(),
            n
        );
        // Supply is conserved across every account that can hold funds.
        let spec: Value = serde_json::from_str(
            &std::fs::read_to_string(node.data_dir.join("chain-spec.json")).unwrap(),
        )
        .unwrap();
        let validator_pk = hex::decode(
            spec["validators"][0]["public_key"]
                .as_str()
                .unwrap()
                .trim_start_matches("0x"),
        )
        .unwrap();
        let proposer = Address::from_public_key(SuiteId::Standard, &validator_pk);
        let mut holders: Vec<Address> = (0..10).map(|n| address(&node.dev_key(n))).collect();
        holders.extend(&recipients);
        holders.push(proposer);
        let sum: u128 = holders.iter().map(|a| account(&node, a).0).sum();
        assert_eq!(sum, total_supply, "round {round}: supply not conserved");
        // State proofs verify against the restarted node's latest header.
        for k in &senders {
            let (_, v) = get(&node, &format!("/v1/accounts/{}/proof", address(k)));
            let view: AccountProofView = serde_json::from_value(v).unwrap();
            view.proof
                .verify(suite(SuiteId::Standard), &view.header.state_root)
                .unwrap();
        }
    }
    assert!(
        seen_receipts.len() > 50,
        "the load produced too few receipts to mean much: {}",
        seen_receipts.len()
    );
}

/// POST `len` bytes of `fill` to `path` over a plain socket, streaming the
/// body from another thread while this one reads the answer (a node that
/// refuses a body early may stop reading it), and return the status and
/// JSON body of the answer.
fn post_huge(node: &DevNode, path: &str, len: usize) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", node.port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
    );
    let mut writer = sock.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        if writer.write_all(head.as_bytes()).is_err() {
            return;
        }
        let chunk = vec![b'a'; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            // The node may close the connection once it has refused the
            // body; the rest of it is then never sent.
            if writer.write_all(&chunk[..n]).is_err() {
                return;
            }
            left -= n;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) if !answer.is_empty() => break,
            Err(e) => panic!("no answer to a {len}-byte body on {path}: {e}"),
        }
        let text = String::from_utf8_lossy(&answer);
        if let Some(i) = text.find("\r\n\r\n") {
            let body = &text[i + 4..];
            if serde_json::from_str::<Value>(body).is_ok() {
                break;
            }
        }
    }
    let _ = sock.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body:?}")),
    )
}

/// Resident memory of a process, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// A 50 MB body, malformed JSON and a 10,000-request JSON-RPC batch each
/// get a clear 4xx with a JSON error, the node's memory stays bounded (it
/// never buffers a body past its route's limit), and it goes on serving.
#[test]
fn hostile_bodies_get_clear_4xx_errors_with_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), "standard");
    let before = rss_bytes(node.pid());
    const HUGE: usize = 50_000_000;
    for path in ["/v1/txs", "/v1/txs/batch"] {
        let (status, v) = post_huge(&node, path, HUGE);
        assert_eq!(status, 413, "{path}: {v}");
        assert_eq!(v["code"], "body_too_large", "{path}: {v}");
        assert!(v["message"].as_str().unwrap().contains("MiB"), "{v}");
    }
    for path in ["/eth", "/"] {
        let (status, v) = post_huge(&node, path, HUGE);
        assert_eq!(status, 413, "{path}: {v}");
        assert_eq!(v["error"]["code"], -32600, "{path}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("larger than"),
            "{v}"
        );
    }
    let grown = rss_bytes(node.pid()).saturating_sub(before);
    assert!(
        grown < 40 << 20,
        "four 50 MB bodies grew the node by {} MiB",
        grown >> 20
    );

    // Malformed JSON: 400 with the REST code, or JSON-RPC's parse error.
    let c = http();
    let r = c
        .post(format!("{}/v1/txs", node.url()))
        .header("content-type", "application/json")
        .body("{\"raw\": ")
        .send()
        .unwrap();
    assert_err((r.status().as_u16(), r.json().unwrap()), 400, "bad_json");
    let r = c
        .post(format!("{}/eth", node.url()))
        .header("content-type", "application/json")
        .body("{\"jsonrpc\": \"2.0\", \"method\"")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"]["code"], -32700, "{v}");

    // A 10,000-request batch is refused whole; 1,000 is answered.
    let batch = |n: usize| {
        Value::Array(
            (0..n)
                .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "eth_chainId"}))
                .collect(),
        )
    };
    let r = c
        .post(format!("{}/eth", node.url()))
        .json(&batch(10_000))
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"]["code"], -32600, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 1000"),
        "{v}"
    );
    let r = c
        .post(format!("{}/eth", node.url()))
        .json(&batch(1_000))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1_000);
    assert_eq!(v[999]["result"], "0x21c5");

    // And the node still serves.
    let (s, st) = get(&node, "/v1/status");
    assert_eq!(s, 200, "{st}");
}

/// The OpenAPI document passes a real validator (openapi-spec-validator,
/// pinned in tests/openapi/requirements.txt), declares the errors its
/// routes answer, and the browsable page is served from the node itself.
#[test]
fn openapi_document_is_valid_and_browsable() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), "standard");
    let (s, doc) = get(&node, "/v1/openapi.json");
    assert_eq!(s, 200);
    let events = &doc["paths"]["/v1/events"]["get"]["parameters"];
    for p in events.as_array().unwrap() {
        assert_eq!(p["in"], "query", "{p}");
    }
    for (path, method) in [
        ("/v1/txs/{hash}", "get"),
        ("/v1/receipts/{hash}", "get"),
        ("/v1/blocks/{id}", "get"),
        ("/v1/accounts/{address}/proof", "get"),
        ("/v1/txs/batch", "post"),
    ] {
        assert!(
            doc["paths"][path][method]["responses"]["400"].is_object(),
            "{method} {path} answers 400 without declaring it"
        );
    }
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let python = common::python_venv(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi"),
    );
    let out = std::process::Command::new(&python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the OpenAPI document is invalid:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Swagger UI, with its scripts from the node (no CDN).
    let page = http().get(format!("{}/docs/", node.url())).send().unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("https://"),
        "the page loads from elsewhere: {html}"
    );
    let init = http()
        .get(format!("{}/docs/swagger-initializer.js", node.url()))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(init.contains("/v1/openapi.json"), "{init}");
    let bundle = http()
        .get(format!("{}/docs/swagger-ui-bundle.js", node.url()))
        .send()
        .unwrap();
    assert_eq!(bundle.status(), 200);
    assert!(bundle.bytes().unwrap().len() > 100_000);
}

/// Every route is also served per chain (`/v1/chains/{name or id}/...`,
/// `/eth/{chain}`), the unprefixed ones are the main chain's, an unknown
/// chain is a 404 `unknown_chain`, and modules answer through the one
/// generic route; the CLI's `--chain` and `chain list` use them.
#[test]
fn routes_are_served_per_chain_and_modules_through_one_route() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), "standard");
    let (code, chains) = get(&node, "/v1/chains");
    assert_eq!(code, 200);
    let list = chains.as_array().unwrap();
    assert_eq!(list.len(), 1, "{chains}");
    let main = &list[0];
    assert_eq!(main["name"], "tongtian-dev");
    assert_eq!(main["chain_id"], CHAIN_ID);
    assert_eq!(main["engine"], "solo");
    assert_eq!(main["suite"], "standard");
    assert_eq!(main["status"], "active");
    assert_eq!(main["hosted"], true);
    assert!(main["height"].is_u64() && main["orgs"].is_array(), "{main}");

    for key in ["tongtian-dev", "8645"] {
        let (code, st) = get(&node, &format!("/v1/chains/{key}/status"));
        assert_eq!(code, 200, "{st}");
        assert_eq!(st["chain_id"], CHAIN_ID);
    }
    let (code, err) = get(&node, "/v1/chains/nope/status");
    assert_eq!(code, 404);
    assert_eq!(err["code"], "unknown_chain");
    let (code, err) = get(&node, "/v1/chains/nope");
    assert_eq!((code, err["code"].as_str()), (404, Some("unknown_chain")));

    // The Ethereum JSON-RPC per chain.
    let r: Value = http()
        .post(format!("{}/eth/tongtian-dev", node.url()))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["result"], format!("{CHAIN_ID:#x}"));
    let r = http()
        .post(format!("{}/eth/nope", node.url()))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // Modules: the validator set through the membership module, prefixed or not.
    let (code, set) = get(&node, "/v1/modules/membership/validators");
    assert_eq!(code, 200, "{set}");
    assert_eq!(set["version"], 0);
    assert_eq!(set["validators"].as_array().unwrap().len(), 1);
    let (_, same) = get(
        &node,
        "/v1/chains/tongtian-dev/modules/membership/validators",
    );
    assert_eq!(same, set);
    let (code, err) = get(&node, "/v1/modules/nosuch/x");
    assert_eq!((code, err["code"].as_str()), (404, Some("unknown_module")));
    let (code, err) = get(&node, "/v1/modules/membership/nosuch");
    assert_eq!((code, err["code"].as_str()), (404, Some("unknown_query")));
    let (code, past) = get(&node, "/v1/modules/membership/validators?height=0");
    assert_eq!((code, &past), (200, &set));

    // The CLI: --chain on a command, chain list, and an unknown chain.
    let key = node.data_dir.join("dev-keys/dev-1.key");
    let out = node.cli(&[
        "--chain",
        "tongtian-dev",
        "transfer",
        "--key",
        key.to_str().unwrap(),
        "--to",
        "0x00000000000000000000000000000000000000c3",
        "--amount",
        "7",
        "--wait",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, acct) = get(
        &node,
        "/v1/chains/8645/accounts/0x00000000000000000000000000000000000000c3",
    );
    assert_eq!(acct["balance"], "7", "{acct}");
    let out = node.cli(&["chain", "list", "--json"]);
    let mut listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    listed[0]["height"] = Value::Null;
    assert_eq!(listed, chains_now(&node));
    let out = node.cli(&["--chain", "nope", "status", "--json"]);
    assert!(!out.status.success());
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["error"]["code"], "unknown_chain", "{err}");
}

/// `GET /v1/chains` now (heights move).
fn chains_now(node: &DevNode) -> Value {
    let (_, mut v) = get(node, "/v1/chains");
    for c in v.as_array_mut().unwrap() {
        c["height"] = Value::Null;
    }
    v
}
