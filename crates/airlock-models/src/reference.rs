//! The reference task: 30-day readmission (`readmitted == "<30"`) on the Diabetes 130-US
//! hospitals table (`../shared/data/tabular/diabetes130/`), with the features the example, the
//! scikit-learn comparison and the demo all use.

/// Numeric features.
pub const READMISSION_NUMERIC: [&str; 8] = [
    "time_in_hospital",
    "num_lab_procedures",
    "num_procedures",
    "num_medications",
    "number_outpatient",
    "number_emergency",
    "number_inpatient",
    "number_diagnoses",
];

/// Categorical features (codes such as `admission_type_id` included).
pub const READMISSION_CATEGORICAL: [&str; 11] = [
    "age",
    "gender",
    "A1Cresult",
    "max_glu_serum",
    "insulin",
    "metformin",
    "change",
    "diabetesMed",
    "admission_type_id",
    "discharge_disposition_id",
    "admission_source_id",
];

/// The reference task's features, categorical first, as the example, the demo and the
/// scikit-learn comparison train on them.
pub fn readmission_features() -> Vec<crate::FeatureSpec> {
    READMISSION_CATEGORICAL
        .iter()
        .map(|c| crate::FeatureSpec::Categorical((*c).to_owned()))
        .chain(
            READMISSION_NUMERIC
                .iter()
                .map(|c| crate::FeatureSpec::Numeric((*c).to_owned())),
        )
        .collect()
}

/// The target column.
pub const READMISSION_TARGET: &str = "readmitted";

/// The target value that counts as positive.
pub const READMISSION_POSITIVE: &str = "<30";
