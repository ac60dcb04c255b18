//! [`Phi<T>`]: a wrapper for identified patient data.
//!
//! It has a redacted `Debug`, no `Display` and no `Serialize`: the only way to the value is
//! [`Phi::expose`], whose name makes every use easy to find in review.

use std::fmt;

/// Identified patient data. Never printed, logged or serialised implicitly.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Phi<T>(T);

impl<T> Phi<T> {
    /// Wrap a value.
    pub fn new(value: T) -> Self {
        Phi(value)
    }

    /// Borrow the identified value. Every call site is a place PHI is handled.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Take the identified value out.
    pub fn into_exposed(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Phi<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Phi(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let p = Phi::new("John Smith".to_string());
        assert_eq!(format!("{p:?}"), "Phi(<redacted>)");
        assert_eq!(p.expose(), "John Smith");
    }
}
