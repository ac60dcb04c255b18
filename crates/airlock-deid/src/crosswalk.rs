//! The crosswalk: random surrogate identifiers and the real values they replace.
//!
//! Under Safe Harbor, 45 CFR 164.514(c) allows a re-identification code only if it is not
//! derived from information about the individual: a keyed hash of an MRN *is* derived from it.
//! So the `safe-harbor` profile draws a random surrogate the first time it sees a value and
//! records the pair here. The engine reads and extends the crosswalk; the caller persists it
//! ([`Crosswalk::to_bytes`]), encrypted, in the clinical zone. It is PHI: its `Debug` prints
//! counts only.

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::DeidError;
use crate::hash::FastMap;

/// Real value → random surrogate, per namespace (`mrn`, `id`, `identifier`, `facility`...).
#[derive(Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crosswalk {
    version: u32,
    namespaces: FastMap<String, FastMap<String, String>>,
    #[serde(skip)]
    added: u64,
}

impl Crosswalk {
    /// An empty crosswalk.
    pub fn new() -> Crosswalk {
        Crosswalk {
            version: 1,
            ..Crosswalk::default()
        }
    }

    /// Reads a crosswalk written by [`Crosswalk::to_bytes`] (after the caller decrypted it).
    pub fn from_bytes(bytes: &[u8]) -> Result<Crosswalk, DeidError> {
        let c: Crosswalk = serde_json::from_slice(bytes)
            .map_err(|_| DeidError::Crosswalk("not a valid crosswalk document"))?;
        if c.version != 1 {
            return Err(DeidError::Crosswalk("unsupported crosswalk version"));
        }
        Ok(c)
    }

    /// Serialises the crosswalk (JSON) for the caller to encrypt and store.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The surrogate of `real` in `namespace`, drawing a new random one (128 bits, hex) the
    /// first time. Surrogates are unique within a namespace.
    pub fn surrogate(&mut self, namespace: &str, real: &str) -> String {
        if let Some(s) = self.namespaces.get(namespace).and_then(|m| m.get(real)) {
            return s.clone();
        }
        let mut b = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut b);
        let s = hex::encode(b);
        self.added += 1;
        self.namespaces
            .entry(namespace.to_owned())
            .or_default()
            .insert(real.to_owned(), s.clone());
        s
    }

    /// The real value behind a surrogate (re-identification, clinical zone only).
    pub fn reverse(&self, namespace: &str, surrogate: &str) -> Option<&str> {
        self.namespaces
            .get(namespace)?
            .iter()
            .find(|(_, s)| s.as_str() == surrogate)
            .map(|(r, _)| r.as_str())
    }

    /// Number of pairs held.
    pub fn len(&self) -> usize {
        self.namespaces.values().map(FastMap::len).sum()
    }

    /// Whether no pair is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pairs added since this value was created or read.
    pub fn added(&self) -> u64 {
        self.added
    }
}

impl fmt::Debug for Crosswalk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crosswalk")
            .field("pairs", &self.len())
            .field("added", &self.added)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_round_trips() {
        let mut c = Crosswalk::new();
        let a = c.surrogate("mrn", "123");
        assert_eq!(c.surrogate("mrn", "123"), a);
        assert_ne!(c.surrogate("mrn", "124"), a);
        assert_ne!(c.surrogate("id", "123"), a);
        let bytes = c.to_bytes();
        let mut d = Crosswalk::from_bytes(&bytes).unwrap();
        assert_eq!(d.surrogate("mrn", "123"), a);
        assert_eq!(d.reverse("mrn", &a), Some("123"));
        assert!(!format!("{d:?}").contains("123\""));
        assert!(Crosswalk::from_bytes(b"{}").is_err());
    }
}
