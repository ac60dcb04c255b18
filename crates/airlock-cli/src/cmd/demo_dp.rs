//! The demo's differential-privacy tour, over the API: the privacy officer declares the
//! clinical FHIR dataset's DP metadata and a small budget for the data scientist, who asks
//! three questions of identified data she may not read (answered through the built-in views,
//! one of them a join of two private tables on the patient), then a fourth that the budget
//! refuses. Then synthetic data: a 2,000-patient stay registry is ingested as PHI, the
//! privacy officer declares its columns, and the data scientist receives synthetic rows at
//! ε = 1 with their fidelity, utility and privacy report.

use std::collections::BTreeMap;

use std::path::Path;

use airlock_server::client::Client;
use airlock_store::{Home, IngestRequest, Scope};
use airlock_types::{ActorId, Classification, DatasetName, Zone};
use serde_json::{Value, json};

/// Patients in the registry the synthetic-data tour (and the model tour without the shared
/// table) uses: enough stays (about 5,400) for marginals to rise above the noise at ε = 1.
pub const REGISTRY_PATIENTS: usize = 2_000;

/// The registry's dataset name.
pub const REGISTRY: &str = "stay-registry";

fn bearer(tokens: &BTreeMap<&str, String>, user: &str) -> String {
    format!("Bearer {}", tokens.get(user).cloned().unwrap_or_default())
}

/// One answer's rows as `key=value` pairs, with the first column's accuracy.
fn summary(answer: &Value) -> String {
    let rows = answer
        .get("rows")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r.as_object()
                        .map(|o| {
                            o.iter()
                                .map(|(k, v)| match v {
                                    Value::Number(n) => match n.as_f64() {
                                        Some(x) if x.fract() != 0.0 => format!("{k}={x:.1}"),
                                        _ => format!("{k}={n}"),
                                    },
                                    Value::String(s) => format!("{k}={s}"),
                                    other => format!("{k}={other}"),
                                })
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    let accuracy = answer
        .get("accuracy")
        .and_then(Value::as_object)
        .map(|a| {
            a.iter()
                .map(|(k, v)| {
                    format!(
                        "{k} ±{}",
                        v.as_f64().map_or("?".into(), |x| format!("{x:.0}"))
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    format!("{rows}  (95%: {accuracy})")
}

/// The tour.
pub async fn tour(
    c: &mut Client,
    tokens: &BTreeMap<&str, String>,
    home: &Home,
    root: &Path,
) -> anyhow::Result<()> {
    println!(
        "\n  Differential privacy: dana-scientist asks questions of the identified cohort, answered with noise, within a budget"
    );
    let pat = bearer(tokens, "pat-privacy");
    let dana = bearer(tokens, "dana-scientist");
    let meta = json!({
        "dataset": "ehr-fhir",
        "unit": "patient_id",
        "max_rows_per_unit": 10,
        "table_rows_per_unit": {"patient_demographics": 1},
        "domains": {
            "gender": ["female", "male"],
            "class": ["IMP", "EMER"],
        },
    });
    let r = c
        .send(
            "POST",
            "/v1/dp/metadata",
            &[("authorization", &pat)],
            Some(&meta),
        )
        .await?;
    println!(
        "    pat-privacy declares ehr-fhir's DP metadata (unit: the patient; at most 10 rows each, 1 in patient_demographics; domains of gender and encounter class) -> {}",
        r.status
    );
    for (body, what) in [
        (
            json!({"dataset": "ehr-fhir", "analyst": "dana-scientist", "epsilon": 1.5}),
            "dana-scientist's budget: epsilon 1.5 (pure)",
        ),
        (
            json!({"dataset": "ehr-fhir", "epsilon": 4.0}),
            "the dataset's total: epsilon 4",
        ),
    ] {
        let r = c
            .send(
                "POST",
                "/v1/dp/budgets",
                &[("authorization", &pat)],
                Some(&body),
            )
            .await?;
        println!("    pat-privacy sets {what} -> {}", r.status);
    }
    let questions = [
        (
            "patients by gender",
            "SELECT gender, COUNT(*) AS patients FROM patient_demographics GROUP BY gender",
        ),
        (
            "patients by encounter class",
            "SELECT class, COUNT(DISTINCT patient_id) AS patients FROM encounters GROUP BY class",
        ),
        (
            "patients with type 2 diabetes by gender (a join of two private tables on the patient)",
            "SELECT p.gender, COUNT(DISTINCT c.patient_id) AS diabetic FROM conditions c JOIN patient_demographics p ON c.patient_id = p.patient_id WHERE c.code = '44054006' GROUP BY p.gender",
        ),
        (
            "one more: encounters by class",
            "SELECT class, COUNT(*) AS n FROM encounters GROUP BY class",
        ),
    ];
    for (what, sql) in questions {
        let body = json!({"dataset": "ehr-fhir", "sql": sql, "epsilon": 0.5});
        let r = c
            .send(
                "POST",
                "/v1/dp/queries",
                &[("authorization", &dana)],
                Some(&body),
            )
            .await?;
        let a = r.json();
        if r.status == 200 {
            println!(
                "    dana-scientist asks {what} at epsilon 0.5 -> {}: {}; epsilon {:.1} left",
                r.status,
                summary(&a),
                a.pointer("/remaining/analyst_epsilon")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0)
            );
        } else {
            println!(
                "    dana-scientist asks {what} at epsilon 0.5 -> {}: {}",
                r.status,
                a.get("message").and_then(Value::as_str).unwrap_or("")
            );
        }
    }
    let body = json!({"dataset": "ehr-fhir", "sql": "SELECT patient_id, birth_date FROM patient_demographics", "epsilon": 0.01});
    let r = c
        .send(
            "POST",
            "/v1/dp/queries",
            &[("authorization", &dana)],
            Some(&body),
        )
        .await?;
    println!(
        "    dana-scientist asks for rows instead -> {}: {} (nothing spent)",
        r.status,
        r.json()
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
    );
    synth_tour(c, tokens, home, root).await
}

/// Synthetic rows from the registry at ε = 1, and a refused identifier column.
async fn synth_tour(
    c: &mut Client,
    tokens: &BTreeMap<&str, String>,
    home: &Home,
    root: &Path,
) -> anyhow::Result<()> {
    println!(
        "\n  Synthetic data: dana-scientist receives rows that stand in for a clinical table, at epsilon 1"
    );
    let t = std::time::Instant::now();
    let dir = root.join("registry");
    std::fs::create_dir_all(&dir)?;
    let stays =
        super::generate::generate_registry_csv(REGISTRY_PATIENTS, 7, &dir.join("cohort.csv"))?;
    let engineer = home.acting_as(
        ActorId::new("data-engineer")?,
        home.request_id(),
        Scope::all(),
    );
    let v = engineer
        .ingest(
            &IngestRequest {
                zone: Zone::Clinical,
                classification: Classification::Phi,
                source_system: "demo-ehr-registry".into(),
                dataset: DatasetName::new(REGISTRY)?,
                files: vec![dir.join("cohort.csv")],
            },
            &mut |_, _| {},
        )
        .await?;
    println!(
        "    data-engineer ingests a stay registry ({REGISTRY_PATIENTS} patients, {stays} stays, CSV) as PHI -> {}@{} ({:.1?})",
        v.dataset,
        v.version,
        t.elapsed()
    );
    let pat = bearer(tokens, "pat-privacy");
    let dana = bearer(tokens, "dana-scientist");
    let meta = json!({
        "dataset": REGISTRY,
        "unit": "mrn",
        "max_rows_per_unit": 4,
        "bounds": {
            "age": [0.0, 100.0],
            "length_of_stay": [1.0, 15.0],
            "num_medications": [0.0, 12.0],
            "num_lab_procedures": [0.0, 15.0],
            "prior_admissions_12mo": [0.0, 5.0],
        },
        "bins": {"age": 10},
        "domains": {
            "sex": ["F", "M"],
            "ethnicity": ["Hispanic or Latino", "Not Hispanic or Latino"],
            "readmitted_30d": ["0", "1"],
        },
    });
    let r = c
        .send(
            "POST",
            "/v1/dp/metadata",
            &[("authorization", &pat)],
            Some(&meta),
        )
        .await?;
    println!(
        "    pat-privacy declares {REGISTRY}'s columns (unit: the MRN, at most 4 stays each; bounds and bins of 5 numeric columns; domains of sex, ethnicity, readmission) -> {}",
        r.status
    );
    for (analyst, epsilon) in [(Some("dana-scientist"), 2.0), (None, 4.0)] {
        let body =
            json!({"dataset": REGISTRY, "analyst": analyst, "epsilon": epsilon, "delta": 1e-6});
        let r = c
            .send(
                "POST",
                "/v1/dp/budgets",
                &[("authorization", &pat)],
                Some(&body),
            )
            .await?;
        println!(
            "    pat-privacy sets {} on {REGISTRY}: epsilon {epsilon} at delta 1e-6 (zCDP) -> {}",
            analyst.map_or("the dataset's total".to_owned(), |a| format!(
                "{a}'s budget"
            )),
            r.status
        );
    }
    let body = json!({"dataset": REGISTRY, "epsilon": 1.0, "columns": ["mrn", "age"], "out_dataset": "registry-synthetic"});
    let r = c
        .send(
            "POST",
            "/v1/dp/synthetic",
            &[("authorization", &dana)],
            Some(&body),
        )
        .await?;
    println!(
        "    dana-scientist asks to synthesise the MRN column -> {}: {} (nothing spent)",
        r.status,
        r.json()
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
    );
    let t = std::time::Instant::now();
    let body = json!({
        "dataset": REGISTRY,
        "epsilon": 1.0,
        "target": "readmitted_30d",
        "positive": "1",
        "out_dataset": "registry-synthetic",
        "seed": 1,
    });
    let r = c
        .send(
            "POST",
            "/v1/dp/synthetic",
            &[("authorization", &dana)],
            Some(&body),
        )
        .await?;
    if r.status == 200 {
        println!(
            "    dana-scientist synthesises {REGISTRY} (MST over every declared column) -> {} ({:.1?}):",
            r.status,
            t.elapsed()
        );
        super::synth::print_result(&r.json(), "      ");
    } else {
        anyhow::bail!(
            "synthesis failed: {} {}",
            r.status,
            r.json()
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
        );
    }
    Ok(())
}
