//! A tree-structured graphical model fitted to noisy marginals: Private-PGM's estimator
//! (McKenna, Sheldon and Miklau, ICML 2019) restricted to a forest, where belief propagation
//! gives exact marginals.
//!
//! The model is `p(x) ∝ exp(Σ_i θ_i(x_i) + Σ_(p,c) θ_pc(x_p, x_c))` over a forest of columns.
//! Fitting minimises `Σ_m ½ Σ_cells (μ_m − y_m)² / var_m`, the squared error of the model's
//! marginals `μ` (scaled to the estimated row count) against every noisy measurement `y`, by
//! entropic mirror descent on the potentials with Private-PGM's Armijo line search.

use crate::ModelsError;
use crate::rng::SplitMix64;

/// Which marginal a measurement observes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clique {
    /// One column.
    One(usize),
    /// Two columns, cells row-major over `(i, j)`.
    Two(usize, usize),
}

/// A noisy marginal and the variance of each of its cells.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// What it observes.
    pub clique: Clique,
    /// Noisy counts.
    pub y: Vec<f64>,
    /// Each cell's noise variance.
    pub var: Vec<f64>,
}

/// A fitted forest model.
#[derive(Debug, Clone)]
pub struct TreeModel {
    sizes: Vec<usize>,
    /// Nodes in breadth-first order, each after its parent.
    order: Vec<usize>,
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
    theta: Vec<Vec<f64>>,
    /// Per non-root node `c`: `θ_(parent(c), c)`, row-major over (parent value, c value).
    theta_edge: Vec<Vec<f64>>,
    total: f64,
}

/// Marginals of the model, scaled to the total.
#[derive(Debug, Clone)]
struct Marginals {
    node: Vec<Vec<f64>>,
    /// Per non-root node, over (parent value, own value).
    edge: Vec<Vec<f64>>,
}

fn logsumexp(v: impl Iterator<Item = f64> + Clone) -> f64 {
    let m = v.clone().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + v.map(|x| (x - m).exp()).sum::<f64>().ln()
}

impl TreeModel {
    /// An independent (uniform) model over a forest with the given edges.
    #[expect(
        clippy::indexing_slicing,
        reason = "breadth-first search over nodes 0..n; edge ends are checked below n first"
    )]
    pub fn new(sizes: &[usize], edges: &[(usize, usize)], total: f64) -> Result<Self, ModelsError> {
        // INVARIANT: every node index used below is < n; edges are checked before use.
        let n = sizes.len();
        let mut adj = vec![Vec::new(); n];
        for &(a, b) in edges {
            if a >= n || b >= n || a == b {
                return Err(ModelsError::MetricInput {
                    rule: "an edge names a column outside the table",
                });
            }
            adj[a].push(b);
            adj[b].push(a);
        }
        let mut parent = vec![None; n];
        let mut seen = vec![false; n];
        let mut order = Vec::with_capacity(n);
        let mut children = vec![Vec::new(); n];
        for root in 0..n {
            if seen[root] {
                continue;
            }
            seen[root] = true;
            let start = order.len();
            order.push(root);
            let mut k = start;
            while k < order.len() {
                let u = order[k];
                k += 1;
                for &v in &adj[u] {
                    if !seen[v] {
                        seen[v] = true;
                        parent[v] = Some(u);
                        children[u].push(v);
                        order.push(v);
                    } else if parent[u] != Some(v) {
                        return Err(ModelsError::MetricInput {
                            rule: "the selected edges contain a cycle",
                        });
                    }
                }
            }
        }
        let theta_edge = (0..n)
            .map(|c| parent[c].map_or(Vec::new(), |p| vec![0.0; sizes[p] * sizes[c]]))
            .collect();
        Ok(TreeModel {
            sizes: sizes.to_vec(),
            order,
            parent,
            children,
            theta: sizes.iter().map(|&s| vec![0.0; s]).collect(),
            theta_edge,
            total: total.max(1.0),
        })
    }

    /// The edges, as (parent, child).
    pub fn edges(&self) -> Vec<(usize, usize)> {
        self.order
            .iter()
            .filter_map(|&c| self.parent.get(c).copied().flatten().map(|p| (p, c)))
            .collect()
    }

    /// The estimated row count.
    pub fn total(&self) -> f64 {
        self.total
    }

    /// Exact marginals by sum-product on the forest (in log space).
    #[expect(
        clippy::indexing_slicing,
        reason = "dense message passing; every index is a node below n or a value below its size"
    )]
    fn marginals(&self) -> Marginals {
        // INVARIANT: theta[i] has sizes[i] cells and theta_edge[c] sizes[parent]·sizes[c] (new).
        let n = self.sizes.len();
        // up[c]: message c → parent(c), over the parent's values.
        let mut up: Vec<Vec<f64>> = vec![Vec::new(); n];
        for &c in self.order.iter().rev() {
            let Some(p) = self.parent[c] else { continue };
            let (sp, sc) = (self.sizes[p], self.sizes[c]);
            let mut h = self.theta[c].clone();
            for &g in &self.children[c] {
                for (x, m) in h.iter_mut().zip(&up[g]) {
                    *x += m;
                }
            }
            let te = &self.theta_edge[c];
            up[c] = (0..sp)
                .map(|a| logsumexp((0..sc).map(|b| h[b] + te[a * sc + b])))
                .collect();
        }
        // belief[i]: θ_i plus every incoming message; down[c]: parent(c) → c.
        let mut belief: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut down: Vec<Vec<f64>> = vec![Vec::new(); n];
        for &c in &self.order {
            let mut b = self.theta[c].clone();
            for &g in &self.children[c] {
                for (x, m) in b.iter_mut().zip(&up[g]) {
                    *x += m;
                }
            }
            if let Some(p) = self.parent[c] {
                let (sp, sc) = (self.sizes[p], self.sizes[c]);
                let te = &self.theta_edge[c];
                let a: Vec<f64> = belief[p].iter().zip(&up[c]).map(|(x, m)| x - m).collect();
                down[c] = (0..sc)
                    .map(|v| logsumexp((0..sp).map(|u| a[u] + te[u * sc + v])))
                    .collect();
                for (x, m) in b.iter_mut().zip(&down[c]) {
                    *x += m;
                }
            }
            belief[c] = b;
        }
        let scale = |logs: &[f64]| -> Vec<f64> {
            let z = logsumexp(logs.iter().copied());
            logs.iter().map(|l| self.total * (l - z).exp()).collect()
        };
        let node = belief.iter().map(|b| scale(b)).collect();
        let edge = (0..n)
            .map(|c| {
                let Some(p) = self.parent[c] else {
                    return Vec::new();
                };
                let (sp, sc) = (self.sizes[p], self.sizes[c]);
                let te = &self.theta_edge[c];
                let mut logs = Vec::with_capacity(sp * sc);
                for u in 0..sp {
                    let a = belief[p][u] - up[c][u];
                    for v in 0..sc {
                        logs.push(a + te[u * sc + v] + belief[c][v] - down[c][v]);
                    }
                }
                scale(&logs)
            })
            .collect();
        Marginals { node, edge }
    }

    /// A measurement's marginal in the model's orientation: `Some(c)` for the edge into `c`,
    /// with `transpose` when the measurement lists (c, parent).
    fn locate(&self, clique: Clique) -> Result<(Option<usize>, usize, bool), ModelsError> {
        let parent = |k: usize| self.parent.get(k).copied().flatten();
        match clique {
            Clique::One(i) if i < self.sizes.len() => Ok((None, i, false)),
            Clique::Two(i, j) if i < self.sizes.len() && j < self.sizes.len() => {
                if parent(j) == Some(i) {
                    Ok((Some(j), j, false))
                } else if parent(i) == Some(j) {
                    Ok((Some(i), i, true))
                } else {
                    Err(ModelsError::MetricInput {
                        rule: "a two-way measurement is not an edge of the model",
                    })
                }
            }
            _ => Err(ModelsError::MetricInput {
                rule: "a measurement names a column outside the model",
            }),
        }
    }

    /// Fits the potentials to the measurements; returns the final loss.
    #[expect(
        clippy::indexing_slicing,
        reason = "measurements are located and their cell counts checked against the model first"
    )]
    pub fn fit(
        &mut self,
        measurements: &[Measurement],
        iterations: usize,
    ) -> Result<f64, ModelsError> {
        // INVARIANT: each measurement's cells equal its marginal's (checked in the loop below).
        // Measurements re-expressed in the model's orientation.
        struct Oriented {
            edge: Option<usize>,
            node: usize,
            y: Vec<f64>,
            w: Vec<f64>,
        }
        let mut obs = Vec::with_capacity(measurements.len());
        for m in measurements {
            let (edge, node, transpose) = self.locate(m.clique)?;
            let cells = match edge {
                None => self.sizes[node],
                Some(c) => self.sizes[c] * self.sizes[self.parent[c].unwrap_or(c)],
            };
            if m.y.len() != cells
                || m.var.len() != cells
                || m.var.iter().any(|v| v.is_nan() || *v <= 0.0)
            {
                return Err(ModelsError::MetricInput {
                    rule: "a measurement does not match its marginal's cells",
                });
            }
            let (mut y, mut w): (Vec<f64>, Vec<f64>) =
                m.y.iter().zip(&m.var).map(|(y, v)| (*y, 1.0 / v)).unzip();
            if transpose {
                // Listed (c, p); the model stores (p, c).
                let (Clique::Two(i, j), Some(_)) = (m.clique, edge) else {
                    unreachable!("transpose only for two-way");
                };
                let (si, sj) = (self.sizes[i], self.sizes[j]);
                let mut ty = vec![0.0; cells];
                let mut tw = vec![0.0; cells];
                for a in 0..si {
                    for b in 0..sj {
                        ty[b * si + a] = y[a * sj + b];
                        tw[b * si + a] = w[a * sj + b];
                    }
                }
                (y, w) = (ty, tw);
            }
            obs.push(Oriented { edge, node, y, w });
        }
        let loss_grad = |mu: &Marginals| -> (f64, Vec<(usize, Vec<f64>)>) {
            let mut loss = 0.0;
            let mut grads = Vec::with_capacity(obs.len());
            for (k, o) in obs.iter().enumerate() {
                let m = match o.edge {
                    None => &mu.node[o.node],
                    Some(c) => &mu.edge[c],
                };
                let g: Vec<f64> = m
                    .iter()
                    .zip(&o.y)
                    .zip(&o.w)
                    .map(|((m, y), w)| {
                        let d = m - y;
                        loss += 0.5 * d * d * w;
                        d * w
                    })
                    .collect();
                grads.push((k, g));
            }
            (loss, grads)
        };
        let apply =
            |model: &mut TreeModel, base: &TreeModel, grads: &[(usize, Vec<f64>)], alpha| {
                model.theta.clone_from(&base.theta);
                model.theta_edge.clone_from(&base.theta_edge);
                for (k, g) in grads {
                    let o = &obs[*k];
                    let target = match o.edge {
                        None => &mut model.theta[o.node],
                        Some(c) => &mut model.theta_edge[c],
                    };
                    for (t, g) in target.iter_mut().zip(g) {
                        *t -= alpha * g;
                    }
                }
            };
        // Inner product of the gradient with a change of marginals.
        let dot = |grads: &[(usize, Vec<f64>)], a: &Marginals, b: &Marginals| -> f64 {
            grads
                .iter()
                .map(|(k, g)| {
                    let o = &obs[*k];
                    let (x, y) = match o.edge {
                        None => (&a.node[o.node], &b.node[o.node]),
                        Some(c) => (&a.edge[c], &b.edge[c]),
                    };
                    g.iter()
                        .zip(x)
                        .zip(y)
                        .map(|((g, x), y)| g * (x - y))
                        .sum::<f64>()
                })
                .sum()
        };
        let mut mu = self.marginals();
        let (mut loss, mut grads) = loss_grad(&mu);
        let mut alpha = 1.0 / self.total;
        let mut stalled = 0;
        for _ in 0..iterations {
            let base = self.clone();
            let nu = mu.clone();
            alpha *= 2.0;
            let mut accepted = false;
            for _ in 0..25 {
                apply(self, &base, &grads, alpha);
                mu = self.marginals();
                let (new_loss, _) = loss_grad(&mu);
                if loss - new_loss >= 0.5 * alpha * dot(&grads, &nu, &mu) {
                    accepted = true;
                    break;
                }
                alpha *= 0.5;
            }
            if !accepted {
                *self = base;
                break;
            }
            let (new_loss, new_grads) = loss_grad(&mu);
            stalled = if loss - new_loss <= 1e-9 * loss.abs().max(1.0) {
                stalled + 1
            } else {
                0
            };
            (loss, grads) = (new_loss, new_grads);
            if stalled >= 10 {
                break;
            }
        }
        Ok(loss)
    }

    /// The model's one-way marginal of a column, as probabilities.
    pub fn node_marginal(&self, i: usize) -> Vec<f64> {
        let m = self.marginals();
        m.node
            .get(i)
            .map_or(Vec::new(), |v| v.iter().map(|x| x / self.total).collect())
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "codes come from fill over a node's own cells, so each is below its size"
    )]
    /// `rows` rows, column-major, with the low-variance rounding Private-PGM uses: each
    /// column's counts within a group of rows are the expected counts rounded (remainders
    /// distributed at random in proportion to the fractions), then shuffled.
    pub fn sample(&self, rows: usize, seed: u64) -> Vec<Vec<u32>> {
        // INVARIANT: out has one column per node; fill returns codes below the weights' length.
        let mu = self.marginals();
        let mut rng = SplitMix64::new(seed);
        let mut out: Vec<Vec<u32>> = vec![vec![0; rows]; self.sizes.len()];
        for &c in &self.order {
            match self.parent[c] {
                None => {
                    let mut col = fill(rows, &mu.node[c], &mut rng);
                    rng.shuffle(&mut col);
                    out[c] = col;
                }
                Some(p) => {
                    let (sp, sc) = (self.sizes[p], self.sizes[c]);
                    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); sp];
                    for (r, &v) in out[p].iter().enumerate() {
                        groups[v as usize].push(r);
                    }
                    let mut col = vec![0u32; rows];
                    for (u, members) in groups.iter().enumerate() {
                        if members.is_empty() {
                            continue;
                        }
                        let row = &mu.edge[c][u * sc..(u + 1) * sc];
                        let weights = if row.iter().sum::<f64>() > 0.0 {
                            row
                        } else {
                            &mu.node[c][..]
                        };
                        let mut vals = fill(members.len(), weights, &mut rng);
                        rng.shuffle(&mut vals);
                        for (&r, v) in members.iter().zip(vals) {
                            col[r] = v;
                        }
                    }
                    out[c] = col;
                }
            }
        }
        out
    }
}

/// `n` values with counts proportional to `weights`: floors first, then the remainder drawn
/// without replacement in proportion to the fractional parts (Efraimidis–Spirakis keys).
fn fill(n: usize, weights: &[f64], rng: &mut SplitMix64) -> Vec<u32> {
    let total: f64 = weights.iter().map(|w| w.max(0.0)).sum();
    if total <= 0.0 {
        return (0..n).map(|_| rng.below(weights.len()) as u32).collect();
    }
    let expected: Vec<f64> = weights
        .iter()
        .map(|w| w.max(0.0) / total * n as f64)
        .collect();
    let mut counts: Vec<usize> = expected.iter().map(|e| e.floor() as usize).collect();
    let rest = n.saturating_sub(counts.iter().sum());
    if rest > 0 {
        let mut keys: Vec<(f64, usize)> = expected
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let f = e - e.floor();
                (f > 0.0).then(|| (rng.next_f64().max(f64::MIN_POSITIVE).ln() / f, i))
            })
            .collect();
        keys.sort_by(|a, b| b.0.total_cmp(&a.0));
        for &(_, i) in keys.iter().take(rest) {
            if let Some(c) = counts.get_mut(i) {
                *c += 1;
            }
        }
        // Fractions are fewer than the remainder only through rounding; top up at random.
        let mut short = n.saturating_sub(counts.iter().sum());
        while short > 0 {
            let i = rng.below(counts.len());
            if let Some(c) = counts.get_mut(i) {
                *c += 1;
            }
            short -= 1;
        }
    }
    counts
        .iter()
        .enumerate()
        .flat_map(|(i, &k)| std::iter::repeat_n(i as u32, k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact (noise-free) marginals of a chain a → b → c are recovered by the fit, and
    /// sampling reproduces them.
    #[test]
    fn fits_exact_marginals_of_a_chain() {
        let sizes = [2, 3, 2];
        // p(a) = [0.3, 0.7]; p(b|a); p(c|b).
        let pa = [0.3, 0.7];
        let pba = [[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]];
        let pcb = [[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]];
        let n = 10_000.0;
        let mut ab = vec![0.0; 6];
        let mut bc = [0.0; 6];
        let (mut a1, mut b1, mut c1) = (vec![0.0; 2], vec![0.0; 3], vec![0.0; 2]);
        for a in 0..2 {
            for b in 0..3 {
                for c in 0..2 {
                    let p = pa[a] * pba[a][b] * pcb[b][c] * n;
                    ab[a * 3 + b] += p;
                    bc[b * 2 + c] += p;
                    a1[a] += p;
                    b1[b] += p;
                    c1[c] += p;
                }
            }
        }
        let ms = |clique, y: Vec<f64>| Measurement {
            clique,
            var: vec![1.0; y.len()],
            y,
        };
        let measurements = vec![
            ms(Clique::One(0), a1),
            ms(Clique::One(1), b1.clone()),
            ms(Clique::One(2), c1),
            ms(Clique::Two(0, 1), ab.clone()),
            // Listed against the model's orientation on purpose.
            ms(
                Clique::Two(2, 1),
                (0..6).map(|k| bc[(k % 3) * 2 + k / 3]).collect(),
            ),
        ];
        let mut m = TreeModel::new(&sizes, &[(0, 1), (1, 2)], n).unwrap();
        let loss = m.fit(&measurements, 2_000).unwrap();
        assert!(loss < 1e-3, "loss {loss}");
        let b = m.node_marginal(1);
        for (x, y) in b.iter().zip(&b1) {
            assert!((x - y / n).abs() < 1e-4, "{b:?}");
        }
        let rows = m.sample(10_000, 3);
        let mut count = vec![0.0; 6];
        for r in 0..10_000 {
            count[rows[0][r] as usize * 3 + rows[1][r] as usize] += 1.0;
        }
        for (x, y) in count.iter().zip(&ab) {
            assert!((x - y).abs() <= 2.0, "{count:?} vs {ab:?}");
        }
    }

    #[test]
    fn a_cycle_is_refused() {
        assert!(TreeModel::new(&[2, 2, 2], &[(0, 1), (1, 2), (2, 0)], 10.0).is_err());
    }

    #[test]
    fn fill_matches_expected_counts() {
        let mut rng = SplitMix64::new(5);
        let v = fill(10, &[0.25, 0.25, 0.5], &mut rng);
        assert_eq!(v.len(), 10);
        let fives = v.iter().filter(|&&x| x == 2).count();
        assert_eq!(fives, 5);
    }
}
