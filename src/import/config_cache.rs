//! [`ConfigCache`]: image config blobs by digest, so a config is fetched once per process.
//!
//! Why: Images are cached by manifest digest (a known Image is never fetched again), but two
//! manifests can share one config (the same image pushed as Docker schema2 and as OCI, or
//! under manifests that differ only in annotations), and each would cost a config GET. A
//! config is named by its digest and the source verified the bytes against it, so the bytes
//! can serve any later import, whatever repository or credential asks.
//!
//! Bounded like the registry client cache: at most `max_entries` configs and `max_bytes` in
//! all, least recently used first out; a config larger than a quarter of the budget is not
//! kept (one such config would push out hundreds of ordinary ones).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

/// Default budget: 16 MiB (configs are typically 2 to 20 KiB, so thousands fit).
pub const DEFAULT_MAX_BYTES: usize = 16 << 20;
/// Default number of configs kept.
pub const DEFAULT_MAX_ENTRIES: usize = 4096;

/// Config blobs by digest, bounded, least recently used first out. Cheap to share.
pub struct ConfigCache {
    max_bytes: usize,
    max_entries: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// digest → (bytes, tick of last use)
    entries: HashMap<String, (Arc<[u8]>, u64)>,
    /// tick of last use → digest: the least recently used first
    order: BTreeMap<u64, String>,
    bytes: usize,
    tick: u64,
}

impl Default for ConfigCache {
    fn default() -> Self {
        ConfigCache::new(DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES)
    }
}

impl std::fmt::Debug for ConfigCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("ConfigCache")
            .field("max_bytes", &self.max_bytes)
            .field("max_entries", &self.max_entries)
            .field("len", &inner.entries.len())
            .field("bytes", &inner.bytes)
            .finish()
    }
}

impl ConfigCache {
    pub fn new(max_bytes: usize, max_entries: usize) -> ConfigCache {
        ConfigCache {
            max_bytes,
            max_entries,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The config with `digest`, if kept (it becomes the most recently used).
    pub fn get(&self, digest: &str) -> Option<Arc<[u8]>> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.tick += 1;
        let tick = inner.tick;
        let (bytes, last) = inner.entries.get_mut(digest)?;
        let bytes = bytes.clone();
        let before = std::mem::replace(last, tick);
        inner.order.remove(&before);
        inner.order.insert(tick, digest.to_string());
        Some(bytes)
    }

    /// Keeps `bytes` as the config with `digest` (verified by the caller's source), then
    /// drops the least recently used configs beyond the bounds.
    pub fn put(&self, digest: &str, bytes: &[u8]) {
        if bytes.len() > self.max_bytes / 4 || self.max_entries == 0 {
            return;
        }
        let mut guard = self.lock();
        let inner = &mut *guard;
        if inner.entries.contains_key(digest) {
            return;
        }
        inner.tick += 1;
        let tick = inner.tick;
        inner
            .entries
            .insert(digest.to_string(), (Arc::from(bytes), tick));
        inner.order.insert(tick, digest.to_string());
        inner.bytes += bytes.len();
        while inner.entries.len() > self.max_entries || inner.bytes > self.max_bytes {
            let Some((_, oldest)) = inner.order.pop_first() else {
                break;
            };
            if let Some((gone, _)) = inner.entries.remove(&oldest) {
                inner.bytes -= gone.len();
            }
        }
    }

    /// Configs kept.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes kept.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_kept_by_digest() {
        let cache = ConfigCache::new(1 << 20, 10);
        assert!(cache.get("sha256:a").is_none());
        cache.put("sha256:a", b"{\"os\":\"linux\"}");
        assert_eq!(
            cache.get("sha256:a").as_deref(),
            Some(&b"{\"os\":\"linux\"}"[..])
        );
        assert!(cache.get("sha256:b").is_none());
        // a second put of the same digest keeps one copy
        cache.put("sha256:a", b"{\"os\":\"linux\"}");
        assert_eq!((cache.len(), cache.bytes()), (1, 14));
    }

    #[test]
    fn the_least_recently_used_goes_first_beyond_the_entry_bound() {
        let cache = ConfigCache::new(1 << 20, 2);
        cache.put("a", b"1");
        cache.put("b", b"2");
        assert!(cache.get("a").is_some()); // b is now the least recently used
        cache.put("c", b"3");
        assert_eq!(cache.len(), 2);
        assert!(cache.get("b").is_none(), "b was evicted");
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
    }

    #[test]
    fn the_byte_budget_bounds_the_cache() {
        let cache = ConfigCache::new(40, 100);
        for name in ["a", "b", "c", "d", "e"] {
            cache.put(name, &[0u8; 10]);
        }
        assert_eq!((cache.len(), cache.bytes()), (4, 40));
        assert!(cache.get("a").is_none(), "the oldest went");
        // larger than a quarter of the budget: not kept, nothing evicted for it
        cache.put("big", &[0u8; 11]);
        assert!(cache.get("big").is_none());
        assert_eq!(cache.len(), 4);
    }

    #[test]
    fn a_zero_sized_cache_keeps_nothing() {
        let cache = ConfigCache::new(0, 0);
        cache.put("a", b"");
        assert!(cache.is_empty());
    }
}
