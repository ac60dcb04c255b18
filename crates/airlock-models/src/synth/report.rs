//! What a synthetic table is worth and what it gives away, against the real rows it was made
//! from (`train`) and real rows it never saw (`holdout`). Aggregates only: no row, no value.
//!
//! - **Fidelity**: per column and per pair of columns, 1 − total variation distance between
//!   the real and synthetic marginals over the declared cells; for numeric pairs, the absolute
//!   difference of Pearson correlations.
//! - **Utility** (train on synthetic, test on real): logistic regression and gradient-boosted
//!   trees fitted on the synthetic rows and on the real training rows, both scored by AUROC on
//!   the holdout. Both see the same declared features (numeric values clamped to the bounds,
//!   undeclared categories as missing), so the gap is the data's, not the encoding's.
//! - **Privacy**: distance to the closest record (DCR: the mean over columns of a category
//!   mismatch or a numeric bin difference over the bin count) from synthetic rows to the
//!   training rows, beside the same from holdout rows (a synthetic table that sits closer to
//!   its training rows than fresh real rows do has copied them); the shares of each that
//!   equal a training row cell for cell; and a distance attack: members (training rows) and
//!   non-members (holdout rows) scored by closeness to the synthetic table, with AUC and TPR
//!   at 0.1% and 1% FPR (chance: AUC 0.5, TPR equal to the FPR).

use std::collections::HashMap;

use serde::Serialize;

use super::{ColumnKind, Encoded, SynthColumn, encode};
use crate::gbdt::{GbdtModel, GbdtParams};
use crate::logistic::{LogisticModel, LogisticParams};
use crate::membership::{roc_auc, roc_curve, tpr_at_fpr};
use crate::metrics::auroc;
use crate::model::Model;
use crate::rng::SplitMix64;
use crate::{ModelsError, Table};

/// What the report is computed from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The declared columns (the synthetic table's, in order).
    pub columns: &'a [SynthColumn],
    /// The real rows the synthesiser read.
    pub train: &'a Table,
    /// Real rows it never read.
    pub holdout: &'a Table,
    /// The synthetic rows.
    pub synthetic: &'a Table,
    /// `(column, positive value)` for the utility figures.
    pub target: Option<(&'a str, &'a str)>,
    /// Rows sampled from each side for the distance figures.
    pub sample: usize,
    /// Seed of the samples and of the trees.
    pub seed: u64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SynthReport {
    /// How closely the synthetic marginals follow the real ones.
    pub fidelity: Fidelity,
    /// Train on synthetic, test on real (when a target is named).
    pub utility: Option<Utility>,
    /// Closeness to the training rows.
    pub privacy: PrivacyFigures,
}

/// One column's fidelity.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ColumnFidelity {
    /// The column.
    pub column: String,
    /// 1 − TVD of its marginal.
    pub score: f64,
}

/// One pair's fidelity.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PairFidelity {
    /// First column.
    pub a: String,
    /// Second column.
    pub b: String,
    /// 1 − TVD of the two-way marginal.
    pub score: f64,
    /// |corr(real) − corr(synthetic)| when both are numeric.
    pub correlation_difference: Option<f64>,
}

/// Fidelity figures.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Fidelity {
    /// Mean over columns of 1 − TVD.
    pub mean_column: f64,
    /// Mean over pairs of 1 − TVD.
    pub mean_pair: f64,
    /// Mean correlation difference over numeric pairs.
    pub mean_correlation_difference: Option<f64>,
    /// Per column.
    pub columns: Vec<ColumnFidelity>,
    /// Per pair.
    pub pairs: Vec<PairFidelity>,
}

/// AUROC on the real holdout of the two model families.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FamilyAuroc {
    /// Logistic regression.
    pub logistic: Option<f64>,
    /// Gradient-boosted trees.
    pub gbdt: Option<f64>,
}

/// Train on synthetic, test on real.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Utility {
    /// The target column.
    pub target: String,
    /// Holdout rows scored.
    pub holdout_rows: usize,
    /// Trained on the real training rows.
    pub trained_on_real: FamilyAuroc,
    /// Trained on the synthetic rows.
    pub trained_on_synthetic: FamilyAuroc,
}

/// The distance attack on the synthetic table.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DistanceAttack {
    /// Training rows attacked.
    pub members: usize,
    /// Holdout rows attacked.
    pub non_members: usize,
    /// AUC (0.5 is chance).
    pub auc: Option<f64>,
    /// TPR at 0.1% FPR.
    #[serde(rename = "tpr_at_fpr_0.001")]
    pub tpr_at_fpr_0_001: f64,
    /// TPR at 1% FPR.
    #[serde(rename = "tpr_at_fpr_0.01")]
    pub tpr_at_fpr_0_01: f64,
}

/// Privacy figures.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PrivacyFigures {
    /// Synthetic rows sampled.
    pub synthetic_rows: usize,
    /// Holdout rows sampled.
    pub holdout_rows: usize,
    /// Median DCR of synthetic rows to the training rows.
    pub dcr_synthetic_median: f64,
    /// Median DCR of holdout rows to the training rows (the baseline).
    pub dcr_holdout_median: f64,
    /// 5th percentile of the synthetic DCR.
    pub dcr_synthetic_p05: f64,
    /// 5th percentile of the holdout DCR.
    pub dcr_holdout_p05: f64,
    /// Share of synthetic rows equal to a training row in every declared cell.
    pub exact_match_synthetic: f64,
    /// The same share for holdout rows (the baseline).
    pub exact_match_holdout: f64,
    /// Members against non-members by closeness to the synthetic rows.
    pub distance_attack: DistanceAttack,
}

/// Computes the report.
pub fn report(inputs: &Inputs<'_>) -> Result<SynthReport, ModelsError> {
    let cols = inputs.columns;
    let train = encode(inputs.train, cols)?;
    let holdout = encode(inputs.holdout, cols)?;
    let synthetic = encode(inputs.synthetic, cols)?;
    if train.rows() == 0 || holdout.rows() == 0 || synthetic.rows() == 0 {
        return Err(ModelsError::MetricInput {
            rule: "the training, holdout and synthetic tables each need rows",
        });
    }
    let fidelity = fidelity(inputs, &train, &synthetic)?;
    let utility = match inputs.target {
        None => None,
        Some((target, positive)) => Some(utility(inputs, target, positive)?),
    };
    let privacy = privacy(inputs, &train, &holdout, &synthetic);
    Ok(SynthReport {
        fidelity,
        utility,
        privacy,
    })
}

fn tvd(a: &[u64], b: &[u64]) -> f64 {
    let (na, nb) = (
        a.iter().sum::<u64>().max(1) as f64,
        b.iter().sum::<u64>().max(1) as f64,
    );
    0.5 * a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 / na - *y as f64 / nb).abs())
        .sum::<f64>()
}

/// Pearson correlation over rows where both values are present.
fn correlation(x: &[Option<f64>], y: &[Option<f64>]) -> Option<f64> {
    let pairs: Vec<(f64, f64)> = x
        .iter()
        .zip(y)
        .filter_map(|(a, b)| Some(((*a)?, (*b)?)))
        .collect();
    let n = pairs.len() as f64;
    if n < 2.0 {
        return None;
    }
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in &pairs {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

fn values(table: &Table, c: &SynthColumn) -> Result<Vec<Option<f64>>, ModelsError> {
    Ok(table
        .column(&c.name)?
        .cells()
        .iter()
        .map(|v| c.value(v))
        .collect())
}

fn fidelity(
    inputs: &Inputs<'_>,
    train: &Encoded,
    synthetic: &Encoded,
) -> Result<Fidelity, ModelsError> {
    let cols = inputs.columns;
    let columns: Vec<ColumnFidelity> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| ColumnFidelity {
            column: c.name.clone(),
            score: 1.0 - tvd(&train.histogram(i), &synthetic.histogram(i)),
        })
        .collect();
    // Per numeric column: (real values, synthetic values).
    type Values = Vec<Option<f64>>;
    let mut numeric: HashMap<usize, (Values, Values)> = HashMap::new();
    for (i, c) in cols.iter().enumerate() {
        if c.is_numeric() {
            numeric.insert(i, (values(inputs.train, c)?, values(inputs.synthetic, c)?));
        }
    }
    let mut pairs = Vec::new();
    for (i, ci) in cols.iter().enumerate() {
        for (j, cj) in cols.iter().enumerate().skip(i + 1) {
            let correlation_difference = match (numeric.get(&i), numeric.get(&j)) {
                (Some((ri, si)), Some((rj, sj))) => {
                    match (correlation(ri, rj), correlation(si, sj)) {
                        (Some(r), Some(s)) => Some((r - s).abs()),
                        _ => None,
                    }
                }
                _ => None,
            };
            pairs.push(PairFidelity {
                a: ci.name.clone(),
                b: cj.name.clone(),
                score: 1.0 - tvd(&train.histogram2(i, j), &synthetic.histogram2(i, j)),
                correlation_difference,
            });
        }
    }
    let mean = |v: &mut dyn Iterator<Item = f64>| {
        let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
        (n > 0).then(|| s / n as f64)
    };
    Ok(Fidelity {
        mean_column: mean(&mut columns.iter().map(|c| c.score)).unwrap_or(1.0),
        mean_pair: mean(&mut pairs.iter().map(|p| p.score)).unwrap_or(1.0),
        mean_correlation_difference: mean(
            &mut pairs.iter().filter_map(|p| p.correlation_difference),
        ),
        columns,
        pairs,
    })
}

/// The features every model sees: per categorical column, its declared cells (one-hot for
/// logistic regression, the code for trees); per numeric column, the clamped value (the lower
/// bound when missing) and a missing indicator.
fn design(
    table: &Table,
    features: &[&SynthColumn],
    one_hot: bool,
) -> Result<(Vec<f64>, usize), ModelsError> {
    let mut width = 0;
    for c in features {
        width += match (&c.kind, one_hot) {
            (ColumnKind::Categorical { .. }, true) => c.size(),
            (ColumnKind::Categorical { .. }, false) => 1,
            (ColumnKind::Numeric { .. }, _) => 2,
        };
    }
    let cells: Vec<&[String]> = features
        .iter()
        .map(|c| table.column(&c.name).map(crate::table::Column::cells))
        .collect::<Result<_, _>>()?;
    let mut x = Vec::with_capacity(width * table.rows());
    for r in 0..table.rows() {
        for (c, col) in features.iter().zip(&cells) {
            let cell = col.get(r).map_or("", String::as_str);
            match &c.kind {
                ColumnKind::Categorical { .. } => {
                    let code = c.code(cell) as usize;
                    if one_hot {
                        x.extend((0..c.size()).map(|k| f64::from(u8::from(k == code))));
                    } else {
                        x.push(code as f64);
                    }
                }
                ColumnKind::Numeric { lo, .. } => match c.value(cell) {
                    Some(v) => x.extend([v, 0.0]),
                    None => x.extend([*lo, 1.0]),
                },
            }
        }
    }
    Ok((x, width))
}

fn utility(inputs: &Inputs<'_>, target: &str, positive: &str) -> Result<Utility, ModelsError> {
    let features: Vec<&SynthColumn> = inputs.columns.iter().filter(|c| c.name != target).collect();
    if features.len() == inputs.columns.len() {
        return Err(ModelsError::MissingColumn {
            column: target.to_owned(),
        });
    }
    let labels = |t: &Table| -> Result<Vec<bool>, ModelsError> {
        Ok(t.column(target)?
            .cells()
            .iter()
            .map(|v| v == positive)
            .collect())
    };
    let y_test = labels(inputs.holdout)?;
    let score = |train: &Table| -> Result<FamilyAuroc, ModelsError> {
        let y = labels(train)?;
        if !(y.iter().any(|v| *v) && y.iter().any(|v| !*v)) {
            // A table with one class trains nothing: reported as absent, not as a number.
            return Ok(FamilyAuroc {
                logistic: None,
                gbdt: None,
            });
        }
        let (x, d) = design(train, &features, true)?;
        let (xt, _) = design(inputs.holdout, &features, true)?;
        let lr = LogisticModel::fit(&x, d, &y, &LogisticParams::default())?;
        let s: Vec<f64> = xt
            .chunks(d)
            .map(|row| lr.predict_proba(row))
            .collect::<Result<_, _>>()?;
        let logistic = auroc(&y_test, &s).ok();
        let (x, d) = design(train, &features, false)?;
        let (xt, _) = design(inputs.holdout, &features, false)?;
        let gb = GbdtModel::fit(&x, d, &y, &GbdtParams::default(), inputs.seed)?;
        let s: Vec<f64> = xt
            .chunks(d)
            .map(|row| gb.predict_proba(row))
            .collect::<Result<_, _>>()?;
        Ok(FamilyAuroc {
            logistic,
            gbdt: auroc(&y_test, &s).ok(),
        })
    };
    Ok(Utility {
        target: target.to_owned(),
        holdout_rows: inputs.holdout.rows(),
        trained_on_real: score(inputs.train)?,
        trained_on_synthetic: score(inputs.synthetic)?,
    })
}

/// Distinct rows of a coded table, row-major.
fn distinct_rows(t: &Encoded) -> Vec<Vec<u32>> {
    let mut seen: std::collections::HashSet<Vec<u32>> = std::collections::HashSet::new();
    (0..t.rows())
        .filter_map(|r| t.row(r))
        .filter(|row| seen.insert(row.clone()))
        .collect()
}

fn sample_rows(t: &Encoded, n: usize, rng: &mut SplitMix64) -> Vec<Vec<u32>> {
    let mut idx: Vec<usize> = (0..t.rows()).collect();
    rng.shuffle(&mut idx);
    idx.truncate(n);
    idx.iter().filter_map(|&r| t.row(r)).collect()
}

/// Per column, the weight of a code difference: a category mismatch counts 1, a numeric bin
/// difference its share of the bins (missing against a value counts 1).
fn distance(cols: &[SynthColumn], a: &[u32], b: &[u32]) -> f64 {
    let mut d = 0.0;
    for ((c, &x), &y) in cols.iter().zip(a).zip(b) {
        if x == y {
            continue;
        }
        d += match &c.kind {
            ColumnKind::Numeric { bins, .. } if x < c.missing() && y < c.missing() => {
                f64::from(x.abs_diff(y)) / f64::from(*bins)
            }
            _ => 1.0,
        };
    }
    d / cols.len() as f64
}

fn closest(cols: &[SynthColumn], q: &[u32], reference: &[Vec<u32>]) -> f64 {
    let mut best = f64::INFINITY;
    for r in reference {
        let d = distance(cols, q, r);
        if d < best {
            best = d;
            if d == 0.0 {
                break;
            }
        }
    }
    best
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let at = (v.len().saturating_sub(1) as f64 * q).round() as usize;
    v.get(at).copied().unwrap_or(f64::NAN)
}

fn privacy(
    inputs: &Inputs<'_>,
    train: &Encoded,
    holdout: &Encoded,
    synthetic: &Encoded,
) -> PrivacyFigures {
    let cols = inputs.columns;
    let mut rng = SplitMix64::new(inputs.seed);
    let train_rows = distinct_rows(train);
    let synthetic_rows = distinct_rows(synthetic);
    let syn = sample_rows(synthetic, inputs.sample, &mut rng);
    let hold = sample_rows(holdout, inputs.sample, &mut rng);
    let mut dcr_syn: Vec<f64> = syn.iter().map(|q| closest(cols, q, &train_rows)).collect();
    let mut dcr_hold: Vec<f64> = hold.iter().map(|q| closest(cols, q, &train_rows)).collect();
    let share0 = |v: &[f64]| v.iter().filter(|d| **d == 0.0).count() as f64 / v.len().max(1) as f64;
    let (exact_syn, exact_hold) = (share0(&dcr_syn), share0(&dcr_hold));
    // The attack: as many members as non-members, each scored by closeness to the synthetic.
    let members = sample_rows(train, hold.len(), &mut rng);
    let mut labels = Vec::with_capacity(members.len() + hold.len());
    let mut scores = Vec::with_capacity(labels.capacity());
    for (rows, member) in [(&members, true), (&hold, false)] {
        for q in rows {
            labels.push(member);
            scores.push(-closest(cols, q, &synthetic_rows));
        }
    }
    let roc = roc_curve(&labels, &scores);
    PrivacyFigures {
        synthetic_rows: syn.len(),
        holdout_rows: hold.len(),
        dcr_synthetic_median: quantile(&mut dcr_syn, 0.5),
        dcr_holdout_median: quantile(&mut dcr_hold, 0.5),
        dcr_synthetic_p05: quantile(&mut dcr_syn, 0.05),
        dcr_holdout_p05: quantile(&mut dcr_hold, 0.05),
        exact_match_synthetic: exact_syn,
        exact_match_holdout: exact_hold,
        distance_attack: DistanceAttack {
            members: members.len(),
            non_members: hold.len(),
            auc: roc_auc(&labels, &scores),
            tpr_at_fpr_0_001: tpr_at_fpr(&roc, 0.001),
            tpr_at_fpr_0_01: tpr_at_fpr(&roc, 0.01),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tvd_and_correlation_by_hand() {
        assert!((tvd(&[1, 1], &[2, 0]) - 0.5).abs() < 1e-12);
        assert_eq!(tvd(&[3, 1], &[6, 2]), 0.0);
        let x = [Some(1.0), Some(2.0), Some(3.0), None];
        let y = [Some(2.0), Some(4.0), Some(6.0), Some(1.0)];
        assert!((correlation(&x, &y).unwrap() - 1.0).abs() < 1e-12);
    }

    /// A "synthetic" table that is the training table itself is caught: every row an exact
    /// match, DCR zero, and the attack separates members from non-members.
    #[test]
    fn a_copy_of_the_training_rows_is_flagged() {
        let cols = vec![
            SynthColumn {
                name: "a".into(),
                kind: ColumnKind::Numeric {
                    lo: 0.0,
                    hi: 1000.0,
                    bins: 1000,
                },
            },
            SynthColumn {
                name: "b".into(),
                kind: ColumnKind::Numeric {
                    lo: 0.0,
                    hi: 1000.0,
                    bins: 1000,
                },
            },
        ];
        let mut rng = SplitMix64::new(1);
        let mut make = |n: usize| {
            let a: Vec<String> = (0..n).map(|_| rng.below(1000).to_string()).collect();
            let b: Vec<String> = (0..n).map(|_| rng.below(1000).to_string()).collect();
            Table::from_columns(vec![("a".into(), a), ("b".into(), b)]).unwrap()
        };
        let (train, holdout) = (make(400), make(400));
        let r = report(&Inputs {
            columns: &cols,
            train: &train,
            holdout: &holdout,
            synthetic: &train,
            target: None,
            sample: 200,
            seed: 3,
        })
        .unwrap();
        assert_eq!(r.privacy.exact_match_synthetic, 1.0);
        assert!(r.privacy.exact_match_holdout < 0.01, "{:?}", r.privacy);
        assert_eq!(r.privacy.dcr_synthetic_median, 0.0);
        assert!(r.privacy.distance_attack.auc.unwrap() > 0.9);
        assert!(r.privacy.distance_attack.tpr_at_fpr_0_01 > 0.5);
        assert_eq!(r.fidelity.mean_column, 1.0);
    }
}
