-- Credit payment (信用就医): banks grant patients credit lines; the
-- out-of-pocket part of a settlement is held on the line and posted when
-- the settlement completes; the patient gets a statement per credit-paid
-- settlement and repays it. docs/credit.md describes the lifecycle.

-- Partner banks: registered parties with their own SM2 key.
CREATE TABLE banks (
    bank_code          TEXT PRIMARY KEY,      -- also the ledger clearing channel (clear:<bank_code>)
    name               TEXT NOT NULL,
    key_id             TEXT NOT NULL,         -- the bank's key id in signed messages
    public_key         TEXT NOT NULL,         -- PEM, SM2
    base_url           TEXT NOT NULL,
    interest_free_days INTEGER NOT NULL DEFAULT 10,
    status             TEXT NOT NULL DEFAULT 'active',
    created_at         BIGINT NOT NULL
);

-- A person's credit agreement with a bank.
CREATE TABLE credit_agreements (
    agreement_no       TEXT PRIMARY KEY,
    psn_no             TEXT NOT NULL,
    bank_code          TEXT NOT NULL,
    bank_agreement_id  TEXT NOT NULL DEFAULT '',
    apply_id           TEXT NOT NULL UNIQUE,
    status             TEXT NOT NULL,         -- applying | active | declined | suspended | closed
    scene              TEXT NOT NULL DEFAULT 'all',
    limit_fen          BIGINT NOT NULL DEFAULT 0,
    requested_fen      BIGINT NOT NULL DEFAULT 0,
    outstanding        BIGINT NOT NULL DEFAULT 0, -- posted draws not yet repaid
    interest_free_days INTEGER NOT NULL DEFAULT 10,
    consent_version    TEXT NOT NULL,
    consent_at         BIGINT NOT NULL,
    reason             TEXT NOT NULL DEFAULT '',
    overdue_since      BIGINT NOT NULL DEFAULT 0,
    version            INTEGER NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE UNIQUE INDEX credit_agreements_live ON credit_agreements(psn_no, bank_code) WHERE status IN ('applying', 'active', 'suspended');
CREATE INDEX credit_agreements_psn ON credit_agreements(psn_no);

-- Every use of a line: a settlement's out-of-pocket part.
CREATE TABLE credit_draws (
    draw_id            TEXT PRIMARY KEY,      -- the payment order's attempt number
    agreement_no       TEXT NOT NULL,
    pay_ord_id         TEXT NOT NULL,
    setl_id            TEXT NOT NULL UNIQUE,
    fixmedins_code     TEXT NOT NULL,
    amount             BIGINT NOT NULL,
    status             TEXT NOT NULL,         -- held | posted | voided
    bank_status        TEXT NOT NULL DEFAULT 'pending', -- pending | accepted | refused
    day                TEXT NOT NULL DEFAULT '', -- China date of posting: the settlement file it belongs to
    created_at         BIGINT NOT NULL,
    posted_at          BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX credit_draws_agreement ON credit_draws(agreement_no, created_at);
CREATE INDEX credit_draws_day ON credit_draws(day);

-- One statement per credit-paid settlement: items and a due date.
CREATE TABLE credit_statements (
    statement_no       TEXT PRIMARY KEY,
    agreement_no       TEXT NOT NULL,
    psn_no             TEXT NOT NULL,
    draw_id            TEXT NOT NULL UNIQUE,
    setl_id            TEXT NOT NULL,
    fixmedins_code     TEXT NOT NULL,
    amount             BIGINT NOT NULL,
    repaid             BIGINT NOT NULL DEFAULT 0,
    due_date           TEXT NOT NULL,         -- YYYY-MM-DD, China time; due by the end of that day
    status             TEXT NOT NULL,         -- open | paid | overdue
    items              TEXT NOT NULL,         -- JSON
    reminded           TEXT NOT NULL DEFAULT '', -- the last reminder's kind
    issued_at          BIGINT NOT NULL,
    paid_at            BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX credit_statements_agreement ON credit_statements(agreement_no, issued_at);
CREATE INDEX credit_statements_due ON credit_statements(status, due_date);

-- Repayments, from the bank (counter, bank app) or collected by us (wallet).
CREATE TABLE credit_repayments (
    repay_id           TEXT PRIMARY KEY,
    agreement_no       TEXT NOT NULL,
    channel            TEXT NOT NULL,
    source             TEXT NOT NULL,         -- bank | platform
    amount             BIGINT NOT NULL,       -- what was paid
    applied            BIGINT NOT NULL,       -- what reduced the debt
    excess             BIGINT NOT NULL DEFAULT 0, -- paid beyond the debt: the bank returns it
    status             TEXT NOT NULL,         -- paying | applied | declined
    out_trade_no       TEXT NOT NULL DEFAULT '',
    day                TEXT NOT NULL DEFAULT '',
    paid_at            BIGINT NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL
);
CREATE INDEX credit_repayments_agreement ON credit_repayments(agreement_no, created_at);

-- An inpatient's credit guarantee instead of a deposit.
CREATE TABLE credit_guarantees (
    mdtrt_id           TEXT PRIMARY KEY,
    agreement_no       TEXT NOT NULL,
    fixmedins_code     TEXT NOT NULL,
    held               BIGINT NOT NULL DEFAULT 0,
    holds              INTEGER NOT NULL DEFAULT 0, -- pending transfers G:<mdtrt_id>:1..holds
    status             TEXT NOT NULL,         -- open | settled | released
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX credit_guarantees_agreement ON credit_guarantees(agreement_no, status);

-- What the patient was told (the simulated SMS box) and the bank was sent.
CREATE TABLE credit_notices (
    id                 TEXT PRIMARY KEY,
    agreement_no       TEXT NOT NULL,
    kind               TEXT NOT NULL,         -- approved | declined | statement | reminder | due | overdue | suspended | repaid | excess | limit | closed
    message            TEXT NOT NULL,
    created_at         BIGINT NOT NULL
);
CREATE INDEX credit_notices_agreement ON credit_notices(agreement_no, created_at);

-- Bank-initiated events, applied once each.
CREATE TABLE credit_callbacks (
    event_id           TEXT PRIMARY KEY,
    bank_code          TEXT NOT NULL,
    type               TEXT NOT NULL,
    outcome            TEXT NOT NULL,
    received_at        BIGINT NOT NULL
);

-- The daily settlement file exchanged with each bank and how it matched.
CREATE TABLE credit_day_files (
    bank_code          TEXT NOT NULL,
    day                TEXT NOT NULL,
    status             TEXT NOT NULL,         -- matched | differences
    draws_fen          BIGINT NOT NULL,
    repayments_fen     BIGINT NOT NULL,
    payouts_fen        BIGINT NOT NULL,
    report             TEXT NOT NULL,         -- JSON
    created_at         BIGINT NOT NULL,
    PRIMARY KEY (bank_code, day)
);
-- Bank payouts to hospitals, posted once each.
CREATE TABLE credit_payouts (
    payout_id          TEXT PRIMARY KEY,
    bank_code          TEXT NOT NULL,
    day                TEXT NOT NULL,
    fixmedins_code     TEXT NOT NULL,
    amount             BIGINT NOT NULL,
    created_at         BIGINT NOT NULL
);
