//! The REST/JSON API of a node, with its OpenAPI document at
//! `GET /v1/openapi.json` and a server-sent-events stream of blocks.
//!
//! Every error answer is JSON `{"code", "message"}` with a stable code and
//! a 4xx status for the client's mistakes (bad JSON, bad hex, any admission
//! failure), so callers can branch on `code` without parsing prose.

pub mod accounts;
pub mod chains;
pub mod eth;
pub mod filters;
pub mod subscriptions;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};
use tongtian_execution::{account_key, decode_account};
use tongtian_mempool::AdmissionError;
use tongtian_node::ChainRuntime;
use tongtian_storage::StateStore;
use tongtian_types::api::{
    AccountProofView, AccountView, ApiErrorBody, BatchItem, BatchSubmitRequest,
    BatchSubmitResponse, BlockEvent, BlockView, StateProofView, StatusInfo, SubmitRequest,
    SubmitResponse, TxView,
};
use tongtian_types::{Address, H256};
use utoipa::OpenApi;

/// Most transactions in one batch submission.
pub const MAX_BATCH: usize = 10_000;

/// Largest body of `POST /v1/txs`: one transaction at the default size
/// limit (256 KiB) as hex, with room for the JSON around it.
pub const MAX_TX_BODY: usize = 1 << 20;

/// Largest body of `POST /v1/txs/batch` (and of any other route): a batch
/// of [`MAX_BATCH`] transfers is about 4 MiB of hex. A larger body is
/// refused with 413 before it is read whole, so a hostile sender cannot
/// make the node buffer more than this.
pub const MAX_BATCH_BODY: usize = 16 << 20;

/// Largest body of a JSON-RPC request or batch over HTTP (Geth's limit is
/// 5 MiB; one contract deployment at the size limit is 512 KiB of hex).
pub const MAX_RPC_BODY: usize = 8 << 20;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ApiErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ApiErrorBody {
                code: code.into(),
                message: message.into(),
            },
        }
    }

    fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    fn bad_request(code: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal API error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the request body is larger than this endpoint takes ({} MiB for /v1/txs, {} MiB for /v1/txs/batch); send fewer or smaller transactions",
                    MAX_TX_BODY >> 20,
                    MAX_BATCH_BODY >> 20
                ),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "bad_json",
                format!("{}; send Content-Type: application/json", r.body_text()),
            ),
            _ => ApiError::bad_request("bad_json", r.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request("bad_query", r.body_text())
    }
}

impl From<AdmissionError> for ApiError {
    fn from(e: AdmissionError) -> Self {
        let status = match &e {
            AdmissionError::Oversized { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AdmissionError::AlreadyKnown(_) => StatusCode::CONFLICT,
            AdmissionError::Full(_) => StatusCode::SERVICE_UNAVAILABLE,
            AdmissionError::State(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AdmissionError::Refused { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// What a node's API offers besides its chain.
#[derive(Debug)]
pub struct ApiOptions {
    /// Ethereum accounts the node signs for (`tongtian dev`: the
    /// development accounts; none by default).
    pub unlocked: accounts::UnlockedAccounts,
    /// WebSockets served at a time (default [`subscriptions::MAX_SOCKETS`]).
    pub max_sockets: usize,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            unlocked: accounts::UnlockedAccounts::default(),
            max_sockets: subscriptions::MAX_SOCKETS,
        }
    }
}

#[derive(Clone)]
struct AppState {
    chain: Arc<ChainRuntime>,
    /// Filters installed through the Ethereum API.
    filters: Arc<eth::EthFilters>,
    /// Accounts the Ethereum API signs for.
    accounts: Arc<accounts::UnlockedAccounts>,
    /// Permits for open WebSockets ([`ApiOptions::max_sockets`]).
    sockets: Arc<tokio::sync::Semaphore>,
    /// The number of those permits.
    max_sockets: usize,
}

impl AppState {
    fn new(chain: Arc<ChainRuntime>, options: ApiOptions) -> Self {
        AppState {
            chain,
            filters: Arc::default(),
            accounts: Arc::new(options.unlocked),
            sockets: Arc::new(tokio::sync::Semaphore::new(options.max_sockets)),
            max_sockets: options.max_sockets,
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tongtian node API",
        description = "REST API of a Tongtian chain node."
    ),
    paths(
        status,
        chains::list_chains,
        module_query,
        openapi_json,
        get_validators,
        get_events,
        submit,
        submit_batch,
        get_tx,
        get_receipt,
        get_block,
        get_account,
        get_account_proof,
        get_state_proof,
        block_stream
    ),
    components(schemas(
        ApiErrorBody,
        chains::ChainListing,
        StatusInfo,
        SubmitRequest,
        SubmitResponse,
        BatchSubmitRequest,
        BatchSubmitResponse,
        BatchItem,
        BlockView,
        TxView,
        AccountView,
        AccountProofView,
        StateProofView,
        BlockEvent,
        tongtian_types::Receipt
    ))
)]
struct ApiDoc;

/// The OpenAPI document of this API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The API of a node hosting `chain` as its main chain: the chain
/// directory's routes ([`chains::directory_router`]) over that one chain.
pub fn router(chain: Arc<ChainRuntime>, options: ApiOptions) -> Router {
    let dir = chains::ChainDirectory::new();
    dir.host(chain, options, true);
    chains::directory_router(dir)
}

/// The whole API of one chain, at unprefixed paths (what
/// `/v1/chains/{chain}/...` leads to).
pub fn chain_router(chain: Arc<ChainRuntime>, options: ApiOptions) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/modules/{module}/{*path}", get(module_query))
        .route(
            "/eth",
            post(eth_rpc)
                .get(eth_socket)
                .layer(DefaultBodyLimit::max(MAX_RPC_BODY)),
        )
        // Wallets often take a bare node URL as their RPC endpoint.
        .route(
            "/",
            post(eth_rpc)
                .get(eth_socket)
                .layer(DefaultBodyLimit::max(MAX_RPC_BODY)),
        )
        .route("/v1/openapi.json", get(openapi_json))
        .route(
            "/v1/txs",
            post(submit).layer(DefaultBodyLimit::max(MAX_TX_BODY)),
        )
        .route(
            "/v1/txs/batch",
            post(submit_batch).layer(DefaultBodyLimit::max(MAX_BATCH_BODY)),
        )
        .route("/v1/txs/{hash}", get(get_tx))
        .route("/v1/receipts/{hash}", get(get_receipt))
        .route("/v1/blocks/stream", get(block_stream))
        .route("/v1/blocks/{id}", get(get_block))
        .route("/v1/validators", get(get_validators))
        .route("/v1/events", get(get_events))
        .route("/v1/accounts/{address}", get(get_account))
        .route("/v1/accounts/{address}/proof", get(get_account_proof))
        .route("/v1/state/proof", get(get_state_proof))
        // A browsable API page over the same document, its files embedded
        // in the binary (no CDN).
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs")
                .config(utoipa_swagger_ui::Config::from("/v1/openapi.json")),
        )
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BATCH_BODY))
        .with_state(AppState::new(chain, options))
}

/// Serve the API (no unlocked accounts) on `listener` until `shutdown`
/// resolves.
pub async fn serve(
    listener: TcpListener,
    chain: Arc<ChainRuntime>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, router(chain, ApiOptions::default()), shutdown).await
}

/// Serve a router (e.g. [`router`] plus [`fault_injection`]) until `shutdown`.
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// `POST /v1/debug/network`: `{"block": ["<hex public key>", ...]}` drops
/// all transport traffic with those peers; `{"block": []}` heals. For
/// partition tests only; a node serves it only when its config enables it.
pub fn fault_injection(chain: Arc<ChainRuntime>) -> Router {
    #[derive(Deserialize)]
    struct Faults {
        block: Vec<String>,
    }
    let handler = |State(st): State<AppState>, body: Result<Json<Faults>, JsonRejection>| async move {
        let Json(f) = body?;
        let net = st.chain.network().ok_or_else(|| {
            ApiError::bad_request("no_network", "this node runs without a network")
        })?;
        let mut peers = Vec::new();
        for k in &f.block {
            let key = hex::decode(k.trim_start_matches("0x"))
                .map_err(|_| ApiError::bad_request("bad_key", format!("{k:?} is not hex")))?;
            peers.push(tongtian_network::PeerId(key));
        }
        net.unblock_all();
        net.block(&peers);
        Ok::<_, ApiError>(Json(serde_json::json!({ "blocked": f.block.len() })))
    };
    Router::new()
        .route("/v1/debug/network", post(handler))
        .with_state(AppState::new(chain, ApiOptions::default()))
}

fn parse_hash(s: &str) -> Result<H256, ApiError> {
    s.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_hash",
            format!("{s:?} is not a 0x-prefixed 32-byte hex hash"),
        )
    })
}

fn parse_address(s: &str) -> Result<Address, ApiError> {
    s.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_address",
            format!("{s:?} is not a 0x-prefixed 20-byte hex address"),
        )
    })
}

fn decode_raw(raw: &str) -> Result<Vec<u8>, ApiError> {
    // The `0x` prefix is optional; `decode` takes it off itself.
    const_hex::decode(raw)
        .map_err(|e| ApiError::bad_request("malformed_tx", format!("raw is not hex: {e}")))
}

/// Node and chain status.
#[utoipa::path(get, path = "/v1/status", responses((status = 200, body = StatusInfo)))]
async fn status(State(st): State<AppState>) -> ApiResult<StatusInfo> {
    let c = &st.chain;
    let (height, latest_hash) = c.latest();
    Ok(Json(StatusInfo {
        chain_id: c.spec().chain_id,
        chain_name: c.spec().name.clone(),
        height,
        latest_hash,
        suite: c.spec().suite.to_string(),
        consensus: c.engine_name().to_string(),
        peers: c.peer_count(),
        validator: c.is_validator(),
        mempool_size: c.mempool().len(),
        mempool_queued: c.mempool().queued_len(),
        mempool_queued_evicted: c.mempool().queued_evicted(),
        frames_from_non_members: c
            .network()
            .and_then(|n| n.scope().map(|s| s.dropped()))
            .unwrap_or(0),
        certified_height: c.latest_certified(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }))
}

/// A native module's read-only query: `path` below the module, the query
/// string as its parameters (`height` picks a past block's state).
#[utoipa::path(get, path = "/v1/modules/{module}/{path}",
    params(
        ("module" = String, Path, description = "module id, e.g. membership"),
        ("path" = String, Path, description = "the query, e.g. validators"),
        ("height" = Option<u64>, Query, description = "answer from the state after this block"),
    ),
    responses((status = 200, description = "the module's answer (JSON)"), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
async fn module_query(
    State(st): State<AppState>,
    Path((module, path)): Path<(String, String)>,
    Query(mut params): Query<std::collections::BTreeMap<String, String>>,
) -> ApiResult<serde_json::Value> {
    let at = match params.remove("height") {
        None => None,
        Some(h) => Some(h.parse::<u64>().map_err(|_| {
            ApiError::bad_request("bad_height", format!("height {h:?} is not a number"))
        })?),
    };
    let chain = st.chain.clone();
    let answer =
        tokio::task::spawn_blocking(move || chain.query_module(&module, &path, &params, at))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| match e {
                tongtian_node::NodeError::Storage(
                    tongtian_storage::StorageError::UnknownVersion(h),
                ) => ApiError::not_found(format!("no block {h}")),
                other => ApiError::internal(other),
            })?;
    match answer {
        Ok(v) => Ok(Json(v)),
        Err(e)
            if e.code == "unknown_module" || e.code == "unknown_query" || e.code == "not_found" =>
        {
            Err(ApiError::new(StatusCode::NOT_FOUND, &e.code, e.message))
        }
        Err(e) => Err(ApiError::bad_request(&e.code, e.message)),
    }
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "OpenAPI 3.1 document")))]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

async fn admit(
    chain: Arc<ChainRuntime>,
    raws: Vec<Vec<u8>>,
) -> Result<Vec<Result<H256, AdmissionError>>, ApiError> {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&[u8]> = raws.iter().map(|r| r.as_slice()).collect();
        chain.submit_batch(&refs)
    })
    .await
    .map_err(ApiError::internal)
}

/// Submit one signed transaction.
#[utoipa::path(post, path = "/v1/txs", request_body = SubmitRequest,
    responses((status = 200, body = SubmitResponse), (status = 400, body = ApiErrorBody), (status = 409, body = ApiErrorBody), (status = 413, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
async fn submit(
    State(st): State<AppState>,
    body: Result<Json<SubmitRequest>, JsonRejection>,
) -> ApiResult<SubmitResponse> {
    let Json(req) = body?;
    let raw = decode_raw(&req.raw)?;
    let result = admit(st.chain, vec![raw])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("no admission result"))?;
    Ok(Json(SubmitResponse { hash: result? }))
}

/// Submit many signed transactions; one result each.
#[utoipa::path(post, path = "/v1/txs/batch", request_body = BatchSubmitRequest,
    responses((status = 200, body = BatchSubmitResponse), (status = 400, body = ApiErrorBody), (status = 413, body = ApiErrorBody)))]
async fn submit_batch(
    State(st): State<AppState>,
    body: Result<Json<BatchSubmitRequest>, JsonRejection>,
) -> ApiResult<BatchSubmitResponse> {
    let Json(req) = body?;
    if req.raws.len() > MAX_BATCH {
        return Err(ApiError::bad_request(
            "batch_too_large",
            format!("{} transactions, at most {MAX_BATCH}", req.raws.len()),
        ));
    }
    // Hex errors are per item; only decodable items go to admission.
    let decoded: Vec<Result<Vec<u8>, ApiError>> = req.raws.iter().map(|r| decode_raw(r)).collect();
    let raws: Vec<Vec<u8>> = decoded
        .iter()
        .filter_map(|d| d.as_ref().ok().cloned())
        .collect();
    let mut admitted = admit(st.chain, raws).await?.into_iter();
    let results = decoded
        .into_iter()
        .map(|d| match d {
            Err(e) => BatchItem {
                hash: None,
                error: Some(e.body),
            },
            Ok(_) => match admitted.next() {
                Some(Ok(h)) => BatchItem {
                    hash: Some(h),
                    error: None,
                },
                Some(Err(e)) => BatchItem {
                    hash: None,
                    error: Some(ApiError::from(e).body),
                },
                None => BatchItem {
                    hash: None,
                    error: Some(ApiErrorBody {
                        code: "internal".into(),
                        message: "missing result".into(),
                    }),
                },
            },
        })
        .collect();
    Ok(Json(BatchSubmitResponse { results }))
}

/// A transaction, pending or committed.
#[utoipa::path(get, path = "/v1/txs/{hash}", params(("hash" = String, Path, description = "0x hash")),
    responses((status = 200, body = TxView), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
async fn get_tx(State(st): State<AppState>, Path(hash): Path<String>) -> ApiResult<TxView> {
    let hash = parse_hash(&hash)?;
    let c = &st.chain;
    let suite = c.spec().suite;
    if let Some(rec) = c.store().tx(&hash).map_err(ApiError::internal)? {
        return Ok(Json(TxView {
            hash,
            status: "committed".into(),
            height: Some(rec.height),
            index: Some(rec.index),
            sender: rec.tx.sender(suite),
            tx: rec.tx,
        }));
    }
    match c.mempool().get(&hash) {
        Some(t) => Ok(Json(TxView {
            hash,
            status: if c.mempool().is_queued(&hash) {
                "queued".into()
            } else {
                "pending".into()
            },
            height: None,
            index: None,
            sender: t.sender,
            tx: t.tx,
        })),
        None => Err(ApiError::not_found(format!(
            "transaction {hash} is unknown"
        ))),
    }
}

/// The receipt of a committed transaction.
#[utoipa::path(get, path = "/v1/receipts/{hash}", params(("hash" = String, Path, description = "0x hash")),
    responses((status = 200, body = tongtian_types::Receipt), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
async fn get_receipt(
    State(st): State<AppState>,
    Path(hash): Path<String>,
) -> ApiResult<tongtian_types::Receipt> {
    let hash = parse_hash(&hash)?;
    st.chain
        .store()
        .receipt(&hash)
        .map_err(ApiError::internal)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no receipt for {hash}")))
}

/// A block by height, by hash, or `latest`.
#[utoipa::path(get, path = "/v1/blocks/{id}", params(("id" = String, Path, description = "height, 0x hash, or latest")),
    responses((status = 200, body = BlockView), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
async fn get_block(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<BlockView> {
    let store = st.chain.store();
    let height = if id == "latest" {
        st.chain.latest().0
    } else if id.starts_with("0x") {
        let h = parse_hash(&id)?;
        store
            .height_of(&h)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("no block {h}")))?
    } else {
        id.parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                "bad_block_id",
                format!("{id:?} is not a height, a 0x hash or \"latest\""),
            )
        })?
    };
    let header = store
        .header(height)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no block at height {height}")))?;
    let tx_hashes = store
        .block_tx_hashes(height)
        .map_err(ApiError::internal)?
        .unwrap_or_default();
    let certificate = store
        .certificate(height)
        .map_err(ApiError::internal)?
        .unwrap_or_default();
    Ok(Json(BlockView {
        hash: header.hash(st.chain.spec().suite),
        header,
        tx_hashes,
        certificate,
    }))
}

/// The current validator set and its version.
#[utoipa::path(get, path = "/v1/validators", responses((status = 200, body = tongtian_types::ValidatorSet)))]
async fn get_validators(State(st): State<AppState>) -> ApiResult<tongtian_types::ValidatorSet> {
    Ok(Json(st.chain.validator_set()))
}

/// An account's balance and nonce.
#[utoipa::path(get, path = "/v1/accounts/{address}", params(("address" = String, Path, description = "0x address")),
    responses((status = 200, body = AccountView), (status = 400, body = ApiErrorBody)))]
async fn get_account(
    State(st): State<AppState>,
    Path(address): Path<String>,
) -> ApiResult<AccountView> {
    let address = parse_address(&address)?;
    let height = st.chain.latest().0;
    let acct = st.chain.account(&address).map_err(ApiError::internal)?;
    let pending_nonce = st
        .chain
        .mempool()
        .next_nonce(&address)
        .unwrap_or(acct.nonce)
        .max(acct.nonce);
    Ok(Json(AccountView {
        address,
        balance: acct.balance,
        nonce: acct.nonce,
        pending_nonce,
        height,
    }))
}

#[derive(Deserialize)]
struct ProofQuery {
    height: Option<u64>,
}

/// An account with a Merkle proof against a certified header.
#[utoipa::path(get, path = "/v1/accounts/{address}/proof",
    params(("address" = String, Path, description = "0x address"), ("height" = Option<u64>, Query, description = "default: latest")),
    responses((status = 200, body = AccountProofView), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
async fn get_account_proof(
    State(st): State<AppState>,
    Path(address): Path<String>,
    q: Result<Query<ProofQuery>, QueryRejection>,
) -> ApiResult<AccountProofView> {
    let address = parse_address(&address)?;
    let Query(q) = q?;
    let height = q.height.unwrap_or(st.chain.latest().0);
    let store = st.chain.store();
    let header = store
        .header(height)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no block at height {height}")))?;
    let certificate = store
        .certificate(height)
        .map_err(ApiError::internal)?
        .unwrap_or_default();
    let proof = store
        .prove(&account_key(&address), height)
        .map_err(ApiError::internal)?;
    let account = match &proof.value {
        Some(v) => Some(decode_account(v).ok_or_else(|| ApiError::internal("corrupt account"))?),
        None => None,
    };
    Ok(Json(AccountProofView {
        address,
        height,
        account,
        header,
        certificate,
        proof,
    }))
}

#[derive(Deserialize)]
struct StateProofQuery {
    key: String,
    height: Option<u64>,
}

/// Any state key (hex) with a Merkle proof against a certified header; by
/// default at the latest height a light client accepts.
#[utoipa::path(get, path = "/v1/state/proof",
    params(("key" = String, Query, description = "state key, 0x hex"), ("height" = Option<u64>, Query, description = "default: the latest certified height")),
    responses((status = 200, body = StateProofView), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
async fn get_state_proof(
    State(st): State<AppState>,
    q: Result<Query<StateProofQuery>, QueryRejection>,
) -> ApiResult<StateProofView> {
    let Query(q) = q?;
    let key = hex::decode(q.key.strip_prefix("0x").unwrap_or(&q.key))
        .map_err(|_| ApiError::bad_request("bad_key", "key: hex bytes, e.g. 0x6d6f64"))?;
    let height = q.height.unwrap_or_else(|| st.chain.latest_certified());
    let store = st.chain.store();
    let header = store
        .header(height)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no block at height {height}")))?;
    let certificate = store
        .certificate(height)
        .map_err(ApiError::internal)?
        .unwrap_or_default();
    let proof = store.prove(&key, height).map_err(ApiError::internal)?;
    Ok(Json(StateProofView {
        height,
        header,
        certificate,
        proof,
    }))
}

/// Committed blocks as server-sent events (`event: block`, JSON data).
#[utoipa::path(get, path = "/v1/blocks/stream", responses((status = 200, description = "text/event-stream of BlockEvent", body = BlockEvent)))]
async fn block_stream(
    State(st): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(st.chain.subscribe()).map(|r| {
        Ok(match r {
            Ok(ev) => Event::default()
                .event("block")
                .json_data(&*ev)
                .unwrap_or_else(|_| Event::default().event("error")),
            Err(BroadcastStreamRecvError::Lagged(n)) => {
                Event::default().event("lagged").data(n.to_string())
            }
        })
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tongtian_crypto::{Keypair, SuiteId};
    use tongtian_types::codec::encode;
    use tongtian_types::{Action, Transaction};
    use tower::ServiceExt;

    fn runtime(dir: &std::path::Path) -> (Arc<ChainRuntime>, Keypair) {
        let validator = Keypair::generate(SuiteId::Standard);
        let user = Keypair::generate(SuiteId::Standard);
        let spec = tongtian_node::dev::dev_spec(
            SuiteId::Standard,
            &validator,
            &[Address::from_public_key(
                SuiteId::Standard,
                user.public_key(),
            )],
        );
        (ChainRuntime::open(dir, spec, validator).unwrap(), user)
    }

    async fn call(app: Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn post(path: &str, body: &str) -> Request<Body> {
        Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    }

    /// `GET path` on a fresh router over `rt`.
    async fn get(rt: &Arc<ChainRuntime>, path: &str) -> (StatusCode, serde_json::Value) {
        let req = Request::get(path).body(Body::empty()).unwrap();
        call(router(rt.clone(), ApiOptions::default()), req).await
    }

    /// `POST /v1/txs` of `tx` on a fresh router over `rt`.
    async fn submit(
        rt: &Arc<ChainRuntime>,
        tx: &tongtian_types::SignedTransaction,
    ) -> (StatusCode, serde_json::Value) {
        let body = serde_json::to_string(&SubmitRequest {
            raw: format!("0x{}", hex::encode(encode(tx))),
        })
        .unwrap();
        call(
            router(rt.clone(), ApiOptions::default()),
            post("/v1/txs", &body),
        )
        .await
    }

    #[tokio::test]
    async fn json_errors_carry_codes() {
        let dir = tempfile::tempdir().unwrap();
        let (rt, _) = runtime(dir.path());
        let (s, v) = call(
            router(rt.clone(), ApiOptions::default()),
            post("/v1/txs", "{oops"),
        )
        .await;
        assert_eq!(
            (s, v["code"].as_str().unwrap()),
            (StatusCode::BAD_REQUEST, "bad_json")
        );
        let req = Request::post("/v1/txs").body(Body::from("{}")).unwrap();
        let (s, v) = call(router(rt.clone(), ApiOptions::default()), req).await;
        assert_eq!(
            (s, v["code"].as_str().unwrap()),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad_json")
        );
        let (s, v) = call(
            router(rt.clone(), ApiOptions::default()),
            post("/v1/txs", r#"{"raw":"0xdeadbeef"}"#),
        )
        .await;
        assert_eq!(
            (s, v["code"].as_str().unwrap()),
            (StatusCode::BAD_REQUEST, "malformed_tx")
        );
        let big: Vec<String> = (0..MAX_BATCH + 1).map(|_| "0x00".to_string()).collect();
        let body = serde_json::to_string(&BatchSubmitRequest { raws: big }).unwrap();
        let (s, v) = call(
            router(rt, ApiOptions::default()),
            post("/v1/txs/batch", &body),
        )
        .await;
        assert_eq!(
            (s, v["code"].as_str().unwrap()),
            (StatusCode::BAD_REQUEST, "batch_too_large")
        );
    }

    #[tokio::test]
    async fn a_plain_get_of_the_ethereum_endpoint_gets_a_json_error() {
        let dir = tempfile::tempdir().unwrap();
        let (rt, _) = runtime(dir.path());
        for path in ["/eth", "/"] {
            let (s, v) = get(&rt, path).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {v}");
            assert_eq!(v["code"], "not_websocket", "{path}: {v}");
        }
    }

    #[tokio::test]
    async fn only_unlocked_accounts_are_listed_and_sign() {
        let dir = tempfile::tempdir().unwrap();
        let (rt, _) = runtime(dir.path());
        let rpc = |method: &str, params: serde_json::Value| {
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
                .to_string()
        };
        let dev0 = accounts::UnlockedAccounts::dev()
            .addresses()
            .next()
            .unwrap()
            .to_string();
        // A node that unlocks nothing (every node but `tongtian dev`).
        let (_, v) = call(
            router(rt.clone(), ApiOptions::default()),
            post("/eth", &rpc("eth_accounts", serde_json::json!([]))),
        )
        .await;
        assert_eq!(v["result"], serde_json::json!([]));
        for (method, params) in [
            (
                "eth_sendTransaction",
                serde_json::json!([{"from": dev0, "to": dev0}]),
            ),
            ("personal_sign", serde_json::json!(["0x00", dev0])),
        ] {
            let (_, v) = call(
                router(rt.clone(), ApiOptions::default()),
                post("/eth", &rpc(method, params)),
            )
            .await;
            assert_eq!(v["error"]["code"], -32000, "{method}: {v}");
            assert_eq!(
                v["error"]["message"],
                format!("unknown account {dev0}"),
                "{method}"
            );
        }
        assert_eq!(rt.mempool().len(), 0);
        // The same chain with the development accounts unlocked.
        let unlocked = || ApiOptions {
            unlocked: accounts::UnlockedAccounts::dev(),
            ..ApiOptions::default()
        };
        let (_, v) = call(
            router(rt.clone(), unlocked()),
            post("/eth", &rpc("eth_accounts", serde_json::json!([]))),
        )
        .await;
        assert_eq!(v["result"][0], dev0.as_str());
        let (_, v) = call(
            router(rt.clone(), unlocked()),
            post(
                "/eth",
                &rpc("personal_sign", serde_json::json!(["0x00", dev0])),
            ),
        )
        .await;
        assert_eq!(v["result"].as_str().unwrap().len(), 2 + 130, "{v}");
    }

    /// The status line a WebSocket upgrade request to `/eth` gets, with the
    /// connection (kept open when upgraded).
    fn upgrade(addr: std::net::SocketAddr) -> (String, std::net::TcpStream) {
        use std::io::{BufRead, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        write!(
            s,
            "GET /eth HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(s.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        (line, s)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn websockets_beyond_the_limit_are_refused_until_one_closes() {
        let dir = tempfile::tempdir().unwrap();
        let (rt, _) = runtime(dir.path());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let options = ApiOptions {
            max_sockets: 1,
            ..ApiOptions::default()
        };
        tokio::spawn(serve_router(
            listener,
            router(rt, options),
            std::future::pending(),
        ));
        tokio::task::spawn_blocking(move || {
            let (first, open) = upgrade(addr);
            assert!(first.starts_with("HTTP/1.1 101"), "{first}");
            let (second, _) = upgrade(addr);
            assert!(second.starts_with("HTTP/1.1 503"), "{second}");
            // Closing the first frees its place.
            drop(open);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let (again, _) = upgrade(addr);
                if again.starts_with("HTTP/1.1 101") {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "{again}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn submission_reaches_the_mempool_and_status_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        let (rt, user) = runtime(dir.path());
        let tx = Transaction {
            chain_id: rt.spec().chain_id,
            nonce: 0,
            gas_limit: 100_000,
            gas_price: 1,
            action: Action::Transfer {
                to: Address([5; 20]),
                amount: 1,
                memo: vec![],
            },
        }
        .sign(&user);
        let (s, v) = submit(&rt, &tx).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let hash: H256 = v["hash"].as_str().unwrap().parse().unwrap();
        assert!(rt.mempool().contains(&hash));
        let (s, v) = get(&rt, &format!("/v1/txs/{hash}")).await;
        assert_eq!(
            (s, v["status"].as_str().unwrap()),
            (StatusCode::OK, "pending")
        );
        let (_, v) = get(&rt, "/v1/status").await;
        assert_eq!(v["mempool_size"], 1);
        assert_eq!(v["height"], 0);
        assert_eq!(v["chain_id"], rt.spec().chain_id);
        // The Ethereum nonce counts the pooled transaction only when asked
        // for "pending", as wallets do before they sign the next one.
        let sender = Address::from_public_key(SuiteId::Standard, user.public_key());
        for (tag, want) in [("pending", "0x1"), ("latest", "0x0")] {
            let body = serde_json::json!({
                "jsonrpc": "2.0", "id": 1,
                "method": "eth_getTransactionCount",
                "params": [sender.to_string(), tag],
            });
            let (_, v) = call(
                router(rt.clone(), ApiOptions::default()),
                post("/eth", &body.to_string()),
            )
            .await;
            assert_eq!(v["result"], want, "{tag}: {v}");
        }
        // Nonce 2 before 1: held as queued, seen as such, not counted as
        // the pending nonce.
        let mut gapped = tx.tx.clone();
        gapped.nonce = 2;
        let (s, v) = submit(&rt, &gapped.sign(&user)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let queued = v["hash"].as_str().unwrap();
        assert_eq!(
            get(&rt, &format!("/v1/txs/{queued}")).await.1["status"],
            "queued"
        );
        let (_, v) = get(&rt, "/v1/status").await;
        assert_eq!(
            (v["mempool_size"].clone(), v["mempool_queued"].clone()),
            (1.into(), 1.into())
        );
        assert_eq!(rt.mempool().next_nonce(&sender), Some(1));
    }
}

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Only events of this emitter (a contract, or the zero address for
    /// native modules).
    emitter: Option<String>,
    /// First height (default 0).
    from: Option<u64>,
    /// Last height (default: `from` + 999, capped at the head).
    to: Option<u64>,
}

/// Committed events of a range of blocks (at most 10,000 blocks).
#[utoipa::path(get, path = "/v1/events", params(EventsQuery),
    responses((status = 200, body = Vec<tongtian_types::api::EventView>), (status = 400, body = ApiErrorBody)))]
async fn get_events(
    State(st): State<AppState>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> ApiResult<Vec<tongtian_types::api::EventView>> {
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let emitter = match &q.emitter {
        Some(s) => Some(
            s.parse::<Address>()
                .map_err(|e| ApiError::bad_request("bad_address", e.to_string()))?,
        ),
        None => None,
    };
    let from = q.from.unwrap_or(0);
    let to = q.to.unwrap_or(from.saturating_add(999));
    let chain = st.chain.clone();
    let records = tokio::task::spawn_blocking(move || chain.events(emitter, from, to))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| ApiError::bad_request("bad_range", e.to_string()))?;
    Ok(Json(
        records
            .into_iter()
            .map(|r| tongtian_types::api::EventView {
                height: r.height,
                tx_hash: r.tx_hash,
                tx_index: r.tx_index,
                log_index: r.log_index,
                event: r.event,
            })
            .collect(),
    ))
}

/// Ethereum JSON-RPC (see [`eth`]).
async fn eth_rpc(
    State(st): State<AppState>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    match body {
        Ok(body) => eth::handle(st.chain, st.filters, st.accounts, body).await,
        // Too large (or cut off): a JSON-RPC error, with the HTTP status
        // that says why.
        Err(r) => eth::refuse_body(r.status(), &r.body_text()),
    }
}

/// `GET /eth` (or `/`) upgraded to a WebSocket: JSON-RPC with
/// subscriptions ([`subscriptions`]).
async fn eth_socket(
    State(st): State<AppState>,
    upgrade: Result<
        axum::extract::WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Response {
    // A plain GET (a browser, a health check) gets a JSON error like every
    // other refusal, not the extractor's text.
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => {
            return ApiError::bad_request(
                "not_websocket",
                format!(
                    "{}: GET here opens a WebSocket for JSON-RPC; send plain JSON-RPC with POST",
                    e.body_text()
                ),
            )
            .into_response()
        }
    };
    let Ok(open) = st.sockets.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_sockets",
            format!(
                "this node already serves {} WebSockets; use HTTP or try later",
                st.max_sockets
            ),
        )
        .into_response();
    };
    upgrade.on_upgrade(move |socket| async move {
        subscriptions::serve(socket, st.chain, st.filters, st.accounts).await;
        drop(open);
    })
}
