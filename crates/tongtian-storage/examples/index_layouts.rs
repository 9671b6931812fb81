//! How the cost of writing the transaction-hash index grows with its size,
//! for three key layouts on redb, each in its own database file:
//!
//! - `whole_hash`: 32-byte hash key to a (height, index) value, as store
//!   layout 3 kept it;
//! - `prefix`: a fixed (8-byte prefix, height, index) key with no value, as
//!   the store keeps it now ([`TX_INDEX`](tongtian_storage));
//! - `sequential`: the same key width with keys in insertion order, the
//!   floor for any layout (what a write costs when it appends).
//!
//! Each flush writes 16,384 random hashes in key order in one durable write
//! transaction, as `ChainStore::commit_block` writes its tail. Prints one
//! JSON object: microseconds per entry for every flush, per layout.
//!
//! `cargo run --release -p tongtian-storage --example index_layouts -- [FLUSHES]`

use redb::{Database, TableDefinition};
use std::time::Instant;
use tongtian_crypto::{suite, SuiteId};

const WHOLE: TableDefinition<&[u8], (u64, u32)> = TableDefinition::new("whole");
const FIXED: TableDefinition<(u64, u64, u32), ()> = TableDefinition::new("fixed");
const PER_FLUSH: usize = 16_384;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flushes: usize = match std::env::args().nth(1) {
        Some(s) => s.parse()?,
        None => 24,
    };
    let dir = tempfile::tempdir()?;
    let s = suite(SuiteId::Standard);
    let mut layouts = Vec::new();
    for layout in ["whole_hash", "prefix", "sequential"] {
        let path = dir.path().join(format!("{layout}.redb"));
        let db = Database::create(&path)?;
        let mut per_entry = Vec::with_capacity(flushes);
        for f in 0..flushes {
            let mut hashes: Vec<[u8; 32]> = (0..PER_FLUSH)
                .map(|i| s.hash(&((f * PER_FLUSH + i) as u64).to_le_bytes()))
                .collect();
            hashes.sort_unstable();
            let started = Instant::now();
            let w = db.begin_write()?;
            match layout {
                "whole_hash" => {
                    let mut t = w.open_table(WHOLE)?;
                    for (h, i) in hashes.iter().zip(0u32..) {
                        t.insert(h.as_slice(), (f as u64, i))?;
                    }
                }
                "prefix" => {
                    let mut t = w.open_table(FIXED)?;
                    for (h, i) in hashes.iter().zip(0u32..) {
                        let mut p = [0u8; 8];
                        p.copy_from_slice(&h[..8]);
                        t.insert((u64::from_be_bytes(p), f as u64, i), ())?;
                    }
                }
                _ => {
                    let mut t = w.open_table(FIXED)?;
                    for i in 0..PER_FLUSH as u32 {
                        t.insert((f as u64, u64::from(i), i), ())?;
                    }
                }
            }
            w.commit()?;
            per_entry.push(started.elapsed().as_secs_f64() * 1e6 / PER_FLUSH as f64);
        }
        let file_mb = std::fs::metadata(&path)?.len() as f64 / (1 << 20) as f64;
        layouts.push((layout, per_entry, file_mb));
    }
    let last_quarter = |v: &[f64]| {
        let tail = &v[v.len() * 3 / 4..];
        tail.iter().sum::<f64>() / tail.len() as f64
    };
    let body: Vec<String> = layouts
        .iter()
        .map(|(name, v, mb)| {
            let list: Vec<String> = v.iter().map(|x| format!("{x:.2}")).collect();
            format!(
                "\"{name}\":{{\"us_per_entry\":[{}],\"last_quarter_mean_us\":{:.2},\"file_mb\":{mb:.1}}}",
                list.join(","),
                last_quarter(v)
            )
        })
        .collect();
    println!(
        "{{\"entries_per_flush\":{PER_FLUSH},\"flushes\":{flushes},{}}}",
        body.join(",")
    );
    Ok(())
}
