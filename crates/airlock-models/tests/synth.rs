#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test and print to its log"
)]
//! MST does what it claims on a table whose joint distribution is known: with a large budget
//! it finds the true dependency tree and its synthetic marginals converge to the real ones;
//! with a vanishing budget its choice of pairs is uniform and fidelity falls; what it records
//! as spent is the zCDP composition of its mechanisms' charges.

use airlock_models::Table;
use airlock_models::synth::report::{Inputs, report};
use airlock_models::synth::{ColumnKind, MstConfig, SynthColumn, decode, encode, mst};

struct Lcg(u64);
impl Lcg {
    fn f(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick(&mut self, p: &[f64]) -> usize {
        let u = self.f();
        let mut acc = 0.0;
        for (i, x) in p.iter().enumerate() {
            acc += x;
            if u < acc {
                return i;
            }
        }
        p.len() - 1
    }
}

/// A tree a → b → c, a → d (numeric), and e independent of everything.
fn table(n: usize, seed: u64) -> Table {
    let mut r = Lcg(seed);
    let pa = [0.5, 0.3, 0.2];
    let pb = [
        [0.7, 0.1, 0.1, 0.1],
        [0.1, 0.7, 0.1, 0.1],
        [0.05, 0.05, 0.2, 0.7],
    ];
    let pc = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.1, 0.9]];
    let pd = [
        [0.6, 0.3, 0.1, 0.0, 0.0],
        [0.0, 0.2, 0.6, 0.2, 0.0],
        [0.0, 0.0, 0.1, 0.3, 0.6],
    ];
    let pe = [0.4, 0.35, 0.25];
    let mut cols: Vec<Vec<String>> = vec![Vec::new(); 5];
    for _ in 0..n {
        let a = r.pick(&pa);
        let b = r.pick(&pb[a]);
        let c = r.pick(&pc[b]);
        let d = r.pick(&pd[a]);
        let e = r.pick(&pe);
        cols[0].push(["x", "y", "z"][a].into());
        cols[1].push(["p", "q", "r", "s"][b].into());
        cols[2].push(["0", "1"][c].into());
        // d's bin is its value over 2: a whole number in [0, 10).
        cols[3].push(format!("{}", 2 * d + usize::from(r.f() < 0.5)));
        cols[4].push(["u", "v", "w"][e].into());
    }
    Table::from_columns(
        ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| (*s).to_owned())
            .zip(cols)
            .collect(),
    )
    .unwrap()
}

fn columns() -> Vec<SynthColumn> {
    let cat = |name: &str, domain: &[&str]| SynthColumn {
        name: name.into(),
        kind: ColumnKind::Categorical {
            domain: domain.iter().map(|s| (*s).to_owned()).collect(),
        },
    };
    vec![
        cat("a", &["x", "y", "z"]),
        cat("b", &["p", "q", "r", "s"]),
        cat("c", &["0", "1"]),
        SynthColumn {
            name: "d".into(),
            kind: ColumnKind::Numeric {
                lo: 0.0,
                hi: 10.0,
                bins: 5,
            },
        },
        cat("e", &["u", "v", "w"]),
    ]
}

fn names() -> Vec<String> {
    columns().into_iter().map(|c| c.name).collect()
}

fn config(rho: f64, iterations: usize) -> MstConfig {
    MstConfig {
        rho,
        rows_per_unit: 1,
        iterations,
    }
}

#[test]
fn a_large_budget_recovers_the_tree_and_the_marginals() {
    let cols = columns();
    let real = table(20_000, 1);
    let holdout = table(5_000, 2);
    let data = encode(&real, &cols).unwrap();
    let out = mst::fit(&data, &names(), &config(50.0, 1_000)).unwrap();
    let mut edges: Vec<(usize, usize)> = out
        .edges
        .iter()
        .map(|&(i, j)| (i.min(j), i.max(j)))
        .collect();
    edges.sort_unstable();
    for want in [(0, 1), (1, 2), (0, 3)] {
        assert!(edges.contains(&want), "{edges:?}");
    }
    let rows = out.sample(20_000, 7).unwrap();
    let synthetic = decode(&rows, &cols, 7).unwrap();
    let r = report(&Inputs {
        columns: &cols,
        train: &real,
        holdout: &holdout,
        synthetic: &synthetic,
        target: Some(("c", "1")),
        sample: 300,
        seed: 5,
    })
    .unwrap();
    println!(
        "large budget: 1-way {:.4}, 2-way {:.4}, edges {edges:?}",
        r.fidelity.mean_column, r.fidelity.mean_pair
    );
    for c in &r.fidelity.columns {
        assert!(c.score > 0.98, "{}: {}", c.column, c.score);
    }
    for p in &r.fidelity.pairs {
        assert!(p.score > 0.97, "{} x {}: {}", p.a, p.b, p.score);
    }
    // Train on synthetic, test on real: c is predictable from b, and the synthetic rows
    // carry that.
    let u = r.utility.unwrap();
    let (real_lr, syn_lr) = (
        u.trained_on_real.logistic.unwrap(),
        u.trained_on_synthetic.logistic.unwrap(),
    );
    assert!(
        real_lr > 0.7 && (real_lr - syn_lr).abs() < 0.02,
        "{real_lr} {syn_lr}"
    );
    // Sampling is seeded.
    assert!(out.sample(1_000, 9).unwrap() == out.sample(1_000, 9).unwrap());
    assert!(out.sample(1_000, 9).unwrap() != out.sample(1_000, 10).unwrap());
}

#[test]
fn the_spend_is_the_composition_of_the_charges() {
    let data = encode(&table(2_000, 3), &columns()).unwrap();
    for rho in [0.01, 0.5, 3.0] {
        let out = mst::fit(&data, &names(), &config(rho, 100)).unwrap();
        // Five one-way measurements, four selections, four two-way measurements.
        assert_eq!(out.charges.len(), 5 + 4 + 4, "{:?}", out.charges);
        let sum: f64 = out.charges.iter().map(|c| c.rho).sum();
        assert_eq!(sum, out.rho_spent);
        assert!(sum <= rho * (1.0 + 1e-12), "{sum} > {rho}");
        assert!(sum >= rho * 0.999, "{sum} well under {rho}");
        for phase in ["1-way", "select", "2-way"] {
            let part: f64 = out
                .charges
                .iter()
                .filter(|c| c.what.starts_with(phase))
                .map(|c| c.rho)
                .sum();
            assert!((part - rho / 3.0).abs() <= rho * 1e-3, "{phase}: {part}");
        }
    }
    // Twice the rows per unit: each mechanism's scale doubles for the same charge.
    let one = mst::fit(&data, &names(), &config(1.0, 10)).unwrap();
    let mut two_cfg = config(1.0, 10);
    two_cfg.rows_per_unit = 2;
    let two = mst::fit(&data, &names(), &two_cfg).unwrap();
    let ratio = two.charges[0].scale / one.charges[0].scale;
    assert!((ratio - 2.0).abs() < 1e-3, "{ratio}");
}

#[test]
fn a_vanishing_budget_selects_uniformly_and_loses_fidelity() {
    // Three columns, a and b strongly dependent: the first pair chosen is (a, b) about a third
    // of the time, not nearly always.
    let cols: Vec<SynthColumn> = columns().into_iter().take(3).collect();
    let three: Vec<String> = names().into_iter().take(3).collect();
    let real = table(2_000, 4);
    let data = encode(&real, &cols).unwrap();
    let runs = 300;
    let mut ab = 0;
    for _ in 0..runs {
        let out = mst::fit(&data, &three, &config(1e-9, 5)).unwrap();
        let (i, j) = out.edges[0];
        if (i.min(j), i.max(j)) == (0, 1) {
            ab += 1;
        }
    }
    println!("vanishing budget: (a, b) first in {ab} of {runs}");
    assert!((70..=130).contains(&ab), "{ab} of {runs}");
    // And at a large budget it is (a, b) or (b, c), the two true edges, every time.
    let big = mst::fit(&data, &three, &config(50.0, 50)).unwrap();
    let (i, j) = big.edges[0];
    assert!(
        matches!((i.min(j), i.max(j)), (0, 1) | (1, 2)),
        "{:?}",
        big.edges
    );

    let fidelity = |rho: f64| {
        let out = mst::fit(&data, &three, &config(rho, 200)).unwrap();
        let synthetic = decode(&out.sample(2_000, 1).unwrap(), &cols, 1).unwrap();
        report(&Inputs {
            columns: &cols,
            train: &real,
            holdout: &table(500, 5),
            synthetic: &synthetic,
            target: None,
            sample: 100,
            seed: 1,
        })
        .unwrap()
        .fidelity
        .mean_pair
    };
    let (low, high) = (fidelity(1e-6), fidelity(10.0));
    println!("2-way fidelity: {low:.3} at rho 1e-6, {high:.3} at rho 10");
    assert!(high > 0.95 && low < high - 0.1, "{low} {high}");
}

#[test]
fn declarations_and_budgets_are_refused_before_anything_is_measured() {
    let real = table(100, 6);
    let mut cols = columns();
    cols[3].kind = ColumnKind::Numeric {
        lo: 5.0,
        hi: 5.0,
        bins: 3,
    };
    let e = encode(&real, &cols).unwrap_err().to_string();
    assert!(e.contains("`d`"), "{e}");
    let data = encode(&real, &columns()).unwrap();
    for rho in [0.0, f64::INFINITY, f64::NAN, -1.0] {
        assert!(
            mst::fit(&data, &names(), &config(rho, 10)).is_err(),
            "{rho}"
        );
    }
}
