//! ImageStreamImport admission: the create is answered here, as upstream's REST storage answers
//! it (semantics 5.2), so `oc import-image` prints the result and fails when the import failed.
//!
//! [`mutate`] (CREATE): the request's shape and `allowedRegistriesForImport` for users who may
//! neither create Images nor ImageStreamMappings (those may import from anywhere, as upstream;
//! the two SubjectAccessReviews are only asked when a registry is actually outside the list);
//! upstream's defaults (`to` from the source tag); the stream's `resourceVersion` the client
//! sent as a precondition (409, or 404 without the stream, with upstream's messages;
//! `oc import-image` sends it), then removed, as a custom resource may not be created with one. Then the import itself ([`crate::controller::image_stream_import::answer`], the
//! same code the controller runs): registry reads, Images, the stream's spec and status. The
//! answer is patched into `status` and stored with the request; a request of the same name
//! answered before is removed first, so the next import of a stream is not refused as
//! existing.
//!
//! Time limit: the webhook is registered with a longer timeout than the others; registry work
//! stops after [`Imports::budget`] (two thirds of it), and every entry not done by then is
//! answered as failed with reason `Timeout` (code 504), as a registry timeout is: what
//! finished is applied, the rest records a failed import on its tag. The remaining third is for
//! the writes. A dry run (`dryRun=All`) asks the registry and writes nothing (no Images, no
//! stream, no `status.import`, the previous request stays); the webhook is registered with
//! `sideEffects: NoneOnDryRun`.
//!
//! What the webhook process keeps for this, on every replica: one registry client cache (tokens
//! and connections, as the controllers' importer) and the import settings it follows. Pull
//! secrets are listed per request in the request's namespace (as upstream reads the stream's
//! secrets per request), the stream is read per request, and Images already in the cluster are
//! not looked up: the import fetches what it answers with (upstream fetches every time too),
//! and an Image that exists is simply not created again.
//!
//! [`validate`] (the validating webhook, CREATE) applies the same shape and registry rules to
//! the object as stored.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::events::{Recorder, Reporter};
use futures::future::join;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::core::Status;
use kube::core::admission::{AdmissionResponse, Operation};
use kube::core::response::StatusDetails;
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::AdmissionSettings;
use super::access::{self, Authorizer};
use super::limit_ranges::LimitRangeSource;
use super::review::{self, Request, ReviewError};
use crate::api::GROUP;
use crate::api::image_stream::ImageStream;
use crate::api::image_stream_import::ImageStreamImport;
use crate::controller::image_stream_import::{self as answering, Host};
use crate::controller::{InFlight, Metrics, Run, Settings};
use crate::credentials::Keyring;
use crate::import::importer::Importer;
use crate::reference::DockerImageReference;
use crate::registry::policy::AllowedRegistries;
use crate::stream::image_stream_import;
use crate::stream::limits::Limits;
use crate::stream::validation::{self, FieldError};

const KIND: &str = "ImageStreamImport";

/// Pull-secret types an import reads (as the controllers).
const SECRET_TYPES: [&str; 2] = ["kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg"];

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
    let errors = request_errors(request, &isi, settings, authorizer).await;
    Ok(if errors.is_empty() {
        review::allow(request)
    } else {
        review::invalid(request, GROUP, KIND, &errors)
    })
}

/// The shape rules, then `allowedRegistriesForImport` unless the user may bypass it.
async fn request_errors(
    request: &Request,
    isi: &ImageStreamImport,
    settings: &AdmissionSettings,
    authorizer: &dyn Authorizer,
) -> Vec<FieldError> {
    let mut errors = validation::validate_image_stream_import(isi);
    if errors.is_empty()
        && let Some(allowed) = &settings.allowed_registries
    {
        let registry_errors = registry_errors(isi, allowed);
        if !registry_errors.is_empty() && !may_bypass(request, authorizer).await {
            errors = registry_errors;
        }
    }
    errors
}

/// What the webhook needs to answer imports: the operator's client, the import settings it
/// follows, one importer (one registry client cache) for the process, the streams being
/// written (shared with the controllers of the same process), and the time limit.
pub struct Imports {
    client: Client,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    in_flight: Arc<InFlight>,
    current: RwLock<(Arc<Settings>, Arc<Importer>)>,
    budget: Duration,
}

impl Imports {
    /// Imports through `client` (the operator's) with `settings`; registry work of one request
    /// stops after `budget`.
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        in_flight: Arc<InFlight>,
        settings: Settings,
        budget: Duration,
    ) -> Imports {
        let mut settings = settings;
        let importer = crate::controller::importer_for(&mut settings, &metrics);
        let reporter = Reporter {
            controller: "imagestream-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Imports {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            in_flight,
            current: RwLock::new((Arc::new(settings), Arc::new(importer))),
            budget,
        }
    }

    /// Follows new configuration; registry clients are rebuilt only when transport settings
    /// changed.
    pub fn set_settings(&self, next: Settings) {
        let mut next = next;
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let importer = if current.0.same_transport(&next) {
            crate::controller::with_observer(&mut next, &self.metrics);
            current.1.clone()
        } else {
            Arc::new(crate::controller::importer_for(&mut next, &self.metrics))
        };
        *current = (Arc::new(next), importer);
    }

    /// How long one request's registry work may take.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    fn current(&self) -> (Arc<Settings>, Arc<Importer>) {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The namespace's pull secrets, read now.
    async fn keyring(&self, namespace: &str) -> Result<Keyring, kube::Error> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let by_type = |t: &str| ListParams::default().fields(&format!("type={t}"));
        let (a, b) = join(
            api.list(&by_type(SECRET_TYPES[0])),
            api.list(&by_type(SECRET_TYPES[1])),
        )
        .await;
        let (a, b) = (a?, b?);
        Ok(Keyring::from_secrets(a.items.iter().chain(&b.items)))
    }
}

/// Answers an ImageStreamImport CREATE (see the module doc). Without `imports` the request is
/// only checked, defaulted and stored for the controller to answer.
pub async fn mutate(
    request: &Request,
    settings: &AdmissionSettings,
    authorizer: &dyn Authorizer,
    limits: &dyn LimitRangeSource,
    imports: Option<&Imports>,
) -> Result<AdmissionResponse, ReviewError> {
    review::expect_kind(request, GROUP, KIND)?;
    if request.operation != Operation::Create {
        return Ok(review::allow(request));
    }
    let (mut isi, json) =
        review::decode::<ImageStreamImport>(request.object.as_ref(), "object", KIND)?;
    let namespace = isi
        .metadata
        .namespace
        .clone()
        .or_else(|| request.namespace.clone())
        .unwrap_or_default();
    isi.metadata.namespace = Some(namespace.clone());
    let errors = request_errors(request, &isi, settings, authorizer).await;
    if !errors.is_empty() {
        return Ok(review::invalid(request, GROUP, KIND, &errors));
    }
    image_stream_import::default_targets(&mut isi);
    let Some(imports) = imports else {
        isi.status = None;
        return Ok(review::allow_patched(request, answer_patch(&json, &isi)?));
    };
    let name = isi.name_any();
    let streams: Api<ImageStream> = Api::namespaced(imports.client.clone(), &namespace);
    let found = match streams.get_opt(&name).await {
        Ok(found) => found,
        Err(e) => {
            return Ok(review::internal_error(
                request,
                &format!("reading the image stream: {e}"),
            ));
        }
    };
    if let Some(refused) = precondition_failure(&isi, found.as_ref()) {
        return Ok(deny(request, refused));
    }
    let keyring = match imports.keyring(&namespace).await {
        Ok(keyring) => keyring,
        Err(e) => {
            return Ok(review::internal_error(
                request,
                &format!("reading the pull secrets: {e}"),
            ));
        }
    };
    let limits = limits
        .limit_ranges(&namespace)
        .await
        .map(|ranges| Limits::from_ranges(&ranges))
        .unwrap_or_default();
    let (import_settings, importer) = imports.current();
    let nothing = |_: &str| None;
    let host = Host {
        client: &imports.client,
        settings: &import_settings,
        run: Run {
            importer: &importer,
            settings: &import_settings.import,
            metrics: &imports.metrics,
            deadline: Some(tokio::time::Instant::now() + imports.budget),
        },
        recorder: &imports.recorder,
        keyring,
        limits,
        existing: &nothing,
    };
    let known = std::collections::HashMap::<String, bool>::new();
    let dry_run = request.dry_run;
    let answer = {
        let _applying = (!dry_run).then(|| imports.in_flight.mark(&namespace, &name));
        answering::answer(&host, &known, &isi, found, dry_run).await
    };
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(%namespace, %name, reason = e.reason(), error = %e, "import failed");
            return Ok(review::internal_error(request, &e.to_string()));
        }
    };
    if !dry_run {
        forget_answered(&imports.client, &namespace, &name).await;
        if let Some(refusal) = answer.refused {
            let (recorder, isi) = (imports.recorder.clone(), isi.clone());
            tokio::spawn(async move {
                answering::publish_refusal(&recorder, &isi, &refusal).await;
            });
        }
    }
    isi.status = Some(answer.status);
    Ok(review::allow_patched(request, answer_patch(&json, &isi)?))
}

/// Upstream's precondition (semantics 5.2 step 4): a `resourceVersion` the client sent must be
/// the stream's (409), and the stream must exist (404). (Upstream also takes a `uid`, but the
/// apiserver clears a client's uid on create before any webhook sees it; `oc` sends none.)
fn precondition_failure(isi: &ImageStreamImport, stream: Option<&ImageStream>) -> Option<Status> {
    let name = isi.name_any();
    let sent = isi
        .metadata
        .resource_version
        .as_deref()
        .filter(|v| !v.is_empty())?;
    let Some(stream) = stream else {
        return Some(
            Status::failure(
                &format!("imagestreams.{GROUP} {name:?} not found"),
                "NotFound",
            )
            .with_code(404)
            .with_details(details(&name, "imagestreams")),
        );
    };
    let stored = stream.metadata.resource_version.clone().unwrap_or_default();
    (sent != stored).then(|| {
        Status::failure(
            &format!(
                "Operation cannot be fulfilled on imagestream.{GROUP} {name:?}: the image \
                 stream was updated from {sent:?} to {stored:?}"
            ),
            "Conflict",
        )
        .with_code(409)
        .with_details(details(&name, "imagestream"))
    })
}

/// Status details naming the stream as upstream's errors name it (`kind` is the resource).
fn details(name: &str, kind: &str) -> StatusDetails {
    StatusDetails {
        name: name.into(),
        group: GROUP.into(),
        kind: kind.into(),
        uid: String::new(),
        causes: Vec::new(),
        retry_after_seconds: 0,
    }
}

fn deny(request: &Request, status: Status) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request);
    response.allowed = false;
    response.result = status;
    response
}

/// The patch storing `isi` as answered: its spec (defaults applied) and status, without the
/// `resourceVersion` a client may have sent as a precondition.
fn answer_patch(json: &Value, isi: &ImageStreamImport) -> Result<json_patch::Patch, ReviewError> {
    let undecodable = |source| ReviewError::Undecodable {
        which: "object",
        kind: KIND,
        source,
    };
    let mut answered = json.clone();
    let Some(object) = answered.as_object_mut() else {
        return Err(ReviewError::MissingObject("object"));
    };
    object.insert(
        "spec".into(),
        serde_json::to_value(&isi.spec).map_err(undecodable)?,
    );
    match &isi.status {
        Some(status) => {
            object.insert(
                "status".into(),
                serde_json::to_value(status).map_err(undecodable)?,
            );
        }
        None => {
            object.remove("status");
        }
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    Ok(json_patch::diff(json, &answered))
}

/// Removes a request of the same name that was answered before, so this one can be stored (a
/// request not answered yet is left to the controller).
async fn forget_answered(client: &Client, namespace: &str, name: &str) {
    let api: Api<ImageStreamImport> = Api::namespaced(client.clone(), namespace);
    let previous = match api.get_opt(name).await {
        Ok(Some(previous)) if previous.status.is_some() => previous,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(%namespace, %name, error = %e, "reading the previous import request");
            return;
        }
    };
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: previous.uid(),
            resource_version: previous.resource_version(),
        }),
        ..DeleteParams::default()
    };
    if let Err(e) = api.delete(name, &params).await
        && !matches!(&e, kube::Error::Api(s) if s.is_not_found() || s.is_conflict())
    {
        tracing::warn!(%namespace, %name, error = %e, "removing the previous import request");
    }
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
    use crate::api::image_stream_import::ImageStreamImportStatus;
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

    fn stream_at(version: &str) -> ImageStream {
        serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "s", "namespace": "ns", "resourceVersion": version},
            "spec": {},
        }))
        .unwrap()
    }

    // Semantics 5.2 step 4: the resourceVersion `oc import-image` sends must be the stream's.
    #[test]
    fn the_streams_resource_version_is_a_precondition() {
        let mut request: ImageStreamImport = serde_json::from_value(isi("quay.io/a/b:1")).unwrap();
        assert_eq!(precondition_failure(&request, None), None, "none sent");
        assert_eq!(precondition_failure(&request, Some(&stream_at("5"))), None);
        request.metadata.resource_version = Some("5".into());
        assert_eq!(precondition_failure(&request, Some(&stream_at("5"))), None);
        let stale = precondition_failure(&request, Some(&stream_at("9"))).unwrap();
        assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));
        assert_eq!(
            stale.message,
            r#"Operation cannot be fulfilled on imagestream.image.openshift.io "s": the image stream was updated from "5" to "9""#
        );
        let missing = precondition_failure(&request, None).unwrap();
        assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
        assert_eq!(
            missing.message,
            r#"imagestreams.image.openshift.io "s" not found"#
        );
    }

    // The stored request: defaults and the answer in, the precondition out.
    #[test]
    fn the_answer_is_patched_in() {
        let mut object = isi("quay.io/a/b:1");
        object["metadata"]["resourceVersion"] = json!("5");
        object["status"] = json!({});
        let mut request: ImageStreamImport = serde_json::from_value(object.clone()).unwrap();
        image_stream_import::default_targets(&mut request);
        request.status = Some(ImageStreamImportStatus::default());
        let patch = answer_patch(&object, &request).unwrap();
        let mut stored = object.clone();
        json_patch::patch(&mut stored, &patch.0).unwrap();
        assert_eq!(stored["metadata"].get("resourceVersion"), None);
        assert_eq!(stored["spec"]["images"][0]["to"]["name"], "1");
        assert_eq!(stored["status"], json!({}));
        request.status = None;
        let mut stored = object.clone();
        json_patch::patch(&mut stored, &answer_patch(&object, &request).unwrap().0).unwrap();
        assert_eq!(stored.get("status"), None, "a user's status is not kept");
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
