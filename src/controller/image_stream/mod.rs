//! The imagestream controller's reconcile, a pipeline of named steps:
//!
//! 1. [`observe`]: one read of the stream and what surrounds it into a plain snapshot (and
//!    the schedule's and budgets' answers, the state a pass takes);
//! 2. plan ([`crate::stream::plan`], pure): which tags to import;
//! 3. [`import`]: the registry, then the Images it fetched;
//! 4. decide ([`crate::stream::decide`], pure): the next status and its transitions;
//! 5. [`write`]: one status write, only when something changed (the step every controller
//!    that writes streams shares, [`super::write`]), its Events, and what the pass reports.
//!
//! A pass that writes nothing settles the stream: the views controller ([`super::views`], on
//! a queue of its own) brings its views in step with that version. A status write brings the
//! stream back, so views are computed from the stored stream only.
//!
//! Failed imports are not retried in a loop: the failure is recorded with C = S and the tag
//! waits for a spec change, its next scheduled check, or (for `Unauthorized`) a change of the
//! namespace's pull secrets.
//!
//! `spec.dockerImageRepository` is imported whole (up to the bulk limit) until the stream
//! carries the `openshift.io/image.dockerRepositoryCheck` annotation, which is set once the
//! repository was listed, as upstream. Its tags become status tags. A repository that cannot
//! be listed leaves the annotation unset, says why in a Warning Event and is tried again
//! after ten minutes ([`crate::stream::requeue::REPOSITORY_RETRY`]), or when the namespace's
//! pull secrets change.

mod import;
mod observe;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::events::{Event, EventType};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use crate::api::image_stream::ImageStream;
use crate::import::contract::Failure;
use crate::stream::decide::{self, Outcome};
use crate::stream::plan;
use crate::stream::requeue::{REPOSITORY_RETRY, Requeue};

use super::write::{tag_event, truncate};
use super::{Context, Error};
use import::import;
use observe::{Snapshot, observe};

pub use super::write::MANAGER;

pub async fn reconcile(stream: Arc<ImageStream>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _in_flight = ctx.metrics.reconciling("imagestream");
    if stream.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if ctx.is_applying(&stream.namespace().unwrap_or_default(), &stream.name_any()) {
        // an ImageStreamImport is writing it; its status write brings the stream back
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let started = Instant::now();
    let mut seen = observe(&ctx, stream);
    let plan = plan::plan(&seen.plan_inputs());
    if plan.defer_woken {
        tracing::debug!(namespace = %seen.namespace, name = %seen.name, "woken tags wait for a budget");
        seen.woken.defer();
    }
    if let Some(tags) = plan.scheduled_tags {
        ctx.metrics.scheduled_check(tags);
    }
    let result = import(&ctx, &seen, &plan).await?;
    let outcome = decide::decide(seen.decide_inputs(&plan, result.as_ref()));
    let requeue = write(&ctx, &mut seen, plan.requeue, &outcome).await?;
    tracing::debug!(
        namespace = %seen.namespace, name = %seen.name, imports = plan.work.len(),
        changes = outcome.changes.len(),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "reconciled"
    );
    Ok(requeue
        .wait()
        .map_or_else(Action::await_change, Action::requeue))
}

/// The write step: the status when it changed, the Events of its transitions, what the
/// woken tags' checks found, and the repository's mark or failure; the stream settled for
/// its views when nothing was written. Returns when the stream comes back.
async fn write(
    ctx: &Context,
    seen: &mut Snapshot<'_>,
    mut requeue: Requeue,
    outcome: &Outcome,
) -> Result<Requeue, Error> {
    let (stream, namespace, name) = (&seen.stream, &seen.namespace, &seen.name);
    if outcome.unauthorized {
        ctx.imports
            .remember_credentials(&seen.uid, seen.keyring.id());
    }
    if outcome.limited {
        tracing::warn!(%namespace, %name, "a LimitRange refused the stream's new images");
    }
    let writer = ctx.writer();
    if let Some(status) = &outcome.status {
        writer
            .status(stream, status.clone())
            .await
            .map_err(Error::WriteStatus)?;
    }
    // the tags the policies affect were verified and what they found is written
    if seen.policies_changed {
        ctx.imports.remember_policies(&seen.uid, seen.policies);
    }
    if outcome.too_large {
        tracing::warn!(%namespace, %name, "image stream too large; history not grown");
    }
    for change in &outcome.changes {
        let event = tag_event(stream, change, None);
        if let Err(e) = ctx.recorder.publish(&event, &stream.object_ref(&())).await {
            tracing::warn!(error = %e, "publishing an event failed");
        }
    }
    let (waited, again) = seen.woken.finish(|w| {
        let check = outcome.woken_check(&w.tag, w.digest.as_deref());
        tracing::debug!(%namespace, %name, tag = %w.tag, ?check, "woken tag checked");
        check
    });
    for waited in waited {
        ctx.metrics.notification_checked(waited);
    }
    requeue.within_any(again);
    match &outcome.repository {
        Some(Ok(())) => writer
            .repository_checked(stream, &seen.now)
            .await
            .map_err(Error::WriteStream)?,
        Some(Err(failure)) => {
            // tried again after REPOSITORY_RETRY, or at once when the pull secrets change
            repository_failed(ctx, stream, failure).await;
            requeue.within(REPOSITORY_RETRY);
        }
        None => {}
    }
    // views follow the stream as stored, once nothing is left to write (a status just
    // written brings the stream back here first)
    if outcome.status.is_none() {
        ctx.views.settle(stream);
    }
    Ok(requeue)
}

/// A repository that could not be listed has no tag to hold a condition: a Warning Event
/// says why.
async fn repository_failed(ctx: &Context, stream: &ImageStream, failure: &Failure) {
    let event = Event {
        type_: EventType::Warning,
        reason: "RepositoryImportFailed".into(),
        note: Some(truncate(format!(
            "repository {}: {}: {}",
            stream.spec.docker_image_repository, failure.reason, failure.message
        ))),
        action: "Import".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &stream.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing an event failed");
    }
}
