//! Reading request bodies: a size limit enforced while streaming, and JSON parsing that names
//! the offending field.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess};

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
/// with none, or with `application/x-www-form-urlencoded` from a bare `curl -d`. A key that
/// an object repeats is refused, wherever it is: serde_json would keep the last value, and a
/// proxy or a log that kept the first would disagree with what was estimated.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde accepts a JSON array for a struct, field by position; no client means that.
    if first_byte(bytes) == Some(b'[') {
        return Err(ApiError::invalid_value(
            "",
            "expected a JSON object, not an array",
        ));
    }
    if let Some(path) = repeated_key(bytes) {
        return Err(ApiError::InvalidValue {
            message: format!("duplicate field `{}`", path.key()),
            field: path.to_string(),
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

/// Where a key is repeated: the keys and indices from the document's root to it.
#[derive(Debug, Default)]
struct KeyPath {
    /// Innermost first, pushed as the walk unwinds.
    segments: Vec<Segment>,
}

#[derive(Debug)]
enum Segment {
    Key(String),
    Index(usize),
}

impl KeyPath {
    /// The repeated key itself.
    fn key(&self) -> &str {
        match self.segments.first() {
            Some(Segment::Key(key)) => key,
            _ => "",
        }
    }
}

/// As serde_path_to_error writes a path: `requests[1].origin.lat`.
impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n_written, segment) in self.segments.iter().rev().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) if n_written == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
            }
        }
        Ok(())
    }
}

/// The first key an object of the document repeats, if any. A document the walk cannot read
/// (broken syntax, a number out of range) is left to the typed parse, which says what is
/// wrong with it; the walk stops there, so a repeat after such a value goes unseen here and
/// falls to serde's own refusal of a repeated struct field.
fn repeated_key(bytes: &[u8]) -> Option<KeyPath> {
    let mut walk = Walk {
        path: KeyPath::default(),
        repeated: false,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let walked = WalkSeed { walk: &mut walk }.deserialize(&mut deserializer);
    (walked.is_err() && walk.repeated).then_some(walk.path)
}

/// The state of one walk over a document, shared by every level of it.
struct Walk {
    path: KeyPath,
    /// The walk stopped on a repeated key, not on something the parser refused.
    repeated: bool,
}

/// One value of the document, walked for repeated keys. Every key is hashed once, so the walk
/// takes time in proportion to the body; serde_json bounds its depth.
struct WalkSeed<'w> {
    walk: &'w mut Walk,
}

impl<'de> DeserializeSeed<'de> for WalkSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for WalkSeed<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            match items.next_element_seed(WalkSeed {
                walk: &mut *self.walk,
            }) {
                Ok(Some(())) => index += 1,
                Ok(None) => return Ok(()),
                Err(error) => {
                    self.walk.path.segments.push(Segment::Index(index));
                    return Err(error);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        let mut seen: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(key) = entries.next_key_seed(KeySeed)? {
            if seen.contains(&key) {
                self.walk.repeated = true;
                self.walk.path.segments.push(Segment::Key(key.into_owned()));
                return Err(de::Error::custom("duplicate key"));
            }
            if let Err(error) = entries.next_value_seed(WalkSeed {
                walk: &mut *self.walk,
            }) {
                self.walk.path.segments.push(Segment::Key(key.into_owned()));
                return Err(error);
            }
            seen.insert(key);
        }
        Ok(())
    }
}

/// An object's key, borrowed from the body unless an escape had to be decoded: `"lat"` and
/// `"l\u0061t"` are the same key.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> de::Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key))
    }
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
    } else if message.starts_with("duplicate field") {
        ApiError::InvalidValue {
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
pub fn parse_query<T: DeserializeOwned>(request: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(request.query_string())
        .map(web::Query::into_inner)
        .map_err(|error| ApiError::invalid_value("", error.to_string()))
}

/// The request's `Content-Type`; empty when it names none, or none that reads as text.
pub fn content_type(request: &HttpRequest) -> &str {
    request
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

/// A body's first byte that is not white space: it tells what kind of document the body opens.
pub fn first_byte(body: &[u8]) -> Option<u8> {
    body.iter()
        .copied()
        .find(|byte| !byte.is_ascii_whitespace())
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

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Envelope {
        items: Vec<Box<serde_json::value::RawValue>>,
    }

    #[test]
    fn a_repeated_key_is_refused_wherever_it_is_and_named_by_its_path() {
        let cases = [
            (
                r#"{"inner": [{"number": 1, "number": 2}]}"#,
                "inner[0].number",
            ),
            (r#"{"inner": [], "inner": []}"#, "inner"),
            (
                r#"{"inner": [{"number": 1}, {"number": 1, "n\u0075mber": 2}]}"#,
                "inner[1].number",
            ),
        ];
        for (body, field) in cases {
            let error = parse_json::<Outer>(body.as_bytes()).unwrap_err();
            assert_eq!(
                (error.code(), error.field()),
                ("invalid_value", Some(field)),
                "{body}"
            );
            assert!(error.to_string().contains("duplicate field"), "{error}");
        }
        // Untyped values and raw items are where serde keeps the last value without a word.
        let error =
            parse_json::<serde_json::Value>(br#"{"a": {"b": [1, {"c": 1, "c": 2}]}}"#).unwrap_err();
        assert_eq!(error.field(), Some("a.b[1].c"), "{error}");
        let error =
            parse_json::<Envelope>(br#"{"items": [{"x": 1}, {"x": 1, "x": 2}]}"#).unwrap_err();
        assert_eq!(error.field(), Some("items[1].x"), "{error}");
        // The same key in different objects is no repeat.
        let value: serde_json::Value =
            parse_json(br#"{"a": {"b": 1}, "b": {"a": [{"a": 1}, {"a": 2}]}}"#).unwrap();
        assert_eq!(value["b"]["a"][1]["a"], 2);
    }

    #[test]
    fn a_raw_item_keeps_a_number_out_of_range_for_its_own_parse() {
        let envelope: Envelope =
            parse_json(br#"{"items": [{"number": 1e309}, {"number": 2}]}"#).unwrap();
        let error = parse_json::<Inner>(envelope.items[0].get().as_bytes()).unwrap_err();
        assert_eq!(
            (error.code(), error.field()),
            ("invalid_value", Some("number")),
            "{error}"
        );
        let inner: Inner = parse_json(envelope.items[1].get().as_bytes()).unwrap();
        assert_eq!(inner.number, 2.0);
    }
}
