//! Serving: which loaded model answers for which patient, and the ledger entry each prediction
//! leaves.
//!
//! Routing is deterministic per patient: the canary takes a patient when a keyed hash of the
//! patient pseudonym (with the model name and the canary's version) falls below its share, so
//! the same patient sees the same model for the whole rollout, and nobody can pick their bucket
//! without the key. Silent versions score every request and are never shown.

use std::collections::BTreeMap;
use std::sync::Arc;

use airlock_ledger::{Display, PatientPseudonym, Prediction};
use airlock_models::{Record, Signature};
use airlock_types::ContentHash;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::error::RegistryError;
use crate::package::Scorer;
use crate::registry::ModelVersion;
use crate::state::State;

/// A verified, loaded model version, ready to score.
#[derive(Clone)]
pub struct LoadedModel {
    /// Its registry record (state as of loading).
    pub version: ModelVersion,
    /// What it accepts.
    pub signature: Signature,
    /// Feature names in input order.
    pub features: Vec<String>,
    scorer: Arc<dyn Scorer>,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("version", &self.version.label())
            .field("state", &self.version.state)
            .finish_non_exhaustive()
    }
}

impl LoadedModel {
    pub(crate) fn new(
        version: ModelVersion,
        signature: Signature,
        scorer: Arc<dyn Scorer>,
    ) -> Self {
        let features = signature.features.iter().map(|f| f.name.clone()).collect();
        LoadedModel {
            version,
            signature,
            features,
            scorer,
        }
    }

    pub(crate) fn with_version(&self, version: ModelVersion) -> LoadedModel {
        LoadedModel {
            version,
            ..self.clone()
        }
    }

    /// Validate and score one record: the probability of the positive class.
    pub fn score(&self, record: &Record) -> Result<f64, RegistryError> {
        self.scorer.score(record)
    }
}

/// The deployed versions of one model.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    /// Shown to every patient the canary does not take.
    pub production: Option<Arc<LoadedModel>>,
    /// Shown to its share of patients.
    pub canary: Option<Arc<LoadedModel>>,
    /// Scored on every request, never shown.
    pub silent: Vec<Arc<LoadedModel>>,
}

/// Where in `0..10_000` a patient falls for a canary of `name` at `version`.
pub fn canary_bucket(
    key: &[u8],
    name: &str,
    version: &ContentHash,
    patient: &PatientPseudonym,
) -> u16 {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return u16::MAX;
    };
    mac.update(b"airlock canary v1\0");
    mac.update(name.as_bytes());
    mac.update(b"\0");
    mac.update(version.as_bytes());
    mac.update(b"\0");
    mac.update(patient.as_str().as_bytes());
    let out = mac.finalize().into_bytes();
    let mut eight = [0u8; 8];
    for (d, s) in eight.iter_mut().zip(out.iter()) {
        *d = *s;
    }
    (u64::from_be_bytes(eight) % 10_000) as u16
}

impl Routes {
    /// The version shown to `patient`: the canary if the patient falls in its share, else
    /// production. A first model's canary (no production yet) is shown only to its share too:
    /// the other patients see no model output, as before there was a model, so a canary never
    /// reaches more patients than its share.
    pub fn shown_for(&self, key: &[u8], patient: &PatientPseudonym) -> Option<&Arc<LoadedModel>> {
        let in_canary = |c: &Arc<LoadedModel>| {
            canary_bucket(key, c.version.name.as_str(), &c.version.hash, patient)
                < c.version.canary_share_bp
        };
        match (&self.canary, &self.production) {
            (Some(c), _) if in_canary(c) => Some(c),
            (_, Some(p)) => Some(p),
            (Some(_), None) | (None, None) => None,
        }
    }

    /// Every version that scores a request for `patient`: the shown one first, then the silent
    /// ones (a canary not shown to this patient also runs silently beside production).
    pub fn plan(
        &self,
        key: &[u8],
        patient: &PatientPseudonym,
    ) -> Vec<(&Arc<LoadedModel>, Display)> {
        let shown = self.shown_for(key, patient);
        let mut out = Vec::with_capacity(2 + self.silent.len());
        if let Some(s) = shown {
            out.push((s, Display::Shown));
        }
        for m in self.canary.iter().chain(self.production.iter()) {
            if shown.is_some_and(|s| s.version.hash == m.version.hash) {
                continue;
            }
            out.push((m, Display::Silent));
        }
        for m in &self.silent {
            out.push((m, Display::Silent));
        }
        out
    }
}

/// Every deployed model's routes, as loaded at one registry generation.
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    routes: BTreeMap<String, Routes>,
    generation: i64,
}

impl Deployment {
    pub(crate) fn new(routes: BTreeMap<String, Routes>, generation: i64) -> Self {
        Deployment { routes, generation }
    }

    /// The registry generation this table reflects.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// The routes of one model.
    pub fn routes(&self, name: &str) -> Option<&Routes> {
        self.routes.get(name)
    }

    /// Names of the deployed models.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }

    pub(crate) fn loaded(&self, hash: &ContentHash) -> Option<&LoadedModel> {
        self.routes.values().find_map(|r| {
            r.production
                .iter()
                .chain(r.canary.iter())
                .chain(r.silent.iter())
                .find(|m| &m.version.hash == hash)
                .map(|m| m.as_ref())
        })
    }
}

/// One model's answer to one request.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Scored {
    /// `name@hash`.
    pub model: String,
    /// The version hash.
    pub version: ContentHash,
    /// State when it scored.
    pub state: State,
    /// Probability of the positive class.
    pub score: f64,
    /// Shown or silent.
    #[serde(serialize_with = "display_str")]
    pub display: Display,
}

fn display_str<S: serde::Serializer>(d: &Display, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match d {
        Display::Shown => "shown",
        Display::Silent => "silent",
    })
}

/// Probability of the predicted class at the 0.5 threshold.
pub fn confidence(score: f64) -> f64 {
    score.max(1.0 - score)
}

/// Every version's answer (with the version), and how many silent versions refused the record.
pub type ScoredRequest = (Vec<(Arc<LoadedModel>, Scored)>, usize);

/// Score a request on every version the plan names. The shown version's refusal (a record the
/// signature rejects) fails the request; a silent version's refusal is counted and skipped, so
/// a silent model never changes what a clinician sees.
pub fn score_all(
    routes: &Routes,
    key: &[u8],
    patient: &PatientPseudonym,
    record: &Record,
) -> Result<ScoredRequest, RegistryError> {
    let plan = routes.plan(key, patient);
    let mut out = Vec::with_capacity(plan.len());
    let mut silent_failures = 0;
    for (m, display) in plan {
        match m.score(record) {
            Ok(score) => out.push((
                Arc::clone(m),
                Scored {
                    model: m.version.label(),
                    version: m.version.hash,
                    state: m.version.state,
                    score,
                    display,
                },
            )),
            Err(e) if display == Display::Shown => return Err(e),
            Err(_) => silent_failures += 1,
        }
    }
    Ok((out, silent_failures))
}

/// A keyed hash of the record's values (in feature order), so the ledger can show which inputs
/// a prediction saw without holding them.
pub fn features_hash(key: &[u8], record: &Record) -> ContentHash {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return ContentHash::from_bytes([0; 32]);
    };
    mac.update(b"airlock features v1\0");
    mac.update(&serde_json::to_vec(record).unwrap_or_default());
    ContentHash::from_bytes(mac.finalize().into_bytes().into())
}

/// The ledger's prediction record for one scored version.
pub fn prediction_record(
    model: &LoadedModel,
    scored: &Scored,
    features_hash: ContentHash,
) -> Prediction {
    Prediction {
        model: model.version.name.to_string(),
        version_hash: model.version.hash,
        features: model.features.clone(),
        features_hash,
        output: format!("{:.6}", scored.score),
        confidence: Some(confidence(scored.score)),
        display: scored.display,
        override_reason: None,
    }
}
