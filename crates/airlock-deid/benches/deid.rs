#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark binary: a broken setup stops it at once, and it prints its results"
)]
//! Throughput of the de-identification engine, next to a baseline measured in the same run.
//!
//! 1. FHIR resources per second per core (one thread) under `safe-harbor` (and
//!    `expert-determination`, and `safe-harbor` without the free-text engine), against a plain
//!    `serde_json` parse + serialise of the same bytes, with the ratio, on three inputs:
//!    the shared Synthea bundles (about 3 KB per resource, with clinical notes; generated
//!    bundles when the shared data is absent), the same resources as NDJSON (the bulk-export
//!    form, streamed line by line), and bundles of small resources (a Patient and 500
//!    Observations, about 300 bytes each, generated here).
//! 2. The risk report on the 100k-row readmission table with 8 quasi-identifiers, against a plain
//!    CSV parse of the same bytes.
//!
//! This machine's speed drifts by a third or more over tens of seconds (a shared virtual
//! machine), so each figure is the median of seven rounds in which the baseline and every
//! profile take turns (about 0.6 s each), and the ratio is taken within each round.
//!
//! Run: `cargo bench -p airlock-deid --bench deid` (add `-- NAME` to time only the deid
//! profiles whose label contains NAME, e.g. `-- safe-harbor` or `-- =safe-harbor`, and skip the
//! risk report; set `AIRLOCK_BENCH_ONCE=1` for a single pass of each, to count instructions
//! under callgrind, and `AIRLOCK_BENCH_INPUT=N` to run only the Nth input).

use std::path::Path;
use std::time::{Duration, Instant};

use airlock_deid::{Crosswalk, DeidKeys, Format, Profile, deid_bytes, risk_report_csv};

fn data_dir() -> Option<std::path::PathBuf> {
    let p = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"));
    p.is_dir().then(|| p.to_path_buf())
}

fn generated_bundles() -> Vec<Vec<u8>> {
    (0..8)
        .map(|p| {
            let mut entries = vec![serde_json::json!({"fullUrl": format!("urn:uuid:p{p}"), "resource": {
                "resourceType": "Patient", "id": format!("p{p}"),
                "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": format!("MRN{p}")}],
                "name": [{"family": "Family", "given": ["Given"]}], "birthDate": "1970-01-01", "gender": "female",
                "address": [{"line": ["1 Main St"], "city": "Springfield", "state": "MA", "postalCode": "01101"}]}})];
            for i in 0..500 {
                entries.push(serde_json::json!({"fullUrl": format!("urn:uuid:o{p}-{i}"), "resource": {
                    "resourceType": "Observation", "id": format!("o{p}-{i}"), "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}], "text": "Heart rate"},
                    "subject": {"reference": format!("urn:uuid:p{p}")},
                    "effectiveDateTime": "2020-01-01T10:00:00Z", "valueQuantity": {"value": 70 + i % 20, "unit": "/min"}}}));
            }
            serde_json::to_vec(&serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})).unwrap()
        })
        .collect()
}

fn time<F: FnMut()>(min: Duration, mut f: F) -> (u32, Duration) {
    // `AIRLOCK_BENCH_ONCE=1`: one pass each (for `valgrind --tool=callgrind`).
    let min = if std::env::var_os("AIRLOCK_BENCH_ONCE").is_some() {
        Duration::ZERO
    } else {
        min
    };
    let start = Instant::now();
    let mut n = 0;
    while n == 0 || start.elapsed() < min {
        f();
        n += 1;
    }
    (n, start.elapsed())
}

/// How long each pass of a round runs.
const ROUND: Duration = Duration::from_millis(600);

/// Rounds per input (`AIRLOCK_BENCH_ROUNDS`, default 7).
fn rounds() -> usize {
    std::env::var("AIRLOCK_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7)
        .max(1)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// One input: its documents and their format.
struct Input {
    title: String,
    docs: Vec<Vec<u8>>,
    format: Format,
}

impl Input {
    fn resources(&self) -> usize {
        self.docs
            .iter()
            .map(|b| airlock_formats::validate(self.format, b).unwrap().records as usize)
            .sum()
    }

    fn mb(&self) -> f64 {
        self.docs.iter().map(Vec::len).sum::<usize>() as f64 / 1e6
    }

    /// A plain serde_json parse + serialise of every document (every line for NDJSON).
    fn baseline(&self) {
        for b in &self.docs {
            match self.format {
                Format::FhirNdjson => {
                    for line in b.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
                        std::hint::black_box(serde_json::to_vec(&v).unwrap());
                    }
                }
                _ => {
                    let v: serde_json::Value = serde_json::from_slice(b).unwrap();
                    std::hint::black_box(serde_json::to_vec(&v).unwrap());
                }
            }
        }
    }
}

/// The bundles' resources as NDJSON, one compact resource per line.
fn as_ndjson(bundles: &[Vec<u8>]) -> Vec<Vec<u8>> {
    bundles
        .iter()
        .map(|b| {
            let v: serde_json::Value = serde_json::from_slice(b).unwrap();
            let mut out = Vec::new();
            for e in v["entry"].as_array().into_iter().flatten() {
                if let Some(r) = e.get("resource") {
                    out.extend(serde_json::to_vec(r).unwrap());
                    out.push(b'\n');
                }
            }
            out
        })
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters the deid profiles.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let (bundles, source) = match data_dir() {
        Some(d) => {
            let mut v = Vec::new();
            let mut paths: Vec<_> = std::fs::read_dir(d.join("fhir/synthea"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            paths.sort();
            for p in paths {
                v.push(std::fs::read(p).unwrap());
            }
            (v, "shared Synthea bundles")
        }
        None => (
            generated_bundles(),
            "generated bundles (shared data absent)",
        ),
    };
    let ndjson = as_ndjson(&bundles);
    let inputs = [
        Input {
            title: format!("{source}, FHIR JSON"),
            docs: bundles,
            format: Format::FhirJson,
        },
        Input {
            title: format!("{source}, as NDJSON (one resource per line)"),
            docs: ndjson,
            format: Format::FhirNdjson,
        },
        Input {
            title: "small resources: bundles of a Patient and 500 Observations (generated)"
                .to_owned(),
            docs: generated_bundles(),
            format: Format::FhirJson,
        },
    ];

    let keys = DeidKeys::new(vec![7; 32]).unwrap();
    let no_text = Profile::from_toml(
        &include_str!("../profiles/safe-harbor.toml")
            .replace("free_text = \"tag\"", "free_text = \"redact\""),
    )
    .unwrap();
    let profiles = [
        ("safe-harbor", Profile::builtin("safe-harbor").unwrap()),
        (
            "expert-determination",
            Profile::builtin("expert-determination").unwrap(),
        ),
        ("safe-harbor, free text removed (no text engine)", no_text),
    ];
    println!("FHIR resources per second per core (one thread); the baseline is a plain serde_json");
    println!(
        "parse + serialise of the same bytes, timed in the same run; ratio = deid / baseline."
    );
    let mut summary = Vec::new();
    // `AIRLOCK_BENCH_INPUT=N`: only the Nth input (1-based), e.g. to profile one of them.
    let only: Option<usize> = std::env::var("AIRLOCK_BENCH_INPUT")
        .ok()
        .and_then(|v| v.parse().ok());
    for (i, input) in inputs.iter().enumerate() {
        if only.is_some_and(|n| n != i + 1) {
            continue;
        }
        let resources = input.resources();
        let mb = input.mb();
        println!();
        println!(
            "{}: {} documents, {resources} resources, {mb:.1} MB ({:.0} bytes per resource)",
            input.title,
            input.docs.len(),
            mb * 1e6 / resources as f64
        );
        let selected: Vec<&(&str, Profile)> = profiles
            .iter()
            .filter(|(name, _)| {
                // `=NAME` selects that profile only.
                !filter.as_ref().is_some_and(|f| match f.strip_prefix('=') {
                    Some(exact) => *name != exact,
                    None => !name.contains(f.as_str()),
                })
            })
            .collect();
        let mut crosswalks: Vec<Crosswalk> = selected.iter().map(|_| Crosswalk::new()).collect();
        // Warm up (text engine dictionaries, crosswalks).
        for ((_, profile), cw) in selected.iter().zip(&mut crosswalks) {
            for b in &input.docs {
                deid_bytes(profile, &keys, cw, input.format, b).unwrap();
            }
        }
        // Rounds: the baseline, then each profile, in turn; rates in resources/s.
        let mut base_rates = Vec::new();
        let mut rates: Vec<Vec<f64>> = selected.iter().map(|_| Vec::new()).collect();
        let mut ratios: Vec<Vec<f64>> = selected.iter().map(|_| Vec::new()).collect();
        for _ in 0..rounds() {
            let (n, t) = time(ROUND, || input.baseline());
            let base = (resources as f64 * f64::from(n)) / t.as_secs_f64();
            base_rates.push(base);
            for (k, ((_, profile), cw)) in selected.iter().zip(&mut crosswalks).enumerate() {
                let (n, t) = time(ROUND, || {
                    for b in &input.docs {
                        std::hint::black_box(
                            deid_bytes(profile, &keys, cw, input.format, b).unwrap(),
                        );
                    }
                });
                let rate = (resources as f64 * f64::from(n)) / t.as_secs_f64();
                rates[k].push(rate);
                ratios[k].push(rate / base);
            }
        }
        let base = median(&mut base_rates);
        let per_mb = mb / resources as f64;
        println!(
            "  {:<52} {:>9.0} resources/s {:>7.1} MB/s   (rounds {:.0}..{:.0})",
            "serde_json parse + serialise (baseline)",
            base,
            base * per_mb,
            min(&base_rates),
            max(&base_rates),
        );
        for (k, (name, _)) in selected.iter().enumerate() {
            let rate = median(&mut rates[k]);
            let ratio = median(&mut ratios[k]);
            println!(
                "  {:<52} {:>9.0} resources/s {:>7.1} MB/s   ratio {ratio:.2}   (rounds {:.0}..{:.0})",
                format!("deid {name}"),
                rate,
                rate * per_mb,
                min(&rates[k]),
                max(&rates[k]),
            );
            if *name == "safe-harbor" {
                summary.push((input.title.clone(), rate, base, ratio));
            }
        }
    }
    if !summary.is_empty() {
        println!();
        println!("safe-harbor, target 50000 resources/s per core:");
        for (title, rate, base, ratio) in &summary {
            println!(
                "  {rate:>9.0} resources/s ({}), serde_json {base:.0}, ratio {ratio:.2}: {title}",
                if *rate >= 50_000.0 { "met" } else { "not met" },
            );
        }
    }

    // Risk report on the readmission table.
    if filter.is_some() {
        return;
    }
    let Some(d) = data_dir() else {
        println!("readmission table: shared data absent, skipped");
        return;
    };
    let tmp = std::env::temp_dir().join(format!("airlock-deid-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let ok = std::process::Command::new("unzip")
        .args(["-o", "-q"])
        .arg(d.join("tabular/diabetes130/dataset_diabetes.zip"))
        .arg("dataset_diabetes/diabetic_data.csv")
        .arg("-d")
        .arg(&tmp)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("readmission table: unzip unavailable, skipped");
        return;
    }
    let csv = std::fs::read(tmp.join("dataset_diabetes/diabetic_data.csv")).unwrap();
    std::fs::remove_dir_all(&tmp).unwrap();
    let qis: Vec<String> = [
        "race",
        "gender",
        "age",
        "admission_type_id",
        "discharge_disposition_id",
        "admission_source_id",
        "payer_code",
        "medical_specialty",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let (n, t) = time(Duration::from_secs(2), || {
        let mut r = csv::Reader::from_reader(csv.as_slice());
        let mut rec = csv::ByteRecord::new();
        let mut rows = 0u64;
        while r.read_byte_record(&mut rec).unwrap() {
            rows += 1;
        }
        std::hint::black_box(rows);
    });
    let parse = t / n;
    let mut report = None;
    let (n, t) = time(Duration::from_secs(3), || {
        report = Some(risk_report_csv(csv.as_slice(), &qis, Some("readmitted"), 1.0).unwrap());
    });
    let risk = t / n;
    let r = report.unwrap();
    println!("readmission table: {} rows, 8 quasi-identifiers", r.records);
    println!(
        "{:<44} {:>12.1} ms",
        "csv parse only (baseline)",
        parse.as_secs_f64() * 1e3
    );
    println!(
        "{:<44} {:>12.1} ms   {:.1}x the parse",
        "risk report (k, l, prosecutor, journalist)",
        risk.as_secs_f64() * 1e3,
        risk.as_secs_f64() / parse.as_secs_f64()
    );
    print!("{}", r.summary());
}
