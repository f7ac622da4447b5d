-- One notification per event handled: the unique key on event_id holds even
-- against a duplicate that slipped past the inbox.
CREATE TABLE notifications (
    id          uuid PRIMARY KEY,
    event_id    uuid        NOT NULL UNIQUE,
    event_type  text        NOT NULL,
    order_id    uuid        NOT NULL,
    kind        text        NOT NULL,
    channel     text        NOT NULL,
    recipient   text        NOT NULL,
    message     text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);

CREATE INDEX notifications_order ON notifications (order_id, created_at);
