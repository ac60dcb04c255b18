"""Reference figures for tests/validation_oracle.rs.

Usage: python3 validation_oracle.py DATA.csv CONFIG.json OUT.json

Recomputes the measured part of a validation report from the same labels, scores and groups:

- point estimates with scikit-learn (roc_auc_score, average_precision_score, brier_score_loss,
  log_loss) and Fairlearn (MetricFrame by_group, difference() and ratio() with their default
  method="between_groups", equalized_odds_difference, demographic_parity_ratio), groups smaller
  than the minimum removed first, as the engine leaves them out;
- the expected calibration error in numpy from its definition (10 equal-frequency bins: a row
  with r rows scoring strictly below it falls in bin floor(10 r / n); ECE is the sum over bins
  of |sum(p - y)| / n) and the calibration slope and intercept by Newton's method in numpy on
  y ~ a + b logit(p) (p clipped to [1e-15, 1 - 1e-15], start a = 0, b = 1, a step halved while
  it lowers the log-likelihood, stop when no coefficient moves by 1e-10; no statsmodels);
- the bootstrap by replaying the engine's SplitMix64 draws (one stream, n indices per
  resample, index = (next_u64 * n) >> 64), recomputing every statistic on each resample where
  it is defined, and taking np.percentile(values, [2.5, 97.5]).

Writes JSON shaped like the engine's report (`metrics`, `groups`, `disparities`).
"""

import csv
import json
import sys

import numpy as np
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_score,
    roc_auc_score,
)

MASK = (1 << 64) - 1
METRICS = ["auroc", "tpr", "fpr", "ppv", "selection_rate", "ece"]


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        return (self.next_u64() * n) >> 64


def ece(y, p):
    n = len(p)
    if n == 0:
        return None
    ranks = np.searchsorted(np.sort(p), p, side="left")
    bins = np.minimum((10 * ranks) // n, 9)
    sums = np.zeros(10)
    np.add.at(sums, bins, p - y)
    return float(np.abs(sums).sum() / n)


def sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def calibration(y, p):
    pc = np.clip(p, 1e-15, 1 - 1e-15)
    x = np.log(pc / (1 - pc))
    yf = y.astype(float)

    def loglik(a, b):
        eta = a + b * x
        return float(np.sum(yf * eta - np.logaddexp(0.0, eta)))

    a, b = 0.0, 1.0
    cur = loglik(a, b)
    for _ in range(100):
        mu = sigmoid(a + b * x)
        w = mu * (1 - mu)
        g0, g1 = np.sum(yf - mu), np.sum((yf - mu) * x)
        h00, h01, h11 = w.sum(), (w * x).sum(), (w * x * x).sum()
        det = h00 * h11 - h01 * h01
        if not (np.isfinite(det) and det > 1e-12 * h00 * h11):
            return None
        da = (h11 * g0 - h01 * g1) / det
        db = (h00 * g1 - h01 * g0) / det
        t, accepted = 1.0, False
        for _ in range(50):
            nxt = loglik(a + t * da, b + t * db)
            if nxt >= cur - 1e-12 * (1 + abs(cur)):
                cur, accepted = nxt, True
                break
            t *= 0.5
        if not accepted:
            return None
        a, b = a + t * da, b + t * db
        if max(abs(t * da), abs(t * db)) < 1e-10:
            return (float(a), float(b)) if np.isfinite(a) and np.isfinite(b) else None
    return None


def overall_stats(y, p):
    both = 0 < y.sum() < len(y)
    fit = calibration(y, p)
    return {
        "auroc": float(roc_auc_score(y, p)) if both else None,
        "auprc": float(average_precision_score(y, p)) if both else None,
        "brier": float(brier_score_loss(y, p, labels=[0, 1])),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "ece": ece(y, p),
        "slope": fit[1] if fit else None,
        "intercept": fit[0] if fit else None,
    }


def group_stats(y, p, threshold):
    """Engine semantics: a rate with an empty denominator is undefined (None)."""
    n = len(y)
    if n == 0:
        return dict.fromkeys(METRICS)
    sel = p >= threshold
    pos = int(y.sum())
    neg = n - pos
    tp = int((sel & (y == 1)).sum())
    fp = int((sel & (y == 0)).sum())
    rate = lambda a, b: a / b if b > 0 else None  # noqa: E731
    return {
        "auroc": float(roc_auc_score(y, p)) if pos > 0 and neg > 0 else None,
        "tpr": rate(tp, pos),
        "fpr": rate(fp, neg),
        "ppv": rate(tp, tp + fp),
        "selection_rate": rate(tp + fp, n),
        "ece": ece(y, p),
    }


def disparity(groups):
    diff, ratio = {}, {}
    for m in METRICS:
        vals = [g[m] for g in groups if g[m] is not None]
        if len(vals) >= 2:
            diff[m] = max(vals) - min(vals)
            if max(vals) > 0:
                ratio[m] = min(vals) / max(vals)
    eod = max(diff["tpr"], diff["fpr"]) if "tpr" in diff and "fpr" in diff else None
    return diff, ratio, eod, ratio.get("selection_rate")


def estimate(value, draws):
    if value is None:
        return None
    vals = [d for d in draws if d is not None]
    interval = [float(v) for v in np.percentile(vals, [2.5, 97.5])] if vals else None
    return {"value": float(value), "interval": interval, "resamples": len(vals)}


def main():
    data_path, config_path, out_path = sys.argv[1:4]
    with open(config_path) as f:
        cfg = json.load(f)
    with open(data_path, newline="") as f:
        rows = list(csv.DictReader(f))
    y = np.array([int(r["y"]) for r in rows])
    p = np.array([float(r["p"]) for r in rows])
    attrs = cfg["attributes"]
    col = {a: np.array([r[a] for r in rows]) for a in attrs}
    thr, min_size = cfg["threshold"], cfg["min_group_size"]
    n = len(y)
    y_hat = (p >= thr).astype(int)

    # Groups large enough to measure, per attribute (values in byte order).
    measured = {}
    for a in attrs:
        values, counts = np.unique(col[a], return_counts=True)
        measured[a] = [(str(v), int(c)) for v, c in zip(values, counts)]

    # Replay the bootstrap.
    rng = SplitMix64(cfg["seed"])
    draws = []
    for _ in range(cfg["resamples"]):
        idx = np.array([rng.below(n) for _ in range(n)])
        ys, ps = y[idx], p[idx]
        d = {"overall": overall_stats(ys, ps), "groups": {}, "disp": {}}
        for a in attrs:
            cs = col[a][idx]
            gs = []
            for v, c in measured[a]:
                if c < min_size:
                    continue
                m = cs == v
                g = group_stats(ys[m], ps[m], thr)
                d["groups"][(a, v)] = g
                gs.append(g)
            d["disp"][a] = disparity(gs)
        draws.append(d)

    point = overall_stats(y, p)
    metrics = {"n": n, "positives": int(y.sum())}
    for k in ["auroc", "auprc", "brier", "log_loss", "ece", "slope", "intercept"]:
        metrics[k] = estimate(point[k], [d["overall"][k] for d in draws])

    groups, disparities = [], []
    for a in attrs:
        keep = np.isin(col[a], [v for v, c in measured[a] if c >= min_size])
        yk, pk, hk, sk = y[keep], p[keep], y_hat[keep], col[a][keep]
        rates = MetricFrame(
            metrics={
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
                "ppv": precision_score,
                "selection_rate": selection_rate,
            },
            y_true=yk,
            y_pred=hk,
            sensitive_features=sk,
        )
        scored = MetricFrame(
            metrics={"auroc": roc_auc_score, "ece": ece},
            y_true=yk,
            y_pred=pk,
            sensitive_features=sk,
        )
        for v, c in measured[a]:
            if c < min_size:
                groups.append(
                    {"attribute": a, "value": v, "too_small": True, "n": None, "positives": None}
                    | dict.fromkeys(METRICS)
                )
                continue
            entry = {
                "attribute": a,
                "value": v,
                "too_small": False,
                "n": c,
                "positives": int(y[col[a] == v].sum()),
            }
            for m in METRICS:
                frame = scored if m in ("auroc", "ece") else rates
                entry[m] = estimate(
                    float(frame.by_group.loc[v, m]), [d["groups"][(a, v)][m] for d in draws]
                )
            groups.append(entry)
        diff = {**rates.difference().to_dict(), **scored.difference().to_dict()}
        ratio = {**rates.ratio().to_dict(), **scored.ratio().to_dict()}
        pick = lambda i, m: [d["disp"][a][i].get(m) for d in draws]  # noqa: E731
        disparities.append(
            {
                "attribute": a,
                "groups_measured": sum(1 for _, c in measured[a] if c >= min_size),
                "groups_too_small": sum(1 for _, c in measured[a] if c < min_size),
                "difference": {m: estimate(diff[m], pick(0, m)) for m in METRICS},
                "ratio": {m: estimate(ratio[m], pick(1, m)) for m in METRICS},
                "equalized_odds_difference": estimate(
                    equalized_odds_difference(yk, hk, sensitive_features=sk),
                    [d["disp"][a][2] for d in draws],
                ),
                "demographic_parity_ratio": estimate(
                    demographic_parity_ratio(yk, hk, sensitive_features=sk),
                    [d["disp"][a][3] for d in draws],
                ),
            }
        )

    with open(out_path, "w") as f:
        json.dump({"metrics": metrics, "groups": groups, "disparities": disparities}, f)


if __name__ == "__main__":
    main()
