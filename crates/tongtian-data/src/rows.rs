//! An asset's rows as its owner holds them: a CSV file with a header, and
//! the salted Merkle commitment the chain records.
//!
//! Leaf `i` is the chain suite's hash of a domain, the salt, `i` (8 bytes,
//! big-endian) and the row's fields, each prefixed with its length; the
//! commitment is [`tongtian_types::merkle_root`] over the leaves. The salt
//! (32 random bytes) stays with the owner, so the root reveals nothing
//! about the rows, and [`prove`] opens one row for an audit.

use crate::data::Column;
use std::path::Path;
use tongtian_crypto::{suite, SuiteId};
use tongtian_types::{merkle_proof, merkle_root, MerkleStep, H256};

/// The most rows an asset file may have.
pub const MAX_ROWS: u64 = 1 << 24;

/// Why an asset file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    /// It cannot be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// It is not the CSV it should be (`bad_csv`, `csv_too_large`,
    /// `unknown_column`, `bad_row`).
    #[error("{message}")]
    Bad {
        /// A stable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl RowsError {
    /// Its stable code.
    pub fn code(&self) -> &'static str {
        match self {
            RowsError::Io { .. } => "io",
            RowsError::Bad { code, .. } => code,
        }
    }

    fn bad(code: &'static str, message: impl Into<String>) -> Self {
        RowsError::Bad {
            code,
            message: message.into(),
        }
    }
}

/// What a CSV file commits to.
#[derive(Clone, Debug)]
pub struct Committed {
    /// Its columns, with types inferred (`int`, `float`, `string`).
    pub schema: Vec<Column>,
    /// Its row count.
    pub rows: u64,
    /// The salted Merkle root.
    pub root: H256,
}

/// A CSV file read whole: its header and rows.
#[derive(Clone, Debug)]
pub struct Table {
    /// The header, trimmed.
    pub header: Vec<String>,
    /// The rows, as written.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Read `file`: a header, then rows with as many fields, at most
    /// [`MAX_ROWS`] of them.
    pub fn read(file: &Path) -> Result<Table, RowsError> {
        let io = |e: &dyn std::fmt::Display| RowsError::Io {
            path: file.display().to_string(),
            message: e.to_string(),
        };
        let mut r = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_path(file)
            .map_err(|e| io(&e))?;
        let header: Vec<String> = r
            .headers()
            .map_err(|e| RowsError::bad("bad_csv", format!("{}: {e}", file.display())))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mut rows = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec =
                rec.map_err(|e| RowsError::bad("bad_csv", format!("{}: {e}", file.display())))?;
            if rec.len() != header.len() {
                return Err(RowsError::bad(
                    "bad_csv",
                    format!(
                        "{}: row {} has {} fields, the header {}",
                        file.display(),
                        i + 1,
                        rec.len(),
                        header.len()
                    ),
                ));
            }
            if rows.len() as u64 >= MAX_ROWS {
                return Err(RowsError::bad(
                    "csv_too_large",
                    format!("{} has more than {MAX_ROWS} rows", file.display()),
                ));
            }
            rows.push(rec.iter().map(str::to_string).collect());
        }
        Ok(Table { header, rows })
    }

    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Result<usize, RowsError> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| RowsError::bad("unknown_column", format!("there is no column {name:?}")))
    }

    /// Every value of column `name`, in row order.
    pub fn values(&self, name: &str) -> Result<Vec<String>, RowsError> {
        let j = self.column(name)?;
        Ok(self.rows.iter().map(|r| r[j].clone()).collect())
    }

    /// Leaf `i` under `salt`.
    pub fn leaf(&self, s: SuiteId, salt: &[u8; 32], i: usize) -> H256 {
        leaf(s, salt, i as u64, &self.rows[i])
    }

    /// Every leaf under `salt`.
    pub fn leaves(&self, s: SuiteId, salt: &[u8; 32]) -> Vec<H256> {
        (0..self.rows.len())
            .map(|i| self.leaf(s, salt, i))
            .collect()
    }

    /// What the table commits to under `salt`.
    pub fn commit(&self, s: SuiteId, salt: &[u8; 32]) -> Committed {
        let mut kinds = vec![(true, true); self.header.len()];
        for row in &self.rows {
            for (j, field) in row.iter().enumerate() {
                let f = field.trim();
                kinds[j].0 &= f.parse::<i64>().is_ok();
                kinds[j].1 &= f.parse::<f64>().is_ok();
            }
        }
        let schema = self
            .header
            .iter()
            .zip(&kinds)
            .map(|(name, (int, float))| Column {
                name: name.clone(),
                kind: if self.rows.is_empty() {
                    "string"
                } else if *int {
                    "int"
                } else if *float {
                    "float"
                } else {
                    "string"
                }
                .into(),
            })
            .collect();
        Committed {
            schema,
            rows: self.rows.len() as u64,
            root: merkle_root(suite(s), &self.leaves(s, salt)),
        }
    }
}

/// Leaf `i` of a row with `fields` under `salt`.
pub fn leaf(s: SuiteId, salt: &[u8; 32], i: u64, fields: &[String]) -> H256 {
    let mut b = b"tongtian/data-row/v1".to_vec();
    b.extend_from_slice(salt);
    b.extend_from_slice(&i.to_be_bytes());
    for f in fields {
        b.extend_from_slice(&(f.len() as u64).to_be_bytes());
        b.extend_from_slice(f.as_bytes());
    }
    H256(suite(s).hash(&b))
}

/// Where the salt of `file` is kept: beside it, `FILE.salt`.
pub fn salt_path(file: &Path) -> std::path::PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".salt");
    name.into()
}

/// Read the salt kept beside `file`.
pub fn read_salt(file: &Path) -> Result<[u8; 32], RowsError> {
    let p = salt_path(file);
    let text = std::fs::read_to_string(&p).map_err(|e| RowsError::Io {
        path: p.display().to_string(),
        message: e.to_string(),
    })?;
    let mut salt = [0u8; 32];
    hex_decode(text.trim(), &mut salt).ok_or_else(|| {
        RowsError::bad("bad_salt", format!("{} is not 32 hex bytes", p.display()))
    })?;
    Ok(salt)
}

fn hex_decode(s: &str, out: &mut [u8; 32]) -> Option<()> {
    if s.len() != 64 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(())
}

/// An opening of one committed row.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RowProof {
    /// The row's index (from 0).
    pub row: u64,
    /// Its fields.
    pub fields: Vec<String>,
    /// The salt (an audit reveals it: every leaf is then checkable).
    pub salt: H256,
    /// The leaf.
    pub leaf: H256,
    /// The path to the root.
    pub path: Vec<MerkleStep>,
    /// The root it leads to.
    pub root: H256,
}

impl RowProof {
    /// Whether the proof opens a row under `root` (recomputing the leaf
    /// from the fields and the salt).
    pub fn verify(&self, s: SuiteId, root: &H256) -> bool {
        let l = leaf(s, &self.salt.0, self.row, &self.fields);
        l == self.leaf
            && self.root == *root
            && tongtian_types::verify_merkle_proof(suite(s), &l, &self.path, root)
    }
}

/// Open row `row` of `table` under `salt`.
pub fn prove(table: &Table, s: SuiteId, salt: &[u8; 32], row: u64) -> Result<RowProof, RowsError> {
    let leaves = table.leaves(s, salt);
    let path = merkle_proof(suite(s), &leaves, row as usize).ok_or_else(|| {
        RowsError::bad(
            "bad_row",
            format!("row {row} is past the last row ({})", leaves.len()),
        )
    })?;
    Ok(RowProof {
        row,
        fields: table.rows[row as usize].clone(),
        salt: H256(*salt),
        leaf: leaves[row as usize],
        path,
        root: merkle_root(suite(s), &leaves),
    })
}
