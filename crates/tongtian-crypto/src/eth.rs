//! Ethereum's cryptography, for Ethereum-signed transactions and the
//! development accounts every Ethereum tool expects.
//!
//! Ethereum accounts sign with secp256k1 over Keccak-256 digests; an
//! account's address is the last 20 bytes of the Keccak-256 hash of its
//! uncompressed public key. Transactions carry a recoverable signature, so
//! the sender is recovered rather than stated.

use crate::CryptoError;
use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use sha3::{Digest, Keccak256};

/// The mnemonic of Hardhat's and Anvil's development accounts.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// Keccak-256 of `data`.
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// The digest an account signs for a message under EIP-191 version 0x45
/// (`eth_sign`, `personal_sign`, ethers' `signMessage`): Keccak-256 of
/// `"\x19Ethereum Signed Message:\n" || decimal length || message`, so a
/// signed message can never be a valid transaction.
pub fn personal_message_digest(message: &[u8]) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(b"\x19Ethereum Signed Message:\n");
    h.update(message.len().to_string().as_bytes());
    h.update(message);
    h.finalize().into()
}

/// Address of a secp256k1 public key.
pub fn address_of(key: &VerifyingKey) -> [u8; 20] {
    let point = key.to_encoded_point(false);
    let h = keccak256(&point.as_bytes()[1..]);
    let mut a = [0u8; 20];
    a.copy_from_slice(&h[12..]);
    a
}

/// Recover the signer's address from a 32-byte digest, the 64-byte `r || s`
/// signature and the recovery id (0 or 1). High-`s` signatures are refused,
/// as Ethereum does since Homestead.
pub fn recover_address(
    digest: &[u8; 32],
    rs: &[u8; 64],
    recid: u8,
) -> Result<[u8; 20], CryptoError> {
    let sig = Signature::from_slice(rs).map_err(|_| CryptoError::BadSignature)?;
    if sig.normalize_s().is_some() {
        return Err(CryptoError::BadSignature);
    }
    let id = RecoveryId::from_byte(recid).ok_or(CryptoError::BadSignature)?;
    let key = VerifyingKey::recover_from_prehash(digest, &sig, id)
        .map_err(|_| CryptoError::BadSignature)?;
    Ok(address_of(&key))
}

/// A secp256k1 secret key of an Ethereum account.
#[derive(Clone)]
pub struct EthKey {
    key: SigningKey,
}

impl std::fmt::Debug for EthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EthKey(0x{})", hex::encode(self.address()))
    }
}

impl EthKey {
    /// A key from its 32 secret bytes.
    pub fn from_secret(secret: &[u8]) -> Result<Self, CryptoError> {
        let key = SigningKey::from_slice(secret).map_err(|_| CryptoError::InvalidSecretKey {
            suite: crate::SuiteId::Standard,
        })?;
        Ok(EthKey { key })
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        EthKey {
            key: SigningKey::random(&mut rand::rngs::OsRng),
        }
    }

    /// The secret bytes.
    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes().into()
    }

    /// The account address.
    pub fn address(&self) -> [u8; 20] {
        address_of(self.key.verifying_key())
    }

    /// Sign a 32-byte digest: `(r || s, recovery id)`, low-`s`.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> ([u8; 64], u8) {
        // Signing a 32-byte prehash with a valid key cannot fail.
        let (sig, id) = self
            .key
            .sign_prehash_recoverable(digest)
            .expect("32-byte prehash signs");
        (sig.to_bytes().into(), id.to_byte())
    }

    /// Sign a 32-byte digest in the 65-byte form of Ethereum's signing
    /// methods: `r || s || v` with `v` = 27 + the recovery id.
    pub fn sign_recoverable(&self, digest: &[u8; 32]) -> [u8; 65] {
        let (rs, id) = self.sign_digest(digest);
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&rs);
        out[64] = 27 + id;
        out
    }

    /// The key at BIP-44 path `m/44'/60'/0'/0/index` of a BIP-39 mnemonic
    /// (empty passphrase): the derivation of MetaMask, Hardhat and Anvil.
    pub fn from_mnemonic(mnemonic: &str, index: u32) -> Result<Self, CryptoError> {
        Self::from_seed_at(&mnemonic_seed(mnemonic), index)
    }

    /// The key at `m/44'/60'/0'/0/index` below a BIP-39 seed.
    fn from_seed_at(seed: &[u8; 64], index: u32) -> Result<Self, CryptoError> {
        let path: bip32::DerivationPath =
            format!("m/44'/60'/0'/0/{index}").parse().map_err(|_| {
                CryptoError::InvalidSecretKey {
                    suite: crate::SuiteId::Standard,
                }
            })?;
        let child = bip32::XPrv::derive_from_path(seed, &path).map_err(|_| {
            CryptoError::InvalidSecretKey {
                suite: crate::SuiteId::Standard,
            }
        })?;
        Self::from_secret(&child.to_bytes())
    }

    /// The first `n` development accounts of [`DEV_MNEMONIC`] (the seed,
    /// 2,048 rounds of PBKDF2, is derived once for all of them).
    pub fn dev_accounts(n: u32) -> Vec<EthKey> {
        let seed = mnemonic_seed(DEV_MNEMONIC);
        (0..n)
            .map(|i| Self::from_seed_at(&seed, i).expect("the dev mnemonic derives"))
            .collect()
    }
}

/// The BIP-39 seed of a mnemonic with an empty passphrase.
fn mnemonic_seed(mnemonic: &str) -> [u8; 64] {
    let mut seed = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(mnemonic.as_bytes(), b"mnemonic", 2048, &mut seed);
    seed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_message_recovers_its_signer_and_only_for_that_message() {
        let key = EthKey::dev_accounts(1).remove(0);
        let digest = personal_message_digest(b"hello");
        // The digest covers the prefix and the length, not the bare message.
        assert_ne!(digest, keccak256(b"hello"));
        assert_ne!(digest, personal_message_digest(b"hello!"));
        let sig = key.sign_recoverable(&digest);
        assert!(sig[64] == 27 || sig[64] == 28);
        let rs: [u8; 64] = sig[..64].try_into().unwrap();
        assert_eq!(
            recover_address(&digest, &rs, sig[64] - 27).unwrap(),
            key.address()
        );
        let other = personal_message_digest(b"hellO");
        assert_ne!(
            recover_address(&other, &rs, sig[64] - 27).ok(),
            Some(key.address())
        );
    }

    #[test]
    fn keccak_of_empty_input() {
        assert_eq!(
            hex::encode(keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn dev_mnemonic_gives_the_well_known_accounts() {
        // The addresses every Hardhat and Anvil user has seen printed.
        let keys = EthKey::dev_accounts(2);
        assert_eq!(
            hex::encode(keys[0].address()),
            "f39fd6e51aad88f6f4ce6ab8827279cfffb92266"
        );
        assert_eq!(
            hex::encode(keys[1].address()),
            "70997970c51812dc3a010c7d01b50e0d17dc79c8"
        );
    }

    #[test]
    fn signatures_recover_their_signer_and_nothing_else() {
        let k = EthKey::generate();
        let digest = keccak256(b"hello");
        let (rs, id) = k.sign_digest(&digest);
        assert_eq!(recover_address(&digest, &rs, id).unwrap(), k.address());
        let other = keccak256(b"hellp");
        assert_ne!(recover_address(&other, &rs, id).ok(), Some(k.address()));
        let mut bad = rs;
        bad[5] ^= 1;
        assert_ne!(recover_address(&digest, &bad, id).ok(), Some(k.address()));
        assert!(recover_address(&digest, &rs, 7).is_err());
    }
}
