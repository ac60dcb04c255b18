//! The router, by resource. Each handler extracts, calls one service operation with the
//! caller's [`Ctx`], and answers its typed result as JSON; the service decides and records.

mod audit;
mod break_glass;
mod datasets;
mod deid;
mod dp;
mod identities;
mod models;
mod patients;
mod witness;

use airlock_service::ServiceError;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::AppState;
use crate::openapi::{Returns, Route, Tag};

/// Every operation: its document entry and its handler, written once. The router and the
/// OpenAPI document are both built from this table.
pub(crate) fn table() -> Vec<(Route, MethodRouter<AppState>)> {
    use Tag::*;
    use airlock_service::{
        accounts, audit as a, break_glass as bg, datasets as ds, deid_runs, models as m,
        patients as p,
    };
    let throttled_login =
        "Too many password checks from this source; Retry-After says when to try again";
    vec![
        (Route::new("get", "/healthz", System, "Liveness").public().json::<Health>(200), get(healthz)),
        (Route::new("get", "/openapi.json", System, "This document").public().json::<serde_json::Map<String, Value>>(200), get(openapi)),
        (Route::new("post", "/v1/auth/login", Identities, "Log in with password and TOTP; returns a session token").public().body::<identities::LoginBody>().json::<accounts::Session>(200).throttled(throttled_login), post(identities::login)),
        (Route::new("post", "/v1/auth/logout", Identities, "End this session").no_content(), post(identities::logout)),
        (Route::new("get", "/v1/auth/whoami", Identities, "The authenticated principal, roles and visible zones").json::<accounts::WhoAmI>(200), get(identities::whoami)),
        (Route::new("get", "/v1/users", Identities, "List principals (security administrator)").json::<identities::Principals>(200), get(identities::list_users)),
        (Route::new("post", "/v1/users", Identities, "Create a person (returns a one-time enrolment token; roles that reach PHI wait for a second person) or a service").body::<accounts::NewPrincipal>().json::<accounts::CreatedPrincipal>(201), post(identities::add_user)),
        (Route::new("post", "/v1/enrol", Identities, "Redeem an enrolment token: set (or prove) your password and receive your TOTP enrolment URI once").public().body::<identities::EnrolBody>().json::<accounts::Enrolled>(200).throttled(throttled_login), post(identities::enrol)),
        (Route::new("post", "/v1/users/{id}/roles/{role}/confirm", Identities, "Confirm a role another person granted (privacy officer; never the granter)").json::<accounts::RolesNow>(200), post(identities::confirm_role)),
        (Route::new("post", "/v1/users/{id}/disable", Identities, "Disable a principal, ending its sessions and tokens").no_content(), post(identities::disable_user)),
        (Route::new("post", "/v1/users/{id}/reset-mfa", Identities, "Give a person a new one-time enrolment token (they set up a new second factor with it and their password)").json::<accounts::MfaReset>(200), post(identities::reset_mfa)),
        (Route::new("post", "/v1/tokens", Identities, "Issue a scoped, expiring API token to a service").body::<accounts::NewToken>().json::<accounts::IssuedToken>(201), post(identities::issue_token)),
        (Route::new("delete", "/v1/tokens/{id}", Identities, "Revoke an API token").no_content(), delete(identities::revoke_token)),
        (Route::new("get", "/v1/datasets", Datasets, "Datasets the principal may list").json::<ds::DatasetList>(200), get(datasets::list)),
        (Route::new("get", "/v1/datasets/{name}", Datasets, "One dataset version's metadata and the list of versions").query::<datasets::VersionQuery>().json::<ds::VersionDetail>(200), get(datasets::show)),
        (Route::new("get", "/v1/datasets/{name}/lineage", Datasets, "The version and its ancestors").query::<datasets::VersionQuery>().json::<ds::LineageChain>(200), get(datasets::lineage)),
        (Route::new("get", "/v1/datasets/{name}/files", Datasets, "A version's files by index (where download is allowed)").query::<datasets::VersionQuery>().purpose().json::<ds::FileList>(200), get(datasets::files)),
        (Route::new("get", "/v1/datasets/{name}/files/{index}", Datasets, "Download one file (where allowed)").query::<datasets::VersionQuery>().purpose().returning(Returns::File), get(datasets::download)),
        (Route::new("post", "/v1/views/$run", Datasets, "Run a SQL-on-FHIR v2 ViewDefinition over FHIR resources sent with it, or over a dataset version the caller may download (a download: the policy and the zone rules decide); rows as objects, at most 100,000").body::<airlock_service::views::RunRequest>().purpose().json::<airlock_service::views::RunResult>(200), post(datasets::run_view)),
        (Route::new("post", "/v1/deid-runs", Deidentification, "Start a de-identification gate run").body::<deid_runs::NewRun>().json::<deid_runs::Started>(202), post(deid::start)),
        (Route::new("get", "/v1/deid-runs/{id}", Deidentification, "A run's status").json::<deid_runs::Run>(200), get(deid::status)),
        (Route::new("get", "/v1/deid-runs/{id}/report", Deidentification, "A finished run's de-identification report").returning(Returns::Reports("The report the run stored (one for the whole data set: every file's rules applied, risk measures, and one leak check over all outputs), as a one-element array")), get(deid::report)),
        (Route::new("post", "/v1/expert-determinations", Deidentification, "Sign an expert determination (deid-expert): the findings of a release under an expert-determination profile, computed here without releasing anything, with the expert's method and conditions; the gate then releases exactly those findings until the determination expires").body::<airlock_service::determinations::NewDetermination>().json::<airlock_service::determinations::Determination>(201), post(deid::determine)),
        (Route::new("post", "/v1/dp/queries", Privacy, "Ask a differentially private question (data scientist) of a clinical or airlock dataset version: the SQL subset runs where the data is, and only the noisy answer leaves, with its mechanism, scale, 95% accuracy and the budget left; refused before any row is read when the SQL, the metadata or the budget does not allow it").body::<airlock_service::dp::QueryBody>().json::<airlock_service::dp::DpAnswer>(200), post(dp::query)),
        (Route::new("post", "/v1/dp/synthetic", Privacy, "Generate differentially private synthetic rows (data scientist) from a clinical or airlock table (or a de-identified one in development) by MST over the columns whose domains and bounds the privacy officer declared; the rows become a synthetic version in development with a fidelity, utility and privacy report, charged to the zCDP budgets like a question; refused before anything is spent when a column is an identifier or undeclared, or the budget does not allow it").body::<airlock_service::synth::SynthBody>().json::<airlock_service::synth::SynthResult>(200), post(dp::synthesize)),
        (Route::new("post", "/v1/dp/metadata", Privacy, "Declare a dataset's DP metadata (privacy officer): the privacy unit, rows per unit, bounds and domains; versioned").body::<airlock_service::dp::MetadataBody>().json::<airlock_service::dp::MetadataView>(200), post(dp::set_metadata)),
        (Route::new("get", "/v1/dp/metadata/{name}", Privacy, "A dataset's current DP metadata (for writing questions)").json::<airlock_service::dp::MetadataView>(200), get(dp::metadata)),
        (Route::new("post", "/v1/dp/budgets", Privacy, "Set an analyst's budget on a dataset, or the dataset's total (privacy officer); as epsilon at an optional delta, kept as zCDP rho").body::<airlock_service::dp::BudgetBody>().json::<airlock_service::dp::BudgetView>(200), post(dp::set_budget)),
        (Route::new("get", "/v1/dp/budgets", Privacy, "Budgets: all for a privacy officer, one's own and the datasets' totals for an analyst").query::<dp::BudgetQuery>().json::<airlock_service::dp::BudgetList>(200), get(dp::budgets)),
        (Route::new("post", "/v1/audit/search", Audit, "Search the ledger").body::<a::SearchQuery>().json::<a::SearchResult>(200), post(audit::search)),
        (Route::new("get", "/v1/audit/verify", Audit, "Verify the whole ledger").json::<a::Verification>(200), get(audit::verify)),
        (Route::new("get", "/v1/audit/checkpoint", Audit, "A fresh signed checkpoint (C2SP signed note)").returning(Returns::Media(&[audit::SIGNED_NOTE], "A C2SP signed note: origin, size and root, with the deployment's signature")), get(audit::checkpoint)),
        (Route::new("get", "/v1/audit/proofs/{index}", Audit, "An inclusion proof for one entry (tlog-proof)").returning(Returns::Media(&[audit::SIGNED_NOTE], "A C2SP tlog-proof: the entry's index, its audit path and the signed checkpoint it leads to")), get(audit::proof)),
        (Route::new("get", "/v1/audit/export", Audit, "Export the ledger as JSON Lines or FHIR AuditEvents").query::<audit::ExportQuery>().returning(Returns::Media(EXPORT_MEDIA, "One entry a line (`format=jsonl`, the default), or a FHIR Bundle of AuditEvents (`format=fhir`)")), get(audit::export)),
        (Route::new("get", "/v1/incidents/findings", Audit, "Run Airlock's incident detection rules over the whole ledger (auditor, privacy officer, security administrator): an actor reading far more patients than their own or their peers' baseline, reads at hours the actor never works, unreviewed break-glass, bursts of failed logins, refusals or releases, failed leak checks, a ledger that fails verification; each finding cites ledger indices and counts, never a patient").json::<airlock_service::incidents::Scan>(200), get(audit::findings)),
        (Route::new("post", "/v1/audit/disclosures", Audit, "Accounting of disclosures for a patient (45 CFR 164.528)").body::<audit::DisclosuresBody>().json::<a::Disclosures>(200), post(audit::disclosures)),
        (Route::new("get", "/v1/break-glass", BreakGlass, "Break-glass grants, for review").json::<bg::Grants>(200), get(break_glass::list)),
        (Route::new("post", "/v1/break-glass", BreakGlass, "Open time-limited emergency access to a patient's record").body::<bg::NewGrant>().purpose().json::<bg::Opened>(201), post(break_glass::open)),
        (Route::new("post", "/v1/break-glass/{id}/review", BreakGlass, "Record the review of a break-glass grant").body::<bg::Review>().no_content(), post(break_glass::review)),
        (Route::new("post", "/v1/patients/lookup", Patients, "A patient's FHIR resources from a clinical dataset").body::<p::Lookup>().purpose().json::<p::Searchset>(200).throttled("Too many patient records opened by this principal; Retry-After says when to try again"), post(patients::lookup)),
        (Route::new("get", "/v1/models", Models, "Model versions the principal may read").json::<m::ModelList>(200), get(models::list)),
        (Route::new("get", "/v1/models/{name}", Models, "A model's versions, model cards, approvals and full history").json::<m::ModelDetail>(200), get(models::show)),
        (Route::new("post", "/v1/models/{name}/versions/{version}/validate", Models, "Validate a registered version on held-out data under the deployment's validation policy (metrics, per-group performance and disparities, calibration, a membership-inference attack): a signed report kept with the version; the version becomes validated only if it passed").body::<m::ValidateBody>().json::<m::Validated>(200), post(models::validate)),
        (Route::new("post", "/v1/models/{name}/versions/{version}/approve", Models, "Approve a validated version as one of the roles the quorum needs").body::<m::ApproveBody>().json::<airlock_registry::ApprovalOutcome>(200), post(models::approve)),
        (Route::new("post", "/v1/models/{name}/versions/{version}/deploy", Models, "Move a version to silent, canary (with a share of patients) or retired").body::<m::DeployBody>().json::<m::Transitions>(200), post(models::deploy)),
        (Route::new("post", "/v1/models/{name}/plans", Models, "Propose a change control plan for a model (TOML: the modifications allowed later, the verification each needs, the rollout it follows); signed, versioned, proposed until the approval quorum approves it").body::<airlock_service::plans::PlanBody>().json::<airlock_registry::plan::PlanRecord>(200), post(models::propose_plan)),
        (Route::new("get", "/v1/models/{name}/plans", Models, "A model's change control plans, every version, with their approvals").json::<airlock_service::plans::PlanList>(200), get(models::plans)),
        (Route::new("post", "/v1/models/{name}/plans/{plan}/approve", Models, "Approve a proposed plan as one of the roles the quorum needs (never its proposer)").body::<airlock_service::plans::PlanApproveBody>().json::<airlock_registry::plan::PlanRecord>(200), post(models::approve_plan)),
        (Route::new("post", "/v1/models/{name}/update", Models, "Update a model under an approved change control plan: retrain the version it replaces on a newer version of its dataset (same features, family, target and hyper-parameters), validate both on the same held-out data and check every clause; a conforming version is approved by the plan and still rolls out silent, then canary; a non-conforming one names the clauses it broke").body::<airlock_service::plans::UpdateBody>().json::<airlock_registry::plan::UpdateOutcome>(200), post(models::update)),
        (Route::new("post", "/v1/models/{name}/promote", Models, "Promote the canary to production (the previous production version retires)").body::<m::ReasonBody>().json::<m::Transitions>(200), post(models::promote)),
        (Route::new("post", "/v1/models/{name}/rollback", Models, "Roll the canary back to silent; with no canary, production back to the version that was production before it (standing by, silent)").body::<m::ReasonBody>().json::<m::Transitions>(200), post(models::rollback)),
        (Route::new("post", "/v1/models/{name}/predict", Models, "An audited prediction for one patient (silent versions score it too)").body::<m::PredictBody>().purpose().json::<m::Prediction>(200), post(models::predict)),
        (Route::new("get", "/v1/models/{name}/report", Models, "Silent and canary versions compared with what was shown, with outcome metrics").json::<m::Report>(200), get(models::report)),
        (Route::new("get", "/v1/models/{name}/monitoring", Models, "Monitoring of a model's deployed versions over a window of the prediction log: drift per feature and for the score against the version's reference profile (Evidently's tests and default rule), performance estimated from the scores (NannyML's CBPE), and realised performance where outcomes were posted; aggregates only, with the counts behind each").query::<airlock_service::monitoring::MonitorQuery>().json::<airlock_service::monitoring::MonitoringReport>(200), get(models::monitoring)),
        (Route::new("get", "/v1/models/{name}/monitoring/rules", Models, "A model's monitoring rules (TOML, versioned and hashed; Airlock's defaults, version 0, until set)").json::<airlock_service::alerts::RulesView>(200), get(models::monitoring_rules)),
        (Route::new("post", "/v1/models/{name}/monitoring/rules", Models, "Set a model's monitoring rules: which measure, threshold, window, minimum samples, consecutive windows, severity, and whether to roll a canary back").body::<airlock_service::alerts::RulesBody>().json::<airlock_service::alerts::RulesView>(200), post(models::set_monitoring_rules)),
        (Route::new("get", "/v1/models/{name}/monitoring/alerts", Models, "A model's monitoring alerts, fired and resolved, newest first").json::<airlock_service::alerts::AlertList>(200), get(models::monitoring_alerts)),
        (Route::new("post", "/v1/models/{name}/monitoring/evaluate", Models, "Evaluate a model's monitoring rules now (the server also does, every 200 logged predictions and each minute): alerts fire or resolve, notifications are sent, a rule may roll a canary back").json::<airlock_service::alerts::Evaluation>(200), post(models::evaluate_monitoring)),
        (Route::new("post", "/v1/monitoring/webhooks", Models, "Register a webhook destination for monitoring alerts (security administrator): https with the certificate to trust, or http to loopback; the HMAC-SHA256 signing secret is in the response, once").body::<airlock_service::alerts::WebhookBody>().json::<airlock_service::alerts::Webhook>(200), post(models::add_webhook)),
        (Route::new("get", "/v1/monitoring/webhooks", Models, "The registered webhook destinations (no secrets)").json::<airlock_service::alerts::WebhookList>(200), get(models::webhooks)),
        (Route::new("post", "/v1/monitoring/drift", Models, "Drift of one development dataset version against another, column by column (offline: aggregates only)").body::<airlock_service::monitoring::DriftBody>().json::<airlock_service::monitoring::DriftReport>(200), post(models::dataset_drift)),
        (Route::new("post", "/v1/predictions/{index}/override", Predictions, "A clinician overrides a prediction, with a coded reason").body::<m::OverrideBody>().purpose().json::<m::Overridden>(200), post(models::override_prediction)),
        (Route::new("post", "/v1/witness/add-checkpoint", Witness, "Cosign another deployment's checkpoint (C2SP tlog-witness add-checkpoint)").public().text_body(witness::NOTE, "`old SIZE`, the consistency proof's hashes, a blank line, then the signed checkpoint", witness::ADD_CHECKPOINT).returning(Returns::Media(&[witness::NOTE], "The witness's cosignature lines (C2SP tlog-cosignature)")).refuses(&[403, 404, 409, 422], &[(409, witness::TLOG_SIZE)]), post(witness::add_checkpoint)),
        (Route::new("get", "/v1/witness/key", Witness, "This witness's cosignature verifier key (for the logs it witnesses to trust)").public().returning(Returns::Media(&[witness::NOTE], "The verifier key, `name+keyid+key`")), get(witness::key)),
        (Route::new("post", "/v1/predictions/{index}/outcome", Predictions, "Post the observed outcome of a prediction").body::<m::OutcomeBody>().purpose().json::<m::OutcomeRecorded>(200), post(models::outcome)),
    ]
}

/// What an export may answer with.
const EXPORT_MEDIA: &[&str] = &[
    airlock_service::audit::ExportFormat::Jsonl.media_type(),
    airlock_service::audit::ExportFormat::Fhir.media_type(),
];

pub(crate) fn router() -> Router<AppState> {
    // Routes sharing a path are merged into one method router by axum.
    table()
        .into_iter()
        .fold(Router::new(), |r, (route, handler)| {
            r.route(route.path, handler)
        })
}

/// `GET /healthz`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Health {
    /// Always `ok` when the server answers.
    #[schemars(schema_with = "airlock_service::schema::always_ok")]
    status: &'static str,
}

/// A parsed body, or its refusal, for an operation that decides before it reads the body.
fn parsed<T>(body: Result<crate::extract::Body<T>, crate::ApiError>) -> Result<T, ServiceError> {
    body.map(|crate::extract::Body(b)| b)
        .map_err(ServiceError::from)
}

/// Bytes with a media type.
fn typed(media_type: &'static str, bytes: impl IntoResponse) -> Response {
    ([(header::CONTENT_TYPE, media_type)], bytes).into_response()
}

async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The Prometheus text, for [`crate::metrics_app`] (not part of the API: request counts by
/// route and decisions by action are nobody's business outside operations).
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    typed("text/plain; version=0.0.4", state.metrics().render())
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}
