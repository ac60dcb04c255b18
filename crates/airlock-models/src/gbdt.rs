//! Gradient-boosted regression trees for binary classification on log-loss, in the style of
//! LightGBM and scikit-learn's `HistGradientBoostingClassifier`:
//!
//! - each input column is cut into at most `max_bins` bins at quantile midpoints of the
//!   training values (every distinct value gets its own bin when there are few);
//! - each tree grows best-first (the leaf with the largest gain splits next) up to
//!   `max_leaves` leaves and `max_depth`, every leaf keeping `min_samples_leaf` rows;
//! - split gain and leaf values use the gradient and Hessian of the log-loss with an L2 penalty
//!   `l2` on leaf values: value `= -learning_rate * G / (H + l2)`;
//! - a child's histogram is built for the smaller child and subtracted from the parent's for
//!   the larger one.
//!
//! Everything runs on one thread in a fixed order, ties go to the lower feature and bin, and
//! the only randomness (row subsampling, off by default) comes from the seed: same inputs, same
//! bytes. Trees store real-valued thresholds (`x <= t` goes left), so prediction needs no bins.

use serde::{Deserialize, Serialize};

use crate::codec::{Reader, Writer};
use crate::error::ModelsError;
use crate::model::{Model, ModelKind, check_dim, sigmoid};
use crate::rng::SplitMix64;

/// Histogram stride: bins per feature are at most 256 so a bin index fits a `u8`.
const STRIDE: usize = 256;
/// Smallest Hessian sum a child may have (scikit-learn's `min_hessian_to_split`).
const MIN_HESSIAN: f64 = 1e-3;

/// Hyper-parameters of gradient boosting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GbdtParams {
    /// Boosting rounds (trees).
    pub n_estimators: u32,
    /// Shrinkage applied to every leaf value.
    pub learning_rate: f64,
    /// Leaves per tree at most (at least 2).
    pub max_leaves: u32,
    /// Depth at most; 0 means no limit beyond `max_leaves`.
    pub max_depth: u32,
    /// Training rows every leaf must hold.
    pub min_samples_leaf: u32,
    /// L2 penalty on leaf values.
    pub l2: f64,
    /// Bins per input column, 2 to 256.
    pub max_bins: u32,
    /// Share of rows each tree sees, in (0, 1]; below 1 the seed picks them.
    pub subsample: f64,
    /// A split must gain more than this.
    pub min_gain: f64,
}

impl Default for GbdtParams {
    /// scikit-learn's `HistGradientBoostingClassifier` defaults (without early stopping).
    fn default() -> Self {
        GbdtParams {
            n_estimators: 100,
            learning_rate: 0.1,
            max_leaves: 31,
            max_depth: 0,
            min_samples_leaf: 20,
            l2: 0.0,
            max_bins: 255,
            subsample: 1.0,
            min_gain: 0.0,
        }
    }
}

impl GbdtParams {
    fn validate(&self) -> Result<(), ModelsError> {
        let bad = |param, rule| Err(ModelsError::InvalidParam { param, rule });
        if self.n_estimators == 0 {
            return bad("n_estimators", "must be at least 1");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate", "must be finite and positive");
        }
        if self.max_leaves < 2 {
            return bad("max_leaves", "must be at least 2");
        }
        if self.min_samples_leaf == 0 {
            return bad("min_samples_leaf", "must be at least 1");
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return bad("l2", "must be finite and non-negative");
        }
        if !(2..=256).contains(&self.max_bins) {
            return bad("max_bins", "must be between 2 and 256");
        }
        if !(self.subsample > 0.0 && self.subsample <= 1.0) {
            return bad("subsample", "must be in (0, 1]");
        }
        if !(self.min_gain.is_finite() && self.min_gain >= 0.0) {
            return bad("min_gain", "must be finite and non-negative");
        }
        Ok(())
    }
}

/// One node of a tree.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Split {
        feature: u32,
        threshold: f64,
        left: u32,
        right: u32,
    },
    Leaf {
        value: f64,
    },
}

/// A regression tree. Children always have larger indices than their parent, so a walk from
/// the root ends.
#[derive(Debug, Clone, PartialEq)]
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn predict(&self, x: &[f64]) -> f64 {
        let mut i = 0usize;
        while let Some(node) = self.nodes.get(i) {
            match node {
                Node::Leaf { value } => return *value,
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    let v = x.get(*feature as usize).copied().unwrap_or(f64::NAN);
                    i = if v <= *threshold { *left } else { *right } as usize;
                }
            }
        }
        // Unreachable for a validated tree; contributes nothing rather than panicking.
        0.0
    }
}

/// A fitted gradient-boosted model.
#[derive(Debug, Clone, PartialEq)]
pub struct GbdtModel {
    n_features: u32,
    base_score: f64,
    trees: Vec<Tree>,
}

#[derive(Debug, Clone, Copy, Default)]
struct HBin {
    g: f64,
    h: f64,
    n: u32,
}

#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    bin: u8,
    gain: f64,
}

#[derive(Debug)]
struct Leaf {
    node: usize,
    rows: Vec<u32>,
    hist: Vec<HBin>,
    g: f64,
    h: f64,
    depth: u32,
    split: Option<Split>,
}

/// Training-side node: splits on bins.
#[derive(Debug, Clone, Copy)]
enum TNode {
    Split {
        feature: usize,
        bin: u8,
        left: usize,
        right: usize,
    },
    Leaf {
        value: f64,
    },
}

impl GbdtModel {
    /// Fit on a row-major matrix `x` of `y.len()` rows and `d` columns.
    pub fn fit(
        x: &[f64],
        d: usize,
        y: &[bool],
        params: &GbdtParams,
        seed: u64,
    ) -> Result<Self, ModelsError> {
        params.validate()?;
        let n = y.len();
        if n == 0 || x.len() != n.saturating_mul(d) || d == 0 {
            return Err(ModelsError::Dimension {
                expected: n.saturating_mul(d),
                found: x.len(),
            });
        }
        if u32::try_from(n).is_err() || u32::try_from(d).is_err() {
            return Err(ModelsError::InvalidParam {
                param: "rows",
                rule: "at most 2^32 - 1 rows and columns",
            });
        }
        let thresholds: Vec<Vec<f64>> = (0..d)
            .map(|j| bin_thresholds(x.iter().skip(j).step_by(d).copied(), params.max_bins))
            .collect();
        let binned: Vec<Vec<u8>> = thresholds
            .iter()
            .enumerate()
            .map(|(j, t)| {
                x.iter()
                    .skip(j)
                    .step_by(d)
                    .map(|v| t.partition_point(|c| c < v).min(STRIDE - 1) as u8)
                    .collect()
            })
            .collect();
        let n_bins: Vec<usize> = thresholds.iter().map(|t| t.len() + 1).collect();
        let yf: Vec<f64> = y.iter().map(|&v| f64::from(u8::from(v))).collect();
        let rate = (yf.iter().sum::<f64>() / n as f64).clamp(1e-12, 1.0 - 1e-12);
        let base_score = (rate / (1.0 - rate)).ln();
        let mut raw = vec![base_score; n];
        let mut g = vec![0.0; n];
        let mut h = vec![0.0; n];
        let mut rng = SplitMix64::new(seed);
        let mut trees = Vec::with_capacity(params.n_estimators as usize);
        for _ in 0..params.n_estimators {
            for ((gi, hi), (f, yi)) in g.iter_mut().zip(h.iter_mut()).zip(raw.iter().zip(&yf)) {
                let p = sigmoid(*f);
                *gi = p - yi;
                *hi = p * (1.0 - p);
            }
            let rows: Vec<u32> = if params.subsample < 1.0 {
                (0..n as u32)
                    .filter(|_| rng.next_f64() < params.subsample)
                    .collect()
            } else {
                (0..n as u32).collect()
            };
            let tnodes = grow(&binned, &n_bins, &g, &h, rows, params);
            // Update the raw scores of every row (subsampled or not) by walking the bins.
            for (i, f) in raw.iter_mut().enumerate() {
                let mut k = 0usize;
                while let Some(node) = tnodes.get(k) {
                    match node {
                        TNode::Leaf { value } => {
                            *f += value;
                            break;
                        }
                        TNode::Split {
                            feature,
                            bin,
                            left,
                            right,
                        } => {
                            let b = binned
                                .get(*feature)
                                .and_then(|c| c.get(i))
                                .copied()
                                .unwrap_or(0);
                            k = if b <= *bin { *left } else { *right };
                        }
                    }
                }
            }
            let nodes = tnodes
                .iter()
                .map(|t| match *t {
                    TNode::Leaf { value } => Node::Leaf { value },
                    TNode::Split {
                        feature,
                        bin,
                        left,
                        right,
                    } => Node::Split {
                        feature: feature as u32,
                        threshold: thresholds
                            .get(feature)
                            .and_then(|t| t.get(usize::from(bin)))
                            .copied()
                            .unwrap_or(f64::INFINITY),
                        left: left as u32,
                        right: right as u32,
                    },
                })
                .collect();
            trees.push(Tree { nodes });
        }
        Ok(GbdtModel {
            n_features: d as u32,
            base_score,
            trees,
        })
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }
}

/// Quantile-midpoint thresholds (scikit-learn's binning): every distinct value its own bin when
/// there are at most `max_bins`, otherwise midpoints at `max_bins - 1` evenly spaced quantiles.
fn bin_thresholds(values: impl Iterator<Item = f64>, max_bins: u32) -> Vec<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    let mut distinct = v.clone();
    distinct.dedup();
    let max_bins = max_bins as usize;
    let mut out: Vec<f64> = if distinct.len() <= max_bins {
        distinct
            .windows(2)
            .map(|w| w.iter().sum::<f64>() / 2.0)
            .collect()
    } else {
        let last = v.len().saturating_sub(1);
        (1..max_bins)
            .filter_map(|k| {
                let pos = k as f64 * last as f64 / max_bins as f64;
                let lo = v.get(pos.floor() as usize)?;
                let hi = v.get(pos.ceil() as usize)?;
                Some((lo + hi) / 2.0)
            })
            .collect()
    };
    out.dedup();
    out
}

fn build_hist(binned: &[Vec<u8>], g: &[f64], h: &[f64], rows: &[u32]) -> Vec<HBin> {
    let mut hist = vec![HBin::default(); binned.len() * STRIDE];
    for (col, hs) in binned.iter().zip(hist.chunks_exact_mut(STRIDE)) {
        for &r in rows {
            let r = r as usize;
            let (Some(&b), Some(&gr), Some(&hr)) = (col.get(r), g.get(r), h.get(r)) else {
                continue;
            };
            if let Some(slot) = hs.get_mut(usize::from(b)) {
                slot.g += gr;
                slot.h += hr;
                slot.n += 1;
            }
        }
    }
    hist
}

fn score(g: f64, h: f64, l2: f64) -> f64 {
    g * g / (h + l2)
}

fn best_split(
    hist: &[HBin],
    n_bins: &[usize],
    g: f64,
    h: f64,
    n: u32,
    params: &GbdtParams,
) -> Option<Split> {
    let parent = score(g, h, params.l2);
    let mut best: Option<Split> = None;
    for (feature, (hs, &nb)) in hist.chunks_exact(STRIDE).zip(n_bins).enumerate() {
        let (mut gl, mut hl, mut nl) = (0.0, 0.0, 0u32);
        // The last bin cannot be a left side: nothing would go right.
        for (bin, b) in hs.iter().take(nb.saturating_sub(1)).enumerate() {
            gl += b.g;
            hl += b.h;
            nl += b.n;
            let nr = n.saturating_sub(nl);
            if nl < params.min_samples_leaf {
                continue;
            }
            if nr < params.min_samples_leaf {
                break;
            }
            let (gr, hr) = (g - gl, h - hl);
            if hl < MIN_HESSIAN || hr < MIN_HESSIAN {
                continue;
            }
            let gain = score(gl, hl, params.l2) + score(gr, hr, params.l2) - parent;
            if gain > params.min_gain && best.is_none_or(|s| gain > s.gain) {
                best = Some(Split {
                    feature,
                    bin: bin as u8,
                    gain,
                });
            }
        }
    }
    best
}

fn make_leaf(
    node: usize,
    rows: Vec<u32>,
    hist: Vec<HBin>,
    depth: u32,
    n_bins: &[usize],
    params: &GbdtParams,
) -> Leaf {
    // Totals from the first feature's bins (every row is in exactly one bin per feature).
    let (g, h, n) = hist
        .iter()
        .take(STRIDE)
        .fold((0.0, 0.0, 0u32), |a, b| (a.0 + b.g, a.1 + b.h, a.2 + b.n));
    let splittable = params.max_depth == 0 || depth < params.max_depth;
    let split = if splittable {
        best_split(&hist, n_bins, g, h, n, params)
    } else {
        None
    };
    Leaf {
        node,
        rows,
        hist,
        g,
        h,
        depth,
        split,
    }
}

fn grow(
    binned: &[Vec<u8>],
    n_bins: &[usize],
    g: &[f64],
    h: &[f64],
    rows: Vec<u32>,
    params: &GbdtParams,
) -> Vec<TNode> {
    let hist = build_hist(binned, g, h, &rows);
    let mut nodes = vec![TNode::Leaf { value: 0.0 }];
    let mut open = vec![make_leaf(0, rows, hist, 0, n_bins, params)];
    let mut done: Vec<Leaf> = Vec::new();
    let mut leaves = 1u32;
    while leaves < params.max_leaves {
        // Best-first: largest gain, ties to the lower node index.
        let pick = open
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.split.map(|s| (i, s.gain, l.node)))
            .fold(None::<(usize, f64, usize)>, |best, c| match best {
                Some(b) if b.1 > c.1 || (b.1 == c.1 && b.2 < c.2) => Some(b),
                _ => Some(c),
            });
        let Some((i, _, _)) = pick else { break };
        let leaf = open.remove(i);
        let Some(split) = leaf.split else { break };
        let col = binned.get(split.feature).map_or(&[][..], Vec::as_slice);
        let (lrows, rrows): (Vec<u32>, Vec<u32>) = leaf
            .rows
            .iter()
            .copied()
            .partition(|&r| col.get(r as usize).copied().unwrap_or(0) <= split.bin);
        let (small, small_is_left) = if lrows.len() <= rrows.len() {
            (&lrows, true)
        } else {
            (&rrows, false)
        };
        let small_hist = build_hist(binned, g, h, small);
        let big_hist: Vec<HBin> = leaf
            .hist
            .iter()
            .zip(&small_hist)
            .map(|(p, s)| HBin {
                g: p.g - s.g,
                h: p.h - s.h,
                n: p.n.saturating_sub(s.n),
            })
            .collect();
        let (lhist, rhist) = if small_is_left {
            (small_hist, big_hist)
        } else {
            (big_hist, small_hist)
        };
        let left = nodes.len();
        let right = left + 1;
        nodes.push(TNode::Leaf { value: 0.0 });
        nodes.push(TNode::Leaf { value: 0.0 });
        if let Some(slot) = nodes.get_mut(leaf.node) {
            *slot = TNode::Split {
                feature: split.feature,
                bin: split.bin,
                left,
                right,
            };
        }
        let depth = leaf.depth + 1;
        open.push(make_leaf(left, lrows, lhist, depth, n_bins, params));
        open.push(make_leaf(right, rrows, rhist, depth, n_bins, params));
        leaves += 1;
    }
    done.extend(open);
    for leaf in done {
        if let Some(slot) = nodes.get_mut(leaf.node) {
            let denom = leaf.h + params.l2;
            let value = if denom > 0.0 {
                -params.learning_rate * leaf.g / denom
            } else {
                0.0
            };
            *slot = TNode::Leaf { value };
        }
    }
    nodes
}

impl Model for GbdtModel {
    fn kind(&self) -> ModelKind {
        ModelKind::Gbdt
    }

    fn n_inputs(&self) -> usize {
        self.n_features as usize
    }

    fn predict_proba(&self, x: &[f64]) -> Result<f64, ModelsError> {
        check_dim(self.n_features as usize, x)?;
        let raw = self
            .trees
            .iter()
            .fold(self.base_score, |acc, t| acc + t.predict(x));
        Ok(sigmoid(raw))
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(self.n_features);
        w.f64(self.base_score);
        w.len(self.trees.len());
        for t in &self.trees {
            w.len(t.nodes.len());
            for node in &t.nodes {
                match node {
                    Node::Split {
                        feature,
                        threshold,
                        left,
                        right,
                    } => {
                        w.u8(0);
                        w.u32(*feature);
                        w.f64(*threshold);
                        w.u32(*left);
                        w.u32(*right);
                    }
                    Node::Leaf { value } => {
                        w.u8(1);
                        w.f64(*value);
                    }
                }
            }
        }
        w.finish()
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, ModelsError> {
        let mut r = Reader::new(bytes);
        let n_features = r.u32()?;
        let base_score = r.f64()?;
        let n_trees = r.len(13)?;
        let mut trees = Vec::with_capacity(n_trees);
        for _ in 0..n_trees {
            let n_nodes = r.len(9)?;
            if n_nodes == 0 {
                return Err(r.err("empty tree"));
            }
            let mut nodes = Vec::with_capacity(n_nodes);
            for i in 0..n_nodes {
                let node = match r.u8()? {
                    0 => {
                        let feature = r.u32()?;
                        let threshold = r.f64()?;
                        let (left, right) = (r.u32()?, r.u32()?);
                        if feature >= n_features {
                            return Err(r.err("split on a feature the model lacks"));
                        }
                        let ok = |c: u32| (c as usize) > i && (c as usize) < n_nodes;
                        if !ok(left) || !ok(right) {
                            return Err(r.err("child index must follow its parent"));
                        }
                        Node::Split {
                            feature,
                            threshold,
                            left,
                            right,
                        }
                    }
                    1 => Node::Leaf { value: r.f64()? },
                    _ => return Err(r.err("unknown node tag")),
                };
                nodes.push(node);
            }
            trees.push(Tree { nodes });
        }
        r.expect_end()?;
        Ok(GbdtModel {
            n_features,
            base_score,
            trees,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::auroc;

    /// XOR-like data no linear model separates.
    fn xor(n: usize, seed: u64) -> (Vec<f64>, Vec<bool>) {
        let mut r = SplitMix64::new(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let a = r.next_f64() * 2.0 - 1.0;
            let b = r.next_f64() * 2.0 - 1.0;
            let noise = r.next_f64();
            x.extend([a, b, noise]);
            let label = (a > 0.0) != (b > 0.0);
            y.push(if r.next_f64() < 0.1 { !label } else { label });
        }
        (x, y)
    }

    #[test]
    fn learns_an_interaction() {
        let (x, y) = xor(4_000, 1);
        let p = GbdtParams {
            n_estimators: 30,
            ..Default::default()
        };
        let m = GbdtModel::fit(&x, 3, &y, &p, 0).unwrap();
        let (xt, yt) = xor(2_000, 2);
        let s: Vec<f64> = xt.chunks(3).map(|r| m.predict_proba(r).unwrap()).collect();
        assert!(auroc(&yt, &s).unwrap() > 0.85);
    }

    #[test]
    fn trees_respect_limits() {
        let (x, y) = xor(2_000, 3);
        let p = GbdtParams {
            n_estimators: 5,
            max_leaves: 4,
            min_samples_leaf: 300,
            ..Default::default()
        };
        let m = GbdtModel::fit(&x, 3, &y, &p, 0).unwrap();
        for t in &m.trees {
            let leaves = t
                .nodes
                .iter()
                .filter(|n| matches!(n, Node::Leaf { .. }))
                .count();
            assert!(leaves <= 4);
        }
        // Every leaf holds at least min_samples_leaf training rows.
        let mut counts = vec![vec![0usize; 8]; m.trees.len()];
        for row in x.chunks(3) {
            for (t, c) in m.trees.iter().zip(counts.iter_mut()) {
                let mut i = 0;
                loop {
                    match &t.nodes[i] {
                        Node::Leaf { .. } => break,
                        Node::Split {
                            feature,
                            threshold,
                            left,
                            right,
                        } => {
                            i = if row[*feature as usize] <= *threshold {
                                *left
                            } else {
                                *right
                            } as usize;
                        }
                    }
                }
                c[i] += 1;
            }
        }
        for (t, c) in m.trees.iter().zip(&counts) {
            for (i, node) in t.nodes.iter().enumerate() {
                if matches!(node, Node::Leaf { .. }) {
                    assert!(c[i] >= 300, "{c:?}");
                }
            }
        }
        let p = GbdtParams {
            n_estimators: 3,
            max_depth: 1,
            ..Default::default()
        };
        let m = GbdtModel::fit(&x, 3, &y, &p, 0).unwrap();
        assert!(m.trees.iter().all(|t| t.nodes.len() <= 3));
    }

    #[test]
    fn single_stump_matches_hand_computation() {
        // x = [0, 0, 1, 1], y = [0, 0, 1, 1], one tree, min_samples_leaf 1, lr 1, l2 0.
        let x = [0.0, 0.0, 1.0, 1.0];
        let y = [false, false, true, true];
        let p = GbdtParams {
            n_estimators: 1,
            learning_rate: 1.0,
            min_samples_leaf: 1,
            ..Default::default()
        };
        let m = GbdtModel::fit(&x, 1, &y, &p, 0).unwrap();
        assert_eq!(m.base_score, 0.0);
        // At p = 0.5: g = -0.5 for positives, h = 0.25; leaf value = -G / H = 2.
        assert_eq!(
            m.trees[0].nodes,
            vec![
                Node::Split {
                    feature: 0,
                    threshold: 0.5,
                    left: 1,
                    right: 2
                },
                Node::Leaf { value: -2.0 },
                Node::Leaf { value: 2.0 },
            ]
        );
    }

    #[test]
    fn deterministic_round_trip_and_hostile_bytes() {
        let (x, y) = xor(1_000, 4);
        let p = GbdtParams {
            n_estimators: 10,
            subsample: 0.7,
            ..Default::default()
        };
        let a = GbdtModel::fit(&x, 3, &y, &p, 9).unwrap();
        let b = GbdtModel::fit(&x, 3, &y, &p, 9).unwrap();
        let c = GbdtModel::fit(&x, 3, &y, &p, 10).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        assert_ne!(a.to_bytes(), c.to_bytes());
        let bytes = a.to_bytes();
        let d = GbdtModel::from_bytes(&bytes).unwrap();
        assert_eq!(d, a);
        for cut in 0..bytes.len() {
            assert!(GbdtModel::from_bytes(&bytes[..cut]).is_err());
        }
        // A child pointing back at its parent is refused (it would loop).
        let mut w = Writer::new();
        w.u32(1);
        w.f64(0.0);
        w.len(1);
        w.len(2);
        w.u8(0);
        w.u32(0);
        w.f64(0.5);
        w.u32(0);
        w.u32(1);
        w.u8(1);
        w.f64(1.0);
        assert!(GbdtModel::from_bytes(&w.finish()).is_err());
    }

    #[test]
    fn binning() {
        assert_eq!(
            bin_thresholds([3.0, 1.0, 2.0, 1.0].into_iter(), 255),
            vec![1.5, 2.5]
        );
        let t = bin_thresholds((0..1000).map(f64::from), 4);
        assert_eq!(t.len(), 3);
        assert!(t.windows(2).all(|w| w[0] < w[1]));
        assert!((t[1] - 499.5).abs() < 1.0);
    }
}
