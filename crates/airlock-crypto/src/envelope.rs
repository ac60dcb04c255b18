//! Envelope encryption of stored objects.
//!
//! Each object gets a fresh 256-bit data key. The object is sealed with AES-256-GCM under that
//! key, with the object's [`Binding`] (zone, classification, content hash) as associated data, so
//! an object copied into another zone's namespace, relabelled or swapped for another fails to
//! decrypt. The data key is wrapped by the master key (through [`KeyManager`]) with the same
//! binding as associated data, and stored apart from the ciphertext (in the metadata store), so
//! rotating the master key re-wraps data keys without touching object bytes.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use airlock_types::{Classification, ContentHash, Zone};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::keyring::{KeyId, KeyManager};
use crate::{CryptoError, Secret, random_bytes, sha256};

const OBJECT_MAGIC: &[u8; 4] = b"ALK1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// What an object is bound to: tampering with any of these makes decryption fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The zone the object lives in.
    pub zone: Zone,
    /// Its classification.
    pub classification: Classification,
    /// SHA-256 of the plaintext.
    pub hash: ContentHash,
}

impl Binding {
    /// The associated data for the object ciphertext.
    fn object_aad(&self) -> Vec<u8> {
        format!(
            "airlock-object-v1\0{}\0{}\0{}",
            self.zone,
            self.classification,
            self.hash.to_hex()
        )
        .into_bytes()
    }

    /// The associated data for the wrapped data key.
    pub fn key_aad(&self) -> Vec<u8> {
        let mut aad = b"airlock-dek-v1\0".to_vec();
        aad.extend_from_slice(&self.object_aad());
        aad
    }
}

/// A 256-bit data key, zeroized on drop.
#[derive(Clone)]
pub struct DataKey(Secret);

impl DataKey {
    /// A fresh random data key.
    pub fn generate() -> Self {
        DataKey(Secret::random(32))
    }

    /// Wrap existing key bytes (from an unwrap).
    pub(crate) fn from_secret(s: Secret) -> Result<Self, CryptoError> {
        if s.len() != 32 {
            return Err(CryptoError::Format {
                what: "data key".into(),
                reason: "a data key must be 32 bytes",
            });
        }
        Ok(DataKey(s))
    }

    /// The key bytes.
    pub(crate) fn secret(&self) -> &Secret {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// A key wrapped by a master key: the master key's id and the AES-GCM sealed key.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Which master key wrapped it.
    pub kek_id: KeyId,
    /// nonce || ciphertext || tag.
    pub sealed: Vec<u8>,
}

impl WrappedKey {
    /// A compact text form for storage: `<kek id>:<base64>`.
    pub fn to_text(&self) -> String {
        format!("{}:{}", self.kek_id.as_str(), B64.encode(&self.sealed))
    }

    /// Parse the text form.
    pub fn from_text(s: &str) -> Result<Self, CryptoError> {
        let bad = || CryptoError::Format {
            what: "wrapped key".into(),
            reason: "expected `<key id>:<base64>`",
        };
        let (id, b64) = s.split_once(':').ok_or_else(bad)?;
        let sealed = B64.decode(b64).map_err(|_| bad())?;
        Ok(WrappedKey {
            kek_id: KeyId::new(id.to_string()),
            sealed,
        })
    }
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("kek_id", &self.kek_id)
            .field("len", &self.sealed.len())
            .finish()
    }
}

/// An encrypted object ready to store, and its wrapped data key.
#[derive(Debug)]
pub struct EncryptedObject {
    /// `ALK1 || nonce || ciphertext || tag`.
    pub bytes: Vec<u8>,
    /// The object's data key, wrapped by the current master key.
    pub wrapped_key: WrappedKey,
}

/// Seal `plaintext` under a fresh data key, bound to `binding`.
///
/// The caller computes `binding.hash` as the SHA-256 of `plaintext`; a mismatch is refused so a
/// content address can never point at other bytes.
pub fn encrypt_object(
    kms: &dyn KeyManager,
    binding: &Binding,
    plaintext: &[u8],
) -> Result<EncryptedObject, CryptoError> {
    if sha256(plaintext) != binding.hash {
        return Err(CryptoError::Integrity {
            what: format!("object {}", binding.hash.short()),
        });
    }
    let dek = DataKey::generate();
    let bytes = seal_object(&dek, binding, plaintext)?;
    let wrapped_key = kms.wrap_data_key(&dek, &binding.key_aad())?;
    Ok(EncryptedObject { bytes, wrapped_key })
}

/// Seal `plaintext` under an existing data key, given wrapped as it is stored.
///
/// For a store where several writers may put the same content at once: they agree on one
/// wrapped key first (the metadata row that won), then each seals under it, so whichever
/// writer's bytes land last decrypt under the recorded key. Every call still draws a fresh
/// nonce, so two seals of the same plaintext under one key never reuse a (key, nonce) pair
/// (AES-GCM's bound of about 2^32 random nonces per key is far beyond any object's writers).
pub fn encrypt_object_with_key(
    kms: &dyn KeyManager,
    binding: &Binding,
    wrapped_key: &WrappedKey,
    plaintext: &[u8],
) -> Result<EncryptedObject, CryptoError> {
    if sha256(plaintext) != binding.hash {
        return Err(CryptoError::Integrity {
            what: format!("object {}", binding.hash.short()),
        });
    }
    let dek = kms.unwrap_data_key(wrapped_key, &binding.key_aad())?;
    let bytes = seal_object(&dek, binding, plaintext)?;
    Ok(EncryptedObject {
        bytes,
        wrapped_key: wrapped_key.clone(),
    })
}

/// `ALK1 || nonce || ciphertext || tag` of `plaintext` under `dek`, bound to `binding`.
fn seal_object(dek: &DataKey, binding: &Binding, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let sealed = seal(dek.secret(), plaintext, &binding.object_aad())?;
    let mut bytes = Vec::with_capacity(OBJECT_MAGIC.len() + sealed.len());
    bytes.extend_from_slice(OBJECT_MAGIC);
    bytes.extend_from_slice(&sealed);
    Ok(bytes)
}

/// Open an object sealed by [`encrypt_object`], checking its binding and content hash.
///
/// `what` names the object in errors (e.g. its path); it must not contain data.
pub fn decrypt_object(
    kms: &dyn KeyManager,
    binding: &Binding,
    wrapped_key: &WrappedKey,
    bytes: &[u8],
    what: &str,
) -> Result<Vec<u8>, CryptoError> {
    let rest = bytes
        .strip_prefix(OBJECT_MAGIC.as_slice())
        .ok_or_else(|| CryptoError::Format {
            what: what.to_string(),
            reason: "missing `ALK1` header (not an Airlock object, or truncated)",
        })?;
    let dek = kms
        .unwrap_data_key(wrapped_key, &binding.key_aad())
        .map_err(|e| match e {
            CryptoError::Integrity { .. } => CryptoError::Integrity {
                what: format!("data key of {what}"),
            },
            other => other,
        })?;
    let plaintext =
        open(dek.secret(), rest, &binding.object_aad()).map_err(|_| CryptoError::Integrity {
            what: what.to_string(),
        })?;
    if sha256(&plaintext) != binding.hash {
        return Err(CryptoError::Integrity {
            what: what.to_string(),
        });
    }
    Ok(plaintext)
}

/// AES-256-GCM seal with a random 96-bit nonce: `nonce || ciphertext || tag`.
pub(crate) fn seal(key: &Secret, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let cipher =
        Aes256Gcm::new_from_slice(key.expose_secret()).map_err(|_| CryptoError::Format {
            what: "key".into(),
            reason: "an AES-256 key must be 32 bytes",
        })?;
    let nonce_bytes: [u8; NONCE_LEN] = random_bytes();
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce_bytes),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Integrity {
            what: "encryption".into(),
        })?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Open `nonce || ciphertext || tag`.
pub(crate) fn open(key: &Secret, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Integrity {
            what: "ciphertext".into(),
        });
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let cipher =
        Aes256Gcm::new_from_slice(key.expose_secret()).map_err(|_| CryptoError::Format {
            what: "key".into(),
            reason: "an AES-256 key must be 32 bytes",
        })?;
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| CryptoError::Integrity {
            what: "ciphertext".into(),
        })
}

/// Build a data key from unwrapped bytes.
pub(crate) fn data_key_from(s: Secret) -> Result<DataKey, CryptoError> {
    DataKey::from_secret(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::{KdfParams, Keyring};
    use proptest::prelude::*;

    fn kms() -> crate::LocalKeyManager {
        let (_ring, kms) =
            Keyring::create("correct horse battery", KdfParams::danger_fast_for_tests()).unwrap();
        kms
    }

    fn binding(data: &[u8]) -> Binding {
        Binding {
            zone: Zone::Clinical,
            classification: Classification::Phi,
            hash: sha256(data),
        }
    }

    #[test]
    fn binding_is_enforced() {
        let kms = kms();
        let data = b"patient record";
        let b = binding(data);
        let obj = encrypt_object(&kms, &b, data).unwrap();
        let moved = Binding {
            zone: Zone::Development,
            ..b
        };
        assert!(decrypt_object(&kms, &moved, &obj.wrapped_key, &obj.bytes, "x").is_err());
        let relabelled = Binding {
            classification: Classification::Deidentified,
            ..b
        };
        assert!(decrypt_object(&kms, &relabelled, &obj.wrapped_key, &obj.bytes, "x").is_err());
        assert!(encrypt_object(&kms, &binding(b"other"), data).is_err());
    }

    #[test]
    fn sealing_under_a_recorded_key_opens_with_that_key() {
        let kms = kms();
        let data = b"the same bytes from two writers";
        let b = binding(data);
        let first = encrypt_object(&kms, &b, data).unwrap();
        let second = encrypt_object_with_key(&kms, &b, &first.wrapped_key, data).unwrap();
        assert_eq!(second.wrapped_key, first.wrapped_key);
        // A fresh nonce each time, and either ciphertext opens under the one recorded key.
        assert_ne!(second.bytes, first.bytes);
        for bytes in [&first.bytes, &second.bytes] {
            let back = decrypt_object(&kms, &b, &first.wrapped_key, bytes, "x").unwrap();
            assert_eq!(back, data);
        }
        // The key stays bound to its object, and the content to its address.
        let other = binding(b"other");
        assert!(encrypt_object_with_key(&kms, &other, &first.wrapped_key, b"other").is_err());
        assert!(encrypt_object_with_key(&kms, &b, &first.wrapped_key, b"other").is_err());
    }

    #[test]
    fn errors_name_the_object_and_not_the_data() {
        let kms = kms();
        let data = b"SSN 123-45-6789";
        let b = binding(data);
        let mut obj = encrypt_object(&kms, &b, data).unwrap();
        let last = obj.bytes.len() - 1;
        obj.bytes[last] ^= 1;
        let err = decrypt_object(
            &kms,
            &b,
            &obj.wrapped_key,
            &obj.bytes,
            "objects/clinical/ab",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("objects/clinical/ab"), "{err}");
        assert!(!err.contains("123-45"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let kms = kms();
            let b = binding(&data);
            let obj = encrypt_object(&kms, &b, &data).unwrap();
            let back = decrypt_object(&kms, &b, &obj.wrapped_key, &obj.bytes, "x").unwrap();
            prop_assert_eq!(back, data);
        }

        #[test]
        fn every_single_byte_tamper_is_detected(
            data in proptest::collection::vec(any::<u8>(), 0..256),
            flip in 1u8..=255,
        ) {
            let kms = kms();
            let b = binding(&data);
            let obj = encrypt_object(&kms, &b, &data).unwrap();
            for i in 0..obj.bytes.len() {
                let mut t = obj.bytes.clone();
                t[i] ^= flip;
                prop_assert!(decrypt_object(&kms, &b, &obj.wrapped_key, &t, "x").is_err());
            }
            for i in 0..obj.wrapped_key.sealed.len() {
                let mut w = obj.wrapped_key.clone();
                w.sealed[i] ^= flip;
                prop_assert!(decrypt_object(&kms, &b, &w, &obj.bytes, "x").is_err());
            }
            // Truncation anywhere is detected too.
            for n in 0..obj.bytes.len() {
                prop_assert!(decrypt_object(&kms, &b, &obj.wrapped_key, &obj.bytes[..n], "x").is_err());
            }
        }
    }
}
