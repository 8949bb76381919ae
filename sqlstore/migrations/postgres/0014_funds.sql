-- Fund operations: money into the funds (contributions), into personal
-- accounts (monthly crediting, 划入) and out to institutions (payouts,
-- 拨付), plus manual corrections (调账). Every run that moves money is
-- prepared by one administrator and approved by another (dual control);
-- docs/funds.md describes each run.

-- A region's funding rules, versioned by the date they take effect.
CREATE TABLE fund_rules (
    admdvs          TEXT NOT NULL,
    effective_from  TEXT NOT NULL,            -- YYYY-MM-DD
    rules           TEXT NOT NULL,            -- JSON
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (admdvs, effective_from)
);

-- A run: prepared (nothing moved), approved by another administrator,
-- then executed line by line (resumable), or rejected.
CREATE TABLE fund_runs (
    run_id          TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,            -- contributions | crediting | payout | correction
    admdvs          TEXT NOT NULL DEFAULT '',
    period          TEXT NOT NULL DEFAULT '', -- YYYY-MM (crediting, payout)
    status          TEXT NOT NULL,            -- prepared | approved | done | rejected
    lines           INTEGER NOT NULL DEFAULT 0,
    total           BIGINT NOT NULL DEFAULT 0,
    posted          INTEGER NOT NULL DEFAULT 0, -- lines executed so far
    summary         TEXT NOT NULL DEFAULT '', -- JSON
    note            TEXT NOT NULL DEFAULT '',
    file_sm3        TEXT NOT NULL DEFAULT '',
    prepared_by     TEXT NOT NULL,
    prepared_at     BIGINT NOT NULL,
    decided_by      TEXT NOT NULL DEFAULT '',
    decided_at      BIGINT NOT NULL DEFAULT 0,
    done_at         BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX fund_runs_period ON fund_runs(kind, admdvs, period) WHERE period <> '' AND status <> 'rejected';
CREATE UNIQUE INDEX fund_runs_file ON fund_runs(file_sm3) WHERE file_sm3 <> '' AND status <> 'rejected';
CREATE INDEX fund_runs_recent ON fund_runs(prepared_at);

-- The lines of a run: one ledger transfer each (payout lines move money
-- only when the bank confirms them).
CREATE TABLE fund_run_lines (
    run_id          TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    psn_no          TEXT NOT NULL DEFAULT '',
    fixmedins_code  TEXT NOT NULL DEFAULT '',
    kind            TEXT NOT NULL DEFAULT '', -- contribution kind, crediting reason, payout …
    period          TEXT NOT NULL DEFAULT '',
    debit           TEXT NOT NULL,
    credit          TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    status          TEXT NOT NULL,            -- pending | posted | instructed | confirmed | failed
    detail          TEXT NOT NULL DEFAULT '', -- JSON
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX fund_run_lines_psn ON fund_run_lines(psn_no, period);

-- Contributions received, one per person, scheme, month and kind.
CREATE TABLE contributions (
    psn_no          TEXT NOT NULL,
    insutype        TEXT NOT NULL,
    period          TEXT NOT NULL,            -- YYYY-MM
    kind            TEXT NOT NULL,            -- employer | individual | resident | subsidy
    amount          BIGINT NOT NULL,
    admdvs          TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    PRIMARY KEY (psn_no, insutype, period, kind)
);
CREATE INDEX contributions_period ON contributions(admdvs, period);

-- Payment instructions to institutions.
CREATE TABLE fund_payouts (
    payout_id       TEXT PRIMARY KEY,
    run_id          TEXT NOT NULL,
    fixmedins_code  TEXT NOT NULL,
    period          TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    status          TEXT NOT NULL,            -- instructed | confirmed | failed
    statement       TEXT NOT NULL,            -- JSON: per fund, withholdings, carried
    bank_ref        TEXT NOT NULL DEFAULT '',
    confirmed_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX fund_payouts_inst ON fund_payouts(fixmedins_code, status);
