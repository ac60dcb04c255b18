//! JSONL and plain-text processing for the CLI (`airlock deid text`).
//!
//! Each input line is a JSON object with a string `text` field (and usually `id`); every other
//! field is passed through in order. Each output line is that object plus `deid_text` and
//! `phi: [{"start", "end", "type"}]`, offsets in Unicode scalar values (Python `str` indices)
//! into the **original** text, end exclusive. A malformed line is reported by line number
//! (never by content) in [`Summary::errors`], no output is written for it, and processing goes
//! on; only I/O errors stop it. Blank lines are skipped.

use std::io::{BufRead, Write};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::{
    Engine, KnownIdentifiers, Mode, PhiKind, Redacted, SurrogateContext, TextError, char_offsets,
};

/// What a JSONL run did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Non-blank input lines seen.
    pub lines: usize,
    /// Lines de-identified and written.
    pub processed: usize,
    /// Lines skipped as malformed.
    pub malformed: usize,
    /// Spans found, by kind.
    pub spans_by_kind: std::collections::BTreeMap<PhiKind, usize>,
    /// Bytes of input text de-identified.
    pub text_bytes: usize,
    /// One error per malformed line (line numbers only).
    #[serde(skip)]
    pub errors: Vec<TextError>,
}

/// De-identifies a JSONL stream (see the module doc).
pub fn process_jsonl<R: BufRead, W: Write>(
    engine: &Engine,
    reader: R,
    mut writer: W,
    mode: Mode,
    ctx: Option<&SurrogateContext<'_>>,
) -> Result<Summary, TextError> {
    let mut summary = Summary::default();
    for (i, line) in reader.lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|source| TextError::Io {
            line: line_no,
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        summary.lines += 1;
        let mut obj: Map<String, Value> = match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                summary.malformed += 1;
                summary.errors.push(TextError::MalformedLine {
                    line: line_no,
                    reason: "not a JSON object",
                });
                continue;
            }
            Err(_) => {
                summary.malformed += 1;
                summary.errors.push(TextError::MalformedLine {
                    line: line_no,
                    reason: "invalid JSON",
                });
                continue;
            }
        };
        let Some(Value::String(text)) = obj.get("text") else {
            summary.malformed += 1;
            summary.errors.push(TextError::MalformedLine {
                line: line_no,
                reason: "missing string field `text`",
            });
            continue;
        };
        let text = text.clone();
        let red = engine.redact(&text, None::<&KnownIdentifiers>, mode, ctx);
        summary.text_bytes += text.len();
        for s in &red.spans {
            *summary.spans_by_kind.entry(s.kind).or_insert(0) += 1;
        }
        obj.insert("deid_text".into(), Value::String(red.text.clone()));
        obj.insert("phi".into(), phi_json(&text, &red));
        serde_json::to_writer(&mut writer, &Value::Object(obj)).map_err(|e| TextError::Io {
            line: line_no,
            source: e.into(),
        })?;
        writer.write_all(b"\n").map_err(|source| TextError::Io {
            line: line_no,
            source,
        })?;
        summary.processed += 1;
    }
    writer
        .flush()
        .map_err(|source| TextError::Io { line: 0, source })?;
    Ok(summary)
}

fn phi_json(text: &str, red: &Redacted) -> Value {
    Value::Array(
        char_offsets(text, &red.spans)
            .into_iter()
            .map(|(s, e, k)| json!({"start": s, "end": e, "type": k.name()}))
            .collect(),
    )
}

/// De-identifies one plain-text document (file mode of the CLI).
pub fn redact_plain(
    engine: &Engine,
    text: &str,
    known: Option<&KnownIdentifiers>,
    mode: Mode,
    ctx: Option<&SurrogateContext<'_>>,
) -> Redacted {
    engine.redact(text, known, mode, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_round_trip_and_malformed_lines() {
        let input = "{\"id\":1,\"text\":\"é seen by Dr. Adams on 3/14/2021\",\"keep\":true}\nnot json\n\n{\"id\":2}\n[1]\n";
        let mut out = Vec::new();
        let s = process_jsonl(
            Engine::builtin(),
            input.as_bytes(),
            &mut out,
            Mode::Tag,
            None,
        )
        .unwrap();
        assert_eq!((s.lines, s.processed, s.malformed), (4, 1, 3));
        let msgs: Vec<String> = s.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            [
                "line 2: invalid JSON",
                "line 4: missing string field `text`",
                "line 5: not a JSON object"
            ]
        );
        let v: Value = serde_json::from_slice(out.split(|b| *b == b'\n').next().unwrap()).unwrap();
        assert_eq!(v["keep"], true);
        assert_eq!(v["deid_text"], "é seen by [NAME] on [DATE]");
        let phi = v["phi"].as_array().unwrap();
        let text = "é seen by Dr. Adams on 3/14/2021";
        let chars: Vec<char> = text.chars().collect();
        let first: String = chars
            [phi[0]["start"].as_u64().unwrap() as usize..phi[0]["end"].as_u64().unwrap() as usize]
            .iter()
            .collect();
        assert_eq!(first, "Dr. Adams");
        assert_eq!(phi[1]["type"], "DATE");
    }
}
