//! Detection rules over the audit ledger: which entries suggest a security incident? Each
//! finding cites the entries (ledger indices) behind it, names the actor and the window, and
//! carries counts only, never a patient or a value. Thresholds are TOML ([`Rules`]); the
//! defaults ship in `default_rules.toml`.
//!
//! - `patient_volume`: an actor reading far more distinct patients in a window than usual:
//!   a robust z-score (median and MAD) over the actor's own earlier windows; with too little
//!   history, the windows of peers holding the same role; with neither, a fixed ceiling.
//! - `off_hours`: patient reads at an hour of the day the actor almost never works (learnt from
//!   the actor's own history: hospitals run at night, so there are no fixed office hours).
//! - `break_glass`: an emergency access not reviewed within the configured time.
//! - `failed_logins`: a burst of failed logins (or a lockout) against one account.
//! - `refusals`: a burst of refused requests by one actor.
//! - `releases`: exports, disclosures and DP releases by one actor at unusual volume.
//! - `leak_check`: a de-identification run refused because its leak check found identifiers.
//! - `ledger`: the ledger failed verification.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use airlock_ledger::{Entry, EventType, OutcomeKind};
use chrono::{DateTime, Duration, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// The rules Airlock ships.
pub const DEFAULT_RULES: &str = include_str!("default_rules.toml");

/// Entries a finding cites at most (its `count` says how many there were).
pub const MAX_CITED: usize = 1000;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Triage soon.
    Medium,
    /// Triage now.
    High,
    /// The records themselves are in doubt.
    Critical,
}

/// Why rules cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// Not valid TOML, or not the rules' shape.
    #[error("detection rules: {0}")]
    Toml(String),
    /// A value out of range.
    #[error("detection rules: `{field}` {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// `[patient_volume]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientVolume {
    /// The window distinct patients are counted in.
    pub window_minutes: u32,
    /// Never a finding below this many distinct patients in a window.
    pub min_patients: u64,
    /// The robust z-score (0.6745 (x − median) / MAD) at or above which a window is unusual.
    pub z: f64,
    /// Earlier windows of the actor's own before its baseline counts.
    pub min_history: usize,
    /// With too little history: unusual above this many times the peers' median window.
    pub peer_factor: f64,
    /// With neither history nor peers: unusual at or above this many patients in a window.
    pub ceiling: u64,
    /// The events that read a patient's data (`access`, `disclosure`, `export`...).
    pub events: Vec<String>,
    /// Severity.
    pub severity: Severity,
}

/// `[off_hours]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffHours {
    /// Earlier working hours of the actor's (distinct day and hour slots with a read) before
    /// its usual hours are learnt.
    pub min_history: usize,
    /// An hour of the day holding less than this share of the actor's earlier working hours
    /// is unusual for it.
    pub usual_share: f64,
    /// The deployment's offset from UTC in hours (its hours of the day).
    pub utc_offset_hours: i32,
    /// Severity.
    pub severity: Severity,
}

/// `[break_glass]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlass {
    /// Hours within which an emergency access must be reviewed.
    pub review_hours: u32,
    /// Severity.
    pub severity: Severity,
}

/// A burst rule: `count` qualifying entries by one actor within `window_minutes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    /// Entries in the window that make a burst.
    pub count: usize,
    /// The window.
    pub window_minutes: u32,
    /// Severity.
    pub severity: Severity,
}

/// `[leak_check]`, `[ledger]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Single {
    /// Severity.
    pub severity: Severity,
}

/// The detection rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Distinct patients read per window.
    pub patient_volume: PatientVolume,
    /// Patient reads at unusual hours.
    pub off_hours: OffHours,
    /// Unreviewed emergency access.
    pub break_glass: BreakGlass,
    /// Failed logins against one account.
    pub failed_logins: Burst,
    /// Refused requests by one actor.
    pub refusals: Burst,
    /// Exports, disclosures and DP releases by one actor.
    pub releases: Burst,
    /// De-identification runs whose leak check failed.
    pub leak_check: Single,
    /// The ledger failing verification.
    pub ledger: Single,
}

impl Rules {
    /// Parse and check rules.
    pub fn from_toml(text: &str) -> Result<Self, RulesError> {
        let r: Rules =
            toml::from_str(text).map_err(|e| RulesError::Toml(e.message().to_owned()))?;
        let bad = |field, reason| Err(RulesError::Invalid { field, reason });
        if r.patient_volume.window_minutes == 0 {
            return bad("patient_volume.window_minutes", "must be at least 1");
        }
        if !(r.patient_volume.z.is_finite() && r.patient_volume.z > 0.0) {
            return bad("patient_volume.z", "must be a positive number");
        }
        if !(r.patient_volume.peer_factor.is_finite() && r.patient_volume.peer_factor >= 1.0) {
            return bad("patient_volume.peer_factor", "must be at least 1");
        }
        for e in &r.patient_volume.events {
            if !EventType::ALL.iter().any(|t| t.as_str() == e) {
                return bad("patient_volume.events", "names an unknown event type");
            }
        }
        if !(0.0..1.0).contains(&r.off_hours.usual_share) {
            return bad("off_hours.usual_share", "must be in [0, 1)");
        }
        if !(-14..=14).contains(&r.off_hours.utc_offset_hours) {
            return bad("off_hours.utc_offset_hours", "must be within -14..14");
        }
        for (field, b) in [
            ("failed_logins", &r.failed_logins),
            ("refusals", &r.refusals),
            ("releases", &r.releases),
        ] {
            if b.count < 2 || b.window_minutes == 0 {
                return bad(field, "needs count >= 2 and window_minutes >= 1");
            }
        }
        Ok(r)
    }

    /// Airlock's defaults.
    pub fn defaults() -> Self {
        // The shipped file is checked by a test; an error here would be a build defect.
        Rules::from_toml(DEFAULT_RULES).unwrap_or_else(|_| unreachable_defaults())
    }
}

#[expect(
    clippy::panic,
    reason = "the shipped rules parse (tested); unreachable"
)]
fn unreachable_defaults() -> Rules {
    panic!("the shipped detection rules do not parse")
}

/// What a scan is told besides the entries.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The time the scan runs at (break-glass review deadlines).
    pub now: Option<DateTime<Utc>>,
    /// Each actor's roles, for peer baselines (`clinician`...).
    pub roles: BTreeMap<String, Vec<String>>,
    /// The ledger's verification: `Some(Err(why))` when it failed.
    pub verified: Option<Result<(), String>>,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The rule (`patient_volume`...).
    pub rule: String,
    /// How serious.
    pub severity: Severity,
    /// Who (the ledger's actor).
    pub actor: String,
    /// The first cited entry's time.
    pub from: String,
    /// The last cited entry's time.
    pub to: String,
    /// What was seen, in words and counts (no patient, no value).
    pub summary: String,
    /// Entries behind it.
    pub count: usize,
    /// Their ledger indices (at most [`MAX_CITED`]).
    pub entries: Vec<u64>,
}

fn finding(
    rule: &str,
    severity: Severity,
    actor: &str,
    cited: &[(u64, &Entry)],
    summary: String,
) -> Finding {
    let times = cited.iter().map(|(_, e)| e.time);
    let from = times
        .clone()
        .min()
        .map(|t| t.to_string())
        .unwrap_or_default();
    let to = times.max().map(|t| t.to_string()).unwrap_or_default();
    Finding {
        rule: rule.to_owned(),
        severity,
        actor: actor.to_owned(),
        from,
        to,
        summary,
        count: cited.len(),
        entries: cited.iter().take(MAX_CITED).map(|(i, _)| *i).collect(),
    }
}

/// Run every rule over `entries` (in ledger order). Findings come rule by rule, each rule's in
/// time order.
pub fn scan(entries: &[(u64, Entry)], rules: &Rules, ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(Err(why)) = &ctx.verified {
        out.push(Finding {
            rule: "ledger".into(),
            severity: rules.ledger.severity,
            actor: String::new(),
            from: String::new(),
            to: String::new(),
            summary: format!("the ledger failed verification: {why}"),
            count: 0,
            entries: Vec::new(),
        });
    }
    out.extend(patient_volume(entries, &rules.patient_volume, ctx));
    out.extend(off_hours(entries, &rules.off_hours));
    out.extend(break_glass(entries, &rules.break_glass, ctx));
    out.extend(bursts(
        entries,
        &rules.failed_logins,
        "failed_logins",
        |e| e.event == EventType::Login && e.outcome.result == OutcomeKind::Failure,
        |n, e| {
            let locked = e
                .iter()
                .filter(|(_, x)| x.outcome.reason.as_deref() == Some("account locked"))
                .count();
            format!(
                "{n} failed logins{}",
                if locked > 0 {
                    format!(" ({locked} against a locked account)")
                } else {
                    String::new()
                }
            )
        },
    ));
    out.extend(bursts(
        entries,
        &rules.refusals,
        "refusals",
        |e| e.outcome.result == OutcomeKind::Denied,
        |n, _| format!("{n} refused requests"),
    ));
    out.extend(bursts(
        entries,
        &rules.releases,
        "releases",
        |e| {
            matches!(
                e.event,
                EventType::Export | EventType::Disclosure | EventType::DpRelease
            ) && matches!(
                e.outcome.result,
                OutcomeKind::Success | OutcomeKind::Allowed
            )
        },
        |n, _| format!("{n} exports, disclosures or DP releases"),
    ));
    for (i, e) in entries {
        if e.event == EventType::DeidRun
            && e.outcome.result == OutcomeKind::Failure
            && e.outcome
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("leak check found identifying values"))
        {
            out.push(finding(
                "leak_check",
                rules.leak_check.severity,
                e.actor.as_str(),
                &[(*i, e)],
                "a de-identification run was refused: its leak check found identifying values in the output".into(),
            ));
        }
    }
    out
}

/// Median of a non-empty slice (sorted in place).
fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match (xs.get(n / 2), n.checked_sub(1).and_then(|m| xs.get(m / 2))) {
        (Some(&hi), Some(&lo)) if n.is_multiple_of(2) => (hi + lo) / 2.0,
        (Some(&mid), _) => mid,
        _ => 0.0,
    }
}

/// One window's reads: the distinct patients (pseudonyms), and the entries.
type Reads<'a> = (HashSet<&'a str>, Vec<(u64, &'a Entry)>);

/// An actor's working hours: reads per hour of the day, counted once per (day, hour) slot.
type Hours = ([usize; 24], HashSet<(i64, usize)>);

/// One actor's window: its start, the distinct patients in it, the entries.
struct Window<'a> {
    start: i64,
    patients: usize,
    cited: Vec<(u64, &'a Entry)>,
}

fn patient_volume(entries: &[(u64, Entry)], r: &PatientVolume, ctx: &Context) -> Vec<Finding> {
    let width = i64::from(r.window_minutes) * 60;
    // actor -> window start -> (patients, entries)
    let mut per: BTreeMap<&str, BTreeMap<i64, Reads>> = BTreeMap::new();
    for (i, e) in entries {
        let Some(p) = &e.patient else { continue };
        if !r.events.iter().any(|x| x == e.event.as_str()) {
            continue;
        }
        if !matches!(
            e.outcome.result,
            OutcomeKind::Success | OutcomeKind::Allowed
        ) {
            continue;
        }
        let start = e.time.get().timestamp().div_euclid(width) * width;
        let w = per
            .entry(e.actor.as_str())
            .or_default()
            .entry(start)
            .or_default();
        w.0.insert(p.as_str());
        w.1.push((*i, e));
    }
    let windows: BTreeMap<&str, Vec<Window>> = per
        .into_iter()
        .map(|(a, ws)| {
            let v = ws
                .into_iter()
                .map(|(start, (ps, cited))| Window {
                    start,
                    patients: ps.len(),
                    cited,
                })
                .collect();
            (a, v)
        })
        .collect();
    let mut out = Vec::new();
    for (actor, ws) in &windows {
        let peers: Vec<&str> = ctx
            .roles
            .get(*actor)
            .map(|roles| {
                windows
                    .keys()
                    .copied()
                    .filter(|other| other != actor)
                    .filter(|other| {
                        ctx.roles
                            .get(*other)
                            .is_some_and(|theirs| theirs.iter().any(|t| roles.contains(t)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (k, w) in ws.iter().enumerate() {
            let x = w.patients as f64;
            if (w.patients as u64) < r.min_patients {
                continue;
            }
            let history: Vec<f64> = ws
                .get(..k)
                .unwrap_or_default()
                .iter()
                .map(|h| h.patients as f64)
                .collect();
            let why = if history.len() >= r.min_history {
                let mut h = history;
                let med = median(&mut h);
                let mut dev: Vec<f64> = h.iter().map(|v| (v - med).abs()).collect();
                // A flat history has no spread: one patient stands for it.
                let mad = median(&mut dev).max(1.0);
                let z = 0.6745 * (x - med) / mad;
                (z >= r.z).then(|| {
                    format!(
                        "{} distinct patients read in {} minutes; the actor's usual window: {med:.0} (robust z {z:.1} over {} earlier windows)",
                        w.patients,
                        r.window_minutes,
                        k
                    )
                })
            } else {
                let mut pool: Vec<f64> = peers
                    .iter()
                    .filter_map(|p| windows.get(p))
                    .flatten()
                    .filter(|pw| pw.start <= w.start)
                    .map(|pw| pw.patients as f64)
                    .collect();
                if pool.len() >= r.min_history {
                    let med = median(&mut pool);
                    (x > r.peer_factor * med.max(1.0)).then(|| {
                        format!(
                            "{} distinct patients read in {} minutes; peers with the same role read {med:.0} in their median window ({} windows); the actor has {k} earlier window(s)",
                            w.patients,
                            r.window_minutes,
                            pool.len()
                        )
                    })
                } else {
                    (w.patients as u64 >= r.ceiling).then(|| {
                        format!(
                            "{} distinct patients read in {} minutes, with no baseline to compare (at least {} is a finding)",
                            w.patients, r.window_minutes, r.ceiling
                        )
                    })
                }
            };
            if let Some(summary) = why {
                out.push(finding(
                    "patient_volume",
                    r.severity,
                    actor,
                    &w.cited,
                    summary,
                ));
            }
        }
    }
    out.sort_by(|a, b| a.from.cmp(&b.from));
    out
}

fn off_hours(entries: &[(u64, Entry)], r: &OffHours) -> Vec<Finding> {
    let offset = Duration::hours(i64::from(r.utc_offset_hours));
    // Per actor: the distinct (day, hour) slots it has read in, and how many fall in each hour
    // of the day. Slots, not reads: one busy hour does not outweigh a month of shifts.
    let mut seen: HashMap<&str, Hours> = HashMap::new();
    let mut out = Vec::new();
    for (i, e) in entries {
        if e.patient.is_none()
            || e.event != EventType::Access
            || !matches!(
                e.outcome.result,
                OutcomeKind::Success | OutcomeKind::Allowed
            )
        {
            continue;
        }
        let local = e.time.get() + offset;
        let hour = usize::try_from(local.hour()).unwrap_or(0) % 24;
        let day = local.timestamp().div_euclid(86_400);
        let (counts, slots) = seen.entry(e.actor.as_str()).or_default();
        if slots.contains(&(day, hour)) {
            continue;
        }
        let total = slots.len();
        let at = counts.get(hour).copied().unwrap_or(0);
        if total >= r.min_history && (at as f64) < r.usual_share * total as f64 {
            out.push(finding(
                "off_hours",
                r.severity,
                e.actor.as_str(),
                &[(*i, e)],
                format!(
                    "a patient record read at {hour:02}:00-{:02}:00 (UTC{:+}), an hour of the day in {at} of the actor's {total} earlier working hours",
                    (hour + 1) % 24,
                    r.utc_offset_hours
                ),
            ));
        }
        slots.insert((day, hour));
        if let Some(c) = counts.get_mut(hour) {
            *c += 1;
        }
    }
    out
}

fn break_glass(entries: &[(u64, Entry)], r: &BreakGlass, ctx: &Context) -> Vec<Finding> {
    let reviewed: BTreeSet<&str> = entries
        .iter()
        .filter(|(_, e)| {
            e.event == EventType::BreakGlassStop
                && e.outcome
                    .reason
                    .as_deref()
                    .is_some_and(|x| x.starts_with("reviewed"))
        })
        .flat_map(|(_, e)| e.resources.iter().map(String::as_str))
        .collect();
    let Some(now) = ctx.now else {
        return Vec::new();
    };
    let limit = Duration::hours(i64::from(r.review_hours));
    entries
        .iter()
        .filter(|(_, e)| {
            e.event == EventType::BreakGlassStart
                && matches!(
                    e.outcome.result,
                    OutcomeKind::Success | OutcomeKind::Allowed
                )
        })
        .filter(|(_, e)| now - e.time.get() > limit)
        .filter(|(_, e)| {
            !e.resources
                .iter()
                .any(|x| x.starts_with("break-glass:") && reviewed.contains(x.as_str()))
        })
        .map(|(i, e)| {
            finding(
                "break_glass",
                r.severity,
                e.actor.as_str(),
                &[(*i, e)],
                format!(
                    "emergency access not reviewed within {} hours ({} hours ago)",
                    r.review_hours,
                    (now - e.time.get()).num_hours()
                ),
            )
        })
        .collect()
}

/// Bursts of entries matching `keep` per actor: at least `count` within `window_minutes`;
/// overlapping windows merge into one finding.
fn bursts(
    entries: &[(u64, Entry)],
    r: &Burst,
    rule: &str,
    keep: impl Fn(&Entry) -> bool,
    describe: impl Fn(usize, &[(u64, &Entry)]) -> String,
) -> Vec<Finding> {
    let width = Duration::minutes(i64::from(r.window_minutes));
    let mut per: BTreeMap<&str, Vec<(u64, &Entry)>> = BTreeMap::new();
    for (i, e) in entries {
        if keep(e) {
            per.entry(e.actor.as_str()).or_default().push((*i, e));
        }
    }
    let mut out = Vec::new();
    for (actor, mut xs) in per {
        xs.sort_by_key(|(i, e)| (e.time, *i));
        // Mark every entry inside some window holding `count` or more.
        let mut inside = vec![false; xs.len()];
        let mut lo = 0;
        // Entries before this are marked already: each is marked once (linear in a long burst).
        let mut unmarked = 0;
        for hi in 0..xs.len() {
            let Some(&(_, h)) = xs.get(hi) else { continue };
            while xs
                .get(lo)
                .is_some_and(|(_, l)| h.time.get() - l.time.get() > width)
            {
                lo += 1;
            }
            if hi + 1 - lo >= r.count {
                for flag in inside.get_mut(lo.max(unmarked)..=hi).into_iter().flatten() {
                    *flag = true;
                }
                unmarked = hi + 1;
            }
        }
        // Consecutive marked entries are one burst, unless a window's length separates them.
        let marked: Vec<((u64, &Entry), bool)> = xs.into_iter().zip(inside).collect();
        for run in
            marked.chunk_by(|a, b| a.1 == b.1 && b.0.1.time.get() - a.0.1.time.get() <= width)
        {
            if run.first().is_some_and(|(_, inside)| *inside) {
                let cited: Vec<(u64, &Entry)> = run.iter().map(|(x, _)| *x).collect();
                let summary = format!(
                    "{} within {} minutes",
                    describe(cited.len(), &cited),
                    r.window_minutes
                );
                out.push(finding(rule, r.severity, actor, &cited, summary));
            }
        }
    }
    out.sort_by(|a, b| a.from.cmp(&b.from));
    out
}
