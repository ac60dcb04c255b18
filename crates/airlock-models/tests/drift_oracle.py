"""The oracle for airlock-models' drift and CBPE figures: Evidently 0.7's stattests and its
legacy DataDriftPreset report, NannyML 0.13's CBPE estimators, on the cases the Rust test
writes. Reads a JSON file of cases, prints one JSON object per case."""
import json
import sys
import warnings

import numpy as np
import pandas as pd
from evidently.legacy.calculations.stattests.chisquare_stattest import _chi_stat_test
from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
from evidently.legacy.calculations.stattests.ks_stattest import _ks_stat_test
from evidently.legacy.calculations.stattests.psi import _psi
from evidently.legacy.calculations.stattests.wasserstein_distance_norm import _wasserstein_distance_norm
from evidently.legacy.calculations.stattests.z_stattest import _z_stat_test
from evidently.legacy.core import ColumnType
from evidently.legacy.metric_preset import DataDriftPreset
from evidently.legacy.pipeline.column_mapping import ColumnMapping
from evidently.legacy.report import Report
from nannyml.performance_estimation.confidence_based.metrics import (
    estimate_precision,
    estimate_recall,
    estimate_roc_auc,
)
from scipy.stats import ks_2samp

warnings.filterwarnings("ignore")

TESTS = {
    "ks": (_ks_stat_test, 0.05),
    "chi_square": (_chi_stat_test, 0.05),
    "z": (_z_stat_test, 0.05),
    "wasserstein": (_wasserstein_distance_norm, 0.1),
    "jensen_shannon": (_jensenshannon, 0.1),
    "psi": (_psi, 0.1),
}
NAMES = {
    "K-S p_value": "ks",
    "chi-square p_value": "chi_square",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensen_shannon",
    "PSI": "psi",
}


def column(values, kind):
    s = pd.Series(values, dtype=float if kind == "numeric" else object)
    return s


def case(c):
    kinds = c["kinds"]
    ref = pd.DataFrame({k: column(v, kinds[k]) for k, v in c["reference"].items()})
    cur = pd.DataFrame({k: column(v, kinds[k]) for k, v in c["current"].items()})
    out = {"columns": {}}
    for name, kind in kinds.items():
        ftype = ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical
        r = ref[name].replace([-np.inf, np.inf], np.nan).dropna()
        k = cur[name].replace([-np.inf, np.inf], np.nan).dropna()
        figures = {}
        for method in c["methods"].get(name, []):
            fn, threshold = TESTS[method]
            value, drifted = fn(r, k, ftype, threshold)
            figures[method] = {"value": float(value), "drifted": bool(drifted)}
        if kind == "numeric":
            figures["ks_d"] = float(ks_2samp(r, k)[0])
        out["columns"][name] = figures
    report = Report(metrics=[DataDriftPreset()])
    mapping = ColumnMapping(
        numerical_features=[k for k, v in kinds.items() if v == "numeric"],
        categorical_features=[k for k, v in kinds.items() if v == "categorical"],
        target=None,
        prediction=None,
    )
    report.run(reference_data=ref, current_data=cur, column_mapping=mapping)
    result = next(
        m["result"] for m in report.as_dict()["metrics"] if "drift_by_columns" in m["result"]
    )
    out["dataset_drift"] = bool(result["dataset_drift"])
    out["share_drifted"] = float(result["share_of_drifted_columns"])
    out["report"] = {
        name: {
            "method": NAMES[col["stattest_name"]],
            "score": float(col["drift_score"]),
            "drifted": bool(col["drift_detected"]),
        }
        for name, col in result["drift_by_columns"].items()
    }
    if c.get("scores"):
        p = np.asarray(c["scores"], dtype=float)
        y_pred = (p >= c["threshold"]).astype(int)
        out["cbpe"] = {
            "auroc": float(estimate_roc_auc(p, p)),
            "precision": float(estimate_precision(y_pred, p)),
            "recall": float(estimate_recall(y_pred, p)),
        }
    return out


cases = json.load(open(sys.argv[1]))
print(json.dumps([case(c) for c in cases]))
