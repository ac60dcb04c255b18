//! Value transformations shared by every format: dates (year only, shift, age cap), zip codes,
//! numeric bins, perturbation, fake values, and the restricted zip list.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use chrono::{Datelike, Duration, NaiveDate};
use serde::Deserialize;

use crate::keys::DeidKeys;

/// The restricted three-digit zip lists shipped with the engine (see `data/restricted-zip3.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZipList {
    /// List name, selected by a profile's `restricted_zip3`.
    pub name: String,
    /// Where the list comes from.
    pub source: String,
    /// The Census vintage (year) of the population figures.
    pub vintage: u32,
    /// The restricted prefixes.
    pub prefixes: BTreeSet<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ZipFile {
    list: Vec<ZipList>,
}

/// All shipped restricted-zip lists.
pub fn zip_lists() -> &'static [ZipList] {
    static LISTS: OnceLock<Vec<ZipList>> = OnceLock::new();
    LISTS.get_or_init(|| {
        toml::from_str::<ZipFile>(include_str!("../data/restricted-zip3.toml"))
            .map(|f| f.list)
            .unwrap_or_default()
    })
}

/// The shipped list called `name`.
pub fn zip_list(name: &str) -> Option<&'static ZipList> {
    zip_lists().iter().find(|l| l.name == name)
}

/// Safe Harbor zip: the first three digits, or `000` for a restricted prefix; `None` when
/// the value has fewer than three leading digits.
pub fn zip3(value: &str, restricted: &ZipList) -> Option<String> {
    let digits: String = value.trim().chars().take(3).collect();
    if digits.len() != 3 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if restricted.prefixes.contains(&digits) {
        Some("000".to_owned())
    } else {
        Some(digits)
    }
}

/// A parsed ISO (FHIR) or HL7 date/time: the date part and the untouched rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DateParts<'a> {
    pub year: i32,
    pub month: Option<u32>,
    pub day: Option<u32>,
    /// Everything after the date (`T10:00:00Z`, `1230+0100`).
    pub rest: &'a str,
    pub hl7: bool,
}

/// Parses `YYYY`, `YYYY-MM`, `YYYY-MM-DD[Thh:mm...]` (FHIR) or `YYYY[MM[DD[...]]]` (HL7 DTM).
pub(crate) fn parse_date(s: &str) -> Option<DateParts<'_>> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let year = digits(0..4)? as i32;
    if b.len() == 4 {
        return Some(DateParts {
            year,
            month: None,
            day: None,
            rest: "",
            hl7: false,
        });
    }
    match b.get(4) {
        Some(b'-') => {
            let month = digits(5..7).filter(|m| (1..=12).contains(m))?;
            if b.len() == 7 {
                return Some(DateParts {
                    year,
                    month: Some(month),
                    day: None,
                    rest: "",
                    hl7: false,
                });
            }
            if b.get(7) != Some(&b'-') {
                return None;
            }
            let day = digits(8..10).filter(|d| (1..=31).contains(d))?;
            let rest = s.get(10..)?;
            if !(rest.is_empty() || rest.starts_with('T')) {
                return None;
            }
            Some(DateParts {
                year,
                month: Some(month),
                day: Some(day),
                rest,
                hl7: false,
            })
        }
        Some(c) if c.is_ascii_digit() => {
            // HL7 DTM: at least YYYYMM, digits then optional fraction/offset.
            let month = digits(4..6).filter(|m| (1..=12).contains(m))?;
            let (day, rest) = if b.len() >= 8 {
                (
                    Some(digits(6..8).filter(|d| (1..=31).contains(d))?),
                    s.get(8..)?,
                )
            } else if b.len() == 6 {
                (None, "")
            } else {
                return None;
            };
            if !rest
                .bytes()
                .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'+' | b'-'))
            {
                return None;
            }
            Some(DateParts {
                year,
                month: Some(month),
                day,
                rest,
                hl7: true,
            })
        }
        _ => None,
    }
}

/// A date as CSV exports write them, in the ISO form [`parse_date`] reads: ISO itself,
/// `YYYY-MM-DD hh:mm:ss` (a space for the `T`: OMOP and SQL exports), or the US `M/D/YYYY`
/// with an optional time. `None` when it is none of these (HL7 `YYYYMMDD` digits are left to
/// [`parse_date`]'s callers: in a CSV they are as likely a code).
pub(crate) fn csv_date(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    let b = s.as_bytes();
    if b.get(4) == Some(&b'-') {
        if parse_date(s).is_some_and(|p| p.month.is_some()) {
            return Some(Cow::Borrowed(s));
        }
        if b.get(10) == Some(&b' ') {
            let iso = format!("{}T{}", s.get(..10)?, s.get(11..)?.trim_start());
            return parse_date(&iso).is_some().then_some(Cow::Owned(iso));
        }
        return None;
    }
    // `M/D/YYYY[ time]`.
    let (date, time) = match s.split_once(' ') {
        Some((d, t)) => (d, Some(t.trim())),
        None => (s, None),
    };
    let mut parts = date.split('/');
    let (m, d, y) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || !(1..=2).contains(&m.len())
        || !(1..=2).contains(&d.len())
        || y.len() != 4
    {
        return None;
    }
    let (m, d, y): (u32, u32, u32) = (m.parse().ok()?, d.parse().ok()?, y.parse().ok()?);
    let iso = match time {
        Some(t) if !t.is_empty() => format!("{y:04}-{m:02}-{d:02}T{t}"),
        _ => format!("{y:04}-{m:02}-{d:02}"),
    };
    parse_date(&iso).is_some().then_some(Cow::Owned(iso))
}

/// Whether `s` looks like a full or partial date (see [`parse_date`]); a bare 4-digit year
/// counts only when `allow_year` (the element's name says it is a date).
pub(crate) fn is_date(s: &str, allow_year: bool) -> bool {
    match parse_date(s) {
        Some(p) => p.month.is_some() || allow_year,
        None => false,
    }
}

/// The year of a date, capped for ages over 89: a birth year implying an age over 89 at
/// `reference_year` becomes `reference_year - 90` (so the output implies "90 or older" and no
/// more). Returns the new value and whether the cap applied.
pub(crate) fn year_only(s: &str, birth: bool, reference_year: i32) -> Option<(String, bool)> {
    let p = parse_date(s)?;
    if birth && reference_year - p.year > 89 {
        return Some(((reference_year - 90).to_string(), true));
    }
    Some((format!("{:04}", p.year), false))
}

/// Shifts a date by `days`, keeping its precision, format and time part (so intervals between
/// full dates of one patient are preserved exactly). Partial dates: `YYYY-MM`/`YYYYMM` shift
/// the 15th of the month; a bare year is kept.
pub(crate) fn shift_date(s: &str, days: i64) -> Option<String> {
    let p = parse_date(s)?;
    let Some(month) = p.month else {
        return Some(s.to_owned());
    };
    let anchor = NaiveDate::from_ymd_opt(p.year, month, p.day.unwrap_or(15))?;
    let d = anchor.checked_add_signed(Duration::days(days))?;
    let out = match (p.day.is_some(), p.hl7) {
        (true, false) => format!("{:04}-{:02}-{:02}{}", d.year(), d.month(), d.day(), p.rest),
        (true, true) => format!("{:04}{:02}{:02}{}", d.year(), d.month(), d.day(), p.rest),
        (false, false) => format!("{:04}-{:02}", d.year(), d.month()),
        (false, true) => format!("{:04}{:02}", d.year(), d.month()),
    };
    Some(out)
}

/// The Microsoft anonymizer's `dateShift`: full dates shifted, the time set to midnight (time
/// zone kept); partial dates reduced to the year.
pub(crate) fn ms_shift_date(s: &str, days: i64) -> Option<String> {
    let p = parse_date(s)?;
    let (Some(m), Some(day)) = (p.month, p.day) else {
        return Some(format!("{:04}", p.year));
    };
    let d = NaiveDate::from_ymd_opt(p.year, m, day)?.checked_add_signed(Duration::days(days))?;
    let date = format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
    if p.rest.is_empty() {
        return Some(date);
    }
    // Zero the digits of hh:mm:ss(.fff), keep the zone.
    let rest = p.rest;
    let zone_at = rest
        .get(1..)
        .and_then(|r| r.find(['Z', '+', '-']).map(|i| i + 1))
        .unwrap_or(rest.len());
    let (time, zone) = rest.split_at(zone_at);
    let zeroed: String = time
        .chars()
        .map(|c| if c.is_ascii_digit() { '0' } else { c })
        .collect();
    Some(format!("{date}{zeroed}{zone}"))
}

/// Ages over `cap` become `"90 or older"`-style aggregate (returned as `None` meaning "use the
/// aggregate label"); others are kept.
pub(crate) fn age_cap(value: f64, cap: u32) -> Option<f64> {
    if value > f64::from(cap) {
        None
    } else {
        Some(value)
    }
}

/// Numeric generalisation into bins of `width` (`[40-50)`).
pub(crate) fn bin(value: f64, width: f64) -> String {
    if width <= 0.0 || !value.is_finite() {
        return "*".to_owned();
    }
    let lo = (value / width).floor() * width;
    format!("[{}-{})", fmt_num(lo), fmt_num(lo + width))
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Keyed perturbation: `value` moved by up to `span` (absolute, or a fraction of the value when
/// `proportional`), deterministically from the key, the context and the value; rounded to
/// `round_to` decimals.
pub(crate) fn perturb(
    keys: &DeidKeys,
    context: &str,
    value: f64,
    span: f64,
    proportional: bool,
    round_to: u32,
) -> f64 {
    let d = keys.mac(&[b"perturb", context.as_bytes(), value.to_string().as_bytes()]);
    let mut b = [0u8; 8];
    b.copy_from_slice(d.get(..8).unwrap_or(&[0; 8]));
    let u = (u64::from_be_bytes(b) >> 11) as f64 / (1u64 << 53) as f64; // [0,1)
    let width = if proportional {
        value.abs() * span
    } else {
        span
    };
    let v = value + (u * 2.0 - 1.0) * width;
    let f = 10f64.powi(round_to as i32);
    (v * f).round() / f
}

const FAKE_GIVEN: &[&str] = &[
    "Alex", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn", "Rowan",
    "Sage", "Emerson",
];
const FAKE_FAMILY: &[&str] = &[
    "Hollis",
    "Marlowe",
    "Brennan",
    "Castell",
    "Dunmore",
    "Everly",
    "Fairbank",
    "Garrow",
    "Halvorsen",
    "Ingram",
    "Kestrel",
    "Lindqvist",
];
const FAKE_STREET: &[&str] = &[
    "Oak", "Maple", "Cedar", "Birch", "Willow", "Elm", "Aspen", "Linden",
];
const FAKE_CITY: &[&str] = &[
    "Springfield",
    "Riverton",
    "Fairview",
    "Greenville",
    "Franklin",
    "Clinton",
    "Madison",
    "Georgetown",
];

/// The kind of realistic fake value for the `substitute` method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FakeKind {
    /// A given name.
    Given,
    /// A family name.
    Family,
    /// A full name.
    Name,
    /// A phone number in the 555-01xx fictional range.
    Phone,
    /// An email at example.org.
    Email,
    /// A street line.
    Street,
    /// A city.
    City,
    /// An opaque identifier.
    Id,
}

/// A realistic fake, chosen deterministically from the key and the real value (the same real
/// value always gets the same fake).
pub(crate) fn fake(keys: &DeidKeys, kind: FakeKind, real: &str) -> String {
    let d = keys.mac(&[b"substitute", real.as_bytes()]);
    let n = |i: usize, m: usize| usize::from(d.get(i).copied().unwrap_or(0)) % m.max(1);
    let pick = |list: &[&str], i: usize| {
        list.get(n(i, list.len()))
            .copied()
            .unwrap_or("X")
            .to_owned()
    };
    match kind {
        FakeKind::Given => pick(FAKE_GIVEN, 0),
        FakeKind::Family => pick(FAKE_FAMILY, 1),
        FakeKind::Name => format!("{} {}", pick(FAKE_GIVEN, 0), pick(FAKE_FAMILY, 1)),
        FakeKind::Phone => format!("555-01{:02}", n(2, 100)),
        FakeKind::Email => format!(
            "{}{}@example.org",
            pick(FAKE_GIVEN, 0).to_lowercase(),
            n(3, 1000)
        ),
        FakeKind::Street => format!("{} {} St", 100 + n(4, 200) * 7, pick(FAKE_STREET, 5)),
        FakeKind::City => pick(FAKE_CITY, 6),
        FakeKind::Id => hex::encode(d.get(8..16).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_and_dates() {
        let l = zip_list("census-2000").unwrap();
        assert_eq!(l.vintage, 2000);
        assert_eq!(zip3("02115-1234", l).as_deref(), Some("021"));
        assert_eq!(zip3("03601", l).as_deref(), Some("000"));
        assert_eq!(zip3("12", l), None);
        assert_eq!(year_only("1970-05-06", true, 2026).unwrap().0, "1970");
        assert_eq!(
            year_only("1920-05-06", true, 2026).unwrap(),
            ("1936".to_owned(), true)
        );
        assert_eq!(year_only("19700506123000", false, 2026).unwrap().0, "1970");
        assert_eq!(shift_date("2020-03-01", -1).unwrap(), "2020-02-29");
        assert_eq!(
            shift_date("2020-03-01T10:00:00Z", 2).unwrap(),
            "2020-03-03T10:00:00Z"
        );
        assert_eq!(
            shift_date("20200301123000+0100", 1).unwrap(),
            "20200302123000+0100"
        );
        assert_eq!(shift_date("2020", 100).unwrap(), "2020");
        assert_eq!(shift_date("2020-12", 30).unwrap(), "2021-01");
        assert_eq!(
            ms_shift_date("2015-02-07T13:28:17-05:00", 1).unwrap(),
            "2015-02-08T00:00:00-05:00"
        );
        assert_eq!(ms_shift_date("2002", 1).unwrap(), "2002");
        assert!(parse_date("hello").is_none());
        assert!(parse_date("2020-13-01").is_none());
        assert!(!is_date("1234", false));
        assert!(is_date("1234", true));
        assert_eq!(bin(47.0, 10.0), "[40-50)");
    }

    #[test]
    fn csv_dates_as_exports_write_them() {
        let iso = |s: &str| csv_date(s).map(|c| c.into_owned());
        assert_eq!(iso("2019-02-17").as_deref(), Some("2019-02-17"));
        assert_eq!(
            iso("2019-02-17T05:07:38Z").as_deref(),
            Some("2019-02-17T05:07:38Z")
        );
        assert_eq!(
            iso("1930-04-12 00:00:00").as_deref(),
            Some("1930-04-12T00:00:00")
        );
        assert_eq!(iso("2/7/2019").as_deref(), Some("2019-02-07"));
        assert_eq!(iso("12/31/2019 23:59").as_deref(), Some("2019-12-31T23:59"));
        for no in [
            "20190217",
            "1930",
            "2019-13-01",
            "13/45/2019",
            "2093-3",
            "a/b/cdef",
            "",
        ] {
            assert_eq!(iso(no), None, "{no}");
        }
    }
}
