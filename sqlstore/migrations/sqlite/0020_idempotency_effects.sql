-- Which process reserved a key, and whether the call's change committed
-- (the mark commits in the change's own transaction): after a crash, a
-- reservation of a stopped process that changed nothing may run again.
ALTER TABLE idempotency_keys ADD COLUMN epoch TEXT NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys ADD COLUMN effects INTEGER NOT NULL DEFAULT 0;
