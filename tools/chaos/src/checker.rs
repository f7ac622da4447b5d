//! The verdict over a whole run, as Jepsen judges a history.
//!
//! The load recorded every attempt as `ok`, `fail` or `unknown`; after the
//! fault healed and everything drained, the system's state was read from all
//! three services. The checker holds the two against each other:
//!
//! - **no loss**: every `ok` order is `INVOICED`, has exactly one invoice and
//!   exactly the expected notifications (order received, invoice issued);
//! - **no double effect**: no attempt placed two orders, no order has two
//!   invoices, no event two notifications;
//! - **nothing unexpected**: no order for an attempt that was never made or
//!   was definitely refused, no invoice for an order the order service does
//!   not know;
//! - **unknown attempts**: each placed zero or one order, and a placed one
//!   obeys the no-loss rule;
//! - **drained**: outboxes and queues are empty, and the DLQs hold exactly the
//!   messages poisoned on purpose;
//! - **accounting**: each inbox absorbed at least the duplicates injected
//!   into its queues.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use uuid::Uuid;

use harness::load::{Attempt, Outcome};
use harness::observe::SystemState;

/// One pass/fail line of a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Criterion {
    pub name: String,
    /// What must hold, in words.
    pub requirement: String,
    pub pass: bool,
    /// What was seen.
    pub observed: String,
}

impl Criterion {
    pub fn new(name: &str, requirement: &str, pass: bool, observed: impl Into<String>) -> Self {
        Criterion {
            name: name.to_string(),
            requirement: requirement.to_string(),
            pass,
            observed: observed.into(),
        }
    }
}

/// A message put into a queue on purpose that must end in its DLQ.
#[derive(Debug, Clone, Serialize)]
pub struct Poison {
    pub dlq: String,
    /// A text only that message's body contains.
    pub marker: String,
}

/// What the run did on purpose, which the state must reflect.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Expectations {
    /// Copies of already-handled events sent to each service's queues.
    pub injected_duplicates: BTreeMap<String, i64>,
    pub poison: Vec<Poison>,
}

/// The notification event types every completed order has, once each.
const EXPECTED_NOTIFICATIONS: [&str; 2] = ["InvoiceIssued", "OrderPlaced"];

/// What the state says about one order.
struct OrderFacts<'a> {
    status: Option<&'a str>,
    invoices: usize,
    notifications: Vec<&'a str>,
}

impl OrderFacts<'_> {
    /// `None` when the order is complete; otherwise what is missing or extra.
    fn problem(&self) -> Option<String> {
        let mut kinds = self.notifications.clone();
        kinds.sort();
        if self.status != Some("INVOICED") {
            Some(format!("status {:?}", self.status))
        } else if self.invoices != 1 {
            Some(format!("{} invoices", self.invoices))
        } else if kinds != EXPECTED_NOTIFICATIONS {
            Some(format!("notifications {kinds:?}"))
        } else {
            None
        }
    }
}

/// At most five examples, for a readable verdict.
fn examples<T: std::fmt::Display>(items: &[T]) -> String {
    let shown: Vec<String> = items.iter().take(5).map(|i| i.to_string()).collect();
    let more = items.len().saturating_sub(5);
    if more > 0 {
        format!("{} (and {more} more)", shown.join("; "))
    } else {
        shown.join("; ")
    }
}

/// Judges `history` against `state`.
pub fn check(history: &[Attempt], state: &SystemState, expect: &Expectations) -> Vec<Criterion> {
    let mut orders_of: HashMap<&str, Vec<&harness::observe::OrderRow>> = HashMap::new();
    for order in &state.orders {
        orders_of.entry(&order.customer_id).or_default().push(order);
    }
    let status_of: HashMap<Uuid, &str> = state
        .orders
        .iter()
        .map(|o| (o.id, o.status.as_str()))
        .collect();
    let mut invoices_of: HashMap<Uuid, usize> = HashMap::new();
    for invoice in &state.invoices {
        *invoices_of.entry(invoice.order_id).or_default() += 1;
    }
    let mut notifications_of: HashMap<Uuid, Vec<&str>> = HashMap::new();
    for n in &state.notifications {
        notifications_of
            .entry(n.order_id)
            .or_default()
            .push(&n.event_type);
    }
    let facts = |id: Uuid| OrderFacts {
        status: status_of.get(&id).copied(),
        invoices: invoices_of.get(&id).copied().unwrap_or(0),
        notifications: notifications_of.get(&id).cloned().unwrap_or_default(),
    };

    let ok: Vec<&Attempt> = history
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Ok { .. }))
        .collect();
    let lost: Vec<String> = ok
        .iter()
        .filter_map(|a| {
            let id = a.order_id()?;
            facts(id).problem().map(|p| format!("{id}: {p}"))
        })
        .collect();
    let no_loss = Criterion::new(
        "no loss",
        "every accepted order is INVOICED, with one invoice and the order-received and invoice-issued notifications",
        lost.is_empty(),
        if lost.is_empty() {
            format!("{} accepted orders, all complete", ok.len())
        } else {
            format!(
                "{} of {} accepted orders incomplete: {}",
                lost.len(),
                ok.len(),
                examples(&lost)
            )
        },
    );

    let mut doubles = Vec::new();
    for (customer, orders) in &orders_of {
        if orders.len() > 1 {
            doubles.push(format!("attempt {customer} placed {} orders", orders.len()));
        }
    }
    for (order, n) in &invoices_of {
        if *n > 1 {
            doubles.push(format!("order {order} has {n} invoices"));
        }
    }
    let mut per_event: HashMap<Uuid, usize> = HashMap::new();
    let mut per_order_and_type: HashMap<(Uuid, &str), usize> = HashMap::new();
    for n in &state.notifications {
        *per_event.entry(n.event_id).or_default() += 1;
        *per_order_and_type
            .entry((n.order_id, &n.event_type))
            .or_default() += 1;
    }
    for (event, n) in &per_event {
        if *n > 1 {
            doubles.push(format!("event {event} has {n} notifications"));
        }
    }
    for ((order, ty), n) in &per_order_and_type {
        if *n > 1 {
            doubles.push(format!("order {order} has {n} {ty} notifications"));
        }
    }
    doubles.sort();
    let no_double = Criterion::new(
        "no double effect",
        "no attempt placed two orders, no order has two invoices, no event two notifications",
        doubles.is_empty(),
        if doubles.is_empty() {
            format!(
                "{} orders, {} invoices, {} notifications, no doubles",
                state.orders.len(),
                state.invoices.len(),
                state.notifications.len()
            )
        } else {
            examples(&doubles)
        },
    );

    let attempted: HashMap<&str, &Attempt> = history
        .iter()
        .map(|a| (a.customer_id.as_str(), a))
        .collect();
    let mut unexpected = Vec::new();
    for order in &state.orders {
        match attempted
            .get(order.customer_id.as_str())
            .map(|a| &a.outcome)
        {
            None => unexpected.push(format!(
                "order {} for {}, which was never attempted",
                order.id, order.customer_id
            )),
            Some(Outcome::Fail { reason, .. }) => unexpected.push(format!(
                "order {} for {}, whose attempt definitely failed ({reason})",
                order.id, order.customer_id
            )),
            Some(_) => {}
        }
    }
    for order in &state.orders_unknown_to_the_order_service {
        unexpected.push(format!(
            "an invoice for order {order}, which the order service does not know"
        ));
    }
    let nothing_unexpected = Criterion::new(
        "nothing unexpected",
        "no order for an attempt never made or definitely refused; no invoice for an order that does not exist",
        unexpected.is_empty(),
        if unexpected.is_empty() {
            "none".to_string()
        } else {
            examples(&unexpected)
        },
    );

    let unknown: Vec<&Attempt> = history
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Unknown { .. }))
        .collect();
    let (mut placed, mut not_placed) = (0, 0);
    let mut broken = Vec::new();
    for attempt in &unknown {
        match orders_of
            .get(attempt.customer_id.as_str())
            .map(Vec::as_slice)
        {
            None | Some([]) => not_placed += 1,
            Some([order]) => {
                placed += 1;
                if let Some(p) = facts(order.id).problem() {
                    broken.push(format!("{} ({}): {p}", order.id, attempt.customer_id));
                }
            }
            Some(many) => broken.push(format!(
                "{} placed {} orders",
                attempt.customer_id,
                many.len()
            )),
        }
    }
    let unknowns = Criterion::new(
        "unknown attempts",
        "each placed zero or one order, and a placed one is complete",
        broken.is_empty(),
        format!(
            "{} unknown: {placed} placed, {not_placed} not placed{}",
            unknown.len(),
            if broken.is_empty() {
                String::new()
            } else {
                format!("; wrong: {}", examples(&broken))
            }
        ),
    );

    let mut leftovers = Vec::new();
    for (service, n) in &state.outbox_backlog {
        if *n > 0 {
            leftovers.push(format!("{service} outbox holds {n}"));
        }
    }
    for (queue, depth) in &state.queues {
        if *depth != (0, 0) {
            leftovers.push(format!("{queue} holds {depth:?}"));
        }
    }
    // Dead-lettering is at least once, like every delivery: a poison message
    // redelivered before its first copy was deleted is dead-lettered again.
    // Copies of a poisoned message are that message, not something else.
    let mut poison_copies: BTreeMap<usize, usize> = BTreeMap::new();
    for dlq in &state.dlqs {
        for message in &dlq.messages {
            let preview = message.body_preview.as_deref().unwrap_or("");
            match expect
                .poison
                .iter()
                .position(|p| p.dlq == dlq.dlq && preview.contains(&p.marker))
            {
                Some(i) => *poison_copies.entry(i).or_default() += 1,
                None => leftovers.push(format!(
                    "{} holds {} ({})",
                    dlq.dlq,
                    message.event_type.as_deref().unwrap_or("a message"),
                    message.reason
                )),
            }
        }
        let listed = dlq.messages.len() as u64;
        if dlq.depth.total() > listed {
            leftovers.push(format!(
                "{} holds {} more",
                dlq.dlq,
                dlq.depth.total() - listed
            ));
        }
    }
    for (i, poison) in expect.poison.iter().enumerate() {
        if !poison_copies.contains_key(&i) {
            leftovers.push(format!("the poison message is missing from {}", poison.dlq));
        }
    }
    let copies: usize = poison_copies.values().sum();
    let drained = Criterion::new(
        "drained",
        "outboxes and queues empty; DLQs hold exactly the messages poisoned on purpose",
        leftovers.is_empty(),
        if leftovers.is_empty() {
            format!(
                "empty; {} poison message(s) in their DLQ ({copies} copies)",
                expect.poison.len()
            )
        } else {
            examples(&leftovers)
        },
    );

    let mut short = Vec::new();
    let mut seen = Vec::new();
    for (service, injected) in &expect.injected_duplicates {
        let absorbed = state.duplicates.get(service).copied().unwrap_or(0);
        seen.push(format!(
            "{service} absorbed {absorbed} (injected {injected})"
        ));
        if absorbed < *injected {
            short.push(format!(
                "{service} absorbed {absorbed} < {injected} injected"
            ));
        }
    }
    let accounting = Criterion::new(
        "accounting",
        "each inbox absorbed at least the duplicates injected into its queues",
        short.is_empty(),
        if short.is_empty() {
            seen.join(", ")
        } else {
            short.join(", ")
        },
    );

    vec![
        no_loss,
        no_double,
        nothing_unexpected,
        unknowns,
        drained,
        accounting,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use harness::observe::{InvoiceRow, NotificationRow, OrderRow};

    fn attempt(n: u64, outcome: Outcome) -> Attempt {
        Attempt {
            n,
            customer_id: format!("run-{n}"),
            scheduled_at: Utc::now(),
            latency_ms: 5.0,
            send_lag_ms: 0.0,
            outcome,
        }
    }

    fn ok(n: u64, id: Uuid) -> Attempt {
        attempt(
            n,
            Outcome::Ok {
                status: 202,
                order_id: id,
            },
        )
    }

    /// A state in which every given order is complete.
    fn complete(orders: &[(u64, Uuid)]) -> SystemState {
        let mut state = SystemState::default();
        for (n, id) in orders {
            state.orders.push(OrderRow {
                id: *id,
                customer_id: format!("run-{n}"),
                status: "INVOICED".into(),
                updated_at: Utc::now(),
            });
            state.invoices.push(InvoiceRow {
                id: Uuid::now_v7(),
                order_id: *id,
                status: "ISSUED".into(),
                issued_at: Utc::now(),
            });
            for ty in ["OrderPlaced", "InvoiceIssued"] {
                state.notifications.push(NotificationRow {
                    event_id: Uuid::now_v7(),
                    event_type: ty.into(),
                    order_id: *id,
                    created_at: Utc::now(),
                });
            }
        }
        state.duplicates.insert("invoice".into(), 2);
        state
    }

    fn expectations() -> Expectations {
        Expectations {
            injected_duplicates: BTreeMap::from([("invoice".to_string(), 2)]),
            poison: vec![],
        }
    }

    fn failing(criteria: &[Criterion]) -> Vec<&str> {
        criteria
            .iter()
            .filter(|c| !c.pass)
            .map(|c| c.name.as_str())
            .collect()
    }

    #[test]
    fn a_complete_run_passes_every_criterion() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let history = vec![
            ok(0, a),
            ok(1, b),
            attempt(
                2,
                Outcome::Fail {
                    status: Some(422),
                    reason: "HTTP 422".into(),
                },
            ),
        ];
        let verdict = check(&history, &complete(&[(0, a), (1, b)]), &expectations());
        assert_eq!(failing(&verdict), Vec::<&str>::new(), "{verdict:#?}");
    }

    #[test]
    fn an_accepted_order_without_its_invoice_is_a_loss() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut state = complete(&[(0, a), (1, b)]);
        state.invoices.retain(|i| i.order_id != b);
        let verdict = check(&[ok(0, a), ok(1, b)], &state, &expectations());
        assert_eq!(failing(&verdict), ["no loss"]);
    }

    #[test]
    fn a_second_invoice_or_notification_is_a_double_effect() {
        let a = Uuid::now_v7();
        let mut state = complete(&[(0, a)]);
        let again = state.notifications[0].clone();
        state.notifications.push(again);
        let verdict = check(&[ok(0, a)], &state, &expectations());
        assert_eq!(failing(&verdict), ["no loss", "no double effect"]);
    }

    #[test]
    fn an_order_for_a_refused_attempt_or_an_orphan_invoice_is_unexpected() {
        let a = Uuid::now_v7();
        let mut state = complete(&[(0, a)]);
        let refused = attempt(
            0,
            Outcome::Fail {
                status: Some(422),
                reason: "HTTP 422".into(),
            },
        );
        assert_eq!(
            failing(&check(&[refused], &state, &expectations())),
            ["nothing unexpected"]
        );
        state
            .orders_unknown_to_the_order_service
            .push(Uuid::now_v7());
        assert_eq!(
            failing(&check(&[ok(0, a)], &state, &expectations())),
            ["nothing unexpected"]
        );
    }

    #[test]
    fn an_unknown_attempt_may_place_nothing_but_not_half_an_order() {
        let a = Uuid::now_v7();
        let unknown = attempt(
            0,
            Outcome::Unknown {
                status: None,
                reason: "timeout".into(),
            },
        );
        assert!(
            failing(&check(
                std::slice::from_ref(&unknown),
                &SystemState {
                    duplicates: BTreeMap::from([("invoice".into(), 2)]),
                    ..Default::default()
                },
                &expectations()
            ))
            .is_empty()
        );
        let mut state = complete(&[(0, a)]);
        assert!(
            failing(&check(
                std::slice::from_ref(&unknown),
                &state,
                &expectations()
            ))
            .is_empty()
        );
        state.notifications.pop();
        assert_eq!(
            failing(&check(&[unknown], &state, &expectations())),
            ["unknown attempts"]
        );
    }

    #[test]
    fn a_leftover_outbox_row_or_a_missing_poison_message_is_not_drained() {
        let a = Uuid::now_v7();
        let mut state = complete(&[(0, a)]);
        state.outbox_backlog.insert("order".into(), 1);
        assert_eq!(
            failing(&check(&[ok(0, a)], &state, &expectations())),
            ["drained"]
        );
        let mut expect = expectations();
        expect.poison.push(Poison {
            dlq: "invoice-orders-dlq".into(),
            marker: "poison-1".into(),
        });
        assert_eq!(
            failing(&check(&[ok(0, a)], &complete(&[(0, a)]), &expect)),
            ["drained"]
        );
    }

    fn dead_letter(dlq: &str, body: &str) -> infra::dlq::DlqListing {
        infra::dlq::DlqListing {
            queue: dlq.trim_end_matches("-dlq").into(),
            dlq: dlq.into(),
            depth: infra::dlq::Depth {
                visible: 1,
                in_flight: 0,
            },
            messages: vec![infra::dlq::DeadLetter {
                message_id: Uuid::now_v7().to_string(),
                event_id: None,
                event_type: None,
                order_id: None,
                dead_lettered_by: infra::dlq::DeadLetteredBy::Consumer,
                reason: "not an event envelope".into(),
                receive_count: 1,
                sent_at: None,
                body_preview: Some(body.into()),
            }],
        }
    }

    #[test]
    fn copies_of_the_poison_message_are_that_message_and_anything_else_is_a_leftover() {
        let a = Uuid::now_v7();
        let mut expect = expectations();
        expect.poison.push(Poison {
            dlq: "invoice-orders-dlq".into(),
            marker: "poison-1".into(),
        });
        let mut state = complete(&[(0, a)]);
        state.dlqs = vec![
            dead_letter("invoice-orders-dlq", "poison-1: not an event"),
            dead_letter("invoice-orders-dlq", "poison-1: not an event"),
        ];
        assert!(failing(&check(&[ok(0, a)], &state, &expect)).is_empty());
        state
            .dlqs
            .push(dead_letter("notification-orders-dlq", "something else"));
        assert_eq!(failing(&check(&[ok(0, a)], &state, &expect)), ["drained"]);
    }

    #[test]
    fn fewer_absorbed_duplicates_than_injected_fails_the_accounting() {
        let a = Uuid::now_v7();
        let mut state = complete(&[(0, a)]);
        state.duplicates.insert("invoice".into(), 1);
        assert_eq!(
            failing(&check(&[ok(0, a)], &state, &expectations())),
            ["accounting"]
        );
    }
}
