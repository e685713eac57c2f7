//! Whether the *requesting* user may do something, asked with a SubjectAccessReview (semantics
//! 3.6, 5.2). The webhook runs as the operator, which can read every stream; without these
//! reviews any user could tag an image from a namespace they cannot read by naming it in
//! `from.namespace`.
//!
//! [`Authorizer`] is a trait so the handlers can be tested without an apiserver.

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::api::GROUP;

/// The answer to one review.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The authorizer's `status.reason`.
    pub reason: String,
    /// The authorizer's `status.evaluationError`.
    pub evaluation_error: String,
}

/// Asks whether `user` may perform `attributes`.
pub trait Authorizer: Send + Sync {
    fn review<'a>(
        &'a self,
        user: &'a UserInfo,
        attributes: ResourceAttributes,
    ) -> BoxFuture<'a, Result<Decision, kube::Error>>;
}

/// SubjectAccessReviews through the operator's client (needs `create subjectaccessreviews`).
#[derive(Clone)]
pub struct KubeAuthorizer {
    client: Client,
}

impl KubeAuthorizer {
    pub fn new(client: Client) -> Self {
        KubeAuthorizer { client }
    }
}

impl Authorizer for KubeAuthorizer {
    fn review<'a>(
        &'a self,
        user: &'a UserInfo,
        attributes: ResourceAttributes,
    ) -> BoxFuture<'a, Result<Decision, kube::Error>> {
        Box::pin(async move {
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: user.username.clone(),
                    groups: user.groups.clone(),
                    uid: user.uid.clone(),
                    extra: user.extra.clone(),
                    resource_attributes: Some(attributes),
                    non_resource_attributes: None,
                },
                ..SubjectAccessReview::default()
            };
            let answer = Api::<SubjectAccessReview>::all(self.client.clone())
                .create(&PostParams::default(), &review)
                .await?;
            let status = answer.status.unwrap_or_default();
            Ok(Decision {
                allowed: status.allowed && !status.denied.unwrap_or(false),
                reason: status.reason.unwrap_or_default(),
                evaluation_error: status.evaluation_error.unwrap_or_default(),
            })
        })
    }
}

/// `get imagestreams/layers` of `stream` in `namespace`: what tagging from another
/// namespace's stream requires.
pub fn read_layers(namespace: &str, stream: &str) -> ResourceAttributes {
    ResourceAttributes {
        namespace: Some(namespace.into()),
        verb: Some("get".into()),
        group: Some(GROUP.into()),
        resource: Some("imagestreams".into()),
        subresource: Some("layers".into()),
        name: Some(stream.into()),
        ..ResourceAttributes::default()
    }
}

/// `create images` (cluster-wide): users who may create Images bypass
/// `allowedRegistriesForImport` when importing.
pub fn create_images() -> ResourceAttributes {
    ResourceAttributes {
        verb: Some("create".into()),
        group: Some(GROUP.into()),
        resource: Some("images".into()),
        ..ResourceAttributes::default()
    }
}

/// `create imagestreammappings` in `namespace`: the other bypass. Upstream asks for the
/// singular `imagestreammapping`, which no RBAC rule written for the real resource matches;
/// this asks for the resource that exists.
pub fn create_image_stream_mappings(namespace: &str) -> ResourceAttributes {
    ResourceAttributes {
        namespace: Some(namespace.into()),
        verb: Some("create".into()),
        group: Some(GROUP.into()),
        resource: Some("imagestreammappings".into()),
        ..ResourceAttributes::default()
    }
}
