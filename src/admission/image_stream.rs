//! ImageStream admission: what OpenShift's apiserver strategy does inside the write, done by
//! the webhooks instead (design.md sections 3 and 4).
//!
//! Mutating ([`mutate`]): wire defaults (`referencePolicy.type: Source`, `importPolicy.importMode`
//! from the cluster's `imageStreamImportMode`, `Legacy` when unset), `spec.tags` sorted by name
//! with one tag per name (the last wins, as upstream's map conversion keeps it), then the tag
//! generations of [`crate::stream::generation`]. The whole `spec` is written back in its
//! canonical serialisation, so the apiserver's "spec changed" comparison (which bumps
//! `metadata.generation`) sees exactly what [`assign_on_update`] predicted.
//!
//! Defaults come before generations, as upstream defaults on decode: a client that omits
//! `importMode` for a tag stored with the cluster default does not change the tag. The old
//! object is used as stored.
//!
//! Validating ([`validate`]): [`crate::stream::validation`]'s rules, then one
//! SubjectAccessReview per stream referenced from another namespace by a new or changed tag,
//! for the requesting user.

use std::collections::BTreeMap;

use futures::future::join_all;
use kube::core::admission::{AdmissionResponse, Operation};
use serde_json::Value;

use super::AdmissionSettings;
use super::access::{self, Authorizer};
use super::limit_ranges::LimitRangeSource;
use super::review::{self, Request, ReviewError};
use crate::api::GROUP;
use crate::api::image_stream::{ImageStream, ImageStreamSpec, ImportMode, TagReferencePolicyType};
use crate::stream::generation::{assign_on_create, assign_on_update};
use crate::stream::limits::{Limits, exceeded, usage};
use crate::stream::validation::{
    self, FieldError, ValidationContext, forbidden_reference_errors, subject_access_review_denial,
};

const KIND: &str = "ImageStream";

/// The JSON patch for an ImageStream CREATE or UPDATE (empty for other operations).
pub fn mutate(
    request: &Request,
    settings: &AdmissionSettings,
) -> Result<json_patch::Patch, ReviewError> {
    review::expect_kind(request, GROUP, KIND)?;
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return Ok(json_patch::Patch(Vec::new()));
    }
    let (stream, json) = review::decode::<ImageStream>(request.object.as_ref(), "object", KIND)?;
    let old = match request.operation {
        Operation::Update => {
            Some(review::decode::<ImageStream>(request.old_object.as_ref(), "oldObject", KIND)?.0)
        }
        _ => None,
    };
    let namespace = namespace_of(request, &stream);
    let mut spec = stream.spec;
    mutate_spec(
        &mut spec,
        old.as_ref()
            .map(|o| (&o.spec, o.metadata.generation.unwrap_or(0))),
        &namespace,
        settings.default_import_mode,
    );
    spec_patch(&json, &spec)
}

/// Defaults, order and generations of a spec; `old` is the stored spec and generation on
/// update.
pub fn mutate_spec(
    spec: &mut ImageStreamSpec,
    old: Option<(&ImageStreamSpec, i64)>,
    namespace: &str,
    default_import_mode: ImportMode,
) {
    let mut by_name = BTreeMap::new();
    for mut tag in std::mem::take(&mut spec.tags) {
        if tag.reference_policy.type_ == TagReferencePolicyType::Unset {
            tag.reference_policy.type_ = TagReferencePolicyType::Source;
        }
        if tag.import_policy.import_mode == ImportMode::Unset {
            tag.import_policy.import_mode = default_import_mode;
        }
        by_name.insert(tag.name.clone(), tag);
    }
    spec.tags = by_name.into_values().collect();
    match old {
        None => assign_on_create(spec),
        Some((old_spec, old_generation)) => {
            assign_on_update(old_spec, old_generation, spec, namespace);
        }
    }
}

/// The patch turning `object` into the same object with `spec`.
fn spec_patch(object: &Value, spec: &ImageStreamSpec) -> Result<json_patch::Patch, ReviewError> {
    let spec = serde_json::to_value(spec).map_err(|source| ReviewError::Undecodable {
        which: "object",
        kind: KIND,
        source,
    })?;
    let mut mutated = object.clone();
    match mutated.as_object_mut() {
        Some(map) => {
            map.insert("spec".into(), spec);
        }
        None => return Err(ReviewError::MissingObject("object")),
    }
    Ok(json_patch::diff(object, &mutated))
}

fn namespace_of(request: &Request, stream: &ImageStream) -> String {
    stream
        .metadata
        .namespace
        .clone()
        .or_else(|| request.namespace.clone())
        .unwrap_or_default()
}

/// Judges an ImageStream CREATE or UPDATE.
pub async fn validate(
    request: &Request,
    settings: &AdmissionSettings,
    authorizer: &dyn Authorizer,
    limit_ranges: &dyn LimitRangeSource,
) -> Result<AdmissionResponse, ReviewError> {
    review::expect_kind(request, GROUP, KIND)?;
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return Ok(review::allow(request));
    }
    let (mut stream, _) = review::decode::<ImageStream>(request.object.as_ref(), "object", KIND)?;
    stream.metadata.namespace = Some(namespace_of(request, &stream));
    let old = match request.operation {
        Operation::Update => {
            Some(review::decode::<ImageStream>(request.old_object.as_ref(), "oldObject", KIND)?.0)
        }
        _ => None,
    };
    let ctx = ValidationContext {
        allowed_registries: settings.allowed_registries.as_ref(),
    };
    let mut errors = match &old {
        Some(old) => validation::validate_image_stream_update(&stream, old, &ctx),
        None => validation::validate_image_stream(&stream, &ctx),
    };
    errors.extend(cross_namespace_errors(request, &stream, old.as_ref(), authorizer).await);
    errors.extend(limit_errors(&stream, old.as_ref(), limit_ranges).await);
    Ok(if errors.is_empty() {
        review::allow(request)
    } else {
        review::invalid(request, GROUP, KIND, &errors)
    })
}

/// A Forbidden error on `imageStream` when the write grows the stream past a LimitRange
/// (semantics 7.8, case 24); while the limits are not loaded yet the write is refused, with
/// upstream's words.
pub(super) async fn limit_errors(
    stream: &ImageStream,
    old: Option<&ImageStream>,
    source: &dyn LimitRangeSource,
) -> Vec<FieldError> {
    let namespace = stream.metadata.namespace.as_deref().unwrap_or_default();
    let Some(ranges) = source.limit_ranges(namespace).await else {
        return vec![FieldError::forbidden(
            "imageStream",
            "the server is still loading limit information",
        )];
    };
    let limits = Limits::from_ranges(&ranges);
    if limits.is_unlimited() {
        return Vec::new();
    }
    exceeded(&limits, usage(stream), old.map(usage))
        .map(|message| FieldError::forbidden("imageStream", message))
        .into_iter()
        .collect()
}

/// Forbidden errors for the streams in other namespaces the requesting user may not read.
/// A review that fails counts as a denial: the webhook fails closed.
pub(super) async fn cross_namespace_errors(
    request: &Request,
    stream: &ImageStream,
    old: Option<&ImageStream>,
    authorizer: &dyn Authorizer,
) -> Vec<FieldError> {
    let references = validation::cross_namespace_references(stream, old);
    let decisions = join_all(references.iter().map(|r| {
        authorizer.review(
            &request.user_info,
            access::read_layers(&r.namespace, &r.stream),
        )
    }))
    .await;
    references
        .iter()
        .zip(decisions)
        .flat_map(|(reference, decision)| match decision {
            Ok(d) if d.allowed => Vec::new(),
            Ok(d) => forbidden_reference_errors(
                reference,
                &subject_access_review_denial(&d.reason, &d.evaluation_error),
            ),
            Err(e) => {
                tracing::warn!(namespace = %reference.namespace, stream = %reference.stream, error = %e, "SubjectAccessReview failed");
                forbidden_reference_errors(
                    reference,
                    &format!("the access review failed: {e}"),
                )
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::access::Decision;
    use crate::admission::limit_ranges::NoLimitRanges;
    use crate::admission::review::tests::review_body;
    use futures::future::BoxFuture;
    use k8s_openapi::api::authentication::v1::UserInfo;
    use k8s_openapi::api::authorization::v1::ResourceAttributes;
    use serde_json::json;
    use std::sync::Mutex;

    fn stream(tags: Value, generation: Option<i64>) -> Value {
        let mut metadata = json!({"name": "s", "namespace": "ns"});
        if let Some(g) = generation {
            metadata["generation"] = json!(g);
        }
        json!({
            "apiVersion": "image.openshift.io/v1",
            "kind": "ImageStream",
            "metadata": metadata,
            "spec": {"tags": tags},
            "status": {"dockerImageRepository": ""},
        })
    }

    fn docker(name: &str, from: &str) -> Value {
        json!({"name": name, "from": {"kind": "DockerImage", "name": from}})
    }

    fn patched(object: &Value, patch: &json_patch::Patch) -> Value {
        let mut doc = object.clone();
        json_patch::patch(&mut doc, &patch.0).unwrap();
        doc
    }

    #[test]
    fn create_defaults_sorts_dedupes_and_sets_generation_one() {
        let object = stream(
            json!([
                docker("b", "nginx:1"),
                docker("a", "nginx:2"),
                docker("b", "nginx:3")
            ]),
            None,
        );
        let body = review_body("CREATE", "ImageStream", object.clone(), Value::Null);
        let request = review::parse(&body).unwrap();
        let settings = AdmissionSettings::default();
        let patch = mutate(&request, &settings).unwrap();
        let out = patched(&object, &patch);
        assert_eq!(
            out["spec"]["tags"],
            json!([
                {"name": "a", "from": {"kind": "DockerImage", "name": "nginx:2"}, "generation": 1,
                 "importPolicy": {"importMode": "Legacy"}, "referencePolicy": {"type": "Source"}},
                {"name": "b", "from": {"kind": "DockerImage", "name": "nginx:3"}, "generation": 1,
                 "importPolicy": {"importMode": "Legacy"}, "referencePolicy": {"type": "Source"}},
            ])
        );
        for op in &patch.0 {
            assert!(
                op.path().to_string().starts_with("/spec"),
                "{op:?} outside spec"
            );
        }
        assert_eq!(out["status"], object["status"], "status untouched");
    }

    #[test]
    fn cluster_import_mode_and_explicit_values_are_kept() {
        let mut tag = docker("a", "nginx:1");
        tag["referencePolicy"] = json!({"type": "Local"});
        let object = stream(json!([tag, docker("b", "nginx:1")]), None);
        let body = review_body("CREATE", "ImageStream", object.clone(), Value::Null);
        let request = review::parse(&body).unwrap();
        let settings = AdmissionSettings {
            default_import_mode: ImportMode::PreserveOriginal,
            ..AdmissionSettings::default()
        };
        let out = patched(&object, &mutate(&request, &settings).unwrap());
        assert_eq!(out["spec"]["tags"][0]["referencePolicy"]["type"], "Local");
        assert_eq!(
            out["spec"]["tags"][1]["importPolicy"]["importMode"],
            "PreserveOriginal"
        );
    }

    #[test]
    fn update_gives_only_changed_and_reset_tags_the_new_generation() {
        let settings = AdmissionSettings::default();
        let create = stream(
            json!([
                docker("a", "nginx:1"),
                docker("b", "nginx:1"),
                docker("c", "nginx:1")
            ]),
            None,
        );
        let request = review::parse(&review_body(
            "CREATE",
            "ImageStream",
            create.clone(),
            Value::Null,
        ))
        .unwrap();
        let mut stored = patched(&create, &mutate(&request, &settings).unwrap());
        stored["metadata"]["generation"] = json!(3);

        // a changed, b sent with generation 0, c sent with a made-up number; d new
        let mut new = stored.clone();
        new["spec"]["tags"][0]["from"]["name"] = json!("nginx:2");
        new["spec"]["tags"][1]["generation"] = json!(0);
        new["spec"]["tags"][2]["generation"] = json!(42);
        new["spec"]["tags"]
            .as_array_mut()
            .unwrap()
            .push(docker("d", "nginx:1"));
        let request = review::parse(&review_body(
            "UPDATE",
            "ImageStream",
            new.clone(),
            stored.clone(),
        ))
        .unwrap();
        let out = patched(&new, &mutate(&request, &settings).unwrap());
        let generations: Vec<_> = out["spec"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap().to_string(),
                    t["generation"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            generations,
            [
                ("a".into(), 4),
                ("b".into(), 4),
                ("c".into(), 1),
                ("d".into(), 4)
            ]
        );

        // the same spec again: nothing to patch
        let request = review::parse(&review_body(
            "UPDATE",
            "ImageStream",
            stored.clone(),
            stored.clone(),
        ))
        .unwrap();
        assert!(mutate(&request, &settings).unwrap().0.is_empty());
    }

    #[test]
    fn unreadable_objects_are_errors_not_panics() {
        let object = json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "s"}, "spec": {"tags": "not a list"}});
        let request =
            review::parse(&review_body("CREATE", "ImageStream", object, Value::Null)).unwrap();
        let err = mutate(&request, &AdmissionSettings::default()).unwrap_err();
        assert_eq!(err.reason(), "UndecodableObject");
        let object = stream(json!([]), Some(1));
        let request =
            review::parse(&review_body("UPDATE", "ImageStream", object, Value::Null)).unwrap();
        let err = mutate(&request, &AdmissionSettings::default()).unwrap_err();
        assert_eq!(err.to_string(), "the request carries no oldObject");
    }

    /// Allows only the listed `namespace/stream` pairs, and records what it was asked.
    #[derive(Default)]
    struct FakeAuthorizer {
        allowed: Vec<String>,
        asked: Mutex<Vec<(Option<String>, ResourceAttributes)>>,
    }

    impl Authorizer for FakeAuthorizer {
        fn review<'a>(
            &'a self,
            user: &'a UserInfo,
            attributes: ResourceAttributes,
        ) -> BoxFuture<'a, Result<Decision, kube::Error>> {
            let key = format!(
                "{}/{}",
                attributes.namespace.clone().unwrap_or_default(),
                attributes.name.clone().unwrap_or_default()
            );
            self.asked
                .lock()
                .unwrap()
                .push((user.username.clone(), attributes));
            let allowed = self.allowed.contains(&key);
            Box::pin(async move {
                Ok(Decision {
                    allowed,
                    reason: if allowed {
                        String::new()
                    } else {
                        "no RBAC rule".into()
                    },
                    evaluation_error: String::new(),
                })
            })
        }
    }

    fn istag(name: &str, from: &str, namespace: &str) -> Value {
        json!({"name": name, "from": {"kind": "ImageStreamTag", "name": from, "namespace": namespace}})
    }

    #[tokio::test]
    async fn cross_namespace_references_need_the_users_access() {
        let object = stream(
            json!([
                istag("a", "src:latest", "other"),
                istag("b", "src:v1", "other"),
                istag("c", "mine:latest", "ns")
            ]),
            None,
        );
        let request =
            review::parse(&review_body("CREATE", "ImageStream", object, Value::Null)).unwrap();
        let settings = AdmissionSettings::default();
        let denying = FakeAuthorizer::default();
        let response = validate(&request, &settings, &denying, &NoLimitRanges)
            .await
            .unwrap();
        assert!(!response.allowed);
        assert_eq!(response.result.code, 422);
        assert_eq!(
            response.result.message,
            r#"ImageStream.image.openshift.io "s" is invalid: [spec.tags[a].from: Forbidden: other/src: "no RBAC rule" "", spec.tags[b].from: Forbidden: other/src: "no RBAC rule" ""]"#
        );
        {
            let asked = denying.asked.lock().unwrap();
            assert_eq!(asked.len(), 1, "one review per referenced stream");
            assert_eq!(
                asked[0].0.as_deref(),
                Some("alice"),
                "for the requesting user"
            );
            assert_eq!(asked[0].1, access::read_layers("other", "src"));
        }

        let allowing = FakeAuthorizer {
            allowed: vec!["other/src".into()],
            ..FakeAuthorizer::default()
        };
        assert!(
            validate(&request, &settings, &allowing, &NoLimitRanges)
                .await
                .unwrap()
                .allowed
        );
    }

    #[tokio::test]
    async fn invalid_streams_are_denied_with_upstreams_message() {
        let object = stream(json!([istag("a", "x:y:z", "")]), None);
        let request =
            review::parse(&review_body("CREATE", "ImageStream", object, Value::Null)).unwrap();
        let response = validate(
            &request,
            &AdmissionSettings::default(),
            &FakeAuthorizer::default(),
            &NoLimitRanges,
        )
        .await
        .unwrap();
        assert!(!response.allowed);
        assert!(
            response.result.message.contains(
                r#"spec.tags[a].from.name: Invalid value: "x:y:z": must be of the form <tag>, <repo>:<tag>, <id>, or <repo>@<id>"#
            ),
            "{}",
            response.result.message
        );
    }

    struct Ranges(Option<Vec<k8s_openapi::api::core::v1::LimitRange>>);

    impl LimitRangeSource for Ranges {
        fn limit_ranges<'a>(
            &'a self,
            namespace: &'a str,
        ) -> BoxFuture<'a, Option<Vec<k8s_openapi::api::core::v1::LimitRange>>> {
            assert_eq!(namespace, "ns");
            let answer = self.0.clone();
            Box::pin(async move { answer })
        }
    }

    fn image_tags_limit(max: &str) -> Ranges {
        Ranges(Some(vec![
            serde_json::from_value(json!({
                "metadata": { "name": "images", "namespace": "ns" },
                "spec": { "limits": [{
                    "type": "openshift.io/ImageStream",
                    "max": { "openshift.io/image-tags": max },
                }] },
            }))
            .unwrap(),
        ]))
    }

    // 10.1 case 24 through the webhook: a create over `openshift.io/image-tags` is refused on
    // `imageStream` with upstream's text; an update that does not add a reference passes;
    // limits not loaded yet refuse the write.
    #[tokio::test]
    async fn limit_ranges_refuse_streams_that_grow_past_them() {
        let object = stream(json!([docker("a", "nginx")]), None);
        let create = review::parse(&review_body(
            "CREATE",
            "ImageStream",
            object.clone(),
            Value::Null,
        ))
        .unwrap();
        let settings = AdmissionSettings::default();
        let authorizer = FakeAuthorizer::default();
        let response = validate(&create, &settings, &authorizer, &image_tags_limit("0"))
            .await
            .unwrap();
        assert!(!response.allowed);
        assert!(
            response.result.message.contains(
                "imageStream: Forbidden: requested usage of openshift.io/image-tags exceeds the maximum limit per openshift.io/ImageStream (1 > 0)"
            ),
            "{}",
            response.result.message
        );
        let allowed = validate(&create, &settings, &authorizer, &image_tags_limit("1"))
            .await
            .unwrap();
        assert!(allowed.allowed);

        let update = review::parse(&review_body(
            "UPDATE",
            "ImageStream",
            object.clone(),
            object,
        ))
        .unwrap();
        let unchanged = validate(&update, &settings, &authorizer, &image_tags_limit("0"))
            .await
            .unwrap();
        assert!(
            unchanged.allowed,
            "an existing excess that does not grow passes"
        );

        let unreadable = validate(&create, &settings, &authorizer, &Ranges(None))
            .await
            .unwrap();
        assert!(!unreadable.allowed);
        assert!(
            unreadable
                .result
                .message
                .contains("imageStream: Forbidden: the server is still loading limit information"),
            "{}",
            unreadable.result.message
        );
    }
}
