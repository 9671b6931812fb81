//! The `job` module with `data` on a real executor and store: escrow,
//! acceptance that spends grants, completion only with every party's
//! signature over the same values, payments exactly once, and aborts that
//! refund.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use tongtian_data::data::{Column, Data, DataMsg};
use tongtian_data::job::{completion_digest, JobModule, JobMsg, PartySignature};
use tongtian_execution::testing::TestChain;
use tongtian_types::{Address, TxStatus, H256};

fn chain() -> TestChain {
    let mut c = TestChain::new(&[], vec![]);
    let spec = c.executor.spec().clone();
    let ex = std::mem::replace(&mut c.executor, tongtian_execution::Executor::new(spec));
    c.executor = ex
        .with_module(Arc::new(Data))
        .with_module(Arc::new(JobModule));
    c
}

fn code(r: &tongtian_types::Receipt) -> String {
    match &r.status {
        TxStatus::Success => "success".into(),
        TxStatus::Failed { code, .. } => code.clone(),
    }
}

fn job(c: &TestChain, id: u64) -> serde_json::Value {
    c.executor
        .query_module(&c.store, "job", &format!("jobs/{id}"), &BTreeMap::new())
        .unwrap()
        .unwrap()
}

/// Key `k` registers an asset whose agent key is its own, at `price`.
fn register(c: &mut TestChain, k: usize, price: u128) -> u64 {
    let key = c.keys[k].public_key().to_vec();
    let r = c.run(
        k,
        DataMsg::Register {
            name: format!("set-{k}"),
            schema: vec![Column {
                name: "id".into(),
                kind: "string".into(),
            }],
            rows: 10,
            commitment: H256([k as u8; 32]),
            agent: format!("127.0.0.1:{}", 9000 + k),
            agent_key: key,
            price,
        }
        .action(),
        1_000_000,
    );
    assert_eq!(code(&r), "success");
    u64::from_le_bytes(r.output[..8].try_into().unwrap())
}

fn grant(c: &mut TestChain, k: usize, asset: u64, to: Address, uses: u32) {
    let r = c.run(
        k,
        DataMsg::Grant {
            asset,
            to,
            protocols: vec!["psi-ecdh".into()],
            columns: vec!["id".into()],
            until: 0,
            uses,
        }
        .action(),
        1_000_000,
    );
    assert_eq!(code(&r), "success");
}

fn create(c: &mut TestChain, k: usize, assets: Vec<u64>, payment: u128) -> (String, u64) {
    let out = c.address(k);
    let r = c.run(
        k,
        JobMsg::Create {
            protocol: "psi-ecdh".into(),
            assets,
            columns: vec!["id".into()],
            params: b"{}".to_vec(),
            output_to: out,
            payment,
            timeout_blocks: 5,
        }
        .action(),
        1_000_000,
    );
    let id = if r.output.len() >= 8 {
        u64::from_le_bytes(r.output[..8].try_into().unwrap())
    } else {
        0
    };
    (code(&r), id)
}

fn sign(c: &TestChain, k: usize, job: u64, result: H256, transcript: H256) -> PartySignature {
    let chain_id = c.executor.spec().chain_id;
    let d = completion_digest(chain_id, job, &result, &transcript);
    PartySignature {
        public_key: c.keys[k].public_key().to_vec(),
        signature: c.keys[k].sign(&d),
    }
}

#[test]
fn a_job_escrows_spends_grants_completes_with_every_signature_and_pays_once() {
    let mut c = chain();
    let (a, b, req) = (register(&mut c, 0, 50), register(&mut c, 1, 30), 2);
    let requester = c.address(req);
    // Too little for the assets' prices.
    assert_eq!(create(&mut c, req, vec![a, b], 79).0, "payment_short");
    let before = c.account(&requester).balance;
    let (ok, id) = create(&mut c, req, vec![a, b], 100);
    assert_eq!(ok, "success");
    let j = job(&c, id);
    assert_eq!(j["status"], "open");
    assert_eq!(j["escrow"], "100");
    let fee = before - c.account(&requester).balance - 100;

    // Without a grant, the owner's acceptance is refused.
    let r = c.run(0, JobMsg::Accept { job: id, asset: a }.action(), 1_000_000);
    assert_eq!(code(&r), "not_granted");
    grant(&mut c, 0, a, requester, 1);
    grant(&mut c, 1, b, requester, 0);
    // Only the asset's owner (or agent) accepts for it.
    let r = c.run(3, JobMsg::Accept { job: id, asset: a }.action(), 1_000_000);
    assert_eq!(code(&r), "not_owner");
    assert_eq!(
        code(&c.run(0, JobMsg::Accept { job: id, asset: a }.action(), 1_000_000)),
        "success"
    );
    assert_eq!(
        code(&c.run(0, JobMsg::Accept { job: id, asset: a }.action(), 1_000_000)),
        "already_accepted"
    );
    assert_eq!(job(&c, id)["status"], "open");
    // Completing before every owner accepted is refused.
    let (res, tr) = (H256([0xaa; 32]), H256([0xbb; 32]));
    let complete = |sigs: Vec<PartySignature>, res: H256| {
        JobMsg::Complete {
            job: id,
            result_commitment: res,
            transcript_hash: tr,
            signatures: sigs,
        }
        .action()
    };
    let sigs = vec![sign(&c, 0, id, res, tr), sign(&c, 1, id, res, tr)];
    assert_eq!(
        code(&c.run(3, complete(sigs.clone(), res), 1_000_000)),
        "job_not_running"
    );
    assert_eq!(
        code(&c.run(1, JobMsg::Accept { job: id, asset: b }.action(), 1_000_000)),
        "success"
    );
    assert_eq!(job(&c, id)["status"], "running");

    // One party's signature, or signatures of another result, do not do.
    assert_eq!(
        code(&c.run(3, complete(vec![sigs[0].clone()], res), 1_000_000)),
        "incomplete_signatures"
    );
    assert_eq!(
        code(&c.run(3, complete(sigs.clone(), H256([0xcc; 32])), 1_000_000)),
        "incomplete_signatures"
    );
    let (owner_a, owner_b) = (c.address(0), c.address(1));
    let (ba, bb) = (c.account(&owner_a).balance, c.account(&owner_b).balance);
    let br = c.account(&requester).balance;
    assert_eq!(
        code(&c.run(3, complete(sigs.clone(), res), 1_000_000)),
        "success"
    );
    assert_eq!(c.account(&owner_a).balance, ba + 50);
    assert_eq!(c.account(&owner_b).balance, bb + 30);
    assert_eq!(c.account(&requester).balance, br + 20, "the rest back");
    let j = job(&c, id);
    assert_eq!(j["status"], "completed");
    assert_eq!(j["result_commitment"], res.to_string());
    assert_eq!(j["transcript_hash"], tr.to_string());
    assert_eq!(j["payments"].as_array().unwrap().len(), 3);
    assert_eq!(j["parties"].as_array().unwrap().len(), 2);
    // Paid once: neither a second completion nor an abort pays again.
    assert_eq!(
        code(&c.run(3, complete(sigs, res), 1_000_000)),
        "job_not_running"
    );
    for _ in 0..6 {
        c.block(vec![]).unwrap();
    }
    assert_eq!(
        code(&c.run(3, JobMsg::Abort { job: id }.action(), 1_000_000)),
        "job_finished"
    );
    assert_eq!(
        c.account(&requester).balance,
        before - fee - 80,
        "paid 80 in all"
    );

    // The single-use grant is spent: a second job over asset a is refused.
    let (ok, id2) = create(&mut c, req, vec![a], 50);
    assert_eq!(ok, "success");
    assert_eq!(
        code(&c.run(0, JobMsg::Accept { job: id2, asset: a }.action(), 1_000_000)),
        "grant_expired"
    );
    // It times out and refunds in full, once.
    assert_eq!(
        code(&c.run(3, JobMsg::Abort { job: id2 }.action(), 1_000_000)),
        "timeout_not_reached"
    );
    for _ in 0..6 {
        c.block(vec![]).unwrap();
    }
    let b2 = c.account(&requester).balance;
    assert_eq!(
        code(&c.run(3, JobMsg::Abort { job: id2 }.action(), 1_000_000)),
        "success"
    );
    assert_eq!(c.account(&requester).balance, b2 + 50);
    assert_eq!(job(&c, id2)["status"], "aborted");
    assert_eq!(
        code(&c.run(3, JobMsg::Abort { job: id2 }.action(), 1_000_000)),
        "job_finished"
    );
    assert_eq!(c.account(&requester).balance, b2 + 50);

    // The asset's history shows the jobs that used it.
    let h = c
        .executor
        .query_module(
            &c.store,
            "data",
            &format!("assets/{a}/history"),
            &BTreeMap::new(),
        )
        .unwrap()
        .unwrap();
    let used = h
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "used")
        .count();
    assert_eq!(used, 1);

    // Each job keeps its own log; the list filters by status and party.
    let q = |path: &str, params: &[(&str, String)]| {
        let p: BTreeMap<String, String> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        c.executor
            .query_module(&c.store, "job", path, &p)
            .unwrap()
            .unwrap()
    };
    let log = q(&format!("jobs/{id2}/events"), &[]);
    let steps: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["job_created", "job_aborted"]);
    assert_eq!(log[1]["detail"]["status"], "aborted");
    let all = q("jobs", &[]).as_array().unwrap().len();
    let aborted = q("jobs", &[("status", "aborted".into())]);
    assert!(aborted
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["status"] == "aborted"));
    assert!(aborted.as_array().unwrap().len() < all);
    let party = job(&c, id2)["parties"][0].as_str().unwrap().to_string();
    assert!(q("jobs", &[("party", party)])
        .as_array()
        .unwrap()
        .iter()
        .any(|j| j["id"] == id2));
    assert!(q("jobs", &[("party", "00".into())])
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn bad_jobs_are_refused_and_nothing_is_escrowed() {
    let mut c = chain();
    let a = register(&mut c, 0, 10);
    let req = c.address(2);
    let before = c.account(&req).balance;
    let bad = |protocol: &str, assets: Vec<u64>, timeout: u64| {
        JobMsg::Create {
            protocol: protocol.into(),
            assets,
            columns: vec![],
            params: vec![],
            output_to: Address::ZERO,
            payment: 10,
            timeout_blocks: timeout,
        }
        .action()
    };
    assert_eq!(
        code(&c.run(2, bad("magic", vec![a], 5), 1_000_000)),
        "unknown_protocol"
    );
    assert_eq!(
        code(&c.run(2, bad("psi-ecdh", vec![], 5), 1_000_000)),
        "bad_job"
    );
    assert_eq!(
        code(&c.run(2, bad("psi-ecdh", vec![a, a], 5), 1_000_000)),
        "bad_job"
    );
    assert_eq!(
        code(&c.run(2, bad("psi-ecdh", vec![a], 0), 1_000_000)),
        "bad_job"
    );
    assert_eq!(
        code(&c.run(2, bad("psi-ecdh", vec![7], 5), 1_000_000)),
        "unknown_asset"
    );
    let spent = before - c.account(&req).balance;
    let jobs = c
        .executor
        .query_module(&c.store, "job", "jobs", &BTreeMap::new())
        .unwrap()
        .unwrap();
    assert!(jobs.as_array().unwrap().is_empty());
    // Only fees were paid: no escrow left the account.
    assert!(spent < 10 * 5 * 1_000_000, "fees only: {spent}");
    assert_eq!(
        c.account(&tongtian_execution::module::module_address("job"))
            .balance,
        0
    );
}

#[test]
fn rounds_are_recorded_in_order_by_the_aggregator_and_decide_who_signs() {
    let mut c = chain();
    let (a0, a1, a2) = (
        register(&mut c, 0, 10),
        register(&mut c, 1, 10),
        register(&mut c, 2, 10),
    );
    let req = c.address(0);
    grant(&mut c, 1, a1, req, 0);
    grant(&mut c, 2, a2, req, 0);
    let (ok, id) = create(&mut c, 0, vec![a0, a1, a2], 30);
    assert_eq!(ok, "success");
    let round = |c: &mut TestChain, k: usize, n: u32, parts: Vec<u32>| {
        code(
            &c.run(
                k,
                JobMsg::Round {
                    job: id,
                    round: n,
                    participants: parts,
                    model_commitment: H256([n as u8; 32]),
                }
                .action(),
                1_000_000,
            ),
        )
    };
    // Not before it runs.
    assert_eq!(round(&mut c, 0, 1, vec![0, 1]), "job_not_running");
    for (k, a) in [(0, a0), (1, a1), (2, a2)] {
        let r = c.run(k, JobMsg::Accept { job: id, asset: a }.action(), 1_000_000);
        assert_eq!(code(&r), "success");
    }
    assert_eq!(round(&mut c, 1, 1, vec![0, 1]), "not_aggregator");
    assert_eq!(round(&mut c, 0, 2, vec![0, 1]), "round_out_of_order");
    assert_eq!(round(&mut c, 0, 1, vec![1, 0]), "bad_round");
    assert_eq!(round(&mut c, 0, 1, vec![0, 7]), "bad_round");
    assert_eq!(round(&mut c, 0, 1, vec![]), "bad_round");
    assert_eq!(round(&mut c, 0, 1, vec![0, 1, 2]), "success");
    assert_eq!(round(&mut c, 0, 2, vec![0, 1]), "success");
    let j = job(&c, id);
    assert_eq!(j["rounds"].as_array().unwrap().len(), 2);
    assert_eq!(j["rounds"][1]["participants"], serde_json::json!([0, 1]));

    // The last round had 0 and 1: their signatures complete it, and only
    // their owners are paid.
    let (res, tr) = (H256([5; 32]), H256([6; 32]));
    let complete = |c: &mut TestChain, sigs: Vec<PartySignature>| {
        code(
            &c.run(
                3,
                JobMsg::Complete {
                    job: id,
                    result_commitment: res,
                    transcript_hash: tr,
                    signatures: sigs,
                }
                .action(),
                1_000_000,
            ),
        )
    };
    let s0 = sign(&c, 0, id, res, tr);
    let s1 = sign(&c, 1, id, res, tr);
    assert_eq!(complete(&mut c, vec![s0.clone()]), "incomplete_signatures");
    assert_eq!(complete(&mut c, vec![s0, s1]), "success");
    let j = job(&c, id);
    assert_eq!(j["status"], "completed");
    let paid: Vec<(String, String)> = j["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["to"].as_str().unwrap().into(),
                p["amount"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        paid,
        vec![
            (c.address(0).to_string(), "10".into()),
            (c.address(1).to_string(), "10".into()),
            (c.address(0).to_string(), "10".into()),
        ]
    );
    assert_eq!(round(&mut c, 0, 3, vec![0, 1]), "job_not_running");
}
