//! The lifecycle of a model version, and which steps it allows.
//!
//! ```text
//! registered ─validate─▶ validated ─approve (quorum)─▶ approved ─▶ silent ─▶ canary ─promote─▶ production
//!                                                                    ▲         │
//!                                                                    └rollback─┘
//! any state ─retire─▶ retired   (a production version is retired when a canary is promoted)
//! ```
//!
//! A model reaches patients only through silent mode and a canary: no step goes from approved
//! straight to canary or production. `retired` is final.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a model version is in its lifecycle.
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
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Trained or imported, signed, stored; not yet checked.
    Registered,
    /// The registry re-verified the artifact and the card is complete.
    Validated,
    /// Every role the approval policy names has approved it.
    Approved,
    /// Receives a copy of production traffic; its predictions are logged, never shown.
    Silent,
    /// Shown for a configured, per-patient deterministic share of traffic.
    Canary,
    /// Shown for all traffic not taken by a canary.
    Production,
    /// Off all traffic for good.
    Retired,
}

impl State {
    /// Every state, in lifecycle order.
    pub const ALL: [State; 7] = [
        State::Registered,
        State::Validated,
        State::Approved,
        State::Silent,
        State::Canary,
        State::Production,
        State::Retired,
    ];

    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Registered => "registered",
            State::Validated => "validated",
            State::Approved => "approved",
            State::Silent => "silent",
            State::Canary => "canary",
            State::Production => "production",
            State::Retired => "retired",
        }
    }

    /// Whether a version in this state receives live traffic (and so lives in the clinical
    /// zone).
    pub fn is_deployed(self) -> bool {
        matches!(self, State::Silent | State::Canary | State::Production)
    }

    /// Whether `self → to` is a step of the lifecycle (approval quorums and the one-canary,
    /// one-production rules are checked by the registry on top of this).
    pub fn check_step(self, to: State) -> Result<(), &'static str> {
        use State::*;
        match (self, to) {
            (Retired, _) => Err("a retired version stays retired"),
            (_, Retired) => Ok(()),
            (Registered, Validated) => Ok(()),
            (Validated, Approved) => Ok(()),
            (Approved, Silent) => Ok(()),
            (Silent, Canary) => Ok(()),
            (Canary, Production) => Ok(()),
            (Canary, Silent) => Ok(()),
            // A replaced or rolled-back production version stands by, silent.
            (Production, Silent) => Ok(()),
            (Approved | Validated | Registered, Canary | Production) => {
                Err("a model reaches patients only after silent mode and a canary")
            }
            (Silent, Production) => Err("a model goes to production only from a canary"),
            (Registered, Approved | Silent) => Err("validate it first"),
            (Validated, Silent) => Err("it needs its approvals first"),
            _ => Err("not a lifecycle step"),
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL.into_iter().find(|x| x.as_str() == s).ok_or(
            "expected registered, validated, approved, silent, canary, production or retired",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_only_way_to_patients_is_silent_then_canary() {
        // Breadth-first over allowed steps from `registered`, never passing `silent` or
        // `canary`: `production` must be unreachable.
        for skip in [State::Silent, State::Canary] {
            let mut seen = vec![State::Registered];
            let mut i = 0;
            while let Some(&s) = seen.get(i) {
                for to in State::ALL {
                    if to != skip && s.check_step(to).is_ok() && !seen.contains(&to) {
                        seen.push(to);
                    }
                }
                i += 1;
            }
            assert!(!seen.contains(&State::Production), "skipping {skip}");
        }
    }

    #[test]
    fn retired_is_final_and_every_state_can_retire() {
        for s in State::ALL {
            assert!(State::Retired.check_step(s).is_err());
            if s != State::Retired {
                assert!(s.check_step(State::Retired).is_ok());
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>(), Ok(s));
        }
        assert!("live".parse::<State>().is_err());
    }
}
