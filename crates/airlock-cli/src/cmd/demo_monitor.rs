//! The demo's monitoring tour: MLOps sets the model's alert rules, the security administrator
//! registers an on-call webhook (a receiver in this process that checks each signature), the
//! monitoring report shows production stable, then a batch from a broken feed arrives: the
//! rules fire, the receiver gets signed alerts, the canary is rolled back by the rule, and the
//! drift report names the features that moved.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use airlock_server::client::Client;
use serde_json::{Value, json};

static NULL: Value = Value::Null;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The demo's rules: small windows, so a few hundred predictions decide.
/// Drift is judged by statistical tests at p < 0.01 per feature: at 100 predictions a window,
/// Evidently's distances at 0.1 flag features that did not move.
const DEMO_RULES: &str = r#"# Demo thresholds: windows of 100 predictions.
[[rule]]
name = "feature-drift"
measure = "drifted_features"
at_least = 3
window = 100
min_samples = 100
consecutive = 2
severity = "critical"
rollback_canary = true
statistical_tests = true
drift_threshold = 0.01

[[rule]]
name = "estimated-auroc"
measure = "estimated_auroc"
below = 0.55
window = 100
min_samples = 100
consecutive = 2
severity = "warning"
"#;

type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A webhook receiver on loopback: answers 204, keeps each request's head and body.
async fn receiver() -> anyhow::Result<(String, Received)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/on-call", listener.local_addr()?);
    let got: Received = Arc::default();
    let keep = Arc::clone(&got);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let keep = Arc::clone(&keep);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = s.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let head = text.get(..end).unwrap_or_default().to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if let Some(body) = buf.get(end + 4..end + 4 + len) {
                        if let Ok(mut k) = keep.lock() {
                            k.push((head, body.to_vec()));
                        }
                        let _ = s
                            .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                }
            });
        }
    });
    Ok((url, got))
}

fn signed_by(secret: &[u8], head: &str, body: &[u8]) -> bool {
    use hmac::Mac as _;
    let Ok(mut mac) = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    let want = format!(
        "x-airlock-signature: sha256={}",
        hex::encode(mac.finalize().into_bytes())
    );
    head.lines().any(|l| l.trim() == want)
}

/// The tour, step `n`. `normal` predictions were made in the step before; `drifted` are the
/// requests of the broken feed.
pub async fn tour(
    c: &mut Client,
    tokens: &BTreeMap<&'static str, String>,
    n: u32,
    drifted: &[(String, Value)],
) -> anyhow::Result<()> {
    let bearer = |user: &str| {
        format!(
            "Bearer {}",
            tokens.get(user).map(String::as_str).unwrap_or("")
        )
    };
    let post = async |c: &mut Client, user: &str, path: &str, body: Value| {
        let auth = bearer(user);
        let r = c
            .send(
                "POST",
                path,
                &[("authorization", &auth), ("x-purpose-of-use", "treatment")],
                Some(&body),
            )
            .await?;
        anyhow::Ok((r.status, r.json()))
    };
    let get = async |c: &mut Client, user: &str, path: &str| {
        let auth = bearer(user);
        let r = c
            .send("GET", path, &[("authorization", &auth)], None)
            .await?;
        anyhow::Ok((r.status, r.json()))
    };
    super::demo_models::step(
        n,
        "production monitoring: drift against the training profile, estimated and realised performance, alert rules, a signed webhook and a rollback by rule",
    );
    let model = "/v1/models/readmission-30d";
    let (s, r) = post(
        c,
        "mo-mlops",
        &format!("{model}/monitoring/rules"),
        json!({"toml": DEMO_RULES, "reason": "demo thresholds: windows of 100 predictions"}),
    )
    .await?;
    println!(
        "    mo-mlops sets the model's alert rules -> {s}: version {}, sha256 {}..., {} rules (three features drifted, p < 0.01, in two consecutive windows of 100 predictions roll a canary back)",
        r.get("version").unwrap_or(&NULL),
        r.get("hash")
            .unwrap_or(&NULL)
            .as_str()
            .unwrap_or("")
            .get(..12)
            .unwrap_or(""),
        r.get("rules")
            .unwrap_or(&NULL)
            .get("rule")
            .unwrap_or(&NULL)
            .as_array()
            .map_or(0, Vec::len)
    );
    let (url, received) = receiver().await?;
    let (s, w) = post(
        c,
        "mo-mlops",
        "/v1/monitoring/webhooks",
        json!({"name": "on-call", "url": url}),
    )
    .await?;
    println!("    mo-mlops registers a webhook -> {s} (the security administrator's job)");
    let (s, w2) = post(
        c,
        "sam-security",
        "/v1/monitoring/webhooks",
        json!({"name": "on-call", "url": url}),
    )
    .await?;
    let secret =
        hex::decode(w2.get("secret").unwrap_or(&NULL).as_str().unwrap_or("")).unwrap_or_default();
    println!(
        "    sam-security registers the on-call webhook (loopback receiver) -> {s}; its HMAC-SHA256 secret is shown once{}",
        if w.get("secret").is_some() {
            " (and leaked!)"
        } else {
            ""
        }
    );
    let (s, rep) = get(
        c,
        "mo-mlops",
        &format!("{model}/monitoring?last=300&tests=true&threshold=0.2"),
    )
    .await?;
    println!(
        "    the monitoring report over the last 300 predictions per version (statistical tests; operating threshold 0.2) -> {s}:"
    );
    super::monitor::print_report(&rep);
    let (_, e) = post(
        c,
        "mo-mlops",
        &format!("{model}/monitoring/evaluate"),
        json!({}),
    )
    .await?;
    print_evaluation(&e);
    // A feed breaks: every request now carries one numeric feature at its minimum and one
    // categorical feature at a single value (an interface default after an EHR upgrade).
    let mut ok = 0;
    for (mrn, features) in drifted {
        let (s, _) = post(
            c,
            "casey-clinician",
            &format!("{model}/predict"),
            json!({"patient_mrn": mrn, "features": features}),
        )
        .await?;
        ok += usize::from(s == 200);
    }
    println!(
        "    a broken feed: {ok} predictions whose inputs carry a default lab count and a default category"
    );
    // The server evaluates every 200 logged predictions too, so the rules may have fired
    // during the feed; evaluating now catches up, and the history below has every alert.
    let (_, e) = post(
        c,
        "mo-mlops",
        &format!("{model}/monitoring/evaluate"),
        json!({}),
    )
    .await?;
    print_evaluation(&e);
    let (_, detail) = get(c, "mo-mlops", model).await?;
    for t in detail
        .get("history")
        .unwrap_or(&NULL)
        .as_array()
        .into_iter()
        .flatten()
    {
        let reason = t.get("reason").unwrap_or(&NULL).as_str().unwrap_or("");
        if reason.starts_with("monitoring rule") {
            let v = t
                .get("version")
                .unwrap_or(&NULL)
                .as_str()
                .or(t.get("hash").unwrap_or(&NULL).as_str())
                .unwrap_or("");
            println!(
                "    {}... {} -> {} by the rule: \"{reason}\"",
                v.get(..12).unwrap_or(v),
                t.get("from").unwrap_or(&NULL).as_str().unwrap_or("?"),
                t.get("to").unwrap_or(&NULL).as_str().unwrap_or("?")
            );
        }
    }
    let got = received.lock().map(|g| g.clone()).unwrap_or_default();
    let verified = got.iter().filter(|(h, b)| signed_by(&secret, h, b)).count();
    println!(
        "    the on-call receiver got {} alert(s); {verified} carry a valid x-airlock-signature",
        got.len()
    );
    let (_, rep) = get(
        c,
        "mo-mlops",
        &format!("{model}/monitoring?last=100&tests=true"),
    )
    .await?;
    if let Some(prod) = rep
        .get("versions")
        .unwrap_or(&NULL)
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v.get("state").unwrap_or(&NULL) == "production")
    {
        println!("    production's drift over the broken feed's last 100 predictions:");
        super::monitor::print_drift(prod.get("drift").unwrap_or(&NULL), "      ");
    }
    let (_, alerts) = get(c, "mo-mlops", &format!("{model}/monitoring/alerts")).await?;
    println!("    the model's alert history:");
    super::monitor::print_alerts(&alerts);
    Ok(())
}

fn print_evaluation(e: &Value) {
    println!(
        "    rules evaluated: {} fired, {} resolved",
        e.get("fired")
            .unwrap_or(&NULL)
            .as_array()
            .map_or(0, Vec::len),
        e.get("resolved")
            .unwrap_or(&NULL)
            .as_array()
            .map_or(0, Vec::len)
    );
    for a in e
        .get("fired")
        .unwrap_or(&NULL)
        .as_array()
        .into_iter()
        .flatten()
    {
        let v = a.get("version").unwrap_or(&NULL).as_str().unwrap_or("");
        println!(
            "      ALERT {} rule `{}` on {}...: {} = {} (threshold {}, {} predictions in the window), ledger entry {}",
            a.get("severity")
                .unwrap_or(&NULL)
                .as_str()
                .unwrap_or("?")
                .to_uppercase(),
            a.get("rule").unwrap_or(&NULL).as_str().unwrap_or("?"),
            v.get(..12).unwrap_or(v),
            a.get("measure").unwrap_or(&NULL).as_str().unwrap_or("?"),
            a.get("value").unwrap_or(&NULL),
            a.get("threshold").unwrap_or(&NULL),
            a.get("samples").unwrap_or(&NULL),
            a.get("ledger_index").unwrap_or(&NULL)
        );
    }
    for v in e
        .get("rolled_back")
        .unwrap_or(&NULL)
        .as_array()
        .into_iter()
        .flatten()
    {
        let v = v.as_str().unwrap_or("");
        println!(
            "      the canary {}... was rolled back by the rule: every patient sees production again",
            v.get(..12).unwrap_or(v)
        );
    }
}
