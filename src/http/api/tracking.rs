//! Shipments, positions and live ETAs: `/v1/shipments...`, `/v1/positions`,
//! `/v1/vehicles/{vehicle_id}/positions`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::ids::{check_identifier, new_id};
use crate::domain::vehicle::{GrossWeight, VehicleClass};
use crate::http::api::access::{CARRIER, FLEET};
use crate::http::api::body::{content_type, parse_query, read_json, read_limited};
use crate::http::api::contract::{PingBody, PositionsJson};
use crate::http::api::dto::{
    carriage, parse_timestamp, point, stamp, stop_window, DriverRequest, LatLon, OperationDto,
    VehicleClassDto, WindowDto,
};
use crate::http::api::error::{ApiError, ErrorBody};
use crate::http::api::estimates::LiveEstimate;
use crate::http::api::{answer, blocking, AppState};
use crate::partners::keys::Caller;
use crate::tracking::pings::{self, BatchError, PingFormat, MAX_VEHICLE_ID_LEN};
use crate::tracking::shipment::{
    EventKind, EventSource, HorizonAccuracy, PlannedStop, RegistrationLimits, Shipment,
    ShipmentPlan, Status, StopEvent,
};
use crate::tracking::tracker::{IngestOutcome, StopRef, TrackError};

impl From<TrackError> for ApiError {
    fn from(error: TrackError) -> Self {
        match error {
            TrackError::NotFound => ApiError::NotFound,
            TrackError::Conflict(message) => ApiError::Conflict { message },
            TrackError::DuplicateReference(id) => ApiError::Conflict {
                message: format!("reference already registered as shipment {id}"),
            },
            TrackError::Invalid { field, message } => ApiError::OutOfRange { field, message },
            TrackError::Storage(detail) => ApiError::Internal(detail),
            TrackError::Unavailable(detail) => ApiError::unavailable(detail),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentStopRequest {
    /// The caller's identifier of the stop, unique within the shipment.
    #[schema(example = "marseille-dock-4")]
    pub id: String,
    #[schema(example = 43.3, minimum = -90, maximum = 90)]
    pub lat: f64,
    #[schema(example = 5.4, minimum = -180, maximum = 180)]
    pub lon: f64,
    pub window: Option<WindowDto>,
    #[serde(default)]
    #[schema(example = 45, minimum = 0)]
    pub planned_dwell_minutes: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentRequest {
    /// The TMS's reference; one shipment per reference.
    #[schema(example = "ORD-2026-1234")]
    pub reference: String,
    #[schema(example = "AB-123-CD")]
    pub vehicle_id: String,
    pub vehicle_class: VehicleClassDto,
    /// Where the truck sets off. Without it, the trip begins at the first stop.
    pub origin: Option<LatLon>,
    /// The stops in the order the truck calls at them.
    pub stops: Vec<ShipmentStopRequest>,
    #[schema(format = DateTime, example = "2026-12-01T06:00:00+01:00")]
    pub planned_departure: String,
    /// What the driver has already driven at the planned departure.
    pub driver: Option<DriverRequest>,
    /// As in `POST /v1/eta`: the gross weight, 0.5 to 60 t; the class's usual one when absent.
    #[serde(default)]
    #[schema(example = 3.2, minimum = 0.5, maximum = 60)]
    pub gross_weight_tonnes: Option<f64>,
    /// As in `POST /v1/eta`: inferred from the route's countries when absent.
    #[serde(default)]
    pub operation: Option<OperationDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StopEventDto {
    pub at: String,
    /// `gps` (from the pings) or `manual` (posted).
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShipmentStopDto {
    pub index: usize,
    pub id: String,
    pub lat: f64,
    pub lon: f64,
    pub window: Option<WindowDto>,
    pub planned_dwell_minutes: f64,
    pub arrived: Option<StopEventDto>,
    pub departed: Option<StopEventDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HorizonAccuracyDto {
    /// `0-1h`, `1-4h`, `4-12h` or `12h+` before the actual arrival.
    pub horizon: String,
    pub estimates: usize,
    pub mean_absolute_error_minutes: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShipmentDto {
    pub id: String,
    /// The caller's own reference, unique within its organisation.
    pub reference: String,
    /// The vehicle whose pings move this shipment's estimate.
    pub vehicle_id: String,
    pub vehicle_class: VehicleClassDto,
    /// As registered; absent when not declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gross_weight_tonnes: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationDto>,
    /// `planned`, `in_transit`, `delivered` or `cancelled`.
    pub status: String,
    /// Absent when the trip begins at its first stop.
    pub origin: Option<LatLon>,
    pub stops: Vec<ShipmentStopDto>,
    #[schema(format = DateTime)]
    pub planned_departure: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub updated_at: String,
    pub delivered_at: Option<String>,
    pub cancelled_at: Option<String>,
    /// Once delivered: how far the ETAs given were from the actual arrivals.
    pub accuracy: Vec<HorizonAccuracyDto>,
    /// The current estimate, when the list was asked for it (`include=estimate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<LiveEstimate>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShipmentPage {
    pub items: Vec<ShipmentDto>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `planned`, `in_transit`, `delivered` or `cancelled`.
    pub status: Option<String>,
    pub cursor: Option<String>,
    /// Page size, 1 to 500.
    pub limit: Option<usize>,
    /// `estimate`: each shipment with its current estimate, as `GET /v1/shipments/{id}/eta`
    /// gives it (absent for a shipment never estimated).
    pub include: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKindDto {
    Arrived,
    Departed,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    /// The stop, by position from 0; or give `stop_id`.
    pub stop_index: Option<usize>,
    pub stop_id: Option<String>,
    pub kind: EventKindDto,
    /// When it happened; now when absent.
    #[schema(format = DateTime)]
    pub at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RejectedPing {
    /// Position of the ping in the request, from 0.
    pub index: usize,
    pub field: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PositionsResponse {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected_count: usize,
    /// The first 1,000 rejected pings and why.
    pub rejected: Vec<RejectedPing>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PositionDto {
    pub timestamp: String,
    pub lat: f64,
    pub lon: f64,
    pub speed_kmh: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PositionsQuery {
    /// RFC 3339; the last 24 hours when absent.
    pub since: Option<String>,
    /// At most this many pings, oldest first (1 to 10,000; 10,000 when absent). When more
    /// remain, the `X-Next-Since` header gives the `since` that reads on.
    pub limit: Option<usize>,
}

const MAX_REFERENCE_LEN: usize = 128;
const MAX_LISTED_REJECTIONS: usize = 1_000;
const MAX_PAGE: usize = 500;
const MAX_POSITIONS_PAGE: usize = 10_000;

fn event_dto(event: Option<StopEvent>) -> Option<StopEventDto> {
    event.map(|event| StopEventDto {
        at: stamp(event.at),
        source: match event.source {
            EventSource::Gps => "gps".into(),
            EventSource::Manual => "manual".into(),
        },
    })
}

impl From<&Shipment> for ShipmentDto {
    fn from(shipment: &Shipment) -> Self {
        Self {
            id: shipment.id.clone(),
            reference: shipment.reference.clone(),
            vehicle_id: shipment.vehicle_id.clone(),
            vehicle_class: shipment.vehicle_class().into(),
            gross_weight_tonnes: shipment.carriage().gross_weight.map(GrossWeight::tonnes),
            operation: shipment.carriage().operation.map(OperationDto::from),
            status: shipment.status.as_str().into(),
            origin: shipment.origin.map(|(lat, lon)| LatLon { lat, lon }),
            stops: shipment
                .stops
                .iter()
                .enumerate()
                .map(|(index, stop)| ShipmentStopDto {
                    index,
                    id: stop.id.clone(),
                    lat: stop.lat,
                    lon: stop.lon,
                    window: stop.window.map(WindowDto::from),
                    planned_dwell_minutes: stop.planned_dwell_minutes,
                    arrived: event_dto(stop.arrived),
                    departed: event_dto(stop.departed),
                })
                .collect(),
            planned_departure: stamp(shipment.planned_departure),
            created_at: stamp(shipment.created_at),
            updated_at: stamp(shipment.updated_at),
            delivered_at: shipment.delivered_at.map(stamp),
            cancelled_at: shipment.cancelled_at.map(stamp),
            accuracy: shipment
                .accuracy
                .iter()
                .map(HorizonAccuracyDto::from)
                .collect(),
            estimate: None,
        }
    }
}

impl From<&HorizonAccuracy> for HorizonAccuracyDto {
    fn from(accuracy: &HorizonAccuracy) -> Self {
        Self {
            horizon: accuracy.horizon.clone(),
            estimates: accuracy.estimates,
            mean_absolute_error_minutes: accuracy.mean_absolute_error_minutes,
        }
    }
}

impl ShipmentRequest {
    /// Checks every value and builds the shipment as it will be stored.
    pub fn into_shipment(
        self,
        organisation: &str,
        now: DateTime<Utc>,
        state: &AppState,
    ) -> Result<Shipment, ApiError> {
        let limits = &state.settings;
        // Counted here, before each stop is read: a body of a million stops stops early.
        if self.stops.is_empty() || self.stops.len() > limits.max_stops {
            return Err(ApiError::out_of_range(
                "stops",
                format!("a shipment has 1 to {} stops", limits.max_stops),
            ));
        }
        self.check_identifiers()?;
        let plan = self.into_plan()?;
        let limits = RegistrationLimits {
            max_departure_offset_days: limits.max_departure_offset_days,
            max_reference_len: MAX_REFERENCE_LEN,
            max_vehicle_id_len: MAX_VEHICLE_ID_LEN,
        };
        Ok(plan.into_shipment(organisation, new_id("shp"), now, limits)?)
    }

    /// The caller's identifiers, before they are trimmed, stored and echoed: a control or
    /// bidirectional character in one is refused, not cleaned.
    fn check_identifiers(&self) -> Result<(), ApiError> {
        checked_identifier("reference", &self.reference, MAX_REFERENCE_LEN)?;
        checked_identifier("vehicle_id", &self.vehicle_id, MAX_VEHICLE_ID_LEN)?;
        for (index, stop) in self.stops.iter().enumerate() {
            checked_identifier(&format!("stops[{index}].id"), &stop.id, MAX_REFERENCE_LEN)?;
        }
        Ok(())
    }

    /// Each value read into its domain type, errors under the field's path.
    fn into_plan(self) -> Result<ShipmentPlan, ApiError> {
        let planned_departure =
            parse_timestamp(&self.planned_departure, "planned_departure")?.with_timezone(&Utc);
        let origin = self
            .origin
            .map(LatLon::into_domain)
            .transpose()
            .map_err(|error| error.under("origin"))?;
        let stops = self
            .stops
            .into_iter()
            .enumerate()
            .map(|(index, stop)| {
                stop.into_planned()
                    .map_err(|error| error.under(&format!("stops[{index}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let driver = self
            .driver
            .map(DriverRequest::into_domain)
            .transpose()
            .map_err(|error| error.under("driver"))?;
        Ok(ShipmentPlan {
            reference: self.reference,
            vehicle_id: self.vehicle_id,
            vehicle: VehicleClass::from(self.vehicle_class),
            origin,
            stops,
            planned_departure,
            driver,
            carriage: carriage(self.gross_weight_tonnes, self.operation)?,
        })
    }
}

impl ShipmentStopRequest {
    /// The stop as the plan takes it, its errors under the stop's own fields.
    fn into_planned(self) -> Result<PlannedStop, ApiError> {
        Ok(PlannedStop {
            location: point(self.lat, self.lon)?,
            window: stop_window(self.window)?,
            id: self.id,
            planned_dwell_minutes: self.planned_dwell_minutes,
        })
    }
}

/// An identifier held to [`check_identifier`], its error named by the field's path.
fn checked_identifier(field: &str, text: &str, max_chars: usize) -> Result<(), ApiError> {
    check_identifier(text, max_chars).map_err(|error| {
        let name = field.rsplit('.').next().unwrap_or(field);
        ApiError::out_of_range(field, format!("{name} {error}"))
    })
}

impl From<EventKindDto> for EventKind {
    fn from(kind: EventKindDto) -> Self {
        match kind {
            EventKindDto::Arrived => Self::Arrived,
            EventKindDto::Departed => Self::Departed,
        }
    }
}

impl EventRequest {
    /// The stop, by its position or by its id: one of the two.
    fn stop(self) -> Result<StopRef, ApiError> {
        match (self.stop_index, self.stop_id) {
            (Some(index), None) => Ok(StopRef::Index(index)),
            (None, Some(stop_id)) => Ok(StopRef::Id(stop_id)),
            _ => Err(ApiError::out_of_range(
                "stop_index",
                "give exactly one of stop_index and stop_id",
            )),
        }
    }

    /// When the event happened: `at`, not in the future (beyond the pings' tolerance), or now.
    fn checked_time(
        &self,
        now: DateTime<Utc>,
        tolerance_secs: i64,
    ) -> Result<DateTime<Utc>, ApiError> {
        let Some(text) = &self.at else {
            return Ok(now);
        };
        let at = parse_timestamp(text, "at")?.with_timezone(&Utc);
        if at > now + TimeDelta::seconds(tolerance_secs) {
            return Err(ApiError::out_of_range("at", "at is in the future"));
        }
        Ok(at)
    }
}

/// Register a shipment to follow.
#[utoipa::path(
    post,
    path = "/v1/shipments",
    tag = "shipments",
    request_body = ShipmentRequest,
    responses(
        (status = 201, description = "Registered; its first estimate is ready", body = ShipmentDto),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 409, description = "The reference is already registered", body = ErrorBody),
    )
)]
pub async fn create_shipment(
    state: web::Data<AppState>,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(CARRIER)?;
    let request: ShipmentRequest = read_json(payload, state.settings.max_body_bytes).await?;
    let shipment = request.into_shipment(&organisation, state.tracker.now(), &state)?;
    answer(state, StatusCode::CREATED, move |state| {
        Ok(ShipmentDto::from(&state.tracker.register(shipment)?))
    })
    .await
}

/// One shipment.
#[utoipa::path(
    get,
    path = "/v1/shipments/{id}",
    tag = "shipments",
    params(("id" = String, Path, description = "The shipment's id")),
    responses(
        (status = 200, description = "The shipment", body = ShipmentDto),
        (status = 404, description = "No such shipment", body = ErrorBody),
    )
)]
pub async fn get_shipment(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(FLEET)?;
    answer(state, StatusCode::OK, move |state| {
        Ok(ShipmentDto::from(
            &state.tracker.shipment(&organisation, &id)?,
        ))
    })
    .await
}

/// Shipments, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/shipments",
    tag = "shipments",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of shipments, each with its estimate with `include=estimate`", body = ShipmentPage),
        (status = 400, description = "Unknown status or include, or bad limit", body = ErrorBody),
    )
)]
pub async fn list_shipments(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(FLEET)?;
    let listing =
        parse_query::<ListQuery>(&request)?.listing(state.tracker.settings().page_size)?;
    answer(state, StatusCode::OK, move |state| {
        shipment_page(state, &organisation, listing)
    })
    .await
}

/// A page of shipments as a [`ListQuery`] asks for it, checked.
struct Listing {
    status: Option<Status>,
    cursor: Option<String>,
    limit: usize,
    with_estimates: bool,
}

impl ListQuery {
    /// The query's values, `page_size` shipments a page when it names no limit.
    fn listing(self, page_size: usize) -> Result<Listing, ApiError> {
        let status = match self.status.as_deref() {
            None => None,
            Some(text) => Some(Status::parse(text).ok_or_else(|| {
                ApiError::invalid_value(
                    "status",
                    "status must be planned, in_transit, delivered or cancelled",
                )
            })?),
        };
        let limit = self.limit.unwrap_or(page_size);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::out_of_range(
                "limit",
                format!("limit must be between 1 and {MAX_PAGE}"),
            ));
        }
        let with_estimates = match self.include.as_deref() {
            None | Some("") => false,
            Some("estimate") => true,
            Some(_) => {
                return Err(ApiError::invalid_value(
                    "include",
                    "include must be estimate",
                ))
            }
        };
        Ok(Listing {
            status,
            cursor: self.cursor,
            limit,
            with_estimates,
        })
    }
}

/// The organisation's shipments the listing asks for, and where the next page starts: one
/// more than the page is read to know whether there is one.
fn shipment_page(
    state: &AppState,
    organisation: &str,
    listing: Listing,
) -> Result<ShipmentPage, ApiError> {
    let Listing {
        status,
        cursor,
        limit,
        with_estimates,
    } = listing;
    let mut items = state
        .tracker
        .list(organisation, status, cursor.as_deref(), limit + 1)?;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|shipment| shipment.id.clone())
    } else {
        None
    };
    let mut estimates = if with_estimates {
        state.tracker.estimates(organisation, status, &items)?
    } else {
        Default::default()
    };
    Ok(ShipmentPage {
        items: items
            .iter()
            .map(|shipment| ShipmentDto {
                estimate: estimates.remove(&shipment.id).map(|snapshot| {
                    LiveEstimate::explained(&snapshot, state.training_rules.bans().rules())
                }),
                ..ShipmentDto::from(shipment)
            })
            .collect(),
        next_cursor,
    })
}

/// Cancel a shipment: its estimates stop.
#[utoipa::path(
    post,
    path = "/v1/shipments/{id}/cancel",
    tag = "shipments",
    params(("id" = String, Path, description = "The shipment's id")),
    responses(
        (status = 200, description = "Cancelled (again, if it already was)", body = ShipmentDto),
        (status = 404, description = "No such shipment", body = ErrorBody),
        (status = 409, description = "Already delivered", body = ErrorBody),
    )
)]
pub async fn cancel_shipment(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(CARRIER)?;
    answer(state, StatusCode::OK, move |state| {
        Ok(ShipmentDto::from(
            &state.tracker.cancel(&organisation, &id)?,
        ))
    })
    .await
}

/// Report an arrival or departure at a stop by hand.
#[utoipa::path(
    post,
    path = "/v1/shipments/{id}/events",
    tag = "shipments",
    request_body = EventRequest,
    params(("id" = String, Path, description = "The shipment's id")),
    responses(
        (status = 200, description = "Recorded; the estimates follow", body = ShipmentDto),
        (status = 400, description = "Invalid event", body = ErrorBody),
        (status = 404, description = "No such shipment", body = ErrorBody),
        (status = 409, description = "The shipment is delivered or cancelled", body = ErrorBody),
    )
)]
pub async fn post_event(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(CARRIER)?;
    let request: EventRequest = read_json(payload, state.settings.max_body_bytes).await?;
    let tracker = &state.tracker;
    let at = request.checked_time(tracker.now(), tracker.settings().future_tolerance_secs)?;
    let kind = EventKind::from(request.kind);
    let stop = request.stop()?;
    answer(state, StatusCode::OK, move |state| {
        let shipment = state
            .tracker
            .record_event(&organisation, &id, &stop, kind, at)?;
        Ok(ShipmentDto::from(&shipment))
    })
    .await
}

/// The current estimate of every stop.
#[utoipa::path(
    get,
    path = "/v1/shipments/{id}/eta",
    tag = "shipments",
    params(("id" = String, Path, description = "The shipment's id")),
    responses(
        (status = 200, description = "ETA, P10, P90 and late risk of every stop, the timeline and the factors", body = LiveEstimate),
        (status = 404, description = "No such shipment", body = ErrorBody),
    )
)]
pub async fn get_eta(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(FLEET)?;
    answer(state, StatusCode::OK, move |state| {
        Ok(LiveEstimate::explained(
            &state.tracker.current(&organisation, &id)?,
            state.training_rules.bans().rules(),
        ))
    })
    .await
}

/// A shipment's estimates as they changed, oldest first; each without its timeline and factors.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EtaHistory {
    pub shipment_id: String,
    pub snapshots: Vec<LiveEstimate>,
}

/// Every estimate that moved, oldest first.
#[utoipa::path(
    get,
    path = "/v1/shipments/{id}/eta/history",
    tag = "shipments",
    params(("id" = String, Path, description = "The shipment's id")),
    responses(
        (status = 200, description = "The estimates as they changed", body = EtaHistory),
        (status = 404, description = "No such shipment", body = ErrorBody),
    )
)]
pub async fn get_eta_history(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(FLEET)?;
    answer(state, StatusCode::OK, move |state| {
        let shipment_id = id.into_inner();
        let snapshots = state.tracker.history(&organisation, &shipment_id)?;
        Ok(EtaHistory {
            snapshots: snapshots.iter().map(LiveEstimate::from).collect(),
            shipment_id,
        })
    })
    .await
}

/// Take a batch of pings: JSON array, NDJSON, CSV, or one Traccar forwarded position.
#[utoipa::path(
    post,
    path = "/v1/positions",
    tag = "positions",
    request_body(
        description = "`application/json`: an array of pings, or one position as Traccar forwards it; \
                       `application/x-ndjson`: one ping a line, each as the schema says; \
                       `text/csv`: a header naming the pings' columns (`vehicle_id`, `timestamp`, `lat`, `lon`, \
                       and optionally `speed_kmh`, `heading`, `driver_id`, `driver_state`, \
                       `remaining_driving_minutes`), then one ping a row. A ping refused for a value \
                       (its `driver_state` unknown, its `remaining_driving_minutes` above 270) is listed \
                       under `rejected` with the field it names",
        content(
            (PositionsJson = "application/json"),
            (PingBody = "application/x-ndjson"),
            (String = "text/csv", example = json!("vehicle_id,timestamp,lat,lon,speed_kmh\nFR-AB-123-CD,2026-12-01T08:15:00+01:00,45.76,4.84,82\n")),
        ),
    ),
    responses(
        (status = 200, description = "Durable; counts of accepted, duplicate and rejected pings", body = PositionsResponse),
        (status = 400, description = "The body cannot be read", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 415, description = "Unsupported Content-Type", body = ErrorBody),
        (status = 422, description = "More pings than a request may hold", body = ErrorBody),
    )
)]
pub async fn post_positions(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(CARRIER)?;
    let format = ping_format(&request)?;
    let limit = state.tracker.settings().max_positions_body_bytes;
    let body = read_limited(payload, limit).await?;
    let limits = state.tracker.ping_limits();
    answer(state, StatusCode::OK, move |state| {
        let batch = pings::parse(&body, format, &limits).map_err(|error| match error {
            BatchError::Malformed(message) => ApiError::BadPayload(message),
            BatchError::TooMany { limit, count } => ApiError::BatchTooLarge { limit, count },
        })?;
        Ok(PositionsResponse::from(
            state.tracker.ingest(&organisation, batch)?,
        ))
    })
    .await
}

impl PositionsQuery {
    /// From when, and how many at most: the last 24 hours and a full page by default.
    fn page(&self, now: DateTime<Utc>) -> Result<(DateTime<Utc>, usize), ApiError> {
        let since = match &self.since {
            Some(text) => parse_timestamp(text, "since")?.with_timezone(&Utc),
            None => now - TimeDelta::hours(24),
        };
        let limit = self.limit.unwrap_or(MAX_POSITIONS_PAGE);
        if !(1..=MAX_POSITIONS_PAGE).contains(&limit) {
            return Err(ApiError::out_of_range(
                "limit",
                format!("limit must be between 1 and {MAX_POSITIONS_PAGE}"),
            ));
        }
        Ok((since, limit))
    }
}

/// The body's format, from its `Content-Type`.
fn ping_format(request: &HttpRequest) -> Result<PingFormat, ApiError> {
    let content_type = content_type(request);
    PingFormat::from_content_type(content_type).ok_or_else(|| ApiError::UnsupportedMediaType {
        message: format!(
            "Content-Type {content_type:?} is not one of application/json, \
             application/x-ndjson, text/csv"
        ),
    })
}

impl From<IngestOutcome> for PositionsResponse {
    fn from(outcome: IngestOutcome) -> Self {
        Self {
            accepted: outcome.accepted,
            duplicates: outcome.duplicates,
            rejected_count: outcome.rejected.len(),
            rejected: outcome
                .rejected
                .into_iter()
                .take(MAX_LISTED_REJECTIONS)
                .map(|rejection| RejectedPing {
                    index: rejection.index,
                    field: rejection.field.map(str::to_owned),
                    reason: rejection.reason,
                })
                .collect(),
        }
    }
}

/// A vehicle's pings in the live window, oldest first.
#[utoipa::path(
    get,
    path = "/v1/vehicles/{vehicle_id}/positions",
    tag = "positions",
    params(("vehicle_id" = String, Path, description = "The vehicle"), PositionsQuery),
    responses(
        (status = 200, description = "The pings", body = Vec<PositionDto>,
            headers(("X-Next-Since" = String, description = "Where the next page starts, when more pings remain"))),
        (status = 400, description = "Bad `since` or `limit`", body = ErrorBody),
    )
)]
pub async fn vehicle_positions(
    state: web::Data<AppState>,
    caller: Caller,
    vehicle_id: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(FLEET)?;
    let tracker = state.tracker.clone();
    let (since, limit) = parse_query::<PositionsQuery>(&request)?.page(tracker.now())?;
    let mut pings =
        blocking(move || Ok(tracker.positions(&organisation, &vehicle_id, since)?)).await?;
    let next_since = pings
        .get(limit)
        .map(|ping| ping.at.to_rfc3339_opts(SecondsFormat::Millis, true));
    pings.truncate(limit);
    let positions: Vec<PositionDto> = pings
        .into_iter()
        .map(|ping| PositionDto {
            timestamp: ping.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            lat: ping.lat,
            lon: ping.lon,
            speed_kmh: ping.speed_kmh,
        })
        .collect();
    let mut response = HttpResponse::Ok();
    if let Some(next_since) = next_since {
        response.insert_header(("X-Next-Since", next_since));
    }
    Ok(response.json(positions))
}
