//! Self-signed TLS material for local deployments.

use std::fmt;

use crate::{CryptoError, Secret};

/// A certificate and its private key, both PEM.
pub struct TlsIdentity {
    /// The certificate (public).
    pub cert_pem: String,
    /// The PKCS#8 private key (secret).
    pub key_pem: Secret,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert_pem_len", &self.cert_pem.len())
            .finish_non_exhaustive()
    }
}

/// How long a certificate made here is valid: a year, renewed with `airlock keys renew-tls`
/// (a certificate valid for millennia outlives every key-management policy).
pub const TLS_VALID_DAYS: i64 = 365;

/// A self-signed certificate for the given DNS names (e.g. `localhost`), valid from a day ago
/// (clocks differ) for [`TLS_VALID_DAYS`].
pub fn generate_tls_identity(names: &[&str]) -> Result<TlsIdentity, CryptoError> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).map_err(|_| CryptoError::Tls)?;
    let today = days_since_epoch();
    let (y, m, d) = ymd_of(today - 1)?;
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = ymd_of(today + TLS_VALID_DAYS)?;
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let key = rcgen::KeyPair::generate().map_err(|_| CryptoError::Tls)?;
    let cert = params.self_signed(&key).map_err(|_| CryptoError::Tls)?;
    Ok(TlsIdentity {
        cert_pem: cert.pem(),
        key_pem: Secret::new(key.serialize_pem().into_bytes()),
    })
}

fn days_since_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs() / 86_400).unwrap_or(0))
}

/// The calendar date `days` after 1970-01-01 (Howard Hinnant's civil-from-days): year, month
/// (1-12), day (1-31), as rcgen's `date_time_ymd` takes them.
fn ymd_of(days: i64) -> Result<(i32, u8, u8), CryptoError> {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (Ok(year), Ok(month), Ok(day)) =
        (i32::try_from(year), u8::try_from(month), u8::try_from(day))
    else {
        return Err(CryptoError::Tls);
    };
    Ok((year, month, day))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The validity's two times, as (year, month, day), read from the certificate's DER: the
    /// first UTCTime (tag 0x17, "YYMMDDHHMMSSZ") or GeneralizedTime (0x18, "YYYYMMDDHHMMSSZ")
    /// values are notBefore and notAfter.
    fn validity(pem: &str) -> Vec<(i32, u32, u32)> {
        use base64::Engine as _;
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default();
        let mut out = Vec::new();
        let mut i = 0;
        while i + 2 < der.len() && out.len() < 2 {
            let (tag, len) = (der[i], usize::from(der[i + 1]));
            let body = der.get(i + 2..i + 2 + len).unwrap_or_default();
            let text = std::str::from_utf8(body).unwrap_or("");
            let num = |a: usize, b: usize| text.get(a..b).and_then(|t| t.parse::<i32>().ok());
            let parsed = match (tag, len) {
                (0x17, 13) => num(0, 2).map(|y| (if y < 50 { 2000 + y } else { 1900 + y }, 2)),
                (0x18, 15) => num(0, 4).map(|y| (y, 4)),
                _ => None,
            };
            if let Some((year, at)) = parsed
                && let (Some(m), Some(d)) = (num(at, at + 2), num(at + 2, at + 4))
            {
                out.push((year, m as u32, d as u32));
                i += 2 + len;
                continue;
            }
            i += 1;
        }
        out
    }

    /// Issue 28, finding 16: the certificate was valid from 1975 to 4096.
    #[test]
    fn finding_16_the_certificate_is_valid_for_a_year() {
        let id = generate_tls_identity(&["localhost"]).unwrap();
        let v = validity(&id.cert_pem);
        assert_eq!(v.len(), 2, "{v:?}");
        let (from, to) = (v[0], v[1]);
        let days =
            |(y, m, d): (i32, u32, u32)| i64::from(y) * 372 + i64::from(m) * 31 + i64::from(d);
        let span = days(to) - days(from);
        // (A rough day count: 372 a year, 31 a month; a year and a day is 373 to 375.)
        assert!((360..=380).contains(&span), "valid {from:?} to {to:?}");
        let today = ymd_of(days_since_epoch()).unwrap();
        assert!(from.0 >= today.0 - 1, "valid from {from:?}");
    }

    #[test]
    fn civil_dates_match_known_days() {
        for (days, ymd) in [
            (0, (1970, 1, 1)),
            (11_016, (2000, 2, 29)),
            (20_794, (2026, 12, 7)),
        ] {
            assert_eq!(ymd_of(days).ok(), Some(ymd));
        }
    }
}
