//! Content recognition of CSV columns: what a column holds, judged from a sample of its values,
//! for the columns no rule or mapping names (and, for the unmistakable shapes, the ones a
//! mapping keeps: an export that put licence numbers in a column the mapping calls data is
//! caught too).
//!
//! Each value is tested against shapes that clinical data does not take by accident: UUIDs and
//! long hex tokens (record keys), DICOM-style UIDs, SSNs, licence and passport numbers (letters
//! around six or more digits: `S99912345`, `X12345678X`, `MRN-0012345`), phone numbers with
//! separators, emails, GS1 device identifiers, ISO dates, street addresses (a house number and
//! capitalised words), places written as text (a US state's name after other words), and
//! coordinates (decimal degrees with four or more decimals). A column is that kind when nearly
//! all its non-empty sampled values are (see the thresholds in [`Stats::detect`]). Codes
//! (SNOMED, LOINC, ICD, RxNorm, NDC, CVX) are digits, dotted or dashed digits, or letters
//! before at most five digits, so none of these shapes holds them.
//!
//! Pure string tests (no regex engine needed): linear in the value's length.

use crate::hash::FastSet;
use crate::values::csv_date;

/// Rows sampled from the start of a table to recognise its columns.
pub(crate) const SAMPLE_ROWS: usize = 1000;

/// Distinct values remembered per column (enough to tell "unique per row" from "repeats").
const DISTINCT_CAP: usize = SAMPLE_ROWS;

/// What content recognition found a column to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detected {
    /// Record keys (UUIDs, hex tokens): surrogates, joins kept.
    Key,
    /// Unique ids in DICOM UID form: surrogates of the same form.
    Uid,
    /// Social security numbers.
    Ssn,
    /// Licence, passport or other lettered id numbers.
    Licence,
    /// Phone numbers.
    Phone,
    /// Email addresses.
    Email,
    /// Device identifiers (GS1 UDI).
    Device,
    /// Street addresses.
    Street,
    /// Places written as text.
    Place,
    /// Dates.
    Date,
}

impl Detected {
    /// A short name for warnings.
    pub fn name(self) -> &'static str {
        match self {
            Detected::Key => "record keys",
            Detected::Uid => "unique identifiers (UIDs)",
            Detected::Ssn => "social security numbers",
            Detected::Licence => "licence or passport numbers",
            Detected::Phone => "phone numbers",
            Detected::Email => "email addresses",
            Detected::Device => "device identifiers",
            Detected::Street => "street addresses",
            Detected::Place => "place names",
            Detected::Date => "dates",
        }
    }

    /// Whether the shape is specific enough to override a mapping that keeps the column.
    pub fn overrides_keep(self) -> bool {
        self != Detected::Date
    }
}

/// Per-column counts over the sampled rows.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
    n: u32,
    distinct: FastSet<String>,
    uuid: u32,
    hex: u32,
    uid: u32,
    ssn: u32,
    licence: u32,
    phone: u32,
    email: u32,
    device: u32,
    street: u32,
    place: u32,
    degrees: u32,
    latitude: u32,
    date: u32,
}

impl Stats {
    /// Counts one value.
    pub fn add(&mut self, value: &str) {
        let v = value.trim();
        if v.is_empty() {
            return;
        }
        self.n += 1;
        if self.distinct.len() < DISTINCT_CAP && !self.distinct.contains(v) {
            self.distinct.insert(v.to_owned());
        }
        let bump = |c: &mut u32, yes: bool| *c += u32::from(yes);
        bump(&mut self.uuid, is_uuid(v));
        bump(&mut self.hex, is_hex_token(v));
        bump(&mut self.uid, is_uid(v));
        bump(&mut self.ssn, is_ssn(v));
        bump(&mut self.licence, is_licence(v));
        bump(&mut self.phone, is_phone(v));
        bump(&mut self.email, is_email(v));
        bump(&mut self.device, is_udi(v));
        bump(&mut self.street, is_street(v));
        bump(&mut self.place, is_place(v));
        if let Some(d) = degrees(v) {
            self.degrees += 1;
            bump(&mut self.latitude, d.abs() <= 90.0);
        }
        bump(&mut self.date, csv_date(v).is_some());
    }

    /// Share of sampled values that are distinct.
    fn distinct_ratio(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.distinct.len() as f64 / f64::from(self.n.min(DISTINCT_CAP as u32))
        }
    }

    fn share(&self, c: u32) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            f64::from(c) / f64::from(self.n)
        }
    }

    /// Whether nearly every value is decimal degrees (to pair with a neighbour).
    pub fn is_degrees(&self) -> bool {
        self.n > 0 && self.share(self.degrees) >= 0.9
    }

    /// Whether every degree value is within ±90 (a latitude).
    pub fn is_latitude(&self) -> bool {
        self.n > 0 && self.latitude == self.degrees
    }

    /// What the column is, by content alone (coordinates need a name or a neighbour: see
    /// [`pair_coordinates`]).
    pub fn detect(&self) -> Option<Detected> {
        if self.n == 0 {
            return None;
        }
        // Shapes no clinical value takes: nearly all values.
        let strong = [
            (self.ssn, Detected::Ssn),
            (self.uuid, Detected::Key),
            (self.device, Detected::Device),
            (self.email, Detected::Email),
            (self.phone, Detected::Phone),
            (self.licence, Detected::Licence),
        ];
        for (c, d) in strong {
            if self.share(c) >= 0.9 {
                return Some(d);
            }
        }
        // Shapes that codes can take when they repeat (a code system's OID, a hash of a
        // code): only when nearly unique per row.
        if self.share(self.hex) >= 0.9 && self.distinct_ratio() >= 0.9 {
            return Some(Detected::Key);
        }
        if self.share(self.uid) >= 0.9 && self.distinct_ratio() >= 0.5 {
            return Some(Detected::Uid);
        }
        // Text: most values (a few may be written otherwise).
        if self.share(self.street) >= 0.8 && self.distinct_ratio() >= 0.5 {
            return Some(Detected::Street);
        }
        if self.share(self.place) >= 0.8 {
            return Some(Detected::Place);
        }
        if self.share(self.date) >= 0.9 {
            return Some(Detected::Date);
        }
        None
    }
}

/// Which columns hold coordinates: a degrees column named like one (`lat`, `lon`, `lng`,
/// `latitude`, `longitude`, `coord...`), or two degrees columns side by side of which one is a
/// latitude (an unnamed pair: `y`, `x`). `names` are normalised (lower case, `_` for others).
pub(crate) fn pair_coordinates(stats: &[Stats], names: &[String]) -> Vec<bool> {
    let named = |n: &str| {
        let parts: Vec<&str> = n.split('_').collect();
        parts.iter().any(|p| {
            matches!(
                *p,
                "lat" | "lon" | "lng" | "long" | "latitude" | "longitude" | "coord" | "coords"
            ) || p.starts_with("coordinate")
        })
    };
    let mut out: Vec<bool> = stats
        .iter()
        .zip(names)
        .map(|(s, n)| s.is_degrees() && named(n))
        .collect();
    for i in 0..stats.len().saturating_sub(1) {
        let (Some(a), Some(b)) = (stats.get(i), stats.get(i + 1)) else {
            continue;
        };
        if a.is_degrees() && b.is_degrees() && (a.is_latitude() || b.is_latitude()) {
            if let Some(x) = out.get_mut(i) {
                *x = true;
            }
            if let Some(x) = out.get_mut(i + 1) {
                *x = true;
            }
        }
    }
    out
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// `8-4-4-4-12` hex digits.
pub(crate) fn is_uuid(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => is_hex(c),
        })
}

/// 16 to 64 hex digits, with letters and digits both (a hash or token, not a number).
fn is_hex_token(v: &str) -> bool {
    let b = v.as_bytes();
    (16..=64).contains(&b.len())
        && b.iter().all(|&c| is_hex(c))
        && b.iter().any(u8::is_ascii_digit)
        && b.iter().any(u8::is_ascii_alphabetic)
}

/// A DICOM-style UID: numbers joined by dots, four or more of them, 16 characters or more.
pub(crate) fn is_uid(v: &str) -> bool {
    v.len() >= 16
        && v.split('.').count() >= 4
        && v.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
}

/// `ddd-dd-dddd`.
fn is_ssn(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 11
        && b.iter().enumerate().all(|(i, &c)| match i {
            3 | 6 => c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// One to four letters, an optional `-`, six to fourteen digits, up to two letters
/// (`S99912345`, `X12345678X`, `MRN-0012345`, `AB1234567`).
fn is_licence(v: &str) -> bool {
    let b = v.as_bytes();
    let lead = b.iter().take_while(|c| c.is_ascii_alphabetic()).count();
    if !(1..=4).contains(&lead) {
        return false;
    }
    let mut i = lead;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let digits = b
        .get(i..)
        .unwrap_or_default()
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    if !(6..=14).contains(&digits) {
        return false;
    }
    let tail = b.get(i + digits..).unwrap_or_default();
    tail.len() <= 2 && tail.iter().all(u8::is_ascii_alphabetic)
}

/// A North American number written with separators: `555-123-4567`, `(555) 123-4567`,
/// `+1 555.123.4567`, `1-800-555-0100` (bare ten-digit numbers are not told from other numbers).
fn is_phone(v: &str) -> bool {
    let digits = v.bytes().filter(u8::is_ascii_digit).count();
    if !(10..=11).contains(&digits) {
        return false;
    }
    if !v
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'.' | b' ' | b'(' | b')' | b'+'))
    {
        return false;
    }
    // Groups of 3, 3 and 4 digits at the end, after an optional country code.
    let groups: Vec<&str> = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    matches!(
        groups.as_slice(),
        [a, b, c] if a.len() == 3 && b.len() == 3 && c.len() == 4
    ) || matches!(
        groups.as_slice(),
        [cc, a, b, c] if cc.len() == 1 && a.len() == 3 && b.len() == 3 && c.len() == 4
    )
}

fn is_email(v: &str) -> bool {
    let Some((user, domain)) = v.split_once('@') else {
        return false;
    };
    !user.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !v.contains(char::is_whitespace)
        && !domain.contains('@')
}

/// A GS1 unique device identifier in human-readable form: `(01)` and a 14-digit GTIN.
fn is_udi(v: &str) -> bool {
    v.strip_prefix("(01)")
        .is_some_and(|rest| rest.len() >= 14 && rest.bytes().take(14).all(|c| c.is_ascii_digit()))
}

/// A house number (digits, maybe a letter or a `-` and more: `12B`, `1035-116TH`) and two to
/// nine more words, two of them capitalised words: `858 Sawayn Parade Unit 61`, `12 MAIN ST`.
/// Lower-case phrases after a number (`1 tablet by mouth`) are not addresses.
fn is_street(v: &str) -> bool {
    let mut words = v.split_whitespace();
    let Some(number) = words.next() else {
        return false;
    };
    let nb = number.as_bytes();
    let lead = nb.iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=6).contains(&lead) || !nb.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-') {
        return false;
    }
    let rest: Vec<&str> = words.collect();
    if !(2..=9).contains(&rest.len()) {
        return false;
    }
    let capitalised = rest
        .iter()
        .filter(|w| {
            let mut c = w.chars();
            c.next().is_some_and(char::is_uppercase) && c.all(|x| x.is_alphabetic() || x == '.')
        })
        .count();
    capitalised >= 2
}

/// A place written as text: a name, then a state (`Boston  Massachusetts  US`, `Boston,
/// Massachusetts`), or a name, a comma and a two-letter code (`Boston, MA`).
fn is_place(v: &str) -> bool {
    let lower = v.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    if words.len() < 2 || words.len() > 8 || v.bytes().any(|c| c.is_ascii_digit()) {
        return false;
    }
    let joined = words.join(" ");
    let state_at = crate::leak::US_STATES.iter().find_map(|s| {
        // The state must follow at least one other word and be followed by at most a country.
        let pat = format!(" {s}");
        joined.find(&pat).map(|i| (i, s.len()))
    });
    if let Some((i, len)) = state_at {
        let after: Vec<&str> = joined
            .get(i + 1 + len..)
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        return after.len() <= 1 && after.iter().all(|w| w.len() <= 3);
    }
    // `Name, XX`.
    match v.rsplit_once(',') {
        Some((name, code)) => {
            let code = code.trim();
            !name.trim().is_empty()
                && code.len() == 2
                && code.bytes().all(|c| c.is_ascii_uppercase())
        }
        None => false,
    }
}

/// Decimal degrees: a number with a `.` and four or more decimals, within ±180.
fn degrees(v: &str) -> Option<f64> {
    let (_, frac) = v.split_once('.')?;
    if frac.len() < 4 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let x: f64 = v.parse().ok()?;
    (x.is_finite() && x.abs() <= 180.0).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(values: &[&str]) -> Stats {
        let mut s = Stats::default();
        for v in values {
            s.add(v);
        }
        s
    }

    #[test]
    fn identifier_shapes() {
        assert!(is_licence("S99912345"));
        assert!(is_licence("X12345678X"));
        assert!(is_licence("MRN-0012345"));
        for code in [
            "E11.9",
            "J1234",
            "Z00.00",
            "208D00000X",
            "44054006",
            "2093-3",
            "0DTJ4ZZ",
        ] {
            assert!(!is_licence(code), "{code}");
        }
        assert!(is_ssn("999-40-8244"));
        assert!(is_phone("555-355-9196"));
        assert!(is_phone("(555) 355-9196"));
        assert!(is_phone("1-800-555-0100"));
        assert!(!is_phone("4256885000"));
        assert!(!is_phone("2019-02-17"));
        assert!(is_uuid("fe07e69a-4d6d-4e11-a675-de69f62de5f3"));
        assert!(is_uid("1.2.840.99999999.1.24619348.1583281879079"));
        assert!(!is_uid("2.16.840"));
        assert!(is_udi(
            "(01)51022222233936(11)141231(17)150707(10)R5911(21)2"
        ));
        assert!(is_email("Chi716.Roberts511@example.com"));
        assert!(is_street("858 Sawayn Parade Unit 61"));
        assert!(is_street("1035-116TH AVE NE"));
        assert!(!is_street("1 tablet by mouth daily"));
        assert!(!is_street("2 Puffs"));
        assert!(is_place("Caguas  Puerto Rico  PR"));
        assert!(is_place("White Salmon  Washington  US"));
        assert!(is_place("Boston, MA"));
        assert!(!is_place("Washington"));
        assert!(!is_place("Hypertension"));
        assert!(!is_place("Body mass index 30+ - obesity (finding)"));
        assert_eq!(degrees("47.744394225282534"), Some(47.744394225282534));
        assert_eq!(degrees("268.1"), None);
        assert_eq!(degrees("946.96"), None);
    }

    #[test]
    fn columns_by_content() {
        assert_eq!(
            column(&["S99970618", "S99950208", ""]).detect(),
            Some(Detected::Licence)
        );
        assert_eq!(
            column(&["fe07e69a-4d6d-4e11-a675-de69f62de5f3"; 5]).detect(),
            Some(Detected::Key),
            "foreign keys repeat"
        );
        // A code system's OID repeats: not a key.
        assert_eq!(column(&["1.2.840.10008.5.1.4.1.1.1.1"; 5]).detect(), None);
        assert_eq!(
            column(&["1.2.840.99999999.1.1.1", "1.2.840.99999999.1.1.2"]).detect(),
            Some(Detected::Uid)
        );
        assert_eq!(
            column(&[
                "2019-02-17T05:07:38Z",
                "2020-01-01",
                "2020-01-01 10:00:00",
                "2/7/2019"
            ])
            .detect(),
            Some(Detected::Date)
        );
        // SNOMED codes shaped like HL7 dates are codes.
        assert_eq!(column(&["20101200", "19601120"]).detect(), None);
        assert_eq!(column(&["44054006", "59621000", "10509002"]).detect(), None);
        assert_eq!(column(&["white", "black", "asian"]).detect(), None);
    }

    #[test]
    fn coordinates_need_a_name_or_a_partner() {
        let lat = column(&["47.744394225282534", "47.74830870572449"]);
        let lon = column(&["-122.26585022525728", "-122.21726495728906"]);
        let lab = column(&["5.123456", "4.987654"]);
        let other = column(&["12", "13"]);
        let n = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            pair_coordinates(&[lat.clone(), lon.clone()], &n(&["y", "x"])),
            vec![true, true]
        );
        assert_eq!(
            pair_coordinates(
                &[other.clone(), lab.clone(), other.clone()],
                &n(&["a", "b", "c"])
            ),
            vec![false, false, false]
        );
        assert_eq!(
            pair_coordinates(&[lat, other], &n(&["home_lat", "b"])),
            vec![true, false]
        );
    }
}
