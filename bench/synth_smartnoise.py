"""SmartNoise MST on the same coded table as Airlock's MST benchmark, for a side-by-side.

Reads the benchmark's column spec (declared categorical domains, numeric bounds and bins, delta),
codes the real table exactly as `airlock_models::synth` does (one extra missing-or-other cell per
column), runs SmartNoise's MST at the given epsilon and the spec's delta, decodes the synthetic
codes and writes OUT.csv (spec columns, as many rows as the real table) plus OUT.csv.json with
{epsilon, delta, rows, seconds (fit + sample only), smartnoise_synth_version, mbi_version,
sampler}.

Not run in CI. Needs its own virtual environment:

    python3 -m venv /tmp/sn && /tmp/sn/bin/pip install smartnoise-synth
    /tmp/sn/bin/python bench/synth_smartnoise.py --spec SPEC.json --data REAL.csv \\
        --epsilon 1.0 --out OUT.csv [--seed N]

Declared domains: no budget goes to preprocessing. The MST is given a TableTransformer of
LabelTransformer(nullable=False), one per column, each fitted on the public list of codes
0..size-1 taken from the spec, never on the data; the transformer is then already fitted, so
`fit(..., preprocessor_eps=0.0)` only applies it, and its cardinalities (the mbi Domain sizes)
are the declared sizes even for cells the data never uses. snsynth's MST then spends the whole
(epsilon, delta) as in McKenna et al.: a third of rho on one-way marginals, a third on choosing
the tree, a third on the tree's two-way marginals.

Decoding follows `SynthColumn::decode` on the Rust side rather than bin midpoints: a numeric bin
becomes a value drawn uniformly from it (a whole number when lo and hi are whole), the missing
cell an empty string, so that both outputs re-code to the same cells and have the same spread.

Sampling: mbi 1.1.0 (the only mbi smartnoise-synth 1.0.8 accepts: mbi>=1.1.0,<2) has a bug in
its default "round" sampler: within each parent group a child's values are assigned in row order,
so all columns sharing a parent come out sorted together, and every pair not on the tree gets a
strong spurious dependence (on Diabetes 130 at epsilon 1, mean 2-way TVD 0.18 instead of 0.02).
mbi 2.0.0 fixes it by shuffling each group first. So by default the fitted model is sampled with
mbi's "sample" method (i.i.d. draws from the same model: post-processing, no budget);
--mbi-round keeps the shipped behaviour.

--seed seeds NumPy (tree selection, sampling, decompression, decoding). SmartNoise draws the
Gaussian noise from OpenDP, which cannot be seeded, so runs are never exactly repeatable.
"""

import argparse
import csv
import json
import math
import os
import tempfile
import time
from importlib.metadata import version

import numpy as np
import pandas as pd
from snsynth import Synthesizer
from snsynth.transform import LabelTransformer, TableTransformer


def parse_number(cell):
    # Rust's `cell.trim().parse::<f64>()`, finite only; Python's float() also takes "1_000".
    try:
        v = float(cell) if "_" not in cell else math.nan
    except ValueError:
        return math.nan
    return v if math.isfinite(v) else math.nan


def encode(col, cells):
    if col["kind"] == "categorical":
        index = {v: i for i, v in enumerate(col["domain"])}
        return np.array([index.get(c, len(index)) for c in cells], dtype=np.int64)
    lo, hi, bins = float(col["lo"]), float(col["hi"]), int(col["bins"])
    v = np.clip(np.array([parse_number(c) for c in cells]), lo, hi)
    b = np.floor((v - lo) / (hi - lo) * bins)  # same float operations as the Rust side
    return np.where(np.isnan(v), bins, np.clip(np.nan_to_num(b), 0, bins - 1)).astype(np.int64)


def decode(col, codes, rng):
    codes = np.asarray(codes, dtype=np.int64)
    if col["kind"] == "categorical":
        domain = col["domain"] + [""]
        return [domain[c] for c in codes]
    lo, hi, bins = float(col["lo"]), float(col["hi"]), int(col["bins"])
    w = (hi - lo) / bins
    b = np.minimum(codes, bins - 1)
    a, z = lo + w * b, lo + w * (b + 1)
    # A whole number drawn from the bin when the bounds are whole and the bin holds one;
    # otherwise a fraction drawn inside the bin (as the Rust side decodes).
    first = np.ceil(a)
    last = np.where(b + 1 == bins, hi, np.ceil(z) - 1.0)
    k = np.maximum(last - first + 1, 1).astype(np.int64)
    whole = first + rng.integers(0, k)
    frac = a + (z - a) * rng.random(len(codes))
    integer = lo.is_integer() and hi.is_integer()
    out = [str(int(w)) if integer and l >= f else repr(float(x))
           for w, x, f, l in zip(whole, frac, first, last)]
    return ["" if c >= bins else s for c, s in zip(codes, out)]


class IidSampler:
    """The fitted mbi model, sampled i.i.d. instead of by mbi 1.1.0's broken rounding."""

    def __init__(self, model):
        self.model = model

    def synthetic_data(self, rows=None):
        return self.model.synthetic_data(rows=rows, method="sample")


def write_atomic(path, write):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--epsilon", type=float, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--mbi-round", action="store_true", help="mbi 1.1.0's buggy default sampler")
    args = ap.parse_args()

    with open(args.spec) as f:
        spec = json.load(f)
    cols, delta = spec["columns"], float(spec["delta"])
    names = [c["name"] for c in cols]
    sizes = [len(c["domain"]) + 1 if c["kind"] == "categorical" else int(c["bins"]) + 1 for c in cols]

    # Strings throughout: "None" (A1Cresult) and "NA" are values, not missing.
    real = pd.read_csv(args.data, dtype=str, keep_default_na=False, usecols=names)
    coded = pd.DataFrame({c["name"]: encode(c, real[c["name"]].tolist()) for c in cols})

    if args.seed is not None:
        np.random.seed(args.seed)
    transformer = []
    for size in sizes:
        t = LabelTransformer(nullable=False)
        t.fit(list(range(size)))  # public: the declared domain, not the data
        transformer.append(t)
    transformer = TableTransformer(transformer)
    assert transformer.cardinality == sizes

    start = time.perf_counter()
    synth = Synthesizer.create("mst", epsilon=args.epsilon, delta=delta)
    synth.fit(coded, transformer=transformer, preprocessor_eps=0.0)
    if not args.mbi_round:
        synth.synthesizer = IidSampler(synth.synthesizer)
    sample = synth.sample(len(coded))
    seconds = time.perf_counter() - start

    rng = np.random.default_rng(args.seed)
    out = {c["name"]: decode(c, sample.iloc[:, i].to_numpy(), rng) for i, c in enumerate(cols)}
    rows = len(sample)

    def write_csv(f):
        w = csv.writer(f, lineterminator="\n")
        w.writerow(names)
        w.writerows(zip(*(out[n] for n in names)))

    write_atomic(args.out, write_csv)
    meta = {
        "epsilon": args.epsilon,
        "delta": delta,
        "rows": rows,
        "seconds": seconds,
        "smartnoise_synth_version": version("smartnoise-synth"),
        "mbi_version": version("mbi"),
        "sampler": "round" if args.mbi_round else "sample",
    }
    write_atomic(args.out + ".json", lambda f: json.dump(meta, f, indent=1))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
