-- At-least-once delivery of outbox events to institutions' webhooks: each
-- event is retried with backoff until the receiver answers 2xx, and after
-- the last attempt it waits in the dead-letter view for an operator.

ALTER TABLE outbox ADD COLUMN status TEXT NOT NULL DEFAULT 'pending';   -- pending | delivered | dead | skipped
ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN fixmedins_code TEXT NOT NULL DEFAULT '';
CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE status = 'pending';

CREATE TABLE webhooks (
    fixmedins_code  TEXT PRIMARY KEY REFERENCES institutions(fixmedins_code),
    url             TEXT NOT NULL,
    secret_cipher   BYTEA NOT NULL,           -- SM4-GCM sealed HMAC-SM3 key
    status          TEXT NOT NULL,            -- active | disabled
    created_at      BIGINT NOT NULL
);
