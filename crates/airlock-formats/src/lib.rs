//! airlock-formats
