//! Incident response engines, pure (no I/O): when each breach notice is due
//! ([`deadlines`]), and which ledger entries suggest an incident ([`detect`]). The service layer feeds them the ledger and the incident's records.

pub mod deadlines;
pub mod detect;

pub use deadlines::{
    Affected, Deadline, DeadlineError, Deadlines, Notice, Status, individual_letter,
};
