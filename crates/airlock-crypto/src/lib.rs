//! airlock-crypto
