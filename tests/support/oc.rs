//! OpenShift's own CLI, `oc` 4.20 (`../shared/tools/oc/oc`, see its README), run against the
//! test cluster the way users type it: as cluster admin, or as a user bound to one of the
//! roles `deploy/user-roles.yaml` aggregates into `view`, `edit` and `admin`.
//!
//! - [`Oc::admin`]: the cluster's admin kubeconfig (`system:masters`).
//! - [`Oc::user`]: a ServiceAccount of the namespace (a token from the TokenRequest API, so
//!   real authentication and RBAC) bound by a RoleBinding to a ClusterRole such as `edit`.
//!   [`install_user_roles`] applies the roles and waits until `view`, `edit` and `admin` aggregate them.
//! - [`Oc::run`] runs one command (asynchronously: the operator under test serves its
//!   webhooks on the test's own runtime) and returns the exit code and what it printed;
//!   [`Oc::ok`] and [`Oc::fails`] assert the outcome.
//!
//! The wrapper unpacks the binary once into `${XDG_CACHE_HOME:-~/.cache}/shared-tools/`; it
//! needs `xz`. Each [`Oc`] has its own discovery cache (`--cache-dir`), so a cluster that
//! reuses a port never meets another cluster's cached discovery.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::rbac::v1::{AggregationRule, ClusterRole, PolicyRule, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::cluster::{ServiceAccountClient, TestCluster};

/// The roles for users, relative to the crate.
pub const USER_ROLES: &str = "deploy/user-roles.yaml";

/// How long one oc command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The `oc` wrapper: `$CARGO_MANIFEST_DIR/../shared/tools/oc/oc`.
pub fn binary() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/oc/oc")
}

/// What one command did.
#[derive(Debug)]
pub struct Output {
    pub args: Vec<String>,
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Asserts exit status 0.
    #[track_caller]
    pub fn succeeded(self) -> Output {
        assert_eq!(self.code, 0, "{self}");
        self
    }

    /// Asserts exit status 1 (oc's error exit).
    #[track_caller]
    pub fn failed(self) -> Output {
        assert_eq!(self.code, 1, "{self}");
        self
    }

    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Asserts stdout has a line equal to `line` (surrounding blanks ignored).
    #[track_caller]
    pub fn has_line(&self, line: &str) -> &Output {
        assert!(
            self.lines().iter().any(|l| l.trim() == line),
            "no line {line:?} in:\n{self}"
        );
        self
    }

    /// Asserts stdout has a line starting with `start` and containing `rest`.
    #[track_caller]
    pub fn has_field(&self, start: &str, rest: &str) -> &Output {
        assert!(
            self.lines()
                .iter()
                .any(|l| l.starts_with(start) && l.contains(rest)),
            "no line {start}…{rest} in:\n{self}"
        );
        self
    }

    /// Both streams, for assertions that do not care where oc printed a line.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "oc {} → exit {}\n--- stdout\n{}--- stderr\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }
}

/// `oc` pointed at one namespace as one user.
pub struct Oc {
    kubeconfig: PathBuf,
    namespace: String,
    username: String,
    cache: tempfile::TempDir,
    /// Keeps a user's token kubeconfig alive.
    _account: Option<ServiceAccountClient>,
}

impl Oc {
    /// As cluster admin (`system:masters`) in `namespace`.
    pub fn admin(cluster: &TestCluster, namespace: &str) -> Oc {
        Oc {
            kubeconfig: cluster.kubeconfig().to_path_buf(),
            namespace: namespace.into(),
            username: "admin".into(),
            cache: cache_dir(),
            _account: None,
        }
    }

    /// As ServiceAccount `namespace/name`, bound in `namespace` to ClusterRole `role` (for
    /// `view`, `edit` and `admin`, call [`install_user_roles`] first).
    pub async fn user(cluster: &TestCluster, namespace: &str, name: &str, role: &str) -> Oc {
        let account = cluster.service_account_client(namespace, name).await;
        let admin = cluster.client().await;
        bind(&admin, namespace, &account, role).await;
        Oc {
            kubeconfig: account.kubeconfig().to_path_buf(),
            namespace: namespace.into(),
            username: account.username(),
            cache: cache_dir(),
            _account: Some(account),
        }
    }

    /// As whoever `kubeconfig` authenticates (a user the test set up itself) in `namespace`.
    pub fn with_kubeconfig(kubeconfig: &Path, namespace: &str) -> Oc {
        Oc {
            kubeconfig: kubeconfig.to_path_buf(),
            namespace: namespace.into(),
            username: kubeconfig.display().to_string(),
            cache: cache_dir(),
            _account: None,
        }
    }

    /// The same user in another namespace.
    pub fn in_namespace(&self, namespace: &str) -> Oc {
        Oc {
            kubeconfig: self.kubeconfig.clone(),
            namespace: namespace.into(),
            username: self.username.clone(),
            cache: cache_dir(),
            _account: None,
        }
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Runs `oc <args>` with this user's kubeconfig in this namespace.
    pub async fn run(&self, args: &[&str]) -> Output {
        let namespaced: Vec<&str> = ["-n", self.namespace.as_str()]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        let mut out = self.run_anywhere(&namespaced).await;
        out.args.drain(..2);
        out
    }

    /// Runs `oc <args>` without naming a namespace (cluster-wide commands: `oc adm prune
    /// images` with `-n` would leave Images alone); prints what oc printed.
    pub async fn run_anywhere(&self, args: &[&str]) -> Output {
        let mut command = tokio::process::Command::new(binary());
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(COMMAND_TIMEOUT, command.output())
            .await
            .unwrap_or_else(|_| panic!("oc {} took over {COMMAND_TIMEOUT:?}", args.join(" ")))
            .unwrap_or_else(|e| panic!("running {}: {e} (needs xz-utils)", binary().display()));
        let out = Output {
            args: args.iter().map(|a| (*a).to_string()).collect(),
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        println!("{out}");
        out
    }

    /// Runs `oc <args>`, asserts exit 0 and returns what it printed on stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(out.success(), "as {}: {out}", self.username);
        out.stdout
    }

    /// Runs `oc <args>` and asserts it failed.
    pub async fn fails(&self, args: &[&str]) -> Output {
        let out = self.run(args).await;
        assert!(
            !out.success(),
            "as {}: expected a failure: {out}",
            self.username
        );
        out
    }
}

fn cache_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("oc-cache-")
        .tempdir()
        .expect("a discovery cache directory")
}

/// Binds ClusterRole `role` to `account` in `namespace`.
pub async fn bind(admin: &Client, namespace: &str, account: &ServiceAccountClient, role: &str) {
    let binding: RoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": format!("{role}-{}", account.name).replace(':', "-")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account.name, "namespace": account.namespace}],
    }))
    .expect("a RoleBinding");
    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
        .patch(
            &binding.name_any(),
            &PatchParams::apply("tests").force(),
            &Patch::Apply(&binding),
        )
        .await
        .unwrap_or_else(|e| panic!("binding {role} in {namespace}: {e}"));
}

/// The ClusterRoles of [`USER_ROLES`].
pub fn user_roles() -> Vec<ClusterRole> {
    let path = format!("{}/{USER_ROLES}", env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let documents: Vec<Value> = serde_saphyr::from_multiple(&yaml).expect("YAML documents");
    documents
        .into_iter()
        .map(|d| serde_json::from_value(d).expect("a ClusterRole"))
        .collect()
}

/// Applies [`USER_ROLES`] and waits until `view`, `edit` and `admin` carry their rules.
pub async fn install_user_roles(admin: &Client) {
    let roles = Api::<ClusterRole>::all(admin.clone());
    for role in user_roles() {
        roles
            .patch(
                &role.name_any(),
                &PatchParams::apply("tests").force(),
                &Patch::Apply(&role),
            )
            .await
            .unwrap_or_else(|e| panic!("applying ClusterRole {}: {e}", role.name_any()));
    }
    // in Kubernetes' order: view is part of edit, edit of admin
    for name in ["view", "edit", "admin"] {
        aggregate(admin, name).await;
    }
}

/// Waits until ClusterRole `name` holds every rule of the ClusterRoles its aggregationRule
/// selects, as the harness's kube-controller-manager (its clusterrole-aggregation
/// controller) writes them.
async fn aggregate(admin: &Client, name: &str) {
    let roles = Api::<ClusterRole>::all(admin.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let role = roles
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("ClusterRole {name}: {e}"));
        let Some(rule) = role.aggregation_rule.clone() else {
            panic!("ClusterRole {name} aggregates nothing")
        };
        let wanted = selected_rules(&roles, &rule).await;
        let have = role.rules.clone().unwrap_or_default();
        if wanted.iter().all(|r| have.contains(r)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ClusterRole {name} was not aggregated (is kube-controller-manager running?)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The rules of every ClusterRole `rule` selects, each once, in name order of the roles.
async fn selected_rules(roles: &Api<ClusterRole>, rule: &AggregationRule) -> Vec<PolicyRule> {
    let mut out: Vec<PolicyRule> = Vec::new();
    for selector in rule.cluster_role_selectors.iter().flatten() {
        let labels = selector
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut selected = roles
            .list(&ListParams::default().labels(&labels))
            .await
            .unwrap_or_else(|e| panic!("listing ClusterRoles {labels}: {e}"))
            .items;
        selected.sort_by_key(ResourceExt::name_any);
        for role in selected {
            for r in role.rules.into_iter().flatten() {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
    }
    out
}
