//! `airlock monitor`: a deployed model's drift, estimated and realised performance over a window
//! of its prediction log, and drift of one development dataset against another, acting as the
//! principal named by `--actor` (decided and recorded as over the API). Prints figures and
//! column names only; `--out` writes the report as JSON, owner-only.

use std::path::PathBuf;
use std::process::ExitCode;

use airlock_service::alerts::{RulesBody, WebhookBody};
use airlock_service::monitoring::{DriftBody, MonitorQuery};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;

static NULL: Value = Value::Null;

use super::dp::{as_principal, service_error};
use super::home::{HomeArgs, block_on};

/// `airlock monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[command(subcommand)]
    cmd: MonitorCmd,
}

#[derive(Debug, Subcommand)]
enum MonitorCmd {
    /// A model's monitoring report: per version, drift against its reference profile (each
    /// feature and the score), performance estimated from the scores (CBPE), and realised
    /// performance on posted outcomes.
    Report {
        /// The model, `NAME` or `NAME@VERSION` (a hash or unique prefix).
        #[arg(long, value_name = "NAME[@VERSION]")]
        model: String,
        /// The most recent this-many predictions per version.
        #[arg(long, default_value_t = airlock_service::monitoring::DEFAULT_WINDOW as u64)]
        last: u64,
        /// Only predictions at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// The operating threshold for CBPE and realised TPR/FPR (default: each version's
        /// validation threshold, else 0.5).
        #[arg(long)]
        threshold: Option<f64>,
        /// Statistical tests (KS, chi-squared, z) for every feature, instead of Evidently's
        /// distances for references over 1,000 rows.
        #[arg(long)]
        tests: bool,
        /// Write the report here (JSON).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Drift of one development dataset version against another, column by column.
    Drift {
        /// The reference version.
        #[arg(long, value_name = "NAME[@VERSION]")]
        reference: String,
        /// The current version.
        #[arg(long, value_name = "NAME[@VERSION]")]
        current: String,
        /// The CSV file of each, when a version has several.
        #[arg(long, conflicts_with = "view")]
        file: Option<String>,
        /// For FHIR versions: the SQL-on-FHIR view whose rows are compared.
        #[arg(long, value_name = "NAME")]
        view: Option<String>,
        /// Columns to compare (comma-separated; default: every column of the reference).
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
        /// Write the report here (JSON).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// A model's monitoring rules: show them, or set new ones from a TOML file (MLOps).
    Rules {
        /// The model.
        #[arg(long)]
        model: String,
        /// Set the rules from this TOML file (`[[rule]]` tables); show them otherwise.
        #[arg(long, value_name = "FILE", requires = "reason")]
        set: Option<PathBuf>,
        /// Why the rules change.
        #[arg(long)]
        reason: Option<String>,
    },
    /// A model's alerts, newest first; with --evaluate, evaluate its rules first.
    Alerts {
        /// The model.
        #[arg(long)]
        model: String,
        /// Evaluate the rules now (alerts fire or resolve, notifications go out).
        #[arg(long)]
        evaluate: bool,
    },
    /// Erase the prediction log's batches past the retention period
    /// (`monitoring.prediction_log_days` in airlock.toml, default 365); the server does this
    /// every hour. Each model's erasure is a ledger entry.
    Expire,
    /// Webhook destinations for alerts (security administrator): list, or add one.
    Webhooks {
        /// Add a destination with this name.
        #[arg(long, requires = "url")]
        add: Option<String>,
        /// Its URL: https, or http to a loopback address.
        #[arg(long)]
        url: Option<String>,
        /// The PEM certificate (or CA) to trust for an https URL.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
}

/// Runs `airlock monitor`.
pub fn run(a: MonitorArgs) -> anyhow::Result<ExitCode> {
    block_on(async {
        let caller = as_principal(&a.home).await?;
        caller
            .service()
            .set_notifier(std::sync::Arc::new(airlock_server::webhook::HttpNotifier));
        let (value, out) = match a.cmd {
            MonitorCmd::Report {
                model,
                last,
                since,
                threshold,
                tests,
                out,
            } => {
                let (name, version) = match model.split_once('@') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (model, None),
                };
                let r = caller
                    .monitoring_report(
                        &name,
                        MonitorQuery {
                            version,
                            last: Some(last),
                            since,
                            tests: Some(tests),
                            threshold,
                        },
                    )
                    .await
                    .map_err(service_error)?;
                let v = serde_json::to_value(&r)?;
                print_report(&v);
                (v, out)
            }
            MonitorCmd::Drift {
                reference,
                current,
                file,
                view,
                features,
                out,
            } => {
                let r = caller
                    .dataset_drift(DriftBody {
                        reference,
                        current,
                        file,
                        view,
                        features,
                        options: None,
                    })
                    .await
                    .map_err(service_error)?;
                let v = serde_json::to_value(&r)?;
                print_drift(&v, "");
                (v, out)
            }
            MonitorCmd::Rules { model, set, reason } => {
                let r = match set {
                    Some(path) => {
                        let toml = std::fs::read_to_string(&path)
                            .with_context(|| format!("cannot read `{}`", path.display()))?;
                        let body = RulesBody {
                            toml,
                            reason: reason.unwrap_or_default(),
                        };
                        caller.set_monitoring_rules(&model, body).await
                    }
                    None => caller.monitoring_rules(&model).await,
                }
                .map_err(service_error)?;
                println!(
                    "monitoring rules of {} version {} (sha256 {}){}:",
                    r.model,
                    r.version,
                    r.hash,
                    if r.version == 0 {
                        ", Airlock's defaults"
                    } else {
                        ""
                    }
                );
                print!("{}", r.toml);
                (serde_json::to_value(&r)?, None)
            }
            MonitorCmd::Alerts { model, evaluate } => {
                if evaluate {
                    let e = caller
                        .evaluate_monitoring(&model)
                        .await
                        .map_err(service_error)?;
                    for v in &e.verdicts {
                        println!(
                            "  rule {:<18} on {}: {:?} ({} window(s) counted)",
                            v.rule,
                            v.version.get(..12).unwrap_or(&v.version),
                            v.verdict,
                            v.windows
                        );
                    }
                    println!(
                        "evaluated: {} fired, {} resolved, {} canary rollback(s)",
                        e.fired.len(),
                        e.resolved.len(),
                        e.rolled_back.len()
                    );
                }
                let list = caller
                    .monitoring_alerts(&model)
                    .await
                    .map_err(service_error)?;
                print_alerts(&serde_json::to_value(&list)?);
                (serde_json::to_value(&list)?, None)
            }
            MonitorCmd::Expire => {
                let sweep = caller
                    .service()
                    .expire_prediction_log()
                    .await
                    .map_err(service_error)?;
                println!(
                    "prediction log retention: {} day(s); batches last written before {}:",
                    sweep.days, sweep.before
                );
                if sweep.models.is_empty() {
                    println!("  nothing to erase");
                }
                for m in &sweep.models {
                    println!(
                        "  {}: {} prediction(s) in {} batch(es) erased (ledger entry {})",
                        m.model, m.predictions, m.batches, m.ledger_index
                    );
                }
                (serde_json::to_value(&sweep)?, None)
            }
            MonitorCmd::Webhooks { add, url, ca } => {
                if let (Some(name), Some(url)) = (add, url) {
                    let ca_pem = match ca {
                        Some(p) => Some(
                            std::fs::read_to_string(&p)
                                .with_context(|| format!("cannot read `{}`", p.display()))?,
                        ),
                        None => None,
                    };
                    let w = caller
                        .add_webhook(WebhookBody { name, url, ca_pem })
                        .await
                        .map_err(service_error)?;
                    println!(
                        "webhook `{}` registered; its signing secret (HMAC-SHA256 over the body, header x-airlock-signature: sha256=HEX), shown once:\n{}",
                        w.name,
                        w.secret.as_deref().unwrap_or("?")
                    );
                }
                let list = caller.webhooks().await.map_err(service_error)?;
                for w in &list.webhooks {
                    println!(
                        "  {:<16} {} (added by {} at {})",
                        w.name, w.url, w.added_by, w.at
                    );
                }
                (serde_json::to_value(&list)?, None)
            }
        };
        if let Some(path) = out {
            super::deid::write_atomic(&path, &serde_json::to_vec_pretty(&value)?, true)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
            println!("report written to {}", path.display());
        }
        Ok(ExitCode::SUCCESS)
    })?
}

fn fmt(v: Option<&Value>) -> String {
    match v.and_then(Value::as_f64) {
        Some(x) if x != 0.0 && x.abs() < 1e-3 => format!("{x:.2e}"),
        Some(x) => format!("{x:.4}"),
        None => "-".into(),
    }
}

/// A drift report (JSON from the service or the API), indented: one line per column.
pub fn print_drift(d: &Value, indent: &str) {
    let text = |p: &str| d.pointer(p).and_then(Value::as_str).unwrap_or("?");
    println!(
        "{indent}drift of {} ({} rows) against {} ({} rows): {:.0}% of features drifted (dataset drift at {:.0}%): {}",
        text("/current/name"),
        d.pointer("/current/rows")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        text("/reference/name"),
        d.pointer("/reference/rows")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        d.pointer("/share_drifted")
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
            * 100.0,
        d.pointer("/drift_share")
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
            * 100.0,
        if d.pointer("/dataset_drift").and_then(Value::as_bool) == Some(true) {
            "DATASET DRIFT"
        } else {
            "no dataset drift"
        }
    );
    println!(
        "{indent}  {:<22} {:<12} {:<15} {:>10} {:>10} {:>9}  verdict",
        "column", "kind", "method", "statistic", "p-value", "threshold"
    );
    for f in d
        .pointer("/features")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        println!(
            "{indent}  {:<22} {:<12} {:<15} {:>10} {:>10} {:>9}  {}",
            f.get("name").unwrap_or(&NULL).as_str().unwrap_or("?"),
            f.get("kind").unwrap_or(&NULL).as_str().unwrap_or("?"),
            f.get("method").unwrap_or(&NULL).as_str().unwrap_or("?"),
            fmt(f.get("statistic")),
            fmt(f.get("p_value")),
            fmt(f.get("threshold")),
            if f.get("drifted").unwrap_or(&NULL).as_bool() == Some(true) {
                "drifted"
            } else {
                "stable"
            }
        );
    }
}

/// A monitoring report, per version.
pub fn print_report(r: &Value) {
    println!(
        "monitoring of {}",
        r.get("model").unwrap_or(&NULL).as_str().unwrap_or("?")
    );
    for v in r
        .get("versions")
        .unwrap_or(&NULL)
        .as_array()
        .into_iter()
        .flatten()
    {
        let hash = v.get("version").unwrap_or(&NULL).as_str().unwrap_or("?");
        println!(
            "  {}@{} ({}): {} shown, {} silent",
            r.get("model").unwrap_or(&NULL).as_str().unwrap_or("?"),
            hash.get(..12).unwrap_or(hash),
            v.get("state").unwrap_or(&NULL).as_str().unwrap_or("?"),
            v.get("shown").unwrap_or(&NULL).as_u64().unwrap_or(0),
            v.get("silent").unwrap_or(&NULL).as_u64().unwrap_or(0)
        );
        if let Some(d) = v.get("drift").filter(|d| !d.is_null()) {
            print_drift(d, "    ");
        } else {
            println!(
                "    no drift report: {}",
                v.get("no_drift").unwrap_or(&NULL).as_str().unwrap_or("?")
            );
        }
        let e = &v.get("estimated").unwrap_or(&NULL);
        let basis = match v.get("validation").filter(|b| !b.is_null()) {
            Some(b) => format!(
                "; validation {}: AUROC {}, ECE {}",
                b.get("report").unwrap_or(&NULL).as_str().unwrap_or("?"),
                fmt(b.get("auroc")),
                fmt(b.get("ece"))
            ),
            None => "; no validation report: calibration unchecked".into(),
        };
        println!(
            "    estimated from {} scores (CBPE, threshold {}): AUROC {}, precision {}, recall {}{basis}",
            e.get("n").unwrap_or(&NULL).as_u64().unwrap_or(0),
            fmt(e.get("threshold")),
            fmt(e.get("auroc")),
            fmt(e.get("precision")),
            fmt(e.get("recall"))
        );
        let x = &v.get("realised").unwrap_or(&NULL);
        println!(
            "    realised on {} outcomes ({} positive): AUROC {}, ECE {}, TPR {}, FPR {}",
            x.get("outcomes").unwrap_or(&NULL).as_u64().unwrap_or(0),
            x.get("positives").unwrap_or(&NULL).as_u64().unwrap_or(0),
            fmt(x.get("auroc")),
            fmt(x.get("ece")),
            fmt(x.get("tpr")),
            fmt(x.get("fpr"))
        );
        for g in v
            .get("realised_by_group")
            .unwrap_or(&NULL)
            .as_array()
            .into_iter()
            .flatten()
        {
            let r = &g.get("realised").unwrap_or(&NULL);
            println!(
                "      {}={:<12} {} outcomes{}",
                g.get("attribute").unwrap_or(&NULL).as_str().unwrap_or("?"),
                g.get("value").unwrap_or(&NULL).as_str().unwrap_or("?"),
                g.get("outcomes").unwrap_or(&NULL).as_u64().unwrap_or(0),
                if g.get("too_small").unwrap_or(&NULL).as_bool() == Some(true) {
                    ": too few for figures".to_string()
                } else {
                    format!(
                        ": AUROC {}, ECE {}, TPR {}, FPR {}",
                        fmt(r.get("auroc")),
                        fmt(r.get("ece")),
                        fmt(r.get("tpr")),
                        fmt(r.get("fpr"))
                    )
                }
            );
        }
    }
}

/// A model's alerts (JSON), one line each.
pub fn print_alerts(list: &Value) {
    let alerts = list
        .get("alerts")
        .unwrap_or(&NULL)
        .as_array()
        .cloned()
        .unwrap_or_default();
    if alerts.is_empty() {
        println!("  no alerts");
    }
    for a in alerts {
        let version = a.get("version").unwrap_or(&NULL).as_str().unwrap_or("?");
        println!(
            "  #{} {} {:<8} rule {} on {}: {} {} (threshold {}, {} samples, entries {}..{})",
            a.get("ledger_index").unwrap_or(&NULL).as_u64().unwrap_or(0),
            a.get("state").unwrap_or(&NULL).as_str().unwrap_or("?"),
            a.get("severity").unwrap_or(&NULL).as_str().unwrap_or("?"),
            a.get("rule").unwrap_or(&NULL).as_str().unwrap_or("?"),
            version.get(..12).unwrap_or(version),
            a.get("measure").unwrap_or(&NULL).as_str().unwrap_or("?"),
            fmt(a.get("value")),
            fmt(a.get("threshold")),
            a.get("samples").unwrap_or(&NULL).as_u64().unwrap_or(0),
            a.get("first_index").unwrap_or(&NULL).as_u64().unwrap_or(0),
            a.get("last_index").unwrap_or(&NULL).as_u64().unwrap_or(0)
        );
    }
}
