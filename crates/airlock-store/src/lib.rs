//! airlock-store
