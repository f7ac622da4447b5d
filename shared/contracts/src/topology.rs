//! The messaging topology, declared once.
//!
//! Every name of a topic, bus, queue, dead-letter queue, rule and archive lives
//! here and nowhere else. The provisioner (`infra`) reads this declaration to
//! create the resources; the services read it to know where to publish and which
//! queues to consume; the tests read it to inspect what was built. A name is
//! never typed twice, so renaming a queue is a one-line change.
//!
//! The shape:
//!
//! ```text
//! order ──▶ SNS topic `orders` ──filter: event_type──▶ SQS invoice-orders       ──▶ invoice
//!                                └─filter: event_type──▶ SQS notification-orders ──▶ notification
//! invoice ─▶ EventBridge bus `billing` ─rule─▶ SQS order-invoices        ──▶ order
//!                                      └rule─▶ SQS notification-invoices ──▶ notification
//! ```
//!
//! Each queue has a dead-letter queue `<queue>-dlq` fed by a redrive policy, and
//! each queue accepts messages only from the topic or rule that owns it.
//!
//! The order chain comes in two kinds, chosen by `ORDERS_CHAIN`:
//! - `standard` (the default): an SNS standard topic to SQS standard queues.
//!   Nearly unlimited throughput; messages may arrive out of order and more
//!   than once, so the consumers' domain rules and inboxes handle both.
//! - `fifo`: `orders.fifo` to `invoice-orders.fifo` and
//!   `notification-orders.fifo`, with the order id as `MessageGroupId` and the
//!   event id as `MessageDeduplicationId`. One order's events arrive in the
//!   order they were written, and a republished event within five minutes is
//!   dropped by SQS; in exchange a topic takes 300 publishes a second (3,000
//!   messages in batches), and a message being retried holds back the rest of
//!   its order's group.
//!
//! The invoice chain stays on EventBridge, which has no FIFO delivery.

use crate::events::EventType;
pub use crate::service::Service;

/// The SNS message attribute that carries the event type; subscription filter
/// policies match on it.
pub const EVENT_TYPE_ATTRIBUTE: &str = "event_type";

/// How many times a message may be received before SQS moves it to the DLQ.
pub const MAX_RECEIVE_COUNT: u32 = 5;

/// Where a service's events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// An SNS topic, fanned out to SQS queues with raw message delivery.
    Topic(TopicSpec),
    /// An EventBridge bus, routed to SQS queues by rules.
    Bus(BusSpec),
}

impl Channel {
    pub fn name(&self) -> &'static str {
        match self {
            Channel::Topic(t) => t.name,
            Channel::Bus(b) => b.name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: &'static str,
    pub publisher: Service,
    /// An SNS FIFO topic: messages carry a group id and a deduplication id.
    pub fifo: bool,
}

/// Which kind of SNS/SQS chain carries the order events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Chain {
    #[default]
    Standard,
    Fifo,
}

impl Chain {
    /// The variable that selects the chain, read by the services, the
    /// provisioner and the tools alike.
    pub const VARIABLE: &str = "ORDERS_CHAIN";

    pub fn as_str(self) -> &'static str {
        match self {
            Chain::Standard => "standard",
            Chain::Fifo => "fifo",
        }
    }
}

impl std::str::FromStr for Chain {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "standard" => Ok(Chain::Standard),
            "fifo" => Ok(Chain::Fifo),
            other => Err(format!("'{other}' is neither standard nor fifo")),
        }
    }
}

impl std::fmt::Display for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusSpec {
    pub name: &'static str,
    pub publisher: Service,
    /// The archive that keeps every event on the bus, so a time window can be replayed.
    pub archive: &'static str,
    pub archive_retention_days: i32,
}

/// How a message arrives in a queue, which decides how its body is unwrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// SNS raw message delivery: the body is our envelope, attributes are kept.
    SnsRaw,
    /// An EventBridge rule target: the body is EventBridge's event and our
    /// envelope is its `detail`.
    EventBridge,
}

/// What feeds a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A subscription to an SNS topic with a filter policy on the event type.
    Subscription { topic: &'static str },
    /// A rule on an EventBridge bus whose pattern matches the event types.
    Rule {
        bus: &'static str,
        rule: &'static str,
    },
}

/// A queue one service consumes, with the event types it should carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: &'static str,
    pub consumer: Service,
    pub source: Source,
    pub event_types: &'static [EventType],
    /// Long enough for a handler to finish; the consumer extends it when not.
    pub visibility_timeout_secs: i32,
    pub max_receive_count: u32,
    /// An SQS FIFO queue (its name ends in `.fifo`, and so does its DLQ's).
    pub fifo: bool,
}

impl QueueSpec {
    /// The dead-letter queue that the redrive policy moves poison messages to:
    /// `<queue>-dlq`, or `<queue>-dlq.fifo` for a FIFO queue (a FIFO queue's
    /// DLQ must be FIFO too).
    pub fn dlq_name(&self) -> String {
        match self.name.strip_suffix(".fifo") {
            Some(base) => format!("{base}-dlq.fifo"),
            None => format!("{}-dlq", self.name),
        }
    }

    pub fn delivery(&self) -> Delivery {
        match self.source {
            Source::Subscription { .. } => Delivery::SnsRaw,
            Source::Rule { .. } => Delivery::EventBridge,
        }
    }

    /// The service whose events arrive on this queue: anything else is forged.
    pub fn expected_source(&self) -> Service {
        let declared = Topology::declare(if self.fifo {
            Chain::Fifo
        } else {
            Chain::Standard
        });
        match self.source {
            Source::Subscription { topic } => declared.topic(topic).publisher,
            Source::Rule { bus, .. } => declared.bus(bus).publisher,
        }
    }
}

/// The whole topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub topics: Vec<TopicSpec>,
    pub buses: Vec<BusSpec>,
    pub queues: Vec<QueueSpec>,
}

pub const ORDERS_TOPIC: &str = "orders";
pub const ORDERS_FIFO_TOPIC: &str = "orders.fifo";
pub const BILLING_BUS: &str = "billing";

const ORDER_EVENTS: &[EventType] = &[EventType::OrderPlaced, EventType::OrderCancelled];
const INVOICE_EVENTS: &[EventType] = &[EventType::InvoiceIssued, EventType::InvoiceVoided];

/// The topology with the standard order chain, the default.
pub fn topology() -> Topology {
    Topology::declare(Chain::Standard)
}

impl Topology {
    /// The one declaration of the topology, with the order chain of kind `chain`.
    pub fn declare(chain: Chain) -> Topology {
        let fifo = chain == Chain::Fifo;
        let (orders_topic, invoice_orders, notification_orders) = match chain {
            Chain::Standard => (ORDERS_TOPIC, "invoice-orders", "notification-orders"),
            Chain::Fifo => (
                ORDERS_FIFO_TOPIC,
                "invoice-orders.fifo",
                "notification-orders.fifo",
            ),
        };
        Topology {
            topics: vec![TopicSpec {
                name: orders_topic,
                publisher: Service::Order,
                fifo,
            }],
            buses: vec![BusSpec {
                name: BILLING_BUS,
                publisher: Service::Invoice,
                archive: "billing-archive",
                archive_retention_days: 14,
            }],
            queues: vec![
                QueueSpec {
                    name: invoice_orders,
                    consumer: Service::Invoice,
                    source: Source::Subscription {
                        topic: orders_topic,
                    },
                    event_types: ORDER_EVENTS,
                    visibility_timeout_secs: 30,
                    max_receive_count: MAX_RECEIVE_COUNT,
                    fifo,
                },
                QueueSpec {
                    name: notification_orders,
                    consumer: Service::Notification,
                    source: Source::Subscription {
                        topic: orders_topic,
                    },
                    event_types: ORDER_EVENTS,
                    visibility_timeout_secs: 30,
                    max_receive_count: MAX_RECEIVE_COUNT,
                    fifo,
                },
                QueueSpec {
                    name: "order-invoices",
                    consumer: Service::Order,
                    source: Source::Rule {
                        bus: BILLING_BUS,
                        rule: "invoice-events-to-order",
                    },
                    event_types: INVOICE_EVENTS,
                    visibility_timeout_secs: 30,
                    max_receive_count: MAX_RECEIVE_COUNT,
                    fifo: false,
                },
                QueueSpec {
                    name: "notification-invoices",
                    consumer: Service::Notification,
                    source: Source::Rule {
                        bus: BILLING_BUS,
                        rule: "invoice-events-to-notification",
                    },
                    event_types: INVOICE_EVENTS,
                    visibility_timeout_secs: 30,
                    max_receive_count: MAX_RECEIVE_COUNT,
                    fifo: false,
                },
            ],
        }
    }

    /// Panics on a name that is not declared: names come from this module, so a
    /// miss is a programming error, not an input error.
    pub fn topic(&self, name: &str) -> &TopicSpec {
        self.topics
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("topic {name} is not declared in the topology"))
    }

    pub fn bus(&self, name: &str) -> &BusSpec {
        self.buses
            .iter()
            .find(|b| b.name == name)
            .unwrap_or_else(|| panic!("bus {name} is not declared in the topology"))
    }

    /// Where `service` publishes its events, if it publishes any.
    pub fn channel_of(&self, service: Service) -> Option<Channel> {
        if let Some(t) = self.topics.iter().find(|t| t.publisher == service) {
            return Some(Channel::Topic(t.clone()));
        }
        self.buses
            .iter()
            .find(|b| b.publisher == service)
            .map(|b| Channel::Bus(b.clone()))
    }

    /// The queues `service` consumes.
    pub fn queues_of(&self, service: Service) -> Vec<QueueSpec> {
        self.queues
            .iter()
            .filter(|q| q.consumer == service)
            .cloned()
            .collect()
    }

    /// The queues fed by `topic`.
    pub fn subscribers_of(&self, topic: &str) -> impl Iterator<Item = &QueueSpec> {
        self.queues
            .iter()
            .filter(move |q| matches!(q.source, Source::Subscription { topic: t } if t == topic))
    }

    /// The queues fed by rules on `bus`.
    pub fn rule_targets_on<'a>(&'a self, bus: &'a str) -> impl Iterator<Item = &'a QueueSpec> {
        self.queues
            .iter()
            .filter(move |q| matches!(q.source, Source::Rule { bus: b, .. } if b == bus))
    }
}

/// The SNS subscription filter policy for a queue: only its event types.
pub fn filter_policy(queue: &QueueSpec) -> serde_json::Value {
    let types: Vec<&str> = queue.event_types.iter().map(|t| t.as_str()).collect();
    serde_json::json!({ EVENT_TYPE_ATTRIBUTE: types })
}

/// The EventBridge rule pattern for a queue: events from the bus's publisher,
/// of the queue's event types.
pub fn rule_pattern(queue: &QueueSpec) -> serde_json::Value {
    let types: Vec<&str> = queue.event_types.iter().map(|t| t.as_str()).collect();
    serde_json::json!({
        "source": [queue.expected_source().source()],
        "detail-type": types,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_queue_name_is_unique_and_no_dlq_collides_with_a_queue() {
        let t = topology();
        let mut names: Vec<String> = t.queues.iter().map(|q| q.name.to_string()).collect();
        names.extend(t.queues.iter().map(QueueSpec::dlq_name));
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
    }

    #[test]
    fn every_queue_only_carries_events_its_source_publishes() {
        let t = topology();
        for q in &t.queues {
            for ty in q.event_types {
                assert_eq!(
                    ty.publisher(),
                    q.expected_source(),
                    "{} on {}",
                    ty.as_str(),
                    q.name
                );
            }
        }
    }

    #[test]
    fn each_service_publishes_on_the_channel_its_events_belong_to() {
        let t = topology();
        assert_eq!(
            t.channel_of(Service::Order).map(|c| c.name()),
            Some(ORDERS_TOPIC)
        );
        assert_eq!(
            t.channel_of(Service::Invoice).map(|c| c.name()),
            Some(BILLING_BUS)
        );
        assert_eq!(t.channel_of(Service::Notification), None);
    }

    #[test]
    fn the_notification_service_consumes_both_chains() {
        let names: Vec<_> = topology()
            .queues_of(Service::Notification)
            .iter()
            .map(|q| q.name)
            .collect();
        assert_eq!(names, ["notification-orders", "notification-invoices"]);
    }

    #[test]
    fn the_fifo_chain_names_end_in_fifo_and_so_do_their_dlqs() {
        let t = Topology::declare(Chain::Fifo);
        assert_eq!(t.topics[0].name, "orders.fifo");
        assert!(t.topics[0].fifo);
        let invoice = t.queues_of(Service::Invoice).remove(0);
        assert_eq!(invoice.name, "invoice-orders.fifo");
        assert_eq!(invoice.dlq_name(), "invoice-orders-dlq.fifo");
        assert_eq!(invoice.expected_source(), Service::Order);
        // The invoice chain is EventBridge in both.
        let order = t.queues_of(Service::Order).remove(0);
        assert!(!order.fifo);
        assert_eq!(order.dlq_name(), "order-invoices-dlq");
        assert_eq!("fifo".parse::<Chain>(), Ok(Chain::Fifo));
        assert!("FIFO".parse::<Chain>().is_err());
    }

    #[test]
    fn filter_policy_lists_only_the_queue_event_types() {
        let t = topology();
        let q = t.queues_of(Service::Invoice).remove(0);
        assert_eq!(
            filter_policy(&q),
            serde_json::json!({"event_type": ["OrderPlaced", "OrderCancelled"]})
        );
    }

    #[test]
    fn rule_pattern_matches_the_invoice_service_source_and_types() {
        let t = topology();
        let q = t.queues_of(Service::Order).remove(0);
        assert_eq!(
            rule_pattern(&q),
            serde_json::json!({"source": ["invoice-service"], "detail-type": ["InvoiceIssued", "InvoiceVoided"]})
        );
    }
}
