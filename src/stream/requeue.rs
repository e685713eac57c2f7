//! When a stream comes back on its own after a pass of the imagestream controller: the
//! earliest of the waits the pass met (the schedule's next check, a budget that said not yet,
//! a repository that could not be listed, a notification to check again). Without any, only
//! a change of the stream, its pull secrets or the configuration brings it back.

use std::time::Duration;

/// How long a repository that could not be listed waits before the next attempt (the pull
/// secrets changing brings it back sooner).
pub const REPOSITORY_RETRY: Duration = Duration::from_secs(600);

/// The earliest of the waits met so far; none at first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requeue(Option<Duration>);

impl Requeue {
    /// Comes back after `wait` at the latest.
    pub fn within(&mut self, wait: Duration) {
        self.0 = Some(self.0.map_or(wait, |current| current.min(wait)));
    }

    /// [`Self::within`] when there is a wait.
    pub fn within_any(&mut self, wait: Option<Duration>) {
        if let Some(wait) = wait {
            self.within(wait);
        }
    }

    /// The wait, or `None` when the stream waits for a change.
    pub fn wait(self) -> Option<Duration> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_pass_without_waits_waits_for_a_change() {
        assert_eq!(Requeue::default().wait(), None);
        let mut requeue = Requeue::default();
        requeue.within_any(None);
        assert_eq!(requeue.wait(), None);
    }

    #[test]
    fn the_earliest_wait_wins_in_any_order() {
        let mut a = Requeue::default();
        a.within(REPOSITORY_RETRY);
        a.within(3 * SECOND);
        a.within_any(Some(5 * SECOND));
        assert_eq!(a.wait(), Some(3 * SECOND));

        let mut b = Requeue::default();
        b.within_any(Some(5 * SECOND));
        b.within(3 * SECOND);
        b.within(REPOSITORY_RETRY);
        assert_eq!(b, a);
    }

    #[test]
    fn a_zero_wait_comes_back_at_once() {
        let mut requeue = Requeue::default();
        requeue.within(SECOND);
        requeue.within(Duration::ZERO);
        assert_eq!(requeue.wait(), Some(Duration::ZERO));
    }
}
