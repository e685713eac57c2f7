//! The imagestream controller's reconcile: read → decide ([`crate::stream::sync`]) → import
//! (registry) → create missing Images → one status write, only when something changed. A
//! pass that writes nothing ends with the stream's views ([`super::views::sync`]); a status
//! write brings the stream back, so views are computed from the stored stream only.
//!
//! Failed imports are not retried in a loop: the failure is recorded with C = S and the tag
//! waits for a spec change, its next scheduled check, or (for `Unauthorized`) a change of the
//! namespace's pull secrets.
//!
//! `spec.dockerImageRepository` is imported whole (up to the bulk limit) until the stream
//! carries the `openshift.io/image.dockerRepositoryCheck` annotation, which is set once the
//! repository was listed, as upstream. Its tags become status tags. A repository that cannot
//! be listed leaves the annotation unset, says why in a Warning Event and is tried again
//! after ten minutes, or when the namespace's pull secrets change.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

use crate::api::image::Image;
use crate::api::image_stream::{
    DOCKER_IMAGE_REPOSITORY_CHECK_ANNOTATION, ImageStream, ImageStreamStatus,
};
use crate::import::contract::{Batch, BatchResult, Failure, ImageResult, Mode};
use crate::reference::DockerImageReference;
use crate::stream::limits;
use crate::stream::sync::{self, StatusUpdate, TagChange, TagImport};

use super::schedule::Decision;
use super::{Context, Error};

/// Field manager of status writes.
pub const MANAGER: &str = "imagestream-operator";

pub async fn reconcile(stream: Arc<ImageStream>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _in_flight = ctx.metrics.reconciling("imagestream");
    if stream.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = stream.namespace().unwrap_or_default();
    let name = stream.name_any();
    if ctx.is_applying(&namespace, &name) {
        // an ImageStreamImport is writing it; its status write brings the stream back
        return Ok(Action::requeue(std::time::Duration::from_secs(1)));
    }
    let uid = stream.uid().unwrap_or_default();
    let settings = ctx.settings();
    let started = Instant::now();

    // Scheduled checks: is one due, and when is the next?
    let keyring = ctx.keyring(&namespace);
    let mut requeue = None;
    let mut scheduled = false;
    if settings.scheduled_interval.is_some() && sync::has_scheduled_tags(&stream) {
        let registries = scheduled_registries(&stream);
        let demands = ctx.quota_demands(scheduled_sources(&stream), &keyring);
        let decision = ctx.schedule_decide(&uid, &registries, &demands);
        tracing::debug!(%namespace, %name, ?decision, interval = ?settings.scheduled_interval, "schedule");
        match decision {
            Some(Decision::CheckNow { next_in }) => {
                scheduled = true;
                requeue = Some(next_in);
            }
            Some(Decision::Wait(wait)) => requeue = Some(wait),
            None => {}
        }
    } else {
        ctx.schedule_remove(&uid);
    }

    let retry_unauthorized = ctx.credentials_changed(&uid, &keyring.id());
    let mut work = sync::imports(&stream, scheduled, settings.default_mode);
    if scheduled {
        let tags = stream
            .spec
            .tags
            .iter()
            .filter(|t| sync::scheduled_eligible(&stream, t))
            .count();
        ctx.metrics.scheduled_check(tags);
    }
    if retry_unauthorized {
        add_unauthorized_retries(&stream, &mut work, settings.default_mode);
    }
    // Tags a registry notification woke: checked now as their scheduled check would be,
    // within the same budgets (a scheduled check of the stream already paid for them).
    let mut woken = ctx.woken.take(&namespace, &name);
    if !woken.is_empty() && !scheduled {
        let sources: Vec<&str> = woken_sources(&stream, woken.tags());
        let demands = ctx.quota_demands(sources.iter().copied(), &keyring);
        let registries: Vec<String> = demands.iter().map(|d| d.registry.clone()).collect();
        if let Err(wait) = ctx.schedule_spend(&registries, &demands) {
            tracing::debug!(%namespace, %name, ?wait, "woken tags wait for a budget");
            woken.defer();
            requeue = Some(requeue.map_or(wait, |r| r.min(wait)));
        }
    }
    add_woken(&stream, &mut work, woken.tags(), settings.default_mode);

    let now = Time(jiff::Timestamp::now());
    let mut update = StatusUpdate::new(&stream, &settings.repositories, now.clone());
    let repository = sync::repository_import(&stream, settings.default_mode);
    // Some(Ok) once spec.dockerImageRepository was listed, Some(Err) when it could not be.
    let mut repository_outcome = None;
    // what the woken tags' checks found: failures, and the images of unchanged tags
    let mut failed = BTreeSet::new();
    let mut unchanged = HashMap::new();
    if !work.is_empty() || repository.is_some() {
        let batch = Batch {
            images: work.iter().map(|w| w.import.clone()).collect(),
            repository,
        };
        let mut result = ctx.import(&batch, &keyring, now.0).await;
        let refused = create_images(&ctx, result.images_to_create()).await?;
        fail_refused(&mut result, &refused);
        for (w, r) in work.iter().zip(&result.images) {
            update.apply_import(&w.tag, w.generation, r);
            match r {
                Err(_) => {
                    failed.insert(w.tag.clone());
                }
                Ok(imported) if imported.unchanged => {
                    unchanged.insert(w.tag.clone(), imported.image.clone());
                }
                Ok(_) => {}
            }
        }
        if let Some(listed) = &result.repository {
            update.apply_repository(listed);
            repository_outcome = Some(listed.images.as_ref().map(|_| ()).map_err(Clone::clone));
        }
        let unauthorized =
            |r: &ImageResult| r.as_ref().err().is_some_and(|f| f.reason == "Unauthorized");
        if result.images.iter().any(unauthorized)
            || matches!(&repository_outcome, Some(Err(f)) if f.reason == "Unauthorized")
        {
            ctx.remember_credentials(&uid, keyring.id());
        }
    }
    update.resolve_references(&|ns: &str, n: &str| ctx.stream(ns, n));
    update.update_tracking();
    update.cap_history(settings.max_tag_history);
    let (status, changes) = update.finish();

    let mut wrote = false;
    if let Some(status) = status {
        let (status, refused) = sync::guard_size(
            &stream,
            status,
            settings.max_image_stream_bytes,
            now.clone(),
        );
        let (status, limited) = guard_limits(&ctx, &stream, status, now.clone());
        if limited {
            tracing::warn!(%namespace, %name, "a LimitRange refused the stream's new images");
        }
        if stream.status.as_ref() != Some(&status) {
            write_status(&ctx, &stream, status)
                .await
                .map_err(Error::WriteStatus)?;
            wrote = true;
        }
        if refused {
            tracing::warn!(%namespace, %name, "image stream too large; history not grown");
        }
    }
    publish(&ctx, &stream, &changes).await;
    let (waited, again) = woken.finish(|w| {
        let check = woken_check(w, &failed, &unchanged);
        tracing::debug!(%namespace, %name, tag = %w.tag, ?check, "woken tag checked");
        check
    });
    for waited in waited {
        ctx.metrics.notification_checked(waited);
    }
    if let Some(again) = again {
        requeue = Some(requeue.map_or(again, |r| r.min(again)));
    }
    match repository_outcome {
        Some(Ok(())) => mark_repository_checked(&ctx, &stream, &now)
            .await
            .map_err(Error::WriteStream)?,
        Some(Err(failure)) => {
            // tried again after REPOSITORY_RETRY, or at once when the pull secrets change
            repository_failed(&ctx, &stream, &failure).await;
            requeue = Some(requeue.map_or(REPOSITORY_RETRY, |r| r.min(REPOSITORY_RETRY)));
        }
        None => {}
    }
    // views follow the stream as stored; a status just written brings it back here
    if !wrote
        && let Some(wait) = super::views::sync(&ctx, &stream)
            .await
            .map_err(Error::Views)?
    {
        // tag views left for a user's delete: the pass after the wait removes what is left
        requeue = Some(requeue.map_or(wait, |r| r.min(wait)));
    }
    tracing::debug!(
        %namespace, %name, imports = work.len(), changes = changes.len(),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "reconciled"
    );
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// How long a repository that could not be listed waits before the next attempt.
const REPOSITORY_RETRY: std::time::Duration = std::time::Duration::from_secs(600);

/// Records that `spec.dockerImageRepository` was imported, as upstream does, with the
/// `openshift.io/image.dockerRepositoryCheck` annotation: a merge patch of that one key (the
/// spec is not touched, so the generation does not move, and nothing a user wrote meanwhile
/// is lost).
async fn mark_repository_checked(
    ctx: &Context,
    stream: &ImageStream,
    now: &Time,
) -> Result<(), kube::Error> {
    let api =
        Api::<ImageStream>::namespaced(ctx.client.clone(), &stream.namespace().unwrap_or_default());
    let stamp = now.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let patch = serde_json::json!({
        "metadata": {
            "annotations": { (DOCKER_IMAGE_REPOSITORY_CHECK_ANNOTATION): stamp },
        }
    });
    match api
        .patch(
            &stream.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
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

/// Tags whose last import failed with `Unauthorized` are tried again once the namespace's
/// pull secrets changed.
fn add_unauthorized_retries(stream: &ImageStream, work: &mut Vec<TagImport>, default_mode: Mode) {
    let failed: BTreeSet<&str> = stream
        .status
        .iter()
        .flat_map(|s| &s.tags)
        .filter(|t| t.conditions.iter().any(|c| c.reason == "Unauthorized"))
        .map(|t| t.tag.as_str())
        .collect();
    for tag in &stream.spec.tags {
        if failed.contains(tag.name.as_str())
            && !work.iter().any(|w| w.tag == tag.name)
            && let Some(retry) = sync::import_for(stream, tag, default_mode)
        {
            work.push(retry);
        }
    }
}

/// What the check of a woken tag found: a failure, or an unchanged tag although the
/// notification named another digest (the push may not be visible yet: try again).
fn woken_check(
    woken: &crate::receiver::wake::Woken,
    failed: &BTreeSet<String>,
    unchanged: &HashMap<String, String>,
) -> crate::receiver::wake::Check {
    use crate::receiver::wake::Check;
    if failed.contains(&woken.tag) {
        return Check::Failed;
    }
    match (unchanged.get(&woken.tag), &woken.digest) {
        (Some(image), Some(notified)) if image != notified => Check::Stale,
        _ => Check::Done,
    }
}

/// The pull specs of the woken `tags`, for budgets and quota pacing.
fn woken_sources<'a>(stream: &'a ImageStream, tags: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    tags.filter_map(|tag| Some(stream.spec.tag(tag)?.from.as_ref()?.name.as_str()))
        .collect()
}

/// Adds the woken `tags` that are still due for scheduled checks (a tag changed meanwhile
/// may not be) and not imported in this pass anyway.
fn add_woken<'a>(
    stream: &ImageStream,
    work: &mut Vec<TagImport>,
    tags: impl Iterator<Item = &'a str>,
    default_mode: Mode,
) {
    for tag in tags {
        if work.iter().any(|w| w.tag == tag) {
            continue;
        }
        if let Some(spec) = stream.spec.tag(tag)
            && sync::scheduled_eligible(stream, spec)
            && let Some(import) = sync::import_for(stream, spec, default_mode)
        {
            work.push(import);
        }
    }
}

/// The pull specs of a stream's scheduled tags, for quota pacing.
fn scheduled_sources(stream: &ImageStream) -> impl Iterator<Item = &str> {
    stream
        .spec
        .tags
        .iter()
        .filter(|t| sync::scheduled_eligible(stream, t))
        .filter_map(|t| Some(t.from.as_ref()?.name.as_str()))
}

/// The registries of a stream's scheduled tags, for per-registry budgets.
fn scheduled_registries(stream: &ImageStream) -> Vec<String> {
    let mut registries: Vec<String> = stream
        .spec
        .tags
        .iter()
        .filter(|t| sync::scheduled_eligible(stream, t))
        .filter_map(|t| DockerImageReference::parse(&t.from.as_ref()?.name).ok())
        .map(|r| r.docker_client_defaults().registry)
        .collect();
    registries.sort();
    registries.dedup();
    registries
}

/// `next`, or the stored status with `LimitExceeded` conditions when it adds images past the
/// namespace's `openshift.io/images` limit (semantics 4 and 7.8). Returns whether the limit
/// refused it.
pub(super) fn guard_limits(
    ctx: &Context,
    stream: &ImageStream,
    next: ImageStreamStatus,
    now: Time,
) -> (ImageStreamStatus, bool) {
    let limits = ctx.limits(&stream.namespace().unwrap_or_default());
    limits::guard_status(stream, next, &limits, now)
}

/// Replaces the stream's status, keeping its resourceVersion: a concurrent write makes this
/// a conflict, never a lost update.
pub(super) async fn write_status(
    ctx: &Context,
    stream: &ImageStream,
    status: ImageStreamStatus,
) -> Result<(), kube::Error> {
    write_status_with(&ctx.client, &ctx.metrics, stream, status).await
}

/// [`write_status`] with its parts: every status write of the operator goes through here.
pub(super) async fn write_status_with(
    client: &kube::Client,
    metrics: &super::Metrics,
    stream: &ImageStream,
    status: ImageStreamStatus,
) -> Result<(), kube::Error> {
    let mut next = stream.clone();
    next.status = Some(status);
    let namespace = stream.namespace().unwrap_or_default();
    Api::<ImageStream>::namespaced(client.clone(), &namespace)
        .replace_status(
            &stream.name_any(),
            &PostParams {
                field_manager: Some(MANAGER.into()),
                ..PostParams::default()
            },
            &next,
        )
        .await?;
    metrics.status_write();
    Ok(())
}

/// Creates the Images an import fetched (children first); one that exists is fine (Images
/// are immutable, the first writer wins). An Image the apiserver refuses for what it is (too
/// large, invalid) is returned by digest with the failure its tags get, so the rest of the
/// stream is still written; any other error fails the reconcile, to be retried.
async fn create_images(
    ctx: &Context,
    images: Vec<&Image>,
) -> Result<HashMap<String, Failure>, Error> {
    let mut refused = HashMap::new();
    for image in images {
        let digest = crate::import::importer::image_digest(image).unwrap_or_default();
        let size = stored_size(image);
        let outcome = if size > MAX_IMAGE_BYTES {
            Err((
                413,
                format!(
                    "it would be {size} bytes, more than the {MAX_IMAGE_BYTES} an object may have"
                ),
            ))
        } else {
            match create_image(ctx, image).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if image_refused(status.code, &status.message) => {
                    let code = if status.code == 500 { 413 } else { status.code };
                    Err((code, status.message))
                }
                Err(e) => return Err(Error::CreateImage(e)),
            }
        };
        if let Err((code, why)) = outcome {
            tracing::warn!(%digest, code, %why, "Image refused");
            let message = format!("Image {digest} cannot be stored: {why}");
            let reason = refusal_reason(code);
            refused.insert(
                digest,
                Failure {
                    reason,
                    code,
                    message,
                },
            );
        }
    }
    Ok(refused)
}

/// Images above this size are not sent: etcd refuses requests over 1.5 MiB by default, and
/// the ImageStreamTag, ImageTag and ImageStreamImage views embed the Image again.
const MAX_IMAGE_BYTES: usize = 1024 * 1024;

/// The Image's size as stored (without manifest and config, as [`create_image`] writes it).
fn stored_size(image: &Image) -> usize {
    let mut stored = image.clone();
    stored.spec.docker_image_manifest.clear();
    stored.spec.docker_image_config.clear();
    serde_json::to_vec(&stored).map_or(0, |bytes| bytes.len())
}

/// A refusal of the Image itself, not of the moment: retrying cannot help. The apiserver
/// answers an object too large for etcd with a 500 naming the size.
fn image_refused(code: u16, message: &str) -> bool {
    matches!(code, 400 | 413 | 422)
        || (code == 500 && (message.contains("too large") || message.contains("larger than max")))
}

fn refusal_reason(code: u16) -> &'static str {
    match code {
        413 => "RequestEntityTooLarge",
        422 => "Invalid",
        _ => "BadRequest",
    }
}

/// Turns every import whose Image was refused into that failure.
fn fail_refused(result: &mut BatchResult, refused: &HashMap<String, Failure>) {
    if refused.is_empty() {
        return;
    }
    let fail = |r: &mut ImageResult| {
        if let Ok(imported) = r
            && let Some(failure) = refused.get(&imported.image)
        {
            *r = Err(failure.clone());
        }
    };
    result.images.iter_mut().for_each(fail);
    if let Some(Ok(images)) = result.repository.as_mut().map(|r| r.images.as_mut()) {
        images.iter_mut().for_each(fail);
    }
}

/// Creates `image` unless it exists (then nothing is changed); manifest and config JSON are
/// not stored. Returns whether it was created.
pub(super) async fn create_image(ctx: &Context, image: &Image) -> Result<bool, kube::Error> {
    create_image_with(&ctx.client, &ctx.metrics, image).await
}

/// [`create_image`] with its parts: whether the Image was created (false: it existed).
pub(super) async fn create_image_with(
    client: &kube::Client,
    metrics: &super::Metrics,
    image: &Image,
) -> Result<bool, kube::Error> {
    let mut image = image.clone();
    image.spec.docker_image_manifest.clear();
    image.spec.docker_image_config.clear();
    match Api::<Image>::all(client.clone())
        .create(&PostParams::default(), &image)
        .await
    {
        Ok(_) => {
            metrics.image_created();
            Ok(true)
        }
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Events on transitions only: a tag moved, a new failure, a recovery.
async fn publish(ctx: &Context, stream: &ImageStream, changes: &[TagChange]) {
    let reference = stream.object_ref(&());
    for change in changes {
        let event = match change {
            TagChange::Updated { tag, image } => Event {
                type_: EventType::Normal,
                reason: "Imported".into(),
                note: Some(format!("tag {tag} now points at {image}")),
                action: "Import".into(),
                secondary: Some(super::tag_reference(stream, tag)),
            },
            TagChange::Failed {
                tag,
                reason,
                message,
            } => Event {
                type_: EventType::Warning,
                reason: "ImportFailed".into(),
                note: Some(truncate(format!("tag {tag}: {reason}: {message}"))),
                action: "Import".into(),
                secondary: Some(super::tag_reference(stream, tag)),
            },
            TagChange::Recovered { tag } => Event {
                type_: EventType::Normal,
                reason: "ImportRecovered".into(),
                note: Some(format!("tag {tag} imported again after a failure")),
                action: "Import".into(),
                secondary: Some(super::tag_reference(stream, tag)),
            },
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, "publishing an event failed");
        }
    }
}

/// Event notes are limited to 1 kB.
pub(super) fn truncate(mut s: String) -> String {
    if s.len() > 1000 {
        let mut end = 1000;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::contract::{Imported, RepositoryResult};

    fn imported(image: &str) -> ImageResult {
        Ok(Imported {
            tag: "t".into(),
            image: image.into(),
            reference: format!("r/a@{image}"),
            unchanged: false,
        })
    }

    #[test]
    fn only_the_imports_of_a_refused_image_fail() {
        let failure = Failure {
            reason: refusal_reason(422),
            code: 422,
            message: "the apiserver refused Image sha256:a: too long".into(),
        };
        let refused = HashMap::from([("sha256:a".to_string(), failure.clone())]);
        let earlier = Failure {
            reason: "NotFound",
            code: 404,
            message: "gone".into(),
        };
        let mut result = BatchResult {
            images: vec![
                imported("sha256:a"),
                imported("sha256:b"),
                Err(earlier.clone()),
            ],
            repository: Some(RepositoryResult {
                images: Ok(vec![imported("sha256:b"), imported("sha256:a")]),
                tags: vec!["x".into(), "y".into()],
                additional_tags: Vec::new(),
            }),
            new_images: Default::default(),
        };
        fail_refused(&mut result, &refused);
        assert_eq!(result.images[0], Err(failure.clone()));
        assert_eq!(result.images[1], imported("sha256:b"));
        assert_eq!(result.images[2], Err(earlier));
        let repository = result.repository.expect("repository");
        assert_eq!(
            repository.images,
            Ok(vec![imported("sha256:b"), Err(failure)])
        );
    }

    #[test]
    fn refusals_of_the_image_itself_are_told_from_passing_failures() {
        for code in [400, 413, 422] {
            assert!(image_refused(code, "refused"), "{code}");
        }
        for code in [403, 409, 429, 500, 503, 504] {
            assert!(!image_refused(code, "etcdserver: leader changed"), "{code}");
        }
        assert!(image_refused(500, "etcdserver: request is too large"));
        assert!(image_refused(
            500,
            "rpc error: code = ResourceExhausted desc = trying to send message larger than max (3000679 vs. 2097152)"
        ));
        assert_eq!(refusal_reason(413), "RequestEntityTooLarge");
        assert_eq!(refusal_reason(422), "Invalid");
        assert_eq!(refusal_reason(400), "BadRequest");
    }
}
