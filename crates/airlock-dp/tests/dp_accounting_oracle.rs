//! Google's `dp-accounting` Python package is the oracle for the DP-SGD accountant: for a fixed
//! table of DP-SGD-like settings (q, σ, steps, δ), the (ε, optimal order) that
//! `RdpAccountant` gives for `SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(σ)),
//! steps)` must be the one [`airlock_dp::accountant::epsilon`] gives, and the per-step RDP must
//! agree at every default order and at a few others, integer and fractional.
//!
//! Where `python3` or its `dp_accounting` module is missing the test is skipped with a message,
//! unless `AIRLOCK_REQUIRE_DP_ACCOUNTING=1`, in which case it fails.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use std::error::Error;
use std::process::Command;

use airlock_dp::accountant::{DEFAULT_ORDERS, epsilon, rdp_sampled_gaussian};
use serde::Deserialize;

mod common;

type TestResult = Result<(), Box<dyn Error>>;

/// (q, σ, steps, δ): sampling rates 0.0005–0.1, noise multipliers 0.6–5, 100–100 000 steps.
const TABLE: [(f64, f64, u64, f64); 11] = [
    (0.001, 0.6, 100_000, 1e-5),
    (256.0 / 60_000.0, 1.1, 14_062, 1e-5),
    (0.01, 1.0, 1_000, 1e-5),
    (0.001, 5.0, 100, 1e-6),
    (0.1, 0.8, 500, 1e-5),
    (0.02, 1.3, 5_000, 1e-6),
    (0.004, 0.9, 25_000, 1e-5),
    (0.05, 2.0, 2_000, 1e-6),
    (0.1, 5.0, 100_000, 1e-5),
    (0.0005, 0.7, 50_000, 1e-6),
    (0.03, 0.6, 300, 1e-5),
];

/// Orders outside the default list, checked per step as well: fractional ones off the 0.1
/// grid (the series path) and integers between the default ones (the binomial path).
const EXTRA_ORDERS: [f64; 6] = [1.25, 1.75, 3.3333, 20.5, 100.0, 200.0];

/// ε to this relative precision (the brief's figure).
const EPSILON_TOLERANCE: f64 = 1e-6;
/// Per-step RDP to this relative precision.
const RDP_TOLERANCE: f64 = 1e-9;

/// Reads `[[q, sigma, steps, delta], ...]` and the extra orders from argv, prints one JSON
/// object per line. Infinite figures are printed as `null` (JSON has no infinity). The
/// per-step RDP comes from the private `_compute_rdp_poisson_subsampled_gaussian`, which is the
/// very function `RdpAccountant` calls for a `PoissonSampledDpEvent`; ε comes through the
/// public API only.
const SCRIPT: &str = r#"
import json, math, sys
from importlib.metadata import version
import dp_accounting
from dp_accounting.rdp import rdp_privacy_accountant as rpa

def fin(x):
    x = float(x)
    assert not math.isnan(x)
    return None if math.isinf(x) else x

print(json.dumps({"kind": "version", "version": version("dp-accounting"),
                  "default_orders": [float(o) for o in rpa.DEFAULT_RDP_ORDERS]}))
table = json.loads(sys.argv[1])
extra = json.loads(sys.argv[2])
for q, sigma, steps, delta in table:
    acc = dp_accounting.rdp.RdpAccountant()
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
    acc.compose(dp_accounting.SelfComposedDpEvent(event, steps))
    eps, order = acc.get_epsilon_and_optimal_order(delta)
    print(json.dumps({"kind": "epsilon", "q": q, "sigma": sigma, "steps": steps,
                      "delta": delta, "epsilon": fin(eps), "order": float(order)}))
    orders = list(rpa.DEFAULT_RDP_ORDERS) + extra
    rdp = rpa._compute_rdp_poisson_subsampled_gaussian(q, sigma, orders)
    print(json.dumps({"kind": "rdp", "q": q, "sigma": sigma,
                      "orders": [float(o) for o in orders], "rdp": [fin(r) for r in rdp]}))
"#;

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum Line {
    Version {
        version: String,
        default_orders: Vec<f64>,
    },
    Epsilon {
        q: f64,
        sigma: f64,
        steps: u64,
        delta: f64,
        /// `None` is +∞.
        epsilon: Option<f64>,
        order: f64,
    },
    Rdp {
        q: f64,
        sigma: f64,
        orders: Vec<f64>,
        /// `None` is +∞.
        rdp: Vec<Option<f64>>,
    },
}

/// Relative difference; equal infinities (and equal zeros) differ by 0.
fn relative(ours: f64, theirs: f64) -> f64 {
    if ours == theirs {
        0.0
    } else {
        (ours - theirs).abs() / theirs.abs()
    }
}

#[test]
#[allow(
    clippy::print_stderr,
    reason = "the skip notice and the observed figures are reported"
)]
fn dp_sgd_accounting_matches_dp_accounting() -> TestResult {
    if !common::oracle_available(
        "dp_accounting.rdp",
        "dp-accounting",
        "AIRLOCK_REQUIRE_DP_ACCOUNTING",
    )? {
        return Ok(());
    }

    let table = serde_json::to_string(&TABLE)?;
    let extra = serde_json::to_string(&EXTRA_ORDERS)?;
    let out = Command::new("python3")
        .args(["-c", SCRIPT, &table, &extra])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "the dp-accounting script failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    let lines = String::from_utf8(out.stdout)?
        .lines()
        .map(serde_json::from_str::<Line>)
        .collect::<Result<Vec<_>, _>>()?;

    let (mut epsilon_rows, mut rdp_rows, mut rdp_values) = (0_usize, 0_usize, 0_usize);
    let (mut worst_eps, mut worst_rdp) = (0.0_f64, 0.0_f64);
    for line in &lines {
        match line {
            Line::Version {
                version,
                default_orders,
            } => {
                eprintln!("dp-accounting {version}");
                assert_eq!(
                    default_orders.as_slice(),
                    DEFAULT_ORDERS,
                    "DEFAULT_ORDERS differs from dp-accounting {version}'s DEFAULT_RDP_ORDERS"
                );
            }
            &Line::Epsilon {
                q,
                sigma,
                steps,
                delta,
                epsilon: theirs,
                order: their_order,
            } => {
                let theirs = theirs.unwrap_or(f64::INFINITY);
                let (ours, our_order) = epsilon(q, sigma, steps, delta, DEFAULT_ORDERS)?;
                let diff = relative(ours, theirs);
                eprintln!(
                    "q = {q:<8} σ = {sigma:<4} steps = {steps:<6} δ = {delta:e}: ε python = \
                     {theirs:.12} (α {their_order}) rust = {ours:.12} (α {our_order}), \
                     rel {diff:.2e}"
                );
                assert!(
                    diff <= EPSILON_TOLERANCE,
                    "q = {q}, σ = {sigma}, steps = {steps}, δ = {delta}: python ε = {theirs}, \
                     ours {ours} (rel {diff:e})"
                );
                assert_eq!(
                    our_order, their_order,
                    "q = {q}, σ = {sigma}, steps = {steps}, δ = {delta}: optimal order"
                );
                worst_eps = worst_eps.max(diff);
                epsilon_rows += 1;
            }
            Line::Rdp {
                q,
                sigma,
                orders,
                rdp,
            } => {
                assert_eq!(orders.len(), rdp.len());
                let mut row_worst = 0.0_f64;
                for (&order, theirs) in orders.iter().zip(rdp) {
                    let theirs = theirs.unwrap_or(f64::INFINITY);
                    let ours = rdp_sampled_gaussian(*q, *sigma, order)?;
                    let diff = relative(ours, theirs);
                    assert!(
                        diff <= RDP_TOLERANCE,
                        "q = {q}, σ = {sigma}, α = {order}: python RDP = {theirs:e}, ours \
                         {ours:e} (rel {diff:e})"
                    );
                    row_worst = row_worst.max(diff);
                    rdp_values += 1;
                }
                eprintln!(
                    "q = {q:<8} σ = {sigma:<4}: per-step RDP at {} orders, max rel {row_worst:.2e}",
                    orders.len()
                );
                worst_rdp = worst_rdp.max(row_worst);
                rdp_rows += 1;
            }
        }
    }
    assert_eq!(epsilon_rows, TABLE.len(), "one ε per setting");
    assert_eq!(rdp_rows, TABLE.len(), "one RDP row per setting");
    assert_eq!(
        rdp_values,
        TABLE.len() * (DEFAULT_ORDERS.len() + EXTRA_ORDERS.len())
    );
    eprintln!("max relative difference: ε {worst_eps:e}, per-step RDP {worst_rdp:e}");
    Ok(())
}
