//! `GET /v1/events`: a Server-Sent Events stream of what changes in the caller's organisation,
//! so that a screen of the whole fleet needs no request per shipment.
//!
//! Authentication is the `Authorization: Bearer` key of every `/v1` route. A browser's
//! `EventSource` cannot send that header, so the dashboard reads the stream with `fetch` and
//! the body's reader instead: the key never goes into a URL (which access logs, proxies and
//! the browser's history keep), and no second credential such as a ticket exists to leak.
//!
//! Replicas: the tracker publishes in-process. With a shared PostgreSQL store only the replica
//! holding the lease recomputes, so only a stream opened on it carries `estimate` events; a
//! stream on another replica carries the `status` changes made through requests to that one
//! and the keep-alives. A client behind a load balancer keeps its state fresh by reloading the
//! list with `include=estimate` now and then (the dashboard does every 30 s) or should be
//! routed to the lease holder.

use std::convert::Infallible;
use std::time::Duration;

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tokio::time::{Interval, MissedTickBehavior};
use utoipa::ToSchema;

use crate::domain::bans::BanRules;
use crate::http::api::access::FLEET;
use crate::http::api::error::{ApiError, ErrorBody};
use crate::http::api::estimates::LiveEstimate;
use crate::http::api::AppState;
use crate::partners::keys::Caller;
use crate::tracking::live::LiveEvent;

/// A comment line this often, so that proxies and the client see the connection alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `event: estimate`: a shipment's new current estimate.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EstimateEvent {
    pub shipment_id: String,
    pub estimate: LiveEstimate,
}

/// `event: status`: a shipment's new status.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusEvent {
    pub shipment_id: String,
    /// `planned`, `in_transit`, `delivered` or `cancelled`.
    pub status: String,
}

/// `event: lagged`: the client read too slowly and `missed` events were dropped; it should
/// reload the list with `include=estimate`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LaggedEvent {
    pub missed: u64,
}

/// The `data:` line of each event, named by its `event:` line.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum StreamEvent {
    Estimate(Box<EstimateEvent>),
    Status(StatusEvent),
    Lagged(LaggedEvent),
}

/// Estimates and status changes of the organisation's shipments, as they happen.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "shipments",
    responses(
        (status = 200, description = "A Server-Sent Events stream: `estimate`, `status` and `lagged` events, \
                                      their `data` one line of JSON, and a `: keep-alive` comment every 15 s",
            body = StreamEvent, content_type = "text/event-stream"),
        (status = 404, description = "This service publishes no events", body = ErrorBody),
    )
)]
pub async fn events(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(FLEET)?;
    let receiver = state.tracker.subscribe().ok_or(ApiError::NotFound)?;
    // The first tick is at once: its comment sends the headers, so the client knows it is in.
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let feed = Feed {
        receiver,
        organisation,
        keep_alive,
        bans: state.training_rules.bans().rules().clone(),
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        // nginx buffers a response unless told not to: the events would arrive in bursts.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(futures_util::stream::unfold(feed, next_frame)))
}

struct Feed {
    receiver: Receiver<LiveEvent>,
    organisation: String,
    keep_alive: Interval,
    /// To word each estimate's explanation as `/eta` does.
    bans: BanRules,
}

/// The next frame for the client; the stream ends only when the tracker does. A client that
/// goes away drops the stream, and its subscription with it.
async fn next_frame(mut feed: Feed) -> Option<(Result<Bytes, Infallible>, Feed)> {
    loop {
        let sent = tokio::select! {
            _ = feed.keep_alive.tick() => Some(Bytes::from_static(b": keep-alive\n\n")),
            received = feed.receiver.recv() => match received {
                Ok(event) => frame_of(&feed, &event),
                Err(RecvError::Lagged(missed)) => {
                    Some(frame("lagged", &StreamEvent::Lagged(LaggedEvent { missed })))
                }
                Err(RecvError::Closed) => return None,
            },
        };
        if let Some(bytes) = sent {
            return Some((Ok(bytes), feed));
        }
    }
}

/// The event as the organisation's stream sends it; another organisation's is not sent.
fn frame_of(feed: &Feed, event: &LiveEvent) -> Option<Bytes> {
    if event.organisation() != feed.organisation {
        return None;
    }
    Some(match event {
        LiveEvent::Estimate { snapshot, .. } => frame(
            "estimate",
            &StreamEvent::Estimate(Box::new(EstimateEvent {
                shipment_id: snapshot.shipment_id.clone(),
                estimate: LiveEstimate::explained(snapshot, &feed.bans),
            })),
        ),
        LiveEvent::Status {
            shipment_id,
            status,
            ..
        } => frame(
            "status",
            &StreamEvent::Status(StatusEvent {
                shipment_id: shipment_id.clone(),
                status: status.as_str().to_owned(),
            }),
        ),
    })
}

/// One event: compact JSON holds no line break, so its data is one `data:` line.
fn frame(name: &str, data: &StreamEvent) -> Bytes {
    let json = serde_json::to_string(data).expect("an event serialises");
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}
