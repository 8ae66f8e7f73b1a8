//! The JSON wire format, and its conversion to and from domain types.

use chrono::{DateTime, FixedOffset, NaiveDateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::ApiSettings;
use crate::domain::eta::{
    Estimate, EtaQuery, Factor, ModelInfo, Stop, StopEstimate, TripContext, Window,
};
use crate::domain::explain::{driving_rules_name, Reason, ReasonKind};
use crate::domain::geo::{CoordinateError, GeoPoint};
use crate::domain::risk::{ArrivalBand, LateRisk, Severity};
use crate::domain::rules::{self, DriverState, SegmentKind};
use crate::domain::vehicle::{Carriage, GrossWeight, Operation, VehicleClass};
use crate::http::api::error::{ApiError, ErrorBody};

/// A WGS84 position in decimal degrees.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LatLon {
    #[schema(example = 50.63, minimum = -90, maximum = 90)]
    pub lat: f64,
    #[schema(example = 3.06, minimum = -180, maximum = 180)]
    pub lon: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VehicleClassDto {
    /// 3.5 t or less: no traffic bans; the driving-time rules from 1 July 2026 over 2.5 t on
    /// an international or cabotage trip, when `gross_weight_tonnes` says so.
    Van,
    /// A rigid lorry above 7.5 t.
    Rigid,
    /// A tractor and semi-trailer.
    Articulated,
}

/// A time window at a stop, both ends RFC 3339 with an offset.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowDto {
    #[schema(format = DateTime, example = "2026-12-01T14:00:00+01:00")]
    pub start: String,
    #[schema(format = DateTime, example = "2026-12-01T16:00:00+01:00")]
    pub end: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// The caller's own identifier for the stop, echoed back.
    pub id: Option<String>,
    #[schema(example = 45.76, minimum = -90, maximum = 90)]
    pub lat: f64,
    #[schema(example = 4.84, minimum = -180, maximum = 180)]
    pub lon: f64,
    /// Planned loading or unloading time at the stop.
    #[serde(default)]
    #[schema(example = 45, minimum = 0)]
    pub dwell_minutes: f64,
    pub window: Option<WindowDto>,
}

/// What the driver has already driven when the trip starts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DriverRequest {
    #[serde(default)]
    #[schema(example = 120, minimum = 0, maximum = 600)]
    pub driven_today_minutes: f64,
    #[serde(default)]
    #[schema(example = 60, minimum = 0, maximum = 270)]
    pub driven_since_break_minutes: f64,
}

/// One ETA question.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EtaRequest {
    pub origin: LatLon,
    pub destination: LatLon,
    /// RFC 3339 with an offset; answers use the same offset.
    #[schema(format = DateTime, example = "2026-12-01T06:00:00+01:00")]
    pub departure_time: String,
    pub vehicle_class: VehicleClassDto,
    /// Intermediate stops, in order, before the destination.
    #[serde(default)]
    pub stops: Vec<StopRequest>,
    pub driver: Option<DriverRequest>,
    /// The vehicle's gross weight (its maximum permissible laden mass), 0.5 to 60 t. The bans
    /// of each country cover vehicles by it, and it decides whether a van is under the
    /// driving-time rules; without it, the class's usual weight (a van at 3.5 t, outside the
    /// rules).
    #[serde(default)]
    #[schema(example = 3.2, minimum = 0.5, maximum = 60)]
    pub gross_weight_tonnes: Option<f64>,
    /// Without it, international when the road crosses from one country into another,
    /// domestic otherwise.
    #[serde(default)]
    pub operation: Option<OperationDto>,
    /// Also list the answer's strongest factors. They cost some 75 times the prediction
    /// (per-row SHAP values over every tree), so they are given only when asked.
    #[serde(default)]
    pub factors: bool,
}

/// The kind of carriage, as the driving-time rules for light vans tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationDto {
    /// Loading and unloading in the carrier's own country.
    Domestic,
    /// Across a border.
    International,
    /// Loading and unloading inside another country than the carrier's own.
    Cabotage,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Up to 10,000 requests of the single form (the limit is a setting). Kept as their text
    /// until each is read on its own: a number out of range, which a `serde_json::Value`
    /// cannot hold, then fails its item and not the batch.
    #[schema(value_type = Vec<EtaRequest>)]
    pub requests: Vec<Box<serde_json::value::RawValue>>,
    /// Also list each answer's strongest factors. They cost far more than the prediction
    /// (per-row SHAP values over every tree), so a plan's batch leaves them out by default.
    #[serde(default)]
    pub factors: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Breakdown {
    pub driving_minutes: f64,
    pub break_minutes: f64,
    pub rest_minutes: f64,
    pub dwell_minutes: f64,
    /// Time spent waiting out traffic bans.
    pub restriction_wait_minutes: f64,
    /// The expected waits at border crossings.
    pub border_minutes: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKindDto {
    Drive,
    Break,
    Rest,
    Dwell,
    BanWait,
    Border,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TimelineSegment {
    pub kind: SegmentKindDto,
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
    pub duration_minutes: f64,
    /// The country the segment is about (ISO 3166 alpha-2): the one driven in, the one whose
    /// ban a `ban_wait` waits out (the next one when the truck waits at its border), the one a
    /// `border` enters. Absent before the first drive and outside the known countries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "DE")]
    pub country: Option<String>,
    /// The ban rule a `ban_wait` waits out, by its id in the ban data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "de-sunday")]
    pub rule: Option<String>,
}

/// What a reason is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReasonKindDto {
    Ban,
    Rest,
    Breaks,
    Border,
    Dwell,
    Traffic,
    Weather,
    Carrier,
}

/// One named contribution to the arrival, in English and in French.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReasonDto {
    pub kind: ReasonKindDto,
    /// What it adds to the arrival (negative: earlier).
    pub minutes: i64,
    #[schema(example = "Sunday ban in Germany: waits 22 h at the border")]
    pub en: String,
    #[schema(example = "Interdiction du dimanche en Allemagne : attente de 22 h à la frontière")]
    pub fr: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeverityDto {
    OnTime,
    AtRisk,
    Late,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LateRiskDto {
    /// Probability of arriving after the window closes.
    #[schema(minimum = 0, maximum = 1)]
    pub probability: f64,
    pub severity: SeverityDto,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StopEta {
    /// The stop's position in the request's `stops`, from 0.
    pub index: usize,
    pub id: Option<String>,
    /// Arrival at the stop, before its dwell.
    #[schema(format = DateTime)]
    pub eta: String,
    #[schema(format = DateTime)]
    pub eta_p10: String,
    #[schema(format = DateTime)]
    pub eta_p90: String,
    /// Present when the stop has a window.
    pub late_risk: Option<LateRiskDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelDto {
    #[schema(example = "rules")]
    pub name: String,
    #[schema(example = "0.1.0")]
    pub version: String,
    /// True when the learned model was missing or failed and the rules answered instead.
    pub fallback: bool,
}

/// One input's pull on this estimate: the arrival is `minutes` later (negative: earlier) than
/// the model's average answer because `feature` was `value`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FactorDto {
    #[schema(example = "rules_rest_minutes")]
    pub feature: String,
    /// The feature's value; null when unknown.
    pub value: Option<f64>,
    pub minutes: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EtaResponse {
    /// Most likely arrival at the destination.
    #[schema(format = DateTime)]
    pub eta: String,
    /// Arrival that 10% of trips beat.
    #[schema(format = DateTime)]
    pub eta_p10: String,
    /// Arrival that 90% of trips beat.
    #[schema(format = DateTime)]
    pub eta_p90: String,
    /// Minutes from departure to the most likely arrival.
    pub duration_minutes: f64,
    /// Estimated road distance.
    pub distance_km: f64,
    pub breakdown: Breakdown,
    pub timeline: Vec<TimelineSegment>,
    pub stops: Vec<StopEta>,
    /// The strongest contributions to a learned estimate, strongest first; empty when the
    /// rules answer.
    pub factors: Vec<FactorDto>,
    pub model: ModelDto,
    /// The weather and congestion the estimate took, where the feeds gave them.
    pub conditions: ConditionsDto,
    /// Whether the road distance came from a routing engine (else the great circle times the
    /// circuity factor).
    pub routed: bool,
    /// Configured feeds that could not serve this estimate: `weather_unavailable`,
    /// `weather_stale`, `traffic_unavailable`, `traffic_stale`, `routing_unavailable`. The
    /// estimate then did without them.
    pub degraded: Vec<String>,
    /// The driving and rest rules the plan follows: `561/2006` (Regulation (EC) 561/2006) or
    /// `none` (a van outside them).
    #[schema(example = "561/2006")]
    pub driving_rules: String,
    /// The kind of carriage the plan took: as asked, or inferred from the route.
    pub operation: OperationDto,
    /// The estimate's reasons in words, grouped and named: bans, breaks, rests, borders,
    /// dwell, and what the model and the arrivals added (traffic, weather, carrier).
    pub explanation: Vec<ReasonDto>,
}

/// Weather at the middle of the route when the truck is expected there (Open-Meteo's
/// variables) and congestion near each end; each absent when unknown.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ConditionsDto {
    /// Air temperature 2 m above ground, °C.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature_2m: Option<f64>,
    /// Rain, showers and snow of the hour, mm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precipitation: Option<f64>,
    /// Snowfall of the hour, cm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snowfall: Option<f64>,
    /// Wind 10 m above ground, km/h.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wind_speed_10m: Option<f64>,
    /// Visibility, m.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<f64>,
    /// Near the origin: 0 free-flowing to 1 standstill.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_congestion: Option<f64>,
    /// Near the destination: 0 free-flowing to 1 standstill.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_congestion: Option<f64>,
}

impl From<crate::domain::eta::Conditions> for ConditionsDto {
    fn from(found: crate::domain::eta::Conditions) -> Self {
        Self {
            temperature_2m: found.temperature_2m,
            precipitation: found.precipitation,
            snowfall: found.snowfall,
            wind_speed_10m: found.wind_speed_10m,
            visibility: found.visibility,
            origin_congestion: found.origin_congestion,
            destination_congestion: found.destination_congestion,
        }
    }
}

/// One item of a batch answer: an ETA, or the error for that request alone.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum BatchItem {
    Eta(Box<EtaResponse>),
    Error { error: ErrorBody },
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchResponse {
    /// In the order of the requests.
    pub results: Vec<BatchItem>,
}

impl From<ModelInfo> for ModelDto {
    fn from(model: ModelInfo) -> Self {
        Self {
            name: model.name,
            version: model.version,
            fallback: model.fallback,
        }
    }
}

impl EtaRequest {
    /// Checks every value and builds the domain query. `now` bounds the departure time.
    pub fn into_query(
        self,
        now: DateTime<Utc>,
        limits: &ApiSettings,
    ) -> Result<EtaQuery, ApiError> {
        let departure = parse_timestamp(&self.departure_time, "departure_time")?;
        let offset = (departure.with_timezone(&Utc) - now).abs();
        if offset > TimeDelta::days(limits.max_departure_offset_days) {
            return Err(ApiError::out_of_range(
                "departure_time",
                format!(
                    "departure_time must be within {} days of now",
                    limits.max_departure_offset_days
                ),
            ));
        }
        if self.stops.len() > limits.max_stops {
            return Err(ApiError::out_of_range(
                "stops",
                format!("at most {} stops per request", limits.max_stops),
            ));
        }
        let stops = self
            .stops
            .into_iter()
            .enumerate()
            .map(|(index, stop)| {
                stop.into_domain()
                    .map_err(|error| error.under(&format!("stops[{index}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let driver = match self.driver {
            Some(driver) => driver
                .into_domain()
                .map_err(|error| error.under("driver"))?,
            None => DriverState::default(),
        };
        Ok(EtaQuery {
            origin: self
                .origin
                .into_domain()
                .map_err(|error| error.under("origin"))?,
            destination: self
                .destination
                .into_domain()
                .map_err(|error| error.under("destination"))?,
            departure,
            vehicle: self.vehicle_class.into(),
            stops,
            driver,
            context: TripContext {
                carriage: carriage(self.gross_weight_tonnes, self.operation)?,
                ..TripContext::default()
            },
        })
    }
}

/// The lightest and heaviest gross weights accepted: below is a unit mistake (kilograms or
/// pounds sent as tonnes go far above), above is no road vehicle.
const GROSS_WEIGHT_TONNES: (f64, f64) = (0.5, 60.0);

/// The declared weight, held to [`GROSS_WEIGHT_TONNES`], and the operation.
pub(crate) fn carriage(
    gross_weight_tonnes: Option<f64>,
    operation: Option<OperationDto>,
) -> Result<Carriage, ApiError> {
    let operation = operation.map(Operation::from);
    let Some(tonnes) = gross_weight_tonnes else {
        return Ok(Carriage {
            gross_weight: None,
            operation,
        });
    };
    let (lightest, heaviest) = GROSS_WEIGHT_TONNES;
    let in_range = (lightest..=heaviest).contains(&tonnes);
    let gross_weight = GrossWeight::new(tonnes)
        .ok()
        .filter(|_| in_range)
        .ok_or_else(|| {
            ApiError::out_of_range(
                "gross_weight_tonnes",
                format!(
                    "gross_weight_tonnes must be a number of tonnes between {lightest} and {heaviest}"
                ),
            )
        })?;
    Ok(Carriage {
        gross_weight: Some(gross_weight),
        operation,
    })
}

impl LatLon {
    pub(crate) fn into_domain(self) -> Result<GeoPoint, ApiError> {
        point(self.lat, self.lon)
    }
}

pub(crate) fn point(lat: f64, lon: f64) -> Result<GeoPoint, ApiError> {
    GeoPoint::new(lat, lon).map_err(|error| {
        let field = match error {
            CoordinateError::Latitude => "lat",
            CoordinateError::Longitude => "lon",
        };
        ApiError::out_of_range(field, error.to_string())
    })
}

/// Longest dwell accepted at one stop: a week. Anything longer is a unit mistake.
const MAX_DWELL_MINUTES: f64 = 7.0 * 24.0 * 60.0;

impl StopRequest {
    fn into_domain(self) -> Result<Stop, ApiError> {
        let location = point(self.lat, self.lon)?;
        if !(0.0..=MAX_DWELL_MINUTES).contains(&self.dwell_minutes) {
            return Err(ApiError::out_of_range(
                "dwell_minutes",
                format!("dwell_minutes must be between 0 and {MAX_DWELL_MINUTES}"),
            ));
        }
        Ok(Stop {
            location,
            dwell: minutes(self.dwell_minutes),
            window: stop_window(self.window)?,
        })
    }
}

/// A stop's window, when it has one, its errors under `window`.
pub(crate) fn stop_window(window: Option<WindowDto>) -> Result<Option<Window>, ApiError> {
    window
        .map(WindowDto::into_domain)
        .transpose()
        .map_err(|error| error.under("window"))
}

impl WindowDto {
    pub(crate) fn into_domain(self) -> Result<Window, ApiError> {
        let start = parse_timestamp(&self.start, "start")?.with_timezone(&Utc);
        let end = parse_timestamp(&self.end, "end")?.with_timezone(&Utc);
        Window::new(start, end).map_err(|error| ApiError::out_of_range("end", error.to_string()))
    }
}

/// A stored window, on the wire.
impl From<(DateTime<Utc>, DateTime<Utc>)> for WindowDto {
    fn from((start, end): (DateTime<Utc>, DateTime<Utc>)) -> Self {
        Self {
            start: stamp(start),
            end: stamp(end),
        }
    }
}

impl DriverRequest {
    pub(crate) fn into_domain(self) -> Result<DriverState, ApiError> {
        let fields = [
            ("driven_today_minutes", self.driven_today_minutes, 600.0),
            (
                "driven_since_break_minutes",
                self.driven_since_break_minutes,
                270.0,
            ),
        ];
        for (field, value, max) in fields {
            if !(0.0..=max).contains(&value) {
                return Err(ApiError::out_of_range(
                    field,
                    format!("{field} must be between 0 and {max}"),
                ));
            }
        }
        DriverState::new(
            minutes(self.driven_today_minutes),
            minutes(self.driven_since_break_minutes),
        )
        .map_err(|error| ApiError::out_of_range("driven_since_break_minutes", error.to_string()))
    }
}

fn minutes(value: f64) -> TimeDelta {
    TimeDelta::milliseconds((value * 60_000.0).round() as i64)
}

/// An instant on the wire: RFC 3339 in UTC, to the second.
pub(crate) fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC 3339 with an explicit offset. A local time without one is ambiguous for a truck that
/// crosses time zones, so it is refused with its own code.
pub fn parse_timestamp(text: &str, field: &str) -> Result<DateTime<FixedOffset>, ApiError> {
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return Ok(parsed);
    }
    let without_offset = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
    ]
    .iter()
    .any(|format| NaiveDateTime::parse_from_str(text, format).is_ok());
    if without_offset {
        return Err(ApiError::TimestampWithoutOffset {
            field: field.into(),
            message: format!("{field} needs an offset, such as 2026-12-01T06:00:00+01:00 or ...Z"),
        });
    }
    Err(ApiError::InvalidTimestamp {
        field: field.into(),
        message: format!(
            "{field} must be an RFC 3339 timestamp, such as 2026-12-01T06:00:00+01:00"
        ),
    })
}

impl From<VehicleClassDto> for VehicleClass {
    fn from(class: VehicleClassDto) -> Self {
        match class {
            VehicleClassDto::Van => Self::Van,
            VehicleClassDto::Rigid => Self::Rigid,
            VehicleClassDto::Articulated => Self::Articulated,
        }
    }
}

impl From<VehicleClass> for VehicleClassDto {
    fn from(class: VehicleClass) -> Self {
        match class {
            VehicleClass::Van => Self::Van,
            VehicleClass::Rigid => Self::Rigid,
            VehicleClass::Articulated => Self::Articulated,
        }
    }
}

impl From<OperationDto> for Operation {
    fn from(operation: OperationDto) -> Self {
        match operation {
            OperationDto::Domestic => Self::Domestic,
            OperationDto::International => Self::International,
            OperationDto::Cabotage => Self::Cabotage,
        }
    }
}

impl From<Operation> for OperationDto {
    fn from(operation: Operation) -> Self {
        match operation {
            Operation::Domestic => Self::Domestic,
            Operation::International => Self::International,
            Operation::Cabotage => Self::Cabotage,
        }
    }
}

impl From<Reason> for ReasonDto {
    fn from(reason: Reason) -> Self {
        let kind = match reason.kind {
            ReasonKind::Ban => ReasonKindDto::Ban,
            ReasonKind::Rest => ReasonKindDto::Rest,
            ReasonKind::Breaks => ReasonKindDto::Breaks,
            ReasonKind::Border => ReasonKindDto::Border,
            ReasonKind::Dwell => ReasonKindDto::Dwell,
            ReasonKind::Traffic => ReasonKindDto::Traffic,
            ReasonKind::Weather => ReasonKindDto::Weather,
            ReasonKind::Carrier => ReasonKindDto::Carrier,
        };
        Self {
            kind,
            minutes: reason.minutes,
            en: reason.en,
            fr: reason.fr,
        }
    }
}

/// The ISO code of a segment's country; none for `Elsewhere`, which no one can act on.
pub(crate) fn country_code(country: Option<crate::domain::geo::Territory>) -> Option<String> {
    country
        .filter(|country| *country != crate::domain::geo::Territory::Elsewhere)
        .map(|country| country.code().to_owned())
}

impl From<SegmentKind> for SegmentKindDto {
    fn from(kind: SegmentKind) -> Self {
        match kind {
            SegmentKind::Drive => Self::Drive,
            SegmentKind::Break => Self::Break,
            SegmentKind::Rest => Self::Rest,
            SegmentKind::Dwell => Self::Dwell,
            SegmentKind::BanWait => Self::BanWait,
            SegmentKind::Border => Self::Border,
        }
    }
}

impl From<LateRisk> for LateRiskDto {
    fn from(risk: LateRisk) -> Self {
        let severity = match risk.severity {
            Severity::OnTime => SeverityDto::OnTime,
            Severity::AtRisk => SeverityDto::AtRisk,
            Severity::Late => SeverityDto::Late,
        };
        Self {
            probability: (risk.probability * 1000.0).round() / 1000.0,
            severity,
        }
    }
}

/// Minutes to one decimal: finer would be noise, coarser would not add up.
fn in_minutes(delta: TimeDelta) -> f64 {
    (delta.num_milliseconds() as f64 / 6_000.0).round() / 10.0
}

impl EtaResponse {
    /// Renders an estimate in the offset the question was asked in.
    pub fn new(
        query: &EtaQuery,
        stop_ids: Vec<Option<String>>,
        estimate: Estimate,
        degraded: &[&str],
    ) -> Self {
        let asked = AskedOffset(*query.departure.offset());
        let (eta, eta_p10, eta_p90) = asked.band(&estimate.band);
        Self {
            eta,
            eta_p10,
            eta_p90,
            duration_minutes: in_minutes(estimate.band.p50 - query.departure.with_timezone(&Utc)),
            distance_km: (estimate.road_distance_km * 10.0).round() / 10.0,
            breakdown: Breakdown::from(estimate.breakdown),
            timeline: estimate
                .timeline
                .segments
                .iter()
                .map(|segment| asked.segment(segment))
                .collect(),
            stops: asked.stops(&estimate.stops, stop_ids),
            factors: estimate.factors.iter().map(FactorDto::from).collect(),
            model: estimate.model.into(),
            conditions: query.context.conditions.into(),
            routed: query.context.legs.is_some(),
            degraded: degraded.iter().map(|flag| (*flag).to_owned()).collect(),
            driving_rules: driving_rules_name(estimate.under_driving_rules).to_owned(),
            operation: estimate.operation.into(),
            // The caller adds the words: they need the ban data and the correction.
            explanation: Vec::new(),
        }
    }
}

/// The offset a question was asked in: its answer's instants are written in it.
struct AskedOffset(FixedOffset);

impl AskedOffset {
    fn stamp(&self, instant: DateTime<Utc>) -> String {
        instant
            .with_timezone(&self.0)
            .to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// The median, P10 and P90, in the order the answer lists them.
    fn band(&self, band: &ArrivalBand) -> (String, String, String) {
        (
            self.stamp(band.p50),
            self.stamp(band.p10),
            self.stamp(band.p90),
        )
    }

    fn segment(&self, segment: &rules::Segment) -> TimelineSegment {
        TimelineSegment {
            kind: segment.kind.into(),
            start: self.stamp(segment.start),
            end: self.stamp(segment.end),
            duration_minutes: in_minutes(segment.duration()),
            country: country_code(segment.country),
            rule: segment.rule.map(str::to_owned),
        }
    }

    /// Each intermediate stop's arrival, with the caller's id of it.
    fn stops(&self, stops: &[StopEstimate], stop_ids: Vec<Option<String>>) -> Vec<StopEta> {
        stops
            .iter()
            .zip(stop_ids)
            .enumerate()
            .map(|(index, (stop, id))| {
                let (eta, eta_p10, eta_p90) = self.band(&stop.band);
                StopEta {
                    index,
                    id,
                    eta,
                    eta_p10,
                    eta_p90,
                    late_risk: stop.late_risk.map(Into::into),
                }
            })
            .collect()
    }
}

impl From<rules::Breakdown> for Breakdown {
    fn from(breakdown: rules::Breakdown) -> Self {
        Self {
            driving_minutes: in_minutes(breakdown.driving),
            break_minutes: in_minutes(breakdown.breaks),
            rest_minutes: in_minutes(breakdown.rests),
            dwell_minutes: in_minutes(breakdown.dwell),
            restriction_wait_minutes: in_minutes(breakdown.ban_waits),
            border_minutes: in_minutes(breakdown.borders),
        }
    }
}

/// A factor as the answer gives it: its value to two decimals (null when not a number), its
/// pull to one.
impl From<&Factor> for FactorDto {
    fn from(factor: &Factor) -> Self {
        Self {
            feature: factor.feature.to_owned(),
            value: factor
                .value
                .is_finite()
                .then_some((factor.value * 100.0).round() / 100.0),
            minutes: (factor.minutes * 10.0).round() / 10.0,
        }
    }
}
