#![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]
//! Hostile input never panics: arbitrary path text, arbitrary ViewDefinitions built from view
//! elements, arbitrary input text. (The fuzz targets go further; these run with the tests.)

use airlock_views::fhirpath::Expression;
use airlock_views::{View, read_resources, run};
use proptest::prelude::*;
use serde_json::{Value, json};

fn resource() -> Value {
    json!({
        "resourceType": "Patient", "id": "p", "active": true, "birthDate": "1970-01-02",
        "_birthDate": {"extension": [{"url": "u", "valueString": "x"}]},
        "name": [{"use": "official", "family": "F", "given": ["A", "B"]}, {"given": [null, "C"], "_given": [{"id": "x"}, null]}],
        "valueQuantity": {"value": 1.5, "unit": "kg"}, "deceasedBoolean": false,
        "extension": [{"url": "u", "valueInteger": 3}],
        "link": [{"other": {"reference": "Patient/q"}}]
    })
}

/// Paths shaped by the grammar (names, literals, calls, operators), so that most parse and
/// evaluation is exercised, with an occasional broken fragment.
fn path() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(vec![
        "name",
        "given",
        "family",
        "use",
        "value",
        "birthDate",
        "id",
        "link",
        "other",
        "extension",
        "url",
        "deceased",
        "$this",
        "$index",
        "%resource",
        "%rowIndex",
        "%context",
        "'x'",
        "'A'",
        "1",
        "0",
        "-2",
        "2.5",
        "@2020-01",
        "@1970-01-02",
        "@2020-01-01T10:00Z",
        "@T10:00",
        "true",
        "false",
        "{}",
        "Patient",
        "`use`",
    ])
    .prop_map(str::to_owned);
    leaf.prop_recursive(5, 64, 3, |inner| {
        let name = prop::sample::select(vec![
            "name",
            "given",
            "family",
            "value",
            "unit",
            "id",
            "extension",
            "reference",
        ]);
        let func0 = prop::sample::select(vec![
            "first()",
            "last()",
            "tail()",
            "count()",
            "empty()",
            "exists()",
            "not()",
            "distinct()",
            "isDistinct()",
            "single()",
            "hasValue()",
            "toString()",
            "toInteger()",
            "toDecimal()",
            "toBoolean()",
            "lower()",
            "upper()",
            "length()",
            "trim()",
            "toChars()",
            "abs()",
            "ceiling()",
            "floor()",
            "round()",
            "truncate()",
            "lowBoundary()",
            "highBoundary()",
            "getResourceKey()",
            "getReferenceKey()",
            "getReferenceKey(Patient)",
            "ofType(Quantity)",
            "ofType(string)",
            "ofType(boolean)",
            "is(integer)",
            "as(decimal)",
            "join()",
            "allTrue()",
            "anyFalse()",
        ]);
        let func1 = prop::sample::select(vec![
            "where",
            "exists",
            "select",
            "all",
            "skip",
            "take",
            "union",
            "combine",
            "intersect",
            "exclude",
            "join",
            "startsWith",
            "endsWith",
            "contains",
            "indexOf",
            "split",
            "substring",
            "extension",
            "lowBoundary",
            "round",
            "trace",
        ]);
        let op = prop::sample::select(vec![
            "=", "!=", "~", "!~", "<", "<=", ">", ">=", "and", "or", "xor", "implies", "+", "-",
            "*", "/", "div", "mod", "&", "|", "in", "contains",
        ]);
        let broken = prop::sample::select(vec!["(", ")", ".", "[", "'", "@", "%", ",", "`"]);
        prop_oneof![
            (inner.clone(), name).prop_map(|(a, n)| format!("{a}.{n}")),
            (inner.clone(), func0).prop_map(|(a, f)| format!("{a}.{f}")),
            (inner.clone(), func1, inner.clone()).prop_map(|(a, f, b)| format!("{a}.{f}({b})")),
            (inner.clone(), op, inner.clone()).prop_map(|(a, o, b)| format!("{a} {o} {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}[{b}]")),
            inner.clone().prop_map(|a| format!("({a})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(a, b, c)| format!("iif({a}, {b}, {c})")),
            (inner.clone(), prop::sample::select(vec!["is", "as"]))
                .prop_map(|(a, k)| format!("{a} {k} string")),
            (inner, broken).prop_map(|(a, b)| format!("{a}{b}")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn paths_never_panic(p in path()) {
        if let Ok(e) = Expression::parse(&p) {
            let _ = e.evaluate(&resource());
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_parser(p in "\\PC{0,64}") {
        let _ = Expression::parse(&p);
    }

    #[test]
    fn arbitrary_input_never_panics_the_reader(text in "[\\[\\]{}\":,a-z0-9 \\n]{0,80}") {
        for r in read_resources(&text).take(100) {
            let _ = r;
        }
    }

    #[test]
    fn generated_views_never_panic(
        for_each in prop::option::of(path()),
        col in path(),
        filter in prop::option::of(path()),
        union in any::<bool>(),
    ) {
        let mut select = json!({"column": [{"name": "c", "path": col, "type": "string"}]});
        if let Some(f) = for_each {
            select["forEachOrNull"] = json!(f);
        }
        if union {
            select = json!({"unionAll": [select.clone(), select]});
        }
        let mut view = json!({"resource": "Patient", "select": [select]});
        if let Some(w) = filter {
            view["where"] = json!([{"path": w}]);
        }
        if let Ok(v) = View::from_json(&view) {
            let _ = run(&v, [resource()]);
        }
    }
}
