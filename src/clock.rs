//! Time, injected: every decision that depends on the time (session timeouts, assertion
//! validity, pending sign-ins) reads a `Clock`, so tests run at a fixed instant, such
//! as the real Entra response's 2022 window.

/// Source of the current time; injected so tests can validate at a fixed instant.
pub trait Clock: Send + Sync {
    fn now(&self) -> chrono::DateTime<chrono::Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
}

/// A clock stopped at one instant (tests, replays of recorded responses).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub chrono::DateTime<chrono::Utc>);

impl Clock for FixedClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks() {
        let t = chrono::DateTime::from_timestamp(1_645_638_600, 0).unwrap();
        let clocks: [&dyn Clock; 2] = [&FixedClock(t), &SystemClock];
        assert_eq!(clocks[0].now(), t);
        assert!(clocks[1].now() > t);
    }
}
