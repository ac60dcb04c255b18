//! A dataset's DP metadata, set by the privacy officer: who the privacy unit is, how many rows
//! one unit may contribute, the bounds of numeric columns and the domains of category columns.
//! Bounds and domains are public facts chosen without looking at the data; a query that needs
//! one that is not declared is refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::DpError;

/// Whom the guarantee protects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrivacyUnit {
    /// Each row is one person.
    Row,
    /// The person is identified by this column (a patient reference or pseudonym), present
    /// in every table of the dataset.
    Column(String),
}

/// The most rows per unit any deployment may declare: beyond it the noise drowns the answer.
pub const MAX_ROWS_PER_UNIT: u32 = 10_000;

/// Per-dataset DP metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpMetadata {
    /// The privacy unit.
    pub unit: PrivacyUnit,
    /// The most rows one unit contributes to a query (after any join); more are dropped.
    pub max_rows_per_unit: u32,
    /// Tighter bounds for some tables (`patients` has one row per patient): a question over
    /// one table uses its bound; a join bounds each table by its own first, and the joined
    /// rows by the product of theirs (at most `max_rows_per_unit`).
    #[serde(default)]
    pub table_rows_per_unit: BTreeMap<String, u32>,
    /// `column → [lo, hi]` for numeric columns.
    #[serde(default)]
    pub bounds: BTreeMap<String, (f64, f64)>,
    /// `column → values` for category columns that may be grouped by.
    #[serde(default)]
    pub domains: BTreeMap<String, Vec<String>>,
    /// `column → bins` for numeric columns that synthetic data discretises (equal-width over
    /// the bounds); without one, [`DpMetadata::bins_of`] chooses from the bounds alone.
    #[serde(default)]
    pub bins: BTreeMap<String, u32>,
}

/// The most values a declared domain may list (a group-by over a product of domains is capped
/// separately, at [`crate::sql::MAX_GROUPS`]).
pub const MAX_DOMAIN: usize = 1_000;

/// Bins of a numeric column when none are declared and its bounds are not a short range of
/// whole numbers.
pub const DEFAULT_BINS: u32 = 16;

impl DpMetadata {
    /// Checks the metadata is usable: bounds finite and ordered, domains non-empty and without
    /// duplicates, one row per unit when the unit is the row.
    pub fn check(&self) -> Result<(), DpError> {
        if self.max_rows_per_unit == 0 || self.max_rows_per_unit > MAX_ROWS_PER_UNIT {
            return Err(DpError::Metadata(format!(
                "max rows per unit must be between 1 and {MAX_ROWS_PER_UNIT}"
            )));
        }
        for (table, k) in &self.table_rows_per_unit {
            if *k == 0 || *k > self.max_rows_per_unit {
                return Err(DpError::Metadata(format!(
                    "rows per unit of table {table:?} must be between 1 and max rows per unit"
                )));
            }
        }
        if self.unit == PrivacyUnit::Row && self.max_rows_per_unit != 1 {
            return Err(DpError::Metadata(
                "when the privacy unit is the row, max rows per unit must be 1".into(),
            ));
        }
        if let PrivacyUnit::Column(c) = &self.unit
            && c.trim().is_empty()
        {
            return Err(DpError::Metadata("the unit column is empty".into()));
        }
        for (column, (lo, hi)) in &self.bounds {
            if !lo.is_finite() || !hi.is_finite() || lo >= hi || lo.abs() > 1e12 || hi.abs() > 1e12
            {
                return Err(DpError::Metadata(format!(
                    "bounds of column {column:?} must be finite, within ±1e12, with lo < hi"
                )));
            }
        }
        for (column, bins) in &self.bins {
            if *bins == 0 || *bins > MAX_DOMAIN as u32 {
                return Err(DpError::Metadata(format!(
                    "bins of column {column:?} must be between 1 and {MAX_DOMAIN}"
                )));
            }
        }
        for (column, values) in &self.domains {
            if values.is_empty() || values.len() > MAX_DOMAIN {
                return Err(DpError::Metadata(format!(
                    "domain of column {column:?} must list 1 to {MAX_DOMAIN} values"
                )));
            }
            let mut seen = std::collections::BTreeSet::new();
            if values.iter().any(|v| !seen.insert(v)) {
                return Err(DpError::Metadata(format!(
                    "domain of column {column:?} lists a value twice"
                )));
            }
        }
        Ok(())
    }

    /// The bounds of a column, by bare or `table.column` name.
    pub fn bounds_of(&self, table: &str, column: &str) -> Option<(f64, f64)> {
        self.bounds
            .get(&format!("{table}.{column}"))
            .or_else(|| self.bounds.get(column))
            .copied()
    }

    /// The bins of a numeric column, by bare or `table.column` name: the declared count, else
    /// one per whole number when the bounds are whole numbers at most 32 apart, else 16. The
    /// choice looks at the bounds only, never at the data.
    pub fn bins_of(&self, table: &str, column: &str) -> Option<u32> {
        let declared = self
            .bins
            .get(&format!("{table}.{column}"))
            .or_else(|| self.bins.get(column))
            .copied();
        let (lo, hi) = self.bounds_of(table, column)?;
        Some(declared.unwrap_or_else(|| {
            if lo.fract() == 0.0 && hi.fract() == 0.0 && hi - lo < 32.0 {
                (hi - lo) as u32 + 1
            } else {
                DEFAULT_BINS
            }
        }))
    }

    /// The domain of a column, by bare or `table.column` name.
    pub fn domain_of(&self, table: &str, column: &str) -> Option<&Vec<String>> {
        self.domains
            .get(&format!("{table}.{column}"))
            .or_else(|| self.domains.get(column))
    }

    /// Parses the CLI's `col=lo:hi`.
    pub fn parse_bound(spec: &str) -> Result<(String, (f64, f64)), DpError> {
        let bad = || DpError::Metadata(format!("a bound is written column=lo:hi, not {spec:?}"));
        let (column, range) = spec.split_once('=').ok_or_else(bad)?;
        let (lo, hi) = range.split_once(':').ok_or_else(bad)?;
        let lo: f64 = lo.trim().parse().map_err(|_| bad())?;
        let hi: f64 = hi.trim().parse().map_err(|_| bad())?;
        Ok((column.trim().to_string(), (lo, hi)))
    }

    /// A table's bound on rows per unit.
    pub fn rows_per_unit_of(&self, table: &str) -> u32 {
        self.table_rows_per_unit
            .get(table)
            .copied()
            .unwrap_or(self.max_rows_per_unit)
    }

    /// Parses the CLI's `table=K`.
    pub fn parse_table_rows(spec: &str) -> Result<(String, u32), DpError> {
        let bad = || DpError::Metadata(format!("a table's bound is written table=K, not {spec:?}"));
        let (table, k) = spec.split_once('=').ok_or_else(bad)?;
        Ok((
            table.trim().to_string(),
            k.trim().parse().map_err(|_| bad())?,
        ))
    }

    /// Parses the CLI's `col=a|b|c`.
    pub fn parse_domain(spec: &str) -> Result<(String, Vec<String>), DpError> {
        let (column, values) = spec.split_once('=').ok_or_else(|| {
            DpError::Metadata(format!("a domain is written column=a|b|c, not {spec:?}"))
        })?;
        Ok((
            column.trim().to_string(),
            values.split('|').map(|v| v.to_string()).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_metadata_is_refused() {
        let good = DpMetadata {
            bins: Default::default(),
            unit: PrivacyUnit::Column("patient".into()),
            max_rows_per_unit: 5,
            table_rows_per_unit: BTreeMap::from([("patients".into(), 1)]),
            bounds: BTreeMap::from([("age".into(), (0.0, 120.0))]),
            domains: BTreeMap::from([("sex".into(), vec!["F".into(), "M".into()])]),
        };
        assert!(good.check().is_ok());
        let mut m = good.clone();
        m.bounds.insert("x".into(), (5.0, 5.0));
        assert!(m.check().is_err());
        let mut m = good.clone();
        m.bounds.insert("x".into(), (f64::NAN, 5.0));
        assert!(m.check().is_err());
        let mut m = good.clone();
        m.domains.insert("y".into(), vec!["a".into(), "a".into()]);
        assert!(m.check().is_err());
        let mut m = good.clone();
        m.unit = PrivacyUnit::Row;
        assert!(m.check().is_err());
        let mut m = good.clone();
        m.table_rows_per_unit.insert("x".into(), 6);
        assert!(m.check().is_err());
        let mut m = good;
        m.max_rows_per_unit = 0;
        assert!(m.check().is_err());
        assert_eq!(
            DpMetadata::parse_bound("age=0:120").ok(),
            Some(("age".to_string(), (0.0, 120.0)))
        );
        assert!(DpMetadata::parse_bound("age=0-120").is_err());
    }
}
