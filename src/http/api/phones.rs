//! Phones as trackers: their device tokens (`POST /v1/devices`, `GET /v1/devices`,
//! `DELETE /v1/devices/{id}`) and the OsmAnd protocol they speak (`GET` and `POST
//! /v1/osmand/{token}`), as OsmAnd and Traccar Client send it.
//!
//! A phone app cannot set an `Authorization` header: the device token in the path is its
//! credential, and it reaches one vehicle's positions alone, never what an organisation's key
//! reaches. Its pings take the path of `POST /v1/positions`: the same checks
//! ([`pings::check_one`]), the same tracker call, for the device's vehicle and organisation.
//! The identifier the app sends (OsmAnd's `id`, Traccar Client's `device_id`) is ignored: the
//! token already names the device, and asking a driver to type the vehicle's id into the app
//! as well would only add a way to get it wrong.
//!
//! Units are the protocol's: OsmAnd's `speed` is in knots (as Traccar reads the protocol, and
//! as Traccar Client's query format sends it), Traccar Client 9's JSON `coords.speed` in metres
//! per second; both are kept in km/h. Traccar Client 9 writes -1 for a speed or a heading it
//! does not know, read as absent. `altitude`, `accuracy`, `hdop` and `batt` must be numbers
//! but are not kept: a ping holds a position, a speed and a heading. A driver's app may add
//! `driver_id`, `driver_state` and `remaining_driving_minutes` to OsmAnd's parameters, read
//! as `POST /v1/positions` reads them (see `docs/tachograph.md`).
//!
//! The apps read the status alone and keep sending a ping until it gets a 200, so a success
//! (or a copy of a ping already kept) answers 200 with an empty body.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::ids::{check_identifier, new_id};
use crate::http::api::access::DEVICES;
use crate::http::api::body::{content_type, first_byte, parse_json, read_json, read_limited};
use crate::http::api::dto::parse_timestamp;
use crate::http::api::error::{ApiError, ErrorBody};
use crate::http::api::{answer, base_url, blocking, listed, no_content, revoke, storage, AppState};
use crate::partners::devices::{looks_like_token, new_token, Device};
use crate::partners::keys::Caller;
use crate::tracking::pings::{self, RawPing, Rejection, MAX_VEHICLE_ID_LEN};

const MAX_NAME_CHARS: usize = 200;
const KNOTS_TO_KMH: f64 = 1.852;
const METRES_PER_SECOND_TO_KMH: f64 = 3.6;
/// A Unix time at or above this is in milliseconds, below it in seconds: Traccar's rule, as
/// some apps send one and some the other under the same `timestamp`.
const MILLISECONDS_FROM: f64 = 2_147_483_648.0;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceRequest {
    /// The vehicle the phone travels in, as shipments name it: every ping is this vehicle's.
    #[schema(example = "AB-123-CD")]
    pub vehicle_id: String,
    /// What the organisation calls the phone, 1 to 200 characters; the vehicle's id when
    /// absent.
    #[schema(example = "Marc's phone")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceCreated {
    /// Revoke the device with it.
    pub id: String,
    /// The device token, shown this once: the service keeps only a keyed digest of it.
    pub token: String,
    pub vehicle_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// The server URL to give the phone app: this service's `/v1/osmand/{token}`.
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceDto {
    pub id: String,
    pub vehicle_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// When the device was revoked; its token is refused from then on.
    pub revoked_at: Option<DateTime<Utc>>,
}

fn device_dto(device: &Device) -> DeviceDto {
    DeviceDto {
        id: device.id.clone(),
        vehicle_id: device.vehicle_id.clone(),
        name: device.name.clone(),
        created_at: device.created_at,
        revoked_at: device.revoked_at,
    }
}

/// The OsmAnd protocol's parameters, in the query string or a form body. Others are ignored.
#[derive(Debug, Clone, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct OsmandParams {
    /// The app's own identifier of the phone (`deviceid` too): ignored, the token names the
    /// device and its vehicle.
    pub id: Option<String>,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// When the fix was taken: Unix time in seconds (in milliseconds from 2^31 on), or ISO 8601
    /// with an offset. Now when absent.
    pub timestamp: Option<String>,
    /// Speed over ground, knots.
    pub speed: Option<f64>,
    /// Heading, degrees from north, 0 to 360 (`heading` too).
    pub bearing: Option<f64>,
    /// Metres; checked, not kept.
    pub altitude: Option<f64>,
    /// Metres; checked, not kept.
    pub accuracy: Option<f64>,
    /// Horizontal dilution of precision; checked, not kept.
    pub hdop: Option<f64>,
    /// Battery level, percent; checked, not kept.
    pub batt: Option<f64>,
    /// `false` or `0`: the app says the fix is not valid, and it is refused.
    pub valid: Option<String>,
    /// The driver, as `POST /v1/positions` takes it.
    pub driver_id: Option<String>,
    /// `driving`, `rest`, `other_work` or `available`.
    pub driver_state: Option<String>,
    /// The driving left before the next break is due, minutes (0 to 270).
    pub remaining_driving_minutes: Option<f64>,
}

/// What Traccar Client 9 posts (`application/json`), as the background location SDK it is
/// built on writes it: one location and the app's identifier. Fields not named here (`extras`,
/// `activity`, `odometer`...) are ignored.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TraccarClientPosition {
    pub location: TraccarClientLocation,
    /// The app's own identifier of the phone: ignored, the token names the device.
    #[schema(example = "48241179")]
    pub device_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TraccarClientLocation {
    /// ISO 8601 with an offset.
    #[schema(format = DateTime, example = "2026-11-28T08:59:00.000Z")]
    pub timestamp: String,
    pub coords: TraccarClientCoords,
    pub is_moving: Option<bool>,
    pub event: Option<String>,
    pub battery: Option<TraccarClientBattery>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TraccarClientCoords {
    #[schema(example = 45.76)]
    pub latitude: f64,
    #[schema(example = 4.84)]
    pub longitude: f64,
    /// Metres.
    pub accuracy: Option<f64>,
    /// Metres per second; -1 when unknown.
    pub speed: Option<f64>,
    /// Degrees from north; -1 when unknown.
    pub heading: Option<f64>,
    /// Metres.
    pub altitude: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TraccarClientBattery {
    /// From 0 to 1.
    pub level: Option<f64>,
    pub is_charging: Option<bool>,
}

/// Give a phone a device token for one vehicle.
#[utoipa::path(
    post,
    path = "/v1/devices",
    tag = "positions",
    request_body = DeviceRequest,
    responses(
        (status = 201, description = "The device; its token is shown this once", body = DeviceCreated),
        (status = 400, description = "Invalid request", body = ErrorBody),
    )
)]
pub async fn create_device(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(DEVICES)?;
    let asked: DeviceRequest = read_json(payload, state.settings.max_body_bytes).await?;
    let (vehicle_id, name) = asked.vehicle_and_name()?;
    let base = base_url(&request);
    answer(state, StatusCode::CREATED, move |state| {
        issue_device(state, organisation, vehicle_id, name, &base)
    })
    .await
}

impl DeviceRequest {
    /// The vehicle's id and the phone's name, trimmed and checked; the name is the vehicle's
    /// id when the request gives none.
    fn vehicle_and_name(&self) -> Result<(String, String), ApiError> {
        // Trimmed as a shipment's vehicle is, so that the two name the same truck.
        let vehicle_id = checked("vehicle_id", &self.vehicle_id, MAX_VEHICLE_ID_LEN)?;
        let name = match &self.name {
            Some(name) => checked("name", name, MAX_NAME_CHARS)?,
            None => vehicle_id.clone(),
        };
        Ok((vehicle_id, name))
    }
}

/// Makes and keeps a device of the organisation's for the vehicle. The store keeps a keyed
/// digest of its token; the token itself is in the answer, and in its URL on `base`, alone.
fn issue_device(
    state: &AppState,
    organisation: String,
    vehicle_id: String,
    name: String,
    base: &str,
) -> Result<DeviceCreated, ApiError> {
    let token = new_token();
    let device = Device {
        id: new_id("dev"),
        organisation,
        vehicle_id,
        name,
        created_at: state.tracker.now(),
        revoked_at: None,
    };
    state
        .store
        .insert_device(&device, &state.keyring.token_digest(&token))
        .map_err(storage)?;
    Ok(DeviceCreated {
        url: format!("{base}/v1/osmand/{token}"),
        token,
        id: device.id,
        vehicle_id: device.vehicle_id,
        name: device.name,
        created_at: device.created_at,
    })
}

/// The organisation's devices, revoked ones included, never their tokens.
#[utoipa::path(
    get,
    path = "/v1/devices",
    tag = "positions",
    responses((status = 200, description = "The devices, oldest first", body = Vec<DeviceDto>))
)]
pub async fn list_devices(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(DEVICES)?;
    answer(state, StatusCode::OK, move |state| {
        listed(state.store.devices(&organisation), device_dto)
    })
    .await
}

/// Revoke a device: its token is refused from now on.
#[utoipa::path(
    delete,
    path = "/v1/devices/{id}",
    tag = "positions",
    params(("id" = String, Path, description = "The device's id")),
    responses(
        (status = 204, description = "Revoked (again, if it already was)"),
        (status = 404, description = "No such device in this organisation", body = ErrorBody),
    )
)]
pub async fn revoke_device(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(DEVICES)?;
    let store = state.store.clone();
    let now = state.tracker.now();
    no_content(move || {
        let mut device = store
            .device(&organisation, &id)
            .map_err(storage)?
            .ok_or(ApiError::NotFound)?;
        if revoke(&mut device.revoked_at, now) {
            store.save_device(&device).map_err(storage)?;
        }
        Ok(())
    })
    .await
}

/// One position from a phone, OsmAnd's way: query parameters (no key, the token in the path).
#[utoipa::path(
    get,
    path = "/v1/osmand/{token}",
    tag = "positions",
    params(("token" = String, Path, description = "The device token"), OsmandParams),
    responses(
        (status = 200, description = "Kept (or kept before): an empty body"),
        (status = 400, description = "A parameter is missing or refused, named by `field`", body = ErrorBody),
        (status = 401, description = "Unknown or revoked device token", body = ErrorBody),
        (status = 429, description = "Over the device's rate", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub async fn osmand_get(
    state: web::Data<AppState>,
    token: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let device = device_of(&state, token.into_inner()).await?;
    let fix = Params::of_query(&request)?.fix(state.tracker.now())?;
    keep(state, device, fix, Protocol::Osmand).await
}

/// One position from a phone: OsmAnd's parameters as a form (or in the query string), or
/// Traccar Client 9's JSON.
#[utoipa::path(
    post,
    path = "/v1/osmand/{token}",
    tag = "positions",
    params(("token" = String, Path, description = "The device token")),
    request_body(
        description = "OsmAnd's parameters as `application/x-www-form-urlencoded` (or in the query \
                       string, the body then empty), or Traccar Client 9's `application/json`",
        content(
            (OsmandParams = "application/x-www-form-urlencoded"),
            (TraccarClientPosition = "application/json")
        )
    ),
    responses(
        (status = 200, description = "Kept (or kept before): an empty body"),
        (status = 400, description = "A field is missing or refused, named by `field`", body = ErrorBody),
        (status = 401, description = "Unknown or revoked device token", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 429, description = "Over the device's rate", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub async fn osmand_post(
    state: web::Data<AppState>,
    token: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let device = device_of(&state, token.into_inner()).await?;
    let body = read_limited(payload, state.settings.max_body_bytes).await?;
    let now = state.tracker.now();
    let (fix, protocol) = if is_json(&request, &body) {
        let posted: TraccarClientPosition = parse_json(&body)?;
        (posted.location.fix()?, Protocol::TraccarClient)
    } else {
        let mut params = Params::of_query(&request)?;
        params.extend_with_form(&body)?;
        (params.fix(now)?, Protocol::Osmand)
    };
    keep(state, device, fix, protocol).await
}

/// The device a token opens, within its rate. A device's bucket is keyed by its id, so that
/// the limiter holds one entry per device, not one per token a stranger tries.
async fn device_of(state: &web::Data<AppState>, token: String) -> Result<Device, ApiError> {
    let refused = |message: &str| ApiError::Unauthorized {
        message: message.to_owned(),
        missing: false,
    };
    if !looks_like_token(&token) {
        return Err(refused("unknown device token"));
    }
    let digest = state.keyring.token_digest(&token);
    let store = state.store.clone();
    let device = blocking(move || store.device_by_token(&digest).map_err(storage))
        .await?
        .ok_or_else(|| refused("unknown device token"))?;
    if device.revoked_at.is_some() {
        return Err(refused("this device token was revoked"));
    }
    state.rate_limits.check(&format!("device:{}", device.id))?;
    Ok(device)
}

/// A position as a phone reported it, in the units a ping keeps, and what the driver's app
/// said of the driver.
struct Fix {
    at: DateTime<Utc>,
    lat: f64,
    lon: f64,
    speed_kmh: Option<f64>,
    heading: Option<f64>,
    driver_id: Option<String>,
    driver_state: Option<String>,
    remaining_driving_minutes: Option<f64>,
}

impl Fix {
    /// The fix as a ping of `vehicle_id`, in the form `POST /v1/positions` reads.
    fn ping_of<'a>(&self, vehicle_id: &'a str) -> RawPing<'a> {
        RawPing {
            vehicle_id: Cow::Borrowed(vehicle_id),
            timestamp: Cow::Owned(self.at.to_rfc3339_opts(SecondsFormat::Millis, true)),
            lat: self.lat,
            lon: self.lon,
            speed_kmh: self.speed_kmh,
            heading: self.heading,
            driver_id: self.driver_id.clone(),
            driver_state: self.driver_state.clone(),
            remaining_driving_minutes: self.remaining_driving_minutes,
        }
    }
}

/// The wire format a fix came in, for naming a refused field as the app wrote it.
#[derive(Clone, Copy)]
enum Protocol {
    Osmand,
    TraccarClient,
}

impl Protocol {
    /// The request's name of a field the ping's checks refused.
    fn field(self, ping_field: &str) -> &'static str {
        match (self, ping_field) {
            (Self::Osmand, "lat") => "lat",
            (Self::Osmand, "lon") => "lon",
            (Self::Osmand, "speed_kmh") => "speed",
            (Self::Osmand, "heading") => "bearing",
            (Self::Osmand, "driver_id") => "driver_id",
            (Self::Osmand, "driver_state") => "driver_state",
            (Self::Osmand, "remaining_driving_minutes") => "remaining_driving_minutes",
            (Self::Osmand, _) => "timestamp",
            (Self::TraccarClient, "lat") => "location.coords.latitude",
            (Self::TraccarClient, "lon") => "location.coords.longitude",
            (Self::TraccarClient, "speed_kmh") => "location.coords.speed",
            (Self::TraccarClient, "heading") => "location.coords.heading",
            (Self::TraccarClient, _) => "location.timestamp",
        }
    }
}

/// Checks the fix as `POST /v1/positions` checks a ping, and gives it to the tracker as the
/// device's vehicle's.
async fn keep(
    state: web::Data<AppState>,
    device: Device,
    fix: Fix,
    protocol: Protocol,
) -> Result<HttpResponse, ApiError> {
    let limits = state.tracker.ping_limits();
    // A phone back from a long time offline sends its backlog oldest first, and sends again
    // whatever was not answered 200: a 400 for a ping too old to keep would hold every later
    // one behind it. `POST /v1/positions` answers 200 for such a ping too, listing it.
    let too_old = fix.at.timestamp_millis() < limits.now.timestamp_millis() - limits.max_age_ms;
    blocking(move || {
        let batch = pings::check_one(fix.ping_of(&device.vehicle_id), &limits);
        let rejected = batch.rejected.first().cloned();
        // Through the tracker even when refused, so that the pings' counts include it.
        state.tracker.ingest(&device.organisation, batch)?;
        let Some(rejection) = rejected else {
            return Ok(());
        };
        if too_old {
            tracing::info!(
                message = "Phone ping older than the accepted age dropped.",
                device = %device.id,
                at = %fix.at
            );
            return Ok(());
        }
        Err(refusal(&device, rejection, protocol))
    })
    .await?;
    Ok(HttpResponse::Ok().finish())
}

/// The error for a fix the checks refused, its field named as the app wrote it.
fn refusal(device: &Device, rejection: Rejection, protocol: Protocol) -> ApiError {
    let field = match rejection.field {
        // The vehicle's id was checked when the device was made: only a rule changed since
        // then can refuse it, and the phone can do nothing about it.
        Some("vehicle_id") => {
            return ApiError::Internal(format!(
                "device {} has a vehicle id the pings refuse: {}",
                device.id, rejection.reason
            ))
        }
        Some(field) => protocol.field(field),
        None => "",
    };
    ApiError::out_of_range(field, rejection.reason)
}

/// Whether a POST carries Traccar Client's JSON rather than a form: by its Content-Type, or by
/// its first byte when it names none.
fn is_json(request: &HttpRequest, body: &[u8]) -> bool {
    let essence = content_type(request).split(';').next().unwrap_or("").trim();
    if essence.is_empty() {
        return first_byte(body) == Some(b'{');
    }
    essence.eq_ignore_ascii_case("application/json")
}

impl TraccarClientLocation {
    fn fix(&self) -> Result<Fix, ApiError> {
        let coords = &self.coords;
        // The SDK writes -1 for what the phone does not know.
        let known = |value: Option<f64>| value.filter(|value| *value >= 0.0);
        Ok(Fix {
            at: parse_timestamp(&self.timestamp, "location.timestamp")?.with_timezone(&Utc),
            lat: coords.latitude,
            lon: coords.longitude,
            speed_kmh: known(coords.speed).map(|speed| speed * METRES_PER_SECOND_TO_KMH),
            heading: known(coords.heading),
            driver_id: None,
            driver_state: None,
            remaining_driving_minutes: None,
        })
    }
}

/// OsmAnd's parameters as they came, the query string's first, then the form body's; an
/// empty value counts as absent.
struct Params(Vec<(String, String)>);

impl Params {
    fn of_query(request: &HttpRequest) -> Result<Self, ApiError> {
        Ok(Self(decoded(request.query_string())?))
    }

    fn extend_with_form(&mut self, body: &[u8]) -> Result<(), ApiError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::BadPayload("the form is not UTF-8".into()))?;
        self.0.extend(decoded(text)?);
        Ok(())
    }

    /// The first value of one of `names`, when it is not empty.
    fn text(&self, names: &[&str]) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, value)| names.contains(&name.as_str()) && !value.trim().is_empty())
            .map(|(_, value)| value.trim())
    }

    fn number(&self, field: &str, names: &[&str]) -> Result<Option<f64>, ApiError> {
        let Some(text) = self.text(names) else {
            return Ok(None);
        };
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(Some(value)),
            _ => Err(ApiError::invalid_value(
                field,
                format!("{field} must be a number, not {text:?}"),
            )),
        }
    }

    fn required(&self, field: &str) -> Result<f64, ApiError> {
        self.number(field, &[field])?
            .ok_or_else(|| ApiError::MissingField {
                field: field.into(),
                message: format!("{field} is required"),
            })
    }

    fn fix(&self, now: DateTime<Utc>) -> Result<Fix, ApiError> {
        let lat = self.required("lat")?;
        let lon = self.required("lon")?;
        let speed_knots = self.number("speed", &["speed"])?;
        let heading = self.number("bearing", &["bearing", "heading"])?;
        for field in ["altitude", "accuracy", "hdop", "batt"] {
            self.number(field, &[field])?;
        }
        if let Some(valid) = self.text(&["valid"]) {
            if valid.eq_ignore_ascii_case("false") || valid == "0" {
                return Err(ApiError::out_of_range(
                    "valid",
                    "the app marks this fix invalid",
                ));
            }
        }
        Ok(Fix {
            at: self.timestamp(now)?,
            lat,
            lon,
            speed_kmh: speed_knots.map(|knots| knots * KNOTS_TO_KMH),
            heading,
            driver_id: self.text(&["driver_id"]).map(str::to_owned),
            driver_state: self.text(&["driver_state"]).map(str::to_owned),
            remaining_driving_minutes: self
                .number("remaining_driving_minutes", &["remaining_driving_minutes"])?,
        })
    }

    /// The fix's time: from Unix seconds or milliseconds, or ISO 8601; now when the app sends
    /// none, as the protocol has it.
    fn timestamp(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
        let Some(text) = self.text(&["timestamp"]) else {
            return Ok(now);
        };
        if let Ok(unix) = text.parse::<f64>() {
            let millis = if unix.abs() >= MILLISECONDS_FROM {
                unix
            } else {
                unix * 1000.0
            };
            return DateTime::from_timestamp_millis(millis.round() as i64)
                .filter(|_| millis.is_finite())
                .ok_or_else(|| {
                    ApiError::out_of_range("timestamp", "timestamp is not a time a phone can be at")
                });
        }
        // A `+` left unescaped in a query string arrives as a space, and no ISO 8601 time has
        // one after its `T`.
        let repaired = match text.split_once('T') {
            Some((date, time)) => format!("{date}T{}", time.replace(' ', "+")),
            None => text.to_owned(),
        };
        Ok(parse_timestamp(&repaired, "timestamp")?.with_timezone(&Utc))
    }
}

/// `name=value` pairs, percent- and `+`-decoded.
fn decoded(text: &str) -> Result<Vec<(String, String)>, ApiError> {
    web::Query::<Vec<(String, String)>>::from_query(text)
        .map(web::Query::into_inner)
        .map_err(|error| ApiError::BadPayload(format!("unreadable parameters: {error}")))
}

/// A name the caller chose, trimmed and held to [`check_identifier`].
fn checked(field: &str, text: &str, max_chars: usize) -> Result<String, ApiError> {
    let text = text.trim();
    check_identifier(text, max_chars)
        .map_err(|error| ApiError::out_of_range(field, format!("{field} {error}")))?;
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        )
    }

    fn stamp(fix: &Fix) -> String {
        fix.at.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    fn now() -> DateTime<Utc> {
        "2026-11-28T09:00:00Z".parse().unwrap()
    }

    #[test]
    fn unix_seconds_milliseconds_and_iso_times_are_the_same_instant() {
        let expected = "2026-11-28T08:59:00.000Z";
        for timestamp in [
            "1795856340",
            "1795856340000",
            "1795856340.0",
            "2026-11-28T09:59:00+01:00",
            // The `+` of an offset left unescaped in a query string.
            "2026-11-28T09:59:00 01:00",
        ] {
            let fix = params(&[("lat", "45.76"), ("lon", "4.84"), ("timestamp", timestamp)])
                .fix(now())
                .unwrap();
            assert_eq!(stamp(&fix), expected, "{timestamp}");
        }
        let fix = params(&[("lat", "45.76"), ("lon", "4.84")])
            .fix(now())
            .unwrap();
        assert_eq!(stamp(&fix), "2026-11-28T09:00:00.000Z");
    }

    #[test]
    fn osmand_speed_is_in_knots_and_a_bad_field_is_named() {
        let fix = params(&[
            ("lat", "45.76"),
            ("lon", "4.84"),
            ("speed", "10"),
            ("heading", "90"),
        ])
        .fix(now())
        .unwrap();
        assert!((fix.speed_kmh.unwrap() - 18.52).abs() < 1e-9);
        assert_eq!(fix.heading, Some(90.0));
        let field = |pairs: &[(&str, &str)]| {
            params(pairs)
                .fix(now())
                .err()
                .and_then(|error| error.field().map(str::to_owned))
        };
        assert_eq!(field(&[("lon", "4.84")]).as_deref(), Some("lat"));
        assert_eq!(
            field(&[("lat", "north"), ("lon", "4.84")]).as_deref(),
            Some("lat")
        );
        assert_eq!(
            field(&[("lat", "45.76"), ("lon", "4.84"), ("batt", "full")]).as_deref(),
            Some("batt")
        );
        assert_eq!(
            field(&[
                ("lat", "45.76"),
                ("lon", "4.84"),
                ("timestamp", "yesterday")
            ])
            .as_deref(),
            Some("timestamp")
        );
        assert_eq!(
            field(&[("lat", "45.76"), ("lon", "4.84"), ("valid", "false")]).as_deref(),
            Some("valid")
        );
    }

    #[test]
    fn a_driver_s_app_may_add_the_tachograph_s_word_to_osmand_s_parameters() {
        use crate::tracking::driver::CabActivity;

        let limits = pings::PingLimits {
            now: now(),
            future_tolerance_ms: 300_000,
            max_age_ms: 3_600_000,
            max_speed_kmh: 200.0,
            max_pings: 1,
        };
        let fix = params(&[
            ("lat", "45.76"),
            ("lon", "4.84"),
            ("driver_id", "FRD0001"),
            ("driver_state", "rest"),
            ("remaining_driving_minutes", "30"),
        ])
        .fix(now())
        .unwrap();
        let batch = pings::check_one(fix.ping_of("AB-1"), &limits);
        assert_eq!(batch.cab.len(), 1, "{:?}", batch.rejected);
        assert_eq!(batch.cab[0].activity, Some(CabActivity::Rest));
        assert_eq!(batch.cab[0].remaining_driving_minutes, Some(30.0));
        assert_eq!(batch.cab[0].driver_id.as_deref(), Some("FRD0001"));
        let asleep = params(&[
            ("lat", "45.76"),
            ("lon", "4.84"),
            ("driver_state", "asleep"),
        ])
        .fix(now())
        .unwrap();
        let batch = pings::check_one(asleep.ping_of("AB-1"), &limits);
        let refused = batch.rejected[0]
            .field
            .map(|field| Protocol::Osmand.field(field));
        assert_eq!(refused, Some("driver_state"));
        let soon = params(&[
            ("lat", "45.76"),
            ("lon", "4.84"),
            ("remaining_driving_minutes", "soon"),
        ])
        .fix(now())
        .err()
        .and_then(|error| error.field().map(str::to_owned));
        assert_eq!(soon.as_deref(), Some("remaining_driving_minutes"));
    }

    #[test]
    fn traccar_client_speed_is_in_metres_per_second_and_minus_one_is_unknown() {
        let posted: TraccarClientPosition = serde_json::from_str(
            r#"{"location":{"timestamp":"2026-11-28T08:59:00.000Z","coords":{"latitude":45.76,
            "longitude":4.84,"accuracy":5,"speed":25,"heading":-1,"altitude":170},
            "is_moving":true,"odometer":0,"event":"motionchange",
            "battery":{"level":0.8,"is_charging":false},"activity":{"type":"in_vehicle"},
            "extras":{},"_":"&id=48241179&lat=45.76&lon=4.84&timestamp=2026-11-28T08:59:00.000Z&"},
            "device_id":"48241179"}"#,
        )
        .unwrap();
        let fix = posted.location.fix().unwrap();
        assert_eq!(stamp(&fix), "2026-11-28T08:59:00.000Z");
        assert!((fix.speed_kmh.unwrap() - 90.0).abs() < 1e-9);
        assert_eq!(fix.heading, None);
    }
}
