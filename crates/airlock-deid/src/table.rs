//! CSV de-identification, streaming row by row (memory flat with input size).
//!
//! Each column gets a plan from the first of these that knows it:
//! 1. a built-in mapping ([`crate::mapping`]): a table recognised by its header (a Synthea CSV
//!    export's tables, the OMOP CDM's) has every column named: record keys become surrogates of
//!    the same shape, the same in every file of the run, so the tables still join; dates follow
//!    the profile's date policy; names, SSN, licence, passport, addresses, coordinates and
//!    places are removed;
//! 2. the profile's `[[csv]]` rules (names matched case-insensitively);
//! 3. the column's name: direct identifiers (SSN, phone, fax, email, names, street address,
//!    MRN, account, licence, plate, VIN, device/serial, URL, IP) are **removed with a
//!    warning**; zip/postal columns get the zip policy, city/county columns are removed unless
//!    the profile keeps cities, birth places are removed, free text goes to the text engine,
//!    birth-date columns get the date policy (with the birth-year cap);
//! 4. the column's content ([`crate::columns`], over the first [`SAMPLE_ROWS`] rows): record
//!    keys, SSN, licence and passport numbers, phones, emails, device identifiers, street
//!    addresses, places, coordinates and dates are recognised whatever the column is called;
//!    a column a mapping keeps whose values are unmistakably identifiers is treated as what it
//!    holds, with a warning.
//!
//! Anything else is kept. The patient key is the first column a mapping calls the patient's or
//! a rule marks `patient_key = true`: its date offset applies to the row's dates, and a rule's
//! patient key gets the `mrn` pseudonym (the same as in FHIR and HL7).
//!
//! A profile's `[k_anonymity]` applies to tables of people only ([`qi_fit`]): its names find
//! columns by name or alias ([`QI_GROUPS`]); a table of people (a known export's, or an unknown
//! table with some of the names) missing one is an error, any other table is left alone.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::OnceLock;

use regex::Regex;

use crate::columns::{Detected, SAMPLE_ROWS, Stats, pair_coordinates};
use crate::engine::{DateMethod, Run, ScalarCtx};
use crate::leak::LeakKind;
use crate::mapping::{Mappings, Treat};
use crate::profile::{DatePolicy, Method, ZipPolicy};
use crate::risk::{KPlan, RiskAccumulator, generalise_value};

/// The plan for one column.
#[derive(Debug, Clone)]
pub(crate) enum Col {
    Rule(Method),
    Drop(LeakKind),
    /// A record key: a surrogate of the same shape in this namespace.
    Key {
        namespace: String,
    },
    Zip,
    City,
    /// A place written as text (a birthplace): removed.
    Place,
    Date {
        birth: bool,
    },
    Keep,
}

impl Col {
    /// Whether the column is left out of the output.
    fn removed(&self) -> bool {
        matches!(self, Col::Drop(_) | Col::Place | Col::Rule(Method::Redact))
    }
}

/// The plan for a table.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub headers: Vec<String>,
    pub cols: Vec<Col>,
    pub out_idx: Vec<usize>,
    pub patient: Option<usize>,
    /// The built-in mapping table the header was recognised as (`synthea/patients`), when no
    /// other table is as close.
    pub table: Option<String>,
    /// Whether the table is its export's table of people, when a mapping recognised it.
    pub person: Option<bool>,
}

/// Whether a normalised column name is a direct identifier. If the built-in pattern failed to
/// compile (it is a constant, covered by tests), every unruled column counts as one: safe.
fn is_direct(n: &str) -> bool {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?x)^(?:.*_)?(?:
                ssn|social_security(?:_number)?|
                phone|telephone|tel|mobile|cell|fax|
                e_?mail|
                name|full_name|first_?name|last_?name|surname|given_?names?|family_?name|middle_?name|maiden_?name|
                given|family|first|last|middle|maiden|
                address|street|street_address|addr|address_line_?\d|line_?[12]|
                mrn|medical_record_number|account|account_number|acct|
                license|licence|license_number|driver_?license|drivers|passport|plate|license_plate|vin|
                device_id|serial|serial_number|udi|
                url|website|ip|ip_address|
                health_plan|beneficiary|member_id|policy_number|insurance_id
            )(?:_(?:number|num|no|nbr|id|address|addr|1|2))?$",
        )
        .ok()
    })
    .as_ref()
    .is_none_or(|re| re.is_match(n))
}

/// Whether an unruled column holds free text: by its name, or because its first value reads
/// like prose. Free text is never passed through: the text engine de-identifies it.
fn is_free_text(n: &str, first: Option<&str>) -> bool {
    const NAMES: &[&str] = &[
        "note",
        "notes",
        "comment",
        "comments",
        "text",
        "narrative",
        "description",
        "remarks",
        "free_text",
        "report",
        "summary",
        "history",
        "impression",
        "findings",
        "message",
    ];
    if NAMES
        .iter()
        .any(|t| n == *t || n.ends_with(&format!("_{t}")))
    {
        return true;
    }
    first.is_some_and(|v| v.len() >= 40 && v.split_whitespace().count() >= 6)
}

/// Whether a normalised column name is a place of birth (a place, not a date).
fn is_birthplace(n: &str) -> bool {
    n.contains("birthplace") || n.contains("birth_place") || n == "place_of_birth"
}

fn norm(h: &str) -> String {
    h.trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The column a mapping's treatment makes.
fn from_treat(run: &Run<'_>, t: &Treat) -> Col {
    match t {
        Treat::Keep => Col::Keep,
        Treat::Key { namespace, .. } => Col::Key {
            namespace: namespace.clone(),
        },
        Treat::Date { birth } => Col::Date { birth: *birth },
        // A month, a day or a time alone next to a year-only or shifted date would give back
        // what the date policy took away: kept only where dates are kept.
        Treat::DatePart if run.p().dates == DatePolicy::Keep => Col::Keep,
        Treat::DatePart => Col::Drop(LeakKind::Date),
        Treat::Drop(k) => Col::Drop(*k),
        // A birthplace names a town and a state: kept where the profile keeps cities (a limited
        // data set may keep "town or city, State", 164.514(e)(2)).
        Treat::Place if run.p().keep_city => Col::City,
        Treat::Place => Col::Place,
        Treat::City => Col::City,
        Treat::Zip => Col::Zip,
        Treat::Age => Col::Rule(Method::AgeCap),
        Treat::Text => Col::Rule(Method::Text),
    }
}

/// The column content recognition makes, and what the warning says is done.
fn from_detected(run: &Run<'_>, d: Detected, birth: bool) -> (Col, &'static str) {
    match d {
        Detected::Place if run.p().keep_city => (Col::City, "city policy applied"),
        Detected::Key => (
            Col::Key {
                namespace: "id".to_owned(),
            },
            "replaced by surrogates",
        ),
        Detected::Uid => (
            Col::Key {
                namespace: "uid".to_owned(),
            },
            "replaced by surrogates",
        ),
        Detected::Ssn | Detected::Licence | Detected::Device => {
            (Col::Drop(LeakKind::Id), "removed")
        }
        Detected::Phone => (Col::Drop(LeakKind::Phone), "removed"),
        Detected::Email => (Col::Drop(LeakKind::Email), "removed"),
        Detected::Street => (Col::Drop(LeakKind::Street), "removed"),
        Detected::Place => (Col::Place, "removed"),
        Detected::Date => (Col::Date { birth }, "date policy applied"),
    }
}

/// Builds the plan from the header and a sample of the first rows (see the module docs).
pub(crate) fn plan(
    run: &mut Run<'_>,
    file: &str,
    headers: &[String],
    sample: &[csv::StringRecord],
) -> Plan {
    let rules = run.profile.csv_rules().to_vec();
    let recognised = Mappings::builtin().and_then(|m| m.identify(headers));
    let mut stats = vec![Stats::default(); headers.len()];
    for rec in sample {
        for (s, v) in stats.iter_mut().zip(rec.iter()) {
            s.add(v);
        }
    }
    let names: Vec<String> = headers.iter().map(|h| norm(h)).collect();
    let coords = pair_coordinates(&stats, &names);
    let first = sample.first();
    let mut cols = Vec::with_capacity(headers.len());
    let mut patient = None;
    for (i, h) in headers.iter().enumerate() {
        let n = names.get(i).cloned().unwrap_or_default();
        let detected = stats.get(i).and_then(Stats::detect);
        let birth = n.contains("birth") && !is_birthplace(&n) || n == "dob";
        if let Some((t, _)) = recognised
            && let Some(tr) = t.treatment(h)
        {
            if matches!(tr, Treat::Key { patient: true, .. }) && patient.is_none() {
                patient = Some(i);
            }
            let mut col = from_treat(run, tr);
            if matches!(col, Col::Keep)
                && let Some(d) = detected.filter(|d| d.overrides_keep())
            {
                let (c, what) = from_detected(run, d, birth);
                run.warn(format!(
                    "{file}: column `{h}` ({}) holds {}: {what}",
                    t.id,
                    d.name()
                ));
                col = c;
            }
            cols.push(col);
            continue;
        }
        if let Some(r) = rules
            .iter()
            .find(|r| r.column.eq_ignore_ascii_case(h.trim()))
        {
            if r.patient_key && patient.is_none() {
                patient = Some(i);
            }
            cols.push(Col::Rule(r.method.clone()));
            continue;
        }
        let col = if is_direct(&n) {
            run.warn(format!(
                "{file}: column `{h}` looks like an identifier and has no rule: removed"
            ));
            let kind = if n.contains("mail") {
                LeakKind::Email
            } else if n.contains("phone")
                || n.contains("tel")
                || n.contains("fax")
                || n.contains("mobile")
                || n.contains("cell")
            {
                LeakKind::Phone
            } else if n.contains("name") {
                LeakKind::Name
            } else if n.contains("addr") || n.contains("street") || n.contains("line") {
                LeakKind::Street
            } else {
                LeakKind::Id
            };
            Col::Drop(kind)
        } else if n.contains("zip") || n.contains("postal") {
            run.warn(format!(
                "{file}: column `{h}` has no rule: zip policy applied"
            ));
            Col::Zip
        } else if n == "city"
            || n == "county"
            || n == "town"
            || n.ends_with("_city")
            || n.ends_with("_county")
        {
            run.warn(format!(
                "{file}: column `{h}` has no rule: city policy applied"
            ));
            Col::City
        } else if is_birthplace(&n) && run.p().keep_city {
            run.warn(format!(
                "{file}: column `{h}` is a place of birth and has no rule: city policy applied"
            ));
            Col::City
        } else if is_birthplace(&n) {
            run.warn(format!(
                "{file}: column `{h}` is a place of birth and has no rule: removed"
            ));
            Col::Place
        } else if coords.get(i).copied().unwrap_or(false) {
            run.warn(format!(
                "{file}: column `{h}` has no rule and holds coordinates: removed"
            ));
            Col::Drop(LeakKind::Geo)
        } else if let Some(d) = detected.filter(|d| *d != Detected::Date) {
            let (c, what) = from_detected(run, d, birth);
            run.warn(format!(
                "{file}: column `{h}` has no rule and holds {}: {what}",
                d.name()
            ));
            c
        } else if is_free_text(&n, first.and_then(|r| r.get(i))) {
            run.warn(format!(
                "{file}: column `{h}` has no rule and holds free text: de-identified by the text engine"
            ));
            Col::Rule(Method::Text)
        } else if birth || detected == Some(Detected::Date) {
            Col::Date { birth }
        } else {
            Col::Keep
        };
        cols.push(col);
    }
    let out_idx = cols
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.removed())
        .map(|(i, _)| i)
        .collect();
    Plan {
        headers: headers.to_vec(),
        cols,
        out_idx,
        patient,
        table: recognised
            .filter(|(_, unique)| *unique)
            .map(|(t, _)| t.id.clone()),
        person: recognised.map(|(t, _)| t.person),
    }
}

/// The identifiers in a row's dropped columns, for the text engine.
fn row_known(p: &Plan, rec: &csv::StringRecord) -> airlock_text::KnownIdentifiers {
    let mut k = airlock_text::KnownIdentifiers::default();
    let mut given = Vec::new();
    let mut family = Vec::new();
    for (i, c) in p.cols.iter().enumerate() {
        let Some(v) = rec.get(i).map(str::trim).filter(|v| !v.is_empty()) else {
            continue;
        };
        let h = p.headers.get(i).map(|h| norm(h)).unwrap_or_default();
        match c {
            Col::Drop(LeakKind::Name) => {
                if h.contains("given") || h.contains("first") {
                    given.push(v.to_owned());
                } else if h.contains("family") || h.contains("last") || h.contains("surname") {
                    family.push(v.to_owned());
                }
                k.names.push(v.to_owned());
            }
            Col::Drop(LeakKind::Phone) => k.phones.push(v.to_owned()),
            Col::Drop(LeakKind::Email) => k.emails.push(v.to_owned()),
            Col::Drop(LeakKind::Street) => k.addresses.push(v.to_owned()),
            Col::Drop(LeakKind::Geo | LeakKind::Date) => {}
            Col::Drop(_) => k.ids.push(v.to_owned()),
            Col::City | Col::Place => k.cities.push(v.to_owned()),
            Col::Date { birth: true } => k.dates.push(v.to_owned()),
            Col::Rule(_) | Col::Key { .. } if p.patient == Some(i) => k.ids.push(v.to_owned()),
            _ => {}
        }
    }
    for g in &given {
        for f in &family {
            k.names.push(format!("{g} {f}"));
        }
    }
    k
}

/// Records a quarantined CSV row (position and reason only, never its values).
fn quarantine_row(
    run: &mut Run<'_>,
    file: &str,
    record: u64,
    position: Option<&csv::Position>,
    reason: String,
) {
    run.quarantined.push(crate::report::Quarantined {
        file: file.to_owned(),
        record,
        line: position.map_or(0, csv::Position::line),
        path: "row".to_owned(),
        reason,
    });
}

/// Whether a record key is specific enough to look for in the output: not a bare integer of
/// fewer than ten digits. Integer keys an ETL assigned (OMOP's `person_id` 1, 2, 3...) are
/// replaced like any key, but the same numbers are everywhere in the output as concept ids,
/// counts and measurements, so the leak check would find them by coincidence, not by leak.
fn specific_key(v: &str) -> bool {
    !v.bytes().all(|b| b.is_ascii_digit()) || v.len() >= 10
}

/// The places a place written as text names: the whole value and its first part (`Caguas` of
/// `Caguas  Puerto Rico  PR`, `Boston` of `Boston, MA`), which other columns may repeat.
fn place_parts(v: &str) -> impl Iterator<Item = &str> {
    let first = v
        .split("  ")
        .next()
        .and_then(|p| p.split(',').next())
        .map(str::trim)
        .filter(|p| *p != v.trim());
    std::iter::once(v).chain(first)
}

/// Records the identifying values of one row (the run's leak set) without transforming it: the
/// dataset pre-pass, so that free text anywhere in the run is scrubbed of them.
fn collect_row(run: &mut Run<'_>, p: &Plan, rec: &csv::StringRecord) {
    for (i, c) in p.cols.iter().enumerate() {
        let Some(v) = rec.get(i).map(str::trim).filter(|v| !v.is_empty()) else {
            continue;
        };
        match c {
            Col::Drop(LeakKind::Date) => {}
            Col::Drop(k) => run.leak(*k, v),
            Col::Place => {
                for part in place_parts(v) {
                    run.leak(LeakKind::City, part);
                }
            }
            Col::City if !run.p().keep_city => run.leak(LeakKind::City, v),
            Col::Key { .. } if specific_key(v) => run.leak(LeakKind::Id, v),
            Col::Rule(Method::Pseudonym | Method::CryptoHash | Method::Redact) => {
                run.leak(LeakKind::Id, v);
            }
            _ => {}
        }
    }
}

/// Transforms one cell; `None` = empty.
pub(crate) fn cell(
    run: &mut Run<'_>,
    plan: &Plan,
    i: usize,
    v: &str,
    mrn: Option<&str>,
) -> Option<String> {
    let col = plan.cols.get(i)?;
    let is_patient = plan.patient == Some(i);
    match col {
        Col::Keep => Some(v.to_owned()),
        Col::Drop(k) => {
            run.leak(*k, v);
            None
        }
        Col::Place => {
            for part in place_parts(v) {
                run.leak(LeakKind::City, part);
            }
            None
        }
        Col::Key { namespace } => {
            let t = v.trim();
            if t.is_empty() {
                return Some(v.to_owned());
            }
            if specific_key(t) {
                run.leak(LeakKind::Id, t);
            }
            Some(run.key_surrogate(namespace, t))
        }
        Col::Zip => {
            match run.p().zip {
                // A zip the profile keeps is no leak where it is kept (limited data sets).
                ZipPolicy::Keep => return Some(v.to_owned()),
                ZipPolicy::Redact | ZipPolicy::Zip3 => run.leak(LeakKind::Zip, v),
            }
            match run.p().zip {
                ZipPolicy::Keep => Some(v.to_owned()),
                ZipPolicy::Redact => None,
                ZipPolicy::Zip3 => crate::values::zip3(v, run.p().restricted),
            }
        }
        Col::City => {
            if run.p().keep_city {
                Some(v.to_owned())
            } else {
                run.leak(LeakKind::City, v);
                None
            }
        }
        Col::Date { birth } => {
            let m = run.default_date_method();
            if m == DateMethod::Keep || v.trim().is_empty() {
                return Some(v.to_owned());
            }
            run.leak(LeakKind::Date, v);
            match crate::values::csv_date(v.trim()) {
                Some(iso) => {
                    // The day itself, however the column wrote it, is what the output must
                    // not hold.
                    if let Some(day) = iso.get(..10) {
                        run.leak(LeakKind::Date, day);
                    }
                    run.date(&iso, m, mrn, *birth, "")
                }
                // A bare year (OMOP's `year_of_birth`) or an HL7 timestamp.
                None if crate::values::parse_date(v.trim()).is_some() => {
                    run.date(v.trim(), m, mrn, *birth, "")
                }
                // A column of dates whose value is none: never passed through.
                None => None,
            }
        }
        Col::Rule(m) => {
            if matches!(m, Method::Pseudonym | Method::CryptoHash | Method::Redact) {
                run.leak(LeakKind::Id, v);
            }
            if v.is_empty() {
                return Some(String::new());
            }
            let ns = if is_patient { "mrn" } else { "identifier" };
            let h = plan.headers.get(i).map(String::as_str).unwrap_or_default();
            let n = norm(h);
            let birth = n.contains("birth") && !is_birthplace(&n) || n == "dob";
            let ctx = ScalarCtx {
                namespace: ns,
                mrn,
                birth,
                resource_id: "",
            };
            run.scalar(m, v, &ctx)
        }
    }
}

/// Options for a table pass.
pub(crate) struct TableOpts<'p> {
    pub kplan: Option<(&'p [QiCol], &'p KPlan)>,
}

/// A row read while sampling: a record, or the error that made it unreadable.
enum Read1 {
    Row(csv::StringRecord),
    Bad(Option<csv::Position>, String),
}

/// Reads the header and up to [`SAMPLE_ROWS`] rows, and plans the table from them. The rows
/// read are returned in order for the caller to process before reading on.
fn sample_and_plan<R: Read>(
    run: &mut Run<'_>,
    file: &str,
    rdr: &mut csv::Reader<R>,
) -> Result<(Vec<String>, Plan, Vec<Read1>), airlock_formats::FormatError> {
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| airlock_formats::tabular::csv_error(&e))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut read = Vec::new();
    let mut rec = csv::StringRecord::new();
    while read.len() < SAMPLE_ROWS {
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => read.push(Read1::Row(rec.clone())),
            Err(e) => {
                let fe = airlock_formats::tabular::csv_error(&e);
                read.push(Read1::Bad(e.position().cloned(), fe.to_string()));
            }
        }
    }
    let sample: Vec<csv::StringRecord> = read
        .iter()
        .filter_map(|r| match r {
            Read1::Row(rec) if rec.len() == headers.len() => Some(rec.clone()),
            _ => None,
        })
        .collect();
    let p = plan(run, file, &headers, &sample);
    Ok((headers, p, read))
}

/// The dataset pre-pass over one table: its plan, and the identifying values of every row
/// recorded in the run's leak set (so the free text of every file, and the leak check, know
/// them before any file is transformed). Returns the recognised mapping table, and what the
/// profile's `[k_anonymity]` (if any) makes of the table.
pub(crate) fn prescan_csv<R: Read>(
    run: &mut Run<'_>,
    file: &str,
    input: R,
) -> Result<(Option<String>, Option<QiFit>), airlock_formats::FormatError> {
    let mut rdr = airlock_formats::tabular::reader(input);
    // The transform plans again and warns then: the pre-pass keeps quiet.
    let saved = std::mem::take(&mut run.warnings);
    let planned = sample_and_plan(run, file, &mut rdr);
    run.warnings = saved;
    let (headers, p, read) = planned?;
    for r in &read {
        if let Read1::Row(rec) = r
            && rec.len() == headers.len()
        {
            collect_row(run, &p, rec);
        }
    }
    let mut rec = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) if rec.len() == headers.len() => collect_row(run, &p, &rec),
            Ok(true) | Err(_) => {}
        }
    }
    let fit = run.profile.k_anonymity().map(|k| qi_fit(&p, k));
    Ok((p.table, fit))
}

/// Streams a CSV from `input` to `output`. Ragged rows are quarantined (reported, not written).
/// Returns the plan's recognised mapping table, the number of rows read and the input header.
pub(crate) fn deid_csv<R: Read, W: Write>(
    run: &mut Run<'_>,
    file: &str,
    input: R,
    output: W,
    opts: &TableOpts<'_>,
) -> Result<(Option<String>, u64, Vec<String>), airlock_formats::FormatError> {
    let mut rdr = airlock_formats::tabular::reader(input);
    let (headers, p, read) = sample_and_plan(run, file, &mut rdr)?;
    let mut wtr = airlock_formats::tabular::writer(output);
    let hdr: Vec<&str> = p
        .out_idx
        .iter()
        .filter_map(|&i| headers.get(i).map(String::as_str))
        .collect();
    wtr.write_record(&hdr)
        .map_err(|e| airlock_formats::tabular::csv_error(&e))?;
    let mut row = 0u64;
    let mut out = Vec::with_capacity(headers.len());
    let mut rest = csv::StringRecord::new();
    let mut buffered = read.into_iter();
    loop {
        let item = match buffered.next() {
            Some(item) => item,
            None => match rdr.read_record(&mut rest) {
                Ok(false) => break,
                Ok(true) => Read1::Row(std::mem::take(&mut rest)),
                Err(e) => {
                    let fe = airlock_formats::tabular::csv_error(&e);
                    Read1::Bad(e.position().cloned(), fe.to_string())
                }
            },
        };
        run.records_in += 1;
        let rec = match item {
            Read1::Row(rec) => rec,
            Read1::Bad(pos, reason) => {
                quarantine_row(run, file, row, pos.as_ref(), reason);
                row += 1;
                continue;
            }
        };
        if let Err(e) = airlock_formats::tabular::check_row(&rec, headers.len()) {
            quarantine_row(run, file, row, rec.position(), e.to_string());
            row += 1;
            continue;
        }
        if let Some((_, kp)) = opts.kplan
            && kp.suppress.contains(&row)
        {
            run.changes.add("row", "suppressed");
            row += 1;
            continue;
        }
        write_row(run, &p, &rec, opts, &mut out);
        wtr.write_record(&out)
            .map_err(|e| airlock_formats::tabular::csv_error(&e))?;
        run.records_out += 1;
        row += 1;
    }
    wtr.flush().map_err(|_| airlock_formats::FormatError::Csv {
        line: 0,
        reason: "i/o error",
    })?;
    Ok((p.table, row, headers))
}

/// The output cells of one well-formed row.
fn write_row(
    run: &mut Run<'_>,
    p: &Plan,
    rec: &csv::StringRecord,
    opts: &TableOpts<'_>,
    out: &mut Vec<String>,
) {
    let mrn = p.patient.and_then(|i| rec.get(i)).map(str::to_owned);
    out.clear();
    // The row's own identifiers are the known identifiers of its free text.
    let has_text = p.cols.iter().any(|c| matches!(c, Col::Rule(Method::Text)));
    if has_text {
        run.override_known = Some(row_known(p, rec));
    }
    let shifts = match run.default_date_method() {
        DateMethod::Shift | DateMethod::Microsoft => true,
        DateMethod::Keep | DateMethod::Redact | DateMethod::Year => false,
    };
    for &i in &p.out_idx {
        let v = rec.get(i).unwrap_or_default();
        let mut nv = cell(run, p, i, v, mrn.as_deref()).unwrap_or_default();
        let mut generalised = false;
        if let Some((qcols, kp)) = opts.kplan
            && let Some(q) = qcols.iter().position(|c| c.idx == i)
        {
            let lvl = kp.levels.get(q).copied().unwrap_or(0);
            if lvl > 0 {
                // A birth date stands for its year: the year is what is generalised.
                nv = match qcols.get(q) {
                    Some(c) if c.year => generalise_value(&year_of_cell(&nv), lvl),
                    _ => generalise_value(&nv, lvl),
                };
                generalised = true;
            }
        }
        // A whole date the shift wrote: the leak check may count a hit on it as a coincidence
        // (see `leak::Findings`).
        let shifted = match p.cols.get(i) {
            Some(Col::Date { .. }) => shifts,
            Some(Col::Rule(Method::DateShift { .. })) => true,
            _ => false,
        };
        if shifted && !generalised && !nv.is_empty() && nv != v {
            run.shifted.wrote(&nv);
        }
        if nv != v {
            let name = p.headers.get(i).map(String::as_str).unwrap_or_default();
            run.changes.add(name, col_name(&p.cols, i));
        }
        out.push(nv);
    }
    for (i, c) in p.cols.iter().enumerate() {
        if c.removed() {
            if let Some(v) = rec.get(i) {
                cell(run, p, i, v, None);
            }
            let name = p.headers.get(i).map(String::as_str).unwrap_or_default();
            run.changes.add(name, "redact");
        }
    }
    if has_text {
        run.override_known = None;
    }
}

fn col_name(cols: &[Col], i: usize) -> &'static str {
    match cols.get(i) {
        Some(Col::Rule(m)) => m.name(),
        Some(Col::Drop(_) | Col::Place) => "redact",
        Some(Col::Key { .. }) => "surrogate",
        Some(Col::Zip) => "zip3",
        Some(Col::City) => "redact",
        Some(Col::Date { .. }) => "date",
        Some(Col::Keep) | None => "keep",
    }
}

/// Quasi-identifier concepts: a profile's name in one of these groups finds a column under any
/// name of its group (case-insensitively, with `_concept_id` and `_source_value` forms, as in
/// OMOP), plain names first. The first group is the age, the second the birth year: a table
/// with one and not the other stands for both (an age in years and a birth year say the same
/// to the year), unless the profile names both.
const QI_GROUPS: &[&[&str]] = &[
    &["age", "age_years"],
    &["birth_year", "year_of_birth", "birthdate", "birth_date"],
    &["sex", "gender", "administrative_sex", "sex_at_birth"],
    &["zip", "zip3", "zipcode", "postal_code", "zip_code"],
    &["race"],
    &["ethnicity"],
];

/// The index of the age group in [`QI_GROUPS`].
const AGE: usize = 0;
/// The index of the birth-year group in [`QI_GROUPS`].
const BIRTH_YEAR: usize = 1;

/// The names of a group, in order of preference.
fn group_names(g: &[&str]) -> impl Iterator<Item = String> {
    let plain = g.iter().map(|n| (*n).to_owned());
    let concept = g.iter().map(|n| format!("{n}_concept_id"));
    let source = g.iter().map(|n| format!("{n}_source_value"));
    plain.chain(concept).chain(source)
}

/// The group a (normalised) name belongs to.
fn group_of(n: &str) -> Option<usize> {
    QI_GROUPS
        .iter()
        .position(|g| group_names(g).any(|x| x == n))
}

/// A quasi-identifier (or the sensitive attribute) resolved to a column of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QiCol {
    /// The column, by its index in the input header.
    pub idx: usize,
    /// A birth date standing for a birth year: its values are cut to the year.
    pub year: bool,
}

/// Resolves a profile's quasi-identifier names against a header: an exact name first
/// (case-insensitive), then the name's group (see [`QI_GROUPS`]).
fn resolve_qis(headers: &[String], qis: &[String]) -> Vec<Option<QiCol>> {
    let names: Vec<String> = headers.iter().map(|h| norm(h)).collect();
    let groups: Vec<Option<usize>> = qis.iter().map(|q| group_of(&norm(q))).collect();
    let col = |i: usize| QiCol {
        idx: i,
        year: names
            .get(i)
            .is_some_and(|n| group_of(n) == Some(BIRTH_YEAR)),
    };
    let in_group = |g: usize| -> Option<QiCol> {
        let group = QI_GROUPS.get(g)?;
        group_names(group).find_map(|n| names.iter().position(|h| *h == n).map(col))
    };
    qis.iter()
        .zip(&groups)
        .map(|(q, g)| {
            let q = norm(q);
            if let Some(i) = names.iter().position(|h| *h == q) {
                return Some(col(i));
            }
            let g = (*g)?;
            in_group(g).or_else(|| {
                let other = match g {
                    AGE => BIRTH_YEAR,
                    BIRTH_YEAR => AGE,
                    _ => return None,
                };
                if groups.contains(&Some(other)) {
                    return None;
                }
                in_group(other)
            })
        })
        .collect()
}

/// The year of a (transformed) birth-date cell; the cell as it is when it holds no date (a
/// generalised `*`).
pub(crate) fn year_of_cell(v: &str) -> String {
    let t = v.trim();
    let year = match crate::values::csv_date(t) {
        Some(iso) => crate::values::parse_date(&iso).map(|d| d.year),
        None => crate::values::parse_date(t).map(|d| d.year),
    };
    year.map_or_else(|| t.to_owned(), |y| format!("{y:04}"))
}

/// What a table is to the profile's `[k_anonymity]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QiFit {
    /// Not a table of people: another table of a known export, or an unknown table with none
    /// of the quasi-identifiers. Neither enforced nor measured.
    Skip,
    /// A table of people with every quasi-identifier and the sensitive attribute.
    Apply {
        qis: Vec<QiCol>,
        sensitive: Option<QiCol>,
    },
    /// A table of people (a known export's, or one with some of the quasi-identifiers)
    /// without these (the profile's names).
    Missing(Vec<String>),
}

/// Whether and how the profile's `[k_anonymity]` applies to a planned table (see [`QiFit`]).
pub(crate) fn qi_fit(plan: &Plan, k: &crate::profile::KAnonymity) -> QiFit {
    let resolved = resolve_qis(&plan.headers, &k.quasi_identifiers);
    let found = resolved.iter().filter(|r| r.is_some()).count();
    let person = match plan.person {
        Some(p) => p,
        None => found > 0,
    };
    if !person {
        return QiFit::Skip;
    }
    let sensitive = k
        .sensitive
        .as_ref()
        .map(|s| resolve_qis(&plan.headers, std::slice::from_ref(s)));
    let mut missing: Vec<String> = k
        .quasi_identifiers
        .iter()
        .zip(&resolved)
        .filter(|(_, r)| r.is_none())
        .map(|(q, _)| q.clone())
        .collect();
    if let (Some(s), Some(r)) = (&k.sensitive, &sensitive)
        && r.first().copied().flatten().is_none()
    {
        missing.push(s.clone());
    }
    if !missing.is_empty() {
        return QiFit::Missing(missing);
    }
    QiFit::Apply {
        qis: resolved.into_iter().flatten().collect(),
        sensitive: sensitive.and_then(|r| r.first().copied().flatten()),
    }
}

/// What pass 1 of k-anonymity found in a table.
pub(crate) enum QiRows {
    /// Not a table of people (or its header does not read: the transform reports that).
    Skip,
    /// A table of people: its columns and the transformed values of every row.
    Apply {
        qis: Vec<QiCol>,
        sensitive: Option<QiCol>,
        rows: Vec<Vec<String>>,
    },
    /// A table of people missing these quasi-identifiers.
    Missing(Vec<String>),
}

/// Pass 1 for k-anonymity: the transformed quasi-identifier values of every row (a birth date
/// cut to its year).
pub(crate) fn qi_rows<R: Read>(
    run: &mut Run<'_>,
    file: &str,
    input: R,
    k: &crate::profile::KAnonymity,
) -> QiRows {
    let mut rdr = airlock_formats::tabular::reader(input);
    let saved_warnings = std::mem::take(&mut run.warnings);
    let planned = sample_and_plan(run, file, &mut rdr);
    run.warnings = saved_warnings;
    let Ok((headers, pl, read)) = planned else {
        return QiRows::Skip;
    };
    let (qis, sensitive) = match qi_fit(&pl, k) {
        QiFit::Skip => return QiRows::Skip,
        QiFit::Missing(m) => return QiRows::Missing(m),
        QiFit::Apply { qis, sensitive } => (qis, sensitive),
    };
    let mut rows = Vec::new();
    let mut rest = csv::StringRecord::new();
    let mut buffered = read.into_iter();
    loop {
        let rec = match buffered.next() {
            Some(Read1::Row(rec)) => rec,
            Some(Read1::Bad(..)) => {
                // Row numbers must match the transform's, which counts this row.
                rows.push(Vec::new());
                continue;
            }
            None => match rdr.read_record(&mut rest) {
                Ok(false) => break,
                Ok(true) => std::mem::take(&mut rest),
                Err(_) => {
                    rows.push(Vec::new());
                    continue;
                }
            },
        };
        if rec.len() != headers.len() {
            rows.push(Vec::new());
            continue;
        }
        let mrn = pl.patient.and_then(|i| rec.get(i)).map(str::to_owned);
        let r: Vec<String> = qis
            .iter()
            .map(|c| {
                let v = cell(
                    run,
                    &pl,
                    c.idx,
                    rec.get(c.idx).unwrap_or_default(),
                    mrn.as_deref(),
                )
                .unwrap_or_default();
                if c.year { year_of_cell(&v) } else { v }
            })
            .collect();
        rows.push(r);
    }
    QiRows::Apply {
        qis,
        sensitive,
        rows,
    }
}

/// Risk on the output rows of a table for the given quasi-identifiers (matched by name or
/// through their group, see [`QI_GROUPS`]).
pub fn risk_from_csv<R: Read>(
    input: R,
    quasi_identifiers: &[String],
    sensitive: Option<&str>,
    sampling_fraction: f64,
) -> Result<crate::risk::RiskReport, airlock_formats::FormatError> {
    let mut rdr = airlock_formats::tabular::reader(input);
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| airlock_formats::tabular::csv_error(&e))?
        .iter()
        .map(str::to_owned)
        .collect();
    let qis = resolve_qis(&headers, quasi_identifiers)
        .into_iter()
        .map(|c| {
            c.map(Some).ok_or(airlock_formats::FormatError::Csv {
                line: 1,
                reason: "quasi-identifier column not in header",
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let sens = match sensitive {
        Some(s) => Some(
            resolve_qis(&headers, &[s.to_owned()])
                .first()
                .copied()
                .flatten()
                .ok_or(airlock_formats::FormatError::Csv {
                    line: 1,
                    reason: "sensitive column not in header",
                })?
                .idx,
        ),
        None => None,
    };
    let mut r = risk_of_rows(
        &mut rdr,
        &qis,
        sens,
        quasi_identifiers,
        sensitive,
        sampling_fraction,
    )?;
    r.sources = qis
        .iter()
        .flatten()
        .map(|c| source_name(&headers, *c))
        .collect();
    Ok(r)
}

/// Where a quasi-identifier was read, for the report: the column, and `year` for a birth
/// date cut to its year.
fn source_name(headers: &[String], c: QiCol) -> String {
    let name = headers.get(c.idx).map_or("", |h| h.trim());
    if c.year {
        format!("{name}, year")
    } else {
        name.to_owned()
    }
}

/// Risk on an output table written by the transform, for the columns k-anonymity resolved in
/// its input (`input_headers`): a quasi-identifier the output no longer has (a removed column)
/// is one value for every row.
pub(crate) fn risk_of_output<R: Read>(
    input: R,
    input_headers: &[String],
    qis: &[QiCol],
    sensitive: Option<QiCol>,
    k: &crate::profile::KAnonymity,
) -> Result<crate::risk::RiskReport, airlock_formats::FormatError> {
    let mut rdr = airlock_formats::tabular::reader(input);
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| airlock_formats::tabular::csv_error(&e))?
        .iter()
        .map(str::to_owned)
        .collect();
    let out_col = |c: &QiCol| {
        let name = input_headers.get(c.idx)?;
        headers
            .iter()
            .position(|h| h == name)
            .map(|idx| QiCol { idx, year: c.year })
    };
    let sources = qis.iter().map(|c| source_name(input_headers, *c)).collect();
    let qis: Vec<Option<QiCol>> = qis.iter().map(out_col).collect();
    let sens = sensitive.as_ref().and_then(out_col).map(|c| c.idx);
    let mut r = risk_of_rows(
        &mut rdr,
        &qis,
        sens,
        &k.quasi_identifiers,
        k.sensitive.as_deref(),
        k.sampling_fraction,
    )?;
    r.sources = sources;
    Ok(r)
}

/// The risk figures of the rows left in `rdr`.
fn risk_of_rows<R: Read>(
    rdr: &mut csv::Reader<R>,
    qis: &[Option<QiCol>],
    sensitive_idx: Option<usize>,
    names: &[String],
    sensitive: Option<&str>,
    sampling_fraction: f64,
) -> Result<crate::risk::RiskReport, airlock_formats::FormatError> {
    use std::borrow::Cow;
    let mut acc = RiskAccumulator::new(qis.len());
    let mut rec = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(airlock_formats::tabular::csv_error(&e)),
        }
        let mut vals: Vec<Cow<'_, str>> = Vec::with_capacity(qis.len());
        for c in qis {
            let v = c
                .and_then(|c| rec.get(c.idx).map(|b| (b, c.year)))
                .and_then(|(b, year)| std::str::from_utf8(b).ok().map(|s| (s, year)));
            vals.push(match v {
                Some((s, true)) => Cow::Owned(year_of_cell(s)),
                Some((s, false)) => Cow::Borrowed(s),
                None => Cow::Borrowed(""),
            });
        }
        let s = sensitive_idx
            .and_then(|i| rec.get(i))
            .and_then(|b| std::str::from_utf8(b).ok());
        acc.add(&vals, s);
    }
    Ok(acc.finish(names, sensitive, sampling_fraction))
}

/// Leak-check scan of an output CSV.
///
/// A cell that is a plain number (`98053`, `98053.24`) can hold an identifying number (a zip, a
/// FIPS code, a phone's digits) by coincidence: an income of 98053 next to someone's zip 98053,
/// a cost whose whole part is one. Such hits are judged by column: a kept column that really
/// holds identifiers hits on most of its numbers, so a column's number hits count as leaks when
/// they are at least half of its numeric cells, and as `coincidences` otherwise. Any other hit
/// (a name, an id, a date, a number inside text) counts at once.
pub(crate) fn scan_csv<R: Read>(
    scanner: &crate::leak::Scanner,
    input: R,
    file: &str,
    findings: &mut crate::leak::Findings<'_>,
) {
    /// Per column: numeric cells, and the hits among them (the first rows kept for the report).
    #[derive(Default)]
    struct Numbers {
        cells: u64,
        hits: u64,
        first: Vec<(u64, LeakKind)>,
    }
    const PER_COLUMN: u64 = 20;
    let mut rdr = airlock_formats::tabular::reader(input);
    let headers: Vec<String> = match rdr.headers() {
        Ok(h) => h.iter().map(str::to_owned).collect(),
        Err(_) => return,
    };
    let mut rec = csv::StringRecord::new();
    let mut row = 0u64;
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut numbers: Vec<Numbers> = headers.iter().map(|_| Numbers::default()).collect();
    let hit = |record: u64, col: &str, k: LeakKind| crate::report::LeakHit {
        file: file.to_owned(),
        record,
        path: col.to_owned(),
        kind: k.name().to_owned(),
    };
    let push = |findings: &mut crate::leak::Findings<'_>,
                seen: &mut HashMap<String, u64>,
                col: &str,
                record: u64,
                k: LeakKind| {
        let n = seen.entry(col.to_owned()).or_insert(0);
        *n += 1;
        if *n <= PER_COLUMN {
            findings.hits.push(hit(record, col, k));
        }
    };
    while let Ok(true) = rdr.read_record(&mut rec) {
        for (i, v) in rec.iter().enumerate() {
            if v.is_empty() {
                continue;
            }
            findings.scanned += 1;
            let numeric = is_plain_number(v);
            if let Some(t) = numbers.get_mut(i).filter(|_| numeric) {
                t.cells += 1;
            }
            if let Some(k) = scanner.find(v) {
                let col = headers.get(i).map(String::as_str).unwrap_or_default();
                // A date the shift wrote in this cell: held until every output is scanned.
                if let Some(key) = findings.shift_candidate(scanner, v, k) {
                    findings.hold(key, hit(row, col, k));
                    continue;
                }
                match numbers.get_mut(i).filter(|_| numeric) {
                    Some(t) => {
                        t.hits += 1;
                        if t.first.len() < PER_COLUMN as usize {
                            t.first.push((row, k));
                        }
                    }
                    None => push(findings, &mut seen, col, row, k),
                }
            }
        }
        row += 1;
    }
    for (i, t) in numbers.iter().enumerate() {
        if t.hits == 0 {
            continue;
        }
        if t.hits * 2 >= t.cells {
            let col = headers.get(i).map(String::as_str).unwrap_or_default();
            for (record, k) in &t.first {
                push(findings, &mut seen, col, *record, *k);
            }
        } else {
            findings.numeric_coincidences += t.hits;
        }
    }
}

/// Whether a cell is a plain decimal number: an optional sign, digits, an optional fraction.
fn is_plain_number(v: &str) -> bool {
    let b = v.strip_prefix('-').unwrap_or(v).as_bytes();
    let int = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if int == 0 {
        return false;
    }
    match b.get(int..) {
        Some([]) => true,
        Some([b'.', frac @ ..]) => !frac.is_empty() && frac.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leak::LeakSet;

    fn scan(leaks: &LeakSet, csv: &str) -> (Vec<crate::report::LeakHit>, u64) {
        let shifted = crate::leak::ShiftedDates::default();
        let mut findings = crate::leak::Findings::new(&shifted);
        scan_csv(&leaks.scanner(), csv.as_bytes(), "t", &mut findings);
        let coincidences = findings.numeric_coincidences;
        (findings.settle().0, coincidences)
    }

    #[test]
    fn a_number_equal_to_a_zip_by_coincidence_is_not_a_leak_but_a_zip_column_is() {
        let mut leaks = LeakSet::default();
        for z in ["98053", "98008", "02138"] {
            leaks.add(LeakKind::Zip, z);
        }
        leaks.add(LeakKind::Name, "Ruelas156");
        // One income in four equals a zip; the cost's whole part is one.
        let (hits, c) = scan(
            &leaks,
            "income,cost,note\n98053,12.50,x\n41000,98008.24,y\n52000,7.00,z\n61000,8.00,w\n",
        );
        assert!(hits.is_empty(), "{hits:?}");
        assert_eq!(c, 2);
        // A column of zips left in is one.
        let (hits, _) = scan(&leaks, "postcode_x\n98053\n98008\n02138\n11111\n");
        assert_eq!(hits.len(), 3);
        assert!(
            hits.iter()
                .all(|h| h.path == "postcode_x" && h.kind == "zip")
        );
        // A name, or a number inside text, counts at once.
        let (hits, _) = scan(&leaks, "a,b\nRuelas156,ok\nzip 98053,ok\n1,2\n3,4\n");
        assert_eq!(hits.len(), 2);
    }

    fn headers(s: &str) -> Vec<String> {
        s.split(',').map(str::to_owned).collect()
    }

    fn qis(s: &[&str]) -> Vec<String> {
        s.iter().map(|q| (*q).to_owned()).collect()
    }

    #[test]
    fn quasi_identifiers_resolve_by_name_then_by_alias() {
        let col = |idx, year| Some(QiCol { idx, year });
        // Synthea's patients: case-insensitive, and a birth date standing for the age.
        let h = headers("Id,BIRTHDATE,RACE,ETHNICITY,GENDER,ZIP");
        assert_eq!(
            resolve_qis(&h, &qis(&["race", "gender", "age", "zip", "Ethnicity"])),
            [
                col(2, false),
                col(4, false),
                col(1, true),
                col(5, false),
                col(3, false)
            ]
        );
        // Unless the profile names the birth year as well: then `age` needs an age.
        assert_eq!(
            resolve_qis(&h, &qis(&["age", "birth_year"])),
            [None, col(1, true)]
        );
        // OMOP's person: concept ids, and a year of birth.
        let h = headers(
            "person_id,gender_concept_id,year_of_birth,race_concept_id,race_source_value,ethnicity_concept_id",
        );
        assert_eq!(
            resolve_qis(&h, &qis(&["sex", "birth_year", "race", "ethnicity"])),
            [col(1, false), col(2, true), col(3, false), col(5, false)]
        );
        // Plain names win over concept ids; an exact name wins over an alias.
        let h = headers("gender_concept_id,Sex,gender");
        assert_eq!(
            resolve_qis(&h, &qis(&["sex", "gender"])),
            [col(1, false), col(2, false)]
        );
        // An age, and the birth year found through it; a name no group knows, exactly only.
        let h = headers("Age Years,administrative_sex,Postal Code,payer");
        assert_eq!(
            resolve_qis(
                &h,
                &qis(&["birth_year", "gender", "zip3", "payer", "payer_code"])
            ),
            [
                col(0, false),
                col(1, false),
                col(2, false),
                col(3, false),
                None
            ]
        );
        assert_eq!(year_of_cell("1965-03-04"), "1965");
        assert_eq!(year_of_cell("3/4/1965 10:00"), "1965");
        assert_eq!(year_of_cell("19650304"), "1965");
        assert_eq!(year_of_cell("*"), "*");
    }

    #[test]
    fn plain_numbers() {
        for n in ["0", "98053", "-12.5", "98053.24"] {
            assert!(is_plain_number(n), "{n}");
        }
        for n in ["", "-", "1.", ".5", "1e5", "12-34", "98053 ", "1.2.3"] {
            assert!(!is_plain_number(n), "{n}");
        }
    }
}
