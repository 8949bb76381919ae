-- Only pending transfers ever need the expiry index, and only resolutions
-- (post/void) carry a pending_id: index just those rows, so the common
-- single-phase transfer maintains two fewer index entries.
DROP INDEX ledger_transfers_pending_id;
DROP INDEX ledger_transfers_expiry;
CREATE INDEX ledger_transfers_pending_id ON ledger_transfers(pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX ledger_transfers_expiry ON ledger_transfers(expires_at) WHERE pending_status = 'pending';
