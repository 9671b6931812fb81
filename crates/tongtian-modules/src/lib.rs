//! The chain network's native modules, on the [`tongtian_execution::Module`]
//! seam.
//!
//! On the main chain:
//! - [`org`]: the member organisations (id, name, admin account, voting
//!   weight, nodes with their transport and per-suite validator keys);
//! - [`gov`]: proposals of typed kinds, weighted votes by organisation
//!   admins, thresholds and quorums per kind, execution of a passed
//!   proposal in the block that closes it;
//! - [`registry`]: the sub-chains that exist, each with the genesis spec
//!   every member node derives from it identically;
//! - [`contracts`]: contracts frozen or upgraded by a vote;
//! - [`params`]: chain parameters a vote may change while the chain runs.
//!
//! On a sub-chain: [`access`], which keeps a restricted chain to the
//! accounts its registry entry names; [`directive`], which carries out the
//! votes the main chain decided for the sub-chain once a supermajority of
//! its validators attested them; and `params` and `contracts` as above.
//!
//! Modules change one another only through messages: `org` and `registry`
//! accept changes only from `gov`'s address, so the only way to admit an
//! organisation or create a chain is a passed vote.
//!
//! [`build`] makes the modules a chain spec's `modules` sections name.

pub mod access;
pub mod contracts;
pub mod directive;
pub mod gov;
pub mod org;
pub mod params;
pub mod registry;

use std::sync::Arc;
use tongtian_execution::module::{module_address, ModuleError};
use tongtian_execution::{Executor, Module};
use tongtian_types::{Address, ChainSpec};

/// Add to `executor` the modules `spec` has genesis sections for; a
/// section naming no module this build has is an error (the chain does
/// not start on a spec it cannot honour).
pub fn build(executor: Executor, spec: &ChainSpec) -> Result<Executor, String> {
    let mut ex = executor;
    for id in spec.modules.0.keys() {
        let m: Arc<dyn Module> = match id.as_str() {
            org::ID => Arc::new(org::Org),
            gov::ID => Arc::new(gov::Gov),
            registry::ID => Arc::new(registry::Registry),
            access::ID => Arc::new(access::Access),
            contracts::ID => Arc::new(contracts::Contracts),
            params::ID => Arc::new(params::Params),
            directive::ID => Arc::new(directive::DirectiveModule),
            tongtian_xchain::client::ID => Arc::new(tongtian_xchain::client::Client),
            tongtian_xchain::channel::ID => Arc::new(tongtian_xchain::channel::Channel),
            tongtian_xchain::transfer::ID => Arc::new(tongtian_xchain::transfer::Transfer),
            tongtian_xchain::nft::ID => Arc::new(tongtian_xchain::nft::Nft),
            tongtian_xchain::nft_transfer::ID => Arc::new(tongtian_xchain::nft_transfer::NftTransfer),
            tongtian_data::data::ID => Arc::new(tongtian_data::data::Data),
            tongtian_data::job::ID => Arc::new(tongtian_data::job::JobModule),
            tongtian_execution::membership::ID => continue,
            other => {
                return Err(format!(
                    "the chain spec enables module `{other}`, which this node does not have (it has org, gov, registry, access, contracts, params, directive, client, channel, transfer, nft, nft-transfer, data, job, membership)"
                ))
            }
        };
        ex = ex.with_module(m);
    }
    Ok(ex)
}

/// Refuse unless the message came from module `from` (its address).
pub(crate) fn only_from(caller: &Address, from: &str, what: &str) -> Result<(), ModuleError> {
    if *caller == module_address(from) {
        Ok(())
    } else {
        Err(ModuleError::new(
            "governance_only",
            format!("{what} is decided by a governance vote (`tongtian gov propose`), not sent directly"),
        ))
    }
}

/// Refuse unless the message came from one of the modules that carry out
/// governance decisions ([`tongtian_execution::membership::AUTHORITIES`]:
/// `gov` on the main chain, `directive` on a sub-chain).
pub(crate) fn only_from_authority(caller: &Address, what: &str) -> Result<(), ModuleError> {
    if tongtian_execution::module::is_module_caller(
        caller,
        &tongtian_execution::membership::AUTHORITIES,
    ) {
        Ok(())
    } else {
        only_from(caller, gov::ID, what)
    }
}

/// Decode a Borsh message of module `id`.
pub(crate) fn decode_msg<T: borsh::BorshDeserialize>(
    id: &str,
    msg: &[u8],
) -> Result<T, ModuleError> {
    borsh::from_slice(msg).map_err(|e| ModuleError::bad_message(id, e))
}

/// A JSON value of something serializable (module answers).
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}
