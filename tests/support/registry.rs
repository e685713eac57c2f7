//! A real registry for integration tests: Debian's `docker-registry` (docker/distribution 2.8.2)
//! started on `127.0.0.1:0`, optionally with TLS (a CA made at test time), htpasswd basic auth,
//! or token auth backed by a JWT token server running in the test process.
//!
//! ```ignore
//! let reg = RegistryOptions::token().seeded().start();      // copy of the shared seeded store
//! let seeded = reg.seeded().unwrap();
//! let mark = reg.mark();
//! let resp = reg.client().get_manifest("lab/multi", "oci-index").await?;
//! assert_eq!(resp.digest().as_deref(), Some(seeded.digest("lab/multi", "oci-index")));
//! let reqs = reg.requests_since(mark);                       // from the registry's access log
//! ```
//!
//! Processes: the registry is killed when the `TestRegistry` is dropped, and it carries
//! `PR_SET_PDEATHSIG(SIGKILL)` so a test process that dies (panic=abort, SIGKILL, timeout)
//! does not leave it running. The registry is spawned from one long-lived helper thread,
//! because the death signal follows the *thread* that forked the child, not the process.
//!
//! Needs `/usr/bin/docker-registry` (`apt-get install docker-registry`), `openssl` for TLS and
//! token auth, and `htpasswd` (`apt-get install apache2-utils`) for basic auth.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use reqwest::Method;
use serde_json::{Value, json};

use super::images::{ACCEPT_ALL, Blob, Image, ImageSpec, IndexSpec, TestImage, sha256_digest};

// ------------------------------------------------------------- users ---

/// The first user of [`default_users`]: may do everything (push, delete, catalog).
pub const ADMIN_USER: &str = "tester";
pub const ADMIN_PASSWORD: &str = "s3cret";
/// Pull on every repository (with htpasswd every valid user may also push: it is all-or-nothing).
pub const READER_USER: &str = "reader";
pub const READER_PASSWORD: &str = "r3ad";
/// Token auth only: pull on `lab/multi` and nothing else.
pub const MULTI_USER: &str = "multi-only";
pub const MULTI_PASSWORD: &str = "m0nly";

/// Access a user may get in a token: `resource_type:name` (name may end in `*`) and actions
/// (`"*"` grants any action asked for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub resource_type: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Grant {
    /// `Grant::repository("lab/*", &["pull"])`; `"*"` matches every repository.
    pub fn repository(pattern: &str, actions: &[&str]) -> Grant {
        Grant {
            resource_type: "repository".into(),
            name: pattern.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }
    /// `registry:catalog:*`.
    pub fn catalog() -> Grant {
        Grant {
            resource_type: "registry".into(),
            name: "catalog".into(),
            actions: vec!["*".into()],
        }
    }
    fn matches(&self, resource_type: &str, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.name.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => self.name == name,
            }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password: String,
    /// Used by the token server only (htpasswd has no per-repository access).
    pub grants: Vec<Grant>,
}

impl User {
    pub fn new(name: &str, password: &str) -> User {
        User {
            name: name.into(),
            password: password.into(),
            grants: Vec::new(),
        }
    }
    pub fn grant(mut self, grant: Grant) -> User {
        self.grants.push(grant);
        self
    }
}

/// tester/s3cret (everything), reader/r3ad (pull anywhere), multi-only/m0nly (pull lab/multi).
pub fn default_users() -> Vec<User> {
    vec![
        User::new(ADMIN_USER, ADMIN_PASSWORD)
            .grant(Grant::repository("*", &["*"]))
            .grant(Grant::catalog()),
        User::new(READER_USER, READER_PASSWORD).grant(Grant::repository("*", &["pull"])),
        User::new(MULTI_USER, MULTI_PASSWORD).grant(Grant::repository("lab/multi", &["pull"])),
    ]
}

// ----------------------------------------------------------- options ---

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Anonymous pull and push.
    None,
    /// `auth.htpasswd` (bcrypt file made with the `htpasswd` CLI).
    Htpasswd,
    /// `auth.token` with a [`TokenServer`] in this process.
    Token,
}

#[derive(Clone, Debug)]
pub enum Storage {
    /// A new empty directory (deleted with the registry).
    Empty,
    /// Serve this directory as is; it is never deleted.
    Existing { path: PathBuf, read_only: bool },
    /// A private copy (`cp -a`) of this directory.
    CopyOf(PathBuf),
    /// A private, writable copy of the shared seeded store (see [`shared_seed`]).
    Seeded,
    /// The shared seeded store itself, served read-only (PUT/POST/DELETE get 405).
    SeededReadOnly,
}

#[derive(Clone, Debug)]
pub struct TokenOptions {
    pub service: String,
    pub issuer: String,
    /// `expires_in` and `exp - iat` of issued tokens. Distribution accepts tokens up to a
    /// minute past `exp` (clock-skew leeway), so expiry tests should look at the client side.
    pub expires_in: u64,
    /// What a request without credentials is granted (default: nothing).
    pub anonymous: Vec<Grant>,
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions {
            service: "test-registry".into(),
            issuer: "test-token-issuer".into(),
            expires_in: 300,
            anonymous: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RegistryOptions {
    pub tls: bool,
    pub auth: Auth,
    /// htpasswd entries / token-server users; the first one is the admin used by `client()`.
    pub users: Vec<User>,
    pub token: TokenOptions,
    pub storage: Storage,
    /// Go serves HTTP/2 over TLS unless disabled (`http.http2.disabled`).
    pub http2: bool,
    /// Where the registry sends its `notifications` (the real sender, with its retries).
    pub notify: Vec<NotifyEndpoint>,
    /// CA certificates (PEM) the registry trusts as a client, e.g. for HTTPS notification
    /// endpoints (Go reads them from `SSL_CERT_FILE`).
    pub trust: Option<Vec<u8>>,
}

/// One `notifications.endpoints` entry of the registry's configuration.
#[derive(Clone, Debug)]
pub struct NotifyEndpoint {
    pub name: String,
    pub url: String,
    /// Headers sent with every notification (`Authorization: Bearer …`).
    pub headers: Vec<(String, String)>,
    /// How long the registry waits for an answer, then retries.
    pub timeout: Duration,
    /// Failures in a row after which it waits `backoff` before the next attempt.
    pub threshold: u32,
    pub backoff: Duration,
    /// Leave out pull events and blob pushes (the recommended setting: they wake nothing).
    pub ignore_pulls: bool,
}

impl NotifyEndpoint {
    pub fn new(name: &str, url: &str) -> NotifyEndpoint {
        NotifyEndpoint {
            name: name.into(),
            url: url.into(),
            headers: Vec::new(),
            timeout: Duration::from_secs(15),
            threshold: 3,
            backoff: Duration::from_secs(1),
            ignore_pulls: true,
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

impl RegistryOptions {
    /// Plain HTTP, anonymous.
    pub fn plain() -> RegistryOptions {
        RegistryOptions {
            tls: false,
            auth: Auth::None,
            users: default_users(),
            token: TokenOptions::default(),
            storage: Storage::Empty,
            http2: true,
            notify: Vec::new(),
            trust: None,
        }
    }
    /// Plain HTTP with htpasswd basic auth (distribution 2.8 does not insist on TLS).
    pub fn htpasswd() -> RegistryOptions {
        RegistryOptions {
            auth: Auth::Htpasswd,
            ..RegistryOptions::plain()
        }
    }
    /// HTTPS (test CA, SANs 127.0.0.1 and localhost) with htpasswd basic auth.
    pub fn tls_htpasswd() -> RegistryOptions {
        RegistryOptions {
            tls: true,
            ..RegistryOptions::htpasswd()
        }
    }
    /// Plain HTTP with token auth; the token server is started with the registry.
    pub fn token() -> RegistryOptions {
        RegistryOptions {
            auth: Auth::Token,
            ..RegistryOptions::plain()
        }
    }
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }
    pub fn users(mut self, users: Vec<User>) -> Self {
        self.users = users;
        self
    }
    pub fn token_options(mut self, token: TokenOptions) -> Self {
        self.token = token;
        self
    }
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }
    /// Start on a private writable copy of the standard seeded images.
    pub fn seeded(self) -> Self {
        self.storage(Storage::Seeded)
    }
    /// Start read-only on the shared seeded store (cheapest; no writes possible).
    pub fn seeded_read_only(self) -> Self {
        self.storage(Storage::SeededReadOnly)
    }
    pub fn http2(mut self, on: bool) -> Self {
        self.http2 = on;
        self
    }
    /// Sends notifications to `endpoint` too; HTTPS endpoints must be signed by a CA in
    /// `SSL_CERT_FILE` (see [`RegistryOptions::trust`]).
    pub fn notify(mut self, endpoint: NotifyEndpoint) -> Self {
        self.notify.push(endpoint);
        self
    }
    /// Trusts the CA certificates in `pem` (alone) as a client.
    pub fn trust(mut self, pem: &[u8]) -> Self {
        self.trust = Some(pem.to_vec());
        self
    }
    pub fn start(self) -> TestRegistry {
        TestRegistry::start(self)
    }
}

// ---------------------------------------------------------- registry ---

/// TLS material of a registry: a throwaway CA and a server certificate it signed.
#[derive(Clone, Debug)]
pub struct Tls {
    pub ca_pem: Vec<u8>,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

pub struct TestRegistry {
    child: Child,
    addr: String,
    dir: PathBuf,
    temp: Option<tempfile::TempDir>,
    storage: PathBuf,
    config_path: PathBuf,
    stderr_log: PathBuf,
    log: AccessLog,
    tls: Option<Tls>,
    auth: Auth,
    users: Vec<User>,
    read_only: bool,
    seeded: Option<&'static Seeded>,
    token: Option<TokenServer>,
}

impl TestRegistry {
    pub fn plain() -> TestRegistry {
        RegistryOptions::plain().start()
    }
    pub fn tls_htpasswd() -> TestRegistry {
        RegistryOptions::tls_htpasswd().start()
    }
    pub fn token() -> TestRegistry {
        RegistryOptions::token().start()
    }

    /// Start a registry; panics with the registry's log if it does not come up.
    pub fn start(opts: RegistryOptions) -> TestRegistry {
        ensure_crypto();
        let temp = tempfile::Builder::new()
            .prefix("test-registry-")
            .tempdir()
            .expect("temp dir");
        let dir = temp.path().to_path_buf();
        assert!(
            !opts.users.is_empty(),
            "at least one user (the admin) is needed"
        );

        let tls = opts.tls.then(|| make_tls(&dir.join("tls")));
        let token = (opts.auth == Auth::Token).then(|| {
            TokenServer::start(&dir.join("token"), opts.token.clone(), opts.users.clone())
        });

        let mut seeded = None;
        let (storage, read_only) = match &opts.storage {
            Storage::Empty => (dir.join("data"), false),
            Storage::Existing { path, read_only } => (path.clone(), *read_only),
            Storage::CopyOf(src) => (copy_dir(src, &dir.join("data")), false),
            Storage::Seeded => {
                let shared = shared_seed();
                seeded = Some(&shared.seeded);
                (copy_dir(&shared.storage, &dir.join("data")), false)
            }
            Storage::SeededReadOnly => {
                let shared = shared_seed();
                seeded = Some(&shared.seeded);
                (shared.storage.clone(), true)
            }
        };
        fs::create_dir_all(&storage).unwrap();

        let mut auth_yaml = String::new();
        match opts.auth {
            Auth::None => {}
            Auth::Htpasswd => {
                let path = dir.join("htpasswd");
                make_htpasswd(&path, &opts.users);
                auth_yaml = format!(
                    "auth:\n  htpasswd:\n    realm: test-registry\n    path: {}\n",
                    q(&path)
                );
            }
            Auth::Token => {
                let t = token.as_ref().unwrap();
                auth_yaml = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    qs(t.realm()),
                    qs(t.service()),
                    qs(t.issuer()),
                    q(t.cert_path())
                );
            }
        }
        let mut http_yaml = String::from(
            "http:\n  addr: \"127.0.0.1:0\"\n  secret: test-registry-not-a-secret\n  \
             headers:\n    X-Content-Type-Options: [nosniff]\n",
        );
        if let Some(t) = &tls {
            http_yaml += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                q(&t.server_cert),
                q(&t.server_key)
            );
        }
        if !opts.http2 {
            http_yaml += "  http2:\n    disabled: true\n";
        }
        let mut notify_yaml = String::new();
        if !opts.notify.is_empty() {
            notify_yaml += "notifications:\n  endpoints:\n";
            for e in &opts.notify {
                notify_yaml += &format!(
                    "    - name: {}\n      url: {}\n      timeout: {}ms\n      threshold: {}\n      backoff: {}ms\n",
                    qs(&e.name),
                    qs(&e.url),
                    e.timeout.as_millis(),
                    e.threshold,
                    e.backoff.as_millis()
                );
                if !e.headers.is_empty() {
                    notify_yaml += "      headers:\n";
                    for (k, v) in &e.headers {
                        notify_yaml += &format!("        {}: [{}]\n", qs(k), qs(v));
                    }
                }
                if e.ignore_pulls {
                    // blob pushes are reported as application/octet-stream
                    notify_yaml += "      ignore:\n        mediatypes: [application/octet-stream]\n        actions: [pull]\n";
                }
            }
        }
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  formatter: text\n  fields:\n    service: test-registry\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
             maintenance:\n    uploadpurging:\n      enabled: false\n    readonly:\n      enabled: {read_only}\n\
             {http_yaml}{auth_yaml}{notify_yaml}",
            q(&storage)
        );
        let config_path = dir.join("config.yml");
        fs::write(&config_path, config).unwrap();

        let access_log = dir.join("access.log");
        let stderr_log = dir.join("registry.log");
        let mut cmd = Command::new(registry_binary());
        cmd.arg("serve")
            .arg(&config_path)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(File::create(&access_log).unwrap())
            .stderr(Stdio::piped());
        // a REGISTRY_* variable would silently override the config file
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("REGISTRY_") {
                cmd.env_remove(k);
            }
        }
        if let Some(pem) = &opts.trust {
            let path = dir.join("trust.pem");
            fs::write(&path, pem).unwrap();
            cmd.env("SSL_CERT_FILE", &path);
        }
        let mut child = spawn_with_parent_death_signal(cmd).unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (apt-get install docker-registry)",
                registry_binary()
            )
        });

        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log_path = stderr_log.clone();
        std::thread::Builder::new()
            .name("registry-stderr".into())
            .spawn(move || {
                let mut out = File::create(&log_path).ok();
                let mut tx = Some(tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(f) = out.as_mut() {
                        let _ = writeln!(f, "{line}");
                    }
                    if let Some(addr) = listening_addr(&line)
                        && let Some(tx) = tx.take()
                    {
                        let _ = tx.send(addr);
                    }
                }
            })
            .unwrap();
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(50));
                panic!(
                    "docker-registry did not report its address ({e:?}); config:\n{}\nlog:\n{}",
                    fs::read_to_string(&config_path).unwrap_or_default(),
                    fs::read_to_string(&stderr_log).unwrap_or_default()
                );
            }
        };
        let log = AccessLog {
            addr: addr.clone(),
            path: access_log,
            tls: tls.as_ref().map(|t| rustls_config(&t.ca_pem)),
        };
        TestRegistry {
            child,
            addr,
            dir,
            temp: Some(temp),
            storage,
            config_path,
            stderr_log,
            log,
            tls,
            auth: opts.auth,
            users: opts.users,
            read_only,
            seeded,
            token,
        }
    }

    /// `127.0.0.1:PORT` (what goes in an image reference).
    pub fn addr(&self) -> &str {
        &self.addr
    }
    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme(), self.addr)
    }
    /// An image reference on this registry: `127.0.0.1:PORT/repo:tag`, or `…/repo@sha256:…`
    /// when `reference` is a digest.
    pub fn image_ref(&self, repo: &str, reference: &str) -> String {
        let sep = if reference.contains(':') { '@' } else { ':' };
        format!("{}/{repo}{sep}{reference}", self.addr)
    }
    /// The same registry by name (`localhost` is in the certificate's SANs).
    pub fn localhost_url(&self) -> String {
        format!("{}://localhost:{}", self.scheme(), self.port())
    }
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }
    /// PEM of the CA that signed the server certificate (TLS registries only).
    pub fn ca_pem(&self) -> Option<&[u8]> {
        self.tls.as_ref().map(|t| t.ca_pem.as_slice())
    }
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca_cert.as_path())
    }
    pub fn auth(&self) -> Auth {
        self.auth
    }
    pub fn users(&self) -> &[User] {
        &self.users
    }
    /// The first user: (name, password).
    pub fn admin(&self) -> (&str, &str) {
        (&self.users[0].name, &self.users[0].password)
    }
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }
    /// The standard images, when started with `seeded()` / `seeded_read_only()`.
    pub fn seeded(&self) -> Option<&'static Seeded> {
        self.seeded
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }
    pub fn access_log_path(&self) -> &Path {
        &self.log.path
    }
    /// The registry's application log (stderr).
    pub fn stderr_log(&self) -> String {
        fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// A client with the admin's credentials (none on an anonymous registry), trusting the CA.
    pub fn client(&self) -> RegistryClient {
        match self.auth {
            Auth::None => self.client_with(ClientAuth::Anonymous),
            Auth::Htpasswd | Auth::Token => {
                let (u, p) = self.admin();
                self.client_with(ClientAuth::basic(u, p))
            }
        }
    }
    pub fn anonymous_client(&self) -> RegistryClient {
        self.client_with(ClientAuth::Anonymous)
    }
    /// Basic credentials (sent to the registry, or to the token server on a Bearer challenge).
    pub fn client_as(&self, user: &str, password: &str) -> RegistryClient {
        self.client_with(ClientAuth::basic(user, password))
    }
    pub fn client_with(&self, auth: ClientAuth) -> RegistryClient {
        RegistryClient::new(&self.url(), self.ca_pem(), auth)
    }

    /// Push the standard images (see [`STANDARD_TAGS`]) with the admin client.
    pub async fn seed_standard(&self) -> Result<Seeded> {
        seed_standard(&self.client()).await
    }

    /// Start of a counting window (the access log's current size).
    pub fn mark(&self) -> Mark {
        self.log.mark()
    }
    /// Requests the registry logged since `mark` (401s included), in completion order.
    /// Closes the window with a marker request (not returned) and waits until it is logged.
    pub fn requests_since(&self, mark: Mark) -> Vec<Request> {
        self.log.requests_since(mark)
    }
    /// [`requests_since`](Self::requests_since) on a blocking thread, for async tests.
    pub async fn requests_since_async(&self, mark: Mark) -> Vec<Request> {
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.requests_since(mark))
            .await
            .unwrap()
    }
    /// Raw access-log lines since `mark` (e.g. to see `HTTP/2.0`).
    pub fn log_lines_since(&self, mark: Mark) -> Vec<String> {
        self.log.lines_since(mark)
    }
    /// A cloneable, `Send` handle on the access log.
    pub fn access_log(&self) -> AccessLog {
        self.log.clone()
    }
}

/// A registry that goes away and comes back (fault tests).
impl TestRegistry {
    /// Kills the registry (SIGKILL): its port refuses connections until [`Self::restart`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the registry process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Starts the registry again on the same address, config and storage (after
    /// [`Self::stop`]), appending to the same logs, and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let append = |path: &Path| {
            fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
                .unwrap()
        };
        let mut cmd = Command::new(registry_binary());
        cmd.arg("serve")
            .arg(&self.config_path)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(append(&self.log.path))
            .stderr(append(&self.stderr_log));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("REGISTRY_") {
                cmd.env_remove(k);
            }
        }
        // the config says port 0; the same port again, so references stay valid
        cmd.env("REGISTRY_HTTP_ADDR", &self.addr);
        self.child = spawn_with_parent_death_signal(cmd).expect("restart docker-registry");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&self.addr).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "docker-registry exited on restart ({status}):\n{}",
                    self.stderr_log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry not listening on {} 30 s after a restart",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("KEEP_TEST_REGISTRY").is_some()
            && let Some(t) = self.temp.take()
        {
            eprintln!("KEEP_TEST_REGISTRY: kept {}", t.keep().display());
        }
    }
}

impl fmt::Debug for TestRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestRegistry")
            .field("url", &self.url())
            .field("auth", &self.auth)
            .field("pid", &self.child.id())
            .field("dir", &self.dir)
            .finish()
    }
}

fn registry_binary() -> String {
    std::env::var("DOCKER_REGISTRY_BIN").unwrap_or_else(|_| "docker-registry".into())
}

/// `msg="listening on 127.0.0.1:41041"` or `msg="listening on 127.0.0.1:41041, tls"`.
fn listening_addr(line: &str) -> Option<String> {
    let rest = line.split("listening on ").nth(1)?;
    let addr = rest.split(['"', ',', ' ']).next()?.trim();
    (!addr.is_empty()).then(|| addr.to_string())
}

/// YAML double-quoted path.
fn q(p: &Path) -> String {
    qs(&p.to_string_lossy())
}
fn qs(s: &str) -> String {
    format!("{s:?}")
}

fn copy_dir(src: &Path, dst: &Path) -> PathBuf {
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    let out = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dst)
        .output()
        .expect("cp");
    assert!(
        out.status.success(),
        "cp -a {src:?} {dst:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dst.to_path_buf()
}

/// Install aws-lc-rs as rustls' process-wide provider (ring is in the tree too).
pub fn ensure_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Spawn `cmd` so that it gets SIGKILL when this process dies. Children are forked from one
/// long-lived thread: `PR_SET_PDEATHSIG` fires when the forking *thread* exits, and test threads
/// end while a shared registry may still be in use.
pub fn spawn_with_parent_death_signal(mut cmd: Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt as _;
    type Job = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();

    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child between fork and exec. It only calls
    // prctl(2) and getppid(2), which are async-signal-safe, and it neither allocates nor
    // takes locks (io::Error::last_os_error/from_raw_os_error do not allocate).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // the parent may have died before prctl: then nobody would ever kill us
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("test-process-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap()
        .send((cmd, tx))
        .map_err(|_| io::Error::other("spawner thread gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("spawner thread gone"))?
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate (SANs IP:127.0.0.1, DNS:localhost), EC P-256, via `openssl`.
pub fn make_tls(dir: &Path) -> Tls {
    fs::create_dir_all(dir).unwrap();
    let openssl = |args: &str| {
        run(Command::new("openssl")
            .current_dir(dir)
            .args(args.split_whitespace()));
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    openssl(&format!(
        "req -x509 {ec} -keyout ca.key -out ca.crt -days 3650 -subj /CN=test-CA \
         -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
    ));
    openssl(&format!(
        "req -new {ec} -keyout server.key -out server.csr -subj /CN=localhost"
    ));
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n",
    )
    .unwrap();
    openssl(
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
         -days 825 -extfile server.ext",
    );
    Tls {
        ca_pem: fs::read(dir.join("ca.crt")).unwrap(),
        ca_cert: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
    }
}

/// A bcrypt htpasswd file (the only format distribution reads), via `htpasswd -B`.
fn make_htpasswd(path: &Path, users: &[User]) {
    for (i, u) in users.iter().enumerate() {
        let mut cmd = Command::new("htpasswd");
        cmd.arg(if i == 0 { "-Bbc" } else { "-Bb" })
            .args(["-C", "4"])
            .arg(path)
            .arg(&u.name)
            .arg(&u.password);
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run htpasswd ({e}): apt-get install apache2-utils"));
        assert!(
            out.status.success(),
            "htpasswd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn rustls_config(ca_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.expect("CA PEM")).expect("CA cert");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

// -------------------------------------------------------- access log ---

const MARK_PARAM: &str = "test-registry-mark";

/// A byte offset in the access log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mark(pub u64);

/// One access-log line: method, path without query string, status.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub status: u16,
}

impl Request {
    pub fn new(method: &str, path: &str, status: u16) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            status,
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.method, self.path, self.status)
    }
}

/// `"GET /v2/x 200"` per request, handy for `assert_eq!` with a readable diff.
pub fn summary(requests: &[Request]) -> Vec<String> {
    requests.iter().map(Request::to_string).collect()
}

/// Parses a combined-log line, HTTP/1.x or HTTP/2.0:
/// `127.0.0.1 - - [22/Nov/2026:08:10:41 +0000] "GET /v2/x?n=1 HTTP/1.1" 200 796 "" "ua"`.
pub fn parse_access_log_line(line: &str) -> Option<Request> {
    let mut parts = line.splitn(3, '"');
    let head = parts.next()?;
    let req = parts.next()?;
    let rest = parts.next()?;
    if !head.ends_with("] ") {
        return None;
    }
    let mut it = req.split(' ');
    let method = it.next()?;
    let target = it.next()?;
    let proto = it.next()?;
    if method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !proto.starts_with("HTTP/")
    {
        return None;
    }
    let status = rest.trim_start().split(' ').next()?.parse().ok()?;
    Some(Request::new(method, target.split('?').next()?, status))
}

/// The registry's access log (its stdout) plus what is needed to send marker requests.
#[derive(Clone)]
pub struct AccessLog {
    addr: String,
    path: PathBuf,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl AccessLog {
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn mark(&self) -> Mark {
        Mark(fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0))
    }
    pub fn requests_since(&self, mark: Mark) -> Vec<Request> {
        self.lines_since(mark)
            .iter()
            .filter_map(|l| parse_access_log_line(l))
            .collect()
    }
    /// Every request ever logged (marker requests excluded).
    pub fn all_requests(&self) -> Vec<Request> {
        self.requests_since(Mark(0))
    }
    pub fn lines_since(&self, mark: Mark) -> Vec<String> {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let id = format!(
            "{MARK_PARAM}={}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        self.send_marker(&id)
            .unwrap_or_else(|e| panic!("marker request to {} failed: {e}", self.addr));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let data = fs::read(&self.path).unwrap_or_default();
            let window = String::from_utf8_lossy(data.get(mark.0 as usize..).unwrap_or_default())
                .into_owned();
            if let Some(pos) = window.find(&id) {
                let before = &window[..window[..pos].rfind('\n').map_or(0, |i| i + 1)];
                return before
                    .lines()
                    .filter(|l| !l.contains(MARK_PARAM))
                    .map(String::from)
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "marker {id} never reached {}",
                self.path.display()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn send_marker(&self, id: &str) -> io::Result<()> {
        let req = format!(
            "GET /v2/?{id} HTTP/1.1\r\nHost: {}\r\nUser-Agent: test-registry-marker\r\nConnection: close\r\n\r\n",
            self.addr
        );
        let sock = TcpStream::connect(&self.addr)?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut buf = Vec::new();
        match &self.tls {
            None => {
                let mut sock = sock;
                sock.write_all(req.as_bytes())?;
                let _ = sock.read_to_end(&mut buf);
            }
            Some(cfg) => {
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                let conn =
                    rustls::ClientConnection::new(cfg.clone(), name).map_err(io::Error::other)?;
                let mut tls = rustls::StreamOwned::new(conn, sock);
                tls.write_all(req.as_bytes())?;
                let _ = tls.read_to_end(&mut buf);
            }
        }
        if !buf.starts_with(b"HTTP/1.1 ") {
            return Err(io::Error::other(format!(
                "no HTTP answer: {:?}",
                String::from_utf8_lossy(&buf)
            )));
        }
        Ok(())
    }
}

// ------------------------------------------------------ token server ---

/// One `access` claim entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// A request the token server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// `None` for anonymous requests (and for unknown users, with status 401).
    pub user: Option<String>,
    pub service: Option<String>,
    /// As asked (`scope` parameters, space-separated values split).
    pub scopes: Vec<String>,
    pub status: u16,
    pub granted: Vec<Access>,
}

struct TokenInner {
    key: aws_lc_rs::signature::EcdsaKeyPair,
    kid: String,
    opts: TokenOptions,
    users: Vec<User>,
    expires_in: AtomicU64,
    log: Mutex<Vec<TokenRequest>>,
    jti: AtomicU64,
}

/// A Docker-token-spec server on `http://127.0.0.1:PORT/token`: checks Basic credentials,
/// grants the intersection of what was asked and what the user may have, and returns an ES256
/// JWT whose `kid` names a key in the registry's `rootcertbundle`. Counts what it served.
pub struct TokenServer {
    addr: String,
    realm: String,
    cert_path: PathBuf,
    inner: Arc<TokenInner>,
    shutdown: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    /// Make a signing key and self-signed certificate in `dir` (openssl) and listen.
    pub fn start(dir: &Path, opts: TokenOptions, users: Vec<User>) -> TokenServer {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject as _;

        fs::create_dir_all(dir).unwrap();
        run(Command::new("openssl").current_dir(dir).args(
            "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
             -keyout token.key -out token.crt -days 3650 -subj /CN=test-token-signer"
                .split_whitespace(),
        ));
        let key = PrivateKeyDer::from_pem_file(dir.join("token.key")).expect("token key PEM");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key.secret_der())
            .expect("P-256 key");
        let kid = libtrust_key_id(key.public_key().as_ref());

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let inner = Arc::new(TokenInner {
            key,
            kid,
            expires_in: AtomicU64::new(opts.expires_in),
            opts,
            users,
            log: Mutex::new(Vec::new()),
            jti: AtomicU64::new(0),
        });
        let shutdown = Arc::new(AtomicBool::new(false));
        let thread = {
            let inner = inner.clone();
            let shutdown = shutdown.clone();
            std::thread::Builder::new()
                .name("token-server".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if shutdown.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        let inner = inner.clone();
                        let _ = std::thread::Builder::new().name("token-conn".into()).spawn(
                            move || {
                                let _ = inner.serve(conn);
                            },
                        );
                    }
                })
                .unwrap()
        };
        TokenServer {
            realm: format!("http://{addr}/token"),
            addr,
            cert_path: dir.join("token.crt"),
            inner,
            shutdown,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }
    /// `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> &str {
        &self.realm
    }
    pub fn service(&self) -> &str {
        &self.inner.opts.service
    }
    pub fn issuer(&self) -> &str {
        &self.inner.opts.issuer
    }
    /// PEM certificate of the signing key (the registry's `rootcertbundle`).
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }
    /// The JWT `kid` (libtrust fingerprint of the signing key).
    pub fn key_id(&self) -> &str {
        &self.inner.kid
    }
    pub fn set_expires_in(&self, secs: u64) {
        self.inner.expires_in.store(secs, Ordering::SeqCst);
    }

    /// Everything served so far, in order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.inner.log.lock().unwrap().clone()
    }
    pub fn count(&self) -> usize {
        self.inner.log.lock().unwrap().len()
    }
    /// Requests (any outcome) that asked for exactly this scope, e.g. `repository:lab/multi:pull`.
    pub fn count_for_scope(&self, scope: &str) -> usize {
        self.inner
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.scopes.iter().any(|s| s == scope))
            .count()
    }
    /// `scope -> number of requests` (a request asking for two scopes counts for both).
    pub fn counts_by_scope(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for r in self.inner.log.lock().unwrap().iter() {
            for s in &r.scopes {
                *m.entry(s.clone()).or_default() += 1;
            }
        }
        m
    }
    pub fn mark(&self) -> usize {
        self.count()
    }
    pub fn requests_since(&self, mark: usize) -> Vec<TokenRequest> {
        self.inner.log.lock().unwrap()[mark..].to_vec()
    }

    /// Mint a token directly (not over HTTP, not counted) with what `user` may have of `scopes`.
    pub fn issue(&self, user: Option<&str>, scopes: &[&str]) -> String {
        let grants = match user {
            None => &self.inner.opts.anonymous,
            Some(u) => {
                &self
                    .inner
                    .users
                    .iter()
                    .find(|x| x.name == u)
                    .expect("unknown user")
                    .grants
            }
        };
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        self.inner.mint(user.unwrap_or(""), &grant(grants, &scopes))
    }

    /// Ask for a token over HTTP as a client would: `(status, token)`.
    pub async fn request_token(
        &self,
        credentials: Option<(&str, &str)>,
        scopes: &[&str],
    ) -> Result<(u16, Option<String>)> {
        let http = reqwest::Client::builder().no_proxy().build()?;
        let mut url = format!("{}?service={}", self.realm, enc(self.service()));
        for s in scopes {
            url += &format!("&scope={}", enc(s));
        }
        let mut req = http.get(url);
        if let Some((u, p)) = credentials {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let body: Value = serde_json::from_slice(&resp.bytes().await?).unwrap_or(Value::Null);
        Ok((status, body["token"].as_str().map(String::from)))
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl fmt::Debug for TokenServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenServer")
            .field("realm", &self.realm)
            .field("kid", &self.inner.kid)
            .finish()
    }
}

/// Intersection of the requested scopes with the grants; scopes with nothing granted are left out.
fn grant(grants: &[Grant], scopes: &[String]) -> Vec<Access> {
    let mut out: Vec<Access> = Vec::new();
    for scope in scopes {
        let (Some((ty, rest)), Some((_, actions))) =
            (scope.split_once(':'), scope.rsplit_once(':'))
        else {
            continue;
        };
        let Some((name, _)) = rest.rsplit_once(':') else {
            continue;
        };
        let mut allowed: Vec<String> = Vec::new();
        for action in actions.split(',').filter(|a| !a.is_empty()) {
            let ok = grants
                .iter()
                .any(|g| g.matches(ty, name) && g.actions.iter().any(|a| a == "*" || a == action));
            if ok && !allowed.iter().any(|a| a == action) {
                allowed.push(action.to_string());
            }
        }
        if allowed.is_empty() {
            continue;
        }
        match out
            .iter_mut()
            .find(|a| a.resource_type == ty && a.name == name)
        {
            Some(a) => {
                for x in allowed {
                    if !a.actions.contains(&x) {
                        a.actions.push(x);
                    }
                }
            }
            None => out.push(Access {
                resource_type: ty.into(),
                name: name.into(),
                actions: allowed,
            }),
        }
    }
    out
}

impl TokenInner {
    fn mint(&self, sub: &str, access: &[Access]) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = json!({"typ": "JWT", "alg": "ES256", "kid": self.kid});
        let claims = json!({
            "iss": self.opts.issuer,
            "sub": sub,
            "aud": self.opts.service,
            "exp": now + self.expires_in.load(Ordering::SeqCst),
            "nbf": now.saturating_sub(10),
            "iat": now,
            "jti": format!("test-{}-{}", std::process::id(), self.jti.fetch_add(1, Ordering::Relaxed)),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(serde_json::to_vec(&header).unwrap()),
            B64URL.encode(serde_json::to_vec(&claims).unwrap())
        );
        let sig = self
            .key
            .sign(
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_input.as_bytes(),
            )
            .expect("ES256 signature");
        format!("{signing_input}.{}", B64URL.encode(sig.as_ref()))
    }

    fn serve(&self, mut conn: TcpStream) -> io::Result<()> {
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            let n = conn.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            if buf.len() > 64 * 1024 {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let method = first.next().unwrap_or_default();
        let target = first.next().unwrap_or_default();
        let authorization = lines.find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("authorization")
                .then(|| v.trim().to_string())
        });
        let (status, body, extra) = self.answer(method, target, authorization.as_deref());
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            _ => "Method Not Allowed",
        };
        let body = serde_json::to_vec(&body).unwrap();
        let mut resp = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
            body.len()
        )
        .into_bytes();
        resp.extend_from_slice(&body);
        conn.write_all(&resp)?;
        conn.flush()
    }

    fn answer(
        &self,
        method: &str,
        target: &str,
        authorization: Option<&str>,
    ) -> (u16, Value, String) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let params: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (dec(k), dec(v))
            })
            .collect();
        let scopes: Vec<String> = params
            .iter()
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| {
                v.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect();
        let service = params
            .iter()
            .find(|(k, _)| k == "service")
            .map(|(_, v)| v.clone());
        let mut record = TokenRequest {
            user: None,
            service: service.clone(),
            scopes,
            status: 0,
            granted: vec![],
        };
        let err = |code: &str, msg: &str| json!({"errors": [{"code": code, "message": msg}]});

        let (status, body, extra) = if method != "GET" {
            (
                405,
                err("UNSUPPORTED", "only GET is supported"),
                String::new(),
            )
        } else if path != "/token" {
            (404, err("NOT_FOUND", "not found"), String::new())
        } else {
            let user = match authorization {
                None => Ok(None),
                Some(h) => basic_credentials(h)
                    .and_then(|(u, p)| self.users.iter().find(|x| x.name == u && x.password == p))
                    .map(Some)
                    .ok_or(()),
            };
            match user {
                Err(()) => (
                    401,
                    err("UNAUTHORIZED", "invalid username or password"),
                    "WWW-Authenticate: Basic realm=\"test-token-server\"\r\n".to_string(),
                ),
                Ok(_) if service.as_deref().is_some_and(|s| s != self.opts.service) => (
                    400,
                    err("INVALID_REQUEST", "unknown service"),
                    String::new(),
                ),
                Ok(user) => {
                    record.user = user.map(|u| u.name.clone());
                    let grants = user.map_or(&self.opts.anonymous, |u| &u.grants);
                    record.granted = grant(grants, &record.scopes);
                    let token = self.mint(user.map_or("", |u| u.name.as_str()), &record.granted);
                    let body = json!({
                        "token": token,
                        "access_token": token,
                        "expires_in": self.expires_in.load(Ordering::SeqCst),
                        "issued_at": jiff::Timestamp::now().to_string(),
                    });
                    (200, body, String::new())
                }
            }
        };
        record.status = status;
        self.log.lock().unwrap().push(record);
        (status, body, extra)
    }
}

fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, b64) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = String::from_utf8(B64.decode(b64.trim()).ok()?).ok()?;
    let (u, p) = raw.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// libtrust key ID: SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits, base32,
/// 12 groups of 4 joined by `:`. `point` is the uncompressed P-256 point (65 bytes).
pub fn libtrust_key_id(point: &[u8]) -> String {
    const P256_SPKI_PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    assert_eq!(point.len(), 65, "uncompressed P-256 point expected");
    let mut der = P256_SPKI_PREFIX.to_vec();
    der.extend_from_slice(point);
    let hash = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&der)
    };
    let b32 = base32(&hash[..30]);
    b32.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u64, 0u32);
    for &b in data {
        acc = (acc << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Percent-encode everything but RFC 3986 unreserved characters.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn dec(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 3 <= b.len())
            .then(|| {
                std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .flatten();
        match (b[i], hex) {
            (_, Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (c, None) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ------------------------------------------------------------ client ---

#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    Anonymous,
    /// Sent to the registry as is; on a Bearer challenge, sent to the token realm instead.
    Basic {
        user: String,
        password: String,
    },
    /// A fixed token, never refreshed.
    Bearer(String),
}

impl ClientAuth {
    pub fn basic(user: &str, password: &str) -> ClientAuth {
        ClientAuth::Basic {
            user: user.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientAuth::Anonymous => write!(f, "Anonymous"),
            ClientAuth::Basic { user, .. } => write!(f, "Basic({user}:***)"),
            ClientAuth::Bearer(_) => write!(f, "Bearer(***)"),
        }
    }
}

/// A response with its body read.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    }
    /// `Docker-Content-Digest`.
    pub fn digest(&self) -> Option<String> {
        self.header("docker-content-digest")
    }
    pub fn content_type(&self) -> Option<String> {
        self.header("content-type")
    }
    /// `sha256:` of the body.
    pub fn body_digest(&self) -> String {
        sha256_digest(&self.body)
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// `errors[0].code` of a registry error body.
    pub fn error_code(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v["errors"][0]["code"].as_str().map(String::from)
    }
    /// The parsed `WWW-Authenticate` challenge.
    pub fn challenge(&self) -> Option<Challenge> {
        parse_challenge(&self.header("www-authenticate")?)
    }
    fn ok(self, expected: u16, what: &str) -> Result<HttpResponse> {
        ensure!(
            self.status == expected,
            "{what}: expected {expected}, got {}: {}",
            self.status,
            self.text()
        );
        Ok(self)
    }
}

/// `WWW-Authenticate: Bearer realm="…",service="…",scope="…"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }
}

pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, mut rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = BTreeMap::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let (v, a) = after.split_once(',').unwrap_or((after, ""));
            (v.trim().to_string(), a)
        };
        params.insert(key.trim().to_ascii_lowercase(), value);
        rest = after;
    }
    Some(Challenge {
        scheme: scheme.to_string(),
        params,
    })
}

/// The scope a registry asks for a request (`repository:<name>:pull` / `pull,push` / `delete`,
/// `registry:catalog:*`), or `None` for `/v2/`.
pub fn scope_for(method: &Method, path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    if rest.starts_with("_catalog") {
        return Some("registry:catalog:*".into());
    }
    let name = ["/manifests/", "/blobs/", "/tags/"]
        .iter()
        .filter_map(|m| rest.rfind(m).map(|i| &rest[..i]))
        .next()?;
    let actions = match *method {
        Method::GET | Method::HEAD => "pull",
        Method::DELETE => "delete",
        _ => "pull,push",
    };
    Some(format!("repository:{name}:{actions}"))
}

/// An async registry client on reqwest: manifest/blob GETs, pushes, deletes, and the Bearer
/// token dance (tokens cached per scope, so they are reused like a real client would).
#[derive(Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    auth: ClientAuth,
    tokens: Arc<Mutex<HashMap<String, String>>>,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base)
            .field("auth", &self.auth)
            .finish()
    }
}

impl RegistryClient {
    /// `base_url`: `http(s)://host:port`. `ca_pem`: the only trusted roots, if given
    /// (otherwise the platform's roots, which do not know a test CA).
    pub fn new(base_url: &str, ca_pem: Option<&[u8]>, auth: ClientAuth) -> RegistryClient {
        ensure_crypto();
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30));
        if let Some(pem) = ca_pem {
            b = b.tls_certs_only([reqwest::Certificate::from_pem(pem).expect("CA PEM")]);
        }
        RegistryClient {
            http: b.build().expect("reqwest client"),
            base: base_url.trim_end_matches('/').to_string(),
            auth,
            tokens: Arc::default(),
        }
    }
    pub fn base_url(&self) -> &str {
        &self.base
    }
    pub fn auth(&self) -> &ClientAuth {
        &self.auth
    }
    /// Same connection settings, other credentials, empty token cache.
    pub fn with_auth(&self, auth: ClientAuth) -> RegistryClient {
        RegistryClient {
            http: self.http.clone(),
            base: self.base.clone(),
            auth,
            tokens: Arc::default(),
        }
    }
    /// Cached tokens by scope.
    pub fn cached_tokens(&self) -> HashMap<String, String> {
        self.tokens.lock().unwrap().clone()
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{}", self.base, path_or_url)
        }
    }

    /// Exactly one request, with the given headers only (no credentials added).
    pub async fn send_raw(
        &self,
        method: Method,
        path_or_url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse> {
        let mut req = self.http.request(method.clone(), self.url(path_or_url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path_or_url}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await?.to_vec();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    /// A request with this client's credentials: Basic or a cached token up front; on a
    /// Bearer challenge, one token request to the realm and one retry. A failed token request
    /// leaves the 401 as the answer.
    pub async fn request(
        &self,
        method: Method,
        path_or_url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse> {
        let url = self.url(path_or_url);
        let path = url
            .split_once("://")
            .and_then(|(_, r)| r.find('/').map(|i| &r[i..]))
            .unwrap_or("/");
        let path = path.split('?').next().unwrap_or(path);
        let inferred = scope_for(&method, path);
        let cached = inferred
            .as_ref()
            .and_then(|s| self.tokens.lock().unwrap().get(s).cloned());
        let auth = match (&self.auth, cached) {
            (ClientAuth::Bearer(t), _) => Some(format!("Bearer {t}")),
            (_, Some(t)) => Some(format!("Bearer {t}")),
            (ClientAuth::Basic { user, password }, None) => Some(format!(
                "Basic {}",
                B64.encode(format!("{user}:{password}"))
            )),
            (ClientAuth::Anonymous, None) => None,
        };
        let with_auth = |auth: &Option<String>| {
            let mut h: Vec<(&str, &str)> = headers.to_vec();
            if let Some(a) = auth {
                h.push(("Authorization", a.as_str()));
            }
            h.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let h1 = with_auth(&auth);
        let h1: Vec<(&str, &str)> = h1.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let first = self
            .send_raw(method.clone(), &url, &h1, body.clone())
            .await?;
        if first.status != 401 || matches!(self.auth, ClientAuth::Bearer(_)) {
            return Ok(first);
        }
        let Some(ch) = first
            .challenge()
            .filter(|c| c.scheme.eq_ignore_ascii_case("bearer"))
        else {
            return Ok(first);
        };
        let Some(realm) = ch.param("realm") else {
            return Ok(first);
        };
        let scope = ch.param("scope").map(String::from).or(inferred.clone());
        let scopes: Vec<&str> = scope.iter().map(String::as_str).collect();
        let (status, token) = self
            .fetch_token(realm, ch.param("service"), &scopes)
            .await?;
        let Some(token) = token.filter(|_| status == 200) else {
            return Ok(first);
        };
        {
            let mut cache = self.tokens.lock().unwrap();
            for s in scope.iter().chain(inferred.iter()) {
                cache.insert(s.clone(), token.clone());
            }
        }
        let h2 = with_auth(&Some(format!("Bearer {token}")));
        let h2: Vec<(&str, &str)> = h2.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.send_raw(method, &url, &h2, body).await
    }

    /// GET `realm?service=…&scope=…` with this client's Basic credentials (if any):
    /// `(status, token)`.
    pub async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[&str],
    ) -> Result<(u16, Option<String>)> {
        let mut params = Vec::new();
        if let Some(s) = service {
            params.push(format!("service={}", enc(s)));
        }
        for s in scopes {
            params.push(format!("scope={}", enc(s)));
        }
        let url = format!(
            "{realm}{}{}",
            if realm.contains('?') { "&" } else { "?" },
            params.join("&")
        );
        let mut req = self.http.get(url);
        if let ClientAuth::Basic { user, password } = &self.auth {
            req = req.basic_auth(user, Some(password));
        }
        let resp = req.send().await.context("token request")?;
        let status = resp.status().as_u16();
        let body: Value = serde_json::from_slice(&resp.bytes().await?).unwrap_or(Value::Null);
        let token = body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .map(String::from);
        Ok((status, token))
    }

    pub async fn get(&self, path: &str) -> Result<HttpResponse> {
        self.request(Method::GET, path, &[], None).await
    }

    /// GET a manifest with all four manifest types in Accept.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<HttpResponse> {
        self.get_manifest_accept(repo, reference, Some(ACCEPT_ALL))
            .await
    }
    /// `accept: None` sends no Accept header at all.
    pub async fn get_manifest_accept(
        &self,
        repo: &str,
        reference: &str,
        accept: Option<&str>,
    ) -> Result<HttpResponse> {
        let h: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        self.request(
            Method::GET,
            &format!("/v2/{repo}/manifests/{reference}"),
            &h,
            None,
        )
        .await
    }
    pub async fn head_manifest(&self, repo: &str, reference: &str) -> Result<HttpResponse> {
        self.request(
            Method::HEAD,
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", ACCEPT_ALL)],
            None,
        )
        .await
    }
    pub async fn get_blob(&self, repo: &str, digest: &str) -> Result<HttpResponse> {
        self.request(
            Method::GET,
            &format!("/v2/{repo}/blobs/{digest}"),
            &[],
            None,
        )
        .await
    }
    pub async fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool> {
        let r = self
            .request(
                Method::HEAD,
                &format!("/v2/{repo}/blobs/{digest}"),
                &[],
                None,
            )
            .await?;
        match r.status {
            200 => Ok(true),
            404 => Ok(false),
            s => bail!("HEAD blob {repo}@{digest}: {s}"),
        }
    }
    /// `tags/list` (unsorted in distribution 2.8).
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>> {
        let r = self
            .get(&format!("/v2/{repo}/tags/list"))
            .await?
            .ok(200, "tags/list")?;
        Ok(r.json()["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(String::from))
            .collect())
    }

    /// Upload a blob unless the repository has it (HEAD): POST an upload, PUT `?digest=`.
    /// Returns whether it was uploaded.
    pub async fn push_blob(&self, repo: &str, blob: &Blob) -> Result<bool> {
        if self.blob_exists(repo, &blob.digest).await? {
            return Ok(false);
        }
        let started = self
            .request(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                Some(Vec::new()),
            )
            .await?
            .ok(202, "POST blob upload")?;
        let location = started
            .header("location")
            .ok_or_else(|| anyhow!("upload without Location"))?;
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={}", enc(&blob.digest));
        let done = self
            .request(
                Method::PUT,
                &url,
                &[("Content-Type", "application/octet-stream")],
                Some(blob.bytes.clone()),
            )
            .await?
            .ok(201, "PUT blob")?;
        ensure!(
            done.digest().as_deref() == Some(blob.digest.as_str()),
            "registry stored another digest"
        );
        Ok(true)
    }

    /// PUT a manifest under a tag or digest; returns `Docker-Content-Digest`.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String> {
        let r = self
            .request(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("Content-Type", media_type)],
                Some(bytes.to_vec()),
            )
            .await?
            .ok(201, &format!("PUT manifest {repo}:{reference}"))?;
        r.digest()
            .ok_or_else(|| anyhow!("no Docker-Content-Digest"))
    }

    /// Blobs and child manifests (by digest) of `image`, everything but the top manifest.
    pub async fn push_content(&self, repo: &str, image: &TestImage) -> Result<()> {
        for b in image.blobs() {
            self.push_blob(repo, b).await?;
        }
        if let TestImage::Index(index) = image {
            for child in &index.children {
                self.push_single_by_digest(repo, child).await?;
            }
        }
        Ok(())
    }

    async fn push_single_by_digest(&self, repo: &str, image: &Image) -> Result<()> {
        let d = self
            .put_manifest(
                repo,
                image.digest(),
                image.media_type(),
                &image.manifest.bytes,
            )
            .await?;
        ensure!(
            d == image.digest(),
            "child {} stored as {d}",
            image.digest()
        );
        Ok(())
    }

    /// Push `image` (blobs, children, then the top manifest) and point `tag` at it; also the
    /// way to move an existing tag to a new image. Returns the digest.
    pub async fn push(&self, repo: &str, tag: &str, image: &TestImage) -> Result<String> {
        self.push_content(repo, image).await?;
        self.tag(repo, tag, image).await
    }

    /// Push `image` without a tag; returns the digest.
    pub async fn push_by_digest(&self, repo: &str, image: &TestImage) -> Result<String> {
        self.push_content(repo, image).await?;
        self.tag(repo, image.digest(), image).await
    }

    /// PUT only the top manifest under `tag` (its content must already be in `repo`): moves a tag.
    pub async fn tag(&self, repo: &str, tag: &str, image: &TestImage) -> Result<String> {
        let d = self
            .put_manifest(repo, tag, image.media_type(), &image.manifest().bytes)
            .await?;
        ensure!(
            d == image.digest(),
            "{repo}:{tag} stored as {d}, built {}",
            image.digest()
        );
        Ok(d)
    }

    /// DELETE a manifest by digest (202); every tag pointing at it goes too. Distribution 2.8
    /// cannot delete a tag alone (DELETE by tag is 400).
    pub async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<()> {
        self.request(
            Method::DELETE,
            &format!("/v2/{repo}/manifests/{digest}"),
            &[],
            None,
        )
        .await?
        .ok(202, "DELETE manifest")?;
        Ok(())
    }
}

// ----------------------------------------------------------- seeding ---

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StandardKind {
    /// OCI image manifest, linux/amd64, seed 1.
    OciSingle,
    /// Docker schema2 manifest, linux/amd64, seed 1 (same layers as `OciSingle`).
    DockerSingle,
    /// OCI index: linux/amd64, linux/arm64/v8, linux/arm/v7 (amd64 child = `OciSingle`).
    OciIndex,
    /// Docker manifest list over the same three platforms (amd64 child = `DockerSingle`).
    DockerList,
    /// OCI index: linux/amd64, linux/arm64/v8 and one attestation manifest for each.
    Attest,
}

impl StandardKind {
    pub const ALL: [StandardKind; 5] = [
        StandardKind::OciSingle,
        StandardKind::DockerSingle,
        StandardKind::OciIndex,
        StandardKind::DockerList,
        StandardKind::Attest,
    ];
}

/// Where [`seed_standard`] puts what: (repository, tag, kind).
pub const STANDARD_TAGS: &[(&str, &str, StandardKind)] = &[
    ("lab/oci-single", "v1", StandardKind::OciSingle),
    ("lab/oci-single", "latest", StandardKind::OciSingle),
    ("lab/docker-single", "v1", StandardKind::DockerSingle),
    ("lab/docker-single", "latest", StandardKind::DockerSingle),
    ("lab/multi", "oci-index", StandardKind::OciIndex),
    ("lab/multi", "docker-list", StandardKind::DockerList),
    ("lab/oci-index", "latest", StandardKind::OciIndex),
    ("lab/docker-list", "latest", StandardKind::DockerList),
    ("lab/nested/deep/repo", "v1", StandardKind::DockerList),
    ("lab/attest", "latest", StandardKind::Attest),
];

/// The standard images (deterministic: same digests in every process).
#[derive(Clone, Debug)]
pub struct StandardImages {
    pub oci_single: TestImage,
    pub docker_single: TestImage,
    pub oci_index: TestImage,
    pub docker_list: TestImage,
    pub attest: TestImage,
}

impl StandardImages {
    pub fn build() -> StandardImages {
        StandardImages {
            oci_single: ImageSpec::single("amd64", 1).into(),
            docker_single: ImageSpec::single("amd64", 1).docker().into(),
            oci_index: IndexSpec::oci(1).into(),
            docker_list: IndexSpec::docker(1).into(),
            attest: IndexSpec::oci(1)
                .platforms(&["linux/amd64", "linux/arm64/v8"])
                .with_attestations()
                .into(),
        }
    }
    pub fn get(&self, kind: StandardKind) -> &TestImage {
        match kind {
            StandardKind::OciSingle => &self.oci_single,
            StandardKind::DockerSingle => &self.docker_single,
            StandardKind::OciIndex => &self.oci_index,
            StandardKind::DockerList => &self.docker_list,
            StandardKind::Attest => &self.attest,
        }
    }
}

/// What a registry holds after [`seed_standard`].
#[derive(Clone, Debug)]
pub struct Seeded {
    pub images: StandardImages,
}

impl Seeded {
    /// (repository, tag, image) for every seeded tag.
    pub fn tags(&self) -> impl Iterator<Item = (&'static str, &'static str, &TestImage)> {
        STANDARD_TAGS
            .iter()
            .map(|(r, t, k)| (*r, *t, self.images.get(*k)))
    }
    /// The image behind `repo:tag`; panics for a tag that was not seeded.
    pub fn image(&self, repo: &str, tag: &str) -> &TestImage {
        let (_, _, k) = STANDARD_TAGS
            .iter()
            .find(|(r, t, _)| *r == repo && *t == tag)
            .unwrap_or_else(|| panic!("{repo}:{tag} is not a seeded tag"));
        self.images.get(*k)
    }
    /// Top-level digest of `repo:tag`.
    pub fn digest(&self, repo: &str, tag: &str) -> &str {
        self.image(repo, tag).digest()
    }
    /// Digest of the `platform` child (e.g. `"linux/arm64/v8"`) of `repo:tag`.
    pub fn child_digest(&self, repo: &str, tag: &str, platform: &str) -> &str {
        self.image(repo, tag)
            .child(platform)
            .unwrap_or_else(|| panic!("{repo}:{tag} has no {platform}"))
            .digest()
    }
    pub fn kind(&self, kind: StandardKind) -> &TestImage {
        self.images.get(kind)
    }
}

/// Push every entry of [`STANDARD_TAGS`] (repositories in parallel).
pub async fn seed_standard(client: &RegistryClient) -> Result<Seeded> {
    let images = StandardImages::build();
    let mut repos: Vec<&str> = STANDARD_TAGS.iter().map(|(r, _, _)| *r).collect();
    repos.dedup();
    let jobs = repos.into_iter().map(|repo| {
        let images = &images;
        async move {
            for (_, tag, kind) in STANDARD_TAGS.iter().filter(|(r, _, _)| *r == repo) {
                client
                    .push(repo, tag, images.get(*kind))
                    .await
                    .with_context(|| format!("seeding {repo}:{tag}"))?;
            }
            anyhow::Ok(())
        }
    });
    futures::future::try_join_all(jobs).await?;
    Ok(Seeded { images })
}

/// A registry storage directory holding the standard images, shared by the whole machine.
#[derive(Debug)]
pub struct SharedSeed {
    /// The registry's `rootdirectory`; serve it read-only or copy it.
    pub storage: PathBuf,
    pub seeded: Seeded,
    /// Time spent seeding in this process (zero when an earlier process had done it).
    pub seeding_time: Duration,
}

/// The standard images seeded once into `$TMPDIR/imagestream-test-registry-seed-<hash>/data`,
/// where `<hash>` covers every seeded digest: later test processes (e.g. under nextest) reuse it.
pub fn shared_seed() -> &'static SharedSeed {
    static SEED: OnceLock<SharedSeed> = OnceLock::new();
    SEED.get_or_init(|| {
        let images = StandardImages::build();
        let mut key = String::from("layout-v1\n");
        for (r, t, k) in STANDARD_TAGS {
            key += &format!("{r}:{t}={}\n", images.get(*k).digest());
        }
        let hash = &sha256_digest(key.as_bytes())[7..23];
        let root = std::env::temp_dir().join(format!("imagestream-test-registry-seed-{hash}"));
        let done = root.join("complete");
        let t0 = Instant::now();
        if fs::read_to_string(&done).ok().as_deref() != Some(key.as_str()) {
            let tmp = std::env::temp_dir().join(format!(
                "imagestream-test-registry-seed-{hash}.tmp-{}-{}",
                std::process::id(),
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            let data = tmp.join("data");
            fs::create_dir_all(&data).unwrap();
            // own thread and runtime: callable from sync tests and from inside any async runtime
            let seeding = data.clone();
            std::thread::spawn(move || {
                let reg = RegistryOptions::plain()
                    .storage(Storage::Existing {
                        path: seeding,
                        read_only: false,
                    })
                    .start();
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(reg.seed_standard())
                    .expect("seeding the shared registry store");
            })
            .join()
            .expect("seeding thread panicked");
            fs::write(tmp.join("complete"), &key).unwrap();
            if fs::rename(&tmp, &root).is_err() {
                // another process won the race (or a stale incomplete dir is in the way)
                let _ = fs::remove_dir_all(&tmp);
                if fs::read_to_string(&done).ok().as_deref() != Some(key.as_str()) {
                    let _ = fs::remove_dir_all(&root);
                    panic!(
                        "shared seed dir {} was broken; removed it, rerun",
                        root.display()
                    );
                }
            }
        }
        SharedSeed {
            storage: root.join("data"),
            seeded: Seeded { images },
            seeding_time: t0.elapsed(),
        }
    })
}
