//! The generated cohort: patients, their ground-truth identifiers and their clinical events.

use std::fmt;
use std::ops::RangeInclusive;

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use serde::Serialize;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenOptions {
    /// Number of patients.
    pub patients: usize,
    /// Seed: the same options give byte-identical output.
    pub seed: u64,
    /// Earliest admission date.
    pub start_date: NaiveDate,
    /// Latest admission date (admissions never start after it).
    pub end_date: NaiveDate,
    /// How many planned hospital encounters each patient gets (30-day readmissions may add up
    /// to two more; every patient gets at least one, and none starts after `end_date`). An
    /// empty range is read as its start.
    pub encounters_per_patient: RangeInclusive<usize>,
    /// How many free-text notes each encounter gets. An empty range is read as its start.
    pub notes_per_encounter: RangeInclusive<usize>,
}

impl GenOptions {
    /// Options for `patients` patients with the given seed and every other field at its default.
    pub fn new(patients: usize, seed: u64) -> Self {
        GenOptions {
            patients,
            seed,
            ..GenOptions::default()
        }
    }
}

impl Default for GenOptions {
    /// 100 patients, seed 42, admissions in 2016–2024, 1–4 encounters, 1–3 notes each.
    fn default() -> Self {
        GenOptions {
            patients: 100,
            seed: 42,
            start_date: NaiveDate::from_ymd_opt(2016, 1, 1).unwrap_or_default(),
            end_date: NaiveDate::from_ymd_opt(2024, 12, 31).unwrap_or_default(),
            encounters_per_patient: 1..=4,
            notes_per_encounter: 1..=3,
        }
    }
}

/// A generated cohort.
#[derive(Debug, Clone, PartialEq)]
pub struct Cohort {
    /// The seed it was generated from.
    pub seed: u64,
    /// The patients, in generation order.
    pub patients: Vec<SynthPatient>,
}

/// Administrative sex (FHIR `gender`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    /// Female.
    Female,
    /// Male.
    Male,
}

impl Sex {
    /// FHIR `AdministrativeGender` code.
    pub fn fhir_code(self) -> &'static str {
        match self {
            Sex::Female => "female",
            Sex::Male => "male",
        }
    }

    /// HL7 v2 table 0001 / CSV code: `F` or `M`.
    pub fn code(self) -> &'static str {
        match self {
            Sex::Female => "F",
            Sex::Male => "M",
        }
    }
}

/// OMB race category (US Core race extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Race {
    /// White (2106-3).
    White,
    /// Black or African American (2054-5).
    Black,
    /// Asian (2028-9).
    Asian,
    /// American Indian or Alaska Native (1002-5).
    AmericanIndian,
    /// Native Hawaiian or Other Pacific Islander (2076-8).
    PacificIslander,
    /// Other Race (2131-1).
    Other,
}

impl Race {
    /// CDC race and ethnicity code.
    pub fn code(self) -> &'static str {
        match self {
            Race::White => "2106-3",
            Race::Black => "2054-5",
            Race::Asian => "2028-9",
            Race::AmericanIndian => "1002-5",
            Race::PacificIslander => "2076-8",
            Race::Other => "2131-1",
        }
    }

    /// Display text.
    pub fn display(self) -> &'static str {
        match self {
            Race::White => "White",
            Race::Black => "Black or African American",
            Race::Asian => "Asian",
            Race::AmericanIndian => "American Indian or Alaska Native",
            Race::PacificIslander => "Native Hawaiian or Other Pacific Islander",
            Race::Other => "Other Race",
        }
    }
}

/// OMB ethnicity category (US Core ethnicity extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Ethnicity {
    /// Hispanic or Latino (2135-2).
    Hispanic,
    /// Not Hispanic or Latino (2186-5).
    NotHispanic,
}

impl Ethnicity {
    /// CDC race and ethnicity code.
    pub fn code(self) -> &'static str {
        match self {
            Ethnicity::Hispanic => "2135-2",
            Ethnicity::NotHispanic => "2186-5",
        }
    }

    /// Display text.
    pub fn display(self) -> &'static str {
        match self {
            Ethnicity::Hispanic => "Hispanic or Latino",
            Ethnicity::NotHispanic => "Not Hispanic or Latino",
        }
    }

    /// HL7 v2 table 0189 code (`H` / `N`).
    pub fn hl7_code(self) -> &'static str {
        match self {
            Ethnicity::Hispanic => "H",
            Ethnicity::NotHispanic => "N",
        }
    }
}

/// Kinds of ground-truth identifier a patient carries; each is a Safe Harbor identifier of the
/// patient or of a relative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IdentifierKind {
    /// Given (first) name.
    GivenName,
    /// Middle name.
    MiddleName,
    /// Family (last) name.
    FamilyName,
    /// Maiden family name (married patients who changed it).
    MaidenName,
    /// Mother's maiden name, as `Given Family`.
    MothersMaidenName,
    /// Birth date, `YYYY-MM-DD`.
    BirthDate,
    /// Medical record number (7 digits).
    Mrn,
    /// Legacy medical record number from a prior system (`S-123456`).
    LegacyMrn,
    /// Social Security number, `NNN-NN-NNNN`.
    Ssn,
    /// Driver's licence number.
    DriversLicense,
    /// Passport number.
    Passport,
    /// Hospital account number.
    AccountNumber,
    /// Health plan member id.
    HealthPlanId,
    /// Home phone, `NNN-NNN-NNNN` (notes also write `(NNN) NNN-NNNN` and `NNN.NNN.NNNN`).
    Phone,
    /// Email address.
    Email,
    /// Street address line.
    Street,
    /// City.
    City,
    /// 5-digit zip code.
    Zip,
    /// A relative's full name (`Given Family`).
    RelativeName,
    /// A relative's phone.
    RelativePhone,
}

impl IdentifierKind {
    /// Stable snake-case name (as in `truth.jsonl`).
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierKind::GivenName => "given_name",
            IdentifierKind::MiddleName => "middle_name",
            IdentifierKind::FamilyName => "family_name",
            IdentifierKind::MaidenName => "maiden_name",
            IdentifierKind::MothersMaidenName => "mothers_maiden_name",
            IdentifierKind::BirthDate => "birth_date",
            IdentifierKind::Mrn => "mrn",
            IdentifierKind::LegacyMrn => "legacy_mrn",
            IdentifierKind::Ssn => "ssn",
            IdentifierKind::DriversLicense => "drivers_license",
            IdentifierKind::Passport => "passport",
            IdentifierKind::AccountNumber => "account_number",
            IdentifierKind::HealthPlanId => "health_plan_id",
            IdentifierKind::Phone => "phone",
            IdentifierKind::Email => "email",
            IdentifierKind::Street => "street",
            IdentifierKind::City => "city",
            IdentifierKind::Zip => "zip",
            IdentifierKind::RelativeName => "relative_name",
            IdentifierKind::RelativePhone => "relative_phone",
        }
    }
}

/// A relative (next of kin).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Relative {
    /// Given name.
    pub given: String,
    /// Family name.
    pub family: String,
    /// Relationship, lower case (`wife`, `son`, `daughter`...).
    pub relationship: &'static str,
    /// HL7 table 0063 code (`SPO`, `CHD`, `PAR`, `SIB`).
    pub relationship_code: &'static str,
    /// Phone, `NNN-NNN-NNNN`.
    pub phone: String,
}

/// A patient's identity: every direct identifier the generator made up. This is the ground
/// truth leak checks compare de-identified output against.
///
/// `Debug` is redacted like real PHI: the values are synthetic, but code that handles them is
/// meant to behave as if they were not.
#[derive(Clone, PartialEq, Serialize)]
pub struct Identity {
    /// Name prefix (`Mr.`, `Ms.`, `Mrs.`).
    pub prefix: &'static str,
    /// Given name.
    pub given: String,
    /// Middle name, where the patient has one.
    pub middle: Option<String>,
    /// Family name.
    pub family: String,
    /// Maiden family name, for married women who took a spouse's name.
    pub maiden_family: Option<String>,
    /// Mother's maiden name, `Given Family`.
    pub mothers_maiden_name: String,
    /// Birth date.
    pub birth_date: NaiveDate,
    /// Medical record number, 7 digits, unique within a cohort.
    pub mrn: String,
    /// Legacy MRN from a prior system, `S-NNNNNN`.
    pub legacy_mrn: String,
    /// Social Security number, `NNN-NN-NNNN`.
    pub ssn: String,
    /// Driver's licence number.
    pub drivers_license: String,
    /// Passport number.
    pub passport: String,
    /// Hospital account number.
    pub account_number: String,
    /// Health plan member id.
    pub health_plan_id: String,
    /// Home phone, `NNN-NNN-NNNN`.
    pub phone: String,
    /// Email address.
    pub email: String,
    /// Street address line (may include an apartment).
    pub street: String,
    /// City.
    pub city: String,
    /// Two-letter state code.
    pub state: &'static str,
    /// 5-digit zip code.
    pub zip: String,
    /// Latitude of the home address.
    pub latitude: f64,
    /// Longitude of the home address.
    pub longitude: f64,
    /// Birth place: city, state or province, ISO country.
    pub birth_place: (&'static str, &'static str, &'static str),
    /// Next of kin.
    pub relative: Relative,
}

impl Identity {
    /// `Given Family`.
    pub fn full_name(&self) -> String {
        format!("{} {}", self.given, self.family)
    }

    /// Digits of the home phone only.
    pub fn phone_digits(&self) -> String {
        self.phone.chars().filter(char::is_ascii_digit).collect()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Identity(<redacted>)")
    }
}

impl fmt::Debug for Relative {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Relative({}, <redacted>)", self.relationship)
    }
}

/// The hospital a patient is admitted to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Facility {
    /// Resource id (UUID), stable across the cohort.
    pub id: String,
    /// Full name.
    pub name: &'static str,
    /// The short form clinicians write.
    pub short_name: &'static str,
    /// 10-digit NPI-shaped organisation identifier.
    pub npi: String,
    /// City.
    pub city: &'static str,
    /// State.
    pub state: &'static str,
    /// Zip.
    pub zip: &'static str,
    /// Main phone.
    pub phone: String,
}

/// The attending clinician.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Clinician {
    /// Resource id (UUID).
    pub id: String,
    /// Given name.
    pub given: String,
    /// Family name.
    pub family: String,
    /// 10-digit NPI-shaped identifier.
    pub npi: String,
}

/// A diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    /// Resource id (UUID).
    pub id: String,
    /// SNOMED CT code.
    pub snomed: &'static str,
    /// ICD-10-CM code.
    pub icd10: &'static str,
    /// SNOMED display.
    pub display: &'static str,
    /// Onset date.
    pub onset: NaiveDate,
    /// Whether it is a chronic problem-list entry (true) or an encounter diagnosis (false).
    pub chronic: bool,
}

/// Vital sign or laboratory result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObservationCategory {
    /// FHIR `vital-signs`.
    VitalSigns,
    /// FHIR `laboratory`.
    Laboratory,
}

impl ObservationCategory {
    /// FHIR observation-category code.
    pub fn code(self) -> &'static str {
        match self {
            ObservationCategory::VitalSigns => "vital-signs",
            ObservationCategory::Laboratory => "laboratory",
        }
    }
}

/// A measured value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    /// Resource id (UUID).
    pub id: String,
    /// LOINC code.
    pub loinc: &'static str,
    /// LOINC display.
    pub display: &'static str,
    /// Value, rounded to `decimals`.
    pub value: f64,
    /// Decimal places the value is written with.
    pub decimals: u8,
    /// UCUM unit.
    pub unit: &'static str,
    /// Reference range, low.
    pub ref_low: f64,
    /// Reference range, high.
    pub ref_high: f64,
    /// Category.
    pub category: ObservationCategory,
    /// When it was taken.
    pub effective: NaiveDateTime,
}

impl Observation {
    /// The value as written (fixed decimals).
    pub fn value_text(&self) -> String {
        format!("{:.*}", usize::from(self.decimals), self.value)
    }

    /// HL7 abnormal flag: `H`, `L` or `N`.
    pub fn flag(&self) -> &'static str {
        if self.value > self.ref_high {
            "H"
        } else if self.value < self.ref_low {
            "L"
        } else {
            "N"
        }
    }
}

/// A medication order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Medication {
    /// Resource id (UUID).
    pub id: String,
    /// RxNorm code.
    pub rxnorm: &'static str,
    /// RxNorm display.
    pub display: &'static str,
    /// When it was ordered.
    pub authored: NaiveDateTime,
}

/// What kind of note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// History and physical (LOINC 34117-2).
    HistoryAndPhysical,
    /// Progress note (LOINC 11506-3).
    Progress,
    /// Discharge summary (LOINC 18842-5).
    DischargeSummary,
    /// Nursing note (LOINC 34746-8).
    Nursing,
    /// Telephone encounter note (LOINC 34748-4).
    Telephone,
}

impl NoteKind {
    /// LOINC document type code.
    pub fn loinc(self) -> &'static str {
        match self {
            NoteKind::HistoryAndPhysical => "34117-2",
            NoteKind::Progress => "11506-3",
            NoteKind::DischargeSummary => "18842-5",
            NoteKind::Nursing => "34746-8",
            NoteKind::Telephone => "34748-4",
        }
    }

    /// LOINC display.
    pub fn display(self) -> &'static str {
        match self {
            NoteKind::HistoryAndPhysical => "History and physical note",
            NoteKind::Progress => "Progress note",
            NoteKind::DischargeSummary => "Discharge summary",
            NoteKind::Nursing => "Nurse Note",
            NoteKind::Telephone => "Telephone encounter Note",
        }
    }
}

/// Where a PHI value was written into a note: byte offsets into [`Note::text`] and a label
/// from the set `NAME`, `DATE`, `AGE` (90 and over only), `PHONE`, `EMAIL`, `SSN`, `MRN`,
/// `ACCOUNT`, `HEALTH_PLAN`, `LICENSE`, `ADDRESS`, `CITY`, `ZIP`, `FACILITY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PhiSpan {
    /// Start byte offset.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
    /// Label.
    pub label: &'static str,
}

/// A free-text clinical note with its gold PHI annotations.
#[derive(Clone, PartialEq, Serialize)]
pub struct Note {
    /// Resource id (UUID).
    pub id: String,
    /// Kind.
    pub kind: NoteKind,
    /// When it was written.
    pub date: NaiveDateTime,
    /// The text.
    pub text: String,
    /// Every PHI value the generator wrote into the text.
    pub phi: Vec<PhiSpan>,
}

impl fmt::Debug for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Note")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("len", &self.text.len())
            .field("phi_spans", &self.phi.len())
            .finish_non_exhaustive()
    }
}

/// Encounter class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EncounterClass {
    /// Inpatient admission (`IMP`).
    Inpatient,
    /// Emergency visit with observation stay (`EMER`).
    Emergency,
}

impl EncounterClass {
    /// v3 ActCode.
    pub fn code(self) -> &'static str {
        match self {
            EncounterClass::Inpatient => "IMP",
            EncounterClass::Emergency => "EMER",
        }
    }

    /// HL7 v2 patient class (PV1-2).
    pub fn hl7_class(self) -> &'static str {
        match self {
            EncounterClass::Inpatient => "I",
            EncounterClass::Emergency => "E",
        }
    }
}

/// Where the patient went at discharge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Home.
    Home,
    /// Home with home health services.
    HomeHealth,
    /// Skilled nursing facility.
    SkilledNursing,
    /// Left against medical advice.
    AgainstMedicalAdvice,
}

impl Disposition {
    /// HL7 table 0112 code (PV1-36).
    pub fn hl7_code(self) -> &'static str {
        match self {
            Disposition::Home => "01",
            Disposition::HomeHealth => "06",
            Disposition::SkilledNursing => "03",
            Disposition::AgainstMedicalAdvice => "07",
        }
    }

    /// Display text.
    pub fn display(self) -> &'static str {
        match self {
            Disposition::Home => "Discharged to home",
            Disposition::HomeHealth => "Discharged to home with home health",
            Disposition::SkilledNursing => "Discharged to skilled nursing facility",
            Disposition::AgainstMedicalAdvice => "Left against medical advice",
        }
    }
}

/// One hospital stay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Encounter {
    /// Resource id (UUID).
    pub id: String,
    /// Visit number (PV1-19), unique within the cohort.
    pub visit_number: String,
    /// Class.
    pub class: EncounterClass,
    /// Admission time (local time of the hospital).
    pub admit: NaiveDateTime,
    /// Discharge time.
    pub discharge: NaiveDateTime,
    /// Principal diagnosis.
    pub primary: Condition,
    /// Secondary diagnoses (chronic problems active during the stay, or a complication).
    pub secondary: Vec<Condition>,
    /// Vital signs and laboratory results.
    pub observations: Vec<Observation>,
    /// Medication orders.
    pub medications: Vec<Medication>,
    /// Notes.
    pub notes: Vec<Note>,
    /// Discharge disposition.
    pub disposition: Disposition,
    /// Admissions in the 365 days before this one.
    pub prior_admissions_12mo: u32,
    /// True when the next admission starts within 30 days of this discharge.
    pub readmitted_30d: bool,
}

impl Encounter {
    /// Length of stay in whole days (at least 1, the billing convention).
    pub fn length_of_stay(&self) -> i64 {
        (self.discharge.date() - self.admit.date())
            .num_days()
            .max(1)
    }

    /// Number of laboratory results.
    pub fn num_lab_procedures(&self) -> usize {
        self.observations
            .iter()
            .filter(|o| o.category == ObservationCategory::Laboratory)
            .count()
    }
}

/// One synthetic patient.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthPatient {
    /// Position in the cohort (0-based); file names use it, never an identifier.
    pub index: usize,
    /// Patient resource id (UUID).
    pub id: String,
    /// Ground-truth identifiers.
    pub identity: Identity,
    /// Sex.
    pub sex: Sex,
    /// Race.
    pub race: Race,
    /// Ethnicity.
    pub ethnicity: Ethnicity,
    /// Marital status, HL7 v3 code (`M`, `S`, `W`, `D`).
    pub marital_status: &'static str,
    /// Preferred language, BCP 47 (`en`, `es`...).
    pub language: &'static str,
    /// UTC offset of the home (and hospital) time zone, hours.
    pub utc_offset_hours: i32,
    /// The hospital.
    pub facility: Facility,
    /// The attending clinician.
    pub clinician: Clinician,
    /// Chronic problems (problem list).
    pub chronic_conditions: Vec<Condition>,
    /// Hospital stays in time order.
    pub encounters: Vec<Encounter>,
}

impl SynthPatient {
    /// Every direct identifier of this patient and its relative, for leak checks. Names and
    /// values are as generated; notes may write them in other forms too (upper case, phone with
    /// parentheses, dates as `3/14`), which the gold spans in [`Note::phi`] record.
    pub fn identifiers(&self) -> Vec<(IdentifierKind, String)> {
        let id = &self.identity;
        let mut v = vec![(IdentifierKind::GivenName, id.given.clone())];
        if let Some(m) = &id.middle {
            v.push((IdentifierKind::MiddleName, m.clone()));
        }
        v.push((IdentifierKind::FamilyName, id.family.clone()));
        if let Some(m) = &id.maiden_family {
            v.push((IdentifierKind::MaidenName, m.clone()));
        }
        v.extend([
            (
                IdentifierKind::MothersMaidenName,
                id.mothers_maiden_name.clone(),
            ),
            (
                IdentifierKind::BirthDate,
                id.birth_date.format("%Y-%m-%d").to_string(),
            ),
            (IdentifierKind::Mrn, id.mrn.clone()),
            (IdentifierKind::LegacyMrn, id.legacy_mrn.clone()),
            (IdentifierKind::Ssn, id.ssn.clone()),
            (IdentifierKind::DriversLicense, id.drivers_license.clone()),
            (IdentifierKind::Passport, id.passport.clone()),
            (IdentifierKind::AccountNumber, id.account_number.clone()),
            (IdentifierKind::HealthPlanId, id.health_plan_id.clone()),
            (IdentifierKind::Phone, id.phone.clone()),
            (IdentifierKind::Email, id.email.clone()),
            (IdentifierKind::Street, id.street.clone()),
            (IdentifierKind::City, id.city.clone()),
            (IdentifierKind::Zip, id.zip.clone()),
            (
                IdentifierKind::RelativeName,
                format!("{} {}", id.relative.given, id.relative.family),
            ),
            (IdentifierKind::RelativePhone, id.relative.phone.clone()),
        ]);
        v
    }

    /// Age in whole years on `date`.
    pub fn age_on(&self, date: NaiveDate) -> u32 {
        age_between(self.identity.birth_date, date)
    }
}

/// Whole years from `birth` to `on` (0 if `on` is earlier).
pub(crate) fn age_between(birth: NaiveDate, on: NaiveDate) -> u32 {
    let mut years = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    u32::try_from(years).unwrap_or(0)
}
