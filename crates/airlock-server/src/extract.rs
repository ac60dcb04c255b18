//! Request extraction that fails the API's way: a JSON `400` that names the field (a JSON path,
//! a path parameter, a query parameter) and what the field needs, never the value sent.
//!
//! axum's own rejections answer in plain text and quote what they could not parse (`Cannot
//! parse "-1" to a u64`), and serde's messages quote the value too (`invalid type: integer
//! 12345, expected a string`): a record number sent as a number would come back in the error.
//! Every message here goes through [`scrub`] first.

use std::borrow::Cow;

use axum::extract::FromRequestParts;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// `axum::extract::Path`, rejected as [`ServiceError::Invalid`](airlock_service::ServiceError::Invalid) naming the parameter.
#[derive(Debug)]
pub(crate) struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(t)) => Ok(Path(t)),
            Err(e) => {
                // The route's parameter names, for the errors that give only a position.
                let template = parts
                    .extensions
                    .get::<axum::extract::MatchedPath>()
                    .map_or("", axum::extract::MatchedPath::as_str);
                let params: Vec<&str> = template
                    .split('/')
                    .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
                    .collect();
                Err(path_rejection(e, &params))
            }
        }
    }
}

/// `axum::extract::Query`, rejected as [`ServiceError::Invalid`](airlock_service::ServiceError::Invalid) naming the parameter.
#[derive(Debug)]
pub(crate) struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(t)| Query(t))
            .map_err(query_rejection)
    }
}

/// A JSON object body, rejected as [`ServiceError::Invalid`](airlock_service::ServiceError::Invalid) naming the field (its JSON path)
/// and what was expected. A JSON array is refused even where serde would read it as the
/// struct's fields in order: the OpenAPI document promises objects.
///
/// Well-formed bodies are parsed straight into `T` (`axum::Json` tracks the path of every field
/// it reads, for its error messages, and that costs on every request: the prediction route is
/// the busiest in the API). Anything else (another content type, malformed JSON, a missing or
/// mistyped field) goes through `axum::Json` on the same bytes, so every refusal is the one
/// `Json` gives, scrubbed ([`json_rejection`]).
#[derive(Debug)]
pub(crate) struct Body<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        use axum::http::header::CONTENT_TYPE;
        let content_type = req.headers().get(CONTENT_TYPE).cloned();
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad("body", e.body_text()))?;
        let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        // Stricter than `Json` (which also takes `application/*+json`): what passes here,
        // `Json` would accept too.
        let plain_json = content_type
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let v = v.trim().to_ascii_lowercase();
                v == "application/json" || v == "application/json; charset=utf-8"
            });
        if object
            && plain_json
            && let Ok(t) = serde_json::from_slice::<T>(&bytes)
        {
            return Ok(Body(t));
        }
        let mut again = axum::extract::Request::new(axum::body::Body::from(bytes));
        if let Some(v) = content_type {
            again.headers_mut().insert(CONTENT_TYPE, v);
        }
        match axum::Json::<T>::from_request(again, state).await {
            // JSON (in a JSON content type) but not an object.
            Ok(_) | Err(JsonRejection::JsonDataError(_)) if !object => {
                Err(ApiError::bad("body", "must be a JSON object"))
            }
            Ok(axum::Json(t)) => Ok(Body(t)),
            Err(e) => Err(json_rejection(e)),
        }
    }
}

/// A JSON body that did not parse or did not fit its type, as a `400` naming the field (its
/// JSON path, e.g. `features.age`) and what was expected.
fn json_rejection(e: JsonRejection) -> ApiError {
    match e {
        JsonRejection::JsonDataError(e) => from_serde("body", &e.body_text()),
        JsonRejection::JsonSyntaxError(e) => {
            let (field, reason) = located("body", &e.body_text());
            ApiError::bad(field, format!("is not valid JSON: {reason}"))
        }
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::bad("content-type", "must be application/json")
        }
        // axum's fixed text: the body could not be read (too large, or the connection failed).
        other => ApiError::bad("body", other.body_text()),
    }
}

/// `params`: the route's parameter names in order.
fn path_rejection(e: PathRejection, params: &[&str]) -> ApiError {
    use axum::extract::path::ErrorKind as K;
    let PathRejection::FailedToDeserializePathParams(e) = e else {
        // A route handler asking for parameters its route does not have: our bug.
        return ApiError::internal(e.body_text());
    };
    match e.kind() {
        K::ParseErrorAtKey {
            key, expected_type, ..
        } => ApiError::bad(name(key, "path"), expected(expected_type)),
        K::ParseErrorAtIndex {
            index,
            expected_type,
            ..
        } => ApiError::bad(
            name(params.get(*index).copied().unwrap_or_default(), "path"),
            expected(expected_type),
        ),
        K::ParseError { expected_type, .. } => {
            let field = match params {
                [only] => name(only, "path"),
                _ => Cow::Borrowed("path"),
            };
            ApiError::bad(field, expected(expected_type))
        }
        K::InvalidUtf8InPathParam { key } => ApiError::bad(name(key, "path"), "is not UTF-8"),
        K::DeserializeError { key, message, .. } => {
            ApiError::bad(name(key, "path"), scrub(message))
        }
        _ => ApiError::bad("path", "does not fit this route"),
    }
}

fn query_rejection(e: QueryRejection) -> ApiError {
    match e {
        QueryRejection::FailedToDeserializeQueryString(e) => from_serde("query", &e.body_text()),
        other => ApiError::bad("query", other.body_text()),
    }
}

/// What a parameter of Rust type `ty` must be, in words.
fn expected(ty: &str) -> String {
    match ty {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => {
            format!("must be a whole number of at least 0 that fits {ty}")
        }
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => {
            format!("must be a whole number that fits {ty}")
        }
        _ => format!("must be a valid {ty}"),
    }
}

/// axum's text for a serde failure (`<axum's heading>: <path>: <serde's message>`), as a `400`
/// naming the path (or `fallback` when the failure is at the top).
fn from_serde(fallback: &'static str, text: &str) -> ApiError {
    let (field, reason) = located(fallback, text);
    ApiError::bad(field, reason)
}

/// Splits axum's text for a serde failure into the field and a scrubbed reason.
fn located(fallback: &'static str, text: &str) -> (Cow<'static, str>, String) {
    // axum's heading comes first, then serde_path_to_error's path when it is not empty.
    let detail = text.split_once(": ").map_or(text, |(_, rest)| rest);
    match detail.split_once(": ") {
        Some((path, rest)) if is_path(path) => (Cow::Owned(path.to_owned()), scrub(rest)),
        _ => (Cow::Borrowed(fallback), scrub(detail)),
    }
}

/// A field name or JSON path safe to show: `features.age`, `resources[0]`, `version`. Anything
/// else (a map key the client chose) is not repeated.
fn is_path(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']' | '?'))
}

fn name(key: &str, fallback: &'static str) -> Cow<'static, str> {
    if is_path(key) {
        Cow::Owned(key.to_owned())
    } else {
        Cow::Borrowed(fallback)
    }
}

/// A serde message without the value it quotes. serde puts what it was given before
/// `, expected ` and what the type wants after it; the given part keeps only its kind
/// (`invalid type: integer`), the wanted part (from our own types) is kept whole. Field names
/// that serde quotes (`missing field`, `unknown field`, `duplicate field`) are kept when they
/// look like field names. Anything else quoted is dropped.
fn scrub(message: &str) -> String {
    let message: String = message.chars().take(400).collect();
    let (given, wanted) = match message.split_once(", expected ") {
        Some((given, wanted)) => (given, Some(wanted)),
        None => (message.as_str(), None),
    };
    let named = ["missing field `", "unknown field `", "duplicate field `"]
        .into_iter()
        .find_map(|prefix| {
            let (key, after) = given.strip_prefix(prefix)?.split_once('`')?;
            let mut out = prefix.trim_end_matches('`').to_owned();
            if is_path(key) {
                out.push('`');
                out.push_str(key);
                out.push('`');
            } else {
                out.push_str("(a name not repeated)");
            }
            let after = drop_quoted(after);
            if !after.is_empty() {
                out.push(' ');
                out.push_str(&after);
            }
            Some(out)
        });
    let out = named.unwrap_or_else(|| drop_quoted(given));
    let out = out.trim_end_matches([' ', ':']).to_owned();
    match wanted {
        Some(wanted) => format!("{out}, expected {wanted}"),
        None => out,
    }
}

/// `text` without its quoted parts (between backticks, or double quotes with serde's escapes).
fn drop_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                for c in chars.by_ref() {
                    if c == '`' {
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            c => out.push(c),
        }
    }
    // "integer  at line 1" → "integer at line 1"
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {

    use axum::extract::FromRequest;
    use axum::response::IntoResponse;

    use super::{Body, json_rejection, located, scrub};

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Predict {
        patient_mrn: String,
        n: u32,
    }

    fn request(content_type: Option<&str>, body: &str) -> axum::extract::Request {
        let mut r = axum::extract::Request::new(axum::body::Body::from(body.to_owned()));
        if let Some(ct) = content_type {
            r.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_str(ct).unwrap(),
            );
        }
        r
    }

    /// `Body` accepts what `Json` accepts, except arrays, and refuses the rest with `Json`'s own
    /// rejection (status and scrubbed message).
    #[tokio::test]
    async fn body_answers_as_json_does_but_only_takes_objects() {
        let good = r#"{"patient_mrn": "M1", "n": 3}"#;
        let cases = [
            (Some("application/json"), good),
            (Some("application/json; charset=utf-8"), good),
            (Some("Application/JSON"), good),
            (Some("application/fhir+json"), good),
            (Some("text/plain"), good),
            (None, good),
            (Some("application/json"), r#"{"patient_mrn": "M1"}"#),
            (
                Some("application/json"),
                r#"{"patient_mrn": "M1", "n": "three"}"#,
            ),
            (Some("application/json"), r#"{"patient_mrn": "M1", "n": 3"#),
            (
                Some("application/json"),
                r#"{"patient_mrn": "M1", "n": 3} trailing"#,
            ),
            (Some("application/json"), ""),
            (Some("text/plain"), r#"["M1", 3]"#),
        ];
        for (ct, body) in cases {
            let fast = Body::<Predict>::from_request(request(ct, body), &()).await;
            let slow = axum::Json::<Predict>::from_request(request(ct, body), &()).await;
            match (fast, slow) {
                (Ok(Body(a)), Ok(axum::Json(b))) => assert_eq!(a, b, "{ct:?} {body}"),
                (Err(a), Err(b)) => {
                    let b = json_rejection(b);
                    assert_eq!(a.to_string(), b.to_string(), "{ct:?} {body}");
                    assert_eq!(
                        a.into_response().status(),
                        b.into_response().status(),
                        "{ct:?} {body}"
                    );
                }
                (a, b) => panic!("{ct:?} {body}: body {:?}, json {:?}", a.is_ok(), b.is_ok()),
            }
        }
        // serde reads a struct from an array of its fields in order; the API does not.
        for body in [r#"["M1", 3]"#, r#" [null, null]"#] {
            let refused =
                Body::<Predict>::from_request(request(Some("application/json"), body), &())
                    .await
                    .unwrap_err();
            assert!(
                matches!(&refused, crate::ApiError(airlock_service::ServiceError::Invalid { field, .. }) if field == "body"),
                "{refused}"
            );
        }
    }

    #[test]
    fn scrubbed_messages_keep_the_kind_and_the_expectation_but_never_the_value() {
        for (message, want) in [
            (
                "invalid type: integer `4815162342`, expected a string at line 1 column 25",
                "invalid type: integer, expected a string at line 1 column 25",
            ),
            (
                r#"invalid type: string "Jane \"JJ\" Doe", expected u32 at line 1 column 9"#,
                "invalid type: string, expected u32 at line 1 column 9",
            ),
            (
                "invalid value: floating point `12.5`, expected i64",
                "invalid value: floating point, expected i64",
            ),
            (
                "unknown variant `Jane Doe`, expected one of `treatment`, `payment`",
                "unknown variant, expected one of `treatment`, `payment`",
            ),
            (
                "unknown field `jane doe`, expected `reason`",
                "unknown field (a name not repeated), expected `reason`",
            ),
            ("missing field `patient_mrn`", "missing field `patient_mrn`"),
            ("duplicate field `format`", "duplicate field `format`"),
            (
                "invalid escape at line 1 column 4",
                "invalid escape at line 1 column 4",
            ),
        ] {
            assert_eq!(scrub(message), want);
        }
    }

    #[test]
    fn the_field_is_the_path_when_it_looks_like_one() {
        let (field, reason) = located(
            "body",
            "Failed to deserialize the JSON body into the target type: patient_mrn: invalid type: integer `4815162342`, expected a string at line 1 column 25",
        );
        assert_eq!(field, "patient_mrn");
        assert!(!reason.contains("4815162342"), "{reason}");
        let (field, _) = located(
            "body",
            "Failed to deserialize the JSON body into the target type: features.Jane Doe: invalid type: map, expected f64",
        );
        assert_eq!(field, "body", "a key the client chose is not repeated");
        let (field, reason) = located(
            "body",
            "Failed to deserialize the JSON body into the target type: missing field `reason` at line 1 column 2",
        );
        assert_eq!(
            (field.as_ref(), reason.as_str()),
            ("body", "missing field `reason` at line 1 column 2")
        );
    }

    #[derive(Debug, serde::Deserialize)]
    struct Days {
        #[serde(deserialize_with = "airlock_service::json::integer")]
        days: u32,
        #[serde(default, deserialize_with = "airlock_service::json::optional_integer")]
        minutes: Option<i64>,
    }

    #[test]
    fn integers_may_be_written_with_a_zero_fraction() {
        let b: Days = serde_json::from_str(r#"{"days": 12.0, "minutes": 30}"#).unwrap();
        assert_eq!((b.days, b.minutes), (12, Some(30)));
        let b: Days = serde_json::from_str(r#"{"days": 1, "minutes": null}"#).unwrap();
        assert_eq!(b.minutes, None);
        let b: Days = serde_json::from_str(r#"{"days": 1}"#).unwrap();
        assert_eq!(b.minutes, None);
        for (bad, value) in [
            (r#"{"days": 12.5}"#, "12.5"),
            (r#"{"days": -7}"#, "-7"),
            (r#"{"days": 4294967296}"#, "4294967296"),
            (r#"{"days": 1e300}"#, "1e300"),
            (r#"{"days": "1234"}"#, "1234"),
            (
                r#"{"days": 1, "minutes": 9223372036854775808}"#,
                "9223372036854775808",
            ),
        ] {
            let err = serde_json::from_str::<Days>(bad).unwrap_err().to_string();
            assert!(!scrub(&err).contains(value), "{bad}: {err}");
        }
    }
}
