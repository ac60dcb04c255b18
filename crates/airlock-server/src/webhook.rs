//! Monitoring alerts' webhook deliveries: one POST per attempt over HTTPS (trusting exactly the
//! certificate the destination was registered with) or plain HTTP to a loopback receiver, with
//! a bounded wait. The service decides what is sent, signs it, retries and records the outcome.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The longest one attempt may take, connection included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// The server's [`airlock_service::alerts::Notifier`].
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpNotifier;

impl airlock_service::alerts::Notifier for HttpNotifier {
    fn post<'a>(
        &'a self,
        url: &'a str,
        ca_pem: Option<&'a str>,
        headers: &'a [(String, String)],
        body: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Result<u16, String>> + Send + 'a>> {
        Box::pin(async move {
            tokio::time::timeout(ATTEMPT_TIMEOUT, post(url, ca_pem, headers, body))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {ATTEMPT_TIMEOUT:?}")))
        })
    }
}

async fn post(
    url: &str,
    ca_pem: Option<&str>,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<u16, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|_| "the URL does not parse".to_string())?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("the URL is neither https nor http".into()),
    };
    let host = uri.host().ok_or("the URL has no host")?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let addr = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| format!("the host does not resolve: {}", e.kind()))?
        .next()
        .ok_or("the host does not resolve")?;
    if !https && !addr.ip().is_loopback() {
        return Err("plain HTTP is for loopback receivers only".into());
    }
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connection failed: {}", e.kind()))?;
    let _ = tcp.set_nodelay(true);
    let mut req = hyper::Request::builder()
        .method("POST")
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header("host", host);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|_| "the request could not be built".to_string())?;
    if https {
        let tls = crate::client::tls_config(ca_pem.ok_or("no certificate to trust")?)
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from(bare.to_string())
            .map_err(|_| "the host is not a valid TLS name".to_string())?;
        let stream = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {}", e.kind()))?;
        send(stream, req).await
    } else {
        send(tcp, req).await
    }
}

async fn send<S>(stream: S, req: hyper::Request<Full<Bytes>>) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| "the HTTP handshake failed".to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender
        .send_request(req)
        .await
        .map_err(|_| "the request was not answered".to_string())?;
    Ok(resp.status().as_u16())
}
