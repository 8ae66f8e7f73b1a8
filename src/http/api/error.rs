//! Every error the API answers with, and the one place that maps each to a status and a code.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::storage::StoreError;

/// What a 503 for an unavailable store tells the caller to wait: about the pool's time to give
/// up on a connection (`postgres::CONNECT_TIMEOUT`), so that a retry meets a fresh attempt.
pub const STORE_RETRY_AFTER_SECS: u64 = 2;

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable code, such as `missing_field` or `out_of_range`.
    #[schema(example = "out_of_range")]
    pub code: String,
    /// What is wrong, for a person.
    #[schema(example = "latitude must be a number between -90 and 90")]
    pub message: String,
    /// The path of the offending field in the request, such as `stops[1].window.end`, when
    /// one field is to blame.
    #[schema(example = "origin.lat")]
    pub field: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON at all, or is cut short.
    #[error("{message}")]
    MalformedJson { message: String },
    #[error("{message}")]
    MissingField { field: String, message: String },
    #[error("{message}")]
    UnknownField { field: String, message: String },
    /// A value of the wrong JSON type, or a string outside an enumeration.
    #[error("{message}")]
    InvalidValue { field: String, message: String },
    #[error("{message}")]
    OutOfRange { field: String, message: String },
    #[error("{message}")]
    TimestampWithoutOffset { field: String, message: String },
    #[error("{message}")]
    InvalidTimestamp { field: String, message: String },
    #[error("the body is larger than the limit of {limit} bytes for this endpoint")]
    PayloadTooLarge { limit: usize },
    #[error("a batch holds at most {limit} requests, this one has {count}")]
    BatchTooLarge { limit: usize, count: usize },
    #[error("{message}")]
    Unauthorized { message: String, missing: bool },
    /// The key lacks the route's role (no field), or may not do what a field asks.
    #[error("{message}")]
    Forbidden { field: String, message: String },
    #[error("no such resource")]
    NotFound,
    #[error("{message}")]
    Conflict { message: String },
    #[error("{message}")]
    UnsupportedMediaType { message: String },
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    #[error("the request could not be read: {0}")]
    BadPayload(String),
    #[error("too many requests for this key: retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("the request took longer than its limit of {limit_secs} s")]
    Timeout { limit_secs: u64 },
    /// The store is down, restarting or full: nothing was kept, the request may be retried.
    /// The detail goes to the log.
    #[error("the service cannot reach its storage: retry in {retry_after_secs} s")]
    Unavailable {
        retry_after_secs: u64,
        detail: String,
    },
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson { .. } => "malformed_json",
            Self::MissingField { .. } => "missing_field",
            Self::UnknownField { .. } => "unknown_field",
            Self::InvalidValue { .. } => "invalid_value",
            Self::OutOfRange { .. } => "out_of_range",
            Self::TimestampWithoutOffset { .. } => "timestamp_without_offset",
            Self::InvalidTimestamp { .. } => "invalid_timestamp",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::BatchTooLarge { .. } => "batch_too_large",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict { .. } => "conflict",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::BadPayload(_) => "bad_payload",
            Self::TooManyRequests { .. } => "rate_limited",
            Self::Timeout { .. } => "timeout",
            Self::Unavailable { .. } => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    pub fn field(&self) -> Option<&str> {
        let field = match self {
            Self::MissingField { field, .. }
            | Self::UnknownField { field, .. }
            | Self::InvalidValue { field, .. }
            | Self::OutOfRange { field, .. }
            | Self::TimestampWithoutOffset { field, .. }
            | Self::InvalidTimestamp { field, .. }
            | Self::Forbidden { field, .. } => field,
            Self::MalformedJson { .. }
            | Self::PayloadTooLarge { .. }
            | Self::BatchTooLarge { .. }
            | Self::Unauthorized { .. }
            | Self::NotFound
            | Self::Conflict { .. }
            | Self::UnsupportedMediaType { .. }
            | Self::MethodNotAllowed
            | Self::BadPayload(_)
            | Self::TooManyRequests { .. }
            | Self::Timeout { .. }
            | Self::Unavailable { .. }
            | Self::Internal(_) => return None,
        };
        Some(field.as_str()).filter(|field| !field.is_empty())
    }

    /// The path of the field the error is about, for the errors about a field.
    fn field_path_mut(&mut self) -> Option<&mut String> {
        match self {
            Self::MissingField { field, .. }
            | Self::UnknownField { field, .. }
            | Self::InvalidValue { field, .. }
            | Self::OutOfRange { field, .. }
            | Self::TimestampWithoutOffset { field, .. }
            | Self::InvalidTimestamp { field, .. } => Some(field),
            _ => None,
        }
    }

    pub fn body(&self) -> ErrorBody {
        let message = match self {
            // Internal details go to the log, not to the caller.
            Self::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        };
        ErrorBody {
            code: self.code().to_owned(),
            message,
            field: self.field().map(str::to_owned),
        }
    }

    /// The store cannot be reached or written now (`StoreError::Unavailable`).
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::Unavailable {
            retry_after_secs: STORE_RETRY_AFTER_SECS,
            detail: detail.into(),
        }
    }

    /// A value of the wrong kind, or a string outside its enumeration, named by its field's
    /// path.
    pub fn invalid_value(field: &str, message: impl Into<String>) -> Self {
        Self::InvalidValue {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A value out of its range, named by its field's path.
    pub fn out_of_range(field: &str, message: impl Into<String>) -> Self {
        Self::OutOfRange {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error about a field nested under `prefix`, such as an item of a list.
    pub fn under(mut self, prefix: &str) -> Self {
        if let Some(field) = self.field_path_mut() {
            *field = if field.is_empty() {
                prefix.to_owned()
            } else if field.starts_with('[') {
                format!("{prefix}{field}")
            } else {
                format!("{prefix}.{field}")
            };
        }
        self
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MalformedJson { .. }
            | Self::MissingField { .. }
            | Self::UnknownField { .. }
            | Self::InvalidValue { .. }
            | Self::OutOfRange { .. }
            | Self::TimestampWithoutOffset { .. }
            | Self::InvalidTimestamp { .. }
            | Self::BadPayload(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BatchTooLarge { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout { .. } | Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(detail) => tracing::error!(message = "Request failed.", %detail),
            // Expected while the database restarts: a warning, not an error, for each request.
            Self::Unavailable { detail, .. } => {
                tracing::warn!(message = "Storage unavailable.", %detail);
            }
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Self::Unauthorized { missing, .. } = self {
            // RFC 6750: a bad token is named as such; a missing one only gets the scheme.
            let challenge = if *missing {
                "Bearer realm=\"etape\"".to_owned()
            } else {
                "Bearer realm=\"etape\", error=\"invalid_token\"".to_owned()
            };
            response.insert_header(("WWW-Authenticate", challenge));
        }
        match self {
            Self::TooManyRequests { retry_after_secs }
            | Self::Unavailable {
                retry_after_secs, ..
            } => {
                response.insert_header(("Retry-After", retry_after_secs.to_string()));
            }
            Self::Timeout { .. } => {
                response.insert_header(("Retry-After", "1"));
            }
            _ => {}
        }
        response.json(self.body())
    }
}

/// Every store error, in one place: a new variant does not compile until it has its status.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::DuplicateReference(_) | StoreError::Conflict => ApiError::Conflict {
                message: error.to_string(),
            },
            StoreError::Unavailable(detail) => ApiError::unavailable(detail),
            // Only the leader's work is fenced, never a request: should one meet it, the
            // replica learns within a second that it no longer leads, and a retry passes.
            StoreError::Fenced => ApiError::unavailable(error.to_string()),
            StoreError::Backend(detail) => ApiError::Internal(detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_store_is_a_503_to_retry_and_its_detail_stays_in_the_log() {
        let error = ApiError::from(StoreError::Unavailable(
            "error connecting to server: Connection refused (os error 111)".into(),
        ));
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let retry_after = response.headers().get("Retry-After").unwrap();
        assert_eq!(
            retry_after.to_str().unwrap(),
            STORE_RETRY_AFTER_SECS.to_string()
        );
        let body = error.body();
        assert_eq!(body.code, "unavailable");
        assert!(!body.message.contains("refused"), "{}", body.message);
        let other = ApiError::from(StoreError::Backend("no such column".into()));
        assert_eq!(other.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        // Through the helper the handlers use for any error: a store's is still told apart.
        let helped = crate::http::api::storage(StoreError::Unavailable("down".into()));
        assert_eq!(helped.code(), "unavailable");
    }
}
