//! Is the data a model sees still the data it was approved on, and how well is it doing?
//!
//! **Samples without rows.** A column is kept as its distinct values with counts ([`Numbers`],
//! [`Categories`]); every statistic here is computed on those, so a [`Profile`] saved at
//! training (aggregates of de-identified data, no row) gives the same figures as the rows it
//! came from. A numeric column with more than [`PROFILE_CAP`] distinct values is kept as that
//! many equal-count groups at their means: the CDF then moves by at most 1/[`PROFILE_CAP`].
//!
//! **Drift.** Per column, one of Evidently 0.7's tests on its definitions ([`stats`]): KS,
//! chi-squared, the two-proportion z-test, Wasserstein distance over the reference's standard
//! deviation, Jensen–Shannon distance, PSI. [`Method::default_for`] is Evidently's rule
//! (reference of at most 1,000 values: KS for numeric with more than 5 distinct values,
//! chi-squared for more than 2, else z; larger: Wasserstein for numeric with more than 5, else
//! Jensen–Shannon); a method may be set per column. The dataset has drifted when the share of
//! drifted input columns reaches [`DriftOptions::drift_share`] (0.5).
//!
//! **Label-free performance.** [`cbpe`] is NannyML's confidence-based performance estimation
//! on calibrated scores: expected AUROC, precision and recall.
//!
//! **Alerts.** [`alerts`] holds TOML rules (measure, threshold, window, minimum samples,
//! consecutive windows, severity, canary rollback) and their verdict on a sequence of windows.

pub mod alerts;
mod cbpe;
pub mod stats;

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use cbpe::{Estimated, cbpe};

use crate::{ModelsError, Table};

/// Distinct values kept per numeric column of a profile.
pub const PROFILE_CAP: usize = 4096;

/// A numeric column: sorted distinct finite values with their counts.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Numbers {
    /// (value, count), by value.
    pub points: Vec<(f64, u64)>,
    /// Total count.
    pub n: u64,
}

impl Numbers {
    /// From values (any order).
    pub fn from_values(mut values: Vec<f64>) -> Self {
        values.sort_unstable_by(f64::total_cmp);
        let mut points: Vec<(f64, u64)> = Vec::new();
        for v in values {
            match points.last_mut() {
                Some(p) if p.0 == v => p.1 += 1,
                _ => points.push((v, 1)),
            }
        }
        let n = points.iter().map(|p| p.1).sum();
        Numbers { points, n }
    }

    /// The population standard deviation (numpy's `std`, ddof 0).
    pub fn std(&self) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let n = self.n as f64;
        let mean = self.points.iter().map(|(x, w)| x * *w as f64).sum::<f64>() / n;
        let var = self
            .points
            .iter()
            .map(|(x, w)| (x - mean) * (x - mean) * *w as f64)
            .sum::<f64>()
            / n;
        var.sqrt()
    }

    /// At most `cap` points: equal-count groups of neighbouring values, each at its mean.
    pub fn compressed(self, cap: usize) -> Self {
        if self.points.len() <= cap || cap == 0 {
            return self;
        }
        let per = self.n.div_ceil(cap as u64);
        let mut out: Vec<(f64, u64)> = Vec::with_capacity(cap);
        let (mut sum, mut count) = (0.0, 0u64);
        for (x, w) in self.points {
            sum += x * w as f64;
            count += w;
            if count >= per {
                out.push((sum / count as f64, count));
                (sum, count) = (0.0, 0);
            }
        }
        if count > 0 {
            out.push((sum / count as f64, count));
        }
        Numbers {
            points: out,
            n: self.n,
        }
    }
}

impl fmt::Debug for Numbers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Numbers")
            .field("distinct", &self.points.len())
            .field("n", &self.n)
            .finish()
    }
}

/// A categorical column: each category's count.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Categories {
    /// Count per category.
    pub counts: BTreeMap<String, u64>,
    /// Total count.
    pub n: u64,
}

impl Categories {
    /// From values.
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut n = 0;
        for v in values {
            // A key is allocated once per category, not once per value.
            match counts.get_mut(v) {
                Some(c) => *c += 1,
                None => {
                    counts.insert(v.to_owned(), 1);
                }
            }
            n += 1;
        }
        Categories { counts, n }
    }

    fn count(&self, key: &str) -> u64 {
        self.counts.get(key).copied().unwrap_or(0)
    }
}

impl fmt::Debug for Categories {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Categories")
            .field("distinct", &self.counts.len())
            .field("n", &self.n)
            .finish()
    }
}

/// Numeric or categorical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Numbers.
    Numeric,
    /// Categories.
    Categorical,
}

impl Kind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Numeric => "numeric",
            Kind::Categorical => "categorical",
        }
    }
}

/// One column's values, without rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Sample {
    /// A numeric column.
    Numeric(Numbers),
    /// A categorical column.
    Categorical(Categories),
}

impl Sample {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Sample::Numeric(_) => Kind::Numeric,
            Sample::Categorical(_) => Kind::Categorical,
        }
    }

    /// Values counted.
    pub fn n(&self) -> u64 {
        match self {
            Sample::Numeric(s) => s.n,
            Sample::Categorical(s) => s.n,
        }
    }

    /// Distinct values.
    pub fn distinct(&self) -> usize {
        match self {
            Sample::Numeric(s) => s.points.len(),
            Sample::Categorical(s) => s.counts.len(),
        }
    }

    /// Each distinct value as a category (a number by its shortest exact decimal).
    pub fn categories(&self) -> Categories {
        match self {
            Sample::Categorical(c) => c.clone(),
            Sample::Numeric(s) => Categories {
                counts: s
                    .points
                    .iter()
                    .map(|(x, w)| (format!("{x:?}"), *w))
                    .collect(),
                n: s.n,
            },
        }
    }

    fn numbers(&self) -> Option<&Numbers> {
        match self {
            Sample::Numeric(s) => Some(s),
            Sample::Categorical(_) => None,
        }
    }

    fn distinct_with(&self, other: &Sample) -> usize {
        match (self, other) {
            (Sample::Numeric(a), Sample::Numeric(b)) => {
                let mut n = 0;
                let (mut i, mut j) = (0, 0);
                while i < a.points.len() || j < b.points.len() {
                    match (a.points.get(i), b.points.get(j)) {
                        (Some(p), Some(q)) if p.0 == q.0 => (i, j) = (i + 1, j + 1),
                        (Some(p), Some(q)) if p.0 < q.0 => i += 1,
                        (Some(_), Some(_)) | (None, Some(_)) => j += 1,
                        (Some(_), None) => i += 1,
                        (None, None) => unreachable!("loop condition"),
                    }
                    n += 1;
                }
                n
            }
            _ => {
                let (a, b) = (self.categories(), other.categories());
                a.counts.len()
                    + b.counts
                        .keys()
                        .filter(|k| !a.counts.contains_key(*k))
                        .count()
            }
        }
    }
}

/// One column of a profile: its values and how many were missing (empty, or not a finite number
/// in a numeric column), which no statistic counts (as Evidently drops them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ColumnProfile {
    /// Column name.
    pub name: String,
    /// Values present.
    pub sample: Sample,
    /// Values missing.
    pub missing: u64,
}

/// Columns as distributions: what a drift test compares, and what a model version keeps of its
/// training data (no row).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Profile {
    /// Rows profiled.
    pub rows: u64,
    /// The columns.
    pub columns: Vec<ColumnProfile>,
}

impl Profile {
    /// Profile `columns` of a table. A column's kind is `kinds[name]` when given; otherwise
    /// numeric when every non-empty cell is a number, else categorical. A numeric column with a
    /// cell that is not a number is an error naming the column and row.
    pub fn from_table(
        table: &Table,
        columns: &[&str],
        kinds: &BTreeMap<String, Kind>,
    ) -> Result<Self, ModelsError> {
        let mut out = Vec::with_capacity(columns.len());
        for &name in columns {
            let cells = table.column(name)?.cells();
            let kind = kinds.get(name).copied().unwrap_or_else(|| guess(cells));
            out.push(profile_cells(name, cells, kind)?);
        }
        Ok(Profile {
            rows: table.rows() as u64,
            columns: out,
        })
    }

    /// Every numeric column kept to at most `cap` points.
    pub fn compressed(mut self, cap: usize) -> Self {
        for c in &mut self.columns {
            if let Sample::Numeric(s) = &mut c.sample {
                *s = std::mem::take(s).compressed(cap);
            }
        }
        self
    }

    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&ColumnProfile> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Each column's kind, by name.
    pub fn kinds(&self) -> BTreeMap<String, Kind> {
        self.columns
            .iter()
            .map(|c| (c.name.clone(), c.sample.kind()))
            .collect()
    }
}

fn guess(cells: &[String]) -> Kind {
    let numeric = cells
        .iter()
        .filter(|c| !c.trim().is_empty())
        .all(|c| c.trim().parse::<f64>().is_ok());
    if numeric {
        Kind::Numeric
    } else {
        Kind::Categorical
    }
}

/// One column's cells as a profile column of `kind`.
pub fn profile_cells(
    name: &str,
    cells: &[String],
    kind: Kind,
) -> Result<ColumnProfile, ModelsError> {
    let mut missing = 0;
    let sample = match kind {
        Kind::Numeric => {
            let mut values = Vec::with_capacity(cells.len());
            for (row, c) in cells.iter().enumerate() {
                let c = c.trim();
                if c.is_empty() {
                    missing += 1;
                    continue;
                }
                match c.parse::<f64>() {
                    Ok(v) if v.is_finite() => values.push(v),
                    // Evidently drops infinities with the missing values.
                    Ok(_) => missing += 1,
                    Err(_) => {
                        return Err(ModelsError::NotNumeric {
                            column: name.to_owned(),
                            row,
                        });
                    }
                }
            }
            Sample::Numeric(Numbers::from_values(values))
        }
        Kind::Categorical => {
            let present = cells.iter().map(|c| c.trim()).filter(|c| !c.is_empty());
            let c = Categories::from_values(present);
            missing = cells.len() as u64 - c.n;
            Sample::Categorical(c)
        }
    };
    Ok(ColumnProfile {
        name: name.to_owned(),
        sample,
        missing,
    })
}

/// A drift test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Two-sample Kolmogorov–Smirnov (p-value; numeric only).
    Ks,
    /// Chi-squared goodness of fit (p-value).
    ChiSquare,
    /// Two-proportion z-test (p-value; two categories).
    Z,
    /// Wasserstein distance over the reference's standard deviation (numeric only).
    Wasserstein,
    /// Jensen–Shannon distance.
    JensenShannon,
    /// Population stability index.
    Psi,
}

impl Method {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Ks => "ks",
            Method::ChiSquare => "chi_square",
            Method::Z => "z",
            Method::Wasserstein => "wasserstein",
            Method::JensenShannon => "jensen_shannon",
            Method::Psi => "psi",
        }
    }

    /// Evidently's default threshold: 0.05 for a p-value, 0.1 for a distance or PSI.
    pub fn default_threshold(self) -> f64 {
        if self.is_test() { 0.05 } else { 0.1 }
    }

    /// Whether the method gives a p-value (drift below the threshold) rather than a distance
    /// (drift at or above it).
    pub fn is_test(self) -> bool {
        matches!(self, Method::Ks | Method::ChiSquare | Method::Z)
    }

    /// Evidently 0.7's default choice, from the reference's size, the column's kind and the
    /// number of distinct values in both samples together.
    pub fn default_for(reference: &Sample, current: &Sample) -> Method {
        Method::choose(reference, current, false)
    }

    /// [`Method::default_for`], or with `tests`, the rule's small-reference branch (a test,
    /// never a distance) at every size.
    pub fn choose(reference: &Sample, current: &Sample, tests: bool) -> Method {
        let distinct = reference.distinct_with(current);
        let numeric = reference.kind() == Kind::Numeric;
        if tests || reference.n() <= 1000 {
            if numeric && distinct > 5 {
                Method::Ks
            } else if distinct > 2 {
                Method::ChiSquare
            } else {
                Method::Z
            }
        } else if numeric && distinct > 5 {
            Method::Wasserstein
        } else {
            Method::JensenShannon
        }
    }
}

/// How to test each column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DriftOptions {
    /// A method per column, where the default rule is not wanted.
    #[serde(default)]
    pub methods: BTreeMap<String, Method>,
    /// A threshold per column, where the method's default is not wanted.
    #[serde(default)]
    pub thresholds: BTreeMap<String, f64>,
    /// The share of drifted input columns at which the dataset has drifted.
    #[serde(default = "default_share")]
    pub drift_share: f64,
    /// Use statistical tests (KS, chi-squared, z: p-values, which account for the current
    /// sample's size) at every reference size, instead of Evidently's distances past 1,000
    /// reference values. Distances at a fixed threshold flag small windows that did not drift.
    #[serde(default)]
    pub statistical_tests: bool,
    /// One threshold for every column without its own (a p-value for tests, a distance
    /// otherwise), in place of the method's default.
    #[serde(default)]
    pub threshold: Option<f64>,
}

fn default_share() -> f64 {
    0.5
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions {
            methods: BTreeMap::new(),
            thresholds: BTreeMap::new(),
            drift_share: default_share(),
            statistical_tests: false,
            threshold: None,
        }
    }
}

/// One column's drift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ColumnDrift {
    /// Column name (`score` for the model's output).
    pub name: String,
    /// Numeric or categorical.
    pub kind: Kind,
    /// The test used.
    pub method: Method,
    /// The test statistic (KS's D, chi-squared, z) or the distance.
    pub statistic: f64,
    /// The p-value, for a test.
    pub p_value: Option<f64>,
    /// The threshold the p-value or distance was held to.
    pub threshold: f64,
    /// Whether the column drifted.
    pub drifted: bool,
    /// Values counted in the reference and the current sample.
    pub reference_values: u64,
    /// Values counted in the current sample.
    pub current_values: u64,
    /// Values missing in the current sample (not counted).
    pub current_missing: u64,
}

/// Drift of a current sample against a reference, column by column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Drift {
    /// One entry per column compared.
    pub features: Vec<ColumnDrift>,
    /// Drifted input columns over input columns (the score is reported, not counted).
    pub share_drifted: f64,
    /// Whether the share reached the options' threshold.
    pub dataset_drift: bool,
    /// That threshold.
    pub drift_share: f64,
}

/// Test one column: the current sample against the reference.
pub fn column_drift(
    name: &str,
    reference: &ColumnProfile,
    current: &ColumnProfile,
    options: &DriftOptions,
) -> Result<ColumnDrift, ModelsError> {
    let (r, c) = (&reference.sample, &current.sample);
    if r.kind() != c.kind() {
        return Err(ModelsError::KindChanged {
            column: name.to_owned(),
            reference: r.kind().as_str(),
            current: c.kind().as_str(),
        });
    }
    for (side, s) in [("reference", r), ("current", c)] {
        if s.n() == 0 {
            return Err(ModelsError::NoValues {
                column: name.to_owned(),
                side,
            });
        }
    }
    let method = options
        .methods
        .get(name)
        .copied()
        .unwrap_or_else(|| Method::choose(r, c, options.statistical_tests));
    let threshold = options
        .thresholds
        .get(name)
        .copied()
        .or(options.threshold)
        .unwrap_or(method.default_threshold());
    fn numeric<'s>(s: &'s Sample, name: &str, method: Method) -> Result<&'s Numbers, ModelsError> {
        s.numbers().ok_or_else(|| ModelsError::MethodNotFor {
            column: name.to_owned(),
            method: method.as_str(),
        })
    }
    let (statistic, p_value) = match method {
        Method::Ks => {
            let (d, p) = stats::ks(numeric(r, name, method)?, numeric(c, name, method)?);
            (d, Some(p))
        }
        Method::Wasserstein => (
            stats::wasserstein_norm(numeric(r, name, method)?, numeric(c, name, method)?),
            None,
        ),
        Method::ChiSquare => {
            let (s, p) = stats::chi_square(&r.categories(), &c.categories());
            (s, Some(p))
        }
        Method::Z => {
            if r.distinct_with(c) > 2 {
                return Err(ModelsError::MethodNotFor {
                    column: name.to_owned(),
                    method: method.as_str(),
                });
            }
            let (z, p) = stats::z_test(&r.categories(), &c.categories());
            (z, Some(p))
        }
        Method::JensenShannon => (stats::jensen_shannon(r, c), None),
        Method::Psi => (stats::psi(r, c), None),
    };
    let drifted = match (method, p_value) {
        // Evidently: KS drifts at p <= threshold, the other tests below it.
        (Method::Ks, Some(p)) => p <= threshold,
        (_, Some(p)) => p < threshold,
        (_, None) => statistic >= threshold,
    };
    Ok(ColumnDrift {
        name: name.to_owned(),
        kind: r.kind(),
        method,
        statistic,
        p_value,
        threshold,
        drifted,
        reference_values: r.n(),
        current_values: c.n(),
        current_missing: current.missing,
    })
}

/// Every column of the reference against the same column of the current profile; `score`,
/// when given, is tested too and reported, but not counted in the share.
pub fn drift(
    reference: &Profile,
    current: &Profile,
    score: Option<(&ColumnProfile, &ColumnProfile)>,
    options: &DriftOptions,
) -> Result<Drift, ModelsError> {
    let mut features = Vec::with_capacity(reference.columns.len() + 1);
    for r in &reference.columns {
        let c = current
            .column(&r.name)
            .ok_or_else(|| ModelsError::MissingColumn {
                column: r.name.clone(),
            })?;
        features.push(column_drift(&r.name, r, c, options)?);
    }
    let inputs = features.len();
    let drifted = features.iter().filter(|f| f.drifted).count();
    let share_drifted = if inputs == 0 {
        0.0
    } else {
        drifted as f64 / inputs as f64
    };
    if let Some((r, c)) = score {
        features.push(column_drift("score", r, c, options)?);
    }
    Ok(Drift {
        features,
        share_drifted,
        dataset_drift: inputs > 0 && share_drifted >= options.drift_share,
        drift_share: options.drift_share,
    })
}

/// Each feature's kind as the signature types it.
pub fn kinds_of(signature: &crate::Signature) -> BTreeMap<String, Kind> {
    signature
        .features
        .iter()
        .map(|f| {
            let kind = match f.kind {
                crate::FeatureKind::Numeric { .. } => Kind::Numeric,
                crate::FeatureKind::Categorical { .. } => Kind::Categorical,
            };
            (f.name.clone(), kind)
        })
        .collect()
}

/// What a model version keeps of the data it was approved on, for monitoring: each feature's
/// distribution and the score's, compressed to [`PROFILE_CAP`] points; counts, no row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Reference {
    /// The dataset version profiled (`NAME@VERSION`).
    pub source: String,
    /// The features, in signature order.
    pub features: Profile,
    /// The model's scores on the held-out rows (or on every row for an imported model).
    pub score: ColumnProfile,
}

impl Reference {
    /// Profile the signature's features of `table` and the given scores.
    pub fn build(
        source: String,
        table: &Table,
        signature: &crate::Signature,
        scores: Vec<f64>,
    ) -> Result<Self, ModelsError> {
        let names: Vec<&str> = signature.features.iter().map(|f| f.name.as_str()).collect();
        let features =
            Profile::from_table(table, &names, &kinds_of(signature))?.compressed(PROFILE_CAP);
        let score = ColumnProfile {
            name: "score".into(),
            sample: Sample::Numeric(Numbers::from_values(scores).compressed(PROFILE_CAP)),
            missing: 0,
        };
        Ok(Reference {
            source,
            features,
            score,
        })
    }
}
