-- The inbox: ids of the events this service has applied. A row is written in
-- the same transaction as the effect, so a redelivered event changes nothing.
CREATE TABLE inbox (
    event_id    uuid PRIMARY KEY,             -- the producer's event id, never a broker message id
    event_type  text        NOT NULL,
    source      text        NOT NULL,
    queue       text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
