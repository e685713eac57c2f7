//! The operator's rights, checked at start against the roles it ships with.
//!
//! A missing RBAC rule otherwise shows up minutes later as one failed write among many (a
//! status that never changes, a webhook configuration never written). So before anything
//! runs, every rule of `deploy/rbac.yaml` and `deploy/admission-rbac.yaml` that the enabled
//! parts need is asked of the apiserver as a SelfSubjectAccessReview, and the process stops
//! with the full list of what is missing. The roles are compiled in, so the check cannot drift
//! from the install.
//!
//! An apiserver that cannot answer yet (restarting, unreachable, overloaded) is asked again
//! with backoff instead of ending the process: a replica started during a control-plane
//! restart waits for it, not-ready, rather than crash-looping.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::Client;
use kube::api::{Api, PostParams};
use serde::Deserialize;

/// The roles as installed (`kubectl apply -k deploy/`).
const ROLE_FILES: [(&str, &str); 2] = [
    ("deploy/rbac.yaml", include_str!("../deploy/rbac.yaml")),
    (
        "deploy/admission-rbac.yaml",
        include_str!("../deploy/admission-rbac.yaml"),
    ),
];

/// The roles each part of the operator needs, by `metadata.name`.
const CONTROLLER_ROLE: &str = "imagestream-operator";
const ADMISSION_ROLE: &str = "imagestream-operator-admission";
const LEADER_ROLE: &str = "imagestream-operator-leader";
const TRIGGERS_ROLE: &str = "imagestream-operator-triggers";

/// Reviews in flight at once.
const CONCURRENT_REVIEWS: usize = 8;

/// Why the check failed; [`Error::reason`] is stable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the operator lacks {} right(s) that its roles in deploy/ grant: {}; re-apply them \
         (kubectl apply -k deploy/) or restore the rule",
        .0.len(),
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    Missing(Vec<Right>),
    #[error("reading the compiled-in roles of {0}: {1}")]
    Roles(&'static str, String),
    #[error("asking the apiserver whether the operator may {0}: {1}")]
    Review(Box<Right>, #[source] kube::Error),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Missing(_) => "PermissionsMissing",
            Error::Roles(..) => "RolesUnreadable",
            Error::Review(..) => "PermissionCheckFailed",
        }
    }

    /// The apiserver gave no answer (unreachable, restarting, overloaded): worth asking again.
    /// A refusal, or a 4xx about the review itself, is an answer.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Review(_, e) => unanswered(e),
            Error::Missing(_) | Error::Roles(..) => false,
        }
    }
}

fn unanswered(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code >= 500 || status.code == 429,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// The wait before asking again after `attempt` unanswered checks: 1 s doubling to 16 s.
pub fn retry_delay(attempt: u32) -> Duration {
    Duration::from_secs(1 << attempt.min(4))
}

/// One verb on one resource (or subresource), in a namespace or cluster-wide, perhaps on
/// one named object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Right {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub name: Option<String>,
    /// `None`: every namespace (or a cluster-scoped resource).
    pub namespace: Option<String>,
}

impl std::fmt::Display for Right {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if let Some(sub) = &self.subresource {
            write!(f, "/{sub}")?;
        }
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        match &self.namespace {
            Some(ns) => write!(f, " in namespace {ns}"),
            None => write!(f, " (all namespaces)"),
        }
    }
}

/// Which parts of the operator run, and where.
#[derive(Clone, Debug)]
pub struct Scope {
    /// The operator's own namespace: its Roles are bound there.
    pub namespace: String,
    /// The only namespace watched, if any: the ClusterRole's rights are asked there.
    pub watch_namespace: Option<String>,
    pub webhooks: bool,
    pub leader: bool,
    /// The image change trigger controller runs.
    pub triggers: bool,
}

#[derive(Deserialize)]
struct RoleDocument {
    kind: String,
    metadata: Metadata,
    #[serde(default)]
    rules: Vec<PolicyRule>,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
}

/// Every right the enabled parts need, from the compiled-in roles.
pub fn required(scope: &Scope) -> Result<Vec<Right>, Error> {
    let mut rights = Vec::new();
    for (file, text) in ROLE_FILES {
        let documents: Vec<RoleDocument> =
            serde_saphyr::from_multiple(text).map_err(|e| Error::Roles(file, e.to_string()))?;
        for document in documents {
            let needed = match document.metadata.name.as_str() {
                CONTROLLER_ROLE => true,
                ADMISSION_ROLE => scope.webhooks,
                LEADER_ROLE => scope.leader,
                TRIGGERS_ROLE => scope.triggers,
                _ => false,
            };
            if !needed {
                continue;
            }
            let namespace = match document.kind.as_str() {
                "ClusterRole" => scope.watch_namespace.clone(),
                "Role" => Some(scope.namespace.clone()),
                other => return Err(Error::Roles(file, format!("unexpected kind {other}"))),
            };
            for rule in &document.rules {
                rights.extend(expand(rule, namespace.as_deref()));
            }
        }
    }
    rights.sort();
    rights.dedup();
    Ok(rights)
}

/// A rule as single rights: every group × resource × verb (× name).
fn expand(rule: &PolicyRule, namespace: Option<&str>) -> Vec<Right> {
    let groups = rule.api_groups.clone().unwrap_or_default();
    let resources = rule.resources.clone().unwrap_or_default();
    let names: Vec<Option<String>> = match &rule.resource_names {
        Some(names) if !names.is_empty() => names.iter().cloned().map(Some).collect(),
        _ => vec![None],
    };
    let mut rights = Vec::new();
    for group in &groups {
        for resource in &resources {
            let (resource, subresource) = match resource.split_once('/') {
                Some((r, s)) => (r.to_string(), Some(s.to_string())),
                None => (resource.clone(), None),
            };
            for verb in &rule.verbs {
                for name in &names {
                    rights.push(Right {
                        verb: verb.clone(),
                        group: group.clone(),
                        resource: resource.clone(),
                        subresource: subresource.clone(),
                        name: name.clone(),
                        namespace: namespace.map(str::to_string),
                    });
                }
            }
        }
    }
    rights
}

/// [`check`], asked again with backoff ([`retry_delay`]) while the apiserver gives no
/// answer; returns the first answer, or an error that is not transient.
pub async fn check_until_answered(client: &Client, scope: &Scope) -> Result<(), Error> {
    let mut attempt = 0;
    loop {
        match check(client, scope).await {
            Err(e) if e.is_transient() => {
                let delay = retry_delay(attempt);
                tracing::warn!(
                    reason = e.reason(),
                    error = %e,
                    retry_in = ?delay,
                    "the apiserver did not answer the permission check; asking again"
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Asks the apiserver about every right `scope` needs; `Err(Missing)` lists each refused one.
pub async fn check(client: &Client, scope: &Scope) -> Result<(), Error> {
    let rights = required(scope)?;
    let api = Api::<SelfSubjectAccessReview>::all(client.clone());
    let answers: Vec<(Right, bool)> = futures::stream::iter(rights)
        .map(|right| {
            let api = api.clone();
            async move {
                let review = SelfSubjectAccessReview {
                    spec: SelfSubjectAccessReviewSpec {
                        resource_attributes: Some(ResourceAttributes {
                            verb: Some(right.verb.clone()),
                            group: Some(right.group.clone()),
                            resource: Some(right.resource.clone()),
                            subresource: right.subresource.clone(),
                            name: right.name.clone(),
                            namespace: right.namespace.clone(),
                            ..ResourceAttributes::default()
                        }),
                        ..SelfSubjectAccessReviewSpec::default()
                    },
                    ..SelfSubjectAccessReview::default()
                };
                match api.create(&PostParams::default(), &review).await {
                    Ok(answer) => {
                        let allowed = answer.status.is_some_and(|s| s.allowed);
                        Ok((right, allowed))
                    }
                    Err(e) => Err(Error::Review(Box::new(right), e)),
                }
            }
        })
        .buffer_unordered(CONCURRENT_REVIEWS)
        .try_collect()
        .await?;
    let mut missing: Vec<Right> = answers
        .into_iter()
        .filter(|(_, allowed)| !allowed)
        .map(|(right, _)| right)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort();
    Err(Error::Missing(missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(webhooks: bool, leader: bool) -> Scope {
        Scope {
            namespace: "ops".into(),
            watch_namespace: None,
            webhooks,
            leader,
            triggers: false,
        }
    }

    fn has(rights: &[Right], text: &str) -> bool {
        rights.iter().any(|r| r.to_string() == text)
    }

    #[test]
    fn the_compiled_in_roles_expand_per_part() {
        let controllers = required(&scope(false, false)).unwrap();
        assert!(has(
            &controllers,
            "update imagestreams/status.image.openshift.io (all namespaces)"
        ));
        assert!(has(&controllers, "list pods (all namespaces)"));
        assert!(!controllers.iter().any(|r| r.group == "coordination.k8s.io"));
        assert!(
            !controllers
                .iter()
                .any(|r| r.resource == "subjectaccessreviews")
        );

        let all = required(&scope(true, true)).unwrap();
        assert!(has(
            &all,
            "update leases.coordination.k8s.io \"imagestream-operator\" in namespace ops"
        ));
        assert!(has(
            &all,
            "create leases.coordination.k8s.io in namespace ops"
        ));
        assert!(has(
            &all,
            "get secrets \"imagestream-operator-webhook-ca\" in namespace ops"
        ));
        assert!(has(
            &all,
            "create subjectaccessreviews.authorization.k8s.io (all namespaces)"
        ));
        // the image lookup webhook's index: the watch of every stream
        for verb in ["list", "watch"] {
            assert!(has(
                &all,
                &format!("{verb} imagestreams.image.openshift.io (all namespaces)")
            ));
        }
        // registry notifications are served with the webhooks
        for right in [
            "watch imagereceivers.operator.imagestream.io (all namespaces)",
            "patch imagereceivers/status.operator.imagestream.io (all namespaces)",
            "get leases.coordination.k8s.io \"imagestream-operator\" in namespace ops",
        ] {
            assert!(has(&all, right), "{right}");
            assert!(!has(&controllers, right), "{right}");
        }
        // every controller right is still there, once
        assert!(controllers.iter().all(|r| all.contains(r)));
        let mut sorted = all.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len());
    }

    #[test]
    fn the_trigger_rights_are_needed_only_with_triggers() {
        let without = required(&scope(false, false)).unwrap();
        let with = required(&Scope {
            triggers: true,
            ..scope(false, false)
        })
        .unwrap();
        for right in [
            "patch deployments.apps (all namespaces)",
            "watch cronjobs.batch (all namespaces)",
            "create subjectaccessreviews.authorization.k8s.io (all namespaces)",
        ] {
            assert!(has(&with, right), "{right}");
            assert!(!has(&without, right), "{right}");
        }
        assert!(without.iter().all(|r| with.contains(r)));
    }

    #[test]
    fn a_watched_namespace_scopes_the_cluster_role() {
        let rights = required(&Scope {
            watch_namespace: Some("team".into()),
            ..scope(false, true)
        })
        .unwrap();
        assert!(has(
            &rights,
            "get imagestreams.image.openshift.io in namespace team"
        ));
        assert!(has(
            &rights,
            "get leases.coordination.k8s.io \"imagestream-operator\" in namespace ops"
        ));
    }

    #[test]
    fn only_an_apiserver_that_gave_no_answer_is_asked_again() {
        let right = || Box::new(has_right());
        let api = |code: u16| {
            Error::Review(
                right(),
                kube::Error::Api(Box::new(
                    kube::core::Status::failure("x", "y").with_code(code),
                )),
            )
        };
        for code in [500, 503, 504, 429] {
            assert!(api(code).is_transient(), "{code}");
        }
        for code in [400, 401, 403, 404, 422] {
            assert!(!api(code).is_transient(), "{code}");
        }
        let unreachable = Error::Review(right(), kube::Error::Service("connection refused".into()));
        assert!(unreachable.is_transient());
        assert!(!Error::Missing(vec![has_right()]).is_transient());
        assert!(!Error::Roles("deploy/rbac.yaml", "bad".into()).is_transient());
        let delays: Vec<u64> = (0..7).map(|a| retry_delay(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 16, 16]);
    }

    fn has_right() -> Right {
        Right {
            verb: "get".into(),
            group: String::new(),
            resource: "secrets".into(),
            subresource: None,
            name: None,
            namespace: Some("ns".into()),
        }
    }

    #[test]
    fn missing_rights_are_listed_with_a_stable_reason() {
        let rights = required(&scope(false, false)).unwrap();
        let missing: Vec<Right> = rights
            .into_iter()
            .filter(|r| r.resource == "imagestreams" && r.subresource.as_deref() == Some("status"))
            .collect();
        let e = Error::Missing(missing);
        assert_eq!(e.reason(), "PermissionsMissing");
        assert_eq!(
            e.to_string(),
            "the operator lacks 2 right(s) that its roles in deploy/ grant: patch \
             imagestreams/status.image.openshift.io (all namespaces), update \
             imagestreams/status.image.openshift.io (all namespaces); re-apply them (kubectl \
             apply -k deploy/) or restore the rule"
        );
    }
}
