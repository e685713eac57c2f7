//! What the operator keeps of the stored views (ImageStreamTag, ImageTag, ImageStreamImage,
//! ImageStreamLayers), one index per kind, fed view by view from a metadata watch: only what
//! a sync of a stream's views reads (resourceVersion, uid, hash, stream, client annotations),
//! by namespace and name, with each stream's view names. A stream of 5 tags has 16 views or
//! more, and their full metadata was most of the operator's memory at scale
//! (`benches/cache_memory.rs`, issue 8). [`ViewIndex::put`] and [`ViewIndex::remove`] say
//! whether a view changed what a sync compares, so a change nobody else made brings nothing
//! back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::views;
use crate::names;

/// What a sync reads of a stored view; the rest of its metadata is never read. Each view
/// of the cluster has one, so the strings are boxed (no spare capacity) and client
/// annotations take room only on views that have some.
#[derive(Clone, Debug, PartialEq)]
struct Stored {
    stream: Option<Arc<str>>,
    resource_version: Option<Box<str>>,
    uid: Option<Box<str>>,
    hash: Option<Box<str>>,
    client: Option<Box<[(String, String)]>>,
}

impl Stored {
    fn of(meta: &ObjectMeta, stream: Option<Arc<str>>) -> Stored {
        let client: Vec<(String, String)> = meta
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| views::is_client_annotation(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Stored {
            stream,
            resource_version: meta.resource_version.as_deref().map(Box::from),
            uid: meta.uid.as_deref().map(Box::from),
            hash: views::stored_hash(meta).map(Box::from),
            client: (!client.is_empty()).then(|| client.into_boxed_slice()),
        }
    }

    /// The stored metadata a write or a delete reads: name, namespace, resourceVersion,
    /// uid, and the stream, hash and client annotations.
    fn meta(&self, namespace: &str, name: &str) -> ObjectMeta {
        let mut annotations: BTreeMap<String, String> =
            self.client.iter().flatten().cloned().collect();
        if let Some(stream) = &self.stream {
            annotations.insert(names::ANNOTATION_STREAM.into(), stream.to_string());
        }
        if let Some(hash) = &self.hash {
            annotations.insert(views::ANNOTATION_VIEW_HASH.into(), hash.to_string());
        }
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            resource_version: self.resource_version.as_deref().map(Into::into),
            uid: self.uid.as_deref().map(Into::into),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }
    }
}

/// The stored views of one kind: by namespace, by name, with each stream's view names.
/// Public for `benches/cache_memory.rs`, which measures it.
#[derive(Debug, Default, PartialEq)]
pub struct ViewIndex(HashMap<Box<str>, Namespaced>);

#[derive(Debug, Default, PartialEq)]
struct Namespaced {
    views: HashMap<Arc<str>, Stored>,
    by_stream: HashMap<Arc<str>, BTreeSet<Arc<str>>>,
}

impl ViewIndex {
    /// Stores (or replaces) the view `meta` describes. Returns whether that changes what a
    /// sync compares: the view is new, or names another hash or stream.
    pub fn put(&mut self, meta: &ObjectMeta) -> bool {
        let (Some(namespace), Some(name)) = (&meta.namespace, &meta.name) else {
            return false;
        };
        let before = self
            .0
            .get(namespace.as_str())
            .and_then(|ns| ns.views.get(name.as_str()))
            .map(|v| (v.hash.clone(), v.stream.clone()));
        self.remove(namespace, name);
        let ns = self.0.entry(namespace.as_str().into()).or_default();
        let name: Arc<str> = name.as_str().into();
        // one copy of the stream name for all its views
        let stream = views::stream_of(meta).map(|stream| {
            let key = match ns.by_stream.get_key_value(stream) {
                Some((key, _)) => key.clone(),
                None => Arc::from(stream),
            };
            let names = ns.by_stream.entry(key.clone()).or_default();
            names.insert(name.clone());
            key
        });
        let stored = Stored::of(meta, stream);
        let changed =
            before.is_none_or(|(hash, stream)| hash != stored.hash || stream != stored.stream);
        ns.views.insert(name, stored);
        changed
    }

    /// Forgets the view `namespace/name`. Returns whether it was stored.
    pub fn remove(&mut self, namespace: &str, name: &str) -> bool {
        let Some(ns) = self.0.get_mut(namespace) else {
            return false;
        };
        let removed = ns.views.remove(name);
        if let Some(stream) = removed.as_ref().and_then(|v| v.stream.clone())
            && let Some(names) = ns.by_stream.get_mut(&stream)
        {
            names.remove(name);
            if names.is_empty() {
                ns.by_stream.remove(&stream);
            }
        }
        if ns.views.is_empty() {
            self.0.remove(namespace);
        }
        removed.is_some()
    }

    /// What is kept of the view `namespace/name`, as metadata.
    pub fn get(&self, namespace: &str, name: &str) -> Option<ObjectMeta> {
        let stored = self.0.get(namespace)?.views.get(name)?;
        Some(stored.meta(namespace, name))
    }

    /// What is kept of the views of stream `namespace/stream`.
    pub fn of_stream(&self, namespace: &str, stream: &str) -> Vec<ObjectMeta> {
        let Some(ns) = self.0.get(namespace) else {
            return Vec::new();
        };
        ns.by_stream
            .get(stream)
            .into_iter()
            .flatten()
            .filter_map(|name| Some(ns.views.get(name)?.meta(namespace, name)))
            .collect()
    }

    /// Every stream (`namespace`, `name`) some view names.
    pub fn streams(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .flat_map(|(namespace, ns)| {
                ns.by_stream
                    .keys()
                    .map(|stream| (namespace.to_string(), stream.to_string()))
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A view's metadata: its hash is `hash-<rv>`, with a tag annotation and a long
    /// annotation from the stream that the index does not keep.
    pub(crate) fn meta(namespace: &str, name: &str, stream: Option<&str>, rv: &str) -> ObjectMeta {
        let mut annotations = BTreeMap::from([
            (
                views::ANNOTATION_VIEW_HASH.to_string(),
                format!("hash-{rv}"),
            ),
            (names::ANNOTATION_TAG.to_string(), "latest".to_string()),
            ("from-the-stream".to_string(), "x".repeat(100)),
        ]);
        if let Some(stream) = stream {
            annotations.insert(names::ANNOTATION_STREAM.into(), stream.into());
        }
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            resource_version: Some(rv.into()),
            uid: Some(format!("uid-{name}")),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }
    }

    /// `meta` at another resourceVersion, with the same hash.
    pub(crate) fn at(mut meta: ObjectMeta, resource_version: &str) -> ObjectMeta {
        meta.resource_version = Some(resource_version.into());
        meta
    }

    #[test]
    fn keeps_what_a_sync_reads() {
        let mut index = ViewIndex::default();
        let mut stored = meta("ns", "ruby.latest", Some("ruby"), "7");
        let client = "kubectl.kubernetes.io/last-applied-configuration";
        stored
            .annotations
            .get_or_insert_default()
            .insert(client.into(), "{}".into());
        index.put(&stored);

        let got = index.get("ns", "ruby.latest").unwrap();
        assert_eq!(got.name.as_deref(), Some("ruby.latest"));
        assert_eq!(got.namespace.as_deref(), Some("ns"));
        assert_eq!(got.resource_version.as_deref(), Some("7"));
        assert_eq!(got.uid.as_deref(), Some("uid-ruby.latest"));
        assert_eq!(views::stored_hash(&got), Some("hash-7"));
        assert_eq!(views::stream_of(&got), Some("ruby"));
        let annotations = got.annotations.unwrap();
        assert_eq!(annotations.get(client).map(String::as_str), Some("{}"));
        assert_eq!(annotations.len(), 3, "{annotations:?}");
        assert_eq!(index.get("ns", "ruby.other"), None);
        assert_eq!(index.get("other", "ruby.latest"), None);

        // no client annotations: none stored
        index.put(&meta("ns", "ruby.latest", Some("ruby"), "8"));
        let views = &index.0["ns"].views;
        assert_eq!(views["ruby.latest"].client, None);
        assert_eq!(views["ruby.latest"].hash.as_deref(), Some("hash-8"));
    }

    #[test]
    fn views_by_stream() {
        let mut index = ViewIndex::default();
        index.put(&meta("a", "ruby.latest", Some("ruby"), "1"));
        index.put(&meta("a", "ruby.old", Some("ruby"), "2"));
        index.put(&meta("a", "php.latest", Some("php"), "3"));
        index.put(&meta("b", "ruby.latest", Some("ruby"), "4"));
        index.put(&meta("a", "loose", None, "5"));

        assert_eq!(
            names(&index.of_stream("a", "ruby")),
            ["ruby.latest", "ruby.old"]
        );
        assert_eq!(names(&index.of_stream("b", "ruby")), ["ruby.latest"]);
        assert_eq!(names(&index.of_stream("a", "php")), ["php.latest"]);
        assert!(index.of_stream("c", "ruby").is_empty());
        // a view without a stream is found by name, and belongs to no stream
        assert!(index.get("a", "loose").is_some());
        let mut streams = index.streams();
        streams.sort();
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            streams,
            [pair("a", "php"), pair("a", "ruby"), pair("b", "ruby")]
        );

        // a view that changes stream moves
        index.put(&meta("a", "ruby.old", Some("php"), "6"));
        assert_eq!(names(&index.of_stream("a", "ruby")), ["ruby.latest"]);
        assert_eq!(
            names(&index.of_stream("a", "php")),
            ["php.latest", "ruby.old"]
        );

        // deletes leave nothing behind
        for (ns, name) in [
            ("a", "ruby.latest"),
            ("a", "ruby.old"),
            ("a", "php.latest"),
            ("b", "ruby.latest"),
            ("a", "loose"),
            ("a", "never-stored"),
        ] {
            index.remove(ns, name);
        }
        assert!(index.of_stream("a", "php").is_empty());
        assert_eq!(index, ViewIndex::default());
    }

    /// What a sync compares: whether a view is there, its hash and its stream; not its
    /// resourceVersion, nor annotations a client added.
    #[test]
    fn a_view_changes_when_its_hash_or_stream_does() {
        let mut index = ViewIndex::default();
        let view = meta("ns", "ruby.latest", Some("ruby"), "1");
        assert!(index.put(&view), "new");
        assert!(!index.put(&view), "the same again");
        let mut annotated = at(view.clone(), "2");
        annotated.annotations.get_or_insert_default().insert(
            "kubectl.kubernetes.io/last-applied-configuration".into(),
            "{}".into(),
        );
        assert!(!index.put(&annotated), "another version with the same hash");
        assert!(
            index.put(&meta("ns", "ruby.latest", Some("ruby"), "3")),
            "another hash"
        );
        assert!(
            index.put(&meta("ns", "ruby.latest", Some("php"), "3")),
            "another stream"
        );
        assert!(index.remove("ns", "ruby.latest"));
        assert!(!index.remove("ns", "ruby.latest"), "gone already");
    }

    fn names(metas: &[ObjectMeta]) -> Vec<&str> {
        let mut names: Vec<&str> = metas.iter().filter_map(|m| m.name.as_deref()).collect();
        names.sort();
        names
    }
}
