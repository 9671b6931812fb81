//! An ERC-20 on anvil goes to a Tongtian chain and back through the
//! attested client and `contracts/evm-port/TongtianPort.sol`.
//!
//! The test plays the relayer and the three attesters (two needed): it
//! attests anvil blocks to our chain's client, carries packets with
//! `eth_getProof` proofs that our chain checks itself, and has the
//! attesters sign our chain's packets and acks for the Solidity port,
//! which checks their signatures. Every forged step is refused on the
//! side that checks it, and the voucher supply on our chain equals what
//! the port escrows after each round trip.

#![allow(clippy::unwrap_used)]

mod common;

use alloy_primitives::{Address as EthAddress, Bytes, FixedBytes, U256};
use alloy_sol_types::{sol, SolCall, SolEvent, SolValue};
use common::anvil::{anvil, quantity, rpc, send_tx, word, Anvil};
use common::{addr, attested_init, Chain};
use serde_json::{json, Value};
use tongtian_crypto::eth::EthKey;
use tongtian_crypto::{Keypair, SuiteId};
use tongtian_types::{Address, SpecBuilder};
use tongtian_xchain::attested::{
    self, Attestation, EthStorageProof, Signature65, SignedAttestation,
};
use tongtian_xchain::channel::{self, Ack, ChannelMsg, Packet, PacketProof, Proven};
use tongtian_xchain::client::ClientMsg;
use tongtian_xchain::transfer::TransferMsg;

use tongtian_xchain::attested::evm_port::{to_sol, ITongtianEvmPort as IPort};

sol! {
    interface IToken {
        function approve(address spender, uint256 value) external returns (bool);
        function balanceOf(address who) external view returns (uint256);
    }
}

const OURS: u64 = 7;
const ANVIL: u64 = 31337;

fn artifact(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../contracts")
        .join(name);
    hex::decode(std::fs::read_to_string(p).unwrap().trim()).unwrap()
}

struct Evm {
    node: Anvil,
    from: String,
}

impl Evm {
    /// Send a transaction from anvil's first account: its receipt.
    fn send(&self, to: Option<&str>, data: Vec<u8>) -> Value {
        let mut tx = json!({"from": self.from, "data": format!("0x{}", hex::encode(data)), "gas": "0x1c9c380"});
        if let Some(to) = to {
            tx["to"] = json!(to);
        }
        send_tx(&self.node, tx)
    }

    fn call<C: SolCall>(&self, to: &str, c: &C) -> C::Return {
        let out = rpc(
            &self.node,
            "eth_call",
            json!([{"to": to, "data": format!("0x{}", hex::encode(c.abi_encode()))}, "latest"]),
        );
        let b = hex::decode(out.as_str().unwrap().trim_start_matches("0x")).unwrap();
        C::abi_decode_returns(&b).unwrap()
    }

    fn latest(&self) -> Value {
        rpc(&self.node, "eth_getBlockByNumber", json!(["latest", false]))
    }
}

fn sigs(keys: &[&EthKey], digest: [u8; 32]) -> Vec<Bytes> {
    keys.iter()
        .map(|k| Bytes::from(k.sign_recoverable(&digest).to_vec()))
        .collect()
}

fn event_data<E: SolEvent>(receipt: &Value) -> E {
    let log = receipt["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["topics"][0] == format!("0x{}", hex::encode(E::SIGNATURE_HASH)))
        .unwrap_or_else(|| panic!("no {} in {receipt}", E::SIGNATURE));
    let data = hex::decode(log["data"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let topics: Vec<alloy_primitives::B256> = log["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().parse().unwrap())
        .collect();
    E::decode_raw_log(topics, &data).unwrap()
}

fn commitment(p: &Packet) -> [u8; 32] {
    p.commitment().try_into().unwrap()
}

#[test]
fn an_erc20_goes_to_a_tongtian_chain_and_back_through_the_attested_client() {
    let evm = {
        let node = anvil();
        let from = rpc(&node, "eth_accounts", json!([]))[0]
            .as_str()
            .unwrap()
            .to_string();
        Evm { node, from }
    };
    let deployer: EthAddress = evm.from.parse().unwrap();
    let attesters: Vec<EthKey> = (1u8..=3)
        .map(|i| EthKey::from_secret(&[i; 32]).unwrap())
        .collect();
    let (a0, a1, a2) = (&attesters[0], &attesters[1], &attesters[2]);

    // The ERC-20 and the port on anvil.
    let mut code = artifact("token/Token.bin");
    code.extend(
        (
            "Bill".to_string(),
            "BILL".to_string(),
            U256::from(1_000_000u64),
        )
            .abi_encode_params(),
    );
    let r = evm.send(None, code);
    assert_eq!(r["status"], "0x1", "{r}");
    let token = r["contractAddress"].as_str().unwrap().to_string();
    let token_addr: EthAddress = token.parse().unwrap();
    let mut code = artifact("evm-port/TongtianPort.bin");
    let attester_addrs: Vec<EthAddress> = attesters
        .iter()
        .map(|k| EthAddress::from(k.address()))
        .collect();
    code.extend(
        (
            "channel-0".to_string(),
            "transfer".to_string(),
            "channel-e".to_string(),
            OURS,
            attester_addrs,
            U256::from(2u64),
        )
            .abi_encode_params(),
    );
    let r = evm.send(None, code);
    assert_eq!(r["status"], "0x1", "{r}");
    let port = r["contractAddress"].as_str().unwrap().to_lowercase();

    // Our chain: an attested client of anvil and channel-e to the port.
    let init = attested_init("anvil", ANVIL, &attesters, 2);
    let v = Keypair::from_seed(SuiteId::Standard, b"validator");
    let relayer = Keypair::from_seed(SuiteId::Standard, b"relayer");
    let bob = Keypair::from_seed(SuiteId::Standard, b"bob");
    let spec = SpecBuilder::new("ours", OURS)
        .validator("v", v.public_key())
        .module("client", json!({ "clients": [init] }))
        .module(
            "channel",
            json!({ "channels": [{
                "id": "channel-e", "port": "transfer", "client": "anvil",
                "counterparty_channel": "channel-0", "counterparty_port": port,
            }]}),
        )
        .module("transfer", json!({}))
        .fund(addr(&relayer), 1_000_000_000_000)
        .fund(addr(&bob), 1_000_000_000_000)
        .build()
        .unwrap();
    let mut ours = Chain::from_spec(OURS, v, spec);

    // The relayer's steps.
    let attest_latest = |ours: &mut Chain| -> u64 {
        let b = evm.latest();
        let a = Attestation {
            chain_id: ANVIL,
            height: quantity(&b["number"]),
            block_hash: word(&b["hash"]),
            state_root: word(&b["stateRoot"]),
            timestamp_ms: quantity(&b["timestamp"]) * 1000,
        };
        let signed = SignedAttestation {
            signatures: [a0, a1]
                .iter()
                .map(|k| Signature65(k.sign_recoverable(&a.digest()).to_vec()))
                .collect(),
            attestation: a.clone(),
        };
        let code = ours
            .send(
                &relayer,
                ClientMsg::Attest {
                    client: "anvil".into(),
                    signed,
                }
                .action(),
            )
            .0;
        assert!(code == "success" || code == "stale_header", "{code}");
        a.height
    };
    let eth_proof = |kind: &str, seq: u64, height: u64| -> Proven {
        let slot = channel::evm_slot(kind, "channel-0", seq);
        let r = rpc(
            &evm.node,
            "eth_getProof",
            json!([
                port,
                [format!("0x{}", hex::encode(slot))],
                format!("0x{height:x}")
            ]),
        );
        Proven {
            height,
            proof: PacketProof::Eth(EthStorageProof::from_rpc(&r).unwrap()),
        }
    };
    let voucher = format!("transfer/channel-e/{}", token.to_lowercase());
    let supply = |c: &Chain| c.q("transfer", &format!("supply/{voucher}"));
    let escrowed = || {
        evm.call(&port, &IPort::escrowedCall { token: token_addr })
            .to::<u128>()
    };

    // 1. anvil -> ours: 600 BILL escrowed in the port, a voucher for bob.
    let r = evm.send(
        Some(&token),
        IToken::approveCall {
            spender: port.parse().unwrap(),
            value: U256::from(1_000u64),
        }
        .abi_encode(),
    );
    assert_eq!(r["status"], "0x1");
    let r = evm.send(
        Some(&port),
        IPort::sendTransferCall {
            token: token_addr,
            amount: U256::from(600u64),
            receiver: FixedBytes(addr(&bob).0),
            timeoutHeight: 1_000,
            timeoutMs: 0,
        }
        .abi_encode(),
    );
    assert_eq!(r["status"], "0x1", "{r}");
    let sent: IPort::SendPacket = event_data(&r);
    let p1: Packet = borsh::from_slice(&sent.packet).unwrap();
    assert_eq!(p1.source_port, port);
    assert_eq!(p1.dest_channel, "channel-e");
    assert_eq!(escrowed(), 600);
    // A proof at a height the client has not attested is refused.
    let h = quantity(&evm.latest()["number"]);
    let recv = |proven: Proven| {
        ChannelMsg::Recv {
            packet: p1.clone(),
            proven,
        }
        .action()
    };
    assert_eq!(
        ours.send(&relayer, recv(eth_proof("commit", 1, h))).0,
        "unknown_height"
    );
    let h = attest_latest(&mut ours);
    // The proof of another slot (its receipt, empty) does not prove the commitment.
    assert_eq!(
        ours.send(&relayer, recv(eth_proof("receipt", 1, h))).0,
        "proof_invalid"
    );
    assert_eq!(
        ours.send(&relayer, recv(eth_proof("commit", 1, h))).0,
        "success"
    );
    assert_eq!(ours.balance(&addr(&bob), &voucher), 600);
    assert_eq!(supply(&ours), "600");
    assert_eq!(
        ours.send(&relayer, recv(eth_proof("commit", 1, h))).0,
        "packet_already_received"
    );
    // Its ack goes back to the port, signed by the attesters.
    let ack: Ack = serde_json::from_value(ours.q("channel", "acks/channel-e/1")).unwrap();
    assert!(matches!(ack, Ack::Success(_)));
    let ack_bytes = borsh::to_vec(&ack).unwrap();
    let digest = attested::ack_digest(OURS, &commitment(&p1), &ack_bytes);
    let forged = evm.send(
        Some(&port),
        IPort::acknowledgePacketCall {
            p: to_sol(&p1),
            ack: ack_bytes.clone().into(),
            sigs: sigs(&[a0], digest),
        }
        .abi_encode(),
    );
    assert_eq!(forged["status"], "0x0", "one attester is not enough");
    let r = evm.send(
        Some(&port),
        IPort::acknowledgePacketCall {
            p: to_sol(&p1),
            ack: ack_bytes.into(),
            sigs: sigs(&[a2, a1], digest),
        }
        .abi_encode(),
    );
    assert_eq!(r["status"], "0x1", "{r}");
    assert_eq!(escrowed(), 600);

    // 2. ours -> anvil: bob sends 250 of the voucher home; it is burned
    // here and released from the port's escrow there.
    let before = evm
        .call(&token, &IToken::balanceOfCall { who: deployer })
        .to::<u128>();
    let (code, _) = ours.send(
        &bob,
        TransferMsg::Transfer {
            channel: "channel-e".into(),
            receiver: Address(deployer.into_array()),
            amount: 250,
            denom: voucher.clone(),
            timeout_height: quantity(&evm.latest()["number"]) + 1_000,
            timeout_ms: 0,
            forward: None,
        }
        .action(),
    );
    assert_eq!(code, "success");
    let p2: Packet =
        serde_json::from_value(ours.q("channel", "packets/channel-e")[0].clone()).unwrap();
    let digest = attested::packet_digest(OURS, &commitment(&p2));
    let forged = evm.send(
        Some(&port),
        IPort::recvPacketCall {
            p: to_sol(&p2),
            sigs: sigs(&[a0, &EthKey::from_secret(&[9; 32]).unwrap()], digest),
        }
        .abi_encode(),
    );
    assert_eq!(
        forged["status"], "0x0",
        "an outsider's signature does not count"
    );
    let mut altered = to_sol(&p2);
    altered.sequence = 9;
    let forged = evm.send(
        Some(&port),
        IPort::recvPacketCall {
            p: altered,
            sigs: sigs(&[a0, a1], digest),
        }
        .abi_encode(),
    );
    assert_eq!(
        forged["status"], "0x0",
        "signatures are for the packet as sent"
    );
    let r = evm.send(
        Some(&port),
        IPort::recvPacketCall {
            p: to_sol(&p2),
            sigs: sigs(&[a0, a1], digest),
        }
        .abi_encode(),
    );
    assert_eq!(r["status"], "0x1", "{r}");
    let got: IPort::RecvPacket = event_data(&r);
    let ack: Ack = borsh::from_slice(&got.ack).unwrap();
    assert_eq!(ack, Ack::Success(token.to_lowercase().into_bytes()));
    let after = evm
        .call(&token, &IToken::balanceOfCall { who: deployer })
        .to::<u128>();
    assert_eq!(after, before + 250);
    assert_eq!(escrowed(), 350);
    let replay = evm.send(
        Some(&port),
        IPort::recvPacketCall {
            p: to_sol(&p2),
            sigs: sigs(&[a0, a1], digest),
        }
        .abi_encode(),
    );
    assert_eq!(replay["status"], "0x0", "received once");
    // The ack comes back proven from the port's storage.
    let h = attest_latest(&mut ours);
    let acknowledge = |ack: Ack, proven: Proven| {
        ChannelMsg::Acknowledge {
            packet: p2.clone(),
            ack,
            proven,
        }
        .action()
    };
    let lie = Ack::Error("refused".into());
    assert_eq!(
        ours.send(&relayer, acknowledge(lie, eth_proof("ack", p2.sequence, h)))
            .0,
        "proof_invalid"
    );
    assert_eq!(
        ours.send(&relayer, acknowledge(ack, eth_proof("ack", p2.sequence, h)))
            .0,
        "success"
    );
    assert!(ours
        .q("channel", "packets/channel-e")
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(ours.balance(&addr(&bob), &voucher), 350);
    assert_eq!(supply(&ours), "350");
    assert_eq!(escrowed(), 350, "supply here = escrow there");

    // 3. Our native token is not an ERC-20 the port escrowed: an error
    // ack, proven from the port, refunds bob here.
    let start = ours.balance(&addr(&bob), "native");
    let (code, _) = ours.send(
        &bob,
        TransferMsg::Transfer {
            channel: "channel-e".into(),
            receiver: Address(deployer.into_array()),
            amount: 5,
            denom: "native".into(),
            timeout_height: quantity(&evm.latest()["number"]) + 1_000,
            timeout_ms: 0,
            forward: None,
        }
        .action(),
    );
    assert_eq!(code, "success");
    let paid = start - ours.balance(&addr(&bob), "native") - 5;
    let p3: Packet =
        serde_json::from_value(ours.q("channel", "packets/channel-e")[0].clone()).unwrap();
    let r = evm.send(
        Some(&port),
        IPort::recvPacketCall {
            p: to_sol(&p3),
            sigs: sigs(&[a1, a2], attested::packet_digest(OURS, &commitment(&p3))),
        }
        .abi_encode(),
    );
    assert_eq!(r["status"], "0x1", "{r}");
    let got: IPort::RecvPacket = event_data(&r);
    let ack: Ack = borsh::from_slice(&got.ack).unwrap();
    assert!(
        matches!(&ack, Ack::Error(e) if e.contains("only tokens that left")),
        "{ack:?}"
    );
    let h = attest_latest(&mut ours);
    let (code, _) = ours.send(
        &relayer,
        ChannelMsg::Acknowledge {
            proven: eth_proof("ack", p3.sequence, h),
            packet: p3,
            ack,
        }
        .action(),
    );
    assert_eq!(code, "success");
    assert_eq!(ours.balance(&addr(&bob), "native"), start - paid);
    assert_eq!(ours.q("transfer", "escrow/channel-e/native"), "0");
}
