//! The crate's error type. Variants name operators, nodes, inputs, outputs and rules; never an
//! input value (a prediction input is patient data).

use std::fmt;

/// Everything that can go wrong while importing an ONNX model or predicting with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// The bytes are not an ONNX model (protobuf does not decode, or there is no graph).
    #[error("the file is not a readable ONNX model: {what}")]
    Malformed {
        /// What was wrong.
        what: &'static str,
    },
    /// The graph uses operators the runtime cannot run.
    #[error("{}", UnsupportedList(ops))]
    UnsupportedOperator {
        /// The operators, with the nodes that use them, in graph order.
        ops: Vec<UnsupportedOp>,
    },
    /// A tensor of the model is stored outside the file; Airlock serves self-contained files only.
    #[error(
        "tensor `{tensor}` is stored in an external file; export the model with its weights \
         embedded in the .onnx file"
    )]
    ExternalData {
        /// Tensor name.
        tensor: String,
    },
    /// `n_inputs` was zero.
    #[error("the input width must be at least 1")]
    ZeroWidth,
    /// The graph does not have exactly one input.
    #[error("the model has {found} inputs; Airlock serves models with exactly one")]
    InputCount {
        /// Inputs found (initializers excluded).
        found: usize,
    },
    /// The input's element type is not float32 or float64.
    #[error("input `{input}` has element type {elem_type}; expected float32 or float64")]
    InputType {
        /// Input name.
        input: String,
        /// ONNX element type name (`INT64`, `STRING`...).
        elem_type: &'static str,
    },
    /// The input is declared with a rank other than 2 (`[batch, features]`).
    #[error("input `{input}` has rank {rank}; expected [batch, features]")]
    InputRank {
        /// Input name.
        input: String,
        /// Declared rank.
        rank: usize,
    },
    /// The file declares a feature count that differs from the one asked for.
    #[error("input `{input}` declares {declared} features, but {expected} were asked for")]
    DeclaredWidth {
        /// Input name.
        input: String,
        /// Width asked for at load.
        expected: usize,
        /// Width declared in the file.
        declared: usize,
    },
    /// No output can be read as the positive-class probability.
    #[error(
        "no output is a probability: found {float_outputs} floating-point outputs, expected one, \
         or one named `probabilities` (skl2onnx with zipmap disabled)"
    )]
    NoProbabilityOutput {
        /// Floating-point tensor outputs found.
        float_outputs: usize,
    },
    /// The chosen output has a shape this crate does not read.
    #[error(
        "output `{output}` has shape {shape} for one input row; expected [1, 2] (class \
         probabilities), [1, 1] or [1]"
    )]
    OutputShape {
        /// Output name.
        output: String,
        /// The shape tract inferred, e.g. `[1, 3]`.
        shape: String,
    },
    /// The runtime refused the model while analysing or optimising it.
    #[error("the runtime refused the model while {stage}: {detail}")]
    Runtime {
        /// `parsing`, `analysing and optimising`, `planning`.
        stage: &'static str,
        /// The runtime's message, shortened (no input value exists at load time).
        detail: String,
    },
    /// The runtime panicked on this model; the panic was contained.
    #[error("the runtime panicked while {stage}")]
    Panicked {
        /// What it was doing.
        stage: &'static str,
    },
    /// An input vector has the wrong length.
    #[error("input has {found} values, the model expects {expected}")]
    Dimension {
        /// Expected length.
        expected: usize,
        /// Found length.
        found: usize,
    },
    /// An input value is not finite, or not representable in the model's float type.
    #[error("input position {index} is not a finite number in the model's float type")]
    NonFiniteInput {
        /// Zero-based position in the input vector.
        index: usize,
    },
    /// Inference failed on a row (the runtime's message is withheld: it may quote the input).
    #[error("inference failed")]
    Inference,
    /// The output is not a probability.
    #[error("output `{output}` is {rule}, so it is not a probability")]
    NotProbability {
        /// Output name.
        output: String,
        /// The rule broken: `not finite`, `outside [0, 1]`, `a pair that does not sum to 1`.
        rule: &'static str,
    },
    /// Canonical bytes (see [`crate::OnnxModel::to_canonical_bytes`]) do not decode.
    #[error("canonical ONNX model bytes are malformed at offset {offset}: {what}")]
    Envelope {
        /// Byte offset where decoding stopped.
        offset: usize,
        /// What was wrong.
        what: &'static str,
    },
}

/// An operator the runtime cannot run, and the node that uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnsupportedOp {
    /// ONNX operator type (`Scaler`, `TreeEnsembleClassifier`...).
    pub op_type: String,
    /// Operator domain (`ai.onnx` for the default domain, `ai.onnx.ml`...).
    pub domain: String,
    /// Node name (or its first output's name when the node has none).
    pub node: String,
}

impl UnsupportedOp {
    pub(crate) fn new(op_type: &str, domain: &str, node: &str) -> Self {
        UnsupportedOp {
            op_type: shorten(op_type, 64),
            domain: if domain.is_empty() {
                "ai.onnx".to_owned()
            } else {
                shorten(domain, 64)
            },
            node: shorten(node, 64),
        }
    }
}

impl fmt::Display for UnsupportedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` (domain {}, node `{}`)",
            self.op_type, self.domain, self.node
        )
    }
}

struct UnsupportedList<'a>(&'a [UnsupportedOp]);

impl fmt::Display for UnsupportedList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ops = self.0;
        if ops.len() == 1 {
            f.write_str("ONNX operator ")?;
        } else {
            f.write_str("ONNX operators ")?;
        }
        for (i, op) in ops.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{op}")?;
        }
        let (verb, pronoun) = if ops.len() == 1 {
            ("is", "it")
        } else {
            ("are", "them")
        };
        write!(f, " {verb} not supported by the runtime; ")?;
        let zipmap = ops.iter().filter(|op| op.op_type == "ZipMap").count();
        if zipmap > 0 {
            f.write_str(
                "export the classifier with zipmap disabled (skl2onnx: \
                 options={id(clf): {'zipmap': False}})",
            )?;
            if zipmap == ops.len() {
                return f.write_str(" or train in Airlock");
            }
            f.write_str("; for the others, ")?;
        }
        let pronoun = if zipmap > 0 { "them" } else { pronoun };
        write!(
            f,
            "export without {pronoun} (e.g. fold a scaler into the model's weights) or train in \
             Airlock"
        )
    }
}

/// At most `max` characters of `s`, marked when cut. Names in a file are chosen by its author.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((cut, _)) => format!("{}…", s.get(..cut).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_messages_name_operator_domain_node_and_a_way_out() {
        let one = OnnxError::UnsupportedOperator {
            ops: vec![UnsupportedOp::new("Scaler", "ai.onnx.ml", "Scaler")],
        };
        assert_eq!(
            one.to_string(),
            "ONNX operator `Scaler` (domain ai.onnx.ml, node `Scaler`) is not supported by the \
             runtime; export without it (e.g. fold a scaler into the model's weights) or train in \
             Airlock"
        );
        let zip = OnnxError::UnsupportedOperator {
            ops: vec![
                UnsupportedOp::new("ZipMap", "ai.onnx.ml", "ZipMap"),
                UnsupportedOp::new("Foo", "", "n1"),
            ],
        };
        let msg = zip.to_string();
        assert!(msg.starts_with("ONNX operators `ZipMap`"), "{msg}");
        assert!(
            msg.contains("`Foo` (domain ai.onnx, node `n1`) are not"),
            "{msg}"
        );
        assert!(msg.contains("zipmap disabled"), "{msg}");
        assert!(msg.contains("for the others, export without them"), "{msg}");
    }

    #[test]
    fn shorten_cuts_on_characters() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcd", 3), "abc…");
        assert_eq!(shorten("ééé", 2), "éé…");
    }
}
