//! FHIR R4 output: one transaction `Bundle` per patient, and the bulk-export NDJSON layout.
//!
//! Bundles use `urn:uuid:` full URLs and every reference points at an entry of the same
//! bundle (Patient, Organization, Practitioner, Encounter...). NDJSON files use relative
//! `Type/id` references, as a FHIR bulk export does. Resources follow the shape of Synthea's
//! US Core output: race, ethnicity, birth sex, birth place and mother's maiden name
//! extensions; MR, SS, DL and PPN identifiers; an address with a geolocation extension; notes
//! as `DocumentReference` with base64 `text/plain` attachments.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{Value, json};

use crate::model::{Condition, Encounter, SynthPatient};

/// How references are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefStyle {
    /// `urn:uuid:<id>` (transaction bundles).
    Urn,
    /// `<Type>/<id>` (bulk NDJSON).
    Relative,
}

fn reference(style: RefStyle, ty: &str, id: &str) -> String {
    match style {
        RefStyle::Urn => format!("urn:uuid:{id}"),
        RefStyle::Relative => format!("{ty}/{id}"),
    }
}

/// `YYYY-MM-DDThh:mm:ss±hh:00`.
pub(crate) fn fhir_datetime(dt: NaiveDateTime, offset_hours: i32) -> String {
    let sign = if offset_hours < 0 { '-' } else { '+' };
    format!(
        "{}{sign}{:02}:00",
        dt.format("%Y-%m-%dT%H:%M:%S"),
        offset_hours.unsigned_abs()
    )
}

fn fhir_date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn id_type(code: &str, display: &str) -> Value {
    json!({
        "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
            "code": code,
            "display": display
        }],
        "text": display
    })
}

/// Every resource of one patient, in bundle order: Patient, Organization, Practitioner, then
/// per encounter the Encounter, its Conditions, Observations, MedicationRequests and
/// DocumentReferences; chronic problem-list Conditions come right after the Practitioner.
pub(crate) fn resources(p: &SynthPatient, style: RefStyle) -> Vec<Value> {
    let mut out = Vec::with_capacity(8 + p.encounters.len() * 24);
    out.push(patient(p));
    out.push(organization(p));
    out.push(practitioner(p));
    let pref = reference(style, "Patient", &p.id);
    for c in &p.chronic_conditions {
        out.push(condition(p, c, &pref, None));
    }
    for e in &p.encounters {
        out.push(encounter(p, e, &pref, style));
        let eref = reference(style, "Encounter", &e.id);
        out.push(condition(p, &e.primary, &pref, Some(&eref)));
        for c in &e.secondary {
            out.push(condition(p, c, &pref, Some(&eref)));
        }
        for o in &e.observations {
            out.push(json!({
                "resourceType": "Observation",
                "id": o.id,
                "status": "final",
                "category": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": o.category.code(),
                    "display": o.category.code()
                }]}],
                "code": {
                    "coding": [{"system": "http://loinc.org", "code": o.loinc, "display": o.display}],
                    "text": o.display
                },
                "subject": {"reference": pref},
                "encounter": {"reference": eref},
                "effectiveDateTime": fhir_datetime(o.effective, p.utc_offset_hours),
                "issued": fhir_datetime(o.effective, p.utc_offset_hours),
                "valueQuantity": {
                    "value": o.value,
                    "unit": o.unit,
                    "system": "http://unitsofmeasure.org",
                    "code": o.unit
                },
                "referenceRange": [{
                    "low": {"value": o.ref_low, "unit": o.unit, "system": "http://unitsofmeasure.org", "code": o.unit},
                    "high": {"value": o.ref_high, "unit": o.unit, "system": "http://unitsofmeasure.org", "code": o.unit}
                }]
            }));
        }
        for m in &e.medications {
            out.push(json!({
                "resourceType": "MedicationRequest",
                "id": m.id,
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": {
                    "coding": [{
                        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                        "code": m.rxnorm,
                        "display": m.display
                    }],
                    "text": m.display
                },
                "subject": {"reference": pref},
                "encounter": {"reference": eref},
                "authoredOn": fhir_datetime(m.authored, p.utc_offset_hours),
                "requester": {
                    "reference": reference(style, "Practitioner", &p.clinician.id),
                    "display": format!("Dr. {} {}", p.clinician.given, p.clinician.family)
                }
            }));
        }
        for n in &e.notes {
            out.push(json!({
                "resourceType": "DocumentReference",
                "id": n.id,
                "status": "current",
                "type": {"coding": [{
                    "system": "http://loinc.org",
                    "code": n.kind.loinc(),
                    "display": n.kind.display()
                }]},
                "category": [{"coding": [{
                    "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                    "code": "clinical-note",
                    "display": "Clinical Note"
                }]}],
                "subject": {"reference": pref},
                "date": fhir_datetime(n.date, p.utc_offset_hours),
                "author": [{
                    "reference": reference(style, "Practitioner", &p.clinician.id),
                    "display": format!("Dr. {} {}", p.clinician.given, p.clinician.family)
                }],
                "custodian": {"reference": reference(style, "Organization", &p.facility.id)},
                "content": [{"attachment": {
                    "contentType": "text/plain",
                    "data": B64.encode(n.text.as_bytes())
                }}],
                "context": {
                    "encounter": [{"reference": eref}],
                    "period": {
                        "start": fhir_datetime(e.admit, p.utc_offset_hours),
                        "end": fhir_datetime(e.discharge, p.utc_offset_hours)
                    }
                }
            }));
        }
    }
    out
}

/// How many resources [`resources`] returns for `p`, without building them.
pub(crate) fn resource_count(p: &SynthPatient) -> usize {
    3 + p.chronic_conditions.len()
        + p.encounters
            .iter()
            .map(|e| {
                2 + e.secondary.len() + e.observations.len() + e.medications.len() + e.notes.len()
            })
            .sum::<usize>()
}

fn resource_type(v: &Value) -> &str {
    v.get("resourceType").and_then(Value::as_str).unwrap_or("")
}

fn resource_id(v: &Value) -> &str {
    v.get("id").and_then(Value::as_str).unwrap_or("")
}

/// The transaction bundle of one patient.
pub(crate) fn bundle(p: &SynthPatient) -> Value {
    let entries: Vec<Value> = resources(p, RefStyle::Urn)
        .into_iter()
        .map(|r| {
            let ty = resource_type(&r).to_owned();
            let full = format!("urn:uuid:{}", resource_id(&r));
            json!({
                "fullUrl": full,
                "resource": r,
                "request": {"method": "POST", "url": ty}
            })
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": entries
    })
}

/// The resource type of a value built by [`resources`].
pub(crate) fn type_of(v: &Value) -> &str {
    resource_type(v)
}

fn patient(p: &SynthPatient) -> Value {
    let id = &p.identity;
    let (bp_city, bp_state, bp_country) = id.birth_place;
    let mut names = vec![json!({
        "use": "official",
        "family": id.family,
        "given": match &id.middle {
            Some(m) => vec![id.given.clone(), m.clone()],
            None => vec![id.given.clone()],
        },
        "prefix": [id.prefix]
    })];
    if let Some(maiden) = &id.maiden_family {
        names.push(json!({
            "use": "maiden",
            "family": maiden,
            "given": [id.given]
        }));
    }
    json!({
        "resourceType": "Patient",
        "id": p.id,
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
        "extension": [
            {
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
                "extension": [
                    {"url": "ombCategory", "valueCoding": {
                        "system": "urn:oid:2.16.840.1.113883.6.238",
                        "code": p.race.code(),
                        "display": p.race.display()
                    }},
                    {"url": "text", "valueString": p.race.display()}
                ]
            },
            {
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
                "extension": [
                    {"url": "ombCategory", "valueCoding": {
                        "system": "urn:oid:2.16.840.1.113883.6.238",
                        "code": p.ethnicity.code(),
                        "display": p.ethnicity.display()
                    }},
                    {"url": "text", "valueString": p.ethnicity.display()}
                ]
            },
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
                "valueString": id.mothers_maiden_name
            },
            {
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
                "valueCode": p.sex.code()
            },
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                "valueAddress": {"city": bp_city, "state": bp_state, "country": bp_country}
            }
        ],
        "identifier": [
            {
                "type": id_type("MR", "Medical Record Number"),
                "system": "urn:airlock-synth:mrn",
                "value": id.mrn
            },
            {
                "type": id_type("SS", "Social Security Number"),
                "system": "http://hl7.org/fhir/sid/us-ssn",
                "value": id.ssn
            },
            {
                "type": id_type("DL", "Driver's License"),
                "system": "urn:oid:2.16.840.1.113883.4.3.25",
                "value": id.drivers_license
            },
            {
                "type": id_type("PPN", "Passport Number"),
                "system": "http://standardhealthrecord.org/fhir/StructureDefinition/passportNumber",
                "value": id.passport
            },
            {
                "type": id_type("AN", "Account number"),
                "system": "urn:airlock-synth:account",
                "value": id.account_number
            },
            {
                "type": id_type("MB", "Member Number"),
                "system": "urn:airlock-synth:health-plan",
                "value": id.health_plan_id
            }
        ],
        "name": names,
        "telecom": [
            {"system": "phone", "value": id.phone, "use": "home"},
            {"system": "email", "value": id.email, "use": "home"}
        ],
        "gender": p.sex.fhir_code(),
        "birthDate": fhir_date(id.birth_date),
        "address": [{
            "extension": [{
                "url": "http://hl7.org/fhir/StructureDefinition/geolocation",
                "extension": [
                    {"url": "latitude", "valueDecimal": id.latitude},
                    {"url": "longitude", "valueDecimal": id.longitude}
                ]
            }],
            "line": [id.street],
            "city": id.city,
            "state": id.state,
            "postalCode": id.zip,
            "country": "US"
        }],
        "maritalStatus": {
            "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                "code": p.marital_status,
                "display": p.marital_status
            }],
            "text": p.marital_status
        },
        "contact": [{
            "relationship": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0131",
                "code": "N",
                "display": "Next-of-Kin"
            }], "text": id.relative.relationship}],
            "name": {"family": id.relative.family, "given": [id.relative.given]},
            "telecom": [{"system": "phone", "value": id.relative.phone}]
        }],
        "communication": [{"language": {"coding": [{
            "system": "urn:ietf:bcp:47",
            "code": p.language
        }]}}]
    })
}

fn organization(p: &SynthPatient) -> Value {
    let f = &p.facility;
    json!({
        "resourceType": "Organization",
        "id": f.id,
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": f.npi}],
        "active": true,
        "type": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/organization-type",
            "code": "prov",
            "display": "Healthcare Provider"
        }], "text": "Healthcare Provider"}],
        "name": f.name,
        "alias": [f.short_name],
        "telecom": [{"system": "phone", "value": f.phone}],
        "address": [{"city": f.city, "state": f.state, "postalCode": f.zip, "country": "US"}]
    })
}

fn practitioner(p: &SynthPatient) -> Value {
    let c = &p.clinician;
    json!({
        "resourceType": "Practitioner",
        "id": c.id,
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": c.npi}],
        "active": true,
        "name": [{"family": c.family, "given": [c.given], "prefix": ["Dr."]}]
    })
}

fn condition(p: &SynthPatient, c: &Condition, pref: &str, eref: Option<&str>) -> Value {
    let category = if c.chronic {
        ("problem-list-item", "Problem List Item")
    } else {
        ("encounter-diagnosis", "Encounter Diagnosis")
    };
    let mut v = json!({
        "resourceType": "Condition",
        "id": c.id,
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": "active"
        }]},
        "verificationStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            "code": "confirmed"
        }]},
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
            "code": category.0,
            "display": category.1
        }]}],
        "code": {
            "coding": [
                {"system": "http://snomed.info/sct", "code": c.snomed, "display": c.display},
                {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": c.icd10}
            ],
            "text": c.display
        },
        "subject": {"reference": pref},
        "onsetDateTime": format!("{}T00:00:00{}", fhir_date(c.onset), offset_suffix(p.utc_offset_hours)),
        "recordedDate": format!("{}T00:00:00{}", fhir_date(c.onset), offset_suffix(p.utc_offset_hours))
    });
    if let (Some(eref), Some(obj)) = (eref, v.as_object_mut()) {
        obj.insert("encounter".to_owned(), json!({"reference": eref}));
    }
    v
}

fn offset_suffix(h: i32) -> String {
    let sign = if h < 0 { '-' } else { '+' };
    format!("{sign}{:02}:00", h.unsigned_abs())
}

fn encounter(p: &SynthPatient, e: &Encounter, pref: &str, style: RefStyle) -> Value {
    let id = &p.identity;
    json!({
        "resourceType": "Encounter",
        "id": e.id,
        "identifier": [{"use": "usual", "system": "urn:airlock-synth:visit", "value": e.visit_number}],
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": e.class.code()},
        "type": [{"coding": [{
            "system": "http://snomed.info/sct",
            "code": match e.class {
                crate::model::EncounterClass::Inpatient => "183452005",
                crate::model::EncounterClass::Emergency => "50849002",
            },
            "display": match e.class {
                crate::model::EncounterClass::Inpatient => "Emergency hospital admission (procedure)",
                crate::model::EncounterClass::Emergency => "Emergency room admission (procedure)",
            }
        }]}],
        "subject": {"reference": pref, "display": format!("{} {} {}", id.prefix, id.given, id.family)},
        "participant": [{"individual": {
            "reference": reference(style, "Practitioner", &p.clinician.id),
            "display": format!("Dr. {} {}", p.clinician.given, p.clinician.family)
        }}],
        "period": {
            "start": fhir_datetime(e.admit, p.utc_offset_hours),
            "end": fhir_datetime(e.discharge, p.utc_offset_hours)
        },
        "reasonCode": [{"coding": [{
            "system": "http://snomed.info/sct",
            "code": e.primary.snomed,
            "display": e.primary.display
        }]}],
        "diagnosis": [{
            "condition": {"reference": reference(style, "Condition", &e.primary.id)},
            "use": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/diagnosis-role",
                "code": "DD",
                "display": "Discharge diagnosis"
            }]},
            "rank": 1
        }],
        "hospitalization": {"dischargeDisposition": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/discharge-disposition",
            "code": match e.disposition {
                crate::model::Disposition::Home => "home",
                crate::model::Disposition::HomeHealth => "hosp",
                crate::model::Disposition::SkilledNursing => "snf",
                crate::model::Disposition::AgainstMedicalAdvice => "aadvice",
            },
            "display": e.disposition.display()
        }]}},
        "serviceProvider": {
            "reference": reference(style, "Organization", &p.facility.id),
            "display": p.facility.name
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_offsets() {
        let dt = NaiveDate::from_ymd_opt(2020, 3, 14)
            .and_then(|d| d.and_hms_opt(8, 5, 0))
            .unwrap();
        assert_eq!(fhir_datetime(dt, -5), "2020-03-14T08:05:00-05:00");
        assert_eq!(fhir_datetime(dt, 0), "2020-03-14T08:05:00+00:00");
        assert_eq!(fhir_datetime(dt, -10), "2020-03-14T08:05:00-10:00");
    }
}
