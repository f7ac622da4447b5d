//! When the relay claims its next batch: the relay's decisions as a pure
//! state machine, tested without a database or a broker.
//!
//! Claims are made one after the other by the relay's loop; each claimed
//! batch is then published on a task of its own, so up to
//! `RELAY_MAX_IN_FLIGHT` publish calls wait on the broker at once while the
//! loop claims the next batch. The pacer says, at any moment, whether to
//! claim now or what to wait for:
//!
//! - **in flight**: never more batches than `max_in_flight`; a full slot
//!   waits for a publish to finish.
//! - **more work**: a claim that filled its batch says more rows are waiting,
//!   so the next claim follows at once (up to the in-flight limit). A claim
//!   that found fewer says the outbox is drained for now: the next claim
//!   waits for a NOTIFY of a commit or the fallback poll.
//! - **linger** (`RELAY_LINGER_MS`): after a *partial, non-empty* claim (rows
//!   are flowing, but fewer than a batch), the next claim waits until the
//!   linger has passed since that claim, or until a batch's worth of commits
//!   has been notified, whichever comes first, so batches fill under load
//!   instead of going out one event per call. After an empty claim (an idle
//!   outbox) the next commit is claimed at once, and no event ever waits
//!   longer than the linger for it.
//! - **backoff**: a failed claim or publish holds new claims back for the
//!   backoff's delay (batches already in flight go on); one failure while
//!   already backing off does not grow the delay again, so N batches failing
//!   together count as one failure.

use std::time::Duration;

use tokio::time::Instant;

/// What the relay does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Claim a batch now.
    Claim,
    /// Wait for a publish to finish, a NOTIFY or shutdown, and at the
    /// latest until the instant (when there is one).
    Wait(Option<Instant>),
}

#[derive(Debug)]
pub struct Pacer {
    max_in_flight: usize,
    batch_size: usize,
    linger: Duration,
    poll_interval: Duration,
    in_flight: usize,
    /// The last claim filled its batch, or a commit was notified since.
    more: bool,
    /// When the outbox is looked at again without a NOTIFY.
    poll_at: Instant,
    /// No claim before this instant, unless enough commits are notified.
    linger_until: Option<Instant>,
    notified_since_claim: usize,
    /// No claim before this instant: the relay is backing off.
    retry_at: Option<Instant>,
}

impl Pacer {
    pub fn new(
        max_in_flight: u32,
        batch_size: u32,
        linger: Duration,
        poll_interval: Duration,
        now: Instant,
    ) -> Self {
        Pacer {
            max_in_flight: max_in_flight.max(1) as usize,
            batch_size: batch_size.max(1) as usize,
            linger,
            poll_interval,
            in_flight: 0,
            // Rows may have been committed while the relay was down.
            more: true,
            poll_at: now,
            linger_until: None,
            notified_since_claim: 0,
            retry_at: None,
        }
    }

    pub fn next(&self, now: Instant) -> Next {
        if self.in_flight >= self.max_in_flight {
            return Next::Wait(None);
        }
        if let Some(retry_at) = self.retry_at.filter(|at| now < *at) {
            return Next::Wait(Some(retry_at));
        }
        if !self.more && now < self.poll_at {
            return Next::Wait(Some(self.poll_at));
        }
        match self.linger_until {
            Some(until) if now < until && self.notified_since_claim < self.batch_size => {
                Next::Wait(Some(until))
            }
            _ => Next::Claim,
        }
    }

    /// A claim returned `rows` rows; when there were any, their batch is now
    /// in flight.
    pub fn claimed(&mut self, rows: usize, now: Instant) {
        if rows > 0 {
            self.in_flight += 1;
        }
        self.more = rows >= self.batch_size;
        self.notified_since_claim = 0;
        self.linger_until = (rows > 0 && rows < self.batch_size && !self.linger.is_zero())
            .then(|| now + self.linger);
        if !self.more {
            self.poll_at = now + self.poll_interval;
        }
    }

    /// Postgres notified a commit on the outbox.
    pub fn notified(&mut self) {
        self.more = true;
        self.notified_since_claim += 1;
    }

    /// A batch in flight was published (whatever its entries' outcomes).
    pub fn published(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.retry_at = None;
    }

    /// A claim or a batch in flight failed as a whole; `in_flight` says which.
    /// Returns whether the backoff should advance (false while already
    /// backing off, so batches failing together count once).
    pub fn failed(&mut self, was_in_flight: bool, now: Instant) -> bool {
        if was_in_flight {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        // The rows of a failed batch are unlocked again: try them after the backoff.
        self.more = true;
        self.retry_at.is_none_or(|at| now >= at)
    }

    /// Holds claims back until `now + delay`.
    pub fn back_off(&mut self, delay: Duration, now: Instant) {
        self.retry_at = Some(now + delay);
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: Duration = Duration::from_secs(1);
    const LINGER: Duration = Duration::from_millis(5);

    fn pacer(max_in_flight: u32, linger: Duration) -> (Pacer, Instant) {
        let now = Instant::now();
        (Pacer::new(max_in_flight, 10, linger, POLL, now), now)
    }

    #[test]
    fn a_relay_that_starts_claims_at_once() {
        let (p, now) = pacer(4, LINGER);
        assert_eq!(p.next(now), Next::Claim);
    }

    #[test]
    fn full_batches_are_claimed_back_to_back_up_to_the_in_flight_limit() {
        let (mut p, now) = pacer(3, Duration::ZERO);
        for _ in 0..3 {
            assert_eq!(p.next(now), Next::Claim);
            p.claimed(10, now);
        }
        assert_eq!(p.in_flight(), 3);
        assert_eq!(p.next(now), Next::Wait(None), "every slot is busy");
        p.published();
        assert_eq!(p.next(now), Next::Claim, "a slot is free and rows wait");
    }

    #[test]
    fn one_in_flight_is_the_single_flight_relay() {
        let (mut p, now) = pacer(1, Duration::ZERO);
        p.claimed(10, now);
        assert_eq!(p.next(now), Next::Wait(None));
        p.published();
        assert_eq!(p.next(now), Next::Claim);
    }

    #[test]
    fn a_drained_outbox_waits_for_a_notify_or_the_poll() {
        let (mut p, now) = pacer(4, Duration::ZERO);
        p.claimed(3, now);
        assert_eq!(p.next(now), Next::Wait(Some(now + POLL)));
        assert_eq!(p.next(now + POLL), Next::Claim, "the fallback poll");
        p.notified();
        assert_eq!(p.next(now), Next::Claim, "a commit was notified");
    }

    #[test]
    fn an_idle_relays_first_event_is_claimed_without_lingering() {
        let (mut p, now) = pacer(4, LINGER);
        p.claimed(0, now);
        p.notified();
        assert_eq!(p.next(now + Duration::from_micros(1)), Next::Claim);
    }

    #[test]
    fn after_a_partial_claim_the_next_lingers_until_a_batch_is_notified_or_the_linger_ends() {
        let (mut p, now) = pacer(4, LINGER);
        p.claimed(3, now);
        p.notified();
        let soon = now + Duration::from_millis(1);
        assert_eq!(p.next(soon), Next::Wait(Some(now + LINGER)));
        assert_eq!(
            p.next(now + LINGER),
            Next::Claim,
            "never longer than the linger"
        );
        for _ in 0..9 {
            p.notified();
        }
        assert_eq!(p.next(soon), Next::Claim, "a batch's worth of commits");
    }

    #[test]
    fn without_a_linger_a_partial_claim_is_followed_at_the_next_notify() {
        let (mut p, now) = pacer(4, Duration::ZERO);
        p.claimed(3, now);
        p.notified();
        assert_eq!(p.next(now), Next::Claim);
    }

    #[test]
    fn failures_hold_claims_back_and_count_once_while_backing_off() {
        let (mut p, now) = pacer(4, Duration::ZERO);
        p.claimed(10, now);
        p.claimed(10, now);
        assert!(
            p.failed(true, now),
            "the first failure advances the backoff"
        );
        p.back_off(Duration::from_secs(2), now);
        assert!(
            !p.failed(true, now),
            "the second, while backing off, does not"
        );
        assert_eq!(p.in_flight(), 0);
        assert_eq!(
            p.next(now + Duration::from_secs(1)),
            Next::Wait(Some(now + Duration::from_secs(2)))
        );
        assert_eq!(p.next(now + Duration::from_secs(2)), Next::Claim);
        assert!(
            p.failed(false, now + Duration::from_secs(3)),
            "a later failure counts"
        );
    }
}
