//! The in-process scenario: 4 nodes of 4 organisations; votes
//! create `trade` (bft, SM suite, organisations 1-3) and `trace` (raft,
//! standard suite, all four); each runs on exactly the nodes it names and
//! takes transfers; the non-member node of `trade` receives no frame of
//! it; a vote stops `trace` and every node stops it; a restarted node
//! resumes all its chains.

#![allow(clippy::unwrap_used)]

use std::time::Duration;
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_modules::gov::{Choice, GovMsg, ProposalKind};
use tongtian_modules::registry::ChainRequest;
use tongtian_testing::{TestNet, Wire};
use tongtian_types::{Action, Address, GenesisAccount, TxStatus, VmKind};

fn create(name: &str, engine: &str, suite: SuiteId, orgs: &[usize], fund: &[Address]) -> GovMsg {
    GovMsg::Propose {
        kind: ProposalKind::CreateChain {
            chain: ChainRequest {
                name: name.into(),
                engine: engine.into(),
                suite,
                orgs: orgs.iter().map(|i| format!("org-{i}")).collect(),
                vms: VmKind::ALL.to_vec(),
                fund: fund
                    .iter()
                    .map(|a| GenesisAccount {
                        address: *a,
                        balance: 1_000_000_000,
                    })
                    .collect(),
                chain_id: None,
                restricted: false,
            },
        },
    }
}

fn id_of(r: &tongtian_types::Receipt) -> u64 {
    assert!(r.is_success(), "{:?}", r.status);
    u64::from_le_bytes(r.output[..8].try_into().unwrap())
}

fn yes(p: u64) -> GovMsg {
    GovMsg::Vote {
        proposal: p,
        choice: Choice::Yes,
    }
}

fn addr(k: &Keypair) -> Address {
    Address::from_public_key(k.suite(), k.public_key())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_chains_by_vote_run_on_their_members_only_in_memory() {
    scenario(Wire::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_chains_by_vote_run_on_their_members_only_over_loopback() {
    scenario(Wire::Loopback).await;
}

async fn scenario(wire: Wire) {
    let mut net = TestNet::start_with(4, "bft", SuiteId::Standard, wire).await;
    let secs = Duration::from_secs;
    net.wait_height(0, "main", 1, secs(30)).await;
    let sm_user = Keypair::generate(SuiteId::Sm);
    let std_user = Keypair::generate(SuiteId::Standard);

    // trade: proposed by org-1, voted by org-2 and org-3 (3 of 4 > 2/3).
    let p = id_of(
        &net.gov(
            1,
            create("trade", "bft", SuiteId::Sm, &[1, 2, 3], &[addr(&sm_user)]),
        )
        .await,
    );
    assert!(net.gov(2, yes(p)).await.is_success());
    // org-2 cannot vote twice.
    let again = net.gov(2, yes(p)).await;
    assert!(matches!(&again.status, TxStatus::Failed { code, .. } if code == "already_voted"));
    assert!(net.gov(3, yes(p)).await.is_success());
    // trace: all four.
    let q = id_of(
        &net.gov(
            0,
            create(
                "trace",
                "raft",
                SuiteId::Standard,
                &[0, 1, 2, 3],
                &[addr(&std_user)],
            ),
        )
        .await,
    );
    assert!(net.gov(1, yes(q)).await.is_success());
    assert!(net.gov(2, yes(q)).await.is_success());

    for i in 1..4 {
        net.wait_height(i, "trade", 1, secs(30)).await;
    }
    for i in 0..4 {
        net.wait_height(i, "trace", 1, secs(30)).await;
    }
    assert!(
        net.chain(0, "trade").await.is_none(),
        "node 0 is no member of trade"
    );
    let trade_id = net.chain(1, "trade").await.unwrap().spec().chain_id;
    let trace_id = net.chain(0, "trace").await.unwrap().spec().chain_id;
    assert_eq!(
        net.chain(1, "trade").await.unwrap().spec().suite,
        SuiteId::Sm
    );

    // Transfers on each, through different members.
    let to = Address([0x42; 20]);
    let r = net
        .send(
            2,
            "trade",
            &sm_user,
            Action::Transfer {
                to,
                amount: 11,
                memo: vec![],
            },
        )
        .await;
    assert!(r.is_success(), "{:?}", r.status);
    let r = net
        .send(
            0,
            "trace",
            &std_user,
            Action::Transfer {
                to,
                amount: 13,
                memo: vec![],
            },
        )
        .await;
    assert!(r.is_success(), "{:?}", r.status);
    let trade_h = net.chain(2, "trade").await.unwrap().latest().0;
    for i in 1..4 {
        net.wait_height(i, "trade", trade_h, secs(30)).await;
    }
    let trace_h = net.chain(0, "trace").await.unwrap().latest().0;
    for i in 0..4 {
        net.wait_height(i, "trace", trace_h, secs(30)).await;
    }
    let on_trade = net.balances("trade", &to).await;
    assert_eq!(on_trade.len(), 3);
    assert!(on_trade.values().all(|b| *b == 11), "{on_trade:?}");
    assert!(net.balances("trace", &to).await.values().all(|b| *b == 13));
    // Every member has the same trade block at that height.
    let mut hashes = Vec::new();
    for i in 1..4 {
        let c = net.chain(i, "trade").await.unwrap();
        hashes.push(
            c.store()
                .header(trade_h)
                .unwrap()
                .unwrap()
                .hash(SuiteId::Sm),
        );
    }
    assert!(hashes.windows(2).all(|w| w[0] == w[1]));

    // The non-member received no frame of trade; the members did, and
    // everyone received trace's.
    let f = net.frames(trade_id);
    assert_eq!(f[0], 0, "trade frames reached node 0: {f:?}");
    assert!(f[1..].iter().all(|n| *n > 0), "{f:?}");
    assert!(net.frames(trace_id).iter().all(|n| *n > 0));

    // Node 3 restarts: it resumes main, trade and trace from its data.
    net.restart(3).await;
    net.wait_height(3, "trade", trade_h, secs(30)).await;
    net.wait_height(3, "trace", trace_h, secs(30)).await;
    assert_eq!(
        net.chain(3, "trade")
            .await
            .unwrap()
            .account(&to)
            .unwrap()
            .balance,
        11
    );

    // A vote stops trace; every node stops it; trade goes on.
    let s = id_of(
        &net.gov(
            0,
            GovMsg::Propose {
                kind: ProposalKind::StopChain {
                    name: "trace".into(),
                },
            },
        )
        .await,
    );
    assert!(net.gov(1, yes(s)).await.is_success());
    assert!(net.gov(2, yes(s)).await.is_success());
    for i in 0..4 {
        net.wait_stopped(i, "trace", secs(20)).await;
    }
    let h = net.chain(1, "trade").await.unwrap().latest().0;
    net.wait_height(3, "trade", h + 1, secs(30)).await;

    // Votes decide for trade too: its validators carry each decision
    // over (a chain parameter, then its validator set), with no one
    // sending anything on trade by hand.
    let pass = |kind: ProposalKind| {
        let net = &net;
        async move {
            let p = id_of(&net.gov(0, GovMsg::Propose { kind }).await);
            assert!(net.gov(1, yes(p)).await.is_success());
            assert!(net.gov(2, yes(p)).await.is_success());
            // Read where the last vote's receipt is (node 0 may be a
            // block behind over loopback).
            let main = net.chain(2, "main").await.unwrap();
            let none = std::collections::BTreeMap::new();
            let v = main
                .query_module("gov", &format!("proposals/{p}"), &none, None)
                .unwrap()
                .unwrap();
            assert_eq!(v["status"], "executed", "{v}");
        }
    };
    pass(ProposalKind::SetParam {
        name: "min_gas_price".into(),
        value: 2,
        chain: Some("trade".into()),
    })
    .await;
    pass(ProposalKind::SetValidators {
        nodes: vec!["org-1/node-1".into(), "org-2/node-2".into()],
        chain: Some("trade".into()),
    })
    .await;
    let deadline = std::time::Instant::now() + secs(60);
    for i in 1..4 {
        loop {
            let c = net.chain(i, "trade").await.unwrap();
            let none = std::collections::BTreeMap::new();
            let param = c
                .query_module("params", "params", &none, None)
                .unwrap()
                .unwrap();
            if param["min_gas_price"] == 2 && c.validator_set().validators.len() == 2 {
                assert_eq!(c.validator_set().version, 1);
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node {i}: trade has params {param} and {} validators",
                c.validator_set().validators.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Two validators go on making trade's blocks.
    let h = net.chain(1, "trade").await.unwrap().latest().0;
    net.wait_height(2, "trade", h + 2, secs(30)).await;
    net.shutdown().await;
}
