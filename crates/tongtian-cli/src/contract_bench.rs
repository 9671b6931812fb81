//! `tongtian bench contracts [--vm wasm|evm]`: ERC-20-style token transfers
//! (the same logic on both VMs: the Solidity `Token` and the Rust
//! `wasm-token`) through a full node, and the same calls run directly by
//! the VM over in-memory state, in one run.
//!
//! Method, end to end: start a fresh `tongtian dev` process; fund
//! `concurrency` fresh sender accounts; deploy the token from a dev
//! account and give each sender tokens; pre-sign `count` `transfer` calls
//! (each sender to the next, in nonce order); submit them in batches and
//! time each from its batch's request to the block event that commits it
//! (the same driver as `bench transfers`). `tps` counts successful calls
//! per second from the first submission to the last commit.
//!
//! VM-only: in this process, a [`Host`] over a state overlay (every key is
//! in memory after its first read) deploys the token and runs the same
//! number of `transfer` calls through the VM seam, single-threaded as
//! block execution is. No signatures, mempool, consensus, Merkle tree or
//! disk are involved there. One such run lasts about a second, and on a
//! noisy machine back-to-back runs of the same code differed by a third,
//! so it is run [`VM_ONLY_RUNS`] times: `vm_only_tps` is their median and
//! `vm_only_runs` lists them all.
//!
//! `verify_bound_tps` is, in the same run, how fast this machine checks
//! these calls' signatures the way admission does (batched, all cores).
//! `node_cpu_cores` and `node_cpu_us_per_call` are the node process's CPU
//! time while the calls were driven, on average and per call: set against
//! `1e6 / vm_only_tps`, they show how much of the node's work per call is
//! not the VM's, and whether the node had the machine's cores to itself.
//! `node_over_vm_only_ceiling` is the ratio that CPU per call would give
//! with every core busy for the whole run.

use crate::bench::{drive, fund, percentile, spawn_dev, verify_bound, wait_ready};
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;
use std::time::{Duration, Instant};
use tongtian_client::Client;
use tongtian_contract_sdk::{Input, Value};
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_execution::vm::{ChainEnv, Host, Message, VmRegistry};
use tongtian_execution::{BlockEnv, StateOverlay};
use tongtian_types::codec::encode;
use tongtian_types::eth::create_address;
use tongtian_types::{Account, Action, Address, CheckedTx, Transaction, VmKind};

const TOKEN_BIN: &str = include_str!("../../../contracts/token/Token.bin");
const TOKEN_ABI: &str = include_str!("../../../contracts/token/Token.abi");
const WASM_TOKEN: &[u8] = include_bytes!("../../../contracts/wasm-token/wasm_token.wasm");

/// Gas limit of each benchmark call.
const CALL_GAS: u64 = 300_000;
/// How many times the VM-only figure is measured (odd, for a median).
pub const VM_ONLY_RUNS: usize = 5;
/// Token supply the deployer starts with.
const SUPPLY: u128 = 1_000_000_000_000;

/// Arguments of `tongtian bench contracts`.
#[derive(Debug, clap::Args)]
pub struct ContractBenchArgs {
    /// Which VM runs the token.
    #[arg(long, default_value = "evm", value_parser = crate::vm_parser())]
    pub vm: VmKind,
    /// Number of transfer calls. The default keeps the load on for about
    /// three seconds, so that the figures are the node's sustained rate:
    /// in a run of 40,000 the last 290 ms of 760 came after the last call
    /// was admitted (what was left executed on one core, then the last
    /// block's header and write), and the old default of 20,000 lasted
    /// about 0.4 s.
    #[arg(long, default_value_t = 200_000)]
    pub count: usize,
    /// Concurrent clients (sender accounts).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Calls per HTTP request.
    #[arg(long, default_value_t = 200)]
    pub batch: usize,
    /// Offer at most this many calls per second in total.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Afterwards, time the node's read paths on the chain the run built
    /// (`reads` in the report).
    #[arg(long)]
    pub reads: bool,
}

/// Read paths timed on the chain a run built (`--reads`): each the median
/// of [`READ_TRIES`] requests, in milliseconds, as the client sees them.
#[derive(Debug, Serialize)]
pub struct ReadTimes {
    /// Height of the largest block, which the block and receipt reads use.
    pub block: u64,
    /// Its transactions.
    pub block_txs: u64,
    /// `eth_getBlockByNumber` of it with transaction hashes.
    pub block_ms: f64,
    /// The same with whole transactions.
    pub block_full_ms: f64,
    /// `eth_getTransactionReceipt` of its last transaction.
    pub last_receipt_ms: f64,
    /// `eth_getLogs` over the whole chain for a topic no log holds.
    pub logs_none_ms: f64,
    /// `eth_getLogs` over the whole chain for the transfers to one sender
    /// (the recipient topic; none on the WASM token, whose events are not
    /// Ethereum logs).
    pub logs_one_ms: f64,
    /// Logs that query found.
    pub logs_one_found: usize,
    /// `GET /v1/events?emitter=` over the whole chain for an address that
    /// emitted nothing.
    pub events_none_ms: f64,
    /// Blocks on the chain.
    pub blocks: u64,
}

/// Requests per timed read.
pub const READ_TRIES: usize = 5;

/// The report as a few lines of text (`--json` prints all of it).
pub fn summary(r: &ContractBenchReport) -> String {
    format!(
        "contracts ({}): {} calls committed ({} failed, {} refused) in {:.2} s\n  tps {:.0}   latency p50 {:.1} ms, p99 {:.1} ms   gas per call {}\n  VM alone {:.0}/s (node is {:.2} of it)   supply conserved: {}   (--json for every figure)",
        r.vm,
        r.committed,
        r.failed,
        r.rejected,
        r.duration_s,
        r.tps,
        r.latency_ms_p50,
        r.latency_ms_p99,
        r.gas_per_call,
        r.vm_only_tps,
        r.node_over_vm_only,
        r.supply_conserved
    )
}

/// What the benchmark prints.
#[derive(Debug, Serialize)]
pub struct ContractBenchReport {
    /// Always `contracts`.
    pub bench: &'static str,
    /// `wasm` or `evm`.
    pub vm: String,
    /// Calls planned.
    pub count: usize,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Calls per request.
    pub batch: usize,
    /// Offered load cap, if any.
    pub rate: Option<u64>,
    /// Refused at submission.
    pub rejected: usize,
    /// Committed with a successful receipt.
    pub committed: usize,
    /// Committed with a failed receipt.
    pub failed: usize,
    /// First submission to last commit, seconds.
    pub duration_s: f64,
    /// Successful calls per second, end to end.
    pub tps: f64,
    /// Median submission-to-commit latency.
    pub latency_ms_p50: f64,
    /// 99th percentile latency.
    pub latency_ms_p99: f64,
    /// Gas of one transfer call (from a receipt).
    pub gas_per_call: u64,
    /// The same calls per second, run directly by the VM over in-memory
    /// state in this process (single thread): the median of
    /// `vm_only_runs`.
    pub vm_only_tps: f64,
    /// Each VM-only measurement, in the order taken.
    pub vm_only_runs: Vec<f64>,
    /// `tps / vm_only_tps`.
    pub node_over_vm_only: f64,
    /// CPU the node process used while the calls were driven (from the
    /// first submission until the last commit was seen), in cores on
    /// average; `null` where `/proc` is unavailable.
    pub node_cpu_cores: Option<f64>,
    /// That CPU time per committed call, in microseconds (compare with
    /// `1e6 / vm_only_tps`, the VM's own time per call).
    pub node_cpu_us_per_call: Option<f64>,
    /// `node_over_vm_only` had the node kept all `cores` busy for the whole
    /// run at its measured CPU per call (`cores * 1e6 /
    /// node_cpu_us_per_call / vm_only_tps`): what this machine allows the
    /// node without cutting its work per call. `null` where the CPU was
    /// not read or read as 0.
    pub node_over_vm_only_ceiling: Option<f64>,
    /// Signatures of these calls this machine checks per second, batched
    /// on all cores as admission does, measured after the node stopped:
    /// the ceiling of a node that checks every signature.
    pub verify_bound_tps: f64,
    /// Token balances summed over the senders after the run equal the
    /// amount handed out (no tokens created or lost).
    pub supply_conserved: bool,
    /// Cores available.
    pub cores: usize,
    /// Read paths timed afterwards, with `--reads`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reads: Option<ReadTimes>,
}

/// Call data of `transfer(to, amount)` on the chosen VM.
fn transfer_input(vm: VmKind, to: &Address, amount: u128) -> Result<Vec<u8>> {
    Ok(match vm {
        VmKind::Evm => {
            let abi = tongtian_vm_evm::abi::parse_abi(TOKEN_ABI)?;
            tongtian_vm_evm::abi::encode_call(
                &abi,
                "transfer",
                &json!([to.to_string(), amount.to_string()]),
            )?
        }
        VmKind::Wasm => Input::encode(
            "transfer",
            &[Value::Bytes(to.0.to_vec()), Value::Int(amount)],
        ),
    })
}

fn balance_input(vm: VmKind, who: &Address) -> Result<Vec<u8>> {
    Ok(match vm {
        VmKind::Evm => {
            let abi = tongtian_vm_evm::abi::parse_abi(TOKEN_ABI)?;
            tongtian_vm_evm::abi::encode_call(&abi, "balanceOf", &json!([who.to_string()]))?
        }
        VmKind::Wasm => Input::encode("balance_of", &[Value::Bytes(who.0.to_vec())]),
    })
}

fn decode_balance(vm: VmKind, out: &[u8]) -> Result<u128> {
    Ok(match vm {
        VmKind::Evm => {
            if out.len() != 32 || out[..16].iter().any(|b| *b != 0) {
                bail!("unexpected balanceOf output");
            }
            u128::from_be_bytes(out[16..].try_into()?)
        }
        VmKind::Wasm => Value::decode(out)
            .ok()
            .and_then(|v| v.as_u128())
            .context("unexpected balance_of output")?,
    })
}

/// The token's deployment action.
fn deploy_action(vm: VmKind) -> Result<Action> {
    Ok(match vm {
        VmKind::Evm => {
            let abi = tongtian_vm_evm::abi::parse_abi(TOKEN_ABI)?;
            Action::Deploy {
                vm,
                code: hex::decode(TOKEN_BIN.trim())?,
                args: tongtian_vm_evm::abi::encode_constructor(
                    &abi,
                    &json!(["Bench", "B", SUPPLY.to_string()]),
                )?,
                value: 0,
            }
        }
        VmKind::Wasm => Action::Deploy {
            vm,
            code: WASM_TOKEN.to_vec(),
            args: Input::encode("deploy", &[Value::Int(SUPPLY)]),
            value: 0,
        },
    })
}

fn registry(vm: VmKind) -> VmRegistry {
    let mut r = VmRegistry::default();
    match vm {
        VmKind::Evm => r.insert(tongtian_vm_evm::EvmVm::new()),
        VmKind::Wasm => r.insert(tongtian_vm_wasm::WasmVm::new()),
    }
    r
}

/// `count` transfer calls between `senders` run by the VM directly; calls
/// per second.
pub fn vm_only(vm: VmKind, senders: &[Address], count: usize) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let store = tongtian_storage::ChainStore::open(&dir.path().join("s.redb"), SuiteId::Standard)?;
    let mut overlay = StateOverlay::new(&store);
    let block = BlockEnv {
        height: 1,
        timestamp_ms: 0,
        proposer: Address::ZERO,
    };
    let chain = ChainEnv {
        chain_id: 1,
        suite: SuiteId::Standard,
    };
    let vms = registry(vm);
    let deployer = senders[0];
    overlay.set_account(
        deployer,
        Account {
            balance: 1 << 100,
            nonce: 0,
        },
    );
    let token = create_address(&deployer, 0);
    let Action::Deploy { code, args, .. } = deploy_action(vm)? else {
        bail!("not a deployment");
    };
    let msg = |caller: Address, input: Vec<u8>| Message {
        caller,
        origin: caller,
        to: token,
        value: 0,
        input,
        gas_limit: CALL_GAS * 20,
        gas_price: 0,
        depth: 0,
        access_list: Vec::new(),
    };
    {
        let mut host = Host::new(&mut overlay, &block, &chain, &vms);
        let r = host.create(vm, &msg(deployer, args), &code)?;
        if let Err(f) = r.status {
            bail!("vm-only deployment failed: {}", f.message());
        }
        for s in &senders[1..] {
            let r = host.call(&msg(deployer, transfer_input(vm, s, 1_000_000)?))?;
            if r.status.is_err() {
                bail!("vm-only funding failed");
            }
        }
    }
    let n = senders.len();
    let inputs: Vec<Vec<u8>> = (0..n)
        .map(|i| transfer_input(vm, &senders[(i + 1) % n], 1))
        .collect::<Result<_>>()?;
    overlay.clear_journal();
    let start = Instant::now();
    for i in 0..count {
        let from = senders[i % n];
        let mut host = Host::new(&mut overlay, &block, &chain, &vms);
        let r = host.call(&msg(from, inputs[i % n].clone()))?;
        if let Err(f) = r.status {
            bail!("vm-only call failed: {}", f.message());
        }
        overlay.clear_journal();
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

/// Run the benchmark.
pub async fn run(args: ContractBenchArgs) -> Result<ContractBenchReport> {
    if args.count == 0 || args.concurrency < 2 || args.batch == 0 {
        bail!("--count and --batch must be positive and --concurrency at least 2");
    }
    let vm = args.vm;
    let (process, url, keys_dir) = spawn_dev(SuiteId::Standard)?;
    let client = Client::new(&url);
    wait_ready(&client, Duration::from_secs(60)).await?;
    let status = client.status().await?;
    let suite_id: SuiteId = status.suite.parse()?;
    let chain_id = status.chain_id;
    let dev_keys: Vec<Keypair> = (0..10)
        .map(|n| crate::util::load_key(&keys_dir.join(format!("dev-{n}.key")), None))
        .collect::<Result<_>>()?;
    let c = args.concurrency;
    let per_sender = args.count.div_ceil(c);
    let senders: Vec<Keypair> = (0..c).map(|_| Keypair::generate(suite_id)).collect();
    let addrs: Vec<Address> = senders
        .iter()
        .map(|k| Address::from_public_key(suite_id, k.public_key()))
        .collect();
    fund(
        &client,
        chain_id,
        &dev_keys,
        &addrs,
        per_sender as u128 * CALL_GAS as u128 + 10_000_000,
    )
    .await?;

    // Deploy the token from dev-0, then hand each sender tokens.
    let owner = &dev_keys[0];
    let owner_addr = Address::from_public_key(suite_id, owner.public_key());
    let mut nonce = client.account(&owner_addr).await?.pending_nonce;
    let sign = |nonce: u64, action: Action, gas: u64| {
        Transaction {
            chain_id,
            nonce,
            gas_limit: gas,
            gas_price: 1,
            action,
        }
        .sign(owner)
    };
    let deploy = sign(nonce, deploy_action(vm)?, 10_000_000);
    let token = create_address(&owner_addr, nonce);
    nonce += 1;
    let h = client.submit(&deploy).await?;
    let r = client.wait_receipt(&h, Duration::from_secs(60)).await?;
    if !r.is_success() {
        bail!("token deployment failed: {:?}", r.status);
    }
    let per_sender_tokens = per_sender as u128 * 10;
    let mut hashes = Vec::new();
    let raws: Vec<Vec<u8>> = addrs
        .iter()
        .map(|a| {
            let input = transfer_input(vm, a, per_sender_tokens)?;
            let tx = sign(
                nonce,
                Action::Call {
                    to: token,
                    input,
                    value: 0,
                },
                CALL_GAS,
            );
            nonce += 1;
            Ok(encode(&tx))
        })
        .collect::<Result<_>>()?;
    for item in client.submit_batch(&raws).await? {
        hashes.push(item.hash.context("token hand-out refused")?);
    }
    for h in hashes {
        let r = client.wait_receipt(&h, Duration::from_secs(60)).await?;
        if !r.is_success() {
            bail!("token hand-out failed: {:?}", r.status);
        }
    }

    // Pre-sign the calls.
    let inputs: Vec<Vec<u8>> = (0..c)
        .map(|i| transfer_input(vm, &addrs[(i + 1) % c], 1))
        .collect::<Result<_>>()?;
    let plans: Vec<Vec<CheckedTx>> = (0..c)
        .into_par_iter()
        .map(|i| {
            let n = per_sender.min(args.count.saturating_sub(i * per_sender));
            (0..n as u64)
                .map(|nonce| {
                    let tx = Transaction {
                        chain_id,
                        nonce,
                        gas_limit: CALL_GAS,
                        gas_price: 1,
                        action: Action::Call {
                            to: token,
                            input: inputs[i].clone(),
                            value: 0,
                        },
                    }
                    .sign(&senders[i]);
                    CheckedTx::new(tx, suite_id)
                })
                .collect()
        })
        .collect();
    let total: usize = plans.iter().map(|p| p.len()).sum();
    let timeout = Duration::from_secs(60 + (args.count / 500) as u64);
    let cpu_before = process.cpu_seconds();
    let d = drive(
        &client,
        std::slice::from_ref(&client),
        &plans,
        args.batch,
        args.rate,
        timeout,
    )
    .await?;
    let node_cpu = process
        .cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let committed = d.latencies.len().saturating_sub(d.failed);
    let tps = committed as f64 / d.duration_s;

    // Check a receipt and the token books.
    let first = plans.iter().flatten().next().context("no calls")?;
    let gas_per_call = client.receipt(&first.hash).await.map_or(0, |r| r.gas_used);
    let mut sum = 0u128;
    for a in &addrs {
        let call = json!({"to": token.to_string(), "data": format!("0x{}", hex::encode(balance_input(vm, a)?))});
        let out = client.eth("eth_call", json!([call, "latest"])).await?;
        let bytes = hex::decode(out.as_str().unwrap_or("0x").trim_start_matches("0x"))?;
        sum += decode_balance(vm, &bytes)?;
    }
    let supply_conserved = sum == per_sender_tokens * c as u128;
    let reads = match args.reads {
        true => Some(time_reads(&client, &addrs[1]).await?),
        false => None,
    };
    drop(process);

    let all: Vec<&CheckedTx> = plans.iter().flatten().collect();
    let verify_bound_tps = verify_bound(suite_id, &all)?;
    let vm_only_runs = tokio::task::spawn_blocking(move || {
        (0..VM_ONLY_RUNS)
            .map(|_| vm_only(vm, &addrs, total))
            .collect::<Result<Vec<f64>>>()
    })
    .await??;
    let mut sorted = vm_only_runs.clone();
    sorted.sort_by(f64::total_cmp);
    let vm_only_tps = percentile(&sorted, 0.5);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let node_cpu_us_per_call = node_cpu
        .filter(|_| committed > 0)
        .map(|c| c * 1e6 / committed as f64);
    Ok(ContractBenchReport {
        bench: "contracts",
        vm: vm.to_string(),
        count: total,
        concurrency: c,
        batch: args.batch,
        rate: args.rate,
        rejected: d.rejected,
        committed,
        failed: d.failed,
        duration_s: d.duration_s,
        tps,
        latency_ms_p50: percentile(&d.latencies, 0.50),
        latency_ms_p99: percentile(&d.latencies, 0.99),
        gas_per_call,
        vm_only_tps,
        vm_only_runs,
        node_over_vm_only: tps / vm_only_tps,
        node_cpu_cores: node_cpu.map(|c| c / d.duration_s),
        node_cpu_us_per_call,
        node_over_vm_only_ceiling: node_cpu_us_per_call
            .filter(|us| *us > 0.0)
            .map(|us| cores as f64 * 1e6 / us / vm_only_tps),
        verify_bound_tps,
        supply_conserved,
        cores,
        reads,
    })
}

/// Median milliseconds of [`READ_TRIES`] runs of `read`, and its last
/// answer.
async fn timed<T, F, Fut>(read: F) -> Result<(f64, T)>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, tongtian_client::ClientError>>,
{
    let mut times = Vec::with_capacity(READ_TRIES);
    let mut last = None;
    for _ in 0..READ_TRIES {
        let t = Instant::now();
        last = Some(read().await?);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok((percentile(&times, 0.5), last.context("no tries")?))
}

/// Time the read paths of `--reads` on the node behind `client`;
/// `recipient` received transfers in the run.
async fn time_reads(client: &Client, recipient: &Address) -> Result<ReadTimes> {
    let head = client.status().await?.height;
    let qty = |n: u64| json!(format!("{n:#x}"));
    let mut block = (0, 0);
    for h in 0..=head {
        let n = client
            .eth("eth_getBlockTransactionCountByNumber", json!([qty(h)]))
            .await?;
        let n = u64::from_str_radix(n.as_str().unwrap_or("0x0").trim_start_matches("0x"), 16)?;
        if n > block.1 {
            block = (h, n);
        }
    }
    let (block_ms, b) =
        timed(|| client.eth("eth_getBlockByNumber", json!([qty(block.0), false]))).await?;
    let (block_full_ms, _) =
        timed(|| client.eth("eth_getBlockByNumber", json!([qty(block.0), true]))).await?;
    let last = b["transactions"]
        .as_array()
        .and_then(|t| t.last())
        .cloned()
        .context("the largest block has no transactions")?;
    let (last_receipt_ms, _) =
        timed(|| client.eth("eth_getTransactionReceipt", json!([last]))).await?;
    let topic = |a: &Address| format!("0x{:0>64}", hex::encode(a.0));
    let nobody = Address([0xee; 20]);
    let (logs_none_ms, _) = timed(|| {
        client.eth(
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "toBlock": "latest", "topics": [null, null, topic(&nobody)]}]),
        )
    })
    .await?;
    let (logs_one_ms, found) = timed(|| {
        client.eth(
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "toBlock": "latest", "topics": [null, null, topic(recipient)]}]),
        )
    })
    .await?;
    let (events_none_ms, _) = timed(|| client.events(Some(&nobody), 0, Some(head))).await?;
    Ok(ReadTimes {
        block: block.0,
        block_txs: block.1,
        block_ms,
        block_full_ms,
        last_receipt_ms,
        logs_none_ms,
        logs_one_ms,
        logs_one_found: found.as_array().map_or(0, Vec::len),
        events_none_ms,
        blocks: head + 1,
    })
}
