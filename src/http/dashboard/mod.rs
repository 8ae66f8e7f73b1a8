//! The dispatcher's dashboard: a page and its assets, compiled into the binary so that it
//! works on a closed network. It is a client of the `/v1` API like any other, signed in with
//! a dispatcher key; nothing here reads the store.

use actix_web::http::header::{CacheControl, CacheDirective, ContentType};
use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::http::api::error::ApiError;
use crate::http::api::AppState;
use crate::partners::keys::demo_dispatcher_key;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");
/// The consignee's tracking page's refresh (`/track/{token}`).
const TRACK_SCRIPT: &str = include_str!("assets/track.js");
/// France and its neighbours from Natural Earth (public domain); see `scripts/map-outline.py`.
const OUTLINE: &str = include_str!("assets/outline.json");

fn asset(body: &'static str, content_type: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        // Assets change with the binary only: a restart may bring new ones.
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(body)
}

pub async fn index() -> HttpResponse {
    asset(INDEX, ContentType::html().essence_str())
}

pub async fn script() -> HttpResponse {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub async fn track_script() -> HttpResponse {
    asset(TRACK_SCRIPT, "text/javascript; charset=utf-8")
}

pub async fn style() -> HttpResponse {
    asset(STYLE, "text/css; charset=utf-8")
}

pub async fn outline() -> HttpResponse {
    asset(OUTLINE, "application/json")
}

#[derive(Serialize)]
struct PageSettings<'a> {
    tile_url: &'a str,
}

/// What the page needs from the settings: the optional tile server.
pub async fn page_settings(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .json(PageSettings {
            tile_url: &state.dashboard.tile_url,
        })
}

#[derive(Serialize)]
struct DemoLogin {
    key: String,
}

/// The demo organisation's dispatcher key, while the demo fleet runs (the embedded default)
/// on a service listening on a loopback address: one click signs in to watch it. With the
/// demo off, or listening beyond this machine, there is no such login: anyone who reached
/// the port would get the key.
pub async fn demo_login(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !state.demo_login {
        return Err(ApiError::NotFound);
    }
    let data_dir = state.data_dir.clone();
    let key = web::block(move || demo_dispatcher_key(&data_dir))
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(DemoLogin { key }))
}

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(index))
        .route("/assets/app.js", web::get().to(script))
        .route("/assets/app.css", web::get().to(style))
        .route("/assets/track.js", web::get().to(track_script))
        .route("/assets/outline.json", web::get().to(outline))
        .route("/dashboard/settings", web::get().to(page_settings))
        .route("/dashboard/demo-login", web::get().to(demo_login));
}
