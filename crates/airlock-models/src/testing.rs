//! Deterministic tables for tests and examples across the workspace: no shared data needed.

use crate::error::ModelsError;
use crate::table::Table;

/// `rows` rows of a numeric `x` in [0, 10), a category `c` (`a` or `b`) and a label `y` (`yes`
/// or `no`) that depends on both plus noise, from a fixed LCG seeded with `seed`: learnable
/// (AUROC well above 0.8) but not separable.
pub fn separable_table(rows: usize, seed: u64) -> Result<Table, ModelsError> {
    let mut s = seed;
    let mut next = move || {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (s >> 33) as f64 / (1u64 << 31) as f64
    };
    let (mut x, mut c, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rows {
        let xv = next() * 10.0;
        let cv = if next() < 0.5 { "a" } else { "b" };
        let z = xv - 5.0 + if cv == "a" { 1.0 } else { -1.0 } + (next() - 0.5) * 4.0;
        x.push(format!("{xv:.3}"));
        c.push(cv.to_string());
        y.push(if z > 0.0 { "yes" } else { "no" }.to_string());
    }
    Table::from_columns(vec![("x".into(), x), ("c".into(), c), ("y".into(), y)])
}

/// The table as CSV text with a header row (cells here never need quoting).
pub fn to_csv(table: &Table) -> String {
    let cols = table.columns();
    let mut out = cols.iter().map(|c| c.name()).collect::<Vec<_>>().join(",");
    out.push('\n');
    for r in 0..table.rows() {
        let row: Vec<&str> = cols
            .iter()
            .map(|c| c.cells().get(r).map(String::as_str).unwrap_or_default())
            .collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_round_trips_through_csv() -> Result<(), ModelsError> {
        let a = separable_table(50, 3)?;
        assert_eq!(a.rows(), 50);
        assert_eq!(to_csv(&a), to_csv(&separable_table(50, 3)?));
        assert_ne!(to_csv(&a), to_csv(&separable_table(50, 4)?));
        let back = Table::read_csv(to_csv(&a).as_bytes(), None)?;
        assert_eq!(to_csv(&back), to_csv(&a));
        Ok(())
    }
}
