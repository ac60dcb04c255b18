//! DP questions against the same questions without noise, on the same engine, over the shared
//! Diabetes 130-US readmission table (101,766 encounters): `cargo bench -p airlock-dp --bench dp`.
//! Prints the median time of each, their ratio (the cost of DP: contribution bounding is in
//! both, so the ratio is the noise and its accounting), and the error of the DP answers against
//! the true ones (all rows) at each ε, as `bench/dp_smartnoise.py` measures SmartNoise SQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "a benchmark that prints its figures"
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use airlock_dp::{DpMetadata, Privacy, PrivacyUnit, Table, answer, exec::exact, parse};

fn data_dir() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    d.is_dir().then_some(d)
}

fn load() -> Option<Table> {
    let d = data_dir()?;
    let out = std::process::Command::new("unzip")
        .args(["-p"])
        .arg(d.join("tabular/diabetes130/dataset_diabetes.zip"))
        .arg("dataset_diabetes/diabetic_data.csv")
        .output()
        .ok()?;
    let mut r = csv::Reader::from_reader(out.stdout.as_slice());
    let columns = r.headers().ok()?.iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_owned).collect())
        .collect();
    Some(Table { columns, rows })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let Some(table) = load() else {
        println!("dp: shared data or unzip absent, skipped");
        return;
    };
    let n = table.rows.len();
    let meta = DpMetadata {
        bins: Default::default(),
        unit: PrivacyUnit::Column("patient_nbr".into()),
        max_rows_per_unit: 5,
        table_rows_per_unit: BTreeMap::new(),
        bounds: BTreeMap::from([
            ("time_in_hospital".into(), (1.0, 14.0)),
            ("num_medications".into(), (0.0, 80.0)),
        ]),
        domains: BTreeMap::from([
            (
                "readmitted".into(),
                vec!["NO".into(), "<30".into(), ">30".into()],
            ),
            (
                "age".into(),
                (0..10)
                    .map(|i| format!("[{}-{})", i * 10, i * 10 + 10))
                    .collect(),
            ),
        ]),
    };
    let tables = BTreeMap::from([("data".to_string(), table)]);
    let schema = tables
        .iter()
        .map(|(k, t)| (k.clone(), t.columns.clone()))
        .collect();
    let queries = [
        "SELECT readmitted, COUNT(*) AS n, AVG(time_in_hospital) AS los FROM data GROUP BY readmitted",
        "SELECT age, COUNT(*) AS n, AVG(num_medications) AS meds FROM data GROUP BY age",
    ];
    println!(
        "dp over the readmission table: {n} rows, unit patient_nbr, at most 5 rows per patient"
    );
    for sql in queries {
        let plan = parse(sql).unwrap().plan(&schema, &meta).unwrap();
        let runs = 9;
        let mut t_exact = Vec::new();
        let mut t_dp = Vec::new();
        for i in 0..runs {
            let t = Instant::now();
            std::hint::black_box(exact(&plan, &tables, [i as u8; 32]).unwrap());
            t_exact.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let a = answer(
                &plan,
                &tables,
                Privacy {
                    epsilon: 1.0,
                    delta: None,
                },
                [i as u8; 32],
            )
            .unwrap();
            t_dp.push(t.elapsed().as_secs_f64());
            std::hint::black_box(a);
        }
        let (e, d) = (median(t_exact), median(t_dp));
        println!("  {sql}");
        println!(
            "    exact {:.1} ms, DP {:.1} ms: ratio {:.3} (median of {runs})",
            e * 1e3,
            d * 1e3,
            d / e
        );
        // Error of DP answers against the true answer over all rows (no contribution
        // bounding: what SmartNoise's figures in bench/dp_smartnoise.py are measured against),
        // 50 draws.
        let all_rows = DpMetadata {
            bins: Default::default(),
            max_rows_per_unit: 10_000,
            ..meta.clone()
        };
        let truth = exact(
            &parse(sql).unwrap().plan(&schema, &all_rows).unwrap(),
            &tables,
            [0; 32],
        )
        .unwrap();
        for eps in [0.1, 1.0] {
            let mut count_err = Vec::new();
            let mut mean_err = Vec::new();
            for _ in 0..50 {
                let a = answer(
                    &plan,
                    &tables,
                    Privacy {
                        epsilon: eps,
                        delta: None,
                    },
                    [0; 32],
                )
                .unwrap();
                for (row, t) in a.rows.iter().zip(&truth) {
                    let tn = t["n"].as_f64().unwrap();
                    if tn >= 100.0 {
                        count_err.push((row["n"].as_f64().unwrap() - tn).abs() / tn);
                        let key = if t.contains_key("los") { "los" } else { "meds" };
                        let tm = t[key].as_f64().unwrap();
                        mean_err.push((row[key].as_f64().unwrap() - tm).abs() / tm);
                    }
                }
            }
            println!(
                "    epsilon {eps}: median relative error, counts {:.4}, means {:.4} (groups with at least 100 rows)",
                median(count_err),
                median(mean_err)
            );
        }
    }
}
