//! Reconciles on tasks of their own.
//!
//! kube-runtime's `Controller` polls every reconcile in flight from the one task that drives
//! it, so however many are in flight their CPU work (decoding the object and what it owns,
//! planning, encoding a write) runs on one core at a time. A restart over 100,000 Rollouts is
//! 100,000 reconciles that plan nothing and are all CPU (docs/performance.md): spawned, they
//! use every core the runtime has. The controller still runs one reconcile per object at a
//! time: it awaits the task as it awaited the reconcile.

use std::future::Future;

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

struct AbortOnDrop<T>(JoinHandle<T>);

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
    #[should_panic(expected = "boom")]
    async fn a_panic_in_the_work_resumes_in_the_caller() {
        on_own_task(async { panic!("boom") }).await
    }
}
