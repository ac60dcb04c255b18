#!/usr/bin/env python3
"""Export scikit-learn classifiers to ONNX as the test oracle for airlock-onnx.

Usage: export_sklearn.py OUT_DIR

Builds a deterministic synthetic binary classification set (make_classification, fixed seed,
12 features), fits a LogisticRegression, a small MLPClassifier, a StandardScaler +
LogisticRegression pipeline and a three-class LogisticRegression, and exports each with skl2onnx
(zipmap disabled, one float32 input named `input` of shape [None, 12]). Writes into OUT_DIR:

  logistic.onnx, mlp.onnx, scaler_logistic.onnx, multiclass.onnx, logistic_zipmap.onnx
  sigmoid.onnx, raw_score.onnx, external.onnx (hand-built from the logistic weights; see
  hand_built)
  cases.json: {"n_features", "rows" (200 rows, float32 values), "logistic", "mlp" (scikit-learn
               predict_proba[:, 1] on those rows, float64 repr), "logistic_coef",
               "logistic_intercept", "versions"}

Rows are rounded to float32 before scikit-learn sees them, so both sides predict on the same
numbers; scikit-learn then computes in float64 and the ONNX runtime in float32.
Exit status 3 means a package is missing (the Rust test skips unless AIRLOCK_REQUIRE_ONNX=1).
"""

import json
import os
import sys

try:
    import numpy as np
    import sklearn
    import skl2onnx
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from onnx import TensorProto, helper, numpy_helper
except ImportError as e:  # the caller decides whether this is a skip or a failure
    print(f"missing python package: {e}", file=sys.stderr)
    sys.exit(3)

N_FEATURES = 12
N_TEST = 200
SEED = 20240611


def export(model, path, zipmap=False):
    onx = to_onnx(
        model,
        initial_types=[("input", FloatTensorType([None, N_FEATURES]))],
        options={id(model): {"zipmap": zipmap}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())


def hand_built(logistic, out):
    """Graphs written with onnx.helper from the logistic weights, as PyTorch-style exports are:
    sigmoid.onnx (MatMul, Add, Sigmoid: one [N, 1] output, the probability), raw_score.onnx
    (the same without Sigmoid: a score, not a probability) and external.onnx (the weights in an
    external file that must never be read)."""
    w = logistic.coef_.astype(np.float32).reshape(N_FEATURES, 1)
    b = logistic.intercept_.astype(np.float32).reshape(1)

    def graph(name, with_sigmoid, external=False):
        wt = numpy_helper.from_array(w, "w")
        if external:
            wt = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[N_FEATURES, 1])
            wt.data_location = TensorProto.EXTERNAL
            entry = wt.external_data.add()
            entry.key, entry.value = "location", "../../../../etc/passwd"
        nodes = [
            helper.make_node("MatMul", ["input", "w"], ["z0"], name="matmul"),
            helper.make_node("Add", ["z0", "b"], ["score" if not with_sigmoid else "z"], name="add"),
        ]
        if with_sigmoid:
            nodes.append(helper.make_node("Sigmoid", ["z"], ["score"], name="sigmoid"))
        g = helper.make_graph(
            nodes,
            name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, N_FEATURES])],
            [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])],
            [wt, numpy_helper.from_array(b, "b")],
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        with open(os.path.join(out, name + ".onnx"), "wb") as f:
            f.write(m.SerializeToString())

    graph("sigmoid", True)
    graph("raw_score", False)
    graph("external", True, external=True)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)

    x, y = make_classification(
        n_samples=2000,
        n_features=N_FEATURES,
        n_informative=6,
        n_redundant=2,
        random_state=SEED,
    )
    x = x.astype(np.float32).astype(np.float64)
    # Shift and scale some columns so that the scaler in the pipeline does real work.
    x[:, 0] = x[:, 0] * 10.0 + 50.0
    x = x.astype(np.float32)
    x_train, x_test, y_train, y_test = x[:-N_TEST], x[-N_TEST:], y[:-N_TEST], y[-N_TEST:]
    x_test64 = x_test.astype(np.float64)

    logistic = LogisticRegression(max_iter=1000).fit(x_train.astype(np.float64), y_train)
    mlp = MLPClassifier(
        hidden_layer_sizes=(16, 8), max_iter=500, random_state=SEED
    ).fit(x_train.astype(np.float64), y_train)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        x_train.astype(np.float64), y_train
    )
    y3 = np.digitize(x_train[:, 1], np.quantile(x_train[:, 1], [1 / 3, 2 / 3]))
    multiclass = LogisticRegression(max_iter=1000).fit(x_train.astype(np.float64), y3)

    export(logistic, os.path.join(out, "logistic.onnx"))
    export(mlp, os.path.join(out, "mlp.onnx"))
    export(pipeline, os.path.join(out, "scaler_logistic.onnx"))
    export(multiclass, os.path.join(out, "multiclass.onnx"))

    export(logistic, os.path.join(out, "logistic_zipmap.onnx"), zipmap=True)
    hand_built(logistic, out)

    cases = {
        "n_features": N_FEATURES,
        "rows": [[float(v) for v in row] for row in x_test64],
        "logistic": [float(p) for p in logistic.predict_proba(x_test64)[:, 1]],
        "mlp": [float(p) for p in mlp.predict_proba(x_test64)[:, 1]],
        "labels": [int(v) for v in y_test],
        "logistic_coef": [float(c) for c in logistic.coef_[0]],
        "logistic_intercept": float(logistic.intercept_[0]),
        "versions": {
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "skl2onnx": skl2onnx.__version__,
        },
    }
    # json writes floats with repr, which round-trips float64 exactly.
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f)


if __name__ == "__main__":
    main()
