//! What one caller may ask of the service: requests per second per key, time per request, and
//! which browser origins may call the API.

use std::num::NonZeroU32;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, HOST};
use actix_web::middleware::Next;
use actix_web::web;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::ApiSettings;
use crate::http::api::error::ApiError;
use crate::http::api::{route_template, AppState};

/// Requests per second per API key, as a generic cell rate (GCRA): a steady rate with a burst.
pub struct RateLimits {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl RateLimits {
    pub fn new(settings: &ApiSettings) -> Self {
        let limiter = NonZeroU32::new(settings.rate_limit_per_second).map(|rate| {
            let burst = NonZeroU32::new(settings.rate_limit_burst).unwrap_or(rate);
            DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self { limiter }
    }

    /// Counts one request of `key_id`; over its rate, says when to come back.
    pub fn check(&self, key_id: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        // Keys are few and long-lived, so the map is bounded by the keyring; the allocation
        // happens only for a key's first request after a clean-up.
        match limiter.check_key(&key_id.to_owned()) {
            Ok(()) => Ok(()),
            Err(refused) => {
                let wait = refused.wait_time_from(DefaultClock::default().now());
                Err(ApiError::TooManyRequests {
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                })
            }
        }
    }

    /// Forgets keys whose bucket is full again, so that revoked or idle keys cost nothing.
    pub fn clean_up(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Ends a request that runs past its time with 503 and `Retry-After`, so that a stuck feed or
/// a slow disk cannot hold a connection and a worker's attention forever. Uploads, which stream
/// up to a gigabyte, get their own, longer limit.
pub async fn deadline(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limit = request
        .app_data::<web::Data<AppState>>()
        .map(|state| {
            let settings = &state.settings;
            let upload = request.method() == actix_web::http::Method::POST
                && request.match_pattern().as_deref() == Some("/v1/history");
            Duration::from_secs(if upload {
                settings.upload_timeout_secs
            } else {
                settings.request_timeout_secs
            })
        })
        .unwrap_or(Duration::MAX);
    // A phone's device token and a share link's token are in their paths, and logs are no
    // place for credentials.
    let route = route_template(&request);
    match tokio::time::timeout(limit, next.call(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(message = "Request over its time limit.", route);
            // The request went with the dropped handler; the error becomes the answer.
            Err(ApiError::Timeout {
                limit_secs: limit.as_secs(),
            }
            .into())
        }
    }
}

/// The dashboard calls the API from the service's own origin; other origins may only if the
/// operator lists them. Any other origin gets no CORS headers, so browsers keep its pages from
/// reading the answers, and its preflights are refused.
pub fn cors(settings: &ApiSettings) -> Cors {
    let listed: Vec<String> = settings
        .cors_origins
        .iter()
        .map(|origin| origin.trim_end_matches('/').to_owned())
        .collect();
    Cors::default()
        .allowed_origin_fn(move |origin, head| {
            same_origin(origin, head.headers().get(HOST))
                || origin
                    .to_str()
                    .is_ok_and(|origin| listed.iter().any(|allowed| allowed == origin))
        })
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers(["authorization", "content-type", "content-encoding"])
        .expose_headers(["retry-after", "location", "x-next-since"])
        .max_age(600)
}

/// `Origin: http://host:port` names the service itself when it matches the `Host` it was asked
/// under.
fn same_origin(origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
    let (Ok(origin), Some(Ok(host))) = (origin.to_str(), host.map(HeaderValue::to_str)) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|authority| authority == host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rate: u32, burst: u32) -> ApiSettings {
        ApiSettings {
            rate_limit_per_second: rate,
            rate_limit_burst: burst,
            ..ApiSettings::default()
        }
    }

    #[test]
    fn a_key_over_its_burst_is_told_when_to_come_back() {
        let limits = RateLimits::new(&settings(1, 3));
        for _ in 0..3 {
            limits.check("a").unwrap();
        }
        let Err(ApiError::TooManyRequests { retry_after_secs }) = limits.check("a") else {
            panic!("the fourth request in a second passed");
        };
        assert_eq!(retry_after_secs, 1);
        // Another key has its own budget.
        limits.check("b").unwrap();
    }

    #[test]
    fn a_zero_rate_turns_the_limit_off() {
        let limits = RateLimits::new(&settings(0, 0));
        for _ in 0..10_000 {
            limits.check("a").unwrap();
        }
    }

    #[test]
    fn the_own_origin_is_the_host_asked_for() {
        let host = HeaderValue::from_static("127.0.0.1:8080");
        let own = HeaderValue::from_static("http://127.0.0.1:8080");
        let other = HeaderValue::from_static("http://127.0.0.1:8081");
        let evil = HeaderValue::from_static("https://evil.example");
        assert!(same_origin(&own, Some(&host)));
        assert!(!same_origin(&other, Some(&host)));
        assert!(!same_origin(&evil, Some(&host)));
        assert!(!same_origin(&own, None));
    }
}
