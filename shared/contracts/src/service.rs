//! The service identity: which of the three services owns a queue or
//! publishes an event. Its own module so that both the events (their
//! `source`) and the topology (owners and publishers) can name it without
//! importing each other.

/// One of the three services. Owners of queues and publishers of events are
/// named by this, so least-privilege policies can be derived from the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Order,
    Invoice,
    Notification,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::Order, Service::Invoice, Service::Notification];

    /// The name used as the CloudEvents `source` of everything this service emits,
    /// and as the EventBridge `source` of its events.
    pub fn source(self) -> &'static str {
        match self {
            Service::Order => "order-service",
            Service::Invoice => "invoice-service",
            Service::Notification => "notification-service",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::Order => "order",
            Service::Invoice => "invoice",
            Service::Notification => "notification",
        }
    }
}
