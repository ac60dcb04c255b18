//! The generator: identities, hospital stays and the readmission model.
//!
//! # Readmission model
//! Each discharge gets a 30-day readmission probability from a logistic model of the patient's
//! history: age, admissions in the previous 12 months, number of chronic problems, the
//! principal diagnosis, length of stay, number of medications and discharge disposition. A
//! Bernoulli draw decides whether the next admission is scheduled 2–29 days after discharge
//! (readmission) or 31–540 days after. The label `readmitted_30d` is then read off the timeline
//! (next admission within 30 days), so it is consistent with the dates; the Bernoulli draw and
//! censoring at the end date are the noise. The positive rate is around 15%.

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use rand::Rng;
use rand_chacha::ChaCha20Rng;

use crate::data::{
    self, CITIES, CONDITIONS, Chronicity, City, ConditionDef, FAMILY, FEMALE_GIVEN, HOSPITALS,
    LABS, MALE_GIVEN, MEDICATIONS, ObsCategory, ObservationDef, STREET_SUFFIX, STREETS, VITALS,
};
use crate::model::{
    Clinician, Cohort, Condition, Disposition, Encounter, EncounterClass, Ethnicity, Facility,
    GenOptions, Identity, Medication, Observation, ObservationCategory, Race, Relative, Sex,
    SynthPatient, age_between,
};
use crate::notes;
use crate::rng::{
    FACILITY_STREAM_BASE, chance, digits, normal, pick, pick_str, stream_rng, uuid_v4, weighted,
};

const FALLBACK_CITY: City = City {
    name: "Boston",
    state: "MA",
    zip: "02118",
    area_code: "617",
    lat: 42.3389,
    lon: -71.0707,
    tz: -5,
    weight: 1,
};

/// Generates a cohort. Pure and deterministic: the same options give the same cohort.
///
/// Out-of-order options are read leniently rather than rejected: a start date after the end date
/// is swapped, and an empty range counts as its start.
pub fn generate(opts: &GenOptions) -> Cohort {
    let (start, end) = if opts.start_date <= opts.end_date {
        (opts.start_date, opts.end_date)
    } else {
        (opts.end_date, opts.start_date)
    };
    // A cohort-wide offset makes MRNs differ between seeds while staying unique within one.
    let mrn_offset = stream_rng(opts.seed, 0).gen_range(0..MRN_SPACE);
    let patients = (0..opts.patients)
        .map(|i| {
            let mut rng = stream_rng(opts.seed, i as u64 + 1);
            gen_patient(&mut rng, opts, i, start, end, mrn_offset)
        })
        .collect();
    Cohort {
        seed: opts.seed,
        patients,
    }
}

const MRN_SPACE: u64 = 9_000_000;
/// Coprime with `MRN_SPACE`, so `index * MRN_STEP + offset (mod MRN_SPACE)` is a bijection.
const MRN_STEP: u64 = 7_919_243;

fn range_lo_hi(r: &std::ops::RangeInclusive<usize>) -> (usize, usize) {
    let lo = *r.start();
    (lo, (*r.end()).max(lo))
}

fn gen_patient(
    rng: &mut ChaCha20Rng,
    opts: &GenOptions,
    index: usize,
    start: NaiveDate,
    end: NaiveDate,
    mrn_offset: u64,
) -> SynthPatient {
    let id = uuid_v4(rng);
    let sex = if chance(rng, 0.52) {
        Sex::Female
    } else {
        Sex::Male
    };
    let city = weighted(rng, CITIES, |c| c.weight).unwrap_or(FALLBACK_CITY);
    let race = weighted(
        rng,
        &[
            (Race::White, 60),
            (Race::Black, 18),
            (Race::Asian, 8),
            (Race::AmericanIndian, 3),
            (Race::PacificIslander, 1),
            (Race::Other, 10),
        ],
        |r| r.1,
    )
    .map_or(Race::White, |r| r.0);
    let ethnicity = if chance(rng, 0.18) {
        Ethnicity::Hispanic
    } else {
        Ethnicity::NotHispanic
    };

    // First admission, then the age at that admission, then the birth date. Ages are skewed old
    // (hospital population) and about 6% are 90 or over, so age capping gets exercised.
    let span_days = (end - start).num_days().max(1);
    let first_admit = start + Duration::days(rng.gen_range(0..=span_days * 3 / 5));
    let age_band = weighted(
        rng,
        &[
            (0u32, 17u32, 5u32),
            (18, 44, 20),
            (45, 64, 30),
            (65, 89, 39),
            (90, 104, 6),
        ],
        |b| b.2,
    )
    .unwrap_or((45, 64, 1));
    let age_years = rng.gen_range(age_band.0..=age_band.1);
    let birth_date = first_admit
        - Duration::days(i64::from(age_years) * 365 + i64::from(age_years / 4))
        - Duration::days(rng.gen_range(1..365));

    let adult = age_years >= 18;
    let identity = gen_identity(rng, index, sex, adult, city, birth_date, mrn_offset);
    let marital_status = if age_years < 20 {
        "S"
    } else {
        pick_str(rng, &["M", "M", "M", "S", "S", "W", "D"])
    };
    let language = if ethnicity == Ethnicity::Hispanic && chance(rng, 0.4) {
        "es"
    } else {
        pick_str(
            rng,
            &["en", "en", "en", "en", "en", "en", "en", "en", "vi", "zh"],
        )
    };

    let hidx = rng.gen_range(0..HOSPITALS.len());
    let hosp = HOSPITALS.get(hidx).copied().unwrap_or(data::HospitalName {
        name: "General Hospital",
        short: "General",
    });
    let cidx = CITIES
        .iter()
        .position(|c| c.zip == city.zip)
        .unwrap_or_default();
    let mut frng = stream_rng(
        opts.seed,
        FACILITY_STREAM_BASE + (hidx as u64) * 1024 + cidx as u64,
    );
    let facility = Facility {
        id: uuid_v4(&mut frng),
        name: hosp.name,
        short_name: hosp.short,
        npi: format!("1{}", digits(&mut frng, 9)),
        city: city.name,
        state: city.state,
        zip: city.zip,
        phone: format!(
            "{}-{}-{}",
            city.area_code,
            exchange(&mut frng),
            digits(&mut frng, 4)
        ),
    };
    let clinician_pool = if chance(rng, 0.5) {
        FEMALE_GIVEN
    } else {
        MALE_GIVEN
    };
    let clinician = Clinician {
        id: uuid_v4(rng),
        given: pick_str(rng, clinician_pool).to_owned(),
        family: pick_str(rng, FAMILY).to_owned(),
        npi: format!("1{}", digits(rng, 9)),
    };

    // Chronic problems: more with age.
    let n_chronic = match age_years {
        0..=17 => rng.gen_range(0..=1),
        18..=44 => rng.gen_range(0..=2),
        45..=64 => rng.gen_range(1..=3),
        _ => rng.gen_range(1..=5),
    };
    let mut chronic_defs: Vec<ConditionDef> = Vec::new();
    let chronic_pool: Vec<ConditionDef> = CONDITIONS
        .iter()
        .filter(|c| c.chronicity == Chronicity::Chronic)
        // Children get the chronic problems children have.
        .filter(|c| age_years >= 18 || matches!(c.icd10, "J45.909" | "D64.9" | "E66.9"))
        .copied()
        .collect();
    for _ in 0..n_chronic {
        let c = pick(rng, &chronic_pool, FALLBACK_CONDITION);
        if !chronic_defs.iter().any(|d| d.snomed == c.snomed) {
            chronic_defs.push(c);
        }
    }
    let chronic_conditions: Vec<Condition> = chronic_defs
        .iter()
        .map(|d| {
            let onset_back = rng.gen_range(180..3650);
            let onset = (first_admit - Duration::days(onset_back)).max(birth_date);
            Condition {
                id: uuid_v4(rng),
                snomed: d.snomed,
                icd10: d.icd10,
                display: d.display,
                onset,
                chronic: true,
            }
        })
        .collect();

    let mut patient = SynthPatient {
        index,
        id,
        identity,
        sex,
        race,
        ethnicity,
        marital_status,
        language,
        utc_offset_hours: city.tz,
        facility,
        clinician,
        chronic_conditions,
        encounters: Vec::new(),
    };
    // Visit numbers come from the same bijection shifted by half the space, so they are unique
    // within the cohort and never equal to the MRN.
    let visit_base = (index as u64 * MRN_STEP + mrn_offset + MRN_SPACE / 2) % MRN_SPACE + 1_000_000;
    gen_encounters(
        rng,
        opts,
        &mut patient,
        &chronic_defs,
        first_admit,
        end,
        visit_base,
    );
    patient
}

const FALLBACK_CONDITION: ConditionDef = ConditionDef {
    snomed: "59621000",
    icd10: "I10",
    display: "Essential hypertension (disorder)",
    phrase: "hypertension",
    chronicity: Chronicity::Chronic,
    readmit_risk: 0.0,
    los: (1, 3),
    meds: &[],
    labs: &[],
    primary_weight: 1,
};

/// A phone exchange that is never 555 and never starts with 0 or 1.
fn exchange(rng: &mut ChaCha20Rng) -> u32 {
    loop {
        let e = rng.gen_range(200..1000);
        if e != 555 {
            return e;
        }
    }
}

fn phone(rng: &mut ChaCha20Rng, area: &str) -> String {
    format!("{area}-{}-{}", exchange(rng), digits(rng, 4))
}

fn ascii_fold(s: &str) -> String {
    s.chars()
        .filter_map(|c| {
            let m = match c {
                'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' => 'a',
                'é' | 'è' | 'ê' | 'ë' => 'e',
                'í' | 'ì' | 'î' | 'ï' => 'i',
                'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' => 'o',
                'ú' | 'ù' | 'û' | 'ü' => 'u',
                'ñ' => 'n',
                'ç' => 'c',
                c if c.is_ascii_alphanumeric() => c.to_ascii_lowercase(),
                _ => return None,
            };
            Some(m)
        })
        .collect()
}

fn gen_identity(
    rng: &mut ChaCha20Rng,
    index: usize,
    sex: Sex,
    adult: bool,
    city: City,
    birth_date: NaiveDate,
    mrn_offset: u64,
) -> Identity {
    let given_pool = match sex {
        Sex::Female => FEMALE_GIVEN,
        Sex::Male => MALE_GIVEN,
    };
    let given = pick_str(rng, given_pool).to_owned();
    let middle = chance(rng, 0.6).then(|| pick_str(rng, given_pool).to_owned());
    let family = pick_str(rng, FAMILY).to_owned();
    let married_woman = adult && sex == Sex::Female && chance(rng, 0.45);
    let maiden_family = if married_woman && chance(rng, 0.7) {
        Some(pick_str(rng, FAMILY).to_owned())
    } else {
        None
    };
    let prefix = match (sex, married_woman) {
        (Sex::Male, _) => "Mr.",
        (Sex::Female, true) => "Mrs.",
        (Sex::Female, false) => "Ms.",
    };
    let mothers_maiden_name = format!("{} {}", pick_str(rng, FEMALE_GIVEN), pick_str(rng, FAMILY));

    let mrn_n = (index as u64 * MRN_STEP + mrn_offset) % MRN_SPACE + 1_000_000;
    let mrn = mrn_n.to_string();
    let legacy_mrn = format!("S-{}", rng.gen_range(100_000..1_000_000));
    // Mostly valid-looking SSNs; about one in ten in the 9xx range, the way Synthea writes them.
    // Both must be treated as SSNs downstream.
    let area = if chance(rng, 0.1) {
        rng.gen_range(900..1000)
    } else {
        loop {
            let a = rng.gen_range(1..900);
            if a != 666 {
                break a;
            }
        }
    };
    let ssn = format!(
        "{area:03}-{:02}-{:04}",
        rng.gen_range(1..100),
        rng.gen_range(1..10_000)
    );
    let dl_letter = char::from(b'A' + rng.gen_range(0..26u8));
    let drivers_license = format!("{dl_letter}{}", digits(rng, 8));
    let passport = format!(
        "{}{}",
        char::from(b'A' + rng.gen_range(0..26u8)),
        digits(rng, 8)
    );
    let account_number = format!("ACCT-{}", digits(rng, 8));
    let health_plan_id = format!(
        "{}-{}",
        pick_str(rng, &["HMO", "PPO", "MCD", "MCR", "BCBS"]),
        digits(rng, 6)
    );
    let phone_s = phone(rng, city.area_code);
    let email = format!(
        "{}{}{}{}@{}",
        ascii_fold(&given),
        pick_str(rng, &[".", "_", ""]),
        ascii_fold(&family),
        rng.gen_range(1..100),
        pick_str(rng, data::EMAIL_DOMAINS)
    );
    let mut street = format!(
        "{} {} {}",
        rng.gen_range(1..9999),
        pick_str(rng, STREETS),
        pick_str(rng, STREET_SUFFIX)
    );
    if chance(rng, 0.2) {
        street.push_str(&format!(
            " Apt {}{}",
            rng.gen_range(1..40),
            pick_str(rng, &["", "A", "B", "C"])
        ));
    }
    let rel_choices: &[(&str, &str, u32)] = if adult {
        &[
            (if sex == Sex::Male { "wife" } else { "husband" }, "SPO", 4),
            ("daughter", "CHD", 3),
            ("son", "CHD", 2),
            ("sister", "SIB", 1),
            ("brother", "SIB", 1),
            ("mother", "PAR", 1),
        ]
    } else {
        &[
            ("mother", "PAR", 3),
            ("father", "PAR", 2),
            ("grandmother", "PAR", 1),
        ]
    };
    let rel = weighted(rng, rel_choices, |r| r.2).unwrap_or(("mother", "PAR", 1));
    let rel_given_pool = match rel.0 {
        "wife" | "daughter" | "sister" | "mother" | "grandmother" => FEMALE_GIVEN,
        _ => MALE_GIVEN,
    };
    let relative = Relative {
        given: pick_str(rng, rel_given_pool).to_owned(),
        family: if chance(rng, 0.75) {
            family.clone()
        } else {
            pick_str(rng, FAMILY).to_owned()
        },
        relationship: rel.0,
        relationship_code: rel.1,
        phone: phone(rng, city.area_code),
    };
    Identity {
        prefix,
        given,
        middle,
        family,
        maiden_family,
        mothers_maiden_name,
        birth_date,
        mrn,
        legacy_mrn,
        ssn,
        drivers_license,
        passport,
        account_number,
        health_plan_id,
        phone: phone_s,
        email,
        street,
        city: city.name.to_owned(),
        state: city.state,
        zip: city.zip.to_owned(),
        latitude: city.lat + normal(rng, 0.0, 0.02),
        longitude: city.lon + normal(rng, 0.0, 0.02),
        birth_place: pick(rng, data::BIRTH_PLACES, ("Boston", "Massachusetts", "US")),
        relative,
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn gen_encounters(
    rng: &mut ChaCha20Rng,
    opts: &GenOptions,
    patient: &mut SynthPatient,
    chronic: &[ConditionDef],
    first_admit: NaiveDate,
    end: NaiveDate,
    visit_base: u64,
) {
    let (lo, hi) = range_lo_hi(&opts.encounters_per_patient);
    let planned = rng.gen_range(lo..=hi);
    let cap = planned + 2;
    let (nlo, nhi) = range_lo_hi(&opts.notes_per_encounter);
    let acute_primary: Vec<ConditionDef> = CONDITIONS
        .iter()
        .filter(|c| c.primary_weight > 0)
        .copied()
        .collect();
    let chronic_primary: Vec<ConditionDef> = chronic
        .iter()
        .filter(|c| c.primary_weight > 0)
        .copied()
        .collect();

    let mut admit_date = first_admit;
    let mut admits: Vec<NaiveDate> = Vec::new();
    let mut n = 0usize;
    while n < cap && admit_date <= end {
        let enc_index = n;
        n += 1;
        let age = age_between(patient.identity.birth_date, admit_date);
        let primary_def = if !chronic_primary.is_empty() && chance(rng, 0.35) {
            pick(rng, &chronic_primary, FALLBACK_CONDITION)
        } else {
            weighted(rng, &acute_primary, |c| c.primary_weight).unwrap_or(FALLBACK_CONDITION)
        };
        let emergency = primary_def.los.1 <= 3 && chance(rng, 0.35);
        let class = if emergency {
            EncounterClass::Emergency
        } else {
            EncounterClass::Inpatient
        };
        let los_days: i64 = if emergency {
            rng.gen_range(0..=1)
        } else {
            let extra = if age >= 75 { rng.gen_range(0..=2) } else { 0 };
            i64::from(rng.gen_range(primary_def.los.0..=primary_def.los.1) + extra)
        };
        let admit = admit_date.and_time(
            NaiveTime::from_hms_opt(rng.gen_range(0..24), rng.gen_range(0..60), 0)
                .unwrap_or_default(),
        );
        let discharge_date = admit_date + Duration::days(los_days);
        let discharge = discharge_date
            .and_time(
                NaiveTime::from_hms_opt(rng.gen_range(10..18), rng.gen_range(0..60), 0)
                    .unwrap_or_default(),
            )
            .max(admit + Duration::hours(4));

        let primary = Condition {
            id: uuid_v4(rng),
            snomed: primary_def.snomed,
            icd10: primary_def.icd10,
            display: primary_def.display,
            onset: admit_date,
            chronic: false,
        };
        let mut secondary: Vec<Condition> = Vec::new();
        for d in chronic
            .iter()
            .filter(|d| d.snomed != primary_def.snomed)
            .take(3)
        {
            secondary.push(Condition {
                id: uuid_v4(rng),
                snomed: d.snomed,
                icd10: d.icd10,
                display: d.display,
                onset: admit_date,
                chronic: false,
            });
        }

        // Observations: vitals at admission, labs drawn a few hours later.
        let mut observations = Vec::new();
        let sick = primary_def.readmit_risk.max(0.0);
        for v in VITALS {
            observations.push(draw_obs(rng, v, admit, sick));
        }
        let mut lab_idx: Vec<usize> = primary_def.labs.to_vec();
        for d in chronic {
            if let Some(&l) = d.labs.first() {
                lab_idx.push(l);
            }
        }
        if chance(rng, 0.5) {
            lab_idx.push(rng.gen_range(0..LABS.len()));
        }
        lab_idx.sort_unstable();
        lab_idx.dedup();
        let lab_time = admit + Duration::minutes(rng.gen_range(30..240));
        for li in lab_idx {
            if let Some(def) = LABS.get(li) {
                observations.push(draw_obs(rng, def, lab_time, sick));
            }
        }

        // Medications: the diagnosis's and the first of each chronic problem's.
        let mut med_idx: Vec<usize> = primary_def.meds.to_vec();
        for d in chronic {
            if let Some(&m) = d.meds.first() {
                med_idx.push(m);
            }
        }
        if chance(rng, 0.3) {
            med_idx.push(19); // acetaminophen PRN
        }
        let mut seen = Vec::new();
        med_idx.retain(|m| {
            let fresh = !seen.contains(m);
            seen.push(*m);
            fresh
        });
        med_idx.truncate(8);
        let medications: Vec<Medication> = med_idx
            .iter()
            .filter_map(|&mi| MEDICATIONS.get(mi))
            .map(|md| Medication {
                id: uuid_v4(rng),
                rxnorm: md.rxnorm,
                display: md.display,
                authored: admit + Duration::minutes(rng.gen_range(20..600)),
            })
            .collect();

        let disposition = if chance(rng, 0.03) {
            Disposition::AgainstMedicalAdvice
        } else if age >= 80 {
            weighted(
                rng,
                &[
                    (Disposition::Home, 4u32),
                    (Disposition::HomeHealth, 3),
                    (Disposition::SkilledNursing, 3),
                ],
                |d| d.1,
            )
            .map_or(Disposition::Home, |d| d.0)
        } else if age >= 65 {
            weighted(
                rng,
                &[
                    (Disposition::Home, 6u32),
                    (Disposition::HomeHealth, 3),
                    (Disposition::SkilledNursing, 1),
                ],
                |d| d.1,
            )
            .map_or(Disposition::Home, |d| d.0)
        } else if chance(rng, 0.1) {
            Disposition::HomeHealth
        } else {
            Disposition::Home
        };

        let prior_admissions_12mo = u32::try_from(
            admits
                .iter()
                .filter(|d| (admit_date - **d).num_days() <= 365)
                .count(),
        )
        .unwrap_or(u32::MAX);
        admits.push(admit_date);

        // Logistic readmission model (see the module doc).
        let logit = -3.8
            + 0.03 * (f64::from(age) - 60.0)
            + 0.55 * f64::from(prior_admissions_12mo)
            + 0.3 * chronic.len() as f64
            + primary_def.readmit_risk
            + 0.08 * (los_days as f64 - 4.0)
            + 0.1 * (medications.len() as f64 - 3.0)
            + match disposition {
                Disposition::SkilledNursing => 0.4,
                Disposition::AgainstMedicalAdvice => 0.9,
                Disposition::HomeHealth => 0.2,
                Disposition::Home => 0.0,
            };
        let readmit = chance(rng, sigmoid(logit));

        let (nlo_i, nhi_i) = (nlo, nhi);
        let n_notes = rng.gen_range(nlo_i..=nhi_i);
        let mut encounter = Encounter {
            id: uuid_v4(rng),
            visit_number: format!("V{visit_base}{:02}", enc_index + 1),
            class,
            admit,
            discharge,
            primary,
            secondary,
            observations,
            medications,
            notes: Vec::new(),
            disposition,
            prior_admissions_12mo,
            readmitted_30d: false,
        };
        encounter.notes = notes::gen_notes(rng, patient, &encounter, primary_def, chronic, n_notes);
        patient.encounters.push(encounter);

        if !readmit && n >= planned {
            break;
        }
        let gap = if readmit {
            rng.gen_range(2..=29)
        } else {
            rng.gen_range(31..=540)
        };
        admit_date = discharge_date + Duration::days(gap);
    }

    // The label comes from the timeline.
    let next_admits: Vec<NaiveDateTime> =
        patient.encounters.iter().skip(1).map(|e| e.admit).collect();
    for (e, next) in patient.encounters.iter_mut().zip(next_admits) {
        e.readmitted_30d = (next.date() - e.discharge.date()).num_days() <= 30;
    }
}

fn draw_obs(
    rng: &mut ChaCha20Rng,
    def: &ObservationDef,
    when: NaiveDateTime,
    sickness: f64,
) -> Observation {
    let mean = def.mean + def.sd * 0.5 * sickness;
    let raw = normal(rng, mean, def.sd).max(0.0);
    let value = match def.loinc {
        "2708-6" => raw.min(100.0),
        _ => raw,
    };
    let scale = 10f64.powi(i32::from(def.decimals));
    Observation {
        id: uuid_v4(rng),
        loinc: def.loinc,
        display: def.display,
        value: (value * scale).round() / scale,
        decimals: def.decimals,
        unit: def.unit,
        ref_low: def.low,
        ref_high: def.high,
        category: match def.category {
            ObsCategory::VitalSigns => ObservationCategory::VitalSigns,
            ObsCategory::Laboratory => ObservationCategory::Laboratory,
        },
        effective: when,
    }
}
