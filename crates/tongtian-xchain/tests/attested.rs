//! An attested client of a real external EVM chain (anvil, from npm): a
//! contract there writes two storage slots; three attesters (two needed)
//! sign the block's number, hash and state root; our chain's `client`
//! module stores the attested root and checks `eth_getProof`'s
//! Merkle-Patricia proofs against it, refusing altered proofs, too few or
//! unknown attesters, and freezing on two attested roots for one block.

#![allow(clippy::unwrap_used)]

mod common;

use common::anvil::{anvil, quantity, rpc, send_tx, word};
use common::{addr, attested_init, Chain};
use serde_json::json;
use tongtian_crypto::eth::EthKey;
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_types::{SpecBuilder, H256};
use tongtian_xchain::attested::{
    Attestation, EthStorageProof, ProofNode, Signature65, SignedAttestation,
};
use tongtian_xchain::client::{ClientMsg, CosignItem};

const CHAIN_ID: u64 = 31337;

fn sign(a: &Attestation, keys: &[&EthKey]) -> SignedAttestation {
    SignedAttestation {
        attestation: a.clone(),
        signatures: keys
            .iter()
            .map(|k| Signature65(k.sign_recoverable(&a.digest()).to_vec()))
            .collect(),
    }
}

#[test]
fn an_attested_client_checks_eth_get_proof_against_an_attested_root_of_anvil() {
    let node = anvil();
    assert_eq!(quantity(&rpc(&node, "eth_chainId", json!([]))), CHAIN_ID);
    // A contract whose deployment writes slot 0 and slot 1 (and leaves no
    // code): PUSH32 v PUSH1 0 SSTORE PUSH32 w PUSH1 1 SSTORE STOP.
    let v0 = [0x11u8; 32];
    let v1 = {
        let mut w = [0u8; 32];
        w[31] = 42;
        w
    };
    let init = format!("0x7f{}6000557f{}60015500", hex::encode(v0), hex::encode(v1));
    let from = rpc(&node, "eth_accounts", json!([]))[0].clone();
    let receipt = send_tx(&node, json!({"from": from, "data": init, "gas": "0x30000"}));
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    let contract = receipt["contractAddress"].as_str().unwrap().to_string();
    let block = rpc(&node, "eth_getBlockByNumber", json!(["latest", false]));
    let number = quantity(&block["number"]);
    let attestation = Attestation {
        chain_id: CHAIN_ID,
        height: number,
        block_hash: word(&block["hash"]),
        state_root: word(&block["stateRoot"]),
        timestamp_ms: quantity(&block["timestamp"]) * 1000,
    };
    let proof_of = |slot: u64| {
        let r = rpc(
            &node,
            "eth_getProof",
            json!([
                contract,
                [format!("0x{slot:064x}")],
                format!("0x{number:x}")
            ]),
        );
        EthStorageProof::from_rpc(&r).unwrap()
    };

    // Our chain, with a client of anvil attested by 2 of 3 named keys.
    let attesters: Vec<EthKey> = (1u8..=3)
        .map(|i| EthKey::from_secret(&[i; 32]).unwrap())
        .collect();
    let outsider = EthKey::from_secret(&[9; 32]).unwrap();
    let init = attested_init("anvil", CHAIN_ID, &attesters, 2);
    let v = Keypair::from_seed(SuiteId::Standard, b"validator");
    let relayer = Keypair::from_seed(SuiteId::Standard, b"relayer");
    let spec = SpecBuilder::new("ours", 7)
        .validator("v", v.public_key())
        .module("client", json!({ "clients": [init] }))
        .fund(addr(&relayer), 1_000_000_000_000)
        .build()
        .unwrap();
    let mut ours = Chain::from_spec(7, v, spec);
    let send = |c: &mut Chain, m: ClientMsg| c.send(&relayer, m.action()).0;
    let verify = |proof: EthStorageProof, height: u64| ClientMsg::VerifyEthStorage {
        client: "anvil".into(),
        height,
        proof,
    };
    let attest = |signed: SignedAttestation| ClientMsg::Attest {
        client: "anvil".into(),
        signed,
    };

    // Nothing is attested yet at that block.
    assert_eq!(
        send(&mut ours, verify(proof_of(0), number)),
        "unknown_height"
    );
    // One attester is not enough; an outsider and a repeated signature
    // do not count.
    let one = sign(&attestation, &[&attesters[0]]);
    assert_eq!(send(&mut ours, attest(one)), "insufficient_power");
    let padded = sign(&attestation, &[&attesters[0], &attesters[0], &outsider]);
    assert_eq!(send(&mut ours, attest(padded)), "insufficient_power");
    let wrong_chain = Attestation {
        chain_id: 1,
        ..attestation.clone()
    };
    let signed = sign(&wrong_chain, &[&attesters[0], &attesters[1]]);
    assert_eq!(send(&mut ours, attest(signed)), "wrong_chain");
    // Two of three: stored.
    let good = sign(&attestation, &[&attesters[2], &attesters[0]]);
    assert_eq!(send(&mut ours, attest(good.clone())), "success");
    let c = ours.q("client", "clients/anvil");
    assert_eq!(c["latest_height"], number);
    assert_eq!(send(&mut ours, attest(good)), "stale_header");

    // The slots, proven by anvil's own eth_getProof.
    let p0 = proof_of(0);
    assert_eq!(p0.value.0, v0);
    assert_eq!(send(&mut ours, verify(p0.clone(), number)), "success");
    let p1 = proof_of(1);
    assert_eq!(p1.value.0, v1);
    assert_eq!(send(&mut ours, verify(p1, number)), "success");
    // An empty slot is proven empty, and cannot be claimed full.
    let p5 = proof_of(5);
    assert_eq!(p5.value, H256::ZERO);
    assert_eq!(send(&mut ours, verify(p5.clone(), number)), "success");
    let mut claimed = p5;
    claimed.value = H256(v1);
    assert_eq!(send(&mut ours, verify(claimed, number)), "proof_invalid");
    // A relayer's lies: another value, another account balance, an
    // altered trie node, the proof of one slot offered for another.
    let mut lie = p0.clone();
    lie.value.0[0] ^= 1;
    assert_eq!(send(&mut ours, verify(lie, number)), "proof_invalid");
    let mut lie = p0.clone();
    lie.balance.0[31] = 1;
    assert_eq!(send(&mut ours, verify(lie, number)), "proof_invalid");
    let mut lie = p0.clone();
    let last = lie.account_proof.len() - 1;
    let node = &mut lie.account_proof[last].0;
    let n = node.len();
    node[n - 1] ^= 0xff;
    assert_eq!(send(&mut ours, verify(lie, number)), "proof_invalid");
    let mut lie = p0.clone();
    lie.slot = H256([0u8; 32]);
    lie.slot.0[31] = 1;
    assert_eq!(send(&mut ours, verify(lie, number)), "proof_invalid");
    let mut lie = p0.clone();
    lie.storage_proof = vec![ProofNode(vec![0x80])];
    assert_eq!(send(&mut ours, verify(lie, number)), "proof_invalid");
    // A Tongtian state proof is the wrong kind for this client.
    let code = send(
        &mut ours,
        ClientMsg::VerifyState {
            client: "anvil".into(),
            height: number,
            key: b"k".to_vec(),
            value: None,
            proof: tongtian_types::proof::StateProof {
                key: b"k".to_vec(),
                value: None,
                siblings: vec![],
                leaf: None,
            },
        },
    );
    assert_eq!(code, "wrong_client_type");

    // Two attesters sign another root for the same block: the client
    // freezes, keeps both as evidence, and refuses proofs from then on.
    let forged = Attestation {
        state_root: H256([5; 32]),
        ..attestation.clone()
    };
    let lying = sign(&forged, &[&attesters[1], &attesters[2]]);
    assert_eq!(send(&mut ours, attest(lying)), "success");
    let c = ours.q("client", "clients/anvil");
    assert_eq!(c["frozen"], true, "{c}");
    let ev = ours.q("client", "clients/anvil/evidence");
    assert_eq!(ev["kind"], "conflicting_attestations");
    assert_eq!(ev["attestations"].as_array().unwrap().len(), 2);
    assert_eq!(send(&mut ours, verify(p0, number)), "client_frozen");
}

/// Attesters who each run their own process sign one at a time: the chain
/// keeps each signature and stores the block once the threshold signed
/// the same one; packets pending here are cosigned for the EVM port.
#[test]
fn attesters_cosign_one_at_a_time_and_the_block_is_stored_at_the_threshold() {
    let attesters: Vec<EthKey> = (1u8..=3)
        .map(|i| EthKey::from_secret(&[i; 32]).unwrap())
        .collect();
    let v = Keypair::from_seed(SuiteId::Standard, b"validator");
    let relayer = Keypair::from_seed(SuiteId::Standard, b"relayer");
    let spec = SpecBuilder::new("ours", 7)
        .validator("v", v.public_key())
        .module(
            "client",
            json!({ "clients": [attested_init("anvil", CHAIN_ID, &attesters, 2)] }),
        )
        .fund(addr(&relayer), 1_000_000_000_000)
        .build()
        .unwrap();
    let mut ours = Chain::from_spec(7, v, spec);
    let a = Attestation {
        chain_id: CHAIN_ID,
        height: 12,
        block_hash: H256([1; 32]),
        state_root: H256([2; 32]),
        timestamp_ms: 5_000,
    };
    let cosign = |k: &EthKey, a: &Attestation| ClientMsg::Cosign {
        client: "anvil".into(),
        item: CosignItem::Block(a.clone()),
        signature: Signature65(k.sign_recoverable(&a.digest()).to_vec()),
    };
    let outsider = EthKey::from_secret(&[9; 32]).unwrap();
    assert_eq!(
        ours.send(&relayer, cosign(&outsider, &a).action()).0,
        "not_an_attester"
    );
    assert_eq!(
        ours.send(&relayer, cosign(&attesters[0], &a).action()).0,
        "success"
    );
    assert_eq!(
        ours.q("client", "clients/anvil")["latest_height"],
        0,
        "one is not enough"
    );
    // The same attester again changes nothing.
    assert_eq!(
        ours.send(&relayer, cosign(&attesters[0], &a).action()).0,
        "success"
    );
    assert_eq!(ours.q("client", "clients/anvil")["latest_height"], 0);
    assert_eq!(
        ours.send(&relayer, cosign(&attesters[2], &a).action()).0,
        "success"
    );
    assert_eq!(ours.q("client", "clients/anvil")["latest_height"], 12);
    let cs = ours.q("client", "clients/anvil/consensus/12");
    assert_eq!(cs["state_root"], H256([2; 32]).to_string());
    let kept = ours.q(
        "client",
        &format!("clients/anvil/cosigned/{}", hex::encode(a.digest())),
    );
    assert_eq!(kept.as_array().unwrap().len(), 2, "{kept}");
    // A packet that is not pending here cannot be cosigned.
    let item = ClientMsg::Cosign {
        client: "anvil".into(),
        item: CosignItem::Packet {
            channel: "channel-e".into(),
            sequence: 1,
        },
        signature: Signature65(vec![0; 65]),
    };
    assert_ne!(ours.send(&relayer, item.action()).0, "success");
}
