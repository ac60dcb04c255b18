//! JSON Schemas for the validated identifiers, written next to their validators so the API
//! document states the same bounds the parsers enforce (a test parses what each pattern admits).

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::{ActorId, ContentHash, DatasetName, DatasetVersionId, Mrn, RequestId};

/// `DatasetName::new`'s rule as a pattern.
pub const DATASET_NAME_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,63}$";
/// `ActorId::new`'s rule as a pattern.
pub const ACTOR_PATTERN: &str = "^[A-Za-z0-9._@:-]{1,128}$";
/// A content hash's text.
pub const CONTENT_HASH_PATTERN: &str = "^[0-9a-f]{64}$";
/// `Mrn::parse`'s rule: no control characters (Unicode `Cc`: C0, DEL and C1).
pub const MRN_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// A string schema that is always written inline (it is a shape, not a resource).
macro_rules! string_schema {
    ($ty:ty, $name:literal, $schema:tt) => {
        impl JsonSchema for $ty {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

string_schema!(DatasetName, "DatasetName", {"type": "string", "pattern": DATASET_NAME_PATTERN});
string_schema!(ActorId, "ActorId", {"type": "string", "pattern": ACTOR_PATTERN});
string_schema!(ContentHash, "ContentHash", {"type": "string", "pattern": CONTENT_HASH_PATTERN});
string_schema!(RequestId, "RequestId", {"type": "string", "pattern": "^[0-9a-f]{32}$"});
string_schema!(Mrn, "Mrn", {
    "type": "string",
    "minLength": 1,
    "maxLength": Mrn::MAX_CHARS,
    "pattern": MRN_PATTERN,
    "description": "A medical record number (identified: never logged or echoed)",
});

/// A dataset name as lineage shows it: a name, or the placeholder a reader outside the
/// parent's zones sees instead ([`DatasetName::withheld`]).
#[derive(Debug)]
pub struct ShownDatasetName;

impl JsonSchema for ShownDatasetName {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("ShownDatasetName")
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"anyOf": [
            {"type": "string", "pattern": DATASET_NAME_PATTERN},
            {"enum": DatasetName::WITHHELD},
        ]})
    }
}

impl JsonSchema for DatasetVersionId {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("DatasetVersionId")
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "integer", "minimum": 1, "maximum": u32::MAX})
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn matches(pattern: &str, s: &str) -> bool {
        regex::Regex::new(pattern)
            .map(|r| r.is_match(s))
            .unwrap_or(false)
    }

    proptest! {
        /// The patterns admit exactly what the validators admit.
        #[test]
        fn patterns_match_the_validators(s in "[a-zA-Z0-9._@: /-]{0,130}") {
            prop_assert_eq!(DatasetName::new(s.clone()).is_ok(), matches(DATASET_NAME_PATTERN, &s));
            prop_assert_eq!(ActorId::new(s.clone()).is_ok(), matches(ACTOR_PATTERN, &s));
        }

        #[test]
        fn mrn_pattern_matches_the_parser(s in "\\PC{0,3}[\\x00-\\x1f\\x7f-\\x9f]?\\PC{0,3}") {
            let fits = matches(MRN_PATTERN, &s) && !s.is_empty() && s.chars().count() <= Mrn::MAX_CHARS;
            prop_assert_eq!(Mrn::parse(s.clone()).is_ok(), fits);
        }

        #[test]
        fn content_hash_pattern_matches_the_parser(s in "[0-9a-fA-F]{63,65}") {
            prop_assert_eq!(s.parse::<ContentHash>().is_ok(), matches(CONTENT_HASH_PATTERN, &s));
        }
    }
}
