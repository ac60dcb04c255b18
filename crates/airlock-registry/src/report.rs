//! Silent-mode comparison: how a silent (or canary) version would have done next to what
//! clinicians were shown, on the same requests, read back from the ledger.
//!
//! Predictions are paired by request id (one request scores every deployed version). Outcomes
//! posted back for the shown prediction label the whole request, so each version gets outcome
//! metrics on the same patients.

use std::collections::BTreeMap;

use airlock_ledger::{Display, Entry, EventType};
use serde::Serialize;

/// One version's figures.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VersionStats {
    /// Version hash (hex).
    pub version: String,
    /// Predictions shown to clinicians.
    pub shown: u64,
    /// Predictions logged silently.
    pub silent: u64,
    /// Mean score.
    pub mean_score: f64,
    /// Scores in ten equal bins over [0, 1].
    pub histogram: [u64; 10],
    /// Predictions whose request has a posted outcome.
    pub labelled: u64,
    /// AUROC on labelled predictions (when both classes occur).
    pub auroc: Option<f64>,
    /// Brier score on labelled predictions.
    pub brier: Option<f64>,
}

/// Agreement of one version with what was shown, on the requests both scored.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Agreement {
    /// The compared version (hex).
    pub version: String,
    /// Requests scored by it and answered by a shown prediction of another version.
    pub requests: u64,
    /// Share of those on the same side of 0.5 as the shown prediction.
    pub agreement: f64,
    /// Mean absolute score difference.
    pub mean_abs_diff: f64,
}

/// The comparison report for one model.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Comparison {
    /// The model.
    pub model: String,
    /// Prediction entries read.
    pub predictions: u64,
    /// Distinct requests.
    pub requests: u64,
    /// Overrides recorded.
    pub overrides: u64,
    /// Per version.
    pub versions: Vec<VersionStats>,
    /// Each version against the shown predictions.
    pub agreement: Vec<Agreement>,
}

struct Row {
    version: String,
    score: f64,
    shown: bool,
    index: u64,
}

/// Build the report from ledger entries (any mix; only this model's predictions count) and the
/// posted outcomes (prediction ledger index to label).
pub fn compare(
    model: &str,
    entries: &[(u64, Entry)],
    outcomes: &BTreeMap<u64, bool>,
) -> Comparison {
    let mut by_request: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let mut overrides = 0;
    let mut predictions = 0;
    for (index, e) in entries {
        let Some(p) = &e.prediction else { continue };
        if p.model != model {
            continue;
        }
        if e.event == EventType::Override {
            overrides += 1;
            continue;
        }
        if e.event != EventType::Prediction {
            continue;
        }
        let Ok(score) = p.output.parse::<f64>() else {
            continue;
        };
        predictions += 1;
        by_request
            .entry(e.request_id.as_str().to_string())
            .or_default()
            .push(Row {
                version: p.version_hash.to_hex(),
                score,
                shown: p.display == Display::Shown,
                index: *index,
            });
    }
    // A request's label: the outcome posted for any of its predictions.
    let label_of = |rows: &[Row]| rows.iter().find_map(|r| outcomes.get(&r.index).copied());
    let mut per: BTreeMap<String, (VersionStats, Vec<(bool, f64)>)> = BTreeMap::new();
    let mut agree: BTreeMap<String, (u64, u64, f64)> = BTreeMap::new();
    for rows in by_request.values() {
        let label = label_of(rows);
        let shown = rows.iter().find(|r| r.shown);
        for r in rows {
            let (st, labelled) = per.entry(r.version.clone()).or_insert_with(|| {
                (
                    VersionStats {
                        version: r.version.clone(),
                        shown: 0,
                        silent: 0,
                        mean_score: 0.0,
                        histogram: [0; 10],
                        labelled: 0,
                        auroc: None,
                        brier: None,
                    },
                    Vec::new(),
                )
            });
            if r.shown {
                st.shown += 1;
            } else {
                st.silent += 1;
            }
            st.mean_score += r.score;
            let bin = ((r.score * 10.0).floor().clamp(0.0, 9.0)) as usize;
            if let Some(h) = st.histogram.get_mut(bin) {
                *h += 1;
            }
            if let Some(l) = label {
                labelled.push((l, r.score));
            }
            if let Some(s) = shown
                && !r.shown
            {
                let a = agree.entry(r.version.clone()).or_insert((0, 0, 0.0));
                a.0 += 1;
                if (r.score >= 0.5) == (s.score >= 0.5) {
                    a.1 += 1;
                }
                a.2 += (r.score - s.score).abs();
            }
        }
    }
    let versions = per
        .into_values()
        .map(|(mut st, labelled)| {
            let n = st.shown + st.silent;
            if n > 0 {
                st.mean_score /= n as f64;
            }
            st.labelled = labelled.len() as u64;
            let (labels, scores): (Vec<bool>, Vec<f64>) = labelled.into_iter().unzip();
            st.auroc = airlock_models::metrics::auroc(&labels, &scores).ok();
            st.brier = airlock_models::metrics::brier(&labels, &scores).ok();
            st
        })
        .collect();
    let agreement = agree
        .into_iter()
        .map(|(version, (n, same, diff))| Agreement {
            version,
            requests: n,
            agreement: if n > 0 { same as f64 / n as f64 } else { 0.0 },
            mean_abs_diff: if n > 0 { diff / n as f64 } else { 0.0 },
        })
        .collect();
    Comparison {
        model: model.to_string(),
        predictions,
        requests: by_request.len() as u64,
        overrides,
        versions,
        agreement,
    }
}
