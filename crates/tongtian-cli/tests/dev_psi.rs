//! A PSI job end to end, every part its own process: a dev node, two
//! party agents (`tongtian party serve`) each holding one owner's CSV,
//! and a third account that files the job with `compute psi`, pays, and
//! gets the output. The output equals the plaintext join; the job's
//! history shows every step; neither owner's rows appear in the node's
//! files or logs or in the other agent's; a job without grants, over an
//! asset no agent holds, or whose agent is killed mid-run ends `aborted`
//! with its escrow refunded, and the agents go on with the next job.

#![allow(clippy::unwrap_used)]

mod common;

use common::{bin, contains, free_port, ok_json, AgentProc, DevNode};

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn write_csv(path: &Path, tag: &str, keys: &[String]) {
    let mut text = String::from("id,secret\n");
    for (i, k) in keys.iter().enumerate() {
        text.push_str(&format!("{k},zq-{tag}-secret-{i}\n"));
    }
    std::fs::write(path, text).unwrap();
}

fn register(node: &DevNode, file: &Path, key: &Path, port: u16) -> u64 {
    ok_json(node.cli(&[
        "data",
        "register",
        "--name",
        file.file_stem().unwrap().to_str().unwrap(),
        "--file",
        file.to_str().unwrap(),
        "--key-column",
        "id",
        "--price",
        "10",
        "--agent",
        &format!("127.0.0.1:{port}"),
        "--key",
        key.to_str().unwrap(),
        "--json",
    ]))["asset"]
        .as_u64()
        .unwrap()
}

fn grant(node: &DevNode, asset: u64, to: &str, key: &Path) {
    ok_json(node.cli(&[
        "data",
        "grant",
        &asset.to_string(),
        "--to",
        to,
        "--protocols",
        "psi-ecdh,psi-ot",
        "--key",
        key.to_str().unwrap(),
        "--json",
    ]));
}

fn psi_args(assets: &str, payer: &Path, timeout: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "compute",
        "psi",
        "--assets",
        assets,
        "--key-column",
        "id",
        "--pay",
        "25",
        "--timeout-blocks",
        timeout,
        "--key",
        payer.to_str().unwrap(),
        "--wait",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn psi(node: &DevNode, assets: &str, payer: &Path, timeout: &str, extra: &[&str]) -> Value {
    let args = psi_args(assets, payer, timeout, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok_json(node.cli(&args))
}

/// An aborted job: the whole escrow went back to the requester, once,
/// and the chain holds none of it.
fn assert_refunded(node: &DevNode, j: &Value, payer: &str) {
    assert_eq!(j["status"], "aborted", "{j}");
    let shown = ok_json(node.cli(&["job", "show", &j["job"].to_string(), "--json"]));
    assert_eq!(shown["status"], "aborted");
    assert_eq!(shown["escrow"], "0");
    assert_eq!(
        shown["payments"],
        serde_json::json!([{ "to": payer, "amount": "25" }]),
        "{shown}"
    );
    assert!(shown["result_commitment"].is_null());
}

fn csv_keys(file: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn a_psi_job_runs_between_two_agents_and_is_paid_on_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let node = DevNode::start(&tmp.path().join("dev"), "standard");
    let keys = node.data_dir.join("dev-keys");
    let (owner_a, owner_b, payer) = (
        keys.join("dev-0.key"),
        keys.join("dev-1.key"),
        keys.join("dev-2.key"),
    );
    let addr_of = |k: &Path| {
        ok_json(node.cli(&["key", "show", k.to_str().unwrap(), "--json"]))["address"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a_addr, b_addr, payer_addr) = (addr_of(&owner_a), addr_of(&owner_b), addr_of(&payer));

    // A holds zq-key-0..299 (one duplicate, one untrimmed), B 150..499.
    let (home_a, home_b) = (tmp.path().join("agent-a"), tmp.path().join("agent-b"));
    std::fs::create_dir_all(home_a.join("data")).unwrap();
    std::fs::create_dir_all(home_b.join("data")).unwrap();
    let mut xa: Vec<String> = (0..300).map(|i| format!("zq-key-{i}")).collect();
    xa.push("zq-key-7".into());
    xa[3] = " zq-key-3 ".into();
    let xb: Vec<String> = (150..500).map(|i| format!("zq-key-{i}")).collect();
    let (file_a, file_b) = (home_a.join("data/a.csv"), home_b.join("data/b.csv"));
    write_csv(&file_a, "a", &xa);
    write_csv(&file_b, "b", &xb);
    let (port_a, port_b) = (free_port(), free_port());
    let asset_a = register(&node, &file_a, &owner_a, port_a);
    let asset_b = register(&node, &file_b, &owner_b, port_b);
    // An asset whose file is nowhere in its agent's directory.
    let stray = tmp.path().join("stray.csv");
    write_csv(&stray, "stray", &xb);
    let asset_stray = register(&node, &stray, &owner_a, port_a);

    let mut agent_a = AgentProc::start(&node, &home_a, &owner_a, port_a);
    let mut agent_b = AgentProc::start(&node, &home_b, &owner_b, port_b);
    let pair = format!("{asset_a},{asset_b}");

    // No grants yet: both agents decline, the job times out, the escrow
    // comes back whole.
    let j = psi(&node, &pair, &payer, "4", &[]);
    assert_refunded(&node, &j, &payer_addr);
    assert!(agent_a.log().contains("not_granted"), "{}", agent_a.log());

    grant(&node, asset_a, &payer_addr, &owner_a);
    grant(&node, asset_b, &payer_addr, &owner_b);

    // The job.
    let j = psi(
        &node,
        &pair,
        &payer,
        "60",
        &["--out", tmp.path().join("out.csv").to_str().unwrap()],
    );
    assert_eq!(j["status"], "completed", "{j}");
    let want: BTreeSet<String> = (150..300).map(|i| format!("zq-key-{i}")).collect();
    assert_eq!(j["intersection_size"], want.len());
    let id = j["job"].as_u64().unwrap();
    let result = home_a.join(format!("results/job-{id}.csv"));
    assert_eq!(
        csv_keys(&result),
        want,
        "the receiver's output is the plaintext join"
    );
    assert_eq!(
        csv_keys(&tmp.path().join("out.csv")),
        want,
        "and so is what the output account fetched"
    );
    assert!(
        !home_b.join(format!("results/job-{id}.csv")).exists(),
        "the sender gets no output"
    );

    let shown = ok_json(node.cli(&["job", "show", &id.to_string(), "--json"]));
    assert_eq!(shown["status"], "completed");
    assert_eq!(shown["result_commitment"], j["result_commitment"]);
    assert_eq!(shown["transcript_hash"], j["transcript_hash"]);
    assert_eq!(shown["parties"].as_array().unwrap().len(), 2);
    let payments: Vec<(String, String)> = shown["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["to"].as_str().unwrap().to_string(),
                p["amount"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        payments,
        vec![
            (a_addr.clone(), "10".to_string()),
            (b_addr.clone(), "10".to_string()),
            (payer_addr.clone(), "5".to_string())
        ]
    );
    let steps: Vec<&str> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "job_created",
            "job_accepted",
            "job_accepted",
            "job_completed"
        ]
    );
    let history = ok_json(node.cli(&["data", "history", &asset_a.to_string(), "--json"]));
    let actions: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["registered", "granted", "used"]);
    let shown = ok_json(node.cli(&["job", "show", &id.to_string(), "--json"]));
    assert_eq!(shown["protocol"], "psi-ecdh");

    // The same join by OT-extension PSI.
    let j = psi(&node, &pair, &payer, "60", &["--protocol", "psi-ot"]);
    assert_eq!(j["status"], "completed", "{j}");
    assert_eq!(j["intersection_size"], want.len());
    let id_ot = j["job"].as_u64().unwrap();
    assert_eq!(
        csv_keys(&home_a.join(format!("results/job-{id_ot}.csv"))),
        want
    );

    // Only the size, with --cardinality.
    let j = psi(&node, &pair, &payer, "60", &["--cardinality"]);
    assert_eq!(j["status"], "completed", "{j}");
    assert_eq!(j["intersection_size"], want.len());
    let id = j["job"].as_u64().unwrap();
    let only = std::fs::read_to_string(home_a.join(format!("results/job-{id}.csv"))).unwrap();
    assert_eq!(only, format!("intersection_size\n{}\n", want.len()));

    // An asset its agent does not hold: declined, aborted, refunded.
    grant(&node, asset_stray, &payer_addr, &owner_a);
    let j = psi(&node, &format!("{asset_stray},{asset_b}"), &payer, "6", &[]);
    assert_refunded(&node, &j, &payer_addr);
    assert!(
        agent_a.log().contains("asset_not_held"),
        "{}",
        agent_a.log()
    );

    // Nobody's rows outside their owner's directory: A's own keys and
    // secrets are not in the node's store or log, nor with B; B's not
    // with A (beyond the intersection, which is A's output).
    let node_log = node.data_dir.with_extension("log");
    for needle in [
        "zq-key-0,",
        "zq-key-0\n",
        "zq-a-secret-",
        "zq-key-499",
        "zq-b-secret-",
    ] {
        assert_eq!(
            contains(&node.data_dir, needle.as_bytes()),
            None,
            "{needle} in the node's files"
        );
        assert!(!std::fs::read_to_string(&node_log)
            .unwrap()
            .contains(needle.trim_end()));
    }
    for needle in ["zq-key-0\n", "zq-key-0,", "zq-a-secret-", "zq-key-10\n"] {
        assert_eq!(
            contains(&home_b, needle.as_bytes()),
            None,
            "{needle} with agent B"
        );
        assert!(!agent_b.log().contains(needle.trim_end()));
    }
    for needle in ["zq-key-499", "zq-b-secret-"] {
        assert_eq!(
            contains(&home_a, needle.as_bytes()),
            None,
            "{needle} with agent A"
        );
        assert!(!agent_a.log().contains(needle));
    }

    // B dies mid-run: A's session fails, the job aborts at its timeout,
    // the escrow comes back, and both agents go on with the next job.
    let big_a: Vec<String> = (0..20_000).map(|i| format!("zq-big-{i}")).collect();
    let big_b: Vec<String> = (10_000..30_000).map(|i| format!("zq-big-{i}")).collect();
    let (big_file_a, big_file_b) = (home_a.join("data/big-a.csv"), home_b.join("data/big-b.csv"));
    write_csv(&big_file_a, "a", &big_a);
    write_csv(&big_file_b, "b", &big_b);
    let big = format!(
        "{},{}",
        register(&node, &big_file_a, &owner_a, port_a),
        register(&node, &big_file_b, &owner_b, port_b)
    );
    for (a, k) in [
        (big.split(',').next().unwrap(), &owner_a),
        (big.split(',').nth(1).unwrap(), &owner_b),
    ] {
        grant(&node, a.parse().unwrap(), &payer_addr, k);
    }
    let args = psi_args(&big, &payer, "15", &[]);
    let waiting = Command::new(bin())
        .args(["--node", &node.url()])
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = ok_json(node.cli(&["job", "list", "--status", "running", "--json"]));
        if !jobs.as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the job never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    agent_b.kill();
    let j = ok_json(waiting.wait_with_output().unwrap());
    assert_refunded(&node, &j, &payer_addr);
    let id = j["job"].as_u64().unwrap();
    assert!(!home_a.join(format!("results/job-{id}.csv")).exists());
    assert!(
        agent_a
            .log()
            .lines()
            .any(|l| l.contains("run failed") && l.contains(&format!("job={id} "))),
        "A's session with B broke mid-run: {}",
        agent_a.log()
    );

    agent_b.launch();
    let j = psi(&node, &pair, &payer, "60", &[]);
    assert_eq!(j["status"], "completed", "{j}");
    assert_eq!(j["intersection_size"], want.len());
    agent_a.kill();
}
