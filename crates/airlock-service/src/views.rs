//! Tables from FHIR (SQL-on-FHIR v2 ViewDefinitions, [`airlock_views`]): views registered for
//! a dataset, and views materialised from a FHIR version into a CSV version of the same zone
//! and classification (lineage gate `derive`: nothing crosses a zone this way; a view over a
//! clinical version stays clinical, over a de-identified one it is de-identified).
//!
//! A view is found by name among the dataset's registered views first, then among the
//! built-in ones ([`airlock_views::builtin`]). Registered views are typed (every column has a
//! `type`) and kept, as definitions only, next to the dataset in its zone.

use std::collections::BTreeMap;

use airlock_ledger::{EventType, OutcomeKind};
use airlock_store::{
    Access, DatasetVersion, Home, Lineage, NewFile, NewVersion, StoreError, Transform,
    parse_version_spec,
};
use airlock_types::{Classification, ContentHash, DatasetName, Gate};
use airlock_views::{LoadOptions, View, ViewError};
use serde_json::Value;
use sha2::Digest as _;

/// Why a view could not be registered or run. Messages name views, columns and resource
/// positions, never a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewsError {
    /// The definition is not a valid view.
    #[error("view `{view}`: {source}")]
    View {
        /// The view's name (or the file it came from).
        view: String,
        /// What is wrong.
        source: ViewError,
    },
    /// No registered or built-in view has this name.
    #[error(
        "no view `{name}` for this dataset: register one with `airlock views add`, or use a built-in one ({list})",
        list = builtin_names()
    )]
    Unknown {
        /// The name asked for.
        name: String,
    },
    /// The version holds no FHIR resource of the view's type.
    #[error("`{dataset}` has no `{resource}` resource for view `{view}` (the view gave no row)")]
    NoResource {
        /// The version.
        dataset: String,
        /// The view's resource type.
        resource: String,
        /// The view.
        view: String,
    },
    /// The version is not FHIR.
    #[error("`{0}` holds no FHIR file (views read FHIR JSON or NDJSON)")]
    NotFhir(String),
    /// The store refused or failed (zone rules included).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The rows could not be written.
    #[error("the view's rows could not be written as CSV")]
    Write,
    /// The rows could not be written as Parquet (the column and row named, never a value).
    #[error("the view's rows could not be written as Parquet: {0}")]
    Parquet(airlock_views::parquet::ParquetError),
}

fn builtin_names() -> String {
    airlock_views::builtin::BUILTIN
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The dataset a view over `dataset` (`NAME` or `NAME@VERSION`) becomes when no name is given:
/// `NAME-VIEW`, with `-` for `_` in the view's name.
pub fn derived_name(dataset: &str, view: &str) -> Result<DatasetName, airlock_types::IdError> {
    let base = dataset.split('@').next().unwrap_or(dataset);
    DatasetName::new(format!("{base}-{}", view.replace('_', "-")))
}

/// A definition's hash: SHA-256 of its canonical JSON text (keys in the order written).
pub fn definition_hash(definition: &Value) -> ContentHash {
    let bytes = serde_json::to_vec(definition).unwrap_or_default();
    ContentHash::from_bytes(sha2::Sha256::digest(&bytes).into())
}

/// Load a definition as a registered view must be: valid, typed and named.
pub fn load_typed(definition: &Value, label: &str) -> Result<View, ViewsError> {
    let err = |source| ViewsError::View {
        view: label.to_owned(),
        source,
    };
    let view = View::from_json_with(definition, LoadOptions::typed()).map_err(err)?;
    if view.name().is_none() {
        return Err(err(ViewError::Missing { at: "name".into() }));
    }
    Ok(view)
}

/// A CSV cell for a view's value: text as is, numbers and booleans printed, null empty, and a
/// collection or complex value as its JSON text.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Runs `view` over FHIR texts (a resource, a Bundle or NDJSON each) and writes CSV with a
/// header; returns the bytes and the row and matched-resource counts. Resources are streamed:
/// memory holds one resource and the output.
pub fn run_to_csv<'a>(
    view: &View,
    texts: impl IntoIterator<Item = &'a str>,
) -> Result<(Vec<u8>, u64, usize), ViewsError> {
    let mut w = airlock_formats::tabular::writer(Vec::new());
    w.write_record(view.columns().iter().map(|c| c.name()))
        .map_err(|_| ViewsError::Write)?;
    let (rows, matched) = run_texts(view, texts, |row| {
        w.write_record(row.values().iter().map(cell))
            .map_err(|_| ViewsError::Write)
    })?;
    let bytes = w.into_inner().map_err(|_| ViewsError::Write)?;
    Ok((bytes, rows, matched))
}

/// As [`run_to_csv`], into a Parquet file typed by the view's columns (see
/// [`airlock_views::parquet`]).
pub fn run_to_parquet<'a>(
    view: &View,
    texts: impl IntoIterator<Item = &'a str>,
) -> Result<(Vec<u8>, u64, usize), ViewsError> {
    let mut w = airlock_views::parquet::ParquetWriter::new(view).map_err(ViewsError::Parquet)?;
    let (rows, matched) = run_texts(view, texts, |row| w.push(&row).map_err(ViewsError::Parquet))?;
    let bytes = w.finish().map_err(ViewsError::Parquet)?;
    Ok((bytes, rows, matched))
}

/// Runs `view` over each text, calling `each` per row; the row and matched-resource counts.
fn run_texts<'a>(
    view: &View,
    texts: impl IntoIterator<Item = &'a str>,
    mut each: impl FnMut(airlock_views::Row) -> Result<(), ViewsError>,
) -> Result<(u64, usize), ViewsError> {
    let mut rows = 0u64;
    let mut matched = 0usize;
    for text in texts {
        let summary = airlock_views::run_each(
            view,
            airlock_views::read_resources(text),
            |row| -> Result<(), ViewsError> {
                each(row)?;
                rows += 1;
                Ok(())
            },
        )
        .map_err(|e| match e {
            ViewsError::View { view: v, source } if v.is_empty() => ViewsError::View {
                view: view.name().unwrap_or("view").to_owned(),
                source,
            },
            e => e,
        })?;
        matched += summary.matched;
    }
    Ok((rows, matched))
}

impl From<ViewError> for ViewsError {
    fn from(source: ViewError) -> Self {
        ViewsError::View {
            view: String::new(),
            source,
        }
    }
}

fn blob_name(dataset: &DatasetName) -> String {
    format!("views/{dataset}")
}

/// The views registered for a dataset: name → definition.
pub async fn registered(
    home: &Home,
    dataset: &DatasetName,
) -> Result<BTreeMap<String, Value>, ViewsError> {
    let d = home.version(dataset, None).await?;
    match home.blob(&blob_name(dataset), d.zone).await? {
        Some(b) => serde_json::from_slice(&b).map_err(|_| {
            ViewsError::Store(StoreError::Corrupt {
                hash: blob_name(dataset),
                reason: "the registered views are not readable".into(),
            })
        }),
        None => Ok(BTreeMap::new()),
    }
}

/// Register (or replace) a view for a FHIR dataset; returns its name. Recorded in the ledger.
pub async fn add(
    home: &Home,
    dataset: &DatasetName,
    definition: Value,
) -> Result<String, ViewsError> {
    let label = definition
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or("(unnamed)")
        .to_owned();
    let view = load_typed(&definition, &label)?;
    let name = view.name().unwrap_or_default().to_owned();
    let d = home.version(dataset, None).await?;
    let mut all = registered(home, dataset).await?;
    all.insert(name.clone(), definition.clone());
    let bytes = serde_json::to_vec_pretty(&all).map_err(|_| ViewsError::Write)?;
    // A definition holds paths and names, no data: stored as such, in the dataset's zone.
    home.put_blob(
        &blob_name(dataset),
        d.zone,
        Classification::Deidentified,
        &bytes,
    )
    .await?;
    home.audit(
        home.entry(EventType::ConfigChange, d.zone, OutcomeKind::Success)
            .with_resource(dataset.to_string())
            .with_reason(format!(
                "view `{name}` registered ({})",
                definition_hash(&definition).short()
            )),
    )
    .await?;
    Ok(name)
}

/// A view by name for a dataset: registered first, then built in. Returns the view and its
/// definition.
pub async fn find(
    home: &Home,
    dataset: &DatasetName,
    name: &str,
) -> Result<(View, Value), ViewsError> {
    if let Some(def) = registered(home, dataset).await?.remove(name) {
        return Ok((load_typed(&def, name)?, def));
    }
    let text = airlock_views::builtin::definition(name).ok_or_else(|| ViewsError::Unknown {
        name: name.to_owned(),
    })?;
    let def: Value = serde_json::from_str(text).map_err(|_| ViewsError::Unknown {
        name: name.to_owned(),
    })?;
    Ok((load_typed(&def, name)?, def))
}

/// The rows of `view` over a FHIR version, as CSV: what training and materialisation read.
/// Read in the version's own zone (the store applies the zone rules and records a refusal).
pub async fn rows_of(
    home: &Home,
    v: &DatasetVersion,
    view: &View,
) -> Result<(Vec<u8>, u64), ViewsError> {
    let files = home.read_version(v, Access::Zone(v.zone), None).await?;
    let texts: Vec<&str> = files
        .iter()
        .filter(|(f, _)| f.format == "fhir-json" || f.format == "fhir-ndjson")
        .filter_map(|(_, b)| std::str::from_utf8(b).ok())
        .collect();
    if texts.is_empty() {
        return Err(ViewsError::NotFhir(v.reference().to_string()));
    }
    let (csv, rows, matched) = run_to_csv(view, texts)?;
    if matched == 0 {
        return Err(ViewsError::NoResource {
            dataset: v.reference().to_string(),
            resource: view.resource().to_owned(),
            view: view.name().unwrap_or_default().to_owned(),
        });
    }
    Ok((csv, rows))
}

/// Materialise a view over a FHIR version as a new CSV version of `out`, in the same zone and
/// classification, with lineage (the view's hash, the source version). The same view (by its
/// definition's hash) over the same source version gives the version it gave before, so a
/// model trained, validated and scored "through a view" reads one table: its held-out split
/// stays held out.
pub async fn materialise(
    home: &Home,
    spec: &str,
    view_name: &str,
    out: &DatasetName,
) -> Result<DatasetVersion, ViewsError> {
    let (name, ver) = parse_version_spec(spec).map_err(|e| ViewsError::Store(StoreError::Id(e)))?;
    let v = home.version(&name, ver).await?;
    let (view, def) = find(home, &name, view_name).await?;
    let hash = definition_hash(&def);
    if let Ok(latest) = home.version(out, None).await {
        let l = &latest.lineage;
        if l.parents == [v.reference()]
            && l.gate == Gate::Derive
            && l.transform.name == "sql-on-fhir-view"
            && l.transform.config_hash.as_ref() == Some(&hash)
            && latest.zone == v.zone
            && latest.classification == v.classification
        {
            return Ok(latest);
        }
    }
    let (csv, rows) = rows_of(home, &v, &view).await?;
    let mut params = BTreeMap::new();
    params.insert("view".to_owned(), view_name.to_owned());
    let nv = NewVersion {
        dataset: out.clone(),
        zone: v.zone,
        classification: v.classification,
        source: Some((v.zone, v.classification)),
        files: vec![NewFile {
            name: format!("{view_name}.csv"),
            format: "csv".into(),
            records: rows,
            bytes: csv,
        }],
        lineage: Lineage {
            source_system: v.lineage.source_system.clone(),
            extracted_at: chrono::Utc::now().to_rfc3339(),
            triggered_by: home.actor().clone(),
            parents: vec![v.reference()],
            gate: Gate::Derive,
            transform: Transform {
                name: "sql-on-fhir-view".into(),
                config_hash: Some(hash),
                params,
            },
            airlock_version: airlock_store::AIRLOCK_VERSION.into(),
        },
    };
    Ok(home.write_version(nv).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_and_counts() {
        let def = serde_json::json!({"name": "p", "resource": "Patient", "select": [{"column": [
            {"name": "id", "path": "getResourceKey()", "type": "id"},
            {"name": "given", "path": "name.given", "type": "string", "collection": true},
            {"name": "active", "path": "active", "type": "boolean"}]}]});
        let view = load_typed(&def, "p").unwrap();
        let ndjson = "{\"resourceType\":\"Patient\",\"id\":\"a\",\"active\":true,\"name\":[{\"given\":[\"X\",\"Y\"]}]}\n{\"resourceType\":\"Observation\",\"id\":\"o\"}\n{\"resourceType\":\"Patient\",\"id\":\"b\"}\n";
        let (csv, rows, matched) = run_to_csv(&view, [ndjson]).unwrap();
        assert_eq!((rows, matched), (2, 2));
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "id,given,active\na,\"[\"\"X\"\",\"\"Y\"\"]\",true\nb,[],\n"
        );
        // Untyped columns are refused for a registered view.
        let untyped = serde_json::json!({"name": "u", "resource": "Patient", "select": [{"column": [
            {"name": "id", "path": "id"}]}]});
        assert!(load_typed(&untyped, "u").is_err());
    }
}

/// `$run`: a ViewDefinition over resources sent with it, or over a dataset version the caller
/// may download.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The ViewDefinition (JSON).
    pub view: serde_json::Map<String, Value>,
    /// FHIR resources to run it over (or Bundles, whose entries' resources are read).
    #[serde(default)]
    #[schemars(length(max = 10000))]
    pub resources: Vec<serde_json::Map<String, Value>>,
    /// A FHIR dataset version, `name[@version]`, instead of resources.
    #[serde(default)]
    #[schemars(with = "Option<crate::schema::DatasetSpec>")]
    pub dataset: Option<String>,
}

/// The rows a view gave, in column order.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct RunResult {
    /// The columns, in order.
    pub columns: Vec<String>,
    /// One object per row.
    pub rows: Vec<serde_json::Map<String, Value>>,
}

/// Rows a `$run` answers with at most (the rest would be a bulk export: materialise instead).
pub const MAX_RUN_ROWS: usize = 100_000;

impl crate::Caller {
    /// Run a view (`POST /v1/views/$run`). Over a dataset this is a download of its rows: the
    /// policy decides `download-dataset` on the version and the zone rules apply.
    pub async fn run_view(&self, req: RunRequest) -> Result<RunResult, crate::ServiceError> {
        use crate::ServiceError;
        let invalid = |field: &'static str, e: &dyn std::fmt::Display| {
            ServiceError::invalid(field, e.to_string())
        };
        let view = View::from_json(&Value::Object(req.view)).map_err(|e| invalid("view", &e))?;
        let resources: Vec<Value> = match (&req.dataset, req.resources.is_empty()) {
            (Some(_), false) => {
                return Err(ServiceError::invalid(
                    "dataset",
                    "give resources or a dataset, not both",
                ));
            }
            (None, _) => req.resources.into_iter().map(Value::Object).collect(),
            (Some(spec), true) => {
                let (name, ver) = parse_version_spec(spec).map_err(|e| invalid("dataset", &e))?;
                let v = self
                    .find_version(name.as_str(), ver.map(|v| v.get()))
                    .await?;
                self.authorize(
                    airlock_authz::Action::DownloadDataset,
                    &crate::datasets::resource(&v),
                )
                .await?;
                let mut out = Vec::new();
                for (f, bytes) in self.read_files(&v).await? {
                    if f.format != "fhir-json" && f.format != "fhir-ndjson" {
                        continue;
                    }
                    let text = std::str::from_utf8(&bytes).map_err(ServiceError::internal)?;
                    for r in airlock_views::read_resources(text) {
                        out.push(r.map_err(|e| invalid("dataset", &e))?);
                    }
                }
                out
            }
        };
        let mut rows = Vec::new();
        airlock_views::run_each(
            &view,
            resources.iter().flat_map(|r| {
                // A Bundle sent as a resource stands for its entries' resources.
                if r.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
                    r.get("entry")
                        .and_then(Value::as_array)
                        .map(|es| {
                            es.iter()
                                .filter_map(|e| e.get("resource"))
                                .map(Ok)
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default()
                } else {
                    vec![Ok(r)]
                }
            }),
            |row| -> Result<(), ViewError> {
                rows.push(view.row_object(row));
                Ok(())
            },
        )
        .map_err(|e| invalid("resources", &e))?;
        if rows.len() > MAX_RUN_ROWS {
            return Err(ServiceError::invalid(
                "view",
                format!(
                    "gives more than {MAX_RUN_ROWS} rows: materialise it as a dataset version instead"
                ),
            ));
        }
        Ok(RunResult {
            columns: view.columns().iter().map(|c| c.name().to_owned()).collect(),
            rows,
        })
    }
}
