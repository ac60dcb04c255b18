//! # Validation: how good is the model, for whom, and how sure are we?
//!
//! [`validate`] measures a binary classifier on held-out labels and scores and returns the
//! numbers of a [`ValidationReport`]; [`crate::policy`] decides whether they pass. Nothing here
//! reads a file or a clock: the caller scores the rows (for example with
//! [`crate::TrainedModel::predict_table`]) and signs and stores the report.
//!
//! **Overall metrics.** AUROC, average precision, Brier score and log loss are those of
//! [`crate::metrics`] (scikit-learn's definitions). The expected calibration error uses ten
//! equal-frequency bins ([`expected_calibration_error`]); the calibration slope and intercept
//! come from an unpenalised logistic recalibration `y ~ intercept + slope * logit(p)`
//! ([`calibration_fit`]): a slope below 1 means over-confident scores, an intercept away from 0
//! scores that are too high or too low on average.
//!
//! **Groups.** For every sensitive attribute and each of its values, at the operating threshold
//! (a score `>= threshold` is a positive prediction): AUROC, true and false positive rates,
//! positive predictive value, selection rate and ECE. A rate whose denominator is empty (TPR in
//! a group without positives, PPV where nothing is selected) is `None`, not 0 as scikit-learn's
//! `confusion_matrix(normalize="true")` would report it: a group that cannot be measured must
//! not look perfect or terrible. A group with fewer rows than the minimum is reported as too
//! small with no numbers at all, not even its size, since a small cell is itself disclosive
//! (the reason behind CMS's cell-size suppression rule); it also stays out of the disparities.
//!
//! **Disparities** follow Fairlearn with `method="between_groups"`: for each group metric the
//! difference is the largest minus the smallest group value (`MetricFrame.difference`) and the
//! ratio the smallest over the largest (`MetricFrame.ratio`), over the groups large enough to
//! measure where the metric is defined. The equalized-odds difference is the larger of the TPR
//! and FPR differences (`equalized_odds_difference`, `agg="worst_case"`), the demographic-parity
//! ratio the selection-rate ratio (`demographic_parity_ratio`). A difference needs two defined
//! groups; a ratio is `None` when the largest value is 0 (Fairlearn's `0 / 0 = NaN`).
//!
//! **Intervals.** One nonparametric bootstrap over rows serves every statistic, so the
//! intervals of groups and disparities reflect the same resamples. Resample `b` draws `n` row
//! indices with the crate's SplitMix64 seeded with [`ValidationConfig::seed`], one stream
//! for all resamples, each index `below(n)` (multiply-shift): a reference implementation can
//! replay the exact resamples, and `tests/validation_oracle.rs` does so in Python. A statistic
//! is recomputed on every resample where it is defined; its interval is the 2.5th and 97.5th
//! percentiles of those values with linear interpolation (numpy's default), and
//! [`Estimate::resamples`] says how many resamples defined it. Rows are sorted by score once;
//! a resample is a count per row, expanded in that order, so no resample sorts.
//!
//! Percentile intervals are honest for the smooth statistics (AUROC, rates, Brier score). ECE
//! is a sum of absolute values, biased upwards in finite samples, and each resample adds its
//! own noise on top: for a well-calibrated model the whole interval can lie above the
//! estimate. Read an ECE interval as a plausible upper bound, not as centred on the estimate;
//! the same holds for differences between groups whose true gap is near zero.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ModelsError;
use crate::membership::MembershipInference;
use crate::metrics;
use crate::model::sigmoid;
use crate::rng::SplitMix64;
use crate::table::Column;

/// Fewest bootstrap resamples a validation may use.
pub const MIN_RESAMPLES: u32 = 200;
/// Most bootstrap resamples: bounds the work and memory one request can ask for (every
/// resample's statistics are kept until the percentiles are read).
pub const MAX_RESAMPLES: u32 = 10_000;
/// Bins of the expected calibration error.
pub const ECE_BINS: usize = 10;
/// Groups smaller than this are reported as too small unless configured otherwise.
pub const DEFAULT_MIN_GROUP_SIZE: u64 = 100;

/// Probabilities are clipped to `[EPS, 1 - EPS]` before a logit, as scikit-learn's log loss
/// clips them.
const EPS: f64 = 1e-15;
/// Newton iterations of the calibration fit; reaching the limit means the data are (nearly)
/// separable and the fit has no finite optimum.
const NEWTON_ITERATIONS: usize = 100;
/// The calibration fit has converged when no coefficient moves by more than this.
const NEWTON_STEP_TOL: f64 = 1e-10;
/// Percentiles of the 95% interval.
const LOWER_QUANTILE: f64 = 0.025;
const UPPER_QUANTILE: f64 = 0.975;

/// Positions of the overall statistics in [`Measures::overall`].
const AUROC: usize = 0;
const AUPRC: usize = 1;
const BRIER: usize = 2;
const LOG_LOSS: usize = 3;
const ECE: usize = 4;
const SLOPE: usize = 5;
const INTERCEPT: usize = 6;
const OVERALL: usize = 7;

/// A statistic with its bootstrap 95% percentile interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Estimate {
    /// The statistic on the data as given.
    pub value: f64,
    /// `[lo, hi]`: the 2.5th and 97.5th percentiles over the resamples that define the
    /// statistic; `None` when none does.
    pub interval: Option<[f64; 2]>,
    /// Resamples that defined the statistic and so entered the interval.
    pub resamples: u32,
}

/// How to validate: the operating threshold, the smallest group measured, the bootstrap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationConfig {
    /// Operating threshold: a score `>= threshold` is a positive prediction.
    pub threshold: f64,
    /// Groups with fewer rows are reported as too small.
    pub min_group_size: u64,
    /// Bootstrap resamples, [`MIN_RESAMPLES`] to [`MAX_RESAMPLES`].
    pub resamples: u32,
    /// Seed of the bootstrap.
    pub seed: u64,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            threshold: 0.5,
            min_group_size: DEFAULT_MIN_GROUP_SIZE,
            resamples: 1000,
            seed: 0,
        }
    }
}

impl ValidationConfig {
    fn check(&self) -> Result<(), ModelsError> {
        let bad = |param, rule| Err(ModelsError::InvalidParam { param, rule });
        if !(0.0..=1.0).contains(&self.threshold) {
            return bad("threshold", "must be in [0, 1]");
        }
        if self.min_group_size == 0 {
            return bad("min_group_size", "must be at least 1");
        }
        if !(MIN_RESAMPLES..=MAX_RESAMPLES).contains(&self.resamples) {
            return bad("resamples", "must be between 200 and 10000");
        }
        Ok(())
    }
}

/// A metric measured per group.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum GroupMetric {
    /// Area under the ROC curve (needs both classes in the group).
    Auroc,
    /// True positive rate (recall): selected positives over positives.
    Tpr,
    /// False positive rate: selected negatives over negatives.
    Fpr,
    /// Positive predictive value (precision): positives among the selected.
    Ppv,
    /// Share of the group selected.
    SelectionRate,
    /// Expected calibration error within the group.
    Ece,
}

impl GroupMetric {
    /// Every group metric, in report order.
    pub const ALL: [GroupMetric; 6] = [
        GroupMetric::Auroc,
        GroupMetric::Tpr,
        GroupMetric::Fpr,
        GroupMetric::Ppv,
        GroupMetric::SelectionRate,
        GroupMetric::Ece,
    ];

    /// The name used in reports and policies.
    pub fn name(self) -> &'static str {
        match self {
            GroupMetric::Auroc => "auroc",
            GroupMetric::Tpr => "tpr",
            GroupMetric::Fpr => "fpr",
            GroupMetric::Ppv => "ppv",
            GroupMetric::SelectionRate => "selection_rate",
            GroupMetric::Ece => "ece",
        }
    }

    fn index(self) -> usize {
        match self {
            GroupMetric::Auroc => 0,
            GroupMetric::Tpr => 1,
            GroupMetric::Fpr => 2,
            GroupMetric::Ppv => 3,
            GroupMetric::SelectionRate => 4,
            GroupMetric::Ece => 5,
        }
    }
}

impl fmt::Display for GroupMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Metrics over every row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OverallMetrics {
    /// Rows scored.
    pub n: u64,
    /// Positive rows.
    pub positives: u64,
    /// Area under the ROC curve.
    pub auroc: Estimate,
    /// Average precision (area under the precision-recall curve, step-wise).
    pub auprc: Estimate,
    /// Brier score.
    pub brier: Estimate,
    /// Log loss.
    pub log_loss: Estimate,
    /// Expected calibration error, ten equal-frequency bins.
    pub ece: Estimate,
    /// Calibration slope; `None` when the recalibration has no finite optimum (scores that
    /// separate the classes perfectly, or a constant score).
    pub slope: Option<Estimate>,
    /// Calibration intercept; `None` when the slope is.
    pub intercept: Option<Estimate>,
}

/// One (attribute, value) group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupMetrics {
    /// Sensitive attribute (column) name.
    pub attribute: String,
    /// The attribute's value that defines the group.
    pub value: String,
    /// Fewer rows than the minimum: no number below is reported.
    pub too_small: bool,
    /// Rows in the group.
    pub n: Option<u64>,
    /// Positive rows in the group.
    pub positives: Option<u64>,
    /// AUROC; `None` when the group holds one class only.
    pub auroc: Option<Estimate>,
    /// True positive rate at the threshold; `None` without positives.
    pub tpr: Option<Estimate>,
    /// False positive rate at the threshold; `None` without negatives.
    pub fpr: Option<Estimate>,
    /// Positive predictive value at the threshold; `None` when nothing is selected.
    pub ppv: Option<Estimate>,
    /// Share selected at the threshold.
    pub selection_rate: Option<Estimate>,
    /// Expected calibration error within the group.
    pub ece: Option<Estimate>,
}

impl GroupMetrics {
    /// The estimate of one metric.
    pub fn metric(&self, metric: GroupMetric) -> Option<&Estimate> {
        match metric {
            GroupMetric::Auroc => self.auroc.as_ref(),
            GroupMetric::Tpr => self.tpr.as_ref(),
            GroupMetric::Fpr => self.fpr.as_ref(),
            GroupMetric::Ppv => self.ppv.as_ref(),
            GroupMetric::SelectionRate => self.selection_rate.as_ref(),
            GroupMetric::Ece => self.ece.as_ref(),
        }
    }
}

/// Gaps between the measured groups of one attribute (Fairlearn's `between_groups`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributeDisparities {
    /// Sensitive attribute (column) name.
    pub attribute: String,
    /// Groups large enough to measure.
    pub groups_measured: u32,
    /// Groups reported as too small, left out of every figure here.
    pub groups_too_small: u32,
    /// Largest group value minus the smallest, per metric defined in at least two groups.
    pub difference: BTreeMap<GroupMetric, Estimate>,
    /// Smallest group value over the largest, per metric defined in at least two groups with
    /// a largest value above 0.
    pub ratio: BTreeMap<GroupMetric, Estimate>,
    /// The larger of the TPR and FPR differences.
    pub equalized_odds_difference: Option<Estimate>,
    /// The selection-rate ratio.
    pub demographic_parity_ratio: Option<Estimate>,
}

/// The measured part of a validation report. The service adds what identifies it (model,
/// dataset, policy hash, time), the verdict of [`crate::policy::evaluate`] and the signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationReport {
    /// How the figures were computed.
    pub config: ValidationConfig,
    /// Metrics over every row.
    pub metrics: OverallMetrics,
    /// One entry per (attribute, value), attributes in the order given, values sorted.
    pub groups: Vec<GroupMetrics>,
    /// One entry per attribute, in the order given.
    pub disparities: Vec<AttributeDisparities>,
    /// The membership-inference attack on the training data, when run
    /// ([`crate::membership::membership_inference`]).
    pub membership_inference: Option<MembershipInference>,
}

/// Logistic recalibration coefficients: `P(y = 1) = sigmoid(intercept + slope * logit(p))`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalibrationFit {
    /// Intercept (calibration-in-the-large when the slope is 1).
    pub intercept: f64,
    /// Slope on the logit of the score.
    pub slope: f64,
}

/// Measure `scores` against `labels`, overall and for every group of every `sensitive`
/// column, with bootstrap intervals. The membership attack is run separately and attached to
/// [`ValidationReport::membership_inference`].
pub fn validate(
    labels: &[bool],
    scores: &[f64],
    sensitive: &[&Column],
    config: &ValidationConfig,
) -> Result<ValidationReport, ModelsError> {
    config.check()?;
    let data = Prepared::new(labels, scores, sensitive, config)?;
    let n = data.p.len();
    let point = data.measure(&vec![1; n]);
    let mut draws = Vec::with_capacity(config.resamples as usize);
    let mut rng = SplitMix64::new(config.seed);
    let mut counts = vec![0u32; n];
    for _ in 0..config.resamples {
        counts.fill(0);
        for _ in 0..n {
            let row = rng.below(n);
            if let Some(c) = data.rank.get(row).and_then(|&pos| counts.get_mut(pos)) {
                *c += 1;
            }
        }
        draws.push(data.measure(&counts));
    }
    data.report(config, &point, &draws)
}

/// Expected calibration error over ten equal-frequency bins.
///
/// Rows are ranked by score: a row whose score has `r` rows strictly below it falls in bin
/// `floor(10 * r / n)`, so bins hold `n / 10` rows each up to rounding and ties (tied scores
/// share a bin) and the result does not depend on row order. Then
/// `ECE = sum_b (n_b / n) * |mean score in b - positive rate in b|`, the weighted mean over
/// non-empty bins of the gap between predicted and observed rates.
pub fn expected_calibration_error(labels: &[bool], scores: &[f64]) -> Result<f64, ModelsError> {
    let sample = sorted_sample(labels, scores)?;
    ece(&sample).ok_or(ModelsError::MetricInput { rule: "no rows" })
}

/// Fit `y ~ intercept + slope * logit(p)` by unpenalised maximum likelihood (Newton's method
/// from intercept 0 and slope 1, halving a step that would lower the likelihood), with `p`
/// clipped to `[1e-15, 1 - 1e-15]`. `None` when the likelihood has no finite maximum: one class
/// only, a constant score, or scores that separate the classes.
pub fn calibration_fit(
    labels: &[bool],
    scores: &[f64],
) -> Result<Option<CalibrationFit>, ModelsError> {
    let sample = sorted_sample(labels, scores)?;
    Ok(fit_calibration(&sample))
}

/// Check labels and scores and pair them, sorted by descending score.
fn sorted_sample(labels: &[bool], scores: &[f64]) -> Result<Vec<(f64, bool)>, ModelsError> {
    check_scores(labels, scores)?;
    let mut sample: Vec<(f64, bool)> = scores
        .iter()
        .map(|s| s + 0.0)
        .zip(labels.iter().copied())
        .collect();
    sample.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(sample)
}

fn check_scores(labels: &[bool], scores: &[f64]) -> Result<(), ModelsError> {
    if labels.is_empty() {
        return Err(ModelsError::MetricInput { rule: "no rows" });
    }
    if scores.len() != labels.len() {
        return Err(ModelsError::LengthMismatch {
            field: "scores".to_owned(),
            expected: labels.len(),
            found: scores.len(),
        });
    }
    if let Some(row) = scores.iter().position(|s| !(0.0..=1.0).contains(s)) {
        return Err(ModelsError::InvalidScore {
            field: "scores",
            row,
        });
    }
    Ok(())
}

/// One sensitive attribute, prepared for repeated measurement.
#[derive(Debug)]
struct Attribute {
    name: String,
    /// Distinct values, sorted.
    values: Vec<String>,
    /// (rows, positives) per value.
    sizes: Vec<(u64, u64)>,
    /// Per value: its index among the measured groups, `None` when too small.
    slot: Vec<Option<usize>>,
    /// Groups measured.
    measured: usize,
    /// Per sorted position: the value index of that row.
    code: Vec<usize>,
}

/// Labels, scores and groups sorted once by descending score.
#[derive(Debug)]
struct Prepared {
    p: Vec<f64>,
    y: Vec<bool>,
    /// Original row index to sorted position.
    rank: Vec<usize>,
    attributes: Vec<Attribute>,
    threshold: f64,
}

/// Every statistic of one (re)sample.
#[derive(Debug, Clone)]
struct Measures {
    overall: [Option<f64>; OVERALL],
    /// Per attribute, per measured group, per [`GroupMetric`].
    groups: Vec<Vec<[Option<f64>; 6]>>,
    /// Per attribute.
    disparities: Vec<Disparity>,
}

#[derive(Debug, Clone, Copy)]
struct Disparity {
    difference: [Option<f64>; 6],
    ratio: [Option<f64>; 6],
    equalized_odds_difference: Option<f64>,
    demographic_parity_ratio: Option<f64>,
}

impl Prepared {
    fn new(
        labels: &[bool],
        scores: &[f64],
        sensitive: &[&Column],
        config: &ValidationConfig,
    ) -> Result<Self, ModelsError> {
        check_scores(labels, scores)?;
        if !(labels.iter().any(|y| *y) && labels.iter().any(|y| !*y)) {
            return Err(ModelsError::SingleClass {
                part: "validation data",
            });
        }
        let n = labels.len();
        let mut order: Vec<usize> = (0..n).collect();
        // -0.0 sorts apart from 0.0 under `total_cmp`; adding 0.0 makes them one score.
        let score = |i: usize| scores.get(i).map_or(0.0, |s| s + 0.0);
        order.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
        let mut rank = vec![0usize; n];
        for (pos, &row) in order.iter().enumerate() {
            if let Some(r) = rank.get_mut(row) {
                *r = pos;
            }
        }
        let p: Vec<f64> = order.iter().map(|&i| score(i)).collect();
        let y: Vec<bool> = order
            .iter()
            .map(|&i| labels.get(i).copied().unwrap_or(false))
            .collect();
        let mut attributes: Vec<Attribute> = Vec::with_capacity(sensitive.len());
        for col in sensitive {
            if attributes.iter().any(|a| a.name == col.name()) {
                return Err(ModelsError::DuplicateColumn {
                    column: col.name().to_owned(),
                });
            }
            attributes.push(Attribute::new(col, &order, &y, config.min_group_size)?);
        }
        Ok(Prepared {
            p,
            y,
            rank,
            attributes,
            threshold: config.threshold,
        })
    }

    /// Every statistic of the sample that holds sorted row `i` `counts[i]` times.
    fn measure(&self, counts: &[u32]) -> Measures {
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        let mut all: Vec<(f64, bool)> = Vec::with_capacity(total);
        let mut buckets: Vec<Vec<Vec<(f64, bool)>>> = self
            .attributes
            .iter()
            .map(|a| vec![Vec::new(); a.measured])
            .collect();
        for (pos, (&c, (&p, &y))) in counts.iter().zip(self.p.iter().zip(&self.y)).enumerate() {
            if c == 0 {
                continue;
            }
            let c = c as usize;
            all.extend(std::iter::repeat_n((p, y), c));
            for (attr, bucket) in self.attributes.iter().zip(buckets.iter_mut()) {
                let slot = attr
                    .code
                    .get(pos)
                    .and_then(|&v| attr.slot.get(v))
                    .copied()
                    .flatten();
                if let Some(group) = slot.and_then(|s| bucket.get_mut(s)) {
                    group.extend(std::iter::repeat_n((p, y), c));
                }
            }
        }
        let groups: Vec<Vec<[Option<f64>; 6]>> = buckets
            .iter()
            .map(|b| b.iter().map(|g| group_stats(g, self.threshold)).collect())
            .collect();
        let disparities = groups.iter().map(|g| disparity(g)).collect();
        Measures {
            overall: overall_stats(&all),
            groups,
            disparities,
        }
    }

    fn report(
        &self,
        config: &ValidationConfig,
        point: &Measures,
        draws: &[Measures],
    ) -> Result<ValidationReport, ModelsError> {
        let overall = |i: usize| {
            estimate(
                point.overall.get(i).copied().flatten(),
                draws.iter().map(|d| d.overall.get(i).copied().flatten()),
            )
        };
        // The point AUROC is defined (both classes were checked); the rest are always defined
        // on a non-empty sample.
        let required = |i: usize| {
            overall(i).ok_or(ModelsError::SingleClass {
                part: "validation data",
            })
        };
        let positives = self.y.iter().filter(|y| **y).count() as u64;
        let metrics = OverallMetrics {
            n: self.y.len() as u64,
            positives,
            auroc: required(AUROC)?,
            auprc: required(AUPRC)?,
            brier: required(BRIER)?,
            log_loss: required(LOG_LOSS)?,
            ece: required(ECE)?,
            slope: overall(SLOPE),
            intercept: overall(INTERCEPT),
        };
        let mut groups = Vec::new();
        let mut disparities = Vec::with_capacity(self.attributes.len());
        for (a, attr) in self.attributes.iter().enumerate() {
            for ((value, &(n, pos)), slot) in attr.values.iter().zip(&attr.sizes).zip(&attr.slot) {
                let stat = |m: GroupMetric| {
                    let pick = |ms: &Measures| {
                        slot.and_then(|s| {
                            ms.groups
                                .get(a)
                                .and_then(|g| g.get(s))
                                .and_then(|g| g.get(m.index()))
                                .copied()
                                .flatten()
                        })
                    };
                    estimate(pick(point), draws.iter().map(pick))
                };
                groups.push(GroupMetrics {
                    attribute: attr.name.clone(),
                    value: value.clone(),
                    too_small: slot.is_none(),
                    n: slot.map(|_| n),
                    positives: slot.map(|_| pos),
                    auroc: stat(GroupMetric::Auroc),
                    tpr: stat(GroupMetric::Tpr),
                    fpr: stat(GroupMetric::Fpr),
                    ppv: stat(GroupMetric::Ppv),
                    selection_rate: stat(GroupMetric::SelectionRate),
                    ece: stat(GroupMetric::Ece),
                });
            }
            let disp = |f: &dyn Fn(&Disparity) -> Option<f64>| {
                let pick = |ms: &Measures| ms.disparities.get(a).and_then(f);
                estimate(pick(point), draws.iter().map(pick))
            };
            let mut difference = BTreeMap::new();
            let mut ratio = BTreeMap::new();
            for m in GroupMetric::ALL {
                let i = m.index();
                if let Some(e) = disp(&|d| d.difference.get(i).copied().flatten()) {
                    difference.insert(m, e);
                }
                if let Some(e) = disp(&|d| d.ratio.get(i).copied().flatten()) {
                    ratio.insert(m, e);
                }
            }
            disparities.push(AttributeDisparities {
                attribute: attr.name.clone(),
                groups_measured: attr.measured as u32,
                groups_too_small: (attr.values.len() - attr.measured) as u32,
                difference,
                ratio,
                equalized_odds_difference: disp(&|d| d.equalized_odds_difference),
                demographic_parity_ratio: disp(&|d| d.demographic_parity_ratio),
            });
        }
        Ok(ValidationReport {
            config: config.clone(),
            metrics,
            groups,
            disparities,
            membership_inference: None,
        })
    }
}

impl Attribute {
    fn new(
        col: &Column,
        order: &[usize],
        sorted_labels: &[bool],
        min_group_size: u64,
    ) -> Result<Self, ModelsError> {
        let cells = col.cells();
        if cells.len() != order.len() {
            return Err(ModelsError::LengthMismatch {
                field: col.name().to_owned(),
                expected: order.len(),
                found: cells.len(),
            });
        }
        let mut values: Vec<String> = cells.to_vec();
        values.sort_unstable();
        values.dedup();
        if values.len() < 2 {
            return Err(ModelsError::SingleGroup {
                attribute: col.name().to_owned(),
            });
        }
        let mut sizes = vec![(0u64, 0u64); values.len()];
        let mut code = Vec::with_capacity(order.len());
        for (&row, &y) in order.iter().zip(sorted_labels) {
            let v = cells
                .get(row)
                .and_then(|c| values.binary_search(c).ok())
                .unwrap_or(0);
            if let Some(s) = sizes.get_mut(v) {
                s.0 += 1;
                s.1 += u64::from(y);
            }
            code.push(v);
        }
        let mut measured = 0usize;
        let slot = sizes
            .iter()
            .map(|&(n, _)| {
                (n >= min_group_size).then(|| {
                    measured += 1;
                    measured - 1
                })
            })
            .collect();
        Ok(Attribute {
            name: col.name().to_owned(),
            values,
            sizes,
            slot,
            measured,
            code,
        })
    }
}

/// Overall statistics of a sample sorted by descending score (empty samples give `None`s).
fn overall_stats(sample: &[(f64, bool)]) -> [Option<f64>; OVERALL] {
    let (p, y): (Vec<f64>, Vec<bool>) = sample.iter().copied().unzip();
    let fit = fit_calibration(sample);
    [
        metrics::auroc(&y, &p).ok(),
        metrics::average_precision(&y, &p).ok(),
        metrics::brier(&y, &p).ok(),
        metrics::log_loss(&y, &p).ok(),
        ece(sample),
        fit.map(|f| f.slope),
        fit.map(|f| f.intercept),
    ]
}

/// Group statistics at the threshold, in [`GroupMetric::ALL`] order.
fn group_stats(sample: &[(f64, bool)], threshold: f64) -> [Option<f64>; 6] {
    let (mut tp, mut fp, mut pos) = (0u64, 0u64, 0u64);
    for &(p, y) in sample {
        let selected = p >= threshold;
        pos += u64::from(y);
        tp += u64::from(y && selected);
        fp += u64::from(!y && selected);
    }
    let n = sample.len() as u64;
    let neg = n - pos;
    let rate = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
    let auroc = if pos > 0 && neg > 0 {
        let (p, y): (Vec<f64>, Vec<bool>) = sample.iter().copied().unzip();
        metrics::auroc(&y, &p).ok()
    } else {
        None
    };
    [
        auroc,
        rate(tp, pos),
        rate(fp, neg),
        rate(tp, tp + fp),
        rate(tp + fp, n),
        ece(sample),
    ]
}

/// Fairlearn's between-groups difference and ratio of each metric over the groups where it is
/// defined.
fn disparity(groups: &[[Option<f64>; 6]]) -> Disparity {
    let mut difference = [None; 6];
    let mut ratio = [None; 6];
    for (i, (d, r)) in difference.iter_mut().zip(ratio.iter_mut()).enumerate() {
        let values: Vec<f64> = groups
            .iter()
            .filter_map(|g| g.get(i).copied().flatten())
            .collect();
        if values.len() < 2 {
            continue;
        }
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        *d = Some(hi - lo);
        *r = (hi > 0.0).then(|| lo / hi);
    }
    let at = |a: &[Option<f64>; 6], m: GroupMetric| a.get(m.index()).copied().flatten();
    let equalized_odds_difference = match (
        at(&difference, GroupMetric::Tpr),
        at(&difference, GroupMetric::Fpr),
    ) {
        (Some(t), Some(f)) => Some(t.max(f)),
        _ => None,
    };
    Disparity {
        difference,
        ratio,
        equalized_odds_difference,
        demographic_parity_ratio: at(&ratio, GroupMetric::SelectionRate),
    }
}

/// [`expected_calibration_error`] of a sample sorted by descending score.
fn ece(sample: &[(f64, bool)]) -> Option<f64> {
    let n = sample.len();
    if n == 0 {
        return None;
    }
    let mut sums = [0.0f64; ECE_BINS];
    let mut above = 0usize;
    for tie in sample.chunk_by(|a, b| a.0.total_cmp(&b.0) == Ordering::Equal) {
        let below = n - above - tie.len();
        let bin = (ECE_BINS * below / n).min(ECE_BINS - 1);
        if let Some(s) = sums.get_mut(bin) {
            *s += tie
                .iter()
                .map(|&(p, y)| p - f64::from(u8::from(y)))
                .sum::<f64>();
        }
        above += tie.len();
    }
    Some(sums.iter().map(|s| s.abs()).sum::<f64>() / n as f64)
}

/// Log-likelihood of the recalibration model at `(a, b)`.
fn log_likelihood(points: &[(f64, f64)], a: f64, b: f64) -> f64 {
    points
        .iter()
        .map(|&(x, y)| {
            let eta = a + b * x;
            // log(1 + e^eta) without overflow.
            let softplus = if eta > 0.0 {
                eta + (-eta).exp().ln_1p()
            } else {
                eta.exp().ln_1p()
            };
            y * eta - softplus
        })
        .sum()
}

/// [`calibration_fit`] of a sample.
fn fit_calibration(sample: &[(f64, bool)]) -> Option<CalibrationFit> {
    let points: Vec<(f64, f64)> = sample
        .iter()
        .map(|&(p, y)| {
            let p = p.clamp(EPS, 1.0 - EPS);
            ((p / (1.0 - p)).ln(), f64::from(u8::from(y)))
        })
        .collect();
    let (mut a, mut b) = (0.0f64, 1.0f64);
    let mut ll = log_likelihood(&points, a, b);
    for _ in 0..NEWTON_ITERATIONS {
        let (mut g0, mut g1, mut h00, mut h01, mut h11) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &(x, y) in &points {
            let mu = sigmoid(a + b * x);
            let w = mu * (1.0 - mu);
            g0 += y - mu;
            g1 += (y - mu) * x;
            h00 += w;
            h01 += w * x;
            h11 += w * x * x;
        }
        let det = h00 * h11 - h01 * h01;
        // A singular information matrix: one class, or every logit equal.
        if !(det.is_finite() && det > 1e-12 * h00 * h11) {
            return None;
        }
        let da = (h11 * g0 - h01 * g1) / det;
        let db = (h00 * g1 - h01 * g0) / det;
        let mut t = 1.0f64;
        let mut accepted = false;
        for _ in 0..50 {
            let next = log_likelihood(&points, a + t * da, b + t * db);
            // Rounding may lower the likelihood by a hair at the optimum itself.
            if next >= ll - 1e-12 * (1.0 + ll.abs()) {
                ll = next;
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        if !accepted {
            return None;
        }
        a += t * da;
        b += t * db;
        if (t * da).abs().max((t * db).abs()) < NEWTON_STEP_TOL {
            return (a.is_finite() && b.is_finite()).then_some(CalibrationFit {
                intercept: a,
                slope: b,
            });
        }
    }
    None
}

/// A point estimate with the percentile interval of its defined resample values.
fn estimate(point: Option<f64>, draws: impl Iterator<Item = Option<f64>>) -> Option<Estimate> {
    let value = point?;
    let mut values: Vec<f64> = draws.flatten().collect();
    values.sort_by(f64::total_cmp);
    let interval = match (
        percentile(&values, LOWER_QUANTILE),
        percentile(&values, UPPER_QUANTILE),
    ) {
        (Some(lo), Some(hi)) => Some([lo, hi]),
        _ => None,
    };
    Some(Estimate {
        value,
        interval,
        resamples: values.len() as u32,
    })
}

/// numpy's default (`method="linear"`) percentile of sorted values: `h = (m - 1) q`, then
/// linear interpolation between the neighbours of `h`.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let m = sorted.len();
    if m == 0 {
        return None;
    }
    let h = (m - 1) as f64 * q;
    let lo = h.floor() as usize;
    let frac = h - lo as f64;
    let a = *sorted.get(lo)?;
    let b = sorted.get(lo + 1).copied().unwrap_or(a);
    Some(a + (b - a) * frac)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::table::Table;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// Naive ECE straight from the definition: rank by counting strictly smaller scores.
    fn naive_ece(y: &[bool], p: &[f64]) -> f64 {
        let n = p.len();
        let mut sums = [0.0; ECE_BINS];
        for (i, &pi) in p.iter().enumerate() {
            let r = p.iter().filter(|&&q| q < pi).count();
            sums[ECE_BINS * r / n] += pi - f64::from(u8::from(y[i]));
        }
        sums.iter().map(|s: &f64| s.abs()).sum::<f64>() / n as f64
    }

    #[test]
    fn ece_by_hand() {
        // Ten rows, one per bin: ECE is the mean absolute residual.
        let p: Vec<f64> = (0..10).map(|i| f64::from(i) / 10.0 + 0.05).collect();
        let y: Vec<bool> = (0..10).map(|i| i >= 5).collect();
        let want = p
            .iter()
            .zip(&y)
            .map(|(p, y)| (p - f64::from(u8::from(*y))).abs())
            .sum::<f64>()
            / 10.0;
        assert!(close(expected_calibration_error(&y, &p).unwrap(), want));
        // Perfectly calibrated within each bin: zero.
        let p = [0.5, 0.5, 0.5, 0.5];
        let y = [true, false, true, false];
        assert!(close(expected_calibration_error(&y, &p).unwrap(), 0.0));
    }

    #[test]
    fn calibration_fit_recovers_a_known_recalibration() {
        // Scores drawn uniformly; labels from sigmoid(0.3 + 0.7 * logit(p)) with a fixed rng.
        let mut rng = SplitMix64::new(11);
        let (mut y, mut p) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let s = 0.02 + 0.96 * rng.next_f64();
            let z = 0.3 + 0.7 * (s / (1.0 - s)).ln();
            y.push(rng.next_f64() < sigmoid(z));
            p.push(s);
        }
        let fit = calibration_fit(&y, &p).unwrap().unwrap();
        assert!((fit.intercept - 0.3).abs() < 0.05, "{fit:?}");
        assert!((fit.slope - 0.7).abs() < 0.05, "{fit:?}");
        // Separable scores and a constant score have no finite fit.
        assert_eq!(
            calibration_fit(&[false, false, true, true], &[0.1, 0.2, 0.8, 0.9]).unwrap(),
            None
        );
        assert_eq!(
            calibration_fit(&[false, true, true], &[0.3, 0.3, 0.3]).unwrap(),
            None
        );
    }

    #[test]
    fn percentile_matches_numpy() {
        // np.percentile([1, 2, 3, 4, 10], [2.5, 97.5]) == [1.1, 9.4]
        let v = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert!(close(percentile(&v, LOWER_QUANTILE).unwrap(), 1.1));
        assert!(close(percentile(&v, UPPER_QUANTILE).unwrap(), 9.4));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[2.0], 0.975), Some(2.0));
    }

    #[test]
    fn disparity_follows_fairlearn_between_groups() {
        let g = [
            [Some(0.8), Some(0.5), Some(0.1), None, Some(0.2), Some(0.05)],
            [Some(0.7), Some(0.8), Some(0.3), None, Some(0.4), Some(0.02)],
            [None, Some(0.6), Some(0.2), Some(0.5), Some(0.1), Some(0.03)],
        ];
        let d = disparity(&g);
        assert!(close(d.difference[0].unwrap(), 0.1));
        assert!(close(d.ratio[0].unwrap(), 0.7 / 0.8));
        assert!(close(d.difference[1].unwrap(), 0.3));
        assert!(close(d.difference[2].unwrap(), 0.2));
        // PPV is defined in one group only: no comparison.
        assert_eq!(d.difference[3], None);
        assert!(close(d.equalized_odds_difference.unwrap(), 0.3));
        assert!(close(d.demographic_parity_ratio.unwrap(), 0.25));
        // Nobody selected anywhere: the ratio is 0 / 0.
        let z = [[None, None, None, None, Some(0.0), None]; 2];
        assert_eq!(disparity(&z).demographic_parity_ratio, None);
        assert_eq!(disparity(&z).difference[4], Some(0.0));
    }

    fn column(name: &str, cells: Vec<String>) -> Table {
        Table::from_columns(vec![(name.to_owned(), cells)]).unwrap()
    }

    #[test]
    fn measure_with_unit_counts_matches_metrics() {
        let mut rng = SplitMix64::new(5);
        let n = 300;
        let p: Vec<f64> = (0..n)
            .map(|_| (rng.next_f64() * 20.0).floor() / 20.0)
            .collect();
        let y: Vec<bool> = p.iter().map(|&s| rng.next_f64() < s).collect();
        let g = column(
            "g",
            (0..n).map(|i| ["a", "b", "c"][i % 3].to_owned()).collect(),
        );
        let cfg = ValidationConfig {
            min_group_size: 1,
            ..ValidationConfig::default()
        };
        let data = Prepared::new(&y, &p, &[g.column("g").unwrap()], &cfg).unwrap();
        let m = data.measure(&vec![1; n]);
        assert!(close(
            m.overall[AUROC].unwrap(),
            metrics::auroc(&y, &p).unwrap()
        ));
        assert!(close(
            m.overall[AUPRC].unwrap(),
            metrics::average_precision(&y, &p).unwrap()
        ));
        assert!(close(
            m.overall[BRIER].unwrap(),
            metrics::brier(&y, &p).unwrap()
        ));
        assert!(close(m.overall[ECE].unwrap(), naive_ece(&y, &p)));
        // Group `b` is every third row from 1.
        let (yb, pb): (Vec<bool>, Vec<f64>) = (1..n).step_by(3).map(|i| (y[i], p[i])).unzip();
        assert!(close(
            m.groups[0][1][0].unwrap(),
            metrics::auroc(&yb, &pb).unwrap()
        ));
        let sel = pb.iter().filter(|&&s| s >= 0.5).count() as f64 / pb.len() as f64;
        assert!(close(m.groups[0][1][4].unwrap(), sel));
    }

    proptest! {
        #[test]
        fn ece_matches_naive(data in prop::collection::vec((any::<bool>(), 0u8..8), 1..80)) {
            let y: Vec<bool> = data.iter().map(|d| d.0).collect();
            // Few distinct scores so that ties straddle bin edges.
            let p: Vec<f64> = data.iter().map(|d| f64::from(d.1) / 7.0).collect();
            let got = expected_calibration_error(&y, &p).unwrap();
            prop_assert!((got - naive_ece(&y, &p)).abs() < 1e-12);
            // Row order does not matter.
            let (mut yr, mut pr) = (y.clone(), p.clone());
            yr.reverse();
            pr.reverse();
            prop_assert!((expected_calibration_error(&yr, &pr).unwrap() - got).abs() < 1e-12);
        }
    }
}
