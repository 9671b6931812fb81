//! The `standard` suite: Ed25519 (RFC 8032, strict verification) and SHA-256.

use crate::{CryptoError, CryptoSuite, Hash32, SuiteId, VerifyItem};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use zeroize::Zeroizing;

/// Ed25519 signatures with batch verification, SHA-256 hashes.
#[derive(Debug, Default, Clone, Copy)]
pub struct StandardSuite;

/// Decoded keys by encoding, each with whether it is weak.
type KeyMap = HashMap<[u8; 32], (VerifyingKey, bool)>;

/// Most decoded keys [`KEY_CACHE`] keeps before it starts over.
const KEY_CACHE_MAX: usize = 1 << 16;

/// Decoded (decompressed) public keys by their encoding, with whether each
/// is weak (of small order). Decompressing a key costs about a third of a
/// batched verification here, and a chain's senders repeat, so each key is
/// decompressed once. Only keys that decode are kept; the cache is cleared
/// when full, which bounds it against floods of fresh keys.
static KEY_CACHE: LazyLock<Mutex<KeyMap>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The decoded key and whether it is weak, from the cache when possible.
fn cached_key(pk: &[u8]) -> Result<(VerifyingKey, bool), CryptoError> {
    let bytes: [u8; 32] = pk.try_into().map_err(|_| CryptoError::InvalidPublicKey {
        suite: SuiteId::Standard,
        reason: format!("expected 32 bytes, got {}", pk.len()),
    })?;
    if let Some(hit) = lock_cache().get(&bytes) {
        return Ok(*hit);
    }
    let key = VerifyingKey::from_bytes(&bytes).map_err(|e| CryptoError::InvalidPublicKey {
        suite: SuiteId::Standard,
        reason: e.to_string(),
    })?;
    let entry = (key, key.is_weak());
    let mut cache = lock_cache();
    if cache.len() >= KEY_CACHE_MAX {
        cache.clear();
    }
    cache.insert(bytes, entry);
    Ok(entry)
}

fn lock_cache() -> std::sync::MutexGuard<'static, KeyMap> {
    // A panic while holding the lock cannot leave the map inconsistent
    // (inserts and clears are single calls), so a poisoned lock is usable.
    KEY_CACHE.lock().unwrap_or_else(|p| p.into_inner())
}

fn signature(sig: &[u8]) -> Result<Signature, CryptoError> {
    Signature::from_slice(sig).map_err(|_| CryptoError::MalformedSignature {
        suite: SuiteId::Standard,
        expected: 64,
        got: sig.len(),
    })
}

fn signing_key(secret: &[u8]) -> Result<SigningKey, CryptoError> {
    let bytes: [u8; 32] = secret
        .try_into()
        .map_err(|_| CryptoError::InvalidSecretKey {
            suite: SuiteId::Standard,
        })?;
    Ok(SigningKey::from_bytes(&bytes))
}

impl CryptoSuite for StandardSuite {
    fn id(&self) -> SuiteId {
        SuiteId::Standard
    }

    fn hash(&self, data: &[u8]) -> Hash32 {
        Sha256::digest(data).into()
    }

    fn hash_parts(&self, parts: &[&[u8]]) -> Hash32 {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    fn generate_secret(&self) -> Zeroizing<Vec<u8>> {
        // An Ed25519 secret key is 32 uniformly random bytes (RFC 8032 5.1.5).
        let mut secret = Zeroizing::new(vec![0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        secret
    }

    fn public_key(&self, secret: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(signing_key(secret)?.verifying_key().to_bytes().to_vec())
    }

    fn sign(&self, secret: &[u8], message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(signing_key(secret)?.sign(message).to_bytes().to_vec())
    }

    fn verify(&self, public_key: &[u8], message: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let sig = signature(sig)?;
        cached_key(public_key)?
            .0
            .verify_strict(message, &sig)
            .map_err(|_| CryptoError::BadSignature)
    }

    fn batch_holds(&self, items: &[VerifyItem<'_>]) -> bool {
        let mut keys = Vec::with_capacity(items.len());
        let mut sigs = Vec::with_capacity(items.len());
        let mut msgs = Vec::with_capacity(items.len());
        for item in items {
            // Batch verification is not strict about small-order keys, so
            // refuse those up front to accept exactly what `verify` accepts.
            let (Ok((key, false)), Ok(sig)) =
                (cached_key(item.public_key), signature(item.signature))
            else {
                return false;
            };
            keys.push(key);
            sigs.push(sig);
            msgs.push(item.message);
        }
        ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok()
    }

    fn signature_len(&self) -> usize {
        64
    }
}
