//! # Membership inference: has the model memorised the patients it was trained on?
//!
//! An auditor's attack on the model's own training rows, run with reference models that the
//! engine trains itself, so the report says how well a strong published attack tells training
//! rows (members) from held-out rows (non-members). The headline is the true positive rate at
//! a low false positive rate (0.1% and 1%), not the AUC (Carlini et al., "Membership Inference
//! Attacks From First Principles", S&P 2022): an attack that is sure of a few patients is a
//! privacy failure even when its AUC is near one half.
//!
//! **Which attack.** Offline RMIA (Zarifzadeh, Liu, Shokri, "Low-Cost High-Power Membership
//! Inference Attacks", ICML 2024) rather than offline LiRA, because reference models are the
//! whole cost of the audit (each is a full training run) and RMIA was designed for, and
//! evaluated with, very few of them. Offline LiRA scores a row by a Gaussian fitted to the OUT
//! models' logit confidences; with a handful of models the per-row variance is meaningless and
//! LiRA falls back to one global variance. RMIA needs only the mean OUT probability, and it is
//! implemented here as the authors' reference code (privacytrustlab/ml_privacy_meter,
//! `modules/mia/attacks/rmia.py`) does it:
//!
//! - The signal is `Pr(x | θ)`, the probability a model gives to the true label of row `x`.
//! - Reference models are trained in pairs on complementary, label-stratified random halves
//!   of the attack pool (members and non-members together), with the target's family,
//!   hyper-parameters, signature and encoding. Each pool row is therefore OUT for exactly half
//!   of the reference models, and only those OUT models estimate it ("offline").
//! - `Pr(x) = ((1 + a) * mean_OUT Pr(x | θ_ref) + (1 - a)) / 2`, the paper's offline
//!   approximation of the mean over IN and OUT models, and `LR(x) = Pr(x | θ) / Pr(x)`.
//! - `a` is tuned as the reference code tunes it: reference model 0 plays the target, its own
//!   training half being the members, attacked with every reference model outside its pair
//!   (its pair partner is IN exactly where it is OUT); the `a` in `{0, 0.1, ..., 1}` with the
//!   largest AUC wins, the first on ties.
//! - RMIA's score is `Pr_z(LR(x) / LR(z) > γ)` over population rows `z` that no model saw. For
//!   a single target model the `LR(z)` do not depend on `x`, so the score is a non-decreasing
//!   function of `LR(x)`, and ranking rows by `LR(x)` gives the same ROC curve with the ties
//!   that a finite population sample creates resolved. We rank by `LR(x)` directly: that needs
//!   no population sample, so every held-out row can be audited, and it removes ties at the top
//!   of the ranking, exactly where a TPR at 0.1% FPR is read.
//!
//! Reference models see half of the pool, while the target saw its split's training share (80%
//! by default), so they are a little weaker than the target; the paper trains both on halves.
//! Matching the sizes would leave each row OUT for only a fifth of the models. `tpr_at_fpr(α)` is the largest TPR over thresholds (distinct scores,
//! ties moving together) whose FPR is at most `α`; with `k` non-members the smallest non-zero
//! FPR is `1 / k`, so fewer than 1,000 non-members read TPR at 0.1% FPR as TPR at zero FPR.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::error::ModelsError;
use crate::gbdt::GbdtModel;
use crate::logistic::LogisticModel;
use crate::model::AnyModel;
use crate::rng::SplitMix64;
use crate::table::Table;
use crate::train::{DataSplit, Experiment, Params, TrainedModel};

/// Probabilities are kept at least this far from 0 so that ratios stay finite.
const EPS: f64 = 1e-15;
/// Candidate values of the offline coefficient `a`: 0, 0.1, ..., 1.
const A_GRID: u32 = 10;

/// How to run the attack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttackConfig {
    /// Reference models: even (they come in complementary pairs), 4 to 64. Four is the
    /// fewest that lets `a` be tuned on a pair the tuning target is not part of.
    pub reference_models: u32,
    /// Members audited at most (a seeded sample of the training rows).
    pub max_members: u32,
    /// Non-members audited at most (a seeded sample of the held-out rows).
    pub max_non_members: u32,
    /// Seed of the reference halves, the reference models' own randomness and the samples.
    pub seed: u64,
}

impl Default for AttackConfig {
    fn default() -> Self {
        AttackConfig {
            reference_models: 4,
            max_members: 10_000,
            max_non_members: 10_000,
            seed: 0,
        }
    }
}

impl AttackConfig {
    fn check(&self) -> Result<(), ModelsError> {
        let bad = |param, rule| Err(ModelsError::InvalidParam { param, rule });
        if !(4..=64).contains(&self.reference_models) || !self.reference_models.is_multiple_of(2) {
            return bad("reference_models", "must be even, between 4 and 64");
        }
        if self.max_members == 0 {
            return bad("max_members", "must be at least 1");
        }
        if self.max_non_members == 0 {
            return bad("max_non_members", "must be at least 1");
        }
        Ok(())
    }
}

/// Which attack produced a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Attack {
    /// Offline RMIA (Zarifzadeh, Liu, Shokri, ICML 2024).
    RmiaOffline,
}

/// What the attack achieved against the target model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MembershipInference {
    /// The attack.
    pub attack: Attack,
    /// Area under the attack's ROC curve (members positive); 0.5 is chance.
    pub auc: f64,
    /// True positive rate at a false positive rate of at most 0.1% (chance: 0.001).
    #[serde(rename = "tpr_at_fpr_0.001")]
    pub tpr_at_fpr_0_001: f64,
    /// True positive rate at a false positive rate of at most 1% (chance: 0.01).
    #[serde(rename = "tpr_at_fpr_0.01")]
    pub tpr_at_fpr_0_01: f64,
    /// Reference models trained.
    pub reference_models: u32,
    /// Members (training rows) attacked.
    pub members: u64,
    /// Non-members (held-out rows) attacked.
    pub non_members: u64,
    /// The tuned offline coefficient `a`.
    pub offline_a: f64,
    /// The seed of the run.
    pub seed: u64,
}

/// The model under attack and the rows it was, and was not, trained on.
#[derive(Debug, Clone, Copy)]
pub struct AttackTarget<'a> {
    /// The target model.
    pub model: &'a TrainedModel,
    /// Its hyper-parameters: the reference models are trained with them.
    pub params: &'a Params,
    /// The table holding members and non-members (the training dataset version).
    pub table: &'a Table,
    /// The target column.
    pub target: &'a str,
    /// The target value that counts as positive.
    pub positive: &'a str,
    /// Rows of `table` the model was trained on.
    pub members: &'a [usize],
    /// Rows of `table` it was not trained on.
    pub non_members: &'a [usize],
}

/// Attack the model trained in `experiment` on its own split of `table`: the split is
/// recomputed from the experiment's seed and held-out share, and must reproduce the recorded
/// split sizes; `model` must be the experiment's model.
pub fn membership_inference_for_experiment(
    model: &TrainedModel,
    experiment: &Experiment,
    table: &Table,
    config: &AttackConfig,
) -> Result<MembershipInference, ModelsError> {
    if model.hash() != experiment.model_hash {
        return Err(ModelsError::InvalidParam {
            param: "model",
            rule: "must be the experiment's model (hashes differ)",
        });
    }
    let labels = labels(table, &experiment.target, &experiment.positive)?;
    let split = DataSplit::stratified(&labels, experiment.split.test_fraction, experiment.seed);
    if split.train.len() as u64 != experiment.split.train_rows
        || split.test.len() as u64 != experiment.split.test_rows
    {
        return Err(ModelsError::InvalidParam {
            param: "table",
            rule: "must be the experiment's training table (its split does not reproduce)",
        });
    }
    membership_inference(
        &AttackTarget {
            model,
            params: &experiment.params,
            table,
            target: &experiment.target,
            positive: &experiment.positive,
            members: &split.train,
            non_members: &split.test,
        },
        config,
    )
}

/// Run offline RMIA against `target`.
pub fn membership_inference(
    target: &AttackTarget<'_>,
    config: &AttackConfig,
) -> Result<MembershipInference, ModelsError> {
    config.check()?;
    if target.params.kind() != target.model.model().kind() {
        return Err(ModelsError::InvalidParam {
            param: "params",
            rule: "must be of the target model's family",
        });
    }
    let rows = target.table.rows();
    let labels = labels(target.table, target.target, target.positive)?;
    // The pool: every member and non-member, each row once, ascending.
    let mut role: Vec<Option<bool>> = vec![None; rows];
    for (list, member, param) in [
        (target.members, true, "members"),
        (target.non_members, false, "non_members"),
    ] {
        if list.is_empty() {
            return Err(ModelsError::InvalidParam {
                param,
                rule: "must not be empty",
            });
        }
        for &r in list {
            let slot = role.get_mut(r).ok_or(ModelsError::InvalidParam {
                param,
                rule: "holds a row index outside the table",
            })?;
            if slot.is_some_and(|m| m != member) {
                return Err(ModelsError::InvalidParam {
                    param: "non_members",
                    rule: "must not share rows with members",
                });
            }
            *slot = Some(member);
        }
    }
    let pool: Vec<usize> = (0..rows)
        .filter(|&r| role.get(r).copied().flatten().is_some())
        .collect();
    let pool_labels: Vec<bool> = pool
        .iter()
        .map(|&r| labels.get(r).copied().unwrap_or(false))
        .collect();
    let x = target.model.encode_rows(target.table, &pool)?;
    let d = target.model.model().n_inputs();

    // The audited rows, as positions in the pool.
    let mut rng = SplitMix64::new(config.seed);
    let mut audit: Vec<(usize, bool)> = Vec::new();
    for (member, max) in [(true, config.max_members), (false, config.max_non_members)] {
        let mut positions: Vec<usize> = pool
            .iter()
            .enumerate()
            .filter(|(_, r)| role.get(**r).copied().flatten() == Some(member))
            .map(|(i, _)| i)
            .collect();
        rng.shuffle(&mut positions);
        positions.truncate(max as usize);
        positions.sort_unstable();
        audit.extend(positions.into_iter().map(|i| (i, member)));
    }
    let true_label = |i: usize| pool_labels.get(i).copied().unwrap_or(false);
    let signal = |p: f64, y: bool| (if y { p } else { 1.0 - p }).clamp(EPS, 1.0);
    let predict = |model: &AnyModel| -> Result<Vec<f64>, ModelsError> {
        audit
            .iter()
            .map(|&(i, _)| {
                let row = x.get(i * d..(i + 1) * d).ok_or(ModelsError::Dimension {
                    expected: d,
                    found: 0,
                })?;
                Ok(signal(model.predict_proba(row)?, true_label(i)))
            })
            .collect()
    };

    // Reference models in complementary pairs of label-stratified halves of the pool.
    let k = config.reference_models as usize;
    let mut inside: Vec<Vec<bool>> = Vec::with_capacity(k);
    let mut signals: Vec<Vec<f64>> = Vec::with_capacity(k);
    for _ in 0..k / 2 {
        let seed = rng.next_u64();
        let halves = DataSplit::stratified(&pool_labels, 0.5, seed);
        for half in [&halves.train, &halves.test] {
            let mut member = vec![false; pool.len()];
            for &i in half {
                if let Some(m) = member.get_mut(i) {
                    *m = true;
                }
            }
            let model = fit(&x, d, &pool_labels, half, target.params, seed)?;
            signals.push(predict(&model)?);
            inside.push(
                audit
                    .iter()
                    .map(|&(i, _)| member.get(i).copied().unwrap_or(false))
                    .collect(),
            );
        }
    }
    let target_signal = predict(target.model.model())?;

    // Tune `a` with reference model 0 as the target and the pairs other than its own.
    let pseudo_members: Vec<bool> = inside.first().cloned().unwrap_or_default();
    let pseudo_target: Vec<f64> = signals.first().cloned().unwrap_or_default();
    let mut best = (0.0f64, f64::NEG_INFINITY);
    for step in 0..=A_GRID {
        let a = f64::from(step) / f64::from(A_GRID);
        let scores = likelihood_ratios(&pseudo_target, &signals, &inside, 2, a);
        let auc = roc_auc(&pseudo_members, &scores).unwrap_or(0.5);
        if auc > best.1 {
            best = (a, auc);
        }
    }
    let a = best.0;

    let scores = likelihood_ratios(&target_signal, &signals, &inside, 0, a);
    let members: Vec<bool> = audit.iter().map(|&(_, m)| m).collect();
    let roc = roc_curve(&members, &scores);
    let n_members = members.iter().filter(|m| **m).count() as u64;
    Ok(MembershipInference {
        attack: Attack::RmiaOffline,
        auc: roc_auc(&members, &scores).unwrap_or(0.5),
        tpr_at_fpr_0_001: tpr_at_fpr(&roc, 0.001),
        tpr_at_fpr_0_01: tpr_at_fpr(&roc, 0.01),
        reference_models: config.reference_models,
        members: n_members,
        non_members: members.len() as u64 - n_members,
        offline_a: a,
        seed: config.seed,
    })
}

/// `target == positive` for every row of the target column.
fn labels(table: &Table, target: &str, positive: &str) -> Result<Vec<bool>, ModelsError> {
    Ok(table
        .column(target)?
        .cells()
        .iter()
        .map(|c| c == positive)
        .collect())
}

/// Fit a model of `params`' family on the pool positions `rows`.
fn fit(
    x: &[f64],
    d: usize,
    labels: &[bool],
    rows: &[usize],
    params: &Params,
    seed: u64,
) -> Result<AnyModel, ModelsError> {
    let mut xs = Vec::with_capacity(rows.len() * d);
    let mut ys = Vec::with_capacity(rows.len());
    for &i in rows {
        xs.extend_from_slice(x.get(i * d..(i + 1) * d).unwrap_or_default());
        ys.push(labels.get(i).copied().unwrap_or(false));
    }
    if !(ys.iter().any(|y| *y) && ys.iter().any(|y| !*y)) {
        return Err(ModelsError::SingleClass {
            part: "reference model's training half",
        });
    }
    Ok(match params {
        Params::Logistic(p) => AnyModel::Logistic(LogisticModel::fit(&xs, d, &ys, p)?),
        Params::Gbdt(p) => AnyModel::Gbdt(GbdtModel::fit(&xs, d, &ys, p, seed)?),
    })
}

/// `LR(x) = Pr(x | target) / Pr(x)` for every audited row, `Pr(x)` from the reference models
/// from index `skip` on (0: all; 2: all but the pair that holds the tuning target) that were
/// not trained on `x`.
fn likelihood_ratios(
    target: &[f64],
    signals: &[Vec<f64>],
    inside: &[Vec<bool>],
    skip: usize,
    a: f64,
) -> Vec<f64> {
    target
        .iter()
        .enumerate()
        .map(|(j, &t)| {
            let (sum, count) = signals
                .iter()
                .zip(inside)
                .skip(skip)
                .filter(|(_, ins)| !ins.get(j).copied().unwrap_or(true))
                .fold((0.0f64, 0u32), |(s, c), (sig, _)| {
                    (s + sig.get(j).copied().unwrap_or(EPS), c + 1)
                });
            // Every pool row is OUT for one model of each pair; without one, the ratio falls
            // back to the prior alone.
            let mean_out = if count > 0 {
                sum / f64::from(count)
            } else {
                0.5
            };
            let prior = ((1.0 + a) * mean_out + (1.0 - a)) / 2.0;
            t / prior.max(EPS)
        })
        .collect()
}

/// (positives, negatives) per distinct score, highest score first.
fn tie_groups(labels: &[bool], scores: &[f64]) -> Vec<(u64, u64)> {
    let mut pairs: Vec<(f64, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    pairs
        .chunk_by(|a, b| a.0.total_cmp(&b.0) == Ordering::Equal)
        .map(|g| {
            let p = g.iter().filter(|(_, y)| *y).count() as u64;
            (p, g.len() as u64 - p)
        })
        .collect()
}

/// Mann-Whitney AUC with ties counted half; `None` without both classes.
pub(crate) fn roc_auc(labels: &[bool], scores: &[f64]) -> Option<f64> {
    let groups = tie_groups(labels, scores);
    let p: u64 = groups.iter().map(|g| g.0).sum();
    let n: u64 = groups.iter().map(|g| g.1).sum();
    if p == 0 || n == 0 {
        return None;
    }
    let mut negatives_above = 0u64;
    let mut u = 0.0f64;
    for (gp, gn) in groups {
        let below = n - negatives_above - gn;
        u += gp as f64 * (below as f64 + 0.5 * gn as f64);
        negatives_above += gn;
    }
    Some(u / (p as f64 * n as f64))
}

/// ROC points `(fpr, tpr)` from the origin, one per distinct score.
pub(crate) fn roc_curve(labels: &[bool], scores: &[f64]) -> Vec<(f64, f64)> {
    let groups = tie_groups(labels, scores);
    let p = groups.iter().map(|g| g.0).sum::<u64>().max(1) as f64;
    let n = groups.iter().map(|g| g.1).sum::<u64>().max(1) as f64;
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut out = vec![(0.0, 0.0)];
    for (gp, gn) in groups {
        tp += gp;
        fp += gn;
        out.push((fp as f64 / n, tp as f64 / p));
    }
    out
}

/// The largest TPR at an FPR of at most `alpha`.
pub(crate) fn tpr_at_fpr(roc: &[(f64, f64)], alpha: f64) -> f64 {
    roc.iter()
        .filter(|(fpr, _)| *fpr <= alpha)
        .map(|(_, tpr)| *tpr)
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_summaries_by_hand() {
        // Members {0.9, 0.8, 0.4}, non-members {0.7, 0.4, 0.1}.
        let y = [true, true, true, false, false, false];
        let s = [0.9, 0.8, 0.4, 0.7, 0.4, 0.1];
        // Pairs won: 0.9 and 0.8 beat all 3; 0.4 beats 0.1 and ties 0.4: 2 + 2*3... = 7.5 / 9.
        assert!((roc_auc(&y, &s).unwrap() - 7.5 / 9.0).abs() < 1e-12);
        let roc = roc_curve(&y, &s);
        assert_eq!(tpr_at_fpr(&roc, 0.0), 2.0 / 3.0);
        assert_eq!(tpr_at_fpr(&roc, 0.34), 2.0 / 3.0);
        assert_eq!(tpr_at_fpr(&roc, 0.67), 1.0);
        assert_eq!(roc_auc(&[true], &[0.3]), None);
    }

    #[test]
    fn config_rules() {
        let odd = AttackConfig {
            reference_models: 5,
            ..AttackConfig::default()
        };
        assert!(matches!(
            odd.check(),
            Err(ModelsError::InvalidParam {
                param: "reference_models",
                ..
            })
        ));
        assert!(AttackConfig::default().check().is_ok());
    }
}
