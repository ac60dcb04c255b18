//! airlock-deid
