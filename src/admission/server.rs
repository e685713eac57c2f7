//! The HTTPS server the apiserver calls: TLS from the [`CertificateStore`] (renewed
//! certificates apply to the next handshake), HTTP/1.1, POST of an AdmissionReview to a
//! webhook path, `GET /healthz` for probes, and registry notifications under `/hooks/`
//! ([`crate::receiver`]). Bodies are size-limited and slow clients time out,
//! so no caller can hold a replica's connections. On shutdown it stops accepting, lets
//! in-flight reviews finish (bounded by [`SHUTDOWN_GRACE`]) and returns.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::Error;
use super::certs::CertificateStore;
use super::handler::{Hook, Webhooks};

/// Largest AdmissionReview accepted: an old and a new ImageStream near etcd's 1.5 MiB limit,
/// plus the envelope.
pub const MAX_BODY_BYTES: usize = 8 << 20;
/// Time a client gets for the TLS handshake, and for sending request headers.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight reviews.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Path of the health probe.
pub const HEALTH_PATH: &str = "/healthz";

/// TLS 1.2/1.3 with aws-lc-rs (explicitly, so no process-wide provider is needed), HTTP/1.1.
pub fn tls_config(certificates: Arc<CertificateStore>) -> Result<ServerConfig, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves the webhooks on `listener` until `shutdown` completes.
pub async fn serve_tls(
    listener: TcpListener,
    certificates: Arc<CertificateStore>,
    webhooks: Arc<Webhooks>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(certificates)?));
    let graceful = GracefulShutdown::new();
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "admission webhooks listening");
    }
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // e.g. out of file descriptors: back off instead of spinning
                    tracing::warn!(error = %e, "accepting a webhook connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // a review is one small request and one small answer: send each at once rather than
        // let Nagle's algorithm hold a segment for the peer's delayed ACK
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "TCP_NODELAY not set");
        }
        let acceptor = acceptor.clone();
        let webhooks = webhooks.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = service_fn(move |request| {
                let webhooks = webhooks.clone();
                async move { Ok::<_, Infallible>(respond(&webhooks, request).await) }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(CLIENT_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %e, "webhook connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("admission webhooks stopped"),
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("admission webhooks stopped with reviews still in flight");
        }
    }
    Ok(())
}

async fn respond(webhooks: &Webhooks, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    if path == HEALTH_PATH {
        return text(StatusCode::OK, "ok");
    }
    if path.starts_with(crate::receiver::auth::PATH_PREFIX)
        && let Some(receivers) = webhooks.receivers()
    {
        return crate::receiver::http::respond(receivers, request).await;
    }
    let Some(hook) = Hook::from_path(&path) else {
        return text(StatusCode::NOT_FOUND, "no webhook at this path");
    };
    if request.method() != Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST an admission.k8s.io/v1 AdmissionReview",
        );
    }
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            tracing::warn!(%path, error = %e, "reading an AdmissionReview failed");
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body could not be read (limit {MAX_BODY_BYTES} bytes): {e}"),
            );
        }
    };
    let answer = webhooks.handle(hook, &body).await;
    let mut response = Response::new(Full::new(Bytes::from(answer)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A plain-text answer (the listener's errors, and the receivers' answers it serves).
pub(crate) fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::AdmissionSettings;
    use crate::admission::access::{Authorizer, Decision};
    use crate::admission::certs::CertificateAuthority;
    use futures::future::BoxFuture;
    use k8s_openapi::api::authentication::v1::UserInfo;
    use k8s_openapi::api::authorization::v1::ResourceAttributes;
    use serde_json::Value;
    use tokio::sync::{oneshot, watch};

    struct Nobody;

    impl Authorizer for Nobody {
        fn review<'a>(
            &'a self,
            _user: &'a UserInfo,
            _attributes: ResourceAttributes,
        ) -> BoxFuture<'a, Result<Decision, kube::Error>> {
            Box::pin(async { Ok(Decision::default()) })
        }
    }

    #[tokio::test]
    async fn serves_reviews_over_tls_and_stops_on_shutdown() {
        let now = jiff::Timestamp::now();
        let day = Duration::from_secs(86_400);
        let ca = CertificateAuthority::generate(now, day).unwrap();
        let serving = ca
            .issue(&["localhost".into(), "127.0.0.1".into()], now, day)
            .unwrap();
        let store = Arc::new(CertificateStore::new(&serving).unwrap());
        let (_tx, settings) = watch::channel(Arc::new(AdmissionSettings::default()));
        let webhooks = Arc::new(Webhooks::new(Nobody, settings));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve_tls(listener, store, webhooks.clone(), async {
            let _ = stopped.await;
        }));

        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap()])
            .build()
            .unwrap();
        let base = format!("https://127.0.0.1:{}", address.port());
        let health = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let missing = client.post(format!("{base}/nope")).send().await.unwrap();
        assert_eq!(missing.status(), 404);
        let get = client
            .get(format!("{base}/mutate/imagestreams"))
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 405);
        let bad = client
            .post(format!("{base}/validate/imagestreams"))
            .body("{\"kind\": 1}")
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 200);
        let review: Value = bad.json().await.unwrap();
        assert_eq!(review["response"]["allowed"], false);
        assert_eq!(review["response"]["status"]["reason"], "BadRequest");
        let huge = client
            .post(format!("{base}/validate/imagestreams"))
            .body(vec![b' '; MAX_BODY_BYTES + 1])
            .send()
            .await
            .unwrap();
        assert_eq!(huge.status(), 413);
        assert_eq!(webhooks.counts(Hook::ValidateImageStreams).requests, 1);

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(15), server)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
        assert!(
            tokio::net::TcpStream::connect(address).await.is_err(),
            "the listener is closed"
        );
    }
}
