//! Blocks built ahead (while their parent is written) are the blocks a
//! node would have built after: another node re-executing every block
//! reaches the same roots. A block built ahead with room left takes in the
//! transactions that arrive before it is proposed.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};
use tongtian_consensus::Application;
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_node::{dev, ChainRuntime};
use tongtian_types::codec::encode;
use tongtian_types::{Action, Address, ChainSpec, Transaction};

const SENDERS: u8 = 6;
const PER_SENDER: u64 = 100;

struct Setup {
    spec: ChainSpec,
    validator: Keypair,
    addrs: Vec<Address>,
    /// Each sender's signed transfers, in nonce order.
    raws: Vec<Vec<Vec<u8>>>,
}

fn setup(max_block_txs: u32, block_interval_ms: u64) -> Setup {
    let suite = SuiteId::Standard;
    let validator = Keypair::from_seed(suite, b"prepared-validator");
    let senders: Vec<Keypair> = (0..SENDERS)
        .map(|i| Keypair::from_seed(suite, &[b's', i]))
        .collect();
    let addrs: Vec<Address> = senders
        .iter()
        .map(|k| Address::from_public_key(suite, k.public_key()))
        .collect();
    let mut spec = dev::dev_spec(suite, &validator, &addrs);
    spec.consensus.max_block_txs = max_block_txs;
    spec.consensus.block_interval_ms = block_interval_ms;
    spec.consensus.empty_block_interval_ms = 0;
    // Every sender pays the next one and a fresh address, so blocks read
    // balances the previous block changed.
    let raws = senders
        .iter()
        .enumerate()
        .map(|(i, k)| {
            (0..PER_SENDER)
                .map(|n| {
                    let to = if n % 2 == 0 {
                        addrs[(i + 1) % addrs.len()]
                    } else {
                        Address([n as u8; 20])
                    };
                    let tx = Transaction {
                        chain_id: spec.chain_id,
                        nonce: n,
                        gas_limit: 100_000,
                        gas_price: 1,
                        action: Action::Transfer {
                            to,
                            amount: 1_000 + n as u128,
                            memo: vec![],
                        },
                    }
                    .sign(k);
                    encode(&tx)
                })
                .collect()
        })
        .collect();
    Setup {
        spec,
        validator,
        addrs,
        raws,
    }
}

/// Admit every sender's transactions `from..to`.
fn submit(node: &ChainRuntime, s: &Setup, from: usize, to: usize) {
    for r in &s.raws {
        let refs: Vec<&[u8]> = r[from..to].iter().map(|x| x.as_slice()).collect();
        assert!(node.submit_batch(&refs).iter().all(|r| r.is_ok()));
    }
}

async fn wait_all_committed(node: &ChainRuntime, s: &Setup) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while s
        .addrs
        .iter()
        .any(|x| node.account(x).unwrap().nonce < PER_SENDER)
    {
        assert!(Instant::now() < deadline, "transfers not committed in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Replay every block of `a` on a fresh node, which re-executes each and
/// checks the header's roots.
async fn replay(a: &ChainRuntime, s: &Setup, dir: &std::path::Path) {
    let b = ChainRuntime::open(dir, s.spec.clone(), s.validator.clone()).unwrap();
    let (tip, tip_hash) = a.latest();
    for h in 1..=tip {
        let (block, cert) = a.committed_block(h).unwrap();
        b.verify(&block)
            .await
            .unwrap_or_else(|e| panic!("block {h}: {e}"));
        b.commit(block, cert).await.unwrap();
    }
    assert_eq!(b.latest(), (tip, tip_hash));
    for x in &s.addrs {
        assert_eq!(a.account(x).unwrap(), b.account(x).unwrap());
        assert_eq!(b.account(x).unwrap().nonce, PER_SENDER);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_built_ahead_replay_to_the_same_roots() {
    // Small blocks back to back, so most blocks have a parent being written.
    let s = setup(40, 1);
    let dir = tempfile::tempdir().unwrap();
    let a = ChainRuntime::open(&dir.path().join("a"), s.spec.clone(), s.validator.clone()).unwrap();
    // Admit the first half before the engine starts, the rest while it runs.
    submit(&a, &s, 0, 50);
    let running = a.start(None).unwrap();
    submit(&a, &s, 50, PER_SENDER as usize);
    wait_all_committed(&a, &s).await;
    running.stop(Duration::from_secs(10)).await.unwrap();
    assert!(
        a.prepared_proposals() > 0,
        "no block was built ahead of its parent's commit"
    );
    replay(&a, &s, &dir.path().join("b")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_built_ahead_take_in_late_transactions() {
    // Roomy blocks 100 ms apart; transactions trickle in meanwhile, so a
    // block built ahead from what was pending has room for what came later.
    let s = setup(10_000, 100);
    let dir = tempfile::tempdir().unwrap();
    let a = ChainRuntime::open(&dir.path().join("a"), s.spec.clone(), s.validator.clone()).unwrap();
    let running = a.start(None).unwrap();
    for n in 0..PER_SENDER as usize {
        submit(&a, &s, n, n + 1);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_all_committed(&a, &s).await;
    running.stop(Duration::from_secs(10)).await.unwrap();
    assert!(
        a.topped_up_proposals() > 0,
        "no block built ahead took in later transactions ({} built ahead)",
        a.prepared_proposals()
    );
    replay(&a, &s, &dir.path().join("b")).await;
}
