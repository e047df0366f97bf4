//! Reconciles, and the watches that list the most, on tasks of their own.
//!
//! kube-runtime's `Controller` polls every reconcile in flight from the one task that drives
//! it, so however many are in flight their CPU work (decoding the object and what it owns,
//! planning, encoding a write) runs on one core at a time. A restart over 100,000 Rollouts is
//! 100,000 reconciles that plan nothing and are all CPU (docs/performance.md): spawned, they
//! use every core the runtime has. The controller still runs one reconcile per object at a
//! time: it awaits the task as it awaited the reconcile.
//!
//! The same holds for the watches it merges: each page of a list is decoded (and its
//! objects trimmed and packed) inside the stream's poll, on the controller's task. The
//! Rollout watch is driven by a task of its own ([`stream_on_own_task`]), and so is the
//! ReplicaSet watch it shares with the Experiment controller ([`crate::replica_sets`]), so at
//! a restart the two lists are decoded side by side.

use std::future::Future;

use futures::{Stream, StreamExt};
use tokio::task::JoinHandle;

/// Run `work` on a task of its own and wait for it. Dropping the returned future (the
/// controller shutting down, or its caller giving up) aborts the task, as dropping `work`
/// itself would have stopped it; a panic in `work` resumes in the caller.
pub async fn on_own_task<T, F>(work: F) -> T
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut task = AbortOnDrop(tokio::spawn(work));
    match (&mut task.0).await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: only `AbortOnDrop` (which runs when this future is dropped, so it is no
        // longer polled) or the runtime shutting down (which drops this future too) cancel
        // the task. Nothing is left to report to.
        Err(_) => std::future::pending().await,
    }
}

/// Drive `stream` on a task of its own, handing its items over through a channel of
/// `capacity` items (the task waits while the channel is full, as the stream waited to be
/// polled). The task ends when `stream` does, or when the returned stream is dropped.
pub fn stream_on_own_task<S>(
    stream: S,
    capacity: usize,
) -> impl Stream<Item = S::Item> + Send + 'static
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if tx.send(item).await.is_err() {
                break;
            }
        }
    });
    // The task is aborted with the receiving end: a watch waiting for its next event would
    // otherwise notice only when that event came.
    futures::stream::unfold((rx, AbortOnDrop(task)), |(mut rx, task)| async move {
        let item = rx.recv().await?;
        Some((item, (rx, task)))
    })
}

/// A task aborted when this handle is dropped.
pub(crate) struct AbortOnDrop<T>(pub(crate) JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn the_work_s_result_is_returned() {
        assert_eq!(on_own_task(async { 6 * 7 }).await, 42);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_runs_on_another_worker_while_the_caller_s_thread_is_blocked() {
        // The caller's thread blocks until the spawned work has run: on the caller's task
        // alone that would deadlock.
        let (tx, rx) = std::sync::mpsc::channel();
        let waiting = on_own_task(async move { tx.send(()).unwrap() });
        let mut waiting = Box::pin(waiting);
        // Poll once so the task is spawned, then block this thread on the work's signal.
        let _ = futures::poll!(&mut waiting);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the work ran on another worker");
        waiting.await;
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_caller_aborts_the_work() {
        let finished = Arc::new(AtomicBool::new(false));
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let flag = finished.clone();
        let caller = tokio::spawn(on_own_task(async move {
            let _ = started_tx.send(());
            tokio::time::sleep(Duration::from_millis(200)).await;
            flag.store(true, Ordering::SeqCst);
        }));
        started.await.unwrap();
        caller.abort();
        let _ = caller.await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!finished.load(Ordering::SeqCst), "the aborted work went on");
    }

    #[tokio::test]
    async fn a_stream_on_its_own_task_yields_every_item_in_order_then_ends() {
        let items: Vec<u32> = stream_on_own_task(futures::stream::iter(0..1000), 8)
            .collect()
            .await;
        assert_eq!(items, (0..1000).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_receiving_stream_stops_a_task_waiting_on_its_stream() {
        // A watch between events: one item, then nothing for ever. The flag is set when the
        // stream (and so the task holding it) is dropped.
        struct SetOnDrop(Arc<AtomicBool>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let guard = SetOnDrop(dropped.clone());
        let quiet = futures::stream::once(async {})
            .chain(futures::stream::pending())
            .map(move |item| {
                let _ = &guard;
                item
            });
        let mut received = Box::pin(stream_on_own_task(quiet, 1));
        received.next().await.expect("the first item");
        assert!(!dropped.load(Ordering::SeqCst));
        drop(received);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            dropped.load(Ordering::SeqCst),
            "the task still holds the stream"
        );
    }

    #[tokio::test]
    #[should_panic(expected = "boom")]
    async fn a_panic_in_the_work_resumes_in_the_caller() {
        on_own_task(async { panic!("boom") }).await
    }
}
