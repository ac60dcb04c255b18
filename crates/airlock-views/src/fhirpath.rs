//! FHIRPath, the subset SQL-on-FHIR v2 views use.
//!
//! # Design
//! * Two stages. [`Expression::parse`] (and the view loader) turn text into a tree in which
//!   every function is resolved against a fixed table and every `%constant` is substituted:
//!   an unknown function, a wrong argument count, an undefined constant or a syntax error is
//!   found when a view is loaded. Evaluation then walks the tree over borrowed JSON.
//! * Supported: the Shareable View Definition profile (literals, `where`, `exists`, `empty`,
//!   `extension(url)`, `ofType`, `first`, `and`/`or`/`not`, `+ - * /`, comparisons, indexers),
//!   `join`, `getResourceKey()`, `getReferenceKey([type])`, `%rowIndex`, `%resource`,
//!   `%context`, and the rest of FHIRPath that costs no model: `xor`, `implies`, `div`, `mod`,
//!   `&`, `|`, `in`, `contains`, `~`, `is`/`as`, `$this`, `$index`, `select`, `all`, `count`,
//!   `distinct`, `iif`, `union`/`combine`/`intersect`/`exclude`, subsetting (`last`, `tail`,
//!   `skip`, `take`, `single`), string, conversion and rounding functions, and the
//!   specification's experimental `lowBoundary`/`highBoundary`.
//! * Not supported (a load error naming them): quantity literals and arithmetic on dates
//!   (`@2020 + 1 year`), `$total` and `aggregate`, `resolve()`, regular expressions
//!   (`matches`, `replaceMatches`), `children()`/`descendants()`, the `repeat()` function,
//!   `now()`/`today()` (a view's rows would depend on when it ran).
//! * Without a FHIR model the JSON decides types: `value.ofType(Quantity)` is `valueQuantity`
//!   (suffixes checked against the FHIR data types), a primitive's extensions are read from its
//!   `_name` sibling, and `ofType` on an element whose type the JSON does not name matches by
//!   JSON kind (see `eval`). Decimals are `f64`.
//! * Errors name the construct, the function or the offset in the path, never a value of the
//!   data.

mod eval;
mod parse;

use serde_json::Value;

pub(crate) use eval::{Env, Item, eval};
pub(crate) use parse::{Constants, Expr, Literal, check_date, check_datetime, check_time, parse};

/// Why a path could not be parsed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The text is not FHIRPath.
    #[error("syntax error at offset {offset}: expected {expected}")]
    Syntax {
        /// Byte offset in the path.
        offset: usize,
        /// What the parser expected there.
        expected: &'static str,
    },
    /// A function this evaluator does not implement.
    #[error("unsupported function `{name}()`")]
    UnknownFunction {
        /// The function's name.
        name: String,
    },
    /// A function called with too few or too many arguments.
    #[error("`{function}()` takes {min} to {max} arguments, got {found}")]
    Arity {
        /// The function's name.
        function: String,
        /// Fewest arguments.
        min: usize,
        /// Most arguments.
        max: usize,
        /// Arguments given.
        found: usize,
    },
    /// `ofType`, `is`, `as` or `getReferenceKey` given something other than a type name.
    #[error("`{function}()` expects a type name")]
    TypeExpected {
        /// The function's name.
        function: String,
    },
    /// `%name` names no constant of the view and no variable of the runner.
    #[error("undefined constant `%{name}`")]
    UndefinedConstant {
        /// The constant's name.
        name: String,
    },
    /// A FHIRPath construct outside the supported subset.
    #[error("{what} are not supported")]
    Unsupported {
        /// The construct.
        what: &'static str,
    },
    /// A path longer or nesting deeper than the parser allows (4,096 tokens, a tree 128
    /// deep): a bound on the evaluator's recursion.
    #[error("the path is too long or nests too deeply")]
    TooDeep,
}

/// Why evaluating a path failed on some input.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// An operator or function that needs one item got several.
    #[error("`{what}` expects a single item but got several")]
    NotSingleton {
        /// The operator or function.
        what: &'static str,
    },
    /// Operands of types the operator does not combine (a string minus a number, a date
    /// compared with a number).
    #[error("`{op}` cannot combine operands of these types")]
    Operands {
        /// The operator.
        op: &'static str,
    },
    /// `getResourceKey()` applied to something other than a resource.
    #[error(
        "`{function}()` applies to a resource (inside a `forEach`, use `%resource.{function}()`)"
    )]
    NotResource {
        /// The function.
        function: &'static str,
    },
    /// A function applied to, or given, a value of the wrong type.
    #[error("`{function}()` got a value of the wrong type")]
    Argument {
        /// The function.
        function: &'static str,
    },
}

/// A parsed FHIRPath expression, for use outside views (a filter, a check).
#[derive(Debug, Clone)]
pub struct Expression {
    text: String,
    expr: Expr,
}

struct NoConstants;

impl Constants for NoConstants {
    fn lookup(&self, _: &str) -> Option<Literal> {
        None
    }
}

impl Expression {
    /// Parses `text`; `%resource`, `%context`, `%rowIndex` (always 0 here) and the standard
    /// `%ucum`, `%sct`, `%loinc` are the only constants.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        Ok(Self {
            text: text.to_owned(),
            expr: parse(text, &NoConstants)?,
        })
    }

    /// The text this expression was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluates the expression with `resource` as its focus; returns the items as JSON
    /// (a primitive that has only extensions is left out).
    pub fn evaluate(&self, resource: &Value) -> Result<Vec<Value>, EvalError> {
        let focus = [Item::node(resource)];
        let env = Env {
            resource,
            context: &focus,
            row_index: 0,
        };
        Ok(eval(&self.expr, &focus, &env, None)?
            .iter()
            .filter_map(Item::to_json)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::panic,
        clippy::indexing_slicing,
        reason = "test code"
    )]

    use std::ops::Add;

    use serde_json::{Value, json};

    use super::*;

    fn patient() -> Value {
        json!({
            "resourceType": "Patient",
            "id": "p1",
            "active": true,
            "gender": "female",
            "birthDate": "1970-03-04",
            "_birthDate": {"extension": [{"url": "http://x/time", "valueDateTime": "1970-03-04T10:00:00Z"}]},
            "deceasedBoolean": false,
            "name": [
                {"use": "official", "family": "Smith", "given": ["Ann", "Marie"]},
                {"use": "maiden", "family": "Jones", "given": ["Ann"], "_given": [{"id": "g"}]}
            ],
            "telecom": [{"system": "phone", "value": "555"}],
            "extension": [
                {"url": "http://x/race", "extension": [{"url": "text", "valueString": "Mixed"}]},
                {"url": "http://x/birthsex", "valueCode": "F"}
            ],
            "managingOrganization": {"reference": "Organization/o1/_history/2"},
            "generalPractitioner": [
                {"reference": "urn:uuid:abc"},
                {"reference": "http://example.org/fhir/Practitioner/pr1"},
                {"reference": "#contained"}
            ],
            "multipleBirthInteger": 2
        })
    }

    fn eval_on(path: &str, r: &Value) -> Vec<Value> {
        Expression::parse(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .evaluate(r)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn ev(path: &str) -> Vec<Value> {
        eval_on(path, &patient())
    }

    #[test]
    fn navigation_flattens_collections() {
        assert_eq!(ev("name.family"), vec![json!("Smith"), json!("Jones")]);
        assert_eq!(
            ev("Patient.name.given"),
            vec![json!("Ann"), json!("Marie"), json!("Ann")]
        );
        assert_eq!(ev("name[1].family"), vec![json!("Jones")]);
        assert_eq!(ev("name[5].family"), Vec::<Value>::new());
        assert_eq!(ev("address.city"), Vec::<Value>::new());
        assert_eq!(ev("`gender`"), vec![json!("female")]);
    }

    #[test]
    fn functions_of_the_shareable_profile() {
        assert_eq!(
            ev("name.where(use = 'maiden').family"),
            vec![json!("Jones")]
        );
        assert_eq!(ev("name.exists(use = 'nickname')"), vec![json!(false)]);
        assert_eq!(ev("address.empty()"), vec![json!(true)]);
        assert_eq!(ev("name.first().given.first()"), vec![json!("Ann")]);
        assert_eq!(ev("name.given.join(', ')"), vec![json!("Ann, Marie, Ann")]);
        assert_eq!(ev("address.line.join()"), vec![json!("")]);
        assert_eq!(ev("(gender = 'male').not()"), vec![json!(true)]);
        assert_eq!(
            ev("extension('http://x/birthsex').value.ofType(code)"),
            vec![json!("F")]
        );
        assert_eq!(
            ev("extension('http://x/race').extension('text').value.ofType(string)"),
            vec![json!("Mixed")]
        );
    }

    #[test]
    fn choice_elements_and_primitive_extensions() {
        assert_eq!(ev("deceased.ofType(boolean)"), vec![json!(false)]);
        assert_eq!(ev("deceased.ofType(dateTime)"), Vec::<Value>::new());
        assert_eq!(ev("multipleBirth"), vec![json!(2)]);
        assert_eq!(ev("multipleBirth is integer"), vec![json!(true)]);
        assert_eq!(ev("birthDate.ofType(date)"), vec![json!("1970-03-04")]);
        assert_eq!(ev("gender.ofType(date)"), Vec::<Value>::new());
        assert_eq!(ev("gender.ofType(code)"), vec![json!("female")]);
        assert_eq!(
            ev("birthDate.extension('http://x/time').value.ofType(dateTime)"),
            vec![json!("1970-03-04T10:00:00Z")]
        );
        assert_eq!(ev("name[1].given.id"), vec![json!("g")]);
        // A field that merely starts with a name is not a choice element.
        let r = json!({"resourceType": "X", "codeFilter": "x"});
        assert_eq!(eval_on("code", &r), Vec::<Value>::new());
    }

    #[test]
    fn keys() {
        assert_eq!(ev("getResourceKey()"), vec![json!("p1")]);
        assert_eq!(
            ev("managingOrganization.getReferenceKey()"),
            vec![json!("o1")]
        );
        assert_eq!(
            ev("managingOrganization.getReferenceKey(Organization)"),
            vec![json!("o1")]
        );
        assert_eq!(
            ev("managingOrganization.getReferenceKey(Patient)"),
            Vec::<Value>::new()
        );
        assert_eq!(
            ev("generalPractitioner.getReferenceKey()"),
            vec![json!("abc"), json!("pr1")]
        );
        assert_eq!(ev("{}.getResourceKey()"), Vec::<Value>::new());
        let e = Expression::parse("name.getResourceKey()").unwrap();
        assert_eq!(
            e.evaluate(&patient()).unwrap_err(),
            EvalError::NotResource {
                function: "getResourceKey"
            }
        );
        assert_eq!(
            ev("name.first().select(%resource.getResourceKey())"),
            vec![json!("p1")]
        );
    }

    #[test]
    fn logic_is_three_valued() {
        assert_eq!(ev("true and {}"), Vec::<Value>::new());
        assert_eq!(ev("false and {}"), vec![json!(false)]);
        assert_eq!(ev("{} or true"), vec![json!(true)]);
        assert_eq!(ev("true xor true"), vec![json!(false)]);
        assert_eq!(ev("false implies {}"), vec![json!(true)]);
        assert_eq!(ev("active and gender = 'female'"), vec![json!(true)]);
        assert_eq!(ev("{}.not()"), Vec::<Value>::new());
    }

    #[test]
    fn arithmetic_and_comparison() {
        assert_eq!(ev("2 + 3"), vec![json!(5)]);
        assert_eq!(ev("3 / 2"), vec![json!(1.5)]);
        assert_eq!(ev("7 div 2"), vec![json!(3)]);
        assert_eq!(ev("7 mod 2"), vec![json!(1)]);
        assert_eq!(ev("1 / 0"), Vec::<Value>::new());
        assert_eq!(ev("2 * 1.5"), vec![json!(3.0)]);
        assert_eq!(ev("-multipleBirth"), vec![json!(-2)]);
        assert_eq!(ev("'a' + 'b'"), vec![json!("ab")]);
        assert_eq!(ev("'a' & {}"), vec![json!("a")]);
        assert_eq!(ev("1 < 2"), vec![json!(true)]);
        assert_eq!(ev("2 <= 2.0"), vec![json!(true)]);
        assert_eq!(ev("'b' > 'a'"), vec![json!(true)]);
        assert_eq!(ev("1 = 1.0"), vec![json!(true)]);
        assert_eq!(ev("name.family = 'Smith'"), vec![json!(false)]);
        assert_eq!(ev("name.given contains 'Marie'"), vec![json!(true)]);
        assert_eq!(ev("'Ann' in name.given"), vec![json!(true)]);
        assert_eq!(ev("'ann ' ~ 'ANN'"), vec![json!(true)]);
        assert_eq!(ev("(1 | 2 | 1).count()"), vec![json!(2)]);
        assert_eq!(ev("1 + 2 * 3"), vec![json!(7)]);
        assert_eq!(ev("(1 + 2) * 3"), vec![json!(9)]);
    }

    #[test]
    fn dates_compare_at_common_precision() {
        assert_eq!(ev("birthDate > @1970-01-01"), vec![json!(true)]);
        assert_eq!(ev("birthDate = @1970-03-04"), vec![json!(true)]);
        assert_eq!(ev("@2020 < @2021-05"), vec![json!(true)]);
        assert_eq!(ev("@2020-05 = @2020"), Vec::<Value>::new());
        assert_eq!(
            ev("@2020-01-01T10:00:00Z = @2020-01-01T11:00:00+01:00"),
            vec![json!(true)]
        );
        assert_eq!(
            ev("@2020-01-01T00:30:00+01:00 < @2020-01-01T00:00:00Z"),
            vec![json!(true)]
        );
        assert_eq!(ev("@T10:00 < @T10:30"), vec![json!(true)]);
        assert_eq!(
            ev("@2020-01-01T10:00:00 = @2020-01-01T10:00:00.000"),
            vec![json!(true)]
        );
    }

    #[test]
    fn strings_and_conversions() {
        assert_eq!(ev("gender.upper()"), vec![json!("FEMALE")]);
        assert_eq!(ev("gender.substring(1, 3)"), vec![json!("ema")]);
        assert_eq!(ev("gender.startsWith('fem')"), vec![json!(true)]);
        assert_eq!(ev("gender.length()"), vec![json!(6)]);
        assert_eq!(ev("gender.indexOf('male')"), vec![json!(2)]);
        assert_eq!(ev("'a,b'.split(',').count()"), vec![json!(2)]);
        assert_eq!(ev("'12'.toInteger() + 1"), vec![json!(13)]);
        assert_eq!(ev("multipleBirth.toString()"), vec![json!("2")]);
        assert_eq!(ev("iif(active, 'y', 'n')"), vec![json!("y")]);
        assert_eq!(
            ev("name.select(given.first())"),
            vec![json!("Ann"), json!("Ann")]
        );
        assert_eq!(ev("name.where($index = 1).family"), vec![json!("Jones")]);
        assert_eq!(ev("name.given.distinct().count()"), vec![json!(2)]);
        assert_eq!(ev("1.5.round()"), vec![json!(2.0)]);
        assert_eq!(ev("%resource.id"), vec![json!("p1")]);
    }

    #[test]
    fn boundaries_follow_the_written_precision() {
        assert_eq!(ev("1.587.lowBoundary()"), vec![json!(1.5865)]);
        assert_eq!(ev("1.587.highBoundary()"), vec![json!(1.5875)]);
        assert_eq!(ev("1.587.lowBoundary(2)"), vec![json!(1.58)]);
        assert_eq!(ev("1.587.highBoundary(2)"), vec![json!(1.59)]);
        assert_eq!(ev("1.587.highBoundary(0)"), vec![json!(2.0)]);
        assert_eq!(ev("(-1.587).lowBoundary()"), vec![json!(-1.5875)]);
        assert_eq!(ev("1.lowBoundary()"), vec![json!(0.5)]);
        let q = json!({"resourceType": "Observation", "valueQuantity": {"value": 1.0}});
        assert_eq!(
            eval_on("value.ofType(Quantity).value.lowBoundary()", &q),
            vec![json!(0.95)]
        );
        assert_eq!(ev("@2024-02.highBoundary()"), vec![json!("2024-02-29")]);
        assert_eq!(ev("@2023-02.highBoundary()"), vec![json!("2023-02-28")]);
        assert_eq!(ev("birthDate.lowBoundary(6)"), vec![json!("1970-03")]);
        assert_eq!(
            ev("@2010-10-10T10:30.lowBoundary()"),
            vec![json!("2010-10-10T10:30:00.000+14:00")]
        );
        assert_eq!(
            ev("@2010-10-10T10:30Z.highBoundary()"),
            vec![json!("2010-10-10T10:30:59.999Z")]
        );
        assert_eq!(ev("@T12:34.highBoundary()"), vec![json!("12:34:59.999")]);
        assert_eq!(ev("@T12:34.highBoundary(4)"), vec![json!("12:34")]);
        assert_eq!(ev("gender.lowBoundary()"), Vec::<Value>::new());
    }

    #[test]
    fn load_errors_name_the_problem() {
        let err = |p: &str| Expression::parse(p).unwrap_err();
        assert!(matches!(err("@@"), PathError::Syntax { offset: 0, .. }));
        assert!(matches!(err("name."), PathError::Syntax { offset: 5, .. }));
        assert!(matches!(err("name.family)"), PathError::Syntax { .. }));
        assert!(matches!(err("'open"), PathError::Syntax { .. }));
        assert_eq!(
            err("name.resolve()"),
            PathError::UnknownFunction {
                name: "resolve".into()
            }
        );
        assert!(matches!(err("name.first(1)"), PathError::Arity { .. }));
        assert!(matches!(err("name.where()"), PathError::Arity { .. }));
        assert!(matches!(
            err("value.ofType('x')"),
            PathError::TypeExpected { .. }
        ));
        assert!(matches!(err("%nope"), PathError::UndefinedConstant { .. }));
        assert!(matches!(err("1 'mg'"), PathError::Unsupported { .. }));
        assert!(matches!(
            err("@2020 + 1 year"),
            PathError::Unsupported { .. }
        ));
        let deep = format!("{}1{}", "(".repeat(500), ")".repeat(500));
        assert_eq!(err(&deep), PathError::TooDeep);
        assert_eq!(err(&"a.".repeat(200).add("a")), PathError::TooDeep);
        assert_eq!(err(&"1 + ".repeat(200).add("1")), PathError::TooDeep);
        assert_eq!(err(&"a.".repeat(100_000).add("a")), PathError::TooDeep);
    }

    #[test]
    fn the_deepest_path_allowed_evaluates_on_a_test_thread() {
        // Test threads have 2 MiB of stack, unoptimised frames are large: the limit leaves room.
        let chain = "name.".repeat(63).add("family");
        assert_eq!(ev(&chain), Vec::<Value>::new());
        let sum = "1 + ".repeat(120).add("1");
        assert_eq!(ev(&sum), vec![json!(121)]);
        let nested = "(".repeat(45).add("1").add(&")".repeat(45));
        assert_eq!(ev(&nested), vec![json!(1)]);
    }

    #[test]
    fn evaluation_errors_carry_no_values() {
        let e = Expression::parse("name.family < 'x'").unwrap();
        let err = e.evaluate(&patient()).unwrap_err();
        assert_eq!(err, EvalError::NotSingleton { what: "<" });
        let e = Expression::parse("gender - 1").unwrap();
        let err = e.evaluate(&patient()).unwrap_err().to_string();
        assert!(!err.contains("female"), "{err}");
    }
}
