//! Registry quotas as registries announce them, decided without IO.
//!
//! Docker Hub (and registries that copy it) answer manifest requests, HEAD included, with
//! `ratelimit-limit: 100;w=21600` and `ratelimit-remaining: 76;w=21600`: so many requests per
//! window of that many seconds, for this client (its IP, or its account). The client reads
//! them from every manifest response ([`Quota::from_headers`]) and keeps the last one per
//! registry and credential ([`Quotas`]); the scheduler paces that registry's scheduled checks
//! with [`Pacing`] so the quota is never used up, instead of waiting for the 429 as every
//! peer does.
//!
//! The window is taken as a sliding one (Docker Hub's is: a pull counts for six hours), so the
//! quota comes back at `limit / window` requests a second.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A quota a registry announced: `remaining` of `limit` requests per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    pub remaining: u64,
    pub window: Duration,
}

impl Quota {
    /// From the `ratelimit-limit` and `ratelimit-remaining` values (`<n>` or `<n>;w=<seconds>`,
    /// other parameters ignored). Both must parse; a window given by neither is unknown and
    /// the quota is not used (`None`).
    pub fn from_headers(limit: Option<&str>, remaining: Option<&str>) -> Option<Quota> {
        let (limit, limit_window) = parse_value(limit?)?;
        let (remaining, remaining_window) = parse_value(remaining?)?;
        let window = limit_window.or(remaining_window)?;
        if limit == 0 || window.is_zero() {
            return None;
        }
        Some(Quota {
            limit,
            remaining: remaining.min(limit),
            window,
        })
    }

    /// Requests that come back per second.
    fn refill_per_second(&self) -> f64 {
        self.limit as f64 / self.window.as_secs_f64()
    }

    /// What is kept back from scheduled checks: a tenth of the limit, at least one, so
    /// notifications and users' imports still find quota.
    pub fn reserve(&self) -> u64 {
        (self.limit / 10).max(1)
    }
}

/// `<n>` or `<n>;w=<seconds>[;…]` (the IETF RateLimit draft's form Docker Hub uses).
fn parse_value(value: &str) -> Option<(u64, Option<Duration>)> {
    let mut parts = value.split(';');
    let n = parts.next()?.trim().parse::<u64>().ok()?;
    let mut window = None;
    for part in parts {
        if let Some((key, v)) = part.split_once('=')
            && key.trim().eq_ignore_ascii_case("w")
        {
            window = Some(Duration::from_secs(
                v.trim().trim_matches('"').parse().ok()?,
            ));
        }
    }
    Some((n, window))
}

/// One announcement and when it was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    pub quota: Quota,
    pub at: Instant,
}

/// The last quota seen per (registry as named, credential).
#[derive(Debug, Default)]
pub struct Quotas {
    seen: HashMap<(String, String), Observed>,
}

impl Quotas {
    pub fn record(&mut self, registry: &str, credential: &str, quota: Quota, at: Instant) {
        self.seen.insert(
            (registry.to_string(), credential.to_string()),
            Observed { quota, at },
        );
    }

    pub fn get(&self, registry: &str, credential: &str) -> Option<Observed> {
        self.seen
            .get(&(registry.to_string(), credential.to_string()))
            .copied()
    }
}

/// Scheduled checks started against one registry and credential since its last announcement:
/// the quota they took is not in the announcement yet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pacing {
    /// The announcement these checks are counted against.
    basis: Option<Instant>,
    spent: u64,
}

impl Pacing {
    /// How long until `checks` more requests may be spent (`None`: now). What may be spent is
    /// the announced remainder, plus what came back since, minus what was spent since, minus
    /// the reserve.
    pub fn wait(&mut self, observed: &Observed, checks: u64, now: Instant) -> Option<Duration> {
        if self.basis != Some(observed.at) {
            self.basis = Some(observed.at);
            self.spent = 0;
        }
        let q = observed.quota;
        let rate = q.refill_per_second();
        let back = now.saturating_duration_since(observed.at).as_secs_f64() * rate;
        let left = (q.remaining as f64 - self.spent as f64 + back).min(q.limit as f64);
        let available = left - q.reserve() as f64;
        // a hair of slack for the floating point of `back`
        let missing = checks as f64 - available - 1e-9;
        // whole milliseconds, rounded up, at most a day
        (missing > 0.0).then(|| {
            Duration::from_millis((missing / rate * 1000.0).ceil().clamp(1.0, 86_400_000.0) as u64)
        })
    }

    /// Counts `checks` requests as spent against the current announcement.
    pub fn spend(&mut self, checks: u64) {
        self.spent += checks;
    }

    /// [`Self::wait`], then [`Self::spend`] when there is no wait.
    pub fn take(&mut self, observed: &Observed, checks: u64, now: Instant) -> Result<(), Duration> {
        match self.wait(observed, checks, now) {
            Some(wait) => Err(wait),
            None => {
                self.spend(checks);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_headers_parse() {
        let q = Quota::from_headers(Some("100;w=21600"), Some("76;w=21600")).unwrap();
        assert_eq!(
            q,
            Quota {
                limit: 100,
                remaining: 76,
                window: Duration::from_secs(21600)
            }
        );
        assert_eq!(q.reserve(), 10);
        // the window on one of them is enough; spaces and other parameters are fine
        let q = Quota::from_headers(Some(" 60 ; w=60 ; policy=x"), Some("5")).unwrap();
        assert_eq!((q.limit, q.remaining, q.window.as_secs()), (60, 5, 60));
        // remaining above the limit is capped
        let q = Quota::from_headers(Some("10;w=60"), Some("50;w=60")).unwrap();
        assert_eq!(q.remaining, 10);
        for (limit, remaining) in [
            (None, Some("1;w=1")),
            (Some("1;w=1"), None),
            (Some("x;w=1"), Some("1")),
            (Some("10"), Some("1")),
            (Some("0;w=60"), Some("0;w=60")),
            (Some("10;w=0"), Some("1")),
            (Some("10;w=abc"), Some("1")),
        ] {
            assert_eq!(
                Quota::from_headers(limit, remaining),
                None,
                "{limit:?} {remaining:?}"
            );
        }
    }

    fn observed(limit: u64, remaining: u64, window: u64, at: Instant) -> Observed {
        Observed {
            quota: Quota {
                limit,
                remaining,
                window: Duration::from_secs(window),
            },
            at,
        }
    }

    #[test]
    fn checks_stop_at_the_reserve_and_resume_as_the_quota_comes_back() {
        let t0 = Instant::now();
        // 20 per minute: one comes back every 3 s; reserve 2
        let seen = observed(20, 20, 60, t0);
        let mut pacing = Pacing::default();
        let allowed = (0..30)
            .filter(|_| pacing.take(&seen, 1, t0).is_ok())
            .count();
        assert_eq!(allowed, 18, "all but the reserve");
        let wait = pacing.take(&seen, 1, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(3));
        assert!(pacing.take(&seen, 1, t0 + Duration::from_secs(3)).is_ok());
        assert!(pacing.take(&seen, 1, t0 + Duration::from_secs(4)).is_err());
        // a new announcement replaces what was counted
        let later = observed(20, 1, 60, t0 + Duration::from_secs(5));
        let wait = pacing.take(&later, 1, later.at).unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(6),
            "from 1 to the reserve 2, plus one"
        );
    }

    #[test]
    fn over_a_long_run_the_rate_is_the_quota_rate() {
        // a demand of 10 checks a second against 100 per 10 minutes: never exhausted, and the
        // checks run at the quota's own rate once the first remainder is spent
        let t0 = Instant::now();
        let mut remaining: i64 = 100;
        let mut last_refill = t0;
        let mut pacing = Pacing::default();
        let mut seen = observed(100, 100, 600, t0);
        let mut checks = 0;
        for tenth in 0..36_000u32 {
            let now = t0 + Duration::from_millis(100) * tenth;
            // the registry's sliding window, coarsely: one back every 6 s
            while now.duration_since(last_refill) >= Duration::from_secs(6) {
                last_refill += Duration::from_secs(6);
                remaining = (remaining + 1).min(100);
            }
            if pacing.take(&seen, 1, now).is_ok() {
                remaining -= 1;
                checks += 1;
                assert!(remaining >= 1, "quota exhausted after {checks} checks");
                seen = observed(100, u64::try_from(remaining).unwrap(), 600, now);
            }
        }
        // an hour: 90 from the first remainder, then 100 per 10 minutes
        assert!((580..=700).contains(&checks), "{checks}");
    }
}
