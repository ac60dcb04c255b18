//! [`OnnxModel`]: an imported ONNX binary classifier, checked, optimised and ready to run.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

use airlock_models::codec::Reader;
use airlock_models::{Model, ModelKind, ModelsError};
use airlock_types::ContentHash;
use sha2::{Digest, Sha256};
use tract_onnx::data_resolver::ModelDataResolver;
use tract_onnx::prelude::*;

use crate::error::{OnnxError, shorten};
use crate::inspect::{self, Float};

/// Magic prefix of [`OnnxModel::to_canonical_bytes`].
const MAGIC: &[u8; 12] = b"AIRLOCK-ONNX";
/// Version of the canonical envelope.
const ENVELOPE_VERSION: u8 = 1;
/// Longest runtime message kept in [`OnnxError::Runtime`].
const MAX_DETAIL: usize = 400;
/// Slack allowed around [0, 1] and around a pair's sum of 1, for float32 rounding.
const F32_SLACK: f64 = 1e-6;
const PAIR_SUM_SLACK: f64 = 1e-4;

/// How the chosen output holds the positive-class probability for one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readout {
    /// `[1, 2]` class probabilities: column 1.
    PairColumn1,
    /// `[1, 1]` or `[1]`: the value itself.
    Single,
}

/// An imported ONNX binary classifier. Cheap to clone; safe to share between threads.
///
/// Built by [`OnnxModel::load`], which checks the file and plans it for one input row of
/// `n_inputs` values; [`OnnxModel::predict_proba`] then runs it in process.
#[derive(Clone)]
pub struct OnnxModel {
    bytes: Arc<[u8]>,
    sha256: ContentHash,
    n_inputs: usize,
    input_type: Float,
    output_name: String,
    readout: Readout,
    plan: Arc<TypedRunnableModel>,
}

impl OnnxModel {
    /// Import an ONNX file for rows of `n_inputs` values.
    ///
    /// The graph must have one float32 or float64 input `[batch, n_inputs]` (a declared width
    /// must equal `n_inputs`) and an output holding the positive-class probability: the only
    /// floating-point output, or the one named `probabilities` (skl2onnx classifiers exported
    /// with `zipmap` disabled); shaped `[N, 2]` (column 1 is read) or `[N, 1]` / `[N]`. Every
    /// operator that output depends on must be one the runtime implements, in the default or
    /// `ai.onnx.ml` domain; tensors stored in external files are refused. Hostile bytes give an
    /// error, never a panic (a panic inside the runtime is caught and reported).
    pub fn load(bytes: &[u8], n_inputs: usize) -> Result<OnnxModel, OnnxError> {
        if n_inputs == 0 {
            return Err(OnnxError::ZeroWidth);
        }
        let built = contain("importing the model", || build(bytes, n_inputs))??;
        Ok(OnnxModel {
            bytes: Arc::from(bytes),
            sha256: ContentHash::from_bytes(Sha256::digest(bytes).into()),
            n_inputs,
            input_type: built.input_type,
            output_name: built.output_name,
            readout: built.readout,
            plan: built.plan,
        })
    }

    /// Length of the input vector.
    pub fn n_inputs(&self) -> usize {
        self.n_inputs
    }

    /// The original file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-256 of the original file's bytes.
    pub fn sha256(&self) -> ContentHash {
        self.sha256
    }

    /// Name of the output read as the probability.
    pub fn output_name(&self) -> &str {
        &self.output_name
    }

    /// Probability of the positive class for one row.
    ///
    /// Fails if `x` has the wrong length or a value that is not finite in the model's float
    /// type, if inference fails, or if the output is not a probability (not finite, outside
    /// [0, 1], or a class pair that does not sum to 1). Errors never quote the input.
    pub fn predict_proba(&self, x: &[f64]) -> Result<f64, OnnxError> {
        if x.len() != self.n_inputs {
            return Err(OnnxError::Dimension {
                expected: self.n_inputs,
                found: x.len(),
            });
        }
        let input = self.tensor(x)?;
        let outputs = contain("running the model", || self.plan.run(tvec!(input)))?
            .map_err(|_| OnnxError::Inference)?;
        let out = outputs.first().ok_or(OnnxError::Inference)?;
        let values = read_floats(out).ok_or(OnnxError::Inference)?;
        probability_of(self.readout, &self.output_name, &values)
    }

    /// Probabilities for several rows, in order; the first failing row's error is returned.
    ///
    /// Rows run one at a time on the single-row plan: for the small tabular models this crate
    /// serves, that is as fast per row as a batched plan and keeps one plan in memory.
    pub fn predict_batch(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, OnnxError> {
        rows.iter().map(|row| self.predict_proba(row)).collect()
    }

    /// Canonical bytes: a magic prefix, the input width and the original file. Unlike the file
    /// alone, they are enough for [`OnnxModel::from_canonical_bytes`] to rebuild the model.
    pub fn to_canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAGIC.len() + 1 + 8 + 8 + self.bytes.len());
        out.extend_from_slice(MAGIC);
        out.push(ENVELOPE_VERSION);
        out.extend_from_slice(&(self.n_inputs as u64).to_le_bytes());
        out.extend_from_slice(&(self.bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.bytes);
        out
    }

    /// Decode [`OnnxModel::to_canonical_bytes`] and load the model it holds.
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<OnnxModel, OnnxError> {
        let (file, n_inputs) = read_envelope(bytes).map_err(envelope_error)?;
        OnnxModel::load(file, n_inputs)
    }

    fn tensor(&self, x: &[f64]) -> Result<TValue, OnnxError> {
        let shape = [1, self.n_inputs];
        let tensor = match self.input_type {
            Float::F32 => {
                let mut row = Vec::with_capacity(x.len());
                for (index, v) in x.iter().enumerate() {
                    // Rounding to the model's precision is the point of this cast.
                    let f = *v as f32;
                    if !f.is_finite() {
                        return Err(OnnxError::NonFiniteInput { index });
                    }
                    row.push(f);
                }
                Tensor::from_shape(&shape, &row)
            }
            Float::F64 => {
                if let Some(index) = x.iter().position(|v| !v.is_finite()) {
                    return Err(OnnxError::NonFiniteInput { index });
                }
                Tensor::from_shape(&shape, x)
            }
        };
        tensor
            .map(IntoTValue::into_tvalue)
            .map_err(|_| OnnxError::Inference)
    }
}

impl fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxModel")
            .field("sha256", &self.sha256)
            .field("n_inputs", &self.n_inputs)
            .field("input_type", &self.input_type)
            .field("output_name", &self.output_name)
            .field("readout", &self.readout)
            .finish_non_exhaustive()
    }
}

impl PartialEq for OnnxModel {
    /// Same file, same width: the plan is a function of the two.
    fn eq(&self, other: &Self) -> bool {
        self.n_inputs == other.n_inputs && self.bytes == other.bytes
    }
}

/// The view of an ONNX model as an Airlock [`Model`]. The canonical bytes are
/// [`OnnxModel::to_canonical_bytes`]. `ModelsError` has no variant for a runtime failure, so
/// errors other than a wrong input length map to [`ModelsError::Numerical`] (prediction) and
/// [`ModelsError::Malformed`] (decoding); the inherent methods give the full [`OnnxError`].
impl Model for OnnxModel {
    fn kind(&self) -> ModelKind {
        ModelKind::Onnx
    }

    fn n_inputs(&self) -> usize {
        self.n_inputs
    }

    fn predict_proba(&self, x: &[f64]) -> Result<f64, ModelsError> {
        OnnxModel::predict_proba(self, x).map_err(|e| match e {
            OnnxError::Dimension { expected, found } => ModelsError::Dimension { expected, found },
            OnnxError::NonFiniteInput { .. } => ModelsError::Numerical {
                what: "an ONNX model input is not finite in the model's float type",
            },
            OnnxError::NotProbability { .. } => ModelsError::Numerical {
                what: "the ONNX model's output is not a probability",
            },
            _ => ModelsError::Numerical {
                what: "ONNX inference failed",
            },
        })
    }

    fn to_bytes(&self) -> Vec<u8> {
        self.to_canonical_bytes()
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, ModelsError> {
        OnnxModel::from_canonical_bytes(bytes).map_err(|e| match e {
            OnnxError::Envelope { offset, what } => ModelsError::Malformed { offset, what },
            _ => ModelsError::Malformed {
                offset: 0,
                what: "the ONNX model in the envelope does not load (see OnnxModel::load)",
            },
        })
    }
}

/// The positive-class probability from the output's values, checked.
fn probability_of(readout: Readout, output: &str, values: &[f64]) -> Result<f64, OnnxError> {
    let refuse = |rule| OnnxError::NotProbability {
        output: output.to_owned(),
        rule,
    };
    let in_unit = |p: f64| {
        if !p.is_finite() {
            Err(refuse("not finite"))
        } else if !(-F32_SLACK..=1.0 + F32_SLACK).contains(&p) {
            Err(refuse("outside [0, 1]"))
        } else {
            Ok(p.clamp(0.0, 1.0))
        }
    };
    match (readout, values) {
        (Readout::PairColumn1, [p0, p1]) => {
            let (p0, p1) = (in_unit(*p0)?, in_unit(*p1)?);
            if (p0 + p1 - 1.0).abs() > PAIR_SUM_SLACK {
                return Err(refuse("a pair that does not sum to 1"));
            }
            Ok(p1)
        }
        (Readout::Single, [p]) => in_unit(*p),
        _ => Err(OnnxError::Inference),
    }
}

/// What `load` builds under `catch_unwind`.
struct Built {
    input_type: Float,
    output_name: String,
    readout: Readout,
    plan: Arc<TypedRunnableModel>,
}

fn build(bytes: &[u8], n_inputs: usize) -> Result<Built, OnnxError> {
    let onnx = tract_onnx::model::Onnx {
        provider: Arc::new(NoExternalData),
        ..tract_onnx::onnx()
    };
    let proto = onnx
        .proto_model_for_read(&mut &*bytes)
        .map_err(|_| OnnxError::Malformed {
            what: "protobuf does not decode",
        })?;
    let graph = proto.graph.as_ref().ok_or(OnnxError::Malformed {
        what: "the model has no graph",
    })?;
    let iface = inspect::check(graph, n_inputs, &onnx.op_register)?;

    let mut model = onnx
        .model_for_proto_model(&proto)
        .map_err(runtime("parsing"))?;
    let outlet = *model
        .outputs
        .get(iface.output_index)
        .ok_or(OnnxError::NoProbabilityOutput { float_outputs: 0 })?;
    model
        .select_output_outlets(&[outlet])
        .map_err(runtime("parsing"))?;
    let dt = match iface.input_type {
        Float::F32 => f32::datum_type(),
        Float::F64 => f64::datum_type(),
    };
    model
        .set_input_fact(0, InferenceFact::dt_shape(dt, tvec!(1, n_inputs)))
        .map_err(runtime("parsing"))?;
    let typed = model
        .into_optimized()
        .map_err(runtime("analysing and optimising"))?;

    let fact = typed
        .output_fact(0)
        .map_err(runtime("analysing and optimising"))?;
    let shape = fact.shape.as_concrete();
    let readout = match (fact.datum_type, shape) {
        (DatumType::F32 | DatumType::F64, Some([1, 2])) => Readout::PairColumn1,
        (DatumType::F32 | DatumType::F64, Some([1, 1] | [1])) => Readout::Single,
        _ => {
            return Err(OnnxError::OutputShape {
                output: iface.output_name,
                shape: shorten(&format!("{:?} {:?}", fact.datum_type, fact.shape), 64),
            });
        }
    };
    let plan = typed.into_runnable().map_err(runtime("planning"))?;
    Ok(Built {
        input_type: iface.input_type,
        output_name: iface.output_name,
        readout,
        plan,
    })
}

/// Run `f`, turning a panic into an error. tract is not written for hostile files: it indexes
/// by name and asserts in places. Nothing `f` touched outlives a panic (it is all dropped), so
/// asserting unwind safety is sound.
fn contain<T>(stage: &'static str, f: impl FnOnce() -> T) -> Result<T, OnnxError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| OnnxError::Panicked { stage })
}

fn runtime(stage: &'static str) -> impl Fn(TractError) -> OnnxError {
    move |e| OnnxError::Runtime {
        stage,
        detail: shorten(&format!("{e:#}"), MAX_DETAIL),
    }
}

/// The output's values as f64, if it is a float tensor.
fn read_floats(t: &TValue) -> Option<Vec<f64>> {
    let view = t.try_as_plain_ram().ok()?;
    match t.datum_type() {
        DatumType::F32 => Some(
            view.as_slice::<f32>()
                .ok()?
                .iter()
                .map(|v| f64::from(*v))
                .collect(),
        ),
        DatumType::F64 => Some(view.as_slice::<f64>().ok()?.to_vec()),
        _ => None,
    }
}

/// A data resolver that refuses every external file. `inspect` already refuses external
/// tensors; this closes the door at the runtime too.
struct NoExternalData;

impl ModelDataResolver for NoExternalData {
    fn read_bytes_from_path(
        &self,
        _buf: &mut Vec<u8>,
        _p: &Path,
        _offset: usize,
        _length: Option<usize>,
    ) -> TractResult<()> {
        Err(TractError::msg("external data is refused"))
    }
}

/// The model file and input width inside canonical bytes, read with the models crate's
/// bounds-checked reader.
fn read_envelope(bytes: &[u8]) -> Result<(&[u8], usize), ModelsError> {
    let mut r = Reader::new(bytes);
    if r.take(MAGIC.len())? != MAGIC {
        return Err(r.err("not an airlock ONNX envelope"));
    }
    if r.u8()? != ENVELOPE_VERSION {
        return Err(r.err("unknown envelope version"));
    }
    let mut length = || {
        let n = r.u64()?;
        usize::try_from(n).map_err(|_| r.err("length overflow"))
    };
    let n_inputs = length()?;
    let len = length()?;
    let file = r.take(len)?;
    r.expect_end()?;
    Ok((file, n_inputs))
}

/// The reader reports only [`ModelsError::Malformed`]; its offset and reason carry over.
fn envelope_error(e: ModelsError) -> OnnxError {
    match e {
        ModelsError::Malformed { offset, what } => OnnxError::Envelope { offset, what },
        // Unreachable from `Reader`, but `ModelsError` is non-exhaustive.
        _ => OnnxError::Envelope {
            offset: 0,
            what: "undecodable",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readout_checks_probabilities() {
        let mut m = Readout::PairColumn1;
        let check = |readout: Readout, values: &[f64]| probability_of(readout, "out", values);
        assert_eq!(check(m, &[0.25, 0.75]), Ok(0.75));
        assert_eq!(check(m, &[0.0, 1.0 + 5e-7]), Ok(1.0));
        assert!(matches!(
            check(m, &[0.5, 0.6]),
            Err(OnnxError::NotProbability { rule, .. }) if rule.contains("sum")
        ));
        assert!(matches!(
            check(m, &[f64::NAN, 0.5]),
            Err(OnnxError::NotProbability {
                rule: "not finite",
                ..
            })
        ));
        m = Readout::Single;
        assert_eq!(check(m, &[0.3]), Ok(0.3));
        assert!(matches!(
            check(m, &[1.5]),
            Err(OnnxError::NotProbability {
                rule: "outside [0, 1]",
                ..
            })
        ));
        assert!(matches!(
            check(m, &[-0.01]),
            Err(OnnxError::NotProbability {
                rule: "outside [0, 1]",
                ..
            })
        ));
        assert_eq!(check(m, &[0.3, 0.7]), Err(OnnxError::Inference));
    }

    #[test]
    fn envelope_rejects_truncation_and_trailing_bytes() {
        let mut good = Vec::new();
        good.extend_from_slice(MAGIC);
        good.push(ENVELOPE_VERSION);
        good.extend_from_slice(&3u64.to_le_bytes());
        good.extend_from_slice(&2u64.to_le_bytes());
        good.extend_from_slice(&[1, 2]);
        for cut in 0..good.len() {
            assert!(matches!(
                OnnxModel::from_canonical_bytes(&good[..cut]),
                Err(OnnxError::Envelope { .. })
            ));
        }
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            OnnxModel::from_canonical_bytes(&long),
            Err(OnnxError::Envelope {
                what: "trailing bytes",
                ..
            })
        ));
        // The envelope is well formed; the two bytes inside are not a model.
        assert!(matches!(
            OnnxModel::from_canonical_bytes(&good),
            Err(OnnxError::Malformed { .. })
        ));
    }
}
