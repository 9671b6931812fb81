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

use crate::channel::{ChannelMsg, Packet, ID as CHANNEL};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tongtian_execution::module::{Module, ModuleCtx, ModuleError, ModuleResult, ModuleState};
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
    /// Who receives it on the destination.
    pub receiver: Address,
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
    /// Take `amount` of `denom` from `from` into escrow for `channel`.
    fn escrow(
        ctx: &mut ModuleCtx<'_, '_>,
        channel: &str,
        denom: &str,
        amount: u128,
    ) -> ModuleResult<()> {
        if denom == NATIVE {
            ctx.collect(amount)?;
        } else {
            let from = ctx.caller;
            let me = ctx.address();
            sub(&mut ctx.state, &bal_key(&from, denom), amount, denom)?;
            add(&mut ctx.state, &bal_key(&me, denom), amount)?;
        }
        add(&mut ctx.state, &escrow_key(channel, denom), amount)
    }

    /// Release `amount` of `denom` from the escrow of `channel` to `to`.
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
        if denom == NATIVE {
            ctx.pay_out(to, amount)
        } else {
            let me = ctx.address();
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

    fn refund(ctx: &mut ModuleCtx<'_, '_>, p: &Packet) -> ModuleResult<()> {
        let data: TokenPacket = borsh::from_slice(&p.data)
            .map_err(|e| refuse("bad_packet", format!("transfer packet: {e}")))?;
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

    fn on_recv(ctx: &mut ModuleCtx<'_, '_>, p: &Packet) -> ModuleResult<Vec<u8>> {
        let data: TokenPacket = borsh::from_slice(&p.data)
            .map_err(|e| refuse("bad_packet", format!("transfer packet: {e}")))?;
        if data.amount == 0 {
            return Err(refuse("zero_amount", "a transfer moves a positive amount").into());
        }
        let back = prefix(&p.source_port, &p.source_channel);
        let denom = if let Some(local) = data.denom.strip_prefix(&back) {
            // Coming home: release what was escrowed when it left.
            Self::release(ctx, &p.dest_channel, local, data.amount, data.receiver)?;
            local.to_string()
        } else {
            let voucher = format!("{}{}", prefix(&p.dest_port, &p.dest_channel), data.denom);
            Self::mint(ctx, &voucher, data.amount, data.receiver)?;
            voucher
        };
        ctx.emit(
            "transfer_received",
            vec![
                ("denom".into(), denom.clone()),
                ("amount".into(), data.amount.to_string()),
                ("receiver".into(), data.receiver.to_string()),
            ],
        );
        Ok(denom.into_bytes())
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
        if let Some(answer) =
            crate::channel::app_callback(ctx, ID, msg, Self::on_recv, Self::refund)
        {
            return answer;
        }
        let TransferMsg::Transfer {
            channel,
            receiver,
            amount,
            denom,
            timeout_height,
            timeout_ms,
        } = borsh::from_slice(msg).map_err(|e| ModuleError::bad_message(ID, e))?;
        if amount == 0 {
            return Err(refuse("zero_amount", "a transfer moves a positive amount").into());
        }
        let sender = ctx.caller;
        if denom.starts_with(&prefix(ID, &channel)) {
            // A voucher going back the way it came: burn it.
            Self::burn(ctx, &denom, amount, sender)?;
        } else {
            Self::escrow(ctx, &channel, &denom, amount)?;
        }
        let data = borsh::to_vec(&TokenPacket {
            denom: denom.clone(),
            amount,
            sender,
            receiver,
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
