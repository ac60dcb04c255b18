//! Built-in CSV mappings: what each column of a known export is (Synthea's CSV export, the
//! OMOP CDM tables research uses most), so a multi-table export is de-identified as one data
//! set rather than guessed at column by column.
//!
//! A mapping is data (`data/csv-mappings/*.toml`), validated when first used (an unknown
//! treatment or a treated column that is not in its table is an error, checked by a unit test so
//! a bad edit fails the build's tests, not a run). It says *what* a column is; the profile still
//! says what is done with each kind (dates to the year or shifted, zips to three digits or
//! kept, surrogates or keyed pseudonyms, free text tagged or replaced).
//!
//! A file is matched to a table by its header alone, never by its name (an input file name may
//! hold PHI, and a renamed export is still the same table): the table whose column set is
//! closest to the header (Jaccard index over case-folded names) wins when the two share at
//! least [`MIN_SIMILARITY`] of their columns. Tables whose column sets tie are named in no
//! report (the first one's treatments apply: where Synthea's tables tie, as an older
//! `conditions` and `allergies` do, their columns are treated alike).
//!
//! Treatments: `keep`; `key[:namespace]` a record key, replaced by a surrogate of the same
//! shape, the same for the same value in every file of the run (namespace `id` unless named);
//! `patient-key[:namespace]` a key that is also the row's patient (its date offset, its
//! identifiers for the text engine); `date`, `birth-date` (the birth-year cap), `date-part` (a
//! month, a day or a time alone: kept only when the profile keeps dates); `name`, `id`, `phone`,
//! `email`, `street`, `geo`, `place` (removed, their values checked for in the output); `city`,
//! `county`, `zip` (the profile's geography policy); `age` (the age cap); `text` (the free-text
//! engine).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::leak::LeakKind;

/// The least share of columns (Jaccard index) a header must share with a table's column set to
/// be recognised as that table: a header missing or adding a few columns (another exporter
/// version) is still the table; a header that happens to share `PATIENT` and `DATE` is not.
pub(crate) const MIN_SIMILARITY: f64 = 0.6;

/// The mapping files shipped with the engine.
const BUILTIN: &[(&str, &str)] = &[
    ("synthea", include_str!("../data/csv-mappings/synthea.toml")),
    (
        "omop-cdm",
        include_str!("../data/csv-mappings/omop-cdm.toml"),
    ),
];

/// What a column is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Treat {
    /// Not identifying.
    Keep,
    /// A record key: a surrogate of the same shape, per namespace.
    Key {
        /// The surrogate namespace (`id`, `omop`, `mrn`, `npi`...).
        namespace: String,
        /// Whether it is also the row's patient.
        patient: bool,
    },
    /// A date or date-time (`birth`: the birth-year cap applies).
    Date {
        /// A birth date.
        birth: bool,
    },
    /// A month, day or time alone: kept only where the profile keeps dates.
    DatePart,
    /// A direct identifier, removed.
    Drop(LeakKind),
    /// A place written as text (a birthplace): removed.
    Place,
    /// A city or county: the profile's city policy.
    City,
    /// A postal code: the profile's zip policy.
    Zip,
    /// An age: the profile's age cap.
    Age,
    /// Free text: the text engine.
    Text,
}

impl Treat {
    fn parse(s: &str) -> Result<Treat, String> {
        let (head, ns) = match s.split_once(':') {
            Some((h, n)) => (h, Some(n)),
            None => (s, None),
        };
        if let Some(n) = ns
            && (n.is_empty() || !n.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        {
            return Err(format!("invalid namespace in `{s}`"));
        }
        let key = |patient| Treat::Key {
            namespace: ns.unwrap_or("id").to_owned(),
            patient,
        };
        let plain = |t: Treat| {
            if ns.is_some() {
                Err(format!("`{head}` takes no namespace"))
            } else {
                Ok(t)
            }
        };
        match head {
            "key" => Ok(key(false)),
            "patient-key" => Ok(key(true)),
            "keep" => plain(Treat::Keep),
            "date" => plain(Treat::Date { birth: false }),
            "birth-date" => plain(Treat::Date { birth: true }),
            "date-part" => plain(Treat::DatePart),
            "name" => plain(Treat::Drop(LeakKind::Name)),
            "id" => plain(Treat::Drop(LeakKind::Id)),
            "phone" => plain(Treat::Drop(LeakKind::Phone)),
            "email" => plain(Treat::Drop(LeakKind::Email)),
            "street" => plain(Treat::Drop(LeakKind::Street)),
            "geo" => plain(Treat::Drop(LeakKind::Geo)),
            "place" => plain(Treat::Place),
            "city" | "county" => plain(Treat::City),
            "zip" => plain(Treat::Zip),
            "age" => plain(Treat::Age),
            "text" => plain(Treat::Text),
            _ => Err(format!("unknown treatment `{s}`")),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    schema: String,
    /// Where the column sets come from: required (every mapping must say), read by people.
    #[serde(rename = "source")]
    _source: String,
    #[serde(default)]
    columns: BTreeMap<String, String>,
    table: Vec<TableFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    name: String,
    columns: Vec<String>,
    /// Columns of older versions of the table: treated, not used to recognise it.
    #[serde(default)]
    legacy: Vec<String>,
    #[serde(default)]
    treat: BTreeMap<String, String>,
    /// The export's table of people (one row per patient): the one a profile's
    /// quasi-identifiers must be found in.
    #[serde(default)]
    person: bool,
}

/// One table of a mapping.
#[derive(Debug)]
pub(crate) struct Table {
    /// `schema/table`, for reports.
    pub id: String,
    /// Its columns, case-folded.
    columns: Vec<String>,
    /// Column (case-folded) → treatment: the table's own, then the schema's.
    treat: BTreeMap<String, Treat>,
    /// Whether it is the export's table of people (see `TableFile::person`).
    pub person: bool,
}

impl Table {
    /// The treatment of a column (matched case-insensitively, surrounding spaces ignored).
    pub fn treatment(&self, column: &str) -> Option<&Treat> {
        self.treat.get(&fold(column))
    }
}

/// Every built-in mapping, compiled.
#[derive(Debug)]
pub(crate) struct Mappings {
    tables: Vec<Table>,
}

/// A mapping file that failed validation (a defect of the shipped data: the unit tests load
/// every one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MappingError {
    pub mapping: &'static str,
    pub reason: String,
}

fn fold(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

impl Mappings {
    /// The built-in mappings (compiled once). `None` if one failed validation, which the unit
    /// tests rule out; the CSV path then classifies every column by name and content, which
    /// removes what looks identifying and never passes a mapped key through unchanged unless
    /// its values look like plain data.
    pub fn builtin() -> Option<&'static Mappings> {
        static M: OnceLock<Result<Mappings, MappingError>> = OnceLock::new();
        M.get_or_init(Mappings::compile).as_ref().ok()
    }

    fn compile() -> Result<Mappings, MappingError> {
        let mut tables = Vec::new();
        for (name, text) in BUILTIN {
            let err = |reason: String| MappingError {
                mapping: name,
                reason,
            };
            let file: MappingFile =
                toml::from_str(text).map_err(|e| err(e.message().to_owned()))?;
            let mut defaults = BTreeMap::new();
            for (c, t) in &file.columns {
                let t = Treat::parse(t).map_err(|e| err(format!("column `{c}`: {e}")))?;
                defaults.insert(fold(c), t);
            }
            for t in &file.table {
                let columns: Vec<String> = t.columns.iter().map(|c| fold(c)).collect();
                let mut treat = BTreeMap::new();
                for (c, s) in &t.treat {
                    let f = fold(c);
                    if !columns.contains(&f) && !t.legacy.iter().any(|l| fold(l) == f) {
                        return Err(err(format!(
                            "table `{}`: treated column `{c}` is not one of its columns",
                            t.name
                        )));
                    }
                    let tr = Treat::parse(s)
                        .map_err(|e| err(format!("table `{}`, column `{c}`: {e}", t.name)))?;
                    treat.insert(f, tr);
                }
                for c in columns.iter().chain(t.legacy.iter()) {
                    let f = fold(c);
                    if !treat.contains_key(&f)
                        && let Some(d) = defaults.get(&f)
                    {
                        treat.insert(f, d.clone());
                    }
                }
                tables.push(Table {
                    id: format!("{}/{}", file.schema, t.name),
                    columns,
                    treat,
                    person: t.person,
                });
            }
        }
        Ok(Mappings { tables })
    }

    /// The table a header is, if any: the closest column set (see the module docs), and whether
    /// it is the only table that close.
    pub fn identify(&self, headers: &[String]) -> Option<(&Table, bool)> {
        let h: Vec<String> = headers.iter().map(|c| fold(c)).collect();
        let mut best: Option<(&Table, f64, bool)> = None;
        for t in &self.tables {
            let common = t.columns.iter().filter(|c| h.contains(c)).count();
            let union = t.columns.len() + h.iter().filter(|c| !t.columns.contains(c)).count();
            if union == 0 {
                continue;
            }
            let score = common as f64 / union as f64;
            match &mut best {
                Some((_, s, unique)) if (score - *s).abs() < f64::EPSILON => *unique = false,
                Some((_, s, _)) if score < *s => {}
                _ => best = Some((t, score, true)),
            }
        }
        best.filter(|(_, s, _)| *s >= MIN_SIMILARITY)
            .map(|(t, _, unique)| (t, unique))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(s: &str) -> Vec<String> {
        s.split(',').map(str::to_owned).collect()
    }

    #[test]
    fn builtin_mappings_are_valid() {
        let m = Mappings::compile().unwrap_or_else(|e| panic!("{e:?}"));
        assert!(m.tables.len() >= 28, "{}", m.tables.len());
        // Every column of every table has a treatment: nothing in a known export is left to
        // guessing.
        for t in &m.tables {
            for c in &t.columns {
                assert!(t.treat.contains_key(c), "{}: `{c}` has no treatment", t.id);
            }
        }
    }

    #[test]
    fn tables_are_recognised_by_header_alone() {
        let m = Mappings::builtin().unwrap();
        let (t, unique) = m
            .identify(&cols(
                "Id,BIRTHDATE,DEATHDATE,SSN,DRIVERS,PASSPORT,PREFIX,FIRST,LAST,SUFFIX,MAIDEN,\
                 MARITAL,RACE,ETHNICITY,GENDER,BIRTHPLACE,ADDRESS,CITY,STATE,COUNTY,ZIP,LAT,LON,\
                 HEALTHCARE_EXPENSES,HEALTHCARE_COVERAGE",
            ))
            .unwrap();
        assert_eq!((t.id.as_str(), unique), ("synthea/patients", true));
        assert!(t.person);
        assert_eq!(
            t.treatment("drivers"),
            Some(&Treat::Drop(LeakKind::Id)),
            "case-insensitive"
        );
        let (t, _) = m
            .identify(&cols("person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth,birth_datetime,race_concept_id,ethnicity_concept_id,location_id,provider_id,care_site_id,person_source_value,gender_source_value,gender_source_concept_id,race_source_value,race_source_concept_id,ethnicity_source_value,ethnicity_source_concept_id"))
            .unwrap();
        assert_eq!(t.id, "omop-cdm/person");
        assert!(t.person);
        assert_eq!(
            t.treatment("person_id"),
            Some(&Treat::Key {
                namespace: "omop".into(),
                patient: true
            })
        );
        // Synthea 2.x's conditions and allergies have the same columns: recognised, not named.
        let (t, unique) = m
            .identify(&cols("START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION"))
            .unwrap();
        assert!(!unique, "{}", t.id);
        assert!(!t.person);
        // Exactly one table of people per export.
        for schema in ["synthea/", "omop-cdm/"] {
            let people: Vec<&str> = m
                .tables
                .iter()
                .filter(|t| t.id.starts_with(schema) && t.person)
                .map(|t| t.id.as_str())
                .collect();
            assert_eq!(people.len(), 1, "{people:?}");
        }
        assert!(m.identify(&cols("PATIENT,DATE,score,notes")).is_none());
        assert!(m.identify(&[]).is_none());
    }

    #[test]
    fn treatments_parse_strictly() {
        assert_eq!(
            Treat::parse("key:npi"),
            Ok(Treat::Key {
                namespace: "npi".into(),
                patient: false
            })
        );
        assert!(Treat::parse("obliterate").is_err());
        assert!(Treat::parse("keep:x").is_err());
        assert!(Treat::parse("key:").is_err());
        assert!(Treat::parse("key:Bad").is_err());
    }
}
