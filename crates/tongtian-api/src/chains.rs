//! Many chains behind one API.
//!
//! Every chain a node hosts has its own router (the whole single-chain
//! API, [`crate::chain_router`]). The [`ChainDirectory`] holds them, and
//! [`directory_router`] puts them behind one listener:
//!
//! - `GET /v1/chains` lists the hosted chains, `GET /v1/chains/{chain}`
//!   shows one (by name or decimal chain id);
//! - `/v1/chains/{chain}/{rest}` is that chain's `/v1/{rest}`, and
//!   `/eth/{chain}` its Ethereum JSON-RPC (each chain its own chain id);
//! - every other path is the main chain's, so the unprefixed routes keep
//!   meaning what they meant on a one-chain node.
//!
//! An unknown chain answers 404 with code `unknown_chain`. Chains can be
//! added and removed while the API serves (a sub-chain started or stopped
//! by its node).

use crate::{ApiError, ApiOptions};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use parking_lot::RwLock;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use tongtian_node::ChainRuntime;
use tower::ServiceExt;

/// One hosted chain as `GET /v1/chains` lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChainListing {
    /// The chain's name (its spec's).
    pub name: String,
    /// Its chain id.
    pub chain_id: u64,
    /// Consensus engine: solo, raft or bft.
    pub engine: String,
    /// Crypto suite: standard or sm.
    pub suite: String,
    /// Member organisations (empty where the chain keeps no organisations).
    pub orgs: Vec<String>,
    /// `active` or `stopped`.
    pub status: String,
    /// Whether this node runs it.
    pub hosted: bool,
    /// Latest committed height, where hosted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
}

struct Hosted {
    chain: Arc<ChainRuntime>,
    router: Router,
}

#[derive(Default)]
struct Directory {
    main: Option<String>,
    chains: BTreeMap<String, Hosted>,
}

/// The chains one API serves.
#[derive(Default)]
pub struct ChainDirectory {
    inner: RwLock<Directory>,
}

impl ChainDirectory {
    /// An empty directory.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Serve `chain` (replacing one of the same name); `main` makes it the
    /// chain of the unprefixed routes.
    pub fn host(&self, chain: Arc<ChainRuntime>, options: ApiOptions, main: bool) {
        let name = chain.spec().name.clone();
        let router = crate::chain_router(chain.clone(), options);
        let mut d = self.inner.write();
        if main || d.main.is_none() {
            d.main = Some(name.clone());
        }
        d.chains.insert(name, Hosted { chain, router });
    }

    /// Stop serving the chain named `name`.
    pub fn remove(&self, name: &str) {
        let mut d = self.inner.write();
        d.chains.remove(name);
        if d.main.as_deref() == Some(name) {
            d.main = None;
        }
    }

    /// The chain called `key`, by name or decimal chain id; `main` is
    /// always the main chain (no sub-chain may take the name).
    fn find(&self, key: &str) -> Option<(Arc<ChainRuntime>, Router)> {
        let d = self.inner.read();
        let key = match (key, &d.main) {
            ("main", Some(m)) => m.as_str(),
            _ => key,
        };
        let hit = d.chains.get(key).or_else(|| {
            let id: u64 = key.parse().ok()?;
            d.chains.values().find(|h| h.chain.spec().chain_id == id)
        })?;
        Some((hit.chain.clone(), hit.router.clone()))
    }

    fn main(&self) -> Option<Router> {
        let d = self.inner.read();
        let name = d.main.as_ref()?;
        d.chains.get(name).map(|h| h.router.clone())
    }

    /// Every chain: the main chain first, then the hosted sub-chains and
    /// those the main chain's registry knows that this node does not run.
    pub fn listings(&self) -> Vec<ChainListing> {
        let (hosted, main): (Vec<Arc<ChainRuntime>>, Option<Arc<ChainRuntime>>) = {
            let d = self.inner.read();
            let main = d
                .main
                .as_ref()
                .and_then(|m| d.chains.get(m))
                .map(|h| h.chain.clone());
            (d.chains.values().map(|h| h.chain.clone()).collect(), main)
        };
        let registry = main.as_ref().map(|m| registry_of(m)).unwrap_or_default();
        let mut out: Vec<ChainListing> = hosted
            .iter()
            .map(|c| {
                let mut l = listing(c);
                if let Some(e) = registry.iter().find(|e| e.name == l.name) {
                    l.orgs = e.orgs.clone();
                    l.status = status_name(e.status).into();
                }
                l
            })
            .collect();
        let main_name = main.as_ref().map(|m| m.spec().name.clone());
        if let (Some(m), Some(l)) = (
            &main,
            out.iter_mut().find(|l| Some(&l.name) == main_name.as_ref()),
        ) {
            l.orgs = org_ids(m);
        }
        for e in &registry {
            if !out.iter().any(|l| l.name == e.name) {
                out.push(ChainListing {
                    name: e.name.clone(),
                    chain_id: e.chain_id,
                    engine: e.engine.clone(),
                    suite: e.suite.to_string(),
                    orgs: e.orgs.clone(),
                    status: status_name(e.status).into(),
                    hosted: false,
                    height: None,
                });
            }
        }
        out.sort_by_key(|l| (Some(&l.name) != main_name.as_ref(), l.name.clone()));
        out
    }
}

fn status_name(s: tongtian_modules::registry::ChainStatus) -> &'static str {
    match s {
        tongtian_modules::registry::ChainStatus::Active => "active",
        tongtian_modules::registry::ChainStatus::Stopped => "stopped",
    }
}

/// The registry's entries on `main` (none when it keeps no registry).
fn registry_of(main: &ChainRuntime) -> Vec<tongtian_modules::registry::ChainEntry> {
    match main.query_module("registry", "chains", &BTreeMap::new(), None) {
        Ok(Ok(v)) => serde_json::from_value(v).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The organisation ids on `main`.
fn org_ids(main: &ChainRuntime) -> Vec<String> {
    match main.query_module("org", "orgs", &BTreeMap::new(), None) {
        Ok(Ok(serde_json::Value::Array(orgs))) => orgs
            .iter()
            .filter_map(|o| o["id"].as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

impl tongtian_node::host::ChainObserver for ChainDirectory {
    fn started(&self, chain: Arc<ChainRuntime>) {
        self.host(chain, ApiOptions::default(), false);
    }

    fn stopped(&self, name: &str) {
        self.remove(name);
    }
}

fn listing(c: &ChainRuntime) -> ChainListing {
    let spec = c.spec();
    ChainListing {
        name: spec.name.clone(),
        chain_id: spec.chain_id,
        engine: spec.consensus.engine.clone(),
        suite: spec.suite.to_string(),
        orgs: Vec::new(),
        status: "active".into(),
        hosted: true,
        height: Some(c.latest().0),
    }
}

fn unknown_chain(key: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "unknown_chain",
        format!("this node hosts no chain {key:?}: GET /v1/chains lists the ones it does"),
    )
}

/// The router over every chain in `dir`.
pub fn directory_router(dir: Arc<ChainDirectory>) -> Router {
    Router::new()
        .route("/v1/chains", get(list_chains))
        .route("/v1/chains/{chain}", get(show_chain))
        .route("/v1/chains/{chain}/{*rest}", any(forward_chain))
        .route("/eth/{chain}", any(forward_eth))
        .fallback(forward_main)
        .with_state(dir)
}

/// The chains this node hosts.
#[utoipa::path(get, path = "/v1/chains",
    description = "The chains this node hosts, the main chain first. Every route below `/v1/` is also served per chain as `/v1/chains/{chain}/...` (by name or chain id), and each chain's Ethereum JSON-RPC at `/eth/{chain}`; the unprefixed routes are the main chain's.",
    responses((status = 200, body = [ChainListing])))]
async fn list_chains(
    State(dir): State<Arc<ChainDirectory>>,
) -> Result<Json<Vec<ChainListing>>, ApiError> {
    let l = tokio::task::spawn_blocking(move || dir.listings())
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(l))
}

async fn show_chain(
    State(dir): State<Arc<ChainDirectory>>,
    Path(key): Path<String>,
) -> Result<Json<ChainListing>, ApiError> {
    let found = tokio::task::spawn_blocking(move || {
        dir.listings()
            .into_iter()
            .find(|l| l.name == key || l.chain_id.to_string() == key)
            .ok_or_else(|| unknown_chain(&key))
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Json(found))
}

/// `req` as a fresh request for `path` (the query string kept): method,
/// headers and body, and the connection's upgrade (for WebSockets), but
/// not this router's own extensions (its path parameters would otherwise
/// be seen by the chain router's handlers as theirs).
fn rewrite(req: Request, path: &str) -> Result<Request, ApiError> {
    let pq = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let uri: Uri = pq
        .parse()
        .map_err(|_| ApiError::not_found("no such endpoint"))?;
    let (mut parts, body) = req.into_parts();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let mut fresh = Request::new(body);
    *fresh.method_mut() = parts.method;
    *fresh.uri_mut() = uri;
    *fresh.version_mut() = parts.version;
    *fresh.headers_mut() = parts.headers;
    if let Some(u) = upgrade {
        fresh.extensions_mut().insert(u);
    }
    Ok(fresh)
}

async fn call(router: Router, req: Request) -> Response {
    match router.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

async fn forward_chain(
    State(dir): State<Arc<ChainDirectory>>,
    Path((key, rest)): Path<(String, String)>,
    req: Request<Body>,
) -> Response {
    let Some((_, router)) = dir.find(&key) else {
        return unknown_chain(&key).into_response();
    };
    match rewrite(req, &format!("/v1/{rest}")) {
        Ok(req) => call(router, req).await,
        Err(e) => e.into_response(),
    }
}

async fn forward_eth(
    State(dir): State<Arc<ChainDirectory>>,
    Path(key): Path<String>,
    req: Request<Body>,
) -> Response {
    let Some((_, router)) = dir.find(&key) else {
        return unknown_chain(&key).into_response();
    };
    match rewrite(req, "/eth") {
        Ok(req) => call(router, req).await,
        Err(e) => e.into_response(),
    }
}

async fn forward_main(State(dir): State<Arc<ChainDirectory>>, req: Request<Body>) -> Response {
    match dir.main() {
        // The fallback inserted no path parameters: forward as it is.
        Some(router) => call(router, req).await,
        None => ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "no_main_chain",
            "this node runs no main chain yet",
        )
        .into_response(),
    }
}
