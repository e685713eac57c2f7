//! A real kube-apiserver + etcd for integration tests (`e2e/cluster/`, see
//! `/work/shared/docs/apiserver-harness.md`).
//!
//! - [`cluster`] gives the process-wide cluster: the shared one named by
//!   `IMAGESTREAM_TEST_KUBECONFIG` (set by `e2e/with-cluster.sh`), or else one harness started
//!   for this test process on a temp dir with free ports.
//! - [`TestCluster::start`] starts a private harness owned by the caller (stopped on drop);
//!   [`TestCluster::start_restartable`] one that can be stopped and started again on the same
//!   data (an apiserver restart).
//! - [`TestCluster::client`] is an admin (`system:masters`) client;
//!   [`TestCluster::service_account_client`] a client for a ServiceAccount token, to run code
//!   under real RBAC; [`fresh_namespace`] a unique throwaway namespace.
//!
//! The harness binary comes from `IMAGESTREAM_CLUSTER_HARNESS`, else `e2e/cluster/build.sh`
//! (cached; about a second when warm), else `target/e2e/cluster-harness`.
//!
//! A harness started here gets `PR_SET_PDEATHSIG` = SIGTERM, so it stops when the test process
//! dies, however it dies. It runs kube-controller-manager beside kube-apiserver (workloads
//! roll out, ownerReferences are garbage-collected, namespaces finish deleting), but no
//! scheduler or kubelet and no service-account controllers: there is no `default`
//! ServiceAccount.
//!
//! Build a new [`kube::Client`] per test (each `#[tokio::test]` has its own runtime, and a
//! client's background tasks die with the runtime that created them), which is why
//! [`TestCluster::client`] returns a fresh client on every call.

use std::{
    io::{Read, Seek, SeekFrom},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex, OnceLock, PoisonError,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::{Namespace, ServiceAccount},
};
use kube::{
    Api, Client, Config,
    api::{ObjectMeta, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};

/// Environment variable naming the kubeconfig of a shared, already running cluster.
pub const SHARED_KUBECONFIG_ENV: &str = "IMAGESTREAM_TEST_KUBECONFIG";
/// Environment variable naming the harness binary to use instead of building it.
pub const HARNESS_BINARY_ENV: &str = "IMAGESTREAM_CLUSTER_HARNESS";
/// How long a harness may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Label put on every namespace made by [`fresh_namespace`].
pub const TEST_NAMESPACE_LABEL: &str = "imagestream-operator.test/ephemeral";

const REPO_ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Installs rustls' aws-lc-rs provider as the process default. Must run before any kube
/// `Client` is built; every constructor here calls it. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A kube-apiserver the tests can talk to.
pub struct TestCluster {
    kubeconfig: PathBuf,
    harness: Option<Harness>,
}

/// A harness process started by this test process.
struct Harness {
    /// The running harness process (replaced by [`TestCluster::start_again`]).
    child: Mutex<Arc<Mutex<Child>>>,
    dir: PathBuf,
    /// The binary and arguments that start it again, for a restartable cluster.
    restart: Option<(PathBuf, Vec<String>)>,
    /// Set when this value owns the directory (removed on drop). `None` for the process-wide
    /// harness, which is never dropped and removes its own directory on exit.
    _tempdir: Option<tempfile::TempDir>,
}

/// The process-wide cluster: started once, shared by every test in this process.
///
/// If `IMAGESTREAM_TEST_KUBECONFIG` is set, that cluster is used and nothing is started.
/// Otherwise a harness is started on first use (see [`TestCluster::start`]); it stops when
/// the test process exits. Panics, with the tail of the harness log, if it cannot start.
pub async fn cluster() -> &'static TestCluster {
    static CLUSTER: OnceLock<Result<TestCluster, String>> = OnceLock::new();
    install_crypto_provider();
    let result = match CLUSTER.get() {
        Some(result) => result,
        None => {
            let joined = tokio::task::spawn_blocking(|| {
                CLUSTER.get_or_init(|| {
                    std::panic::catch_unwind(|| match std::env::var_os(SHARED_KUBECONFIG_ENV) {
                        Some(path) if !path.is_empty() => TestCluster::from_kubeconfig(path),
                        _ => TestCluster::start_blocking(true),
                    })
                    .map_err(|panic| panic_message(&panic))
                })
            })
            .await;
            match joined {
                Ok(result) => result,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => panic!("starting the test cluster: {e}"),
            }
        }
    };
    match result {
        Ok(cluster) => cluster,
        Err(message) => {
            panic!("the test cluster could not be started earlier in this process: {message}")
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "(non-string panic)".to_string()
    }
}

impl TestCluster {
    /// Starts a private harness on a fresh temp dir with free ports and waits (up to
    /// [`READY_TIMEOUT`]) until it is ready. It is killed when the value is dropped, and also
    /// if the test process dies. Panics with the tail of the harness log on failure.
    pub async fn start() -> TestCluster {
        install_crypto_provider();
        match tokio::task::spawn_blocking(|| TestCluster::start_blocking(false)).await {
            Ok(cluster) => cluster,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("starting the test cluster: {e}"),
        }
    }

    /// Uses an already running cluster through its kubeconfig; nothing is started or stopped.
    pub fn from_kubeconfig(path: impl Into<PathBuf>) -> TestCluster {
        let kubeconfig = path.into();
        assert!(
            kubeconfig.is_file(),
            "kubeconfig {} does not exist (from {SHARED_KUBECONFIG_ENV}?)",
            kubeconfig.display()
        );
        TestCluster {
            kubeconfig,
            harness: None,
        }
    }

    fn start_blocking(process_wide: bool) -> TestCluster {
        let binary = harness_binary();
        let mut last_failure = String::new();
        // A port picked free by the harness can be taken by someone else before it binds;
        // that is retried with new ports.
        for _attempt in 0..3 {
            let tempdir = tempfile::Builder::new()
                .prefix("imagestream-cluster-")
                .tempdir()
                .expect("creating a temp dir for the cluster harness");
            let dir = tempdir.path().to_path_buf();
            // On SIGTERM (PR_SET_PDEATHSIG) the harness removes its directory itself: a
            // static is never dropped, and a killed test process drops nothing. After a
            // failure it keeps the directory, so the log tail below can be read.
            let args = vec!["--remove-dir-on-exit".to_string()];
            let (child, outcome) = spawn_and_wait(&binary, &dir, &args);
            match outcome {
                Ok(()) => {
                    let harness = Harness {
                        child: Mutex::new(child),
                        dir: dir.clone(),
                        restart: None,
                        _tempdir: if process_wide {
                            // The harness removes the directory itself on exit
                            // (--remove-dir-on-exit); a static is never dropped.
                            let _ = tempdir.keep();
                            None
                        } else {
                            Some(tempdir)
                        },
                    };
                    return TestCluster {
                        kubeconfig: dir.join("kubeconfig"),
                        harness: Some(harness),
                    };
                }
                Err(why) => {
                    kill_and_wait(&child);
                    let tail = log_tail(&dir, 60);
                    let kept = tempdir.keep();
                    last_failure = format!(
                        "cluster harness {} failed: {why}.\nIts directory is kept at {}.\n--- tail of the harness log ---\n{tail}",
                        binary.display(),
                        kept.display()
                    );
                    if tail.contains("address already in use") {
                        eprintln!("cluster harness: port conflict, retrying:\n{last_failure}");
                        continue;
                    }
                    break;
                }
            }
        }
        panic!("{last_failure}");
    }

    /// Starts a private harness like [`Self::start`] that can be stopped and started again on
    /// the same etcd data, PKI and port ([`Self::stop`], [`Self::start_again`]): a restart of
    /// the apiserver, after which clients, tokens and resourceVersions from before still work.
    pub async fn start_restartable() -> TestCluster {
        install_crypto_provider();
        let started = tokio::task::spawn_blocking(|| {
            let binary = harness_binary();
            let tempdir = tempfile::Builder::new()
                .prefix("imagestream-cluster-")
                .tempdir()
                .expect("creating a temp dir for the cluster harness");
            let dir = tempdir.path().to_path_buf();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let args = vec!["--keep".to_string(), format!("--port={port}")];
            let (child, outcome) = spawn_and_wait(&binary, &dir, &args);
            if let Err(why) = outcome {
                kill_and_wait(&child);
                panic!(
                    "cluster harness {} failed: {why}.\n{}",
                    binary.display(),
                    log_tail(&dir, 60)
                );
            }
            TestCluster {
                kubeconfig: dir.join("kubeconfig"),
                harness: Some(Harness {
                    child: Mutex::new(child),
                    dir,
                    restart: Some((binary, args)),
                    _tempdir: Some(tempdir),
                }),
            }
        })
        .await;
        match started {
            Ok(cluster) => cluster,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("starting the test cluster: {e}"),
        }
    }

    /// Stops the apiserver of a cluster from [`Self::start_restartable`] the way a node stops
    /// it (SIGTERM: graceful shutdown, then etcd); returns once the harness has exited.
    pub async fn stop(&self) {
        let harness = self.restartable();
        let child = harness
            .child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        tokio::task::spawn_blocking(move || {
            let mut child = child.lock().unwrap_or_else(PoisonError::into_inner);
            let pid = i32::try_from(child.id()).expect("harness pid");
            // SAFETY: kill(2) on our own, not yet reaped, child
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let status = child.wait().expect("waiting for the harness to stop");
            assert!(status.success(), "the harness stopped with {status}");
        })
        .await
        .expect("stopping the harness");
    }

    /// Starts the cluster stopped by [`Self::stop`] again on the same data, PKI and port;
    /// returns once it is ready.
    pub async fn start_again(&self) {
        let harness = self.restartable();
        let (binary, args) = harness.restart.clone().expect("restartable");
        let dir = harness.dir.clone();
        let (child, outcome) =
            tokio::task::spawn_blocking(move || spawn_and_wait(&binary, &dir, &args))
                .await
                .expect("starting the harness again");
        *harness.child.lock().unwrap_or_else(PoisonError::into_inner) = child.clone();
        if let Err(why) = outcome {
            kill_and_wait(&child);
            panic!(
                "the harness did not start again: {why}\n{}",
                log_tail(&harness.dir, 60)
            );
        }
    }

    fn restartable(&self) -> &Harness {
        self.harness
            .as_ref()
            .filter(|h| h.restart.is_some())
            .expect("a cluster from TestCluster::start_restartable")
    }

    /// Path of the admin kubeconfig (client certificate of `system:masters`), e.g. for `kubectl`.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The harness's working directory (`cluster.log`, `pki/`, …), if this process started it.
    pub fn harness_dir(&self) -> Option<&Path> {
        self.harness.as_ref().map(|h| h.dir.as_path())
    }

    /// An admin `kube::Config` read from [`Self::kubeconfig`].
    pub async fn config(&self) -> Config {
        config_from_file(&self.kubeconfig).await
    }

    /// A new admin client (`system:masters`). Build one per test (see the module docs).
    pub async fn client(&self) -> Client {
        Client::try_from(self.config().await).expect("building the admin kube client")
    }

    /// A `kubectl` command pointed at this cluster as admin.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Creates ServiceAccount `namespace/name` (if missing), obtains a token for it through the
    /// TokenRequest API (valid one hour) and returns a client and a kubeconfig that
    /// authenticate with that token, so code runs under the RBAC granted to that account.
    pub async fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
    ) -> ServiceAccountClient {
        let admin = self.client().await;
        let accounts: Api<ServiceAccount> = Api::namespaced(admin, namespace);
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        match accounts.create(&PostParams::default(), &sa).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => panic!("creating ServiceAccount {namespace}/{name}: {e}"),
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        let token = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for ServiceAccount {namespace}/{name}: {e}"))
            .status
            .unwrap_or_else(|| panic!("TokenRequest for {namespace}/{name} returned no status"))
            .token;

        // Same cluster entry (server and CA) as the admin kubeconfig, but the token as user.
        let admin_kc = Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.kubeconfig.display()));
        let context_name = admin_kc.current_context.clone().unwrap_or_default();
        let cluster_name = admin_kc
            .contexts
            .iter()
            .find(|c| c.name == context_name)
            .and_then(|c| c.context.as_ref())
            .map(|c| c.cluster.clone())
            .unwrap_or_default();
        let cluster = admin_kc
            .clusters
            .iter()
            .find(|c| c.name == cluster_name)
            .or(admin_kc.clusters.first())
            .expect("the admin kubeconfig has no cluster");
        let user = format!("system:serviceaccount:{namespace}:{name}");
        let kc = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{ "name": user, "user": { "token": token } }],
            "contexts": [{
                "name": user,
                "context": { "cluster": cluster.name, "user": user, "namespace": namespace },
            }],
            "current-context": user,
        });
        let mut file = tempfile::Builder::new()
            .prefix("imagestream-sa-kubeconfig-")
            .suffix(".json")
            .tempfile()
            .expect("creating a kubeconfig file");
        serde_json::to_writer_pretty(&mut file, &kc)
            .expect("writing the ServiceAccount kubeconfig");
        let kubeconfig = file.into_temp_path();
        let config = config_from_file(&kubeconfig).await;
        let client =
            Client::try_from(config.clone()).expect("building the ServiceAccount kube client");
        ServiceAccountClient {
            client,
            config,
            token,
            namespace: namespace.to_string(),
            name: name.to_string(),
            kubeconfig,
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Some(harness) = &self.harness {
            kill_and_wait(&harness.child.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }
}

/// Starts the harness on `dir` with `args` (besides `--dir`) and waits up to
/// [`READY_TIMEOUT`] for its ready marker.
fn spawn_and_wait(
    binary: &Path,
    dir: &Path,
    args: &[String],
) -> (Arc<Mutex<Child>>, Result<(), String>) {
    let ready = dir.join("ready");
    let _ = std::fs::remove_file(&ready);
    let mut cmd = Command::new(binary);
    cmd.arg("--dir").arg(dir).args(args);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    // The harness sends its own stderr to DIR/cluster.log once it has parsed its flags;
    // anything before that lands here.
    let early = std::fs::File::create(dir.join("harness.stderr")).expect("creating harness.stderr");
    cmd.stderr(early);
    set_parent_death_signal(&mut cmd);
    let child = spawn_owned(cmd)
        .unwrap_or_else(|e| panic!("cannot run cluster harness {}: {e}", binary.display()));
    let deadline = Instant::now() + READY_TIMEOUT;
    let outcome = loop {
        if ready.is_file() {
            break Ok(());
        }
        if let Some(status) = child
            .lock()
            .unwrap()
            .try_wait()
            .expect("waiting for the harness")
        {
            break Err(format!(
                "the harness exited with {status} before it was ready"
            ));
        }
        if Instant::now() >= deadline {
            break Err(format!(
                "the harness was not ready after {}s",
                READY_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (child, outcome)
}

/// A client authenticated as a ServiceAccount (bearer token from the TokenRequest API).
pub struct ServiceAccountClient {
    pub client: Client,
    pub config: Config,
    pub token: String,
    pub namespace: String,
    pub name: String,
    kubeconfig: tempfile::TempPath,
}

impl ServiceAccountClient {
    /// A kubeconfig file holding the token (removed when this value is dropped), for running
    /// the operator binary or `kubectl` as this ServiceAccount.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The RBAC username of this account: `system:serviceaccount:<namespace>:<name>`.
    pub fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// Creates a namespace with a unique name `<prefix>-<suffix>` (a valid DNS label) and returns
/// the name. It is labelled [`TEST_NAMESPACE_LABEL`]`=true`. Tests leave it: the cluster is
/// thrown away after the run.
pub async fn fresh_namespace(client: &Client, prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut clean: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    clean.truncate(40);
    let clean = clean.trim_matches('-');
    let clean = if clean.is_empty() { "test" } else { clean };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{clean}-{:x}{:x}{n:x}", std::process::id(), nanos & 0xfff);
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some([(TEST_NAMESPACE_LABEL.to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
    name
}

async fn config_from_file(path: &Path) -> Config {
    install_crypto_provider();
    let kubeconfig = Kubeconfig::read_from(path)
        .unwrap_or_else(|e| panic!("reading kubeconfig {}: {e}", path.display()));
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", path.display()))
}

/// The harness binary: `$IMAGESTREAM_CLUSTER_HARNESS`, else `e2e/cluster/build.sh` (which
/// builds it once and prints the cached path), else an existing `target/e2e/cluster-harness`.
/// build.sh is preferred over the symlink because the symlink may point at a binary built
/// from an older main.go; when warm it only hashes a few files.
fn harness_binary() -> PathBuf {
    if let Some(path) = std::env::var_os(HARNESS_BINARY_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let repo = Path::new(REPO_ROOT);
    let linked = repo.join("target/e2e/cluster-harness");
    let script = repo.join("e2e/cluster/build.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output();
    match output {
        Ok(out) if out.status.success() => {
            let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            assert!(
                path.is_file(),
                "{} printed {}, which is not a file",
                script.display(),
                path.display()
            );
            path
        }
        other => {
            if linked.is_file() {
                eprintln!(
                    "cluster harness: {} failed ({other:?}); using the existing {}",
                    script.display(),
                    linked.display()
                );
                linked
            } else {
                panic!(
                    "cannot build the cluster harness with {}: {other:?}. Set {HARNESS_BINARY_ENV} to a built binary, \
                     or {SHARED_KUBECONFIG_ENV} to the kubeconfig of a running cluster (see e2e/with-cluster.sh)",
                    script.display()
                )
            }
        }
    }
}

/// Makes the harness receive SIGTERM when the thread that spawned it dies (see [`spawn_owned`]
/// for why that thread lives exactly as long as the harness or the test process).
fn set_parent_death_signal(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec. It only calls prctl(2) and
    // getppid(2), which are async-signal-safe, allocates nothing, and builds its error from a
    // raw errno.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; then no signal would come.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Spawns `cmd` from a dedicated thread that lives until the child exits. PR_SET_PDEATHSIG
/// fires when the *thread* that forked the child exits, and test threads (or tokio's blocking
/// pool threads) end long before the process does; this thread only ends with the child or
/// with the whole process.
fn spawn_owned(mut cmd: Command) -> std::io::Result<Arc<Mutex<Child>>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("cluster-harness-keeper".into())
        .spawn(move || {
            let child = match cmd.spawn() {
                Ok(child) => Arc::new(Mutex::new(child)),
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = tx.send(Ok(child.clone()));
            loop {
                std::thread::sleep(Duration::from_millis(250));
                match child.lock().unwrap().try_wait() {
                    Ok(None) => {}
                    Ok(Some(_)) | Err(_) => return,
                }
            }
        })?;
    rx.recv()
        .map_err(|_| std::io::Error::other("the harness keeper thread died"))?
}

fn kill_and_wait(child: &Mutex<Child>) {
    let mut child = child.lock().unwrap_or_else(|e| e.into_inner());
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The last `lines` lines of the harness's early stderr and of its log.
fn log_tail(dir: &Path, lines: usize) -> String {
    let mut out = String::new();
    for name in ["harness.stderr", "cluster.log"] {
        let path = dir.join(name);
        let Ok(mut file) = std::fs::File::open(&path) else {
            continue;
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        let text = String::from_utf8_lossy(&bytes);
        let all: Vec<&str> = text.lines().collect();
        if all.is_empty() {
            continue;
        }
        out.push_str(&format!("==> {} <==\n", path.display()));
        for line in &all[all.len().saturating_sub(lines)..] {
            out.push_str(line);
            out.push('\n');
        }
    }
    if out.is_empty() {
        out.push_str("(no log output)\n");
    }
    out
}

/// Creates a LimitRange of type `openshift.io/ImageStream` in `namespace` with `max` of
/// `resource` (`openshift.io/images` or `openshift.io/image-tags`), then gives the operator's
/// LimitRange caches (webhook and controllers) a moment to see it.
pub async fn limit_image_streams(admin: &Client, namespace: &str, resource: &str, max: &str) {
    let range: k8s_openapi::api::core::v1::LimitRange = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "image-streams" },
        "spec": { "limits": [{
            "type": "openshift.io/ImageStream",
            "max": { resource: max },
        }] },
    }))
    .expect("LimitRange");
    kube::Api::namespaced(admin.clone(), namespace)
        .create(&kube::api::PostParams::default(), &range)
        .await
        .expect("create the LimitRange");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
}

/// The Events (events.k8s.io) in `namespace` about `kind`/`name` with `reason`.
pub async fn events(
    client: &Client,
    namespace: &str,
    kind: &str,
    name: &str,
    reason: &str,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    kube::Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), namespace)
        .list(&kube::api::ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| {
            let about = e.regarding.as_ref();
            about.and_then(|r| r.kind.as_deref()) == Some(kind)
                && about.and_then(|r| r.name.as_deref()) == Some(name)
                && e.reason.as_deref() == Some(reason)
        })
        .collect()
}

/// A `kubernetes.io/dockerconfigjson` pull secret named `pull` in `namespace` for `registry`
/// with `user:password`.
pub async fn create_pull_secret(
    admin: &Client,
    namespace: &str,
    registry: &str,
    user: &str,
    password: &str,
) {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = serde_json::json!({ "auths": { registry: { "auth": auth } } }).to_string();
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": "pull" },
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": { ".dockerconfigjson": config },
    }))
    .expect("Secret");
    kube::Api::namespaced(admin.clone(), namespace)
        .create(&kube::api::PostParams::default(), &secret)
        .await
        .expect("create the pull secret");
}
