//! When scheduled tags are re-checked (semantics 6, design.md section 5), decided without IO:
//! the caller passes the time.
//!
//! Each stream with scheduled tags gets a due time. The first one is spread over the whole
//! interval by a hash of the stream's UID, so an operator start with thousands of scheduled
//! streams makes no burst; after each check the next is one interval later. A check also
//! needs a token from the cluster-wide budget (`maxScheduledImageImportsPerMinute`) and, per
//! registry with a budget, from that registry's; without one the check waits for the next
//! token rather than being dropped. Upstream uses rotating buckets instead of due times; the
//! spread and the budgets are the behaviour that matters.
//!
//! Registries that announce a quota (`ratelimit-remaining`, [`crate::registry::quota`]) are
//! paced too: a check whose tags would take that registry's quota (for the stream's
//! credential) below its reserve waits until enough has come back, so the quota is never
//! used up by scheduled checks.
//!
//! A stream that is deleted is never reconciled again, so it cannot remove itself: entries
//! not asked about for two intervals are forgotten (upstream drops a stream that is not in
//! its cache when its bucket comes round).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use crate::registry::policy::wildcard_match;
use crate::registry::quota::{Observed, Pacing};

/// A token bucket: `per_minute` tokens a minute, holding at most `burst`.
#[derive(Clone, Debug)]
pub struct Budget {
    per_minute: u32,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl Budget {
    /// Starts full, as upstream's limiter (burst `2 × per_minute` there; ours is the same).
    pub fn new(per_minute: u32, now: Instant) -> Budget {
        let burst = f64::from(per_minute.max(1)) * 2.0;
        Budget {
            per_minute: per_minute.max(1),
            burst,
            tokens: burst,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(self.per_minute) / 60.0).min(self.burst);
        self.updated = now;
    }

    /// Takes a token, or says how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            Err(Duration::from_secs_f64(
                missing * 60.0 / f64::from(self.per_minute),
            ))
        }
    }
}

/// Due times of streams (keyed by UID) and the budgets they draw from.
#[derive(Debug)]
pub struct Schedule {
    interval: Duration,
    due: HashMap<String, Entry>,
    swept: Instant,
    cluster: Option<Budget>,
    registries: Vec<(String, Budget)>,
    /// Per (registry, credential): checks spent against its last announced quota.
    pacing: HashMap<(String, String), Pacing>,
}

/// The quota side of one check: `checks` tags pull from `registry` with `credential`, whose
/// last announced quota is `observed` (none: not paced).
#[derive(Clone, Debug)]
pub struct QuotaDemand {
    pub registry: String,
    pub credential: String,
    pub checks: u64,
    pub observed: Option<Observed>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    due: Instant,
    /// When the stream was last asked about.
    seen: Instant,
}

/// What to do about one stream now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Check the scheduled tags now; the next check is due after the given delay.
    CheckNow { next_in: Duration },
    /// Not yet: come back after the given delay.
    Wait(Duration),
}

/// The shortest time a stream stays known without being asked about.
const MIN_STALE: Duration = Duration::from_secs(60);

impl Schedule {
    pub fn new(
        interval: Duration,
        per_minute: Option<u32>,
        registry_budgets: &[(String, u32)],
        now: Instant,
    ) -> Schedule {
        Schedule {
            interval: interval.max(Duration::from_secs(1)),
            due: HashMap::new(),
            swept: now,
            cluster: per_minute.map(|n| Budget::new(n, now)),
            registries: registry_budgets
                .iter()
                .map(|(pattern, n)| (pattern.clone(), Budget::new(*n, now)))
                .collect(),
            pacing: HashMap::new(),
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// When the stream `uid`'s next check is due (`None`: not known yet).
    pub fn due(&self, uid: &str) -> Option<Instant> {
        self.due.get(uid).map(|e| e.due)
    }

    /// The first check of a stream: somewhere in the interval, fixed by its UID.
    fn first_due(&self, uid: &str, now: Instant) -> Instant {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        uid.hash(&mut h);
        let millis = u64::try_from(self.interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        now + Duration::from_millis(h.finish() % millis)
    }

    /// Decides for the stream `uid` whose scheduled tags pull from `registries`.
    pub fn decide(&mut self, uid: &str, registries: &[String], now: Instant) -> Decision {
        self.decide_paced(uid, registries, &[], now)
    }

    /// [`Self::decide`], pacing the check by the quotas of `demands` too.
    pub fn decide_paced(
        &mut self,
        uid: &str,
        registries: &[String],
        demands: &[QuotaDemand],
        now: Instant,
    ) -> Decision {
        self.sweep(now);
        let due = match self.due.get_mut(uid) {
            Some(entry) => {
                entry.seen = now;
                entry.due
            }
            None => {
                let due = self.first_due(uid, now);
                self.due.insert(uid.to_string(), Entry { due, seen: now });
                due
            }
        };
        if due > now {
            return Decision::Wait(due - now);
        }
        if let Some(wait) = self.quota_wait(demands, now) {
            return Decision::Wait(wait);
        }
        if let Some(budget) = &mut self.cluster
            && let Err(wait) = budget.take(now)
        {
            return Decision::Wait(wait);
        }
        for registry in registries {
            if let Some((_, budget)) = self
                .registries
                .iter_mut()
                .find(|(pattern, _)| wildcard_match(registry, pattern))
                && let Err(wait) = budget.take(now)
            {
                return Decision::Wait(wait);
            }
        }
        self.spend_quota(demands);
        self.due.insert(
            uid.to_string(),
            Entry {
                due: now + self.interval,
                seen: now,
            },
        );
        Decision::CheckNow {
            next_in: self.interval,
        }
    }

    /// The longest wait any announced quota of `demands` asks for.
    fn quota_wait(&mut self, demands: &[QuotaDemand], now: Instant) -> Option<Duration> {
        demands
            .iter()
            .filter_map(|d| {
                let observed = d.observed.as_ref()?;
                self.pacing
                    .entry((d.registry.clone(), d.credential.clone()))
                    .or_default()
                    .wait(observed, d.checks, now)
            })
            .max()
    }

    fn spend_quota(&mut self, demands: &[QuotaDemand]) {
        for d in demands.iter().filter(|d| d.observed.is_some()) {
            self.pacing
                .entry((d.registry.clone(), d.credential.clone()))
                .or_default()
                .spend(d.checks);
        }
    }

    /// Takes a token from the budgets `registries` draw from for a check that is not the
    /// stream's scheduled one (a registry's notification): the same budgets, and the quota
    /// pacing, apply. `Err` says how long until there is one.
    pub fn spend(
        &mut self,
        registries: &[String],
        demands: &[QuotaDemand],
        now: Instant,
    ) -> Result<(), Duration> {
        if let Some(wait) = self.quota_wait(demands, now) {
            return Err(wait);
        }
        if let Some(budget) = &mut self.cluster {
            budget.take(now)?;
        }
        for registry in registries {
            if let Some((_, budget)) = self
                .registries
                .iter_mut()
                .find(|(pattern, _)| wildcard_match(registry, pattern))
            {
                budget.take(now)?;
            }
        }
        self.spend_quota(demands);
        Ok(())
    }

    /// Forgets, once an interval, the streams nobody asked about for two intervals (at least
    /// a minute: a stream whose reconcile keeps failing is asked about only on each retry, and
    /// forgetting it would push its next check past every retry).
    fn sweep(&mut self, now: Instant) {
        if now.saturating_duration_since(self.swept) < self.interval {
            return;
        }
        self.swept = now;
        let stale = (2 * self.interval).max(MIN_STALE);
        self.due
            .retain(|_, entry| now.saturating_duration_since(entry.seen) < stale);
    }

    /// Forgets a stream (deleted, or no scheduled tags any more).
    pub fn remove(&mut self, uid: &str) {
        self.due.remove(uid);
    }

    /// Checks left now in each budget: `*` for the cluster-wide one, then by registry pattern.
    pub fn budgets_left(&self) -> Vec<(String, u32)> {
        let left = |b: &Budget| b.tokens.max(0.0).floor().min(f64::from(u32::MAX)) as u32;
        self.cluster
            .iter()
            .map(|b| ("*".to_string(), left(b)))
            .chain(self.registries.iter().map(|(r, b)| (r.clone(), left(b))))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_short_interval_does_not_forget_a_stream_between_retries() {
        // a 1 s interval, a stream whose reconcile fails and is retried every 5 s
        let t0 = Instant::now();
        let interval = Duration::from_secs(1);
        let mut s = Schedule::new(interval, None, &[], t0);
        s.decide("failing", &[], t0);
        let mut checked = 0;
        for retry in 1..=6u32 {
            let at = t0 + Duration::from_secs(5) * retry;
            // another stream keeps the schedule sweeping
            s.decide("busy", &[], at - Duration::from_millis(500));
            if matches!(s.decide("failing", &[], at), Decision::CheckNow { .. }) {
                checked += 1;
            }
        }
        // known all along, so due at every retry; forgotten, it would never be
        assert_eq!(checked, 6);
    }

    #[test]
    fn first_checks_are_spread_over_the_interval() {
        let now = Instant::now();
        let mut s = Schedule::new(15 * MINUTE, None, &[], now);
        let mut waits: Vec<Duration> = (0..1000)
            .map(|i| match s.decide(&format!("uid-{i}"), &[], now) {
                Decision::Wait(d) => d,
                Decision::CheckNow { .. } => Duration::ZERO,
            })
            .collect();
        waits.sort();
        // no burst: at most a few percent in any minute of the 15
        for minute in 0..15u32 {
            let start = MINUTE * minute;
            let count = waits
                .iter()
                .filter(|w| **w >= start && **w < start + MINUTE)
                .count();
            assert!((30..=110).contains(&count), "minute {minute}: {count}");
        }
        assert_eq!(s.len(), 1000);
    }

    #[test]
    fn a_stream_is_checked_once_per_interval() {
        let t0 = Instant::now();
        let mut s = Schedule::new(15 * MINUTE, None, &[], t0);
        let Decision::Wait(first) = s.decide("a", &[], t0) else {
            // a zero offset is possible in principle; then it is due at once
            return;
        };
        assert!(first < 15 * MINUTE);
        assert!(matches!(
            s.decide("a", &[], t0 + first / 2),
            Decision::Wait(_)
        ));
        let at = t0 + first;
        assert_eq!(
            s.decide("a", &[], at),
            Decision::CheckNow {
                next_in: 15 * MINUTE
            }
        );
        assert_eq!(s.decide("a", &[], at + MINUTE), Decision::Wait(14 * MINUTE));
        s.remove("a");
        assert!(s.is_empty());
    }

    #[test]
    fn the_cluster_budget_delays_checks_beyond_it() {
        let t0 = Instant::now();
        let later = t0 + 20 * MINUTE; // every stream is due
        let mut s = Schedule::new(15 * MINUTE, Some(60), &[], t0);
        for i in 0..200 {
            s.decide(&format!("s{i}"), &[], t0);
        }
        let checked = (0..200)
            .filter(|i| {
                matches!(
                    s.decide(&format!("s{i}"), &[], later),
                    Decision::CheckNow { .. }
                )
            })
            .count();
        // the bucket holds two minutes' worth
        assert_eq!(checked, 120);
        let Decision::Wait(wait) = s.decide("s199", &[], later) else {
            panic!("over budget")
        };
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
    }

    #[test]
    fn registry_budgets_apply_to_matching_registries_only() {
        let t0 = Instant::now();
        let later = t0 + 20 * MINUTE;
        let mut s = Schedule::new(15 * MINUTE, None, &[("*.docker.io".to_string(), 1)], t0);
        let hub = vec!["registry-1.docker.io".to_string()];
        let quay = vec!["quay.io".to_string()];
        for i in 0..10 {
            s.decide(&format!("h{i}"), &hub, t0);
            s.decide(&format!("q{i}"), &quay, t0);
        }
        let hub_checks = (0..10)
            .filter(|i| {
                matches!(
                    s.decide(&format!("h{i}"), &hub, later),
                    Decision::CheckNow { .. }
                )
            })
            .count();
        let quay_checks = (0..10)
            .filter(|i| {
                matches!(
                    s.decide(&format!("q{i}"), &quay, later),
                    Decision::CheckNow { .. }
                )
            })
            .count();
        assert_eq!((hub_checks, quay_checks), (2, 10));
    }

    #[test]
    fn an_announced_quota_paces_the_checks_of_its_registry_and_credential() {
        use crate::registry::quota::Quota;
        let t0 = Instant::now();
        let later = t0 + 20 * MINUTE; // every stream is due
        let mut s = Schedule::new(15 * MINUTE, None, &[], t0);
        // 10 per minute, 5 left: the reserve is 1, so 4 single-tag checks may run now
        let observed = Observed {
            quota: Quota {
                limit: 10,
                remaining: 5,
                window: MINUTE,
            },
            at: later,
        };
        let demand = |credential: &str| {
            vec![QuotaDemand {
                registry: "registry-1.docker.io".into(),
                credential: credential.into(),
                checks: 1,
                observed: Some(observed),
            }]
        };
        for i in 0..10 {
            s.decide(&format!("s{i}"), &[], t0);
            s.decide(&format!("o{i}"), &[], t0);
        }
        let checked = |s: &mut Schedule, prefix: &str, credential: &str, at: Instant| {
            (0..10)
                .filter(|i| {
                    matches!(
                        s.decide_paced(&format!("{prefix}{i}"), &[], &demand(credential), at),
                        Decision::CheckNow { .. }
                    )
                })
                .count()
        };
        assert_eq!(checked(&mut s, "s", "anonymous", later), 4);
        // another credential has its own quota
        assert_eq!(checked(&mut s, "o", "team-a", later), 4);
        // the next waits until one came back (6 s at 10 a minute)
        let Decision::Wait(wait) = s.decide_paced("s9", &[], &demand("anonymous"), later) else {
            panic!("past the reserve")
        };
        assert_eq!(wait, Duration::from_secs(6));
        assert_eq!(checked(&mut s, "s", "anonymous", later + wait), 1);
        // a check outside the schedule (a notification) is paced the same way
        assert!(s.spend(&[], &demand("anonymous"), later + wait).is_err());
        assert!(s.spend(&[], &demand("anonymous"), later + 2 * wait).is_ok());
        // without an announcement nothing is paced
        let unpaced = vec![QuotaDemand {
            observed: None,
            ..demand("anonymous")[0].clone()
        }];
        assert!(s.spend(&[], &unpaced, later).is_ok());
    }

    // 10.6 case 87 (TestScheduledImport), adapted to due times: a scheduled stream is
    // enqueued without a check; when its time comes it is checked once and kept; a stream
    // nobody asks about any more (deleted, so never reconciled) is forgotten after two
    // intervals; removal (no scheduled tags) forgets it at once. Disabling scheduled imports
    // drops the whole schedule (`Context::set_settings`).
    #[test]
    fn test_scheduled_import() {
        let t0 = Instant::now();
        let interval = 15 * MINUTE;
        let mut s = Schedule::new(interval, None, &[], t0);
        assert!(matches!(s.decide("live", &[], t0), Decision::Wait(_)));
        assert!(matches!(s.decide("gone", &[], t0), Decision::Wait(_)));
        assert_eq!(s.len(), 2, "enqueued, nothing checked");

        // the live stream is reconciled at its due times; the deleted one never again
        let mut checks = 0;
        let mut at = t0;
        while at < t0 + 3 * interval {
            at += MINUTE;
            if matches!(s.decide("live", &[], at), Decision::CheckNow { .. }) {
                checks += 1;
            }
        }
        assert_eq!(checks, 3, "one check per interval");
        assert_eq!(s.len(), 1, "the deleted stream was forgotten");
        assert!(matches!(
            s.decide("live", &[], at),
            Decision::Wait(_) | Decision::CheckNow { .. }
        ));
        s.remove("live");
        assert!(s.is_empty());
    }

    // 10.6 case 89 (TestSchedulerAddAndDelay), adapted: upstream's buckets become due times.
    // Successive adds are spread over the interval (not all in the first bucket); a check
    // moves the stream a whole interval on (upstream's `Delay` to the last bucket); a
    // removed stream added again starts with the same spread offset.
    #[test]
    fn test_scheduler_add_and_delay() {
        let t0 = Instant::now();
        let interval = 15 * MINUTE;
        let mut s = Schedule::new(interval, None, &[], t0);
        let offsets: Vec<Duration> = (0..5)
            .map(|i| match s.decide(&format!("s{i}"), &[], t0) {
                Decision::Wait(d) => d,
                Decision::CheckNow { .. } => Duration::ZERO,
            })
            .collect();
        assert!(offsets.iter().all(|d| *d < interval));
        let mut distinct = offsets.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 5, "{offsets:?}");

        let due = t0 + offsets[0];
        assert_eq!(
            s.decide("s0", &[], due),
            Decision::CheckNow { next_in: interval }
        );
        assert_eq!(s.decide("s0", &[], due), Decision::Wait(interval));
        s.remove("s0");
        assert_eq!(s.decide("s0", &[], t0), Decision::Wait(offsets[0]));
    }
}
