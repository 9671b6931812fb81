//! Blocks built ahead (while their parent is written) are the blocks a
//! node would have built after: another node re-executing every block
//! reaches the same roots.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};
use tongtian_consensus::Application;
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_node::{dev, ChainRuntime};
use tongtian_types::codec::encode;
use tongtian_types::{Action, Address, Transaction};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_built_ahead_replay_to_the_same_roots() {
    let suite = SuiteId::Standard;
    let validator = Keypair::from_seed(suite, b"prepared-validator");
    let senders: Vec<Keypair> = (0..6u8)
        .map(|i| Keypair::from_seed(suite, &[b's', i]))
        .collect();
    let addrs: Vec<Address> = senders
        .iter()
        .map(|k| Address::from_public_key(suite, k.public_key()))
        .collect();
    let mut spec = dev::dev_spec(suite, &validator, &addrs);
    // Small blocks back to back, so most blocks have a parent being written.
    spec.consensus.max_block_txs = 40;
    spec.consensus.block_interval_ms = 1;
    spec.consensus.empty_block_interval_ms = 0;

    let dir = tempfile::tempdir().unwrap();
    let a = ChainRuntime::open(&dir.path().join("a"), spec.clone(), validator.clone()).unwrap();
    // Every sender pays the next one and a fresh address, so blocks read
    // balances the previous block changed.
    let per_sender = 100u64;
    let raws: Vec<Vec<Vec<u8>>> = senders
        .iter()
        .enumerate()
        .map(|(i, k)| {
            (0..per_sender)
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
    // Admit the first half before the engine starts, the rest while it runs.
    for r in &raws {
        let refs: Vec<&[u8]> = r[..50].iter().map(|x| x.as_slice()).collect();
        assert!(a.submit_batch(&refs).iter().all(|r| r.is_ok()));
    }
    let running = a.start(None).unwrap();
    for r in &raws {
        let refs: Vec<&[u8]> = r[50..].iter().map(|x| x.as_slice()).collect();
        assert!(a.submit_batch(&refs).iter().all(|r| r.is_ok()));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while addrs
        .iter()
        .any(|x| a.account(x).unwrap().nonce < per_sender)
    {
        assert!(Instant::now() < deadline, "transfers not committed in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop(Duration::from_secs(10)).await.unwrap();
    assert!(
        a.prepared_proposals() > 0,
        "no block was built ahead of its parent's commit"
    );

    // Replay every block on a second node: it re-executes each and checks
    // the header's roots.
    let b = ChainRuntime::open(&dir.path().join("b"), spec, validator).unwrap();
    let (tip, tip_hash) = a.latest();
    for h in 1..=tip {
        let (block, cert) = a.committed_block(h).unwrap();
        b.verify(&block)
            .await
            .unwrap_or_else(|e| panic!("block {h}: {e}"));
        b.commit(block, cert).await.unwrap();
    }
    assert_eq!(b.latest(), (tip, tip_hash));
    for x in &addrs {
        assert_eq!(a.account(x).unwrap(), b.account(x).unwrap());
        assert_eq!(b.account(x).unwrap().nonce, per_sender);
    }
}
