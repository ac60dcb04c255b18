//! Typed identifiers. A signature never takes a bare `String` where one of these fits.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A validation failure for an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// A dataset name outside `[a-z0-9][a-z0-9._-]{0,63}`.
    #[error(
        "invalid dataset name: use 1 to 64 characters from a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit"
    )]
    DatasetName,
    /// Not 64 lowercase hexadecimal digits.
    #[error("invalid content hash: expected 64 lowercase hexadecimal digits")]
    ContentHash,
    /// An actor id outside the allowed characters.
    #[error(
        "invalid actor id: use 1 to 128 characters from a-z, A-Z, 0-9, `.`, `_`, `-`, `@`, `:`"
    )]
    Actor,
    /// A dataset version id that is not a positive integer.
    #[error("invalid dataset version: expected a positive integer")]
    DatasetVersion,
    /// A value of `kind` that breaks `rule` (the value itself is never quoted).
    #[error("invalid {kind}: {rule}")]
    Invalid {
        /// What kind of value.
        kind: &'static str,
        /// The rule it breaks.
        rule: &'static str,
    },
}

/// The name of a dataset: short, lowercase, safe in paths and URLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatasetName(String);

impl DatasetName {
    /// Validate a dataset name.
    pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || (i > 0 && matches!(b, b'.' | b'_' | b'-'))
            });
        if ok {
            Ok(DatasetName(s))
        } else {
            Err(IdError::DatasetName)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What lineage shows in place of a parent dataset outside the reader's zones. It is never
    /// a valid name (it has parentheses and a space), so it cannot stand for a real dataset and
    /// cannot be looked up; it does not parse back either. The gates that read identified data
    /// read it in the clinical (or airlock) zone, hence the two wordings.
    pub fn withheld(gate: crate::Gate) -> DatasetName {
        use crate::Gate;
        let [clinical, elsewhere] = DatasetName::WITHHELD;
        let text = match gate {
            Gate::Deidentify | Gate::DpRelease | Gate::Synthesize => clinical,
            Gate::Ingest | Gate::PromoteModel | Gate::Derive => elsewhere,
        };
        DatasetName(text.to_owned())
    }

    /// The texts [`DatasetName::withheld`] shows.
    pub const WITHHELD: [&'static str; 2] = ["(clinical source)", "(source outside your zones)"];

    /// Whether this is a [`DatasetName::withheld`] placeholder.
    pub fn is_withheld(&self) -> bool {
        self.0.starts_with('(')
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DatasetName {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatasetName::new(s)
    }
}

impl TryFrom<String> for DatasetName {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DatasetName::new(s)
    }
}

impl From<DatasetName> for String {
    fn from(d: DatasetName) -> String {
        d.0
    }
}

/// A dataset version number: 1, 2, 3 ... within one dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DatasetVersionId(u32);

impl DatasetVersionId {
    /// The first version of a dataset.
    pub const FIRST: DatasetVersionId = DatasetVersionId(1);

    /// Validate a version number (must be at least 1).
    pub fn new(n: u32) -> Result<Self, IdError> {
        if n == 0 {
            Err(IdError::DatasetVersion)
        } else {
            Ok(DatasetVersionId(n))
        }
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The next version.
    pub fn next(self) -> Self {
        DatasetVersionId(self.0.saturating_add(1))
    }
}

impl fmt::Display for DatasetVersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for DatasetVersionId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n: u32 = s.parse().map_err(|_| IdError::DatasetVersion)?;
        DatasetVersionId::new(n)
    }
}

/// A SHA-256 digest, shown as 64 lowercase hex digits. Names objects, versions, configs, models.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// Wrap raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ContentHash(bytes)
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex digits, for display.
    pub fn short(&self) -> String {
        let mut h = self.to_hex();
        h.truncate(12);
        h
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.to_hex())
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for ContentHash {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(IdError::ContentHash);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| IdError::ContentHash)?;
        Ok(ContentHash(out))
    }
}

impl TryFrom<String> for ContentHash {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ContentHash> for String {
    fn from(h: ContentHash) -> String {
        h.to_hex()
    }
}

/// Who did something: a user name, a service identity or a system component.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActorId(String);

impl ActorId {
    /// Validate an actor id.
    pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b':')
            });
        if ok {
            Ok(ActorId(s))
        } else {
            Err(IdError::Actor)
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ActorId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActorId::new(s)
    }
}

impl TryFrom<String> for ActorId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ActorId::new(s)
    }
}

impl From<ActorId> for String {
    fn from(a: ActorId) -> String {
        a.0
    }
}

/// A request id that ties log lines, errors and ledger entries together (32 hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestId(String);

impl RequestId {
    /// Build from 16 random bytes supplied by the caller (this crate has no randomness).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        RequestId(hex::encode(bytes))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dataset_names() {
        assert!(DatasetName::new("synthea-2024.v1").is_ok());
        assert!(DatasetName::new("").is_err());
        assert!(DatasetName::new("-x").is_err());
        assert!(DatasetName::new("../etc").is_err());
        assert!(DatasetName::new("Upper").is_err());
    }

    #[test]
    fn withheld_names_are_never_valid_names() {
        for g in [
            crate::Gate::Ingest,
            crate::Gate::Deidentify,
            crate::Gate::DpRelease,
            crate::Gate::Synthesize,
            crate::Gate::PromoteModel,
        ] {
            let w = DatasetName::withheld(g);
            assert!(w.is_withheld());
            assert!(DatasetName::new(w.as_str()).is_err());
        }
        assert!(!DatasetName::new("ehr").unwrap().is_withheld());
    }

    proptest! {
        #[test]
        fn content_hash_hex_round_trip(bytes in any::<[u8; 32]>()) {
            let h = ContentHash::from_bytes(bytes);
            prop_assert_eq!(h.to_hex().parse::<ContentHash>().unwrap(), h);
        }
    }
}
