//! Pluggable cryptography for Tongtian chains.
//!
//! Every chain names one [`SuiteId`] in its chain spec; everything that hashes
//! or signs on that chain goes through the matching [`CryptoSuite`], so a
//! chain on the Chinese national algorithms (SM2/SM3) and one on
//! Ed25519/SHA-256 differ only in their spec.
//!
//! * [`suite`] maps a [`SuiteId`] to its implementation.
//! * [`Keypair`] holds a secret key tagged with its suite.
//! * [`keyfile`] reads and writes key files, optionally encrypted with a
//!   password (scrypt + ChaCha20-Poly1305).

mod combine;
pub mod eth;
pub mod keyfile;
mod sm;
mod standard;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use zeroize::Zeroizing;

pub use combine::Combiner;
pub use sm::SmSuite;
pub use standard::StandardSuite;

/// A 32-byte digest produced by a suite's hash function.
pub type Hash32 = [u8; 32];

/// Errors raised by the crypto crate.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A public key did not decode for the suite.
    #[error("invalid public key for suite {suite}: {reason}")]
    InvalidPublicKey {
        /// The suite that rejected the key.
        suite: SuiteId,
        /// Why.
        reason: String,
    },
    /// A secret key did not decode for the suite.
    #[error("invalid secret key for suite {suite}")]
    InvalidSecretKey {
        /// The suite that rejected the key.
        suite: SuiteId,
    },
    /// A signature was malformed (wrong length or encoding).
    #[error("malformed signature for suite {suite}: expected {expected} bytes, got {got}")]
    MalformedSignature {
        /// The suite.
        suite: SuiteId,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// A signature did not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// A batch had at least one bad signature; `index` is the first one.
    #[error("signature {index} of the batch does not verify")]
    BadSignatureInBatch {
        /// Index of the first failing item.
        index: usize,
    },
    /// Unknown suite name.
    #[error("unknown crypto suite {0:?} (expected \"standard\" or \"sm\")")]
    UnknownSuite(String),
    /// Key file problems.
    #[error("key file: {0}")]
    KeyFile(String),
    /// Wrong password or tampered encrypted key file.
    #[error("cannot decrypt key file: wrong password or corrupted file")]
    Decrypt,
    /// I/O while reading or writing key files.
    #[error("key file i/o at {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Which crypto suite a chain (or a key) uses.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    borsh::BorshSerialize,
    borsh::BorshDeserialize,
)]
#[serde(rename_all = "lowercase")]
#[borsh(use_discriminant = true)]
#[repr(u8)]
pub enum SuiteId {
    /// Ed25519 signatures (with batch verification) and SHA-256.
    Standard = 0,
    /// SM2 signatures and SM3 hashes (GM/T 0003 and 0004); SM4 for encryption.
    Sm = 1,
}

impl SuiteId {
    /// The suite's lowercase name, as written in specs and on the CLI.
    pub fn name(self) -> &'static str {
        match self {
            SuiteId::Standard => "standard",
            SuiteId::Sm => "sm",
        }
    }
}

impl fmt::Display for SuiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SuiteId {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "standard" => Ok(SuiteId::Standard),
            "sm" => Ok(SuiteId::Sm),
            other => Err(CryptoError::UnknownSuite(other.to_string())),
        }
    }
}

/// One item of a batch verification: public key, message, signature.
#[derive(Clone, Copy, Debug)]
pub struct VerifyItem<'a> {
    /// Encoded public key.
    pub public_key: &'a [u8],
    /// The signed message.
    pub message: &'a [u8],
    /// Encoded signature.
    pub signature: &'a [u8],
}

/// A chain's hash and signature algorithms.
///
/// Contract: `hash` is collision resistant with a 32-byte output; `verify`
/// accepts exactly the signatures `sign` produces for the same key and
/// message; `verify_batch` succeeds if and only if every item would pass
/// `verify`, and on failure names the first failing index.
pub trait CryptoSuite: Send + Sync + 'static {
    /// Which suite this is.
    fn id(&self) -> SuiteId;
    /// Hash arbitrary bytes.
    fn hash(&self, data: &[u8]) -> Hash32;
    /// Hash the concatenation of several parts without copying them together.
    fn hash_parts(&self, parts: &[&[u8]]) -> Hash32;
    /// Generate a fresh secret key (encoded).
    fn generate_secret(&self) -> Zeroizing<Vec<u8>>;
    /// Derive the encoded public key of an encoded secret key.
    fn public_key(&self, secret: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// Sign `message` with an encoded secret key.
    fn sign(&self, secret: &[u8], message: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// Verify one signature.
    fn verify(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError>;
    /// Whether every item verifies, answered at once and faster than one
    /// by one where the algorithm allows (Ed25519's batch equation). Says
    /// nothing about which item failed.
    fn batch_holds(&self, items: &[VerifyItem<'_>]) -> bool {
        items
            .iter()
            .all(|i| self.verify(i.public_key, i.message, i.signature).is_ok())
    }
    /// Verify many signatures; on failure, name the first failing index.
    fn verify_batch(&self, items: &[VerifyItem<'_>]) -> Result<(), CryptoError> {
        if self.batch_holds(items) {
            return Ok(());
        }
        for (index, item) in items.iter().enumerate() {
            if self
                .verify(item.public_key, item.message, item.signature)
                .is_err()
            {
                return Err(CryptoError::BadSignatureInBatch { index });
            }
        }
        // The batch failed although each item verifies on its own: refuse
        // rather than accept what the batch rejected.
        Err(CryptoError::BadSignatureInBatch { index: 0 })
    }
    /// Length of an encoded signature.
    fn signature_len(&self) -> usize;
}

static STANDARD: StandardSuite = StandardSuite;
static SM: SmSuite = SmSuite;

/// The implementation of a suite.
pub fn suite(id: SuiteId) -> &'static dyn CryptoSuite {
    match id {
        SuiteId::Standard => &STANDARD,
        SuiteId::Sm => &SM,
    }
}

/// Smallest chunk [`verify_many`] batches: below this the batch equation
/// saves little over one-by-one checks.
const MIN_VERIFY_CHUNK: usize = 64;
/// Largest chunk: past this the multiscalar multiplication gains little
/// and one bad signature costs more to find.
const MAX_VERIFY_CHUNK: usize = 1024;

/// A way to check many signatures of one suite, one flag per item, such as
/// [`verify_many`] or [`Combiner::verify`].
pub type BatchCheck<'f> = dyn Fn(&dyn CryptoSuite, &[VerifyItem<'_>]) -> Vec<bool> + 'f;

/// Verify many signatures using every core. The items are cut into
/// chunks of about one size, as many as the cores or a multiple of them
/// (each between 64 and 1,024 items, since a larger batch is cheaper per
/// signature), and each chunk is batch-verified. A chunk that
/// fails is halved until the bad signatures are isolated, so one forged
/// signature costs a few batch checks, not one single check per item.
/// Returns one result per item, so a caller can reject exactly the bad ones.
pub fn verify_many(suite: &dyn CryptoSuite, items: &[VerifyItem<'_>]) -> Vec<bool> {
    use rayon::prelude::*;
    let threads = rayon::current_num_threads().max(1);
    // As many chunks per core as the largest chunk size needs, all of
    // about one size, so the cores finish together.
    let rounds = items.len().div_ceil(threads * MAX_VERIFY_CHUNK).max(1);
    let chunk = items
        .len()
        .div_ceil(threads * rounds)
        .clamp(MIN_VERIFY_CHUNK, MAX_VERIFY_CHUNK);
    items
        .par_chunks(chunk)
        .flat_map_iter(|c| bisect_verify(suite, c))
        .collect()
}

fn bisect_verify(suite: &dyn CryptoSuite, items: &[VerifyItem<'_>]) -> Vec<bool> {
    match items {
        [] => Vec::new(),
        [one] => vec![suite
            .verify(one.public_key, one.message, one.signature)
            .is_ok()],
        _ if suite.batch_holds(items) => vec![true; items.len()],
        _ => {
            let (left, right) = items.split_at(items.len() / 2);
            let mut flags = bisect_verify(suite, left);
            flags.extend(bisect_verify(suite, right));
            flags
        }
    }
}

/// A secret key with its suite. The secret is zeroized on drop.
#[derive(Clone)]
pub struct Keypair {
    suite: SuiteId,
    secret: Zeroizing<Vec<u8>>,
    public: Vec<u8>,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("suite", &self.suite)
            .field("public", &hex::encode(&self.public))
            .finish_non_exhaustive()
    }
}

impl Keypair {
    /// A fresh random key pair of `suite`.
    pub fn generate(suite_id: SuiteId) -> Self {
        let s = suite(suite_id);
        let secret = s.generate_secret();
        // Invariant: a freshly generated secret always has a public key.
        let public = s.public_key(&secret).expect("generated secret is valid");
        Keypair {
            suite: suite_id,
            secret,
            public,
        }
    }

    /// A key pair from an encoded secret key.
    pub fn from_secret(suite_id: SuiteId, secret: &[u8]) -> Result<Self, CryptoError> {
        let public = suite(suite_id).public_key(secret)?;
        Ok(Keypair {
            suite: suite_id,
            secret: Zeroizing::new(secret.to_vec()),
            public,
        })
    }

    /// A deterministic key pair derived from a seed (dev accounts, tests).
    pub fn from_seed(suite_id: SuiteId, seed: &[u8]) -> Self {
        let s = suite(suite_id);
        let mut counter = 0u32;
        loop {
            let candidate = s.hash_parts(&[b"tongtian-seed", seed, &counter.to_be_bytes()]);
            if let Ok(kp) = Keypair::from_secret(suite_id, &candidate) {
                return kp;
            }
            counter += 1;
        }
    }

    /// The suite.
    pub fn suite(&self) -> SuiteId {
        self.suite
    }

    /// The encoded public key.
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// The encoded secret key.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// Sign a message.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        // Invariant: the secret was validated when the key pair was built.
        suite(self.suite)
            .sign(&self.secret, message)
            .expect("validated secret signs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both() -> [SuiteId; 2] {
        [SuiteId::Standard, SuiteId::Sm]
    }

    #[test]
    fn sign_verify_roundtrip_and_tamper() {
        for id in both() {
            let kp = Keypair::generate(id);
            let sig = kp.sign(b"hello");
            let s = suite(id);
            s.verify(kp.public_key(), b"hello", &sig).unwrap();
            assert!(s.verify(kp.public_key(), b"hellp", &sig).is_err());
            let mut bad = sig.clone();
            bad[5] ^= 1;
            assert!(s.verify(kp.public_key(), b"hello", &bad).is_err());
            let other = Keypair::generate(id);
            assert!(s.verify(other.public_key(), b"hello", &sig).is_err());
            assert!(matches!(
                s.verify(kp.public_key(), b"hello", &sig[..10]),
                Err(CryptoError::MalformedSignature { .. })
            ));
        }
    }

    #[test]
    fn batch_finds_the_bad_item() {
        for id in both() {
            let keys: Vec<_> = (0..10).map(|_| Keypair::generate(id)).collect();
            let msgs: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 40]).collect();
            let mut sigs: Vec<Vec<u8>> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
            let items = |sigs: &Vec<Vec<u8>>| -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
                keys.iter()
                    .zip(&msgs)
                    .zip(sigs)
                    .map(|((k, m), s)| (k.public_key().to_vec(), m.clone(), s.clone()))
                    .collect()
            };
            let owned = items(&sigs);
            let refs: Vec<VerifyItem> = owned
                .iter()
                .map(|(p, m, s)| VerifyItem {
                    public_key: p,
                    message: m,
                    signature: s,
                })
                .collect();
            suite(id).verify_batch(&refs).unwrap();
            assert!(verify_many(suite(id), &refs).iter().all(|b| *b));
            sigs[7] = keys[6].sign(&msgs[7]);
            let owned = items(&sigs);
            let refs: Vec<VerifyItem> = owned
                .iter()
                .map(|(p, m, s)| VerifyItem {
                    public_key: p,
                    message: m,
                    signature: s,
                })
                .collect();
            assert!(suite(id).verify_batch(&refs).is_err());
            let flags = verify_many(suite(id), &refs);
            assert_eq!(flags.iter().filter(|b| !**b).count(), 1);
            assert!(!flags[7]);
        }
    }

    #[test]
    fn many_isolates_scattered_bad_signatures_in_large_chunks() {
        // Large enough for several chunks of the biggest size, with bad
        // items in different chunks and two side by side; keys repeat so
        // the decoded-key cache is exercised.
        let id = SuiteId::Standard;
        let keys: Vec<_> = (0..8).map(|_| Keypair::generate(id)).collect();
        let n = 2_500;
        let msgs: Vec<Vec<u8>> = (0..n as u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let mut sigs: Vec<Vec<u8>> = (0..n).map(|i| keys[i % 8].sign(&msgs[i])).collect();
        let bad = [0usize, 3, 4, 1_100, 2_499];
        for &b in &bad {
            sigs[b][10] ^= 0x40;
        }
        let pks: Vec<Vec<u8>> = (0..n).map(|i| keys[i % 8].public_key().to_vec()).collect();
        let mut items: Vec<VerifyItem> = (0..n)
            .map(|i| VerifyItem {
                public_key: &pks[i],
                message: &msgs[i],
                signature: &sigs[i],
            })
            .collect();
        // A small-order key with a signature the non-strict equation could
        // accept must fail exactly as `verify` fails it.
        let weak = [0u8; 32];
        let mut weak_key = weak;
        weak_key[0] = 1; // the identity point's encoding
        items[2_000] = VerifyItem {
            public_key: &weak_key,
            message: &msgs[2_000],
            signature: &[0u8; 64],
        };
        let flags = verify_many(suite(id), &items);
        let failed: Vec<usize> = (0..n).filter(|&i| !flags[i]).collect();
        let mut expect = bad.to_vec();
        expect.push(2_000);
        expect.sort_unstable();
        assert_eq!(failed, expect);
        for (i, item) in items.iter().enumerate() {
            let single = suite(id)
                .verify(item.public_key, item.message, item.signature)
                .is_ok();
            assert_eq!(single, flags[i], "item {i}");
        }
    }

    #[test]
    fn hashes_differ_between_suites_and_are_known_vectors() {
        // SHA-256("abc") and SM3("abc") from their standards.
        assert_eq!(
            hex::encode(suite(SuiteId::Standard).hash(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex::encode(suite(SuiteId::Sm).hash(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        for id in both() {
            let s = suite(id);
            assert_eq!(s.hash(b"abcdef"), s.hash_parts(&[b"abc", b"def"]));
        }
    }

    #[test]
    fn ed25519_matches_rfc_8032() {
        // RFC 8032 section 7.1, tests 1 and 2.
        let s = suite(SuiteId::Standard);
        let cases: [(&str, &str, &str, &str); 2] = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
                 5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
                 085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
        ];
        for (secret, public, msg, sig) in cases {
            let secret = hex::decode(secret).unwrap();
            let msg = hex::decode(msg).unwrap();
            assert_eq!(hex::encode(s.public_key(&secret).unwrap()), public);
            let signed = s.sign(&secret, &msg).unwrap();
            assert_eq!(hex::encode(&signed), sig);
            let pk = hex::decode(public).unwrap();
            assert!(s.verify(&pk, &msg, &signed).is_ok());
            let item = VerifyItem {
                public_key: &pk,
                message: &msg,
                signature: &signed,
            };
            assert!(s.batch_holds(&[item, item]));
        }
    }

    #[test]
    fn seeded_keys_are_deterministic() {
        for id in both() {
            let a = Keypair::from_seed(id, b"x");
            let b = Keypair::from_seed(id, b"x");
            assert_eq!(a.public_key(), b.public_key());
            assert_ne!(Keypair::from_seed(id, b"y").public_key(), a.public_key());
        }
    }
}
