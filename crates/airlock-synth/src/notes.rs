//! Free-text notes from templates, with gold PHI spans.
//!
//! Notes are built piece by piece: plain text through [`NoteBuf::t`], identifiers through
//! [`NoteBuf::phi`], which records the byte span and label. The templates deliberately use the
//! forms that make text de-identification hard: `Mr. Last` and bare first names, names in upper
//! case, partial dates (`3/14`, `March 14th`, `the 14th`), phones as `(617) 432-1234`, prefixed
//! ids (`MRN: S-987654`, `HMO-234567`), hospitals by short name, relatives by first name. They
//! also use clinical abbreviations that are not PHI (O2, x2, q4h, CT, BP, Foley).

use chrono::{Datelike, Duration, Month, NaiveDate, NaiveDateTime};
use rand::Rng;
use rand_chacha::ChaCha20Rng;

use crate::data::{ConditionDef, MEDICATIONS};
use crate::model::{Encounter, Note, NoteKind, PhiSpan, Sex, SynthPatient, age_between};
use crate::rng::{chance, pick_str, uuid_v4};

/// A note being written.
struct NoteBuf {
    text: String,
    phi: Vec<PhiSpan>,
}

impl NoteBuf {
    fn new() -> Self {
        NoteBuf {
            text: String::with_capacity(1200),
            phi: Vec::new(),
        }
    }

    /// Plain text.
    fn t(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// A PHI value with its label.
    fn phi(&mut self, label: &'static str, s: &str) -> &mut Self {
        let start = self.text.len();
        self.text.push_str(s);
        if !s.is_empty() {
            self.phi.push(PhiSpan {
                start,
                end: self.text.len(),
                label,
            });
        }
        self
    }
}

fn month_name(d: NaiveDate) -> &'static str {
    // chrono already carries the English month names; no table of our own.
    u8::try_from(d.month())
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .map_or("January", |m| m.name())
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// A date in one of the forms clinicians write, including partial ones.
fn date_form(rng: &mut ChaCha20Rng, d: NaiveDate) -> String {
    match rng.gen_range(0..8) {
        0 => format!("{}/{}", d.month(), d.day()),
        1 => format!("{} {}", month_name(d), ordinal(d.day())),
        2 => format!(
            "{}, {}",
            format_args!("{} {}", month_name(d), d.day()),
            d.year()
        ),
        3 => d.format("%Y-%m-%d").to_string(),
        4 => d.format("%d-%b-%Y").to_string(),
        5 => format!("{}/{}/{}", d.month(), d.day(), d.year() % 100),
        _ => d.format("%m/%d/%Y").to_string(),
    }
}

/// A phone number in one of three layouts.
fn phone_form(rng: &mut ChaCha20Rng, phone: &str) -> String {
    let parts: Vec<&str> = phone.split('-').collect();
    match (parts.as_slice(), rng.gen_range(0..3)) {
        ([a, b, c], 0) => format!("({a}) {b}-{c}"),
        ([a, b, c], 1) => format!("{a}.{b}.{c}"),
        _ => phone.to_owned(),
    }
}

struct Ctx<'a> {
    p: &'a SynthPatient,
    e: &'a Encounter,
    primary: ConditionDef,
    chronic: &'a [ConditionDef],
    age: u32,
}

impl Ctx<'_> {
    fn he(&self) -> &'static str {
        match self.p.sex {
            Sex::Female => "she",
            Sex::Male => "he",
        }
    }
    fn his(&self) -> &'static str {
        match self.p.sex {
            Sex::Female => "her",
            Sex::Male => "his",
        }
    }
    fn man(&self) -> &'static str {
        match (self.p.sex, self.age) {
            (_, 0..=17) => "child",
            (Sex::Female, _) => "woman",
            (Sex::Male, _) => "man",
        }
    }

    /// One of: `Mr. Last`, `First`, `First Last`, `LAST, FIRST`, `First M. Last`, `first`.
    fn name(&self, rng: &mut ChaCha20Rng, b: &mut NoteBuf) {
        let id = &self.p.identity;
        match rng.gen_range(0..9) {
            0..=2 => {
                b.t(id.prefix).t(" ").phi("NAME", &id.family);
            }
            3 | 4 => {
                b.phi("NAME", &id.given);
            }
            5 => {
                b.phi("NAME", &id.given).t(" ").phi("NAME", &id.family);
            }
            6 => {
                b.phi("NAME", &id.family.to_uppercase())
                    .t(", ")
                    .phi("NAME", &id.given.to_uppercase());
            }
            7 => match &id.middle {
                Some(m) => {
                    let initial: String = m.chars().take(1).collect();
                    b.phi("NAME", &id.given)
                        .t(" ")
                        .phi("NAME", &initial)
                        .t(". ")
                        .phi("NAME", &id.family);
                }
                None => {
                    b.t("Pt ").phi("NAME", &id.family);
                }
            },
            _ => {
                b.phi("NAME", &id.given.to_lowercase());
            }
        }
    }

    fn age_text(&self, rng: &mut ChaCha20Rng, b: &mut NoteBuf) {
        let a = self.age.to_string();
        let label_it = self.age >= 90;
        let push = |b: &mut NoteBuf, s: &str| {
            if label_it {
                b.phi("AGE", s);
            } else {
                b.t(s);
            }
        };
        match rng.gen_range(0..3) {
            0 => {
                push(b, &a);
                b.t(" year-old");
            }
            1 => {
                push(b, &a);
                b.t(" y/o");
            }
            _ => {
                push(b, &a);
                b.t("yo");
            }
        }
    }

    fn date(&self, rng: &mut ChaCha20Rng, b: &mut NoteBuf, d: NaiveDate) {
        let s = date_form(rng, d);
        b.phi("DATE", &s);
    }

    fn hospital(&self, rng: &mut ChaCha20Rng, b: &mut NoteBuf) {
        let f = &self.p.facility;
        let s = if chance(rng, 0.5) {
            f.name
        } else {
            f.short_name
        };
        b.phi("FACILITY", s);
    }

    fn mrn(&self, rng: &mut ChaCha20Rng, b: &mut NoteBuf) {
        let id = &self.p.identity;
        match rng.gen_range(0..5) {
            0 => b.t("MRN: ").phi("MRN", &id.legacy_mrn),
            1 => b.t("MRN ").phi("MRN", &id.mrn),
            2 => b.t("medical record #").phi("MRN", &id.mrn),
            _ => b.t("MRN: ").phi("MRN", &id.mrn),
        };
    }

    fn relative(&self, rng: &mut ChaCha20Rng, b: &mut NoteBuf) {
        let r = &self.p.identity.relative;
        if chance(rng, 0.5) {
            b.t(self.his())
                .t(" ")
                .t(r.relationship)
                .t(" ")
                .phi("NAME", &r.given);
        } else {
            b.t(self.his())
                .t(" ")
                .t(r.relationship)
                .t(", ")
                .phi("NAME", &r.given)
                .t(" ")
                .phi("NAME", &r.family);
        }
    }

    fn vitals(&self, b: &mut NoteBuf) {
        let v = |code: &str| {
            self.e
                .observations
                .iter()
                .find(|o| o.loinc == code)
                .map(|o| o.value_text())
                .unwrap_or_else(|| "--".to_owned())
        };
        b.t(&format!(
            "BP {}/{}, HR {}, RR {}, T {} C, O2 sat {}% on {}",
            v("8480-6"),
            v("8462-4"),
            v("8867-4"),
            v("9279-1"),
            v("8310-5"),
            v("2708-6"),
            if self.primary.readmit_risk > 0.5 {
                "2L NC"
            } else {
                "RA"
            }
        ));
    }

    fn labs(&self, b: &mut NoteBuf) {
        let labs: Vec<String> = self
            .e
            .observations
            .iter()
            .filter(|o| o.category == crate::model::ObservationCategory::Laboratory)
            .map(|o| {
                let short = o.display.split(" [").next().unwrap_or(o.display);
                format!("{short} {} {}", o.value_text(), o.unit)
            })
            .collect();
        if labs.is_empty() {
            b.t("No labs drawn.");
        } else {
            b.t(&labs.join("; ")).t(".");
        }
    }

    fn history(&self) -> String {
        if self.chronic.is_empty() {
            "no significant past medical history".to_owned()
        } else {
            let v: Vec<&str> = self.chronic.iter().map(|c| c.phrase).collect();
            format!("a history of {}", v.join(", "))
        }
    }

    fn meds_list(&self) -> Vec<&'static str> {
        self.e
            .medications
            .iter()
            .filter_map(|m| MEDICATIONS.iter().find(|d| d.rxnorm == m.rxnorm))
            .map(|d| d.short)
            .collect()
    }
}

const COMPLAINTS: &[(&str, &str)] = &[
    ("pneumonia", "cough, fever and shortness of breath"),
    (
        "heart failure",
        "worsening dyspnea on exertion and leg swelling",
    ),
    ("COPD", "increased sputum and wheezing"),
    (
        "infarction",
        "substernal chest pressure radiating to the left arm",
    ),
    ("sepsis", "fever, rigors and confusion"),
    ("urinary", "dysuria, frequency and flank pain"),
    ("cellulitis", "a red, warm, swollen left lower leg"),
    ("stroke", "acute right-sided weakness and slurred speech"),
    ("hip", "a fall at home with inability to bear weight"),
    ("kidney", "decreased urine output and fatigue"),
    ("appendicitis", "right lower quadrant abdominal pain"),
    ("gastroenteritis", "nausea, vomiting and diarrhea x2 days"),
    ("chest pain", "intermittent chest pain"),
    ("syncope", "a witnessed syncopal episode"),
    ("ketoacidosis", "polyuria, polydipsia and abdominal pain"),
    ("dehydration", "poor oral intake and dizziness"),
    ("fibrillation", "palpitations and lightheadedness"),
];

fn complaint(primary: &ConditionDef) -> &'static str {
    COMPLAINTS
        .iter()
        .find(|(k, _)| primary.phrase.contains(k))
        .map_or("generalized weakness", |(_, v)| v)
}

/// Writes `n` notes for an encounter: an H&P first, a discharge summary last when there are at
/// least two, progress, nursing or telephone notes in between.
pub(crate) fn gen_notes(
    rng: &mut ChaCha20Rng,
    p: &SynthPatient,
    e: &Encounter,
    primary: ConditionDef,
    chronic: &[ConditionDef],
    n: usize,
) -> Vec<Note> {
    let ctx = Ctx {
        p,
        e,
        primary,
        chronic,
        age: age_between(p.identity.birth_date, e.admit.date()),
    };
    (0..n)
        .map(|i| {
            let kind = if i == 0 {
                NoteKind::HistoryAndPhysical
            } else if i + 1 == n {
                NoteKind::DischargeSummary
            } else {
                match rng.gen_range(0..3) {
                    0 => NoteKind::Progress,
                    1 => NoteKind::Nursing,
                    _ => NoteKind::Telephone,
                }
            };
            let (date, buf) = match kind {
                NoteKind::HistoryAndPhysical => (e.admit, hp(rng, &ctx)),
                NoteKind::Progress => {
                    let d = mid_stay(rng, e);
                    (d, progress(rng, &ctx, d))
                }
                NoteKind::Nursing => {
                    let d = mid_stay(rng, e);
                    (d, nursing(rng, &ctx, d))
                }
                NoteKind::Telephone => {
                    let d = e.discharge + Duration::days(rng.gen_range(1..4));
                    (d, telephone(rng, &ctx, d))
                }
                NoteKind::DischargeSummary => (e.discharge, discharge(rng, &ctx)),
            };
            Note {
                id: uuid_v4(rng),
                kind,
                date,
                text: buf.text,
                phi: buf.phi,
            }
        })
        .collect()
}

fn mid_stay(rng: &mut ChaCha20Rng, e: &Encounter) -> NaiveDateTime {
    let mins = (e.discharge - e.admit).num_minutes().max(1);
    e.admit + Duration::minutes(rng.gen_range(0..mins))
}

fn hp(rng: &mut ChaCha20Rng, c: &Ctx<'_>) -> NoteBuf {
    let id = &c.p.identity;
    let mut b = NoteBuf::new();
    b.t("HISTORY AND PHYSICAL\n");
    c.hospital(rng, &mut b);
    b.t("\nPatient: ")
        .phi("NAME", &id.family.to_uppercase())
        .t(", ")
        .phi("NAME", &id.given.to_uppercase())
        .t("    ");
    c.mrn(rng, &mut b);
    b.t("    DOB: ")
        .phi("DATE", &id.birth_date.format("%m/%d/%Y").to_string())
        .t("\nDate of admission: ");
    c.date(rng, &mut b, c.e.admit.date());
    b.t("\n\nCHIEF COMPLAINT: ")
        .t(complaint(&c.primary))
        .t(".\n\nHPI: ");
    c.name(rng, &mut b);
    b.t(" is a ");
    c.age_text(rng, &mut b);
    b.t(" ")
        .t(c.man())
        .t(" with ")
        .t(&c.history())
        .t(" who presented to the ");
    c.hospital(rng, &mut b);
    b.t(" ED on ");
    c.date(rng, &mut b, c.e.admit.date());
    b.t(" with ").t(complaint(&c.primary)).t(". ");
    b.t(pick_str(
        rng,
        &[
            "Symptoms began 3 days ago and have progressively worsened. ",
            "Denies recent travel or sick contacts. ",
            "Was seen at urgent care last week and given a short course of antibiotics without improvement. ",
            "Reports poor adherence to home medications over the past month. ",
        ],
    ));
    let pronoun = c.he();
    let mut cap = pronoun.chars();
    let he_cap: String = cap
        .next()
        .map(|f| f.to_ascii_uppercase().to_string() + cap.as_str())
        .unwrap_or_default();
    b.t(&he_cap)
        .t(" lives in ")
        .phi("CITY", &id.city)
        .t(" with ");
    c.relative(rng, &mut b);
    b.t(".\n\nVITALS: ");
    c.vitals(&mut b);
    b.t("\nLABS: ");
    c.labs(&mut b);
    b.t("\nEXAM: ")
        .t(pick_str(
            rng,
            &[
                "Alert, oriented x3. Lungs with scattered crackles at the bases. Heart RRR, no murmurs. Abdomen soft, NT/ND. Neuro intact.",
                "Ill-appearing, diaphoretic. Tachycardic, regular. Decreased breath sounds on the right. 2+ pitting edema bilaterally.",
                "NAD. CV: RRR. Resp: CTAB. Abd: soft. Ext: no edema. Neuro: CN II-XII grossly intact.",
            ],
        ))
        .t("\n\nASSESSMENT AND PLAN: ");
    c.age_text(rng, &mut b);
    b.t(" ")
        .t(c.p.sex.code())
        .t(" admitted for ")
        .t(c.primary.phrase)
        .t(".\n");
    for m in c.meds_list() {
        b.t("- ").t(m).t("\n");
    }
    b.t("- ")
        .t(pick_str(
            rng,
            &[
                "CT chest if no improvement in 48h",
                "ABG in AM, wean O2 as tolerated",
                "Telemetry, trend troponin q6h",
                "Strict I/O, daily weights, Foley if retaining",
                "PT/OT consult",
            ],
        ))
        .t("\n\nContact: ")
        .phi("PHONE", &phone_form(rng, &id.phone))
        .t(". Emergency contact: ")
        .t(id.relative.relationship)
        .t(" ")
        .phi("NAME", &id.relative.given)
        .t(" ")
        .phi("NAME", &id.relative.family)
        .t(", ")
        .phi("PHONE", &phone_form(rng, &id.relative.phone))
        .t(".\n");
    if chance(rng, 0.25) {
        b.t("Insurance: ")
            .phi("HEALTH_PLAN", &id.health_plan_id)
            .t(". SSN on file: ")
            .phi("SSN", &id.ssn)
            .t(".\n");
    }
    b.t("Signed: Dr. ")
        .phi("NAME", &c.p.clinician.given)
        .t(" ")
        .phi("NAME", &c.p.clinician.family)
        .t(", ");
    c.date(rng, &mut b, c.e.admit.date());
    b.t("\n");
    b
}

fn progress(rng: &mut ChaCha20Rng, c: &Ctx<'_>, d: NaiveDateTime) -> NoteBuf {
    let mut b = NoteBuf::new();
    let day = (d.date() - c.e.admit.date()).num_days() + 1;
    b.t("Progress Note - Hospital day #")
        .t(&day.to_string())
        .t(" (");
    c.date(rng, &mut b, d.date());
    b.t(")\nS: ");
    c.name(rng, &mut b);
    b.t(pick_str(
        rng,
        &[
            " reports feeling somewhat better this morning. Slept well overnight.",
            " c/o persistent fatigue, tolerating PO. No acute events overnight.",
            " had an episode of nausea x1 overnight, resolved with ondansetron.",
        ],
    ));
    b.t(" ");
    if chance(rng, 0.6) {
        b.t("Visited by ");
        c.relative(rng, &mut b);
        b.t(" yesterday.");
    }
    b.t("\nO: ");
    c.vitals(&mut b);
    b.t("\n   ");
    c.labs(&mut b);
    b.t("\nA/P: ");
    c.age_text(rng, &mut b);
    b.t(" with ")
        .t(c.primary.phrase)
        .t(", ")
        .t(pick_str(rng, &["improving", "stable", "slowly improving"]))
        .t(". Continue current regimen; labs in AM. Dispo: anticipate discharge ");
    c.date(rng, &mut b, c.e.discharge.date());
    b.t(". ");
    c.mrn(rng, &mut b);
    b.t("\n");
    b
}

fn nursing(rng: &mut ChaCha20Rng, c: &Ctx<'_>, d: NaiveDateTime) -> NoteBuf {
    let mut b = NoteBuf::new();
    b.t("Nursing note ");
    c.date(rng, &mut b, d.date());
    b.t(" 0700-1900. Pt ");
    c.name(rng, &mut b);
    b.t(" resting in bed, A&Ox3. VS: ");
    c.vitals(&mut b);
    b.t(". ");
    b.t(pick_str(
        rng,
        &[
            "Foley in place draining clear yellow urine. ",
            "Ambulated x2 in hallway with walker, steady gait. ",
            "IV site R forearm c/d/i. Pain 3/10, acetaminophen given q6h PRN. ",
            "Fall precautions in place, bed alarm on. ",
        ],
    ));
    c.relative(rng, &mut b);
    b.t(" at bedside, updated on plan of care; can be reached at ")
        .phi("PHONE", &phone_form(rng, &c.p.identity.relative.phone))
        .t(". Room 4")
        .t(&rng.gen_range(10..60).to_string())
        .t(", ");
    c.hospital(rng, &mut b);
    b.t(". Call bell within reach.\n");
    b
}

fn telephone(rng: &mut ChaCha20Rng, c: &Ctx<'_>, d: NaiveDateTime) -> NoteBuf {
    let id = &c.p.identity;
    let mut b = NoteBuf::new();
    b.t("Telephone encounter ");
    c.date(rng, &mut b, d.date());
    b.t(". Called ");
    c.name(rng, &mut b);
    b.t(" at ")
        .phi("PHONE", &phone_form(rng, &id.phone))
        .t(" for post-discharge follow-up after ")
        .t(c.he())
        .t(" left ");
    c.hospital(rng, &mut b);
    b.t(" on ");
    c.date(rng, &mut b, c.e.discharge.date());
    b.t(". ").t(pick_str(
        rng,
        &[
            "Reports no fever, taking medications as prescribed. ",
            "Still short of breath on stairs; advised to weigh daily and call if up 3 lb. ",
            "No questions about medications. Pharmacy confirmed pickup. ",
        ],
    ));
    b.t("Follow-up visit confirmed; reminder sent to ")
        .phi("EMAIL", &id.email)
        .t(". Account ")
        .phi("ACCOUNT", &id.account_number)
        .t(". ");
    if chance(rng, 0.5) {
        b.t("Spoke also with ");
        c.relative(rng, &mut b);
        b.t(".");
    }
    b.t("\n");
    b
}

fn discharge(rng: &mut ChaCha20Rng, c: &Ctx<'_>) -> NoteBuf {
    let id = &c.p.identity;
    let e = c.e;
    let mut b = NoteBuf::new();
    b.t("DISCHARGE SUMMARY\nName: ")
        .phi("NAME", &id.given)
        .t(" ")
        .phi("NAME", &id.family)
        .t("    ");
    c.mrn(rng, &mut b);
    b.t("    Acct: ")
        .phi("ACCOUNT", &id.account_number)
        .t("\nAdmitted: ")
        .phi("DATE", &e.admit.format("%m/%d/%Y").to_string())
        .t("    Discharged: ")
        .phi("DATE", &e.discharge.format("%m/%d/%Y").to_string())
        .t("\nPrincipal diagnosis: ")
        .t(e.primary.display)
        .t(" (")
        .t(e.primary.icd10)
        .t(")\n\nHOSPITAL COURSE: ");
    c.name(rng, &mut b);
    b.t(", ");
    c.age_text(rng, &mut b);
    b.t(", was admitted to ");
    c.hospital(rng, &mut b);
    b.t(" on ");
    c.date(rng, &mut b, e.admit.date());
    b.t(" for ")
        .t(c.primary.phrase)
        .t(". ")
        .t(pick_str(
            rng,
            &[
                "Treated with IV therapy with steady improvement. ",
                "Course complicated by transient hypotension requiring fluid boluses x2. ",
                "Responded well to treatment and was transitioned to oral medications on day 2. ",
            ],
        ))
        .t(e.disposition.display())
        .t(" on ");
    c.date(rng, &mut b, e.discharge.date());
    b.t(".\n\nDISCHARGE MEDICATIONS:\n");
    for m in c.meds_list() {
        b.t("- ").t(m).t("\n");
    }
    b.t("\nFOLLOW-UP: Dr. ")
        .phi("NAME", &c.p.clinician.family)
        .t(" in 1-2 weeks. ");
    c.name(rng, &mut b);
    b.t(" was instructed to call ")
        .phi("PHONE", &phone_form(rng, &c.p.facility.phone))
        .t(" with concerns. Address on file: ")
        .phi("ADDRESS", &id.street)
        .t(", ")
        .phi("CITY", &id.city)
        .t(", ")
        .t(id.state)
        .t(" ")
        .phi("ZIP", &id.zip)
        .t(".\n");
    if chance(rng, 0.2) {
        b.t("Driver's license ")
            .phi("LICENSE", &id.drivers_license)
            .t(" copied for records.\n");
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream_rng;

    #[test]
    fn ordinals() {
        assert_eq!(ordinal(1), "1st");
        assert_eq!(ordinal(2), "2nd");
        assert_eq!(ordinal(3), "3rd");
        assert_eq!(ordinal(11), "11th");
        assert_eq!(ordinal(14), "14th");
        assert_eq!(ordinal(22), "22nd");
    }

    #[test]
    fn month_names_are_english() {
        let name = |m| month_name(NaiveDate::from_ymd_opt(2020, m, 14).unwrap());
        assert_eq!(name(1), "January");
        assert_eq!(name(3), "March");
        assert_eq!(name(12), "December");
    }

    #[test]
    fn phone_forms() {
        let mut rng = stream_rng(3, 0);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            seen.insert(phone_form(&mut rng, "617-432-1234"));
        }
        assert!(seen.contains("(617) 432-1234"));
        assert!(seen.contains("617.432.1234"));
        assert!(seen.contains("617-432-1234"));
    }
}
