//! What stands between the service and a feed that may fail: a time limit per attempt,
//! retries with full jitter, a circuit breaker, and the freshness clock of the feed's data,
//! each counted in the feed's metrics.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::config::FeedSettings;
use crate::telemetry::Metrics;

/// Why a feed gave nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeedError {
    /// Worth another attempt: a timeout, a refused connection, a 5xx or a 429.
    #[error("{0}")]
    Transient(String),
    /// Not worth another attempt: a 4xx, or a body that is not the feed's format.
    #[error("{0}")]
    Malformed(String),
    #[error("the circuit is open after repeated failures")]
    CircuitOpen,
}

impl FeedError {
    /// An HTTP failure, sorted by whether retrying can help.
    pub fn from_reqwest(error: reqwest::Error) -> Self {
        match error.status() {
            Some(status) if status.is_client_error() && status.as_u16() != 429 => {
                Self::Malformed(format!("HTTP {status}"))
            }
            _ if error.is_decode() => Self::Malformed(describe(error)),
            _ => Self::Transient(describe(error)),
        }
    }
}

/// The error and its causes, without the URL: a feed's URL carries its API key, and this
/// text goes to the logs and the metrics' reasons.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// Sends a feed request: the body of a 200; a 429 or 5xx is transient, any other status is
/// refused with the start of its body (where the provider says why).
pub async fn send(request: reqwest::RequestBuilder, source: &str) -> Result<Vec<u8>, FeedError> {
    let response = request.send().await.map_err(FeedError::from_reqwest)?;
    let status = response.status();
    let body = response.bytes().await.map_err(FeedError::from_reqwest)?;
    match status.as_u16() {
        200 => Ok(body.to_vec()),
        429 | 500..=599 => Err(FeedError::Transient(format!("{source}: HTTP {status}"))),
        _ => Err(FeedError::Malformed(format!(
            "{source}: HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))),
    }
}

/// The delay before retry `attempt` (1 for the first): uniform between zero and a cap that
/// doubles with each attempt, so that many clients retrying do not arrive together.
pub fn full_jitter(initial_ms: u64, max_ms: u64, attempt: u32) -> Duration {
    let cap = initial_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(30))
        .min(max_ms);
    Duration::from_millis(rand::rng().random_range(0..=cap))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Circuit {
    Closed {
        failures: u32,
    },
    Open {
        since: Instant,
    },
    /// One trial call is out; the others are refused until it ends.
    HalfOpen,
}

pub struct FeedGuard {
    name: &'static str,
    settings: FeedSettings,
    metrics: Metrics,
    circuit: Mutex<Circuit>,
    newest: Mutex<Option<DateTime<Utc>>>,
}

impl FeedGuard {
    pub fn new(name: &'static str, settings: FeedSettings, metrics: Metrics) -> Self {
        metrics.feed_circuit_open.with_label_values(&[name]).set(0);
        Self {
            name,
            settings,
            metrics,
            circuit: Mutex::new(Circuit::Closed { failures: 0 }),
            newest: Mutex::new(None),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    fn circuit(&self) -> std::sync::MutexGuard<'_, Circuit> {
        self.circuit
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn is_open(&self) -> bool {
        !matches!(*self.circuit(), Circuit::Closed { .. })
    }

    /// No call failed since the last success: an answer is likely soon, worth a wait.
    pub fn healthy(&self) -> bool {
        matches!(*self.circuit(), Circuit::Closed { failures: 0 })
    }

    /// Open and cooling down: a call now would be refused, so none need start.
    pub fn refusing(&self) -> bool {
        matches!(*self.circuit(), Circuit::Open { since }
            if since.elapsed() < Duration::from_secs(self.settings.breaker_cooldown_secs))
    }

    /// Whether a call may go out now; takes the trial slot of a circuit whose cool-down has
    /// passed.
    fn admit(&self) -> bool {
        let mut circuit = self.circuit();
        match *circuit {
            Circuit::Closed { .. } => true,
            Circuit::Open { since }
                if since.elapsed() >= Duration::from_secs(self.settings.breaker_cooldown_secs) =>
            {
                *circuit = Circuit::HalfOpen;
                true
            }
            Circuit::Open { .. } | Circuit::HalfOpen => false,
        }
    }

    fn settle(&self, succeeded: bool) {
        let mut circuit = self.circuit();
        let next = match (*circuit, succeeded) {
            (_, true) => Circuit::Closed { failures: 0 },
            (Circuit::Closed { failures }, false)
                if failures + 1 < self.settings.breaker_failures.max(1) =>
            {
                Circuit::Closed {
                    failures: failures + 1,
                }
            }
            (_, false) => Circuit::Open {
                since: Instant::now(),
            },
        };
        if matches!(next, Circuit::Open { .. }) && !matches!(*circuit, Circuit::Open { .. }) {
            tracing::warn!(message = "Feed circuit opened.", feed = self.name);
        }
        *circuit = next;
        self.metrics
            .feed_circuit_open
            .with_label_values(&[self.name])
            .set(i64::from(matches!(next, Circuit::Open { .. })));
    }

    /// Runs `attempt` under the guard: refused at once while the circuit is open; each try
    /// limited in time; transient failures retried with jitter.
    pub async fn call<T, F, Fut>(&self, attempt: F) -> Result<T, FeedError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, FeedError>>,
    {
        if !self.admit() {
            self.count("short_circuited");
            return Err(FeedError::CircuitOpen);
        }
        let limit = Duration::from_millis(self.settings.timeout_ms);
        let mut tries = 0;
        let outcome = loop {
            let started = Instant::now();
            let (result, timed_out) = match tokio::time::timeout(limit, attempt()).await {
                Ok(result) => (result, false),
                Err(_) => (
                    Err(FeedError::Transient(format!(
                        "no answer within {} ms",
                        limit.as_millis()
                    ))),
                    true,
                ),
            };
            self.metrics
                .feed_request_duration
                .with_label_values(&[self.name])
                .observe(started.elapsed().as_secs_f64());
            let label = match &result {
                Ok(_) => "ok",
                Err(_) if timed_out => "timeout",
                Err(FeedError::Transient(_) | FeedError::CircuitOpen) => "error",
                Err(FeedError::Malformed(_)) => "malformed",
            };
            self.count(label);
            match result {
                Err(FeedError::Transient(reason)) if tries < self.settings.retries => {
                    tries += 1;
                    tracing::debug!(message = "Feed call failed; retrying.", feed = self.name, %reason, tries);
                    tokio::time::sleep(full_jitter(
                        self.settings.backoff_initial_ms,
                        self.settings.backoff_max_ms,
                        tries,
                    ))
                    .await;
                }
                other => break other,
            }
        };
        self.settle(outcome.is_ok());
        if let Err(error) = &outcome {
            tracing::warn!(message = "Feed call failed.", feed = self.name, %error);
        }
        outcome
    }

    fn count(&self, outcome: &str) {
        self.metrics
            .feed_requests
            .with_label_values(&[self.name, outcome])
            .inc();
    }

    /// Records that data as of `at` arrived.
    pub fn received(&self, at: DateTime<Utc>) {
        let mut newest = self.newest.lock().unwrap_or_else(|p| p.into_inner());
        if newest.is_none_or(|known| known < at) {
            *newest = Some(at);
        }
    }

    /// When the newest data arrived.
    pub fn newest(&self) -> Option<DateTime<Utc>> {
        *self.newest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the age gauge from the newest data received; called when metrics are read.
    pub fn publish_age(&self, now: DateTime<Utc>) {
        if let Some(newest) = self.newest() {
            self.metrics
                .feed_data_age
                .with_label_values(&[self.name])
                .set((now - newest).num_milliseconds() as f64 / 1_000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(failures: u32, cooldown_secs: u64) -> FeedGuard {
        let settings = FeedSettings {
            timeout_ms: 50,
            retries: 1,
            backoff_initial_ms: 1,
            backoff_max_ms: 2,
            breaker_failures: failures,
            breaker_cooldown_secs: cooldown_secs,
            ..FeedSettings::default()
        };
        FeedGuard::new("test", settings, Metrics::new())
    }

    #[tokio::test]
    async fn transient_failures_are_retried_and_open_the_circuit() {
        let guard = guard(2, 3_600);
        let calls = std::sync::atomic::AtomicU32::new(0);
        let failing = || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err::<(), _>(FeedError::Transient("HTTP 503".into()))
        };
        assert!(guard.call(failing).await.is_err());
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "one retry"
        );
        assert!(!guard.is_open());
        assert!(guard.call(failing).await.is_err());
        assert!(guard.is_open(), "two failed calls in a row");
        assert_eq!(guard.call(failing).await, Err(FeedError::CircuitOpen));
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            4,
            "refused at once"
        );
        let text = guard.metrics.render();
        assert!(
            text.contains(r#"etape_feed_requests_total{feed="test",outcome="short_circuited"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"etape_feed_circuit_open{feed="test"} 1"#));
    }

    #[tokio::test]
    async fn a_slow_answer_times_out_and_a_malformed_one_is_not_retried() {
        let guard = guard(10, 3_600);
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<u32, FeedError>(1)
        };
        let started = Instant::now();
        assert!(matches!(
            guard.call(slow).await,
            Err(FeedError::Transient(_))
        ));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "two attempts of 50 ms"
        );
        let calls = std::sync::atomic::AtomicU32::new(0);
        let malformed = || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err::<(), _>(FeedError::Malformed("not JSON".into()))
        };
        assert!(guard.call(malformed).await.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn after_the_cool_down_one_success_closes_the_circuit() {
        let guard = guard(1, 0);
        let failing = || async { Err::<(), _>(FeedError::Transient("refused".into())) };
        assert!(guard.call(failing).await.is_err());
        assert!(guard.is_open());
        assert_eq!(
            guard.call(|| async { Ok::<u32, FeedError>(7) }).await,
            Ok(7)
        );
        assert!(!guard.is_open());
    }
}
