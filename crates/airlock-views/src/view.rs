//! Loading a ViewDefinition: JSON in, a checked and compiled [`View`] out.
//!
//! Everything that can be checked without data is checked here, following the specification's
//! `ValidateColumns` and its invariants: names are database-friendly identifiers, output
//! columns are unique, `unionAll` branches agree, at most one of `forEach`/`forEachOrNull`/
//! `repeat` per select, every path parses with supported functions and defined constants, and
//! no element outside the model is present (a misspelt `forEach` would otherwise be a silent
//! no-op).

use serde_json::{Map, Value};

use crate::error::ViewError;
use crate::fhirpath::{self, Constants, Expr, Literal};

/// A loaded ViewDefinition, ready to run.
#[derive(Debug, Clone)]
pub struct View {
    resource: String,
    name: Option<String>,
    columns: Vec<Column>,
    pub(crate) filters: Vec<Filter>,
    /// The view's `select` list, as the children of a select with no iteration or columns.
    pub(crate) root: Select,
}

/// An output column, in output order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    name: String,
    fhir_type: Option<String>,
    collection: bool,
    description: Option<String>,
}

impl Column {
    /// The column's name (a valid identifier, unique in the view).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The declared FHIR type (`string`, `dateTime`, `CodeableConcept`, a StructureDefinition
    /// URI), if any.
    pub fn fhir_type(&self) -> Option<&str> {
        self.fhir_type.as_deref()
    }

    /// Whether cells are JSON arrays (`collection: true`).
    pub fn collection(&self) -> bool {
        self.collection
    }

    /// The column's description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
}

/// How strictly a view is loaded.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Refuse a column without `type`.
    ///
    /// Off by default, as in the specification: `type` is optional (0..1) in the ViewDefinition
    /// model and "it is reasonable for an implementation to treat any non-specified types as
    /// strings"; only non-primitive columns must declare it, which the runner checks on every
    /// value. Turn it on where views are shared or registered, as the specification recommends
    /// for shareable views ("always explicitly set the type").
    pub require_column_types: bool,
}

impl LoadOptions {
    /// Options that refuse untyped columns (see [`LoadOptions::require_column_types`]).
    pub fn typed() -> Self {
        Self {
            require_column_types: true,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub(crate) path: Expr,
    /// `where[i]`, for errors.
    pub(crate) at: String,
}

#[derive(Debug, Clone)]
pub(crate) enum Iteration {
    None,
    ForEach(Expr),
    ForEachOrNull(Expr),
    Repeat(Vec<Expr>),
}

#[derive(Debug, Clone)]
pub(crate) struct Select {
    pub(crate) iteration: Iteration,
    pub(crate) columns: Vec<ColumnPath>,
    pub(crate) selects: Vec<Select>,
    pub(crate) union_all: Vec<Select>,
    /// The row `forEachOrNull` gives when nothing matches: null everywhere, 0 where the path
    /// is `%rowIndex` (as the specification's processing algorithm says).
    pub(crate) null_row: Vec<Value>,
    /// Where this select is, for errors on its iteration path.
    pub(crate) at: String,
}

#[derive(Debug, Clone)]
pub(crate) struct ColumnPath {
    pub(crate) name: String,
    pub(crate) path: Expr,
    pub(crate) collection: bool,
    /// The declared type is a complex one, so an object is an expected value.
    pub(crate) complex: bool,
}

impl View {
    /// Loads a ViewDefinition with the specification's defaults (see [`LoadOptions`]).
    pub fn from_json(definition: &Value) -> Result<Self, ViewError> {
        Self::from_json_with(definition, LoadOptions::default())
    }

    /// Loads a ViewDefinition.
    pub fn from_json_with(definition: &Value, options: LoadOptions) -> Result<Self, ViewError> {
        let obj = definition.as_object().ok_or_else(|| ViewError::WrongType {
            at: "ViewDefinition".into(),
            expected: "a JSON object",
        })?;
        check_elements(obj, VIEW_ELEMENTS, "")?;
        if let Some(rt) = obj.get("resourceType") {
            // The logical model's canonical URL is accepted too.
            if !rt.as_str().is_some_and(|s| s.ends_with("ViewDefinition")) {
                return Err(ViewError::WrongType {
                    at: "resourceType".into(),
                    expected: "`ViewDefinition`",
                });
            }
        }
        let resource = match obj.get("resource") {
            None => {
                return Err(ViewError::Missing {
                    at: "resource".into(),
                });
            }
            Some(Value::String(s)) if is_type_name(s) => s.clone(),
            Some(_) => {
                return Err(ViewError::WrongType {
                    at: "resource".into(),
                    expected: "a FHIR resource type name",
                });
            }
        };
        let name = match obj.get("name") {
            None => None,
            Some(Value::String(s)) if is_sql_name(s) => Some(s.clone()),
            Some(Value::String(s)) => {
                return Err(ViewError::InvalidName {
                    at: "name".into(),
                    name: s.clone(),
                });
            }
            Some(_) => {
                return Err(ViewError::WrongType {
                    at: "name".into(),
                    expected: "a string",
                });
            }
        };
        for key in ["status", "url", "title", "description", "version"] {
            if obj.get(key).is_some_and(|v| !v.is_string()) {
                return Err(ViewError::WrongType {
                    at: key.into(),
                    expected: "a string",
                });
            }
        }

        let mut loader = Loader {
            constants: ConstantTable(Vec::new()),
            columns: Vec::new(),
            options,
        };
        for (i, c) in array(obj, "constant", "")?.iter().enumerate() {
            loader.load_constant(c, &format!("constant[{i}]"))?;
        }
        let mut filters = Vec::new();
        for (i, w) in array(obj, "where", "")?.iter().enumerate() {
            let at = format!("where[{i}]");
            let w = w.as_object().ok_or_else(|| ViewError::WrongType {
                at: at.clone(),
                expected: "an object",
            })?;
            check_elements(w, WHERE_ELEMENTS, &at)?;
            let path = loader
                .path(w, "path", &at)?
                .ok_or_else(|| ViewError::Missing {
                    at: format!("{at}.path"),
                })?;
            filters.push(Filter { path, at });
        }
        let selects = array(obj, "select", "")?;
        if selects.is_empty() {
            return Err(ViewError::Missing {
                at: "select".into(),
            });
        }
        let mut root_selects = Vec::new();
        let mut null_row = Vec::new();
        for (i, s) in selects.iter().enumerate() {
            let (select, _) = loader.load_select(s, format!("select[{i}]"), true)?;
            null_row.extend(select.null_row.iter().cloned());
            root_selects.push(select);
        }
        Ok(Self {
            resource,
            name,
            columns: loader.columns,
            filters,
            root: Select {
                iteration: Iteration::None,
                columns: Vec::new(),
                selects: root_selects,
                union_all: Vec::new(),
                null_row,
                at: String::new(),
            },
        })
    }

    /// The resource type the view reads (`Patient`, `Observation`...).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The view's `name`, if it has one (a valid identifier).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The output columns, in output order: every row has one value per column.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }
}

/// Elements of a ViewDefinition: the model's own, and those of a FHIR CanonicalResource
/// (metadata that does not change what the view computes).
const VIEW_ELEMENTS: &[&str] = &[
    "resourceType",
    "id",
    "meta",
    "implicitRules",
    "language",
    "text",
    "contained",
    "extension",
    "modifierExtension",
    "url",
    "identifier",
    "version",
    "versionAlgorithmString",
    "versionAlgorithmCoding",
    "name",
    "title",
    "status",
    "experimental",
    "date",
    "publisher",
    "contact",
    "description",
    "useContext",
    "jurisdiction",
    "purpose",
    "copyright",
    "copyrightLabel",
    "resource",
    "profile",
    "fhirVersion",
    "constant",
    "select",
    "where",
];

const SELECT_ELEMENTS: &[&str] = &[
    "id",
    "extension",
    "modifierExtension",
    "column",
    "select",
    "forEach",
    "forEachOrNull",
    "repeat",
    "unionAll",
];

// `tags` is the spelling of the specification's own type-hinting example; the model says `tag`.
const COLUMN_ELEMENTS: &[&str] = &[
    "id",
    "extension",
    "modifierExtension",
    "name",
    "path",
    "description",
    "collection",
    "type",
    "tag",
    "tags",
];

const WHERE_ELEMENTS: &[&str] = &[
    "id",
    "extension",
    "modifierExtension",
    "path",
    "description",
];

const CONSTANT_ELEMENTS: &[&str] = &["id", "extension", "modifierExtension", "name"];

/// Names the runner defines (`%rowIndex`...): a constant may not shadow them.
const RESERVED: &[&str] = &[
    "rowIndex",
    "resource",
    "rootResource",
    "context",
    "ucum",
    "sct",
    "loinc",
];

/// FHIR primitive types: a column of one of these must not hold an object.
const PRIMITIVES: &[&str] = &[
    "base64Binary",
    "boolean",
    "canonical",
    "code",
    "date",
    "dateTime",
    "decimal",
    "id",
    "instant",
    "integer",
    "integer64",
    "markdown",
    "oid",
    "positiveInt",
    "string",
    "time",
    "unsignedInt",
    "uri",
    "url",
    "uuid",
    "xhtml",
];

fn join_at(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

fn check_elements(obj: &Map<String, Value>, known: &[&str], at: &str) -> Result<(), ViewError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ViewError::UnknownElement { at: join_at(at, k) }),
        None => Ok(()),
    }
}

/// `obj[key]` as an array (absent is empty).
fn array<'v>(obj: &'v Map<String, Value>, key: &str, at: &str) -> Result<&'v [Value], ViewError> {
    match obj.get(key) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(ViewError::WrongType {
            at: join_at(at, key),
            expected: "an array",
        }),
    }
}

/// The specification's `sql-name` invariant: `^[A-Za-z][A-Za-z0-9_]*$`.
pub(crate) fn is_sql_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_type_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Is the declared column type a complex one (so objects are expected)?
fn is_complex_type(ty: &str) -> bool {
    let short = ty
        .strip_prefix("http://hl7.org/fhir/StructureDefinition/")
        .unwrap_or(ty);
    !PRIMITIVES.contains(&short)
}

struct ConstantTable(Vec<(String, Literal)>);

impl Constants for ConstantTable {
    fn lookup(&self, name: &str) -> Option<Literal> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, l)| l.clone())
    }
}

struct Loader {
    constants: ConstantTable,
    /// The output columns so far, in order (ValidateColumns' `Ret`).
    columns: Vec<Column>,
    options: LoadOptions,
}

impl Loader {
    /// Compiles the path in `obj[key]`, if present.
    fn path(
        &self,
        obj: &Map<String, Value>,
        key: &str,
        at: &str,
    ) -> Result<Option<Expr>, ViewError> {
        let at = join_at(at, key);
        match obj.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => self.compile(text, at).map(Some),
            Some(_) => Err(ViewError::WrongType {
                at,
                expected: "a FHIRPath string",
            }),
        }
    }

    fn compile(&self, text: &str, at: String) -> Result<Expr, ViewError> {
        fhirpath::parse(text, &self.constants).map_err(|source| ViewError::Path {
            at,
            path: text.to_owned(),
            source,
        })
    }

    fn load_constant(&mut self, c: &Value, at: &str) -> Result<(), ViewError> {
        let obj = c.as_object().ok_or_else(|| ViewError::WrongType {
            at: at.to_owned(),
            expected: "an object",
        })?;
        let name = match obj.get("name") {
            None => {
                return Err(ViewError::Missing {
                    at: join_at(at, "name"),
                });
            }
            Some(Value::String(s)) if is_sql_name(s) => s.clone(),
            Some(Value::String(s)) => {
                return Err(ViewError::InvalidName {
                    at: join_at(at, "name"),
                    name: s.clone(),
                });
            }
            Some(_) => {
                return Err(ViewError::WrongType {
                    at: join_at(at, "name"),
                    expected: "a string",
                });
            }
        };
        let mut value = None;
        for (key, v) in obj {
            if CONSTANT_ELEMENTS.contains(&key.as_str()) {
                continue;
            }
            let Some(ty) = key.strip_prefix("value") else {
                return Err(ViewError::UnknownElement {
                    at: join_at(at, key),
                });
            };
            if value.is_some() {
                return Err(ViewError::WrongType {
                    at: join_at(at, "value[x]"),
                    expected: "a single value",
                });
            }
            value = Some(constant_value(ty, v).ok_or_else(|| ViewError::WrongType {
                at: join_at(at, key),
                expected: "a value of the type its name gives (`value[x]` of a FHIR primitive type)",
            })?);
        }
        let Some(value) = value else {
            return Err(ViewError::Missing {
                at: join_at(at, "value[x]"),
            });
        };
        if RESERVED.contains(&name.as_str()) {
            return Err(ViewError::Constant {
                at: at.to_owned(),
                name,
                reason: "shadows a variable of the runner",
            });
        }
        if self.constants.0.iter().any(|(n, _)| *n == name) {
            return Err(ViewError::Constant {
                at: at.to_owned(),
                name,
                reason: "is already defined",
            });
        }
        self.constants.0.push((name, value));
        Ok(())
    }

    /// Loads a select; returns it and its columns in output order. `record` adds the columns
    /// to the view's output list (false for `unionAll` branches after the first, whose columns
    /// are the first branch's).
    fn load_select(
        &mut self,
        v: &Value,
        at: String,
        record: bool,
    ) -> Result<(Select, Vec<Column>), ViewError> {
        let obj = v.as_object().ok_or_else(|| ViewError::WrongType {
            at: at.clone(),
            expected: "an object",
        })?;
        check_elements(obj, SELECT_ELEMENTS, &at)?;
        let for_each = self.path(obj, "forEach", &at)?;
        let for_each_or_null = self.path(obj, "forEachOrNull", &at)?;
        let repeat = match obj.get("repeat") {
            None => None,
            Some(Value::Array(paths)) if !paths.is_empty() => {
                let mut out = Vec::with_capacity(paths.len());
                for (i, p) in paths.iter().enumerate() {
                    let at = format!("{at}.repeat[{i}]");
                    let text = p.as_str().ok_or_else(|| ViewError::WrongType {
                        at: at.clone(),
                        expected: "a FHIRPath string",
                    })?;
                    out.push(self.compile(text, at)?);
                }
                Some(out)
            }
            Some(_) => {
                return Err(ViewError::WrongType {
                    at: join_at(&at, "repeat"),
                    expected: "a non-empty array of FHIRPath strings",
                });
            }
        };
        let iteration = match (for_each, for_each_or_null, repeat) {
            (None, None, None) => Iteration::None,
            (Some(e), None, None) => Iteration::ForEach(e),
            (None, Some(e), None) => Iteration::ForEachOrNull(e),
            (None, None, Some(r)) => Iteration::Repeat(r),
            _ => return Err(ViewError::ConflictingIteration { at }),
        };

        let mut own = Vec::new();
        let mut null_row = Vec::new();
        let mut columns = Vec::new();
        for (i, c) in array(obj, "column", &at)?.iter().enumerate() {
            let (path, column, row_index) = self.load_column(c, &format!("{at}.column[{i}]"))?;
            if record {
                self.record(&column, &format!("{at}.column[{i}]"))?;
            }
            null_row.push(if row_index {
                Value::from(0)
            } else {
                Value::Null
            });
            own.push(column);
            columns.push(path);
        }
        let mut selects = Vec::new();
        for (i, s) in array(obj, "select", &at)?.iter().enumerate() {
            let (select, cols) = self.load_select(s, format!("{at}.select[{i}]"), record)?;
            null_row.extend(select.null_row.iter().cloned());
            own.extend(cols);
            selects.push(select);
        }
        let branches = array(obj, "unionAll", &at)?;
        if obj.contains_key("unionAll") && branches.is_empty() {
            return Err(ViewError::WrongType {
                at: join_at(&at, "unionAll"),
                expected: "a non-empty array",
            });
        }
        let mut union_all = Vec::new();
        let mut first: Vec<Column> = Vec::new();
        for (i, u) in branches.iter().enumerate() {
            let (select, cols) =
                self.load_select(u, format!("{at}.unionAll[{i}]"), record && i == 0)?;
            if i == 0 {
                null_row.extend(select.null_row.iter().cloned());
                first = cols;
            } else if !same_columns(&first, &cols) {
                let names = |c: &[Column]| {
                    c.iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(ViewError::UnionMismatch {
                    at: join_at(&at, "unionAll"),
                    branch: i,
                    expected: names(&first),
                    found: names(&cols),
                });
            }
            union_all.push(select);
        }
        own.extend(first);
        Ok((
            Select {
                iteration,
                columns,
                selects,
                union_all,
                null_row,
                at,
            },
            own,
        ))
    }

    /// Loads a column: its compiled path, its description, and whether its path is exactly
    /// `%rowIndex`.
    fn load_column(&self, c: &Value, at: &str) -> Result<(ColumnPath, Column, bool), ViewError> {
        let obj = c.as_object().ok_or_else(|| ViewError::WrongType {
            at: at.to_owned(),
            expected: "an object",
        })?;
        check_elements(obj, COLUMN_ELEMENTS, at)?;
        let name = match obj.get("name") {
            None => {
                return Err(ViewError::Missing {
                    at: join_at(at, "name"),
                });
            }
            Some(Value::String(s)) if is_sql_name(s) => s.clone(),
            Some(Value::String(s)) => {
                return Err(ViewError::InvalidName {
                    at: join_at(at, "name"),
                    name: s.clone(),
                });
            }
            Some(_) => {
                return Err(ViewError::WrongType {
                    at: join_at(at, "name"),
                    expected: "a string",
                });
            }
        };
        let path = self
            .path(obj, "path", at)?
            .ok_or_else(|| ViewError::Missing {
                at: join_at(at, "path"),
            })?;
        let row_index = obj.get("path").and_then(Value::as_str).map(str::trim) == Some("%rowIndex");
        let fhir_type = match obj.get("type") {
            None => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => {
                return Err(ViewError::WrongType {
                    at: join_at(at, "type"),
                    expected: "a non-empty string (a FHIR type)",
                });
            }
        };
        if fhir_type.is_none() && self.options.require_column_types {
            return Err(ViewError::UntypedColumn {
                at: at.to_owned(),
                name,
            });
        }
        let collection = match obj.get("collection") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(ViewError::WrongType {
                    at: join_at(at, "collection"),
                    expected: "a boolean",
                });
            }
        };
        let description = match obj.get("description") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(ViewError::WrongType {
                    at: join_at(at, "description"),
                    expected: "a string",
                });
            }
        };
        for key in ["tag", "tags"] {
            check_tags(obj.get(key), &join_at(at, key))?;
        }
        Ok((
            ColumnPath {
                name: name.clone(),
                path,
                collection,
                complex: fhir_type.as_deref().is_some_and(is_complex_type),
            },
            Column {
                name,
                fhir_type,
                collection,
                description,
            },
            row_index,
        ))
    }

    /// Adds a column to the output list (ValidateColumns: a name may appear once).
    fn record(&mut self, column: &Column, at: &str) -> Result<(), ViewError> {
        if self.columns.iter().any(|c| c.name == column.name) {
            return Err(ViewError::DuplicateColumn {
                at: at.to_owned(),
                name: column.name.clone(),
            });
        }
        self.columns.push(column.clone());
        Ok(())
    }
}

/// `unionAll` branches must have the same names in the same order, and the same types where
/// both declare one.
fn same_columns(a: &[Column], b: &[Column]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.name == y.name
                && match (&x.fhir_type, &y.fhir_type) {
                    (Some(s), Some(t)) => s == t,
                    _ => true,
                }
        })
}

fn check_tags(tags: Option<&Value>, at: &str) -> Result<(), ViewError> {
    let Some(tags) = tags else { return Ok(()) };
    let ok = tags.as_array().is_some_and(|a| {
        a.iter().all(|t| {
            t.as_object().is_some_and(|o| {
                o.get("name").is_some_and(Value::is_string)
                    && o.get("value").is_some_and(Value::is_string)
                    && o.keys()
                        .all(|k| matches!(k.as_str(), "name" | "value" | "id" | "extension"))
            })
        })
    });
    if ok {
        Ok(())
    } else {
        Err(ViewError::WrongType {
            at: at.to_owned(),
            expected: "an array of {name, value} strings",
        })
    }
}

/// A constant's `value[x]` (`ty` is the suffix) as a FHIRPath literal.
fn constant_value(ty: &str, v: &Value) -> Option<Literal> {
    let text = || v.as_str().map(str::to_owned);
    Some(match ty {
        "Boolean" => Literal::Bool(v.as_bool()?),
        "Integer" | "UnsignedInt" => Literal::Int(v.as_i64().filter(|i| {
            ty == "Integer" && i32::try_from(*i).is_ok() || (0..=i64::from(i32::MAX)).contains(i)
        })?),
        "PositiveInt" => Literal::Int(
            v.as_i64()
                .filter(|i| (1..=i64::from(i32::MAX)).contains(i))?,
        ),
        // integer64 is a JSON string in R5; a number is accepted too.
        "Integer64" => Literal::Int(match v {
            Value::String(s) => s.parse().ok()?,
            _ => v.as_i64()?,
        }),
        "Decimal" => Literal::Dec(v.as_f64()?),
        "Base64Binary" | "Canonical" | "Code" | "Id" | "Markdown" | "Oid" | "String" | "Uri"
        | "Url" | "Uuid" => Literal::Str(text()?),
        "Date" => Literal::Date(text().filter(|s| fhirpath::check_date(s))?),
        "DateTime" | "Instant" => {
            let s = text()?;
            if fhirpath::check_date(&s) {
                Literal::Date(s)
            } else if fhirpath::check_datetime(&s) {
                Literal::DateTime(s)
            } else {
                return None;
            }
        }
        "Time" => Literal::Time(text().filter(|s| fhirpath::check_time(s))?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]

    use serde_json::json;

    use super::*;

    fn load(v: Value) -> Result<View, ViewError> {
        View::from_json(&v)
    }

    fn col(name: &str, path: &str) -> Value {
        json!({"name": name, "path": path, "type": "string"})
    }

    #[test]
    fn columns_come_in_specified_order() {
        let v = load(json!({
            "resource": "Patient",
            "select": [
                {"column": [col("a", "'A'")],
                 "select": [{"forEach": "name", "column": [col("c", "family")]}],
                 "unionAll": [{"column": [col("e", "'1'")]}, {"column": [col("e", "'2'")]}]},
                {"column": [col("g", "'G'")]}
            ]
        }))
        .unwrap();
        let names: Vec<_> = v.columns().iter().map(Column::name).collect();
        assert_eq!(names, ["a", "c", "e", "g"]);
    }

    #[test]
    fn load_errors_name_the_element() {
        let err = |v: Value| load(v).unwrap_err().to_string();
        assert_eq!(err(json!({})), "view definition: `resource` is required");
        assert_eq!(
            err(json!({"resource": "Patient", "select": [{"column": [col("1a", "id")]}]})),
            "view definition: `select[0].column[0].name`: `1a` is not a valid name (a letter, then letters, digits or `_`)"
        );
        assert_eq!(
            err(
                json!({"resource": "Patient", "select": [{"column": [col("a", "id")]}, {"column": [col("a", "id")]}]})
            ),
            "view definition: `select[1].column[0]`: column `a` is already defined"
        );
        assert_eq!(
            err(json!({"resource": "Patient", "select": [{"forEch": "name"}]})),
            "view definition: `select[0].forEch` is not an element of a ViewDefinition"
        );
        assert_eq!(
            err(
                json!({"resource": "Patient", "select": [{"column": [col("a", "name.resolve()")]}]})
            ),
            "view definition: `select[0].column[0].path`: path `name.resolve()`: unsupported function `resolve()`"
        );
        assert_eq!(
            err(json!({"resource": "Patient", "select": [{"forEach": "a", "repeat": ["b"]}]})),
            "view definition: `select[0]`: only one of `forEach`, `forEachOrNull` and `repeat` may be given"
        );
        assert!(
            err(json!({"resource": "Patient", "select": [{"unionAll": [
            {"column": [col("a", "id"), col("b", "id")]},
            {"column": [col("b", "id"), col("a", "id")]}]}]}))
            .contains("unionAll branch 1 has columns [b, a], branch 0 has [a, b]")
        );
        assert!(err(json!({"resource": "Patient", "constant": [{"name": "x", "valueInteger": "1"}], "select": [{"column": [col("a", "%x")]}]})).contains("constant[0].valueInteger"));
        assert!(err(json!({"resource": "Patient", "constant": [{"name": "rowIndex", "valueInteger": 1}], "select": [{"column": [col("a", "id")]}]})).contains("shadows"));
    }

    #[test]
    fn column_types_are_optional_unless_asked_for() {
        let v =
            json!({"resource": "Patient", "select": [{"column": [{"name": "id", "path": "id"}]}]});
        assert!(View::from_json(&v).is_ok());
        let err = View::from_json_with(&v, LoadOptions::typed()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "view definition: `select[0].column[0]`: column `id` has no `type`"
        );
    }

    #[test]
    fn constants_of_every_type_substitute() {
        for (key, value) in [
            ("valueString", json!("x")),
            ("valueCode", json!("x")),
            ("valueBoolean", json!(true)),
            ("valueInteger", json!(3)),
            ("valueDecimal", json!(1.5)),
            ("valueDate", json!("2020-01-02")),
            ("valueDateTime", json!("2020-01-02T10:00:00Z")),
            ("valueTime", json!("10:00:00")),
            ("valueInteger64", json!("9000000000")),
            ("valuePositiveInt", json!(1)),
            ("valueUnsignedInt", json!(0)),
            ("valueUri", json!("http://x")),
        ] {
            let v = json!({"resource": "Patient", "constant": [{"name": "k", key: value}],
                           "select": [{"column": [col("a", "%k")]}]});
            assert!(load(v).is_ok(), "{key}");
        }
        let bad = json!({"resource": "Patient", "constant": [{"name": "k", "valuePositiveInt": 0}],
                         "select": [{"column": [col("a", "%k")]}]});
        assert!(load(bad).is_err());
    }
}
