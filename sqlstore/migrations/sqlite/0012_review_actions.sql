-- What each kind of smart-review finding does in this region, as the
-- bureau set it (kinds not listed keep the platform's starting action).
CREATE TABLE review_actions (
    kind            TEXT PRIMARY KEY,
    action          TEXT NOT NULL,            -- warn | self_pay | block | off
    updated_by      TEXT NOT NULL,
    updated_at      BIGINT NOT NULL
);
