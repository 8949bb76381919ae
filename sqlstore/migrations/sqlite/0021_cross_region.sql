-- Cross-region care (docs/cross-region.md). Times are unix microseconds,
-- money is fen, dates are YYYY-MM-DD in China time.

-- Filings (备案), kept by the insured region's node. dest_admdvs is the
-- treating region: a city (370200) or a whole province (320000).
CREATE TABLE filings (
    filing_id      TEXT PRIMARY KEY,
    psn_no         TEXT NOT NULL,
    kind           TEXT NOT NULL,               -- long_term, referred, temporary, emergency
    dest_admdvs    TEXT NOT NULL,
    fixmedins_code TEXT NOT NULL DEFAULT '',    -- referral: the receiving institution, if named
    begin_date     TEXT NOT NULL,
    end_date       TEXT NOT NULL DEFAULT '',    -- '' = open-ended
    reason         TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL,               -- active, revoked
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    revoked_by     TEXT NOT NULL DEFAULT '',
    revoked_at     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX filings_psn ON filings (psn_no, status);

-- The insured node's side of a cross-region settlement: what it reserved
-- when the hub asked it to prepare, and what became of it.
CREATE TABLE xr_insured (
    txid            TEXT PRIMARY KEY,           -- the treating node's setl_id
    psn_no          TEXT NOT NULL,
    insutype        TEXT NOT NULL,
    insu_admdvs     TEXT NOT NULL,
    treating_admdvs TEXT NOT NULL,
    fixmedins_code  TEXT NOT NULL,
    medfee_sumamt   BIGINT NOT NULL,
    fund_pay        BIGINT NOT NULL,
    acct_pay        BIGINT NOT NULL,
    acc_change      TEXT NOT NULL,              -- policy.AccumulatorChange as JSON
    legs            TEXT NOT NULL,              -- the ledger legs, JSON
    state           TEXT NOT NULL,              -- prepared, committed, aborted, reversed
    clr_month       TEXT NOT NULL DEFAULT '',   -- the hub's clearing month of the settlement
    rev_month       TEXT NOT NULL DEFAULT '',   -- and of its reversal
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX xr_insured_state ON xr_insured (state, created_at);

-- The treating node's side.
CREATE TABLE xr_treating (
    setl_id         TEXT PRIMARY KEY,
    psn_no          TEXT NOT NULL,
    insu_admdvs     TEXT NOT NULL,
    treating_admdvs TEXT NOT NULL,
    fixmedins_code  TEXT NOT NULL,
    medfee_sumamt   BIGINT NOT NULL,
    fund_pay        BIGINT NOT NULL,
    acct_pay        BIGINT NOT NULL,
    state           TEXT NOT NULL,              -- prepared, committed, aborted, reversed
    clr_month       TEXT NOT NULL DEFAULT '',
    rev_month       TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX xr_treating_state ON xr_treating (state, created_at);

-- Messages a node must get through to the hub (a reversal's
-- compensation), written in the transaction of the change they report.
CREATE TABLE xr_outbox (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     BIGINT NOT NULL,
    done_at     BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);
CREATE INDEX xr_outbox_due ON xr_outbox (done_at, next_at);

-- The hub: one row per cross-region settlement, its two-phase state and
-- the clearing months it counts in.
CREATE TABLE hub_txns (
    txid            TEXT PRIMARY KEY,
    insured_node    TEXT NOT NULL,
    treating_node   TEXT NOT NULL,
    insu_admdvs     TEXT NOT NULL,
    treating_admdvs TEXT NOT NULL,
    psn_no          TEXT NOT NULL,
    fixmedins_code  TEXT NOT NULL,
    medfee_sumamt   BIGINT NOT NULL,
    fund_pay        BIGINT NOT NULL,
    acct_pay        BIGINT NOT NULL,
    state           TEXT NOT NULL,              -- preparing, committed, aborted
    reason          TEXT NOT NULL DEFAULT '',
    clr_month       TEXT NOT NULL DEFAULT '',
    reversed        INTEGER NOT NULL DEFAULT 0,
    rev_month       TEXT NOT NULL DEFAULT '',
    deadline        BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    decided_at      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX hub_txns_state ON hub_txns (state, deadline);
CREATE INDEX hub_txns_month ON hub_txns (clr_month);

-- Messages the hub must get through to a node (decisions, reversals,
-- clearing postings), retried until the node answers.
CREATE TABLE hub_deliveries (
    id          TEXT PRIMARY KEY,
    node        TEXT NOT NULL,
    path        TEXT NOT NULL,
    body        TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     BIGINT NOT NULL,
    done_at     BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);
CREATE INDEX hub_deliveries_due ON hub_deliveries (done_at, next_at);

-- Monthly clearing runs and their statements.
CREATE TABLE hub_clearings (
    clr_month   TEXT PRIMARY KEY,
    statement   TEXT NOT NULL,                  -- JSON
    created_at  BIGINT NOT NULL
);

-- What a node posted for a clearing month (one row per counterpart).
CREATE TABLE xr_clearings (
    clr_month   TEXT NOT NULL,
    counterpart TEXT NOT NULL,
    net         BIGINT NOT NULL,                -- >0: the counterpart pays us
    posted_at   BIGINT NOT NULL,
    PRIMARY KEY (clr_month, counterpart)
);
