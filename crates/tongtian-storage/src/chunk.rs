//! Many encoded records in one stored value, any one readable alone.
//!
//! A block's transactions (and its receipts) are stored [`CHUNK`] to a
//! value instead of one per key: a 20,000-transaction block is then 79
//! B-tree inserts per table rather than 20,000. A chunk is
//! `count: u32`, `count + 1` offsets (`u32`, little-endian) into the
//! payload, then the payload; item `i` is `payload[off[i]..off[i + 1]]`.

/// Records per chunk.
pub const CHUNK: usize = 256;

/// Pack encoded records into one chunk.
pub fn pack<T: AsRef<[u8]>>(items: &[T]) -> Vec<u8> {
    let payload: usize = items.iter().map(|i| i.as_ref().len()).sum();
    let mut out = Vec::with_capacity(4 * (items.len() + 2) + payload);
    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
    let mut offset = 0u32;
    out.extend_from_slice(&offset.to_le_bytes());
    for i in items {
        offset += i.as_ref().len() as u32;
        out.extend_from_slice(&offset.to_le_bytes());
    }
    for i in items {
        out.extend_from_slice(i.as_ref());
    }
    out
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes) as usize)
}

/// Number of records in a chunk, or `None` if it is malformed.
pub fn len(chunk: &[u8]) -> Option<usize> {
    let n = u32_at(chunk, 0)?;
    // The offsets table must fit.
    (n.checked_add(2)?.checked_mul(4)? <= chunk.len()).then_some(n)
}

/// Record `i` of a chunk, or `None` if out of range or malformed.
pub fn get(chunk: &[u8], i: usize) -> Option<&[u8]> {
    let n = len(chunk)?;
    if i >= n {
        return None;
    }
    let payload = 4 * (n + 2);
    let (start, end) = (u32_at(chunk, 4 + 4 * i)?, u32_at(chunk, 8 + 4 * i)?);
    if start > end {
        return None;
    }
    chunk.get(payload.checked_add(start)?..payload.checked_add(end)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_reads_back_every_record() {
        let items: Vec<Vec<u8>> = (0..300u32)
            .map(|i| vec![i as u8; (i % 7) as usize])
            .collect();
        let c = pack(&items);
        assert_eq!(len(&c), Some(300));
        for (i, item) in items.iter().enumerate() {
            assert_eq!(get(&c, i), Some(item.as_slice()));
        }
        assert_eq!(get(&c, 300), None);
        assert_eq!(len(&pack::<Vec<u8>>(&[])), Some(0));
        // Truncated or lying chunks read as malformed, not as a panic.
        assert_eq!(get(&c[..10], 0), None);
        let mut lying = c.clone();
        lying[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(len(&lying), None);
        let mut backwards = c;
        backwards[8..12].copy_from_slice(&0u32.to_le_bytes());
        backwards[4..8].copy_from_slice(&5u32.to_le_bytes());
        assert_eq!(get(&backwards, 0), None);
    }
}
