//! Logging, and every Prometheus metric the service exposes.
//!
//! Metric names follow `etape_<name>_<unit>[_total]`, in base units (seconds, bytes), so that
//! `promtool check metrics` finds nothing to lint; the process's own metrics keep the
//! standard `process_` names every dashboard knows. Labels are bounded: a route template, a
//! method, a status code, a model name; never a raw path, a key or a message.

use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the configured filter.
pub fn init_logging(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let registry = tracing_subscriber::registry().with(filter);
    // A second initialisation (tests start many apps in one process) is harmless: keep the first.
    let _ = match settings.format {
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json())
            .try_init(),
        LogFormat::Pretty => registry.with(tracing_subscriber::fmt::layer()).try_init(),
    };
}

/// The service's metrics, in a registry of their own so that tests can run apps side by side.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_request_duration: HistogramVec,
    pub predictions: IntCounterVec,
    pub batch_size: HistogramVec,
    pub pings: IntCounterVec,
    pub active_shipments: IntGauge,
    pub live_recomputations: IntCounter,
    pub live_eta_error: HistogramVec,
    pub webhook_deliveries: IntCounterVec,
    pub feed_requests: IntCounterVec,
    pub feed_request_duration: HistogramVec,
    pub feed_data_age: GaugeVec,
    pub feed_circuit_open: IntGaugeVec,
    /// Each organisation's correction by horizon: `part` `factor` (time to go) or `widen`.
    pub eta_correction: GaugeVec,
}

/// Absolute ETA errors in seconds, from 5 minutes to 8 hours.
const ERROR_BUCKETS: [f64; 9] = [
    300.0, 600.0, 900.0, 1800.0, 2700.0, 3600.0, 7200.0, 14400.0, 28800.0,
];

/// Latency buckets from 100 microseconds to 10 seconds: single ETAs take well under a
/// millisecond, batches of 10,000 up to seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

const BATCH_BUCKETS: [f64; 7] = [1.0, 10.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0];

/// Registers each metric as it is made, so that a metric made and one exposed cannot differ.
struct Registering(Registry);

impl Registering {
    fn add<M: Collector + Clone + 'static>(&self, metric: prometheus::Result<M>) -> M {
        let metric = metric.expect("valid metric");
        self.0
            .register(Box::new(metric.clone()))
            .expect("metric names are unique");
        metric
    }
}

fn counters(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    IntCounterVec::new(Opts::new(name, help), labels)
}

fn gauges(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<GaugeVec> {
    GaugeVec::new(Opts::new(name, help), labels)
}

fn int_gauges(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntGaugeVec> {
    IntGaugeVec::new(Opts::new(name, help), labels)
}

fn histograms(
    name: &str,
    help: &str,
    buckets: &[f64],
    labels: &[&str],
) -> prometheus::Result<HistogramVec> {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
}

fn build_info(metrics: &Registering) {
    let build_info = metrics.add(IntGaugeVec::new(
        Opts::new(
            "etape_build_info",
            "Always 1; the labels say which build is running.",
        ),
        &["version"],
    ));
    build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
}

/// Which build runs, and what it costs the machine.
fn about_the_process(metrics: &Registering) {
    build_info(metrics);
    process(metrics);
}

/// Memory, CPU time, threads and file descriptors, read from /proc at each scrape.
#[cfg(target_os = "linux")]
fn process(metrics: &Registering) {
    let collector = prometheus::process_collector::ProcessCollector::for_self();
    metrics
        .0
        .register(Box::new(collector))
        .expect("metric names are unique");
}

/// Elsewhere the prometheus crate has no process collector.
#[cfg(not(target_os = "linux"))]
fn process(_: &Registering) {
    // The service runs on Linux; a build elsewhere only goes without these metrics.
}

impl Metrics {
    pub fn new() -> Self {
        let metrics = Registering(Registry::new());
        about_the_process(&metrics);
        Self {
            http_requests: metrics.add(counters(
                "etape_http_requests_total",
                "HTTP requests answered, by route template and status.",
                &["method", "route", "status"],
            )),
            http_request_duration: metrics.add(histograms(
                "etape_http_request_duration_seconds",
                "HTTP request latency, by route template.",
                &LATENCY_BUCKETS,
                &["method", "route"],
            )),
            predictions: metrics.add(counters(
                "etape_predictions_total",
                "ETAs computed, by model.",
                &["model"],
            )),
            batch_size: metrics.add(histograms(
                "etape_eta_batch_size",
                "Requests per ETA batch.",
                &BATCH_BUCKETS,
                &[],
            )),
            pings: metrics.add(counters(
                "etape_pings_total",
                "Pings received, by outcome: accepted, duplicate or rejected.",
                &["outcome"],
            )),
            active_shipments: metrics.add(IntGauge::new(
                "etape_active_shipments",
                "Shipments planned or in transit, followed by the live estimates.",
            )),
            live_recomputations: metrics.add(IntCounter::new(
                "etape_live_recomputations_total",
                "Live estimates recomputed after pings or events.",
            )),
            live_eta_error: metrics.add(histograms(
                "etape_live_eta_abs_error_seconds",
                "Absolute error of live ETAs at each actual arrival, by horizon before it.",
                &ERROR_BUCKETS,
                &["horizon"],
            )),
            webhook_deliveries: metrics.add(counters(
                "etape_webhook_deliveries_total",
                "Webhook delivery attempts, by outcome: delivered, retrying or failed.",
                &["outcome"],
            )),
            feed_requests: metrics.add(counters(
                "etape_feed_requests_total",
                "Calls to external feeds, by feed and outcome: ok, error, timeout, malformed \
                 or short_circuited (refused while the circuit is open).",
                &["feed", "outcome"],
            )),
            feed_request_duration: metrics.add(histograms(
                "etape_feed_request_duration_seconds",
                "Latency of each HTTP attempt to an external feed.",
                &LATENCY_BUCKETS,
                &["feed"],
            )),
            eta_correction: metrics.add(gauges(
                "etape_eta_correction_ratio",
                "Each organisation's correction from its arrivals, by horizon: factor or widen.",
                &["organisation", "horizon", "part"],
            )),
            feed_data_age: metrics.add(gauges(
                "etape_feed_data_age_seconds",
                "Age of the newest data received from each feed.",
                &["feed"],
            )),
            feed_circuit_open: metrics.add(int_gauges(
                "etape_feed_circuit_open",
                "1 while a feed's circuit is open (its calls refused at once).",
                &["feed"],
            )),
            registry: metrics.0,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding to memory cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
