//! HTTPS only: rustls (TLS 1.2 and 1.3, ring provider) with the deployment's certificate, made
//! at `init` and sealed in the keyring, or one configured by the operator.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// TLS set-up failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate or key PEM does not parse.
    #[error("the TLS {what} is not valid PEM")]
    Pem {
        /// `certificate` or `private key`.
        what: &'static str,
    },
    /// The client CA cannot verify client certificates.
    #[error("client CA: {reason}")]
    ClientCa {
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The SHA-256 fingerprint (lowercase hex) of a client's certificate, verified against the
/// configured client CA during the handshake. Handlers see it as a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert(pub String);

/// The SHA-256 fingerprint of the first certificate in a PEM text (to register a service's
/// client certificate).
pub fn fingerprint_pem(cert_pem: &str) -> Result<String, TlsError> {
    let cert = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .next()
        .ok_or(TlsError::Pem {
            what: "certificate",
        })?
        .map_err(|_| TlsError::Pem {
            what: "certificate",
        })?;
    Ok(fingerprint(&cert))
}

fn fingerprint(cert: &CertificateDer<'_>) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(cert.as_ref()))
}

/// A rustls server configuration from PEM text (certificate chain, PKCS#8 key).
pub fn server_config(
    cert_pem: &str,
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_config_mtls(cert_pem, key_pem, None)
}

/// As [`server_config`]; with `client_ca`, clients may also authenticate with a certificate
/// issued by that CA (mutual TLS, for service identities). A client without one still
/// connects and uses a bearer token.
pub fn server_config_mtls(
    cert_pem: &str,
    key_pem: &[u8],
    client_ca: Option<&str>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::Pem {
            what: "certificate",
        })?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsError::Pem {
        what: "private key",
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(c.map_err(|_| TlsError::Pem {
                    what: "client CA certificate",
                })?)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::ClientCa {
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder.with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Bind `addr`.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, TlsError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| TlsError::Bind { addr, source })
}

/// What one server lets its clients hold: time and connections. Every limit bounds what an
/// unauthenticated client can take before it has said who it is.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; the next waits in the kernel's backlog until one closes.
    pub max_connections: usize,
    /// The TLS handshake must complete within this.
    pub handshake: Duration,
    /// Each request's headers must arrive within this; on a kept-alive connection it also
    /// bounds the idle wait for the next request (hyper starts the timer when it starts
    /// waiting for a request).
    pub headers: Duration,
    /// A request's body must arrive whole within this, counted from its headers.
    pub body: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            handshake: Duration::from_secs(10),
            headers: Duration::from_secs(30),
            body: Duration::from_secs(60),
        }
    }
}

/// The client's address, as a request extension (for per-source limits and summaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Logs a repeated error at most once a second, with how many were held back: at the file
/// descriptor limit `accept` fails as fast as it is called, and one line per failure wrote
/// hundreds of megabytes a minute.
#[derive(Debug, Default)]
struct Throttled {
    last: Option<std::time::Instant>,
    held: u64,
}

impl Throttled {
    fn warn(&mut self, what: &str, error: &std::io::Error) {
        let now = std::time::Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.held += 1;
            return;
        }
        tracing::warn!(error = %error, held_back = self.held, "{what}");
        self.last = Some(now);
        self.held = 0;
    }
}

/// Serve `app` over TLS on `listener` until `shutdown` resolves, with the default [`Limits`].
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    serve_with(listener, tls, app, shutdown, Limits::default()).await;
}

/// Serve `app` over TLS on `listener` until `shutdown` resolves, within `limits`.
pub async fn serve_with(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send,
    limits: Limits,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut errors = Throttled::default();
    let mut backoff = Duration::ZERO;
    tokio::pin!(shutdown);
    loop {
        // A slot first: at the limit, new connections wait in the backlog, not in memory.
        let slot = tokio::select! {
            s = Arc::clone(&slots).acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        let (tcp, peer_addr) = match accepted {
            Ok(x) => {
                backoff = Duration::ZERO;
                x
            }
            Err(e) => {
                // Out of descriptors (EMFILE, ENFILE) or memory: accepting again at once fails
                // again at once. Back off, doubling up to a second, until one succeeds.
                errors.warn("accept failed; backing off", &e);
                backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = &mut shutdown => break,
                }
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let stream = match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake timed out");
                    return;
                }
            };
            let peer = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| PeerCert(fingerprint(c)));
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    let mut req = req.map(|b| axum::body::Body::new(Deadline::new(b, limits.body)));
                    req.extensions_mut().insert(PeerAddr(peer_addr));
                    if let Some(p) = &peer {
                        req.extensions_mut().insert(p.clone());
                    }
                    async move { app.oneshot(req).await }
                });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.headers);
            if let Err(e) = http.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// A request body that must arrive whole before a deadline: a client that sends its body a
/// byte at a time holds a connection and a task for as long as it likes otherwise.
struct Deadline<B> {
    inner: B,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<B> Deadline<B> {
    fn new(inner: B, limit: Duration) -> Self {
        Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

/// The body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimeout;

impl<B> hyper::body::Body for Deadline<B>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(f) => Poll::Ready(f.map(|r| r.map_err(Into::into))),
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
