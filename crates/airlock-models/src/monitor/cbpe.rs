//! Confidence-based performance estimation (NannyML's CBPE): with calibrated scores, each
//! prediction is a positive with probability equal to its score, so the expected confusion
//! matrix, and from it AUROC, precision and recall, can be estimated before any outcome arrives.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Performance estimated from calibrated scores alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Estimated {
    /// Expected AUROC.
    pub auroc: f64,
    /// Expected precision at the threshold.
    pub precision: f64,
    /// Expected recall at the threshold.
    pub recall: f64,
    /// The operating threshold (a score at or above it is a positive).
    pub threshold: f64,
    /// Scores the estimate rests on.
    pub n: u64,
}

/// NannyML 0.13's `estimate_roc_auc`, `estimate_precision` and `estimate_recall`, with the
/// scores as both the calibrated and the model's probabilities. `None` for no scores.
pub fn cbpe(scores: &[f64], threshold: f64) -> Option<Estimated> {
    if scores.is_empty() {
        return None;
    }
    let mut sorted = scores.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    // Expected true and false positives above each cut, rounded as NannyML rounds them.
    let round5 = |x: f64| (x * 1e5).round_ties_even() / 1e5;
    let mut tps = Vec::with_capacity(sorted.len() + 1);
    let mut fps = Vec::with_capacity(sorted.len() + 1);
    tps.push(0.0);
    fps.push(0.0);
    let mut tp = 0.0;
    for (i, p) in sorted.iter().enumerate() {
        tp += p;
        tps.push(round5(tp));
        fps.push(round5(1.0 + i as f64 - tp));
    }
    let positives = tps.last().copied().unwrap_or(0.0);
    let negatives = fps.last().copied().unwrap_or(0.0);
    let mut auroc = 0.0;
    for (t, f) in tps.windows(2).zip(fps.windows(2)) {
        if let ([t0, t1], [f0, f1]) = (t, f) {
            auroc += (f1 / negatives - f0 / negatives) * (t0 / positives + t1 / positives) / 2.0;
        }
    }
    let (mut tp, mut fp, mut fneg) = (0.0, 0.0, 0.0);
    for &p in scores {
        if p >= threshold {
            tp += p;
            fp += 1.0 - p;
        } else {
            fneg += p;
        }
    }
    let ratio = |a: f64, b: f64| if a + b != 0.0 { a / (a + b) } else { 0.0 };
    Some(Estimated {
        auroc,
        precision: ratio(tp, fp),
        recall: ratio(tp, fneg),
        threshold,
        n: scores.len() as u64,
    })
}
