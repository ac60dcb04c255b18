//! Attested imports: data that enters a zone other than clinical from outside Airlock.
//!
//! Nothing identified may live outside the clinical (and airlock) zone, and Airlock cannot
//! prove that data it did not de-identify itself is not identified. So such an ingest is an
//! import that a person attests to, on a named basis, and whose every text value is scanned
//! for direct identifiers before anything is stored ([`crate::scan`]). Who may attest (the
//! privacy officer) is a policy decision and stays with the caller: the store has no roles.
//!
//! The attestation is kept in the version's lineage as `transform.params` entries
//! (`attestation.basis`, `attestation.by`, `attestation.reference`) rather than a field of its
//! own, so `Lineage` keeps its shape (and every lineage record written before, its hash);
//! [`crate::Lineage::attestation`] reads it back typed.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use airlock_types::{ActorId, IdError};
use serde::{Deserialize, Serialize};

const PARAM_BASIS: &str = "attestation.basis";
const PARAM_BY: &str = "attestation.by";
const PARAM_REFERENCE: &str = "attestation.reference";

/// Why the attester holds the data to be de-identified (or never identified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AttestationBasis {
    /// A dataset published as de-identified by its source (a public research extract).
    PublicDeidentified,
    /// Received under a data use agreement that says what it holds.
    DataUseAgreement,
    /// An expert determination (45 CFR 164.514(b)(1)) covers it.
    ExpertDetermination,
    /// Generated data with no one-to-one link to real patients (the generator in the
    /// reference).
    Synthetic,
}

impl AttestationBasis {
    /// Every basis, in a stable order.
    pub const ALL: [AttestationBasis; 4] = [
        AttestationBasis::PublicDeidentified,
        AttestationBasis::DataUseAgreement,
        AttestationBasis::ExpertDetermination,
        AttestationBasis::Synthetic,
    ];

    /// The name used on the command line, in lineage and in ledger entries.
    pub fn as_str(self) -> &'static str {
        match self {
            AttestationBasis::PublicDeidentified => "public-deidentified",
            AttestationBasis::DataUseAgreement => "data-use-agreement",
            AttestationBasis::ExpertDetermination => "expert-determination",
            AttestationBasis::Synthetic => "synthetic",
        }
    }
}

impl fmt::Display for AttestationBasis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AttestationBasis {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AttestationBasis::ALL
            .into_iter()
            .find(|b| b.as_str() == s)
            .ok_or(IdError::Invalid {
                kind: "attestation basis",
                rule: "expected public-deidentified, data-use-agreement, expert-determination \
                       or synthetic",
            })
    }
}

/// What the attestation rests on: a data use agreement's number, a determination's report id,
/// a dataset's published name. 1 to 128 characters, no control characters, no surrounding
/// space (it is written into the ledger).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct AttestationReference(String);

impl AttestationReference {
    /// Longest accepted reference, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Validate a reference.
    pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        let invalid = |rule| IdError::Invalid {
            kind: "attestation reference",
            rule,
        };
        if s.trim().is_empty() {
            return Err(invalid("must not be empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(invalid("at most 128 bytes"));
        }
        if s.chars().any(char::is_control) {
            return Err(invalid("no control characters"));
        }
        if s.trim() != s {
            return Err(invalid("no leading or trailing space"));
        }
        Ok(AttestationReference(s))
    }

    /// The reference.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AttestationReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AttestationReference {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AttestationReference::new(s)
    }
}

impl TryFrom<String> for AttestationReference {
    type Error = IdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        AttestationReference::new(s)
    }
}

impl From<AttestationReference> for String {
    fn from(r: AttestationReference) -> String {
        r.0
    }
}

/// Who vouches that an import outside the clinical zone holds no identified data, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// The basis of the classification.
    pub basis: AttestationBasis,
    /// Who attests (normally a privacy officer; the caller checks the role).
    pub attested_by: ActorId,
    /// The agreement, determination or publication it rests on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<AttestationReference>,
}

impl Attestation {
    /// Write into a lineage record's transform parameters.
    pub(crate) fn to_params(&self, params: &mut BTreeMap<String, String>) {
        params.insert(PARAM_BASIS.into(), self.basis.as_str().into());
        params.insert(PARAM_BY.into(), self.attested_by.to_string());
        if let Some(r) = &self.reference {
            params.insert(PARAM_REFERENCE.into(), r.to_string());
        }
    }

    /// Read back from a lineage record's transform parameters (`None` when absent or not
    /// valid: an attestation is only ever written whole by [`Attestation::to_params`]).
    pub(crate) fn from_params(params: &BTreeMap<String, String>) -> Option<Attestation> {
        let basis = params.get(PARAM_BASIS)?.parse().ok()?;
        let attested_by = ActorId::new(params.get(PARAM_BY)?.clone()).ok()?;
        let reference = match params.get(PARAM_REFERENCE) {
            Some(r) => Some(AttestationReference::new(r.clone()).ok()?),
            None => None,
        };
        Some(Attestation {
            basis,
            attested_by,
            reference,
        })
    }

    /// Whether `params` carries any attestation key (callers of `write_version` may not set
    /// them: only an attested import does).
    pub(crate) fn in_params(params: &BTreeMap<String, String>) -> bool {
        params.keys().any(|k| k.starts_with("attestation."))
    }
}

impl fmt::Display for Attestation {
    /// `attested by po (data-use-agreement, reference DUA-17)`, for ledger reasons.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attested by {} ({}", self.attested_by, self.basis)?;
        if let Some(r) = &self.reference {
            write!(f, ", reference `{r}`")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basis_names_round_trip() {
        for b in AttestationBasis::ALL {
            assert_eq!(b.as_str().parse::<AttestationBasis>().ok(), Some(b));
            let json = serde_json::to_string(&b).unwrap();
            assert_eq!(json, format!("\"{}\"", b.as_str()));
        }
        assert!("safe-harbor".parse::<AttestationBasis>().is_err());
    }

    #[test]
    fn references_are_short_plain_text() {
        assert!(AttestationReference::new("DUA-2024-017").is_ok());
        for bad in ["", "  ", " x", "x\n", "a\u{7}b"] {
            assert!(AttestationReference::new(bad).is_err(), "{bad:?}");
        }
        assert!(AttestationReference::new("x".repeat(129)).is_err());
        assert!(AttestationReference::new("x".repeat(128)).is_ok());
    }

    #[test]
    fn params_round_trip() {
        let by = ActorId::new("privacy-officer").unwrap();
        for reference in [None, AttestationReference::new("DUA-17").ok()] {
            let a = Attestation {
                basis: AttestationBasis::DataUseAgreement,
                attested_by: by.clone(),
                reference,
            };
            let mut params = BTreeMap::new();
            assert!(!Attestation::in_params(&params));
            a.to_params(&mut params);
            assert!(Attestation::in_params(&params));
            assert_eq!(Attestation::from_params(&params), Some(a));
        }
    }
}
