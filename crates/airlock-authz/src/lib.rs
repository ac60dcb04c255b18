//! Airlock's authorization engine: may this principal do this, here, for this purpose?
//!
//! Policy is code, in [Cedar](https://www.cedarpolicy.com): a schema
//! (`policies/airlock.cedarschema`) and a default policy set (`policies/default.cedar`), both
//! compiled into the binary. The rules of the default set:
//!
//! * deny by default: a request is allowed only when a `permit` matches;
//! * `forbid` wins over any `permit`, including permits a deployment adds;
//! * every access to PHI carries a purpose of use;
//! * identified data in development or staging is refused whoever asks (the zone invariant of
//!   `airlock_types::zone`, enforced a second time here);
//! * a person without a second factor gets nothing; only clinicians break the glass; nobody
//!   approves a model they trained; the security administrator sees no data.
//!
//! The engine is pure: no I/O, no clock, no async. Callers describe a request with Airlock's own
//! types ([`Principal`], [`Action`], [`Resource`], [`Purpose`](airlock_types::Purpose)); the
//! engine translates them into Cedar entities and answers with a [`Decision`] that names the
//! policies that determined it, so the ledger can record why.
//!
//! Policies are validated against the schema in strict mode when they are loaded; a policy that
//! names an unknown entity type, attribute or action is refused with an error naming its `@id`,
//! never silently ignored.

mod decision;
mod engine;
mod error;
mod vocab;

pub use decision::{Decision, Effect};
pub use engine::{Authorizer, PolicyMode};
pub use error::AuthzError;
pub use vocab::{Action, Principal, PrincipalKind, Request, Resource, ResourceKind, Role};
