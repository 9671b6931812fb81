//! The `nft` module: non-fungible tokens, in classes, that can travel.
//!
//! A class has an id, a URI and a creator; only the creator mints into it.
//! A token is `(class, id)` with an owner, a URI and metadata bytes. Owners
//! transfer and burn their tokens. The `nft-transfer` module (ICS-721)
//! escrows, releases, and mints and burns vouchers of tokens from other
//! chains through [`NftMsg`] variants only it may send; a voucher class is
//! named by its path, `nft-transfer/{channel}/{class}`, and keeps the
//! original URI and metadata, so a bill of lading arrives as itself.
//! Later asset modules (data assets) hold their tokens here.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tongtian_execution::module::{
    module_address, Module, ModuleCtx, ModuleError, ModuleResult, ModuleState,
};
use tongtian_types::{serde_hex, Address, ChainSpec};

/// The module's id.
pub const ID: &str = "nft";

/// A class of tokens.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Class {
    /// Its id.
    pub id: String,
    /// Where its description lives.
    pub uri: String,
    /// Who may mint into it (the zero address for voucher classes).
    pub creator: Address,
}

/// A token.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Token {
    /// Its class.
    pub class: String,
    /// Its id in the class.
    pub id: String,
    /// Its owner.
    pub owner: Address,
    /// Where its content lives.
    pub uri: String,
    /// Its metadata.
    #[serde(with = "serde_hex")]
    pub data: Vec<u8>,
}

/// Messages of the `nft` module.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum NftMsg {
    /// Create a class; the sender becomes its creator.
    CreateClass {
        /// Its id (no `/`: paths are for vouchers).
        class: String,
        /// Its URI.
        uri: String,
    },
    /// Mint a token (the class's creator).
    Mint {
        /// The class.
        class: String,
        /// The token's id.
        id: String,
        /// Its URI.
        uri: String,
        /// Its metadata.
        data: Vec<u8>,
        /// Its first owner.
        owner: Address,
    },
    /// Give a token to someone else (its owner).
    Transfer {
        /// The class.
        class: String,
        /// The token.
        id: String,
        /// The new owner.
        to: Address,
    },
    /// Take a token from `from` into the escrow of the caller module
    /// (`nft-transfer` only).
    Escrow {
        /// The class.
        class: String,
        /// The token.
        id: String,
        /// Its owner, who sent the transfer.
        from: Address,
    },
    /// Give an escrowed token to `to` (`nft-transfer` only).
    Release {
        /// The class.
        class: String,
        /// The token.
        id: String,
        /// The receiver.
        to: Address,
    },
    /// Mint a voucher of a token from another chain (`nft-transfer` only).
    MintVoucher {
        /// The voucher class (`nft-transfer/{channel}/{class}`).
        class: String,
        /// The class's URI where the token comes from.
        class_uri: String,
        /// The token.
        token: Token,
    },
    /// Burn a voucher its owner sends back (`nft-transfer` only).
    BurnVoucher {
        /// The class.
        class: String,
        /// The token.
        id: String,
        /// Its owner.
        from: Address,
    },
}

impl NftMsg {
    /// Encoded.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("nft messages encode")
    }

    /// As a transaction action.
    pub fn action(&self) -> tongtian_types::Action {
        tongtian_types::Action::Module {
            module: ID.into(),
            msg: self.encode(),
        }
    }
}

fn refuse(code: &str, message: impl Into<String>) -> ModuleError {
    ModuleError::new(code, message)
}

fn class_key(class: &str) -> Vec<u8> {
    format!("class/{class}").into_bytes()
}

fn token_key(class: &str, id: &str) -> Vec<u8> {
    format!("token/{class}/{id}").into_bytes()
}

fn owned_key(owner: &Address, class: &str, id: &str) -> Vec<u8> {
    format!("owned/{owner}/{class}/{id}").into_bytes()
}

/// The class `class`.
pub fn class(state: &ModuleState<'_, '_>, class: &str) -> ModuleResult<Option<Class>> {
    Ok(state.get_typed(&class_key(class))?)
}

fn token(state: &ModuleState<'_, '_>, class: &str, id: &str) -> ModuleResult<Token> {
    Ok(state
        .get_typed(&token_key(class, id))?
        .ok_or_else(|| refuse("unknown_token", format!("there is no token {class}/{id}")))?)
}

fn put(state: &mut ModuleState<'_, '_>, t: &Token) {
    state.set_typed(&token_key(&t.class, &t.id), t);
    state.set(&owned_key(&t.owner, &t.class, &t.id), vec![1]);
}

fn give(state: &mut ModuleState<'_, '_>, mut t: Token, to: Address) {
    state.delete(&owned_key(&t.owner, &t.class, &t.id));
    t.owner = to;
    put(state, &t);
}

fn remove(state: &mut ModuleState<'_, '_>, t: &Token) {
    state.delete(&owned_key(&t.owner, &t.class, &t.id));
    state.delete(&token_key(&t.class, &t.id));
}

/// The `nft` module.
#[derive(Debug, Default)]
pub struct Nft;

impl Module for Nft {
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
            "nft starts empty: its section is {}",
        )
    }

    fn execute(&self, ctx: &mut ModuleCtx<'_, '_>, msg: &[u8]) -> ModuleResult<Vec<u8>> {
        let msg: NftMsg = borsh::from_slice(msg).map_err(|e| ModuleError::bad_message(ID, e))?;
        let bridge = module_address(crate::nft_transfer::ID);
        let only_bridge = |ctx: &ModuleCtx<'_, '_>| {
            if ctx.caller == bridge {
                Ok(())
            } else {
                Err(refuse(
                    "not_allowed",
                    "only nft-transfer escrows, releases and mints vouchers",
                ))
            }
        };
        match msg {
            NftMsg::CreateClass { class: id, uri } => {
                if id.is_empty() || id.len() > 64 || id.contains('/') {
                    return Err(
                        refuse("bad_class", "a class id is 1-64 characters without /").into(),
                    );
                }
                if class(&ctx.state, &id)?.is_some() {
                    return Err(refuse("class_exists", format!("class {id} exists")).into());
                }
                let c = Class {
                    id: id.clone(),
                    uri,
                    creator: ctx.caller,
                };
                ctx.state.set_typed(&class_key(&id), &c);
                ctx.emit("class_created", vec![("class".into(), id)]);
            }
            NftMsg::Mint {
                class: cid,
                id,
                uri,
                data,
                owner,
            } => {
                let c = class(&ctx.state, &cid)?
                    .ok_or_else(|| refuse("unknown_class", format!("there is no class {cid}")))?;
                if c.creator != ctx.caller {
                    return Err(refuse(
                        "not_creator",
                        format!("only {} mints in {cid}", c.creator),
                    )
                    .into());
                }
                if ctx.state.get(&token_key(&cid, &id))?.is_some() {
                    return Err(refuse("token_exists", format!("{cid}/{id} exists")).into());
                }
                put(
                    &mut ctx.state,
                    &Token {
                        class: cid.clone(),
                        id: id.clone(),
                        owner,
                        uri,
                        data,
                    },
                );
                ctx.emit(
                    "nft_minted",
                    vec![
                        ("class".into(), cid),
                        ("id".into(), id),
                        ("owner".into(), owner.to_string()),
                    ],
                );
            }
            NftMsg::Transfer { class: cid, id, to } => {
                let t = token(&ctx.state, &cid, &id)?;
                if t.owner != ctx.caller {
                    return Err(
                        refuse("not_owner", format!("{cid}/{id} is not {}'s", ctx.caller)).into(),
                    );
                }
                give(&mut ctx.state, t, to);
                ctx.emit(
                    "nft_transferred",
                    vec![
                        ("class".into(), cid),
                        ("id".into(), id),
                        ("to".into(), to.to_string()),
                    ],
                );
            }
            NftMsg::Escrow {
                class: cid,
                id,
                from,
            } => {
                only_bridge(ctx)?;
                let t = token(&ctx.state, &cid, &id)?;
                if t.owner != from {
                    return Err(refuse("not_owner", format!("{cid}/{id} is not {from}'s")).into());
                }
                give(&mut ctx.state, t, bridge);
            }
            NftMsg::Release { class: cid, id, to } => {
                only_bridge(ctx)?;
                let t = token(&ctx.state, &cid, &id)?;
                if t.owner != bridge {
                    return Err(
                        refuse("not_escrowed", format!("{cid}/{id} is not in escrow")).into(),
                    );
                }
                give(&mut ctx.state, t, to);
            }
            NftMsg::MintVoucher {
                class: cid,
                class_uri,
                token: t,
            } => {
                only_bridge(ctx)?;
                if class(&ctx.state, &cid)?.is_none() {
                    ctx.state.set_typed(
                        &class_key(&cid),
                        &Class {
                            id: cid.clone(),
                            uri: class_uri,
                            creator: Address::ZERO,
                        },
                    );
                }
                if ctx.state.get(&token_key(&cid, &t.id))?.is_some() {
                    return Err(refuse("token_exists", format!("{cid}/{} exists", t.id)).into());
                }
                put(&mut ctx.state, &Token { class: cid, ..t });
            }
            NftMsg::BurnVoucher {
                class: cid,
                id,
                from,
            } => {
                only_bridge(ctx)?;
                let t = token(&ctx.state, &cid, &id)?;
                if t.owner != from {
                    return Err(refuse("not_owner", format!("{cid}/{id} is not {from}'s")).into());
                }
                remove(&mut ctx.state, &t);
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
        let json = |v: serde_json::Result<serde_json::Value>| v.unwrap_or(serde_json::Value::Null);
        if let Some(rest) = path.strip_prefix("owned/") {
            let a: Address = rest
                .parse()
                .map_err(|_| refuse("bad_address", format!("{rest:?} is not an address")))?;
            let p = format!("owned/{a}/");
            let mut out = Vec::new();
            for (k, _) in state.scan(p.as_bytes(), None, 10_000)? {
                let rel = String::from_utf8_lossy(&k[p.len()..]).into_owned();
                // class ids of vouchers hold `/`: the token id is the last part.
                if let Some((cid, id)) = rel.rsplit_once('/') {
                    out.push(json(serde_json::to_value(token(state, cid, id)?)));
                }
            }
            return Ok(serde_json::Value::Array(out));
        }
        if let Some(rest) = path.strip_prefix("tokens/") {
            if let Some((cid, id)) = rest.rsplit_once('/') {
                return Ok(json(serde_json::to_value(token(state, cid, id)?)));
            }
        }
        if let Some(cid) = path.strip_prefix("classes/") {
            let c = class(state, cid)?
                .ok_or_else(|| refuse("not_found", format!("there is no class {cid}")))?;
            return Ok(json(serde_json::to_value(c)));
        }
        Err(refuse(
            "unknown_query",
            format!("nft answers owned/ADDRESS, tokens/CLASS/ID and classes/CLASS, not {path}"),
        )
        .into())
    }
}
