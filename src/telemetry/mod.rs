//! Logging, and every Prometheus metric the service exposes.
//!
//! Metric names follow `etape_<name>_<unit>[_total]`. Labels are bounded: a route template,
//! a method, a status code, a model name; never a raw path, a key or a message.

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
}

/// Absolute ETA errors, in minutes.
const ERROR_BUCKETS: [f64; 9] = [5.0, 10.0, 15.0, 30.0, 45.0, 60.0, 120.0, 240.0, 480.0];

/// Latency buckets from 100 microseconds to 10 seconds: single ETAs take well under a
/// millisecond, batches of 10,000 up to seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

const BATCH_BUCKETS: [f64; 7] = [1.0, 10.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "etape_http_requests_total",
                "HTTP requests answered, by route template and status.",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let http_request_duration = HistogramVec::new(
            HistogramOpts::new(
                "etape_http_request_duration_seconds",
                "HTTP request latency, by route template.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route"],
        )
        .expect("valid metric");
        let predictions = IntCounterVec::new(
            Opts::new("etape_predictions_total", "ETAs computed, by model."),
            &["model"],
        )
        .expect("valid metric");
        let batch_size = HistogramVec::new(
            HistogramOpts::new("etape_eta_batch_requests", "Requests per ETA batch.")
                .buckets(BATCH_BUCKETS.to_vec()),
            &[],
        )
        .expect("valid metric");
        let pings = IntCounterVec::new(
            Opts::new(
                "etape_pings_total",
                "Pings received, by outcome: accepted, duplicate or rejected.",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let active_shipments = IntGauge::new(
            "etape_active_shipments",
            "Shipments planned or in transit, followed by the live estimates.",
        )
        .expect("valid metric");
        let live_recomputations = IntCounter::new(
            "etape_live_recomputations_total",
            "Live estimates recomputed after pings or events.",
        )
        .expect("valid metric");
        let live_eta_error = HistogramVec::new(
            HistogramOpts::new(
                "etape_live_eta_abs_error_minutes",
                "Absolute error of the live ETAs given before each actual arrival, by how long \
                 before the arrival they were given.",
            )
            .buckets(ERROR_BUCKETS.to_vec()),
            &["horizon"],
        )
        .expect("valid metric");
        let webhook_deliveries = IntCounterVec::new(
            Opts::new(
                "etape_webhook_deliveries_total",
                "Webhook delivery attempts, by outcome: delivered, retrying or failed.",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let feed_requests = IntCounterVec::new(
            Opts::new(
                "etape_feed_requests_total",
                "Calls to external feeds, by feed and outcome: ok, error, timeout, malformed \
                 or short_circuited (refused while the circuit is open).",
            ),
            &["feed", "outcome"],
        )
        .expect("valid metric");
        let feed_request_duration = HistogramVec::new(
            HistogramOpts::new(
                "etape_feed_request_duration_seconds",
                "Latency of each HTTP attempt to an external feed.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["feed"],
        )
        .expect("valid metric");
        let feed_data_age = GaugeVec::new(
            Opts::new(
                "etape_feed_data_age_seconds",
                "Age of the newest data received from each feed.",
            ),
            &["feed"],
        )
        .expect("valid metric");
        let feed_circuit_open = IntGaugeVec::new(
            Opts::new(
                "etape_feed_circuit_open",
                "1 while a feed's circuit is open (its calls refused at once).",
            ),
            &["feed"],
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "etape_build_info",
                "Always 1; the labels say which build is running.",
            ),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_request_duration.clone()),
            Box::new(predictions.clone()),
            Box::new(batch_size.clone()),
            Box::new(pings.clone()),
            Box::new(active_shipments.clone()),
            Box::new(live_recomputations.clone()),
            Box::new(live_eta_error.clone()),
            Box::new(webhook_deliveries.clone()),
            Box::new(feed_requests.clone()),
            Box::new(feed_request_duration.clone()),
            Box::new(feed_data_age.clone()),
            Box::new(feed_circuit_open.clone()),
            Box::new(build_info),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Self {
            registry,
            http_requests,
            http_request_duration,
            predictions,
            batch_size,
            pings,
            active_shipments,
            live_recomputations,
            live_eta_error,
            webhook_deliveries,
            feed_requests,
            feed_request_duration,
            feed_data_age,
            feed_circuit_open,
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
