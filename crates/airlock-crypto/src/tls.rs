//! Self-signed TLS material for local deployments.

use std::fmt;

use crate::{CryptoError, Secret};

/// A certificate and its private key, both PEM.
pub struct TlsIdentity {
    /// The certificate (public).
    pub cert_pem: String,
    /// The PKCS#8 private key (secret).
    pub key_pem: Secret,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert_pem_len", &self.cert_pem.len())
            .finish_non_exhaustive()
    }
}

/// A self-signed certificate for the given DNS names (e.g. `localhost`).
pub fn generate_tls_identity(names: &[&str]) -> Result<TlsIdentity, CryptoError> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let ck = rcgen::generate_simple_self_signed(names).map_err(|_| CryptoError::Tls)?;
    Ok(TlsIdentity {
        cert_pem: ck.cert.pem(),
        key_pem: Secret::new(ck.signing_key.serialize_pem().into_bytes()),
    })
}
