//! French public holidays and the heavy-goods-vehicle traffic bans built on them.
//!
//! The bans follow the arrêté of 16 April 2015 on traffic restrictions for goods vehicles above
//! 7.5 t, approximated as: from Saturday 22:00 to Sunday 22:00, and from 22:00 on the eve of a
//! public holiday to 22:00 on the holiday, in Europe/Paris local time. Summer Saturdays
//! (07:00 to 19:00) change every year by decree, so they are data handed in by configuration.
//! Not modelled: the derogations (perishable food, livestock, empty runs to a loading point),
//! the Île-de-France and Rhône-Alpes summer extensions, and bans of other countries.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Europe::Paris;

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

/// When heavy goods vehicles may not drive in France.
#[derive(Debug, Clone, Default)]
pub struct BanCalendar {
    summer_saturdays: BTreeSet<NaiveDate>,
}

/// How many days around an instant are searched for bans. A merged ban lasts at most three
/// days (Saturday 22:00 to a Monday holiday 22:00) and one starts every week.
const LOOK_BEHIND_DAYS: u64 = 4;
const LOOK_AHEAD_DAYS: u64 = 9;

impl BanCalendar {
    pub fn new(summer_saturdays: impl IntoIterator<Item = NaiveDate>) -> Self {
        Self {
            summer_saturdays: summer_saturdays.into_iter().collect(),
        }
    }

    /// The ban in force at `instant`, merged with any ban it runs into.
    pub fn ban_at(&self, instant: DateTime<Utc>) -> Option<Interval> {
        self.bans_around(instant)
            .into_iter()
            .find(|ban| ban.contains(instant))
    }

    /// The start of the first ban that begins strictly after `instant`.
    pub fn next_ban_start(&self, instant: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.bans_around(instant)
            .into_iter()
            .map(|ban| ban.start)
            .find(|start| *start > instant)
    }

    /// Every ban that overlaps the local dates `first..=last`, merged and in order.
    pub fn bans_between(&self, first: NaiveDate, last: NaiveDate) -> Vec<Interval> {
        let mut raw = Vec::new();
        for date in first.iter_days().take_while(|date| *date <= last) {
            let day_before = date.pred_opt().unwrap_or(date);
            let next_day = date.succ_opt().unwrap_or(date);
            if date.weekday() == Weekday::Sat {
                raw.extend(local_interval(date, 22, next_day, 22));
            }
            if is_french_public_holiday(date) {
                raw.extend(local_interval(day_before, 22, date, 22));
            }
            if self.summer_saturdays.contains(&date) {
                raw.extend(local_interval(date, 7, date, 19));
            }
        }
        merge(raw)
    }

    fn bans_around(&self, instant: DateTime<Utc>) -> Vec<Interval> {
        let (first, last) = search_span(instant);
        self.bans_between(first, last)
    }
}

/// The local dates searched for bans around `instant`.
fn search_span(instant: DateTime<Utc>) -> (NaiveDate, NaiveDate) {
    let local_date = instant.with_timezone(&Paris).date_naive();
    let first = local_date
        .checked_sub_days(Days::new(LOOK_BEHIND_DAYS))
        .unwrap_or(local_date);
    let last = local_date
        .checked_add_days(Days::new(LOOK_AHEAD_DAYS))
        .unwrap_or(local_date);
    (first, last)
}

/// Paris local hours never fall in a daylight-saving gap at 07:00, 19:00 or 22:00, so
/// `earliest` always has an answer; a date at the edge of chrono's range yields nothing.
/// The bans of a span of dates, computed once and queried many times: the engine asks at
/// every stint, and time-zone conversions are the costly part.
#[derive(Debug, Clone)]
pub struct BanWindow {
    covered: Option<(NaiveDate, NaiveDate)>,
    bans: Vec<Interval>,
}

/// How many days a window covers when it is (re)filled.
const WINDOW_DAYS: u64 = 21;

impl BanWindow {
    pub fn new() -> Self {
        Self {
            covered: None,
            bans: Vec::new(),
        }
    }

    pub fn ban_at(&mut self, calendar: &BanCalendar, instant: DateTime<Utc>) -> Option<Interval> {
        self.cover(calendar, instant);
        self.bans.iter().copied().find(|ban| ban.contains(instant))
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
        let (first, last) = search_span(instant);
        if let Some((covered_first, covered_last)) = self.covered {
            if covered_first <= first && last <= covered_last {
                return;
            }
        }
        let until = first
            .checked_add_days(Days::new(WINDOW_DAYS))
            .unwrap_or(last)
            .max(last);
        self.bans = calendar.bans_between(first, until);
        self.covered = Some((first, until));
    }
}

impl Default for BanWindow {
    fn default() -> Self {
        Self::new()
    }
}

fn local_interval(
    start_date: NaiveDate,
    start_hour: u32,
    end_date: NaiveDate,
    end_hour: u32,
) -> Option<Interval> {
    let at = |date: NaiveDate, hour: u32| {
        let time = NaiveTime::from_hms_opt(hour, 0, 0)?;
        Paris
            .from_local_datetime(&date.and_time(time))
            .earliest()
            .map(|local| local.with_timezone(&Utc))
    };
    Some(Interval {
        start: at(start_date, start_hour)?,
        end: at(end_date, end_hour)?,
    })
}

fn merge(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.sort();
    let mut merged: Vec<Interval> = Vec::with_capacity(intervals.len());
    for interval in intervals {
        match merged.last_mut() {
            Some(last) if interval.start <= last.end => last.end = last.end.max(interval.end),
            _ => merged.push(interval),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).unwrap()
    }

    fn paris(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
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
        let ban = calendar.ban_at(paris("2026-12-05T23:00:00+01:00")).unwrap();
        assert_eq!(ban.start, paris("2026-12-05T22:00:00+01:00"));
        assert_eq!(ban.end, paris("2026-12-06T22:00:00+01:00"));
        assert!(calendar
            .ban_at(paris("2026-12-05T21:59:00+01:00"))
            .is_none());
        assert!(calendar
            .ban_at(paris("2026-12-06T22:00:00+01:00"))
            .is_none());
        assert_eq!(
            calendar.next_ban_start(paris("2026-12-01T06:00:00+01:00")),
            Some(paris("2026-12-05T22:00:00+01:00"))
        );
    }

    #[test]
    fn summer_time_shifts_the_utc_hours() {
        let ban = BanCalendar::default()
            .ban_at(paris("2026-07-05T12:00:00+02:00"))
            .unwrap();
        assert_eq!(ban.start, paris("2026-07-04T20:00:00Z"));
    }

    #[test]
    fn christmas_ban_starts_on_the_eve() {
        let ban = BanCalendar::default()
            .ban_at(paris("2026-12-24T22:30:00+01:00"))
            .unwrap();
        assert_eq!(ban.start, paris("2026-12-24T22:00:00+01:00"));
        assert_eq!(ban.end, paris("2026-12-25T22:00:00+01:00"));
    }

    #[test]
    fn easter_monday_joins_the_weekend_ban() {
        let ban = BanCalendar::default()
            .ban_at(paris("2026-04-05T12:00:00+02:00"))
            .unwrap();
        assert_eq!(ban.start, paris("2026-04-04T22:00:00+02:00"));
        assert_eq!(ban.end, paris("2026-04-06T22:00:00+02:00"));
    }

    #[test]
    fn the_window_answers_like_the_calendar() {
        let calendar = BanCalendar::new([date(2027, 7, 31)]);
        let mut window = BanWindow::new();
        let mut instant = paris("2026-12-20T00:00:00+01:00");
        while instant < paris("2027-08-15T00:00:00+02:00") {
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
        let at_noon = paris("2027-07-31T12:00:00+02:00");
        assert!(BanCalendar::default().ban_at(at_noon).is_none());
        let ban = BanCalendar::new([saturday]).ban_at(at_noon).unwrap();
        assert_eq!(ban.start, paris("2027-07-31T07:00:00+02:00"));
        assert_eq!(ban.end, paris("2027-07-31T19:00:00+02:00"));
    }
}
