#!/usr/bin/env python3
"""Regenerate the gazetteers embedded in crates/airlock-text/data/.

Run: python3 scripts/text-dictionaries.py   (creates a temporary venv, pip-installs
the source packages from PyPI, writes the filtered lists, prints a summary).

Sources (all permissively licensed; see crates/airlock-text/data/SOURCES.md):
  * `names` 0.3.0 (MIT): U.S. Census 1990 dist.male.first, dist.female.first, dist.all.last
    (Census data is public domain).
  * `zipcodes` 3.0.0 (MIT): U.S. zip code table (city, acceptable cities, county, state).
  * `english-words` 2.0.2 (MIT): Webster's 2nd International (web2, public domain) and GCIDE word
    lists, used only to decide which gazetteer entries are also ordinary English words.
"""
import os
import pickle
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates", "airlock-text", "data")
PACKAGES = ["names==0.3.0", "zipcodes==3.0.0", "english-words==2.0.2"]
# Surnames are kept down to this cumulative share of the 1990 population (keeps ~40k of 88k).
SURNAME_CUMULATIVE_PCT = 84.0


def in_venv():
    venv = tempfile.mkdtemp(prefix="airlock-dict-")
    subprocess.check_call([sys.executable, "-m", "venv", venv])
    py = os.path.join(venv, "bin", "python")
    subprocess.check_call([py, "-m", "pip", "install", "-q", *PACKAGES])
    subprocess.check_call([py, os.path.abspath(__file__), "--generate"])


def generate():
    import english_words
    import names
    import zipcodes

    nd = os.path.dirname(names.__file__)

    def census(fname):
        rows = []
        with open(os.path.join(nd, fname)) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    rows.append((parts[0].lower(), float(parts[1]), float(parts[2])))
        return rows

    first = sorted({n for n, _, _ in census("dist.male.first") + census("dist.female.first")})
    # Frequency rank of first names (most frequent first), used by the engine for "strong" names.
    ranked_first = sorted(census("dist.male.first") + census("dist.female.first"), key=lambda r: -r[1])
    seen = set()
    top_first = []
    for n, _, _ in ranked_first:
        if n not in seen:
            seen.add(n)
            top_first.append(n)
    last = [n for n, _, cum in census("dist.all.last") if cum <= SURNAME_CUMULATIVE_PCT]

    cities = set()
    counties = set()
    for z in zipcodes.list_all():
        for c in [z.get("city")] + list(z.get("acceptable_cities") or []):
            if c and len(c) >= 3 and all(ch.isalpha() or ch in " .'-" for ch in c):
                cities.add(c.lower())
        county = z.get("county") or ""
        for suffix in (" County", " Parish", " Borough", " Census Area", " Municipality"):
            if county.endswith(suffix):
                county = county[: -len(suffix)]
        if county and all(ch.isalpha() or ch in " .'-" for ch in county):
            counties.add(county.lower())

    ed = os.path.join(os.path.dirname(english_words.__file__), "data")
    with open(os.path.join(ed, "web2.pickle"), "rb") as f:
        web2 = pickle.load(f)
    with open(os.path.join(ed, "gcide_lower.pickle"), "rb") as f:
        gcide = pickle.load(f)
    # An "English word" is one Webster's 2nd lists in lower case (so not only as a proper noun)
    # and that GCIDE lists too.
    english = {w for w in web2 if w.islower() and w.isalpha()} & gcide
    gazetteer_words = set(first) | set(last) | {c for c in cities if " " not in c} | {
        c for c in counties if " " not in c
    }
    ambiguous = sorted(w for w in gazetteer_words if w in english)
    # Every other dictionary word (any case in web2, also in GCIDE), so that "unknown word" in
    # the engine means "in no dictionary at all"; inflections are handled by the engine.
    words = sorted(
        {w.lower() for w in web2 if w.isalpha() and w.lower() in gcide} - gazetteer_words
    )

    os.makedirs(OUT, exist_ok=True)

    def write(name, items, header):
        with open(os.path.join(OUT, name), "w") as f:
            f.write(f"# {header}\n")
            for i in items:
                f.write(i + "\n")

    write("first_names.txt", top_first, "U.S. Census 1990 first names, most frequent first (names 0.3.0, MIT)")
    write("surnames.txt", last, f"U.S. Census 1990 surnames to {SURNAME_CUMULATIVE_PCT}% cumulative (names 0.3.0, MIT)")
    write("cities.txt", sorted(cities), "U.S. city names from the zipcodes 3.0.0 table (MIT)")
    write("counties.txt", sorted(counties), "U.S. county names from the zipcodes 3.0.0 table (MIT)")
    write("english_words.txt", ambiguous,
          "gazetteer entries that are also English words (web2 lower-case and GCIDE; english-words 2.0.2, MIT)")
    write("words.txt", words,
          "other English words: web2 (public domain) entries also in GCIDE (english-words 2.0.2, MIT)")
    for n in ["first_names.txt", "surnames.txt", "cities.txt", "counties.txt", "english_words.txt", "words.txt"]:
        print(n, os.path.getsize(os.path.join(OUT, n)))


if __name__ == "__main__":
    if "--generate" in sys.argv:
        generate()
    else:
        in_venv()
