//! Scripted scenarios for each detection rule: the right finding, citing the right entries,
//! and nothing on ordinary activity around it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use airlock_incidents::detect::{Context, DEFAULT_RULES, Finding, Rules, Severity, scan};
use airlock_ledger::{Entry, EventType, OutcomeKind, PatientPseudonym, Timestamp};
use airlock_types::{ActorId, RequestId, Zone};
use chrono::{DateTime, Duration, TimeZone, Utc};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
}

fn patient(n: u64) -> PatientPseudonym {
    PatientPseudonym::new(format!("{n:064x}")).unwrap()
}

/// A ledger under construction.
#[derive(Default)]
struct Log {
    entries: Vec<(u64, Entry)>,
}

impl Log {
    fn push(&mut self, e: Entry) -> u64 {
        let i = self.entries.len() as u64;
        self.entries.push((i, e));
        i
    }

    fn add(
        &mut self,
        at: DateTime<Utc>,
        actor: &str,
        event: EventType,
        outcome: OutcomeKind,
    ) -> Entry {
        let _ = self;
        Entry::new(
            Timestamp::new(at),
            ActorId::new(actor).unwrap(),
            event,
            Zone::Clinical,
            RequestId::from_bytes([7; 16]),
            outcome,
        )
    }

    fn read(&mut self, at: DateTime<Utc>, actor: &str, p: u64) -> u64 {
        let e = self
            .add(at, actor, EventType::Access, OutcomeKind::Success)
            .with_patient(patient(p))
            .with_resource("patient-record:clinical");
        self.push(e)
    }

    /// `days` ordinary working days for `actor`: 20 reads of its own 30 patients, 09:00-16:00.
    fn ordinary_days(&mut self, actor: &str, days: i64, from: DateTime<Utc>) {
        for d in 0..days {
            for k in 0..20 {
                let at = from + Duration::days(d) + Duration::minutes(k * 21);
                self.read(at, actor, (k as u64 * 7 + d as u64) % 30);
            }
        }
    }
}

fn rules() -> Rules {
    Rules::from_toml(DEFAULT_RULES).unwrap()
}

fn run(log: &Log, ctx: &Context) -> Vec<Finding> {
    scan(&log.entries, &rules(), ctx)
}

fn of<'a>(fs: &'a [Finding], rule: &str) -> Vec<&'a Finding> {
    fs.iter().filter(|f| f.rule == rule).collect()
}

#[test]
fn the_shipped_rules_parse_and_bad_ones_are_named() {
    let r = Rules::defaults();
    assert_eq!(r.failed_logins.count, 5);
    let bad = DEFAULT_RULES.replace("z = 3.5", "z = -1");
    assert!(
        Rules::from_toml(&bad)
            .unwrap_err()
            .to_string()
            .contains("patient_volume.z")
    );
    let bad = DEFAULT_RULES.replace("\"access\",", "\"acces\",");
    assert!(
        Rules::from_toml(&bad)
            .unwrap_err()
            .to_string()
            .contains("patient_volume.events")
    );
    let bad = DEFAULT_RULES.replace("[ledger]", "[ledgr]");
    assert!(Rules::from_toml(&bad).is_err());
}

#[test]
fn a_clinician_reading_300_patients_in_an_hour() {
    let mut log = Log::default();
    log.ordinary_days("dr-grey", 10, t0());
    // A colleague works as usual the same days: never a finding.
    log.ordinary_days("dr-house", 10, t0());
    let day = t0() + Duration::days(10);
    let mut browsing = Vec::new();
    for p in 0..300 {
        browsing.push(log.read(day + Duration::seconds(p * 11), "dr-grey", 1000 + p as u64));
    }
    let fs = run(&log, &Context::default());
    let v = of(&fs, "patient_volume");
    assert_eq!(v.len(), 1, "{fs:#?}");
    assert_eq!(v[0].actor, "dr-grey");
    assert_eq!(v[0].severity, Severity::High);
    assert_eq!(v[0].entries, browsing);
    assert!(
        v[0].summary
            .starts_with("300 distinct patients read in 60 minutes"),
        "{}",
        v[0].summary
    );
    assert!(v[0].summary.contains("robust z"), "{}", v[0].summary);
    // No patient in a finding.
    let text = serde_json::to_string(&fs).unwrap();
    assert!(!text.contains(patient(1000).as_str()));
}

#[test]
fn a_new_actor_against_its_peers_and_against_the_ceiling() {
    let mut log = Log::default();
    log.ordinary_days("dr-house", 10, t0());
    let day = t0() + Duration::days(10);
    // 80 patients in an hour: under the ceiling (100), but over 5x the peers' median (20).
    for p in 0..80 {
        log.read(day + Duration::seconds(p * 30), "dr-new", 2000 + p as u64);
    }
    let mut ctx = Context::default();
    ctx.roles
        .insert("dr-house".into(), vec!["clinician".into()]);
    ctx.roles.insert("dr-new".into(), vec!["clinician".into()]);
    let fs = run(&log, &ctx);
    let v = of(&fs, "patient_volume");
    assert_eq!(v.len(), 1, "{fs:#?}");
    assert!(
        v[0].summary.contains("peers with the same role"),
        "{}",
        v[0].summary
    );
    // Without roles there are no peers: 80 is under the ceiling.
    assert!(of(&run(&log, &Context::default()), "patient_volume").is_empty());
}

#[test]
fn a_3_am_access() {
    let mut log = Log::default();
    // Three working weeks, 09:00-16:00.
    log.ordinary_days("dr-grey", 15, t0());
    let night = Utc.with_ymd_and_hms(2026, 11, 18, 3, 12, 0).unwrap();
    let i = log.read(night, "dr-grey", 5);
    // A night-shift colleague's 3 a.m. reads are ordinary for her.
    for d in 0..15 {
        for k in 0..5 {
            log.read(
                Utc.with_ymd_and_hms(2026, 11, 2, 2, 0, 0).unwrap()
                    + Duration::days(d)
                    + Duration::minutes(k * 20),
                "dr-night",
                k as u64,
            );
        }
    }
    log.read(night, "dr-night", 6);
    let fs = run(&log, &Context::default());
    let v = of(&fs, "off_hours");
    assert_eq!(v.len(), 1, "{fs:#?}");
    assert_eq!(
        (v[0].actor.as_str(), v[0].entries.clone()),
        ("dr-grey", vec![i])
    );
    assert!(v[0].summary.contains("03:00-04:00"), "{}", v[0].summary);
}

#[test]
fn an_unreviewed_break_glass() {
    let mut log = Log::default();
    let start = |log: &mut Log, id: &str, at| {
        let e = log
            .add(
                at,
                "dr-grey",
                EventType::BreakGlassStart,
                OutcomeKind::Success,
            )
            .with_resource(format!("break-glass:{id}"))
            .with_patient(patient(9));
        log.push(e)
    };
    let old = start(&mut log, "g1", t0());
    let reviewed = start(&mut log, "g2", t0());
    let e = log
        .add(
            t0() + Duration::hours(3),
            "pat-privacy",
            EventType::BreakGlassStop,
            OutcomeKind::Success,
        )
        .with_resource("break-glass:g2")
        .with_reason("reviewed: justified");
    log.push(e);
    let recent = start(&mut log, "g3", t0() + Duration::hours(40));
    let ctx = Context {
        now: Some(t0() + Duration::hours(48)),
        ..Context::default()
    };
    let fs = run(&log, &ctx);
    let v = of(&fs, "break_glass");
    assert_eq!(v.len(), 1, "{fs:#?}");
    assert_eq!(v[0].entries, vec![old]);
    assert!(
        v[0].summary
            .contains("not reviewed within 24 hours (48 hours ago)")
    );
    let _ = (reviewed, recent);
}

#[test]
fn a_burst_of_failed_logins() {
    let mut log = Log::default();
    let fail = |log: &mut Log, at, actor: &str, reason: &str| {
        let e = log
            .add(at, actor, EventType::Login, OutcomeKind::Failure)
            .with_reason(reason);
        log.push(e)
    };
    // Four typos spread over a day: ordinary.
    for h in [1, 5, 9, 13] {
        fail(
            &mut log,
            t0() + Duration::hours(h),
            "dr-house",
            "invalid credentials",
        );
    }
    // Seven in five minutes against one account, the last two after it locked.
    let mut burst = Vec::new();
    for k in 0..7 {
        let reason = if k < 5 {
            "invalid credentials"
        } else {
            "account locked"
        };
        burst.push(fail(
            &mut log,
            t0() + Duration::seconds(40 * k),
            "dr-grey",
            reason,
        ));
    }
    let fs = run(&log, &Context::default());
    let v = of(&fs, "failed_logins");
    assert_eq!(v.len(), 1, "{fs:#?}");
    assert_eq!(v[0].entries, burst);
    assert_eq!(
        v[0].summary,
        "7 failed logins (2 against a locked account) within 15 minutes"
    );
}

#[test]
fn a_burst_of_refusals_and_of_releases() {
    let mut log = Log::default();
    let mut refused = Vec::new();
    for k in 0..25 {
        let e = log.add(
            t0() + Duration::seconds(10 * k),
            "dana",
            EventType::PolicyDecision,
            OutcomeKind::Denied,
        );
        refused.push(log.push(e));
    }
    // Releases: 19 in a day is ordinary, 30 is not.
    for k in 0..19 {
        let e = log.add(
            t0() + Duration::minutes(60 * k),
            "erin",
            EventType::Export,
            OutcomeKind::Success,
        );
        log.push(e);
    }
    for k in 0..30 {
        let e = log.add(
            t0() + Duration::minutes(10 * k),
            "dana",
            EventType::DpRelease,
            OutcomeKind::Success,
        );
        log.push(e);
    }
    let fs = run(&log, &Context::default());
    let r = of(&fs, "refusals");
    assert_eq!(r.len(), 1, "{fs:#?}");
    assert_eq!(r[0].entries, refused);
    let x = of(&fs, "releases");
    assert_eq!(x.len(), 1, "{fs:#?}");
    assert_eq!((x[0].actor.as_str(), x[0].count), ("dana", 30));
}

#[test]
fn a_failed_leak_check_and_a_ledger_that_does_not_verify() {
    let mut log = Log::default();
    let e = log
        .add(t0(), "privacy-officer", EventType::DeidRun, OutcomeKind::Failure)
        .with_reason("profile safe-harbor: the leak check found identifying values in the output (3 hits in notes.txt): ...");
    let i = log.push(e);
    // A run refused for another reason is not a leak.
    let e = log
        .add(
            t0(),
            "privacy-officer",
            EventType::DeidRun,
            OutcomeKind::Failure,
        )
        .with_reason("profile expert: needs a signed determination");
    log.push(e);
    let ctx = Context {
        verified: Some(Err("entry 17's leaf hash does not match tile".into())),
        ..Context::default()
    };
    let fs = run(&log, &ctx);
    let l = of(&fs, "leak_check");
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].entries, vec![i]);
    let g = of(&fs, "ledger");
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].severity, Severity::Critical);
}

#[test]
fn ordinary_activity_raises_nothing() {
    let mut log = Log::default();
    for actor in ["dr-grey", "dr-house", "dr-wilson"] {
        log.ordinary_days(actor, 20, t0());
    }
    for k in 0..3 {
        let e = log
            .add(
                t0() + Duration::hours(k * 7),
                "dr-house",
                EventType::Login,
                OutcomeKind::Failure,
            )
            .with_reason("invalid credentials");
        log.push(e);
    }
    let ctx = Context {
        now: Some(t0() + Duration::days(21)),
        verified: Some(Ok(())),
        ..Context::default()
    };
    let fs = run(&log, &ctx);
    assert!(fs.is_empty(), "{fs:#?}");
}

#[test]
fn two_bursts_an_hour_apart_are_two_findings() {
    let mut log = Log::default();
    let mut runs = [Vec::new(), Vec::new()];
    for (k, run) in runs.iter_mut().enumerate() {
        for s in 0..22 {
            let at = t0() + Duration::hours(k as i64) + Duration::seconds(s * 5);
            let e = log.add(at, "dana", EventType::PolicyDecision, OutcomeKind::Denied);
            run.push(log.push(e));
        }
    }
    let fs = run(&log, &Context::default());
    let r = of(&fs, "refusals");
    assert_eq!(r.len(), 2, "{fs:#?}");
    assert_eq!(r[0].entries, runs[0]);
    assert_eq!(r[1].entries, runs[1]);
}
