//! The views Airlock ships for the tables models are trained on (`views/*.json`): patient
//! demographics, encounters, conditions, final observations long, blood pressure wide, and
//! medication requests. They hold US Core paths that Synthea and the generator's cohorts both
//! write, and every column is typed.

use crate::{LoadOptions, View, ViewError};

/// The built-in views: name and definition (JSON).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "patient_demographics",
        include_str!("../views/patient_demographics.json"),
    ),
    ("encounters", include_str!("../views/encounters.json")),
    ("conditions", include_str!("../views/conditions.json")),
    (
        "observations_long",
        include_str!("../views/observations_long.json"),
    ),
    (
        "blood_pressure",
        include_str!("../views/blood_pressure.json"),
    ),
    (
        "medication_requests",
        include_str!("../views/medication_requests.json"),
    ),
];

/// A built-in view's definition by name.
pub fn definition(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
}

/// A built-in view, loaded with typed columns; `None` for an unknown name.
pub fn builtin(name: &str) -> Option<Result<View, ViewError>> {
    let text = definition(name)?;
    Some(
        serde_json::from_str(text)
            .map_err(|_| ViewError::WrongType {
                at: name.to_owned(),
                expected: "a JSON ViewDefinition",
            })
            .and_then(|v| View::from_json_with(&v, LoadOptions::typed())),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_builtin_view_loads_typed() {
        for (name, _) in super::BUILTIN {
            let view = super::builtin(name).unwrap().unwrap();
            assert_eq!(view.name(), Some(*name));
        }
        assert!(super::builtin("nope").is_none());
    }
}
