//! The HTTP layer under [`RegistryClient`](super::RegistryClient): reqwest clients per TLS
//! setting, the address guard in DNS resolution, and what a failed connection means.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::error::RegistryError;
use super::policy::blocked_ip_reason;

/// A connection target the guard refused.
#[derive(Debug, thiserror::Error)]
pub(crate) struct BlockedAddress {
    pub host: String,
    pub ip: IpAddr,
    pub reason: &'static str,
}

impl std::fmt::Display for BlockedAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (ip, reason) = (self.ip, self.reason);
        if self.host == ip.to_string() {
            write!(f, "{ip} is {reason}, which registry requests may not reach")
        } else {
            let host = &self.host;
            write!(
                f,
                "{host} resolves to {ip}, {reason}, which registry requests may not reach"
            )
        }
    }
}

/// DNS resolution that drops link-local, metadata and unspecified addresses (and fails when
/// nothing else is left), so neither a registry name nor a redirect target can point a
/// request at them. `overrides` pin names to addresses (tests, split-horizon setups); they
/// are guarded too.
///
/// With an HTTP(S) proxy in the environment, this resolves the proxy's name and the proxy
/// resolves the registry's; literal-IP URLs are still checked before sending
/// ([`check_literal_host`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct GuardedResolver {
    overrides: Arc<HashMap<String, Vec<IpAddr>>>,
}

impl GuardedResolver {
    pub fn new(overrides: &HashMap<String, Vec<IpAddr>>) -> Self {
        GuardedResolver {
            overrides: Arc::new(
                overrides
                    .iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect(),
            ),
        }
    }

    async fn lookup(
        &self,
        host: String,
    ) -> Result<Vec<SocketAddr>, Box<dyn StdError + Send + Sync>> {
        let addrs: Vec<SocketAddr> = match self.overrides.get(&host.to_ascii_lowercase()) {
            Some(ips) => ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect(),
            None => {
                let name = host.clone();
                tokio::task::spawn_blocking(move || {
                    (name.as_str(), 0).to_socket_addrs().map(Iterator::collect)
                })
                .await??
            }
        };
        let mut first_blocked = None;
        let allowed: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| match blocked_ip_reason(a.ip()) {
                Some(reason) => {
                    first_blocked.get_or_insert((a.ip(), reason));
                    false
                }
                None => true,
            })
            .collect();
        match (allowed.is_empty(), first_blocked) {
            (true, Some((ip, reason))) => Err(Box::new(BlockedAddress { host, ip, reason })),
            _ => Ok(allowed),
        }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = this.lookup(host).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Refuses a URL whose host is a literal blocked address (the resolver never sees those).
pub(crate) fn check_literal_host(url: &reqwest::Url) -> Result<(), BlockedAddress> {
    // the URL parser normalises IPv4 spellings (`0x7f.1`), and brackets IPv6 hosts
    let host = url.host_str().unwrap_or("");
    let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    else {
        return Ok(());
    };
    match blocked_ip_reason(ip) {
        Some(reason) => Err(BlockedAddress {
            host: ip.to_string(),
            ip,
            reason,
        }),
        None => Ok(()),
    }
}

/// One reqwest client for a TLS setting: no automatic redirects (we follow them ourselves to
/// keep credentials on the registry's host), the guarded resolver, proxies from the
/// environment (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`; reqwest's default), and either no
/// certificate verification (insecure) or the system roots plus `ca_bundle`.
pub(crate) fn build_http_client(
    insecure: bool,
    ca_bundle: Option<&[u8]>,
    resolver: GuardedResolver,
    user_agent: &str,
) -> Result<reqwest::Client, RegistryError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(resolver)
        .user_agent(user_agent.to_string())
        .pool_idle_timeout(std::time::Duration::from_secs(60));
    if insecure {
        builder = builder.tls_danger_accept_invalid_certs(true);
    } else if let Some(pem) = ca_bundle {
        let certs =
            reqwest::Certificate::from_pem_bundle(pem).map_err(|e| RegistryError::Config {
                detail: format!("the CA bundle cannot be read: {e}"),
            })?;
        if certs.is_empty() {
            return Err(RegistryError::Config {
                detail: "the CA bundle holds no PEM certificate".into(),
            });
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(|e| RegistryError::Config {
        detail: format!("building the HTTP client: {e}"),
    })
}

/// The errors behind `err`, outermost first, looking inside `io::Error`s (whose `source()`
/// skips the wrapped error).
fn chain<'a>(err: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        out.push(e);
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
        if out.len() > 32 {
            break;
        }
    }
    out
}

/// The guard's refusal inside a send error, if that is what failed.
pub(crate) fn blocked_address(err: &reqwest::Error) -> Option<&BlockedAddress> {
    chain(err)
        .into_iter()
        .find_map(|e| e.downcast_ref::<BlockedAddress>())
}

/// Whether a TLS connection failed because the server answered in plain HTTP: rustls sees
/// `HTTP/1.x …` where a TLS record header belongs (Go's client says "server gave HTTP
/// response to HTTPS client"; upstream matched "tls: oversized record received").
pub(crate) fn is_http_only_server(err: &reqwest::Error) -> bool {
    chain(err).into_iter().any(|e| {
        matches!(
            e.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
                    | rustls::InvalidMessage::UnknownProtocolVersion
                    | rustls::InvalidMessage::MessageTooLarge
            ))
        )
    })
}

/// Whether the server's certificate was refused (unknown issuer, wrong name, expired): a
/// configuration problem that another attempt will not fix.
pub(crate) fn is_certificate_error(err: &reqwest::Error) -> bool {
    chain(err).into_iter().any(|e| {
        matches!(
            e.downcast_ref::<rustls::Error>(),
            Some(
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::UnsupportedNameType
            )
        )
    })
}

/// A one-line description of a send error, without URLs (they may carry signed queries).
pub(crate) fn describe(err: &reqwest::Error) -> String {
    let what = if err.is_connect() {
        "connection failed"
    } else if err.is_timeout() {
        "timed out"
    } else if err.is_body() || err.is_decode() {
        "reading the response failed"
    } else if err.is_redirect() {
        "redirect failed"
    } else {
        "request failed"
    };
    let cause = chain(err)
        .into_iter()
        .skip(1)
        .last()
        .map(ToString::to_string);
    let mut s = match cause {
        Some(c) if !c.is_empty() => format!("{what}: {c}"),
        _ => what.to_string(),
    };
    super::protocol::truncate(&mut s, 300);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolver_drops_blocked_addresses_and_fails_when_none_are_left() {
        let overrides: HashMap<String, Vec<IpAddr>> = [
            ("metadata.test", vec!["169.254.169.254".parse().unwrap()]),
            (
                "mixed.test",
                vec!["fe80::1".parse().unwrap(), "127.0.0.1".parse().unwrap()],
            ),
            ("ok.test", vec!["10.0.0.1".parse().unwrap()]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let r = GuardedResolver::new(&overrides);
        let err = r.lookup("Metadata.Test".into()).await.unwrap_err();
        let blocked = err.downcast_ref::<BlockedAddress>().unwrap();
        assert_eq!(blocked.ip.to_string(), "169.254.169.254");
        assert_eq!(
            err.to_string(),
            "Metadata.Test resolves to 169.254.169.254, a cloud metadata address, which registry requests may not reach"
        );
        let mixed = r.lookup("mixed.test".into()).await.unwrap();
        assert_eq!(mixed, vec!["127.0.0.1:0".parse().unwrap()]);
        assert_eq!(r.lookup("ok.test".into()).await.unwrap().len(), 1);
        // the system resolver answers for localhost
        assert!(!r.lookup("localhost".into()).await.unwrap().is_empty());
    }

    #[test]
    fn literal_hosts_are_checked() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(check_literal_host(&url("http://169.254.169.254/latest")).is_err());
        assert!(check_literal_host(&url("http://[fe80::1]:5000/v2/")).is_err());
        assert!(check_literal_host(&url("http://0.0.0.0:5000/v2/")).is_err());
        assert!(check_literal_host(&url("http://127.0.0.1:5000/v2/")).is_ok());
        assert!(check_literal_host(&url("https://quay.io/v2/")).is_ok());
    }
}
