//! The controller's first pass: when every Rollout listed at start has been reconciled once.
//!
//! After a start (a restart, a new leader) the controller owes each existing Rollout one
//! reconcile before it has looked at everything: until then an update started while it was
//! down may not be progressing yet. "Caches synced" says the lists are in; this says the work
//! they brought is done. The controller logs it once, at info, with how many Rollouts the
//! pass took and how many of their reconciles failed; `sluice bench controller` reads that line
//! for its warm-start figure, so the figure is taken with the logging a production controller
//! runs with (no line per reconcile).
//!
//! Reconciles start as the Rollouts stream in, before their list is complete, so the ones that
//! finish before the list is in are remembered ([`FirstPass::reconciled`]) and taken off when
//! it is ([`FirstPass::listed`]). A Rollout deleted before its turn never is reconciled: its
//! deletion ends its wait ([`FirstPass::gone`]). Once the pass is over every call is one
//! atomic load; what the pass remembered is freed.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The message of the one info line that ends the first pass (with the fields `rollouts`,
/// `failed` and `seconds`).
pub const FIRST_PASS_DONE: &str = "every Rollout listed at start reconciled once";

/// The first pass of one controller over the Rollouts it found at start.
#[derive(Debug)]
pub struct FirstPass {
    over: AtomicBool,
    state: Mutex<State>,
    started: Instant,
}

#[derive(Debug)]
enum State {
    /// The Rollouts are still being listed: the keys reconciled (or deleted) so far.
    Listing {
        done: HashSet<String>,
        failed: usize,
    },
    /// Listed: the keys not reconciled yet, out of `listed`.
    Waiting {
        pending: HashSet<String>,
        listed: usize,
        failed: usize,
    },
    Over,
}

/// A first pass that just ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// Rollouts listed at start (those deleted before their turn included).
    pub rollouts: usize,
    /// Of their first reconciles, how many failed (retried with backoff as any failure).
    pub failed: usize,
    /// Since the pass began (the controller's start).
    pub elapsed: Duration,
}

impl Default for FirstPass {
    fn default() -> Self {
        Self::new()
    }
}

impl FirstPass {
    /// A pass beginning now, before anything is listed.
    pub fn new() -> Self {
        Self {
            over: AtomicBool::new(false),
            state: Mutex::new(State::Listing {
                done: HashSet::new(),
                failed: 0,
            }),
            started: Instant::now(),
        }
    }

    /// Whether every Rollout listed at start has been reconciled once.
    pub fn is_over(&self) -> bool {
        self.over.load(Ordering::Acquire)
    }

    /// A reconcile of the Rollout `key` ended (`ok`: without an error). Returns the pass
    /// if this ended it.
    pub fn reconciled(&self, key: &str, ok: bool) -> Option<Finished> {
        self.done(key, !ok)
    }

    /// The Rollout `key` was deleted: it is not waited for.
    pub fn gone(&self, key: &str) -> Option<Finished> {
        self.done(key, false)
    }

    /// The Rollouts were listed: `keys` is every Rollout the pass must see reconciled.
    /// Returns the pass if all of them already were. Only the first call counts.
    pub fn listed<I>(&self, keys: I) -> Option<Finished>
    where
        I: IntoIterator<Item = String>,
    {
        if self.is_over() {
            return None;
        }
        let mut state = self.lock();
        let State::Listing { done, failed } = &mut *state else {
            return None;
        };
        let failed = *failed;
        let mut listed = 0;
        let pending: HashSet<String> = keys
            .into_iter()
            .inspect(|_| listed += 1)
            .filter(|key| !done.contains(key))
            .collect();
        *state = State::Waiting {
            pending,
            listed,
            failed,
        };
        self.end_if_done(&mut state)
    }

    fn done(&self, key: &str, failure: bool) -> Option<Finished> {
        if self.is_over() {
            return None;
        }
        let mut state = self.lock();
        match &mut *state {
            State::Listing { done, failed } => {
                if done.insert(key.to_string()) && failure {
                    *failed += 1;
                }
                None
            }
            State::Waiting {
                pending, failed, ..
            } => {
                if pending.remove(key) && failure {
                    *failed += 1;
                }
                self.end_if_done(&mut state)
            }
            State::Over => None,
        }
    }

    fn end_if_done(&self, state: &mut State) -> Option<Finished> {
        let State::Waiting {
            pending,
            listed,
            failed,
        } = state
        else {
            return None;
        };
        if !pending.is_empty() {
            return None;
        }
        let finished = Finished {
            rollouts: *listed,
            failed: *failed,
            elapsed: self.started.elapsed(),
        };
        *state = State::Over;
        self.over.store(true, Ordering::Release);
        Some(finished)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| format!("ns/{n}")).collect()
    }

    #[test]
    fn the_pass_ends_with_the_last_listed_rollout_reconciled_and_only_once() {
        let pass = FirstPass::new();
        assert_eq!(pass.listed(keys(&["a", "b", "c"])), None);
        assert_eq!(pass.reconciled("ns/a", true), None);
        assert_eq!(
            pass.reconciled("ns/a", true),
            None,
            "a second reconcile is not another Rollout"
        );
        assert_eq!(pass.reconciled("ns/b", true), None);
        assert!(!pass.is_over());
        let finished = pass
            .reconciled("ns/c", true)
            .expect("the last one ends the pass");
        assert_eq!((finished.rollouts, finished.failed), (3, 0));
        assert!(pass.is_over());
        assert_eq!(
            pass.reconciled("ns/c", true),
            None,
            "the end is reported once"
        );
        assert_eq!(
            pass.listed(keys(&["d"])),
            None,
            "a later list starts nothing"
        );
    }

    #[test]
    fn reconciles_that_end_before_the_list_is_in_count_toward_it() {
        let pass = FirstPass::new();
        assert_eq!(pass.reconciled("ns/a", true), None);
        assert_eq!(pass.reconciled("ns/b", false), None);
        assert_eq!(pass.listed(keys(&["a", "b", "c"])), None);
        let finished = pass.reconciled("ns/c", true).expect("ended");
        assert_eq!((finished.rollouts, finished.failed), (3, 1));
    }

    #[test]
    fn a_list_whose_rollouts_were_all_reconciled_already_ends_the_pass_at_once() {
        let pass = FirstPass::new();
        pass.reconciled("ns/a", true);
        let finished = pass.listed(keys(&["a"])).expect("nothing left to wait for");
        assert_eq!(finished.rollouts, 1);
        let empty = FirstPass::new();
        assert_eq!(empty.listed(Vec::new()).map(|f| f.rollouts), Some(0));
    }

    #[test]
    fn a_rollout_deleted_before_its_turn_is_not_waited_for() {
        let pass = FirstPass::new();
        pass.listed(keys(&["a", "b"]));
        pass.reconciled("ns/a", true);
        let finished = pass.gone("ns/b").expect("b will never be reconciled");
        assert_eq!((finished.rollouts, finished.failed), (2, 0));
    }

    #[test]
    fn failed_first_reconciles_are_counted_and_a_rollout_not_listed_changes_nothing() {
        let pass = FirstPass::new();
        pass.listed(keys(&["a", "b"]));
        assert_eq!(pass.reconciled("other/x", false), None);
        pass.reconciled("ns/a", false);
        pass.reconciled("ns/a", true);
        let finished = pass.reconciled("ns/b", true).expect("ended");
        assert_eq!(finished.failed, 1, "only a's first reconcile failed");
    }
}
