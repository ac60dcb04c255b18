//! HL7 v2 de-identification on the lossless model of `airlock-formats`.
//!
//! Fields are handled by their data type, from a built-in table of the segments that carry
//! identity (`MSH` facilities, `EVN`, `PID`, `PD1`, `NK1`, `PV1`, `GT1`, `IN1`, `IN2`, `OBX`,
//! `NTE`, `OBR`, `ORC`, `DG1`, `PR1`, `AL1`); a profile's `[[hl7]]` rules override it:
//!
//! | type | default |
//! |---|---|
//! | person (XPN, XCN) | cleared |
//! | address (XAD) | state, country, type kept; zip per the zip policy; city per `keep_city`; the rest cleared |
//! | phone / email (XTN) | cleared |
//! | identifier (CX) | component 1 pseudonymised (`mrn` namespace for the patient's MRN: the same pseudonym as in FHIR and CSV); authority and type kept; the rest cleared |
//! | other identifier text (SSN, licence, policy number) | cleared |
//! | date / time (DT, DTM) | the profile's date policy with the patient's offset (birth dates: birth-year cap) |
//! | facility (HD, XON) | name and universal id pseudonymised (`facility` namespace) |
//! | location (PL), county, birth place | cleared |
//! | text (FT, TX, OBX-5 of type TX/FT/ST, NTE-3) | free-text engine |
//! | codes, values, sex, race, ethnicity | kept |
//! | any other field | leaf by leaf: date-shaped → date policy, else the free-text engine |
//!
//! The patient key is the MRN: the `PID-3` repetition of type `MR`, else its first repetition.

use airlock_formats::hl7::{Component, Delimiters, Field, Message, Segment};
use airlock_text::KnownIdentifiers;

use crate::engine::{DateMethod, Run, ScalarCtx};
use crate::leak::LeakKind;
use crate::profile::{Hierarchy, Hl7Rule, Method, ZipPolicy};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Person,
    Provider,
    Address,
    Phone,
    Cx,
    Date,
    BirthDate,
    IdText,
    Place,
    Org,
    Location,
    Text,
    Keep,
    ObxValue,
    Code,
}

fn field_kind(seg: &str, n: usize) -> Option<Kind> {
    use Kind::*;
    Some(match (seg, n) {
        ("MSH", 4 | 6 | 22 | 23) => Org,
        ("MSH", 7) => Date,
        ("MSH", 10) => Cx,
        ("MSH", _) => Keep,
        ("EVN", 2 | 3 | 6) => Date,
        ("EVN", 5) => Provider,
        ("EVN", 7) => Org,
        ("EVN", 1 | 4) => Keep,
        ("PID", 2 | 3 | 4 | 18 | 21) => Cx,
        ("PID", 5 | 6 | 9) => Person,
        ("PID", 7) => BirthDate,
        ("PID", 29 | 33) => Date,
        ("PID", 11) => Address,
        ("PID", 12 | 23) => Place,
        ("PID", 13 | 14 | 40) => Phone,
        ("PID", 19 | 20) => IdText,
        (
            "PID",
            1 | 8 | 10 | 15 | 16 | 17 | 22 | 24 | 25 | 26 | 27 | 28 | 30 | 31 | 32 | 34 | 35 | 36
            | 37 | 38 | 39,
        ) => Keep,
        ("PD1", 3) => Org,
        ("PD1", 4) => Provider,
        ("NK1", 2 | 30) => Person,
        ("NK1", 4 | 32) => Address,
        ("NK1", 5 | 6 | 31 | 40 | 41) => Phone,
        ("NK1", 8 | 9) => Date,
        ("NK1", 16) => BirthDate,
        ("NK1", 13) => Org,
        ("NK1", 12 | 33) => Cx,
        ("NK1", 37) => IdText,
        (
            "NK1",
            1 | 3 | 7 | 14 | 15 | 17 | 18 | 19 | 20 | 21 | 22 | 23 | 24 | 25 | 26 | 27 | 28 | 34
            | 35 | 36 | 38 | 39,
        ) => Keep,
        ("PV1", 3 | 6 | 11 | 42 | 43) => Location,
        ("PV1", 7 | 8 | 9 | 17 | 52) => Provider,
        ("PV1", 19 | 50) => Cx,
        ("PV1", 44 | 45) => Date,
        ("PV1", 39) => Org,
        ("PV1", 1 | 2 | 4 | 5 | 10 | 14 | 15 | 16 | 18 | 36 | 40 | 41) => Keep,
        ("GT1", 2 | 19) => Cx,
        ("GT1", 3 | 4 | 16 | 45) => Person,
        ("GT1", 5 | 17 | 46) => Address,
        ("GT1", 6 | 7 | 18 | 47) => Phone,
        ("GT1", 8) => BirthDate,
        ("GT1", 13 | 14 | 32 | 33) => Date,
        ("GT1", 12) => IdText,
        ("GT1", 1 | 9 | 10 | 11 | 15 | 20 | 25 | 29 | 30 | 31) => Keep,
        ("IN1", 3 | 49) => Cx,
        ("IN1", 4 | 9 | 11) => Org,
        ("IN1", 5 | 19 | 44) => Address,
        ("IN1", 6 | 16) => Person,
        ("IN1", 7) => Phone,
        ("IN1", 8 | 10 | 36) => IdText,
        ("IN1", 12 | 13 | 26) => Date,
        ("IN1", 18) => BirthDate,
        ("IN1", 1 | 2 | 15 | 17 | 43) => Keep,
        ("IN2", 1 | 8 | 10) => Cx,
        ("IN2", 2 | 6) => IdText,
        ("IN2", 7) => Person,
        ("OBX", 5) => ObxValue,
        ("OBX", 14 | 19) => Date,
        ("OBX", 15 | 23) => Org,
        ("OBX", 16 | 25) => Provider,
        ("OBX", 18) => IdText,
        ("OBX", 24) => Address,
        ("OBX", 1 | 2 | 3 | 4 | 6 | 7 | 8 | 9 | 10 | 11 | 12 | 13 | 17 | 20 | 21 | 22) => Keep,
        ("NTE", 3) => Text,
        ("NTE", 1 | 2 | 4) => Keep,
        ("NTE", 5) => Provider,
        ("NTE", 6 | 7) => Date,
        ("OBR", 2 | 3 | 53) => Cx,
        ("OBR", 6 | 7 | 8 | 14 | 22 | 27 | 36) => Date,
        ("OBR", 10 | 16 | 28 | 32 | 33 | 34 | 35) => Provider,
        ("OBR", 17) => Phone,
        ("OBR", 1 | 4 | 5 | 11 | 12 | 13 | 15 | 24 | 25 | 26 | 30 | 31) => Keep,
        ("ORC", 2..=4) => Cx,
        ("ORC", 9 | 15) => Date,
        ("ORC", 10 | 11 | 12 | 19) => Provider,
        ("ORC", 21) => Org,
        ("ORC", 22 | 24) => Address,
        ("ORC", 14 | 23) => Phone,
        ("ORC", 1 | 5 | 16) => Keep,
        ("DG1", 3) => Code,
        ("DG1", 5 | 19) => Date,
        ("DG1", 16) => Provider,
        ("DG1", 1 | 2 | 6 | 15 | 17) => Keep,
        ("PR1", 3) => Code,
        ("PR1", 5) => Date,
        ("PR1", 8 | 11 | 12) => Provider,
        ("PR1", 1 | 2 | 6 | 7 | 10) => Keep,
        ("AL1", 6) => Date,
        ("PV2", 13) => Provider,
        ("ROL", 4) => Provider,
        ("ROL", 11) => Address,
        ("ROL", 12) => Phone,
        ("AL1", 1..=5) => Keep,
        _ => return None,
    })
}

/// Where a message's patient information is.
struct PatientInfo {
    mrn: Option<String>,
}

fn mrn_of(msg: &Message) -> Option<String> {
    let d = &msg.delimiters;
    let pid3 = msg.segment("PID")?.field(3)?;
    let rep = pid3
        .repetitions
        .iter()
        .find(|r| r.component(5).is_some_and(|c| c.value(d) == "MR"))
        .or_else(|| pid3.repetitions.first())?;
    let v = rep.component(1)?.value(d);
    (!v.is_empty()).then_some(v)
}

fn comp_values(f: &Field, d: &Delimiters, comps: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    for r in &f.repetitions {
        for &c in comps {
            if let Some(comp) = r.component(c) {
                for sub in &comp.subcomponents {
                    let v = d.decode(sub);
                    if !v.trim().is_empty() {
                        out.push(v.into_owned());
                    }
                }
            }
        }
    }
    out
}

fn known_from_message(msg: &Message) -> KnownIdentifiers {
    let mut k = KnownIdentifiers::default();
    let d = &msg.delimiters;
    if let Some(pid) = msg.segment("PID") {
        if let Some(f) = pid.field(5) {
            for r in &f.repetitions {
                let fam = r
                    .component(1)
                    .map(|c| {
                        d.decode(c.subcomponents.first().map_or("", String::as_str))
                            .into_owned()
                    })
                    .unwrap_or_default();
                let giv = r.component(2).map(|c| c.value(d)).unwrap_or_default();
                if !fam.is_empty() && !giv.is_empty() {
                    k.names.push(format!("{giv} {fam}"));
                }
                k.names
                    .extend([fam, giv].into_iter().filter(|s| !s.is_empty()));
            }
        }
        for n in [2, 3, 4, 19, 20] {
            if let Some(f) = pid.field(n) {
                k.ids.extend(comp_values(f, d, &[1]));
            }
        }
        for n in [13, 14] {
            if let Some(f) = pid.field(n) {
                k.phones.extend(comp_values(f, d, &[1]));
                k.emails.extend(comp_values(f, d, &[4]));
            }
        }
        if let Some(f) = pid.field(11) {
            k.addresses.extend(comp_values(f, d, &[1]));
            k.cities.extend(comp_values(f, d, &[3]));
        }
        if let Some(f) = pid.field(7) {
            let v = f.first_value(d);
            if v.len() >= 8
                && let (Some(y), Some(m), Some(dd)) = (v.get(0..4), v.get(4..6), v.get(6..8))
            {
                k.dates.push(format!("{y}-{m}-{dd}"));
            }
        }
    }
    k
}

/// Collects the identifying values of a message (for the leak check, the text engine and the
/// final scrub): names of the patient, relatives, guarantors, insured and providers; ids;
/// phones and emails; the addresses of the individual, relatives and guarantor; dates.
pub(crate) fn collect_message(run: &mut Run<'_>, msg: &Message, known: &mut KnownIdentifiers) {
    let d = &msg.delimiters;
    let dates_kept = run.default_date_method() == DateMethod::Keep;
    let keep_city = run.p().keep_city;
    for seg in &msg.segments {
        for (i, f) in seg.fields.iter().enumerate() {
            let n = i + 1;
            if seg.id == "MSH" && n <= 2 {
                continue;
            }
            let add = |run: &mut Run<'_>,
                       comps: &[usize],
                       kind: LeakKind,
                       list: Option<&mut Vec<String>>| {
                let vals = comp_values(f, d, comps);
                for v in &vals {
                    run.leak(kind, v);
                }
                if let Some(l) = list {
                    l.extend(vals.into_iter().filter(|v| v.chars().count() >= 3));
                }
            };
            match field_kind(&seg.id, n) {
                Some(Kind::Person) => add(run, &[1, 2, 3], LeakKind::Name, Some(&mut known.names)),
                Some(Kind::Provider) => {
                    add(run, &[2, 3, 4], LeakKind::Name, Some(&mut known.names));
                    add(run, &[1], LeakKind::Id, Some(&mut known.ids));
                }
                Some(Kind::Address)
                    if matches!(seg.id.as_str(), "PID" | "NK1" | "GT1")
                        || (seg.id == "IN1" && n == 19) =>
                {
                    add(run, &[1, 2], LeakKind::Street, Some(&mut known.addresses));
                    add(run, &[5], LeakKind::Zip, None);
                    add(run, &[9], LeakKind::City, Some(&mut known.cities));
                    if !keep_city {
                        add(run, &[3], LeakKind::City, Some(&mut known.cities));
                    }
                }
                Some(Kind::Phone) => {
                    add(run, &[1, 7], LeakKind::Phone, Some(&mut known.phones));
                    add(run, &[4], LeakKind::Email, Some(&mut known.emails));
                }
                Some(Kind::Cx | Kind::IdText) => add(run, &[1], LeakKind::Id, Some(&mut known.ids)),
                Some(Kind::Place) => add(run, &[1], LeakKind::City, Some(&mut known.cities)),
                Some(Kind::Date | Kind::BirthDate) if !dates_kept => {
                    for v in comp_values(f, d, &[1]) {
                        if let (Some(y), Some(m), Some(dd)) =
                            (v.get(0..4), v.get(4..6), v.get(6..8))
                            && v.len() >= 8
                            && v.bytes().take(8).all(|b| b.is_ascii_digit())
                        {
                            run.leak(LeakKind::Date, v.get(0..8).unwrap_or_default());
                            run.leak(LeakKind::Date, &format!("{y}-{m}-{dd}"));
                            known.dates.push(format!("{y}-{m}-{dd}"));
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// De-identifies one parsed message in place.
pub(crate) fn deid_message(run: &mut Run<'_>, msg: &mut Message) {
    let mrn = mrn_of(msg);
    let mut known = known_from_message(msg);
    let before = run.leaks.version();
    collect_message(run, msg, &mut known);
    if run.leaks.version() != before {
        run.refresh_scrub();
    }
    run.override_known = Some(known);
    let info = PatientInfo { mrn };
    let d = msg.delimiters;
    let profile = run.profile;
    let rules: &[Hl7Rule] = profile.hl7_rules();
    // OBX-2 value type per segment, read before mutation.
    for seg in msg.segments.iter_mut() {
        let value_type = if seg.id == "OBX" {
            seg.field(2).map(|f| f.first_value(&d)).unwrap_or_default()
        } else {
            String::new()
        };
        let nfields = seg.fields.len();
        let seg_id = seg.id.clone();
        for n in 1..=nfields {
            if seg_id == "MSH" && n <= 2 {
                continue;
            }
            let Some(field) = seg.field_mut(n) else {
                continue;
            };
            if field.is_empty() {
                continue;
            }
            let path = format!("{seg_id}-{n}");
            let rule = rules.iter().find(|r| r.segment == seg_id && r.field == n);
            if let Some(r) = rule {
                apply_rule(run, &info, &d, field, r, &path);
                continue;
            }
            let kind = field_kind(&seg_id, n);
            let name = process_kind(run, &info, &d, field, kind, &value_type);
            run.changes.add(&path, name);
        }
    }
    scrub(run, msg);
    for seg in msg.segments.iter_mut() {
        trim_trailing_empty(seg);
    }
    run.override_known = None;
    // The message as it will be written: its patient's residual quasi-identifiers.
    run.patient_qis.hl7_message(msg);
}

/// Clears any remaining leaf that is exactly an identifying value seen in the input, and
/// replaces identifying values inside other leaves by their tag (a name or id repeated in a
/// field the type table keeps or does not cover).
fn scrub(run: &mut Run<'_>, msg: &mut Message) {
    let d = msg.delimiters;
    let scanner = run.scanner();
    for seg in msg.segments.iter_mut() {
        let id = seg.id.clone();
        for (i, f) in seg.fields.iter_mut().enumerate() {
            if id == "MSH" && i < 2 {
                continue;
            }
            let mut hit = false;
            for leaf in f.leaves_mut() {
                if leaf.is_empty() {
                    continue;
                }
                let v = d.decode(leaf).into_owned();
                if run.leaks.contains(&v) {
                    leaf.clear();
                    hit = true;
                } else if let Some(t) = scanner.scrub(&v) {
                    *leaf = d.encode(&t).into_owned();
                    hit = true;
                }
            }
            if hit {
                normalise(f);
                run.changes.add(&format!("{id}-{}", i + 1), "scrub");
            }
        }
    }
}

/// Collects identifying values from every message of an HL7 file (a pre-pass, so the scrub
/// and the text engine know values that appear in later messages or files).
pub(crate) fn collect_file(run: &mut Run<'_>, bytes: &[u8]) {
    if let Ok(messages) = airlock_formats::hl7::messages(bytes) {
        for raw in messages {
            if let Ok(m) = raw.parse() {
                let mut k = KnownIdentifiers::default();
                collect_message(run, &m, &mut k);
            }
        }
    }
    run.refresh_scrub();
}

fn trim_trailing_empty(seg: &mut Segment) {
    let min = if seg.id == "MSH" { 2 } else { 0 };
    while seg.fields.len() > min && seg.fields.last().is_some_and(Field::is_empty) {
        seg.fields.pop();
    }
}

/// Maps every leaf (decoded value) through `f`; `None` clears the leaf.
fn map_leaves(d: &Delimiters, field: &mut Field, mut f: impl FnMut(&str) -> Option<String>) {
    for leaf in field.leaves_mut() {
        if leaf.is_empty() {
            continue;
        }
        let v = d.decode(leaf).into_owned();
        *leaf = match f(&v) {
            Some(nv) => d.encode(&nv).into_owned(),
            None => String::new(),
        };
    }
    normalise(field);
}

/// Drops empty trailing components and repetitions so cleared data leaves no shape behind.
fn normalise(field: &mut Field) {
    for r in &mut field.repetitions {
        for c in &mut r.components {
            while c.subcomponents.len() > 1 && c.subcomponents.last().is_some_and(String::is_empty)
            {
                c.subcomponents.pop();
            }
        }
        while r.components.len() > 1 && r.components.last().is_some_and(Component::is_empty) {
            r.components.pop();
        }
    }
    field.repetitions.retain(|r| !r.is_empty());
    if field.repetitions.is_empty() {
        *field = Field::empty();
    }
}

/// Keeps only the listed components of each repetition (others cleared).
fn keep_components(field: &mut Field, keep: &[usize]) {
    for r in &mut field.repetitions {
        for (i, c) in r.components.iter_mut().enumerate() {
            if !keep.contains(&(i + 1)) {
                *c = Component::leaf("");
            }
        }
    }
    normalise(field);
}

fn date_method_name(m: DateMethod) -> &'static str {
    match m {
        DateMethod::Keep => "keep",
        DateMethod::Redact => "redact",
        DateMethod::Year => "yearOnly",
        DateMethod::Shift | DateMethod::Microsoft => "dateShift",
    }
}

fn process_kind(
    run: &mut Run<'_>,
    info: &PatientInfo,
    d: &Delimiters,
    field: &mut Field,
    kind: Option<Kind>,
    value_type: &str,
) -> &'static str {
    let mrn = info.mrn.as_deref();
    match kind {
        Some(Kind::Keep) => "keep",
        Some(Kind::Code) => {
            if run.rare.is_some() {
                let h = field
                    .repetitions
                    .first()
                    .and_then(|r| r.component(3))
                    .map(|c| c.value(d).to_ascii_uppercase())
                    .and_then(|s| match s.as_str() {
                        "I10" | "ICD10" | "I10C" | "ICD10CM" => Some(Hierarchy::Icd10),
                        "I9" | "I9C" | "ICD9" | "ICD9CM" => Some(Hierarchy::Icd9),
                        "SCT" | "SNM" | "SNOMED" => Some(Hierarchy::Snomed),
                        _ => None,
                    });
                if let Some(h) = h {
                    let rare = run.rare.as_ref();
                    if let Some(c) = field
                        .repetitions
                        .first_mut()
                        .and_then(|r| r.component_mut(1))
                    {
                        let code = c.value(d);
                        let g = crate::codes::generalize(&code, h, rare);
                        if g != code {
                            *c = Component::leaf(d.encode(&g).into_owned());
                            if let Some(r) = field.repetitions.first_mut()
                                && let Some(disp) = r.component_mut(2)
                            {
                                *disp = Component::leaf("");
                            }
                            normalise(field);
                            return "generalize";
                        }
                    }
                }
            }
            "keep"
        }
        Some(Kind::Person) | Some(Kind::Provider) => {
            *field = Field::empty();
            "redact"
        }
        Some(Kind::Phone) => {
            *field = Field::empty();
            "redact"
        }
        Some(Kind::IdText) => {
            *field = Field::empty();
            "redact"
        }
        Some(Kind::Place) => {
            *field = Field::empty();
            "redact"
        }
        Some(Kind::Location) => {
            *field = Field::empty();
            "redact"
        }
        Some(Kind::Address) => {
            let keep_city = run.p().keep_city;
            let zip = run.p().zip;
            let restricted = run.p().restricted;
            for r in &mut field.repetitions {
                if let Some(c) = r.component_mut(5) {
                    let v = c.value(d);
                    let nv = match zip {
                        ZipPolicy::Keep => Some(v),
                        ZipPolicy::Redact => None,
                        ZipPolicy::Zip3 => crate::values::zip3(&v, restricted),
                    };
                    *c = Component::leaf(nv.map(|s| d.encode(&s).into_owned()).unwrap_or_default());
                }
            }
            let mut keep = vec![4, 5, 6, 7];
            if keep_city {
                keep.push(3);
            }
            keep_components(field, &keep);
            "zip3"
        }
        Some(Kind::Cx) => {
            for r in &mut field.repetitions {
                if let Some(c) = r.component_mut(1) {
                    let v = c.value(d);
                    if !v.is_empty() {
                        let ns = if mrn == Some(v.as_str()) {
                            "mrn"
                        } else {
                            "identifier"
                        };
                        let p = run.pseudonym(ns, &v);
                        *c = Component::leaf(p);
                    }
                }
            }
            keep_components(field, &[1, 4, 5]);
            "pseudonym"
        }
        Some(Kind::Org) => {
            for r in &mut field.repetitions {
                for (i, c) in r.components.iter_mut().enumerate() {
                    for sub in &mut c.subcomponents {
                        let v = d.decode(sub).into_owned();
                        if v.is_empty() {
                            continue;
                        }
                        let short_code = v.len() <= 5
                            && v.chars()
                                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
                        *sub = if (i == 0 || i == 1 || i == 9) || !short_code {
                            if i <= 1 || i == 9 {
                                run.pseudonym("facility", &v)
                            } else {
                                String::new()
                            }
                        } else {
                            sub.clone()
                        };
                    }
                }
            }
            normalise(field);
            "pseudonym"
        }
        Some(Kind::Date) | Some(Kind::BirthDate) => {
            let birth = kind == Some(Kind::BirthDate);
            let m = run.default_date_method();
            map_leaves(d, field, |v| run.date(v, m, mrn, birth, ""));
            date_method_name(m)
        }
        Some(Kind::Text) => {
            map_leaves(d, field, |v| run.text(v, mrn));
            "text"
        }
        Some(Kind::ObxValue) => match value_type {
            "TX" | "FT" | "ST" => {
                // A formatted-text value is one text: decode whole repetitions.
                map_leaves(d, field, |v| run.text(v, mrn));
                "text"
            }
            "RP" | "ED" => {
                *field = Field::empty();
                "redact"
            }
            "DT" | "DTM" | "TS" => process_kind(run, info, d, field, Some(Kind::Date), ""),
            "XPN" | "XCN" | "PN" | "CN" => {
                process_kind(run, info, d, field, Some(Kind::Person), "")
            }
            "XAD" | "AD" => process_kind(run, info, d, field, Some(Kind::Address), ""),
            "XTN" | "TN" => process_kind(run, info, d, field, Some(Kind::Phone), ""),
            "CX" => process_kind(run, info, d, field, Some(Kind::Cx), ""),
            _ => "keep",
        },
        None => {
            // Unknown field: leaf by leaf.
            let m = run.default_date_method();
            map_leaves(d, field, |v| {
                if crate::values::is_date(v, false) && v.len() >= 8 {
                    run.date(v, m, mrn, false, "")
                } else if v.chars().any(char::is_alphabetic)
                    || v.chars().filter(char::is_ascii_digit).count() >= 4
                {
                    run.text(v, mrn)
                } else {
                    Some(v.to_owned())
                }
            });
            "text"
        }
    }
}

fn apply_rule(
    run: &mut Run<'_>,
    info: &PatientInfo,
    d: &Delimiters,
    field: &mut Field,
    rule: &Hl7Rule,
    path: &str,
) {
    let mrn = info.mrn.clone();
    let name = rule.method.name();
    let p = match rule.component {
        Some(c) => format!("{path}.{c}"),
        None => path.to_owned(),
    };
    run.changes.add(&p, name);
    let apply = |run: &mut Run<'_>, f: &mut Field| match &rule.method {
        Method::Keep => {}
        Method::Redact => *f = Field::empty(),
        Method::Pseudonym => {
            for r in &mut f.repetitions {
                if let Some(c) = r.component_mut(1) {
                    let v = c.value(d);
                    if !v.is_empty() {
                        let ns = if mrn.as_deref() == Some(v.as_str()) {
                            "mrn"
                        } else {
                            "identifier"
                        };
                        *c = Component::leaf(run.pseudonym(ns, &v));
                    }
                }
            }
        }
        m => {
            let ctx = ScalarCtx {
                namespace: "identifier",
                mrn: mrn.as_deref(),
                birth: path == "PID-7",
                resource_id: "",
            };
            map_leaves(d, f, |v| run.scalar(m, v, &ctx));
        }
    };
    match rule.component {
        None => apply(run, field),
        Some(c) => {
            for r in &mut field.repetitions {
                if let Some(comp) = r.component_mut(c) {
                    let mut tmp = Field {
                        repetitions: vec![airlock_formats::hl7::Repetition {
                            components: vec![comp.clone()],
                        }],
                    };
                    apply(run, &mut tmp);
                    *comp = tmp
                        .repetitions
                        .into_iter()
                        .next()
                        .and_then(|r| r.components.into_iter().next())
                        .unwrap_or_else(|| Component::leaf(""));
                }
            }
            normalise(field);
        }
    }
}

/// Collects the leak-check hits of an output message.
pub(crate) fn scan_message(
    scanner: &crate::leak::Scanner,
    msg: &Message,
    file: &str,
    record: u64,
    findings: &mut crate::leak::Findings<'_>,
) {
    let d = &msg.delimiters;
    for seg in &msg.segments {
        for (i, f) in seg.fields.iter().enumerate() {
            if seg.id == "MSH" && i < 2 {
                continue;
            }
            for r in &f.repetitions {
                for (ci, c) in r.components.iter().enumerate() {
                    let v = c.value(d);
                    if v.is_empty() {
                        continue;
                    }
                    findings.scanned += 1;
                    if let Some(k) = scanner.find(&v) {
                        let hit = crate::report::LeakHit {
                            file: file.to_owned(),
                            record,
                            path: format!("{}-{}.{}", seg.id, i + 1, ci + 1),
                            kind: k.name().to_owned(),
                        };
                        findings.hit(scanner, &v, k, hit);
                    }
                }
            }
        }
    }
}

/// The MRN of a message (for pre-passes).
pub(crate) fn message_mrn(msg: &Message) -> Option<String> {
    mrn_of(msg)
}
