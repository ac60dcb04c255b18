//! Why a policy set or a name was refused. Messages name policies and positions, never data.

/// A refusal to build an [`Authorizer`](crate::Authorizer), or to parse a name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthzError {
    /// The built-in schema did not parse (a bug in this crate).
    #[error("the authorization schema is invalid: {message}")]
    Schema {
        /// Cedar's message.
        message: String,
    },
    /// The policy text did not parse.
    #[error("policy text does not parse: {message}")]
    Parse {
        /// Cedar's message for the first problem.
        message: String,
    },
    /// A policy has no `@id("...")` annotation.
    #[error(
        "policy number {index} (counting from 0) has no `@id(\"...\")` annotation; every policy needs one"
    )]
    MissingId {
        /// The policy's position in the text, from 0.
        index: usize,
    },
    /// A policy's `@id` is empty, too long or uses characters other than `a-z`, `0-9`, `-`.
    #[error("policy `{id}` has an invalid `@id`: use 1 to 64 characters from a-z, 0-9 and `-`")]
    InvalidId {
        /// The id as written, truncated.
        id: String,
    },
    /// Two policies share an `@id`.
    #[error("two policies have the `@id` `{id}`")]
    DuplicateId {
        /// The id.
        id: String,
    },
    /// The text contains a template; Airlock policies are static.
    #[error(
        "policy `{id}` is a template (uses `?principal` or `?resource`); templates are not supported"
    )]
    Template {
        /// The template's `@id`, or its position.
        id: String,
    },
    /// A policy does not validate against the schema (strict mode).
    #[error("policy `{id}` does not validate against the schema: {problem}")]
    Invalid {
        /// The policy's `@id`.
        id: String,
        /// The first problem found in it.
        problem: String,
        /// How many further problems were found, in this and other policies.
        more: usize,
    },
    /// Not a role name.
    #[error(
        "unknown role `{name}` (expected data-scientist, mlops-engineer, clinician, clinical-reviewer, privacy-officer, security-admin or auditor)"
    )]
    UnknownRole {
        /// What was given, truncated.
        name: String,
    },
    /// Not an action name.
    #[error("unknown action `{name}`")]
    UnknownAction {
        /// What was given, truncated.
        name: String,
    },
}
