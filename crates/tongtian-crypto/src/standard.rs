//! The `standard` suite: Ed25519 (RFC 8032, strict verification) and SHA-256.

use crate::{CryptoError, CryptoSuite, Hash32, SuiteId, VerifyItem};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Ed25519 signatures with batch verification, SHA-256 hashes.
#[derive(Debug, Default, Clone, Copy)]
pub struct StandardSuite;

fn verifying_key(pk: &[u8]) -> Result<VerifyingKey, CryptoError> {
    let bytes: [u8; 32] = pk.try_into().map_err(|_| CryptoError::InvalidPublicKey {
        suite: SuiteId::Standard,
        reason: format!("expected 32 bytes, got {}", pk.len()),
    })?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| CryptoError::InvalidPublicKey {
        suite: SuiteId::Standard,
        reason: e.to_string(),
    })
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
        let sk = SigningKey::generate(&mut rand::rngs::OsRng);
        Zeroizing::new(sk.to_bytes().to_vec())
    }

    fn public_key(&self, secret: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(signing_key(secret)?.verifying_key().to_bytes().to_vec())
    }

    fn sign(&self, secret: &[u8], message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(signing_key(secret)?.sign(message).to_bytes().to_vec())
    }

    fn verify(&self, public_key: &[u8], message: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let sig = signature(sig)?;
        verifying_key(public_key)?
            .verify_strict(message, &sig)
            .map_err(|_| CryptoError::BadSignature)
    }

    fn verify_batch(&self, items: &[VerifyItem<'_>]) -> Result<(), CryptoError> {
        let mut keys = Vec::with_capacity(items.len());
        let mut sigs = Vec::with_capacity(items.len());
        let mut msgs = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let k = verifying_key(item.public_key)
                .map_err(|_| CryptoError::BadSignatureInBatch { index })?;
            // Batch verification is not strict about small-order keys, so
            // reject those up front to accept exactly what `verify` accepts.
            if k.is_weak() {
                return Err(CryptoError::BadSignatureInBatch { index });
            }
            keys.push(k);
            sigs.push(
                signature(item.signature)
                    .map_err(|_| CryptoError::BadSignatureInBatch { index })?,
            );
            msgs.push(item.message);
        }
        if ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok() {
            return Ok(());
        }
        // Find the culprit so callers can say which one failed.
        for (index, item) in items.iter().enumerate() {
            if self
                .verify(item.public_key, item.message, item.signature)
                .is_err()
            {
                return Err(CryptoError::BadSignatureInBatch { index });
            }
        }
        // The batch equation failed although each item verifies strictly on
        // its own (possible only for non-canonical encodings): refuse.
        Err(CryptoError::BadSignatureInBatch { index: 0 })
    }

    fn signature_len(&self) -> usize {
        64
    }
}
