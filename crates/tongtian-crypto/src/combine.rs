//! Signature checks from many threads, combined into larger batches.
//!
//! Batch verification costs less per signature the larger the batch (on
//! Ed25519 here, about 12 µs at 64 items against 8 µs at 1,024). A node
//! under load admits many small requests at once, each with its own few
//! hundred signatures; checked request by request, every batch stays small.
//! A [`Combiner`] lets the threads of those requests meet: whichever thread
//! finds no check running takes every waiting request (its own included)
//! and checks them as one [`verify_many`] call, while the others wait for
//! their answers. This is flat combining: no thread of its own, and a
//! request that arrives when nothing else is waiting is checked at once.

use crate::{verify_many, CryptoSuite, VerifyItem};
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

/// Most items one combined check takes (whole requests are taken, so one
/// larger request may exceed it alone). Bounds how long a request waits
/// behind others: about 16 ms of Ed25519 checking on two cores.
const MAX_COMBINED: usize = 4096;

/// One item to check, owning its bytes, so another thread can check it.
struct Owned {
    public_key: Vec<u8>,
    message: Vec<u8>,
    signature: Vec<u8>,
}

#[derive(Default)]
struct State {
    /// Requests waiting to be taken, oldest first: ticket and items.
    waiting: Vec<(u64, Vec<Owned>)>,
    /// Answers not yet collected, by ticket.
    answers: HashMap<u64, Vec<bool>>,
    /// Whether some thread is checking a combined batch now.
    busy: bool,
    next_ticket: u64,
}

/// Combines concurrent [`Combiner::verify`] calls into larger
/// [`verify_many`] batches. The answers are exactly those of calling
/// `verify_many` on each request alone.
#[derive(Default)]
pub struct Combiner {
    state: Mutex<State>,
    answered: Condvar,
}

impl std::fmt::Debug for Combiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Combiner").finish_non_exhaustive()
    }
}

/// Hands out answers when a combined check ends, also by unwinding: a
/// panic in the check answers its requests with `false` (refused), so no
/// caller waits forever.
struct Round<'a> {
    combiner: &'a Combiner,
    taken: Vec<(u64, usize)>,
    flags: Option<Vec<bool>>,
}

impl Drop for Round<'_> {
    fn drop(&mut self) {
        let mut state = self.combiner.lock();
        let mut flags = self.flags.take().unwrap_or_default().into_iter();
        for &(ticket, n) in &self.taken {
            let answer: Vec<bool> = (0..n).map(|_| flags.next().unwrap_or(false)).collect();
            state.answers.insert(ticket, answer);
        }
        state.busy = false;
        self.combiner.answered.notify_all();
    }
}

impl Combiner {
    /// A combiner with nothing waiting.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent (answers are
        // inserted whole, `busy` is reset by `Round`), so a poisoned lock is
        // still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Check `items` with `suite`, combined with whatever other threads
    /// are checking at the same time; one flag per item, as
    /// [`verify_many`] gives. Blocks until the answer is known.
    pub fn verify(&self, suite: &dyn CryptoSuite, items: &[VerifyItem<'_>]) -> Vec<bool> {
        if items.is_empty() {
            return Vec::new();
        }
        let owned = items
            .iter()
            .map(|i| Owned {
                public_key: i.public_key.to_vec(),
                message: i.message.to_vec(),
                signature: i.signature.to_vec(),
            })
            .collect();
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.waiting.push((ticket, owned));
        loop {
            if let Some(answer) = state.answers.remove(&ticket) {
                return answer;
            }
            if state.busy {
                state = self.answered.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Nobody is checking: take the oldest requests, up to the cap.
            state.busy = true;
            let mut take = 0;
            let mut count = 0;
            for (_, items) in &state.waiting {
                if take > 0 && count + items.len() > MAX_COMBINED {
                    break;
                }
                take += 1;
                count += items.len();
            }
            let batch: Vec<(u64, Vec<Owned>)> = state.waiting.drain(..take).collect();
            drop(state);
            let mut round = Round {
                combiner: self,
                taken: batch.iter().map(|(t, items)| (*t, items.len())).collect(),
                flags: None,
            };
            let refs: Vec<VerifyItem<'_>> = batch
                .iter()
                .flat_map(|(_, items)| items)
                .map(|o| VerifyItem {
                    public_key: &o.public_key,
                    message: &o.message,
                    signature: &o.signature,
                })
                .collect();
            round.flags = Some(verify_many(suite, &refs));
            drop(round);
            state = self.lock();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{suite, Keypair, SuiteId};
    use std::sync::Arc;

    #[test]
    fn concurrent_requests_get_their_own_answers() {
        let s = suite(SuiteId::Standard);
        let keys: Vec<Keypair> = (0..8u8)
            .map(|i| Keypair::from_seed(SuiteId::Standard, &[i]))
            .collect();
        // Each request: 150 items; request r forges items at r * 7 and r * 11.
        // Per item: public key, message, signature.
        type Request = Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>;
        let requests: Vec<Request> = (0..12usize)
            .map(|r| {
                (0..150usize)
                    .map(|i| {
                        let k = &keys[(r + i) % keys.len()];
                        let msg = format!("request {r} item {i}").into_bytes();
                        let mut sig = k.sign(&msg);
                        if i == r * 7 || i == r * 11 {
                            sig[5] ^= 1;
                        }
                        (k.public_key().to_vec(), msg, sig)
                    })
                    .collect()
            })
            .collect();
        let combiner = Arc::new(Combiner::new());
        // Hold checking back until every request waits, so they are
        // checked as one combined batch.
        combiner.lock().busy = true;
        let requests = Arc::new(requests);
        let handles: Vec<_> = (0..requests.len())
            .map(|r| {
                let combiner = combiner.clone();
                let requests = requests.clone();
                std::thread::spawn(move || {
                    let items: Vec<VerifyItem<'_>> = requests[r]
                        .iter()
                        .map(|(pk, m, sig)| VerifyItem {
                            public_key: pk,
                            message: m,
                            signature: sig,
                        })
                        .collect();
                    combiner.verify(suite(SuiteId::Standard), &items)
                })
            })
            .collect();
        while combiner.lock().waiting.len() < requests.len() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        combiner.lock().busy = false;
        combiner.answered.notify_all();
        for (r, h) in handles.into_iter().enumerate() {
            let flags = h.join().unwrap();
            assert_eq!(flags.len(), 150, "request {r}");
            for (i, ok) in flags.iter().enumerate() {
                let forged = i == r * 7 || i == r * 11;
                assert_eq!(*ok, !forged, "request {r} item {i}");
            }
        }
        assert!(combiner.verify(s, &[]).is_empty());
        let state = combiner.lock();
        assert!(state.waiting.is_empty() && state.answers.is_empty() && !state.busy);
    }
}
