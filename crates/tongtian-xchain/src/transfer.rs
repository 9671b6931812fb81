//! The `transfer` module: fungible tokens across channels (ICS-20's rules).
//!
//! A token's denomination records its path. Sending a token this chain is
//! the source of (its native token, denomination `native`, or a voucher
//! that did not arrive over the sending channel) **escrows** it here; the
//! destination mints a voucher `transfer/{its channel}/{denom}`. Sending a
//! voucher back over the channel it came by **burns** it; the destination,
//! seeing its own prefix, releases the escrow. An error acknowledgement or
//! a timeout refunds the sender: the escrow comes back, or the burned
//! voucher is minted again.
//!
//! Invariant (tests check it): for every voucher denomination, its supply
//! on the chain holding it equals what the source chain holds in escrow
//! for that channel and denomination, once no packet is in flight.
//!
//! **Forwarding** (how sub-chains reach each other through the hub): a
//! packet may name a [`Forward`], a second hop from its destination. The
//! destination then credits the tokens to this module's own account, sends
//! them on over the forward channel to the final receiver, and holds back
//! the first packet's acknowledgement ([`crate::channel::ACK_LATER`]) until
//! the second hop ends. A second hop acknowledged with success acknowledges
//! the first; one refused or timed out is refunded to the hub's account,
//! the first hop's credit there is undone (the voucher burned, or the
//! released escrow taken back), and the first packet gets an error ack, so
//! the original sender is refunded at the source. A failed second send (an
//! unknown channel, say) is an error ack at once. Either way the tokens end
//! with the final receiver or back with the sender, never stuck halfway.

use crate::channel::{Ack, AppMsg, ChannelMsg, Packet, ACK_LATER, ID as CHANNEL};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tongtian_execution::module::{
    module_address, Module, ModuleCtx, ModuleError, ModuleResult, ModuleState,
};
use tongtian_types::{Address, ChainSpec};

/// The module's id, also its port.
pub const ID: &str = "transfer";

/// The chain's own token.
pub const NATIVE: &str = "native";

/// What a transfer packet carries.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct TokenPacket {
    /// The denomination as the sender knows it.
    pub denom: String,
    /// How much.
    pub amount: u128,
    /// Who sent it.
    pub sender: Address,
    /// Who receives it on the destination (with a forward: on the final one).
    pub receiver: Address,
    /// A second hop from the destination, if any.
    pub forward: Option<Forward>,
}

/// A second hop: where the destination sends the tokens on.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Forward {
    /// The channel on the first destination (the hub) to send on.
    pub channel: String,
    /// Timeout height of the second hop on the final chain (0: none).
    pub timeout_height: u64,
    /// Timeout time of the second hop on the final chain, ms (0: the hub's
    /// block time plus [`FORWARD_TIMEOUT_MS`]).
    pub timeout_ms: u64,
}

/// A second hop's timeout when its sender named none.
pub const FORWARD_TIMEOUT_MS: u64 = 10 * 60 * 1000;

/// What the hub keeps about a second hop it sent: the first packet, whose
/// ack waits for it, and the denomination the hub credited itself.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
struct Forwarded {
    first: Packet,
    local: String,
}

/// Messages of the `transfer` module.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum TransferMsg {
    /// Send tokens over a channel (from their holder).
    Transfer {
        /// The channel here.
        channel: String,
        /// The receiver on the other chain.
        receiver: Address,
        /// How much.
        amount: u128,
        /// Which token (`native` or a voucher's denomination).
        denom: String,
        /// Timeout height on the destination (0: none).
        timeout_height: u64,
        /// Timeout time on the destination, ms (0: none).
        timeout_ms: u64,
        /// A second hop from the destination (sub-chain to sub-chain
        /// through the hub), if any.
        forward: Option<Forward>,
    },
}

impl TransferMsg {
    /// As a transaction action.
    pub fn action(&self) -> tongtian_types::Action {
        tongtian_types::Action::Module {
            module: ID.into(),
            msg: borsh::to_vec(self).expect("transfer messages encode"),
        }
    }
}

fn refuse(code: &str, message: impl Into<String>) -> ModuleError {
    ModuleError::new(code, message)
}

fn bal_key(a: &Address, denom: &str) -> Vec<u8> {
    format!("b/{a}/{denom}").into_bytes()
}

fn supply_key(denom: &str) -> Vec<u8> {
    format!("supply/{denom}").into_bytes()
}

fn escrow_key(channel: &str, denom: &str) -> Vec<u8> {
    format!("escrow/{channel}/{denom}").into_bytes()
}

fn forwarded_key(channel: &str, seq: u64) -> Vec<u8> {
    format!("fwd/{channel}/{seq:020}").into_bytes()
}

fn get(state: &ModuleState<'_, '_>, key: &[u8]) -> ModuleResult<u128> {
    Ok(state.get_typed(key)?.unwrap_or(0))
}

fn add(state: &mut ModuleState<'_, '_>, key: &[u8], delta: u128) -> ModuleResult<()> {
    let v = get(state, key)?;
    state.set_typed(key, &v.saturating_add(delta));
    Ok(())
}

fn sub(state: &mut ModuleState<'_, '_>, key: &[u8], delta: u128, what: &str) -> ModuleResult<()> {
    let v = get(state, key)?;
    if v < delta {
        return Err(refuse(
            "insufficient_funds",
            format!("{what}: {v} held, {delta} needed"),
        )
        .into());
    }
    if v == delta {
        state.delete(key);
    } else {
        state.set_typed(key, &(v - delta));
    }
    Ok(())
}

/// The prefix a voucher that came over `channel` here carries.
fn prefix(port: &str, channel: &str) -> String {
    format!("{port}/{channel}/")
}

/// The `transfer` module.
#[derive(Debug, Default)]
pub struct Transfer;

impl Transfer {
    /// Take `amount` of `denom` from `from` into escrow for `channel`
    /// (`from` may be this module itself, which holds its escrow already).
    fn escrow(
        ctx: &mut ModuleCtx<'_, '_>,
        channel: &str,
        denom: &str,
        amount: u128,
        from: Address,
    ) -> ModuleResult<()> {
        let me = ctx.address();
        if from != me {
            if denom == NATIVE {
                ctx.collect(amount)?;
            } else {
                sub(&mut ctx.state, &bal_key(&from, denom), amount, denom)?;
                add(&mut ctx.state, &bal_key(&me, denom), amount)?;
            }
        }
        add(&mut ctx.state, &escrow_key(channel, denom), amount)
    }

    /// Release `amount` of `denom` from the escrow of `channel` to `to`
    /// (to this module itself: it keeps holding it, out of escrow).
    fn release(
        ctx: &mut ModuleCtx<'_, '_>,
        channel: &str,
        denom: &str,
        amount: u128,
        to: Address,
    ) -> ModuleResult<()> {
        sub(
            &mut ctx.state,
            &escrow_key(channel, denom),
            amount,
            "escrow",
        )?;
        let me = ctx.address();
        if to == me {
            Ok(())
        } else if denom == NATIVE {
            ctx.pay_out(to, amount)
        } else {
            sub(&mut ctx.state, &bal_key(&me, denom), amount, denom)?;
            add(&mut ctx.state, &bal_key(&to, denom), amount)
        }
    }

    fn mint(
        ctx: &mut ModuleCtx<'_, '_>,
        denom: &str,
        amount: u128,
        to: Address,
    ) -> ModuleResult<()> {
        add(&mut ctx.state, &bal_key(&to, denom), amount)?;
        add(&mut ctx.state, &supply_key(denom), amount)
    }

    fn burn(
        ctx: &mut ModuleCtx<'_, '_>,
        denom: &str,
        amount: u128,
        from: Address,
    ) -> ModuleResult<()> {
        sub(&mut ctx.state, &bal_key(&from, denom), amount, denom)?;
        sub(&mut ctx.state, &supply_key(denom), amount, "supply")
    }

    /// Take `amount` of `denom` from `sender` (burned when it goes back the
    /// way it came, else escrowed) and send it over `channel`: the
    /// packet's sequence, as the channel answers it.
    #[allow(clippy::too_many_arguments)]
    fn send(
        ctx: &mut ModuleCtx<'_, '_>,
        channel: String,
        sender: Address,
        receiver: Address,
        amount: u128,
        denom: String,
        timeout_height: u64,
        timeout_ms: u64,
        forward: Option<Forward>,
    ) -> ModuleResult<Vec<u8>> {
        if amount == 0 {
            return Err(refuse("zero_amount", "a transfer moves a positive amount").into());
        }
        if denom.starts_with(&prefix(ID, &channel)) {
            // A voucher going back the way it came: burn it.
            Self::burn(ctx, &denom, amount, sender)?;
        } else {
            Self::escrow(ctx, &channel, &denom, amount, sender)?;
        }
        let data = borsh::to_vec(&TokenPacket {
            denom: denom.clone(),
            amount,
            sender,
            receiver,
            forward,
        })
        .expect("packets encode");
        let seq = ctx.call(
            CHANNEL,
            &ChannelMsg::Send {
                port: ID.into(),
                channel: channel.clone(),
                data,
                timeout_height,
                timeout_ms,
            }
            .encode(),
        )?;
        ctx.emit(
            "transfer_sent",
            vec![
                ("channel".into(), channel),
                ("denom".into(), denom),
                ("amount".into(), amount.to_string()),
                ("sender".into(), sender.to_string()),
                ("receiver".into(), receiver.to_string()),
            ],
        );
        Ok(seq)
    }

    fn decode(p: &Packet) -> ModuleResult<TokenPacket> {
        Ok(borsh::from_slice(&p.data)
            .map_err(|e| refuse("bad_packet", format!("transfer packet: {e}")))?)
    }

    fn refund(ctx: &mut ModuleCtx<'_, '_>, p: &Packet) -> ModuleResult<()> {
        let data = Self::decode(p)?;
        if data
            .denom
            .starts_with(&prefix(&p.source_port, &p.source_channel))
        {
            Self::mint(ctx, &data.denom, data.amount, data.sender)
        } else {
            Self::release(
                ctx,
                &p.source_channel,
                &data.denom,
                data.amount,
                data.sender,
            )
        }
    }

    /// Credit what packet `p` carries here to `to`: the denomination it
    /// has here.
    fn credit(
        ctx: &mut ModuleCtx<'_, '_>,
        p: &Packet,
        data: &TokenPacket,
        to: Address,
    ) -> ModuleResult<String> {
        let back = prefix(&p.source_port, &p.source_channel);
        if let Some(local) = data.denom.strip_prefix(&back) {
            // Coming home: release what was escrowed when it left.
            Self::release(ctx, &p.dest_channel, local, data.amount, to)?;
            Ok(local.to_string())
        } else {
            let voucher = format!("{}{}", prefix(&p.dest_port, &p.dest_channel), data.denom);
            Self::mint(ctx, &voucher, data.amount, to)?;
            Ok(voucher)
        }
    }

    /// Undo [`Self::credit`] of `p` to this module (its second hop failed).
    fn uncredit(ctx: &mut ModuleCtx<'_, '_>, p: &Packet, local: &str) -> ModuleResult<()> {
        let data = Self::decode(p)?;
        let me = ctx.address();
        if data
            .denom
            .starts_with(&prefix(&p.source_port, &p.source_channel))
        {
            Self::escrow(ctx, &p.dest_channel, local, data.amount, me)
        } else {
            Self::burn(ctx, local, data.amount, me)
        }
    }

    fn on_recv(ctx: &mut ModuleCtx<'_, '_>, p: &Packet) -> ModuleResult<Vec<u8>> {
        let data = Self::decode(p)?;
        if data.amount == 0 {
            return Err(refuse("zero_amount", "a transfer moves a positive amount").into());
        }
        let Some(fwd) = data.forward.clone() else {
            let denom = Self::credit(ctx, p, &data, data.receiver)?;
            ctx.emit(
                "transfer_received",
                vec![
                    ("denom".into(), denom.clone()),
                    ("amount".into(), data.amount.to_string()),
                    ("receiver".into(), data.receiver.to_string()),
                ],
            );
            return Ok(denom.into_bytes());
        };
        // A hop through here: the module holds the tokens while they go on.
        let me = ctx.address();
        let local = Self::credit(ctx, p, &data, me)?;
        let timeout_ms = if fwd.timeout_height == 0 && fwd.timeout_ms == 0 {
            ctx.block.timestamp_ms + FORWARD_TIMEOUT_MS
        } else {
            fwd.timeout_ms
        };
        let seq = Self::send(
            ctx,
            fwd.channel.clone(),
            me,
            data.receiver,
            data.amount,
            local.clone(),
            fwd.timeout_height,
            timeout_ms,
            None,
        )?;
        let seq = u64::from_le_bytes(seq.try_into().expect("a sequence is 8 bytes"));
        ctx.state.set_typed(
            &forwarded_key(&fwd.channel, seq),
            &Forwarded {
                first: p.clone(),
                local: local.clone(),
            },
        );
        ctx.emit(
            "transfer_forwarded",
            vec![
                ("denom".into(), local),
                ("amount".into(), data.amount.to_string()),
                ("channel".into(), fwd.channel),
                ("sequence".into(), seq.to_string()),
                ("receiver".into(), data.receiver.to_string()),
            ],
        );
        Ok(ACK_LATER.to_vec())
    }

    /// A packet sent from here ended: with `ack` (`None`: it timed out).
    fn on_settled(ctx: &mut ModuleCtx<'_, '_>, p: &Packet, ack: Option<&Ack>) -> ModuleResult<()> {
        let ok = matches!(ack, Some(Ack::Success(_)));
        if !ok {
            Self::refund(ctx, p)?;
        }
        let key = forwarded_key(&p.source_channel, p.sequence);
        let Some(f) = ctx.state.get_typed::<Forwarded>(&key)? else {
            return Ok(());
        };
        ctx.state.delete(&key);
        // The second hop of a forward ended: so does the first.
        let first_ack = match ack {
            Some(Ack::Success(out)) => Ack::Success(out.clone()),
            other => {
                Self::uncredit(ctx, &f.first, &f.local)?;
                Ack::Error(match other {
                    Some(Ack::Error(e)) => {
                        format!("forward_failed: the second hop was refused: {e}")
                    }
                    _ => "forward_failed: the second hop timed out".into(),
                })
            }
        };
        ctx.call(
            CHANNEL,
            &ChannelMsg::WriteAck {
                channel: f.first.dest_channel.clone(),
                sequence: f.first.sequence,
                ack: first_ack,
            }
            .encode(),
        )?;
        Ok(())
    }
}

impl Module for Transfer {
    fn id(&self) -> &'static str {
        ID
    }

    fn genesis(
        &self,
        _state: &mut ModuleState<'_, '_>,
        _spec: &ChainSpec,
        section: Option<&serde_json::Value>,
    ) -> ModuleResult<()> {
        tongtian_execution::module::expect_empty_section(
            section,
            "transfer starts empty: its section is {}",
        )
    }

    fn execute(&self, ctx: &mut ModuleCtx<'_, '_>, msg: &[u8]) -> ModuleResult<Vec<u8>> {
        if ctx.caller == module_address(CHANNEL) {
            let m: AppMsg = borsh::from_slice(msg).map_err(|e| ModuleError::bad_message(ID, e))?;
            return match m {
                AppMsg::OnRecv(p) => Self::on_recv(ctx, &p),
                AppMsg::OnAck(p, ack) => Self::on_settled(ctx, &p, Some(&ack)).map(|()| Vec::new()),
                AppMsg::OnTimeout(p) => Self::on_settled(ctx, &p, None).map(|()| Vec::new()),
            };
        }
        let TransferMsg::Transfer {
            channel,
            receiver,
            amount,
            denom,
            timeout_height,
            timeout_ms,
            forward,
        } = borsh::from_slice(msg).map_err(|e| ModuleError::bad_message(ID, e))?;
        let sender = ctx.caller;
        Self::send(
            ctx,
            channel,
            sender,
            receiver,
            amount,
            denom,
            timeout_height,
            timeout_ms,
            forward,
        )
    }

    fn query(
        &self,
        state: &mut ModuleState<'_, '_>,
        path: &str,
        _params: &BTreeMap<String, String>,
    ) -> ModuleResult<serde_json::Value> {
        let parts: Vec<&str> = path.splitn(3, '/').collect();
        match parts.as_slice() {
            ["balances", a] => {
                let a: Address = a
                    .parse()
                    .map_err(|_| refuse("bad_address", format!("{a:?} is not an address")))?;
                let mut out = vec![serde_json::json!({
                    "denom": NATIVE,
                    "amount": state.account(&a)?.balance.to_string(),
                })];
                let p = format!("b/{a}/");
                for (k, v) in state.scan(p.as_bytes(), None, 10_000)? {
                    let amount: u128 = tongtian_types::codec::decode("balance", &v)
                        .map_err(|e| tongtian_execution::ExecutionError::Corrupt(e.to_string()))?;
                    let denom = String::from_utf8_lossy(&k[p.len()..]).into_owned();
                    out.push(serde_json::json!({ "denom": denom, "amount": amount.to_string() }));
                }
                Ok(serde_json::Value::Array(out))
            }
            ["supply", denom] | ["supply", denom, _] => {
                let denom = path.strip_prefix("supply/").unwrap_or(denom);
                Ok(serde_json::json!(get(state, &supply_key(denom))?.to_string()))
            }
            ["escrow", channel, denom] => Ok(serde_json::json!(get(
                state,
                &escrow_key(channel, denom)
            )?
            .to_string())),
            _ => Err(refuse(
                "unknown_query",
                format!("transfer answers balances/ADDRESS, supply/DENOM and escrow/CHANNEL/DENOM, not {path}"),
            )
            .into()),
        }
    }
}
