//! What the registry stores for a model version: the package (artifact bytes and the signature
//! of the inputs it accepts), named by the SHA-256 of its canonical bytes, and the model card.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use airlock_models::{Encoding, Experiment, Metrics, Record, Signature, TrainedModel};
use airlock_types::{ActorId, Classification, ContentHash, Zone};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::RegistryError;

const MAGIC: &[u8] = b"AIRLOCK-MODEL-PACKAGE\x001";

/// A model's name (all versions of one model share it): 1 to 64 characters, lowercase ASCII
/// letters, digits, `.`, `_` and `-`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModelName(String);

/// The same rule as a dataset name's.
impl schemars::JsonSchema for ModelName {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("ModelName")
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": airlock_types::schema::DATASET_NAME_PATTERN})
    }
}

impl ModelName {
    /// Validate a name.
    pub fn new(s: impl Into<String>) -> Result<Self, RegistryError> {
        let s = s.into();
        if s.is_empty() || s.len() > 64 {
            return Err(RegistryError::Name {
                reason: "must be 1 to 64 characters",
            });
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            return Err(RegistryError::Name {
                reason: "only lowercase letters, digits, `.`, `_` and `-`",
            });
        }
        if !s
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(RegistryError::Name {
                reason: "must start with a letter or digit",
            });
        }
        Ok(ModelName(s))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ModelName {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelName::new(s)
    }
}

impl TryFrom<String> for ModelName {
    type Error = RegistryError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ModelName::new(s)
    }
}

impl From<ModelName> for String {
    fn from(n: ModelName) -> String {
        n.0
    }
}

/// What the artifact is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    /// Trained by Airlock (`airlock-models` canonical bytes: logistic regression or GBDT).
    Airlock,
    /// An ONNX model trained elsewhere, run with `tract`; its input is the signature's one-hot
    /// encoding, in signature order.
    Onnx,
}

impl ArtifactKind {
    fn tag(self) -> u8 {
        match self {
            ArtifactKind::Airlock => 1,
            ArtifactKind::Onnx => 2,
        }
    }

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Airlock => "airlock",
            ArtifactKind::Onnx => "onnx",
        }
    }
}

/// An artifact and the signature of what it accepts. Its hash is the model version's id.
#[derive(Clone, PartialEq)]
pub struct Package {
    /// What the artifact is.
    pub kind: ArtifactKind,
    /// The artifact's bytes.
    pub artifact: Vec<u8>,
    /// What the model accepts.
    pub signature: Signature,
}

impl fmt::Debug for Package {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Package")
            .field("kind", &self.kind)
            .field("artifact_bytes", &self.artifact.len())
            .field("features", &self.signature.features.len())
            .finish()
    }
}

impl Package {
    /// Package a model trained by Airlock.
    pub fn from_trained(model: &TrainedModel) -> Package {
        Package {
            kind: ArtifactKind::Airlock,
            artifact: model.to_bytes(),
            signature: model.signature().clone(),
        }
    }

    /// Canonical bytes: magic, kind, length-prefixed artifact, length-prefixed signature JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        let sig = serde_json::to_vec(&self.signature).unwrap_or_default();
        let mut out = Vec::with_capacity(MAGIC.len() + 17 + self.artifact.len() + sig.len());
        out.extend_from_slice(MAGIC);
        out.push(self.kind.tag());
        out.extend_from_slice(&(self.artifact.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.artifact);
        out.extend_from_slice(&(sig.len() as u64).to_le_bytes());
        out.extend_from_slice(&sig);
        out
    }

    /// Decode canonical bytes (hostile input gives an error, never a panic).
    pub fn from_bytes(bytes: &[u8]) -> Result<Package, RegistryError> {
        let bad = |reason: &str| RegistryError::Package {
            reason: reason.to_string(),
        };
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("not a model package"))?;
        let (&tag, rest) = rest.split_first().ok_or_else(|| bad("truncated kind"))?;
        let kind = match tag {
            1 => ArtifactKind::Airlock,
            2 => ArtifactKind::Onnx,
            _ => return Err(bad("unknown artifact kind")),
        };
        let (artifact, rest) = take_prefixed(rest).ok_or_else(|| bad("truncated artifact"))?;
        let (sig, rest) = take_prefixed(rest).ok_or_else(|| bad("truncated signature"))?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes"));
        }
        let signature: Signature =
            serde_json::from_slice(sig).map_err(|_| bad("signature is not valid JSON"))?;
        signature.validate()?;
        let p = Package {
            kind,
            artifact: artifact.to_vec(),
            signature,
        };
        if p.to_bytes() != bytes {
            return Err(bad("not in canonical form"));
        }
        Ok(p)
    }

    /// The version id: SHA-256 of the canonical bytes.
    pub fn hash(&self) -> ContentHash {
        ContentHash::from_bytes(Sha256::digest(self.to_bytes()).into())
    }
}

fn take_prefixed(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = b.split_first_chunk::<8>()?;
    let n = usize::try_from(u64::from_le_bytes(*len)).ok()?;
    (rest.len() >= n).then(|| rest.split_at(n))
}

/// The data a model version was trained (or, for an import, evaluated) on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingData {
    /// `NAME@VERSION`.
    pub dataset: String,
    /// The version's manifest hash.
    pub dataset_hash: ContentHash,
    /// Where it lives.
    pub zone: Zone,
    /// What it is (never identified: the zone rules keep training out of PHI).
    pub classification: Classification,
    /// Rows used.
    pub rows: u64,
}

/// The model card: what a reviewer reads before approving. Signed together with the artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// What the model is for, and for whom.
    pub intended_use: String,
    /// Known limitations and where it must not be used.
    pub limitations: Vec<String>,
    /// Who trained or imported it (never an approver).
    pub trained_by: ActorId,
    /// The model family (`logistic`, `gbdt`, `onnx`).
    pub family: String,
    /// Its data.
    pub training_data: TrainingData,
    /// Feature names in input order.
    pub features: Vec<String>,
    /// Held-out metrics (for an import: measured by Airlock on the named data).
    pub metrics: Metrics,
    /// The training run, for models trained by Airlock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<Experiment>,
    /// The software that trained or imported it.
    pub code_version: String,
}

impl ModelCard {
    /// The card of a model Airlock trained: features, metrics and the experiment come from the
    /// training run.
    pub fn for_trained(
        outcome: &airlock_models::TrainOutcome,
        training_data: TrainingData,
        trained_by: ActorId,
        intended_use: impl Into<String>,
        limitations: Vec<String>,
    ) -> ModelCard {
        let e = &outcome.experiment;
        let family = serde_json::to_value(e.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "unknown".into());
        ModelCard {
            intended_use: intended_use.into(),
            limitations,
            trained_by,
            family,
            training_data,
            features: e.features.clone(),
            metrics: e.metrics.clone(),
            experiment: Some(e.clone()),
            code_version: e.code_version.clone(),
        }
    }

    /// Cards must say what the model is for and what it is not for.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.intended_use.trim().is_empty() {
            return Err("the model card has no intended use");
        }
        if self.limitations.iter().all(|l| l.trim().is_empty()) {
            return Err("the model card lists no limitations");
        }
        if self.features.is_empty() {
            return Err("the model card lists no features");
        }
        Ok(())
    }
}

/// Something that turns a validated record into a probability of the positive class.
pub trait Scorer: Send + Sync {
    /// Score one record (validated against the signature first; refusals name the field).
    fn score(&self, record: &Record) -> Result<f64, RegistryError>;
}

impl Scorer for TrainedModel {
    fn score(&self, record: &Record) -> Result<f64, RegistryError> {
        Ok(self.predict(record)?)
    }
}

/// Runs ONNX artifacts. The registry does not link an ONNX runtime itself; the binary that
/// serves passes one in (see `airlock-onnx`).
pub trait OnnxRuntime: Send + Sync {
    /// Load an ONNX artifact taking `n_inputs` values, as a scorer of raw input vectors.
    fn load(&self, artifact: &[u8], n_inputs: usize) -> Result<Arc<dyn VectorScorer>, String>;
}

/// Scores an encoded input vector.
pub trait VectorScorer: Send + Sync {
    /// Probability of the positive class.
    fn score_vector(&self, x: &[f64]) -> Result<f64, String>;
}

/// An ONNX artifact behind a signature: encodes the record one-hot, then runs the model.
pub(crate) struct OnnxScorer {
    pub(crate) signature: Signature,
    pub(crate) inner: Arc<dyn VectorScorer>,
}

impl Scorer for OnnxScorer {
    fn score(&self, record: &Record) -> Result<f64, RegistryError> {
        let x = self.signature.encode(record, Encoding::OneHot)?;
        self.inner
            .score_vector(&x)
            .map_err(|reason| RegistryError::Unsupported {
                name: "onnx".into(),
                reason,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_models::{Feature, FeatureKind};

    fn pkg() -> Package {
        Package {
            kind: ArtifactKind::Onnx,
            artifact: vec![1, 2, 3],
            signature: Signature {
                features: vec![Feature {
                    name: "age".into(),
                    kind: FeatureKind::Numeric {
                        min: 0.0,
                        max: 120.0,
                    },
                }],
            },
        }
    }

    #[test]
    fn package_round_trips_and_hash_covers_every_byte() {
        let p = pkg();
        let b = p.to_bytes();
        assert_eq!(
            Package::from_bytes(&b).map(|q| q.hash()).ok(),
            Some(p.hash())
        );
        for i in 0..b.len() {
            let mut c = b.clone();
            if let Some(x) = c.get_mut(i) {
                *x ^= 1;
            }
            // Either it no longer decodes, or it decodes to a different version.
            if let Ok(q) = Package::from_bytes(&c) {
                assert_ne!(q.hash(), p.hash(), "byte {i}");
            }
        }
        for n in 0..b.len() {
            assert!(Package::from_bytes(b.get(..n).unwrap_or_default()).is_err());
        }
    }

    #[test]
    fn model_names() {
        assert!(ModelName::new("readmission-30d").is_ok());
        for bad in ["", "Readmission", "-x", "a b", "x/y", &"a".repeat(65)] {
            assert!(ModelName::new(bad).is_err(), "{bad}");
        }
    }

    /// The schema borrows the dataset name's pattern: the two rules must stay one rule.
    #[test]
    fn model_names_follow_the_dataset_name_rule() {
        let long = "a".repeat(64);
        for s in [
            "",
            "a",
            "0x",
            "-x",
            ".x",
            "a.b_c-d",
            "A",
            "a b",
            "é",
            "a/b",
            long.as_str(),
            "a\n",
        ] {
            let same = ModelName::new(s).is_ok() == airlock_types::DatasetName::new(s).is_ok();
            assert!(same, "{s:?}");
        }
        assert!(ModelName::new(format!("{long}a")).is_err());
    }
}
