//! The encrypted, content-addressed object store.
//!
//! Objects are named by the SHA-256 of their plaintext under `<zone>/<classification>/<hh>/`,
//! so the same bytes stored twice in one zone are stored once. The ciphertext goes to an
//! `object_store` backend (the local file system by default, so S3, GCS or Azure is
//! configuration); the wrapped data key goes to the metadata store, apart from the data, so a
//! copy of the bucket alone decrypts nothing and key rotation never rewrites objects.

use std::path::PathBuf;
use std::sync::Arc;

use airlock_crypto::{Binding, KeyManager, WrappedKey, decrypt_object, encrypt_object, sha256};
use airlock_types::{Classification, ContentHash, Zone, zone};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::meta::Meta;

/// A stored object: where it lives and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// A local file-system store rooted at `root`.
    pub(crate) fn local(root: PathBuf) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&root).map_err(StoreError::io(&root))?;
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

    /// Encrypt and store `plaintext` (if not already there), recording its wrapped key.
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
        if meta.object_key(&obj).await?.is_some() {
            return Ok(obj);
        }
        let sealed = encrypt_object(kms, &obj.binding(), plaintext)?;
        let path = obj.path();
        self.backend
            .put(
                &ObjPath::from(path.as_str()),
                PutPayload::from(sealed.bytes),
            )
            .await
            .map_err(|e| StoreError::ObjectStore {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        self.sync(&path)?;
        meta.insert_object(&obj, &sealed.wrapped_key).await?;
        Ok(obj)
    }

    /// Read and decrypt an object, checking the zone rules for a reader in `reader_zone`.
    pub(crate) async fn get(
        &self,
        kms: &dyn KeyManager,
        meta: &Meta,
        obj: &ObjectRef,
    ) -> Result<Vec<u8>, StoreError> {
        let path = obj.path();
        let wrapped: WrappedKey =
            meta.object_key(obj)
                .await?
                .ok_or_else(|| StoreError::Corrupt {
                    hash: obj.hash.short(),
                    reason: "no data key recorded for it".into(),
                })?;
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
            &wrapped,
            &bytes,
            &format!("object `{path}`"),
        )?)
    }

    /// fsync a file the local backend wrote, and its directory.
    fn sync(&self, path: &str) -> Result<(), StoreError> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let file = root.join(path);
        std::fs::File::open(&file)
            .and_then(|f| f.sync_all())
            .map_err(StoreError::io(&file))?;
        if let Some(dir) = file.parent() {
            std::fs::File::open(dir)
                .and_then(|f| f.sync_all())
                .map_err(StoreError::io(dir))?;
        }
        Ok(())
    }
}
