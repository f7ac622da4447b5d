-- Idempotency keys belong to the customer who sent them: one customer's key
-- can neither collide with another's nor reveal that it was used. Keys from
-- before this migration had no owner; they keep an empty one, which no
-- authenticated customer has, so they simply expire.
ALTER TABLE idempotency_keys ADD COLUMN customer_id text NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys ALTER COLUMN customer_id DROP DEFAULT;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (customer_id, key);
