//! The ImageStreamImport controller (semantics 5.2 to 5.6, design.md section 2): a request
//! is processed once. Its images and repository are imported and its status written once
//! (with the resourceVersion read, so a second writer conflicts); with `import: true` the
//! results are applied to the stream (created when absent) first: the Images (children
//! before lists), then the spec, then the status, each write with the resourceVersion it
//! read, so a concurrent change is a conflict that re-reads, never a lost update. The
//! status is decided from the stream as the spec write stored it (E = the stored S, see
//! [`crate::stream::import_request`]), and the imagestream controller leaves the stream
//! alone between the two writes ([`Context::applying`]). The request is removed
//! `requestTimeToLive` after its creation, answered or not. Decisions are
//! [`crate::stream::import_request`]'s; this module does the IO.
//!
//! Upstream answers the create request itself; here the answer is the status the request
//! gets moments later, and tag transitions are also Events on the stream. Registry failures
//! are per-image statuses, as upstream. A stream write the apiserver refuses for good
//! (validation, a LimitRange: upstream's error answer) leaves the stream's spec as it was,
//! records a LimitRange refusal on the tags the import would have added, and answers the
//! request without `status.import`, with a Warning Event saying why. Other apiserver
//! failures are Warning Events on the request and retried until the request expires.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, future};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::api::image_stream::ImageStream;
use crate::api::image_stream_import::{ImageStreamImport, ImageStreamImportStatus};
use crate::stream::import_request;
use crate::stream::limits::REASON_LIMIT_EXCEEDED;
use crate::stream::mapping::remaining;
use crate::stream::sync::{TagChange, guard_size};

use super::image_stream::{create_image, guard_limits, truncate, write_status};
use super::{Context, scoped};

/// Stream writes per request when each conflicts.
const MAX_WRITES: u32 = 5;

/// Why a request could not be processed; [`Error::reason`] is the Event reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the image stream: {0}")]
    ReadStream(#[source] kube::Error),
    #[error("creating an Image: {0}")]
    CreateImage(#[source] kube::Error),
    #[error("writing the image stream: {0}")]
    WriteStream(#[source] kube::Error),
    #[error("writing the image stream status: {0}")]
    WriteStreamStatus(#[source] kube::Error),
    #[error("writing the request's status: {0}")]
    WriteStatus(#[source] kube::Error),
    #[error("removing the expired request: {0}")]
    Remove(#[source] kube::Error),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::ReadStream(_) => "StreamReadFailed",
            Error::CreateImage(_) => "ImageCreateFailed",
            Error::WriteStream(_) => "StreamWriteFailed",
            Error::WriteStreamStatus(_) => "StreamStatusWriteFailed",
            Error::WriteStatus(_) => "StatusWriteFailed",
            Error::Remove(_) => "RemoveFailed",
        }
    }
}

/// Runs the controller over the requests in scope until `shutdown`.
pub(super) async fn run(
    client: Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    Controller::new(
        scoped::<ImageStreamImport>(&client, namespace),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, ctx)
    .for_each(|result| {
        if let Err(e) = result {
            tracing::debug!(error = %e, "import request reconcile");
        }
        future::ready(())
    })
    .await;
}

pub async fn reconcile(isi: Arc<ImageStreamImport>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _in_flight = ctx.metrics.reconciling("imagestreamimport");
    if isi.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ttl = ctx.settings().request_time_to_live;
    let left = || {
        remaining(
            isi.meta().creation_timestamp.as_ref(),
            ttl,
            jiff::Timestamp::now(),
        )
    };
    // expiry first: a request that kept failing is not retried forever
    if left().is_none() {
        if isi.status.is_none() {
            let note = format!("removed after {}s without an answer", ttl.as_secs());
            publish(&ctx, &isi, EventType::Warning, "Expired", note).await;
        }
        remove(&ctx, &isi).await?;
        return Ok(Action::await_change());
    }
    if isi.status.is_none() {
        let answer = process(&isi, &ctx).await?;
        write_request_status(&ctx, &isi, answer.status).await?;
        if let Some(refusal) = answer.refused {
            let note = format!("the image stream was not changed: {refusal}");
            publish(&ctx, &isi, EventType::Warning, refusal.reason(), note).await;
        }
    }
    match left() {
        Some(left) => Ok(Action::requeue(left)),
        None => Ok(Action::requeue(Duration::ZERO)),
    }
}

fn error_policy(isi: Arc<ImageStreamImport>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(reason = error.reason(), %error, "import request failed; retrying");
    ctx.metrics
        .reconcile_error("imagestreamimport", error.reason());
    // the request changed since it was read (its status was written): the watch brings it
    if let Error::WriteStatus(kube::Error::Api(s)) | Error::Remove(kube::Error::Api(s)) = error
        && s.is_conflict()
    {
        return Action::await_change();
    }
    let note = error.to_string();
    let reason = error.reason();
    tokio::spawn(async move {
        publish(&ctx, &isi, EventType::Warning, reason, note).await;
    });
    Action::requeue(Duration::from_secs(5))
}

/// The request's answer: its status, and why the stream was not changed when a write was
/// refused for good.
struct Answer {
    status: ImageStreamImportStatus,
    refused: Option<Refusal>,
}

/// A stream write the apiserver refused: sending it again would be refused again.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    Refused(String),
}

impl Refusal {
    fn reason(&self) -> &'static str {
        match self {
            Refusal::LimitExceeded(_) => REASON_LIMIT_EXCEEDED,
            Refusal::Refused(_) => "StreamWriteRefused",
        }
    }
}

/// Whether `error` refuses the write for good: validation (422) or a bad request (400),
/// except while the webhook is still loading the LimitRanges.
fn refusal(error: &kube::Error) -> Option<Refusal> {
    let kube::Error::Api(s) = error else {
        return None;
    };
    if !(s.is_invalid() || s.code == 400) || s.message.contains(LIMITS_LOADING) {
        return None;
    }
    Some(if s.message.contains(LIMIT_EXCEEDED) {
        Refusal::LimitExceeded(s.message.clone())
    } else {
        Refusal::Refused(s.message.clone())
    })
}

/// Words of the webhook's LimitRange refusals (semantics 7.8).
const LIMIT_EXCEEDED: &str = "exceeds the maximum limit";
const LIMITS_LOADING: &str = "still loading limit information";

/// Imports what the request asks for and, with `import: true`, applies it to the stream.
async fn process(isi: &ImageStreamImport, ctx: &Context) -> Result<Answer, Error> {
    let namespace = isi.namespace().unwrap_or_default();
    let settings = ctx.settings();
    let streams: Api<ImageStream> = Api::namespaced(ctx.client.clone(), &namespace);
    let found = streams
        .get_opt(&isi.name_any())
        .await
        .map_err(Error::ReadStream)?;
    let batch = import_request::batch(isi, found.as_ref(), settings.default_mode);
    let keyring = ctx.keyring(&namespace);
    let now = Time(jiff::Timestamp::now());
    let result = ctx.import(&batch, &keyring, now.0).await;
    let mut status = import_request::import_status(isi, &result, &|digest: &str| {
        ctx.images
            .get(&ObjectRef::new(&crate::names::image(digest)))
            .map(|i| (*i).clone())
    });
    let mut refused = None;
    if isi.spec.import {
        let applied = import_request::applied(isi, &result);
        for image in import_request::images_to_create(&result, &applied) {
            create_image(ctx, image).await.map_err(Error::CreateImage)?;
        }
        let target = Target {
            streams: &streams,
            namespace: &namespace,
            name: isi.name_any(),
        };
        match apply(ctx, &target, found, &applied, now).await? {
            Applied::Stream(stream) => status.import = Some(*stream),
            Applied::Refused(r) => refused = Some(r),
        }
    }
    Ok(Answer { status, refused })
}

/// The stream an import is applied to (it has the request's name).
struct Target<'a> {
    streams: &'a Api<ImageStream>,
    namespace: &'a str,
    name: String,
}

/// What became of an applied import.
enum Applied {
    /// The stream as written (or as it was, when nothing changed).
    Stream(Box<ImageStream>),
    /// The apiserver refused the spec write; a LimitRange refusal was recorded on the tags
    /// the import would have added (semantics 4).
    Refused(Refusal),
}

/// Writes the spec, then the status; a conflict re-reads the stream and decides again.
async fn apply(
    ctx: &Context,
    target: &Target<'_>,
    mut found: Option<ImageStream>,
    applied: &[import_request::Applied],
    now: Time,
) -> Result<Applied, Error> {
    let settings = ctx.settings();
    let (streams, name) = (target.streams, target.name.as_str());
    // the imagestream controller leaves the stream alone between the two writes
    let _applying = ctx.applying(target.namespace, name);
    let mut writes = 0;
    loop {
        writes += 1;
        let spec = import_request::next_spec(found.as_ref(), applied);
        let written = match &found {
            None => {
                let stream = ImageStream::new(name, spec);
                streams.create(&PostParams::default(), &stream).await
            }
            Some(current) if current.spec == spec => Ok(current.clone()),
            Some(current) => {
                let mut next = current.clone();
                next.spec = spec;
                next.status = None;
                streams.replace(name, &PostParams::default(), &next).await
            }
        };
        let stored = match written {
            Ok(stored) => stored,
            Err(kube::Error::Api(s))
                if (s.is_conflict() || s.is_already_exists()) && writes < MAX_WRITES =>
            {
                found = streams.get_opt(name).await.map_err(Error::ReadStream)?;
                continue;
            }
            Err(e) => match refusal(&e) {
                Some(refused) => {
                    if let (Refusal::LimitExceeded(message), Some(current)) = (&refused, &found) {
                        record_limit(ctx, current, applied, message, now).await?;
                    }
                    return Ok(Applied::Refused(refused));
                }
                None => return Err(Error::WriteStream(e)),
            },
        };
        let (status, changes) = import_request::next_status(
            &stored,
            applied,
            &settings.repositories,
            settings.max_tag_history,
            now.clone(),
        );
        let Some(status) = status else {
            return Ok(Applied::Stream(Box::new(stored)));
        };
        let (status, _) = guard_size(
            &stored,
            status,
            settings.max_image_stream_bytes,
            now.clone(),
        );
        let (status, limited) = guard_limits(ctx, &stored, status, now.clone());
        match write_status(ctx, &stored, status.clone()).await {
            Ok(()) => {
                if !limited {
                    imported(ctx, &stored, name, &changes).await;
                }
                let mut result = stored;
                result.status = Some(status);
                return Ok(Applied::Stream(Box::new(result)));
            }
            Err(kube::Error::Api(s)) if s.is_conflict() && writes < MAX_WRITES => {
                found = streams.get_opt(name).await.map_err(Error::ReadStream)?;
            }
            Err(e) => return Err(Error::WriteStreamStatus(e)),
        }
    }
}

/// Records a LimitRange refusal on the stream as it is (one try: a conflict means the
/// stream moved on, and the request is answered either way).
async fn record_limit(
    ctx: &Context,
    stream: &ImageStream,
    applied: &[import_request::Applied],
    message: &str,
    now: Time,
) -> Result<(), Error> {
    let Some(status) = import_request::limit_refused_status(stream, applied, message, now) else {
        return Ok(());
    };
    match write_status(ctx, stream, status).await {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_conflict() => Ok(()),
        Err(e) => Err(Error::WriteStreamStatus(e)),
    }
}

/// The request's status, written once: the resourceVersion read makes a second writer a
/// conflict.
async fn write_request_status(
    ctx: &Context,
    isi: &ImageStreamImport,
    status: ImageStreamImportStatus,
) -> Result<(), Error> {
    let api: Api<ImageStreamImport> =
        Api::namespaced(ctx.client.clone(), &isi.namespace().unwrap_or_default());
    let mut next = isi.clone();
    next.status = Some(status);
    api.replace_status(&isi.name_any(), &PostParams::default(), &next)
        .await
        .map(|_| ())
        .map_err(Error::WriteStatus)
}

/// Deletes the request as it was read.
async fn remove(ctx: &Context, isi: &ImageStreamImport) -> Result<(), Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: isi.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let api: Api<ImageStreamImport> =
        Api::namespaced(ctx.client.clone(), &isi.namespace().unwrap_or_default());
    match api.delete(&isi.name_any(), &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(Error::Remove(e)),
    }
}

async fn publish(
    ctx: &Context,
    isi: &ImageStreamImport,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(truncate(note)),
        action: "Import".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &isi.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing an event failed");
    }
}

/// Events on the stream for its tags' transitions, as the imagestream controller's, naming
/// the request.
async fn imported(ctx: &Context, stream: &ImageStream, request: &str, changes: &[TagChange]) {
    let reference = stream.object_ref(&());
    for change in changes {
        let (type_, reason, note) = match change {
            TagChange::Updated { tag, image } => (
                EventType::Normal,
                "Imported",
                format!("tag {tag} now points at {image} (ImageStreamImport {request})"),
            ),
            TagChange::Failed {
                tag,
                reason,
                message,
            } => (
                EventType::Warning,
                "ImportFailed",
                format!("tag {tag}: {reason}: {message} (ImageStreamImport {request})"),
            ),
            TagChange::Recovered { tag } => (
                EventType::Normal,
                "ImportRecovered",
                format!("tag {tag} imported again after a failure (ImageStreamImport {request})"),
            ),
        };
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(truncate(note)),
            action: "Import".into(),
            secondary: Some(super::tag_reference(stream, change.tag())),
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, "publishing an event failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status::failure(message, reason).with_code(code)))
    }

    // Refused for good: validation and bad requests; a LimitRange refusal is told apart; the
    // webhook still loading its limits, conflicts and outages are retried.
    #[test]
    fn refusals() {
        let limit = api(
            422,
            "Invalid",
            "admission webhook denied the request: imageStream: Forbidden: requested usage of \
             openshift.io/image-tags exceeds the maximum limit per openshift.io/ImageStream (2 > 1)",
        );
        assert!(matches!(refusal(&limit), Some(Refusal::LimitExceeded(_))));
        assert_eq!(refusal(&limit).unwrap().reason(), "LimitExceeded");
        let invalid = api(422, "Invalid", "spec.tags[0].from.name: Invalid value");
        assert_eq!(refusal(&invalid).unwrap().reason(), "StreamWriteRefused");
        assert!(refusal(&api(400, "BadRequest", "bad")).is_some());
        let loading = api(
            422,
            "Invalid",
            "imageStream: Forbidden: the server is still loading limit information",
        );
        assert!(refusal(&loading).is_none());
        assert!(refusal(&api(409, "Conflict", "x")).is_none());
        assert!(refusal(&api(503, "ServiceUnavailable", "x")).is_none());
        assert!(refusal(&api(403, "Forbidden", "rbac")).is_none());
    }
}
