//! The rules engine on any trip the API would accept: any points, departure in 2020-2040, a
//! vehicle class, up to eight stops with dwells and windows, any legal driver state. It must
//! answer without a panic, with an ordered band, a timeline without gaps that starts at the
//! departure and an arrival per stop, in order. (The regulation itself is held by the property
//! tests of `domain::rules`, against an independent reading of it.)
#![no_main]

use chrono::{DateTime, FixedOffset, TimeDelta, TimeZone, Utc};
use etape::config::Settings;
use etape::domain::eta::{EstimateEta, EtaQuery, RulesEta, Stop, Window};
use etape::domain::geo::GeoPoint;
use etape::domain::rules::DriverState;
use etape::domain::vehicle::VehicleClass;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
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
            let start = departure_utc + TimeDelta::minutes(input.int_in_range(-1440..=14 * 1440)?);
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

fuzz_target!(|data: &[u8]| {
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
});
