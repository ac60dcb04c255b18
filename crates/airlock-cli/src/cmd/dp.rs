//! `airlock dp`: differentially private questions, DP metadata and budgets, from the command
//! line. The operator (holding the deployment passphrase) acts as the principal named by
//! `--actor`: the policy decides by that principal's roles, and questions are charged to that
//! principal's budget, exactly as over the API; the ledger names the operator on the
//! principal's behalf.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use airlock_authz::{Authorizer, Principal};
use airlock_dp::DpMetadata;
use airlock_service::dp::{BudgetBody, MetadataBody, QueryBody};
use airlock_service::{Authenticated, Caller, IdentityPolicy, NoObserver, Service, Via};
use airlock_types::{ActorId, RequestId};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::home::{HomeArgs, block_on, local_actor};

/// `airlock dp`.
#[derive(Debug, Args)]
pub struct DpArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[command(subcommand)]
    cmd: DpCmd,
}

#[derive(Debug, Subcommand)]
enum DpCmd {
    /// Ask a question of a clinical or airlock dataset version. The SQL subset: COUNT(*),
    /// COUNT(col), COUNT(DISTINCT unit), SUM, AVG, VARIANCE, STDDEV, MEDIAN, QUANTILE(col, p)
    /// over bounded columns; GROUP BY columns with a declared domain; WHERE with comparisons,
    /// IN, BETWEEN, IS NULL, AND, OR, NOT; joins of tables ON the privacy unit. Tables: a CSV
    /// version's one file is `data` (several: each by its stem); a FHIR version's tables are
    /// its views (built in or registered). Prints the answer, or writes it as JSON with --out.
    Query {
        /// The version, `NAME` or `NAME@VERSION`.
        #[arg(long, value_name = "NAME[@VERSION]")]
        dataset: String,
        /// The question.
        #[arg(long)]
        sql: String,
        /// ε of the whole question.
        #[arg(long)]
        epsilon: f64,
        /// δ: with it, the discrete Gaussian under zCDP; without, the discrete Laplace.
        #[arg(long)]
        delta: Option<f64>,
        /// Keep the answer as a dp-aggregate version of this dataset in development.
        #[arg(long, value_name = "NAME")]
        save_as: Option<String>,
        /// Write the answer (JSON) here, owner-only.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// A dataset's DP metadata.
    Metadata {
        #[command(subcommand)]
        cmd: MetadataCmd,
    },
    /// Budgets.
    Budget {
        #[command(subcommand)]
        cmd: BudgetCmd,
    },
}

#[derive(Debug, Subcommand)]
enum MetadataCmd {
    /// Declare it (privacy officer): a new version of the dataset's DP metadata.
    Set {
        /// The dataset.
        #[arg(long)]
        dataset: String,
        /// The privacy unit: the column naming the person in every table, or `row`.
        #[arg(long)]
        unit: String,
        /// The most rows one unit contributes to a question.
        #[arg(long)]
        max_rows_per_unit: u32,
        /// `table=K`: a tighter bound for a table (one row per patient in `patients`, say).
        #[arg(long = "table-rows", value_name = "TABLE=K")]
        table_rows: Vec<String>,
        /// `column=lo:hi`, for each numeric column questions may aggregate.
        #[arg(long = "bounds", value_name = "COL=LO:HI")]
        bounds: Vec<String>,
        /// `column=a|b|c`, for each column questions may group by.
        #[arg(long = "domain", value_name = "COL=A|B|C")]
        domains: Vec<String>,
        /// `column=K`: synthetic data bins this numeric column into K equal widths over its
        /// bounds (default: one bin per whole number for a range of whole numbers under 32
        /// apart, else 16).
        #[arg(long = "bins", value_name = "COL=K")]
        bins: Vec<String>,
    },
    /// Show the current one.
    Show {
        /// The dataset.
        #[arg(long)]
        dataset: String,
    },
}

#[derive(Debug, Subcommand)]
enum BudgetCmd {
    /// Set an analyst's budget on a dataset, or the dataset's total (privacy officer).
    Set {
        /// The dataset.
        #[arg(long)]
        dataset: String,
        /// The analyst (a principal id).
        #[arg(long, required_unless_present = "total", conflicts_with = "total")]
        analyst: Option<String>,
        /// Set the dataset's total instead.
        #[arg(long)]
        total: bool,
        /// The limit as ε.
        #[arg(long)]
        epsilon: f64,
        /// At this δ: a zCDP budget. Without: a pure ε-DP budget.
        #[arg(long)]
        delta: Option<f64>,
    },
    /// Budgets the actor may see.
    Show {
        /// Only this dataset's.
        #[arg(long)]
        dataset: Option<String>,
    },
}

/// The service, and a caller acting as `--actor` (a principal of this deployment).
pub(super) async fn as_principal(a: &HomeArgs) -> anyhow::Result<Caller> {
    let home = a.open().await?;
    let Some(name) = a.actor.as_deref() else {
        bail!("name the principal to act as with --actor (a user or service of this deployment)");
    };
    let id = ActorId::new(name).context("--actor is not a principal id")?;
    let service = Service::new(
        home,
        Authorizer::new()?,
        IdentityPolicy::default(),
        std::sync::Arc::new(NoObserver),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let record = service
        .identities()
        .principal(&id)
        .await?
        .with_context(|| format!("no principal `{id}` in this deployment"))?;
    if record.disabled {
        bail!("`{id}` is disabled");
    }
    let principal = if record.kind == "service" {
        Principal::service(id, record.roles.clone())
    } else {
        Principal::user(id, record.roles.clone())
    };
    Ok(service.caller(
        Authenticated {
            principal,
            via: Via::Operator {
                operator: local_actor(Some(name))?,
            },
            // The deployment passphrase is the operator's factor beyond the machine login.
            mfa: true,
        },
        RequestId::from_bytes(rand::random()),
        None,
        None,
    ))
}

pub(super) fn service_error(e: airlock_service::ServiceError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Runs `airlock dp`.
pub fn run(a: DpArgs) -> anyhow::Result<ExitCode> {
    block_on(async {
        let caller = as_principal(&a.home).await?;
        match a.cmd {
            DpCmd::Query {
                dataset,
                sql,
                epsilon,
                delta,
                save_as,
                out,
            } => {
                let answer = caller
                    .dp_query(QueryBody {
                        dataset,
                        sql,
                        epsilon,
                        delta,
                        save_as,
                    })
                    .await
                    .map_err(service_error)?;
                let json = serde_json::to_vec_pretty(&answer)?;
                if let Some(path) = out {
                    super::deid::write_atomic(&path, &json, true)
                        .with_context(|| format!("cannot write `{}`", path.display()))?;
                    println!("answer written to {}", path.display());
                } else {
                    print_answer(&answer);
                }
            }
            DpCmd::Metadata {
                cmd:
                    MetadataCmd::Set {
                        dataset,
                        unit,
                        max_rows_per_unit,
                        table_rows,
                        bounds,
                        domains,
                        bins,
                    },
            } => {
                let bins = bins
                    .iter()
                    .map(|b| {
                        let (c, k) = b
                            .split_once('=')
                            .with_context(|| format!("bins are written column=K, not {b:?}"))?;
                        let k: u32 = k
                            .trim()
                            .parse()
                            .with_context(|| format!("bins are written column=K, not {b:?}"))?;
                        Ok((c.trim().to_owned(), k))
                    })
                    .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
                let table_rows_per_unit = table_rows
                    .iter()
                    .map(|t| DpMetadata::parse_table_rows(t))
                    .collect::<Result<BTreeMap<_, _>, _>>()?;
                let bounds = bounds
                    .iter()
                    .map(|b| DpMetadata::parse_bound(b).map(|(c, (lo, hi))| (c, [lo, hi])))
                    .collect::<Result<BTreeMap<_, _>, _>>()?;
                let domains = domains
                    .iter()
                    .map(|d| DpMetadata::parse_domain(d))
                    .collect::<Result<BTreeMap<_, _>, _>>()?;
                let m = caller
                    .set_dp_metadata(MetadataBody {
                        dataset,
                        unit,
                        max_rows_per_unit,
                        table_rows_per_unit,
                        bounds,
                        domains,
                        bins,
                    })
                    .await
                    .map_err(service_error)?;
                println!("{}", serde_json::to_string_pretty(&m)?);
            }
            DpCmd::Metadata {
                cmd: MetadataCmd::Show { dataset },
            } => {
                let m = caller.dp_metadata(&dataset).await.map_err(service_error)?;
                println!("{}", serde_json::to_string_pretty(&m)?);
            }
            DpCmd::Budget {
                cmd:
                    BudgetCmd::Set {
                        dataset,
                        analyst,
                        total: _,
                        epsilon,
                        delta,
                    },
            } => {
                let b = caller
                    .set_dp_budget(BudgetBody {
                        dataset,
                        analyst,
                        epsilon,
                        delta,
                    })
                    .await
                    .map_err(service_error)?;
                println!("{}", serde_json::to_string_pretty(&b)?);
            }
            DpCmd::Budget {
                cmd: BudgetCmd::Show { dataset },
            } => {
                let list = caller
                    .dp_budgets(dataset.as_deref())
                    .await
                    .map_err(service_error)?;
                println!(
                    "{:<24} {:<24} {:<6} {:>10} {:>10} {:>10}",
                    "dataset", "analyst", "kind", "epsilon", "left", "delta"
                );
                for b in list.budgets {
                    println!(
                        "{:<24} {:<24} {:<6} {:>10.4} {:>10.4} {:>10}",
                        b.dataset,
                        b.analyst,
                        match b.accounting {
                            airlock_service::dp::Accounting::Pure => "pure",
                            airlock_service::dp::Accounting::Zcdp => "zcdp",
                        },
                        b.limit_epsilon,
                        b.remaining_epsilon,
                        b.delta
                            .map(|d| format!("{d:e}"))
                            .unwrap_or_else(|| "-".into())
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })?
}

fn print_answer(a: &airlock_service::dp::DpAnswer) {
    let names: Vec<&String> = a
        .rows
        .first()
        .map(|r| r.keys().collect())
        .unwrap_or_default();
    println!(
        "{}",
        names
            .iter()
            .map(|n| format!("{n:>16}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for row in &a.rows {
        println!(
            "{}",
            names
                .iter()
                .map(|n| match row.get(n.as_str()) {
                    Some(serde_json::Value::Number(x)) => match x.as_f64() {
                        Some(f) if f.fract() != 0.0 => format!("{f:>16.3}"),
                        _ => format!("{x:>16}"),
                    },
                    Some(serde_json::Value::String(s)) => format!("{s:>16}"),
                    Some(v) => format!("{v:>16}"),
                    None => format!("{:>16}", ""),
                })
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let acc: Vec<String> = a
        .accuracy
        .iter()
        .map(|(k, v)| match v.as_f64() {
            Some(x) => format!("{k} ±{x:.3}"),
            None => format!("{k}: not bounded"),
        })
        .collect();
    println!(
        "{} noise, epsilon {}{}; 95% accuracy: {}; epsilon {:.4} of your budget left",
        a.mechanism,
        a.epsilon,
        a.delta.map(|d| format!(" delta {d:e}")).unwrap_or_default(),
        acc.join(", "),
        a.remaining.analyst_epsilon
    );
}
