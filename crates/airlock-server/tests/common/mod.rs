//! A deployment with data in every zone and one logged-in person per role, on SQLite or
//! PostgreSQL, driven through the router with `oneshot` (no socket).
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the shared helpers"
)]

pub mod models;

use std::collections::BTreeMap;
use std::path::PathBuf;

use airlock_authz::{Action, Authorizer, Role};
use airlock_crypto::{KdfParams, Secret};
use airlock_server::{AppState, IdentityPolicy, app};
use airlock_service::totp;
use airlock_store::{Home, IngestRequest, InitOptions, Passphrase};
use airlock_types::{ActorId, Classification, DatasetName, Zone};
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// One test function, run once on SQLite and once on PostgreSQL (skipped without a server).
#[allow(
    unused_macros,
    reason = "only the suites that run on both backends use it"
)]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Db::Postgres).await
            }
        }
    };
}

pub const PASSWORD: &str = "a long enough passphrase 1";

/// Rollout rules that let a lifecycle test take a canary to every patient and promote it at
/// once; the deployment's defaults are exercised by the security suite (finding 2).
pub const IMMEDIATE: airlock_store::RolloutConfig = airlock_store::RolloutConfig {
    max_canary_percent: 100.0,
    min_canary_minutes: 0,
    min_canary_predictions: 0,
    min_silent_minutes: 0,
    min_silent_predictions: 0,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct World {
    pub _tmp: tempfile::TempDir,
    pub home_dir: PathBuf,
    pub state: AppState,
    pub app: Router,
    /// Session token per role.
    pub sessions: BTreeMap<Role, String>,
    /// A service (EHR integration, role clinician) token scoped to read-patient-record.
    pub service_token: String,
    /// TOTP secrets per user id.
    pub totp: BTreeMap<String, Secret>,
    /// The synthetic cohort's identifying values (names, MRNs, SSNs...).
    pub phi_values: Vec<String>,
    /// One MRN that exists in the clinical dataset: a patient the clinician treats.
    pub mrn: String,
    /// A patient in the clinical dataset the clinician does not treat.
    pub other_mrn: String,
    /// The NPI of the first patient's attending practitioner, which the clinician is linked to.
    pub npi: String,
}

/// The default validation policy without the attack's ceiling: the test models are trained
/// on in-memory tables that are not datasets of the test deployment, so the attack cannot run
/// (the registry's own tests run it).
pub fn validation_policy() -> airlock_service::ValidationPolicy {
    airlock_service::ValidationPolicy {
        max_membership_tpr_at_fpr_0_001: None,
        ..airlock_service::ValidationPolicy::default()
    }
}

pub fn user_of(role: Role) -> String {
    format!("u-{}", role.as_str())
}

pub struct Resp {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A 400 that names `field` and does not echo `value` (nothing to check when empty).
    pub fn assert_refused(&self, field: &str, value: &str) {
        let text = String::from_utf8_lossy(&self.body);
        assert_eq!(self.status, 400, "{text}");
        assert!(text.contains(field), "{field} not named: {text}");
        assert!(
            value.is_empty() || !text.contains(value),
            "value echoed: {text}"
        );
    }
}

impl World {
    pub async fn new(db: Db) -> Option<World> {
        Self::with_policy(db, IdentityPolicy::default()).await
    }

    pub async fn with_policy(db: Db, policy: IdentityPolicy) -> Option<World> {
        Self::with_rules(db, policy, Some(IMMEDIATE)).await
    }

    /// A world with these identity rules and rollout rules (`None`: the deployment's defaults).
    pub async fn with_rules(
        db: Db,
        policy: IdentityPolicy,
        rollout: Option<airlock_store::RolloutConfig>,
    ) -> Option<World> {
        let database_url = match db {
            Db::Sqlite => None,
            Db::Postgres => {
                let u = airlock_store::testing::fresh_postgres_url("api")
                    .await
                    .unwrap();
                if u.is_none() {
                    eprintln!(
                        "skipping the PostgreSQL run: AIRLOCK_TEST_POSTGRES is not set (scripts/test-postgres.sh)"
                    );
                    return None;
                }
                u
            }
        };
        let tmp = tempfile::tempdir().unwrap();
        let home_dir = tmp.path().join("home");
        let pass = Passphrase::new("test passphrase".into());
        let opts = InitOptions {
            name: "apitest".into(),
            kdf: KdfParams::danger_fast_for_tests(),
            database_url,
        };
        let home = Home::init(&home_dir, &pass, &opts, ActorId::new("operator").unwrap())
            .await
            .unwrap();

        // Data in every zone: identified in clinical, de-identified and synthetic outside.
        let cohort = airlock_synth::generate(&airlock_synth::GenOptions::new(6, 7));
        let gen_dir = tmp.path().join("gen");
        airlock_synth::write_all(&cohort, &gen_dir).unwrap();
        let mut phi_values = Vec::new();
        for p in &cohort.patients {
            let i = &p.identity;
            for v in [
                &i.given, &i.family, &i.mrn, &i.ssn, &i.phone, &i.email, &i.street,
            ] {
                phi_values.push(v.clone());
            }
        }
        let mrn = cohort.patients[0].identity.mrn.clone();
        // The clinician treats the first patient (issue 28, finding 8): linked to the NPI of
        // that patient's attending practitioner.
        let npi = cohort.patients[0].clinician.npi.clone();
        let other_mrn = cohort
            .patients
            .iter()
            .find(|p| p.clinician.npi != npi)
            .map(|p| p.identity.mrn.clone())
            .expect("a patient with another attending");
        let bundles: Vec<PathBuf> = std::fs::read_dir(gen_dir.join("fhir"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        assert!(!bundles.is_empty());
        let ingest = |name: &str, zone, class, files: Vec<PathBuf>| IngestRequest {
            zone,
            classification: class,
            source_system: "test".into(),
            dataset: DatasetName::new(name).unwrap(),
            files,
        };
        home.ingest(
            &ingest("ehr", Zone::Clinical, Classification::Phi, bundles),
            &mut |_, _| {},
        )
        .await
        .unwrap();
        let synth_csv = tmp.path().join("synth.csv");
        std::fs::write(&synth_csv, "age_band,sex,dx\n40-49,F,E11\n70-79,M,I10\n").unwrap();
        // Generated data in development and staging: attested imports (issue 28, finding 12).
        let synthetic = airlock_store::Attestation {
            basis: airlock_store::AttestationBasis::Synthetic,
            attested_by: ActorId::new("privacy-officer").unwrap(),
            reference: None,
        };
        home.import_attested(
            &ingest(
                "synth-dev",
                Zone::Development,
                Classification::Synthetic,
                vec![synth_csv.clone()],
            ),
            &synthetic,
            &mut |_, _| {},
        )
        .await
        .unwrap();
        home.import_attested(
            &ingest(
                "synth-stage",
                Zone::Staging,
                Classification::Synthetic,
                vec![synth_csv],
            ),
            &synthetic,
            &mut |_, _| {},
        )
        .await
        .unwrap();
        // Held-out rows of the test models' task (`models::register`), for validation.
        let holdout = airlock_models::testing::separable_table(400, 9_999).unwrap();
        let mut csv = String::from("x,c,y\n");
        let col = |c: &str| holdout.column(c).unwrap().cells().to_vec();
        for ((x, c), y) in col("x").iter().zip(col("c")).zip(col("y")) {
            csv.push_str(&format!("{x},{c},{y}\n"));
        }
        let holdout_csv = tmp.path().join("holdout.csv");
        std::fs::write(&holdout_csv, csv).unwrap();
        home.import_attested(
            &ingest(
                "risk-holdout",
                Zone::Development,
                Classification::Synthetic,
                vec![holdout_csv],
            ),
            &synthetic,
            &mut |_, _| {},
        )
        .await
        .unwrap();
        airlock_service::gate::run_gate(
            &home,
            "safe-harbor",
            "ehr",
            &DatasetName::new("ehr-deid").unwrap(),
        )
        .await
        .unwrap();
        airlock_service::gate::run_gate(
            &home,
            "limited-data-set",
            "ehr",
            &DatasetName::new("ehr-lds").unwrap(),
        )
        .await
        .unwrap();

        let mut state = AppState::new(home, Authorizer::new().unwrap(), policy)
            .unwrap()
            .with_validation_policy(validation_policy())
            .unwrap();
        if let Some(r) = rollout {
            state = state.with_rollout(r).unwrap();
        }
        let ids = state.identities().clone();
        let op = ActorId::new("operator").unwrap();
        let mut totp_secrets = BTreeMap::new();
        for role in Role::ALL {
            let id = ActorId::new(user_of(role)).unwrap();
            let e = ids
                .add_user(
                    &op,
                    &id,
                    &[role],
                    &Secret::new(PASSWORD.as_bytes().to_vec()),
                )
                .await
                .unwrap();
            totp_secrets.insert(id.to_string(), e.secret);
            if role == Role::Clinician {
                ids.link_practitioner(
                    &op,
                    &id,
                    &airlock_service::PractitionerLink::parse(npi.as_str()).unwrap(),
                )
                .await
                .unwrap();
            }
        }
        let svc = ActorId::new("svc-ehr").unwrap();
        ids.add_service(&op, &svc, &[Role::Clinician])
            .await
            .unwrap();
        let service_token = ids
            .issue_token(&svc, &[Action::ReadPatientRecord], 30)
            .await
            .unwrap()
            .bearer();
        let app = app(state.clone());
        let mut w = World {
            _tmp: tmp,
            home_dir,
            state,
            app,
            sessions: BTreeMap::new(),
            service_token,
            totp: totp_secrets,
            phi_values,
            mrn,
            other_mrn,
            npi,
        };
        for role in Role::ALL {
            let r = w.login(&user_of(role), PASSWORD).await;
            assert_eq!(
                r.status,
                200,
                "login {role:?}: {}",
                String::from_utf8_lossy(&r.body)
            );
            w.sessions
                .insert(role, r.json()["token"].as_str().unwrap().to_string());
        }
        Some(w)
    }

    pub fn code(&self, user: &str) -> String {
        let now = chrono::Utc::now().timestamp() as u64;
        totp::code_at(self.totp[user].expose_secret(), now)
    }

    pub async fn login(&self, user: &str, password: &str) -> Resp {
        let body =
            serde_json::json!({"username": user, "password": password, "totp": self.code(user)});
        self.call("POST", "/v1/auth/login", None, &[], Some(body))
            .await
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&v).unwrap()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        // Every answer is one the OpenAPI document gives for its route, and every error is the
        // API's JSON error (not a framework's plain text).
        let route = airlock_server::openapi::route_for(method, path);
        if let Some(route) = route {
            assert!(
                airlock_server::openapi::statuses(route).contains(&status),
                "{method} {path} answered {status}, which the OpenAPI document does not list"
            );
            if status >= 400 {
                let ct = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok());
                assert_eq!(
                    ct,
                    Some(airlock_server::openapi::refusal_media(route, status)),
                    "{method} {path} answered {status}"
                );
            }
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        // A success body the document describes as JSON must fit its schema.
        if let Some(route) = route.filter(|r| r.success == status) {
            // Built once per test binary.
            static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
            let doc = DOC.get_or_init(airlock_server::openapi::document);
            if let Some(schema) = airlock_server::openapi::success_schema(doc, route) {
                let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let mut errors = Vec::new();
                conforms(doc, schema, &value, "$", &mut errors);
                assert!(
                    errors.is_empty(),
                    "{method} {path}: the body does not fit its schema: {errors:?}"
                );
            }
        }
        Resp { status, body }
    }

    pub async fn as_role(
        &self,
        role: Role,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        self.call(method, path, Some(&self.sessions[&role]), headers, body)
            .await
    }

    pub fn ledger_size(&self) -> u64 {
        self.state.home().ledger().size().unwrap()
    }
}

/// Checks `value` against the JSON Schema subset the OpenAPI document uses (`$ref` into the
/// document's components, type, enum, const, minimum, maximum, pattern, properties, required,
/// additionalProperties, items, allOf, anyOf, oneOf), pushing the path of each misfit onto
/// `errors`.
pub fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(name) = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        let target = &doc["components"]["schemas"][name];
        assert!(!target.is_null(), "{at}: dangling $ref to {name}");
        conforms(doc, target, value, at, errors);
    }
    let fits = |s: &Value| {
        let mut e = Vec::new();
        conforms(doc, s, value, at, &mut e);
        e.is_empty()
    };
    for s in schema["allOf"].as_array().into_iter().flatten() {
        conforms(doc, s, value, at, errors);
    }
    if let Some(any) = schema["anyOf"].as_array()
        && !any.iter().any(fits)
    {
        errors.push(format!("{at}: fits no anyOf branch"));
    }
    if let Some(one) = schema["oneOf"].as_array()
        && one.iter().filter(|s| fits(s)).count() != 1
    {
        errors.push(format!("{at}: does not fit exactly one oneOf branch"));
    }
    if let Some(c) = schema.get("const")
        && c != value
    {
        errors.push(format!("{at}: not the constant {c}"));
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(value)
    {
        errors.push(format!("{at}: not one of {e:?}"));
    }
    let type_ok = |t: &str| match t {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        _ => false,
    };
    let typed = match &schema["type"] {
        Value::String(t) => type_ok(t),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(type_ok),
        _ => true,
    };
    if !typed {
        errors.push(format!("{at}: not of type {}", schema["type"]));
        return;
    }
    if let (Some(pattern), Some(v)) = (schema["pattern"].as_str(), value.as_str()) {
        match regex::Regex::new(pattern) {
            Ok(re) if re.is_match(v) => {}
            Ok(_) => errors.push(format!("{at}: does not match {pattern}")),
            Err(_) => errors.push(format!("{at}: the pattern {pattern} does not compile")),
        }
    }
    if let (Some(min), Some(v)) = (schema["minimum"].as_f64(), value.as_f64())
        && v < min
    {
        errors.push(format!("{at}: below {min}"));
    }
    if let (Some(max), Some(v)) = (schema["maximum"].as_f64(), value.as_f64())
        && v > max
    {
        errors.push(format!("{at}: above {max}"));
    }
    if let Some(obj) = value.as_object() {
        let props = schema["properties"].as_object();
        for req in schema["required"].as_array().into_iter().flatten() {
            if let Some(k) = req.as_str()
                && !obj.contains_key(k)
            {
                errors.push(format!("{at}.{k}: required, missing"));
            }
        }
        for (k, v) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => conforms(doc, s, v, &format!("{at}.{k}"), errors),
                None if schema["additionalProperties"] == Value::Bool(false) => {
                    errors.push(format!("{at}.{k}: not in the schema"));
                }
                None if schema["additionalProperties"].is_object() => conforms(
                    doc,
                    &schema["additionalProperties"],
                    v,
                    &format!("{at}.{k}"),
                    errors,
                ),
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            conforms(doc, items, v, &format!("{at}[{i}]"), errors);
        }
    }
}
