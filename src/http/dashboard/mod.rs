//! The dispatcher's dashboard: a page and its assets, compiled into the binary so that it
//! works on a closed network. It is a client of the `/v1` API like any other, signed in with
//! a dispatcher key; nothing here reads the store.

use actix_web::http::header::{
    CacheControl, CacheDirective, ContentType, HeaderValue, CONTENT_SECURITY_POLICY,
    X_CONTENT_TYPE_OPTIONS,
};
use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::http::api::error::ApiError;
use crate::http::api::{blocking, AppState};
use crate::partners::keys::demo_dispatcher_key;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");
/// The consignee's tracking page's refresh (`/track/{token}`).
const TRACK_SCRIPT: &str = include_str!("assets/track.js");
/// France and its neighbours from Natural Earth (public domain); see `scripts/map-outline.py`.
const OUTLINE: &str = include_str!("assets/outline.json");
/// Leaflet 1.9.4 from the npm registry (BSD-2-Clause, `assets/vendor/leaflet/LICENSE`), as
/// published: pan, zoom and tiles for the map without a network beyond this service. Served
/// under `/assets/leaflet/`, the URLs pages have always used.
const LEAFLET_SCRIPT: &str = include_str!("assets/vendor/leaflet/leaflet.js");
const LEAFLET_STYLE: &str = include_str!("assets/vendor/leaflet/leaflet.css");

fn asset(body: &'static str, content_type: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        // Assets change with the binary only: a restart may bring new ones.
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(body)
}

/// The page, under a policy that lets it run its own scripts and styles only, talk to this
/// service only, and show images from here and from the tile server alone: a stop id or a
/// reference a carrier wrote can never become a script, nor call anywhere else.
pub async fn index(state: web::Data<AppState>) -> HttpResponse {
    let mut page = asset(INDEX, ContentType::html().essence_str());
    let policy = content_security_policy(&state.dashboard.tile_url);
    let headers = page.headers_mut();
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        headers.insert(CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    page
}

/// Leaflet positions everything through the style object, which `style-src 'self'` allows;
/// only markup's `style` attributes and `<style>` elements would need `'unsafe-inline'`.
fn content_security_policy(tile_url: &str) -> String {
    let tiles = tile_origin(tile_url).unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: {tiles}; \
         connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    .replace(" ;", ";")
}

/// `https://tile.example.com:8443` of `https://tile.example.com:8443/{z}/{x}/{y}.png`, and
/// `https://*.tile.example.com` of a `{s}.` subdomain template; none for a template that is
/// not an absolute http(s) address, or whose host would break the header.
fn tile_origin(tile_url: &str) -> Option<String> {
    let (scheme, rest) = tile_url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let host = rest.split('/').next().unwrap_or_default();
    let host = match host.strip_prefix("{s}.") {
        Some(domain) => format!("*.{domain}"),
        None => host.to_owned(),
    };
    let plain = !host.is_empty()
        && host
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b".-:[]*".contains(&byte));
    plain.then(|| format!("{scheme}://{host}"))
}

pub async fn leaflet_script() -> HttpResponse {
    asset(LEAFLET_SCRIPT, "text/javascript; charset=utf-8")
}

pub async fn leaflet_style() -> HttpResponse {
    asset(LEAFLET_STYLE, "text/css; charset=utf-8")
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
    slip_alert_minutes: u32,
    silent_alert_minutes: u32,
}

/// What the page needs from the settings: the optional tile server and the alerts' limits.
pub async fn page_settings(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .json(PageSettings {
            tile_url: &state.dashboard.tile_url,
            slip_alert_minutes: state.dashboard.slip_alert_minutes,
            silent_alert_minutes: state.dashboard.silent_alert_minutes,
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
    let key = blocking(move || Ok(demo_dispatcher_key(&data_dir)))
        .await?
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
        .route("/assets/leaflet/leaflet.js", web::get().to(leaflet_script))
        .route("/assets/leaflet/leaflet.css", web::get().to(leaflet_style))
        .route("/dashboard/settings", web::get().to(page_settings))
        .route("/dashboard/demo-login", web::get().to(demo_login));
}

#[cfg(test)]
mod tests {
    use super::{content_security_policy, tile_origin};

    #[test]
    fn the_page_may_load_images_from_the_tile_server_alone() {
        assert_eq!(
            tile_origin("https://tile.example.com:8443/{z}/{x}/{y}.png").as_deref(),
            Some("https://tile.example.com:8443")
        );
        assert_eq!(
            tile_origin("https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png").as_deref(),
            Some("https://*.tile.openstreetmap.org")
        );
        for refused in [
            "",
            "/tiles/{z}/{x}/{y}.png",
            "ftp://a/b",
            "https://a b/",
            "https://a;b/",
        ] {
            assert_eq!(tile_origin(refused), None, "{refused}");
        }
        assert!(content_security_policy("").contains("img-src 'self' data:; connect-src 'self'"));
        assert!(
            content_security_policy("http://127.0.0.1:9/{z}/{x}/{y}.png")
                .contains("img-src 'self' data: http://127.0.0.1:9;")
        );
    }
}
