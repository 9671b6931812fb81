//! Ethereum JSON-RPC over a WebSocket (`GET /eth` or `GET /` upgraded),
//! with `eth_subscribe` / `eth_unsubscribe` as in Geth: `newHeads`,
//! `logs` (with an address and topics filter) and `newPendingTransactions`.
//! ethers' `WebSocketProvider`, web3.py's `WebSocketProvider` and viem's
//! `webSocket` transport listen this way instead of polling filters.
//!
//! Every other method answers as over HTTP. A subscription is a filter of
//! the connection's own (the same cursors as `eth_newFilter`), polled when
//! a block is committed and every [`POLL_INTERVAL`]; what it reports goes
//! out as `eth_subscription` notifications, one per header, log or
//! transaction hash. A connection holds at most [`MAX_SUBSCRIPTIONS`], and
//! they end with it; a node serves at most [`MAX_SOCKETS`] connections.

use crate::accounts::UnlockedAccounts;
use crate::eth::{self, EthFilters, Rpc};
use crate::filters::Filters;
use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tongtian_node::ChainRuntime;

/// Subscriptions one connection may hold.
pub const MAX_SUBSCRIPTIONS: usize = 256;
/// WebSockets one node serves at a time; more are refused (503).
pub const MAX_SOCKETS: usize = 1024;
/// How often subscriptions are polled besides at each block (pending
/// transactions arrive between blocks).
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// What a connection's requests may use.
#[derive(Clone)]
struct Shared {
    chain: Arc<ChainRuntime>,
    filters: Arc<EthFilters>,
    accounts: Arc<UnlockedAccounts>,
    subscriptions: Arc<EthFilters>,
}

impl Shared {
    /// Run `f` with this connection's [`Rpc`] on a blocking thread (it
    /// reads the store).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Rpc<'_>) -> T + Send + 'static,
    ) -> Option<T> {
        let s = self.clone();
        tokio::task::spawn_blocking(move || {
            f(&Rpc {
                chain: &s.chain,
                filters: &s.filters,
                accounts: &s.accounts,
                subscriptions: Some(&s.subscriptions),
            })
        })
        .await
        .ok()
    }
}

/// Serve one WebSocket until the client leaves or the node stops.
pub(crate) async fn serve(
    socket: WebSocket,
    chain: Arc<ChainRuntime>,
    filters: Arc<EthFilters>,
    accounts: Arc<UnlockedAccounts>,
) {
    let mut blocks = chain.subscribe();
    let shared = Shared {
        chain,
        filters,
        accounts,
        // Polled every interval, so none expires while the socket is open.
        subscriptions: Arc::new(Filters::new(MAX_SUBSCRIPTIONS, Duration::from_secs(60))),
    };
    let (mut out, mut incoming) = socket.split();
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let sent = tokio::select! {
            msg = incoming.next() => {
                let body: Vec<u8> = match msg {
                    Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    // Pings are answered by the socket itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                };
                let Some(reply) = shared.blocking(move |rpc| eth::answer(rpc, &body)).await else {
                    break;
                };
                out.send(Message::Text(reply.to_string().into())).await
            }
            ev = blocks.recv() => match ev {
                // A lagging receiver only missed wake-ups: the cursors
                // still hold every block.
                Ok(_) | Err(RecvError::Lagged(_)) => notify(&shared, &mut out).await,
                Err(RecvError::Closed) => break,
            },
            // Only pending transactions need the clock; an idle socket
            // sleeps until a message or a block.
            _ = tick.tick(), if !shared.subscriptions.is_empty() => notify(&shared, &mut out).await,
        };
        if sent.is_err() {
            break;
        }
    }
}

/// Poll every subscription and send what each has to report.
async fn notify(
    shared: &Shared,
    out: &mut futures_util::stream::SplitSink<WebSocket, Message>,
) -> Result<(), axum::Error> {
    if shared.subscriptions.is_empty() {
        return Ok(());
    }
    let due = shared
        .blocking(|rpc| {
            let mut due = Vec::new();
            for id in rpc.subscriptions.map(|s| s.ids()).unwrap_or_default() {
                match eth::subscription_changes(rpc, &id) {
                    Ok(items) => due.extend(items.into_iter().map(|item| (id.clone(), item))),
                    Err(e) => {
                        tracing::warn!(subscription = %id, error = ?e, "subscription poll failed")
                    }
                }
            }
            due
        })
        .await
        .unwrap_or_default();
    for (id, result) in due {
        let note = json!({
            "jsonrpc": "2.0",
            "method": "eth_subscription",
            "params": {"subscription": id, "result": result},
        });
        out.send(Message::Text(note.to_string().into())).await?;
    }
    Ok(())
}
