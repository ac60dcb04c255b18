//! airlock-ledger
