-- Payment orders: the money side of a settlement, leg by leg. A one-code
-- order is created when the cashier settles; a mobile order when the HIS
-- uploads a bill for the patient's phone (6201) and settled when the
-- patient confirms. The out-of-pocket leg goes through a wallet channel
-- (or the counter); refunds are per order, idempotent by refund number.

CREATE TABLE payment_orders (
    pay_ord_id      TEXT PRIMARY KEY,
    mode            TEXT NOT NULL,            -- onecode | mobile
    setl_id         TEXT,                     -- NULL until settled
    mdtrt_id        TEXT NOT NULL,
    psn_no          TEXT NOT NULL,
    fixmedins_code  TEXT NOT NULL,
    status          TEXT NOT NULL,            -- see docs/payments.md
    channel         TEXT NOT NULL DEFAULT '', -- wechat | alipay | counter
    medfee_sumamt   BIGINT NOT NULL DEFAULT 0,
    fund_pay        BIGINT NOT NULL DEFAULT 0,
    acct_pay        BIGINT NOT NULL DEFAULT 0,
    self_pay        BIGINT NOT NULL DEFAULT 0,
    refunded        BIGINT NOT NULL DEFAULT 0, -- self-pay fen refunded or being refunded
    fund_status     TEXT NOT NULL DEFAULT 'none',
    acct_status     TEXT NOT NULL DEFAULT 'none',
    self_status     TEXT NOT NULL DEFAULT 'none',
    attempt         INTEGER NOT NULL DEFAULT 0,
    out_trade_no    TEXT NOT NULL DEFAULT '',
    transaction_id  TEXT NOT NULL DEFAULT '',
    agreement_no    TEXT NOT NULL DEFAULT '',
    pay_url         TEXT NOT NULL DEFAULT '',
    pay_token       TEXT NOT NULL DEFAULT '',
    med_org_ord     TEXT NOT NULL DEFAULT '', -- the HIS's own order number (6201 medOrgOrd)
    acct_used       INTEGER NOT NULL DEFAULT 1,
    preview         TEXT NOT NULL DEFAULT '', -- mobile: the pre-settlement shown to the patient (JSON)
    reason          TEXT NOT NULL DEFAULT '', -- last decline / review reason
    version         INTEGER NOT NULL DEFAULT 0,
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    paid_at         BIGINT NOT NULL DEFAULT 0,
    check_at        BIGINT NOT NULL DEFAULT 0  -- when the recovery loop looks again (paying orders)
);
CREATE UNIQUE INDEX payment_orders_setl ON payment_orders(setl_id) WHERE setl_id IS NOT NULL;
CREATE UNIQUE INDEX payment_orders_trade ON payment_orders(out_trade_no) WHERE out_trade_no <> '';
CREATE UNIQUE INDEX payment_orders_med_org ON payment_orders(fixmedins_code, med_org_ord) WHERE med_org_ord <> '';
CREATE INDEX payment_orders_check ON payment_orders(status, check_at);
CREATE INDEX payment_orders_psn ON payment_orders(psn_no, created_at);
CREATE INDEX payment_orders_inst ON payment_orders(fixmedins_code, created_at);

-- Every wallet attempt of an order: a new out_trade_no only after the
-- previous one ended definitely (declined or closed), never after a timeout.
CREATE TABLE payment_attempts (
    out_trade_no    TEXT PRIMARY KEY,
    pay_ord_id      TEXT NOT NULL,
    channel         TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    status          TEXT NOT NULL,            -- paying | paid | declined | closed
    created_at      BIGINT NOT NULL,
    paid_at         BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX payment_attempts_order ON payment_attempts(pay_ord_id);
CREATE INDEX payment_attempts_day ON payment_attempts(channel, paid_at);

CREATE TABLE payment_refunds (
    out_refund_no   TEXT PRIMARY KEY,         -- pay_ord_id + '-' + refund_no: the wallet's idempotency key
    pay_ord_id      TEXT NOT NULL,
    refund_no       TEXT NOT NULL,            -- the caller's number
    kind            TEXT NOT NULL,            -- cash (out-of-pocket part only) | all (reversal + cash rest)
    amount          BIGINT NOT NULL,          -- out-of-pocket fen returned through the channel
    channel         TEXT NOT NULL,
    out_trade_no    TEXT NOT NULL,
    status          TEXT NOT NULL,            -- processing | succeeded | abnormal
    refund_id       TEXT NOT NULL DEFAULT '',
    reason          TEXT NOT NULL DEFAULT '',
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX payment_refunds_no ON payment_refunds(pay_ord_id, refund_no);
CREATE INDEX payment_refunds_day ON payment_refunds(channel, updated_at);

-- The timeline of an order, shown to the cashier and the bureau.
CREATE TABLE payment_events (
    pay_ord_id      TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    at              BIGINT NOT NULL,
    event           TEXT NOT NULL,
    detail          TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (pay_ord_id, seq)
);

-- Wallet notifications, once each: a duplicate finds its row and is
-- acknowledged without effect.
CREATE TABLE channel_notifications (
    channel         TEXT NOT NULL,
    notify_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    out_trade_no    TEXT NOT NULL DEFAULT '',
    outcome         TEXT NOT NULL,            -- applied | no_effect | held | orphan
    detail          TEXT NOT NULL DEFAULT '',
    received_at     BIGINT NOT NULL,
    PRIMARY KEY (channel, notify_id)
);

-- 免密代扣: a person lets yibao charge a wallet for out-of-pocket amounts
-- up to a per-payment limit, until revoked.
CREATE TABLE withholding_agreements (
    agreement_no    TEXT PRIMARY KEY,
    psn_no          TEXT NOT NULL,
    channel         TEXT NOT NULL,
    payer_ref       TEXT NOT NULL,
    limit_fen       BIGINT NOT NULL,
    status          TEXT NOT NULL,            -- signing | active | revoked | failed
    wallet_id       TEXT NOT NULL DEFAULT '', -- the wallet's contract / agreement number
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX withholding_psn ON withholding_agreements(psn_no, status);

-- Channel bill reconciliation runs: one report per channel, day and run.
CREATE TABLE reconciliations (
    id              TEXT PRIMARY KEY,
    channel         TEXT NOT NULL,
    bill_date       TEXT NOT NULL,
    run_at          BIGINT NOT NULL,
    matched         INTEGER NOT NULL,
    differences     INTEGER NOT NULL,
    report          TEXT NOT NULL             -- JSON
);
CREATE INDEX reconciliations_day ON reconciliations(channel, bill_date);
