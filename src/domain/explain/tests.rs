use super::*;

fn step(kind: SegmentKind, minutes: i64, country: Territory) -> Step<'static> {
    Step {
        kind,
        duration: TimeDelta::minutes(minutes),
        country: Some(country),
        rule: None,
    }
}

fn ban_wait(minutes: i64, country: Territory, rule: &'static str) -> Step<'static> {
    Step {
        rule: Some(rule),
        ..step(SegmentKind::BanWait, minutes, country)
    }
}

fn explained(
    steps: &[Step],
    factors: &[(&str, f64)],
    correction: Option<Adjustment>,
) -> Vec<Reason> {
    explain(&Facts {
        steps,
        factors,
        correction,
        bans: BanRules::embedded(),
    })
}

fn words(reasons: &[Reason], kind: ReasonKind) -> Vec<(&str, &str)> {
    reasons
        .iter()
        .filter(|reason| reason.kind == kind)
        .map(|reason| (reason.en.as_str(), reason.fr.as_str()))
        .collect()
}

/// The reasons a plan of `steps` gives alone (no model, no correction), once its reasons of
/// `kind` are checked to be the one `expected`, in English and in French.
#[track_caller]
fn check_plan(steps: &[Step], kind: ReasonKind, expected: (&str, &str)) -> Vec<Reason> {
    let reasons = explained(steps, &[], None);
    assert_eq!(words(&reasons, kind), [expected]);
    reasons
}

use crate::domain::geo::Territory::{France, Germany, Switzerland};
use crate::domain::rules::SegmentKind::{Border, Break, Drive, Dwell, Rest};

/// StVO §30(3): the wait before the German border on a Sunday names Germany and the ban.
#[test]
fn a_ban_before_the_border_names_the_country_and_the_ban_in_both_languages() {
    let steps = [
        step(Drive, 300, France),
        ban_wait(22 * 60, Germany, "de-sunday"),
        step(Drive, 200, Germany),
    ];
    let reasons = check_plan(
        &steps,
        ReasonKind::Ban,
        (
            "Sunday ban in Germany: waits 22 h at the border",
            "Interdiction du dimanche en Allemagne : attente de 22 h à la frontière",
        ),
    );
    assert_eq!(reasons[0].minutes, 22 * 60);
}

#[test]
fn a_ban_met_while_driving_in_the_country_waits_where_it_is() {
    let steps = [
        step(Drive, 120, France),
        ban_wait(14 * 60 + 30, France, "fr-weekend"),
    ];
    check_plan(
        &steps,
        ReasonKind::Ban,
        (
            "Weekend ban in France: waits 14 h 30",
            "Interdiction du week-end en France : attente de 14 h 30",
        ),
    );
}

#[test]
fn every_shipped_rule_has_a_name_of_its_kind() {
    for country in BanRules::embedded().countries() {
        for rule in &country.rules {
            let (en, fr) = ban_name(BanRules::embedded(), Some(rule.id));
            assert_ne!(en, "Traffic ban", "{}", rule.id);
            assert_ne!(fr, "Interdiction de circuler", "{}", rule.id);
        }
    }
    let (en, fr) = ban_name(BanRules::embedded(), Some("no-such-rule"));
    assert_eq!(
        (en.as_str(), fr.as_str()),
        ("Traffic ban", "Interdiction de circuler")
    );
}

#[test]
fn breaks_and_rests_are_grouped_by_length() {
    let steps = [
        step(Drive, 270, France),
        step(Break, 45, France),
        step(Drive, 270, France),
        step(Rest, 9 * 60, France),
        step(Drive, 270, France),
        step(Break, 45, France),
        step(Drive, 270, France),
        step(Rest, 11 * 60, France),
    ];
    let reasons = check_plan(
        &steps,
        ReasonKind::Breaks,
        ("Two 45-minute breaks", "Deux pauses de 45 min"),
    );
    assert_eq!(
        words(&reasons, ReasonKind::Rest),
        [(
            "A 9-hour rest and an 11-hour rest",
            "Un repos de 9 h et un repos de 11 h"
        )]
    );
    let breaks = reasons
        .iter()
        .find(|reason| reason.kind == ReasonKind::Breaks)
        .unwrap();
    assert_eq!(breaks.minutes, 90);
}

#[test]
fn a_split_break_reads_as_its_two_parts() {
    check_plan(
        &[step(Break, 15, France), step(Break, 30, France)],
        ReasonKind::Breaks,
        (
            "A 15-minute break and a 30-minute break",
            "Une pause de 15 min et une pause de 30 min",
        ),
    );
}

#[test]
fn a_customs_border_says_so_and_a_free_one_costs_nothing() {
    let steps = [
        step(Drive, 120, France),
        step(Border, 30, Switzerland),
        step(Drive, 120, Switzerland),
        // A no-customs border with no wait configured is never a segment; one of zero
        // minutes is left out all the same.
        step(Border, 0, Germany),
    ];
    check_plan(
        &steps,
        ReasonKind::Border,
        (
            "Border with customs into Switzerland: 30 min",
            "Frontière avec douane, entrée en Suisse : 30 min",
        ),
    );
}

#[test]
fn dwell_is_summed_over_the_stops() {
    let steps = [
        step(Drive, 60, France),
        step(Dwell, 45, France),
        step(Drive, 60, France),
        step(Dwell, 45, France),
    ];
    check_plan(
        &steps,
        ReasonKind::Dwell,
        (
            "Loading and unloading at two stops: 1 h 30",
            "Chargement et déchargement à deux arrêts : 1 h 30",
        ),
    );
}

/// The model's columns become kinds; those that restate the plan, and every column name,
/// stay out of the words.
#[test]
fn factors_read_as_traffic_weather_and_carrier_without_column_names() {
    let factors = [
        ("snowfall", 20.0),
        ("temperature_2m", 5.2),
        ("origin_congestion", 12.0),
        ("destination_congestion", -2.0),
        ("partner_strict_share", 3.4),
        ("rules_rest_minutes", 100.0),
        ("load_tonnes", 7.0),
    ];
    let reasons = explained(&[], &factors, None);
    assert_eq!(
        words(&reasons, ReasonKind::Weather),
        [(
            "Weather on the road: +25 min",
            "Météo sur la route : +25 min"
        )]
    );
    assert_eq!(
        words(&reasons, ReasonKind::Traffic),
        [("Traffic: +10 min", "Circulation : +10 min")]
    );
    assert_eq!(
        words(&reasons, ReasonKind::Carrier),
        [(
            "This carrier's record: +3 min",
            "Historique de ce transporteur : +3 min"
        )]
    );
    assert_eq!(reasons.len(), 3);
    for reason in &reasons {
        for (column, _) in factors {
            assert!(!reason.en.contains(column), "{}", reason.en);
            assert!(!reason.fr.contains(column), "{}", reason.fr);
        }
    }
}

#[test]
fn what_arrivals_taught_reads_as_the_carriers_pace() {
    let slower = Adjustment {
        share: 0.08,
        minutes: 25.4,
    };
    let reasons = explained(&[], &[], Some(slower));
    assert_eq!(
        words(&reasons, ReasonKind::Carrier),
        [(
            "This carrier runs 8% slower than the plan: +25 min",
            "Ce transporteur roule 8 % plus lentement que prévu : +25 min"
        )]
    );
    let faster = Adjustment {
        share: -0.05,
        minutes: -70.0,
    };
    let reasons = explained(&[], &[], Some(faster));
    assert_eq!(
        words(&reasons, ReasonKind::Carrier),
        [(
            "This carrier runs 5% faster than the plan: -1 h 10",
            "Ce transporteur roule 5 % plus vite que prévu : -1 h 10"
        )]
    );
}

#[test]
fn the_plan_of_the_engine_reads_in_both_languages() {
    use crate::domain::eta::{EstimateEta, EtaQuery, RulesEta, TripContext};
    use crate::domain::geo::GeoPoint;
    use crate::domain::rules::DriverState;
    use crate::domain::vehicle::VehicleClass;

    let query = EtaQuery {
        origin: GeoPoint::new(50.63, 3.06).unwrap(),
        destination: GeoPoint::new(43.30, 5.37).unwrap(),
        departure: chrono::DateTime::parse_from_rfc3339("2026-12-01T06:00:00+01:00").unwrap(),
        vehicle: VehicleClass::Articulated,
        stops: Vec::new(),
        driver: DriverState::default(),
        context: TripContext::default(),
    };
    let estimate = RulesEta::default().estimate(&query);
    let steps: Vec<Step> = estimate.timeline.segments.iter().map(Step::from).collect();
    let reasons = explained(&steps, &[], None);
    let kinds: Vec<ReasonKind> = reasons.iter().map(|reason| reason.kind).collect();
    assert!(kinds.contains(&ReasonKind::Breaks), "{reasons:?}");
    assert!(kinds.contains(&ReasonKind::Rest), "{reasons:?}");
    for reason in &reasons {
        assert!(!reason.en.is_empty() && !reason.fr.is_empty());
        assert!(reason.minutes > 0);
    }
}
