//! ImageStreamImports answered (semantics 5.2 to 5.6, design.md section 2), and the
//! controller that answers the requests nobody answered at creation.
//!
//! [`answer`] is the one implementation of a request's answer, used by the admission webhook
//! (which answers the create itself, as upstream: `crate::admission::image_stream_import`) and
//! by this controller. The request's images and repository are imported; with `import: true`
//! the results are applied to the stream (created when absent): the Images (children before
//! lists), then the spec, then the status, each write with the resourceVersion it read, so a
//! concurrent change is a conflict that re-reads, never a lost update. The status is decided
//! from the stream as the spec write stored it (E = the stored S, see
//! [`crate::stream::image_stream_import`]), and the imagestream controller leaves the stream alone
//! between the two writes ([`super::InFlight`]). Decisions are
//! [`crate::stream::image_stream_import`]'s; this module does the IO.
//!
//! Registry failures are per-image statuses, as upstream. A stream write the apiserver
//! refuses for good (validation, a LimitRange: upstream's error answer) leaves the stream's
//! spec as it was, records a LimitRange refusal on the tags the import would have added, and
//! answers the request without `status.import`, with a Warning Event saying why. Tag
//! transitions are Events on the stream.
//!
//! The controller answers requests stored without an answer (only possible when no admission
//! webhook is registered for them) and removes every request `requestTimeToLive` after its
//! creation. Other apiserver failures are Warning Events on the request and retried until it
//! expires.

use std::sync::Arc;
use std::time::Duration;

use crate::events::{Event, EventType, Recorder};
use futures::{StreamExt, future};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};

use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::api::image::Image;
use crate::api::image_stream::ImageStream;
use crate::api::image_stream_import::{ImageStreamImport, ImageStreamImportStatus};
use crate::credentials::Keyring;
use crate::import::engine::KnownImages;
use crate::stream::image_stream_import;
use crate::stream::image_stream_mapping::remaining;
use crate::stream::limits::{self, Limits, REASON_LIMIT_EXCEEDED};
use crate::stream::sync::{TagChange, guard_size};

use super::write::{Writer, tag_event, truncate};
use super::{Context, Run, Settings};
use crate::cache::scoped;

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
            publish(&ctx.recorder, &isi, EventType::Warning, "Expired", note).await;
        }
        remove(&ctx, &isi).await?;
        return Ok(Action::await_change());
    }
    if isi.status.is_none() {
        let answer = answer_from_caches(&isi, &ctx).await?;
        write_request_status(&ctx, &isi, answer.status).await?;
        if let Some(refusal) = answer.refused {
            publish_refusal(&ctx.recorder, &isi, &refusal).await;
        }
    }
    match left() {
        Some(left) => Ok(Action::requeue(left)),
        None => Ok(Action::requeue(Duration::ZERO)),
    }
}

/// Answers a stored request from the controller's caches (pull secrets, Images, LimitRanges).
async fn answer_from_caches(isi: &ImageStreamImport, ctx: &Context) -> Result<Answer, Error> {
    let namespace = isi.namespace().unwrap_or_default();
    let settings = ctx.settings();
    let found = Api::<ImageStream>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(&isi.name_any())
        .await
        .map_err(Error::ReadStream)?;
    let existing = |digest: &str| {
        ctx.caches
            .image(&crate::names::image(digest))
            .map(|i| (*i).clone())
    };
    let importer = ctx.imports.importer();
    let host = Host {
        client: &ctx.client,
        settings: &settings,
        run: Run {
            importer: &importer,
            settings: &settings.import,
            metrics: &ctx.metrics,
            deadline: None,
        },
        recorder: &ctx.recorder,
        keyring: ctx.keyring(&namespace),
        limits: ctx.limits(&namespace),
        existing: &existing,
    };
    let mut isi = isi.clone();
    image_stream_import::default_targets(&mut isi);
    let _applying = ctx.applying(&namespace, &isi.name_any());
    answer(&host, &ctx.known_images(), &isi, found, false).await
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
        publish(&ctx.recorder, &isi, EventType::Warning, reason, note).await;
    });
    Action::requeue(Duration::from_secs(5))
}

/// The request's answer: its status, and why the stream was not changed when a write was
/// refused for good.
#[derive(Debug)]
pub struct Answer {
    pub status: ImageStreamImportStatus,
    pub refused: Option<Refusal>,
}

/// A stream write the apiserver refused: sending it again would be refused again.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    Refused(String),
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
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

/// What answering a request needs besides the request: the IO handles, and the inputs of its
/// namespace. The controller fills it from its caches, the admission webhook from reads of
/// its own; the rules are the same.
pub struct Host<'a> {
    pub client: &'a Client,
    pub settings: &'a Settings,
    /// The importer, with its deadline.
    pub run: Run<'a>,
    pub recorder: &'a Recorder,
    /// The namespace's pull secrets.
    pub keyring: Keyring,
    /// The namespace's LimitRange limits on streams.
    pub limits: Limits,
    /// Images that exist, for answer entries the import did not fetch.
    pub existing: &'a (dyn Fn(&str) -> Option<Image> + Sync),
}

impl Host<'_> {
    /// The shared write step, as the imports write.
    fn writer(&self) -> Writer<'_> {
        Writer::new(self.client, self.run.metrics)
    }
}

/// Answers `isi` (defaults applied): imports what it asks for and, with `import: true` and
/// not `dry_run`, applies it to `found` (the stream as read; `None` when it does not exist).
/// `known` are the Images the import need not fetch again; a request that asks for manifests
/// fetches everything, so images already in the cluster come with theirs. A dry run writes
/// nothing and answers without `status.import`.
pub async fn answer<K: KnownImages + Sync>(
    host: &Host<'_>,
    known: &K,
    isi: &ImageStreamImport,
    found: Option<ImageStream>,
    dry_run: bool,
) -> Result<Answer, Error> {
    let namespace = isi.namespace().unwrap_or_default();
    let batch = image_stream_import::batch(isi, found.as_ref(), host.settings.default_mode);
    let now = Time(jiff::Timestamp::now());
    let result = if image_stream_import::wants_manifests(isi) {
        let nothing = std::collections::HashMap::<String, bool>::new();
        host.run
            .import(&batch, &host.keyring, &nothing, now.0)
            .await
    } else {
        host.run.import(&batch, &host.keyring, known, now.0).await
    };
    let mut status = image_stream_import::import_status(isi, &result, host.existing);
    let mut refused = None;
    if isi.spec.import && !dry_run {
        let applied = image_stream_import::applied(isi, &result);
        for image in image_stream_import::images_to_create(&result, &applied) {
            host.writer()
                .image(image)
                .await
                .map_err(Error::CreateImage)?;
        }
        let streams: Api<ImageStream> = Api::namespaced(host.client.clone(), &namespace);
        let target = Target {
            streams: &streams,
            name: isi.name_any(),
        };
        match apply(host, &target, found, &applied, now).await? {
            Applied::Stream(stream) => status.import = Some(*stream),
            Applied::Refused(r) => refused = Some(r),
        }
    }
    if image_stream_import::fit_answer(&mut status, image_stream_import::MAX_ANSWER_BYTES) {
        tracing::info!(%namespace, name = %isi.name_any(), "answer trimmed to fit the request");
    }
    Ok(Answer { status, refused })
}

/// The stream an import is applied to (it has the request's name).
struct Target<'a> {
    streams: &'a Api<ImageStream>,
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
    host: &Host<'_>,
    target: &Target<'_>,
    mut found: Option<ImageStream>,
    applied: &[image_stream_import::Applied],
    now: Time,
) -> Result<Applied, Error> {
    let settings = host.settings;
    let (streams, name) = (target.streams, target.name.as_str());
    let mut writes = 0;
    loop {
        writes += 1;
        let spec = image_stream_import::next_spec(found.as_ref(), applied);
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
                        record_limit(host, current, applied, message, now).await?;
                    }
                    return Ok(Applied::Refused(refused));
                }
                None => return Err(Error::WriteStream(e)),
            },
        };
        let (status, changes) = image_stream_import::next_status(
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
        let (status, limited) = limits::guard_status(&stored, status, &host.limits, now.clone());
        match host.writer().status(&stored, status.clone()).await {
            Ok(()) => {
                if !limited {
                    imported(host.recorder, &stored, name, &changes).await;
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
    host: &Host<'_>,
    stream: &ImageStream,
    applied: &[image_stream_import::Applied],
    message: &str,
    now: Time,
) -> Result<(), Error> {
    let Some(status) = image_stream_import::limit_refused_status(stream, applied, message, now)
    else {
        return Ok(());
    };
    match host.writer().status(stream, status).await {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_conflict() => Ok(()),
        Err(e) => Err(Error::WriteStreamStatus(e)),
    }
}

/// The request's status, written once: the resourceVersion read makes a second writer a
/// conflict. (ImageStreamImport has no status subresource: the answer is stored with the
/// create when the webhook gives it.)
async fn write_request_status(
    ctx: &Context,
    isi: &ImageStreamImport,
    status: ImageStreamImportStatus,
) -> Result<(), Error> {
    let api: Api<ImageStreamImport> =
        Api::namespaced(ctx.client.clone(), &isi.namespace().unwrap_or_default());
    let mut next = isi.clone();
    next.status = Some(status);
    api.replace(&isi.name_any(), &PostParams::default(), &next)
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
    recorder: &Recorder,
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
    if let Err(e) = recorder.publish(&event, &isi.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing an event failed");
    }
}

/// The Warning Event on the request saying why its import was not applied.
pub async fn publish_refusal(recorder: &Recorder, isi: &ImageStreamImport, refusal: &Refusal) {
    let note = format!("the image stream was not changed: {refusal}");
    publish(recorder, isi, EventType::Warning, refusal.reason(), note).await;
}

/// Events on the stream for its tags' transitions, as the imagestream controller's, naming
/// the request.
async fn imported(recorder: &Recorder, stream: &ImageStream, request: &str, changes: &[TagChange]) {
    let reference = stream.object_ref(&());
    let by = format!("ImageStreamImport {request}");
    for change in changes {
        let event = tag_event(stream, change, Some(&by));
        if let Err(e) = recorder.publish(&event, &reference).await {
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
