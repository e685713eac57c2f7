//! Which Events are repeats, kept small. An Event published again for the same object with
//! the same type, action, reason and related object within [`TTL`] is not a new Event: the
//! one already written counts it (its `series`), as client-go's and kube's recorders do.
//!
//! Why our own: kube's recorder keeps every Event it published in the last six minutes, in
//! full, and scans them all on each publish. A first import of 10,000 streams publishes one
//! Event per tag, so that memory was tens of MiB (a fifth of the operator's at 10,000 streams)
//! and each publish walked thousands of entries. Here an entry is the key's hash, the
//! stored Event's name, its count and when it was last seen, and expired entries are
//! dropped in one sweep once a TTL has passed since the last.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use jiff::{SignedDuration, Timestamp};

/// How long a published Event gathers its repeats (kube's and client-go's figure).
pub const TTL: SignedDuration = SignedDuration::from_mins(6);

/// What makes two Events the same: kube's recorder key (the note is not part of it).
#[derive(Hash)]
pub struct Key<'a> {
    pub warning: bool,
    pub action: &'a str,
    pub reason: &'a str,
    /// kind, namespace, name and uid of the object the Event is about
    pub regarding: [Option<&'a str>; 4],
    /// the same of the related object, if any
    pub related: Option<[Option<&'a str>; 4]>,
}

impl Key<'_> {
    fn hash(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        Hash::hash(self, &mut hasher);
        hasher.finish()
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    namespace: Box<str>,
    name: Box<str>,
    count: i32,
    last: Timestamp,
}

/// What to write for an Event.
#[derive(Debug, PartialEq)]
pub enum Write {
    /// A new Event.
    Create,
    /// A repeat: the stored Event `namespace/name` now counts `count`.
    Repeat {
        namespace: String,
        name: String,
        count: i32,
    },
}

/// The Events published within the last [`TTL`], by key.
#[derive(Debug, Default)]
pub struct Series {
    entries: HashMap<u64, Entry>,
    swept: Option<Timestamp>,
}

impl Series {
    /// What publishing the Event `key` at `now` writes.
    pub fn write(&mut self, key: &Key<'_>, now: Timestamp) -> Write {
        self.sweep(now);
        match self.entries.get(&key.hash()) {
            Some(e) if e.last + TTL > now => Write::Repeat {
                namespace: e.namespace.to_string(),
                name: e.name.to_string(),
                count: e.count + 1,
            },
            _ => Write::Create,
        }
    }

    /// Remembers what was written for `key` at `now`: the Event `namespace/name`, now
    /// counting `count` (1 when created).
    pub fn written(
        &mut self,
        key: &Key<'_>,
        namespace: &str,
        name: &str,
        count: i32,
        now: Timestamp,
    ) {
        self.entries.insert(
            key.hash(),
            Entry {
                namespace: namespace.into(),
                name: name.into(),
                count,
                last: now,
            },
        );
    }

    /// Entries kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops expired entries at most once per TTL: an entry lives at most two TTLs.
    fn sweep(&mut self, now: Timestamp) {
        if self.swept.is_some_and(|at| at + TTL > now) {
            return;
        }
        self.swept = Some(now);
        self.entries.retain(|_, e| e.last + TTL > now);
        self.entries.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(reason: &'a str, name: &'a str, related: Option<&'a str>) -> Key<'a> {
        Key {
            warning: false,
            action: "Import",
            reason,
            regarding: [Some("ImageStream"), Some("ns"), Some(name), Some("uid-1")],
            related: related.map(|r| [Some("ImageStreamTag"), Some("ns"), Some(r), None]),
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("timestamp")
    }

    #[test]
    fn a_repeat_within_the_ttl_counts_on_the_stored_event() {
        let mut series = Series::default();
        let k = key("Imported", "app", Some("app:latest"));
        assert_eq!(series.write(&k, at(0)), Write::Create);
        series.written(&k, "ns", "app.1", 1, at(0));
        assert_eq!(
            series.write(&k, at(10)),
            Write::Repeat {
                namespace: "ns".into(),
                name: "app.1".into(),
                count: 2
            }
        );
        series.written(&k, "ns", "app.1", 2, at(10));
        // the TTL runs from the last repeat
        assert_eq!(
            series.write(&k, at(10 + 5 * 60)),
            Write::Repeat {
                namespace: "ns".into(),
                name: "app.1".into(),
                count: 3
            }
        );
    }

    #[test]
    fn after_the_ttl_the_same_event_is_a_new_one() {
        let mut series = Series::default();
        let k = key("Imported", "app", None);
        series.written(&k, "ns", "app.1", 1, at(0));
        assert_eq!(series.write(&k, at(6 * 60)), Write::Create);
    }

    #[test]
    fn another_related_object_reason_or_object_is_another_event() {
        let mut series = Series::default();
        series.written(
            &key("Imported", "app", Some("app:a")),
            "ns",
            "app.1",
            1,
            at(0),
        );
        assert_eq!(
            series.write(&key("Imported", "app", Some("app:b")), at(1)),
            Write::Create
        );
        assert_eq!(
            series.write(&key("Imported", "app", None), at(1)),
            Write::Create
        );
        assert_eq!(
            series.write(&key("Failed", "app", Some("app:a")), at(1)),
            Write::Create
        );
        assert_eq!(
            series.write(&key("Imported", "web", Some("app:a")), at(1)),
            Write::Create
        );
        let mut warning = key("Imported", "app", Some("app:a"));
        warning.warning = true;
        assert_eq!(series.write(&warning, at(1)), Write::Create);
    }

    #[test]
    fn expired_entries_are_swept_once_per_ttl() {
        let mut series = Series::default();
        let names: Vec<String> = (0..1000).map(|i| format!("s{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            let k = key("Imported", name, None);
            assert_eq!(series.write(&k, at(i as i64 % 60)), Write::Create);
            series.written(&k, "ns", name, 1, at(i as i64 % 60));
        }
        assert_eq!(series.len(), 1000);
        // within a TTL of the last sweep nothing is dropped, expired or not
        let late = key("Imported", "late", None);
        series.write(&late, at(6 * 60 - 1));
        assert_eq!(series.len(), 1000);
        // a TTL after it, everything older than a TTL goes
        series.written(&late, "ns", "late", 1, at(6 * 60 - 1));
        series.write(&late, at(6 * 60 + 61));
        assert_eq!(series.len(), 1, "only the late Event is kept");
    }
}
