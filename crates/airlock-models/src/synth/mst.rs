//! MST: measure, compress, select a spanning tree, measure it, estimate (see the module above).
//! The budget is split as `smartnoise-synth` and Private-PGM's reference code split it: a
//! third to the one-way marginals, a third to the selection, a third to the tree's two-way
//! marginals (all of it to the one-way marginals when there is one column).

use airlock_dp::mechanism::{IntegerRelease, Mechanism, Share, release_integers, select_max};
use serde::Serialize;

use super::Encoded;
use super::pgm::{Clique, Measurement, TreeModel};
use crate::ModelsError;
use crate::rng::SplitMix64;

/// What to spend and how.
#[derive(Debug, Clone)]
pub struct MstConfig {
    /// The whole run's zCDP budget ρ.
    pub rho: f64,
    /// Rows one privacy unit may contribute (after bounding): every marginal's sensitivity.
    pub rows_per_unit: u32,
    /// Mirror-descent iterations of the final estimation (it stops earlier once converged).
    pub iterations: usize,
}

/// One mechanism's charge.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Charge {
    /// What was measured or selected (column names only).
    pub what: String,
    /// The mechanism.
    pub mechanism: &'static str,
    /// ρ, from OpenDP's privacy map.
    pub rho: f64,
    /// The noise scale (the Gumbel scale for a selection).
    pub scale: f64,
}

/// A fitted synthesiser.
#[derive(Debug, Clone)]
pub struct MstOutcome {
    /// The model, over the compressed domains.
    pub model: TreeModel,
    /// The selected pairs of columns (indices into the input).
    pub edges: Vec<(usize, usize)>,
    /// Every mechanism's charge, in order.
    pub charges: Vec<Charge>,
    /// Their zCDP composition.
    pub rho_spent: f64,
    /// The row count the model estimates (a DP figure).
    pub estimated_rows: f64,
    /// Per column: the compressed cell of each original code.
    compress: Vec<Vec<u32>>,
    /// Per column: the original codes of each compressed cell.
    expand: Vec<Vec<Vec<u32>>>,
}

impl MstOutcome {
    /// Per column, how many declared cells were merged for being rare.
    pub fn merged(&self) -> Vec<usize> {
        self.expand
            .iter()
            .map(|cells| cells.iter().filter(|c| c.len() > 1).map(Vec::len).sum())
            .collect()
    }

    /// `rows` synthetic rows in the original codes; a merged cell becomes one of its codes
    /// drawn uniformly. Seeded: the same outcome and seed give the same rows.
    pub fn sample(&self, rows: usize, seed: u64) -> Result<Encoded, ModelsError> {
        let compressed = self.model.sample(rows, seed);
        let mut rng = SplitMix64::new(seed ^ 0x5EED_CAFE);
        let codes = compressed
            .into_iter()
            .zip(&self.expand)
            .map(|(col, cells)| {
                col.into_iter()
                    .map(|v| {
                        let members = cells.get(v as usize).map_or(&[][..], Vec::as_slice);
                        members.get(rng.below(members.len())).copied().unwrap_or(0)
                    })
                    .collect()
            })
            .collect();
        Encoded::new(self.compress.iter().map(Vec::len).collect(), codes)
    }
}

fn dp_error(e: airlock_dp::DpError) -> ModelsError {
    ModelsError::Privacy {
        what: e.to_string(),
    }
}

/// Measures a histogram with the discrete Gaussian at `rho`.
fn measure(
    counts: Vec<u64>,
    sensitivity: i64,
    rho: f64,
    clique: Clique,
    what: String,
    charges: &mut Vec<Charge>,
) -> Result<Measurement, ModelsError> {
    let values = counts
        .into_iter()
        .map(|c| i64::try_from(c).unwrap_or(i64::MAX))
        .collect();
    let noisy = release_integers(
        &IntegerRelease {
            values,
            l1: sensitivity,
            l2: sensitivity,
        },
        Mechanism::DiscreteGaussian,
        Share::Rho(rho),
    )
    .map_err(dp_error)?;
    charges.push(Charge {
        what,
        mechanism: Mechanism::DiscreteGaussian.as_str(),
        rho: noisy.rho,
        scale: noisy.scale,
    });
    let var = noisy.scale * noisy.scale;
    Ok(Measurement {
        clique,
        var: vec![var; noisy.values.len()],
        y: noisy.values.into_iter().map(|v| v as f64).collect(),
    })
}

/// The Euclidean projection of `y` onto `{μ ≥ 0, Σμ = total}` (Duchi et al. 2008): the
/// independent estimate of a one-way marginal, consistent with the total.
fn project_simplex(y: &[f64], total: f64) -> Vec<f64> {
    let mut s: Vec<f64> = y.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    let mut cum = 0.0;
    let mut tau = 0.0;
    for (k, v) in s.iter().enumerate() {
        cum += v;
        let t = (cum - total) / (k + 1) as f64;
        if v - t > 0.0 {
            tau = t;
        }
    }
    y.iter().map(|v| (v - tau).max(0.0)).collect()
}

#[expect(
    clippy::indexing_slicing,
    reason = "columns 0..d of one Encoded; codes are below their column's size (Encoded::new)"
)]
/// Runs MST on coded rows (already bounded to `rows_per_unit` per unit). `names` label the
/// charges. Spends at most `config.rho`.
pub fn fit(
    data: &Encoded,
    names: &[String],
    config: &MstConfig,
) -> Result<MstOutcome, ModelsError> {
    let d = data.width();
    if d == 0 || names.len() != d {
        return Err(ModelsError::InvalidParam {
            param: "columns",
            rule: "name at least one column, each once",
        });
    }
    if !(config.rho.is_finite() && config.rho > 0.0) {
        return Err(ModelsError::InvalidParam {
            param: "rho",
            rule: "must be finite and above 0",
        });
    }
    // INVARIANT: data has d columns and every code is below its column's size.
    let k = i64::from(config.rows_per_unit.max(1));
    let (rho1, rho_select, rho2) = if d == 1 {
        (config.rho, 0.0, 0.0)
    } else {
        (config.rho / 3.0, config.rho / 3.0, config.rho / 3.0)
    };
    let mut charges = Vec::new();

    // 1. One-way marginals.
    let mut one = Vec::with_capacity(d);
    for (i, name) in names.iter().enumerate() {
        one.push(measure(
            data.histogram(i),
            k,
            rho1 / d as f64,
            Clique::One(i),
            format!("1-way {name}"),
            &mut charges,
        )?);
    }

    // 2. Compress: cells under three standard deviations merge into one.
    let mut compress = Vec::with_capacity(d);
    let mut expand = Vec::with_capacity(d);
    for m in &mut one {
        let sigma = m.var[0].sqrt();
        let keep: Vec<bool> = m.y.iter().map(|y| *y >= 3.0 * sigma).collect();
        let kept: Vec<u32> = (0..m.y.len() as u32)
            .filter(|&c| keep[c as usize])
            .collect();
        let rest: Vec<u32> = (0..m.y.len() as u32)
            .filter(|&c| !keep[c as usize])
            .collect();
        let mut map = vec![0u32; m.y.len()];
        let mut cells: Vec<Vec<u32>> = kept.iter().map(|&c| vec![c]).collect();
        for (new, &c) in kept.iter().enumerate() {
            map[c as usize] = new as u32;
        }
        if !rest.is_empty() {
            let merged = cells.len() as u32;
            let (mut y, mut var) = (Vec::new(), Vec::new());
            for &c in &kept {
                y.push(m.y[c as usize]);
                var.push(m.var[c as usize]);
            }
            let sum: f64 = rest.iter().map(|&c| m.y[c as usize]).sum();
            y.push(sum);
            var.push(m.var[0] * rest.len() as f64);
            for &c in &rest {
                map[c as usize] = merged;
            }
            cells.push(rest);
            m.y = y;
            m.var = var;
        }
        compress.push(map);
        expand.push(cells);
    }
    let sizes: Vec<usize> = expand.iter().map(Vec::len).collect();
    let coded = Encoded::new(
        sizes.clone(),
        (0..d)
            .map(|i| {
                data.column(i)
                    .iter()
                    .map(|&v| compress[i][v as usize])
                    .collect()
            })
            .collect(),
    )?;

    // The total: the inverse-variance weighted mean of the one-way sums.
    let (mut num, mut den) = (0.0, 0.0);
    for m in &one {
        let var: f64 = m.var.iter().sum();
        num += m.y.iter().sum::<f64>() / var;
        den += 1.0 / var;
    }
    let total = (num / den).max(1.0);

    // 3. Select a spanning tree by the exponential mechanism, Kruskal-style.
    let mut edges: Vec<(usize, usize)> = Vec::new();
    if d > 1 {
        let est: Vec<Vec<f64>> = one
            .iter()
            .map(|m| {
                let p = project_simplex(&m.y, total);
                p.iter().map(|x| x / total).collect()
            })
            .collect();
        let mut weights = Vec::with_capacity(d * (d - 1) / 2);
        for i in 0..d {
            for j in i + 1..d {
                let x = coded.histogram2(i, j);
                let sj = sizes[j];
                let w: f64 = x
                    .iter()
                    .enumerate()
                    .map(|(cell, &c)| {
                        (c as f64 - total * est[i][cell / sj] * est[j][cell % sj]).abs()
                    })
                    .sum();
                weights.push(((i, j), w));
            }
        }
        let mut component: Vec<usize> = (0..d).collect();
        let find = |c: &Vec<usize>, mut x: usize| {
            while c[x] != x {
                x = c[x];
            }
            x
        };
        let rounds = d - 1;
        for round in 0..rounds {
            let candidates: Vec<&((usize, usize), f64)> = weights
                .iter()
                .filter(|((i, j), _)| find(&component, *i) != find(&component, *j))
                .collect();
            let scores: Vec<f64> = candidates.iter().map(|(_, w)| *w).collect();
            let (pick, charged) =
                select_max(&scores, k as f64, rho_select / rounds as f64).map_err(dp_error)?;
            let ((i, j), _) = *candidates[pick];
            charges.push(Charge {
                what: format!("select pair {} of {rounds}", round + 1),
                mechanism: "exponential",
                rho: charged,
                scale: 2.0 * k as f64 / (8.0 * rho_select / rounds as f64).sqrt(),
            });
            let (ri, rj) = (find(&component, i), find(&component, j));
            component[ri] = rj;
            edges.push((i, j));
        }
    }

    // 4. The tree's two-way marginals.
    let mut measurements = one;
    for &(i, j) in &edges {
        measurements.push(measure(
            coded.histogram2(i, j),
            k,
            rho2 / edges.len() as f64,
            Clique::Two(i, j),
            format!("2-way {} x {}", names[i], names[j]),
            &mut charges,
        )?);
    }

    // 5. Estimation: post-processing of the measurements only.
    let mut model = TreeModel::new(&sizes, &edges, total)?;
    model.fit(&measurements, config.iterations)?;
    let rho_spent = charges.iter().map(|c| c.rho).sum();
    Ok(MstOutcome {
        model,
        edges,
        charges,
        rho_spent,
        estimated_rows: total,
        compress,
        expand,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simplex_projection() {
        let p = project_simplex(&[5.0, -1.0, 3.0], 6.0);
        assert!((p.iter().sum::<f64>() - 6.0).abs() < 1e-12);
        assert_eq!(p[1], 0.0);
        assert!((p[0] - 4.0).abs() < 1e-12 && (p[2] - 2.0).abs() < 1e-12);
    }
}
