//! `psi-ot`: private set intersection from an oblivious PRF built on OT
//! extension (the KKRT protocol: Kolesnikov, Kumaresan, Rosulek, Trieu,
//! CCS 2016), for large sets.
//!
//! 1. **Base OTs.** 448 "simplest" OTs (Chou and Orlandi) on ristretto255:
//!    the receiver of the PSI (the extension's receiver, R) is their
//!    sender with random 128-bit key pairs `(k0_i, k1_i)`; the PSI sender S
//!    chooses with 448 random bits `s` and learns `k_{s_i}`.
//! 2. **Cuckoo hashing.** R puts each of its keys into one of `m ≈ 1.27 n`
//!    bins with three hash functions (each bin holds at most one key,
//!    empty bins hold random dummies); S will try each of its keys in all
//!    three of its bins.
//! 3. **OT extension to an OPRF.** Row `j` of R's matrix `D` is the
//!    448-bit pseudorandom codeword `C(x_j)` of the key in bin `j` (AES
//!    under a key S chose, so R cannot pick codewords). R expands the
//!    seeds column by column with AES-CTR, `t_i = G(k0_i)`, and sends
//!    `u_i = t_i ⊕ G(k1_i) ⊕ d_i`; S computes `q_i = G(k_{s_i}) ⊕ s_i·u_i`,
//!    so row-wise `Q_j = T_j ⊕ (C(x_j) ∧ s)`. The OPRF is
//!    `F(j, y) = H(j, Q_j ⊕ (C(y) ∧ s))`, and `F(j, x_j) = H(j, T_j)`: R
//!    knows its own values, S can evaluate it anywhere.
//! 4. **Comparison.** S sends `F(j, y)` for each of its keys `y` and each
//!    of its three bins `j`, one shuffled list per hash function, each
//!    value `40 + log2(3 n_R n_S)` bits (false matches below 2^-40); R keeps
//!    the keys whose own value is in the list of the function that placed
//!    them.
//!
//! The matrix travels in chunks of rows, so R's expansion, the network
//! and S's evaluations overlap.
//!
//! **Security**: semi-honest parties; computational DH in ristretto255
//! for the base OTs, AES as a PRF (the seed expansion and the code), and
//! SHA-256 as a random oracle; 448-bit codewords keep the pseudorandom
//! code's minimum distance above 128 for sets up to 2^24. What leaks: each
//! side learns the other's set size (R also the table size `m`, a
//! function of its own size); S learns nothing else; R learns the
//! intersection (or, with `cardinality`, only its size). A malicious
//! party can make the result wrong but malformed messages (wrong lengths,
//! off-curve points, a table that does not fit the set) are refused.

use crate::protocol::Peers;
use crate::protocol::{
    normalise, psi_reference, PrivacyProtocol, PsiInput, PsiOutput, PsiParams, Ran,
};
use crate::PrivacyError;
use aes::cipher::{BlockEncrypt, KeyInit, KeyIvInit, StreamCipher};
use aes::Aes128;
use async_trait::async_trait;
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};

type Ctr = ctr::Ctr128LE<Aes128>;

/// 64-bit words per codeword.
pub const CODE_WORDS: usize = 7;
/// Base OTs (codeword bits).
const K: usize = CODE_WORDS * 64;
/// Rows of the matrix per message.
const CHUNK_ROWS: usize = 1 << 14;
/// OPRF values per message of S's lists.
const VALUES_PER_MESSAGE: usize = 1 << 18;
const DOMAIN: &[u8] = b"tongtian/psi-ot/v1";

/// The protocol.
#[derive(Debug, Default, Clone, Copy)]
pub struct PsiOt;

type Row = [u64; CODE_WORDS];

fn bad(m: impl Into<String>) -> PrivacyError {
    PrivacyError::BadMessage(m.into())
}

/// A key's 128-bit digest under the job (what hashing and the code see).
fn digest(job: &[u8; 32], key: &str) -> u128 {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(job);
    h.update((key.len() as u64).to_le_bytes());
    h.update(key.as_bytes());
    let d = h.finalize();
    u128::from_le_bytes(d[..16].try_into().expect("16 bytes"))
}

fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The three cuckoo hash functions into `m` bins.
#[derive(Clone, Copy)]
struct Bins {
    m: usize,
    seed: u64,
}

impl Bins {
    fn bin(&self, d: u128, t: usize) -> usize {
        let (lo, hi) = (d as u64, (d >> 64) as u64);
        let x = mix64(lo ^ mix64(self.seed ^ (t as u64 + 1))) ^ hi.rotate_left(21 * t as u32 + 7);
        ((mix64(x) as u128 * self.m as u128) >> 64) as usize
    }

    /// Place every digest in one of its bins, or `None`.
    fn place(&self, ds: &[u128]) -> Option<Vec<Option<(u32, u8)>>> {
        let mut table: Vec<Option<(u32, u8)>> = vec![None; self.m];
        let mut rng = rand::thread_rng();
        'each: for i in 0..ds.len() {
            let mut item = i as u32;
            let mut last = usize::MAX;
            for _ in 0..1_000 {
                for t in 0..3 {
                    let b = self.bin(ds[item as usize], t);
                    if table[b].is_none() {
                        table[b] = Some((item, t as u8));
                        continue 'each;
                    }
                }
                let mut t = rng.gen_range(0..3);
                let mut b = self.bin(ds[item as usize], t);
                if b == last {
                    t = (t + 1) % 3;
                    b = self.bin(ds[item as usize], t);
                }
                let (old, _) = table[b].replace((item, t as u8)).expect("occupied");
                item = old;
                last = b;
            }
            return None;
        }
        Some(table)
    }
}

/// The table size for `n` keys: 1.27 n bins and some slack, a multiple
/// of 64.
fn table_size(n: usize) -> usize {
    let m = n + n.div_ceil(100) * 27 + 256;
    m.div_ceil(64) * 64
}

/// Bytes of an OPRF value for sets of `n_r` and `n_s` keys: false
/// matches below 2^-40.
fn value_len(n_r: usize, n_s: usize) -> usize {
    let pairs = 3.0 * (n_r.max(1) as f64) * (n_s.max(1) as f64);
    ((40.0 + pairs.log2()) / 8.0).ceil().clamp(6.0, 16.0) as usize
}

/// The pseudorandom code: a key's 448-bit codeword for hash function `h`.
struct Code(Aes128);

impl Code {
    fn new(seed: &[u8; 32], job: &[u8; 32]) -> Self {
        let k: [u8; 32] = Sha256::new()
            .chain_update(DOMAIN)
            .chain_update(b"code")
            .chain_update(job)
            .chain_update(seed)
            .finalize()
            .into();
        let key: [u8; 16] = k[..16].try_into().expect("16 bytes");
        Code(Aes128::new(&key.into()))
    }

    fn word(&self, d: u128, h: u8) -> Row {
        let mut blocks = [aes::Block::default(); 4];
        for (b, block) in blocks.iter_mut().enumerate() {
            let x = d ^ ((h as u128) << 120) ^ ((b as u128) << 112);
            *block = x.to_le_bytes().into();
        }
        self.0.encrypt_blocks(&mut blocks);
        let mut out = [0u64; CODE_WORDS];
        for (w, o) in out.iter_mut().enumerate() {
            let b = &blocks[w / 2];
            let off = (w % 2) * 8;
            *o = u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"));
        }
        out
    }
}

/// XOR `words.len()` words of seed `key`'s expansion, from word `start`
/// (even), into `words`.
fn prg_xor(key: &[u8; 16], start: usize, words: &mut [u64]) {
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(&((start / 2) as u64).to_le_bytes());
    let mut c = Ctr::new(key.into(), &iv.into());
    let mut buf = vec![0u8; words.len().div_ceil(2) * 16];
    c.apply_keystream(&mut buf);
    for (w, b) in words.iter_mut().zip(buf.chunks_exact(8)) {
        *w ^= u64::from_le_bytes(b.try_into().expect("8 bytes"));
    }
}

/// Transpose a 64×64 bit matrix: bit `c` of word `r` becomes bit `r` of
/// word `c`.
fn transpose64(a: &mut [u64; 64]) {
    let mut j = 32usize;
    let mut m: u64 = 0x0000_0000_FFFF_FFFF;
    while j != 0 {
        let mut k = 0usize;
        while k < 64 {
            let t = ((a[k] >> j) ^ a[k + j]) & m;
            a[k + j] ^= t;
            a[k] ^= t << j;
            k = (k + j + 1) & !j;
        }
        j >>= 1;
        m ^= m << j;
    }
}

/// Columns (`K` of them, `w` words each, column-major) to `64 w` rows.
fn cols_to_rows(cols: &[u64], w: usize) -> Vec<Row> {
    let mut rows = vec![[0u64; CODE_WORDS]; w * 64];
    let mut a = [0u64; 64];
    for cb in 0..CODE_WORDS {
        for rb in 0..w {
            for (i, x) in a.iter_mut().enumerate() {
                *x = cols[(cb * 64 + i) * w + rb];
            }
            transpose64(&mut a);
            for (jj, x) in a.iter().enumerate() {
                rows[rb * 64 + jj][cb] = *x;
            }
        }
    }
    rows
}

/// Rows back to columns.
fn rows_to_cols(rows: &[Row]) -> Vec<u64> {
    let w = rows.len() / 64;
    let mut cols = vec![0u64; K * w];
    let mut a = [0u64; 64];
    for cb in 0..CODE_WORDS {
        for rb in 0..w {
            for (jj, x) in a.iter_mut().enumerate() {
                *x = rows[rb * 64 + jj][cb];
            }
            transpose64(&mut a);
            for (i, x) in a.iter().enumerate() {
                cols[(cb * 64 + i) * w + rb] = *x;
            }
        }
    }
    cols
}

/// `H(j, row)`, `len` bytes.
fn oprf_value(j: usize, row: &Row, len: usize) -> u128 {
    let mut h = Sha256::new();
    h.update((j as u64).to_le_bytes());
    for w in row {
        h.update(w.to_le_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b[..len].copy_from_slice(&d[..len]);
    u128::from_le_bytes(b)
}

fn ot_key(i: usize, a: &RistrettoPoint, b: &RistrettoPoint, shared: &RistrettoPoint) -> [u8; 16] {
    let d = Sha256::new()
        .chain_update(DOMAIN)
        .chain_update(b"base-ot")
        .chain_update((i as u64).to_le_bytes())
        .chain_update(a.compress().as_bytes())
        .chain_update(b.compress().as_bytes())
        .chain_update(shared.compress().as_bytes())
        .finalize();
    d[..16].try_into().expect("16 bytes")
}

fn random_scalar() -> Scalar {
    let mut wide = [0u8; 64];
    rand::thread_rng().fill_bytes(&mut wide);
    Scalar::from_bytes_mod_order_wide(&wide)
}

fn point(b: &[u8]) -> Result<RistrettoPoint, PrivacyError> {
    CompressedRistretto::from_slice(b)
        .ok()
        .and_then(|c| c.decompress())
        .ok_or_else(|| bad("a point that is not on ristretto255"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn words_to_bytes(w: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(w.len() * 8);
    for x in w {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PrivacyError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| bad(format!("worker: {e}")))
}

/// The chunks of an `m`-row table: (first row, words per column).
fn chunks(m: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..m)
        .step_by(CHUNK_ROWS)
        .map(move |s| (s, (m - s).min(CHUNK_ROWS) / 64))
}

impl PsiOt {
    async fn receiver(
        peers: &mut Peers,
        params: &PsiParams,
        keys: Vec<String>,
    ) -> Result<Ran<PsiOutput>, PrivacyError> {
        let session = peers.with(1 - peers.me())?;
        let job = params.job;
        let n = keys.len();
        let (keys, ds, bins, table) = off_thread(move || {
            let ds: Vec<u128> = keys.iter().map(|k| digest(&job, k)).collect();
            let m = table_size(ds.len());
            for _ in 0..16 {
                let bins = Bins {
                    m,
                    seed: rand::thread_rng().gen(),
                };
                if let Some(t) = bins.place(&ds) {
                    return Ok((keys, ds, bins, t));
                }
            }
            Err(bad("cuckoo hashing failed 16 times"))
        })
        .await??;
        let a = random_scalar();
        let big_a = &a * RISTRETTO_BASEPOINT_TABLE;
        let mut hello = Vec::with_capacity(56);
        hello.extend_from_slice(&(n as u64).to_le_bytes());
        hello.extend_from_slice(&(bins.m as u64).to_le_bytes());
        hello.extend_from_slice(&bins.seed.to_le_bytes());
        hello.extend_from_slice(big_a.compress().as_bytes());
        session.send(&hello).await?;
        let theirs = session.recv().await?;
        if theirs.len() != 8 + 32 + K * 32 {
            return Err(bad(format!("a psi-ot hello of {} bytes", theirs.len())));
        }
        let n_s = u64_at(&theirs, 0) as usize;
        if n_s > params.max_set {
            return Err(bad(format!(
                "a set of {n_s} keys, over the job's {}",
                params.max_set
            )));
        }
        let code_seed: [u8; 32] = theirs[8..40].try_into().expect("32 bytes");
        let pts: Vec<Vec<u8>> = theirs[40..].chunks(32).map(<[u8]>::to_vec).collect();
        let seeds = off_thread(move || {
            let mut seeds = Vec::with_capacity(K);
            for (i, p) in pts.iter().enumerate() {
                let b = point(p)?;
                seeds.push((
                    ot_key(i, &big_a, &b, &(a * b)),
                    ot_key(i, &big_a, &b, &(a * (b - big_a))),
                ));
            }
            Ok::<_, PrivacyError>(seeds)
        })
        .await??;
        let len = value_len(n, n_s);
        let code = Code::new(&code_seed, &job);

        // Expand and send the matrix chunk by chunk while keeping our own
        // OPRF values; the worker runs ahead of the network by a few chunks.
        let (chunk_tx, mut chunk_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let (ds2, table2, m) = (ds, table, bins.m);
        let worker = tokio::task::spawn_blocking(move || {
            let mut rng = rand::thread_rng();
            let mut owner: std::collections::HashMap<(u8, u128), u32> =
                std::collections::HashMap::with_capacity(ds2.len());
            for (start, w) in chunks(m) {
                let rows: Vec<Row> = (start..start + w * 64)
                    .map(|j| match table2[j] {
                        Some((i, h)) => code.word(ds2[i as usize], h),
                        None => std::array::from_fn(|_| rng.gen()),
                    })
                    .collect();
                let mut u = rows_to_cols(&rows);
                let mut t = vec![0u64; K * w];
                for (i, (k0, k1)) in seeds.iter().enumerate() {
                    let col = &mut t[i * w..(i + 1) * w];
                    prg_xor(k0, start / 64, col);
                    let uc = &mut u[i * w..(i + 1) * w];
                    prg_xor(k1, start / 64, uc);
                    for (x, y) in uc.iter_mut().zip(col.iter()) {
                        *x ^= *y;
                    }
                }
                if chunk_tx.blocking_send(words_to_bytes(&u)).is_err() {
                    break;
                }
                let trows = cols_to_rows(&t, w);
                for (r, j) in (start..start + w * 64).enumerate() {
                    if let Some((i, h)) = table2[j] {
                        owner.insert((h, oprf_value(j, &trows[r], len)), i);
                    }
                }
            }
            owner
        });
        while let Some(chunk) = chunk_rx.recv().await {
            session.send(&chunk).await?;
        }
        let owner = worker.await.map_err(|e| bad(format!("worker: {e}")))?;

        // S's three lists.
        let mut hit = vec![false; n];
        for h in 0..3u8 {
            let mut left = n_s;
            while left > 0 {
                let want = left.min(VALUES_PER_MESSAGE);
                let b = session.recv().await?;
                if b.len() != want * len {
                    return Err(bad(format!(
                        "a list batch of {} bytes, {} expected",
                        b.len(),
                        want * len
                    )));
                }
                for v in b.chunks_exact(len) {
                    let mut x = [0u8; 16];
                    x[..len].copy_from_slice(v);
                    if let Some(i) = owner.get(&(h, u128::from_le_bytes(x))) {
                        hit[*i as usize] = true;
                    }
                }
                left -= want;
            }
        }
        let mut both: Vec<String> = keys
            .into_iter()
            .zip(hit)
            .filter(|(_, h)| *h)
            .map(|(k, _)| k)
            .collect();
        both.sort();
        let out = if params.cardinality {
            PsiOutput::Size(both.len())
        } else {
            PsiOutput::Intersection(both)
        };
        Ok(Ran::of(out, peers))
    }

    async fn sender(
        peers: &mut Peers,
        params: &PsiParams,
        keys: Vec<String>,
    ) -> Result<Ran<PsiOutput>, PrivacyError> {
        let session = peers.with(1 - peers.me())?;
        let job = params.job;
        let n = keys.len();
        let hello = session.recv().await?;
        if hello.len() != 56 {
            return Err(bad(format!("a psi-ot hello of {} bytes", hello.len())));
        }
        let n_r = u64_at(&hello, 0) as usize;
        let m = u64_at(&hello, 8) as usize;
        let seed = u64_at(&hello, 16);
        if n_r > params.max_set {
            return Err(bad(format!(
                "a set of {n_r} keys, over the job's {}",
                params.max_set
            )));
        }
        if m % 64 != 0 || m < n_r || m > 2 * n_r + (1 << 16) {
            return Err(bad(format!("a table of {m} bins for {n_r} keys")));
        }
        let big_a = point(&hello[24..56])?;
        let bins = Bins { m, seed };
        let mut s = [0u64; CODE_WORDS];
        rand::thread_rng().fill(&mut s[..]);
        let mut code_seed = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut code_seed);
        let (msg, keys_s) = off_thread(move || {
            let mut msg = Vec::with_capacity(8 + 32 + K * 32);
            msg.extend_from_slice(&(n as u64).to_le_bytes());
            msg.extend_from_slice(&code_seed);
            let mut ks = Vec::with_capacity(K);
            for i in 0..K {
                let b = random_scalar();
                let mut big_b = &b * RISTRETTO_BASEPOINT_TABLE;
                if (s[i / 64] >> (i % 64)) & 1 == 1 {
                    big_b += big_a;
                }
                msg.extend_from_slice(big_b.compress().as_bytes());
                ks.push(ot_key(i, &big_a, &big_b, &(b * big_a)));
            }
            (msg, ks)
        })
        .await?;
        session.send(&msg).await?;
        let len = value_len(n_r, n);
        let code = Code::new(&code_seed, &job);

        // Each key in each of its three bins, by bin.
        let (chunk_tx, mut chunk_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let worker = tokio::task::spawn_blocking(move || {
            let ds: Vec<u128> = keys.iter().map(|k| digest(&job, k)).collect();
            let mut slots: Vec<(u32, u32, u8)> = Vec::with_capacity(3 * ds.len());
            for (i, d) in ds.iter().enumerate() {
                for h in 0..3u8 {
                    slots.push((bins.bin(*d, h as usize) as u32, i as u32, h));
                }
            }
            slots.sort_unstable();
            let mut out = vec![vec![0u8; ds.len() * len]; 3];
            let mut next = 0usize;
            for (start, w) in chunks(m) {
                let Some(u) = chunk_rx.blocking_recv() else {
                    return Err(bad("the matrix ended early"));
                };
                if u.len() != K * w * 8 {
                    return Err(bad(format!(
                        "a matrix chunk of {} bytes, {} expected",
                        u.len(),
                        K * w * 8
                    )));
                }
                let mut q = vec![0u64; K * w];
                for (i, k) in keys_s.iter().enumerate() {
                    let col = &mut q[i * w..(i + 1) * w];
                    prg_xor(k, start / 64, col);
                    if (s[i / 64] >> (i % 64)) & 1 == 1 {
                        let uc = &u[i * w * 8..(i + 1) * w * 8];
                        for (x, b) in col.iter_mut().zip(uc.chunks_exact(8)) {
                            *x ^= u64::from_le_bytes(b.try_into().expect("8 bytes"));
                        }
                    }
                }
                let qrows = cols_to_rows(&q, w);
                let end = start + w * 64;
                while next < slots.len() && (slots[next].0 as usize) < end {
                    let (j, i, h) = slots[next];
                    let c = code.word(ds[i as usize], h);
                    let row: Row =
                        std::array::from_fn(|x| qrows[j as usize - start][x] ^ (c[x] & s[x]));
                    let v = oprf_value(j as usize, &row, len).to_le_bytes();
                    let at = i as usize * len;
                    out[h as usize][at..at + len].copy_from_slice(&v[..len]);
                    next += 1;
                }
            }
            // One shuffled list per hash function.
            let mut rng = rand::thread_rng();
            let mut order: Vec<usize> = (0..ds.len()).collect();
            let mut shuffled = Vec::with_capacity(3);
            for list in out {
                rand::seq::SliceRandom::shuffle(&mut order[..], &mut rng);
                let mut l = Vec::with_capacity(list.len());
                for &i in &order {
                    l.extend_from_slice(&list[i * len..(i + 1) * len]);
                }
                shuffled.push(l);
            }
            Ok(shuffled)
        });
        let mut got = chunks(m).count();
        while got > 0 {
            let c = session.recv().await?;
            got -= 1;
            if chunk_tx.send(c).await.is_err() {
                break;
            }
        }
        drop(chunk_tx);
        let lists = worker.await.map_err(|e| bad(format!("worker: {e}")))??;
        for l in lists {
            for batch in l.chunks(VALUES_PER_MESSAGE * len) {
                session.send(batch).await?;
            }
        }
        Ok(Ran::of(PsiOutput::Nothing, peers))
    }
}

#[async_trait]
impl PrivacyProtocol for PsiOt {
    type Params = PsiParams;
    type Input = PsiInput;
    type Output = PsiOutput;

    fn id(&self) -> &'static str {
        "psi-ot"
    }

    fn roles(&self) -> &'static [&'static str] {
        &["receiver", "sender"]
    }

    async fn run(
        &self,
        role: usize,
        peers: &mut Peers,
        params: &PsiParams,
        input: PsiInput,
    ) -> Result<Ran<PsiOutput>, PrivacyError> {
        peers.check_role(role)?;
        let keys = normalise(&input.keys);
        match role {
            0 => Self::receiver(peers, params, keys).await,
            1 => Self::sender(peers, params, keys).await,
            r => Err(bad(format!("psi-ot has roles 0 and 1, not {r}"))),
        }
    }

    fn reference(&self, params: &PsiParams, inputs: Vec<PsiInput>) -> Vec<PsiOutput> {
        psi_reference(params, &inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_are_exact() {
        let mut rng = rand::thread_rng();
        let orig: [u64; 64] = std::array::from_fn(|_| rng.gen());
        let mut a = orig;
        transpose64(&mut a);
        for (r, row) in orig.iter().enumerate() {
            for (c, col) in a.iter().enumerate() {
                assert_eq!((col >> r) & 1, (row >> c) & 1);
            }
        }
        let rows: Vec<Row> = (0..128)
            .map(|_| std::array::from_fn(|_| rng.gen()))
            .collect();
        let cols = rows_to_cols(&rows);
        // Column i, row j is bit (i % 64) of word i / 64 of row j.
        for (j, row) in rows.iter().enumerate() {
            for i in [0usize, 5, 63, 64, 200, K - 1] {
                let bit = (cols[i * 2 + j / 64] >> (j % 64)) & 1;
                assert_eq!(bit, (row[i / 64] >> (i % 64)) & 1);
            }
        }
        assert_eq!(cols_to_rows(&cols, 2), rows);
    }

    #[test]
    fn cuckoo_tables_hold_every_key_once() {
        let ds: Vec<u128> = (0..10_000u128)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c))
            .collect();
        let bins = Bins {
            m: table_size(ds.len()),
            seed: 7,
        };
        let t = bins.place(&ds).expect("fits");
        let mut seen: Vec<u32> = t.iter().flatten().map(|(i, _)| *i).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..10_000).collect::<Vec<u32>>());
        for (b, slot) in t.iter().enumerate() {
            if let Some((i, h)) = slot {
                assert_eq!(bins.bin(ds[*i as usize], *h as usize), b);
            }
        }
    }

    #[test]
    fn value_lengths_keep_false_matches_rare() {
        assert_eq!(value_len(1 << 20, 1 << 20), 11);
        assert_eq!(value_len(1, 1), 6);
        assert!(value_len(1 << 24, 1 << 24) <= 16);
    }
}
