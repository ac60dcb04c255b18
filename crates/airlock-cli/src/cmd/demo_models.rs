//! The demo's model tour: train in development, approve with two roles, deploy silent then
//! canary, predict for patients over the API, override one, post outcomes, compare versions,
//! roll back, and show a prediction's ledger entry.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use airlock_models::{FeatureKind, FeatureSpec, GbdtParams, LogisticParams, Params, Table};
use airlock_registry::{ModelName, Registry, TrainRequest, TrainResult};
use airlock_server::client::Client;
use airlock_store::{Home, IngestRequest, Scope};
use airlock_types::{ActorId, Classification, DatasetName, Zone};
use serde_json::{Value, json};

use airlock_models::reference::{READMISSION_POSITIVE, READMISSION_TARGET};
const COHORT_FEATURES: &[&str] = &[
    "sex",
    "length_of_stay",
    "num_medications",
    "num_lab_procedures",
    "prior_admissions_12mo",
];

/// What the models are trained on.
struct TrainingSet {
    dataset: String,
    features: Vec<FeatureSpec>,
    target: &'static str,
    positive: &'static str,
    patient_column: &'static str,
    /// Columns the validation reports groups by.
    sensitive: &'static [&'static str],
    describe: String,
    /// For the change-control tour: a later extract of the same source (more encounters) and
    /// held-out encounters neither extract holds.
    refresh: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// An extract of the public de-identified readmission table into development, as an attested
/// import: scanned for direct identifiers, with the privacy officer's basis in its lineage.
async fn import_uci(
    officer: &Home,
    name: &str,
    path: &Path,
) -> anyhow::Result<airlock_store::DatasetVersion> {
    Ok(officer
        .import_attested(
            &IngestRequest {
                zone: Zone::Development,
                classification: Classification::Deidentified,
                source_system: "uci-diabetes-130-us".into(),
                dataset: DatasetName::new(name)?,
                files: vec![path.to_path_buf()],
            },
            &airlock_store::Attestation {
                basis: airlock_store::AttestationBasis::PublicDeidentified,
                attested_by: ActorId::new("pat-privacy")?,
                reference: Some(airlock_store::AttestationReference::new(
                    "UCI ML repository dataset 296",
                )?),
            },
            &mut |_, _| {},
        )
        .await?)
}

/// Splits the readmission table (in encounter order) into the first extract (80%), a later
/// one (90%: the next encounters added) and the last 10% held out from both.
fn split_extracts(csv: &Path, dir: &Path) -> anyhow::Result<[std::path::PathBuf; 3]> {
    let text = std::fs::read_to_string(csv)?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let rows: Vec<&str> = lines.collect();
    let (a, b) = (rows.len() * 8 / 10, rows.len() * 9 / 10);
    let mut out = Vec::new();
    for (name, part) in [
        ("extract-1.csv", rows.get(..a)),
        ("extract-2.csv", rows.get(..b)),
        ("holdout.csv", rows.get(b..)),
    ] {
        let path = dir.join(name);
        let mut body = String::with_capacity(text.len());
        body.push_str(header);
        body.push('\n');
        for r in part.unwrap_or_default() {
            body.push_str(r);
            body.push('\n');
        }
        std::fs::write(&path, body)?;
        out.push(path);
    }
    let [x, y, z]: [std::path::PathBuf; 3] = out
        .try_into()
        .map_err(|_| anyhow::anyhow!("three extracts"))?;
    Ok([x, y, z])
}

fn as_actor(home: &Home, actor: &str) -> anyhow::Result<Home> {
    Ok(home.acting_as(ActorId::new(actor)?, home.request_id(), Scope::all()))
}

/// A validation report's headline, its per-group AUROC and the attack (figures only).
fn print_validation(family: &str, status: u16, v: &serde_json::Value, took: std::time::Duration) {
    let at = |p: &str| v.pointer(p).cloned().unwrap_or_default();
    let est =
        |e: serde_json::Value| match (e.get("value").and_then(|x| x.as_f64()), e.get("interval")) {
            (Some(x), Some(i)) if i.is_array() => format!(
                "{x:.3} [{:.3}, {:.3}]",
                i.get(0).and_then(|y| y.as_f64()).unwrap_or(f64::NAN),
                i.get(1).and_then(|y| y.as_f64()).unwrap_or(f64::NAN)
            ),
            (Some(x), _) => format!("{x:.3}"),
            _ => "-".into(),
        };
    println!(
        "    validate {family} -> {status}: report {} on {}, AUROC {}, ECE {}, {} ({:.1?})",
        at("/report/id").as_str().unwrap_or("?"),
        at("/report/dataset").as_str().unwrap_or("?"),
        est(at("/report/metrics/auroc")),
        est(at("/report/metrics/ece")),
        if at("/report/passed") == json!(true) {
            "passed the validation policy".to_owned()
        } else {
            format!("FAILED: {}", at("/report/reasons"))
        },
        took
    );
    for g in at("/report/groups").as_array().into_iter().flatten() {
        let name = format!(
            "{}={}",
            g.get("attribute").and_then(|x| x.as_str()).unwrap_or(""),
            g.get("value").and_then(|x| x.as_str()).unwrap_or("")
        );
        if g.get("too_small") == Some(&json!(true)) {
            println!("      {name:<28} too small to report");
        } else {
            println!(
                "      {name:<28} n {:>6}  AUROC {}",
                g.get("n").and_then(|x| x.as_u64()).unwrap_or(0),
                est(g.get("auroc").cloned().unwrap_or_default())
            );
        }
    }
    let mi = at("/report/membership_inference");
    if let Some(tpr) = mi.get("tpr_at_fpr_0.001").and_then(|x| x.as_f64()) {
        println!(
            "      membership inference (RMIA): AUC {:.3}, TPR {tpr:.4} at 0.1% FPR",
            mi.get("auc").and_then(|x| x.as_f64()).unwrap_or(f64::NAN)
        );
    }
}

/// The shared readmission table when it is there (a public, de-identified research extract),
/// else the demo cohort's registry CSV through the safe-harbor gate (with its notes dropped).
async fn training_set(
    home: &Home,
    root: &Path,
    synthetic_only: bool,
) -> anyhow::Result<TrainingSet> {
    let zip = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/tabular/diabetes130/dataset_diabetes.zip");
    let out = root.join("readmission");
    let unzipped = !synthetic_only
        && zip.is_file()
        && Command::new("unzip")
            .args(["-o", "-q"])
            .arg(&zip)
            .arg("dataset_diabetes/diabetic_data.csv")
            .arg("-d")
            .arg(&out)
            .status()
            .is_ok_and(|s| s.success());
    if unzipped {
        let [first, later, holdout] =
            split_extracts(&out.join("dataset_diabetes/diabetic_data.csv"), &out)?;
        // A public de-identified table enters development as an attested import: scanned for
        // direct identifiers, with the privacy officer's basis in its lineage and the ledger.
        let officer = as_actor(home, "pat-privacy")?;
        let v = import_uci(&officer, "readmission-uci", &first).await?;
        let features = airlock_models::reference::readmission_features();
        return Ok(TrainingSet {
            dataset: format!("{}@{}", v.dataset, v.version),
            features,
            target: READMISSION_TARGET,
            positive: READMISSION_POSITIVE,
            patient_column: "patient_nbr",
            sensitive: &["race", "gender"],
            describe: format!(
                "the public de-identified Diabetes 130-US readmission table (its first {} encounters: a later extract comes in the change-control step), imported into development on the privacy officer's attestation (scanned for identifiers first)",
                v.records
            ),
            refresh: Some((later, holdout)),
        });
    }
    // The synthetic hospital registry the DP tour ingested as PHI (one row per stay),
    // de-identified by a deployment profile: safe harbor, minus the columns the model does not
    // need (minimum necessary): the free-text note, race and ethnicity (a race value such as
    // "White" can equal a patient's surname, which the leak check rightly flags).
    let text = airlock_deid::Profile::builtin_text("safe-harbor")
        .ok_or_else(|| anyhow::anyhow!("the safe-harbor profile is built in"))?;
    let profile = text.replacen(
        "name = \"safe-harbor\"",
        "name = \"demo-registry-safe-harbor\"",
        1,
    ) + &["note", "race", "ethnicity"]
        .iter()
        .map(|c| format!("\n[[csv]]\ncolumn = \"{c}\"\nmethod = \"redact\"\n"))
        .collect::<String>();
    let profile_path = root.join("demo-registry-safe-harbor.toml");
    std::fs::write(&profile_path, profile)?;
    let officer = as_actor(home, "privacy-officer")?;
    let o = super::gate::run_gate(
        &officer,
        &profile_path.to_string_lossy(),
        super::demo_dp::REGISTRY,
        &DatasetName::new("stay-registry-deid")?,
    )
    .await?;
    Ok(TrainingSet {
        dataset: format!("{}@{}", o.version.dataset, o.version.version),
        features: COHORT_FEATURES
            .iter()
            .map(|c| FeatureSpec::Auto((*c).into()))
            .collect(),
        target: "readmitted_30d",
        positive: "1",
        patient_column: "mrn",
        sensitive: &["sex"],
        describe: format!(
            "a synthetic stay registry ({} patients) ingested as PHI, through the safe-harbor gate ({} stays)",
            super::demo_dp::REGISTRY_PATIENTS,
            o.version.records
        ),
        refresh: None,
    })
}

async fn train(home: &Home, set: &TrainingSet, params: Params) -> anyhow::Result<TrainResult> {
    train_named(home, set, "readmission-30d", params).await
}

async fn train_named(
    home: &Home,
    set: &TrainingSet,
    name: &str,
    params: Params,
) -> anyhow::Result<TrainResult> {
    let dana = as_actor(home, "dana-scientist")?;
    let reg = Registry::new(&dana);
    Ok(airlock_registry::train_on_dataset(
        &dana,
        &reg,
        &TrainRequest {
            dataset: set.dataset.clone(),
            file: None,
            target: set.target.into(),
            positive: set.positive.into(),
            features: set.features.clone(),
            params,
            seed: 20_261_129,
            test_fraction: 0.2,
            name: ModelName::new(name)?,
            intended_use: "Flag adult inpatients at high risk of readmission within 30 days for discharge planning; decision support, not a diagnosis.".into(),
            limitations: vec![
                "Trained on one population; validate locally before use.".into(),
                "Not for paediatric or obstetric patients.".into(),
            ],
        },
    )
    .await?)
}

pub(super) fn step(n: u32, what: &str) {
    println!("\n[{n}] {what}");
}

/// Shown predictions a canary needs before the demo promotes it (a deployment's default is
/// 100, and an hour; `airlock.toml`'s `[rollout]`).
pub const DEMO_SOAK: u64 = 5;

/// The tour. `tokens` holds a bearer per demo user. Returns when the monitoring step began
/// (the demo's retention treats the log before it as past its period).
pub async fn tour(
    c: &mut Client,
    home: &Home,
    root: &Path,
    tokens: &BTreeMap<&'static str, String>,
    synthetic_only: bool,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let bearer = |user: &str| {
        format!(
            "Bearer {}",
            tokens.get(user).map(String::as_str).unwrap_or("")
        )
    };
    step(
        9,
        "a data scientist trains readmission models in development, on de-identified data",
    );
    let t = Instant::now();
    let set = training_set(home, root, synthetic_only).await?;
    println!("    training data: {}", set.describe);
    let v1 = train(home, &set, Params::Logistic(LogisticParams::default())).await?;
    let v2 = train(home, &set, Params::Gbdt(GbdtParams::default())).await?;
    for r in [&v1, &v2] {
        println!(
            "    {} {}: held-out AUROC {:.4}, AUPRC {:.4}, Brier {:.4} -> registered {} (signed, encrypted in {})",
            r.version.card.family,
            r.dataset,
            r.experiment.metrics.auroc,
            r.experiment.metrics.auprc,
            r.experiment.metrics.brier,
            r.version.label(),
            r.version.zone
        );
    }
    println!("    ({:.2?})", t.elapsed());
    if v1.split.as_ref().map(|s| &s.test) != v2.split.as_ref().map(|s| &s.test) {
        anyhow::bail!("the two training runs did not hold out the same rows");
    }
    let h1 = v1.version.hash.to_hex();
    let h2 = v2.version.hash.to_hex();

    // The same model trained by DP-SGD: its privacy loss is a number on its card.
    let t = Instant::now();
    let dp = train_named(
        home,
        &set,
        "readmission-30d-dp",
        Params::Logistic(LogisticParams {
            dp: Some(airlock_models::DpSgd {
                delta: 1e-6,
                sampling_rate: 0.01,
                epochs: 3,
                ..airlock_models::DpSgd::new(1.0)
            }),
            ..LogisticParams::default()
        }),
    )
    .await?;
    if let Params::Logistic(LogisticParams { dp: Some(d), .. }) = &dp.experiment.params {
        println!(
            "    logistic by DP-SGD: held-out AUROC {:.4} (non-private {:.4}); its card records epsilon {:.3} at delta {:e} (RDP accountant, noise multiplier {:.3}, clip {}, sampling rate {}, {} steps) -> registered {} ({:.2?})",
            dp.experiment.metrics.auroc,
            v1.experiment.metrics.auroc,
            d.spent_epsilon.unwrap_or(f64::NAN),
            d.delta,
            d.noise_multiplier.unwrap_or(f64::NAN),
            d.clip,
            d.sampling_rate,
            d.steps.unwrap_or(0),
            dp.version.label(),
            t.elapsed()
        );
    }
    let dp_hash = dp.version.hash.to_hex();

    step(
        10,
        "approval: a clinical reviewer and the privacy officer, never the person who trained it",
    );
    let call = async |c: &mut Client,
                      user: &str,
                      path: String,
                      body: Value|
           -> anyhow::Result<(u16, Value)> {
        let auth = bearer(user);
        let r = c
            .send(
                "POST",
                &path,
                &[("authorization", &auth), ("x-purpose-of-use", "treatment")],
                Some(&body),
            )
            .await?;
        Ok((r.status, r.json()))
    };
    // The DP-SGD model through the same validation: its attack beside the others' below.
    let t = Instant::now();
    let (s, v) = call(
        c,
        "dana-scientist",
        format!("/v1/models/readmission-30d-dp/versions/{dp_hash}/validate"),
        json!({"reason": "held-out report reviewed", "dataset": set.dataset, "sensitive": set.sensitive}),
    )
    .await?;
    print_validation("logistic by DP-SGD", s, &v, t.elapsed());
    for (h, family) in [(&h1, "logistic"), (&h2, "gbdt")] {
        let base = format!("/v1/models/readmission-30d/versions/{h}");
        let t = Instant::now();
        let (s, v) = call(
            c,
            "dana-scientist",
            format!("{base}/validate"),
            json!({"reason": "held-out report reviewed", "dataset": set.dataset, "sensitive": set.sensitive}),
        )
        .await?;
        print_validation(family, s, &v, t.elapsed());
        if s != 200 || v.pointer("/report/passed") != Some(&json!(true)) {
            anyhow::bail!("the {family} model did not pass the validation policy");
        }
        let (s, _) = call(
            c,
            "dana-scientist",
            format!("{base}/approve"),
            json!({"role": "data-scientist", "reason": "my own model"}),
        )
        .await?;
        if h == &h1 {
            println!("    dana-scientist approves her own model -> {s}");
        }
        call(c, "rita-reviewer", format!("{base}/approve"), json!({"role": "clinical-reviewer", "reason": "clinically plausible features; card reviewed"})).await?;
        let (s, j) = call(
            c,
            "pat-privacy",
            format!("{base}/approve"),
            json!({"role": "privacy-officer", "reason": "trained on de-identified data only"}),
        )
        .await?;
        println!(
            "    {} approved by rita-reviewer (clinical-reviewer) and pat-privacy (privacy-officer) -> {s} {}",
            short(h),
            field(&j, "/transition/to").as_str().unwrap_or("?")
        );
    }

    let dana = as_actor(home, "dana-scientist")?;
    let mut columns: Vec<&str> = set.features.iter().map(FeatureSpec::name).collect();
    columns.push(set.target);
    columns.push(set.patient_column);
    let (_, table) =
        airlock_registry::training::read_table(&dana, &set.dataset, None, &columns).await?;
    let signature = v1
        .version
        .card
        .experiment
        .as_ref()
        .map(|e| e.signature.clone());
    // Held-out rows only (both versions were split with the same seed, so these are held out
    // for both): the outcome metrics below are not measured on training data.
    // Spread over the whole held-out set: the table is in encounter order, and its first
    // encounters (1999) differ from the rest, which monitoring rightly calls drift.
    let rows: Vec<usize> = v1
        .split
        .as_ref()
        .map(|sp| {
            let stride = (sp.test.len() / 300).max(1);
            sp.test.iter().copied().step_by(stride).take(300).collect()
        })
        .unwrap_or_default();
    step(
        11,
        "MLOps deploys: silent first, then a canary (at most half the patients), then production once it has soaked",
    );
    let base1 = format!("/v1/models/readmission-30d/versions/{h1}");
    let base2 = format!("/v1/models/readmission-30d/versions/{h2}");
    let (s, _) = call(
        c,
        "mo-mlops",
        format!("{base1}/deploy"),
        json!({"state": "canary", "canary_percent": 50, "reason": "skip silent"}),
    )
    .await?;
    println!("    straight from approved to canary -> {s} (refused by the lifecycle)");
    call(
        c,
        "mo-mlops",
        format!("{base1}/deploy"),
        json!({"state": "silent", "reason": "shadow the current process"}),
    )
    .await?;
    // A first model starts in silent mode: scored and logged, nothing shown.
    if let Some(&row) = rows.first() {
        let (mrn, features, _) = request_of(&table, row, &set, signature.as_ref());
        let (s, j) = call(
            c,
            "casey-clinician",
            "/v1/models/readmission-30d/predict".into(),
            json!({"patient_mrn": mrn, "features": features}),
        )
        .await?;
        println!(
            "    silent only: a clinician's request -> {s}, display {}, {} silent version(s) scored and logged, no score shown",
            field(&j, "/display"),
            field(&j, "/silent_versions_logged")
        );
    }
    let (s, _) = call(
        c,
        "mo-mlops",
        format!("{base1}/deploy"),
        json!({"state": "canary", "canary_percent": 100, "reason": "everyone at once"}),
    )
    .await?;
    println!(
        "    a canary for 100% of patients -> {s} (refused: the rollout rules allow at most 50%)"
    );
    call(
        c,
        "mo-mlops",
        format!("{base1}/deploy"),
        json!({"state": "canary", "canary_percent": 50, "reason": "no production model yet"}),
    )
    .await?;
    let (s, j) = call(
        c,
        "mo-mlops",
        "/v1/models/readmission-30d/promote".into(),
        json!({"reason": "looks fine"}),
    )
    .await?;
    println!(
        "    promote at once -> {s}: {}",
        field(&j, "/message").as_str().unwrap_or("?")
    );
    // The canary soaks: clinicians' requests for a few patients, half of them shown by it.
    let mut soaked = 0;
    for &row in rows.iter().rev().take(2 * DEMO_SOAK as usize + 8) {
        let (mrn, features, _) = request_of(&table, row, &set, signature.as_ref());
        let (s, _) = call(
            c,
            "casey-clinician",
            "/v1/models/readmission-30d/predict".into(),
            json!({"patient_mrn": mrn, "features": features}),
        )
        .await?;
        soaked += usize::from(s == 200);
    }
    let (s, j) = call(
        c,
        "mo-mlops",
        "/v1/models/readmission-30d/promote".into(),
        json!({"reason": "canary held"}),
    )
    .await?;
    let soak = field(&j, "/transitions")
        .as_array()
        .and_then(|t| t.last())
        .and_then(|t| t.get("reason"))
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    println!(
        "    after {soaked} canary predictions: logistic {} silent -> canary -> production ({s}): \"{soak}\"",
        short(&h1)
    );
    call(
        c,
        "mo-mlops",
        format!("{base2}/deploy"),
        json!({"state": "silent", "reason": "shadow production"}),
    )
    .await?;
    // Silent mode's exit criterion: the demo's rules ask for one silent prediction.
    if let Some(&row) = rows.first() {
        let (mrn, features, _) = request_of(&table, row, &set, signature.as_ref());
        call(
            c,
            "casey-clinician",
            "/v1/models/readmission-30d/predict".into(),
            json!({"patient_mrn": mrn, "features": features}),
        )
        .await?;
    }
    let (s, _) = call(
        c,
        "mo-mlops",
        format!("{base2}/deploy"),
        json!({"state": "canary", "canary_percent": 25, "reason": "a quarter of patients"}),
    )
    .await?;
    println!(
        "    gbdt {}: silent -> canary for 25% of patients, chosen per patient by a keyed hash ({s})",
        short(&h2)
    );

    step(
        12,
        "a clinician asks for predictions (purpose: treatment); every request is in the ledger",
    );
    let t = Instant::now();
    let mut shown: BTreeMap<String, usize> = BTreeMap::new();
    let mut first: Option<Value> = None;
    let mut ids = Vec::new();
    for &row in &rows {
        let (mrn, features, label) = request_of(&table, row, &set, signature.as_ref());
        let (s, j) = call(
            c,
            "casey-clinician",
            "/v1/models/readmission-30d/predict".into(),
            json!({"patient_mrn": mrn, "features": features}),
        )
        .await?;
        if s != 200 {
            continue;
        }
        *shown
            .entry(short(field(&j, "/version").as_str().unwrap_or("?")))
            .or_default() += 1;
        if let Some(id) = field(&j, "/prediction_id").as_u64() {
            ids.push((id, label));
        }
        if first.is_none() {
            first = Some(j);
        }
    }
    let n = ids.len();
    println!(
        "    {n} predictions in {:.2?} ({:.0}/s over one connection); shown by version: {shown:?}",
        t.elapsed(),
        n as f64 / t.elapsed().as_secs_f64().max(1e-9)
    );
    if let Some(j) = &first {
        println!(
            "    one response: score {:.3}, confidence {:.3}, {} features, version {}..., {} silent version(s) logged",
            field(j, "/score").as_f64().unwrap_or_default(),
            field(j, "/confidence").as_f64().unwrap_or_default(),
            field(j, "/features").as_array().map_or(0, Vec::len),
            short(field(j, "/version").as_str().unwrap_or("")),
            field(j, "/silent_versions_logged")
        );
    }
    let (s, _) = call(
        c,
        "dana-scientist",
        "/v1/models/readmission-30d/predict".into(),
        json!({"patient_mrn": "x", "features": {}}),
    )
    .await?;
    println!(
        "    dana-scientist asks for a prediction -> {s} (clinicians and EHR services only, for treatment)"
    );
    if let Some((id, _)) = ids.first() {
        let (s, j) = call(
            c,
            "casey-clinician",
            format!("/v1/predictions/{id}/override"),
            json!({"reason": "information-not-in-model", "decision": "high-risk"}),
        )
        .await?;
        println!(
            "    casey-clinician overrides prediction {id} (coded reason, no free text) -> {s}, ledger entry {}",
            field(&j, "/override_id")
        );
        if let Ok(bytes) = home.ledger().entry_bytes(*id) {
            println!(
                "    the prediction's ledger entry:\n      {}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    for (id, label) in &ids {
        call(
            c,
            "casey-clinician",
            format!("/v1/predictions/{id}/outcome"),
            json!({"label": label}),
        )
        .await?;
    }
    let auth = bearer("mo-mlops");
    let rep = get(c, &auth, "/v1/models/readmission-30d/report").await?;
    for v in field(&rep, "/report/versions")
        .as_array()
        .into_iter()
        .flatten()
    {
        let h = field(v, "/version").as_str().unwrap_or("");
        println!(
            "    report {}...: shown {}, silent {}, outcome AUROC {}",
            short(h),
            field(v, "/shown"),
            field(v, "/silent"),
            field(v, "/auroc")
                .as_f64()
                .map_or("n/a".into(), |a| format!("{a:.3}"))
        );
    }
    for a in field(&rep, "/report/agreement")
        .as_array()
        .into_iter()
        .flatten()
    {
        let h = field(a, "/version").as_str().unwrap_or("");
        println!(
            "    {}... against what was shown: {} requests, agreement {:.1}%, mean |score difference| {:.3}",
            short(h),
            field(a, "/requests"),
            field(a, "/agreement").as_f64().unwrap_or_default() * 100.0,
            field(a, "/mean_abs_diff").as_f64().unwrap_or_default()
        );
    }
    // The broken feed of the monitoring step: held-out rows not asked about yet, each with
    // the signature's first numeric feature at its minimum and its first categorical feature
    // at its first category (an interface default after an EHR upgrade).
    let drifted: Vec<(String, Value)> = v1
        .split
        .as_ref()
        .map(|sp| {
            let stride = (sp.test.len() / 200).max(1);
            sp.test
                .iter()
                .copied()
                .skip(stride / 2)
                .step_by(stride)
                .take(200)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .map(|row| {
            let (mrn, mut features, _) = request_of(&table, row, &set, signature.as_ref());
            // The broken feed: two numeric features at their smallest value and one
            // categorical feature at its first category (interface defaults after an EHR
            // upgrade); the other features as recorded.
            let kinds = signature
                .as_ref()
                .map(|s| s.features.as_slice())
                .unwrap_or_default();
            for f in kinds
                .iter()
                .filter(|f| matches!(f.kind, FeatureKind::Numeric { .. }))
                .take(2)
            {
                if let (FeatureKind::Numeric { min, .. }, Some(slot)) =
                    (&f.kind, features.get_mut(&f.name))
                {
                    *slot = json!(min);
                }
            }
            if let Some(f) = kinds
                .iter()
                .find(|f| matches!(f.kind, FeatureKind::Categorical { .. }))
                && let (FeatureKind::Categorical { categories }, Some(slot)) =
                    (&f.kind, features.get_mut(&f.name))
                && let Some(first) = categories.first()
            {
                *slot = json!(first);
            }
            (mrn, features)
        })
        .collect();
    let monitoring_from = chrono::Utc::now();
    super::demo_monitor::tour(c, tokens, 13, &drifted).await?;
    match &set.refresh {
        Some((later, holdout)) => plan_tour(c, home, &call, &h1, later, holdout)
            .await
            .map(|()| monitoring_from),
        None => {
            println!("\n    (the change-control step needs the shared readmission table: skipped)");
            Ok(monitoring_from)
        }
    }
}

/// A change control plan for the logistic model, approved once by the quorum; a later extract
/// arrives and the model is retrained under the plan, checked clause by clause, approved by the
/// plan and deployed silent; its canary waits for the silent predictions the plan asks for.
async fn plan_tour<F>(
    c: &mut Client,
    home: &Home,
    call: &F,
    from: &str,
    later: &Path,
    holdout: &Path,
) -> anyhow::Result<()>
where
    F: AsyncFn(&mut Client, &str, String, Value) -> anyhow::Result<(u16, Value)>,
{
    step(
        14,
        "a change control plan: updates agreed in advance, then a retrain under it",
    );
    let plan = r#"plan = "readmission-refresh"
model = "readmission-30d"

[[modification]]
kind = "retrain"

[verification]
sensitive = ["race", "gender"]
max_auroc_drop = 0.02
max_ece = 0.05
max_equalized_odds_increase = 0.05
max_membership_tpr = 0.01

[rollout]
min_silent_predictions = 100
max_canary_percent = 10
rollback_auroc_below = 0.6
rollback_min_outcomes = 100
"#;
    let (s, j) = call(
        c,
        "dana-scientist",
        "/v1/models/readmission-30d/plans".into(),
        json!({"text": plan}),
    )
    .await?;
    println!(
        "    dana-scientist proposes plan readmission-refresh (retrain on newer extracts; AUROC may fall at most 0.02, ECE at most 0.05, equalized odds +0.05, attack TPR at most 1%; silent for 100 predictions, canary at most 10%, rolled back by itself if its AUROC on 100 outcomes is under 0.6) -> {s} {}",
        field(&j, "/state").as_str().unwrap_or("?")
    );
    for (who, role) in [
        ("rita-reviewer", "clinical-reviewer"),
        ("pat-privacy", "privacy-officer"),
    ] {
        let (s, j) = call(
            c,
            who,
            "/v1/models/readmission-30d/plans/readmission-refresh/approve".into(),
            json!({"role": role, "reason": "clauses and rollout reviewed"}),
        )
        .await?;
        println!(
            "    {who} approves it as {role} -> {s} {}",
            field(&j, "/state").as_str().unwrap_or("?")
        );
    }
    let officer = as_actor(home, "pat-privacy")?;
    let mut attested = Vec::new();
    for (name, path) in [
        ("readmission-uci", later),
        ("readmission-uci-holdout", holdout),
    ] {
        let v = import_uci(&officer, name, path).await?;
        attested.push(format!(
            "{}@{} ({} encounters)",
            v.dataset, v.version, v.records
        ));
    }
    println!(
        "    a later extract and encounters held out from both arrive: {}",
        attested.join(", ")
    );
    let t = Instant::now();
    let (s, j) = call(
        c,
        "dana-scientist",
        "/v1/models/readmission-30d/update".into(),
        json!({
            "plan": "readmission-refresh",
            "from": from,
            "dataset": "readmission-uci@2",
            "validate_on": "readmission-uci-holdout",
            "reason": "quarterly refresh",
        }),
    )
    .await?;
    println!(
        "    dana-scientist retrains under the plan -> {s} ({:.1?}): candidate {} {}, replacing {}",
        t.elapsed(),
        field(&j, "/version/hash")
            .as_str()
            .map(short)
            .unwrap_or_default(),
        if field(&j, "/conforming") == &json!(true) {
            "conforms and is approved by the plan"
        } else {
            "broke the plan: the full approval path applies"
        },
        field(&j, "/replaces").as_str().unwrap_or("?")
    );
    for cl in field(&j, "/clauses").as_array().into_iter().flatten() {
        println!(
            "      {} {:<50} {}",
            if field(cl, "/passed") == &json!(true) {
                "held "
            } else {
                "BROKE"
            },
            field(cl, "/clause").as_str().unwrap_or(""),
            field(cl, "/detail").as_str().unwrap_or("")
        );
    }
    if field(&j, "/conforming") == &json!(true) {
        let h = field(&j, "/version/hash").as_str().unwrap_or("").to_owned();
        let base = format!("/v1/models/readmission-30d/versions/{h}");
        let (s, _) = call(
            c,
            "mo-mlops",
            format!("{base}/deploy"),
            json!({"state": "silent", "reason": "the plan's rollout: silent first"}),
        )
        .await?;
        let (s2, j2) = call(
            c,
            "mo-mlops",
            format!("{base}/deploy"),
            json!({"state": "canary", "canary_percent": 10, "reason": "too early"}),
        )
        .await?;
        println!(
            "    mo-mlops deploys it silent -> {s}; a canary at once -> {s2}: {}",
            field(&j2, "/message").as_str().unwrap_or("")
        );
    }
    Ok(())
}

fn field<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}

fn short(h: &str) -> String {
    h.chars().take(12).collect()
}

async fn get(c: &mut Client, auth: &str, path: &str) -> anyhow::Result<Value> {
    Ok(c.send("GET", path, &[("authorization", auth)], None)
        .await?
        .json())
}

/// One prediction request from a table row: the patient id, the features (typed by the
/// signature), and the label.
fn request_of(
    table: &Table,
    row: usize,
    set: &TrainingSet,
    signature: Option<&airlock_models::Signature>,
) -> (String, Value, bool) {
    let cell = |name: &str| {
        table
            .column(name)
            .ok()
            .and_then(|c| c.cells().get(row).cloned())
            .unwrap_or_default()
    };
    let mut features = serde_json::Map::new();
    for f in signature.map(|s| s.features.as_slice()).unwrap_or_default() {
        let v = cell(&f.name);
        let value = match f.kind {
            FeatureKind::Numeric { .. } => {
                v.parse::<f64>().map(Value::from).unwrap_or(Value::from(v))
            }
            FeatureKind::Categorical { .. } => Value::from(v),
        };
        features.insert(f.name.clone(), value);
    }
    (
        cell(set.patient_column),
        Value::Object(features),
        cell(set.target) == set.positive,
    )
}
