//! The registry's ONNX runtime: lets `airlock-registry` verify, load and serve ONNX artifacts
//! without linking tract itself.

use std::sync::Arc;

use airlock_registry::{OnnxRuntime, VectorScorer};

use crate::OnnxModel;

/// Runs ONNX artifacts with tract, for the registry.
#[derive(Debug, Clone, Copy, Default)]
pub struct TractRuntime;

impl OnnxRuntime for TractRuntime {
    fn load(&self, artifact: &[u8], n_inputs: usize) -> Result<Arc<dyn VectorScorer>, String> {
        OnnxModel::load(artifact, n_inputs)
            .map(|m| Arc::new(m) as Arc<dyn VectorScorer>)
            .map_err(|e| e.to_string())
    }
}

impl VectorScorer for OnnxModel {
    fn score_vector(&self, x: &[f64]) -> Result<f64, String> {
        self.predict_proba(x).map_err(|e| e.to_string())
    }
}
