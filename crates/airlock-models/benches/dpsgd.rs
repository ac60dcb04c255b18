//! DP-SGD against SGD of the same model, batch rate and epochs (the same loop without clipping
//! and noise): `cargo bench -p airlock-models --bench dpsgd`. Opacus reports DP-SGD 2.6-8x
//! slower than non-private training; the aim here is under 2x. Data are synthetic: 100,000 rows
//! of 40 standardised features.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "a benchmark binary that prints its results"
)]

use std::time::Instant;

use airlock_models::DpSgd;
use airlock_models::dpsgd::fit_logistic;

fn main() {
    let (n, d) = (100_000, 40);
    let mut state = 0x9E37_79B9_u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut x = Vec::with_capacity(n * d);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let mut z = -1.0;
        for j in 0..d {
            let v = next() * 2.0 - 1.0;
            z += if j % 4 == 0 { 0.8 * v } else { 0.0 };
            x.push(v);
        }
        y.push(next() < 1.0 / (1.0 + (-z).exp()));
    }
    println!("DP-SGD vs SGD, logistic regression, {n} rows x {d} features");
    for rate in [0.001, 0.01] {
        let dp = DpSgd {
            delta: 1e-6,
            sampling_rate: rate,
            epochs: 2,
            ..DpSgd::new(2.0)
        };
        let mut plain = Vec::new();
        let mut private = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            std::hint::black_box(fit_logistic(&x, d, &y, 1.0, &dp, false).unwrap());
            plain.push(t.elapsed().as_secs_f64() / 2.0);
            let t = Instant::now();
            let (_, filled) = fit_logistic(&x, d, &y, 1.0, &dp, true).unwrap();
            private.push(t.elapsed().as_secs_f64() / 2.0);
            std::hint::black_box(filled);
        }
        plain.sort_by(f64::total_cmp);
        private.sort_by(f64::total_cmp);
        let (p, q) = (plain[1], private[1]);
        println!(
            "  batch rate {rate} (expected batch {:.0}, {} steps an epoch): SGD {:.1} ms/epoch, DP-SGD {:.1} ms/epoch, ratio {:.2} (median of 3)",
            rate * n as f64,
            (1.0 / rate) as u64,
            p * 1e3,
            q * 1e3,
            q / p
        );
    }
}
