//! Canonical binary encoding for models and signatures: little-endian integers, IEEE-754 bits
//! for floats (exact round trip, unlike decimal text), `u32` length prefixes. One value has one
//! encoding, so the SHA-256 of the bytes names the model. The [`Reader`] checks every length
//! against the bytes left before it allocates, and never panics on hostile input; it is public so
//! that other decoders of untrusted bytes (the ONNX envelope) share it rather than copy it.

use std::fmt;

use crate::error::ModelsError;

#[derive(Debug, Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Writer::default()
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn len(&mut self, n: usize) {
        // Lengths above u32::MAX are impossible for the models this crate builds; saturate
        // rather than wrap so a decoder would reject, never misread.
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    pub(crate) fn f64(&mut self, v: f64) {
        // Canonical zero: -0.0 and 0.0 predict identically, so they encode identically.
        let v = if v == 0.0 { 0.0 } else { v };
        self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
    }

    pub(crate) fn f64s(&mut self, v: &[f64]) {
        self.len(v.len());
        for &x in v {
            self.f64(x);
        }
    }

    pub(crate) fn str(&mut self, s: &str) {
        self.len(s.len());
        self.bytes(s.as_bytes());
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// A bounds-checked reader over untrusted bytes: little-endian integers, finite IEEE-754 floats
/// and `u32` length prefixes, as [`crate::Model`] encodings use them.
///
/// No method panics or allocates on a length it has not checked against the bytes left; every
/// error is [`ModelsError::Malformed`] with the offset where decoding stopped, so a caller with
/// its own error type (`airlock-onnx`'s envelope) can map it without losing the position.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// A [`ModelsError::Malformed`] at the current offset, for a rule the caller checks itself.
    pub fn err(&self, what: &'static str) -> ModelsError {
        ModelsError::Malformed {
            offset: self.pos,
            what,
        }
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes, borrowed from the input.
    ///
    /// # Errors
    /// [`ModelsError::Malformed`] if fewer than `n` bytes are left.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], ModelsError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| self.err("length overflow"))?;
        let s = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| self.err("unexpected end"))?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ModelsError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// One byte.
    ///
    /// # Errors
    /// [`ModelsError::Malformed`] at the end of the input.
    pub fn u8(&mut self) -> Result<u8, ModelsError> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }

    /// A little-endian `u32`.
    ///
    /// # Errors
    /// [`ModelsError::Malformed`] if fewer than 4 bytes are left.
    pub fn u32(&mut self) -> Result<u32, ModelsError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A little-endian `u64`.
    ///
    /// # Errors
    /// [`ModelsError::Malformed`] if fewer than 8 bytes are left.
    pub fn u64(&mut self) -> Result<u64, ModelsError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A `u32` length prefix for items of at least `min_item` bytes each, checked against what
    /// is left so that a forged length cannot make the caller allocate.
    ///
    /// # Errors
    /// [`ModelsError::Malformed`] if the prefix is cut short or promises more than is left.
    pub fn len(&mut self, min_item: usize) -> Result<usize, ModelsError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item.max(1)) > self.remaining() {
            return Err(self.err("length exceeds input"));
        }
        Ok(n)
    }

    /// A finite `f64` from its little-endian IEEE-754 bits.
    ///
    /// # Errors
    /// [`ModelsError::Malformed`] if fewer than 8 bytes are left or the value is not finite.
    pub fn f64(&mut self) -> Result<f64, ModelsError> {
        let v = f64::from_bits(u64::from_le_bytes(self.array()?));
        if !v.is_finite() {
            return Err(self.err("non-finite float"));
        }
        Ok(v)
    }

    /// A length-prefixed vector of finite `f64`s.
    ///
    /// # Errors
    /// [`ModelsError::Malformed`] as [`Reader::len`] and [`Reader::f64`].
    pub fn f64s(&mut self) -> Result<Vec<f64>, ModelsError> {
        let n = self.len(8)?;
        (0..n).map(|_| self.f64()).collect()
    }

    /// A length-prefixed UTF-8 string.
    ///
    /// # Errors
    /// [`ModelsError::Malformed`] as [`Reader::len`], or if the bytes are not UTF-8.
    pub fn str(&mut self) -> Result<String, ModelsError> {
        let n = self.len(1)?;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| self.err("invalid utf-8"))
    }

    /// Succeeds only when every byte has been read.
    ///
    /// # Errors
    /// [`ModelsError::Malformed`] (`trailing bytes`) otherwise.
    pub fn expect_end(&self) -> Result<(), ModelsError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }
}

impl fmt::Debug for Reader<'_> {
    /// Length and position only: the reader may hold any caller's bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("len", &self.bytes.len())
            .field("pos", &self.pos)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut w = Writer::new();
        w.u8(3);
        w.u32(70_000);
        w.f64(-0.0);
        w.f64s(&[1.5, -2.25]);
        w.str("age");
        let b = w.finish();
        let mut r = Reader::new(&b);
        assert_eq!(r.u8().unwrap(), 3);
        assert_eq!(r.u32().unwrap(), 70_000);
        assert_eq!(r.f64().unwrap().to_bits(), 0.0f64.to_bits());
        assert_eq!(r.f64s().unwrap(), vec![1.5, -2.25]);
        assert_eq!(r.str().unwrap(), "age");
        r.expect_end().unwrap();
        for cut in 0..b.len() {
            let mut r = Reader::new(&b[..cut]);
            let ok = r
                .u8()
                .and_then(|_| r.u32())
                .and_then(|_| r.f64())
                .and_then(|_| r.f64s());
            let ok = ok.and_then(|_| r.str());
            assert!(ok.is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn forged_length_is_refused() {
        let mut w = Writer::new();
        w.u32(u32::MAX);
        let b = w.finish();
        assert!(Reader::new(&b).f64s().is_err());
    }
}
