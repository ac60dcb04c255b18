//! JSON Schemas for request fields whose Rust type is wider than what the operation accepts
//! (a `String` parsed later, a lifecycle state of which a step takes only some). Each is built
//! from the rule that checks the value, so the API document and the check cannot drift; the
//! identifiers' own schemas live with their types in `airlock_types::schema`.

use std::borrow::Cow;

use airlock_authz::{Action, Role};
use airlock_types::schema::{ACTOR_PATTERN, DATASET_NAME_PATTERN};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::identity::{IdentityPolicy, person_only, person_only_action};

/// `name` or `name@version`, as `airlock_store::parse_version_spec` reads it.
#[derive(Debug)]
pub struct DatasetSpec;

impl JsonSchema for DatasetSpec {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("DatasetSpec")
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let name = DATASET_NAME_PATTERN.trim_end_matches('$');
        json_schema!({
            "type": "string",
            "pattern": format!("{name}(@[1-9][0-9]{{0,8}})?$"),
            "description": "A dataset name with an optional `@VERSION`",
        })
    }
}

/// An RFC 3339 instant.
#[derive(Debug)]
pub struct DateTime;

impl JsonSchema for DateTime {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("DateTime")
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": "date-time"})
    }
}

/// A free-text reason on one line: 1 to 500 characters, not all blank, no control character
/// (Unicode `Cc`: C0, DEL and C1), as `models::check_reason` checks it.
#[derive(Debug)]
pub struct ReasonLine;

impl JsonSchema for ReasonLine {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("ReasonLine")
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": 500,
            // Surrounding white space is trimmed before the check, so it may be any.
            "pattern": "^\\s*[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*\\s*$",
        })
    }
}

/// A calendar day, `YYYY-MM-DD`.
#[derive(Debug)]
pub struct Day;

impl JsonSchema for Day {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Day")
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"})
    }
}

/// The roles a service may hold: none that is person-only.
fn service_roles() -> Vec<&'static str> {
    Role::ALL
        .iter()
        .filter(|r| !person_only(**r))
        .map(|r| r.as_str())
        .collect()
}

/// A new principal's id: an actor id that is not one the ledger reserves
/// (`identity::is_reserved`: `anonymous`, `local-operator`, `operator:*`, in any case).
fn new_principal_id() -> serde_json::Value {
    serde_json::json!({
        "type": "string",
        "pattern": ACTOR_PATTERN,
        "not": {"pattern": "^([Aa][Nn][Oo][Nn][Yy][Mm][Oo][Uu][Ss]|[Ll][Oo][Cc][Aa][Ll]-[Oo][Pp][Ee][Rr][Aa][Tt][Oo][Rr]|[Oo][Pp][Ee][Rr][Aa][Tt][Oo][Rr]:.*)$"},
    })
}

/// `POST /v1/users`: a person with any roles, or a service with roles a service may hold.
/// Nobody sets another person's password: a person enrols with the token the answer carries.
pub fn new_principal(generator: &mut SchemaGenerator) -> Schema {
    let roles = generator.subschema_for::<Role>().to_value();
    let one = |kind: &str, items: serde_json::Value| {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "id": new_principal_id(),
                "kind": {"const": kind},
                "roles": {"type": "array", "items": items, "minItems": 1},
            },
            "required": ["id", "kind", "roles"],
        })
    };
    // A clinician may come with the practitioner identity their treatment relationships are
    // found through; nobody else has one.
    let link = generator
        .subschema_for::<crate::identity::PractitionerLink>()
        .to_value();
    let clinician = serde_json::json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "id": new_principal_id(),
            "kind": {"const": "user"},
            "roles": {
                "type": "array",
                "items": roles,
                "minItems": 1,
                "contains": {"const": "clinician"},
            },
            "practitioner": link,
        },
        "required": ["id", "kind", "roles", "practitioner"],
    });
    json_schema!({
        "description": "A person (enrols their own password and TOTP with the token in the answer; a clinician may be linked to their practitioner identity) or a service (tokens or a client certificate; no person-only role)",
        "oneOf": [
            one("user", roles.clone()),
            clinician,
            one("service", serde_json::json!({"type": "string", "enum": service_roles()})),
        ],
    })
}

/// A token's scopes: at least one action, none that only a person may take.
pub fn service_scopes(_: &mut SchemaGenerator) -> Schema {
    let actions: Vec<&str> = Action::ALL
        .iter()
        .filter(|a| !person_only_action(**a))
        .map(|a| a.as_str())
        .collect();
    json_schema!({"type": "array", "items": {"type": "string", "enum": actions}, "minItems": 1})
}

/// A token's lifetime: 1 day up to the policy's maximum.
pub fn token_days(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "integer", "minimum": 1, "maximum": IdentityPolicy::default().max_token_days})
}

/// A new password: at least the policy's minimum length (strength is checked on receipt).
pub fn new_password(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "minLength": IdentityPolicy::default().min_password_len})
}

/// An enrolment token's shape (`ale_` and 32 random bytes in URL-safe base64).
pub fn enrolment_token(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": "^ale_[A-Za-z0-9_-]{43}$"})
}

/// A six-digit TOTP code.
pub fn totp_code(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": "^[0-9]{6}$"})
}

/// The built-in de-identification profiles a remote run may name.
pub fn remote_profile(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "enum": crate::deid_runs::REMOTE_PROFILES})
}

/// The states a deployment step may move a version to.
pub fn deploy_state(_: &mut SchemaGenerator) -> Schema {
    use airlock_registry::State;
    let states: Vec<&str> = [State::Silent, State::Canary, State::Retired]
        .iter()
        .map(|s| s.as_str())
        .collect();
    json_schema!({"type": "string", "enum": states})
}

/// A canary's share of patients, in (0, 100], or absent.
pub fn canary_percent(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 100}, {"type": "null"}]})
}

/// Feature values by name: numbers or category text.
pub fn features(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "object", "additionalProperties": {"type": ["number", "string"]}})
}

/// A constant string field.
macro_rules! constant {
    ($name:ident, $value:literal) => {
        pub fn $name(_: &mut SchemaGenerator) -> Schema {
            json_schema!({"const": $value})
        }
    };
}
constant!(always_running, "running");

/// `user` or `service`.
pub fn principal_kind(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "enum": ["user", "service"]})
}
constant!(always_ok, "ok");
constant!(always_pending, "pending");
constant!(always_true, true);
constant!(bundle, "Bundle");
constant!(searchset, "searchset");

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    use super::*;

    fn pattern_of<T: JsonSchema>() -> Result<regex::Regex, TestCaseError> {
        let schema = T::json_schema(&mut SchemaGenerator::default());
        let pattern = schema.get("pattern").and_then(|p| p.as_str()).unwrap_or("");
        regex::Regex::new(pattern).map_err(|e| TestCaseError::fail(e.to_string()))
    }

    proptest! {
        /// The reason's pattern and length admit exactly what `check_reason` admits.
        #[test]
        fn reason_schema_matches_check_reason(
            s in "[ \\t]{0,2}\\PC{0,3}[\\x00-\\x1f\\x7f-\\x9f\\u{2003} ]?\\PC{0,3}[ ]{0,2}"
        ) {
            let fits = pattern_of::<ReasonLine>()?.is_match(&s) && s.chars().count() <= 500;
            prop_assert_eq!(crate::models::check_reason(&s).is_ok(), fits, "{:?}", s);
        }

        /// What the dataset reference's pattern admits, the parser reads (the pattern is
        /// stricter: no leading zero, at most nine digits).
        #[test]
        fn dataset_spec_schema_admits_only_what_parses(s in "[a-z.-]{0,3}(@[0-9]{0,3})?") {
            if pattern_of::<DatasetSpec>()?.is_match(&s) {
                prop_assert!(airlock_store::parse_version_spec(&s).is_ok(), "{:?}", s);
            }
        }
    }
}
