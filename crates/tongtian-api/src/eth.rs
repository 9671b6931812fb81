//! Ethereum JSON-RPC at `POST /eth`, so wallets, ethers.js, web3.py,
//! Hardhat and Foundry work against a Tongtian chain unchanged.
//!
//! Blocks, transactions and receipts are Tongtian's own, shown in
//! Ethereum's shapes: block hashes are the chain suite's header hashes,
//! Ethereum transactions keep their Keccak hashes, EVM logs are the `log`
//! events of receipts. State queries (`eth_getBalance`,
//! `eth_getTransactionCount`, `eth_getCode`, `eth_getStorageAt`,
//! `eth_call`, `eth_estimateGas`) honour the block tag, a block number or
//! an EIP-1898 `{blockNumber}` / `{blockHash}` object: past blocks are read
//! through the Merkle tree's versioned roots. Errors use Ethereum's codes: -32700 parse error,
//! -32600 invalid request, -32601 unknown method, -32602 invalid params,
//! -32000 rejected transaction, 3 execution reverted (with the revert data).
//!
//! Filters (`eth_newFilter`, `eth_newBlockFilter`, polled with
//! `eth_getFilterChanges`, read whole with `eth_getFilterLogs`, removed
//! with `eth_uninstallFilter`) are kept per node in [`crate::filters`],
//! so ethers.js event listeners and web3.py's `create_filter` work as on
//! Geth; `eth_newPendingTransactionFilter` reports the hashes the mempool
//! admits (the last 65,536 are kept for polling).
//!
//! A node with unlocked accounts ([`crate::accounts`]; `tongtian dev`
//! unlocks the development accounts) lists them in `eth_accounts` and signs
//! with them: `eth_sendTransaction` and `eth_signTransaction` fill in what
//! the object leaves out (nonce from the pool, gas by estimate, the minimum
//! gas price) and sign an EIP-1559 transaction; `eth_sign` and
//! `personal_sign` sign EIP-191 messages, `eth_signTypedData_v4` EIP-712
//! data. An account the node does not hold gets "unknown account" (-32000).
//!
//! Over a WebSocket ([`crate::subscriptions`]) the same methods answer, and
//! `eth_subscribe` reports new heads, logs and pending transactions.

use crate::accounts::UnlockedAccounts;
use crate::filters::{FilterKind, Filters};
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;
use tongtian_crypto::eth::{personal_message_digest, EthKey};
use tongtian_execution::vm::{blob_key, code_key, storage_key, CodeInfo, VmFailure};
use tongtian_execution::CallRequest;
use tongtian_node::{ChainRuntime, NodeError};
use tongtian_storage::{BlockFilters, StateStore};
use tongtian_types::codec::{decode, encode};
use tongtian_types::eth::{sign_eip1559_listing, AccessList, BloomBits, EthTx, LogsBloom};
use tongtian_types::{Action, Address, SignedTransaction, TxStatus, VmKind, H256};

/// Gas limit reported for blocks (the chain bounds blocks by count).
const BLOCK_GAS_LIMIT: u64 = 1_000_000_000;
/// Most blocks one `eth_feeHistory` covers (Geth's limit).
const MAX_FEE_HISTORY: u64 = 1024;
/// Most reward percentiles one `eth_feeHistory` asks for.
const MAX_REWARD_PERCENTILES: usize = 100;
/// Gas an `eth_call` or `eth_estimateGas` may use when none is given.
const DEFAULT_CALL_GAS: u64 = 30_000_000;
/// Keccak-256 of the RLP of an empty list: the "no uncles" hash.
const EMPTY_UNCLES: &str = "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347";

/// A JSON-RPC error.
#[derive(Debug)]
pub(crate) struct RpcError {
    code: i64,
    message: String,
    data: Option<String>,
}

impl RpcError {
    fn params(m: impl Into<String>) -> Self {
        RpcError {
            code: -32602,
            message: m.into(),
            data: None,
        }
    }
    fn server(m: impl Into<String>) -> Self {
        RpcError {
            code: -32000,
            message: m.into(),
            data: None,
        }
    }
}

impl From<NodeError> for RpcError {
    fn from(e: NodeError) -> Self {
        RpcError {
            code: -32603,
            message: e.to_string(),
            data: None,
        }
    }
}

impl From<tongtian_storage::StorageError> for RpcError {
    fn from(e: tongtian_storage::StorageError) -> Self {
        NodeError::from(e).into()
    }
}

type RpcResult = Result<Value, RpcError>;

/// The filters a node's Ethereum API keeps.
pub(crate) type EthFilters = Filters<LogQuery>;

/// What one request may use: the chain, the node's installed filters, the
/// accounts it signs for, and on a WebSocket the connection's
/// subscriptions.
pub(crate) struct Rpc<'a> {
    pub(crate) chain: &'a ChainRuntime,
    pub(crate) filters: &'a EthFilters,
    pub(crate) accounts: &'a UnlockedAccounts,
    /// `None` over HTTP, which cannot carry notifications.
    pub(crate) subscriptions: Option<&'a EthFilters>,
}

/// Most requests in one JSON-RPC batch (Geth's `BatchRequestLimit`).
pub const MAX_RPC_BATCH: usize = 1_000;

/// `POST /eth`: one JSON-RPC request or a batch.
pub(crate) async fn handle(
    chain: Arc<ChainRuntime>,
    filters: Arc<EthFilters>,
    accounts: Arc<UnlockedAccounts>,
    body: Bytes,
) -> Response {
    let answer = tokio::task::spawn_blocking(move || {
        let rpc = Rpc {
            chain: &chain,
            filters: &filters,
            accounts: &accounts,
            subscriptions: None,
        };
        answer_http(&rpc, &body)
    })
    .await
    .unwrap_or_else(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            error_response(Value::Null, RpcError::server(e.to_string())),
        )
    });
    (answer.0, Json(answer.1)).into_response()
}

/// A body refused before it was parsed (too large, or not read whole):
/// a JSON-RPC error with `status`.
pub(crate) fn refuse_body(status: StatusCode, why: &str) -> Response {
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "request body is larger than {} MiB; send smaller batches",
            crate::MAX_RPC_BODY >> 20
        )
    } else {
        format!("cannot read the request body: {why}")
    };
    let e = RpcError {
        code: -32600,
        message,
        data: None,
    };
    (status, Json(error_response(Value::Null, e))).into_response()
}

/// The answer to one JSON-RPC request or batch in `body` (blocking: it
/// reads the store).
pub(crate) fn answer(rpc: &Rpc<'_>, body: &[u8]) -> Value {
    answer_http(rpc, body).1
}

/// [`answer`] with the HTTP status it goes with: 200 for anything that
/// was parsed as requests (each request's own error is in its answer),
/// 400 for a body that is not JSON or is an empty batch, 413 for a batch
/// over [`MAX_RPC_BATCH`].
fn answer_http(rpc: &Rpc<'_>, body: &[u8]) -> (StatusCode, Value) {
    let refuse = |status, code, message: String| {
        let e = RpcError {
            code,
            message,
            data: None,
        };
        (status, error_response(Value::Null, e))
    };
    match serde_json::from_slice(body) {
        Err(e) => refuse(
            StatusCode::BAD_REQUEST,
            -32700,
            format!("parse error: {e}"),
        ),
        Ok(Value::Array(reqs)) if reqs.is_empty() => {
            refuse(StatusCode::BAD_REQUEST, -32600, "empty batch".into())
        }
        Ok(Value::Array(reqs)) if reqs.len() > MAX_RPC_BATCH => refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            -32600,
            format!(
                "batch too large: {} requests, at most {MAX_RPC_BATCH}; split it into smaller batches",
                reqs.len()
            ),
        ),
        Ok(Value::Array(reqs)) => (
            StatusCode::OK,
            Value::Array(reqs.into_iter().map(|r| one(rpc, r)).collect()),
        ),
        Ok(req) => (StatusCode::OK, one(rpc, req)),
    }
}

fn error_response(id: Value, e: RpcError) -> Value {
    let mut err = json!({"code": e.code, "message": e.message});
    if let Some(d) = e.data {
        err["data"] = Value::String(d);
    }
    json!({"jsonrpc": "2.0", "id": id, "error": err})
}

fn one(rpc: &Rpc<'_>, req: Value) -> Value {
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = req.get("method").and_then(Value::as_str) else {
        return error_response(
            id,
            RpcError {
                code: -32600,
                message: "invalid request: no method".into(),
                data: None,
            },
        );
    };
    let params = match req.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(p)) => p.clone(),
        Some(_) => return error_response(id, RpcError::params("params must be an array")),
    };
    match dispatch(rpc, method, &params) {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(e) => error_response(id, e),
    }
}

fn dispatch(rpc: &Rpc<'_>, method: &str, p: &[Value]) -> RpcResult {
    let chain = rpc.chain;
    match method {
        "eth_chainId" => Ok(qty(chain.spec().chain_id)),
        "net_version" => Ok(Value::String(chain.spec().chain_id.to_string())),
        "net_listening" => Ok(Value::Bool(true)),
        "web3_clientVersion" => Ok(Value::String(format!(
            "tongtian/{}",
            env!("CARGO_PKG_VERSION")
        ))),
        "eth_syncing" => Ok(Value::Bool(false)),
        "eth_accounts" => Ok(Value::Array(
            rpc.accounts
                .addresses()
                .map(|a| Value::String(a.to_string()))
                .collect(),
        )),
        "eth_blockNumber" => Ok(qty(chain.latest().0)),
        "eth_gasPrice" | "eth_maxPriorityFeePerGas" => Ok(qty(chain.spec().gas.min_gas_price)),
        "eth_getBalance" => {
            let a = addr_param(p, 0)?;
            let view = View::of(chain, p.get(1))?;
            Ok(qty_u128(view.account(&a)?.balance))
        }
        "eth_getTransactionCount" => {
            let a = addr_param(p, 0)?;
            if p.get(1).and_then(Value::as_str) == Some("pending") {
                return Ok(qty(pending_nonce(chain, &a)?));
            }
            Ok(qty(View::of(chain, p.get(1))?.account(&a)?.nonce))
        }
        "eth_getCode" => {
            let a = addr_param(p, 0)?;
            let view = View::of(chain, p.get(1))?;
            Ok(hex_value(&code_of(&view, &a)?.unwrap_or_default()))
        }
        "eth_getStorageAt" => {
            let a = addr_param(p, 0)?;
            let slot = word_param(p, 1)?;
            let view = View::of(chain, p.get(2))?;
            let v = view.get(&storage_key(&a, &slot))?.unwrap_or_default();
            let mut word = [0u8; 32];
            let n = v.len().min(32);
            word[32 - n..].copy_from_slice(&v[v.len() - n..]);
            Ok(hex_value(&word))
        }
        "eth_call" | "eth_estimateGas" => call(chain, method == "eth_estimateGas", p),
        "eth_sendRawTransaction" => {
            let raw = parse_hex(str_param(p, 0, "raw transaction")?, "raw transaction")?;
            submit_raw(chain, raw)
        }
        "eth_sendTransaction" => {
            let object = CallObject::parse(p.first())?;
            // One at a time from choosing the nonce to entering the pool.
            let _turn = rpc.accounts.sending();
            submit_raw(chain, sign_transaction(rpc, &object)?)
        }
        "eth_signTransaction" => Ok(hex_value(&sign_transaction(
            rpc,
            &CallObject::parse(p.first())?,
        )?)),
        "eth_sign" => sign_message(rpc, &addr_param(p, 0)?, &message_param(p, 1)?),
        "personal_sign" => sign_message(rpc, &addr_param(p, 1)?, &message_param(p, 0)?),
        "eth_signTypedData_v4" | "eth_signTypedData" => {
            let key = signing_key(rpc, &addr_param(p, 0)?)?;
            let digest = typed_data_digest(p.get(1))?;
            Ok(hex_value(&key.sign_recoverable(&digest)))
        }
        "eth_getTransactionByHash" => tx_by_hash(chain, &hash_param(p, 0)?),
        "eth_getTransactionReceipt" => receipt_by_hash(chain, &hash_param(p, 0)?),
        "eth_getBlockReceipts" => {
            let height = match p.first() {
                Some(Value::String(s)) if s.len() == 66 => {
                    chain.store().height_of(&hash_param(p, 0)?)?
                }
                other => block_number(chain, other)?,
            };
            block_receipts(chain, height)
        }
        "web3_sha3" => Ok(hex_value(&tongtian_crypto::eth::keccak256(&parse_hex(
            str_param(p, 0, "data")?,
            "data",
        )?))),
        "eth_getBlockByNumber" => {
            let full = p.get(1).and_then(Value::as_bool).unwrap_or(false);
            match block_number(chain, p.first())? {
                Some(h) => block(chain, h, full),
                None => Ok(Value::Null),
            }
        }
        "eth_getBlockByHash" => {
            let full = p.get(1).and_then(Value::as_bool).unwrap_or(false);
            match chain.store().height_of(&hash_param(p, 0)?)? {
                Some(h) => block(chain, h, full),
                None => Ok(Value::Null),
            }
        }
        "net_peerCount" => Ok(qty(chain.peer_count() as u64)),
        "txpool_status" => Ok(json!({
            "pending": qty(chain.mempool().len() as u64),
            "queued": qty(chain.mempool().queued_len() as u64),
        })),
        "txpool_content" => Ok(txpool_content(chain, None)),
        "txpool_contentFrom" => Ok(txpool_content(chain, Some(&addr_param(p, 0)?))),
        "eth_getBlockTransactionCountByNumber" | "eth_getUncleCountByBlockNumber" => {
            let height = block_number(chain, p.first())?;
            block_count(chain, height, method.contains("Uncle"))
        }
        "eth_getBlockTransactionCountByHash" | "eth_getUncleCountByBlockHash" => {
            let height = chain.store().height_of(&hash_param(p, 0)?)?;
            block_count(chain, height, method.contains("Uncle"))
        }
        "eth_getTransactionByBlockNumberAndIndex" => {
            let height = block_number(chain, p.first())?;
            tx_at(chain, height, p.get(1))
        }
        "eth_getTransactionByBlockHashAndIndex" => {
            let height = chain.store().height_of(&hash_param(p, 0)?)?;
            tx_at(chain, height, p.get(1))
        }
        "eth_getLogs" => log_query(p)?.logs(chain),
        "eth_newFilter" => install(rpc, FilterKind::Logs(log_query(p)?)),
        "eth_newBlockFilter" => install(rpc, FilterKind::Blocks),
        "eth_newPendingTransactionFilter" => install(rpc, FilterKind::Pending),
        "eth_getFilterChanges" => filter_changes(rpc, filter_id(p)?),
        "eth_getFilterLogs" => {
            let id = filter_id(p)?;
            match rpc.filters.get(id, Instant::now()) {
                None => Err(filter_not_found()),
                Some(FilterKind::Blocks | FilterKind::Pending) => Err(RpcError::params(format!(
                    "filter {id} is not a log filter; eth_getFilterLogs reads log filters"
                ))),
                Some(FilterKind::Logs(q)) => q.logs(chain),
            }
        }
        "eth_uninstallFilter" => Ok(Value::Bool(rpc.filters.uninstall(filter_id(p)?))),
        "eth_subscribe" => subscribe(rpc, p),
        "eth_unsubscribe" => Ok(Value::Bool(subscriptions(rpc)?.uninstall(str_param(
            p,
            0,
            "subscription id",
        )?))),
        "eth_feeHistory" => fee_history(chain, p),
        other => Err(RpcError {
            code: -32601,
            message: format!("the method {other} does not exist/is not available"),
            data: None,
        }),
    }
}

fn qty(n: u64) -> Value {
    Value::String(format!("{n:#x}"))
}

fn qty_u128(n: u128) -> Value {
    Value::String(format!("{n:#x}"))
}

fn hex_value(b: &[u8]) -> Value {
    Value::String(const_hex::encode_prefixed(b))
}

fn parse_hex(s: &str, what: &str) -> Result<Vec<u8>, RpcError> {
    let h = s
        .strip_prefix("0x")
        .ok_or_else(|| RpcError::params(format!("{what}: expected 0x-prefixed hex")))?;
    let h = if h.len() % 2 == 1 {
        format!("0{h}")
    } else {
        h.to_string()
    };
    hex::decode(h).map_err(|e| RpcError::params(format!("{what}: {e}")))
}

fn str_param<'a>(p: &'a [Value], i: usize, what: &str) -> Result<&'a str, RpcError> {
    p.get(i)
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::params(format!("missing or non-string parameter {i} ({what})")))
}

fn parse_addr(s: &str) -> Result<Address, RpcError> {
    let b = parse_hex(s, "address")?;
    let a: [u8; 20] = b
        .try_into()
        .map_err(|_| RpcError::params("address must be 20 bytes"))?;
    Ok(Address(a))
}

fn addr_param(p: &[Value], i: usize) -> Result<Address, RpcError> {
    parse_addr(str_param(p, i, "address")?)
}

fn hash_param(p: &[Value], i: usize) -> Result<H256, RpcError> {
    let b = parse_hex(str_param(p, i, "hash")?, "hash")?;
    let a: [u8; 32] = b
        .try_into()
        .map_err(|_| RpcError::params("hash must be 32 bytes"))?;
    Ok(H256(a))
}

fn word_param(p: &[Value], i: usize) -> Result<[u8; 32], RpcError> {
    let b = parse_hex(str_param(p, i, "slot")?, "slot")?;
    if b.len() > 32 {
        return Err(RpcError::params("slot longer than 32 bytes"));
    }
    let mut w = [0u8; 32];
    w[32 - b.len()..].copy_from_slice(&b);
    Ok(w)
}

fn parse_qty(v: &Value, what: &str) -> Result<u128, RpcError> {
    match v {
        Value::String(s) => {
            let h = s
                .strip_prefix("0x")
                .ok_or_else(|| RpcError::params(format!("{what}: expected a hex quantity")))?;
            u128::from_str_radix(if h.is_empty() { "0" } else { h }, 16)
                .map_err(|e| RpcError::params(format!("{what}: {e}")))
        }
        Value::Number(n) => n
            .as_u64()
            .map(u128::from)
            .ok_or_else(|| RpcError::params(format!("{what}: not a quantity"))),
        _ => Err(RpcError::params(format!("{what}: expected a hex quantity"))),
    }
}

/// The height a block parameter names, if it names one: `None` for the
/// moving tags (`latest`, `pending`, `safe`, `finalized`) and for an absent
/// parameter; `earliest` is 0.
fn fixed_height(v: Option<&Value>) -> Result<Option<u64>, RpcError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if matches!(s.as_str(), "latest" | "pending" | "safe" | "finalized") =>
        {
            Ok(None)
        }
        Some(Value::String(s)) if s == "earliest" => Ok(Some(0)),
        Some(v) => {
            let n = parse_qty(v, "block number")?;
            u64::try_from(n)
                .map(Some)
                .map_err(|_| RpcError::params("block number too large"))
        }
    }
}

/// A block tag or number; `None` for a number past the head.
fn block_number(chain: &ChainRuntime, v: Option<&Value>) -> Result<Option<u64>, RpcError> {
    let latest = chain.latest().0;
    let n = fixed_height(v)?.unwrap_or(latest);
    Ok((n <= latest).then_some(n))
}

/// The state a query reads: the latest, or the state after a past block.
enum View<'a> {
    Latest(&'a ChainRuntime),
    At(tongtian_storage::StateAt<'a>),
}

impl<'a> View<'a> {
    /// The state named by a block parameter (absent means latest).
    fn of(chain: &'a ChainRuntime, v: Option<&Value>) -> Result<Self, RpcError> {
        Ok(match state_height(chain, v)? {
            None => View::Latest(chain),
            Some(h) => View::At(chain.store().at(h)?),
        })
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, RpcError> {
        Ok(match self {
            View::Latest(c) => c.store().get(key)?,
            View::At(s) => s.get(key)?,
        })
    }

    fn account(&self, a: &Address) -> Result<tongtian_types::Account, RpcError> {
        match self.get(&tongtian_execution::account_key(a))? {
            None => Ok(tongtian_types::Account::default()),
            Some(b) => tongtian_execution::decode_account(&b)
                .ok_or_else(|| RpcError::server(format!("corrupt account {a}"))),
        }
    }
}

/// The height whose post-state a query asks for: `None` for the latest
/// (the tags `latest`, `pending`, `safe`, `finalized`, or the head's own
/// number), else a committed height. Accepts a tag, a number, or an
/// EIP-1898 object with `blockNumber` or `blockHash`.
fn state_height(chain: &ChainRuntime, v: Option<&Value>) -> Result<Option<u64>, RpcError> {
    let not_found = || RpcError::server("header not found");
    let height = match v {
        Some(Value::Object(o)) => match (o.get("blockHash"), o.get("blockNumber")) {
            (Some(h), _) => {
                let h = h
                    .as_str()
                    .ok_or_else(|| RpcError::params("blockHash: expected a hash"))?;
                let h = parse_hex(h, "blockHash")?;
                let h =
                    H256::from_slice(&h).map_err(|_| RpcError::params("blockHash: 32 bytes"))?;
                chain.store().height_of(&h)?.ok_or_else(not_found)?
            }
            (None, Some(n)) => return state_height(chain, Some(n)),
            (None, None) => {
                return Err(RpcError::params("block: expected blockNumber or blockHash"))
            }
        },
        other => match block_number(chain, other)? {
            Some(n) => n,
            None => return Err(not_found()),
        },
    };
    Ok((height < chain.latest().0).then_some(height))
}

fn code_of(view: &View<'_>, a: &Address) -> Result<Option<Vec<u8>>, RpcError> {
    let Some(info) = view.get(&code_key(a))? else {
        return Ok(None);
    };
    let info: CodeInfo = decode("code info", &info).map_err(|e| RpcError::server(e.to_string()))?;
    view.get(&blob_key(&info.hash))
}

/// The fields of a call or transaction object (`eth_call`,
/// `eth_estimateGas`, `eth_sendTransaction`, `eth_signTransaction`).
#[derive(Debug, Default)]
struct CallObject {
    from: Option<Address>,
    to: Option<Address>,
    data: Vec<u8>,
    value: u128,
    gas: Option<u64>,
    /// `gasPrice`, or else `maxFeePerGas`.
    gas_price: Option<u128>,
    nonce: Option<u64>,
    chain_id: Option<u64>,
    /// `accessList`: EIP-2930 entries, applied as a transaction's would be.
    access_list: AccessList,
}

/// An `accessList` parameter: `[{"address": .., "storageKeys": [..]}, ..]`.
fn parse_access_list(v: Option<&Value>) -> Result<AccessList, RpcError> {
    let bad = || RpcError::params("accessList: expected [{address, storageKeys}]");
    let Some(v) = v else {
        return Ok(AccessList::new());
    };
    v.as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|entry| {
            let address = entry
                .get("address")
                .and_then(Value::as_str)
                .ok_or_else(bad)?;
            let keys = match entry.get("storageKeys") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(keys)) => keys
                    .iter()
                    .map(|k| {
                        let k = k.as_str().ok_or_else(bad)?;
                        parse_hex(k, "storage key")?
                            .try_into()
                            .map_err(|_| RpcError::params("accessList: a storage key of 32 bytes"))
                    })
                    .collect::<Result<Vec<[u8; 32]>, RpcError>>()?,
                Some(_) => return Err(bad()),
            };
            Ok((parse_addr(address)?, keys))
        })
        .collect()
}

/// The JSON-RPC view of an access list.
fn access_list_view(list: &AccessList) -> Value {
    Value::Array(
        list.iter()
            .map(|(a, keys)| {
                json!({
                    "address": a.to_string(),
                    "storageKeys": keys.iter().map(|k| hex_value(k)).collect::<Vec<Value>>(),
                })
            })
            .collect(),
    )
}

impl CallObject {
    fn parse(v: Option<&Value>) -> Result<CallObject, RpcError> {
        let obj = v
            .and_then(Value::as_object)
            .ok_or_else(|| RpcError::params("expected a call object"))?;
        let present = |k: &str| obj.get(k).filter(|v| !v.is_null());
        let address = |k: &str| match present(k) {
            None => Ok(None),
            Some(Value::String(s)) => parse_addr(s).map(Some),
            Some(_) => Err(RpcError::params(format!("{k}: expected an address"))),
        };
        let number = |k: &str| {
            present(k)
                .map(|v| parse_qty(v, k).map(|n| u64::try_from(n).unwrap_or(u64::MAX)))
                .transpose()
        };
        Ok(CallObject {
            from: address("from")?,
            to: address("to")?,
            data: match present("data").or_else(|| present("input")) {
                None => Vec::new(),
                Some(Value::String(s)) => parse_hex(s, "data")?,
                Some(_) => return Err(RpcError::params("data: expected hex")),
            },
            value: present("value")
                .map(|v| parse_qty(v, "value"))
                .transpose()?
                .unwrap_or(0),
            gas: number("gas")?,
            gas_price: present("gasPrice")
                .map(|v| parse_qty(v, "gasPrice"))
                .or_else(|| present("maxFeePerGas").map(|v| parse_qty(v, "maxFeePerGas")))
                .transpose()?,
            nonce: number("nonce")?,
            chain_id: number("chainId")?,
            access_list: parse_access_list(present("accessList"))?,
        })
    }

    /// Run it on the state at `at` (`None`: the latest): its output and
    /// the gas it used, or the revert (code 3, with its data) or failure.
    fn run(&self, chain: &ChainRuntime, at: Option<u64>) -> Result<(Vec<u8>, u64), RpcError> {
        let sim = chain.simulate(
            at,
            CallRequest {
                from: self.from.unwrap_or(Address::ZERO),
                to: self.to,
                vm: VmKind::Evm,
                input: self.data.clone(),
                value: self.value,
                gas_limit: self.gas.unwrap_or(DEFAULT_CALL_GAS),
                access_list: self.access_list.clone(),
            },
        )?;
        match sim.result.status {
            Ok(out) => Ok((out, sim.result.gas_used)),
            Err(VmFailure::Revert(data)) => Err(RpcError {
                code: 3,
                message: VmFailure::Revert(data.clone()).message(),
                data: Some(format!("0x{}", hex::encode(&data))),
            }),
            Err(f) => Err(RpcError::server(f.message())),
        }
    }
}

/// The gas limit to offer for the call `c` on the state at `at`: the gas
/// it used with a quarter more (refunds are returned only at the end, up
/// to a fifth of the gas spent), checked by running it at that limit. A
/// call that still runs short needs more than any fixed margin gives:
/// every nested call keeps back 1/64 of the gas left (EIP-150), so deep
/// call chains need far more than they use. Then the least limit that
/// succeeds is searched for between that and the call's cap, to within
/// 1%, as Geth does. A call that fails at its cap gets its failure.
fn estimate_gas(chain: &ChainRuntime, c: &CallObject, at: Option<u64>) -> Result<u64, RpcError> {
    let cap = c.gas.unwrap_or(DEFAULT_CALL_GAS);
    let (_, used) = c.run(chain, at)?;
    let succeeds = |gas: u64| {
        CallObject {
            gas: Some(gas),
            data: c.data.clone(),
            access_list: c.access_list.clone(),
            ..*c
        }
        .run(chain, at)
        .is_ok()
    };
    let guess = (used + used / 4).min(cap);
    if succeeds(guess) {
        return Ok(guess);
    }
    // `low` fails and `high` succeeds.
    let (mut low, mut high) = (guess, cap);
    while high - low > (high / 100).max(1) {
        let mid = low + (high - low) / 2;
        if succeeds(mid) {
            high = mid;
        } else {
            low = mid;
        }
    }
    Ok(high)
}

/// `eth_call` and `eth_estimateGas`.
fn call(chain: &ChainRuntime, estimate: bool, p: &[Value]) -> RpcResult {
    let object = CallObject::parse(p.first())?;
    let at = state_height(chain, p.get(1))?;
    if estimate {
        return Ok(qty(estimate_gas(chain, &object, at)?));
    }
    Ok(hex_value(&object.run(chain, at)?.0))
}

/// The next nonce of `a` counting its transactions in the pool.
fn pending_nonce(chain: &ChainRuntime, a: &Address) -> Result<u64, RpcError> {
    // The pool before the state: a block commits its state before it
    // leaves the pool, so a sender missing from the pool here has its last
    // transaction in the state read next. The other order could read the
    // state before the commit and the pool after.
    let queued = chain.mempool().next_nonce(a);
    let committed = View::Latest(chain).account(a)?.nonce;
    Ok(queued.unwrap_or(committed).max(committed))
}

/// The key of an unlocked account.
fn signing_key<'a>(rpc: &Rpc<'a>, a: &Address) -> Result<&'a EthKey, RpcError> {
    rpc.accounts
        .key(a)
        .ok_or_else(|| RpcError::server(format!("unknown account {a}")))
}

/// `eth_sendTransaction` / `eth_signTransaction`: the object made a signed
/// EIP-1559 transaction of its unlocked `from`, with what it leaves out
/// filled in: the pending nonce, the gas as `eth_estimateGas` finds it (a
/// call that would revert is refused here, with its revert data), the
/// minimum gas price.
fn sign_transaction(rpc: &Rpc<'_>, c: &CallObject) -> Result<Vec<u8>, RpcError> {
    let chain = rpc.chain;
    let from = c
        .from
        .ok_or_else(|| RpcError::params("from: the sending account is required"))?;
    let key = signing_key(rpc, &from)?;
    let chain_id = chain.spec().chain_id;
    if let Some(id) = c.chain_id.filter(|id| *id != chain_id) {
        return Err(RpcError::params(format!(
            "chainId {id} is not this chain's ({chain_id})"
        )));
    }
    let gas = match c.gas {
        Some(g) => g,
        None => estimate_gas(chain, c, None)?,
    };
    let price = c
        .gas_price
        .unwrap_or(u128::from(chain.spec().gas.min_gas_price));
    let nonce = match c.nonce {
        Some(n) => n,
        None => pending_nonce(chain, &from)?,
    };
    Ok(sign_eip1559_listing(
        key,
        chain_id,
        nonce,
        price,
        gas,
        c.to,
        c.value,
        &c.data,
        &c.access_list,
    ))
}

/// A message to sign: hex bytes, or else the string's own UTF-8 bytes (as
/// Anvil takes `personal_sign` text).
fn message_param(p: &[Value], i: usize) -> Result<Vec<u8>, RpcError> {
    let s = str_param(p, i, "message")?;
    if s.starts_with("0x") {
        parse_hex(s, "message")
    } else {
        Ok(s.as_bytes().to_vec())
    }
}

/// `eth_sign` / `personal_sign`: the EIP-191 signature of `message` by an
/// unlocked account, 65 bytes `r || s || v`.
fn sign_message(rpc: &Rpc<'_>, a: &Address, message: &[u8]) -> RpcResult {
    let key = signing_key(rpc, a)?;
    Ok(hex_value(
        &key.sign_recoverable(&personal_message_digest(message)),
    ))
}

/// The EIP-712 signing digest of typed data given as an object or as its
/// JSON text (as ethers and MetaMask send it).
fn typed_data_digest(v: Option<&Value>) -> Result<[u8; 32], RpcError> {
    let bad = |e: String| RpcError::params(format!("typed data: {e}"));
    let typed: alloy_dyn_abi::eip712::TypedData = match v {
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| bad(e.to_string()))?,
        Some(o @ Value::Object(_)) => {
            serde_json::from_value(o.clone()).map_err(|e| bad(e.to_string()))?
        }
        _ => return Err(bad("expected an object or its JSON text".into())),
    };
    let digest = typed
        .eip712_signing_hash()
        .map_err(|e| bad(e.to_string()))?;
    Ok(digest.0)
}

/// Admit a raw Ethereum transaction; its hash.
fn submit_raw(chain: &ChainRuntime, raw: Vec<u8>) -> RpcResult {
    let tx = SignedTransaction::from_ethereum(raw)
        .map_err(|e| RpcError::server(format!("invalid transaction: {e}")))?;
    let bytes = encode(&tx);
    match chain.submit_batch(&[&bytes]).pop() {
        Some(Ok(hash)) => Ok(hex_value(&hash.0)),
        Some(Err(tongtian_mempool::AdmissionError::AlreadyKnown(_))) => {
            Err(RpcError::server("already known"))
        }
        Some(Err(e)) => Err(RpcError::server(eth_message(&e))),
        None => Err(RpcError::server("not submitted")),
    }
}

/// Admission errors in the words Ethereum tools look for.
fn eth_message(e: &tongtian_mempool::AdmissionError) -> String {
    match e.code() {
        "nonce_too_low" => format!("nonce too low: {e}"),
        "nonce_too_high" => format!("nonce too high: {e}"),
        // The nonce is held by a transaction this one does not outbid.
        "nonce_taken" => format!("replacement transaction underpriced: {e}"),
        "insufficient_funds" => format!("insufficient funds for gas * price + value: {e}"),
        "intrinsic_gas_too_low" => format!("intrinsic gas too low: {e}"),
        "wrong_chain_id" => format!("invalid chain id: {e}"),
        _ => e.to_string(),
    }
}

/// The hash of the committed block at `height`.
fn block_hash_at(chain: &ChainRuntime, height: u64) -> Result<H256, RpcError> {
    let header = chain
        .store()
        .header(height)?
        .ok_or_else(|| RpcError::server("block missing"))?;
    Ok(header.hash(chain.spec().suite))
}

/// `v`, `r`, `s` shown for transactions without an Ethereum signature.
const NO_SIGNATURE: (u64, [u8; 32], [u8; 32]) = (0, [0; 32], [0; 32]);

/// The Ethereum view of a transaction, mined (`at` = height, block hash,
/// index) or pending.
fn tx_view(chain: &ChainRuntime, tx: &SignedTransaction, at: Option<(u64, H256, u32)>) -> Value {
    let suite = chain.spec().suite;
    let hash = tx.hash(suite);
    let from = tx.sender(suite);
    let (bn, bh, idx) = match at {
        Some((h, bh, i)) => (qty(h), hex_value(&bh.0), qty(i as u64)),
        None => (Value::Null, Value::Null, Value::Null),
    };
    let mut v = json!({
        "hash": hex_value(&hash.0),
        "blockNumber": bn,
        "blockHash": bh,
        "transactionIndex": idx,
        "from": from.to_string(),
        "nonce": qty(tx.tx.nonce),
        "gas": qty(tx.tx.gas_limit),
        "gasPrice": qty(tx.tx.gas_price),
        "chainId": qty(tx.tx.chain_id),
        "accessList": [],
    });
    let (to, value, input, ty, sig) = match &tx.tx.action {
        Action::Ethereum { raw } => match EthTx::decode(raw) {
            Ok(e) => {
                if let Some(p) = e.max_priority_fee_per_gas {
                    v["maxPriorityFeePerGas"] = qty_u128(p);
                    v["maxFeePerGas"] = qty_u128(e.max_fee_per_gas);
                }
                v["accessList"] = access_list_view(&e.access_list);
                let (sv, r, s) = e.signature();
                (e.to, e.value, e.input, e.tx_type, (sv, r, s))
            }
            Err(_) => (None, 0, Vec::new(), 0, NO_SIGNATURE),
        },
        Action::Transfer { to, amount, memo } => {
            (Some(*to), *amount, memo.clone(), 0, NO_SIGNATURE)
        }
        Action::Call { to, input, value } => (Some(*to), *value, input.clone(), 0, NO_SIGNATURE),
        Action::Deploy { code, value, .. } => (None, *value, code.clone(), 0, NO_SIGNATURE),
        Action::Module { .. } => (None, 0, Vec::new(), 0, NO_SIGNATURE),
    };
    v["to"] = to.map_or(Value::Null, |a| Value::String(a.to_string()));
    v["value"] = qty_u128(value);
    v["input"] = hex_value(&input);
    v["type"] = qty(ty as u64);
    v["v"] = qty(sig.0);
    if ty != 0 {
        v["yParity"] = qty(sig.0);
    }
    v["r"] = Value::String(format!("{:#x}", num(&sig.1)));
    v["s"] = Value::String(format!("{:#x}", num(&sig.2)));
    v
}

/// A 32-byte big-endian number as a u128-or-bigger hex string helper.
struct Num<'a>(&'a [u8; 32]);

impl std::fmt::LowerHex for Num<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = hex::encode(self.0);
        let t = s.trim_start_matches('0');
        if f.alternate() {
            f.write_str("0x")?;
        }
        f.write_str(if t.is_empty() { "0" } else { t })
    }
}

fn num(b: &[u8; 32]) -> Num<'_> {
    Num(b)
}

/// Most transactions per section `txpool_content` lists.
const TXPOOL_CONTENT_MAX: usize = 4_096;

/// Geth's `txpool_content` (or, for one sender, `txpool_contentFrom`):
/// `{"pending": {sender: {nonce: tx}}, "queued": {..}}`, up to
/// [`TXPOOL_CONTENT_MAX`] transactions per section. With a sender, its
/// sections are the maps of nonces themselves, as Geth answers.
fn txpool_content(chain: &ChainRuntime, sender: Option<&Address>) -> Value {
    let (pending, queued) = chain.mempool().content(sender, TXPOOL_CONTENT_MAX);
    let section = |txs: Vec<tongtian_types::CheckedTx>| {
        let mut by_sender = serde_json::Map::new();
        for t in txs {
            let entry = by_sender
                .entry(t.sender.to_string())
                .or_insert_with(|| json!({}));
            entry[t.tx.tx.nonce.to_string()] = tx_view(chain, &t.tx, None);
        }
        match sender {
            Some(a) => by_sender
                .remove(&a.to_string())
                .unwrap_or_else(|| json!({})),
            None => Value::Object(by_sender),
        }
    };
    json!({ "pending": section(pending), "queued": section(queued) })
}

fn tx_by_hash(chain: &ChainRuntime, hash: &H256) -> RpcResult {
    if let Some(rec) = chain.store().tx(hash)? {
        let bh = block_hash_at(chain, rec.height)?;
        return Ok(tx_view(chain, &rec.tx, Some((rec.height, bh, rec.index))));
    }
    Ok(chain
        .mempool()
        .get(hash)
        .map_or(Value::Null, |t| tx_view(chain, &t.tx, None)))
}

fn log_view(e: &tongtian_types::Event, at: &LogPlace) -> Option<Value> {
    if e.name != tongtian_vm_evm::LOG_EVENT {
        return None;
    }
    let attr = |k: &str| {
        e.attributes
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let topics: Vec<Value> = attr("topics")
        .split(',')
        .filter(|t| !t.is_empty())
        .map(|t| Value::String(t.to_string()))
        .collect();
    Some(json!({
        "address": e.emitter.to_string(),
        "topics": topics,
        "data": attr("data"),
        "blockNumber": qty(at.height),
        "blockHash": hex_value(&at.block_hash.0),
        "transactionHash": hex_value(&at.tx_hash.0),
        "transactionIndex": qty(at.tx_index as u64),
        "logIndex": qty(at.log_index as u64),
        "removed": false,
    }))
}

struct LogPlace {
    height: u64,
    block_hash: H256,
    tx_hash: H256,
    tx_index: u32,
    log_index: u32,
}

fn receipt_by_hash(chain: &ChainRuntime, hash: &H256) -> RpcResult {
    let Some(rec) = chain.store().tx(hash)? else {
        return Ok(Value::Null);
    };
    let bh = block_hash_at(chain, rec.height)?;
    // Its own chunk of receipts is read, not the whole block's.
    let Some(placed) = chain.store().receipt_at(rec.height, rec.index)? else {
        return Ok(Value::Null);
    };
    let before = ReceiptPlace {
        cumulative_gas: placed.gas_before,
        logs_through: placed.events_before,
        ..ReceiptPlace::first(rec.height, bh)
    };
    let r = &placed.receipt;
    Ok(receipt_view(chain, &rec.tx, r, &before.next(r)))
}

/// `eth_getBlockReceipts`: every receipt of a block, in order; null for a
/// block that does not exist.
fn block_receipts(chain: &ChainRuntime, height: Option<u64>) -> RpcResult {
    let Some(block) = height
        .map(|h| chain.store().block(h))
        .transpose()?
        .flatten()
    else {
        return Ok(Value::Null);
    };
    let height = block.header.height;
    let receipts = chain.store().block_receipts(height)?;
    let mut at = ReceiptPlace::first(height, block.header.hash(chain.spec().suite));
    let mut out = Vec::with_capacity(receipts.len());
    for (tx, r) in block.txs.iter().zip(&receipts) {
        at = at.next(r);
        out.push(receipt_view(chain, tx, r, &at));
    }
    Ok(Value::Array(out))
}

/// Where a receipt stands in its block: the gas used up to and including
/// it, and the block-wide index of its first log.
#[derive(Clone, Copy)]
struct ReceiptPlace {
    height: u64,
    block_hash: H256,
    cumulative_gas: u64,
    first_log: u32,
    /// Logs of the receipts so far, this one included.
    logs_through: u32,
}

impl ReceiptPlace {
    /// Before a block's first receipt.
    fn first(height: u64, block_hash: H256) -> Self {
        ReceiptPlace {
            height,
            block_hash,
            cumulative_gas: 0,
            first_log: 0,
            logs_through: 0,
        }
    }

    /// The place of `r`, the receipt after this one.
    fn next(&self, r: &tongtian_types::Receipt) -> Self {
        ReceiptPlace {
            cumulative_gas: self.cumulative_gas + r.gas_used,
            first_log: self.logs_through,
            logs_through: self.logs_through + r.events.len() as u32,
            ..*self
        }
    }
}

/// The Ethereum view of the receipt `r` of transaction `tx` at `at`.
fn receipt_view(
    chain: &ChainRuntime,
    tx: &SignedTransaction,
    r: &tongtian_types::Receipt,
    at: &ReceiptPlace,
) -> Value {
    let hash = tx.hash(chain.spec().suite);
    let bh = at.block_hash;
    let view = tx_view(chain, tx, Some((at.height, bh, r.index)));
    let logs: Vec<Value> = r
        .events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            log_view(
                e,
                &LogPlace {
                    height: at.height,
                    block_hash: bh,
                    tx_hash: hash,
                    tx_index: r.index,
                    log_index: at.first_log + i as u32,
                },
            )
        })
        .collect();
    let mut v = json!({
        "transactionHash": hex_value(&hash.0),
        "transactionIndex": qty(r.index as u64),
        "blockHash": hex_value(&bh.0),
        "blockNumber": qty(at.height),
        "from": r.sender.to_string(),
        "to": view["to"].clone(),
        "cumulativeGasUsed": qty(at.cumulative_gas),
        "gasUsed": qty(r.gas_used),
        "effectiveGasPrice": qty(tx.tx.gas_price),
        "contractAddress": r.contract_address.map_or(Value::Null, |a| Value::String(a.to_string())),
        "logsBloom": hex_value(&tongtian_vm_evm::logs_bloom(&r.events).0),
        "logs": logs,
        "status": qty(matches!(r.status, TxStatus::Success) as u64),
        "type": view["type"].clone(),
    });
    if let TxStatus::Failed { code, message } = &r.status {
        v["tongtianStatus"] = json!({"code": code, "message": message});
        if !r.output.is_empty() {
            v["revertReason"] = hex_value(&r.output);
        }
    }
    v
}

fn block(chain: &ChainRuntime, height: u64, full: bool) -> RpcResult {
    let store = chain.store();
    let Some(h) = store.header(height)? else {
        return Ok(Value::Null);
    };
    let bh = h.hash(chain.spec().suite);
    // Size, gas and bloom were kept when the block was written: only a
    // full view reads the transactions, and none reads the receipts.
    let stats = chain
        .block_stats(height)
        .map_err(|e| RpcError::server(e.to_string()))?
        .ok_or_else(|| RpcError::server(format!("block {height} has a header but no body")))?;
    let txs: Vec<Value> = if full {
        let b = store
            .block(height)?
            .ok_or_else(|| RpcError::server(format!("block {height} vanished")))?;
        b.txs
            .iter()
            .zip(0u32..)
            .map(|(t, i)| tx_view(chain, t, Some((height, bh, i))))
            .collect()
    } else {
        store
            .block_tx_hashes(height)?
            .unwrap_or_default()
            .iter()
            .map(|t| hex_value(&t.0))
            .collect()
    };
    Ok(json!({
        "number": qty(height),
        "hash": hex_value(&bh.0),
        "parentHash": hex_value(&h.parent_hash.0),
        "nonce": "0x0000000000000000",
        "mixHash": hex_value(&[0u8; 32]),
        "sha3Uncles": EMPTY_UNCLES,
        "logsBloom": hex_value(&stats.filters.logs),
        "transactionsRoot": hex_value(&h.tx_root.0),
        "stateRoot": hex_value(&h.state_root.0),
        "receiptsRoot": hex_value(&h.receipts_root.0),
        "miner": h.proposer.to_string(),
        "difficulty": "0x0",
        "totalDifficulty": "0x0",
        "extraData": "0x",
        "size": qty(stats.size),
        "gasLimit": qty(BLOCK_GAS_LIMIT),
        "gasUsed": qty(stats.gas_used),
        "timestamp": qty(h.timestamp_ms / 1000),
        "baseFeePerGas": "0x0",
        "transactions": txs,
        "uncles": [],
    }))
}

/// A checked `eth_getLogs` / `eth_newFilter` filter object. Block bounds
/// keep their tags, so a filter's `latest` moves with the chain.
#[derive(Clone, Debug)]
pub(crate) struct LogQuery {
    /// `blockHash`: that block only (it excludes the bounds).
    block_hash: Option<H256>,
    /// `fromBlock` as a height; `None` for a moving tag or none.
    from: Option<u64>,
    /// `toBlock` as a height; `None` for a moving tag or none.
    to: Option<u64>,
    /// Emitters wanted; empty for any.
    addresses: Vec<Address>,
    /// `topics[i]`: `None` for any, else the alternatives (lower-case hex).
    topics: Vec<Option<Vec<String>>>,
}

impl LogQuery {
    /// The heights the query covers now (`from > to` when none): its block,
    /// or its bounds with the moving tags read as the head.
    fn span(&self, chain: &ChainRuntime) -> Result<(u64, u64), RpcError> {
        let latest = chain.latest().0;
        Ok(match self.block_hash {
            Some(h) => {
                let height = chain
                    .store()
                    .height_of(&h)?
                    .ok_or_else(|| RpcError::params("unknown block hash"))?;
                (height, height)
            }
            None => (
                self.from.unwrap_or(latest),
                self.to.unwrap_or(latest).min(latest),
            ),
        })
    }

    /// The logs it matches now (`eth_getLogs`, `eth_getFilterLogs`).
    fn logs(&self, chain: &ChainRuntime) -> RpcResult {
        let (from, to) = self.span(chain)?;
        find_logs(chain, self, from, to)
    }
}

/// Parameter 0 as a log filter object.
fn log_query(p: &[Value]) -> Result<LogQuery, RpcError> {
    let filter = p
        .first()
        .and_then(Value::as_object)
        .ok_or_else(|| RpcError::params("expected a filter object"))?;
    let block_hash = match filter.get("blockHash") {
        None | Some(Value::Null) => None,
        Some(bh) => {
            if filter.contains_key("fromBlock") || filter.contains_key("toBlock") {
                return Err(RpcError::params("blockHash excludes fromBlock and toBlock"));
            }
            Some(hash_param(std::slice::from_ref(bh), 0)?)
        }
    };
    let from = fixed_height(filter.get("fromBlock"))?;
    let to = fixed_height(filter.get("toBlock"))?;
    let addresses: Vec<Address> = match filter.get("address") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![parse_addr(s)?],
        Some(Value::Array(xs)) => xs
            .iter()
            .map(|x| parse_addr(x.as_str().unwrap_or("")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(RpcError::params("address: expected an address or a list")),
    };
    // topics[i]: null (any), a topic, or a list of alternatives.
    let topic_filter: Vec<Option<Vec<String>>> = match filter.get("topics") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ts)) => ts
            .iter()
            .map(|t| match t {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(vec![s.to_lowercase()])),
                Value::Array(alts) => Ok(Some(
                    alts.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_lowercase)
                        .collect(),
                )),
                _ => Err(RpcError::params("topics: bad entry")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(RpcError::params("topics: expected a list")),
    };
    Ok(LogQuery {
        block_hash,
        from,
        to,
        addresses,
        topics: topic_filter,
    })
}

/// The logs of heights `from..=to` that `q` matches.
/// Whether a block's logs bloom may hold a log that `q` matches: one of
/// its addresses (if it names any), and at each topic position it
/// constrains, one of the alternatives. A topic that is not 32 bytes of hex
/// is not tested (the logs themselves are, after).
fn bloom_test(q: &LogQuery) -> impl Fn(&BlockFilters) -> bool {
    let addresses: Vec<BloomBits> = q.addresses.iter().map(|a| BloomBits::of(&a.0)).collect();
    let topics: Vec<Option<Vec<BloomBits>>> = q
        .topics
        .iter()
        .flatten()
        .map(|alts| {
            alts.iter()
                .map(|t| {
                    const_hex::decode_to_array::<_, 32>(t)
                        .ok()
                        .map(|b| BloomBits::of(&b))
                })
                .collect()
        })
        .collect();
    move |filters| {
        let bloom = LogsBloom(filters.logs);
        (addresses.is_empty() || addresses.iter().any(|a| bloom.may_contain(a)))
            && topics.iter().all(|alts| {
                alts.as_ref()
                    .is_none_or(|alts| alts.iter().any(|t| bloom.may_contain(t)))
            })
    }
}

fn find_logs(chain: &ChainRuntime, q: &LogQuery, from: u64, to: u64) -> RpcResult {
    let (addresses, topic_filter) = (&q.addresses, &q.topics);
    if from > to {
        return Ok(json!([]));
    }
    let emitter = (addresses.len() == 1).then(|| addresses[0]);
    let records = chain
        .events_where(emitter, from, to, bloom_test(q))
        .map_err(|e| RpcError::server(e.to_string()))?;
    let mut out = Vec::new();
    let mut hashes: std::collections::HashMap<u64, H256> = Default::default();
    for rec in records {
        if !addresses.is_empty() && !addresses.contains(&rec.event.emitter) {
            continue;
        }
        let bh = match hashes.get(&rec.height) {
            Some(h) => *h,
            None => {
                let h = block_hash_at(chain, rec.height)?;
                hashes.insert(rec.height, h);
                h
            }
        };
        let place = LogPlace {
            height: rec.height,
            block_hash: bh,
            tx_hash: rec.tx_hash,
            tx_index: rec.tx_index,
            log_index: rec.log_index,
        };
        let Some(log) = log_view(&rec.event, &place) else {
            continue;
        };
        let topics: Vec<&str> = log["topics"]
            .as_array()
            .map(|ts| ts.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let matches = topic_filter.iter().enumerate().all(|(i, want)| match want {
            None => true,
            Some(alts) => topics
                .get(i)
                .is_some_and(|t| alts.iter().any(|a| a == &t.to_lowercase())),
        });
        if matches {
            out.push(log);
        }
    }
    Ok(Value::Array(out))
}

fn filter_not_found() -> RpcError {
    RpcError::server("filter not found")
}

fn filter_id(p: &[Value]) -> Result<&str, RpcError> {
    str_param(p, 0, "filter id")
}

/// The newest position a filter of `kind` could report: the head's height,
/// or the mempool's last arrival number.
fn head(chain: &ChainRuntime, kind: &FilterKind<LogQuery>) -> u64 {
    match kind {
        FilterKind::Logs(_) | FilterKind::Blocks => chain.latest().0,
        FilterKind::Pending => chain.mempool().last_arrival(),
    }
}

/// Install a filter that reports what comes after the current head.
fn install(rpc: &Rpc<'_>, kind: FilterKind<LogQuery>) -> RpcResult {
    let next = head(rpc.chain, &kind) + 1;
    rpc.filters
        .install(kind, next, Instant::now())
        .map(Value::String)
        .map_err(|e| RpcError::server(e.to_string()))
}

/// `eth_getFilterChanges`: what a filter matched in the blocks committed
/// (or the transactions admitted) since it was installed or last polled.
fn filter_changes(rpc: &Rpc<'_>, id: &str) -> RpcResult {
    let chain = rpc.chain;
    let (kind, positions) = rpc
        .filters
        .poll(id, Instant::now(), |kind| head(chain, kind))
        .ok_or_else(filter_not_found)?;
    changes(chain, &kind, positions, BlocksAs::Hashes)
}

/// How new blocks are reported: by hash (`eth_newBlockFilter`) or by
/// header (`eth_subscribe("newHeads")`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum BlocksAs {
    Hashes,
    Headers,
}

/// What a filter of `kind` reports for `positions` (heights, or mempool
/// arrival numbers): logs, blocks, or transaction hashes.
fn changes(
    chain: &ChainRuntime,
    kind: &FilterKind<LogQuery>,
    positions: std::ops::RangeInclusive<u64>,
    blocks_as: BlocksAs,
) -> RpcResult {
    match kind {
        FilterKind::Pending => Ok(Value::Array(
            chain
                .mempool()
                .arrivals(positions)
                .iter()
                .map(|h| hex_value(&h.0))
                .collect(),
        )),
        FilterKind::Blocks if blocks_as == BlocksAs::Headers => positions
            .map(|h| {
                let mut header = block(chain, h, false)?;
                if let Value::Object(o) = &mut header {
                    o.remove("transactions");
                }
                Ok(header)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        FilterKind::Blocks => positions
            .map(|h| block_hash_at(chain, h).map(|b| hex_value(&b.0)))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        // A filter on one block hash saw that block before it was installed.
        FilterKind::Logs(q) if q.block_hash.is_some() => Ok(json!([])),
        FilterKind::Logs(q) => {
            let from = (*positions.start()).max(q.from.unwrap_or(0));
            let to = (*positions.end()).min(q.to.unwrap_or(u64::MAX));
            find_logs(chain, q, from, to)
        }
    }
}

/// The connection's subscriptions; an error over HTTP.
fn subscriptions<'a>(rpc: &Rpc<'a>) -> Result<&'a EthFilters, RpcError> {
    rpc.subscriptions.ok_or_else(|| RpcError {
        code: -32601,
        message: "notifications not supported: eth_subscribe needs a WebSocket (ws://.../eth)"
            .into(),
        data: None,
    })
}

/// `eth_subscribe`: `["newHeads"]`, `["logs", filter]` or
/// `["newPendingTransactions"]`, reported from the next block (or
/// admission) on; the subscription id.
fn subscribe(rpc: &Rpc<'_>, p: &[Value]) -> RpcResult {
    let subs = subscriptions(rpc)?;
    let kind = match str_param(p, 0, "subscription kind")? {
        "newHeads" => FilterKind::Blocks,
        "newPendingTransactions" => FilterKind::Pending,
        "logs" => {
            let filter = p.get(1).cloned().unwrap_or_else(|| json!({}));
            let q = log_query(&[filter])?;
            if q.block_hash.is_some() || q.from.is_some() || q.to.is_some() {
                return Err(RpcError::params(
                    "a logs subscription reports new blocks: no blockHash, fromBlock or toBlock",
                ));
            }
            FilterKind::Logs(q)
        }
        other => {
            return Err(RpcError::params(format!(
                "unknown subscription {other:?}: expected newHeads, logs or newPendingTransactions"
            )))
        }
    };
    let next = head(rpc.chain, &kind) + 1;
    subs.install(kind, next, Instant::now())
        .map(Value::String)
        .map_err(|e| RpcError::server(e.to_string()))
}

/// What subscription `id` has to report since its last poll: one item per
/// notification (a header, a log or a transaction hash). Empty when
/// nothing is new or the subscription is gone.
pub(crate) fn subscription_changes(rpc: &Rpc<'_>, id: &str) -> Result<Vec<Value>, RpcError> {
    let Some(subs) = rpc.subscriptions else {
        return Ok(Vec::new());
    };
    let chain = rpc.chain;
    let Some((kind, positions)) = subs.poll(id, Instant::now(), |kind| head(chain, kind)) else {
        return Ok(Vec::new());
    };
    match changes(chain, &kind, positions, BlocksAs::Headers)? {
        Value::Array(items) => Ok(items),
        other => Ok(vec![other]),
    }
}

/// `eth_feeHistory(blockCount, newestBlock, [rewardPercentiles])`. The
/// chain has no base fee (always 0), so a block's rewards are the gas
/// prices its transactions paid, at the requested percentiles of its gas
/// (Geth's method: transactions sorted by price, weighted by gas used).
fn fee_history(chain: &ChainRuntime, p: &[Value]) -> RpcResult {
    let count = p
        .first()
        .ok_or_else(|| RpcError::params("missing parameter 0 (blockCount)"))
        .and_then(|v| parse_qty(v, "blockCount"))?;
    let count = u64::try_from(count)
        .unwrap_or(u64::MAX)
        .min(MAX_FEE_HISTORY);
    let newest = match p.get(1) {
        None => return Err(RpcError::params("missing parameter 1 (newestBlock)")),
        v => {
            block_number(chain, v)?.ok_or_else(|| RpcError::params("request beyond head block"))?
        }
    };
    let percentiles: Option<Vec<f64>> = match p.get(2) {
        None | Some(Value::Null) => None,
        Some(Value::Array(xs)) => Some(
            xs.iter()
                .map(|x| {
                    x.as_f64()
                        .ok_or_else(|| RpcError::params("rewardPercentiles: expected numbers"))
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(RpcError::params("rewardPercentiles: expected a list")),
    };
    if let Some(ps) = &percentiles {
        if ps.len() > MAX_REWARD_PERCENTILES
            || ps.iter().any(|x| !(0.0..=100.0).contains(x))
            || ps.windows(2).any(|w| w[1] < w[0])
        {
            return Err(RpcError::params(format!(
                "rewardPercentiles: at most {MAX_REWARD_PERCENTILES}, increasing, each within 0-100"
            )));
        }
    }
    // `count` blocks ending at `newest`, fewer if the chain is shorter.
    let oldest = (newest + 1).saturating_sub(count);
    let mut ratios = Vec::new();
    let mut rewards = Vec::new();
    for height in oldest..=newest {
        // The gas of each block was kept with it; only rewards need the
        // transactions and their receipts.
        let gas_used = chain
            .block_stats(height)
            .map_err(|e| RpcError::server(e.to_string()))?
            .map_or(0, |s| s.gas_used);
        ratios.push(json!(gas_used as f64 / BLOCK_GAS_LIMIT as f64));
        if let Some(ps) = &percentiles {
            let receipts = chain.store().block_receipts(height)?;
            let txs = chain
                .store()
                .block(height)?
                .map(|b| b.txs)
                .unwrap_or_default();
            let mut paid: Vec<(u64, u64)> = txs
                .iter()
                .zip(&receipts)
                .map(|(t, r)| (t.tx.gas_price, r.gas_used))
                .collect();
            paid.sort_unstable();
            rewards.push(Value::Array(
                ps.iter()
                    .map(|pct| qty(price_at(&paid, gas_used, *pct)))
                    .collect(),
            ));
        }
    }
    let n = ratios.len();
    let mut out = json!({
        "oldestBlock": qty(oldest),
        "baseFeePerGas": vec![qty(0); if n == 0 { 0 } else { n + 1 }],
        "gasUsedRatio": ratios,
    });
    if percentiles.is_some() {
        out["reward"] = Value::Array(rewards);
    }
    Ok(out)
}

/// The price paid at percentile `pct` of `gas_used`, over `(price, gas)`
/// sorted by price: the first whose cumulative gas reaches it (0 for an
/// empty block).
fn price_at(paid: &[(u64, u64)], gas_used: u64, pct: f64) -> u64 {
    let threshold = gas_used as f64 * pct / 100.0;
    let mut sum = 0u64;
    for &(price, gas) in paid {
        sum += gas;
        if sum as f64 >= threshold {
            return price;
        }
    }
    paid.last().map_or(0, |&(price, _)| price)
}

/// A block's transaction count (or its uncle count, always 0); null for a
/// block that does not exist.
fn block_count(chain: &ChainRuntime, height: Option<u64>, uncles: bool) -> RpcResult {
    let Some(header) = height
        .map(|h| chain.store().header(h))
        .transpose()?
        .flatten()
    else {
        return Ok(Value::Null);
    };
    Ok(qty(if uncles {
        0
    } else {
        u64::from(header.tx_count)
    }))
}

/// The transaction at position `index` of the block at `height`; null if
/// there is no such block or position.
fn tx_at(chain: &ChainRuntime, height: Option<u64>, index: Option<&Value>) -> RpcResult {
    let index = parse_qty(index.unwrap_or(&Value::Null), "index")?;
    let Some(height) = height else {
        return Ok(Value::Null);
    };
    // One transaction read alone, not the whole block.
    let Ok(index) = u32::try_from(index) else {
        return Ok(Value::Null);
    };
    let Some(tx) = chain.store().tx_at(height, index)? else {
        return Ok(Value::Null);
    };
    let hash = block_hash_at(chain, height)?;
    Ok(tx_view(chain, &tx, Some((height, hash, index))))
}
