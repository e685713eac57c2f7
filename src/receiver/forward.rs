//! A follower hands a notification to the leader: the request as it came (path, the headers
//! that authenticate and describe it, the body), over HTTPS to the address the leader keeps
//! in its Lease ([`crate::leader::ADDRESS_ANNOTATION`]), trusting only the operator's own CA
//! and checking the certificate for the Service's name. The leader authenticates it again,
//! so a follower vouches for nothing.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::HeaderMap;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::{FORWARDED_HEADER, REPLY_WAIT};
use crate::admission::SecretRef;
use crate::admission::certs::{CA_CERT_KEY, CA_PREVIOUS_KEY};

/// Headers passed on: what authenticates a notification and what its parsing reads.
const PASSED: [&str; 7] = [
    "authorization",
    "content-type",
    "x-hub-signature-256",
    "x-github-event",
    "x-gitlab-token",
    "ce-specversion",
    "ce-type",
];

/// How to find and reach the leader.
#[derive(Clone, Debug)]
pub struct ForwardOptions {
    /// The leader Lease.
    pub lease_namespace: String,
    pub lease_name: String,
    /// A name in the serving certificate (the Service's).
    pub tls_name: String,
    /// The Secret whose CA signs every replica's serving certificate.
    pub ca_secret: SecretRef,
}

/// The leader's address and a client for it, kept a little while.
struct Cached {
    address: String,
    http: reqwest::Client,
    read: Instant,
}

pub struct Forwarder {
    client: kube::Client,
    options: ForwardOptions,
    cached: Mutex<Option<Cached>>,
}

/// How long the leader's address is believed without reading the Lease again.
const ADDRESS_TTL: Duration = Duration::from_secs(2);

impl Forwarder {
    pub fn new(client: kube::Client, options: ForwardOptions) -> Forwarder {
        Forwarder {
            client,
            options,
            cached: Mutex::new(None),
        }
    }

    /// Sends the notification to the leader; its status and body, or why it could not.
    pub async fn forward(
        &self,
        path: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), String> {
        let (address, http) = self.leader().await?;
        let host = match address.parse::<SocketAddr>() {
            Ok(socket) => format!("{}:{}", self.options.tls_name, socket.port()),
            Err(_) => address.clone(),
        };
        let mut request = http.post(format!("https://{host}{path}")).body(body);
        for name in PASSED {
            if let Some(value) = headers.get(name) {
                request = request.header(name, value.as_bytes());
            }
        }
        request = request.header(FORWARDED_HEADER, "1");
        let response = request.send().await.map_err(|e| {
            self.forget();
            format!("the leader at {address} did not answer: {e}")
        })?;
        let status =
            StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let body = response.bytes().await.unwrap_or_default();
        Ok((status, body))
    }

    fn forget(&self) {
        *self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// The leader's address and a client that trusts the operator's CA and resolves the
    /// Service's name to it.
    async fn leader(&self) -> Result<(String, reqwest::Client), String> {
        if let Some(c) = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .filter(|c| c.read.elapsed() < ADDRESS_TTL)
        {
            return Ok((c.address.clone(), c.http.clone()));
        }
        let lease = Api::<Lease>::namespaced(self.client.clone(), &self.options.lease_namespace)
            .get_opt(&self.options.lease_name)
            .await
            .map_err(|e| format!("reading the leader Lease: {e}"))?
            .ok_or("there is no leader Lease")?;
        let held = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_ref())
            .is_some_and(|h| !h.is_empty());
        let address = lease
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::leader::ADDRESS_ANNOTATION))
            .filter(|_| held)
            .cloned()
            .ok_or("no replica leads now")?;
        let http = self.client_for(&address).await?;
        *self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Cached {
            address: address.clone(),
            http: http.clone(),
            read: Instant::now(),
        });
        Ok((address, http))
    }

    async fn client_for(&self, address: &str) -> Result<reqwest::Client, String> {
        let ca = &self.options.ca_secret;
        let secret = Api::<Secret>::namespaced(self.client.clone(), &ca.namespace)
            .get(&ca.name)
            .await
            .map_err(|e| format!("reading the CA Secret {}: {e}", ca.name))?;
        let data = secret.data.unwrap_or_default();
        let mut pem = Vec::new();
        for key in [CA_CERT_KEY, CA_PREVIOUS_KEY] {
            if let Some(bytes) = data.get(key) {
                pem.extend_from_slice(&bytes.0);
                pem.push(b'\n');
            }
        }
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("the CA Secret holds no usable certificate: {e}"))?;
        let mut builder = reqwest::Client::builder()
            .tls_certs_only(certificates)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REPLY_WAIT + Duration::from_secs(5));
        if let Ok(socket) = address.parse::<SocketAddr>() {
            builder = builder.resolve(&self.options.tls_name, socket);
        }
        builder
            .build()
            .map_err(|e| format!("building the client for the leader: {e}"))
    }
}
