//! The OpenAPI 3.1 document, generated from the handlers' annotations and the wire types.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::OpenApi;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::Modify;

use crate::api::{admin, dto, error, eta, health, history, hooks, models, operations, tracking};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "etape",
        description = "Truck arrival-time predictions: driving rules (EU 561/2006), French traffic bans, \
                       loading times, and a learned model on pooled carrier history."
    ),
    paths(
        eta::eta, eta::eta_batch, operations::operations,
        tracking::create_shipment, tracking::list_shipments, tracking::get_shipment,
        tracking::cancel_shipment, tracking::post_event, tracking::get_eta,
        tracking::get_eta_history, tracking::post_positions, tracking::vehicle_positions,
        hooks::create_webhook, hooks::list_webhooks, hooks::delete_webhook,
        hooks::list_deliveries,
        admin::create_organisation, admin::list_organisations, admin::create_key,
        admin::list_keys, admin::revoke_key, models::list_models, models::activate,
        models::train, models::job,
        history::upload, history::list_uploads, history::export, history::erase, history::me,
        history::set_consent, history::report,
        health::healthz, health::readyz, health::metrics, openapi
    ),
    components(schemas(error::ErrorBody, dto::EtaRequest, dto::EtaResponse, dto::BatchRequest, dto::BatchResponse)),
    modifiers(&BearerKeys),
    tags(
        (name = "eta", description = "Arrival estimates"),
        (name = "shipments", description = "Shipments followed live, their ETAs and stop events"),
        (name = "positions", description = "GPS pings"),
        (name = "webhooks", description = "Signed notifications to the TMS"),
        (name = "admin", description = "Organisations, API keys and models"),
        (name = "history", description = "Partners' trip histories and consent"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// Every `/v1` route takes `Authorization: Bearer <key>`.
struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key: etp_<id>_<secret>"))
                    .build(),
            ),
        );
    }
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the document serialises")
    })
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object))
)]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}
