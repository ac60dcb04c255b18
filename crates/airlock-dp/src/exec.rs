//! Running a checked [`Plan`]: join on the unit, filter, bound each unit's contribution,
//! aggregate exactly per group of the public domain, then release through [`crate::mechanism`].

use std::collections::{BTreeMap, HashMap};

use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::DpError;
use crate::mechanism::{
    IntegerRelease, Mechanism, Noisy, Privacy, Share, release_integers, release_quantile,
};
use crate::sql::{Agg, Cmp, Col, Literal, Plan, Predicate};

/// A table: its header and its rows, as text (CSV fields; an empty field is null).
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each as long as `columns`.
    pub rows: Vec<Vec<String>>,
}

/// What one output column reports beside its values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnReport {
    /// Output column name.
    pub name: String,
    /// `group`, `count`, `sum`, `avg`, ...
    pub aggregate: String,
    /// The noise scale in the column's units (for means and spreads, of the underlying sum;
    /// for quantiles, of the exponential mechanism's score). None for group columns.
    pub scale: Option<f64>,
    /// Half-width of the 95% interval around each value of the column (the widest over
    /// groups). None for group columns and quantiles, whose error OpenDP does not bound.
    pub accuracy: Option<f64>,
}

/// A released answer: everything here may leave the clinical zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// One object per group (all groups of the declared domains, in domain order).
    pub rows: Vec<Map<String, Value>>,
    /// The noise family.
    pub mechanism: Mechanism,
    /// Per output column.
    pub columns: Vec<ColumnReport>,
    /// The zCDP charge: the sum of OpenDP's privacy maps over the measurements.
    pub rho: f64,
    /// Measurements the budget was split over.
    pub measurements: usize,
}

/// Fixed point for a bounded column: values clamped to `[lo, hi]`, then counted in units of
/// `step` (a power of two), so sums are exact integers and the sensitivity holds exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Fixed {
    lo: f64,
    hi: f64,
    step: f64,
    /// The largest |value| in steps.
    max_steps: i64,
}

impl Fixed {
    fn new(lo: f64, hi: f64) -> Fixed {
        let m = lo.abs().max(hi.abs()).max(f64::MIN_POSITIVE);
        // about 2^20 steps over the largest magnitude: rounding error below 1e-6 of the range
        let step = 2f64.powi(m.log2().floor() as i32 - 20);
        Fixed {
            lo,
            hi,
            step,
            max_steps: (m / step).ceil() as i64,
        }
    }

    fn steps(&self, v: f64) -> i64 {
        (v.clamp(self.lo, self.hi) / self.step).round() as i64
    }
}

/// One thing measured per group.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Measure {
    Rows,
    NonNull(Col),
    Units,
    Sum(Col, f64, f64),
    SumSquares(Col, f64, f64),
    Quantile(Col, f64, f64, f64),
}

fn value<'a>(tables: &'a [&Table], row: &[u32], c: Col) -> Option<&'a str> {
    let r = *row.get(c.table)?;
    let v = tables.get(c.table)?.rows.get(r as usize)?.get(c.column)?;
    if v.is_empty() { None } else { Some(v.as_str()) }
}

fn number(v: Option<&str>) -> Option<f64> {
    v.and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|x| x.is_finite())
}

fn compare(v: Option<&str>, op: Cmp, lit: &Literal) -> Option<bool> {
    let ord = match lit {
        Literal::Number(n) => number(v)?.partial_cmp(n)?,
        Literal::Text(t) => v?.cmp(t.as_str()),
    };
    use std::cmp::Ordering::*;
    Some(match op {
        Cmp::Eq => ord == Equal,
        Cmp::Ne => ord != Equal,
        Cmp::Lt => ord == Less,
        Cmp::Le => ord != Greater,
        Cmp::Gt => ord == Greater,
        Cmp::Ge => ord != Less,
    })
}

/// SQL's three-valued logic: None is unknown (a null took part).
fn eval(p: &Predicate<Col>, tables: &[&Table], row: &[u32]) -> Option<bool> {
    match p {
        Predicate::And(a, b) => match (eval(a, tables, row), eval(b, tables, row)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Predicate::Or(a, b) => match (eval(a, tables, row), eval(b, tables, row)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Predicate::Not(a) => eval(a, tables, row).map(|x| !x),
        Predicate::Compare(c, op, lit) => compare(value(tables, row, *c), *op, lit),
        Predicate::IsNull(c, negated) => Some(value(tables, row, *c).is_none() != *negated),
        Predicate::In(c, list, negated) => {
            let v = value(tables, row, *c);
            let mut unknown = false;
            for lit in list {
                match compare(v, Cmp::Eq, lit) {
                    Some(true) => return Some(!negated),
                    None => unknown = true,
                    Some(false) => {}
                }
            }
            if unknown { None } else { Some(*negated) }
        }
    }
}

/// Keeps at most `k` rows per unit, chosen by a seeded shuffle; rows without a unit are
/// dropped (no one can be charged for them).
fn bound(
    rows: Vec<Vec<u32>>,
    key: impl Fn(&[u32]) -> Option<String>,
    k: usize,
    rng: &mut ChaCha20Rng,
) -> Vec<Vec<u32>> {
    let mut by_unit: HashMap<String, Vec<Vec<u32>>> = HashMap::new();
    for row in rows {
        if let Some(u) = key(&row) {
            by_unit.entry(u).or_default().push(row);
        }
    }
    // Sorted so the seed alone decides which rows stay (HashMap order is random per process).
    let mut units: Vec<(String, Vec<Vec<u32>>)> = by_unit.into_iter().collect();
    units.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    for (_, mut rows) in units {
        if rows.len() > k {
            rows.shuffle(rng);
            rows.truncate(k);
        }
        out.extend(rows);
    }
    out
}

/// Runs the plan over the tables (by name) and releases the answer.
///
/// `seed` drives only the choice of rows dropped by contribution bounding; the noise comes
/// from OpenDP's samplers (OpenSSL's generator).
pub fn answer(
    plan: &Plan,
    tables: &BTreeMap<String, Table>,
    privacy: Privacy,
    seed: [u8; 32],
) -> Result<Answer, DpError> {
    run(plan, tables, Some(privacy), seed)
}

/// The same query without noise, on the same engine (contribution bounding and clamping
/// included): the baseline of the benchmark and of accuracy tests. Never released.
pub fn exact(
    plan: &Plan,
    tables: &BTreeMap<String, Table>,
    seed: [u8; 32],
) -> Result<Vec<Map<String, Value>>, DpError> {
    Ok(run(plan, tables, None, seed)?.rows)
}

fn run(
    plan: &Plan,
    tables: &BTreeMap<String, Table>,
    privacy: Option<Privacy>,
    seed: [u8; 32],
) -> Result<Answer, DpError> {
    let total_rho = privacy.map(|p| p.rho()).transpose()?.unwrap_or(0.0);
    let mechanism = privacy.map_or(Mechanism::DiscreteLaplace, |p| p.mechanism());
    let ts: Vec<&Table> = plan
        .tables
        .iter()
        .map(|n| {
            tables
                .get(n)
                .ok_or_else(|| DpError::Unknown(format!("table {n:?}")))
        })
        .collect::<Result<_, _>>()?;
    let k = plan.max_rows_per_unit as usize;
    let mut rng = ChaCha20Rng::from_seed(seed);
    let unit_of = |t: usize, r: u32| -> Option<String> {
        let c = plan.unit.get(t).copied().flatten()?;
        let v = ts.get(t)?.rows.get(r as usize)?.get(c)?;
        if v.is_empty() { None } else { Some(v.clone()) }
    };
    let row_unit = plan.unit.first().copied().flatten().is_some();

    // Join on the unit. Each table is first bounded to k rows per unit, so one unit yields at
    // most k^t joined rows whatever the data (no blow-up), before the final bound to k.
    let base_len = ts.first().map(|t| t.rows.len()).unwrap_or(0) as u32;
    let mut rows: Vec<Vec<u32>> = (0..base_len).map(|r| vec![r]).collect();
    if ts.len() > 1 {
        let k_0 = plan
            .table_rows_per_unit
            .first()
            .copied()
            .unwrap_or(plan.max_rows_per_unit) as usize;
        rows = bound(rows, |row| unit_of(0, *row.first()?), k_0, &mut rng);
        for t in 1..ts.len() {
            let len = ts.get(t).map(|x| x.rows.len()).unwrap_or(0) as u32;
            let k_t = plan
                .table_rows_per_unit
                .get(t)
                .copied()
                .unwrap_or(plan.max_rows_per_unit) as usize;
            let right = bound(
                (0..len).map(|r| vec![r]).collect(),
                |row| unit_of(t, *row.first()?),
                k_t,
                &mut rng,
            );
            let mut index: HashMap<String, Vec<u32>> = HashMap::new();
            for row in right {
                if let Some(r) = row.first().copied()
                    && let Some(u) = unit_of(t, r)
                {
                    index.entry(u).or_default().push(r);
                }
            }
            let mut joined = Vec::new();
            for row in rows {
                let Some(u) = row.first().and_then(|r| unit_of(0, *r)) else {
                    continue;
                };
                if let Some(matches) = index.get(&u) {
                    for m in matches {
                        let mut next = row.clone();
                        next.push(*m);
                        joined.push(next);
                    }
                }
            }
            rows = joined;
        }
    }
    if let Some(filter) = &plan.filter {
        rows.retain(|row| eval(filter, &ts, row) == Some(true));
    }
    if row_unit {
        rows = bound(rows, |row| unit_of(0, *row.first()?), k, &mut rng);
    }

    // Groups: mixed-radix index over the domains; rows outside a domain belong to no group.
    let n_groups: usize = plan.groups.iter().map(|(_, d)| d.len()).product();
    let domain_index: Vec<HashMap<&str, usize>> = plan
        .groups
        .iter()
        .map(|(_, d)| d.iter().enumerate().map(|(i, v)| (v.as_str(), i)).collect())
        .collect();
    let group_of = |row: &[u32]| -> Option<usize> {
        let mut g = 0usize;
        for ((c, d), index) in plan.groups.iter().zip(&domain_index) {
            let i = *index.get(value(&ts, row, *c)?)?;
            g = g * d.len() + i;
        }
        Some(g)
    };
    let grouped: Vec<(usize, &Vec<u32>)> = rows
        .iter()
        .filter_map(|r| group_of(r).map(|g| (g, r)))
        .collect();

    // What to measure, each once.
    let mut measures: Vec<Measure> = Vec::new();
    let mut need = |m: Measure| {
        if !measures.contains(&m) {
            measures.push(m);
        }
    };
    for (_, out) in &plan.outputs {
        match out {
            Ok(_) => {}
            Err(Agg::CountRows) => need(Measure::Rows),
            Err(Agg::Count(c)) => need(Measure::NonNull(*c)),
            Err(Agg::CountUnits) => need(Measure::Units),
            Err(Agg::Sum(c, lo, hi)) => need(Measure::Sum(*c, *lo, *hi)),
            Err(Agg::Avg(c, lo, hi)) => {
                need(Measure::Sum(*c, *lo, *hi));
                need(Measure::NonNull(*c));
            }
            Err(Agg::Variance(c, lo, hi)) | Err(Agg::Stddev(c, lo, hi)) => {
                need(Measure::Sum(*c, *lo, *hi));
                need(Measure::SumSquares(*c, *lo, *hi));
                need(Measure::NonNull(*c));
            }
            Err(Agg::Quantile(c, lo, hi, p)) => need(Measure::Quantile(*c, *lo, *hi, *p)),
        }
    }
    let m = measures.len().max(1);
    let share = match mechanism {
        Mechanism::DiscreteGaussian => Share::Rho(total_rho / m as f64),
        Mechanism::DiscreteLaplace => Share::Epsilon(privacy.map_or(0.0, |p| p.epsilon) / m as f64),
    };
    let k_i = k as i64;
    // Noise the vector, or (for `exact`) pass it through with a zero scale.
    let emit = |release: IntegerRelease| -> Result<Noisy, DpError> {
        match privacy {
            Some(_) => release_integers(&release, mechanism, share),
            None => Ok(Noisy {
                values: release.values,
                scale: 0.0,
                accuracy: 0.0,
                rho: 0.0,
            }),
        }
    };

    // Release each measurement.
    let mut released: Vec<Released> = Vec::new();
    let mut rho = 0.0;
    for measure in &measures {
        let r = match *measure {
            Measure::Rows | Measure::NonNull(_) => {
                let mut v = vec![0i64; n_groups];
                for (g, row) in &grouped {
                    let counted = match measure {
                        Measure::NonNull(c) => value(&ts, row, *c).is_some(),
                        _ => true,
                    };
                    if counted && let Some(x) = v.get_mut(*g) {
                        *x += 1;
                    }
                }
                let noisy = emit(IntegerRelease {
                    values: v,
                    l1: k_i,
                    l2: k_i,
                })?;
                Released::Ints(noisy, 1.0)
            }
            Measure::Units => {
                let mut sets: Vec<std::collections::HashSet<String>> =
                    vec![Default::default(); n_groups];
                for (g, row) in &grouped {
                    if let Some(u) = row.first().and_then(|r| unit_of(0, *r))
                        && let Some(s) = sets.get_mut(*g)
                    {
                        s.insert(u);
                    }
                }
                let v: Vec<i64> = sets.iter().map(|s| s.len() as i64).collect();
                // One unit is in at most min(k, groups) groups, once each.
                let spread = k.min(n_groups).max(1) as f64;
                let noisy = emit(IntegerRelease {
                    values: v,
                    l1: spread as i64,
                    l2: spread.sqrt().ceil() as i64,
                })?;
                Released::Ints(noisy, 1.0)
            }
            Measure::Sum(c, lo, hi) | Measure::SumSquares(c, lo, hi) => {
                let squares = matches!(measure, Measure::SumSquares(..));
                let fixed = if squares {
                    let m2 = lo.abs().max(hi.abs()).powi(2);
                    let low = if lo <= 0.0 && hi >= 0.0 {
                        0.0
                    } else {
                        lo.abs().min(hi.abs()).powi(2)
                    };
                    Fixed::new(low, m2)
                } else {
                    Fixed::new(lo, hi)
                };
                let mut v = vec![0i64; n_groups];
                for (g, row) in &grouped {
                    if let Some(x) = number(value(&ts, row, c)) {
                        let x = x.clamp(lo, hi);
                        let x = if squares { x * x } else { x };
                        if let Some(s) = v.get_mut(*g) {
                            *s = s.saturating_add(fixed.steps(x));
                        }
                    }
                }
                let d = k_i.saturating_mul(fixed.max_steps);
                let noisy = emit(IntegerRelease {
                    values: v,
                    l1: d,
                    l2: d,
                })?;
                Released::Ints(noisy, fixed.step)
            }
            Measure::Quantile(c, lo, hi, p) => {
                let values: Vec<f64> = grouped
                    .iter()
                    .filter_map(|(_, row)| number(value(&ts, row, c)))
                    .map(|x| x.clamp(lo, hi))
                    .collect();
                let candidates: Vec<f64> = (0..=200)
                    .map(|i| lo + (hi - lo) * i as f64 / 200.0)
                    .collect();
                if privacy.is_some() {
                    let (v, scale, charged) =
                        release_quantile(values, candidates, p, k as u32, mechanism, share)?;
                    Released::Quantile(v, scale, charged)
                } else {
                    Released::Quantile(exact_quantile(values, p), 0.0, 0.0)
                }
            }
        };
        rho += match &r {
            Released::Ints(n, _) => n.rho,
            Released::Quantile(_, _, c) => *c,
        };
        released.push(r);
    }
    let get = |m: Measure| -> Option<&Released> {
        measures
            .iter()
            .position(|x| *x == m)
            .and_then(|i| released.get(i))
    };
    let ints = |m: Measure, g: usize| -> Option<(f64, f64, f64)> {
        match get(m)? {
            Released::Ints(n, step) => Some((
                *n.values.get(g)? as f64 * step,
                n.accuracy * step,
                n.scale * step,
            )),
            Released::Quantile(..) => None,
        }
    };
    // Half-width at a smaller α, for estimates built from several measurements (union bound).
    let acc_at = |m: Measure, alpha: f64| -> Option<f64> {
        match get(m)? {
            Released::Ints(n, _) if n.scale == 0.0 => Some(0.0),
            Released::Ints(n, step) => accuracy_at(mechanism, n.scale, alpha).map(|a| a * step),
            Released::Quantile(..) => None,
        }
    };

    // Assemble rows and reports.
    let mut out_rows = Vec::with_capacity(n_groups);
    let mut widest: Vec<Option<f64>> = vec![None; plan.outputs.len()];
    let mut scales: Vec<Option<f64>> = vec![None; plan.outputs.len()];
    for g in 0..n_groups {
        let mut row = Map::new();
        // the group's keys, from its mixed-radix index
        let mut keys = vec![String::new(); plan.groups.len()];
        let mut rest = g;
        for (i, (_, d)) in plan.groups.iter().enumerate().rev() {
            let len = d.len().max(1);
            if let (Some(slot), Some(v)) = (keys.get_mut(i), d.get(rest % len)) {
                slot.clone_from(v);
            }
            rest /= len;
        }
        for (o, (name, out)) in plan.outputs.iter().enumerate() {
            let (val, acc, scale): (Value, Option<f64>, Option<f64>) = match out {
                Ok(gi) => (
                    Value::String(keys.get(*gi).cloned().unwrap_or_default()),
                    None,
                    None,
                ),
                Err(agg) => estimate(agg, g, &ints, &acc_at, get)?,
            };
            row.insert(name.clone(), val);
            if let Some(a) = acc {
                let w = widest
                    .get_mut(o)
                    .ok_or_else(|| DpError::Internal("output".into()))?;
                *w = Some(w.map_or(a, |x| x.max(a)));
            }
            if let (Some(s), Some(slot)) = (scale, scales.get_mut(o)) {
                *slot = Some(s);
            }
        }
        out_rows.push(row);
    }
    let columns = plan
        .outputs
        .iter()
        .zip(widest.into_iter().zip(scales))
        .map(|((name, out), (accuracy, scale))| ColumnReport {
            name: name.clone(),
            aggregate: match out {
                Ok(_) => "group".into(),
                Err(a) => agg_kind(a).into(),
            },
            scale,
            accuracy,
        })
        .collect();
    Ok(Answer {
        rows: out_rows,
        mechanism,
        columns,
        rho,
        measurements: measures.len(),
    })
}

/// The `p` quantile of the values (the lower one at a tie), for `exact` only.
fn exact_quantile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let i = ((values.len() as f64 - 1.0) * p).floor().max(0.0) as usize;
    values.get(i).copied().unwrap_or(f64::NAN)
}

enum Released {
    /// Noisy integers and the step one integer stands for.
    Ints(Noisy, f64),
    /// A quantile, its scale and its charge.
    Quantile(f64, f64, f64),
}

fn agg_kind(a: &Agg) -> &'static str {
    match a {
        Agg::CountRows | Agg::Count(_) => "count",
        Agg::CountUnits => "count-distinct-unit",
        Agg::Sum(..) => "sum",
        Agg::Avg(..) => "avg",
        Agg::Variance(..) => "variance",
        Agg::Stddev(..) => "stddev",
        Agg::Quantile(..) => "quantile",
    }
}

fn accuracy_at(mechanism: Mechanism, scale: f64, alpha: f64) -> Option<f64> {
    crate::mechanism::accuracy(mechanism, scale, alpha).ok()
}

type Estimate = (Value, Option<f64>, Option<f64>);

fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// One aggregate's estimate for group `g`, its 95% half-width and its noise scale.
fn estimate<'r>(
    agg: &Agg,
    g: usize,
    ints: &dyn Fn(Measure, usize) -> Option<(f64, f64, f64)>,
    acc_at: &dyn Fn(Measure, f64) -> Option<f64>,
    get: impl Fn(Measure) -> Option<&'r Released>,
) -> Result<Estimate, DpError> {
    let missing = || DpError::Internal("a measurement is missing".into());
    Ok(match *agg {
        Agg::CountRows => {
            let (v, a, s) = ints(Measure::Rows, g).ok_or_else(missing)?;
            (Value::from(v.round() as i64), Some(a), Some(s))
        }
        Agg::Count(c) => {
            let (v, a, s) = ints(Measure::NonNull(c), g).ok_or_else(missing)?;
            (Value::from(v.round() as i64), Some(a), Some(s))
        }
        Agg::CountUnits => {
            let (v, a, s) = ints(Measure::Units, g).ok_or_else(missing)?;
            (Value::from(v.round() as i64), Some(a), Some(s))
        }
        Agg::Sum(c, lo, hi) => {
            let (v, a, s) = ints(Measure::Sum(c, lo, hi), g).ok_or_else(missing)?;
            (num(v), Some(a), Some(s))
        }
        Agg::Avg(c, lo, hi) => {
            let (sum, _, scale) = ints(Measure::Sum(c, lo, hi), g).ok_or_else(missing)?;
            let (count, _, _) = ints(Measure::NonNull(c), g).ok_or_else(missing)?;
            let a_s = acc_at(Measure::Sum(c, lo, hi), 0.025).ok_or_else(missing)?;
            let a_c = acc_at(Measure::NonNull(c), 0.025).ok_or_else(missing)?;
            let mean = |s: f64, n: f64| (s / n.max(1.0)).clamp(lo, hi);
            let est = mean(sum, count);
            // The box of (sum, count) holds the truth with 95% (union bound); the mean is
            // monotone in each, so its extremes are at the corners.
            let half = if count - a_c < 1.0 {
                hi - lo
            } else {
                [
                    (sum - a_s, count - a_c),
                    (sum - a_s, count + a_c),
                    (sum + a_s, count - a_c),
                    (sum + a_s, count + a_c),
                ]
                .iter()
                .map(|(s, n)| (mean(*s, *n) - est).abs())
                .fold(0.0, f64::max)
            };
            (num(est), Some(half), Some(scale))
        }
        Agg::Variance(c, lo, hi) | Agg::Stddev(c, lo, hi) => {
            let (sum, _, scale) = ints(Measure::Sum(c, lo, hi), g).ok_or_else(missing)?;
            let (sq, _, _) = ints(Measure::SumSquares(c, lo, hi), g).ok_or_else(missing)?;
            let (count, _, _) = ints(Measure::NonNull(c), g).ok_or_else(missing)?;
            let a = 0.05 / 3.0;
            let a_s = acc_at(Measure::Sum(c, lo, hi), a).ok_or_else(missing)?;
            let a_q = acc_at(Measure::SumSquares(c, lo, hi), a).ok_or_else(missing)?;
            let a_c = acc_at(Measure::NonNull(c), a).ok_or_else(missing)?;
            let max_var = ((hi - lo) / 2.0).powi(2);
            let var = |s: f64, q: f64, n: f64| {
                let n = n.max(1.0);
                let m = s / n;
                (q / n - m * m).clamp(0.0, max_var)
            };
            let stddev = matches!(agg, Agg::Stddev(..));
            let f = |v: f64| if stddev { v.sqrt() } else { v };
            let est = f(var(sum, sq, count));
            let half = if count - a_c < 1.0 {
                f(max_var)
            } else {
                let mut worst: f64 = 0.0;
                let mut sums = vec![sum - a_s, sum + a_s];
                if sum - a_s < 0.0 && sum + a_s > 0.0 {
                    sums.push(0.0);
                }
                for s in &sums {
                    for q in [sq - a_q, sq + a_q] {
                        for n in [count - a_c, count + a_c] {
                            worst = worst.max((f(var(*s, q, n)) - est).abs());
                        }
                    }
                }
                worst
            };
            (num(est), Some(half), Some(scale))
        }
        Agg::Quantile(c, lo, hi, p) => match get(Measure::Quantile(c, lo, hi, p)) {
            Some(Released::Quantile(v, scale, _)) => (num(*v), None, Some(*scale)),
            _ => return Err(missing()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{DpMetadata, PrivacyUnit};
    use crate::sql::{Schema, parse};

    fn tables(n: usize) -> BTreeMap<String, Table> {
        let rows = (0..n)
            .map(|i| {
                vec![
                    format!("p{}", i / 2), // two rows per patient
                    format!("{}", 20 + i % 60),
                    if i % 3 == 0 { "F".into() } else { "M".into() },
                ]
            })
            .collect();
        BTreeMap::from([(
            "data".to_string(),
            Table {
                columns: vec!["patient".into(), "age".into(), "sex".into()],
                rows,
            },
        )])
    }

    fn meta(k: u32) -> DpMetadata {
        DpMetadata {
            bins: Default::default(),
            unit: PrivacyUnit::Column("patient".into()),
            max_rows_per_unit: k,
            table_rows_per_unit: BTreeMap::new(),
            bounds: BTreeMap::from([("age".into(), (0.0, 100.0))]),
            domains: BTreeMap::from([("sex".into(), vec!["F".into(), "M".into(), "X".into()])]),
        }
    }

    fn run(sql: &str, k: u32, privacy: Privacy) -> Result<Answer, DpError> {
        let t = tables(6000);
        let schema: Schema = t
            .iter()
            .map(|(n, t)| (n.clone(), t.columns.clone()))
            .collect();
        let plan = parse(sql)?.plan(&schema, &meta(k))?;
        answer(&plan, &t, privacy, [7; 32])
    }

    #[test]
    fn grouped_answers_cover_the_whole_domain_and_are_near_the_truth() -> Result<(), DpError> {
        let a = run(
            "SELECT sex, COUNT(*) AS n, AVG(age) AS mean_age, SUM(age) AS total FROM data GROUP BY sex",
            2,
            Privacy {
                epsilon: 5.0,
                delta: Some(1e-6),
            },
        )?;
        assert_eq!(
            a.rows.len(),
            3,
            "every group of the domain, the empty X too"
        );
        let n = |i: usize| {
            a.rows
                .get(i)
                .and_then(|r| r.get("n"))
                .and_then(Value::as_i64)
                .unwrap_or(-1)
        };
        // F: i % 3 == 0 → 2000 rows; M: 4000; X: 0
        assert!((n(0) - 2000).abs() < 50, "{}", n(0));
        assert!((n(1) - 4000).abs() < 50, "{}", n(1));
        assert!(n(2).abs() < 50, "{}", n(2));
        let mean = a
            .rows
            .get(1)
            .and_then(|r| r.get("mean_age"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        assert!((mean - 49.5).abs() < 2.0, "{mean}");
        assert_eq!(a.mechanism, Mechanism::DiscreteGaussian);
        assert_eq!(
            a.measurements, 3,
            "count and sum are shared between n, mean and total"
        );
        let rho = Privacy {
            epsilon: 5.0,
            delta: Some(1e-6),
        }
        .rho()?;
        assert!(
            a.rho <= rho * (1.0 + 1e-9) && a.rho > rho * 0.99,
            "{} vs {rho}",
            a.rho
        );
        for c in &a.columns {
            if c.aggregate != "group" {
                assert!(c.accuracy.is_some_and(|x| x > 0.0), "{c:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn the_exact_baseline_is_the_truth_after_bounding() -> Result<(), DpError> {
        let t = tables(6000);
        let schema: Schema = t
            .iter()
            .map(|(n, t)| (n.clone(), t.columns.clone()))
            .collect();
        let plan = parse(
            "SELECT sex, COUNT(*) AS n, MEDIAN(age) AS med FROM data WHERE age >= 20 GROUP BY sex",
        )
        .and_then(|q| q.plan(&schema, &meta(2)));
        // grouped quantiles are refused; the counts alone:
        assert!(plan.is_err());
        let plan =
            parse("SELECT sex, COUNT(*) AS n FROM data GROUP BY sex")?.plan(&schema, &meta(2))?;
        let rows = exact(&plan, &t, [1; 32])?;
        let n: Vec<i64> = rows
            .iter()
            .filter_map(|r| r.get("n").and_then(Value::as_i64))
            .collect();
        assert_eq!(n, vec![2000, 4000, 0]);
        let plan = parse("SELECT COUNT(*) AS n FROM data")?.plan(&schema, &meta(1))?;
        let rows = exact(&plan, &t, [1; 32])?;
        assert_eq!(
            rows.first()
                .and_then(|r| r.get("n"))
                .and_then(Value::as_i64),
            Some(3000)
        );
        Ok(())
    }

    #[test]
    fn contribution_bounding_caps_each_unit() -> Result<(), DpError> {
        // 6000 rows, 3000 patients with two rows each; k = 1 keeps one row per patient.
        let a = run(
            "SELECT COUNT(*) AS n FROM data",
            1,
            Privacy {
                epsilon: 5.0,
                delta: None,
            },
        )?;
        let n = a
            .rows
            .first()
            .and_then(|r| r.get("n"))
            .and_then(Value::as_i64)
            .unwrap_or(-1);
        assert!((n - 3000).abs() < 30, "{n}");
        let u = run(
            "SELECT COUNT(DISTINCT patient) AS people FROM data",
            2,
            Privacy {
                epsilon: 5.0,
                delta: None,
            },
        )?;
        let people = u
            .rows
            .first()
            .and_then(|r| r.get("people"))
            .and_then(Value::as_i64)
            .unwrap_or(-1);
        assert!((people - 3000).abs() < 30, "{people}");
        Ok(())
    }

    #[test]
    fn filters_follow_sql_null_logic() -> Result<(), DpError> {
        let t = BTreeMap::from([(
            "data".to_string(),
            Table {
                columns: vec!["patient".into(), "age".into()],
                rows: vec![
                    vec!["a".into(), "10".into()],
                    vec!["b".into(), "".into()],
                    vec!["c".into(), "x".into()],
                ],
            },
        )]);
        let tables: Vec<&Table> = t.values().collect();
        let age = Col {
            table: 0,
            column: 1,
        };
        let gt5 = Predicate::Compare(age, Cmp::Gt, Literal::Number(5.0));
        assert_eq!(eval(&gt5, &tables, &[0]), Some(true));
        assert_eq!(eval(&gt5, &tables, &[1]), None);
        assert_eq!(
            eval(&Predicate::Not(Box::new(gt5.clone())), &tables, &[1]),
            None
        );
        assert_eq!(
            eval(&Predicate::IsNull(age, false), &tables, &[1]),
            Some(true)
        );
        assert_eq!(
            eval(&gt5, &tables, &[2]),
            None,
            "a non-number is unknown, not an error"
        );
        Ok(())
    }

    #[test]
    fn variance_and_median_are_released() -> Result<(), DpError> {
        let a = run(
            "SELECT STDDEV(age) AS sd, MEDIAN(age) AS med FROM data",
            2,
            Privacy {
                epsilon: 8.0,
                delta: Some(1e-6),
            },
        )?;
        let row = a.rows.first().cloned().unwrap_or_default();
        let sd = row.get("sd").and_then(Value::as_f64).unwrap_or(0.0);
        // ages 20..79 uniform: sd ≈ 17.3
        assert!((sd - 17.3).abs() < 2.0, "{sd}");
        let med = row.get("med").and_then(Value::as_f64).unwrap_or(0.0);
        assert!((med - 49.5).abs() < 5.0, "{med}");
        Ok(())
    }
}
