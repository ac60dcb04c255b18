//! Residual re-identification risk of the patients in FHIR and HL7 v2 outputs, on the
//! demographic quasi-identifiers an attacker most often knows: birth year, sex, 3-digit zip,
//! race and ethnicity.
//!
//! The values are read from the *output* (what is released, after dates were shifted or cut
//! to the year and zips cut to three digits), one record per patient. They are gathered while
//! the output is written: FHIR Patient resources are read back from the bytes just written for
//! them (one small resource per patient, so no second parse of the input and no second pass
//! over the output), HL7 `PID` segments from the transformed message before it is serialised.
//! A patient seen in several files or messages is counted once, by the pseudonymised id the
//! output gives it (`Patient.id`, the `PID-3` MRN); the last record seen wins. A missing value
//! is a value of its own (`""`).

use airlock_formats::hl7::{Field, Message};
use serde_json::Value;

use crate::hash::FastMap;
use crate::risk::{RiskAccumulator, RiskReport};

/// The quasi-identifiers of the patient risk reports, in report order.
pub(crate) const PATIENT_QIS: [&str; 5] = ["birth_year", "sex", "zip3", "race", "ethnicity"];

/// Where the FHIR quasi-identifiers are read.
const FHIR_SOURCES: [&str; 5] = [
    "Patient.birthDate, year",
    "Patient.gender",
    "Patient.address.postalCode, 3 characters",
    "us-core-race ombCategory",
    "us-core-ethnicity ombCategory",
];

/// Where the HL7 quasi-identifiers are read.
const HL7_SOURCES: [&str; 5] = [
    "PID-7, year",
    "PID-8",
    "PID-11.5, 3 characters",
    "PID-10",
    "PID-22",
];

/// Report label of the FHIR patients.
pub(crate) const FHIR_LABEL: &str = "fhir:Patient";
/// Report label of the HL7 v2 patients.
pub(crate) const HL7_LABEL: &str = "hl7:PID";

type Tuple = [String; 5];

/// The quasi-identifier tuples of the patients of a run, by format.
#[derive(Debug, Default)]
pub(crate) struct PatientQis {
    fhir: Patients,
    hl7: Patients,
}

/// One format's patients.
#[derive(Debug, Default)]
struct Patients {
    /// By pseudonymised id.
    by_id: FastMap<String, Tuple>,
    /// Records without an id: each counts as a patient of its own.
    anonymous: Vec<Tuple>,
}

impl Patients {
    fn add(&mut self, id: Option<String>, t: Tuple) {
        match id.filter(|i| !i.is_empty()) {
            Some(i) => {
                self.by_id.insert(i, t);
            }
            None => self.anonymous.push(t),
        }
    }

    fn is_empty(&self) -> bool {
        self.by_id.is_empty() && self.anonymous.is_empty()
    }

    fn report(&self, sources: &[&str], sampling_fraction: f64) -> RiskReport {
        let mut acc = RiskAccumulator::new(PATIENT_QIS.len());
        for t in self.by_id.values().chain(&self.anonymous) {
            acc.add(t.as_slice(), None);
        }
        let names: Vec<String> = PATIENT_QIS.iter().map(|q| (*q).to_owned()).collect();
        let mut r = acc.finish(&names, None, sampling_fraction);
        r.sources = sources.iter().map(|s| (*s).to_owned()).collect();
        r
    }
}

impl PatientQis {
    /// Records an output FHIR Patient resource.
    pub fn fhir_patient(&mut self, p: &Value) {
        let s = |key: &str| p.get(key).and_then(Value::as_str).unwrap_or_default();
        let birth_year = year(s("birthDate"));
        let sex = s("gender").to_owned();
        let zip3 = p
            .get("address")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find_map(|a| a.get("postalCode").and_then(Value::as_str))
            .map(zip3)
            .unwrap_or_default();
        let race = us_core_category(p, "us-core-race");
        let ethnicity = us_core_category(p, "us-core-ethnicity");
        let id = p.get("id").and_then(Value::as_str).map(str::to_owned);
        self.fhir.add(id, [birth_year, sex, zip3, race, ethnicity]);
    }

    /// Records the patient of an output HL7 v2 message (none without a `PID` segment).
    pub fn hl7_message(&mut self, m: &Message) {
        let Some(pid) = m.segment("PID") else {
            return;
        };
        let d = &m.delimiters;
        let first = |n: usize, c: usize| -> String {
            pid.field(n)
                .and_then(|f: &Field| f.repetitions.first())
                .and_then(|r| r.component(c))
                .map(|c| c.value(d))
                .unwrap_or_default()
        };
        // A coded value: its code, else its text.
        let coded = |n: usize| {
            let code = first(n, 1);
            if code.trim().is_empty() {
                first(n, 2)
            } else {
                code
            }
        };
        let birth_year = year(&first(7, 1));
        let sex = first(8, 1);
        let zip3 = zip3(&first(11, 5));
        let race = coded(10);
        let ethnicity = coded(22);
        let id = crate::hl7::message_mrn(m);
        self.hl7.add(id, [birth_year, sex, zip3, race, ethnicity]);
    }

    /// The risk reports of the formats that had patients, labelled.
    pub fn reports(&self, sampling_fraction: f64) -> Vec<(String, RiskReport)> {
        [
            (FHIR_LABEL, &self.fhir, FHIR_SOURCES),
            (HL7_LABEL, &self.hl7, HL7_SOURCES),
        ]
        .into_iter()
        .filter(|(_, p, _)| !p.is_empty())
        .map(|(l, p, src)| (l.to_owned(), p.report(&src, sampling_fraction)))
        .collect()
    }
}

/// The year of a date (`1975-03-02`, `19750302`, `1975`); `""` when it has none.
fn year(v: &str) -> String {
    let v = v.trim();
    match v.get(..4) {
        Some(y) if y.bytes().all(|b| b.is_ascii_digit()) => y.to_owned(),
        _ => String::new(),
    }
}

/// The first three characters of a zip.
fn zip3(v: &str) -> String {
    v.trim().chars().take(3).collect()
}

/// The OMB categories of a US Core race or ethnicity extension (display, else code), sorted
/// and joined with `+` (a patient may have several); `""` when there is none.
fn us_core_category(p: &Value, url_suffix: &str) -> String {
    let mut cats: Vec<&str> = p
        .get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|x| {
            x.get("url")
                .and_then(Value::as_str)
                .is_some_and(|u| u.ends_with(url_suffix))
        })
        .flat_map(|x| {
            x.get("extension")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter(|x| x.get("url").and_then(Value::as_str) == Some("ombCategory"))
        .filter_map(|x| {
            let c = x.get("valueCoding")?;
            c.get("display")
                .and_then(Value::as_str)
                .or_else(|| c.get("code").and_then(Value::as_str))
        })
        .collect();
    cats.sort_unstable();
    cats.dedup();
    cats.join("+")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patient(id: &str, birth: &str, gender: &str, zip: &str, race: &str) -> Value {
        json!({
            "resourceType": "Patient",
            "id": id,
            "birthDate": birth,
            "gender": gender,
            "address": [{"state": "MA"}, {"postalCode": zip}],
            "extension": [{
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
                "extension": [
                    {"url": "ombCategory", "valueCoding": {"code": "2106-3", "display": race}},
                    {"url": "text", "valueString": race}
                ]
            }, {
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
                "extension": [{"url": "ombCategory", "valueCoding": {"code": "2186-5"}}]
            }]
        })
    }

    #[test]
    fn fhir_patients_are_counted_once_by_id_with_missing_values_as_values() {
        let mut q = PatientQis::default();
        q.fhir_patient(&patient("a", "1970-05-02", "female", "021", "White"));
        // The same patient in a second bundle.
        q.fhir_patient(&patient("a", "1970-05-02", "female", "021", "White"));
        q.fhir_patient(&patient("b", "1970", "female", "02138", "White"));
        q.fhir_patient(&json!({"resourceType": "Patient", "id": "c"}));
        q.fhir_patient(&json!({"resourceType": "Patient"}));
        let r = q.reports(1.0);
        assert_eq!(r.len(), 1);
        let (label, r) = &r[0];
        assert_eq!(label, FHIR_LABEL);
        assert_eq!(r.records, 4);
        // a and b share (1970, female, 021, White, 2186-5); the two without values share ("",...).
        assert_eq!(r.classes, 2);
        assert_eq!(r.k, 2);
        assert_eq!(r.quasi_identifiers, PATIENT_QIS);
    }

    #[test]
    fn hl7_pid_fields() {
        let text = "MSH|^~\\&|A|B|C|D|20200101||ADT^A01|1|P|2.5\rPID|1||m1^^^H^MR||x^y||19700502|F|||^^^MA^02138|||||||||||N^Not Hispanic\r";
        let (_, msgs) = airlock_formats::hl7::parse_all(text.as_bytes()).unwrap();
        let mut q = PatientQis::default();
        for m in &msgs {
            q.hl7_message(m);
            q.hl7_message(m);
        }
        let t = q.hl7.by_id.get("m1").cloned().unwrap();
        assert_eq!(t, ["1970", "F", "021", "", "N"].map(str::to_owned));
        let r = q.reports(1.0);
        assert_eq!((r[0].0.as_str(), r[0].1.records), (HL7_LABEL, 1));
    }
}
