//! Breach-notification deadlines (45 CFR 164.404–410), from the date a breach was discovered
//! and the number of affected individuals by state of residence:
//!
//! - individuals: without unreasonable delay, at the latest 60 calendar days after discovery
//!   (164.404(b));
//! - prominent media serving a state, for each state with **more than** 500 affected residents
//!   (exactly 500 is not enough), within the same 60 days (164.406(a), (b));
//! - the Secretary: with the individuals' notice when 500 or more are affected in total
//!   (164.408(b)); otherwise in the annual log, within 60 days after the end of the calendar
//!   year in which the breach was discovered (164.408(c));
//! - a business associate to its covered entity: without unreasonable delay, at the latest 60
//!   days after discovery, or sooner where the agreement says so (164.410(b)).
//!
//! "Calendar days" are counted from the day after discovery: a breach discovered on 1 March
//! is due on 30 April.

use std::collections::BTreeMap;

use chrono::{Datelike, Days, NaiveDate};
use serde::Serialize;

/// The most days any notice may wait after discovery.
pub const MAX_DAYS: u64 = 60;
/// More than this many residents of a state need notice to the media there.
pub const MEDIA_THRESHOLD: u64 = 500;
/// This many or more in total need the Secretary told with the individuals.
pub const SECRETARY_THRESHOLD: u64 = 500;

/// Why deadlines cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadlineError {
    /// An `--affected` item is not `STATE=N`.
    #[error(
        "affected item {index}: expected STATE=N (a state or jurisdiction code and a count), got `{item}`"
    )]
    Affected {
        /// Its position (0-based).
        index: usize,
        /// The item (a code and a count: no PHI).
        item: String,
    },
    /// A state named twice.
    #[error("state `{0}` is named twice")]
    Duplicate(String),
    /// A business associate agreement's term beyond the rule's 60 days.
    #[error("a business associate agreement may shorten the 60 days, not lengthen them (got {0})")]
    AgreementTerm(u64),
    /// A date beyond the calendar.
    #[error("a deadline falls outside the calendar")]
    OutOfRange,
}

/// Affected individuals by state (or jurisdiction) of residence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Affected {
    /// Count per state code.
    pub by_state: BTreeMap<String, u64>,
}

impl Affected {
    /// Parse `STATE=N,STATE=N` (codes upper-cased; whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, DeadlineError> {
        let mut by_state = BTreeMap::new();
        for (index, item) in text.split(',').map(str::trim).enumerate() {
            if item.is_empty() {
                continue;
            }
            let bad = || DeadlineError::Affected {
                index,
                item: item.chars().take(40).collect(),
            };
            let (state, n) = item.split_once('=').ok_or_else(bad)?;
            let state = state.trim().to_ascii_uppercase();
            if state.is_empty()
                || state.len() > 8
                || !state.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(bad());
            }
            let n: u64 = n.trim().parse().map_err(|_| bad())?;
            if by_state.insert(state.clone(), n).is_some() {
                return Err(DeadlineError::Duplicate(state));
            }
        }
        Ok(Affected { by_state })
    }

    /// Everyone affected.
    pub fn total(&self) -> u64 {
        self.by_state.values().sum()
    }
}

/// Who is notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Notice {
    /// The affected individuals (164.404).
    Individuals,
    /// Prominent media outlets serving a state (164.406).
    Media,
    /// The Secretary of HHS (164.408).
    Secretary,
    /// The covered entity, by its business associate (164.410).
    CoveredEntity,
}

/// Where a deadline stands on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Not yet due.
    Pending,
    /// Due today.
    DueToday,
    /// Past due.
    Overdue,
}

/// One notice's deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deadline {
    /// Who is notified.
    pub notice: Notice,
    /// The state, for media notice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The last day it may be given.
    pub due: NaiveDate,
    /// The regulation that sets it.
    pub rule: &'static str,
    /// Why it applies, in words.
    pub reason: String,
    /// Days from `today` to `due` (negative when overdue).
    pub days_left: i64,
    /// Where it stands on `today`.
    pub status: Status,
}

/// Every deadline of one breach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deadlines {
    /// When the breach was discovered (the day it was known, or by reasonable diligence
    /// would have been known, to the covered entity: 164.404(a)(2)).
    pub discovered: NaiveDate,
    /// The day `days_left` and `status` are computed for.
    pub today: NaiveDate,
    /// Affected individuals in total.
    pub total: u64,
    /// By state.
    pub affected: BTreeMap<String, u64>,
    /// The deadlines, earliest first.
    pub deadlines: Vec<Deadline>,
}

fn plus(date: NaiveDate, days: u64) -> Result<NaiveDate, DeadlineError> {
    date.checked_add_days(Days::new(days))
        .ok_or(DeadlineError::OutOfRange)
}

/// The deadlines of a breach discovered on `discovered` affecting `affected`, as they stand on
/// `today`. `business_associate` is `Some(days)` when the one computing is a business
/// associate whose agreement asks for notice to the covered entity within `days` (at most 60).
pub fn compute(
    discovered: NaiveDate,
    affected: &Affected,
    business_associate: Option<u64>,
    today: NaiveDate,
) -> Result<Deadlines, DeadlineError> {
    let total = affected.total();
    let within = plus(discovered, MAX_DAYS)?;
    let mut out = Vec::new();
    let mut push = |notice, state: Option<String>, due: NaiveDate, rule, reason: String| {
        let days_left = (due - today).num_days();
        let status = match days_left {
            d if d > 0 => Status::Pending,
            0 => Status::DueToday,
            _ => Status::Overdue,
        };
        out.push(Deadline {
            notice,
            state,
            due,
            rule,
            reason,
            days_left,
            status,
        });
    };
    if let Some(days) = business_associate {
        if days > MAX_DAYS {
            return Err(DeadlineError::AgreementTerm(days));
        }
        push(
            Notice::CoveredEntity,
            None,
            plus(discovered, days)?,
            "45 CFR 164.410(b)",
            format!(
                "a business associate notifies the covered entity within {days} days of discovery (its agreement's term, at most 60)"
            ),
        );
    }
    push(
        Notice::Individuals,
        None,
        within,
        "45 CFR 164.404(b)",
        format!(
            "{total} individual(s): without unreasonable delay, at most 60 days after discovery"
        ),
    );
    for (state, &n) in &affected.by_state {
        if n > MEDIA_THRESHOLD {
            push(
                Notice::Media,
                Some(state.clone()),
                within,
                "45 CFR 164.406(b)",
                format!("{n} residents of {state}: more than 500"),
            );
        }
    }
    if total >= SECRETARY_THRESHOLD {
        push(
            Notice::Secretary,
            None,
            within,
            "45 CFR 164.408(b)",
            format!("{total} individuals: 500 or more, with the individuals' notice"),
        );
    } else {
        let year_end =
            NaiveDate::from_ymd_opt(discovered.year(), 12, 31).ok_or(DeadlineError::OutOfRange)?;
        push(
            Notice::Secretary,
            None,
            plus(year_end, MAX_DAYS)?,
            "45 CFR 164.408(c)",
            format!(
                "{total} individual(s): fewer than 500, in the annual log for {} within 60 days after the year's end",
                discovered.year()
            ),
        );
    }
    out.sort_by(|a, b| (a.due, a.notice, &a.state).cmp(&(b.due, b.notice, &b.state)));
    Ok(Deadlines {
        discovered,
        today,
        total,
        affected: affected.by_state.clone(),
        deadlines: out,
    })
}

/// A draft of the notice to individuals with the contents 164.404(c)(1) requires, in plain
/// language (164.404(c)(2)). It holds no PHI: the bracketed fields are filled in by the
/// privacy officer, per recipient, outside Airlock's records.
pub fn individual_letter(d: &Deadlines) -> String {
    format!(
        "# Notice of a breach of your health information (draft)\n\n\
         _Send without unreasonable delay, and no later than {due} (45 CFR 164.404(b)); \
         written notice by first-class mail, or e-mail if you agreed to it (164.404(d)). \
         Fields in brackets are filled in per recipient; this draft holds no patient \
         information._\n\n\
         Dear [name of the individual],\n\n\
         ## What happened\n\
         On [date of the breach], [a brief description of what happened]. We discovered it on \
         {discovered}. (164.404(c)(1)(A))\n\n\
         ## What information was involved\n\
         [The types of unsecured protected health information involved, such as full name, \
         Social Security number, date of birth, home address, account number, diagnosis, \
         disability code, or other types.] (164.404(c)(1)(B))\n\n\
         ## What you can do\n\
         [Steps you should take to protect yourself from potential harm resulting from the \
         breach.] (164.404(c)(1)(C))\n\n\
         ## What we are doing\n\
         [What we are doing to investigate the breach, to mitigate harm to you, and to protect \
         against further breaches.] (164.404(c)(1)(D))\n\n\
         ## For more information\n\
         Call [toll-free telephone number], write to [e-mail address] or [postal address], or \
         visit [web site]. (164.404(c)(1)(E))\n\n\
         [Name and title of the privacy officer]\n",
        due = d
            .deadlines
            .iter()
            .find(|x| x.notice == Notice::Individuals)
            .map_or_else(
                || "60 days after discovery".to_owned(),
                |x| x.due.to_string()
            ),
        discovered = d.discovered,
    )
}
