//! The observe step: everything a pass decides from, read once into a plain [`Snapshot`]
//! (the stream, the settings, the namespace's pull secrets and LimitRanges, the streams its
//! tags follow), and the state a pass takes: the schedule's answer for its scheduled tags,
//! the tags a registry notification woke, and the budgets those draw on.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::api::image_stream::ImageStream;
use crate::credentials::Keyring;
use crate::import::contract::BatchResult;
use crate::receiver::queue::Taken;
use crate::stream::decide::{self, Followed};
use crate::stream::limits::Limits;
use crate::stream::plan::{self, Plan};
use crate::stream::schedule::Decision;
use crate::stream::sync;

use super::super::{Context, Settings};

/// What one pass sees.
pub(super) struct Snapshot<'a> {
    pub stream: Arc<ImageStream>,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub settings: Arc<Settings>,
    /// The namespace's pull secrets.
    pub keyring: Keyring,
    /// The namespace's LimitRange limits on streams.
    pub limits: Limits,
    /// The streams the stream's tags follow.
    pub followed: Followed,
    /// The keyring differs from the one the stream's `Unauthorized` failures were seen with.
    pub retry_unauthorized: bool,
    /// The image policies' fingerprint, and whether they changed since the last pass.
    pub policies: u64,
    pub policies_changed: bool,
    /// The schedule's answer; `None` without scheduled tags or scheduled imports.
    pub schedule: Option<Decision>,
    /// The tags a registry notification woke, taken for this pass.
    pub woken: Taken<'a>,
    pub woken_tags: Vec<String>,
    /// How long the budgets asked the woken tags to wait.
    pub woken_wait: Option<Duration>,
    pub now: Time,
}

/// Reads what a pass over `stream` needs (see the module docs).
pub(super) fn observe(ctx: &Context, stream: Arc<ImageStream>) -> Snapshot<'_> {
    let namespace = stream.namespace().unwrap_or_default();
    let name = stream.name_any();
    let uid = stream.uid().unwrap_or_default();
    let settings = ctx.settings();
    let keyring = ctx.keyring(&namespace);

    // scheduled checks: is one due, and when is the next?
    let schedule = if settings.scheduled_interval.is_some() && sync::has_scheduled_tags(&stream) {
        let registries = plan::scheduled_registries(&stream);
        let demands = ctx
            .imports
            .quota_demands(plan::scheduled_sources(&stream), &keyring);
        let decision = ctx.imports.schedule_decide(&uid, &registries, &demands);
        tracing::debug!(%namespace, %name, ?decision, interval = ?settings.scheduled_interval, "schedule");
        decision
    } else {
        ctx.imports.schedule_remove(&uid);
        None
    };
    let retry_unauthorized = ctx.imports.credentials_changed(&uid, &keyring.id());
    let policies = crate::trust::resolve::fingerprint(&settings.import.policies);
    let policies_changed = ctx.imports.policies_changed(&uid, policies);

    // Tags a registry notification woke: checked now as their scheduled check would be,
    // within the same budgets (a due scheduled check of the stream already paid for them).
    let woken = ctx.woken.take(&namespace, &name);
    let woken_tags: Vec<String> = woken.tags().map(str::to_string).collect();
    let woken_wait = if woken_tags.is_empty() || plan::check_due(schedule) {
        None
    } else {
        let sources = plan::woken_sources(&stream, &woken_tags);
        let demands = ctx.imports.quota_demands(sources.into_iter(), &keyring);
        let registries: Vec<String> = demands.iter().map(|d| d.registry.clone()).collect();
        ctx.imports.schedule_spend(&registries, &demands).err()
    };

    let followed = decide::followed_streams(&stream)
        .into_iter()
        .filter_map(|(ns, n)| {
            let other = ctx.stream(&ns, &n)?;
            Some(((ns, n), other))
        })
        .collect();
    Snapshot {
        limits: ctx.limits(&namespace),
        followed,
        namespace,
        name,
        uid,
        settings,
        keyring,
        retry_unauthorized,
        policies,
        policies_changed,
        schedule,
        woken,
        woken_tags,
        woken_wait,
        now: Time(jiff::Timestamp::now()),
        stream,
    }
}

impl Snapshot<'_> {
    /// What the plan step reads.
    pub fn plan_inputs(&self) -> plan::Inputs<'_> {
        plan::Inputs {
            stream: &self.stream,
            default_mode: self.settings.default_mode,
            schedule: self.schedule,
            retry_unauthorized: self.retry_unauthorized,
            woken: &self.woken_tags,
            woken_wait: self.woken_wait,
            policies: &self.settings.import.policies,
            policies_changed: self.policies_changed,
        }
    }

    /// What the decide step reads: this, the plan and what the import found.
    pub fn decide_inputs<'a>(
        &'a self,
        plan: &'a Plan,
        result: Option<&'a BatchResult>,
    ) -> decide::Inputs<'a, Followed> {
        decide::Inputs {
            stream: &self.stream,
            work: &plan.work,
            result,
            repositories: &self.settings.repositories,
            max_tag_history: self.settings.max_tag_history,
            max_image_stream_bytes: self.settings.max_image_stream_bytes,
            limits: &self.limits,
            others: &self.followed,
            now: self.now.clone(),
        }
    }
}
