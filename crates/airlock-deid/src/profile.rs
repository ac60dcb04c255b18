//! Profiles: declarative TOML rule files, validated when loaded.
//!
//! # File format
//! ```toml
//! name = "my-profile"
//! description = "..."
//! classification = "deidentified"     # or "limited-data-set"
//! pseudonyms = "surrogate"            # "surrogate" (random + crosswalk) or "hmac" (keyed)
//! dates = "year"                      # default for dates no rule covers: year|shift|keep|redact
//! date_shift_days = 365               # range of the per-patient offset for `dateShift`
//! age_cap = 89                        # ages above → "90 or older"
//! free_text = "tag"                   # strings no rule covers: tag|mask|surrogate|redact|keep
//! zip = "zip3"                        # postal codes no rule covers: zip3|keep|redact
//! restricted_zip3 = "census-2000"     # a list in data/restricted-zip3.toml
//! keep_city = false                   # limited data sets may keep the city
//! leak_check = "fail"                 # fail|warn (warn: file mode only; the gate refuses)
//! basis = "expert-determination"      # safe-harbor|expert-determination|limited-data-set;
//!                                     # default from classification. Expert determination:
//!                                     # the gate releases only under a signed determination
//!
//! [rare_codes]                        # optional: codes seen in < K patients → parent
//! min_patients = 5
//!
//! [k_anonymity]                       # optional, CSV: enforce k on these columns
//! k = 5
//! quasi_identifiers = ["race", "gender", "age"]
//! sensitive = "readmitted"
//! max_suppression = 0.05
//!
//! [[fhir]]                            # rules by FHIR path, first match wins
//! path = "Patient.extension('patient-mothersMaidenName')"
//! method = "redact"
//!
//! [[hl7]]                             # rules by segment-field
//! field = "PID-8"
//! method = "keep"
//!
//! [[csv]]                             # rules by column name (case-insensitive)
//! column = "patient_nbr"
//! method = "pseudonym"
//! patient_key = true
//! ```
//!
//! # Methods
//! `redact`, `keep`, `pseudonym` (per the profile's `pseudonyms` scheme), `cryptoHash`
//! (HMAC-SHA256 hex of the value, as the Microsoft anonymizer), `dateShift` (per-patient keyed
//! offset; `variant = "microsoft"` for its per-resource offset), `yearOnly`, `zip3`, `ageCap`,
//! `generalize` (`width = 10` numeric bins, or `hierarchy = "icd10" | "icd9" | "snomed"`),
//! `perturb` (`span`, `proportional`, `round_to`), `substitute` (`fake = "name"|...` or
//! `value = "..."`), `text` (the free-text engine).
//!
//! # FHIR paths
//! A simple subset of FHIRPath, evaluated on the JSON tree: `[Type.]step(.step)*` where `Type`
//! is a resource type or `Resource` (any), and a step is an element name (a choice element
//! `value` matches `valueQuantity`, `valueString`...) or `extension('url or url suffix')`;
//! or `[Type.]nodesByType('T')[.step...]` where `T` is a FHIR data type, inferred from the
//! element name and shape (`name` holding `family`/`given` is a `HumanName`, `telecom` a
//! `ContactPoint`, an object with `reference` a `Reference`, a string shaped like a date a
//! `date`/`dateTime`...). A rule on an element applies to everything under it, except where an
//! earlier rule matches a descendant (so `nodesByType('HumanName').use: keep` before
//! `nodesByType('HumanName'): redact` keeps `use`). `where(...)`, `as`, and other FHIRPath
//! functions are not supported and are rejected at load time.
//!
//! # HL7 fields
//! `SEG-n` (`PID-5`), optionally `SEG-n.c` for one component (`PID-11.5`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::DeidError;
use crate::fhir_types::{DATA_TYPES, is_resource_type};
use crate::values::{FakeKind, ZipList, zip_list};

/// Names of the built-in profiles.
pub const BUILTIN_PROFILES: &[&str] = &["safe-harbor", "expert-determination", "limited-data-set"];

/// How identifiers are replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PseudonymScheme {
    /// Random surrogates recorded in the [`crate::Crosswalk`] (164.514(c): not derived from the
    /// individual's information). The `safe-harbor` scheme.
    Surrogate,
    /// Keyed HMAC-SHA256: stable across runs with the same key, re-linkable only with the key.
    /// Derived from the identifier, so for `expert-determination`, not Safe Harbor.
    Hmac,
}

/// The output classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OutputClass {
    /// De-identified data, may go to development.
    #[default]
    Deidentified,
    /// A limited data set (164.514(e)): still PHI, stays out of development.
    LimitedDataSet,
}

/// Default handling of dates no rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatePolicy {
    /// Keep the year (birth years implying > 89 capped).
    Year,
    /// Shift by the patient's keyed offset.
    Shift,
    /// Keep unchanged.
    Keep,
    /// Remove.
    Redact,
}

/// Default handling of free text no rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextPolicy {
    /// The text engine, identifiers replaced by `[TAG]`.
    Tag,
    /// The text engine, identifiers masked with `*`.
    Mask,
    /// The text engine, identifiers replaced by consistent fakes (dates shifted).
    Surrogate,
    /// Remove the text.
    Redact,
    /// Keep unchanged (only for profiles whose output stays PHI).
    Keep,
}

/// Default handling of postal codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ZipPolicy {
    /// First three digits, `000` for restricted prefixes.
    Zip3,
    /// Keep.
    Keep,
    /// Remove.
    Redact,
}

/// What a leak-check hit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LeakPolicy {
    /// Fail the run.
    #[default]
    Fail,
    /// Report only.
    Warn,
}

/// The legal basis a release claims (45 CFR 164.514).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// 164.514(b)(2): the eighteen identifiers removed; the profile's rules suffice.
    SafeHarbor,
    /// 164.514(b)(1): an expert determines the risk is very small; every release needs the
    /// expert's signed determination.
    ExpertDetermination,
    /// 164.514(e): a limited data set, under a data use agreement, in the clinical zone.
    LimitedDataSet,
}

/// Rare-code generalisation settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RareCodes {
    /// A code seen in fewer patients than this becomes its parent.
    pub min_patients: u32,
}

/// k-anonymity settings for tabular data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KAnonymity {
    /// Minimum equivalence-class size.
    pub k: u32,
    /// Quasi-identifier columns.
    pub quasi_identifiers: Vec<String>,
    /// Sensitive attribute for l-diversity.
    #[serde(default)]
    pub sensitive: Option<String>,
    /// Largest share of records that may be suppressed instead of generalising further.
    #[serde(default = "default_suppression")]
    pub max_suppression: f64,
    /// Sampling fraction of the data set in its population, for journalist risk (1.0 = the
    /// data set is the population).
    #[serde(default = "one")]
    pub sampling_fraction: f64,
}

fn default_suppression() -> f64 {
    0.05
}
fn one() -> f64 {
    1.0
}
fn default_shift() -> u32 {
    365
}
fn default_age_cap() -> u32 {
    89
}
fn default_zip_list() -> String {
    "census-2000".to_owned()
}

/// A method name as written in a rule file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MethodName {
    /// Remove.
    Redact,
    /// Keep.
    Keep,
    /// Pseudonymise per the profile scheme.
    Pseudonym,
    /// HMAC-SHA256 hex.
    CryptoHash,
    /// Shift dates.
    #[serde(alias = "dateshift")]
    DateShift,
    /// Year only.
    YearOnly,
    /// Three-digit zip.
    Zip3,
    /// Ages over the cap aggregated.
    AgeCap,
    /// Generalise.
    Generalize,
    /// Perturb numbers.
    Perturb,
    /// Substitute a fake.
    Substitute,
    /// Free-text engine.
    Text,
}

/// One rule as written in a file (the section decides which target key is required).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// FHIR path (`[[fhir]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// HL7 field (`[[hl7]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// CSV column (`[[csv]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The method.
    pub method: MethodName,
    /// CSV: this column is the patient key (MRN).
    #[serde(default)]
    pub patient_key: bool,
    /// `generalize`: numeric bin width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<f64>,
    /// `generalize`: code hierarchy (`icd10`, `icd9`, `snomed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hierarchy: Option<String>,
    /// `perturb`: span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<f64>,
    /// `perturb`: span is a fraction of the value.
    #[serde(default)]
    pub proportional: bool,
    /// `perturb`: decimals kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_to: Option<u32>,
    /// `substitute`: kind of fake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fake: Option<FakeKind>,
    /// `substitute`: fixed replacement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `dateShift`: `microsoft` for the Microsoft anonymizer's per-resource offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    classification: OutputClass,
    pseudonyms: PseudonymScheme,
    dates: DatePolicy,
    #[serde(default = "default_shift")]
    date_shift_days: u32,
    #[serde(default = "default_age_cap")]
    age_cap: u32,
    free_text: TextPolicy,
    zip: ZipPolicy,
    #[serde(default = "default_zip_list")]
    restricted_zip3: String,
    #[serde(default)]
    keep_city: bool,
    #[serde(default)]
    leak_check: LeakPolicy,
    #[serde(default)]
    basis: Option<Basis>,
    #[serde(default)]
    rare_codes: Option<RareCodes>,
    #[serde(default)]
    k_anonymity: Option<KAnonymity>,
    #[serde(default)]
    fhir: Vec<RuleSpec>,
    #[serde(default)]
    hl7: Vec<RuleSpec>,
    #[serde(default)]
    csv: Vec<RuleSpec>,
}

/// Code hierarchies for `generalize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hierarchy {
    /// ICD-10: the 3-character category.
    Icd10,
    /// ICD-9: the 3-digit category (`V`/`E` codes: 3/4 characters).
    Icd9,
    /// SNOMED CT has no parent derivable from the code: a rare code is replaced by the
    /// documented fallback `"rare"` (the code is suppressed, the system kept).
    Snomed,
}

/// A compiled method.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// Remove.
    Redact,
    /// Keep.
    Keep,
    /// Pseudonymise per the profile scheme.
    Pseudonym,
    /// HMAC-SHA256 hex.
    CryptoHash,
    /// Shift dates (per patient, or per resource in the Microsoft variant).
    DateShift {
        /// Use the Microsoft anonymizer's offset and midnight times.
        microsoft: bool,
    },
    /// Year only.
    YearOnly,
    /// Three-digit zip.
    Zip3,
    /// Age cap.
    AgeCap,
    /// Numeric bins.
    GeneralizeBins(f64),
    /// Code hierarchy.
    GeneralizeCode(Hierarchy),
    /// Keyed perturbation.
    Perturb {
        /// Span.
        span: f64,
        /// Span relative to the value.
        proportional: bool,
        /// Decimals.
        round_to: u32,
    },
    /// A fake of a kind.
    SubstituteFake(FakeKind),
    /// A fixed value.
    SubstituteValue(String),
    /// The free-text engine.
    Text,
}

impl Method {
    /// A short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Redact => "redact",
            Method::Keep => "keep",
            Method::Pseudonym => "pseudonym",
            Method::CryptoHash => "cryptoHash",
            Method::DateShift { .. } => "dateShift",
            Method::YearOnly => "yearOnly",
            Method::Zip3 => "zip3",
            Method::AgeCap => "ageCap",
            Method::GeneralizeBins(_) | Method::GeneralizeCode(_) => "generalize",
            Method::Perturb { .. } => "perturb",
            Method::SubstituteFake(_) | Method::SubstituteValue(_) => "substitute",
            Method::Text => "text",
        }
    }
}

/// One step of a FHIR path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An element name (choice elements match by prefix).
    Elem(String),
    /// `extension('url')`: an extension whose url equals or ends with this.
    Extension(String),
}

/// A compiled FHIR path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirPath {
    /// Resource type (`None` = any).
    pub resource: Option<String>,
    /// `nodesByType('T')` anchor.
    pub by_type: Option<String>,
    /// Steps after the resource or the anchor.
    pub steps: Vec<Step>,
}

/// A compiled FHIR rule.
#[derive(Debug, Clone)]
pub struct FhirRule {
    /// The path as written.
    pub text: String,
    /// The compiled path.
    pub path: FhirPath,
    /// The method.
    pub method: Method,
}

/// A compiled HL7 rule.
#[derive(Debug, Clone)]
pub struct Hl7Rule {
    /// `PID-5` as written.
    pub text: String,
    /// Segment id.
    pub segment: String,
    /// Field number (1-based).
    pub field: usize,
    /// Component (1-based), if the rule targets one.
    pub component: Option<usize>,
    /// The method.
    pub method: Method,
}

/// A compiled CSV rule.
#[derive(Debug, Clone)]
pub struct CsvRule {
    /// Column name (matched case-insensitively).
    pub column: String,
    /// The method.
    pub method: Method,
    /// Whether this column is the patient key.
    pub patient_key: bool,
}

/// A validated profile. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Profile {
    inner: Arc<ProfileInner>,
}

#[derive(Debug)]
pub(crate) struct ProfileInner {
    pub name: String,
    pub description: String,
    pub classification: OutputClass,
    pub pseudonyms: PseudonymScheme,
    pub dates: DatePolicy,
    pub date_shift_days: u32,
    pub age_cap: u32,
    pub free_text: TextPolicy,
    pub zip: ZipPolicy,
    pub restricted: &'static ZipList,
    pub keep_city: bool,
    pub leak_check: LeakPolicy,
    pub basis: Basis,
    pub rare_codes: Option<RareCodes>,
    pub k_anonymity: Option<KAnonymity>,
    pub fhir: Vec<FhirRule>,
    pub hl7: Vec<Hl7Rule>,
    pub csv: Vec<CsvRule>,
    pub hash: String,
    pub reference_year: i32,
}

impl Profile {
    /// A built-in profile by name: `safe-harbor`, `expert-determination`, `limited-data-set`.
    pub fn builtin(name: &str) -> Result<Profile, DeidError> {
        let text = Profile::builtin_text(name)
            .ok_or_else(|| DeidError::UnknownProfile(name.to_owned()))?;
        Profile::from_toml(text)
    }

    /// The TOML text of a built-in profile: the starting point for a deployment's own.
    pub fn builtin_text(name: &str) -> Option<&'static str> {
        match name {
            "safe-harbor" => Some(include_str!("../profiles/safe-harbor.toml")),
            "expert-determination" => Some(include_str!("../profiles/expert-determination.toml")),
            "limited-data-set" => Some(include_str!("../profiles/limited-data-set.toml")),
            _ => None,
        }
    }

    /// Loads a built-in profile by name, or else a profile file at that path.
    pub fn load(name_or_path: &str) -> Result<Profile, DeidError> {
        if BUILTIN_PROFILES.contains(&name_or_path) {
            return Profile::builtin(name_or_path);
        }
        let path = std::path::Path::new(name_or_path);
        let text = std::fs::read_to_string(path).map_err(|e| DeidError::io(path, &e))?;
        Profile::from_toml(&text)
    }

    /// Parses and validates a profile from TOML text.
    pub fn from_toml(text: &str) -> Result<Profile, DeidError> {
        let file: ProfileFile = toml::from_str(text).map_err(|e| DeidError::ProfileSyntax {
            profile: "<toml>".to_owned(),
            reason: e.message().to_owned(),
        })?;
        let hash = hex::encode(Sha256::digest(text.as_bytes()));
        Self::compile(file, hash)
    }

    fn compile(file: ProfileFile, hash: String) -> Result<Profile, DeidError> {
        let pname = file.name.clone();
        let rule_err = |rule: usize, path: &str, reason: String| DeidError::ProfileRule {
            profile: pname.clone(),
            rule,
            path: path.to_owned(),
            reason,
        };
        let restricted = zip_list(&file.restricted_zip3).ok_or_else(|| {
            rule_err(
                0,
                "restricted_zip3",
                format!("unknown zip list `{}`", file.restricted_zip3),
            )
        })?;
        let mut fhir = Vec::new();
        for (i, r) in file.fhir.iter().enumerate() {
            let text = r
                .path
                .clone()
                .ok_or_else(|| rule_err(i + 1, "", "missing `path`".into()))?;
            if r.field.is_some() || r.column.is_some() {
                return Err(rule_err(
                    i + 1,
                    &text,
                    "`field`/`column` in a fhir rule".into(),
                ));
            }
            let path = parse_fhir_path(&text).map_err(|e| rule_err(i + 1, &text, e))?;
            let method = compile_method(r).map_err(|e| rule_err(i + 1, &text, e))?;
            fhir.push(FhirRule { text, path, method });
        }
        let mut hl7 = Vec::new();
        for (i, r) in file.hl7.iter().enumerate() {
            let text = r
                .field
                .clone()
                .ok_or_else(|| rule_err(i + 1, "", "missing `field`".into()))?;
            let (segment, field, component) =
                parse_hl7_field(&text).map_err(|e| rule_err(i + 1, &text, e))?;
            let method = compile_method(r).map_err(|e| rule_err(i + 1, &text, e))?;
            hl7.push(Hl7Rule {
                text,
                segment,
                field,
                component,
                method,
            });
        }
        let mut csv = Vec::new();
        for (i, r) in file.csv.iter().enumerate() {
            let column = r
                .column
                .clone()
                .ok_or_else(|| rule_err(i + 1, "", "missing `column`".into()))?;
            if column.trim().is_empty() {
                return Err(rule_err(i + 1, &column, "empty column name".into()));
            }
            let method = compile_method(r).map_err(|e| rule_err(i + 1, &column, e))?;
            csv.push(CsvRule {
                column,
                method,
                patient_key: r.patient_key,
            });
        }
        if let Some(k) = &file.k_anonymity
            && (k.k < 1
                || k.quasi_identifiers.is_empty()
                || !(0.0..=1.0).contains(&k.max_suppression)
                || !(k.sampling_fraction > 0.0 && k.sampling_fraction <= 1.0))
        {
            return Err(rule_err(0, "k_anonymity", "k ≥ 1, quasi_identifiers non-empty, max_suppression in [0,1], sampling_fraction in (0,1]".into()));
        }
        if file.classification == OutputClass::Deidentified && file.free_text == TextPolicy::Keep {
            return Err(rule_err(
                0,
                "free_text",
                "`keep` is only allowed for limited data sets".into(),
            ));
        }
        use chrono::Datelike;
        Ok(Profile {
            inner: Arc::new(ProfileInner {
                name: file.name,
                description: file.description,
                classification: file.classification,
                pseudonyms: file.pseudonyms,
                dates: file.dates,
                date_shift_days: file.date_shift_days,
                age_cap: file.age_cap,
                free_text: file.free_text,
                zip: file.zip,
                restricted,
                keep_city: file.keep_city,
                leak_check: file.leak_check,
                basis: file.basis.unwrap_or(match file.classification {
                    OutputClass::Deidentified => Basis::SafeHarbor,
                    OutputClass::LimitedDataSet => Basis::LimitedDataSet,
                }),
                rare_codes: file.rare_codes,
                k_anonymity: file.k_anonymity,
                fhir,
                hl7,
                csv,
                hash,
                reference_year: chrono::Utc::now().year(),
            }),
        })
    }

    /// The same profile with a fixed reference year for age computations (tests, re-runs).
    pub fn with_reference_year(&self, year: i32) -> Profile {
        let i = &self.inner;
        Profile {
            inner: Arc::new(ProfileInner {
                name: i.name.clone(),
                description: i.description.clone(),
                classification: i.classification,
                pseudonyms: i.pseudonyms,
                dates: i.dates,
                date_shift_days: i.date_shift_days,
                age_cap: i.age_cap,
                free_text: i.free_text,
                zip: i.zip,
                restricted: i.restricted,
                keep_city: i.keep_city,
                leak_check: i.leak_check,
                basis: i.basis,
                rare_codes: i.rare_codes.clone(),
                k_anonymity: i.k_anonymity.clone(),
                fhir: i.fhir.clone(),
                hl7: i.hl7.clone(),
                csv: i.csv.clone(),
                hash: i.hash.clone(),
                reference_year: year,
            }),
        }
    }

    /// The profile's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
    /// Its description.
    pub fn description(&self) -> &str {
        &self.inner.description
    }
    /// SHA-256 (hex) of the rule file text, for lineage.
    pub fn hash(&self) -> &str {
        &self.inner.hash
    }
    /// The output classification.
    pub fn classification(&self) -> OutputClass {
        self.inner.classification
    }
    /// The pseudonym scheme.
    pub fn pseudonyms(&self) -> PseudonymScheme {
        self.inner.pseudonyms
    }
    /// The leak policy.
    pub fn leak_policy(&self) -> LeakPolicy {
        self.inner.leak_check
    }
    /// The legal basis a release under this profile claims.
    pub fn basis(&self) -> Basis {
        self.inner.basis
    }
    /// Whether a release needs an expert's signed determination: the profile's rules are the
    /// expert's seed, not a method that de-identifies by itself.
    pub fn requires_expert_determination(&self) -> bool {
        self.inner.basis == Basis::ExpertDetermination
    }
    /// k-anonymity settings, if any.
    pub fn k_anonymity(&self) -> Option<&KAnonymity> {
        self.inner.k_anonymity.as_ref()
    }
    /// The restricted zip list in use.
    pub fn restricted_zip3(&self) -> &'static ZipList {
        self.inner.restricted
    }
    /// FHIR rules in order.
    pub fn fhir_rules(&self) -> &[FhirRule] {
        &self.inner.fhir
    }
    /// HL7 rules in order.
    pub fn hl7_rules(&self) -> &[Hl7Rule] {
        &self.inner.hl7
    }
    /// CSV rules in order.
    pub fn csv_rules(&self) -> &[CsvRule] {
        &self.inner.csv
    }
    pub(crate) fn inner(&self) -> &ProfileInner {
        &self.inner
    }
}

fn compile_method(r: &RuleSpec) -> Result<Method, String> {
    Ok(match r.method {
        MethodName::Redact => Method::Redact,
        MethodName::Keep => Method::Keep,
        MethodName::Pseudonym => Method::Pseudonym,
        MethodName::CryptoHash => Method::CryptoHash,
        MethodName::DateShift => Method::DateShift {
            microsoft: match r.variant.as_deref() {
                None => false,
                Some("microsoft") => true,
                Some(v) => return Err(format!("unknown dateShift variant `{v}`")),
            },
        },
        MethodName::YearOnly => Method::YearOnly,
        MethodName::Zip3 => Method::Zip3,
        MethodName::AgeCap => Method::AgeCap,
        MethodName::Generalize => match (r.width, r.hierarchy.as_deref()) {
            (Some(w), None) if w > 0.0 => Method::GeneralizeBins(w),
            (None, Some("icd10")) => Method::GeneralizeCode(Hierarchy::Icd10),
            (None, Some("icd9")) => Method::GeneralizeCode(Hierarchy::Icd9),
            (None, Some("snomed")) => Method::GeneralizeCode(Hierarchy::Snomed),
            (None, Some(h)) => return Err(format!("unknown hierarchy `{h}`")),
            _ => return Err("generalize needs `width` > 0 or `hierarchy`".into()),
        },
        MethodName::Perturb => Method::Perturb {
            span: r
                .span
                .filter(|s| *s > 0.0)
                .ok_or("perturb needs `span` > 0")?,
            proportional: r.proportional,
            round_to: r.round_to.unwrap_or(2),
        },
        MethodName::Substitute => match (&r.fake, &r.value) {
            (Some(k), None) => Method::SubstituteFake(*k),
            (None, Some(v)) => Method::SubstituteValue(v.clone()),
            _ => return Err("substitute needs exactly one of `fake` or `value`".into()),
        },
        MethodName::Text => Method::Text,
    })
}

/// Parses the FHIR path subset (see the module docs).
pub fn parse_fhir_path(text: &str) -> Result<FhirPath, String> {
    let mut rest = text.trim();
    let mut resource = None;
    let mut by_type = None;
    let mut steps = Vec::new();
    let mut first = true;
    let mut saw_resource = false;
    while !rest.is_empty() {
        let (tok, after) = next_token(rest)?;
        rest = after;
        if let Some(arg) = func_arg(tok, "nodesByType")? {
            if by_type.is_some() || !steps.is_empty() {
                return Err(
                    "`nodesByType` must come first or right after the resource type".into(),
                );
            }
            if !DATA_TYPES.contains(&arg) {
                return Err(format!("unknown data type `{arg}`"));
            }
            by_type = Some(arg.to_owned());
        } else if let Some(arg) = func_arg(tok, "extension")? {
            if arg.is_empty() {
                return Err("empty extension url".into());
            }
            steps.push(Step::Extension(arg.to_owned()));
        } else if tok.contains('(') || tok.contains(' ') {
            return Err(format!("unsupported expression `{tok}`"));
        } else if first && tok.starts_with(|c: char| c.is_ascii_uppercase()) {
            if !is_resource_type(tok) {
                return Err(format!("unknown resource type `{tok}`"));
            }
            saw_resource = true;
            if tok != "Resource" && tok != "DomainResource" {
                resource = Some(tok.to_owned());
            }
        } else if tok.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !tok.is_empty() {
            steps.push(Step::Elem(tok.to_owned()));
        } else {
            return Err(format!("invalid element name `{tok}`"));
        }
        first = false;
    }
    if by_type.is_none() && steps.is_empty() && !saw_resource {
        return Err("empty path".into());
    }
    Ok(FhirPath {
        resource,
        by_type,
        steps,
    })
}

/// Splits off the next `.`-separated token, respecting parentheses and quotes.
fn next_token(s: &str) -> Result<(&str, &str), String> {
    let mut depth = 0i32;
    let mut quote = false;
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quote = !quote,
            '(' if !quote => depth += 1,
            ')' if !quote => depth -= 1,
            '.' if !quote && depth == 0 => {
                let tok = s.get(..i).unwrap_or_default();
                return Ok((tok, s.get(i + 1..).unwrap_or_default()));
            }
            _ => {}
        }
    }
    if depth != 0 || quote {
        return Err("unbalanced parentheses or quotes".into());
    }
    Ok((s, ""))
}

fn func_arg<'a>(tok: &'a str, name: &str) -> Result<Option<&'a str>, String> {
    let Some(rest) = tok.strip_prefix(name).and_then(|r| r.strip_prefix('(')) else {
        return Ok(None);
    };
    let inner = rest
        .strip_suffix(')')
        .ok_or_else(|| format!("malformed `{name}(...)`"))?;
    let inner = inner.trim();
    let arg = inner
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .ok_or_else(|| format!("`{name}` takes one quoted argument"))?;
    Ok(Some(arg))
}

/// HL7 segments the engine knows (any `Z..` segment is accepted too).
const HL7_SEGMENTS: &[&str] = &[
    "MSH", "EVN", "PID", "PD1", "PV1", "PV2", "NK1", "GT1", "IN1", "IN2", "IN3", "OBX", "OBR",
    "NTE", "ORC", "DG1", "PR1", "AL1", "ACC", "DB1", "MRG", "SFT", "TXA", "RXA", "RXR", "RXE",
    "RXO", "RXC", "SPM", "TQ1", "SCH", "AIS", "AIG", "AIL", "AIP", "RGS", "FT1", "UB1", "UB2",
    "ROL", "PRB", "GOL", "PTH", "VAR", "CON", "MSA", "ERR", "QRD", "QRF", "BLG", "CTI", "OBX",
    "IAM", "NPU", "ARV", "PRT", "PDA", "ABS", "DRG",
];

fn parse_hl7_field(text: &str) -> Result<(String, usize, Option<usize>), String> {
    let (seg, num) = text.split_once('-').ok_or("expected `SEG-n`")?;
    if !(seg.len() == 3
        && seg
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
    {
        return Err(format!("invalid segment `{seg}`"));
    }
    if !(HL7_SEGMENTS.contains(&seg) || seg.starts_with('Z')) {
        return Err(format!("unknown segment `{seg}`"));
    }
    let (f, c) = match num.split_once('.') {
        Some((f, c)) => (f, Some(c)),
        None => (num, None),
    };
    let field: usize = f
        .parse()
        .map_err(|_| format!("invalid field number `{f}`"))?;
    if field == 0 || field > 999 {
        return Err(format!("field number `{f}` out of range"));
    }
    let component = match c {
        Some(c) => Some(
            c.parse::<usize>()
                .ok()
                .filter(|c| *c > 0)
                .ok_or(format!("invalid component `{c}`"))?,
        ),
        None => None,
    };
    Ok((seg.to_owned(), field, component))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_load() {
        for name in BUILTIN_PROFILES {
            let p = Profile::builtin(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.name(), *name);
            assert_eq!(p.hash().len(), 64);
        }
        assert_eq!(
            Profile::builtin("safe-harbor").unwrap().pseudonyms(),
            PseudonymScheme::Surrogate
        );
        assert_eq!(
            Profile::builtin("expert-determination")
                .unwrap()
                .pseudonyms(),
            PseudonymScheme::Hmac
        );
        assert!(matches!(
            Profile::builtin("nope"),
            Err(DeidError::UnknownProfile(_))
        ));
    }

    #[test]
    fn unknown_things_fail_at_load() {
        let base = "name='x'\npseudonyms='hmac'\ndates='year'\nfree_text='tag'\nzip='zip3'\n";
        let cases = [
            ("[[fhir]]\npath='Patinet.name'\nmethod='redact'", "Patinet"),
            (
                "[[fhir]]\npath=\"nodesByType('HumanNam')\"\nmethod='redact'",
                "HumanNam",
            ),
            (
                "[[fhir]]\npath=\"Patient.where(x='1')\"\nmethod='redact'",
                "unsupported",
            ),
            (
                "[[fhir]]\npath='Patient.name'\nmethod='obliterate'",
                "obliterate",
            ),
            ("[[hl7]]\nfield='QQQ-5'\nmethod='redact'", "QQQ"),
            ("[[hl7]]\nfield='PID-x'\nmethod='redact'", "field number"),
            ("[[csv]]\npath='a'\nmethod='redact'", "column"),
            ("[[csv]]\ncolumn='a'\nmethod='generalize'", "generalize"),
            ("restricted_zip3='census-1850'", "census-1850"),
        ];
        for (extra, needle) in cases {
            let e = Profile::from_toml(&format!("{base}{extra}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{extra}: {e}");
        }
        let e = Profile::from_toml(&format!("{base}bogus=1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn paths_parse() {
        let p = parse_fhir_path("nodesByType('HumanName').use").unwrap();
        assert_eq!(p.by_type.as_deref(), Some("HumanName"));
        assert_eq!(p.steps, vec![Step::Elem("use".into())]);
        let p = parse_fhir_path("Patient.extension('http://x.org/a.b').valueString").unwrap();
        assert_eq!(p.resource.as_deref(), Some("Patient"));
        assert_eq!(p.steps.len(), 2);
        let p = parse_fhir_path("Resource.id").unwrap();
        assert_eq!(p.resource, None);
        assert!(parse_fhir_path("Observation.value as Age").is_err());
        assert_eq!(
            parse_hl7_field("PID-11.5").unwrap(),
            ("PID".into(), 11, Some(5))
        );
    }
}
