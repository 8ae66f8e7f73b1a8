//! `GET /docs`: the API reference, rendered in the browser by Redoc from `/openapi.json`.
//! Redoc's standalone bundle is compiled into the binary, as the dashboard's assets are, so
//! that the reference works on a closed network and shows the document of this very build.

use actix_web::http::header::{
    CacheControl, CacheDirective, ContentType, HeaderValue, CONTENT_SECURITY_POLICY,
    X_CONTENT_TYPE_OPTIONS,
};
use actix_web::HttpResponse;

const PAGE: &str = include_str!("../docs/index.html");
/// Starts Redoc on the page, with its telemetry off.
const START: &str = include_str!("../docs/docs.js");
/// Redoc 3.0.1 from the npm registry (`redoc`, `bundles/redoc.standalone.js`, MIT licence in
/// `src/http/docs/redoc.LICENSE`), as published.
const REDOC: &str = include_str!("../docs/redoc.standalone.js");

/// Scripts from here only. Redoc styles its components with `<style>` elements it writes, so
/// styles need `'unsafe-inline'`; it runs its search in a worker made from a `blob:` address,
/// and draws icons from `data:` images. It fetches `/openapi.json` and nothing else: its
/// footer's logo from its CDN is refused.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        // A new binary may bring a new bundle; revalidating costs a round trip, not the body.
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .insert_header((X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .body(body)
}

pub async fn page() -> HttpResponse {
    let mut page = asset(PAGE, ContentType::html().essence_str());
    page.headers_mut()
        .insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    page
}

pub async fn start() -> HttpResponse {
    asset(START, "text/javascript; charset=utf-8")
}

pub async fn redoc() -> HttpResponse {
    asset(REDOC, "text/javascript; charset=utf-8")
}
