//! FHIR R4 de-identification on the JSON tree.
//!
//! Every node gets the first profile rule that matches it or an ancestor (an earlier rule on a
//! descendant wins over a later rule on an ancestor); nodes no rule covers are handled by their
//! inferred type:
//!
//! | node | default |
//! |---|---|
//! | `Resource.id`, `Reference.reference`, `Bundle.entry.fullUrl`, `request.url`, `response.location` | pseudonymous id, consistently (the same id → the same pseudonym everywhere, `urn:uuid:`, `Type/id`, absolute URLs and `#contained` alike), so references still resolve |
//! | `Identifier.value` | pseudonym (namespace `mrn` for type `MR`, else `identifier`) |
//! | `HumanName` parts, `ContactPoint.value`, `Address.line/text/district` | removed |
//! | `Address.city` | removed (kept when the profile says `keep_city`) |
//! | `Address.postalCode` | the profile's zip policy |
//! | date, dateTime, instant (by shape) | the profile's date policy (`birthDate`: birth-year cap) |
//! | `Attachment.data` (text) | decoded, free-text engine, re-encoded; non-text data removed |
//! | `Narrative.div` | free-text engine on its text nodes (markup kept) |
//! | codes, systems, urls, `Coding.display`, numbers, booleans | kept |
//! | `CodeableConcept.text` equal to one of its codings' display | kept |
//! | any other string | free-text policy (the text engine) |
//!
//! Clinical codes under ICD-10, ICD-9 or SNOMED systems are generalised when rare, if the
//! profile has `[rare_codes]`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use base64::Engine as _;
use serde_json::{Map, Value};

use airlock_text::KnownIdentifiers;

use crate::codes::hierarchy_of_system;
use crate::engine::{DateMethod, Run, ScalarCtx};
use crate::fhir_types::choice_type;
use crate::leak::LeakKind;
use crate::profile::{FhirRule, Method, Step};

pub(crate) mod stream;

/// What to do with a node after processing.
enum Action {
    Keep,
    Replace(Value),
    Remove,
}

/// One step of the walk. The key is not stored: it is `path_buf[start..end]` (no allocation
/// per node).
#[derive(Debug, Clone)]
struct Entry {
    start: usize,
    end: usize,
    ty: Option<&'static str>,
    url: Option<String>,
}

/// The multiply-rotate hash of rustc (FxHash): several times cheaper than SipHash on the
/// short element names the rule index is looked up by once or twice per node. The tables are
/// built from the profile and only looked up with input keys, so input cannot grow them.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Rule lookup tables (built once per run).
pub(crate) struct RuleIndex {
    by_last: FxMap<String, Vec<usize>>,
    /// A 256-bit filter of the `by_last` keys by [`key_sig`]: most element names have no rule,
    /// and this says so without a lookup.
    last_filter: [u64; 4],
    /// Few rules are anchored on a type alone: a short list.
    by_type_only: Vec<(String, Vec<usize>)>,
    by_ext: Vec<usize>,
    resource_only: FxMap<String, Vec<usize>>,
}

/// A one-byte signature of an element name for [`RuleIndex::last_filter`].
fn key_sig(k: &str) -> u8 {
    let b = k.as_bytes();
    let first = b.first().copied().unwrap_or(0);
    let last = b.last().copied().unwrap_or(0);
    (b.len() as u8).wrapping_mul(37) ^ first ^ last.rotate_left(3)
}

impl RuleIndex {
    pub fn new(rules: &[FhirRule]) -> RuleIndex {
        let mut idx = RuleIndex {
            by_last: FxMap::default(),
            last_filter: [0; 4],
            by_type_only: Vec::new(),
            by_ext: Vec::new(),
            resource_only: FxMap::default(),
        };
        for (i, r) in rules.iter().enumerate() {
            match r.path.steps.last() {
                Some(Step::Elem(e)) => {
                    let sig = key_sig(e);
                    if let Some(w) = idx.last_filter.get_mut(usize::from(sig / 64)) {
                        *w |= 1 << (sig % 64);
                    }
                    idx.by_last.entry(e.clone()).or_default().push(i);
                }
                Some(Step::Extension(_)) => idx.by_ext.push(i),
                None => match &r.path.by_type {
                    Some(t) => match idx.by_type_only.iter_mut().find(|(k, _)| k == t) {
                        Some((_, v)) => v.push(i),
                        None => idx.by_type_only.push((t.clone(), vec![i])),
                    },
                    None => idx
                        .resource_only
                        .entry(r.path.resource.clone().unwrap_or_default())
                        .or_default()
                        .push(i),
                },
            }
        }
        idx
    }

    /// The rules whose path ends with element `key`.
    fn last(&self, key: &str) -> Option<&Vec<usize>> {
        let sig = key_sig(key);
        let maybe = self
            .last_filter
            .get(usize::from(sig / 64))
            .is_some_and(|w| w & (1 << (sig % 64)) != 0);
        if maybe { self.by_last.get(key) } else { None }
    }

    /// The rules anchored on type `t` alone.
    fn type_only(&self, t: &str) -> Option<&Vec<usize>> {
        self.by_type_only
            .iter()
            .find(|(k, _)| k == t)
            .map(|(_, v)| v)
    }
}

/// Per-resource walk state.
struct Walk<'r> {
    rules: &'r [FhirRule],
    index: &'r RuleIndex,
    resource_type: String,
    resource_id: String,
    mrn: Option<String>,
    chain: Vec<Entry>,
    /// `ResourceType.key.key...` of the current node, maintained with the chain.
    path_buf: String,
}

fn step_matches(step: &Step, key: &str, e: &Entry) -> bool {
    match step {
        Step::Elem(name) => {
            key == *name
                || (key.len() > name.len()
                    && key.starts_with(name.as_str())
                    && key
                        .as_bytes()
                        .get(name.len())
                        .is_some_and(u8::is_ascii_uppercase))
        }
        Step::Extension(u) => {
            key == "extension"
                && e.url
                    .as_deref()
                    .is_some_and(|url| url == u || url.ends_with(u.as_str()))
        }
    }
}

impl Walk<'_> {
    fn rule_matches(&self, r: &FhirRule) -> bool {
        let p = &r.path;
        if let Some(rt) = &p.resource
            && *rt != self.resource_type
        {
            return false;
        }
        let n = self.chain.len();
        let k = p.steps.len();
        match &p.by_type {
            None => {
                if k == 0 {
                    return n == 0;
                }
                n == k
                    && p.steps
                        .iter()
                        .zip(&self.chain)
                        .all(|(s, e)| step_matches(s, self.key_of(e), e))
            }
            Some(t) => {
                // An ancestor-or-self at position i has type t and the steps match after it.
                if n < k + 1 {
                    return false;
                }
                let i = n - k - 1;
                self.chain.get(i).is_some_and(|e| e.ty == Some(t.as_str()))
                    && p.steps
                        .iter()
                        .zip(self.chain.get(i + 1..).unwrap_or_default())
                        .all(|(s, e)| step_matches(s, self.key_of(e), e))
            }
        }
    }

    /// The lowest-index rule matching the current node.
    fn direct_rule(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut consider = |i: usize, this: &Self| {
            if best.is_none_or(|b| i < b)
                && let Some(r) = this.rules.get(i)
                && this.rule_matches(r)
            {
                best = Some(i);
            }
        };
        match self.chain.last() {
            None => {
                for key in [self.resource_type.as_str(), ""] {
                    if let Some(v) = self.index.resource_only.get(key) {
                        for &i in v {
                            consider(i, self);
                        }
                    }
                }
            }
            Some(e) => {
                let key = self.key_of(e);
                if let Some(v) = self.index.last(key) {
                    for &i in v {
                        consider(i, self);
                    }
                }
                if let Some(base) = choice_base(key)
                    && let Some(v) = self.index.last(base)
                {
                    for &i in v {
                        consider(i, self);
                    }
                }
                if let Some(t) = e.ty
                    && let Some(v) = self.index.type_only(t)
                {
                    for &i in v {
                        consider(i, self);
                    }
                }
                if key == "extension" {
                    for &i in &self.index.by_ext {
                        consider(i, self);
                    }
                }
            }
        }
        best
    }

    fn path(&self) -> &str {
        &self.path_buf
    }

    /// The key of a chain entry.
    fn key_of(&self, e: &Entry) -> &str {
        self.path_buf.get(e.start..e.end).unwrap_or_default()
    }

    /// The key of the current node (`""` at the resource root).
    fn key(&self) -> &str {
        self.chain.last().map_or("", |e| self.key_of(e))
    }

    fn push(&mut self, key: &str, ty: Option<&'static str>, url: Option<String>) {
        self.path_buf.push('.');
        let start = self.path_buf.len();
        self.path_buf.push_str(key);
        self.chain.push(Entry {
            start,
            end: self.path_buf.len(),
            ty,
            url,
        });
    }

    fn pop(&mut self) {
        if let Some(e) = self.chain.pop() {
            self.path_buf.truncate(e.start.saturating_sub(1));
        }
    }

    fn parent_ty(&self) -> Option<&'static str> {
        let n = self.chain.len();
        if n < 2 {
            return None;
        }
        self.chain.get(n - 2).and_then(|e| e.ty)
    }
}

fn choice_base(key: &str) -> Option<&str> {
    let i = key.bytes().position(|c| c.is_ascii_uppercase())?;
    if i == 0 { None } else { key.get(..i) }
}

/// What [`infer_type_of`] needs to know of an object: which keys it has.
trait HasKey {
    fn has(&self, key: &str) -> bool;
}

impl HasKey for Map<String, Value> {
    fn has(&self, key: &str) -> bool {
        self.contains_key(key)
    }
}

/// The shape of an element's value, for [`infer_type_of`].
enum Shape<'a, K: ?Sized> {
    Object(&'a K),
    Str(&'a str),
    Bool,
    Number,
    Other,
}

/// Infers the FHIR type of an element from its name, its shape and its parent's type.
fn infer_type(key: &str, v: &Value, parent: Option<&'static str>) -> Option<&'static str> {
    let shape = match v {
        Value::Object(o) => Shape::Object(o),
        Value::String(s) => Shape::Str(s),
        Value::Bool(_) => Shape::Bool,
        Value::Number(_) => Shape::Number,
        _ => Shape::Other,
    };
    infer_type_of(key, shape, parent)
}

/// [`infer_type`] on a shape (the tree walk and the tape walk share it).
fn infer_type_of<K: HasKey + ?Sized>(
    key: &str,
    v: Shape<'_, K>,
    parent: Option<&'static str>,
) -> Option<&'static str> {
    if let Some(t) = choice_type(key) {
        return Some(t);
    }
    match v {
        Shape::Object(o) => {
            let has = |k: &str| o.has(k);
            Some(match key {
                "extension" | "modifierExtension" => "Extension",
                "identifier" => "Identifier",
                "telecom" => "ContactPoint",
                "address" => "Address",
                "meta" => "Meta",
                "note" => "Annotation",
                "coding" => "Coding",
                "period" => "Period",
                "text" if has("div") => "Narrative",
                "name"
                    if has("family")
                        || has("given")
                        || has("prefix")
                        || has("suffix")
                        || (has("text") && has("use")) =>
                {
                    "HumanName"
                }
                "attachment" | "photo" | "content"
                    if has("contentType") || has("data") || has("url") =>
                {
                    "Attachment"
                }
                "age" => "Age",
                _ if has("reference") => "Reference",
                _ if has("coding") => "CodeableConcept",
                _ if has("system") && has("code") && !has("value") => "Coding",
                _ if has("value") && (has("unit") || has("code")) => "Quantity",
                _ if has("contentType") && (has("data") || has("url")) => "Attachment",
                _ if key == "assigner" || key == "subject" || key == "patient" => "Reference",
                _ => return None,
            })
        }
        Shape::Str(s) => {
            if key == "id" {
                return Some("id");
            }
            if key == "div" {
                return Some("xhtml");
            }
            if key == "data" && parent == Some("Attachment") {
                return Some("base64Binary");
            }
            // `is_date(s, date_key(key))`, with the key checked only for a year-only date.
            if crate::values::parse_date(s).is_some_and(|p| p.month.is_some() || date_key(key)) {
                return Some(
                    if matches!(key, "issued" | "lastUpdated" | "instant" | "recorded") {
                        "instant"
                    } else if s.contains('T') {
                        "dateTime"
                    } else {
                        "date"
                    },
                );
            }
            Some("string")
        }
        Shape::Bool => Some("boolean"),
        Shape::Number => Some("decimal"),
        Shape::Other => None,
    }
}

fn date_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "date",
        "time",
        "start",
        "end",
        "birth",
        "onset",
        "issued",
        "recorded",
        "created",
        "authored",
        "instant",
        "lastupdated",
        "period",
        "born",
        "deceased",
        "abatement",
        "occurrence",
        "effective",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// String keys whose values are codes, systems or terminology text (kept by default).
fn is_code_key(key: &str, parent: Option<&'static str>) -> bool {
    matches!(
        key,
        "resourceType"
            | "system"
            | "code"
            | "version"
            | "status"
            | "use"
            | "unit"
            | "url"
            | "gender"
            | "language"
            | "contentType"
            | "intent"
            | "priority"
            | "mode"
            | "currency"
            | "comparator"
            | "profile"
            | "linkId"
            | "severity"
            | "criticality"
            | "kind"
            | "method"
            | "ifNoneMatch"
            | "ifModifiedSince"
            | "ifMatch"
            | "ifNoneExist"
            | "etag"
            | "lastModified"
            | "valueCode"
            | "valueUri"
            | "valueUrl"
            | "valueCanonical"
            | "valueBoolean"
            | "valueInteger"
            | "valueDecimal"
            | "valueId"
            | "valueOid"
            | "valueUuid"
            | "valuePositiveInt"
            | "valueUnsignedInt"
            | "hash"
            | "size"
            | "creation"
            | "mimeType"
            | "fhirVersion"
            | "versionId"
            | "security"
            | "tag"
            | "versionAlgorithmString"
            | "sequence"
            | "type"
            | "category"
            | "lotNumber_"
    ) || (key == "display" && parent == Some("Coding"))
}

/// Registers the patients of a document (MRN and known identifiers) before processing, so every
/// resource that refers to them gets the same key, offset and text-engine knowledge.
pub(crate) fn prescan(run: &mut Run<'_>, doc: &Value) {
    // Rebuild the scrub automaton only when the pre-scan found new values (not for values
    // collected while transforming earlier records: that would rebuild it per NDJSON line).
    let before = run.leaks.version();
    prescan_inner(run, doc);
    if run.leaks.version() != before {
        run.refresh_scrub();
    }
}

fn prescan_inner(run: &mut Run<'_>, doc: &Value) {
    if doc.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
        if let Some(entries) = doc.get("entry").and_then(Value::as_array) {
            for e in entries {
                if let Some(r) = e.get("resource") {
                    prescan_patient(run, r, e.get("fullUrl").and_then(Value::as_str));
                }
            }
        }
    } else {
        prescan_patient(run, doc, None);
    }
}

/// The resource types besides Patient whose names the pre-scan registers (see
/// [`prescan_person`]).
const PEOPLE: &[&str] = &["Practitioner", "RelatedPerson", "Person"];

/// Whether the pre-scan reads resources of this type (Patients and [`PEOPLE`]).
pub(crate) fn prescanned(resource_type: &str) -> bool {
    resource_type == "Patient" || PEOPLE.contains(&resource_type)
}

/// Registers one resource of a document if it is a Patient (or one of [`PEOPLE`]).
fn prescan_patient(run: &mut Run<'_>, r: &Value, full_url: Option<&str>) {
    match r.get("resourceType").and_then(Value::as_str) {
        Some("Patient") => {}
        Some(t) if PEOPLE.contains(&t) => {
            prescan_person(run, r, t);
            return;
        }
        _ => return,
    }
    let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
    let mrn = patient_mrn(r).unwrap_or_else(|| id.to_owned());
    if mrn.is_empty() {
        return;
    }
    if !id.is_empty() {
        run.patients.insert(id.to_owned(), mrn.clone());
    }
    if let Some(fu) = full_url.and_then(ref_id) {
        run.patients.insert(fu.to_owned(), mrn.clone());
    }
    let known = known_from_patient(r);
    for v in &known.names {
        run.leaks.add(LeakKind::Name, v);
    }
    for v in &known.ids {
        run.leaks.add(LeakKind::Id, v);
    }
    run.leaks.add(LeakKind::Id, id);
    for v in &known.phones {
        run.leaks.add(LeakKind::Phone, v);
    }
    for v in &known.emails {
        run.leaks.add(LeakKind::Email, v);
    }
    for v in &known.addresses {
        run.leaks.add(LeakKind::Street, v);
    }
    if !run.p().keep_city {
        for v in &known.cities {
            run.leaks.add(LeakKind::City, v);
        }
    }
    if run.p().dates != crate::profile::DatePolicy::Keep {
        for v in &known.dates {
            run.leaks.add(LeakKind::Date, v);
        }
    }
    run.known.insert(mrn, known);
}

/// Registers the names, contact points and identifiers of a Practitioner, RelatedPerson or
/// Person before any resource is transformed, as the transform would record them for the leak
/// check, so that the free text of every file is scrubbed of them whatever order the files
/// come in: a note naming the practitioner, or a surrogate that happens to spell a name (a
/// bulk export's Practitioner file comes after its DocumentReference file). Addresses only for
/// relatives and persons: a practitioner's work address identifies no patient.
fn prescan_person(run: &mut Run<'_>, r: &Value, resource_type: &str) {
    let mut k = KnownIdentifiers::default();
    add_person(&mut k, r);
    for i in array(r, "identifier") {
        k.ids.extend(strs(i.get("value")));
    }
    for v in &k.names {
        run.leaks.add(LeakKind::Name, v);
    }
    for v in &k.ids {
        run.leaks.add(LeakKind::Id, v);
    }
    for v in &k.phones {
        run.leaks.add(LeakKind::Phone, v);
    }
    for v in &k.emails {
        run.leaks.add(LeakKind::Email, v);
    }
    if resource_type != "Practitioner" {
        for v in &k.addresses {
            run.leaks.add(LeakKind::Street, v);
        }
        if !run.p().keep_city {
            for v in &k.cities {
                run.leaks.add(LeakKind::City, v);
            }
        }
    }
}

/// The MRN of a Patient: the identifier whose type is `MR`, else the first identifier value.
pub(crate) fn patient_mrn(p: &Value) -> Option<String> {
    let ids = p.get("identifier").and_then(Value::as_array)?;
    let is_mr = |i: &Value| {
        i.pointer("/type/coding")
            .and_then(Value::as_array)
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.get("code").and_then(Value::as_str) == Some("MR"))
            })
    };
    ids.iter()
        .find(|i| is_mr(i))
        .or_else(|| ids.first())
        .and_then(|i| i.get("value"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The strings of a string or array-of-strings element.
fn strs(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// The items of an element that may be one object or an array of them.
fn array<'a>(v: &'a Value, key: &str) -> Vec<&'a Value> {
    match v.get(key) {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        _ => Vec::new(),
    }
}

/// Names, telecoms and addresses of a patient or one of their contacts.
fn add_person(k: &mut KnownIdentifiers, person: &Value) {
    for n in array(person, "name") {
        let given = strs(n.get("given"));
        let family = strs(n.get("family"));
        for g in &given {
            for f in &family {
                k.names.push(format!("{g} {f}"));
            }
        }
        k.names.extend(given);
        k.names.extend(family);
        k.names.extend(strs(n.get("text")));
    }
    for t in array(person, "telecom") {
        let v = strs(t.get("value"));
        if t.get("system").and_then(Value::as_str) == Some("email") {
            k.emails.extend(v);
        } else {
            k.phones.extend(v);
        }
    }
    for a in array(person, "address") {
        k.addresses.extend(strs(a.get("line")));
        k.cities.extend(strs(a.get("city")));
    }
}

fn known_from_patient(p: &Value) -> KnownIdentifiers {
    let mut k = KnownIdentifiers::default();
    add_person(&mut k, p);
    for i in array(p, "identifier") {
        k.ids.extend(strs(i.get("value")));
    }
    // Relatives and household members are Safe Harbor identifiers too (Patient.contact, whose
    // `name` and `address` are single values), and so is the mother's maiden name.
    for c in array(p, "contact") {
        add_person(&mut k, c);
    }
    for x in array(p, "extension") {
        // Birth place and other address-valued extensions (a city of the individual).
        if let Some(a) = x.get("valueAddress") {
            k.addresses.extend(strs(a.get("line")));
            k.cities.extend(strs(a.get("city")));
        }
        let url = x.get("url").and_then(Value::as_str).unwrap_or("");
        if url.ends_with("patient-mothersMaidenName") {
            k.names.extend(strs(x.get("valueString")));
        }
    }
    if let Some(b) = p.get("birthDate").and_then(Value::as_str) {
        k.dates.push(b.to_owned());
    }
    k
}

/// The id in a reference (`Patient/x`, `urn:uuid:x`, `http://b/Patient/x/_history/1`, `#x`).
pub(crate) fn ref_id(r: &str) -> Option<&str> {
    if let Some(id) = r
        .strip_prefix("urn:uuid:")
        .or_else(|| r.strip_prefix("urn:oid:"))
    {
        return Some(id);
    }
    if let Some(id) = r.strip_prefix('#') {
        return Some(id);
    }
    let r = r.split('?').next().unwrap_or(r);
    let segs: Vec<&str> = r.split('/').collect();
    for i in (0..segs.len().saturating_sub(1)).rev() {
        let (Some(t), Some(id)) = (segs.get(i), segs.get(i + 1)) else {
            continue;
        };
        if crate::fhir_types::is_resource_type(t) && !id.is_empty() && !id.starts_with('_') {
            return Some(id);
        }
    }
    None
}

/// Rewrites a reference with the pseudonymous id, keeping its form; `None` when it cannot be
/// rewritten safely (a conditional reference with search parameters: removed).
fn pseudo_ref(run: &mut Run<'_>, r: &str, hash: bool) -> Option<String> {
    if hash {
        return pseudo_ref_of(run, r, true);
    }
    // A pseudonym never changes within a run, and a document names each reference many times.
    if let Some(p) = run.refs.get(r) {
        return p.clone();
    }
    let p = pseudo_ref_of(run, r, false);
    if run.refs.len() >= crate::engine::IDS_MAX_ENTRIES {
        run.refs.clear();
    }
    run.refs.insert(r.to_owned(), p.clone());
    p
}

fn pseudo_ref_of(run: &mut Run<'_>, r: &str, hash: bool) -> Option<String> {
    let pid = |run: &mut Run<'_>, id: &str| -> String {
        if hash {
            run.keys.crypto_hash_hex(id)
        } else {
            run.pseudo_id(id)
        }
    };
    if let Some(id) = r.strip_prefix("urn:uuid:") {
        return Some(format!("urn:uuid:{}", pid(run, id)));
    }
    if let Some(id) = r.strip_prefix("urn:oid:") {
        let h = run.pseudonym("id", id);
        let n = u128::from_str_radix(h.get(..30).unwrap_or("0"), 16).unwrap_or(0);
        return Some(format!("urn:oid:2.25.{n}"));
    }
    if let Some(id) = r.strip_prefix('#') {
        if id.is_empty() {
            return Some(r.to_owned());
        }
        return Some(format!("#{}", pid(run, id)));
    }
    let (base, query) = match r.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (r, None),
    };
    let segs: Vec<&str> = base.split('/').collect();
    let mut at = None;
    for i in (0..segs.len().saturating_sub(1)).rev() {
        let (Some(t), Some(id)) = (segs.get(i), segs.get(i + 1)) else {
            continue;
        };
        if crate::fhir_types::is_resource_type(t) && !id.is_empty() && !id.starts_with('_') {
            at = Some(i + 1);
            break;
        }
    }
    match (at, query) {
        (Some(i), _) => {
            let mut out: Vec<String> = segs.iter().take(i).map(|s| (*s).to_owned()).collect();
            out.push(pid(run, segs.get(i).copied().unwrap_or_default()));
            Some(out.join("/"))
        }
        // `Patient` (a type, as in request.url) is kept; `Patient?identifier=...` loses its query.
        (None, Some(_)) => Some(base.to_owned()).filter(|b| crate::fhir_types::is_resource_type(b)),
        (None, None) if segs.len() == 1 && crate::fhir_types::is_resource_type(base) => {
            Some(base.to_owned())
        }
        (None, None) => Some(pid(run, base)),
    }
}

/// De-identifies one FHIR document (a Bundle or a resource) in place. Malformed Bundle entries
/// are removed and reported through `quarantine(entry_index, reason)`.
pub(crate) fn deid_document(
    run: &mut Run<'_>,
    index: &RuleIndex,
    doc: &mut Value,
    file: &str,
    line: u64,
) {
    prescan(run, doc);
    let profile = run.profile;
    let rules = profile.fhir_rules();
    if doc.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
        // Quarantine malformed entries first.
        if let Some(Value::Array(entries)) = doc.get_mut("entry") {
            let mut bad = Vec::new();
            for (i, e) in entries.iter().enumerate() {
                if let Some(r) = e.get("resource")
                    && let Err(reason) = check_resource(r)
                {
                    bad.push((i, reason));
                }
            }
            for (i, reason) in &bad {
                run.quarantined.push(crate::report::Quarantined {
                    file: file.to_owned(),
                    record: *i as u64,
                    line,
                    path: format!("entry[{i}].resource"),
                    reason: (*reason).to_owned(),
                });
            }
            let mut i = 0usize;
            entries.retain(|_| {
                let keep = !bad.iter().any(|(b, _)| *b == i);
                i += 1;
                keep
            });
            run.records_in += entries.len() as u64 + bad.len() as u64;
            run.records_out += entries.len() as u64;
        }
    } else {
        run.records_in += 1;
        run.records_out += 1;
    }
    deid_resource(run, rules, index, doc);
}

/// Checks a resource's minimal shape.
pub(crate) fn check_resource(r: &Value) -> Result<(), &'static str> {
    match r {
        Value::Object(o) => match o.get("resourceType") {
            Some(Value::String(_)) => Ok(()),
            _ => Err("missing `resourceType`"),
        },
        _ => Err("not a json object"),
    }
}

pub(crate) fn resource_patient(run: &Run<'_>, r: &Value) -> Option<String> {
    if r.get("resourceType").and_then(Value::as_str) == Some("Patient") {
        let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
        return run.patients.get(id).cloned().or_else(|| patient_mrn(r));
    }
    for key in ["subject", "patient", "beneficiary"] {
        if let Some(id) = r
            .get(key)
            .and_then(|s| s.get("reference"))
            .and_then(Value::as_str)
            .and_then(ref_id)
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

fn deid_resource(run: &mut Run<'_>, rules: &[FhirRule], index: &RuleIndex, r: &mut Value) {
    let resource_type = r
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("Resource")
        .to_owned();
    let resource_id = r
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mrn = resource_patient(run, r);
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
    if let Value::Object(map) = r {
        walk_object(run, &mut walk, map, inherited, None);
    }
    if walk.resource_type == "Patient" {
        run.patient_qis.fhir_patient(r);
    }
}

fn min_rule(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn walk_object(
    run: &mut Run<'_>,
    w: &mut Walk<'_>,
    map: &mut Map<String, Value>,
    inherited: Option<usize>,
    self_ty: Option<&'static str>,
) {
    // CodeableConcept.text equal to a coding display is terminology, not free text.
    let cc_text_is_display = self_ty == Some("CodeableConcept")
        && map.get("text").and_then(Value::as_str).is_some_and(|t| {
            map.get("coding")
                .and_then(Value::as_array)
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.get("display").and_then(Value::as_str) == Some(t))
                })
        });
    // Rare clinical codes (codings under ICD/SNOMED systems).
    if self_ty == Some("Coding") && run.rare.is_some() {
        let sys = map
            .get("system")
            .and_then(Value::as_str)
            .and_then(hierarchy_of_system);
        if let (Some(h), Some(code)) = (sys, map.get("code").and_then(Value::as_str)) {
            let g = crate::codes::generalize(code, h, run.rare.as_ref());
            if g != code {
                map.insert("code".to_owned(), Value::String(g));
                map.remove("display");
                let p = format!("{}.code", w.path());
                run.changes.add(&p, "generalize");
            }
        }
    }
    let mut remove: Vec<String> = Vec::new();
    let mut replace: Vec<(String, Value)> = Vec::new();
    for (k, v) in map.iter_mut() {
        if k == "resourceType" && w.chain.is_empty() {
            continue;
        }
        // Nested resources (Bundle.entry.resource, contained, Parameters) get their own context.
        if (k == "resource" || k == "contained") && is_resource_like(v) {
            match v {
                Value::Array(items) => {
                    for item in items.iter_mut() {
                        if check_resource(item).is_ok() {
                            let rules = w.rules;
                            deid_resource(run, rules, w.index, item);
                        }
                    }
                }
                other => {
                    let rules = w.rules;
                    deid_resource(run, rules, w.index, other);
                }
            }
            continue;
        }
        if k == "text" && cc_text_is_display {
            run.changes.add(&format!("{}.text", w.path()), "keep");
            continue;
        }
        let action = match v {
            Value::Array(items) => {
                let mut out_remove = Vec::new();
                for (i, item) in items.iter_mut().enumerate() {
                    let ty = infer_type(k, item, self_ty);
                    let url = if k == "extension" || k == "modifierExtension" {
                        item.get("url").and_then(Value::as_str).map(str::to_owned)
                    } else {
                        None
                    };
                    w.push(k, ty, url);
                    let a = walk_node(run, w, item, inherited, ty);
                    w.pop();
                    match a {
                        Action::Keep => {}
                        Action::Replace(nv) => *item = nv,
                        Action::Remove => out_remove.push(i),
                    }
                }
                if !out_remove.is_empty() {
                    let mut j = 0;
                    items.retain(|_| {
                        let keep = !out_remove.contains(&j);
                        j += 1;
                        keep
                    });
                }
                if items.is_empty() {
                    Action::Remove
                } else {
                    Action::Keep
                }
            }
            other => {
                let ty = infer_type(k, other, self_ty);
                w.push(k, ty, None);
                let a = walk_node(run, w, other, inherited, ty);
                w.pop();
                a
            }
        };
        match action {
            Action::Keep => {}
            Action::Replace(nv) => replace.push((k.clone(), nv)),
            Action::Remove => remove.push(k.clone()),
        }
    }
    for (k, v) in replace {
        map.insert(k, v);
    }
    if !remove.is_empty() {
        map.retain(|k, _| !remove.contains(k));
    }
}

fn is_resource_like(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.contains_key("resourceType"),
        Value::Array(a) => a.iter().any(|i| i.get("resourceType").is_some()),
        _ => false,
    }
}

fn walk_node(
    run: &mut Run<'_>,
    w: &mut Walk<'_>,
    v: &mut Value,
    inherited: Option<usize>,
    ty: Option<&'static str>,
) -> Action {
    let eff = min_rule(w.direct_rule(), inherited);
    match v {
        Value::Object(map) => {
            let was_empty = map.is_empty();
            walk_object(run, w, map, eff, ty);
            if map.is_empty() && !was_empty {
                Action::Remove
            } else {
                Action::Keep
            }
        }
        Value::Array(_) => Action::Keep, // arrays are handled by the parent
        Value::Null => Action::Keep,
        leaf => leaf_action(run, w, leaf, eff, ty),
    }
}

/// The identifying kind of a leaf, for the leak check.
fn leak_kind(w: &Walk<'_>, key: &str, value: &str) -> Option<LeakKind> {
    let pt = w.parent_ty();
    match (pt, key) {
        (Some("HumanName"), "family" | "given" | "text") => Some(LeakKind::Name),
        (Some("Identifier"), "value") => Some(LeakKind::Id),
        (Some("ContactPoint"), "value") => Some(if value.contains('@') {
            LeakKind::Email
        } else {
            LeakKind::Phone
        }),
        // Addresses of the individual and relatives only: a provider's or organisation's
        // address is not an identifier of the individual (and is also generalised).
        (Some("Address"), _)
            if !matches!(
                w.resource_type.as_str(),
                "Patient" | "RelatedPerson" | "Person"
            ) =>
        {
            None
        }
        (Some("Address"), "line" | "text") => Some(LeakKind::Street),
        (Some("Address"), "city" | "district") => Some(LeakKind::City),
        (Some("Address"), "postalCode") => Some(LeakKind::Zip),
        _ => {
            let n = w.chain.len();
            let ext_url = n
                .checked_sub(2)
                .and_then(|i| w.chain.get(i))
                .and_then(|e| e.url.as_deref());
            if key.starts_with("value") && ext_url.is_some_and(|u| u.ends_with("mothersMaidenName"))
            {
                return Some(LeakKind::Name);
            }
            if key == "id" && n == 1 && w.resource_type == "Patient" {
                return Some(LeakKind::Id);
            }
            match crate::values::parse_date(value) {
                Some(d) if d.day.is_some() && !d.hl7 => Some(LeakKind::Date),
                _ => None,
            }
        }
    }
}

fn leaf_action(
    run: &mut Run<'_>,
    w: &Walk<'_>,
    v: &mut Value,
    eff: Option<usize>,
    ty: Option<&'static str>,
) -> Action {
    let owned;
    let leaf = match &*v {
        Value::String(s) => LeafVal::Str(s),
        Value::Number(n) => {
            owned = n.to_string();
            LeafVal::Num(&owned)
        }
        Value::Bool(b) => LeafVal::Bool(*b),
        _ => return Action::Keep,
    };
    match leaf_decide(run, w, leaf, eff, ty) {
        LeafOut::Keep => Action::Keep,
        LeafOut::Remove => Action::Remove,
        LeafOut::Set(nv) => Action::Replace(nv),
    }
}

/// A scalar leaf as the decision sees it.
#[derive(Clone, Copy)]
enum LeafVal<'a> {
    Str(&'a str),
    /// A number, as serde_json prints it.
    Num(&'a str),
    Bool(bool),
}

/// What becomes of a leaf.
enum LeafOut {
    Keep,
    Remove,
    /// Replaced by a different value.
    Set(Value),
}

/// The rule or default for a scalar leaf, with its bookkeeping (change counters, leak values):
/// shared by the tree walk and the tape walk.
fn leaf_decide(
    run: &mut Run<'_>,
    w: &Walk<'_>,
    leaf: LeafVal<'_>,
    eff: Option<usize>,
    ty: Option<&'static str>,
) -> LeafOut {
    let key = w.key();
    let pt = w.parent_ty();
    let (s, is_string) = match leaf {
        LeafVal::Str(s) => (s, true),
        LeafVal::Num(s) => (s, false),
        LeafVal::Bool(true) => ("true", false),
        LeafVal::Bool(false) => ("false", false),
    };
    let path = w.path();
    let rules: &[FhirRule] = w.rules;
    let rule_method = eff.and_then(|i| rules.get(i)).map(|r| &r.method);
    let (method_name, out): (&'static str, Leaf) = match rule_method {
        Some(m) => apply_rule(run, w, m, key, pt, ty, s, is_string),
        None => default_action(run, w, key, pt, ty, s, is_string),
    };
    let changed = match &out {
        Leaf::Remove => true,
        Leaf::Same => false,
        Leaf::Set(nv) => !same_leaf(nv, leaf),
    };
    if method_name != "keep" || changed {
        run.changes.add(path, method_name);
    }
    if changed
        && is_string
        && let Some(kind) = leak_kind(w, key, s)
    {
        run.leak(kind, s);
    }
    // A whole date value the shift wrote: the leak check may count a hit on it as a
    // coincidence (see `leak::Findings`).
    if changed
        && method_name == "dateShift"
        && let Leaf::Set(Value::String(nv)) = &out
    {
        run.shifted.wrote(nv);
    }
    match out {
        Leaf::Remove => LeafOut::Remove,
        Leaf::Set(nv) if changed => LeafOut::Set(nv),
        Leaf::Set(_) | Leaf::Same => LeafOut::Keep,
    }
}

/// Whether `nv` equals the original leaf (as `Value` equality would say).
fn same_leaf(nv: &Value, leaf: LeafVal<'_>) -> bool {
    match (nv, leaf) {
        (Value::String(n), LeafVal::Str(s)) => n == s,
        (Value::Bool(n), LeafVal::Bool(b)) => *n == b,
        (Value::Number(n), LeafVal::Num(t)) => {
            serde_json::from_str::<serde_json::Number>(t).is_ok_and(|o| o == *n)
        }
        _ => false,
    }
}

/// What a method makes of a leaf.
enum Leaf {
    /// Left as it is (no copy is made).
    Same,
    /// Removed.
    Remove,
    /// Replaced by this value (which may happen to equal the old one).
    Set(Value),
}

impl From<Option<Value>> for Leaf {
    fn from(v: Option<Value>) -> Leaf {
        v.map_or(Leaf::Remove, Leaf::Set)
    }
}

fn is_ref_key(w: &Walk<'_>, key: &str, pt: Option<&'static str>) -> bool {
    (key == "reference" && pt == Some("Reference"))
        || (key == "id" && w.chain.len() == 1)
        || (w.resource_type == "Bundle" && matches!(key, "fullUrl" | "url" | "location"))
}

#[expect(
    clippy::too_many_arguments,
    reason = "a rule needs the run, walk, field types and value; a struct would only rename them"
)]
fn apply_rule(
    run: &mut Run<'_>,
    w: &Walk<'_>,
    m: &Method,
    key: &str,
    pt: Option<&'static str>,
    ty: Option<&'static str>,
    s: &str,
    is_string: bool,
) -> (&'static str, Leaf) {
    let name = m.name();
    let refkey = is_ref_key(w, key, pt);
    let out = match m {
        Method::Keep => Leaf::Same,
        Method::Redact => Leaf::Remove,
        Method::Pseudonym if refkey => if key == "id" {
            Some(run.pseudo_id(s))
        } else {
            pseudo_ref(run, s, false)
        }
        .map(Value::String)
        .into(),
        Method::CryptoHash if refkey => if key == "id" {
            Some(run.keys.crypto_hash_hex(s))
        } else {
            pseudo_ref(run, s, true)
        }
        .map(Value::String)
        .into(),
        Method::DateShift { .. } | Method::YearOnly
            if !matches!(ty, Some("date" | "dateTime" | "instant")) =>
        {
            Leaf::Same
        }
        Method::Text if !is_string => Leaf::Same,
        Method::Perturb { .. } | Method::GeneralizeBins(_) | Method::AgeCap if !is_string => {
            let ns = namespace_for(w, s);
            let ctx = ScalarCtx {
                namespace: &ns,
                mrn: w.mrn.as_deref(),
                birth: false,
                resource_id: &w.resource_id,
            };
            run.scalar(m, s, &ctx)
                .map(|o| match o.parse::<f64>() {
                    Ok(_) => serde_json::from_str::<Value>(&o).unwrap_or(Value::String(o)),
                    Err(_) => Value::String(o),
                })
                .into()
        }
        _ => {
            let ns = namespace_for(w, s);
            let birth = is_birth_key(key);
            let ctx = ScalarCtx {
                namespace: &ns,
                mrn: w.mrn.as_deref(),
                birth,
                resource_id: &w.resource_id,
            };
            run.scalar(m, s, &ctx).map(Value::String).into()
        }
    };
    (name, out)
}

fn is_birth_key(key: &str) -> bool {
    key == "birthDate" || key == "born" || key == "bornDate"
}

/// The pseudonym namespace of an identifier value: `mrn` for type `MR` (the patient key, shared
/// with HL7 and CSV), else `identifier`.
fn namespace_for(w: &Walk<'_>, value: &str) -> String {
    if w.parent_ty() == Some("Identifier") && w.mrn.as_deref() == Some(value) {
        return "mrn".to_owned();
    }
    "identifier".to_owned()
}

fn default_action(
    run: &mut Run<'_>,
    w: &Walk<'_>,
    key: &str,
    pt: Option<&'static str>,
    ty: Option<&'static str>,
    s: &str,
    is_string: bool,
) -> (&'static str, Leaf) {
    let keep = ("keep", Leaf::Same);
    if !is_string {
        if pt == Some("Age") && key == "value" {
            let capped = crate::engine::age_cap_str(s, run.p().age_cap);
            if capped != s {
                return ("ageCap", Leaf::Set(Value::from(run.p().age_cap + 1)));
            }
        }
        return keep;
    }
    if is_ref_key(w, key, pt) {
        let out = if key == "id" {
            Some(run.pseudo_id(s))
        } else {
            pseudo_ref(run, s, false)
        };
        return ("pseudonym", out.map(Value::String).into());
    }
    match (pt, key) {
        (Some("Identifier"), "value") => {
            let ns = if w.mrn.as_deref() == Some(s) {
                "mrn"
            } else {
                "identifier"
            };
            return ("pseudonym", Leaf::Set(Value::String(run.pseudonym(ns, s))));
        }
        (Some("Identifier"), "system" | "use") => return keep,
        (Some("HumanName"), "use") => return keep,
        (Some("HumanName"), _) => return ("redact", Leaf::Remove),
        (Some("ContactPoint"), "value") => return ("redact", Leaf::Remove),
        (Some("ContactPoint"), _) => return keep,
        (Some("Address"), "postalCode") => {
            return match run.p().zip {
                crate::profile::ZipPolicy::Keep => keep,
                crate::profile::ZipPolicy::Redact => ("redact", Leaf::Remove),
                crate::profile::ZipPolicy::Zip3 => (
                    "zip3",
                    crate::values::zip3(s, run.p().restricted)
                        .map(Value::String)
                        .into(),
                ),
            };
        }
        (Some("Address"), "city") if run.p().keep_city => return keep,
        (Some("Address"), "line" | "text" | "district" | "city") => {
            return ("redact", Leaf::Remove);
        }
        // A "state" that names a city removed elsewhere (city-states such as Lagos or
        // Singapore, "Metro Manila" in a foreign birth place) would re-introduce that city:
        // redact it.
        (Some("Address"), "state")
            if !run.p().keep_city && (run.leaks.contains(s) || run.scanner().find(s).is_some()) =>
        {
            return ("redact", Leaf::Remove);
        }
        (Some("Address"), "state" | "country" | "use" | "type") => return keep,
        (Some("Attachment"), "data") => return attachment_data(run, w, s),
        _ => {}
    }
    if ty == Some("xhtml") {
        return (
            "text",
            Leaf::Set(Value::String(narrative(run, w.mrn.as_deref(), s))),
        );
    }
    if matches!(ty, Some("date" | "dateTime" | "instant")) {
        let m = run.default_date_method();
        let name = match m {
            DateMethod::Keep => "keep",
            DateMethod::Redact => "redact",
            DateMethod::Year => "yearOnly",
            DateMethod::Shift | DateMethod::Microsoft => "dateShift",
        };
        let out = run.date(s, m, w.mrn.as_deref(), is_birth_key(key), &w.resource_id);
        return (name, out.map(Value::String).into());
    }
    if is_code_key(key, pt) || key == "id" {
        return keep;
    }
    (
        "text",
        run.text(s, w.mrn.as_deref()).map(Value::String).into(),
    )
}

fn attachment_data(run: &mut Run<'_>, w: &Walk<'_>, s: &str) -> (&'static str, Leaf) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Ok(bytes) = b64.decode(s.trim()) else {
        return ("redact", Leaf::Remove);
    };
    let Ok(text) = String::from_utf8(bytes) else {
        // Binary content (images, PDFs) cannot be checked: removed.
        return ("redact", Leaf::Remove);
    };
    match run.text(&text, w.mrn.as_deref()) {
        Some(t) => ("text", Leaf::Set(Value::String(b64.encode(t.as_bytes())))),
        None => ("redact", Leaf::Remove),
    }
}

/// Runs the text engine on the text nodes of an XHTML narrative, keeping the markup.
fn narrative(run: &mut Run<'_>, mrn: Option<&str>, div: &str) -> String {
    let mut out = String::with_capacity(div.len());
    let mut rest = div;
    while !rest.is_empty() {
        match rest.find('<') {
            Some(0) => {
                let end = rest.find('>').map_or(rest.len(), |e| e + 1);
                out.push_str(rest.get(..end).unwrap_or_default());
                rest = rest.get(end..).unwrap_or_default();
            }
            Some(i) => {
                let text = rest.get(..i).unwrap_or_default();
                out.push_str(&run.text(text, mrn).unwrap_or_default());
                rest = rest.get(i..).unwrap_or_default();
            }
            None => {
                out.push_str(&run.text(rest, mrn).unwrap_or_default());
                rest = "";
            }
        }
    }
    out
}

/// Collects the identifying values of an output document for the leak check and reports hits.
pub(crate) fn scan_output(
    scanner: &crate::leak::Scanner,
    doc: &Value,
    file: &str,
    record_base: u64,
    findings: &mut crate::leak::Findings<'_>,
) {
    /// Verdicts by string (and whether it was decoded as an attachment): a document repeats
    /// most of its strings (codes, systems, references), and the search is pure.
    type Seen<'a> = HashMap<(bool, &'a str), Option<crate::leak::LeakKind>>;
    /// A hit: its path and kind, and the key to hold it under when it may be a date-shift
    /// coincidence.
    type Found = (String, crate::leak::LeakKind, Option<u64>);
    #[expect(
        clippy::too_many_arguments,
        reason = "the recursion's state: a struct would only rename it"
    )]
    fn walk<'a>(
        scanner: &crate::leak::Scanner,
        findings: &crate::leak::Findings<'_>,
        v: &'a Value,
        path: &mut String,
        attach: bool,
        out: &mut Vec<Found>,
        scanned: &mut u64,
        seen: &mut Seen<'a>,
    ) {
        match v {
            Value::String(s) => {
                *scanned += 1;
                let decode = attach && path.ends_with(".data");
                let text = || -> std::borrow::Cow<'_, str> {
                    if decode {
                        base64::engine::general_purpose::STANDARD
                            .decode(s.trim())
                            .ok()
                            .and_then(|b| String::from_utf8(b).ok())
                            .unwrap_or_default()
                            .into()
                    } else {
                        s.as_str().into()
                    }
                };
                let found = match seen.get(&(decode, s.as_str())) {
                    Some(f) => *f,
                    None => {
                        let f = scanner.find(&text());
                        seen.insert((decode, s.as_str()), f);
                        f
                    }
                };
                if let Some(k) = found {
                    let held = match k {
                        crate::leak::LeakKind::Date => {
                            findings.shift_candidate(scanner, &text(), k)
                        }
                        _ => None,
                    };
                    out.push((path.clone(), k, held));
                }
            }
            Value::Array(a) => {
                for i in a {
                    walk(scanner, findings, i, path, attach, out, scanned, seen);
                }
            }
            Value::Object(o) => {
                let is_attach = o.contains_key("contentType") || o.contains_key("data");
                for (k, v) in o {
                    let len = path.len();
                    path.push('.');
                    path.push_str(k);
                    walk(scanner, findings, v, path, is_attach, out, scanned, seen);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut items: Vec<(u64, &Value)> = Vec::new();
    if doc.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
        for (i, e) in doc
            .get("entry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            items.push((i as u64, e));
        }
    } else {
        items.push((0, doc));
    }
    let mut seen = Seen::new();
    let mut scanned = 0u64;
    for (i, item) in items {
        let rt = item
            .get("resource")
            .unwrap_or(item)
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("Resource");
        let mut found = Vec::new();
        let mut path = rt.to_owned();
        walk(
            scanner,
            findings,
            item,
            &mut path,
            false,
            &mut found,
            &mut scanned,
            &mut seen,
        );
        for (p, k, held) in found {
            let hit = crate::report::LeakHit {
                file: file.to_owned(),
                record: record_base + i,
                path: p,
                kind: k.name().to_owned(),
            };
            match held {
                Some(key) => findings.hold(key, hit),
                None => findings.hits.push(hit),
            }
        }
    }
    findings.scanned += scanned;
}
