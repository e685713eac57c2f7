//! Which stream tags a push wakes, decided without IO.
//!
//! A push wakes a spec tag when all of these hold:
//!
//! * the stream's namespace is one the receiver may wake ([`allowed`]): its own, or, for a
//!   receiver in the operator's namespace, those it lists (`*` for all);
//! * the tag is due for scheduled checks ([`crate::stream::sync::scheduled_eligible`]:
//!   importable, `importPolicy.scheduled`, a digest reference only until it imported).
//!   OpenShift re-imports a tag on its own only when it is scheduled; a tag without it is
//!   imported once and then only when a user asks. A notification is that tag's next
//!   scheduled check brought forward, so tags that are not scheduled are not woken;
//! * its `from` names the push's registry and repository (Docker Hub's aliases and
//!   `library/` defaulting applied on both sides), and the pushed tag, or the pushed digest
//!   for a tag that pulls by digest.
//!
//! [`SourceIndex`] finds the streams that pull from a repository without looking at every
//! stream, fed by the stream watch.

use std::collections::{BTreeSet, HashMap};

use crate::api::image_stream::ImageStream;
use crate::reference::{DockerImageReference, is_registry_docker_hub};
use crate::stream::sync::scheduled_eligible;

use super::payload::Push;

/// A registry and repository, as both a pull spec and a push are reduced to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source {
    /// Lower case; Docker Hub's names are all `docker.io`.
    pub registry: String,
    /// With Docker Hub's `library/` for single-component names.
    pub repository: String,
}

fn normalise(reference: &DockerImageReference) -> Source {
    let defaulted = reference.docker_client_defaults();
    let registry = defaulted.registry.to_ascii_lowercase();
    let registry = if is_registry_docker_hub(&registry) {
        "docker.io".to_string()
    } else {
        registry
    };
    Source {
        registry,
        repository: defaulted.repository_name(),
    }
}

/// The source of a pull spec, with its tag (`latest` when it names neither tag nor digest)
/// and digest.
pub fn spec_source(from: &str) -> Option<(Source, String, String)> {
    let parsed = DockerImageReference::parse(from).ok()?;
    if parsed.name.is_empty() {
        return None;
    }
    let tag = if parsed.tag.is_empty() && parsed.id.is_empty() {
        "latest".to_string()
    } else {
        parsed.tag.clone()
    };
    Some((normalise(&parsed), tag, parsed.id.clone()))
}

/// The source a push names; `registry` (the receiver's `spec.registry`) replaces the
/// payload's host. `None` when no registry is known.
pub fn push_source(push: &Push, registry: Option<&str>) -> Option<Source> {
    let host = registry.or(push.registry.as_deref())?;
    let parsed = DockerImageReference::parse(&format!("{host}/{}", push.repository)).ok()?;
    Some(normalise(&parsed))
}

/// Which namespaces a receiver may wake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowed {
    All,
    Only(BTreeSet<String>),
}

impl Allowed {
    pub fn contains(&self, namespace: &str) -> bool {
        match self {
            Allowed::All => true,
            Allowed::Only(set) => set.contains(namespace),
        }
    }

    /// As listed in the receiver's status.
    pub fn to_list(&self) -> Vec<String> {
        match self {
            Allowed::All => vec!["*".to_string()],
            Allowed::Only(set) => set.iter().cloned().collect(),
        }
    }
}

/// The namespaces a receiver in `namespace` listing `listed` may wake, and the entries it
/// may not have. Only receivers in the operator's namespace (whose objects only its
/// administrators write) may reach into other namespaces: a tenant's receiver could
/// otherwise spend another tenant's registry quota and credentials.
pub fn allowed(
    namespace: &str,
    operator_namespace: &str,
    listed: Option<&[String]>,
) -> (Allowed, Vec<String>) {
    let listed: Vec<String> = match listed {
        None | Some([]) => return (Allowed::Only([namespace.to_string()].into()), Vec::new()),
        Some(list) => list.iter().map(|n| n.trim().to_string()).collect(),
    };
    if namespace == operator_namespace {
        if listed.iter().any(|n| n == "*") {
            return (Allowed::All, Vec::new());
        }
        return (Allowed::Only(listed.into_iter().collect()), Vec::new());
    }
    let (own, refused): (Vec<String>, Vec<String>) =
        listed.into_iter().partition(|n| n == namespace);
    let allowed = if own.is_empty() {
        Allowed::Only(BTreeSet::new())
    } else {
        Allowed::Only([namespace.to_string()].into())
    };
    (allowed, refused)
}

/// The spec tags of `stream` that `push` (from `source`) wakes; the namespace is the
/// caller's to check.
pub fn wakes(stream: &ImageStream, source: &Source, push: &Push) -> Vec<String> {
    stream
        .spec
        .tags
        .iter()
        .filter(|tag| scheduled_eligible(stream, tag))
        .filter(|tag| {
            let Some((from, tag_name, digest)) =
                tag.from.as_ref().and_then(|f| spec_source(&f.name))
            else {
                return false;
            };
            if from != *source {
                return false;
            }
            let by_tag = !tag_name.is_empty() && push.tag.as_deref() == Some(tag_name.as_str());
            let by_digest = !digest.is_empty() && push.digest.as_deref() == Some(digest.as_str());
            by_tag || by_digest
        })
        .map(|tag| tag.name.clone())
        .collect()
}

/// `namespace/name` of a stream.
pub type StreamKey = (String, String);

/// The streams that pull from each source, kept from the stream watch.
#[derive(Debug, Default)]
pub struct SourceIndex {
    by_source: HashMap<Source, BTreeSet<StreamKey>>,
    by_stream: HashMap<StreamKey, Vec<Source>>,
}

impl SourceIndex {
    /// Records (or replaces) what `stream`'s spec tags pull from.
    pub fn apply(&mut self, stream: &ImageStream) {
        let key = key_of(stream);
        self.remove(&key.0, &key.1);
        let mut sources: Vec<Source> = stream
            .spec
            .tags
            .iter()
            .filter_map(|t| spec_source(&t.from.as_ref()?.name).map(|(s, _, _)| s))
            .collect();
        sources.sort();
        sources.dedup();
        for source in &sources {
            self.by_source
                .entry(source.clone())
                .or_default()
                .insert(key.clone());
        }
        if !sources.is_empty() {
            self.by_stream.insert(key, sources);
        }
    }

    pub fn remove(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        for source in self.by_stream.remove(&key).unwrap_or_default() {
            if let Some(streams) = self.by_source.get_mut(&source) {
                streams.remove(&key);
                if streams.is_empty() {
                    self.by_source.remove(&source);
                }
            }
        }
    }

    /// Streams with a tag that pulls from `source`.
    pub fn streams(&self, source: &Source) -> Vec<StreamKey> {
        self.by_source
            .get(source)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.by_stream.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_stream.is_empty()
    }
}

fn key_of(stream: &ImageStream) -> StreamKey {
    (
        stream.metadata.namespace.clone().unwrap_or_default(),
        stream.metadata.name.clone().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(namespace: &str, name: &str, tags: serde_json::Value) -> ImageStream {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"tags": tags},
        }))
        .unwrap()
    }

    fn scheduled(name: &str, from: &str) -> serde_json::Value {
        serde_json::json!({"name": name, "generation": 1, "importPolicy": {"scheduled": true},
            "from": {"kind": "DockerImage", "name": from}})
    }

    fn push(registry: &str, repository: &str, tag: Option<&str>, digest: Option<&str>) -> Push {
        Push {
            registry: Some(registry.into()),
            repository: repository.into(),
            tag: tag.map(Into::into),
            digest: digest.map(Into::into),
        }
    }

    const DIGEST: &str = "sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8";

    #[test]
    fn a_push_wakes_the_scheduled_tags_that_pull_that_repository_and_tag() {
        let s = stream(
            "team",
            "app",
            serde_json::json!([
                scheduled("latest", "registry.example.com:5000/team/app"),
                scheduled("v1", "registry.example.com:5000/team/app:v1"),
                scheduled("other", "registry.example.com:5000/team/other:v1"),
                scheduled("pinned", &format!("registry.example.com:5000/team/app@{DIGEST}")),
                // not scheduled: imported once, then only when a user asks
                {"name": "manual", "generation": 1,
                 "from": {"kind": "DockerImage", "name": "registry.example.com:5000/team/app:v1"}},
                // follows another tag: resolved, never imported
                {"name": "follow", "generation": 1, "importPolicy": {"scheduled": true},
                 "from": {"kind": "ImageStreamTag", "name": "app:v1"}},
            ]),
        );
        let p = push(
            "registry.example.com:5000",
            "team/app",
            Some("v1"),
            Some(DIGEST),
        );
        let source = push_source(&p, None).unwrap();
        assert_eq!(wakes(&s, &source, &p), ["v1", "pinned"]);
        let p = push(
            "REGISTRY.example.com:5000",
            "team/app",
            Some("latest"),
            None,
        );
        assert_eq!(wakes(&s, &push_source(&p, None).unwrap(), &p), ["latest"]);
        // another port is another registry; a digest-only push wakes digest references only
        let p = push("registry.example.com", "team/app", Some("v1"), None);
        assert!(wakes(&s, &push_source(&p, None).unwrap(), &p).is_empty());
        let p = push("registry.example.com:5000", "team/app", None, Some(DIGEST));
        assert_eq!(wakes(&s, &push_source(&p, None).unwrap(), &p), ["pinned"]);
    }

    #[test]
    fn docker_hub_names_and_the_receiver_registry_override() {
        let s = stream(
            "ns",
            "hub",
            serde_json::json!([
                scheduled("nginx", "nginx:1.27"),
                scheduled("mine", "index.docker.io/me/app:v1"),
            ]),
        );
        let p = push("docker.io", "library/nginx", Some("1.27"), None);
        assert_eq!(wakes(&s, &push_source(&p, None).unwrap(), &p), ["nginx"]);
        let p = push("registry-1.docker.io", "nginx", Some("1.27"), None);
        assert_eq!(wakes(&s, &push_source(&p, None).unwrap(), &p), ["nginx"]);
        let p = push("docker.io", "me/app", Some("v1"), None);
        assert_eq!(wakes(&s, &push_source(&p, None).unwrap(), &p), ["mine"]);
        // a registry known under another name inside the cluster: the receiver says which
        let p = push("10.0.0.5:5000", "me/app", Some("v1"), None);
        let source = push_source(&p, Some("docker.io")).unwrap();
        assert_eq!(wakes(&s, &source, &p), ["mine"]);
        let unknown = Push {
            registry: None,
            ..p.clone()
        };
        assert_eq!(push_source(&unknown, None), None);
    }

    #[test]
    fn a_metadata_service_host_selects_nothing() {
        let s = stream(
            "ns",
            "a",
            serde_json::json!([scheduled("t", "quay.io/latest/meta-data:iam")]),
        );
        let p = push("169.254.169.254", "latest/meta-data", Some("iam"), None);
        assert!(wakes(&s, &push_source(&p, None).unwrap(), &p).is_empty());
    }

    #[test]
    fn only_receivers_in_the_operator_namespace_reach_other_namespaces() {
        let op = "imagestream-operator";
        let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            allowed("team-a", op, None),
            (Allowed::Only(["team-a".to_string()].into()), vec![])
        );
        let (a, refused) = allowed("team-a", op, Some(&list(&["team-a", "team-b", "*"])));
        assert_eq!(a, Allowed::Only(["team-a".to_string()].into()));
        assert_eq!(refused, ["team-b", "*"]);
        assert!(a.contains("team-a") && !a.contains("team-b"));
        // listing only others leaves a tenant's receiver waking nothing
        let (a, refused) = allowed("team-a", op, Some(&list(&["team-b"])));
        assert_eq!((a.to_list(), refused), (vec![], vec!["team-b".to_string()]));
        let (a, _) = allowed(op, op, Some(&list(&["team-a", "team-b"])));
        assert!(a.contains("team-b") && !a.contains(op));
        let (a, _) = allowed(op, op, Some(&list(&["*"])));
        assert_eq!(a, Allowed::All);
        assert_eq!(a.to_list(), ["*"]);
    }

    #[test]
    fn the_index_follows_the_streams() {
        let mut index = SourceIndex::default();
        let a = stream(
            "ns",
            "a",
            serde_json::json!([scheduled("t", "quay.io/x/app:1")]),
        );
        let b = stream(
            "ns",
            "b",
            serde_json::json!([scheduled("t", "quay.io/x/app:2"), scheduled("u", "nginx")]),
        );
        index.apply(&a);
        index.apply(&b);
        let app = Source {
            registry: "quay.io".into(),
            repository: "x/app".into(),
        };
        let nginx = Source {
            registry: "docker.io".into(),
            repository: "library/nginx".into(),
        };
        let key = |n: &str| ("ns".to_string(), n.to_string());
        assert_eq!(index.streams(&app), [key("a"), key("b")]);
        assert_eq!(index.streams(&nginx), [key("b")]);
        // b no longer pulls from quay.io
        index.apply(&stream(
            "ns",
            "b",
            serde_json::json!([scheduled("u", "nginx")]),
        ));
        assert_eq!(index.streams(&app), [key("a")]);
        index.remove("ns", "a");
        assert!(index.streams(&app).is_empty());
        assert_eq!(index.len(), 1);
        index.remove("ns", "b");
        assert!(index.is_empty() && index.by_source.is_empty());
    }
}
