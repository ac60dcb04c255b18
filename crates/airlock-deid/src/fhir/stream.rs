//! The FHIR walk on a token [`Tape`]: the fast path for FHIR JSON and NDJSON.
//!
//! It makes the same decisions as the tree walk in the parent module, in the same order, with
//! the same bookkeeping (change counters, leak values, quarantine), and shares its rule
//! matching ([`Walk`]), type inference ([`infer_type_of`]) and leaf handling
//! ([`leaf_decide`]); what differs is that it reads the input through the tape instead of a
//! `serde_json::Value` tree and writes the output as it goes: unchanged values are copied from
//! the input (already in `serde_json`'s compact form, or re-spelled into it), changed ones are
//! written in their place, and a removed member or an emptied object or array is cut back out
//! of the output. The bytes are those `serde_json::to_vec` would write for the tree walk's
//! result; `tests/fast_path.rs` checks this on the shared Synthea data and on generated
//! resources.
//!
//! Patients, practitioners and relatives (one or a few per document) are read into a `Value`
//! for the pre-scan, which collects their identifiers with the tree code. Profiles with
//! `[rare_codes]` are not handled here (the caller uses the tree walk for them).

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use base64::Engine as _;
use serde_json::Value;

use super::{
    FxHasher, HasKey, LeafOut, LeafVal, RuleIndex, Shape, Walk, infer_type_of, leaf_decide,
    min_rule, prescan_patient, ref_id,
};
use crate::engine::Run;
use crate::leak::{Findings, LeakKind, Scanner};
use crate::profile::FhirRule;
use crate::report::{LeakHit, Quarantined};
use crate::tape::{ARR, FALSE, NULL, NUM, OBJ, STR, TRUE, Tape, keybit};

/// An object on the tape, asked which keys it has.
struct TapeKeys<'t, 'a> {
    tape: &'t Tape<'a>,
    obj: usize,
}

impl HasKey for TapeKeys<'_, '_> {
    fn has(&self, key: &str) -> bool {
        match keybit::of(key.as_bytes()) {
            0 => self.tape.get(self.obj, key).is_some(),
            bit => self.tape.keys(self.obj) & bit != 0,
        }
    }
}

/// [`super::infer_type`] of tape value `i`.
fn infer(
    tape: &Tape<'_>,
    key: &str,
    i: usize,
    parent: Option<&'static str>,
) -> Option<&'static str> {
    match tape.kind(i) {
        OBJ => infer_type_of(key, Shape::Object(&TapeKeys { tape, obj: i }), parent),
        STR => {
            let s = tape.str(i);
            infer_type_of::<TapeKeys<'_, '_>>(key, Shape::Str(&s), parent)
        }
        NUM => infer_type_of::<TapeKeys<'_, '_>>(key, Shape::Number, parent),
        TRUE | FALSE => infer_type_of::<TapeKeys<'_, '_>>(key, Shape::Bool, parent),
        _ => infer_type_of::<TapeKeys<'_, '_>>(key, Shape::Other, parent),
    }
}

/// [`super::check_resource`] on the tape.
pub(crate) fn check_resource(tape: &Tape<'_>, i: usize) -> Result<(), &'static str> {
    match tape.kind(i) {
        OBJ => match tape.get(i, "resourceType") {
            Some(t) if tape.kind(t) == STR => Ok(()),
            _ => Err("missing `resourceType`"),
        },
        _ => Err("not a json object"),
    }
}

/// [`super::prescan`] on the tape: Patients are read into a `Value` and registered by the
/// tree code.
pub(crate) fn prescan(run: &mut Run<'_>, tape: &Tape<'_>, root: usize) {
    let before = run.leaks.version();
    let patient = |r: usize| {
        tape.get_str(r, "resourceType")
            .is_some_and(|t| super::prescanned(&t))
    };
    if tape.get_str(root, "resourceType").as_deref() == Some("Bundle") {
        if let Some(entries) = tape.get(root, "entry").filter(|&e| tape.kind(e) == ARR) {
            for e in tape.items(entries) {
                if let Some(r) = tape.get(e, "resource")
                    && patient(r)
                    && let Some(v) = tape.to_value(r)
                {
                    let full_url = tape.get_str(e, "fullUrl");
                    prescan_patient(run, &v, full_url.as_deref());
                }
            }
        }
    } else if patient(root)
        && let Some(v) = tape.to_value(root)
    {
        prescan_patient(run, &v, None);
    }
    if run.leaks.version() != before {
        run.refresh_scrub();
    }
}

/// [`super::deid_document`] on the tape: writes the de-identified document to `out`.
pub(crate) fn deid_document(
    run: &mut Run<'_>,
    index: &RuleIndex,
    tape: &Tape<'_>,
    file: &str,
    line: u64,
    out: &mut Vec<u8>,
    collected: &mut Collected,
) {
    let root = 0;
    prescan(run, tape, root);
    let profile = run.profile;
    let rules = profile.fhir_rules();
    let mut skip = Vec::new();
    let bundle = tape.get_str(root, "resourceType").as_deref() == Some("Bundle");
    if bundle {
        if let Some(entries) = tape.get(root, "entry").filter(|&e| tape.kind(e) == ARR) {
            let mut total = 0u64;
            for (i, e) in tape.items(entries).enumerate() {
                total += 1;
                if let Some(r) = tape.get(e, "resource")
                    && let Err(reason) = check_resource(tape, r)
                {
                    run.quarantined.push(Quarantined {
                        file: file.to_owned(),
                        record: i as u64,
                        line,
                        path: format!("entry[{i}].resource"),
                        reason: reason.to_owned(),
                    });
                    skip.push(i);
                }
            }
            run.records_in += total;
            run.records_out += total - skip.len() as u64;
        }
    } else {
        run.records_in += 1;
        run.records_out += 1;
    }
    // The leak check reads the entries of a Bundle, or the whole resource.
    let mut emit = Emit {
        tape,
        out,
        collected,
        scan: !bundle,
        bundle,
    };
    emit.resource(run, rules, index, root, Some(&skip));
}

/// [`super::resource_patient`] on the tape.
fn resource_patient(run: &Run<'_>, tape: &Tape<'_>, r: usize) -> Option<String> {
    if tape.get_str(r, "resourceType").as_deref() == Some("Patient") {
        let id = tape.get_str(r, "id").unwrap_or_default();
        return run
            .patients
            .get(id.as_ref())
            .cloned()
            .or_else(|| tape.to_value(r).as_ref().and_then(super::patient_mrn));
    }
    for key in ["subject", "patient", "beneficiary"] {
        if let Some(reference) = tape.get(r, key).and_then(|s| tape.get_str(s, "reference"))
            && let Some(id) = ref_id(&reference)
            && let Some(m) = run.patients.get(id)
        {
            return Some(m.clone());
        }
    }
    if run.known.len() == 1 {
        return run.known.keys().next().cloned();
    }
    None
}

/// [`super::is_resource_like`] on the tape.
fn is_resource_like(tape: &Tape<'_>, i: usize) -> bool {
    match tape.kind(i) {
        OBJ => tape.get(i, "resourceType").is_some(),
        ARR => tape.items(i).any(|x| tape.get(x, "resourceType").is_some()),
        _ => false,
    }
}

/// The output strings the leak check reads, gathered while the output is written (see
/// [`check_collected`]).
#[derive(Debug, Default)]
pub(crate) struct Collected {
    spans: Vec<Span>,
    /// Something the quick check does not model (a key ending in `.data`, an output part
    /// written by the tree walk): the full scan runs.
    complex: bool,
    /// Where the output being written starts in the whole output (NDJSON lines).
    base: usize,
}

impl Collected {
    /// The output written next starts at `base` in the whole output.
    pub(crate) fn set_base(&mut self, base: usize) {
        self.base = base;
    }

    /// Some output was written without gathering its strings.
    pub(crate) fn set_incomplete(&mut self) {
        self.complex = true;
    }

    /// Forgets what was gathered.
    pub(crate) fn clear(&mut self) {
        self.spans.clear();
        self.complex = false;
    }
}

/// One output string.
#[derive(Debug, Clone, Copy)]
struct Span {
    /// Its content in the output (between the quotes, as written).
    start: usize,
    end: usize,
    /// Under a `data` key (with an attachment's `data` key in its object, which it is): the
    /// scan decodes it as base64 text.
    decode: bool,
    /// Written with escapes.
    escaped: bool,
}

/// The walk's output side.
struct Emit<'t, 'a, 'o> {
    tape: &'t Tape<'a>,
    out: &'o mut Vec<u8>,
    collected: &'o mut Collected,
    /// Whether the strings written now are read by the leak check.
    scan: bool,
    /// The document is a Bundle.
    bundle: bool,
}

impl Emit<'_, '_, '_> {
    /// Records the string just written, whose content started at `start`, under `key`.
    fn span(&mut self, start: usize, escaped: bool, key: &str) {
        if !self.scan {
            return;
        }
        let decode = key == "data";
        if !decode && key.ends_with(".data") {
            self.collected.complex = true;
        }
        let base = self.collected.base;
        self.collected.spans.push(Span {
            start: base + start,
            end: base + self.out.len().saturating_sub(1),
            decode,
            escaped,
        });
    }

    /// Writes value `v` (under `key`) as it is.
    fn verbatim(&mut self, v: usize, key: &str) {
        let tape = self.tape;
        if !self.scan {
            tape.write(v, self.out);
            return;
        }
        match tape.kind(v) {
            STR => {
                let start = self.out.len() + 1;
                let escaped = tape.write_str(v, self.out);
                self.span(start, escaped, key);
            }
            OBJ => {
                self.out.push(b'{');
                for (n, (k, x)) in tape.members(v).enumerate() {
                    self.sep(n);
                    self.key(k);
                    self.verbatim(x, tape.raw(k));
                }
                self.out.push(b'}');
            }
            ARR => {
                self.out.push(b'[');
                for (n, x) in tape.items(v).enumerate() {
                    self.sep(n);
                    self.verbatim(x, key);
                }
                self.out.push(b']');
            }
            _ => tape.write(v, self.out),
        }
    }

    /// Writes a replacement value (under `key`) as serde_json would.
    fn value(&mut self, v: &Value, key: &str) {
        match v {
            Value::String(s) => {
                let start = self.out.len() + 1;
                let escaped = crate::tape::write_escaped(s, self.out);
                self.span(start, escaped, key);
            }
            // Writing to a Vec cannot fail, and a Value has only string keys.
            other => {
                let _ = serde_json::to_writer(&mut *self.out, other);
            }
        }
    }

    /// `,` before every member or item but the first.
    fn sep(&mut self, written: usize) {
        if written > 0 {
            self.out.push(b',');
        }
    }

    fn key(&mut self, k: usize) {
        self.tape.write_str(k, self.out);
        self.out.push(b':');
    }

    /// [`super::deid_resource`]: resource `r` with its own walk context. `skip`: entries of
    /// the root's `entry` array already quarantined.
    fn resource(
        &mut self,
        run: &mut Run<'_>,
        rules: &[FhirRule],
        index: &RuleIndex,
        r: usize,
        top: Option<&[usize]>,
    ) {
        let tape = self.tape;
        if tape.kind(r) != OBJ {
            self.verbatim(r, "resource");
            return;
        }
        let resource_type = tape
            .get_str(r, "resourceType")
            .map_or_else(|| "Resource".to_owned(), Cow::into_owned);
        let resource_id = tape.get_str(r, "id").unwrap_or_default().into_owned();
        let mrn = resource_patient(run, tape, r);
        let path_buf = resource_type.clone();
        let mut walk = Walk {
            rules,
            index,
            resource_type,
            resource_id,
            mrn,
            chain: Vec::new(),
            path_buf,
        };
        let inherited = walk.direct_rule();
        let mark = self.out.len();
        self.object(run, &mut walk, r, inherited, None, top);
        // The Patient as written, for its residual quasi-identifiers: one small resource per
        // patient read back, rather than a second pass over the output.
        if walk.resource_type == "Patient"
            && let Some(p) = self
                .out
                .get(mark..)
                .and_then(|b| serde_json::from_slice::<Value>(b).ok())
        {
            run.patient_qis.fhir_patient(&p);
        }
    }

    /// [`super::walk_object`]: writes object `obj` and returns how many members it kept.
    /// `top`: the document's root, with the entries of its `entry` array already quarantined.
    fn object(
        &mut self,
        run: &mut Run<'_>,
        w: &mut Walk<'_>,
        obj: usize,
        inherited: Option<usize>,
        self_ty: Option<&'static str>,
        top: Option<&[usize]>,
    ) -> usize {
        let tape = self.tape;
        // CodeableConcept.text equal to a coding display is terminology, not free text.
        let cc_text_is_display = self_ty == Some("CodeableConcept")
            && tape.get_str(obj, "text").is_some_and(|t| {
                tape.get(obj, "coding")
                    .filter(|&c| tape.kind(c) == ARR)
                    .is_some_and(|c| {
                        tape.items(c)
                            .any(|c| tape.get_str(c, "display").as_deref() == Some(&*t))
                    })
            });
        let root = w.chain.is_empty();
        self.out.push(b'{');
        let mut written = 0usize;
        for (kt, v) in tape.members(obj) {
            let k = tape.raw(kt);
            if k == "resourceType" && root {
                self.sep(written);
                self.key(kt);
                self.verbatim(v, k);
                written += 1;
                continue;
            }
            // Nested resources (Bundle.entry.resource, contained, Parameters) get their own
            // context.
            if (k == "resource" || k == "contained") && is_resource_like(tape, v) {
                self.sep(written);
                self.key(kt);
                if tape.kind(v) == ARR {
                    self.out.push(b'[');
                    for (j, item) in tape.items(v).enumerate() {
                        self.sep(j);
                        if check_resource(tape, item).is_ok() {
                            self.resource(run, w.rules, w.index, item, None);
                        } else {
                            self.verbatim(item, k);
                        }
                    }
                    self.out.push(b']');
                } else {
                    self.resource(run, w.rules, w.index, v, None);
                }
                written += 1;
                continue;
            }
            if k == "text" && cc_text_is_display {
                run.changes.add(&format!("{}.text", w.path()), "keep");
                self.sep(written);
                self.key(kt);
                self.verbatim(v, k);
                written += 1;
                continue;
            }
            let mark = self.out.len();
            self.sep(written);
            self.key(kt);
            let kept = if tape.kind(v) == ARR {
                self.out.push(b'[');
                let (skip_here, entries): (&[usize], bool) = match top {
                    Some(skip) if k == "entry" => (skip, self.bundle),
                    _ => (&[], false),
                };
                let scan = self.scan;
                self.scan |= entries;
                let extension = k == "extension" || k == "modifierExtension";
                let mut items = 0usize;
                for (j, item) in tape.items(v).enumerate() {
                    if skip_here.contains(&j) {
                        continue;
                    }
                    let ty = infer(tape, k, item, self_ty);
                    let url = if extension {
                        tape.get_str(item, "url").map(Cow::into_owned)
                    } else {
                        None
                    };
                    w.push(k, ty, url);
                    let item_mark = self.out.len();
                    self.sep(items);
                    let kept = self.node(run, w, item, inherited, ty);
                    w.pop();
                    if kept {
                        items += 1;
                    } else {
                        self.out.truncate(item_mark);
                    }
                }
                self.out.push(b']');
                self.scan = scan;
                items > 0
            } else {
                let ty = infer(tape, k, v, self_ty);
                w.push(k, ty, None);
                let kept = self.node(run, w, v, inherited, ty);
                w.pop();
                kept
            };
            if kept {
                written += 1;
            } else {
                self.out.truncate(mark);
            }
        }
        self.out.push(b'}');
        written
    }

    /// [`super::walk_node`]: writes node `v` (the walk is at its key); false when it is removed
    /// (nothing written).
    fn node(
        &mut self,
        run: &mut Run<'_>,
        w: &mut Walk<'_>,
        v: usize,
        inherited: Option<usize>,
        ty: Option<&'static str>,
    ) -> bool {
        let tape = self.tape;
        let eff = min_rule(w.direct_rule(), inherited);
        let owned;
        let leaf = match tape.kind(v) {
            OBJ => {
                let mark = self.out.len();
                let written = self.object(run, w, v, eff, ty, None);
                if written == 0 && !tape.is_empty(v) {
                    self.out.truncate(mark);
                    return false;
                }
                return true;
            }
            // Arrays in arrays and nulls are kept as they are.
            ARR | NULL => {
                self.verbatim(v, w.key());
                return true;
            }
            STR => {
                owned = tape.str(v);
                LeafVal::Str(&owned)
            }
            NUM => LeafVal::Num(tape.num(v)),
            TRUE => LeafVal::Bool(true),
            FALSE => LeafVal::Bool(false),
            _ => return true,
        };
        match leaf_decide(run, w, leaf, eff, ty) {
            LeafOut::Keep => {
                self.verbatim(v, w.key());
                true
            }
            LeafOut::Remove => false,
            LeafOut::Set(nv) => {
                self.value(&nv, w.key());
                true
            }
        }
    }
}

/// The leak check on the strings gathered while `out` was written: `Some(scanned)` when none
/// holds an identifying value; `None` when one does, or when the quick check does not apply
/// (the caller then runs the full scan, which reports hits by path).
pub(crate) fn check_collected(scanner: &Scanner, out: &[u8], c: &Collected) -> Option<u64> {
    if c.complex {
        return None;
    }
    let text = std::str::from_utf8(out).ok()?;
    let mut seen: HashMap<(bool, &str), (), BuildHasherDefault<FxHasher>> = HashMap::default();
    for s in &c.spans {
        let raw = text.get(s.start..s.end)?;
        if seen.insert((s.decode, raw), ()).is_some() {
            continue;
        }
        let unescaped;
        let value: &str = if s.escaped {
            unescaped = crate::tape::unescape(raw);
            &unescaped
        } else {
            raw
        };
        let decoded;
        let scanned: &str = if s.decode {
            decoded = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            &decoded
        } else {
            value
        };
        if scanner.find(scanned).is_some() {
            return None;
        }
    }
    Some(c.spans.len() as u64)
}

/// [`super::scan_output`] on the tape of an output document; false when `bytes` does not
/// parse as a tape (the caller then scans the tree).
pub(crate) fn scan_output(
    scanner: &Scanner,
    bytes: &[u8],
    file: &str,
    record_base: u64,
    findings: &mut Findings<'_>,
) -> bool {
    let Some(tape) = Tape::parse(bytes) else {
        return false;
    };
    let root = 0;
    let mut items: Vec<(u64, usize)> = Vec::new();
    if tape.get_str(root, "resourceType").as_deref() == Some("Bundle") {
        if let Some(entries) = tape.get(root, "entry").filter(|&e| tape.kind(e) == ARR) {
            items.extend(tape.items(entries).enumerate().map(|(i, e)| (i as u64, e)));
        }
    } else {
        items.push((0, root));
    }
    let mut scan = Scan {
        tape: &tape,
        scanner,
        findings: &*findings,
        seen: Seen::default(),
        found: Vec::new(),
        scanned: 0,
    };
    let mut hits = Vec::new();
    for (i, item) in items {
        let resource = tape.get(item, "resource").unwrap_or(item);
        let rt = tape.get_str(resource, "resourceType");
        let mut path = rt.as_deref().unwrap_or("Resource").to_owned();
        scan.walk(item, &mut path, false);
        for (p, k, held) in scan.found.drain(..) {
            let hit = LeakHit {
                file: file.to_owned(),
                record: record_base + i,
                path: p,
                kind: k.name().to_owned(),
            };
            hits.push((hit, held));
        }
    }
    let scanned = scan.scanned;
    findings.scanned += scanned;
    for (hit, held) in hits {
        match held {
            Some(key) => findings.hold(key, hit),
            None => findings.hits.push(hit),
        }
    }
    true
}

/// Verdicts by string (and whether it was decoded as an attachment): a document repeats most
/// of its strings (codes, systems, references), and the search is pure.
type Seen<'a> = HashMap<(bool, Cow<'a, str>), Option<LeakKind>, BuildHasherDefault<FxHasher>>;

struct Scan<'t, 'a, 's> {
    tape: &'t Tape<'a>,
    scanner: &'s Scanner,
    findings: &'s Findings<'s>,
    seen: Seen<'a>,
    /// Hits: path, kind, and the key to hold one under when it may be a date-shift
    /// coincidence.
    found: Vec<(String, LeakKind, Option<u64>)>,
    scanned: u64,
}

impl Scan<'_, '_, '_> {
    fn walk(&mut self, v: usize, path: &mut String, attach: bool) {
        let tape = self.tape;
        match tape.kind(v) {
            STR => {
                self.scanned += 1;
                let decode = attach && path.ends_with(".data");
                let s = tape.str(v);
                let text = || -> Cow<'_, str> {
                    if decode {
                        base64::engine::general_purpose::STANDARD
                            .decode(s.trim())
                            .ok()
                            .and_then(|b| String::from_utf8(b).ok())
                            .unwrap_or_default()
                            .into()
                    } else {
                        Cow::Borrowed(&*s)
                    }
                };
                let found = match self.seen.get(&(decode, Cow::Borrowed(&*s))) {
                    Some(f) => *f,
                    None => {
                        let f = self.scanner.find(&text());
                        self.seen.insert((decode, s.clone()), f);
                        f
                    }
                };
                if let Some(k) = found {
                    let held = match k {
                        LeakKind::Date => self.findings.shift_candidate(self.scanner, &text(), k),
                        _ => None,
                    };
                    self.found.push((path.clone(), k, held));
                }
            }
            ARR => {
                for i in tape.items(v) {
                    self.walk(i, path, attach);
                }
            }
            OBJ => {
                let is_attach = tape.keys(v) & (keybit::CONTENT_TYPE | keybit::DATA) != 0;
                for (k, x) in tape.members(v) {
                    let len = path.len();
                    path.push('.');
                    path.push_str(tape.raw(k));
                    self.walk(x, path, is_attach);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
