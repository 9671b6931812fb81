//! Sessions: reliable, ordered, authenticated byte-message streams between
//! two party agents.
//!
//! A session is TCP with Noise XX (`Noise_XX_25519_ChaChaPoly_BLAKE2s`,
//! as the node transport), after which each side signs the handshake hash
//! and the job id with its party key (the key its asset registration
//! names): a peer with another key, or serving another job, is refused,
//! so a message replayed from an earlier job cannot enter this one.
//! Messages are bounded ([`SessionConfig::max_message`]), every wait has
//! [`SessionConfig::timeout`], and every message sent and received is
//! folded into a running hash per direction; both sides derive the same
//! [`Session::transcript`] from the two.

use crate::PrivacyError;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tongtian_crypto::{suite, Keypair, SuiteId};

const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
const HELLO_DOMAIN: &[u8] = b"tongtian/privacy-session/v1";
/// Plaintext bytes per Noise frame (a frame is at most 65,535 bytes with
/// its 16-byte tag).
const CHUNK: usize = 65_000;

/// Bounds of a session.
#[derive(Clone, Copy, Debug)]
pub struct SessionConfig {
    /// The largest message either side may send or will take.
    pub max_message: usize,
    /// How long any wait for the other party may last.
    pub timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_message: 64 << 20,
            timeout: Duration::from_secs(60),
        }
    }
}

#[derive(borsh::BorshSerialize, borsh::BorshDeserialize)]
struct Hello {
    suite: SuiteId,
    public_key: Vec<u8>,
    job: [u8; 32],
    signature: Vec<u8>,
}

fn noise(e: impl std::fmt::Display) -> PrivacyError {
    PrivacyError::Noise(e.to_string())
}

/// The sending half of a session.
pub struct SessionTx {
    wr: OwnedWriteHalf,
    noise: Arc<snow::StatelessTransportState>,
    nonce: u64,
    hash: Sha256,
    cfg: SessionConfig,
    sent: u64,
}

/// The receiving half of a session.
pub struct SessionRx {
    rd: OwnedReadHalf,
    noise: Arc<snow::StatelessTransportState>,
    nonce: u64,
    hash: Sha256,
    cfg: SessionConfig,
}

/// A session with one other party.
pub struct Session {
    tx: SessionTx,
    rx: SessionRx,
    initiator: bool,
    peer: Vec<u8>,
}

impl SessionTx {
    /// Send one message.
    pub async fn send(&mut self, data: &[u8]) -> Result<(), PrivacyError> {
        if data.len() > self.cfg.max_message {
            return Err(PrivacyError::TooLarge {
                got: data.len(),
                max: self.cfg.max_message,
            });
        }
        self.hash.update((data.len() as u64).to_le_bytes());
        self.hash.update(data);
        let mut out = Vec::with_capacity(data.len() + 4 + (data.len() / CHUNK + 1) * 18);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        let mut buf = vec![0u8; CHUNK + 16];
        for chunk in data.chunks(CHUNK).chain(data.is_empty().then_some(&[][..])) {
            let n = self
                .noise
                .write_message(self.nonce, chunk, &mut buf)
                .map_err(noise)?;
            self.nonce += 1;
            out.extend_from_slice(&(n as u16).to_le_bytes());
            out.extend_from_slice(&buf[..n]);
        }
        tokio::time::timeout(self.cfg.timeout, self.wr.write_all(&out))
            .await
            .map_err(|_| PrivacyError::Timeout(self.cfg.timeout))??;
        self.sent += out.len() as u64;
        Ok(())
    }
}

impl SessionRx {
    /// Receive one message (waiting at most the session's timeout).
    pub async fn recv(&mut self) -> Result<Vec<u8>, PrivacyError> {
        let t = self.cfg.timeout;
        tokio::time::timeout(t, self.recv_inner())
            .await
            .map_err(|_| PrivacyError::Timeout(t))?
    }

    async fn recv_inner(&mut self) -> Result<Vec<u8>, PrivacyError> {
        let len = self.rd.read_u32_le().await? as usize;
        if len > self.cfg.max_message {
            return Err(PrivacyError::TooLarge {
                got: len,
                max: self.cfg.max_message,
            });
        }
        let mut data = Vec::with_capacity(len);
        let mut frame = vec![0u8; CHUNK + 16];
        let mut plain = vec![0u8; CHUNK + 16];
        loop {
            let n = self.rd.read_u16_le().await? as usize;
            if n > CHUNK + 16 {
                return Err(PrivacyError::BadMessage(format!("a frame of {n} bytes")));
            }
            self.rd.read_exact(&mut frame[..n]).await?;
            let m = self
                .noise
                .read_message(self.nonce, &frame[..n], &mut plain)
                .map_err(noise)?;
            self.nonce += 1;
            if data.len() + m > len {
                return Err(PrivacyError::BadMessage(
                    "a message longer than it said".into(),
                ));
            }
            data.extend_from_slice(&plain[..m]);
            if data.len() == len {
                break;
            }
            if m == 0 {
                return Err(PrivacyError::BadMessage("an empty frame".into()));
            }
        }
        self.hash.update((data.len() as u64).to_le_bytes());
        self.hash.update(&data);
        Ok(data)
    }
}

impl Session {
    /// Connect to the party at `addr`, which must prove key `peer` and
    /// serve job `job`.
    pub async fn connect(
        addr: &str,
        me: &Keypair,
        peer: &[u8],
        job: [u8; 32],
        cfg: SessionConfig,
    ) -> Result<Session, PrivacyError> {
        let stream = tokio::time::timeout(cfg.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| PrivacyError::Timeout(cfg.timeout))??;
        Self::handshake(stream, true, me, &[peer.to_vec()], job, cfg).await
    }

    /// Take a connection from one of the parties in `allowed`, for job `job`.
    pub async fn accept(
        stream: TcpStream,
        me: &Keypair,
        allowed: &[Vec<u8>],
        job: [u8; 32],
        cfg: SessionConfig,
    ) -> Result<Session, PrivacyError> {
        let mut incoming = Self::incoming(stream, me, cfg).await?;
        if incoming.job != job {
            // Say which job we serve, so the other side knows why.
            let signed = [HELLO_DOMAIN, &incoming.hash, &job].concat();
            let _ = send_hello(&mut incoming.tx, me, job, &signed).await;
            return Err(PrivacyError::Refused(format!(
                "the peer serves job {}, not {}",
                hex_of(&incoming.job),
                hex_of(&job)
            )));
        }
        incoming.admit(allowed).await
    }

    /// Take a connection for a job not known yet: the Noise handshake and
    /// the other side's hello (its key, proven, and the job it serves);
    /// the caller looks the job up and [`Incoming::admit`]s it or drops it.
    pub async fn incoming(
        stream: TcpStream,
        me: &Keypair,
        cfg: SessionConfig,
    ) -> Result<Incoming, PrivacyError> {
        let t = cfg.timeout;
        let (tx, mut rx, hash) = tokio::time::timeout(t, Self::noise(stream, false, cfg))
            .await
            .map_err(|_| PrivacyError::Timeout(t))??;
        let theirs: Hello = borsh::from_slice(
            &tokio::time::timeout(t, rx.recv())
                .await
                .map_err(|_| PrivacyError::Timeout(t))??,
        )
        .map_err(|e| PrivacyError::BadMessage(format!("hello: {e}")))?;
        let signed = [HELLO_DOMAIN, &hash, &theirs.job].concat();
        suite(theirs.suite)
            .verify(&theirs.public_key, &signed, &theirs.signature)
            .map_err(|e| PrivacyError::Refused(format!("identity signature: {e}")))?;
        Ok(Incoming {
            tx,
            rx,
            hash,
            job: theirs.job,
            peer: theirs.public_key,
            me: me.clone(),
            cfg,
        })
    }

    async fn handshake(
        stream: TcpStream,
        initiator: bool,
        me: &Keypair,
        allowed: &[Vec<u8>],
        job: [u8; 32],
        cfg: SessionConfig,
    ) -> Result<Session, PrivacyError> {
        debug_assert!(initiator, "responders take Session::incoming");
        let t = cfg.timeout;
        tokio::time::timeout(t, async {
            let (mut tx, mut rx, hash) = Self::noise(stream, true, cfg).await?;
            let signed = [HELLO_DOMAIN, &hash, &job].concat();
            send_hello(&mut tx, me, job, &signed).await?;
            let theirs: Hello = borsh::from_slice(&rx.recv().await?)
                .map_err(|e| PrivacyError::BadMessage(format!("hello: {e}")))?;
            if !allowed.contains(&theirs.public_key) {
                return Err(PrivacyError::Refused(format!(
                    "key {} is not a party of this job",
                    hex_of(&theirs.public_key)
                )));
            }
            if theirs.job != job {
                return Err(PrivacyError::Refused(format!(
                    "the peer serves job {}, not {}",
                    hex_of(&theirs.job),
                    hex_of(&job)
                )));
            }
            suite(theirs.suite)
                .verify(&theirs.public_key, &signed, &theirs.signature)
                .map_err(|e| PrivacyError::Refused(format!("identity signature: {e}")))?;
            Ok(Session::started(tx, rx, true, theirs.public_key, cfg))
        })
        .await
        .map_err(|_| PrivacyError::Timeout(t))?
    }

    /// A session whose transcript starts now (after the hellos).
    fn started(
        mut tx: SessionTx,
        mut rx: SessionRx,
        initiator: bool,
        peer: Vec<u8>,
        cfg: SessionConfig,
    ) -> Session {
        tx.hash = Sha256::new();
        rx.hash = Sha256::new();
        tx.sent = 0;
        tx.cfg = cfg;
        rx.cfg = cfg;
        Session {
            tx,
            rx,
            initiator,
            peer,
        }
    }

    /// The Noise XX handshake: the two halves (bounded to hello size for
    /// now) and the handshake hash the hellos sign.
    async fn noise(
        stream: TcpStream,
        initiator: bool,
        cfg: SessionConfig,
    ) -> Result<(SessionTx, SessionRx, Vec<u8>), PrivacyError> {
        stream.set_nodelay(true)?;
        let (mut rd, mut wr) = stream.into_split();
        let params: snow::params::NoiseParams = NOISE_PARAMS.parse().map_err(noise)?;
        let builder = snow::Builder::new(params);
        let keys = builder.generate_keypair().map_err(noise)?;
        let builder = builder.local_private_key(&keys.private);
        let mut hs = if initiator {
            builder.build_initiator()
        } else {
            builder.build_responder()
        }
        .map_err(noise)?;
        let mut buf = vec![0u8; 65_535];
        async fn put(wr: &mut OwnedWriteHalf, b: &[u8]) -> Result<(), PrivacyError> {
            wr.write_u16_le(b.len() as u16).await?;
            wr.write_all(b).await?;
            Ok(())
        }
        async fn get(rd: &mut OwnedReadHalf) -> Result<Vec<u8>, PrivacyError> {
            let n = rd.read_u16_le().await? as usize;
            let mut b = vec![0u8; n];
            rd.read_exact(&mut b).await?;
            Ok(b)
        }
        if initiator {
            let n = hs.write_message(&[], &mut buf).map_err(noise)?;
            put(&mut wr, &buf[..n]).await?;
            let m = get(&mut rd).await?;
            hs.read_message(&m, &mut buf).map_err(noise)?;
            let n = hs.write_message(&[], &mut buf).map_err(noise)?;
            put(&mut wr, &buf[..n]).await?;
        } else {
            let m = get(&mut rd).await?;
            hs.read_message(&m, &mut buf).map_err(noise)?;
            let n = hs.write_message(&[], &mut buf).map_err(noise)?;
            put(&mut wr, &buf[..n]).await?;
            let m = get(&mut rd).await?;
            hs.read_message(&m, &mut buf).map_err(noise)?;
        }
        let hash = hs.get_handshake_hash().to_vec();
        let transport = Arc::new(hs.into_stateless_transport_mode().map_err(noise)?);
        let hello_cfg = SessionConfig {
            max_message: 64 * 1024,
            ..cfg
        };
        let tx = SessionTx {
            wr,
            noise: transport.clone(),
            nonce: 0,
            hash: Sha256::new(),
            cfg: hello_cfg,
            sent: 0,
        };
        let rx = SessionRx {
            rd,
            noise: transport,
            nonce: 0,
            hash: Sha256::new(),
            cfg: hello_cfg,
        };
        Ok((tx, rx, hash))
    }

    /// Bytes this side has put on the wire since the handshake (framing
    /// and encryption included).
    pub fn bytes_sent(&self) -> u64 {
        self.tx.sent
    }

    /// The other party's key.
    pub fn peer(&self) -> &[u8] {
        &self.peer
    }

    /// Send one message.
    pub async fn send(&mut self, data: &[u8]) -> Result<(), PrivacyError> {
        self.tx.send(data).await
    }

    /// Receive one message.
    pub async fn recv(&mut self) -> Result<Vec<u8>, PrivacyError> {
        self.rx.recv().await
    }

    /// The two halves, borrowed, to send and receive at once.
    pub fn halves(&mut self) -> (&mut SessionTx, &mut SessionRx) {
        (&mut self.tx, &mut self.rx)
    }

    /// The two halves, to send and receive at once; [`Session::join`]
    /// puts them back.
    pub fn split(self) -> (SessionTx, SessionRx, bool, Vec<u8>) {
        (self.tx, self.rx, self.initiator, self.peer)
    }

    /// A session from its halves.
    pub fn join(tx: SessionTx, rx: SessionRx, initiator: bool, peer: Vec<u8>) -> Session {
        Session {
            tx,
            rx,
            initiator,
            peer,
        }
    }

    /// The hash of everything both sides sent so far, the same on both:
    /// SHA-256 of a domain, then the initiator's sent-messages hash, then
    /// the responder's.
    pub fn transcript(&self) -> [u8; 32] {
        let mine = self.tx.hash.clone().finalize();
        let theirs = self.rx.hash.clone().finalize();
        let (first, second) = if self.initiator {
            (mine, theirs)
        } else {
            (theirs, mine)
        };
        let mut h = Sha256::new();
        h.update(b"tongtian/transcript/v1");
        h.update(first);
        h.update(second);
        h.finalize().into()
    }
}

async fn send_hello(
    tx: &mut SessionTx,
    me: &Keypair,
    job: [u8; 32],
    signed: &[u8],
) -> Result<(), PrivacyError> {
    let hello = Hello {
        suite: me.suite(),
        public_key: me.public_key().to_vec(),
        job,
        signature: me.sign(signed),
    };
    tx.send(&borsh::to_vec(&hello).expect("hellos encode"))
        .await
}

/// A connection whose other side proved its key and named its job, not
/// yet answered.
pub struct Incoming {
    tx: SessionTx,
    rx: SessionRx,
    hash: Vec<u8>,
    job: [u8; 32],
    peer: Vec<u8>,
    me: Keypair,
    cfg: SessionConfig,
}

impl Incoming {
    /// The job the other side serves.
    pub fn job(&self) -> [u8; 32] {
        self.job
    }

    /// The other side's key (proven).
    pub fn peer(&self) -> &[u8] {
        &self.peer
    }

    /// Answer with our hello if the other side's key is in `allowed`.
    pub async fn admit(mut self, allowed: &[Vec<u8>]) -> Result<Session, PrivacyError> {
        if !allowed.contains(&self.peer) {
            return Err(PrivacyError::Refused(format!(
                "key {} is not a party of this job",
                hex_of(&self.peer)
            )));
        }
        let signed = [HELLO_DOMAIN, &self.hash, &self.job].concat();
        send_hello(&mut self.tx, &self.me, self.job, &signed).await?;
        Ok(Session::started(
            self.tx, self.rx, false, self.peer, self.cfg,
        ))
    }
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
