//! The OpenAPI 3.1 document, built from one route table. The same table drives the test that
//! every authenticated route answers 401 without credentials, and the checked-in golden copy
//! (`openapi.json` at the crate root) must equal it.

use serde_json::{Map, Value, json};

/// One operation.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method, lower case.
    pub method: &'static str,
    /// Path template (`{name}` parameters).
    pub path: &'static str,
    /// One line.
    pub summary: &'static str,
    /// Whether a bearer credential is required.
    pub authenticated: bool,
    /// Request body schema name in `components.schemas`, if any.
    pub body: Option<&'static str>,
    /// Query parameters (name, schema type).
    pub query: &'static [(&'static str, &'static str)],
    /// Whether the route reads the purpose-of-use header.
    pub purpose: bool,
    /// The status of a success: 200, 201 (created), 202 (started) or 204 (no body).
    pub success: u16,
    /// The success body's schema name in `components.schemas`, where the document states it.
    pub returns: Option<&'static str>,
}

const fn r(method: &'static str, path: &'static str, summary: &'static str) -> Route {
    Route {
        method,
        path,
        summary,
        authenticated: true,
        body: None,
        query: &[],
        purpose: false,
        success: 200,
        returns: None,
    }
}

/// What a dataset name looks like (`airlock_types::DatasetName`).
const DATASET_NAME: &str = "^[a-z0-9][a-z0-9._-]{0,63}$";
/// What an actor id looks like (`airlock_types::ActorId`).
const ACTOR: &str = "^[A-Za-z0-9._@:-]{1,128}$";
/// A dataset name with an optional `@VERSION`.
const DATASET_SPEC: &str = "^[a-z0-9][a-z0-9._-]{0,63}(@[1-9][0-9]{0,8})?$";

/// The de-identification profiles a run started over the API may name: the built-in ones
/// (a path would let a request read files on the server).
pub use airlock_service::deid_runs::REMOTE_PROFILES as API_PROFILES;

/// Every route the server answers.
pub const ROUTES: &[Route] = &[
    Route {
        authenticated: false,
        ..r("get", "/healthz", "Liveness")
    },
    Route {
        authenticated: false,
        ..r("get", "/openapi.json", "This document")
    },
    Route {
        authenticated: false,
        body: Some("Login"),
        returns: Some("Session"),
        ..r(
            "post",
            "/v1/auth/login",
            "Log in with password and TOTP; returns a session token",
        )
    },
    Route {
        success: 204,
        ..r("post", "/v1/auth/logout", "End this session")
    },
    r(
        "get",
        "/v1/auth/whoami",
        "The authenticated principal, roles and visible zones",
    ),
    r(
        "get",
        "/v1/users",
        "List principals (security administrator)",
    ),
    Route {
        body: Some("NewPrincipal"),
        success: 201,
        ..r(
            "post",
            "/v1/users",
            "Create a person (returns a one-time enrolment token; roles that reach PHI wait for a second person) or a service",
        )
    },
    Route {
        authenticated: false,
        body: Some("Enrol"),
        ..r(
            "post",
            "/v1/enrol",
            "Redeem an enrolment token: set (or prove) your password and receive your TOTP enrolment URI once",
        )
    },
    r(
        "post",
        "/v1/users/{id}/roles/{role}/confirm",
        "Confirm a role another person granted (privacy officer; never the granter)",
    ),
    Route {
        success: 204,
        ..r(
            "post",
            "/v1/users/{id}/disable",
            "Disable a principal, ending its sessions and tokens",
        )
    },
    r(
        "post",
        "/v1/users/{id}/reset-mfa",
        "Give a person a new one-time enrolment token (they set up a new second factor with it and their password)",
    ),
    Route {
        body: Some("NewToken"),
        success: 201,
        ..r(
            "post",
            "/v1/tokens",
            "Issue a scoped, expiring API token to a service",
        )
    },
    Route {
        success: 204,
        ..r("delete", "/v1/tokens/{id}", "Revoke an API token")
    },
    r("get", "/v1/datasets", "Datasets the principal may list"),
    Route {
        query: &[("version", "integer")],
        ..r(
            "get",
            "/v1/datasets/{name}",
            "One dataset version's metadata and the list of versions",
        )
    },
    Route {
        query: &[("version", "integer")],
        ..r(
            "get",
            "/v1/datasets/{name}/lineage",
            "The version and its ancestors",
        )
    },
    Route {
        query: &[("version", "integer")],
        purpose: true,
        ..r(
            "get",
            "/v1/datasets/{name}/files",
            "A version's files by index (where download is allowed)",
        )
    },
    Route {
        query: &[("version", "integer")],
        purpose: true,
        ..r(
            "get",
            "/v1/datasets/{name}/files/{index}",
            "Download one file (where allowed)",
        )
    },
    Route {
        body: Some("DeidRun"),
        success: 202,
        ..r(
            "post",
            "/v1/deid-runs",
            "Start a de-identification gate run",
        )
    },
    r("get", "/v1/deid-runs/{id}", "A run's status"),
    r(
        "get",
        "/v1/deid-runs/{id}/report",
        "A finished run's de-identification report",
    ),
    Route {
        body: Some("AuditSearch"),
        ..r("post", "/v1/audit/search", "Search the ledger")
    },
    r("get", "/v1/audit/verify", "Verify the whole ledger"),
    r(
        "get",
        "/v1/audit/checkpoint",
        "A fresh signed checkpoint (C2SP signed note)",
    ),
    r(
        "get",
        "/v1/audit/proofs/{index}",
        "An inclusion proof for one entry (tlog-proof)",
    ),
    Route {
        query: &[("format", "string")],
        ..r(
            "get",
            "/v1/audit/export",
            "Export the ledger as JSON Lines or FHIR AuditEvents",
        )
    },
    Route {
        body: Some("Disclosures"),
        ..r(
            "post",
            "/v1/audit/disclosures",
            "Accounting of disclosures for a patient (45 CFR 164.528)",
        )
    },
    r("get", "/v1/break-glass", "Break-glass grants, for review"),
    Route {
        body: Some("BreakGlass"),
        purpose: true,
        success: 201,
        ..r(
            "post",
            "/v1/break-glass",
            "Open time-limited emergency access to a patient's record",
        )
    },
    Route {
        body: Some("Review"),
        success: 204,
        ..r(
            "post",
            "/v1/break-glass/{id}/review",
            "Record the review of a break-glass grant",
        )
    },
    Route {
        body: Some("PatientLookup"),
        purpose: true,
        ..r(
            "post",
            "/v1/patients/lookup",
            "A patient's FHIR resources from a clinical dataset",
        )
    },
    r("get", "/v1/models", "Model versions the principal may read"),
    r(
        "get",
        "/v1/models/{name}",
        "A model's versions, model cards, approvals and full history",
    ),
    Route {
        body: Some("Reason"),
        ..r(
            "post",
            "/v1/models/{name}/versions/{version}/validate",
            "Re-verify a registered version and mark it validated",
        )
    },
    Route {
        body: Some("Approve"),
        ..r(
            "post",
            "/v1/models/{name}/versions/{version}/approve",
            "Approve a validated version as one of the roles the quorum needs",
        )
    },
    Route {
        body: Some("Deploy"),
        ..r(
            "post",
            "/v1/models/{name}/versions/{version}/deploy",
            "Move a version to silent, canary (with a share of patients) or retired",
        )
    },
    Route {
        body: Some("Reason"),
        ..r(
            "post",
            "/v1/models/{name}/promote",
            "Promote the canary to production (the previous production version retires)",
        )
    },
    Route {
        body: Some("Reason"),
        ..r(
            "post",
            "/v1/models/{name}/rollback",
            "Roll the canary back to silent",
        )
    },
    Route {
        body: Some("Predict"),
        purpose: true,
        returns: Some("Prediction"),
        ..r(
            "post",
            "/v1/models/{name}/predict",
            "An audited prediction for one patient (silent versions score it too)",
        )
    },
    r(
        "get",
        "/v1/models/{name}/report",
        "Silent and canary versions compared with what was shown, with outcome metrics",
    ),
    Route {
        body: Some("Override"),
        purpose: true,
        returns: Some("OverrideRecorded"),
        ..r(
            "post",
            "/v1/predictions/{index}/override",
            "A clinician overrides a prediction, with a coded reason",
        )
    },
    Route {
        body: Some("Outcome"),
        purpose: true,
        returns: Some("OutcomeRecorded"),
        ..r(
            "post",
            "/v1/predictions/{index}/outcome",
            "Post the observed outcome of a prediction",
        )
    },
];

fn schemas() -> Value {
    let roles = json!({"type": "string", "enum": ["data-scientist", "mlops-engineer", "clinician", "clinical-reviewer", "privacy-officer", "security-admin", "auditor"]});
    // What a service token may carry: no person-only action.
    let actions: Vec<&str> = airlock_authz::Action::ALL
        .iter()
        .filter(|a| !airlock_service::identity::person_only_action(**a))
        .map(|a| a.as_str())
        .collect();
    let events: Vec<&str> = airlock_ledger::EventType::ALL
        .iter()
        .map(|e| e.as_str())
        .collect();
    let obj = |props: Value, required: &[&str]| json!({"type": "object", "additionalProperties": false, "properties": props, "required": required});
    // An optional field: absent and `null` both mean "not given".
    let nullable = |schema: Value| json!({"anyOf": [schema, {"type": "null"}]});
    let actor = json!({"type": "string", "pattern": ACTOR});
    // A new principal's id: an actor id that is not one the ledger reserves
    // (`identity::is_reserved`: `anonymous`, `local-operator`, `operator:*`, in any case).
    let new_id = json!({"type": "string", "pattern": ACTOR, "not": {"pattern": "^([Aa][Nn][Oo][Nn][Yy][Mm][Oo][Uu][Ss]|[Ll][Oo][Cc][Aa][Ll]-[Oo][Pp][Ee][Rr][Aa][Tt][Oo][Rr]|[Oo][Pp][Ee][Rr][Aa][Tt][Oo][Rr]:.*)$"}});
    let service_roles: Vec<&str> = airlock_authz::Role::ALL
        .iter()
        .filter(|r| !airlock_service::identity::person_only(**r))
        .map(|r| r.as_str())
        .collect();
    let service_roles = json!({"type": "string", "enum": service_roles});
    // What `routes::patient` accepts: 1 to 128 characters, no control characters.
    // A free-text reason on one line: 1 to 500 characters, not all blank (`models::check_reason`).
    let reason = json!({"type": "string", "minLength": 1, "maxLength": 500, "pattern": "^[^\\x00-\\x1f]*[^\\s\\x00-\\x1f][^\\x00-\\x1f]*$"});
    let mrn = json!({"type": "string", "minLength": 1, "maxLength": airlock_types::Mrn::MAX_CHARS, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"});
    json!({
        "Login": obj(json!({"username": {"type": "string"}, "password": {"type": "string"}, "totp": {"type": "string", "pattern": "^[0-9]{6}$"}}), &["username", "password", "totp"]),
        // Nobody sets another person's password: a person enrols with the token the answer
        // carries. A service authenticates with tokens or a client certificate.
        // Services hold no person-only role (`identity::person_only`).
        "NewPrincipal": {"oneOf": [
            obj(json!({"id": new_id.clone(), "kind": {"const": "user"}, "roles": {"type": "array", "items": roles.clone(), "minItems": 1}}), &["id", "kind", "roles"]),
            obj(json!({"id": new_id, "kind": {"const": "service"}, "roles": {"type": "array", "items": service_roles, "minItems": 1}}), &["id", "kind", "roles"]),
        ]},
        "Enrol": obj(json!({"token": {"type": "string", "pattern": "^ale_[A-Za-z0-9_-]{43}$"}, "password": {"type": "string", "minLength": crate::IdentityPolicy::default().min_password_len}}), &["token", "password"]),
        "NewToken": obj(json!({"principal": actor.clone(), "scopes": {"type": "array", "items": {"type": "string", "enum": actions}, "minItems": 1}, "days": {"type": "integer", "minimum": 1, "maximum": crate::IdentityPolicy::default().max_token_days}}), &["principal", "scopes", "days"]),
        "DeidRun": obj(json!({"profile": {"type": "string", "enum": API_PROFILES}, "dataset": {"type": "string", "pattern": DATASET_SPEC}, "out_dataset": {"type": "string", "pattern": DATASET_NAME}}), &["profile", "dataset", "out_dataset"]),
        "AuditSearch": obj(json!({"actor": nullable(actor), "patient_mrn": nullable(mrn.clone()), "events": {"type": "array", "items": {"type": "string", "enum": events}}, "since": nullable(json!({"type": "string", "format": "date-time"})), "until": nullable(json!({"type": "string", "format": "date-time"})), "limit": nullable(json!({"type": "integer", "minimum": 1, "maximum": 10000}))}), &[]),
        "Disclosures": obj(json!({"patient_mrn": mrn.clone()}), &["patient_mrn"]),
        "BreakGlass": obj(json!({"patient_mrn": mrn.clone(), "reason": {"type": "string", "enum": ["emergency-treatment", "patient-unresponsive", "urgent-consult", "system-downtime"]}, "minutes": nullable(json!({"type": "integer", "minimum": 1, "maximum": 240}))}), &["patient_mrn", "reason"]),
        "Review": obj(json!({"outcome": {"type": "string", "enum": ["appropriate", "inappropriate"]}}), &["outcome"]),
        "PatientLookup": obj(json!({"dataset": {"type": "string", "pattern": DATASET_SPEC}, "mrn": mrn.clone()}), &["dataset", "mrn"]),
        "Reason": obj(json!({"reason": reason.clone()}), &["reason"]),
        "Approve": obj(json!({"role": roles, "reason": reason.clone()}), &["role", "reason"]),
        "Deploy": obj(json!({"state": {"type": "string", "enum": ["silent", "canary", "retired"]}, "canary_percent": nullable(json!({"type": "number", "exclusiveMinimum": 0, "maximum": 100})), "reason": reason.clone()}), &["state", "reason"]),
        "Predict": obj(json!({"patient_mrn": mrn.clone(), "features": {"type": "object", "additionalProperties": {"type": ["number", "string"]}}}), &["patient_mrn", "features"]),
        "Override": obj(json!({"reason": {"type": "string", "enum": ["clinical-judgement", "information-not-in-model", "data-error", "model-not-applicable", "patient-preference"]}, "decision": {"type": "string", "enum": ["high-risk", "low-risk"]}}), &["reason", "decision"]),
        "Outcome": obj(json!({"label": {"type": "boolean"}, "correction": {"type": "boolean", "description": "replace an outcome already recorded with the other label; the ledger keeps both"}}), &["label"]),
        "Session": obj(json!({"token": {"type": "string"}, "expires_at": {"type": "string", "format": "date-time"}, "idle_timeout_seconds": {"type": "integer", "minimum": 0}}), &["token", "expires_at", "idle_timeout_seconds"]),
        "Prediction": obj(json!({
            "prediction_id": {"type": "integer", "minimum": 0, "description": "The ledger index of the prediction's entry: overrides and outcomes name it"},
            "model": {"type": "string"},
            "version": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "SHA-256 of the model version's package"},
            "state": {"type": "string", "enum": ["canary", "production"], "description": "The lifecycle state of the version that answered"},
            "score": {"type": "number", "minimum": 0, "maximum": 1, "description": "The predicted probability"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "features": {"type": "array", "items": {"type": "string"}, "description": "The features the model used, by name"},
            "display": {"const": "shown"},
            "silent_versions_logged": {"type": "integer", "minimum": 0, "description": "Silent versions that scored the same request (logged, never returned)"},
        }), &["prediction_id", "model", "version", "state", "score", "confidence", "features", "display", "silent_versions_logged"]),
        "OverrideRecorded": obj(json!({"override_id": {"type": "integer", "minimum": 0}, "prediction_id": {"type": "integer", "minimum": 0}, "reason": {"type": "string"}, "decision": {"type": "string", "enum": ["high-risk", "low-risk"]}}), &["override_id", "prediction_id", "reason", "decision"]),
        "OutcomeRecorded": obj(json!({"prediction_id": {"type": "integer", "minimum": 0}, "recorded": {"const": true}}), &["prediction_id", "recorded"]),
        "Error": {"type": "object", "properties": {"error": {"type": "string"}, "message": {"type": "string"}, "request_id": {"type": "string"}}, "required": ["error", "message"]},
    })
}

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let schema = match name {
                "index" => json!({"type": "integer", "minimum": 0, "maximum": u64::MAX}),
                "version" => json!({"type": "string", "pattern": "^[0-9a-f]{6,64}$"}),
                "name" => json!({"type": "string", "pattern": DATASET_NAME}),
                "id" => json!({"type": "string", "pattern": "^[A-Za-z0-9._@:-]{1,128}$"}),
                "role" => json!({"type": "string", "enum": ["data-scientist", "mlops-engineer", "clinician", "clinical-reviewer", "privacy-officer", "security-admin", "auditor"]}),
                _ => json!({"type": "string"}),
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

/// Every status `route` may answer with, short of a server error.
pub fn statuses(route: &Route) -> Vec<u16> {
    let mut out = vec![route.success, 400];
    if route.authenticated {
        out.extend([401, 403, 404, 409, 422]);
    }
    if route.path == "/v1/auth/login" || route.path == "/v1/enrol" {
        out.extend([401, 429]);
    }
    if route.path == "/v1/patients/lookup" {
        out.push(429);
    }
    out
}

/// The route that answers `method` on `path` (a concrete path, query string allowed).
pub fn route_for(method: &str, path: &str) -> Option<&'static Route> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    ROUTES.iter().find(|r| {
        r.method.eq_ignore_ascii_case(method) && {
            let (mut want, mut got) = (r.path.split('/'), path.split('/'));
            loop {
                match (want.next(), got.next()) {
                    (None, None) => break true,
                    (Some(w), Some(g)) if w == g || (w.starts_with('{') && !g.is_empty()) => {}
                    _ => break false,
                }
            }
        }
    })
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let mut params = path_params(route.path);
        for (name, ty) in route.query {
            let schema = match (*name, *ty) {
                ("version", _) => json!({"type": "integer", "minimum": 1, "maximum": u32::MAX}),
                ("format", _) => json!({"type": "string", "enum": ["jsonl", "fhir"]}),
                (_, ty) => json!({"type": ty}),
            };
            params.push(json!({"name": name, "in": "query", "required": false, "schema": schema}));
        }
        if route.purpose {
            params.push(json!({"name": "X-Purpose-Of-Use", "in": "header", "required": false,
                "schema": {"type": "string", "enum": ["treatment", "payment", "operations", "research", "public-health", "emergency"]}}));
        }
        let err = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        let mut responses = Map::new();
        for status in statuses(route) {
            let response = match (status, route.returns) {
                (200 | 201, Some(body)) => json!({
                    "description": if status == 200 { "OK" } else { "Created" },
                    "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}},
                }),
                (200, None) => json!({"description": "OK"}),
                (201, None) => json!({"description": "Created"}),
                (202, _) => json!({"description": "Accepted: the run goes on in the background"}),
                (204, _) => json!({"description": "Done (no body)"}),
                (400, _) => err("Invalid request (the field is named, its value never echoed)"),
                (401, _) => err("Authentication required"),
                (403, _) => err("Denied by policy (the deciding policies are named)"),
                (404, _) => err("Not found or not visible to this principal"),
                (409, _) => err(
                    "Conflicts with the current state (an existing name, a lifecycle step out of order)",
                ),
                (422, _) => err("Refused by the zone rules or a gate"),
                (429, _) if route.path == "/v1/auth/login" || route.path == "/v1/enrol" => err(
                    "Too many password checks from this source; Retry-After says when to try again",
                ),
                (429, _) => err(
                    "Too many patient records opened by this principal; Retry-After says when to try again",
                ),
                _ => err("Error"),
            };
            responses.insert(status.to_string(), response);
        }
        let mut op = json!({
            "summary": route.summary,
            "operationId": format!("{}{}", route.method, route.path.replace(['/', '{', '}', '-', '.'], "_")),
            "parameters": params,
            "responses": responses,
        });
        if let Some(o) = op.as_object_mut() {
            o.insert(
                "security".into(),
                if route.authenticated {
                    json!([{"bearer": []}])
                } else {
                    json!([])
                },
            );
            if let Some(b) = route.body {
                o.insert("requestBody".into(), json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{b}")}}}}));
            }
        }
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = entry.as_object_mut() {
            m.insert(route.method.to_string(), op);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Airlock API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "HIPAA-governed data and AI platform. Every request is authorized by Cedar policy and written to a Merkle-tree audit ledger.",
        },
        "servers": [{"url": "https://localhost:8443"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
    })
}
