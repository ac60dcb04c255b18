//! The encrypted, content-addressed object store.
//!
//! Objects are named by the SHA-256 of their plaintext under `<zone>/<classification>/<hh>/`,
//! so the same bytes stored twice in one zone are stored once. The ciphertext goes to an
//! `object_store` backend (the local file system by default, so S3, GCS or Azure is
//! configuration); the wrapped data key goes to the metadata store, apart from the data, so a
//! copy of the bucket alone decrypts nothing and key rotation never rewrites objects.
//!
//! Concurrent writers of the same content: the metadata row holding the wrapped data key is the
//! arbiter. A put first offers a fresh key (`INSERT ... ON CONFLICT DO NOTHING`), reads back
//! whichever key the database kept, and only then seals the bytes, under that key, and
//! publishes them atomically (a temporary file renamed over the object, or a single object-store
//! put). Every writer therefore publishes a ciphertext the recorded key opens, and whichever
//! lands last is valid; a writer that finds the key recorded and the object already opening
//! under it reuses the object. The earlier order (check, write the file, then insert the key
//! row) let two writers each seal under their own key, one file and the other's row surviving:
//! an object no version could read again. Recording the key before the bytes means a crash can
//! leave a key row without its object; no version names such an object (a version is recorded
//! only after its objects are read back), and the next put of that content publishes it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock_crypto::{
    Binding, DataKey, KeyManager, WrappedKey, decrypt_object, encrypt_object_with_key, sha256,
};
use airlock_types::{Classification, ContentHash, Zone, zone};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::files;
use crate::meta::Meta;

/// A stored object: where it lives and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ObjectRef {
    /// The zone it lives in.
    pub zone: Zone,
    /// Its classification.
    pub classification: Classification,
    /// SHA-256 of the plaintext.
    pub hash: ContentHash,
    /// Plaintext size in bytes.
    pub size: u64,
}

impl ObjectRef {
    fn binding(&self) -> Binding {
        Binding {
            zone: self.zone,
            classification: self.classification,
            hash: self.hash,
        }
    }

    /// The object's path in the backend.
    pub fn path(&self) -> String {
        let hex = self.hash.to_hex();
        let shard = hex.get(..2).unwrap_or("00");
        format!("{}/{}/{}/{}", self.zone, self.classification, shard, hex)
    }
}

/// The object store with encryption on top.
#[derive(Clone)]
pub(crate) struct Objects {
    backend: Arc<dyn ObjectStore>,
    /// Set for the local file system, to fsync what the backend wrote.
    local_root: Option<PathBuf>,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects")
            .field("local_root", &self.local_root)
            .finish_non_exhaustive()
    }
}

impl Objects {
    /// A local file-system store rooted at `root` (created 0700 when missing).
    pub(crate) fn local(root: PathBuf) -> Result<Self, StoreError> {
        if !root.is_dir() {
            if let Some(parent) = root.parent() {
                std::fs::create_dir_all(parent).map_err(StoreError::io(parent))?;
            }
            files::create_private_dir(&root).map_err(StoreError::io(&root))?;
        }
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&root).map_err(|e| {
            StoreError::ObjectStore {
                path: root.display().to_string(),
                reason: e.to_string(),
            }
        })?;
        Ok(Objects {
            backend: Arc::new(fs),
            local_root: Some(root),
        })
    }

    /// Encrypt and store `plaintext` (if not already there), recording its wrapped key. Safe
    /// against any number of concurrent writers of the same content (see the module's docs).
    pub(crate) async fn put(
        &self,
        kms: &dyn KeyManager,
        meta: &Meta,
        zone: Zone,
        classification: Classification,
        plaintext: &[u8],
    ) -> Result<ObjectRef, StoreError> {
        zone::check_residence(zone, classification)?;
        let obj = ObjectRef {
            zone,
            classification,
            hash: sha256(plaintext),
            size: plaintext.len() as u64,
        };
        let binding = obj.binding();
        let recorded = match meta.object_key(&obj).await {
            Err(StoreError::Erased { .. }) => None,
            other => other?,
        };
        let key = match recorded {
            Some(key) => {
                // Reuse only what opens: a key row may outlive a crash before its object was
                // published, and an object written by an older, racy version may not open. Any
                // failure here is repaired by publishing again under the recorded key.
                if self.get_with_key(kms, &obj, &key).await.is_ok() {
                    return Ok(obj);
                }
                key
            }
            None => {
                let offered = kms.wrap_data_key(&DataKey::generate(), &binding.key_aad())?;
                meta.claim_object_key(&obj, &offered).await?
            }
        };
        let sealed = encrypt_object_with_key(kms, &binding, &key, plaintext)?;
        self.publish(&obj.path(), sealed.bytes).await?;
        Ok(obj)
    }

    /// Read an object back and check it opens under its recorded key to its content hash.
    pub(crate) async fn verify(
        &self,
        kms: &dyn KeyManager,
        meta: &Meta,
        obj: &ObjectRef,
    ) -> Result<(), StoreError> {
        self.get(kms, meta, obj).await.map(drop)
    }

    /// Replace the object at `path` with `bytes` in one step: readers see the old object or
    /// the new, never a part of one.
    async fn publish(&self, path: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let Some(root) = &self.local_root else {
            // An object-store put replaces the whole object at once.
            self.backend
                .put(&ObjPath::from(path), PutPayload::from(bytes))
                .await
                .map_err(|e| StoreError::ObjectStore {
                    path: path.to_string(),
                    reason: e.to_string(),
                })?;
            return Ok(());
        };
        // Written here rather than by the backend, to choose the file's mode (0600) and the
        // directories' (0700), and to fsync the file and its directory before returning.
        let root = root.clone();
        let file = root.join(path);
        let target = file.clone();
        tokio::task::spawn_blocking(move || publish_local(&root, &target, &bytes))
            .await
            .map_err(|e| StoreError::Io {
                path: file.clone(),
                source: std::io::Error::other(e.to_string()),
            })?
            .map_err(StoreError::io(&file))
    }

    /// Delete an erased object's ciphertext (already unreadable: its key is destroyed). One
    /// that is gone already is not an error.
    pub(crate) async fn remove(&self, obj: &ObjectRef) -> Result<(), StoreError> {
        let path = obj.path();
        match self.backend.delete(&ObjPath::from(path.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::ObjectStore {
                path,
                reason: e.to_string(),
            }),
        }
    }

    /// Read and decrypt an object under its recorded data key.
    pub(crate) async fn get(
        &self,
        kms: &dyn KeyManager,
        meta: &Meta,
        obj: &ObjectRef,
    ) -> Result<Vec<u8>, StoreError> {
        let wrapped: WrappedKey =
            meta.object_key(obj)
                .await?
                .ok_or_else(|| StoreError::Corrupt {
                    hash: obj.hash.short(),
                    reason: "no data key recorded for it".into(),
                })?;
        self.get_with_key(kms, obj, &wrapped).await
    }

    /// Read and decrypt an object under `wrapped`, checking its binding and content hash.
    async fn get_with_key(
        &self,
        kms: &dyn KeyManager,
        obj: &ObjectRef,
        wrapped: &WrappedKey,
    ) -> Result<Vec<u8>, StoreError> {
        let path = obj.path();
        let bytes = self
            .backend
            .get(&ObjPath::from(path.as_str()))
            .await
            .map_err(|e| StoreError::ObjectStore {
                path: path.clone(),
                reason: e.to_string(),
            })?
            .bytes()
            .await
            .map_err(|e| StoreError::ObjectStore {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        Ok(decrypt_object(
            kms,
            &obj.binding(),
            wrapped,
            &bytes,
            &format!("object `{path}`"),
        )?)
    }
}

/// Publish `bytes` at `file` under `root`: the shard directories 0700, a 0600 temporary file
/// synced and renamed over the object, then the directory synced so the rename is durable.
fn publish_local(root: &Path, file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        files::create_private_dir_all(root, dir)?;
    }
    files::write_atomic_io(file, bytes)
}
