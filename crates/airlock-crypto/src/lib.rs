//! Airlock's key hierarchy, key-management trait and envelope encryption.
//!
//! The hierarchy:
//!
//! ```text
//! passphrase --Argon2id--> passphrase key --AES-256-GCM--> master key (KEK)
//! master key --AES-256-GCM (aad = key name)--> named keys: ledger signing (Ed25519),
//!                                              pseudonymisation (HMAC-SHA256), TLS private key
//! master key --AES-256-GCM (aad = object binding)--> one fresh data key per stored object
//! data key   --AES-256-GCM (aad = zone, classification, content hash)--> object bytes
//! ```
//!
//! Callers only see the [`KeyManager`] trait (wrap and unwrap a data key, fetch a named key), so a
//! cloud KMS or HashiCorp Vault Transit can replace [`LocalKeyManager`] without touching them.
//! Secrets live in [`Secret`] (zeroized on drop, `Debug` prints the type name only); no error in
//! this crate carries key bytes.

mod envelope;
mod keyring;
mod secret;
mod tls;

pub use envelope::{
    Binding, DataKey, EncryptedObject, WrappedKey, decrypt_object, encrypt_object,
    encrypt_object_with_key,
};
pub use keyring::{KdfParams, KeyId, KeyManager, Keyring, LocalKeyManager, NamedKey, RotationPlan};
pub use secret::Secret;
pub use tls::{TLS_VALID_DAYS, TlsIdentity, generate_tls_identity};

use sha2::{Digest, Sha256};

/// Errors from key management and encryption. Never carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The passphrase did not unlock the master key.
    #[error("wrong passphrase: the master key could not be unlocked")]
    WrongPassphrase,
    /// The passphrase is too short to protect PHI.
    #[error("the passphrase must be at least {min} characters")]
    WeakPassphrase {
        /// The minimum length.
        min: usize,
    },
    /// Authenticated decryption failed: the ciphertext, its key or its binding was altered.
    #[error("integrity check failed for {what}: the data or its binding was altered")]
    Integrity {
        /// What failed (an object name or key name; never data).
        what: String,
    },
    /// A wrapped key names a master key this key manager does not hold.
    #[error("`{what}` is wrapped under master key `{key_id}`, which this keyring does not hold")]
    UnknownKek {
        /// What was being unwrapped.
        what: String,
        /// The key id recorded with it.
        key_id: String,
    },
    /// A named key is missing from the keyring.
    #[error("the keyring has no key named `{name}`")]
    MissingKey {
        /// The key's name.
        name: String,
    },
    /// The keyring file is malformed.
    #[error("malformed keyring: {reason}")]
    Keyring {
        /// What is wrong (structure only).
        reason: String,
    },
    /// An encrypted object is too short or has an unknown version.
    #[error("malformed encrypted object {what}: {reason}")]
    Format {
        /// The object.
        what: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The KDF rejected its parameters.
    #[error("invalid key-derivation parameters")]
    Kdf,
    /// Generating TLS material failed.
    #[error("could not generate TLS material")]
    Tls,
}

/// SHA-256 of some bytes as a [`airlock_types::ContentHash`].
pub fn sha256(bytes: &[u8]) -> airlock_types::ContentHash {
    airlock_types::ContentHash::from_bytes(Sha256::digest(bytes).into())
}

/// Fill a buffer from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut out = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}

/// A key for one job derived from `material` and a `label` (HMAC-SHA256 of the label under the
/// material), so one secret never serves two jobs under the same key.
pub fn derive_key(material: &Secret, label: &[u8]) -> Result<Secret, CryptoError> {
    use hmac::Mac as _;
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(material.expose_secret())
        .map_err(|_| CryptoError::MissingKey {
            name: "derivation material".into(),
        })?;
    mac.update(label);
    Ok(Secret::new(mac.finalize().into_bytes().to_vec()))
}
