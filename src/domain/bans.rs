//! Heavy-goods-vehicle traffic bans as data: for each country its time zone, its public
//! holidays and its rules, each rule with the vehicles it covers and the source it follows.
//!
//! The data ships compiled in (`data/bans/*.toml`, see [`BanRules::embedded`]); an operator
//! extends it with a TOML text of the same schema, which [`BanRules::parse`] reads and
//! [`BanRules::merge`] lays over the shipped rules (a rule with the same id replaces the
//! shipped one). The schema, by example:
//!
//! ```toml
//! [[countries]]
//! country = "DE"                 # ISO 3166 alpha-2
//! time_zone = "Europe/Berlin"    # the rules' hours are local to it
//! holidays = [
//!     { name = "Neujahr", date = "01-01" },
//!     { name = "Karfreitag", easter = -2 },   # days after Easter Sunday
//! ]
//! [[countries.rules]]
//! id = "de-sunday-holiday"
//! title = "Sunday and public holiday ban"
//! source = "StVO §30(3)"
//! over_tonnes = 7.5              # gross vehicle weight strictly above
//! when = { kind = "weekly", from_day = "sun", from = "00:00", to_day = "sun", to = "22:00" }
//! ```
//!
//! `when` is one of `weekly`, `holidays` (`from_day_offset`/`to_day_offset` around each
//! holiday, `only` to name some), `daily` (an end before the start runs to the next day),
//! `dates` (a list of `YYYY-MM-DD`) and `season` (one weekday between two `MM-DD`, inclusive).
//! `24:00` is the end of a day. A rule may name a `region` (see [`Region`]) and may be shipped
//! with `enabled = false` when it is documented but not applied.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Datelike, Days, NaiveDate, TimeDelta, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;

use crate::domain::calendar::{easter_sunday, Interval};
use crate::domain::geo::{Region, Territory};

/// The shipped data files, in the order they are merged.
const EMBEDDED: [(&str, &str); 7] = [
    ("data/bans/fr.toml", include_str!("../../data/bans/fr.toml")),
    ("data/bans/de.toml", include_str!("../../data/bans/de.toml")),
    ("data/bans/it.toml", include_str!("../../data/bans/it.toml")),
    ("data/bans/ch.toml", include_str!("../../data/bans/ch.toml")),
    ("data/bans/at.toml", include_str!("../../data/bans/at.toml")),
    ("data/bans/es.toml", include_str!("../../data/bans/es.toml")),
    ("data/bans/be.toml", include_str!("../../data/bans/be.toml")),
];

/// Every country's bans.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BanRules {
    countries: Vec<CountryBans>,
}

/// One country's time zone, holidays and rules.
#[derive(Debug, Clone, PartialEq)]
pub struct CountryBans {
    pub territory: Territory,
    pub time_zone: Tz,
    pub holidays: Vec<Holiday>,
    pub rules: Vec<BanRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holiday {
    pub name: String,
    pub date: HolidayDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolidayDate {
    /// The same month and day every year.
    Fixed { month: u32, day: u32 },
    /// So many days after Easter Sunday (negative: before).
    Easter(i64),
}

/// One rule: when it bans, whom, where, and on what authority.
#[derive(Debug, Clone, PartialEq)]
pub struct BanRule {
    /// Stable, unique within the data; named by the timeline's ban waits.
    pub id: &'static str,
    pub title: String,
    /// The official text or ministry page the rule follows.
    pub source: String,
    /// What the rule simplifies, when it does.
    pub note: Option<String>,
    /// The rule covers vehicles whose gross weight is strictly above this.
    pub over_tonnes: f64,
    /// Where the rule applies inside its country; `None`: the whole country.
    pub region: Option<Region>,
    pub enabled: bool,
    pub when: When,
}

/// A time of day as minutes after local midnight, `0..=1440` (1440 is `24:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalTime(u32);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    Weekly {
        from_day: Weekday,
        from: LocalTime,
        to_day: Weekday,
        to: LocalTime,
    },
    /// Around each holiday (or the named ones): from `from` on the holiday plus
    /// `from_day_offset` days to `to` on the holiday plus `to_day_offset` days.
    Holidays {
        only: Vec<String>,
        from_day_offset: i64,
        from: LocalTime,
        to_day_offset: i64,
        to: LocalTime,
    },
    Daily {
        from: LocalTime,
        to: LocalTime,
    },
    Dates {
        dates: BTreeSet<NaiveDate>,
        from: LocalTime,
        to: LocalTime,
    },
    /// Every `weekday` from `first` to `last` (month, day), both included, each year.
    Season {
        weekday: Weekday,
        first: (u32, u32),
        last: (u32, u32),
        from: LocalTime,
        to: LocalTime,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BanDataError {
    #[error("ban data does not follow the schema: {0}")]
    Schema(String),
    #[error("ban data, {context}: {problem}")]
    Invalid { context: String, problem: String },
}

impl BanRules {
    /// The shipped rules, parsed once. A shipped file that does not parse is a bug that the
    /// tests catch, hence the panic.
    pub fn embedded() -> &'static BanRules {
        static RULES: OnceLock<BanRules> = OnceLock::new();
        RULES.get_or_init(|| {
            let mut rules = BanRules::default();
            for (path, text) in EMBEDDED {
                let parsed =
                    BanRules::parse(text).unwrap_or_else(|error| panic!("{path}: {error}"));
                rules.merge(parsed);
            }
            rules
        })
    }

    /// Reads a TOML text of the schema in the module documentation.
    pub fn parse(text: &str) -> Result<BanRules, BanDataError> {
        let document: Document =
            toml::from_str(text).map_err(|error| BanDataError::Schema(error.to_string()))?;
        let countries = document
            .countries
            .into_iter()
            .map(CountryDoc::check)
            .collect::<Result<Vec<_>, _>>()?;
        let mut rules = BanRules::default();
        for country in countries {
            rules.merge(BanRules {
                countries: vec![country],
            });
        }
        Ok(rules)
    }

    /// Lays `other` over `self`: a country new to `self` is added; for a known one, `other`'s
    /// time zone wins, a holiday of the same name or a rule of the same id replaces `self`'s,
    /// and the others are added.
    pub fn merge(&mut self, other: BanRules) {
        for incoming in other.countries {
            let Some(known) = self
                .countries
                .iter_mut()
                .find(|country| country.territory == incoming.territory)
            else {
                self.countries.push(incoming);
                continue;
            };
            known.time_zone = incoming.time_zone;
            for holiday in incoming.holidays {
                match known.holidays.iter_mut().find(|h| h.name == holiday.name) {
                    Some(slot) => *slot = holiday,
                    None => known.holidays.push(holiday),
                }
            }
            for rule in incoming.rules {
                match known.rules.iter_mut().find(|r| r.id == rule.id) {
                    Some(slot) => *slot = rule,
                    None => known.rules.push(rule),
                }
            }
        }
    }

    /// French summer Saturdays, 07:00 to 19:00 on the whole network for vehicles over 7.5 t,
    /// as configuration hands them in for a year the shipped data does not know.
    pub fn french_summer_saturdays(dates: BTreeSet<NaiveDate>) -> BanRules {
        let at = |text: &str| text.parse::<LocalTime>().expect("a valid time of day");
        BanRules {
            countries: vec![CountryBans {
                territory: Territory::France,
                time_zone: chrono_tz::Europe::Paris,
                holidays: Vec::new(),
                rules: vec![BanRule {
                    id: intern("fr-summer-saturdays-configured"),
                    title: "Summer Saturdays from configuration, 07:00 to 19:00".into(),
                    source: "The yearly arrêté of complementary bans, as configured in `rules.summer_saturdays`".into(),
                    note: None,
                    over_tonnes: 7.5,
                    region: None,
                    enabled: true,
                    when: When::Dates {
                        dates,
                        from: at("07:00"),
                        to: at("19:00"),
                    },
                }],
            }],
        }
    }

    pub fn country(&self, territory: Territory) -> Option<&CountryBans> {
        self.countries
            .iter()
            .find(|country| country.territory == territory)
    }

    pub fn countries(&self) -> &[CountryBans] {
        &self.countries
    }

    /// The rule of that id, in whichever country.
    pub fn rule(&self, id: &str) -> Option<(&CountryBans, &BanRule)> {
        self.countries.iter().find_map(|country| {
            country
                .rules
                .iter()
                .find(|rule| rule.id == id)
                .map(|rule| (country, rule))
        })
    }
}

impl CountryBans {
    /// The holidays of `year`, in the data's order.
    pub fn holidays_of(&self, year: i32) -> Vec<(NaiveDate, &str)> {
        self.holidays
            .iter()
            .filter_map(|holiday| Some((holiday.date.in_year(year)?, holiday.name.as_str())))
            .collect()
    }

    pub fn is_holiday(&self, date: NaiveDate) -> bool {
        self.holidays
            .iter()
            .any(|holiday| holiday.date.in_year(date.year()) == Some(date))
    }

    /// Every interval, unmerged and with its rule's id, of the rules that cover a vehicle of
    /// `gross_tonnes` in `region`, for the local dates `first..=last` (an interval belongs to
    /// the date it starts on, or to its holiday).
    pub fn raw_bans(
        &self,
        first: NaiveDate,
        last: NaiveDate,
        gross_tonnes: f64,
        region: Option<Region>,
    ) -> Vec<(Interval, &'static str)> {
        let mut raw = Vec::new();
        for rule in &self.rules {
            if !rule.applies_to(gross_tonnes, region) {
                continue;
            }
            for date in first.iter_days().take_while(|date| *date <= last) {
                let found = self.interval_on(&rule.when, date);
                raw.extend(found.map(|found| (found, rule.id)));
            }
        }
        raw.sort();
        raw
    }

    /// The interval `when` bans that belongs to the local `date`, if any: one that starts
    /// on it, or that surrounds it when it is a holiday.
    fn interval_on(&self, when: &When, date: NaiveDate) -> Option<Interval> {
        let at = |date: NaiveDate, time: LocalTime| local_instant(self.time_zone, date, time);
        let (start, end) = match when {
            When::Weekly {
                from_day,
                from,
                to_day,
                to,
            } => {
                if date.weekday() != *from_day {
                    return None;
                }
                let span =
                    (to_day.num_days_from_monday() + 7 - from_day.num_days_from_monday()) % 7;
                let span = if span == 0 && to <= from { 7 } else { span };
                (at(date, *from), at(plus_days(date, span.into()), *to))
            }
            When::Holidays {
                only,
                from_day_offset,
                from,
                to_day_offset,
                to,
            } => {
                let named = self.holidays.iter().any(|holiday| {
                    holiday.date.in_year(date.year()) == Some(date)
                        && (only.is_empty() || only.contains(&holiday.name))
                });
                if !named {
                    return None;
                }
                (
                    at(plus_days(date, *from_day_offset), *from),
                    at(plus_days(date, *to_day_offset), *to),
                )
            }
            When::Daily { from, to } => {
                let end_date = if to <= from { plus_days(date, 1) } else { date };
                (at(date, *from), at(end_date, *to))
            }
            When::Dates { dates, from, to } => {
                if !dates.contains(&date) {
                    return None;
                }
                (at(date, *from), at(date, *to))
            }
            When::Season {
                weekday,
                first,
                last,
                from,
                to,
            } => {
                let month_day = (date.month(), date.day());
                if date.weekday() != *weekday || month_day < *first || month_day > *last {
                    return None;
                }
                (at(date, *from), at(date, *to))
            }
        };
        let (start, end) = (start?, end?);
        (start < end).then_some(Interval { start, end })
    }
}

impl BanRule {
    pub fn applies_to(&self, gross_tonnes: f64, region: Option<Region>) -> bool {
        self.enabled
            && gross_tonnes > self.over_tonnes
            && (self.region.is_none() || self.region == region)
    }
}

impl HolidayDate {
    pub fn in_year(self, year: i32) -> Option<NaiveDate> {
        match self {
            Self::Fixed { month, day } => NaiveDate::from_ymd_opt(year, month, day),
            Self::Easter(offset) => {
                let easter = easter_sunday(year);
                if offset >= 0 {
                    easter.checked_add_days(Days::new(offset.unsigned_abs()))
                } else {
                    easter.checked_sub_days(Days::new(offset.unsigned_abs()))
                }
            }
        }
    }
}

impl FromStr for LocalTime {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let problem = || format!("`{text}` is not a time of day HH:MM between 00:00 and 24:00");
        let (hours, minutes) = text.split_once(':').ok_or_else(problem)?;
        let hours: u32 = hours.parse().map_err(|_| problem())?;
        let minutes: u32 = minutes.parse().map_err(|_| problem())?;
        let total = hours * 60 + minutes;
        if minutes >= 60 || total > 24 * 60 {
            return Err(problem());
        }
        Ok(LocalTime(total))
    }
}

/// The instant of a local date and time in `zone`; a time in a daylight-saving gap moves on
/// by an hour. `None` only at the edges of chrono's range.
fn local_instant(zone: Tz, date: NaiveDate, time: LocalTime) -> Option<DateTime<Utc>> {
    let naive = date.and_hms_opt(0, 0, 0)? + TimeDelta::minutes(time.0.into());
    zone.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(naive + TimeDelta::hours(1)))
                .earliest()
        })
        .map(|local| local.with_timezone(&Utc))
}

fn plus_days(date: NaiveDate, days: i64) -> NaiveDate {
    let moved = if days >= 0 {
        date.checked_add_days(Days::new(days.unsigned_abs()))
    } else {
        date.checked_sub_days(Days::new(days.unsigned_abs()))
    };
    moved.unwrap_or(date)
}

/// Rule ids live as long as the program: the timeline's segments are `Copy` and name them.
/// Interning keeps one copy of each id however often data is parsed.
fn intern(text: &str) -> &'static str {
    static IDS: OnceLock<Mutex<BTreeSet<&'static str>>> = OnceLock::new();
    let mut ids = IDS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(id) = ids.get(text) {
        return id;
    }
    let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
    ids.insert(leaked);
    leaked
}

// The schema as serde reads it; `check` turns it into the types above.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    countries: Vec<CountryDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountryDoc {
    country: String,
    time_zone: String,
    #[serde(default)]
    holidays: Vec<HolidayDoc>,
    #[serde(default)]
    rules: Vec<RuleDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HolidayDoc {
    name: String,
    date: Option<String>,
    easter: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    id: String,
    title: String,
    source: String,
    note: Option<String>,
    over_tonnes: f64,
    region: Option<String>,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    when: WhenDoc,
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WhenDoc {
    Weekly {
        from_day: String,
        from: String,
        to_day: String,
        to: String,
    },
    Holidays {
        #[serde(default)]
        only: Vec<String>,
        #[serde(default)]
        from_day_offset: i64,
        from: String,
        #[serde(default)]
        to_day_offset: i64,
        to: String,
    },
    Daily {
        from: String,
        to: String,
    },
    Dates {
        dates: Vec<String>,
        from: String,
        to: String,
    },
    Season {
        weekday: String,
        first: String,
        last: String,
        from: String,
        to: String,
    },
}

impl CountryDoc {
    fn check(self) -> Result<CountryBans, BanDataError> {
        let context = format!("country {}", self.country);
        let invalid = |problem: String| BanDataError::Invalid {
            context: context.clone(),
            problem,
        };
        let territory: Territory = self
            .country
            .parse()
            .map_err(|error: crate::domain::geo::UnknownCountry| invalid(error.to_string()))?;
        let time_zone: Tz = self
            .time_zone
            .parse()
            .map_err(|_| invalid(format!("unknown time zone `{}`", self.time_zone)))?;
        let holidays = self
            .holidays
            .into_iter()
            .map(|holiday| holiday.check().map_err(&invalid))
            .collect::<Result<Vec<_>, _>>()?;
        let mut rules = Vec::with_capacity(self.rules.len());
        for rule in self.rules {
            let id = rule.id.clone();
            let checked = rule.check().map_err(|problem| BanDataError::Invalid {
                context: format!("{context}, rule {id}"),
                problem,
            })?;
            if rules.iter().any(|known: &BanRule| known.id == checked.id) {
                return Err(invalid(format!("rule id `{id}` appears twice")));
            }
            rules.push(checked);
        }
        Ok(CountryBans {
            territory,
            time_zone,
            holidays,
            rules,
        })
    }
}

impl HolidayDoc {
    fn check(self) -> Result<Holiday, String> {
        let date = match (self.date, self.easter) {
            (Some(text), None) => {
                let (month, day) = month_day(&text)?;
                HolidayDate::Fixed { month, day }
            }
            (None, Some(offset)) if offset.abs() <= 100 => HolidayDate::Easter(offset),
            _ => {
                return Err(format!(
                "holiday `{}` needs either `date = \"MM-DD\"` or `easter = <days>` (within 100)",
                self.name
            ))
            }
        };
        Ok(Holiday {
            name: self.name,
            date,
        })
    }
}

impl RuleDoc {
    fn check(self) -> Result<BanRule, String> {
        if self.id.trim().is_empty() || self.source.trim().is_empty() {
            return Err("a rule needs an id and a source".into());
        }
        if !(0.0..=100.0).contains(&self.over_tonnes) {
            return Err(format!("over_tonnes {} is not a weight", self.over_tonnes));
        }
        let region = self.region.as_deref().map(str::parse).transpose()?;
        Ok(BanRule {
            id: intern(&self.id),
            title: self.title,
            source: self.source,
            note: self.note,
            over_tonnes: self.over_tonnes,
            region,
            enabled: self.enabled,
            when: self.when.check()?,
        })
    }
}

impl WhenDoc {
    fn check(self) -> Result<When, String> {
        let time = |text: &str| text.parse::<LocalTime>();
        Ok(match self {
            Self::Weekly {
                from_day,
                from,
                to_day,
                to,
            } => When::Weekly {
                from_day: weekday(&from_day)?,
                from: time(&from)?,
                to_day: weekday(&to_day)?,
                to: time(&to)?,
            },
            Self::Holidays {
                only,
                from_day_offset,
                from,
                to_day_offset,
                to,
            } => {
                if from_day_offset.abs() > 7 || to_day_offset.abs() > 7 {
                    return Err("holiday offsets must lie within a week".into());
                }
                When::Holidays {
                    only,
                    from_day_offset,
                    from: time(&from)?,
                    to_day_offset,
                    to: time(&to)?,
                }
            }
            Self::Daily { from, to } => When::Daily {
                from: time(&from)?,
                to: time(&to)?,
            },
            Self::Dates { dates, from, to } => When::Dates {
                dates: dates
                    .iter()
                    .map(|text| {
                        NaiveDate::parse_from_str(text, "%Y-%m-%d")
                            .map_err(|_| format!("`{text}` is not a date YYYY-MM-DD"))
                    })
                    .collect::<Result<_, _>>()?,
                from: time(&from)?,
                to: time(&to)?,
            },
            Self::Season {
                weekday: day,
                first,
                last,
                from,
                to,
            } => When::Season {
                weekday: weekday(&day)?,
                first: month_day(&first)?,
                last: month_day(&last)?,
                from: time(&from)?,
                to: time(&to)?,
            },
        })
    }
}

fn weekday(text: &str) -> Result<Weekday, String> {
    text.parse::<Weekday>()
        .map_err(|_| format!("`{text}` is not a weekday (mon, tue, ...)"))
}

fn month_day(text: &str) -> Result<(u32, u32), String> {
    let problem = || format!("`{text}` is not a day of the year MM-DD");
    let (month, day) = text.split_once('-').ok_or_else(problem)?;
    let (month, day): (u32, u32) = (
        month.parse().map_err(|_| problem())?,
        day.parse().map_err(|_| problem())?,
    );
    // 2024 is a leap year, so 02-29 passes.
    NaiveDate::from_ymd_opt(2024, month, day).ok_or_else(problem)?;
    Ok((month, day))
}

#[cfg(test)]
mod tests;
