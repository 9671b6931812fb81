//! Ethereum transactions as Ethereum tools sign them.
//!
//! `eth_sendRawTransaction` carries legacy (EIP-155), EIP-2930 and EIP-1559
//! transactions, RLP-encoded and signed with secp256k1. [`EthTx::decode`]
//! parses one strictly (canonical RLP, no trailing bytes), and
//! [`EthTx::recover_sender`] recovers its signer from the signature. Such a
//! transaction travels inside a [`crate::SignedTransaction`] whose action is
//! [`crate::Action::Ethereum`], so it shares the mempool, blocks and receipts
//! with native transactions.

use crate::{Address, H256};
use alloy_rlp::{Decodable, Header};
use tongtian_crypto::eth::{keccak256, recover_address};

/// Why raw Ethereum transaction bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EthTxError {
    /// Not valid RLP or not the shape of a transaction.
    #[error("malformed ethereum transaction: {0}")]
    Malformed(String),
    /// A transaction type we do not accept (blob and set-code transactions).
    #[error("unsupported ethereum transaction type {0:#x}")]
    UnsupportedType(u8),
    /// A legacy transaction without EIP-155 replay protection.
    #[error("transaction is not replay-protected (EIP-155 chain id missing)")]
    NoChainId,
    /// A value that does not fit this chain's 128-bit balances.
    #[error("{0} does not fit in 128 bits")]
    TooLarge(&'static str),
    /// The signature is malformed or recovers no key.
    #[error("invalid transaction signature")]
    BadSignature,
}

impl From<alloy_rlp::Error> for EthTxError {
    fn from(e: alloy_rlp::Error) -> Self {
        EthTxError::Malformed(e.to_string())
    }
}

/// An EIP-2930 access list: each address with its storage keys.
pub type AccessList = Vec<(Address, Vec<[u8; 32]>)>;

/// Gas per access-list address (EIP-2930).
pub const ACCESS_LIST_ADDRESS_GAS: u64 = 2_400;
/// Gas per access-list storage key (EIP-2930).
pub const ACCESS_LIST_KEY_GAS: u64 = 1_900;

/// What an access list costs up front.
pub fn access_list_gas(list: &AccessList) -> u64 {
    list.iter()
        .map(|(_, keys)| ACCESS_LIST_ADDRESS_GAS + ACCESS_LIST_KEY_GAS * keys.len() as u64)
        .sum()
}

/// Decode an RLP access list: `[[address, [key, ...]], ...]`.
fn access_list_field(item: &[u8]) -> Result<AccessList, EthTxError> {
    let bad = |what: String| EthTxError::Malformed(format!("access list: {what}"));
    list_items(item)?
        .into_iter()
        .map(|entry| {
            let parts = list_items(entry)?;
            let [address, keys] = parts[..] else {
                return Err(bad(format!(
                    "an entry has {} fields, expected 2",
                    parts.len()
                )));
            };
            let address = bytes(address)?;
            let address: [u8; 20] = address
                .try_into()
                .map_err(|a: Vec<u8>| bad(format!("an address of {} bytes", a.len())))?;
            let keys = list_items(keys)?
                .into_iter()
                .map(|k| {
                    bytes(k)?
                        .try_into()
                        .map_err(|k: Vec<u8>| bad(format!("a storage key of {} bytes", k.len())))
                })
                .collect::<Result<Vec<[u8; 32]>, EthTxError>>()?;
            Ok((Address(address), keys))
        })
        .collect()
}

/// A decoded Ethereum transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EthTx {
    /// 0 legacy, 1 EIP-2930, 2 EIP-1559.
    pub tx_type: u8,
    /// Chain id it is signed for.
    pub chain_id: u64,
    /// Sender nonce.
    pub nonce: u64,
    /// Legacy and 2930: the gas price; 1559: the max fee per gas.
    pub max_fee_per_gas: u128,
    /// 1559 only: the max priority fee per gas.
    pub max_priority_fee_per_gas: Option<u128>,
    /// Gas limit.
    pub gas_limit: u64,
    /// Recipient; `None` creates a contract.
    pub to: Option<Address>,
    /// Value sent.
    pub value: u128,
    /// Call data or init code.
    pub input: Vec<u8>,
    /// EIP-2930 access list (types 1 and 2): addresses and storage keys
    /// paid for up front and warm from the start.
    pub access_list: AccessList,
    /// Transaction hash: Keccak-256 of the raw bytes.
    pub hash: H256,
    digest: [u8; 32],
    rs: [u8; 64],
    recid: u8,
}

/// The raw encodings (header included) of a list's items.
fn list_items(buf: &[u8]) -> Result<Vec<&[u8]>, EthTxError> {
    let mut rest = buf;
    let h = Header::decode(&mut rest)?;
    if !h.list {
        return Err(EthTxError::Malformed("expected an RLP list".into()));
    }
    if rest.len() != h.payload_length {
        return Err(EthTxError::Malformed(
            "trailing bytes after the transaction".into(),
        ));
    }
    let mut items = Vec::new();
    while !rest.is_empty() {
        let before = rest;
        let item = Header::decode(&mut rest)?;
        if rest.len() < item.payload_length {
            return Err(alloy_rlp::Error::InputTooShort.into());
        }
        rest = &rest[item.payload_length..];
        items.push(&before[..before.len() - rest.len()]);
    }
    Ok(items)
}

fn uint<T: Decodable>(item: &[u8]) -> Result<T, EthTxError> {
    let mut b = item;
    Ok(T::decode(&mut b)?)
}

fn bytes(item: &[u8]) -> Result<Vec<u8>, EthTxError> {
    let mut b = item;
    Ok(Header::decode_bytes(&mut b, false)?.to_vec())
}

fn to_field(item: &[u8]) -> Result<Option<Address>, EthTxError> {
    let b = bytes(item)?;
    match b.len() {
        0 => Ok(None),
        20 => Ok(Some(Address(b.try_into().expect("20 bytes")))),
        n => Err(EthTxError::Malformed(format!("recipient of {n} bytes"))),
    }
}

fn value_field(item: &[u8], what: &'static str) -> Result<u128, EthTxError> {
    let b = bytes(item)?;
    if b.first() == Some(&0) {
        return Err(alloy_rlp::Error::LeadingZero.into());
    }
    if b.len() > 32 {
        return Err(EthTxError::Malformed(format!(
            "{what} longer than 32 bytes"
        )));
    }
    if b.len() > 16 {
        return Err(EthTxError::TooLarge(what));
    }
    let mut out = [0u8; 16];
    out[16 - b.len()..].copy_from_slice(&b);
    Ok(u128::from_be_bytes(out))
}

fn scalar(item: &[u8]) -> Result<[u8; 32], EthTxError> {
    let b = bytes(item)?;
    if b.len() > 32 || b.is_empty() {
        return Err(EthTxError::BadSignature);
    }
    let mut out = [0u8; 32];
    out[32 - b.len()..].copy_from_slice(&b);
    Ok(out)
}

fn list_of(items: &[&[u8]], prefix: Option<u8>) -> Vec<u8> {
    let payload: usize = items.iter().map(|i| i.len()).sum();
    let mut out = Vec::with_capacity(payload + 10);
    if let Some(p) = prefix {
        out.push(p);
    }
    Header {
        list: true,
        payload_length: payload,
    }
    .encode(&mut out);
    for i in items {
        out.extend_from_slice(i);
    }
    out
}

impl EthTx {
    /// Parse raw transaction bytes (no signature recovery yet).
    pub fn decode(raw: &[u8]) -> Result<EthTx, EthTxError> {
        let first = *raw
            .first()
            .ok_or_else(|| EthTxError::Malformed("empty transaction".into()))?;
        let hash = H256(keccak256(raw));
        let (tx_type, body) = match first {
            0xc0..=0xff => (0u8, raw),
            1 | 2 => (first, &raw[1..]),
            t if t < 0x80 => return Err(EthTxError::UnsupportedType(t)),
            _ => return Err(EthTxError::Malformed("not a transaction".into())),
        };
        let items = list_items(body)?;
        let want = match tx_type {
            0 => 9,
            1 => 11,
            _ => 12,
        };
        if items.len() != want {
            return Err(EthTxError::Malformed(format!(
                "type {tx_type} transaction has {} fields, expected {want}",
                items.len()
            )));
        }
        let (r, s) = (scalar(items[want - 2])?, scalar(items[want - 1])?);
        let mut rs = [0u8; 64];
        rs[..32].copy_from_slice(&r);
        rs[32..].copy_from_slice(&s);
        let tx = match tx_type {
            0 => {
                let v: u64 = uint(items[6])?;
                if v == 27 || v == 28 {
                    return Err(EthTxError::NoChainId);
                }
                if v < 35 {
                    return Err(EthTxError::BadSignature);
                }
                let chain_id = (v - 35) / 2;
                let (cid, zero) = (alloy_rlp::encode(chain_id), alloy_rlp::encode(0u8));
                let mut fields: Vec<&[u8]> = items[..6].to_vec();
                fields.extend([cid.as_slice(), zero.as_slice(), zero.as_slice()]);
                EthTx {
                    tx_type,
                    chain_id,
                    nonce: uint(items[0])?,
                    max_fee_per_gas: value_field(items[1], "gas price")?,
                    max_priority_fee_per_gas: None,
                    gas_limit: uint(items[2])?,
                    to: to_field(items[3])?,
                    value: value_field(items[4], "value")?,
                    input: bytes(items[5])?,
                    access_list: Vec::new(),
                    hash,
                    digest: keccak256(&list_of(&fields, None)),
                    rs,
                    recid: ((v - 35) % 2) as u8,
                }
            }
            1 => EthTx {
                tx_type,
                chain_id: uint(items[0])?,
                nonce: uint(items[1])?,
                max_fee_per_gas: value_field(items[2], "gas price")?,
                max_priority_fee_per_gas: None,
                gas_limit: uint(items[3])?,
                to: to_field(items[4])?,
                value: value_field(items[5], "value")?,
                input: bytes(items[6])?,
                access_list: access_list_field(items[7])?,
                hash,
                digest: keccak256(&list_of(&items[..8], Some(1))),
                rs,
                recid: uint(items[8])?,
            },
            _ => EthTx {
                tx_type,
                chain_id: uint(items[0])?,
                nonce: uint(items[1])?,
                max_priority_fee_per_gas: Some(value_field(items[2], "priority fee")?),
                max_fee_per_gas: value_field(items[3], "max fee")?,
                gas_limit: uint(items[4])?,
                to: to_field(items[5])?,
                value: value_field(items[6], "value")?,
                input: bytes(items[7])?,
                access_list: access_list_field(items[8])?,
                hash,
                digest: keccak256(&list_of(&items[..9], Some(2))),
                rs,
                recid: uint(items[9])?,
            },
        };
        if tx.recid > 1 {
            return Err(EthTxError::BadSignature);
        }
        Ok(tx)
    }

    /// Recover the sender's address from the signature.
    pub fn recover_sender(&self) -> Result<Address, EthTxError> {
        recover_address(&self.digest, &self.rs, self.recid)
            .map(Address)
            .map_err(|_| EthTxError::BadSignature)
    }

    /// The signature as Ethereum JSON-RPC shows it: `v` (for legacy
    /// transactions `chain_id * 2 + 35 + y`, else the y parity), `r`, `s`.
    pub fn signature(&self) -> (u64, [u8; 32], [u8; 32]) {
        let v = if self.tx_type == 0 {
            self.chain_id * 2 + 35 + self.recid as u64
        } else {
            self.recid as u64
        };
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&self.rs[..32]);
        s.copy_from_slice(&self.rs[32..]);
        (v, r, s)
    }

    /// The price per gas paid on a chain whose base fee is zero.
    pub fn effective_gas_price(&self) -> u128 {
        match self.max_priority_fee_per_gas {
            Some(p) => p.min(self.max_fee_per_gas),
            None => self.max_fee_per_gas,
        }
    }

    /// Gas charged before execution, by Ethereum's rules
    /// ([`intrinsic_gas`]).
    pub fn intrinsic_gas(&self) -> u64 {
        intrinsic_gas(&self.input, self.to.is_none(), &self.access_list)
    }

    /// The least gas limit that can include it: its intrinsic gas or, if
    /// more, EIP-7623's calldata floor ([`floor_gas`]).
    pub fn min_gas_limit(&self) -> u64 {
        self.intrinsic_gas().max(floor_gas(&self.input))
    }

    /// Address of the contract a creation by `sender` at `nonce` makes.
    pub fn create_address(sender: &Address, nonce: u64) -> Address {
        create_address(sender, nonce)
    }
}

/// Ethereum's intrinsic gas of a call or creation with `input` and
/// `access_list`: 21,000, 4 per zero and 16 per non-zero byte, for a
/// creation 32,000 plus 2 per 32-byte word of init code (EIP-3860), and
/// the access list's 2,400 per address and 1,900 per key (EIP-2930).
pub fn intrinsic_gas(input: &[u8], create: bool, access_list: &AccessList) -> u64 {
    let (zeros, nonzero) = zero_and_nonzero(input);
    let create = if create {
        32_000 + 2 * input.len().div_ceil(32) as u64
    } else {
        0
    };
    21_000 + 4 * zeros + 16 * nonzero + create + access_list_gas(access_list)
}

/// EIP-7623's floor (Prague) on the gas of a transaction with `input`:
/// 21,000 plus 10 per calldata token, a zero byte being one token and any
/// other byte four. A transaction pays at least this, so its gas limit
/// must cover it; Geth refuses one that does not as "intrinsic gas too
/// low".
pub fn floor_gas(input: &[u8]) -> u64 {
    let (zeros, nonzero) = zero_and_nonzero(input);
    21_000 + 10 * (zeros + 4 * nonzero)
}

/// How many bytes of `input` are zero and how many are not: both gas
/// rules price them apart.
fn zero_and_nonzero(input: &[u8]) -> (u64, u64) {
    let zeros = input.iter().filter(|b| **b == 0).count() as u64;
    (zeros, input.len() as u64 - zeros)
}

/// `CREATE` address: the last 20 bytes of `keccak256(rlp([sender, nonce]))`.
/// Both virtual machines place new contracts this way.
pub fn create_address(sender: &Address, nonce: u64) -> Address {
    let a = alloy_rlp::encode(sender.0.as_slice());
    let n = alloy_rlp::encode(nonce);
    let h = keccak256(&list_of(&[a.as_slice(), n.as_slice()], None));
    let mut out = [0u8; 20];
    out.copy_from_slice(&h[12..]);
    Address(out)
}

/// Ethereum's 2048-bit logs bloom: every log's address and each of its
/// topics set three bits, taken from the low 11 bits of the first three
/// byte pairs of the item's Keccak-256 hash (bit 0 is the last byte's
/// lowest). A bloom that lacks any bit of an item holds no log with it; one
/// that has all three may. Receipts and blocks carry one, and a log query
/// skips every block whose bloom cannot match.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LogsBloom(pub [u8; 256]);

impl Default for LogsBloom {
    fn default() -> Self {
        LogsBloom([0; 256])
    }
}

impl std::fmt::Debug for LogsBloom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogsBloom({})", const_hex::encode_prefixed(self.0))
    }
}

/// The three bloom bits of one item (an address or a topic), as (byte,
/// mask) pairs: hashed once, checked against any number of blooms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BloomBits([(u8, u8); 3]);

impl BloomBits {
    /// The bits `item` sets.
    pub fn of(item: &[u8]) -> Self {
        let h = keccak256(item);
        BloomBits([0, 2, 4].map(|i| {
            let bit = ((usize::from(h[i]) << 8) | usize::from(h[i + 1])) & 2047;
            ((255 - bit / 8) as u8, 1 << (bit % 8))
        }))
    }
}

impl LogsBloom {
    /// Add an item's bits.
    pub fn accrue(&mut self, bits: BloomBits) {
        for (byte, mask) in bits.0 {
            self.0[usize::from(byte)] |= mask;
        }
    }

    /// Whether all of an item's bits are set: a log with the item may be
    /// here (`false` means none is).
    pub fn may_contain(&self, bits: &BloomBits) -> bool {
        bits.0
            .iter()
            .all(|(byte, mask)| self.0[usize::from(*byte)] & mask == *mask)
    }
}

/// Builds a [`LogsBloom`] from items that repeat (a block's logs repeat
/// their contract's address and event topic; its events, their emitters):
/// each distinct item is hashed once.
#[derive(Default)]
pub struct BloomBuilder {
    bloom: LogsBloom,
    /// Items added, as their length then their bytes (an address and a
    /// topic never share an entry).
    seen: std::collections::HashSet<[u8; 33]>,
}

impl BloomBuilder {
    /// Add an item's bits, unless it was added before.
    pub fn add(&mut self, item: &[u8]) {
        if item.len() <= 32 {
            let mut key = [0u8; 33];
            key[0] = item.len() as u8;
            key[1..=item.len()].copy_from_slice(item);
            if !self.seen.insert(key) {
                return;
            }
        }
        self.bloom.accrue(BloomBits::of(item));
    }

    /// The bloom of everything added.
    pub fn finish(self) -> LogsBloom {
        self.bloom
    }
}

/// Build and sign an EIP-1559 transaction (for tests, benchmarks and the
/// CLI; wallets do this themselves).
#[allow(clippy::too_many_arguments)]
pub fn sign_eip1559(
    key: &tongtian_crypto::eth::EthKey,
    chain_id: u64,
    nonce: u64,
    gas_price: u128,
    gas_limit: u64,
    to: Option<Address>,
    value: u128,
    input: &[u8],
) -> Vec<u8> {
    sign_eip1559_listing(
        key,
        chain_id,
        nonce,
        gas_price,
        gas_limit,
        to,
        value,
        input,
        &AccessList::new(),
    )
}

/// The RLP encoding of an access list.
fn encode_access_list(list: &AccessList) -> Vec<u8> {
    let entries: Vec<Vec<u8>> = list
        .iter()
        .map(|(a, keys)| {
            let keys: Vec<Vec<u8>> = keys
                .iter()
                .map(|k| alloy_rlp::encode(k.as_slice()))
                .collect();
            let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            let address = alloy_rlp::encode(a.0.as_slice());
            list_of(&[address.as_slice(), list_of(&keys, None).as_slice()], None)
        })
        .collect();
    let entries: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    list_of(&entries, None)
}

/// [`sign_eip1559`] with an access list.
#[allow(clippy::too_many_arguments)]
pub fn sign_eip1559_listing(
    key: &tongtian_crypto::eth::EthKey,
    chain_id: u64,
    nonce: u64,
    gas_price: u128,
    gas_limit: u64,
    to: Option<Address>,
    value: u128,
    input: &[u8],
    access_list: &AccessList,
) -> Vec<u8> {
    let enc_u128 = |v: u128| alloy_rlp::encode(v);
    let to_enc = match to {
        Some(a) => alloy_rlp::encode(a.0.as_slice()),
        None => alloy_rlp::encode(&b""[..]),
    };
    let fields = [
        alloy_rlp::encode(chain_id),
        alloy_rlp::encode(nonce),
        enc_u128(gas_price),
        enc_u128(gas_price),
        alloy_rlp::encode(gas_limit),
        to_enc,
        enc_u128(value),
        alloy_rlp::encode(input),
        encode_access_list(access_list),
    ];
    let refs: Vec<&[u8]> = fields.iter().map(|f| f.as_slice()).collect();
    let digest = keccak256(&list_of(&refs, Some(2)));
    let (rs, recid) = key.sign_digest(&digest);
    let strip = |b: &[u8]| {
        let i = b.iter().position(|x| *x != 0).unwrap_or(b.len());
        alloy_rlp::encode(&b[i..])
    };
    let sig = [alloy_rlp::encode(recid), strip(&rs[..32]), strip(&rs[32..])];
    let mut all = refs.clone();
    all.extend(sig.iter().map(|s| s.as_slice()));
    list_of(&all, Some(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tongtian_crypto::eth::EthKey;

    #[test]
    fn bloom_bits_follow_the_yellow_paper() {
        // keccak256("") = c5d2 4601 86f7 ...: the low 11 bits of the first
        // three pairs are 1490, 1537 and 1783, which are bit 2 of byte
        // 255 - 186, bit 1 of byte 255 - 192 and bit 7 of byte 255 - 222.
        let mut bloom = LogsBloom::default();
        bloom.accrue(BloomBits::of(b""));
        let mut want = [0u8; 256];
        want[69] = 1 << 2;
        want[63] = 1 << 1;
        want[33] = 1 << 7;
        assert_eq!(bloom, LogsBloom(want));
        assert!(bloom.may_contain(&BloomBits::of(b"")));
        // Another item's bits are (almost surely) not all there; once
        // added, both are.
        let other = BloomBits::of(&[7u8; 20]);
        assert!(!bloom.may_contain(&other));
        bloom.accrue(other);
        assert!(bloom.may_contain(&other) && bloom.may_contain(&BloomBits::of(b"")));
        assert!(!LogsBloom::default().may_contain(&other));
        // Built from items that repeat, the same bloom; an item longer
        // than a topic still counts.
        let mut built = BloomBuilder::default();
        for item in [&b""[..], &[7u8; 20], &b""[..], &[7u8; 20]] {
            built.add(item);
        }
        assert_eq!(built.finish(), bloom);
        let long = [3u8; 40];
        let mut built = BloomBuilder::default();
        built.add(&long);
        assert!(built.finish().may_contain(&BloomBits::of(&long)));
    }

    #[test]
    fn eip1559_round_trip_recovers_the_signer() {
        let k = EthKey::generate();
        let to = Address([7; 20]);
        let raw = sign_eip1559(&k, 8645, 3, 5, 50_000, Some(to), 1000, &[0, 1, 2]);
        let tx = EthTx::decode(&raw).unwrap();
        assert_eq!(tx.tx_type, 2);
        assert_eq!((tx.chain_id, tx.nonce, tx.gas_limit), (8645, 3, 50_000));
        assert_eq!(
            (tx.to, tx.value, tx.input.clone()),
            (Some(to), 1000, vec![0, 1, 2])
        );
        assert_eq!(tx.recover_sender().unwrap(), Address(k.address()));
        assert_eq!(tx.intrinsic_gas(), 21_000 + 4 + 32);
        // Any calldata puts the floor above the intrinsic gas of a plain
        // call: 21,000 + 10 * (1 + 2 * 4) for these three bytes.
        assert_eq!(floor_gas(&tx.input), 21_090);
        assert_eq!(tx.min_gas_limit(), 21_090);
        assert_eq!(floor_gas(&[]), 21_000);
        // A creation's intrinsic gas (32,000 more) stays above its floor.
        let create = sign_eip1559(&k, 8645, 0, 5, 90_000, None, 0, &[0xff; 100]);
        let create = EthTx::decode(&create).unwrap();
        assert_eq!(create.min_gas_limit(), create.intrinsic_gas());
        let heavy = sign_eip1559(&k, 8645, 0, 5, 50_000, Some(to), 0, &[0xff; 100]);
        let heavy = EthTx::decode(&heavy).unwrap();
        assert_eq!(heavy.intrinsic_gas(), 21_000 + 100 * 16);
        assert_eq!(heavy.min_gas_limit(), 21_000 + 100 * 40);
        assert_eq!(tx.hash, H256(keccak256(&raw)));
        assert!(tx.access_list.is_empty());
    }

    #[test]
    fn access_lists_decode_are_signed_and_are_paid_for() {
        let k = EthKey::generate();
        let list: AccessList = vec![
            (Address([1; 20]), vec![[2; 32], [3; 32]]),
            (Address([4; 20]), vec![]),
        ];
        let raw = sign_eip1559_listing(
            &k,
            8645,
            0,
            5,
            90_000,
            Some(Address([7; 20])),
            0,
            &[],
            &list,
        );
        let tx = EthTx::decode(&raw).unwrap();
        assert_eq!(tx.access_list, list);
        assert_eq!(
            tx.recover_sender().unwrap(),
            Address(k.address()),
            "the list is signed"
        );
        assert_eq!(tx.intrinsic_gas(), 21_000 + 2 * 2_400 + 2 * 1_900);
        // A creation pays 2 per word of init code too (EIP-3860).
        let create = sign_eip1559(&k, 8645, 0, 5, 90_000, None, 0, &[1; 33]);
        assert_eq!(
            EthTx::decode(&create).unwrap().intrinsic_gas(),
            21_000 + 33 * 16 + 32_000 + 2 * 2
        );
        // Malformed entries are refused: a short address, a short key.
        let entry = |address: &[u8], key: &[u8]| {
            let keys = list_of(&[alloy_rlp::encode(key).as_slice()], None);
            let entry = list_of(
                &[alloy_rlp::encode(address).as_slice(), keys.as_slice()],
                None,
            );
            list_of(&[entry.as_slice()], None)
        };
        assert!(access_list_field(&entry(&[9; 20], &[2; 32])).is_ok());
        for (bad, why) in [
            (entry(&[9; 19], &[2; 32]), "an address of 19 bytes"),
            (entry(&[9; 20], &[2; 31]), "a storage key of 31 bytes"),
        ] {
            assert!(matches!(
                access_list_field(&bad),
                Err(EthTxError::Malformed(m)) if m.contains(why)
            ));
        }
    }

    #[test]
    fn tampering_changes_the_recovered_sender_or_fails() {
        let k = EthKey::generate();
        let mut raw = sign_eip1559(&k, 1, 0, 1, 21_000, Some(Address([1; 20])), 5, &[]);
        // The value byte sits just before the empty data and access list.
        let pos = raw.len() - 1 - 66 - 3 - 1;
        raw[pos] ^= 0x01;
        if let Ok(tx) = EthTx::decode(&raw) {
            assert_ne!(tx.recover_sender().ok(), Some(Address(k.address())));
        }
    }

    #[test]
    fn legacy_eip155_vector_decodes() {
        // The worked example of EIP-155 (key 0x4646..46, chain id 1).
        let raw = hex::decode("f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83").unwrap();
        let tx = EthTx::decode(&raw).unwrap();
        assert_eq!((tx.tx_type, tx.chain_id, tx.nonce), (0, 1, 9));
        assert_eq!(tx.value, 1_000_000_000_000_000_000);
        let key = EthKey::from_secret(&[0x46; 32]).unwrap();
        assert_eq!(tx.recover_sender().unwrap(), Address(key.address()));
    }

    #[test]
    fn garbage_and_unprotected_transactions_are_refused() {
        assert!(matches!(EthTx::decode(&[]), Err(EthTxError::Malformed(_))));
        assert!(matches!(
            EthTx::decode(&[3, 0xc0]),
            Err(EthTxError::UnsupportedType(3))
        ));
        assert!(EthTx::decode(&[0xc3, 1, 2]).is_err());
        // Pre-EIP-155 (v = 27) legacy transaction.
        let raw = hex::decode("f85f800182520894095e7baea6a6c7c4c2dfeb977efac326af552d870a801ba048b55bfa915ac795c431978d8a6a992b628d557da5ff759b307d495a36649353a0efffd310ac743f371de3b9f7f9cb56c0b28ad43601b4ab949f53faa07bd2c804").unwrap();
        assert_eq!(EthTx::decode(&raw), Err(EthTxError::NoChainId));
    }

    #[test]
    fn create_address_matches_ethereum() {
        // Well-known: the first contract deployed by Hardhat account 0.
        let sender = Address(EthKey::dev_accounts(1)[0].address());
        assert_eq!(
            create_address(&sender, 0).to_string(),
            "0x5fbdb2315678afecb367f032d93f642f64180aa3"
        );
    }
}
