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

/// Ed25519's batch equation over `items`, with each distinct key's terms
/// gathered into one.
///
/// The equation is ed25519-dalek's `verify_batch` (cofactorless, the
/// `s` scalar of each signature canonical): for random 128-bit `z_i`,
/// `sum(z_i R_i) + sum(z_i k_i A_i) - (sum z_i s_i) B` is the identity,
/// where `k_i = SHA-512(R_i || A_i || M_i) mod l`. The sum over `A_i` is
/// regrouped as `sum over distinct keys A of (sum of z_i k_i with A_i = A) A`,
/// which is the same point, so the multiscalar multiplication has `n + d + 1`
/// terms for `n` signatures by `d` keys instead of `2n + 1`. A chain's
/// senders repeat within a block, so this saves up to half the work.
///
/// The `z_i` come from the thread's CSPRNG, so a signer cannot know them
/// when choosing signatures. Small-order (weak) keys are refused here, as
/// `verify` (strict) refuses them, so the two accept the same honest
/// signatures; a `false` says only that some item fails.
#[allow(non_snake_case)]
fn batch_equation_holds(items: &[VerifyItem<'_>]) -> bool {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
    use rand::Rng;

    let n = items.len();
    let mut rng = rand::thread_rng();
    let mut B_coefficient = Scalar::ZERO;
    let mut z_of_R = Vec::with_capacity(n);
    let mut R_bytes = Vec::with_capacity(n);
    // Distinct keys in first-seen order, with their gathered scalars.
    let mut key_slot: HashMap<[u8; 32], usize> = HashMap::new();
    let mut A_points: Vec<Option<EdwardsPoint>> = Vec::new();
    let mut A_scalars: Vec<Scalar> = Vec::new();
    for item in items {
        let Ok((key, false)) = cached_key(item.public_key) else {
            return false;
        };
        let Ok(sig) = signature(item.signature) else {
            return false;
        };
        let r = sig.r_bytes();
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(*sig.s_bytes())) else {
            return false;
        };
        let a = key.as_bytes();
        let k = Scalar::from_bytes_mod_order_wide(
            &sha2::Sha512::new()
                .chain_update(r)
                .chain_update(a)
                .chain_update(item.message)
                .finalize()
                .into(),
        );
        let z = Scalar::from(rng.gen::<u128>());
        B_coefficient += z * s;
        z_of_R.push(z);
        R_bytes.push(CompressedEdwardsY(*r));
        let slot = *key_slot.entry(*a).or_insert_with(|| {
            A_points.push(Some(key.to_edwards()));
            A_scalars.push(Scalar::ZERO);
            A_points.len() - 1
        });
        A_scalars[slot] += z * k;
    }
    let scalars = std::iter::once(-B_coefficient)
        .chain(z_of_R)
        .chain(A_scalars);
    let points = std::iter::once(Some(ED25519_BASEPOINT_POINT))
        .chain(R_bytes.iter().map(CompressedEdwardsY::decompress))
        .chain(A_points);
    EdwardsPoint::optional_multiscalar_mul(scalars, points).is_some_and(|p| p.is_identity())
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
        batch_equation_holds(items)
    }

    fn signature_len(&self) -> usize {
        64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::scalar::Scalar;

    fn holds(items: &[(&[u8], &[u8], &[u8])]) -> bool {
        let items: Vec<VerifyItem> = items
            .iter()
            .map(|&(public_key, message, signature)| VerifyItem {
                public_key,
                message,
                signature,
            })
            .collect();
        StandardSuite.batch_holds(&items)
    }

    fn with_s(sig: &[u8], s: Scalar) -> Vec<u8> {
        let mut out = sig[..32].to_vec();
        out.extend_from_slice(s.as_bytes());
        out
    }

    fn s_of(sig: &[u8]) -> Scalar {
        Scalar::from_canonical_bytes(sig[32..].try_into().unwrap()).unwrap()
    }

    #[test]
    fn batch_with_one_key_many_times_checks_each_signature() {
        let suite = StandardSuite;
        let secret = suite.generate_secret();
        let pk = suite.public_key(&secret).unwrap();
        let other = suite.public_key(&suite.generate_secret()).unwrap();
        let (m1, m2, m3) = (
            b"first".as_slice(),
            b"second".as_slice(),
            b"third".as_slice(),
        );
        let s1 = suite.sign(&secret, m1).unwrap();
        let s2 = suite.sign(&secret, m2).unwrap();
        let s3 = suite.sign(&secret, m3).unwrap();
        assert!(holds(&[(&pk, m1, &s1), (&pk, m2, &s2), (&pk, m3, &s3)]));
        // Signatures swapped between two messages of the same key.
        assert!(!holds(&[(&pk, m1, &s2), (&pk, m2, &s1), (&pk, m3, &s3)]));
        // A good signature claimed for another key.
        assert!(!holds(&[(&pk, m1, &s1), (&other, m2, &s2)]));
        // Errors that cancel in the plain sum of the same key's terms:
        // s1 + 1 and s2 - 1. Only the random weights catch these.
        let up = with_s(&s1, s_of(&s1) + Scalar::ONE);
        let down = with_s(&s2, s_of(&s2) - Scalar::ONE);
        assert!(!holds(&[(&pk, m1, &up), (&pk, m2, &down)]));
        // A non-canonical s (s + l) is refused, as strict `verify` does.
        let l = Scalar::ZERO - Scalar::ONE; // l - 1
        let mut wide = [0u8; 32];
        let mut carry = 0u16;
        for (i, w) in wide.iter_mut().enumerate() {
            let v = s1[32 + i] as u16 + l.as_bytes()[i] as u16 + carry + u16::from(i == 0);
            *w = v as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0);
        let mut non_canonical = s1[..32].to_vec();
        non_canonical.extend_from_slice(&wide);
        assert!(suite.verify(&pk, m1, &non_canonical).is_err());
        assert!(!holds(&[(&pk, m1, &non_canonical), (&pk, m2, &s2)]));
        // Truncated signatures and keys are refused, not a panic.
        assert!(!holds(&[(&pk, m1, &s1[..63]), (&pk, m2, &s2)]));
        assert!(!holds(&[(&pk[..31], m1, &s1), (&pk, m2, &s2)]));
    }
}
