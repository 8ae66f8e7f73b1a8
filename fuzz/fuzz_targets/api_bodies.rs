//! Any bytes as the JSON body of `POST /v1/eta`, a batch and a shipment: parsing and the
//! checks that turn a request into a domain query must answer with a value or a 4xx error
//! naming a field, never a panic; a query that passes is estimated by the rules engine.
#![no_main]

use chrono::{TimeZone, Utc};
use etape::api::body::parse_json;
use etape::api::dto::{BatchRequest, EtaRequest};
use etape::api::error::ApiError;
use etape::api::tracking::ShipmentRequest;
use etape::config::{ApiSettings, Settings};
use etape::domain::eta::{EstimateEta, RulesEta};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn engine() -> &'static RulesEta {
    static ENGINE: OnceLock<RulesEta> = OnceLock::new();
    ENGINE.get_or_init(|| RulesEta::new(Settings::default().rules_eta_config()))
}

fn client_error(error: &ApiError) {
    assert!(
        !matches!(error, ApiError::Internal(_)),
        "bad input became an internal error: {error:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
    let limits = ApiSettings::default();
    match parse_json::<EtaRequest>(data) {
        Ok(request) => match request.into_query(now, &limits) {
            Ok(query) => {
                let estimate = engine().estimate(&query);
                assert!(estimate.band.p10 <= estimate.band.p50);
                assert!(estimate.band.p50 <= estimate.band.p90);
            }
            Err(error) => client_error(&error),
        },
        Err(error) => client_error(&error),
    }
    if let Err(error) = parse_json::<BatchRequest>(data) {
        client_error(&error);
    }
    if let Err(error) = parse_json::<ShipmentRequest>(data) {
        client_error(&error);
    }
});
