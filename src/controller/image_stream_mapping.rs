//! The ImageStreamMapping controller (semantics 7.1, design.md section 2): a mapping is a
//! request; it is applied (the Image created when absent, the TagEvent added to the stream
//! with its tracking tags in one status write with resourceVersion) and then removed.
//! Decisions are [`crate::stream::image_stream_mapping`]'s; this module does the IO.
//!
//! Upstream answers the create request with an error instead; here failures are Warning
//! Events on the mapping, and what becomes of it depends on whether waiting can help:
//! - Its stream does not exist (`NotFound`, the stream as the Event's related object): the
//!   mapping stays and is applied as soon as the stream appears, so a mapping applied just
//!   before its stream (one `kubectl apply` of a directory) works. After `requestTimeToLive`
//!   (ImageImportConfig, default 1h) from its creation it is removed (`Expired`).
//! - It is invalid, the tag moved while it was written (upstream's 409), or the stream is too
//!   large: removed. Waiting cannot fix these, and a mapping holds its name (per stream, tag
//!   and image), so keeping it would refuse the same mapping made again.
//!
//! A mapping is created with its stream's name; the admission webhook stores it under a name
//! of its own with the stream's in an annotation ([`image_stream_mapping::stream_name`]), so mappings of
//! two tags of one stream made at the same time both wait and both apply.
//! - API errors: retried (a conflicting status write at once on a re-read stream, the rest
//!   after a pause), each reported.

use std::sync::Arc;
use std::time::Duration;

use crate::events::{Event, EventType};
use futures::{StreamExt, future};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::api::image::Image;
use crate::api::image_stream::ImageStream;
use crate::api::image_stream_mapping::ImageStreamMapping;
use crate::stream::image_stream_mapping::{self, Limits, Plan, Refusal};
use crate::stream::limits::images_exceeded;
use crate::stream::sync::TagChange;

use super::Context;
use super::write::truncate;
use crate::cache::scoped;

/// Status writes per mapping when each conflicts (upstream retries with back-off too).
const MAX_WRITES: u32 = 5;

/// Why a mapping failed; [`Error::reason`] is the Event reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("reading the image stream: {0}")]
    ReadStream(#[source] kube::Error),
    #[error("creating the Image: {0}")]
    CreateImage(#[source] kube::Error),
    #[error("reading the existing Image: {0}")]
    ReadImage(#[source] kube::Error),
    #[error("writing the image stream status: {0}")]
    WriteStatus(#[source] kube::Error),
    #[error("removing the applied mapping: {0}")]
    Remove(#[source] kube::Error),
    #[error("{0}")]
    LimitExceeded(String),
}

/// What becomes of a mapping after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Disposition {
    /// Kept until its stream appears or its time to live passes.
    Wait,
    /// Removed: it cannot succeed as it is.
    Remove,
    /// Tried again after a pause.
    Retry,
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Refused(r) => r.reason(),
            Error::ReadStream(_) => "StreamReadFailed",
            Error::CreateImage(_) => "ImageCreateFailed",
            Error::ReadImage(_) => "ImageReadFailed",
            Error::WriteStatus(_) => "StatusWriteFailed",
            Error::Remove(_) => "RemoveFailed",
            Error::LimitExceeded(_) => "LimitExceeded",
        }
    }

    fn disposition(&self) -> Disposition {
        match self {
            Error::Refused(Refusal::StreamNotFound { .. }) => Disposition::Wait,
            Error::Refused(_) | Error::LimitExceeded(_) => Disposition::Remove,
            // the apiserver refuses what it was given: retrying sends the same
            Error::CreateImage(kube::Error::Api(s)) | Error::WriteStatus(kube::Error::Api(s))
                if s.is_invalid() || s.code == 400 =>
            {
                Disposition::Remove
            }
            _ => Disposition::Retry,
        }
    }
}

/// Runs the controller over the mappings in scope until `shutdown`.
pub(super) async fn run(
    client: Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let controller = Controller::new(
        scoped::<ImageStreamMapping>(&client, namespace),
        watcher::Config::default(),
    );
    let mappings = controller.store();
    // a mapping waiting for its stream: the stream cache's changes bring it back
    let streams = ctx.caches.streams.follow().filter_map(move |change| {
        future::ready(match change {
            watcher::Event::Apply(stream)
            | watcher::Event::InitApply(stream)
            | watcher::Event::Delete(stream) => {
                Some(futures::stream::iter(waiting_mapping(&mappings, &stream)))
            }
            watcher::Event::Init | watcher::Event::InitDone => None,
        })
    });
    controller
        .reconcile_on(streams.flatten())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "mapping reconcile");
            }
            future::ready(())
        })
        .await;
}

/// A stream's mappings: they may be waiting for the stream.
fn waiting_mapping(
    mappings: &Store<ImageStreamMapping>,
    stream: &ImageStream,
) -> Vec<ObjectRef<ImageStreamMapping>> {
    let (name, namespace) = (stream.name_any(), stream.namespace());
    mappings
        .state()
        .iter()
        .filter(|m| m.namespace() == namespace && image_stream_mapping::stream_name(m) == name)
        .map(|m| ObjectRef::from_obj(m.as_ref()))
        .collect()
}

pub async fn reconcile(
    mapping: Arc<ImageStreamMapping>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let _in_flight = ctx.metrics.reconciling("imagestreammapping");
    if mapping.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let error = match apply(&mapping, &ctx).await {
        Ok(()) => {
            remove(&ctx, &mapping).await?;
            return Ok(Action::await_change());
        }
        Err(error) => error,
    };
    match error.disposition() {
        Disposition::Wait => {
            let ttl = ctx.settings().request_time_to_live;
            let created = mapping.meta().creation_timestamp.as_ref();
            match image_stream_mapping::remaining(created, ttl, jiff::Timestamp::now()) {
                Some(left) => {
                    warn(&ctx, &mapping, &error).await;
                    Ok(Action::requeue(left))
                }
                None => {
                    let note = format!(
                        "removed after {}s without being applied: {error}",
                        ttl.as_secs()
                    );
                    publish(&ctx, &mapping, "Expired", note, None).await;
                    remove(&ctx, &mapping).await?;
                    Ok(Action::await_change())
                }
            }
        }
        Disposition::Remove => {
            warn(&ctx, &mapping, &error).await;
            remove(&ctx, &mapping).await?;
            Ok(Action::await_change())
        }
        Disposition::Retry => {
            warn(&ctx, &mapping, &error).await;
            Err(error)
        }
    }
}

fn error_policy(_mapping: Arc<ImageStreamMapping>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(reason = error.reason(), %error, "mapping failed; retrying");
    ctx.metrics
        .reconcile_error("imagestreammapping", error.reason());
    match error {
        // the mapping changed since it was read: the watch brings the new one
        Error::Remove(kube::Error::Api(s)) if s.is_conflict() => Action::await_change(),
        _ => Action::requeue(Duration::from_secs(5)),
    }
}

/// Applies the mapping to its stream (semantics 7.1 steps 2 to 6).
async fn apply(mapping: &ImageStreamMapping, ctx: &Context) -> Result<(), Error> {
    let namespace = mapping.namespace().unwrap_or_default();
    let settings = ctx.settings();
    let found = find_stream(ctx, &namespace, &image_stream_mapping::stream_name(mapping)).await?;
    let plan = image_stream_mapping::plan(
        mapping,
        found.as_ref(),
        settings.repositories.internal.as_deref(),
    )?;
    let existing = if ctx
        .writer()
        .image(&plan.image)
        .await
        .map_err(Error::CreateImage)?
    {
        None
    } else {
        existing_image(ctx, &plan).await?
    };
    let limits = Limits {
        max_tag_history: settings.max_tag_history,
        max_image_stream_bytes: settings.max_image_stream_bytes,
    };
    let mut stream = plan.stream.clone();
    let mut writes = 0;
    loop {
        let now = Time(jiff::Timestamp::now());
        let event = image_stream_mapping::tag_event(
            &plan,
            existing.as_ref(),
            &stream,
            &settings.repositories,
            now.clone(),
        );
        let next = image_stream_mapping::next_status(
            &stream,
            &plan.tag,
            event,
            &settings.repositories,
            limits,
            now,
        );
        if let Some(status) = next.status {
            // a LimitRange refuses the mapping, as upstream's status write would
            let limits = ctx.limits(&namespace);
            if let Some(message) = images_exceeded(&limits, stream.status.as_ref(), &status) {
                return Err(Error::LimitExceeded(message));
            }
            writes += 1;
            match ctx.writer().status(&stream, status).await {
                Ok(()) => {}
                Err(kube::Error::Api(s)) if s.is_conflict() && writes < MAX_WRITES => {
                    tokio::time::sleep(Duration::from_millis(20 << writes)).await;
                    stream = read_stream(ctx, &namespace, &plan).await?;
                    continue;
                }
                Err(e) => return Err(Error::WriteStatus(e)),
            }
        }
        if next.too_large {
            return Err(Refusal::TooLarge {
                stream: stream.name_any(),
                tag: plan.tag.clone(),
            }
            .into());
        }
        mapped(ctx, &stream, &next.changes).await;
        return Ok(());
    }
}

/// The stream as stored now, not as cached: the conflict rule compares the tag with what it
/// was when the mapping was applied, and a stale copy would make a refusal of every import
/// the cache has not seen yet.
async fn find_stream(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<ImageStream>, Error> {
    Api::<ImageStream>::namespaced(ctx.client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(Error::ReadStream)
}

/// The stream re-read after a conflict, if the mapping may still be applied to it.
async fn read_stream(
    ctx: &Context,
    namespace: &str,
    plan: &Plan<'_>,
) -> Result<ImageStream, Error> {
    let name = plan.stream.name_any();
    let fresh = find_stream(ctx, namespace, &name)
        .await?
        .ok_or_else(|| Refusal::StreamNotFound { name: name.clone() })?;
    tracing::debug!(%namespace, %name, tag = %plan.tag, "status conflict; checking the tag");
    image_stream_mapping::check_conflict(plan, &fresh)?;
    Ok(fresh)
}

/// The Image that was there before the mapping (its annotations decide the reference).
async fn existing_image(ctx: &Context, plan: &Plan<'_>) -> Result<Option<Image>, Error> {
    let name = plan.image.name_any();
    if let Some(image) = ctx.caches.image(&name) {
        return Ok(Some((*image).clone()));
    }
    Api::<Image>::all(ctx.client.clone())
        .get_opt(&name)
        .await
        .map_err(Error::ReadImage)
}

/// Deletes the mapping as it was read: a mapping changed meanwhile is a new request.
async fn remove(ctx: &Context, mapping: &ImageStreamMapping) -> Result<(), Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: mapping.uid(),
            resource_version: mapping.resource_version(),
        }),
        ..DeleteParams::default()
    };
    let api: Api<ImageStreamMapping> =
        Api::namespaced(ctx.client.clone(), &mapping.namespace().unwrap_or_default());
    match api.delete(&mapping.name_any(), &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(Error::Remove(e)),
    }
}

/// A Warning Event on the mapping; a missing stream is named as the related object.
async fn warn(ctx: &Context, mapping: &ImageStreamMapping, error: &Error) {
    let related = match error {
        Error::Refused(Refusal::StreamNotFound { name }) => Some(ObjectReference {
            api_version: Some("image.openshift.io/v1".into()),
            kind: Some("ImageStream".into()),
            namespace: mapping.namespace(),
            name: Some(name.clone()),
            ..ObjectReference::default()
        }),
        _ => None,
    };
    publish(ctx, mapping, error.reason(), error.to_string(), related).await;
}

async fn publish(
    ctx: &Context,
    mapping: &ImageStreamMapping,
    reason: &str,
    note: String,
    secondary: Option<ObjectReference>,
) {
    let event = Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(truncate(note)),
        action: "Map".into(),
        secondary,
    };
    if let Err(e) = ctx.recorder.publish(&event, &mapping.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing an event failed");
    }
}

/// Normal Events on the stream for the tags that moved (the mapping itself is removed).
async fn mapped(ctx: &Context, stream: &ImageStream, changes: &[TagChange]) {
    for change in changes {
        let TagChange::Updated { tag, image } = change else {
            continue;
        };
        let event = Event {
            type_: EventType::Normal,
            reason: "Mapped".into(),
            note: Some(format!(
                "tag {tag} now points at {image} (ImageStreamMapping)"
            )),
            action: "Map".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &stream.object_ref(&())).await {
            tracing::warn!(error = %e, "publishing an event failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status::failure("x", reason).with_code(code)))
    }

    // 10.5 case 78 (TestCreateRetryUnrecoverable): a failing status write is an error, and
    // transient ones are retried; refusals either wait for the stream or end the request.
    #[test]
    fn dispositions() {
        let unavailable = Error::WriteStatus(api(503, "ServiceUnavailable"));
        assert_eq!(unavailable.disposition(), Disposition::Retry);
        assert_eq!(unavailable.reason(), "StatusWriteFailed");
        assert_eq!(
            Error::CreateImage(api(403, "Forbidden")).disposition(),
            Disposition::Retry
        );
        assert_eq!(
            Error::CreateImage(api(422, "Invalid")).disposition(),
            Disposition::Remove
        );
        let missing: Error = Refusal::StreamNotFound {
            name: "somerepo".into(),
        }
        .into();
        assert_eq!(missing.disposition(), Disposition::Wait);
        assert_eq!(missing.reason(), "NotFound");
        let conflict: Error = Refusal::Conflict {
            stream: "s".into(),
            tag: "t".into(),
            image: "i".into(),
        }
        .into();
        assert_eq!(conflict.disposition(), Disposition::Remove);
        assert_eq!(conflict.reason(), "Conflict");
    }
}
