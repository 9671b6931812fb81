//! Installed Ethereum filters: the server-side cursors behind
//! `eth_newFilter`, `eth_newBlockFilter`, `eth_getFilterChanges`,
//! `eth_getFilterLogs` and `eth_uninstallFilter`.
//!
//! A filter remembers the first position it has not reported yet (a block
//! height, or for a pending-transaction filter the number the mempool gave
//! an admitted transaction); each poll hands out the positions from there
//! to the head and moves the cursor past them. As in Geth, a filter that nobody polls for
//! [`FILTER_TIMEOUT`] is removed, and ids are random, so one client cannot
//! guess and drain another's filter. A node holds at most [`MAX_FILTERS`]
//! at a time, so a client that installs filters in a loop cannot exhaust
//! its memory; one poll reports at most [`MAX_POLL_BLOCKS`] blocks and the
//! next poll goes on from there.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// A filter not polled for this long is removed (Geth's deadline).
pub const FILTER_TIMEOUT: Duration = Duration::from_secs(300);
/// Filters one node holds at a time.
pub const MAX_FILTERS: usize = 4096;
/// Blocks one poll reports at most (the event query's limit).
pub const MAX_POLL_BLOCKS: u64 = tongtian_node::MAX_EVENT_RANGE;

/// Why a filter could not be installed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("too many filters installed (at most {0}); remove some with eth_uninstallFilter")]
pub struct TooManyFilters(pub usize);

/// What a filter reports: logs matching a query (`Q`), new block hashes,
/// or hashes of newly admitted transactions.
#[derive(Clone, Debug, PartialEq)]
pub enum FilterKind<Q> {
    /// `eth_newFilter`: logs matching the query (positions are heights).
    Logs(Q),
    /// `eth_newBlockFilter`: hashes of new blocks (positions are heights).
    Blocks,
    /// `eth_newPendingTransactionFilter`: hashes of transactions the
    /// mempool admitted (positions are its arrival numbers).
    Pending,
}

struct Installed<Q> {
    kind: FilterKind<Q>,
    /// First height not reported yet.
    next: u64,
    /// Last time the filter was installed or polled.
    touched: Instant,
}

/// The installed filters of one node.
pub struct Filters<Q> {
    inner: Mutex<HashMap<String, Installed<Q>>>,
    max: usize,
    timeout: Duration,
}

impl<Q: Clone> Default for Filters<Q> {
    fn default() -> Self {
        Filters::new(MAX_FILTERS, FILTER_TIMEOUT)
    }
}

impl<Q> std::fmt::Debug for Filters<Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filters")
            .field("installed", &self.inner.lock().len())
            .finish()
    }
}

impl<Q: Clone> Filters<Q> {
    /// A registry holding at most `max` filters, each removed after
    /// `timeout` without a poll.
    pub fn new(max: usize, timeout: Duration) -> Self {
        Filters {
            inner: Mutex::new(HashMap::new()),
            max,
            timeout,
        }
    }

    /// Install a filter that reports from position `next` on; its id.
    pub fn install(
        &self,
        kind: FilterKind<Q>,
        next: u64,
        now: Instant,
    ) -> Result<String, TooManyFilters> {
        let mut map = self.inner.lock();
        if map.len() >= self.max {
            self.sweep(&mut map, now);
            if map.len() >= self.max {
                return Err(TooManyFilters(self.max));
            }
        }
        // 128 random bits, as a quantity like Geth's ids; retried on the
        // (astronomically unlikely) collision.
        let id = loop {
            let id = format!("{:#x}", rand::random::<u128>());
            if !map.contains_key(&id) {
                break id;
            }
        };
        map.insert(
            id.clone(),
            Installed {
                kind,
                next,
                touched: now,
            },
        );
        Ok(id)
    }

    /// Poll filter `id`, whose newest position is `head` of its kind: what
    /// it reports and the positions not reported before (empty when there
    /// are none). The cursor moves past them. `None` if there is no such
    /// filter (never installed, removed, or expired).
    pub fn poll(
        &self,
        id: &str,
        now: Instant,
        head: impl FnOnce(&FilterKind<Q>) -> u64,
    ) -> Option<(FilterKind<Q>, RangeInclusive<u64>)> {
        let mut map = self.inner.lock();
        self.sweep(&mut map, now);
        let f = map.get_mut(id)?;
        f.touched = now;
        let latest = head(&f.kind);
        let from = f.next;
        let to = latest.min(from.saturating_add(MAX_POLL_BLOCKS - 1));
        // An empty range when nothing is new: `from > to`.
        f.next = f.next.max(to.saturating_add(1));
        Some((f.kind.clone(), from..=to))
    }

    /// What filter `id` reports, without moving its cursor (for
    /// `eth_getFilterLogs`); counts as a poll for the timeout.
    pub fn get(&self, id: &str, now: Instant) -> Option<FilterKind<Q>> {
        let mut map = self.inner.lock();
        self.sweep(&mut map, now);
        let f = map.get_mut(id)?;
        f.touched = now;
        Some(f.kind.clone())
    }

    /// Remove filter `id`; whether it existed.
    pub fn uninstall(&self, id: &str) -> bool {
        self.inner.lock().remove(id).is_some()
    }

    /// The ids of the filters installed now.
    pub fn ids(&self) -> Vec<String> {
        self.inner.lock().keys().cloned().collect()
    }

    /// Filters installed now.
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    /// Whether no filter is installed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn sweep(&self, map: &mut HashMap<String, Installed<Q>>, now: Instant) {
        map.retain(|_, f| now.saturating_duration_since(f.touched) < self.timeout);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_poll_reports_each_height_once() {
        let f: Filters<u8> = Filters::default();
        let t = Instant::now();
        let id = f.install(FilterKind::Logs(7), 5, t).unwrap();
        // Nothing new yet: the head is still below the cursor.
        let (kind, r) = f.poll(&id, t, |_| 4).unwrap();
        assert_eq!(kind, FilterKind::Logs(7));
        assert!(r.is_empty(), "{r:?}");
        assert_eq!(f.poll(&id, t, |_| 7).unwrap().1, 5..=7);
        assert!(f.poll(&id, t, |_| 7).unwrap().1.is_empty());
        assert_eq!(f.poll(&id, t, |_| 8).unwrap().1, 8..=8);
        // `get` does not move the cursor.
        assert_eq!(f.get(&id, t), Some(FilterKind::Logs(7)));
        assert_eq!(f.poll(&id, t, |_| 9).unwrap().1, 9..=9);
    }

    #[test]
    fn a_long_gap_is_reported_over_several_polls() {
        let f: Filters<()> = Filters::default();
        let t = Instant::now();
        let id = f.install(FilterKind::Blocks, 1, t).unwrap();
        let latest = 2 * MAX_POLL_BLOCKS + 10;
        assert_eq!(f.poll(&id, t, |_| latest).unwrap().1, 1..=MAX_POLL_BLOCKS);
        assert_eq!(
            f.poll(&id, t, |_| latest).unwrap().1,
            MAX_POLL_BLOCKS + 1..=2 * MAX_POLL_BLOCKS
        );
        assert_eq!(
            f.poll(&id, t, |_| latest).unwrap().1,
            2 * MAX_POLL_BLOCKS + 1..=latest
        );
        assert!(f.poll(&id, t, |_| latest).unwrap().1.is_empty());
    }

    #[test]
    fn unpolled_filters_expire_and_polled_ones_stay() {
        let f: Filters<()> = Filters::new(10, Duration::from_secs(60));
        let t0 = Instant::now();
        let idle = f.install(FilterKind::Blocks, 0, t0).unwrap();
        let busy = f.install(FilterKind::Blocks, 0, t0).unwrap();
        assert_ne!(idle, busy);
        assert!(f.poll(&busy, t0 + Duration::from_secs(40), |_| 0).is_some());
        let later = t0 + Duration::from_secs(70);
        assert!(f.poll(&idle, later, |_| 0).is_none(), "expired");
        assert!(f.poll(&busy, later, |_| 0).is_some(), "polled 30 s ago");
        assert!(f.uninstall(&busy));
        assert!(!f.uninstall(&busy));
        assert!(f.poll(&busy, later, |_| 0).is_none());
        assert!(f.is_empty());
    }

    #[test]
    fn the_number_of_filters_is_capped_until_some_go() {
        let f: Filters<()> = Filters::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let ids: Vec<String> = (0..3)
            .map(|_| f.install(FilterKind::Blocks, 0, t0).unwrap())
            .collect();
        assert_eq!(f.install(FilterKind::Blocks, 0, t0), Err(TooManyFilters(3)));
        assert!(f.uninstall(&ids[0]));
        let again = f.install(FilterKind::Blocks, 0, t0).unwrap();
        assert_eq!(f.len(), 3);
        // Once the others expire, there is room again.
        let t1 = t0 + Duration::from_secs(61);
        assert!(f.install(FilterKind::Blocks, 0, t1).is_ok());
        assert_eq!(f.len(), 1);
        assert!(f.poll(&again, t1, |_| 0).is_none());
    }
}
