//! The demo's differential-privacy tour, over the API: the privacy officer declares the
//! clinical FHIR dataset's DP metadata and a small budget for the data scientist, who asks
//! three questions of identified data she may not read (answered through the built-in views,
//! one of them a join of two private tables on the patient), then a fourth that the budget
//! refuses.

use std::collections::BTreeMap;

use airlock_server::client::Client;
use serde_json::{Value, json};

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
pub async fn tour(c: &mut Client, tokens: &BTreeMap<&str, String>) -> anyhow::Result<()> {
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
    Ok(())
}
