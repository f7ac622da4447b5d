-- Orders and what the order service has learned about their invoices.
CREATE TABLE orders (
    id                  uuid PRIMARY KEY,
    customer_id         text        NOT NULL,
    currency            text        NOT NULL,
    total_minor         bigint      NOT NULL CHECK (total_minor >= 0),
    lines               jsonb       NOT NULL,
    status              text        NOT NULL CHECK (status IN ('PLACED', 'INVOICED', 'CANCELLED')),
    correlation_id      text        NOT NULL,
    invoice_id          uuid,
    invoice_total_minor bigint,
    invoice_voided_at   timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX orders_customer ON orders (customer_id, created_at);
