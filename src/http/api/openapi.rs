//! The OpenAPI 3.1 document, generated from the handlers' annotations and the wire types.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::OpenApi;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, ResponseBuilder, Type};
use utoipa::Modify;

use crate::http::api::{
    admin, dto, error, eta, events, health, history, hooks, models, operations, sharing, tracking,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "etape",
        description = "Truck arrival-time predictions: driving rules (EU 561/2006), the traffic bans of seven countries, \
                       loading times, and a learned model on pooled carrier history."
    ),
    paths(
        eta::eta, eta::eta_batch, operations::operations,
        tracking::create_shipment, tracking::list_shipments, tracking::get_shipment,
        tracking::cancel_shipment, tracking::post_event, tracking::get_eta,
        tracking::get_eta_history, tracking::post_positions, tracking::vehicle_positions,
        crate::http::api::phones::create_device, crate::http::api::phones::list_devices,
        crate::http::api::phones::revoke_device, crate::http::api::phones::osmand_get,
        crate::http::api::phones::osmand_post,
        sharing::create_share, sharing::revoke_share, sharing::public_page, sharing::public_eta,
        events::events,
        hooks::create_webhook, hooks::list_webhooks, hooks::get_webhook, hooks::delete_webhook,
        hooks::rotate_secret, hooks::list_deliveries, hooks::replay_delivery,
        admin::create_organisation, admin::list_organisations, admin::create_key,
        admin::list_keys, admin::revoke_key, models::list_models, models::activate,
        models::train, models::job,
        history::upload, history::list_uploads, history::export, history::erase, history::me,
        history::set_consent, history::report,
        health::healthz, health::readyz, health::metrics, openapi
    ),
    components(schemas(error::ErrorBody, dto::EtaRequest, dto::EtaResponse, dto::BatchRequest, dto::BatchResponse,
        // The webhook payloads' parts, which no path names: `contract::with_webhooks` refers to them.
        crate::http::api::contract::WebhookEnvelope, crate::http::api::contract::StopEventData,
        crate::http::api::contract::DeliveredData, crate::http::api::contract::EtaChangedData,
        crate::http::api::contract::LateRiskChangedData)),
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

/// Every `/v1` route takes `Authorization: Bearer <key>`, and may refuse it.
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
        // What any authenticated operation may answer besides its own statuses: the key is
        // missing or wrong, lacks the role, is over its rate, or the request ran out of time.
        let error = |description: &str, retry_after: bool| {
            let mut response = ResponseBuilder::new().description(description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            );
            if retry_after {
                response = response.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::Integer))
                        .description(Some("Seconds to wait before trying again"))
                        .build(),
                );
            }
            RefOr::T(response.build())
        };
        let shared = [
            ("401", error("Missing, unknown or revoked key", false)),
            ("403", error("The key lacks the role", false)),
            ("429", error("Over the key's rate", true)),
            ("503", error("Over the request's time limit", true)),
        ];
        for (path, item) in openapi.paths.paths.iter_mut() {
            // The key is checked for the whole `/v1` prefix, not handler by handler; a phone
            // has no key, its device token in the path stands for one.
            if !path.starts_with("/v1/") || path.starts_with("/v1/osmand/") {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                operation.security = Some(vec![SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]);
                for (status, response) in &shared {
                    operation
                        .responses
                        .responses
                        .entry((*status).to_owned())
                        .or_insert_with(|| response.clone());
                }
            }
        }
    }
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| crate::http::api::contract::with_webhooks(ApiDoc::openapi()))
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", body = crate::http::api::contract::OpenApiDocument))
)]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}
