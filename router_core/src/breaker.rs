//! Circuit breakers per model and per provider, driven by ERROR and TIMEOUT outcomes.
//!
//! closed --N consecutive errors--> open --open_s elapsed--> half-open (one probe decision)
//! half-open --SUCCESS/FAILURE--> closed;  half-open --ERROR/TIMEOUT--> open again.
//! A probe that never reports is given `open_s` before another probe is allowed, so a lost
//! report cannot wedge a model out forever. Breakers are per process and never snapshotted:
//! a replica's view of a provider's health is its own.

use rustc_hash::FxHashMap;

use crate::catalog::BreakerPolicy;
use crate::role::Status;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BreakerKey {
    Model(String),
    Provider(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed,
    Open {
        until: f64,
    },
    /// `probe_until`: a probe was handed out and is awaited until then.
    HalfOpen {
        probe_until: Option<f64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened,
    HalfOpened,
    Closed,
}

impl Transition {
    pub fn kind(self) -> &'static str {
        match self {
            Self::Opened => "breaker_open",
            Self::HalfOpened => "breaker_half_open",
            Self::Closed => "breaker_closed",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Breaker {
    consecutive: u32,
    state: State,
}

#[derive(Debug, Default)]
pub struct Breakers {
    map: FxHashMap<BreakerKey, Breaker>,
}

impl Breakers {
    /// How many breakers are not closed; the router skips this map entirely when it is zero.
    pub fn active(&self) -> usize {
        self.map
            .values()
            .filter(|b| b.state != State::Closed)
            .count()
    }

    /// Feeds one reported outcome; CANCELLED says nothing about health and is ignored.
    pub fn on_outcome(
        &mut self,
        key: BreakerKey,
        status: Status,
        now: f64,
        p: &BreakerPolicy,
    ) -> Option<Transition> {
        if status == Status::Cancelled {
            return None;
        }
        if status.is_breaker_failure() {
            let b = self.map.entry(key).or_insert(Breaker {
                consecutive: 0,
                state: State::Closed,
            });
            b.consecutive = b.consecutive.saturating_add(1);
            let reopen = matches!(b.state, State::HalfOpen { .. });
            let trip = b.state == State::Closed && b.consecutive >= p.failures_to_open;
            if reopen || trip {
                b.state = State::Open {
                    until: now + p.open_s,
                };
                return Some(Transition::Opened);
            }
            None
        } else {
            let b = self.map.get_mut(&key)?;
            b.consecutive = 0;
            if b.state == State::Closed {
                return None;
            }
            b.state = State::Closed;
            Some(Transition::Closed)
        }
    }

    /// Whether a decision may use `key` at `now`; moves an expired open breaker to half-open.
    pub fn admit(&mut self, key: &BreakerKey, now: f64) -> (bool, Option<Transition>) {
        let Some(b) = self.map.get_mut(key) else {
            return (true, None);
        };
        match b.state {
            State::Closed => (true, None),
            State::Open { until } if now < until => (false, None),
            State::Open { .. } => {
                b.state = State::HalfOpen { probe_until: None };
                (true, Some(Transition::HalfOpened))
            }
            State::HalfOpen { probe_until } => (probe_until.map_or(true, |t| now >= t), None),
        }
    }

    /// Marks the half-open probe as handed out (the decision picked this model).
    pub fn take_probe(&mut self, key: &BreakerKey, now: f64, p: &BreakerPolicy) {
        if let Some(b) = self.map.get_mut(key) {
            if let State::HalfOpen { .. } = b.state {
                b.state = State::HalfOpen {
                    probe_until: Some(now + p.open_s.max(1e-3)),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_cycle() {
        let p = BreakerPolicy {
            failures_to_open: 2,
            open_s: 10.0,
        };
        let k = BreakerKey::Model("m".into());
        let mut b = Breakers::default();
        assert_eq!(b.on_outcome(k.clone(), Status::Error, 0.0, &p), None);
        assert_eq!(
            b.on_outcome(k.clone(), Status::Timeout, 1.0, &p),
            Some(Transition::Opened)
        );
        assert_eq!(b.admit(&k, 5.0), (false, None));
        assert_eq!(b.admit(&k, 11.0), (true, Some(Transition::HalfOpened)));
        b.take_probe(&k, 11.0, &p);
        assert_eq!(b.admit(&k, 12.0), (false, None), "one probe at a time");
        assert_eq!(
            b.on_outcome(k.clone(), Status::Error, 13.0, &p),
            Some(Transition::Opened)
        );
        assert_eq!(b.admit(&k, 24.0), (true, Some(Transition::HalfOpened)));
        b.take_probe(&k, 24.0, &p);
        assert_eq!(
            b.on_outcome(k.clone(), Status::Failure, 25.0, &p),
            Some(Transition::Closed)
        );
        assert_eq!(b.admit(&k, 25.0), (true, None));
        assert_eq!(b.active(), 0);
    }

    #[test]
    fn success_resets_the_count() {
        let p = BreakerPolicy {
            failures_to_open: 2,
            open_s: 10.0,
        };
        let k = BreakerKey::Provider("x".into());
        let mut b = Breakers::default();
        for s in [
            Status::Error,
            Status::Success,
            Status::Error,
            Status::Cancelled,
        ] {
            assert_eq!(b.on_outcome(k.clone(), s, 0.0, &p), None);
        }
        assert_eq!(
            b.on_outcome(k, Status::Error, 0.0, &p),
            Some(Transition::Opened)
        );
    }
}
