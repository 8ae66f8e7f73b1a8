use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::book::{fixes, pings_frame, PingBook, VehicleKey};
use super::driver::{CabActivity, CabPing};
use super::eta::{live_snapshot, Risk, StopState, TruckState};
use super::pings::{parse, BatchError, ParsedBatch, PingFormat, PingLimits};
use super::shipment::{
    detect_events, EventKind, EventSource, Fix, Shipment, ShipmentStop, Status, StopDetection,
    StopEvent,
};
use crate::adapters::store::segments::PingLog;
use crate::domain::clock::at;
use crate::domain::eta::{EtaQuery, RulesEta, RulesEtaConfig, TripContext};
use crate::domain::forecast::Forecaster;
use crate::domain::geo::GeoPoint;
use crate::domain::rules::DriverState;

fn limits() -> PingLimits {
    PingLimits {
        now: at("2026-11-28T12:00:00Z"),
        future_tolerance_ms: 300_000,
        max_age_ms: 72 * 3_600_000,
        max_speed_kmh: 200.0,
        max_pings: 1_000,
    }
}

/// Each rejected ping's position in the batch and the field it was refused for.
fn named(batch: &ParsedBatch) -> Vec<(usize, Option<&'static str>)> {
    batch
        .rejected
        .iter()
        .map(|rejection| (rejection.index, rejection.field))
        .collect()
}

/// Reads an NDJSON body of `org`'s and keeps its new pings in the book, as a stored batch is.
fn ingest(book: &mut PingBook, body: &[u8]) {
    let batch = parse(body, PingFormat::Ndjson, &limits()).unwrap();
    let admitted = book.reserve("org", &batch);
    book.append("org", &batch.vehicles, &admitted.pings);
}

#[test]
fn every_format_reads_the_same_pings() {
    let json = br#"[
        {"vehicle_id": "AB-1", "timestamp": "2026-11-28T10:00:00Z", "lat": 50.6, "lon": 3.0, "speed_kmh": 80},
        {"vehicle_id": "AB-2", "timestamp": "2026-11-28T11:00:00+01:00", "lat": 45.7, "lon": 4.8}
    ]"#;
    let ndjson = b"{\"vehicle_id\": \"AB-1\", \"timestamp\": \"2026-11-28T10:00:00Z\", \"lat\": 50.6, \"lon\": 3.0, \"speed_kmh\": 80}\n\n{\"vehicle_id\": \"AB-2\", \"timestamp\": \"2026-11-28T11:00:00+01:00\", \"lat\": 45.7, \"lon\": 4.8}\n";
    let csv = b"vehicle_id,timestamp,lat,lon,speed_kmh,heading\nAB-1,2026-11-28T10:00:00Z,50.6,3.0,80,\nAB-2,2026-11-28T11:00:00+01:00,45.7,4.8,,\n";
    let batches = [
        parse(json, PingFormat::Json, &limits()).unwrap(),
        parse(ndjson, PingFormat::Ndjson, &limits()).unwrap(),
        parse(csv, PingFormat::Csv, &limits()).unwrap(),
    ];
    for batch in &batches {
        assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
        assert_eq!(batch.vehicles, ["AB-1", "AB-2"]);
        assert_eq!(batch.pings.len(), 2);
        assert_eq!(batch.pings[0].speed_kmh, 80.0);
        assert!(batch.pings[1].speed_kmh.is_nan());
        // The offset is honoured: 11:00+01:00 is 10:00Z.
        assert_eq!(batch.pings[0].timestamp_ms, batch.pings[1].timestamp_ms);
    }
    // NaN is unequal to itself; the debug form compares missing values too.
    let shown = |index: usize| format!("{:?}", batches[index].pings);
    assert_eq!(shown(0), shown(1));
    assert_eq!(shown(1), shown(2));
}

#[test]
fn every_format_carries_the_cab_s_word_and_a_bad_value_is_named() {
    let array =
        br#"[{"vehicle_id": "AB-1", "timestamp": "2026-11-28T10:00:00Z", "lat": 50.6, "lon": 3.0,
        "driver_id": "FRD1", "driver_state": "rest", "remaining_driving_minutes": 95}]"#;
    let lines = b"{\"vehicle_id\": \"AB-1\", \"timestamp\": \"2026-11-28T10:00:00Z\", \"lat\": 50.6, \"lon\": 3.0, \"driver_id\": \"FRD1\", \"driver_state\": \"rest\", \"remaining_driving_minutes\": 95}\n";
    let csv = b"vehicle_id,timestamp,lat,lon,driver_id,driver_state,remaining_driving_minutes\nAB-1,2026-11-28T10:00:00Z,50.6,3.0,FRD1,rest,95\n";
    let traccar = br#"{"position": {"fixTime": "2026-11-28T10:00:00.000+00:00", "latitude": 50.6,
        "longitude": 3.0, "attributes": {"ignition": true, "driverUniqueId": "FRD1",
        "driverState": "rest", "remainingDrivingMinutes": 95}}, "device": {"uniqueId": "AB-1"}}"#;
    let expected = CabPing {
        vehicle: 0,
        timestamp_ms: at("2026-11-28T10:00:00Z").timestamp_millis(),
        driver_id: Some("FRD1".into()),
        activity: Some(CabActivity::Rest),
        remaining_driving_minutes: Some(95.0),
    };
    let bodies: [(&[u8], PingFormat); 4] = [
        (array, PingFormat::Json),
        (lines, PingFormat::Ndjson),
        (csv, PingFormat::Csv),
        (traccar, PingFormat::Json),
    ];
    for (body, format) in bodies {
        let batch = parse(body, format, &limits()).unwrap();
        assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
        assert_eq!(batch.pings.len(), 1);
        assert_eq!(batch.cab, std::slice::from_ref(&expected), "{format:?}");
    }
    let plain = br#"[{"vehicle_id": "AB-1", "timestamp": "2026-11-28T10:00:00Z", "lat": 50.6, "lon": 3.0}]"#;
    assert!(parse(plain, PingFormat::Json, &limits())
        .unwrap()
        .cab
        .is_empty());
    let bad = b"vehicle_id,timestamp,lat,lon,driver_state,remaining_driving_minutes,driver_id\n\
        AB-1,2026-11-28T10:00:00Z,50.6,3.0,asleep,,\n\
        AB-1,2026-11-28T10:01:00Z,50.6,3.0,,271,\n\
        AB-1,2026-11-28T10:02:00Z,50.6,3.0,,,FR\x01D\n\
        AB-1,2026-11-28T10:03:00Z,50.6,3.0,driving,12,\n";
    let batch = parse(bad, PingFormat::Csv, &limits()).unwrap();
    assert_eq!(
        named(&batch),
        [
            (0, Some("driver_state")),
            (1, Some("remaining_driving_minutes")),
            (2, Some("driver_id")),
        ]
    );
    assert_eq!(batch.pings.len(), 1);
    assert_eq!(batch.cab[0].activity, Some(CabActivity::Driving));
    assert_eq!(batch.cab[0].remaining_driving_minutes, Some(12.0));
}

#[test]
fn a_traccar_forward_is_one_ping_in_km_per_hour() {
    let body = br#"{"position": {"id": 9, "deviceId": 3, "protocol": "osmand",
        "serverTime": "2026-11-28T10:00:02.000+00:00", "deviceTime": "2026-11-28T10:00:00.000+00:00",
        "fixTime": "2026-11-28T10:00:00.000+00:00", "outdated": false, "valid": true,
        "latitude": 48.85, "longitude": 2.35, "altitude": 35.0, "speed": 10.0, "course": 270.0,
        "address": null, "accuracy": 5.0, "network": null, "attributes": {"motion": true}},
        "device": {"id": 3, "name": "Truck 7", "uniqueId": "357454071234567", "status": "online"}}"#;
    let batch = parse(body, PingFormat::Json, &limits()).unwrap();
    assert_eq!(batch.vehicles, ["357454071234567"]);
    assert!((batch.pings[0].speed_kmh - 18.52).abs() < 1e-9);
    assert_eq!(batch.pings[0].heading, 270.0);
    let invalid = String::from_utf8_lossy(body).replace("\"valid\": true", "\"valid\": false");
    let batch = parse(invalid.as_bytes(), PingFormat::Json, &limits()).unwrap();
    assert!(batch.pings.is_empty());
    assert_eq!(batch.rejected.len(), 1);
}

#[test]
fn bad_pings_are_named_and_the_rest_kept() {
    let body = b"vehicle_id,timestamp,lat,lon,speed_kmh\n\
        AB-1,2026-11-28T10:00:00Z,50.6,3.0,80\n\
        AB-1,2026-11-28T10:01:00Z,95.0,3.0,80\n\
        AB-1,2026-11-28T13:00:00Z,50.6,3.0,80\n\
        AB-1,2026-11-20T10:00:00Z,50.6,3.0,80\n\
        AB-1,2026-11-28T10:02:00,50.6,3.0,80\n\
        AB-1,2026-11-28T10:03:00Z,50.6,3.0,900\n\
        ,2026-11-28T10:04:00Z,50.6,3.0,80\n\
        AB-1,2026-11-28T10:05:00Z,0,0,\n\
        AB-1,2026-11-28T10:06:00Z,north,3.0,80\n\
        AB-1,2026-11-28T10:07:00Z,50.7,3.1,81\n";
    let batch = parse(body, PingFormat::Csv, &limits()).unwrap();
    assert_eq!(batch.pings.len(), 2);
    assert_eq!(
        named(&batch),
        [
            (1, Some("lat")),
            (2, Some("timestamp")),
            (3, Some("timestamp")),
            (4, Some("timestamp")),
            (5, Some("speed_kmh")),
            (6, Some("vehicle_id")),
            (7, Some("lat")),
            (8, None),
        ]
    );
    assert!(batch.rejected[1].reason.contains("future"));
    assert!(batch.rejected[7].reason.contains("lat is not a number"));
}

#[test]
fn unreadable_bodies_and_oversized_batches_are_errors() {
    assert!(matches!(
        parse(b"[{", PingFormat::Json, &limits()),
        Err(BatchError::Malformed(_))
    ));
    assert!(matches!(
        parse(b"vehicle,timestamp\nA,B\n", PingFormat::Csv, &limits()),
        Err(BatchError::Malformed(message)) if message.contains("lat")
    ));
    let many: String = (0..1_001)
        .map(|_| {
            "{\"vehicle_id\":\"A\",\"timestamp\":\"2026-11-28T10:00:00Z\",\"lat\":1,\"lon\":1}\n"
        })
        .collect();
    assert!(matches!(
        parse(many.as_bytes(), PingFormat::Ndjson, &limits()),
        Err(BatchError::TooMany {
            limit: 1_000,
            count: 1_001
        })
    ));
    assert_eq!(
        PingFormat::from_content_type("text/csv; charset=utf-8"),
        Some(PingFormat::Csv)
    );
    assert_eq!(PingFormat::from_content_type("application/xml"), None);
}

#[test]
fn the_book_keeps_a_ping_once_and_sorts_late_arrivals() {
    let mut book = PingBook::new(48);
    let late =
        b"{\"vehicle_id\":\"A\",\"timestamp\":\"2026-11-28T10:05:00Z\",\"lat\":50.0,\"lon\":3.0}\n";
    let early =
        b"{\"vehicle_id\":\"A\",\"timestamp\":\"2026-11-28T10:00:00Z\",\"lat\":50.1,\"lon\":3.0}\n\
        {\"vehicle_id\":\"A\",\"timestamp\":\"2026-11-28T10:00:00Z\",\"lat\":50.1,\"lon\":3.0}\n";
    for body in [&late[..], &early[..], &late[..]] {
        ingest(&mut book, body);
    }
    let key = VehicleKey::new("org", "A");
    assert_eq!(book.len(&key), 2);
    let frame = book.frame(&key, at("2026-11-28T00:00:00Z")).unwrap();
    let fixes = fixes(&frame).unwrap();
    assert_eq!(fixes[0].at, at("2026-11-28T10:00:00Z"));
    assert_eq!(fixes[1].at, at("2026-11-28T10:05:00Z"));
    // Another organisation's vehicle of the same name is another vehicle.
    assert_eq!(book.len(&VehicleKey::new("other", "A")), 0);
}

#[test]
fn a_copy_sent_while_the_first_is_being_stored_is_a_duplicate_until_released() {
    let mut book = PingBook::new(48);
    let body =
        b"{\"vehicle_id\":\"A\",\"timestamp\":\"2026-11-28T10:00:00Z\",\"lat\":50.0,\"lon\":3.0}\n";
    let batch = parse(body, PingFormat::Ndjson, &limits()).unwrap();
    let first = book.reserve("org", &batch);
    assert_eq!(first.pings.len(), 1);
    let meanwhile = book.reserve("org", &batch);
    assert_eq!((meanwhile.pings.len(), meanwhile.duplicates), (0, 1));
    // The first could not be stored: the next copy is new again.
    book.release("org", &batch.vehicles, &first.pings);
    let again = book.reserve("org", &batch);
    assert_eq!(again.pings.len(), 1);
    book.append("org", &batch.vehicles, &again.pings);
    assert_eq!(book.reserve("org", &batch).duplicates, 1);
}

#[test]
fn the_book_sorts_pings_sent_in_any_order_and_keeps_each_once() {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut minutes: Vec<i64> = (0..300).chain(100..150).collect();
    minutes.shuffle(&mut rng);
    let mut book = PingBook::new(48);
    for chunk in minutes.chunks(17) {
        let body: String = chunk
            .iter()
            .map(|minute| {
                let stamp = at("2026-11-28T00:00:00Z") + TimeDelta::minutes(*minute);
                format!(
                    "{{\"vehicle_id\":\"A\",\"timestamp\":\"{}\",\"lat\":50.0,\"lon\":3.0}}\n",
                    stamp.to_rfc3339()
                )
            })
            .collect();
        ingest(&mut book, body.as_bytes());
    }
    let key = VehicleKey::new("org", "A");
    let since = at("2026-11-28T01:00:00Z");
    let kept: Vec<DateTime<Utc>> = fixes(&book.frame(&key, since).unwrap())
        .unwrap()
        .iter()
        .map(|fix| fix.at)
        .collect();
    let expected: Vec<DateTime<Utc>> = (60..300)
        .map(|minute| at("2026-11-28T00:00:00Z") + TimeDelta::minutes(minute))
        .collect();
    assert_eq!(kept, expected);
    assert_eq!(book.len(&key), 300);
}

#[test]
fn the_book_forgets_pings_older_than_its_window() {
    let mut book = PingBook::new(1);
    let body =
        b"{\"vehicle_id\":\"A\",\"timestamp\":\"2026-11-28T08:00:00Z\",\"lat\":50.0,\"lon\":3.0}\n\
        {\"vehicle_id\":\"A\",\"timestamp\":\"2026-11-28T10:00:00Z\",\"lat\":50.1,\"lon\":3.0}\n";
    ingest(&mut book, body);
    let key = VehicleKey::new("org", "A");
    assert_eq!(book.len(&key), 1);
    assert_eq!(
        book.forget_quiet(at("2026-11-28T09:00:00Z").timestamp_millis()),
        0
    );
    assert_eq!(
        book.forget_quiet(at("2026-11-28T11:00:00Z").timestamp_millis()),
        1
    );
    assert_eq!(book.vehicles(), 0);
}

#[test]
fn segments_survive_a_reopen_and_compact_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let log = PingLog::open(dir.path()).unwrap();
    let body = b"{\"vehicle_id\":\"A\",\"timestamp\":\"2026-11-28T10:00:00Z\",\"lat\":50.0,\"lon\":3.0}\n\
        {\"vehicle_id\":\"B\",\"timestamp\":\"2026-11-28T10:01:00Z\",\"lat\":50.1,\"lon\":3.0,\"speed_kmh\":50}\n";
    let batch = parse(body, PingFormat::Ndjson, &limits()).unwrap();
    for _ in 0..3 {
        log.append(&mut pings_frame("org", &batch.vehicles, &batch.pings))
            .unwrap();
    }
    // What a crash mid-write leaves.
    std::fs::write(dir.path().join("999.partial"), b"half a segment").unwrap();
    let log = PingLog::open(dir.path()).unwrap();
    assert!(!dir.path().join("999.partial").exists());
    assert_eq!(log.load(0).unwrap().height(), 6);
    assert_eq!(log.compact(0, 1).unwrap(), 3);
    assert_eq!(log.segments().unwrap().len(), 1);
    let merged = log.load(0).unwrap();
    assert_eq!(merged.height(), 2);
    let mut book = PingBook::new(48);
    assert_eq!(book.restore(&merged).unwrap(), 2);
}

/// Compaction merges small segments a group at a time and drops a large segment once its
/// every ping has left the window: never the whole store in memory at once.
#[test]
fn compaction_merges_small_segments_and_drops_large_ones_out_of_the_window() {
    use super::pings::Ping;
    use rand::{Rng, SeedableRng};

    let dir = tempfile::tempdir().unwrap();
    let log = PingLog::open(dir.path()).unwrap();
    let hour = 3_600_000;
    let start = at("2026-11-28T00:00:00Z").timestamp_millis();
    let ping = |vehicle: u32, timestamp_ms: i64, rng: &mut rand_chacha::ChaCha8Rng| Ping {
        vehicle,
        timestamp_ms,
        lat: rng.random_range(43.0..51.0),
        lon: rng.random_range(-1.0..7.0),
        speed_kmh: rng.random_range(0.0..90.0),
        heading: rng.random_range(0.0..360.0),
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let vehicles: Vec<String> = (0..100).map(|n| format!("V{n}")).collect();
    // One large segment (random values do not compress), all of it before the window.
    let old: Vec<Ping> = (0..400_000)
        .map(|n| ping(n % 100, start + i64::from(n) * 10, &mut rng))
        .collect();
    log.append(&mut pings_frame("org", &vehicles, &old))
        .unwrap();
    // Forty small ones: two hours before the window's start, then inside it.
    for batch in 0..40 {
        let pings: Vec<Ping> = (0..100)
            .map(|n| ping(n, start + 10 * hour + batch * hour / 10, &mut rng))
            .collect();
        log.append(&mut pings_frame("org", &vehicles, &pings))
            .unwrap();
    }
    assert_eq!(log.segments().unwrap().len(), 41);
    let since = start + 12 * hour;
    let removed = log.compact(since, 8).unwrap();
    assert_eq!(removed, 41, "the large segment and every small one");
    assert_eq!(log.segments().unwrap().len(), 1);
    let kept = log.load(0).unwrap();
    assert_eq!(
        kept.height(),
        20 * 100,
        "the twenty batches from the window's start on"
    );
    // Below the limit, nothing moves.
    assert_eq!(log.compact(since, 8).unwrap(), 0);
}

#[test]
fn compaction_bounds_a_merge_by_rows_however_well_the_pings_compress() {
    use super::pings::Ping;

    let dir = tempfile::tempdir().unwrap();
    let log = PingLog::open(dir.path()).unwrap();
    let start = at("2026-11-28T00:00:00Z").timestamp_millis();
    let vehicles: Vec<String> = (0..1_000).map(|n| format!("V{n}")).collect();
    // Parked trucks: a few kilobytes on disk for a hundred thousand pings each.
    for minute in 0..12 {
        let pings: Vec<Ping> = (0..100_000)
            .map(|n| Ping {
                vehicle: n % 1_000,
                timestamp_ms: start + i64::from(minute * 100 + n / 1_000) * 60_000,
                lat: 45.0,
                lon: 4.0,
                speed_kmh: 0.0,
                heading: f64::NAN,
            })
            .collect();
        log.append(&mut pings_frame("org", &vehicles, &pings))
            .unwrap();
    }
    assert_eq!(log.compact(start, 4).unwrap(), 12);
    let mut merged = Vec::new();
    log.read_each(&log.segments().unwrap(), start, |frame| {
        merged.push(frame.height());
        Ok(())
    })
    .unwrap();
    // A group stops at a million pings: ten segments, then the last two.
    assert_eq!(merged, [1_000_000, 200_000]);
}

#[test]
fn a_sample_of_the_book_takes_every_kth_ping_of_each_vehicle() {
    let mut book = PingBook::new(48);
    let body: String = (0..3)
        .flat_map(|vehicle| {
            (0..100).map(move |minute| {
                format!(
                    "{{\"vehicle_id\":\"V{vehicle}\",\"timestamp\":\"2026-11-28T{:02}:{:02}:00Z\",\"lat\":50.0,\"lon\":3.0}}\n",
                    8 + minute / 60,
                    minute % 60
                )
            })
        })
        .collect();
    ingest(&mut book, body.as_bytes());
    assert_eq!(book.all().unwrap().height(), 300);
    let sample = book.sample(30).unwrap();
    assert_eq!(sample.height(), 30, "every tenth of each vehicle's hundred");
    assert_eq!(book.sample(1_000).unwrap().height(), 300);
}

fn point(lat: f64, lon: f64) -> GeoPoint {
    GeoPoint::new(lat, lon).unwrap()
}

fn stop(id: &str, lat: f64, lon: f64, window: Option<(&str, &str)>) -> ShipmentStop {
    ShipmentStop {
        id: id.into(),
        lat,
        lon,
        window: window.map(|(start, end)| (at(start), at(end))),
        planned_dwell_minutes: 30.0,
        arrived: None,
        departed: None,
    }
}

/// Lille to Lyon to Marseille, leaving Lille on Monday 30 November 2026 at 06:00 UTC.
fn shipment() -> Shipment {
    let departure = at("2026-11-30T06:00:00Z");
    Shipment {
        id: "shp_1".into(),
        organisation: "org".into(),
        reference: "REF-1".into(),
        vehicle_id: "AB-1".into(),
        vehicle: "articulated".into(),
        origin: Some((50.63, 3.06)),
        stops: vec![
            stop(
                "lyon",
                45.76,
                4.84,
                Some(("2026-11-30T14:30:00Z", "2026-11-30T17:30:00Z")),
            ),
            stop(
                "marseille",
                43.30,
                5.37,
                Some(("2026-12-01T06:00:00Z", "2026-12-01T10:00:00Z")),
            ),
        ],
        planned_departure: departure,
        driven_today_minutes: 0.0,
        driven_since_break_minutes: 0.0,
        status: Status::Planned,
        created_at: departure,
        updated_at: departure,
        delivered_at: None,
        cancelled_at: None,
        accuracy: Vec::new(),
        version: 0,
        gross_weight_tonnes: None,
        operation: None,
        driver_declared: false,
        carried: None,
        ended_clock: None,
        cab: None,
    }
}

fn fix(when: DateTime<Utc>, lat: f64, lon: f64) -> Fix {
    Fix {
        at: when,
        point: point(lat, lon),
    }
}

const DETECTION: StopDetection = StopDetection {
    radius_km: 0.5,
    arrival: TimeDelta::minutes(3),
};

#[test]
fn stops_are_detected_when_the_truck_stays_and_not_when_it_passes() {
    let shipment = shipment();
    let start = at("2026-11-30T14:00:00Z");
    let minute = |n: i64| start + TimeDelta::minutes(n);
    let mut fixes = vec![
        fix(minute(0), 45.80, 4.84),
        // Passes through the radius for a minute only.
        fix(minute(1), 45.761, 4.84),
        fix(minute(2), 45.74, 4.84),
        // Comes back and stays 20 minutes.
        fix(minute(10), 45.7605, 4.8405),
    ];
    for n in 11..30 {
        fixes.push(fix(minute(n), 45.7601, 4.8401));
    }
    fixes.push(fix(minute(31), 45.70, 4.90));
    let events = detect_events(&shipment, &fixes, DETECTION);
    assert_eq!(
        events,
        [
            (0, EventKind::Arrived, minute(10)),
            (0, EventKind::Departed, minute(31)),
        ]
    );
    // Standing at the destination for only two minutes is not an arrival yet.
    let mut shipment = shipment;
    for (index, kind, when) in events {
        shipment.record(
            index,
            kind,
            StopEvent {
                at: when,
                source: EventSource::Gps,
            },
        );
    }
    let later = at("2026-12-01T05:00:00Z");
    let mut at_destination = vec![
        fix(later, 43.3001, 5.3701),
        fix(later + TimeDelta::minutes(2), 43.3001, 5.3701),
    ];
    assert!(detect_events(&shipment, &at_destination, DETECTION).is_empty());
    at_destination.push(fix(later + TimeDelta::minutes(4), 43.3001, 5.3701));
    assert_eq!(
        detect_events(&shipment, &at_destination, DETECTION),
        [(1, EventKind::Arrived, later)]
    );
}

#[test]
fn an_event_at_a_later_stop_completes_the_earlier_ones_and_delivers() {
    let mut shipment = shipment();
    let event = StopEvent {
        at: at("2026-12-01T07:00:00Z"),
        source: EventSource::Manual,
    };
    let new = shipment.record(1, EventKind::Arrived, event);
    assert_eq!(
        new,
        [
            (0, EventKind::Arrived),
            (0, EventKind::Departed),
            (1, EventKind::Arrived)
        ]
    );
    assert_eq!(shipment.status, Status::Delivered);
    assert_eq!(shipment.delivered_at, Some(event.at));
    assert_eq!(shipment.next_stop(), None);
}

fn rules() -> RulesEta {
    RulesEta::new(RulesEtaConfig::default())
}

#[test]
fn the_live_estimate_follows_the_truck_and_turns_late_when_a_window_is_lost() {
    let shipment = shipment();
    let estimator = rules();
    let thresholds = estimator.risk_thresholds();
    let planned = live_snapshot(
        &shipment,
        TruckState {
            last_fix: None,
            driver: DriverState::default(),
            now: at("2026-11-29T12:00:00Z"),
        },
        &Forecaster::new(Arc::new(estimator.clone()), None),
        thresholds,
        false,
    );
    assert_eq!(planned.as_of, shipment.planned_departure);
    assert!(planned
        .stops
        .iter()
        .all(|stop| stop.state == StopState::Pending));
    assert!(planned.stops[0].eta > shipment.planned_departure);
    assert!(planned.stops[1].eta > planned.stops[0].eta);
    assert_eq!(planned.stops[0].severity, Some(Risk::OnTime));
    // At 15:30 the truck is still near Troyes, 300 km short of Lyon: the 17:30 window is lost.
    let stuck = live_snapshot(
        &shipment,
        TruckState {
            last_fix: Some(fix(at("2026-11-30T15:30:00Z"), 48.30, 4.08)),
            driver: DriverState::new(TimeDelta::minutes(240), TimeDelta::minutes(100)).unwrap(),
            now: at("2026-11-30T15:31:00Z"),
        },
        &Forecaster::new(Arc::new(estimator.clone()), None),
        thresholds,
        false,
    );
    assert_eq!(stuck.as_of, at("2026-11-30T15:30:00Z"));
    assert!(stuck.stops[0].eta > at("2026-11-30T19:00:00Z"));
    assert_eq!(stuck.stops[0].severity, Some(Risk::Late));
    assert_eq!(stuck.stops[0].late_probability, Some(1.0));
    assert!(stuck.largest_move_minutes(&planned) > 60.0);
    assert!(stuck.risk_changes(&planned).contains(&0));
}

#[test]
fn a_truck_at_a_stop_leaves_after_its_dwell_and_arrived_stops_are_final() {
    let mut shipment = shipment();
    let arrived = at("2026-11-30T15:50:00Z");
    shipment.record(
        0,
        EventKind::Arrived,
        StopEvent {
            at: arrived,
            source: EventSource::Gps,
        },
    );
    let estimator = rules();
    let snapshot = live_snapshot(
        &shipment,
        TruckState {
            last_fix: Some(fix(at("2026-11-30T15:55:00Z"), 45.76, 4.84)),
            driver: DriverState::default(),
            now: at("2026-11-30T15:56:00Z"),
        },
        &Forecaster::new(Arc::new(estimator.clone()), None),
        estimator.risk_thresholds(),
        false,
    );
    assert_eq!(snapshot.stops[0].state, StopState::Arrived);
    assert_eq!(snapshot.stops[0].eta, arrived);
    assert_eq!(snapshot.stops[0].severity, Some(Risk::OnTime));
    // Lyon to Marseille is about 3 h 30 of driving after the 30-minute dwell.
    let to_marseille = snapshot.stops[1].eta - (arrived + TimeDelta::minutes(30));
    assert!(
        (TimeDelta::hours(3)..TimeDelta::hours(5)).contains(&to_marseille),
        "{to_marseille}"
    );
}

/// The bundled model behind the forecaster, as the service serves it.
fn bundled_forecaster() -> Forecaster {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/models/bundled");
    let (_, served) = crate::training::registry::load(&dir).unwrap();
    let estimator = crate::ml::model::serve::ModelEta::new(rules(), Some(served), 1);
    Forecaster::new(Arc::new(estimator), None)
}

#[test]
fn each_stop_is_the_trip_to_it_and_a_rest_after_it_cannot_move_it() {
    let forecaster = bundled_forecaster();
    let thresholds = rules().risk_thresholds();
    // Near Reims at 19:15 UTC after a long day: the daily rest comes before Fos, after Lyon.
    let now = at("2026-11-30T19:15:00Z");
    let driver = DriverState::new(TimeDelta::minutes(420), TimeDelta::minutes(60)).unwrap();
    let truck = TruckState {
        last_fix: Some(fix(now, 49.26, 4.03)),
        driver,
        now,
    };
    let mut both = shipment();
    both.stops[1] = stop("fos", 43.44, 4.94, None);
    let mut lyon_only = both.clone();
    lyon_only.stops.truncate(1);
    let two = live_snapshot(&both, truck, &forecaster, thresholds, false);
    let one = live_snapshot(&lyon_only, truck, &forecaster, thresholds, false);
    assert_eq!(two.model, "lightgbm", "the model answers, not the rules");
    assert_eq!(two.stops[0].eta, one.stops[0].eta, "Fos does not move Lyon");
    assert_eq!(two.stops[0].eta_p90, one.stops[0].eta_p90);
    assert!(two.stops[1].eta > two.stops[0].eta);
    assert!(two.stops[1].eta_p10 >= two.stops[0].eta_p10);
    // The same leg asked directly, from the same place, time and driver.
    let direct = forecaster.answer(
        &both.organisation,
        EtaQuery {
            origin: point(49.26, 4.03),
            destination: both.stops[0].location(),
            departure: now.fixed_offset(),
            vehicle: both.vehicle_class(),
            stops: Vec::new(),
            driver,
            context: TripContext::default(),
        },
        now - both.planned_departure,
        false,
    );
    assert_eq!(two.stops[0].eta, direct.estimate.band.p50);
}
