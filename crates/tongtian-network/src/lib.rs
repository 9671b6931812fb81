//! Authenticated, encrypted transport between nodes that know each other.
//!
//! Every connection is a Noise `XX` session (X25519, ChaCha20-Poly1305,
//! BLAKE2s) over TCP. Noise gives confidentiality and integrity; identity
//! comes from the chain: right after the handshake each side sends a
//! `Hello` with its node public key (Ed25519 or SM2, per the chain's
//! suite) and a signature over the session's handshake hash, so the
//! signature cannot be replayed into another session. A connection whose
//! key is not in [`NetworkConfig::peers`] is refused.
//!
//! Messages are multiplexed by `(chain id, channel)`: a chain runtime
//! [`Network::subscribe`]s to its channels and sends with
//! [`Network::send`] / [`Network::broadcast`]. Between any two nodes there
//! is one connection: the node with the larger public key dials, with
//! exponential backoff, and redials when the connection drops.
//!
//! Frames are length-prefixed; a peer announcing a frame larger than
//! [`NetworkConfig::max_frame`] is disconnected.
//!
//! **Per-chain scope.** A node hosting several chains gives each one a view
//! of the transport, [`Network::join`], scoped to that chain's member
//! nodes: its sends and broadcasts reach only members, `connected` counts
//! only members, and frames for that chain from any other node are dropped
//! and counted ([`ChainScope::dropped`]), so a sub-chain's blocks, votes
//! and transactions never reach an organisation outside it. The view is
//! the same [`Network`] type, so engines and gossip need not know.

use borsh::{BorshDeserialize, BorshSerialize};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tongtian_crypto::{suite, Keypair, SuiteId};

/// Channel numbers within a chain.
pub mod channels {
    /// Consensus engine messages.
    pub const CONSENSUS: u8 = 0;
    /// Transaction gossip.
    pub const TX_GOSSIP: u8 = 1;
    /// Block sync requests and answers.
    pub const SYNC: u8 = 2;
}

const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
const HELLO_DOMAIN: &[u8] = b"tongtian/p2p/v1";
/// Largest plaintext in one Noise transport message (65535 minus the tag).
const CHUNK: usize = 65_535 - 16;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of the transport.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Socket trouble.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Noise failed (bad handshake, decryption failure).
    #[error("noise: {0}")]
    Noise(String),
    /// The peer's identity is not acceptable.
    #[error("peer refused: {0}")]
    Refused(String),
    /// The peer broke the framing rules.
    #[error("protocol violation: {0}")]
    Protocol(String),
}

fn noise<E: fmt::Display>(e: E) -> NetworkError {
    NetworkError::Noise(e.to_string())
}

/// A node's identity on the network: its encoded public key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub Vec<u8>);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex::encode(&self.0);
        write!(f, "{}", &h[..h.len().min(12)])
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A known peer.
#[derive(Clone, Debug)]
pub struct PeerSpec {
    /// Its public key (the allow-list entry).
    pub public_key: Vec<u8>,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Transport configuration.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// This node's key; its public half is the node's [`PeerId`].
    pub identity: Keypair,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Every node this one may talk to; nobody else is accepted.
    pub peers: Vec<PeerSpec>,
    /// Largest frame accepted, in bytes.
    pub max_frame: usize,
}

/// A message received from a peer.
#[derive(Clone, Debug)]
pub struct Inbound {
    /// Sender.
    pub from: PeerId,
    /// Payload.
    pub payload: Vec<u8>,
}

/// First frame of every session, proving who is at the other end.
#[derive(BorshSerialize, BorshDeserialize)]
struct Hello {
    suite: SuiteId,
    public_key: Vec<u8>,
    signature: Vec<u8>,
}

type Route = (u64, u8);

/// Who takes part in one chain on this transport (see [`Network::join`]).
#[derive(Debug)]
pub struct ChainScope {
    chain_id: u64,
    members: parking_lot::RwLock<HashSet<PeerId>>,
    dropped: std::sync::atomic::AtomicU64,
}

impl ChainScope {
    /// The chain.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// Whether `peer` is a member.
    pub fn is_member(&self, peer: &PeerId) -> bool {
        self.members.read().contains(peer)
    }

    /// Replace the member nodes (when the chain's membership changes).
    pub fn set_members(&self, members: impl IntoIterator<Item = PeerId>) {
        *self.members.write() = members.into_iter().collect();
    }

    /// Frames of this chain dropped because their sender is no member.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Where a route's inbound frames go, and the scope that filters them.
#[derive(Clone)]
struct RouteTarget {
    tx: mpsc::Sender<Inbound>,
    scope: Option<Arc<ChainScope>>,
}

struct Conn {
    id: u64,
    out: mpsc::Sender<Vec<u8>>,
}

struct Inner {
    config: NetworkConfig,
    me: PeerId,
    allowed: parking_lot::RwLock<HashSet<Vec<u8>>>,
    conns: Mutex<HashMap<PeerId, Conn>>,
    routes: Mutex<HashMap<Route, RouteTarget>>,
    blocked: Mutex<HashSet<PeerId>>,
    /// Frames received, by chain id (before any scope filter).
    frames_in: Mutex<HashMap<u64, u64>>,
    next_conn: Mutex<u64>,
    local_addr: SocketAddr,
    stop: watch::Receiver<bool>,
}

/// A running transport, or one chain's view of it ([`Network::join`]).
/// Cheap to clone.
#[derive(Clone)]
pub struct Network {
    inner: Arc<Inner>,
    stop: Arc<watch::Sender<bool>>,
    scope: Option<Arc<ChainScope>>,
}

impl Network {
    /// Bind the listener, start accepting, and start dialing the peers this
    /// node is responsible for dialing.
    pub async fn start(config: NetworkConfig) -> Result<Network, NetworkError> {
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let me = PeerId(config.identity.public_key().to_vec());
        let allowed = config
            .peers
            .iter()
            .map(|p| p.public_key.clone())
            .filter(|k| *k != me.0)
            .collect();
        let (stop_tx, stop) = watch::channel(false);
        let inner = Arc::new(Inner {
            me,
            allowed: parking_lot::RwLock::new(allowed),
            conns: Mutex::new(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
            blocked: Mutex::new(HashSet::new()),
            frames_in: Mutex::new(HashMap::new()),
            next_conn: Mutex::new(0),
            local_addr,
            stop,
            config,
        });
        tokio::spawn(accept_loop(inner.clone(), listener));
        for peer in inner.config.peers.clone() {
            if peer.public_key.as_slice() > inner.me.0.as_slice() {
                tokio::spawn(dial_loop(inner.clone(), peer));
            }
        }
        Ok(Network {
            inner,
            stop: Arc::new(stop_tx),
            scope: None,
        })
    }

    /// A view of this transport for chain `chain_id` whose member nodes
    /// are `members` (this node may be among them): sends, broadcasts and
    /// `connected` are limited to them, and the view's subscriptions drop
    /// (and count) frames from anyone else.
    pub fn join(&self, chain_id: u64, members: impl IntoIterator<Item = PeerId>) -> Network {
        let scope = Arc::new(ChainScope {
            chain_id,
            members: parking_lot::RwLock::new(members.into_iter().collect()),
            dropped: std::sync::atomic::AtomicU64::new(0),
        });
        Network {
            inner: self.inner.clone(),
            stop: self.stop.clone(),
            scope: Some(scope),
        }
    }

    /// The scope of a chain's view, if this is one.
    pub fn scope(&self) -> Option<&Arc<ChainScope>> {
        self.scope.as_ref()
    }

    /// Whether this view may talk to `peer` about `chain_id`.
    fn may_reach(&self, peer: &PeerId, chain_id: u64) -> bool {
        match &self.scope {
            Some(s) if s.chain_id == chain_id => s.is_member(peer),
            _ => true,
        }
    }

    /// A transport in memory on `hub` (see [`MemoryHub`]): nothing is
    /// bound; `config.listen` is only reported as the local address.
    pub fn start_in_memory(config: NetworkConfig, hub: &Arc<MemoryHub>) -> Network {
        let me = PeerId(config.identity.public_key().to_vec());
        let allowed: HashSet<Vec<u8>> = config
            .peers
            .iter()
            .map(|p| p.public_key.clone())
            .filter(|k| *k != me.0)
            .collect();
        let (stop_tx, stop) = watch::channel(false);
        let inner = Arc::new(Inner {
            me,
            allowed: parking_lot::RwLock::new(allowed),
            conns: Mutex::new(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
            blocked: Mutex::new(HashSet::new()),
            frames_in: Mutex::new(HashMap::new()),
            next_conn: Mutex::new(0),
            local_addr: config.listen,
            stop,
            config,
        });
        let mut nodes = hub.nodes.lock();
        nodes.retain(|w| w.strong_count() > 0);
        for other in nodes.iter().filter_map(|w| w.upgrade()) {
            let both = inner.allowed.read().contains(&other.me.0)
                && other.allowed.read().contains(&inner.me.0);
            if both {
                connect_in_memory(&inner, &other);
            }
        }
        nodes.push(Arc::downgrade(&inner));
        Network {
            inner,
            stop: Arc::new(stop_tx),
            scope: None,
        }
    }

    /// This node's id.
    pub fn local_id(&self) -> PeerId {
        self.inner.me.clone()
    }

    /// The bound listen address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Receive the messages of `(chain_id, channel)`. A later subscription
    /// to the same route replaces the earlier one.
    pub fn subscribe(&self, chain_id: u64, channel: u8) -> mpsc::Receiver<Inbound> {
        let (tx, rx) = mpsc::channel(8192);
        let scope = self.scope.clone().filter(|s| s.chain_id == chain_id);
        self.inner
            .routes
            .lock()
            .insert((chain_id, channel), RouteTarget { tx, scope });
        rx
    }

    /// Send to one peer; false if it is not connected or its queue is full
    /// (the transport never blocks a sender; protocols above tolerate loss).
    pub fn send(&self, to: &PeerId, chain_id: u64, channel: u8, payload: &[u8]) -> bool {
        if self.inner.blocked.lock().contains(to) || !self.may_reach(to, chain_id) {
            return false;
        }
        let frame = encode_frame(chain_id, channel, payload);
        let conns = self.inner.conns.lock();
        conns.get(to).is_some_and(|c| c.out.try_send(frame).is_ok())
    }

    /// Send to every connected peer; returns how many took it.
    pub fn broadcast(&self, chain_id: u64, channel: u8, payload: &[u8]) -> usize {
        let frame = encode_frame(chain_id, channel, payload);
        let blocked = self.inner.blocked.lock().clone();
        let conns = self.inner.conns.lock();
        conns
            .iter()
            .filter(|(p, _)| !blocked.contains(*p) && self.may_reach(p, chain_id))
            .filter(|(_, c)| c.out.try_send(frame.clone()).is_ok())
            .count()
    }

    /// Peers with an authenticated connection (in a chain's view: those
    /// that are its members).
    pub fn connected(&self) -> Vec<PeerId> {
        let blocked = self.inner.blocked.lock().clone();
        self.inner
            .conns
            .lock()
            .keys()
            .filter(|p| !blocked.contains(*p))
            .filter(|p| self.scope.as_ref().is_none_or(|s| s.is_member(p)))
            .cloned()
            .collect()
    }

    /// Frames this node received about chain `chain_id`, from anyone, since
    /// it started (whether or not it runs that chain).
    pub fn frames_received(&self, chain_id: u64) -> u64 {
        self.inner
            .frames_in
            .lock()
            .get(&chain_id)
            .copied()
            .unwrap_or(0)
    }

    /// Fault injection for tests and operators: drop all traffic to and
    /// from `peers` (the connection stays up), until [`Network::unblock_all`].
    pub fn block(&self, peers: &[PeerId]) {
        self.inner.blocked.lock().extend(peers.iter().cloned());
    }

    /// Undo [`Network::block`].
    pub fn unblock_all(&self) {
        self.inner.blocked.lock().clear();
    }

    /// Admit only those configured peers whose keys are in `keys` (the
    /// nodes of the chain network's current organisations): connections
    /// to any other are closed now and refused from now on, until a later
    /// call admits them again. Returns how many were disconnected.
    pub fn admit_only(&self, keys: &HashSet<Vec<u8>>) -> usize {
        let next: HashSet<Vec<u8>> = self
            .inner
            .config
            .peers
            .iter()
            .map(|p| p.public_key.clone())
            .filter(|k| *k != self.inner.me.0 && keys.contains(k))
            .collect();
        if *self.inner.allowed.read() == next {
            return 0;
        }
        *self.inner.allowed.write() = next.clone();
        let mut conns = self.inner.conns.lock();
        let before = conns.len();
        conns.retain(|p, _| next.contains(&p.0));
        let dropped = before - conns.len();
        if dropped > 0 {
            tracing::warn!(dropped, "disconnected nodes no longer admitted");
        }
        dropped
    }

    /// Stop accepting and dialing and close every connection.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
        self.inner.conns.lock().clear();
    }
}

fn encode_frame(chain_id: u64, channel: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&chain_id.to_le_bytes());
    f.push(channel);
    f.extend_from_slice(payload);
    f
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let mut stop = inner.stop.clone();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, addr)) => {
                    let inner = inner.clone();
                    tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&inner, stream, false)).await {
                            Ok(Ok(est)) => run_connection(inner, est).await,
                            Ok(Err(e)) => tracing::warn!(%addr, error = %e, "inbound connection refused"),
                            Err(_) => tracing::warn!(%addr, "inbound handshake timed out"),
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => return,
        }
    }
}

async fn dial_loop(inner: Arc<Inner>, peer: PeerSpec) {
    let mut stop = inner.stop.clone();
    let mut backoff = Duration::from_millis(100);
    let id = PeerId(peer.public_key.clone());
    loop {
        if *stop.borrow() {
            return;
        }
        let attempt = async {
            let stream = TcpStream::connect(peer.addr).await?;
            tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&inner, stream, true))
                .await
                .map_err(|_| NetworkError::Protocol("handshake timed out".into()))?
        };
        match attempt.await {
            Ok(est) if est.peer == id => {
                backoff = Duration::from_millis(100);
                tokio::select! {
                    _ = run_connection(inner.clone(), est) => {}
                    _ = stop.changed() => return,
                }
            }
            Ok(est) => {
                tracing::warn!(expected = %id, got = %est.peer, addr = %peer.addr, "dialed node answered with another key")
            }
            Err(e) => tracing::debug!(peer = %id, addr = %peer.addr, error = %e, "dial failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(3));
    }
}

/// The encrypting halves of an established session.
struct Session {
    transport: snow::StatelessTransportState,
}

async fn write_handshake(wr: &mut OwnedWriteHalf, msg: &[u8]) -> Result<(), NetworkError> {
    wr.write_all(&(msg.len() as u16).to_be_bytes()).await?;
    wr.write_all(msg).await?;
    Ok(())
}

async fn read_handshake(rd: &mut OwnedReadHalf) -> Result<Vec<u8>, NetworkError> {
    let mut len = [0u8; 2];
    rd.read_exact(&mut len).await?;
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    rd.read_exact(&mut msg).await?;
    Ok(msg)
}

/// An authenticated session, with the nonces the hello exchange left off at.
struct Established {
    peer: PeerId,
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    session: Arc<Session>,
    send_nonce: u64,
    recv_nonce: u64,
}

async fn handshake(
    inner: &Inner,
    stream: TcpStream,
    initiator: bool,
) -> Result<Established, NetworkError> {
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let params: snow::params::NoiseParams = NOISE_PARAMS.parse().map_err(noise)?;
    let builder = snow::Builder::new(params);
    let static_key = builder.generate_keypair().map_err(noise)?;
    let builder = builder.local_private_key(&static_key.private);
    let mut hs = if initiator {
        builder.build_initiator()
    } else {
        builder.build_responder()
    }
    .map_err(noise)?;
    let mut buf = vec![0u8; 65_535];
    // XX: -> e ; <- e, ee, s, es ; -> s, se
    if initiator {
        let n = hs.write_message(&[], &mut buf).map_err(noise)?;
        write_handshake(&mut wr, &buf[..n]).await?;
        let m = read_handshake(&mut rd).await?;
        hs.read_message(&m, &mut buf).map_err(noise)?;
        let n = hs.write_message(&[], &mut buf).map_err(noise)?;
        write_handshake(&mut wr, &buf[..n]).await?;
    } else {
        let m = read_handshake(&mut rd).await?;
        hs.read_message(&m, &mut buf).map_err(noise)?;
        let n = hs.write_message(&[], &mut buf).map_err(noise)?;
        write_handshake(&mut wr, &buf[..n]).await?;
        let m = read_handshake(&mut rd).await?;
        hs.read_message(&m, &mut buf).map_err(noise)?;
    }
    let hash = hs.get_handshake_hash().to_vec();
    let session = Arc::new(Session {
        transport: hs.into_stateless_transport_mode().map_err(noise)?,
    });
    let mut send_nonce = 0u64;
    let mut recv_nonce = 0u64;
    // Prove our identity over this session.
    let id = &inner.config.identity;
    let mut msg = HELLO_DOMAIN.to_vec();
    msg.extend_from_slice(&hash);
    let hello = Hello {
        suite: id.suite(),
        public_key: id.public_key().to_vec(),
        signature: id.sign(&msg),
    };
    let bytes = borsh::to_vec(&hello).map_err(|e| NetworkError::Protocol(e.to_string()))?;
    write_frame(&mut wr, &session, &mut send_nonce, &bytes).await?;
    let theirs = read_frame(&mut rd, &session, &mut recv_nonce, 64 * 1024).await?;
    let theirs: Hello = borsh::from_slice(&theirs)
        .map_err(|e| NetworkError::Protocol(format!("bad hello: {e}")))?;
    if !inner.allowed.read().contains(&theirs.public_key) {
        return Err(NetworkError::Refused(format!(
            "unknown key {}",
            PeerId(theirs.public_key)
        )));
    }
    suite(theirs.suite)
        .verify(&theirs.public_key, &msg, &theirs.signature)
        .map_err(|e| NetworkError::Refused(format!("identity signature: {e}")))?;
    Ok(Established {
        peer: PeerId(theirs.public_key),
        rd,
        wr,
        session,
        send_nonce,
        recv_nonce,
    })
}

async fn write_frame(
    wr: &mut OwnedWriteHalf,
    s: &Session,
    nonce: &mut u64,
    data: &[u8],
) -> Result<(), NetworkError> {
    let mut out = Vec::with_capacity(4 + data.len() + (data.len() / CHUNK + 1) * 18);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut ct = vec![0u8; 65_535];
    for chunk in data.chunks(CHUNK) {
        let n = s
            .transport
            .write_message(*nonce, chunk, &mut ct)
            .map_err(noise)?;
        *nonce += 1;
        out.extend_from_slice(&(n as u16).to_be_bytes());
        out.extend_from_slice(&ct[..n]);
    }
    wr.write_all(&out).await?;
    Ok(())
}

async fn read_frame(
    rd: &mut OwnedReadHalf,
    s: &Session,
    nonce: &mut u64,
    max: usize,
) -> Result<Vec<u8>, NetworkError> {
    let mut len = [0u8; 4];
    rd.read_exact(&mut len).await?;
    let total = u32::from_be_bytes(len) as usize;
    if total > max {
        return Err(NetworkError::Protocol(format!(
            "frame of {total} bytes exceeds {max}"
        )));
    }
    let mut data = Vec::with_capacity(total);
    if total == 0 {
        return Ok(data);
    }
    let mut ct = vec![0u8; 65_535];
    let mut pt = vec![0u8; 65_535];
    loop {
        let mut l = [0u8; 2];
        rd.read_exact(&mut l).await?;
        let n = u16::from_be_bytes(l) as usize;
        rd.read_exact(&mut ct[..n]).await?;
        let m = s
            .transport
            .read_message(*nonce, &ct[..n], &mut pt)
            .map_err(noise)?;
        *nonce += 1;
        data.extend_from_slice(&pt[..m]);
        if data.len() > total {
            return Err(NetworkError::Protocol("frame longer than announced".into()));
        }
        if data.len() == total {
            return Ok(data);
        }
    }
}

/// Hand one received frame to its route: `false` if it is malformed (the
/// connection is then closed). Counts it, drops it if the peer is blocked
/// or, for a scoped route, not a member of the chain.
fn deliver(inner: &Inner, peer: &PeerId, frame: &[u8]) -> bool {
    if frame.len() < 9 {
        tracing::warn!(%peer, "short frame; disconnecting");
        return false;
    }
    if inner.blocked.lock().contains(peer) {
        return true;
    }
    let mut cid = [0u8; 8];
    cid.copy_from_slice(&frame[..8]);
    let route = (u64::from_le_bytes(cid), frame[8]);
    *inner.frames_in.lock().entry(route.0).or_default() += 1;
    let target = inner.routes.lock().get(&route).cloned();
    if let Some(RouteTarget { tx, scope }) = target {
        if let Some(s) = scope.filter(|s| !s.is_member(peer)) {
            s.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(%peer, chain = s.chain_id, "frame from a non-member dropped");
            return true;
        }
        if tx
            .try_send(Inbound {
                from: peer.clone(),
                payload: frame[9..].to_vec(),
            })
            .is_err()
        {
            tracing::debug!(%peer, ?route, "inbound queue full; message dropped");
        }
    }
    true
}

/// An in-memory meeting point for transports in one process (tests):
/// [`Network::start_in_memory`] connects each new transport to every one
/// already on the hub that both allow, with channels instead of sockets.
/// Routing, scopes, blocking, counting and admission work as over TCP; the
/// Noise handshake and the wire encryption are skipped.
#[derive(Default)]
pub struct MemoryHub {
    nodes: Mutex<Vec<std::sync::Weak<Inner>>>,
}

impl MemoryHub {
    /// An empty hub.
    pub fn new() -> Arc<MemoryHub> {
        Arc::new(MemoryHub::default())
    }
}

/// Deliver what `from` sends to `to` over `rx`, until either stops.
async fn pump(to: Arc<Inner>, from: PeerId, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut stop = to.stop.clone();
    loop {
        let frame = tokio::select! {
            f = rx.recv() => match f { Some(f) => f, None => return },
            _ = stop.changed() => return,
        };
        if !deliver(&to, &from, &frame) {
            return;
        }
    }
}

/// Connect `a` and `b` in memory (each sends to the other through a channel).
fn connect_in_memory(a: &Arc<Inner>, b: &Arc<Inner>) {
    for (x, y) in [(a, b), (b, a)] {
        let (tx, rx) = mpsc::channel::<Vec<u8>>(4096);
        let id = {
            let mut n = x.next_conn.lock();
            *n += 1;
            *n
        };
        x.conns.lock().insert(y.me.clone(), Conn { id, out: tx });
        tokio::spawn(pump(y.clone(), x.me.clone(), rx));
    }
    tracing::debug!(a = %a.me, b = %b.me, "connected in memory");
}

async fn run_connection(inner: Arc<Inner>, est: Established) {
    let Established {
        peer,
        mut rd,
        mut wr,
        session,
        send_nonce,
        recv_nonce,
    } = est;
    let conn_id = {
        let mut n = inner.next_conn.lock();
        *n += 1;
        *n
    };
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(4096);
    if inner
        .conns
        .lock()
        .insert(
            peer.clone(),
            Conn {
                id: conn_id,
                out: out_tx,
            },
        )
        .is_some()
    {
        tracing::debug!(%peer, "replaced an older connection");
    }
    tracing::info!(%peer, "peer connected");
    let writer = {
        let session = session.clone();
        tokio::spawn(async move {
            let mut nonce = send_nonce;
            while let Some(frame) = out_rx.recv().await {
                if let Err(e) = write_frame(&mut wr, &session, &mut nonce, &frame).await {
                    tracing::debug!(error = %e, "write failed");
                    break;
                }
            }
        })
    };
    let max = inner.config.max_frame;
    let mut nonce = recv_nonce;
    let mut stop = inner.stop.clone();
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut rd, &session, &mut nonce, max) => f,
            _ = stop.changed() => break,
        };
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                tracing::info!(%peer, reason = %e, "peer disconnected");
                break;
            }
        };
        if !deliver(&inner, &peer, &frame) {
            break;
        }
    }
    writer.abort();
    let mut conns = inner.conns.lock();
    if conns.get(&peer).is_some_and(|c| c.id == conn_id) {
        conns.remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn free_addr() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    fn mesh(suite: SuiteId, n: usize) -> (Vec<Keypair>, Vec<PeerSpec>) {
        let keys: Vec<Keypair> = (0..n).map(|_| Keypair::generate(suite)).collect();
        let peers = keys
            .iter()
            .map(|k| PeerSpec {
                public_key: k.public_key().to_vec(),
                addr: free_addr(),
            })
            .collect();
        (keys, peers)
    }

    async fn start(key: &Keypair, peers: &[PeerSpec], i: usize) -> Network {
        Network::start(NetworkConfig {
            identity: key.clone(),
            listen: peers[i].addr,
            peers: peers.to_vec(),
            max_frame: 8 << 20,
        })
        .await
        .unwrap()
    }

    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn recv(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("message in time")
            .expect("open")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mesh_connects_and_routes_by_chain() {
        for suite in [SuiteId::Standard, SuiteId::Sm] {
            let (keys, peers) = mesh(suite, 3);
            let mut nets = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                nets.push(start(k, &peers, i).await);
            }
            until("full mesh", || {
                nets.iter().all(|n| n.connected().len() == 2)
            })
            .await;
            let mut b_chain1 = nets[1].subscribe(1, 0);
            let mut c_chain1 = nets[2].subscribe(1, 0);
            let mut c_chain2 = nets[2].subscribe(2, 0);
            assert_eq!(nets[0].broadcast(1, 0, b"hello chain 1"), 2);
            let m = recv(&mut b_chain1).await;
            assert_eq!(m.payload, b"hello chain 1");
            assert_eq!(m.from, nets[0].local_id());
            assert_eq!(recv(&mut c_chain1).await.payload, b"hello chain 1");
            assert!(
                c_chain2.try_recv().is_err(),
                "chain 2 must not see chain 1 traffic"
            );
            // Large frames are chunked and reassembled.
            let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
            assert!(nets[2].send(&nets[1].local_id(), 1, 0, &big));
            assert_eq!(recv(&mut b_chain1).await.payload, big);
            assert!(nets[1].send(&nets[2].local_id(), 2, 0, b""));
            assert_eq!(recv(&mut c_chain2).await.payload, Vec::<u8>::new());
            for n in &nets {
                n.shutdown();
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_chains_view_reaches_and_hears_only_its_members() {
        let (keys, peers) = mesh(SuiteId::Standard, 3);
        let mut nets = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            nets.push(start(k, &peers, i).await);
        }
        until("full mesh", || {
            nets.iter().all(|n| n.connected().len() == 2)
        })
        .await;
        let ids: Vec<PeerId> = nets.iter().map(|n| n.local_id()).collect();
        // Chain 7 has members 0 and 1; node 2 is outside it.
        let a = nets[0].join(7, [ids[0].clone(), ids[1].clone()]);
        let b = nets[1].join(7, [ids[0].clone(), ids[1].clone()]);
        let mut a_in = a.subscribe(7, 0);
        let mut b_in = b.subscribe(7, 0);
        // Node 2 listens on chain 7 with the whole transport, to see leaks.
        let mut c_in = nets[2].subscribe(7, 0);
        assert_eq!(a.connected(), vec![ids[1].clone()]);
        assert_eq!(a.broadcast(7, 0, b"members only"), 1);
        assert_eq!(recv(&mut b_in).await.payload, b"members only");
        assert!(
            !a.send(&ids[2], 7, 0, b"to an outsider"),
            "sent to a non-member"
        );
        // The outsider sends anyway: dropped and counted, never delivered.
        assert!(nets[2].send(&ids[0], 7, 0, b"intrusion"));
        assert!(nets[2].send(&ids[0], 7, 0, b"intrusion again"));
        until("drops counted", || a.scope().unwrap().dropped() == 2).await;
        assert!(
            a_in.try_recv().is_err(),
            "a non-member's frame was delivered"
        );
        // A member's frame still arrives.
        assert!(b.send(&ids[0], 7, 0, b"from a member"));
        assert_eq!(recv(&mut a_in).await.payload, b"from a member");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            c_in.try_recv().is_err(),
            "chain 7 traffic reached a non-member"
        );
        // Membership changes: node 2 joins.
        a.scope().unwrap().set_members(ids.clone());
        assert!(nets[2].send(&ids[0], 7, 0, b"now a member"));
        assert_eq!(recv(&mut a_in).await.payload, b"now a member");
        for n in &nets {
            n.shutdown();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_memory_transports_route_and_scope_like_sockets() {
        let (keys, peers) = mesh(SuiteId::Standard, 3);
        let hub = MemoryHub::new();
        let nets: Vec<Network> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                Network::start_in_memory(
                    NetworkConfig {
                        identity: k.clone(),
                        listen: peers[i].addr,
                        peers: peers.clone(),
                        max_frame: 1 << 20,
                    },
                    &hub,
                )
            })
            .collect();
        assert!(nets.iter().all(|n| n.connected().len() == 2));
        let ids: Vec<PeerId> = nets.iter().map(|n| n.local_id()).collect();
        let a = nets[0].join(9, [ids[0].clone(), ids[1].clone()]);
        let mut b_in = nets[1]
            .join(9, [ids[0].clone(), ids[1].clone()])
            .subscribe(9, 0);
        let mut a_in = a.subscribe(9, 0);
        assert_eq!(a.broadcast(9, 0, b"members"), 1);
        assert_eq!(recv(&mut b_in).await.payload, b"members");
        assert!(nets[2].send(&ids[0], 9, 0, b"outsider"));
        until("the drop", || a.scope().unwrap().dropped() == 1).await;
        assert!(a_in.try_recv().is_err());
        assert_eq!(nets[0].frames_received(9), 1);
        // Admission: node 2 leaves; its connection goes.
        assert_eq!(
            nets[0].admit_only(&[ids[1].0.clone()].into_iter().collect()),
            1
        );
        assert_eq!(nets[0].connected(), vec![ids[1].clone()]);
        for n in &nets {
            n.shutdown();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unknown_keys_are_refused() {
        let (keys, peers) = mesh(SuiteId::Standard, 2);
        let a = start(&keys[0], &peers, 0).await;
        // An outsider that knows A's address and key, but is not on A's list.
        let outsider = Keypair::generate(SuiteId::Standard);
        let mut list = peers.clone();
        list.push(PeerSpec {
            public_key: outsider.public_key().to_vec(),
            addr: free_addr(),
        });
        // Make the outsider the dialer of A regardless of key order.
        let stream = TcpStream::connect(peers[0].addr).await.unwrap();
        let fake = Inner {
            me: PeerId(outsider.public_key().to_vec()),
            allowed: parking_lot::RwLock::new(list.iter().map(|p| p.public_key.clone()).collect()),
            conns: Mutex::new(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
            blocked: Mutex::new(HashSet::new()),
            frames_in: Mutex::new(HashMap::new()),
            next_conn: Mutex::new(0),
            local_addr: list[2].addr,
            stop: watch::channel(false).1,
            config: NetworkConfig {
                identity: outsider,
                listen: list[2].addr,
                peers: list,
                max_frame: 1 << 20,
            },
        };
        // A refuses after the hello: the outsider's read of A's hello may
        // succeed, but A closes the connection and never lists the outsider.
        let _ = handshake(&fake, stream, true).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(a.connected().is_empty(), "A accepted an unknown key");
        // The legitimate peer still gets in.
        let b = start(&keys[1], &peers, 1).await;
        until("legit peer", || {
            a.connected().len() == 1 && b.connected().len() == 1
        })
        .await;
        assert_eq!(a.connected()[0], b.local_id());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redials_after_a_restart_and_blocks_on_demand() {
        let (keys, peers) = mesh(SuiteId::Standard, 2);
        let a = start(&keys[0], &peers, 0).await;
        let b = start(&keys[1], &peers, 1).await;
        until("connect", || a.connected().len() == 1).await;
        b.shutdown();
        drop(b);
        until("disconnect noticed", || a.connected().is_empty()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let b = start(&keys[1], &peers, 1).await;
        until("reconnect", || {
            a.connected().len() == 1 && b.connected().len() == 1
        })
        .await;
        let mut rx = b.subscribe(7, 1);
        a.block(&[b.local_id()]);
        assert!(!a.send(&b.local_id(), 7, 1, b"dropped"));
        a.unblock_all();
        assert!(a.send(&b.local_id(), 7, 1, b"delivered"));
        assert_eq!(recv(&mut rx).await.payload, b"delivered");
    }
}
