//! HL7 v2.5.1 `ADT^A01` messages, one per hospital stay.
//!
//! Segments: MSH, EVN, PID, NK1, PV1, DG1 (one per diagnosis), OBX (one per result), NTE (one
//! per line of each note). Segments end with `\r`; encoding characters are `^~\&`; field values
//! are escaped (`\F\`, `\S\`, `\R\`, `\T\`, `\E\`) so that names like `Holy Cross & St. Luke` or
//! free text with `|` stay inside their field. Character set is UTF-8 (MSH-18 `UNICODE UTF-8`).

use chrono::NaiveDateTime;

use crate::model::{Encounter, SynthPatient};

/// Escapes a value for an HL7 v2 field with the default encoding characters.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\E\\"),
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '&' => out.push_str("\\T\\"),
            '~' => out.push_str("\\R\\"),
            '\r' | '\n' => out.push_str("\\.br\\"),
            c => out.push(c),
        }
    }
    out
}

fn ts(dt: NaiveDateTime) -> String {
    dt.format("%Y%m%d%H%M%S").to_string()
}

fn xtn(phone: &str, use_code: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let (area, local) = digits.split_at(digits.len().min(3));
    format!("{}^{use_code}^PH^^1^{area}^{local}", escape(phone))
}

/// Builds one segment from its fields (the segment name first), already escaped or composed.
fn seg(out: &mut String, fields: &[&str]) {
    out.push_str(&fields.join("|"));
    out.push('\r');
}

/// The ADT^A01 message for encounter `enc_index` of `p`.
pub(crate) fn adt_a01(p: &SynthPatient, enc_index: usize, e: &Encounter) -> String {
    let id = &p.identity;
    let f = &p.facility;
    let mut m = String::with_capacity(4096);
    let control = e.visit_number.trim_start_matches('V').to_owned();
    let facility = escape(f.short_name);
    seg(
        &mut m,
        &[
            "MSH",
            "^~\\&",
            "AIRLOCK-SYNTH",
            &facility,
            "AIRLOCK",
            "AIRLOCK",
            &ts(e.admit),
            "",
            "ADT^A01^ADT_A01",
            &control,
            "P",
            "2.5.1",
            "",
            "",
            "AL",
            "NE",
            "USA",
            "UNICODE UTF-8",
        ],
    );
    seg(&mut m, &["EVN", "A01", &ts(e.admit)]);

    let mrn_cx = format!(
        "{}^^^{}^MR~{}^^^USSSA^SS~{}^^^{}^MR",
        escape(&id.mrn),
        facility,
        escape(&id.ssn),
        escape(&id.legacy_mrn),
        "LEGACY"
    );
    let middle = id.middle.as_deref().map(escape).unwrap_or_default();
    let name = format!(
        "{}^{}^{}^^{}^^L",
        escape(&id.family),
        escape(&id.given),
        middle,
        escape(id.prefix)
    );
    let mothers_maiden = {
        let mut parts = id.mothers_maiden_name.splitn(2, ' ');
        let g = parts.next().unwrap_or_default();
        let fam = parts.next().unwrap_or_default();
        format!("{}^{}", escape(fam), escape(g))
    };
    let address = format!(
        "{}^^{}^{}^{}^USA^H",
        escape(&id.street),
        escape(&id.city),
        id.state,
        escape(&id.zip)
    );
    let phones = format!(
        "{}~^NET^Internet^{}",
        xtn(&id.phone, "PRN"),
        escape(&id.email)
    );
    let race = format!("{}^{}^CDCREC", p.race.code(), escape(p.race.display()));
    let ethnic = format!(
        "{}^{}^HL70189",
        p.ethnicity.hl7_code(),
        escape(p.ethnicity.display())
    );
    let dl = format!("{}^{}", escape(&id.drivers_license), id.state);
    let dob = id.birth_date.format("%Y%m%d").to_string();
    let account = format!("{}^^^{}^AN", escape(&id.account_number), facility);
    seg(
        &mut m,
        &[
            "PID",
            "1",
            "",
            &mrn_cx,
            "",
            &name,
            &mothers_maiden,
            &dob,
            p.sex.code(),
            "",
            &race,
            &address,
            "",
            &phones,
            "",
            "",
            p.marital_status,
            "",
            &account,
            &escape(&id.ssn),
            &dl,
            "",
            &ethnic,
        ],
    );

    let r = &id.relative;
    let rel_name = format!("{}^{}", escape(&r.family), escape(&r.given));
    let rel_code = format!("{}^{}^HL70063", r.relationship_code, escape(r.relationship));
    let rel_phone = xtn(&r.phone, "PRN");
    seg(
        &mut m,
        &["NK1", "1", &rel_name, &rel_code, &address, &rel_phone],
    );

    let c = &p.clinician;
    let attending = format!(
        "{}^{}^{}^^^Dr.^^^NPI",
        escape(&c.npi),
        escape(&c.family),
        escape(&c.given)
    );
    let location = format!("MED^4{:02}^A^{}", enc_index + 10, facility);
    let visit = format!("{}^^^{}^VN", escape(&e.visit_number), facility);
    let mut pv1: Vec<String> = vec![String::new(); 46];
    let set = |v: &mut Vec<String>, i: usize, s: String| {
        if let Some(slot) = v.get_mut(i) {
            *slot = s;
        }
    };
    set(&mut pv1, 0, "PV1".to_owned());
    set(&mut pv1, 1, "1".to_owned());
    set(&mut pv1, 2, e.class.hl7_class().to_owned());
    set(&mut pv1, 3, location);
    set(&mut pv1, 4, "E".to_owned());
    set(&mut pv1, 7, attending);
    set(&mut pv1, 10, "MED".to_owned());
    set(&mut pv1, 19, visit);
    set(&mut pv1, 36, e.disposition.hl7_code().to_owned());
    set(&mut pv1, 44, ts(e.admit));
    set(&mut pv1, 45, ts(e.discharge));
    let pv1_refs: Vec<&str> = pv1.iter().map(String::as_str).collect();
    seg(&mut m, &pv1_refs);

    let diags = std::iter::once((&e.primary, "A")).chain(e.secondary.iter().map(|d| (d, "F")));
    for (i, (d, ty)) in diags.enumerate() {
        let code = format!("{}^{}^I10", escape(d.icd10), escape(d.display));
        seg(
            &mut m,
            &["DG1", &(i + 1).to_string(), "", &code, "", &ts(e.admit), ty],
        );
    }
    for (i, o) in e.observations.iter().enumerate() {
        let code = format!("{}^{}^LN", escape(o.loinc), escape(o.display));
        let range = format!("{}-{}", o.ref_low, o.ref_high);
        seg(
            &mut m,
            &[
                "OBX",
                &(i + 1).to_string(),
                "NM",
                &code,
                "",
                &o.value_text(),
                &escape(o.unit),
                &escape(&range),
                o.flag(),
                "",
                "",
                "F",
                "",
                "",
                &ts(o.effective),
            ],
        );
    }
    let mut nte = 0usize;
    for note in &e.notes {
        for line in note.text.lines() {
            nte += 1;
            seg(&mut m, &["NTE", &nte.to_string(), "P", &escape(line)]);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_delimiter() {
        assert_eq!(escape("a|b^c&d~e\\f"), "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f");
        assert_eq!(escape("O'Brien-Núñez"), "O'Brien-Núñez");
    }

    #[test]
    fn phone_components() {
        assert_eq!(
            xtn("617-432-1234", "PRN"),
            "617-432-1234^PRN^PH^^1^617^4321234"
        );
    }
}
