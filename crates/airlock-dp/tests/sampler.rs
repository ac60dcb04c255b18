//! The samplers are what they claim: one large release of zeros, compared with the exact CDF
//! of the declared distribution at the returned scale by a Kolmogorov–Smirnov test.
//!
//! For a distribution on the integers both the empirical and the declared CDF are step
//! functions that only move at integers, so the supremum of `|F_n − F|` over the reals is the
//! maximum over integer points (the left limit at `x` is the value at `x − 1`, also visited).
//! The continuous-case critical value is conservative for discrete distributions, so the
//! false-alarm rate is at most α = 0.001 per comparison; the power check below shows that a
//! 1.5× wrong scale is rejected.

use std::error::Error;

use airlock_dp::mechanism::{IntegerRelease, Mechanism, Share, release_integers};

type TestResult = Result<(), Box<dyn Error>>;

/// Sample size.
const N: usize = 10_000;

/// The asymptotic Kolmogorov–Smirnov critical value at α = 0.001 for `n` observations.
fn critical_value(n: usize) -> f64 {
    1.949 / (n as f64).sqrt()
}

/// The declared noise family, as an unnormalised log-density on the integers.
#[derive(Debug, Clone, Copy)]
enum Family {
    Laplace,
    Gaussian,
}

impl Family {
    fn log_weight(self, x: i64, scale: f64) -> f64 {
        let x = x as f64;
        match self {
            Family::Laplace => -x.abs() / scale,
            Family::Gaussian => -(x * x) / (2.0 * scale * scale),
        }
    }
}

/// The half-width of the support considered: beyond it the mass is below e^-60.
fn half_width(scale: f64) -> i64 {
    (60.0 * scale + 10.0).ceil() as i64
}

/// The KS statistic of `sample` against `family` at `scale`, over `|x| ≤ half_width(scale)`.
/// A sample value outside that range is an error (its probability is negligible).
fn ks_statistic(sample: &[i64], family: Family, scale: f64) -> Result<f64, Box<dyn Error>> {
    let w = half_width(scale);
    let support: Vec<i64> = (-w..=w).collect();

    let weights: Vec<f64> = support
        .iter()
        .map(|&x| family.log_weight(x, scale).exp())
        .collect();
    let total: f64 = weights.iter().sum();

    let mut counts = vec![0_u64; support.len()];
    for &v in sample {
        let slot = v
            .checked_add(w)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| counts.get_mut(i))
            .ok_or_else(|| format!("sample value {v} outside the support ±{w}"))?;
        *slot += 1;
    }

    let n = sample.len() as f64;
    let (mut cdf, mut ecdf, mut d) = (0.0_f64, 0_u64, 0.0_f64);
    for (weight, count) in weights.iter().zip(&counts) {
        cdf += weight / total;
        ecdf += count;
        d = d.max((ecdf as f64 / n - cdf).abs());
    }
    Ok(d)
}

fn zeros() -> IntegerRelease {
    IntegerRelease {
        values: vec![0; N],
        l1: 1,
        l2: 1,
    }
}

#[test]
#[allow(
    clippy::print_stderr,
    reason = "the KS figures are the point of the test"
)]
fn discrete_laplace_matches_its_declared_distribution() -> TestResult {
    let noisy = release_integers(&zeros(), Mechanism::DiscreteLaplace, Share::Epsilon(0.5))?;
    assert_eq!(noisy.values.len(), N);
    assert!((noisy.scale - 2.0).abs() < 1e-3, "scale {}", noisy.scale);

    let critical = critical_value(N);
    let d = ks_statistic(&noisy.values, Family::Laplace, noisy.scale)?;
    eprintln!(
        "discrete Laplace, scale {}: D = {d:.5}, critical value (α = 0.001) = {critical:.5}",
        noisy.scale
    );
    assert!(d < critical, "D = {d} ≥ {critical}");

    // Power: the same sample against a 1.5× wider discrete Laplace must be rejected.
    let wrong = ks_statistic(&noisy.values, Family::Laplace, 1.5 * noisy.scale)?;
    eprintln!(
        "discrete Laplace against scale {}: D = {wrong:.5} (must exceed {critical:.5})",
        1.5 * noisy.scale
    );
    assert!(
        wrong > critical,
        "the test cannot tell 1.5× the scale: D = {wrong}"
    );
    Ok(())
}

#[test]
#[allow(
    clippy::print_stderr,
    reason = "the KS figures are the point of the test"
)]
fn discrete_gaussian_matches_its_declared_distribution() -> TestResult {
    let noisy = release_integers(&zeros(), Mechanism::DiscreteGaussian, Share::Rho(0.125))?;
    assert_eq!(noisy.values.len(), N);
    assert!((noisy.scale - 2.0).abs() < 1e-3, "scale {}", noisy.scale);

    let critical = critical_value(N);
    let d = ks_statistic(&noisy.values, Family::Gaussian, noisy.scale)?;
    eprintln!(
        "discrete Gaussian, scale {}: D = {d:.5}, critical value (α = 0.001) = {critical:.5}",
        noisy.scale
    );
    assert!(d < critical, "D = {d} ≥ {critical}");

    // Power, as for the Laplace: a 1.5× wider discrete Gaussian must be rejected.
    let wrong = ks_statistic(&noisy.values, Family::Gaussian, 1.5 * noisy.scale)?;
    eprintln!(
        "discrete Gaussian against scale {}: D = {wrong:.5} (must exceed {critical:.5})",
        1.5 * noisy.scale
    );
    assert!(
        wrong > critical,
        "the test cannot tell 1.5× the scale: D = {wrong}"
    );
    Ok(())
}
