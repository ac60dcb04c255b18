//! `airlock synth`: differentially private synthetic rows from a clinical, airlock or
//! de-identified development table, as
//! the principal named by `--actor` (charged to that principal's budget, as over the API).
//! Prints the release and its report: figures and column names only, never a row.

use std::path::PathBuf;
use std::process::ExitCode;

use airlock_service::synth::SynthBody;
use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::Value;

use super::dp::{as_principal, service_error};
use super::home::{HomeArgs, block_on};

/// The synthesiser.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Method {
    /// MST: one- and two-way marginals on a maximum spanning tree (McKenna et al. 2021).
    Mst,
}

/// `airlock synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    #[command(flatten)]
    home: HomeArgs,
    /// The source version, `NAME` or `NAME@VERSION` (clinical or airlock zone, or de-identified
    /// in development).
    #[arg(long, value_name = "NAME[@VERSION]")]
    dataset: String,
    /// ε of the whole run.
    #[arg(long)]
    epsilon: f64,
    /// δ of the (ε, δ) guarantee (the run is zCDP).
    #[arg(long, default_value_t = 1e-6)]
    delta: f64,
    /// The synthesiser.
    #[arg(long, value_enum, default_value = "mst")]
    method: Method,
    /// The table: a CSV file's stem when the version has several, or a FHIR version's view.
    #[arg(long)]
    table: Option<String>,
    /// Columns (comma-separated; default: every declared column but identifiers).
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// Rows to generate (default: the noisy estimate of the rows read).
    #[arg(long)]
    rows: Option<u64>,
    /// A categorical column to measure utility on (train on synthetic, test on real).
    #[arg(long)]
    target: Option<String>,
    /// The target's positive value.
    #[arg(long, requires = "target")]
    positive: Option<String>,
    /// The sampling seed (default: random, recorded in the lineage).
    #[arg(long)]
    seed: Option<u64>,
    /// The output dataset: a `synthetic` version in development.
    #[arg(long, value_name = "NAME")]
    out_dataset: String,
    /// Also write the whole result (JSON, with the report) here, owner-only.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Runs `airlock synth`.
pub fn run(a: SynthArgs) -> anyhow::Result<ExitCode> {
    block_on(async {
        let caller = as_principal(&a.home).await?;
        let Method::Mst = a.method;
        let r = caller
            .synthesize(SynthBody {
                dataset: a.dataset,
                epsilon: a.epsilon,
                delta: a.delta,
                table: a.table,
                columns: a.columns,
                rows: a.rows,
                target: a.target,
                positive: a.positive,
                out_dataset: a.out_dataset,
                seed: a.seed,
            })
            .await
            .map_err(service_error)?;
        print_result(&serde_json::to_value(&r)?, "");
        if let Some(path) = a.out {
            super::deid::write_atomic(&path, &serde_json::to_vec_pretty(&r)?, true)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
            println!("result written to {}", path.display());
        }
        Ok(ExitCode::SUCCESS)
    })?
}

/// The release and its report (the result as JSON, from the service or the API), indented by
/// `indent`: figures and column names only.
pub fn print_result(r: &Value, indent: &str) {
    let num = |p: &str| r.pointer(p).and_then(Value::as_f64);
    let f = |p: &str| num(p).map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
    let text = |p: &str| {
        r.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    let len = |p: &str| r.pointer(p).and_then(Value::as_array).map_or(0, Vec::len);
    println!(
        "{indent}{} -> {}: {} synthetic rows of {} columns by {} at epsilon {} delta {:e} (rho {:.5}, spent {:.5} in {} mechanisms)",
        text("/source"),
        text("/dataset"),
        r.pointer("/rows").and_then(Value::as_u64).unwrap_or(0),
        len("/columns"),
        text("/method"),
        num("/epsilon").unwrap_or(f64::NAN),
        num("/delta").unwrap_or(f64::NAN),
        num("/rho").unwrap_or(f64::NAN),
        num("/rho_spent").unwrap_or(f64::NAN),
        len("/charges"),
    );
    let pairs: Vec<String> = r
        .pointer("/selected")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let side = |i: usize| p.get(i).and_then(Value::as_str).unwrap_or("?");
            format!("{} x {}", side(0), side(1))
        })
        .collect();
    println!("{indent}  pairs measured: {}", pairs.join(", "));
    println!(
        "{indent}  fidelity: 1-way {}, 2-way {} (1 - TVD, mean), correlation difference {}",
        f("/report/fidelity/mean_column"),
        f("/report/fidelity/mean_pair"),
        f("/report/fidelity/mean_correlation_difference")
    );
    if r.pointer("/report/utility").is_some_and(|u| !u.is_null()) {
        println!(
            "{indent}  utility on {} ({} real held-out rows): AUROC logistic {} (trained on real) vs {} (on synthetic), GBDT {} vs {}",
            text("/report/utility/target"),
            r.pointer("/report/utility/holdout_rows")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            f("/report/utility/trained_on_real/logistic"),
            f("/report/utility/trained_on_synthetic/logistic"),
            f("/report/utility/trained_on_real/gbdt"),
            f("/report/utility/trained_on_synthetic/gbdt")
        );
    }
    let pct = |p: &str| num(p).map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", 100.0 * v));
    println!(
        "{indent}  privacy: DCR median {} (synthetic) vs {} (held-out real); exact copies of a training row {} vs {}; distance attack AUC {}, TPR {} at 0.1% FPR",
        f("/report/privacy/dcr_synthetic_median"),
        f("/report/privacy/dcr_holdout_median"),
        pct("/report/privacy/exact_match_synthetic"),
        pct("/report/privacy/exact_match_holdout"),
        f("/report/privacy/distance_attack/auc"),
        f("/report/privacy/distance_attack/tpr_at_fpr_0.001")
    );
    println!(
        "{indent}  budget left: epsilon {} (yours), {} (the dataset's)",
        f("/remaining/analyst_epsilon"),
        f("/remaining/dataset_epsilon")
    );
}
