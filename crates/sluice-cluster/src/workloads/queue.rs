//! A deduplicating work queue with timed requeues, the way client-go's workqueue behaves.
//!
//! A key that is already waiting is not queued twice; a key whose reconcile is running is
//! marked dirty and runs once more afterwards (never twice at the same time). Timed requeues
//! live in one `DelayQueue` per controller, so thousands of waiting objects cost one timer
//! wheel, not thousands of sleeping tasks, and nothing polls.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::time::{DelayQueue, delay_queue};

use super::WorkloadsError;
use super::informer::ObjectKey;

/// The sending side: cheap to clone, given to the informers' handlers.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::UnboundedSender<(ObjectKey, Duration)>,
}

/// The receiving side, consumed by [`run_worker`].
pub type Receiver = mpsc::UnboundedReceiver<(ObjectKey, Duration)>;

impl Queue {
    /// A queue and the receiver its worker drains.
    pub fn new() -> (Self, Receiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    /// Queues `key` for a reconcile as soon as a worker is free.
    pub fn add(&self, key: ObjectKey) {
        self.add_after(key, Duration::ZERO);
    }

    /// Queues `key` after `delay`. Used to coalesce a burst of events about an object's
    /// children (twenty Pods turning Ready one after the other) into one reconcile and one
    /// status write instead of twenty.
    pub fn add_after(&self, key: ObjectKey, delay: Duration) {
        // A closed receiver means the controller is shutting down; dropping work is right.
        let _ = self.tx.send((key, delay));
    }
}

/// Retry delay after the n-th consecutive failure: 100 ms doubling, capped at 30 s.
pub fn backoff(failures: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << failures.min(9));
    Duration::from_millis(ms.min(30_000))
}

/// Runs `reconcile` for queued keys, at most `concurrency` at once, until `shutdown`.
/// A reconcile returns when it wants to run again (`Some(delay)`), or fails and is retried
/// with [`backoff`].
pub async fn run_worker<F, Fut>(
    name: &'static str,
    mut rx: Receiver,
    concurrency: usize,
    shutdown: CancellationToken,
    reconcile: F,
) where
    F: Fn(ObjectKey) -> Fut,
    Fut: Future<Output = Result<Option<Duration>, WorkloadsError>> + Send + 'static,
{
    let mut ready: VecDeque<ObjectKey> = VecDeque::new();
    let mut queued: HashSet<ObjectKey> = HashSet::new();
    let mut running: HashMap<tokio::task::Id, ObjectKey> = HashMap::new();
    let mut running_keys: HashSet<ObjectKey> = HashSet::new();
    let mut dirty: HashSet<ObjectKey> = HashSet::new();
    let mut timers: DelayQueue<ObjectKey> = DelayQueue::new();
    let mut timer_of: HashMap<ObjectKey, (delay_queue::Key, tokio::time::Instant)> = HashMap::new();
    let mut failures: HashMap<ObjectKey, u32> = HashMap::new();
    let mut tasks: JoinSet<Result<Option<Duration>, WorkloadsError>> = JoinSet::new();

    let enqueue = |key: ObjectKey,
                   ready: &mut VecDeque<ObjectKey>,
                   queued: &mut HashSet<ObjectKey>,
                   running_keys: &HashSet<ObjectKey>,
                   dirty: &mut HashSet<ObjectKey>| {
        if running_keys.contains(&key) {
            dirty.insert(key);
        } else if queued.insert(key.clone()) {
            ready.push_back(key);
        }
    };

    // Arms the key's timer for `delay` from now unless it already fires sooner.
    let schedule =
        |key: ObjectKey,
         delay: Duration,
         timers: &mut DelayQueue<ObjectKey>,
         timer_of: &mut HashMap<ObjectKey, (delay_queue::Key, tokio::time::Instant)>| {
            let at = tokio::time::Instant::now() + delay;
            match timer_of.get(&key) {
                Some((_, existing)) if *existing <= at => {}
                Some((tk, _)) => {
                    timers.reset_at(tk, at);
                    timer_of.insert(key, (*tk, at));
                }
                None => {
                    let tk = timers.insert_at(key.clone(), at);
                    timer_of.insert(key, (tk, at));
                }
            }
        };

    loop {
        // Take everything already sent before starting work, so bursts of events for the
        // same object collapse into one reconcile.
        while let Ok((key, delay)) = rx.try_recv() {
            if delay.is_zero() {
                enqueue(key, &mut ready, &mut queued, &running_keys, &mut dirty);
            } else {
                schedule(key, delay, &mut timers, &mut timer_of);
            }
        }
        while tasks.len() < concurrency {
            let Some(key) = ready.pop_front() else { break };
            queued.remove(&key);
            running_keys.insert(key.clone());
            let handle = tasks.spawn(reconcile(key.clone()));
            running.insert(handle.id(), key);
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some((key, delay)) = rx.recv() => {
                if delay.is_zero() {
                    enqueue(key, &mut ready, &mut queued, &running_keys, &mut dirty);
                } else {
                    schedule(key, delay, &mut timers, &mut timer_of);
                }
            }
            Some(expired) = timers.next(), if !timers.is_empty() => {
                let key = expired.into_inner();
                timer_of.remove(&key);
                enqueue(key, &mut ready, &mut queued, &running_keys, &mut dirty);
            }
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let (id, outcome) = match done {
                    Ok((id, res)) => (id, res),
                    Err(e) => (e.id(), Err(WorkloadsError::Panicked(e.to_string()))),
                };
                let Some(key) = running.remove(&id) else { continue };
                running_keys.remove(&key);
                let after = match outcome {
                    Ok(after) => {
                        failures.remove(&key);
                        after
                    }
                    Err(e) => {
                        let n = failures.entry(key.clone()).or_default();
                        *n += 1;
                        tracing::warn!(controller = name, object = %key, error = %e, attempt = *n, "reconcile failed");
                        Some(backoff(*n - 1))
                    }
                };
                if let Some(delay) = after {
                    schedule(key.clone(), delay, &mut timers, &mut timer_of);
                }
                if dirty.remove(&key) {
                    enqueue(key, &mut ready, &mut queued, &running_keys, &mut dirty);
                }
            }
        }
    }
    tasks.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }

    #[tokio::test]
    async fn a_requeue_runs_the_key_again_after_the_delay() {
        let (queue, rx) = Queue::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let shutdown = CancellationToken::new();
        let r = runs.clone();
        let worker = tokio::spawn(run_worker("test", rx, 4, shutdown.clone(), move |_k| {
            let r = r.clone();
            async move {
                let n = r.fetch_add(1, Ordering::SeqCst);
                Ok((n < 2).then_some(Duration::from_millis(10)))
            }
        }));
        queue.add(ObjectKey::new("ns", "a"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while runs.load(Ordering::SeqCst) < 3 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        shutdown.cancel();
        worker.await.unwrap();
    }

    #[tokio::test]
    async fn duplicate_keys_queued_together_run_once() {
        let (queue, rx) = Queue::new();
        for _ in 0..10 {
            queue.add(ObjectKey::new("ns", "a"));
        }
        queue.add(ObjectKey::new("ns", "b"));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let shutdown = CancellationToken::new();
        let s = seen.clone();
        let worker = tokio::spawn(run_worker("test", rx, 1, shutdown.clone(), move |k| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(k.name);
                Ok(None)
            }
        }));
        let wait_for = |name: &'static str| {
            let seen = seen.clone();
            async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while !seen.lock().unwrap().iter().any(|n| n == name)
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        };
        wait_for("b").await;
        // Anything still pending for "a" would run before "c" (FIFO, one at a time).
        queue.add(ObjectKey::new("ns", "c"));
        wait_for("c").await;
        assert_eq!(*seen.lock().unwrap(), ["a", "b", "c"]);
        shutdown.cancel();
        worker.await.unwrap();
    }
}
