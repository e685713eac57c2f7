//! The write paths of ImageStreamTag and ImageTag (semantics 3.7, 7.2, 7.3): a user's create,
//! update or delete of a tag view is applied to the stream inside the admission request, as
//! upstream's REST storage applies it, so errors reach the user and the stream is changed
//! before the view is stored.
//!
//! [`mutate`] (CREATE, UPDATE) validates the view with upstream's rules, checks cross-namespace
//! sources for the requesting user, reads the stream, applies the edit
//! ([`crate::stream::tag_edit`]) and writes it back with its resourceVersion (10 attempts on
//! conflicts, as upstream), then answers with the view of the stream as written, hash
//! included, so the views controller finds it in step. [`validate_delete`] removes the spec
//! tag, then the history. Writes by the operator itself (the views controller keeping views in
//! step) pass untouched: they follow the stream and must never be written back into it.
//!
//! An update whose resourceVersion is not the stored one is refused here with 409 before the
//! stream is touched, so a stale writer cannot change the stream and then fail.
//!
//! OpenShift's clients (`oc tag`, `oc create imagestreamtag`) create views named
//! `<stream>:<tag>`, a name no custom resource can have. A create of a new tag so named is
//! stored under [`names::stream_tag`] (the apiserver takes the name of the mutated object; the
//! exact names stay in the annotations); one for a tag that exists is answered 405, the answer
//! on which `oc tag` falls back to editing the ImageStream (`pkg/cli/tag/tag.go`), as its
//! overwrite must: its update of `<stream>:<tag>` found nothing to update.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::core::Status;
use kube::core::admission::{AdmissionResponse, Operation};
use serde_json::Value;

use super::AdmissionSettings;
use super::access::Authorizer;
use super::review::{self, Request, ReviewError};
use crate::api::GROUP;
use crate::api::image::Image;
use crate::api::image_stream::{ImageStream, ImageStreamSpec, TagReference};
use crate::api::image_stream_tag::ImageStreamTag;
use crate::api::image_tag::ImageTag;
use crate::names;
use crate::reference;
use crate::stream::tag_edit::{self, Edit, EditError};
use crate::stream::validation::{self, FieldError, ValidationContext};
use crate::stream::views;

/// Attempts at writing a stream before giving up (upstream's count).
const ATTEMPTS: usize = 10;
/// Field manager of the stream writes made on a user's behalf.
pub const MANAGER: &str = "imagestream-operator-tags";

const ISTAG: &str = "ImageStreamTag";
const ITAG: &str = "ImageTag";

/// Writes streams and Images on behalf of requests to the tag views and ImageSignatures;
/// `operator` is the operator's own user name, whose requests are let through.
#[derive(Clone)]
pub struct Writer {
    client: Client,
    operator: String,
}

impl Writer {
    pub fn new(client: Client, operator: impl Into<String>) -> Writer {
        Writer {
            client,
            operator: operator.into(),
        }
    }

    /// Asks the apiserver who `client` is (a SelfSubjectReview).
    pub async fn discover(client: Client) -> Result<Writer, kube::Error> {
        use k8s_openapi::api::authentication::v1::SelfSubjectReview;
        let review = Api::<SelfSubjectReview>::all(client.clone())
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await?;
        let operator = review
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .unwrap_or_default();
        Ok(Writer::new(client, operator))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The operator's own user name (empty when the apiserver did not say).
    pub fn operator(&self) -> &str {
        &self.operator
    }

    /// Whether the operator itself sent the request.
    pub fn is_operator(&self, request: &Request) -> bool {
        !self.operator.is_empty()
            && request.user_info.username.as_deref() == Some(self.operator.as_str())
    }
}

/// A request refused with a status of its own.
#[derive(Debug)]
struct Denial {
    code: u16,
    reason: &'static str,
    message: String,
}

impl From<EditError> for Denial {
    fn from(e: EditError) -> Self {
        Denial {
            code: e.code(),
            reason: e.reason(),
            message: e.to_string(),
        }
    }
}

impl Denial {
    fn from_api(error: kube::Error, what: &str) -> Denial {
        match error {
            kube::Error::Api(s) => Denial {
                code: s.code,
                reason: "StreamWriteRefused",
                message: format!("{what}: {}", s.message),
            },
            e => Denial {
                code: 500,
                reason: "StreamWriteFailed",
                message: format!("{what}: {e}"),
            },
        }
    }

    fn respond(self, request: &Request) -> AdmissionResponse {
        let mut response = AdmissionResponse::from(request);
        response.allowed = false;
        response.result = Status::failure(&self.message, self.reason).with_code(self.code);
        response
    }
}

/// The stream and tag a view stands for: its annotations, else its (plain) name; the name
/// must be the one [`names::stream_tag`] gives them.
fn stream_and_tag(meta: &ObjectMeta, kind: &str) -> Result<(String, String), Vec<FieldError>> {
    let name = meta.name.clone().unwrap_or_default();
    let annotated = meta.annotations.as_ref().and_then(|a| {
        Some((
            a.get(names::ANNOTATION_STREAM)?.clone(),
            a.get(names::ANNOTATION_TAG)?.clone(),
        ))
    });
    let (stream, tag) = match annotated {
        Some(pair) => pair,
        None => match names::parse_stream_tag(&name) {
            Some((s, t)) => (s.to_string(), t.to_string()),
            None => {
                return Err(vec![FieldError::invalid(
                    "metadata.name",
                    &name,
                    format!(
                        "{kind}s must be named <stream>.<tag>, or carry the annotations {} and {}",
                        names::ANNOTATION_STREAM,
                        names::ANNOTATION_TAG
                    ),
                )]);
            }
        },
    };
    let expected = names::stream_tag(&stream, &tag);
    if expected != name {
        return Err(vec![FieldError::invalid(
            "metadata.name",
            &name,
            format!("the {kind} for {stream}:{tag} must be named {expected}"),
        )]);
    }
    Ok((stream, tag))
}

/// For a CREATE named the OpenShift way (`<stream>:<tag>`): renames `object` to the name
/// [`names::stream_tag`] gives the tag and records the exact stream and tag in its
/// annotations, returning the OpenShift name. `None` for any other name; upstream's 400 for a
/// name with `@` or without exactly one `:` between a stream and a tag.
fn take_openshift_name(object: &mut Value, kind: &str) -> Result<Option<String>, Denial> {
    let Some(name) = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| n.contains([':', '@']))
        .map(str::to_owned)
    else {
        return Ok(None);
    };
    let (stream, tag) = reference::parse_image_stream_tag_name(&name).map_err(|_| Denial {
        code: 400,
        reason: "BadRequest",
        message: format!("{kind}s must be retrieved with <name>:<tag>"),
    })?;
    let encoded = names::stream_tag(stream, tag);
    let (stream, tag) = (stream.to_owned(), tag.to_owned());
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Ok(None);
    };
    rename(
        meta,
        encoded,
        [
            (names::ANNOTATION_STREAM, stream),
            (names::ANNOTATION_TAG, tag),
        ],
    );
    Ok(Some(name))
}

/// Gives an object's `metadata` the name it is stored under, keeping what the client wrote
/// in `annotations` (set to an object when it was something else).
pub(super) fn rename<'a>(
    meta: &mut serde_json::Map<String, Value>,
    name: String,
    annotations: impl IntoIterator<Item = (&'a str, String)>,
) {
    meta.insert("name".into(), Value::String(name));
    let slot = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(serde_json::Map::new());
    }
    if let Some(slot) = slot.as_object_mut() {
        for (key, value) in annotations {
            slot.insert(key.into(), Value::String(value));
        }
    }
}

/// The answer to a create of an existing tag by its OpenShift name: 405, on which `oc tag`
/// edits the ImageStream instead (its update of `<stream>:<tag>` found nothing to update).
fn exists_by_openshift_name(plural: &str, name: &str, encoded: &str) -> Denial {
    Denial {
        code: 405,
        reason: "MethodNotAllowed",
        message: format!(
            "{plural} {name:?} already exists; change it through its ImageStream (oc tag does) or as {plural}/{encoded}"
        ),
    }
}

/// `meta` as upstream's validation sees it: without bookkeeping and client annotations.
fn as_user_wrote(meta: &ObjectMeta) -> ObjectMeta {
    let mut meta = meta.clone();
    meta.annotations = meta
        .annotations
        .as_ref()
        .map(views::user_annotations)
        .filter(|a| !a.is_empty());
    meta
}

/// The kind of the request: ImageStreamTag or ImageTag (anything else is refused).
fn view_kind(request: &Request) -> Result<&'static str, ReviewError> {
    match request.kind.kind.as_str() {
        ITAG if request.kind.group == GROUP => Ok(ITAG),
        _ => review::expect_kind(request, GROUP, ISTAG).map(|()| ISTAG),
    }
}

/// Answers an ImageStreamTag or ImageTag CREATE or UPDATE.
pub async fn mutate(
    request: &Request,
    settings: &AdmissionSettings,
    authorizer: &dyn Authorizer,
    writer: Option<&Writer>,
) -> Result<AdmissionResponse, ReviewError> {
    let kind = view_kind(request)?;
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return Ok(review::allow(request));
    }
    let Some(writer) = writer else {
        return Ok(review::internal_error(
            request,
            "this webhook server does not write streams for tag views",
        ));
    };
    if writer.is_operator(request) {
        return Ok(review::allow(request));
    }
    let (mut object, json) = review::decode::<Value>(request.object.as_ref(), "object", kind)?;
    let openshift_name = match request.operation {
        Operation::Create => match take_openshift_name(&mut object, kind) {
            Ok(named) => named,
            Err(denial) => return Ok(denial.respond(request)),
        },
        _ => None,
    };
    let old = match request.operation {
        Operation::Update => {
            Some(review::decode::<Value>(request.old_object.as_ref(), "oldObject", kind)?.0)
        }
        _ => None,
    };
    // a stale writer is refused before anything is judged or written
    let sent = object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str);
    let stored = old
        .as_ref()
        .and_then(|o| o.pointer("/metadata/resourceVersion"))
        .and_then(Value::as_str);
    if old.is_some() && sent.is_some() && sent != stored {
        return Ok(Denial {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {}s \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                kind.to_lowercase(),
                request.name
            ),
        }
        .respond(request));
    }
    let namespace = request.namespace.clone().unwrap_or_default();
    let ctx = ValidationContext {
        allowed_registries: settings.allowed_registries.as_ref(),
    };
    let judged = match kind {
        ISTAG => judge_stream_tag(&object, old.as_ref(), &namespace, &ctx),
        _ => judge_image_tag(&object, old.as_ref(), &namespace, &ctx),
    };
    let plan = match judged {
        Ok(plan) => plan,
        Err(errors) => return Ok(review::invalid(request, GROUP, kind, &errors)),
    };
    let Plan { stream, tag, edit } = plan;
    let errors =
        cross_namespace_errors(request, &namespace, &stream, &tag, &edit, authorizer).await;
    if !errors.is_empty() {
        return Ok(review::invalid(request, GROUP, kind, &errors));
    }
    let plural = if kind == ISTAG {
        "imagestreamtags"
    } else {
        "imagetags"
    };
    let written = match edit_stream(
        writer,
        &namespace,
        &stream,
        &tag,
        edit,
        plural,
        request.dry_run,
    )
    .await
    {
        Ok(s) => s,
        Err(denial) => {
            let denial = match &openshift_name {
                Some(name) if denial.reason == "AlreadyExists" => {
                    exists_by_openshift_name(plural, name, &names::stream_tag(&stream, &tag))
                }
                _ => denial,
            };
            return Ok(denial.respond(request));
        }
    };
    let images = fetch_current_image(writer, &written, &tag).await;
    let lookup = move |name: &str| images.get(name).cloned();
    let view = match kind {
        ISTAG => serde_json::to_value(views::image_stream_tag(&written, &tag, &lookup)),
        _ => serde_json::to_value(views::image_tag(&written, &tag, &lookup)),
    };
    let Ok(view) = view else {
        return Ok(review::internal_error(
            request,
            "the view could not be encoded",
        ));
    };
    let mutated = merged(&json, view, kind == ITAG);
    Ok(review::allow_patched(
        request,
        json_patch::diff(&json, &mutated),
    ))
}

/// What a valid write does.
#[derive(Debug)]
struct Plan {
    stream: String,
    tag: String,
    edit: Edit,
}

fn decode_as<K: serde::de::DeserializeOwned>(value: &Value) -> Result<K, Vec<FieldError>> {
    serde_json::from_value(value.clone()).map_err(|e| {
        vec![FieldError::invalid(
            "",
            "",
            format!("not a valid object: {e}"),
        )]
    })
}

fn judge_stream_tag(
    object: &Value,
    old: Option<&Value>,
    namespace: &str,
    ctx: &ValidationContext,
) -> Result<Plan, Vec<FieldError>> {
    let mut new: ImageStreamTag = decode_as(object)?;
    let (stream, tag) = stream_and_tag(old_meta(old)?.as_ref().unwrap_or(&new.metadata), ISTAG)?;
    if let Some(t) = new.spec.tag.as_mut() {
        t.name = tag.clone();
    }
    let mut user = new.clone();
    user.metadata = as_user_wrote(&new.metadata);
    user.metadata
        .namespace
        .get_or_insert_with(|| namespace.into());
    let errors = match old {
        Some(old) => {
            let mut old: ImageStreamTag = decode_as(old)?;
            old.metadata = as_user_wrote(&old.metadata);
            validation::validate_image_stream_tag_update_with_context(&user, &old, ctx)
        }
        None => validation::validate_image_stream_tag(&user, ctx),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    // the spec tag's annotations are the object's (upstream: metadata.annotations)
    let reference = new.spec.tag.take().map(|mut t| {
        t.annotations = user.metadata.annotations.clone().or(t.annotations);
        t
    });
    let edit = match old {
        Some(_) => Edit::UpdateStreamTag(reference),
        None => Edit::Create(reference),
    };
    Ok(Plan { stream, tag, edit })
}

fn judge_image_tag(
    object: &Value,
    old: Option<&Value>,
    namespace: &str,
    ctx: &ValidationContext,
) -> Result<Plan, Vec<FieldError>> {
    let new: ImageTag = decode_as(object)?;
    let (stream, tag) = stream_and_tag(old_meta(old)?.as_ref().unwrap_or(&new.metadata), ITAG)?;
    // upstream compares spec.name with the tag of the `<stream>:<tag>` name
    let mut user = new.clone();
    user.metadata = as_user_wrote(&new.metadata);
    user.metadata.name = Some(format!("{stream}:{tag}"));
    user.metadata
        .namespace
        .get_or_insert_with(|| namespace.into());
    let errors = match old {
        Some(old) => {
            let mut old: ImageTag = decode_as(old)?;
            old.metadata = as_user_wrote(&old.metadata);
            old.metadata.name = user.metadata.name.clone();
            // status is a subresource: what the request carries there is not written
            user.status = old.status.clone();
            user.metadata.labels = old.metadata.labels.clone();
            user.metadata.annotations = old.metadata.annotations.clone();
            validation::validate_image_tag_update_with_context(&user, &old, ctx)
        }
        None => validation::validate_image_tag(&user, ctx),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let reference = new.spec.spec.clone();
    let edit = match old {
        Some(_) => Edit::UpdateImageTag(reference),
        None => Edit::Create(reference),
    };
    Ok(Plan { stream, tag, edit })
}

fn old_meta(old: Option<&Value>) -> Result<Option<ObjectMeta>, Vec<FieldError>> {
    old.and_then(|o| o.get("metadata"))
        .map(decode_as::<ObjectMeta>)
        .transpose()
}

/// Forbidden errors for a source in another namespace the requesting user may not read.
async fn cross_namespace_errors(
    request: &Request,
    namespace: &str,
    stream: &str,
    tag: &str,
    edit: &Edit,
    authorizer: &dyn Authorizer,
) -> Vec<FieldError> {
    let reference: Option<&TagReference> = match edit {
        Edit::Create(r) | Edit::UpdateStreamTag(r) | Edit::UpdateImageTag(r) => r.as_ref(),
        Edit::Delete => None,
    };
    let Some(reference) = reference else {
        return Vec::new();
    };
    let mut with_tag = ImageStream {
        metadata: ObjectMeta {
            name: Some(stream.into()),
            namespace: Some(namespace.into()),
            ..ObjectMeta::default()
        },
        spec: ImageStreamSpec::default(),
        status: None,
    };
    let mut reference = reference.clone();
    reference.name = tag.into();
    with_tag.spec.tags.push(reference);
    super::image_stream::cross_namespace_errors(request, &with_tag, None, authorizer).await
}

/// Reads the stream, applies `edit`, writes it back; on conflicts reads again, up to
/// [`ATTEMPTS`] times. A dry run writes nothing and answers with the stream as it would be.
async fn edit_stream(
    writer: &Writer,
    namespace: &str,
    stream: &str,
    tag: &str,
    edit: Edit,
    plural: &'static str,
    dry_run: bool,
) -> Result<ImageStream, Denial> {
    let api = Api::<ImageStream>::namespaced(writer.client.clone(), namespace);
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..PostParams::default()
    };
    for _ in 0..ATTEMPTS {
        let current = api
            .get_opt(stream)
            .await
            .map_err(|e| Denial::from_api(e, "reading the image stream"))?;
        let exists = current.is_some();
        let mut next = current.unwrap_or_else(|| ImageStream {
            metadata: ObjectMeta {
                name: Some(stream.into()),
                namespace: Some(namespace.into()),
                ..ObjectMeta::default()
            },
            spec: ImageStreamSpec::default(),
            status: None,
        });
        let changed = tag_edit::apply(&mut next, tag, edit.clone(), plural)?;
        if dry_run {
            return Ok(next);
        }
        let edited_status = next.status.clone();
        if changed.spec {
            let written = if exists {
                api.replace(stream, &params, &next).await
            } else {
                api.create(&params, &next).await
            };
            match written {
                Ok(written) => next = written,
                Err(kube::Error::Api(s)) if s.is_conflict() || s.is_already_exists() => continue,
                Err(e) => return Err(Denial::from_api(e, "writing the image stream")),
            }
        }
        if changed.status {
            next.status = edited_status;
            match api.replace_status(stream, &params, &next).await {
                Ok(written) => next = written,
                Err(kube::Error::Api(s)) if s.is_conflict() => continue,
                Err(e) => return Err(Denial::from_api(e, "writing the image stream status")),
            }
        }
        return Ok(next);
    }
    Err(Denial {
        code: 504,
        reason: "Timeout",
        message: format!(
            "the image stream {namespace}/{stream} kept changing; {ATTEMPTS} attempts at editing tag {tag} failed"
        ),
    })
}

/// The Image of the tag's current event, read once for the view.
async fn fetch_current_image(
    writer: &Writer,
    stream: &ImageStream,
    tag: &str,
) -> BTreeMap<String, Arc<Image>> {
    let Some(digest) = stream
        .status
        .as_ref()
        .and_then(|s| s.tag(tag))
        .and_then(|t| t.latest())
        .map(|e| e.image.clone())
        .filter(|d| !d.is_empty())
    else {
        return BTreeMap::new();
    };
    match Api::<Image>::all(writer.client.clone())
        .get_opt(&names::image(&digest))
        .await
    {
        Ok(Some(image)) => [(digest, Arc::new(image))].into(),
        _ => BTreeMap::new(),
    }
}

/// The request's object turned into `view`: the view's fields and the metadata the operator
/// keeps (labels, annotations, owner), everything else of the request's metadata kept, and
/// its client annotations.
fn merged(request: &Value, view: Value, with_status: bool) -> Value {
    let mut out = view;
    let Some(map) = out.as_object_mut() else {
        return request.clone();
    };
    let mut meta = request.get("metadata").cloned().unwrap_or(Value::Null);
    let view_meta = map.remove("metadata").unwrap_or(Value::Null);
    if let Some(meta) = meta.as_object_mut() {
        // the same name, or the encoded one of a view created as `<stream>:<tag>`
        for key in ["name", "labels", "ownerReferences"] {
            match view_meta.get(key) {
                Some(v) => meta.insert(key.into(), v.clone()),
                None => meta.remove(key),
            };
        }
        let mut annotations = view_meta
            .get("annotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(own) = meta.get("annotations").and_then(Value::as_object) {
            for (k, v) in own {
                if views::is_client_annotation(k) {
                    annotations.insert(k.clone(), v.clone());
                }
            }
        }
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    map.insert("metadata".into(), meta);
    if !with_status {
        map.remove("status");
    } else if let Some(status) = request.get("status") {
        map.insert("status".into(), status.clone());
    } else {
        map.remove("status");
    }
    out
}

/// Answers an ImageStreamTag or ImageTag DELETE: the tag's spec entry, then its history,
/// leave the stream. A view whose tag the stream no longer has goes without a write.
pub async fn validate_delete(
    request: &Request,
    writer: Option<&Writer>,
) -> Result<AdmissionResponse, ReviewError> {
    let kind = view_kind(request)?;
    if request.operation != Operation::Delete {
        return Ok(review::allow(request));
    }
    let Some(writer) = writer else {
        return Ok(review::internal_error(
            request,
            "this webhook server does not write streams for tag views",
        ));
    };
    if writer.is_operator(request) || request.dry_run {
        return Ok(review::allow(request));
    }
    let (old, _) = review::decode::<Value>(request.old_object.as_ref(), "oldObject", kind)?;
    let meta: ObjectMeta = match old
        .get("metadata")
        .map(|m| serde_json::from_value(m.clone()))
    {
        Some(Ok(meta)) => meta,
        _ => return Err(ReviewError::MissingObject("oldObject.metadata")),
    };
    let Ok((stream, tag)) = stream_and_tag(&meta, kind) else {
        // not a view the operator made: nothing of a stream to remove
        return Ok(review::allow(request));
    };
    let namespace = request.namespace.clone().unwrap_or_default();
    let plural = if kind == ISTAG {
        "imagestreamtags"
    } else {
        "imagetags"
    };
    match edit_stream(
        writer,
        &namespace,
        &stream,
        &tag,
        Edit::Delete,
        plural,
        false,
    )
    .await
    {
        Ok(_) => Ok(review::allow(request)),
        // the stream or the tag is gone already: the view is stale
        Err(d) if d.code == 404 => Ok(review::allow(request)),
        Err(d) => Ok(d.respond(request)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(name: &str, annotations: Value) -> ObjectMeta {
        serde_json::from_value(json!({"name": name, "annotations": annotations})).unwrap()
    }

    #[test]
    fn stream_and_tag_come_from_annotations_or_a_plain_name() {
        assert_eq!(
            stream_and_tag(&meta("ruby.latest", json!({})), ISTAG).unwrap(),
            ("ruby".into(), "latest".into())
        );
        let hashed = names::stream_tag("my.app", "Latest");
        let annotated = meta(
            &hashed,
            json!({names::ANNOTATION_STREAM: "my.app", names::ANNOTATION_TAG: "Latest"}),
        );
        assert_eq!(
            stream_and_tag(&annotated, ISTAG).unwrap(),
            ("my.app".into(), "Latest".into())
        );
        let err = stream_and_tag(&meta(&hashed, json!({})), ISTAG).unwrap_err();
        assert!(
            err[0].message().contains(names::ANNOTATION_STREAM),
            "{err:?}"
        );
        let wrong = meta(
            "other",
            json!({names::ANNOTATION_STREAM: "ruby", names::ANNOTATION_TAG: "latest"}),
        );
        let err = stream_and_tag(&wrong, ITAG).unwrap_err();
        assert!(
            err[0].message().contains("must be named ruby.latest"),
            "{err:?}"
        );
    }

    #[test]
    fn an_istag_create_takes_its_annotations_and_name_from_the_object() {
        let object = json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStreamTag",
            "metadata": {"name": "ruby.latest", "annotations": {"color": "blue",
                "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "tag": {"name": "", "from": {"kind": "DockerImage", "name": "ruby:3"}},
        });
        let plan = judge_stream_tag(&object, None, "ns", &ValidationContext::default()).unwrap();
        let Edit::Create(Some(tag)) = plan.edit else {
            panic!("{:?}", plan.edit)
        };
        assert_eq!(tag.name, "latest");
        assert_eq!(
            tag.annotations,
            Some([("color".to_string(), "blue".to_string())].into())
        );
    }

    /// Case 67: a tag without `from` name is invalid; Case 69: an ImageTag whose spec names
    /// another tag, or without spec, is invalid.
    #[test]
    fn invalid_views_are_refused() {
        let istag = json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStreamTag",
            "metadata": {"name": "test.tag"},
            "tag": {"name": "tag", "from": {"kind": "DockerImage", "name": ""}},
        });
        assert!(judge_stream_tag(&istag, None, "ns", &ValidationContext::default()).is_err());
        let other = json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageTag",
            "metadata": {"name": "test.tag"},
            "spec": {"name": "other", "from": {"kind": "DockerImage", "name": "x:1"}},
        });
        let err = judge_image_tag(&other, None, "ns", &ValidationContext::default()).unwrap_err();
        assert!(
            err.iter()
                .any(|e| e.message().contains("must match image tag name")),
            "{err:?}"
        );
        let none = json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageTag",
            "metadata": {"name": "test.tag"},
        });
        let err = judge_image_tag(&none, None, "ns", &ValidationContext::default()).unwrap_err();
        assert!(
            err.iter().any(|e| e
                .message()
                .contains("spec is a required field during creation")),
            "{err:?}"
        );
    }

    /// `oc tag` and `oc create imagestreamtag` name the view `<stream>:<tag>`.
    #[test]
    fn an_openshift_name_is_encoded_and_kept_in_the_annotations() {
        let mut object = json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStreamTag",
            "metadata": {"name": "hello:Copied", "namespace": "ns"},
            "tag": {"name": "Copied", "from": {"kind": "DockerImage", "name": "r/hello:v2"}},
        });
        let name = take_openshift_name(&mut object, ISTAG).unwrap();
        assert_eq!(name.as_deref(), Some("hello:Copied"));
        let encoded = names::stream_tag("hello", "Copied");
        assert_eq!(object["metadata"]["name"], encoded.as_str());
        assert_eq!(
            object["metadata"]["annotations"],
            json!({names::ANNOTATION_STREAM: "hello", names::ANNOTATION_TAG: "Copied"})
        );
        let plan = judge_stream_tag(&object, None, "ns", &ValidationContext::default()).unwrap();
        assert_eq!(
            (plan.stream.as_str(), plan.tag.as_str()),
            ("hello", "Copied")
        );
        let Edit::Create(Some(tag)) = plan.edit else {
            panic!("{:?}", plan.edit)
        };
        assert_eq!(tag.annotations, None, "bookkeeping is not the tag's");

        let mut plain = json!({"metadata": {"name": "hello.v1"}});
        assert_eq!(take_openshift_name(&mut plain, ISTAG).unwrap(), None);
        assert_eq!(plain, json!({"metadata": {"name": "hello.v1"}}));
        for bad in ["hello@sha256:abc", "a:b:c", ":t", "s:"] {
            let mut object = json!({"metadata": {"name": bad}});
            let denial = take_openshift_name(&mut object, ITAG).unwrap_err();
            assert_eq!(denial.code, 400, "{bad}");
            assert_eq!(
                denial.message, "ImageTags must be retrieved with <name>:<tag>",
                "{bad}"
            );
        }
    }

    /// The answer oc takes as "use the ImageStream" (kerrors.IsMethodNotSupported).
    #[test]
    fn an_existing_tag_by_its_openshift_name_is_method_not_allowed() {
        let denial = exists_by_openshift_name("imagestreamtags", "hello:v2", "hello.v2");
        assert_eq!((denial.code, denial.reason), (405, "MethodNotAllowed"));
        assert!(
            denial.message.contains("\"hello:v2\" already exists"),
            "{}",
            denial.message
        );
        assert!(
            denial.message.contains("imagestreamtags/hello.v2"),
            "{}",
            denial.message
        );
    }

    #[test]
    fn the_stored_object_is_named_as_the_view() {
        let request = json!({"metadata": {"name": "hello:v1", "namespace": "ns"}});
        let view = json!({"metadata": {"name": "hello.v1", "annotations": {
            names::ANNOTATION_OPENSHIFT_NAME: "hello:v1"}}, "tag": {"name": "v1"}});
        let out = merged(&request, view, false);
        assert_eq!(out["metadata"]["name"], "hello.v1");
        assert_eq!(out["metadata"]["namespace"], "ns");
        assert_eq!(
            out["metadata"]["annotations"][names::ANNOTATION_OPENSHIFT_NAME],
            "hello:v1"
        );
    }

    #[test]
    fn the_stored_object_keeps_request_metadata_and_client_annotations() {
        let request = json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStreamTag",
            "metadata": {"name": "ruby.latest", "namespace": "ns", "resourceVersion": "7",
                "labels": {"mine": "x"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "color": "blue"}},
            "tag": {"name": "latest"},
            "image": {"metadata": {"name": "fake"}},
        });
        let view = json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStreamTag",
            "metadata": {"name": "ruby.latest", "labels": {"app": "ruby"},
                "annotations": {"color": "blue", views::ANNOTATION_VIEW_HASH: "h"}},
            "tag": {"name": "latest", "generation": 3},
            "generation": 0, "lookupPolicy": {"local": false},
        });
        let out = merged(&request, view, false);
        assert_eq!(out["metadata"]["resourceVersion"], "7");
        assert_eq!(out["metadata"]["namespace"], "ns");
        assert_eq!(out["metadata"]["labels"], json!({"app": "ruby"}));
        assert_eq!(
            out["metadata"]["annotations"],
            json!({"color": "blue", views::ANNOTATION_VIEW_HASH: "h",
                "kubectl.kubernetes.io/last-applied-configuration": "{}"})
        );
        assert_eq!(out["tag"]["generation"], 3);
        assert!(out.get("image").is_none(), "the user's image is not kept");
    }
}
