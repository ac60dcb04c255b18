//! Re-identification risk on quasi-identifiers: equivalence classes, k, l-diversity,
//! prosecutor and journalist risk, sample uniqueness; and k-anonymity enforcement by
//! generalisation and suppression.
//!
//! Values are interned per column into small integers and each record's quasi-identifier
//! tuple packed into one `Vec<u32>` key, so 100k records × 8 quasi-identifiers take tens of
//! milliseconds.
//!
//! Journalist risk is computed against an estimated population: each class's population size
//! is `f / sampling_fraction` (the data set is a sample of that fraction of its population);
//! with a fraction of 1 it equals prosecutor risk.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The risk figures for one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskReport {
    /// Records counted.
    pub records: u64,
    /// Quasi-identifier columns.
    pub quasi_identifiers: Vec<String>,
    /// Where each quasi-identifier was read, in the same order (a CSV column, which may be an
    /// alias of the profile's name; a FHIR path; an HL7 field), when it is not the name itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// Sensitive attribute (for l-diversity).
    pub sensitive: Option<String>,
    /// Number of equivalence classes.
    pub classes: u64,
    /// k: the smallest class size.
    pub k: u64,
    /// Class-size histogram: `"1"`, `"2"`, `"3-4"`, `"5-10"`, `"11-19"`, `"20+"` → classes.
    pub class_sizes: BTreeMap<String, u64>,
    /// Records in classes of each size band.
    pub records_by_class_size: BTreeMap<String, u64>,
    /// l: the smallest number of distinct sensitive values in a class.
    pub l_diversity: Option<u64>,
    /// Prosecutor risk, max (1 / smallest class).
    pub prosecutor_max: f64,
    /// Prosecutor risk, average over records (classes / records).
    pub prosecutor_avg: f64,
    /// Journalist risk, max, against the estimated population.
    pub journalist_max: f64,
    /// Journalist risk, average.
    pub journalist_avg: f64,
    /// Share of records unique in the sample on the quasi-identifiers.
    pub sample_unique_share: f64,
    /// Sampling fraction used for journalist risk.
    pub sampling_fraction: f64,
    /// Records suppressed by k-anonymity enforcement (0 when only measured).
    pub suppressed: u64,
    /// Generalisation level applied to each quasi-identifier (0 = none).
    pub generalisation: BTreeMap<String, u32>,
}

impl RiskReport {
    /// The quasi-identifiers, each with where it was read when that is another name
    /// (`age (BIRTHDATE, year)`).
    pub fn named_quasi_identifiers(&self) -> String {
        self.quasi_identifiers
            .iter()
            .enumerate()
            .map(|(i, q)| match self.sources.get(i) {
                Some(src) if !src.eq_ignore_ascii_case(q) => format!("{q} ({src})"),
                _ => q.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Human-readable lines.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "  records {}  quasi-identifiers {}: {}",
            self.records,
            self.quasi_identifiers.len(),
            self.named_quasi_identifiers()
        );
        let _ = writeln!(s, "  equivalence classes {}  k = {}", self.classes, self.k);
        let _ = writeln!(s, "  class sizes {:?}", self.class_sizes);
        if let (Some(l), Some(a)) = (self.l_diversity, &self.sensitive) {
            let _ = writeln!(s, "  l-diversity on `{a}`: l = {l}");
        }
        let _ = writeln!(
            s,
            "  prosecutor risk max {:.4} avg {:.4}",
            self.prosecutor_max, self.prosecutor_avg
        );
        let _ = writeln!(
            s,
            "  journalist risk max {:.4} avg {:.4} (sampling fraction {})",
            self.journalist_max, self.journalist_avg, self.sampling_fraction
        );
        let _ = writeln!(
            s,
            "  sample-unique records {:.2}%",
            self.sample_unique_share * 100.0
        );
        if self.suppressed > 0 || self.generalisation.values().any(|l| *l > 0) {
            let _ = writeln!(
                s,
                "  suppressed {}  generalisation {:?}",
                self.suppressed, self.generalisation
            );
        }
        s
    }
}

/// Accumulates quasi-identifier tuples.
#[derive(Debug)]
pub struct RiskAccumulator {
    dicts: Vec<HashMap<String, u32>>,
    sens: HashMap<String, u32>,
    classes: HashMap<Vec<u32>, (u64, Vec<u32>)>,
    records: u64,
    key: Vec<u32>,
}

impl RiskAccumulator {
    /// For `n` quasi-identifiers.
    pub fn new(n: usize) -> RiskAccumulator {
        RiskAccumulator {
            dicts: vec![HashMap::new(); n],
            sens: HashMap::new(),
            classes: HashMap::new(),
            records: 0,
            key: Vec::with_capacity(n),
        }
    }

    fn intern(d: &mut HashMap<String, u32>, v: &str) -> u32 {
        if let Some(&i) = d.get(v) {
            return i;
        }
        let i = d.len() as u32;
        d.insert(v.to_owned(), i);
        i
    }

    /// Adds a record: its quasi-identifier values (in order) and sensitive value.
    pub fn add<S: AsRef<str>>(&mut self, qis: &[S], sensitive: Option<&str>) {
        self.key.clear();
        for (d, v) in self.dicts.iter_mut().zip(qis) {
            self.key.push(Self::intern(d, v.as_ref()));
        }
        let s = sensitive.map(|s| Self::intern(&mut self.sens, s));
        self.records += 1;
        if let Some(e) = self.classes.get_mut(&self.key) {
            e.0 += 1;
            if let Some(s) = s
                && !e.1.contains(&s)
            {
                e.1.push(s);
            }
        } else {
            self.classes
                .insert(self.key.clone(), (1, s.into_iter().collect()));
        }
    }

    /// Computes the report.
    pub fn finish(
        &self,
        names: &[String],
        sensitive: Option<&str>,
        sampling_fraction: f64,
    ) -> RiskReport {
        let n = self.records.max(1) as f64;
        let j = self.classes.len() as u64;
        let k = self.classes.values().map(|c| c.0).min().unwrap_or(0);
        let l = sensitive.map(|_| {
            self.classes
                .values()
                .map(|c| c.1.len() as u64)
                .min()
                .unwrap_or(0)
        });
        let mut class_sizes = BTreeMap::new();
        let mut records_by = BTreeMap::new();
        let mut uniques = 0u64;
        for (size, _) in self.classes.values() {
            let band = match size {
                1 => "1",
                2 => "2",
                3..=4 => "3-4",
                5..=10 => "5-10",
                11..=19 => "11-19",
                _ => "20+",
            };
            *class_sizes.entry(band.to_owned()).or_insert(0) += 1;
            *records_by.entry(band.to_owned()).or_insert(0) += size;
            if *size == 1 {
                uniques += 1;
            }
        }
        let pros_max = if k > 0 { 1.0 / k as f64 } else { 0.0 };
        let pros_avg = if self.records > 0 { j as f64 / n } else { 0.0 };
        let f = sampling_fraction.clamp(f64::MIN_POSITIVE, 1.0);
        RiskReport {
            records: self.records,
            quasi_identifiers: names.to_vec(),
            sources: Vec::new(),
            sensitive: sensitive.map(str::to_owned),
            classes: j,
            k,
            class_sizes,
            records_by_class_size: records_by,
            l_diversity: l,
            prosecutor_max: pros_max,
            prosecutor_avg: pros_avg,
            journalist_max: (pros_max * f).min(1.0),
            journalist_avg: (pros_avg * f).min(1.0),
            sample_unique_share: if self.records > 0 {
                uniques as f64 / n
            } else {
                0.0
            },
            sampling_fraction: f,
            suppressed: 0,
            generalisation: names.iter().map(|n| (n.clone(), 0)).collect(),
        }
    }
}

/// Generalises one quasi-identifier value to `level` (0 = as is): numbers go to bins of
/// `10 × 2^(level-1)`; bins like `[70-80)` double their width per level; anything else (and
/// anything past level 3) becomes `*`.
pub fn generalise_value(v: &str, level: u32) -> String {
    if level == 0 {
        return v.to_owned();
    }
    if level > 3 {
        return "*".to_owned();
    }
    let t = v.trim();
    if let Ok(x) = t.parse::<f64>() {
        return crate::values::bin(x, 10.0 * f64::from(1u32 << (level - 1)));
    }
    if let Some(inner) = t.strip_prefix('[').and_then(|s| s.strip_suffix(')'))
        && let Some((a, b)) = inner.split_once('-')
        && let (Ok(a), Ok(b)) = (a.trim().parse::<f64>(), b.trim().parse::<f64>())
    {
        let w = (b - a) * f64::from(1u32 << level);
        return crate::values::bin(a, w);
    }
    "*".to_owned()
}

/// The k-anonymity plan for a table: generalisation levels per quasi-identifier and the rows
/// to suppress.
#[derive(Debug, Clone, Default)]
pub struct KPlan {
    /// Level per quasi-identifier.
    pub levels: Vec<u32>,
    /// Rows (0-based data-row indices) to suppress.
    pub suppress: std::collections::HashSet<u64>,
}

/// Greedy k-anonymity: while more than `max_suppression` of the records sit in classes smaller
/// than `k`, generalise the quasi-identifier with the most distinct values one level; then
/// suppress the records still in small classes.
pub fn plan_k_anonymity(rows: &[Vec<String>], k: u64, max_suppression: f64) -> KPlan {
    let nq = rows.first().map_or(0, Vec::len);
    let mut levels = vec![0u32; nq];
    loop {
        let mut classes: HashMap<Vec<String>, u64> = HashMap::new();
        for r in rows {
            let key: Vec<String> = r
                .iter()
                .zip(&levels)
                .map(|(v, l)| generalise_value(v, *l))
                .collect();
            *classes.entry(key).or_insert(0) += 1;
        }
        let small: u64 = classes.values().filter(|c| **c < k).sum();
        let share = small as f64 / rows.len().max(1) as f64;
        if share <= max_suppression {
            let mut suppress = std::collections::HashSet::new();
            for (i, r) in rows.iter().enumerate() {
                let key: Vec<String> = r
                    .iter()
                    .zip(&levels)
                    .map(|(v, l)| generalise_value(v, *l))
                    .collect();
                if classes.get(&key).is_some_and(|c| *c < k) {
                    suppress.insert(i as u64);
                }
            }
            return KPlan { levels, suppress };
        }
        // Pick the QI with the most distinct generalised values that can still move.
        let mut best: Option<(usize, usize)> = None;
        for q in 0..nq {
            if levels.get(q).copied().unwrap_or(4) > 3 {
                continue;
            }
            let lvl = levels.get(q).copied().unwrap_or(0);
            let distinct: std::collections::HashSet<String> = rows
                .iter()
                .filter_map(|r| r.get(q))
                .map(|v| generalise_value(v, lvl))
                .collect();
            if distinct.len() > 1 && best.is_none_or(|(_, d)| distinct.len() > d) {
                best = Some((q, distinct.len()));
            }
        }
        match best {
            Some((q, _)) => {
                if let Some(l) = levels.get_mut(q) {
                    *l += 1;
                }
            }
            None => {
                // Nothing left to generalise: suppress what remains.
                let mut suppress = std::collections::HashSet::new();
                for (i, r) in rows.iter().enumerate() {
                    let key: Vec<String> = r
                        .iter()
                        .zip(&levels)
                        .map(|(v, l)| generalise_value(v, *l))
                        .collect();
                    if classes.get(&key).is_some_and(|c| *c < k) {
                        suppress.insert(i as u64);
                    }
                }
                return KPlan { levels, suppress };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_on_a_small_table() {
        let mut a = RiskAccumulator::new(2);
        for (q, s) in [
            (["F", "30"], "a"),
            (["F", "30"], "b"),
            (["M", "40"], "a"),
            (["M", "50"], "a"),
        ] {
            a.add(&q, Some(s));
        }
        let r = a.finish(&["sex".into(), "age".into()], Some("dx"), 0.5);
        assert_eq!(r.k, 1);
        assert_eq!(r.classes, 3);
        assert_eq!(r.l_diversity, Some(1));
        assert!((r.prosecutor_max - 1.0).abs() < 1e-9);
        assert!((r.prosecutor_avg - 0.75).abs() < 1e-9);
        assert!((r.journalist_max - 0.5).abs() < 1e-9);
        assert!((r.sample_unique_share - 0.5).abs() < 1e-9);
    }

    #[test]
    fn k_anonymity_plan_reaches_k() {
        let rows: Vec<Vec<String>> = (0..100)
            .map(|i| {
                vec![
                    if i % 2 == 0 { "F" } else { "M" }.to_owned(),
                    format!("{}", 20 + i % 37),
                ]
            })
            .collect();
        let plan = plan_k_anonymity(&rows, 5, 0.0);
        let mut a = RiskAccumulator::new(2);
        for (i, r) in rows.iter().enumerate() {
            if !plan.suppress.contains(&(i as u64)) {
                let g: Vec<String> = r
                    .iter()
                    .zip(&plan.levels)
                    .map(|(v, l)| generalise_value(v, *l))
                    .collect();
                a.add(&g, None);
            }
        }
        assert!(a.finish(&["s".into(), "a".into()], None, 1.0).k >= 5);
        assert_eq!(generalise_value("[70-80)", 1), "[60-80)");
    }
}
