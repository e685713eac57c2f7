//! Proves the test cluster (e2e/cluster) is a real kube-apiserver with etcd, RBAC on,
//! TokenRequest working and coordination.k8s.io served. Each test fails if the harness is wrong.

mod support;

use std::time::Duration;

use k8s_openapi::{
    api::{
        authentication::v1::SelfSubjectReview,
        coordination::v1::{Lease, LeaseSpec},
        core::v1::{Namespace, Secret},
        rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject},
    },
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{
    Api, Client,
    api::{ListParams, ObjectMeta, PostParams},
};
use support::cluster::{TestCluster, cluster, fresh_namespace};

/// The Kubernetes version pinned in e2e/cluster/go.mod, which build.sh stamps into the binary.
fn expected_git_version() -> String {
    let go_mod = include_str!("../e2e/cluster/go.mod");
    go_mod
        .lines()
        .map(str::split_whitespace)
        .filter_map(|mut words| match (words.next(), words.next()) {
            (Some("k8s.io/kubernetes"), Some(v)) if v.starts_with("v1.") => Some(v.to_string()),
            _ => None,
        })
        .next()
        .expect("k8s.io/kubernetes version in e2e/cluster/go.mod")
}

fn api_status(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[tokio::test]
async fn version_is_the_pinned_kubernetes_release() {
    let client = cluster().await.client().await;
    let info = client.apiserver_version().await.expect("GET /version");
    let expected = expected_git_version();
    assert_eq!(info.git_version, expected, "/version: {info:?}");
    let minor = expected.split('.').nth(1).unwrap();
    assert_eq!(
        (info.major.as_str(), info.minor.as_str()),
        ("1", minor),
        "/version: {info:?}"
    );
}

#[tokio::test]
async fn namespaces_can_be_created() {
    let client = cluster().await.client().await;
    let name = fresh_namespace(&client, "harness-ns").await;
    let ns = Api::<Namespace>::all(client.clone())
        .get(&name)
        .await
        .expect("get the new namespace");
    assert_eq!(ns.metadata.name.as_deref(), Some(name.as_str()));
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    // Names are unique per call.
    assert_ne!(fresh_namespace(&client, "harness-ns").await, name);
}

#[tokio::test]
async fn service_account_token_is_subject_to_rbac() {
    let cluster = cluster().await;
    let admin = cluster.client().await;
    let ns = fresh_namespace(&admin, "harness-rbac").await;
    let sa = cluster.service_account_client(&ns, "reader").await;

    // The token authenticates as the ServiceAccount.
    let review = Api::<SelfSubjectReview>::all(sa.client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("SelfSubjectReview as the ServiceAccount");
    let username = review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username);
    assert_eq!(
        username.as_deref(),
        Some(format!("system:serviceaccount:{ns}:reader").as_str())
    );

    // No RBAC yet: forbidden.
    let secrets: Api<Secret> = Api::namespaced(sa.client.clone(), &ns);
    let err = secrets
        .list(&ListParams::default())
        .await
        .expect_err("listing secrets without RBAC must fail");
    assert_eq!(api_status(&err), Some(403), "{err}");

    // Grant list on secrets in this namespace only.
    let role = Role {
        metadata: ObjectMeta {
            name: Some("secret-reader".into()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["secrets".into()]),
            verbs: vec!["get".into(), "list".into()],
            ..Default::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("create Role");
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("secret-reader".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: "secret-reader".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "reader".into(),
            namespace: Some(ns.clone()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create RoleBinding");

    // The RBAC authorizer reads through informers, so the grant takes effect within moments.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match secrets.list(&ListParams::default()).await {
            Ok(list) => {
                assert!(list.items.is_empty());
                break;
            }
            Err(e) if api_status(&e) == Some(403) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("listing secrets after the RoleBinding: {e}"),
        }
    }

    // The grant is namespaced: other namespaces stay forbidden.
    let other = fresh_namespace(&admin, "harness-rbac-other").await;
    let err = Api::<Secret>::namespaced(sa.client.clone(), &other)
        .list(&ListParams::default())
        .await
        .expect_err("listing secrets in another namespace must fail");
    assert_eq!(api_status(&err), Some(403), "{err}");

    // The kubeconfig written for the account carries the same identity.
    let kc = kube::config::Kubeconfig::read_from(sa.kubeconfig())
        .expect("read the ServiceAccount kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("ServiceAccount kubeconfig");
    let from_file = Client::try_from(config).expect("client from the ServiceAccount kubeconfig");
    Api::<Secret>::namespaced(from_file, &ns)
        .list(&ListParams::default())
        .await
        .expect("list secrets through the ServiceAccount kubeconfig");
}

#[tokio::test]
async fn leases_can_be_created_and_renewed() {
    let client = cluster().await.client().await;
    let ns = fresh_namespace(&client, "harness-lease").await;
    let leases: Api<Lease> = Api::namespaced(client, &ns);
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("imagestream-operator".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("test-holder".into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(jiff::Timestamp::now())),
            ..Default::default()
        }),
    };
    let created = leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create Lease");
    let mut renewed = created.clone();
    renewed.spec.as_mut().unwrap().renew_time = Some(MicroTime(jiff::Timestamp::now()));
    let renewed = leases
        .replace("imagestream-operator", &PostParams::default(), &renewed)
        .await
        .expect("renew Lease");
    assert_ne!(
        renewed.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(
        renewed.spec.unwrap().holder_identity.as_deref(),
        Some("test-holder")
    );
    // A stale write is rejected: etcd-backed optimistic concurrency is in force.
    let err = leases
        .replace("imagestream-operator", &PostParams::default(), &created)
        .await
        .expect_err("replacing with a stale resourceVersion must conflict");
    assert_eq!(api_status(&err), Some(409), "{err}");
}

/// A private harness answers, and is gone once dropped.
#[tokio::test]
async fn private_cluster_stops_on_drop() {
    let private = TestCluster::start().await;
    let config = private.config().await;
    let url = config.cluster_url.clone();
    let dir = private
        .harness_dir()
        .expect("a private harness has a directory")
        .to_path_buf();
    Client::try_from(config.clone())
        .unwrap()
        .apiserver_version()
        .await
        .expect("private cluster /version");
    drop(private);
    assert!(
        !dir.exists(),
        "the private harness directory {} is removed",
        dir.display()
    );
    let err = Client::try_from(config)
        .unwrap()
        .apiserver_version()
        .await
        .expect_err("the private cluster must be stopped after drop");
    assert!(
        api_status(&err).is_none(),
        "expected a connection error from {url}, got {err}"
    );
}
