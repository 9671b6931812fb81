//! The `membership` module: the chain's validator set.
//!
//! Genesis writes the spec's validators as version 0. A
//! [`MembershipMsg::SetValidators`] replaces the set when more than two
//! thirds of the current validators approved it, each signing
//! [`ValidatorSet::change_bytes`] for the current version, so a stale or
//! replayed approval never counts. [`MembershipMsg::Replace`] replaces it
//! without approvals, from one of the [`AUTHORITIES`] only (the main
//! chain's `gov` after a vote, a sub-chain's `directive` after its
//! validators attested the vote). Consensus engines read the set from
//! state after every block ([`read_validator_set`]).

use crate::module::{Module, ModuleCtx, ModuleError, ModuleResult, ModuleState};
use crate::{ExecutionError, StateOverlay};
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::BTreeMap;
use tongtian_crypto::suite;
use tongtian_types::codec::encode;
use tongtian_types::{CertificateSignature, ChainSpec, ValidatorSet, ValidatorSpec};

/// The module's id.
pub const ID: &str = "membership";

/// Modules that may replace the set outright: governance decided it.
pub const AUTHORITIES: [&str; 2] = ["gov", "directive"];

/// Relative key of the validator set.
const VALIDATORS: &[u8] = b"validators";

/// Messages of the `membership` module.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum MembershipMsg {
    /// Replace the validator set.
    SetValidators {
        /// The new set.
        validators: Vec<ValidatorSpec>,
        /// Current validators' signatures over the change.
        approvals: Vec<CertificateSignature>,
    },
    /// Replace the validator set as decided by governance (from one of
    /// the [`AUTHORITIES`] only).
    Replace {
        /// The new set.
        validators: Vec<ValidatorSpec>,
    },
}

impl MembershipMsg {
    /// This message as a transaction action.
    pub fn action(&self) -> tongtian_types::Action {
        tongtian_types::Action::Module {
            module: ID.into(),
            msg: encode(self),
        }
    }
}

/// The full state key of the validator set.
pub fn validators_key() -> Vec<u8> {
    [crate::module::module_prefix(ID).as_slice(), VALIDATORS].concat()
}

/// The validator set in (overlaid) state.
pub fn read_validator_set(overlay: &StateOverlay<'_>) -> Result<ValidatorSet, ExecutionError> {
    let bytes = overlay
        .get_raw(&validators_key())?
        .ok_or_else(|| ExecutionError::Corrupt("no validator set in state".into()))?;
    tongtian_types::codec::decode("validator set", &bytes)
        .map_err(|e| ExecutionError::Corrupt(e.to_string()))
}

/// The `membership` module.
#[derive(Debug, Default)]
pub struct Membership;

impl Module for Membership {
    fn id(&self) -> &'static str {
        ID
    }

    fn genesis(
        &self,
        state: &mut ModuleState<'_, '_>,
        spec: &ChainSpec,
        section: Option<&serde_json::Value>,
    ) -> ModuleResult<()> {
        if section.is_some_and(|s| !s.is_null()) {
            return Err(ModuleError::new(
                "bad_genesis",
                "membership takes its validators from the spec's `validators`, not a section",
            )
            .into());
        }
        state.set_typed(
            VALIDATORS,
            &ValidatorSet {
                version: 0,
                validators: spec.validators.clone(),
            },
        );
        Ok(())
    }

    fn execute(&self, ctx: &mut ModuleCtx<'_, '_>, msg: &[u8]) -> ModuleResult<Vec<u8>> {
        let msg: MembershipMsg =
            borsh::from_slice(msg).map_err(|e| ModuleError::bad_message(ID, e))?;
        match msg {
            MembershipMsg::SetValidators {
                validators,
                approvals,
            } => set_validators(ctx, &validators, Some(&approvals)),
            MembershipMsg::Replace { validators } => {
                if !crate::module::is_module_caller(&ctx.caller, &AUTHORITIES) {
                    return Err(ModuleError::new(
                        "not_authorized",
                        format!(
                            "only {} replace the validator set without approvals",
                            AUTHORITIES.join(" and ")
                        ),
                    )
                    .into());
                }
                set_validators(ctx, &validators, None)
            }
        }
    }

    fn query(
        &self,
        state: &mut ModuleState<'_, '_>,
        path: &str,
        _params: &BTreeMap<String, String>,
    ) -> ModuleResult<serde_json::Value> {
        match path {
            "validators" => {
                let set: ValidatorSet = state
                    .get_typed(VALIDATORS)?
                    .ok_or_else(|| ExecutionError::Corrupt("no validator set".into()))?;
                Ok(serde_json::to_value(set).expect("a validator set serializes"))
            }
            other => Err(ModuleError::new(
                "unknown_query",
                format!("membership answers `validators`, not `{other}`"),
            )
            .into()),
        }
    }
}

fn set_validators(
    ctx: &mut ModuleCtx<'_, '_>,
    next: &[ValidatorSpec],
    approvals: Option<&[CertificateSignature]>,
) -> ModuleResult<Vec<u8>> {
    let fail = |code: &str, message: String| Err(ModuleError::new(code, message).into());
    let current: ValidatorSet = ctx
        .state
        .get_typed(VALIDATORS)?
        .ok_or_else(|| ExecutionError::Corrupt("no validator set".into()))?;
    if next.is_empty() {
        return fail(
            "empty_validator_set",
            "a chain needs at least one validator".into(),
        );
    }
    let mut keys: Vec<&[u8]> = next.iter().map(|v| v.public_key.as_slice()).collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.len() != next.len() {
        return fail(
            "duplicate_validator",
            "a key appears twice in the new set".into(),
        );
    }
    let s = suite(ctx.chain.suite);
    let probe = vec![0u8; s.signature_len()];
    if let Some(v) = next.iter().find(|v| {
        matches!(
            s.verify(&v.public_key, b"", &probe),
            Err(tongtian_crypto::CryptoError::InvalidPublicKey { .. })
        )
    }) {
        return fail(
            "invalid_validator_key",
            format!("{} has no valid {} key", v.name, ctx.chain.suite),
        );
    }
    let approved = approvals.map(|a| current.approvals_valid(s, ctx.chain.chain_id, next, a));
    if let Some(approved) = approved.filter(|n| *n < current.quorum()) {
        return fail(
            "insufficient_approvals",
            format!(
                "{approved} valid approvals of version {}, {} needed",
                current.version,
                current.quorum()
            ),
        );
    }
    let set = ValidatorSet {
        version: current.version + 1,
        validators: next.to_vec(),
    };
    ctx.state.set_typed(VALIDATORS, &set);
    ctx.emit(
        "validators_changed",
        vec![
            ("version".into(), set.version.to_string()),
            ("validators".into(), set.validators.len().to_string()),
        ],
    );
    Ok(Vec::new())
}
