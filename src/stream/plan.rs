//! What one pass of the imagestream controller imports, decided without IO (its plan step):
//! the tags whose spec is ahead of what was observed ([`sync::imports`]), the scheduled tags
//! when the schedule says a check is due, the tags that failed with `Unauthorized` once the
//! namespace's pull secrets changed, the tags a registry notification woke (checked as their
//! scheduled check would be, within the same budgets), and `spec.dockerImageRepository`
//! until it was listed.
//!
//! Image policies: a tag whose current image a policy refused is verified again whenever it
//! is imported (an unchanged check of a trusted tag stays one HEAD); when the policies in
//! force changed since the stream's last pass, the tags they cover and the refused ones are
//! imported at once and their current images verified under the new policies.
//!
//! The schedule and the budgets keep state, so the caller asks them before planning
//! (observe) and passes their answers in; [`scheduled_sources`], [`scheduled_registries`]
//! and [`woken_sources`] say what to ask them about.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::api::image_stream::ImageStream;
use crate::import::contract::Mode;
use crate::import::contract::{Batch, RepositoryImport};
use crate::reference::DockerImageReference;
use crate::trust::policy::covering;
use crate::trust::{FailureReason, ResolvedPolicy};

use super::requeue::Requeue;
use super::schedule::Decision;
use super::sync::{self, TagImport};

/// What a pass plans from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    pub stream: &'a ImageStream,
    /// The import mode of tags that name none.
    pub default_mode: Mode,
    /// The schedule's answer for the stream's scheduled tags; `None` when it has none, or
    /// scheduled imports are off.
    pub schedule: Option<Decision>,
    /// The namespace's pull secrets differ from those the stream's `Unauthorized` failures
    /// were seen with (or those are not known).
    pub retry_unauthorized: bool,
    /// Tags a registry notification woke.
    pub woken: &'a [String],
    /// How long the budgets asked the woken tags to wait; `None` when they may be checked now
    /// (or were not asked: a scheduled check already pays for them).
    pub woken_wait: Option<Duration>,
    /// The image policies in force.
    pub policies: &'a [ResolvedPolicy],
    /// They changed since the stream's last pass.
    pub policies_changed: bool,
}

/// What a pass imports, and what it learned about when to come back.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The tags to import, each once.
    pub work: Vec<TagImport>,
    /// `spec.dockerImageRepository`, while it was not listed.
    pub repository: Option<RepositoryImport>,
    /// The scheduled tags a due scheduled check covers; `None` when no check is due.
    pub scheduled_tags: Option<usize>,
    /// The woken tags wait for a budget: they are handed back for a later pass.
    pub defer_woken: bool,
    /// The schedule's next check, or the budgets' wait.
    pub requeue: Requeue,
}

impl Plan {
    /// Whether the pass asks the registry nothing.
    pub fn is_empty(&self) -> bool {
        self.work.is_empty() && self.repository.is_none()
    }

    /// The importer's request for [`Self::work`] (in order) and the repository.
    pub fn batch(&self) -> Batch {
        Batch {
            images: self.work.iter().map(|w| w.import.clone()).collect(),
            repository: self.repository.clone(),
        }
    }
}

/// Whether a scheduled check of the stream is due now (the woken tags then ride on it
/// without asking the budgets again).
pub fn check_due(schedule: Option<Decision>) -> bool {
    matches!(schedule, Some(Decision::CheckNow { .. }))
}

/// The pass's imports (see the module docs).
pub fn plan(inputs: &Inputs<'_>) -> Plan {
    let Inputs {
        stream,
        default_mode,
        ..
    } = *inputs;
    let mut requeue = Requeue::default();
    let scheduled = match inputs.schedule {
        Some(Decision::CheckNow { next_in }) => {
            requeue.within(next_in);
            true
        }
        Some(Decision::Wait(wait)) => {
            requeue.within(wait);
            false
        }
        None => false,
    };
    let mut work = sync::imports(stream, scheduled, default_mode);
    let scheduled_tags = scheduled.then(|| {
        stream
            .spec
            .tags
            .iter()
            .filter(|t| sync::scheduled_eligible(stream, t))
            .count()
    });
    if inputs.retry_unauthorized {
        add_unauthorized_retries(stream, &mut work, default_mode);
    }
    let defer_woken = !inputs.woken.is_empty() && !scheduled && inputs.woken_wait.is_some();
    if defer_woken {
        requeue.within_any(inputs.woken_wait);
    } else {
        add_woken(stream, &mut work, inputs.woken, default_mode);
    }
    add_verifications(
        stream,
        &mut work,
        inputs.policies,
        inputs.policies_changed,
        default_mode,
    );
    Plan {
        work,
        repository: sync::repository_import(stream, default_mode),
        scheduled_tags,
        defer_woken,
        requeue,
    }
}

/// Tags whose last import failed with `Unauthorized` are tried again (the namespace's pull
/// secrets changed), unless the pass imports them anyway.
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

/// Marks the tags whose current image is verified again (see the module docs): a refused
/// one whenever the pass imports it, and, when the policies changed, each tag they cover or
/// a policy refused, imported now unless the pass imports it anyway.
fn add_verifications(
    stream: &ImageStream,
    work: &mut Vec<TagImport>,
    policies: &[ResolvedPolicy],
    changed: bool,
    default_mode: Mode,
) {
    let refused: BTreeSet<&str> = stream
        .status
        .iter()
        .flat_map(|s| &s.tags)
        .filter(|t| {
            t.conditions
                .iter()
                .any(|c| FailureReason::is_verification_reason(&c.reason))
        })
        .map(|t| t.tag.as_str())
        .collect();
    for tag in &stream.spec.tags {
        let refused = refused.contains(tag.name.as_str());
        if let Some(planned) = work.iter_mut().find(|w| w.tag == tag.name) {
            let covered = changed && is_covered(policies, &planned.import);
            planned.import.verify_current |= refused || covered;
            continue;
        }
        if !changed {
            continue;
        }
        if let Some(mut again) = sync::import_for(stream, tag, default_mode)
            && (refused || is_covered(policies, &again.import))
        {
            again.import.verify_current = true;
            work.push(again);
        }
    }
}

fn is_covered(policies: &[ResolvedPolicy], import: &crate::import::contract::ImageImport) -> bool {
    import
        .from
        .parsed()
        .is_ok_and(|reference| !covering(policies.iter(), reference).policies.is_empty())
}

/// Adds the woken `tags` that are still due for scheduled checks (a tag changed meanwhile
/// may not be) and not imported in this pass anyway.
fn add_woken(stream: &ImageStream, work: &mut Vec<TagImport>, tags: &[String], mode: Mode) {
    for tag in tags {
        if work.iter().any(|w| &w.tag == tag) {
            continue;
        }
        if let Some(spec) = stream.spec.tag(tag)
            && sync::scheduled_eligible(stream, spec)
            && let Some(import) = sync::import_for(stream, spec, mode)
        {
            work.push(import);
        }
    }
}

/// The pull specs of a stream's scheduled tags, for quota pacing.
pub fn scheduled_sources(stream: &ImageStream) -> impl Iterator<Item = &str> {
    stream
        .spec
        .tags
        .iter()
        .filter(|t| sync::scheduled_eligible(stream, t))
        .filter_map(|t| Some(t.from.as_ref()?.name.as_str()))
}

/// The registries of a stream's scheduled tags, each once, for per-registry budgets.
pub fn scheduled_registries(stream: &ImageStream) -> Vec<String> {
    let mut registries: Vec<String> = scheduled_sources(stream)
        .filter_map(|from| DockerImageReference::parse(from).ok())
        .map(|r| r.docker_client_defaults().registry)
        .collect();
    registries.sort();
    registries.dedup();
    registries
}

/// The pull specs of the woken `tags` the spec still names, for budgets and quota pacing.
pub fn woken_sources<'a>(stream: &'a ImageStream, tags: &[String]) -> Vec<&'a str> {
    tags.iter()
        .filter_map(|tag| Some(stream.spec.tag(tag)?.from.as_ref()?.name.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_stream::{TagEventCondition, TagImportPolicy, TagReference};
    use crate::stream::sync::tests::{D1, condition, docker, event, history, stream, tags_of};

    const MINUTE: Duration = Duration::from_secs(60);

    fn scheduled(name: &str, pull: &str) -> TagReference {
        TagReference {
            import_policy: TagImportPolicy {
                scheduled: true,
                ..TagImportPolicy::default()
            },
            ..docker(name, pull, Some(1))
        }
    }

    fn unauthorized(generation: i64) -> TagEventCondition {
        TagEventCondition {
            reason: "Unauthorized".into(),
            message: "authentication required".into(),
            ..condition(generation)
        }
    }

    fn inputs<'a>(stream: &'a ImageStream) -> Inputs<'a> {
        Inputs {
            stream,
            default_mode: Mode::Legacy,
            schedule: None,
            retry_unauthorized: false,
            woken: &[],
            woken_wait: None,
            policies: &[],
            policies_changed: false,
        }
    }

    /// `a` imported at generation 1, `b` failed `Unauthorized` at 1, `c` failed otherwise.
    fn imported_and_failed() -> ImageStream {
        let mut failed_b = history("b", vec![]);
        failed_b.conditions = vec![unauthorized(1)];
        let mut failed_c = history("c", vec![]);
        failed_c.conditions = vec![condition(1)];
        stream(
            vec![
                docker("a", "r/a:1", Some(1)),
                docker("b", "private/b:1", Some(1)),
                docker("c", "r/c:1", Some(1)),
            ],
            vec![
                history("a", vec![event("r/a@sha", D1, 1)]),
                failed_b,
                failed_c,
            ],
        )
    }

    #[test]
    fn a_settled_stream_plans_nothing() {
        let s = imported_and_failed();
        let plan = plan(&inputs(&s));
        assert!(plan.is_empty(), "{plan:?}");
        assert_eq!(plan.scheduled_tags, None);
        assert_eq!(plan.requeue.wait(), None);
        assert!(plan.batch().images.is_empty());
    }

    #[test]
    fn unauthorized_tags_are_retried_once_credentials_change() {
        let s = imported_and_failed();
        let plan = plan(&Inputs {
            retry_unauthorized: true,
            ..inputs(&s)
        });
        assert_eq!(tags_of(&plan.work), ["b"], "only the Unauthorized failure");
        assert_eq!(plan.work[0].generation, 1);
        // a status tag the spec does not name has nothing to retry
        let mut orphan = s.clone();
        orphan.spec.tags.retain(|t| t.name != "b");
        let plan = super::plan(&Inputs {
            retry_unauthorized: true,
            ..inputs(&orphan)
        });
        assert!(plan.work.is_empty(), "{:?}", plan.work);
    }

    #[test]
    fn an_unauthorized_tag_ahead_of_its_failure_is_imported_once() {
        let mut s = imported_and_failed();
        s.spec.tags[1].generation = Some(2);
        let plan = plan(&Inputs {
            retry_unauthorized: true,
            ..inputs(&s)
        });
        assert_eq!(tags_of(&plan.work), ["b"]);
        assert_eq!(plan.work[0].generation, 2);
    }

    fn refused(generation: i64) -> TagEventCondition {
        TagEventCondition {
            reason: "SignatureMissing".into(),
            message: "policy \"team\": no signature".into(),
            ..condition(generation)
        }
    }

    fn team_policy() -> ResolvedPolicy {
        crate::trust::tests::policy_with(
            "team",
            Vec::new(),
            crate::trust::Enforcement::Enforce,
            crate::trust::Requirement::AnyOf,
        )
    }

    /// Scheduled `signed` (covered by the team policy, at D1), `refused` (covered, its new
    /// image refused: still at D1) and `other` (not covered), all imported at generation 1.
    fn under_policy() -> ImageStream {
        let mut refused_tag = history("refused", vec![event("registry.example.com/b@sha", D1, 1)]);
        refused_tag.conditions = vec![refused(1)];
        stream(
            vec![
                scheduled("signed", "registry.example.com/a:1"),
                scheduled("refused", "registry.example.com/b:1"),
                scheduled("other", "r/c:1"),
            ],
            vec![
                history("signed", vec![event("registry.example.com/a@sha", D1, 1)]),
                refused_tag,
                history("other", vec![event("r/c@sha", D1, 1)]),
            ],
        )
    }

    fn verified(plan: &Plan) -> Vec<(&str, bool)> {
        plan.work
            .iter()
            .map(|w| (w.tag.as_str(), w.import.verify_current))
            .collect()
    }

    #[test]
    fn a_refused_tag_is_verified_again_on_each_check_and_a_trusted_one_is_not() {
        let s = under_policy();
        let policies = [team_policy()];
        let due = plan(&Inputs {
            schedule: Some(Decision::CheckNow {
                next_in: 15 * MINUTE,
            }),
            policies: &policies,
            ..inputs(&s)
        });
        assert_eq!(
            verified(&due),
            [("signed", false), ("refused", true), ("other", false)]
        );
        // between checks nothing is imported for it
        let idle = plan(&Inputs {
            policies: &policies,
            ..inputs(&s)
        });
        assert!(idle.work.is_empty(), "{:?}", idle.work);
    }

    #[test]
    fn changed_policies_verify_the_tags_they_cover_and_the_refused_ones_now() {
        let s = under_policy();
        let policies = [team_policy()];
        let changed = plan(&Inputs {
            policies: &policies,
            policies_changed: true,
            ..inputs(&s)
        });
        assert_eq!(verified(&changed), [("signed", true), ("refused", true)]);
        assert_eq!(
            changed.work[0].import.current_image.as_deref(),
            Some(D1),
            "HEAD first: the current image is what is verified"
        );
        // the policy went: the refused tag is imported again (nothing refuses it now), the
        // others are left alone
        let removed = plan(&Inputs {
            policies: &[],
            policies_changed: true,
            ..inputs(&s)
        });
        assert_eq!(verified(&removed), [("refused", true)]);
        // with a due check as well, each tag is imported once
        let both = plan(&Inputs {
            schedule: Some(Decision::CheckNow {
                next_in: 15 * MINUTE,
            }),
            policies: &policies,
            policies_changed: true,
            ..inputs(&s)
        });
        assert_eq!(
            verified(&both),
            [("signed", true), ("refused", true), ("other", false)]
        );
    }

    // semantics 6: a due check covers every eligible scheduled tag and comes back after the
    // interval; a wait comes back after the wait and checks nothing
    #[test]
    fn test_scheduled_check_plans_eligible_tags() {
        let s = stream(
            vec![
                scheduled("a", "r/a:latest"),
                scheduled("b", "quay.io/r/b:latest"),
                docker("c", "r/c:latest", Some(1)),
            ],
            vec![
                history("a", vec![event("r/a@sha", D1, 1)]),
                history("b", vec![event("quay.io/r/b@sha", D1, 1)]),
                history("c", vec![event("r/c@sha", D1, 1)]),
            ],
        );
        let due = plan(&Inputs {
            schedule: Some(Decision::CheckNow {
                next_in: 15 * MINUTE,
            }),
            ..inputs(&s)
        });
        assert_eq!(tags_of(&due.work), ["a", "b"]);
        assert_eq!(
            due.work[0].import.current_image.as_deref(),
            Some(D1),
            "HEAD first"
        );
        assert_eq!(due.scheduled_tags, Some(2));
        assert_eq!(due.requeue.wait(), Some(15 * MINUTE));

        let waiting = plan(&Inputs {
            schedule: Some(Decision::Wait(MINUTE)),
            ..inputs(&s)
        });
        assert!(waiting.work.is_empty());
        assert_eq!(waiting.scheduled_tags, None);
        assert_eq!(waiting.requeue.wait(), Some(MINUTE));
    }

    #[test]
    fn woken_tags_are_checked_as_scheduled_ones() {
        let s = stream(
            vec![
                scheduled("a", "r/a:latest"),
                docker("b", "r/b:latest", Some(1)),
                scheduled("c", "r/c:latest"),
            ],
            vec![
                history("a", vec![event("r/a@sha", D1, 1)]),
                history("b", vec![event("r/b@sha", D1, 1)]),
                history("c", vec![event("r/c@sha", D1, 1)]),
            ],
        );
        // b is not scheduled, d does not exist: only a is checked
        let woken = ["a".to_string(), "b".to_string(), "d".to_string()];
        let plan = plan(&Inputs {
            woken: &woken,
            ..inputs(&s)
        });
        assert_eq!(tags_of(&plan.work), ["a"]);
        assert!(!plan.defer_woken);
        assert_eq!(plan.requeue.wait(), None);
    }

    #[test]
    fn woken_tags_wait_for_a_budget_unless_a_check_is_due() {
        let s = stream(
            vec![scheduled("a", "r/a:latest")],
            vec![history("a", vec![event("r/a@sha", D1, 1)])],
        );
        let woken = ["a".to_string()];
        let deferred = plan(&Inputs {
            woken: &woken,
            woken_wait: Some(Duration::from_secs(2)),
            schedule: Some(Decision::Wait(MINUTE)),
            ..inputs(&s)
        });
        assert!(deferred.defer_woken);
        assert!(deferred.work.is_empty());
        assert_eq!(deferred.requeue.wait(), Some(Duration::from_secs(2)));

        // a due check pays for them: nothing is deferred, each tag is imported once
        let due = plan(&Inputs {
            woken: &woken,
            woken_wait: Some(Duration::from_secs(2)),
            schedule: Some(Decision::CheckNow { next_in: MINUTE }),
            ..inputs(&s)
        });
        assert!(!due.defer_woken);
        assert_eq!(tags_of(&due.work), ["a"]);
        assert!(check_due(Some(Decision::CheckNow { next_in: MINUTE })));
        assert!(!check_due(Some(Decision::Wait(MINUTE))));
        assert!(!check_due(None));
    }

    #[test]
    fn the_repository_is_planned_until_listed() {
        let mut s = stream(vec![], vec![]);
        s.spec.docker_image_repository = "quay.io/r/all".into();
        let plan = plan(&inputs(&s));
        assert!(!plan.is_empty());
        assert_eq!(
            plan.batch().repository.map(|r| r.from).as_deref(),
            Some("quay.io/r/all")
        );
    }

    #[test]
    fn a_check_draws_on_the_registries_of_its_scheduled_tags() {
        let mut digest = scheduled("d", &format!("r/d@{D1}"));
        digest.generation = Some(1);
        let s = stream(
            vec![
                scheduled("a", "r/a:latest"),
                scheduled("b", "quay.io/r/b:latest"),
                scheduled("c", "docker.io/library/c"),
                docker("x", "elsewhere.example.com/x:1", Some(1)),
                digest,
            ],
            vec![history("d", vec![event(&format!("r/d@{D1}"), D1, 1)])],
        );
        assert_eq!(
            scheduled_sources(&s).collect::<Vec<_>>(),
            ["r/a:latest", "quay.io/r/b:latest", "docker.io/library/c"],
            "an imported digest is no longer checked"
        );
        assert_eq!(
            scheduled_registries(&s),
            ["docker.io", "quay.io"],
            "sorted, each once"
        );
        let woken = ["b".to_string(), "x".to_string(), "gone".to_string()];
        assert_eq!(
            woken_sources(&s, &woken),
            ["quay.io/r/b:latest", "elsewhere.example.com/x:1"]
        );
    }
}
