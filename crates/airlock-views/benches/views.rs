#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark binary: a broken setup stops it at once, and it prints its results"
)]
//! Throughput of a patient demographics view over NDJSON, next to a plain `serde_json` parse of
//! the same bytes measured in the same run.
//!
//! Input: 10,000 synthetic Patients (names, gender, birth date, address, MRN and SSN
//! identifiers, telecom, a race extension; about 1.1 KB each), generated here. Three passes take
//! turns in each round:
//! * `parse`: `serde_json::from_str::<Value>` on each line (the baseline);
//! * `view`: `read_resources` + `run_each` on the same text (parse, flatten, hand rows to a sink);
//! * `flatten`: `View::rows` on resources parsed beforehand (the view's own cost).
//!
//! The ratio is `parse time / view time` within each round (the target: above 0.5,
//! i.e. parsing and flattening cost less than parsing twice); each figure is the median of the
//! rounds, since this shared machine's speed drifts.
//!
//! Run: `cargo bench -p airlock-views --bench views` (`AIRLOCK_BENCH_ROUNDS=N`, default 7;
//! `AIRLOCK_BENCH_ONCE=1` for one pass of each, e.g. under callgrind).

use std::hint::black_box;
use std::time::{Duration, Instant};

use airlock_views::{View, ViewError, read_resources, run_each};
use serde_json::{Value, json};

const PATIENTS: usize = 10_000;

/// A small deterministic generator (no `rand` needed for test data).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn patients_ndjson() -> String {
    let family = [
        "Smith", "Johnson", "Garcia", "Nguyen", "Okafor", "Schmidt", "Rossi", "Kowalski",
    ];
    let given = [
        "Ann", "Bo", "Carlos", "Dana", "Eve", "Farid", "Grace", "Hiro", "Ines", "Jon",
    ];
    let cities = [
        "Boston",
        "Springfield",
        "Worcester",
        "Lowell",
        "Cambridge",
        "Quincy",
    ];
    let mut rng = Lcg(42);
    let mut out = String::new();
    for i in 0..PATIENTS {
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            rng.next(),
            i,
            rng.next() % 4096,
            rng.next() % 4096,
            rng.next()
        );
        let mut p = json!({
            "resourceType": "Patient",
            "id": id,
            "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
            "extension": [{
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
                "extension": [
                    {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3", "display": "White"}},
                    {"url": "text", "valueString": "White"}
                ]
            }],
            "identifier": [
                {"system": "https://github.com/synthetichealth/synthea", "value": id},
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR", "display": "Medical Record Number"}]},
                 "system": "http://hospital.smarthealthit.org", "value": format!("MRN{:07}", i)},
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS", "display": "Social Security Number"}]},
                 "system": "http://hl7.org/fhir/sid/us-ssn", "value": format!("999-{:02}-{:04}", rng.next() % 100, rng.next() % 10_000)}
            ],
            "name": [{"use": "official", "family": rng.pick(&family), "given": [rng.pick(&given), rng.pick(&given)], "prefix": ["Mx."]}],
            "telecom": [{"system": "phone", "value": format!("555-{:03}-{:04}", rng.next() % 1000, rng.next() % 10_000), "use": "home"}],
            "gender": if rng.next().is_multiple_of(2) { "female" } else { "male" },
            "birthDate": format!("{}-{:02}-{:02}", 1930 + rng.next() % 90, 1 + rng.next() % 12, 1 + rng.next() % 28),
            "address": [{
                "line": [format!("{} Main St", rng.next() % 1000)],
                "city": rng.pick(&cities), "state": "MA", "postalCode": format!("0{:04}", rng.next() % 10_000), "country": "US"
            }],
            "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}], "text": "M"},
            "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US"}]}}]
        });
        if i.is_multiple_of(10) {
            p["deceasedDateTime"] = json!("2020-01-01T00:00:00Z");
        }
        out.push_str(&serde_json::to_string(&p).unwrap());
        out.push('\n');
    }
    out
}

fn demographics() -> View {
    View::from_json(&json!({
        "resourceType": "ViewDefinition",
        "name": "patient_demographics",
        "resource": "Patient",
        "status": "active",
        "select": [{
            "column": [
                {"name": "id", "path": "getResourceKey()", "type": "id"},
                {"name": "mrn", "path": "identifier.where(type.coding.exists(code = 'MR')).value.first()", "type": "string"},
                {"name": "gender", "path": "gender", "type": "code"},
                {"name": "birth_date", "path": "birthDate", "type": "date"},
                {"name": "deceased", "path": "deceased.exists()", "type": "boolean"},
                {"name": "family", "path": "name.where(use = 'official').family.first()", "type": "string"},
                {"name": "given", "path": "name.where(use = 'official').given.join(' ')", "type": "string"},
                {"name": "race", "path": "extension('http://hl7.org/fhir/us/core/StructureDefinition/us-core-race').extension('ombCategory').value.ofType(Coding).code.first()", "type": "code"},
                {"name": "marital_status", "path": "maritalStatus.coding.code.first()", "type": "code"}
            ]
        }, {
            "forEachOrNull": "address",
            "column": [
                {"name": "city", "path": "city", "type": "string"},
                {"name": "state", "path": "state", "type": "string"},
                {"name": "postal_code", "path": "postalCode", "type": "string"}
            ]
        }]
    }))
    .unwrap()
}

fn time<F: FnMut()>(min: Duration, mut f: F) -> Duration {
    let start = Instant::now();
    let mut n = 0u32;
    while n == 0 || start.elapsed() < min {
        f();
        n += 1;
    }
    start.elapsed() / n
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let once = std::env::var_os("AIRLOCK_BENCH_ONCE").is_some();
    let rounds: usize = std::env::var("AIRLOCK_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if once { 1 } else { 7 });
    let pass = if once {
        Duration::ZERO
    } else {
        Duration::from_millis(400)
    };

    let text = patients_ndjson();
    let view = demographics();
    let parsed: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rows_per_pass = parsed
        .iter()
        .map(|r| view.rows(r, 0).unwrap().len())
        .sum::<usize>();
    let mb = text.len() as f64 / 1e6;
    println!(
        "input: {PATIENTS} Patients as NDJSON, {mb:.1} MB ({} bytes each); view `patient_demographics`: {} columns, {rows_per_pass} rows",
        text.len() / PATIENTS,
        view.columns().len(),
    );

    let (mut parse_s, mut view_s, mut flat_s, mut read_s, mut ratios) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let parse = time(pass, || {
            for line in text.lines() {
                black_box(serde_json::from_str::<Value>(line).unwrap());
            }
        });
        let full = time(pass, || {
            let mut rows = 0usize;
            let summary = run_each(&view, read_resources(&text), |row| {
                rows += row.values().len();
                black_box(row);
                Ok::<(), ViewError>(())
            })
            .unwrap();
            assert_eq!(summary.rows, rows_per_pass);
        });
        let read = time(pass, || {
            for r in read_resources(&text) {
                black_box(r.unwrap());
            }
        });
        let flatten = time(pass, || {
            for (i, r) in parsed.iter().enumerate() {
                black_box(view.rows(r, i).unwrap());
            }
        });
        ratios.push(parse.as_secs_f64() / full.as_secs_f64());
        parse_s.push(parse.as_secs_f64());
        view_s.push(full.as_secs_f64());
        flat_s.push(flatten.as_secs_f64());
        read_s.push(read.as_secs_f64());
    }
    let (parse, full, flat, read) = (
        median(parse_s),
        median(view_s),
        median(flat_s),
        median(read_s),
    );
    let rows = rows_per_pass as f64;
    println!(
        "{:<34} {:>10} {:>14} {:>10}",
        "pass (median of rounds)", "ms/pass", "rows/s", "MB/s"
    );
    println!(
        "{:<34} {:>10.1} {:>14} {:>10.0}",
        "parse (serde_json::from_str)",
        parse * 1e3,
        "-",
        mb / parse
    );
    println!(
        "{:<34} {:>10.1} {:>14} {:>10.0}",
        "read only (read_resources)",
        read * 1e3,
        "-",
        mb / read
    );
    println!(
        "{:<34} {:>10.1} {:>14.0} {:>10.0}",
        "view (read_resources + run_each)",
        full * 1e3,
        rows / full,
        mb / full
    );
    println!(
        "{:<34} {:>10.1} {:>14.0} {:>10}",
        "flatten only (View::rows)",
        flat * 1e3,
        rows / flat,
        "-"
    );
    println!(
        "ratio parse/view: {:.2} (median of {rounds} rounds; above 0.5 means parse + flatten costs less than two parses)",
        median(ratios)
    );
}
