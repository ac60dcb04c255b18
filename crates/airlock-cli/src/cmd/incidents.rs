//! `airlock incidents`: incident response. `scan` runs the detection rules over the ledger as
//! the principal named by `--actor` (one who may read the audit); `deadlines` is the
//! breach-notification calculator, standing alone (no deployment needed): from the discovery
//! date and the affected counts by state, which notices are due when, under which rule. Prints
//! counts, dates and ledger indices only.

use std::path::PathBuf;
use std::process::ExitCode;

use airlock_incidents::deadlines::{self, Affected};
use anyhow::Context;
use clap::{Args, Subcommand};

/// `airlock incidents`.
#[derive(Debug, Args)]
pub struct IncidentsArgs {
    #[command(subcommand)]
    cmd: IncidentsCmd,
}

#[derive(Debug, Subcommand)]
enum IncidentsCmd {
    /// Run the detection rules over the whole ledger: patient-volume outliers against the
    /// actor's own and peers' baselines, reads at hours the actor never works, unreviewed
    /// break-glass, bursts of failed logins, refusals or releases, failed leak checks, a ledger
    /// that fails verification. Each finding cites ledger indices.
    Scan {
        #[command(flatten)]
        home: super::home::HomeArgs,
        /// Rules (TOML) instead of Airlock's defaults (`airlock incidents rules` prints them).
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// Write the findings here (JSON).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print Airlock's default detection rules (TOML), to copy and edit.
    Rules,
    /// Breach-notification deadlines (45 CFR 164.404-410): individuals within 60 days of
    /// discovery; the media of each state with more than 500 affected residents; the
    /// Secretary with them for 500 or more, else in the annual log; a business associate's
    /// notice to its covered entity.
    Deadlines {
        /// The day the breach was discovered (YYYY-MM-DD).
        #[arg(long, value_name = "YYYY-MM-DD")]
        discovered: String,
        /// Affected individuals by state of residence: `STATE=N,STATE=N`.
        #[arg(long, value_name = "STATE=N,...")]
        affected: String,
        /// As a business associate whose agreement asks for notice to the covered entity
        /// within this many days (at most 60).
        #[arg(long, value_name = "DAYS")]
        business_associate_days: Option<u64>,
        /// The day to compute what is left for (default: today, UTC).
        #[arg(long, value_name = "YYYY-MM-DD")]
        today: Option<String>,
        /// Write the deadlines here (JSON).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Write a draft of the notice to individuals here (Markdown; the 164.404(c) contents
        /// with bracketed fields to fill in, no patient information).
        #[arg(long, value_name = "FILE")]
        letter: Option<PathBuf>,
    },
}

fn date(text: &str, flag: &str) -> anyhow::Result<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .with_context(|| format!("`--{flag}` must be a date, YYYY-MM-DD"))
}

/// Runs `airlock incidents`.
pub fn run(a: IncidentsArgs) -> anyhow::Result<ExitCode> {
    match a.cmd {
        IncidentsCmd::Rules => {
            print!("{}", airlock_incidents::detect::DEFAULT_RULES);
            Ok(ExitCode::SUCCESS)
        }
        IncidentsCmd::Scan { home, rules, out } => {
            let text = match &rules {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .with_context(|| format!("cannot read the rules `{}`", p.display()))?,
                ),
                None => None,
            };
            let scan = super::home::block_on(async {
                let caller = super::dp::as_principal(&home).await?;
                caller
                    .incident_scan(text.as_deref())
                    .await
                    .map_err(super::dp::service_error)
            })??;
            println!(
                "{} ledger entries scanned (ledger {}); {} finding(s):",
                scan.entries,
                if scan.verified {
                    "verified"
                } else {
                    "FAILED verification"
                },
                scan.findings.len()
            );
            print_findings(&scan.findings);
            if let Some(p) = &out {
                let mut json = serde_json::to_vec_pretty(&scan)?;
                json.push(b'\n');
                super::deid::write_atomic(p, &json, true)
                    .with_context(|| format!("cannot write `{}`", p.display()))?;
                println!("wrote {}", p.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        IncidentsCmd::Deadlines {
            discovered,
            affected,
            business_associate_days,
            today,
            out,
            letter,
        } => {
            let discovered = date(&discovered, "discovered")?;
            let today = match today {
                Some(t) => date(&t, "today")?,
                None => chrono::Utc::now().date_naive(),
            };
            let affected = Affected::parse(&affected).context("`--affected`")?;
            let d = deadlines::compute(discovered, &affected, business_associate_days, today)?;
            println!(
                "breach discovered {}: {} individual(s) in {} state(s); as of {}:",
                d.discovered,
                d.total,
                d.affected.len(),
                d.today
            );
            for x in &d.deadlines {
                let who = match (&x.state, x.notice) {
                    (Some(s), _) => format!("media ({s})"),
                    (None, deadlines::Notice::Individuals) => "individuals".into(),
                    (None, deadlines::Notice::Secretary) => "the Secretary".into(),
                    (None, deadlines::Notice::CoveredEntity) => "the covered entity".into(),
                    (None, deadlines::Notice::Media) => "media".into(),
                };
                let left = match x.status {
                    deadlines::Status::Pending => format!("{} day(s) left", x.days_left),
                    deadlines::Status::DueToday => "due today".into(),
                    deadlines::Status::Overdue => format!("OVERDUE by {} day(s)", -x.days_left),
                };
                println!(
                    "  {who:<20} by {}  {left:<20} {}: {}",
                    x.due, x.rule, x.reason
                );
            }
            if let Some(p) = &out {
                let mut json = serde_json::to_vec_pretty(&d)?;
                json.push(b'\n');
                super::deid::write_atomic(p, &json, false)
                    .with_context(|| format!("cannot write `{}`", p.display()))?;
                println!("wrote {}", p.display());
            }
            if let Some(p) = &letter {
                super::deid::write_atomic(p, deadlines::individual_letter(&d).as_bytes(), false)
                    .with_context(|| format!("cannot write `{}`", p.display()))?;
                println!("wrote the draft notice to individuals to {}", p.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Findings as a table: rule, severity, actor, window, summary, the first cited entries.
pub fn print_findings(findings: &[airlock_incidents::detect::Finding]) {
    for f in findings {
        let cited: Vec<String> = f.entries.iter().take(8).map(u64::to_string).collect();
        println!(
            "  {:<15} {:<8} {:<18} {} .. {}  {}; entries {}{}",
            f.rule,
            format!("{:?}", f.severity).to_lowercase(),
            f.actor,
            f.from.get(..19).unwrap_or(&f.from),
            f.to.get(11..19).unwrap_or(&f.to),
            f.summary,
            cited.join(","),
            if f.count > cited.len() {
                format!(" and {} more", f.count - cited.len())
            } else {
                String::new()
            }
        );
    }
}
