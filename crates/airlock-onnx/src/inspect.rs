//! Checks on the decoded protobuf, before tract builds anything.
//!
//! tract turns an operator it does not know into a placeholder and fails later, deep in type
//! inference, with a message about translation; and it looks operators up by type alone, so a
//! custom-domain `MatMul` would silently run as the standard one. Reading the graph first lets
//! the refusal name every unsupported operator, its domain and its node, and refuse foreign
//! domains outright. Only nodes the chosen output depends on are checked: skl2onnx's `label`
//! branch may use operators that the probability never needs.

use std::collections::{HashMap, HashSet};

use tract_onnx::model::OnnxOpRegister;
use tract_onnx::pb::tensor_proto::DataLocation;
use tract_onnx::pb::tensor_shape_proto::dimension;
use tract_onnx::pb::{GraphProto, NodeProto, TensorProto, ValueInfoProto, type_proto};

use crate::error::{OnnxError, UnsupportedOp, shorten};

/// Operator domains whose operators tract implements under their ONNX names.
const DOMAINS: [&str; 3] = ["", "ai.onnx", "ai.onnx.ml"];

/// At most this many unsupported operators are listed in one error.
const MAX_LISTED: usize = 8;

/// Float element type of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Float {
    F32,
    F64,
}

/// What the graph's interface says, once checked.
#[derive(Debug)]
pub(crate) struct Interface {
    pub(crate) input_type: Float,
    /// Index in `graph.output` of the output read as the probability.
    pub(crate) output_index: usize,
    pub(crate) output_name: String,
}

/// Check the graph's interface and operators; choose the probability output.
pub(crate) fn check(
    graph: &GraphProto,
    n_inputs: usize,
    ops: &OnnxOpRegister,
) -> Result<Interface, OnnxError> {
    check_external(graph)?;
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    // Before IR version 4, initializers were listed among the inputs too.
    let inputs: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(OnnxError::InputCount {
            found: inputs.len(),
        });
    };
    let input_type = check_input(input, n_inputs)?;

    // tract indexes its name table with each output's name and panics on an unknown one.
    let produced: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(String::as_str))
        .chain(graph.input.iter().map(|i| i.name.as_str()))
        .chain(initializers.iter().copied())
        .collect();
    if graph
        .output
        .iter()
        .any(|o| !produced.contains(o.name.as_str()))
    {
        return Err(OnnxError::Malformed {
            what: "a graph output is produced by no node, input or initializer",
        });
    }

    let Some((output_index, output)) = probability_output(graph) else {
        let float_outputs = graph
            .output
            .iter()
            .filter(|o| float_tensor(o).is_some())
            .count();
        // With zipmap on, skl2onnx's probabilities are a sequence of maps: say so.
        let zipmaps = unsupported(graph, ops, |_, n| n.op_type == "ZipMap");
        if zipmaps.is_empty() {
            return Err(OnnxError::NoProbabilityOutput { float_outputs });
        }
        return Err(OnnxError::UnsupportedOperator { ops: zipmaps });
    };
    let needed = ancestors(graph, &output.name);
    let missing = unsupported(graph, ops, |i, _| needed.contains(&i));
    if !missing.is_empty() {
        return Err(OnnxError::UnsupportedOperator { ops: missing });
    }
    Ok(Interface {
        input_type,
        output_index,
        output_name: shorten(&output.name, 64),
    })
}

fn check_input(input: &ValueInfoProto, n_inputs: usize) -> Result<Float, OnnxError> {
    let name = || shorten(&input.name, 64);
    let Some(tensor) = tensor_type(input) else {
        return Err(OnnxError::InputType {
            input: name(),
            elem_type: "not a tensor",
        });
    };
    let float = match tensor.elem_type {
        1 => Float::F32,
        11 => Float::F64,
        other => {
            return Err(OnnxError::InputType {
                input: name(),
                elem_type: elem_type_name(other),
            });
        }
    };
    if let Some(shape) = &tensor.shape {
        if shape.dim.len() != 2 {
            return Err(OnnxError::InputRank {
                input: name(),
                rank: shape.dim.len(),
            });
        }
        if let Some(dimension::Value::DimValue(declared)) =
            shape.dim.get(1).and_then(|d| d.value.as_ref())
            && usize::try_from(*declared).ok() != Some(n_inputs)
        {
            return Err(OnnxError::DeclaredWidth {
                input: name(),
                expected: n_inputs,
                declared: usize::try_from(*declared).unwrap_or(0),
            });
        }
    }
    Ok(float)
}

/// The one floating-point output, or else the one floating-point output named `probabilities`.
fn probability_output(graph: &GraphProto) -> Option<(usize, &ValueInfoProto)> {
    let floats: Vec<(usize, &ValueInfoProto)> = graph
        .output
        .iter()
        .enumerate()
        .filter(|(_, o)| float_tensor(o).is_some())
        .collect();
    match floats.as_slice() {
        [one] => Some(*one),
        _ => {
            let mut named = floats.iter().filter(|(_, o)| o.name == "probabilities");
            match (named.next(), named.next()) {
                (Some(one), None) => Some(*one),
                _ => None,
            }
        }
    }
}

fn tensor_type(v: &ValueInfoProto) -> Option<&type_proto::Tensor> {
    match v.r#type.as_ref()?.value.as_ref()? {
        type_proto::Value::TensorType(t) => Some(t),
    }
}

fn float_tensor(v: &ValueInfoProto) -> Option<&type_proto::Tensor> {
    // FLOAT, FLOAT16, DOUBLE, BFLOAT16
    tensor_type(v).filter(|t| matches!(t.elem_type, 1 | 10 | 11 | 16))
}

/// Nodes (by index) that the named value depends on, through the top-level graph.
fn ancestors(graph: &GraphProto, output: &str) -> HashSet<usize> {
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut seen = HashSet::new();
    let mut todo = vec![output];
    while let Some(value) = todo.pop() {
        let Some(&i) = producer.get(value) else {
            continue;
        };
        if !seen.insert(i) {
            continue;
        }
        if let Some(node) = graph.node.get(i) {
            todo.extend(node.input.iter().map(String::as_str));
            // A subgraph (If, Loop, Scan) may read any outer value by name.
            for g in node
                .attribute
                .iter()
                .flat_map(|a| a.g.iter().chain(a.graphs.iter()))
            {
                todo.extend(outer_reads(g));
            }
        }
    }
    seen.into_iter().collect()
}

/// Every value name a subgraph reads, at any depth (over-approximates what it takes from outside).
fn outer_reads(graph: &GraphProto) -> Vec<&str> {
    let mut names = Vec::new();
    for node in &graph.node {
        names.extend(node.input.iter().map(String::as_str));
        for g in node
            .attribute
            .iter()
            .flat_map(|a| a.g.iter().chain(a.graphs.iter()))
        {
            names.extend(outer_reads(g));
        }
    }
    names
}

/// Top-level nodes accepted by `filter` (and, below them, every subgraph node) whose operator tract
/// lacks or whose domain is foreign.
fn unsupported(
    graph: &GraphProto,
    ops: &OnnxOpRegister,
    filter: impl Fn(usize, &NodeProto) -> bool,
) -> Vec<UnsupportedOp> {
    let mut found = Vec::new();
    for (_, node) in graph.node.iter().enumerate().filter(|(i, n)| filter(*i, n)) {
        collect_unsupported(node, ops, &mut found);
    }
    found
}

fn collect_unsupported(node: &NodeProto, ops: &OnnxOpRegister, found: &mut Vec<UnsupportedOp>) {
    if found.len() >= MAX_LISTED {
        return;
    }
    if !DOMAINS.contains(&node.domain.as_str()) || !ops.0.contains_key(&node.op_type) {
        let name = if node.name.is_empty() {
            node.output.first().map_or("", String::as_str)
        } else {
            &node.name
        };
        found.push(UnsupportedOp::new(&node.op_type, &node.domain, name));
    }
    for g in node
        .attribute
        .iter()
        .flat_map(|a| a.g.iter().chain(a.graphs.iter()))
    {
        for inner in &g.node {
            collect_unsupported(inner, ops, found);
        }
    }
}

/// Refuse tensors stored outside the file, at any depth: a served model must not read the
/// server's files.
fn check_external(graph: &GraphProto) -> Result<(), OnnxError> {
    let external = |t: &TensorProto| {
        t.data_location == Some(DataLocation::External as i32) || !t.external_data.is_empty()
    };
    let refuse = |t: &TensorProto| OnnxError::ExternalData {
        tensor: shorten(&t.name, 64),
    };
    for t in graph.initializer.iter().chain(
        graph
            .sparse_initializer
            .iter()
            .flat_map(|s| s.values.iter()),
    ) {
        if external(t) {
            return Err(refuse(t));
        }
    }
    for node in &graph.node {
        for a in &node.attribute {
            for t in a.t.iter().chain(a.tensors.iter()) {
                if external(t) {
                    return Err(refuse(t));
                }
            }
            for g in a.g.iter().chain(a.graphs.iter()) {
                check_external(g)?;
            }
        }
    }
    Ok(())
}

fn elem_type_name(t: i32) -> &'static str {
    match t {
        1 => "FLOAT",
        2 => "UINT8",
        3 => "INT8",
        4 => "UINT16",
        5 => "INT16",
        6 => "INT32",
        7 => "INT64",
        8 => "STRING",
        9 => "BOOL",
        10 => "FLOAT16",
        11 => "DOUBLE",
        12 => "UINT32",
        13 => "UINT64",
        16 => "BFLOAT16",
        _ => "another type",
    }
}
