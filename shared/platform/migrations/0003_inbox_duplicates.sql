-- How often each applied event came again (a redelivery after a crash, a
-- redrive, an archive replay, a duplicate publish). Operators and the chaos
-- checker read it to see duplicates that were absorbed.
ALTER TABLE inbox
    ADD COLUMN duplicates        integer NOT NULL DEFAULT 0,
    ADD COLUMN last_duplicate_at timestamptz;
