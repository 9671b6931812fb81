//! The `data` module on a real executor and store: registration, owner
//! rights, grants (protocols, columns, last block, uses, revocation) and
//! the history that records every change.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use tongtian_data::data::{Column, Data, DataMsg};
use tongtian_execution::testing::TestChain;
use tongtian_types::{Address, TxStatus, H256};

fn chain() -> TestChain {
    let mut c = TestChain::new(&[], vec![]);
    let spec = c.executor.spec().clone();
    let ex = std::mem::replace(&mut c.executor, tongtian_execution::Executor::new(spec));
    c.executor = ex.with_module(Arc::new(Data));
    c
}

fn code(r: &tongtian_types::Receipt) -> String {
    match &r.status {
        TxStatus::Success => "success".into(),
        TxStatus::Failed { code, .. } => code.clone(),
    }
}

fn q(c: &TestChain, path: &str, params: &[(&str, &str)]) -> Result<serde_json::Value, String> {
    let p: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    c.executor
        .query_module(&c.store, "data", path, &p)
        .unwrap()
        .map_err(|e| e.code)
}

fn register(c: &mut TestChain, k: usize) -> u64 {
    let r = c.run(
        k,
        DataMsg::Register {
            name: "customers".into(),
            schema: vec![
                Column {
                    name: "id".into(),
                    kind: "string".into(),
                },
                Column {
                    name: "age".into(),
                    kind: "int".into(),
                },
            ],
            rows: 1_000,
            commitment: H256([9; 32]),
            agent: "127.0.0.1:9000".into(),
            agent_key: vec![1; 32],
            price: 50,
        }
        .action(),
        1_000_000,
    );
    assert_eq!(code(&r), "success", "{:?}", r.status);
    u64::from_le_bytes(r.output[..8].try_into().unwrap())
}

fn authorize(
    c: &TestChain,
    asset: u64,
    user: &Address,
    protocol: &str,
    columns: &str,
    height: u64,
) -> Result<serde_json::Value, String> {
    let u = user.to_string();
    let h = height.to_string();
    q(
        c,
        &format!("assets/{asset}/authorize"),
        &[
            ("user", &u),
            ("protocol", protocol),
            ("columns", columns),
            ("height", &h),
        ],
    )
}

#[test]
fn assets_are_registered_owned_granted_and_their_history_kept() {
    let mut c = chain();
    let (owner, user, other) = (c.address(0), c.address(1), c.address(2));
    let id = register(&mut c, 0);
    assert_eq!(id, 1);
    let a = q(&c, "assets/1", &[]).unwrap();
    assert_eq!(a["owner"], owner.to_string());
    assert_eq!(a["version"], 1);
    assert_eq!(a["schema"][1]["type"], "int");

    // The owner needs no grant; anyone else does.
    assert_eq!(
        authorize(&c, id, &owner, "psi-ecdh", "id", 1).unwrap()["grant"],
        serde_json::Value::Null
    );
    assert_eq!(
        authorize(&c, id, &user, "psi-ecdh", "id", 1).unwrap_err(),
        "not_granted"
    );

    // Only the owner grants; bad grants are refused.
    let grant =
        |_by: usize, to: Address, protocols: &[&str], columns: &[&str], until: u64, uses: u32| {
            DataMsg::Grant {
                asset: id,
                to,
                protocols: protocols.iter().map(|s| s.to_string()).collect(),
                columns: columns.iter().map(|s| s.to_string()).collect(),
                until,
                uses,
            }
            .action()
        };
    let r = c.run(1, grant(1, user, &["psi-ecdh"], &[], 0, 0), 1_000_000);
    assert_eq!(code(&r), "not_owner");
    let r = c.run(0, grant(0, user, &["magic"], &[], 0, 0), 1_000_000);
    assert_eq!(code(&r), "unknown_protocol");
    let r = c.run(
        0,
        grant(0, user, &["psi-ecdh"], &["salary"], 0, 0),
        1_000_000,
    );
    assert_eq!(code(&r), "unknown_column");
    // psi-ecdh on column `id`, twice at most.
    let r = c.run(0, grant(0, user, &["psi-ecdh"], &["id"], 0, 2), 1_000_000);
    assert_eq!(code(&r), "success");
    assert_eq!(
        authorize(&c, id, &user, "psi-ecdh", "id", 10).unwrap()["grant"],
        1
    );
    assert_eq!(
        authorize(&c, id, &user, "psi-ot", "id", 10).unwrap_err(),
        "not_granted"
    );
    assert_eq!(
        authorize(&c, id, &user, "psi-ecdh", "id,age", 10).unwrap_err(),
        "not_granted"
    );
    assert_eq!(
        authorize(&c, id, &user, "psi-ecdh", "", 10).unwrap_err(),
        "not_granted",
        "all columns need a grant of all"
    );
    assert_eq!(
        authorize(&c, id, &other, "psi-ecdh", "id", 10).unwrap_err(),
        "not_granted"
    );

    // A grant with a last block expires after it.
    let r = c.run(0, grant(0, other, &["stats"], &[], 20, 0), 1_000_000);
    assert_eq!(code(&r), "success");
    assert_eq!(
        authorize(&c, id, &other, "stats", "age", 20).unwrap()["grant"],
        2
    );
    assert_eq!(
        authorize(&c, id, &other, "stats", "age", 21).unwrap_err(),
        "grant_expired"
    );

    // Only the job module spends a use.
    let r = c.run(
        1,
        DataMsg::Use {
            asset: id,
            user,
            protocol: "psi-ecdh".into(),
            columns: vec!["id".into()],
        }
        .action(),
        1_000_000,
    );
    assert_eq!(code(&r), "job_only");

    // Revoked: no longer granted.
    let r = c.run(
        0,
        DataMsg::Revoke {
            asset: id,
            grant: 1,
        }
        .action(),
        1_000_000,
    );
    assert_eq!(code(&r), "success");
    assert_eq!(
        authorize(&c, id, &user, "psi-ecdh", "id", 10).unwrap_err(),
        "not_granted"
    );
    let r = c.run(
        0,
        DataMsg::Revoke {
            asset: id,
            grant: 1,
        }
        .action(),
        1_000_000,
    );
    assert_eq!(code(&r), "unknown_grant");

    // Update bumps the version; transfer moves the rights; retire ends use.
    let r = c.run(
        1,
        DataMsg::Update {
            asset: id,
            commitment: H256([3; 32]),
            rows: 5,
        }
        .action(),
        1_000_000,
    );
    assert_eq!(code(&r), "not_owner");
    let r = c.run(
        0,
        DataMsg::Update {
            asset: id,
            commitment: H256([3; 32]),
            rows: 1_200,
        }
        .action(),
        1_000_000,
    );
    assert_eq!(code(&r), "success");
    let a = q(&c, "assets/1", &[]).unwrap();
    assert_eq!(a["version"], 2);
    assert_eq!(a["rows"], 1_200);
    let r = c.run(
        0,
        DataMsg::Transfer {
            asset: id,
            to: user,
        }
        .action(),
        1_000_000,
    );
    assert_eq!(code(&r), "success");
    assert_eq!(
        authorize(&c, id, &user, "psi-ot", "", 10).unwrap()["grant"],
        serde_json::Value::Null
    );
    let r = c.run(0, DataMsg::Retire { asset: id }.action(), 1_000_000);
    assert_eq!(code(&r), "not_owner", "the old owner has no rights left");
    let r = c.run(1, DataMsg::Retire { asset: id }.action(), 1_000_000);
    assert_eq!(code(&r), "success");
    assert_eq!(
        authorize(&c, id, &user, "psi-ot", "", 10).unwrap_err(),
        "asset_retired"
    );

    // Every change is in the history, in order.
    let h = q(&c, "assets/1/history", &[]).unwrap();
    let actions: Vec<&str> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "registered",
            "granted",
            "granted",
            "revoked",
            "updated",
            "transferred",
            "retired"
        ]
    );
    assert_eq!(h[1]["detail"]["columns"], "id");
    assert_eq!(
        q(&c, "assets/1/grants", &[])
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(q(&c, "assets/9", &[]).unwrap_err(), "unknown_asset");
}

#[test]
fn malformed_registrations_are_refused() {
    let mut c = chain();
    let reg = |schema: Vec<Column>, agent: &str| {
        DataMsg::Register {
            name: "x".into(),
            schema,
            rows: 1,
            commitment: H256::ZERO,
            agent: agent.into(),
            agent_key: vec![1],
            price: 0,
        }
        .action()
    };
    let col = |n: &str| Column {
        name: n.into(),
        kind: "string".into(),
    };
    assert_eq!(code(&c.run(0, reg(vec![], "a:1"), 1_000_000)), "bad_asset");
    assert_eq!(
        code(&c.run(0, reg(vec![col("a"), col("a")], "a:1"), 1_000_000)),
        "bad_asset"
    );
    assert_eq!(
        code(&c.run(0, reg(vec![col("a")], ""), 1_000_000)),
        "bad_asset"
    );
    let garbage = tongtian_types::Action::Module {
        module: "data".into(),
        msg: vec![0xff, 1, 2],
    };
    assert_eq!(code(&c.run(0, garbage, 1_000_000)), "bad_module_message");
    assert!(
        q(&c, "assets", &[]).unwrap().as_array().unwrap().is_empty(),
        "nothing was written"
    );
}
