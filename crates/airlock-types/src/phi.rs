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

/// A medical record number as a request names it: 1 to [`Mrn::MAX_CHARS`] characters, none of
/// them control characters (an empty one would name a patient nobody is, and a break-glass
/// grant for it would be a grant for nobody). It is identified data, so it only exists inside
/// [`Phi`]: [`Mrn::parse`] returns `Phi<Mrn>`, and errors name the rule, never the value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Mrn(String);

impl fmt::Debug for Mrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Mrn(<redacted>)")
    }
}

impl Mrn {
    /// The longest record number accepted, in characters.
    pub const MAX_CHARS: usize = 128;

    /// Check a record number and wrap it.
    pub fn parse(value: impl Into<String>) -> Result<Phi<Mrn>, crate::IdError> {
        let value = value.into();
        let n = value.chars().count();
        if n == 0 || n > Mrn::MAX_CHARS || value.chars().any(char::is_control) {
            return Err(crate::IdError::Invalid {
                kind: "record number",
                rule: "must be 1 to 128 characters, none of them control characters",
            });
        }
        Ok(Phi::new(Mrn(value)))
    }

    /// The record number's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_numbers_are_checked_and_never_printed() {
        let m = Mrn::parse("MRN-0042").unwrap_or_else(|_| Phi::new(Mrn(String::new())));
        assert_eq!(m.expose().as_str(), "MRN-0042");
        assert_eq!(format!("{m:?}"), "Phi(<redacted>)");
        for bad in ["", "a\nb", &"x".repeat(129)] {
            let e = Mrn::parse(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("1 to 128"), "{e}");
            assert!(
                bad.is_empty() || !e.contains(bad),
                "the value is never echoed"
            );
        }
        assert!(Mrn::parse("é".repeat(128)).is_ok(), "counted as characters");
    }

    #[test]
    fn debug_is_redacted() {
        let p = Phi::new("John Smith".to_string());
        assert_eq!(format!("{p:?}"), "Phi(<redacted>)");
        assert_eq!(p.expose(), "John Smith");
    }
}
