//! `airlock monitor`: a deployed model's drift, estimated and realised performance over a window
//! of its prediction log, and drift of one development dataset against another, acting as the
//! principal named by `--actor` (decided and recorded as over the API). Prints figures and
//! column names only; `--out` writes the report as JSON, owner-only.

use std::path::PathBuf;
use std::process::ExitCode;

use airlock_service::monitoring::{DriftBody, MonitorQuery};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;

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
        #[arg(long, default_value_t = airlock_service::monitoring::DEFAULT_WINDOW)]
        last: usize,
        /// Only predictions at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// The operating threshold for CBPE and realised TPR/FPR.
        #[arg(long, default_value_t = 0.5)]
        threshold: f64,
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
        #[arg(long)]
        file: Option<String>,
        /// Columns to compare (comma-separated; default: every column of the reference).
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
        /// Write the report here (JSON).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Runs `airlock monitor`.
pub fn run(a: MonitorArgs) -> anyhow::Result<ExitCode> {
    block_on(async {
        let caller = as_principal(&a.home).await?;
        let (value, out) = match a.cmd {
            MonitorCmd::Report {
                model,
                last,
                since,
                threshold,
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
                            threshold: Some(threshold),
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
                features,
                out,
            } => {
                let r = caller
                    .dataset_drift(DriftBody {
                        reference,
                        current,
                        file,
                        features,
                        options: None,
                    })
                    .await
                    .map_err(service_error)?;
                let v = serde_json::to_value(&r)?;
                print_drift(&v, "");
                (v, out)
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
            f["name"].as_str().unwrap_or("?"),
            f["kind"].as_str().unwrap_or("?"),
            f["method"].as_str().unwrap_or("?"),
            fmt(f.get("statistic")),
            fmt(f.get("p_value")),
            fmt(f.get("threshold")),
            if f["drifted"].as_bool() == Some(true) {
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
        "monitoring of {} (threshold {})",
        r["model"].as_str().unwrap_or("?"),
        fmt(r.get("threshold"))
    );
    for v in r["versions"].as_array().into_iter().flatten() {
        let hash = v["version"].as_str().unwrap_or("?");
        println!(
            "  {}@{} ({}): {} shown, {} silent",
            r["model"].as_str().unwrap_or("?"),
            hash.get(..12).unwrap_or(hash),
            v["state"].as_str().unwrap_or("?"),
            v["shown"].as_u64().unwrap_or(0),
            v["silent"].as_u64().unwrap_or(0)
        );
        if let Some(d) = v.get("drift").filter(|d| !d.is_null()) {
            print_drift(d, "    ");
        } else {
            println!(
                "    no drift report: {}",
                v["no_drift"].as_str().unwrap_or("?")
            );
        }
        let e = &v["estimated"];
        println!(
            "    estimated from {} scores (CBPE): AUROC {}, precision {}, recall {}",
            e["n"].as_u64().unwrap_or(0),
            fmt(e.get("auroc")),
            fmt(e.get("precision")),
            fmt(e.get("recall"))
        );
        let x = &v["realised"];
        println!(
            "    realised on {} outcomes ({} positive): AUROC {}, ECE {}, TPR {}, FPR {}",
            x["outcomes"].as_u64().unwrap_or(0),
            x["positives"].as_u64().unwrap_or(0),
            fmt(x.get("auroc")),
            fmt(x.get("ece")),
            fmt(x.get("tpr")),
            fmt(x.get("fpr"))
        );
    }
}
