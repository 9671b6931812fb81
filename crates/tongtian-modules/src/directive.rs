//! Directives: what a governance vote decides for one chain (a parameter,
//! its validator set, a contract upgrade or freeze), and the `directive`
//! module by which a sub-chain carries out the ones decided for it.
//!
//! On the main chain, `gov` applies a passed directive itself. For a
//! sub-chain, `gov` appends it to the chain's registry entry (numbered
//! from 1); the sub-chain cannot read the main chain, so its validators
//! carry it over: each validator's node, following the registry, sends
//! [`DirectiveMsg::Attest`] with the next number and the directive, signed
//! by its validator key on the sub-chain (fee-free for validators, refused
//! for anyone else). When more than two thirds of the sub-chain's current
//! validators attested the identical directive under the next number, the
//! module applies it (as `directive`, which `params`, `membership` and
//! `contracts` accept like `gov`) and moves to the next number. A
//! directive that fails to apply is skipped with a `directive_failed`
//! event, so one bad directive cannot wedge the chain.
//!
//! The trust this asks for is the sub-chain's own: the validators that
//! attest are those that could sign any block of it anyway. A validator
//! that attests something else, or a different number, changes nothing
//! unless a supermajority does the same. (Cross-chain light clients will
//! let the sub-chain check the main chain's decision itself.)

use crate::contracts::ContractsMsg;
use crate::params::ParamsMsg;
use crate::{decode_msg, to_json};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tongtian_execution::membership::{self, MembershipMsg};
use tongtian_execution::module::{
    FeePolicy, Module, ModuleCtx, ModuleError, ModuleResult, ModuleState,
};
use tongtian_types::{serde_hex, Action, Address, ChainSpec, CheckedTx, ValidatorSpec};

/// The module's id.
pub const ID: &str = "directive";

/// One change to one chain, decided by a governance vote.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "directive", rename_all = "kebab-case")]
pub enum Directive {
    /// Set a chain parameter (see [`crate::params`]).
    SetParam {
        /// Its name.
        name: String,
        /// Its value.
        value: u64,
    },
    /// Replace the validator set.
    SetValidators {
        /// The new set (keys under the chain's suite).
        validators: Vec<ValidatorSpec>,
    },
    /// Replace a contract's code (same VM; storage and balance stay).
    UpgradeContract {
        /// The contract.
        address: Address,
        /// Its new code (EVM runtime code or a WASM module).
        #[serde(with = "serde_hex")]
        code: Vec<u8>,
    },
    /// Freeze a contract (no transaction may call it).
    FreezeContract {
        /// The contract.
        address: Address,
    },
    /// Unfreeze it.
    UnfreezeContract {
        /// The contract.
        address: Address,
    },
    /// Lift a light client's freeze (after its misbehaviour was dealt with).
    UnfreezeClient {
        /// The client's id.
        client: String,
    },
    /// Restart an expired light client's trusting period.
    ReviveClient {
        /// The client's id.
        client: String,
    },
    /// Open one end of a channel opened by vote: first the client of the
    /// other chain it needs, unless the chain has it already (a client of
    /// that id following the same chain).
    OpenChannel {
        /// The client of the other chain (bootstrapped from the main
        /// chain's verified view of it).
        client: Box<tongtian_xchain::client::ClientInit>,
        /// The channel end.
        channel: tongtian_xchain::channel::ChannelInit,
    },
}

impl Directive {
    /// Carry it out on this chain, as the module `ctx` belongs to (`gov`
    /// on the main chain, `directive` on a sub-chain).
    pub fn apply(&self, ctx: &mut ModuleCtx<'_, '_>) -> ModuleResult<()> {
        match self {
            Directive::SetParam { name, value } => ctx.call(
                crate::params::ID,
                &ParamsMsg::Set {
                    name: name.clone(),
                    value: *value,
                }
                .encode(),
            )?,
            Directive::SetValidators { validators } => ctx.call(
                membership::ID,
                &borsh::to_vec(&MembershipMsg::Replace {
                    validators: validators.clone(),
                })
                .expect("membership messages encode"),
            )?,
            Directive::UpgradeContract { address, code } => ctx.call(
                crate::contracts::ID,
                &ContractsMsg::Upgrade {
                    address: *address,
                    code: code.clone(),
                }
                .encode(),
            )?,
            Directive::FreezeContract { address } => ctx.call(
                crate::contracts::ID,
                &ContractsMsg::Freeze { address: *address }.encode(),
            )?,
            Directive::UnfreezeContract { address } => ctx.call(
                crate::contracts::ID,
                &ContractsMsg::Unfreeze { address: *address }.encode(),
            )?,
            Directive::UnfreezeClient { client } => ctx.call(
                tongtian_xchain::client::ID,
                &tongtian_xchain::client::ClientMsg::Unfreeze {
                    client: client.clone(),
                }
                .encode(),
            )?,
            Directive::ReviveClient { client } => ctx.call(
                tongtian_xchain::client::ID,
                &tongtian_xchain::client::ClientMsg::Revive {
                    client: client.clone(),
                }
                .encode(),
            )?,
            Directive::OpenChannel { client, channel } => {
                open_channel_end(ctx, client, channel)?;
                Vec::new()
            }
        };
        Ok(())
    }

    /// Checks that need no chain state but the chain's cap on transaction
    /// size (made when it is proposed).
    pub fn check(&self, max_tx_bytes_cap: u64) -> Result<(), ModuleError> {
        match self {
            Directive::SetParam { name, value } => {
                crate::params::check(name, *value, max_tx_bytes_cap)
            }
            Directive::SetValidators { validators } if validators.is_empty() => {
                Err(ModuleError::new(
                    "empty_validator_set",
                    "a chain needs at least one validator",
                ))
            }
            Directive::UpgradeContract { code, .. } if code.is_empty() => Err(ModuleError::new(
                "bad_code",
                "an upgrade needs the new code",
            )),
            Directive::OpenChannel { client, .. }
                if matches!(
                    client.model,
                    tongtian_xchain::client::TrustModel::Attested { threshold }
                        if threshold == 0 || threshold as usize > client.validators.validators.len()
                ) =>
            {
                Err(ModuleError::new(
                    "bad_threshold",
                    "an attested client needs between 1 and all of its attesters to sign",
                ))
            }
            Directive::OpenChannel { client, channel }
                if channel.client != client.id
                    || channel.id.is_empty()
                    || channel.port.is_empty() =>
            {
                Err(ModuleError::new(
                    "bad_channel",
                    "a channel needs an id and a port, and runs through the client given with it",
                ))
            }
            _ => Ok(()),
        }
    }

    /// The module the directive needs on the chain it is for.
    pub fn module(&self) -> &'static str {
        match self {
            Directive::SetParam { .. } => crate::params::ID,
            Directive::SetValidators { .. } => membership::ID,
            Directive::UnfreezeClient { .. } | Directive::ReviveClient { .. } => {
                tongtian_xchain::client::ID
            }
            Directive::OpenChannel { .. } => tongtian_xchain::channel::ID,
            _ => crate::contracts::ID,
        }
    }

    fn hash(&self) -> [u8; 32] {
        tongtian_crypto::eth::keccak256(&borsh::to_vec(self).expect("directives encode"))
    }
}

/// Messages of the `directive` module.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum DirectiveMsg {
    /// A validator attests that the main chain decided `directive` as
    /// this chain's directive number `seq`.
    Attest {
        /// Its number in the chain's registry entry (from 1).
        seq: u64,
        /// The directive.
        directive: Directive,
    },
}

impl DirectiveMsg {
    /// As a transaction action.
    pub fn action(&self) -> Action {
        Action::Module {
            module: ID.into(),
            msg: borsh::to_vec(self).expect("directive messages encode"),
        }
    }
}

const NEXT: &[u8] = b"next";

fn att_key(seq: u64, hash: &[u8; 32]) -> Vec<u8> {
    let mut k = format!("att/{seq:020}/").into_bytes();
    k.extend_from_slice(hash);
    k
}

fn next(state: &ModuleState<'_, '_>) -> ModuleResult<u64> {
    Ok(state.get_typed(NEXT)?.unwrap_or(1))
}

/// The addresses of the current validators, by validator name.
fn validator_addresses(
    state: &ModuleState<'_, '_>,
    suite: tongtian_crypto::SuiteId,
) -> ModuleResult<Vec<Address>> {
    Ok(state
        .validator_set()?
        .validators
        .iter()
        .map(|v| Address::from_public_key(suite, &v.public_key))
        .collect())
}

/// The `directive` module.
#[derive(Debug, Default)]
pub struct DirectiveModule;

impl Module for DirectiveModule {
    fn id(&self) -> &'static str {
        ID
    }

    fn genesis(
        &self,
        state: &mut ModuleState<'_, '_>,
        _spec: &ChainSpec,
        section: Option<&serde_json::Value>,
    ) -> ModuleResult<()> {
        tongtian_execution::module::expect_empty_section(
            section,
            "directive starts at directive 1: its section is {}",
        )?;
        state.set_typed(NEXT, &1u64);
        Ok(())
    }

    fn fee_policy(
        &self,
        _state: &mut ModuleState<'_, '_>,
        _tx: &CheckedTx,
        _msg: &[u8],
    ) -> FeePolicy {
        // Only validators get this far (see `authorize`).
        FeePolicy::Free
    }

    fn authorize(
        &self,
        state: &mut ModuleState<'_, '_>,
        tx: &CheckedTx,
        _fee: FeePolicy,
    ) -> ModuleResult<()> {
        let Action::Module { module, .. } = &tx.tx.tx.action else {
            return Ok(());
        };
        if module != ID {
            return Ok(());
        }
        let set = state.validator_set()?;
        if set
            .validators
            .iter()
            .any(|v| v.public_key == tx.tx.public_key)
        {
            Ok(())
        } else {
            Err(ModuleError::new(
                "not_a_validator",
                format!(
                    "{} is not a validator of this chain: only validators attest directives",
                    tx.sender
                ),
            )
            .into())
        }
    }

    fn execute(&self, ctx: &mut ModuleCtx<'_, '_>, msg: &[u8]) -> ModuleResult<Vec<u8>> {
        let DirectiveMsg::Attest { seq, directive } = decode_msg(ID, msg)?;
        let validators = validator_addresses(&ctx.state, ctx.chain.suite)?;
        if !validators.contains(&ctx.caller) {
            return Err(ModuleError::new(
                "not_a_validator",
                format!("{} is not a validator of this chain", ctx.caller),
            )
            .into());
        }
        let expected = next(&ctx.state)?;
        if seq < expected {
            return Err(ModuleError::new(
                "directive_applied",
                format!("directive {seq} is decided already (next is {expected})"),
            )
            .into());
        }
        if seq > expected {
            return Err(ModuleError::new(
                "directive_out_of_order",
                format!("directive {seq} before {expected}: they apply in order"),
            )
            .into());
        }
        // One attestation per validator and number, whatever it says: a
        // validator cannot count toward two versions of one directive.
        let mine = [format!("by/{seq:020}/").as_bytes(), &ctx.caller.0].concat();
        if ctx.state.get(&mine)?.is_some() {
            return Err(ModuleError::new(
                "already_attested",
                format!("{} attested directive {seq} already", ctx.caller),
            )
            .into());
        }
        ctx.state.set(&mine, vec![1]);
        let key = att_key(seq, &directive.hash());
        let mut by: Vec<Address> = ctx.state.get_typed(&key)?.unwrap_or_default();
        by.push(ctx.caller);
        // Only current validators count (the set may have changed since).
        let count = by.iter().filter(|a| validators.contains(a)).count();
        let needed = validators.len() * 2 / 3 + 1;
        ctx.emit(
            "directive_attested",
            vec![
                ("seq".into(), seq.to_string()),
                ("directive".into(), directive_name(&directive).into()),
                ("by".into(), ctx.caller.to_string()),
                ("count".into(), count.to_string()),
                ("needed".into(), needed.to_string()),
            ],
        );
        if count < needed {
            ctx.state.set_typed(&key, &by);
            return Ok(Vec::new());
        }
        // Decided: forget every attestation of this number, apply, move on.
        for prefix in [format!("att/{seq:020}/"), format!("by/{seq:020}/")] {
            for (k, _) in ctx.state.scan(prefix.as_bytes(), None, 4096)? {
                ctx.state.delete(&k);
            }
        }
        ctx.state.set_typed(NEXT, &(seq + 1));
        let attrs = vec![
            ("seq".into(), seq.to_string()),
            ("directive".into(), directive_name(&directive).into()),
        ];
        match directive.apply(ctx) {
            Ok(()) => ctx.emit("directive_applied", attrs),
            Err(e) => {
                let mut attrs = attrs;
                attrs.push(("error".into(), e.to_string()));
                ctx.emit("directive_failed", attrs);
            }
        }
        Ok(Vec::new())
    }

    fn query(
        &self,
        state: &mut ModuleState<'_, '_>,
        path: &str,
        _params: &BTreeMap<String, String>,
    ) -> ModuleResult<serde_json::Value> {
        if path == "next" {
            return Ok(to_json(&next(state)?));
        }
        if let Some(rest) = path.strip_prefix("attested/") {
            let parsed = rest
                .split_once('/')
                .and_then(|(seq, a)| Some((seq.parse::<u64>().ok()?, a.parse::<Address>().ok()?)));
            let Some((seq, a)) = parsed else {
                return Err(ModuleError::new(
                    "bad_query",
                    "attested/SEQ/ADDRESS: a directive number and a validator address",
                )
                .into());
            };
            let mine = [format!("by/{seq:020}/").as_bytes(), &a.0].concat();
            return Ok(serde_json::json!(state.get(&mine)?.is_some()));
        }
        Err(ModuleError::new(
            "unknown_query",
            format!(
                "directive answers `next` (the number it applies next) and attested/SEQ/ADDRESS, not {path}"
            ),
        )
        .into())
    }
}

/// A directive's kind name (as proposals call it).
pub fn directive_name(d: &Directive) -> &'static str {
    match d {
        Directive::SetParam { .. } => "set-param",
        Directive::SetValidators { .. } => "set-validators",
        Directive::UpgradeContract { .. } => "upgrade-contract",
        Directive::FreezeContract { .. } => "freeze-contract",
        Directive::UnfreezeContract { .. } => "unfreeze-contract",
        Directive::UnfreezeClient { .. } => "unfreeze-client",
        Directive::ReviveClient { .. } => "revive-client",
        Directive::OpenChannel { .. } => "open-channel",
    }
}

/// Open a channel end on this chain (the module `ctx` belongs to is an
/// authority of `client` and `channel`): create the client it runs
/// through unless one of that id already follows the same chain.
pub fn open_channel_end(
    ctx: &mut ModuleCtx<'_, '_>,
    client: &tongtian_xchain::client::ClientInit,
    channel: &tongtian_xchain::channel::ChannelInit,
) -> ModuleResult<()> {
    use tongtian_xchain::{channel as ch, client as cl};
    match ctx.query(cl::ID, &format!("clients/{}", client.id), &BTreeMap::new()) {
        Ok(existing) => {
            if existing["chain_id"].as_u64() != Some(client.chain_id) {
                return Err(ModuleError::new(
                    "client_exists",
                    format!(
                        "client {} here follows chain {}, not {}",
                        client.id, existing["chain_id"], client.chain_id
                    ),
                )
                .into());
            }
        }
        Err(tongtian_execution::module::ModuleFailure::Module(e)) if e.code == "unknown_client" => {
            ctx.call(cl::ID, &cl::ClientMsg::Create(client.clone()).encode())?;
        }
        Err(e) => return Err(e),
    }
    ctx.call(ch::ID, &ch::ChannelMsg::Open(channel.clone()).encode())?;
    Ok(())
}
