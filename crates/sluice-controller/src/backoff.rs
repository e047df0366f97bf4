//! Per-object exponential backoff for failed reconciles.
//!
//! kube-runtime's `error_policy` is stateless, so the attempt count lives here,
//! keyed by object, and is cleared by the first successful reconcile.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Exponential backoff with a cap: `base · 2^(attempt-1)`, at most `max`.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempts: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// The keys anything is remembered for.
    pub fn keys(&self) -> Vec<String> {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// A backoff starting at `base` and never waiting longer than `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// Record one more failure of `key` and return how long to wait before retrying.
    pub fn failure(&self, key: &str) -> Duration {
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let attempt = map.entry(key.to_string()).or_insert(0);
        *attempt = attempt.saturating_add(1);
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The wait after the failures of `key` so far, without counting another: a reconcile
    /// that only reported a failure waits as long before the failed call is tried again.
    pub fn current(&self, key: &str) -> Duration {
        let map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let attempt = map.get(key).copied().unwrap_or(1).max(1);
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Forget the failures of `key` after a successful reconcile.
    pub fn success(&self, key: &str) {
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_per_failure_up_to_the_cap_and_reset_on_success() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<_> = (0..6).map(|_| b.failure("ns/a").as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.failure("ns/b").as_millis(), 100, "keys are independent");
        assert_eq!(
            b.current("ns/a").as_millis(),
            1000,
            "current does not count a failure"
        );
        assert_eq!(b.current("ns/a").as_millis(), 1000);
        b.success("ns/a");
        assert_eq!(b.current("ns/a").as_millis(), 100);
        assert_eq!(b.failure("ns/a").as_millis(), 100);
    }
}
