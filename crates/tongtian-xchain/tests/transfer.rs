//! Two chains, each with the other's light client, a transfer channel
//! between them, and a relayer (here, the test) that carries packets and
//! proofs: tokens go out and come back, with every refusal a relayer or
//! an attacker could provoke, and the supply invariant after each step.

#![allow(clippy::unwrap_used)]

use tongtian_crypto::{Keypair, SuiteId};
use tongtian_storage::StateStore;
use tongtian_types::{Action, Address, SpecBuilder, H256};
use tongtian_xchain::channel::{self, Ack, ChannelMsg, Packet};
use tongtian_xchain::client::{ClientInit, ClientMsg, TrustModel};
use tongtian_xchain::transfer::TransferMsg;

mod common;
use common::{addr, vset, Chain};

impl Chain {
    /// A chain `id` whose client `other_name` trusts `other_validator` at
    /// the other chain's genesis, with `channel-0` to it on port transfer.
    fn new(
        id: u64,
        validator: Keypair,
        other: (u64, &Keypair, &str),
        funded: &[&Keypair],
        xcall: (Address, Address),
    ) -> Chain {
        let (other_id, other_validator, other_name) = other;
        let init = ClientInit {
            id: other_name.into(),
            chain_id: other_id,
            suite: SuiteId::Standard,
            model: TrustModel::Bft,
            height: 0,
            header_hash: H256::ZERO,
            state_root: None,
            timestamp_ms: 0,
            validators: vset(other_validator),
            trusting_blocks: 1_000,
            trusting_ms: 10_000_000,
        };
        let mut b = SpecBuilder::new(&format!("chain{id}"), id)
            .validator("v", validator.public_key())
            .module("client", serde_json::json!({ "clients": [init] }))
            .module(
                "channel",
                serde_json::json!({ "channels": [{
                    "id": "channel-0", "port": "transfer", "client": other_name,
                    "counterparty_channel": "channel-0", "counterparty_port": "transfer"
                }, {
                    "id": "channel-1", "port": "nft-transfer", "client": other_name,
                    "counterparty_channel": "channel-1", "counterparty_port": "nft-transfer"
                }, {
                    "id": "channel-2", "port": "transfer", "client": other_name,
                    "counterparty_channel": "channel-2", "counterparty_port": "transfer",
                    "ordered": true
                }, {
                    "id": "channel-3", "port": xcall.0.to_string(), "client": other_name,
                    "counterparty_channel": "channel-3", "counterparty_port": xcall.1.to_string()
                }]}),
            )
            .module("transfer", serde_json::json!({}))
            .module("nft", serde_json::json!({}))
            .module("nft-transfer", serde_json::json!({}));
        for k in funded {
            b = b.fund(addr(k), 1_000_000_000_000);
        }
        let spec = b.build().unwrap();
        Chain::from_spec(id, validator, spec)
    }
}

/// A relayer's key and the steps it takes.
struct Relayer(Keypair);

impl Relayer {
    /// Bring `dst`'s client `name` of `src` up to `src`'s latest height.
    fn update(&self, src: &Chain, dst: &mut Chain, name: &str) -> u64 {
        let h = src.height;
        let latest = dst.q("client", &format!("clients/{name}"))["latest_height"]
            .as_u64()
            .unwrap();
        if latest < h {
            let (code, _) = dst.send(
                &self.0,
                ClientMsg::Update {
                    client: name.into(),
                    signed: src.signed(h),
                    validators: src
                        .store
                        .prove(&tongtian_execution::membership::validators_key(), h)
                        .unwrap(),
                }
                .action(),
            );
            assert_eq!(code, "success");
        }
        h
    }

    fn recv(&self, src: &Chain, dst: &mut Chain, src_name: &str, p: &Packet) -> String {
        let h = self.update(src, dst, src_name);
        dst.send(
            &self.0,
            ChannelMsg::Recv {
                packet: p.clone(),
                proven: src.prove(&channel::commitment_key(&p.source_channel, p.sequence), h),
            }
            .action(),
        )
        .0
    }

    fn ack(&self, src: &mut Chain, dst: &Chain, dst_name: &str, p: &Packet) -> String {
        let h = self.update(dst, src, dst_name);
        let ack: Ack = serde_json::from_value(dst.q(
            "channel",
            &format!("acks/{}/{}", p.dest_channel, p.sequence),
        ))
        .unwrap();
        src.send(
            &self.0,
            ChannelMsg::Acknowledge {
                packet: p.clone(),
                ack,
                proven: dst.prove(&channel::ack_key(&p.dest_channel, p.sequence), h),
            }
            .action(),
        )
        .0
    }
}

fn pending(c: &Chain) -> Vec<Packet> {
    serde_json::from_value(c.q("channel", "packets/channel-0")).unwrap()
}

fn transfer(to: Address, amount: u128, denom: &str, timeout_height: u64) -> Action {
    TransferMsg::Transfer {
        channel: "channel-0".into(),
        receiver: to,
        amount,
        denom: denom.into(),
        timeout_height,
        timeout_ms: 0,
        forward: None,
    }
    .action()
}

const VOUCHER: &str = "transfer/channel-0/native";

fn setup() -> (Chain, Chain, Keypair, Keypair, Relayer) {
    let va = Keypair::from_seed(SuiteId::Standard, b"validator-a");
    let vb = Keypair::from_seed(SuiteId::Standard, b"validator-b");
    let alice = Keypair::from_seed(SuiteId::Standard, b"alice");
    let bob = Keypair::from_seed(SuiteId::Standard, b"bob");
    let relayer = Keypair::from_seed(SuiteId::Standard, b"relayer");
    // The CrossCall example each side's first account deploys first.
    let xa = tongtian_types::eth::create_address(&addr(&alice), 0);
    let xb = tongtian_types::eth::create_address(&addr(&bob), 0);
    let a = Chain::new(1, va.clone(), (2, &vb, "b"), &[&alice, &relayer], (xa, xb));
    let b = Chain::new(2, vb, (1, &va, "a"), &[&bob, &relayer], (xb, xa));
    (a, b, alice, bob, Relayer(relayer))
}

#[test]
fn tokens_go_out_as_vouchers_and_come_back_from_escrow() {
    let (mut a, mut b, alice, bob, r) = setup();
    let before = a.balance(&addr(&alice), "native");
    assert_eq!(
        a.send(&alice, transfer(addr(&bob), 500, "native", 1_000)).0,
        "success"
    );
    let p = pending(&a).remove(0);
    assert_eq!(p.sequence, 1);
    // Escrowed at the source (plus the fee paid).
    assert!(a.balance(&addr(&alice), "native") < before - 499);
    assert_eq!(a.q("transfer", "escrow/channel-0/native"), "500");

    assert_eq!(r.recv(&a, &mut b, "a", &p), "success");
    assert_eq!(b.balance(&addr(&bob), VOUCHER), 500);
    assert_eq!(b.q("transfer", &format!("supply/{VOUCHER}")), "500");
    // The same packet again is refused; nothing is minted twice.
    assert_eq!(r.recv(&a, &mut b, "a", &p), "packet_already_received");
    assert_eq!(b.balance(&addr(&bob), VOUCHER), 500);
    // A packet altered by the relayer does not match its commitment.
    let mut forged = p.clone();
    forged.sequence = 1;
    forged.data = borsh::to_vec(&tongtian_xchain::transfer::TokenPacket {
        denom: "native".into(),
        amount: 1_000_000,
        sender: addr(&alice),
        receiver: addr(&bob),
        forward: None,
    })
    .unwrap();
    forged.sequence = 2;
    assert_eq!(r.recv(&a, &mut b, "a", &forged), "proof_invalid");

    assert_eq!(r.ack(&mut a, &b, "b", &p), "success");
    assert!(pending(&a).is_empty());
    // An ack for a packet that is no longer pending (or never was).
    assert_eq!(r.ack(&mut a, &b, "b", &p), "unknown_packet");

    // Back: Bob sends 200 of the voucher home; it is burned on B and
    // released from escrow on A.
    let alice_before = a.balance(&addr(&alice), "native");
    assert_eq!(
        b.send(&bob, transfer(addr(&alice), 200, VOUCHER, 1_000)).0,
        "success"
    );
    assert_eq!(b.balance(&addr(&bob), VOUCHER), 300);
    assert_eq!(b.q("transfer", &format!("supply/{VOUCHER}")), "300");
    let back = pending(&b).remove(0);
    assert_eq!(r.recv(&b, &mut a, "b", &back), "success");
    assert_eq!(a.balance(&addr(&alice), "native"), alice_before + 200);
    assert_eq!(a.q("transfer", "escrow/channel-0/native"), "300");
    assert_eq!(r.ack(&mut b, &a, "a", &back), "success");
    // Invariant: what B's vouchers say is what A holds in escrow.
    assert_eq!(
        b.q("transfer", &format!("supply/{VOUCHER}")),
        a.q("transfer", "escrow/channel-0/native")
    );
    // Nobody but the channel mints: a direct "receive" is just a transfer
    // attempt of the sender's own funds, which it does not have.
    assert_eq!(
        b.send(&bob, transfer(addr(&bob), 10_000, VOUCHER, 1_000)).0,
        "insufficient_funds"
    );
}

#[test]
fn a_packet_not_received_in_time_is_refunded_once() {
    let (mut a, mut b, alice, bob, r) = setup();
    let start = a.balance(&addr(&alice), "native");
    let timeout = b.height + 3;
    assert_eq!(
        a.send(&alice, transfer(addr(&bob), 700, "native", timeout))
            .0,
        "success"
    );
    let paid_fee = start - 700 - a.balance(&addr(&alice), "native");
    let p = pending(&a).remove(0);
    // A timeout before the destination reached the timeout height.
    let h = r.update(&b, &mut a, "b");
    let early = a
        .send(
            &r.0,
            ChannelMsg::Timeout {
                packet: p.clone(),
                proven: b.prove(&channel::receipt_key("channel-0", 1), h),
            }
            .action(),
        )
        .0;
    assert_eq!(early, "timeout_not_reached");
    for _ in 0..3 {
        b.tick();
    }
    // Too late to receive on B.
    assert_eq!(r.recv(&a, &mut b, "a", &p), "packet_timed_out");
    let h = r.update(&b, &mut a, "b");
    let timeout_tx = |a: &mut Chain| {
        a.send(
            &r.0,
            ChannelMsg::Timeout {
                packet: p.clone(),
                proven: b.prove(&channel::receipt_key("channel-0", 1), h),
            }
            .action(),
        )
        .0
    };
    assert_eq!(timeout_tx(&mut a), "success");
    assert_eq!(a.balance(&addr(&alice), "native"), start - paid_fee);
    assert_eq!(a.q("transfer", "escrow/channel-0/native"), "0");
    // Refunded once: a second timeout (or an ack) finds no packet.
    assert_eq!(timeout_tx(&mut a), "unknown_packet");
    assert_eq!(a.balance(&addr(&alice), "native"), start - paid_fee);
}

#[test]
fn a_received_packet_cannot_be_timed_out() {
    let (mut a, mut b, alice, bob, r) = setup();
    let timeout = b.height + 3;
    assert_eq!(
        a.send(&alice, transfer(addr(&bob), 50, "native", timeout))
            .0,
        "success"
    );
    let p = pending(&a).remove(0);
    assert_eq!(r.recv(&a, &mut b, "a", &p), "success");
    for _ in 0..3 {
        b.tick();
    }
    let h = r.update(&b, &mut a, "b");
    // The receipt exists: claiming its absence fails the proof.
    let code = a
        .send(
            &r.0,
            ChannelMsg::Timeout {
                packet: p.clone(),
                proven: b.prove(&channel::receipt_key("channel-0", 1), h),
            }
            .action(),
        )
        .0;
    assert_eq!(code, "proof_invalid");
    assert_eq!(a.q("transfer", "escrow/channel-0/native"), "50");
    assert_eq!(r.ack(&mut a, &b, "b", &p), "success");
    assert_eq!(b.balance(&addr(&bob), VOUCHER), 50);
}

fn pending_on(c: &Chain, channel: &str) -> Vec<Packet> {
    serde_json::from_value(c.q("channel", &format!("packets/{channel}"))).unwrap()
}

fn owned(c: &Chain, a: &Address) -> Vec<serde_json::Value> {
    c.q("nft", &format!("owned/{a}"))
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn an_nft_travels_with_its_metadata_and_comes_back() {
    use tongtian_xchain::nft::NftMsg;
    use tongtian_xchain::nft_transfer::NftTransferMsg;
    let (mut a, mut b, alice, bob, r) = setup();
    let create = NftMsg::CreateClass {
        class: "bills".into(),
        uri: "https://example.com/bills".into(),
    };
    assert_eq!(a.send(&alice, create.action()).0, "success");
    let mint = |id: &str| NftMsg::Mint {
        class: "bills".into(),
        id: id.into(),
        uri: format!("ipfs://{id}"),
        data: b"bill of lading #1".to_vec(),
        owner: addr(&alice),
    };
    assert_eq!(a.send(&alice, mint("b1").action()).0, "success");
    assert_eq!(a.send(&alice, mint("b2").action()).0, "success");
    // Someone else may not mint in alice's class, nor send her token.
    assert_eq!(b.send(&bob, mint("x").action()).0, "unknown_class");
    let send = |ids: &[&str], to: Address, class: &str, timeout: u64| {
        NftTransferMsg::Transfer {
            channel: "channel-1".into(),
            class: class.into(),
            ids: ids.iter().map(|s| s.to_string()).collect(),
            receiver: to,
            timeout_height: timeout,
            timeout_ms: 0,
        }
        .action()
    };
    assert_eq!(
        a.send(&r.0, send(&["b1"], addr(&bob), "bills", 1_000)).0,
        "not_owner"
    );
    assert_eq!(
        a.send(&alice, send(&["b1"], addr(&bob), "bills", 1_000)).0,
        "success"
    );
    // Escrowed: alice no longer owns it.
    assert_eq!(owned(&a, &addr(&alice)).len(), 1);
    let p = pending_on(&a, "channel-1").remove(0);
    assert_eq!(r.recv(&a, &mut b, "a", &p), "success");
    let got = owned(&b, &addr(&bob));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["class"], "nft-transfer/channel-1/bills");
    assert_eq!(got[0]["id"], "b1");
    assert_eq!(got[0]["uri"], "ipfs://b1");
    assert_eq!(
        got[0]["data"],
        format!("0x{}", hex::encode(b"bill of lading #1"))
    );
    assert_eq!(
        b.q("nft", "classes/nft-transfer/channel-1/bills")["uri"],
        "https://example.com/bills"
    );
    assert_eq!(r.ack(&mut a, &b, "b", &p), "success");
    // Back home: the voucher is burned, the original released to alice.
    let voucher = "nft-transfer/channel-1/bills";
    assert_eq!(
        b.send(&bob, send(&["b1"], addr(&alice), voucher, 1_000)).0,
        "success"
    );
    assert!(owned(&b, &addr(&bob)).is_empty());
    let back = pending_on(&b, "channel-1").remove(0);
    assert_eq!(r.recv(&b, &mut a, "b", &back), "success");
    assert_eq!(owned(&a, &addr(&alice)).len(), 2);
    assert_eq!(r.ack(&mut b, &a, "a", &back), "success");

    // A timeout gives b2 back to alice.
    let timeout = b.height + 2;
    assert_eq!(
        a.send(&alice, send(&["b2"], addr(&bob), "bills", timeout))
            .0,
        "success"
    );
    let p = pending_on(&a, "channel-1").remove(0);
    b.tick();
    b.tick();
    let h = r.update(&b, &mut a, "b");
    let code = a
        .send(
            &r.0,
            ChannelMsg::Timeout {
                packet: p.clone(),
                proven: b.prove(&channel::receipt_key("channel-1", p.sequence), h),
            }
            .action(),
        )
        .0;
    assert_eq!(code, "success");
    let mine: Vec<String> = owned(&a, &addr(&alice))
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(mine, ["b1", "b2"]);
}

#[test]
fn an_ordered_channel_takes_packets_in_sequence_only() {
    let (mut a, mut b, alice, bob, r) = setup();
    let send = |amount| {
        TransferMsg::Transfer {
            channel: "channel-2".into(),
            receiver: addr(&bob),
            amount,
            denom: "native".into(),
            timeout_height: 1_000,
            timeout_ms: 0,
            forward: None,
        }
        .action()
    };
    assert_eq!(a.send(&alice, send(10)).0, "success");
    assert_eq!(a.send(&alice, send(20)).0, "success");
    let ps = pending_on(&a, "channel-2");
    assert_eq!(ps.len(), 2);
    assert_eq!(r.recv(&a, &mut b, "a", &ps[1]), "packet_out_of_order");
    assert_eq!(r.recv(&a, &mut b, "a", &ps[0]), "success");
    assert_eq!(r.recv(&a, &mut b, "a", &ps[1]), "success");
    assert_eq!(b.balance(&addr(&bob), "transfer/channel-2/native"), 30);
    // A relayer's garbage (an undecodable message) is refused with a code.
    let (code, _) = b.send(
        &r.0,
        Action::Module {
            module: "channel".into(),
            msg: vec![9, 9, 9],
        },
    );
    assert_eq!(code, "bad_module_message");
}

/// EVM code that CALLs `target` with its own calldata and returns what
/// came back, or reverts with it.
fn forwarder(target: &Address) -> Vec<u8> {
    let mut runtime = vec![0x36, 0x5f, 0x5f, 0x37, 0x5f, 0x5f, 0x36, 0x5f, 0x5f, 0x73];
    runtime.extend_from_slice(&target.0);
    runtime.extend_from_slice(&[
        0x5a, 0xf1, 0x3d, 0x5f, 0x5f, 0x3e, 0x60, 0x2a, 0x57, 0x3d, 0x5f, 0xfd, 0x5b, 0x3d, 0x5f,
        0xf3,
    ]);
    let len = runtime.len() as u8;
    let mut init = vec![0x60, len, 0x60, 0x0a, 0x5f, 0x39, 0x60, len, 0x5f, 0xf3];
    init.extend_from_slice(&runtime);
    init
}

#[test]
fn a_solidity_contract_sends_its_own_tokens_across() {
    let (mut a, mut b, alice, bob, r) = setup();
    let transfer_module = tongtian_execution::module::module_address("transfer");
    let nonce = a.nonces.get(&addr(&alice)).copied().unwrap_or(0);
    let contract = tongtian_types::eth::create_address(&addr(&alice), nonce);
    let (code, _) = a.send(
        &alice,
        Action::Deploy {
            vm: tongtian_types::VmKind::Evm,
            code: forwarder(&transfer_module),
            args: vec![],
            value: 0,
        },
    );
    assert_eq!(code, "success");
    // The contract holds 1,000 of its own.
    let (code, _) = a.send(
        &alice,
        Action::Transfer {
            to: contract,
            amount: 1_000,
            memo: vec![],
        },
    );
    assert_eq!(code, "success");
    // Calling it makes it the sender of a transfer of its own funds.
    let Action::Module { msg, .. } = transfer(addr(&bob), 400, "native", 1_000) else {
        unreachable!()
    };
    let (code, out) = a.send(
        &alice,
        Action::Call {
            to: contract,
            input: msg,
            value: 0,
        },
    );
    assert_eq!(code, "success");
    assert_eq!(out, 1u64.to_le_bytes().to_vec(), "the packet's sequence");
    // Debited once: 600 left with the contract, 400 in escrow (before the
    // module's balance change reached revm's view, the contract kept 1,000).
    assert_eq!(a.balance(&contract, "native"), 600);
    assert_eq!(a.q("transfer", "escrow/channel-0/native"), "400");
    assert_eq!(
        a.balance(
            &tongtian_execution::module::module_address("transfer"),
            "native"
        ),
        400
    );
    let p = pending(&a).remove(0);
    assert_eq!(r.recv(&a, &mut b, "a", &p), "success");
    assert_eq!(b.balance(&addr(&bob), VOUCHER), 400);
    assert_eq!(r.ack(&mut a, &b, "b", &p), "success");
}

alloy_sol_types::sol! {
    function callRemote(string channel, string key, string value, uint64 timeoutHeight) returns (uint64);
    function values(string key) returns (string);
    function outcome(uint64 sequence) returns (uint8);
    function answer(uint64 sequence) returns (bytes);
    function onRecvPacket(string channel, uint64 sequence, bytes data) returns (bytes);
}

fn cross_call_code() -> Vec<u8> {
    let hex_code = include_str!("../../../contracts/xcall/CrossCall.bin");
    hex::decode(hex_code.trim()).unwrap()
}

fn evm_call<C: alloy_sol_types::SolCall>(
    c: &mut Chain,
    k: &Keypair,
    to: Address,
    call: C,
) -> (String, Vec<u8>) {
    c.send(
        k,
        Action::Call {
            to,
            input: call.abi_encode(),
            value: 0,
        },
    )
}

fn outcome_of(c: &mut Chain, k: &Keypair, x: Address, seq: u64) -> (u8, Vec<u8>) {
    use alloy_sol_types::SolCall;
    let (code, out) = evm_call(c, k, x, outcomeCall { sequence: seq });
    assert_eq!(code, "success");
    let o = outcomeCall::abi_decode_returns(&out).unwrap();
    let (_, out) = evm_call(c, k, x, answerCall { sequence: seq });
    (o, answerCall::abi_decode_returns(&out).unwrap().to_vec())
}

#[test]
fn a_solidity_contract_calls_a_contract_on_the_other_chain_and_gets_the_answer_in_its_ack() {
    use alloy_sol_types::SolCall;
    let (mut a, mut b, alice, bob, r) = setup();
    let xa = tongtian_types::eth::create_address(&addr(&alice), 0);
    let xb = tongtian_types::eth::create_address(&addr(&bob), 0);
    for (c, k) in [(&mut a, &alice), (&mut b, &bob)] {
        let (code, _) = c.send(
            k,
            Action::Deploy {
                vm: tongtian_types::VmKind::Evm,
                code: cross_call_code(),
                args: vec![],
                value: 0,
            },
        );
        assert_eq!(code, "success");
    }
    let pending3 = |c: &Chain| -> Vec<Packet> {
        serde_json::from_value(c.q("channel", "packets/channel-3")).unwrap()
    };
    let call = |key: &str, value: &str, timeout: u64| callRemoteCall {
        channel: "channel-3".into(),
        key: key.into(),
        value: value.into(),
        timeoutHeight: timeout,
    };
    // First call: B had nothing under "color".
    let (code, out) = evm_call(&mut a, &alice, xa, call("color", "blue", 1_000));
    assert_eq!(code, "success");
    assert_eq!(callRemoteCall::abi_decode_returns(&out).unwrap(), 1);
    assert_eq!(outcome_of(&mut a, &alice, xa, 1).0, 1, "pending");
    let p = pending3(&a).remove(0);
    assert_eq!(p.source_port, xa.to_string());
    assert_eq!(p.dest_port, xb.to_string());
    assert_eq!(r.recv(&a, &mut b, "a", &p), "success");
    let (_, out) = evm_call(
        &mut b,
        &bob,
        xb,
        valuesCall {
            key: "color".into(),
        },
    );
    assert_eq!(valuesCall::abi_decode_returns(&out).unwrap(), "blue");
    assert_eq!(r.ack(&mut a, &b, "b", &p), "success");
    assert_eq!(
        outcome_of(&mut a, &alice, xa, 1),
        (2, vec![]),
        "answered, nothing before"
    );
    // Second call: the answer is what B held before.
    evm_call(&mut a, &alice, xa, call("color", "green", 1_000));
    let p = pending3(&a).remove(0);
    assert_eq!(r.recv(&a, &mut b, "a", &p), "success");
    assert_eq!(r.ack(&mut a, &b, "b", &p), "success");
    assert_eq!(outcome_of(&mut a, &alice, xa, 2), (2, b"blue".to_vec()));
    // B's contract refuses an empty key: an error ack, B's register unchanged.
    evm_call(&mut a, &alice, xa, call("", "x", 1_000));
    let p = pending3(&a).remove(0);
    assert_eq!(r.recv(&a, &mut b, "a", &p), "success");
    let ack = b.q("channel", "acks/channel-3/3");
    assert!(
        ack["Error"].as_str().unwrap().contains("empty key"),
        "{ack}"
    );
    assert_eq!(r.ack(&mut a, &b, "b", &p), "success");
    let (o, why) = outcome_of(&mut a, &alice, xa, 3);
    assert_eq!(o, 3, "refused");
    assert!(String::from_utf8(why).unwrap().contains("empty key"));
    let (_, out) = evm_call(
        &mut b,
        &bob,
        xb,
        valuesCall {
            key: "color".into(),
        },
    );
    assert_eq!(valuesCall::abi_decode_returns(&out).unwrap(), "green");
    // A call B never receives in time times out and says so.
    evm_call(&mut a, &alice, xa, call("late", "x", b.height + 2));
    let p = pending3(&a).remove(0);
    for _ in 0..3 {
        b.tick();
    }
    assert_eq!(r.recv(&a, &mut b, "a", &p), "packet_timed_out");
    let h = r.update(&b, &mut a, "b");
    let (code, _) = a.send(
        &r.0,
        ChannelMsg::Timeout {
            packet: p.clone(),
            proven: b.prove(&channel::receipt_key("channel-3", 4), h),
        }
        .action(),
    );
    assert_eq!(code, "success");
    assert_eq!(outcome_of(&mut a, &alice, xa, 4).0, 4, "timed out");
    // Only the channel calls back: a forged delivery straight to the contract reverts.
    let (code, _) = evm_call(
        &mut b,
        &bob,
        xb,
        onRecvPacketCall {
            channel: "channel-3".into(),
            sequence: 9,
            data: alloy_sol_types::SolValue::abi_encode(&("color".to_string(), "red".to_string()))
                .into(),
        },
    );
    assert_eq!(code, "reverted");
    // Only the contract sends on its port: an account naming it is refused.
    let (code, _) = a.send(
        &alice,
        ChannelMsg::Send {
            port: xa.to_string(),
            channel: "channel-3".into(),
            data: vec![1],
            timeout_height: 1_000,
            timeout_ms: 0,
        }
        .action(),
    );
    assert_eq!(code, "not_port_owner");
    // Nor may a contract send on another port's channel.
    let (code, _) = a.send(
        &alice,
        Action::Call {
            to: xa,
            input: callRemoteCall {
                channel: "channel-0".into(),
                key: "k".into(),
                value: "v".into(),
                timeoutHeight: 1_000,
            }
            .abi_encode(),
            value: 0,
        },
    );
    assert_ne!(code, "success");
    assert!(pending(&a).is_empty());
}

/// A transfer from `a` that `b` forwards over `fwd_channel` (back to `a`
/// over channel-0 here, the only other chain this harness has).
fn forwarded(to: Address, amount: u128, fwd_channel: &str, fwd_timeout_height: u64) -> Action {
    TransferMsg::Transfer {
        channel: "channel-0".into(),
        receiver: to,
        amount,
        denom: "native".into(),
        timeout_height: 1_000,
        timeout_ms: 0,
        forward: Some(tongtian_xchain::transfer::Forward {
            channel: fwd_channel.into(),
            timeout_height: fwd_timeout_height,
            timeout_ms: 0,
        }),
    }
    .action()
}

fn ack_of(c: &Chain, channel: &str, seq: u64) -> serde_json::Value {
    c.q("channel", &format!("acks/{channel}/{seq}"))
}

#[test]
fn a_forwarded_transfer_acknowledges_its_first_hop_only_when_the_second_ends() {
    let (mut a, mut b, alice, _bob, r) = setup();
    let carol = Keypair::from_seed(SuiteId::Standard, b"carol");
    let hub = tongtian_execution::module::module_address("transfer");

    // 1. a -> b -> a: b holds the voucher while the second hop is out.
    assert_eq!(
        a.send(&alice, forwarded(addr(&carol), 300, "channel-0", 1_000))
            .0,
        "success"
    );
    let first = pending(&a).remove(0);
    assert_eq!(r.recv(&a, &mut b, "a", &first), "success");
    assert!(ack_of(&b, "channel-0", 1).is_null(), "the first ack waits");
    assert_eq!(b.balance(&hub, VOUCHER), 0, "burned on its way back");
    let second = pending(&b).remove(0);
    assert_eq!(second.dest_channel, "channel-0");
    // The first packet cannot be timed out: it was received.
    assert_eq!(r.recv(&b, &mut a, "b", &second), "success");
    assert_eq!(a.balance(&addr(&carol), "native"), 300);
    assert_eq!(r.ack(&mut b, &a, "a", &second), "success");
    // The second hop's ack released the first's.
    assert_eq!(
        ack_of(&b, "channel-0", 1)["Success"],
        format!("0x{}", hex::encode("native"))
    );
    assert_eq!(r.ack(&mut a, &b, "b", &first), "success");
    assert!(pending(&a).is_empty() && pending(&b).is_empty());
    assert_eq!(a.q("transfer", "escrow/channel-0/native"), "0");
    assert_eq!(b.q("transfer", &format!("supply/{VOUCHER}")), "0");

    // 2. The second hop times out: the hub undoes its credit, the first
    // hop gets an error ack and alice is refunded at the source.
    let start = a.balance(&addr(&alice), "native");
    let (code, _) = a.send(
        &alice,
        forwarded(addr(&carol), 200, "channel-0", a.height + 2),
    );
    assert_eq!(code, "success");
    let paid = start - a.balance(&addr(&alice), "native") - 200;
    let first = pending(&a).remove(0);
    assert_eq!(r.recv(&a, &mut b, "a", &first), "success");
    let second = pending(&b).remove(0);
    for _ in 0..3 {
        a.tick();
    }
    assert_eq!(r.recv(&b, &mut a, "b", &second), "packet_timed_out");
    let h = r.update(&a, &mut b, "a");
    let (code, _) = b.send(
        &r.0,
        ChannelMsg::Timeout {
            packet: second.clone(),
            proven: a.prove(&channel::receipt_key("channel-0", second.sequence), h),
        }
        .action(),
    );
    assert_eq!(code, "success");
    let ack = ack_of(&b, "channel-0", first.sequence);
    assert!(
        ack["Error"].as_str().unwrap().starts_with("forward_failed"),
        "{ack}"
    );
    assert_eq!(b.balance(&hub, VOUCHER), 0);
    assert_eq!(b.q("transfer", &format!("supply/{VOUCHER}")), "0");
    assert_eq!(r.ack(&mut a, &b, "b", &first), "success");
    assert_eq!(a.balance(&addr(&alice), "native"), start - paid);
    assert_eq!(a.q("transfer", "escrow/channel-0/native"), "0");
    assert_eq!(a.balance(&addr(&carol), "native"), 300);

    // 3. A forward over a channel the hub does not have: an error ack at
    // once, and the refund.
    let start = a.balance(&addr(&alice), "native");
    let (code, _) = a.send(&alice, forwarded(addr(&carol), 50, "channel-9", 0));
    assert_eq!(code, "success");
    let paid = start - a.balance(&addr(&alice), "native") - 50;
    let first = pending(&a).remove(0);
    assert_eq!(r.recv(&a, &mut b, "a", &first), "success");
    let ack = ack_of(&b, "channel-0", first.sequence);
    assert!(
        ack["Error"].as_str().unwrap().contains("unknown_channel"),
        "{ack}"
    );
    assert!(pending(&b).is_empty());
    assert_eq!(r.ack(&mut a, &b, "b", &first), "success");
    assert_eq!(a.balance(&addr(&alice), "native"), start - paid);

    // Only the port's owner writes a held-back ack.
    let (code, _) = b.send(
        &r.0,
        ChannelMsg::WriteAck {
            channel: "channel-0".into(),
            sequence: 1,
            ack: Ack::Success(vec![]),
        }
        .action(),
    );
    assert_eq!(code, "no_ack_pending");
}

/// A channel proposed by anyone on the transfer port, opened by IBC's
/// four steps, each proven by the other chain's client; packets wait for
/// it to open and then flow.
#[test]
fn a_channel_opens_by_a_proven_handshake_and_then_carries_tokens() {
    use tongtian_xchain::channel::{end_key, ChannelEnd, ChannelState};
    let (mut a, mut b, alice, bob, r) = setup();
    let end = |c: &Chain, id: &str| -> ChannelEnd {
        serde_json::from_value(c.q("channel", &format!("channels/{id}"))).unwrap()
    };
    // 1. Init on a (anyone, on the transfer port; a contract's own port
    // takes its owner only).
    let init = |port: &str| {
        ChannelMsg::OpenInit {
            port: port.into(),
            client: "b".into(),
            counterparty_port: "transfer".into(),
            ordered: false,
            version: "ics20-1".into(),
        }
        .action()
    };
    assert_eq!(
        a.send(&alice, init(&format!("0x{}", "ab".repeat(20)))).0,
        "not_port_owner"
    );
    let (code, out) = a.send(&alice, init("transfer"));
    assert_eq!(code, "success");
    let id_a = String::from_utf8(out).unwrap();
    assert_eq!(end(&a, &id_a).state, ChannelState::Init);
    // Nothing is sent on it yet.
    let on = |channel: &str, amount| {
        TransferMsg::Transfer {
            channel: channel.into(),
            receiver: addr(&bob),
            amount,
            denom: "native".into(),
            timeout_height: 1_000,
            timeout_ms: 0,
            forward: None,
        }
        .action()
    };
    assert_eq!(a.send(&alice, on(&id_a, 5)).0, "channel_not_open");

    // 2. Try on b, with the proof of a's end.
    let h = r.update(&a, &mut b, "a");
    let try_msg = |e: ChannelEnd, h: u64| {
        ChannelMsg::OpenTry {
            client: "a".into(),
            proven: a.prove(&end_key(&e.init.id), h),
            counterparty: e,
        }
        .action()
    };
    let mut forged = end(&a, &id_a);
    forged.init.version = "ics20-2".into();
    assert_eq!(b.send(&r.0, try_msg(forged, h)).0, "proof_invalid");
    let (code, out) = b.send(&r.0, try_msg(end(&a, &id_a), h));
    assert_eq!(code, "success");
    let id_b = String::from_utf8(out).unwrap();
    assert_eq!(b.send(&r.0, try_msg(end(&a, &id_a), h)).0, "channel_exists");
    assert_eq!(end(&b, &id_b).state, ChannelState::TryOpen);
    assert_eq!(end(&b, &id_b).init.counterparty_channel, id_a);

    // 3. Ack on a, with the proof of b's end.
    let g = r.update(&b, &mut a, "b");
    let ack_msg = ChannelMsg::OpenAck {
        channel: id_a.clone(),
        counterparty: end(&b, &id_b),
        proven: b.prove(&end_key(&id_b), g),
    }
    .action();
    assert_eq!(a.send(&r.0, ack_msg).0, "success");
    assert_eq!(end(&a, &id_a).state, ChannelState::Open);
    assert_eq!(end(&a, &id_a).init.counterparty_channel, id_b);

    // 4. Confirm on b, with the proof of a's open end.
    let h = r.update(&a, &mut b, "a");
    let confirm = |e: ChannelEnd| {
        ChannelMsg::OpenConfirm {
            channel: id_b.clone(),
            counterparty: e,
            proven: a.prove(&end_key(&id_a), h),
        }
        .action()
    };
    let mut lie = end(&a, &id_a);
    lie.state = ChannelState::Init;
    assert_eq!(b.send(&r.0, confirm(lie)).0, "handshake_mismatch");
    assert_eq!(b.send(&r.0, confirm(end(&a, &id_a))).0, "success");
    assert_eq!(end(&b, &id_b).state, ChannelState::Open);

    // Tokens cross on it, as vouchers named by the new channel.
    assert_eq!(a.send(&alice, on(&id_a, 70)).0, "success");
    let p = pending_on(&a, &id_a).remove(0);
    assert_eq!(r.recv(&a, &mut b, "a", &p), "success");
    assert_eq!(
        b.balance(&addr(&bob), &format!("transfer/{id_b}/native")),
        70
    );
    assert_eq!(r.ack(&mut a, &b, "b", &p), "success");
    assert_eq!(a.q("transfer", &format!("escrow/{id_a}/native")), "70");
}
