//! What a model accepts: named features, each numeric with an allowed range or categorical with
//! allowed categories. The signature turns records into the model's input vector (one-hot for
//! linear models, ordinal codes for trees) and refuses inputs that break it. Refusals name the
//! field and the rule, never the value offered.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::codec::{Reader, Writer};
use crate::error::ModelsError;
use crate::table::Column;

/// How a feature's values are constrained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FeatureKind {
    /// A finite number in `[min, max]`.
    Numeric {
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
    /// One of a fixed, sorted, duplicate-free set of categories.
    Categorical {
        /// The allowed categories, sorted by byte order.
        categories: Vec<String>,
    },
}

/// One named input of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    /// The field name (the table column it was trained from).
    pub name: String,
    /// Its constraint.
    pub kind: FeatureKind,
}

/// How categorical features become numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// One indicator column per category (linear models).
    OneHot,
    /// The category's index in the sorted category list (trees).
    Ordinal,
}

/// How a feature column should be typed when a signature is inferred from a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureSpec {
    /// Numeric if every cell parses as a finite number, categorical otherwise.
    Auto(String),
    /// Numeric: every cell must parse as a finite number.
    Numeric(String),
    /// Categorical, even when the cells look like numbers (codes such as `admission_type_id`).
    Categorical(String),
}

impl FeatureSpec {
    /// The column name.
    pub fn name(&self) -> &str {
        match self {
            FeatureSpec::Auto(n) | FeatureSpec::Numeric(n) | FeatureSpec::Categorical(n) => n,
        }
    }
}

impl From<&str> for FeatureSpec {
    fn from(s: &str) -> Self {
        FeatureSpec::Auto(s.to_owned())
    }
}

/// One input value of a prediction request.
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Value {
    /// A number.
    Number(f64),
    /// Text: a category.
    Text(String),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be patient data: show the variant only.
        match self {
            Value::Number(_) => f.write_str("Value::Number(..)"),
            Value::Text(_) => f.write_str("Value::Text(..)"),
        }
    }
}

/// A prediction request: feature name to value.
pub type Record = BTreeMap<String, Value>;

/// The ordered features a model takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Features, in the order of the encoded input.
    pub features: Vec<Feature>,
}

impl Signature {
    /// Infer a signature from table columns: numeric features get the observed range,
    /// categorical ones the observed categories.
    pub fn infer(columns: &[(&FeatureSpec, &Column)]) -> Result<Self, ModelsError> {
        let mut features = Vec::with_capacity(columns.len());
        for (spec, col) in columns {
            let numeric = match spec {
                FeatureSpec::Categorical(_) => None,
                FeatureSpec::Numeric(_) => Some(numeric_range(col)?),
                FeatureSpec::Auto(_) => numeric_range(col).ok(),
            };
            let kind = match numeric {
                Some((min, max)) => FeatureKind::Numeric { min, max },
                None => {
                    let mut categories: Vec<String> = col.cells().to_vec();
                    categories.sort_unstable();
                    categories.dedup();
                    FeatureKind::Categorical { categories }
                }
            };
            features.push(Feature {
                name: col.name().to_owned(),
                kind,
            });
        }
        Ok(Signature { features })
    }

    /// Check the structural rules a signature from outside (JSON, a registry) must meet:
    /// unique names, finite ordered ranges, sorted unique categories. Inferred signatures meet
    /// them by construction; [`crate::TrainedModel::new`] checks every signature it is given.
    pub fn validate(&self) -> Result<(), ModelsError> {
        for (i, f) in self.features.iter().enumerate() {
            let bad = |rule| {
                Err(ModelsError::InvalidSignature {
                    field: f.name.clone(),
                    rule,
                })
            };
            if self.features.iter().take(i).any(|g| g.name == f.name) {
                return bad("name appears more than once");
            }
            match &f.kind {
                FeatureKind::Numeric { min, max } => {
                    if !(min.is_finite() && max.is_finite() && min <= max) {
                        return bad("range must be finite with min <= max");
                    }
                }
                FeatureKind::Categorical { categories } => {
                    if categories.windows(2).any(|w| w.first() >= w.get(1)) {
                        return bad("categories must be sorted and unique");
                    }
                }
            }
        }
        Ok(())
    }

    /// Length of the encoded input vector.
    pub fn width(&self, encoding: Encoding) -> usize {
        self.features
            .iter()
            .map(|f| match (&f.kind, encoding) {
                (FeatureKind::Categorical { categories }, Encoding::OneHot) => categories.len(),
                _ => 1,
            })
            .sum()
    }

    /// Names of the encoded input columns (`name=category` for indicators).
    pub fn encoded_names(&self, encoding: Encoding) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.features {
            match (&f.kind, encoding) {
                (FeatureKind::Categorical { categories }, Encoding::OneHot) => {
                    out.extend(categories.iter().map(|c| format!("{}={c}", f.name)));
                }
                _ => out.push(f.name.clone()),
            }
        }
        out
    }

    /// Validate a record and encode it. Every feature must be present and valid; unknown fields
    /// are refused.
    pub fn encode(&self, record: &Record, encoding: Encoding) -> Result<Vec<f64>, ModelsError> {
        if let Some(extra) = record
            .keys()
            .find(|k| !self.features.iter().any(|f| &f.name == *k))
        {
            return Err(ModelsError::UnknownField {
                field: extra.clone(),
            });
        }
        let mut out = Vec::with_capacity(self.width(encoding));
        for f in &self.features {
            let v = record
                .get(&f.name)
                .ok_or_else(|| ModelsError::MissingField {
                    field: f.name.clone(),
                })?;
            match (&f.kind, v) {
                (FeatureKind::Numeric { min, max }, Value::Number(x)) => {
                    out.push(check_range(&f.name, *x, *min, *max)?);
                }
                (FeatureKind::Numeric { .. }, Value::Text(_)) => {
                    return Err(ModelsError::WrongType {
                        field: f.name.clone(),
                        expected: "a finite number",
                    });
                }
                (FeatureKind::Categorical { categories }, v) => {
                    let idx = match v {
                        Value::Text(s) => categories.binary_search(s).ok(),
                        // Numeric codes may arrive as JSON numbers; only whole numbers match.
                        Value::Number(x) if x.is_finite() && x.fract() == 0.0 => {
                            categories.binary_search(&format!("{x:.0}")).ok()
                        }
                        Value::Number(_) => {
                            return Err(ModelsError::WrongType {
                                field: f.name.clone(),
                                expected: "a category",
                            });
                        }
                    };
                    let idx = idx.ok_or_else(|| ModelsError::UnknownCategory {
                        field: f.name.clone(),
                    })?;
                    push_category(&mut out, idx, categories.len(), encoding);
                }
            }
        }
        Ok(out)
    }

    /// Encode the rows `rows` of table columns (in signature order) into a row-major matrix.
    pub(crate) fn encode_columns(
        &self,
        columns: &[&Column],
        rows: &[usize],
        encoding: Encoding,
    ) -> Result<Vec<f64>, ModelsError> {
        let width = self.width(encoding);
        let mut out = Vec::with_capacity(width.saturating_mul(rows.len()));
        for &r in rows {
            for (f, col) in self.features.iter().zip(columns) {
                let cell = col
                    .cells()
                    .get(r)
                    .ok_or_else(|| ModelsError::MissingColumn {
                        column: f.name.clone(),
                    })?;
                match &f.kind {
                    FeatureKind::Numeric { min, max } => {
                        let x = parse_finite(cell).ok_or_else(|| ModelsError::NotNumeric {
                            column: f.name.clone(),
                            row: r,
                        })?;
                        out.push(check_range(&f.name, x, *min, *max)?);
                    }
                    FeatureKind::Categorical { categories } => {
                        let idx = categories.binary_search(cell).map_err(|_| {
                            ModelsError::UnknownCategory {
                                field: f.name.clone(),
                            }
                        })?;
                        push_category(&mut out, idx, categories.len(), encoding);
                    }
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.len(self.features.len());
        for f in &self.features {
            w.str(&f.name);
            match &f.kind {
                FeatureKind::Numeric { min, max } => {
                    w.u8(0);
                    w.f64(*min);
                    w.f64(*max);
                }
                FeatureKind::Categorical { categories } => {
                    w.u8(1);
                    w.len(categories.len());
                    for c in categories {
                        w.str(c);
                    }
                }
            }
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, ModelsError> {
        let n = r.len(5)?;
        let mut features: Vec<Feature> = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.str()?;
            if features.iter().any(|f| f.name == name) {
                return Err(r.err("duplicate feature name"));
            }
            let kind = match r.u8()? {
                0 => {
                    let (min, max) = (r.f64()?, r.f64()?);
                    if min > max {
                        return Err(r.err("range with min above max"));
                    }
                    FeatureKind::Numeric { min, max }
                }
                1 => {
                    let k = r.len(4)?;
                    let categories = (0..k).map(|_| r.str()).collect::<Result<Vec<_>, _>>()?;
                    if categories.windows(2).any(|w| w.first() >= w.get(1)) {
                        return Err(r.err("categories not sorted and unique"));
                    }
                    FeatureKind::Categorical { categories }
                }
                _ => return Err(r.err("unknown feature kind")),
            };
            features.push(Feature { name, kind });
        }
        Ok(Signature { features })
    }
}

/// A number, or a top-coded bin such as Safe Harbor's `90+` ("90 or older"), read as its lower
/// bound: an age capped by de-identification stays a numeric feature instead of turning the
/// whole column categorical.
fn parse_finite(s: &str) -> Option<f64> {
    let s = s.trim();
    let s = s.strip_suffix('+').unwrap_or(s);
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

fn numeric_range(col: &Column) -> Result<(f64, f64), ModelsError> {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for (row, cell) in col.cells().iter().enumerate() {
        let x = parse_finite(cell).ok_or_else(|| ModelsError::NotNumeric {
            column: col.name().to_owned(),
            row,
        })?;
        lo = lo.min(x);
        hi = hi.max(x);
    }
    if lo > hi {
        return Err(ModelsError::TooFewRows { rows: 0, needed: 1 });
    }
    Ok((lo, hi))
}

fn check_range(field: &str, x: f64, min: f64, max: f64) -> Result<f64, ModelsError> {
    if !x.is_finite() {
        return Err(ModelsError::WrongType {
            field: field.to_owned(),
            expected: "a finite number",
        });
    }
    if x < min || x > max {
        return Err(ModelsError::OutOfRange {
            field: field.to_owned(),
            min,
            max,
        });
    }
    // Canonical zero so that -0.0 and 0.0 encode alike.
    Ok(if x == 0.0 { 0.0 } else { x })
}

fn push_category(out: &mut Vec<f64>, idx: usize, n: usize, encoding: Encoding) {
    match encoding {
        Encoding::OneHot => out.extend((0..n).map(|i| if i == idx { 1.0 } else { 0.0 })),
        Encoding::Ordinal => out.push(idx as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Table;

    fn sig() -> Signature {
        let t = Table::from_columns(vec![
            ("age".into(), vec!["40".into(), "71".into(), "55".into()]),
            ("sex".into(), vec!["M".into(), "F".into(), "M".into()]),
            ("adm".into(), vec!["1".into(), "3".into(), "1".into()]),
        ])
        .unwrap();
        let specs = [
            FeatureSpec::from("age"),
            FeatureSpec::from("sex"),
            FeatureSpec::Categorical("adm".into()),
        ];
        let cols: Vec<_> = specs
            .iter()
            .map(|s| (s, t.column(s.name()).unwrap()))
            .collect();
        Signature::infer(&cols).unwrap()
    }

    fn rec(pairs: &[(&str, Value)]) -> Record {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn a_top_coded_age_stays_numeric() {
        // Safe Harbor aggregates ages over 89 into one bin, written `90+`.
        let t = Table::from_columns(vec![(
            "age".into(),
            vec!["40".into(), "90+".into(), "71".into()],
        )])
        .unwrap();
        let spec = FeatureSpec::from("age");
        let s = Signature::infer(&[(&spec, t.column("age").unwrap())]).unwrap();
        assert_eq!(
            s.features[0].kind,
            FeatureKind::Numeric {
                min: 40.0,
                max: 90.0
            }
        );
        // A `+` anywhere else is not a number.
        assert_eq!(parse_finite("+"), None);
        assert_eq!(parse_finite("9+0"), None);
    }

    #[test]
    fn infers_and_encodes() {
        let s = sig();
        assert_eq!(
            s.features[0].kind,
            FeatureKind::Numeric {
                min: 40.0,
                max: 71.0
            }
        );
        assert_eq!(s.width(Encoding::OneHot), 5);
        assert_eq!(s.width(Encoding::Ordinal), 3);
        assert_eq!(
            s.encoded_names(Encoding::OneHot),
            ["age", "sex=F", "sex=M", "adm=1", "adm=3"]
        );
        let r = rec(&[
            ("age", Value::Number(60.0)),
            ("sex", Value::Text("M".into())),
            ("adm", Value::Number(3.0)),
        ]);
        assert_eq!(
            s.encode(&r, Encoding::OneHot).unwrap(),
            [60.0, 0.0, 1.0, 0.0, 1.0]
        );
        assert_eq!(s.encode(&r, Encoding::Ordinal).unwrap(), [60.0, 1.0, 1.0]);
    }

    #[test]
    fn refusals_name_the_field_and_rule_never_the_value() {
        let s = sig();
        let base = [
            ("age", Value::Number(60.0)),
            ("sex", Value::Text("M".into())),
            ("adm", Value::Text("1".into())),
        ];
        let cases = [
            (
                ("age", Value::Number(123_456.0)),
                "outside the allowed range",
            ),
            (
                ("age", Value::Text("sixty-one-secret".into())),
                "expected a finite number",
            ),
            (("age", Value::Number(f64::NAN)), "expected a finite number"),
            (
                ("sex", Value::Text("Zebra-secret".into())),
                "not one of the allowed",
            ),
            (("adm", Value::Number(2.5)), "expected a category"),
        ];
        for ((field, bad), rule) in cases {
            let mut r = rec(&base);
            r.insert(field.into(), bad);
            let msg = s.encode(&r, Encoding::OneHot).unwrap_err().to_string();
            assert!(msg.contains(&format!("`{field}`")), "{msg}");
            assert!(msg.contains(rule), "{msg}");
            assert!(!msg.contains("secret") && !msg.contains("123456"), "{msg}");
        }
        let mut r = rec(&base);
        r.remove("sex");
        assert_eq!(
            s.encode(&r, Encoding::OneHot).unwrap_err(),
            ModelsError::MissingField {
                field: "sex".into()
            }
        );
        let mut r = rec(&base);
        r.insert("zip".into(), Value::Text("x".into()));
        assert_eq!(
            s.encode(&r, Encoding::OneHot).unwrap_err(),
            ModelsError::UnknownField {
                field: "zip".into()
            }
        );
        assert_eq!(
            format!("{:?}", Value::Text("secret".into())),
            "Value::Text(..)"
        );
    }

    #[test]
    fn bytes_round_trip() {
        let s = sig();
        let mut w = Writer::new();
        s.write(&mut w);
        let b = w.finish();
        let mut r = Reader::new(&b);
        assert_eq!(Signature::read(&mut r).unwrap(), s);
        r.expect_end().unwrap();
    }

    #[test]
    fn json_is_strict() {
        let s = sig();
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Signature>(&j).unwrap(), s);
        assert!(serde_json::from_str::<Signature>(r#"{"features":[],"x":1}"#).is_err());
    }
}
