//! `airlock views`: tables from FHIR with SQL-on-FHIR v2 ViewDefinitions, over files (no
//! deployment needed) or over a dataset of a deployment (registered views, materialised as a
//! version of the same zone and classification).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use airlock_service::views::{self, ViewsError};
use airlock_types::DatasetName;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::home::{HomeArgs, block_on};

/// `airlock views`.
#[derive(Debug, Args)]
pub struct ViewsArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[command(subcommand)]
    cmd: ViewsCmd,
}

#[derive(Debug, Subcommand)]
enum ViewsCmd {
    /// Run a view. Over files: `--view V.json|NAME --in FILE... --out F.csv|F.parquet|F.json|F.ndjson`
    /// (FHIR JSON resources, Bundles or NDJSON in; no deployment needed). Over a dataset:
    /// `--home DIR --dataset NAME[@V] --view NAME [--out-dataset NAME2]`, materialised as a
    /// version in the source's zone, with lineage.
    Run {
        /// A ViewDefinition file, a built-in view's name, or (with `--dataset`) a view
        /// registered for the dataset.
        #[arg(long, value_name = "FILE|NAME")]
        view: String,
        /// File mode: FHIR inputs (files or directories).
        #[arg(long = "in", value_name = "PATH", num_args = 1.., conflicts_with = "dataset")]
        inputs: Vec<PathBuf>,
        /// File mode: where the rows go (`.csv`, `.parquet` typed by the view's columns,
        /// `.json` for an array of row objects, `.ndjson`); written owner-only, since rows of
        /// identified data are identified.
        #[arg(long, value_name = "FILE", requires = "inputs")]
        out: Option<PathBuf>,
        /// Dataset mode: the FHIR version, `NAME` or `NAME@VERSION`.
        #[arg(long, value_name = "NAME[@VERSION]")]
        dataset: Option<String>,
        /// Dataset mode: the dataset the rows become a version of (default `NAME-VIEW`, with
        /// `_` for `-` in the view's name).
        #[arg(long, value_name = "NAME", requires = "dataset")]
        out_dataset: Option<String>,
    },
    /// Register a view (a typed ViewDefinition with a `name`) for a FHIR dataset.
    Add {
        /// The dataset.
        #[arg(long, value_name = "NAME")]
        dataset: String,
        /// The ViewDefinition file (JSON).
        #[arg(long, value_name = "FILE")]
        view: PathBuf,
    },
    /// The views a dataset can run: its registered ones and the built-in ones.
    List {
        /// The dataset (without it, the built-in views only).
        #[arg(long, value_name = "NAME")]
        dataset: Option<String>,
    },
}

fn read_definition(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the view `{}`", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "the view `{}` is not JSON (a ViewDefinition resource)",
            path.display()
        )
    })
}

/// A view from a file or a built-in name, for file mode (loaded as the spec allows: a column
/// without a type is read as text).
fn load_for_files(spec: &str) -> anyhow::Result<airlock_views::View> {
    let path = Path::new(spec);
    let def = if path.is_file() {
        read_definition(path)?
    } else if let Some(text) = airlock_views::builtin::definition(spec) {
        serde_json::from_str(text)?
    } else {
        bail!(
            "no view file `{spec}` and no built-in view of that name ({})",
            airlock_views::builtin::BUILTIN
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    airlock_views::View::from_json(&def).map_err(|e| anyhow::anyhow!("view `{spec}`: {e}"))
}

/// Runs `airlock views`.
pub fn run(a: ViewsArgs) -> anyhow::Result<ExitCode> {
    match a.cmd {
        ViewsCmd::Run {
            view,
            inputs,
            out,
            dataset: None,
            ..
        } => run_files(&view, &inputs, out.as_deref()),
        ViewsCmd::Run {
            view,
            dataset: Some(dataset),
            out_dataset,
            ..
        } => block_on(async {
            let home = a.home.open().await?;
            let out = match out_dataset {
                Some(o) => DatasetName::new(o)?,
                None => views::derived_name(&dataset, &view)?,
            };
            let v = views::materialise(&home, &dataset, &view, &out).await?;
            println!(
                "view `{view}` over {dataset}: {} rows -> {}@{} in `{}` as {} (lineage: derive)",
                v.records, v.dataset, v.version, v.zone, v.classification
            );
            home.close().await?;
            Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
        })?,
        ViewsCmd::Add { dataset, view } => block_on(async {
            let home = a.home.open().await?;
            let def = read_definition(&view)?;
            let name = views::add(&home, &DatasetName::new(dataset.clone())?, def).await?;
            println!("view `{name}` registered for `{dataset}`");
            home.close().await?;
            Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
        })?,
        ViewsCmd::List { dataset } => {
            let registered = match dataset {
                Some(d) => block_on(async {
                    let home = a.home.open().await?;
                    let r = views::registered(&home, &DatasetName::new(d)?).await?;
                    home.close().await?;
                    Ok::<_, anyhow::Error>(r.into_keys().collect::<Vec<_>>())
                })??,
                None => Vec::new(),
            };
            for name in &registered {
                println!("{name:<24} registered");
            }
            for (name, text) in airlock_views::builtin::BUILTIN {
                let title = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|v| v.get("title").and_then(|t| t.as_str()).map(str::to_owned))
                    .unwrap_or_default();
                println!("{name:<24} built-in: {title}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_files(spec: &str, inputs: &[PathBuf], out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let Some(out) = out else {
        bail!("file mode needs `--out F.csv|F.parquet|F.json|F.ndjson`");
    };
    if inputs.is_empty() {
        bail!("file mode needs `--in PATH...` (or `--dataset` with `--home`)");
    }
    let view = load_for_files(spec)?;
    let files = super::home::expand_paths(inputs)?;
    let mut texts = Vec::with_capacity(files.len());
    for f in &files {
        texts.push(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read `{}` as UTF-8 text", f.display()))?,
        );
    }
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let (bytes, rows) = match ext.as_deref() {
        Some("csv") => {
            let (csv, rows, _) = views::run_to_csv(&view, texts.iter().map(String::as_str))
                .map_err(named(&files))?;
            (csv, rows)
        }
        Some("parquet") => {
            let (bytes, rows, _) = views::run_to_parquet(&view, texts.iter().map(String::as_str))
                .map_err(named(&files))?;
            (bytes, rows)
        }
        Some(e @ ("json" | "ndjson")) => {
            let mut objects = Vec::new();
            for (i, text) in texts.iter().enumerate() {
                airlock_views::run_each(
                    &view,
                    airlock_views::read_resources(text),
                    |row| -> Result<(), airlock_views::ViewError> {
                        objects.push(serde_json::Value::Object(view.row_object(row)));
                        Ok(())
                    },
                )
                .map_err(|e| {
                    anyhow::anyhow!(
                        "`{}`: {e}",
                        files
                            .get(i)
                            .map_or(String::new(), |f| f.display().to_string())
                    )
                })?;
            }
            let rows = objects.len() as u64;
            let bytes = if e == "json" {
                serde_json::to_vec_pretty(&objects)?
            } else {
                let mut b = Vec::new();
                for o in &objects {
                    serde_json::to_writer(&mut b, o)?;
                    b.push(b'\n');
                }
                b
            };
            (bytes, rows)
        }
        _ => bail!("`--out` must end in .csv, .parquet, .json or .ndjson"),
    };
    super::deid::write_atomic(out, &bytes, true)
        .with_context(|| format!("cannot write `{}`", out.display()))?;
    println!(
        "view `{}`: {rows} rows from {} file(s) -> {}",
        view.name().unwrap_or("view"),
        files.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The error with the input files named (a view error names the resource by position).
fn named(files: &[PathBuf]) -> impl Fn(ViewsError) -> anyhow::Error + '_ {
    move |e| {
        anyhow::anyhow!(
            "{e} (inputs, in order: {})",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}
