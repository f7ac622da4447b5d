//! The buffer in front of the fault, sampled once a second: the depth of the
//! queue the faulted consumer reads (visible and in flight), or the outbox
//! backlog where the fault is the broker.
//!
//! The timeline's rates show that orders are accepted while a consumer is
//! away and caught up after; this line shows where the work waited meanwhile:
//! the queue fills during the fault and drains after the heal. It is the
//! picture of the claim the experiments test.

use std::time::Duration;

use contracts::topology::{Service, Topology};
use harness::observe::Observer;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::experiment::Experiment;

/// Where an experiment's work waits while its fault lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Buffer {
    /// A queue, by name: messages visible and in flight.
    Queue(String),
    /// A service's outbox: events committed and not yet published.
    Outbox(Service),
}

impl Buffer {
    /// The buffer of `experiment` in `topology`: the first queue of the
    /// service the fault takes away, or the order outbox when the fault is
    /// the broker or the order service's publish.
    pub fn of(experiment: Experiment, topology: &Topology) -> Option<Buffer> {
        let queue_of = |service| {
            topology
                .queues_of(service)
                .first()
                .map(|q| Buffer::Queue(q.name.to_string()))
        };
        match experiment {
            Experiment::InvoiceDown
            | Experiment::InvoiceCrashLoop
            | Experiment::InvoiceCutOff
            | Experiment::InvoiceDbDown
            | Experiment::RollingRestart
            | Experiment::SyncVsAsync => queue_of(Service::Invoice),
            Experiment::NotificationHang => queue_of(Service::Notification),
            Experiment::OrderCrashMidPublish
            | Experiment::EmulatorPause
            | Experiment::EmulatorRestart => Some(Buffer::Outbox(Service::Order)),
        }
    }

    /// The chart's legend and the report's name for it.
    pub fn label(&self) -> String {
        match self {
            Buffer::Queue(name) => format!("{name} depth (right axis)"),
            Buffer::Outbox(service) => format!("{} outbox backlog (right axis)", service.name()),
        }
    }

    async fn depth(&self, observer: &Observer) -> anyhow::Result<u64> {
        Ok(match self {
            Buffer::Queue(name) => infra::dlq::depth_of(&observer.sqs, name).await?.total(),
            Buffer::Outbox(service) => observer.outbox_backlog(*service).await?.max(0) as u64,
        })
    }
}

/// Samples a buffer until stopped.
pub struct Sampler {
    stop: CancellationToken,
    task: JoinHandle<Vec<(f64, u64)>>,
}

impl Sampler {
    /// Samples `buffer` through `observer` once a second, timed from `start`.
    /// A sample that fails (the broker or the database is the fault) is
    /// skipped: the line has a gap there, not a made-up value.
    pub fn start(buffer: Buffer, observer: Observer, start: tokio::time::Instant) -> Sampler {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stopped.cancelled() => break,
                    _ = tick.tick() => {}
                }
                // A depth that does not come back within the second is
                // skipped, so a frozen broker cannot stall the sampler.
                let depth = tokio::time::timeout(Duration::from_secs(1), buffer.depth(&observer));
                if let Ok(Ok(depth)) = depth.await {
                    samples.push((start.elapsed().as_secs_f64(), depth));
                }
            }
            samples
        });
        Sampler { stop, task }
    }

    /// Stops sampling; returns every sample, `(seconds since start, depth)`.
    pub async fn stop(self) -> Vec<(f64, u64)> {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::topology::Chain;

    #[test]
    fn each_experiment_watches_the_buffer_in_front_of_its_fault() {
        let standard = Topology::declare(Chain::Standard);
        assert_eq!(
            Buffer::of(Experiment::InvoiceDown, &standard),
            Some(Buffer::Queue("invoice-orders".into()))
        );
        assert_eq!(
            Buffer::of(Experiment::EmulatorPause, &standard),
            Some(Buffer::Outbox(Service::Order))
        );
        let fifo = Topology::declare(Chain::Fifo);
        assert_eq!(
            Buffer::of(Experiment::InvoiceDbDown, &fifo),
            Some(Buffer::Queue("invoice-orders.fifo".into()))
        );
        for experiment in Experiment::ALL {
            assert!(Buffer::of(experiment, &standard).is_some(), "{experiment}");
        }
    }
}
