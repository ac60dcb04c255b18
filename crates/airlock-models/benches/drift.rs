//! Drift over a large prediction log: `cargo bench -p airlock-models --bench drift`.
//!
//! 1,000,000 logged predictions × 20 features (15 numeric, two-decimal values such as lab
//! results; 5 categorical), kept as the log keeps them (text cells), against a reference
//! profile of 100,000 training rows compressed to 4,096 points per numeric feature. Prints the
//! time to profile the window (parse, sort, count) and to test every feature and the score
//! (Evidently's default rule: Wasserstein and Jensen–Shannon at this size), against one plain
//! pass over the same cells (parse each number, touch each category) measured in the same run:
//! the ratio is what drift costs over reading the log at all.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "a benchmark that prints its figures"
)]

use std::time::Instant;

use airlock_models::monitor::{self, ColumnProfile, DriftOptions, Kind, Numbers, Profile, Sample};

const ROWS: usize = 1_000_000;
const REFERENCE: usize = 100_000;
const NUMERIC: usize = 15;
const CATEGORICAL: usize = 5;

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
}

/// Column-major text cells, as the prediction log holds them; `shift` moves the means.
fn cells(rows: usize, seed: u64, shift: f64) -> Vec<Vec<String>> {
    let mut r = Rng(seed);
    let mut cols = Vec::with_capacity(NUMERIC + CATEGORICAL);
    for j in 0..NUMERIC {
        let mean = 50.0 + 10.0 * j as f64 + shift;
        cols.push(
            (0..rows)
                .map(|_| format!("{:.2}", mean + 12.0 * r.normal()))
                .collect(),
        );
    }
    for j in 0..CATEGORICAL {
        let k = 3 + 2 * j;
        cols.push(
            (0..rows)
                .map(|_| format!("cat{}", (r.uniform() * k as f64) as usize))
                .collect(),
        );
    }
    cols
}

fn names() -> Vec<String> {
    (0..NUMERIC)
        .map(|j| format!("num{j}"))
        .chain((0..CATEGORICAL).map(|j| format!("cat{j}")))
        .collect()
}

fn profile(cols: &[Vec<String>]) -> Profile {
    let columns = names()
        .iter()
        .zip(cols)
        .enumerate()
        .map(|(j, (name, cells))| {
            let kind = if j < NUMERIC {
                Kind::Numeric
            } else {
                Kind::Categorical
            };
            monitor::profile_cells(name, cells, kind).unwrap()
        })
        .collect();
    Profile {
        rows: cols[0].len() as u64,
        columns,
    }
}

fn main() {
    let t = Instant::now();
    let reference_cells = cells(REFERENCE, 1, 0.0);
    let current_cells = cells(ROWS, 2, 0.5);
    let scores: Vec<f64> = {
        let mut r = Rng(3);
        (0..ROWS).map(|_| r.uniform()).collect()
    };
    println!(
        "generated {} reference and {} current rows × {} features in {:.2?}",
        REFERENCE,
        ROWS,
        NUMERIC + CATEGORICAL,
        t.elapsed()
    );
    let reference = profile(&reference_cells).compressed(monitor::PROFILE_CAP);
    let reference_score = ColumnProfile {
        name: "score".into(),
        sample: Sample::Numeric(Numbers::from_values(scores[..REFERENCE].to_vec())),
        missing: 0,
    };

    // The floor: one pass over the same cells, parsing each number and touching each category.
    let t = Instant::now();
    let mut sum = 0.0;
    let mut bytes = 0usize;
    for (j, col) in current_cells.iter().enumerate() {
        for c in col {
            if j < NUMERIC {
                sum += c.parse::<f64>().unwrap();
            } else {
                bytes += c.len();
            }
        }
    }
    let plain = t.elapsed();
    std::hint::black_box((sum, bytes));

    let t = Instant::now();
    let current = profile(&current_cells);
    let score = ColumnProfile {
        name: "score".into(),
        sample: Sample::Numeric(Numbers::from_values(scores.clone())),
        missing: 0,
    };
    let profiled = t.elapsed();
    let t = Instant::now();
    let d = monitor::drift(
        &reference,
        &current,
        Some((&reference_score, &score)),
        &DriftOptions::default(),
    )
    .unwrap();
    let tested = t.elapsed();
    let drifted = d.features.iter().filter(|f| f.drifted).count();
    let total = profiled + tested;
    println!(
        "plain pass over {} cells: {plain:.2?}",
        ROWS * (NUMERIC + CATEGORICAL)
    );
    println!(
        "profile the window (parse, sort, count): {profiled:.2?}; test {} columns: {tested:.2?}; total {total:.2?}",
        d.features.len()
    );
    println!(
        "ratio to the plain pass: {:.2}× ({} columns drifted, share {:.2}, methods: {})",
        total.as_secs_f64() / plain.as_secs_f64(),
        drifted,
        d.share_drifted,
        d.features
            .iter()
            .map(|f| f.method.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ")
    );
}
