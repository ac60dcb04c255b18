#!/usr/bin/env python3
"""scikit-learn baselines for the airlock-models readmission example, on the SAME split.

    python3 bench/models_baseline.py [OUT_DIR] [--no-run]

First runs `cargo run --release -p airlock-models --example readmission OUT_DIR` (unless
--no-run, which reuses what is in OUT_DIR), so both sides are timed in the same run. Then reads the split written by the example (train.csv, test.csv, signature.json, experiment_*.json),
encodes features from the example's signature (one-hot + StandardScaler for logistic regression,
ordinal category codes for the boosted trees, exactly as airlock-models does), trains
LogisticRegression(C=1) and HistGradientBoostingClassifier with airlock's default
hyper-parameters (early stopping off), and prints a table of held-out metrics next to
airlock-models' own, with the ratio of training times measured in this run and the example's.
It also scores airlock's saved test predictions with scikit-learn's metrics, which checks
airlock's AUROC / average precision / Brier implementations on real data.
"""
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# airlock-models trains on one thread; so does scikit-learn here, for a like-for-like time.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows


def encode(rows, signature, onehot):
    cols = []
    for feat in signature["features"]:
        name, kind = feat["name"], feat["kind"]
        if kind["type"] == "numeric":
            cols.append(np.array([float(r[name]) for r in rows])[:, None])
        else:
            cats = kind["categories"]
            index = {c: i for i, c in enumerate(cats)}
            codes = np.array([index[r[name]] for r in rows])
            if onehot:
                m = np.zeros((len(rows), len(cats)))
                m[np.arange(len(rows)), codes] = 1.0
                cols.append(m)
            else:
                cols.append(codes[:, None].astype(float))
    return np.hstack(cols)


def metrics(y, p):
    return roc_auc_score(y, p), average_precision_score(y, p), brier_score_loss(y, p)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    out = Path(args[0] if args else "/tmp/airlock-models-readmission")
    if "--no-run" not in sys.argv:
        subprocess.run(
            ["cargo", "run", "-q", "--release", "-p", "airlock-models", "--example", "readmission", str(out)],
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        print()
    signature = json.loads((out / "signature.json").read_text())
    train, test = load(out / "train.csv"), load(out / "test.csv")
    y_tr = np.array([int(r["label"]) for r in train])
    y_te = np.array([int(r["label"]) for r in test])
    exp = {k: json.loads((out / f"experiment_{k}.json").read_text()) for k in ("logistic", "gbdt")}
    lp, gp = exp["logistic"]["params"], exp["gbdt"]["params"]

    results = []
    x_tr, x_te = encode(train, signature, True), encode(test, signature, True)
    lr = make_pipeline(StandardScaler(), LogisticRegression(C=1.0 / lp["l2"], max_iter=5000, tol=1e-10))
    t = time.perf_counter()
    lr.fit(x_tr, y_tr)
    t_lr = time.perf_counter() - t
    p_lr = lr.predict_proba(x_te)[:, 1]
    results.append(("logistic", p_lr, t_lr))

    x_tr, x_te = encode(train, signature, False), encode(test, signature, False)
    hgb = HistGradientBoostingClassifier(
        learning_rate=gp["learning_rate"],
        max_iter=gp["n_estimators"],
        max_leaf_nodes=gp["max_leaves"],
        max_depth=gp["max_depth"] or None,
        min_samples_leaf=gp["min_samples_leaf"],
        l2_regularization=gp["l2"],
        max_bins=min(gp["max_bins"], 255),
        early_stopping=False,
        random_state=0,
    )
    t = time.perf_counter()
    hgb.fit(x_tr, y_tr)
    t_hgb = time.perf_counter() - t
    p_hgb = hgb.predict_proba(x_te)[:, 1]
    results.append(("gbdt", p_hgb, t_hgb))

    print(f"held-out rows: {len(y_te)} ({y_te.sum()} positive); train rows: {len(y_tr)}")
    print(f"{'model':<10} {'impl':<14} {'AUROC':>7} {'AUPRC':>7} {'Brier':>7} {'train s':>8}")
    for name, p, secs in results:
        m = exp[name]["metrics"]
        ours = np.array([float(r[f"p_{name}"]) for r in test])
        print(f"{name:<10} {'airlock':<14} {m['auroc']:7.4f} {m['auprc']:7.4f} {m['brier']:7.4f} "
              f"{exp[name]['training_seconds']:8.2f}")
        a, ap, b = metrics(y_te, p)
        print(f"{'':<10} {'scikit-learn':<14} {a:7.4f} {ap:7.4f} {b:7.4f} {secs:8.2f}")
        sa, sap, sb = metrics(y_te, ours)
        print(f"{'':<10} check: max |p_airlock - p_sklearn| = {np.max(np.abs(ours - p)):.1e}; "
              f"sklearn metrics of airlock's predictions differ from airlock's by "
              f"{max(abs(sa - m['auroc']), abs(sap - m['auprc']), abs(sb - m['brier'])):.1e}; "
              f"train time airlock/sklearn = {exp[name]['training_seconds'] / secs:.2f}")


if __name__ == "__main__":
    main()
