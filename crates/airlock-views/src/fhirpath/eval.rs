//! Evaluation of a parsed path over borrowed JSON.
//!
//! Items borrow from the resource and from the path (string literals): navigating, filtering
//! and comparing copy nothing; a value is copied once, when it becomes a cell of a row.
//!
//! There is no FHIR model here. What a model would tell, the JSON tells well enough for views:
//! a choice element `value[x]` is found by its suffix (`valueQuantity` is `value` of type
//! `Quantity`, the suffix checked against the list of FHIR data types), a primitive's id and
//! extensions live in its `_name` sibling, and `ofType` on an element of unknown type matches by
//! JSON kind (a string is any string-like primitive, an object any complex type or its
//! `resourceType`).

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::EvalError;
use super::parse::{
    BinOp, EnvVar, Expr, Func, Literal, TypeName, check_date, check_datetime, check_time,
};

/// An element of the resource: its JSON value (absent for a primitive that has only an id or
/// extensions), the `_name` sibling that holds the primitive's id and extensions, and its FHIR
/// type where the JSON names it (a choice element's suffix).
#[derive(Clone, Copy)]
pub(crate) struct Node<'a> {
    pub(crate) value: Option<&'a Value>,
    pub(crate) ext: Option<&'a Value>,
    pub(crate) ty: Option<&'static str>,
}

/// One item of a FHIRPath collection. No `Debug`: items hold patient data.
#[derive(Clone)]
pub(crate) enum Item<'a> {
    Node(Node<'a>),
    Bool(bool),
    Int(i64),
    Dec(f64),
    Str(Cow<'a, str>),
    Date(Cow<'a, str>),
    DateTime(Cow<'a, str>),
    Time(Cow<'a, str>),
}

impl<'a> Item<'a> {
    pub(crate) fn node(value: &'a Value) -> Self {
        Item::Node(Node {
            value: Some(value),
            ext: None,
            ty: None,
        })
    }

    /// The item's value if it is a Boolean.
    pub(crate) fn as_bool(&self) -> Option<bool> {
        match prim(self) {
            Prim::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The item as a JSON cell; `None` for a primitive without a value (only extensions).
    pub(crate) fn to_json(&self) -> Option<Value> {
        Some(match self {
            Item::Node(n) => n.value?.clone(),
            Item::Bool(b) => Value::Bool(*b),
            Item::Int(i) => Value::from(*i),
            Item::Dec(d) => Value::Number(serde_json::Number::from_f64(*d)?),
            Item::Str(s) | Item::Date(s) | Item::DateTime(s) | Item::Time(s) => {
                Value::String(s.to_string())
            }
        })
    }
}

/// What the runner knows beyond the focus: `%resource`, `%context`, `%rowIndex`.
#[derive(Clone, Copy)]
pub(crate) struct Env<'a, 'c> {
    pub(crate) resource: &'a Value,
    pub(crate) context: &'c [Item<'a>],
    pub(crate) row_index: i64,
}

type Items<'a> = Vec<Item<'a>>;

/// Evaluates `e` with `focus` as its input collection (`$this`) and `index` as `$index`.
pub(crate) fn eval<'a>(
    e: &'a Expr,
    focus: &[Item<'a>],
    env: &Env<'a, '_>,
    index: Option<usize>,
) -> Result<Items<'a>, EvalError> {
    Ok(match e {
        Expr::Empty => Vec::new(),
        Expr::Lit(l) => vec![literal(l)],
        Expr::This => focus.to_vec(),
        Expr::Index => index
            .and_then(|i| i64::try_from(i).ok())
            .map(Item::Int)
            .into_iter()
            .collect(),
        Expr::Env(EnvVar::RowIndex) => vec![Item::Int(env.row_index)],
        Expr::Env(EnvVar::Resource) => vec![Item::node(env.resource)],
        Expr::Env(EnvVar::Context) => env.context.to_vec(),
        Expr::Member {
            receiver,
            name,
            ext_key,
        } => {
            let mut out = Vec::new();
            match receiver {
                None => {
                    for item in focus {
                        // `Patient.name` on a Patient: a leading type name selects the resource.
                        if is_resource_of_type(item, name) {
                            out.push(item.clone());
                        } else {
                            navigate(&mut out, item, name, ext_key);
                        }
                    }
                }
                Some(r) => {
                    for item in &eval(r, focus, env, index)? {
                        navigate(&mut out, item, name, ext_key);
                    }
                }
            }
            out
        }
        Expr::Call {
            receiver,
            func,
            args,
            ty,
        } => {
            let input = match receiver {
                Some(r) => eval(r, focus, env, index)?,
                None => focus.to_vec(),
            };
            call(*func, input, args, ty.as_ref(), focus, env, index)?
        }
        Expr::Indexer(target, i) => {
            let items = eval(target, focus, env, index)?;
            let i = eval(i, focus, env, index)?;
            match single(&i, "[]")?.map(prim) {
                None => Vec::new(),
                Some(Prim::Int(i)) => usize::try_from(i)
                    .ok()
                    .and_then(|i| items.into_iter().nth(i))
                    .into_iter()
                    .collect(),
                Some(_) => return Err(EvalError::Argument { function: "[]" }),
            }
        }
        Expr::Neg(x) => {
            let items = eval(x, focus, env, index)?;
            match single(&items, "-")?.map(prim) {
                None => Vec::new(),
                Some(Prim::Int(i)) => i.checked_neg().map(Item::Int).into_iter().collect(),
                Some(Prim::Dec(d)) => vec![Item::Dec(-d)],
                Some(_) => return Err(EvalError::Operands { op: "-" }),
            }
        }
        Expr::Is(x, t) => {
            let items = eval(x, focus, env, index)?;
            single(&items, "is")?
                .map(|i| Item::Bool(type_matches(i, t)))
                .into_iter()
                .collect()
        }
        Expr::As(x, t) => {
            let items = eval(x, focus, env, index)?;
            single(&items, "as")?
                .filter(|i| type_matches(i, t))
                .cloned()
                .into_iter()
                .collect()
        }
        Expr::Binary(op, l, r) => binary(*op, l, r, focus, env, index)?,
    })
}

fn literal(l: &Literal) -> Item<'_> {
    match l {
        Literal::Bool(b) => Item::Bool(*b),
        Literal::Int(i) => Item::Int(*i),
        Literal::Dec(d) => Item::Dec(*d),
        Literal::Str(s) => Item::Str(Cow::Borrowed(s)),
        Literal::Date(s) => Item::Date(Cow::Borrowed(s)),
        Literal::DateTime(s) => Item::DateTime(Cow::Borrowed(s)),
        Literal::Time(s) => Item::Time(Cow::Borrowed(s)),
    }
}

fn is_resource_of_type(item: &Item<'_>, name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase())
        && matches!(item, Item::Node(Node { value: Some(Value::Object(o)), .. })
            if o.get("resourceType").and_then(Value::as_str) == Some(name))
}

/// Objects up to this many keys are searched by a linear scan rather than by hash.
const LINEAR_LOOKUP: usize = 32;

/// Pushes the children called `name` of `item`.
fn navigate<'a>(out: &mut Items<'a>, item: &Item<'a>, name: &str, ext_key: &str) {
    let Item::Node(n) = item else { return };
    let obj = match (n.value, n.ext) {
        (Some(Value::Object(o)), _) => o,
        // A primitive: its `id` and `extension` live in the `_name` sibling.
        (_, Some(Value::Object(o))) => o,
        _ => return,
    };
    let (value, ext, maybe_choice) = if obj.len() <= LINEAR_LOOKUP {
        // One pass finds `name`, `_name` and whether a choice `name[x]` may be present:
        // cheaper than hashing twice on the small objects FHIR is made of.
        let (mut value, mut ext, mut choice) = (None, None, false);
        let first = name.as_bytes().first();
        for (key, v) in obj {
            // Most keys differ in their first byte: test it before calling `memcmp`.
            let head = key.as_bytes().first();
            if head != first && head != Some(&b'_') {
                continue;
            }
            if key.len() == name.len() {
                if key == name {
                    value = Some(v);
                }
            } else if key.len() == ext_key.len() && key == ext_key {
                ext = Some(v);
            } else if key.len() > name.len() && key.starts_with(name) {
                choice = true;
            }
        }
        (value, ext, choice)
    } else {
        (obj.get(name), obj.get(ext_key), true)
    };
    if value.is_some() || ext.is_some() {
        push_values(out, value, ext, None);
        return;
    }
    if !maybe_choice {
        return;
    }
    // A choice element: `value` finds `valueQuantity` (typed `Quantity`).
    for (key, v) in obj {
        if let Some(ty) = key.strip_prefix(name).and_then(choice_type) {
            push_values(out, Some(v), obj.get(&format!("_{key}")), Some(ty));
        }
    }
}

fn push_values<'a>(
    out: &mut Items<'a>,
    value: Option<&'a Value>,
    ext: Option<&'a Value>,
    ty: Option<&'static str>,
) {
    let ext = ext.filter(|e| !e.is_null());
    match value {
        Some(Value::Array(values)) => {
            // `given: ["a", null]` pairs with `_given: [null, {...}]` by position.
            let exts = ext.and_then(Value::as_array);
            for (i, v) in values.iter().enumerate() {
                let e = exts.and_then(|x| x.get(i)).filter(|e| !e.is_null());
                let v = Some(v).filter(|v| !v.is_null());
                if v.is_some() || e.is_some() {
                    out.push(Item::Node(Node {
                        value: v,
                        ext: e,
                        ty,
                    }));
                }
            }
        }
        None | Some(Value::Null) => match ext {
            Some(Value::Array(exts)) => {
                for e in exts.iter().filter(|e| !e.is_null()) {
                    out.push(Item::Node(Node {
                        value: None,
                        ext: Some(e),
                        ty,
                    }));
                }
            }
            Some(e) => out.push(Item::Node(Node {
                value: None,
                ext: Some(e),
                ty,
            })),
            None => {}
        },
        Some(v) => out.push(Item::Node(Node {
            value: Some(v),
            ext,
            ty,
        })),
    }
}

/// FHIR data types that can be the type of a choice element, by JSON suffix.
const CHOICE_TYPES: &[(&str, &str)] = &[
    ("Base64Binary", "base64Binary"),
    ("Boolean", "boolean"),
    ("Canonical", "canonical"),
    ("Code", "code"),
    ("Date", "date"),
    ("DateTime", "dateTime"),
    ("Decimal", "decimal"),
    ("Id", "id"),
    ("Instant", "instant"),
    ("Integer", "integer"),
    ("Integer64", "integer64"),
    ("Markdown", "markdown"),
    ("Oid", "oid"),
    ("PositiveInt", "positiveInt"),
    ("String", "string"),
    ("Time", "time"),
    ("UnsignedInt", "unsignedInt"),
    ("Uri", "uri"),
    ("Url", "url"),
    ("Uuid", "uuid"),
    ("Address", "Address"),
    ("Age", "Age"),
    ("Annotation", "Annotation"),
    ("Attachment", "Attachment"),
    ("Availability", "Availability"),
    ("CodeableConcept", "CodeableConcept"),
    ("CodeableReference", "CodeableReference"),
    ("Coding", "Coding"),
    ("ContactDetail", "ContactDetail"),
    ("ContactPoint", "ContactPoint"),
    ("Contributor", "Contributor"),
    ("Count", "Count"),
    ("DataRequirement", "DataRequirement"),
    ("Distance", "Distance"),
    ("Dosage", "Dosage"),
    ("Duration", "Duration"),
    ("Expression", "Expression"),
    ("ExtendedContactDetail", "ExtendedContactDetail"),
    ("HumanName", "HumanName"),
    ("Identifier", "Identifier"),
    ("Meta", "Meta"),
    ("Money", "Money"),
    ("ParameterDefinition", "ParameterDefinition"),
    ("Period", "Period"),
    ("Quantity", "Quantity"),
    ("Range", "Range"),
    ("Ratio", "Ratio"),
    ("RatioRange", "RatioRange"),
    ("Reference", "Reference"),
    ("RelatedArtifact", "RelatedArtifact"),
    ("SampledData", "SampledData"),
    ("Signature", "Signature"),
    ("Timing", "Timing"),
    ("TriggerDefinition", "TriggerDefinition"),
    ("UsageContext", "UsageContext"),
];

fn choice_type(suffix: &str) -> Option<&'static str> {
    CHOICE_TYPES
        .iter()
        .find(|(s, _)| *s == suffix)
        .map(|&(_, t)| t)
}

/// FHIR primitives whose JSON form is a string.
const STRING_TYPES: &[&str] = &[
    "string",
    "code",
    "id",
    "markdown",
    "uri",
    "url",
    "canonical",
    "oid",
    "uuid",
    "base64Binary",
    "date",
    "dateTime",
    "instant",
    "time",
    "integer64",
    "xhtml",
];

/// Does `item` have type `t` (or a subtype of it)?
pub(crate) fn type_matches(item: &Item<'_>, t: &TypeName) -> bool {
    let name = t.name.as_str();
    // `System.String` and unqualified FHIRPath type names match by kind.
    let system = t.namespace.as_deref() == Some("System")
        || (t.namespace.is_none()
            && matches!(
                name,
                "Boolean" | "String" | "Integer" | "Decimal" | "Date" | "DateTime" | "Time"
            ));
    if system {
        return match (name, prim(item)) {
            ("Boolean", Prim::Bool(_))
            | ("Integer", Prim::Int(_))
            | ("Decimal", Prim::Dec(_) | Prim::Int(_))
            | ("String", Prim::Str(_))
            | ("Date", Prim::Date(_))
            | ("DateTime", Prim::DateTime(_))
            | ("Time", Prim::Time(_)) => true,
            ("Decimal", _) | ("Integer", _) | ("Boolean", _) => false,
            // An untyped JSON string is a date or time if it has the shape of one.
            ("Date", Prim::Str(s)) => check_date(s),
            ("DateTime", Prim::Str(s)) => check_date(s) || check_datetime(s),
            ("Time", Prim::Str(s)) => check_time(s),
            _ => false,
        };
    }
    match item {
        Item::Bool(_) => name == "boolean",
        Item::Int(_) => name == "integer",
        Item::Dec(_) => name == "decimal",
        Item::Str(_) => name == "string",
        Item::Date(_) => name == "date",
        Item::DateTime(_) => name == "dateTime",
        Item::Time(_) => name == "time",
        Item::Node(n) => match n.ty {
            Some(ty) => is_subtype(ty, name),
            None => match n.value {
                Some(Value::Object(o)) => match o.get("resourceType").and_then(Value::as_str) {
                    Some(rt) => rt == name || name == "Resource" || name == "DomainResource",
                    // Without a model, an object is any complex type.
                    None => name.starts_with(|c: char| c.is_ascii_uppercase()),
                },
                Some(Value::Bool(_)) => name == "boolean",
                Some(Value::Number(x)) => {
                    name == "decimal"
                        || (x.is_i64() || x.is_u64())
                            && matches!(name, "integer" | "positiveInt" | "unsignedInt")
                }
                Some(Value::String(s)) => match name {
                    "date" => check_date(s),
                    "dateTime" => check_date(s) || check_datetime(s),
                    "instant" => check_datetime(s),
                    "time" => check_time(s),
                    _ => STRING_TYPES.contains(&name),
                },
                _ => false,
            },
        },
    }
}

/// FHIR's specialisations among the data types (R4/R5 `baseDefinition`).
fn is_subtype(ty: &str, of: &str) -> bool {
    ty == of
        || match of {
            "string" => matches!(ty, "code" | "id" | "markdown"),
            "uri" => matches!(ty, "url" | "canonical" | "oid" | "uuid"),
            "integer" => matches!(ty, "positiveInt" | "unsignedInt"),
            "dateTime" => ty == "instant",
            "Quantity" => matches!(
                ty,
                "Age" | "Count" | "Distance" | "Duration" | "SimpleQuantity" | "MoneyQuantity"
            ),
            _ => false,
        }
}

/// An item seen as a value, for comparison and arithmetic.
#[derive(Clone, Copy)]
enum Prim<'x> {
    Bool(bool),
    Int(i64),
    Dec(f64),
    Str(&'x str),
    Date(&'x str),
    DateTime(&'x str),
    Time(&'x str),
    Complex(&'x Value),
    /// A primitive with only extensions.
    Nothing,
}

fn prim<'x>(item: &'x Item<'_>) -> Prim<'x> {
    match item {
        Item::Node(n) => match n.value {
            None | Some(Value::Null) => Prim::Nothing,
            Some(Value::Bool(b)) => Prim::Bool(*b),
            Some(Value::Number(x)) => match x.as_i64() {
                Some(i) => Prim::Int(i),
                None => x.as_f64().map_or(Prim::Nothing, Prim::Dec),
            },
            Some(Value::String(s)) => match n.ty {
                Some("date") => Prim::Date(s),
                Some("dateTime" | "instant") => Prim::DateTime(s),
                Some("time") => Prim::Time(s),
                _ => Prim::Str(s),
            },
            Some(v) => Prim::Complex(v),
        },
        Item::Bool(b) => Prim::Bool(*b),
        Item::Int(i) => Prim::Int(*i),
        Item::Dec(d) => Prim::Dec(*d),
        Item::Str(s) => Prim::Str(s),
        Item::Date(s) => Prim::Date(s),
        Item::DateTime(s) => Prim::DateTime(s),
        Item::Time(s) => Prim::Time(s),
    }
}

fn as_f64(p: Prim<'_>) -> Option<f64> {
    match p {
        // FHIRPath promotes Integer to Decimal; f64 is this evaluator's Decimal.
        Prim::Int(i) => Some(i as f64),
        Prim::Dec(d) => Some(d),
        _ => None,
    }
}

/// The item as text, for `join`, `toString` and string functions; `None` for complex values.
fn as_text<'a>(item: &Item<'a>) -> Option<Cow<'a, str>> {
    Some(match item {
        Item::Str(s) | Item::Date(s) | Item::DateTime(s) | Item::Time(s) => s.clone(),
        Item::Bool(b) => Cow::Owned(b.to_string()),
        Item::Int(i) => Cow::Owned(i.to_string()),
        Item::Dec(d) => Cow::Owned(d.to_string()),
        Item::Node(n) => match n.value? {
            Value::String(s) => Cow::Borrowed(s.as_str()),
            Value::Bool(b) => Cow::Owned(b.to_string()),
            Value::Number(x) => Cow::Owned(x.to_string()),
            _ => return None,
        },
    })
}

fn single<'x, 'a>(
    items: &'x [Item<'a>],
    what: &'static str,
) -> Result<Option<&'x Item<'a>>, EvalError> {
    match items {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(EvalError::NotSingleton { what }),
    }
}

/// FHIRPath's singleton evaluation in a boolean context: empty is unknown, one Boolean is
/// itself, any other single item is true.
fn to_bool(items: &[Item<'_>], what: &'static str) -> Result<Option<bool>, EvalError> {
    Ok(single(items, what)?.map(|i| match prim(i) {
        Prim::Bool(b) => b,
        _ => true,
    }))
}

fn text_arg<'a>(
    args: &'a [Expr],
    n: usize,
    function: &'static str,
    focus: &[Item<'a>],
    env: &Env<'a, '_>,
    index: Option<usize>,
) -> Result<Option<Cow<'a, str>>, EvalError> {
    let Some(arg) = args.get(n) else {
        return Ok(None);
    };
    let items = eval(arg, focus, env, index)?;
    match single(&items, function)? {
        None => Ok(None),
        Some(i) => match prim(i) {
            Prim::Str(_) | Prim::Date(_) | Prim::DateTime(_) | Prim::Time(_) => Ok(as_text(i)),
            _ => Err(EvalError::Argument { function }),
        },
    }
}

fn int_arg<'a>(
    args: &'a [Expr],
    n: usize,
    function: &'static str,
    focus: &[Item<'a>],
    env: &Env<'a, '_>,
    index: Option<usize>,
) -> Result<Option<i64>, EvalError> {
    let Some(arg) = args.get(n) else {
        return Ok(None);
    };
    let items = eval(arg, focus, env, index)?;
    match single(&items, function)?.map(prim) {
        None => Ok(None),
        Some(Prim::Int(i)) => Ok(Some(i)),
        Some(_) => Err(EvalError::Argument { function }),
    }
}

/// The single string of `input` (`None` when empty), for the string functions.
fn input_text<'a>(
    input: &[Item<'a>],
    function: &'static str,
) -> Result<Option<Cow<'a, str>>, EvalError> {
    match single(input, function)? {
        None => Ok(None),
        Some(i) => match prim(i) {
            Prim::Str(_) | Prim::Date(_) | Prim::DateTime(_) | Prim::Time(_) => Ok(as_text(i)),
            _ => Err(EvalError::Argument { function }),
        },
    }
}

fn input_number(
    input: &[Item<'_>],
    function: &'static str,
) -> Result<Option<Prim<'static>>, EvalError> {
    match single(input, function)?.map(prim) {
        None => Ok(None),
        Some(Prim::Int(i)) => Ok(Some(Prim::Int(i))),
        Some(Prim::Dec(d)) => Ok(Some(Prim::Dec(d))),
        Some(_) => Err(EvalError::Argument { function }),
    }
}

fn func_name(f: Func) -> &'static str {
    super::parse::function_name(f)
}

fn dedup<'a>(items: Items<'a>) -> Items<'a> {
    let mut out: Items<'a> = Vec::with_capacity(items.len());
    for i in items {
        if !out.iter().any(|o| equal(o, &i) == Some(true)) {
            out.push(i);
        }
    }
    out
}

fn contains_item(items: &[Item<'_>], x: &Item<'_>) -> bool {
    items.iter().any(|i| equal(i, x) == Some(true))
}

// One arm per function: the behaviour of the whole table reads best in one place.
fn call<'a>(
    func: Func,
    input: Items<'a>,
    args: &'a [Expr],
    ty: Option<&TypeName>,
    focus: &[Item<'a>],
    env: &Env<'a, '_>,
    index: Option<usize>,
) -> Result<Items<'a>, EvalError> {
    let name = func_name(func);
    let one = |item: Item<'a>| Ok(vec![item]);
    let bool_of = |b: bool| Ok(vec![Item::Bool(b)]);
    // Lambda functions: the argument is evaluated once per input item.
    let each = |arg: &'a Expr, i: usize, item: &Item<'a>| -> Result<Option<bool>, EvalError> {
        to_bool(&eval(arg, std::slice::from_ref(item), env, Some(i))?, name)
    };
    match func {
        Func::Empty => bool_of(input.is_empty()),
        Func::Exists => match args.first() {
            None => bool_of(!input.is_empty()),
            Some(c) => {
                for (i, item) in input.iter().enumerate() {
                    if each(c, i, item)? == Some(true) {
                        return bool_of(true);
                    }
                }
                bool_of(false)
            }
        },
        Func::All => {
            let Some(c) = args.first() else {
                return bool_of(true);
            };
            for (i, item) in input.iter().enumerate() {
                if each(c, i, item)? != Some(true) {
                    return bool_of(false);
                }
            }
            bool_of(true)
        }
        Func::AllTrue | Func::AnyTrue | Func::AllFalse | Func::AnyFalse => {
            let mut bools = Vec::with_capacity(input.len());
            for item in &input {
                match prim(item) {
                    Prim::Bool(b) => bools.push(b),
                    _ => return Err(EvalError::Argument { function: name }),
                }
            }
            bool_of(match func {
                Func::AllTrue => bools.iter().all(|b| *b),
                Func::AnyTrue => bools.iter().any(|b| *b),
                Func::AllFalse => bools.iter().all(|b| !*b),
                _ => bools.iter().any(|b| !*b),
            })
        }
        Func::Count => one(Item::Int(i64::try_from(input.len()).unwrap_or(i64::MAX))),
        Func::Distinct => Ok(dedup(input)),
        Func::IsDistinct => {
            let n = input.len();
            bool_of(dedup(input).len() == n)
        }
        Func::Where => {
            let Some(c) = args.first() else {
                return Ok(input);
            };
            let mut out = Vec::new();
            for (i, item) in input.into_iter().enumerate() {
                if each(c, i, &item)? == Some(true) {
                    out.push(item);
                }
            }
            Ok(out)
        }
        Func::Select => {
            let Some(c) = args.first() else {
                return Ok(input);
            };
            let mut out = Vec::new();
            for (i, item) in input.iter().enumerate() {
                out.extend(eval(c, std::slice::from_ref(item), env, Some(i))?);
            }
            Ok(out)
        }
        Func::First => Ok(input.into_iter().take(1).collect()),
        Func::Last => Ok(input.into_iter().last().into_iter().collect()),
        Func::Tail => Ok(input.into_iter().skip(1).collect()),
        Func::Skip => {
            let n = int_arg(args, 0, name, focus, env, index)?.unwrap_or(0);
            Ok(input
                .into_iter()
                .skip(usize::try_from(n).unwrap_or(0))
                .collect())
        }
        Func::Take => {
            let n = int_arg(args, 0, name, focus, env, index)?.unwrap_or(0);
            Ok(input
                .into_iter()
                .take(usize::try_from(n).unwrap_or(0))
                .collect())
        }
        Func::Single => Ok(single(&input, name)?.cloned().into_iter().collect()),
        Func::OfType => Ok(match ty {
            Some(t) => input.into_iter().filter(|i| type_matches(i, t)).collect(),
            None => Vec::new(),
        }),
        Func::Is => Ok(match (single(&input, name)?, ty) {
            (Some(i), Some(t)) => vec![Item::Bool(type_matches(i, t))],
            _ => Vec::new(),
        }),
        Func::As => Ok(match (single(&input, name)?, ty) {
            (Some(i), Some(t)) if type_matches(i, t) => vec![i.clone()],
            _ => Vec::new(),
        }),
        Func::Not => Ok(to_bool(&input, name)?
            .map(|b| Item::Bool(!b))
            .into_iter()
            .collect()),
        Func::Iif => {
            // The criterion and results see the input as their focus.
            let (Some(c), Some(t)) = (args.first(), args.get(1)) else {
                return Ok(Vec::new());
            };
            if to_bool(&eval(c, &input, env, index)?, name)? == Some(true) {
                eval(t, &input, env, index)
            } else {
                match args.get(2) {
                    Some(o) => eval(o, &input, env, index),
                    None => Ok(Vec::new()),
                }
            }
        }
        Func::Union | Func::Combine | Func::Intersect | Func::Exclude => {
            let other = match args.first() {
                Some(a) => eval(a, focus, env, index)?,
                None => Vec::new(),
            };
            Ok(match func {
                Func::Union => {
                    let mut all = input;
                    all.extend(other);
                    dedup(all)
                }
                Func::Combine => {
                    let mut all = input;
                    all.extend(other);
                    all
                }
                Func::Intersect => dedup(
                    input
                        .into_iter()
                        .filter(|i| contains_item(&other, i))
                        .collect(),
                ),
                _ => input
                    .into_iter()
                    .filter(|i| !contains_item(&other, i))
                    .collect(),
            })
        }
        Func::Join => {
            let sep = text_arg(args, 0, name, focus, env, index)?.unwrap_or_default();
            let mut out = String::new();
            for (i, item) in input.iter().enumerate() {
                if i > 0 {
                    out.push_str(&sep);
                }
                out.push_str(&as_text(item).ok_or(EvalError::Argument { function: name })?);
            }
            one(Item::Str(Cow::Owned(out)))
        }
        Func::StartsWith | Func::EndsWith | Func::Contains | Func::IndexOf => {
            let (Some(s), Some(arg)) = (
                input_text(&input, name)?,
                text_arg(args, 0, name, focus, env, index)?,
            ) else {
                return Ok(Vec::new());
            };
            match func {
                Func::StartsWith => bool_of(s.starts_with(arg.as_ref())),
                Func::EndsWith => bool_of(s.ends_with(arg.as_ref())),
                Func::Contains => bool_of(s.contains(arg.as_ref())),
                _ => one(Item::Int(match s.find(arg.as_ref()) {
                    Some(byte) => i64::try_from(s.get(..byte).unwrap_or_default().chars().count())
                        .unwrap_or(i64::MAX),
                    None => -1,
                })),
            }
        }
        Func::Substring => {
            let Some(s) = input_text(&input, name)? else {
                return Ok(Vec::new());
            };
            let Some(start) = int_arg(args, 0, name, focus, env, index)? else {
                return Ok(Vec::new());
            };
            let len = int_arg(args, 1, name, focus, env, index)?;
            let count = s.chars().count();
            let Ok(start) = usize::try_from(start) else {
                return Ok(Vec::new());
            };
            if start >= count {
                return Ok(Vec::new());
            }
            let take = match len {
                Some(l) => usize::try_from(l).unwrap_or(0),
                None => count,
            };
            one(Item::Str(Cow::Owned(
                s.chars().skip(start).take(take).collect(),
            )))
        }
        Func::Lower | Func::Upper | Func::Length | Func::Trim | Func::ToChars => {
            let Some(s) = input_text(&input, name)? else {
                return Ok(Vec::new());
            };
            match func {
                Func::Lower => one(Item::Str(Cow::Owned(s.to_lowercase()))),
                Func::Upper => one(Item::Str(Cow::Owned(s.to_uppercase()))),
                Func::Trim => one(Item::Str(Cow::Owned(s.trim().to_owned()))),
                Func::Length => one(Item::Int(
                    i64::try_from(s.chars().count()).unwrap_or(i64::MAX),
                )),
                _ => Ok(s
                    .chars()
                    .map(|c| Item::Str(Cow::Owned(c.to_string())))
                    .collect()),
            }
        }
        Func::Replace => {
            let (Some(s), Some(pattern), Some(with)) = (
                input_text(&input, name)?,
                text_arg(args, 0, name, focus, env, index)?,
                text_arg(args, 1, name, focus, env, index)?,
            ) else {
                return Ok(Vec::new());
            };
            one(Item::Str(Cow::Owned(s.replace(pattern.as_ref(), &with))))
        }
        Func::Split => {
            let (Some(s), Some(sep)) = (
                input_text(&input, name)?,
                text_arg(args, 0, name, focus, env, index)?,
            ) else {
                return Ok(Vec::new());
            };
            Ok(s.split(sep.as_ref())
                .map(|p| Item::Str(Cow::Owned(p.to_owned())))
                .collect())
        }
        Func::ToString => Ok(single(&input, name)?
            .and_then(as_text)
            .map(Item::Str)
            .into_iter()
            .collect()),
        Func::ToInteger | Func::ConvertsToInteger => {
            let v = match single(&input, name)? {
                None => return Ok(Vec::new()),
                Some(i) => to_integer(i),
            };
            if func == Func::ToInteger {
                Ok(v.map(Item::Int).into_iter().collect())
            } else {
                bool_of(v.is_some())
            }
        }
        Func::ToDecimal | Func::ConvertsToDecimal => {
            let v = match single(&input, name)? {
                None => return Ok(Vec::new()),
                Some(i) => to_decimal(i),
            };
            if func == Func::ToDecimal {
                Ok(v.map(Item::Dec).into_iter().collect())
            } else {
                bool_of(v.is_some())
            }
        }
        Func::ToBoolean | Func::ConvertsToBoolean => {
            let v = match single(&input, name)? {
                None => return Ok(Vec::new()),
                Some(i) => to_boolean(i),
            };
            if func == Func::ToBoolean {
                Ok(v.map(Item::Bool).into_iter().collect())
            } else {
                bool_of(v.is_some())
            }
        }
        Func::ConvertsToString => match single(&input, name)? {
            None => Ok(Vec::new()),
            Some(i) => bool_of(as_text(i).is_some()),
        },
        Func::Abs | Func::Ceiling | Func::Floor | Func::Truncate | Func::Round => {
            let Some(n) = input_number(&input, name)? else {
                return Ok(Vec::new());
            };
            let digits = int_arg(args, 0, name, focus, env, index)?.unwrap_or(0);
            Ok(math(func, n, digits).into_iter().collect())
        }
        Func::LowBoundary | Func::HighBoundary => {
            let precision = int_arg(args, 0, name, focus, env, index)?;
            let Some(item) = single(&input, name)? else {
                return Ok(Vec::new());
            };
            Ok(boundary(item, func == Func::HighBoundary, precision)
                .into_iter()
                .collect())
        }
        Func::HasValue => bool_of(matches!(
            input.as_slice(),
            [Item::Node(Node { value: Some(v), .. })] if !v.is_object()
        )),
        Func::Extension => {
            let Some(url) = text_arg(args, 0, name, focus, env, index)? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for item in &input {
                let Item::Node(n) = item else { continue };
                let holder = match (n.value, n.ext) {
                    (Some(Value::Object(o)), _) | (_, Some(Value::Object(o))) => o,
                    _ => continue,
                };
                for e in holder
                    .get("extension")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if e.get("url").and_then(Value::as_str) == Some(url.as_ref()) {
                        out.push(Item::node(e));
                    }
                }
            }
            Ok(out)
        }
        Func::GetResourceKey => {
            // On anything but a resource it is a mistake (a key column that would silently be
            // null), most often inside a `forEach`, where `%resource.getResourceKey()` is meant.
            let mut keys = Vec::with_capacity(input.len());
            for item in &input {
                match item {
                    Item::Node(Node {
                        value: Some(Value::Object(o)),
                        ..
                    }) if o.contains_key("resourceType") => {
                        if let Some(id) = o.get("id").and_then(Value::as_str) {
                            keys.push(Item::Str(Cow::Borrowed(id)));
                        }
                    }
                    _ => return Err(EvalError::NotResource { function: name }),
                }
            }
            Ok(keys)
        }
        Func::GetReferenceKey => Ok(input
            .iter()
            .filter_map(|i| match i {
                Item::Node(Node {
                    value: Some(Value::Object(o)),
                    ..
                }) => reference_key(o, ty),
                _ => None,
            })
            .collect()),
        Func::Trace => Ok(input),
    }
}

/// The key of the resource a Reference points to: the id, the same value `getResourceKey()`
/// gives on that resource. Relative (`Patient/1`), absolute (`http://x/fhir/Patient/1`),
/// versioned (`.../_history/2`) and `urn:uuid:` references are understood; contained (`#x`)
/// and conditional (`Patient?identifier=...`) ones give nothing.
///
/// With a type (`getReferenceKey(Patient)`), a reference that names another type gives nothing.
/// A `urn:uuid:` reference names no type; its `type` element decides when present, otherwise
/// the key is returned (Synthea bundles reference patients this way, and a view could never join
/// them otherwise).
fn reference_key<'a>(
    reference: &'a Map<String, Value>,
    want: Option<&TypeName>,
) -> Option<Item<'a>> {
    let text = reference.get("reference")?.as_str()?;
    let declared = reference.get("type").and_then(Value::as_str);
    let (ty, id) = if let Some(id) = text
        .strip_prefix("urn:uuid:")
        .or_else(|| text.strip_prefix("urn:oid:"))
    {
        (declared, id)
    } else {
        if text.starts_with('#') || text.contains('?') {
            return None;
        }
        let path = text
            .find("/_history/")
            .map_or(text, |i| text.get(..i).unwrap_or(text));
        let mut segments = path.rsplit('/');
        let id = segments.next()?;
        let ty = segments.next()?;
        if !is_type_name(ty) {
            return None;
        }
        (Some(ty), id)
    };
    if id.is_empty() {
        return None;
    }
    if let (Some(want), Some(ty)) = (want, ty)
        && want.name != ty
    {
        return None;
    }
    Some(Item::Str(Cow::Borrowed(id)))
}

fn is_type_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn to_integer(item: &Item<'_>) -> Option<i64> {
    match prim(item) {
        Prim::Int(i) => Some(i),
        Prim::Bool(b) => Some(i64::from(b)),
        Prim::Str(s) => s.parse().ok(),
        _ => None,
    }
}

fn to_decimal(item: &Item<'_>) -> Option<f64> {
    match prim(item) {
        p @ (Prim::Int(_) | Prim::Dec(_)) => as_f64(p),
        Prim::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
        Prim::Str(s) => s.parse().ok().filter(|d: &f64| d.is_finite()),
        _ => None,
    }
}

fn to_boolean(item: &Item<'_>) -> Option<bool> {
    match prim(item) {
        Prim::Bool(b) => Some(b),
        Prim::Int(1) => Some(true),
        Prim::Int(0) => Some(false),
        Prim::Dec(1.0) => Some(true),
        Prim::Dec(0.0) => Some(false),
        Prim::Str(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" | "1.0" => Some(true),
            "false" | "f" | "no" | "n" | "0" | "0.0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn math(func: Func, n: Prim<'_>, digits: i64) -> Option<Item<'static>> {
    match (func, n) {
        (Func::Abs, Prim::Int(i)) => i.checked_abs().map(Item::Int),
        (Func::Abs, Prim::Dec(d)) => Some(Item::Dec(d.abs())),
        (Func::Ceiling | Func::Floor | Func::Truncate, Prim::Int(i)) => Some(Item::Int(i)),
        (Func::Ceiling | Func::Floor | Func::Truncate, Prim::Dec(d)) => {
            let r = match func {
                Func::Ceiling => d.ceil(),
                Func::Floor => d.floor(),
                _ => d.trunc(),
            };
            float_to_int(r).map(Item::Int)
        }
        (Func::Round, p) => {
            let d = as_f64(p)?;
            let scale = 10f64.powi(i32::try_from(digits).ok()?);
            Some(Item::Dec((d * scale).round() / scale))
        }
        _ => None,
    }
}

/// `lowBoundary`/`highBoundary`: the least or greatest value the input could stand for, given
/// the precision it was written with (`1.0` is 0.95 to 1.05, `1970-06` is the 1st to the 30th
/// of June, a date-time without a zone spans +14:00 to -12:00), to `precision` digits.
fn boundary<'a>(item: &Item<'a>, high: bool, precision: Option<i64>) -> Option<Item<'a>> {
    match prim(item) {
        Prim::Int(i) => decimal_boundary(i128::from(i), 0, high, precision).map(Item::Dec),
        Prim::Dec(d) => {
            // The JSON parser keeps no trailing zeros: the scale is that of the shortest
            // representation, and at least one decimal (`1.0` is a decimal, `1` is not).
            let text = d.to_string();
            let scale = text.split_once('.').map_or(0, |(_, f)| f.len()).max(1);
            let digits: String = text.chars().filter(|c| *c != '.').collect();
            let mut mantissa: i128 = digits.parse().ok()?;
            if !text.contains('.') {
                mantissa = mantissa.checked_mul(10)?;
            }
            decimal_boundary(mantissa, u32::try_from(scale).ok()?, high, precision).map(Item::Dec)
        }
        Prim::Date(s) => {
            date_boundary(s, false, high, precision).map(|s| Item::Date(Cow::Owned(s)))
        }
        Prim::DateTime(s) => {
            date_boundary(s, true, high, precision).map(|s| Item::DateTime(Cow::Owned(s)))
        }
        Prim::Time(s) => time_boundary(s, high, precision).map(|s| Item::Time(Cow::Owned(s))),
        // An untyped string: its shape tells a date from a date-time.
        Prim::Str(s) if check_date(s) => {
            date_boundary(s, false, high, precision).map(|s| Item::Date(Cow::Owned(s)))
        }
        Prim::Str(s) if check_datetime(s) => {
            date_boundary(s, true, high, precision).map(|s| Item::DateTime(Cow::Owned(s)))
        }
        _ => None,
    }
}

/// `mantissa / 10^scale` ± half a unit of its last digit, floored (low) or ceiled (high) to
/// `precision` decimals (default 8), computed in decimal so that `0.95` is `0.95`.
fn decimal_boundary(mantissa: i128, scale: u32, high: bool, precision: Option<i64>) -> Option<f64> {
    let precision = u32::try_from(precision.unwrap_or(8))
        .ok()
        .filter(|p| *p <= 28)?;
    // One more digit holds the half unit.
    let value = mantissa.checked_mul(10)?;
    let bound = if high {
        value.checked_add(5)?
    } else {
        value.checked_sub(5)?
    };
    let bound_scale = scale + 1;
    let (digits, out_scale) = if precision >= bound_scale {
        (
            bound.checked_mul(10i128.checked_pow(precision - bound_scale)?)?,
            precision,
        )
    } else {
        let unit = 10i128.checked_pow(bound_scale - precision)?;
        let floor = bound.div_euclid(unit);
        let rounded = if high && bound.rem_euclid(unit) != 0 {
            floor + 1
        } else {
            floor
        };
        (rounded, precision)
    };
    let sign = if digits < 0 { "-" } else { "" };
    let abs = digits.unsigned_abs().to_string();
    let width = usize::try_from(out_scale).ok()? + 1;
    let padded = format!("{abs:0>width$}");
    let (int, frac) =
        padded.split_at_checked(padded.len().checked_sub(usize::try_from(out_scale).ok()?)?)?;
    format!("{sign}{int}.{frac}0").parse().ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The boundary of a date (`date_time` false; precision 4, 6 or 8, default 8) or a date-time
/// (precision 4 to 17, default 17: to the millisecond, with a zone).
fn date_boundary(s: &str, date_time: bool, high: bool, precision: Option<i64>) -> Option<String> {
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, t),
        None => (s, ""),
    };
    if !check_date(date) {
        return None;
    }
    let parts: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let year = *parts.first()?;
    let month = parts.get(1).copied().unwrap_or(if high { 12 } else { 1 });
    let day = parts
        .get(2)
        .copied()
        .unwrap_or(if high { days_in_month(year, month) } else { 1 });
    let date = format!("{year:04}-{month:02}-{day:02}");
    let precision = precision.unwrap_or(if date_time { 17 } else { 8 });
    if !date_time {
        return match precision {
            4 => Some(format!("{year:04}")),
            6 => Some(format!("{year:04}-{month:02}")),
            8 => Some(date),
            _ => None,
        };
    }
    let (clock, zone) = super::parse::split_zone(time);
    // An unknown zone could be any: the earliest instant is at +14:00, the latest at -12:00.
    let zone = zone.unwrap_or(if high { "-12:00" } else { "+14:00" });
    let clock = fill_time(clock, high)?;
    Some(match precision {
        4 => format!("{year:04}"),
        6 => format!("{year:04}-{month:02}"),
        8 => date,
        10 | 12 | 14 | 17 => {
            let len = match precision {
                10 => 2,
                12 => 5,
                14 => 8,
                _ => 12,
            };
            format!("{date}T{}{zone}", clock.get(..len)?)
        }
        _ => return None,
    })
}

/// The boundary of a time (precision 2, 4, 6 or 9, default 9).
fn time_boundary(s: &str, high: bool, precision: Option<i64>) -> Option<String> {
    let clock = fill_time(s, high)?;
    let len = match precision.unwrap_or(9) {
        2 => 2,
        4 => 5,
        6 => 8,
        9 => 12,
        _ => return None,
    };
    clock.get(..len).map(str::to_owned)
}

/// `hh:mm:ss.fff` with the parts `s` lacks filled with their least or greatest value.
fn fill_time(s: &str, high: bool) -> Option<String> {
    if !s.is_empty() && !check_time(s) {
        return None;
    }
    let (hms, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let mut parts: Vec<&str> = if hms.is_empty() {
        Vec::new()
    } else {
        hms.split(':').collect()
    };
    let fill = if high {
        ["23", "59", "59"]
    } else {
        ["00", "00", "00"]
    };
    for f in fill.iter().skip(parts.len()) {
        parts.push(f);
    }
    let pad = if high { '9' } else { '0' };
    let frac: String = frac.chars().chain(std::iter::repeat(pad)).take(3).collect();
    Some(format!("{}.{frac}", parts.join(":")))
}

fn float_to_int(f: f64) -> Option<i64> {
    // `as` saturates; the range check keeps a saturated value from passing for a result.
    let ok = f.is_finite() && f >= i64::MIN as f64 && f < i64::MAX as f64;
    ok.then_some(f as i64)
}

fn binary<'a>(
    op: BinOp,
    l: &'a Expr,
    r: &'a Expr,
    focus: &[Item<'a>],
    env: &Env<'a, '_>,
    index: Option<usize>,
) -> Result<Items<'a>, EvalError> {
    let sym = op.symbol();
    let lhs = eval(l, focus, env, index)?;
    // Three-valued logic, short-circuited where the left side decides.
    if matches!(op, BinOp::And | BinOp::Or | BinOp::Xor | BinOp::Implies) {
        let a = to_bool(&lhs, sym)?;
        let decided = match (op, a) {
            (BinOp::And, Some(false)) => Some(false),
            (BinOp::Or, Some(true)) => Some(true),
            (BinOp::Implies, Some(false)) => Some(true),
            _ => None,
        };
        if let Some(d) = decided {
            return Ok(vec![Item::Bool(d)]);
        }
        let b = to_bool(&eval(r, focus, env, index)?, sym)?;
        let v = match op {
            BinOp::And => match (a, b) {
                (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            BinOp::Or => match (a, b) {
                (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            BinOp::Xor => match (a, b) {
                (Some(x), Some(y)) => Some(x != y),
                _ => None,
            },
            _ => match (a, b) {
                (_, Some(true)) => Some(true),
                (Some(true), Some(false)) => Some(false),
                _ => None,
            },
        };
        return Ok(v.map(Item::Bool).into_iter().collect());
    }
    let rhs = eval(r, focus, env, index)?;
    Ok(match op {
        BinOp::Union => {
            let mut all = lhs;
            all.extend(rhs);
            dedup(all)
        }
        BinOp::Eq | BinOp::Ne => {
            if lhs.is_empty() || rhs.is_empty() {
                return Ok(Vec::new());
            }
            let eq = if lhs.len() == rhs.len() {
                let mut all = Some(true);
                for (a, b) in lhs.iter().zip(&rhs) {
                    match equal(a, b) {
                        Some(true) => {}
                        Some(false) => {
                            all = Some(false);
                            break;
                        }
                        None => all = None,
                    }
                }
                all
            } else {
                Some(false)
            };
            eq.map(|e| Item::Bool(if op == BinOp::Eq { e } else { !e }))
                .into_iter()
                .collect()
        }
        BinOp::Equiv | BinOp::NotEquiv => {
            let eq =
                lhs.len() == rhs.len() && lhs.iter().all(|a| rhs.iter().any(|b| equivalent(a, b)));
            vec![Item::Bool(if op == BinOp::Equiv { eq } else { !eq })]
        }
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let (Some(a), Some(b)) = (single(&lhs, sym)?, single(&rhs, sym)?) else {
                return Ok(Vec::new());
            };
            compare(a, b, sym)?
                .map(|o| {
                    Item::Bool(match op {
                        BinOp::Lt => o == Ordering::Less,
                        BinOp::Le => o != Ordering::Greater,
                        BinOp::Gt => o == Ordering::Greater,
                        _ => o != Ordering::Less,
                    })
                })
                .into_iter()
                .collect()
        }
        BinOp::In | BinOp::Contains => {
            let (needle, hay) = if op == BinOp::In {
                (&lhs, &rhs)
            } else {
                (&rhs, &lhs)
            };
            match single(needle, sym)? {
                None => Vec::new(),
                Some(x) => vec![Item::Bool(contains_item(hay, x))],
            }
        }
        BinOp::Concat => {
            let a = single(&lhs, sym)?.map(as_text).unwrap_or_default();
            let b = single(&rhs, sym)?.map(as_text).unwrap_or_default();
            let mut s = a.unwrap_or_default().into_owned();
            s.push_str(&b.unwrap_or_default());
            vec![Item::Str(Cow::Owned(s))]
        }
        _ => {
            let (Some(a), Some(b)) = (single(&lhs, sym)?, single(&rhs, sym)?) else {
                return Ok(Vec::new());
            };
            arithmetic(op, a, b)?.into_iter().collect()
        }
    })
}

fn arithmetic<'a>(op: BinOp, a: &Item<'a>, b: &Item<'a>) -> Result<Option<Item<'a>>, EvalError> {
    let sym = op.symbol();
    Ok(match (prim(a), prim(b)) {
        (Prim::Nothing, _) | (_, Prim::Nothing) => None,
        (Prim::Int(x), Prim::Int(y)) => match op {
            BinOp::Add => x.checked_add(y).map(Item::Int),
            BinOp::Sub => x.checked_sub(y).map(Item::Int),
            BinOp::Mul => x.checked_mul(y).map(Item::Int),
            // `/` is Decimal division in FHIRPath; f64 is this evaluator's Decimal.
            BinOp::Div => (y != 0).then(|| Item::Dec(x as f64 / y as f64)),
            BinOp::IntDiv => x.checked_div(y).map(Item::Int),
            BinOp::Mod => x.checked_rem(y).map(Item::Int),
            _ => return Err(EvalError::Operands { op: sym }),
        },
        (x @ (Prim::Int(_) | Prim::Dec(_)), y @ (Prim::Int(_) | Prim::Dec(_))) => {
            let (Some(x), Some(y)) = (as_f64(x), as_f64(y)) else {
                return Ok(None);
            };
            match op {
                BinOp::Add => Some(Item::Dec(x + y)),
                BinOp::Sub => Some(Item::Dec(x - y)),
                BinOp::Mul => Some(Item::Dec(x * y)),
                BinOp::Div => (y != 0.0).then(|| Item::Dec(x / y)),
                BinOp::IntDiv => {
                    if y == 0.0 {
                        None
                    } else {
                        float_to_int((x / y).trunc()).map(Item::Int)
                    }
                }
                BinOp::Mod => (y != 0.0).then(|| Item::Dec(x % y)),
                _ => return Err(EvalError::Operands { op: sym }),
            }
            .filter(|i| !matches!(i, Item::Dec(d) if !d.is_finite()))
        }
        (Prim::Str(x), Prim::Str(y)) if op == BinOp::Add => {
            Some(Item::Str(Cow::Owned(format!("{x}{y}"))))
        }
        _ => return Err(EvalError::Operands { op: sym }),
    })
}

/// FHIRPath `=` on two items: `None` when the answer is unknown (dates of different
/// precision, a primitive with no value).
fn equal(a: &Item<'_>, b: &Item<'_>) -> Option<bool> {
    match (prim(a), prim(b)) {
        (Prim::Nothing, _) | (_, Prim::Nothing) => None,
        (Prim::Bool(x), Prim::Bool(y)) => Some(x == y),
        (Prim::Int(x), Prim::Int(y)) => Some(x == y),
        (x @ (Prim::Int(_) | Prim::Dec(_)), y @ (Prim::Int(_) | Prim::Dec(_))) => {
            Some(as_f64(x) == as_f64(y))
        }
        (Prim::Str(x), Prim::Str(y)) => Some(x == y),
        (Prim::Complex(x), Prim::Complex(y)) => Some(x == y),
        (x, y) => match temporal_pair(x, y) {
            Some((t, u)) => t.compare(&u).map(|o| o == Ordering::Equal),
            None => Some(false),
        },
    }
}

/// FHIRPath `~`: like `=`, but strings ignore case and surrounding or repeated whitespace, and
/// unknown is false.
fn equivalent(a: &Item<'_>, b: &Item<'_>) -> bool {
    match (prim(a), prim(b)) {
        (Prim::Nothing, Prim::Nothing) => true,
        (Prim::Str(x), Prim::Str(y)) => {
            let norm = |s: &str| {
                s.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase()
            };
            norm(x) == norm(y)
        }
        _ => equal(a, b) == Some(true),
    }
}

fn compare(a: &Item<'_>, b: &Item<'_>, op: &'static str) -> Result<Option<Ordering>, EvalError> {
    match (prim(a), prim(b)) {
        (Prim::Nothing, _) | (_, Prim::Nothing) => Ok(None),
        (Prim::Int(x), Prim::Int(y)) => Ok(Some(x.cmp(&y))),
        (x @ (Prim::Int(_) | Prim::Dec(_)), y @ (Prim::Int(_) | Prim::Dec(_))) => Ok(as_f64(x)
            .zip(as_f64(y))
            .and_then(|(x, y)| x.partial_cmp(&y))),
        (Prim::Str(x), Prim::Str(y)) => Ok(Some(x.cmp(y))),
        (x, y) => match temporal_pair(x, y) {
            Some((t, u)) => Ok(t.compare(&u)),
            None => Err(EvalError::Operands { op }),
        },
    }
}

/// Two values as dates/times, when at least one is a date or time and the other reads as one.
fn temporal_pair(x: Prim<'_>, y: Prim<'_>) -> Option<(Temporal, Temporal)> {
    let temporal = |p: Prim<'_>| match p {
        Prim::Date(s) | Prim::DateTime(s) => Temporal::parse_date_time(s),
        Prim::Time(s) => Temporal::parse_time(s),
        _ => None,
    };
    let as_like = |p: Prim<'_>, like: Prim<'_>| match (p, like) {
        (Prim::Str(s), Prim::Time(_)) => Temporal::parse_time(s),
        (Prim::Str(s), Prim::Date(_) | Prim::DateTime(_)) => Temporal::parse_date_time(s),
        _ => temporal(p),
    };
    Some((as_like(x, y)?, as_like(y, x)?))
}

/// A date, date-time or time, as fields to the precision it was written with.
struct Temporal {
    /// year, month, day, hour, minute, second, millisecond.
    fields: [i64; 7],
    /// Index of the first field written (0 for dates, 3 for times).
    first: usize,
    /// One past the last field written.
    last: usize,
    /// Offset from UTC in minutes.
    zone: Option<i64>,
}

impl Temporal {
    fn parse_date_time(s: &str) -> Option<Self> {
        let (date, time) = match s.split_once('T') {
            Some((d, t)) => (d, Some(t)),
            None => (s, None),
        };
        if !check_date(date) {
            return None;
        }
        let mut fields = [0i64; 7];
        let mut last = 0;
        for (slot, part) in fields.iter_mut().zip(date.split('-')) {
            *slot = part.parse().ok()?;
            last += 1;
        }
        let mut zone = None;
        if let Some(t) = time {
            let (t, z) = super::parse::split_zone(t);
            if !t.is_empty() {
                last = 3 + read_time(t, fields.get_mut(3..)?)?;
            }
            zone = match z {
                Some(z) => Some(parse_zone(z)?),
                None => None,
            };
        }
        Some(Self {
            fields,
            first: 0,
            last,
            zone,
        })
    }

    fn parse_time(s: &str) -> Option<Self> {
        let mut fields = [0i64; 7];
        let n = read_time(s.strip_prefix('T').unwrap_or(s), fields.get_mut(3..)?)?;
        Some(Self {
            fields,
            first: 3,
            last: 3 + n,
            zone: None,
        })
    }

    /// FHIRPath comparison: decided at the precision both have; `None` when equal there but
    /// one is more precise. Seconds and milliseconds are one precision.
    fn compare(&self, other: &Self) -> Option<Ordering> {
        if self.first != other.first {
            return None;
        }
        let (mut a, mut b) = (self.fields, other.fields);
        // Zones matter from the hour on, and only when both are known.
        if let (Some(za), Some(zb)) = (self.zone, other.zone)
            && self.last > 3
            && other.last > 3
            && za != zb
        {
            a = to_utc(a, za);
            b = to_utc(b, zb);
        }
        let precision = |last: usize| if last == 7 { 6 } else { last };
        let (pa, pb) = (precision(self.last), precision(other.last));
        let common = pa.min(pb).max(self.first);
        let end = if pa == pb { 7 } else { common };
        for (x, y) in a.iter().zip(&b).take(end).skip(self.first) {
            match x.cmp(y) {
                Ordering::Equal => {}
                o => return Some(o),
            }
        }
        (pa == pb).then_some(Ordering::Equal)
    }
}

/// Reads `HH[:MM[:SS[.fff]]]` into `out` (hour, minute, second, millisecond); returns the
/// number of fields written.
fn read_time(s: &str, out: &mut [i64]) -> Option<usize> {
    if !check_time(s) {
        return None;
    }
    let (hms, frac) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let mut n = 0;
    for (slot, part) in out.iter_mut().zip(hms.split(':')) {
        *slot = part.parse().ok()?;
        n += 1;
    }
    if let Some(f) = frac {
        // Milliseconds: the first three digits, padded.
        let ms: String = f.chars().chain("000".chars()).take(3).collect();
        *out.get_mut(3)? = ms.parse().ok()?;
        n = 4;
    }
    Some(n)
}

fn parse_zone(z: &str) -> Option<i64> {
    if z == "Z" {
        return Some(0);
    }
    let sign = if z.starts_with('-') { -1 } else { 1 };
    let (h, m) = z.get(1..)?.split_once(':')?;
    Some(sign * (h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?))
}

/// Shifts the fields by the zone offset (so both sides are UTC), carrying across days.
fn to_utc(f: [i64; 7], zone: i64) -> [i64; 7] {
    let [y, mo, d, h, mi, s, ms] = f;
    let minutes = days_from_civil(y, mo.max(1), d.max(1)) * 1440 + h * 60 + mi - zone;
    let days = minutes.div_euclid(1440);
    let rem = minutes.rem_euclid(1440);
    let (y, mo, d) = civil_from_days(days);
    [y, mo, d, rem / 60, rem % 60, s, ms]
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
