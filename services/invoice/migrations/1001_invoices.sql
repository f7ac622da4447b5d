-- One invoice per order, enforced by the database.
CREATE TABLE invoices (
    id          uuid PRIMARY KEY,
    order_id    uuid        NOT NULL UNIQUE,
    customer_id text        NOT NULL,
    currency    text        NOT NULL,
    total_minor bigint      NOT NULL CHECK (total_minor >= 0),
    status      text        NOT NULL CHECK (status IN ('ISSUED', 'VOIDED')),
    issued_at   timestamptz NOT NULL DEFAULT now(),
    voided_at   timestamptz
);

-- Orders cancelled before their OrderPlaced event arrived here: no invoice
-- may be issued for them when it does.
CREATE TABLE order_cancellations (
    order_id     uuid PRIMARY KEY,
    cancelled_at timestamptz NOT NULL DEFAULT now()
);
