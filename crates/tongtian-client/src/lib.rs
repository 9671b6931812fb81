//! Rust SDK for a Tongtian node's REST API.
//!
//! [`Client`] wraps the endpoints with the shared shapes of
//! [`tongtian_types::api`]; an error answer from the node becomes
//! [`ClientError::Api`] with the node's stable code. [`Client::blocks`]
//! follows the server-sent block stream.

use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;
use tongtian_types::api::{
    AccountProofView, AccountView, ApiErrorBody, BatchItem, BatchSubmitRequest,
    BatchSubmitResponse, BlockEvent, BlockView, StatusInfo, SubmitRequest, SubmitResponse, TxView,
};
use tongtian_types::codec::encode;
use tongtian_types::{Address, Receipt, SignedTransaction, H256};

/// Default node URL.
pub const DEFAULT_NODE: &str = "http://127.0.0.1:8645";

/// Errors talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node answered with an error.
    #[error("{code}: {message} (HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable code.
        code: String,
        /// Message.
        message: String,
    },
    /// Could not reach the node or read its answer.
    #[error("{}", transport_message(url, cause))]
    Transport {
        /// URL.
        url: String,
        /// Cause (not an error `source`: the message already says what it
        /// adds, and a printed chain would repeat it).
        cause: reqwest::Error,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from {url}: {reason}")]
    Decode {
        /// URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Waited too long.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// The block stream skipped this many blocks because the reader was slow.
    #[error("block stream lagged: {0} blocks skipped")]
    Lagged(u64),
}

impl ClientError {
    /// The node's error code, if the node answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// A stable code for any error: the node's own, or one that says why
    /// the node could not be asked (`node_unreachable`, `node_timeout`,
    /// `bad_answer`, `timeout`, `lagged`).
    pub fn stable_code(&self) -> &str {
        match self {
            ClientError::Api { code, .. } => code,
            ClientError::Transport { cause, .. } if cause.is_timeout() => "node_timeout",
            ClientError::Transport { .. } => "node_unreachable",
            ClientError::Decode { .. } => "bad_answer",
            ClientError::Timeout(_) => "timeout",
            ClientError::Lagged(_) => "lagged",
        }
    }
}

/// What went wrong reaching `url`, and what to do about it, in one line
/// (reqwest's own chain repeats itself: "error sending request ... : error
/// sending request ...").
fn transport_message(url: &str, e: &reqwest::Error) -> String {
    let node = url
        .find("/v1/")
        .or_else(|| url.find("/eth"))
        .map_or(url, |i| &url[..i]);
    if e.is_timeout() {
        return format!(
            "the node at {node} did not answer in time; it may be overloaded or stuck (raise --timeout to wait longer)"
        );
    }
    if e.is_connect() {
        return format!(
            "cannot connect to a node at {node}: is the node running? start one with `tongtian dev`, or pass --node URL"
        );
    }
    // The innermost cause says the most.
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    format!("lost the connection to the node at {node}: {cause}")
}

/// How long a request may take by default before it is given up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A node address as a base URL: `127.0.0.1:8645` and `localhost:8645`
/// mean `http://...`; a trailing slash is dropped.
pub fn normalize_url(node: &str) -> String {
    let node = node.trim().trim_end_matches('/');
    if node.contains("://") {
        node.to_string()
    } else {
        format!("http://{node}")
    }
}

/// A client of one node.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    timeout: Duration,
    /// The chain this handle talks to; `None`: the node's main chain.
    chain: Option<String>,
}

impl Client {
    /// A client for the node at `base` (e.g. `http://127.0.0.1:8645`, or
    /// `127.0.0.1:8645`), whose requests give up after
    /// [`DEFAULT_TIMEOUT`].
    pub fn new(base: &str) -> Self {
        Client::with_timeout(base, DEFAULT_TIMEOUT)
    }

    /// [`Client::new`] with another request timeout (connecting, sending
    /// and reading the whole answer). The block stream has none: it is
    /// meant to stay open.
    pub fn with_timeout(base: &str, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Client {
            base: normalize_url(base),
            http,
            timeout,
            chain: None,
        }
    }

    /// A handle on another chain of the same node (by name or chain id):
    /// its requests go to `/v1/chains/{chain}/...` and `/eth/{chain}`.
    /// `None` is the node's main chain.
    pub fn chain(&self, chain: Option<&str>) -> Client {
        Client {
            chain: chain.map(str::to_string),
            ..self.clone()
        }
    }

    /// The chain this handle talks to, if not the main chain.
    pub fn chain_name(&self) -> Option<&str> {
        self.chain.as_deref()
    }

    /// The URL of `path` (a main-chain path: `/v1/...` or `/eth`) on this
    /// handle's chain.
    fn url(&self, path: &str) -> String {
        match &self.chain {
            None => format!("{}{}", self.base, path),
            Some(c) => match path.strip_prefix("/v1/") {
                Some(rest) => format!("{}/v1/chains/{c}/{rest}", self.base),
                None if path == "/eth" => format!("{}/eth/{c}", self.base),
                None => format!("{}{}", self.base, path),
            },
        }
    }

    /// How long one request may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn answer<T: DeserializeOwned>(
        url: String,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, ClientError> {
        let resp = resp.map_err(|source| ClientError::Transport {
            url: url.clone(),
            cause: source,
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                cause: source,
            })?;
        if !status.is_success() {
            let body: ApiErrorBody = serde_json::from_slice(&bytes).unwrap_or(ApiErrorBody {
                code: "http_error".into(),
                message: String::from_utf8_lossy(&bytes).into_owned(),
            });
            return Err(ClientError::Api {
                status: status.as_u16(),
                code: body.code,
                message: body.message,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            url,
            reason: e.to_string(),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        let resp = self.http.get(&url).timeout(self.timeout).send().await;
        Self::answer(url, resp).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let resp = self
            .http
            .post(&url)
            .timeout(self.timeout)
            .json(body)
            .send()
            .await;
        Self::answer(url, resp).await
    }

    /// `GET /v1/events`: events of heights `from..=to` (default: the
    /// latest 1,000 blocks' worth from `from`), optionally of one emitter.
    pub async fn events(
        &self,
        emitter: Option<&Address>,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<tongtian_types::api::EventView>, ClientError> {
        let mut q = format!("/v1/events?from={from}");
        if let Some(t) = to {
            q.push_str(&format!("&to={t}"));
        }
        if let Some(a) = emitter {
            q.push_str(&format!("&emitter={a}"));
        }
        self.get(&q).await
    }

    /// One Ethereum JSON-RPC call to `POST /eth`. An RPC error becomes
    /// [`ClientError::Api`] with code `rpc_<code>`; its `message` carries
    /// the node's message and, for reverts, `data=0x...`.
    pub async fn eth(
        &self,
        method: &str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let mut v: serde_json::Value = self.post("/eth", &body).await?;
        if let Some(err) = v.get("error") {
            let code = err.get("code").and_then(|c| c.as_i64()).unwrap_or(0);
            let mut message = err
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string();
            if let Some(d) = err.get("data").and_then(|d| d.as_str()) {
                message.push_str(&format!(" data={d}"));
            }
            return Err(ClientError::Api {
                status: 200,
                code: format!("rpc_{code}"),
                message,
            });
        }
        Ok(v["result"].take())
    }

    /// `GET /v1/chains`: every chain the node hosts (whichever chain this
    /// handle is on).
    pub async fn chains(&self) -> Result<Vec<serde_json::Value>, ClientError> {
        self.chain(None).get("/v1/chains").await
    }

    /// `GET /v1/chains/{chain}`: one hosted chain, by name or chain id.
    pub async fn chain_info(&self, chain: &str) -> Result<serde_json::Value, ClientError> {
        self.chain(None).get(&format!("/v1/chains/{chain}")).await
    }

    /// A native module's query, `GET /v1/modules/{module}/{path}`.
    pub async fn module_query(
        &self,
        module: &str,
        path: &str,
    ) -> Result<serde_json::Value, ClientError> {
        self.get(&format!("/v1/modules/{module}/{path}")).await
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<StatusInfo, ClientError> {
        self.get("/v1/status").await
    }

    /// Submit a signed transaction.
    pub async fn submit(&self, tx: &SignedTransaction) -> Result<H256, ClientError> {
        self.submit_raw(&encode(tx)).await
    }

    /// Submit an encoded transaction.
    pub async fn submit_raw(&self, raw: &[u8]) -> Result<H256, ClientError> {
        let r: SubmitResponse = self
            .post(
                "/v1/txs",
                &SubmitRequest {
                    raw: const_hex::encode_prefixed(raw),
                },
            )
            .await?;
        Ok(r.hash)
    }

    /// Submit many encoded transactions; one result each.
    pub async fn submit_batch(&self, raws: &[Vec<u8>]) -> Result<Vec<BatchItem>, ClientError> {
        let req = BatchSubmitRequest {
            raws: raws.iter().map(const_hex::encode_prefixed).collect(),
        };
        let r: BatchSubmitResponse = self.post("/v1/txs/batch", &req).await?;
        Ok(r.results)
    }

    /// A transaction.
    pub async fn tx(&self, hash: &H256) -> Result<TxView, ClientError> {
        self.get(&format!("/v1/txs/{hash}")).await
    }

    /// A receipt.
    pub async fn receipt(&self, hash: &H256) -> Result<Receipt, ClientError> {
        self.get(&format!("/v1/receipts/{hash}")).await
    }

    /// Poll for a receipt until it exists or `timeout` passes.
    pub async fn wait_receipt(
        &self,
        hash: &H256,
        timeout: Duration,
    ) -> Result<Receipt, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.receipt(hash).await {
                Ok(r) => return Ok(r),
                Err(ClientError::Api { status: 404, .. })
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(ClientError::Api { status: 404, .. }) => {
                    return Err(ClientError::Timeout(format!("receipt of {hash}")))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A block: `latest`, a height, or a 0x hash.
    pub async fn block(&self, id: &str) -> Result<BlockView, ClientError> {
        self.get(&format!("/v1/blocks/{id}")).await
    }

    /// The current validator set.
    pub async fn validators(&self) -> Result<tongtian_types::ValidatorSet, ClientError> {
        self.get("/v1/validators").await
    }

    /// An account.
    pub async fn account(&self, address: &Address) -> Result<AccountView, ClientError> {
        self.get(&format!("/v1/accounts/{address}")).await
    }

    /// An account with its proof.
    pub async fn account_proof(
        &self,
        address: &Address,
        height: Option<u64>,
    ) -> Result<AccountProofView, ClientError> {
        let q = height.map(|h| format!("?height={h}")).unwrap_or_default();
        self.get(&format!("/v1/accounts/{address}/proof{q}")).await
    }

    /// `GET /v1/state/proof`: any state key's value (or absence) with its
    /// proof and the certified header it leads to (default: the latest
    /// certified height).
    pub async fn state_proof(
        &self,
        key: &[u8],
        height: Option<u64>,
    ) -> Result<tongtian_types::api::StateProofView, ClientError> {
        let q = height.map(|h| format!("&height={h}")).unwrap_or_default();
        self.get(&format!(
            "/v1/state/proof?key={}{q}",
            const_hex::encode_prefixed(key)
        ))
        .await
    }

    /// Follow committed blocks (server-sent events). The stream yields
    /// [`ClientError::Lagged`] if this reader fell behind and blocks were
    /// skipped, and ends when the connection does.
    pub async fn blocks(&self) -> Result<BlockStream, ClientError> {
        let url = self.url("/v1/blocks/stream");
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                cause: source,
            })?;
        if !resp.status().is_success() {
            return Err(ClientError::Decode {
                url,
                reason: format!("HTTP {}", resp.status()),
            });
        }
        let state = SseState {
            bytes: Box::pin(resp.bytes_stream()),
            buf: Vec::new(),
            url,
            done: false,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            state,
            next_block_event,
        )))
    }
}

/// The committed-block stream of [`Client::blocks`].
pub type BlockStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<BlockEvent, ClientError>> + Send>>;

type ByteStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Send>>;

struct SseState {
    bytes: ByteStream,
    buf: Vec<u8>,
    url: String,
    done: bool,
}

/// Take one complete SSE frame (up to a blank line) off the buffer.
fn take_frame(buf: &mut Vec<u8>) -> Option<(String, String)> {
    let end = buf.windows(2).position(|w| w == b"\n\n")?;
    let frame: Vec<u8> = buf.drain(..end + 2).collect();
    let text = String::from_utf8_lossy(&frame);
    let mut event = String::from("message");
    let mut data = String::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    Some((event, data))
}

async fn next_block_event(mut st: SseState) -> Option<(Result<BlockEvent, ClientError>, SseState)> {
    if st.done {
        return None;
    }
    loop {
        while let Some((event, data)) = take_frame(&mut st.buf) {
            match event.as_str() {
                "block" => {
                    let item = serde_json::from_str(&data).map_err(|e| ClientError::Decode {
                        url: st.url.clone(),
                        reason: e.to_string(),
                    });
                    return Some((item, st));
                }
                "lagged" => {
                    return Some((
                        Err(ClientError::Lagged(data.trim().parse().unwrap_or(0))),
                        st,
                    ))
                }
                _ => {}
            }
        }
        match st.bytes.next().await {
            Some(Ok(chunk)) => st.buf.extend_from_slice(&chunk),
            Some(Err(source)) => {
                st.done = true;
                let url = st.url.clone();
                return Some((Err(ClientError::Transport { url, cause: source }), st));
            }
            None => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::take_frame;

    #[test]
    fn sse_frames_are_split_and_parsed() {
        let mut buf = b"event: block\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: lagged\ndata: 3\n\nevent: blo".to_vec();
        assert_eq!(
            take_frame(&mut buf),
            Some(("block".into(), "{\"a\":1}".into()))
        );
        assert_eq!(
            take_frame(&mut buf),
            Some(("message".into(), String::new()))
        );
        assert_eq!(take_frame(&mut buf), Some(("lagged".into(), "3".into())));
        // An incomplete frame stays buffered until the rest arrives.
        assert_eq!(take_frame(&mut buf), None);
        buf.extend_from_slice(b"ck\ndata: x\n\n");
        assert_eq!(take_frame(&mut buf), Some(("block".into(), "x".into())));
    }
}
