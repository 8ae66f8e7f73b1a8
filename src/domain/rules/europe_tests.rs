//! Trips across Europe through the whole rules estimator: the route's countries from the
//! compiled outlines, each country's bans from the shipped data, vans under 561/2006 abroad.
//! Each test names the rule it checks against (see `data/bans/*.toml` for the sources).

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Europe::{Berlin, Paris, Rome, Zurich};
use chrono_tz::Tz;

use super::tests::driving_of;
use super::*;
use crate::domain::clock::at;
use crate::domain::eta::{EstimateEta, EtaQuery, RulesEta, Stop, TripContext};
use crate::domain::geo::GeoPoint;
use crate::domain::vehicle::GrossWeight;

fn city(name: &str) -> GeoPoint {
    let (lat, lon) = match name {
        "Paris" => (48.8566, 2.3522),
        "Lyon" => (45.7640, 4.8357),
        "Milan" => (45.4642, 9.1900),
        "Turin" => (45.0703, 7.6869),
        "Munich" => (48.1372, 11.5756),
        "Besançon" => (47.2378, 6.0241),
        "Mulhouse" => (47.7508, 7.3359),
        "Chambéry" => (45.5646, 5.9178),
        "Albertville" => (45.6755, 6.3925),
        "Valence" => (44.9334, 4.8924),
        "Frankfurt" => (50.1109, 8.6821),
        "Lucerne" => (47.0502, 8.3093),
        other => panic!("no coordinates for {other}"),
    };
    GeoPoint::new(lat, lon).unwrap()
}

/// A trip through `via` (zero dwell: the route's waypoints, to keep the great circle on the
/// motorway a truck takes) from the first city to the last.
fn query(cities: &[&str], departure: &str, vehicle: VehicleClass, carriage: Carriage) -> EtaQuery {
    let (first, rest) = cities.split_first().unwrap();
    let (last, via) = rest.split_last().unwrap();
    EtaQuery {
        origin: city(first),
        destination: city(last),
        departure: DateTime::parse_from_rfc3339(departure).unwrap(),
        vehicle,
        stops: via
            .iter()
            .map(|name| Stop {
                location: city(name),
                dwell: TimeDelta::zero(),
                window: None,
            })
            .collect(),
        driver: DriverState::default(),
        context: TripContext {
            carriage,
            ..TripContext::default()
        },
    }
}

fn timeline(query: &EtaQuery) -> Timeline {
    RulesEta::default().estimate(query).timeline
}

/// An articulated truck's timeline through `cities` from `departure`, of its class's weight.
fn truck_timeline(cities: &[&str], departure: &str) -> Timeline {
    timeline(&query(
        cities,
        departure,
        VehicleClass::Articulated,
        Carriage::default(),
    ))
}

/// A 3.2 t van through `cities` from `departure`: over 2.5 t, too light for any ban.
fn light_van(cities: &[&str], departure: &str) -> EtaQuery {
    let carriage = Carriage {
        gross_weight: Some(GrossWeight::new(3.2).unwrap()),
        operation: None,
    };
    query(cities, departure, VehicleClass::Van, carriage)
}

fn ban_waits(timeline: &Timeline) -> Vec<Segment> {
    timeline
        .segments
        .iter()
        .copied()
        .filter(|segment| segment.kind == SegmentKind::BanWait)
        .collect()
}

fn local(instant: DateTime<Utc>, zone: Tz) -> String {
    instant
        .with_timezone(&zone)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

fn driving_before_first_break(timeline: &Timeline) -> Option<TimeDelta> {
    let break_idx = timeline
        .segments
        .iter()
        .position(|segment| segment.kind == SegmentKind::Break)?;
    Some(
        timeline.segments[..break_idx]
            .iter()
            .filter(|segment| segment.kind == SegmentKind::Drive)
            .map(Segment::duration)
            .sum(),
    )
}

/// Regulation (EU) 2020/1054 art. 1(2) (561/2006 art. 2(1)(aa)) and 561/2006 art. 7: from
/// 1 July 2026 a van over 2.5 t on an international trip takes a 45-minute break after at
/// most 4.5 hours of driving.
#[test]
fn a_light_van_paris_to_milan_in_september_2026_takes_a_break() {
    let trip = light_van(&["Paris", "Milan"], "2026-09-15T06:00:00+02:00");
    let timeline = timeline(&trip);
    let first_break = timeline
        .segments
        .iter()
        .find(|segment| segment.kind == SegmentKind::Break)
        .expect("a break");
    assert_eq!(first_break.duration(), TimeDelta::minutes(45));
    assert!(driving_before_first_break(&timeline).unwrap() <= MAX_DRIVING_BEFORE_BREAK);
    // Vans of 3.5 t and less are outside every ban, the Swiss ones included (over 3.5 t).
    assert!(ban_waits(&timeline).is_empty());
}

/// 561/2006 art. 2(1)(aa) covers international transport and cabotage only: a domestic trip
/// of the same van takes no break, though it drives longer than 4.5 hours.
#[test]
fn the_same_van_paris_to_lyon_takes_no_break() {
    let trip = light_van(&["Paris", "Lyon"], "2026-09-15T06:00:00+02:00");
    let timeline = timeline(&trip);
    assert!(timeline.breakdown().driving > MAX_DRIVING_BEFORE_BREAK);
    assert!(timeline
        .segments
        .iter()
        .all(|segment| matches!(segment.kind, SegmentKind::Drive | SegmentKind::Dwell)));
}

/// Regulation (EU) 2020/1054 art. 5: point (aa) applies from 1 July 2026, not before.
#[test]
fn the_same_van_paris_to_milan_in_june_2026_takes_no_break() {
    let trip = light_van(&["Paris", "Milan"], "2026-06-15T06:00:00+02:00");
    let timeline = timeline(&trip);
    assert!(timeline.breakdown().driving > MAX_DRIVING_BEFORE_BREAK);
    assert!(driving_before_first_break(&timeline).is_none());
    let (plan, _) = RulesEta::default().trip_plan(&trip);
    assert_eq!(plan.operation(), Operation::International);
}

/// Arrêté du 2 mars 2015 art. 1 (France, Saturday 22:00 to Sunday 22:00) and StVO §30(3)
/// (Germany, Sunday 00:00 to 22:00). Leaving Lyon at 20:00 on a Saturday, the truck is still
/// in France when France's ban starts; that wait, before the German border, lasts past the end
/// of Germany's Sunday ban, so it never drives in Germany while Germany bans it.
#[test]
fn lyon_to_munich_on_saturday_evening_waits_out_sunday_before_the_border() {
    let timeline = truck_timeline(
        &["Lyon", "Besançon", "Mulhouse", "Munich"],
        "2026-10-10T20:00:00+02:00",
    );
    let german_ban_start = at("2026-10-11T00:00:00+02:00");
    let german_ban_end = at("2026-10-11T22:00:00+02:00");
    let first_german_drive = timeline
        .segments
        .iter()
        .find(|segment| segment.territory == Some(Territory::Germany))
        .expect("the road enters Germany");
    assert!(first_german_drive.start >= german_ban_end);
    let sunday_wait = ban_waits(&timeline)
        .into_iter()
        .find(|wait| wait.start <= german_ban_start && german_ban_end <= wait.end)
        .expect("a wait that covers Germany's Sunday ban");
    assert!(sunday_wait.end <= first_german_drive.start);
    assert_eq!(sunday_wait.country, Some(Territory::France));
    assert_eq!(sunday_wait.rule, Some("fr-weekend"));
    for segment in &timeline.segments {
        let in_german_ban = segment.start < german_ban_end && german_ban_start < segment.end;
        assert!(
            !(segment.territory == Some(Territory::Germany) && in_german_ban),
            "{segment:?}"
        );
    }
}

/// StVO §30(3): the same lane leaving Lyon at 16:00 crosses into Germany on Saturday
/// evening, and Germany's Sunday ban stops it there at midnight, in a wait naming Germany.
#[test]
fn lyon_to_munich_on_saturday_afternoon_waits_out_germanys_sunday_ban() {
    let timeline = truck_timeline(
        &["Lyon", "Besançon", "Mulhouse", "Munich"],
        "2026-10-10T16:00:00+02:00",
    );
    let wait = ban_waits(&timeline)
        .into_iter()
        .find(|wait| wait.country == Some(Territory::Germany))
        .expect("a wait naming Germany");
    assert_eq!(wait.rule, Some("de-sunday"));
    assert_eq!(local(wait.start, Berlin), "2026-10-11 00:00");
    assert_eq!(local(wait.end, Berlin), "2026-10-11 22:00");
}

/// StVO §30(3) on Good Friday (a German holiday, not a French one): a truck from Paris
/// reaching Germany in the night waits before the border, and the wait names Germany.
#[test]
fn paris_to_frankfurt_waits_at_the_border_on_good_friday() {
    let timeline = truck_timeline(&["Paris", "Frankfurt"], "2026-04-02T20:00:00+02:00");
    let wait_idx = timeline
        .segments
        .iter()
        .position(|segment| segment.kind == SegmentKind::BanWait)
        .expect("a ban wait");
    let wait = timeline.segments[wait_idx];
    assert_eq!(wait.country, Some(Territory::Germany));
    assert_eq!(wait.rule, Some("de-holidays"));
    assert_eq!(local(wait.end, Berlin), "2026-04-03 22:00");
    let before = timeline.segments[..wait_idx]
        .iter()
        .rev()
        .find(|segment| segment.kind == SegmentKind::Drive)
        .unwrap();
    let after = timeline.segments[wait_idx + 1..]
        .iter()
        .find(|segment| segment.kind == SegmentKind::Drive)
        .unwrap();
    assert_ne!(before.territory, Some(Territory::Germany));
    assert_eq!(after.territory, Some(Territory::Germany));
}

/// Italy's 2026 calendar decree (MIT, art. 6 c. 1 Codice della strada): 8 December, the
/// Immacolata, is a ban day from 09:00 to 22:00. A truck from Paris reaching the Fréjus
/// after 09:00 waits at the border until 22:00; 8 December is no French holiday.
#[test]
fn paris_to_turin_meets_italys_calendar_on_the_immacolata() {
    let timeline = truck_timeline(&["Paris", "Chambéry", "Turin"], "2026-12-08T04:00:00+01:00");
    let waits = ban_waits(&timeline);
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert_eq!(waits[0].country, Some(Territory::Italy));
    assert_eq!(waits[0].rule, Some("it-holidays"));
    assert_eq!(local(waits[0].end, Rome), "2026-12-08 22:00");
    let italian_driving_in_ban = timeline.segments.iter().any(|segment| {
        segment.territory == Some(Territory::Italy)
            && segment.start < at("2026-12-08T22:00:00+01:00")
            && at("2026-12-08T09:00:00+01:00") < segment.end
    });
    assert!(!italian_driving_in_ban);
}

/// SVG Art. 2 Abs. 2 and VRV Art. 91: no heavy goods vehicle drives in Switzerland from 22:00
/// to 05:00. A truck crossing at Basel in the evening clears customs, then stops at 22:00.
#[test]
fn a_truck_through_switzerland_at_night_waits_out_the_night_ban() {
    let timeline = truck_timeline(
        &["Mulhouse", "Lucerne", "Milan"],
        "2026-09-15T19:00:00+02:00",
    );
    let border = timeline
        .segments
        .iter()
        .find(|segment| segment.kind == SegmentKind::Border)
        .expect("a customs wait entering Switzerland");
    assert_eq!(border.country, Some(Territory::Switzerland));
    assert_eq!(border.duration(), CUSTOMS_BORDER_WAIT);
    let wait = ban_waits(&timeline)
        .into_iter()
        .find(|wait| wait.country == Some(Territory::Switzerland))
        .expect("a night wait in Switzerland");
    assert_eq!(wait.rule, Some("ch-night"));
    assert_eq!(local(wait.start, Zurich), "2026-09-15 22:00");
    assert_eq!(local(wait.end, Zurich), "2026-09-16 05:00");
    assert!(timeline.breakdown().borders >= CUSTOMS_BORDER_WAIT);
}

/// The yearly arrêté for 2026: Saturday 11 July is a summer Saturday, 07:00 to 19:00 on the
/// whole network, known without configuration.
#[test]
fn a_2026_summer_saturday_is_known_without_configuration() {
    let timeline = truck_timeline(&["Paris", "Lyon"], "2026-07-11T06:00:00+02:00");
    let wait = ban_waits(&timeline)[0];
    assert_eq!(wait.country, Some(Territory::France));
    assert_eq!(wait.rule, Some("fr-summer-saturdays-2026"));
    assert_eq!(local(wait.start, Paris), "2026-07-11 07:00");
    assert_eq!(local(wait.end, Paris), "2026-07-11 19:00");
}

/// The yearly arrêté for 2026: Saturday 7 February is a winter Saturday on the roads of the
/// Auvergne-Rhône-Alpes network (07:00 to 18:00): a truck bound for Albertville stops where
/// it reaches the Alps; one bound for Valence, off that network, does not.
#[test]
fn a_2026_winter_saturday_holds_in_the_alps_only() {
    let timeline = truck_timeline(&["Lyon", "Albertville"], "2026-02-07T06:30:00+01:00");
    let wait = ban_waits(&timeline)[0];
    assert_eq!(wait.country, Some(Territory::France));
    assert_eq!(wait.rule, Some("fr-ara-winter-saturdays-2026"));
    assert_eq!(local(wait.end, Paris), "2026-02-07 18:00");
    let to_valence = truck_timeline(&["Lyon", "Valence"], "2026-02-07T06:30:00+01:00");
    assert!(ban_waits(&to_valence).is_empty());
}

/// Inside the EU customs union a border costs nothing by default; the Good Friday trip
/// above crosses two (France-Luxembourg, Luxembourg-Germany) without a `Border` segment.
#[test]
fn borders_inside_the_customs_union_cost_nothing_by_default() {
    let timeline = truck_timeline(&["Paris", "Frankfurt"], "2026-04-07T06:00:00+02:00");
    assert!(timeline
        .segments
        .iter()
        .all(|segment| segment.kind != SegmentKind::Border));
    let countries: Vec<_> = timeline
        .segments
        .iter()
        .filter_map(|segment| segment.territory)
        .collect();
    assert!(countries.contains(&Territory::Germany), "{countries:?}");
}

use proptest::prelude::*;

const ROUTE_COUNTRIES: [Territory; 7] = [
    Territory::France,
    Territory::Germany,
    Territory::Italy,
    Territory::Switzerland,
    Territory::Austria,
    Territory::Luxembourg,
    Territory::Elsewhere,
];

fn arbitrary_european_trip() -> impl Strategy<Value = TripPlan> {
    let activity = prop_oneof![
        3 => (1i64..8 * 60, prop::sample::select(ROUTE_COUNTRIES.to_vec())).prop_map(
            |(minutes, territory)| Activity::Drive {
                duration: TimeDelta::minutes(minutes),
                territory,
                region: None,
            }
        ),
        1 => (0i64..3 * 60).prop_map(|minutes| Activity::Stop {
            dwell: TimeDelta::minutes(minutes)
        }),
    ];
    let first_departure = at("2026-01-01T00:00:00Z").timestamp();
    let last_departure = at("2027-12-31T00:00:00Z").timestamp();
    (
        first_departure..last_departure,
        prop::sample::select(VehicleClass::ALL.to_vec()),
        prop::sample::select(vec![None, Some(3.2), Some(3.5), Some(7.0), Some(12.0)]),
        prop::collection::vec(activity, 1..10),
    )
        .prop_map(|(departure, vehicle, tonnes, activities)| TripPlan {
            departure: DateTime::from_timestamp(departure, 0).unwrap(),
            vehicle,
            driver: DriverState::default(),
            activities,
            carriage: Carriage {
                gross_weight: tonnes.map(|tonnes| GrossWeight::new(tonnes).unwrap()),
                operation: None,
            },
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Every country's rules at once: no stretch of driving lies in a ban of its country for
    /// the vehicle's weight, no driving is lost, and the segments follow one another.
    #[test]
    fn no_truck_drives_in_a_ban_of_the_country_it_is_in(trip in arbitrary_european_trip()) {
        let bans = BanCalendar::default();
        let timeline = plan_trip(&trip, &bans, RulesPolicy::default());
        let tonnes = trip.carriage.gross_tonnes(trip.vehicle);
        let mut cursor = trip.departure;
        for segment in &timeline.segments {
            prop_assert!(segment.start == cursor && segment.end > segment.start, "{segment:?}");
            cursor = segment.end;
            if segment.kind == SegmentKind::BanWait {
                prop_assert!(segment.rule.is_some() && segment.country.is_some());
            }
            let Some(territory) = segment.territory else { continue };
            let first = segment.start.date_naive() - TimeDelta::days(2);
            let last = segment.end.date_naive() + TimeDelta::days(1);
            let overlapping = bans
                .bans_in(territory, None, tonnes, first, last)
                .into_iter()
                .find(|ban| ban.interval.start < segment.end && segment.start < ban.interval.end);
            prop_assert!(overlapping.is_none(), "{segment:?} in {overlapping:?}");
        }
        prop_assert_eq!(timeline.breakdown().driving, driving_of(&trip));
        if tonnes <= 3.5 {
            prop_assert_eq!(timeline.breakdown().ban_waits, TimeDelta::zero());
        }
    }
}
