//! airlock-text
