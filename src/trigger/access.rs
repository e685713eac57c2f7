//! May a workload follow a stream of another namespace?
//!
//! Upstream's trigger controller asks nothing: it runs as `image-trigger-controller`, which
//! reads every stream, and the question is settled when the pods pull. The pull goes to the
//! integrated registry with the pod's ServiceAccount credentials, and the registry asks a
//! SubjectAccessReview for that identity: verb `get` on `imagestreams/layers` in group
//! `image.openshift.io`, named after the stream, in the stream's namespace
//! (openshift/image-registry `pkg/dockerregistry/server/auth.go`, `verifyImageStreamAccess`;
//! the same attributes the apiserver checks for the requesting user of a cross-namespace
//! spec tag, semantics 3.6). This is what `oc policy add-role-to-group system:image-puller
//! system:serviceaccounts:<ns> -n <source>` grants.
//!
//! There is no integrated registry here, so the controller asks the registry's question
//! itself, before it writes: the subject is the ServiceAccount the workload's pods run as
//! (`spec.serviceAccountName`, `default` when unset), with the groups the apiserver gives
//! every ServiceAccount token. Same-namespace triggers are not asked about, as upstream.

use std::collections::BTreeSet;

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReviewSpec};

use super::decide::Change;
use super::workload::Workload;

/// The streams of other namespaces that `changes` would copy from: `(namespace, stream)`.
pub fn needed(workload: &Workload, changes: &[Change]) -> BTreeSet<(String, String)> {
    changes
        .iter()
        .filter(|c| c.tag.namespace != workload.key.namespace)
        .map(|c| (c.tag.namespace.clone(), c.tag.stream.clone()))
        .collect()
}

/// The review for `workload`'s pods pulling from stream `namespace/stream`.
pub fn review(workload: &Workload, namespace: &str, stream: &str) -> SubjectAccessReviewSpec {
    let own = &workload.key.namespace;
    SubjectAccessReviewSpec {
        user: Some(format!(
            "system:serviceaccount:{own}:{}",
            workload.service_account
        )),
        groups: Some(vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{own}"),
            "system:authenticated".into(),
        ]),
        resource_attributes: Some(ResourceAttributes {
            namespace: Some(namespace.into()),
            verb: Some("get".into()),
            group: Some(crate::api::GROUP.into()),
            resource: Some("imagestreams".into()),
            subresource: Some("layers".into()),
            name: Some(stream.into()),
            ..ResourceAttributes::default()
        }),
        ..SubjectAccessReviewSpec::default()
    }
}
