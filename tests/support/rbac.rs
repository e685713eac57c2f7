//! The operator's RBAC from `deploy/`, bound to a test's ServiceAccount, so cluster tests run
//! the operator with exactly the rights a deployment grants it.

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, Role, RoleBinding, RoleRef, Subject,
};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

/// The files that hold the operator's roles.
pub const OPERATOR_ROLES: [&str; 2] = ["deploy/rbac.yaml", "deploy/admission-rbac.yaml"];

/// Applies every ClusterRole and Role of `files` (paths relative to the crate) and binds each
/// to ServiceAccount `namespace/account`: ClusterRoles cluster-wide, Roles in `namespace`.
pub async fn bind_deploy_roles(admin: &Client, namespace: &str, account: &str, files: &[&str]) {
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: account.into(),
        namespace: Some(namespace.into()),
        ..Subject::default()
    };
    let apply = PatchParams::apply("tests").force();
    for file in files {
        let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
        let yaml = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let documents: Vec<Value> = serde_saphyr::from_multiple(&yaml).expect("YAML documents");
        for document in documents {
            match document["kind"].as_str() {
                Some("ClusterRole") => {
                    let role: ClusterRole = serde_json::from_value(document).expect("ClusterRole");
                    let name = role.name_any();
                    Api::<ClusterRole>::all(admin.clone())
                        .patch(&name, &apply, &Patch::Apply(&role))
                        .await
                        .expect("apply the ClusterRole");
                    let binding = ClusterRoleBinding {
                        metadata: ObjectMeta {
                            name: Some(format!("{name}-{namespace}-{account}")),
                            ..ObjectMeta::default()
                        },
                        role_ref: role_ref("ClusterRole", &name),
                        subjects: Some(vec![subject.clone()]),
                    };
                    Api::<ClusterRoleBinding>::all(admin.clone())
                        .patch(&binding.name_any(), &apply, &Patch::Apply(&binding))
                        .await
                        .expect("bind the ClusterRole");
                }
                Some("Role") => {
                    let role: Role = serde_json::from_value(document).expect("Role");
                    let name = role.name_any();
                    Api::<Role>::namespaced(admin.clone(), namespace)
                        .patch(&name, &apply, &Patch::Apply(&role))
                        .await
                        .expect("apply the Role");
                    let binding = RoleBinding {
                        metadata: ObjectMeta {
                            name: Some(format!("{name}-{account}")),
                            ..ObjectMeta::default()
                        },
                        role_ref: role_ref("Role", &name),
                        subjects: Some(vec![subject.clone()]),
                    };
                    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
                        .create(&PostParams::default(), &binding)
                        .await
                        .expect("bind the Role");
                }
                other => panic!("unexpected kind {other:?} in {file}"),
            }
        }
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.into(),
    }
}
