//! Key material and the keyed primitives built on it: HMAC pseudonyms and per-patient date
//! offsets.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::DeidError;

type HmacSha256 = Hmac<Sha256>;

/// The secret key of a de-identification run. Zeroized on drop; `Debug` prints only the key id.
pub struct DeidKeys {
    key: Zeroizing<Vec<u8>>,
    key_id: String,
}

impl DeidKeys {
    /// Minimum key length accepted by [`DeidKeys::new`].
    pub const MIN_LEN: usize = 16;

    /// Wraps key bytes (at least [`DeidKeys::MIN_LEN`]; 32 random bytes recommended).
    pub fn new(key: Vec<u8>) -> Result<DeidKeys, DeidError> {
        let key = Zeroizing::new(key);
        if key.len() < Self::MIN_LEN {
            return Err(DeidError::Key("key must be at least 16 bytes"));
        }
        Ok(Self::build(key))
    }

    /// Accepts a key of any non-zero length. Only for compatibility tests with published
    /// fixtures (the Microsoft anonymizer's golden files use the key `123`).
    pub fn danger_short_key(key: Vec<u8>) -> Result<DeidKeys, DeidError> {
        let key = Zeroizing::new(key);
        if key.is_empty() {
            return Err(DeidError::Key("key is empty"));
        }
        Ok(Self::build(key))
    }

    /// A fresh random 32-byte key.
    pub fn generate() -> DeidKeys {
        use rand::RngCore;
        let mut k = Zeroizing::new(vec![0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut k);
        Self::build(k)
    }

    fn build(key: Zeroizing<Vec<u8>>) -> DeidKeys {
        let digest = Sha256::digest([b"airlock-deid key id\0".as_slice(), key.as_slice()].concat());
        let key_id = hex::encode(digest.get(..8).unwrap_or_default());
        DeidKeys { key, key_id }
    }

    /// A public identifier of the key (a hash prefix) for lineage records.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The key bytes, for the text engine's surrogate context. Do not log.
    pub fn expose_secret(&self) -> &[u8] {
        &self.key
    }

    /// HMAC-SHA256 over `parts`, each length-prefixed (no ambiguity between parts).
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = self.new_mac();
        for p in parts {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// Plain HMAC-SHA256 of `value` (no domain separation): the Microsoft anonymizer's
    /// `cryptoHash`, lowercase hex.
    pub fn crypto_hash_hex(&self, value: &str) -> String {
        let mut m = self.new_mac();
        m.update(value.as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    /// The keyed pseudonym of `value` in `namespace`: 32 lowercase hex characters.
    pub fn pseudonym(&self, namespace: &str, value: &str) -> String {
        let d = self.mac(&[b"pseudonym", namespace.as_bytes(), value.as_bytes()]);
        hex::encode(d.get(..16).unwrap_or_default())
    }

    /// The per-patient date offset in days, in `[-range, range]` and never 0 (when range > 0):
    /// `HMAC(key, "date-shift" || patient_key)` reduced modulo `2 * range`.
    pub fn date_offset(&self, patient_key: &str, range: u32) -> i64 {
        if range == 0 {
            return 0;
        }
        let d = self.mac(&[b"date-shift", patient_key.as_bytes()]);
        let mut b = [0u8; 8];
        b.copy_from_slice(d.get(..8).unwrap_or(&[0; 8]));
        let r = u64::from(range);
        let v = (u64::from_be_bytes(b) % (2 * r)) as i64; // 0..2r-1
        // Map to -r..=-1 and 1..=r.
        if v < r as i64 {
            v - r as i64
        } else {
            v - r as i64 + 1
        }
    }

    fn new_mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; this cannot fail.
        match HmacSha256::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => HmacSha256::new(&Default::default()),
        }
    }
}

impl fmt::Debug for DeidKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeidKeys")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The Microsoft anonymizer's date-shift offset (`[-50, 50]` days) for a key and a prefix (the
/// resource id under its default `resource` scope). Used only by the `microsoft` date-shift
/// variant, for compatibility with its golden files.
pub fn microsoft_date_offset(key: &str, prefix: &str) -> i64 {
    const SEED: i64 = 131;
    const RANGE: i64 = 50;
    let mut offset: i64 = 0;
    for b in prefix.bytes().chain(key.bytes()) {
        offset = (offset * SEED + i64::from(b)) % (2 * RANGE + 1);
    }
    offset - RANGE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_key_and_offsets_in_range() {
        let k = DeidKeys::new(vec![7u8; 32]).unwrap();
        let dbg = format!("{k:?}");
        assert!(dbg.contains("key_id"));
        assert!(!dbg.contains("7, 7"));
        for p in ["a", "b", "c", "12345"] {
            let o = k.date_offset(p, 30);
            assert!((-30..=30).contains(&o) && o != 0);
        }
        assert!(DeidKeys::new(vec![1; 3]).is_err());
        assert_eq!(k.pseudonym("mrn", "1").len(), 32);
        assert_ne!(k.pseudonym("mrn", "1"), k.pseudonym("id", "1"));
    }
}
