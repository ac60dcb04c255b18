//! The answer to a request, with its reasons.

use std::fmt;

use serde::Serialize;

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// The request may proceed.
    Allow,
    /// The request is refused.
    Deny,
}

impl Effect {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authorization decision and why it was taken. Holds policy ids and error summaries only,
/// never a value from the request, so it can go into the ledger and the logs as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Allow or deny.
    pub effect: Effect,
    /// The `@id`s of the policies that determined the decision, sorted: the permits that
    /// matched for an allow, the forbids that matched for a deny; empty for a default deny.
    pub policies: Vec<String>,
    /// Evaluation errors, as the id of the failing policy or a fixed description; no data.
    pub errors: Vec<String>,
}

impl Decision {
    /// Whether the request may proceed.
    pub fn allowed(&self) -> bool {
        self.effect == Effect::Allow
    }

    /// A short reason for the ledger: `permit:<ids>`, `forbid:<ids>`, `deny:default`, or
    /// `deny:error` when nothing matched and something failed to evaluate. Several ids are
    /// joined with `,`.
    pub fn reason(&self) -> String {
        let ids = self.policies.join(",");
        match self.effect {
            Effect::Allow => format!("permit:{ids}"),
            Effect::Deny if !self.policies.is_empty() => format!("forbid:{ids}"),
            Effect::Deny if !self.errors.is_empty() => "deny:error".to_owned(),
            Effect::Deny => "deny:default".to_owned(),
        }
    }

    /// A deny that no policy determined, with one error.
    pub(crate) fn error(message: String) -> Self {
        Decision {
            effect: Effect::Deny,
            policies: Vec::new(),
            errors: vec![message],
        }
    }
}
