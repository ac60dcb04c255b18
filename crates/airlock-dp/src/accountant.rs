//! Rényi-DP accounting for DP-SGD: the Poisson-subsampled Gaussian mechanism.
//!
//! The question this module answers: after `steps` rounds of DP-SGD, each of which samples
//! every example independently with probability `q` and adds Gaussian noise of standard
//! deviation `noise_multiplier × clip norm` to the clipped sum, what (ε, δ) has been spent,
//! and what noise multiplier meets a target ε?
//!
//! The answer is Google's `dp_accounting.rdp.RdpAccountant` (version 0.6.0) for
//! `SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(σ)), steps)` under the
//! add-or-remove-one relation, ported line by line:
//!
//! - the RDP of one step at order α is `log(A_α) / (α - 1)` (Mironov, Talwar and Zhang,
//!   "Rényi Differential Privacy of the Sampled Gaussian Mechanism", 2019): a finite binomial
//!   sum for integer α, two converging series (their Sec. 3.3) for fractional α, both in log
//!   space so that nothing overflows;
//! - RDP composes by addition, so `steps` steps cost `steps ×` one step at every order;
//! - (ε, δ) comes from the conversion of Canonne, Kamath and Steinke / Asoodeh et al.
//!   (`ε = r + log(1 - 1/α) - log(δ α) / (α - 1)`), minimised over the orders.
//!
//! Being faithful matters more here than being clever: a DP-SGD run reports ε, and that number
//! must be the one every other tool gives for the same settings. So the special functions are
//! the ones dp-accounting gets from SciPy (Cephes' `lgam` for `gammaln`, and `log_ndtr` for
//! the log of erfc), and the oracle test `tests/dp_accounting_oracle.rs` checks the results
//! against the Python package.

use std::f64::consts::{FRAC_1_SQRT_2, LN_2, PI, SQRT_2};

use statrs::function::erf::erfc;

use crate::DpError;

/// The RDP orders that `dp_accounting.rdp.RdpAccountant` uses by default (0.6.0:
/// `[1 + x / 10 for x in 1..100] + [11..64) + [128, 256, 512, 1024]`): dense near 1, where
/// the optimum lies for large ε or many steps, sparse above.
pub const DEFAULT_ORDERS: &[f64] = &[
    1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6, 2.7, 2.8, 2.9,
    3.0, 3.1, 3.2, 3.3, 3.4, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0, 4.1, 4.2, 4.3, 4.4, 4.5, 4.6, 4.7, 4.8,
    4.9, 5.0, 5.1, 5.2, 5.3, 5.4, 5.5, 5.6, 5.7, 5.8, 5.9, 6.0, 6.1, 6.2, 6.3, 6.4, 6.5, 6.6, 6.7,
    6.8, 6.9, 7.0, 7.1, 7.2, 7.3, 7.4, 7.5, 7.6, 7.7, 7.8, 7.9, 8.0, 8.1, 8.2, 8.3, 8.4, 8.5, 8.6,
    8.7, 8.8, 8.9, 9.0, 9.1, 9.2, 9.3, 9.4, 9.5, 9.6, 9.7, 9.8, 9.9, 10.0, 10.1, 10.2, 10.3, 10.4,
    10.5, 10.6, 10.7, 10.8, 10.9, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20.0, 21.0,
    22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0, 32.0, 33.0, 34.0, 35.0, 36.0, 37.0,
    38.0, 39.0, 40.0, 41.0, 42.0, 43.0, 44.0, 45.0, 46.0, 47.0, 48.0, 49.0, 50.0, 51.0, 52.0, 53.0,
    54.0, 55.0, 56.0, 57.0, 58.0, 59.0, 60.0, 61.0, 62.0, 63.0, 128.0, 256.0, 512.0, 1024.0,
];

/// dp-accounting's cap on the terms of the fractional-order series; past it the order is
/// dropped (its RDP is infinite), as there.
const MAX_STEPS_LOG_A_FRAC: u32 = 1000;

/// Integer orders cost one term each; this bound keeps a stray huge order from spinning.
const MAX_INTEGER_ORDER: f64 = 1_048_576.0;

/// The σ searched by [`noise_multiplier_for`]: below 0.3 DP-SGD's ε is useless and the
/// series converge slowly; above 1000 no training signal survives.
const SIGMA_SEARCH_MIN: f64 = 0.3;
const SIGMA_SEARCH_MAX: f64 = 1000.0;
/// The relative width at which the σ bisection stops.
const SIGMA_SEARCH_TOLERANCE: f64 = 1e-6;

/// The RDP at `order` of one step of the Poisson-subsampled Gaussian mechanism: each record is
/// included with probability `q`, and Gaussian noise with standard deviation
/// `noise_multiplier` times the L2 sensitivity is added.
///
/// Computed as dp-accounting computes it: `q == 0` costs nothing, `noise_multiplier == 0`
/// (or an infinite order) costs infinity, `q == 1` is the plain Gaussian `α / (2σ²)`, and
/// otherwise `log(A_α) / (α - 1)`. A fractional order whose series does not converge within
/// 1000 terms gives infinity (dp-accounting logs a warning and does the same).
///
/// # Errors
///
/// [`DpError::Privacy`] when `q` is outside [0, 1], `noise_multiplier` is negative or not
/// finite, or `order` is not above 1 (or is an integer above 2²⁰).
pub fn rdp_sampled_gaussian(q: f64, noise_multiplier: f64, order: f64) -> Result<f64, DpError> {
    check_sampling_rate(q)?;
    check_noise_multiplier(noise_multiplier)?;
    check_order(order)?;
    Ok(rdp_one_step(q, noise_multiplier, order))
}

/// The (ε, δ) spent by `steps` steps of the Poisson-subsampled Gaussian mechanism at the
/// given `delta`, minimised over `orders` (usually [`DEFAULT_ORDERS`]): returns
/// `(ε, the order that gave it)`, as dp-accounting's `get_epsilon_and_optimal_order` does.
///
/// ε may be infinite (`noise_multiplier == 0`, or no order gives a finite bound).
///
/// # Errors
///
/// [`DpError::Privacy`] when `q` is outside [0, 1], `noise_multiplier` is negative or not
/// finite, `steps` is 0, `delta` is outside (0, 1), or `orders` is empty or holds an order
/// not above 1; [`DpError::Internal`] if the arithmetic produced NaN.
pub fn epsilon(
    q: f64,
    noise_multiplier: f64,
    steps: u64,
    delta: f64,
    orders: &[f64],
) -> Result<(f64, f64), DpError> {
    check_sampling_rate(q)?;
    check_noise_multiplier(noise_multiplier)?;
    check_steps(steps)?;
    check_delta(delta)?;
    if orders.is_empty() {
        return Err(DpError::Privacy("the list of RDP `orders` is empty".into()));
    }
    for &order in orders {
        check_order(order)?;
    }
    // dp-accounting multiplies the per-step vector by the integer count in numpy, i.e. in f64.
    let composed = orders
        .iter()
        .map(|&order| steps as f64 * rdp_one_step(q, noise_multiplier, order));
    rdp_to_epsilon(orders, composed, delta)
}

/// The smallest noise multiplier σ, to 1e-6 relative, for which `steps` steps at sampling
/// rate `q` spend at most `target_epsilon` at `delta` (ε over [`DEFAULT_ORDERS`]).
///
/// σ is searched in [0.3, 1000] by bisection (ε falls as σ grows); if 0.3 already meets the
/// target, 0.3 is returned.
///
/// # Errors
///
/// [`DpError::Privacy`] when an argument is out of range (as for [`epsilon`];
/// `target_epsilon` must be positive and finite) or when even σ = 1000 spends more than
/// `target_epsilon`.
pub fn noise_multiplier_for(
    q: f64,
    steps: u64,
    target_epsilon: f64,
    delta: f64,
) -> Result<f64, DpError> {
    check_sampling_rate(q)?;
    check_steps(steps)?;
    check_delta(delta)?;
    if !(target_epsilon > 0.0 && target_epsilon.is_finite()) {
        return Err(DpError::Privacy(format!(
            "the target `epsilon` must be positive and finite, got {target_epsilon}"
        )));
    }
    let spent = |sigma: f64| epsilon(q, sigma, steps, delta, DEFAULT_ORDERS).map(|(eps, _)| eps);

    let worst = spent(SIGMA_SEARCH_MAX)?;
    if worst > target_epsilon {
        return Err(DpError::Privacy(format!(
            "`epsilon` = {target_epsilon} at `delta` = {delta} is out of reach: even a noise \
             multiplier of {SIGMA_SEARCH_MAX} spends ε = {worst} over {steps} steps at \
             sampling rate {q}"
        )));
    }
    let (mut low, mut high) = (SIGMA_SEARCH_MIN, SIGMA_SEARCH_MAX);
    if spent(low)? <= target_epsilon {
        return Ok(low);
    }
    // Invariant: ε(low) > target ≥ ε(high).
    while high - low > SIGMA_SEARCH_TOLERANCE * high {
        let mid = low + (high - low) / 2.0;
        if spent(mid)? <= target_epsilon {
            high = mid;
        } else {
            low = mid;
        }
    }
    Ok(high)
}

fn check_sampling_rate(q: f64) -> Result<(), DpError> {
    if (0.0..=1.0).contains(&q) {
        Ok(())
    } else {
        Err(DpError::Privacy(format!(
            "the sampling rate `q` must be in [0, 1], got {q}"
        )))
    }
}

fn check_noise_multiplier(sigma: f64) -> Result<(), DpError> {
    if sigma >= 0.0 && sigma.is_finite() {
        Ok(())
    } else {
        Err(DpError::Privacy(format!(
            "the `noise_multiplier` must be finite and non-negative, got {sigma}"
        )))
    }
}

fn check_steps(steps: u64) -> Result<(), DpError> {
    if steps >= 1 {
        Ok(())
    } else {
        Err(DpError::Privacy("`steps` must be at least 1".into()))
    }
}

fn check_delta(delta: f64) -> Result<(), DpError> {
    if delta > 0.0 && delta < 1.0 {
        Ok(())
    } else {
        Err(DpError::Privacy(format!(
            "`delta` must be in (0, 1), got {delta}"
        )))
    }
}

fn check_order(order: f64) -> Result<(), DpError> {
    if order.is_nan() || order <= 1.0 {
        return Err(DpError::Privacy(format!(
            "an RDP order must be above 1, got {order}"
        )));
    }
    if order.fract() == 0.0 && order > MAX_INTEGER_ORDER {
        return Err(DpError::Privacy(format!(
            "an integer RDP order must be at most {MAX_INTEGER_ORDER}, got {order}"
        )));
    }
    Ok(())
}

/// `compute_one_order` of dp-accounting's `_compute_rdp_poisson_subsampled_gaussian`, on
/// checked arguments.
fn rdp_one_step(q: f64, sigma: f64, order: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if order.is_infinite() || sigma == 0.0 {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return order / (2.0 * (sigma * sigma));
    }
    let log_a = if order.fract() == 0.0 {
        // check_order bounds integer orders by 2^20, so the cast is exact.
        log_a_int(q, sigma, order as u64)
    } else {
        log_a_frac(q, sigma, order)
    };
    log_a / (order - 1.0)
}

/// log(A_α) for integer α and 0 < q < 1: the binomial expansion
/// `A_α = Σ_i C(α, i) q^i (1-q)^(α-i) exp((i² - i) / 2σ²)`, summed in log space.
fn log_a_int(q: f64, sigma: f64, alpha: u64) -> f64 {
    let alpha_f = alpha as f64;
    let log_q = q.ln();
    let log1mq = (-q).ln_1p();
    let two_var = 2.0 * (sigma * sigma);
    let mut log_a = f64::NEG_INFINITY;
    for i in 0..=alpha {
        let i_f = i as f64;
        let log_coef = log_comb(alpha_f, i_f) + i_f * log_q + (alpha_f - i_f) * log1mq;
        // i ≤ 2^20, so i² - i is exact in u64 and in f64, as Python's integers are.
        let s = log_coef + (i * i - i) as f64 / two_var;
        log_a = log_add(log_a, s);
    }
    log_a
}

/// log(A_α) for fractional α and 0 < q < 1: the integrals over (-∞, z0] and [z0, ∞) as two
/// series (Mironov, Talwar and Zhang, Sec. 3.3), stopped when both terms are falling and
/// negligible (e^-30) next to the total.
fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> f64 {
    let mut log_a0 = f64::NEG_INFINITY;
    let mut log_a1 = f64::NEG_INFINITY;
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let log_q = q.ln();
    let log1mq = (-q).ln_1p();
    let log_half = 0.5_f64.ln();
    let two_var = 2.0 * (sigma * sigma);
    let scale = SQRT_2 * sigma;

    let mut last_s0 = f64::NEG_INFINITY;
    let mut last_s1 = f64::NEG_INFINITY;
    for i in 0..MAX_STEPS_LOG_A_FRAC {
        let i_f = f64::from(i);
        let log_coef = log_comb(alpha, i_f);
        let j = alpha - i_f;

        let log_t0 = log_coef + i_f * log_q + j * log1mq;
        let log_t1 = log_coef + j * log_q + i_f * log1mq;

        let log_e0 = log_half + log_erfc((i_f - z0) / scale);
        let log_e1 = log_half + log_erfc((z0 - j) / scale);

        let log_s0 = log_t0 + (i_f * i_f - i_f) / two_var + log_e0;
        let log_s1 = log_t1 + (j * j - j) / two_var + log_e1;

        log_a0 = log_add(log_a0, log_s0);
        log_a1 = log_add(log_a1, log_s1);
        let total = log_add(log_a0, log_a1);

        if log_s0 < last_s0 && log_s1 < last_s1 && log_s0.max(log_s1) < total - 30.0 {
            return total;
        }
        last_s0 = log_s0;
        last_s1 = log_s1;
    }
    f64::INFINITY
}

/// dp-accounting's `compute_epsilon`: the best (ε, order) over the orders, from RDP values.
fn rdp_to_epsilon(
    orders: &[f64],
    rdp: impl Iterator<Item = f64>,
    delta: f64,
) -> Result<(f64, f64), DpError> {
    let mut best: Option<(f64, f64)> = None;
    for (&alpha, r) in orders.iter().zip(rdp) {
        let eps = if r < 0.0 {
            // Only numerical trouble makes RDP negative; dp-accounting then reports 0.
            0.0
        } else if delta * delta + (-r).exp_m1() > 0.0 {
            // δ ≥ sqrt(1 - exp(-KL)) already: the KL bound gives ε = 0.
            0.0
        } else if alpha > 1.01 {
            // Canonne-Kamath-Steinke / Asoodeh et al.; unstable as α → 1, hence the floor.
            r + (-1.0 / alpha).ln_1p() - (delta * alpha).ln() / (alpha - 1.0)
        } else {
            f64::INFINITY
        };
        if eps.is_nan() {
            return Err(DpError::Internal(format!(
                "the ε bound at RDP order {alpha} is not a number"
            )));
        }
        // Strictly smaller only: ties keep the first order, as numpy's argmin does.
        if best.is_none_or(|(best_eps, _)| eps < best_eps) {
            best = Some((eps, alpha));
        }
    }
    best.map(|(eps, alpha)| (eps.max(0.0), alpha))
        .ok_or_else(|| DpError::Internal("no RDP order to convert".into()))
}

/// log(exp(x) + exp(y)) without overflow.
fn log_add(log_x: f64, log_y: f64) -> f64 {
    let (a, b) = (log_x.min(log_y), log_x.max(log_y));
    if a == f64::NEG_INFINITY {
        return b;
    }
    (a - b).exp().ln_1p() + b
}

/// log of the binomial coefficient C(n, k) for real n, as `gammaln` differences.
fn log_comb(n: f64, k: f64) -> f64 {
    ln_gamma(n + 1.0) - ln_gamma(k + 1.0) - ln_gamma(n - k + 1.0)
}

/// log(erfc(x)), as dp-accounting computes it: `log(2) + scipy.special.log_ndtr(-x √2)`.
///
/// SciPy's `log_ndtr(z)` is `log(erfcx(-t) / 2) - t²` for z < -1 and `log1p(-erfc(t) / 2)`
/// otherwise, with t = z / √2: the scaled erfcx keeps full precision far in the tail, where
/// erfc itself underflows (x above about 26.5).
fn log_erfc(x: f64) -> f64 {
    let z = -x * SQRT_2;
    let t = z * FRAC_1_SQRT_2;
    let log_ndtr = if z < -1.0 {
        let t2 = t * t;
        (erfcx_positive(-t, t2) / 2.0).ln() - t2
    } else {
        (-erfc(t) / 2.0).ln_1p()
    };
    LN_2 + log_ndtr
}

/// erfcx(y) = exp(y²) erfc(y) for y > 1/√2, given `y_sq` = y * y as rounded by the caller.
///
/// Below 26 erfc(y) is a normal float and exp(y²) does not overflow, so the product is
/// accurate (the rounding of y² cancels against the caller's `- y²`). Above, the asymptotic
/// series `1/(y√π) Σ (-1)^n (2n-1)!! / (2y²)^n` converges to full precision in a few terms.
fn erfcx_positive(y: f64, y_sq: f64) -> f64 {
    if y < 26.0 {
        return y_sq.exp() * erfc(y);
    }
    let ratio = 1.0 / (2.0 * y_sq);
    let mut term = 1.0_f64;
    let mut sum = 1.0_f64;
    for n in 1..40_u32 {
        term *= -f64::from(2 * n - 1) * ratio;
        sum += term;
        if term.abs() < 1e-17 * sum.abs() {
            break;
        }
    }
    sum / (y * PI.sqrt())
}

/// log|Γ(x)|, ported from Cephes' `lgam` as SciPy ships it (`scipy.special.gammaln`), so
/// that the binomial coefficients round as dp-accounting's do: log_a is often a small
/// difference of large log-factorials, and another gammaln would move it in the ninth digit.
fn ln_gamma(x: f64) -> f64 {
    // Stirling's series for 13 ≤ x < 1000 (Cephes' A).
    const A: [f64; 5] = [
        8.116_141_674_705_085e-4,
        -5.950_619_042_843_014e-4,
        7.936_503_404_577_169e-4,
        -2.777_777_777_300_997e-3,
        8.333_333_333_333_319e-2,
    ];
    // Rational approximation on [2, 3] (Cephes' B / C; C's leading 1 is implicit).
    const B: [f64; 6] = [
        -1.378_251_525_691_208_6e3,
        -3.880_163_151_346_378_4e4,
        -3.316_129_927_388_712e5,
        -1.162_370_974_927_623e6,
        -1.721_737_008_208_396_6e6,
        -8.535_556_642_457_654e5,
    ];
    const C: [f64; 6] = [
        -3.518_157_014_365_234_5e2,
        -1.706_421_066_518_811_5e4,
        -2.205_285_905_538_544_5e5,
        -1.139_334_443_679_825_1e6,
        -2.532_523_071_775_829_4e6,
        -2.018_891_414_335_327_7e6,
    ];
    const LS2PI: f64 = 0.918_938_533_204_672_8;
    const LOGPI: f64 = 1.144_729_885_849_400_2;
    const MAXLGM: f64 = 2.556_348e305;

    if !x.is_finite() {
        return x;
    }
    if x < -34.0 {
        // Reflection: Γ(x) Γ(1-x) = π / sin(πx).
        let q = -x;
        let w = ln_gamma(q);
        let mut p = q.floor();
        if p == q {
            return f64::INFINITY;
        }
        let mut z = q - p;
        if z > 0.5 {
            p += 1.0;
            z = p - q;
        }
        let z = q * sin_pi(z);
        if z == 0.0 {
            return f64::INFINITY;
        }
        return LOGPI - z.ln() - w;
    }
    if x < 13.0 {
        // Recur into [2, 3], carrying the product of the shifts in z.
        let mut z = 1.0;
        let mut p = 0.0;
        let mut u = x;
        while u >= 3.0 {
            p -= 1.0;
            u = x + p;
            z *= u;
        }
        while u < 2.0 {
            if u == 0.0 {
                return f64::INFINITY;
            }
            z /= u;
            p += 1.0;
            u = x + p;
        }
        let z = z.abs();
        if u == 2.0 {
            return z.ln();
        }
        p -= 2.0;
        let x = x + p;
        let p = x * polevl(x, &B) / p1evl(x, &C);
        return z.ln() + p;
    }
    if x > MAXLGM {
        return f64::INFINITY;
    }
    let q = (x - 0.5) * x.ln() - x + LS2PI;
    if x >= 1000.0 {
        if x > 1.0e8 {
            return q;
        }
        let p = 1.0 / (x * x);
        let p = ((7.936_507_936_507_937e-4 * p - 2.777_777_777_777_778e-3) * p
            + 0.083_333_333_333_333_33)
            / x;
        return q + p;
    }
    let p = 1.0 / (x * x);
    q + polevl(p, &A) / x
}

/// Horner's rule, highest coefficient first (Cephes' `polevl`).
fn polevl(x: f64, coefficients: &[f64]) -> f64 {
    coefficients.iter().fold(0.0, |acc, &c| acc * x + c)
}

/// Horner's rule with an implicit leading coefficient of 1 (Cephes' `p1evl`).
fn p1evl(x: f64, coefficients: &[f64]) -> f64 {
    coefficients.iter().fold(1.0, |acc, &c| acc * x + c)
}

/// sin(πx), exact at the integers (SciPy's `sinpi`).
fn sin_pi(x: f64) -> f64 {
    let (x, sign) = if x.is_sign_negative() {
        (-x, -1.0)
    } else {
        (x, 1.0)
    };
    let r = x % 2.0;
    if r < 0.5 {
        sign * (PI * r).sin()
    } else if r > 1.5 {
        sign * (PI * (r - 2.0)).sin()
    } else {
        -sign * (PI * (r - 1.0)).sin()
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        reason = "tests fail by panicking"
    )]

    use super::*;

    fn relative(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs()
    }

    #[test]
    fn per_step_rdp_matches_dp_accounting() {
        // From dp-accounting 0.6.0's `_compute_rdp_poisson_subsampled_gaussian(0.01, 1.0, [α])`.
        for (order, expected) in [
            (1.5, 0.000_132_368_502_939_930_48),
            (2.0, 0.000_171_813_422_074_551_62),
            (2.5, 0.000_217_772_024_240_643_54),
            (32.0, 11.246_275_937_048_072),
        ] {
            let ours = rdp_sampled_gaussian(0.01, 1.0, order).unwrap();
            assert!(
                relative(ours, expected) < 1e-12,
                "α = {order}: {ours} vs {expected}"
            );
        }
    }

    #[test]
    fn epsilon_matches_dp_accounting() {
        // MNIST-style DP-SGD (60 000 examples, batches of 256, 60 epochs, σ = 1.1) and a
        // round setting, from `RdpAccountant().get_epsilon_and_optimal_order` (0.6.0).
        let (eps, order) = epsilon(256.0 / 60_000.0, 1.1, 14_062, 1e-5, DEFAULT_ORDERS).unwrap();
        assert!(relative(eps, 2.596_555_869_794_303_6) < 1e-10, "ε = {eps}");
        assert!((order - 8.1).abs() < 1e-12, "order {order}");
        let (eps, order) = epsilon(0.01, 1.0, 1000, 1e-5, DEFAULT_ORDERS).unwrap();
        assert!(relative(eps, 2.101_366_525_420_273) < 1e-10, "ε = {eps}");
        assert!((order - 7.8).abs() < 1e-12, "order {order}");
    }

    #[test]
    fn edge_cases_follow_dp_accounting() {
        assert_eq!(rdp_sampled_gaussian(0.0, 0.0, 2.0).unwrap(), 0.0);
        assert_eq!(rdp_sampled_gaussian(0.5, 0.0, 2.0).unwrap(), f64::INFINITY);
        // q = 1 is the Gaussian mechanism: α / (2σ²).
        let full = rdp_sampled_gaussian(1.0, 2.0, 3.5).unwrap();
        assert!(relative(full, 3.5 / 8.0) < 1e-15);
        let (eps, _) = epsilon(0.1, 0.0, 10, 1e-5, DEFAULT_ORDERS).unwrap();
        assert_eq!(eps, f64::INFINITY);
    }

    #[test]
    fn bad_arguments_are_refused() {
        for (q, sigma, order) in [
            (-0.1, 1.0, 2.0),
            (1.1, 1.0, 2.0),
            (f64::NAN, 1.0, 2.0),
            (0.1, -1.0, 2.0),
            (0.1, f64::INFINITY, 2.0),
            (0.1, f64::NAN, 2.0),
            (0.1, 1.0, 1.0),
            (0.1, 1.0, 0.5),
            (0.1, 1.0, f64::NAN),
            (0.1, 1.0, 1e9),
        ] {
            assert!(
                matches!(
                    rdp_sampled_gaussian(q, sigma, order),
                    Err(DpError::Privacy(_))
                ),
                "q = {q}, σ = {sigma}, α = {order}"
            );
        }
        for (steps, delta, orders) in [
            (0, 1e-5, DEFAULT_ORDERS),
            (10, 0.0, DEFAULT_ORDERS),
            (10, 1.0, DEFAULT_ORDERS),
            (10, f64::NAN, DEFAULT_ORDERS),
            (10, 1e-5, &[][..]),
            (10, 1e-5, &[2.0, 1.0][..]),
        ] {
            assert!(
                matches!(
                    epsilon(0.01, 1.0, steps, delta, orders),
                    Err(DpError::Privacy(_))
                ),
                "steps = {steps}, δ = {delta}, orders = {orders:?}"
            );
        }
        assert!(matches!(
            noise_multiplier_for(0.01, 100, 0.0, 1e-5),
            Err(DpError::Privacy(_))
        ));
    }

    #[test]
    fn epsilon_falls_with_noise_and_grows_with_steps_and_rate() {
        let eps = |q: f64, sigma: f64, steps: u64| {
            epsilon(q, sigma, steps, 1e-5, DEFAULT_ORDERS).unwrap().0
        };
        let sigmas = [0.6, 0.8, 1.0, 1.5, 2.0, 4.0];
        for pair in sigmas.windows(2) {
            assert!(
                eps(0.01, pair[0], 1000) > eps(0.01, pair[1], 1000),
                "σ {pair:?}"
            );
        }
        let steps = [10, 100, 1000, 10_000];
        for pair in steps.windows(2) {
            assert!(
                eps(0.01, 1.0, pair[0]) < eps(0.01, 1.0, pair[1]),
                "steps {pair:?}"
            );
        }
        let rates = [0.001, 0.005, 0.01, 0.05, 0.1];
        for pair in rates.windows(2) {
            assert!(
                eps(pair[0], 1.0, 1000) < eps(pair[1], 1.0, 1000),
                "q {pair:?}"
            );
        }
    }

    #[test]
    fn noise_multiplier_for_inverts_epsilon() {
        let (q, steps, delta) = (0.01, 1000, 1e-5);
        let sigma = noise_multiplier_for(q, steps, 2.0, delta).unwrap();
        let (eps, _) = epsilon(q, sigma, steps, delta, DEFAULT_ORDERS).unwrap();
        assert!(eps <= 2.0, "ε at the returned σ = {sigma}: {eps}");
        // A hair less noise spends more than the target: σ is the smallest.
        let (eps_less, _) = epsilon(q, sigma * (1.0 - 1e-5), steps, delta, DEFAULT_ORDERS).unwrap();
        assert!(eps_less > 2.0, "ε just below σ = {sigma}: {eps_less}");
        // Met already at the bottom of the range.
        assert_eq!(noise_multiplier_for(0.001, 1, 50.0, delta).unwrap(), 0.3);
        // Out of reach even at σ = 1000.
        let err = noise_multiplier_for(1.0, 1_000_000, 1e-3, delta).unwrap_err();
        assert!(
            matches!(err, DpError::Privacy(ref m) if m.contains("out of reach")),
            "{err}"
        );
    }

    #[test]
    fn ln_gamma_is_scipy_gammaln() {
        // `scipy.special.gammaln` (SciPy 1.17.1) at points in each branch of Cephes' lgam.
        for (x, expected) in [
            (1.0, 0.0),
            (2.0, 0.0),
            (3.0, LN_2),
            (5.5, 3.957_813_967_618_716_5),
            (14.5, 23.862_765_841_689_09),
            (513.0, 2_686.060_471_626_348_3),
            (1500.0, 9_467.092_964_530_666),
            (-0.5, 1.265_512_123_484_645_4),
            (-10.2, -13.900_530_963_695_15),
            (-35.3, -91.851_644_055_402_73),
            (-500.7, -2_614.325_207_936_645),
        ] {
            let ours = ln_gamma(x);
            assert!(
                (ours - expected).abs() <= 4.0 * f64::EPSILON * expected.abs().max(1.0),
                "lgamma({x}) = {ours}, scipy {expected}"
            );
        }
    }

    #[test]
    fn log_erfc_covers_the_tail() {
        // log erfc(x) against statrs where erfc is representable, and the asymptote
        // -x² - log(x √π) far beyond it.
        for x in [-3.0, -0.5, 0.0, 0.5, 1.0, 3.0, 10.0, 25.0, 26.5] {
            let expected = erfc(x).ln();
            assert!(
                (log_erfc(x) - expected).abs() < 1e-12 * expected.abs().max(1.0),
                "x = {x}: {} vs {expected}",
                log_erfc(x)
            );
        }
        let x = 1000.0_f64;
        let asymptote = -x * x - (x * PI.sqrt()).ln();
        assert!((log_erfc(x) - asymptote).abs() < 1e-6);
    }
}
