//! Monitoring alerts: per model, a versioned and hashed rule set (Airlock's defaults until one
//! is set), evaluated over the latest windows of each deployed version's prediction log by the
//! server in the background (every [`EVALUATE_EVERY`] logged predictions, and on a schedule)
//! and on demand. A rule that fires or resolves is a ledger entry, a metric, a row of the
//! model's alert history and a signed webhook POST to every destination the security
//! administrator registered (retried with backoff, then recorded as failed); a rule may roll a
//! canary back, recorded as done by the rule.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use airlock_authz::{Action, Resource};
use airlock_ledger::{EventType, OutcomeKind};
use airlock_models::monitor::alerts::{self, Measure, Rule, Rules, Verdict, WindowValue};
use airlock_models::monitor::{self, Reference};
use airlock_registry::monitoring::LoggedPrediction;
use airlock_registry::{ModelName, ModelVersion, State};
use airlock_types::Zone;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::models::{check_reason, model_name, resource};
use crate::monitoring::window_drift;
use crate::{Caller, LedgerResource, Service, ServiceError};

/// Logged predictions of a model between background evaluations.
pub const EVALUATE_EVERY: usize = 200;
/// The longest a model with new predictions waits for a background evaluation.
pub const EVALUATE_INTERVAL: Duration = Duration::from_secs(60);
/// Delivery attempts per webhook notification, and the first wait between them (doubling).
pub const WEBHOOK_ATTEMPTS: u32 = 4;
/// The first wait between attempts.
pub const WEBHOOK_BACKOFF: Duration = Duration::from_millis(200);

/// Sends a notification: POST `body` to `url` with `headers`, trusting `ca_pem` for HTTPS.
/// The HTTP stack lives in the server; the service decides what is sent and records the outcome.
pub trait Notifier: Send + Sync {
    /// One attempt: the HTTP status, or why there was none.
    fn post<'a>(
        &'a self,
        url: &'a str,
        ca_pem: Option<&'a str>,
        headers: &'a [(String, String)],
        body: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Result<u16, String>> + Send + 'a>>;
}

/// A model's rule set.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RulesView {
    /// The model.
    pub model: String,
    /// Its version (0: Airlock's defaults).
    pub version: i64,
    /// SHA-256 of the TOML text.
    pub hash: String,
    /// The TOML text.
    pub toml: String,
    /// The rules, parsed.
    pub rules: Rules,
}

/// A new rule set for a model.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesBody {
    /// The rules (TOML: `[[rule]]` tables).
    pub toml: String,
    /// Why they change.
    pub reason: String,
}

/// One alert, fired or resolved.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Alert {
    /// Its ledger entry.
    pub ledger_index: u64,
    /// The model.
    pub model: String,
    /// The version.
    pub version: String,
    /// The rule.
    pub rule: String,
    /// The hash of the rule set it belongs to.
    pub rules_hash: String,
    /// `firing` or `resolved`.
    pub state: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// The measure.
    pub measure: String,
    /// The latest window's figure.
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// The latest window's first and last prediction (ledger indices).
    pub first_index: u64,
    /// Its last.
    pub last_index: u64,
    /// Samples behind the figure.
    pub samples: u64,
    /// When.
    pub at: String,
}

/// A model's alerts, newest first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AlertList {
    /// The alerts.
    pub alerts: Vec<Alert>,
}

/// What one evaluation did.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Evaluation {
    /// Alerts that fired.
    pub fired: Vec<Alert>,
    /// Alerts that resolved.
    pub resolved: Vec<Alert>,
    /// Canaries a rule rolled back (version hashes).
    pub rolled_back: Vec<String>,
    /// Per version and rule, the verdict (`breaching`, `clear`, `undecided`).
    pub verdicts: Vec<RuleVerdict>,
}

/// A rule's verdict on a version.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RuleVerdict {
    /// The version.
    pub version: String,
    /// The rule.
    pub rule: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Windows that had enough samples.
    pub windows: usize,
}

/// A webhook destination to register.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// Its name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// `https://...`, or `http://` to a loopback address (a receiver on this host).
    pub url: String,
    /// The PEM certificate (or CA) to trust for an `https` URL.
    #[serde(default)]
    pub ca_pem: Option<String>,
}

/// A webhook's name: what [`valid_webhook`] admits.
const WEBHOOK_NAME: &str = "^[A-Za-z0-9._-]{1,64}$";
/// An https URL: a host, then optionally a path, query or fragment; no whitespace.
const WEBHOOK_HTTPS: &str = r"^https://[^\s/?#]+([/?#]\S*)?$";
/// An http URL to a loopback address, with an optional port of up to five digits.
const WEBHOOK_LOOPBACK: &str =
    r"^http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?([/?#]\S*)?$";

impl JsonSchema for WebhookBody {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("WebhookBody")
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let name = serde_json::json!({"type": "string", "pattern": WEBHOOK_NAME, "description": "Its name (letters, digits, `-`, `_`, `.`)"});
        schemars::json_schema!({
            "description": "A webhook destination: https with the PEM certificate (or CA) to trust, or http to a loopback address",
            "oneOf": [
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "url", "ca_pem"],
                    "properties": {
                        "name": name,
                        "url": {"type": "string", "maxLength": 2048, "pattern": WEBHOOK_HTTPS},
                        "ca_pem": {"type": "string", "maxLength": 65536, "pattern": "-----BEGIN CERTIFICATE-----"}
                    }
                },
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "url"],
                    "properties": {
                        "name": name,
                        "url": {"type": "string", "maxLength": 2048, "pattern": WEBHOOK_LOOPBACK},
                        "ca_pem": {"type": ["string", "null"], "maxLength": 65536}
                    }
                }
            ]
        })
    }
}

/// The checks the schema states: a name of 1 to 64 of `[A-Za-z0-9._-]`; an https URL with a
/// host and no whitespace, with a PEM certificate to trust; or an http URL to a loopback host
/// with a port of at most five digits. `Err` names the field and the rule.
fn valid_webhook(b: &WebhookBody) -> Result<(), (&'static str, &'static str)> {
    let name_ok = (1..=64).contains(&b.name.len())
        && b.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(("name", "1 to 64 letters, digits, `-`, `_` or `.`"));
    }
    let url_rule = "an https:// URL with a host, or http:// to a loopback address; no whitespace";
    if b.url.chars().count() > 2048 || b.url.contains(char::is_whitespace) {
        return Err(("url", url_rule));
    }
    let pem_len_ok = b.ca_pem.as_ref().is_none_or(|p| p.chars().count() <= 65536);
    if let Some(after) = b.url.strip_prefix("https://") {
        if after.starts_with(['/', '?', '#']) || after.is_empty() {
            return Err(("url", url_rule));
        }
        let pem_ok = pem_len_ok
            && b.ca_pem
                .as_deref()
                .is_some_and(|p| p.contains("-----BEGIN CERTIFICATE-----"));
        if !pem_ok {
            return Err((
                "ca_pem",
                "an https destination needs the PEM certificate (or CA) to trust",
            ));
        }
        return Ok(());
    }
    let Some(after) = b.url.strip_prefix("http://") else {
        return Err(("url", url_rule));
    };
    let Some(rest) = ["127.0.0.1", "localhost", "[::1]"]
        .into_iter()
        .find_map(|h| after.strip_prefix(h))
    else {
        return Err(("url", url_rule));
    };
    let rest = match rest.strip_prefix(':') {
        Some(port) => {
            let digits = port.chars().take_while(char::is_ascii_digit).count();
            if !(1..=5).contains(&digits) {
                return Err(("url", url_rule));
            }
            port.get(digits..).unwrap_or_default()
        }
        None => rest,
    };
    if !(rest.is_empty() || rest.starts_with(['/', '?', '#'])) || !pem_len_ok {
        return Err(("url", url_rule));
    }
    Ok(())
}

/// A registered destination. The signing secret is shown once, at registration.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Webhook {
    /// Name.
    pub name: String,
    /// URL.
    pub url: String,
    /// Who registered it.
    pub added_by: String,
    /// When.
    pub at: String,
    /// The HMAC-SHA256 key receivers verify `X-Airlock-Signature` with (hex), at registration
    /// only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The registered destinations.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WebhookList {
    /// Destinations.
    pub webhooks: Vec<Webhook>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn idx(i: u64) -> i64 {
    i64::try_from(i).unwrap_or(i64::MAX)
}

/// The measure's figure over one window of a version's predictions, and its sample count.
fn window_value(
    rule: &Rule,
    reference: Option<&Reference>,
    features: &[String],
    window: &[&LoggedPrediction],
    outcomes: &BTreeMap<u64, bool>,
) -> Result<WindowValue, ServiceError> {
    let (Some(first), Some(last)) = (window.first(), window.last()) else {
        return Err(ServiceError::internal("empty monitoring window"));
    };
    let scores: Vec<f64> = window.iter().map(|p| p.score).collect();
    let pairs: Vec<(bool, f64)> = window
        .iter()
        .filter_map(|p| outcomes.get(&p.request).map(|&y| (y, p.score)))
        .collect();
    let labels: Vec<bool> = pairs.iter().map(|p| p.0).collect();
    let labelled: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    let drift = |r: &Reference| window_drift(r, features, window, &rule.drift_options());
    let (value, samples) = match rule.measure {
        Measure::ShareDrifted => (
            reference.map(drift).transpose()?.map(|d| d.share_drifted),
            window.len() as u64,
        ),
        Measure::DriftedFeatures => (
            reference.map(drift).transpose()?.map(|d| {
                d.features
                    .iter()
                    .filter(|f| f.name != "score" && f.drifted)
                    .count() as f64
            }),
            window.len() as u64,
        ),
        Measure::ScoreDrifted => (
            reference.map(drift).transpose()?.map(|d| {
                let drifted = d.features.iter().any(|f| f.name == "score" && f.drifted);
                if drifted { 1.0 } else { 0.0 }
            }),
            window.len() as u64,
        ),
        Measure::EstimatedAuroc => (
            monitor::cbpe(&scores, 0.5).map(|e| e.auroc),
            window.len() as u64,
        ),
        Measure::RealisedAuroc => (
            airlock_models::metrics::auroc(&labels, &labelled).ok(),
            pairs.len() as u64,
        ),
        Measure::RealisedEce => (
            airlock_models::validation::expected_calibration_error(&labels, &labelled).ok(),
            pairs.len() as u64,
        ),
    };
    Ok(WindowValue {
        value,
        samples,
        first_index: first.index,
        last_index: last.index,
    })
}

impl Service {
    /// Install the notifier webhooks are sent through (the server's HTTP client).
    pub fn set_notifier(&self, notifier: Arc<dyn Notifier>) {
        let _ = self.inner.notifier.set(notifier);
    }

    /// A model's current rule set: its latest version, or Airlock's defaults (version 0).
    pub async fn monitoring_rules(&self, name: &ModelName) -> Result<RulesView, ServiceError> {
        let mut tx = self.home().db().begin(&airlock_store::Scope::all()).await?;
        let row = sqlx::query(
            "SELECT version, body, hash FROM monitoring_rules WHERE model = $1 \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(name.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let (version, toml, hash) = match row {
            Some(r) => (
                r.try_get("version")?,
                r.try_get("body")?,
                r.try_get("hash")?,
            ),
            None => (
                0,
                alerts::DEFAULT_RULES.to_string(),
                airlock_crypto::sha256(alerts::DEFAULT_RULES.as_bytes()).to_hex(),
            ),
        };
        let rules = Rules::parse(&toml).map_err(ServiceError::internal)?;
        Ok(RulesView {
            model: name.to_string(),
            version,
            hash,
            toml,
            rules,
        })
    }

    async fn firing(
        &self,
        name: &ModelName,
        version: &str,
        rule: &str,
    ) -> Result<bool, ServiceError> {
        let mut tx = self.home().db().begin(&airlock_store::Scope::all()).await?;
        let state: Option<String> = sqlx::query_scalar(
            "SELECT state FROM monitoring_alerts WHERE model = $1 AND version_hash = $2 \
             AND rule = $3 ORDER BY ledger_index DESC LIMIT 1",
        )
        .bind(name.as_str())
        .bind(version)
        .bind(rule)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(state.as_deref() == Some("firing"))
    }

    /// Evaluate a model's rules over the latest windows of each deployed version, and act on
    /// every rule that fires or resolves.
    pub async fn evaluate_monitoring(&self, name: &ModelName) -> Result<Evaluation, ServiceError> {
        let _one = self.inner.prediction_log.evaluating.lock().await;
        let reg = self.registry();
        let versions: Vec<ModelVersion> = reg
            .versions(name)
            .await?
            .into_iter()
            .filter(|v| matches!(v.state, State::Silent | State::Canary | State::Production))
            .collect();
        let mut out = Evaluation::default();
        if versions.is_empty() {
            return Ok(out);
        }
        self.flush_prediction_log().await?;
        let rules = self.monitoring_rules(name).await?;
        let need = rules
            .rules
            .rules
            .iter()
            .map(|r| r.window.saturating_mul(r.consecutive))
            .max()
            .unwrap_or(0);
        let hashes: Vec<String> = versions.iter().map(|v| v.hash.to_hex()).collect();
        let rows = reg.recent_predictions(name, need, &hashes).await?;
        let outcomes = reg.outcomes().await?;
        for v in &versions {
            let hash = v.hash.to_hex();
            let mine: Vec<&LoggedPrediction> = rows.iter().filter(|p| p.version == hash).collect();
            let reference = reg.reference(v).await?;
            for rule in &rules.rules.rules {
                // Complete windows of `window` predictions ending at the latest, oldest first.
                let complete = (mine.len() / rule.window).min(rule.consecutive);
                let start = mine.len() - complete * rule.window;
                let mut windows = Vec::with_capacity(complete);
                for chunk in mine.get(start..).unwrap_or_default().chunks(rule.window) {
                    windows.push(window_value(
                        rule,
                        reference.as_ref(),
                        &v.card.features,
                        chunk,
                        &outcomes,
                    )?);
                }
                let verdict = rule.verdict(&windows);
                out.verdicts.push(RuleVerdict {
                    version: hash.clone(),
                    rule: rule.name.clone(),
                    verdict,
                    windows: windows
                        .iter()
                        .filter(|w| w.samples >= rule.min_samples && w.value.is_some())
                        .count(),
                });
                let firing = self.firing(name, &hash, &rule.name).await?;
                let Some(fire) = alerts::transition(verdict, firing) else {
                    continue;
                };
                let Some(latest) = windows
                    .iter()
                    .rev()
                    .find(|w| w.samples >= rule.min_samples && w.value.is_some())
                else {
                    continue;
                };
                let alert = self
                    .record_alert(name, v, rule, &rules.hash, fire, latest, complete)
                    .await?;
                if fire && rule.rollback_canary && v.state == State::Canary {
                    reg.rollback(
                        name,
                        &format!(
                            "monitoring rule `{}` (rules {}@{} sha256 {}) fired: alert at ledger index {}",
                            rule.name,
                            name,
                            rules.version,
                            rules.hash.get(..12).unwrap_or(&rules.hash),
                            alert.ledger_index
                        ),
                    )
                    .await?;
                    self.deployment(true).await?;
                    out.rolled_back.push(hash.clone());
                }
                self.notify(&alert).await?;
                if fire {
                    out.fired.push(alert);
                } else {
                    out.resolved.push(alert);
                }
            }
        }
        Ok(out)
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one alert's facts, recorded together"
    )]
    async fn record_alert(
        &self,
        name: &ModelName,
        v: &ModelVersion,
        rule: &Rule,
        rules_hash: &str,
        fire: bool,
        latest: &WindowValue,
        windows: usize,
    ) -> Result<Alert, ServiceError> {
        let value = latest.value.unwrap_or(f64::NAN);
        let (op, threshold) = match (rule.at_least, rule.below) {
            (Some(t), _) => ("at least", t),
            (_, Some(t)) => ("below", t),
            _ => ("?", f64::NAN),
        };
        let state = if fire { "firing" } else { "resolved" };
        let reason = format!(
            "monitoring rule `{}` ({}) {} on {}@{}: {} {:.4} ({} {}) in the latest of {} window(s) of {} predictions (entries {}..{}, {} samples)",
            rule.name,
            rule.severity.as_str(),
            if fire { "fired" } else { "resolved" },
            name,
            v.hash.short(),
            rule.measure.as_str(),
            value,
            if fire { op } else { "no longer" },
            threshold,
            windows,
            rule.window,
            latest.first_index,
            latest.last_index,
            latest.samples
        );
        let home = self.home();
        let ledger_index = home
            .audit(
                home.entry(
                    EventType::MonitoringAlert,
                    Zone::Clinical,
                    OutcomeKind::Success,
                )
                .with_resource(format!("model:{name}@{}", v.hash.to_hex()))
                .with_reason(reason),
            )
            .await?;
        let at = now();
        let mut tx = home.db().begin(&airlock_store::Scope::all()).await?;
        sqlx::query(
            "INSERT INTO monitoring_alerts (ledger_index, model, version_hash, rule, rules_hash, \
             state, severity, measure, value, threshold, first_index, last_index, samples, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(idx(ledger_index))
        .bind(name.as_str())
        .bind(v.hash.to_hex())
        .bind(&rule.name)
        .bind(rules_hash)
        .bind(state)
        .bind(rule.severity.as_str())
        .bind(rule.measure.as_str())
        .bind(value.to_string())
        .bind(threshold.to_string())
        .bind(idx(latest.first_index))
        .bind(idx(latest.last_index))
        .bind(idx(latest.samples))
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.observer()
            .alert(name.as_str(), &rule.name, rule.severity.as_str(), fire);
        tracing::warn!(
            model = %name,
            rule = %rule.name,
            severity = rule.severity.as_str(),
            state,
            ledger_index,
            "monitoring alert"
        );
        Ok(Alert {
            ledger_index,
            model: name.to_string(),
            version: v.hash.to_hex(),
            rule: rule.name.clone(),
            rules_hash: rules_hash.to_string(),
            state: state.into(),
            severity: rule.severity.as_str().into(),
            measure: rule.measure.as_str().into(),
            value,
            threshold,
            first_index: latest.first_index,
            last_index: latest.last_index,
            samples: latest.samples,
            at,
        })
    }

    fn webhook_secret(&self, name: &str, url: &str) -> Result<Vec<u8>, ServiceError> {
        let label = format!("airlock webhook v1\0{name}\0{url}");
        Ok(
            airlock_crypto::derive_key(self.pseudonym_key(), label.as_bytes())
                .map_err(ServiceError::internal)?
                .expose_secret()
                .to_vec(),
        )
    }

    /// POST the alert to every active destination, signed; each delivery (or its failure
    /// after [`WEBHOOK_ATTEMPTS`]) is a ledger entry.
    async fn notify(&self, alert: &Alert) -> Result<(), ServiceError> {
        let mut tx = self.home().db().begin(&airlock_store::Scope::all()).await?;
        let rows = sqlx::query(
            "SELECT name, url, ca_pem FROM webhook_destinations WHERE active = 1 ORDER BY name",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        if rows.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(&serde_json::json!({
            "deployment": self.home().config().deployment.name,
            "alert": alert,
        }))
        .map_err(ServiceError::internal)?;
        for r in rows {
            let name: String = r.try_get("name")?;
            let url: String = r.try_get("url")?;
            let ca: String = r.try_get("ca_pem")?;
            let secret = self.webhook_secret(&name, &url)?;
            use hmac::Mac as _;
            let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&secret)
                .map_err(ServiceError::internal)?;
            mac.update(&body);
            let signature = hex::encode(mac.finalize().into_bytes());
            let headers = vec![
                ("content-type".to_string(), "application/json".to_string()),
                (
                    "x-airlock-signature".to_string(),
                    format!("sha256={signature}"),
                ),
                (
                    "x-airlock-alert".to_string(),
                    alert.ledger_index.to_string(),
                ),
            ];
            let mut outcome = Err("no notifier is installed in this process".to_string());
            let mut attempts = 0;
            if let Some(n) = self.inner.notifier.get() {
                let mut wait = WEBHOOK_BACKOFF;
                while attempts < WEBHOOK_ATTEMPTS {
                    attempts += 1;
                    let ca = (!ca.is_empty()).then_some(ca.as_str());
                    outcome = match n.post(&url, ca, &headers, &body).await {
                        Ok(s) if (200..300).contains(&s) => Ok(s),
                        Ok(s) => Err(format!("HTTP {s}")),
                        Err(e) => Err(e),
                    };
                    if outcome.is_ok() || attempts == WEBHOOK_ATTEMPTS {
                        break;
                    }
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
            let (kind, reason) = match &outcome {
                Ok(s) => (
                    OutcomeKind::Success,
                    format!(
                        "alert {} delivered to webhook `{name}` (HTTP {s}) after {attempts} attempt(s)",
                        alert.ledger_index
                    ),
                ),
                Err(e) => (
                    OutcomeKind::Failure,
                    format!(
                        "alert {} not delivered to webhook `{name}` after {attempts} attempt(s): {e}",
                        alert.ledger_index
                    ),
                ),
            };
            let home = self.home();
            home.audit(
                home.entry(EventType::MonitoringAlert, Zone::Clinical, kind)
                    .with_resource(format!("webhook:{name}"))
                    .with_reason(reason),
            )
            .await?;
        }
        Ok(())
    }
}

impl Caller {
    /// The resource a model-level monitoring setting is decided on: its deployed version
    /// (production, canary, silent), else its latest.
    async fn monitored(&self, name: &ModelName) -> Result<ModelVersion, ServiceError> {
        let versions = self.registry().versions(name).await?;
        let deployed = versions
            .iter()
            .rev()
            .find(|v| matches!(v.state, State::Production | State::Canary | State::Silent));
        deployed
            .or(versions.last())
            .cloned()
            .ok_or(ServiceError::NotFound { what: "model" })
    }

    /// A model's rule set (`read-model`).
    pub async fn monitoring_rules(&self, name: &str) -> Result<RulesView, ServiceError> {
        let name = model_name(name)?;
        let v = self.monitored(&name).await?;
        self.authorize(Action::ReadModel, &resource(&v, Zone::Clinical))
            .await?;
        self.service().monitoring_rules(&name).await
    }

    /// Set a model's rules: a new version, hashed, in the ledger (`deploy-model` on its deployed
    /// version: the MLOps engineer).
    pub async fn set_monitoring_rules(
        &self,
        name: &str,
        body: RulesBody,
    ) -> Result<RulesView, ServiceError> {
        let name = model_name(name)?;
        let v = self.monitored(&name).await?;
        self.authorize(Action::DeployModel, &resource(&v, Zone::Clinical))
            .await?;
        let reason = check_reason(&body.reason)?;
        let rules =
            Rules::parse(&body.toml).map_err(|e| ServiceError::invalid("toml", e.to_string()))?;
        let hash = airlock_crypto::sha256(body.toml.as_bytes()).to_hex();
        let current = self.service().monitoring_rules(&name).await?;
        let version = current.version + 1;
        let ledger_index = self
            .audit_many(vec![
                self.entry(
                    EventType::ConfigChange,
                    Zone::Clinical,
                    OutcomeKind::Success,
                )
                .with_resource(LedgerResource::ModelVersion {
                    name: name.to_string(),
                    hash: v.hash.to_hex(),
                })
                .with_reason(format!(
                    "monitoring rules {name}@{version} (sha256 {hash}, {} rule(s)): {reason}",
                    rules.rules.len()
                )),
            ])
            .await?;
        let mut tx = self.home().db().begin(&airlock_store::Scope::all()).await?;
        sqlx::query(
            "INSERT INTO monitoring_rules (model, version, body, hash, set_by, at, ledger_index) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(name.as_str())
        .bind(version)
        .bind(&body.toml)
        .bind(&hash)
        .bind(self.who.principal.id.as_str())
        .bind(now())
        .bind(idx(ledger_index))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RulesView {
            model: name.to_string(),
            version,
            hash,
            toml: body.toml,
            rules,
        })
    }

    /// A model's alerts, newest first (`read-model`).
    pub async fn monitoring_alerts(&self, name: &str) -> Result<AlertList, ServiceError> {
        let name = model_name(name)?;
        let v = self.monitored(&name).await?;
        self.authorize(Action::ReadModel, &resource(&v, Zone::Clinical))
            .await?;
        let mut tx = self.home().db().begin(&airlock_store::Scope::all()).await?;
        let rows = sqlx::query(
            "SELECT ledger_index, version_hash, rule, rules_hash, state, severity, measure, value, \
             threshold, first_index, last_index, samples, at FROM monitoring_alerts \
             WHERE model = $1 ORDER BY ledger_index DESC",
        )
        .bind(name.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut alerts = Vec::with_capacity(rows.len());
        for r in rows {
            let n = |c: &str| -> Result<u64, ServiceError> {
                Ok(u64::try_from(r.try_get::<i64, _>(c)?).unwrap_or(0))
            };
            let f = |c: &str| -> Result<f64, ServiceError> {
                Ok(r.try_get::<String, _>(c)?.parse().unwrap_or(f64::NAN))
            };
            alerts.push(Alert {
                ledger_index: n("ledger_index")?,
                model: name.to_string(),
                version: r.try_get("version_hash")?,
                rule: r.try_get("rule")?,
                rules_hash: r.try_get("rules_hash")?,
                state: r.try_get("state")?,
                severity: r.try_get("severity")?,
                measure: r.try_get("measure")?,
                value: f("value")?,
                threshold: f("threshold")?,
                first_index: n("first_index")?,
                last_index: n("last_index")?,
                samples: n("samples")?,
                at: r.try_get("at")?,
            });
        }
        Ok(AlertList { alerts })
    }

    /// Evaluate a model's rules now (`read-model`; what a rule does, it does as the rule).
    pub async fn evaluate_monitoring(&self, name: &str) -> Result<Evaluation, ServiceError> {
        let name = model_name(name)?;
        let v = self.monitored(&name).await?;
        self.authorize(Action::ReadModel, &resource(&v, Zone::Clinical))
            .await?;
        self.service().evaluate_monitoring(&name).await
    }

    /// Register a webhook destination (`manage-tokens`: the security administrator). The
    /// response carries the signing secret, once.
    pub async fn add_webhook(&self, body: WebhookBody) -> Result<Webhook, ServiceError> {
        self.authorize(Action::ManageTokens, &Resource::Identities)
            .await?;
        valid_webhook(&body).map_err(|(field, rule)| ServiceError::invalid(field, rule))?;
        let https = body.url.starts_with("https://");
        let ledger_index = self
            .audit_many(vec![
                self.entry(
                    EventType::ConfigChange,
                    Zone::Clinical,
                    OutcomeKind::Success,
                )
                .with_resource(format!("webhook:{}", body.name))
                .with_reason(format!(
                    "webhook destination `{}` registered for monitoring alerts",
                    body.name
                )),
            ])
            .await?;
        let at = now();
        let mut tx = self.home().db().begin(&airlock_store::Scope::all()).await?;
        let inserted = sqlx::query(
            "INSERT INTO webhook_destinations (name, url, ca_pem, added_by, at, ledger_index, active) \
             VALUES ($1, $2, $3, $4, $5, $6, 1) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&body.name)
        .bind(&body.url)
        .bind(if https {
            body.ca_pem.as_deref().unwrap_or("")
        } else {
            ""
        })
        .bind(self.who.principal.id.as_str())
        .bind(&at)
        .bind(idx(ledger_index))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if inserted.rows_affected() == 0 {
            return Err(ServiceError::Conflict {
                reason: format!("a webhook named `{}` is already registered", body.name),
            });
        }
        let secret = hex::encode(self.service().webhook_secret(&body.name, &body.url)?);
        Ok(Webhook {
            name: body.name,
            url: body.url,
            added_by: self.who.principal.id.to_string(),
            at,
            secret: Some(secret),
        })
    }

    /// The registered destinations, without their secrets (`manage-tokens`).
    pub async fn webhooks(&self) -> Result<WebhookList, ServiceError> {
        self.authorize(Action::ManageTokens, &Resource::Identities)
            .await?;
        let mut tx = self.home().db().begin(&airlock_store::Scope::all()).await?;
        let rows = sqlx::query(
            "SELECT name, url, added_by, at FROM webhook_destinations WHERE active = 1 ORDER BY name",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut webhooks = Vec::with_capacity(rows.len());
        for r in rows {
            webhooks.push(Webhook {
                name: r.try_get("name")?,
                url: r.try_get("url")?,
                added_by: r.try_get("added_by")?,
                at: r.try_get("at")?,
                secret: None,
            });
        }
        Ok(WebhookList { webhooks })
    }
}
