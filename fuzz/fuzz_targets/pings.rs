//! Any bytes as a `POST /v1/positions` body, in each format (JSON arrays and Traccar's
//! forwarded positions, NDJSON, CSV): a batch or a "cannot read" error, never a panic, and
//! every accepted ping within the checks' bounds.
#![no_main]

use chrono::{TimeZone, Utc};
use etape::live::pings::{parse, PingFormat, PingLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let format = match selector % 3 {
        0 => PingFormat::Json,
        1 => PingFormat::Ndjson,
        _ => PingFormat::Csv,
    };
    let limits = PingLimits {
        now: Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap(),
        future_tolerance_ms: 120_000,
        max_age_ms: 72 * 3_600_000,
        max_speed_kmh: 200.0,
        max_pings: 1_000,
    };
    if let Ok(batch) = parse(body, format, &limits) {
        for ping in &batch.pings {
            assert!((-90.0..=90.0).contains(&ping.lat) && (-180.0..=180.0).contains(&ping.lon));
            assert!(
                ping.timestamp_ms <= limits.now.timestamp_millis() + limits.future_tolerance_ms
            );
        }
    }
});
