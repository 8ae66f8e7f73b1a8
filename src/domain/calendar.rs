//! Public holidays, and the calendar of heavy-goods-vehicle traffic bans of every country
//! the ban data knows (see [`crate::domain::bans`] for the rules and their sources).
//!
//! The France-only methods (`ban_at`, `next_ban_start`, `bans_between`) answer for a heavy
//! goods vehicle anywhere in France outside the regions with rules of their own: the weekend
//! ban (Saturday 22:00 to Sunday 22:00), the holiday ban (22:00 on the eve to 22:00 on the
//! holiday) and the summer Saturdays of the years the data lists, in Europe/Paris local time.
//! [`BanCalendar::bans_in`] and [`BanWindow::for_place`] answer for any country, region and
//! weight.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use chrono_tz::Europe::Paris;
use chrono_tz::Tz;

use crate::domain::bans::BanRules;
use crate::domain::geo::{Region, Territory};

/// Easter Sunday in the Gregorian calendar (the anonymous algorithm of Meeus, Jones and Butcher).
pub fn easter_sunday(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32)
        .expect("the Easter algorithm yields a day in March or April")
}

/// The eleven public holidays of metropolitan France (Alsace-Moselle's two extra days excluded).
pub fn french_public_holidays(year: i32) -> [NaiveDate; 11] {
    let easter = easter_sunday(year);
    let fixed = |month, day| NaiveDate::from_ymd_opt(year, month, day).expect("a valid fixed date");
    let after_easter = |days| easter + Days::new(days);
    [
        fixed(1, 1),
        after_easter(1), // Easter Monday
        fixed(5, 1),
        fixed(5, 8),
        after_easter(39), // Ascension Thursday
        after_easter(50), // Whit Monday
        fixed(7, 14),
        fixed(8, 15),
        fixed(11, 1),
        fixed(11, 11),
        fixed(12, 25),
    ]
}

pub fn is_french_public_holiday(date: NaiveDate) -> bool {
    french_public_holidays(date.year()).contains(&date)
}

/// A half-open interval of time `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Interval {
    pub fn contains(&self, instant: DateTime<Utc>) -> bool {
        self.start <= instant && instant < self.end
    }
}

/// When heavy goods vehicles may not drive: every country's rules of [`BanRules`], the shipped
/// ones (`data/bans/*.toml`) unless the caller gives others. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct BanCalendar {
    rules: Arc<BanRules>,
}

/// One ban: when, and the rule it starts with (merged bans keep the first rule's id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    pub interval: Interval,
    pub rule: &'static str,
}

/// The gross weight the France-only methods ask about: any vehicle the French bans cover.
const HEAVY_TONNES: f64 = 40.0;

/// How many days around an instant are searched for bans. A merged ban lasts at most three
/// days (Saturday 22:00 to a Monday holiday 22:00, or Saturday 15:00 in Austria) and one
/// starts every week.
const LOOK_BEHIND_DAYS: u64 = 4;
const LOOK_AHEAD_DAYS: u64 = 9;

impl Default for BanCalendar {
    fn default() -> Self {
        static SHIPPED: OnceLock<Arc<BanRules>> = OnceLock::new();
        Self {
            rules: SHIPPED
                .get_or_init(|| Arc::new(BanRules::embedded().clone()))
                .clone(),
        }
    }
}

impl BanCalendar {
    /// The shipped rules, plus French summer Saturdays (07:00 to 19:00) from configuration:
    /// those of a year the shipped data does not know yet.
    pub fn new(summer_saturdays: impl IntoIterator<Item = NaiveDate>) -> Self {
        let dates: BTreeSet<NaiveDate> = summer_saturdays.into_iter().collect();
        if dates.is_empty() {
            return Self::default();
        }
        let mut rules = BanRules::embedded().clone();
        rules.merge(BanRules::french_summer_saturdays(dates));
        Self::with_rules(rules)
    }

    /// A calendar of exactly these rules (the shipped ones merged with an operator's file,
    /// say).
    pub fn with_rules(rules: BanRules) -> Self {
        Self {
            rules: Arc::new(rules),
        }
    }

    pub fn rules(&self) -> &BanRules {
        &self.rules
    }

    /// The French national ban in force at `instant` for a heavy goods vehicle, merged with
    /// any ban it runs into.
    pub fn ban_at(&self, instant: DateTime<Utc>) -> Option<Interval> {
        let (first, last) = search_span(instant, Paris);
        self.bans_between(first, last)
            .into_iter()
            .find(|ban| ban.contains(instant))
    }

    /// The start of the first French national ban that begins strictly after `instant`.
    pub fn next_ban_start(&self, instant: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (first, last) = search_span(instant, Paris);
        self.bans_between(first, last)
            .into_iter()
            .map(|ban| ban.start)
            .find(|start| *start > instant)
    }

    /// Every French national ban (no regional one) on a heavy goods vehicle that overlaps the
    /// local dates `first..=last`, merged and in order.
    pub fn bans_between(&self, first: NaiveDate, last: NaiveDate) -> Vec<Interval> {
        self.bans_in(Territory::France, None, HEAVY_TONNES, first, last)
            .into_iter()
            .map(|ban| ban.interval)
            .collect()
    }

    /// Every ban of `territory` (with `region`'s own) on a vehicle of `gross_tonnes`, for the
    /// country's local dates `first..=last`, merged and in order. Empty for a country the
    /// data does not know.
    pub fn bans_in(
        &self,
        territory: Territory,
        region: Option<Region>,
        gross_tonnes: f64,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Vec<Ban> {
        let Some(country) = self.rules.country(territory) else {
            return Vec::new();
        };
        merge(country.raw_bans(first, last, gross_tonnes, region))
    }
}

/// The local dates searched for bans around `instant`.
fn search_span(instant: DateTime<Utc>, zone: Tz) -> (NaiveDate, NaiveDate) {
    let local_date = instant.with_timezone(&zone).date_naive();
    let first = local_date
        .checked_sub_days(Days::new(LOOK_BEHIND_DAYS))
        .unwrap_or(local_date);
    let last = local_date
        .checked_add_days(Days::new(LOOK_AHEAD_DAYS))
        .unwrap_or(local_date);
    (first, last)
}

/// The bans of one place and vehicle over a span of dates, computed once and queried many
/// times: the engine asks at every stint, and time-zone conversions are the costly part.
#[derive(Debug, Clone)]
pub struct BanWindow {
    territory: Territory,
    region: Option<Region>,
    gross_tonnes: f64,
    covered: Option<(NaiveDate, NaiveDate)>,
    bans: Vec<Interval>,
    /// The unmerged intervals with their rules, to name the rule in force at an instant.
    pieces: Vec<(Interval, &'static str)>,
}

/// How many days a window covers when it is (re)filled.
const WINDOW_DAYS: u64 = 21;

impl BanWindow {
    /// The French national bans on a heavy goods vehicle.
    pub fn new() -> Self {
        Self::for_place(Territory::France, None, HEAVY_TONNES)
    }

    /// The bans of `territory` (with `region`'s own) on a vehicle of `gross_tonnes`.
    pub fn for_place(territory: Territory, region: Option<Region>, gross_tonnes: f64) -> Self {
        Self {
            territory,
            region,
            gross_tonnes,
            covered: None,
            bans: Vec::new(),
            pieces: Vec::new(),
        }
    }

    pub fn ban_at(&mut self, calendar: &BanCalendar, instant: DateTime<Utc>) -> Option<Interval> {
        self.cover(calendar, instant);
        self.bans.iter().copied().find(|ban| ban.contains(instant))
    }

    /// The ban in force at `instant` and the rule that holds at that instant.
    pub fn ban_and_rule_at(
        &mut self,
        calendar: &BanCalendar,
        instant: DateTime<Utc>,
    ) -> Option<Ban> {
        let interval = self.ban_at(calendar, instant)?;
        let rule = self
            .pieces
            .iter()
            .find(|(piece, _)| piece.contains(instant))
            .map_or("", |(_, rule)| rule);
        Some(Ban { interval, rule })
    }

    pub fn next_ban_start(
        &mut self,
        calendar: &BanCalendar,
        instant: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.cover(calendar, instant);
        self.bans
            .iter()
            .map(|ban| ban.start)
            .find(|start| *start > instant)
    }

    /// Makes sure the window holds every ban from `LOOK_BEHIND_DAYS` before `instant` to
    /// `LOOK_AHEAD_DAYS` after it, the same span `BanCalendar` searches.
    fn cover(&mut self, calendar: &BanCalendar, instant: DateTime<Utc>) {
        let Some(country) = calendar.rules.country(self.territory) else {
            return;
        };
        let (first, last) = search_span(instant, country.time_zone);
        if let Some((covered_first, covered_last)) = self.covered {
            if covered_first <= first && last <= covered_last {
                return;
            }
        }
        let until = first
            .checked_add_days(Days::new(WINDOW_DAYS))
            .unwrap_or(last)
            .max(last);
        self.pieces = country.raw_bans(first, until, self.gross_tonnes, self.region);
        self.bans = merge(self.pieces.clone())
            .into_iter()
            .map(|ban| ban.interval)
            .collect();
        self.covered = Some((first, until));
    }
}

impl Default for BanWindow {
    fn default() -> Self {
        Self::new()
    }
}

/// Merges overlapping or touching intervals, each keeping the rule it starts with.
fn merge(mut pieces: Vec<(Interval, &'static str)>) -> Vec<Ban> {
    pieces.sort();
    let mut merged: Vec<Ban> = Vec::with_capacity(pieces.len());
    for (interval, rule) in pieces {
        match merged.last_mut() {
            Some(last) if interval.start <= last.interval.end => {
                last.interval.end = last.interval.end.max(interval.end);
            }
            _ => merged.push(Ban { interval, rule }),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::at;

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).unwrap()
    }

    /// The French ban under the shipped data that holds at an RFC 3339 instant.
    fn ban_containing(text: &str) -> Interval {
        BanCalendar::default().ban_at(at(text)).unwrap()
    }

    #[test]
    fn easter_matches_published_dates() {
        let published = [
            (2019, 4, 21),
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2038, 4, 25),
        ];
        for (year, month, day) in published {
            assert_eq!(easter_sunday(year), date(year, month, day), "{year}");
        }
    }

    #[test]
    fn movable_holidays_of_2026() {
        let holidays = french_public_holidays(2026);
        assert!(holidays.contains(&date(2026, 4, 6)), "Easter Monday");
        assert!(holidays.contains(&date(2026, 5, 14)), "Ascension");
        assert!(holidays.contains(&date(2026, 5, 25)), "Whit Monday");
        assert!(!is_french_public_holiday(date(2026, 12, 26)));
    }

    #[test]
    fn weekend_ban_runs_saturday_22_to_sunday_22_paris_time() {
        let calendar = BanCalendar::default();
        let ban = calendar.ban_at(at("2026-12-05T23:00:00+01:00")).unwrap();
        assert_eq!(ban.start, at("2026-12-05T22:00:00+01:00"));
        assert_eq!(ban.end, at("2026-12-06T22:00:00+01:00"));
        assert!(calendar.ban_at(at("2026-12-05T21:59:00+01:00")).is_none());
        assert!(calendar.ban_at(at("2026-12-06T22:00:00+01:00")).is_none());
        assert_eq!(
            calendar.next_ban_start(at("2026-12-01T06:00:00+01:00")),
            Some(at("2026-12-05T22:00:00+01:00"))
        );
    }

    #[test]
    fn summer_time_shifts_the_utc_hours() {
        let ban = ban_containing("2026-07-05T12:00:00+02:00");
        assert_eq!(ban.start, at("2026-07-04T20:00:00Z"));
    }

    #[test]
    fn christmas_ban_starts_on_the_eve() {
        let ban = ban_containing("2026-12-24T22:30:00+01:00");
        assert_eq!(ban.start, at("2026-12-24T22:00:00+01:00"));
        assert_eq!(ban.end, at("2026-12-25T22:00:00+01:00"));
    }

    #[test]
    fn easter_monday_joins_the_weekend_ban() {
        let ban = ban_containing("2026-04-05T12:00:00+02:00");
        assert_eq!(ban.start, at("2026-04-04T22:00:00+02:00"));
        assert_eq!(ban.end, at("2026-04-06T22:00:00+02:00"));
    }

    #[test]
    fn the_window_answers_like_the_calendar() {
        let calendar = BanCalendar::new([date(2027, 7, 31)]);
        let mut window = BanWindow::new();
        let mut instant = at("2026-12-20T00:00:00+01:00");
        while instant < at("2027-08-15T00:00:00+02:00") {
            assert_eq!(
                window.ban_at(&calendar, instant),
                calendar.ban_at(instant),
                "{instant}"
            );
            assert_eq!(
                window.next_ban_start(&calendar, instant),
                calendar.next_ban_start(instant)
            );
            instant += chrono::TimeDelta::minutes(97);
        }
    }

    #[test]
    fn summer_saturdays_come_from_configuration() {
        let saturday = date(2027, 7, 31);
        let at_noon = at("2027-07-31T12:00:00+02:00");
        assert!(BanCalendar::default().ban_at(at_noon).is_none());
        let ban = BanCalendar::new([saturday]).ban_at(at_noon).unwrap();
        assert_eq!(ban.start, at("2027-07-31T07:00:00+02:00"));
        assert_eq!(ban.end, at("2027-07-31T19:00:00+02:00"));
    }
}
