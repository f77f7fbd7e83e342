//! A circuit breaker per Redis endpoint: after `failures` consecutive failures the
//! endpoint is skipped for `cooldown`, so a dead node costs one timeout, not one per
//! request. After the cooldown one trial call is let through (half-open).

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// How long an open breaker refuses calls before letting one trial through.
    pub cooldown: Duration,
}

/// Breaker state, as exported in metrics: 0 closed, 1 open, 2 half-open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

pub struct Breaker {
    /// std Mutex, not tokio's: held for a few instructions, never across .await.
    inner: Mutex<Inner>,
}

struct Inner {
    /// Replaced by [`Breaker::retune`] when the settings are reloaded.
    settings: BreakerSettings,
    consecutive_failures: u32,
    /// Set while open: calls are refused until then.
    open_until: Option<Instant>,
    /// A trial call is under way; others keep failing fast until it reports.
    trial_in_flight: bool,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Breaker {
        Breaker {
            inner: Mutex::new(Inner { settings, consecutive_failures: 0, open_until: None, trial_in_flight: false }),
        }
    }

    /// New thresholds from a reload; they apply from the next call on.
    pub fn retune(&self, settings: BreakerSettings) {
        self.inner.lock().unwrap().settings = settings;
    }

    /// May a call go ahead now? `Err(wait)` says how long until the next trial.
    pub fn allow(&self, now: Instant) -> Result<(), Duration> {
        let mut inner = self.inner.lock().unwrap();
        match inner.open_until {
            None => Ok(()),
            Some(until) if now < until => Err(until - now),
            Some(_) if inner.trial_in_flight => Err(inner.settings.cooldown),
            Some(_) => {
                inner.trial_in_flight = true;
                Ok(())
            }
        }
    }

    pub fn record_success(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.consecutive_failures = 0;
        inner.open_until = None;
        inner.trial_in_flight = false;
    }

    /// Counts a failure; returns true when this failure opened the breaker.
    pub fn record_failure(&self, now: Instant) -> bool {
        let mut inner = self.inner.lock().unwrap();
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        let was_open = inner.open_until.is_some();
        if inner.trial_in_flight || inner.consecutive_failures >= inner.settings.failures {
            inner.open_until = Some(now + inner.settings.cooldown);
            inner.trial_in_flight = false;
        }
        !was_open && inner.open_until.is_some()
    }

    /// A failure already counted: another call on the same connection
    /// reported it. It adds nothing to the count, but a trial call that
    /// ends this way failed, so the breaker opens again.
    pub fn record_repeated_failure(&self, now: Instant) {
        let mut inner = self.inner.lock().unwrap();
        if inner.trial_in_flight {
            inner.open_until = Some(now + inner.settings.cooldown);
            inner.trial_in_flight = false;
        }
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        let inner = self.inner.lock().unwrap();
        match inner.open_until {
            None => BreakerState::Closed,
            Some(until) if now < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerSettings { failures: 3, cooldown: Duration::from_secs(2) })
    }

    #[test]
    fn opens_after_consecutive_failures_and_fails_fast() {
        let (b, t0) = (breaker(), Instant::now());
        assert!(!b.record_failure(t0));
        assert!(!b.record_failure(t0));
        assert!(b.allow(t0).is_ok(), "still closed after two failures");
        assert!(b.record_failure(t0), "the third failure opens it");
        let wait = b.allow(t0 + Duration::from_millis(500)).unwrap_err();
        assert_eq!(wait, Duration::from_millis(1500));
        assert_eq!(b.state(t0), BreakerState::Open);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let (b, t0) = (breaker(), Instant::now());
        b.record_failure(t0);
        b.record_failure(t0);
        b.record_success();
        b.record_failure(t0);
        assert!(b.allow(t0).is_ok());
    }

    #[test]
    fn after_cooldown_one_trial_goes_through_and_decides() {
        let (b, t0) = (breaker(), Instant::now());
        for _ in 0..3 {
            b.record_failure(t0);
        }
        let later = t0 + Duration::from_secs(3);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert!(b.allow(later).is_ok(), "the trial call");
        assert!(b.allow(later).is_err(), "others wait for the trial");
        b.record_failure(later);
        assert!(b.allow(later + Duration::from_secs(1)).is_err(), "a failed trial reopens it");
        let much_later = later + Duration::from_secs(3);
        assert!(b.allow(much_later).is_ok());
        b.record_success();
        assert_eq!(b.state(much_later), BreakerState::Closed);
        assert!(b.allow(much_later).is_ok() && b.allow(much_later).is_ok());
    }

    #[test]
    fn a_repeated_failure_adds_nothing_but_ends_a_trial() {
        let (b, t0) = (breaker(), Instant::now());
        b.record_failure(t0);
        for _ in 0..5 {
            b.record_repeated_failure(t0);
        }
        assert_eq!(b.state(t0), BreakerState::Closed, "one dropped connection is one failure");
        b.record_failure(t0);
        b.record_failure(t0);
        let later = t0 + Duration::from_secs(3);
        assert!(b.allow(later).is_ok(), "the trial call");
        b.record_repeated_failure(later);
        assert_eq!(b.state(later), BreakerState::Open, "the trial failed");
    }
}
