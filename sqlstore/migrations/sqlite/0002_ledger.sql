-- The double-entry ledger. Only ledger/engine writes these tables, through
-- its single writer; amounts are fen.

CREATE TABLE ledger_accounts (
    id               TEXT PRIMARY KEY,
    ledger           TEXT NOT NULL,
    kind             TEXT NOT NULL,
    flags            INTEGER NOT NULL,
    debits_pending   BIGINT NOT NULL,
    debits_posted    BIGINT NOT NULL,
    credits_pending  BIGINT NOT NULL,
    credits_posted   BIGINT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX ledger_accounts_kind ON ledger_accounts(kind);

CREATE TABLE ledger_transfers (
    seq                BIGINT PRIMARY KEY,     -- order of application, gap-free per writer
    id                 TEXT NOT NULL UNIQUE,   -- client-supplied idempotency key
    debit_account_id   TEXT NOT NULL,
    credit_account_id  TEXT NOT NULL,
    amount             BIGINT NOT NULL,
    pending_id         TEXT,
    timeout            BIGINT NOT NULL,
    ledger             TEXT NOT NULL,
    code               TEXT NOT NULL,
    flags              INTEGER NOT NULL,
    user_data          TEXT NOT NULL,
    leg                TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    debit_balance      BIGINT NOT NULL,        -- debit account's posted credit balance after this transfer
    credit_balance     BIGINT NOT NULL,        -- credit account's posted credit balance after this transfer
    pending_status     TEXT,                   -- pending transfers only: pending | posted | voided | expired
    expires_at         BIGINT NOT NULL         -- pending transfers with a timeout; 0 otherwise
);
CREATE INDEX ledger_transfers_debit ON ledger_transfers(debit_account_id, seq);
CREATE INDEX ledger_transfers_credit ON ledger_transfers(credit_account_id, seq);
CREATE INDEX ledger_transfers_user_data ON ledger_transfers(user_data);
CREATE INDEX ledger_transfers_pending_id ON ledger_transfers(pending_id);
CREATE INDEX ledger_transfers_expiry ON ledger_transfers(pending_status, expires_at);
