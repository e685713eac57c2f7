//! The pull-secret keyring: which username and password to present to a registry for an
//! image, chosen from the pull secrets of the image stream's namespace the way the kubelet
//! and OpenShift's importer choose them.
//!
//! Pure code: no Kubernetes or registry IO. Only [`Keyring::from_file`] reads a file (for the
//! `inspect` subcommand).
//!
//! # Sources
//!
//! * [`Keyring::from_secrets`]: Secrets of type `kubernetes.io/dockerconfigjson` (key
//!   `.dockerconfigjson`, `{"auths": {...}}`) and `kubernetes.io/dockercfg` (key `.dockercfg`,
//!   the bare map), in the order given (API list order). Other types are ignored silently,
//!   as are Secrets annotated `openshift.io/image.excludeSecret: "true"` (semantics 7.6: the
//!   `imagestreams/secrets` subresource drops them). A malformed Secret or entry is skipped
//!   and recorded as a [`KeyringWarning`] the caller can report; it never fails the others.
//! * [`Keyring::from_file`] / [`Keyring::from_file_bytes`]: a Secret (or a `List` of them) as
//!   YAML or JSON, a docker `config.json` (`credsStore`/`credHelpers` are never run; a warning
//!   says so), or a bare `.dockercfg` map.
//! * [`Keyring::with_lower_priority`]: the node's `config.json` merged under the namespace's
//!   secrets (semantics 5.8), like the kubelet's union keyring: every match from the upper
//!   keyring comes before any match from the lower one.
//!
//! Each entry is a username and password, from `auth` (base64 of `user:password`; the
//! password may contain `:`, and `auth` wins over `username`/`password` when both are
//! present) or from `username`/`password`. `identitytoken` and `registrytoken` are kept on
//! the [`Credential`] (redacted like the password) for a transport that can use them; the
//! current registry client uses only [`Credential::basic`]. `email` is ignored. Field names
//! match case-insensitively, as Go's JSON decoder does.
//!
//! # Matching (kubelet `pkg/credentialprovider/keyring.go`, OpenShift `importer/credentials.go`)
//!
//! An entry's key is URL-ish: an optional `https://`/`http://`, a host with an optional port,
//! an optional path. A leading `v1`/`v2` path component is dropped
//! (`https://index.docker.io/v1/` means the host `index.docker.io`); a user part, query and
//! fragment are dropped (so, as with Go's URL parser, a `?` ends the key). A key matches a request for `registry_host_port` + `repository_path` when:
//!
//! * the hosts have the same number of dot-separated labels and every key label glob-matches
//!   the request's label (`*`, `[a-z]`, `[^a-z]`, `\` escapes, as Go's `filepath.Match`; so
//!   `*.example.com` matches exactly one label), case-insensitively;
//! * the ports are equal (a key without a port matches only requests without one), except
//!   that a request on port 443 also matches keys without a port (OpenShift strips the
//!   canonical port);
//! * the key's path components are a prefix of the repository's components;
//! * or, for Docker Hub, the key's host is one of `docker.io`, `index.docker.io`,
//!   `registry-1.docker.io` written literally (no glob, no port) and the request is for any
//!   of them.
//!
//! [`Keyring::lookup`] returns every matching credential, most specific first: upper keyring
//! before lower; longer path prefix first; a direct host match before the port-443 fallback
//! before a Docker Hub alias; fewer glob labels first; then source order. Identical
//! credentials are listed once. When nothing matches, the list holds only the anonymous
//! credential. OpenShift uses only the first entry; the kubelet tries them in turn.
//!
//! Deviations from the kubelet, on purpose: path prefixes match whole components (the kubelet
//! lets `bar.example.com/pong` match `bar.example.com/pongz/x`, which would hand one team's
//! credential to another's repository); hosts compare case-insensitively; a bad entry skips
//! only itself (the kubelet fails the Secret, OpenShift then the whole keyring); entries with
//! no credential at all (`{}`, as `docker login` with a credential store writes them) are
//! skipped instead of shadowing real ones; the three Docker Hub names are interchangeable
//! (kubelet: only an `index.docker.io` key as a last resort; OpenShift: `index.docker.io`,
//! then `docker.io`).
//!
//! # Secrets stay secret
//!
//! [`Credential`] has a hand-written `Debug` that redacts the password and tokens, no
//! `Display` and no `Serialize`. Errors name the Secret, the entry key and a position in the
//! JSON, never a value: decoder messages (which quote the offending input) are not kept.
//!
//! # Cache keys (rust-guide 2.2, gap 1)
//!
//! A registry client holds one credential and caches tokens per repository, so the client
//! cache must be keyed by the credential the client authenticates with: use
//! [`Credential::id`] as `registry::ClientKey::credentials_id` (empty for anonymous). A
//! [`CredentialId`] is a SHA-256 over the username, password and tokens, keyed with 128 bits
//! of per-process randomness, so that it can be logged without becoming an offline
//! password-guessing oracle. Consequences:
//!
//! * a rotated secret gives a new id (the old client idles out of the cache);
//! * two namespaces with different credentials never share a client;
//! * two namespaces holding the *same* username and password do share one. That grants
//!   nothing: either could fetch the same tokens itself. It saves a token dance per
//!   namespace when a cluster-wide pull secret is copied everywhere. (Keying by Secret UID
//!   and resourceVersion would also split on every label edit.)
//! * ids are stable for the life of the process, not across restarts; nothing persists them.
//!
//! A whole-keyring id ([`Keyring::id`], a [`CredentialSetId`]) would be the wrong client key:
//! a client built with the credential for one registry would then be reused for another
//! registry that the same keyring maps to a different credential. It identifies what a
//! namespace's lookups can return, for caching keyrings or lookup results.

use std::borrow::Cow;
use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// A username and password for a registry (or its token server), as the registry client
/// sends them. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pub username: String,
    pub password: String,
}

impl BasicCredentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        BasicCredentials {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Secret type holding a docker `config.json` under [`DOCKER_CONFIG_JSON_KEY`].
pub const SECRET_TYPE_DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
/// Data key of a `kubernetes.io/dockerconfigjson` Secret.
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
/// Secret type holding a legacy `.dockercfg` map under [`DOCKERCFG_KEY`].
pub const SECRET_TYPE_DOCKERCFG: &str = "kubernetes.io/dockercfg";
/// Data key of a `kubernetes.io/dockercfg` Secret.
pub const DOCKERCFG_KEY: &str = ".dockercfg";
/// Annotation that keeps a Secret out of imports when set to `"true"` (OpenShift
/// `registry/imagesecret/rest.go`).
pub const EXCLUDE_SECRET_ANNOTATION: &str = "openshift.io/image.excludeSecret";

/// The names Docker Hub answers to; a literal key for one serves requests for any.
const DOCKER_HUB_HOSTS: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// `auth` fields: the standard alphabet, padding optional.
const AUTH_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a Secret, an entry or a file could not be used. Messages never contain credential
/// material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// A docker-config Secret without its data key, or with it empty.
    #[error("secret of type {secret_type} has no {key} data")]
    MissingData {
        secret_type: &'static str,
        key: &'static str,
    },
    /// The data is not JSON. Only the position is kept: decoder messages quote the input.
    #[error("{what} is not valid JSON (line {line}, column {column})")]
    InvalidJson {
        what: &'static str,
        line: usize,
        column: usize,
    },
    /// Valid JSON of the wrong shape (`auths` not an object, a field not a string, ...).
    #[error("{0}")]
    InvalidStructure(Cow<'static, str>),
    /// `auth` is not base64.
    #[error("the auth field is not valid base64")]
    InvalidAuthEncoding,
    /// `auth` decodes to something other than UTF-8 `username:password`.
    #[error("the auth field does not decode to username:password")]
    InvalidAuthFormat,
    /// An entry key that is not `[scheme://]host[:port][/path]`.
    #[error("registry key {key:?} is invalid: {why}")]
    InvalidRegistryKey { key: String, why: &'static str },
    /// An entry with neither `auth`, `username`/`password` nor a token.
    #[error("the entry holds no credentials")]
    EmptyCredentials,
    /// A `config.json` names credential helpers; they are never run.
    #[error("credsStore/credHelpers are not used: only credentials stored in auths are")]
    CredentialHelpersIgnored,
    /// A Secret given in a file whose type is not a docker-config type.
    #[error("secret type {0:?} holds no registry credentials")]
    UnsupportedSecretType(String),
    /// A file that is neither a Secret, a list of Secrets, a `config.json` nor a `.dockercfg`.
    #[error("{0}")]
    UnrecognizedFormat(Cow<'static, str>),
    /// The file could not be read.
    #[error("reading {path}: {kind}")]
    ReadFailed {
        path: String,
        kind: std::io::ErrorKind,
    },
}

impl CredentialError {
    /// A stable PascalCase reason, for events and conditions.
    pub fn reason(&self) -> &'static str {
        match self {
            CredentialError::MissingData { .. } => "MissingData",
            CredentialError::InvalidJson { .. } => "InvalidJson",
            CredentialError::InvalidStructure(_) => "InvalidStructure",
            CredentialError::InvalidAuthEncoding => "InvalidAuthEncoding",
            CredentialError::InvalidAuthFormat => "InvalidAuthFormat",
            CredentialError::InvalidRegistryKey { .. } => "InvalidRegistryKey",
            CredentialError::EmptyCredentials => "EmptyCredentials",
            CredentialError::CredentialHelpersIgnored => "CredentialHelpersIgnored",
            CredentialError::UnsupportedSecretType(_) => "UnsupportedSecretType",
            CredentialError::UnrecognizedFormat(_) => "UnrecognizedFormat",
            CredentialError::ReadFailed { .. } => "ReadFailed",
        }
    }

    fn json(what: &'static str, e: &serde_json::Error) -> CredentialError {
        CredentialError::InvalidJson {
            what,
            line: e.line(),
            column: e.column(),
        }
    }
}

/// Something skipped while building a keyring: a whole Secret (`entry` is `None`) or one of
/// its entries. Safe to show to the namespace's users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyringWarning {
    /// Where it came from, e.g. `secret ns/pull` or `file /root/.docker/config.json`.
    pub source: String,
    /// The registry key of the skipped entry.
    pub entry: Option<String>,
    pub error: CredentialError,
}

impl KeyringWarning {
    /// The error's stable reason.
    pub fn reason(&self) -> &'static str {
        self.error.reason()
    }
}

impl fmt::Display for KeyringWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.entry {
            Some(key) => write!(f, "{}, entry {key:?}: {}", self.source, self.error),
            None => write!(f, "{}: {}", self.source, self.error),
        }
    }
}

/// Where a credential was read from. Holds no secret material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    Secret {
        namespace: Option<String>,
        name: String,
        uid: Option<String>,
        resource_version: Option<String>,
    },
    /// A `config.json` or `.dockercfg` that was not wrapped in a Secret.
    File { path: String },
}

impl CredentialSource {
    fn of_secret(secret: &Secret) -> CredentialSource {
        let meta = &secret.metadata;
        CredentialSource::Secret {
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
        }
    }
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Secret {
                namespace: Some(ns),
                name,
                ..
            } => write!(f, "secret {ns}/{name}"),
            CredentialSource::Secret { name, .. } => write!(f, "secret {name}"),
            CredentialSource::File { path } => write!(f, "file {path}"),
        }
    }
}

/// Identity of one credential's contents, for keying registry clients (see the module
/// docs). Keyed per process, so it reveals nothing about the password. Empty for anonymous.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialId(String);

impl CredentialId {
    /// The id of anonymous access: the empty string.
    pub fn anonymous() -> CredentialId {
        CredentialId(String::new())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn of(username: &str, password: &str, identity: Option<&str>, registry: Option<&str>) -> Self {
        let mut h = keyed_hasher(b"credential/v1");
        for field in [Some(username), Some(password), identity, registry] {
            match field {
                Some(v) => {
                    h.update([1u8]);
                    h.update((v.len() as u64).to_le_bytes());
                    h.update(v.as_bytes());
                }
                None => h.update([0u8]),
            }
        }
        CredentialId(hex(&h.finalize()[..16]))
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<CredentialId> for String {
    fn from(id: CredentialId) -> String {
        id.0
    }
}

/// Identity of everything a keyring can answer: its entries' keys, priorities and
/// credential ids, in order. Equal keyrings give equal ids; any rotated credential or
/// changed key gives a new one. Stable for the life of the process.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialSetId(String);

impl CredentialSetId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CredentialSetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SHA-256 prefixed with 128 random bits drawn once per process, and a domain label.
fn keyed_hasher(domain: &[u8]) -> Sha256 {
    static KEY: OnceLock<[u8; 16]> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        // RandomState is seeded from the OS's random source; two SipHash outputs under
        // that seed give 128 unpredictable bits without another dependency.
        let state = RandomState::new();
        let mut key = [0u8; 16];
        for (i, chunk) in key.chunks_mut(8).enumerate() {
            let mut h = state.build_hasher();
            h.write_usize(i);
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
        key
    });
    let mut h = Sha256::new();
    h.update(key);
    h.update((domain.len() as u64).to_le_bytes());
    h.update(domain);
    h
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A registry credential, or anonymous access. `Debug` redacts the password and tokens;
/// there is deliberately no `Display` and no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    username: String,
    password: String,
    identity_token: Option<String>,
    registry_token: Option<String>,
    id: CredentialId,
    /// The entry key as written, e.g. `https://index.docker.io/v1/`.
    registry_key: Option<String>,
    source: Option<Arc<CredentialSource>>,
}

impl Credential {
    /// No credential: pull anonymously.
    pub fn anonymous() -> Credential {
        Credential {
            username: String::new(),
            password: String::new(),
            identity_token: None,
            registry_token: None,
            id: CredentialId::anonymous(),
            registry_key: None,
            source: None,
        }
    }

    fn new(
        username: String,
        password: String,
        identity_token: Option<String>,
        registry_token: Option<String>,
        registry_key: &str,
        source: Arc<CredentialSource>,
    ) -> Credential {
        let id = CredentialId::of(
            &username,
            &password,
            identity_token.as_deref(),
            registry_token.as_deref(),
        );
        Credential {
            username,
            password,
            identity_token,
            registry_token,
            id,
            registry_key: Some(registry_key.to_owned()),
            source: Some(source),
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.source.is_none()
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    /// The secret itself: pass it to the transport, never to a log or a message.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Docker's `identitytoken` (an OAuth2 refresh token for the registry's token server).
    pub fn identity_token(&self) -> Option<&str> {
        self.identity_token.as_deref()
    }

    /// Docker's `registrytoken` (a bearer token for the registry itself).
    pub fn registry_token(&self) -> Option<&str> {
        self.registry_token.as_deref()
    }

    /// Username and password for the registry client; `None` for anonymous access and for
    /// token-only entries (which the client cannot use yet).
    pub fn basic(&self) -> Option<BasicCredentials> {
        if self.username.is_empty() && self.password.is_empty() {
            return None;
        }
        Some(BasicCredentials::new(
            self.username.clone(),
            self.password.clone(),
        ))
    }

    /// Identity of the contents, for `registry::ClientKey::credentials_id`.
    pub fn id(&self) -> &CredentialId {
        &self.id
    }

    /// The key of the entry this came from, as written in the Secret.
    pub fn registry_key(&self) -> Option<&str> {
        self.registry_key.as_deref()
    }

    /// Where this came from; `None` for anonymous access.
    pub fn source(&self) -> Option<&CredentialSource> {
        self.source.as_deref()
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn redacted(present: bool) -> &'static str {
            if present { "<redacted>" } else { "<none>" }
        }
        if self.is_anonymous() {
            return f.write_str("Credential(anonymous)");
        }
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &redacted(!self.password.is_empty()))
            .field("identity_token", &redacted(self.identity_token.is_some()))
            .field("registry_token", &redacted(self.registry_token.is_some()))
            .field("id", &self.id.0)
            .field("registry_key", &self.registry_key)
            .field("source", &self.source)
            .finish()
    }
}

/// One label of a key's host: literal, or a glob.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Label {
    Literal(String),
    Glob(Vec<GlobToken>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum GlobToken {
    Char(char),
    AnyChar,
    AnyRun,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl GlobToken {
    fn matches(&self, c: char) -> bool {
        match self {
            GlobToken::Char(x) => *x == c,
            GlobToken::AnyChar => true,
            GlobToken::AnyRun => false,
            GlobToken::Class { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated
            }
        }
    }
}

/// Compiles one host label in Go `filepath.Match` syntax.
fn compile_glob(label: &str) -> Result<Vec<GlobToken>, &'static str> {
    fn escaped(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, &'static str> {
        chars.next().ok_or("the host ends in a lone backslash")
    }
    let mut tokens = Vec::new();
    let mut chars = label.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                if tokens.last() != Some(&GlobToken::AnyRun) {
                    tokens.push(GlobToken::AnyRun);
                }
            }
            '?' => tokens.push(GlobToken::AnyChar),
            '\\' => tokens.push(GlobToken::Char(escaped(&mut chars)?)),
            '[' => {
                let negated = chars.next_if_eq(&'^').is_some();
                let mut ranges = Vec::new();
                loop {
                    let lo = match chars.next() {
                        None => return Err("a [ in the host is not closed"),
                        Some(']') if !ranges.is_empty() => break,
                        Some(']') => return Err("an empty [] in the host"),
                        Some('\\') => escaped(&mut chars)?,
                        Some(c) => c,
                    };
                    let hi = if chars.next_if_eq(&'-').is_some() {
                        match chars.next() {
                            None | Some(']') => return Err("a range in the host has no end"),
                            Some('\\') => escaped(&mut chars)?,
                            Some(c) => c,
                        }
                    } else {
                        lo
                    };
                    if hi < lo {
                        return Err("a range in the host is reversed");
                    }
                    ranges.push((lo, hi));
                }
                tokens.push(GlobToken::Class { negated, ranges });
            }
            c => tokens.push(GlobToken::Char(c)),
        }
    }
    Ok(tokens)
}

fn glob_matches(tokens: &[GlobToken], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let (mut t, mut s) = (0, 0);
    // position of the last `*` and how much of the text it has swallowed
    let mut star: Option<(usize, usize)> = None;
    while s < text.len() {
        match tokens.get(t) {
            Some(GlobToken::AnyRun) => {
                star = Some((t, s));
                t += 1;
                continue;
            }
            Some(tok) if tok.matches(text[s]) => {
                t += 1;
                s += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((st, ss)) => {
                t = st + 1;
                s = ss + 1;
                star = Some((st, ss + 1));
            }
            None => return false,
        }
    }
    tokens[t..].iter().all(|k| *k == GlobToken::AnyRun)
}

/// `host[:port]` split, lowercased. IPv6 literals keep their brackets.
fn split_host_port(authority: &str) -> Result<(String, Option<String>), &'static str> {
    let authority = authority.to_ascii_lowercase();
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']').ok_or("an IPv6 host is not closed")?;
        let (host, rest) = authority.split_at(end + 1);
        match rest.strip_prefix(':') {
            Some(port) => (host.to_owned(), port.to_owned()),
            None if rest.is_empty() => (host.to_owned(), String::new()),
            None => return Err("unexpected text after an IPv6 host"),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host.to_owned(), port.to_owned()),
            None => (authority, String::new()),
        }
    };
    if host.is_empty() {
        return Err("the host is empty");
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '@')
    {
        return Err("the host contains a character hosts cannot have");
    }
    if !port.chars().all(|c| c.is_ascii_digit()) {
        return Err("the port is not a number");
    }
    Ok((host, (!port.is_empty()).then_some(port)))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// A parsed entry key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct KeyPattern {
    /// Lowercased host as written (globs included).
    host: String,
    labels: Vec<Label>,
    port: Option<String>,
    path: Vec<String>,
}

impl KeyPattern {
    fn parse(key: &str) -> Result<KeyPattern, &'static str> {
        let mut rest = key.trim();
        for scheme in ["https://", "http://"] {
            if let Some(r) = strip_prefix_ignore_case(rest, scheme) {
                rest = r;
                break;
            }
        }
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        // user@host: the user part is not part of the registry's name
        let authority = authority.rsplit('@').next().unwrap_or_default();
        let (host, port) = split_host_port(authority)?;
        let labels = if host.starts_with('[') {
            vec![Label::Literal(host.clone())]
        } else {
            host.split('.')
                .map(|label| {
                    if label.contains(['*', '?', '[', '\\']) {
                        compile_glob(label).map(Label::Glob)
                    } else {
                        Ok(Label::Literal(label.to_owned()))
                    }
                })
                .collect::<Result<_, _>>()?
        };
        let mut path: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        // `https://index.docker.io/v1/`, `quay.io/v2/org`: API versions, not repositories
        if path.first().is_some_and(|c| c == "v1" || c == "v2") {
            path.remove(0);
        }
        Ok(KeyPattern {
            host,
            labels,
            port,
            path,
        })
    }

    fn glob_labels(&self) -> usize {
        self.labels
            .iter()
            .filter(|l| matches!(l, Label::Glob(_)))
            .count()
    }

    fn host_matches(&self, host: &str, port: Option<&str>) -> bool {
        if self.port.as_deref() != port {
            return false;
        }
        let target: Vec<&str> = if host.starts_with('[') {
            vec![host]
        } else {
            host.split('.').collect()
        };
        target.len() == self.labels.len()
            && self
                .labels
                .iter()
                .zip(target)
                .all(|(label, t)| match label {
                    Label::Literal(l) => l == t,
                    Label::Glob(g) => glob_matches(g, t),
                })
    }

    /// How the host matches the request, if it does.
    fn match_host(&self, target: &Target) -> Option<HostMatch> {
        if self.host_matches(&target.host, target.port.as_deref()) {
            return Some(HostMatch::Direct);
        }
        if target.port.as_deref() == Some("443") && self.host_matches(&target.host, None) {
            return Some(HostMatch::DefaultPort);
        }
        let hub = |h: &str| DOCKER_HUB_HOSTS.contains(&h);
        let target_port_default = matches!(target.port.as_deref(), None | Some("443"));
        if hub(&target.host)
            && target_port_default
            && self.port.is_none()
            && self.glob_labels() == 0
            && hub(&self.host)
        {
            return Some(HostMatch::DockerHubAlias);
        }
        None
    }

    fn path_is_prefix_of(&self, repository: &[&str]) -> bool {
        self.path.len() <= repository.len() && self.path.iter().zip(repository).all(|(a, b)| a == b)
    }

    /// Canonical text, for [`CredentialSetId`].
    fn canonical(&self) -> String {
        let mut s = self.host.clone();
        if let Some(port) = &self.port {
            s.push(':');
            s.push_str(port);
        }
        for c in &self.path {
            s.push('/');
            s.push_str(c);
        }
        s
    }
}

/// How a key's host met the request's; lower is more specific.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum HostMatch {
    Direct,
    /// The request was on port 443 and the key has no port.
    DefaultPort,
    /// Another name of Docker Hub.
    DockerHubAlias,
}

/// The registry being asked for.
struct Target {
    host: String,
    port: Option<String>,
}

#[derive(Clone)]
struct Entry {
    pattern: KeyPattern,
    credential: Credential,
    /// 0 for the keyring's own entries; +1 per [`Keyring::with_lower_priority`] level.
    tier: u32,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.pattern.canonical())
            .field("tier", &self.tier)
            .field("credential", &self.credential)
            .finish()
    }
}

/// The credentials of a namespace (plus lower-priority fallbacks), indexed for lookup by
/// registry and repository. `Debug` shows keys and usernames, never passwords.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    entries: Vec<Entry>,
    warnings: Vec<KeyringWarning>,
}

impl Keyring {
    /// A keyring with no entries: every lookup is anonymous.
    pub fn empty() -> Keyring {
        Keyring::default()
    }

    /// From the Secrets of a namespace, in the order given. Uses the two docker-config
    /// types, ignores other types and Secrets annotated with [`EXCLUDE_SECRET_ANNOTATION`],
    /// and records what it had to skip in [`Keyring::warnings`].
    pub fn from_secrets<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Keyring {
        let mut keyring = Keyring::default();
        for secret in secrets {
            let excluded = secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(EXCLUDE_SECRET_ANNOTATION))
                .is_some_and(|v| v == "true");
            if excluded {
                continue;
            }
            let source = CredentialSource::of_secret(secret);
            match keyring.add_secret(secret, &source) {
                Ok(()) | Err(SecretSkip::NotDockerConfig) => {}
                Err(SecretSkip::Invalid(error)) => keyring.warnings.push(KeyringWarning {
                    source: source.to_string(),
                    entry: None,
                    error,
                }),
            }
        }
        keyring
    }

    /// Reads a pull-secret file: see [`Keyring::from_file_bytes`].
    pub fn from_file(path: &Path) -> Result<Keyring, CredentialError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| CredentialError::ReadFailed {
            path: shown.clone(),
            kind: e.kind(),
        })?;
        Keyring::from_file_bytes(&bytes, &shown)
    }

    /// From the contents of a file: a Secret as YAML or JSON (`data` or `stringData`), a
    /// `List` of Secrets or several YAML documents, a docker `config.json`, or a bare
    /// `.dockercfg` map. `origin` names the file in warnings and sources. A document that
    /// cannot be used at all is an error; a bad entry in it is a warning. The exclusion
    /// annotation is not honoured here: the file was chosen explicitly.
    pub fn from_file_bytes(bytes: &[u8], origin: &str) -> Result<Keyring, CredentialError> {
        let documents = parse_documents(bytes)?;
        let mut keyring = Keyring::default();
        for document in documents {
            keyring.add_document(document, origin)?;
        }
        Ok(keyring)
    }

    /// This keyring with `lower`'s entries after all of its own (the node's `config.json`
    /// under the namespace's secrets). `lower`'s warnings are kept too.
    pub fn with_lower_priority(mut self, lower: Keyring) -> Keyring {
        let base = self.entries.iter().map(|e| e.tier + 1).max().unwrap_or(0);
        self.entries.extend(lower.entries.into_iter().map(|mut e| {
            e.tier += base;
            e
        }));
        self.warnings.extend(lower.warnings);
        self
    }

    /// Every credential for `repository_path` (e.g. `library/busybox`) on
    /// `registry_host_port` (e.g. `docker.io`, `localhost:5000`), most specific first (see
    /// the module docs); `[anonymous]` when none matches. Never empty. An empty host means
    /// Docker Hub.
    pub fn lookup(&self, registry_host_port: &str, repository_path: &str) -> Vec<Credential> {
        let host_port = match registry_host_port.trim() {
            "" => "docker.io",
            h => h,
        };
        let Ok((host, port)) = split_host_port(host_port) else {
            return vec![Credential::anonymous()];
        };
        let target = Target { host, port };
        let repository: Vec<&str> = repository_path
            .split('/')
            .filter(|c| !c.is_empty())
            .collect();
        let mut hits: Vec<_> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.pattern.path_is_prefix_of(&repository))
            .filter_map(|(index, e)| {
                let how = e.pattern.match_host(&target)?;
                let rank = (
                    e.tier,
                    std::cmp::Reverse(e.pattern.path.len()),
                    how,
                    e.pattern.glob_labels(),
                    index,
                );
                Some((rank, &e.credential))
            })
            .collect();
        hits.sort_by_key(|a| a.0);
        let mut seen = HashSet::new();
        let found: Vec<Credential> = hits
            .into_iter()
            .filter(|(_, c)| seen.insert(c.id.clone()))
            .map(|(_, c)| c.clone())
            .collect();
        if found.is_empty() {
            vec![Credential::anonymous()]
        } else {
            found
        }
    }

    /// The most specific credential (what OpenShift's importer uses), or anonymous.
    pub fn best(&self, registry_host_port: &str, repository_path: &str) -> Credential {
        self.lookup(registry_host_port, repository_path)
            .into_iter()
            .next()
            .unwrap_or_else(Credential::anonymous)
    }

    /// What was skipped while building, safe to show.
    pub fn warnings(&self) -> &[KeyringWarning] {
        &self.warnings
    }

    /// Number of usable entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry's key (normalized: lowercase host, port, path without `v1`/`v2`) and
    /// credential, in priority tier and source order; for `inspect`.
    pub fn entries(&self) -> impl Iterator<Item = (String, &Credential)> {
        self.entries
            .iter()
            .map(|e| (e.pattern.canonical(), &e.credential))
    }

    /// Identity of this keyring's answers (see [`CredentialSetId`]).
    pub fn id(&self) -> CredentialSetId {
        let mut h = keyed_hasher(b"keyring/v1");
        for e in &self.entries {
            let key = e.pattern.canonical();
            h.update(e.tier.to_le_bytes());
            h.update((key.len() as u64).to_le_bytes());
            h.update(key.as_bytes());
            h.update(e.credential.id.0.as_bytes());
        }
        CredentialSetId(hex(&h.finalize()[..16]))
    }

    /// Adds one Secret's entries (bad entries become warnings).
    fn add_secret(&mut self, secret: &Secret, source: &CredentialSource) -> Result<(), SecretSkip> {
        let (format, key, secret_type) = match secret.type_.as_deref() {
            Some(SECRET_TYPE_DOCKER_CONFIG_JSON) => (
                Format::ConfigJson,
                DOCKER_CONFIG_JSON_KEY,
                SECRET_TYPE_DOCKER_CONFIG_JSON,
            ),
            Some(SECRET_TYPE_DOCKERCFG) => {
                (Format::Dockercfg, DOCKERCFG_KEY, SECRET_TYPE_DOCKERCFG)
            }
            _ => return Err(SecretSkip::NotDockerConfig),
        };
        // stringData (only ever in files: the API server folds it into data) wins, as the
        // API server would have it
        let bytes = secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|s| s.as_bytes())
            .or_else(|| {
                secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|b| b.0.as_slice())
            })
            .filter(|b| !b.is_empty())
            .ok_or(SecretSkip::Invalid(CredentialError::MissingData {
                secret_type,
                key,
            }))?;
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| SecretSkip::Invalid(CredentialError::json(key, &e)))?;
        let map = match format {
            Format::ConfigJson => auths_of(&value)?,
            Format::Dockercfg => value.as_object().ok_or_else(|| {
                SecretSkip::Invalid(CredentialError::InvalidStructure(
                    ".dockercfg is not a JSON object".into(),
                ))
            })?,
        };
        self.add_map(map, source);
        Ok(())
    }

    /// Adds a `{registry key: entry}` map.
    fn add_map(&mut self, map: &Map<String, Value>, source: &CredentialSource) {
        let shared = Arc::new(source.clone());
        for (key, value) in map {
            match parse_entry(key, value, &shared) {
                Ok(entry) => self.entries.push(entry),
                Err(error) => self.warnings.push(KeyringWarning {
                    source: source.to_string(),
                    entry: Some(key.clone()),
                    error,
                }),
            }
        }
    }

    fn add_document(&mut self, document: Value, origin: &str) -> Result<(), CredentialError> {
        let Value::Object(object) = document else {
            return match document {
                Value::Null => Ok(()), // an empty YAML document
                _ => Err(CredentialError::UnrecognizedFormat(
                    format!("{origin} is not an object").into(),
                )),
            };
        };
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match kind.as_deref() {
            Some("Secret") => return self.add_secret_document(Value::Object(object)),
            Some("List" | "SecretList") => {
                let mut object = object;
                let items = match object.remove("items") {
                    Some(Value::Array(items)) => items,
                    None | Some(Value::Null) => Vec::new(),
                    Some(_) => {
                        return Err(CredentialError::InvalidStructure(
                            "the list's items are not an array".into(),
                        ));
                    }
                };
                for item in items {
                    match item.get("kind").and_then(Value::as_str) {
                        Some("Secret") | None => self.add_secret_document(item)?,
                        Some(kind) => {
                            return Err(CredentialError::UnrecognizedFormat(
                                format!("the list holds a {kind}, not only Secrets").into(),
                            ));
                        }
                    }
                }
                return Ok(());
            }
            Some(kind) => {
                return Err(CredentialError::UnrecognizedFormat(
                    format!("{origin} is a {kind}, not a Secret or a docker config").into(),
                ));
            }
            None => {}
        }
        let source = CredentialSource::File {
            path: origin.to_owned(),
        };
        let has = |name: &str| object.keys().any(|k| k.eq_ignore_ascii_case(name));
        if has("auths") || has("credsStore") || has("credHelpers") {
            if has("credsStore") || has("credHelpers") {
                self.warnings.push(KeyringWarning {
                    source: source.to_string(),
                    entry: None,
                    error: CredentialError::CredentialHelpersIgnored,
                });
            }
            let value = Value::Object(object);
            let auths = match auths_of(&value) {
                Ok(auths) => auths,
                Err(SecretSkip::Invalid(e)) => return Err(e),
                Err(SecretSkip::NotDockerConfig) => return Ok(()),
            };
            self.add_map(auths, &source);
            return Ok(());
        }
        // a bare .dockercfg: every value is an entry object
        if object.values().any(|v| !v.is_object()) {
            return Err(CredentialError::UnrecognizedFormat(
                format!("{origin} is neither a Secret, a config.json nor a .dockercfg").into(),
            ));
        }
        self.add_map(&object, &source);
        Ok(())
    }

    fn add_secret_document(&mut self, value: Value) -> Result<(), CredentialError> {
        // the decoder's message could quote a value: keep none of it
        let secret: Secret = serde_json::from_value(value).map_err(|_| {
            CredentialError::InvalidStructure("the Secret object does not decode".into())
        })?;
        let source = CredentialSource::of_secret(&secret);
        match self.add_secret(&secret, &source) {
            Ok(()) => Ok(()),
            Err(SecretSkip::Invalid(e)) => Err(e),
            Err(SecretSkip::NotDockerConfig) => Err(CredentialError::UnsupportedSecretType(
                secret.type_.unwrap_or_default(),
            )),
        }
    }
}

enum Format {
    ConfigJson,
    Dockercfg,
}

/// Why a Secret contributed nothing.
enum SecretSkip {
    /// Not one of the two types: ignored without a word.
    NotDockerConfig,
    Invalid(CredentialError),
}

/// The `auths` map of a `config.json` (`auths` absent or null: an empty map, as in Go).
fn auths_of(value: &Value) -> Result<&Map<String, Value>, SecretSkip> {
    static EMPTY: OnceLock<Map<String, Value>> = OnceLock::new();
    let invalid =
        |what: &'static str| SecretSkip::Invalid(CredentialError::InvalidStructure(what.into()));
    let object = value
        .as_object()
        .ok_or_else(|| invalid("the docker config is not a JSON object"))?;
    let auths = object
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("auths"))
        .map(|(_, v)| v)
        .next_back();
    match auths {
        Some(Value::Object(map)) => Ok(map),
        None | Some(Value::Null) => Ok(EMPTY.get_or_init(Map::new)),
        Some(_) => Err(invalid("auths is not a JSON object")),
    }
}

/// One `{registry key: {auth | username/password | tokens}}` entry.
fn parse_entry(
    key: &str,
    value: &Value,
    source: &Arc<CredentialSource>,
) -> Result<Entry, CredentialError> {
    let pattern = KeyPattern::parse(key).map_err(|why| CredentialError::InvalidRegistryKey {
        key: key.to_owned(),
        why,
    })?;
    let object = value.as_object().ok_or_else(|| {
        CredentialError::InvalidStructure("the entry is not a JSON object".into())
    })?;
    let mut fields: [Option<String>; 5] = Default::default();
    const NAMES: [&str; 5] = [
        "username",
        "password",
        "auth",
        "identitytoken",
        "registrytoken",
    ];
    // Go's decoder matches field names case-insensitively; Map iterates in key order, so an
    // exact lowercase name comes last and wins
    for (name, v) in object {
        let Some(i) = NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)) else {
            continue; // email, serveraddress, ...
        };
        fields[i] = match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            _ => {
                return Err(CredentialError::InvalidStructure(
                    format!("the entry's {} is not a string", NAMES[i]).into(),
                ));
            }
        };
    }
    let [username, password, auth, identity, registry] = fields;
    let (username, password) = match auth.filter(|a| !a.is_empty()) {
        Some(auth) => decode_auth(&auth)?,
        None => (username.unwrap_or_default(), password.unwrap_or_default()),
    };
    let identity = identity.filter(|t| !t.is_empty());
    let registry = registry.filter(|t| !t.is_empty());
    if username.is_empty() && password.is_empty() && identity.is_none() && registry.is_none() {
        return Err(CredentialError::EmptyCredentials);
    }
    Ok(Entry {
        pattern,
        credential: Credential::new(username, password, identity, registry, key, source.clone()),
        tier: 0,
    })
}

/// `base64(username:password)`; the password keeps any further colons. Line breaks are
/// ignored, as Go's decoder ignores them.
fn decode_auth(auth: &str) -> Result<(String, String), CredentialError> {
    let compact: String = auth.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    let bytes = AUTH_BASE64
        .decode(compact.as_bytes())
        .map_err(|_| CredentialError::InvalidAuthEncoding)?;
    let text = String::from_utf8(bytes).map_err(|_| CredentialError::InvalidAuthFormat)?;
    let (username, password) = text
        .split_once(':')
        .ok_or(CredentialError::InvalidAuthFormat)?;
    Ok((username.to_owned(), password.to_owned()))
}

/// The documents of a file: JSON when it starts like JSON, else YAML (one or more documents).
fn parse_documents(bytes: &[u8]) -> Result<Vec<Value>, CredentialError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if matches!(first, Some(b'{' | b'[')) {
        return serde_json::from_slice(bytes)
            .map(|v| vec![v])
            .map_err(|e| CredentialError::json("the file", &e));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| CredentialError::UnrecognizedFormat("the file is not UTF-8 text".into()))?;
    serde_saphyr::from_multiple::<Value>(text).map_err(|e| match e.location() {
        // the YAML error's message could quote a value: keep only the position
        Some(at) => CredentialError::UnrecognizedFormat(
            format!(
                "the file is not valid YAML or JSON (line {}, column {})",
                at.line(),
                at.column()
            )
            .into(),
        ),
        None => CredentialError::UnrecognizedFormat("the file is not valid YAML or JSON".into()),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn basic_credentials_debug_hides_the_password() {
        let c = BasicCredentials::new("alice", "hunter2");
        let s = format!("{c:?}");
        assert!(s.contains("alice") && !s.contains("hunter2"), "{s}");
        assert!(!format!("{:?}", Some(c)).contains("hunter2"));
    }

    fn secret(name: &str, type_: &str, key: &str, data: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                resource_version: Some("1".into()),
                ..ObjectMeta::default()
            },
            type_: Some(type_.into()),
            data: Some(BTreeMap::from([(
                key.to_owned(),
                ByteString(data.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        }
    }

    fn config_json(name: &str, auths: &str) -> Secret {
        secret(
            name,
            SECRET_TYPE_DOCKER_CONFIG_JSON,
            DOCKER_CONFIG_JSON_KEY,
            &format!(r#"{{"auths": {auths}}}"#),
        )
    }

    fn dockercfg(name: &str, map: &str) -> Secret {
        secret(name, SECRET_TYPE_DOCKERCFG, DOCKERCFG_KEY, map)
    }

    /// A keyring of `key → user:pass` entries, one `.dockerconfigjson` Secret, `auth` form.
    fn keyring(entries: &[(&str, &str)]) -> Keyring {
        let auths: Vec<String> = entries
            .iter()
            .map(|(key, userpass)| format!(r#"{key:?}: {{"auth": {:?}}}"#, b64(userpass)))
            .collect();
        let k = Keyring::from_secrets([&config_json("pull", &format!("{{{}}}", auths.join(",")))]);
        assert!(k.warnings().is_empty(), "{:?}", k.warnings());
        k
    }

    /// Usernames found for a lookup, anonymous as "-".
    fn users(k: &Keyring, host: &str, repo: &str) -> Vec<String> {
        k.lookup(host, repo)
            .iter()
            .map(|c| {
                if c.is_anonymous() {
                    "-".to_owned()
                } else {
                    c.username().to_owned()
                }
            })
            .collect()
    }

    // kubelet TestUrlsMatch (keyring_test.go): host globs, label counts, ports, paths.
    #[test]
    fn urls_match() {
        let cases: &[(&str, &str, &str, bool)] = &[
            // no path component
            ("*.kubernetes.io", "prefix.kubernetes.io", "", true),
            ("prefix.*.io", "prefix.kubernetes.io", "", true),
            ("prefix.kubernetes.*", "prefix.kubernetes.io", "", true),
            (
                "*-good.kubernetes.io",
                "prefix-good.kubernetes.io",
                "",
                true,
            ),
            // with path components
            ("*.kubernetes.io/blah", "prefix.kubernetes.io", "blah", true),
            ("prefix.*.io/foo", "prefix.kubernetes.io", "foo/bar", true),
            // with path components and ports
            (
                "*.kubernetes.io:1111/blah",
                "prefix.kubernetes.io:1111",
                "blah",
                true,
            ),
            (
                "prefix.*.io:1111/foo",
                "prefix.kubernetes.io:1111",
                "foo/bar",
                true,
            ),
            // label counts differ: `*` is exactly one label
            ("*.kubernetes.io", "kubernetes.io", "", false),
            ("*.*.kubernetes.io", "prefix.kubernetes.io", "", false),
            ("*.*.kubernetes.io", "kubernetes.io", "", false),
            ("*.example.com", "a.b.example.com", "", false),
            // some label differs
            ("kubernetes.io", "kubernetes.com", "", false),
            ("k*.io", "quay.io", "", false),
            // ports differ, or only one side has one
            (
                "*.kubernetes.io:1234/blah",
                "prefix.kubernetes.io:1111",
                "blah",
                false,
            ),
            (
                "prefix.*.io/foo",
                "prefix.kubernetes.io:1111",
                "foo/bar",
                false,
            ),
            (
                "registry.example.com:5000",
                "registry.example.com",
                "x",
                false,
            ),
            // ?, classes, escapes (Go filepath.Match)
            // `?` starts a query, as in Go's URL parser: the host is `reg`
            ("reg?.example.com", "reg1.example.com", "", false),
            ("reg?.example.com", "reg", "", true),
            ("reg[0-9].example.com", "reg7.example.com", "", true),
            ("reg[^0-9].example.com", "reg7.example.com", "", false),
            ("reg[^0-9].example.com", "regx.example.com", "", true),
            (r"a\*.example.com", "a*.example.com", "", true),
            (r"a\*.example.com", "ab.example.com", "", false),
            // hosts are case-insensitive
            ("Quay.IO", "quay.io", "", true),
            ("quay.io", "QUAY.io", "", true),
            // IPv6 literals
            ("[::1]:5000", "[::1]:5000", "x", true),
            ("[::1]:5000", "[::1]:5001", "x", false),
        ];
        for (key, host, repo, want) in cases {
            let k = keyring(&[(key, "u:p")]);
            let got = !k.best(host, repo).is_anonymous();
            assert_eq!(got, *want, "key {key:?} vs {host}/{repo}");
        }
    }

    // kubelet TestDockerKeyringForGlob: keys written with https://, /v1/, /v2/ and ports,
    // looked up as `<target>/foo/bar`.
    #[test]
    fn keyring_for_glob() {
        let cases: &[(&str, &str, &str)] = &[
            ("https://hello.kubernetes.io", "hello.kubernetes.io", ""),
            ("https://*.docker.io", "prefix.docker.io", ""),
            ("https://prefix.*.io", "prefix.docker.io", ""),
            ("https://prefix.docker.*", "prefix.docker.io", ""),
            ("https://*.docker.io/path", "prefix.docker.io", "path/"),
            (
                "https://prefix.*.io/path",
                "prefix.docker.io",
                "path/subpath/",
            ),
            ("https://prefix.docker.*/path", "prefix.docker.io", "path/"),
            ("https://*.docker.io:8888", "prefix.docker.io:8888", ""),
            ("https://prefix.*.io:8888", "prefix.docker.io:8888", ""),
            ("https://prefix.docker.*:8888", "prefix.docker.io:8888", ""),
            (
                "https://*.docker.io/path:1111",
                "prefix.docker.io",
                "path:1111/",
            ),
            ("https://*.docker.io/v1/", "prefix.docker.io", "path:1111/"),
            ("https://*.docker.io/v2/", "prefix.docker.io", "path:1111/"),
            (
                "https://prefix.docker.*/path:1111",
                "prefix.docker.io",
                "path:1111/",
            ),
            ("prefix.docker.io:1111", "prefix.docker.io:1111", "path/"),
            ("*.docker.io:1111", "prefix.docker.io:1111", "path/"),
            ("http://plain.example.com", "plain.example.com", ""),
        ];
        for (key, host, repo_prefix) in cases {
            let k = keyring(&[(key, "foo:bar")]);
            let c = k.best(host, &format!("{repo_prefix}foo/bar"));
            assert_eq!(
                (c.username(), c.password()),
                ("foo", "bar"),
                "key {key:?} vs {host}"
            );
            assert_eq!(c.registry_key(), Some(*key));
        }
    }

    // kubelet TestKeyringMiss.
    #[test]
    fn keyring_miss() {
        let cases: &[(&str, &str, &str)] = &[
            ("https://hello.kubernetes.io", "world.mesos.org", "foo/bar"),
            ("https://*.docker.com", "prefix.docker.io", "foo/bar"),
            ("https://suffix.*.io", "prefix.docker.io", "foo/bar"),
            ("https://prefix.docker.c*", "prefix.docker.io", "foo/bar"),
            (
                "https://prefix.*.io/path:1111",
                "prefix.docker.io",
                "path/subpath:1111/foo/bar",
            ),
            ("suffix.*.io", "prefix.docker.io", "foo/bar"),
        ];
        for (key, host, repo) in cases {
            let k = keyring(&[(key, "foo:bar")]);
            assert_eq!(k.lookup(host, repo), vec![Credential::anonymous()], "{key}");
        }
    }

    // kubelet TestDockerKeyringLookup, with one deliberate difference: paths match whole
    // components, so `bar.example.com/pong` does not serve `bar.example.com/pongz`.
    #[test]
    fn keyring_lookup_longest_path_first() {
        let k = keyring(&[
            ("bar.example.com/pong", "grace:squash"),
            ("bar.example.com", "ada:smash"),
        ]);
        let cases: &[(&str, &str, &[&str])] = &[
            // direct match
            ("bar.example.com", "", &["ada"]),
            // direct match deeper than other possible matches
            ("bar.example.com", "pong", &["grace", "ada"]),
            // no direct match, deeper path ignored
            ("bar.example.com", "ping", &["ada"]),
            // kubelet: [grace, ada] (string prefix); here a component must match whole
            ("bar.example.com", "pongz", &["ada"]),
            // match regardless of sub-path
            ("bar.example.com", "pong/pang", &["grace", "ada"]),
            // no host match
            ("example.com", "", &["-"]),
            ("foo.example.com", "", &["-"]),
        ];
        for (host, repo, want) in cases {
            assert_eq!(users(&k, host, repo), *want, "{host}/{repo}");
        }
    }

    // kubelet TestIssue3797: a key with scheme and /v1/ path matches the host.
    #[test]
    fn issue_3797_scheme_and_v1_path() {
        let k = keyring(&[("https://quay.io/v1/", "rex:tiny arms")]);
        for repo in ["", "foo", "foo/bar"] {
            let c = k.best("quay.io", repo);
            assert_eq!((c.username(), c.password()), ("rex", "tiny arms"), "{repo}");
        }
        // `/v2` without its trailing slash, and `/v2/<org>`, as OpenShift's lookup strips them
        let k = keyring(&[("quay.io/v2", "a:1"), ("https://quay.io/v2/org", "b:2")]);
        assert_eq!(users(&k, "quay.io", "org/x"), ["b", "a"]);
        assert_eq!(users(&k, "quay.io", "other/x"), ["a"]);
    }

    #[test]
    fn longest_match_across_globs_and_secrets() {
        let k = Keyring::from_secrets([
            &config_json(
                "a",
                &format!(
                    r#"{{"*.example.com": {{"auth": "{}"}}, "reg.example.com/team": {{"auth": "{}"}}}}"#,
                    b64("glob:1"),
                    b64("team:2")
                ),
            ),
            &dockercfg(
                "b",
                &format!(
                    r#"{{"reg.example.com": {{"auth": "{}"}}, "*.example.com/team/app": {{"auth": "{}"}}}}"#,
                    b64("exact:3"),
                    b64("deep:4")
                ),
            ),
        ]);
        // longer path first, whatever the secret order; then literal host before glob
        assert_eq!(
            users(&k, "reg.example.com", "team/app/x"),
            ["deep", "team", "exact", "glob"]
        );
        assert_eq!(
            users(&k, "reg.example.com", "team/x"),
            ["team", "exact", "glob"]
        );
        assert_eq!(users(&k, "other.example.com", "x"), ["glob"]);
        // fewer glob labels first
        let k = keyring(&[("*.*.example.com", "two:1"), ("*.b.example.com", "one:1")]);
        assert_eq!(users(&k, "a.b.example.com", "x"), ["one", "two"]);
    }

    #[test]
    fn ties_keep_source_order_and_duplicates_collapse() {
        let same = format!(r#"{{"quay.io": {{"auth": "{}"}}}}"#, b64("u:p"));
        let other = format!(r#"{{"quay.io": {{"auth": "{}"}}}}"#, b64("v:q"));
        let k = Keyring::from_secrets([
            &config_json("s1", &other),
            &config_json("s2", &same),
            &config_json("s3", &same),
        ]);
        let found = k.lookup("quay.io", "x");
        assert_eq!(
            found.iter().map(Credential::username).collect::<Vec<_>>(),
            ["v", "u"]
        );
        // the first of the duplicates is kept, with its source
        assert_eq!(
            found[1].source().map(ToString::to_string),
            Some("secret ns/s2".into())
        );
    }

    // kubelet TestKeyringHitWithUnqualifiedDockerHub / ...QualifiedDockerHub /
    // TestIsDefaultRegistryMatch; OpenShift basicCredentialsFromKeyring's docker.io cases.
    #[test]
    fn docker_hub_aliases() {
        for key in [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            "https://registry-1.docker.io/v2/",
        ] {
            let k = keyring(&[(key, "hub:pw")]);
            for host in [
                "docker.io",
                "index.docker.io",
                "registry-1.docker.io",
                "",
                "docker.io:443",
            ] {
                assert_eq!(
                    users(&k, host, "library/busybox"),
                    ["hub"],
                    "{key} for {host:?}"
                );
            }
            // not Docker Hub
            for host in [
                "myhostdocker.io",
                "registry.tld",
                "docker.io:5000",
                "auth.docker.io",
            ] {
                assert_eq!(
                    users(&k, host, "library/busybox"),
                    ["-"],
                    "{key} for {host}"
                );
            }
        }
        // the name asked for first, then the other names
        let k = keyring(&[
            ("https://index.docker.io/v1/", "index:1"),
            ("docker.io", "docker:2"),
        ]);
        assert_eq!(users(&k, "docker.io", "library/x"), ["docker", "index"]);
        assert_eq!(
            users(&k, "index.docker.io", "library/x"),
            ["index", "docker"]
        );
        // a glob matching the name directly beats an alias
        let k = keyring(&[("docker.io", "alias:1"), ("*.docker.io", "glob:2")]);
        assert_eq!(users(&k, "index.docker.io", "x"), ["glob", "alias"]);
        // globs are not aliased: `*.docker.io` has three labels, docker.io two
        let k = keyring(&[("*.docker.io", "glob:2")]);
        assert_eq!(users(&k, "docker.io", "x"), ["-"]);
        // paths still apply
        let k = keyring(&[("index.docker.io/myorg", "org:1"), ("docker.io", "any:2")]);
        assert_eq!(users(&k, "docker.io", "myorg/app"), ["org", "any"]);
        assert_eq!(users(&k, "docker.io", "library/app"), ["any"]);
    }

    // OpenShift hasCanonicalPort: a request on :443 falls back to keys without a port.
    #[test]
    fn port_443_falls_back_to_portless_keys() {
        let k = keyring(&[("quay.io", "plain:1"), ("quay.io:443", "explicit:2")]);
        assert_eq!(users(&k, "quay.io:443", "x"), ["explicit", "plain"]);
        assert_eq!(users(&k, "quay.io", "x"), ["plain"]);
        assert_eq!(users(&k, "quay.io:8443", "x"), ["-"]);
    }

    // kubelet TestDockerConfigEntryJSONDecode / TestDecodeDockerConfigFieldAuth.
    #[test]
    fn entry_decoding() {
        struct Case {
            entry: String,
            want: Result<(&'static str, &'static str), &'static str>,
        }
        let cases = [
            // simple case, just decode the fields
            Case {
                entry: r#"{"username": "foo", "password": "bar", "email": "foo@example.com"}"#
                    .into(),
                want: Ok(("foo", "bar")),
            },
            // auth field decodes to username & password
            Case {
                entry: r#"{"auth": "Zm9vOmJhcg==", "email": "foo@example.com"}"#.into(),
                want: Ok(("foo", "bar")),
            },
            // auth field overrides username & password
            Case {
                entry: r#"{"username": "foo", "password": "bar", "auth": "cGluZzpwb25n"}"#.into(),
                want: Ok(("ping", "pong")),
            },
            // the password keeps further colons
            Case {
                entry: format!(r#"{{"auth": "{}"}}"#, b64("user:pa:ss:")),
                want: Ok(("user", "pa:ss:")),
            },
            // padding optional, line breaks ignored (Go's decoder skips them)
            Case {
                entry: r#"{"auth": "Zm9vOmJhcg"}"#.into(),
                want: Ok(("foo", "bar")),
            },
            Case {
                entry: r#"{"auth": "Zm9vOmJh\r\ncg=="}"#.into(),
                want: Ok(("foo", "bar")),
            },
            // an empty auth is no auth
            Case {
                entry: r#"{"auth": "", "username": "u", "password": "p"}"#.into(),
                want: Ok(("u", "p")),
            },
            // field names are case-insensitive, as in Go
            Case {
                entry: r#"{"Username": "U", "Password": "P"}"#.into(),
                want: Ok(("U", "P")),
            },
            // poorly-formatted auth causes failure
            Case {
                entry: r#"{"auth": "pants"}"#.into(),
                want: Err("InvalidAuthEncoding"),
            },
            // good base64 data, but no colon separating username & password
            Case {
                entry: r#"{"auth": "cGFudHM="}"#.into(),
                want: Err("InvalidAuthFormat"),
            },
            // not UTF-8
            Case {
                entry: r#"{"auth": "/w=="}"#.into(),
                want: Err("InvalidAuthFormat"),
            },
            // wrong types
            Case {
                entry: r#"{"username": 7, "password": "x"}"#.into(),
                want: Err("InvalidStructure"),
            },
            Case {
                entry: r#""user:pass""#.into(),
                want: Err("InvalidStructure"),
            },
            // nothing in it (docker login with a credential store writes these)
            Case {
                entry: r#"{"email": "x@example.com"}"#.into(),
                want: Err("EmptyCredentials"),
            },
        ];
        for case in cases {
            let k = Keyring::from_secrets([&config_json(
                "s",
                &format!(r#"{{"quay.io": {}}}"#, case.entry),
            )]);
            match case.want {
                Ok((user, pass)) => {
                    assert!(
                        k.warnings().is_empty(),
                        "{}: {:?}",
                        case.entry,
                        k.warnings()
                    );
                    let c = k.best("quay.io", "x");
                    assert_eq!((c.username(), c.password()), (user, pass), "{}", case.entry);
                }
                Err(reason) => {
                    assert!(k.is_empty(), "{}", case.entry);
                    assert_eq!(k.warnings().len(), 1, "{}", case.entry);
                    let w = &k.warnings()[0];
                    assert_eq!(w.reason(), reason, "{}", case.entry);
                    assert_eq!(w.entry.as_deref(), Some("quay.io"));
                    assert_eq!(w.source, "secret ns/s");
                }
            }
        }
    }

    #[test]
    fn tokens_are_kept_and_redacted() {
        let k = Keyring::from_secrets([&config_json(
            "s",
            r#"{"quay.io": {"identitytoken": "refresh-tok"}, "ghcr.io": {"registrytoken": "bearer-tok", "username": "u"}}"#,
        )]);
        assert!(k.warnings().is_empty());
        let c = k.best("quay.io", "x");
        assert_eq!(c.identity_token(), Some("refresh-tok"));
        assert_eq!(c.basic(), None);
        let c = k.best("ghcr.io", "x");
        assert_eq!(c.registry_token(), Some("bearer-tok"));
        assert_eq!(c.basic(), Some(BasicCredentials::new("u", "")));
        let shown = format!("{k:?}");
        assert!(
            !shown.contains("refresh-tok") && !shown.contains("bearer-tok"),
            "{shown}"
        );
    }

    // kubelet TestDockerConfigJsonJSONDecode / TestDockerConfigJSONDecode, through Secrets.
    #[test]
    fn both_secret_formats() {
        let json = config_json(
            "json",
            r#"{"http://foo.example.com": {"username": "foo", "password": "bar"}}"#,
        );
        let cfg = dockercfg(
            "cfg",
            r#"{"http://bar.example.com": {"username": "bar", "password": "baz"}}"#,
        );
        let k = Keyring::from_secrets([&json, &cfg]);
        assert!(k.warnings().is_empty());
        assert_eq!(users(&k, "foo.example.com", "x"), ["foo"]);
        assert_eq!(users(&k, "bar.example.com", "x"), ["bar"]);
        // the formats are not interchangeable: the type decides the key and the shape
        let swapped = secret(
            "swapped",
            SECRET_TYPE_DOCKER_CONFIG_JSON,
            DOCKERCFG_KEY,
            r#"{"quay.io": {"username": "u"}}"#,
        );
        let k = Keyring::from_secrets([&swapped]);
        assert!(k.is_empty());
        assert_eq!(k.warnings()[0].reason(), "MissingData");
    }

    // OpenShift imagesecret TestGetSecrets (semantics 10.5 #79): only the two types, not the
    // excluded ones, in list order.
    #[test]
    fn secret_selection() {
        let entry = |user: &str| {
            format!(
                r#"{{"quay.io": {{"auth": "{}"}}}}"#,
                b64(&format!("{user}:p"))
            )
        };
        let mut excluded = dockercfg("secret-2", &entry("excluded"));
        excluded.metadata.annotations = Some(BTreeMap::from([(
            EXCLUDE_SECRET_ANNOTATION.to_owned(),
            "true".to_owned(),
        )]));
        let mut opaque = dockercfg("secret-3", &entry("opaque"));
        opaque.type_ = Some("Opaque".into());
        let mut token = dockercfg("secret-4", &entry("token"));
        token.type_ = Some("kubernetes.io/service-account-token".into());
        let mut not_excluded = config_json("secret-6", &entry("six"));
        not_excluded.metadata.annotations = Some(BTreeMap::from([(
            EXCLUDE_SECRET_ANNOTATION.to_owned(),
            "false".to_owned(),
        )]));
        let k = Keyring::from_secrets([
            &dockercfg("secret-1", &entry("one")),
            &excluded,
            &opaque,
            &token,
            &config_json("secret-5", &entry("five")),
            &not_excluded,
        ]);
        assert_eq!(users(&k, "quay.io", "x"), ["one", "five", "six"]);
        assert!(k.warnings().is_empty(), "{:?}", k.warnings());
    }

    #[test]
    fn malformed_secrets_are_skipped_with_a_reason() {
        let good = config_json("good", r#"{"quay.io": {"username": "u", "password": "p"}}"#);
        let not_json = secret(
            "not-json",
            SECRET_TYPE_DOCKER_CONFIG_JSON,
            DOCKER_CONFIG_JSON_KEY,
            "{\"auths\": {\"quay.io\": hunter2}}",
        );
        let auths_array = config_json("auths-array", r#"["hunter2"]"#);
        let cfg_array = dockercfg("cfg-array", r#"["hunter2"]"#);
        let mut empty = dockercfg("empty", "");
        empty.data = Some(BTreeMap::from([(
            DOCKERCFG_KEY.to_owned(),
            ByteString(Vec::new()),
        )]));
        let mut no_data = config_json("no-data", "{}");
        no_data.data = None;
        let bad_key = config_json(
            "bad-key",
            &format!(
                r#"{{"quay.io:http": {{"auth": "{}"}}, "ok.example.com": {{"auth": "{}"}}}}"#,
                b64("k:hunter2"),
                b64("ok:p")
            ),
        );
        let k = Keyring::from_secrets([
            &good,
            &not_json,
            &auths_array,
            &cfg_array,
            &empty,
            &no_data,
            &bad_key,
        ]);
        let got: Vec<(String, Option<&str>, &str)> = k
            .warnings()
            .iter()
            .map(|w| (w.source.clone(), w.entry.as_deref(), w.reason()))
            .collect();
        assert_eq!(
            got,
            [
                ("secret ns/not-json".into(), None, "InvalidJson"),
                ("secret ns/auths-array".into(), None, "InvalidStructure"),
                ("secret ns/cfg-array".into(), None, "InvalidStructure"),
                ("secret ns/empty".into(), None, "MissingData"),
                ("secret ns/no-data".into(), None, "MissingData"),
                (
                    "secret ns/bad-key".into(),
                    Some("quay.io:http"),
                    "InvalidRegistryKey"
                ),
            ]
        );
        // the rest still works
        assert_eq!(users(&k, "quay.io", "x"), ["u"]);
        assert_eq!(users(&k, "ok.example.com", "x"), ["ok"]);
        // no message carries secret material
        for w in k.warnings() {
            let text = format!("{w} {w:?}");
            assert!(!text.contains("hunter2"), "{text}");
        }
        assert!(k.warnings()[0].to_string().contains("line 1, column"));
    }

    #[test]
    fn invalid_keys() {
        for key in [
            "",
            "https://",
            ":5000",
            "quay.io:http",
            "[::1",
            "bad host",
            "a[.example.com",
            "a[z-a].example.com",
        ] {
            let k = Keyring::from_secrets([&config_json(
                "s",
                &format!(r#"{{{key:?}: {{"username": "u", "password": "p"}}}}"#),
            )]);
            assert!(k.is_empty(), "{key:?}");
            assert_eq!(k.warnings()[0].reason(), "InvalidRegistryKey", "{key:?}");
        }
        // userinfo, query and fragment are not part of the registry's name
        let k = keyring(&[("https://someone@quay.io/org?x=1#y", "u:p")]);
        assert_eq!(users(&k, "quay.io", "org/app"), ["u"]);
    }

    #[test]
    fn lower_priority_keyring_comes_after() {
        let namespace = keyring(&[("*.example.com", "ns:1")]);
        let node = Keyring::from_file_bytes(
            format!(
                r#"{{"auths": {{"reg.example.com/team": {{"auth": "{}"}}}}}}"#,
                b64("node:2")
            )
            .as_bytes(),
            "/var/lib/kubelet/config.json",
        )
        .unwrap();
        let k = namespace.with_lower_priority(node);
        // the node's more specific key still comes after every namespace match
        assert_eq!(users(&k, "reg.example.com", "team/x"), ["ns", "node"]);
        assert_eq!(users(&k, "other.example.com", "x"), ["ns"]);
        let c = k.lookup("reg.example.com", "team/x").remove(1);
        assert_eq!(
            c.source(),
            Some(&CredentialSource::File {
                path: "/var/lib/kubelet/config.json".into()
            })
        );
        // only the node's
        let k = Keyring::empty().with_lower_priority(keyring(&[("quay.io", "node:1")]));
        assert_eq!(users(&k, "quay.io", "x"), ["node"]);
    }

    #[test]
    fn anonymous_when_nothing_matches() {
        let k = Keyring::empty();
        let found = k.lookup("quay.io", "x");
        assert_eq!(found.len(), 1);
        assert!(found[0].is_anonymous());
        assert_eq!(found[0].basic(), None);
        assert_eq!(found[0].id().as_str(), "");
        assert_eq!(format!("{:?}", found[0]), "Credential(anonymous)");
        // an unparsable request host is anonymous too, not a panic
        assert!(
            keyring(&[("quay.io", "u:p")])
                .best("quay.io:x", "y")
                .is_anonymous()
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let password = "s3cr3t-p4ss:word";
        let auth = b64(&format!("alice:{password}"));
        let k = Keyring::from_secrets([&config_json(
            "pull",
            &format!(
                r#"{{"quay.io": {{"auth": "{auth}"}}, "ghcr.io": {{"username": "bob", "password": "{password}"}}}}"#
            ),
        )]);
        assert_eq!(k.len(), 2);
        let creds: Vec<Credential> = ["quay.io", "ghcr.io"]
            .iter()
            .map(|h| k.best(h, "x"))
            .collect();
        assert_eq!(creds[0].password(), password);
        for shown in [
            format!("{k:?}"),
            format!("{k:#?}"),
            format!("{:?}", creds[0]),
            format!("{:#?}", creds[1]),
            format!("{:?}", k.lookup("quay.io", "x")),
            format!("{:?}", creds[0].basic()),
        ] {
            assert!(!shown.contains(password), "{shown}");
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(!shown.contains(&auth), "{shown}");
            assert!(!shown.contains(&auth[..12]), "{shown}");
        }
        assert!(format!("{:?}", creds[0]).contains("alice"));
        assert!(format!("{:?}", creds[0]).contains("<redacted>"));
    }

    #[test]
    fn credential_ids() {
        let a = Keyring::from_secrets([&config_json(
            "pull",
            r#"{"quay.io": {"username": "u", "password": "one"}}"#,
        )]);
        let mut same_in_b = config_json(
            "other-name",
            r#"{"quay.io": {"username": "u", "password": "one"}}"#,
        );
        same_in_b.metadata.namespace = Some("b".into());
        let b = Keyring::from_secrets([&same_in_b]);
        let rotated = Keyring::from_secrets([&config_json(
            "pull",
            r#"{"quay.io": {"username": "u", "password": "two"}}"#,
        )]);
        let id = |k: &Keyring| k.best("quay.io", "x").id().clone();
        // stable
        assert_eq!(id(&a), id(&a.clone()));
        assert_eq!(a.id(), a.clone().id());
        // a rotated password: new client, new keyring id
        assert_ne!(id(&a), id(&rotated));
        assert_ne!(a.id(), rotated.id());
        // different credentials never share; the same username and password do (by design)
        assert_eq!(id(&a), id(&b));
        // the id is not the password, nor a plain hash of it
        let plain = hex(&Sha256::digest(b"one")[..16]);
        assert_ne!(id(&a).as_str(), plain);
        assert_eq!(id(&a).as_str().len(), 32);
        // the same credential under another key is one client; the keyring differs
        let moved = Keyring::from_secrets([&config_json(
            "pull",
            r#"{"ghcr.io": {"username": "u", "password": "one"}}"#,
        )]);
        assert_eq!(id(&a), moved.best("ghcr.io", "x").id().clone());
        assert_ne!(a.id(), moved.id());
        // username and tokens count too
        let other_user = Keyring::from_secrets([&config_json(
            "pull",
            r#"{"quay.io": {"username": "v", "password": "one"}}"#,
        )]);
        assert_ne!(id(&a), id(&other_user));
        let with_token = Keyring::from_secrets([&config_json(
            "pull",
            r#"{"quay.io": {"username": "u", "password": "one", "identitytoken": "t"}}"#,
        )]);
        assert_ne!(id(&a), id(&with_token));
        // field boundaries are unambiguous
        let shifted = Keyring::from_secrets([&config_json(
            "pull",
            r#"{"quay.io": {"username": "uo", "password": "ne"}}"#,
        )]);
        assert_ne!(id(&a), id(&shifted));
        assert_ne!(Keyring::empty().id(), a.id());
    }

    #[test]
    fn files_in_every_shape() {
        let auth = b64("file:pw");
        let config = format!(r#"{{"auths": {{"quay.io": {{"auth": "{auth}"}}}}}}"#);
        let cases: Vec<(&str, String)> = vec![
            ("config.json", config.clone()),
            (
                "config.json with helpers",
                format!(
                    r#"{{"credsStore": "desktop", "auths": {{"quay.io": {{"auth": "{auth}"}}, "ghcr.io": {{}}}}}}"#
                ),
            ),
            (
                ".dockercfg",
                format!(r#"{{"quay.io": {{"auth": "{auth}", "email": "x@example.com"}}}}"#),
            ),
            (
                "secret json",
                format!(
                    r#"{{"apiVersion": "v1", "kind": "Secret", "metadata": {{"name": "pull", "namespace": "ns"}}, "type": "kubernetes.io/dockerconfigjson", "data": {{".dockerconfigjson": "{}"}}}}"#,
                    b64(&config)
                ),
            ),
            (
                "secret yaml",
                format!(
                    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: pull\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n",
                    b64(&config)
                ),
            ),
            (
                "secret yaml stringData dockercfg",
                format!(
                    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: pull\ntype: kubernetes.io/dockercfg\nstringData:\n  .dockercfg: '{{\"quay.io\": {{\"auth\": \"{auth}\"}}}}'\n"
                ),
            ),
            (
                "two yaml documents",
                format!(
                    "kind: Secret\nmetadata:\n  name: a\ntype: kubernetes.io/dockercfg\nstringData:\n  .dockercfg: '{{}}'\n---\nkind: Secret\nmetadata:\n  name: b\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n",
                    b64(&config)
                ),
            ),
            (
                "list",
                format!(
                    r#"{{"kind": "List", "items": [{{"kind": "Secret", "metadata": {{"name": "pull"}}, "type": "kubernetes.io/dockerconfigjson", "data": {{".dockerconfigjson": "{}"}}}}]}}"#,
                    b64(&config)
                ),
            ),
        ];
        for (what, text) in cases {
            let k = Keyring::from_file_bytes(text.as_bytes(), "f")
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let c = k.best("quay.io", "x");
            assert_eq!((c.username(), c.password()), ("file", "pw"), "{what}");
            if what == "config.json with helpers" {
                let reasons: Vec<_> = k.warnings().iter().map(KeyringWarning::reason).collect();
                assert_eq!(reasons, ["CredentialHelpersIgnored", "EmptyCredentials"]);
            } else {
                assert!(k.warnings().is_empty(), "{what}: {:?}", k.warnings());
            }
        }
    }

    #[test]
    fn unusable_files() {
        let cases: &[(&str, &str)] = &[
            (r#"{"auths": {"quay.io": hunter2}}"#, "InvalidJson"),
            (
                "kind: Secret\ntype: Opaque\nstringData:\n  password: hunter2\n",
                "UnsupportedSecretType",
            ),
            ("kind: ConfigMap\ndata: {}\n", "UnrecognizedFormat"),
            (r#"{"quay.io": "hunter2"}"#, "UnrecognizedFormat"),
            (r#"["hunter2"]"#, "UnrecognizedFormat"),
            ("key: [hunter2\n", "UnrecognizedFormat"),
            (r#"{"auths": ["hunter2"]}"#, "InvalidStructure"),
            (
                "kind: Secret\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{\"auths\": hunter2}'\n",
                "InvalidJson",
            ),
            (
                "kind: Secret\ntype: kubernetes.io/dockerconfigjson\n",
                "MissingData",
            ),
        ];
        for (text, reason) in cases {
            let e = Keyring::from_file_bytes(text.as_bytes(), "f").expect_err(text);
            assert_eq!(e.reason(), *reason, "{text}: {e}");
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }

    #[test]
    fn from_file_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            format!(
                r#"{{"auths": {{"quay.io": {{"auth": "{}"}}}}}}"#,
                b64("u:p")
            ),
        )
        .unwrap();
        let k = Keyring::from_file(&path).unwrap();
        assert_eq!(users(&k, "quay.io", "x"), ["u"]);
        let e = Keyring::from_file(&dir.path().join("missing")).unwrap_err();
        assert_eq!(e.reason(), "ReadFailed");
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[test]
    fn entries_list_normalized_keys() {
        let k = keyring(&[("https://Quay.io:443/v2/Org/", "u:p")]);
        let keys: Vec<String> = k.entries().map(|(key, _)| key).collect();
        assert_eq!(keys, ["quay.io:443/Org"]);
    }

    #[test]
    fn glob_matcher() {
        let m = |p: &str, t: &str| glob_matches(&compile_glob(p).unwrap(), t);
        assert!(m("*", ""));
        assert!(m("*", "abc"));
        assert!(m("a*c", "abbbc"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("**x", "x"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "abbc"));
        assert!(m("[a-c-]x", "-x"));
        assert!(!m("abc", "abcd"));
        assert!(compile_glob("[").is_err());
        assert!(compile_glob("[]").is_err());
        assert!(compile_glob("a\\").is_err());
    }
}

/// The fuzz target's body (fuzz/credentials_invariants.rs) over the seed corpus and mutations
/// of it from a fixed seed, so the normal test command exercises it without cargo-fuzz.
#[cfg(test)]
mod fuzz_body {
    use super::*;

    include!("../fuzz/credentials_invariants.rs");

    const SEEDS: [&[u8]; 4] = [
        include_bytes!("../fuzz/corpus/credentials/seed-dockerconfigjson"),
        include_bytes!("../fuzz/corpus/credentials/seed-dockercfg"),
        include_bytes!("../fuzz/corpus/credentials/seed-secret-yaml"),
        include_bytes!("../fuzz/corpus/credentials/seed-secret-list"),
    ];

    /// Text a mutation may splice in: the shapes the parser distinguishes.
    const PIECES: [&str; 16] = [
        "*",
        "[a-z]",
        "[^",
        "\\",
        ":443",
        ":x",
        "https://",
        "/v1/",
        "@",
        "?q",
        "[::1]",
        "\"auth\":\"Og==\",",
        "\"auth\":\"!!\",",
        "\"username\":1,",
        "kind: List\n",
        "&a [*a, *a]",
    ];

    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn seeds_parse_with_their_entries() {
        let counts: Vec<usize> = SEEDS
            .iter()
            .map(|s| {
                check_credential_invariants(s);
                Keyring::from_file_bytes(s, "seed").unwrap().len()
            })
            .collect();
        assert_eq!(counts, [4, 2, 3, 4]);
    }

    #[test]
    fn mutated_seeds_keep_all_invariants() {
        const INPUTS: usize = 10_000;
        let mut state: u64 = 0x5eed_c4ed_0000_0001;
        let mut usable = 0usize;
        for _ in 0..INPUTS {
            let seed = SEEDS[usize::try_from(splitmix(&mut state) % 4).unwrap_or(0)];
            let mut input = seed.to_vec();
            for _ in 0..1 + splitmix(&mut state) % 3 {
                let at =
                    usize::try_from(splitmix(&mut state) % (input.len() as u64 + 1)).unwrap_or(0);
                match splitmix(&mut state) % 3 {
                    0 if at < input.len() => {
                        input[at] = u8::try_from(splitmix(&mut state) % 128).unwrap_or(0);
                    }
                    1 if at < input.len() => {
                        let end = (at + 1 + (splitmix(&mut state) % 8) as usize).min(input.len());
                        input.drain(at..end);
                    }
                    _ => {
                        let piece = PIECES[(splitmix(&mut state) % PIECES.len() as u64) as usize];
                        input.splice(at..at, piece.bytes());
                    }
                }
            }
            check_credential_invariants(&input);
            usable +=
                usize::from(Keyring::from_file_bytes(&input, "m").is_ok_and(|k| !k.is_empty()));
        }
        assert!(
            usable > INPUTS / 20 && usable < INPUTS * 19 / 20,
            "{usable} of {INPUTS} gave entries"
        );
    }
}
