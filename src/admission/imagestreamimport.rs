//! ImageStreamImport admission (semantics 5.2 steps 1-2): the request's shape, and
//! `allowedRegistriesForImport` for users who may neither create Images nor
//! ImageStreamMappings (those may import from anywhere, as upstream). The two
//! SubjectAccessReviews are only asked when a registry is actually outside the list.

use futures::future::join;
use kube::core::admission::{AdmissionResponse, Operation};

use super::AdmissionSettings;
use super::access::{self, Authorizer};
use super::review::{self, Request, ReviewError};
use crate::api::GROUP;
use crate::api::image_stream_import::ImageStreamImport;
use crate::reference::DockerImageReference;
use crate::registry::policy::AllowedRegistries;
use crate::stream::validation::{self, FieldError};

const KIND: &str = "ImageStreamImport";

/// Judges an ImageStreamImport CREATE.
pub async fn validate(
    request: &Request,
    settings: &AdmissionSettings,
    authorizer: &dyn Authorizer,
) -> Result<AdmissionResponse, ReviewError> {
    review::expect_kind(request, GROUP, KIND)?;
    if request.operation != Operation::Create {
        return Ok(review::allow(request));
    }
    let (mut isi, _) =
        review::decode::<ImageStreamImport>(request.object.as_ref(), "object", KIND)?;
    if isi.metadata.namespace.is_none() {
        isi.metadata.namespace = request.namespace.clone();
    }
    let mut errors = validation::validate_image_stream_import(&isi);
    if errors.is_empty()
        && let Some(allowed) = &settings.allowed_registries
    {
        let registry_errors = registry_errors(&isi, allowed);
        if !registry_errors.is_empty() && !may_bypass(request, authorizer).await {
            errors = registry_errors;
        }
    }
    Ok(if errors.is_empty() {
        review::allow(request)
    } else {
        review::invalid(request, GROUP, KIND, &errors)
    })
}

/// Whether the requesting user may create Images or ImageStreamMappings; a failed review
/// counts as no.
async fn may_bypass(request: &Request, authorizer: &dyn Authorizer) -> bool {
    let namespace = request.namespace.clone().unwrap_or_default();
    let (images, mappings) = join(
        authorizer.review(&request.user_info, access::create_images()),
        authorizer.review(
            &request.user_info,
            access::create_image_stream_mappings(&namespace),
        ),
    )
    .await;
    [images, mappings]
        .into_iter()
        .any(|decision| match decision {
            Ok(d) => d.allowed,
            Err(e) => {
                tracing::warn!(error = %e, "SubjectAccessReview failed");
                false
            }
        })
}

/// The registries of `spec.images[*].from` and `spec.repository.from` that
/// `allowedRegistriesForImport` forbids (port 443, or 80 for an insecure entry).
pub fn registry_errors(isi: &ImageStreamImport, allowed: &AllowedRegistries) -> Vec<FieldError> {
    let images = isi.spec.images.iter().enumerate().map(|(i, image)| {
        (
            format!("spec.images[{i}].from.name"),
            &image.from,
            image.import_policy.insecure,
        )
    });
    let repository = isi.spec.repository.iter().map(|r| {
        (
            "spec.repository.from.name".to_string(),
            &r.from,
            r.import_policy.insecure,
        )
    });
    images
        .chain(repository)
        .filter(|(_, from, _)| from.name != "*")
        .filter_map(|(field, from, insecure)| {
            let reference = DockerImageReference::parse(&from.name).ok()?;
            let (host, port) = reference.registry_host_port(insecure);
            Some(validation::validate_registry_allowed_for_import(
                allowed, &field, &host, &port,
            ))
        })
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::access::Decision;
    use crate::admission::review::tests::review_body;
    use crate::config::RegistryLocation;
    use futures::future::BoxFuture;
    use k8s_openapi::api::authentication::v1::UserInfo;
    use k8s_openapi::api::authorization::v1::ResourceAttributes;
    use serde_json::{Value, json};

    struct Answer(bool);

    impl Authorizer for Answer {
        fn review<'a>(
            &'a self,
            _user: &'a UserInfo,
            _attributes: ResourceAttributes,
        ) -> BoxFuture<'a, Result<Decision, kube::Error>> {
            let allowed = self.0;
            Box::pin(async move {
                Ok(Decision {
                    allowed,
                    ..Decision::default()
                })
            })
        }
    }

    fn isi(from: &str) -> Value {
        json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStreamImport",
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {"import": true, "images": [{"from": {"kind": "DockerImage", "name": from}}]},
        })
    }

    fn settings() -> AdmissionSettings {
        AdmissionSettings {
            allowed_registries: Some(
                AllowedRegistries::new(
                    &[RegistryLocation {
                        domain_name: "quay.io".into(),
                        insecure: None,
                    }],
                    None,
                )
                .unwrap(),
            ),
            ..AdmissionSettings::default()
        }
    }

    #[tokio::test]
    async fn registries_outside_the_list_need_image_creators() {
        let body = review_body(
            "CREATE",
            "ImageStreamImport",
            isi("docker.io/library/nginx:1"),
            Value::Null,
        );
        let request = review::parse(&body).unwrap();
        let response = validate(&request, &settings(), &Answer(false))
            .await
            .unwrap();
        assert!(!response.allowed);
        assert!(
            response
                .result
                .message
                .contains("spec.images[0].from.name: Forbidden: importing images from registry"),
            "{}",
            response.result.message
        );
        assert!(
            validate(&request, &settings(), &Answer(true))
                .await
                .unwrap()
                .allowed
        );

        let body = review_body(
            "CREATE",
            "ImageStreamImport",
            isi("quay.io/a/b:1"),
            Value::Null,
        );
        let request = review::parse(&body).unwrap();
        assert!(
            validate(&request, &settings(), &Answer(false))
                .await
                .unwrap()
                .allowed
        );
    }

    #[tokio::test]
    async fn malformed_requests_are_invalid() {
        let body = review_body(
            "CREATE",
            "ImageStreamImport",
            isi("Not//A Reference"),
            Value::Null,
        );
        let request = review::parse(&body).unwrap();
        let response = validate(&request, &AdmissionSettings::default(), &Answer(true))
            .await
            .unwrap();
        assert!(!response.allowed);
        assert_eq!(response.result.code, 422);
        assert!(
            response.result.message.starts_with(
                r#"ImageStreamImport.image.openshift.io "s" is invalid: spec.images[0].from.name"#
            ),
            "{}",
            response.result.message
        );
    }
}
