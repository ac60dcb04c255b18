//! A lossless HL7 v2 model: message → segments → fields → repetitions → components →
//! subcomponents.
//!
//! # Representation
//! Leaves ([`Component::subcomponents`]) hold the **escaped** text exactly as it appeared, so
//! parsing then serialising gives back the same bytes. Values are decoded with
//! [`Delimiters::decode`] (which resolves `\F\ \S\ \T\ \R\ \E\ \P\ \Xhh..\ \.br\`) and written
//! with [`Delimiters::encode`], which escapes every delimiter, so a value can never break the
//! structure of the message.
//!
//! The delimiters come from `MSH-1` (field separator) and `MSH-2` (component, repetition,
//! escape, subcomponent and, from v2.7, truncation characters). In the model, `MSH` keeps
//! `MSH-1` and `MSH-2` as fields 1 and 2 (one raw leaf each) so field numbers match the standard
//! for every segment: [`Segment::field`]`(n)` is `XXX-n`.
//!
//! # Files and normalisation
//! [`split`] cuts a file into messages (each starts at an `MSH` segment). Segments may be
//! separated by `\r`, `\n` or `\r\n`. Parse → [`serialize_file`] is byte-identical to the input
//! **after** this documented normalisation: a leading UTF-8 BOM is dropped (and reported in
//! [`Hl7File::bom`]); every segment separator becomes the first one seen in the file
//! ([`Hl7File::terminator`]); blank lines are dropped; a final separator is kept iff the input
//! ended with one. Batch envelope segments (`FHS`, `BHS`, `BTS`, `FTS`) are set aside in
//! [`Hl7File::envelope`] and not re-emitted by [`serialize_file`].
//!
//! # Memory
//! The model costs far more than the text it holds (a vector per field, repetition and
//! component, a string per leaf: tens of bytes of heap for every byte of input), so a file is
//! never parsed whole. [`messages`] walks a file lazily, one [`MessageSpan`] (a borrowed byte
//! range) at a time, without allocating; the caller parses a span, uses the message and drops
//! it, so memory follows the largest message, not the file. [`MessageSpan::parse`] refuses a
//! message over [`MAX_MESSAGE_BYTES`] (or the limit set with [`Messages::max_message_bytes`])
//! with [`FormatError::Hl7MessageTooLarge`], naming its index and byte offset, before building
//! anything. [`split`] and [`parse_all`] keep every message of a file (and `parse_all` every
//! tree): they are for small inputs.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::fhir::count;
use crate::{FormatError, FormatSummary, strip_bom, utf8};

/// The default largest message [`MessageSpan::parse`] accepts, in bytes of the file (from the
/// start of its `MSH` segment to the end of its last segment): 1 MiB. Real messages are a few
/// kilobytes; one with a large embedded document (`OBX-5` of type `ED`) can reach hundreds.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The delimiters of a message (`MSH-1` and `MSH-2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    /// Field separator (`MSH-1`, usually `|`).
    pub field: char,
    /// Component separator (usually `^`).
    pub component: char,
    /// Repetition separator (usually `~`).
    pub repetition: char,
    /// Escape character (usually `\`).
    pub escape: char,
    /// Subcomponent separator (usually `&`).
    pub subcomponent: char,
    /// Truncation character (v2.7+, usually `#`), if declared.
    pub truncation: Option<char>,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters {
            field: '|',
            component: '^',
            repetition: '~',
            escape: '\\',
            subcomponent: '&',
            truncation: None,
        }
    }
}

impl Delimiters {
    /// Reads the delimiters from `MSH-1` and the raw `MSH-2` text.
    fn from_msh(field: char, enc: &str) -> Option<Delimiters> {
        let chars: Vec<char> = enc.chars().collect();
        let (component, repetition, escape, subcomponent, truncation) = match chars.as_slice() {
            [c, r, e, s] => (*c, *r, *e, *s, None),
            [c, r, e, s, t] => (*c, *r, *e, *s, Some(*t)),
            _ => return None,
        };
        let d = Delimiters {
            field,
            component,
            repetition,
            escape,
            subcomponent,
            truncation,
        };
        let mut all = vec![field, component, repetition, escape, subcomponent];
        all.extend(truncation);
        let distinct = {
            let mut s = all.clone();
            s.sort_unstable();
            s.dedup();
            s.len() == all.len()
        };
        let printable = all
            .iter()
            .all(|c| c.is_ascii_graphic() && !c.is_ascii_alphanumeric());
        (distinct && printable).then_some(d)
    }

    /// Decodes escaped HL7 text into its value.
    ///
    /// `\F\ \S\ \T\ \R\ \E\ \P\` become the delimiters, `\Xhh..\` the hex-encoded bytes (as
    /// UTF-8, lossy), `\.br\` a newline; formatting escapes (`\H\ \N\ \.sp\ \.in\ \Cxxyy\`
    /// ...) are dropped. An unterminated escape is kept literally.
    pub fn decode<'a>(&self, raw: &'a str) -> Cow<'a, str> {
        if !raw.contains(self.escape) {
            return Cow::Borrowed(raw);
        }
        let mut out: Vec<u8> = Vec::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(start) = rest.find(self.escape) {
            out.extend_from_slice(rest.get(..start).unwrap_or_default().as_bytes());
            let after = rest
                .get(start + self.escape.len_utf8()..)
                .unwrap_or_default();
            let Some(end) = after.find(self.escape) else {
                // Unterminated: keep the escape character and the rest literally.
                out.extend_from_slice(rest.get(start..).unwrap_or_default().as_bytes());
                rest = "";
                break;
            };
            let seq = after.get(..end).unwrap_or_default();
            let mut push = |c: char| {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            };
            match seq {
                "F" => push(self.field),
                "S" => push(self.component),
                "T" => push(self.subcomponent),
                "R" => push(self.repetition),
                "E" => push(self.escape),
                "P" => push(self.truncation.unwrap_or('#')),
                ".br" => push('\n'),
                s if s.starts_with('X') => {
                    let hex = s.get(1..).unwrap_or_default().as_bytes();
                    for pair in hex.chunks(2) {
                        let v = std::str::from_utf8(pair)
                            .ok()
                            .and_then(|p| u8::from_str_radix(p, 16).ok());
                        if let Some(v) = v {
                            out.push(v);
                        }
                    }
                }
                _ => {}
            }
            rest = after
                .get(end + self.escape.len_utf8()..)
                .unwrap_or_default();
        }
        out.extend_from_slice(rest.as_bytes());
        Cow::Owned(String::from_utf8_lossy(&out).into_owned())
    }

    /// Escapes a value so it can be stored in one leaf: every delimiter and line break is
    /// written as an escape sequence.
    pub fn encode<'a>(&self, value: &'a str) -> Cow<'a, str> {
        let special = |c: char| {
            c == self.field
                || c == self.component
                || c == self.repetition
                || c == self.escape
                || c == self.subcomponent
                || Some(c) == self.truncation
                || c == '\r'
                || c == '\n'
        };
        if !value.chars().any(special) {
            return Cow::Borrowed(value);
        }
        let e = self.escape;
        let mut out = String::with_capacity(value.len() + 8);
        for c in value.chars() {
            let code = if c == self.field {
                "F"
            } else if c == self.component {
                "S"
            } else if c == self.subcomponent {
                "T"
            } else if c == self.repetition {
                "R"
            } else if c == self.escape {
                "E"
            } else if Some(c) == self.truncation {
                "P"
            } else if c == '\r' {
                "X0D"
            } else if c == '\n' {
                ".br"
            } else {
                out.push(c);
                continue;
            };
            out.push(e);
            out.push_str(code);
            out.push(e);
        }
        Cow::Owned(out)
    }
}

/// A component: its subcomponents' escaped text (at least one, possibly empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Escaped text of each subcomponent.
    pub subcomponents: Vec<String>,
}

/// One repetition of a field: its components (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repetition {
    /// The components, in order.
    pub components: Vec<Component>,
}

/// A field: its repetitions (at least one; an empty field is one empty repetition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The repetitions, in order.
    pub repetitions: Vec<Repetition>,
}

/// A segment: its three-character id and its fields (`fields[0]` is field 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Segment id (`MSH`, `PID`, `ZXX`...).
    pub id: String,
    /// Fields; `fields[n - 1]` is `ID-n`.
    pub fields: Vec<Field>,
}

/// A parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Delimiters declared in `MSH-1`/`MSH-2`.
    pub delimiters: Delimiters,
    /// Segments in order; the first is `MSH`.
    pub segments: Vec<Segment>,
}

/// `raw` split at `sep`, each piece mapped by `f`, in a vector of exactly the right capacity.
///
/// `collect` over `split` cannot know the count and starts at four elements, so a field with
/// one repetition of one component (most of them) cost three 96-byte blocks instead of three
/// 24-byte ones; this per-leaf overhead was most of the model's memory.
fn split_exact<'s, T>(raw: &'s str, sep: char, f: impl FnMut(&'s str) -> T) -> Vec<T> {
    let mut out = Vec::with_capacity(raw.matches(sep).count() + 1);
    out.extend(raw.split(sep).map(f));
    out
}

impl Component {
    fn parse(raw: &str, d: &Delimiters) -> Component {
        Component {
            subcomponents: split_exact(raw, d.subcomponent, str::to_owned),
        }
    }

    /// A component holding one escaped leaf.
    pub fn leaf(raw: impl Into<String>) -> Component {
        Component {
            subcomponents: vec![raw.into()],
        }
    }

    /// The decoded value of the subcomponents joined by the subcomponent separator.
    pub fn value(&self, d: &Delimiters) -> String {
        let mut s = String::new();
        for (i, sub) in self.subcomponents.iter().enumerate() {
            if i > 0 {
                s.push(d.subcomponent);
            }
            s.push_str(&d.decode(sub));
        }
        s
    }

    /// Whether every subcomponent is empty.
    pub fn is_empty(&self) -> bool {
        self.subcomponents.iter().all(String::is_empty)
    }

    fn write(&self, d: &Delimiters, out: &mut String) {
        for (i, s) in self.subcomponents.iter().enumerate() {
            if i > 0 {
                out.push(d.subcomponent);
            }
            out.push_str(s);
        }
    }
}

impl Repetition {
    fn parse(raw: &str, d: &Delimiters) -> Repetition {
        Repetition {
            components: split_exact(raw, d.component, |c| Component::parse(c, d)),
        }
    }

    /// Component `n` (1-based), if present.
    pub fn component(&self, n: usize) -> Option<&Component> {
        self.components.get(n.checked_sub(1)?)
    }

    /// Mutable component `n` (1-based), if present.
    pub fn component_mut(&mut self, n: usize) -> Option<&mut Component> {
        self.components.get_mut(n.checked_sub(1)?)
    }

    /// Whether every component is empty.
    pub fn is_empty(&self) -> bool {
        self.components.iter().all(Component::is_empty)
    }

    fn write(&self, d: &Delimiters, out: &mut String) {
        for (i, c) in self.components.iter().enumerate() {
            if i > 0 {
                out.push(d.component);
            }
            c.write(d, out);
        }
    }
}

impl Field {
    fn parse(raw: &str, d: &Delimiters) -> Field {
        Field {
            repetitions: split_exact(raw, d.repetition, |r| Repetition::parse(r, d)),
        }
    }

    /// An empty field.
    pub fn empty() -> Field {
        Field::raw(String::new())
    }

    /// A field made of one raw (already escaped) leaf.
    pub fn raw(raw: impl Into<String>) -> Field {
        Field {
            repetitions: vec![Repetition {
                components: vec![Component::leaf(raw)],
            }],
        }
    }

    /// A field holding one value, escaped for `d`.
    pub fn from_value(value: &str, d: &Delimiters) -> Field {
        Field::raw(d.encode(value).into_owned())
    }

    /// Whether the field is empty (every leaf empty).
    pub fn is_empty(&self) -> bool {
        self.repetitions.iter().all(Repetition::is_empty)
    }

    /// The decoded value of component 1 of repetition 1 (`""` when absent).
    pub fn first_value(&self, d: &Delimiters) -> String {
        self.repetitions
            .first()
            .and_then(|r| r.component(1))
            .map(|c| c.value(d))
            .unwrap_or_default()
    }

    /// All leaves (escaped text), mutable, in order.
    pub fn leaves_mut(&mut self) -> impl Iterator<Item = &mut String> {
        self.repetitions
            .iter_mut()
            .flat_map(|r| r.components.iter_mut())
            .flat_map(|c| c.subcomponents.iter_mut())
    }

    /// All leaves (escaped text), in order.
    pub fn leaves(&self) -> impl Iterator<Item = &String> {
        self.repetitions
            .iter()
            .flat_map(|r| r.components.iter())
            .flat_map(|c| c.subcomponents.iter())
    }

    fn write(&self, d: &Delimiters, out: &mut String) {
        for (i, r) in self.repetitions.iter().enumerate() {
            if i > 0 {
                out.push(d.repetition);
            }
            r.write(d, out);
        }
    }
}

impl Segment {
    /// Field `n` (1-based: `PID-3` is `field(3)`), if present.
    pub fn field(&self, n: usize) -> Option<&Field> {
        self.fields.get(n.checked_sub(1)?)
    }

    /// Mutable field `n` (1-based), if present.
    pub fn field_mut(&mut self, n: usize) -> Option<&mut Field> {
        self.fields.get_mut(n.checked_sub(1)?)
    }

    /// Whether this is the `MSH` header (whose fields 1 and 2 are the delimiters).
    pub fn is_header(&self) -> bool {
        self.id == "MSH"
    }

    fn write(&self, d: &Delimiters, out: &mut String) {
        out.push_str(&self.id);
        let skip = if self.is_header() {
            // MSH-1 is the separator itself: write MSH-2 raw right after it.
            out.push(d.field);
            if let Some(enc) = self.fields.get(1) {
                for leaf in enc.leaves() {
                    out.push_str(leaf);
                }
            }
            2
        } else {
            0
        };
        for f in self.fields.iter().skip(skip) {
            out.push(d.field);
            f.write(d, out);
        }
    }
}

impl Message {
    /// Parses one message from its text (segments separated by `\r`, `\n` or `\r\n`; blank
    /// lines ignored; a BOM allowed).
    pub fn parse(text: &str) -> Result<Message, FormatError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        parse_lines(segment_lines(text), 0)
    }

    /// The first segment with this id.
    pub fn segment(&self, id: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.id == id)
    }

    /// The message type from `MSH-9` (`ADT^A01`), components 1 and 2.
    pub fn message_type(&self) -> String {
        let d = &self.delimiters;
        let Some(f) = self.segment("MSH").and_then(|s| s.field(9)) else {
            return String::new();
        };
        let Some(rep) = f.repetitions.first() else {
            return String::new();
        };
        let code = rep.component(1).map(|c| c.value(d)).unwrap_or_default();
        let event = rep.component(2).map(|c| c.value(d)).unwrap_or_default();
        if event.is_empty() {
            code
        } else {
            format!("{code}^{event}")
        }
    }

    /// Serialises the message with `terminator` between segments (none after the last).
    pub fn serialize(&self, terminator: Terminator) -> String {
        let mut out = String::new();
        self.write(terminator, &mut out);
        out
    }

    /// Appends what [`Message::serialize`] returns to `out` (to reuse one buffer across the
    /// messages of a file).
    pub fn serialize_into(&self, terminator: Terminator, out: &mut String) {
        self.write(terminator, out);
    }

    fn write(&self, terminator: Terminator, out: &mut String) {
        for (i, s) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push_str(terminator.as_str());
            }
            s.write(&self.delimiters, out);
        }
    }
}

/// A segment separator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Terminator {
    /// `\r`, the standard one.
    #[default]
    Cr,
    /// `\n`.
    Lf,
    /// `\r\n`.
    CrLf,
}

impl Terminator {
    /// The separator text.
    pub fn as_str(self) -> &'static str {
        match self {
            Terminator::Cr => "\r",
            Terminator::Lf => "\n",
            Terminator::CrLf => "\r\n",
        }
    }
}

/// The segments of one message in a file, not yet parsed (see [`RawMessage::parse`]).
#[derive(Debug, Clone)]
pub struct RawMessage<'a> {
    /// 0-based message index in the file.
    pub index: u64,
    /// `(1-based line, segment text)` pairs.
    pub lines: Vec<(u64, &'a str)>,
}

impl RawMessage<'_> {
    /// Parses this message; the error names the message, line and segment.
    pub fn parse(&self) -> Result<Message, FormatError> {
        parse_lines(self.lines.iter().copied(), self.index)
    }

    /// 1-based line of the first segment.
    pub fn first_line(&self) -> u64 {
        self.lines.first().map_or(0, |(l, _)| *l)
    }
}

/// An HL7 file cut into messages.
#[derive(Debug, Clone)]
pub struct Hl7File<'a> {
    /// Whether the input started with a UTF-8 BOM (dropped).
    pub bom: bool,
    /// The first segment separator seen (`\r` when there is none).
    pub terminator: Terminator,
    /// Whether the input ended with a segment separator.
    pub trailing_terminator: bool,
    /// Batch envelope segments (`FHS`, `BHS`, `BTS`, `FTS`), set aside.
    pub envelope: Vec<(u64, &'a str)>,
    /// The messages, in order. Lines before the first `MSH` that are not envelope segments
    /// form a message of their own, which fails to parse (it does not start with `MSH`).
    pub messages: Vec<RawMessage<'a>>,
}

/// Cuts an HL7 file into messages. Fails only when the input is not UTF-8.
pub fn split(bytes: &[u8]) -> Result<Hl7File<'_>, FormatError> {
    let bom = bytes.starts_with(crate::UTF8_BOM);
    let text = utf8(strip_bom(bytes))?;
    let terminator = first_terminator(text);
    let trailing_terminator = text.ends_with(['\r', '\n']);
    let mut envelope = Vec::new();
    let mut messages: Vec<RawMessage<'_>> = Vec::new();
    for (line, seg) in segment_lines(text) {
        if is_envelope(seg) {
            envelope.push((line, seg));
            continue;
        }
        let start_new = seg_id(seg) == "MSH" || messages.is_empty();
        if start_new {
            messages.push(RawMessage {
                index: messages.len() as u64,
                lines: Vec::new(),
            });
        }
        if let Some(m) = messages.last_mut() {
            m.lines.push((line, seg));
        }
    }
    Ok(Hl7File {
        bom,
        terminator,
        trailing_terminator,
        envelope,
        messages,
    })
}

/// Parses every message of a file (the first error wins). For per-message quarantine use
/// [`split`] and [`RawMessage::parse`].
pub fn parse_all(bytes: &[u8]) -> Result<(Hl7File<'_>, Vec<Message>), FormatError> {
    let file = split(bytes)?;
    let msgs = file
        .messages
        .iter()
        .map(RawMessage::parse)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((file, msgs))
}

/// Serialises messages as a file: segments and messages separated by `terminator`, plus a
/// final one when `trailing_terminator` (no BOM, no envelope).
pub fn serialize_file(
    messages: &[Message],
    terminator: Terminator,
    trailing_terminator: bool,
) -> String {
    let mut out = String::new();
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push_str(terminator.as_str());
        }
        m.write(terminator, &mut out);
    }
    if trailing_terminator && !messages.is_empty() {
        out.push_str(terminator.as_str());
    }
    out
}

/// Validates HL7 v2 (see [`crate::validate`]): every message parses and has `MSH-9` (message
/// type) and `MSH-12` (version).
///
/// Messages are read one at a time (see [`messages`]); one over [`MAX_MESSAGE_BYTES`] is an
/// error.
pub fn validate(bytes: &[u8]) -> Result<FormatSummary, FormatError> {
    let mut summary = FormatSummary::default();
    let mut any = false;
    for raw in messages(bytes)? {
        any = true;
        let m = raw.parse()?;
        let msh = m.segment("MSH");
        for (n, reason) in [
            (9, "missing `MSH-9` (message type)"),
            (12, "missing `MSH-12` (version)"),
        ] {
            if msh.and_then(|s| s.field(n)).is_none_or(Field::is_empty) {
                return Err(FormatError::Hl7 {
                    message: raw.index,
                    line: raw.line,
                    segment: "MSH".into(),
                    reason,
                });
            }
        }
        count(&mut summary.message_types, &m.message_type());
        summary.records += 1;
    }
    if !any {
        return Err(FormatError::Empty);
    }
    Ok(summary)
}

/// Non-blank segments with their 1-based line numbers (`\r\n` counts as one break).
fn segment_lines(text: &str) -> impl Iterator<Item = (u64, &str)> {
    Segments::new(text, 0).map(|(line, _, seg)| (line, seg))
}

/// The non-blank segments of a text, lazily: `(1-based line, byte offset, text)`. A line ends
/// at `\r`, `\n` or `\r\n`; lines that are only whitespace are skipped.
#[derive(Debug, Clone)]
struct Segments<'a> {
    text: &'a str,
    /// Next byte to read.
    pos: usize,
    /// Lines read so far (plus the line number the text starts after).
    line: u64,
}

impl<'a> Segments<'a> {
    /// `text`'s segments, its first line being `first_line_after + 1`.
    fn new(text: &'a str, first_line_after: u64) -> Segments<'a> {
        Segments {
            text,
            pos: 0,
            line: first_line_after,
        }
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = (u64, usize, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let start = self.pos;
            let rest = self.text.get(start..).filter(|r| !r.is_empty())?;
            self.line += 1;
            let (piece, advance) = match memchr::memchr2(b'\r', b'\n', rest.as_bytes()) {
                Some(i) => {
                    let crlf = rest.get(i..i + 2) == Some("\r\n");
                    (
                        rest.get(..i).unwrap_or_default(),
                        i + if crlf { 2 } else { 1 },
                    )
                }
                None => (rest, rest.len()),
            };
            self.pos = start + advance;
            if !piece.trim().is_empty() {
                return Some((self.line, start, piece));
            }
        }
    }
}

/// A segment's id as [`split`] reads it: its first three bytes (the whole text when shorter).
fn seg_id(seg: &str) -> &str {
    seg.get(..3).unwrap_or(seg)
}

/// Whether a segment is a batch envelope segment (set aside, never part of a message).
fn is_envelope(seg: &str) -> bool {
    matches!(seg_id(seg), "FHS" | "BHS" | "BTS" | "FTS")
}

/// The first segment separator of a text (`\r` when there is none).
fn first_terminator(text: &str) -> Terminator {
    match text.find(['\r', '\n']) {
        Some(i) if text.get(i..i + 2) == Some("\r\n") => Terminator::CrLf,
        Some(i) if text.get(i..=i) == Some("\r") => Terminator::Cr,
        Some(_) => Terminator::Lf,
        None => Terminator::Cr,
    }
}

/// Walks an HL7 file one message at a time (see the [module docs](self#memory)). Fails only
/// when the input is not UTF-8.
///
/// Messages are cut exactly as [`split`] cuts them (each starts at an `MSH` segment; lines
/// before the first `MSH` that are not envelope segments form a message of their own, which
/// fails to parse); envelope segments are skipped.
pub fn messages(bytes: &[u8]) -> Result<Messages<'_>, FormatError> {
    let bom = bytes.starts_with(crate::UTF8_BOM);
    let text = utf8(strip_bom(bytes))?;
    Ok(Messages {
        segments: Segments::new(text, 0),
        base: bytes.len() - text.len(),
        pending: None,
        index: 0,
        limit: MAX_MESSAGE_BYTES,
        bom,
        terminator: first_terminator(text),
        trailing_terminator: text.ends_with(['\r', '\n']),
    })
}

/// The messages of an HL7 file, lazily (see [`messages`]): an iterator of [`MessageSpan`]s.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    segments: Segments<'a>,
    /// Bytes before the text (the BOM), so offsets count from the start of the input.
    base: usize,
    /// The `MSH` segment that ended the previous message and starts the next one.
    pending: Option<(u64, usize, &'a str)>,
    index: u64,
    limit: usize,
    bom: bool,
    terminator: Terminator,
    trailing_terminator: bool,
}

impl Messages<'_> {
    /// Sets the largest message [`MessageSpan::parse`] accepts, in bytes (default
    /// [`MAX_MESSAGE_BYTES`]).
    #[must_use]
    pub fn max_message_bytes(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Whether the input started with a UTF-8 BOM (skipped).
    pub fn bom(&self) -> bool {
        self.bom
    }

    /// The first segment separator in the input (`\r` when there is none).
    pub fn terminator(&self) -> Terminator {
        self.terminator
    }

    /// Whether the input ended with a segment separator.
    pub fn trailing_terminator(&self) -> bool {
        self.trailing_terminator
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = MessageSpan<'a>;

    fn next(&mut self) -> Option<MessageSpan<'a>> {
        let (line, start, first) = loop {
            let seg = self.pending.take().or_else(|| self.segments.next())?;
            if !is_envelope(seg.2) {
                break seg;
            }
        };
        // The message runs to the end of its last segment before the next `MSH`; envelope
        // segments inside that range stay in the text and are skipped when it is parsed.
        let mut end = start + first.len();
        for seg in self.segments.by_ref() {
            if is_envelope(seg.2) {
                continue;
            }
            if seg_id(seg.2) == "MSH" {
                self.pending = Some(seg);
                break;
            }
            end = seg.1 + seg.2.len();
        }
        let index = self.index;
        self.index += 1;
        Some(MessageSpan {
            index,
            offset: (self.base + start) as u64,
            line,
            text: self.segments.text.get(start..end).unwrap_or_default(),
            limit: self.limit,
        })
    }
}

/// One message of a file as a byte range of the input, not yet parsed.
#[derive(Debug, Clone)]
pub struct MessageSpan<'a> {
    /// 0-based message index in the file.
    pub index: u64,
    /// Byte offset of its first segment in the input (a BOM included).
    pub offset: u64,
    /// 1-based line of its first segment.
    pub line: u64,
    /// Its text, from the start of its first segment to the end of its last (segment
    /// separators, blank lines and envelope segments in between included).
    pub text: &'a str,
    limit: usize,
}

impl MessageSpan<'_> {
    /// Parses this message; the error names the message, line and segment. A message longer
    /// than the limit (see [`Messages::max_message_bytes`]) is refused before anything is
    /// built, by index and byte offset.
    pub fn parse(&self) -> Result<Message, FormatError> {
        if self.text.len() > self.limit {
            return Err(FormatError::Hl7MessageTooLarge {
                message: self.index,
                offset: self.offset,
                line: self.line,
                size: self.text.len() as u64,
                limit: self.limit as u64,
            });
        }
        let segments = Segments::new(self.text, self.line.saturating_sub(1))
            .filter(|(_, _, seg)| !is_envelope(seg))
            .map(|(line, _, seg)| (line, seg));
        parse_lines(segments, self.index)
    }
}

fn hl7_err(message: u64, line: u64, segment: &str, reason: &'static str) -> FormatError {
    let segment = if is_segment_id(segment) {
        segment.to_owned()
    } else {
        "?".to_owned()
    };
    FormatError::Hl7 {
        message,
        line,
        segment,
        reason,
    }
}

fn is_segment_id(s: &str) -> bool {
    s.len() == 3
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && s.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
}

fn parse_lines<'s>(
    mut lines: impl Iterator<Item = (u64, &'s str)>,
    index: u64,
) -> Result<Message, FormatError> {
    let Some((first_line, msh)) = lines.next() else {
        return Err(hl7_err(index, 0, "?", "empty message"));
    };
    if !msh.starts_with("MSH") {
        return Err(hl7_err(
            index,
            first_line,
            msh.get(..3).unwrap_or("?"),
            "message does not start with `MSH`",
        ));
    }
    let Some(field_sep) = msh.get(3..).and_then(|s| s.chars().next()) else {
        return Err(hl7_err(index, first_line, "MSH", "truncated `MSH` segment"));
    };
    let after_sep = msh.get(3 + field_sep.len_utf8()..).unwrap_or_default();
    let enc = after_sep.split(field_sep).next().unwrap_or_default();
    let Some(d) = Delimiters::from_msh(field_sep, enc) else {
        return Err(hl7_err(
            index,
            first_line,
            "MSH",
            "invalid encoding characters in `MSH-1`/`MSH-2`",
        ));
    };
    let mut segments = Vec::new();
    for (line, text) in std::iter::once((first_line, msh)).chain(lines) {
        let mut parts = text.split(d.field);
        let id = parts.next().unwrap_or_default();
        if !is_segment_id(id) {
            return Err(hl7_err(index, line, id, "invalid segment id"));
        }
        let fields = if id == "MSH" {
            if line != first_line {
                return Err(hl7_err(index, line, id, "second `MSH` in one message"));
            }
            let mut fields = Vec::with_capacity(text.matches(d.field).count() + 1);
            fields.push(Field::raw(d.field.to_string()));
            fields.push(Field::raw(parts.next().unwrap_or_default()));
            fields.extend(parts.map(|f| Field::parse(f, &d)));
            fields
        } else {
            let mut fields = Vec::with_capacity(text.matches(d.field).count());
            fields.extend(parts.map(|f| Field::parse(f, &d)));
            fields
        };
        segments.push(Segment {
            id: id.to_owned(),
            fields,
        });
    }
    Ok(Message {
        delimiters: d,
        segments,
    })
}

/// Message-type counts for a list of messages.
pub fn message_type_counts(messages: &[Message]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for msg in messages {
        count(&mut m, &msg.message_type());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "MSH|^~\\&|APP|FAC|||20240101||ADT^A01|1|P|2.5\rPID|1||123^^^H^MR~987-65-4320^^^SSA^SS||DOE^JANE^Q||19700101|F|||1 MAIN ST^^BOSTON^MA^02115||555-1212\rNTE|1||A\\T\\E pain\\.br\\next\r";

    #[test]
    fn parse_navigate_round_trip() {
        let (file, msgs) = parse_all(SAMPLE.as_bytes()).unwrap();
        assert_eq!(msgs.len(), 1);
        let m = &msgs[0];
        assert_eq!(m.message_type(), "ADT^A01");
        let pid = m.segment("PID").unwrap();
        let pid3 = pid.field(3).unwrap();
        assert_eq!(pid3.repetitions.len(), 2);
        assert_eq!(
            pid3.repetitions[1]
                .component(5)
                .unwrap()
                .value(&m.delimiters),
            "SS"
        );
        assert_eq!(pid.field(5).unwrap().first_value(&m.delimiters), "DOE");
        let nte = m.segment("NTE").unwrap();
        assert_eq!(
            nte.field(3).unwrap().first_value(&m.delimiters),
            "A&E pain\nnext"
        );
        assert_eq!(
            m.segment("MSH")
                .unwrap()
                .field(12)
                .unwrap()
                .first_value(&m.delimiters),
            "2.5"
        );
        let out = serialize_file(&msgs, file.terminator, file.trailing_terminator);
        assert_eq!(out, SAMPLE);
    }

    #[test]
    fn encode_decode_inverse() {
        let d = Delimiters::default();
        for v in ["plain", "a|b^c~d\\e&f", "line\nbreak", "x\\F\\y", ""] {
            assert_eq!(d.decode(&d.encode(v)), v);
        }
        assert_eq!(d.decode("\\X414243\\"), "ABC");
        assert_eq!(d.decode("bold \\H\\x\\N\\"), "bold x");
        assert_eq!(d.decode("open \\F"), "open \\F");
    }

    #[test]
    fn errors_and_separators() {
        assert!(matches!(
            Message::parse("PID|1"),
            Err(FormatError::Hl7 { .. })
        ));
        assert!(Message::parse("MSH|^~").is_err());
        assert!(Message::parse("MSH").is_err());
        let e = Message::parse("MSH|^~\\&|A\npi d|x").unwrap_err();
        assert!(matches!(e, FormatError::Hl7 { line: 2, .. }), "{e}");
        let text = "\u{feff}MSH|^~\\&|A||||||ADT^A01|1|P|2.3\r\nPID|1\r\n\r\nMSH|^~\\&|B||||||ORU^R01|2|P|2.3\r\nOBX|1\r\n";
        let file = split(text.as_bytes()).unwrap();
        assert!(file.bom);
        assert_eq!(file.terminator, Terminator::CrLf);
        assert_eq!(file.messages.len(), 2);
        assert_eq!(file.messages[1].first_line(), 4);
        let s = validate(text.as_bytes()).unwrap();
        assert_eq!(s.records, 2);
        assert_eq!(s.message_types.get("ORU^R01"), Some(&1));
        assert!(validate(b"MSH|^~\\&|A\rPID|1").is_err());
    }

    #[test]
    fn field_set_value_is_escaped() {
        let mut m = Message::parse(SAMPLE).unwrap();
        let d = m.delimiters;
        let pid = m.segments.iter_mut().find(|s| s.id == "PID").unwrap();
        *pid.field_mut(5).unwrap() = Field::from_value("X|Y^Z", &d);
        let text = m.serialize(Terminator::Cr);
        let again = Message::parse(&text).unwrap();
        assert_eq!(
            again
                .segment("PID")
                .unwrap()
                .field(5)
                .unwrap()
                .first_value(&d),
            "X|Y^Z"
        );
        assert_eq!(again.segment("PID").unwrap().fields.len(), 13);
    }
}
