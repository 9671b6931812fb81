//! Key files: JSON documents holding one secret key, in the clear (dev keys)
//! or encrypted with a password.
//!
//! A key is either a native key of one of the chain's suites (it signs
//! native transactions, votes and blocks) or an Ethereum account key
//! (secp256k1, `kind: "ethereum"`), such as a Hardhat or MetaMask account
//! imported to send Ethereum transactions from the CLI.
//!
//! Encryption: scrypt derives a 32-byte key from the password and a random
//! salt; ChaCha20-Poly1305 seals the secret, so a wrong password or a
//! tampered file is detected rather than yielding a wrong key.

use crate::eth::EthKey;
use crate::{CryptoError, Keypair, SuiteId};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::path::Path;
use zeroize::Zeroizing;

/// The on-disk form of a key file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    /// Format version, currently 1.
    pub version: u32,
    /// What the key is; native when absent (files written before kinds).
    #[serde(default, skip_serializing_if = "KeyKind::is_native")]
    pub kind: KeyKind,
    /// The key's suite (for native keys; `standard` for Ethereum keys).
    pub suite: SuiteId,
    /// Hex public key (informational; checked against the secret on load).
    pub public_key: String,
    /// Hex secret key, when stored in the clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Encrypted secret, when a password was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crypto: Option<EncryptedSecret>,
}

/// What a key file holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// A key of the chain's suite ([`Keypair`]).
    #[default]
    Native,
    /// An Ethereum account key ([`EthKey`]); its public key field holds
    /// the account address.
    Ethereum,
}

impl KeyKind {
    fn is_native(&self) -> bool {
        *self == KeyKind::Native
    }
}

/// The key a key file opens to.
#[derive(Debug, Clone)]
pub enum AnyKey {
    /// A native key.
    Native(Keypair),
    /// An Ethereum account key.
    Ethereum(EthKey),
}

/// A password-sealed secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EncryptedSecret {
    /// Always "scrypt".
    pub kdf: String,
    /// scrypt log2(N).
    pub log_n: u8,
    /// scrypt r.
    pub r: u32,
    /// scrypt p.
    pub p: u32,
    /// Hex salt.
    pub salt: String,
    /// Always "chacha20poly1305".
    pub cipher: String,
    /// Hex 12-byte nonce.
    pub nonce: String,
    /// Hex ciphertext with tag.
    pub ciphertext: String,
}

const LOG_N: u8 = 15;

fn derive(
    password: &str,
    salt: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let params = scrypt::Params::new(log_n, r, p, 32)
        .map_err(|e| CryptoError::KeyFile(format!("bad scrypt parameters: {e}")))?;
    let mut out = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password.as_bytes(), salt, &params, out.as_mut())
        .map_err(|e| CryptoError::KeyFile(format!("scrypt: {e}")))?;
    Ok(out)
}

fn unhex(field: &str, s: &str) -> Result<Vec<u8>, CryptoError> {
    hex::decode(s.trim_start_matches("0x"))
        .map_err(|_| CryptoError::KeyFile(format!("field {field} is not hex")))
}

impl KeyFile {
    /// Seal a key pair, encrypted when `password` is given.
    pub fn seal(kp: &Keypair, password: Option<&str>) -> Result<Self, CryptoError> {
        Self::seal_secret(
            KeyKind::Native,
            kp.suite(),
            kp.public_key(),
            kp.secret(),
            password,
        )
    }

    /// Seal an Ethereum account key, encrypted when `password` is given.
    pub fn seal_eth(key: &EthKey, password: Option<&str>) -> Result<Self, CryptoError> {
        let secret = Zeroizing::new(key.secret());
        Self::seal_secret(
            KeyKind::Ethereum,
            SuiteId::Standard,
            &key.address(),
            secret.as_ref(),
            password,
        )
    }

    /// Seal any key from its parts.
    pub fn seal_any(key: &AnyKey, password: Option<&str>) -> Result<Self, CryptoError> {
        match key {
            AnyKey::Native(kp) => Self::seal(kp, password),
            AnyKey::Ethereum(k) => Self::seal_eth(k, password),
        }
    }

    fn seal_secret(
        kind: KeyKind,
        suite: SuiteId,
        public: &[u8],
        secret_bytes: &[u8],
        password: Option<&str>,
    ) -> Result<Self, CryptoError> {
        let (secret, crypto) = match password {
            None => (Some(hex::encode(secret_bytes)), None),
            Some(pw) => {
                let mut salt = [0u8; 16];
                let mut nonce = [0u8; 12];
                rand::rngs::OsRng.fill_bytes(&mut salt);
                rand::rngs::OsRng.fill_bytes(&mut nonce);
                let key = derive(pw, &salt, LOG_N, 8, 1)?;
                let cipher = ChaCha20Poly1305::new(key.as_ref().into());
                let ct = cipher
                    .encrypt(Nonce::from_slice(&nonce), secret_bytes)
                    .map_err(|_| CryptoError::KeyFile("encryption failed".into()))?;
                (
                    None,
                    Some(EncryptedSecret {
                        kdf: "scrypt".into(),
                        log_n: LOG_N,
                        r: 8,
                        p: 1,
                        salt: hex::encode(salt),
                        cipher: "chacha20poly1305".into(),
                        nonce: hex::encode(nonce),
                        ciphertext: hex::encode(ct),
                    }),
                )
            }
        };
        Ok(KeyFile {
            version: 1,
            kind,
            suite,
            public_key: hex::encode(public),
            secret,
            crypto,
        })
    }

    /// Whether opening needs a password.
    pub fn is_encrypted(&self) -> bool {
        self.crypto.is_some()
    }

    /// Recover the native key pair; an Ethereum key file is refused.
    pub fn open(&self, password: Option<&str>) -> Result<Keypair, CryptoError> {
        match self.open_any(password)? {
            AnyKey::Native(kp) => Ok(kp),
            AnyKey::Ethereum(_) => Err(CryptoError::KeyFile(
                "this is an Ethereum account key, not a key of the chain's suite".into(),
            )),
        }
    }

    /// Recover whichever key the file holds, checked against its public part.
    pub fn open_any(&self, password: Option<&str>) -> Result<AnyKey, CryptoError> {
        let secret = self.open_secret(password)?;
        let (key, public) = match self.kind {
            KeyKind::Native => {
                let kp = Keypair::from_secret(self.suite, &secret)?;
                let public = hex::encode(kp.public_key());
                (AnyKey::Native(kp), public)
            }
            KeyKind::Ethereum => {
                let k = EthKey::from_secret(&secret)?;
                let public = hex::encode(k.address());
                (AnyKey::Ethereum(k), public)
            }
        };
        if !public.eq_ignore_ascii_case(self.public_key.trim_start_matches("0x")) {
            return Err(CryptoError::KeyFile(
                "public key does not match the secret".into(),
            ));
        }
        Ok(key)
    }

    fn open_secret(&self, password: Option<&str>) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let secret: Zeroizing<Vec<u8>> = match (&self.secret, &self.crypto) {
            (Some(s), _) => Zeroizing::new(unhex("secret", s)?),
            (None, Some(c)) => {
                let pw = password.ok_or_else(|| {
                    CryptoError::KeyFile("the key file is encrypted: a password is needed".into())
                })?;
                if c.kdf != "scrypt" || c.cipher != "chacha20poly1305" {
                    return Err(CryptoError::KeyFile(format!(
                        "unsupported kdf/cipher {}/{}",
                        c.kdf, c.cipher
                    )));
                }
                let key = derive(pw, &unhex("salt", &c.salt)?, c.log_n, c.r, c.p)?;
                let nonce = unhex("nonce", &c.nonce)?;
                if nonce.len() != 12 {
                    return Err(CryptoError::KeyFile("nonce must be 12 bytes".into()));
                }
                let cipher = ChaCha20Poly1305::new(key.as_ref().into());
                Zeroizing::new(
                    cipher
                        .decrypt(
                            Nonce::from_slice(&nonce),
                            unhex("ciphertext", &c.ciphertext)?.as_slice(),
                        )
                        .map_err(|_| CryptoError::Decrypt)?,
                )
            }
            (None, None) => return Err(CryptoError::KeyFile("no secret in key file".into())),
        };
        Ok(secret)
    }

    /// Read a key file from disk.
    pub fn read(path: &Path) -> Result<Self, CryptoError> {
        let text = std::fs::read_to_string(path).map_err(|source| CryptoError::Io {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text)
            .map_err(|e| CryptoError::KeyFile(format!("{}: {e}", path.display())))
    }

    /// Write a key file to disk (mode 0600 on Unix), refusing to overwrite.
    pub fn write(&self, path: &Path) -> Result<(), CryptoError> {
        let io = |source| CryptoError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(io)?;
        // Invariant: KeyFile contains only strings and numbers.
        let text = serde_json::to_string_pretty(self).expect("key file serializes");
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_and_encrypted_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        for id in [SuiteId::Standard, SuiteId::Sm] {
            let kp = Keypair::generate(id);
            let clear = dir.path().join(format!("{id}-clear.key"));
            KeyFile::seal(&kp, None).unwrap().write(&clear).unwrap();
            let back = KeyFile::read(&clear).unwrap().open(None).unwrap();
            assert_eq!(back.public_key(), kp.public_key());

            let enc = dir.path().join(format!("{id}-enc.key"));
            KeyFile::seal(&kp, Some("hunter2"))
                .unwrap()
                .write(&enc)
                .unwrap();
            let text = std::fs::read_to_string(&enc).unwrap();
            assert!(!text.contains(&hex::encode(kp.secret())));
            let kf = KeyFile::read(&enc).unwrap();
            assert!(kf.is_encrypted());
            assert!(matches!(kf.open(Some("wrong")), Err(CryptoError::Decrypt)));
            assert!(kf.open(None).is_err());
            assert_eq!(
                kf.open(Some("hunter2")).unwrap().public_key(),
                kp.public_key()
            );
            // refuses to overwrite
            assert!(KeyFile::seal(&kp, None).unwrap().write(&enc).is_err());
        }
    }

    #[test]
    fn ethereum_keys_roundtrip_and_are_not_native_keys() {
        let dir = tempfile::tempdir().unwrap();
        // Hardhat's and Anvil's account 0.
        let secret =
            hex::decode("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
                .unwrap();
        let key = EthKey::from_secret(&secret).unwrap();
        for password in [None, Some("hunter2")] {
            let path = dir.path().join(format!("eth-{}.key", password.is_some()));
            KeyFile::seal_eth(&key, password)
                .unwrap()
                .write(&path)
                .unwrap();
            let kf = KeyFile::read(&path).unwrap();
            assert_eq!(kf.kind, KeyKind::Ethereum);
            assert_eq!(kf.public_key, "f39fd6e51aad88f6f4ce6ab8827279cfffb92266");
            match kf.open_any(password).unwrap() {
                AnyKey::Ethereum(k) => assert_eq!(k.address(), key.address()),
                AnyKey::Native(_) => panic!("opened as a native key"),
            }
            assert!(kf.open(password).is_err());
        }
        // A native file written before kinds existed still opens as native.
        let kp = Keypair::generate(SuiteId::Standard);
        let mut v = serde_json::to_value(KeyFile::seal(&kp, None).unwrap()).unwrap();
        assert!(v.get("kind").is_none());
        v["suite"] = serde_json::json!("standard");
        let kf: KeyFile = serde_json::from_value(v).unwrap();
        assert!(matches!(kf.open_any(None).unwrap(), AnyKey::Native(_)));
    }
}
