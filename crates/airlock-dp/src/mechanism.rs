//! Noise, through OpenDP's vetted constructors only: the discrete Gaussian (zCDP) and the
//! discrete Laplace (pure ε-DP) over integer vectors, and OpenDP's private quantile. Every
//! scale is checked against OpenDP's own privacy map before anything is sampled, and the
//! charge recorded is that map's value, not our arithmetic.
//!
//! Accounting is in zCDP (ρ) throughout: a pure ε-DP release is ε²/2-zCDP (Bun and Steinke
//! 2016, Proposition 1.4), so budgets of both kinds compose by adding ρ. (ε, δ) figures are
//! OpenDP's conversion of ρ (Canonne, Kamath and Steinke 2020).

use opendp::accuracy::{discrete_gaussian_scale_to_accuracy, discrete_laplacian_scale_to_accuracy};
use opendp::combinators::ConcentratedMeasure;
use opendp::domains::{AtomDomain, VectorDomain};
use opendp::measurements::{make_gaussian, make_laplace, make_noisy_max, make_private_quantile};
use opendp::measures::{MaxDivergence, ZeroConcentratedDivergence};
use opendp::metrics::{InsertDeleteDistance, L1Distance, L2Distance, LInfDistance};
use serde::{Deserialize, Serialize};
use statrs::function::erf::erfc_inv;

use crate::DpError;

/// What a caller asks to spend on one query.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Privacy {
    /// ε of the whole query.
    pub epsilon: f64,
    /// δ; absent means pure ε-DP (discrete Laplace), present means zCDP (discrete Gaussian)
    /// calibrated so that the query is (ε, δ)-DP.
    pub delta: Option<f64>,
}

/// The largest ε one query may ask for: beyond it the noise protects nobody.
pub const MAX_QUERY_EPSILON: f64 = 10.0;

impl Privacy {
    /// Checks the figures: finite, positive, δ below 1e-3 (a larger δ allows publishing a
    /// record outright with that probability).
    pub fn check(&self) -> Result<(), DpError> {
        if !self.epsilon.is_finite() || self.epsilon <= 0.0 || self.epsilon > MAX_QUERY_EPSILON {
            return Err(DpError::Privacy(format!(
                "epsilon must be a finite number above 0 and at most {MAX_QUERY_EPSILON}"
            )));
        }
        if let Some(delta) = self.delta
            && (!delta.is_finite() || delta <= 0.0 || delta > 1e-3)
        {
            return Err(DpError::Privacy(
                "delta must be a finite number above 0 and at most 0.001".into(),
            ));
        }
        Ok(())
    }

    /// The zCDP charge of the whole query.
    pub fn rho(&self) -> Result<f64, DpError> {
        self.check()?;
        match self.delta {
            None => Ok(pure_to_rho(self.epsilon)),
            Some(delta) => rho_for_epsilon(self.epsilon, delta),
        }
    }

    /// Which mechanism answers.
    pub fn mechanism(&self) -> Mechanism {
        match self.delta {
            None => Mechanism::DiscreteLaplace,
            Some(_) => Mechanism::DiscreteGaussian,
        }
    }
}

/// The noise family of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    /// Discrete Laplace (geometric) noise: pure ε-DP.
    DiscreteLaplace,
    /// Discrete Gaussian noise: ρ-zCDP.
    DiscreteGaussian,
}

impl Mechanism {
    /// Its name in answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::DiscreteLaplace => "discrete-laplace",
            Mechanism::DiscreteGaussian => "discrete-gaussian",
        }
    }
}

/// ε-DP as zCDP.
pub fn pure_to_rho(epsilon: f64) -> f64 {
    epsilon * epsilon / 2.0
}

/// The ε at which a ρ-zCDP release is (ε, δ)-DP, by OpenDP's conversion.
pub fn rho_to_epsilon(rho: f64, delta: f64) -> Result<f64, DpError> {
    if rho == 0.0 {
        return Ok(0.0);
    }
    let profile = ZeroConcentratedDivergence::convert(rho).map_err(opendp_error)?;
    profile.epsilon(delta).map_err(opendp_error)
}

/// The largest ρ whose (ε, δ) conversion is at most `epsilon`: bisection on OpenDP's
/// conversion, which is increasing in ρ.
pub fn rho_for_epsilon(epsilon: f64, delta: f64) -> Result<f64, DpError> {
    // ε ≥ ρ + 2√(ρ ln(1/δ)) bounds ρ from above by ε (and ρ = ε²/2 is always inside).
    let (mut lo, mut hi) = (0.0_f64, epsilon);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if rho_to_epsilon(mid, delta)? <= epsilon {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// A vector of integer aggregates (one per output group) and the most one privacy unit can
/// move it, in L1 and L2 norms.
#[derive(Debug, Clone)]
pub struct IntegerRelease {
    /// The exact values.
    pub values: Vec<i64>,
    /// L1 sensitivity.
    pub l1: i64,
    /// L2 sensitivity (for histograms with one unit's rows all in one group, equal to L1).
    pub l2: i64,
}

/// A noisy vector, its scale, its 95% half-width and what OpenDP's map charged (ρ).
#[derive(Debug, Clone)]
pub struct Noisy {
    /// The noisy values.
    pub values: Vec<i64>,
    /// The noise scale.
    pub scale: f64,
    /// Half-width of the 95% interval of each value.
    pub accuracy: f64,
    /// The zCDP charge, from OpenDP's privacy map.
    pub rho: f64,
}

/// Adds noise to a vector, spending at most `rho` (Gaussian) or `epsilon` (Laplace).
pub fn release_integers(
    release: &IntegerRelease,
    mechanism: Mechanism,
    share: Share,
) -> Result<Noisy, DpError> {
    let n = release.values.len();
    match mechanism {
        Mechanism::DiscreteGaussian => {
            let Share::Rho(rho) = share else {
                return Err(DpError::Internal(
                    "a Gaussian release needs a rho share".into(),
                ));
            };
            let d_in = release.l2.max(1);
            // ρ = Δ² / (2σ²)
            let mut scale = d_in as f64 / (2.0 * rho).sqrt();
            let domain = VectorDomain::new(AtomDomain::<i64>::default());
            for _ in 0..64 {
                let meas = make_gaussian::<_, L2Distance<i64>, ZeroConcentratedDivergence>(
                    domain.clone(),
                    L2Distance::default(),
                    scale,
                    None,
                )
                .map_err(opendp_error)?;
                let charged = meas.map(&d_in).map_err(opendp_error)?;
                if charged <= rho {
                    let values = meas.invoke(&release.values).map_err(opendp_error)?;
                    let accuracy = accuracy(Mechanism::DiscreteGaussian, scale, 0.05)?;
                    debug_assert_eq!(values.len(), n);
                    return Ok(Noisy {
                        values,
                        scale,
                        accuracy,
                        rho: charged,
                    });
                }
                scale *= 1.000_001;
            }
            Err(DpError::Internal("no scale fits the share".into()))
        }
        Mechanism::DiscreteLaplace => {
            let Share::Epsilon(epsilon) = share else {
                return Err(DpError::Internal(
                    "a Laplace release needs an epsilon share".into(),
                ));
            };
            let d_in = release.l1.max(1);
            let mut scale = d_in as f64 / epsilon;
            let domain = VectorDomain::new(AtomDomain::<i64>::default());
            for _ in 0..64 {
                let meas = make_laplace::<_, L1Distance<i64>, MaxDivergence>(
                    domain.clone(),
                    L1Distance::default(),
                    scale,
                    None,
                )
                .map_err(opendp_error)?;
                let charged = meas.map(&d_in).map_err(opendp_error)?;
                if charged <= epsilon {
                    let values = meas.invoke(&release.values).map_err(opendp_error)?;
                    let accuracy = accuracy(Mechanism::DiscreteLaplace, scale, 0.05)?;
                    return Ok(Noisy {
                        values,
                        scale,
                        accuracy,
                        rho: pure_to_rho(charged),
                    });
                }
                scale *= 1.000_001;
            }
            Err(DpError::Internal("no scale fits the share".into()))
        }
    }
}

/// Adds Gaussian noise of standard deviation `scale` to every coordinate, by OpenDP's Gaussian
/// mechanism over float vectors (sampled exactly on a fine lattice, so floating-point
/// rounding cannot leak): DP-SGD's noise. Values must be finite.
pub fn gaussian_noise(values: &[f64], scale: f64) -> Result<Vec<f64>, DpError> {
    if !(scale.is_finite() && scale > 0.0) || values.iter().any(|v| !v.is_finite()) {
        return Err(DpError::Internal(
            "gaussian noise: a non-finite value or scale".into(),
        ));
    }
    let meas = make_gaussian::<_, L2Distance<f64>, ZeroConcentratedDivergence>(
        VectorDomain::new(AtomDomain::<f64>::new_non_nan()),
        L2Distance::default(),
        scale,
        None,
    )
    .map_err(opendp_error)?;
    meas.invoke(&values.to_vec()).map_err(opendp_error)
}

/// The rows of one DP-SGD step: each of `n` rows independently with probability `q` (Poisson
/// subsampling). The privacy amplification the accountant counts holds only if the batches
/// are secret, so the generator is seeded from the operating system and never recorded.
pub fn poisson_subsample(n: usize, q: f64, rng: &mut SecretRng) -> Vec<usize> {
    use rand::Rng as _;
    (0..n)
        .filter(|_| rng.0.gen_bool(q.clamp(0.0, 1.0)))
        .collect()
}

/// A generator seeded from the operating system, for batch selection.
#[derive(Debug)]
pub struct SecretRng(rand_chacha::ChaCha20Rng);

impl SecretRng {
    /// Seeded from the operating system.
    pub fn from_os() -> Self {
        use rand::SeedableRng as _;
        SecretRng(rand_chacha::ChaCha20Rng::from_entropy())
    }
}

/// Scales above this use the continuous distribution's quantile: OpenDP's exact tail sums
/// are linear in the scale (slow, and they overflow past about 1e9 in its integer
/// arithmetic), and at this scale the discrete quantile is within one unit of the continuous.
const EXACT_ACCURACY_MAX_SCALE: f64 = 100.0;

/// The half-width `t` with P(|noise| > t) ≤ `alpha`, for noise of `mechanism` at `scale`.
pub fn accuracy(mechanism: Mechanism, scale: f64, alpha: f64) -> Result<f64, DpError> {
    if !(alpha > 0.0 && alpha < 1.0 && scale.is_finite() && scale > 0.0) {
        return Err(DpError::Internal(
            "accuracy: alpha or scale out of range".into(),
        ));
    }
    if scale <= EXACT_ACCURACY_MAX_SCALE {
        return match mechanism {
            Mechanism::DiscreteGaussian => discrete_gaussian_scale_to_accuracy(scale, alpha),
            Mechanism::DiscreteLaplace => discrete_laplacian_scale_to_accuracy(scale, alpha),
        }
        .map_err(opendp_error);
    }
    Ok(match mechanism {
        // P(|X| > t) = erfc(t / (σ√2)) = α for N(0, σ²); rounded up to the lattice.
        Mechanism::DiscreteGaussian => (scale * std::f64::consts::SQRT_2 * erfc_inv(alpha)).ceil(),
        // P(|X| > t) = e^{−t/b} for Laplace(b).
        Mechanism::DiscreteLaplace => (scale * (1.0 / alpha).ln()).ceil(),
    })
}

/// One measurement's share of a query's budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Share {
    /// A zCDP share.
    Rho(f64),
    /// A pure-DP share.
    Epsilon(f64),
}

/// The exponential mechanism by OpenDP's report-noisy-max (Gumbel noise, so exactly the
/// exponential mechanism): the index of a large score, each score moved by at most
/// `sensitivity` when one privacy unit changes (in either direction), spending at most `rho`
/// (zCDP; the bounded-range analysis of Cesar and Rogers 2021, ρ = ε²/8). Returns the index
/// and the charge from OpenDP's map.
pub fn select_max(scores: &[f64], sensitivity: f64, rho: f64) -> Result<(usize, f64), DpError> {
    if scores.is_empty() || scores.iter().any(|s| !s.is_finite()) {
        return Err(DpError::Internal(
            "select: no scores, or one not finite".into(),
        ));
    }
    if !(rho.is_finite() && rho > 0.0 && sensitivity.is_finite() && sensitivity > 0.0) {
        return Err(DpError::Internal(
            "select: rho or sensitivity out of range".into(),
        ));
    }
    let domain = VectorDomain::new(AtomDomain::<f64>::new_non_nan());
    // Non-monotonic: one unit may raise some scores and lower others, a range of 2Δ, so
    // ρ = (2Δ / scale)² / 8.
    let mut scale = 2.0 * sensitivity / (8.0 * rho).sqrt();
    for _ in 0..64 {
        let meas = make_noisy_max(
            domain.clone(),
            LInfDistance::default(),
            ZeroConcentratedDivergence,
            scale,
            false,
        )
        .map_err(opendp_error)?;
        let charged = meas.map(&sensitivity).map_err(opendp_error)?;
        if charged <= rho {
            let i = meas.invoke(&scores.to_vec()).map_err(opendp_error)?;
            return Ok((i, charged));
        }
        scale *= 1.000_001;
    }
    Err(DpError::Internal("no scale fits the share".into()))
}

/// A private quantile by OpenDP's exponential-mechanism quantile over `candidates` (sorted,
/// finite): `d_in` rows per unit may change.
pub fn release_quantile(
    values: Vec<f64>,
    candidates: Vec<f64>,
    alpha: f64,
    d_in: u32,
    mechanism: Mechanism,
    share: Share,
) -> Result<(f64, f64, f64), DpError> {
    // OpenDP's quantile scores are integerised; the map is linear in 1/scale, so one probe
    // at scale 1 gives the scale for the share.
    let domain = VectorDomain::new(AtomDomain::<f64>::new_non_nan());
    let d_in = d_in.max(1);
    match (mechanism, share) {
        (Mechanism::DiscreteGaussian, Share::Rho(rho)) => {
            let probe = make_private_quantile(
                domain.clone(),
                InsertDeleteDistance,
                ZeroConcentratedDivergence,
                candidates.clone(),
                alpha,
                1.0,
            )
            .map_err(opendp_error)?;
            let at_one = probe.map(&d_in).map_err(opendp_error)?;
            // ρ ∝ 1/scale²
            let mut scale = (at_one / rho).sqrt();
            for _ in 0..64 {
                let meas = make_private_quantile(
                    domain.clone(),
                    InsertDeleteDistance,
                    ZeroConcentratedDivergence,
                    candidates.clone(),
                    alpha,
                    scale,
                )
                .map_err(opendp_error)?;
                let charged = meas.map(&d_in).map_err(opendp_error)?;
                if charged <= rho {
                    let v = meas.invoke(&values).map_err(opendp_error)?;
                    return Ok((v, scale, charged));
                }
                scale *= 1.000_001;
            }
            Err(DpError::Internal("no scale fits the share".into()))
        }
        (Mechanism::DiscreteLaplace, Share::Epsilon(epsilon)) => {
            let probe = make_private_quantile(
                domain.clone(),
                InsertDeleteDistance,
                MaxDivergence,
                candidates.clone(),
                alpha,
                1.0,
            )
            .map_err(opendp_error)?;
            let at_one = probe.map(&d_in).map_err(opendp_error)?;
            // ε ∝ 1/scale
            let mut scale = at_one / epsilon;
            for _ in 0..64 {
                let meas = make_private_quantile(
                    domain.clone(),
                    InsertDeleteDistance,
                    MaxDivergence,
                    candidates.clone(),
                    alpha,
                    scale,
                )
                .map_err(opendp_error)?;
                let charged = meas.map(&d_in).map_err(opendp_error)?;
                if charged <= epsilon {
                    let v = meas.invoke(&values).map_err(opendp_error)?;
                    return Ok((v, scale, pure_to_rho(charged)));
                }
                scale *= 1.000_001;
            }
            Err(DpError::Internal("no scale fits the share".into()))
        }
        _ => Err(DpError::Internal(
            "the share does not match the mechanism".into(),
        )),
    }
}

fn opendp_error(e: opendp::error::Error) -> DpError {
    // OpenDP's messages name parameters, never data.
    DpError::Internal(format!(
        "OpenDP: {:?}: {}",
        e.variant,
        e.message.unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_and_zcdp_conversions_agree_with_the_bounds() -> Result<(), DpError> {
        // ρ-zCDP ⇒ (ρ + 2√(ρ ln 1/δ), δ)-DP is the classic bound; OpenDP's conversion is tighter.
        for &(rho, delta) in &[(0.1_f64, 1e-6_f64), (0.5, 1e-5), (2.0, 1e-9)] {
            let eps = rho_to_epsilon(rho, delta)?;
            let classic = rho + 2.0 * (rho * (1.0 / delta).ln()).sqrt();
            assert!(
                eps > rho && eps <= classic,
                "{rho} {delta}: {eps} vs {classic}"
            );
            let back = rho_for_epsilon(eps, delta)?;
            assert!((back - rho).abs() / rho < 1e-9, "{back} vs {rho}");
        }
        Ok(())
    }

    #[test]
    fn accuracy_is_continuous_past_the_exact_range_and_agrees_at_the_seam() -> Result<(), DpError> {
        for m in [Mechanism::DiscreteGaussian, Mechanism::DiscreteLaplace] {
            let exact = accuracy(m, EXACT_ACCURACY_MAX_SCALE, 0.05)?;
            let approx = accuracy(m, EXACT_ACCURACY_MAX_SCALE * (1.0 + 1e-12), 0.05)?;
            assert!((exact - approx).abs() <= 2.0, "{m:?}: {exact} vs {approx}");
            // a scale that overflowed OpenDP's tail sums
            assert!(accuracy(m, 3.0e9, 0.05)? > 3.0e9);
        }
        Ok(())
    }

    #[test]
    fn bad_privacy_figures_are_refused() {
        for p in [
            Privacy {
                epsilon: f64::NAN,
                delta: None,
            },
            Privacy {
                epsilon: f64::INFINITY,
                delta: None,
            },
            Privacy {
                epsilon: 0.0,
                delta: None,
            },
            Privacy {
                epsilon: -1.0,
                delta: None,
            },
            Privacy {
                epsilon: 11.0,
                delta: None,
            },
            Privacy {
                epsilon: 1.0,
                delta: Some(0.0),
            },
            Privacy {
                epsilon: 1.0,
                delta: Some(0.5),
            },
            Privacy {
                epsilon: 1.0,
                delta: Some(f64::NAN),
            },
        ] {
            assert!(p.rho().is_err(), "{p:?}");
        }
    }

    #[test]
    fn the_charge_is_opendps_map_and_fits_the_share() -> Result<(), DpError> {
        let release = IntegerRelease {
            values: vec![10, 20, 30],
            l1: 3,
            l2: 3,
        };
        let g = release_integers(&release, Mechanism::DiscreteGaussian, Share::Rho(0.05))?;
        assert!(g.rho <= 0.05 && g.rho > 0.049_99, "{}", g.rho);
        assert!((g.scale - 3.0 / (0.1_f64).sqrt()).abs() < 1e-3);
        let l = release_integers(&release, Mechanism::DiscreteLaplace, Share::Epsilon(0.5))?;
        assert!((l.scale - 6.0).abs() < 1e-3);
        assert!(l.rho <= pure_to_rho(0.5));
        assert_eq!(l.values.len(), 3);
        Ok(())
    }
}
