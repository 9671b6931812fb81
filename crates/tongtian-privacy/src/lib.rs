//! Privacy-preserving computation between party agents: data stays with
//! its owner; only protocol messages cross, over authenticated sessions.
//!
//! - [`session`]: a reliable, ordered, authenticated stream between two
//!   parties (Noise XX over TCP, each side proving its key and the job it
//!   serves), with bounded messages, a timeout on every wait, and a
//!   transcript hash of everything sent and received;
//! - [`protocol`]: the [`protocol::PrivacyProtocol`] seam (a stable id,
//!   roles, a `run` over a session, and a plaintext `reference`);
//! - [`psi_ecdh`]: Diffie-Hellman private set intersection on ristretto255;
//! - [`psi_ot`]: PSI from an OPRF on OT extension (KKRT), for large sets;
//! - [`mpc`]: the three-party replicated secret-sharing engine (fixed point
//!   over Z_2^64 or Z_2^128);
//! - [`stats`]: joint statistics of columns held by three parties;
//! - [`lr`]: logistic regression on features held by three parties;
//! - [`secagg`]: secure aggregation of federated updates, with dropouts;
//! - [`fl`]: federated logistic regression over secure aggregation.

pub mod align;
pub mod fl;
pub mod lr;
pub mod mpc;
pub mod protocol;
pub mod psi_ecdh;
pub mod psi_ot;
pub mod secagg;
pub mod session;
pub mod stats;

pub use protocol::{Peers, PrivacyProtocol, PsiInput, PsiOutput};
pub use session::{Session, SessionConfig};

/// A PSI protocol as the agents run it.
pub type Psi =
    dyn PrivacyProtocol<Params = protocol::PsiParams, Input = PsiInput, Output = PsiOutput>;

/// The PSI protocol with id `id` (`psi-ecdh`, `psi-ot`).
pub fn psi_protocol(id: &str) -> Option<&'static Psi> {
    match id {
        "psi-ecdh" => Some(&psi_ecdh::PsiEcdh),
        "psi-ot" => Some(&psi_ot::PsiOt),
        _ => None,
    }
}

/// Why a session or a protocol run failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// The connection failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The Noise handshake or a frame failed.
    #[error("noise: {0}")]
    Noise(String),
    /// The other side is not who the job names, or serves another job.
    #[error("refused: {0}")]
    Refused(String),
    /// A message over the session's bound.
    #[error("message of {got} bytes over the bound of {max}")]
    TooLarge {
        /// Its size.
        got: usize,
        /// The bound.
        max: usize,
    },
    /// The other side went silent.
    #[error("timed out after {0:?} waiting for the other party")]
    Timeout(std::time::Duration),
    /// The other side sent something the protocol cannot take.
    #[error("bad message: {0}")]
    BadMessage(String),
}

impl PrivacyError {
    /// A stable code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            PrivacyError::Io(_) => "io",
            PrivacyError::Noise(_) => "noise",
            PrivacyError::Refused(_) => "peer_refused",
            PrivacyError::TooLarge { .. } => "message_too_large",
            PrivacyError::Timeout(_) => "peer_timeout",
            PrivacyError::BadMessage(_) => "bad_message",
        }
    }
}
