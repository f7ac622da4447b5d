//! A receive kept going while the worker is busy with the batch before it.
//!
//! A future makes progress only while it is polled; a receive merely stored
//! while the batch is handled would not even be sent. `Poll` holds the
//! receive and drives it `beside` whatever the worker does meanwhile (handle
//! the batch, wait for the database), keeping what it returns until the
//! worker `take`s it. Everything stays in the worker's one task: no task is
//! spawned that the shutdown would have to find, and dropping the worker
//! drops its poll like any other.
//!
//! One poll ahead at most: the worker starts the next receive only when it has
//! taken the last one's batch. So a worker holds at most two batches (twenty
//! messages), one handled and one waiting, and the heartbeat keeps both hidden.

use std::future::Future;
use std::pin::Pin;

/// A receive in flight, or what it returned.
pub(super) struct Poll<'a, T> {
    state: State<'a, T>,
}

enum State<'a, T> {
    InFlight(Pin<Box<dyn Future<Output = T> + Send + 'a>>),
    Returned(T),
    Taken,
}

impl<'a, T> Poll<'a, T> {
    pub(super) fn start(receive: impl Future<Output = T> + Send + 'a) -> Self {
        Poll {
            state: State::InFlight(Box::pin(receive)),
        }
    }

    /// Runs `work` to its end while the receive goes on; what the receive
    /// returns meanwhile is kept for `take`.
    pub(super) async fn beside<W: Future>(&mut self, work: W) -> W::Output {
        let mut work = std::pin::pin!(work);
        if let State::InFlight(receive) = &mut self.state {
            tokio::select! {
                biased;
                out = &mut work => return out,
                returned = receive.as_mut() => self.state = State::Returned(returned),
            }
        }
        work.await
    }

    /// What the receive returned, waiting for it if need be. Cancelling this
    /// loses nothing: the receive stays in flight for the next call.
    ///
    /// # Panics
    /// When called again after it returned.
    pub(super) async fn take(&mut self) -> T {
        if let State::InFlight(receive) = &mut self.state {
            let returned = receive.as_mut().await;
            self.state = State::Returned(returned);
        }
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Returned(returned) => returned,
            State::InFlight(_) | State::Taken => unreachable!("a poll is taken once"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn the_receive_makes_progress_while_the_batch_is_handled() {
        let sent = Arc::new(AtomicBool::new(false));
        let (answer, answered) = oneshot::channel::<u32>();
        let receive = {
            let sent = sent.clone();
            async move {
                sent.store(true, Ordering::SeqCst);
                answered.await.unwrap_or(0)
            }
        };
        let mut poll = Poll::start(receive);
        // The work finishes only once the receive has been sent: it would
        // wait forever if the poll were not driven beside it.
        let handled = poll
            .beside(async {
                while !sent.load(Ordering::SeqCst) {
                    tokio::task::yield_now().await;
                }
                answer.send(7).ok();
                "handled"
            })
            .await;
        assert_eq!(handled, "handled");
        assert_eq!(poll.take().await, 7);
    }

    #[tokio::test]
    async fn what_returns_during_the_work_is_kept_for_take() {
        let mut poll = Poll::start(async { 3 });
        let (done, wait) = oneshot::channel::<()>();
        let work = async {
            wait.await.ok();
        };
        // The receive returns first; the work goes on to its end.
        done.send(()).ok();
        poll.beside(work).await;
        assert_eq!(poll.take().await, 3);
    }

    #[tokio::test]
    async fn a_cancelled_take_leaves_the_receive_in_flight() {
        let (answer, answered) = oneshot::channel::<u32>();
        let mut poll = Poll::start(async move { answered.await.unwrap_or(0) });
        tokio::select! {
            biased;
            _ = poll.take() => panic!("the receive has not returned"),
            () = tokio::task::yield_now() => {}
        }
        answer.send(5).ok();
        assert_eq!(poll.take().await, 5);
    }
}
