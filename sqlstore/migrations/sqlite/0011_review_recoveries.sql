-- Recoveries of improperly paid money, under dual control: one
-- administrator proposes, another approves, and only then does the
-- ledger move the money from the institution's receivable back to the fund.
CREATE TABLE review_recoveries (
    id              TEXT PRIMARY KEY,
    alert_id        TEXT NOT NULL,
    fixmedins_code  TEXT NOT NULL,
    fund_account    TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    reason          TEXT NOT NULL,
    status          TEXT NOT NULL,            -- proposed | approved | rejected
    proposed_by     TEXT NOT NULL,
    decided_by      TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    decided_at      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX review_recoveries_alert ON review_recoveries(alert_id);

-- The smart-review findings of settled bills, kept with the settlement
-- (same transaction) for the monthly report per institution.
CREATE TABLE review_hits (
    setl_id         TEXT NOT NULL,
    feedetl_sn      TEXT NOT NULL,
    rule_id         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    action          TEXT NOT NULL,
    fixmedins_code  TEXT NOT NULL,
    month           TEXT NOT NULL,            -- YYYY-MM, China time
    amount          BIGINT NOT NULL,          -- the line's amount
    PRIMARY KEY (setl_id, feedetl_sn, rule_id)
);
CREATE INDEX review_hits_report ON review_hits(fixmedins_code, month);
