//! Small helpers over the seeded ChaCha20 generator.
//!
//! Every patient draws from its own ChaCha20 stream (`seed`, stream `index + 1`), so patient
//! `i` is the same whatever the cohort size, and nothing depends on iteration order elsewhere.
//! Stream 0 and streams at and above [`FACILITY_STREAM_BASE`] are reserved for cohort-wide values.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// First stream used for facility ids.
pub(crate) const FACILITY_STREAM_BASE: u64 = 1 << 48;

/// The generator for `stream` under `seed`.
pub(crate) fn stream_rng(seed: u64, stream: u64) -> ChaCha20Rng {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// An RFC 4122 version 4 UUID drawn from `rng`, lower-case hyphenated.
pub(crate) fn uuid_v4(rng: &mut ChaCha20Rng) -> String {
    let mut b: [u8; 16] = rng.r#gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(hex_digit(byte >> 4));
        s.push(hex_digit(byte & 0x0f));
    }
    s
}

fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}

/// A uniformly chosen element, or `fallback` for an empty slice.
pub(crate) fn pick<T: Copy>(rng: &mut ChaCha20Rng, items: &[T], fallback: T) -> T {
    if items.is_empty() {
        return fallback;
    }
    items
        .get(rng.gen_range(0..items.len()))
        .copied()
        .unwrap_or(fallback)
}

/// A uniformly chosen string, `""` for an empty slice.
pub(crate) fn pick_str(rng: &mut ChaCha20Rng, items: &[&'static str]) -> &'static str {
    pick(rng, items, "")
}

/// An element chosen with probability proportional to `weight`; `None` when all weights are 0.
pub(crate) fn weighted<T: Copy>(
    rng: &mut ChaCha20Rng,
    items: &[T],
    weight: impl Fn(&T) -> u32,
) -> Option<T> {
    let total: u64 = items.iter().map(|t| u64::from(weight(t))).sum();
    if total == 0 {
        return None;
    }
    let mut x = rng.gen_range(0..total);
    for t in items {
        let w = u64::from(weight(t));
        if x < w {
            return Some(*t);
        }
        x -= w;
    }
    None
}

/// A normal draw (Box–Muller).
pub(crate) fn normal(rng: &mut ChaCha20Rng, mean: f64, sd: f64) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.r#gen();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    mean + sd * z
}

/// `n` random decimal digits.
pub(crate) fn digits(rng: &mut ChaCha20Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// True with probability `p`.
pub(crate) fn chance(rng: &mut ChaCha20Rng, p: f64) -> bool {
    rng.gen_bool(p.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_v4_shaped() {
        let mut rng = stream_rng(1, 0);
        for _ in 0..100 {
            let u = uuid_v4(&mut rng);
            assert_eq!(u.len(), 36);
            let parts: Vec<&str> = u.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            assert!(parts[2].starts_with('4'));
            assert!(matches!(
                parts[3].chars().next(),
                Some('8' | '9' | 'a' | 'b')
            ));
        }
    }

    #[test]
    fn streams_differ() {
        let a = uuid_v4(&mut stream_rng(7, 1));
        let b = uuid_v4(&mut stream_rng(7, 2));
        let c = uuid_v4(&mut stream_rng(7, 1));
        assert_ne!(a, b);
        assert_eq!(a, c);
    }
}
