//! A receiver's request-rate cap: a token bucket, decided without IO.

use std::time::{Duration, Instant};

/// `per_minute` requests a minute, bursts of up to ten seconds' worth (at least ten).
#[derive(Clone, Debug)]
pub struct RateLimit {
    per_minute: u32,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl RateLimit {
    pub fn new(per_minute: u32, now: Instant) -> RateLimit {
        let per_minute = per_minute.max(1);
        let burst = (f64::from(per_minute) / 6.0).max(10.0);
        RateLimit {
            per_minute,
            burst,
            tokens: burst,
            updated: now,
        }
    }

    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Takes one request, or says how long until one may come.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(self.per_minute) / 60.0;
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                ((1.0 - self.tokens) / rate).min(3600.0),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_the_rate() {
        let t0 = Instant::now();
        let mut l = RateLimit::new(600, t0);
        let burst = (0..1000).filter(|_| l.take(t0).is_ok()).count();
        assert_eq!(burst, 100, "ten seconds' worth");
        let wait = l.take(t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        let later = t0 + Duration::from_secs(1);
        assert_eq!((0..100).filter(|_| l.take(later).is_ok()).count(), 10);
        let mut small = RateLimit::new(1, t0);
        assert_eq!((0..100).filter(|_| small.take(t0).is_ok()).count(), 10);
    }
}
