//! The four zones, the data classifications and the gates between zones.
//!
//! The invariant lives here and only here:
//!
//! * data classified [`Classification::Phi`] or [`Classification::LimitedDataSet`] can never be
//!   stored in, read from or copied to [`Zone::Development`] or [`Zone::Staging`];
//! * data only changes zone through a named [`Gate`], and each gate has a fixed set of
//!   source zones, destination zones and output classifications.
//!
//! Callers never re-implement these checks; they call [`check_residence`], [`check_read`] and
//! [`check_transfer`], which return a typed refusal that names the rule that was broken.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where data, models and identities live.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Zone {
    /// Identified PHI and production serving.
    Clinical,
    /// De-identification: identified data comes in, de-identified data goes out.
    Airlock,
    /// Model development on de-identified, synthetic or DP data only.
    Development,
    /// Validation before production.
    Staging,
}

impl Zone {
    /// Every zone, in a stable order.
    pub const ALL: [Zone; 4] = [
        Zone::Clinical,
        Zone::Airlock,
        Zone::Development,
        Zone::Staging,
    ];

    /// The zone's name as written in configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Zone::Clinical => "clinical",
            Zone::Airlock => "airlock",
            Zone::Development => "development",
            Zone::Staging => "staging",
        }
    }

    /// Whether identified data (PHI or a limited data set) may exist in this zone.
    pub fn admits_identified(self) -> bool {
        matches!(self, Zone::Clinical | Zone::Airlock)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Zone {
    type Err = ZoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Zone::ALL
            .into_iter()
            .find(|z| z.as_str() == s)
            .ok_or_else(|| ZoneError::UnknownZone { name: truncate(s) })
    }
}

/// What a piece of data is, from a privacy point of view.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Classification {
    /// Identified protected health information.
    Phi,
    /// A limited data set (45 CFR 164.514(e)): still PHI, kept under a data use agreement.
    LimitedDataSet,
    /// De-identified under Safe Harbor or Expert Determination.
    Deidentified,
    /// Generated data with no one-to-one link to real patients.
    Synthetic,
    /// Aggregates released under differential privacy.
    DpAggregate,
}

impl Classification {
    /// Every classification, in a stable order.
    pub const ALL: [Classification; 5] = [
        Classification::Phi,
        Classification::LimitedDataSet,
        Classification::Deidentified,
        Classification::Synthetic,
        Classification::DpAggregate,
    ];

    /// The classification's name as written in configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Phi => "phi",
            Classification::LimitedDataSet => "limited-data-set",
            Classification::Deidentified => "deidentified",
            Classification::Synthetic => "synthetic",
            Classification::DpAggregate => "dp-aggregate",
        }
    }

    /// Whether this classification is identified data (PHI in HIPAA's sense).
    pub fn is_identified(self) -> bool {
        matches!(self, Classification::Phi | Classification::LimitedDataSet)
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Classification {
    type Err = ZoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Classification::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| ZoneError::UnknownClassification { name: truncate(s) })
    }
}

/// The only ways data may cross from one zone to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Gate {
    /// Bring source-system data into the clinical zone (the entry point, not a crossing).
    Ingest,
    /// De-identification: clinical → airlock → development (or a limited data set kept in the
    /// clinical zone).
    Deidentify,
    /// A differentially private release of aggregates.
    DpRelease,
    /// Synthetic data generated from identified data.
    Synthesize,
    /// Promote a model (and its validation data) from development to staging or clinical.
    PromoteModel,
    /// A table derived from a version inside its own zone (a SQL-on-FHIR view): recorded in
    /// lineage like a gate, never a crossing; the classification is kept.
    Derive,
}

impl Gate {
    /// The gate's name as written in lineage records and ledger entries.
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Ingest => "ingest",
            Gate::Deidentify => "deidentify",
            Gate::DpRelease => "dp-release",
            Gate::Synthesize => "synthesize",
            Gate::PromoteModel => "promote-model",
            Gate::Derive => "derive",
        }
    }

    /// The classifications a gate may produce.
    fn may_produce(self, out: Classification) -> bool {
        use Classification as C;
        match self {
            Gate::Ingest => true,
            Gate::Deidentify => matches!(out, C::Deidentified | C::LimitedDataSet),
            Gate::DpRelease => out == C::DpAggregate,
            Gate::Synthesize => out == C::Synthetic,
            Gate::PromoteModel => !out.is_identified(),
            // Checked against the source in `check_transfer`: the same classification.
            Gate::Derive => true,
        }
    }

    /// The zones a gate may read from.
    fn may_read_from(self, zone: Zone) -> bool {
        match self {
            Gate::Ingest => true,
            Gate::Deidentify | Gate::DpRelease => matches!(zone, Zone::Clinical | Zone::Airlock),
            // Synthetic rows may also be made from de-identified data in development (to share
            // with a vendor under no BAA): the output is never identified either way.
            Gate::Synthesize => {
                matches!(zone, Zone::Clinical | Zone::Airlock | Zone::Development)
            }
            Gate::PromoteModel => matches!(zone, Zone::Development | Zone::Staging),
            // Checked against the destination in `check_transfer`: the same zone.
            Gate::Derive => true,
        }
    }
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why identified data is being used (HL7 PurposeOfUse, simplified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// TREAT.
    Treatment,
    /// HPAYMT.
    Payment,
    /// HOPERAT.
    Operations,
    /// HRESCH.
    Research,
    /// PUBHLTH.
    PublicHealth,
    /// ETREAT: emergency treatment (break-glass).
    Emergency,
}

impl Purpose {
    /// Every purpose, in a stable order.
    pub const ALL: [Purpose; 6] = [
        Purpose::Treatment,
        Purpose::Payment,
        Purpose::Operations,
        Purpose::Research,
        Purpose::PublicHealth,
        Purpose::Emergency,
    ];

    /// The name used on the command line and in ledger entries.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Treatment => "treatment",
            Purpose::Payment => "payment",
            Purpose::Operations => "operations",
            Purpose::Research => "research",
            Purpose::PublicHealth => "public-health",
            Purpose::Emergency => "emergency",
        }
    }

    /// The HL7 v3 PurposeOfUse code (used in FHIR AuditEvent exports).
    pub fn hl7_code(self) -> &'static str {
        match self {
            Purpose::Treatment => "TREAT",
            Purpose::Payment => "HPAYMT",
            Purpose::Operations => "HOPERAT",
            Purpose::Research => "HRESCH",
            Purpose::PublicHealth => "PUBHLTH",
            Purpose::Emergency => "ETREAT",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Purpose {
    type Err = ZoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Purpose::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| ZoneError::UnknownPurpose { name: truncate(s) })
    }
}

/// A refusal by the zone rules. Messages name zones and classifications, never data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZoneError {
    /// Identified data may not be stored in this zone.
    #[error("{classification} data may not be stored in the `{zone}` zone")]
    Residence {
        /// The zone asked for.
        zone: Zone,
        /// The data's classification.
        classification: Classification,
    },
    /// Identified data may not be read from this zone.
    #[error("{classification} data may not be read in the `{zone}` zone")]
    Read {
        /// The zone asked for.
        zone: Zone,
        /// The data's classification.
        classification: Classification,
    },
    /// A move between zones without a gate.
    #[error("data may not move from `{from}` to `{to}` without a gate")]
    NoGate {
        /// Source zone.
        from: Zone,
        /// Destination zone.
        to: Zone,
    },
    /// The gate does not read from this zone.
    #[error("the `{gate}` gate does not read from the `{zone}` zone")]
    GateSource {
        /// The gate used.
        gate: Gate,
        /// The source zone.
        zone: Zone,
    },
    /// The gate cannot produce this classification.
    #[error("the `{gate}` gate cannot produce {classification} data")]
    GateOutput {
        /// The gate used.
        gate: Gate,
        /// The requested output classification.
        classification: Classification,
    },
    /// A copy changed the classification without a gate.
    #[error("a copy cannot change the classification from {from} to {to}; use a gate")]
    Reclassify {
        /// Source classification.
        from: Classification,
        /// Requested classification.
        to: Classification,
    },
    /// Not a zone name.
    #[error("unknown zone `{name}` (expected clinical, airlock, development or staging)")]
    UnknownZone {
        /// What was given, truncated.
        name: String,
    },
    /// Not a classification name.
    #[error(
        "unknown classification `{name}` (expected phi, limited-data-set, deidentified, synthetic or dp-aggregate)"
    )]
    UnknownClassification {
        /// What was given, truncated.
        name: String,
    },
    /// Not a purpose of use.
    #[error(
        "unknown purpose of use `{name}` (expected treatment, payment, operations, research, public-health or emergency)"
    )]
    UnknownPurpose {
        /// What was given, truncated.
        name: String,
    },
}

/// May data of this classification be stored in this zone?
pub fn check_residence(zone: Zone, classification: Classification) -> Result<(), ZoneError> {
    if classification.is_identified() && !zone.admits_identified() {
        return Err(ZoneError::Residence {
            zone,
            classification,
        });
    }
    Ok(())
}

/// May data of this classification be read by someone working in this zone?
pub fn check_read(zone: Zone, classification: Classification) -> Result<(), ZoneError> {
    if classification.is_identified() && !zone.admits_identified() {
        return Err(ZoneError::Read {
            zone,
            classification,
        });
    }
    Ok(())
}

/// May data move from one (zone, classification) to another, through `gate` if any?
///
/// Without a gate, data may only be copied within its zone, keeping its classification.
/// With a gate, the gate's own rules apply, and the result must still satisfy
/// [`check_residence`].
pub fn check_transfer(
    from: (Zone, Classification),
    to: (Zone, Classification),
    gate: Option<Gate>,
) -> Result<(), ZoneError> {
    check_read(from.0, from.1)?;
    check_residence(to.0, to.1)?;
    match gate {
        // Deriving is copying's rule: nothing crosses and nothing is reclassified.
        None | Some(Gate::Derive) => {
            if from.0 != to.0 {
                return Err(ZoneError::NoGate {
                    from: from.0,
                    to: to.0,
                });
            }
            if from.1 != to.1 {
                return Err(ZoneError::Reclassify {
                    from: from.1,
                    to: to.1,
                });
            }
        }
        Some(g) => {
            if !g.may_read_from(from.0) {
                return Err(ZoneError::GateSource {
                    gate: g,
                    zone: from.0,
                });
            }
            if !g.may_produce(to.1) {
                return Err(ZoneError::GateOutput {
                    gate: g,
                    classification: to.1,
                });
            }
        }
    }
    Ok(())
}

/// May a gate read its input from this zone?
pub fn check_gate_source(gate: Gate, zone: Zone) -> Result<(), ZoneError> {
    if gate.may_read_from(zone) {
        Ok(())
    } else {
        Err(ZoneError::GateSource { gate, zone })
    }
}

/// Keep user-supplied names short in error messages.
fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identified_data_never_rests_outside_clinical_and_airlock() {
        for z in Zone::ALL {
            for c in Classification::ALL {
                let ok = check_residence(z, c).is_ok();
                let expected =
                    !(c.is_identified() && matches!(z, Zone::Development | Zone::Staging));
                assert_eq!(ok, expected, "{z} {c}");
                assert_eq!(check_read(z, c).is_ok(), expected, "{z} {c}");
            }
        }
    }

    #[test]
    fn deriving_never_crosses_or_reclassifies() {
        for fz in Zone::ALL {
            for tz in Zone::ALL {
                for fc in Classification::ALL {
                    for tc in Classification::ALL {
                        assert_eq!(
                            check_transfer((fz, fc), (tz, tc), Some(Gate::Derive)).is_ok(),
                            check_transfer((fz, fc), (tz, tc), None).is_ok(),
                            "{fz} {fc} -> {tz} {tc}"
                        );
                    }
                }
            }
        }
        assert!(
            check_transfer(
                (Zone::Clinical, Classification::Phi),
                (Zone::Development, Classification::Phi),
                Some(Gate::Derive)
            )
            .is_err()
        );
    }

    #[test]
    fn no_gate_means_same_zone_same_classification() {
        for fz in Zone::ALL {
            for tz in Zone::ALL {
                for fc in Classification::ALL {
                    for tc in Classification::ALL {
                        let r = check_transfer((fz, fc), (tz, tc), None);
                        if r.is_ok() {
                            assert_eq!(fz, tz);
                            assert_eq!(fc, tc);
                            assert!(check_residence(tz, tc).is_ok());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn no_gate_ever_lands_identified_data_in_development_or_staging() {
        let gates = [
            None,
            Some(Gate::Ingest),
            Some(Gate::Deidentify),
            Some(Gate::DpRelease),
            Some(Gate::Synthesize),
            Some(Gate::PromoteModel),
        ];
        for g in gates {
            for fz in Zone::ALL {
                for fc in Classification::ALL {
                    for tz in [Zone::Development, Zone::Staging] {
                        for tc in [Classification::Phi, Classification::LimitedDataSet] {
                            assert!(check_transfer((fz, fc), (tz, tc), g).is_err());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn deidentify_gate_goes_from_clinical_to_development() {
        assert!(
            check_transfer(
                (Zone::Clinical, Classification::Phi),
                (Zone::Development, Classification::Deidentified),
                Some(Gate::Deidentify)
            )
            .is_ok()
        );
        assert!(
            check_transfer(
                (Zone::Development, Classification::Deidentified),
                (Zone::Development, Classification::Deidentified),
                Some(Gate::Deidentify)
            )
            .is_err()
        );
        assert!(
            check_transfer(
                (Zone::Clinical, Classification::Phi),
                (Zone::Development, Classification::Synthetic),
                Some(Gate::Deidentify)
            )
            .is_err()
        );
    }

    #[test]
    fn names_round_trip() {
        for z in Zone::ALL {
            assert_eq!(z.as_str().parse::<Zone>(), Ok(z));
        }
        for c in Classification::ALL {
            assert_eq!(c.as_str().parse::<Classification>(), Ok(c));
        }
        for p in Purpose::ALL {
            assert_eq!(p.as_str().parse::<Purpose>(), Ok(p));
        }
        assert!("prod".parse::<Zone>().is_err());
    }
}
