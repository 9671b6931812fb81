//! The secret-sharing engine: fixed-point arithmetic over the ring
//! Z_2^64 (or Z_2^128 where sums of products need the room), replicated
//! among three parties.
//!
//! **Sharing.** A value `x` is `x0 + x1 + x2` (wrapping); party `i` holds
//! `(x_i, x_{i+1})`, so any two parties together hold `x` and any one
//! alone sees uniformly random values. Each pair of neighbours shares an
//! AES key (party `i` chooses the key it shares with `i+1` and sends it
//! once), from which both derive the same pseudorandom words; the keys
//! give zero-sharings and the shares a party never has to send.
//!
//! **Operations**, all on whole vectors at once (one network round per
//! layer of operations, never per element):
//! - input by one party: two words per value sent;
//! - add, subtract, multiply by a public constant: local;
//! - multiply: each party sums three cross terms plus its zero-sharing
//!   and sends one word per value to its predecessor (ABY3);
//! - dot product: the cross terms summed before the one word goes out;
//! - matrix product: one word per output cell;
//! - truncation and division by a public integer: parties 0 and 1 hold
//!   `x = x0 + (x1 + x2)` as two additive shares, divide them locally
//!   (SecureML's probabilistic truncation: the result is off by at most
//!   one unit in the last place, and wrong with probability about
//!   `|x| / 2^ℓ`, so values must stay far below the ring's size) and
//!   re-share to three with the neighbours' keys, two words per value;
//! - sigmoid: the degree-3 least-squares polynomial on [-8, 8],
//!   `0.5 + 0.15012 x - 0.0015930 x^3` (as in logistic regression on
//!   encrypted data, Kim et al. 2018; within 0.114 of the logistic
//!   function there, useless outside; two multiplications and a division);
//! - reveal to one named party (one word per value from its successor),
//!   or to all.
//!
//! **Security**: semi-honest parties and an honest majority (no two
//! parties collude); AES as a PRF. A party learns nothing but the values
//! revealed to it.

use crate::protocol::Peers;
use crate::session::Session;
use crate::PrivacyError;
use aes::cipher::{KeyIvInit, StreamCipher};
use aes::Aes128;
use rand::RngCore;

type Ctr = ctr::Ctr128LE<Aes128>;

/// A ring Z_2^k the engine computes in.
pub trait Ring: Copy + Default + PartialEq + Send + Sync + std::fmt::Debug + 'static {
    /// Bytes per element.
    const BYTES: usize;
    /// Wrapping addition.
    fn add(self, o: Self) -> Self;
    /// Wrapping subtraction.
    fn sub(self, o: Self) -> Self;
    /// Wrapping multiplication.
    fn mul(self, o: Self) -> Self;
    /// Unsigned floor division by a public integer.
    fn div_floor(self, d: u64) -> Self;
    /// From little-endian bytes (`BYTES` of them).
    fn from_le(b: &[u8]) -> Self;
    /// Append as little-endian bytes.
    fn put(self, out: &mut Vec<u8>);
    /// The fixed-point encoding of `v` with `frac` fractional bits.
    fn encode(v: f64, frac: u32) -> Self;
    /// The value of a fixed-point element with `frac` fractional bits.
    fn decode(self, frac: u32) -> f64;
    /// Bits per element.
    const BITS: u32;
    /// Bitwise XOR.
    fn xor(self, o: Self) -> Self;
    /// Bitwise AND.
    fn and(self, o: Self) -> Self;
    /// Shift left by `d` bits.
    fn shl(self, d: u32) -> Self;
    /// Bit `i` (0 or 1, as a ring element).
    fn bit(self, i: u32) -> Self;
    /// The ring's 1.
    fn one() -> Self;
}

/// `Ring` for an unsigned integer type `$t`, with `$s` its signed twin
/// (fixed point is two's complement).
macro_rules! ring {
    ($t:ty, $s:ty) => {
        impl Ring for $t {
            const BYTES: usize = std::mem::size_of::<$t>();
            const BITS: u32 = <$t>::BITS;
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            fn sub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            fn div_floor(self, d: u64) -> Self {
                self / d as $t
            }
            fn from_le(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b.try_into().expect("an element's bytes"))
            }
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn encode(v: f64, frac: u32) -> Self {
                (v * (frac as f64).exp2()).round() as $s as $t
            }
            fn decode(self, frac: u32) -> f64 {
                self as $s as f64 / (frac as f64).exp2()
            }
            fn xor(self, o: Self) -> Self {
                self ^ o
            }
            fn and(self, o: Self) -> Self {
                self & o
            }
            fn shl(self, d: u32) -> Self {
                self << d
            }
            fn bit(self, i: u32) -> Self {
                (self >> i) & 1
            }
            fn one() -> Self {
                1
            }
        }
    };
}

ring!(u64, i64);
ring!(u128, i128);

/// One party's shares of a vector: `(x_i, x_{i+1})` for each element.
#[derive(Clone, Debug, PartialEq)]
pub struct Shared<R> {
    /// `x_i`.
    pub a: Vec<R>,
    /// `x_{i+1}`.
    pub b: Vec<R>,
}

impl<R: Ring> Shared<R> {
    /// Its length.
    pub fn len(&self) -> usize {
        self.a.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }

    /// `self + o`, elementwise (local).
    pub fn add(&self, o: &Shared<R>) -> Shared<R> {
        Shared {
            a: self.a.iter().zip(&o.a).map(|(x, y)| x.add(*y)).collect(),
            b: self.b.iter().zip(&o.b).map(|(x, y)| x.add(*y)).collect(),
        }
    }

    /// `self - o`, elementwise (local).
    pub fn sub(&self, o: &Shared<R>) -> Shared<R> {
        Shared {
            a: self.a.iter().zip(&o.a).map(|(x, y)| x.sub(*y)).collect(),
            b: self.b.iter().zip(&o.b).map(|(x, y)| x.sub(*y)).collect(),
        }
    }

    /// Times a public ring element (local; a fixed-point constant needs a
    /// truncation after).
    pub fn scale(&self, c: R) -> Shared<R> {
        Shared {
            a: self.a.iter().map(|x| x.mul(c)).collect(),
            b: self.b.iter().map(|x| x.mul(c)).collect(),
        }
    }

    /// The sum of its elements (local), as a vector of one.
    pub fn sum(&self) -> Shared<R> {
        Shared {
            a: vec![self.a.iter().fold(R::default(), |s, x| s.add(*x))],
            b: vec![self.b.iter().fold(R::default(), |s, x| s.add(*x))],
        }
    }

    /// Elements `range` (local).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Shared<R> {
        Shared {
            a: self.a[range.clone()].to_vec(),
            b: self.b[range].to_vec(),
        }
    }

    /// Both vectors one after the other (local).
    pub fn concat(parts: &[&Shared<R>]) -> Shared<R> {
        Shared {
            a: parts.iter().flat_map(|p| p.a.iter().copied()).collect(),
            b: parts.iter().flat_map(|p| p.b.iter().copied()).collect(),
        }
    }
}

fn bytes_of<R: Ring>(v: &[R]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * R::BYTES);
    for x in v {
        x.put(&mut out);
    }
    out
}

fn ring_of<R: Ring>(b: &[u8], n: usize) -> Result<Vec<R>, PrivacyError> {
    if b.len() != n * R::BYTES {
        return Err(PrivacyError::BadMessage(format!(
            "{} bytes of shares, {} expected",
            b.len(),
            n * R::BYTES
        )));
    }
    Ok(b.chunks_exact(R::BYTES).map(R::from_le).collect())
}

/// Bytes per message (messages stay far below the session's bound).
const MESSAGE_BYTES: usize = 8 << 20;

/// Send `bytes` in messages of [`MESSAGE_BYTES`] (one empty message for
/// nothing, so the other side always reads one).
async fn send_all(s: &mut Session, bytes: &[u8]) -> Result<(), PrivacyError> {
    for chunk in bytes
        .chunks(MESSAGE_BYTES)
        .chain(bytes.is_empty().then_some(&[][..]))
    {
        s.send(chunk).await?;
    }
    Ok(())
}

/// Receive `n` ring elements sent by [`send_all`].
async fn recv_all<R: Ring>(s: &mut Session, n: usize) -> Result<Vec<R>, PrivacyError> {
    let per = MESSAGE_BYTES / R::BYTES;
    let mut out = Vec::with_capacity(n);
    loop {
        let want = (n - out.len()).min(per);
        let b = s.recv().await?;
        out.extend(ring_of::<R>(&b, want)?);
        if out.len() == n {
            return Ok(out);
        }
    }
}

/// One party of a three-party replicated-sharing computation.
pub struct Rss3<'p> {
    me: usize,
    peers: &'p mut Peers,
    with_next: [u8; 16],
    with_prev: [u8; 16],
    counter: u64,
    /// Fractional bits of the fixed-point encoding.
    pub frac: u32,
}

impl<'p> Rss3<'p> {
    /// Set up role `me` (0, 1 or 2) over its sessions with the other two:
    /// exchange the neighbours' PRF keys.
    pub async fn setup(peers: &'p mut Peers, frac: u32) -> Result<Rss3<'p>, PrivacyError> {
        let me = peers.me();
        if me > 2 {
            return Err(PrivacyError::BadMessage(format!(
                "three parties, not role {me}"
            )));
        }
        let mut with_next = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut with_next);
        let (next, prev) = peers.pair((me + 1) % 3, (me + 2) % 3)?;
        let (sent, got) = tokio::join!(next.send(&with_next), prev.recv());
        sent?;
        let with_prev: [u8; 16] = got?
            .try_into()
            .map_err(|_| PrivacyError::BadMessage("a PRF key is 16 bytes".into()))?;
        Ok(Rss3 {
            me,
            peers,
            with_next,
            with_prev,
            counter: 0,
            frac,
        })
    }

    /// This party's role.
    pub fn me(&self) -> usize {
        self.me
    }

    /// The next call's PRF counter (every party advances it alike).
    fn tick(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn prf<R: Ring>(key: &[u8; 16], counter: u64, n: usize) -> Vec<R> {
        let mut iv = [0u8; 16];
        iv[8..].copy_from_slice(&counter.to_le_bytes());
        let mut c = Ctr::new(key.into(), &iv.into());
        let mut buf = vec![0u8; n * R::BYTES];
        c.apply_keystream(&mut buf);
        buf.chunks_exact(R::BYTES).map(R::from_le).collect()
    }

    async fn send_to(&mut self, role: usize, v: &[u8]) -> Result<(), PrivacyError> {
        send_all(self.peers.with(role)?, v).await
    }

    async fn recv_from<R: Ring>(&mut self, role: usize, n: usize) -> Result<Vec<R>, PrivacyError> {
        recv_all(self.peers.with(role)?, n).await
    }

    /// Send `v` to the predecessor and receive as many from the successor
    /// at once.
    async fn pass_back<R: Ring>(&mut self, v: &[R]) -> Result<Vec<R>, PrivacyError> {
        let (prev, next) = ((self.me + 2) % 3, (self.me + 1) % 3);
        let bytes = bytes_of(v);
        let (p, nx) = self.peers.pair(prev, next)?;
        let (s, r) = tokio::join!(send_all(p, &bytes), recv_all::<R>(nx, v.len()));
        s?;
        r
    }

    /// Share `n` values that party `owner` holds (`Some` there, `None`
    /// elsewhere).
    pub async fn input<R: Ring>(
        &mut self,
        owner: usize,
        values: Option<&[R]>,
        n: usize,
    ) -> Result<Shared<R>, PrivacyError> {
        let c = self.tick();
        let me = self.me;
        if me == owner {
            let values = values.ok_or_else(|| PrivacyError::BadMessage("no input".into()))?;
            if values.len() != n {
                return Err(PrivacyError::BadMessage("input of the wrong length".into()));
            }
            let x0: Vec<R> = Self::prf(&self.with_prev, c, n);
            let x1: Vec<R> = Self::prf(&self.with_next, c, n);
            let x2: Vec<R> = values
                .iter()
                .zip(x0.iter().zip(&x1))
                .map(|(v, (a, b))| v.sub(*a).sub(*b))
                .collect();
            let bytes = bytes_of(&x2);
            let (next, prev) = ((me + 1) % 3, (me + 2) % 3);
            let (n_s, p_s) = self.peers.pair(next, prev)?;
            let (a, b) = tokio::join!(send_all(n_s, &bytes), send_all(p_s, &bytes));
            a?;
            b?;
            Ok(Shared { a: x0, b: x1 })
        } else if me == (owner + 1) % 3 {
            let x1: Vec<R> = Self::prf(&self.with_prev, c, n);
            let x2 = self.recv_from::<R>(owner, n).await?;
            Ok(Shared { a: x1, b: x2 })
        } else {
            let x0: Vec<R> = Self::prf(&self.with_next, c, n);
            let x2 = self.recv_from::<R>(owner, n).await?;
            Ok(Shared { a: x2, b: x0 })
        }
    }

    /// A zero-sharing of `n` elements: this party's summand.
    fn zeros<R: Ring>(&mut self, n: usize) -> Vec<R> {
        let c = self.tick();
        let mine: Vec<R> = Self::prf(&self.with_next, c, n);
        let theirs: Vec<R> = Self::prf(&self.with_prev, c, n);
        mine.into_iter()
            .zip(theirs)
            .map(|(a, b)| a.sub(b))
            .collect()
    }

    /// Re-share this party's summands `z` (of a 3-out-of-3 sharing) to
    /// replicated shares: one round.
    async fn reshare<R: Ring>(&mut self, z: Vec<R>) -> Result<Shared<R>, PrivacyError> {
        let alpha = self.zeros::<R>(z.len());
        let z: Vec<R> = z.into_iter().zip(alpha).map(|(x, a)| x.add(a)).collect();
        let next = self.pass_back(&z).await?;
        Ok(Shared { a: z, b: next })
    }

    /// `x * y`, elementwise, in the ring (fixed-point values then carry
    /// twice the fractional bits: truncate after).
    pub async fn mul<R: Ring>(
        &mut self,
        x: &Shared<R>,
        y: &Shared<R>,
    ) -> Result<Shared<R>, PrivacyError> {
        let z: Vec<R> = (0..x.len())
            .map(|k| {
                x.a[k]
                    .mul(y.a[k])
                    .add(x.a[k].mul(y.b[k]))
                    .add(x.b[k].mul(y.a[k]))
            })
            .collect();
        self.reshare(z).await
    }

    /// `Σ x_k y_k` over each of `groups` equal consecutive groups (one
    /// value per group), in the ring.
    pub async fn dot<R: Ring>(
        &mut self,
        x: &Shared<R>,
        y: &Shared<R>,
        groups: usize,
    ) -> Result<Shared<R>, PrivacyError> {
        let len = x.len() / groups.max(1);
        let parts: Vec<(Shared<R>, Shared<R>)> = (0..groups)
            .map(|g| {
                (
                    x.slice(g * len..(g + 1) * len),
                    y.slice(g * len..(g + 1) * len),
                )
            })
            .collect();
        let refs: Vec<(&Shared<R>, &Shared<R>)> = parts.iter().map(|(a, b)| (a, b)).collect();
        self.dots(&refs).await
    }

    /// `Σ x_k y_k` for each pair of equally long vectors, in the ring, in
    /// one round (one word per pair).
    pub async fn dots<R: Ring>(
        &mut self,
        pairs: &[(&Shared<R>, &Shared<R>)],
    ) -> Result<Shared<R>, PrivacyError> {
        let z: Vec<R> = pairs
            .iter()
            .map(|(x, y)| {
                // xa ya + xa yb + xb ya = xa (ya + yb) + xb ya
                x.a.iter()
                    .zip(&x.b)
                    .zip(y.a.iter().zip(&y.b))
                    .fold(R::default(), |s, ((xa, xb), (ya, yb))| {
                        s.add(xa.mul(ya.add(*yb))).add(xb.mul(*ya))
                    })
            })
            .collect();
        self.reshare(z).await
    }

    /// The matrix product of `x` (`rows × inner`, row-major) and `y`
    /// (`inner × cols`), in the ring: one word per output cell.
    pub async fn matmul<R: Ring>(
        &mut self,
        x: &Shared<R>,
        y: &Shared<R>,
        rows: usize,
        inner: usize,
        cols: usize,
    ) -> Result<Shared<R>, PrivacyError> {
        if x.len() != rows * inner || y.len() != inner * cols {
            return Err(PrivacyError::BadMessage("matrix shapes differ".into()));
        }
        let mut z = vec![R::default(); rows * cols];
        for r in 0..rows {
            for k in 0..inner {
                let (xa, xb) = (x.a[r * inner + k], x.b[r * inner + k]);
                let xs = xa.add(xb);
                for c in 0..cols {
                    let (ya, yb) = (y.a[k * cols + c], y.b[k * cols + c]);
                    // xa ya + xa yb + xb ya = (xa + xb) ya + xa yb
                    z[r * cols + c] = z[r * cols + c].add(xs.mul(ya)).add(xa.mul(yb));
                }
            }
        }
        self.reshare(z).await
    }

    /// `x / d` for a public `d > 0`, elementwise (probabilistic: see the
    /// module's notes); `d = 2^frac` is the truncation after a product.
    pub async fn div_public<R: Ring>(
        &mut self,
        x: &Shared<R>,
        d: u64,
    ) -> Result<Shared<R>, PrivacyError> {
        let d = d.max(1);
        let c = self.tick();
        let n = x.len();
        match self.me {
            0 => {
                let s: Vec<R> = Self::prf(&self.with_prev, c, n);
                let m0: Vec<R> =
                    x.a.iter()
                        .zip(&s)
                        .map(|(u, s)| u.div_floor(d).sub(*s))
                        .collect();
                // 0 sends first, 1 answers: no wait on each other.
                self.send_to(1, &bytes_of(&m0)).await?;
                let m1 = self.recv_from::<R>(1, n).await?;
                let y1 = m0.iter().zip(&m1).map(|(a, b)| a.add(*b)).collect();
                Ok(Shared { a: s, b: y1 })
            }
            1 => {
                let r: Vec<R> = Self::prf(&self.with_next, c, n);
                let m1: Vec<R> =
                    x.a.iter()
                        .zip(&x.b)
                        .zip(&r)
                        .map(|((a, b), r)| {
                            let u1 = a.add(*b);
                            R::default().sub(R::default().sub(u1).div_floor(d)).sub(*r)
                        })
                        .collect();
                let m0 = self.recv_from::<R>(0, n).await?;
                self.send_to(0, &bytes_of(&m1)).await?;
                let y1 = m0.iter().zip(&m1).map(|(a, b)| a.add(*b)).collect();
                Ok(Shared { a: y1, b: r })
            }
            _ => {
                let r: Vec<R> = Self::prf(&self.with_prev, c, n);
                let s: Vec<R> = Self::prf(&self.with_next, c, n);
                Ok(Shared { a: r, b: s })
            }
        }
    }

    /// Truncate a product of two fixed-point values back to `frac` bits.
    pub async fn trunc<R: Ring>(&mut self, x: &Shared<R>) -> Result<Shared<R>, PrivacyError> {
        let d = 1u64 << self.frac;
        self.div_public(x, d).await
    }

    /// Fixed-point `x * y`, elementwise (a product and a truncation).
    pub async fn mul_fixed<R: Ring>(
        &mut self,
        x: &Shared<R>,
        y: &Shared<R>,
    ) -> Result<Shared<R>, PrivacyError> {
        let p = self.mul(x, y).await?;
        self.trunc(&p).await
    }

    /// A public fixed-point constant as shares (party 0's first share
    /// holds it, so the three sum to it).
    pub fn constant<R: Ring>(&self, v: f64, n: usize) -> Shared<R> {
        let c = R::encode(v, self.frac);
        let z = vec![R::default(); n];
        match self.me {
            0 => Shared {
                a: vec![c; n],
                b: z,
            },
            1 => Shared { a: z.clone(), b: z },
            _ => Shared {
                a: z,
                b: vec![c; n],
            },
        }
    }

    /// Fixed-point sigmoid, elementwise, by the degree-3 least-squares
    /// polynomial on [-8, 8] (outside it the polynomial leaves (0, 1)).
    pub async fn sigmoid<R: Ring>(&mut self, x: &Shared<R>) -> Result<Shared<R>, PrivacyError> {
        let f = self.frac;
        let x2 = self.mul_fixed(x, x).await?;
        let x3 = self.mul_fixed(&x2, x).await?;
        // c1 x - c3 x^3 with the coefficients at f + 8 bits (at f bits
        // alone c3 would be off by 0.4%), then one division.
        let lin = x
            .scale(R::encode(0.15012, f + 8))
            .sub(&x3.scale(R::encode(0.001_593, f + 8)));
        let t = self.div_public(&lin, 1u64 << (f + 8)).await?;
        Ok(t.add(&self.constant(0.5, x.len())))
    }

    /// The three summands of `x` (`x_0`, `x_1`, `x_2`, each known to two
    /// parties) as three sharings of their own, party `i` holding `x_j`
    /// in sharing `j` where it knows it and 0 elsewhere: their sum (or
    /// XOR) is `x`, and no party needs to send anything.
    fn summands<R: Ring>(&self, x: &Shared<R>) -> [Shared<R>; 3] {
        let z = vec![R::default(); x.len()];
        let only = |a: &Vec<R>, first: bool| {
            if first {
                Shared {
                    a: a.clone(),
                    b: z.clone(),
                }
            } else {
                Shared {
                    a: z.clone(),
                    b: a.clone(),
                }
            }
        };
        let none = Shared {
            a: z.clone(),
            b: z.clone(),
        };
        // Party i holds (x_i, x_{i+1}): x_i is the first share of sharing
        // i, x_{i+1} the second share of sharing i + 1.
        match self.me {
            0 => [only(&x.a, true), only(&x.b, false), none],
            1 => [none, only(&x.a, true), only(&x.b, false)],
            _ => [only(&x.b, false), none, only(&x.a, true)],
        }
    }

    /// Boolean AND of XOR-shared 64-bit words, elementwise: one word per
    /// element, one round (the XOR twin of [`Rss3::mul`]).
    pub async fn and<R: Ring>(
        &mut self,
        x: &Shared<R>,
        y: &Shared<R>,
    ) -> Result<Shared<R>, PrivacyError> {
        let c = self.tick();
        let n = x.len();
        let mine: Vec<R> = Self::prf(&self.with_next, c, n);
        let theirs: Vec<R> = Self::prf(&self.with_prev, c, n);
        let z: Vec<R> = (0..n)
            .map(|k| {
                x.a[k]
                    .and(y.a[k])
                    .xor(x.a[k].and(y.b[k]))
                    .xor(x.b[k].and(y.a[k]))
                    .xor(mine[k])
                    .xor(theirs[k])
            })
            .collect();
        let next = self.pass_back(&z).await?;
        Ok(Shared { a: z, b: next })
    }

    /// The sign bit of each element of `x`, as an arithmetic
    /// share of 0 or 1: 1 where `x` is negative. The three arithmetic
    /// summands become XOR-shared words (each known to two parties), a
    /// carry-save adder makes them two, and a Kogge-Stone prefix finds
    /// the carry into the top bit: 1 + log2(bits) AND rounds (7 in
    /// Z_2^64, 8 in Z_2^128), then two rounds to turn the bit arithmetic.
    pub async fn msb<R: Ring>(&mut self, x: &Shared<R>) -> Result<Shared<R>, PrivacyError> {
        let n = x.len();
        // x0, x1, x2 as XOR sharings of their own.
        let [a, b, c] = self.summands(x);
        let xor = |p: &Shared<R>, q: &Shared<R>| Shared {
            a: p.a.iter().zip(&q.a).map(|(u, v)| u.xor(*v)).collect(),
            b: p.b.iter().zip(&q.b).map(|(u, v)| u.xor(*v)).collect(),
        };
        let shl = |p: &Shared<R>, d: u32| Shared {
            a: p.a.iter().map(|u| u.shl(d)).collect(),
            b: p.b.iter().map(|u| u.shl(d)).collect(),
        };
        // Carry-save: a + b + c = s + 2 maj(a, b, c).
        let ab = xor(&a, &b);
        let s = xor(&ab, &c);
        let both = self
            .and(&Shared::concat(&[&a, &c]), &Shared::concat(&[&b, &ab]))
            .await?;
        let maj = xor(&both.slice(0..n), &both.slice(n..2 * n));
        let t = shl(&maj, 1);
        // s + t: generate and propagate, prefix over the low 63 bits.
        let mut g = self.and(&s, &t).await?;
        let mut p = xor(&s, &t);
        let top = p.clone();
        let mut d = 1u32;
        while d < R::BITS {
            let r = self
                .and(
                    &Shared::concat(&[&p, &p]),
                    &Shared::concat(&[&shl(&g, d), &shl(&p, d)]),
                )
                .await?;
            g = xor(&g, &r.slice(0..n));
            p = r.slice(n..2 * n);
            d *= 2;
        }
        // The top bit of the sum: its s ^ t and the carry into it (the
        // prefix's generate one bit below).
        let (hi, lo) = (R::BITS - 1, R::BITS - 2);
        let bit = Shared {
            a: (0..n)
                .map(|k| top.a[k].bit(hi).xor(g.a[k].bit(lo)))
                .collect(),
            b: (0..n)
                .map(|k| top.b[k].bit(hi).xor(g.b[k].bit(lo)))
                .collect(),
        };
        self.b2a(&bit).await
    }

    /// XOR-shared bits (in bit 0) as arithmetic shares of 0 or 1: the
    /// three summands' XOR by `u ^ v = u + v - 2uv`, two rounds.
    async fn b2a<R: Ring>(&mut self, bit: &Shared<R>) -> Result<Shared<R>, PrivacyError> {
        // The XOR summands s0, s1, s2 as arithmetic sharings.
        let [s0, s1, s2] = self.summands(bit);
        let two = R::one().add(R::one());
        let m = self.mul(&s0, &s1).await?;
        let u = s0.add(&s1).sub(&m.scale(two));
        let m = self.mul(&u, &s2).await?;
        Ok(u.add(&s2).sub(&m.scale(two)))
    }

    /// 1 where `x >= 0`, else 0 (arithmetic shares, integers).
    pub async fn non_negative<R: Ring>(
        &mut self,
        x: &Shared<R>,
    ) -> Result<Shared<R>, PrivacyError> {
        let m = self.msb(x).await?;
        // 1 - msb, the 1 an integer (not fixed point): party 0's first
        // share, party 2's second.
        let n = x.len();
        let (z, one) = (vec![R::default(); n], vec![R::one(); n]);
        let ones = match self.me {
            0 => Shared { a: one, b: z },
            1 => Shared { a: z.clone(), b: z },
            _ => Shared { a: z, b: one },
        };
        Ok(ones.sub(&m))
    }

    /// `max(x, 0)`, elementwise (fixed point): a comparison and a product.
    pub async fn relu<R: Ring>(&mut self, x: &Shared<R>) -> Result<Shared<R>, PrivacyError> {
        let s = self.non_negative(x).await?;
        self.mul(x, &s).await
    }

    /// The clipped-linear sigmoid (SecureML): 0 below -1/2, `x + 1/2`
    /// between, 1 above; `relu(x + 1/2) - relu(x - 1/2)`, one comparison
    /// layer and one product layer for both halves.
    pub async fn sigmoid_clipped<R: Ring>(
        &mut self,
        x: &Shared<R>,
    ) -> Result<Shared<R>, PrivacyError> {
        let n = x.len();
        let half = self.constant::<R>(0.5, n);
        let up = x.add(&half);
        let down = x.sub(&half);
        let both = Shared::concat(&[&up, &down]);
        let r = self.relu(&both).await?;
        Ok(r.slice(0..n).sub(&r.slice(n..2 * n)))
    }

    /// Reveal `x` to party `to` only: `Some` there, `None` elsewhere.
    pub async fn reveal_to<R: Ring>(
        &mut self,
        to: usize,
        x: &Shared<R>,
    ) -> Result<Option<Vec<R>>, PrivacyError> {
        let n = x.len();
        if self.me == to {
            let third = self.recv_from::<R>((to + 1) % 3, n).await?;
            Ok(Some(
                (0..n).map(|k| x.a[k].add(x.b[k]).add(third[k])).collect(),
            ))
        } else if self.me == (to + 1) % 3 {
            self.send_to(to, &bytes_of(&x.b)).await?;
            Ok(None)
        } else {
            Ok(None)
        }
    }

    /// Reveal `x` to every party.
    pub async fn reveal<R: Ring>(&mut self, x: &Shared<R>) -> Result<Vec<R>, PrivacyError> {
        let third = self.pass_back(&x.b).await?;
        Ok((0..x.len())
            .map(|k| x.a[k].add(x.b[k]).add(third[k]))
            .collect())
    }
}
