//! Running a view: resources in, rows out.
//!
//! The specification's processing algorithm, resource by resource: a resource's rows are built
//! (a select's rows are the Cartesian product of its columns' row, its nested selects' rows and
//! its `unionAll` rows, for each item of its `forEach`) and handed to the caller before the next
//! resource is read. Memory follows the largest resource, not the input.
//!
//! Because a select's columns, then its nested selects' columns, then its `unionAll`'s columns
//! are contiguous in the output (the specification's column order), a partial row is a slice of
//! the final row and joining partial rows is concatenation.

use std::borrow::Borrow;
use std::fmt;

use serde_json::{Map, Value};

use crate::error::ViewError;
use crate::fhirpath::{Env, Item, eval};
use crate::view::{ColumnPath, Iteration, Select, View};

/// How deep `repeat` follows its paths (JSON nesting is bounded by the parser anyway; this
/// stops a path that returns its own input, such as `$this`).
const REPEAT_LIMIT: usize = 128;

/// One output row: one value per column of the view, in [`View::columns`] order (`null` where
/// a path gave nothing, an array for a `collection` column).
///
/// Rows hold patient data: `Debug` shows the width only, and there is no `Serialize`; write
/// cells through [`Row::values`] or [`View::row_object`].
#[derive(Clone, PartialEq)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    /// The cells, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The cells, in column order.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Row")
            .field("columns", &self.values.len())
            .finish_non_exhaustive()
    }
}

/// What a run saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunSummary {
    /// Resources read.
    pub resources: usize,
    /// Resources of the view's type (the others give no rows). Zero when the input lacks the
    /// view's resource type: a caller may want to call that an error.
    pub matched: usize,
    /// Rows written.
    pub rows: usize,
}

impl View {
    /// The rows one resource gives (none when it is of another type or fails a `where`).
    /// `index` is the resource's position in the input, for errors.
    pub fn rows(&self, resource: &Value, index: usize) -> Result<Vec<Row>, ViewError> {
        if !self.applies_to(resource, index)? {
            return Ok(Vec::new());
        }
        let root = [Item::node(resource)];
        let env = Env {
            resource,
            context: &root,
            row_index: 0,
        };
        for filter in &self.filters {
            let result =
                eval(&filter.path, &root, &env, None).map_err(|source| ViewError::PathEval {
                    index,
                    at: filter.at.clone(),
                    source,
                })?;
            // The specification: the path must evaluate to a boolean; nothing is false.
            let keep = match result.as_slice() {
                [] => false,
                [one] => one.as_bool().ok_or_else(|| ViewError::WhereNotBoolean {
                    index,
                    at: filter.at.clone(),
                })?,
                _ => {
                    return Err(ViewError::WhereNotBoolean {
                        index,
                        at: filter.at.clone(),
                    });
                }
            };
            if !keep {
                return Ok(Vec::new());
            }
        }
        let run = Run { resource, index };
        Ok(run
            .select(&self.root, &root, 0)?
            .into_iter()
            .map(|values| Row { values })
            .collect())
    }

    /// A row as a JSON object keyed by column name.
    pub fn row_object(&self, row: Row) -> Map<String, Value> {
        self.columns()
            .iter()
            .map(|c| c.name().to_owned())
            .zip(row.values)
            .collect()
    }

    /// Whether `resource` is of the view's type; an error if it is not a FHIR resource.
    fn applies_to(&self, resource: &Value, index: usize) -> Result<bool, ViewError> {
        match resource {
            Value::Object(o) => match o.get("resourceType") {
                Some(Value::String(t)) => Ok(t == self.resource()),
                _ => Err(ViewError::NotResource {
                    index,
                    reason: "no `resourceType`",
                }),
            },
            _ => Err(ViewError::NotResource {
                index,
                reason: "not a JSON object",
            }),
        }
    }
}

/// Runs `view` over `resources` and collects the rows.
pub fn run<R: Borrow<Value>>(
    view: &View,
    resources: impl IntoIterator<Item = R>,
) -> Result<Vec<Row>, ViewError> {
    let mut rows = Vec::new();
    run_each(
        view,
        resources.into_iter().map(Ok),
        |row| -> Result<(), ViewError> {
            rows.push(row);
            Ok(())
        },
    )?;
    Ok(rows)
}

/// Runs `view` over `resources`, handing each row to `sink` as soon as its resource is done:
/// memory stays flat however many resources there are. The first error (of the input, of the
/// view on a resource, or of the sink) stops the run.
///
/// `resources` yields `Result`s so that [`read_resources`](crate::read_resources) plugs in
/// directly; wrap plain values with `.map(Ok)`.
pub fn run_each<R, E>(
    view: &View,
    resources: impl IntoIterator<Item = Result<R, ViewError>>,
    mut sink: impl FnMut(Row) -> Result<(), E>,
) -> Result<RunSummary, E>
where
    R: Borrow<Value>,
    E: From<ViewError>,
{
    let mut summary = RunSummary::default();
    for (index, resource) in resources.into_iter().enumerate() {
        let resource = resource?;
        let resource = resource.borrow();
        summary.resources += 1;
        if !view.applies_to(resource, index)? {
            continue;
        }
        summary.matched += 1;
        for row in view.rows(resource, index)? {
            summary.rows += 1;
            sink(row)?;
        }
    }
    Ok(summary)
}

struct Run<'a> {
    resource: &'a Value,
    index: usize,
}

impl<'a> Run<'a> {
    /// The rows of select `s` on `focus` (one node), with the enclosing `%rowIndex`.
    fn select(
        &self,
        s: &'a Select,
        focus: &[Item<'a>],
        row_index: i64,
    ) -> Result<Vec<Vec<Value>>, ViewError> {
        let env = Env {
            resource: self.resource,
            context: focus,
            row_index,
        };
        let path_error = |what: &str| {
            let at = if s.at.is_empty() {
                what.to_owned()
            } else {
                format!("{}.{what}", s.at)
            };
            move |source| ViewError::PathEval {
                index: self.index,
                at,
                source,
            }
        };
        let (foci, iterating) = match &s.iteration {
            Iteration::None => (focus.to_vec(), false),
            Iteration::ForEach(e) => (
                eval(e, focus, &env, None).map_err(path_error("forEach"))?,
                true,
            ),
            Iteration::ForEachOrNull(e) => (
                eval(e, focus, &env, None).map_err(path_error("forEachOrNull"))?,
                true,
            ),
            Iteration::Repeat(paths) => {
                let mut out = Vec::new();
                for node in focus {
                    self.repeat(s, paths, node, &env, 0, &mut out)?;
                }
                (out, true)
            }
        };
        if foci.is_empty() {
            return Ok(match s.iteration {
                Iteration::ForEachOrNull(_) => vec![s.null_row.clone()],
                _ => Vec::new(),
            });
        }
        let mut rows = Vec::new();
        for (i, f) in foci.iter().enumerate() {
            // Only an iteration starts a new `%rowIndex`; plain selects and `unionAll`
            // branches inherit it.
            let row_index = if iterating {
                i64::try_from(i).unwrap_or(i64::MAX)
            } else {
                row_index
            };
            let focus = std::slice::from_ref(f);
            let env = Env {
                resource: self.resource,
                context: focus,
                row_index,
            };
            let mut row = Vec::with_capacity(s.null_row.len());
            for c in &s.columns {
                row.push(self.cell(c, focus, &env)?);
            }
            let mut acc = vec![row];
            for child in &s.selects {
                acc = product(acc, self.select(child, focus, row_index)?);
                if acc.is_empty() {
                    break;
                }
            }
            if !s.union_all.is_empty() && !acc.is_empty() {
                let mut union = Vec::new();
                for branch in &s.union_all {
                    union.extend(self.select(branch, focus, row_index)?);
                }
                acc = product(acc, union);
            }
            rows.extend(acc);
        }
        Ok(rows)
    }

    /// Depth-first, each node before its descendants, as the specification's `traverse`.
    fn repeat(
        &self,
        s: &'a Select,
        paths: &'a [crate::fhirpath::Expr],
        node: &Item<'a>,
        env: &Env<'a, '_>,
        depth: usize,
        out: &mut Vec<Item<'a>>,
    ) -> Result<(), ViewError> {
        if depth >= REPEAT_LIMIT {
            return Err(ViewError::RepeatTooDeep {
                index: self.index,
                at: s.at.clone(),
                limit: REPEAT_LIMIT,
            });
        }
        for (i, p) in paths.iter().enumerate() {
            let children = eval(p, std::slice::from_ref(node), env, None).map_err(|source| {
                ViewError::PathEval {
                    index: self.index,
                    at: format!("{}.repeat[{i}]", s.at),
                    source,
                }
            })?;
            for child in children {
                out.push(child.clone());
                self.repeat(s, paths, &child, env, depth + 1, out)?;
            }
        }
        Ok(())
    }

    fn cell(
        &self,
        c: &'a ColumnPath,
        focus: &[Item<'a>],
        env: &Env<'a, '_>,
    ) -> Result<Value, ViewError> {
        let items = eval(&c.path, focus, env, None).map_err(|source| ViewError::ColumnEval {
            index: self.index,
            column: c.name.clone(),
            source,
        })?;
        let mut values = items.iter().filter_map(Item::to_json);
        let value = if c.collection {
            // The suite expects `[]` for an empty collection column (fhirpath.json,
            // "collection"), where the processing algorithm would give null.
            Value::Array(values.collect())
        } else {
            match (values.next(), values.next()) {
                (None, _) => Value::Null,
                (Some(v), None) => v,
                (Some(_), Some(_)) => {
                    return Err(ViewError::MultipleValues {
                        index: self.index,
                        column: c.name.clone(),
                    });
                }
            }
        };
        let complex = match &value {
            Value::Object(_) => true,
            Value::Array(a) => a.iter().any(Value::is_object),
            _ => false,
        };
        if complex && !c.complex {
            return Err(ViewError::ComplexValue {
                index: self.index,
                column: c.name.clone(),
            });
        }
        Ok(value)
    }
}

/// Every row of `acc` joined with every row of `part`.
fn product(mut acc: Vec<Vec<Value>>, part: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
    if part.len() == 1 {
        for p in part {
            for a in &mut acc {
                a.extend(p.iter().cloned());
            }
        }
        return acc;
    }
    let mut out = Vec::with_capacity(acc.len() * part.len());
    for a in &acc {
        for p in &part {
            let mut row = Vec::with_capacity(a.len() + p.len());
            row.extend(a.iter().cloned());
            row.extend(p.iter().cloned());
            out.push(row);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

    use serde_json::json;

    use super::*;

    fn rows(view: Value, resources: &[Value]) -> Result<Vec<Vec<Value>>, ViewError> {
        let view = View::from_json(&view)?;
        Ok(run(&view, resources)?
            .into_iter()
            .map(Row::into_values)
            .collect())
    }

    fn qr() -> Value {
        json!({"resourceType": "QuestionnaireResponse", "id": "q", "item": [
            {"linkId": "1", "item": [{"linkId": "1.1"}]},
            {"linkId": "2", "answer": [{"item": [{"linkId": "2.1", "answer": [{"item": [{"linkId": "2.1.1"}]}]}]}]}
        ]})
    }

    #[test]
    fn repeat_flattens_any_depth_in_document_order() {
        let got = rows(
            json!({"resource": "QuestionnaireResponse", "select": [{
                "repeat": ["item", "answer.item"],
                "column": [{"name": "id", "path": "linkId", "type": "string"},
                           {"name": "i", "path": "%rowIndex", "type": "integer"}]}]}),
            &[qr()],
        )
        .unwrap();
        let ids: Vec<_> = got.iter().map(|r| r[0].clone()).collect();
        assert_eq!(
            ids,
            [
                json!("1"),
                json!("1.1"),
                json!("2"),
                json!("2.1"),
                json!("2.1.1")
            ]
        );
        assert_eq!(got[4][1], json!(4));
    }

    #[test]
    fn repeat_that_never_ends_is_an_error() {
        let err = rows(
            json!({"resource": "QuestionnaireResponse", "select": [{"repeat": ["$this"],
                "column": [{"name": "id", "path": "id", "type": "id"}]}]}),
            &[qr()],
        )
        .unwrap_err();
        assert!(matches!(err, ViewError::RepeatTooDeep { index: 0, .. }));
    }

    #[test]
    fn row_index_per_level_and_inherited_by_union_branches() {
        let p = json!({"resourceType": "Patient", "id": "p", "name": [
            {"family": "Smith", "given": ["John", "James"]}, {"family": "Jones", "given": ["Jane"]}]});
        let got = rows(
            json!({"resource": "Patient", "select": [{"forEach": "name",
                "column": [{"name": "n", "path": "%rowIndex", "type": "integer"}],
                "select": [{"unionAll": [
                    {"forEach": "given", "column": [{"name": "g", "path": "%rowIndex", "type": "integer"},
                                                    {"name": "v", "path": "$this", "type": "string"}]},
                    {"column": [{"name": "g", "path": "%rowIndex", "type": "integer"},
                                {"name": "v", "path": "family", "type": "string"}]}]}]}]}),
            &[p],
        )
        .unwrap();
        assert_eq!(
            got,
            [
                vec![json!(0), json!(0), json!("John")],
                vec![json!(0), json!(1), json!("James")],
                vec![json!(0), json!(0), json!("Smith")],
                vec![json!(1), json!(0), json!("Jane")],
                vec![json!(1), json!(1), json!("Jones")],
            ]
        );
    }

    #[test]
    fn for_each_or_null_gives_a_null_row_with_row_index_zero() {
        let got = rows(
            json!({"resource": "Patient", "select": [
                {"column": [{"name": "id", "path": "id", "type": "id"}]},
                {"forEachOrNull": "address", "column": [
                    {"name": "i", "path": "%rowIndex", "type": "integer"},
                    {"name": "city", "path": "city", "type": "string"}]}]}),
            &[json!({"resourceType": "Patient", "id": "p"})],
        )
        .unwrap();
        assert_eq!(got, [vec![json!("p"), json!(0), Value::Null]]);
    }

    #[test]
    fn run_errors_name_the_resource_and_column_never_the_value() {
        let resources = [
            json!({"resourceType": "Patient", "id": "a", "name": [{"family": "Secret1"}]}),
            json!({"resourceType": "Patient", "id": "b", "name": [{"family": "Secret2"}, {"family": "Secret3"}]}),
        ];
        let err = rows(
            json!({"resource": "Patient", "select": [{"column": [{"name": "family", "path": "name.family", "type": "string"}]}]}),
            &resources,
        )
        .unwrap_err();
        assert!(matches!(err, ViewError::MultipleValues { index: 1, .. }));
        let text = format!("{err} {err:?}");
        assert!(
            text.contains("`family`") && !text.contains("Secret"),
            "{text}"
        );

        let err = rows(
            json!({"resource": "Patient", "select": [{"column": [{"name": "n", "path": "name", "type": "string"}]}]}),
            &resources,
        )
        .unwrap_err();
        assert!(matches!(err, ViewError::ComplexValue { index: 0, .. }));
        let ok = rows(
            json!({"resource": "Patient", "select": [{"column": [{"name": "n", "path": "name.first()", "type": "HumanName"}]}]}),
            &resources,
        )
        .unwrap();
        assert_eq!(ok[0][0], json!({"family": "Secret1"}));

        let err = rows(
            json!({"resource": "Patient", "select": [{"column": [{"name": "id", "path": "id", "type": "id"}]}]}),
            &[json!({"id": "x"})],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "resource 0: not a FHIR resource (no `resourceType`)"
        );
    }

    #[test]
    fn summary_counts_resources_of_the_view_type() {
        let view = View::from_json(&json!({"resource": "Observation", "select": [
            {"column": [{"name": "id", "path": "id", "type": "id"}]}]}))
        .unwrap();
        let input = [json!({"resourceType": "Patient", "id": "p"})];
        let summary = run_each(&view, input.iter().map(Ok), |_| Ok::<(), ViewError>(())).unwrap();
        assert_eq!(
            (summary.resources, summary.matched, summary.rows),
            (1, 0, 0)
        );
    }

    #[test]
    fn row_debug_shows_no_values() {
        let view = View::from_json(&json!({"resource": "Patient", "select": [
            {"column": [{"name": "id", "path": "id", "type": "id"}]}]}))
        .unwrap();
        let rows = run(&view, [json!({"resourceType": "Patient", "id": "secret"})]).unwrap();
        assert_eq!(format!("{rows:?}"), "[Row { columns: 1, .. }]");
        let obj = view.row_object(rows.into_iter().next().unwrap());
        assert_eq!(obj["id"], json!("secret"));
    }
}
