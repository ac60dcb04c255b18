//! Zones, classifications, gates and typed identifiers shared by every Airlock crate.
//!
//! This crate has no I/O. Its central item is [`zone`]: the single place where the rule
//! "identified data never lives in, is read from or is copied to a development or staging
//! zone" is written down. Every path that stores, reads or moves data asks it.

pub mod ids;
pub mod phi;
pub mod schema;
pub mod zone;

pub use ids::{ActorId, ContentHash, DatasetName, DatasetVersionId, IdError, RequestId};
pub use phi::{Mrn, Phi};
pub use zone::{Classification, Gate, Purpose, Zone, ZoneError};
