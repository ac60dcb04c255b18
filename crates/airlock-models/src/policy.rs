//! # Validation policy: what must a model show before it may be approved?
//!
//! A [`Policy`] is a short TOML document of rules over a [`ValidationReport`]: a floor on
//! AUROC, a ceiling on calibration error, ceilings on group disparities (for every sensitive
//! attribute, optionally tightened or relaxed per attribute), the smallest group worth
//! measuring, and a ceiling on the membership-inference attack's TPR at 0.1% FPR. Every key is
//! optional except `version` and `min_group_size`; an absent rule is not checked. Unknown keys
//! are errors that name the key, so a misspelt rule can never pass silently.
//!
//! [`evaluate`] checks every rule and names each one that failed by its path in the TOML
//! (`min_auroc`, `fairness.max_difference.tpr`, `attributes.race.min_ratio.selection_rate`).
//! A rule whose figure is missing from the report fails: a disparity that could not be
//! measured (fewer than two groups large enough), an attack that was not run, an attribute the
//! policy names that was not among the sensitive attributes. Rules compare point estimates;
//! the intervals are there for the committee reading the report.
//!
//! A policy is named by [`Policy::hash`], the SHA-256 of its canonical JSON, so comments and
//! layout in the TOML file do not change which policy a report passed.
//!
//! The default ([`DEFAULT_POLICY_TOML`], equal to [`Policy::default`]) was set against the
//! readmission models on the full Diabetes 130-US table (20,353 held-out rows): both have AUROC
//! near 0.66 and ECE below 0.01. It reads disparities through their intervals
//! ([`Evidence::Interval`]) because a between-groups gap is a maximum over groups, and with
//! groups of a few hundred rows and a few dozen positives the largest gap is mostly noise (the
//! AUROC gap between race groups was 0.15 with an interval of [0.09, 0.29], set by a group of
//! 41 positives). It gates the gaps in discrimination (AUROC) and calibration (ECE) between
//! groups, and sets no equalized-odds or demographic-parity limit: readmission risk truly
//! differs between age bands, and neither equal error rates nor equal selection rates can hold
//! together with calibration within groups whose base rates differ (Kleinberg, Mullainathan,
//! Raghavan 2016; Chouldechova 2017). Both are reported, and a policy may require them.

use std::collections::BTreeMap;
use std::fmt;

use airlock_types::ContentHash;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ModelsError;
use crate::validation::{
    AttributeDisparities, DEFAULT_MIN_GROUP_SIZE, GroupMetric, ValidationReport,
};

/// The policy that ships, as its TOML text (parses to [`Policy::default`]).
pub const DEFAULT_POLICY_TOML: &str = r#"# Airlock's default validation policy.
version = 1
# Discrimination: better than a weak screening score.
min_auroc = 0.6
# Calibration: predicted risks within 5 points of observed rates, on average.
max_ece = 0.05
# Smaller groups are reported as too small and left out of the disparities.
min_group_size = 100
# Memorisation: an attack may find at most 1% of training patients at 0.1% FPR (10x chance).
max_membership_tpr_at_fpr_0_001 = 0.01
# A disparity fails when its 95% interval lies beyond the limit, not on noise in small groups.
disparity_evidence = "interval"

# Every sensitive attribute; [attributes.NAME] tables override rule by rule. Equalized odds and
# demographic parity are reported but not gated: both conflict with calibration within groups
# whose base rates differ.
[fairness]
max_difference = { auroc = 0.15, ece = 0.1 }
"#;

/// Rules over a validation report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Revision of this policy, set by its authors and shown beside its hash.
    pub version: u32,
    /// Smallest overall AUROC.
    pub min_auroc: Option<f64>,
    /// Largest overall expected calibration error.
    pub max_ece: Option<f64>,
    /// Groups smaller than this are too small to measure; a report computed with a larger
    /// minimum hides groups the policy wants measured and fails.
    pub min_group_size: u64,
    /// Largest membership-inference TPR at 0.1% FPR.
    pub max_membership_tpr_at_fpr_0_001: Option<f64>,
    /// What disparity rules compare with their limits (default: the estimate).
    #[serde(default)]
    pub disparity_evidence: Evidence,
    /// Disparity rules for every sensitive attribute.
    #[serde(default)]
    pub fairness: DisparityRules,
    /// Per-attribute rules, overriding `fairness` rule by rule. Naming an attribute here
    /// requires it to be measured.
    #[serde(default)]
    pub attributes: BTreeMap<String, DisparityRules>,
}

/// What a disparity rule compares with its limit.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// The point estimate: any gap beyond the limit fails, however noisy the groups.
    #[default]
    Estimate,
    /// The bootstrap interval: a ceiling fails only when the interval's lower end is above it,
    /// a floor only when its upper end is below it, so a rule fails when the data show the
    /// breach with 97.5% one-sided confidence (an estimate without an interval is compared
    /// as is).
    Interval,
}

/// Disparity rules for one attribute (or all).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DisparityRules {
    /// Largest between-groups difference per metric.
    #[serde(default)]
    pub max_difference: BTreeMap<GroupMetric, f64>,
    /// Smallest between-groups ratio per metric.
    #[serde(default)]
    pub min_ratio: BTreeMap<GroupMetric, f64>,
    /// Largest equalized-odds difference.
    pub max_equalized_odds_difference: Option<f64>,
    /// Smallest demographic-parity ratio (0.8 is the "four-fifths rule").
    pub min_demographic_parity_ratio: Option<f64>,
}

/// One failed rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFailure {
    /// The rule's path in the policy (`fairness.max_difference.tpr`).
    pub rule: String,
    /// The sensitive attribute, for disparity rules.
    pub attribute: Option<String>,
    /// The rule's limit; `None` for a required attribute that was not measured.
    pub limit: Option<f64>,
    /// The figure compared: the estimate, or the interval end that [`Evidence::Interval`]
    /// reads; `None` when the report does not have it.
    pub observed: Option<f64>,
    /// Which figure `observed` is.
    pub evidence: Evidence,
}

/// The outcome of checking a report against a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    /// No rule failed.
    pub passed: bool,
    /// Every failed rule, in policy order.
    pub reasons: Vec<PolicyFailure>,
}

impl Policy {
    /// Parse and check a policy written in TOML.
    pub fn from_toml(text: &str) -> Result<Self, ModelsError> {
        let policy: Policy = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text.get(..s.start).unwrap_or(text).matches('\n').count() + 1);
            ModelsError::PolicySyntax {
                message: match line {
                    Some(l) => format!("line {l}: {}", e.message()),
                    None => e.message().to_owned(),
                },
            }
        })?;
        policy.validate()?;
        Ok(policy)
    }

    /// Check every limit is in its domain: rates, AUROC, ECE and ratios in `[0, 1]`.
    pub fn validate(&self) -> Result<(), ModelsError> {
        let bad = |rule: String, reason| Err(ModelsError::InvalidPolicy { rule, reason });
        if self.version == 0 {
            return bad("version".into(), "must be at least 1");
        }
        if self.min_group_size == 0 {
            return bad("min_group_size".into(), "must be at least 1");
        }
        let unit = |rule: &str, v: Option<f64>| match v {
            Some(x) if !(0.0..=1.0).contains(&x) => bad(rule.to_owned(), "must be in [0, 1]"),
            _ => Ok(()),
        };
        unit("min_auroc", self.min_auroc)?;
        unit("max_ece", self.max_ece)?;
        unit(
            "max_membership_tpr_at_fpr_0_001",
            self.max_membership_tpr_at_fpr_0_001,
        )?;
        let tables = std::iter::once(("fairness".to_owned(), &self.fairness)).chain(
            self.attributes
                .iter()
                .map(|(a, r)| (format!("attributes.{a}"), r)),
        );
        for (prefix, rules) in tables {
            for (m, v) in &rules.max_difference {
                unit(&format!("{prefix}.max_difference.{m}"), Some(*v))?;
            }
            for (m, v) in &rules.min_ratio {
                unit(&format!("{prefix}.min_ratio.{m}"), Some(*v))?;
            }
            unit(
                &format!("{prefix}.max_equalized_odds_difference"),
                rules.max_equalized_odds_difference,
            )?;
            unit(
                &format!("{prefix}.min_demographic_parity_ratio"),
                rules.min_demographic_parity_ratio,
            )?;
        }
        Ok(())
    }

    /// SHA-256 of the policy's canonical JSON (fields in declaration order, maps sorted).
    pub fn hash(&self) -> ContentHash {
        #[expect(
            clippy::expect_used,
            reason = "serialising plain structs and string-keyed maps to a Vec cannot fail"
        )]
        // INVARIANT: every map key serialises as a string and no Serialize impl here errs.
        let json = serde_json::to_vec(self).expect("a policy serialises to JSON");
        ContentHash::from_bytes(Sha256::digest(json).into())
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            version: 1,
            min_auroc: Some(0.6),
            max_ece: Some(0.05),
            min_group_size: DEFAULT_MIN_GROUP_SIZE,
            max_membership_tpr_at_fpr_0_001: Some(0.01),
            disparity_evidence: Evidence::Interval,
            fairness: DisparityRules {
                max_difference: BTreeMap::from([
                    (GroupMetric::Auroc, 0.15),
                    (GroupMetric::Ece, 0.1),
                ]),
                min_ratio: BTreeMap::new(),
                max_equalized_odds_difference: None,
                min_demographic_parity_ratio: None,
            },
            attributes: BTreeMap::new(),
        }
    }
}

impl fmt::Display for PolicyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.rule)?;
        if let Some(a) = &self.attribute {
            write!(f, " for `{a}`")?;
        }
        match (self.observed, self.limit) {
            (Some(o), Some(l)) if self.evidence == Evidence::Interval => {
                write!(f, ": its 95% interval ends at {o}, beyond the limit of {l}")
            }
            (Some(o), Some(l)) => write!(f, ": {o} against a limit of {l}"),
            (None, _) => f.write_str(": not measured"),
            (Some(o), None) => write!(f, ": {o}"),
        }
    }
}

/// Check `report` against every rule of `policy`.
pub fn evaluate(report: &ValidationReport, policy: &Policy) -> Verdict {
    let mut reasons = Vec::new();
    let mut fail = |rule: &str, attribute: Option<&str>, limit, observed, evidence| {
        reasons.push(PolicyFailure {
            rule: rule.to_owned(),
            attribute: attribute.map(str::to_owned),
            limit,
            observed,
            evidence,
        });
    };
    let estimate = Evidence::Estimate;
    let floor = |observed: Option<f64>, limit: f64| observed.is_some_and(|o| o >= limit);
    let ceiling = |observed: Option<f64>, limit: f64| observed.is_some_and(|o| o <= limit);
    if let Some(l) = policy.min_auroc {
        let auroc = Some(report.metrics.auroc.value);
        if !floor(auroc, l) {
            fail("min_auroc", None, Some(l), auroc, estimate);
        }
    }
    if let Some(l) = policy.max_ece {
        let ece = Some(report.metrics.ece.value);
        if !ceiling(ece, l) {
            fail("max_ece", None, Some(l), ece, estimate);
        }
    }
    let size = Some(report.config.min_group_size as f64);
    let l = policy.min_group_size as f64;
    if !ceiling(size, l) {
        fail("min_group_size", None, Some(l), size, estimate);
    }
    if let Some(l) = policy.max_membership_tpr_at_fpr_0_001 {
        let tpr = report
            .membership_inference
            .as_ref()
            .map(|m| m.tpr_at_fpr_0_001);
        if !ceiling(tpr, l) {
            fail(
                "max_membership_tpr_at_fpr_0_001",
                None,
                Some(l),
                tpr,
                estimate,
            );
        }
    }
    for disparities in &report.disparities {
        let attr = disparities.attribute.as_str();
        for rule in effective_rules(policy, attr) {
            let (observed, evidence) = rule.observed(disparities, policy.disparity_evidence);
            let ok = if rule.min {
                floor(observed, rule.limit)
            } else {
                ceiling(observed, rule.limit)
            };
            if !ok {
                fail(&rule.path, Some(attr), Some(rule.limit), observed, evidence);
            }
        }
    }
    for attr in policy.attributes.keys() {
        if !report.disparities.iter().any(|d| &d.attribute == attr) {
            fail(
                &format!("attributes.{attr}"),
                Some(attr),
                None,
                None,
                estimate,
            );
        }
    }
    Verdict {
        passed: reasons.is_empty(),
        reasons,
    }
}

/// One disparity rule as it applies to one attribute.
#[derive(Debug)]
struct Rule {
    path: String,
    limit: f64,
    /// A floor (`min_*`) rather than a ceiling.
    min: bool,
    figure: Figure,
}

#[derive(Debug, Clone, Copy)]
enum Figure {
    Difference(GroupMetric),
    Ratio(GroupMetric),
    EqualizedOdds,
    DemographicParity,
}

impl Rule {
    /// The figure to compare and which figure it is.
    fn observed(&self, d: &AttributeDisparities, evidence: Evidence) -> (Option<f64>, Evidence) {
        let e = match self.figure {
            Figure::Difference(m) => d.difference.get(&m),
            Figure::Ratio(m) => d.ratio.get(&m),
            Figure::EqualizedOdds => d.equalized_odds_difference.as_ref(),
            Figure::DemographicParity => d.demographic_parity_ratio.as_ref(),
        };
        let Some(e) = e else {
            return (None, Evidence::Estimate);
        };
        match (evidence, e.interval) {
            // The end nearest to passing: a ceiling reads the lower end, a floor the upper.
            (Evidence::Interval, Some([lo, hi])) => {
                (Some(if self.min { hi } else { lo }), Evidence::Interval)
            }
            _ => (Some(e.value), Evidence::Estimate),
        }
    }
}

/// The `fairness` rules overlaid with the attribute's own, each named by where it was set.
fn effective_rules(policy: &Policy, attribute: &str) -> Vec<Rule> {
    let own = policy.attributes.get(attribute);
    let source = |set: bool| {
        if set {
            format!("attributes.{attribute}")
        } else {
            "fairness".to_owned()
        }
    };
    let mut rules = Vec::new();
    for m in GroupMetric::ALL {
        let local = own.and_then(|r| r.max_difference.get(&m)).copied();
        if let Some(limit) = local.or_else(|| policy.fairness.max_difference.get(&m).copied()) {
            rules.push(Rule {
                path: format!("{}.max_difference.{m}", source(local.is_some())),
                limit,
                min: false,
                figure: Figure::Difference(m),
            });
        }
    }
    for m in GroupMetric::ALL {
        let local = own.and_then(|r| r.min_ratio.get(&m)).copied();
        if let Some(limit) = local.or_else(|| policy.fairness.min_ratio.get(&m).copied()) {
            rules.push(Rule {
                path: format!("{}.min_ratio.{m}", source(local.is_some())),
                limit,
                min: true,
                figure: Figure::Ratio(m),
            });
        }
    }
    let local = own.and_then(|r| r.max_equalized_odds_difference);
    if let Some(limit) = local.or(policy.fairness.max_equalized_odds_difference) {
        rules.push(Rule {
            path: format!("{}.max_equalized_odds_difference", source(local.is_some())),
            limit,
            min: false,
            figure: Figure::EqualizedOdds,
        });
    }
    let local = own.and_then(|r| r.min_demographic_parity_ratio);
    if let Some(limit) = local.or(policy.fairness.min_demographic_parity_ratio) {
        rules.push(Rule {
            path: format!("{}.min_demographic_parity_ratio", source(local.is_some())),
            limit,
            min: true,
            figure: Figure::DemographicParity,
        });
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_toml_is_the_default_policy() {
        let parsed = Policy::from_toml(DEFAULT_POLICY_TOML).unwrap();
        assert_eq!(parsed, Policy::default());
        assert_eq!(parsed.hash(), Policy::default().hash());
    }

    #[test]
    fn hash_ignores_layout_and_comments() {
        let a = Policy::from_toml("version = 1\nmin_group_size = 20\nmin_auroc = 0.7\n").unwrap();
        let b = Policy::from_toml("# ours\nmin_auroc = 0.70\n\nmin_group_size = 20\nversion = 1")
            .unwrap();
        assert_eq!(a.hash(), b.hash());
        let c = Policy::from_toml("version = 1\nmin_group_size = 20\nmin_auroc = 0.71\n").unwrap();
        assert_ne!(a.hash(), c.hash());
    }

    #[test]
    fn unknown_rules_are_named() {
        let err = Policy::from_toml("version = 1\nmin_group_size = 20\nmin_aucroc = 0.7\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("min_aucroc"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        let err = Policy::from_toml(
            "version = 1\nmin_group_size = 20\n[fairness]\nmax_difference = { tprr = 0.1 }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("tprr"), "{err}");
        let err = Policy::from_toml(
            "version = 1\nmin_group_size = 20\n[attributes.race]\nmax_diference = { tpr = 0.1 }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("max_diference"), "{err}");
    }

    #[test]
    fn limits_outside_their_domain_are_named() {
        let err = Policy::from_toml(
            "version = 1\nmin_group_size = 20\n[attributes.race]\nmin_ratio = { tpr = 1.5 }\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            ModelsError::InvalidPolicy {
                rule: "attributes.race.min_ratio.tpr".into(),
                reason: "must be in [0, 1]"
            }
        );
        assert!(Policy::from_toml("version = 0\nmin_group_size = 20\n").is_err());
        assert!(Policy::from_toml("version = 1\nmin_group_size = 20\nmax_ece = nan\n").is_err());
    }
}
