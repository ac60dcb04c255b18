//! How long does one validated prediction take?
//!
//! Criterion times `TrainedModel::predict` (signature check, encoding, model) on a record of
//! twelve features for logistic regression and for 100 boosted trees of 31 leaves, and the
//! bare model on an already encoded vector. Training data are synthetic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "a benchmark binary: a broken setup stops it at once, and it prints its results"
)]

use std::hint::black_box;

use airlock_models::{
    FeatureSpec, GbdtParams, LogisticParams, Params, Record, Table, TrainConfig, Value, train,
};
use airlock_types::ContentHash;
use criterion::{Criterion, criterion_group, criterion_main};

const NUMERIC: usize = 8;
const CATEGORICAL: usize = 4;

fn table(n: usize) -> Table {
    let mut state = 0x9E37_79B9_u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut cols: Vec<(String, Vec<String>)> = (0..NUMERIC)
        .map(|i| (format!("n{i}"), Vec::new()))
        .chain((0..CATEGORICAL).map(|i| (format!("c{i}"), Vec::new())))
        .collect();
    let mut y = Vec::new();
    for _ in 0..n {
        let mut z = -1.0;
        for (i, col) in cols.iter_mut().enumerate() {
            let v = (next() * 10.0).floor();
            z += if i % 3 == 0 { 0.1 * v } else { -0.02 * v };
            col.1.push(if i < NUMERIC {
                v.to_string()
            } else {
                format!("k{v}")
            });
        }
        y.push(
            if next() < 1.0 / (1.0 + (-z).exp()) {
                "1"
            } else {
                "0"
            }
            .to_owned(),
        );
    }
    cols.push(("y".into(), y));
    Table::from_columns(cols).unwrap()
}

fn bench(c: &mut Criterion) {
    let t = table(5_000);
    let features: Vec<FeatureSpec> = t
        .columns()
        .iter()
        .map(|c| c.name())
        .filter(|n| *n != "y")
        .map(FeatureSpec::from)
        .collect();
    let record: Record = t
        .columns()
        .iter()
        .filter(|c| c.name() != "y")
        .map(|c| {
            let cell = c.cells()[0].clone();
            let v = cell.parse().map_or(Value::Text(cell), Value::Number);
            (c.name().to_owned(), v)
        })
        .collect();
    for (name, params) in [
        ("logistic", Params::Logistic(LogisticParams::default())),
        ("gbdt_100x31", Params::Gbdt(GbdtParams::default())),
    ] {
        let config = TrainConfig {
            dataset_hash: ContentHash::from_bytes([0; 32]),
            target: "y".into(),
            positive: "1".into(),
            features: features.clone(),
            params,
            seed: 1,
            test_fraction: 0.2,
        };
        let out = train(&t, &config).unwrap();
        let model = out.model;
        c.bench_function(&format!("predict_validated/{name}"), |b| {
            b.iter(|| model.predict(black_box(&record)).unwrap());
        });
        let x = model
            .signature()
            .encode(&record, model.model().kind().encoding())
            .unwrap();
        c.bench_function(&format!("predict_encoded/{name}"), |b| {
            b.iter(|| model.model().predict_proba(black_box(&x)).unwrap());
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
