//! Alert rules over monitoring windows: which measure, which threshold, how many predictions a
//! window holds, how many samples a window needs before it counts, and how many consecutive
//! windows must breach (hysteresis: one breaching window is noise, `consecutive` are a trend; a
//! firing alert resolves at the first clean window that has enough samples).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ModelsError;

/// The rules shipped with Airlock, used until a model's own are set.
pub const DEFAULT_RULES: &str = include_str!("default_rules.toml");

/// A rule set (TOML: `[[rule]]` tables).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// The rules.
    #[serde(rename = "rule")]
    pub rules: Vec<Rule>,
}

/// What a rule watches, per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// The share of input features that drifted against the version's reference.
    ShareDrifted,
    /// How many input features drifted.
    DriftedFeatures,
    /// 1 when the score's distribution drifted, else 0.
    ScoreDrifted,
    /// AUROC estimated from the scores (CBPE).
    EstimatedAuroc,
    /// AUROC on posted outcomes (samples: outcomes, not predictions).
    RealisedAuroc,
    /// Expected calibration error on posted outcomes.
    RealisedEce,
}

impl Measure {
    /// The measure's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::ShareDrifted => "share_drifted",
            Measure::DriftedFeatures => "drifted_features",
            Measure::ScoreDrifted => "score_drifted",
            Measure::EstimatedAuroc => "estimated_auroc",
            Measure::RealisedAuroc => "realised_auroc",
            Measure::RealisedEce => "realised_ece",
        }
    }

    /// Whether the measure rests on outcomes.
    pub fn needs_outcomes(self) -> bool {
        matches!(self, Measure::RealisedAuroc | Measure::RealisedEce)
    }
}

/// How loud.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record.
    Info,
    /// Someone should look.
    #[default]
    Warning,
    /// Act now.
    Critical,
}

impl Severity {
    /// The severity's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Its name (unique in the set).
    pub name: String,
    /// What it watches.
    pub measure: Measure,
    /// Breach when the measure is at least this.
    #[serde(default)]
    pub at_least: Option<f64>,
    /// Breach when the measure is below this.
    #[serde(default)]
    pub below: Option<f64>,
    /// Predictions per window (consecutive, from the version's first logged prediction).
    #[serde(default = "default_window")]
    pub window: usize,
    /// Samples a window needs to count (predictions; outcomes for realised measures).
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
    /// Consecutive breaching windows before the alert fires.
    #[serde(default = "one")]
    pub consecutive: usize,
    /// How loud.
    #[serde(default)]
    pub severity: Severity,
    /// Roll a canary back when the alert fires on it.
    #[serde(default)]
    pub rollback_canary: bool,
    /// For drift measures: statistical tests at every reference size (see
    /// [`crate::monitor::DriftOptions::statistical_tests`]).
    #[serde(default)]
    pub statistical_tests: bool,
    /// For drift measures: one threshold for every feature (a p-value with tests).
    #[serde(default)]
    pub drift_threshold: Option<f64>,
}

impl Rule {
    /// The drift options the rule's drift measures use.
    pub fn drift_options(&self) -> crate::monitor::DriftOptions {
        crate::monitor::DriftOptions {
            statistical_tests: self.statistical_tests,
            threshold: self.drift_threshold,
            ..crate::monitor::DriftOptions::default()
        }
    }
}

fn default_window() -> usize {
    500
}
fn default_min_samples() -> u64 {
    100
}
fn one() -> usize {
    1
}

impl Rules {
    /// Parse and check a rule set: names unique, exactly one of `at_least` and `below`, a
    /// window and a count of at least one. Errors name the rule and the field.
    pub fn parse(text: &str) -> Result<Self, ModelsError> {
        let rules: Rules = toml::from_str(text).map_err(|e| ModelsError::Rules {
            reason: e.message().to_string(),
        })?;
        let bad = |rule: &str, why: &str| ModelsError::Rules {
            reason: format!("rule `{rule}`: {why}"),
        };
        let mut names = std::collections::BTreeSet::new();
        for r in &rules.rules {
            let well_formed = !r.name.is_empty()
                && r.name.len() <= 64
                && r.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !well_formed {
                return Err(ModelsError::Rules {
                    reason: "a rule name is 1 to 64 letters, digits, `-`, `_` or `.`".into(),
                });
            }
            if !names.insert(r.name.as_str()) {
                return Err(bad(&r.name, "names must be unique"));
            }
            match (r.at_least, r.below) {
                (Some(x), None) | (None, Some(x)) if x.is_finite() => {}
                _ => {
                    return Err(bad(
                        &r.name,
                        "give exactly one finite `at_least` or `below`",
                    ));
                }
            }
            if r.window == 0 || r.consecutive == 0 {
                return Err(bad(
                    &r.name,
                    "`window` and `consecutive` must be at least 1",
                ));
            }
            if r.min_samples as usize > r.window && !r.measure.needs_outcomes() {
                return Err(bad(
                    &r.name,
                    "`min_samples` exceeds `window`: it could never fire",
                ));
            }
        }
        Ok(rules)
    }

    /// The shipped defaults.
    pub fn defaults() -> Self {
        // The embedded text is checked by a test.
        Rules::parse(DEFAULT_RULES).unwrap_or(Rules { rules: Vec::new() })
    }
}

/// One window's figure for a rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WindowValue {
    /// The measure (absent when it cannot be computed: one outcome class, no reference).
    pub value: Option<f64>,
    /// Samples behind it.
    pub samples: u64,
    /// The window's first prediction (ledger index).
    pub first_index: u64,
    /// Its last.
    pub last_index: u64,
}

/// What a rule says of the latest windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The last `consecutive` windows all breached.
    Breaching,
    /// The latest window that counts did not breach.
    Clear,
    /// Not enough windows with enough samples to say.
    Undecided,
}

impl Rule {
    /// Whether one value breaches.
    pub fn breaches(&self, value: f64) -> bool {
        match (self.at_least, self.below) {
            (Some(t), _) => value >= t,
            (_, Some(t)) => value < t,
            _ => false,
        }
    }

    /// The verdict on complete windows, oldest first. Windows without enough samples (or
    /// without a value) do not count either way.
    pub fn verdict(&self, windows: &[WindowValue]) -> Verdict {
        let counted: Vec<f64> = windows
            .iter()
            .filter(|w| w.samples >= self.min_samples)
            .filter_map(|w| w.value)
            .collect();
        let Some(&latest) = counted.last() else {
            return Verdict::Undecided;
        };
        if !self.breaches(latest) {
            return Verdict::Clear;
        }
        let tail = counted.iter().rev().take(self.consecutive);
        if counted.len() >= self.consecutive && tail.clone().all(|&v| self.breaches(v)) {
            Verdict::Breaching
        } else {
            Verdict::Undecided
        }
    }
}

/// What to do given the rule's verdict and whether it is firing now: `Some(true)` fire,
/// `Some(false)` resolve, `None` nothing.
pub fn transition(verdict: Verdict, firing: bool) -> Option<bool> {
    match (verdict, firing) {
        (Verdict::Breaching, false) => Some(true),
        (Verdict::Clear, true) => Some(false),
        _ => None,
    }
}
