//! Reading request bodies: a size limit enforced while streaming, and JSON parsing that names
//! the offending field.

use actix_web::web;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::http::api::error::ApiError;

/// Reads the whole body, refusing it as soon as it grows past `limit` bytes.
pub async fn read_limited(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| match error {
            actix_web::error::PayloadError::Overflow => ApiError::PayloadTooLarge { limit },
            other => ApiError::BadPayload(other.to_string()),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads the whole body within `limit` bytes, then parses it as [`parse_json`] does.
pub async fn read_json<T: DeserializeOwned>(
    payload: web::Payload,
    limit: usize,
) -> Result<T, ApiError> {
    parse_json(&read_limited(payload, limit).await?)
}

/// Parses a JSON document, whatever the Content-Type says: TMS integrations often send JSON
/// with none, or with `application/x-www-form-urlencoded` from a bare `curl -d`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde accepts a JSON array for a struct, field by position; no client means that.
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::InvalidValue {
            field: String::new(),
            message: "the body must be a JSON object, not an array".into(),
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        // serde_json reports some type errors (a null where an enum belongs) as syntax errors;
        // a body that is valid JSON has a wrong value, not broken syntax.
        let valid_json = serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
        classify(error, valid_json)
    })?;
    deserializer
        .end()
        .map_err(|error| ApiError::MalformedJson {
            message: error.to_string(),
        })?;
    Ok(value)
}

/// Parses an already-decoded JSON value, such as one item of a batch.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|error| classify(error, true))
}

fn classify(error: serde_path_to_error::Error<serde_json::Error>, valid_json: bool) -> ApiError {
    let path = match error.path().to_string() {
        root if root == "." => String::new(),
        path => path,
    };
    let inner = error.into_inner();
    if !inner.is_data() && !valid_json {
        return ApiError::MalformedJson {
            message: inner.to_string(),
        };
    }
    // serde_json adds the position to the message; the field path says more.
    let full = inner.to_string();
    let message = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(head, _)| head)
        .to_owned();
    let named = |message: &str| message.split('`').nth(1).map(str::to_owned);
    let child = |name: Option<String>| match (name, path.is_empty()) {
        (Some(name), true) => name,
        (Some(name), false) if !path.ends_with(&name) => format!("{path}.{name}"),
        _ => path.clone(),
    };
    if message.starts_with("missing field") {
        ApiError::MissingField {
            field: child(named(&message)),
            message,
        }
    } else if message.starts_with("unknown field") {
        ApiError::UnknownField {
            field: child(named(&message)),
            message,
        }
    } else {
        ApiError::InvalidValue {
            field: path,
            message,
        }
    }
}

/// Parses a query string into `T`; a bad one is a 400 like a bad body.
pub fn parse_query<T: DeserializeOwned>(request: &actix_web::HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(request.query_string())
        .map(web::Query::into_inner)
        .map_err(|error| ApiError::InvalidValue {
            field: String::new(),
            message: error.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        number: f64,
    }

    #[test]
    fn errors_name_the_field_and_drop_the_position() {
        let cases = [
            (
                r#"{"inner": [{"number": 1}, {}]}"#,
                "missing_field",
                Some("inner[1].number"),
            ),
            (
                r#"{"inner": [{"number": "x"}]}"#,
                "invalid_value",
                Some("inner[0].number"),
            ),
            (
                r#"{"inner": [], "extra": 1}"#,
                "unknown_field",
                Some("extra"),
            ),
            (r#"{}"#, "missing_field", Some("inner")),
            (r#"{"inner": ["#, "malformed_json", None),
            (r#"{"inner": []} trailing"#, "malformed_json", None),
            ("", "malformed_json", None),
        ];
        for (body, code, field) in cases {
            let error = parse_json::<Outer>(body.as_bytes()).unwrap_err();
            assert_eq!(error.code(), code, "{body}");
            assert_eq!(error.field(), field, "{body}");
            if field.is_some() {
                assert!(!error.to_string().contains("line"), "{error}");
            }
        }
    }
}
