"""SmartNoise SQL on the same questions, data, bounds and epsilon as `cargo bench -p airlock-dp
--bench dp`: the readmission table (Diabetes 130-US, 101,766 encounters), privacy unit
`patient_nbr`, at most 5 rows per patient, pure epsilon (SmartNoise's default Laplace-family
mechanisms), declared groups (no censoring of small groups, as Airlock releases every group of
a declared domain). Prints the median relative error against the true answer (all rows, no
contribution bounding) over 50 draws, for groups of at least 100 rows.

Not run in CI. Needs its own virtual environment (smartnoise-sql pins an older OpenDP than the
one CI installs as an oracle):

    python3 -m venv /tmp/sn && /tmp/sn/bin/pip install smartnoise-sql pandas
    /tmp/sn/bin/python bench/dp_smartnoise.py ../shared/data
"""

import io
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import snsql
from snsql import Privacy

data = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
with zipfile.ZipFile(data / "tabular/diabetes130/dataset_diabetes.zip") as z:
    df = pd.read_csv(io.BytesIO(z.read("dataset_diabetes/diabetic_data.csv")), dtype=str)
df["time_in_hospital"] = df["time_in_hospital"].astype(int)
df["num_medications"] = df["num_medications"].astype(int)
df = df[["patient_nbr", "readmitted", "age", "time_in_hospital", "num_medications"]]

meta = {
    "db": {
        "s": {
            "data": {
                "max_ids": 5,
                "row_privacy": False,
                "sample_max_ids": True,
                "censor_dims": False,
                "clamp_counts": False,
                "patient_nbr": {"type": "string", "private_id": True},
                "readmitted": {"type": "string"},
                "age": {"type": "string"},
                "time_in_hospital": {"type": "int", "lower": 1, "upper": 14},
                "num_medications": {"type": "int", "lower": 0, "upper": 80},
            }
        }
    }
}

questions = [
    ("readmitted", "time_in_hospital", "los"),
    ("age", "num_medications", "meds"),
]
print(f"SmartNoise SQL {snsql.__version__ if hasattr(snsql, '__version__') else ''} over {len(df)} rows")
for group, column, alias in questions:
    truth = df.groupby(group).agg(n=(column, "size"), mean=(column, "mean"))
    big = truth[truth["n"] >= 100]
    sql = f"SELECT {group}, COUNT(*) AS n, AVG({column}) AS {alias} FROM s.data GROUP BY {group}"
    print(f"  {sql}")
    for eps in [0.1, 1.0]:
        reader = snsql.from_df(df, privacy=Privacy(epsilon=eps, delta=1e-6), metadata=meta)
        count_err, mean_err = [], []
        for _ in range(50):
            r = reader.execute_df(sql).set_index(group)
            for key, row in big.iterrows():
                if key in r.index:
                    count_err.append(abs(r.loc[key, "n"] - row["n"]) / row["n"])
                    mean_err.append(abs(r.loc[key, alias] - row["mean"]) / row["mean"])
        print(
            f"    epsilon {eps}: median relative error, counts {statistics.median(count_err):.4f}, "
            f"means {statistics.median(mean_err):.4f} (groups with at least 100 rows)"
        )
