//! Held-out metrics for binary classifiers: AUROC (the Mann-Whitney statistic, ties counted
//! half), average precision (scikit-learn's `average_precision_score`: the step-wise sum over
//! distinct thresholds, no interpolation), Brier score, log loss and a ten-bin reliability
//! curve. Labels are `true` for the positive class; scores are probabilities in `[0, 1]`.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::error::ModelsError;

/// One bin of a reliability (calibration) curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalibrationBin {
    /// Lower edge of the predicted-probability bin (inclusive).
    pub lower: f64,
    /// Upper edge (exclusive, except the last bin which includes 1).
    pub upper: f64,
    /// Predictions in the bin.
    pub count: u64,
    /// Mean predicted probability, if the bin is not empty.
    pub mean_predicted: Option<f64>,
    /// Observed positive rate, if the bin is not empty.
    pub observed: Option<f64>,
}

/// Held-out metrics of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Rows scored.
    pub n: u64,
    /// Share of positives.
    pub prevalence: f64,
    /// Area under the ROC curve.
    pub auroc: f64,
    /// Average precision (area under the precision-recall curve, step-wise).
    pub auprc: f64,
    /// Mean squared error of the probabilities.
    pub brier: f64,
    /// Mean negative log-likelihood (probabilities clipped to `[1e-15, 1 - 1e-15]`).
    pub log_loss: f64,
    /// Ten equal-width bins over `[0, 1]`.
    pub calibration: Vec<CalibrationBin>,
}

impl Metrics {
    /// Compute every metric.
    pub fn compute(labels: &[bool], scores: &[f64]) -> Result<Self, ModelsError> {
        check(labels, scores)?;
        let n = labels.len();
        let positives = labels.iter().filter(|&&y| y).count();
        Ok(Metrics {
            n: n as u64,
            prevalence: positives as f64 / n as f64,
            auroc: auroc(labels, scores)?,
            auprc: average_precision(labels, scores)?,
            brier: brier(labels, scores)?,
            log_loss: log_loss(labels, scores)?,
            calibration: calibration(labels, scores, 10)?,
        })
    }
}

fn check(labels: &[bool], scores: &[f64]) -> Result<(), ModelsError> {
    if labels.len() != scores.len() {
        return Err(ModelsError::MetricInput {
            rule: "labels and scores differ in length",
        });
    }
    if labels.is_empty() {
        return Err(ModelsError::MetricInput { rule: "no rows" });
    }
    if scores.iter().any(|s| !(0.0..=1.0).contains(s)) {
        return Err(ModelsError::MetricInput {
            rule: "a score is outside [0, 1]",
        });
    }
    Ok(())
}

fn both_classes(labels: &[bool]) -> Result<(usize, usize), ModelsError> {
    let p = labels.iter().filter(|&&y| y).count();
    let n = labels.len() - p;
    if p == 0 || n == 0 {
        return Err(ModelsError::SingleClass {
            part: "metric input",
        });
    }
    Ok((p, n))
}

/// Pairs sorted by descending score; equal scores are kept together.
fn sorted_desc(labels: &[bool], scores: &[f64]) -> Vec<(f64, bool)> {
    let mut v: Vec<(f64, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    v
}

/// Groups of tied scores in descending order: (positives, negatives) per distinct score.
fn tie_groups(labels: &[bool], scores: &[f64]) -> Vec<(u64, u64)> {
    let mut groups: Vec<(u64, u64)> = Vec::new();
    let mut last: Option<f64> = None;
    for (s, y) in sorted_desc(labels, scores) {
        if last.is_none_or(|l| l.total_cmp(&s) != Ordering::Equal) {
            groups.push((0, 0));
            last = Some(s);
        }
        if let Some(g) = groups.last_mut() {
            if y {
                g.0 += 1;
            } else {
                g.1 += 1;
            }
        }
    }
    groups
}

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half (the Mann-Whitney U statistic over `P * N`).
pub fn auroc(labels: &[bool], scores: &[f64]) -> Result<f64, ModelsError> {
    check(labels, scores)?;
    let (p, n) = both_classes(labels)?;
    // Walking down the scores: each negative beats nothing above it; each positive in a group
    // beats every negative below the group and half of the negatives tied with it.
    let mut negatives_above = 0u64;
    let mut u = 0.0f64;
    for (gp, gn) in tie_groups(labels, scores) {
        let negatives_below = n as u64 - negatives_above - gn;
        u += gp as f64 * (negatives_below as f64 + 0.5 * gn as f64);
        negatives_above += gn;
    }
    Ok(u / (p as f64 * n as f64))
}

/// Average precision as scikit-learn defines it: `sum_k (R_k - R_{k-1}) * P_k` over distinct
/// score thresholds in descending order, with `R_0 = 0`.
pub fn average_precision(labels: &[bool], scores: &[f64]) -> Result<f64, ModelsError> {
    check(labels, scores)?;
    let (p, _) = both_classes(labels)?;
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut ap = 0.0f64;
    for (gp, gn) in tie_groups(labels, scores) {
        tp += gp;
        fp += gn;
        if gp > 0 {
            let precision = tp as f64 / (tp + fp) as f64;
            ap += (gp as f64 / p as f64) * precision;
        }
    }
    Ok(ap)
}

/// Brier score: mean of `(p - y)^2`.
pub fn brier(labels: &[bool], scores: &[f64]) -> Result<f64, ModelsError> {
    check(labels, scores)?;
    let sum: f64 = labels
        .iter()
        .zip(scores)
        .map(|(&y, &s)| (s - f64::from(u8::from(y))).powi(2))
        .sum();
    Ok(sum / labels.len() as f64)
}

/// Mean negative log-likelihood with probabilities clipped away from 0 and 1.
pub fn log_loss(labels: &[bool], scores: &[f64]) -> Result<f64, ModelsError> {
    check(labels, scores)?;
    let eps = 1e-15;
    let sum: f64 = labels
        .iter()
        .zip(scores)
        .map(|(&y, &s)| {
            let s = s.clamp(eps, 1.0 - eps);
            if y { -s.ln() } else { -(1.0 - s).ln() }
        })
        .sum();
    Ok(sum / labels.len() as f64)
}

/// Reliability curve over `bins` equal-width bins of `[0, 1]` (a score of exactly 1 falls in
/// the last bin).
pub fn calibration(
    labels: &[bool],
    scores: &[f64],
    bins: usize,
) -> Result<Vec<CalibrationBin>, ModelsError> {
    check(labels, scores)?;
    if bins == 0 {
        return Err(ModelsError::MetricInput {
            rule: "at least one calibration bin",
        });
    }
    let mut acc = vec![(0u64, 0.0f64, 0u64); bins];
    for (&y, &s) in labels.iter().zip(scores) {
        let b = ((s * bins as f64) as usize).min(bins - 1);
        if let Some(a) = acc.get_mut(b) {
            a.0 += 1;
            a.1 += s;
            a.2 += u64::from(y);
        }
    }
    Ok(acc
        .into_iter()
        .enumerate()
        .map(|(i, (count, sum, pos))| CalibrationBin {
            lower: i as f64 / bins as f64,
            upper: (i + 1) as f64 / bins as f64,
            count,
            mean_predicted: (count > 0).then(|| sum / count as f64),
            observed: (count > 0).then(|| pos as f64 / count as f64),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn sklearn_documentation_cases() {
        // sklearn docs: roc_auc_score and average_precision_score on this input give 0.75 and
        // 0.8333...
        let y = [false, false, true, true];
        let s = [0.1, 0.4, 0.35, 0.8];
        assert!(close(auroc(&y, &s).unwrap(), 0.75));
        assert!(close(average_precision(&y, &s).unwrap(), 5.0 / 6.0));
    }

    #[test]
    fn perfect_reversed_and_tied() {
        let y = [false, false, true, true, true];
        let s = [0.1, 0.2, 0.7, 0.8, 0.9];
        assert_eq!(auroc(&y, &s).unwrap(), 1.0);
        assert_eq!(average_precision(&y, &s).unwrap(), 1.0);
        let r: Vec<f64> = s.iter().map(|v| 1.0 - v).collect();
        assert_eq!(auroc(&y, &r).unwrap(), 0.0);
        // All tied: AUROC one half; AP is the prevalence (one threshold).
        let t = [0.5; 5];
        assert_eq!(auroc(&y, &t).unwrap(), 0.5);
        assert!(close(average_precision(&y, &t).unwrap(), 0.6));
    }

    #[test]
    fn ties_by_hand() {
        // Positives {0.8, 0.5}, negatives {0.5, 0.2}: pairs (0.8>0.5)=1, (0.8>0.2)=1,
        // (0.5=0.5)=0.5, (0.5>0.2)=1 -> 3.5/4.
        let y = [true, true, false, false];
        let s = [0.8, 0.5, 0.5, 0.2];
        assert!(close(auroc(&y, &s).unwrap(), 0.875));
        // Thresholds 0.8: P=1, R=.5; 0.5: P=2/3, R=1 -> .5*1 + .5*2/3.
        assert!(close(average_precision(&y, &s).unwrap(), 0.5 + 1.0 / 3.0));
    }

    #[test]
    fn brier_log_loss_calibration_by_hand() {
        let y = [true, false, true, false];
        let s = [0.9, 0.1, 0.55, 1.0];
        assert!(close(
            brier(&y, &s).unwrap(),
            (0.01 + 0.01 + 0.2025 + 1.0) / 4.0
        ));
        let c = calibration(&y, &s, 10).unwrap();
        assert_eq!(c.len(), 10);
        assert_eq!(c[0].count, 0);
        assert_eq!(c[0].mean_predicted, None);
        assert_eq!(c[1].count, 1);
        assert_eq!(c[1].observed, Some(0.0));
        assert_eq!(c[5].count, 1);
        assert_eq!(c[9].count, 2); // 0.9 and 1.0
        assert_eq!(c[9].mean_predicted, Some(0.95));
        assert_eq!(c[9].observed, Some(0.5));
        assert!(log_loss(&y, &s).unwrap().is_finite());
    }

    #[test]
    fn bad_inputs() {
        assert!(matches!(
            auroc(&[true, true], &[0.1, 0.2]),
            Err(ModelsError::SingleClass { .. })
        ));
        assert!(auroc(&[true], &[0.1, 0.2]).is_err());
        assert!(brier(&[true], &[1.5]).is_err());
        assert!(brier(&[], &[]).is_err());
    }

    /// Naive O(P * N) Mann-Whitney count.
    fn naive_auroc(y: &[bool], s: &[f64]) -> f64 {
        let mut u = 0.0;
        let mut pairs = 0.0;
        for (i, &yi) in y.iter().enumerate() {
            for (j, &yj) in y.iter().enumerate() {
                if yi && !yj {
                    pairs += 1.0;
                    u += match s[i].partial_cmp(&s[j]).unwrap() {
                        Ordering::Greater => 1.0,
                        Ordering::Equal => 0.5,
                        Ordering::Less => 0.0,
                    };
                }
            }
        }
        u / pairs
    }

    /// Naive average precision: for each distinct threshold, precision and recall of `s >= t`.
    fn naive_ap(y: &[bool], s: &[f64]) -> f64 {
        let mut ts: Vec<f64> = s.to_vec();
        ts.sort_by(|a, b| b.total_cmp(a));
        ts.dedup();
        let p = y.iter().filter(|&&v| v).count() as f64;
        let mut prev_r = 0.0;
        let mut ap = 0.0;
        for t in ts {
            let tp = y.iter().zip(s).filter(|(v, x)| **v && **x >= t).count() as f64;
            let k = s.iter().filter(|x| **x >= t).count() as f64;
            let r = tp / p;
            ap += (r - prev_r) * (tp / k);
            prev_r = r;
        }
        ap
    }

    proptest! {
        #[test]
        fn matches_naive(data in prop::collection::vec((any::<bool>(), 0u8..6), 2..60)) {
            let y: Vec<bool> = data.iter().map(|d| d.0).collect();
            // Few distinct scores so that ties are common.
            let s: Vec<f64> = data.iter().map(|d| f64::from(d.1) / 5.0).collect();
            prop_assume!(y.iter().any(|&v| v) && y.iter().any(|&v| !v));
            prop_assert!((auroc(&y, &s).unwrap() - naive_auroc(&y, &s)).abs() < 1e-12);
            prop_assert!((average_precision(&y, &s).unwrap() - naive_ap(&y, &s)).abs() < 1e-12);
            // Reversing the scores reflects AUROC about one half.
            let r: Vec<f64> = s.iter().map(|v| 1.0 - v).collect();
            prop_assert!((auroc(&y, &r).unwrap() - (1.0 - auroc(&y, &s).unwrap())).abs() < 1e-12);
        }
    }
}
