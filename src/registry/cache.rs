//! [`ClientCache`]: one [`RegistryClient`] per [`ClientKey`], least recently used first out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::client::Shared;
use super::quota::Observed;
use super::{BasicCredentials, ClientKey, RegistryClient, RegistryConfig, RegistryError};

struct Entry {
    client: Arc<RegistryClient>,
    last_used: Instant,
}

/// Hands out one shared client per (credential set, TLS setting), so tokens and learnt
/// schemes are reused within a tenant and never across tenants. Clients idle longer than
/// `idle_ttl` are dropped, and beyond `capacity` the least recently used goes. Every client
/// shares one configuration and one set of per-registry concurrency limits.
pub struct ClientCache {
    shared: Arc<Shared>,
    capacity: usize,
    idle_ttl: Duration,
    entries: Mutex<HashMap<ClientKey, Entry>>,
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCache")
            .field("capacity", &self.capacity)
            .field("idle_ttl", &self.idle_ttl)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl ClientCache {
    pub fn new(config: RegistryConfig, capacity: usize, idle_ttl: Duration) -> ClientCache {
        ClientCache {
            shared: Shared::new(config),
            capacity: capacity.max(1),
            idle_ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `key`, built on first use with `credentials` and `ca_bundle` (which
    /// the key's `credentials_id` and `ca_bundle_hash` must identify). `key.insecure` decides
    /// the TLS mode.
    pub fn get(
        &self,
        key: &ClientKey,
        credentials: Option<BasicCredentials>,
        ca_bundle: Option<&[u8]>,
    ) -> Result<Arc<RegistryClient>, RegistryError> {
        let now = Instant::now();
        {
            let mut entries = self.lock();
            if let Some(entry) = entries.get_mut(key) {
                if now.duration_since(entry.last_used) <= self.idle_ttl {
                    entry.last_used = now;
                    return Ok(entry.client.clone());
                }
                entries.remove(key);
            }
        }
        // built outside the lock: loading TLS roots is not free
        let client = Arc::new(RegistryClient::with_shared(
            self.shared.clone(),
            credentials,
            key.insecure,
            ca_bundle,
            &key.credentials_id,
        )?);
        let mut entries = self.lock();
        if let Some(existing) = entries.get_mut(key) {
            // another task built it meanwhile; keep one
            existing.last_used = now;
            return Ok(existing.client.clone());
        }
        entries.insert(
            key.clone(),
            Entry {
                client: client.clone(),
                last_used: now,
            },
        );
        self.evict(&mut entries, now);
        Ok(client)
    }

    /// The last quota `registry` announced to the clients of `credentials_id` (empty for
    /// anonymous access).
    pub fn quota(&self, registry: &str, credentials_id: &str) -> Option<Observed> {
        let label = if credentials_id.is_empty() {
            super::client::ANONYMOUS
        } else {
            credentials_id
        };
        self.shared.quota(registry, label)
    }

    /// Forgets the client for `key` (say, its secret changed); holders keep their `Arc`.
    pub fn remove(&self, key: &ClientKey) -> bool {
        self.lock().remove(key).is_some()
    }

    /// Forgets every client whose credentials are `credentials_id`.
    pub fn remove_credentials(&self, credentials_id: &str) -> usize {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|k, _| k.credentials_id != credentials_id);
        before - entries.len()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn evict(&self, entries: &mut HashMap<ClientKey, Entry>, now: Instant) {
        entries.retain(|_, e| now.duration_since(e.last_used) <= self.idle_ttl);
        while entries.len() > self.capacity {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    entries.remove(&k);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, insecure: bool) -> ClientKey {
        ClientKey {
            credentials_id: id.into(),
            insecure,
            ca_bundle_hash: None,
        }
    }

    #[test]
    fn one_client_per_key_lru_eviction_and_removal() {
        let cache = ClientCache::new(RegistryConfig::default(), 2, Duration::from_secs(600));
        let a = cache.get(&key("a", false), None, None).unwrap();
        let a2 = cache.get(&key("a", false), None, None).unwrap();
        assert!(Arc::ptr_eq(&a, &a2));
        let a_insecure = cache.get(&key("a", true), None, None).unwrap();
        assert!(!Arc::ptr_eq(&a, &a_insecure));
        assert!(a_insecure.is_insecure() && !a.is_insecure());
        // touch "a" so the insecure one is the least recently used
        std::thread::sleep(Duration::from_millis(2));
        cache.get(&key("a", false), None, None).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let b = cache
            .get(
                &key("b", false),
                Some(BasicCredentials::new("u", "p")),
                None,
            )
            .unwrap();
        assert!(b.has_credentials());
        assert_eq!(cache.len(), 2);
        let again = cache.get(&key("a", true), None, None).unwrap();
        assert!(!Arc::ptr_eq(&again, &a_insecure), "was evicted");
        assert!(cache.remove(&key("a", true)));
        assert_eq!(cache.remove_credentials("b"), 1);
        assert!(cache.get(&key("a", false), None, None).is_ok());
    }

    #[test]
    fn idle_clients_expire() {
        let cache = ClientCache::new(RegistryConfig::default(), 10, Duration::ZERO);
        let a = cache.get(&key("a", false), None, None).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let a2 = cache.get(&key("a", false), None, None).unwrap();
        assert!(!Arc::ptr_eq(&a, &a2));
    }

    #[test]
    fn a_bad_ca_bundle_is_a_config_error() {
        let cache = ClientCache::new(RegistryConfig::default(), 10, Duration::from_secs(60));
        let k = ClientKey {
            ca_bundle_hash: Some("x".into()),
            ..key("a", false)
        };
        let err = cache.get(&k, None, Some(b"not a pem")).unwrap_err();
        assert_eq!(err.reason(), "InternalError");
        assert!(err.to_string().contains("CA bundle"), "{err}");
        assert!(cache.is_empty());
    }
}
