//! Rare-code generalisation: a clinical code seen in fewer than K distinct patients becomes its
//! parent category. ICD-10 → the 3-character category (`E11.9` → `E11`); ICD-9 → the 3-digit
//! category (`250.01` → `250`, `V45.81` → `V45`, `E849.0` → `E849`); SNOMED CT has no parent
//! derivable from the code itself (that needs the release's is-a table), so a rare SNOMED code
//! is replaced by the documented fallback `rare` (the code is suppressed, the system kept).

use std::collections::{HashMap, HashSet};

use crate::profile::Hierarchy;

/// The SNOMED fallback for a rare code.
pub const SNOMED_RARE: &str = "rare";

/// Patient counts per code, filled by a pre-pass over the inputs.
#[derive(Debug, Default)]
pub struct RareCodes {
    /// Minimum number of distinct patients for a code to be kept as is.
    pub min_patients: u32,
    seen: HashMap<(Hierarchy, String), HashSet<String>>,
}

impl RareCodes {
    /// An empty table with threshold `min_patients`.
    pub fn new(min_patients: u32) -> RareCodes {
        RareCodes {
            min_patients,
            seen: HashMap::new(),
        }
    }

    /// Records that `patient` has `code`.
    pub fn observe(&mut self, h: Hierarchy, code: &str, patient: &str) {
        let code = code.trim();
        if code.is_empty() {
            return;
        }
        if let Some(s) = self.seen.get_mut(&(h, code.to_owned())) {
            if !s.contains(patient) {
                s.insert(patient.to_owned());
            }
        } else {
            let mut s = HashSet::new();
            s.insert(patient.to_owned());
            self.seen.insert((h, code.to_owned()), s);
        }
    }

    /// Whether `code` is rare (seen in fewer than `min_patients` patients, or never seen).
    pub fn is_rare(&self, h: Hierarchy, code: &str) -> bool {
        self.seen
            .get(&(h, code.trim().to_owned()))
            .is_none_or(|s| (s.len() as u64) < u64::from(self.min_patients))
    }
}

/// The hierarchy of a FHIR coding system URL, if it is one the engine generalises.
pub fn hierarchy_of_system(system: &str) -> Option<Hierarchy> {
    let s = system.to_ascii_lowercase();
    if s.contains("icd-10") || s.contains("icd10") {
        Some(Hierarchy::Icd10)
    } else if s.contains("icd-9") || s.contains("icd9") {
        Some(Hierarchy::Icd9)
    } else if s.contains("snomed") {
        Some(Hierarchy::Snomed)
    } else {
        None
    }
}

/// The parent category of a code.
pub fn parent(code: &str, h: Hierarchy) -> String {
    let c = code.trim();
    match h {
        Hierarchy::Icd10 => c.chars().filter(|c| *c != '.').take(3).collect(),
        Hierarchy::Icd9 => {
            let head = c.split('.').next().unwrap_or(c);
            let n = if head.starts_with(['E', 'e']) { 4 } else { 3 };
            head.chars().take(n).collect()
        }
        Hierarchy::Snomed => SNOMED_RARE.to_owned(),
    }
}

/// Generalises `code`: with a rare-code table, only rare codes become their parent; without
/// one (an explicit `generalize` rule), every code does.
pub fn generalize(code: &str, h: Hierarchy, rare: Option<&RareCodes>) -> String {
    match rare {
        Some(r) if !r.is_rare(h, code) => code.to_owned(),
        _ => parent(code, h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents() {
        assert_eq!(parent("E11.9", Hierarchy::Icd10), "E11");
        assert_eq!(parent("250.01", Hierarchy::Icd9), "250");
        assert_eq!(parent("V45.81", Hierarchy::Icd9), "V45");
        assert_eq!(parent("E849.0", Hierarchy::Icd9), "E849");
        assert_eq!(parent("428", Hierarchy::Icd9), "428");
        assert_eq!(parent("44054006", Hierarchy::Snomed), "rare");
        let mut r = RareCodes::new(2);
        r.observe(Hierarchy::Icd9, "250.01", "a");
        r.observe(Hierarchy::Icd9, "250.01", "a");
        assert_eq!(generalize("250.01", Hierarchy::Icd9, Some(&r)), "250");
        r.observe(Hierarchy::Icd9, "250.01", "b");
        assert_eq!(generalize("250.01", Hierarchy::Icd9, Some(&r)), "250.01");
        assert_eq!(
            hierarchy_of_system("http://snomed.info/sct"),
            Some(Hierarchy::Snomed)
        );
    }
}
