//! The model-kind trait and the dispatching enum that a trained model holds.

use serde::{Deserialize, Serialize};

use crate::codec::Reader;
use crate::error::ModelsError;
use crate::gbdt::GbdtModel;
use crate::logistic::LogisticModel;
use crate::signature::Encoding;

/// Which kind of model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ModelKind {
    /// L2-regularised logistic regression on standardised, one-hot encoded inputs.
    Logistic,
    /// Gradient-boosted regression trees on log-loss with histogram splits.
    Gbdt,
    /// A binary classifier imported as an ONNX file and run by `airlock-onnx`; its inputs are
    /// numeric vectors, categories one-hot encoded as for logistic regression.
    Onnx,
}

impl ModelKind {
    /// How the signature encodes categorical features for this kind.
    pub fn encoding(self) -> Encoding {
        match self {
            ModelKind::Logistic | ModelKind::Onnx => Encoding::OneHot,
            ModelKind::Gbdt => Encoding::Ordinal,
        }
    }

    pub(crate) fn tag(self) -> u8 {
        match self {
            ModelKind::Logistic => 1,
            ModelKind::Gbdt => 2,
            ModelKind::Onnx => 3,
        }
    }
}

/// A binary classifier over encoded input vectors.
pub trait Model {
    /// The kind.
    fn kind(&self) -> ModelKind;
    /// Length of the input vector.
    fn n_inputs(&self) -> usize;
    /// Probability of the positive class. Fails only if `x` has the wrong length.
    fn predict_proba(&self, x: &[f64]) -> Result<f64, ModelsError>;
    /// Canonical bytes: equal models give equal bytes, and `from_bytes` inverts this exactly.
    fn to_bytes(&self) -> Vec<u8>;
    /// Decode canonical bytes; hostile input gives an error, never a panic.
    fn from_bytes(bytes: &[u8]) -> Result<Self, ModelsError>
    where
        Self: Sized;
}

/// Either kind of model.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AnyModel {
    /// Logistic regression.
    Logistic(LogisticModel),
    /// Gradient-boosted trees.
    Gbdt(GbdtModel),
}

impl AnyModel {
    /// Decode a model of a known kind.
    pub(crate) fn from_kind_bytes(kind: u8, r: &mut Reader<'_>) -> Result<Self, ModelsError> {
        let n = r.len(1)?;
        let body = r.take(n)?;
        match kind {
            1 => Ok(AnyModel::Logistic(LogisticModel::from_bytes(body)?)),
            2 => Ok(AnyModel::Gbdt(GbdtModel::from_bytes(body)?)),
            3 => Err(r.err("ONNX models are loaded by airlock-onnx, not decoded here")),
            _ => Err(r.err("unknown model kind")),
        }
    }

    fn inner(&self) -> &dyn Model {
        match self {
            AnyModel::Logistic(m) => m,
            AnyModel::Gbdt(m) => m,
        }
    }

    /// The kind.
    pub fn kind(&self) -> ModelKind {
        self.inner().kind()
    }

    /// Length of the input vector.
    pub fn n_inputs(&self) -> usize {
        self.inner().n_inputs()
    }

    /// Probability of the positive class.
    pub fn predict_proba(&self, x: &[f64]) -> Result<f64, ModelsError> {
        self.inner().predict_proba(x)
    }

    /// Canonical bytes of the inner model.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner().to_bytes()
    }
}

pub(crate) fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

pub(crate) fn check_dim(expected: usize, x: &[f64]) -> Result<(), ModelsError> {
    if x.len() == expected {
        Ok(())
    } else {
        Err(ModelsError::Dimension {
            expected,
            found: x.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Writer;

    #[test]
    fn onnx_tag_is_refused_with_a_pointer_to_airlock_onnx() {
        for body in [Vec::new(), vec![0x08, 0x07]] {
            let mut w = Writer::new();
            w.len(body.len());
            w.bytes(&body);
            let bytes = w.finish();
            let err = AnyModel::from_kind_bytes(ModelKind::Onnx.tag(), &mut Reader::new(&bytes));
            match err {
                Err(ModelsError::Malformed { what, .. }) => assert!(what.contains("airlock-onnx")),
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
    }
}
