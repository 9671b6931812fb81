//! The `sm` suite: SM2 signatures (GM/T 0003) with the standard default
//! distinguishing identifier, and SM3 hashes (GM/T 0004).

use crate::{CryptoError, CryptoSuite, Hash32, SuiteId};
use sm2::dsa::signature::{Signer, Verifier};
use sm2::dsa::{Signature, SigningKey, VerifyingKey};
use sm3::{Digest, Sm3};
use zeroize::Zeroizing;

/// The default SM2 distinguishing identifier (GM/T 0009).
pub const DEFAULT_DISTID: &str = "1234567812345678";

/// SM2 signatures and SM3 hashes.
#[derive(Debug, Default, Clone, Copy)]
pub struct SmSuite;

fn signing_key(secret: &[u8]) -> Result<SigningKey, CryptoError> {
    let sk = sm2::SecretKey::from_slice(secret)
        .map_err(|_| CryptoError::InvalidSecretKey { suite: SuiteId::Sm })?;
    SigningKey::new(DEFAULT_DISTID, &sk)
        .map_err(|_| CryptoError::InvalidSecretKey { suite: SuiteId::Sm })
}

impl CryptoSuite for SmSuite {
    fn id(&self) -> SuiteId {
        SuiteId::Sm
    }

    fn hash(&self, data: &[u8]) -> Hash32 {
        Sm3::digest(data).into()
    }

    fn hash_parts(&self, parts: &[&[u8]]) -> Hash32 {
        let mut h = Sm3::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    fn generate_secret(&self) -> Zeroizing<Vec<u8>> {
        let sk = sm2::SecretKey::random(&mut rand::rngs::OsRng);
        Zeroizing::new(sk.to_bytes().to_vec())
    }

    fn public_key(&self, secret: &[u8]) -> Result<Vec<u8>, CryptoError> {
        // Compressed SEC1 point, 33 bytes.
        let sk = sm2::SecretKey::from_slice(secret)
            .map_err(|_| CryptoError::InvalidSecretKey { suite: SuiteId::Sm })?;
        use sm2::elliptic_curve::sec1::ToEncodedPoint;
        Ok(sk.public_key().to_encoded_point(true).as_bytes().to_vec())
    }

    fn sign(&self, secret: &[u8], message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let sig: Signature = signing_key(secret)?.sign(message);
        Ok(sig.to_bytes().to_vec())
    }

    fn verify(&self, public_key: &[u8], message: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let sig = Signature::from_slice(sig).map_err(|_| CryptoError::MalformedSignature {
            suite: SuiteId::Sm,
            expected: 64,
            got: sig.len(),
        })?;
        let vk = VerifyingKey::from_sec1_bytes(DEFAULT_DISTID, public_key).map_err(|e| {
            CryptoError::InvalidPublicKey {
                suite: SuiteId::Sm,
                reason: e.to_string(),
            }
        })?;
        vk.verify(message, &sig)
            .map_err(|_| CryptoError::BadSignature)
    }

    fn signature_len(&self) -> usize {
        64
    }
}
