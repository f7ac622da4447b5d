-- The message attributes each event is published with (the event type that
-- filter policies match on, and the trace context). Checked against the SQS
-- limit of ten before the insert.
ALTER TABLE outbox ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}';
