//! Contracts end to end on a real `tongtian dev` process: every example
//! contract through the CLI, the Ethereum JSON-RPC's answers to bad
//! input, and ethers.js, viem and Hardhat (from npm) and web3.py (from
//! PyPI) driving the JSON-RPC.
#![allow(clippy::unwrap_used)]

mod common;

use common::DevNode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn contract(rel: &str) -> String {
    repo().join("contracts").join(rel).display().to_string()
}

fn key0(node: &DevNode) -> String {
    node.data_dir
        .join("dev-keys/dev-0.key")
        .display()
        .to_string()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn json_of(out: Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap()
}

fn failed_with(out: Output, needle: &str) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "expected failure, got: {text}");
    assert!(text.contains(needle), "expected {needle:?} in: {text}");
}

#[test]
fn example_contracts_run_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), "standard");
    let key = key0(&node);
    let deploy = |flag: &str, file: &str, extra: &[&str]| {
        let mut args = vec!["contract", "deploy", "--key", &key, flag, file];
        args.extend_from_slice(extra);
        ok(node.cli(&args))
    };
    let call = |addr: &str, method: &str, args: &str, extra: &[&str]| {
        let mut a = vec![
            "--json",
            "contract",
            "call",
            "--key",
            &key,
            "--address",
            addr,
            "--method",
            method,
            "--args",
            args,
            "--wait",
        ];
        a.extend_from_slice(extra);
        node.cli(&a)
    };
    let query = |addr: &str, method: &str, args: &str, extra: &[&str]| {
        let mut a = vec![
            "--json",
            "contract",
            "query",
            "--address",
            addr,
            "--method",
            method,
            "--args",
            args,
        ];
        a.extend_from_slice(extra);
        json_of(node.cli(&a))
    };

    // notary: register, duplicate refused, query, events.
    let notary = deploy("--wasm", &contract("notary/notary.wasm"), &[]);
    let r = json_of(call(
        &notary,
        "register",
        r#"["0xfeed", "bill of lading 88"]"#,
        &[],
    ));
    assert_eq!(r["output"]["metadata"], "bill of lading 88");
    failed_with(
        call(&notary, "register", r#"["0xfeed", "again"]"#, &[]),
        "duplicate",
    );
    let rec = query(&notary, "get", r#"["0xfeed"]"#, &[]);
    assert_eq!(rec["metadata"], "bill of lading 88");
    let events = json_of(node.cli(&["--json", "contract", "events", "--address", &notary]));
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 1, "the duplicate emitted nothing");
    assert_eq!(events[0]["name"], "registered");

    // trace: custody moves only with the holder.
    let trace = deploy("--wasm", &contract("trace/trace.wasm"), &[]);
    ok(call(&trace, "register", r#"["lot-9", "green tea"]"#, &[]));
    ok(call(
        &trace,
        "handover",
        r#"["lot-9", "0x00000000000000000000000000000000000000b1", "to the port"]"#,
        &[],
    ));
    failed_with(
        call(
            &trace,
            "handover",
            r#"["lot-9", "0x00000000000000000000000000000000000000b2", "again"]"#,
            &[],
        ),
        "only the current holder",
    );
    let h = query(&trace, "history", r#"["lot-9"]"#, &[]);
    assert_eq!(h["holder"], "0x00000000000000000000000000000000000000b1");
    assert_eq!(h["history"].as_array().unwrap().len(), 2);

    // receivable: issue to ourselves, split, no split beyond the amount.
    let me = ok(node.cli(&["--json", "key", "show", &key]));
    let me: Value = serde_json::from_str(&me).unwrap();
    let me = me["address"].as_str().unwrap().to_string();
    let rc = deploy("--wasm", &contract("receivable/receivable.wasm"), &[]);
    let r = json_of(call(&rc, "issue", &format!(r#"["{me}", 1000, 0]"#), &[]));
    assert_eq!(r["output"], 1);
    let r = json_of(call(
        &rc,
        "split",
        r#"[1, "0x00000000000000000000000000000000000000c1", 400]"#,
        &[],
    ));
    assert_eq!(r["output"], 2);
    failed_with(
        call(
            &rc,
            "split",
            r#"[1, "0x00000000000000000000000000000000000000c1", 600]"#,
            &[],
        ),
        "less than the receivable",
    );
    assert_eq!(query(&rc, "get", "[1]", &[])["amount"], 600);
    ok(call(&rc, "settle", "[2]", &["--value", "400"]));
    assert_eq!(query(&rc, "get", "[2]", &[])["status"], "settled");
    let bal = json_of(node.cli(&[
        "--json",
        "account",
        "show",
        "0x00000000000000000000000000000000000000c1",
    ]));
    assert_eq!(bal["balance"], "400");

    // Token (ERC-20) and Deed (ERC-721) with their ABIs.
    let abi = contract("token/Token.abi");
    let token = deploy(
        "--evm",
        &contract("token/Token.bin"),
        &["--abi", &abi, "--args", r#"["Tong", "TT", "1000"]"#],
    );
    ok(call(
        &token,
        "transfer",
        r#"["0x00000000000000000000000000000000000000d1", "250"]"#,
        &["--abi", &abi],
    ));
    let b = query(
        &token,
        "balanceOf",
        r#"["0x00000000000000000000000000000000000000d1"]"#,
        &["--abi", &abi],
    );
    assert_eq!(b, "250");
    failed_with(
        call(
            &token,
            "transfer",
            r#"["0x00000000000000000000000000000000000000d1", "5000"]"#,
            &["--abi", &abi],
        ),
        "reverted",
    );
    failed_with(
        node.cli(&[
            "contract",
            "query",
            "--address",
            &token,
            "--method",
            "transfer",
            "--args",
            r#"["0x01"]"#,
            "--abi",
            &abi,
        ]),
        "argument",
    );
    let dabi = contract("deed/Deed.abi");
    let deed = deploy("--evm", &contract("deed/Deed.bin"), &["--abi", &dabi]);
    ok(call(
        &deed,
        "mint",
        &format!(r#"["{me}", "1", "ipfs://deed-1"]"#),
        &["--abi", &dabi],
    ));
    assert_eq!(
        query(&deed, "ownerOf", r#"["1"]"#, &["--abi", &dabi]),
        json!(me)
    );
    failed_with(
        call(
            &deed,
            "mint",
            &format!(r#"["{me}", "1", "x"]"#),
            &["--abi", &dabi],
        ),
        "deed exists",
    );

    // Hostile code is refused at deployment and the node goes on.
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm\x01\0\0\0garbage").unwrap();
    failed_with(
        node.cli(&[
            "contract",
            "deploy",
            "--key",
            &key,
            "--wasm",
            junk.to_str().unwrap(),
            "--json",
        ]),
        "\"invalid_code\"",
    );
    assert_eq!(query(&notary, "count", "[]", &[]), 1);
}

fn rpc(node: &DevNode, body: &str) -> Value {
    let (status, v) = rpc_status(node, body);
    assert_eq!(status, 200, "{v}");
    v
}

/// A JSON-RPC body posted as is, with the HTTP status of its answer.
fn rpc_status(node: &DevNode, body: &str) -> (u16, Value) {
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/eth", node.url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.json().unwrap())
}

fn call_rpc(node: &DevNode, method: &str, params: Value) -> Value {
    rpc(
        node,
        &json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string(),
    )
}

/// The receipt of transaction `hash` (`eth_getTransactionReceipt`), once
/// it is mined (within 30 s).
fn mined(node: &DevNode, hash: &Value) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = call_rpc(node, "eth_getTransactionReceipt", json!([hash]))["result"].clone();
        if r.is_object() {
            return r;
        }
        assert!(std::time::Instant::now() < deadline, "{hash} not mined");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A JSON-RPC quantity as a number.
fn quantity(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// `eth_estimateGas` on a call that goes 40 external calls deep before it
/// writes storage (the `Nested` fixture): each level keeps back 1/64 of
/// its gas (EIP-150), so the call needs far more gas than it uses. A
/// transaction given exactly the estimate succeeds, and the estimate is
/// within a few percent of the least that does.
#[test]
fn gas_estimates_suffice_for_deep_call_chains() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), "standard");
    let dev0 = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";
    let code = std::fs::read_to_string(contract("fixtures/Nested.bin")).unwrap();
    let deploy = json!([{"from": dev0, "data": format!("0x{}", code.trim())}]);
    let created = mined(
        &node,
        &call_rpc(&node, "eth_sendTransaction", deploy)["result"],
    );
    assert_eq!(created["status"], "0x1", "{created}");
    let nested = created["contractAddress"].clone();
    let word = |n: u8| {
        let mut w = [0u8; 32];
        w[31] = n;
        w
    };
    let mut data = tongtian_crypto::eth::keccak256(b"down(uint256,uint256)")[..4].to_vec();
    data.extend(word(40));
    data.extend(word(10));
    let call = json!({"from": dev0, "to": nested, "data": format!("0x{}", hex::encode(&data))});
    let estimate = quantity(&call_rpc(&node, "eth_estimateGas", json!([call]))["result"]);
    // The estimate is near the least limit: on the same state, 3% less
    // fails.
    let mut short = call.clone();
    short["gas"] = json!(format!("{:#x}", estimate * 97 / 100));
    let v = call_rpc(&node, "eth_call", json!([short, "latest"]));
    assert!(v["error"].is_object(), "{v}");
    let mut send = call.clone();
    send["gas"] = json!(format!("{estimate:#x}"));
    let receipt = mined(
        &node,
        &call_rpc(&node, "eth_sendTransaction", json!([send]))["result"],
    );
    assert_eq!(receipt["status"], "0x1", "estimate {estimate}: {receipt}");
    let used = quantity(&receipt["gasUsed"]);
    // A fixed quarter over the gas used would have run out here.
    assert!(
        estimate > used + used / 4,
        "estimate {estimate}, used {used}"
    );
    // A node-signed send with no gas given is estimated the same way.
    let auto = mined(
        &node,
        &call_rpc(&node, "eth_sendTransaction", json!([call]))["result"],
    );
    assert_eq!(auto["status"], "0x1", "{auto}");
}

#[test]
fn json_rpc_answers_bad_requests_with_ethereum_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), "standard");
    assert_eq!(
        call_rpc(&node, "eth_chainId", json!([]))["result"],
        "0x21c5"
    );
    let (status, parse) = rpc_status(&node, "{not json");
    assert_eq!((status, &parse["error"]["code"]), (400, &json!(-32700)));
    assert_eq!(
        call_rpc(&node, "eth_noSuchThing", json!([]))["error"]["code"],
        -32601
    );
    assert_eq!(
        call_rpc(&node, "eth_getBalance", json!([42, "latest"]))["error"]["code"],
        -32602
    );
    assert_eq!(
        call_rpc(&node, "eth_getBalance", json!(["0x12", "latest"]))["error"]["code"],
        -32602
    );
    assert_eq!(
        call_rpc(&node, "eth_call", json!(["0x00"]))["error"]["code"],
        -32602
    );
    // Signing with the node's unlocked accounts: a missing sender, bad
    // fields, another chain's id, an account the node does not hold, and
    // typed data that is not EIP-712. None of them reaches the pool.
    let dev0 = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";
    let stranger = "0x0202020202020202020202020202020202020202";
    for (method, params, code) in [
        ("eth_sendTransaction", json!([{"to": stranger}]), -32602),
        (
            "eth_sendTransaction",
            json!([{"from": dev0, "data": "0xzz"}]),
            -32602,
        ),
        (
            "eth_sendTransaction",
            json!([{"from": dev0, "to": stranger, "chainId": "0x1"}]),
            -32602,
        ),
        ("eth_sendTransaction", json!(["0x00"]), -32602),
        (
            "eth_sendTransaction",
            json!([{"from": stranger, "to": dev0, "value": "0x1"}]),
            -32000,
        ),
        ("eth_signTransaction", json!([{"from": stranger}]), -32000),
        ("personal_sign", json!(["0x68656c6c6f", stranger]), -32000),
        ("eth_sign", json!([stranger, "0x68656c6c6f"]), -32000),
        ("eth_signTypedData_v4", json!([dev0, {"types": 1}]), -32602),
        ("eth_signTypedData_v4", json!([dev0, "{not json"]), -32602),
    ] {
        let v = call_rpc(&node, method, params.clone());
        assert_eq!(v["error"]["code"], code, "{method} {params}: {v}");
    }
    // A signed but unsent transaction is a raw one the chain accepts later
    // (from account #5: the test sends from #0 below).
    let dev5 = "0x9965507d1a55bcc2695c58ba16fb37d819b0a4dc";
    let pending = |node: &DevNode| {
        call_rpc(node, "eth_getTransactionCount", json!([dev5, "pending"]))["result"].clone()
    };
    assert_eq!(pending(&node), "0x0");
    let signed = call_rpc(
        &node,
        "eth_signTransaction",
        json!([{"from": dev5, "to": stranger, "value": "0x5"}]),
    );
    let raw = signed["result"].as_str().unwrap().to_string();
    assert_eq!(pending(&node), "0x0", "signing alone sends nothing");
    let sent = call_rpc(&node, "eth_sendRawTransaction", json!([raw]));
    assert_eq!(pending(&node), "0x1");
    // Mined before the fee-history check below, which wants a block of one.
    mined(&node, &sent["result"]);
    // Filters: unknown ids, bad filter objects, the wrong kind of filter.
    let gone = call_rpc(&node, "eth_getFilterChanges", json!(["0xdead"]));
    assert_eq!(gone["error"]["code"], -32000);
    assert_eq!(gone["error"]["message"], "filter not found");
    assert_eq!(
        call_rpc(&node, "eth_getFilterChanges", json!([]))["error"]["code"],
        -32602
    );
    assert_eq!(
        call_rpc(&node, "eth_newFilter", json!([{"fromBlock": "0xzz"}]))["error"]["code"],
        -32602
    );
    let both = json!([{"blockHash": format!("0x{}", "11".repeat(32)), "fromBlock": "0x1"}]);
    assert_eq!(
        call_rpc(&node, "eth_newFilter", both)["error"]["code"],
        -32602
    );
    let unknown_block = json!([{"blockHash": format!("0x{}", "11".repeat(32))}]);
    assert_eq!(
        call_rpc(&node, "eth_getLogs", unknown_block)["error"]["code"],
        -32602
    );
    let blocks = call_rpc(&node, "eth_newBlockFilter", json!([]));
    let id = blocks["result"].as_str().unwrap();
    assert_eq!(
        call_rpc(&node, "eth_getFilterLogs", json!([id]))["error"]["code"],
        -32602
    );
    assert_eq!(
        call_rpc(&node, "eth_uninstallFilter", json!([id]))["result"],
        true
    );
    assert_eq!(
        call_rpc(&node, "eth_uninstallFilter", json!([id]))["result"],
        false
    );
    let bad_raw = call_rpc(&node, "eth_sendRawTransaction", json!(["0x02c0"]));
    assert_eq!(bad_raw["error"]["code"], -32000);
    assert!(bad_raw["error"]["message"]
        .as_str()
        .unwrap()
        .contains("invalid transaction"));
    // The Hardhat account is funded; batches answer in order.
    let batch = rpc(
        &node,
        r#"[{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","latest"]},
            {"jsonrpc":"2.0","id":2,"method":"eth_blockNumber"}]"#,
    );
    assert_eq!(batch[0]["id"], 1);
    assert_eq!(batch[0]["result"], "0x33b2e3c9fd0803ce8000000");
    assert_eq!(batch[1]["id"], 2);
    // A replayed raw transaction from another chain is refused.
    let key = tongtian_crypto::eth::EthKey::dev_accounts(1).remove(0);
    let other_chain = tongtian_types::eth::sign_eip1559(
        &key,
        1,
        0,
        1,
        21_000,
        Some(tongtian_types::Address([1; 20])),
        1,
        &[],
    );
    let r = call_rpc(
        &node,
        "eth_sendRawTransaction",
        json!([format!("0x{}", hex::encode(other_chain))]),
    );
    assert!(
        r["error"]["message"].as_str().unwrap().contains("chain id"),
        "{r}"
    );
    // Gas above the intrinsic 22,600 but below EIP-7623's calldata floor
    // (21,000 + 10 * 4 * 100 = 25,000) is refused as Geth refuses it, and
    // uses no nonce: the next transaction below takes nonce 0.
    let under_floor = tongtian_types::eth::sign_eip1559(
        &key,
        8645,
        0,
        1,
        24_999,
        Some(tongtian_types::Address([1; 20])),
        1,
        &[0xff; 100],
    );
    let r = call_rpc(
        &node,
        "eth_sendRawTransaction",
        json!([format!("0x{}", hex::encode(under_floor))]),
    );
    assert_eq!(r["error"]["code"], -32000, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("intrinsic gas too low"),
        "{r}"
    );
    // A valid one goes through and a replay of it is refused.
    let raw = tongtian_types::eth::sign_eip1559(
        &key,
        8645,
        0,
        1,
        21_000,
        Some(tongtian_types::Address([1; 20])),
        1,
        &[],
    );
    let hex_raw = format!("0x{}", hex::encode(&raw));
    let sent = call_rpc(&node, "eth_sendRawTransaction", json!([hex_raw]));
    let hash = sent["result"].as_str().unwrap().to_string();
    let receipt = mined(&node, &sent["result"]);
    assert_eq!(receipt["status"], "0x1");
    assert_eq!(receipt["gasUsed"], "0x5208");
    // Its block's fee history: 21,000 gas of a nominal 1e9, and the
    // price it paid at every percentile (the only transaction).
    let at = receipt["blockNumber"].clone();
    let paid =
        call_rpc(&node, "eth_getTransactionByHash", json!([hash]))["result"]["gasPrice"].clone();
    let fh = call_rpc(&node, "eth_feeHistory", json!(["0x1", at, [10, 90]]))["result"].clone();
    assert_eq!(fh["oldestBlock"], at);
    assert_eq!(fh["gasUsedRatio"], json!([21_000.0 / 1e9]));
    assert_eq!(fh["baseFeePerGas"], json!(["0x0", "0x0"]));
    assert_eq!(fh["reward"], json!([[paid, paid]]));
    // The same transaction found by block and position.
    let bh = receipt["blockHash"].clone();
    let count = |m: &str, b: &Value| call_rpc(&node, m, json!([b]))["result"].clone();
    assert_eq!(count("eth_getBlockTransactionCountByNumber", &at), "0x1");
    assert_eq!(count("eth_getBlockTransactionCountByHash", &bh), "0x1");
    assert_eq!(count("eth_getUncleCountByBlockNumber", &at), "0x0");
    assert_eq!(
        count("eth_getBlockTransactionCountByNumber", &json!("0xffffff")),
        Value::Null
    );
    for (m, b) in [
        ("eth_getTransactionByBlockNumberAndIndex", &at),
        ("eth_getTransactionByBlockHashAndIndex", &bh),
    ] {
        assert_eq!(
            call_rpc(&node, m, json!([b, "0x0"]))["result"]["hash"],
            hash
        );
        assert_eq!(call_rpc(&node, m, json!([b, "0x1"]))["result"], Value::Null);
        assert_eq!(
            call_rpc(&node, m, json!([b, true]))["error"]["code"],
            -32602
        );
    }
    assert_eq!(call_rpc(&node, "net_peerCount", json!([]))["result"], "0x0");
    // All of the block's receipts: this one.
    for b in [&at, &bh] {
        assert_eq!(
            call_rpc(&node, "eth_getBlockReceipts", json!([b]))["result"],
            json!([receipt])
        );
    }
    assert_eq!(
        call_rpc(&node, "eth_getBlockReceipts", json!(["0xffffff"]))["result"],
        Value::Null
    );
    assert_eq!(
        call_rpc(&node, "web3_sha3", json!(["0x"]))["result"],
        "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    );
    // Several blocks (as many as there are, up to the count): one entry
    // each, and no reward without percentiles.
    let head = call_rpc(&node, "eth_blockNumber", json!([]))["result"].clone();
    let latest = u64::from_str_radix(head.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    let fh = call_rpc(&node, "eth_feeHistory", json!([4, head]))["result"].clone();
    let n = (latest + 1).min(4);
    assert_eq!(
        fh["gasUsedRatio"].as_array().unwrap().len() as u64,
        n,
        "{fh}"
    );
    assert_eq!(fh["baseFeePerGas"].as_array().unwrap().len() as u64, n + 1);
    assert_eq!(fh["oldestBlock"], format!("{:#x}", latest + 1 - n));
    assert!(fh.get("reward").is_none());
    for bad in [
        json!(["0x1", "latest", [50, 10]]),
        json!(["0x1", "latest", [101]]),
        json!(["0x1", "0xffffff"]),
    ] {
        assert_eq!(
            call_rpc(&node, "eth_feeHistory", bad)["error"]["code"],
            -32602
        );
    }
    let replay = call_rpc(&node, "eth_sendRawTransaction", json!([hex_raw]));
    let m = replay["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("already known") || m.contains("nonce too low"),
        "{replay}"
    );
    assert_eq!(
        call_rpc(
            &node,
            "eth_getBalance",
            json!(["0x0101010101010101010101010101010101010101", "latest"])
        )["result"],
        "0x1"
    );
}

/// Install web3.py from PyPI into a virtual environment once (the test
/// setup, versions pinned in requirements.txt), then run the script: the
/// node's unlocked accounts, a deployment, filters, logs, a legacy
/// transaction signed by web3.py, a custom-error revert, `eth_sign`.
#[test]
fn web3_py_deploys_with_node_accounts_filters_logs_and_legacy_transactions() {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web3py");
    let python = common::python_venv(&py);
    let seen = client_report(&python, &py.join("web3-test.py"));
    let account0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
    assert_eq!(seen["chainId"], 8645);
    assert_eq!(seen["accounts"], 10);
    assert_eq!(seen["deployStatus"], 1);
    assert_eq!(seen["balance"], 25);
    assert_eq!(seen["filterEntries"][0][0], account0);
    assert_eq!(seen["filterEntries"][0][2], 25);
    assert_eq!(seen["logs"], 2);
    assert_eq!(seen["legacyType"], 0);
    assert_eq!(seen["legacyStatus"], 1);
    assert_eq!(seen["ethBalance"], 12);
    // InsufficientBalance(uint256,uint256)'s selector.
    assert_eq!(seen["revertData"], "0xcf479181");
    assert_eq!(seen["signedBy"], account0);
    assert_eq!(seen["feeHistoryBlocks"], 2);
    assert_eq!(seen["socketHead"], true);
    assert_eq!(seen["socketLog"], true);
    assert_eq!(seen["socketUnsubscribed"], true);
}

/// Run an Ethereum client's test script against a fresh dev node as
/// `PROGRAM SCRIPT RPC_URL CONTRACT_DIR` (the ERC-20's directory); the JSON
/// object it prints of what it saw.
fn client_report(program: impl AsRef<std::ffi::OsStr>, script: &Path) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), "standard");
    let program = program.as_ref();
    let out = Command::new(program)
        .arg(script)
        .arg(format!("{}/eth", node.url()))
        .arg(contract("token"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program:?}: {e}"));
    json_of(out)
}

/// The npm project `tests/NAME`, its packages installed from its lock file
/// once (`npm ci`) when `node_modules/PROBE` is missing.
fn npm_project(name: &str, probe: &str) -> std::path::PathBuf {
    // Tests run in parallel and two of them share the ethers project: one
    // install at a time (`npm ci` first deletes `node_modules`).
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALLING.lock().unwrap_or_else(|p| p.into_inner());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name);
    if !dir.join("node_modules").join(probe).exists() {
        let st = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .expect("npm is needed for the ethers.js, viem and Hardhat tests (Node.js 18+)");
        assert!(st.success(), "npm ci in tests/{name} failed");
    }
    dir
}

/// viem 2 (from the same npm project as ethers.js): fee estimates, a
/// deployment and transfer from a local account, a watched `Transfer`
/// event, a decoded custom error, three transfers sent in reverse nonce
/// order (queued until the gap fills), a replacement by a higher price,
/// access lists charged and applied,
/// a payment from the node's own account, and block numbers over a
/// WebSocket.
#[test]
fn viem_deploys_watches_events_and_uses_the_nodes_account() {
    let js = npm_project("ethers", "viem");
    let seen = client_report("node", &js.join("viem-test.mjs"));
    assert_eq!(seen["chainId"], 8645);
    assert_eq!(seen["token"], "0x5fbdb2315678afecb367f032d93f642f64180aa3");
    assert_eq!(seen["transferStatus"], "success");
    assert_eq!(seen["balance"], "5");
    assert_eq!(seen["event"][0][2], "5");
    assert_eq!(seen["revert"], "InsufficientBalance");
    assert_eq!(seen["reversed"], json!(["success", "success", "success"]));
    assert_eq!(seen["reversedBalance"], "8");
    assert!(seen["replacement"]
        .as_str()
        .unwrap()
        .contains("replacement transaction underpriced"));
    assert_eq!(seen["replacedGone"], true);
    // EIP-2930 by Ethereum's arithmetic: 2,400 for an untouched address;
    // 2,400 + 2 x 1,900 - 2 x 2,000 for the transfer's own two slots.
    assert_eq!(seen["accessListGas"]["idle"], "2400");
    assert_eq!(seen["accessListGas"]["warm"], "2200");
    assert_eq!(seen["accessListShown"], true);
    assert_eq!(
        seen["nodeAccount"],
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    );
    assert_eq!(seen["nodeSend"], "success");
    assert!(seen["wsBlock"].as_str().unwrap().parse::<u64>().unwrap() > 0);
}

/// Hardhat 2 against a dev chain configured as for its own `localhost`
/// node: no keys, so its signers are the node's unlocked accounts. A
/// script run with `hardhat run` deploys the ERC-20, transfers from two
/// signers, reads the events and decodes a revert.
#[test]
fn hardhat_deploys_and_transfers_with_the_nodes_accounts() {
    let hh = npm_project("hardhat", "hardhat");
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), "standard");
    let out = Command::new("npx")
        .args(["--no-install", "hardhat", "run", "--no-compile"])
        .arg("scripts/deploy.js")
        .current_dir(&hh)
        .env("TONGTIAN_RPC", format!("{}/eth", node.url()))
        .env("TONGTIAN_CONTRACTS", contract("token"))
        .env("HARDHAT_DISABLE_TELEMETRY_PROMPT", "true")
        .output()
        .expect("run hardhat");
    let seen = json_of(out);
    assert_eq!(seen["chainId"], 8645);
    assert_eq!(seen["signers"], 10);
    assert_eq!(seen["owner"], "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    // Hardhat account #0's first deployment, as on Hardhat's own node.
    assert_eq!(seen["token"], "0x5FbDB2315678afecb367f032d93F642f64180aa3");
    assert_eq!(seen["transferStatus"], 1);
    assert_eq!(seen["events"].as_array().unwrap().len(), 2);
    assert_eq!(seen["events"][1][2], "30");
    assert_eq!(seen["ownerBalance"], "980");
    assert_eq!(seen["revert"]["code"], 3);
    assert_eq!(seen["revert"]["error"], "InsufficientBalance");
}

/// Foundry's `cast` (from npm) against a dev chain with Anvil's first key:
/// chain id, a deployment of the ERC-20's compiled code with constructor
/// arguments, a transfer, typed reads, the `Transfer` logs, a gas
/// estimate, a revert with its custom error's data, and a payment the node
/// signs for its unlocked account (`--unlocked`). (`forge` compiles
/// with a native `solc` it downloads from GitHub, which this machine
/// cannot reach; `cast` is how Foundry talks to a node.)
#[test]
fn foundry_cast_deploys_transfers_reads_logs_and_sees_a_revert() {
    let dir = npm_project("foundry", "@foundry-rs/cast");
    let tmp = tempfile::tempdir().unwrap();
    let node = DevNode::start(&tmp.path().join("node"), "standard");
    let rpc = format!("{}/eth", node.url());
    // The platform's binary itself: npm's `cast` shim (bin.mjs) exits 0
    // even when cast fails.
    let bin = std::fs::read_dir(dir.join("node_modules/@foundry-rs"))
        .unwrap()
        .map(|e| e.unwrap().path().join("bin/cast"))
        .find(|p| p.is_file())
        .expect("no cast binary for this platform in @foundry-rs");
    // `cast SUBCOMMAND --rpc-url URL ARGS...` (after `--create` every
    // argument is the constructor's).
    let cast = |args: &[&str]| {
        Command::new(&bin)
            .arg(args[0])
            .args(["--rpc-url", &rpc])
            .args(&args[1..])
            .output()
            .expect("run cast")
    };
    const ANVIL_KEY_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    const OWNER: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
    const TO: &str = "0x000000000000000000000000000000000000bEEF";
    assert_eq!(ok(cast(&["chain-id"])).trim(), "8645");

    let code = std::fs::read_to_string(contract("token/Token.bin")).unwrap();
    let code = format!("0x{}", code.trim());
    let deployed = json_of(cast(&[
        "send",
        "--private-key",
        ANVIL_KEY_0,
        "--json",
        "--create",
        &code,
        "constructor(string,string,uint256)",
        "Cast Token",
        "CST",
        "1000",
    ]));
    assert_eq!(deployed["status"], "0x1", "{deployed}");
    // Anvil's first key's first deployment, as on Anvil.
    let token = deployed["contractAddress"].as_str().unwrap().to_string();
    assert_eq!(token, "0x5fbdb2315678afecb367f032d93f642f64180aa3");

    let sent = json_of(cast(&[
        "send",
        "--private-key",
        ANVIL_KEY_0,
        "--json",
        &token,
        "transfer(address,uint256)",
        TO,
        "5",
    ]));
    assert_eq!(sent["status"], "0x1", "{sent}");
    assert_eq!(
        ok(cast(&["call", &token, "balanceOf(address)(uint256)", TO])).trim(),
        "5"
    );
    assert_eq!(
        ok(cast(&["call", &token, "symbol()(string)"])).trim(),
        "\"CST\""
    );

    // keccak256("Transfer(address,address,uint256)"): the mint and the transfer.
    let logs = json_of(cast(&[
        "logs",
        "--json",
        "--from-block",
        "0",
        "--address",
        &token,
        "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef",
    ]));
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert_eq!(logs[1]["transactionHash"], sent["transactionHash"]);

    let gas: u64 = ok(cast(&[
        "estimate",
        "--from",
        OWNER,
        &token,
        "transfer(address,uint256)",
        TO,
        "1",
    ]))
    .trim()
    .parse()
    .unwrap();
    assert!(gas > 21_000 && gas < 100_000, "{gas}");

    // More than the supply: the call reverts with InsufficientBalance's
    // selector in its data, and nothing is sent.
    failed_with(
        cast(&[
            "call",
            "--from",
            OWNER,
            &token,
            "transfer(address,uint256)",
            TO,
            "1000000000000000000000000",
        ]),
        "0xcf479181",
    );
    failed_with(
        cast(&[
            "send",
            "--private-key",
            ANVIL_KEY_0,
            &token,
            "transfer(address,uint256)",
            TO,
            "1000000000000000000000000",
        ]),
        "execution reverted",
    );
    assert_eq!(
        ok(cast(&["call", &token, "balanceOf(address)(uint256)", TO])).trim(),
        "5"
    );
    // The node signs for its unlocked dev account (`eth_sendTransaction`).
    let paid = json_of(cast(&[
        "send",
        "--unlocked",
        "--from",
        OWNER,
        "--json",
        "--value",
        "7",
        TO,
    ]));
    assert_eq!(paid["status"], "0x1", "{paid}");
    assert_eq!(ok(cast(&["balance", TO])).trim(), "7");
}

/// Install ethers.js from npm once (the test setup), then run the script.
#[test]
fn ethers_js_deploys_transfers_reads_logs_and_catches_reverts() {
    let js = npm_project("ethers", "viem");
    let seen = client_report("node", &js.join("ethers-test.mjs"));
    assert_eq!(seen["chainId"], 8645);
    assert_eq!(seen["token"], "0x5FbDB2315678afecb367f032d93F642f64180aa3");
    assert_eq!(seen["transferStatus"], 1);
    assert_eq!(seen["transferLogs"].as_array().unwrap().len(), 2);
    assert_eq!(seen["staticRevert"]["error"], "InsufficientBalance");
    assert_eq!(seen["minedRevert"]["status"], 0);
    assert_eq!(seen["recipientAfter"], seen["recipientBalance"]);
    assert_eq!(seen["filterChanges"].as_array().unwrap().len(), 1);
    assert_eq!(seen["heard"]["value"], "7");
    assert_eq!(seen["heardPending"], seen["filterChanges"][0]);
    assert_eq!(seen["uninstalled"], true);
    assert_eq!(seen["goneFilter"], "filter not found");
    // The node's unlocked development accounts.
    assert_eq!(seen["nodeAccounts"].as_array().unwrap().len(), 10);
    let account1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    assert_eq!(seen["nodeAccounts"][1], account1);
    assert_eq!(seen["nodeDeployer"], account1);
    assert_eq!(seen["nodeTransfer"]["to"], "40");
    assert_eq!(seen["blockReceiptsAgree"], true);
    // Subscriptions over a WebSocket.
    assert_eq!(seen["ws"]["transfer"]["value"], "9");
    assert!(seen["ws"]["block"].as_u64().is_some(), "{seen}");
    assert!(seen["ws"]["pending"].as_str().unwrap().starts_with("0x"));
    assert_eq!(seen["wsUnsubscribed"], json!([true, false]));
    assert_eq!(seen["wsBadSubscription"], -32602);
    assert_eq!(seen["httpSubscription"], -32601);
    assert_eq!(seen["nodeRevert"]["code"], "CALL_EXCEPTION");
    assert_eq!(seen["nodeRevert"]["error"], "InsufficientBalance");
    assert_eq!(seen["signedMessageBy"], account1);
    assert_eq!(seen["signedTypedDataBy"], account1);
    assert!(
        seen["unknownAccount"]
            .as_str()
            .unwrap()
            .contains("unknown account"),
        "{seen}"
    );
}

/// `bench contracts` on both VMs with a small count: every call commits,
/// the token's books balance, and every figure the issue asks for is there.
#[test]
fn contract_benchmark_reports_its_figures_on_both_vms() {
    for vm in ["wasm", "evm"] {
        let out = Command::new(common::bin())
            .args([
                "bench",
                "contracts",
                "--vm",
                vm,
                "--count",
                "400",
                "--concurrency",
                "4",
                "--batch",
                "50",
                "--json",
                "--reads",
            ])
            .output()
            .unwrap();
        let r = json_of(out);
        assert_eq!(r["vm"], vm);
        // The read paths, timed on the chain the run built: the transfers
        // to one sender are found through the blocks' blooms on the EVM
        // (100 from the sender before it and the hand-out); the WASM
        // token's events are not Ethereum logs.
        let reads = &r["reads"];
        assert!(reads["block_txs"].as_u64().unwrap() > 0, "{r}");
        assert!(reads["blocks"].as_u64().unwrap() > reads["block"].as_u64().unwrap());
        let found = if vm == "evm" { 101 } else { 0 };
        assert_eq!(reads["logs_one_found"], found, "{r}");
        for t in [
            "block_ms",
            "block_full_ms",
            "last_receipt_ms",
            "logs_none_ms",
            "logs_one_ms",
            "events_none_ms",
        ] {
            assert!(reads[t].as_f64().unwrap() > 0.0, "{t}: {r}");
        }
        assert_eq!(r["committed"], 400, "{r}");
        assert_eq!(r["failed"], 0, "{r}");
        assert_eq!(r["supply_conserved"], true, "{r}");
        assert!(r["gas_per_call"].as_u64().unwrap() > 21_000, "{r}");
        for figure in ["tps", "latency_ms_p50", "vm_only_tps", "verify_bound_tps"] {
            assert!(r[figure].as_f64().unwrap() > 0.0, "{figure}: {r}");
        }
        let ratio = r["tps"].as_f64().unwrap() / r["vm_only_tps"].as_f64().unwrap();
        assert!((r["node_over_vm_only"].as_f64().unwrap() - ratio).abs() < 1e-9);
        // `vm_only_tps` is the median of the VM-only runs.
        let mut runs: Vec<f64> = r["vm_only_runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(runs.len(), 5, "{r}");
        assert!(runs.iter().all(|v| *v > 0.0), "{r}");
        runs.sort_by(f64::total_cmp);
        assert_eq!(r["vm_only_tps"].as_f64().unwrap(), runs[2], "{r}");
        // The node's CPU over the run (read from /proc, in 10 ms ticks,
        // so a run this short may read 0): no more than its cores allow,
        // and per call the same time spread over the committed calls.
        let cores = r["node_cpu_cores"].as_f64().unwrap();
        let per_call = r["node_cpu_us_per_call"].as_f64().unwrap();
        assert!(
            (0.0..=1.5 * r["cores"].as_f64().unwrap()).contains(&cores),
            "{r}"
        );
        let expect = cores * r["duration_s"].as_f64().unwrap() * 1e6 / 400.0;
        assert!((per_call - expect).abs() <= 1e-6 * expect.max(1.0), "{r}");
        // The ceiling: the ratio at that CPU per call with every core busy.
        if per_call > 0.0 {
            let all = r["cores"].as_f64().unwrap() * 1e6 / per_call;
            let ceiling = all / r["vm_only_tps"].as_f64().unwrap();
            let got = r["node_over_vm_only_ceiling"].as_f64().unwrap();
            assert!((got - ceiling).abs() <= 1e-9 * ceiling, "{r}");
        } else {
            assert!(r["node_over_vm_only_ceiling"].is_null(), "{r}");
        }
    }
}

/// State queries over JSON-RPC answer for the block they name: a tag, a
/// number, or an EIP-1898 object; a block past the head is "header not
/// found".
#[test]
fn json_rpc_reads_state_at_past_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), "standard");
    let key = key0(&node);
    let head = |node: &DevNode| {
        let h = call_rpc(node, "eth_blockNumber", json!([]))["result"].clone();
        u64::from_str_radix(h.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    };
    let before_deploy = head(&node);
    let abi = contract("token/Token.abi");
    let token = ok(node.cli(&[
        "contract",
        "deploy",
        "--key",
        &key,
        "--evm",
        &contract("token/Token.bin"),
        "--abi",
        &abi,
        "--args",
        r#"["Tong", "TT", "1000"]"#,
    ]));
    let deployed = head(&node);
    let to = "0x00000000000000000000000000000000000000d7";
    ok(node.cli(&[
        "contract",
        "call",
        "--key",
        &key,
        "--address",
        &token,
        "--abi",
        &abi,
        "--method",
        "transfer",
        "--args",
        &format!(r#"["{to}", "250"]"#),
        "--wait",
    ]));
    ok(node.cli(&[
        "transfer", "--key", &key, "--to", to, "--amount", "1000", "--wait",
    ]));
    let after = head(&node);
    assert!(before_deploy < deployed && deployed < after);
    let tag = |n: u64| json!(format!("0x{n:x}"));

    // Native balance: zero at the earlier heights, 1000 now.
    let balance = |at: Value| call_rpc(&node, "eth_getBalance", json!([to, at]))["result"].clone();
    assert_eq!(balance(tag(deployed)), "0x0");
    assert_eq!(balance(json!({ "blockNumber": tag(deployed) })), "0x0");
    let deployed_hash = call_rpc(&node, "eth_getBlockByNumber", json!([tag(deployed), false]))
        ["result"]["hash"]
        .clone();
    assert_eq!(balance(json!({ "blockHash": deployed_hash })), "0x0");
    assert_eq!(balance(json!("latest")), "0x3e8");
    assert_eq!(balance(tag(after)), "0x3e8");

    // Code exists from the deployment block on.
    let code = |at: Value| call_rpc(&node, "eth_getCode", json!([token, at]))["result"].clone();
    assert_eq!(code(tag(before_deploy)), "0x");
    assert!(code(tag(deployed)).as_str().unwrap().len() > 100);

    // eth_call runs on the state of the block it names.
    let data = format!("0x70a08231{:0>64}", to.trim_start_matches("0x"));
    let balance_of = |at: Value| {
        call_rpc(
            &node,
            "eth_call",
            json!([{ "to": token, "data": data }, at]),
        )["result"]
            .clone()
    };
    assert_eq!(balance_of(tag(deployed)), format!("0x{:064x}", 0));
    assert_eq!(balance_of(json!("latest")), format!("0x{:064x}", 250));

    // The nonce of the sender grew; a future block is not found.
    let sender = common::address(&node.dev_key(0)).to_string();
    let nonce = |at: Value| {
        call_rpc(&node, "eth_getTransactionCount", json!([sender, at]))["result"].clone()
    };
    assert_ne!(nonce(tag(before_deploy)), nonce(json!("latest")));
    let future = call_rpc(&node, "eth_getBalance", json!([to, tag(after + 1000)]));
    assert_eq!(future["error"]["code"], -32000);
    assert_eq!(future["error"]["message"], "header not found");

    // Logs over the whole chain, found through the blocks' blooms: a query
    // that names the recipient finds its one transfer and nothing else;
    // one that names an address no log holds finds nothing.
    let transfer_topic = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";
    let padded = |a: &str| format!("0x{:0>64}", a.trim_start_matches("0x"));
    let logs = |filter: Value| {
        let v = call_rpc(&node, "eth_getLogs", json!([filter]));
        v["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .clone()
    };
    let all = json!({"fromBlock": "0x0", "toBlock": "latest"});
    let to_recipient = logs(json!({
        "fromBlock": "0x0", "toBlock": "latest",
        "topics": [transfer_topic, null, padded(to)],
    }));
    assert_eq!(to_recipient.len(), 1, "{to_recipient:?}");
    assert_eq!(to_recipient[0]["data"], format!("0x{:064x}", 250));
    assert_eq!(to_recipient[0]["address"], token.to_lowercase());
    let either = logs(json!({
        "fromBlock": "0x0", "toBlock": "latest", "address": [stranger_address(), token.clone()],
        "topics": [[transfer_topic, padded(to)], null, [padded(to), padded(&stranger_address())]],
    }));
    assert_eq!(either, to_recipient);
    assert!(logs(json!({
        "fromBlock": "0x0", "toBlock": "latest",
        "topics": [transfer_topic, null, padded(&stranger_address())],
    }))
    .is_empty());
    assert!(logs(json!({"fromBlock": "0x0", "address": stranger_address()})).is_empty());
    assert!(logs(all).len() >= to_recipient.len());

    // The block of that transfer: its bloom holds the token and the
    // recipient, its gas is its one transaction's; the block of the native
    // payment after it has no Ethereum log, so an empty bloom.
    let block_of =
        |n: u64| call_rpc(&node, "eth_getBlockByNumber", json!([tag(n), false]))["result"].clone();
    let transfer_height = quantity(&to_recipient[0]["blockNumber"]);
    let b = block_of(transfer_height);
    let txs = b["transactions"].as_array().unwrap();
    assert_eq!(txs.len(), 1);
    let receipt = call_rpc(&node, "eth_getTransactionReceipt", json!([txs[0]]))["result"].clone();
    assert_eq!(b["gasUsed"], receipt["gasUsed"]);
    assert_eq!(b["logsBloom"], receipt["logsBloom"]);
    assert_ne!(b["logsBloom"], format!("0x{}", "0".repeat(512)));
    assert!(quantity(&b["size"]) > 100);
    let full = call_rpc(
        &node,
        "eth_getBlockByNumber",
        json!([tag(transfer_height), true]),
    )["result"]
        .clone();
    assert_eq!(full["transactions"][0]["hash"], txs[0]);
    assert_eq!(
        (&full["size"], &full["logsBloom"]),
        (&b["size"], &b["logsBloom"])
    );
    let payment_height = (transfer_height + 1..=after)
        .find(|n| !block_of(*n)["transactions"].as_array().unwrap().is_empty())
        .expect("the payment's block");
    assert_eq!(
        block_of(payment_height)["logsBloom"],
        format!("0x{}", "0".repeat(512))
    );

    // Six approvals (a log each, no tokens needed) from one Ethereum dev
    // account: nonces n+1.. sent first wait in the queue, and n releases
    // them together, so several share a block. Each receipt alone says
    // what the block's receipts say of it: its cumulative gas and log
    // index count the receipts before it.
    let dev0 = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";
    let n =
        quantity(&call_rpc(&node, "eth_getTransactionCount", json!([dev0, "pending"]))["result"]);
    let raws: Vec<String> = (0..6u64)
        .map(|k| {
            let data = format!("0x095ea7b3{:0>64}{:064x}", format!("{:x}", 0xa0 + k), k + 1);
            let tx = json!([{"from": dev0, "to": token, "data": data, "nonce": tag(n + k), "gas": "0x30000"}]);
            let signed = call_rpc(&node, "eth_signTransaction", tx);
            signed["result"].as_str().unwrap_or_else(|| panic!("{signed}")).to_string()
        })
        .collect();
    let hashes: Vec<Value> = raws[1..]
        .iter()
        .chain(&raws[..1])
        .map(|raw| call_rpc(&node, "eth_sendRawTransaction", json!([raw]))["result"].clone())
        .collect();
    let receipts: Vec<Value> = hashes.iter().map(|h| mined(&node, h)).collect();
    let mut heights: Vec<u64> = receipts
        .iter()
        .map(|r| quantity(&r["blockNumber"]))
        .collect();
    heights.sort_unstable();
    heights.dedup();
    assert!(
        heights.len() < 6,
        "the approvals did not share a block: {heights:?}"
    );
    for h in heights {
        let all = call_rpc(&node, "eth_getBlockReceipts", json!([tag(h)]))["result"].clone();
        let all = all.as_array().unwrap();
        for (i, r) in all.iter().enumerate() {
            let alone = call_rpc(
                &node,
                "eth_getTransactionReceipt",
                json!([r["transactionHash"]]),
            )["result"]
                .clone();
            assert_eq!(&alone, r, "receipt {i} of block {h}");
        }
        if all.len() > 1 {
            assert!(quantity(&all[1]["cumulativeGasUsed"]) > quantity(&all[0]["gasUsed"]));
            assert_eq!(all[1]["logs"][0]["logIndex"], "0x1");
        }
    }
}

/// An address no test here sends to or from.
fn stranger_address() -> String {
    "0x0202020202020202020202020202020202020202".into()
}

/// A Solidity-style contract reads a native module through its precompile
/// address: this hand-assembled runtime STATICCALLs the address in its
/// code with its own calldata and returns the answer.
fn module_reader(module: &str) -> String {
    let h = tongtian_crypto::eth::keccak256(format!("tongtian/module/{module}").as_bytes());
    let mut addr = vec![0xff, 0xff];
    addr.extend_from_slice(&h[..18]);
    // CALLDATACOPY(0, 0, CALLDATASIZE); STATICCALL(GAS, addr, 0, CALLDATASIZE, 0, 0); POP;
    // RETURNDATACOPY(0, 0, RETURNDATASIZE); RETURN(0, RETURNDATASIZE)
    let mut runtime = vec![0x36, 0x5f, 0x5f, 0x37, 0x5f, 0x5f, 0x36, 0x5f, 0x73];
    runtime.extend_from_slice(&addr);
    runtime.extend_from_slice(&[0x5a, 0xfa, 0x50, 0x3d, 0x5f, 0x5f, 0x3e, 0x3d, 0x5f, 0xf3]);
    let len = runtime.len() as u8;
    // CODECOPY(0, 10, len); RETURN(0, len)
    let mut init = vec![0x60, len, 0x60, 0x0a, 0x5f, 0x39, 0x60, len, 0x5f, 0xf3];
    init.extend_from_slice(&runtime);
    hex::encode(init)
}

#[test]
fn evm_contracts_read_native_modules_at_their_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), "standard");
    let key = key0(&node);
    let code = dir.path().join("reader.bin");
    std::fs::write(&code, module_reader("membership")).unwrap();
    let deployed: Value = serde_json::from_str(&ok(node.cli(&[
        "--json",
        "contract",
        "deploy",
        "--key",
        &key,
        "--evm",
        code.to_str().unwrap(),
    ])))
    .unwrap();
    let reader = deployed["address"].as_str().unwrap().to_string();
    let call = |data: &str| {
        rpc(
            &node,
            &json!({"jsonrpc": "2.0", "id": 1, "method": "eth_call",
                "params": [{"to": reader, "data": format!("0x{}", hex::encode(data))}, "latest"]})
            .to_string(),
        )
    };
    let out = call("validators");
    let bytes = hex::decode(out["result"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let set: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert_eq!(set["version"], 0, "{out}");
    assert_eq!(set["validators"].as_array().map(|v| v.len()), Some(1));
    // A query the module does not answer comes back as its error code.
    let out = call("chains");
    let bytes = hex::decode(out["result"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    assert!(
        String::from_utf8_lossy(&bytes).contains("unknown_query"),
        "{out}"
    );
}

/// An EVM contract whose runtime returns the 32-byte word `n`: the init
/// code copies the runtime out and returns it.
fn returns_word(n: u8) -> (String, String) {
    // PUSH1 n; PUSH0; MSTORE; PUSH1 32; PUSH0; RETURN
    let runtime = vec![0x60, n, 0x5f, 0x52, 0x60, 0x20, 0x5f, 0xf3];
    let len = runtime.len() as u8;
    let mut init = vec![0x60, len, 0x60, 0x0a, 0x5f, 0x39, 0x60, len, 0x5f, 0xf3];
    init.extend_from_slice(&runtime);
    (hex::encode(init), hex::encode(runtime))
}

#[test]
fn votes_upgrade_a_contract_in_place_and_change_chain_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), "standard");
    let key = key0(&node);
    let admin = node.data_dir.join("orgs/org-0/admin.key");
    let admin = admin.to_str().unwrap();
    let (init, _) = returns_word(1);
    let code = dir.path().join("v1.bin");
    std::fs::write(&code, init).unwrap();
    let deployed = json_of(node.cli(&[
        "--json",
        "contract",
        "deploy",
        "--key",
        &key,
        "--evm",
        code.to_str().unwrap(),
    ]));
    let address = deployed["address"].as_str().unwrap().to_string();
    let call = || {
        rpc(
            &node,
            &json!({"jsonrpc": "2.0", "id": 1, "method": "eth_call",
                "params": [{"to": address, "data": "0x"}, "latest"]})
            .to_string(),
        )["result"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(call().ends_with("01"), "{}", call());

    // The dev organisation holds all the weight: the vote passes and the
    // code is replaced at the same address.
    let (_, v2) = returns_word(2);
    let v2_file = dir.path().join("v2.hex");
    std::fs::write(&v2_file, format!("0x{v2}\n")).unwrap();
    let voted = json_of(node.cli(&[
        "gov",
        "propose",
        "upgrade-contract",
        "--address",
        &address,
        "--code",
        v2_file.to_str().unwrap(),
        "--key",
        admin,
        "--json",
    ]));
    assert_eq!(voted["proposal_status"], "executed", "{voted}");
    assert!(call().ends_with("02"), "{}", call());
    let code_now = rpc(
        &node,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "eth_getCode",
            "params": [address, "latest"]})
        .to_string(),
    );
    assert_eq!(code_now["result"], format!("0x{v2}"));
    // An address with no contract: refused when proposed, nothing filed.
    let refused = node.cli(&[
        "gov",
        "propose",
        "upgrade-contract",
        "--address",
        "0x00000000000000000000000000000000000000e1",
        "--code",
        v2_file.to_str().unwrap(),
        "--key",
        admin,
        "--json",
    ]);
    assert!(!refused.status.success());

    // A parameter vote: transactions below the new minimum gas price are
    // refused at admission with the module's code; fee-free votes still
    // go through at the old price.
    let voted = json_of(node.cli(&[
        "gov",
        "propose",
        "set-param",
        "--name",
        "min_gas_price",
        "--value",
        "3",
        "--key",
        admin,
        "--json",
    ]));
    assert_eq!(voted["proposal_status"], "executed", "{voted}");
    let to = "0x00000000000000000000000000000000000000b7";
    let low = node.cli(&[
        "transfer", "--key", &key, "--to", to, "--amount", "1", "--json",
    ]);
    assert!(!low.status.success());
    let err: Value = serde_json::from_slice(&low.stdout).unwrap();
    assert!(err.to_string().contains("gas_price_below_minimum"), "{err}");
    let paid = json_of(node.cli(&[
        "transfer",
        "--key",
        &key,
        "--to",
        to,
        "--amount",
        "1",
        "--gas-price",
        "3",
        "--wait",
        "--json",
    ]));
    assert_eq!(paid["status"], "success", "{paid}");
    let params: Value = reqwest::blocking::get(format!("{}/v1/modules/params/params", node.url()))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(params["min_gas_price"], 3, "{params}");
}
