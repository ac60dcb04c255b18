//! `train`, `models`, `predict`: the model lifecycle from the command line.
//!
//! Training and batch scoring run here, as the operator's `--actor` (recorded as the trainer).
//! The steps that touch patients (validate, approve, deploy, promote, roll back) need the
//! approvers' own authenticated sessions and so go through the API (`airlock serve`); this
//! command shows, verifies and reports.

use std::path::PathBuf;
use std::process::ExitCode;

use airlock_models::{FeatureSpec, GbdtParams, LogisticParams, Params};
use airlock_registry::{ModelName, Registry, TrainRequest};
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use super::home::{HomeArgs, block_on};

/// The registry with the ONNX runtime.
fn registry(home: &airlock_store::Home) -> Registry {
    Registry::new(home).with_onnx(std::sync::Arc::new(airlock_onnx::TractRuntime))
}

/// Model family.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Family {
    /// L2-regularised logistic regression.
    Logistic,
    /// Histogram gradient-boosted trees.
    Gbdt,
}

/// The labelled data a model is trained or measured on.
#[derive(Debug, Args)]
pub struct LabelledData {
    /// `NAME[@VERSION]` of a de-identified (or synthetic) dataset in development or staging.
    #[arg(long)]
    dataset: String,
    /// The CSV file of the version to use, when it has several.
    #[arg(long, conflicts_with = "view")]
    file: Option<String>,
    /// A FHIR version's table: the SQL-on-FHIR view (registered for the dataset, or built
    /// in) whose rows are the training table; materialised first as a version of its own, in
    /// the same zone, so the model's lineage reaches the FHIR source.
    #[arg(long, value_name = "NAME")]
    view: Option<String>,
    /// Target column.
    #[arg(long)]
    target: String,
    /// The target value that counts as positive.
    #[arg(long, default_value = "1")]
    positive: String,
}

/// `airlock train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[command(flatten)]
    data: LabelledData,
    /// Model family.
    #[arg(long, value_enum, default_value = "logistic")]
    model: Family,
    /// Feature columns (comma-separated): numeric when every value parses, else categorical.
    #[arg(long, value_delimiter = ',', required = true)]
    features: Vec<String>,
    /// Features to treat as categorical even when they look numeric (codes).
    #[arg(long, value_delimiter = ',')]
    categorical: Vec<String>,
    /// The model's registry name.
    #[arg(long)]
    out_model: String,
    /// Seed of the split.
    #[arg(long, default_value_t = 20_261_129)]
    seed: u64,
    /// Held-out share.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Intended use, for the model card.
    #[arg(
        long,
        default_value = "Decision support for clinicians; not a diagnosis."
    )]
    intended_use: String,
    /// A known limitation, for the model card (repeatable).
    #[arg(long = "limitation")]
    limitations: Vec<String>,
    /// Also write the experiment record (JSON) here.
    #[arg(long)]
    experiment_out: Option<PathBuf>,
    /// Train by DP-SGD (logistic only) so the whole run is (ε, δ)-DP for one training row; the
    /// card and the experiment record ε, δ, the accountant, noise multiplier, clip, sampling
    /// rate and steps.
    #[arg(long, value_name = "EPSILON")]
    dp_epsilon: Option<f64>,
    /// DP-SGD's δ (below one over the training rows).
    #[arg(long, requires = "dp_epsilon", default_value_t = 1e-6)]
    dp_delta: f64,
    /// DP-SGD's per-example gradient norm bound.
    #[arg(long, requires = "dp_epsilon", default_value_t = 1.0)]
    clip: f64,
    /// DP-SGD's Poisson sampling rate (expected batch size over rows).
    #[arg(long, requires = "dp_epsilon", default_value_t = 0.01)]
    batch_rate: f64,
    /// DP-SGD's passes over the data.
    #[arg(long, requires = "dp_epsilon", default_value_t = 5)]
    epochs: u32,
}

/// The version whose CSV table is read: the dataset itself, or with `--view` the view's rows
/// over it, materialised first as a version of its own (same zone and classification).
async fn table_spec(home: &airlock_store::Home, data: &LabelledData) -> anyhow::Result<String> {
    view_table(home, &data.dataset, data.view.as_deref()).await
}

/// `dataset` itself, or with a view its rows materialised as a version of their own.
async fn view_table(
    home: &airlock_store::Home,
    dataset: &str,
    view: Option<&str>,
) -> anyhow::Result<String> {
    let Some(view) = view else {
        return Ok(dataset.to_owned());
    };
    let out = airlock_service::views::derived_name(dataset, view)?;
    let v = airlock_service::views::materialise(home, dataset, view, &out).await?;
    println!(
        "view `{view}` over {dataset}: {} rows -> {}@{}",
        v.records, v.dataset, v.version
    );
    Ok(format!("{}@{}", v.dataset, v.version))
}

/// Train on a dataset version and register the model.
pub fn train(a: TrainArgs) -> anyhow::Result<ExitCode> {
    block_on(async {
        let home = a.home.open().await?;
        let registry = registry(&home);
        let features = a
            .features
            .iter()
            .map(|f| {
                if a.categorical.contains(f) {
                    FeatureSpec::Categorical(f.clone())
                } else {
                    FeatureSpec::Auto(f.clone())
                }
            })
            .collect();
        let limitations = if a.limitations.is_empty() {
            vec![format!(
                "Trained on {}; validate on local data before clinical use.",
                a.data.dataset
            )]
        } else {
            a.limitations.clone()
        };
        let dataset = table_spec(&home, &a.data).await?;
        let req = TrainRequest {
            dataset,
            file: a.data.file.clone(),
            target: a.data.target.clone(),
            positive: a.data.positive.clone(),
            features,
            params: match (a.model, a.dp_epsilon) {
                (Family::Logistic, None) => Params::Logistic(LogisticParams::default()),
                (Family::Logistic, Some(epsilon)) => Params::Logistic(LogisticParams {
                    dp: Some(airlock_models::DpSgd {
                        delta: a.dp_delta,
                        clip: a.clip,
                        sampling_rate: a.batch_rate,
                        epochs: a.epochs,
                        ..airlock_models::DpSgd::new(epsilon)
                    }),
                    ..LogisticParams::default()
                }),
                (Family::Gbdt, None) => Params::Gbdt(GbdtParams::default()),
                (Family::Gbdt, Some(_)) => {
                    anyhow::bail!("DP-SGD trains logistic regression only (--model logistic)")
                }
            },
            seed: a.seed,
            test_fraction: a.test_fraction,
            name: ModelName::new(a.out_model.clone()).context("`--out-model`")?,
            intended_use: a.intended_use.clone(),
            limitations,
        };
        let r = airlock_registry::train_on_dataset(&home, &registry, &req).await?;
        let m = &r.experiment.metrics;
        println!(
            "trained {} on {} ({} train / {} held-out rows, {:.2}s)",
            r.version.card.family,
            r.dataset,
            r.experiment.split.train_rows,
            r.experiment.split.test_rows,
            r.experiment.training_seconds
        );
        println!(
            "held-out: AUROC {:.4}  AUPRC {:.4}  Brier {:.4}  log loss {:.4}",
            m.auroc, m.auprc, m.brier, m.log_loss
        );
        if let Params::Logistic(LogisticParams { dp: Some(dp), .. }) = &r.experiment.params {
            println!(
                "DP-SGD: epsilon {:.3} (target {}) at delta {:e}, noise multiplier {:.4}, clip {}, sampling rate {}, {} steps; {}",
                dp.spent_epsilon.unwrap_or(f64::NAN),
                dp.epsilon,
                dp.delta,
                dp.noise_multiplier.unwrap_or(f64::NAN),
                dp.clip,
                dp.sampling_rate,
                dp.steps.unwrap_or(0),
                dp.accountant.as_deref().unwrap_or("")
            );
        }
        println!(
            "registered {} version {} (state registered, signed, stored encrypted in {})",
            r.version.name,
            r.version.hash.to_hex(),
            r.version.zone
        );
        if let Some(p) = &a.experiment_out {
            std::fs::write(p, serde_json::to_vec_pretty(&r.experiment)?)
                .with_context(|| format!("cannot write `{}`", p.display()))?;
        }
        home.close().await?;
        Ok(ExitCode::SUCCESS)
    })?
}

/// `airlock models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[command(subcommand)]
    cmd: ModelsCmd,
}

#[derive(Debug, Subcommand)]
enum ModelsCmd {
    /// Every model version with its state.
    List,
    /// Change control plans (as the principal named by --actor): propose, approve, show.
    Plan {
        #[command(subcommand)]
        cmd: PlanCmd,
    },
    /// Update a model under an approved change control plan (as the principal named by
    /// --actor): retrain the version it replaces on a newer version of its dataset, validate
    /// both on the same held-out data, check every clause; a conforming version is approved by
    /// the plan, a non-conforming one names the clauses it broke.
    Update {
        /// The plan, `NAME` or `NAME@VERSION`.
        #[arg(long = "under-plan", value_name = "PLAN")]
        plan: String,
        /// The model.
        #[arg(long)]
        model: String,
        /// The version it replaces (hash prefix).
        #[arg(long)]
        from: String,
        /// The newer version of the training dataset, `NAME@VERSION`.
        #[arg(long)]
        dataset: String,
        /// Held-out data both versions are validated on.
        #[arg(long)]
        validate_on: String,
        /// Why.
        #[arg(long, default_value = "update under the change control plan")]
        reason: String,
        /// Also write the outcome (JSON: clauses and both reports) here, owner-only.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// One model: versions, model cards, approvals, history (JSON).
    Show {
        /// The model.
        name: String,
    },
    /// Re-read a version's artifact and check its hash and Ed25519 signature.
    Verify {
        /// The model, `NAME@VERSION` (as `predict --model` takes it) or `NAME` with `--version`.
        name: String,
        /// Version (hash prefix, at least 6 hex digits).
        #[arg(long)]
        version: Option<String>,
    },
    /// Validate a registered version on held-out data under the validation policy: metrics
    /// with bootstrap intervals, per-group performance and disparities, calibration and a
    /// membership-inference attack, in a signed report kept with the version; the version
    /// becomes `validated` only if the report passed.
    Validate {
        /// The model, `NAME@VERSION`.
        model: String,
        /// The held-out dataset version (its training dataset means its held-out split).
        #[arg(long)]
        dataset: String,
        /// A FHIR version's table: the SQL-on-FHIR view whose rows are validated on (the same
        /// view over the version the model was trained through means its held-out split).
        #[arg(long, value_name = "NAME")]
        view: Option<String>,
        /// Columns to report groups by (comma-separated).
        #[arg(long, value_delimiter = ',')]
        sensitive: Vec<String>,
        /// The operating threshold (a score at or above it is positive).
        #[arg(long, default_value_t = 0.5)]
        threshold: f64,
        /// A validation policy (TOML) instead of the default one.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Bootstrap resamples.
        #[arg(long, default_value_t = 1000)]
        resamples: u32,
        /// Also write the signed report (JSON) here.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Why (recorded with the transition).
        #[arg(long, default_value = "validation report reviewed")]
        reason: String,
    },
    /// Which versions were deployed, and how, at a given time.
    At {
        /// The model.
        name: String,
        /// RFC 3339 time.
        time: String,
    },
    /// Silent and canary versions against what was shown (from the ledger), with outcome
    /// metrics where outcomes were posted.
    Report {
        /// The model.
        name: String,
    },
    /// Import a binary classifier trained elsewhere (ONNX, run with tract), measure it on a
    /// de-identified dataset version and register it.
    Import {
        /// The ONNX file (one float input of the signature's one-hot width; output a
        /// probability, e.g. scikit-learn exported with skl2onnx and zipmap off).
        #[arg(long)]
        onnx: PathBuf,
        /// The signature (JSON: `{"features": [{"name", "kind": {"type": "numeric", "min",
        /// "max"} | {"type": "categorical", "categories"}}]}`).
        #[arg(long)]
        signature: PathBuf,
        /// The evaluation data (boxed: keeps the subcommand enum small).
        #[command(flatten)]
        data: Box<LabelledData>,
        /// Registry name.
        #[arg(long)]
        name: String,
        /// Who trained it (never an approver).
        #[arg(long)]
        trained_by: String,
        /// Intended use, for the model card.
        #[arg(long)]
        intended_use: String,
        /// A known limitation (repeatable, at least one).
        #[arg(long = "limitation", required = true)]
        limitations: Vec<String>,
    },
}

/// The headline of a validation report, its per-group table and the attack (figures only).
fn print_report(r: &airlock_registry::validation::SignedReport) {
    let b = &r.body;
    let m = &b.report.metrics;
    let ci = |e: &airlock_models::Estimate| match e.interval {
        Some([lo, hi]) => format!("{:.3} [{lo:.3}, {hi:.3}]", e.value),
        None => format!("{:.3}", e.value),
    };
    println!(
        "validation report {} of {} on {} (policy {}):",
        r.id,
        b.model,
        b.dataset,
        b.policy_hash.get(..12).unwrap_or("")
    );
    println!(
        "  n {} positives {}  AUROC {}  AUPRC {}  Brier {}  ECE {}",
        m.n,
        m.positives,
        ci(&m.auroc),
        ci(&m.auprc),
        ci(&m.brier),
        ci(&m.ece)
    );
    for g in &b.report.groups {
        if g.too_small {
            println!("  {:>10} {:<24} too small to report", g.attribute, g.value);
        } else {
            println!(
                "  {:>10} {:<24} n {:>6}  AUROC {}  TPR {}  FPR {}",
                g.attribute,
                g.value,
                g.n.unwrap_or(0),
                g.auroc.as_ref().map_or("-".into(), ci),
                g.tpr.as_ref().map_or("-".into(), ci),
                g.fpr.as_ref().map_or("-".into(), ci)
            );
        }
    }
    match &b.report.membership_inference {
        Some(a) => println!(
            "  membership inference (RMIA, {} reference models, {} members / {} non-members): AUC {:.3}, TPR {:.4} at 0.1% FPR, {:.4} at 1% FPR",
            a.reference_models,
            a.members,
            a.non_members,
            a.auc,
            a.tpr_at_fpr_0_001,
            a.tpr_at_fpr_0_01
        ),
        None => println!("  membership inference: not run (the training data is not at hand)"),
    }
    println!(
        "  training rows among the held-out rows: {}",
        if b.training_overlap.checked {
            b.training_overlap.rows.to_string()
        } else {
            "not checked".into()
        }
    );
    if b.passed {
        println!("  PASSED the validation policy");
    } else {
        println!("  FAILED: {}", b.reasons.join("; "));
    }
}

#[derive(Debug, Subcommand)]
enum PlanCmd {
    /// Propose a plan (TOML) for the model it names.
    Propose {
        /// The plan document.
        #[arg(long)]
        file: PathBuf,
    },
    /// Approve a proposed plan as one of the roles the quorum needs.
    Approve {
        /// The model.
        #[arg(long)]
        model: String,
        /// The plan, `NAME` or `NAME@VERSION`.
        #[arg(long)]
        plan: String,
        /// The role approved as.
        #[arg(long)]
        role: airlock_authz::Role,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// A model's plans (JSON).
    Show {
        /// The model.
        #[arg(long)]
        model: String,
    },
}

/// `models plan` and `models update`, through the service as `--actor`.
async fn plans_as_principal(home: &HomeArgs, cmd: ModelsCmd) -> anyhow::Result<ExitCode> {
    use super::dp::{as_principal, service_error};
    let caller = as_principal(home).await?;
    match cmd {
        ModelsCmd::Plan {
            cmd: PlanCmd::Propose { file },
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read `{}`", file.display()))?;
            let doc = airlock_registry::plan::PlanDoc::parse(&text)?;
            let p = caller
                .propose_plan(&doc.model, airlock_service::plans::PlanBody { text })
                .await
                .map_err(service_error)?;
            println!(
                "plan {}@{} for {} proposed ({}): approvals needed from {}",
                p.name,
                p.version,
                p.model,
                p.hash.get(..12).unwrap_or(""),
                p.missing_roles.join(" and ")
            );
        }
        ModelsCmd::Plan {
            cmd:
                PlanCmd::Approve {
                    model,
                    plan,
                    role,
                    reason,
                },
        } => {
            let p = caller
                .approve_plan(
                    &model,
                    &plan,
                    airlock_service::plans::PlanApproveBody { role, reason },
                )
                .await
                .map_err(service_error)?;
            println!(
                "plan {}@{}: {}{}",
                p.name,
                p.version,
                p.state,
                if p.missing_roles.is_empty() {
                    String::new()
                } else {
                    format!(" (still needs {})", p.missing_roles.join(" and "))
                }
            );
        }
        ModelsCmd::Plan {
            cmd: PlanCmd::Show { model },
        } => {
            let list = caller.model_plans(&model).await.map_err(service_error)?;
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        ModelsCmd::Update {
            plan,
            model,
            from,
            dataset,
            validate_on,
            reason,
            out,
        } => {
            let o = caller
                .update_model(
                    &model,
                    airlock_service::plans::UpdateBody {
                        plan,
                        from,
                        dataset,
                        validate_on,
                        features: None,
                        family: None,
                        target: None,
                        reason,
                    },
                )
                .await
                .map_err(service_error)?;
            print_update(&o);
            if let Some(path) = out {
                super::deid::write_atomic(&path, &serde_json::to_vec_pretty(&o)?, true)
                    .with_context(|| format!("cannot write `{}`", path.display()))?;
            }
        }
        _ => anyhow::bail!("not a plan command"),
    }
    Ok(ExitCode::SUCCESS)
}

/// An update's clauses and verdict (figures only).
pub fn print_update(o: &airlock_registry::plan::UpdateOutcome) {
    println!(
        "{} under plan {} ({}): candidate {} ({}), replacing {}",
        if o.conforming {
            "approved"
        } else {
            "NOT approved"
        },
        o.plan,
        o.plan_hash.get(..12).unwrap_or(""),
        o.version.label(),
        o.version.state,
        o.replaces
    );
    for c in &o.clauses {
        println!(
            "  {} {:<48} {}",
            if c.passed { "held " } else { "BROKE" },
            c.clause,
            c.detail
        );
    }
    if !o.conforming {
        println!(
            "  the version takes the full approval path (a clinical reviewer and the privacy officer)"
        );
    }
}

/// Model listings, verification and reports.
pub fn models(a: ModelsArgs) -> anyhow::Result<ExitCode> {
    if matches!(a.cmd, ModelsCmd::Plan { .. } | ModelsCmd::Update { .. }) {
        return block_on(plans_as_principal(&a.home, a.cmd))?;
    }
    block_on(async {
        let home = a.home.open().await?;
        let reg = registry(&home);
        let code = match a.cmd {
            ModelsCmd::List => {
                println!(
                    "{:<24} {:<14} {:<11} {:<12} {:<9} {:<20} auroc",
                    "model", "version", "state", "zone", "family", "trained by"
                );
                for v in reg.list().await? {
                    println!(
                        "{:<24} {:<14} {:<11} {:<12} {:<9} {:<20} {:.4}",
                        v.name.as_str(),
                        v.hash.short(),
                        v.state.as_str(),
                        v.zone.as_str(),
                        v.card.family,
                        v.card.trained_by.as_str(),
                        v.card.metrics.auroc
                    );
                }
                ExitCode::SUCCESS
            }
            ModelsCmd::Show { name } => {
                let name = ModelName::new(name)?;
                let versions = reg.versions(&name).await?;
                if versions.is_empty() {
                    anyhow::bail!("no model `{name}`");
                }
                let mut out = Vec::new();
                for v in &versions {
                    out.push(serde_json::json!({
                        "version": v,
                        "approvals": reg.approvals(&v.hash).await?,
                    }));
                }
                let doc = serde_json::json!({
                    "name": name,
                    "versions": out,
                    "history": reg.history(&name).await?,
                });
                println!("{}", serde_json::to_string_pretty(&doc)?);
                ExitCode::SUCCESS
            }
            ModelsCmd::Verify { name, version } => {
                let (name, version) = match (name.split_once('@'), version) {
                    (Some((n, v)), None) => (n.to_string(), v.to_string()),
                    (None, Some(v)) => (name, v),
                    (Some(_), Some(_)) => {
                        anyhow::bail!("give the version once: NAME@VERSION or --version")
                    }
                    (None, None) => anyhow::bail!(
                        "which version? NAME@VERSION (a hash prefix of 6 or more hex digits)"
                    ),
                };
                let name = ModelName::new(name)?;
                let v = reg.get(&name, &version).await?;
                match reg.load(&v).await {
                    Ok(m) => {
                        println!(
                            "{}: SHA-256 and Ed25519 signature verified; {} features; state {}",
                            v.label(),
                            m.features.len(),
                            v.state
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        println!("{}: REFUSED: {e}", v.label());
                        ExitCode::FAILURE
                    }
                }
            }
            ModelsCmd::Validate {
                model,
                dataset,
                view,
                sensitive,
                threshold,
                policy,
                resamples,
                out,
                reason,
            } => {
                let Some((n, version)) = model.split_once('@') else {
                    anyhow::bail!(
                        "which version? NAME@VERSION (a hash prefix of 6 or more hex digits)"
                    );
                };
                let name = ModelName::new(n)?;
                let dataset = view_table(&home, &dataset, view.as_deref()).await?;
                let reg = match &policy {
                    Some(p) => {
                        let text = std::fs::read_to_string(p)
                            .with_context(|| format!("cannot read the policy `{}`", p.display()))?;
                        reg.with_policy(
                            airlock_models::Policy::from_toml(&text)
                                .with_context(|| format!("the policy `{}`", p.display()))?,
                        )
                    }
                    None => reg,
                };
                let req = airlock_registry::validation::ValidateRequest {
                    dataset,
                    file: None,
                    sensitive,
                    threshold: Some(threshold),
                    resamples: Some(resamples),
                };
                let (report, transition) = airlock_registry::validation::validate_dataset(
                    &home, &reg, &name, version, &req, &reason,
                )
                .await?;
                print_report(&report);
                if let Some(out) = out {
                    super::deid::write_atomic(&out, &serde_json::to_vec_pretty(&report)?, true)
                        .with_context(|| format!("cannot write `{}`", out.display()))?;
                    println!("report written to {}", out.display());
                }
                match transition {
                    Some(t) => {
                        println!("{} is now {}", report.body.model, t.to);
                        ExitCode::SUCCESS
                    }
                    None => {
                        println!(
                            "{} stays registered: the report did not pass",
                            report.body.model
                        );
                        ExitCode::FAILURE
                    }
                }
            }
            ModelsCmd::At { name, time } => {
                let name = ModelName::new(name)?;
                let t = chrono::DateTime::parse_from_rfc3339(&time)
                    .context("the time must be RFC 3339")?
                    .with_timezone(&chrono::Utc);
                let states = reg.deployed_at(&name, t).await?;
                if states.is_empty() {
                    println!("no version of {name} was deployed at {time}");
                }
                for (h, s) in states {
                    println!("{name}@{h}  {s}");
                }
                ExitCode::SUCCESS
            }
            ModelsCmd::Import {
                onnx,
                signature,
                data,
                name,
                trained_by,
                intended_use,
                limitations,
            } => {
                let artifact = std::fs::read(&onnx)
                    .with_context(|| format!("cannot read `{}`", onnx.display()))?;
                let sig_text = std::fs::read(&signature)
                    .with_context(|| format!("cannot read `{}`", signature.display()))?;
                let sig: airlock_models::Signature =
                    serde_json::from_slice(&sig_text).map_err(|e| {
                        anyhow::anyhow!(
                            "`{}` is not a signature: line {}, column {}",
                            signature.display(),
                            e.line(),
                            e.column()
                        )
                    })?;
                let r = airlock_registry::import_model(
                    &home,
                    &reg,
                    &airlock_registry::ImportRequest {
                        kind: airlock_registry::ArtifactKind::Onnx,
                        artifact,
                        signature: sig,
                        dataset: table_spec(&home, &data).await?,
                        file: data.file,
                        target: data.target,
                        positive: data.positive,
                        name: ModelName::new(name).context("`--name`")?,
                        intended_use,
                        limitations,
                        trained_by: airlock_types::ActorId::new(trained_by)
                            .context("`--trained-by`")?,
                    },
                )
                .await
                .with_context(|| format!("importing `{}`", onnx.display()))?;
                let m = &r.version.card.metrics;
                println!(
                    "imported {}: evaluated on {} ({} rows): AUROC {:.4}  AUPRC {:.4}  Brier {:.4}",
                    onnx.display(),
                    r.dataset,
                    m.n,
                    m.auroc,
                    m.auprc,
                    m.brier
                );
                println!(
                    "registered {} version {} (state registered, signed)",
                    r.version.name,
                    r.version.hash.to_hex()
                );
                ExitCode::SUCCESS
            }
            // Handled through the service above, before the home is opened.
            ModelsCmd::Plan { .. } | ModelsCmd::Update { .. } => ExitCode::FAILURE,
            ModelsCmd::Report { name } => {
                let name = ModelName::new(name)?;
                let dir = home.ledger_dir();
                let entries = tokio::task::spawn_blocking(move || {
                    airlock_ledger::search(
                        &dir,
                        &airlock_ledger::Filter {
                            events: vec![
                                airlock_ledger::EventType::Prediction,
                                airlock_ledger::EventType::Override,
                            ],
                            ..Default::default()
                        },
                    )
                })
                .await??;
                let c = airlock_registry::report::compare(
                    name.as_str(),
                    &entries,
                    &reg.outcomes().await?,
                );
                println!("{}", serde_json::to_string_pretty(&c)?);
                ExitCode::SUCCESS
            }
        };
        home.close().await?;
        Ok(code)
    })?
}

/// `airlock predict`: batch scoring for validation.
#[derive(Debug, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    home: HomeArgs,
    /// `NAME@VERSION` of the model (version: hash prefix).
    #[arg(long)]
    model: String,
    /// `NAME[@VERSION]` of a dataset in development or staging.
    #[arg(long)]
    dataset: String,
    /// The CSV file of the version, when it has several.
    #[arg(long, conflicts_with = "view")]
    file: Option<String>,
    /// A FHIR version's table: the SQL-on-FHIR view whose rows are scored (materialised first
    /// as a version of its own, in the same zone, as `train --view` does).
    #[arg(long, value_name = "NAME")]
    view: Option<String>,
    /// Target column, to report metrics.
    #[arg(long)]
    target: Option<String>,
    /// Positive value of the target.
    #[arg(long, default_value = "1")]
    positive: String,
    /// Write `row,score` here.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Score a dataset version with a registered model.
pub fn predict(a: PredictArgs) -> anyhow::Result<ExitCode> {
    block_on(async {
        let home = a.home.open().await?;
        let reg = registry(&home);
        let (name, version) = a
            .model
            .split_once('@')
            .context("`--model` must be NAME@VERSION (a hash prefix)")?;
        let v = reg.get(&ModelName::new(name)?, version).await?;
        let dataset = view_table(&home, &a.dataset, a.view.as_deref()).await?;
        let s = airlock_registry::score_dataset(
            &home,
            &reg,
            &v,
            &dataset,
            a.file.as_deref(),
            a.target.as_deref().map(|t| (t, a.positive.as_str())),
        )
        .await?;
        println!("scored {} rows of {} with {}", s.rows, s.dataset, s.model);
        if let Some(m) = &s.metrics {
            println!(
                "AUROC {:.4}  AUPRC {:.4}  Brier {:.4}",
                m.auroc, m.auprc, m.brier
            );
        }
        if let Some(p) = &a.out {
            let mut text = String::from("row,score\n");
            for (i, sc) in s.scores.iter().enumerate() {
                text.push_str(&format!("{i},{sc}\n"));
            }
            std::fs::write(p, text).with_context(|| format!("cannot write `{}`", p.display()))?;
            println!("wrote {}", p.display());
        }
        home.close().await?;
        Ok(ExitCode::SUCCESS)
    })?
}
