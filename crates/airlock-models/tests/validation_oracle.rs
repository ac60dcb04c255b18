#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test and print to its log"
)]
//! Every figure of a validation report against scikit-learn and Fairlearn on the same
//! predictions, to 1e-9: overall metrics, every group metric, every disparity, and every
//! bootstrap interval (the Python side replays the engine's seeded resamples). The reference
//! is `validation_oracle.py` beside this file; it says how each figure is computed.
//!
//! Needs `python3` with numpy, scikit-learn and fairlearn. Without them the test skips with a
//! message, unless `AIRLOCK_REQUIRE_FAIRLEARN=1`, when it fails (CI sets it).

use std::path::{Path, PathBuf};
use std::process::Command;

use airlock_models::{Table, ValidationConfig, validate};
use serde_json::Value;

const TOLERANCE: f64 = 1e-9;

fn python_ready() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import numpy, sklearn, fairlearn"])
        .output();
    let ok = probe.as_ref().is_ok_and(|o| o.status.success());
    if !ok {
        let why = "python3 with numpy, scikit-learn and fairlearn is not available \
                   (python3 -m pip install fairlearn)";
        assert!(
            std::env::var("AIRLOCK_REQUIRE_FAIRLEARN").as_deref() != Ok("1"),
            "AIRLOCK_REQUIRE_FAIRLEARN=1 but {why}"
        );
        eprintln!("skipping: {why}");
    }
    ok
}

/// Deterministic predictions: scores rounded to three decimals (ties across ECE bin edges),
/// labels from a miscalibrated version of the score with a group effect, a `race` attribute
/// with one group below the minimum size, and a two-valued `sex`.
fn data(n: usize) -> (Vec<bool>, Vec<f64>, Table) {
    let mut state = 0x5eed_u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut y, mut p, mut race, mut sex) = (vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let u = next();
        let r = match u {
            u if u < 0.45 => "A",
            u if u < 0.75 => "B",
            u if u < 0.975 => "C",
            _ => "D",
        };
        let s = if next() < 0.5 { "F" } else { "M" };
        let z = (next() - 0.5) * 6.0;
        let score = (1.0 / (1.0 + (-z).exp()) * 1000.0)
            .round()
            .clamp(1.0, 999.0)
            / 1000.0;
        let shift = match r {
            "B" => 0.4,
            "C" => -0.3,
            _ => 0.0,
        };
        let truth = 1.0 / (1.0 + (-(0.2 + 0.8 * z + shift)).exp());
        y.push(next() < truth);
        p.push(score);
        race.push(r.to_owned());
        sex.push(s.to_owned());
    }
    let table = Table::from_columns(vec![("race".into(), race), ("sex".into(), sex)]).unwrap();
    (y, p, table)
}

fn scratch() -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("airlock-validation-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Walk both JSON trees: same shape, numbers within the tolerance; records the largest gap and
/// how many numbers were compared.
fn compare(path: &str, ours: &Value, theirs: &Value, worst: &mut (f64, usize)) {
    match (ours, theirs) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            let gap = (a - b).abs();
            *worst = (worst.0.max(gap), worst.1 + 1);
            assert!(gap <= TOLERANCE, "{path}: ours {a}, reference {b}");
        }
        (Value::Object(a), Value::Object(b)) => {
            let mut ka: Vec<&String> = a.keys().collect();
            let mut kb: Vec<&String> = b.keys().collect();
            ka.sort();
            kb.sort();
            assert_eq!(ka, kb, "{path}: different fields");
            for (k, v) in a {
                compare(&format!("{path}.{k}"), v, &b[k], worst);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: different lengths");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                compare(&format!("{path}[{i}]"), x, y, worst);
            }
        }
        (a, b) => assert_eq!(a, b, "{path}"),
    }
}

#[test]
fn every_figure_agrees_with_scikit_learn_and_fairlearn() {
    if !python_ready() {
        return;
    }
    let (y, p, groups) = data(1500);
    let config = ValidationConfig {
        threshold: 0.4,
        min_group_size: 60,
        resamples: 200,
        seed: 42,
    };
    let attributes = ["race", "sex"];
    let cols: Vec<_> = attributes
        .iter()
        .map(|a| groups.column(a).unwrap())
        .collect();
    let report = validate(&y, &p, &cols, &config).unwrap();
    assert!(
        report.groups.iter().any(|g| g.too_small),
        "the data should hold a group below the minimum"
    );

    let dir = scratch();
    let mut csv = String::from("y,p,race,sex\n");
    for (i, (yi, pi)) in y.iter().zip(&p).enumerate() {
        csv.push_str(&format!(
            "{},{pi},{},{}\n",
            u8::from(*yi),
            cols[0].cells()[i],
            cols[1].cells()[i]
        ));
    }
    std::fs::write(dir.join("data.csv"), csv).unwrap();
    let cfg = serde_json::json!({
        "threshold": config.threshold,
        "min_group_size": config.min_group_size,
        "resamples": config.resamples,
        "seed": config.seed,
        "attributes": attributes,
    });
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validation_oracle.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(dir.join("data.csv"))
        .arg(dir.join("config.json"))
        .arg(dir.join("reference.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Value =
        serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    let ours = serde_json::to_value(&report).unwrap();
    let mut worst = (0.0f64, 0usize);
    for part in ["metrics", "groups", "disparities"] {
        compare(part, &ours[part], &reference[part], &mut worst);
    }
    // Value, interval ends and resample count of 7 overall metrics, of 6 metrics in each of 5
    // measured groups and of 14 disparities in each of 2 attributes, with the counts: 276.
    assert_eq!(worst.1, 276, "numbers compared");
    println!(
        "{} numbers compared; largest difference from scikit-learn, Fairlearn and the replayed \
         bootstrap: {:e}",
        worst.1, worst.0
    );
}
