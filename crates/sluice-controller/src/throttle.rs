//! A client-side request budget for the Kubernetes client (`--qps`, `--burst`).
//!
//! The controller's real bound on load is the number of reconciles in flight: it adapts to
//! how fast the API server answers. A fixed budget on top is for operators who share an API
//! server with other tenants and want a ceiling they can state; it is off by default, since
//! client-go's defaults (5 QPS in client-go, 40 in Argo Rollouts) are what makes mass updates
//! crawl at scale.
//!
//! The budget is a generic cell rate: a steady `qps` with up to `burst` requests at once.
//! Each request reserves the next slot and waits for it on tokio's clock (so tests run on
//! paused time); a request never fails for lack of budget, it waits. A watch counts once,
//! when it is opened. This is client-go's token bucket (what `--qps`/`--burst` mean to
//! Kubernetes users). Written here rather than taken from a crate: tower's `RateLimit` is a
//! fixed window (a whole window's requests at once, then none until the next one), and
//! `governor` waits on its own clock, which tests could only check with real sleeps.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use tokio::time::{Instant, Sleep, sleep_until};
use tower::{Layer, Service};

/// A steady rate with a burst allowance, shared by every clone of the layer's services.
#[derive(Debug)]
pub struct Budget {
    interval: Duration,
    tolerance: Duration,
    /// When the next request would be due at the steady rate (the theoretical arrival time).
    next: Mutex<Option<Instant>>,
}

impl Budget {
    /// `qps` requests per second on average, `burst` at once (at least 1). `None` when `qps`
    /// is not positive: no budget.
    pub fn new(qps: f64, burst: u32) -> Option<Arc<Budget>> {
        if !(qps.is_finite() && qps > 0.0) {
            return None;
        }
        let interval = Duration::from_secs_f64(1.0 / qps);
        Some(Arc::new(Budget {
            interval,
            tolerance: interval * burst.max(1).saturating_sub(1),
            next: Mutex::new(None),
        }))
    }

    /// Reserves the next slot: the instant at or after `now` at which the request may go.
    pub fn reserve(&self, now: Instant) -> Instant {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let due = next.map_or(now, |n| n.max(now));
        *next = Some(due + self.interval);
        due.checked_sub(self.tolerance).map_or(now, |t| t.max(now))
    }
}

/// Tower layer applying a [`Budget`] to the kube client's requests.
#[derive(Clone, Debug)]
pub struct BudgetLayer {
    budget: Arc<Budget>,
}

impl BudgetLayer {
    pub fn new(budget: Arc<Budget>) -> Self {
        BudgetLayer { budget }
    }
}

impl<S> Layer<S> for BudgetLayer {
    type Service = BudgetService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BudgetService {
            inner,
            budget: self.budget.clone(),
            wait: None,
            granted: false,
        }
    }
}

/// The service [`BudgetLayer`] wraps around the client stack. It is ready only once its next
/// slot has come, so the kube client's request queue (a buffer in front of the stack) holds
/// requests in order until the budget lets each go.
#[derive(Debug)]
pub struct BudgetService<S> {
    inner: S,
    budget: Arc<Budget>,
    /// The wait for the reserved slot, while there is one.
    wait: Option<Pin<Box<Sleep>>>,
    /// The slot has come and the next call may use it.
    granted: bool,
}

impl<S: Clone> Clone for BudgetService<S> {
    fn clone(&self) -> Self {
        BudgetService {
            inner: self.inner.clone(),
            budget: self.budget.clone(),
            wait: None,
            granted: false,
        }
    }
}

impl<S, B> Service<Request<B>> for BudgetService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !self.granted {
            let budget = &self.budget;
            let wait = self
                .wait
                .get_or_insert_with(|| Box::pin(sleep_until(budget.reserve(Instant::now()))));
            std::task::ready!(wait.as_mut().poll(cx));
            self.wait = None;
            self.granted = true;
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.granted = false;
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn no_positive_rate_means_no_budget() {
        assert!(Budget::new(0.0, 10).is_none());
        assert!(Budget::new(-1.0, 10).is_none());
        assert!(Budget::new(f64::NAN, 10).is_none());
        assert!(Budget::new(10.0, 0).is_some());
    }

    #[test]
    fn a_burst_goes_at_once_and_the_rest_at_the_steady_rate() {
        let b = Budget::new(10.0, 3).unwrap();
        let t0 = Instant::now();
        let slots: Vec<Duration> = (0..6).map(|_| b.reserve(t0) - t0).collect();
        assert_eq!(slots, [ms(0), ms(0), ms(0), ms(100), ms(200), ms(300)]);
    }

    #[test]
    fn an_idle_budget_refills_up_to_the_burst_only() {
        let b = Budget::new(10.0, 2).unwrap();
        let t0 = Instant::now();
        for _ in 0..4 {
            b.reserve(t0);
        }
        // Ten seconds idle: two at once again, not a hundred.
        let later = t0 + Duration::from_secs(10);
        let slots: Vec<Duration> = (0..3).map(|_| b.reserve(later) - later).collect();
        assert_eq!(slots, [ms(0), ms(0), ms(100)]);
    }

    #[derive(Clone)]
    struct Stamp(Arc<Mutex<Vec<Instant>>>);

    impl Service<Request<()>> for Stamp {
        type Response = ();
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<(), Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            self.0.lock().unwrap().push(Instant::now());
            std::future::ready(Ok(()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn requests_over_the_burst_reach_the_server_at_the_steady_rate() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let layer = BudgetLayer::new(Budget::new(20.0, 2).unwrap());
        let svc = layer.layer(Stamp(seen.clone()));
        let t0 = Instant::now();
        let calls = (0..5).map(|_| {
            let mut s = svc.clone();
            async move {
                futures::future::poll_fn(|cx| s.poll_ready(cx))
                    .await
                    .unwrap();
                s.call(Request::new(())).await.unwrap();
            }
        });
        futures::future::join_all(calls).await;
        let mut at: Vec<Duration> = seen.lock().unwrap().iter().map(|t| *t - t0).collect();
        at.sort();
        assert_eq!(at, [ms(0), ms(0), ms(50), ms(100), ms(150)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_kube_client_with_the_layer_sends_at_the_budgets_pace() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stamp = seen.clone();
        let server = tower::service_fn(move |_: Request<kube::client::Body>| {
            stamp.lock().unwrap().push(Instant::now());
            async {
                Ok::<_, std::convert::Infallible>(http::Response::new(kube::client::Body::from(
                    b"{}".to_vec(),
                )))
            }
        });
        let svc = BudgetLayer::new(Budget::new(10.0, 1).unwrap()).layer(server);
        let client = kube::Client::new(svc, "default");
        let t0 = Instant::now();
        let gets = (0..4).map(|i| {
            let client = client.clone();
            async move {
                let req = Request::get(format!("/api/v1/namespaces/default/configmaps/c{i}"))
                    .body(Vec::new())
                    .unwrap();
                client.request_text(req).await.unwrap()
            }
        });
        futures::future::join_all(gets).await;
        let at: Vec<Duration> = seen.lock().unwrap().iter().map(|t| *t - t0).collect();
        assert_eq!(at, [ms(0), ms(100), ms(200), ms(300)]);
    }
}
