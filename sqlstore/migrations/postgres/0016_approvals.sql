-- Dual control of key changes: an administrator's call that changes a key
-- (institution API keys, e-certificate channels, partner banks) is stored
-- here instead of running; another administrator approves it, and only
-- then does it run, as that administrator, with its answer kept.

CREATE TABLE approvals (
    approval_id     TEXT PRIMARY KEY,
    method          TEXT NOT NULL,
    path            TEXT NOT NULL,            -- the request URI as sent
    route           TEXT NOT NULL,            -- the route pattern, e.g. POST /api/v1/institutions/{code}/keys
    body            TEXT NOT NULL,
    status          TEXT NOT NULL,            -- prepared | executing | approved | failed | rejected
    prepared_by     TEXT NOT NULL,
    prepared_at     BIGINT NOT NULL,
    decided_by      TEXT NOT NULL DEFAULT '',
    decided_at      BIGINT NOT NULL DEFAULT 0,
    note            TEXT NOT NULL DEFAULT '',
    result_status   INTEGER NOT NULL DEFAULT 0,
    result_body     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX approvals_status ON approvals(status, prepared_at);
