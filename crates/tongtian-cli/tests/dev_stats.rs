//! A `stats` job end to end: a dev node, three `party serve` processes
//! each holding one column of the same customers (in its own row order),
//! and a fourth account that files `compute stats`, pays, and receives
//! the means, variances and correlations, which equal the plaintext ones
//! on the pooled data; the job is completed with all three signatures and
//! each owner is paid; no owner's values reach the node or another agent.

#![allow(clippy::unwrap_used)]

mod common;

use common::{contains, free_port, ok_json, AgentProc, DevNode};

use serde_json::Value;
use std::path::Path;

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n)
}

fn corr(a: &[f64], b: &[f64]) -> f64 {
    let ((ma, va), (mb, vb)) = (mean_var(a), mean_var(b));
    let cov = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f64>()
        / a.len() as f64;
    cov / (va * vb).sqrt()
}

#[test]
fn three_agents_compute_joint_statistics_paid_on_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let node = DevNode::start(&tmp.path().join("dev"), "standard");
    let keys = node.data_dir.join("dev-keys");
    let addr_of = |k: &Path| {
        ok_json(node.cli(&["key", "show", k.to_str().unwrap(), "--json"]))["address"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let payer = keys.join("dev-3.key");
    let payer_addr = addr_of(&payer);

    // 301 customers; each owner holds one column, rows in its own order.
    let n = 301usize;
    let age: Vec<f64> = (0..n).map(|i| 20.0 + (i * 7 % 50) as f64).collect();
    let income: Vec<f64> = age
        .iter()
        .enumerate()
        .map(|(i, a)| a * 1_000.0 + (i * 37 % 500) as f64 - 250.0)
        .collect();
    let spend: Vec<f64> = (0..n).map(|i| -((i * 13 % 97) as f64) / 4.0).collect();
    let mut agents = Vec::new();
    let mut assets = Vec::new();
    let mut owners = Vec::new();
    for (k, (name, col)) in [("age", &age), ("income", &income), ("spend", &spend)]
        .into_iter()
        .enumerate()
    {
        let home = tmp.path().join(format!("agent-{k}"));
        std::fs::create_dir_all(home.join("data")).unwrap();
        let file = home.join(format!("data/{name}.csv"));
        // The first owner also holds the label: whether income is high.
        let mut text = if k == 0 {
            format!("id,{name},churned\n")
        } else {
            format!("id,{name}\n")
        };
        for j in 0..n {
            let i = (j * (k * 2 + 1) + k * 11) % n;
            if k == 0 {
                let label = (income[i] > 45_000.0) as u8;
                text.push_str(&format!("cust-{i:04},{},{label}\n", col[i]));
            } else {
                text.push_str(&format!("cust-{i:04},{}\n", col[i]));
            }
        }
        std::fs::write(&file, text).unwrap();
        let owner = keys.join(format!("dev-{k}.key"));
        let port = free_port();
        let asset = ok_json(node.cli(&[
            "data",
            "register",
            "--name",
            name,
            "--file",
            file.to_str().unwrap(),
            "--key-column",
            "id",
            "--price",
            "10",
            "--agent",
            &format!("127.0.0.1:{port}"),
            "--key",
            owner.to_str().unwrap(),
            "--json",
        ]))["asset"]
            .as_u64()
            .unwrap();
        ok_json(node.cli(&[
            "data",
            "grant",
            &asset.to_string(),
            "--to",
            &payer_addr,
            "--protocols",
            "stats,lr-vertical",
            "--key",
            owner.to_str().unwrap(),
            "--json",
        ]));
        agents.push(AgentProc::start(&node, &home, &owner, port));
        assets.push(asset.to_string());
        owners.push(addr_of(&owner));
    }

    let j = ok_json(node.cli(&[
        "compute",
        "stats",
        "--assets",
        &assets.join(","),
        "--key-column",
        "id",
        "--columns",
        "age,income,spend",
        "--ops",
        "mean,variance,corr,min,max,histogram",
        "--bins",
        "20,40,60,80",
        "--pay",
        "35",
        "--timeout-blocks",
        "40",
        "--key",
        payer.to_str().unwrap(),
        "--wait",
        "--json",
    ]));
    assert_eq!(
        j["status"],
        "completed",
        "{j}\n{}",
        agents
            .iter()
            .map(|a| a.log())
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    let r = &j["result"];
    for (name, col) in [("age", &age), ("income", &income), ("spend", &spend)] {
        let (m, v) = mean_var(col);
        let (gm, gv) = (
            r["mean"][name].as_f64().unwrap(),
            r["variance"][name].as_f64().unwrap(),
        );
        assert!(
            (gm - m).abs() < 1e-4 * m.abs().max(1.0),
            "mean {name}: {gm} vs {m}"
        );
        assert!(
            (gv - v).abs() < 1e-4 * v.max(1.0),
            "variance {name}: {gv} vs {v}"
        );
    }
    let want = corr(&age, &income);
    assert!(
        (r["corr"]["age,income"].as_f64().unwrap() - want).abs() < 1e-6,
        "{r}"
    );
    assert!((r["corr"]["age,spend"].as_f64().unwrap() - corr(&age, &spend)).abs() < 1e-6);
    assert!((r["corr"]["income,spend"].as_f64().unwrap() - corr(&income, &spend)).abs() < 1e-6);
    assert!(r.get("sum").is_none(), "only the statistics asked for");
    // By secure comparison: extremes and a histogram.
    assert!(
        (r["min"]["age"].as_f64().unwrap() - 20.0).abs() < 1e-4,
        "{r}"
    );
    assert!((r["max"]["age"].as_f64().unwrap() - 69.0).abs() < 1e-4);
    let spend_min = spend.iter().copied().fold(f64::INFINITY, f64::min);
    assert!((r["min"]["spend"].as_f64().unwrap() - spend_min).abs() < 1e-4);
    let hist: Vec<u64> = (0..3)
        .map(|b| {
            let (lo, hi) = (20.0 + 20.0 * b as f64, 40.0 + 20.0 * b as f64);
            age.iter().filter(|a| **a >= lo && **a < hi).count() as u64
        })
        .collect();
    assert_eq!(r["histogram"]["counts"]["age"], serde_json::json!(hist));

    let id = j["job"].to_string();
    let shown = ok_json(node.cli(&["job", "show", &id, "--json"]));
    assert_eq!(shown["status"], "completed");
    assert_eq!(shown["parties"].as_array().unwrap().len(), 3);
    let paid: Vec<(String, String)> = shown["payments"]
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
    let mut want_paid: Vec<(String, String)> = owners
        .iter()
        .map(|o| (o.clone(), "10".to_string()))
        .collect();
    want_paid.push((payer_addr.clone(), "5".into()));
    assert_eq!(paid, want_paid);
    // The output is in the first agent's results only.
    assert!(agents[0]
        .home
        .join(format!("results/job-{id}.json"))
        .exists());
    assert!(!agents[1]
        .home
        .join(format!("results/job-{id}.json"))
        .exists());

    // A model on the same three assets: features from all three, the
    // label from the first; only the output account gets it.
    let j = ok_json(node.cli(&[
        "compute",
        "lr",
        "--assets",
        &assets.join(","),
        "--key-column",
        "id",
        "--label",
        "churned",
        "--epochs",
        "40",
        "--holdout",
        "0.25",
        "--pay",
        "35",
        "--key",
        payer.to_str().unwrap(),
        "--wait",
        "--json",
    ]));
    assert_eq!(j["status"], "completed", "{j}");
    assert_eq!(j["features"], serde_json::json!(["age", "income", "spend"]));
    let acc = j["accuracy"].as_f64().unwrap();
    assert!(acc > 0.85, "held-out accuracy {acc}");
    let lr_id = j["job"].to_string();
    let model: Value = serde_json::from_slice(
        &std::fs::read(agents[0].home.join(format!("results/job-{lr_id}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(model["accuracy"], j["accuracy"]);
    assert_eq!(model["weights"].as_array().unwrap().len(), 3);

    // Owner 1's incomes appear nowhere else.
    let needle = format!(",{}\n", income[17]);
    let found = |dir: &Path| contains(dir, needle.as_bytes()).is_some();
    assert!(!found(&node.data_dir));
    assert!(!found(&agents[0].home) && !found(&agents[2].home));
    assert!(found(&agents[1].home));
}
