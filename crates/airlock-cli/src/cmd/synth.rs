//! `airlock synth`: differentially private synthetic rows from a clinical or airlock table, as
//! the principal named by `--actor` (charged to that principal's budget, as over the API).
//! Prints the release and its report: figures and column names only, never a row.

use std::path::PathBuf;
use std::process::ExitCode;

use airlock_service::synth::{SynthBody, SynthResult};
use anyhow::Context;
use clap::{Args, ValueEnum};

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
    /// The source version, `NAME` or `NAME@VERSION` (clinical or airlock zone).
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
        print_result(&r, "");
        if let Some(path) = a.out {
            super::deid::write_atomic(&path, &serde_json::to_vec_pretty(&r)?, true)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
            println!("result written to {}", path.display());
        }
        Ok(ExitCode::SUCCESS)
    })?
}

/// The release and its report, indented by `indent` (the demo nests it).
pub fn print_result(r: &SynthResult, indent: &str) {
    let f = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
    println!(
        "{indent}{} -> {}: {} synthetic rows of {} columns by {} at epsilon {} delta {:e} (rho {:.5}, spent {:.5} in {} mechanisms); seed {}",
        r.source,
        r.dataset,
        r.rows,
        r.columns.len(),
        r.method,
        r.epsilon,
        r.delta,
        r.rho,
        r.rho_spent,
        r.charges.len(),
        r.seed
    );
    println!(
        "{indent}  pairs measured: {}",
        r.selected
            .iter()
            .map(|[a, b]| format!("{a} x {b}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let fid = &r.report.fidelity;
    println!(
        "{indent}  fidelity: 1-way {:.3}, 2-way {:.3} (1 - TVD, mean), correlation difference {}",
        fid.mean_column,
        fid.mean_pair,
        f(fid.mean_correlation_difference)
    );
    if let Some(u) = &r.report.utility {
        println!(
            "{indent}  utility on {} ({} real held-out rows): AUROC logistic {} (real) vs {} (synthetic), GBDT {} vs {}",
            u.target,
            u.holdout_rows,
            f(u.trained_on_real.logistic),
            f(u.trained_on_synthetic.logistic),
            f(u.trained_on_real.gbdt),
            f(u.trained_on_synthetic.gbdt)
        );
    }
    let p = &r.report.privacy;
    println!(
        "{indent}  privacy: DCR median {:.3} (synthetic) vs {:.3} (held-out real); exact copies {:.1}% vs {:.1}%; distance attack AUC {}, TPR {:.4} at 0.1% FPR",
        p.dcr_synthetic_median,
        p.dcr_holdout_median,
        100.0 * p.exact_match_synthetic,
        100.0 * p.exact_match_holdout,
        f(p.distance_attack.auc),
        p.distance_attack.tpr_at_fpr_0_001
    );
    println!(
        "{indent}  budget left: epsilon {:.3} (yours), {:.3} (the dataset's)",
        r.remaining.analyst_epsilon, r.remaining.dataset_epsilon
    );
}
