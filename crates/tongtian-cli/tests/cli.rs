//! What a new user meets first: node addresses, timeouts, errors (one line,
//! or JSON under `--json`), the `--json` vocabulary, waiting with a reason,
//! key import, completions, help, and mistakes caught before they cost gas.

#![allow(clippy::unwrap_used)]

mod common;

use common::{bin, DevNode};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A failed command's `--json` error: exit non-zero, one JSON object
/// `{"error": {"code", "message"}}` on stdout.
fn json_error(out: &Output) -> (String, String) {
    assert!(!out.status.success(), "succeeded: {out:?}");
    let v = stdout_json(out);
    (
        v["error"]["code"].as_str().unwrap().to_string(),
        v["error"]["message"].as_str().unwrap().to_string(),
    )
}

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

#[test]
fn unreachable_and_silent_nodes_get_one_clear_error() {
    // Nothing listens: a hint instead of reqwest's chain.
    let port = common::free_port();
    let node = format!("127.0.0.1:{port}");
    let out = run(&["--node", &node, "block", "show"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is the node running? start one with `tongtian dev`"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!err.contains("error sending request"), "{err}");
    let (code, _) = json_error(&run(&["--node", &node, "--json", "block", "show"]));
    assert_eq!(code, "node_unreachable");

    // A socket that accepts and never answers: given up after --timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    // Accept and hold every connection, answering none (the thread ends
    // with the test process).
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming() {
            held.push(c);
        }
    });
    let started = Instant::now();
    let out = run(&[
        "--node",
        &format!("http://{addr}"),
        "--timeout",
        "2",
        "--json",
        "block",
        "show",
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "took {:?}",
        started.elapsed()
    );
    let (code, message) = json_error(&out);
    assert_eq!(code, "node_timeout", "{message}");
    assert!(message.contains("--timeout"), "{message}");
}

#[test]
fn json_output_uses_one_vocabulary_and_waiting_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), "standard");
    let key = node.data_dir.join("dev-keys/dev-1.key");
    let key = key.to_str().unwrap();
    // A scheme-less address works.
    let bare = format!("127.0.0.1:{}", node.port);
    let st = stdout_json(&ok(run(&["--node", &bare, "status", "--json"])));
    assert_eq!(st["chain_id"], 8645);
    let text = String::from_utf8_lossy(&ok(run(&["--node", &bare, "status"])).stdout).into_owned();
    assert!(
        text.contains("height") && !text.trim_start().starts_with('{'),
        "{text}"
    );

    let to = "0x00000000000000000000000000000000000000b1";
    let sent = stdout_json(&ok(node.cli(&[
        "transfer", "--key", key, "--to", to, "--amount", "5", "--json",
    ])));
    assert!(
        sent["tx_hash"].is_string() && sent.get("hash").is_none(),
        "{sent}"
    );
    let waited = stdout_json(&ok(node.cli(&[
        "transfer", "--key", key, "--to", to, "--amount", "5", "--wait", "--json",
    ])));
    assert_eq!(waited["status"], "success", "{waited}");
    assert!(
        waited["tx_hash"].is_string() && waited["tx_index"].is_number(),
        "{waited}"
    );
    assert_eq!(waited["events"][0]["attributes"]["to"], to, "{waited}");
    let hash = waited["tx_hash"].as_str().unwrap();
    let shown = stdout_json(&ok(node.cli(&["tx", "show", hash, "--json"])));
    assert_eq!(shown["status"], "committed");
    assert_eq!(shown["tx_hash"], waited["tx_hash"]);
    assert_eq!(shown["receipt"]["status"], "success");
    // Without --json, text.
    let text = String::from_utf8_lossy(&ok(node.cli(&["tx", "show", hash])).stdout).into_owned();
    assert!(
        text.starts_with("hash ") && text.contains("committed"),
        "{text}"
    );

    // A nonce gap: --wait says it is queued and which nonce comes first.
    let acct = stdout_json(&ok(node.cli(&[
        "account",
        "show",
        stdout_json(&ok(node.cli(&["key", "show", key, "--json"])))["address"]
            .as_str()
            .unwrap(),
        "--json",
    ])));
    let next = acct["nonce"].as_u64().unwrap();
    let out = node.cli(&[
        "--wait-timeout",
        "2",
        "transfer",
        "--key",
        key,
        "--to",
        to,
        "--amount",
        "1",
        "--nonce",
        &(next + 1).to_string(),
        "--wait",
        "--json",
    ]);
    let (code, message) = json_error(&out);
    assert_eq!(code, "wait_timeout", "{message}");
    assert!(
        message.contains("queued") && message.contains(&format!("nonce {next} must be sent first")),
        "{message}"
    );
    // Errors under --json are JSON even for a bad argument.
    let (code, _) = json_error(&node.cli(&["account", "show", "0x12", "--json"]));
    assert_eq!(code, "bad_address");
}

#[test]
fn dev_json_prints_one_banner_object() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut child = Command::new(bin())
        .args(["--json", "dev", "--data-dir"])
        .arg(dir.path().join("d"))
        .args(["--api", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let banner: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(banner["chain_id"], 8645);
    assert_eq!(banner["api"], format!("http://127.0.0.1:{port}"));
    assert_eq!(banner["accounts"].as_array().unwrap().len(), 10);
    assert!(banner["eth_accounts"][0]["private_key"].is_string());
}

#[test]
fn keys_import_refuse_overwrites_and_errors_say_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("imported.key");
    let out_s = out_path.to_str().unwrap();
    let import = |suite: &str| {
        let mut child = Command::new(bin())
            .args(["key", "import", "--out", out_s, "--suite", suite, "--json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d\n")
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let first = stdout_json(&ok(import("standard")));
    assert_eq!(first["suite"], "standard");
    // The same secret gives the same key file contents' address again.
    let shown = stdout_json(&ok(run(&["key", "show", out_s, "--json"])));
    assert_eq!(shown["address"], first["address"]);
    // Never overwritten; the error is one line that says what to do.
    let again = import("standard");
    let (code, message) = json_error(&again);
    assert_eq!(code, "file_exists");
    assert!(message.contains("choose another --out"), "{message}");
    let out = run(&["key", "new", "--out", out_s]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.matches("already exists").count(), 1, "{err}");
    // Not hex: a clear refusal.
    let mut child = Command::new(bin())
        .args(["key", "import", "--out"])
        .arg(dir.path().join("bad.key"))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("as hex"));
    assert!(!dir.path().join("bad.key").exists());
}

#[test]
fn help_lists_values_and_examples_and_completions_print() {
    let help = String::from_utf8_lossy(&ok(run(&["key", "new", "--help"])).stdout).into_owned();
    assert!(help.contains("[possible values: standard, sm]"), "{help}");
    assert!(help.contains("Examples:"), "{help}");
    let help =
        String::from_utf8_lossy(&ok(run(&["bench", "contracts", "--help"])).stdout).into_owned();
    assert!(help.contains("[possible values: wasm, evm]"), "{help}");
    let help = String::from_utf8_lossy(&ok(run(&["transfer", "--help"])).stdout).into_owned();
    assert!(help.contains("Examples:"), "{help}");
    let out = run(&["key", "new", "--out", "/tmp/never.key", "--suite", "rsa"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: standard, sm"));
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(run(&["completions", shell])).stdout;
        let script = String::from_utf8_lossy(&script);
        assert!(
            script.contains("tongtian") && script.contains("transfer"),
            "{shell}"
        );
    }
}

/// Contract mistakes are caught before anything is signed: the sender's
/// nonce does not move.
#[test]
fn contract_mistakes_are_refused_before_signing() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), "standard");
    let key = node.data_dir.join("dev-keys/dev-2.key");
    let key = key.to_str().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let addr = stdout_json(&ok(run(&["key", "show", key, "--json"])))["address"]
        .as_str()
        .unwrap()
        .to_string();
    let nonce = || {
        stdout_json(&ok(node.cli(&["account", "show", &addr, "--json"])))["pending_nonce"]
            .as_u64()
            .unwrap()
    };
    let before = nonce();

    // Not WASM at all.
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"this is not a wasm module").unwrap();
    let out = node.cli(&[
        "contract",
        "deploy",
        "--key",
        key,
        "--wasm",
        junk.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is not a WebAssembly module"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // A real contract, then calls that do not fit it.
    let notary = repo.join("contracts/notary/notary.wasm");
    let deployed = stdout_json(&ok(node.cli(&[
        "contract",
        "deploy",
        "--key",
        key,
        "--wasm",
        notary.to_str().unwrap(),
        "--json",
    ])));
    let n = deployed["address"].as_str().unwrap();
    let after_deploy = nonce();
    assert_eq!(after_deploy, before + 1);
    let (code, message) = json_error(&node.cli(&[
        "contract",
        "call",
        "--key",
        key,
        "--address",
        n,
        "--method",
        "register",
        "--args",
        "[42]",
        "--json",
    ]));
    assert_eq!(code, "call_would_fail", "{message}");
    assert!(message.contains("nothing was sent"), "{message}");
    let (code, _) = json_error(&node.cli(&[
        "contract",
        "call",
        "--key",
        key,
        "--address",
        n,
        "--method",
        "register",
        "--args",
        "not json",
        "--json",
    ]));
    assert_eq!(code, "bad_args");
    // EVM: arguments that do not fit the ABI.
    let abi = repo.join("contracts/token/Token.abi");
    let (code, message) = json_error(&node.cli(&[
        "contract",
        "call",
        "--key",
        key,
        "--address",
        n,
        "--abi",
        abi.to_str().unwrap(),
        "--method",
        "transfer",
        "--args",
        "[\"not an address\", 5]",
        "--json",
    ]));
    assert_eq!(code, "bad_args", "{message}");
    assert_eq!(nonce(), after_deploy, "a refused call was signed and sent");
}

/// `--rate` paces from the first request: a small run cannot report more
/// than the rate it was asked for (every client's first batch used to leave
/// at once).
#[test]
fn bench_transfers_rate_paces_from_the_first_request() {
    let out = ok(run(&[
        "bench",
        "transfers",
        "--count",
        "600",
        "--concurrency",
        "4",
        "--batch",
        "50",
        "--rate",
        "300",
        "--json",
    ]));
    let report = stdout_json(&out);
    let tps = report["tps"].as_f64().unwrap();
    assert_eq!(report["committed"], 600, "{report}");
    assert!(tps <= 300.0 * 1.1, "offered 300/s, reported {tps}");
    assert!(tps >= 100.0, "{report}");
}

/// An idle dev chain is quiet: its empty blocks are logged at debug, so
/// three seconds of them add no line at the default level (or at info).
#[test]
fn idle_dev_chain_logs_no_empty_blocks() {
    let dir = tempfile::tempdir().unwrap();
    for log in [None, Some("info")] {
        let port = common::free_port();
        let err = dir.path().join("dev.err");
        let mut cmd = Command::new(bin());
        if let Some(l) = log {
            cmd.args(["--log", l]);
        }
        let mut child = cmd
            .args(["dev", "--data-dir"])
            .arg(dir.path().join("d"))
            .args(["--api", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(3_500));
        let _ = child.kill();
        let _ = child.wait();
        let text = std::fs::read_to_string(&err).unwrap();
        assert!(text.contains("dev chain running"), "{text}");
        assert!(
            !text.contains(": committed") && !text.contains("empty block"),
            "--log {log:?}: {text}"
        );
        assert!(text.lines().count() <= 6, "--log {log:?}: {text}");
    }
}

/// A Hardhat account's private key imports as an Ethereum account key:
/// its address is the one every Ethereum tool shows, it is prefunded on
/// the dev chain, and `transfer` sends from it as an Ethereum transaction.
/// A native-only command refuses it with what it can do.
#[test]
fn hardhat_key_imports_with_its_ethereum_address_and_transfers() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), "standard");
    let path = dir.path().join("hardhat0.key");
    let path_s = path.to_str().unwrap();
    let mut child = Command::new(bin())
        .args(["key", "import", "--eth", "--out", path_s, "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80\n")
        .unwrap();
    let imported = stdout_json(&ok(child.wait_with_output().unwrap()));
    let hardhat0 = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";
    assert_eq!(
        imported["address"].as_str().unwrap().to_lowercase(),
        hardhat0,
        "{imported}"
    );
    assert_eq!(imported["suite"], "ethereum");
    let shown = stdout_json(&ok(run(&["key", "show", path_s, "--json"])));
    assert_eq!(shown["address"], imported["address"]);

    let to = "0x00000000000000000000000000000000000000e7";
    let sent = stdout_json(&ok(node.cli(&[
        "transfer", "--key", path_s, "--to", to, "--amount", "12345", "--wait", "--json",
    ])));
    assert_eq!(sent["status"], "success", "{sent}");
    let tx = stdout_json(&ok(node.cli(&[
        "tx",
        "show",
        sent["tx_hash"].as_str().unwrap(),
        "--json",
    ])));
    assert_eq!(
        tx["sender"].as_str().unwrap().to_lowercase(),
        hardhat0,
        "{tx}"
    );
    let balance = stdout_json(&ok(node.cli(&["account", "show", to, "--json"])));
    assert_eq!(balance["balance"].to_string().trim_matches('"'), "12345");

    let code_file = dir.path().join("init.bin");
    std::fs::write(&code_file, "6000").unwrap();
    let (code, message) = json_error(&node.cli(&[
        "contract",
        "deploy",
        "--key",
        path_s,
        "--evm",
        code_file.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(code, "ethereum_key", "{message}");
    assert!(message.contains("transfer"), "{message}");
}

/// Command lines the parser refuses still answer in JSON under `--json`:
/// an unknown proposal kind, a value outside the allowed ones.
#[test]
fn refused_command_lines_answer_in_json() {
    let out = run(&["gov", "propose", "frobnicate", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let (code, message) = json_error(&out);
    assert_eq!(code, "unknown_command");
    assert!(message.contains("frobnicate"), "{message}");
    let out = run(&[
        "gov",
        "propose",
        "create-chain",
        "--name",
        "x",
        "--engine",
        "pbft",
        "--orgs",
        "org-0",
        "--key",
        "k",
        "--json",
    ]);
    let (code, message) = json_error(&out);
    assert_eq!(code, "bad_value");
    assert!(message.contains("pbft"), "{message}");
    // Without --json, clap's own words on stderr.
    let out = run(&["gov", "propose", "frobnicate"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"));
}
