//! The datasets an agent holds: CSV files in `DIR/data/`, each with its
//! salt beside it, matched to on-chain assets by their commitment (an
//! asset is held only when a local file commits to exactly the root the
//! chain records, so an agent never runs on other rows than the ones its
//! owner registered).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tongtian_crypto::SuiteId;
use tongtian_data::rows::{self, Table};
use tongtian_types::H256;

#[derive(Clone)]
struct Seen {
    modified: Option<SystemTime>,
    len: u64,
    root: Option<H256>,
}

/// The files of `DIR/data/` and their commitments, recomputed when a file
/// changes.
pub struct Holdings {
    dir: PathBuf,
    suite: SuiteId,
    seen: HashMap<PathBuf, Seen>,
}

impl Holdings {
    /// The holdings of `dir`, under the chain's suite.
    pub fn new(dir: PathBuf, suite: SuiteId) -> Self {
        Holdings {
            dir,
            suite,
            seen: HashMap::new(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that commits to `root`, rescanning the directory.
    pub fn find(&mut self, root: &H256) -> Option<PathBuf> {
        self.rescan();
        self.seen
            .iter()
            .find(|(_, s)| s.root.as_ref() == Some(root))
            .map(|(p, _)| p.clone())
    }

    fn rescan(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("csv") {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            let (modified, len) = (meta.modified().ok(), meta.len());
            if let Some(s) = self.seen.get(&p) {
                if s.modified == modified && s.len == len {
                    continue;
                }
            }
            let root = match (Table::read(&p), rows::read_salt(&p)) {
                (Ok(t), Ok(salt)) => Some(t.commit(self.suite, &salt).root),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(file = %p.display(), code = e.code(), "not a dataset: {e}");
                    None
                }
            };
            self.seen.insert(
                p,
                Seen {
                    modified,
                    len,
                    root,
                },
            );
        }
    }
}
