//! The `nft-transfer` module: NFTs across channels (ICS-721's rules).
//!
//! A token leaving the chain its class was made on is **escrowed** here
//! (held by this module in [`crate::nft`]); the destination mints a
//! voucher in class `nft-transfer/{its channel}/{class}` with the same
//! id, URI and metadata. A voucher sent back the way it came is **burned**
//! and the original released. An error acknowledgement or a timeout gives
//! the sender its token back.

use crate::channel::{ChannelMsg, Packet, ID as CHANNEL};
use crate::nft::{NftMsg, Token, ID as NFT};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tongtian_execution::module::{Module, ModuleCtx, ModuleError, ModuleResult, ModuleState};
use tongtian_types::{Address, ChainSpec};

/// The module's id, also its port.
pub const ID: &str = "nft-transfer";

/// What an NFT packet carries.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct NftPacket {
    /// The class as the sender knows it.
    pub class: String,
    /// The class's URI.
    pub class_uri: String,
    /// The tokens: id, URI, metadata.
    pub tokens: Vec<(String, String, Vec<u8>)>,
    /// Who sent them.
    pub sender: Address,
    /// Who receives them.
    pub receiver: Address,
}

/// Messages of the `nft-transfer` module.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum NftTransferMsg {
    /// Send tokens of one class over a channel (from their owner).
    Transfer {
        /// The channel here.
        channel: String,
        /// The class.
        class: String,
        /// The token ids.
        ids: Vec<String>,
        /// The receiver on the other chain.
        receiver: Address,
        /// Timeout height on the destination (0: none).
        timeout_height: u64,
        /// Timeout time on the destination, ms (0: none).
        timeout_ms: u64,
    },
}

impl NftTransferMsg {
    /// As a transaction action.
    pub fn action(&self) -> tongtian_types::Action {
        tongtian_types::Action::Module {
            module: ID.into(),
            msg: borsh::to_vec(self).expect("nft-transfer messages encode"),
        }
    }
}

fn refuse(code: &str, message: impl Into<String>) -> ModuleError {
    ModuleError::new(code, message)
}

fn prefix(port: &str, channel: &str) -> String {
    format!("{port}/{channel}/")
}

/// The `nft-transfer` module.
#[derive(Debug, Default)]
pub struct NftTransfer;

impl NftTransfer {
    fn give_back(ctx: &mut ModuleCtx<'_, '_>, p: &Packet) -> ModuleResult<()> {
        let data: NftPacket = borsh::from_slice(&p.data)
            .map_err(|e| refuse("bad_packet", format!("nft packet: {e}")))?;
        let burned = data
            .class
            .starts_with(&prefix(&p.source_port, &p.source_channel));
        for (id, uri, meta) in data.tokens {
            let msg = if burned {
                NftMsg::MintVoucher {
                    class: data.class.clone(),
                    class_uri: data.class_uri.clone(),
                    token: Token {
                        class: data.class.clone(),
                        id,
                        owner: data.sender,
                        uri,
                        data: meta,
                    },
                }
            } else {
                NftMsg::Release {
                    class: data.class.clone(),
                    id,
                    to: data.sender,
                }
            };
            ctx.call(NFT, &msg.encode())?;
        }
        Ok(())
    }

    fn on_recv(ctx: &mut ModuleCtx<'_, '_>, p: &Packet) -> ModuleResult<Vec<u8>> {
        let data: NftPacket = borsh::from_slice(&p.data)
            .map_err(|e| refuse("bad_packet", format!("nft packet: {e}")))?;
        let back = prefix(&p.source_port, &p.source_channel);
        let class = match data.class.strip_prefix(&back) {
            Some(local) => {
                for (id, _, _) in &data.tokens {
                    ctx.call(
                        NFT,
                        &NftMsg::Release {
                            class: local.to_string(),
                            id: id.clone(),
                            to: data.receiver,
                        }
                        .encode(),
                    )?;
                }
                local.to_string()
            }
            None => {
                let voucher = format!("{}{}", prefix(&p.dest_port, &p.dest_channel), data.class);
                for (id, uri, meta) in &data.tokens {
                    ctx.call(
                        NFT,
                        &NftMsg::MintVoucher {
                            class: voucher.clone(),
                            class_uri: data.class_uri.clone(),
                            token: Token {
                                class: voucher.clone(),
                                id: id.clone(),
                                owner: data.receiver,
                                uri: uri.clone(),
                                data: meta.clone(),
                            },
                        }
                        .encode(),
                    )?;
                }
                voucher
            }
        };
        ctx.emit(
            "nft_received",
            vec![
                ("class".into(), class.clone()),
                ("count".into(), data.tokens.len().to_string()),
                ("receiver".into(), data.receiver.to_string()),
            ],
        );
        Ok(class.into_bytes())
    }
}

impl Module for NftTransfer {
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
            "nft-transfer starts empty: its section is {}",
        )
    }

    fn execute(&self, ctx: &mut ModuleCtx<'_, '_>, msg: &[u8]) -> ModuleResult<Vec<u8>> {
        if let Some(answer) =
            crate::channel::app_callback(ctx, ID, msg, Self::on_recv, Self::give_back)
        {
            return answer;
        }
        let NftTransferMsg::Transfer {
            channel,
            class,
            ids,
            receiver,
            timeout_height,
            timeout_ms,
        } = borsh::from_slice(msg).map_err(|e| ModuleError::bad_message(ID, e))?;
        if ids.is_empty() {
            return Err(refuse("no_tokens", "name at least one token id").into());
        }
        let sender = ctx.caller;
        let none = BTreeMap::new();
        let class_uri = ctx
            .query(NFT, &format!("classes/{class}"), &none)?
            .get("uri")
            .and_then(|u| u.as_str())
            .unwrap_or_default()
            .to_string();
        let going_back = class.starts_with(&prefix(ID, &channel));
        let mut tokens = Vec::new();
        for id in &ids {
            let t: Token =
                serde_json::from_value(ctx.query(NFT, &format!("tokens/{class}/{id}"), &none)?)
                    .map_err(|e| tongtian_execution::ExecutionError::Corrupt(e.to_string()))?;
            let (uri, meta) = (t.uri, t.data);
            let msg = if going_back {
                NftMsg::BurnVoucher {
                    class: class.clone(),
                    id: id.clone(),
                    from: sender,
                }
            } else {
                NftMsg::Escrow {
                    class: class.clone(),
                    id: id.clone(),
                    from: sender,
                }
            };
            ctx.call(NFT, &msg.encode())?;
            tokens.push((id.clone(), uri, meta));
        }
        let data = borsh::to_vec(&NftPacket {
            class: class.clone(),
            class_uri,
            tokens,
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
            "nft_sent",
            vec![
                ("channel".into(), channel),
                ("class".into(), class),
                ("count".into(), ids.len().to_string()),
                ("receiver".into(), receiver.to_string()),
            ],
        );
        Ok(seq)
    }

    fn query(
        &self,
        _state: &mut ModuleState<'_, '_>,
        path: &str,
        _params: &BTreeMap<String, String>,
    ) -> ModuleResult<serde_json::Value> {
        Err(refuse(
            "unknown_query",
            format!("nft-transfer keeps nothing of its own (ask nft), not {path}"),
        )
        .into())
    }
}
