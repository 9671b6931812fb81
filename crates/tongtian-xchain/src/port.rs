//! Ports: who may send on a channel, and how the channel reaches the
//! application behind it.
//!
//! A port is either a native module's id (`transfer`, `nft-transfer`) or a
//! contract's address (`0x` and 40 hex digits, lower case). The owner of a
//! port (the module's address, or the contract itself) is the only caller
//! that may send packets on a channel bound to it; the channel delivers
//! packets, acknowledgements and timeouts to it:
//!
//! - a module gets an [`AppMsg`] through [`ModuleCtx::call`];
//! - a Solidity contract gets calls of [`ITongtianPort`]
//!   (`onRecvPacket`, `onAcknowledgementPacket`, `onTimeoutPacket`);
//! - a WASM contract gets the methods `on_recv_packet(channel, sequence,
//!   data)`, `on_ack_packet(channel, sequence, data, success, result)`
//!   and `on_timeout_packet(channel, sequence, data)`.
//!
//! Contracts send by calling the channel module at its address: a Solidity
//! contract with [`IChannel::sendPacket`], ABI-encoded, a WASM contract
//! with the Borsh [`crate::channel::ChannelMsg::Send`] whose port is its own
//! address. A contract callback runs with at most [`CALLBACK_GAS`] gas,
//! charged to the transaction that delivered the packet.

use crate::channel::{Ack, AppMsg};
use alloy_sol_types::{sol, SolCall};
use tongtian_contract_sdk::{Input, Value};
use tongtian_execution::module::{module_address, ModuleCtx, ModuleError, ModuleResult};
use tongtian_types::{Address, VmKind};

sol! {
    /// What a Solidity contract implements to own a port.
    interface ITongtianPort {
        /// A packet arrived on `channel` (here): the answer becomes the
        /// success acknowledgement; a revert becomes an error one.
        function onRecvPacket(string channel, uint64 sequence, bytes data) external returns (bytes);
        /// A packet this contract sent on `channel` was acknowledged.
        function onAcknowledgementPacket(string channel, uint64 sequence, bytes data, bool success, bytes result) external;
        /// A packet this contract sent on `channel` timed out.
        function onTimeoutPacket(string channel, uint64 sequence, bytes data) external;
    }

    /// The channel module, as a Solidity contract sees it at its address.
    interface IChannel {
        /// Send `data` on `channel` (bound to the caller's port): the
        /// packet's sequence.
        function sendPacket(string channel, bytes data, uint64 timeoutHeight, uint64 timeoutMs) external returns (uint64);
    }
}

/// Gas a contract's callback may use at most.
pub const CALLBACK_GAS: u64 = 2_000_000;

/// The contract address a port names, if it names one.
pub fn contract_port(port: &str) -> Option<Address> {
    if port.len() == 42
        && port.starts_with("0x")
        && port[2..]
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        port.parse().ok()
    } else {
        None
    }
}

/// The address that owns `port`.
pub fn owner(port: &str) -> Address {
    contract_port(port).unwrap_or_else(|| module_address(port))
}

/// Deliver `msg` to the application at `port`: its answer (the success
/// ack's bytes for a packet), or its refusal.
pub fn deliver(ctx: &mut ModuleCtx<'_, '_>, port: &str, msg: AppMsg) -> ModuleResult<Vec<u8>> {
    let Some(contract) = contract_port(port) else {
        return ctx.call(port, &msg.encode());
    };
    let Some(info) = ctx.code_info(&contract)? else {
        return Err(
            ModuleError::new("no_port_contract", format!("port {port} names no contract")).into(),
        );
    };
    let input = encode(info.vm, &msg);
    let r = ctx.call_contract(contract, input, CALLBACK_GAS)?;
    match r.status {
        Ok(out) => Ok(match (&msg, info.vm) {
            (AppMsg::OnRecv(_), VmKind::Evm) => {
                ITongtianPort::onRecvPacketCall::abi_decode_returns(&out)
                    .map(|b| b.to_vec())
                    .unwrap_or(out)
            }
            (AppMsg::OnRecv(_), VmKind::Wasm) => match Value::decode(&out) {
                Ok(Value::Bytes(b)) => b,
                _ => out,
            },
            _ => Vec::new(),
        }),
        Err(f) => Err(ModuleError::new("port_callback_failed", f.message()).into()),
    }
}

fn encode(vm: VmKind, msg: &AppMsg) -> Vec<u8> {
    let (ch, seq, data) = match msg {
        AppMsg::OnRecv(p) => (p.dest_channel.clone(), p.sequence, p.data.clone()),
        AppMsg::OnAck(p, _) | AppMsg::OnTimeout(p) => {
            (p.source_channel.clone(), p.sequence, p.data.clone())
        }
    };
    let ack = |a: &Ack| match a {
        Ack::Success(b) => (true, b.clone()),
        Ack::Error(e) => (false, e.clone().into_bytes()),
    };
    match vm {
        VmKind::Evm => match msg {
            AppMsg::OnRecv(_) => ITongtianPort::onRecvPacketCall {
                channel: ch,
                sequence: seq,
                data: data.into(),
            }
            .abi_encode(),
            AppMsg::OnAck(_, a) => {
                let (success, result) = ack(a);
                ITongtianPort::onAcknowledgementPacketCall {
                    channel: ch,
                    sequence: seq,
                    data: data.into(),
                    success,
                    result: result.into(),
                }
                .abi_encode()
            }
            AppMsg::OnTimeout(_) => ITongtianPort::onTimeoutPacketCall {
                channel: ch,
                sequence: seq,
                data: data.into(),
            }
            .abi_encode(),
        },
        VmKind::Wasm => {
            let mut args = vec![Value::Str(ch), Value::Int(seq as u128), Value::Bytes(data)];
            let method = match msg {
                AppMsg::OnRecv(_) => "on_recv_packet",
                AppMsg::OnAck(_, a) => {
                    let (success, result) = ack(a);
                    args.push(Value::Bool(success));
                    args.push(Value::Bytes(result));
                    "on_ack_packet"
                }
                AppMsg::OnTimeout(_) => "on_timeout_packet",
            };
            Input::encode(method, &args)
        }
    }
}

/// A Solidity contract's `sendPacket` call, if `msg` is one: the channel,
/// data and timeouts.
pub fn decode_send(msg: &[u8]) -> Option<Result<IChannel::sendPacketCall, ModuleError>> {
    if msg.len() < 4 || msg[..4] != IChannel::sendPacketCall::SELECTOR {
        return None;
    }
    Some(
        IChannel::sendPacketCall::abi_decode(msg)
            .map_err(|e| ModuleError::bad_message(crate::channel::ID, e)),
    )
}

/// The answer to a Solidity `sendPacket`: the sequence, ABI-encoded.
pub fn encode_sequence(seq: u64) -> Vec<u8> {
    IChannel::sendPacketCall::abi_encode_returns(&seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_address_the_examples_use() {
        // contracts/xcall/CrossCall.sol and the contract SDK name it.
        assert_eq!(
            module_address(crate::channel::ID).to_string(),
            "0xffffa2dda54e8d63e162cba4b1c4c56e6919e92b"
        );
    }

    #[test]
    fn ports_name_modules_or_contracts() {
        let a: Address = "0x00000000000000000000000000000000000000aa"
            .parse()
            .unwrap();
        assert_eq!(contract_port(&a.to_string()), Some(a));
        assert_eq!(owner(&a.to_string()), a);
        assert_eq!(contract_port("transfer"), None);
        assert_eq!(owner("transfer"), module_address("transfer"));
        // Upper-case hex is not a port name (one spelling per contract).
        assert_eq!(
            contract_port("0x00000000000000000000000000000000000000AA"),
            None
        );
    }

    #[test]
    fn the_solidity_send_selector_cannot_be_a_borsh_channel_message() {
        // Borsh messages start with their variant's tag, 0..=4.
        assert!(IChannel::sendPacketCall::SELECTOR[0] > 4);
        let call = IChannel::sendPacketCall {
            channel: "channel-2".into(),
            data: vec![1, 2].into(),
            timeoutHeight: 10,
            timeoutMs: 0,
        };
        let back = decode_send(&call.abi_encode()).unwrap().unwrap();
        assert_eq!(back.channel, "channel-2");
        assert_eq!(back.timeoutHeight, 10);
        assert!(decode_send(&[0, 1, 2, 3, 4]).is_none());
    }
}
