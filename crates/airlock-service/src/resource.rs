//! What a ledger entry is about, as a type. Each variant renders exactly the text earlier
//! versions wrote, so ledgers written before this type existed still verify and read the same.

use std::fmt;

use airlock_authz::{Action, Resource};
use airlock_registry::ModelName;
use airlock_types::{ActorId, DatasetName};

/// The subject of a ledger entry's `resource` field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LedgerResource {
    /// A request refused before any policy decision: `GET /v1/route/{param}`.
    Route {
        /// The HTTP method (or the CLI command).
        method: String,
        /// The route template, never the concrete path (which may carry an identifier).
        route: String,
    },
    /// A policy decision on an action over a resource: `read-dataset:dataset:name`.
    Decision {
        /// The action decided.
        action: Action,
        /// What it was decided on.
        target: Resource,
    },
    /// The caller's own identity.
    Myself,
    /// A principal (person or service).
    Principal(ActorId),
    /// An API token, by its id.
    Token(String),
    /// A dataset, by name.
    Dataset(DatasetName),
    /// Every dataset (a listing).
    AllDatasets,
    /// One dataset version: `name@version`.
    DatasetVersion(String),
    /// A break-glass grant, by id.
    BreakGlass(String),
    /// Every model version (a listing).
    Models,
    /// One model version: `model:name@hash`.
    ModelVersion {
        /// The model's name.
        name: String,
        /// The version's hash, hex.
        hash: String,
    },
    /// A served prediction, by its ledger index.
    Prediction(u64),
    /// A model's prediction log: `prediction-log:name`.
    PredictionLog(ModelName),
    /// A client address, for summaries of refused requests: `source:203.0.113.9`.
    Source(String),
}

/// How a policy resource is named inside a decision's ledger resource.
fn describe(f: &mut fmt::Formatter<'_>, resource: &Resource) -> fmt::Result {
    match resource {
        Resource::Zone(z) => write!(f, "zone:{z}"),
        Resource::Dataset { name, .. } => write!(f, "dataset:{name}"),
        Resource::Model { name, .. } => write!(f, "model:{name}"),
        Resource::Audit => f.write_str("audit"),
        Resource::Identities => f.write_str("identities"),
        Resource::Keys => f.write_str("keys"),
        Resource::Patient { zone } => write!(f, "patient-record:{zone}"),
    }
}

impl fmt::Display for LedgerResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LedgerResource::Route { method, route } => write!(f, "{method} {route}"),
            LedgerResource::Decision { action, target } => {
                write!(f, "{}:", action.as_str())?;
                describe(f, target)
            }
            LedgerResource::Myself => f.write_str("identity:self"),
            LedgerResource::Principal(id) => write!(f, "principal:{id}"),
            LedgerResource::Token(id) => write!(f, "token:{id}"),
            LedgerResource::Dataset(name) => write!(f, "dataset:{name}"),
            LedgerResource::AllDatasets => f.write_str("datasets:*"),
            LedgerResource::DatasetVersion(reference) => f.write_str(reference),
            LedgerResource::BreakGlass(id) => write!(f, "break-glass:{id}"),
            LedgerResource::Models => f.write_str("models"),
            LedgerResource::ModelVersion { name, hash } => write!(f, "model:{name}@{hash}"),
            LedgerResource::Prediction(index) => write!(f, "prediction:{index}"),
            LedgerResource::PredictionLog(model) => write!(f, "prediction-log:{model}"),
            LedgerResource::Source(addr) => write!(f, "source:{addr}"),
        }
    }
}

impl From<LedgerResource> for String {
    fn from(r: LedgerResource) -> String {
        r.to_string()
    }
}

#[cfg(test)]
mod tests {
    use airlock_types::Zone;

    use super::*;

    /// The texts ledgers already hold: a change here would make old entries read differently.
    #[test]
    fn renders_the_texts_earlier_ledgers_hold() {
        let actor = ActorId::new("dr-lee").ok();
        let cases: Vec<(LedgerResource, &str)> = vec![
            (
                LedgerResource::Route {
                    method: "GET".into(),
                    route: "/v1/datasets/{name}".into(),
                },
                "GET /v1/datasets/{name}",
            ),
            (
                LedgerResource::Decision {
                    action: Action::ReadPatientRecord,
                    target: Resource::Patient {
                        zone: Zone::Clinical,
                    },
                },
                "read-patient-record:patient-record:clinical",
            ),
            (
                LedgerResource::Decision {
                    action: Action::ListDatasets,
                    target: Resource::Zone(Zone::Development),
                },
                "list-datasets:zone:development",
            ),
            (LedgerResource::Myself, "identity:self"),
            (LedgerResource::AllDatasets, "datasets:*"),
            (LedgerResource::Token("ab12".into()), "token:ab12"),
            (LedgerResource::BreakGlass("ff".into()), "break-glass:ff"),
            (LedgerResource::Prediction(7), "prediction:7"),
            (
                LedgerResource::ModelVersion {
                    name: "readmit".into(),
                    hash: "00ff".into(),
                },
                "model:readmit@00ff",
            ),
        ];
        for (r, text) in cases {
            assert_eq!(r.to_string(), text);
        }
        if let Some(a) = actor {
            assert_eq!(LedgerResource::Principal(a).to_string(), "principal:dr-lee");
        }
    }
}
