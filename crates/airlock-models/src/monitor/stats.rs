//! The drift statistics, on the definitions Evidently 0.7 uses (its `legacy.calculations.stattests`
//! on scipy and numpy), computed over weighted distinct values so a profile that keeps counts and
//! no rows gives the same figure as the rows it came from.

use std::collections::BTreeMap;

use super::{Categories, Numbers};

/// Exact two-sided p-values up to this many values on either side (scipy's `MAX_AUTO_N`).
pub const KS_EXACT_MAX: u64 = 10_000;

/// Two-sample Kolmogorov–Smirnov: the statistic `D` and its two-sided p-value.
///
/// Up to [`KS_EXACT_MAX`] values per side the p-value is exact (the lattice-path count scipy's
/// `method="auto"` uses, on the same rounding of `D` to the lattice); beyond it, as scipy, the
/// one-sample law of `D_n` at `n = round(n1 n2 / (n1 + n2))` ([`kolmogorov_n_sf`]).
pub fn ks(reference: &Numbers, current: &Numbers) -> (f64, f64) {
    let (n1, n2) = (reference.n, current.n);
    let d = merged(reference, current)
        .map(|(_, f, g)| (f - g).abs())
        .fold(0.0, f64::max);
    let p = if n1.max(n2) <= KS_EXACT_MAX {
        ks_exact(n1, n2, d)
    } else {
        let en = (n1 as f64 * n2 as f64) / (n1 + n2) as f64;
        kolmogorov_n_sf(en.round() as u64, d)
    };
    (d, p.clamp(0.0, 1.0))
}

#[expect(
    clippy::indexing_slicing,
    reason = "q has n + 1 entries and j runs 0..=n"
)]
/// Pr(D >= d) for sample sizes `m`, `n` with no ties: the share of the C(m+n, m) lattice paths
/// that touch `|i n - j m| >= h g`, where `h` is `d` rounded to the lattice as scipy rounds it.
/// The recursion keeps, per point, the probability of having touched the boundary, so small
/// p-values keep their relative precision (no `1 - x` at the end).
fn ks_exact(m: u64, n: u64, d: f64) -> f64 {
    let g = gcd(m, n);
    let lcm = (m / g) as f64 * n as f64;
    let h = (d * lcm).round_ties_even() as u64;
    if h == 0 {
        return 1.0;
    }
    let bound = h as u128 * g as u128;
    let outside = |i: u64, j: u64| -> bool {
        let (a, b) = (i as u128 * n as u128, j as u128 * m as u128);
        a.abs_diff(b) >= bound
    };
    // q[j] for the current i: the probability that a uniform path to (i, j) has touched.
    let mut q = vec![0.0f64; n as usize + 1];
    // Along i = 0 every path is the same: once it touches, it has touched.
    let mut touched = false;
    for (j, qj) in q.iter_mut().enumerate() {
        touched |= outside(0, j as u64);
        *qj = if touched { 1.0 } else { 0.0 };
    }
    for i in 1..=m {
        let fi = i as f64;
        q[0] = if outside(i, 0) { 1.0 } else { q[0] };
        for j in 1..=n as usize {
            q[j] = if outside(i, j as u64) {
                1.0
            } else {
                let fj = j as f64;
                (q[j] * fi + q[j - 1] * fj) / (fi + fj)
            };
        }
    }
    q[n as usize]
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Pr(D_n >= d) for the one-sample statistic: exact by Marsaglia, Tsang and Wang's matrix
/// power (J. Stat. Software 8(18), 2003) while the matrix stays small (`n d < 60`); beyond, where
/// the p-value is already tiny or `n` is very large, Kolmogorov's limit with Stephens'
/// finite-`n` correction.
pub fn kolmogorov_n_sf(n: u64, d: f64) -> f64 {
    if n == 0 || d <= 0.0 {
        return 1.0;
    }
    if d >= 1.0 {
        return 0.0;
    }
    let nd = n as f64 * d;
    if nd < 60.0 {
        (1.0 - mtw_cdf(n, d)).clamp(0.0, 1.0)
    } else {
        let rn = (n as f64).sqrt();
        kolmogorov_sf(rn * d + 1.0 / (6.0 * rn) + (rn * d - 1.0) / (4.0 * n as f64))
    }
}

#[expect(
    clippy::indexing_slicing,
    reason = "m x m matrices indexed below m; k - 1 < m"
)]
/// Pr(D_n < d), Marsaglia–Tsang–Wang: the (k, k) entry of H^n times n!/n^n, with H the
/// (2k-1)-square matrix of their paper, k = floor(n d) + 1, scaled by powers of 10^140.
fn mtw_cdf(n: u64, d: f64) -> f64 {
    let k = (n as f64 * d) as usize + 1;
    let m = 2 * k - 1;
    let h = k as f64 - n as f64 * d;
    let mut hm = vec![0.0f64; m * m];
    for i in 0..m {
        for j in 0..m {
            hm[i * m + j] = if i + 1 < j { 0.0 } else { 1.0 };
        }
    }
    for i in 0..m {
        hm[i * m] -= h.powi(i as i32 + 1);
        hm[(m - 1) * m + i] -= h.powi((m - i) as i32);
    }
    if 2.0 * h - 1.0 > 0.0 {
        hm[(m - 1) * m] += (2.0 * h - 1.0).powi(m as i32);
    }
    for i in 0..m {
        for j in 0..m {
            if i + 1 > j {
                for g in 1..=(i + 1 - j) {
                    hm[i * m + j] /= g as f64;
                }
            }
        }
    }
    let (q, mut e) = mat_power(&hm, m, n);
    let mut s = q[(k - 1) * m + k - 1];
    for i in 1..=n {
        s = s * i as f64 / n as f64;
        if s < 1e-140 {
            s *= 1e140;
            e -= 140;
        }
    }
    s * 10f64.powi(e)
}

#[expect(clippy::indexing_slicing, reason = "m x m matrices indexed below m")]
fn mat_mul(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * m];
    for i in 0..m {
        for k in 0..m {
            let aik = a[i * m + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..m {
                c[i * m + j] += aik * b[k * m + j];
            }
        }
    }
    c
}

#[expect(
    clippy::indexing_slicing,
    reason = "an m x m matrix, m >= 1, indexed at its centre"
)]
/// `a^n` with a decimal exponent kept apart (the entries outgrow f64).
fn mat_power(a: &[f64], m: usize, n: u64) -> (Vec<f64>, i32) {
    if n == 1 {
        return (a.to_vec(), 0);
    }
    let (v, ev) = mat_power(a, m, n / 2);
    let b = mat_mul(&v, &v, m);
    let (mut v, mut e) = if n.is_multiple_of(2) {
        (b, 2 * ev)
    } else {
        (mat_mul(a, &b, m), 2 * ev)
    };
    if v[(m / 2) * m + m / 2] > 1e140 {
        for x in &mut v {
            *x *= 1e-140;
        }
        e += 140;
    }
    (v, e)
}

/// Kolmogorov's limiting survival function Q(λ) = 2 Σ (-1)^(k-1) exp(-2 k² λ²).
fn kolmogorov_sf(lambda: f64) -> f64 {
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=100u32 {
        let kf = f64::from(k);
        let term = (-2.0 * kf * kf * lambda * lambda).exp();
        sum += if k % 2 == 1 { term } else { -term };
        if term < 1e-18 {
            break;
        }
    }
    2.0 * sum
}

/// The merged distinct values of two samples with each side's right-continuous CDF there.
fn merged<'a>(a: &'a Numbers, b: &'a Numbers) -> impl Iterator<Item = (f64, f64, f64)> + 'a {
    let (na, nb) = (a.n as f64, b.n as f64);
    let (mut i, mut j) = (0, 0);
    let (mut ca, mut cb) = (0u64, 0u64);
    std::iter::from_fn(move || {
        let x = match (a.points.get(i), b.points.get(j)) {
            (None, None) => return None,
            (Some(p), None) => p.0,
            (None, Some(q)) => q.0,
            (Some(p), Some(q)) => p.0.min(q.0),
        };
        if let Some(p) = a.points.get(i).filter(|p| p.0 == x) {
            ca += p.1;
            i += 1;
        }
        if let Some(q) = b.points.get(j).filter(|q| q.0 == x) {
            cb += q.1;
            j += 1;
        }
        Some((x, ca as f64 / na, cb as f64 / nb))
    })
}

/// scipy's `wasserstein_distance` (the area between the two CDFs) divided by the reference's
/// population standard deviation, floored at 0.001 (Evidently's `wasserstein` test).
pub fn wasserstein_norm(reference: &Numbers, current: &Numbers) -> f64 {
    let mut area = 0.0;
    let mut prev: Option<(f64, f64, f64)> = None;
    for (x, f, g) in merged(reference, current) {
        if let Some((px, pf, pg)) = prev {
            area += (pf - pg).abs() * (x - px);
        }
        prev = Some((x, f, g));
    }
    area / reference.std().max(0.001)
}

/// Chi-squared goodness of fit of the current counts to the reference's shares (Evidently's
/// `chisquare`): the statistic and its p-value on `k - 1` degrees of freedom. A category the
/// reference never saw has an expected count of zero: the statistic is infinite, the p-value 0
/// (where scipy refuses the input, as the two sums differ).
pub fn chi_square(reference: &Categories, current: &Categories) -> (f64, f64) {
    let keys = union(reference, current);
    let k_norm = current.n as f64 / reference.n as f64;
    let mut stat = 0.0;
    for key in &keys {
        let obs = current.count(key) as f64;
        let exp = reference.count(key) as f64 * k_norm;
        stat += if exp == 0.0 {
            if obs == 0.0 { 0.0 } else { f64::INFINITY }
        } else {
            (obs - exp) * (obs - exp) / exp
        };
    }
    let df = keys.len().saturating_sub(1) as f64;
    let p = if stat.is_infinite() {
        0.0
    } else if df == 0.0 {
        // One category on both sides: nothing can differ.
        1.0
    } else {
        statrs::function::gamma::gamma_ur(df / 2.0, stat / 2.0)
    };
    (stat, p)
}

/// The two-proportion z-test Evidently uses for two categories (its `z` test): the p-value
/// `2 (1 - Φ(|z|))`, computed as it does.
pub fn z_test(reference: &Categories, current: &Categories) -> (f64, f64) {
    let keys = union(reference, current);
    let (Some(first), true) = (keys.first().copied(), keys.len() > 1) else {
        return (0.0, 1.0);
    };
    let (n1, n2) = (reference.n as f64, current.n as f64);
    let p1 = (reference.n - reference.count(first)) as f64 / n1;
    let p2 = (current.n - current.count(first)) as f64 / n2;
    let pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
    let z = (p1 - p2) / (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    let cdf = 0.5 * statrs::function::erf::erfc(-z.abs() / std::f64::consts::SQRT_2);
    (z, 2.0 * (1.0 - cdf))
}

/// Both samples' shares in the same bins, as Evidently's `get_binned_data` makes them: for a
/// numeric column whose reference has more than 20 distinct values, numpy's Sturges bins over
/// both samples together; otherwise one bin per distinct value. With `fill_zeroes`, an empty
/// bin gets a small share (PSI's logarithm needs one), exactly as Evidently fills it.
pub fn binned(
    reference: &super::Sample,
    current: &super::Sample,
    fill_zeroes: bool,
) -> (Vec<f64>, Vec<f64>) {
    use super::Sample;
    let (mut r, mut c) = match (reference, current) {
        (Sample::Numeric(a), Sample::Numeric(b)) if a.points.len() > 20 => {
            let edges = sturges_edges(a, b);
            (histogram(a, &edges), histogram(b, &edges))
        }
        _ => {
            let (a, b) = (reference.categories(), current.categories());
            let keys = union(&a, &b);
            let share = |s: &Categories| -> Vec<f64> {
                keys.iter()
                    .map(|k| s.count(k) as f64 / s.n as f64)
                    .collect()
            };
            (share(&a), share(&b))
        }
    };
    if fill_zeroes {
        fill(&mut r);
        fill(&mut c);
    }
    (r, c)
}

fn fill(shares: &mut [f64]) {
    let min = shares
        .iter()
        .copied()
        .filter(|&s| s != 0.0)
        .fold(f64::INFINITY, f64::min);
    let small = if min <= 0.0001 { min / 1e6 } else { 0.0001 };
    for s in shares.iter_mut().filter(|s| **s == 0.0) {
        *s = small;
    }
}

#[expect(
    clippy::indexing_slicing,
    reason = "the reference has more than 20 points (binned's guard); edges has bins + 1 entries"
)]
/// `np.histogram_bin_edges(both, bins="sturges")`: ceil(ptp / (ptp / (log2 n + 1))) equal bins
/// from the minimum to the maximum, edges as `np.linspace` places them.
fn sturges_edges(a: &Numbers, b: &Numbers) -> Vec<f64> {
    let lo = a.points[0]
        .0
        .min(b.points.first().map_or(f64::INFINITY, |p| p.0));
    let hi = a.points[a.points.len() - 1]
        .0
        .max(b.points.last().map_or(f64::NEG_INFINITY, |p| p.0));
    let (first, last) = if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let total = (a.n + b.n) as f64;
    let ptp = hi - lo;
    let width = ptp / (total.log2() + 1.0);
    let bins = if width > 0.0 {
        ((last - first) / width).ceil() as usize
    } else {
        1
    };
    let step = (last - first) / bins as f64;
    let mut edges: Vec<f64> = (0..=bins).map(|i| i as f64 * step + first).collect();
    edges[bins] = last;
    edges
}

#[expect(
    clippy::indexing_slicing,
    reason = "edges has at least two entries; i is clamped below bins"
)]
/// `np.histogram(sample, edges)[0] / len(sample)`: bins closed on the left, the last also on
/// the right.
fn histogram(s: &Numbers, edges: &[f64]) -> Vec<f64> {
    let bins = edges.len() - 1;
    let mut counts = vec![0u64; bins];
    for &(x, w) in &s.points {
        if x < edges[0] || x > edges[bins] {
            continue;
        }
        // The last edge not above x; the right-most bin keeps its right edge.
        let i = edges
            .partition_point(|&e| e <= x)
            .saturating_sub(1)
            .min(bins - 1);
        counts[i] += w;
    }
    counts.iter().map(|&c| c as f64 / s.n as f64).collect()
}

/// scipy's `jensenshannon` (natural logarithm) of the two binned shares, unfilled.
pub fn jensen_shannon(reference: &super::Sample, current: &super::Sample) -> f64 {
    let (p, q) = binned(reference, current, false);
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    let mut js = 0.0;
    for (a, b) in p.iter().zip(&q) {
        let (a, b) = (a / sp, b / sq);
        let m = (a + b) / 2.0;
        js += rel_entr(a, m) + rel_entr(b, m);
    }
    (js / 2.0).max(0.0).sqrt()
}

fn rel_entr(x: f64, y: f64) -> f64 {
    if x == 0.0 { 0.0 } else { x * (x / y).ln() }
}

/// The population stability index over the filled binned shares (Evidently's `psi`).
pub fn psi(reference: &super::Sample, current: &super::Sample) -> f64 {
    let (r, c) = binned(reference, current, true);
    r.iter().zip(&c).map(|(a, b)| (a - b) * (a / b).ln()).sum()
}

/// Both samples' distinct keys, each once, sorted.
fn union<'a>(a: &'a Categories, b: &'a Categories) -> Vec<&'a str> {
    let mut keys: BTreeMap<&str, ()> = BTreeMap::new();
    for k in a.counts.keys().chain(b.counts.keys()) {
        keys.insert(k.as_str(), ());
    }
    keys.into_keys().collect()
}
