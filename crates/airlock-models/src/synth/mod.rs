//! Differentially private synthetic tables: which rows may stand in for patients, and at what
//! privacy cost?
//!
//! **MST** (McKenna, Miklau and Sheldon, "Winning the NIST Contest", JPC 2021; the winner of
//! the 2018 NIST differential privacy synthetic data challenge), as `smartnoise-synth` and
//! Private-PGM (`mbi`) implement it ([`mst`]):
//! 1. every column is coded by its *declared* discretisation ([`SynthColumn`]: a category
//!    domain or numeric bounds and bins, chosen by the privacy officer without looking at
//!    the data), plus one cell for missing or undeclared values;
//! 2. the one-way marginals are measured with OpenDP's discrete Gaussian (ρ/3), and values
//!    whose noisy count is under three standard deviations are merged into one cell;
//! 3. a maximum spanning tree over the column pairs is chosen with OpenDP's exponential
//!    mechanism (ρ/3), each pair scored by how far its true two-way marginal is from the
//!    independent estimate;
//! 4. the tree's two-way marginals are measured (ρ/3);
//! 5. a graphical model consistent with all the noisy measurements is fitted by mirror descent
//!    (Private-PGM's estimator; on a tree, belief propagation is exact: [`pgm`]), and rows are
//!    sampled from it.
//!
//! Steps 2–4 are the only ones that read the data; every charge is OpenDP's privacy map, and
//! the total is their zCDP composition. Step 5 and the sampling are post-processing, seeded and
//! reproducible. [`report`] measures what came out: fidelity, utility and privacy.

pub mod mst;
pub mod pgm;
pub mod report;

use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;
use crate::{ModelsError, Table};

pub use mst::{Charge, MstConfig, MstOutcome};

/// The most bins a numeric column may declare.
pub const MAX_BINS: u32 = 1_000;

/// How a column is coded: its declared, public discretisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ColumnKind {
    /// One cell per declared value.
    Categorical {
        /// The declared values.
        domain: Vec<String>,
    },
    /// `bins` equal-width bins over `[lo, hi]`; values outside are clamped. Integer bounds
    /// declare an integer column: synthetic values are then whole numbers.
    Numeric {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
        /// Number of bins.
        bins: u32,
    },
}

/// A column to synthesise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SynthColumn {
    /// The column name.
    pub name: String,
    /// Its discretisation.
    #[serde(flatten)]
    pub kind: ColumnKind,
}

impl SynthColumn {
    /// Checks the declaration: a non-empty domain without duplicates, finite ordered bounds,
    /// 1 to [`MAX_BINS`] bins.
    pub fn check(&self) -> Result<(), ModelsError> {
        let bad = |rule| {
            Err(ModelsError::InvalidSynthColumn {
                column: self.name.clone(),
                rule,
            })
        };
        match &self.kind {
            ColumnKind::Categorical { domain } => {
                if domain.is_empty() {
                    return bad("its domain is empty");
                }
                let mut seen = std::collections::BTreeSet::new();
                if !domain.iter().all(|v| seen.insert(v.as_str())) {
                    return bad("its domain lists a value twice");
                }
            }
            ColumnKind::Numeric { lo, hi, bins } => {
                if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                    return bad("its bounds must be finite with lo < hi");
                }
                if *bins == 0 || *bins > MAX_BINS {
                    return bad("it must have 1 to 1000 bins");
                }
            }
        }
        Ok(())
    }

    /// Cells of its coded domain: the declared ones and one for missing or other values.
    pub fn size(&self) -> usize {
        match &self.kind {
            ColumnKind::Categorical { domain } => domain.len() + 1,
            ColumnKind::Numeric { bins, .. } => *bins as usize + 1,
        }
    }

    /// The code of the missing-or-other cell.
    pub fn missing(&self) -> u32 {
        (self.size() - 1) as u32
    }

    /// A cell's code.
    pub fn code(&self, cell: &str) -> u32 {
        match &self.kind {
            ColumnKind::Categorical { domain } => domain
                .iter()
                .position(|v| v == cell)
                .map_or(self.missing(), |i| i as u32),
            ColumnKind::Numeric { lo, hi, bins } => match self.value(cell) {
                None => self.missing(),
                Some(v) => {
                    let b = ((v - lo) / (hi - lo) * f64::from(*bins)).floor();
                    (b.max(0.0) as u32).min(bins - 1)
                }
            },
        }
    }

    /// A numeric cell's value, clamped to the bounds; `None` when missing or not a number.
    pub fn value(&self, cell: &str) -> Option<f64> {
        let ColumnKind::Numeric { lo, hi, .. } = &self.kind else {
            return None;
        };
        let v: f64 = cell.trim().parse().ok()?;
        v.is_finite().then(|| v.clamp(*lo, *hi))
    }

    /// Whether the column is numeric.
    pub fn is_numeric(&self) -> bool {
        matches!(self.kind, ColumnKind::Numeric { .. })
    }

    /// A value for a code: the declared category, or a value drawn uniformly from the bin (a
    /// whole number for an integer column); the missing cell decodes as empty.
    fn decode(&self, code: u32, rng: &mut SplitMix64) -> String {
        if code >= self.missing() {
            return String::new();
        }
        match &self.kind {
            ColumnKind::Categorical { domain } => {
                domain.get(code as usize).cloned().unwrap_or_default()
            }
            ColumnKind::Numeric { lo, hi, bins } => {
                let w = (hi - lo) / f64::from(*bins);
                let (a, b) = (lo + w * f64::from(code), lo + w * f64::from(code + 1));
                // An integer column: the whole numbers whose code is this bin (a bin narrower
                // than one may hold none; it then decodes as a fraction inside it).
                let first = a.ceil();
                let last = if code + 1 == *bins {
                    *hi
                } else {
                    b.ceil() - 1.0
                };
                if lo.fract() == 0.0 && hi.fract() == 0.0 && last >= first {
                    let k = (last - first) as usize + 1;
                    format!("{}", first + rng.below(k) as f64)
                } else {
                    let v = a + (b - a) * rng.next_f64();
                    format!("{v}")
                }
            }
        }
    }
}

/// A table in codes, column-major.
#[derive(Clone, PartialEq)]
pub struct Encoded {
    sizes: Vec<usize>,
    codes: Vec<Vec<u32>>,
    rows: usize,
}

impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoded")
            .field("sizes", &self.sizes)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl Encoded {
    /// Builds from columns of codes (each below its size).
    pub fn new(sizes: Vec<usize>, codes: Vec<Vec<u32>>) -> Result<Self, ModelsError> {
        let rows = codes.first().map_or(0, Vec::len);
        if sizes.len() != codes.len() {
            return Err(ModelsError::LengthMismatch {
                field: "codes".into(),
                found: codes.len(),
                expected: sizes.len(),
            });
        }
        for (i, (s, c)) in sizes.iter().zip(&codes).enumerate() {
            if c.len() != rows {
                return Err(ModelsError::RaggedRow {
                    row: i,
                    expected: rows,
                    found: c.len(),
                });
            }
            if *s == 0 || c.iter().any(|v| *v as usize >= *s) {
                return Err(ModelsError::MetricInput {
                    rule: "a code is outside its column's domain",
                });
            }
        }
        Ok(Encoded { sizes, codes, rows })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn width(&self) -> usize {
        self.sizes.len()
    }

    /// Domain sizes.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// One column's codes (empty past the last column).
    pub fn column(&self, i: usize) -> &[u32] {
        self.codes.get(i).map_or(&[], Vec::as_slice)
    }

    /// One row's codes, or `None` past the last row.
    pub fn row(&self, r: usize) -> Option<Vec<u32>> {
        self.codes.iter().map(|c| c.get(r).copied()).collect()
    }

    /// The rows `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> Encoded {
        Encoded {
            sizes: self.sizes.clone(),
            codes: self
                .codes
                .iter()
                .map(|c| rows.iter().filter_map(|&r| c.get(r).copied()).collect())
                .collect(),
            rows: rows.len(),
        }
    }

    /// Counts of one column's codes.
    pub fn histogram(&self, i: usize) -> Vec<u64> {
        let mut h = vec![0u64; self.sizes.get(i).copied().unwrap_or(0)];
        for &v in self.column(i) {
            if let Some(x) = h.get_mut(v as usize) {
                *x += 1;
            }
        }
        h
    }

    /// Counts of a pair's codes, row-major (`a * size(j) + b`).
    pub fn histogram2(&self, i: usize, j: usize) -> Vec<u64> {
        let size = |k: usize| self.sizes.get(k).copied().unwrap_or(0);
        let sj = size(j);
        let mut h = vec![0u64; size(i) * sj];
        for (&a, &b) in self.column(i).iter().zip(self.column(j)) {
            if let Some(x) = h.get_mut(a as usize * sj + b as usize) {
                *x += 1;
            }
        }
        h
    }
}

/// Checks a set of columns: each declaration valid, no name twice.
pub fn check_columns(columns: &[SynthColumn]) -> Result<(), ModelsError> {
    let mut seen = std::collections::BTreeSet::new();
    for c in columns {
        c.check()?;
        if !seen.insert(c.name.as_str()) {
            return Err(ModelsError::DuplicateColumn {
                column: c.name.clone(),
            });
        }
    }
    Ok(())
}

/// Codes a table's columns by their declarations.
pub fn encode(table: &Table, columns: &[SynthColumn]) -> Result<Encoded, ModelsError> {
    check_columns(columns)?;
    let mut codes = Vec::with_capacity(columns.len());
    for c in columns {
        let cells = table.column(&c.name)?.cells();
        codes.push(cells.iter().map(|v| c.code(v)).collect());
    }
    Encoded::new(columns.iter().map(SynthColumn::size).collect(), codes)
}

/// Values for codes (see [`SynthColumn`]), seeded.
pub fn decode(data: &Encoded, columns: &[SynthColumn], seed: u64) -> Result<Table, ModelsError> {
    if data.width() != columns.len() {
        return Err(ModelsError::LengthMismatch {
            field: "columns".into(),
            found: columns.len(),
            expected: data.width(),
        });
    }
    let mut rng = SplitMix64::new(seed);
    let out = columns
        .iter()
        .zip(&data.codes)
        .map(|(c, codes)| {
            (
                c.name.clone(),
                codes.iter().map(|&v| c.decode(v, &mut rng)).collect(),
            )
        })
        .collect();
    Table::from_columns(out)
}

/// Keeps at most `k` rows per unit (`units[r]` names row `r`'s unit), chosen by a seeded
/// shuffle as the DP queries do: the sensitivity of every marginal is then `k`.
pub fn bound_contributions(units: &[&str], k: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..units.len()).collect();
    SplitMix64::new(seed).shuffle(&mut order);
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut keep: Vec<usize> = order
        .into_iter()
        .filter(|&r| {
            let Some(unit) = units.get(r) else {
                return false;
            };
            let n = seen.entry(unit).or_insert(0);
            *n += 1;
            *n <= k
        })
        .collect();
    keep.sort_unstable();
    keep
}

/// Splits rows by unit: about `holdout` of the units (all their rows) are held out, by a
/// seeded shuffle of the distinct units. Returns (kept rows, held-out rows), each ascending.
pub fn split_units(units: &[&str], holdout: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut distinct: Vec<&str> = units.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    SplitMix64::new(seed).shuffle(&mut distinct);
    let cut = (distinct.len() as f64 * holdout.clamp(0.0, 1.0)).round() as usize;
    let held: std::collections::HashSet<&str> = distinct.into_iter().take(cut).collect();
    (0..units.len()).partition(|&r| units.get(r).is_some_and(|u| !held.contains(u)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(lo: f64, hi: f64, bins: u32) -> SynthColumn {
        SynthColumn {
            name: "x".into(),
            kind: ColumnKind::Numeric { lo, hi, bins },
        }
    }

    #[test]
    fn numeric_codes_clamp_and_decode_within_the_bin() {
        let c = num(1.0, 14.0, 13);
        assert_eq!(c.code("1"), 0);
        assert_eq!(c.code("14"), 12);
        assert_eq!(c.code("99"), 12);
        assert_eq!(c.code("-3"), 0);
        assert_eq!(c.code(""), 13);
        assert_eq!(c.code("?"), 13);
        let mut rng = SplitMix64::new(1);
        for code in 0..13 {
            for _ in 0..20 {
                let v = c.decode(code, &mut rng);
                assert_eq!(c.code(&v), code, "{v}");
                assert!(!v.contains('.'), "{v}");
            }
        }
        // Bins narrower than one whole number: the empty ones decode inside themselves.
        let narrow = num(0.0, 1.0, 4);
        for code in 0..4 {
            let v = narrow.decode(code, &mut rng);
            assert_eq!(narrow.code(&v), code, "{v}");
        }
        let f = num(0.0, 1.5, 3);
        for code in 0..3 {
            let v = f.decode(code, &mut rng);
            assert_eq!(f.code(&v), code);
        }
        assert_eq!(f.decode(3, &mut rng), "");
    }

    #[test]
    fn declarations_are_checked() {
        assert!(num(1.0, 1.0, 3).check().is_err());
        assert!(num(0.0, f64::INFINITY, 3).check().is_err());
        assert!(num(0.0, 1.0, 0).check().is_err());
        let c = SynthColumn {
            name: "c".into(),
            kind: ColumnKind::Categorical {
                domain: vec!["a".into(), "a".into()],
            },
        };
        assert!(c.check().is_err());
    }

    #[test]
    fn a_unit_is_kept_or_held_out_whole() {
        let units = ["a", "a", "b", "c", "c", "c", "d", "e", "f", "g"];
        let (keep, held) = split_units(&units, 0.3, 4);
        assert_eq!(keep.len() + held.len(), units.len());
        for u in units {
            let k = keep.iter().any(|&r| units[r] == u);
            let h = held.iter().any(|&r| units[r] == u);
            assert!(k != h, "{u}");
        }
        assert_eq!(split_units(&units, 0.3, 4), (keep, held));
    }

    #[test]
    fn bounding_keeps_k_rows_per_unit() {
        let units = ["a", "a", "a", "b", "c", "c"];
        let keep = bound_contributions(&units, 2, 9);
        assert_eq!(keep.len(), 5);
        assert_eq!(keep.iter().filter(|&&r| units[r] == "a").count(), 2);
    }
}
