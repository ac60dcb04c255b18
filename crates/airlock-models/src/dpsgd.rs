//! DP-SGD for logistic regression (Abadi et al. 2016): Poisson-subsampled batches, each
//! example's gradient clipped to norm `clip`, Gaussian noise of standard deviation
//! `noise_multiplier × clip` added to the batch's sum by OpenDP's Gaussian mechanism, and the
//! noise multiplier chosen by the RDP accountant (`airlock_dp::accountant`, equal to Google's
//! dp-accounting) so that the whole run is (ε, δ)-DP for one training row.
//!
//! What ε covers: the weights' updates. The encoding (the signature's categories and ranges)
//! and the standardisation (training means and deviations) are computed from the
//! de-identified table as for every model and are not counted.

use serde::{Deserialize, Serialize};

use crate::error::ModelsError;
use crate::logistic::LogisticModel;
use crate::model::sigmoid;

/// DP-SGD settings; the accountant's results are filled in by training and recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DpSgd {
    /// The target ε for the whole run.
    pub epsilon: f64,
    /// δ.
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// Per-example gradient norm bound.
    #[serde(default = "default_clip")]
    pub clip: f64,
    /// Poisson sampling rate of a batch (expected batch size over rows).
    #[serde(default = "default_rate")]
    pub sampling_rate: f64,
    /// Passes over the data (steps = epochs / sampling rate).
    #[serde(default = "default_epochs")]
    pub epochs: u32,
    /// Step size.
    #[serde(default = "default_lr")]
    pub learning_rate: f64,
    /// Filled in by training: the noise multiplier the accountant chose.
    #[serde(default)]
    pub noise_multiplier: Option<f64>,
    /// Filled in by training: steps taken.
    #[serde(default)]
    pub steps: Option<u64>,
    /// Filled in by training: the accountant and its ε for the run (at most the target).
    #[serde(default)]
    pub accountant: Option<String>,
    /// Filled in by training: ε spent.
    #[serde(default)]
    pub spent_epsilon: Option<f64>,
}

fn default_delta() -> f64 {
    1e-6
}
fn default_clip() -> f64 {
    1.0
}
fn default_rate() -> f64 {
    0.01
}
fn default_epochs() -> u32 {
    5
}
fn default_lr() -> f64 {
    0.5
}

impl DpSgd {
    /// Settings with defaults for everything but ε.
    pub fn new(epsilon: f64) -> Self {
        DpSgd {
            epsilon,
            delta: default_delta(),
            clip: default_clip(),
            sampling_rate: default_rate(),
            epochs: default_epochs(),
            learning_rate: default_lr(),
            noise_multiplier: None,
            steps: None,
            accountant: None,
            spent_epsilon: None,
        }
    }

    fn validate(&self, rows: usize) -> Result<(), ModelsError> {
        let bad = |param: &'static str, rule: &'static str| {
            Err(ModelsError::InvalidParam { param, rule })
        };
        if !(self.epsilon.is_finite() && self.epsilon > 0.0 && self.epsilon <= 100.0) {
            return bad(
                "dp.epsilon",
                "must be a finite number above 0 and at most 100",
            );
        }
        // δ well below one over the number of rows, or one row could be published outright.
        if !(self.delta.is_finite() && self.delta > 0.0 && self.delta < 1.0 / rows.max(1) as f64) {
            return bad(
                "dp.delta",
                "must be above 0 and below one over the training rows",
            );
        }
        if !(self.clip.is_finite() && self.clip > 0.0) {
            return bad("dp.clip", "must be finite and positive");
        }
        if !(self.sampling_rate > 0.0 && self.sampling_rate <= 1.0) {
            return bad("dp.sampling_rate", "must be in (0, 1]");
        }
        if self.epochs == 0 || self.epochs > 1000 {
            return bad("dp.epochs", "must be between 1 and 1000");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("dp.learning_rate", "must be finite and positive");
        }
        Ok(())
    }
}

/// Fits logistic regression by DP-SGD (`private`), or by the same SGD without clipping and
/// noise (the benchmark's baseline). Returns the model and the settings with the accountant's
/// figures filled in.
pub fn fit_logistic(
    x: &[f64],
    d: usize,
    y: &[bool],
    l2: f64,
    dp: &DpSgd,
    private: bool,
) -> Result<(LogisticModel, DpSgd), ModelsError> {
    let n = y.len();
    if n == 0 || x.len() != n.saturating_mul(d) {
        return Err(ModelsError::Dimension {
            expected: n.saturating_mul(d),
            found: x.len(),
        });
    }
    dp.validate(n)?;
    let q = dp.sampling_rate;
    let steps = (f64::from(dp.epochs) / q).ceil() as u64;
    let sigma = airlock_dp::accountant::noise_multiplier_for(q, steps, dp.epsilon, dp.delta)
        .map_err(|_| ModelsError::InvalidParam {
            param: "dp.epsilon",
            rule: "is out of reach for these steps and sampling rate (raise epsilon, lower epochs or the sampling rate)",
        })?;
    let (spent, order) = airlock_dp::accountant::epsilon(
        q,
        sigma,
        steps,
        dp.delta,
        airlock_dp::accountant::DEFAULT_ORDERS,
    )
    .map_err(|_| ModelsError::InvalidParam {
        param: "dp.epsilon",
        rule: "the accountant failed for these settings",
    })?;
    let (mean, scale) = crate::logistic::standardisation(x, d, n);
    let dim = d + 1;
    let z = crate::logistic::design(x, d, n, &mean, &scale);
    let mut theta = vec![0.0; dim];
    let mut rng = airlock_dp::mechanism::SecretRng::from_os();
    let expected = (q * n as f64).max(1.0);
    let mut grad = vec![0.0; dim];
    for _ in 0..steps {
        let batch = airlock_dp::mechanism::poisson_subsample(n, q, &mut rng);
        grad.iter_mut().for_each(|g| *g = 0.0);
        for &i in &batch {
            let (Some(row), Some(&label)) = (z.get(i * dim..(i + 1) * dim), y.get(i)) else {
                continue;
            };
            let p = sigmoid(row.iter().zip(&theta).map(|(a, b)| a * b).sum());
            let r = p - f64::from(u8::from(label));
            // This example's gradient, clipped to norm `clip`.
            let norm = r.abs() * row.iter().map(|v| v * v).sum::<f64>().sqrt();
            let factor = if private && norm > dp.clip {
                dp.clip / norm
            } else {
                1.0
            };
            for (g, v) in grad.iter_mut().zip(row) {
                *g += r * v * factor;
            }
        }
        let summed = if private {
            airlock_dp::mechanism::gaussian_noise(&grad, sigma * dp.clip).map_err(|_| {
                ModelsError::InvalidParam {
                    param: "dp",
                    rule: "the noise could not be drawn",
                }
            })?
        } else {
            grad.clone()
        };
        for (k, (t, g)) in theta.iter_mut().zip(&summed).enumerate() {
            // The penalty is data-independent: it costs no privacy. The intercept is not
            // penalised, as in the non-private fit.
            let penalty = if k == 0 { 0.0 } else { l2 * *t / n as f64 };
            *t -= dp.learning_rate * (g / expected + penalty);
        }
    }
    let mut filled = dp.clone();
    filled.noise_multiplier = Some(sigma);
    filled.steps = Some(steps);
    filled.spent_epsilon = Some(spent);
    filled.accountant = Some(format!(
        "RDP of the Poisson-subsampled Gaussian (dp-accounting 0.6 orders), optimal order {order}"
    ));
    let (intercept, weights) = match theta.split_first() {
        Some((b, w)) => (*b, w.to_vec()),
        None => (0.0, Vec::new()),
    };
    Ok((
        LogisticModel::from_parts(mean, scale, weights, intercept),
        filled,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Model as _;

    /// Two informative features and one noise feature, 4,000 rows.
    fn data() -> (Vec<f64>, Vec<bool>) {
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..4000 {
            let (a, b, c) = (next() * 4.0 - 2.0, next() * 4.0 - 2.0, next());
            let logit = 1.5 * a - 1.0 * b;
            y.push(next() < 1.0 / (1.0 + (-logit).exp()));
            x.extend([a, b, c]);
        }
        (x, y)
    }

    fn auroc(model: &LogisticModel, x: &[f64], y: &[bool]) -> f64 {
        let scores: Vec<f64> = x
            .chunks_exact(3)
            .map(|r| model.predict_proba(r).unwrap_or(0.5))
            .collect();
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        for (s, l) in scores.iter().zip(y) {
            if *l { pos.push(*s) } else { neg.push(*s) }
        }
        let mut wins = 0.0;
        for p in &pos {
            for q in &neg {
                wins += if p > q {
                    1.0
                } else if p == q {
                    0.5
                } else {
                    0.0
                };
            }
        }
        wins / (pos.len() * neg.len()) as f64
    }

    #[test]
    fn dp_sgd_learns_and_records_what_the_accountant_spent() -> Result<(), ModelsError> {
        let (x, y) = data();
        let mut dp = DpSgd::new(4.0);
        dp.delta = 1e-5;
        dp.sampling_rate = 0.05;
        let (model, filled) = fit_logistic(&x, 3, &y, 1.0, &dp, true)?;
        let spent = filled.spent_epsilon.unwrap_or(f64::NAN);
        assert!(spent <= 4.0 && spent > 3.9, "{filled:?}");
        assert_eq!(filled.steps, Some(100));
        let sigma = filled.noise_multiplier.unwrap_or(0.0);
        assert!(sigma > 0.5, "{sigma}");
        let a = auroc(&model, &x, &y);
        let (plain, _) = fit_logistic(&x, 3, &y, 1.0, &dp, false)?;
        let b = auroc(&plain, &x, &y);
        assert!(
            a > 0.75 && b > 0.75 && (b - a).abs() < 0.05,
            "dp {a} vs plain {b}"
        );
        Ok(())
    }

    #[test]
    fn unreachable_or_bad_settings_are_refused() {
        let (x, y) = data();
        let mut dp = DpSgd::new(0.01);
        dp.epochs = 1000;
        assert!(fit_logistic(&x, 3, &y, 1.0, &dp, true).is_err());
        let mut dp = DpSgd::new(1.0);
        dp.delta = 0.5;
        assert!(fit_logistic(&x, 3, &y, 1.0, &dp, true).is_err());
        let dp = DpSgd::new(f64::NAN);
        assert!(fit_logistic(&x, 3, &y, 1.0, &dp, true).is_err());
    }
}
