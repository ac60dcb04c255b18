#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test and print to its log"
)]
//! Airlock's drift statistics and CBPE estimates against the packages hospitals already use:
//! Evidently 0.7 (each stattest, and its DataDriftPreset's default choice, verdicts and
//! dataset drift) and NannyML 0.13 (CBPE's expected AUROC, precision and recall), on the same
//! data. The oracle script is `drift_oracle.py` beside this file.
//!
//! Needs a Python with `evidently==0.7.23`, `nannyml==0.13.1` and `pandas<3` (Evidently's legacy
//! module does not import under pandas 3): `AIRLOCK_MONITOR_PYTHON` names it (default
//! `python3`). Without it the test skips with a message, unless `AIRLOCK_REQUIRE_EVIDENTLY=1`,
//! when it fails (CI sets it and installs them in their own virtual environment).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use airlock_models::monitor::{self, ColumnProfile, DriftOptions, Kind, Method, Profile};
use serde_json::{Value, json};

/// Statistics agree to this (absolute). Past 10,000 values KS's p-value is the one-sample law of
/// D_n at n = round(nm/(n+m)) on both sides, by different numerics (scipy: Pomeranz or
/// Pelz-Good; Airlock: Marsaglia-Tsang-Wang); the test prints how far apart they are.
const TOLERANCE: f64 = 1e-6;

fn python() -> String {
    std::env::var("AIRLOCK_MONITOR_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn python_ready() -> bool {
    let probe = Command::new(python())
        .args(["-c", "import evidently.legacy.report, nannyml"])
        .output();
    let ok = probe.as_ref().is_ok_and(|o| o.status.success());
    if !ok {
        let why = "no Python with evidently 0.7 and nannyml 0.13 \
                   (set AIRLOCK_MONITOR_PYTHON to one: see .ci/run)";
        assert!(
            std::env::var("AIRLOCK_REQUIRE_EVIDENTLY").as_deref() != Ok("1"),
            "AIRLOCK_REQUIRE_EVIDENTLY=1 but {why}"
        );
        eprintln!("skipping: {why}");
    }
    ok
}

struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    fn pick<'a>(&mut self, items: &[(&'a str, f64)]) -> &'a str {
        let mut u = self.uniform();
        for (s, w) in items {
            if u < *w {
                return s;
            }
            u -= w;
        }
        items[items.len() - 1].0
    }
}

/// A column of cells: numbers (`None` missing) or categories.
enum Cells {
    Num(Vec<Option<f64>>),
    Cat(Vec<String>),
}

struct Case {
    columns: Vec<(&'static str, Cells, Cells, Vec<Method>)>,
    scores: Vec<f64>,
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

fn cases() -> Vec<Case> {
    let mut r = Rng(0x000d_71f7);
    let num = |r: &mut Rng, n: usize, f: &dyn Fn(&mut Rng) -> Option<f64>| {
        Cells::Num((0..n).map(|_| f(r)).collect())
    };
    let cat = |r: &mut Rng, n: usize, w: &[(&'static str, f64)]| {
        Cells::Cat((0..n).map(|_| r.pick(w).to_string()).collect())
    };
    use Method::*;
    let all_num = vec![Ks, Wasserstein, JensenShannon, Psi];
    let mut out = Vec::new();
    // Small reference (at most 1,000): KS, chi-squared and z by default.
    let (n, m) = (600, 450);
    out.push(Case {
        columns: vec![
            (
                "age",
                num(&mut r, n, &|r| Some(round(50.0 + 15.0 * r.normal(), 1))),
                num(&mut r, m, &|r| Some(round(53.0 + 15.0 * r.normal(), 1))),
                all_num.clone(),
            ),
            (
                "lab",
                num(&mut r, n, &|r| (r.uniform() > 0.05).then(|| r.normal())),
                num(&mut r, m, &|r| (r.uniform() > 0.08).then(|| r.normal())),
                all_num.clone(),
            ),
            (
                "visits",
                num(&mut r, n, &|r| Some((r.uniform() * 4.0).floor())),
                num(&mut r, m, &|r| Some((r.uniform() * 4.0).floor())),
                vec![Ks, ChiSquare, Wasserstein, JensenShannon, Psi],
            ),
            (
                "flag",
                num(&mut r, n, &|r| Some(f64::from(r.uniform() < 0.3))),
                num(&mut r, m, &|r| Some(f64::from(r.uniform() < 0.4))),
                vec![ChiSquare, Z, JensenShannon, Psi],
            ),
            (
                "ward",
                cat(&mut r, n, &[("icu", 0.2), ("med", 0.5), ("surg", 0.3)]),
                cat(&mut r, m, &[("icu", 0.3), ("med", 0.4), ("surg", 0.3)]),
                vec![ChiSquare, JensenShannon, Psi],
            ),
            (
                "sex",
                cat(&mut r, n, &[("F", 0.5), ("M", 0.5)]),
                cat(&mut r, m, &[("F", 0.52), ("M", 0.48)]),
                vec![ChiSquare, Z, JensenShannon, Psi],
            ),
        ],
        scores: Vec::new(),
    });
    // Larger reference: Wasserstein and Jensen-Shannon by default; Sturges bins for JS and
    // PSI where the reference has more than 20 distinct values; CBPE on a score column.
    let (n, m) = (3000, 2500);
    out.push(Case {
        columns: vec![
            (
                "los",
                num(&mut r, n, &|r| Some(round(-3.0 * r.uniform().ln(), 2))),
                num(&mut r, m, &|r| Some(round(-3.6 * r.uniform().ln(), 2))),
                all_num.clone(),
            ),
            (
                "count30",
                num(&mut r, n, &|r| Some((r.uniform() * 30.0).floor())),
                num(&mut r, m, &|r| Some((r.uniform() * 30.0).floor())),
                all_num.clone(),
            ),
            (
                "grade",
                num(&mut r, n, &|r| Some(1.0 + (r.uniform() * 10.0).floor())),
                num(&mut r, m, &|r| Some(1.0 + (r.uniform() * 9.0).floor())),
                vec![Ks, ChiSquare, Wasserstein, JensenShannon, Psi],
            ),
            (
                "small3",
                num(&mut r, n, &|r| Some((r.uniform() * 3.0).floor())),
                num(&mut r, m, &|r| Some((r.uniform() * 3.0).floor())),
                vec![ChiSquare, JensenShannon, Psi],
            ),
            (
                "ward",
                cat(&mut r, n, &[("icu", 0.2), ("med", 0.5), ("surg", 0.3)]),
                cat(&mut r, m, &[("icu", 0.2), ("med", 0.5), ("surg", 0.3)]),
                vec![ChiSquare, JensenShannon, Psi],
            ),
        ],
        scores: (0..2000)
            .map(|_| {
                let z = 1.2 * r.normal() - 1.0;
                1.0 / (1.0 + (-z).exp())
            })
            .collect(),
    });
    // Equal sizes (scipy's closed form for the exact KS p-value), and sizes past 10,000 (its
    // asymptotic p-value).
    out.push(Case {
        columns: vec![(
            "x",
            num(&mut r, 500, &|r| Some(r.normal())),
            num(&mut r, 500, &|r| Some(0.15 + r.normal())),
            all_num.clone(),
        )],
        scores: Vec::new(),
    });
    out.push(Case {
        columns: vec![(
            "x",
            num(&mut r, 800, &|r| Some(r.normal())),
            num(&mut r, 12_000, &|r| Some(0.07 + r.normal())),
            vec![Ks],
        )],
        scores: Vec::new(),
    });
    out
}

fn cells_json(c: &Cells) -> Value {
    match c {
        Cells::Num(v) => json!(v),
        Cells::Cat(v) => json!(v),
    }
}

fn profile(name: &str, c: &Cells) -> ColumnProfile {
    let (cells, kind): (Vec<String>, Kind) = match c {
        Cells::Num(v) => (
            v.iter()
                .map(|x| x.map_or(String::new(), |x| x.to_string()))
                .collect(),
            Kind::Numeric,
        ),
        Cells::Cat(v) => (v.clone(), Kind::Categorical),
    };
    monitor::profile_cells(name, &cells, kind).unwrap()
}

fn run_oracle(cases: &[Case]) -> Vec<Value> {
    let spec: Vec<Value> = cases
        .iter()
        .map(|c| {
            let kinds: BTreeMap<&str, &str> = c
                .columns
                .iter()
                .map(|(n, r, _, _)| (*n, if matches!(r, Cells::Num(_)) { "numeric" } else { "categorical" }))
                .collect();
            json!({
                "kinds": kinds,
                "reference": c.columns.iter().map(|(n, r, _, _)| (*n, cells_json(r))).collect::<BTreeMap<_, _>>(),
                "current": c.columns.iter().map(|(n, _, k, _)| (*n, cells_json(k))).collect::<BTreeMap<_, _>>(),
                "methods": c.columns.iter().map(|(n, _, _, ms)| (*n, ms.iter().map(|m| m.as_str()).collect::<Vec<_>>())).collect::<BTreeMap<_, _>>(),
                "scores": c.scores,
                "threshold": 0.3,
            })
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("airlock-drift-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cases.json");
    std::fs::write(&path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let script: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drift_oracle.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn drift_and_cbpe_match_evidently_and_nannyml() {
    if !python_ready() {
        return;
    }
    let cases = cases();
    let oracle = run_oracle(&cases);
    let mut compared = 0;
    let mut worst_asymptotic: f64 = 0.0;
    for (i, (case, want)) in cases.iter().zip(&oracle).enumerate() {
        let mut reference = Profile::default();
        let mut current = Profile::default();
        for (name, r, c, methods) in &case.columns {
            let (rp, cp) = (profile(name, r), profile(name, c));
            let figures = &want["columns"][name];
            for &method in methods {
                let options = DriftOptions {
                    methods: BTreeMap::from([(name.to_string(), method)]),
                    ..DriftOptions::default()
                };
                let got = monitor::column_drift(name, &rp, &cp, &options).unwrap();
                let ours = got.p_value.unwrap_or(got.statistic);
                let theirs = figures[method.as_str()]["value"].as_f64().unwrap();
                if method == Method::Ks && cp.sample.n().max(rp.sample.n()) > 10_000 {
                    worst_asymptotic = worst_asymptotic.max((ours - theirs).abs());
                }
                assert!(
                    (ours - theirs).abs() <= TOLERANCE,
                    "case {i} column {name} {}: airlock {ours} evidently {theirs}",
                    method.as_str()
                );
                assert_eq!(
                    got.drifted,
                    figures[method.as_str()]["drifted"].as_bool().unwrap(),
                    "case {i} column {name} {}: verdict",
                    method.as_str()
                );
                if method == Method::Ks {
                    let d = figures["ks_d"].as_f64().unwrap();
                    assert!((got.statistic - d).abs() <= 1e-12, "case {i} {name}: D");
                }
                compared += 1;
            }
            reference.columns.push(rp);
            current.columns.push(cp);
        }
        // The default choice, score and verdict per column, and dataset drift, as Evidently's
        // DataDriftPreset reports them.
        let drift = monitor::drift(&reference, &current, None, &DriftOptions::default()).unwrap();
        for f in &drift.features {
            let theirs = &want["report"][&f.name];
            assert_eq!(
                f.method.as_str(),
                theirs["method"].as_str().unwrap(),
                "case {i} {}: default method",
                f.name
            );
            let ours = f.p_value.unwrap_or(f.statistic);
            let score = theirs["score"].as_f64().unwrap();
            assert!(
                (ours - score).abs() <= TOLERANCE,
                "case {i} {}: {ours} vs {score}",
                f.name
            );
            assert_eq!(
                f.drifted,
                theirs["drifted"].as_bool().unwrap(),
                "case {i} {}: verdict",
                f.name
            );
            compared += 1;
        }
        assert_eq!(
            drift.dataset_drift,
            want["dataset_drift"].as_bool().unwrap(),
            "case {i}"
        );
        assert!((drift.share_drifted - want["share_drifted"].as_f64().unwrap()).abs() < 1e-12);
        if !case.scores.is_empty() {
            let got = monitor::cbpe(&case.scores, 0.3).unwrap();
            for (field, ours) in [
                ("auroc", got.auroc),
                ("precision", got.precision),
                ("recall", got.recall),
            ] {
                let theirs = want["cbpe"][field].as_f64().unwrap();
                assert!(
                    (ours - theirs).abs() <= TOLERANCE,
                    "case {i} CBPE {field}: {ours} vs {theirs}"
                );
                compared += 1;
            }
        }
    }
    eprintln!(
        "{compared} figures agree with Evidently and NannyML to {TOLERANCE}; KS asymptotic p-values within {worst_asymptotic:.2e}"
    );
}
