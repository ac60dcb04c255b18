//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP), the second factor every
//! human must present. HMAC-SHA1, 30-second steps and 6 digits: what every authenticator app
//! reads from an `otpauth://` URI. A code is accepted one step either side of now, and never
//! twice: the caller keeps the last step used and passes it back.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Bytes of a new secret (160 bits, as RFC 4226 recommends).
pub const SECRET_LEN: usize = 20;

/// The HOTP value of `secret` at `counter`, with `digits` digits (RFC 4226 section 5.3).
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let Ok(mut mac) = <Hmac<Sha1> as Mac>::new_from_slice(secret) else {
        // HMAC takes keys of any length; this arm is unreachable.
        return 0;
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h.get(19).copied().unwrap_or(0) & 0x0f);
    let word = h
        .get(offset..offset + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(|a| u32::from_be_bytes(a) & 0x7fff_ffff)
        .unwrap_or(0);
    word % 10u32.pow(digits)
}

/// The step that contains `unix_seconds`.
pub fn step_at(unix_seconds: u64) -> u64 {
    unix_seconds / STEP_SECONDS
}

/// The code for `secret` at `unix_seconds`, zero-padded.
pub fn code_at(secret: &[u8], unix_seconds: u64) -> String {
    format!(
        "{:0width$}",
        hotp(secret, step_at(unix_seconds), DIGITS),
        width = DIGITS as usize
    )
}

/// Check `code` at `unix_seconds`, one step either side, refusing any step at or before
/// `last_used_step` (replay). Returns the matching step, which the caller must store.
pub fn verify(secret: &[u8], code: &str, unix_seconds: u64, last_used_step: u64) -> Option<u64> {
    match check(secret, code, unix_seconds, last_used_step) {
        Check::Valid(step) => Some(step),
        Check::Reused | Check::Wrong => None,
    }
}

/// What a code is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Valid for this step (to be stored as the last one used).
    Valid(u64),
    /// Valid once, already used: a code works once.
    Reused,
    /// Not a code of this secret now.
    Wrong,
}

/// [`verify`], telling a code used already (a replay, or the person typing the same code
/// twice) from a wrong one.
pub fn check(secret: &[u8], code: &str, unix_seconds: u64, last_used_step: u64) -> Check {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Check::Wrong;
    }
    let now = step_at(unix_seconds);
    let mut found = Check::Wrong;
    // Check every candidate (no early exit) so timing does not say which step matched.
    for step in [now.saturating_sub(1), now, now + 1] {
        let expected = format!(
            "{:0width$}",
            hotp(secret, step, DIGITS),
            width = DIGITS as usize
        );
        let ok: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
        if ok && !matches!(found, Check::Valid(_)) {
            found = if step > last_used_step {
                Check::Valid(step)
            } else {
                Check::Reused
            };
        }
    }
    found
}

/// RFC 4648 base32 without padding (what `otpauth://` URIs carry).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            let idx = ((buffer >> bits) & 31) as usize;
            out.push(char::from(ALPHABET.get(idx).copied().unwrap_or(b'A')));
        }
    }
    if bits > 0 {
        let idx = ((buffer << (5 - bits)) & 31) as usize;
        out.push(char::from(ALPHABET.get(idx).copied().unwrap_or(b'A')));
    }
    out
}

/// Decode RFC 4648 base32 (case-insensitive, padding and spaces ignored).
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            b'=' | b' ' => continue,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

fn uri_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The enrolment URI an authenticator app scans (Key Uri Format).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        uri_escape(issuer),
        uri_escape(account),
        base32(secret),
        uri_escape(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc4226_appendix_d_vectors() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.into_iter().enumerate() {
            assert_eq!(
                hotp(RFC_SECRET, counter as u64, 6),
                want,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        for (t, want) in [
            (59u64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(hotp(RFC_SECRET, step_at(t), 8), want, "t={t}");
        }
    }

    #[test]
    fn verify_window_and_replay() {
        let t = 1_700_000_000;
        let code = code_at(RFC_SECRET, t);
        let step = verify(RFC_SECRET, &code, t, 0).unwrap();
        assert_eq!(step, step_at(t));
        // The same code cannot be used twice.
        assert_eq!(verify(RFC_SECRET, &code, t, step), None);
        assert_eq!(check(RFC_SECRET, &code, t, step), Check::Reused);
        assert_eq!(check(RFC_SECRET, "000000", t, step), Check::Wrong);
        // One step late is accepted, two are not.
        assert!(verify(RFC_SECRET, &code, t + 30, 0).is_some());
        assert!(verify(RFC_SECRET, &code, t + 90, 0).is_none());
        assert!(verify(RFC_SECRET, "12345", t, 0).is_none());
        assert!(verify(RFC_SECRET, "abcdef", t, 0).is_none());
    }

    #[test]
    fn base32_round_trip_and_rfc4648_vectors() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32_decode("MZXW6YTBOI").unwrap(), b"foobar");
        for n in 0..40u8 {
            let v: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(base32_decode(&base32(&v)).unwrap(), v);
        }
    }

    #[test]
    fn uri_names_issuer_and_account() {
        let u = otpauth_uri("Airlock demo", "alice", RFC_SECRET);
        assert!(u.starts_with("otpauth://totp/Airlock%20demo:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Airlock%20demo"), "{u}");
    }
}
