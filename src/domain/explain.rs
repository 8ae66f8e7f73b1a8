//! An estimate's reasons in words, in English and in French, for a dispatcher who reads
//! neither timelines nor model columns: the bans waited out (the country and the kind of
//! ban), the breaks and rests, the borders, the dwell, and what the learned model and the
//! arrivals added (traffic, weather, the carrier).
//!
//! Architecture invariant: no model column name reaches the words. Factors come in by their
//! column name and leave as one of three kinds (traffic, weather, carrier); the columns that
//! restate the plan (`rules_*`, distances, hours) are left out, since the plan's own steps say
//! it better. A place is named only by its country: a segment carries no position.

use chrono::{Datelike, TimeDelta, Weekday};

use crate::domain::bans::{BanRules, When};
use crate::domain::geo::{CrossingKind, Territory};
use crate::domain::rules::{Segment, SegmentKind};

/// How the answers name the driving-time rules a plan followed: Regulation (EC) 561/2006, or
/// none (a van outside them).
pub fn driving_rules_name(under_driving_rules: bool) -> &'static str {
    if under_driving_rules {
        "561/2006"
    } else {
        "none"
    }
}

/// What a reason is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonKind {
    Ban,
    Rest,
    Breaks,
    Border,
    Dwell,
    Traffic,
    Weather,
    Carrier,
}

impl ReasonKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ban => "ban",
            Self::Rest => "rest",
            Self::Breaks => "breaks",
            Self::Border => "border",
            Self::Dwell => "dwell",
            Self::Traffic => "traffic",
            Self::Weather => "weather",
            Self::Carrier => "carrier",
        }
    }
}

/// One named contribution to the arrival: `minutes` later (negative: earlier), in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub kind: ReasonKind,
    pub minutes: i64,
    pub en: String,
    pub fr: String,
}

/// One step of the plan as the words read it: a timeline segment, or its stored form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step<'a> {
    pub kind: SegmentKind,
    pub duration: TimeDelta,
    pub country: Option<Territory>,
    pub rule: Option<&'a str>,
}

impl From<&Segment> for Step<'static> {
    fn from(segment: &Segment) -> Self {
        Self {
            kind: segment.kind,
            duration: segment.duration(),
            country: segment.country,
            rule: segment.rule,
        }
    }
}

/// What arrivals taught about the caller's estimates, as applied to this one: `share` of the
/// planned duration (0.08: 8% longer), `minutes` at the destination.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adjustment {
    pub share: f64,
    pub minutes: f64,
}

/// Everything the words are made from.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub steps: &'a [Step<'a>],
    /// The learned model's factors by column name, with their minutes; empty for the rules.
    pub factors: &'a [(&'a str, f64)],
    pub correction: Option<Adjustment>,
    /// The ban data the plan was made with, to name a rule's kind.
    pub bans: &'a BanRules,
}

/// The reasons, in this order: bans, breaks, rests, borders, dwell, traffic, weather, carrier.
/// Nothing that rounds to no minute is listed.
pub fn explain(facts: &Facts) -> Vec<Reason> {
    let mut reasons = Vec::new();
    ban_reasons(facts, &mut reasons);
    reasons.extend(pause_reason(facts.steps, SegmentKind::Break));
    reasons.extend(pause_reason(facts.steps, SegmentKind::Rest));
    border_reasons(facts.steps, &mut reasons);
    reasons.extend(dwell_reason(facts.steps));
    factor_reasons(facts.factors, &mut reasons);
    reasons.extend(facts.correction.and_then(correction_reason));
    reasons.retain(|reason| reason.minutes != 0);
    reasons
}

fn ban_reasons(facts: &Facts, reasons: &mut Vec<Reason>) {
    let mut driven_in: Option<Territory> = None;
    for step in facts.steps {
        match step.kind {
            SegmentKind::Drive => driven_in = step.country,
            SegmentKind::BanWait => {
                let (name_en, name_fr) = ban_name(facts.bans, step.rule);
                let minutes = whole_minutes(step.duration);
                let length = duration_words(minutes);
                // A wait in a country not yet driven in is a wait before its border.
                let at_border = step.country.is_some() && driven_in != step.country;
                let (border_en, border_fr) = match at_border {
                    true => (" at the border", " à la frontière"),
                    false => ("", ""),
                };
                let (in_en, in_fr) = match step.country.and_then(country_names) {
                    Some(names) => (format!(" in {}", names.en), format!(" {}", names.fr_in)),
                    None => (String::new(), String::new()),
                };
                reasons.push(Reason {
                    kind: ReasonKind::Ban,
                    minutes,
                    en: format!("{name_en}{in_en}: waits {length}{border_en}"),
                    fr: format!("{name_fr}{in_fr} : attente de {length}{border_fr}"),
                });
            }
            _ => {}
        }
    }
}

/// The kind of ban a rule is, from when it holds.
fn ban_name(bans: &BanRules, rule: Option<&str>) -> (String, String) {
    let generic = || {
        (
            "Traffic ban".to_owned(),
            "Interdiction de circuler".to_owned(),
        )
    };
    let Some((_, rule)) = rule.and_then(|id| bans.rule(id)) else {
        return generic();
    };
    let by_day = |day: Weekday| {
        let (en, fr) = weekday_names(day);
        (format!("{en} ban"), format!("Interdiction du {fr}"))
    };
    match &rule.when {
        When::Weekly {
            from_day, to_day, ..
        } if *from_day == Weekday::Sun && *to_day == Weekday::Sun => by_day(Weekday::Sun),
        When::Weekly { .. } => ("Weekend ban".into(), "Interdiction du week-end".into()),
        When::Holidays { .. } => (
            "Public holiday ban".into(),
            "Interdiction des jours fériés".into(),
        ),
        When::Daily { from, to } if to <= from => {
            ("Night ban".into(), "Interdiction de nuit".into())
        }
        When::Daily { .. } => generic(),
        When::Season { weekday, .. } => by_day(*weekday),
        When::Dates { dates, .. } => {
            let first = dates.iter().next().map(|date| date.weekday());
            match first {
                Some(first) if dates.iter().all(|date| date.weekday() == first) => by_day(first),
                _ => generic(),
            }
        }
    }
}

/// The breaks, or the rests, grouped by length: "two 45-minute breaks".
fn pause_reason(steps: &[Step], kind: SegmentKind) -> Option<Reason> {
    let mut groups: Vec<(i64, usize)> = Vec::new();
    for step in steps.iter().filter(|step| step.kind == kind) {
        let minutes = whole_minutes(step.duration);
        match groups.iter_mut().find(|(length, _)| *length == minutes) {
            Some((_, count)) => *count += 1,
            None => groups.push((minutes, 1)),
        }
    }
    if groups.is_empty() {
        return None;
    }
    let (noun_en, noun_fr, one_fr, reason_kind) = match kind {
        SegmentKind::Break => ("break", "pause", "une", ReasonKind::Breaks),
        _ => ("rest", "repos", "un", ReasonKind::Rest),
    };
    let plural_fr = |count: usize| match (count, noun_fr) {
        (1, _) | (_, "repos") => noun_fr.to_owned(),
        _ => format!("{noun_fr}s"),
    };
    let parts_en: Vec<String> = groups
        .iter()
        .map(|(minutes, count)| {
            let length = length_adjective(*minutes);
            match count {
                1 => format!("{} {length} {noun_en}", article_before(&length)),
                _ => format!("{} {length} {noun_en}s", count_in(&COUNTS_EN, *count)),
            }
        })
        .collect();
    let parts_fr: Vec<String> = groups
        .iter()
        .map(|(minutes, count)| {
            let count_word = match count {
                1 => one_fr.to_owned(),
                _ => count_in(&COUNTS_FR, *count),
            };
            let length = duration_words(*minutes);
            format!("{count_word} {} de {length}", plural_fr(*count))
        })
        .collect();
    let minutes = groups
        .iter()
        .map(|(minutes, count)| minutes * *count as i64)
        .sum();
    Some(Reason {
        kind: reason_kind,
        minutes,
        en: capitalised(&joined(&parts_en, "and")),
        fr: capitalised(&joined(&parts_fr, "et")),
    })
}

fn border_reasons(steps: &[Step], reasons: &mut Vec<Reason>) {
    let mut driven_in: Option<Territory> = None;
    for step in steps {
        match step.kind {
            SegmentKind::Drive => driven_in = step.country,
            SegmentKind::Border => {
                let entered = step.country;
                let crossing = match (driven_in, entered) {
                    (Some(from), Some(into)) => from.crossing_to(into),
                    _ => None,
                };
                let customs = match crossing {
                    Some(kind) => kind == CrossingKind::Customs,
                    None => entered.is_some_and(Territory::outside_eu_customs_union),
                };
                let minutes = whole_minutes(step.duration);
                let length = duration_words(minutes);
                let names = entered.and_then(country_names);
                let (en, fr) = match (customs, names) {
                    (true, Some(names)) => (
                        format!("Border with customs into {}: {length}", names.en),
                        format!("Frontière avec douane, entrée {} : {length}", names.fr_in),
                    ),
                    (true, None) => (
                        format!("Border with customs: {length}"),
                        format!("Frontière avec douane : {length}"),
                    ),
                    (false, Some(names)) => (
                        format!("Border into {}: {length}", names.en),
                        format!("Passage de frontière, entrée {} : {length}", names.fr_in),
                    ),
                    (false, None) => (
                        format!("Border: {length}"),
                        format!("Passage de frontière : {length}"),
                    ),
                };
                reasons.push(Reason {
                    kind: ReasonKind::Border,
                    minutes,
                    en,
                    fr,
                });
            }
            _ => {}
        }
    }
}

fn dwell_reason(steps: &[Step]) -> Option<Reason> {
    let dwells: Vec<&Step> = steps
        .iter()
        .filter(|step| step.kind == SegmentKind::Dwell)
        .collect();
    if dwells.is_empty() {
        return None;
    }
    let minutes = whole_minutes(dwells.iter().map(|step| step.duration).sum());
    let length = duration_words(minutes);
    let (stops_en, stops_fr) = match dwells.len() {
        1 => ("one stop".to_owned(), "un arrêt".to_owned()),
        count => (
            format!("{} stops", count_in(&COUNTS_EN, count)),
            format!("{} arrêts", count_in(&COUNTS_FR, count)),
        ),
    };
    Some(Reason {
        kind: ReasonKind::Dwell,
        minutes,
        en: format!("Loading and unloading at {stops_en}: {length}"),
        fr: format!("Chargement et déchargement à {stops_fr} : {length}"),
    })
}

/// The learned model's pulls, summed by kind; the columns that restate the plan are left out.
fn factor_reasons(factors: &[(&str, f64)], reasons: &mut Vec<Reason>) {
    let kinds = [
        (ReasonKind::Traffic, "Traffic", "Circulation"),
        (
            ReasonKind::Weather,
            "Weather on the road",
            "Météo sur la route",
        ),
        (
            ReasonKind::Carrier,
            "This carrier's record",
            "Historique de ce transporteur",
        ),
    ];
    for (kind, en, fr) in kinds {
        let pull: f64 = factors
            .iter()
            .filter(|(column, _)| factor_kind(column) == Some(kind))
            .map(|(_, minutes)| minutes)
            .sum();
        let minutes = pull.round() as i64;
        let signed = signed_duration(minutes);
        reasons.push(Reason {
            kind,
            minutes,
            en: format!("{en}: {signed}"),
            fr: format!("{fr} : {signed}"),
        });
    }
}

/// The kind a model column speaks of, by the families the feature set names (see
/// `crate::ml::features`): conditions on the road, congestion at the ends, the partner.
pub fn factor_kind(column: &str) -> Option<ReasonKind> {
    const WEATHER: [&str; 5] = [
        "temperature_2m",
        "precipitation",
        "snowfall",
        "wind_speed_10m",
        "visibility",
    ];
    if WEATHER.contains(&column) {
        return Some(ReasonKind::Weather);
    }
    if column.ends_with("_congestion") {
        return Some(ReasonKind::Traffic);
    }
    if column.starts_with("partner") {
        return Some(ReasonKind::Carrier);
    }
    None
}

fn correction_reason(correction: Adjustment) -> Option<Reason> {
    let minutes = correction.minutes.round() as i64;
    let percent = (correction.share.abs() * 100.0).round() as i64;
    if percent == 0 {
        return None;
    }
    let signed = signed_duration(minutes);
    let (en, fr) = match correction.share > 0.0 {
        true => ("slower", "plus lentement"),
        false => ("faster", "plus vite"),
    };
    Some(Reason {
        kind: ReasonKind::Carrier,
        minutes,
        en: format!("This carrier runs {percent}% {en} than the plan: {signed}"),
        fr: format!("Ce transporteur roule {percent} % {fr} que prévu : {signed}"),
    })
}

struct CountryNames {
    en: &'static str,
    /// With the preposition French puts before it: "en Allemagne", "au Luxembourg".
    fr_in: &'static str,
}

fn country_names(country: Territory) -> Option<CountryNames> {
    let (en, fr_in) = match country {
        Territory::France => ("France", "en France"),
        Territory::Germany => ("Germany", "en Allemagne"),
        Territory::Italy => ("Italy", "en Italie"),
        Territory::Switzerland => ("Switzerland", "en Suisse"),
        Territory::Austria => ("Austria", "en Autriche"),
        Territory::Spain => ("Spain", "en Espagne"),
        Territory::Belgium => ("Belgium", "en Belgique"),
        Territory::Luxembourg => ("Luxembourg", "au Luxembourg"),
        Territory::Netherlands => ("the Netherlands", "aux Pays-Bas"),
        Territory::Portugal => ("Portugal", "au Portugal"),
        Territory::UnitedKingdom => ("the United Kingdom", "au Royaume-Uni"),
        Territory::Andorra => ("Andorra", "en Andorre"),
        Territory::Monaco => ("Monaco", "à Monaco"),
        Territory::Liechtenstein => ("Liechtenstein", "au Liechtenstein"),
        Territory::SanMarino => ("San Marino", "à Saint-Marin"),
        Territory::Denmark => ("Denmark", "au Danemark"),
        Territory::Poland => ("Poland", "en Pologne"),
        Territory::Czechia => ("Czechia", "en Tchéquie"),
        Territory::Slovenia => ("Slovenia", "en Slovénie"),
        Territory::Ireland => ("Ireland", "en Irlande"),
        Territory::Elsewhere => return None,
    };
    Some(CountryNames { en, fr_in })
}

fn weekday_names(day: Weekday) -> (&'static str, &'static str) {
    match day {
        Weekday::Mon => ("Monday", "lundi"),
        Weekday::Tue => ("Tuesday", "mardi"),
        Weekday::Wed => ("Wednesday", "mercredi"),
        Weekday::Thu => ("Thursday", "jeudi"),
        Weekday::Fri => ("Friday", "vendredi"),
        Weekday::Sat => ("Saturday", "samedi"),
        Weekday::Sun => ("Sunday", "dimanche"),
    }
}

fn whole_minutes(duration: TimeDelta) -> i64 {
    (duration.num_seconds() as f64 / 60.0).round() as i64
}

/// "45 min", "14 h", "1 h 30": the same in both languages.
fn duration_words(minutes: i64) -> String {
    let minutes = minutes.abs();
    match (minutes / 60, minutes % 60) {
        (0, rest) => format!("{rest} min"),
        (hours, 0) => format!("{hours} h"),
        (hours, rest) => format!("{hours} h {rest:02}"),
    }
}

fn signed_duration(minutes: i64) -> String {
    let sign = if minutes < 0 { "-" } else { "+" };
    format!("{sign}{}", duration_words(minutes))
}

/// "45-minute", "9-hour", "9 h 20" as English puts a length before a noun.
fn length_adjective(minutes: i64) -> String {
    match (minutes / 60, minutes % 60) {
        (0, rest) => format!("{rest}-minute"),
        (hours, 0) => format!("{hours}-hour"),
        _ => duration_words(minutes),
    }
}

/// "an" before a number read with a vowel: 8, 11, 18, 80 to 89.
fn article_before(length: &str) -> &'static str {
    let vowel_sound = length.starts_with('8')
        || ["11", "18"]
            .iter()
            .any(|prefix| length.starts_with(prefix) && !length[2..].starts_with(char::is_numeric));
    if vowel_sound {
        "an"
    } else {
        "a"
    }
}

/// Two to ten in words, for `count_in`.
const COUNTS_EN: [&str; 9] = [
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
];
const COUNTS_FR: [&str; 9] = [
    "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix",
];

/// `count` in words from two to ten, in figures otherwise.
fn count_in(words: &[&str; 9], count: usize) -> String {
    count
        .checked_sub(2)
        .and_then(|idx| words.get(idx))
        .map_or_else(|| count.to_string(), |word| (*word).to_owned())
}

/// "a, b and c".
fn joined(parts: &[String], and: &str) -> String {
    match parts {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} {and} {last}", init.join(", ")),
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests;
