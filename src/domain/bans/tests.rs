use chrono::NaiveDate;

use super::*;
use crate::domain::calendar::{french_public_holidays, BanCalendar};
use crate::domain::clock::at;

/// A local date written `YYYY-MM-DD`.
fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// The bans of `territory` on a vehicle of `tonnes` for the local dates `first..=last`.
fn bans(territory: Territory, tonnes: f64, first: &str, last: &str) -> Vec<Ban> {
    BanCalendar::default().bans_in(territory, None, tonnes, date(first), date(last))
}

use crate::domain::calendar::Ban;

#[test]
fn the_shipped_data_parses_and_every_rule_cites_its_source() {
    let rules = BanRules::embedded();
    let codes: Vec<_> = rules
        .countries()
        .iter()
        .map(|country| country.territory.code())
        .collect();
    assert_eq!(codes, ["FR", "DE", "IT", "CH", "AT", "ES", "BE"]);
    for country in rules.countries() {
        assert!(!country.holidays.is_empty(), "{}", country.territory);
        for rule in &country.rules {
            assert!(rule.source.len() > 10, "{}", rule.id);
            assert!(rule
                .id
                .starts_with(&country.territory.code().to_lowercase()));
        }
    }
    assert!(rules.rule("de-sunday").is_some());
}

#[test]
fn french_holidays_in_the_data_are_the_computed_ones() {
    let france = BanRules::embedded().country(Territory::France).unwrap();
    for year in 2000..2100 {
        let mut from_data: Vec<_> = france
            .holidays_of(year)
            .into_iter()
            .map(|(day, _)| day)
            .collect();
        from_data.sort();
        let mut computed = french_public_holidays(year).to_vec();
        computed.sort();
        assert_eq!(from_data, computed, "{year}");
    }
}

#[test]
fn movable_holidays_of_2026_in_each_country() {
    let holiday = |territory: Territory, day: &str| {
        BanRules::embedded()
            .country(territory)
            .unwrap()
            .is_holiday(date(day))
    };
    assert!(holiday(Territory::Germany, "2026-04-03"), "Karfreitag");
    assert!(!holiday(Territory::France, "2026-04-03"));
    assert!(holiday(Territory::Austria, "2026-06-04"), "Fronleichnam");
    assert!(holiday(Territory::Switzerland, "2026-05-14"), "Auffahrt");
    assert!(
        holiday(Territory::Switzerland, "2026-08-01"),
        "Bundesfeiertag"
    );
    assert!(holiday(Territory::Italy, "2026-04-06"), "Pasquetta");
    assert!(holiday(Territory::Spain, "2026-10-12"), "Fiesta Nacional");
    assert!(holiday(Territory::Belgium, "2026-07-21"), "Fête nationale");
}

/// StVO §30(3): Sunday 00:00 to 22:00, Berlin time; not for a vehicle of 7.5 t or less.
#[test]
fn germany_bans_sundays_until_22() {
    let found = bans(Territory::Germany, 40.0, "2026-10-10", "2026-10-11");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].interval.start, at("2026-10-11T00:00:00+02:00"));
    assert_eq!(found[0].interval.end, at("2026-10-11T22:00:00+02:00"));
    assert_eq!(found[0].rule, "de-sunday");
    assert!(bans(Territory::Germany, 7.5, "2026-10-10", "2026-10-11").is_empty());
}

/// Ferienreiseverordnung §1: Saturdays from 1 July to 31 August, 07:00 to 20:00.
#[test]
fn germany_bans_summer_saturdays() {
    let found = bans(Territory::Germany, 40.0, "2026-07-04", "2026-07-04");
    assert_eq!(found[0].interval.start, at("2026-07-04T07:00:00+02:00"));
    assert_eq!(found[0].interval.end, at("2026-07-04T20:00:00+02:00"));
    assert!(bans(Territory::Germany, 40.0, "2026-06-27", "2026-06-27").is_empty());
}

/// SVG Art. 2 and VRV Art. 91: the night ban and the Sunday ban run together from Saturday
/// 22:00 to Monday 05:00; a van of 3.5 t is not covered.
#[test]
fn switzerland_bans_nights_and_sundays() {
    let found = bans(Territory::Switzerland, 40.0, "2026-10-10", "2026-10-11");
    let weekend = found
        .iter()
        .find(|ban| ban.interval.contains(at("2026-10-11T12:00:00+02:00")))
        .unwrap();
    assert_eq!(weekend.interval.start, at("2026-10-10T22:00:00+02:00"));
    assert_eq!(weekend.interval.end, at("2026-10-12T05:00:00+02:00"));
    assert!(bans(Territory::Switzerland, 3.5, "2026-10-10", "2026-10-11").is_empty());
}

/// StVO 1960 §42: Saturday 15:00 to Sunday 22:00; the night restriction is shipped disabled.
#[test]
fn austria_bans_weekends_from_saturday_15() {
    let found = bans(Territory::Austria, 40.0, "2026-10-06", "2026-10-11");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].interval.start, at("2026-10-10T15:00:00+02:00"));
    assert_eq!(found[0].interval.end, at("2026-10-11T22:00:00+02:00"));
}

/// Italy's 2026 calendar: Sundays 07:00 to 22:00 from June to September, 09:00 to 22:00
/// otherwise; the holidays likewise.
#[test]
fn italy_follows_the_calendar_decree() {
    let june = bans(Territory::Italy, 40.0, "2026-06-07", "2026-06-07");
    assert_eq!(june[0].interval.start, at("2026-06-07T07:00:00+02:00"));
    let october = bans(Territory::Italy, 40.0, "2026-10-11", "2026-10-11");
    assert_eq!(october[0].interval.start, at("2026-10-11T09:00:00+02:00"));
    assert_eq!(october[0].interval.end, at("2026-10-11T22:00:00+02:00"));
    let republic_day = bans(Territory::Italy, 40.0, "2026-06-02", "2026-06-02");
    assert_eq!(
        republic_day[0].interval.start,
        at("2026-06-02T07:00:00+02:00")
    );
    assert_eq!(republic_day[0].rule, "it-holidays-summer");
}

/// Spain and Belgium ship holidays but no rule (see their files), and a country without
/// data has no ban.
#[test]
fn spain_belgium_and_unknown_countries_ban_nothing() {
    for territory in [
        Territory::Spain,
        Territory::Belgium,
        Territory::Luxembourg,
        Territory::Elsewhere,
    ] {
        assert!(bans(territory, 40.0, "2026-01-01", "2026-12-31").is_empty());
    }
}

/// The yearly arrêté for 2026: the winter Saturdays hold on the Alpine network only, the
/// summer Saturdays everywhere.
#[test]
fn french_special_saturdays_of_2026() {
    let calendar = BanCalendar::default();
    let winter = date("2026-02-07");
    let alps = calendar.bans_in(
        Territory::France,
        Some(Region::FrenchAlps),
        40.0,
        winter,
        winter,
    );
    assert_eq!(alps[0].interval.start, at("2026-02-07T07:00:00+01:00"));
    assert_eq!(alps[0].interval.end, at("2026-02-07T18:00:00+01:00"));
    assert!(calendar.ban_at(at("2026-02-07T12:00:00+01:00")).is_none());
    let summer = calendar.ban_at(at("2026-08-08T12:00:00+02:00")).unwrap();
    assert_eq!(summer.start, at("2026-08-08T07:00:00+02:00"));
    assert_eq!(summer.end, at("2026-08-08T19:00:00+02:00"));
    assert!(
        calendar.ban_at(at("2026-08-15T12:00:00+02:00")).is_some(),
        "Assomption"
    );
    assert!(calendar.ban_at(at("2026-08-22T12:00:00+02:00")).is_none());
}

const OPERATOR_FILE: &str = r#"
[[countries]]
country = "FR"
time_zone = "Europe/Paris"
[[countries.rules]]
id = "fr-summer-saturdays-2027"
title = "Summer Saturdays 2027"
source = "Arrêté fixant le calendrier pour l'année 2027 (operator's copy)"
over_tonnes = 7.5
when = { kind = "dates", dates = ["2027-07-31"], from = "07:00", to = "19:00" }

[[countries]]
country = "AT"
time_zone = "Europe/Vienna"
[[countries.rules]]
id = "at-night"
title = "Night restriction, for a fleet without low-noise trucks"
source = "Straßenverkehrsordnung 1960 (StVO) §42 Abs. 6"
over_tonnes = 7.5
when = { kind = "daily", from = "22:00", to = "05:00" }
"#;

#[test]
fn an_operator_file_adds_and_replaces_rules() {
    let mut rules = BanRules::embedded().clone();
    rules.merge(BanRules::parse(OPERATOR_FILE).unwrap());
    let calendar = BanCalendar::with_rules(rules);
    let saturday = calendar.ban_at(at("2027-07-31T12:00:00+02:00")).unwrap();
    assert_eq!(saturday.start, at("2027-07-31T07:00:00+02:00"));
    let austria = calendar.bans_in(
        Territory::Austria,
        None,
        40.0,
        date("2026-10-06"),
        date("2026-10-06"),
    );
    assert_eq!(austria[0].rule, "at-night");
    assert_eq!(austria[0].interval.start, at("2026-10-06T22:00:00+02:00"));
    assert_eq!(austria[0].interval.end, at("2026-10-07T05:00:00+02:00"));
    let shipped_rules = BanRules::embedded()
        .country(Territory::Austria)
        .unwrap()
        .rules
        .len();
    let merged_rules = calendar
        .rules()
        .country(Territory::Austria)
        .unwrap()
        .rules
        .len();
    assert_eq!(merged_rules, shipped_rules, "replaced, not added");
}

#[test]
fn bad_data_is_refused_with_its_place() {
    let bad = |text: &str| BanRules::parse(text).unwrap_err().to_string();
    let country = |body: &str| {
        format!("[[countries]]\ncountry = \"DE\"\ntime_zone = \"Europe/Berlin\"\n{body}")
    };
    assert!(bad("[[countries]]\ncountry = \"XX\"\ntime_zone = \"Europe/Paris\"\n").contains("XX"));
    assert!(
        bad("[[countries]]\ncountry = \"DE\"\ntime_zone = \"Mars/Olympus\"\n")
            .contains("time zone")
    );
    let rule = |when: &str| {
        country(&format!(
            "[[countries.rules]]\nid = \"de-x\"\ntitle = \"x\"\nsource = \"StVO\"\nover_tonnes = 7.5\nwhen = {when}\n"
        ))
    };
    assert!(bad(&rule(r#"{ kind = "daily", from = "25:00", to = "05:00" }"#)).contains("de-x"));
    assert!(bad(&rule(r#"{ kind = "weekly", from_day = "caturday", from = "22:00", to_day = "sun", to = "22:00" }"#)).contains("weekday"));
    assert!(bad(&rule(
        r#"{ kind = "dates", dates = ["2026-02-30"], from = "07:00", to = "19:00" }"#
    ))
    .contains("date"));
    assert!(bad(&rule(
        r#"{ kind = "fortnightly", from = "07:00", to = "19:00" }"#
    ))
    .contains("schema"));
    assert!(bad(&country("unknown_key = 1\n")).contains("schema"));
    assert!(bad(&country("holidays = [{ name = \"x\" }]\n")).contains("holiday"));
    let twice = format!("{}{}", rule(r#"{ kind = "daily", from = "22:00", to = "05:00" }"#), "[[countries.rules]]\nid = \"de-x\"\ntitle = \"x\"\nsource = \"StVO\"\nover_tonnes = 7.5\nwhen = { kind = \"daily\", from = \"22:00\", to = \"05:00\" }\n");
    assert!(bad(&twice).contains("twice"));
    assert_eq!("24:00".parse::<LocalTime>(), Ok(LocalTime(1440)));
    assert!("24:01".parse::<LocalTime>().is_err());
}
