//! The light client against a real other chain's store: headers whose
//! state roots commit to the validator set, certified by real signatures,
//! checked by the `client` module running in an executor over a real store.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_execution::{BlockEnv, Executor, Mode, Outcome};
use tongtian_storage::{BlockCommit, ChainStore, StateStore};
use tongtian_types::codec::encode;
use tongtian_types::{
    Address, Block, BlockHeader, Certificate, CertificateSignature, ChainSpec, CheckedTx,
    SpecBuilder, Transaction, TxStatus, ValidatorSet, ValidatorSpec, H256,
};
use tongtian_xchain::client::{Client, ClientInit, ClientMsg, SignedHeader, TrustModel};

const X: u64 = 900;
const HOST: u64 = 901;

/// Commit `changes` as block `height` of a store; its state root.
fn commit(
    store: &ChainStore,
    chain: u64,
    height: u64,
    changes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
) -> BlockHeader {
    let staged = store.stage(changes).unwrap();
    let header = BlockHeader {
        chain_id: chain,
        height,
        timestamp_ms: 1_000 + height * 1_000,
        parent_hash: H256::ZERO,
        tx_root: H256::ZERO,
        receipts_root: H256::ZERO,
        state_root: staged.root,
        tx_count: 0,
        proposer: Address::ZERO,
    };
    store
        .commit_block(BlockCommit {
            block: &Block {
                header: header.clone(),
                txs: vec![],
            },
            tx_hashes: &[],
            receipts: &[],
            certificate: &Certificate::default(),
            state: &staged,
            filters: Default::default(),
            block_events: &[],
        })
        .unwrap();
    header
}

fn set_of(keys: &[Keypair], version: u64) -> ValidatorSet {
    ValidatorSet {
        version,
        validators: keys
            .iter()
            .enumerate()
            .map(|(i, k)| ValidatorSpec {
                name: format!("v{i}"),
                public_key: k.public_key().to_vec(),
            })
            .collect(),
    }
}

/// The other chain: a store whose state holds its validator set.
struct Other {
    _dir: tempfile::TempDir,
    store: ChainStore,
    headers: Vec<BlockHeader>,
}

impl Other {
    fn new(genesis: &ValidatorSet) -> Other {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("x.redb"), SuiteId::Standard).unwrap();
        let mut o = Other {
            _dir: dir,
            store,
            headers: vec![],
        };
        o.block(Some(genesis));
        o
    }

    /// The next block; `set` changes the validator set in its state.
    fn block(&mut self, set: Option<&ValidatorSet>) -> BlockHeader {
        let h = self.headers.len() as u64;
        let mut changes = BTreeMap::new();
        changes.insert(format!("height/{h}").into_bytes(), Some(vec![h as u8]));
        if let Some(s) = set {
            changes.insert(
                tongtian_execution::membership::validators_key(),
                Some(encode(s)),
            );
        }
        let header = commit(&self.store, X, h, changes);
        self.headers.push(header.clone());
        header
    }

    fn signed(&self, h: u64, by: &[&Keypair]) -> SignedHeader {
        sign(self.headers[h as usize].clone(), by)
    }

    fn proof(&self, h: u64) -> tongtian_types::proof::StateProof {
        self.store
            .prove(&tongtian_execution::membership::validators_key(), h)
            .unwrap()
    }
}

fn sign(header: BlockHeader, by: &[&Keypair]) -> SignedHeader {
    let hash = header.hash(SuiteId::Standard);
    let msg = BlockHeader::commit_bytes(&hash, 0);
    SignedHeader {
        header,
        certificate: Certificate {
            engine: "bft".into(),
            block_hash: hash,
            round: 0,
            signatures: by
                .iter()
                .map(|k| CertificateSignature {
                    public_key: k.public_key().to_vec(),
                    signature: k.sign(&msg),
                })
                .collect(),
        },
    }
}

/// This chain, running the client module.
struct Host {
    _dir: tempfile::TempDir,
    store: ChainStore,
    ex: Executor,
    relayer: Keypair,
    nonce: u64,
    height: u64,
    time_ms: u64,
    /// Blocks committed (the store's heights are consecutive; the block
    /// heights the executor sees may jump, to pass trusting periods).
    committed: u64,
}

impl Host {
    fn new(init: ClientInit) -> Host {
        let relayer = Keypair::from_seed(SuiteId::Standard, b"relayer");
        let v = Keypair::from_seed(SuiteId::Standard, b"host-validator");
        let spec: ChainSpec = SpecBuilder::new("host", HOST)
            .validator("v", v.public_key())
            .fund(
                Address::from_public_key(SuiteId::Standard, relayer.public_key()),
                1 << 60,
            )
            .module(
                "client",
                serde_json::json!({ "clients": [serde_json::to_value(&init).unwrap()] }),
            )
            .build()
            .unwrap();
        let ex = Executor::new(spec).with_module(Arc::new(Client));
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("h.redb"), SuiteId::Standard).unwrap();
        let changes = ex.genesis_changes().unwrap();
        commit(&store, HOST, 0, changes);
        Host {
            _dir: dir,
            store,
            ex,
            relayer,
            nonce: 0,
            height: 0,
            time_ms: 0,
            committed: 0,
        }
    }

    /// Send `msg` in the next block (`advance` blocks and ms later); its
    /// code ("success" or the failure's).
    fn send(&mut self, msg: ClientMsg) -> String {
        self.send_after(msg, 1, 1_000)
    }

    fn send_after(&mut self, msg: ClientMsg, blocks: u64, ms: u64) -> String {
        let tx = Transaction {
            chain_id: HOST,
            nonce: self.nonce,
            gas_limit: 10_000_000,
            gas_price: 1,
            action: msg.action(),
        }
        .sign(&self.relayer);
        self.nonce += 1;
        self.height += blocks;
        self.time_ms += ms;
        let env = BlockEnv {
            height: self.height,
            timestamp_ms: self.time_ms,
            proposer: Address::ZERO,
        };
        let out: Outcome = self
            .ex
            .execute(
                &self.store,
                &env,
                vec![CheckedTx::new(tx, SuiteId::Standard)],
                Mode::Verify,
            )
            .unwrap();
        let code = match &out.receipts[0].status {
            TxStatus::Success => "success".to_string(),
            TxStatus::Failed { code, .. } => code.clone(),
        };
        let out = self.ex.finish_block(&self.store, &env, out).unwrap();
        self.committed += 1;
        commit(&self.store, HOST, self.committed, out.changes);
        code
    }

    fn q(&self, path: &str) -> serde_json::Value {
        self.ex
            .query_module(&self.store, "client", path, &BTreeMap::new())
            .unwrap()
            .unwrap()
    }

    fn latest(&self) -> u64 {
        self.q("clients/x")["latest_height"].as_u64().unwrap()
    }
}

fn keys(n: usize, tag: &str) -> Vec<Keypair> {
    (0..n)
        .map(|i| Keypair::from_seed(SuiteId::Standard, format!("{tag}{i}").as_bytes()))
        .collect()
}

fn init(set: &ValidatorSet, other: &Other) -> ClientInit {
    ClientInit {
        id: "x".into(),
        chain_id: X,
        suite: SuiteId::Standard,
        model: TrustModel::Bft,
        height: 0,
        header_hash: other.headers[0].hash(SuiteId::Standard),
        state_root: Some(other.headers[0].state_root),
        timestamp_ms: other.headers[0].timestamp_ms,
        validators: set.clone(),
        trusting_blocks: 100,
        trusting_ms: 100_000,
    }
}

fn update(other: &Other, h: u64, by: &[&Keypair]) -> ClientMsg {
    ClientMsg::Update {
        client: "x".into(),
        signed: other.signed(h, by),
        validators: other.proof(h),
    }
}

#[test]
fn adjacent_updates_need_more_than_two_thirds_of_the_trusted_set() {
    let v = keys(4, "v");
    let set = set_of(&v, 0);
    let mut other = Other::new(&set);
    let mut host = Host::new(init(&set, &other));
    other.block(None);
    // 2 of 4 is not more than 2/3; an outsider's signatures count nothing.
    let outsiders = keys(4, "outsider");
    assert_eq!(
        host.send(update(&other, 1, &[&v[0], &v[1]])),
        "insufficient_power"
    );
    assert_eq!(
        host.send(update(
            &other,
            1,
            &[&v[0], &v[1], &outsiders[0], &outsiders[1]]
        )),
        "insufficient_power"
    );
    // A signer counted twice is counted once.
    assert_eq!(
        host.send(update(&other, 1, &[&v[0], &v[1], &v[1]])),
        "insufficient_power"
    );
    assert_eq!(host.latest(), 0);
    assert_eq!(
        host.send(update(&other, 1, &[&v[0], &v[1], &v[2]])),
        "success"
    );
    assert_eq!(host.latest(), 1);
    let cs = host.q("clients/x/consensus/1");
    assert_eq!(
        cs["state_root"],
        serde_json::to_value(other.headers[1].state_root).unwrap()
    );
    // The same height again is stale.
    assert_eq!(
        host.send(update(&other, 1, &[&v[0], &v[1], &v[2]])),
        "stale_header"
    );
}

#[test]
fn forged_headers_and_proofs_are_refused() {
    let v = keys(4, "v");
    let set = set_of(&v, 0);
    let mut other = Other::new(&set);
    let mut host = Host::new(init(&set, &other));
    other.block(None);
    let all: Vec<&Keypair> = v.iter().collect();
    // A header altered after signing.
    let mut sh = other.signed(1, &all);
    sh.header.state_root = H256([9; 32]);
    assert_eq!(
        host.send(ClientMsg::Update {
            client: "x".into(),
            signed: sh,
            validators: other.proof(1),
        }),
        "certificate_mismatch"
    );
    // Signatures of another header under this one's hash: none checks.
    other.block(None);
    let h2 = other.headers[2].clone();
    let mut sh = other.signed(1, &all);
    sh.certificate.block_hash = h2.hash(SuiteId::Standard);
    sh.header = h2;
    assert_eq!(
        host.send(ClientMsg::Update {
            client: "x".into(),
            signed: sh,
            validators: other.proof(2),
        }),
        "insufficient_power"
    );
    // Another chain's header.
    let mut wrong = other.headers[1].clone();
    wrong.chain_id = 7;
    assert_eq!(
        host.send(ClientMsg::Update {
            client: "x".into(),
            signed: sign(wrong, &all),
            validators: other.proof(1),
        }),
        "wrong_chain"
    );
    // A validator-set proof from another height does not lead to this root.
    assert_eq!(
        host.send(ClientMsg::Update {
            client: "x".into(),
            signed: other.signed(1, &all),
            validators: other.proof(0),
        }),
        "proof_invalid"
    );
    // A proof claiming another set.
    let mut bad = other.proof(1);
    bad.value = Some(encode(&set_of(&keys(4, "outsider"), 0)));
    assert_eq!(
        host.send(ClientMsg::Update {
            client: "x".into(),
            signed: other.signed(1, &all),
            validators: bad,
        }),
        "proof_invalid"
    );
    assert_eq!(host.latest(), 0);
    assert_eq!(host.send(update(&other, 1, &all)), "success");
    assert_eq!(host.latest(), 1);
}

#[test]
fn skipping_needs_a_third_of_the_trusted_set_and_steps_through_changes() {
    let v = keys(4, "v");
    let set = set_of(&v, 0);
    let mut other = Other::new(&set);
    let mut host = Host::new(init(&set, &other));
    for _ in 0..4 {
        other.block(None);
    }
    // Skipping 0 -> 4 with the set unchanged: 3 of 4 signed (and 3 of 4 of
    // its own set).
    assert_eq!(
        host.send(update(&other, 4, &[&v[0], &v[1], &v[2]])),
        "success"
    );
    assert_eq!(host.latest(), 4);

    // Block 5 changes the set to w (two old, three new): it is signed by
    // the old set, and block 6 on by the new one.
    let w_keys = keys(3, "w");
    let mut next: Vec<Keypair> = vec![v[0].clone(), v[1].clone()];
    next.extend(w_keys.iter().cloned());
    let w = set_of(&next, 1);
    other.block(Some(&w));
    for _ in 0..3 {
        other.block(None);
    }
    let new: Vec<&Keypair> = next.iter().collect();
    // Skip 4 -> 8 signed by all five new validators: the two old ones are
    // 2 of 4 trusted, more than 1/3, so the skip is allowed.
    assert_eq!(host.send(update(&other, 8, &new)), "success");
    assert_eq!(host.latest(), 8);

    // A second change to entirely new keys u at block 9; skipping 8 -> 11
    // signed only by u: none of the trusted set, refused; stepping through
    // (9 by w, 10 by u) works.
    let u_keys = keys(4, "u");
    let u = set_of(&u_keys, 2);
    other.block(Some(&u));
    other.block(None);
    other.block(None);
    let by_u: Vec<&Keypair> = u_keys.iter().collect();
    assert_eq!(host.send(update(&other, 11, &by_u)), "insufficient_power");
    assert_eq!(host.send(update(&other, 9, &new)), "success");
    assert_eq!(host.send(update(&other, 10, &by_u)), "success");
    assert_eq!(host.send(update(&other, 11, &by_u)), "success");
    assert_eq!(host.latest(), 11);
}

#[test]
fn skipping_at_the_one_third_boundary() {
    // 6 trusted validators: more than 1/3 is 3; 2 is not enough.
    let v = keys(6, "v");
    let set = set_of(&v, 0);
    let mut other = Other::new(&set);
    let mut host = Host::new(init(&set, &other));
    // The set becomes 4 old-free new keys plus v0..v2 at block 1.
    let n_keys = keys(4, "n");
    let mut mixed: Vec<Keypair> = vec![v[0].clone(), v[1].clone(), v[2].clone()];
    mixed.extend(n_keys.iter().cloned());
    let m = set_of(&mixed, 1);
    other.block(Some(&m));
    other.block(None);
    other.block(None);
    // Block 3 signed by v0, v1 and all four new: 2 of 6 trusted.
    let two: Vec<&Keypair> = [&v[0], &v[1]].into_iter().chain(n_keys.iter()).collect();
    assert_eq!(host.send(update(&other, 3, &two)), "insufficient_power");
    // With v2 too: 3 of 6, more than 1/3.
    let three: Vec<&Keypair> = [&v[0], &v[1], &v[2]]
        .into_iter()
        .chain(n_keys.iter())
        .collect();
    assert_eq!(host.send(update(&other, 3, &three)), "success");
}

#[test]
fn conflicting_headers_freeze_the_client_until_a_vote() {
    let v = keys(4, "v");
    let set = set_of(&v, 0);
    let mut other = Other::new(&set);
    let mut host = Host::new(init(&set, &other));
    other.block(None);
    let all: Vec<&Keypair> = v.iter().collect();
    assert_eq!(host.send(update(&other, 1, &all)), "success");
    // The validators sign a second header for height 1.
    let mut fork = other.headers[1].clone();
    fork.state_root = H256([5; 32]);
    let a = other.signed(1, &all);
    let b = sign(fork, &all);
    // The same header twice is no evidence; weakly signed evidence neither.
    assert_eq!(
        host.send(ClientMsg::Misbehaviour {
            client: "x".into(),
            a: a.clone(),
            b: a.clone(),
        }),
        "misbehaviour_not_proven"
    );
    let weak = sign(b.header.clone(), &[&v[0]]);
    assert_eq!(
        host.send(ClientMsg::Misbehaviour {
            client: "x".into(),
            a: a.clone(),
            b: weak,
        }),
        "misbehaviour_not_proven"
    );
    assert_eq!(
        host.send(ClientMsg::Misbehaviour {
            client: "x".into(),
            a,
            b,
        }),
        "success"
    );
    let c = host.q("clients/x");
    assert_eq!(c["frozen"], true);
    assert_eq!(host.q("clients/x/evidence")["kind"], "conflicting_headers");
    // Frozen: no update, no proof.
    other.block(None);
    assert_eq!(host.send(update(&other, 2, &all)), "client_frozen");
    let key = b"height/1".to_vec();
    assert_eq!(
        host.send(ClientMsg::VerifyState {
            client: "x".into(),
            height: 1,
            key: key.clone(),
            value: Some(vec![1]),
            proof: other.store.prove(&key, 1).unwrap(),
        }),
        "client_frozen"
    );
    // Only an authority unfreezes.
    assert_eq!(
        host.send(ClientMsg::Unfreeze { client: "x".into() }),
        "governance_only"
    );
}

#[test]
fn a_header_whose_time_goes_backwards_freezes_the_client() {
    let v = keys(4, "v");
    let set = set_of(&v, 0);
    let mut other = Other::new(&set);
    let mut host = Host::new(init(&set, &other));
    other.block(None);
    let all: Vec<&Keypair> = v.iter().collect();
    assert_eq!(host.send(update(&other, 1, &all)), "success");
    let mut h2 = other.block(None);
    h2.timestamp_ms = other.headers[1].timestamp_ms - 1;
    // (state root unchanged: the proof still holds)
    assert_eq!(
        host.send(ClientMsg::Update {
            client: "x".into(),
            signed: sign(h2, &all),
            validators: other.proof(2),
        }),
        "success"
    );
    assert_eq!(host.q("clients/x")["frozen"], true);
    assert_eq!(host.q("clients/x/evidence")["kind"], "time_backwards");
}

#[test]
fn state_proofs_are_checked_against_verified_roots_and_clients_expire() {
    let v = keys(4, "v");
    let set = set_of(&v, 0);
    let mut other = Other::new(&set);
    let mut host = Host::new(init(&set, &other));
    other.block(None);
    let all: Vec<&Keypair> = v.iter().collect();
    assert_eq!(host.send(update(&other, 1, &all)), "success");
    let key = b"height/1".to_vec();
    fn verify(
        host: &mut Host,
        other: &Other,
        height: u64,
        value: Option<Vec<u8>>,
        key: &[u8],
        at: u64,
    ) -> String {
        host.send(ClientMsg::VerifyState {
            client: "x".into(),
            height,
            key: key.to_vec(),
            value,
            proof: other.store.prove(key, at).unwrap(),
        })
    }
    assert_eq!(
        verify(&mut host, &other, 1, Some(vec![1]), &key, 1),
        "success"
    );
    // Absence, proven.
    assert_eq!(
        verify(&mut host, &other, 1, None, b"nothing-here", 1),
        "success"
    );
    // A claimed value the proof does not show; a height never verified.
    assert_eq!(
        verify(&mut host, &other, 1, Some(vec![2]), &key, 1),
        "proof_invalid"
    );
    assert_eq!(
        verify(&mut host, &other, 5, Some(vec![1]), &key, 1),
        "unknown_height"
    );
    // A value that exists claimed absent: the proof shows it.
    let mut absent = other.store.prove(&key, 1).unwrap();
    absent.value = None;
    assert_eq!(
        host.send(ClientMsg::VerifyState {
            client: "x".into(),
            height: 1,
            key: key.clone(),
            value: None,
            proof: absent,
        }),
        "proof_invalid"
    );
    // 101 blocks without an update: past the trusting period (100).
    other.block(None);
    assert_eq!(
        host.send_after(update(&other, 2, &all), 101, 1_000),
        "client_expired"
    );
    assert_eq!(
        verify(&mut host, &other, 1, Some(vec![1]), &key, 1),
        "client_expired"
    );
}
