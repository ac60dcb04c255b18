//! A small HTTPS client for Airlock's own API: the end-to-end tests, the load benchmark, the
//! demo and `airlock audit witness` (a witness served by another deployment) use it. One
//! keep-alive HTTP/1.1 connection over rustls, trusting exactly the certificates given (the
//! deployment's own, or the CA that issued it).

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Client failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The trusted certificate does not parse.
    #[error("the server certificate is not valid PEM")]
    Pem,
    /// TLS configuration or handshake.
    #[error("TLS: {0}")]
    Tls(String),
    /// Connecting or talking.
    #[error("connection: {0}")]
    Io(String),
    /// The answer's body is longer than the caller accepts.
    #[error("the answer's body is longer than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

/// A client connection. A connection the server closed (its idle limit passed while the
/// caller did other work) is opened again before the next request.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// A response: status, media type and body bytes.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The `Content-Type` header, when there is one and it is text.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A TLS client configuration trusting only `cert_pem`.
pub fn tls_config(cert_pem: &str) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    tls_config_with_identity(cert_pem, None)
}

/// As [`tls_config`], presenting a client certificate chain and key (PEM) for mutual TLS.
pub fn tls_config_with_identity(
    cert_pem: &str,
    identity: Option<(&str, &[u8])>,
) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots
            .add(c.map_err(|_| ClientError::Pem)?)
            .map_err(|e| ClientError::Tls(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let cfg = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(chain.as_bytes())
                    .collect::<Result<_, _>>()
                    .map_err(|_| ClientError::Pem)?;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key)
                .map_err(|_| ClientError::Pem)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::Tls(e.to_string()))?
        }
    };
    Ok(Arc::new(cfg))
}

impl Client {
    /// Connect to `addr`, checking the certificate against `server_name`.
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Client, ClientError> {
        Ok(Client {
            sender: Self::open(addr, server_name, Arc::clone(&tls)).await?,
            host: server_name.to_string(),
            addr,
            tls,
        })
    }

    async fn open(
        addr: SocketAddr,
        server_name: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Io(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let stream = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Io(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Send one request.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, ClientError> {
        let bytes = body.map(|v| Bytes::from(serde_json::to_vec(v).unwrap_or_default()));
        self.send_bytes(method, path, headers, bytes).await
    }

    /// Send one request whose JSON body is already serialised (a load generator sends the
    /// same body many times).
    pub async fn send_bytes(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Reply, ClientError> {
        let body = body.map(|b| ("application/json", b));
        self.request(method, path, headers, body, None).await
    }

    /// Send one request, with a body of any media type (`(content type, bytes)`: a signed
    /// note, a C2SP tlog-witness request), reading at most `max_body` bytes of the answer: a
    /// server that is only partly trusted (another deployment) cannot make the caller buffer
    /// without bound.
    pub async fn send_typed(
        &mut self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        max_body: usize,
    ) -> Result<Reply, ClientError> {
        let body = body.map(|(content_type, b)| (content_type, Bytes::from(b)));
        self.request(method, path, &[], body, Some(max_body)).await
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Bytes)>,
        max_body: Option<usize>,
    ) -> Result<Reply, ClientError> {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let bytes = match body {
            Some((content_type, bytes)) => {
                b = b.header("content-type", content_type);
                bytes
            }
            None => Bytes::new(),
        };
        let req = b
            .body(Full::new(bytes))
            .map_err(|e| ClientError::Io(e.to_string()))?;
        if self.sender.is_closed() || self.sender.ready().await.is_err() {
            self.sender = Self::open(self.addr, &self.host, Arc::clone(&self.tls)).await?;
            self.sender
                .ready()
                .await
                .map_err(|e| ClientError::Io(e.to_string()))?;
        }
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Io(e.to_string()))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.into_body();
        let body = match max_body {
            None => body
                .collect()
                .await
                .map_err(|e| ClientError::Io(e.to_string()))?,
            Some(limit) => http_body_util::Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        ClientError::TooLarge { limit }
                    } else {
                        ClientError::Io(e.to_string())
                    }
                })?,
        }
        .to_bytes()
        .to_vec();
        Ok(Reply {
            status,
            content_type,
            body,
        })
    }
}
