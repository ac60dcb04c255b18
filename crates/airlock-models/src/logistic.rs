//! L2-regularised logistic regression, fitted by Newton's method (IRLS) with a backtracking line
//! search on the full batch: no randomness, so the same data give the same bits. Inputs are
//! standardised with the training mean and standard deviation, which the model keeps, so the
//! penalty treats every column alike and callers pass raw encoded values.
//!
//! The objective is scikit-learn's: `sum_i logloss_i + (l2 / 2) * |w|^2`, the intercept not
//! penalised, so `l2 = 1 / C`.

use serde::{Deserialize, Serialize};

use crate::codec::{Reader, Writer};
use crate::error::ModelsError;
use crate::model::{Model, ModelKind, check_dim, sigmoid};

/// Hyper-parameters of logistic regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogisticParams {
    /// Strength of the L2 penalty on the standardised weights (`1 / C` in scikit-learn).
    pub l2: f64,
    /// Newton iterations at most.
    pub max_iter: u32,
    /// Stop when half the Newton decrement falls below `tol * (1 + objective)`.
    pub tol: f64,
    /// Train by DP-SGD instead of Newton's method, with these settings (the accountant's
    /// figures are filled in by training).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<crate::dpsgd::DpSgd>,
}

impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams {
            l2: 1.0,
            max_iter: 50,
            tol: 1e-12,
            dp: None,
        }
    }
}

impl LogisticParams {
    fn validate(&self) -> Result<(), ModelsError> {
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return Err(ModelsError::InvalidParam {
                param: "l2",
                rule: "must be finite and non-negative",
            });
        }
        if self.max_iter == 0 {
            return Err(ModelsError::InvalidParam {
                param: "max_iter",
                rule: "must be at least 1",
            });
        }
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return Err(ModelsError::InvalidParam {
                param: "tol",
                rule: "must be finite and positive",
            });
        }
        Ok(())
    }
}

/// A fitted logistic regression.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticModel {
    mean: Vec<f64>,
    scale: Vec<f64>,
    weights: Vec<f64>,
    intercept: f64,
}

impl LogisticModel {
    /// Fit on a row-major matrix `x` of `y.len()` rows and `d` columns.
    pub fn fit(
        x: &[f64],
        d: usize,
        y: &[bool],
        params: &LogisticParams,
    ) -> Result<Self, ModelsError> {
        params.validate()?;
        let n = y.len();
        if n == 0 || x.len() != n.saturating_mul(d) {
            return Err(ModelsError::Dimension {
                expected: n.saturating_mul(d),
                found: x.len(),
            });
        }
        let (mean, scale) = standardisation(x, d, n);
        let dim = d + 1;
        let z = design(x, d, n, &mean, &scale);
        let yf: Vec<f64> = y.iter().map(|&v| f64::from(u8::from(v))).collect();
        let mut theta = vec![0.0; dim];
        // Start the intercept at the base rate's log-odds: fewer iterations, same optimum.
        let rate = (yf.iter().sum::<f64>() / n as f64).clamp(1e-6, 1.0 - 1e-6);
        if let Some(b) = theta.first_mut() {
            *b = (rate / (1.0 - rate)).ln();
        }
        let mut f = objective(&z, &yf, &theta, dim, params.l2);
        for _ in 0..params.max_iter {
            let (grad, hess) = grad_hess(&z, &yf, &theta, dim, params.l2);
            let step = cholesky_solve(hess, &grad, dim)?;
            let decrement: f64 = grad.iter().zip(&step).map(|(g, s)| g * s).sum();
            if decrement / 2.0 < params.tol * (1.0 + f.abs()) {
                break;
            }
            let mut t = 1.0;
            let mut accepted = false;
            for _ in 0..40 {
                let cand: Vec<f64> = theta.iter().zip(&step).map(|(a, s)| a - t * s).collect();
                let fc = objective(&z, &yf, &cand, dim, params.l2);
                if fc <= f - 1e-4 * t * decrement {
                    theta = cand;
                    f = fc;
                    accepted = true;
                    break;
                }
                t *= 0.5;
            }
            if !accepted {
                // No descent along the Newton direction: we are at the optimum to machine
                // precision.
                break;
            }
        }
        let (intercept, weights) = match theta.split_first() {
            Some((b, w)) => (*b, w.to_vec()),
            None => (0.0, Vec::new()),
        };
        Ok(LogisticModel {
            mean,
            scale,
            weights,
            intercept,
        })
    }

    /// A model from its parts (the DP-SGD fit builds one).
    pub(crate) fn from_parts(
        mean: Vec<f64>,
        scale: Vec<f64>,
        weights: Vec<f64>,
        intercept: f64,
    ) -> Self {
        LogisticModel {
            mean,
            scale,
            weights,
            intercept,
        }
    }

    /// Weights on the standardised inputs, in input order.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Intercept on the standardised scale.
    pub fn intercept(&self) -> f64 {
        self.intercept
    }
}

impl Model for LogisticModel {
    fn kind(&self) -> ModelKind {
        ModelKind::Logistic
    }

    fn n_inputs(&self) -> usize {
        self.weights.len()
    }

    fn predict_proba(&self, x: &[f64]) -> Result<f64, ModelsError> {
        check_dim(self.weights.len(), x)?;
        let z: f64 = x
            .iter()
            .zip(&self.weights)
            .zip(self.mean.iter().zip(&self.scale))
            .map(|((v, w), (m, s))| w * (v - m) / s)
            .sum();
        Ok(sigmoid(self.intercept + z))
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.f64s(&self.mean);
        w.f64s(&self.scale);
        w.f64s(&self.weights);
        w.f64(self.intercept);
        w.finish()
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, ModelsError> {
        let mut r = Reader::new(bytes);
        let mean = r.f64s()?;
        let scale = r.f64s()?;
        let weights = r.f64s()?;
        let intercept = r.f64()?;
        r.expect_end()?;
        if mean.len() != weights.len() || scale.len() != weights.len() {
            return Err(r.err("vector lengths differ"));
        }
        if scale.iter().any(|s| *s <= 0.0) {
            return Err(r.err("non-positive scale"));
        }
        Ok(LogisticModel {
            mean,
            scale,
            weights,
            intercept,
        })
    }
}

/// The standardised design, row-major with a leading 1 for the intercept (`d + 1` columns).
pub(crate) fn design(x: &[f64], d: usize, n: usize, mean: &[f64], scale: &[f64]) -> Vec<f64> {
    if d == 0 {
        return vec![1.0; n];
    }
    let mut z = Vec::with_capacity(n * (d + 1));
    for row in x.chunks_exact(d).take(n) {
        z.push(1.0);
        z.extend(
            row.iter()
                .zip(mean.iter().zip(scale))
                .map(|(v, (m, s))| (v - m) / s),
        );
    }
    z
}

pub(crate) fn standardisation(x: &[f64], d: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; d];
    for row in x.chunks_exact(d.max(1)) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = vec![0.0; d];
    for row in x.chunks_exact(d.max(1)) {
        for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (v - m) * (v - m);
        }
    }
    // A constant column keeps scale 1: it then carries no signal and the penalty pins it at 0.
    let scale = var
        .into_iter()
        .map(|v| {
            let s = (v / n as f64).sqrt();
            if s > 1e-12 { s } else { 1.0 }
        })
        .collect();
    (mean, scale)
}

fn softplus(t: f64) -> f64 {
    if t > 0.0 {
        t + (-t).exp().ln_1p()
    } else {
        t.exp().ln_1p()
    }
}

fn objective(z: &[f64], y: &[f64], theta: &[f64], dim: usize, l2: f64) -> f64 {
    let loss: f64 = z
        .chunks_exact(dim)
        .zip(y)
        .map(|(row, yi)| {
            let t: f64 = row.iter().zip(theta).map(|(a, b)| a * b).sum();
            softplus(t) - yi * t
        })
        .sum();
    let pen: f64 = theta.iter().skip(1).map(|w| w * w).sum();
    loss + 0.5 * l2 * pen
}

/// Gradient and full (symmetric) Hessian of the objective, row-major `dim x dim`.
fn grad_hess(z: &[f64], y: &[f64], theta: &[f64], dim: usize, l2: f64) -> (Vec<f64>, Vec<f64>) {
    let mut g = vec![0.0; dim];
    let mut h = vec![0.0; dim * dim];
    for (row, yi) in z.chunks_exact(dim).zip(y) {
        let t: f64 = row.iter().zip(theta).map(|(a, b)| a * b).sum();
        let p = sigmoid(t);
        let r = p - yi;
        let w = p * (1.0 - p);
        for (gj, xj) in g.iter_mut().zip(row) {
            *gj += r * xj;
        }
        // Lower triangle only; mirrored below.
        for (j, (hrow, xj)) in h.chunks_exact_mut(dim).zip(row).enumerate() {
            let wx = w * xj;
            for (hk, xk) in hrow.iter_mut().zip(row).take(j + 1) {
                *hk += wx * xk;
            }
        }
    }
    for (j, gj) in g.iter_mut().enumerate().skip(1) {
        *gj += l2 * theta.get(j).copied().unwrap_or(0.0);
    }
    for j in 0..dim {
        for k in 0..j {
            let v = h.get(j * dim + k).copied().unwrap_or(0.0);
            if let Some(m) = h.get_mut(k * dim + j) {
                *m = v;
            }
        }
        if let Some(m) = h.get_mut(j * dim + j) {
            // The tiny ridge keeps the intercept row positive definite when l2 is 0.
            *m += if j == 0 { 1e-10 } else { l2 + 1e-10 };
        }
    }
    (g, h)
}

/// Solve `H s = g` for a symmetric positive definite `H` (row-major `n x n`) by Cholesky.
#[expect(
    clippy::indexing_slicing,
    reason = "dense n x n factorisation; every index is below n by the loop bounds"
)]
fn cholesky_solve(mut a: Vec<f64>, g: &[f64], n: usize) -> Result<Vec<f64>, ModelsError> {
    // INVARIANT: a.len() == n * n and g.len() == n (built by grad_hess with the same n).
    if a.len() != n * n || g.len() != n {
        return Err(ModelsError::Numerical {
            what: "hessian shape",
        });
    }
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if !(d > 0.0 && d.is_finite()) {
            return Err(ModelsError::Numerical {
                what: "hessian is not positive definite",
            });
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in (j + 1)..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    // Forward then backward substitution with L and L^T.
    let mut v = g.to_vec();
    for i in 0..n {
        let mut s = v[i];
        for k in 0..i {
            s -= a[i * n + k] * v[k];
        }
        v[i] = s / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = v[i];
        for k in (i + 1)..n {
            s -= a[k * n + i] * v[k];
        }
        v[i] = s / a[i * n + i];
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::auroc;
    use crate::rng::SplitMix64;

    fn synthetic(n: usize, seed: u64) -> (Vec<f64>, Vec<bool>) {
        let mut r = SplitMix64::new(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let a = r.next_f64() * 4.0 - 2.0;
            let b = r.next_f64() * 100.0;
            let c = 3.0; // constant column
            let z = 1.5 * a - 0.02 * (b - 50.0) - 0.3;
            y.push(r.next_f64() < sigmoid(z));
            x.extend([a, b, c]);
        }
        (x, y)
    }

    #[test]
    fn recovers_coefficients_and_separates() {
        let (x, y) = synthetic(20_000, 1);
        let m = LogisticModel::fit(
            &x,
            3,
            &y,
            &LogisticParams {
                l2: 1e-6,
                ..Default::default()
            },
        )
        .unwrap();
        // Back to the raw scale: w_raw = w / scale.
        let a = m.weights[0] / m.scale[0];
        let b = m.weights[1] / m.scale[1];
        assert!((a - 1.5).abs() < 0.1, "{a}");
        assert!((b + 0.02).abs() < 0.003, "{b}");
        assert!(m.weights[2].abs() < 1e-9);
        let p: Vec<f64> = x.chunks(3).map(|r| m.predict_proba(r).unwrap()).collect();
        assert!(auroc(&y, &p).unwrap() > 0.75);
    }

    #[test]
    fn optimum_has_zero_gradient() {
        let (x, y) = synthetic(2_000, 2);
        let m = LogisticModel::fit(&x, 3, &y, &LogisticParams::default()).unwrap();
        // Gradient of the objective at the optimum, on the standardised scale.
        let mut g = vec![0.0; 4];
        for (row, yi) in x.chunks(3).zip(&y) {
            let r = m.predict_proba(row).unwrap() - f64::from(u8::from(*yi));
            g[0] += r;
            for j in 0..3 {
                g[j + 1] += r * (row[j] - m.mean[j]) / m.scale[j];
            }
        }
        for j in 0..3 {
            g[j + 1] += m.weights[j];
        }
        assert!(g.iter().all(|v| v.abs() < 1e-6), "{g:?}");
    }

    #[test]
    fn deterministic_and_round_trips() {
        let (x, y) = synthetic(1_000, 3);
        let p = LogisticParams::default();
        let a = LogisticModel::fit(&x, 3, &y, &p).unwrap();
        let b = LogisticModel::fit(&x, 3, &y, &p).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        let c = LogisticModel::from_bytes(&a.to_bytes()).unwrap();
        assert_eq!(c.to_bytes(), a.to_bytes());
        assert_eq!(
            c.predict_proba(&[0.5, 10.0, 3.0]).unwrap(),
            a.predict_proba(&[0.5, 10.0, 3.0]).unwrap()
        );
        assert!(a.predict_proba(&[1.0]).is_err());
        let bytes = a.to_bytes();
        for cut in 0..bytes.len() {
            assert!(LogisticModel::from_bytes(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn refuses_bad_params() {
        let (x, y) = synthetic(10, 4);
        let p = LogisticParams {
            l2: -1.0,
            ..Default::default()
        };
        assert!(matches!(
            LogisticModel::fit(&x, 3, &y, &p),
            Err(ModelsError::InvalidParam { param: "l2", .. })
        ));
    }
}
