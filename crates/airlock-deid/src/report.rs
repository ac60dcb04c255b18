//! Run reports: what each rule changed, what was quarantined, leak-check results, residual
//! risk. Serializable (`deid-report.json`) with a human-readable [`RunReport::summary`]. Never
//! holds an input value.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::hash::FastMap;
use crate::risk::RiskReport;

/// A record set aside because it could not be processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    /// Input file (or `<buffer>`).
    pub file: String,
    /// 0-based record index (Bundle entry, NDJSON record, HL7 message, CSV row).
    pub record: u64,
    /// 1-based line, when known (0 otherwise).
    pub line: u64,
    /// Where in the record (`entry[3].resource`, `MSH`, a column...).
    pub path: String,
    /// Why (a format error message: positions only).
    pub reason: String,
}

/// A leak-check hit: an identifying input value found in the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakHit {
    /// Output file (or `<buffer>`).
    pub file: String,
    /// 0-based record index in the output.
    pub record: u64,
    /// Path of the output value holding it.
    pub path: String,
    /// The kind of the identifying value (`name`, `id`, `phone`...).
    pub kind: String,
}

/// Leak-check outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakCheck {
    /// Distinct identifying values collected from the input.
    pub values_checked: u64,
    /// Output values scanned.
    pub output_values_scanned: u64,
    /// Hits (paths only).
    pub hits: Vec<LeakHit>,
    /// Numbers in CSV columns that equal an identifying number by coincidence (an amount equal
    /// to someone's zip), counted, not failed: too few in their column to be the column's
    /// content (see the CSV scan).
    #[serde(default)]
    pub numeric_coincidences: u64,
    /// Date hits where the output value is a whole structured date the date shift wrote that
    /// equals a true date of the input (another patient's, or another event of the same
    /// patient's, landed on by the shift), counted, not failed: only when the output holds that
    /// value no more often than the shift wrote it, so a copy of it left unshifted anywhere, or
    /// a date in free text, stays a hit (see `leak`).
    #[serde(default)]
    pub date_shift_coincidences: u64,
    /// Whether the check passed (no hits).
    pub passed: bool,
}

/// One processed input file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    /// Input path.
    pub input: String,
    /// Output path.
    pub output: String,
    /// Format name.
    pub format: String,
    /// Records read.
    pub records: u64,
    /// Records quarantined.
    pub quarantined: u64,
    /// The built-in mapping table a CSV file was recognised as (`synthea/patients`), from its
    /// header: a name from the mappings' closed list, never one from the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

/// The report of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Profile name.
    pub profile: String,
    /// SHA-256 of the profile text.
    pub profile_hash: String,
    /// Key id (hash prefix, not the key).
    pub key_id: String,
    /// Engine version.
    pub engine_version: String,
    /// Output classification (`deidentified` or `limited-data-set`).
    pub classification: String,
    /// How identifiers were replaced, and under which regulation.
    pub pseudonym_scheme: String,
    /// The restricted-zip list used, with its vintage.
    pub restricted_zip3: String,
    /// Files processed.
    pub files: Vec<FileReport>,
    /// Records read.
    pub records_in: u64,
    /// Records written.
    pub records_out: u64,
    /// Changes: path → method → count.
    pub changes: BTreeMap<String, BTreeMap<String, u64>>,
    /// Quarantined records.
    pub quarantined: Vec<Quarantined>,
    /// Warnings (unruled identifier-like columns, rule columns absent...).
    pub warnings: Vec<String>,
    /// Leak check.
    pub leak_check: LeakCheck,
    /// Residual risk on tabular quasi-identifiers, when computed.
    pub risk: Vec<(String, RiskReport)>,
    /// Pseudonym crosswalk pairs added in this run (surrogate scheme).
    pub crosswalk_added: u64,
}

impl RunReport {
    /// What to do about a failed leak check: the paths (CSV columns, FHIR element paths, HL7
    /// fields) that held identifying values, and the profile rule that would treat them. Names
    /// paths only, never a value. `None` when the check passed.
    pub fn leak_advice(&self) -> Option<String> {
        if self.leak_check.passed {
            return None;
        }
        let mut paths: Vec<&str> = self
            .leak_check
            .hits
            .iter()
            .map(|h| h.path.as_str())
            .collect();
        paths.sort_unstable();
        paths.dedup();
        let shown = paths
            .iter()
            .take(10)
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let more = paths.len().saturating_sub(10);
        let example = paths.first().copied().unwrap_or("COLUMN");
        Some(format!(
            "identifying values remain under {shown}{}; give each a rule in a profile of your \
             own (for a CSV column: [[csv]] column = \"{example}\" method = \"redact\"; for \
             FHIR: a [[fhir]] path rule), or remove it from the input",
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ))
    }

    /// Whether the run passed: no leak (when the profile fails on leaks) and nothing
    /// quarantined.
    pub fn clean(&self) -> bool {
        self.leak_check.passed && self.quarantined.is_empty()
    }

    /// A human-readable summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "airlock de-identification report");
        let _ = writeln!(
            s,
            "profile            {} (sha256 {})",
            self.profile,
            short(&self.profile_hash)
        );
        let _ = writeln!(s, "key id             {}", self.key_id);
        let _ = writeln!(s, "classification     {}", self.classification);
        let _ = writeln!(s, "identifiers        {}", self.pseudonym_scheme);
        let _ = writeln!(s, "restricted zip3    {}", self.restricted_zip3);
        let _ = writeln!(s, "files              {}", self.files.len());
        let _ = writeln!(
            s,
            "records in / out   {} / {}",
            self.records_in, self.records_out
        );
        let _ = writeln!(s, "quarantined        {}", self.quarantined.len());
        for q in self.quarantined.iter().take(20) {
            let _ = writeln!(
                s,
                "  {} record {} line {} `{}`: {}",
                q.file, q.record, q.line, q.path, q.reason
            );
        }
        let lc = &self.leak_check;
        let _ = writeln!(
            s,
            "leak check         {} ({} identifying values, {} output values scanned, {} hits)",
            if lc.passed { "PASSED" } else { "FAILED" },
            lc.values_checked,
            lc.output_values_scanned,
            lc.hits.len()
        );
        for h in lc.hits.iter().take(20) {
            let _ = writeln!(
                s,
                "  {} record {} `{}` ({})",
                h.file, h.record, h.path, h.kind
            );
        }
        if lc.numeric_coincidences > 0 {
            let _ = writeln!(
                s,
                "  {} CSV number(s) equal to an identifying number by coincidence (under half \
                 of their column's numbers): not counted as hits",
                lc.numeric_coincidences
            );
        }
        if lc.date_shift_coincidences > 0 {
            let _ = writeln!(
                s,
                "  {} shifted date(s) equal to a true input date by coincidence (whole dates the \
                 date shift wrote): not counted as hits",
                lc.date_shift_coincidences
            );
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        let _ = writeln!(s, "changes by path (top 40):");
        let mut rows: Vec<(u64, &str, &str)> = self
            .changes
            .iter()
            .flat_map(|(p, m)| m.iter().map(move |(k, v)| (*v, p.as_str(), k.as_str())))
            .collect();
        rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        for (n, p, m) in rows.iter().take(40) {
            let _ = writeln!(s, "  {n:>8}  {m:<11} {p}");
        }
        for (name, r) in &self.risk {
            if name.starts_with("fhir:") || name.starts_with("hl7:") {
                // The patients of FHIR and HL7 outputs, on fixed demographics: two lines.
                let _ = writeln!(
                    s,
                    "residual risk: {name}  {} patients on {}: {} classes, k = {}",
                    r.records,
                    r.quasi_identifiers.join(", "),
                    r.classes,
                    r.k
                );
                let _ = writeln!(
                    s,
                    "  prosecutor risk max {:.4} avg {:.4}  journalist max {:.4}  sample-unique {:.2}%",
                    r.prosecutor_max,
                    r.prosecutor_avg,
                    r.journalist_max,
                    r.sample_unique_share * 100.0
                );
                continue;
            }
            let _ = writeln!(s, "residual risk: {name}");
            s.push_str(&r.summary());
        }
        s
    }
}

fn short(h: &str) -> &str {
    h.get(..16).unwrap_or(h)
}

/// Change counters keyed by `path` and method (fast path for the hot loop: a path sees one or
/// two methods, so they are a short list). A small direct-mapped cache of recent
/// (path, method) counters sits in front of the map: a document changes the same few paths
/// over and over, and a fixed-size cache keyed by a fast hash cannot be slowed down by input.
#[derive(Debug)]
pub(crate) struct Changes {
    map: FastMap<String, Vec<(&'static str, u64)>>,
    cache: Vec<Slot>,
}

/// One cached counter (`n == 0`: empty; the path buffer is reused).
#[derive(Debug, Default, Clone)]
struct Slot {
    path: String,
    method: &'static str,
    n: u64,
}

const CACHE_SLOTS: usize = 256;

impl Default for Changes {
    fn default() -> Self {
        Changes {
            map: FastMap::default(),
            cache: vec![Slot::default(); CACHE_SLOTS],
        }
    }
}

/// The fx multiply-rotate hash (the cache index only).
fn fx(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = 0u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    for &b in chunks.remainder() {
        h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
    }
    h
}

impl Changes {
    pub fn add(&mut self, path: &str, method: &'static str) {
        let i = (fx(path.as_bytes()) >> 56) as usize;
        let Some(slot) = self.cache.get_mut(i) else {
            Self::add_to(&mut self.map, path, method, 1);
            return;
        };
        if slot.n > 0 && slot.method == method && slot.path == path {
            slot.n += 1;
            return;
        }
        if slot.n > 0 {
            Self::add_to(&mut self.map, &slot.path, slot.method, slot.n);
        }
        slot.path.clear();
        slot.path.push_str(path);
        slot.method = method;
        slot.n = 1;
    }

    fn add_to(
        map: &mut FastMap<String, Vec<(&'static str, u64)>>,
        path: &str,
        method: &'static str,
        n: u64,
    ) {
        if let Some(m) = map.get_mut(path) {
            match m.iter_mut().find(|(k, _)| *k == method) {
                Some((_, c)) => *c += n,
                None => m.push((method, n)),
            }
        } else {
            map.insert(path.to_owned(), vec![(method, n)]);
        }
    }

    pub fn merge_into(&self, out: &mut BTreeMap<String, BTreeMap<String, u64>>) {
        let cached = self
            .cache
            .iter()
            .filter(|s| s.n > 0)
            .map(|s| (s.path.as_str(), s.method, s.n));
        let mapped = self
            .map
            .iter()
            .flat_map(|(p, m)| m.iter().map(move |(k, v)| (p.as_str(), *k, *v)));
        for (p, k, v) in mapped.chain(cached) {
            *out.entry(p.to_owned())
                .or_default()
                .entry(k.to_owned())
                .or_insert(0) += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn change_counters_match_a_naive_count(
            adds in prop::collection::vec((0usize..600, 0usize..3), 0..3000),
        ) {
            const METHODS: [&str; 3] = ["keep", "redact", "pseudonym"];
            let mut changes = Changes::default();
            let mut naive: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
            for (p, m) in adds {
                let path = format!("Observation.x{p}");
                changes.add(&path, METHODS[m]);
                *naive.entry(path).or_default().entry(METHODS[m].to_owned()).or_insert(0) += 1;
            }
            let mut out = BTreeMap::new();
            changes.merge_into(&mut out);
            prop_assert_eq!(out, naive);
        }
    }
}
