-- Smart review: the bureau's own rules (on top of the NHSA rule
-- libraries shipped as data) and the review queue of alerts raised after
-- settlement.
CREATE TABLE review_rules (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,            -- e.g. diagnosis
    code            TEXT NOT NULL DEFAULT '', -- catalog code, or '' to match by name
    name            TEXT NOT NULL DEFAULT '',
    value           TEXT NOT NULL,            -- e.g. ICD-10 prefixes "E10,E11"
    action          TEXT NOT NULL,            -- warn | self_pay | block
    note            TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL,            -- active | retired
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE review_alerts (
    id              TEXT PRIMARY KEY,         -- deterministic per finding: raising it twice is one alert
    kind            TEXT NOT NULL,            -- multi_institution | average_jump
    subject         TEXT NOT NULL,            -- the person or institution
    fixmedins_code  TEXT NOT NULL DEFAULT '',
    day             TEXT NOT NULL,
    detail          TEXT NOT NULL,
    status          TEXT NOT NULL,            -- open | confirmed | dismissed
    created_at      BIGINT NOT NULL,
    decided_by      TEXT NOT NULL DEFAULT '',
    decided_at      BIGINT NOT NULL DEFAULT 0,
    note            TEXT NOT NULL DEFAULT ''
);
CREATE INDEX review_alerts_status ON review_alerts(status, created_at);
