//! An `fl` job end to end: a dev node, five `party serve` processes each
//! holding its own rows of the same columns, and a sixth account that
//! files `compute fl` and pays. One client agent is killed while the
//! rounds run: the job still completes, every round's participants and
//! model commitment are on chain, the killed client is in none of the
//! later rounds and is not paid, and the model reaches the output account.

#![allow(clippy::unwrap_used)]

mod common;

use common::{free_port, ok_json, AgentProc, DevNode};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn five_agents_train_a_model_and_one_dies_on_the_way() {
    let tmp = tempfile::tempdir().unwrap();
    let node = DevNode::start(&tmp.path().join("dev"), "standard");
    let keys = node.data_dir.join("dev-keys");
    let addr_of = |k: &Path| {
        ok_json(node.cli(&["key", "show", k.to_str().unwrap(), "--json"]))["address"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let payer = keys.join("dev-5.key");
    let payer_addr = addr_of(&payer);
    let mut agents = Vec::new();
    let mut assets = Vec::new();
    let mut owners = Vec::new();
    for c in 0..5usize {
        let home = tmp.path().join(format!("client-{c}"));
        std::fs::create_dir_all(home.join("data")).unwrap();
        let file = home.join("data/rows.csv");
        let mut text = String::from("id,x1,x2,x3,y\n");
        let mut s = 0x9e37_79b9u64 + c as u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 2001) as f64 / 1000.0 - 1.0
        };
        for r in 0..400 {
            let (a, b, d) = (next(), next(), next());
            let y = (a + 2.0 * b - d > 0.0) as u8;
            text.push_str(&format!("c{c}-{r},{a},{b},{d},{y}\n"));
        }
        std::fs::write(&file, text).unwrap();
        let owner = keys.join(format!("dev-{c}.key"));
        let port = free_port();
        let asset = ok_json(node.cli(&[
            "data",
            "register",
            "--name",
            &format!("rows-{c}"),
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
            "fl",
            "--key",
            owner.to_str().unwrap(),
            "--json",
        ]));
        agents.push(AgentProc::start(&node, &home, &owner, port));
        assets.push(asset.to_string());
        owners.push(addr_of(&owner));
    }

    let running = Command::new(common::bin())
        .args(["--node", &node.url()])
        .args([
            "compute",
            "fl",
            "--assets",
            &assets.join(","),
            "--key-column",
            "id",
            "--label",
            "y",
            "--model",
            "logistic",
            "--rounds",
            "1000",
            "--min-clients",
            "3",
            "--learning-rate",
            "0.5",
            "--pay",
            "60",
            "--timeout-blocks",
            "200",
            "--key",
            payer.to_str().unwrap(),
            "--wait",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill client 4 once the job runs and the rounds have begun.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = ok_json(node.cli(&["job", "list", "--status", "running", "--json"]));
        if !jobs.as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the job never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1000));
    agents[4].kill();
    let j = ok_json(running.wait_with_output().unwrap());
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
    let rounds = j["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 1000);
    for (k, r) in rounds.iter().enumerate() {
        assert_eq!(r["round"], k as u64 + 1);
        assert_eq!(r["model_commitment"].as_str().unwrap().len(), 66);
    }
    let last: Vec<u64> = rounds[999]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert_eq!(last, vec![0, 1, 2, 3], "client 4 is out");
    let with_4 = rounds
        .iter()
        .filter(|r| r["participants"].as_array().unwrap().len() == 5)
        .count();
    eprintln!("client 4 took part in {with_4} rounds");
    assert!(
        with_4 > 0 && with_4 < 1000,
        "killed mid-job: {with_4} rounds with it"
    );
    assert!(j["accuracy"].as_f64().unwrap() > 0.9, "{}", j["accuracy"]);
    // Paid: the four that finished, and the rest back to the requester.
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
    let mut want: Vec<(String, String)> = owners[..4]
        .iter()
        .map(|o| (o.clone(), "10".into()))
        .collect();
    want.push((payer_addr, "20".into()));
    assert_eq!(paid, want);
    // The four left train a small perceptron.
    let m = ok_json(node.cli(&[
        "compute",
        "fl",
        "--assets",
        &assets[..4].join(","),
        "--key-column",
        "id",
        "--label",
        "y",
        "--model",
        "mlp",
        "--hidden",
        "4",
        "--rounds",
        "30",
        "--learning-rate",
        "0.5",
        "--pay",
        "40",
        "--key",
        payer.to_str().unwrap(),
        "--wait",
        "--json",
    ]));
    assert_eq!(m["status"], "completed", "{m}");
    assert_eq!(m["model"]["model"], "mlp");
    assert_eq!(
        m["model"]["weights"].as_array().unwrap().len(),
        4 * 4 + 4 + 1
    );
    assert!(m["accuracy"].as_f64().unwrap() > 0.85, "{}", m["accuracy"]);
    let shown = ok_json(node.cli(&["job", "show", &j["job"].to_string(), "--json"]));
    assert_eq!(shown["rounds"].as_array().unwrap().len(), 1000);
    assert!(shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "job_round"));
}
