//! Hash maps keyed by input values (resource ids, references, identifying values, paths).
//!
//! foldhash, seeded per process so that input cannot choose its collisions, and several times
//! cheaper than the standard library's SipHash on the short strings these maps hold (a run
//! looks one up for nearly every leaf of every resource).

/// A hash map with the fast seeded hasher.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A hash set with the fast seeded hasher.
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
