//! The `channel` module: channels between this chain and another, and the
//! packets on them, each proven by the other chain's light client.
//!
//! A channel joins a port here (an application module, such as
//! `transfer`, or a contract: see [`crate::port`]) to a port there,
//! through the `client` of the other chain.
//! Packet lifecycle (IBC's):
//! 1. **send** (by the port's module): the packet is stored with its
//!    commitment (its hash) at `commit/{channel}/{seq}`;
//! 2. **recv** (anyone, on the other chain): the commitment is proven
//!    against the sender's verified state root; the receipt at
//!    `receipt/{channel}/{seq}` refuses a second delivery; an ordered
//!    channel takes packets in sequence only; the application runs and
//!    its acknowledgement (success or error) is stored at
//!    `ack/{channel}/{seq}`;
//! 3. **acknowledge** (anyone, back here): the ack is proven against the
//!    receiver's root, the commitment deleted, the application told; or
//! 4. **timeout** (anyone, here): once the receiver's verified height or
//!    time has passed the packet's timeout, proven absence of its receipt
//!    there deletes the commitment and the application refunds.
//!
//! A packet ends acknowledged or timed out, exactly once: both need the
//! commitment, which the first deletes.
//!
//! Channels are opened by authorities (the registry when a sub-chain is
//! born, so a member never runs a handshake by hand; governance for
//! others) on both sides at once: each side's genesis or creating block
//! names the other's channel and client. Without a vote, a channel opens
//! by IBC's handshake (`OpenInit`, `OpenTry`, `OpenAck`, `OpenConfirm`),
//! each step proving the other end's state ([`end_key`]) through the
//! client; packets move only on open ends.

use crate::client::{ClientMsg, ID as CLIENT};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tongtian_execution::module::{
    module_address, module_prefix, Module, ModuleCtx, ModuleError, ModuleFailure, ModuleResult,
    ModuleState,
};
use tongtian_types::{proof::StateProof, serde_hex, ChainSpec};

/// The module's id.
pub const ID: &str = "channel";

/// Ports anyone may propose a channel on (their applications accept any
/// channel, as ICS-20 and ICS-721 do: what crosses is named by its path).
/// Other ports take proposals from their owner only.
pub const OPEN_PORTS: [&str; 2] = ["transfer", "nft-transfer"];

/// Modules that open channels.
pub const AUTHORITIES: [&str; 3] = ["gov", "directive", "registry"];

/// One end of a channel, as opened.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ChannelInit {
    /// Its id here (`channel-0`, ...).
    pub id: String,
    /// The port (application module) here.
    pub port: String,
    /// The client here of the other chain.
    pub client: String,
    /// The other end's channel id.
    pub counterparty_channel: String,
    /// The other end's port.
    pub counterparty_port: String,
    /// Packets delivered in sequence only.
    #[serde(default)]
    pub ordered: bool,
    /// The application's version string.
    #[serde(default)]
    pub version: String,
}

/// A channel end as kept in state.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ChannelEnd {
    /// How it was opened.
    #[serde(flatten)]
    pub init: ChannelInit,
    /// Sequence of the next packet sent.
    pub next_send: u64,
    /// On an ordered channel, the sequence of the next packet received.
    pub next_recv: u64,
    /// Where its handshake stands (channels opened by an authority are
    /// open at once).
    #[serde(default)]
    pub state: ChannelState,
}

/// A channel end's handshake state (IBC's).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ChannelState {
    /// Proposed here by its port's owner; the other side has not answered.
    Init,
    /// Answered here to the other side's `Init`, proven; waiting for its
    /// confirmation.
    TryOpen,
    /// Open: packets flow.
    #[default]
    Open,
}

/// A packet.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Packet {
    /// Its number on the source channel (from 1).
    pub sequence: u64,
    /// Source port.
    pub source_port: String,
    /// Source channel.
    pub source_channel: String,
    /// Destination port.
    pub dest_port: String,
    /// Destination channel.
    pub dest_channel: String,
    /// The application's bytes.
    #[serde(with = "serde_hex")]
    pub data: Vec<u8>,
    /// Destination height from which it can no longer be received (0: none).
    pub timeout_height: u64,
    /// Destination time (ms) from which it can no longer be received (0: none).
    pub timeout_ms: u64,
}

impl Packet {
    /// Its commitment: Keccak-256 of its encoding.
    pub fn commitment(&self) -> Vec<u8> {
        tongtian_crypto::eth::keccak256(&borsh::to_vec(self).expect("packets encode")).to_vec()
    }
}

/// An application's acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub enum Ack {
    /// Received and handled; the application's result.
    Success(#[serde(with = "serde_hex")] Vec<u8>),
    /// Refused by the application (code: message).
    Error(String),
}

/// What a module application answers a packet with to hold its
/// acknowledgement back: it writes it later with [`ChannelMsg::WriteAck`]
/// (the transfer module does, for a packet it forwards, once the second
/// hop ends). Until then the packet is received (it cannot time out) and
/// unacknowledged. Contract ports cannot defer: their answer is their ack.
pub const ACK_LATER: &[u8] = b"\xfftongtian/ack-later";

/// What the channel tells the application at a port (sent as the
/// channel's address; applications accept these only from it).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum AppMsg {
    /// A packet arrived; the answer is the success ack's bytes, a refusal
    /// becomes an error ack (and the application's writes are undone).
    OnRecv(Packet),
    /// A packet sent from here was acknowledged.
    OnAck(Packet, Ack),
    /// A packet sent from here timed out: refund.
    OnTimeout(Packet),
}

impl AppMsg {
    /// Encoded.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("app messages encode")
    }
}

/// What an application at a port does with the channel's messages: its
/// answer to a packet, and its refund when a packet it sent failed.
pub type OnRecv = fn(&mut ModuleCtx<'_, '_>, &Packet) -> ModuleResult<Vec<u8>>;
/// See [`OnRecv`].
pub type Refund = fn(&mut ModuleCtx<'_, '_>, &Packet) -> ModuleResult<()>;

/// Handle `msg` for application `app` when it comes from the channel:
/// `Some` with the answer, `None` when the caller is anyone else (the
/// application then reads it as one of its own messages). A success ack
/// needs nothing; an error ack or a timeout refunds.
pub fn app_callback(
    ctx: &mut ModuleCtx<'_, '_>,
    app: &str,
    msg: &[u8],
    on_recv: OnRecv,
    refund: Refund,
) -> Option<ModuleResult<Vec<u8>>> {
    if ctx.caller != module_address(ID) {
        return None;
    }
    let m: AppMsg = match borsh::from_slice(msg) {
        Ok(m) => m,
        Err(e) => return Some(Err(ModuleError::bad_message(app, e).into())),
    };
    Some(match m {
        AppMsg::OnRecv(p) => on_recv(ctx, &p),
        AppMsg::OnAck(p, Ack::Error(_)) | AppMsg::OnTimeout(p) => {
            refund(ctx, &p).map(|()| Vec::new())
        }
        AppMsg::OnAck(_, Ack::Success(_)) => Ok(Vec::new()),
    })
}

/// Where a packet's proof is: the other chain's height it was read at.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Proven {
    /// The other chain's height (verified by this chain's client).
    pub height: u64,
    /// The proof there.
    pub proof: PacketProof,
}

/// A proof of a channel value on the other chain, in that chain's kind.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PacketProof {
    /// A Tongtian chain's sparse Merkle proof of the value at its key.
    State(StateProof),
    /// An external EVM chain's `eth_getProof` of the port contract's
    /// storage slot for the value (see [`evm_slot`]): the slot holds
    /// Keccak-256 of the value a Tongtian chain would store, zero for none.
    Eth(crate::attested::EthStorageProof),
}

/// The storage slot where an EVM port contract keeps channel value
/// `kind` (`commit`, `receipt`, `ack`) of packet `seq` on `channel`:
/// its `mapping(bytes32 => bytes32)` at slot 0, keyed by
/// `keccak256(abi.encodePacked(kind, "/", channel, "/", uint64(seq)))`.
pub fn evm_slot(kind: &str, channel: &str, seq: u64) -> [u8; 32] {
    let k = tongtian_crypto::eth::keccak256;
    let path = k(&[
        kind.as_bytes(),
        b"/",
        channel.as_bytes(),
        b"/",
        &seq.to_be_bytes(),
    ]
    .concat());
    k(&[&path[..], &[0u8; 32]].concat())
}

/// Messages of the `channel` module.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ChannelMsg {
    /// Open a channel end (from an authority).
    Open(ChannelInit),
    /// Send a packet (from the port's module); answers its sequence.
    Send {
        /// The port.
        port: String,
        /// The channel.
        channel: String,
        /// The application's bytes.
        data: Vec<u8>,
        /// Timeout height on the destination (0: none).
        timeout_height: u64,
        /// Timeout time on the destination (0: none).
        timeout_ms: u64,
    },
    /// Deliver a packet here (anyone).
    Recv {
        /// The packet.
        packet: Packet,
        /// Proof of its commitment on the source.
        proven: Proven,
    },
    /// Deliver a packet's acknowledgement back to its source (anyone).
    Acknowledge {
        /// The packet.
        packet: Packet,
        /// The ack.
        ack: Ack,
        /// Proof of the ack on the destination.
        proven: Proven,
    },
    /// Time a packet out at its source (anyone).
    Timeout {
        /// The packet.
        packet: Packet,
        /// Proof that the destination has no receipt of it.
        proven: Proven,
    },
    /// Propose a channel (from the owner of `port`, no vote needed): a new
    /// end `channel-h{n}` in `Init`, answered by the other side's
    /// [`ChannelMsg::OpenTry`]. The answer is the new end's id.
    OpenInit {
        /// The port here.
        port: String,
        /// The client here of the other chain.
        client: String,
        /// The port there.
        counterparty_port: String,
        /// Ordered.
        ordered: bool,
        /// The application's version string.
        version: String,
    },
    /// Answer the other side's `Init` (anyone, with the proof of its end):
    /// a new end here in `TryOpen`.
    OpenTry {
        /// The client here of the other chain.
        client: String,
        /// The other side's end, in `Init`, naming a port here.
        counterparty: ChannelEnd,
        /// Its proof there.
        proven: Proven,
    },
    /// The other side answered (anyone, with the proof of its `TryOpen`
    /// end): this end, in `Init`, opens.
    OpenAck {
        /// The end here.
        channel: String,
        /// The other side's end, in `TryOpen`.
        counterparty: ChannelEnd,
        /// Its proof there.
        proven: Proven,
    },
    /// The other side opened (anyone, with the proof of its open end):
    /// this end, in `TryOpen`, opens.
    OpenConfirm {
        /// The end here.
        channel: String,
        /// The other side's end, open.
        counterparty: ChannelEnd,
        /// Its proof there.
        proven: Proven,
    },
    /// Write the acknowledgement of a packet received here whose
    /// application answered [`ACK_LATER`] (from the port's owner only).
    WriteAck {
        /// The channel here it arrived on.
        channel: String,
        /// Its sequence.
        sequence: u64,
        /// The acknowledgement.
        ack: Ack,
    },
}

impl ChannelMsg {
    /// Encoded.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("channel messages encode")
    }

    /// As a transaction action.
    pub fn action(&self) -> tongtian_types::Action {
        tongtian_types::Action::Module {
            module: ID.into(),
            msg: self.encode(),
        }
    }
}

/// The module's genesis section.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Channels the chain starts with.
    #[serde(default)]
    pub channels: Vec<ChannelInit>,
}

fn chkey(id: &str) -> Vec<u8> {
    format!("ch/{id}").into_bytes()
}

fn rel(kind: &str, channel: &str, seq: u64) -> Vec<u8> {
    format!("{kind}/{channel}/{seq:020}").into_bytes()
}

/// The full state key of a packet's commitment (what `recv` proves).
pub fn commitment_key(channel: &str, seq: u64) -> Vec<u8> {
    [module_prefix(ID), rel("commit", channel, seq)].concat()
}

/// The full state key of a packet's receipt (what `timeout` proves absent).
pub fn receipt_key(channel: &str, seq: u64) -> Vec<u8> {
    [module_prefix(ID), rel("receipt", channel, seq)].concat()
}

/// The full state key of a packet's acknowledgement.
pub fn ack_key(channel: &str, seq: u64) -> Vec<u8> {
    [module_prefix(ID), rel("ack", channel, seq)].concat()
}

fn refuse(code: &str, message: impl Into<String>) -> ModuleError {
    ModuleError::new(code, message)
}

fn load(state: &ModuleState<'_, '_>, id: &str) -> ModuleResult<ChannelEnd> {
    Ok(state
        .get_typed(&chkey(id))?
        .ok_or_else(|| refuse("unknown_channel", format!("there is no channel {id}")))?)
}

fn open(state: &mut ModuleState<'_, '_>, init: ChannelInit) -> ModuleResult<()> {
    if init.id.is_empty() || init.port.is_empty() || init.client.is_empty() {
        return Err(refuse("bad_channel", "a channel needs an id, a port and a client").into());
    }
    if state.get(&chkey(&init.id))?.is_some() {
        return Err(refuse("channel_exists", format!("channel {} exists", init.id)).into());
    }
    state.set_typed(
        &chkey(&init.id),
        &ChannelEnd {
            init,
            next_send: 1,
            next_recv: 1,
            state: ChannelState::Open,
        },
    );
    Ok(())
}

/// The full state key of a channel end (what a handshake proves).
pub fn end_key(id: &str) -> Vec<u8> {
    [module_prefix(ID), chkey(id)].concat()
}

/// A new end's id: `channel-h{n}`, `n` the number of ends here.
fn next_id(state: &ModuleState<'_, '_>) -> ModuleResult<String> {
    Ok(format!(
        "channel-h{}",
        state.scan(b"ch/", None, 100_000)?.len()
    ))
}

/// Ask `client` to check that the other chain holds channel end `end`.
fn verify_end(
    ctx: &mut ModuleCtx<'_, '_>,
    client: &str,
    end: &ChannelEnd,
    proven: Proven,
) -> ModuleResult<()> {
    let PacketProof::State(proof) = proven.proof else {
        return Err(refuse(
            "handshake_unsupported",
            "channels to an external chain are opened by a vote (connect-evm), not by a handshake",
        )
        .into());
    };
    ctx.call(
        CLIENT,
        &ClientMsg::VerifyState {
            client: client.into(),
            height: proven.height,
            key: end_key(&end.init.id),
            value: Some(borsh::to_vec(end).expect("channel ends encode")),
            proof,
        }
        .encode(),
    )?;
    Ok(())
}

fn handshake_mismatch(what: &str) -> ModuleFailure {
    refuse("handshake_mismatch", what.to_string()).into()
}

/// Ask the client to check channel value `kind` of packet `seq` on
/// `channel` (on the other chain) = `value`, or its absence, at the
/// proof's height. `port` is the other end's port (for an EVM chain, the
/// contract whose storage holds the value).
#[allow(clippy::too_many_arguments)]
fn verify(
    ctx: &mut ModuleCtx<'_, '_>,
    client: &str,
    port: &str,
    kind: &str,
    channel: &str,
    seq: u64,
    value: Option<Vec<u8>>,
    proven: Proven,
) -> ModuleResult<()> {
    let msg = match proven.proof {
        PacketProof::State(proof) => ClientMsg::VerifyState {
            client: client.into(),
            height: proven.height,
            key: [module_prefix(ID), rel(kind, channel, seq)].concat(),
            value,
            proof,
        },
        PacketProof::Eth(proof) => {
            let expected = value.map_or([0u8; 32], |v| tongtian_crypto::eth::keccak256(&v));
            let contract = crate::port::contract_port(port);
            if contract != Some(proof.address)
                || proof.slot.0 != evm_slot(kind, channel, seq)
                || proof.value.0 != expected
            {
                return Err(refuse(
                    "proof_invalid",
                    "the storage proof is of another contract, slot or value",
                )
                .into());
            }
            ClientMsg::VerifyEthStorage {
                client: client.into(),
                height: proven.height,
                proof,
            }
        }
    };
    ctx.call(CLIENT, &msg.encode())?;
    Ok(())
}

/// The channel a packet is on here, as its source (`at_source`) or
/// destination, checked against the packet's other end.
fn end_for(state: &ModuleState<'_, '_>, p: &Packet, at_source: bool) -> ModuleResult<ChannelEnd> {
    let (here, port, there, there_port) = if at_source {
        (
            &p.source_channel,
            &p.source_port,
            &p.dest_channel,
            &p.dest_port,
        )
    } else {
        (
            &p.dest_channel,
            &p.dest_port,
            &p.source_channel,
            &p.source_port,
        )
    };
    let ch = load(state, here)?;
    if &ch.init.port != port
        || &ch.init.counterparty_channel != there
        || &ch.init.counterparty_port != there_port
    {
        return Err(refuse(
            "wrong_channel",
            format!("channel {here} does not join {port} to {there}/{there_port}"),
        )
        .into());
    }
    not_open(&ch)?;
    Ok(ch)
}

fn not_open(ch: &ChannelEnd) -> ModuleResult<()> {
    if ch.state != ChannelState::Open {
        return Err(refuse(
            "channel_not_open",
            format!(
                "channel {} is in its handshake ({:?})",
                ch.init.id, ch.state
            ),
        )
        .into());
    }
    Ok(())
}

/// The `channel` module.
#[derive(Debug, Default)]
pub struct Channel;

impl Channel {
    fn send(
        ctx: &mut ModuleCtx<'_, '_>,
        port: String,
        channel: String,
        data: Vec<u8>,
        timeout_height: u64,
        timeout_ms: u64,
    ) -> ModuleResult<Vec<u8>> {
        if ctx.caller != crate::port::owner(&port) {
            return Err(refuse(
                "not_port_owner",
                format!("only the owner of port {port} sends on it"),
            )
            .into());
        }
        let mut ch = load(&ctx.state, &channel)?;
        if ch.init.port != port {
            return Err(refuse(
                "wrong_channel",
                format!("channel {channel} is not on port {port}"),
            )
            .into());
        }
        not_open(&ch)?;
        if timeout_height == 0 && timeout_ms == 0 {
            return Err(refuse("no_timeout", "a packet needs a timeout height or time").into());
        }
        let packet = Packet {
            sequence: ch.next_send,
            source_port: port,
            source_channel: channel.clone(),
            dest_port: ch.init.counterparty_port.clone(),
            dest_channel: ch.init.counterparty_channel.clone(),
            data,
            timeout_height,
            timeout_ms,
        };
        ch.next_send += 1;
        ctx.state.set_typed(&chkey(&channel), &ch);
        ctx.state.set(
            &rel("commit", &channel, packet.sequence),
            packet.commitment(),
        );
        ctx.state
            .set_typed(&rel("packet", &channel, packet.sequence), &packet);
        ctx.emit(
            "send_packet",
            vec![
                ("channel".into(), channel),
                ("sequence".into(), packet.sequence.to_string()),
                ("dest_channel".into(), packet.dest_channel.clone()),
                ("timeout_height".into(), timeout_height.to_string()),
                ("timeout_ms".into(), timeout_ms.to_string()),
            ],
        );
        Ok(packet.sequence.to_le_bytes().to_vec())
    }

    fn recv(ctx: &mut ModuleCtx<'_, '_>, p: Packet, proven: Proven) -> ModuleResult<Vec<u8>> {
        let mut ch = end_for(&ctx.state, &p, false)?;
        let receipt = rel("receipt", &p.dest_channel, p.sequence);
        if ctx.state.get(&receipt)?.is_some() {
            return Err(refuse(
                "packet_already_received",
                format!(
                    "packet {} on {} was received already",
                    p.sequence, p.dest_channel
                ),
            )
            .into());
        }
        if (p.timeout_height != 0 && ctx.block.height >= p.timeout_height)
            || (p.timeout_ms != 0 && ctx.block.timestamp_ms >= p.timeout_ms)
        {
            return Err(refuse(
                "packet_timed_out",
                format!(
                    "packet {} timed out here; its source refunds it",
                    p.sequence
                ),
            )
            .into());
        }
        if ch.init.ordered && p.sequence != ch.next_recv {
            return Err(refuse(
                "packet_out_of_order",
                format!(
                    "ordered channel {} takes packet {} next, not {}",
                    p.dest_channel, ch.next_recv, p.sequence
                ),
            )
            .into());
        }
        verify(
            ctx,
            &ch.init.client.clone(),
            &p.source_port,
            "commit",
            &p.source_channel,
            p.sequence,
            Some(p.commitment()),
            proven,
        )?;
        ctx.state.set(&receipt, vec![1]);
        if ch.init.ordered {
            ch.next_recv += 1;
            ctx.state.set_typed(&chkey(&p.dest_channel), &ch);
        }
        let ack = match crate::port::deliver(ctx, &p.dest_port, AppMsg::OnRecv(p.clone())) {
            Ok(out) if out == ACK_LATER && crate::port::contract_port(&p.dest_port).is_none() => {
                ctx.state
                    .set_typed(&rel("later", &p.dest_channel, p.sequence), &p);
                ctx.emit(
                    "recv_packet",
                    vec![
                        ("channel".into(), p.dest_channel.clone()),
                        ("sequence".into(), p.sequence.to_string()),
                        ("ack".into(), "later".into()),
                    ],
                );
                return Ok(Vec::new());
            }
            Ok(out) => Ack::Success(out),
            Err(tongtian_execution::module::ModuleFailure::Module(e)) => {
                Ack::Error(format!("{}: {}", e.code, e.message))
            }
            Err(e) => return Err(e),
        };
        Self::store_ack(ctx, &p.dest_channel, p.sequence, &ack, "recv_packet");
        Ok(borsh::to_vec(&ack).expect("acks encode"))
    }

    fn store_new(
        ctx: &mut ModuleCtx<'_, '_>,
        init: ChannelInit,
        state: ChannelState,
        event: &str,
    ) -> ModuleResult<()> {
        let id = init.id.clone();
        let end = ChannelEnd {
            init,
            next_send: 1,
            next_recv: 1,
            state,
        };
        ctx.state.set_typed(&chkey(&id), &end);
        ctx.emit(
            event,
            vec![
                ("channel".into(), id),
                ("port".into(), end.init.port.clone()),
                (
                    "counterparty_port".into(),
                    end.init.counterparty_port.clone(),
                ),
            ],
        );
        Ok(())
    }

    fn store_ack(ctx: &mut ModuleCtx<'_, '_>, channel: &str, seq: u64, ack: &Ack, event: &str) {
        ctx.state.set(
            &rel("ack", channel, seq),
            borsh::to_vec(ack).expect("acks encode"),
        );
        ctx.emit(
            event,
            vec![
                ("channel".into(), channel.to_string()),
                ("sequence".into(), seq.to_string()),
                (
                    "ack".into(),
                    match ack {
                        Ack::Success(_) => "success".into(),
                        Ack::Error(e) => format!("error: {e}"),
                    },
                ),
            ],
        );
    }

    fn write_ack(
        ctx: &mut ModuleCtx<'_, '_>,
        channel: String,
        seq: u64,
        ack: Ack,
    ) -> ModuleResult<Vec<u8>> {
        let key = rel("later", &channel, seq);
        let Some(p) = ctx.state.get_typed::<Packet>(&key)? else {
            return Err(refuse(
                "no_ack_pending",
                format!("packet {seq} on {channel} awaits no acknowledgement"),
            )
            .into());
        };
        if ctx.caller != crate::port::owner(&p.dest_port) {
            return Err(refuse(
                "not_port_owner",
                format!(
                    "only the owner of port {} acknowledges its packets",
                    p.dest_port
                ),
            )
            .into());
        }
        ctx.state.delete(&key);
        Self::store_ack(ctx, &channel, seq, &ack, "write_acknowledgement");
        Ok(Vec::new())
    }

    /// The stored packet at the source, which `p` must be.
    fn committed(ctx: &mut ModuleCtx<'_, '_>, p: &Packet) -> ModuleResult<Vec<u8>> {
        let key = rel("commit", &p.source_channel, p.sequence);
        match ctx.state.get(&key)? {
            Some(c) if c == p.commitment() => Ok(key),
            Some(_) => {
                Err(refuse("packet_mismatch", "the packet differs from the one sent").into())
            }
            None => Err(refuse(
                "unknown_packet",
                format!(
                    "no pending packet {} on {} (never sent, or acknowledged or timed out already)",
                    p.sequence, p.source_channel
                ),
            )
            .into()),
        }
    }

    fn finish(ctx: &mut ModuleCtx<'_, '_>, p: &Packet, key: &[u8]) {
        ctx.state.delete(key);
        ctx.state
            .delete(&rel("packet", &p.source_channel, p.sequence));
    }

    fn acknowledge(
        ctx: &mut ModuleCtx<'_, '_>,
        p: Packet,
        ack: Ack,
        proven: Proven,
    ) -> ModuleResult<Vec<u8>> {
        let ch = end_for(&ctx.state, &p, true)?;
        let key = Self::committed(ctx, &p)?;
        verify(
            ctx,
            &ch.init.client,
            &p.dest_port,
            "ack",
            &p.dest_channel,
            p.sequence,
            Some(borsh::to_vec(&ack).expect("acks encode")),
            proven,
        )?;
        Self::finish(ctx, &p, &key);
        crate::port::deliver(ctx, &p.source_port, AppMsg::OnAck(p.clone(), ack.clone()))?;
        ctx.emit(
            "acknowledge_packet",
            vec![
                ("channel".into(), p.source_channel.clone()),
                ("sequence".into(), p.sequence.to_string()),
                ("success".into(), matches!(ack, Ack::Success(_)).to_string()),
            ],
        );
        Ok(Vec::new())
    }

    fn timeout(ctx: &mut ModuleCtx<'_, '_>, p: Packet, proven: Proven) -> ModuleResult<Vec<u8>> {
        let ch = end_for(&ctx.state, &p, true)?;
        let key = Self::committed(ctx, &p)?;
        // The destination's verified height and time at the proof.
        let cs = ctx.query(
            CLIENT,
            &format!("clients/{}/consensus/{}", ch.init.client, proven.height),
            &BTreeMap::new(),
        )?;
        let dest_time = cs["timestamp_ms"].as_u64().unwrap_or(0);
        let passed = (p.timeout_height != 0 && proven.height >= p.timeout_height)
            || (p.timeout_ms != 0 && dest_time >= p.timeout_ms);
        if !passed {
            return Err(refuse(
                "timeout_not_reached",
                format!(
                    "the destination at height {} (time {dest_time}) has not reached the packet's timeout",
                    proven.height
                ),
            )
            .into());
        }
        verify(
            ctx,
            &ch.init.client,
            &p.dest_port,
            "receipt",
            &p.dest_channel,
            p.sequence,
            None,
            proven,
        )?;
        Self::finish(ctx, &p, &key);
        crate::port::deliver(ctx, &p.source_port, AppMsg::OnTimeout(p.clone()))?;
        ctx.emit(
            "timeout_packet",
            vec![
                ("channel".into(), p.source_channel.clone()),
                ("sequence".into(), p.sequence.to_string()),
            ],
        );
        Ok(Vec::new())
    }
}

impl Module for Channel {
    fn id(&self) -> &'static str {
        ID
    }

    fn genesis(
        &self,
        state: &mut ModuleState<'_, '_>,
        _spec: &ChainSpec,
        section: Option<&serde_json::Value>,
    ) -> ModuleResult<()> {
        let g: Genesis = match section {
            None => Genesis::default(),
            Some(s) => serde_json::from_value(s.clone())
                .map_err(|e| refuse("bad_genesis", format!("channel section: {e}")))?,
        };
        for c in g.channels {
            open(state, c)?;
        }
        Ok(())
    }

    fn fee_policy(
        &self,
        state: &mut ModuleState<'_, '_>,
        tx: &tongtian_types::CheckedTx,
        _msg: &[u8],
    ) -> tongtian_execution::module::FeePolicy {
        crate::relay_fee(state, tx)
    }

    fn execute(&self, ctx: &mut ModuleCtx<'_, '_>, msg: &[u8]) -> ModuleResult<Vec<u8>> {
        // A Solidity contract sends on its own port with an ABI call.
        if let Some(call) = crate::port::decode_send(msg) {
            let call = call?;
            let port = ctx.caller.to_string();
            let out = Self::send(
                ctx,
                port,
                call.channel,
                call.data.to_vec(),
                call.timeoutHeight,
                call.timeoutMs,
            )?;
            let seq = u64::from_le_bytes(out.try_into().expect("a sequence is 8 bytes"));
            return Ok(crate::port::encode_sequence(seq));
        }
        let msg: ChannelMsg =
            borsh::from_slice(msg).map_err(|e| ModuleError::bad_message(ID, e))?;
        match msg {
            ChannelMsg::Open(init) => {
                if !tongtian_execution::module::is_module_caller(&ctx.caller, &AUTHORITIES) {
                    return Err(refuse(
                        "governance_only",
                        "opening a channel is decided by a vote",
                    )
                    .into());
                }
                let id = init.id.clone();
                open(&mut ctx.state, init)?;
                ctx.emit("channel_opened", vec![("channel".into(), id)]);
                Ok(Vec::new())
            }
            ChannelMsg::Send {
                port,
                channel,
                data,
                timeout_height,
                timeout_ms,
            } => Self::send(ctx, port, channel, data, timeout_height, timeout_ms),
            ChannelMsg::Recv { packet, proven } => Self::recv(ctx, packet, proven),
            ChannelMsg::Acknowledge {
                packet,
                ack,
                proven,
            } => Self::acknowledge(ctx, packet, ack, proven),
            ChannelMsg::Timeout { packet, proven } => Self::timeout(ctx, packet, proven),
            ChannelMsg::WriteAck {
                channel,
                sequence,
                ack,
            } => Self::write_ack(ctx, channel, sequence, ack),
            ChannelMsg::OpenInit {
                port,
                client,
                counterparty_port,
                ordered,
                version,
            } => {
                if ctx.caller != crate::port::owner(&port) && !OPEN_PORTS.contains(&port.as_str()) {
                    return Err(refuse(
                        "not_port_owner",
                        format!("only the owner of port {port} proposes channels on it"),
                    )
                    .into());
                }
                ctx.query(CLIENT, &format!("clients/{client}"), &BTreeMap::new())?;
                let id = next_id(&ctx.state)?;
                let init = ChannelInit {
                    id: id.clone(),
                    port,
                    client,
                    counterparty_channel: String::new(),
                    counterparty_port,
                    ordered,
                    version,
                };
                Self::store_new(ctx, init, ChannelState::Init, "channel_open_init")?;
                Ok(id.into_bytes())
            }
            ChannelMsg::OpenTry {
                client,
                counterparty: a,
                proven,
            } => {
                if a.state != ChannelState::Init || !a.init.counterparty_channel.is_empty() {
                    return Err(handshake_mismatch("the other end is not a fresh Init"));
                }
                let taken = ctx
                    .state
                    .scan(b"ch/", None, 100_000)?
                    .into_iter()
                    .any(|(_, v)| {
                        borsh::from_slice::<ChannelEnd>(&v).is_ok_and(|e| {
                            e.init.client == client && e.init.counterparty_channel == a.init.id
                        })
                    });
                if taken {
                    return Err(refuse(
                        "channel_exists",
                        format!("a channel here answers {} already", a.init.id),
                    )
                    .into());
                }
                verify_end(ctx, &client, &a, proven)?;
                let id = next_id(&ctx.state)?;
                let init = ChannelInit {
                    id: id.clone(),
                    port: a.init.counterparty_port.clone(),
                    client,
                    counterparty_channel: a.init.id.clone(),
                    counterparty_port: a.init.port.clone(),
                    ordered: a.init.ordered,
                    version: a.init.version.clone(),
                };
                Self::store_new(ctx, init, ChannelState::TryOpen, "channel_open_try")?;
                Ok(id.into_bytes())
            }
            ChannelMsg::OpenAck {
                channel,
                counterparty: b,
                proven,
            } => {
                let mut here = load(&ctx.state, &channel)?;
                if here.state != ChannelState::Init {
                    return Err(handshake_mismatch("this end is not in Init"));
                }
                if b.state != ChannelState::TryOpen
                    || b.init.counterparty_channel != here.init.id
                    || b.init.counterparty_port != here.init.port
                    || b.init.port != here.init.counterparty_port
                    || b.init.ordered != here.init.ordered
                    || b.init.version != here.init.version
                {
                    return Err(handshake_mismatch(
                        "the other end does not answer this one as proposed",
                    ));
                }
                verify_end(ctx, &here.init.client.clone(), &b, proven)?;
                here.init.counterparty_channel = b.init.id;
                here.state = ChannelState::Open;
                ctx.state.set_typed(&chkey(&channel), &here);
                ctx.emit("channel_opened", vec![("channel".into(), channel)]);
                Ok(Vec::new())
            }
            ChannelMsg::OpenConfirm {
                channel,
                counterparty: a,
                proven,
            } => {
                let mut here = load(&ctx.state, &channel)?;
                if here.state != ChannelState::TryOpen {
                    return Err(handshake_mismatch("this end is not in TryOpen"));
                }
                if a.state != ChannelState::Open
                    || a.init.id != here.init.counterparty_channel
                    || a.init.counterparty_channel != here.init.id
                    || a.init.port != here.init.counterparty_port
                    || a.init.counterparty_port != here.init.port
                {
                    return Err(handshake_mismatch("the other end is not open to this one"));
                }
                verify_end(ctx, &here.init.client.clone(), &a, proven)?;
                here.state = ChannelState::Open;
                ctx.state.set_typed(&chkey(&channel), &here);
                ctx.emit("channel_opened", vec![("channel".into(), channel)]);
                Ok(Vec::new())
            }
        }
    }

    fn query(
        &self,
        state: &mut ModuleState<'_, '_>,
        path: &str,
        _params: &BTreeMap<String, String>,
    ) -> ModuleResult<serde_json::Value> {
        let decode_err =
            |e: std::io::Error| tongtian_execution::ExecutionError::Corrupt(e.to_string());
        if path == "channels" {
            let mut out = Vec::new();
            for (_, v) in state.scan(b"ch/", None, 10_000)? {
                let c: ChannelEnd = tongtian_types::codec::decode("channel", &v)
                    .map_err(|e| tongtian_execution::ExecutionError::Corrupt(e.to_string()))?;
                out.push(json(&c));
            }
            return Ok(serde_json::Value::Array(out));
        }
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            ["channels", id] => Ok(json(&load(state, id)?)),
            // Packets sent on a channel and not yet acknowledged or timed out.
            ["packets", id] => {
                let mut out = Vec::new();
                let prefix = format!("packet/{id}/");
                let mut after: Option<Vec<u8>> = None;
                loop {
                    let page = state.scan(prefix.as_bytes(), after.as_deref(), 256)?;
                    let Some((last, _)) = page.last() else { break };
                    after = Some(last.clone());
                    for (_, v) in &page {
                        let p: Packet = borsh::from_slice(v).map_err(decode_err)?;
                        out.push(json(&p));
                    }
                    if page.len() < 256 {
                        break;
                    }
                }
                Ok(serde_json::Value::Array(out))
            }
            // One pending packet (null when none).
            ["packet", id, seq] => {
                let seq: u64 = seq.parse().map_err(|_| refuse("bad_sequence", "a sequence is a number"))?;
                let p: Option<Packet> = state.get_typed(&rel("packet", id, seq))?;
                Ok(p.map_or(serde_json::Value::Null, |p| json(&p)))
            }
            ["receipts", id, seq] => {
                let seq: u64 = seq.parse().map_err(|_| refuse("bad_sequence", "a sequence is a number"))?;
                Ok(serde_json::json!(state.get(&rel("receipt", id, seq))?.is_some()))
            }
            ["acks", id, seq] => {
                let seq: u64 = seq.parse().map_err(|_| refuse("bad_sequence", "a sequence is a number"))?;
                match state.get(&rel("ack", id, seq))? {
                    Some(v) => {
                        let a: Ack = borsh::from_slice(&v).map_err(decode_err)?;
                        Ok(json(&a))
                    }
                    None => Ok(serde_json::Value::Null),
                }
            }
            _ => Err(refuse(
                "unknown_query",
                format!("channel answers channels, channels/ID, packets/ID, packet/ID/SEQ, receipts/ID/SEQ and acks/ID/SEQ, not {path}"),
            )
            .into()),
        }
    }
}

fn json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}
