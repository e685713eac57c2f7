//! Woken tags waiting for their check, decided without IO (the caller passes the time).
//!
//! A notification asks for a check of a tag that starts after it arrived: a check waiting in
//! the queue covers every notification that comes before it starts, so a burst for one tag
//! costs one check. A notification that names the same digest as one already asked for in
//! the last [`COVER`] is covered by that one's check, queued, running or done: the push it
//! reports happened before that check started. Registries repeat themselves (docker-registry
//! sends an event per manifest and retries; an EventBridge rule may match twice), and none
//! of that costs a request. A notification without a digest is covered only by a check
//! that has not started yet. A check that failed forgets the digest, so the next
//! notification asks again.
//!
//! Each notification gets a ticket; a tag's check covers every ticket issued before it was
//! taken, and [`Wakeups::is_checked`] tells a waiting request when its tickets are covered.
//!
//! Registries send a push's notification before the push is visible everywhere:
//! `docker-registry` sends it when the manifest is stored and moves the tag just after, so a
//! check that is fast enough still finds the old image. A check that finds the tag unchanged
//! while the notification named another digest is therefore tried again, a little later, a
//! few times ([`Check::Stale`], [`STALE_RETRIES`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::select::StreamKey;

/// How long a check covers later notifications naming the same digest.
pub const COVER: Duration = Duration::from_secs(600);
/// A notification without a digest within this long of the tag's last check waits until
/// this long after it: senders that name no digest (Docker Hub, Quay) cannot be told apart
/// from their repetitions, so a burst of them costs a check per this period, not one each.
pub const REPEAT: Duration = Duration::from_secs(5);
/// How often a check that found the tag before the push is tried again.
pub const STALE_RETRIES: u32 = 3;
/// The wait before the first retry of a stale check; it doubles with each.
pub const STALE_DELAY: Duration = Duration::from_millis(100);

/// What a check of a woken tag found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The tag is as the registry serves it now.
    Done,
    /// The import failed (recorded as a condition, as a scheduled check's would be).
    Failed,
    /// The tag was unchanged, but the notification named another digest: the push may not
    /// be visible yet.
    Stale,
}

/// A tag of a stream.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagKey {
    pub namespace: String,
    pub name: String,
    pub tag: String,
}

#[derive(Clone, Debug)]
struct TagState {
    /// The digest of the latest notification, and when it was asked for.
    digest: Option<(String, Instant)>,
    /// The latest ticket issued.
    requested: u64,
    /// The ticket the check running now covers.
    in_flight: u64,
    /// Tickets up to this one are checked.
    checked: u64,
    /// When the oldest notification the waiting check answers arrived.
    since: Option<Instant>,
    touched: Instant,
    /// Stale checks of the current notification so far.
    retries: u32,
    /// When the tag was last taken for a check.
    taken_at: Option<Instant>,
}

/// A tag taken for a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Woken {
    pub tag: String,
    /// When the oldest notification this check answers arrived.
    pub since: Instant,
    /// The digest the latest notification named, if any.
    pub digest: Option<String>,
}

/// The woken tags of every stream, and the tickets of the notifications that woke them.
#[derive(Debug, Default)]
pub struct Wakeups {
    tags: HashMap<TagKey, TagState>,
    pending: BTreeMap<StreamKey, BTreeSet<String>>,
    next: u64,
}

impl Wakeups {
    /// A notification for `key` naming `digest` arrived at `now`: its ticket, and whether a
    /// new check was queued (`false`: a check already asked for covers it).
    pub fn notify(&mut self, key: &TagKey, digest: Option<&str>, now: Instant) -> (u64, bool) {
        let state = self.tags.entry(key.clone()).or_insert(TagState {
            digest: None,
            requested: 0,
            in_flight: 0,
            checked: 0,
            since: None,
            touched: now,
            retries: 0,
            taken_at: None,
        });
        state.touched = now;
        let stream = (key.namespace.clone(), key.name.clone());
        let waiting = self
            .pending
            .get(&stream)
            .is_some_and(|tags| tags.contains(&key.tag));
        let same_digest = match (digest, &state.digest) {
            (Some(d), Some((seen, at))) => d == seen && now.saturating_duration_since(*at) < COVER,
            _ => false,
        };
        if same_digest && state.requested > 0 {
            return (state.requested, false);
        }
        if waiting {
            // the waiting check has not started: it sees this push too
            if let Some(d) = digest {
                state.digest = Some((d.to_string(), now));
            }
            return (state.requested, false);
        }
        self.next += 1;
        state.requested = self.next;
        state.digest = digest.map(|d| (d.to_string(), now));
        state.since = Some(now);
        state.retries = 0;
        self.pending
            .entry(stream)
            .or_default()
            .insert(key.tag.clone());
        (self.next, true)
    }

    /// Takes the waiting tags of `stream` for a check starting now.
    pub fn take(&mut self, stream: &StreamKey) -> Vec<Woken> {
        let Some(tags) = self.pending.remove(stream) else {
            return Vec::new();
        };
        tags.into_iter()
            .filter_map(|tag| {
                let key = TagKey {
                    namespace: stream.0.clone(),
                    name: stream.1.clone(),
                    tag,
                };
                let state = self.tags.get_mut(&key)?;
                state.in_flight = state.requested;
                state.taken_at = Some(Instant::now());
                Some(Woken {
                    since: state.since.take()?,
                    digest: state.digest.as_ref().map(|(d, _)| d.clone()),
                    tag: key.tag,
                })
            })
            .collect()
    }

    /// How long the check just queued for `key` should wait (see [`REPEAT`]).
    pub fn hold(&self, key: &TagKey, now: Instant) -> Duration {
        match self.tags.get(key) {
            Some(state) if state.digest.is_none() => state.taken_at.map_or(Duration::ZERO, |t| {
                (t + REPEAT).saturating_duration_since(now)
            }),
            _ => Duration::ZERO,
        }
    }

    /// Puts tags taken by [`Self::take`] back, their check not done (the pass failed, or
    /// waits for a budget).
    pub fn restore(&mut self, stream: &StreamKey, woken: Vec<Woken>) {
        for w in woken {
            let key = TagKey {
                namespace: stream.0.clone(),
                name: stream.1.clone(),
                tag: w.tag.clone(),
            };
            if let Some(state) = self.tags.get_mut(&key) {
                state.since = Some(state.since.map_or(w.since, |s| s.min(w.since)));
                self.pending
                    .entry(stream.clone())
                    .or_default()
                    .insert(w.tag);
            }
        }
    }

    /// The check of `woken` (taken by [`Self::take`]) found `check`. A failed one forgets the
    /// digest, so a repeated notification asks again; a stale one waits for another check,
    /// at most [`STALE_RETRIES`] times: then the delay before it, else `None`.
    pub fn finish(&mut self, key: &TagKey, woken: &Woken, check: Check) -> Option<Duration> {
        let state = self.tags.get_mut(key)?;
        if check == Check::Stale && state.retries < STALE_RETRIES {
            let delay = STALE_DELAY * 2u32.pow(state.retries);
            state.retries += 1;
            state.since = Some(state.since.map_or(woken.since, |s| s.min(woken.since)));
            self.pending
                .entry((key.namespace.clone(), key.name.clone()))
                .or_default()
                .insert(key.tag.clone());
            return Some(delay);
        }
        state.checked = state.checked.max(state.in_flight);
        if check == Check::Failed {
            state.digest = None;
        }
        None
    }

    /// Whether the check covering `ticket` of `key` is done (a forgotten tag counts as done).
    pub fn is_checked(&self, key: &TagKey, ticket: u64) -> bool {
        self.tags.get(key).is_none_or(|s| s.checked >= ticket)
    }

    /// Streams with tags waiting for a check.
    pub fn waiting_streams(&self) -> Vec<StreamKey> {
        self.pending.keys().cloned().collect()
    }

    /// Forgets tags nobody notified for [`COVER`] whose checks are done.
    pub fn sweep(&mut self, now: Instant) {
        let pending = &self.pending;
        self.tags.retain(|key, state| {
            let waiting = pending
                .get(&(key.namespace.clone(), key.name.clone()))
                .is_some_and(|t| t.contains(&key.tag));
            waiting
                || state.checked < state.requested
                || now.saturating_duration_since(state.touched) < COVER
        });
    }

    pub fn len(&self) -> usize {
        self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tag: &str) -> TagKey {
        TagKey {
            namespace: "ns".into(),
            name: "app".into(),
            tag: tag.into(),
        }
    }

    fn stream() -> StreamKey {
        ("ns".into(), "app".into())
    }

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn a_burst_for_one_tag_costs_one_check() {
        let t0 = Instant::now();
        let mut w = Wakeups::default();
        let (first, queued) = w.notify(&key("v1"), Some(D1), t0);
        assert!(queued);
        // twenty more for the same push, before and after the check started
        for i in 1..=10 {
            assert_eq!(
                w.notify(&key("v1"), Some(D1), t0 + Duration::from_millis(i)),
                (first, false)
            );
        }
        let taken = w.take(&stream());
        assert_eq!(
            taken,
            [Woken {
                tag: "v1".into(),
                since: t0,
                digest: Some(D1.into()),
            }]
        );
        for i in 11..=20 {
            assert_eq!(
                w.notify(&key("v1"), Some(D1), t0 + Duration::from_millis(i)),
                (first, false)
            );
        }
        assert!(!w.is_checked(&key("v1"), first));
        w.finish(&key("v1"), &taken[0], Check::Done);
        assert!(w.is_checked(&key("v1"), first));
        assert!(w.take(&stream()).is_empty(), "nothing more to check");
        // and after it, the same digest again costs nothing
        assert_eq!(
            w.notify(&key("v1"), Some(D1), t0 + Duration::from_secs(5)),
            (first, false)
        );
    }

    #[test]
    fn a_new_digest_while_a_check_runs_asks_for_another() {
        let t0 = Instant::now();
        let mut w = Wakeups::default();
        let (a, _) = w.notify(&key("v1"), Some(D1), t0);
        let taken = w.take(&stream());
        let (b, queued) = w.notify(&key("v1"), Some(D2), t0);
        assert!(queued && b > a);
        w.finish(&key("v1"), &taken[0], Check::Done);
        assert!(w.is_checked(&key("v1"), a));
        assert!(
            !w.is_checked(&key("v1"), b),
            "the running check may predate the push of D2"
        );
        let taken = w.take(&stream());
        assert_eq!(taken.len(), 1);
        w.finish(&key("v1"), &taken[0], Check::Done);
        assert!(w.is_checked(&key("v1"), b));
        // D1 again after D2: the tag may have moved back
        assert!(w.notify(&key("v1"), Some(D1), t0).1);
    }

    #[test]
    fn without_a_digest_only_a_waiting_check_covers() {
        let t0 = Instant::now();
        let mut w = Wakeups::default();
        let (a, _) = w.notify(&key("latest"), None, t0);
        assert_eq!(w.notify(&key("latest"), None, t0), (a, false));
        w.take(&stream());
        let (b, queued) = w.notify(&key("latest"), None, t0);
        assert!(queued && b > a);
    }

    #[test]
    fn repeated_notifications_without_a_digest_wait_for_the_repeat_period() {
        let mut w = Wakeups::default();
        let t0 = Instant::now();
        w.notify(&key("latest"), None, t0);
        assert_eq!(
            w.hold(&key("latest"), t0),
            Duration::ZERO,
            "the first is checked at once"
        );
        let taken = w.take(&stream());
        w.finish(&key("latest"), &taken[0], Check::Done);
        let now = Instant::now();
        let (_, queued) = w.notify(&key("latest"), None, now);
        assert!(queued);
        let hold = w.hold(&key("latest"), now);
        assert!(
            hold > REPEAT - Duration::from_secs(1) && hold <= REPEAT,
            "{hold:?}"
        );
        // the waiting check covers the rest of the burst
        for i in 1..20 {
            let (_, queued) = w.notify(&key("latest"), None, now + Duration::from_millis(200 * i));
            assert!(!queued);
        }
        assert_eq!(w.hold(&key("latest"), now + REPEAT), Duration::ZERO);
        // a digest is an answer of its own: no wait
        w.take(&stream());
        w.notify(&key("v1"), Some(D1), now);
        assert_eq!(w.hold(&key("v1"), now), Duration::ZERO);
    }

    #[test]
    fn a_failed_check_forgets_the_digest_and_restored_tags_wait_again() {
        let t0 = Instant::now();
        let mut w = Wakeups::default();
        w.notify(&key("v1"), Some(D1), t0);
        let taken = w.take(&stream());
        w.restore(&stream(), taken);
        assert_eq!(w.waiting_streams(), [stream()]);
        let taken = w.take(&stream());
        assert_eq!(taken.len(), 1);
        w.finish(&key("v1"), &taken[0], Check::Failed);
        let (_, queued) = w.notify(&key("v1"), Some(D1), t0 + Duration::from_secs(1));
        assert!(queued, "the sender's retry is checked again");
    }

    #[test]
    fn a_check_that_found_the_old_image_is_tried_again_a_few_times() {
        let t0 = Instant::now();
        let mut w = Wakeups::default();
        let (ticket, _) = w.notify(&key("v1"), Some(D2), t0);
        let mut delays = Vec::new();
        loop {
            let taken = w.take(&stream());
            assert_eq!(taken.len(), 1);
            assert_eq!(
                taken[0].since, t0,
                "the latency counts from the notification"
            );
            match w.finish(&key("v1"), &taken[0], Check::Stale) {
                Some(delay) => {
                    assert!(!w.is_checked(&key("v1"), ticket));
                    delays.push(delay);
                }
                None => break,
            }
        }
        assert_eq!(
            delays,
            [STALE_DELAY, STALE_DELAY * 2, STALE_DELAY * 4],
            "then it gives up"
        );
        assert!(w.is_checked(&key("v1"), ticket));
        assert!(w.take(&stream()).is_empty());
        // a new notification starts over
        w.notify(&key("v1"), Some(D1), t0);
        let taken = w.take(&stream());
        assert!(w.finish(&key("v1"), &taken[0], Check::Stale).is_some());
        let taken = w.take(&stream());
        assert_eq!(w.finish(&key("v1"), &taken[0], Check::Done), None);
    }

    #[test]
    fn a_digest_covers_for_a_while_then_is_forgotten() {
        let t0 = Instant::now();
        let mut w = Wakeups::default();
        let (a, _) = w.notify(&key("v1"), Some(D1), t0);
        w.notify(&key("v2"), None, t0);
        let taken = w.take(&stream());
        w.finish(&key("v1"), &taken[0], Check::Done);
        w.finish(&key("v2"), &taken[1], Check::Done);
        let later = t0 + COVER + Duration::from_secs(1);
        let (b, queued) = w.notify(&key("v1"), Some(D1), later);
        assert!(queued && b > a);
        let taken = w.take(&stream());
        w.finish(&key("v1"), &taken[0], Check::Done);
        w.sweep(later + Duration::from_secs(1));
        assert_eq!(w.len(), 1, "v2 forgotten, v1 touched just now");
        w.sweep(later + COVER + Duration::from_secs(2));
        assert!(w.is_empty());
        assert!(
            w.is_checked(&key("v1"), b),
            "a forgotten tag counts as checked"
        );
    }
}
