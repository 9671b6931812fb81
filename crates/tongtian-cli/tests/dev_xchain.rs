//! Cross-chain on a dev node: a sub-chain created by vote gets its light
//! clients and transfer channel with the main chain at birth, and the dev
//! node relays: tokens go main -> sub as vouchers and come back.

#![allow(clippy::unwrap_used)]

mod common;

use common::{ok_json, DevNode};

use serde_json::Value;
use std::time::{Duration, Instant};

fn balance(node: &DevNode, chain: &str, address: &str, denom: &str) -> u128 {
    let b = ok_json(node.cli(&["--chain", chain, "xchain", "balances", address, "--json"]));
    b.as_array()
        .unwrap()
        .iter()
        .find(|x| x["denom"] == denom)
        .map_or(0, |x| x["amount"].as_str().unwrap().parse().unwrap())
}

#[test]
fn a_sub_chain_born_by_vote_trades_tokens_with_the_main_chain() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("dev"), "standard");
    let admin = node.data_dir.join("orgs/org-0/admin.key");
    let dev0 = node.data_dir.join("dev-keys/dev-0.key");
    let dev0_addr = ok_json(node.cli(&["key", "show", dev0.to_str().unwrap(), "--json"]))
        ["address"]
        .as_str()
        .unwrap()
        .to_string();
    let sm_key = dir.path().join("sm.key");
    let sm_addr = ok_json(node.cli(&[
        "key",
        "new",
        "--suite",
        "sm",
        "--out",
        sm_key.to_str().unwrap(),
        "--json",
    ]))["address"]
        .as_str()
        .unwrap()
        .to_string();
    let fund = format!("{sm_addr}=1000000000");
    let p = ok_json(node.cli(&[
        "gov",
        "propose",
        "create-chain",
        "--name",
        "trade",
        "--engine",
        "solo",
        "--suite",
        "sm",
        "--orgs",
        "org-0",
        "--fund",
        &fund,
        "--key",
        admin.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(p["proposal_status"], "executed", "{p}");
    let start = Instant::now();
    while node
        .cli(&["--chain", "trade", "status", "--json"])
        .status
        .code()
        != Some(0)
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "trade never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Born linked: each side has a client of the other and a channel.
    let clients = ok_json(node.cli(&["xchain", "clients", "--json"]));
    assert_eq!(clients[0]["id"], "trade", "{clients}");
    let channels = ok_json(node.cli(&["--chain", "trade", "xchain", "channels", "--json"]));
    assert_eq!(channels[0]["id"], "channel-0", "{channels}");
    assert_eq!(channels[0]["client"], "main");

    // Main -> trade: escrowed on main, a voucher on trade.
    let sent = ok_json(node.cli(&[
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
    ]));
    assert_eq!(sent["status"], "acknowledged", "{sent}");
    assert_eq!(sent["packet"]["sequence"], 1);
    assert_eq!(sent["packet"]["source_channel"], "channel-0");
    let voucher = sent["denom_on_destination"].as_str().unwrap().to_string();
    assert_eq!(voucher, "transfer/channel-0/native");
    assert_eq!(balance(&node, "trade", &sm_addr, &voucher), 1000);
    let pending = ok_json(node.cli(&["xchain", "packets", "--pending", "--json"]));
    assert!(pending.as_array().unwrap().is_empty(), "{pending}");

    // Back: 400 of the voucher burned on trade, released on main.
    let before = balance(&node, "main", &dev0_addr, "native");
    let back = ok_json(node.cli(&[
        "xchain",
        "transfer",
        "--from-chain",
        "trade",
        "--to-chain",
        "main",
        "--to",
        &dev0_addr,
        "--amount",
        "400",
        "--denom",
        &voucher,
        "--key",
        sm_key.to_str().unwrap(),
        "--wait",
        "--json",
    ]));
    assert_eq!(back["status"], "acknowledged", "{back}");
    assert_eq!(back["denom_on_destination"], "native");
    assert_eq!(balance(&node, "trade", &sm_addr, &voucher), 600);
    assert_eq!(balance(&node, "main", &dev0_addr, "native"), before + 400);
    // Supply invariant: vouchers on trade = escrow on main.
    let escrow = ok_json(node.cli(&[
        "--json",
        "xchain",
        "balances",
        "0xffff000000000000000000000000000000000000",
    ]));
    let _ = escrow;
    let (s, e) = (
        reqwest::blocking::get(format!(
            "{}/v1/chains/trade/modules/transfer/supply/{voucher}",
            node.url()
        ))
        .unwrap()
        .json::<Value>()
        .unwrap(),
        reqwest::blocking::get(format!(
            "{}/v1/modules/transfer/escrow/channel-0/native",
            node.url()
        ))
        .unwrap()
        .json::<Value>()
        .unwrap(),
    );
    assert_eq!(s, "600");
    assert_eq!(e, "600");

    // An NFT goes to trade with its metadata and comes back.
    let ok = |args: &[&str]| ok_json(node.cli(args));
    ok(&[
        "xchain",
        "nft",
        "create-class",
        "--class",
        "bills",
        "--uri",
        "https://bills.example",
        "--key",
        dev0.to_str().unwrap(),
        "--json",
    ]);
    ok(&[
        "xchain",
        "nft",
        "mint",
        "--class",
        "bills",
        "--id",
        "b1",
        "--uri",
        "ipfs://b1",
        "--data",
        "0x0102",
        "--key",
        dev0.to_str().unwrap(),
        "--json",
    ]);
    let sent = ok(&[
        "xchain",
        "nft-transfer",
        "--from-chain",
        "main",
        "--to-chain",
        "trade",
        "--class",
        "bills",
        "--id",
        "b1",
        "--to",
        &sm_addr,
        "--key",
        dev0.to_str().unwrap(),
        "--wait",
        "--json",
    ]);
    assert_eq!(sent["status"], "acknowledged", "{sent}");
    let class = sent["class_on_destination"].as_str().unwrap().to_string();
    assert_eq!(class, "nft-transfer/channel-1/bills");
    let there = ok(&[
        "--chain", "trade", "xchain", "nft", "owned", &sm_addr, "--json",
    ]);
    assert_eq!(there[0]["class"], class.as_str(), "{there}");
    assert_eq!(there[0]["uri"], "ipfs://b1");
    assert_eq!(there[0]["data"], "0x0102");
    let back = ok(&[
        "xchain",
        "nft-transfer",
        "--from-chain",
        "trade",
        "--to-chain",
        "main",
        "--class",
        &class,
        "--id",
        "b1",
        "--to",
        &dev0_addr,
        "--key",
        sm_key.to_str().unwrap(),
        "--wait",
        "--json",
    ]);
    assert_eq!(back["status"], "acknowledged", "{back}");
    assert_eq!(back["class_on_destination"], "bills");
    let home = ok(&["xchain", "nft", "owned", &dev0_addr, "--json"]);
    assert_eq!(home[0]["id"], "b1", "{home}");

    // Misbehaviour: trade's validator signs a second header for a height
    // the main chain's client verified; anyone submits both; the client
    // freezes and packets stop until a vote unfreezes it.
    let validator =
        tongtian_crypto::keyfile::KeyFile::read(&node.data_dir.join("validator-sm.key"))
            .unwrap()
            .open(None)
            .unwrap();
    let (code, block) = {
        let r = reqwest::blocking::get(format!("{}/v1/chains/trade/blocks/1", node.url())).unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    assert_eq!(code, 200, "{block}");
    let a: tongtian_types::BlockHeader = serde_json::from_value(block["header"].clone()).unwrap();
    let mut b = a.clone();
    b.state_root = tongtian_types::H256([7; 32]);
    let sign = |h: &tongtian_types::BlockHeader| {
        let hash = h.hash(tongtian_crypto::SuiteId::Sm);
        serde_json::json!({
            "header": h,
            "certificate": tongtian_types::Certificate {
                engine: "solo".into(),
                block_hash: hash,
                round: 0,
                signatures: vec![tongtian_types::CertificateSignature {
                    public_key: validator.public_key().to_vec(),
                    signature: validator.sign(&tongtian_types::BlockHeader::commit_bytes(&hash, 0)),
                }],
            },
        })
    };
    let evidence = dir.path().join("evidence.json");
    std::fs::write(
        &evidence,
        serde_json::json!({ "client": "trade", "a": sign(&a), "b": sign(&b) }).to_string(),
    )
    .unwrap();
    let out = ok_json(node.cli(&[
        "xchain",
        "evidence",
        "submit",
        evidence.to_str().unwrap(),
        "--key",
        dev0.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(out["status"], "success", "{out}");
    let clients = ok_json(node.cli(&["xchain", "clients", "--json"]));
    assert_eq!(clients[0]["frozen"], true, "{clients}");
    // A transfer is still received on trade (trade's client of the main
    // chain is fine), but its acknowledgement, a proof from trade, is not
    // accepted: the packet stays open on the main chain.
    let stuck = ok_json(node.cli(&[
        "xchain",
        "transfer",
        "--from-chain",
        "main",
        "--to-chain",
        "trade",
        "--to",
        &sm_addr,
        "--amount",
        "5",
        "--key",
        dev0.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(stuck["status"], "sent");
    let open = || {
        ok_json(node.cli(&["xchain", "packets", "--pending", "--json"]))
            .as_array()
            .unwrap()
            .len()
    };
    let start = Instant::now();
    while balance(&node, "trade", &sm_addr, &voucher) != 605 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not received on trade"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(open(), 1, "the ack must wait for the unfreeze");
    // The vote unfreezes it; the relayer delivers.
    let voted = ok_json(node.cli(&[
        "gov",
        "propose",
        "unfreeze-client",
        "--client",
        "trade",
        "--key",
        admin.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(voted["proposal_status"], "executed", "{voted}");
    let start = Instant::now();
    while balance(&node, "trade", &sm_addr, &voucher) != 605 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not delivered after the unfreeze"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Create sub-chain `name` (solo, suite `suite`) on the dev node, funding
/// `fund`, and wait until it runs.
fn create_chain(node: &DevNode, name: &str, suite: &str, fund: &str) {
    let admin = node.data_dir.join("orgs/org-0/admin.key");
    let fund = format!("{fund}=1000000000");
    let p = ok_json(node.cli(&[
        "gov",
        "propose",
        "create-chain",
        "--name",
        name,
        "--engine",
        "solo",
        "--suite",
        suite,
        "--orgs",
        "org-0",
        "--fund",
        &fund,
        "--key",
        admin.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(p["proposal_status"], "executed", "{p}");
    let start = Instant::now();
    while node
        .cli(&["--chain", name, "status", "--json"])
        .status
        .code()
        != Some(0)
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{name} never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn new_key(node: &DevNode, dir: &std::path::Path, name: &str, suite: &str) -> (String, String) {
    let path = dir.join(format!("{name}.key"));
    let addr = ok_json(node.cli(&[
        "key",
        "new",
        "--suite",
        suite,
        "--out",
        path.to_str().unwrap(),
        "--json",
    ]))["address"]
        .as_str()
        .unwrap()
        .to_string();
    (path.to_str().unwrap().to_string(), addr)
}

#[test]
fn sub_chains_trade_through_the_hub_and_over_a_channel_opened_by_vote() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("dev"), "standard");
    let admin = node.data_dir.join("orgs/org-0/admin.key");
    let (sm_key, sm_addr) = new_key(&node, dir.path(), "sm", "sm");
    let (std_key, std_addr) = new_key(&node, dir.path(), "std", "standard");
    create_chain(&node, "trade", "sm", &sm_addr);
    create_chain(&node, "trace", "standard", &std_addr);
    let transfer = |from: &str, to: &str, receiver: &str, amount: &str, denom: &str, key: &str| {
        ok_json(node.cli(&[
            "xchain",
            "transfer",
            "--from-chain",
            from,
            "--to-chain",
            to,
            "--to",
            receiver,
            "--amount",
            amount,
            "--denom",
            denom,
            "--key",
            key,
            "--wait",
            "--json",
        ]))
    };

    // No direct channel: trade's token goes through the main chain, which
    // forwards it; trade's packet is acknowledged once trace's is.
    let sent = transfer("trade", "trace", &std_addr, "100", "native", &sm_key);
    assert_eq!(sent["status"], "acknowledged", "{sent}");
    let via_hub = sent["denom_on_destination"].as_str().unwrap().to_string();
    assert_eq!(via_hub, "transfer/channel-0/transfer/channel-0/native");
    assert_eq!(balance(&node, "trace", &std_addr, &via_hub), 100);
    // The main chain holds it in escrow for trace, minted as trade's voucher.
    let escrow = reqwest::blocking::get(format!(
        "{}/v1/modules/transfer/escrow/channel-2/transfer/channel-0/native",
        node.url()
    ))
    .unwrap()
    .json::<Value>()
    .unwrap();
    assert_eq!(escrow, "100");

    // A direct channel by vote: both ends `channel-p{N}`, each sub-chain
    // given a client of the other bootstrapped from the main chain's.
    let p = ok_json(node.cli(&[
        "gov",
        "propose",
        "open-channel",
        "--a-chain",
        "trade",
        "--b-chain",
        "trace",
        "--key",
        admin.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(p["proposal_status"], "executed", "{p}");
    let channel = format!("channel-p{}", p["proposal"]);
    let links = reqwest::blocking::get(format!("{}/v1/modules/registry/links", node.url()))
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(links[0]["a"]["channel"], channel.as_str(), "{links}");
    assert_eq!(links[0]["a"]["client"], "trace");
    assert_eq!(links[0]["b"]["client"], "trade");
    let start = Instant::now();
    for chain in ["trade", "trace"] {
        loop {
            let list = ok_json(node.cli(&["--chain", chain, "xchain", "channels", "--json"]));
            if list
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["id"] == channel.as_str())
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{chain} never opened {channel}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let sent = transfer("trade", "trace", &std_addr, "40", "native", &sm_key);
    assert_eq!(sent["status"], "acknowledged", "{sent}");
    assert_eq!(sent["packet"]["source_channel"], channel.as_str());
    let direct = format!("transfer/{channel}/native");
    assert_eq!(sent["denom_on_destination"], direct.as_str());
    assert_eq!(balance(&node, "trace", &std_addr, &direct), 40);
    // And back the way it came: burned on trace, released on trade.
    let before = balance(&node, "trade", &sm_addr, "native");
    let back = transfer("trace", "trade", &sm_addr, "15", &direct, &std_key);
    assert_eq!(back["status"], "acknowledged", "{back}");
    assert_eq!(back["denom_on_destination"], "native");
    assert_eq!(balance(&node, "trace", &std_addr, &direct), 25);
    assert_eq!(balance(&node, "trade", &sm_addr, "native"), before + 15);

    // A channel with no vote: proposed on trade, opened by IBC's handshake
    // that the dev node's relayer carries on, each step proven.
    let opened = ok_json(node.cli(&[
        "xchain",
        "open-channel",
        "--from-chain",
        "trade",
        "--to-chain",
        "trace",
        "--key",
        &sm_key,
        "--json",
    ]));
    let hs = opened["channel"].as_str().unwrap().to_string();
    assert!(hs.starts_with("channel-h"), "{opened}");
    let start = Instant::now();
    let other = loop {
        let mine = ok_json(node.cli(&["--chain", "trade", "xchain", "channels", "--json"]));
        let theirs = ok_json(node.cli(&["--chain", "trace", "xchain", "channels", "--json"]));
        let open = |l: &Value, id: &str| {
            l.as_array()
                .unwrap()
                .iter()
                .any(|c| c["id"] == id && c["state"] == "open")
        };
        let answer = theirs
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["counterparty_channel"] == hs.as_str())
            .map(|c| c["id"].as_str().unwrap().to_string());
        if let Some(b) = answer {
            if open(&mine, &hs) && open(&theirs, &b) {
                break b;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the handshake of {hs} did not finish: {mine} {theirs}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let sent = ok_json(node.cli(&[
        "xchain",
        "transfer",
        "--from-chain",
        "trade",
        "--to-chain",
        "trace",
        "--channel",
        &hs,
        "--to",
        &std_addr,
        "--amount",
        "9",
        "--key",
        &sm_key,
        "--wait",
        "--json",
    ]));
    assert_eq!(sent["status"], "acknowledged", "{sent}");
    let handshaken = format!("transfer/{other}/native");
    assert_eq!(sent["denom_on_destination"], handshaken.as_str());
    assert_eq!(balance(&node, "trace", &std_addr, &handshaken), 9);

    // A channel from a chain to itself is refused before any vote.
    let out = node.cli(&[
        "gov",
        "propose",
        "open-channel",
        "--a-chain",
        "trade",
        "--b-chain",
        "trade",
        "--key",
        admin.to_str().unwrap(),
        "--json",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("same_chain")
            || String::from_utf8_lossy(&out.stderr).contains("same_chain"),
        "{out:?}"
    );

    // An external EVM chain by vote: an attested client (2 of 3 named
    // attesters) and a channel to its port contract, here on trade.
    let port = "0x00000000000000000000000000000000000000e1";
    let connect = |threshold: &'static str| {
        node.cli(&[
            "gov",
            "propose",
            "connect-evm",
            "--client",
            "anvil",
            "--evm-chain-id",
            "31337",
            "--attesters",
            "0x00000000000000000000000000000000000000a1,0x00000000000000000000000000000000000000a2,0x00000000000000000000000000000000000000a3",
            "--threshold",
            threshold,
            "--channel",
            "channel-e",
            "--counterparty-channel",
            "channel-0",
            "--counterparty-port",
            port,
            "--target",
            "trade",
            "--key",
            admin.to_str().unwrap(),
            "--json",
        ])
    };
    let out = connect("4");
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("bad_threshold")
            || String::from_utf8_lossy(&out.stdout).contains("bad_threshold"),
        "{out:?}"
    );
    let p = ok_json(connect("2"));
    assert_eq!(p["proposal_status"], "executed", "{p}");
    let start = Instant::now();
    loop {
        let clients = ok_json(node.cli(&["--chain", "trade", "xchain", "clients", "--json"]));
        if let Some(c) = clients
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "anvil")
        {
            assert_eq!(c["model"]["attested"]["threshold"], 2, "{c}");
            assert_eq!(c["chain_id"], 31337);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "trade never made the anvil client: {clients}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let channels = ok_json(node.cli(&["--chain", "trade", "xchain", "channels", "--json"]));
    let e = channels
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "channel-e")
        .unwrap_or_else(|| panic!("{channels}"));
    assert_eq!(e["client"], "anvil");
    assert_eq!(e["counterparty_port"], port);
}
