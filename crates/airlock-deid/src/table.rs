//! CSV de-identification, streaming row by row (memory flat with input size).
//!
//! Columns are handled by the profile's `[[csv]]` rules (names matched case-insensitively).
//! A column without a rule is classified by its name: direct identifiers (SSN, phone, fax,
//! email, names, street address, MRN, account, licence, plate, VIN, device/serial, URL, IP)
//! are **removed with a warning**; zip/postal columns get the zip policy, city/county columns
//! are removed unless the profile keeps cities, birth-date columns the date policy (with the
//! birth-year cap); other columns are kept, except that a column whose first value looks like
//! a date gets the date policy. The patient key (MRN) is the first present column whose rule
//! says `patient_key = true`: it gets the `mrn` pseudonym (the same as in FHIR and HL7) and
//! its date offset applies to the row's dates.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::OnceLock;

use regex::Regex;

use crate::engine::{DateMethod, Run, ScalarCtx};
use crate::leak::LeakKind;
use crate::profile::{Method, ZipPolicy};
use crate::risk::{KPlan, RiskAccumulator, generalise_value};

/// The plan for one column.
#[derive(Debug, Clone)]
pub(crate) enum Col {
    Rule(Method),
    Drop(LeakKind),
    Zip,
    City,
    Date { birth: bool },
    Keep,
}

/// The plan for a table.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub headers: Vec<String>,
    pub cols: Vec<Col>,
    pub out_idx: Vec<usize>,
    pub patient: Option<usize>,
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
                license|licence|license_number|driver_?license|plate|license_plate|vin|
                device_id|serial|serial_number|
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

fn norm(h: &str) -> String {
    h.trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Builds the plan from the header and the first data row.
pub(crate) fn plan(
    run: &mut Run<'_>,
    file: &str,
    headers: &[String],
    first: Option<&csv::StringRecord>,
) -> Plan {
    let rules = run.profile.csv_rules().to_vec();
    let mut cols = Vec::with_capacity(headers.len());
    let mut patient = None;
    for (i, h) in headers.iter().enumerate() {
        let n = norm(h);
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
        } else if is_free_text(&n, first.and_then(|r| r.get(i))) {
            run.warn(format!(
                "{file}: column `{h}` has no rule and holds free text: de-identified by the text engine"
            ));
            Col::Rule(Method::Text)
        } else if n.contains("birth") || n == "dob" {
            Col::Date { birth: true }
        } else if first
            .and_then(|r| r.get(i))
            .is_some_and(|v| crate::values::is_date(v.trim(), false) && v.trim().len() >= 7)
        {
            Col::Date { birth: false }
        } else {
            Col::Keep
        };
        cols.push(col);
    }
    let out_idx = cols
        .iter()
        .enumerate()
        .filter(|(_, c)| !matches!(c, Col::Drop(_) | Col::Rule(Method::Redact)))
        .map(|(i, _)| i)
        .collect();
    for r in &rules {
        if !headers
            .iter()
            .any(|h| h.trim().eq_ignore_ascii_case(&r.column))
        {
            // Rules are generic across files; a missing column is worth knowing, not an error.
            let _ = r;
        }
    }
    Plan {
        headers: headers.to_vec(),
        cols,
        out_idx,
        patient,
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
            Col::Drop(_) => k.ids.push(v.to_owned()),
            Col::City => k.cities.push(v.to_owned()),
            Col::Date { birth: true } => k.dates.push(v.to_owned()),
            Col::Rule(_) if p.patient == Some(i) => k.ids.push(v.to_owned()),
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
        Col::Zip => {
            run.leak(LeakKind::Zip, v);
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
            if m != DateMethod::Keep {
                run.leak(LeakKind::Date, v);
            }
            run.date(v, m, mrn, *birth, "")
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
            let birth = norm(h).contains("birth") || norm(h) == "dob";
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
    pub kplan: Option<(&'p [usize], &'p KPlan)>,
}

/// Streams a CSV from `input` to `output`. Ragged rows are quarantined (reported, not written).
/// Returns the plan and the number of rows read.
pub(crate) fn deid_csv<R: Read, W: Write>(
    run: &mut Run<'_>,
    file: &str,
    input: R,
    output: W,
    opts: &TableOpts<'_>,
) -> Result<u64, airlock_formats::FormatError> {
    let mut rdr = airlock_formats::tabular::reader(input);
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| airlock_formats::tabular::csv_error(&e))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut wtr = airlock_formats::tabular::writer(output);
    let mut rec = csv::StringRecord::new();
    let mut first = true;
    let mut plan_opt: Option<Plan> = None;
    let mut row = 0u64;
    let mut out = Vec::with_capacity(headers.len());
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let fe = airlock_formats::tabular::csv_error(&e);
                quarantine_row(run, file, row, e.position(), fe.to_string());
                row += 1;
                run.records_in += 1;
                continue;
            }
        }
        if first {
            let p = plan(run, file, &headers, Some(&rec));
            let hdr: Vec<&str> = p
                .out_idx
                .iter()
                .filter_map(|&i| headers.get(i).map(String::as_str))
                .collect();
            wtr.write_record(&hdr)
                .map_err(|e| airlock_formats::tabular::csv_error(&e))?;
            plan_opt = Some(p);
            first = false;
        }
        let Some(p) = plan_opt.as_ref() else { break };
        run.records_in += 1;
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
        let mrn = p.patient.and_then(|i| rec.get(i)).map(str::to_owned);
        out.clear();
        let p = p.clone();
        // The row's own identifiers are the known identifiers of its free text.
        let has_text = p.cols.iter().any(|c| matches!(c, Col::Rule(Method::Text)));
        if has_text {
            run.override_known = Some(row_known(&p, &rec));
        }
        for &i in &p.out_idx {
            let v = rec.get(i).unwrap_or_default();
            let mut nv = cell(run, &p, i, v, mrn.as_deref()).unwrap_or_default();
            if let Some((qidx, kp)) = opts.kplan
                && let Some(q) = qidx.iter().position(|&c| c == i)
            {
                let lvl = kp.levels.get(q).copied().unwrap_or(0);
                if lvl > 0 {
                    nv = generalise_value(&nv, lvl);
                }
            }
            if nv != v {
                let name = p.headers.get(i).map(String::as_str).unwrap_or_default();
                run.changes.add(name, col_name(&p.cols, i));
            }
            out.push(nv);
        }
        for (i, c) in p.cols.iter().enumerate() {
            if matches!(c, Col::Drop(_) | Col::Rule(Method::Redact)) {
                if let Some(v) = rec.get(i) {
                    cell(run, &p, i, v, None);
                }
                let name = p.headers.get(i).map(String::as_str).unwrap_or_default();
                run.changes.add(name, "redact");
            }
        }
        if has_text {
            run.override_known = None;
        }
        wtr.write_record(&out)
            .map_err(|e| airlock_formats::tabular::csv_error(&e))?;
        run.records_out += 1;
        row += 1;
    }
    if first {
        // Header only.
        let p = plan(run, file, &headers, None);
        let hdr: Vec<&str> = p
            .out_idx
            .iter()
            .filter_map(|&i| headers.get(i).map(String::as_str))
            .collect();
        wtr.write_record(&hdr)
            .map_err(|e| airlock_formats::tabular::csv_error(&e))?;
    }
    wtr.flush().map_err(|_| airlock_formats::FormatError::Csv {
        line: 0,
        reason: "i/o error",
    })?;
    Ok(row)
}

fn col_name(cols: &[Col], i: usize) -> &'static str {
    match cols.get(i) {
        Some(Col::Rule(m)) => m.name(),
        Some(Col::Drop(_)) => "redact",
        Some(Col::Zip) => "zip3",
        Some(Col::City) => "redact",
        Some(Col::Date { .. }) => "date",
        Some(Col::Keep) | None => "keep",
    }
}

/// Pass 1 for k-anonymity: the transformed quasi-identifier values of every row.
pub(crate) fn qi_rows<R: Read>(
    run: &mut Run<'_>,
    file: &str,
    input: R,
    qis: &[String],
) -> Option<(Vec<usize>, Vec<Vec<String>>)> {
    let mut rdr = airlock_formats::tabular::reader(input);
    let headers: Vec<String> = rdr.headers().ok()?.iter().map(str::to_owned).collect();
    let idx: Vec<usize> = qis
        .iter()
        .map(|q| {
            headers
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(q))
        })
        .collect::<Option<Vec<_>>>()?;
    let mut rec = csv::StringRecord::new();
    let mut rows = Vec::new();
    let mut p: Option<Plan> = None;
    let mut saved_warnings = std::mem::take(&mut run.warnings);
    while let Ok(true) = rdr.read_record(&mut rec) {
        if p.is_none() {
            p = Some(plan(run, file, &headers, Some(&rec)));
        }
        let Some(pl) = p.as_ref() else { break };
        if rec.len() != headers.len() {
            rows.push(Vec::new());
            continue;
        }
        let pl = pl.clone();
        let mrn = pl.patient.and_then(|i| rec.get(i)).map(str::to_owned);
        let r: Vec<String> = idx
            .iter()
            .map(|&i| {
                cell(run, &pl, i, rec.get(i).unwrap_or_default(), mrn.as_deref())
                    .unwrap_or_default()
            })
            .collect();
        rows.push(r);
    }
    std::mem::swap(&mut run.warnings, &mut saved_warnings);
    Some((idx, rows))
}

/// Risk on the output rows of a table for the given quasi-identifiers.
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
    let find = |q: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(q))
    };
    let idx: Vec<usize> = quasi_identifiers
        .iter()
        .map(|q| {
            find(q).ok_or(airlock_formats::FormatError::Csv {
                line: 1,
                reason: "quasi-identifier column not in header",
            })
        })
        .collect::<Result<_, _>>()?;
    let sidx = match sensitive {
        Some(s) => Some(find(s).ok_or(airlock_formats::FormatError::Csv {
            line: 1,
            reason: "sensitive column not in header",
        })?),
        None => None,
    };
    let mut acc = RiskAccumulator::new(idx.len());
    let mut rec = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(airlock_formats::tabular::csv_error(&e)),
        }
        let mut vals: Vec<&str> = Vec::with_capacity(idx.len());
        for &i in &idx {
            vals.push(
                rec.get(i)
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .unwrap_or(""),
            );
        }
        let s = sidx
            .and_then(|i| rec.get(i))
            .and_then(|b| std::str::from_utf8(b).ok());
        acc.add(&vals, s);
    }
    Ok(acc.finish(quasi_identifiers, sensitive, sampling_fraction))
}

/// Leak-check scan of an output CSV.
pub(crate) fn scan_csv<R: Read>(
    scanner: &crate::leak::Scanner,
    input: R,
    file: &str,
    hits: &mut Vec<crate::report::LeakHit>,
    scanned: &mut u64,
) {
    let mut rdr = airlock_formats::tabular::reader(input);
    let headers: Vec<String> = match rdr.headers() {
        Ok(h) => h.iter().map(str::to_owned).collect(),
        Err(_) => return,
    };
    let mut rec = csv::StringRecord::new();
    let mut row = 0u64;
    let mut seen: HashMap<String, u64> = HashMap::new();
    while let Ok(true) = rdr.read_record(&mut rec) {
        for (i, v) in rec.iter().enumerate() {
            if v.is_empty() {
                continue;
            }
            *scanned += 1;
            if let Some(k) = scanner.find(v) {
                let col = headers.get(i).cloned().unwrap_or_default();
                let n = seen.entry(col.clone()).or_insert(0);
                *n += 1;
                if *n <= 20 {
                    hits.push(crate::report::LeakHit {
                        file: file.to_owned(),
                        record: row,
                        path: col,
                        kind: k.name().to_owned(),
                    });
                }
            }
        }
        row += 1;
    }
}
