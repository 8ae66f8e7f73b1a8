//! Position reports as they arrive: parsed from JSON, NDJSON, CSV or Traccar's forwarding JSON,
//! then checked one by one. A bad ping is named and dropped; the rest of its batch goes on.
//!
//! A ping may also carry the cab's word (see `docs/tachograph.md`): the driver's id, the
//! tachograph's activity and its remaining driving time. That part is checked with the ping
//! and handed on beside it ([`ParsedBatch::cab`]), since the stores keep positions alone.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use serde::Deserialize;

use crate::domain::ids::check_identifier;
use crate::tracking::driver::{CabActivity, CabPing, MAX_REMAINING_DRIVING_MINUTES};

/// The formats `POST /v1/positions` reads, chosen by Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingFormat {
    /// A JSON array of pings, or one Traccar forwarded position.
    Json,
    Ndjson,
    Csv,
}

impl PingFormat {
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" | "" => Some(Self::Json),
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
                Some(Self::Ndjson)
            }
            "text/csv" | "application/csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

/// One ping as written by the caller, not yet checked. The text borrows from the body
/// unless it holds a JSON escape (`"M\u00fcller-1"`, `"FR\/123"`), which only an owned
/// string can hold once decoded.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RawPing<'a> {
    #[serde(borrow)]
    pub vehicle_id: Cow<'a, str>,
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub speed_kmh: Option<f64>,
    #[serde(default)]
    pub heading: Option<f64>,
    /// The driver, as the tachograph's card or the telematics unit names them.
    #[serde(default)]
    pub driver_id: Option<String>,
    /// The tachograph's activity: `driving`, `rest`, `other_work` or `available`.
    #[serde(default)]
    pub driver_state: Option<String>,
    /// The driving left before the next break is due, minutes (0 to 270).
    #[serde(default)]
    pub remaining_driving_minutes: Option<f64>,
}

/// A ping that passed every check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ping {
    /// Index into the batch's vehicle list.
    pub vehicle: u32,
    pub timestamp_ms: i64,
    pub lat: f64,
    pub lon: f64,
    /// NaN when not reported.
    pub speed_kmh: f64,
    pub heading: f64,
}

/// A [`Ping`]'s speed or heading, NaN when not reported, as an option.
pub fn reported(value: f64) -> Option<f64> {
    (!value.is_nan()).then_some(value)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The ping's position in the request, from 0.
    pub index: usize,
    pub field: Option<&'static str>,
    pub reason: String,
}

/// A request's pings: the good ones, by vehicle, and why the others were refused.
#[derive(Debug, Default)]
pub struct ParsedBatch {
    pub vehicles: Vec<String>,
    pub pings: Vec<Ping>,
    pub rejected: Vec<Rejection>,
    /// What the good pings that carried it said of the cab.
    pub cab: Vec<CabPing>,
}

/// What a ping is checked against.
#[derive(Debug, Clone, Copy)]
pub struct PingLimits {
    pub now: DateTime<Utc>,
    pub future_tolerance_ms: i64,
    pub max_age_ms: i64,
    pub max_speed_kmh: f64,
    pub max_pings: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("{0}")]
    Malformed(String),
    #[error("a request holds at most {limit} pings, this one has {count}")]
    TooMany { limit: usize, count: usize },
}

/// Vehicle identifiers are the caller's; this bounds what a ping can make the service store.
pub const MAX_VEHICLE_ID_LEN: usize = 64;
/// A driver card's number is 16 characters after its issuing state's 3; a unit's own ids are
/// shorter still.
pub const MAX_DRIVER_ID_LEN: usize = 64;

/// What Traccar's JSON position forwarding posts (`forward.type` json from Traccar 5.5 on,
/// `forward.json` before): one position and its device. Both carry many more fields, and
/// attributes that vary by tracker; those not named here are ignored, not refused, so that a
/// new Traccar release or tracker adds nothing to break on.
#[derive(Deserialize)]
struct TraccarForward<'a> {
    #[serde(borrow)]
    position: TraccarPosition<'a>,
    #[serde(borrow)]
    device: TraccarDevice<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TraccarPosition<'a> {
    #[serde(borrow)]
    fix_time: Cow<'a, str>,
    latitude: f64,
    longitude: f64,
    /// Knots, as Traccar keeps it.
    #[serde(default)]
    speed: Option<f64>,
    #[serde(default)]
    course: Option<f64>,
    #[serde(default = "valid_by_default")]
    valid: bool,
    #[serde(default)]
    attributes: TraccarAttributes,
}

fn valid_by_default() -> bool {
    true
}

/// The attributes of a Traccar position this reads: the driver Traccar itself names
/// (`driverUniqueId`, from an iButton, an RFID card or a tachograph card, as its protocol
/// decoders set it), and the two a computed attribute can set from the tracker's own
/// elements (`driverState`, `remainingDrivingMinutes`; see `docs/tachograph.md`). The rest
/// varies by tracker and is ignored.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TraccarAttributes {
    /// A string, or a number from some decoders.
    #[serde(default)]
    driver_unique_id: Option<serde_json::Value>,
    #[serde(default)]
    driver_state: Option<String>,
    #[serde(default)]
    remaining_driving_minutes: Option<f64>,
}

impl TraccarAttributes {
    fn driver_id(&self) -> Option<String> {
        match self.driver_unique_id.as_ref()? {
            serde_json::Value::String(text) => Some(text.clone()),
            serde_json::Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TraccarDevice<'a> {
    #[serde(borrow)]
    unique_id: Cow<'a, str>,
}

const KNOTS_TO_KMH: f64 = 1.852;

/// Parses and checks a body. Only a body that cannot be read at all is an error; a bad ping
/// is a rejection.
pub fn parse(
    body: &[u8],
    format: PingFormat,
    limits: &PingLimits,
) -> Result<ParsedBatch, BatchError> {
    match format {
        PingFormat::Json => parse_json(body, limits),
        PingFormat::Ndjson => parse_lines(body, limits),
        PingFormat::Csv => parse_csv(body, limits),
    }
}

/// One ping read by another edge (a phone's OsmAnd request), held to the same checks as a
/// batch's: a batch of it alone, or of its rejection.
pub fn check_one(raw: RawPing<'_>, limits: &PingLimits) -> ParsedBatch {
    collect(vec![Ok(raw)], limits)
}

fn parse_json(body: &[u8], limits: &PingLimits) -> Result<ParsedBatch, BatchError> {
    let first = body.iter().find(|byte| !byte.is_ascii_whitespace());
    if first == Some(&b'{') {
        let forward: TraccarForward = serde_json::from_slice(body)
            .map_err(|error| BatchError::Malformed(format!("not a Traccar position: {error}")))?;
        let position = forward.position;
        let raw = RawPing {
            vehicle_id: forward.device.unique_id,
            timestamp: position.fix_time,
            lat: position.latitude,
            lon: position.longitude,
            speed_kmh: position.speed.map(|knots| knots * KNOTS_TO_KMH),
            heading: position.course,
            driver_id: position.attributes.driver_id(),
            driver_state: position.attributes.driver_state,
            remaining_driving_minutes: position.attributes.remaining_driving_minutes,
        };
        let raw = if position.valid {
            Ok(raw)
        } else {
            Err("Traccar marks this fix invalid".to_owned())
        };
        return Ok(collect(vec![raw], limits));
    }
    let items: Vec<&serde_json::value::RawValue> =
        serde_json::from_slice(body).map_err(|error| {
            BatchError::Malformed(format!(
                "expected a JSON array of pings or a Traccar position: {error}"
            ))
        })?;
    check_count(items.len(), limits)?;
    let raws = items
        .par_iter()
        .map(|item| serde_json::from_str::<RawPing>(item.get()).map_err(|error| error.to_string()))
        .collect();
    Ok(collect(raws, limits))
}

fn check_count(count: usize, limits: &PingLimits) -> Result<(), BatchError> {
    if count > limits.max_pings {
        return Err(BatchError::TooMany {
            limit: limits.max_pings,
            count,
        });
    }
    Ok(())
}

fn parse_lines(body: &[u8], limits: &PingLimits) -> Result<ParsedBatch, BatchError> {
    let lines: Vec<&[u8]> = body
        .split(|byte| *byte == b'\n')
        .filter(|line| line.iter().any(|byte| !byte.is_ascii_whitespace()))
        .collect();
    check_count(lines.len(), limits)?;
    let raws = lines
        .par_iter()
        .map(|line| serde_json::from_slice::<RawPing>(line).map_err(|error| error.to_string()))
        .collect();
    Ok(collect(raws, limits))
}

fn parse_csv(body: &[u8], limits: &PingLimits) -> Result<ParsedBatch, BatchError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers = reader
        .byte_headers()
        .map_err(|error| BatchError::Malformed(format!("unreadable CSV header: {error}")))?
        .clone();
    let column = |name: &str| headers.iter().position(|header| header == name.as_bytes());
    let required = ["vehicle_id", "timestamp", "lat", "lon"];
    let missing: Vec<&str> = required
        .into_iter()
        .filter(|name| column(name).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(BatchError::Malformed(format!(
            "the CSV header lacks {}",
            missing.join(", ")
        )));
    }
    let at = |name| column(name).expect("checked");
    let (vehicle, timestamp, lat, lon) = (at("vehicle_id"), at("timestamp"), at("lat"), at("lon"));
    let (speed, heading) = (column("speed_kmh"), column("heading"));
    let (driver_id, driver_state) = (column("driver_id"), column("driver_state"));
    let remaining = column("remaining_driving_minutes");
    let records: Vec<csv::ByteRecord> = reader
        .byte_records()
        .collect::<Result<_, _>>()
        .map_err(|error| BatchError::Malformed(format!("unreadable CSV: {error}")))?;
    check_count(records.len(), limits)?;
    let raws = records
        .par_iter()
        .map(|record| {
            let text = |index: usize| {
                std::str::from_utf8(record.get(index).unwrap_or_default())
                    .map_err(|_| "not UTF-8".to_owned())
            };
            let number = |index: usize, name: &str| {
                text(index)?
                    .parse::<f64>()
                    .map_err(|_| format!("{name} is not a number"))
            };
            let present = |index: Option<usize>| {
                index.filter(|index| !record.get(*index).unwrap_or_default().is_empty())
            };
            let optional = |index: Option<usize>, name: &str| match present(index) {
                Some(index) => number(index, name).map(Some),
                None => Ok(None),
            };
            let optional_text = |index: Option<usize>| match present(index) {
                Some(index) => text(index).map(|text| Some(text.to_owned())),
                None => Ok(None),
            };
            Ok(RawPing {
                vehicle_id: Cow::Borrowed(text(vehicle)?),
                timestamp: Cow::Borrowed(text(timestamp)?),
                lat: number(lat, "lat")?,
                lon: number(lon, "lon")?,
                speed_kmh: optional(speed, "speed_kmh")?,
                heading: optional(heading, "heading")?,
                driver_id: optional_text(driver_id)?,
                driver_state: optional_text(driver_state)?,
                remaining_driving_minutes: optional(remaining, "remaining_driving_minutes")?,
            })
        })
        .collect::<Vec<Result<RawPing, String>>>();
    // The records own the text the pings borrow; check before they go.
    Ok(collect(raws, limits))
}

/// Checks every ping and numbers the vehicles.
fn collect(raws: Vec<Result<RawPing<'_>, String>>, limits: &PingLimits) -> ParsedBatch {
    let now_ms = limits.now.timestamp_millis();
    let checked: Vec<Checked> = raws
        .par_iter()
        .map(|raw| match raw {
            Ok(raw) => check(raw, now_ms, limits),
            Err(message) => Err((None, message.clone())),
        })
        .collect();
    let mut batch = ParsedBatch::default();
    let mut numbers: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    batch.pings.reserve(checked.len());
    for (index, outcome) in checked.into_iter().enumerate() {
        match outcome {
            Ok((vehicle_id, mut ping, cab)) => {
                let next = numbers.len() as u32;
                ping.vehicle = *numbers.entry(vehicle_id).or_insert_with(|| {
                    batch.vehicles.push(vehicle_id.to_owned());
                    next
                });
                if let Some(mut cab) = cab {
                    cab.vehicle = ping.vehicle;
                    batch.cab.push(cab);
                }
                batch.pings.push(ping);
            }
            Err((field, reason)) => batch.rejected.push(Rejection {
                index,
                field,
                reason,
            }),
        }
    }
    batch
}

type Checked<'a> = Result<(&'a str, Ping, Option<CabPing>), (Option<&'static str>, String)>;

fn check<'r>(raw: &'r RawPing<'_>, now_ms: i64, limits: &PingLimits) -> Checked<'r> {
    let refuse = |field: &'static str, reason: String| Err((Some(field), reason));
    if let Err(error) = check_identifier(&raw.vehicle_id, MAX_VEHICLE_ID_LEN) {
        return refuse("vehicle_id", format!("vehicle_id {error}"));
    }
    let Ok(at) = DateTime::parse_from_rfc3339(&raw.timestamp) else {
        return refuse(
            "timestamp",
            format!(
                "timestamp {:?} is not RFC 3339 with an offset",
                raw.timestamp
            ),
        );
    };
    let timestamp_ms = at.timestamp_millis();
    if timestamp_ms > now_ms + limits.future_tolerance_ms {
        return refuse("timestamp", "timestamp is in the future".into());
    }
    if timestamp_ms < now_ms - limits.max_age_ms {
        return refuse(
            "timestamp",
            format!(
                "timestamp is older than {} hours",
                limits.max_age_ms / 3_600_000
            ),
        );
    }
    if !(-90.0..=90.0).contains(&raw.lat) {
        return refuse("lat", "lat must be between -90 and 90".into());
    }
    if !(-180.0..=180.0).contains(&raw.lon) {
        return refuse("lon", "lon must be between -180 and 180".into());
    }
    if raw.lat == 0.0 && raw.lon == 0.0 {
        return refuse(
            "lat",
            "0, 0 is a tracker without a fix, not a position".into(),
        );
    }
    let speed_kmh = raw.speed_kmh.unwrap_or(f64::NAN);
    if raw.speed_kmh.is_some() && !(0.0..=limits.max_speed_kmh).contains(&speed_kmh) {
        return refuse(
            "speed_kmh",
            format!("speed_kmh must be between 0 and {}", limits.max_speed_kmh),
        );
    }
    let heading = raw.heading.unwrap_or(f64::NAN);
    if raw.heading.is_some() && !(0.0..=360.0).contains(&heading) {
        return refuse("heading", "heading must be between 0 and 360".into());
    }
    let cab = match checked_cab(raw, timestamp_ms) {
        Ok(cab) => cab,
        Err((field, reason)) => return refuse(field, reason),
    };
    Ok((
        &*raw.vehicle_id,
        Ping {
            vehicle: 0,
            timestamp_ms,
            lat: raw.lat,
            lon: raw.lon,
            speed_kmh,
            heading,
        },
        cab,
    ))
}

/// The ping's word on the cab, when it has any, checked; its vehicle is numbered later.
fn checked_cab(
    raw: &RawPing<'_>,
    timestamp_ms: i64,
) -> Result<Option<CabPing>, (&'static str, String)> {
    let driver_id = match raw.driver_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => {
            check_identifier(text, MAX_DRIVER_ID_LEN)
                .map_err(|error| ("driver_id", format!("driver_id {error}")))?;
            Some(text.to_owned())
        }
    };
    let activity = match raw.driver_state.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(CabActivity::parse(text).ok_or_else(|| {
            (
                "driver_state",
                "driver_state must be driving, rest, other_work or available".to_owned(),
            )
        })?),
    };
    let remaining = raw.remaining_driving_minutes;
    if remaining.is_some_and(|minutes| !(0.0..=MAX_REMAINING_DRIVING_MINUTES).contains(&minutes)) {
        return Err((
            "remaining_driving_minutes",
            format!(
                "remaining_driving_minutes must be between 0 and {MAX_REMAINING_DRIVING_MINUTES}"
            ),
        ));
    }
    if driver_id.is_none() && activity.is_none() && remaining.is_none() {
        return Ok(None);
    }
    Ok(Some(CabPing {
        vehicle: 0,
        timestamp_ms,
        driver_id,
        activity,
        remaining_driving_minutes: remaining,
    }))
}
