//! The OpenAPI 3.1 document, generated from the route table the router is built from
//! (`routes::table`) and from the request and response types (their JSON Schemas come from
//! `schemars`, with the bounds and patterns their validators enforce). A route, a field or an
//! enum variant cannot be added without appearing here. The checked-in golden copy
//! (`openapi.json` at the crate root) must equal it.

use std::sync::LazyLock;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

/// Writes one schema into the generator's components and answers a reference to it.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// The resource groups operations are tagged with (generated clients group by them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// Health and this document.
    System,
    /// Sessions, enrolment, principals and tokens.
    Identities,
    /// Datasets, versions, lineage and files.
    Datasets,
    /// De-identification runs (the gate out of the clinical zone).
    Deidentification,
    /// The audit ledger.
    Audit,
    /// Emergency access.
    BreakGlass,
    /// Patient records.
    Patients,
    /// Model registry, rollout and serving.
    Models,
    /// Overrides and outcomes of predictions.
    Predictions,
    /// Cosigning other deployments' checkpoints.
    Witness,
    /// Differentially private questions, DP metadata and budgets.
    Privacy,
}

impl Tag {
    const ALL: [Tag; 11] = [
        Tag::System,
        Tag::Identities,
        Tag::Datasets,
        Tag::Deidentification,
        Tag::Audit,
        Tag::BreakGlass,
        Tag::Patients,
        Tag::Models,
        Tag::Predictions,
        Tag::Witness,
        Tag::Privacy,
    ];

    fn name(self) -> &'static str {
        match self {
            Tag::System => "system",
            Tag::Identities => "identities",
            Tag::Datasets => "datasets",
            Tag::Deidentification => "deidentification",
            Tag::Audit => "audit",
            Tag::BreakGlass => "break-glass",
            Tag::Patients => "patients",
            Tag::Models => "models",
            Tag::Predictions => "predictions",
            Tag::Witness => "witness",
            Tag::Privacy => "privacy",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Tag::System => "Liveness and this document",
            Tag::Identities => {
                "Sessions, self-enrolment, principals, role confirmation and API tokens"
            }
            Tag::Datasets => "Datasets, versions, lineage and files, within the caller's zones",
            Tag::Deidentification => {
                "De-identification runs: the audited gate out of the clinical zone"
            }
            Tag::Audit => {
                "The transparency-log ledger: search, verification, proofs, export, disclosures"
            }
            Tag::BreakGlass => "Time-limited emergency access and its review",
            Tag::Patients => "A patient's record, by record number",
            Tag::Models => "Model versions: validation, approval, rollout, serving, reports",
            Tag::Predictions => "Clinicians' overrides and observed outcomes of predictions",
            Tag::Witness => "This deployment as a C2SP tlog-witness of other deployments' ledgers",
            Tag::Privacy => {
                "Differential privacy: aggregate questions of identified data, answered with calibrated noise and charged to budgets no concurrency can overspend; the datasets' DP metadata"
            }
        }
    }
}

/// What a success answers with.
#[derive(Debug, Clone, Copy)]
pub enum Returns {
    /// Nothing (204).
    Empty,
    /// A JSON body of this type.
    Json(SchemaFn),
    /// A document in one of these media types (the query chooses), described: a signed note,
    /// an export. A `+json` type is an object, anything else text.
    Media(&'static [&'static str], &'static str),
    /// JSON reports stored by a run (one per run, over every file), described.
    Reports(&'static str),
    /// A file: JSON for FHIR and reports, bytes otherwise.
    File,
}

/// One operation: the router's entry and the document's, from one table.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method, lower case.
    pub method: &'static str,
    /// Path template (`{name}` parameters).
    pub path: &'static str,
    /// One line.
    pub summary: &'static str,
    /// The resource group.
    pub tag: Tag,
    /// Whether a bearer credential is required.
    pub authenticated: bool,
    /// The request body's type.
    pub body: Option<SchemaFn>,
    /// A text request body instead: its media type, what it holds, and a pattern it matches.
    pub text_body: Option<(&'static str, &'static str, &'static str)>,
    /// The query string's type (each property is a parameter).
    pub query: Option<SchemaFn>,
    /// Whether the route reads the purpose-of-use header.
    pub purpose: bool,
    /// The status of a success: 200, 201 (created), 202 (started) or 204 (no body).
    pub success: u16,
    /// The success body.
    pub returns: Returns,
    /// When the route answers 429, why.
    pub throttled: Option<&'static str>,
    /// Refusals beyond those every route of its kind gives (a protocol's own statuses).
    pub refusals: &'static [u16],
    /// Refusals whose body is text of a media type a protocol fixes, not the JSON error.
    pub text_refusals: &'static [(u16, &'static str)],
}

impl Route {
    /// An authenticated operation answering 200 with nothing declared yet.
    pub const fn new(
        method: &'static str,
        path: &'static str,
        tag: Tag,
        summary: &'static str,
    ) -> Route {
        Route {
            method,
            path,
            summary,
            tag,
            authenticated: true,
            body: None,
            text_body: None,
            query: None,
            purpose: false,
            success: 200,
            returns: Returns::Empty,
            throttled: None,
            refusals: &[],
            text_refusals: &[],
        }
    }

    /// Open to anyone (no credential).
    pub const fn public(self) -> Route {
        Route {
            authenticated: false,
            ..self
        }
    }

    /// Takes a JSON body of type `T`.
    pub fn body<T: JsonSchema>(self) -> Route {
        Route {
            body: Some(schema_of::<T>),
            ..self
        }
    }

    /// Takes a text body of `media`, holding `what`, matching `pattern`.
    pub const fn text_body(
        self,
        media: &'static str,
        what: &'static str,
        pattern: &'static str,
    ) -> Route {
        Route {
            text_body: Some((media, what, pattern)),
            ..self
        }
    }

    /// Also refuses with `statuses`; those in `text` carry a text body of the given media type.
    pub const fn refuses(
        self,
        statuses: &'static [u16],
        text: &'static [(u16, &'static str)],
    ) -> Route {
        Route {
            refusals: statuses,
            text_refusals: text,
            ..self
        }
    }

    /// Reads the query string as `T`.
    pub fn query<T: JsonSchema>(self) -> Route {
        Route {
            query: Some(schema_of::<T>),
            ..self
        }
    }

    /// Reads the purpose-of-use header.
    pub const fn purpose(self) -> Route {
        Route {
            purpose: true,
            ..self
        }
    }

    /// Answers `status` with a JSON `T`.
    pub fn json<T: JsonSchema>(self, status: u16) -> Route {
        Route {
            success: status,
            returns: Returns::Json(schema_of::<T>),
            ..self
        }
    }

    /// Answers 204 with no body.
    pub const fn no_content(self) -> Route {
        Route {
            success: 204,
            returns: Returns::Empty,
            ..self
        }
    }

    /// Answers 200 with `returns` (not JSON of a type).
    pub const fn returning(self, returns: Returns) -> Route {
        Route { returns, ..self }
    }

    /// Answers 429 when throttled, for this reason.
    pub const fn throttled(self, why: &'static str) -> Route {
        Route {
            throttled: Some(why),
            ..self
        }
    }

    fn operation_id(&self) -> String {
        format!(
            "{}{}",
            self.method,
            self.path.replace(['/', '{', '}', '-', '.'], "_")
        )
    }
}

/// Every route the server answers, in the router's order.
pub static ROUTES: LazyLock<Vec<Route>> =
    LazyLock::new(|| crate::routes::table().into_iter().map(|(r, _)| r).collect());

/// Every status `route` may answer with, short of a server error.
pub fn statuses(route: &Route) -> Vec<u16> {
    let mut out = vec![route.success, 400];
    if route.authenticated {
        out.extend([401, 403, 404, 409, 422]);
    } else if route.throttled.is_some() {
        // A public route that checks a credential in its body (login, enrolment).
        out.push(401);
    }
    if route.throttled.is_some() {
        out.push(429);
    }
    for s in route.refusals {
        if !out.contains(s) {
            out.push(*s);
        }
    }
    out
}

/// The media type a refusal of `route` with `status` carries.
pub fn refusal_media(route: &Route, status: u16) -> &'static str {
    route
        .text_refusals
        .iter()
        .find(|(s, _)| *s == status)
        .map_or("application/json", |(_, m)| m)
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

/// A path parameter's schema, by the parameter's name (the same name means the same type in
/// every route).
fn path_param(generator: &mut SchemaGenerator, name: &str) -> Value {
    match name {
        "index" => json!({"type": "integer", "minimum": 0, "maximum": u64::MAX}),
        // A model version's hash or a prefix of it.
        "version" => json!({"type": "string", "pattern": "^[0-9a-f]{6,64}$"}),
        "name" => schema_of::<airlock_types::DatasetName>(generator).to_value(),
        "id" => schema_of::<airlock_types::ActorId>(generator).to_value(),
        "role" => schema_of::<airlock_authz::Role>(generator).to_value(),
        _ => json!({"type": "string"}),
    }
}

fn settings() -> SchemaSettings {
    SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    })
}

fn responses(generator: &mut SchemaGenerator, route: &Route) -> Map<String, Value> {
    let error = schema_of::<crate::error::ErrorBody>(generator).to_value();
    let err = |d: &str| json!({"description": d, "content": {"application/json": {"schema": error.clone()}}});
    let mut out = Map::new();
    for status in statuses(route) {
        let response = match status {
            s if s == route.success => match route.returns {
                Returns::Empty => json!({"description": "Done (no body)"}),
                Returns::Json(f) => json!({
                    "description": match s { 201 => "Created", 202 => "Accepted: the work goes on in the background", _ => "OK" },
                    "content": {"application/json": {"schema": f(generator).to_value()}},
                }),
                Returns::Media(media, shape) => {
                    let content: Map<String, Value> = media
                        .iter()
                        .map(|m| {
                            let ty = if m.ends_with("+json") {
                                "object"
                            } else {
                                "string"
                            };
                            (m.to_string(), json!({"schema": {"type": ty}}))
                        })
                        .collect();
                    json!({"description": shape, "content": content})
                }
                Returns::Reports(shape) => json!({
                    "description": shape,
                    "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}},
                }),
                Returns::File => json!({
                    "description": "The file: JSON for FHIR resources and reports, bytes otherwise",
                    "content": {
                        "application/json": {"schema": {}},
                        "application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}},
                    },
                }),
            },
            400 => err("Invalid request (the field is named, its value never echoed)"),
            401 => err("Authentication required"),
            403 => err("Denied by policy (the deciding policies are named)"),
            404 => err("Not found or not visible to this principal"),
            409 => err(
                "Conflicts with the current state (an existing name, a lifecycle step out of order)",
            ),
            s if refusal_media(route, s) != "application/json" => json!({
                "description": "Refused (the protocol's own answer)",
                "content": {refusal_media(route, s): {"schema": {"type": "string"}}},
            }),
            422 => err("Refused by the zone rules or a gate"),
            429 => err(route.throttled.unwrap_or("Too many requests")),
            _ => err("Error"),
        };
        out.insert(status.to_string(), response);
    }
    out
}

fn operation(generator: &mut SchemaGenerator, route: &Route) -> Value {
    let mut params: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": path_param(generator, name)}))
        .collect();
    if let Some(query) = route.query {
        // The query type is a flat object: each property is an optional parameter.
        let schema = query(generator);
        let resolved = resolve(generator, &schema.to_value());
        let required: Vec<&str> = resolved
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let properties = resolved.get("properties").and_then(Value::as_object);
        for (name, schema) in properties.into_iter().flatten() {
            params.push(json!({"name": name, "in": "query", "required": required.contains(&name.as_str()), "schema": without_null(schema.clone())}));
        }
    }
    if route.purpose {
        params.push(
            json!({"name": "X-Purpose-Of-Use", "in": "header", "required": false,
            "schema": schema_of::<airlock_types::Purpose>(generator).to_value()}),
        );
    }
    let mut op = Map::new();
    op.insert("tags".into(), json!([route.tag.name()]));
    op.insert("summary".into(), json!(route.summary));
    op.insert("operationId".into(), json!(route.operation_id()));
    op.insert("parameters".into(), Value::Array(params));
    if let Some(body) = route.body {
        op.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": body(generator).to_value()}}}),
        );
    }
    if let Some((media, what, pattern)) = route.text_body {
        op.insert(
            "requestBody".into(),
            json!({"required": true, "description": what, "content": {media: {"schema": {"type": "string", "pattern": pattern}}}}),
        );
    }
    op.insert(
        "responses".into(),
        Value::Object(responses(generator, route)),
    );
    op.insert(
        "security".into(),
        if route.authenticated {
            json!([{"bearer": []}])
        } else {
            json!([])
        },
    );
    Value::Object(op)
}

/// A query parameter is absent or has a value, never `null`: the `Option` a query type
/// declares is the parameter's being optional.
fn without_null(mut schema: Value) -> Value {
    let Some(o) = schema.as_object_mut() else {
        return schema;
    };
    if o.get("default") == Some(&Value::Null) {
        o.remove("default");
    }
    if let Some(Value::Array(types)) = o.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            o.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(any)) = o.get("anyOf") {
        let rest: Vec<Value> = any
            .iter()
            .filter(|s| s["type"] != "null")
            .cloned()
            .collect();
        if let [only] = rest.as_slice()
            && let Some(branch) = only.as_object()
        {
            let branch = branch.clone();
            o.remove("anyOf");
            o.extend(branch);
        }
    }
    schema
}

/// A schema with a top-level `$ref` replaced by what it names.
fn resolve(generator: &SchemaGenerator, schema: &Value) -> Value {
    schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .and_then(|name| generator.definitions().get(name).cloned())
        .unwrap_or_else(|| schema.clone())
}

/// The document.
pub fn document() -> Value {
    let mut generator = SchemaGenerator::new(settings());
    let mut paths = Map::new();
    for route in ROUTES.iter() {
        let op = operation(&mut generator, route);
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = entry.as_object_mut() {
            m.insert(route.method.to_string(), op);
        }
    }
    let mut schemas: Vec<(String, Value)> = generator.take_definitions(true).into_iter().collect();
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Airlock API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "HIPAA-governed data and AI platform. Every request is authorized by Cedar policy and written to a Merkle-tree audit ledger.",
        },
        "servers": [{"url": "https://localhost:8443"}],
        "tags": Tag::ALL.iter().map(|t| json!({"name": t.name(), "description": t.description()})).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": Map::from_iter(schemas),
        },
    })
}

/// The schema a success body of `route` must fit, resolved against `doc`'s components.
pub fn success_schema<'d>(doc: &'d Value, route: &Route) -> Option<&'d Value> {
    doc.get("paths")?
        .get(route.path)?
        .get(route.method)?
        .get("responses")?
        .get(route.success.to_string())?
        .get("content")?
        .get("application/json")?
        .get("schema")
}
