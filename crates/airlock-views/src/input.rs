//! FHIR JSON input: single resources, Bundles and NDJSON, read one resource at a time.
//!
//! The input is a sequence of JSON documents separated by whitespace, which covers a single
//! resource, a Bundle and NDJSON alike. A Bundle stands for its entries' resources (entries
//! without a resource, as in a transaction response, are skipped). Each document is parsed when
//! the previous one has been consumed, so NDJSON streams in memory flat in its length.

use serde_json::Value;

use crate::error::ViewError;

/// The resources in `text` (a resource, a Bundle or NDJSON; a leading byte-order mark is
/// skipped), in order, each checked to be a FHIR resource. After invalid JSON the iterator
/// ends; after a non-resource it goes on.
pub fn read_resources(text: &str) -> impl Iterator<Item = Result<Value, ViewError>> + '_ {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Resources::new(serde_json::Deserializer::from_str(text).into_iter::<Value>())
}

/// As [`read_resources`], from a reader (wrap files in a `BufReader`): only the current
/// document is held in memory.
pub fn read_resources_from<R: std::io::Read>(
    reader: R,
) -> impl Iterator<Item = Result<Value, ViewError>> {
    Resources::new(serde_json::Deserializer::from_reader(reader).into_iter::<Value>())
}

struct Resources<I> {
    documents: I,
    /// The rest of the current Bundle's resources.
    pending: std::vec::IntoIter<Value>,
    /// Position of the next resource.
    index: usize,
    done: bool,
}

impl<I> Resources<I> {
    fn new(documents: I) -> Self {
        Self {
            documents,
            pending: Vec::new().into_iter(),
            index: 0,
            done: false,
        }
    }

    fn check(&mut self, resource: Value) -> Result<Value, ViewError> {
        let index = self.index;
        self.index += 1;
        let reason = match &resource {
            Value::Object(o) => match o.get("resourceType") {
                Some(Value::String(t)) if is_type_name(t) => return Ok(resource),
                Some(_) => "`resourceType` is not a resource type name",
                None => "no `resourceType`",
            },
            _ => "not a JSON object",
        };
        Err(ViewError::NotResource { index, reason })
    }
}

impl<I: Iterator<Item = serde_json::Result<Value>>> Iterator for Resources<I> {
    type Item = Result<Value, ViewError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(resource) = self.pending.next() {
                return Some(self.check(resource));
            }
            if self.done {
                return None;
            }
            let document = match self.documents.next()? {
                Ok(d) => d,
                Err(e) => {
                    // A stream cannot resynchronise after a syntax error.
                    self.done = true;
                    return Some(Err(json_error(&e, self.index)));
                }
            };
            match document {
                Value::Object(mut o)
                    if o.get("resourceType").and_then(Value::as_str) == Some("Bundle") =>
                {
                    let entries = match o.remove("entry") {
                        Some(Value::Array(entries)) => entries,
                        _ => Vec::new(),
                    };
                    self.pending = entries
                        .into_iter()
                        .filter_map(|e| match e {
                            Value::Object(mut e) => e.remove("resource"),
                            // Not an entry: reported as a non-resource at its position.
                            other => Some(other),
                        })
                        .collect::<Vec<_>>()
                        .into_iter();
                }
                other => return Some(self.check(other)),
            }
        }
    }
}

fn json_error(e: &serde_json::Error, index: usize) -> ViewError {
    match e.io_error_kind() {
        Some(kind) => ViewError::Read { index, kind },
        // serde_json's message can quote the input; only the position is kept.
        None => ViewError::InvalidJson {
            index,
            line: e.line(),
            column: e.column(),
        },
    }
}

fn is_type_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

    use serde_json::json;

    use super::*;

    fn ids(text: &str) -> Vec<Result<String, String>> {
        read_resources(text)
            .map(|r| {
                r.map(|v| v["id"].as_str().unwrap_or_default().to_owned())
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    #[test]
    fn resource_bundle_and_ndjson() {
        assert_eq!(
            ids(r#"{"resourceType":"Patient","id":"a"}"#),
            [Ok("a".into())]
        );
        let bundle = json!({"resourceType": "Bundle", "entry": [
            {"fullUrl": "urn:uuid:a", "resource": {"resourceType": "Patient", "id": "a"}},
            {"response": {"status": "201"}},
            {"resource": {"resourceType": "Observation", "id": "b"}}]});
        assert_eq!(ids(&bundle.to_string()), [Ok("a".into()), Ok("b".into())]);
        let ndjson = "\u{feff}{\"resourceType\":\"Patient\",\"id\":\"a\"}\n\n{\"resourceType\":\"Patient\",\"id\":\"b\"}\n";
        assert_eq!(ids(ndjson), [Ok("a".into()), Ok("b".into())]);
    }

    #[test]
    fn errors_name_the_position_not_the_value() {
        let got = ids(
            "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n{\"id\":\"secret\"}\n[1]\n{\"resourceType\": \"Patient\", \"id\": secret}\n{}",
        );
        assert_eq!(
            got,
            [
                Ok("a".into()),
                Err("resource 1: not a FHIR resource (no `resourceType`)".into()),
                Err("resource 2: not a FHIR resource (not a JSON object)".into()),
                Err("resource 3: not valid JSON (line 4, column 35)".into()),
            ]
        );
    }

    #[test]
    fn reader_streams_too() {
        let text = "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n{\"resourceType\":\"Patient\",\"id\":\"b\"}";
        let got: Vec<_> = read_resources_from(text.as_bytes())
            .map(|r| r.unwrap()["id"].clone())
            .collect();
        assert_eq!(got, [json!("a"), json!("b")]);
    }
}
