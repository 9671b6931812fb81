//! The main chain's modules together: organisations, governance and the
//! chain registry, executed block by block over a real store.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_execution::{BlockEnv, Executor, Mode, Outcome};
use tongtian_modules::gov::{Choice, GovMsg, ProposalKind};
use tongtian_modules::org::{NodeInfo, OrgMsg, Organisation, SuiteKey};
use tongtian_modules::registry::{ChainRequest, RegistryMsg};
use tongtian_storage::{BlockCommit, ChainStore, StateStore};
use tongtian_types::{
    Action, Address, Block, BlockHeader, Certificate, ChainSpec, CheckedTx, ConsensusSpec,
    GasSchedule, GenesisAccount, Limits, Transaction, TxStatus, ValidatorSpec, H256,
};

const CHAIN: u64 = 500;

struct Net {
    _dir: tempfile::TempDir,
    store: ChainStore,
    ex: Executor,
    admins: Vec<Keypair>,
    outsider: Keypair,
    nonces: BTreeMap<Address, u64>,
    height: u64,
    last_block_events: Vec<tongtian_types::Event>,
    chain_id: u64,
    suite: SuiteId,
    /// Failure messages of the last block's receipts ("" for successes).
    last_messages: Vec<String>,
}

fn addr(k: &Keypair) -> Address {
    Address::from_public_key(SuiteId::Standard, k.public_key())
}

fn org(i: usize, admin: &Keypair, with_sm_key: bool) -> Organisation {
    let node = Keypair::from_seed(SuiteId::Standard, format!("node{i}").as_bytes());
    let mut keys = vec![SuiteKey {
        suite: SuiteId::Standard,
        public_key: node.public_key().to_vec(),
    }];
    if with_sm_key {
        let sm = Keypair::from_seed(SuiteId::Sm, format!("sm{i}").as_bytes());
        keys.push(SuiteKey {
            suite: SuiteId::Sm,
            public_key: sm.public_key().to_vec(),
        });
    }
    Organisation {
        id: format!("org-{i}"),
        name: format!("Organisation {i}"),
        admin: addr(admin),
        weight: 1,
        nodes: vec![NodeInfo {
            name: format!("node-{i}"),
            transport_key: node.public_key().to_vec(),
            validator_keys: keys,
        }],
    }
}

impl Net {
    /// `n` founding organisations of weight 1 (the last has no SM key).
    fn new(n: usize, voting_period: u64) -> Net {
        Net::new_with_vms(n, voting_period, vec![])
    }

    /// [`Net::new`] with contracts on `vms`.
    fn new_with_vms(n: usize, voting_period: u64, vms: Vec<tongtian_types::VmKind>) -> Net {
        let admins: Vec<Keypair> = (0..n)
            .map(|i| Keypair::from_seed(SuiteId::Standard, format!("admin{i}").as_bytes()))
            .collect();
        let outsider = Keypair::from_seed(SuiteId::Standard, b"outsider");
        let orgs: Vec<Organisation> = admins
            .iter()
            .enumerate()
            .map(|(i, a)| org(i, a, i + 1 < n))
            .collect();
        let v = Keypair::from_seed(SuiteId::Standard, b"validator");
        let mut spec = ChainSpec {
            name: "main".into(),
            chain_id: CHAIN,
            suite: SuiteId::Standard,
            consensus: ConsensusSpec {
                engine: "solo".into(),
                block_interval_ms: 10,
                max_block_txs: 100,
                empty_block_interval_ms: 0,
            },
            validators: vec![ValidatorSpec {
                name: "v".into(),
                public_key: v.public_key().to_vec(),
            }],
            accounts: admins
                .iter()
                .chain([&outsider])
                .map(|k| GenesisAccount {
                    address: addr(k),
                    balance: 1_000_000_000,
                })
                .collect(),
            gas: GasSchedule::default(),
            limits: Limits::default(),
            genesis_time_ms: 0,
            vms,
            modules: Default::default(),
        };
        spec.modules
            .insert("org", serde_json::json!({ "orgs": orgs }));
        spec.modules
            .insert("gov", serde_json::json!({ "voting_period": voting_period }));
        spec.modules.insert("registry", serde_json::json!({}));
        spec.modules.insert("contracts", serde_json::json!({}));
        spec.modules.insert("params", serde_json::json!({}));
        Net::with_spec(spec, admins, outsider)
    }

    /// A chain of `spec` (its suite for keys and addresses).
    fn with_spec(spec: ChainSpec, admins: Vec<Keypair>, outsider: Keypair) -> Net {
        let ex = tongtian_modules::build(Executor::new(spec.clone()), &spec)
            .unwrap()
            .with_vm(tongtian_vm_evm::EvmVm::new());
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("c.redb"), spec.suite).unwrap();
        let mut net = Net {
            _dir: dir,
            store,
            ex,
            admins,
            outsider,
            nonces: BTreeMap::new(),
            height: 0,
            last_block_events: Vec::new(),
            chain_id: spec.chain_id,
            suite: spec.suite,
            last_messages: Vec::new(),
        };
        let genesis = Outcome {
            changes: net.ex.genesis_changes().unwrap(),
            ..Outcome::default()
        };
        net.commit(genesis);
        net
    }

    fn commit(&mut self, out: Outcome) {
        let staged = self.store.stage(out.changes).unwrap();
        let header = BlockHeader {
            chain_id: self.chain_id,
            height: self.height,
            timestamp_ms: self.height * 1000,
            parent_hash: H256::ZERO,
            tx_root: H256::ZERO,
            receipts_root: H256::ZERO,
            state_root: staged.root,
            tx_count: 0,
            proposer: Address::ZERO,
        };
        self.store
            .commit_block(BlockCommit {
                block: &Block {
                    header,
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
    }

    fn tx(&mut self, k: &Keypair, action: Action) -> CheckedTx {
        let n = self
            .nonces
            .entry(Address::from_public_key(self.suite, k.public_key()))
            .or_default();
        let tx = Transaction {
            chain_id: self.chain_id,
            nonce: *n,
            gas_limit: 1_000_000,
            gas_price: 1,
            action,
        }
        .sign(k);
        *n += 1;
        CheckedTx::new(tx, self.suite)
    }

    /// Run one block of `txs`; (code or "success", fee) per receipt.
    fn block(&mut self, txs: Vec<CheckedTx>) -> Vec<(String, u128)> {
        self.height += 1;
        let env = BlockEnv {
            height: self.height,
            timestamp_ms: self.height * 1000,
            proposer: Address::ZERO,
        };
        let out = self
            .ex
            .execute(&self.store, &env, txs, Mode::Verify)
            .unwrap();
        let out = self.ex.finish_block(&self.store, &env, out).unwrap();
        self.last_block_events = out.block_events.clone();
        self.last_messages = out
            .receipts
            .iter()
            .map(|r| match &r.status {
                TxStatus::Failed { message, .. } => message.clone(),
                TxStatus::Success => String::new(),
            })
            .collect();
        let codes = out
            .receipts
            .iter()
            .map(|r| {
                let c = match &r.status {
                    TxStatus::Success => "success".to_string(),
                    TxStatus::Failed { code, .. } => code.clone(),
                };
                (c, r.fee)
            })
            .collect();
        self.commit(out);
        codes
    }

    fn gov(&mut self, who: usize, msg: GovMsg) -> (String, u128) {
        let k = if who == usize::MAX {
            self.outsider.clone()
        } else {
            self.admins[who].clone()
        };
        let t = self.tx(&k, msg.action());
        self.block(vec![t]).remove(0)
    }

    fn q(&self, module: &str, path: &str) -> serde_json::Value {
        self.ex
            .query_module(&self.store, module, path, &BTreeMap::new())
            .unwrap()
            .unwrap()
    }

    fn q_err(&self, module: &str, path: &str) -> String {
        self.ex
            .query_module(&self.store, module, path, &BTreeMap::new())
            .unwrap()
            .unwrap_err()
            .code
    }
}

fn create(name: &str, engine: &str, suite: SuiteId, orgs: &[&str]) -> ProposalKind {
    ProposalKind::CreateChain {
        chain: ChainRequest {
            name: name.into(),
            engine: engine.into(),
            suite,
            orgs: orgs.iter().map(|s| s.to_string()).collect(),
            vms: tongtian_types::VmKind::ALL.to_vec(),
            fund: vec![GenesisAccount {
                address: Address([7; 20]),
                balance: 1_000,
            }],
            chain_id: None,
            restricted: false,
        },
    }
}

fn status(net: &Net, id: u64) -> String {
    net.q("gov", &format!("proposals/{id}"))["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_chain_is_created_by_more_than_two_thirds_and_votes_are_fee_free() {
    let mut net = Net::new(4, 50);
    let (code, _) = net.gov(
        0,
        GovMsg::Propose {
            kind: create("trade", "bft", SuiteId::Sm, &["org-0", "org-1", "org-2"]),
        },
    );
    assert_eq!(code, "success");
    // 1 of 4 (the proposer) is not enough.
    assert_eq!(status(&net, 1), "open");
    assert_eq!(
        net.gov(
            1,
            GovMsg::Vote {
                proposal: 1,
                choice: Choice::Yes
            }
        ),
        ("success".into(), 0)
    );
    // 2 of 4 = 1/2: still not more than 2/3.
    assert_eq!(status(&net, 1), "open");
    assert!(net.q("registry", "chains").as_array().unwrap().is_empty());
    // The same organisation cannot vote twice; a non-member cannot vote.
    assert_eq!(
        net.gov(
            1,
            GovMsg::Vote {
                proposal: 1,
                choice: Choice::Yes
            }
        )
        .0,
        "already_voted"
    );
    assert_eq!(
        net.gov(
            usize::MAX,
            GovMsg::Vote {
                proposal: 1,
                choice: Choice::Yes
            }
        )
        .0,
        "not_a_member"
    );
    // 3 of 4 = 3/4 > 2/3: passes and is executed in this block.
    assert_eq!(
        net.gov(
            3,
            GovMsg::Vote {
                proposal: 1,
                choice: Choice::Yes
            }
        )
        .0,
        "success"
    );
    let p = net.q("gov", "proposals/1");
    assert_eq!(p["status"], "executed", "{p}");
    assert_eq!(p["tally"]["yes"], 3);
    assert_eq!(p["tally"]["total"], 4);
    let entry = net.q("registry", "chains/trade");
    assert_eq!(entry["chain_id"], CHAIN + 1);
    assert_eq!(entry["engine"], "bft");
    assert_eq!(entry["suite"], "sm");
    assert_eq!(
        entry["orgs"],
        serde_json::json!(["org-0", "org-1", "org-2"])
    );
    assert_eq!(entry["validators"].as_array().unwrap().len(), 3);
    // Voting on a decided proposal is refused.
    assert_eq!(
        net.gov(
            2,
            GovMsg::Vote {
                proposal: 1,
                choice: Choice::No
            }
        )
        .0,
        "proposal_closed"
    );
    // The derived genesis spec is the same from the same entry, and valid.
    let e: tongtian_modules::registry::ChainEntry = serde_json::from_value(entry).unwrap();
    let spec = tongtian_modules::registry::spec_of(&e, &[]);
    assert_eq!(spec, tongtian_modules::registry::spec_of(&e, &[]));
    spec.validate().unwrap();
    assert_eq!(spec.suite, SuiteId::Sm);
    assert_eq!(spec.accounts[0].balance, 1_000);
}

#[test]
fn thresholds_hold_at_the_boundary() {
    // Three organisations: 2 of 3 is exactly 2/3, which is not more than 2/3.
    let mut net = Net::new(3, 50);
    net.gov(
        0,
        GovMsg::Propose {
            kind: create(
                "trace",
                "raft",
                SuiteId::Standard,
                &["org-0", "org-1", "org-2"],
            ),
        },
    );
    net.gov(
        1,
        GovMsg::Vote {
            proposal: 1,
            choice: Choice::Yes,
        },
    );
    assert_eq!(status(&net, 1), "open");
    net.gov(
        2,
        GovMsg::Vote {
            proposal: 1,
            choice: Choice::Yes,
        },
    );
    assert_eq!(status(&net, 1), "executed");
    // Organisation admission needs more than 1/2: 2 of 3 passes, after
    // a no that leaves it possible.
    let newcomer = Keypair::from_seed(SuiteId::Standard, b"new admin");
    let kind = ProposalKind::AddOrg {
        org: org(9, &newcomer, false),
    };
    net.gov(0, GovMsg::Propose { kind });
    net.gov(
        1,
        GovMsg::Vote {
            proposal: 2,
            choice: Choice::No,
        },
    );
    assert_eq!(status(&net, 2), "open");
    net.gov(
        2,
        GovMsg::Vote {
            proposal: 2,
            choice: Choice::Yes,
        },
    );
    assert_eq!(status(&net, 2), "executed");
    assert_eq!(net.q("org", "orgs").as_array().unwrap().len(), 4);
    // Two noes of four make "more than 1/2 yes" impossible: rejected at once.
    let kind = ProposalKind::SetWeight {
        id: "org-9".into(),
        weight: 5,
    };
    net.gov(0, GovMsg::Propose { kind });
    net.gov(
        1,
        GovMsg::Vote {
            proposal: 3,
            choice: Choice::No,
        },
    );
    net.gov(
        2,
        GovMsg::Vote {
            proposal: 3,
            choice: Choice::No,
        },
    );
    assert_eq!(status(&net, 3), "rejected");
    assert_eq!(net.q("org", "orgs/org-9")["weight"], 1);
}

#[test]
fn the_voting_period_ends_a_proposal_and_late_votes_are_refused() {
    let mut net = Net::new(4, 2);
    net.gov(
        0,
        GovMsg::Propose {
            kind: create("late", "raft", SuiteId::Standard, &["org-0", "org-1"]),
        },
    );
    // Filed at height 1, open through height 3; closed at its end, with
    // an event of the block itself (no transaction closed it).
    net.block(vec![]);
    assert!(net.last_block_events.is_empty());
    net.block(vec![]);
    assert_eq!(status(&net, 1), "rejected");
    let e = &net.last_block_events[0];
    assert_eq!(e.name, "proposal_decided");
    assert!(
        e.attributes.contains(&("status".into(), "rejected".into())),
        "{e:?}"
    );
    assert_eq!(
        net.gov(
            1,
            GovMsg::Vote {
                proposal: 1,
                choice: Choice::Yes
            }
        )
        .0,
        "proposal_closed"
    );
    assert!(net.q("registry", "chains").as_array().unwrap().is_empty());
}

#[test]
fn malformed_proposals_and_direct_changes_are_refused_with_codes() {
    let mut net = Net::new(4, 50);
    let bad = |name: &str, engine: &str, suite: SuiteId, orgs: &[&str]| GovMsg::Propose {
        kind: create(name, engine, suite, orgs),
    };
    assert_eq!(
        net.gov(0, bad("x", "pbft", SuiteId::Standard, &["org-0"]))
            .0,
        "unknown_engine"
    );
    assert_eq!(
        net.gov(0, bad("x", "raft", SuiteId::Standard, &[])).0,
        "no_validators"
    );
    assert_eq!(
        net.gov(0, bad("x", "raft", SuiteId::Standard, &["org-0", "org-77"]))
            .0,
        "unknown_org"
    );
    assert_eq!(
        net.gov(0, bad("x", "raft", SuiteId::Standard, &["org-0", "org-0"]))
            .0,
        "duplicate_org"
    );
    assert_eq!(
        net.gov(0, bad("main", "raft", SuiteId::Standard, &["org-0"]))
            .0,
        "duplicate_chain"
    );
    assert_eq!(
        net.gov(0, bad("Bad Name", "raft", SuiteId::Standard, &["org-0"]))
            .0,
        "bad_chain_name"
    );
    // org-3 registered no SM key: it cannot validate an SM chain.
    assert_eq!(
        net.gov(0, bad("x", "bft", SuiteId::Sm, &["org-0", "org-3"]))
            .0,
        "no_validator_key"
    );
    assert_eq!(
        net.gov(0, bad("x", "solo", SuiteId::Standard, &["org-0", "org-1"]))
            .0,
        "solo_needs_one_validator"
    );
    let mut taken = create("x", "raft", SuiteId::Standard, &["org-0"]);
    if let ProposalKind::CreateChain { chain } = &mut taken {
        chain.chain_id = Some(CHAIN);
    }
    assert_eq!(
        net.gov(0, GovMsg::Propose { kind: taken }).0,
        "duplicate_chain_id"
    );
    assert_eq!(
        net.gov(usize::MAX, bad("x", "raft", SuiteId::Standard, &["org-0"]))
            .0,
        "not_a_member"
    );
    // None of those filed a proposal.
    assert!(net.q("gov", "proposals").as_array().unwrap().is_empty());
    // A message that is no gov message at all.
    let admin = net.admins[0].clone();
    let t = net.tx(
        &admin,
        Action::Module {
            module: "gov".into(),
            msg: vec![9, 9, 9],
        },
    );
    assert_eq!(net.block(vec![t])[0].0, "bad_module_message");
    // The registry and org change only by a vote.
    let req = match create("direct", "raft", SuiteId::Standard, &["org-0"]) {
        ProposalKind::CreateChain { chain } => chain,
        _ => unreachable!(),
    };
    let t = net.tx(
        &admin,
        Action::Module {
            module: "registry".into(),
            msg: RegistryMsg::Create { request: req }.encode(),
        },
    );
    assert_eq!(net.block(vec![t])[0].0, "governance_only");
    let newcomer = Keypair::from_seed(SuiteId::Standard, b"n");
    let t = net.tx(
        &admin,
        Action::Module {
            module: "org".into(),
            msg: OrgMsg::Add(org(5, &newcomer, false)).encode(),
        },
    );
    assert_eq!(net.block(vec![t])[0].0, "governance_only");
    assert_eq!(net.q("org", "orgs").as_array().unwrap().len(), 4);
    assert!(net.q("registry", "chains").as_array().unwrap().is_empty());
    assert_eq!(net.q_err("gov", "proposals/99"), "not_found");
    // An admin may change its own organisation's nodes, not another's.
    let t = net.tx(
        &admin,
        Action::Module {
            module: "org".into(),
            msg: OrgMsg::SetNodes {
                id: "org-1".into(),
                nodes: vec![],
            }
            .encode(),
        },
    );
    assert_eq!(net.block(vec![t])[0].0, "not_org_admin");
    let t = net.tx(
        &admin,
        Action::Module {
            module: "org".into(),
            msg: OrgMsg::SetNodes {
                id: "org-0".into(),
                nodes: vec![],
            }
            .encode(),
        },
    );
    assert_eq!(net.block(vec![t])[0].0, "success");
    // A stop of a chain that does not exist is refused when filed.
    assert_eq!(
        net.gov(
            0,
            GovMsg::Propose {
                kind: ProposalKind::StopChain {
                    name: "nope".into()
                }
            }
        )
        .0,
        "unknown_chain"
    );
}

#[test]
fn a_stop_vote_marks_the_chain_stopped() {
    let mut net = Net::new(1, 50);
    net.gov(
        0,
        GovMsg::Propose {
            kind: create("solo1", "solo", SuiteId::Standard, &["org-0"]),
        },
    );
    assert_eq!(net.q("registry", "chains/solo1")["status"], "active");
    net.gov(
        0,
        GovMsg::Propose {
            kind: ProposalKind::StopChain {
                name: "solo1".into(),
            },
        },
    );
    assert_eq!(net.q("registry", "chains/solo1")["status"], "stopped");
    assert_eq!(status(&net, 2), "executed");
}

#[test]
fn a_frozen_contract_takes_no_transaction_until_unfrozen() {
    let mut net = Net::new(1, 50);
    let target = Address([0xc0; 20]);
    let user = net.outsider.clone();
    let call = |net: &mut Net| {
        let t = net.tx(
            &user,
            Action::Call {
                to: target,
                input: vec![],
                value: 0,
            },
        );
        // Do not spend the nonce: only ask the authorize phase.
        *net.nonces.get_mut(&addr(&user)).unwrap() -= 1;
        net.ex.authorize_on(&net.store, &t).unwrap()
    };
    assert_eq!(call(&mut net), Ok(()));
    let (code, _) = net.gov(
        0,
        GovMsg::Propose {
            kind: ProposalKind::FreezeContract {
                address: target,
                chain: None,
            },
        },
    );
    assert_eq!(code, "success");
    assert_eq!(
        net.q("contracts", "frozen"),
        serde_json::json!([target.to_string()])
    );
    let refused = call(&mut net).unwrap_err();
    assert_eq!(refused.0, "contract_frozen");
    // Only gov freezes.
    let admin = net.admins[0].clone();
    let t = net.tx(
        &admin,
        Action::Module {
            module: "contracts".into(),
            msg: tongtian_modules::contracts::ContractsMsg::Unfreeze { address: target }.encode(),
        },
    );
    assert_eq!(net.block(vec![t])[0].0, "governance_only");
    net.gov(
        0,
        GovMsg::Propose {
            kind: ProposalKind::UnfreezeContract {
                address: target,
                chain: None,
            },
        },
    );
    assert_eq!(call(&mut net), Ok(()));
}

/// Ask only the authorize phase about `t` (its nonce is given back).
fn authorize(net: &mut Net, k: &Keypair, t: &CheckedTx) -> Result<(), (String, String)> {
    let a = Address::from_public_key(net.suite, k.public_key());
    *net.nonces.get_mut(&a).unwrap() -= 1;
    net.ex.authorize_on(&net.store, t).unwrap()
}

fn pass(net: &mut Net, kind: ProposalKind) -> serde_json::Value {
    let (code, _) = net.gov(0, GovMsg::Propose { kind });
    assert_eq!(code, "success");
    let id = net.q("gov", "proposals").as_array().unwrap().len() as u64;
    for who in 1..net.admins.len() {
        if status(net, id) != "open" {
            break;
        }
        net.gov(
            who,
            GovMsg::Vote {
                proposal: id,
                choice: Choice::Yes,
            },
        );
    }
    net.q("gov", &format!("proposals/{id}"))
}

#[test]
fn a_parameter_vote_binds_admission_and_blocks_alike() {
    let mut net = Net::new(4, 50);
    let user = net.outsider.clone();
    let t = net.tx(
        &user,
        Action::Transfer {
            to: Address([9; 20]),
            amount: 1,
            memo: vec![],
        },
    );
    assert_eq!(authorize(&mut net, &user, &t), Ok(()));
    // Malformed parameter changes never come to a vote.
    for (name, value, code) in [
        ("block_size", 5, "unknown_param"),
        ("max_tx_gas", 100, "bad_param_value"),
        ("max_tx_bytes", 10_000_000, "bad_param_value"),
    ] {
        let (c, _) = net.gov(
            0,
            GovMsg::Propose {
                kind: ProposalKind::SetParam {
                    name: name.into(),
                    value,
                    chain: None,
                },
            },
        );
        assert_eq!(c, code, "{name}={value}");
    }
    let p = pass(
        &mut net,
        ProposalKind::SetParam {
            name: "min_gas_price".into(),
            value: 5,
            chain: None,
        },
    );
    assert_eq!(p["status"], "executed", "{p}");
    assert_eq!(p["kind"]["kind"], "set-param");
    assert_eq!(net.q("params", "params")["min_gas_price"], 5);
    // A transaction at gas price 1 is now refused by the authorize phase,
    // which both the mempool and block execution run.
    let t = net.tx(
        &user,
        Action::Transfer {
            to: Address([9; 20]),
            amount: 1,
            memo: vec![],
        },
    );
    let refused = authorize(&mut net, &user, &t).unwrap_err();
    assert_eq!(refused.0, "gas_price_below_minimum", "{refused:?}");
    // Only governance sets parameters.
    let admin = net.admins[0].clone();
    let t = net.tx(
        &admin,
        Action::Module {
            module: "params".into(),
            msg: tongtian_modules::params::ParamsMsg::Set {
                name: "min_gas_price".into(),
                value: 0,
            }
            .encode(),
        },
    );
    let mut t = t;
    // (signed at price 1, which the new minimum refuses before dispatch)
    assert_eq!(
        authorize(&mut net, &admin, &t).unwrap_err().0,
        "gas_price_below_minimum"
    );
    t = {
        let n = net.nonces.get_mut(&addr(&admin)).unwrap();
        let tx = Transaction {
            chain_id: CHAIN,
            nonce: *n,
            gas_limit: 1_000_000,
            gas_price: 5,
            action: t.tx.tx.action.clone(),
        }
        .sign(&admin);
        *n += 1;
        CheckedTx::new(tx, SuiteId::Standard)
    };
    assert_eq!(net.block(vec![t])[0].0, "governance_only");
    assert_eq!(net.q("params", "params")["min_gas_price"], 5);
}

#[test]
fn the_main_chain_validator_set_changes_by_vote() {
    let mut net = Net::new(4, 50);
    let before = net.q("membership", "validators");
    assert_eq!(before["version"], 0);
    let (code, _) = net.gov(
        0,
        GovMsg::Propose {
            kind: ProposalKind::SetValidators {
                nodes: vec!["org-0/node-9".into()],
                chain: None,
            },
        },
    );
    assert_eq!(code, "unknown_node");
    let p = pass(
        &mut net,
        ProposalKind::SetValidators {
            nodes: vec!["org-0/node-0".into(), "org-1/node-1".into()],
            chain: None,
        },
    );
    assert_eq!(p["status"], "executed", "{p}");
    let after = net.q("membership", "validators");
    assert_eq!(after["version"], 1);
    let keys: Vec<String> = after["validators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["public_key"].as_str().unwrap().to_string())
        .collect();
    let node0 = Keypair::from_seed(SuiteId::Standard, b"node0");
    assert!(
        keys.contains(&format!("0x{}", hex::encode(node0.public_key()))),
        "{after}"
    );
    assert_eq!(keys.len(), 2);
}

#[test]
fn a_sub_chain_applies_a_directive_once_a_supermajority_of_its_validators_attest_it() {
    use tongtian_modules::directive::{Directive, DirectiveMsg};
    let mut main = Net::new(4, 50);
    let p = pass(
        &mut main,
        create(
            "trace",
            "bft",
            SuiteId::Standard,
            &["org-0", "org-1", "org-2", "org-3"],
        ),
    );
    assert_eq!(p["status"], "executed");
    // A directive for a chain that does not exist never comes to a vote.
    let (code, _) = main.gov(
        0,
        GovMsg::Propose {
            kind: ProposalKind::SetParam {
                name: "min_gas_price".into(),
                value: 3,
                chain: Some("nowhere".into()),
            },
        },
    );
    assert_eq!(code, "unknown_chain");
    let p = pass(
        &mut main,
        ProposalKind::SetParam {
            name: "min_gas_price".into(),
            value: 3,
            chain: Some("trace".into()),
        },
    );
    assert_eq!(p["status"], "executed", "{p}");
    let entry: tongtian_modules::registry::ChainEntry =
        serde_json::from_value(main.q("registry", "chains/trace")).unwrap();
    assert_eq!(entry.directives.len(), 1);
    let directive = entry.directives[0].clone();

    // The sub-chain, from the spec every member derives from its entry;
    // its four validators are the organisations' nodes.
    let spec = tongtian_modules::registry::spec_of(&entry, &[]);
    let vkeys: Vec<Keypair> = (0..4)
        .map(|i| Keypair::from_seed(SuiteId::Standard, format!("node{i}").as_bytes()))
        .collect();
    let outsider = Keypair::from_seed(SuiteId::Standard, b"sub-outsider");
    let mut sub = Net::with_spec(spec, vkeys.clone(), outsider.clone());
    assert_eq!(sub.q("directive", "next"), 1);
    let attest = |seq, d: &Directive| {
        DirectiveMsg::Attest {
            seq,
            directive: d.clone(),
        }
        .action()
    };
    let min_price = |sub: &Net| sub.q("params", "params")["min_gas_price"].clone();
    // Someone who is not a validator is refused before the block (and so
    // gets no free transaction).
    let t = sub.tx(&outsider, attest(1, &directive));
    assert_eq!(
        authorize(&mut sub, &outsider, &t).unwrap_err().0,
        "not_a_validator"
    );
    // Out of order counts nothing.
    let t = sub.tx(&vkeys[0], attest(2, &directive));
    assert_eq!(sub.block(vec![t])[0], ("directive_out_of_order".into(), 0));
    // A lying validator's different directive counts only for itself,
    // and it cannot then attest the true one too.
    let lie = Directive::SetParam {
        name: "min_gas_price".into(),
        value: 1_000,
    };
    let t = sub.tx(&vkeys[3], attest(1, &lie));
    assert_eq!(sub.block(vec![t])[0], ("success".into(), 0));
    let t = sub.tx(&vkeys[3], attest(1, &directive));
    assert_eq!(sub.block(vec![t])[0].0, "already_attested");
    for v in [0, 1] {
        let t = sub.tx(&vkeys[v], attest(1, &directive));
        assert_eq!(sub.block(vec![t])[0], ("success".into(), 0));
    }
    // 2 of 4 is not more than 2/3.
    assert_eq!(min_price(&sub), serde_json::Value::Null);
    assert_eq!(sub.q("directive", "next"), 1);
    let t = sub.tx(&vkeys[1], attest(1, &directive));
    assert_eq!(sub.block(vec![t])[0].0, "already_attested");
    let t = sub.tx(&vkeys[2], attest(1, &directive));
    assert_eq!(sub.block(vec![t])[0], ("success".into(), 0));
    // 3 of 4: applied; the next number is 2; a late attestation is refused.
    assert_eq!(min_price(&sub), 3);
    assert_eq!(sub.q("directive", "next"), 2);
    let t = sub.tx(&vkeys[3], attest(1, &directive));
    let t2 = t.clone();
    assert_eq!(authorize(&mut sub, &vkeys[3], &t), Ok(()));
    *sub.nonces.get_mut(&addr(&vkeys[3])).unwrap() += 1;
    assert_eq!(sub.block(vec![t2])[0].0, "directive_applied");
}

/// EVM code that CALLs `target` with its own calldata, then returns what
/// came back (`then` 0), reverts (1) or stops, ignoring the result (2).
fn caller_code(target: &Address, then: u8) -> Vec<u8> {
    // CALLDATACOPY(0, 0, CALLDATASIZE); CALL(GAS, target, 0, 0, CALLDATASIZE, 0, 0)
    let mut runtime = vec![0x36, 0x5f, 0x5f, 0x37, 0x5f, 0x5f, 0x36, 0x5f, 0x5f, 0x73];
    runtime.extend_from_slice(&target.0);
    runtime.extend_from_slice(&[0x5a, 0xf1]);
    runtime.extend_from_slice(match then {
        // RETURNDATACOPY; JUMPI(42, ok); REVERT(0, RETURNDATASIZE); 42: RETURN(0, RETURNDATASIZE)
        0 => &[
            0x3d, 0x5f, 0x5f, 0x3e, 0x60, 0x2a, 0x57, 0x3d, 0x5f, 0xfd, 0x5b, 0x3d, 0x5f, 0xf3,
        ],
        1 => &[0x50, 0x5f, 0x5f, 0xfd],
        _ => &[0x50, 0x00],
    });
    let len = runtime.len() as u8;
    let mut init = vec![0x60, len, 0x60, 0x0a, 0x5f, 0x39, 0x60, len, 0x5f, 0xf3];
    init.extend_from_slice(&runtime);
    init
}

#[test]
fn a_contract_that_is_an_admin_votes_through_the_gov_precompile_and_cannot_half_revert() {
    use tongtian_types::VmKind;
    let mut net = Net::new_with_vms(1, 50, vec![VmKind::Evm]);
    let user = net.outsider.clone();
    let deploy = |net: &mut Net, code: Vec<u8>| {
        let a = tongtian_types::eth::create_address(
            &addr(&user),
            net.nonces.get(&addr(&user)).copied().unwrap_or(0),
        );
        let t = net.tx(
            &user,
            Action::Deploy {
                vm: VmKind::Evm,
                code,
                args: vec![],
                value: 0,
            },
        );
        assert_eq!(net.block(vec![t])[0].0, "success");
        a
    };
    let gov_addr = tongtian_execution::module::module_address("gov");
    // voter -> gov; halfway -> voter, then reverts; outer -> halfway, goes on.
    let voter = deploy(&mut net, caller_code(&gov_addr, 0));
    let halfway = deploy(&mut net, caller_code(&voter, 1));
    let outer = deploy(&mut net, caller_code(&halfway, 2));
    // The contract becomes organisation org-1's admin (org-0 holds all the
    // weight, so this passes at once).
    let p = pass(
        &mut net,
        ProposalKind::AddOrg {
            org: Organisation {
                id: "org-1".into(),
                name: "A contract".into(),
                admin: voter,
                weight: 1,
                nodes: vec![],
            },
        },
    );
    assert_eq!(p["status"], "executed", "{p}");
    // Now org-0 alone (1 of 2) cannot pass a parameter change.
    let kind = || ProposalKind::SetParam {
        name: "max_tx_gas".into(),
        value: 9_000_000,
        chain: None,
    };
    let (code, _) = net.gov(0, GovMsg::Propose { kind: kind() });
    assert_eq!(code, "success");
    assert_eq!(status(&net, 2), "open");
    let vote = |proposal| {
        borsh::to_vec(&GovMsg::Vote {
            proposal,
            choice: Choice::Yes,
        })
        .unwrap()
    };
    // Voting from a frame that then reverts, inside a transaction that goes
    // on, fails the whole transaction: no half-undone vote.
    let t = net.tx(
        &user,
        Action::Call {
            to: outer,
            input: vote(2),
            value: 0,
        },
    );
    let (code, _) = net.block(vec![t]).remove(0);
    assert_eq!(code, "trap", "{code}");
    assert!(
        net.last_messages[0].contains("module_write_reverted"),
        "{:?}",
        net.last_messages
    );
    assert_eq!(status(&net, 2), "open");
    assert_eq!(net.q("gov", "proposals/2")["tally"]["yes"], 1);
    // The contract votes: 2 of 2, the proposal is executed.
    let t = net.tx(
        &user,
        Action::Call {
            to: voter,
            input: vote(2),
            value: 0,
        },
    );
    assert_eq!(net.block(vec![t])[0].0, "success");
    let p = net.q("gov", "proposals/2");
    assert_eq!(p["status"], "executed", "{p}");
    assert_eq!(p["votes"]["org-1"], "yes");
    assert_eq!(net.q("params", "params")["max_tx_gas"], 9_000_000);
    // A second vote of the contract is the module's refusal, as a revert.
    let (code, _) = net.gov(0, GovMsg::Propose { kind: kind() });
    assert_eq!(code, "success");
    let t = net.tx(
        &user,
        Action::Call {
            to: voter,
            input: vote(3),
            value: 0,
        },
    );
    assert_eq!(net.block(vec![t])[0].0, "success");
    let t = net.tx(
        &user,
        Action::Call {
            to: voter,
            input: vote(3),
            value: 0,
        },
    );
    assert_eq!(net.block(vec![t])[0].0, "reverted");
}
