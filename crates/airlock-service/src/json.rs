//! Serde helpers for request bodies that fail without quoting the value sent.

use serde::de::{Deserializer, Error as _};

/// Deserializes an integer field from any JSON number with no fractional part, as JSON
/// Schema's `integer` (and so the OpenAPI document) allows: `12` and `12.0` are the same
/// integer. Out of range, or with a fraction, is refused without quoting the number.
pub fn integer<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    let Whole(v) = serde::Deserialize::deserialize(d)?;
    T::try_from(v).map_err(|_| D::Error::custom("integer out of range for this field"))
}

/// [`integer`] for an optional field (absent or `null` is `None`).
pub fn optional_integer<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    match <Option<Whole> as serde::Deserialize>::deserialize(d)? {
        None => Ok(None),
        Some(Whole(v)) => T::try_from(v)
            .map(Some)
            .map_err(|_| D::Error::custom("integer out of range for this field")),
    }
}

/// An optional field that may be absent but not `null` (with `#[serde(default)]`): where the
/// OpenAPI document gives the field an object schema only, `null` is refused as the document
/// says.
pub fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// A JSON number with no fractional part that fits an `i64`.
struct Whole(i64);

impl<'de> serde::Deserialize<'de> for Whole {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Whole;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Whole, E> {
                Ok(Whole(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Whole, E> {
                i64::try_from(v)
                    .map(Whole)
                    .map_err(|_| E::custom("integer out of range for this field"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Whole, E> {
                // Exactly representable and in range: |v| < 2^63.
                const LIMIT: f64 = 9_223_372_036_854_775_808.0;
                if v.fract() == 0.0 && v.abs() < LIMIT {
                    #[expect(
                        clippy::cast_possible_truncation,
                        reason = "whole and within i64's range, checked above"
                    )]
                    Ok(Whole(v as i64))
                } else {
                    Err(E::custom("must be a whole number in range for this field"))
                }
            }
        }
        d.deserialize_any(V)
    }
}
