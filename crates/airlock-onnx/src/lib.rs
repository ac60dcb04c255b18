//! # airlock-onnx: may this ONNX file be served, and what does it predict?
//!
//! Data scientists train in scikit-learn or PyTorch, export ONNX, and deploy through Airlock.
//! [`OnnxModel::load`] decides whether a file can be served and plans it; [`OnnxModel`] then
//! answers [`OnnxModel::predict_proba`] in process with [tract](https://github.com/sonos/tract)
//! (pure Rust, no download, no native runtime).
//!
//! **What is served.** Binary classifiers over one numeric vector: one float32 or float64 input
//! `[batch, n_inputs]`, and an output that holds the positive-class probability: the only
//! floating-point output, or the one named `probabilities` (skl2onnx classifiers exported with
//! `options={id(clf): {'zipmap': False}}`), shaped `[N, 2]` (column 1) or `[N, 1]` / `[N]`.
//! The plan is fixed to one row, `[1, n_inputs]`, because single-row latency is what serving
//! needs; [`OnnxModel::predict_batch`] runs rows through it in turn. Every output is checked to be
//! a probability (finite, in [0, 1], a class pair summing to 1) before it is returned.
//!
//! **What is refused, and why it says so.** The protobuf is read before tract builds anything
//! (`inspect`): every operator the probability depends on must be one tract implements, in the
//! default or `ai.onnx.ml` domain, and the refusal names each missing operator, its domain and
//! its node (tract 0.23 lacks, e.g., `Scaler`, which skl2onnx emits for `StandardScaler`).
//! Tensors stored in external files are refused (a served model must not read the server's
//! files), and tract's file resolver is replaced by one that refuses too.
//!
//! **Hostile files.** tract is not written for hostile input: it indexes by name and asserts.
//! Loading and running happen under `catch_unwind`, so a panic becomes
//! [`OnnxError::Panicked`]. (The process's panic hook still runs; a server should install one
//! that does not print payloads.)
//!
//! **No values in errors.** [`OnnxError`] carries operator, node, input and output names and
//! the rule broken; inference failures withhold tract's message, which may quote the input.
//!
//! **Identity.** [`OnnxModel::sha256`] names the original file; [`OnnxModel::to_canonical_bytes`]
//! (also [`airlock_models::Model::to_bytes`]) adds the input width, so the model can be rebuilt
//! from bytes alone. The kind is [`airlock_models::ModelKind::Onnx`].

mod error;
mod inspect;
mod model;
mod registry;

pub use error::{OnnxError, UnsupportedOp};
pub use model::OnnxModel;
pub use registry::TractRuntime;
