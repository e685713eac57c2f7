//! The ImageStreamImport controller (semantics 5.2 to 5.6, design.md section 2): a request
//! is processed once. Its images and repository are imported, its status written once, and
//! with `import: true` the results applied to the stream (created when absent): Images
//! first (children before lists), then the spec, then the status, each write with the
//! resourceVersion it read, so a concurrent change is a conflict that re-reads, never a lost
//! update. The request is removed `requestTimeToLive` after its creation. Decisions are
//! [`crate::stream::import_request`]'s; this module does the IO.
//!
//! Upstream answers the create request itself; here the answer is the status the request
//! gets moments later. Registry failures are per-image statuses, as upstream; failures of the
//! apiserver are Warning Events on the request and retried.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, future};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::api::image_stream::ImageStream;
use crate::api::image_stream_import::{ImageStreamImport, ImageStreamImportStatus};
use crate::import::importer::BatchResult;
use crate::stream::import_request::{self, Applied};
use crate::stream::mapping::remaining;
use crate::stream::sync::guard_size;

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
    #[error("reading the namespace's LimitRanges: {0}")]
    ReadLimitRanges(#[source] kube::Error),
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
            Error::ReadLimitRanges(_) => "LimitRangeReadFailed",
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
    if isi.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if isi.status.is_none() {
        let status = process(&isi, &ctx).await?;
        write_request_status(&ctx, &isi, &status).await?;
    }
    let ttl = ctx.settings().request_time_to_live;
    match remaining(
        isi.meta().creation_timestamp.as_ref(),
        ttl,
        jiff::Timestamp::now(),
    ) {
        Some(left) => Ok(Action::requeue(left)),
        None => {
            remove(&ctx, &isi).await?;
            Ok(Action::await_change())
        }
    }
}

fn error_policy(isi: Arc<ImageStreamImport>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(reason = error.reason(), %error, "import request failed; retrying");
    let event = Event {
        type_: EventType::Warning,
        reason: error.reason().into(),
        note: Some(truncate(error.to_string())),
        action: "Import".into(),
        secondary: None,
    };
    tokio::spawn(async move {
        if let Err(e) = ctx.recorder.publish(&event, &isi.object_ref(&())).await {
            tracing::warn!(error = %e, "publishing an event failed");
        }
    });
    Action::requeue(Duration::from_secs(5))
}

/// Imports what the request asks for and, with `import: true`, applies it to the stream.
async fn process(isi: &ImageStreamImport, ctx: &Context) -> Result<ImageStreamImportStatus, Error> {
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
    let result = ctx
        .importer()
        .import(
            &batch,
            &keyring,
            &ctx.known_images(),
            &settings.import,
            now.0,
        )
        .await;
    for r in result.images.iter().chain(
        result
            .repository
            .iter()
            .flat_map(|r| r.images.iter().flatten()),
    ) {
        ctx.metrics
            .import(r.as_ref().map(|i| i.unchanged).map_err(|f| f.reason));
    }
    let mut status = import_request::import_status(isi, &result, &|digest: &str| {
        ctx.images
            .get(&ObjectRef::new(&crate::names::image(digest)))
            .map(|i| (*i).clone())
    });
    if isi.spec.import {
        create_images(ctx, &result).await?;
        let applied = import_request::applied(isi, &result);
        let stream = apply(
            ctx,
            &streams,
            &namespace,
            &isi.name_any(),
            found,
            &applied,
            now,
        )
        .await?;
        status.import = Some(stream);
    }
    Ok(status)
}

async fn create_images(ctx: &Context, result: &BatchResult) -> Result<(), Error> {
    for image in result.images_to_create() {
        create_image(ctx, image).await.map_err(Error::CreateImage)?;
    }
    Ok(())
}

/// Writes the spec, then the status; a conflict re-reads the stream and decides again.
async fn apply(
    ctx: &Context,
    streams: &Api<ImageStream>,
    namespace: &str,
    name: &str,
    mut found: Option<ImageStream>,
    applied: &[Applied],
    now: Time,
) -> Result<ImageStream, Error> {
    let settings = ctx.settings();
    let _applying = ctx.applying(namespace, name);
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
            Err(e) => return Err(Error::WriteStream(e)),
        };
        let (status, _) = import_request::next_status(
            &stored,
            applied,
            &settings.repositories,
            settings.max_tag_history,
            now.clone(),
        );
        let Some(status) = status else {
            return Ok(stored);
        };
        let (status, _) = guard_size(
            &stored,
            status,
            settings.max_image_stream_bytes,
            now.clone(),
        );
        let (status, _) = guard_limits(ctx, &stored, status, now.clone())
            .await
            .map_err(Error::ReadLimitRanges)?;
        match write_status(ctx, &stored, status.clone()).await {
            Ok(()) => {
                let mut result = stored;
                result.status = Some(status);
                return Ok(result);
            }
            Err(kube::Error::Api(s)) if s.is_conflict() && writes < MAX_WRITES => {
                found = streams.get_opt(name).await.map_err(Error::ReadStream)?;
            }
            Err(e) => return Err(Error::WriteStreamStatus(e)),
        }
    }
}

/// The request's status, written once.
async fn write_request_status(
    ctx: &Context,
    isi: &ImageStreamImport,
    status: &ImageStreamImportStatus,
) -> Result<(), Error> {
    let api: Api<ImageStreamImport> =
        Api::namespaced(ctx.client.clone(), &isi.namespace().unwrap_or_default());
    let patch = serde_json::json!({ "status": status });
    api.patch_status(
        &isi.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
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
