//! Cross-chain on four nodes of four organisations in one process: a
//! sub-chain created by vote is linked to the main chain at birth, every
//! member node relays (so relayers race), and tokens go main -> sub and
//! back with real BFT certificates checked by each side's light client.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_modules::gov::{Choice, GovMsg, ProposalKind};
use tongtian_modules::registry::ChainRequest;
use tongtian_testing::{TestNet, Wire};
use tongtian_types::{Address, GenesisAccount, VmKind};
use tongtian_xchain::transfer::TransferMsg;

fn addr(k: &Keypair) -> Address {
    Address::from_public_key(k.suite(), k.public_key())
}

fn id_of(r: &tongtian_types::Receipt) -> u64 {
    assert!(r.is_success(), "{:?}", r.status);
    u64::from_le_bytes(r.output[..8].try_into().unwrap())
}

async fn create(
    net: &TestNet,
    name: &str,
    engine: &str,
    suite: SuiteId,
    orgs: &[usize],
    fund: Address,
) {
    let kind = ProposalKind::CreateChain {
        chain: ChainRequest {
            name: name.into(),
            engine: engine.into(),
            suite,
            orgs: orgs.iter().map(|i| format!("org-{i}")).collect(),
            vms: VmKind::ALL.to_vec(),
            fund: vec![GenesisAccount {
                address: fund,
                balance: 1_000_000_000_000,
            }],
            chain_id: None,
            restricted: false,
        },
    };
    let p = id_of(&net.gov(0, GovMsg::Propose { kind }).await);
    for org in [1, 2] {
        let r = net
            .gov(
                org,
                GovMsg::Vote {
                    proposal: p,
                    choice: Choice::Yes,
                },
            )
            .await;
        assert!(r.is_success());
    }
}

/// `address`'s balance of `denom` on `chain` as node `i` reads it.
async fn balance(net: &TestNet, i: usize, chain: &str, address: &Address, denom: &str) -> u128 {
    let c = net.chain(i, chain).await.unwrap();
    let v = c
        .query_module(
            "transfer",
            &format!("balances/{address}"),
            &BTreeMap::new(),
            None,
        )
        .unwrap()
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|b| b["denom"] == denom)
        .map_or(0, |b| b["amount"].as_str().unwrap().parse().unwrap())
}

async fn wait_balance(net: &TestNet, i: usize, chain: &str, a: &Address, denom: &str, want: u128) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let b = balance(net, i, chain, a, denom).await;
        if b == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {i}: {a} holds {b} {denom} on {chain}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn query(c: &tongtian_node::ChainRuntime, module: &str, path: &str) -> serde_json::Value {
    c.query_module(module, path, &BTreeMap::new(), None)
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_cross_between_the_main_chain_and_a_bft_sub_chain_with_racing_relayers() {
    let mut net = TestNet::start_opts(4, "bft", SuiteId::Standard, Wire::Memory, true).await;
    let sm_user = Keypair::generate(SuiteId::Sm);
    create(
        &net,
        "trade",
        "bft",
        SuiteId::Sm,
        &[1, 2, 3],
        addr(&sm_user),
    )
    .await;
    for i in 1..4 {
        net.wait_height(i, "trade", 1, Duration::from_secs(30))
            .await;
    }
    let alice = net.funded[0].clone();
    let main = net.chain(0, "main").await.unwrap();
    let channel = query(&main, "channel", "channels")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Main -> trade.
    let r = net
        .send(
            0,
            "main",
            &alice,
            TransferMsg::Transfer {
                channel: channel.clone(),
                receiver: addr(&sm_user),
                amount: 5_000,
                denom: "native".into(),
                timeout_height: 100_000,
                timeout_ms: 0,
                forward: None,
            }
            .action(),
        )
        .await;
    assert!(r.is_success(), "{:?}", r.status);
    let voucher = "transfer/channel-0/native";
    for i in 1..4 {
        wait_balance(&net, i, "trade", &addr(&sm_user), voucher, 5_000).await;
    }
    // Back, from node 2.
    let r = net
        .send(
            2,
            "trade",
            &sm_user,
            TransferMsg::Transfer {
                channel: "channel-0".into(),
                receiver: addr(&alice),
                amount: 2_000,
                denom: voucher.into(),
                timeout_height: 100_000,
                timeout_ms: 0,
                forward: None,
            }
            .action(),
        )
        .await;
    assert!(r.is_success(), "{:?}", r.status);
    wait_balance(&net, 2, "trade", &addr(&sm_user), voucher, 3_000).await;
    // Both sides close their packets (acknowledged), and the invariant holds.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let main = net.chain(0, "main").await.unwrap();
        let trade = net.chain(1, "trade").await.unwrap();
        let open_main = query(&main, "channel", &format!("packets/{channel}"));
        let open_trade = query(&trade, "channel", "packets/channel-0");
        if open_main.as_array().unwrap().is_empty() && open_trade.as_array().unwrap().is_empty() {
            let supply = query(&trade, "transfer", &format!("supply/{voucher}"));
            let escrow = query(&main, "transfer", &format!("escrow/{channel}/native"));
            assert_eq!(supply, "3000");
            assert_eq!(escrow, "3000");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "packets still open: {open_main} {open_trade}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A Raft sub-chain of all four: its blocks carry majority certificates
    // once its voters signed them, which the main chain's client checks.
    let std_user = Keypair::generate(SuiteId::Standard);
    create(
        &net,
        "trace",
        "raft",
        SuiteId::Standard,
        &[0, 1, 2, 3],
        addr(&std_user),
    )
    .await;
    for i in 0..4 {
        net.wait_height(i, "trace", 2, Duration::from_secs(30))
            .await;
    }
    let main = net.chain(0, "main").await.unwrap();
    let trace_channel = query(&main, "channel", "channels")
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client"] == "trace" && c["port"] == "transfer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = net
        .send(
            0,
            "main",
            &alice,
            TransferMsg::Transfer {
                channel: trace_channel.clone(),
                receiver: addr(&std_user),
                amount: 700,
                denom: "native".into(),
                timeout_height: 100_000,
                timeout_ms: 0,
                forward: None,
            }
            .action(),
        )
        .await;
    assert!(r.is_success(), "{:?}", r.status);
    wait_balance(
        &net,
        3,
        "trace",
        &addr(&std_user),
        "transfer/channel-0/native",
        700,
    )
    .await;
    let r = net
        .send(
            3,
            "trace",
            &std_user,
            TransferMsg::Transfer {
                channel: "channel-0".into(),
                receiver: addr(&alice),
                amount: 300,
                denom: "transfer/channel-0/native".into(),
                timeout_height: 100_000,
                timeout_ms: 0,
                forward: None,
            }
            .action(),
        )
        .await;
    assert!(r.is_success(), "{:?}", r.status);
    let trace = net.chain(0, "trace").await.unwrap();
    let h = trace.latest().0;
    let cert = trace
        .store()
        .certificate(h.saturating_sub(3))
        .unwrap()
        .unwrap();
    assert!(
        cert.signatures.len() >= 3,
        "a majority of 4 signed: {cert:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let main = net.chain(0, "main").await.unwrap();
        let escrow = query(&main, "transfer", &format!("escrow/{trace_channel}/native"));
        if escrow == "400" {
            break;
        }
        assert!(Instant::now() < deadline, "escrow for trace is {escrow}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Sub-chain to sub-chain in two hops: trade's own token to the main
    // chain (a voucher there), then on to trace (which names both hops).
    let r = net
        .send(
            1,
            "trade",
            &sm_user,
            TransferMsg::Transfer {
                channel: "channel-0".into(),
                receiver: addr(&alice),
                amount: 77,
                denom: "native".into(),
                timeout_height: 100_000,
                timeout_ms: 0,
                forward: None,
            }
            .action(),
        )
        .await;
    assert!(r.is_success(), "{:?}", r.status);
    let on_main = format!("transfer/{channel}/native");
    wait_balance(&net, 0, "main", &addr(&alice), &on_main, 77).await;
    let r = net
        .send(
            0,
            "main",
            &alice,
            TransferMsg::Transfer {
                channel: trace_channel.clone(),
                receiver: addr(&std_user),
                amount: 70,
                denom: on_main.clone(),
                timeout_height: 100_000,
                timeout_ms: 0,
                forward: None,
            }
            .action(),
        )
        .await;
    assert!(r.is_success(), "{:?}", r.status);
    let two_hops = format!("transfer/channel-0/{on_main}");
    wait_balance(&net, 2, "trace", &addr(&std_user), &two_hops, 70).await;
    wait_balance(&net, 0, "main", &addr(&alice), &on_main, 7).await;
    // The same in one transfer: the main chain forwards it to trace and
    // acknowledges trade's packet once trace acknowledged the second hop.
    let r = net
        .send(
            1,
            "trade",
            &sm_user,
            TransferMsg::Transfer {
                channel: "channel-0".into(),
                receiver: addr(&std_user),
                amount: 50,
                denom: "native".into(),
                timeout_height: 100_000,
                timeout_ms: 0,
                forward: Some(tongtian_xchain::transfer::Forward {
                    channel: trace_channel.clone(),
                    timeout_height: 0,
                    timeout_ms: 0,
                }),
            }
            .action(),
        )
        .await;
    assert!(r.is_success(), "{:?}", r.status);
    wait_balance(&net, 2, "trace", &addr(&std_user), &two_hops, 120).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let trade = net.chain(1, "trade").await.unwrap();
        let main = net.chain(0, "main").await.unwrap();
        if query(&trade, "channel", "packets/channel-0")
            .as_array()
            .unwrap()
            .is_empty()
        {
            // Held by the main chain's escrow for trace, not by its module
            // account loose: the voucher's supply there covers both hops.
            assert_eq!(
                query(
                    &main,
                    "transfer",
                    &format!("escrow/{trace_channel}/{on_main}")
                ),
                "120"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "trade's forwarded packet is still open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // trade's validator set changes by vote (org-3's node leaves); the
    // main chain's client follows the change and packets still flow.
    let kind = ProposalKind::SetValidators {
        nodes: vec!["org-1/node-1".into(), "org-2/node-2".into()],
        chain: Some("trade".into()),
    };
    let p = id_of(&net.gov(0, GovMsg::Propose { kind }).await);
    for org in [1, 2] {
        let r = net
            .gov(
                org,
                GovMsg::Vote {
                    proposal: p,
                    choice: Choice::Yes,
                },
            )
            .await;
        assert!(r.is_success());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while net.chain(1, "trade").await.unwrap().validator_set().version != 1 {
        assert!(Instant::now() < deadline, "trade's set did not change");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = net
        .send(
            0,
            "main",
            &alice,
            TransferMsg::Transfer {
                channel: channel.clone(),
                receiver: addr(&sm_user),
                amount: 11,
                denom: "native".into(),
                timeout_height: 100_000,
                timeout_ms: 0,
                forward: None,
            }
            .action(),
        )
        .await;
    assert!(r.is_success());
    wait_balance(&net, 1, "trade", &addr(&sm_user), voucher, 3_011).await;
    let r = net
        .send(
            1,
            "trade",
            &sm_user,
            TransferMsg::Transfer {
                channel: "channel-0".into(),
                receiver: addr(&alice),
                amount: 11,
                denom: voucher.into(),
                timeout_height: 100_000,
                timeout_ms: 0,
                forward: None,
            }
            .action(),
        )
        .await;
    assert!(r.is_success());
    // Its ack needs the main chain's client of trade past the change.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let main = net.chain(0, "main").await.unwrap();
        let escrow = query(&main, "transfer", &format!("escrow/{channel}/native"));
        let trade = net.chain(1, "trade").await.unwrap();
        let open = query(&trade, "channel", "packets/channel-0");
        if escrow == "3000" && open.as_array().unwrap().is_empty() {
            let c = query(&main, "client", "clients/trade");
            let cs = query(
                &main,
                "client",
                &format!("clients/trade/consensus/{}", c["latest_height"]),
            );
            assert_eq!(cs["next_validators"]["version"], 1, "{cs}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "escrow {escrow}, open on trade {open}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The clients follow real certificates: both verified heights moved on.
    let main = net.chain(0, "main").await.unwrap();
    let c = query(&main, "client", "clients/trade");
    assert!(c["latest_height"].as_u64().unwrap() >= 1, "{c}");
    net.restart(1).await;
    net.shutdown().await;
}
