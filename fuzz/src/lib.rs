//! The fuzz targets' checks, one module a target, so that the same code serves libFuzzer
//! (`fuzz_targets/`, run by `scripts/fuzz`) and the main crate's test binary, which replays
//! every seed and every input that ever failed (`fuzz/regressions/`) on each test run. Each
//! `check` takes any bytes and panics exactly when the property its module names is broken.

pub mod api_bodies {
    //! Any bytes as the JSON body of `POST /v1/eta`, a batch and a shipment: parsing and the
    //! checks that turn a request into a domain query must answer with a value or a 4xx error
    //! naming a field, never a panic; a query that passes is estimated by the rules engine.

    use chrono::{TimeZone, Utc};
    use etape::config::{ApiSettings, Settings};
    use etape::domain::eta::{EstimateEta, RulesEta};
    use etape::http::api::body::parse_json;
    use etape::http::api::dto::{BatchRequest, EtaRequest};
    use etape::http::api::error::ApiError;
    use etape::http::api::tracking::ShipmentRequest;
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

    pub fn check(data: &[u8]) {
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
    }
}

pub mod pings {
    //! Any bytes as a `POST /v1/positions` body, in each format (JSON arrays and Traccar's
    //! forwarded positions, NDJSON, CSV): a batch or a "cannot read" error, never a panic, and
    //! every accepted ping within the checks' bounds.

    use chrono::{TimeZone, Utc};
    use etape::tracking::pings::{parse, PingFormat, PingLimits};

    pub fn check(data: &[u8]) {
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
    }
}

pub mod upload_chunks {
    //! Any bytes as an uploaded history file (CSV, gzip CSV or Parquet), read the way uploads are
    //! checked: in chunks of rows, each through the strict reader. An error or chunks, never a
    //! panic.

    use std::io::Write;

    use etape::ml::history::files::table_chunks;

    pub fn check(data: &[u8]) {
        let mut file = tempfile::NamedTempFile::new().expect("a scratch file");
        file.write_all(data).expect("written");
        file.flush().expect("flushed");
        if let Ok(chunks) = table_chunks(file.path(), 7) {
            for chunk in chunks.take(64) {
                if chunk.is_err() {
                    break;
                }
            }
        }
    }
}

pub mod history_reader {
    //! Any bytes, as a trips table and as its own pings table: the reader and the strict check
    //! must answer with a table or a report, never a panic.

    use etape::ml::history::files::parse_table;
    use etape::ml::history::{validate, ValidationOptions};

    pub fn check(data: &[u8]) {
        if let Ok(frame) = parse_table(data.to_vec()) {
            let _ = validate(&frame, Some(&frame), &ValidationOptions::default());
        }
    }
}

pub mod feed_responses {
    //! Any bytes as a feed's answer: Open-Meteo's hourly forecast, TomTom's flow segment,
    //! Valhalla's and OSRM's routes. A value or a "malformed" error, never a panic, and routes
    //! with one leg per pair of points and no negative distance.

    use etape::adapters::feeds::routing::{parse_osrm, parse_valhalla};
    use etape::adapters::feeds::traffic::parse_flow;
    use etape::adapters::feeds::weather::{hourly_frame, Cell};

    pub fn check(data: &[u8]) {
        let Some((selector, body)) = data.split_first() else {
            return;
        };
        let points = 2 + usize::from(selector / 4 % 4);
        match selector % 4 {
            0 => {
                let _ = hourly_frame(
                    body,
                    Cell {
                        lat_tenths: 456,
                        lon_tenths: 48,
                    },
                );
            }
            1 => {
                if let Ok(flow) = parse_flow(body) {
                    assert!((0.0..=1.0).contains(&flow.congestion()), "{flow:?}");
                }
            }
            2 => check_legs(parse_valhalla(body, points), points),
            _ => check_legs(parse_osrm(body, points), points),
        }
    }

    fn check_legs<E>(legs: Result<Vec<etape::domain::eta::RoadLeg>, E>, points: usize) {
        if let Ok(legs) = legs {
            assert_eq!(legs.len(), points - 1);
            for leg in legs {
                assert!(leg.km >= 0.0 && leg.free_flow_minutes >= 0.0, "{leg:?}");
            }
        }
    }
}

pub mod rules_engine {
    //! The rules engine on any trip the API would accept: any points, departure in 2020-2040, a
    //! vehicle class, up to eight stops with dwells and windows, any legal driver state. It must
    //! answer without a panic, with an ordered band, a timeline without gaps that starts at the
    //! departure and an arrival per stop, in order. (The regulation itself is held by the property
    //! tests of `domain::rules`, against an independent reading of it.)

    use arbitrary::{Result, Unstructured};
    use chrono::{DateTime, FixedOffset, TimeDelta, TimeZone, Utc};
    use etape::config::Settings;
    use etape::domain::eta::{EstimateEta, EtaQuery, RulesEta, Stop, Window};
    use etape::domain::geo::GeoPoint;
    use etape::domain::rules::DriverState;
    use etape::domain::vehicle::VehicleClass;
    use std::sync::OnceLock;

    fn engine() -> &'static RulesEta {
        static ENGINE: OnceLock<RulesEta> = OnceLock::new();
        ENGINE.get_or_init(|| RulesEta::new(Settings::default().rules_eta_config()))
    }

    fn point(input: &mut Unstructured) -> Result<GeoPoint> {
        // Mostly Europe, where the rules know the countries; sometimes anywhere.
        let (lat, lon) = if input.ratio(9, 10)? {
            (
                input.int_in_range(36_000..=60_000)?,
                input.int_in_range(-10_000..=25_000)?,
            )
        } else {
            (
                input.int_in_range(-90_000..=90_000)?,
                input.int_in_range(-180_000..=180_000)?,
            )
        };
        Ok(GeoPoint::new(f64::from(lat) / 1000.0, f64::from(lon) / 1000.0).expect("in range"))
    }

    fn query(input: &mut Unstructured) -> Result<EtaQuery> {
        let origin = point(input)?;
        let destination = point(input)?;
        let base = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        let departure_utc = base + TimeDelta::minutes(input.int_in_range(0..=20 * 366 * 1440)?);
        let offset = FixedOffset::east_opt(input.int_in_range(-12..=14)? * 3600).unwrap();
        let departure: DateTime<FixedOffset> = departure_utc.with_timezone(&offset);
        let vehicle = *input.choose(&[
            VehicleClass::Van,
            VehicleClass::Rigid,
            VehicleClass::Articulated,
        ])?;
        let mut stops = Vec::new();
        for _ in 0..input.int_in_range(0..=8)? {
            let location = point(input)?;
            let dwell = TimeDelta::minutes(input.int_in_range(0..=24 * 60)?);
            let window = if input.arbitrary()? {
                let start =
                    departure_utc + TimeDelta::minutes(input.int_in_range(-1440..=14 * 1440)?);
                Window::new(
                    start,
                    start + TimeDelta::minutes(input.int_in_range(0..=2 * 1440)?),
                )
                .ok()
            } else {
                None
            };
            stops.push(Stop {
                location,
                dwell,
                window,
            });
        }
        let today = TimeDelta::minutes(input.int_in_range(0..=600)?);
        let since_break = TimeDelta::minutes(input.int_in_range(0..=270)?);
        let driver = DriverState::new(today, since_break.min(today)).unwrap_or_default();
        Ok(EtaQuery {
            origin,
            destination,
            departure,
            vehicle,
            stops,
            driver,
            context: Default::default(),
        })
    }

    pub fn check(data: &[u8]) {
        let Ok(query) = query(&mut Unstructured::new(data)) else {
            return;
        };
        let estimate = engine().estimate(&query);
        let departure = query.departure.with_timezone(&Utc);
        assert!(estimate.band.p10 <= estimate.band.p50 && estimate.band.p50 <= estimate.band.p90);
        let timeline = &estimate.timeline;
        assert_eq!(timeline.departure, departure);
        let mut at = departure;
        for segment in &timeline.segments {
            assert_eq!(
                segment.start, at,
                "a gap or an overlap in {:?}",
                timeline.segments
            );
            assert!(segment.end >= segment.start);
            at = segment.end;
        }
        assert_eq!(timeline.end, at);
        assert_eq!(timeline.stop_arrivals.len(), query.stops.len());
        assert!(timeline
            .stop_arrivals
            .windows(2)
            .all(|pair| pair[0] <= pair[1]));
    }
}
