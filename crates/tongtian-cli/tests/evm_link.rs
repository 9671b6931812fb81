//! A dev node and a real anvil, linked by vote (`gov propose connect-evm`),
//! with two attester processes (`tongtian attest evm`, two of three
//! attesters needed) and a relayer process (`tongtian relay evm`): an
//! ERC-20 leaves anvil for the dev chain as a voucher, and `xchain
//! transfer --to-chain anvil --wait` sends part of it home.

#![allow(clippy::unwrap_used)]

mod common;

use common::{ok_json, DevNode};

use alloy_primitives::{Address as EthAddress, FixedBytes, U256};
use alloy_sol_types::{sol, SolCall, SolValue};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tongtian_xchain::attested::evm_port::ITongtianEvmPort as IPort;

sol! {
    interface IToken {
        function approve(address spender, uint256 value) external returns (bool);
        function balanceOf(address who) external view returns (uint256);
    }
}

/// Child processes killed when dropped.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn rpc(url: &str, method: &str, params: Value) -> Value {
    let r: Value = reqwest::blocking::Client::new()
        .post(url)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(r.get("error").is_none(), "{method}: {r}");
    r["result"].clone()
}

fn send(url: &str, from: &str, to: Option<&str>, data: Vec<u8>) -> Value {
    let mut tx =
        json!({"from": from, "data": format!("0x{}", hex::encode(data)), "gas": "0x1c9c380"});
    if let Some(to) = to {
        tx["to"] = json!(to);
    }
    let hash = rpc(url, "eth_sendTransaction", json!([tx]));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = rpc(url, "eth_getTransactionReceipt", json!([hash]));
        if !r.is_null() {
            assert_eq!(r["status"], "0x1", "{r}");
            return r;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn call_u128<C: SolCall>(url: &str, to: &str, c: &C) -> u128 {
    let out = rpc(
        url,
        "eth_call",
        json!([{"to": to, "data": format!("0x{}", hex::encode(c.abi_encode()))}, "latest"]),
    );
    let b = hex::decode(out.as_str().unwrap().trim_start_matches("0x")).unwrap();
    U256::from_be_slice(&b).to::<u128>()
}

fn anvil_bin() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tongtian-xchain/tests/anvil");
    let bin = dir.join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    if !bin.exists() {
        let st = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .expect("npm is needed to install anvil");
        assert!(st.success());
    }
    bin
}

fn artifact(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../contracts")
        .join(name);
    hex::decode(std::fs::read_to_string(p).unwrap().trim()).unwrap()
}

/// `tongtian key import --eth` of a hex secret.
fn eth_key(dir: &Path, name: &str, secret: &str) -> (String, String) {
    let out = dir.join(format!("{name}.key"));
    let mut c = Command::new(common::bin())
        .args([
            "key",
            "import",
            "--eth",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(secret.as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    let v = ok_json(o);
    (
        out.to_str().unwrap().to_string(),
        v["address"].as_str().unwrap().to_lowercase(),
    )
}

#[test]
fn an_erc20_crosses_from_anvil_and_back_with_attester_and_relayer_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let node = DevNode::start(&tmp.path().join("dev"), "standard");
    let chain_id = ok_json(node.cli(&["status", "--json"]))["chain_id"]
        .as_u64()
        .unwrap();
    let port_no = common::free_port();
    let evm = format!("http://127.0.0.1:{port_no}");
    let mut procs = Procs(vec![Command::new(anvil_bin())
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port_no.to_string(),
            "--silent",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::blocking::Client::new()
        .post(&evm)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}))
        .send()
        .is_err()
    {
        assert!(Instant::now() < deadline, "anvil did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let deployer = rpc(&evm, "eth_accounts", json!([]))[0]
        .as_str()
        .unwrap()
        .to_string();

    // Three attesters (keys made here), two of which run; the relayer pays
    // EVM gas with anvil's account 1.
    let attesters: Vec<(String, String)> = (1..=3)
        .map(|i| {
            eth_key(
                tmp.path(),
                &format!("attester-{i}"),
                &format!("0x{:064x}", i + 100),
            )
        })
        .collect();
    let (relayer_eth, _) = eth_key(
        tmp.path(),
        "relayer-eth",
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    );

    // The ERC-20 and the port (its counterparty: our channel-e).
    let mut code = artifact("token/Token.bin");
    code.extend(
        (
            "Bill".to_string(),
            "BILL".to_string(),
            U256::from(1_000_000u64),
        )
            .abi_encode_params(),
    );
    let token = send(&evm, &deployer, None, code)["contractAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let mut code = artifact("evm-port/TongtianPort.bin");
    let addrs: Vec<EthAddress> = attesters.iter().map(|(_, a)| a.parse().unwrap()).collect();
    code.extend(
        (
            "channel-0".to_string(),
            "transfer".to_string(),
            "channel-e".to_string(),
            chain_id,
            addrs,
            U256::from(2u64),
        )
            .abi_encode_params(),
    );
    let port = send(&evm, &deployer, None, code)["contractAddress"]
        .as_str()
        .unwrap()
        .to_lowercase();

    // The vote that connects the dev chain to anvil.
    let admin = node.data_dir.join("orgs/org-0/admin.key");
    let list = attesters
        .iter()
        .map(|(_, a)| a.clone())
        .collect::<Vec<_>>()
        .join(",");
    let p = ok_json(node.cli(&[
        "gov",
        "propose",
        "connect-evm",
        "--client",
        "anvil",
        "--evm-chain-id",
        "31337",
        "--attesters",
        &list,
        "--threshold",
        "2",
        "--channel",
        "channel-e",
        "--counterparty-channel",
        "channel-0",
        "--counterparty-port",
        &port,
        "--key",
        admin.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(p["proposal_status"], "executed", "{p}");

    // Attesters 1 and 2 (fees paid by dev-1 and dev-2), and the relayer.
    let key = |n: usize| node.data_dir.join(format!("dev-keys/dev-{n}.key"));
    for (i, (file, _)) in attesters.iter().take(2).enumerate() {
        procs.0.push(
            Command::new(common::bin())
                .args([
                    "--node",
                    &node.url(),
                    "attest",
                    "evm",
                    "--evm",
                    &evm,
                    "--channel",
                    "channel-e",
                ])
                .args(["--key", key(i + 1).to_str().unwrap(), "--eth-key", file])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    procs.0.push(
        Command::new(common::bin())
            .args([
                "--node",
                &node.url(),
                "relay",
                "evm",
                "--evm",
                &evm,
                "--channel",
                "channel-e",
            ])
            .args(["--key", key(3).to_str().unwrap(), "--eth-key", &relayer_eth])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // anvil -> dev chain: 600 BILL to dev-0.
    let dev0 = ok_json(node.cli(&["key", "show", key(0).to_str().unwrap(), "--json"]))["address"]
        .as_str()
        .unwrap()
        .to_string();
    let dev0_bytes: [u8; 20] = hex::decode(dev0.trim_start_matches("0x"))
        .unwrap()
        .try_into()
        .unwrap();
    send(
        &evm,
        &deployer,
        Some(&token),
        IToken::approveCall {
            spender: port.parse().unwrap(),
            value: U256::from(1_000u64),
        }
        .abi_encode(),
    );
    send(
        &evm,
        &deployer,
        Some(&port),
        IPort::sendTransferCall {
            token: token.parse().unwrap(),
            amount: U256::from(600u64),
            receiver: FixedBytes(dev0_bytes),
            timeoutHeight: 1_000_000,
            timeoutMs: 0,
        }
        .abi_encode(),
    );
    let voucher = format!("transfer/channel-e/{}", token.to_lowercase());
    let balance = |denom: &str| -> u128 {
        ok_json(node.cli(&["xchain", "balances", &dev0, "--json"]))
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["denom"] == denom)
            .map_or(0, |b| b["amount"].as_str().unwrap().parse().unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while balance(&voucher) != 600 {
        assert!(Instant::now() < deadline, "the voucher never arrived");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Its ack reaches the port: the commitment there is cleared.
    let escrowed = || {
        call_u128(
            &evm,
            &port,
            &IPort::escrowedCall {
                token: token.parse().unwrap(),
            },
        )
    };
    assert_eq!(escrowed(), 600);

    // Dev chain -> anvil: 250 of the voucher home, through the CLI.
    let deployer_before = call_u128(
        &evm,
        &token,
        &IToken::balanceOfCall {
            who: deployer.parse().unwrap(),
        },
    );
    let back = ok_json(node.cli(&[
        "xchain",
        "transfer",
        "--from-chain",
        "main",
        "--to-chain",
        "anvil",
        "--to",
        &deployer,
        "--amount",
        "250",
        "--denom",
        &voucher,
        "--key",
        key(0).to_str().unwrap(),
        "--wait",
        "--json",
    ]));
    assert_eq!(back["status"], "acknowledged", "{back}");
    assert_eq!(back["packet"]["source_channel"], "channel-e");
    assert_eq!(back["denom_on_destination"], token.to_lowercase());
    assert_eq!(
        call_u128(
            &evm,
            &token,
            &IToken::balanceOfCall {
                who: deployer.parse().unwrap()
            }
        ),
        deployer_before + 250
    );
    assert_eq!(balance(&voucher), 350);
    assert_eq!(escrowed(), 350, "voucher supply here = escrow there");
    let supply = reqwest::blocking::get(format!(
        "{}/v1/modules/transfer/supply/{voucher}",
        node.url()
    ))
    .unwrap()
    .json::<Value>()
    .unwrap();
    assert_eq!(supply, "350");

    // A packet the port can no longer take (its timeout is the height
    // already attested): the relayer proves its absence there and our
    // chain refunds it.
    let late = ok_json(node.cli(&[
        "xchain",
        "transfer",
        "--from-chain",
        "main",
        "--to-chain",
        "anvil",
        "--to",
        &deployer,
        "--amount",
        "10",
        "--denom",
        &voucher,
        "--timeout-blocks",
        "0",
        "--key",
        key(0).to_str().unwrap(),
        "--wait",
        "--json",
    ]));
    assert_eq!(late["status"], "timed_out", "{late}");
    assert_eq!(balance(&voucher), 350, "refunded");
    assert_eq!(escrowed(), 350);

    // And the other way: a packet from the port that our chain is already
    // past (timeout height 1) is never received here; the attesters sign
    // that, and the relayer has the port refund it.
    let who = deployer.parse().unwrap();
    let before = call_u128(&evm, &token, &IToken::balanceOfCall { who });
    send(
        &evm,
        &deployer,
        Some(&port),
        IPort::sendTransferCall {
            token: token.parse().unwrap(),
            amount: U256::from(40u64),
            receiver: FixedBytes(dev0_bytes),
            timeoutHeight: 1,
            timeoutMs: 0,
        }
        .abi_encode(),
    );
    assert_eq!(escrowed(), 390);
    let deadline = Instant::now() + Duration::from_secs(60);
    while escrowed() != 350 {
        assert!(
            Instant::now() < deadline,
            "the port never refunded the late packet"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        call_u128(&evm, &token, &IToken::balanceOfCall { who }),
        before
    );
    assert_eq!(balance(&voucher), 350, "nothing minted here");
}
