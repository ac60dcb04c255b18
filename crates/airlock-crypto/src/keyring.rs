//! The keyring file, the [`KeyManager`] trait and its local implementation.
//!
//! The keyring is a JSON document with no secret in the clear: master keys are sealed under a
//! key derived from the passphrase with Argon2id, and named keys are sealed under the current
//! master key with their name as associated data. Several master keys may be present during a
//! rotation (the first is current); data keys record which master key wrapped them.

use std::collections::BTreeMap;
use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::envelope::{DataKey, WrappedKey, data_key_from, open, seal};
use crate::{CryptoError, Secret, random_bytes};

/// Shortest passphrase accepted for a new keyring.
pub const MIN_PASSPHRASE_LEN: usize = 12;

/// The id of a master key (16 hex digits, random; not derived from the key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyId(String);

impl KeyId {
    /// Wrap an id read from storage.
    pub fn new(s: String) -> Self {
        KeyId(s)
    }

    fn random() -> Self {
        KeyId(hex::encode(random_bytes::<8>()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The keys a deployment holds besides data keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamedKey {
    /// Ed25519 seed that signs ledger checkpoints and model versions.
    LedgerSigning,
    /// HMAC-SHA256 key for keyed pseudonyms and date shifts.
    Pseudonym,
    /// PKCS#8 PEM private key of the deployment's TLS certificate.
    TlsPrivateKey,
    /// AES-256-GCM key that seals people's TOTP secrets in the metadata database.
    IdentitySeal,
}

impl NamedKey {
    /// Every named key.
    pub const ALL: [NamedKey; 4] = [
        NamedKey::LedgerSigning,
        NamedKey::Pseudonym,
        NamedKey::TlsPrivateKey,
        NamedKey::IdentitySeal,
    ];

    /// The key's name in the keyring.
    pub fn as_str(self) -> &'static str {
        match self {
            NamedKey::LedgerSigning => "ledger-signing",
            NamedKey::Pseudonym => "pseudonym",
            NamedKey::TlsPrivateKey => "tls-private-key",
            NamedKey::IdentitySeal => "identity-seal",
        }
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: above OWASP's Argon2id floor (19 MiB, 2 passes).
    fn default() -> Self {
        KdfParams {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// Tiny parameters for unit tests only: never use for a real deployment.
    pub fn danger_fast_for_tests() -> Self {
        KdfParams {
            m_cost_kib: 256,
            t_cost: 1,
            p_cost: 1,
        }
    }

    fn derive(&self, passphrase: &str, salt: &[u8]) -> Result<Secret, CryptoError> {
        let params = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|_| CryptoError::Kdf)?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut out = vec![0u8; 32];
        argon
            .hash_password_into(passphrase.as_bytes(), salt, &mut out)
            .map_err(|_| CryptoError::Kdf)?;
        Ok(Secret::new(out))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfRecord {
    alg: String,
    #[serde(flatten)]
    params: KdfParams,
    salt: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MasterRecord {
    id: KeyId,
    /// Sealed under the passphrase key, aad = "airlock-master-v1\0<id>".
    sealed: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedRecord {
    kek_id: KeyId,
    /// Sealed under the master key, aad = "airlock-named-v1\0<name>".
    sealed: String,
}

/// The on-disk keyring. Contains no secret in the clear.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keyring {
    format: u32,
    kdf: KdfRecord,
    /// The first is current; others are kept only during a rotation.
    masters: Vec<MasterRecord>,
    keys: BTreeMap<String, NamedRecord>,
    /// Public material that goes with the secrets (verifier keys, certificates).
    pub public: BTreeMap<String, String>,
}

/// What a rotation produced: the keyring to write, and the manager that holds both master keys
/// until every data key has been re-wrapped.
#[derive(Debug)]
pub struct RotationPlan {
    /// Holds the new master key (current) and the old one (to unwrap).
    pub manager: LocalKeyManager,
    /// The keyring with both masters; write it before re-wrapping data keys.
    pub keyring_during: Keyring,
    /// The keyring with only the new master; write it once every data key is re-wrapped.
    pub keyring_after: Keyring,
}

/// Wraps and unwraps data keys and hands out named keys.
///
/// The local implementation holds master keys in memory; a cloud KMS or Vault Transit
/// implementation would send the wrap and unwrap calls to the service instead.
pub trait KeyManager: Send + Sync {
    /// The id of the master key new data keys are wrapped with.
    fn current_kek_id(&self) -> KeyId;
    /// Wrap a data key under the current master key.
    fn wrap_data_key(&self, key: &DataKey, aad: &[u8]) -> Result<WrappedKey, CryptoError>;
    /// Unwrap a data key; fails with an integrity error if it or its aad was altered.
    fn unwrap_data_key(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey, CryptoError>;
    /// A named key's bytes.
    fn named_key(&self, name: NamedKey) -> Result<Secret, CryptoError>;
}

/// The local key manager: master keys unlocked from the keyring by the passphrase.
pub struct LocalKeyManager {
    /// (id, key); the first is current.
    masters: Vec<(KeyId, Secret)>,
    named: BTreeMap<String, Secret>,
}

impl fmt::Debug for LocalKeyManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKeyManager")
            .field(
                "masters",
                &self.masters.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .field("named", &self.named.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn master_aad(id: &KeyId) -> Vec<u8> {
    format!("airlock-master-v1\0{}", id.as_str()).into_bytes()
}

fn named_aad(name: &str) -> Vec<u8> {
    format!("airlock-named-v1\0{name}").into_bytes()
}

fn b64d(s: &str, what: &str) -> Result<Vec<u8>, CryptoError> {
    B64.decode(s).map_err(|_| CryptoError::Keyring {
        reason: format!("`{what}` is not valid base64"),
    })
}

impl Keyring {
    /// Create a keyring with a fresh master key and fresh named keys (ledger signing seed,
    /// pseudonymisation key). TLS material is added by the caller with [`Keyring::put_named`].
    pub fn create(
        passphrase: &str,
        params: KdfParams,
    ) -> Result<(Keyring, LocalKeyManager), CryptoError> {
        if passphrase.chars().count() < MIN_PASSPHRASE_LEN {
            return Err(CryptoError::WeakPassphrase {
                min: MIN_PASSPHRASE_LEN,
            });
        }
        let salt: [u8; 16] = random_bytes();
        let pk = params.derive(passphrase, &salt)?;
        let id = KeyId::random();
        let master = Secret::random(32);
        let sealed = seal(&pk, master.expose_secret(), &master_aad(&id))?;
        let mut ring = Keyring {
            format: 1,
            kdf: KdfRecord {
                alg: "argon2id".into(),
                params,
                salt: B64.encode(salt),
            },
            masters: vec![MasterRecord {
                id: id.clone(),
                sealed: B64.encode(sealed),
            }],
            keys: BTreeMap::new(),
            public: BTreeMap::new(),
        };
        let mut kms = LocalKeyManager {
            masters: vec![(id, master)],
            named: BTreeMap::new(),
        };
        ring.put_named(&mut kms, NamedKey::LedgerSigning, Secret::random(32))?;
        ring.put_named(&mut kms, NamedKey::Pseudonym, Secret::random(32))?;
        ring.put_named(&mut kms, NamedKey::IdentitySeal, Secret::random(32))?;
        Ok((ring, kms))
    }

    /// Seal a named key under the current master key and record it.
    pub fn put_named(
        &mut self,
        kms: &mut LocalKeyManager,
        name: NamedKey,
        key: Secret,
    ) -> Result<(), CryptoError> {
        let (id, master) = kms.current()?;
        let sealed = seal(master, key.expose_secret(), &named_aad(name.as_str()))?;
        self.keys.insert(
            name.as_str().to_string(),
            NamedRecord {
                kek_id: id.clone(),
                sealed: B64.encode(sealed),
            },
        );
        kms.named.insert(name.as_str().to_string(), key);
        Ok(())
    }

    /// Parse a keyring file.
    pub fn from_json(bytes: &[u8]) -> Result<Keyring, CryptoError> {
        let ring: Keyring = serde_json::from_slice(bytes).map_err(|e| CryptoError::Keyring {
            reason: format!(
                "invalid JSON at line {} column {} ({:?})",
                e.line(),
                e.column(),
                e.classify()
            ),
        })?;
        if ring.format != 1 {
            return Err(CryptoError::Keyring {
                reason: format!("unsupported format {}", ring.format),
            });
        }
        if ring.kdf.alg != "argon2id" {
            return Err(CryptoError::Keyring {
                reason: "unsupported key-derivation algorithm".into(),
            });
        }
        if ring.masters.is_empty() {
            return Err(CryptoError::Keyring {
                reason: "no master key".into(),
            });
        }
        Ok(ring)
    }

    /// Serialise to pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Unlock every master key and named key with the passphrase.
    pub fn unlock(&self, passphrase: &str) -> Result<LocalKeyManager, CryptoError> {
        let salt = b64d(&self.kdf.salt, "kdf.salt")?;
        let pk = self.kdf.params.derive(passphrase, &salt)?;
        let mut masters = Vec::with_capacity(self.masters.len());
        for m in &self.masters {
            let sealed = b64d(&m.sealed, "masters.sealed")?;
            let key =
                open(&pk, &sealed, &master_aad(&m.id)).map_err(|_| CryptoError::WrongPassphrase)?;
            masters.push((m.id.clone(), Secret::new(key)));
        }
        let mut kms = LocalKeyManager {
            masters,
            named: BTreeMap::new(),
        };
        for (name, rec) in &self.keys {
            let master = kms.master(&rec.kek_id, name)?;
            let sealed = b64d(&rec.sealed, name)?;
            let key =
                open(master, &sealed, &named_aad(name)).map_err(|_| CryptoError::Integrity {
                    what: format!("keyring entry `{name}`"),
                })?;
            kms.named.insert(name.clone(), Secret::new(key));
        }
        Ok(kms)
    }

    /// The id of the current master key.
    pub fn current_kek_id(&self) -> Option<&KeyId> {
        self.masters.first().map(|m| &m.id)
    }

    /// Plan a rotation to a fresh master key, optionally under a new passphrase.
    ///
    /// Named keys are re-sealed under the new master key at once. Data keys are the caller's to
    /// re-wrap with the returned manager (which can still unwrap under the old key).
    pub fn rotate(
        &self,
        old: &LocalKeyManager,
        new_passphrase: &str,
        params: KdfParams,
    ) -> Result<RotationPlan, CryptoError> {
        if new_passphrase.chars().count() < MIN_PASSPHRASE_LEN {
            return Err(CryptoError::WeakPassphrase {
                min: MIN_PASSPHRASE_LEN,
            });
        }
        let salt: [u8; 16] = random_bytes();
        let pk = params.derive(new_passphrase, &salt)?;
        let new_id = KeyId::random();
        let new_master = Secret::random(32);
        let mut masters = vec![(new_id.clone(), new_master)];
        masters.extend(old.masters.iter().map(|(i, k)| (i.clone(), k.clone())));
        let mut manager = LocalKeyManager {
            masters,
            named: BTreeMap::new(),
        };
        let mut after = Keyring {
            format: 1,
            kdf: KdfRecord {
                alg: "argon2id".into(),
                params,
                salt: B64.encode(salt),
            },
            masters: Vec::new(),
            keys: BTreeMap::new(),
            public: self.public.clone(),
        };
        let mut during_masters = Vec::new();
        for (id, key) in &manager.masters {
            let sealed = seal(&pk, key.expose_secret(), &master_aad(id))?;
            during_masters.push(MasterRecord {
                id: id.clone(),
                sealed: B64.encode(sealed),
            });
        }
        for name in NamedKey::ALL {
            if let Ok(k) = old.named_key(name) {
                after.put_named(&mut manager, name, k)?;
            }
        }
        after.masters = during_masters.iter().take(1).cloned().collect();
        let mut during = after.clone();
        during.masters = during_masters;
        Ok(RotationPlan {
            manager,
            keyring_during: during,
            keyring_after: after,
        })
    }
}

impl LocalKeyManager {
    fn current(&self) -> Result<(&KeyId, &Secret), CryptoError> {
        self.masters
            .first()
            .map(|(i, k)| (i, k))
            .ok_or_else(|| CryptoError::Keyring {
                reason: "no master key".into(),
            })
    }

    fn master(&self, id: &KeyId, what: &str) -> Result<&Secret, CryptoError> {
        self.masters
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, k)| k)
            .ok_or_else(|| CryptoError::UnknownKek {
                what: what.to_string(),
                key_id: id.to_string(),
            })
    }

    /// Drop every master key but the current one (after a rotation completed).
    pub fn retire_old_masters(&mut self) {
        self.masters.truncate(1);
    }

    /// Re-wrap a data key under the current master key (used by rotation).
    pub fn rewrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<WrappedKey, CryptoError> {
        let dk = self.unwrap_data_key(wrapped, aad)?;
        self.wrap_data_key(&dk, aad)
    }
}

impl KeyManager for LocalKeyManager {
    fn current_kek_id(&self) -> KeyId {
        self.masters
            .first()
            .map(|(i, _)| i.clone())
            .unwrap_or_else(|| KeyId::new(String::new()))
    }

    fn wrap_data_key(&self, key: &DataKey, aad: &[u8]) -> Result<WrappedKey, CryptoError> {
        let (id, master) = self.current()?;
        Ok(WrappedKey {
            kek_id: id.clone(),
            sealed: seal(master, key.secret().expose_secret(), aad)?,
        })
    }

    fn unwrap_data_key(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey, CryptoError> {
        let master = self.master(&wrapped.kek_id, "data key")?;
        let bytes = open(master, &wrapped.sealed, aad)?;
        data_key_from(Secret::new(bytes))
    }

    fn named_key(&self, name: NamedKey) -> Result<Secret, CryptoError> {
        self.named
            .get(name.as_str())
            .cloned()
            .ok_or_else(|| CryptoError::MissingKey {
                name: name.as_str().to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASS: &str = "correct horse battery";

    #[test]
    fn create_unlock_and_wrong_passphrase() {
        let (ring, kms) = Keyring::create(PASS, KdfParams::danger_fast_for_tests()).unwrap();
        let json = ring.to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        let seed = kms.named_key(NamedKey::Pseudonym).unwrap();
        assert!(!text.contains(&hex::encode(seed.expose_secret())));
        let ring2 = Keyring::from_json(&json).unwrap();
        let kms2 = ring2.unlock(PASS).unwrap();
        assert_eq!(
            kms2.named_key(NamedKey::Pseudonym).unwrap().expose_secret(),
            seed.expose_secret()
        );
        assert!(matches!(
            ring2.unlock("wrong passphrase!!"),
            Err(CryptoError::WrongPassphrase)
        ));
        assert!(matches!(
            Keyring::create("short", KdfParams::danger_fast_for_tests()),
            Err(CryptoError::WeakPassphrase { .. })
        ));
        assert_eq!(format!("{:?}", seed), "Secret(<redacted>)");
    }

    #[test]
    fn rotation_rewraps_and_keeps_named_keys() {
        let (ring, kms) = Keyring::create(PASS, KdfParams::danger_fast_for_tests()).unwrap();
        let dk = DataKey::generate();
        let w = kms.wrap_data_key(&dk, b"aad").unwrap();
        let plan = ring
            .rotate(
                &kms,
                "a brand new passphrase",
                KdfParams::danger_fast_for_tests(),
            )
            .unwrap();
        let w2 = plan.manager.rewrap(&w, b"aad").unwrap();
        assert_ne!(w2.kek_id, w.kek_id);
        let after = plan.keyring_after.unlock("a brand new passphrase").unwrap();
        assert!(after.unwrap_data_key(&w2, b"aad").is_ok());
        assert!(matches!(
            after.unwrap_data_key(&w, b"aad"),
            Err(CryptoError::UnknownKek { .. })
        ));
        assert_eq!(
            after
                .named_key(NamedKey::LedgerSigning)
                .unwrap()
                .expose_secret(),
            kms.named_key(NamedKey::LedgerSigning)
                .unwrap()
                .expose_secret()
        );
        let during = plan
            .keyring_during
            .unlock("a brand new passphrase")
            .unwrap();
        assert!(during.unwrap_data_key(&w, b"aad").is_ok());
        assert!(plan.keyring_after.unlock(PASS).is_err());
    }

    #[test]
    fn tampered_keyring_is_an_integrity_error() {
        let (ring, _) = Keyring::create(PASS, KdfParams::danger_fast_for_tests()).unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&ring.to_json()).unwrap();
        let s = v["keys"]["pseudonym"]["sealed"]
            .as_str()
            .unwrap()
            .to_string();
        let mut bytes = B64.decode(s).unwrap();
        bytes[20] ^= 1;
        v["keys"]["pseudonym"]["sealed"] = B64.encode(bytes).into();
        let ring2 = Keyring::from_json(&serde_json::to_vec(&v).unwrap()).unwrap();
        let err = ring2.unlock(PASS).unwrap_err();
        assert!(matches!(err, CryptoError::Integrity { .. }), "{err}");
    }
}
