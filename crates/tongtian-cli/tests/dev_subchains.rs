//! The governance path on a dev node: its one organisation votes a
//! sub-chain into existence, the node starts it in the same process, the
//! sub-chain serves its own API and takes SM-signed transfers, a second
//! vote stops it, and a restart resumes exactly the active chains.

#![allow(clippy::unwrap_used)]

mod common;

use common::{ok_json, DevNode};

use serde_json::Value;
use std::time::{Duration, Instant};

fn get(node: &DevNode, path: &str) -> (u16, Value) {
    let r = reqwest::blocking::get(format!("{}{}", node.url(), path)).unwrap();
    let code = r.status().as_u16();
    (code, r.json().unwrap_or(Value::Null))
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

#[test]
fn a_vote_creates_a_sub_chain_that_runs_serves_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = DevNode::start(&dir.path().join("dev"), "standard");
    let admin = node.data_dir.join("orgs/org-0/admin.key");
    assert!(admin.exists(), "the dev organisation's admin key");
    let admin = admin.to_str().unwrap().to_string();

    // The dev node's organisation.
    let orgs = ok_json(node.cli(&["org", "list", "--json"]));
    assert_eq!(orgs[0]["id"], "org-0");
    assert_eq!(orgs.as_array().unwrap().len(), 1);
    // Its admin re-registers its node from the node's home (node.key and
    // validator-sm.key): same transport key, both suites' keys.
    let before = orgs[0]["nodes"][0].clone();
    ok_json(node.cli(&[
        "org",
        "set-nodes",
        "org-0",
        "--home",
        node.data_dir.to_str().unwrap(),
        "--key",
        &admin,
        "--json",
    ]));
    let shown = ok_json(node.cli(&["org", "show", "org-0", "--json"]));
    assert_eq!(shown["nodes"][0]["transport_key"], before["transport_key"]);
    assert_eq!(
        shown["nodes"][0]["validator_keys"],
        before["validator_keys"]
    );
    assert_eq!(shown["nodes"][0]["name"], "dev");
    // Another account may not change org-0's nodes.
    let dev3 = node.data_dir.join("dev-keys/dev-3.key");
    let out = node.cli(&[
        "org",
        "set-nodes",
        "org-0",
        "--home",
        node.data_dir.to_str().unwrap(),
        "--key",
        dev3.to_str().unwrap(),
        "--json",
    ]);
    assert!(!out.status.success());

    // An SM account to fund in the sub-chain's genesis.
    let sm_key = dir.path().join("sm.key");
    let shown = ok_json(node.cli(&[
        "key",
        "new",
        "--suite",
        "sm",
        "--out",
        sm_key.to_str().unwrap(),
        "--json",
    ]));
    let sm_addr = shown["address"].as_str().unwrap().to_string();

    // A non-member's proposal is refused, and files nothing.
    let dev0 = node.data_dir.join("dev-keys/dev-0.key");
    let out = node.cli(&[
        "gov",
        "propose",
        "create-chain",
        "--name",
        "ledger",
        "--engine",
        "solo",
        "--orgs",
        "org-0",
        "--key",
        dev0.to_str().unwrap(),
        "--json",
    ]);
    assert!(!out.status.success());
    let refused: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(refused["error"]["code"], "not_a_member", "{refused}");

    // The vote: one organisation holding all the weight passes it at once.
    let submitted = Instant::now();
    let fund = format!("{sm_addr}=1000000");
    let p = ok_json(node.cli(&[
        "gov",
        "propose",
        "create-chain",
        "--name",
        "ledger",
        "--engine",
        "solo",
        "--suite",
        "sm",
        "--orgs",
        "org-0",
        "--fund",
        &fund,
        "--key",
        &admin,
        "--json",
    ]));
    assert_eq!(p["proposal"], 1, "{p}");
    assert_eq!(p["proposal_status"], "executed", "{p}");
    let shown = ok_json(node.cli(&["gov", "show", "1", "--json"]));
    assert_eq!(shown["status"], "executed");
    assert_eq!(shown["tally"]["yes"], 1);

    // The node starts it, and it makes blocks.
    let created = wait_for(
        "the sub-chain's first block",
        Duration::from_secs(20),
        || {
            let (code, st) = get(&node, "/v1/chains/ledger/status");
            code == 200 && st["height"].as_u64().unwrap_or(0) >= 1
        },
    );
    let since_submit = submitted.elapsed();
    eprintln!(
        "creation: proposal submitted to first sub-chain block {since_submit:?} (poll {created:?})"
    );
    let list = ok_json(node.cli(&["chain", "list", "--json"]));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tongtian-dev", "ledger"], "{list}");
    let (code, _) = get(&node, "/v1/chains/ledger/modules/membership/validators");
    assert_eq!(code, 200);
    let ledger = &list[1];
    assert_eq!(ledger["engine"], "solo");
    assert_eq!(ledger["suite"], "sm");
    assert_eq!(ledger["orgs"], serde_json::json!(["org-0"]));
    assert_eq!(ledger["status"], "active");
    assert_eq!(ledger["hosted"], true);
    assert_eq!(ledger["chain_id"], 8646);
    assert_eq!(list[0]["orgs"], serde_json::json!(["org-0"]));

    // Its genesis funded the SM account; an SM-signed transfer commits.
    let acct = ok_json(node.cli(&["--chain", "ledger", "account", "show", &sm_addr, "--json"]));
    assert_eq!(acct["balance"], "1000000", "{acct}");
    let to = "0x00000000000000000000000000000000000000d4";
    let sent = ok_json(node.cli(&[
        "--chain",
        "ledger",
        "transfer",
        "--key",
        sm_key.to_str().unwrap(),
        "--to",
        to,
        "--amount",
        "250",
        "--wait",
        "--json",
    ]));
    assert_eq!(sent["status"], "success", "{sent}");
    let acct = ok_json(node.cli(&["--chain", "8646", "account", "show", to, "--json"]));
    assert_eq!(acct["balance"], "250");
    // The main chain knows nothing of it.
    let main = ok_json(node.cli(&["account", "show", to, "--json"]));
    assert_eq!(main["balance"], "0");
    // Each chain its own Ethereum chain id.
    let r: Value = reqwest::blocking::Client::new()
        .post(format!("{}/eth/ledger", node.url()))
        .json(
            &serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}),
        )
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["result"], "0x21c6");

    // A restricted chain: only its funded accounts and members' admins
    // may send, even an account that was paid there later.
    let dev1 = node.data_dir.join("dev-keys/dev-1.key");
    let dev2 = node.data_dir.join("dev-keys/dev-2.key");
    let addr_of = |k: &std::path::Path| {
        ok_json(node.cli(&["key", "show", k.to_str().unwrap(), "--json"]))["address"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a1, a2) = (addr_of(&dev1), addr_of(&dev2));
    let p = ok_json(node.cli(&[
        "gov",
        "propose",
        "create-chain",
        "--name",
        "vault",
        "--engine",
        "solo",
        "--orgs",
        "org-0",
        "--fund",
        &format!("{a1}=1000000000"),
        "--restricted",
        "--key",
        &admin,
        "--json",
    ]));
    assert_eq!(p["proposal_status"], "executed", "{p}");
    wait_for("vault", Duration::from_secs(20), || {
        get(&node, "/v1/chains/vault/status").0 == 200
    });
    let paid = ok_json(node.cli(&[
        "--chain",
        "vault",
        "transfer",
        "--key",
        dev1.to_str().unwrap(),
        "--to",
        &a2,
        "--amount",
        "50000000",
        "--wait",
        "--json",
    ]));
    assert_eq!(paid["status"], "success", "{paid}");
    let out = node.cli(&[
        "--chain",
        "vault",
        "transfer",
        "--key",
        dev2.to_str().unwrap(),
        "--to",
        &a1,
        "--amount",
        "1",
        "--json",
    ]);
    assert!(!out.status.success());
    let refused: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(refused["error"]["code"], "not_allowed", "{refused}");
    // The same account is free on the main chain.
    let sent = ok_json(node.cli(&[
        "transfer",
        "--key",
        dev2.to_str().unwrap(),
        "--to",
        &a1,
        "--amount",
        "1",
        "--wait",
        "--json",
    ]));
    assert_eq!(sent["status"], "success");

    // A duplicate name is refused with its code.
    let out = node.cli(&[
        "gov",
        "propose",
        "create-chain",
        "--name",
        "ledger",
        "--engine",
        "solo",
        "--orgs",
        "org-0",
        "--key",
        &admin,
        "--json",
    ]);
    assert!(!out.status.success());
    let refused: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(refused["error"]["code"], "duplicate_chain", "{refused}");

    // A second chain, then a restart: both resume with their data.
    ok_json(node.cli(&[
        "gov",
        "propose",
        "create-chain",
        "--name",
        "notary",
        "--engine",
        "solo",
        "--orgs",
        "org-0",
        "--key",
        &admin,
        "--json",
    ]));
    wait_for("notary", Duration::from_secs(20), || {
        get(&node, "/v1/chains/notary/status").0 == 200
    });
    let (_, before) = get(&node, "/v1/chains/ledger/status");
    node.restart();
    wait_for(
        "both sub-chains after restart",
        Duration::from_secs(30),
        || {
            get(&node, "/v1/chains/ledger/status").0 == 200
                && get(&node, "/v1/chains/notary/status").0 == 200
        },
    );
    let (_, after) = get(&node, "/v1/chains/ledger/status");
    assert!(
        after["height"].as_u64() >= before["height"].as_u64(),
        "{before} {after}"
    );
    let acct = ok_json(node.cli(&["--chain", "ledger", "account", "show", to, "--json"]));
    assert_eq!(acct["balance"], "250");

    // A stop vote: the node stops it, keeps its data, and lists it stopped.
    let p = ok_json(node.cli(&[
        "gov",
        "propose",
        "stop-chain",
        "--name",
        "ledger",
        "--key",
        &admin,
        "--json",
    ]));
    assert_eq!(p["proposal_status"], "executed", "{p}");
    wait_for("ledger to stop", Duration::from_secs(20), || {
        get(&node, "/v1/chains/ledger/status").0 == 404
    });
    let (code, err) = get(&node, "/v1/chains/ledger/status");
    assert_eq!((code, err["code"].as_str()), (404, Some("unknown_chain")));
    let (_, shown) = get(&node, "/v1/chains/ledger");
    assert_eq!(shown["status"], "stopped");
    assert_eq!(shown["hosted"], false);
    assert!(
        node.data_dir.join("chains/ledger/chain.redb").exists(),
        "data kept"
    );
    // The other chain goes on.
    assert_eq!(get(&node, "/v1/chains/notary/status").0, 200);
    let list = ok_json(node.cli(&["gov", "list", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 4);
    // After a restart the stopped chain stays stopped.
    node.restart();
    wait_for("notary after restart", Duration::from_secs(30), || {
        get(&node, "/v1/chains/notary/status").0 == 200
    });
    assert_eq!(get(&node, "/v1/chains/ledger/status").0, 404);
}
