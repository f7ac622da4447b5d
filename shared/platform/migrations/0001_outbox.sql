-- The transactional outbox: events are written here in the same transaction as
-- the state change they announce, and the relay publishes them afterwards.
CREATE TABLE outbox (
    id              uuid PRIMARY KEY,          -- the event id (UUID v7)
    event_type      text        NOT NULL,
    payload         jsonb       NOT NULL,      -- the whole envelope
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz,
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text
);

-- The relay claims unpublished rows; it never tracks an id high-water mark,
-- because rows commit out of order.
CREATE INDEX outbox_unpublished ON outbox (next_attempt_at, created_at) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Wake the relay when rows commit: NOTIFY is delivered at commit time only.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_inserted AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
