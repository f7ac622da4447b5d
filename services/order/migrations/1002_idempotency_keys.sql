-- Idempotency keys of POST /orders: a client that retries a request whose
-- answer it never saw sends the same key and gets the same order back, instead
-- of placing it twice. The request is kept as jsonb so "the same body" means
-- the same JSON value, whatever the whitespace or key order.
CREATE TABLE idempotency_keys (
    key        text        PRIMARY KEY,
    request    jsonb       NOT NULL,
    order_id   uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
