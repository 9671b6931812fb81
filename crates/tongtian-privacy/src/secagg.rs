//! Secure aggregation for federated learning (Bonawitz et al., CCS 2017,
//! with SecAgg+'s sparse mask graph, Bell et al., CCS 2020): the
//! aggregator learns the sum of the clients' updates and nothing about
//! any one of them, and recovers the sum when up to `n - t` clients drop
//! out after sharing their keys.
//!
//! One round, in four steps between `n` clients and the aggregator:
//! 1. **Keys.** Each client sends two X25519 public keys: one to agree
//!    pairwise masks, one to encrypt the shares it deals. The aggregator
//!    passes the list to everyone.
//! 2. **Shares.** Each client deals Shamir shares (threshold `t`, over the
//!    ed25519 scalar field) of its mask secret key and of a fresh
//!    self-mask seed, one share of each per other client, encrypted with
//!    ChaCha20-Poly1305 under their agreed key; the aggregator forwards
//!    them.
//! 3. **Masked update.** Client `i` sends `x_i + G(b_i) + Σ± G(s_ij)` in
//!    Z_2^64 (fixed point), the pairwise masks `s_ij` agreed by X25519 with
//!    each neighbour `j` that dealt it shares, on a ring of `k` neighbours (SecAgg+: `k` grows
//!    with log n, not n), `+` for `j > i`, `-` for `j < i`; `G` is AES-CTR.
//!    The pairwise masks cancel in the sum; the self-mask hides `x_i` even
//!    when a neighbour's key is later reconstructed.
//! 4. **Unmasking.** The aggregator names the survivors; each survivor
//!    sends its shares of every survivor's self-mask seed and of every
//!    dropped client's mask key (never both for one client). With `t`
//!    shares of each, the aggregator removes the self-masks and the
//!    dropped clients' half-pairs, and the sum is exact.
//!
//! **Security**: semi-honest clients and aggregator (as Flower's SecAgg+);
//! the aggregator sees uniformly masked vectors; fewer than `t` colluding
//! clients learn nothing of another's update.

use crate::PrivacyError;
use aes::cipher::{KeyIvInit, StreamCipher};
use borsh::{BorshDeserialize, BorshSerialize};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::Scalar;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

type Ctr = ctr::Ctr128LE<aes::Aes128>;

fn bad(m: impl Into<String>) -> PrivacyError {
    PrivacyError::BadMessage(m.into())
}

/// A round's parameters, the same for everyone.
#[derive(Clone, Debug)]
pub struct SecAggParams {
    /// The round's tag (job and round number): keys and masks bind it.
    pub round: [u8; 32],
    /// Clients, numbered `0..n`.
    pub clients: usize,
    /// Shares needed to reconstruct (at least a majority).
    pub threshold: usize,
    /// Neighbours each client masks with (even; `clients - 1` or more is
    /// every pair).
    pub neighbours: usize,
    /// The vector's length.
    pub dim: usize,
}

impl SecAggParams {
    /// The neighbours of client `i` on the ring.
    pub fn neighbours_of(&self, i: usize) -> Vec<usize> {
        let n = self.clients;
        if self.neighbours + 1 >= n {
            return (0..n).filter(|j| *j != i).collect();
        }
        let h = self.neighbours / 2;
        let mut out: BTreeSet<usize> = BTreeSet::new();
        for d in 1..=h {
            out.insert((i + d) % n);
            out.insert((i + n - d) % n);
        }
        out.into_iter().collect()
    }

    fn check(&self) -> Result<(), PrivacyError> {
        if self.clients < 2 || self.threshold <= self.clients / 2 || self.threshold > self.clients {
            return Err(bad("a majority threshold of at least two clients"));
        }
        Ok(())
    }
}

/// Step 1, client → aggregator → everyone.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct Keys {
    /// The client.
    pub id: u32,
    /// For pairwise masks.
    pub mask_pk: [u8; 32],
    /// For encrypting dealt shares.
    pub enc_pk: [u8; 32],
}

/// Step 2: one encrypted pair of shares, from `from` to `to`.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct Sealed {
    /// The dealer.
    pub from: u32,
    /// The holder.
    pub to: u32,
    /// ChaCha20-Poly1305 of the two shares.
    pub ciphertext: Vec<u8>,
}

/// Shares by dealer.
pub type Shares = Vec<(u32, [u8; 32])>;

/// Step 4: one survivor's shares for the aggregator.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct Unmask {
    /// The survivor.
    pub id: u32,
    /// Its shares of survivors' self-mask seeds, by dealer.
    pub seeds: Shares,
    /// Its shares of dropped clients' mask keys, by dealer.
    pub keys: Shares,
}

fn random_scalar() -> Scalar {
    let mut w = [0u8; 64];
    rand::thread_rng().fill_bytes(&mut w);
    Scalar::from_bytes_mod_order_wide(&w)
}

/// Shamir shares of `secret` for holders `1..=n` (x = holder index + 1).
fn deal(secret: Scalar, n: usize, t: usize) -> Vec<Scalar> {
    let coeffs: Vec<Scalar> = std::iter::once(secret)
        .chain((1..t).map(|_| random_scalar()))
        .collect();
    (1..=n as u64)
        .map(|x| {
            let x = Scalar::from(x);
            coeffs.iter().rev().fold(Scalar::ZERO, |acc, c| acc * x + c)
        })
        .collect()
}

/// The secret from `(holder, share)` pairs (Lagrange at 0).
fn reconstruct(shares: &[(u32, Scalar)]) -> Scalar {
    let mut s = Scalar::ZERO;
    for (i, (xi, yi)) in shares.iter().enumerate() {
        let xi = Scalar::from(*xi as u64 + 1);
        let mut num = Scalar::ONE;
        let mut den = Scalar::ONE;
        for (j, (xj, _)) in shares.iter().enumerate() {
            if i != j {
                let xj = Scalar::from(*xj as u64 + 1);
                num *= xj;
                den *= xj - xi;
            }
        }
        s += yi * num * den.invert();
    }
    s
}

/// `dim` words of `seed`'s expansion under `round`, added (`sign` 1) or
/// subtracted (`-1`) into `into`.
fn apply_mask(round: &[u8; 32], seed: &[u8; 32], sign: i8, into: &mut [u64]) {
    let k: [u8; 32] = Sha256::new()
        .chain_update(b"tongtian/secagg-prg/v1")
        .chain_update(round)
        .chain_update(seed)
        .finalize()
        .into();
    let key: [u8; 16] = k[..16].try_into().expect("16 bytes");
    let mut c = Ctr::new(&key.into(), &[0u8; 16].into());
    let mut buf = vec![0u8; 64 * 1024];
    for chunk in into.chunks_mut(8 * 1024) {
        let b = &mut buf[..chunk.len() * 8];
        b.fill(0);
        c.apply_keystream(b);
        for (w, m) in chunk.iter_mut().zip(b.chunks_exact(8)) {
            let m = u64::from_le_bytes(m.try_into().expect("8 bytes"));
            *w = if sign > 0 {
                w.wrapping_add(m)
            } else {
                w.wrapping_sub(m)
            };
        }
    }
}

fn pair_seed(round: &[u8; 32], shared: &MontgomeryPoint, i: usize, j: usize) -> [u8; 32] {
    let (a, b) = (i.min(j) as u64, i.max(j) as u64);
    Sha256::new()
        .chain_update(b"tongtian/secagg-pair/v1")
        .chain_update(round)
        .chain_update(shared.as_bytes())
        .chain_update(a.to_le_bytes())
        .chain_update(b.to_le_bytes())
        .finalize()
        .into()
}

fn cipher(round: &[u8; 32], shared: &MontgomeryPoint) -> ChaCha20Poly1305 {
    let k: [u8; 32] = Sha256::new()
        .chain_update(b"tongtian/secagg-seal/v1")
        .chain_update(round)
        .chain_update(shared.as_bytes())
        .finalize()
        .into();
    ChaCha20Poly1305::new(&k.into())
}

fn nonce(from: u32, to: u32) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&from.to_le_bytes());
    n[4..8].copy_from_slice(&to.to_le_bytes());
    n
}

/// One client's side of a round.
pub struct Client {
    p: SecAggParams,
    id: usize,
    mask_sk: Scalar,
    enc_sk: Scalar,
    seed: Scalar,
    peers: BTreeMap<u32, Keys>,
    /// Shares others dealt to us: dealer → (mask key share, seed share).
    held: BTreeMap<u32, (Scalar, Scalar)>,
}

impl Client {
    /// Client `id` of a round: step 1's message.
    pub fn new(p: SecAggParams, id: usize) -> Result<(Client, Keys), PrivacyError> {
        p.check()?;
        let c = Client {
            p,
            id,
            mask_sk: random_scalar(),
            enc_sk: random_scalar(),
            seed: random_scalar(),
            peers: BTreeMap::new(),
            held: BTreeMap::new(),
        };
        let keys = Keys {
            id: id as u32,
            mask_pk: MontgomeryPoint::mul_base_clamped(c.mask_sk.to_bytes()).to_bytes(),
            enc_pk: MontgomeryPoint::mul_base_clamped(c.enc_sk.to_bytes()).to_bytes(),
        };
        Ok((c, keys))
    }

    /// Step 2: the everyone's keys in, our sealed shares out.
    pub fn share(&mut self, all: &[Keys]) -> Result<Vec<Sealed>, PrivacyError> {
        if all.len() < self.p.threshold {
            return Err(bad("fewer clients than the threshold"));
        }
        self.peers = all.iter().map(|k| (k.id, k.clone())).collect();
        let n = self.p.clients;
        let mask = deal(self.mask_sk, n, self.p.threshold);
        let seed = deal(self.seed, n, self.p.threshold);
        let mut out = Vec::new();
        for k in all {
            let j = k.id as usize;
            if j == self.id || j >= n {
                continue;
            }
            let shared = MontgomeryPoint(k.enc_pk).mul_clamped(self.enc_sk.to_bytes());
            let plain = [mask[j].to_bytes(), seed[j].to_bytes()].concat();
            let ciphertext = cipher(&self.p.round, &shared)
                .encrypt(&nonce(self.id as u32, j as u32).into(), &plain[..])
                .map_err(|_| bad("sealing a share"))?;
            out.push(Sealed {
                from: self.id as u32,
                to: j as u32,
                ciphertext,
            });
        }
        // Our own share of our own secrets.
        self.held
            .insert(self.id as u32, (mask[self.id], seed[self.id]));
        Ok(out)
    }

    /// Step 3: the shares dealt to us in, our masked update out.
    pub fn masked(&mut self, dealt: &[Sealed], update: &[u64]) -> Result<Vec<u64>, PrivacyError> {
        if update.len() != self.p.dim {
            return Err(bad("an update of the wrong length"));
        }
        for s in dealt {
            if s.to as usize != self.id {
                continue;
            }
            let k = self
                .peers
                .get(&s.from)
                .ok_or_else(|| bad("a share from a stranger"))?;
            let shared = MontgomeryPoint(k.enc_pk).mul_clamped(self.enc_sk.to_bytes());
            let plain = cipher(&self.p.round, &shared)
                .decrypt(&nonce(s.from, s.to).into(), &s.ciphertext[..])
                .map_err(|_| bad("a share that does not open"))?;
            if plain.len() != 64 {
                return Err(bad("a share of the wrong length"));
            }
            let a = Scalar::from_canonical_bytes(plain[..32].try_into().expect("32"));
            let b = Scalar::from_canonical_bytes(plain[32..].try_into().expect("32"));
            match (Option::<Scalar>::from(a), Option::<Scalar>::from(b)) {
                (Some(a), Some(b)) => {
                    self.held.insert(s.from, (a, b));
                }
                _ => return Err(bad("a share that is not a scalar")),
            }
        }
        let mut y = update.to_vec();
        apply_mask(&self.p.round, &self.seed.to_bytes(), 1, &mut y);
        for j in self.p.neighbours_of(self.id) {
            // A neighbour is in this round once it dealt us its shares
            // (else nobody could unmask its half of the pair).
            if !self.held.contains_key(&(j as u32)) {
                continue;
            }
            let Some(k) = self.peers.get(&(j as u32)) else {
                continue;
            };
            let shared = MontgomeryPoint(k.mask_pk).mul_clamped(self.mask_sk.to_bytes());
            let seed = pair_seed(&self.p.round, &shared, self.id, j);
            apply_mask(
                &self.p.round,
                &seed,
                if j > self.id { 1 } else { -1 },
                &mut y,
            );
        }
        Ok(y)
    }

    /// Step 4: the survivors named, our shares out (of survivors' seeds
    /// and dropped clients' mask keys, never both for one client).
    pub fn unmask(&self, survivors: &[u32]) -> Result<Unmask, PrivacyError> {
        if survivors.len() < self.p.threshold {
            return Err(bad("fewer survivors than the threshold"));
        }
        let alive: BTreeSet<u32> = survivors.iter().copied().collect();
        let mut seeds = Vec::new();
        let mut keys = Vec::new();
        for (dealer, (mask, seed)) in &self.held {
            if alive.contains(dealer) {
                seeds.push((*dealer, seed.to_bytes()));
            } else {
                keys.push((*dealer, mask.to_bytes()));
            }
        }
        Ok(Unmask {
            id: self.id as u32,
            seeds,
            keys,
        })
    }
}

/// The aggregator's step 4: the exact sum of the survivors' updates.
pub fn aggregate(
    p: &SecAggParams,
    all: &[Keys],
    masked: &BTreeMap<u32, Vec<u64>>,
    answers: &[Unmask],
) -> Result<Vec<u64>, PrivacyError> {
    p.check()?;
    if masked.len() < p.threshold || answers.len() < p.threshold {
        return Err(bad("fewer survivors than the threshold"));
    }
    let keys: BTreeMap<u32, &Keys> = all.iter().map(|k| (k.id, k)).collect();
    let mut sum = vec![0u64; p.dim];
    for y in masked.values() {
        if y.len() != p.dim {
            return Err(bad("a masked update of the wrong length"));
        }
        for (s, v) in sum.iter_mut().zip(y) {
            *s = s.wrapping_add(*v);
        }
    }
    let collect = |pick: &dyn Fn(&Unmask) -> &Shares, dealer: u32| {
        let shares: Vec<(u32, Scalar)> = answers
            .iter()
            .filter_map(|a| {
                pick(a)
                    .iter()
                    .find(|(d, _)| *d == dealer)
                    .and_then(|(_, b)| Option::<Scalar>::from(Scalar::from_canonical_bytes(*b)))
                    .map(|s| (a.id, s))
            })
            .take(p.threshold)
            .collect();
        if shares.len() < p.threshold {
            return Err(bad(format!("too few shares to unmask client {dealer}")));
        }
        Ok(reconstruct(&shares))
    };
    // Survivors' self-masks off.
    for id in masked.keys() {
        let seed = collect(&|a: &Unmask| &a.seeds, *id)?;
        apply_mask(&p.round, &seed.to_bytes(), -1, &mut sum);
    }
    // Dropped clients' half-pairs off (those that dealt shares: the
    // others were masked with by nobody).
    for j in 0..p.clients as u32 {
        if masked.contains_key(&j) || !keys.contains_key(&j) {
            continue;
        }
        if !answers.iter().any(|a| a.keys.iter().any(|(d, _)| *d == j)) {
            continue;
        }
        let sk = collect(&|a: &Unmask| &a.keys, j)?;
        for i in p.neighbours_of(j as usize) {
            let Some(ki) = keys.get(&(i as u32)) else {
                continue;
            };
            if !masked.contains_key(&(i as u32)) {
                continue;
            }
            let shared = MontgomeryPoint(ki.mask_pk).mul_clamped(sk.to_bytes());
            let seed = pair_seed(&p.round, &shared, i, j as usize);
            // i added +G if j > i, -G if j < i: undo it.
            apply_mask(
                &p.round,
                &seed,
                if (j as usize) > i { -1 } else { 1 },
                &mut sum,
            );
        }
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shamir_reconstructs_from_any_threshold() {
        let s = random_scalar();
        let shares = deal(s, 7, 4);
        let pick = |ids: &[u32]| -> Vec<(u32, Scalar)> {
            ids.iter().map(|i| (*i, shares[*i as usize])).collect()
        };
        assert_eq!(reconstruct(&pick(&[0, 1, 2, 3])), s);
        assert_eq!(reconstruct(&pick(&[6, 2, 4, 5])), s);
        assert_ne!(
            reconstruct(&pick(&[0, 1, 2])),
            s,
            "three shares are not enough"
        );
    }
}
