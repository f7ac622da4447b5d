//! What a run puts into the queues on purpose, so the verdict can check the
//! system absorbed it: copies of events already handled (the inboxes must
//! skip them) and one message that is not an event (it must end in its DLQ,
//! and nothing else may).

use aws_sdk_sqs::types::MessageAttributeValue;
use contracts::topology::{Service, Topology};

use super::checker::Poison;
use super::method::Run;
use super::target::Target;
use harness::load::{Attempt, Load};

/// Sends copies of handled `OrderPlaced` events to both order-event queues,
/// and one message that is not an event to `invoice-orders`.
pub(super) async fn duplicates_and_poison<T: Target>(
    run: &mut Run<'_, T>,
    load: &Load,
) -> anyhow::Result<()> {
    let ok: Vec<String> = load
        .snapshot()
        .iter()
        .filter_map(Attempt::order_id)
        .map(|id| id.to_string())
        .collect();
    let rows: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT payload::text, attributes FROM outbox \
         WHERE event_type = 'OrderPlaced' AND published_at IS NOT NULL AND payload->>'subject' = ANY($1) \
         ORDER BY created_at LIMIT $2",
    )
    .bind(&ok)
    .bind(run.plan.duplicates as i64)
    .fetch_all(run.observer.pool(Service::Order))
    .await?;
    let topology: Topology = run.target.topology().clone();
    let order_queues: Vec<_> = topology
        .queues
        .iter()
        .filter(|q| {
            q.event_types
                .contains(&contracts::events::EventType::OrderPlaced)
        })
        .collect();
    for queue in &order_queues {
        let url = aws_adapter::sqs::queue_url(&run.observer.sqs, queue.name).await?;
        for (payload, attributes) in &rows {
            let mut send = run
                .observer
                .sqs
                .send_message()
                .queue_url(&url)
                .message_body(payload);
            for (name, value) in attributes.as_object().into_iter().flatten() {
                if let Some(v) = value.as_str() {
                    send = send.message_attributes(
                        name,
                        MessageAttributeValue::builder()
                            .data_type("String")
                            .string_value(v)
                            .build()?,
                    );
                }
            }
            send.send().await?;
        }
        *run.expect
            .injected_duplicates
            .entry(queue.consumer.name().to_string())
            .or_default() += rows.len() as i64;
    }
    run.step(format!(
        "{} copies of handled OrderPlaced events sent to {}",
        rows.len(),
        order_queues
            .iter()
            .map(|q| q.name)
            .collect::<Vec<_>>()
            .join(" and ")
    ));
    let poisoned = topology.queues_of(Service::Invoice).remove(0);
    let marker = format!("chaos poison {}", run.run_id);
    let url = aws_adapter::sqs::queue_url(&run.observer.sqs, poisoned.name).await?;
    run.observer
        .sqs
        .send_message()
        .queue_url(&url)
        .message_body(format!("{marker}: this is not an event"))
        .send()
        .await?;
    run.expect.poison.push(Poison {
        dlq: poisoned.dlq_name(),
        marker,
    });
    run.step(format!("one poison message sent to {}", poisoned.name));
    Ok(())
}

/// Deletes this run's poison messages from their DLQs (after the verdict),
/// so that a long-lived stack starts the next run clean.
pub(super) async fn remove_poison<T: Target>(run: &Run<'_, T>) -> anyhow::Result<()> {
    let sqs = &run.observer.sqs;
    for poison in &run.expect.poison {
        let url = aws_adapter::sqs::queue_url(sqs, &poison.dlq).await?;
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?;
        for message in got.messages() {
            let Some(receipt) = message.receipt_handle() else {
                continue;
            };
            if message.body().unwrap_or_default().contains(&poison.marker) {
                sqs.delete_message()
                    .queue_url(&url)
                    .receipt_handle(receipt)
                    .send()
                    .await?;
            } else {
                sqs.change_message_visibility()
                    .queue_url(&url)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send()
                    .await?;
            }
        }
    }
    Ok(())
}
