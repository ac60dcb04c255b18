//! Output rendering: tags, masks and consistent surrogates.
//!
//! Surrogates are chosen from HMAC-SHA256(key, patient, kind, normalised value), so the same
//! real value always becomes the same fake within one patient and nothing about the real value
//! can be read back from the fake without the key. Names are replaced word by word (so "John
//! Smith" and "Mr. Smith" share the fake surname), titles kept; dates are parsed, shifted by
//! `date_shift_days` and written back in the same layout; numbers and codes keep their layout
//! with each digit and letter replaced. A value that cannot be faked faithfully (an unparsable
//! date, a time) is written as its tag.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::dict::Dicts;
use crate::known::MONTHS;
use crate::{Mode, PhiKind, Span, SurrogateContext};

pub(crate) fn render(
    dicts: &Dicts,
    text: &str,
    spans: &[Span],
    mode: Mode,
    ctx: Option<&SurrogateContext<'_>>,
) -> String {
    let mut out = String::with_capacity(text.len() + spans.len() * 8);
    let mut last = 0usize;
    for s in spans {
        let (Some(before), Some(value)) = (text.get(last..s.start), text.get(s.start..s.end))
        else {
            continue;
        };
        out.push_str(before);
        match (mode, ctx) {
            (Mode::Tag, _) | (Mode::Surrogate, None) => out.push_str(s.kind.as_tag()),
            (Mode::Mask, _) => out.extend(value.chars().map(|_| '*')),
            (Mode::Surrogate, Some(ctx)) => match surrogate(dicts, ctx, s.kind, value) {
                Some(fake) => out.push_str(&fake),
                None => out.push_str(s.kind.as_tag()),
            },
        }
        last = s.end;
    }
    out.push_str(text.get(last..).unwrap_or(""));
    out
}

fn hash(ctx: &SurrogateContext<'_>, kind: PhiKind, value: &str) -> Option<[u8; 32]> {
    let mut mac = Hmac::<Sha256>::new_from_slice(ctx.key).ok()?;
    mac.update(ctx.patient.as_bytes());
    mac.update(&[0]);
    mac.update(kind.name().as_bytes());
    mac.update(&[0]);
    mac.update(value.as_bytes());
    Some(mac.finalize().into_bytes().into())
}

fn pick<'a>(h: &[u8; 32], list: &[&'a str]) -> Option<&'a str> {
    let mut n = [0u8; 8];
    n.copy_from_slice(h.get(..8)?);
    let i = u64::from_le_bytes(n) as usize % list.len().max(1);
    list.get(i).copied()
}

fn normalise(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect::<String>()
        .to_lowercase()
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .to_owned()
}

fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = c == ' ' || c == '-';
    }
    out
}

/// Writes `fake` in the case style of `model`.
fn same_case(model: &str, fake: &str) -> String {
    if model.chars().any(char::is_alphabetic)
        && model
            .chars()
            .filter(|c| c.is_alphabetic())
            .all(char::is_uppercase)
        && model.chars().count() > 1
    {
        fake.to_uppercase()
    } else if model.chars().next().is_some_and(char::is_lowercase) {
        fake.to_lowercase()
    } else {
        title_case(fake)
    }
}

fn surrogate(
    dicts: &Dicts,
    ctx: &SurrogateContext<'_>,
    kind: PhiKind,
    value: &str,
) -> Option<String> {
    match kind {
        PhiKind::Name => Some(fake_name(dicts, ctx, value)),
        PhiKind::Date => shift_date(value, ctx.date_shift_days),
        PhiKind::Age => Some("90+".to_owned()),
        PhiKind::Email => {
            let h = hash(ctx, kind, &value.to_lowercase())?;
            Some(format!(
                "user{:02x}{:02x}{:02x}{:02x}@example.org",
                h[0], h[1], h[2], h[3]
            ))
        }
        PhiKind::Url => {
            let h = hash(ctx, kind, &value.to_lowercase())?;
            Some(format!(
                "https://example.org/{:02x}{:02x}{:02x}{:02x}",
                h[0], h[1], h[2], h[3]
            ))
        }
        PhiKind::Ip => {
            let h = hash(ctx, kind, value)?;
            Some(format!("10.{}.{}.{}", h[0], h[1], h[2].max(1)))
        }
        PhiKind::City => {
            let h = hash(ctx, kind, &normalise(value))?;
            Some(same_case(value, pick(&h, &dicts.cities)?))
        }
        PhiKind::County => {
            let h = hash(ctx, kind, &normalise(value))?;
            Some(format!("{} County", title_case(pick(&h, &dicts.surnames)?)))
        }
        PhiKind::Facility => {
            let h = hash(ctx, kind, &normalise(value))?;
            Some(format!(
                "{} Medical Center",
                title_case(pick(&h, &dicts.surnames)?)
            ))
        }
        PhiKind::Address => {
            let h = hash(ctx, kind, &normalise(value))?;
            let num = u16::from_le_bytes([h[8], h[9]]) % 9000 + 100;
            Some(format!(
                "{num} {} Street",
                title_case(pick(&h, &dicts.surnames)?)
            ))
        }
        PhiKind::State | PhiKind::Location => None,
        // Numbers and codes: keep the layout, replace each digit and letter. A label the span
        // starts with ("Patient ID: ") stays as written; only the code is replaced, so one code
        // gets one surrogate whatever its label.
        _ => {
            let start = label_end(value);
            let (label, value) = value.split_at(start);
            let h = hash(ctx, kind, &value.to_lowercase())?;
            let mut out = String::with_capacity(label.len() + value.len());
            out.push_str(label);
            for (i, c) in value.chars().enumerate() {
                let b = h.get(i % 32).copied().unwrap_or(0) ^ (i as u8).wrapping_mul(31);
                if c.is_ascii_digit() {
                    out.push(char::from(b'0' + b % 10));
                } else if c.is_ascii_uppercase() {
                    out.push(char::from(b'A' + b % 26));
                } else if c.is_ascii_lowercase() {
                    out.push(char::from(b'a' + b % 26));
                } else {
                    out.push(c);
                }
            }
            Some(out)
        }
    }
}

/// Where the code starts in an identifier span: at the first word holding a digit, when
/// letters-only words (a label) come before it; else 0.
fn label_end(value: &str) -> usize {
    let mut word_start = 0;
    let mut in_word = false;
    for (i, c) in value.char_indices() {
        if c.is_alphanumeric() || c == '-' {
            if !in_word {
                word_start = i;
                in_word = true;
            }
            if c.is_ascii_digit() {
                return word_start;
            }
        } else {
            in_word = false;
        }
    }
    0
}

fn fake_name(dicts: &Dicts, ctx: &SurrogateContext<'_>, value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    let mut word_start: Option<usize> = None;
    let flush = |out: &mut String, w: &str| {
        let lower = w.to_lowercase();
        if matches!(
            lower.as_str(),
            "dr" | "mr" | "mrs" | "ms" | "miss" | "prof" | "doctor" | "nurse" | "mx" | "sr" | "jr"
        ) {
            out.push_str(w);
            return;
        }
        let key = normalise(w);
        let Some(h) = hash(ctx, PhiKind::Name, &key) else {
            out.push_str(PhiKind::Name.as_tag());
            return;
        };
        let flags = dicts.flags(&key);
        let is_first = flags & crate::dict::FIRST != 0
            && (flags & crate::dict::LAST == 0 || dicts.top_first.contains(key.as_str()));
        let list = if is_first {
            &dicts.first_names
        } else {
            &dicts.surnames
        };
        let fake = pick(&h, list).unwrap_or("Doe");
        if w.chars().count() == 1 {
            out.extend(fake.chars().next().map(|c| c.to_ascii_uppercase()));
        } else {
            out.push_str(&same_case(w, fake));
        }
    };
    for (i, c) in value.char_indices() {
        if c.is_alphanumeric() || c == '\'' {
            if word_start.is_none() {
                word_start = Some(i);
            }
        } else {
            if let Some(s) = word_start.take() {
                flush(&mut out, value.get(s..i).unwrap_or(""));
            }
            out.push(c);
        }
    }
    if let Some(s) = word_start {
        flush(&mut out, value.get(s..).unwrap_or(""));
    }
    out
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn month_index(word: &str) -> Option<u32> {
    let w = word.trim_end_matches('.').to_lowercase();
    if w.len() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .position(|m| {
            m.get(..w.len()).is_some_and(|p| p.eq_ignore_ascii_case(&w))
                || (w == "sept" && *m == "September")
        })
        .map(|i| i as u32 + 1)
}

/// Parses the common date layouts, shifts, and writes the result in the same layout.
pub(crate) fn shift_date(value: &str, shift: i64) -> Option<String> {
    let v = value.trim();
    // Split into alternating number / word pieces, remembering separators.
    let nums: Vec<&str> = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    let words: Vec<&str> = v
        .split(|c: char| !c.is_alphabetic())
        .filter(|s| !s.is_empty())
        .collect();
    if v.contains(':') {
        return None;
    }
    let month_word = words.iter().find_map(|w| month_index(w));
    let parse = |s: &str| s.parse::<i64>().ok();
    // (year, month, day, layout)
    enum Layout {
        Iso(char),
        Mdy(char, bool),
        Md(char),
        Worded,
    }
    let (y, m, d, layout, year_digits) = if let Some(m) = month_word {
        // "March 14th, 2019", "14-Mar-2019", "Mar 2021".
        let day = nums.iter().find(|n| n.len() <= 2).and_then(|n| parse(n));
        let year = nums.iter().find(|n| n.len() == 4).and_then(|n| parse(n));
        let yy = v
            .contains('\'')
            .then(|| nums.iter().find(|n| n.len() == 2).and_then(|n| parse(n)))
            .flatten();
        let y = year.or(yy.map(|y| 2000 + y));
        (y, i64::from(m), day, Layout::Worded, 4)
    } else if nums.len() == 3 && nums.first().is_some_and(|n| n.len() == 4) {
        let sep = v.chars().find(|c| !c.is_ascii_digit()).unwrap_or('-');
        (
            nums.first().and_then(|n| parse(n)),
            parse(nums.get(1)?)?,
            nums.get(2).and_then(|n| parse(n)),
            Layout::Iso(sep),
            4,
        )
    } else if nums.len() == 3 {
        let sep = v.chars().find(|c| !c.is_ascii_digit()).unwrap_or('/');
        let ylen = nums.get(2)?.len();
        let y = parse(nums.get(2)?)?;
        let y = if ylen == 2 { 2000 + y } else { y };
        let pad = nums.first().is_some_and(|n| n.len() == 2);
        (
            Some(y),
            parse(nums.first()?)?,
            nums.get(1).and_then(|n| parse(n)),
            Layout::Mdy(sep, pad),
            ylen,
        )
    } else if nums.len() == 2 && !v.contains('\'') {
        let sep = v.chars().find(|c| !c.is_ascii_digit()).unwrap_or('/');
        (
            None,
            parse(nums.first()?)?,
            nums.get(1).and_then(|n| parse(n)),
            Layout::Md(sep),
            0,
        )
    } else {
        return None;
    };
    if !(1..=12).contains(&m) {
        return None;
    }
    let Some(d) = d else {
        // Month and year only: shift the first of the month.
        let y = y?;
        let (ny, nm, _) = civil_from_days(days_from_civil(y, m as u32, 1) + shift);
        let name = MONTHS.get(nm as usize - 1)?;
        return Some(format!(
            "{} {ny}",
            same_case(words.first().copied().unwrap_or("A"), name)
        ));
    };
    if !(1..=31).contains(&d) {
        return None;
    }
    let ref_year = y.unwrap_or(2001);
    let (ny, nm, nd) = civil_from_days(days_from_civil(ref_year, m as u32, d as u32) + shift);
    Some(match layout {
        Layout::Iso(sep) => format!("{ny:04}{sep}{nm:02}{sep}{nd:02}"),
        Layout::Mdy(sep, pad) => {
            let yv = if year_digits == 2 {
                format!("{:02}", ny % 100)
            } else {
                format!("{ny}")
            };
            if pad {
                format!("{nm:02}{sep}{nd:02}{sep}{yv}")
            } else {
                format!("{nm}{sep}{nd}{sep}{yv}")
            }
        }
        Layout::Md(sep) => format!("{nm}{sep}{nd}"),
        Layout::Worded => {
            let name = MONTHS.get(nm as usize - 1)?;
            let model = words
                .iter()
                .find(|w| month_index(w).is_some())
                .copied()
                .unwrap_or("A");
            let short = model.trim_end_matches('.').len() <= 4
                && !model.eq_ignore_ascii_case("june")
                && !model.eq_ignore_ascii_case("july")
                || model.eq_ignore_ascii_case("sept");
            let mname = if short {
                name.get(..3).unwrap_or(name)
            } else {
                name
            };
            let mname = same_case(model, mname);
            let day_first = v.chars().next().is_some_and(|c| c.is_ascii_digit());
            let dash = v.contains('-');
            let year = y.map(|_| ny);
            match (day_first, dash, year) {
                (true, true, Some(yv)) => format!("{nd:02}-{mname}-{yv}"),
                (true, _, Some(yv)) => format!("{nd} {mname} {yv}"),
                (true, _, None) => format!("{nd} {mname}"),
                (false, _, Some(yv)) => format!("{mname} {nd}, {yv}"),
                (false, _, None) => format!("{mname} {nd}"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_shift_in_layout() {
        assert_eq!(shift_date("2019-03-14", 1).as_deref(), Some("2019-03-15"));
        assert_eq!(shift_date("3/14/2019", 20).as_deref(), Some("4/3/2019"));
        assert_eq!(shift_date("03/14/19", -14).as_deref(), Some("02/28/19"));
        assert_eq!(
            shift_date("14-Mar-2019", 365).as_deref(),
            Some("13-Mar-2020")
        );
        assert_eq!(
            shift_date("March 14th, 2019", 1).as_deref(),
            Some("March 15, 2019")
        );
        assert_eq!(shift_date("3/14", 1).as_deref(), Some("3/15"));
        assert_eq!(shift_date("10:30", 1), None);
    }

    #[test]
    fn month_words_match_in_any_case_and_keep_it() {
        assert_eq!(shift_date("MARCH 2019", 31).as_deref(), Some("APRIL 2019"));
        assert_eq!(shift_date("march 2019", 31).as_deref(), Some("april 2019"));
        assert_eq!(
            shift_date("sept 30, 2019", 1).as_deref(),
            Some("oct 1, 2019")
        );
        assert_eq!(
            shift_date("Dec 31, 2019", 1).as_deref(),
            Some("Jan 1, 2020")
        );
        assert_eq!(shift_date("Foo 2019", 1), None);
    }

    #[test]
    fn id_labels_are_kept_and_codes_replaced() {
        assert_eq!(label_end("Patient ID: ABCD1234"), 12);
        assert_eq!(label_end("ABCD1234"), 0);
        assert_eq!(label_end("case # MS-334455"), 7);
        assert_eq!(label_end("XKUA"), 0);
    }

    #[test]
    fn civil_round_trip() {
        for z in [-800_000i64, -1, 0, 1, 18_000, 60_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }
}
