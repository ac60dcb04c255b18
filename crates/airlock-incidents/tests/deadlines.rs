//! The breach-notification deadline calculator against a table of dates worked out by hand
//! (and checked with Python's `datetime`): year ends, leap years, 499/500/501 individuals,
//! several states, a business associate's term.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use airlock_incidents::deadlines::{Affected, DeadlineError, Notice, Status, compute};
use chrono::NaiveDate;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// (notice, state, due, rule) of every deadline, earliest first.
fn table(
    discovered: &str,
    affected: &str,
    ba: Option<u64>,
) -> Vec<(Notice, Option<String>, String, &'static str)> {
    let a = Affected::parse(affected).unwrap();
    compute(d(discovered), &a, ba, d(discovered))
        .unwrap()
        .deadlines
        .into_iter()
        .map(|x| (x.notice, x.state, x.due.to_string(), x.rule))
        .collect()
}

fn due(rows: &[(Notice, Option<String>, String, &'static str)], n: Notice) -> Vec<String> {
    rows.iter()
        .filter(|r| r.0 == n)
        .map(|r| r.2.clone())
        .collect()
}

#[test]
fn sixty_calendar_days_across_months_years_and_leap_years() {
    for (discovered, individuals) in [
        ("2026-03-01", "2026-04-30"),
        ("2024-01-01", "2024-03-01"), // leap year: 29 February counts
        ("2025-01-01", "2025-03-02"),
        ("2026-11-15", "2027-01-14"), // across the year's end
        ("2026-12-31", "2027-03-01"),
    ] {
        let rows = table(discovered, "MA=3", None);
        assert_eq!(
            due(&rows, Notice::Individuals),
            vec![individuals.to_string()],
            "{discovered}"
        );
    }
}

#[test]
fn the_secretarys_annual_log_for_fewer_than_500() {
    for (discovered, log) in [
        ("2024-06-01", "2025-03-01"),
        ("2023-06-01", "2024-02-29"), // the year after is a leap year
        ("2026-12-31", "2027-03-01"),
        ("2026-01-01", "2027-03-01"),
    ] {
        let rows = table(discovered, "MA=499", None);
        assert_eq!(due(&rows, Notice::Secretary), vec![log.to_string()]);
        assert!(rows.iter().any(|r| r.3 == "45 CFR 164.408(c)"));
        assert!(due(&rows, Notice::Media).is_empty());
    }
}

#[test]
fn thresholds_499_500_501() {
    // 499 in one state: annual log, no media.
    let r = table("2026-03-01", "CA=499", None);
    assert_eq!(due(&r, Notice::Secretary), vec!["2027-03-01"]);
    assert!(due(&r, Notice::Media).is_empty());
    // 500 in one state: the Secretary now (500 or more), but no media (more than 500).
    let r = table("2026-03-01", "CA=500", None);
    assert_eq!(due(&r, Notice::Secretary), vec!["2026-04-30"]);
    assert!(r.iter().any(|x| x.3 == "45 CFR 164.408(b)"));
    assert!(due(&r, Notice::Media).is_empty());
    // 501: media in that state too.
    let r = table("2026-03-01", "CA=501", None);
    assert_eq!(due(&r, Notice::Media), vec!["2026-04-30"]);
    assert_eq!(
        r.iter()
            .find(|x| x.0 == Notice::Media)
            .unwrap()
            .1
            .as_deref(),
        Some("CA")
    );
}

#[test]
fn several_states() {
    // 501 + 500 + 1: media in CA only; 1,002 in total: the Secretary with the individuals.
    let r = table("2026-03-01", "CA=501, ny=500, TX=1", None);
    let media: Vec<_> = r
        .iter()
        .filter(|x| x.0 == Notice::Media)
        .map(|x| x.1.clone().unwrap())
        .collect();
    assert_eq!(media, vec!["CA"]);
    assert_eq!(due(&r, Notice::Secretary), vec!["2026-04-30"]);
    // 300 + 300 across two states: 600 in total needs the Secretary now, no state's media.
    let r = table("2026-03-01", "CA=300,NY=300", None);
    assert_eq!(due(&r, Notice::Secretary), vec!["2026-04-30"]);
    assert!(due(&r, Notice::Media).is_empty());
    let r = table("2026-03-01", "CA=600,NY=700", None);
    assert_eq!(due(&r, Notice::Media).len(), 2);
}

#[test]
fn a_business_associates_term() {
    let r = table("2026-03-01", "MA=10", Some(30));
    assert_eq!(r[0].0, Notice::CoveredEntity);
    assert_eq!(r[0].2, "2026-03-31");
    assert_eq!(r[0].3, "45 CFR 164.410(b)");
    let a = Affected::parse("MA=10").unwrap();
    assert_eq!(
        compute(d("2026-03-01"), &a, Some(61), d("2026-03-01")),
        Err(DeadlineError::AgreementTerm(61))
    );
}

#[test]
fn status_on_a_given_day() {
    let a = Affected::parse("MA=10").unwrap();
    let at = |today: &str| {
        let x = compute(d("2026-03-01"), &a, None, d(today)).unwrap();
        let i = x
            .deadlines
            .iter()
            .find(|x| x.notice == Notice::Individuals)
            .unwrap()
            .clone();
        (i.status, i.days_left)
    };
    assert_eq!(at("2026-03-01"), (Status::Pending, 60));
    assert_eq!(at("2026-04-30"), (Status::DueToday, 0));
    assert_eq!(at("2026-05-02"), (Status::Overdue, -2));
}

#[test]
fn bad_affected_lists_are_named() {
    for (text, want) in [
        ("CA", "affected item 0"),
        ("CA=1,NY=x", "affected item 1"),
        ("=4", "affected item 0"),
        ("CA=-1", "affected item 0"),
    ] {
        let e = Affected::parse(text).unwrap_err().to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
    assert_eq!(
        Affected::parse("CA=1,ca=2"),
        Err(DeadlineError::Duplicate("CA".into()))
    );
    assert_eq!(Affected::parse("CA=2, NY=3").unwrap().total(), 5);
}

#[test]
fn the_json_shape() {
    let a = Affected::parse("CA=501").unwrap();
    let x = compute(d("2026-03-01"), &a, None, d("2026-03-02")).unwrap();
    let v = serde_json::to_value(&x).unwrap();
    let media = v["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["notice"] == "media")
        .unwrap();
    assert_eq!(media["state"], "CA");
    assert_eq!(media["due"], "2026-04-30");
    assert_eq!(media["rule"], "45 CFR 164.406(b)");
    assert_eq!(media["status"], "pending");
    assert_eq!(v["total"], 501);
}

#[test]
fn the_letter_covers_164_404_c_and_holds_no_value() {
    let a = Affected::parse("CA=501").unwrap();
    let x = compute(d("2026-03-01"), &a, None, d("2026-03-02")).unwrap();
    let letter = airlock_incidents::individual_letter(&x);
    for element in ["(A)", "(B)", "(C)", "(D)", "(E)"] {
        assert!(
            letter.contains(&format!("164.404(c)(1){element}")),
            "{element}"
        );
    }
    assert!(letter.contains("no later than 2026-04-30"));
    assert!(letter.contains("We discovered it on 2026-03-01"));
}
