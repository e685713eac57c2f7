//! Runs the pruner ([`crate::prune`]) on the ImagePruner's schedule: one run at a time, never
//! overlapping; a run started by the `operator.imagestream.io/run-now` annotation; none while
//! `suspend` is set or without the object (pruning deletes data, so it is opt-in).
//!
//! A run reads the workloads of every namespace for the digests they use, prunes the history
//! of the streams in the operator's scope (each status written with its resourceVersion,
//! re-read on conflicts), then deletes the Images no stream of the cluster refers to any more.
//! It writes at most [`PrunerOptions::stream_writes_per_run`] streams and deletes at most
//! [`PrunerOptions::image_deletes_per_run`] Images: a run that stops at the bound records where
//! it stopped (`status.resumeAfter`) and the next one continues shortly after. Images are only deleted
//! after a run that saw every stream. Each run ends in the status and an Event.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::events::{Event, EventType};
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Resource, ResourceExt};

use super::Context;
use crate::api::image::Image;
use crate::api::image_stream::ImageStream;
use crate::config::{
    ImagePruner, ImagePrunerSpec, ImagePrunerStatus, PruneRun, RUN_NOW_ANNOTATION,
};
use crate::names;
use crate::prune::plan::{self, ImageFacts, InvalidReference, Policy, Protected};
use crate::prune::schedule::{InvalidSchedule, Schedule};

/// Entries of `status.lastRun.removed`.
const REMOVED_LISTED: usize = 100;
/// Field manager of the pruner's writes.
pub const MANAGER: &str = "imagestream-operator-pruner";

/// Which pruner the operator follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrunerOptions {
    /// Name of the ImagePruner object (`cluster`).
    pub name: String,
    /// Only Images with these labels are collected (`key=value,…`; tests sharing a cluster
    /// use it). `None` collects every unreferenced Image.
    pub image_selector: Option<String>,
    /// Streams one run writes at most (500).
    pub stream_writes_per_run: usize,
    /// Images one run deletes at most (1000).
    pub image_deletes_per_run: usize,
    /// Pause before a run continues one that stopped at its bound (10 s).
    pub resume_pause: Duration,
}

impl Default for PrunerOptions {
    fn default() -> Self {
        PrunerOptions {
            name: crate::config::SINGLETON_NAME.into(),
            image_selector: None,
            stream_writes_per_run: 500,
            image_deletes_per_run: 1000,
            resume_pause: Duration::from_secs(10),
        }
    }
}

/// When the next run is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Due {
    /// Now: answering a run-now request (`Some`), or the schedule/continuation (`None`).
    Now(Option<String>),
    At(Timestamp),
    Never,
}

/// Decides when the pruner runs next (pure).
pub fn due(
    spec: &ImagePrunerSpec,
    run_request: Option<&str>,
    status: &ImagePrunerStatus,
    now: Timestamp,
    resume_pause: Duration,
) -> Result<Due, InvalidSchedule> {
    if spec.suspend == Some(true) {
        return Ok(Due::Never);
    }
    if let Some(request) = run_request
        && status.observed_run_request.as_deref() != Some(request)
    {
        return Ok(Due::Now(Some(request.to_string())));
    }
    let last = status.last_run.as_ref();
    let finished = last.and_then(|r| r.finished.as_ref()).map(|t| t.0);
    if status.resume_after.is_some() {
        let pause = SignedDuration::try_from(resume_pause).unwrap_or(SignedDuration::ZERO);
        let at = finished.map_or(now, |f| f + pause);
        return Ok(if at <= now {
            Due::Now(None)
        } else {
            Due::At(at)
        });
    }
    let schedule = Schedule::parse(spec.effective_schedule())?;
    let from = last.and_then(|r| r.started.as_ref()).map_or(now, |t| t.0);
    Ok(match schedule.next_after(from) {
        Some(at) if at <= now => Due::Now(None),
        Some(at) => Due::At(at),
        None => Due::Never,
    })
}

/// Follows the ImagePruner named in `options` and runs it until `shutdown`.
pub async fn run(ctx: Arc<Context>, options: PrunerOptions, shutdown: impl Future<Output = ()>) {
    let api = Api::<ImagePruner>::all(ctx.client.clone());
    let (store, writer) = reflector::store::<ImagePruner>();
    let config = watcher::Config::default().fields(&format!("metadata.name={}", options.name));
    let mut changes = std::pin::pin!(
        watcher(api.clone(), config)
            .default_backoff()
            .reflect(writer)
    );
    let mut shutdown = std::pin::pin!(shutdown);
    let key = ObjectRef::new(&options.name);
    tracing::debug!(pruner = %options.name, "following the pruner");
    let mut written: Option<(String, ImagePrunerStatus)> = None;
    loop {
        let now = Timestamp::now();
        let wait = match store.get(&key) {
            None => None,
            Some(pruner) => {
                // the status this loop wrote last is the newest (the cache may lag behind)
                let status = match &written {
                    Some((uid, status)) if pruner.uid().as_ref() == Some(uid) => status.clone(),
                    _ => pruner.status.clone().unwrap_or_default(),
                };
                let request = pruner.annotations().get(RUN_NOW_ANNOTATION).cloned();
                match due(
                    &pruner.spec,
                    request.as_deref(),
                    &status,
                    now,
                    options.resume_pause,
                ) {
                    Ok(Due::Now(request)) => {
                        let status = run_once(&ctx, &options, &pruner, &status, request).await;
                        written = Some((pruner.uid().unwrap_or_default(), status));
                        continue;
                    }
                    Ok(Due::At(at)) => {
                        Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
                    }
                    Ok(Due::Never) => None,
                    Err(e) => {
                        tracing::warn!(reason = e.reason(), error = %e, "pruner not scheduled");
                        None
                    }
                }
            }
        };
        tracing::debug!(?wait, "pruner waiting");
        let sleep = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(24 * 3600)));
        tokio::select! {
            () = &mut shutdown => return,
            event = changes.next() => if event.is_none() { return },
            () = sleep => {}
        }
    }
}

/// One run, reported in the status and as an Event.
async fn run_once(
    ctx: &Context,
    options: &PrunerOptions,
    pruner: &ImagePruner,
    previous: &ImagePrunerStatus,
    request: Option<String>,
) -> ImagePrunerStatus {
    let spec = &pruner.spec;
    // to the second, as the status stores it
    let started =
        Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now());
    let keep = SignedDuration::try_from(spec.effective_keep_younger_than())
        .unwrap_or(SignedDuration::ZERO);
    let policy = Policy {
        keep_tag_revisions: spec.effective_keep_tag_revisions(),
        cutoff: started - keep,
    };
    let dry_run = spec.dry_run == Some(true);
    let mut report = PruneRun {
        started: Some(Time(started)),
        dry_run,
        ..PruneRun::default()
    };
    tracing::info!(dry_run, resume = ?previous.resume_after, "pruning");
    let resume_after = prune(
        ctx,
        options,
        spec,
        &policy,
        dry_run,
        previous.resume_after.as_deref(),
        &mut report,
    )
    .await;
    report.finished = Some(Time(Timestamp::now()));
    let next = Schedule::parse(spec.effective_schedule())
        .ok()
        .and_then(|s| s.next_after(started))
        .map(Time);
    let status = ImagePrunerStatus {
        last_run: Some(report.clone()),
        next_run: (spec.suspend != Some(true)).then_some(next).flatten(),
        observed_run_request: request.or(previous.observed_run_request.clone()),
        resume_after,
    };
    // applied, so what this run does not report (old errors) goes
    let apply = serde_json::json!({
        "apiVersion": format!("{}/{}", crate::config::GROUP, crate::config::VERSION),
        "kind": "ImagePruner",
        "status": status,
    });
    let params = PatchParams::apply(MANAGER).force();
    if let Err(e) = Api::<ImagePruner>::all(ctx.client.clone())
        .patch_status(&pruner.name_any(), &params, &Patch::Apply(&apply))
        .await
    {
        tracing::warn!(error = %e, "writing the pruner status");
    }
    publish(ctx, pruner, &report).await;
    status
}

/// Stages 1 and 2; returns where a run stopped at its bound.
async fn prune(
    ctx: &Context,
    options: &PrunerOptions,
    spec: &ImagePrunerSpec,
    policy: &Policy,
    dry_run: bool,
    resume_after: Option<&str>,
    report: &mut PruneRun,
) -> Option<String> {
    let ignore_invalid = spec.ignore_invalid_image_references == Some(true);
    let mut protected = match workload_digests(ctx, policy.cutoff, ignore_invalid).await {
        Ok(p) => p,
        Err(e) => {
            report.errors.push(e);
            return resume_after.map(str::to_string);
        }
    };
    let all_streams = match Api::<ImageStream>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list.items,
        Err(e) => {
            report.errors.push(format!("StreamListFailed: {e}"));
            return resume_after.map(str::to_string);
        }
    };
    for stream in &all_streams {
        protected.add_spec_tags(stream);
    }

    // stage 1: the operator's streams, in name order, after where the last run stopped
    let mut mine: Vec<Arc<ImageStream>> = ctx.caches.streams.store().state();
    mine.sort_by_key(|s| stream_key(s));
    let exists = |digest: &str| ctx.caches.image(&names::image(digest)).is_some();
    let mut writes = 0;
    let mut pruned_status = BTreeMap::new();
    let mut last_seen: Option<String> = None;
    for stream in mine {
        let key = stream_key(&stream);
        if resume_after.is_some_and(|r| key.as_str() <= r) {
            continue;
        }
        if writes >= options.stream_writes_per_run {
            return last_seen;
        }
        last_seen = Some(key.clone());
        let Some((status, removed)) = plan::prune_history(&stream, policy, &exists, &protected)
        else {
            continue;
        };
        let written = if dry_run {
            Ok((status, removed))
        } else {
            write_pruned(ctx, &stream, policy, &exists, &protected).await
        };
        match written {
            Ok((status, removed)) => {
                writes += 1;
                report.streams_pruned += 1;
                report.events_removed += i64::try_from(removed.len()).unwrap_or(i64::MAX);
                for r in &removed {
                    listed(report, format!("{key}:{}@{}", r.tag, r.image));
                }
                pruned_status.insert(key, status);
            }
            Err(e) => report.errors.push(format!("{key}: {e}")),
        }
    }
    if !report.errors.is_empty() {
        return None;
    }

    // stage 2: Images no stream of the cluster refers to (with this run's pruning applied)
    let images = match image_facts(ctx, options).await {
        Ok(i) => i,
        Err(e) => {
            report.errors.push(e);
            return None;
        }
    };
    let statuses: Vec<_> = all_streams
        .iter()
        .filter_map(|s| pruned_status.get(&stream_key(s)).or(s.status.as_ref()))
        .collect();
    let doomed = plan::unreferenced_images(&images, statuses, &protected, policy.cutoff);
    let api = Api::<Image>::all(ctx.client.clone());
    for (n, digest) in doomed.iter().enumerate() {
        if n >= options.image_deletes_per_run {
            report.complete = false;
            return Some(String::new());
        }
        if !dry_run {
            let params = DeleteParams::default();
            match api.delete(&names::image(digest), &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() => continue,
                Err(e) => {
                    report
                        .errors
                        .push(format!("ImageDeleteFailed: {digest}: {e}"));
                    continue;
                }
            }
        }
        report.images_deleted += 1;
        listed(report, format!("image {digest}"));
    }
    report.complete = report.errors.is_empty();
    None
}

fn listed(report: &mut PruneRun, entry: String) {
    if report.removed.len() < REMOVED_LISTED {
        report.removed.push(entry);
    }
}

fn stream_key(stream: &ImageStream) -> String {
    format!(
        "{}/{}",
        stream.namespace().unwrap_or_default(),
        stream.name_any()
    )
}

/// Writes the pruned status with the stream's resourceVersion; on a conflict the stream is
/// read again and pruned again (up to three times).
async fn write_pruned(
    ctx: &Context,
    stream: &ImageStream,
    policy: &Policy,
    exists: &(dyn Fn(&str) -> bool + Sync),
    protected: &Protected,
) -> Result<
    (
        crate::api::image_stream::ImageStreamStatus,
        Vec<plan::Removed>,
    ),
    String,
> {
    let api =
        Api::<ImageStream>::namespaced(ctx.client.clone(), &stream.namespace().unwrap_or_default());
    let writer = ctx.writer().as_manager(MANAGER);
    let mut current = stream.clone();
    for _ in 0..3 {
        let Some((status, removed)) = plan::prune_history(&current, policy, exists, protected)
        else {
            return Ok((current.status.clone().unwrap_or_default(), Vec::new()));
        };
        match writer.status(&current, status.clone()).await {
            Ok(_) => return Ok((status, removed)),
            Err(kube::Error::Api(s)) if s.is_conflict() => {
                current = api
                    .get(&current.name_any())
                    .await
                    .map_err(|e| format!("StreamReadFailed: {e}"))?;
            }
            Err(kube::Error::Api(s)) if s.is_not_found() => {
                return Ok((Default::default(), Vec::new()));
            }
            Err(e) => return Err(format!("StatusWriteFailed: {e}")),
        }
    }
    Err("StatusWriteConflict: the stream kept changing".into())
}

/// The digests running (or recent) workloads in any namespace use.
async fn workload_digests(
    ctx: &Context,
    cutoff: Timestamp,
    ignore_invalid: bool,
) -> Result<Protected, String> {
    let mut protected = Protected::default();
    let client = &ctx.client;
    let lp = ListParams::default();
    let failed = |what: &str, e: kube::Error| format!("WorkloadListFailed: {what}: {e}");
    let mut specs: Vec<(String, PodSpec)> = Vec::new();
    for pod in Api::<Pod>::all(client.clone())
        .list(&lp)
        .await
        .map_err(|e| failed("pods", e))?
    {
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let created = pod.creation_timestamp().map(|t| t.0);
        let active = matches!(phase.as_str(), "Running" | "Pending" | "");
        if !active && created.is_some_and(|c| c <= cutoff) {
            continue;
        }
        if let Some(spec) = pod.spec.clone() {
            specs.push((owner("pod", &pod), spec));
        }
    }
    macro_rules! templates {
        ($kind:ty, $what:literal, $path:expr) => {
            for o in Api::<$kind>::all(client.clone())
                .list(&lp)
                .await
                .map_err(|e| failed($what, e))?
            {
                let spec: Option<PodSpec> = $path(&o);
                if let Some(spec) = spec {
                    specs.push((owner($what, &o), spec));
                }
            }
        };
    }
    templates!(ReplicaSet, "replicaset", |o: &ReplicaSet| o
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.clone()));
    templates!(Deployment, "deployment", |o: &Deployment| o
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone()));
    templates!(StatefulSet, "statefulset", |o: &StatefulSet| o
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone()));
    templates!(DaemonSet, "daemonset", |o: &DaemonSet| o
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone()));
    templates!(Job, "job", |o: &Job| o
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone()));
    templates!(CronJob, "cronjob", |o: &CronJob| o
        .spec
        .as_ref()
        .and_then(|s| s.job_template.spec.as_ref())
        .and_then(|j| j.template.spec.clone()));
    for (who, spec) in specs {
        let images = spec
            .containers
            .iter()
            .filter_map(|c| c.image.as_deref())
            .chain(
                spec.init_containers
                    .iter()
                    .flatten()
                    .filter_map(|c| c.image.as_deref()),
            )
            .chain(
                spec.ephemeral_containers
                    .iter()
                    .flatten()
                    .filter_map(|c| c.image.as_deref()),
            );
        for image in images {
            protected
                .add_workload_image(&who, image, ignore_invalid)
                .map_err(|e: InvalidReference| format!("{}: {e}", e.reason()))?;
        }
    }
    Ok(protected)
}

fn owner<K: Resource>(kind: &str, o: &K) -> String {
    format!(
        "{kind} {}/{}",
        o.meta().namespace.clone().unwrap_or_default(),
        o.meta().name.clone().unwrap_or_default()
    )
}

/// Every Image (of the selector, when set) as stage 2 sees it.
async fn image_facts(ctx: &Context, options: &PrunerOptions) -> Result<Vec<ImageFacts>, String> {
    let mut lp = ListParams::default();
    if let Some(selector) = &options.image_selector {
        lp = lp.labels(selector);
    }
    let images = Api::<Image>::all(ctx.client.clone())
        .list(&lp)
        .await
        .map_err(|e| format!("ImageListFailed: {e}"))?;
    Ok(images
        .items
        .iter()
        .filter_map(|i| {
            let name = names::parse_image(&i.name_any())?;
            Some(ImageFacts {
                name,
                created: i.creation_timestamp().map(|t| t.0),
                children: i
                    .spec
                    .docker_image_manifests
                    .iter()
                    .map(|m| m.digest.clone())
                    .collect(),
            })
        })
        .collect())
}

async fn publish(ctx: &Context, pruner: &ImagePruner, report: &PruneRun) {
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let event = if report.errors.is_empty() {
        Event {
            type_: EventType::Normal,
            reason: "Pruned".into(),
            note: Some(format!(
                "{verb} {} history entries of {} streams and {} Images{}",
                report.events_removed,
                report.streams_pruned,
                report.images_deleted,
                if report.complete {
                    ""
                } else {
                    "; continuing shortly"
                }
            )),
            action: "Prune".into(),
            secondary: None,
        }
    } else {
        Event {
            type_: EventType::Warning,
            reason: "PruneFailed".into(),
            note: Some(super::write::truncate(report.errors.join("; "))),
            action: "Prune".into(),
            secondary: None,
        }
    };
    if let Err(e) = ctx.recorder.publish(&event, &pruner.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing an event failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn ran(started: &str, finished: &str) -> PruneRun {
        PruneRun {
            started: Some(Time(at(started))),
            finished: Some(Time(at(finished))),
            ..PruneRun::default()
        }
    }

    const PAUSE: Duration = Duration::from_secs(10);

    #[test]
    fn runs_follow_the_schedule_requests_and_suspend() {
        let spec = ImagePrunerSpec::default();
        let now = at("2026-11-22T12:00:00Z");
        let fresh = ImagePrunerStatus::default();
        assert_eq!(
            due(&spec, None, &fresh, now, PAUSE).unwrap(),
            Due::At(at("2026-11-23T00:00:00Z"))
        );
        // a new request runs now, an answered one does not
        assert_eq!(
            due(&spec, Some("1"), &fresh, now, PAUSE).unwrap(),
            Due::Now(Some("1".into()))
        );
        let answered = ImagePrunerStatus {
            observed_run_request: Some("1".into()),
            last_run: Some(ran("2026-11-22T11:00:00Z", "2026-11-22T11:01:00Z")),
            ..ImagePrunerStatus::default()
        };
        assert_eq!(
            due(&spec, Some("1"), &answered, now, PAUSE).unwrap(),
            Due::At(at("2026-11-23T00:00:00Z"))
        );
        // a run missed while the operator was down runs now
        let stale = ImagePrunerStatus {
            last_run: Some(ran("2026-11-20T00:00:00Z", "2026-11-20T00:01:00Z")),
            ..ImagePrunerStatus::default()
        };
        assert_eq!(
            due(&spec, None, &stale, now, PAUSE).unwrap(),
            Due::Now(None)
        );
        // suspend stops everything, requests too
        let suspended = ImagePrunerSpec {
            suspend: Some(true),
            ..spec.clone()
        };
        assert_eq!(
            due(&suspended, Some("2"), &stale, now, PAUSE).unwrap(),
            Due::Never
        );
        // a run stopped at its bound continues after a pause
        let stopped = ImagePrunerStatus {
            resume_after: Some("ns/s".into()),
            last_run: Some(ran("2026-11-22T11:59:00Z", "2026-11-22T11:59:55Z")),
            ..ImagePrunerStatus::default()
        };
        assert_eq!(
            due(&spec, None, &stopped, now, PAUSE).unwrap(),
            Due::At(at("2026-11-22T12:00:05Z"))
        );
        let bad = ImagePrunerSpec {
            schedule: Some("nope".into()),
            ..spec
        };
        assert!(due(&bad, None, &fresh, now, PAUSE).is_err());
    }
}
