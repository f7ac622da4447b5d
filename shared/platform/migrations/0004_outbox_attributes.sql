-- The message attributes each event is published with (the event type that
-- filter policies match on, and the trace context). Checked against the SQS
-- limit of ten before the insert.
ALTER TABLE outbox ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}';

-- Rows written before this column existed (unpublished, or waiting for a
-- retry) would otherwise be published without `event_type`, and every
-- subscription's filter policy would drop them.
UPDATE outbox SET attributes = jsonb_build_object('event_type', event_type)
WHERE published_at IS NULL;
