//! [`RegistryClient`]: the operations, authentication, redirects, retries and limits.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable as _};
use bytes::{Bytes, BytesMut};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::{RegistryError, UnauthorizedKind};
use super::policy::{Transport, wildcard_match};
use super::protocol::{self, Challenge};
use super::quota::{Observed, Quota, Quotas};
use super::transport::{self, GuardedResolver};
use super::{
    BasicCredentials, MAX_MANIFEST_BYTES, MAX_TAG_PAGE_BYTES, Manifest, ManifestHead, PathKind,
    RegistryConfig, endpoint_host,
};

/// Largest token-server answer accepted.
const MAX_TOKEN_BYTES: usize = 1 << 20;
/// How much of an error or discarded body is read.
const MAX_DISCARD_BYTES: usize = 64 << 10;
/// Token lifetime when the token server does not say (the token spec's default).
const DEFAULT_TOKEN_SECONDS: u64 = 60;
/// The credential label of a client without credentials.
pub const ANONYMOUS: &str = "anonymous";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// State shared by every client of one configuration: the settings, the resolver and the
/// per-registry concurrency limits (shared, so many clients do not multiply the limit).
pub(crate) struct Shared {
    pub(crate) config: RegistryConfig,
    resolver: GuardedResolver,
    semaphores: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Per registry: no request before this instant (a 429's `Retry-After`).
    hold_off: Mutex<HashMap<String, Instant>>,
    /// The last quota each registry announced, per credential.
    quotas: Mutex<Quotas>,
}

impl Shared {
    pub(crate) fn new(config: RegistryConfig) -> Arc<Shared> {
        Arc::new(Shared {
            resolver: GuardedResolver::new(&config.dns_overrides),
            config,
            semaphores: Mutex::new(HashMap::new()),
            hold_off: Mutex::new(HashMap::new()),
            quotas: Mutex::new(Quotas::default()),
        })
    }

    /// The last quota `registry` announced to `credential`'s clients.
    pub(crate) fn quota(&self, registry: &str, credential: &str) -> Option<Observed> {
        lock(&self.quotas).get(registry, credential)
    }

    /// Waits until the registry's `Retry-After` (if any) has passed.
    async fn wait_hold_off(&self, endpoint: &str) {
        loop {
            let until = lock(&self.hold_off).get(endpoint).copied();
            match until {
                Some(until) if until > Instant::now() => {
                    tokio::time::sleep_until(until.into()).await;
                }
                _ => return,
            }
        }
    }

    /// A 429 asked for `delay`: no request to the registry before it has passed.
    fn hold_off(&self, endpoint: &str, delay: Duration) {
        let now = Instant::now();
        let until = now + delay;
        let mut hold_off = lock(&self.hold_off);
        hold_off.retain(|_, t| *t > now);
        let entry = hold_off.entry(endpoint.to_string()).or_insert(until);
        *entry = (*entry).max(until);
    }

    fn limit_for(&self, endpoint: &str) -> usize {
        let (host, _) = super::policy::split_host_port(endpoint);
        self.config
            .concurrency_overrides
            .iter()
            .find(|(pattern, _)| wildcard_match(endpoint, pattern) || wildcard_match(host, pattern))
            .map_or(self.config.max_concurrent_per_registry, |(_, n)| *n)
            .max(1)
    }

    async fn permit(&self, endpoint: &str) -> Option<OwnedSemaphorePermit> {
        let semaphore = lock(&self.semaphores)
            .entry(endpoint.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.limit_for(endpoint))))
            .clone();
        semaphore.acquire_owned().await.ok()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Https,
    Http,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// Where a registry's Bearer tokens come from.
#[derive(Clone, Debug, PartialEq, Eq)]
struct BearerChallenge {
    realm: String,
    service: Option<String>,
}

/// What a client learnt about registries (by endpoint host).
#[derive(Default)]
struct Learnt {
    schemes: HashMap<String, Scheme>,
    bearer: HashMap<String, BearerChallenge>,
    basic: HashSet<String>,
}

#[derive(Clone)]
struct CachedToken {
    header: HeaderValue,
    refresh_at: Instant,
}

/// One (registry, repository) token; the async mutex makes concurrent refreshes wait for one
/// token request instead of each making their own.
type TokenSlot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

/// What goes in an `Authorization` header.
#[derive(Clone)]
enum Authorization {
    /// The client's Basic credentials.
    Basic,
    /// `Bearer <token>` (marked sensitive).
    Bearer(HeaderValue),
}

/// One operation: which registry and repository, and how to name it in messages.
struct Call<'a> {
    /// As the caller wrote it (messages, policy, metrics).
    registry: &'a str,
    /// The host actually contacted.
    endpoint: &'a str,
    repository: &'a str,
    /// `registry/repository[:tag|@digest]`.
    image: String,
    kind: PathKind,
    /// Put in front of status details (`blob sha256:…: `).
    context: String,
}

/// A response after redirects, and whether it came from the host our credentials are for
/// (only its 401s start the authentication dance).
struct Followed {
    response: Response,
    at_auth_origin: bool,
}

enum FollowError {
    /// The first hop failed to send (the caller may try the other scheme).
    FirstHop(reqwest::Error),
    Failed(RegistryError),
}

/// A client for one credential set and one TLS setting. Cheap to share (`Arc`); all methods
/// take `&self`. See the [module docs](super) for what it guarantees.
pub struct RegistryClient {
    shared: Arc<Shared>,
    http: reqwest::Client,
    credentials: Option<BasicCredentials>,
    /// The credential set's identity, for quotas (`anonymous` without one).
    credential: String,
    insecure: bool,
    learnt: Mutex<Learnt>,
    tokens: Mutex<HashMap<(String, String), TokenSlot>>,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient")
            .field("credentials", &self.credentials)
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A standalone client with its own concurrency limits. In the operator use a
    /// [`ClientCache`](super::ClientCache), whose clients share them.
    pub fn new(
        config: RegistryConfig,
        credentials: Option<BasicCredentials>,
        insecure: bool,
        ca_bundle: Option<&[u8]>,
    ) -> Result<RegistryClient, RegistryError> {
        RegistryClient::with_shared(Shared::new(config), credentials, insecure, ca_bundle, "")
    }

    pub(crate) fn with_shared(
        shared: Arc<Shared>,
        credentials: Option<BasicCredentials>,
        insecure: bool,
        ca_bundle: Option<&[u8]>,
        credential: &str,
    ) -> Result<RegistryClient, RegistryError> {
        let http = transport::build_http_client(
            insecure,
            ca_bundle,
            shared.resolver.clone(),
            &shared.config.user_agent,
        )?;
        let credential = if credential.is_empty() {
            ANONYMOUS.to_string()
        } else {
            credential.to_string()
        };
        Ok(RegistryClient {
            shared,
            http,
            credentials,
            credential,
            insecure,
            learnt: Mutex::new(Learnt::default()),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// Whether this client skips certificate verification and falls back to HTTP.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// Whether this client has credentials.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// The last quota `registry` announced to this client's credential set.
    pub fn quota(&self, registry: &str) -> Option<Observed> {
        self.shared.quota(registry, &self.credential)
    }

    /// Keeps the quota a manifest response announced (`ratelimit-limit` and
    /// `ratelimit-remaining`), and tells the observer.
    fn note_quota(&self, call: &Call<'_>, headers: &HeaderMap) {
        let Some(quota) = Quota::from_headers(
            header_str(headers, "ratelimit-limit"),
            header_str(headers, "ratelimit-remaining"),
        ) else {
            return;
        };
        lock(&self.shared.quotas).record(call.registry, &self.credential, quota, Instant::now());
        if let Some(observer) = &self.shared.config.observer {
            observer.on_quota(call.registry, &self.credential, &quota);
        }
    }

    // ------------------------------------------------------------ operations ---

    /// HEAD of a manifest by tag or digest, with the full Accept list. Never a GET: a
    /// registry that sends no `Docker-Content-Digest` for a tag is an error (the caller
    /// decides whether a GET is worth it).
    pub async fn head_manifest(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
    ) -> Result<ManifestHead, RegistryError> {
        let call = self.prepare(registry, repository, Some(reference), PathKind::Manifest)?;
        let path = format!("/v2/{repository}/manifests/{reference}");
        let accept = protocol::manifest_accept();
        self.with_retries(&call, || {
            let (call, path, accept) = (&call, &path, &accept);
            async move {
                let response = self.send(call, Method::HEAD, path, Some(accept)).await?;
                self.note_quota(call, response.headers());
                head_from(call, reference, response.headers())
            }
        })
        .await
    }

    /// GET of a manifest by tag or digest, with the full Accept list; at most
    /// [`MAX_MANIFEST_BYTES`], digest verified against the request and the registry's
    /// `Docker-Content-Digest`, media type from `Content-Type` or else the body.
    pub async fn get_manifest(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
    ) -> Result<Manifest, RegistryError> {
        let call = self.prepare(registry, repository, Some(reference), PathKind::Manifest)?;
        let path = format!("/v2/{repository}/manifests/{reference}");
        let accept = protocol::manifest_accept();
        self.with_retries(&call, || {
            let (call, path, accept) = (&call, &path, &accept);
            async move {
                let response = self.send(call, Method::GET, path, Some(accept)).await?;
                let headers = response.headers().clone();
                self.note_quota(call, &headers);
                let bytes = read_limited(call, response, MAX_MANIFEST_BYTES, "manifest").await?;
                manifest_from(call, reference, &headers, bytes)
            }
        })
        .await
    }

    /// GET of a blob (an image config) by digest, at most `limit` bytes, digest verified.
    /// Redirects (to a CDN, say) are followed; credentials stay with the registry's host.
    pub async fn get_blob(
        &self,
        registry: &str,
        repository: &str,
        digest: &str,
        limit: usize,
    ) -> Result<Bytes, RegistryError> {
        let mut call = self.prepare(registry, repository, None, PathKind::Blob)?;
        let Some(algorithm) = protocol::parse_digest(digest) else {
            return Err(RegistryError::Invalid {
                image: call.image,
                detail: format!("{digest:?} is not a valid blob digest"),
            });
        };
        call.context = format!("blob {digest}: ");
        let path = format!("/v2/{repository}/blobs/{digest}");
        self.with_retries(&call, || {
            let (call, path) = (&call, &path);
            async move {
                let response = self.send(call, Method::GET, path, None).await?;
                let bytes = read_limited(call, response, limit, "blob").await?;
                let actual = algorithm.digest(&bytes);
                if actual != digest {
                    return Err(RegistryError::DigestMismatch {
                        image: call.image.clone(),
                        what: "blob",
                        expected: digest.to_string(),
                        actual,
                    });
                }
                Ok(bytes)
            }
        })
        .await
    }

    /// GET of the OCI referrers index of `digest` (`/v2/<repo>/referrers/<digest>`), at most
    /// [`MAX_MANIFEST_BYTES`]: the same limits, retries and budgets as a manifest. A registry
    /// without the API answers `NotFound`. The body is returned unparsed; only the first page.
    pub async fn get_referrers(
        &self,
        registry: &str,
        repository: &str,
        digest: &str,
    ) -> Result<Bytes, RegistryError> {
        let mut call = self.prepare(registry, repository, Some(digest), PathKind::Referrers)?;
        if !protocol::is_digest_reference(digest) {
            return Err(RegistryError::Invalid {
                image: call.image,
                detail: format!("{digest:?} is not a digest"),
            });
        }
        call.context = format!("referrers of {digest}: ");
        let path = format!("/v2/{repository}/referrers/{digest}");
        self.with_retries(&call, || {
            let (call, path) = (&call, &path);
            async move {
                let response = self
                    .send(call, Method::GET, path, Some(protocol::OCI_INDEX))
                    .await?;
                self.note_quota(call, response.headers());
                read_limited(call, response, MAX_MANIFEST_BYTES, "referrers index").await
            }
        })
        .await
    }

    /// Every tag of a repository, in the registry's order, following `Link: <…>; rel="next"`
    /// pages (at most [`RegistryConfig::max_tag_pages`]; a registry that ignores `last` and
    /// serves the same page again ends the listing).
    pub async fn list_tags(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }

        let call = self.prepare(registry, repository, None, PathKind::Tags)?;
        let mut tags = Vec::new();
        let mut seen = HashSet::new();
        let mut visited = HashSet::new();
        let mut next = Some(format!("/v2/{repository}/tags/list"));
        let mut pages = 0;
        while let Some(path) = next.take() {
            if pages >= self.shared.config.max_tag_pages {
                tracing::warn!(
                    registry = %call.registry,
                    repository = %call.repository,
                    pages,
                    tags = tags.len(),
                    "tag list truncated: too many pages"
                );
                break;
            }
            pages += 1;
            visited.insert(path.clone());
            let (page, link) = self
                .with_retries(&call, || {
                    let (call, path) = (&call, &path);
                    async move {
                        let response = self
                            .send(call, Method::GET, path, Some("application/json"))
                            .await?;
                        let link = response
                            .headers()
                            .get_all(header::LINK)
                            .iter()
                            .filter_map(|v| v.to_str().ok())
                            .find_map(protocol::parse_next_link);
                        let url = response.url().clone();
                        let body =
                            read_limited(call, response, MAX_TAG_PAGE_BYTES, "tag list").await?;
                        let page: Page = serde_json::from_slice(&body).map_err(|e| {
                            RegistryError::Malformed {
                                image: call.image.clone(),
                                what: "tag list",
                                detail: e.to_string(),
                            }
                        })?;
                        let link = link.map(|l| same_origin_path(call, &url, &l)).transpose()?;
                        Ok((page, link))
                    }
                })
                .await?;
            let before = tags.len();
            for tag in page.tags.unwrap_or_default() {
                if seen.insert(tag.clone()) {
                    tags.push(tag);
                }
            }
            next = link.filter(|l| tags.len() > before && !visited.contains(l));
        }
        Ok(tags)
    }

    // ------------------------------------------------------------- the frame ---

    /// Validates the names, applies the registry policy and names the operation.
    fn prepare<'a>(
        &self,
        registry: &'a str,
        repository: &'a str,
        reference: Option<&str>,
        kind: PathKind,
    ) -> Result<Call<'a>, RegistryError> {
        let image = match reference {
            Some(r) if protocol::is_digest_reference(r) => format!("{registry}/{repository}@{r}"),
            Some(r) => format!("{registry}/{repository}:{r}"),
            None => format!("{registry}/{repository}"),
        };
        let invalid = |detail: String| RegistryError::Invalid {
            image: image.clone(),
            detail,
        };
        if !protocol::is_valid_registry(registry) {
            return Err(invalid(format!("{registry:?} is not a registry host")));
        }
        if !protocol::is_valid_repository(repository) {
            return Err(invalid(format!("{repository:?} is not a repository name")));
        }
        if let Some(r) = reference {
            if protocol::is_digest_reference(r) {
                if protocol::parse_digest(r).is_none() {
                    return Err(invalid(format!("{r:?} is not a valid digest")));
                }
            } else if !protocol::is_valid_tag(r) {
                return Err(invalid(format!("{r:?} is not a valid tag")));
            }
        }
        let config = &self.shared.config;
        if let Some(pattern) = config.blocked.blocking(registry) {
            return Err(RegistryError::Forbidden {
                message: format!(
                    "forbidden: registry {registry} blocked (matches the blocked registry {pattern:?})"
                ),
            });
        }
        if let Some(allowed) = &config.allowed {
            let transport = if self.insecure {
                Transport::Insecure
            } else {
                Transport::Secure
            };
            if let Err(not_allowed) = allowed.admit(registry, transport) {
                return Err(RegistryError::Forbidden {
                    message: not_allowed.import_forbidden_message(),
                });
            }
        }
        Ok(Call {
            registry,
            endpoint: endpoint_host(registry),
            repository,
            image,
            kind,
            context: String::new(),
        })
    }

    /// Runs `op` with the per-registry concurrency limit and the total timeout per attempt,
    /// retrying transient failures with exponential backoff (or the 429's `Retry-After`).
    async fn with_retries<T, F, Fut>(&self, call: &Call<'_>, mut op: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let config = &self.shared.config;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(config.min_backoff)
            .with_max_delay(config.max_backoff.max(config.min_backoff))
            .with_max_times(config.max_retries)
            .with_jitter();
        let attempt = || {
            let fut = op();
            async move {
                // a Retry-After holds back every request to the registry, not just this one
                self.shared.wait_hold_off(call.endpoint).await;
                let _permit = self.shared.permit(call.endpoint).await;
                let result = match tokio::time::timeout(config.timeout, fut).await {
                    Ok(result) => result,
                    Err(_) => Err(RegistryError::Timeout {
                        image: call.image.clone(),
                        registry: call.registry.to_string(),
                        after: config.timeout,
                    }),
                };
                if let Some(asked) = result.as_ref().err().and_then(RegistryError::retry_after) {
                    self.shared
                        .hold_off(call.endpoint, asked.min(config.max_retry_after));
                }
                result
            }
        };
        attempt
            .retry(backoff)
            .when(RegistryError::is_transient)
            .adjust(|err, next| {
                next.map(|delay| {
                    err.retry_after()
                        .map_or(delay, |asked| asked.min(config.max_retry_after))
                })
            })
            .notify(|err, delay| {
                tracing::debug!(
                    registry = %call.registry,
                    repository = %call.repository,
                    reason = err.reason(),
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "retrying registry request"
                );
            })
            .await
    }

    // ------------------------------------------------------------------ auth ---

    /// One authenticated request to the registry: the cached token (or a token fetched
    /// up front when the registry's realm is known), then on a 401 the challenge's scheme,
    /// once. Returns a 2xx response or the error its status means.
    async fn send(
        &self,
        call: &Call<'_>,
        method: Method,
        path: &str,
        accept: Option<&str>,
    ) -> Result<Response, RegistryError> {
        let (auth, fresh) = self.initial_authorization(call).await?;
        let first = self
            .registry_exchange(call, method.clone(), path, accept, auth.as_ref())
            .await?;
        if first.response.status() != StatusCode::UNAUTHORIZED || !first.at_auth_origin {
            return check_status(self, call, first.response).await;
        }
        let challenges = challenges_of(first.response.headers());
        discard(first.response).await;

        let retry_auth = if let Some(bearer) = challenges
            .iter()
            .find(|c| c.scheme == "bearer" && c.param("realm").is_some())
        {
            let challenge = BearerChallenge {
                realm: bearer.param("realm").unwrap_or_default().to_string(),
                service: bearer.param("service").map(str::to_string),
            };
            lock(&self.learnt)
                .bearer
                .insert(call.endpoint.to_string(), challenge.clone());
            if fresh {
                // a token fetched for this very request was refused: asking again won't help
                return Err(self.unauthorized(call, false));
            }
            let stale = match &auth {
                Some(Authorization::Bearer(h)) => Some(h.clone()),
                _ => None,
            };
            Authorization::Bearer(self.token(call, &challenge, stale.as_ref()).await?)
        } else if challenges.iter().any(|c| c.scheme == "basic") {
            lock(&self.learnt).basic.insert(call.endpoint.to_string());
            match (&self.credentials, &auth) {
                (None, _) => return Err(self.unauthorized(call, false)),
                (Some(_), Some(Authorization::Basic)) => return Err(self.unauthorized(call, true)),
                (Some(_), _) => Authorization::Basic,
            }
        } else {
            return Err(self.unauthorized(call, false));
        };

        let second = self
            .registry_exchange(call, method, path, accept, Some(&retry_auth))
            .await?;
        if second.response.status() == StatusCode::UNAUTHORIZED && second.at_auth_origin {
            discard(second.response).await;
            let basic = matches!(retry_auth, Authorization::Basic);
            return Err(self.unauthorized(call, basic));
        }
        check_status(self, call, second.response).await
    }

    /// Unauthorized as upstream words it: no credentials, rejected credentials (`rejected`:
    /// the registry or token server refused the username and password), or no access.
    fn unauthorized(&self, call: &Call<'_>, rejected: bool) -> RegistryError {
        let kind = match (&self.credentials, rejected) {
            (None, _) => UnauthorizedKind::NoCredentials,
            (Some(_), true) => UnauthorizedKind::BadCredentials,
            (Some(_), false) => UnauthorizedKind::Denied,
        };
        RegistryError::Unauthorized {
            image: call.image.clone(),
            kind,
        }
    }

    /// What to send first, and whether it is a token fetched just now.
    async fn initial_authorization(
        &self,
        call: &Call<'_>,
    ) -> Result<(Option<Authorization>, bool), RegistryError> {
        let slot = self.token_slot(call);
        if let Some(token) = slot.lock().await.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok((Some(Authorization::Bearer(token.header.clone())), false));
        }
        let (bearer, basic) = {
            let learnt = lock(&self.learnt);
            (
                learnt.bearer.get(call.endpoint).cloned(),
                learnt.basic.contains(call.endpoint),
            )
        };
        if let Some(challenge) = bearer {
            let header = self.token(call, &challenge, None).await?;
            return Ok((Some(Authorization::Bearer(header)), true));
        }
        if basic && self.credentials.is_some() {
            return Ok((Some(Authorization::Basic), false));
        }
        Ok((None, false))
    }

    fn token_slot(&self, call: &Call<'_>) -> TokenSlot {
        lock(&self.tokens)
            .entry((call.endpoint.to_string(), call.repository.to_string()))
            .or_default()
            .clone()
    }

    /// A valid token for the call's repository: the cached one unless it is `stale` (just
    /// refused), else a new one. Concurrent callers wait for one token request.
    async fn token(
        &self,
        call: &Call<'_>,
        challenge: &BearerChallenge,
        stale: Option<&HeaderValue>,
    ) -> Result<HeaderValue, RegistryError> {
        let slot = self.token_slot(call);
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
            && stale != Some(&token.header)
        {
            return Ok(token.header.clone());
        }
        let token = self.fetch_token(call, challenge).await?;
        let header = token.header.clone();
        *cached = Some(token);
        Ok(header)
    }

    /// The one place tokens are requested: `GET <realm>?service=…&scope=repository:<repo>:pull`
    /// with our Basic credentials (if any) for the realm's host only.
    async fn fetch_token(
        &self,
        call: &Call<'_>,
        challenge: &BearerChallenge,
    ) -> Result<CachedToken, RegistryError> {
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let malformed = |detail: &str| RegistryError::Malformed {
            image: call.image.clone(),
            what: "token response",
            detail: detail.to_string(),
        };
        let mut url = Url::parse(&challenge.realm)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| RegistryError::Malformed {
                image: call.image.clone(),
                what: "authentication challenge",
                detail: "the Bearer realm is not an http(s) URL".into(),
            })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = &challenge.service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", &format!("repository:{}:pull", call.repository));
        }
        let started = Instant::now();
        let realm_origin = origin(&url);
        let auth = self.credentials.as_ref().map(|_| Authorization::Basic);
        let followed = match self
            .follow(
                call,
                PathKind::Token,
                Method::GET,
                url,
                Some("application/json"),
                (auth.as_ref(), &realm_origin),
            )
            .await
        {
            Ok(f) => f,
            Err(FollowError::FirstHop(err)) => return Err(send_error(call, &err)),
            Err(FollowError::Failed(err)) => return Err(err),
        };
        let response = followed.response;
        match response.status().as_u16() {
            200..=299 => {}
            401 => {
                discard(response).await;
                return Err(self.unauthorized(call, true));
            }
            403 => {
                discard(response).await;
                return Err(self.unauthorized(call, false));
            }
            _ => return Err(status_error(self, call, response).await),
        }
        let body = read_limited(call, response, MAX_TOKEN_BYTES, "token response").await?;
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| malformed(&e.to_string()))?;
        let token = parsed
            .token
            .filter(|t| !t.is_empty())
            .or(parsed.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| malformed("it holds neither token nor access_token"))?;
        let mut header = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| malformed("the token is not a valid header value"))?;
        header.set_sensitive(true);
        let lifetime = Duration::from_secs(match parsed.expires_in {
            Some(0) | None => DEFAULT_TOKEN_SECONDS,
            Some(s) => s,
        });
        // refresh a little early: a tenth of the lifetime, between 1 and 30 seconds
        let margin = (lifetime / 10).clamp(Duration::from_secs(1), Duration::from_secs(30));
        Ok(CachedToken {
            header,
            refresh_at: started + lifetime.saturating_sub(margin),
        })
    }

    // ------------------------------------------------------------- transport ---

    /// One request to the registry at `path`, over the scheme that works: HTTPS, or for an
    /// insecure client whose HTTPS connection failed, plain HTTP (remembered per registry).
    async fn registry_exchange(
        &self,
        call: &Call<'_>,
        method: Method,
        path: &str,
        accept: Option<&str>,
        auth: Option<&Authorization>,
    ) -> Result<Followed, RegistryError> {
        let known = lock(&self.learnt).schemes.get(call.endpoint).copied();
        let scheme = if self.insecure {
            known.unwrap_or(Scheme::Https)
        } else {
            Scheme::Https
        };
        let attempt = |scheme: Scheme| {
            let url = registry_url(call, scheme, path);
            let method = method.clone();
            async move {
                let url = url.map_err(FollowError::Failed)?;
                let registry_origin = origin(&url);
                self.follow(
                    call,
                    call.kind,
                    method,
                    url,
                    accept,
                    (auth, &registry_origin),
                )
                .await
            }
        };
        let err = match attempt(scheme).await {
            Ok(followed) => {
                self.remember_scheme(call, known, scheme);
                return Ok(followed);
            }
            Err(FollowError::Failed(err)) => return Err(err),
            Err(FollowError::FirstHop(err)) => err,
        };
        if transport::blocked_address(&err).is_some() {
            return Err(send_error(call, &err));
        }
        if !self.insecure {
            if transport::is_http_only_server(&err) {
                return Err(RegistryError::HttpOnly {
                    repository: format!("{}/{}", call.registry, call.repository),
                });
            }
            return Err(send_error(call, &err));
        }
        if known.is_some() || !err.is_connect() {
            return Err(send_error(call, &err));
        }
        tracing::debug!(
            registry = %call.registry,
            error = %transport::describe(&err),
            "HTTPS failed for an insecure registry, trying HTTP"
        );
        match attempt(Scheme::Http).await {
            Ok(followed) => {
                self.remember_scheme(call, known, Scheme::Http);
                Ok(followed)
            }
            Err(FollowError::Failed(err)) => Err(err),
            Err(FollowError::FirstHop(err)) => Err(send_error(call, &err)),
        }
    }

    fn remember_scheme(&self, call: &Call<'_>, known: Option<Scheme>, scheme: Scheme) {
        if self.insecure && known != Some(scheme) {
            lock(&self.learnt)
                .schemes
                .insert(call.endpoint.to_string(), scheme);
        }
    }

    /// Sends `url` and follows redirects (at most `max_redirects`, no loops, every hop's
    /// address guarded). `auth` goes only to `auth_origin` (host and port): the registry's, or
    /// the token realm's.
    async fn follow(
        &self,
        call: &Call<'_>,
        kind: PathKind,
        method: Method,
        mut url: Url,
        accept: Option<&str>,
        (auth, auth_origin): (Option<&Authorization>, &Origin),
    ) -> Result<Followed, FollowError> {
        let max_redirects = self.shared.config.max_redirects;
        let mut visited: Vec<Url> = Vec::new();
        loop {
            if let Err(blocked) = transport::check_literal_host(&url) {
                return Err(FollowError::Failed(RegistryError::Forbidden {
                    message: format!("forbidden: request for {} blocked: {blocked}", call.image),
                }));
            }
            let at_auth_origin = *auth_origin == origin(&url);
            let mut request = self.http.request(method.clone(), url.clone());
            if let Some(accept) = accept {
                request = request.header(header::ACCEPT, accept);
            }
            if let Some(authorization) = auth.filter(|_| at_auth_origin) {
                request = match authorization {
                    Authorization::Basic => match &self.credentials {
                        Some(c) => request.basic_auth(&c.username, Some(&c.password)),
                        None => request,
                    },
                    Authorization::Bearer(h) => request.header(header::AUTHORIZATION, h.clone()),
                };
            }
            let started = Instant::now();
            let result = request.send().await;
            let status = result.as_ref().ok().map(|r| r.status().as_u16());
            self.observe(call, &method, kind, &url, status, started.elapsed());
            let response = match result {
                Ok(r) => r,
                Err(err) if visited.is_empty() => return Err(FollowError::FirstHop(err)),
                Err(err) => return Err(FollowError::Failed(send_error(call, &err))),
            };
            if !is_redirect(response.status()) {
                return Ok(Followed {
                    response,
                    at_auth_origin,
                });
            }
            let next = redirect_target(call, &url, &response).map_err(FollowError::Failed)?;
            discard(response).await;
            visited.push(url);
            if visited.len() > max_redirects {
                return Err(FollowError::Failed(RegistryError::Redirect {
                    image: call.image.clone(),
                    detail: format!(
                        "{}too many redirects (more than {max_redirects}), last to {}",
                        call.context,
                        display_url(&next)
                    ),
                }));
            }
            if visited.contains(&next) {
                return Err(FollowError::Failed(RegistryError::Redirect {
                    image: call.image.clone(),
                    detail: format!(
                        "{}redirect loop: {} was visited before",
                        call.context,
                        display_url(&next)
                    ),
                }));
            }
            url = next;
        }
    }

    fn observe(
        &self,
        call: &Call<'_>,
        method: &Method,
        kind: PathKind,
        url: &Url,
        status: Option<u16>,
        elapsed: Duration,
    ) {
        tracing::debug!(
            registry = %call.registry,
            repository = %call.repository,
            method = %method,
            path_kind = kind.as_str(),
            status,
            elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            "registry request"
        );
        if let Some(observer) = &self.shared.config.observer {
            observer.on_exchange(&super::Exchange {
                registry: call.registry,
                method: method.as_str(),
                path_kind: kind,
                url: &display_url(url),
                status,
                duration: elapsed,
            });
        }
    }
}

// ------------------------------------------------------------------ helpers ---

/// Host and port (the scheme's default when not given): what credentials are bound to.
type Origin = (String, Option<u16>);

fn origin(url: &Url) -> Origin {
    (
        url.host_str().unwrap_or("").to_ascii_lowercase(),
        url.port_or_known_default(),
    )
}

/// A URL for messages: scheme, host and path, never the query (signed CDN URLs).
fn display_url(url: &Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    ) + url.path()
}

fn registry_url(call: &Call<'_>, scheme: Scheme, path: &str) -> Result<Url, RegistryError> {
    Url::parse(&format!("{}://{}{path}", scheme.as_str(), call.endpoint)).map_err(|e| {
        RegistryError::Invalid {
            image: call.image.clone(),
            detail: format!("cannot make a URL: {e}"),
        }
    })
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

fn redirect_target(call: &Call<'_>, from: &Url, response: &Response) -> Result<Url, RegistryError> {
    let bad = |detail: String| RegistryError::Redirect {
        image: call.image.clone(),
        detail: format!("{}{detail}", call.context),
    };
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            bad(format!(
                "HTTP {} redirect without a usable Location header",
                response.status().as_u16()
            ))
        })?;
    let next = from
        .join(location)
        .map_err(|e| bad(format!("redirect to an invalid URL: {e}")))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(bad(format!(
            "redirect to a {} URL is not followed",
            next.scheme()
        )));
    }
    Ok(next)
}

/// The path and query of a `Link` target, which must stay on the registry's origin.
fn same_origin_path(call: &Call<'_>, page: &Url, link: &str) -> Result<String, RegistryError> {
    let target = page.join(link).map_err(|e| RegistryError::Malformed {
        image: call.image.clone(),
        what: "Link header",
        detail: e.to_string(),
    })?;
    if origin(&target) != origin(page) {
        return Err(RegistryError::Malformed {
            image: call.image.clone(),
            what: "Link header",
            detail: format!(
                "the next page is on another host ({})",
                display_url(&target)
            ),
        });
    }
    Ok(match target.query() {
        Some(q) => format!("{}?{q}", target.path()),
        None => target.path().to_string(),
    })
}

fn challenges_of(headers: &HeaderMap) -> Vec<Challenge> {
    headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(protocol::parse_challenges)
        .collect()
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse().ok())
}

fn send_error(call: &Call<'_>, err: &reqwest::Error) -> RegistryError {
    if let Some(blocked) = transport::blocked_address(err) {
        return RegistryError::Forbidden {
            message: format!("forbidden: request for {} blocked: {blocked}", call.image),
        };
    }
    RegistryError::Transport {
        image: call.image.clone(),
        detail: format!("{}{}", call.context, transport::describe(err)),
        transient: !err.is_builder() && !transport::is_certificate_error(err),
        source: None,
    }
}

/// The body, refusing more than `limit` bytes: a larger `Content-Length` before reading,
/// and a chunked body as soon as it passes the limit.
async fn read_limited(
    call: &Call<'_>,
    mut response: Response,
    limit: usize,
    what: &'static str,
) -> Result<Bytes, RegistryError> {
    let too_large = || RegistryError::TooLarge {
        image: call.image.clone(),
        what,
        limit,
    };
    let declared = declared_length(response.headers());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let initial = declared.map_or(8 << 10, |len| usize::try_from(len).unwrap_or(limit));
    let mut body = BytesMut::with_capacity(initial.min(limit));
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(err) => {
                return Err(RegistryError::Transport {
                    image: call.image.clone(),
                    detail: format!(
                        "{}reading the {what} failed: {}",
                        call.context,
                        transport::describe(&err)
                    ),
                    transient: true,
                    source: Some(Box::new(err)),
                });
            }
        }
    }
}

/// Reads (at most [`MAX_DISCARD_BYTES`] of) a body we do not need, so the connection can be
/// reused; anything larger just closes it.
async fn discard(mut response: Response) {
    let mut read = 0;
    while let Ok(Some(chunk)) = response.chunk().await {
        read += chunk.len();
        if read > MAX_DISCARD_BYTES {
            break;
        }
    }
}

async fn check_status(
    client: &RegistryClient,
    call: &Call<'_>,
    response: Response,
) -> Result<Response, RegistryError> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(status_error(client, call, response).await)
    }
}

/// What a non-2xx answer means for this operation.
async fn status_error(
    client: &RegistryClient,
    call: &Call<'_>,
    response: Response,
) -> RegistryError {
    let status = response.status();
    if matches!(call.kind, PathKind::Manifest | PathKind::Referrers) {
        client.note_quota(call, response.headers());
    }
    let retry_after = header_str(response.headers(), header::RETRY_AFTER.as_str())
        .and_then(|v| protocol::parse_retry_after(v, jiff::Timestamp::now()));
    let mut body = Vec::new();
    let mut response = response;
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DISCARD_BYTES {
            break;
        }
    }
    match status.as_u16() {
        404 if matches!(
            call.kind,
            PathKind::Manifest | PathKind::Tags | PathKind::Referrers
        ) =>
        {
            RegistryError::NotFound {
                image: call.image.clone(),
            }
        }
        401 => client.unauthorized(call, false),
        403 => RegistryError::Denied {
            image: call.image.clone(),
        },
        429 => RegistryError::TooManyRequests {
            image: call.image.clone(),
            registry: call.registry.to_string(),
            retry_after,
        },
        code => {
            let mut detail = format!(
                "{}HTTP {code} {}",
                call.context,
                status.canonical_reason().unwrap_or("")
            );
            if let Some(described) = protocol::describe_error_body(&body) {
                detail = format!("{}: {described}", detail.trim_end());
            }
            RegistryError::Status {
                image: call.image.clone(),
                status: code,
                detail: detail.trim_end().to_string(),
            }
        }
    }
}

fn head_from(
    call: &Call<'_>,
    reference: &str,
    headers: &HeaderMap,
) -> Result<ManifestHead, RegistryError> {
    let by_digest = protocol::is_digest_reference(reference);
    let digest = match header_str(headers, "docker-content-digest") {
        Some(d) if protocol::parse_digest(d).is_none() => {
            return Err(RegistryError::Malformed {
                image: call.image.clone(),
                what: "Docker-Content-Digest header",
                detail: format!("{d:?} is not a digest"),
            });
        }
        Some(d) if by_digest && d != reference => {
            return Err(RegistryError::DigestMismatch {
                image: call.image.clone(),
                what: "manifest",
                expected: reference.to_string(),
                actual: d.to_string(),
            });
        }
        Some(d) => d.to_string(),
        None if by_digest => reference.to_string(),
        None => {
            return Err(RegistryError::Malformed {
                image: call.image.clone(),
                what: "manifest HEAD response",
                detail: "no Docker-Content-Digest header (only a GET can tell the digest)".into(),
            });
        }
    };
    Ok(ManifestHead {
        digest,
        media_type: header_str(headers, header::CONTENT_TYPE.as_str())
            .map(protocol::bare_media_type)
            .filter(|m| !m.is_empty()),
        size: declared_length(headers),
    })
}

fn manifest_from(
    call: &Call<'_>,
    reference: &str,
    headers: &HeaderMap,
    bytes: Bytes,
) -> Result<Manifest, RegistryError> {
    let content_type = header_str(headers, header::CONTENT_TYPE.as_str())
        .map(protocol::bare_media_type)
        .unwrap_or_default();
    let from_body = protocol::manifest_media_type_from_body(&bytes).map_err(|detail| {
        RegistryError::Malformed {
            image: call.image.clone(),
            what: "manifest",
            detail,
        }
    })?;
    let media_type = if protocol::is_manifest_media_type(&content_type) {
        content_type
    } else {
        match from_body {
            Some(mt) if protocol::is_manifest_media_type(&mt) => mt,
            other => {
                return Err(RegistryError::UnsupportedMediaType {
                    image: call.image.clone(),
                    media_type: other.unwrap_or(content_type),
                });
            }
        }
    };
    let announced = header_str(headers, "docker-content-digest");
    let by_digest = protocol::is_digest_reference(reference).then_some(reference);
    if protocol::is_schema1(&media_type) {
        // the digest covers the unsigned payload, not these bytes: nothing to verify here
        let digest = by_digest
            .or(announced)
            .map_or_else(|| protocol::sha256_digest(&bytes), str::to_string);
        return Ok(Manifest {
            bytes,
            digest,
            media_type,
        });
    }
    for expected in [by_digest, announced].into_iter().flatten() {
        let Some(algorithm) = protocol::parse_digest(expected) else {
            return Err(RegistryError::Malformed {
                image: call.image.clone(),
                what: "Docker-Content-Digest header",
                detail: format!("{expected:?} is not a digest"),
            });
        };
        let actual = algorithm.digest(&bytes);
        if actual != expected {
            return Err(RegistryError::DigestMismatch {
                image: call.image.clone(),
                what: "manifest",
                expected: expected.to_string(),
                actual,
            });
        }
    }
    let digest = by_digest
        .or(announced)
        .map_or_else(|| protocol::sha256_digest(&bytes), str::to_string);
    Ok(Manifest {
        bytes,
        digest,
        media_type,
    })
}
