//! Schemas of what the handlers read or write without a Rust type of their own: the ping
//! bodies (parsed by `tracking::pings` straight from bytes), the webhook payloads (built by the
//! outbox as it fans a notice out), and the OpenAPI document itself. None of these types is
//! built: each describes, field for field, what the code that does the reading or writing
//! expects or makes, and derives `Serialize` only for the `serde` attributes (names, untagged)
//! its schema follows. The webhooks go in the document's OpenAPI 3.1 `webhooks` section, which
//! utoipa does not model, so [`with_webhooks`] writes it beside the generated document.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{OpenApi, Ref, RefOr};
use utoipa::ToSchema;

use crate::adapters::webhooks::EVENTS;
use crate::http::api::estimates::{LiveDelayReason, LiveRisk, LiveStop};
use crate::http::api::tracking::HorizonAccuracyDto;

/// One GPS ping, as a JSON array item or an NDJSON line; CSV names the same columns.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PingBody {
    /// The caller's own identifier of the truck (at most 64 characters).
    #[schema(example = "FR-AB-123-CD")]
    pub vehicle_id: String,
    /// RFC 3339, with its offset.
    #[schema(example = "2026-12-01T08:15:00+01:00")]
    pub timestamp: DateTime<Utc>,
    #[schema(minimum = -90, maximum = 90, example = 45.76)]
    pub lat: f64,
    #[schema(minimum = -180, maximum = 180, example = 4.84)]
    pub lon: f64,
    #[schema(minimum = 0)]
    pub speed_kmh: Option<f64>,
    /// Degrees clockwise from north.
    #[schema(minimum = 0, maximum = 360)]
    pub heading: Option<f64>,
    /// The driver, as the tachograph's card or the telematics unit names them (at most 64
    /// characters). A clock carried from the vehicle's previous shipment is not taken for
    /// another driver.
    #[schema(example = "FRD0000012345678")]
    pub driver_id: Option<String>,
    /// The tachograph's activity: `driving`, `rest`, `other_work` or `available`. From the
    /// moment it began, it replaces what the speeds say of the driver (see
    /// `docs/tachograph.md`).
    #[schema(example = "driving")]
    pub driver_state: Option<String>,
    /// The driving the tachograph says is left before the next 45-minute break is due: 4 h 30
    /// less its continuous driving time. It sets the estimate's driving since the last break.
    #[schema(minimum = 0, maximum = 270, example = 95)]
    pub remaining_driving_minutes: Option<f64>,
}

/// What Traccar's JSON forwarding posts (`forward.type` `json`): one position and its device.
/// Both carry more fields than these, which are ignored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TraccarForwardBody {
    pub position: TraccarPositionBody,
    pub device: TraccarDeviceBody,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraccarPositionBody {
    pub fix_time: DateTime<Utc>,
    pub latitude: f64,
    pub longitude: f64,
    /// Knots, as Traccar keeps it.
    pub speed: Option<f64>,
    pub course: Option<f64>,
    /// A fix Traccar marks invalid is rejected; `true` when absent.
    pub valid: Option<bool>,
    /// The position's attributes; those read are named here, the others are ignored.
    pub attributes: Option<TraccarAttributesBody>,
}

/// The attributes of a Traccar position that are read, as a ping's `driver_id`, `driver_state`
/// and `remaining_driving_minutes`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraccarAttributesBody {
    /// Traccar's own: the driver its protocol decoder read (iButton, RFID or tachograph card).
    pub driver_unique_id: Option<String>,
    /// Set by a computed attribute from the tracker's tachograph elements.
    pub driver_state: Option<String>,
    /// Set by a computed attribute from the tracker's tachograph elements.
    #[schema(minimum = 0, maximum = 270)]
    pub remaining_driving_minutes: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraccarDeviceBody {
    /// Becomes the ping's `vehicle_id`.
    pub unique_id: String,
}

/// An `application/json` positions body: an array of pings, or one Traccar position.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum PositionsJson {
    Pings(Vec<PingBody>),
    Traccar(TraccarForwardBody),
}

/// The shipment a webhook payload is about.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookShipment {
    pub id: String,
    /// The caller's reference, as registered.
    pub reference: String,
    pub vehicle_id: String,
}

/// What every webhook payload carries besides its `event` and `data`, which each event's
/// payload schema fixes: a generator merging the two parts would find `event` declared twice.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookEnvelope {
    /// The event's own id (`evt_...`); the delivery's is the `webhook-id` header.
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub shipment: WebhookShipment,
}

/// `arrived` and `departed`: the stop and when.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StopEventData {
    pub stop_index: usize,
    pub stop_id: String,
    pub at: DateTime<Utc>,
    pub source: WebhookEventSource,
}

/// Who said a stop event happened: the pings (`gps`) or the caller (`manual`).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEventSource {
    Gps,
    Manual,
}

/// `delivered`: when, and how good the live estimates were by horizon.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveredData {
    pub delivered_at: Option<DateTime<Utc>>,
    pub accuracy: Vec<HorizonAccuracyDto>,
}

/// `eta_changed`: every stop's new estimate, as `GET /v1/shipments/{id}/eta` gives it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EtaChangedData {
    pub stops: Vec<LiveStop>,
    pub as_of: DateTime<Utc>,
    /// Which parts of the plan moved the last stop's arrival since the previous estimate, the
    /// largest first; absent when the previous estimate's plan is not known (the first
    /// estimate after a restart).
    pub delay_reasons: Option<Vec<LiveDelayReason>>,
}

/// `late_risk_changed`: the stops whose late risk is not what it was.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LateRiskChangedData {
    pub changed: Vec<RiskChangeDto>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RiskChangeDto {
    pub stop_index: usize,
    pub stop_id: String,
    pub from: Option<LiveRisk>,
    pub to: Option<LiveRisk>,
    pub late_probability: Option<f64>,
}

/// The OpenAPI 3.1 document `GET /openapi.json` answers, as far as a client reads it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpenApiDocument {
    #[schema(example = "3.1.0")]
    pub openapi: String,
    pub info: OpenApiInfo,
    pub paths: BTreeMap<String, OpenApiPathItem>,
    pub webhooks: BTreeMap<String, OpenApiPathItem>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpenApiInfo {
    pub title: String,
    pub version: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpenApiPathItem {
    pub get: Option<OpenApiOperation>,
    pub post: Option<OpenApiOperation>,
    pub put: Option<OpenApiOperation>,
    pub delete: Option<OpenApiOperation>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpenApiOperation {
    #[serde(rename = "operationId")]
    pub operation_id: Option<String>,
    pub summary: Option<String>,
    pub tags: Option<Vec<String>>,
    pub responses: BTreeMap<String, OpenApiResponse>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpenApiResponse {
    pub description: String,
}

/// Each event's `data` schema, by the name the webhook's `events` list gives it.
fn data_schema(event: &str) -> &'static str {
    match event {
        "arrived" | "departed" => "StopEventData",
        "delivered" => "DeliveredData",
        "eta_changed" => "EtaChangedData",
        "late_risk_changed" => "LateRiskChangedData",
        other => panic!("the event {other} has no payload schema"),
    }
}

fn summary(event: &str) -> &'static str {
    match event {
        "arrived" => "The truck reached a stop",
        "departed" => "The truck left a stop",
        "delivered" => "The shipment's last stop was reached",
        "eta_changed" => "A stop's estimate moved by the webhook's `min_change_minutes` or more",
        "late_risk_changed" => "A stop's late risk changed",
        other => panic!("the event {other} has no summary"),
    }
}

fn header(name: &str, description: &str, deprecated: bool, example: &str) -> Value {
    json!({
        "name": name,
        "in": "header",
        "required": true,
        "deprecated": deprecated,
        "description": description,
        "schema": {"type": "string"},
        "example": example,
    })
}

/// The document as served: utoipa's, in its own order, then the `webhooks` section, one entry
/// per event, whose payload schemas (the envelope, `event` fixed, `data` typed) join the
/// components.
pub fn with_webhooks(mut document: OpenApi) -> String {
    let headers = delivery_headers();
    let components = document.components.get_or_insert_with(Default::default);
    let mut webhooks = Map::new();
    for event in EVENTS {
        let name = format!("{}Webhook", pascal_case(event));
        components
            .schemas
            .insert(name.clone(), payload_schema(event));
        webhooks.insert(event.to_owned(), webhook(event, &name, &headers));
    }
    let served = Served {
        document: &document,
        webhooks,
    };
    serde_json::to_string_pretty(&served).expect("the document serialises")
}

/// utoipa models no `webhooks`: the section goes beside its document, flattened, rather than
/// through a `serde_json::Value`, whose map would sort every schema's properties.
#[derive(Serialize)]
struct Served<'a> {
    #[serde(flatten)]
    document: &'a OpenApi,
    webhooks: Map<String, Value>,
}

/// The headers of every delivery, as `adapters::webhooks` sends them: Standard Webhooks 1.0's,
/// then the `X-Etape-*` of earlier versions, deprecated.
fn delivery_headers() -> Vec<Value> {
    vec![
        header(
            "webhook-id",
            "The delivery's id, the same on every retry and replay: deduplicate on it",
            false,
            "dlv_2b5f0c9e7a",
        ),
        header(
            "webhook-timestamp",
            "Unix seconds of this attempt; refuse one far from your clock",
            false,
            "1796029200",
        ),
        header(
            "webhook-signature",
            "Space-separated `v1,<base64>` HMAC-SHA256 signatures of `{webhook-id}.{webhook-timestamp}.{body}` \
             with the secret after its `whsec_` prefix, base64-decoded; two during a rotation's grace",
            false,
            "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
        ),
        header(
            "X-Etape-Signature",
            "Deprecated, for one version: `sha256=<hex>` HMAC of the body alone",
            true,
            "sha256=3f2a...",
        ),
        header("X-Etape-Event", "Deprecated: the payload's `event`", true, "arrived"),
        header("X-Etape-Delivery", "Deprecated: `webhook-id`", true, "dlv_2b5f0c9e7a"),
        header("X-Etape-Attempt", "Deprecated: the attempt, from 1", true, "1"),
    ]
}

/// The envelope with `event` fixed to this one and `data` its schema.
fn payload_schema(event: &str) -> RefOr<Schema> {
    let fixed = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "event",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([event])),
        )
        .required("event")
        .property("data", Ref::from_schema_name(data_schema(event)))
        .required("data");
    AllOfBuilder::new()
        .description(Some(format!("The body of an `{event}` delivery.")))
        .item(Ref::from_schema_name("WebhookEnvelope"))
        .item(fixed)
        .into()
}

/// The Path Item of one event: what the service posts to the receiver, and what it makes of
/// the answer.
fn webhook(event: &str, payload: &str, headers: &[Value]) -> Value {
    json!({"post": {
        "tags": ["webhooks"],
        "operationId": format!("webhook_{event}"),
        "summary": summary(event),
        "description": "Posted to each enabled webhook subscribed to the event, retried with backoff \
                        until a 2xx answer; a 410 disables the webhook.",
        "parameters": headers,
        "requestBody": {
            "required": true,
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{payload}")}}},
        },
        "responses": {
            "200": {"description": "Received (any 2xx will do)"},
            "410": {"description": "Gone: the webhook is disabled and gets no more deliveries"},
        },
    }})
}

fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut letters = word.chars();
            letters
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + letters.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_a_payload_schema_and_a_webhook() {
        let served = with_webhooks(OpenApi::default());
        let document: Value = serde_json::from_str(&served).unwrap();
        for event in EVENTS {
            assert!(document["webhooks"][event]["post"].is_object(), "{event}");
        }
        let schemas = &document["components"]["schemas"];
        assert_eq!(
            schemas["EtaChangedWebhook"]["allOf"][1]["properties"]["event"]["enum"],
            json!(["eta_changed"])
        );
        assert!(schemas["LateRiskChangedWebhook"].is_object());
    }
}
