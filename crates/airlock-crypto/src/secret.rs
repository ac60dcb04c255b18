//! [`Secret`]: key bytes that are zeroized on drop and never printed.

use std::fmt;

use zeroize::Zeroizing;

/// Secret bytes. `Debug` prints the type name only; the bytes come out through
/// [`Secret::expose_secret`] alone.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Take ownership of secret bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }

    /// Fresh random secret of `len` bytes.
    pub fn random(len: usize) -> Self {
        use rand::RngCore;
        let mut v = Zeroizing::new(vec![0u8; len]);
        rand::rngs::OsRng.fill_bytes(&mut v);
        Secret(v)
    }

    /// The secret bytes. Every call site handles key material.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
