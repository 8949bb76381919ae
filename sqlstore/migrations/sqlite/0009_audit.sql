-- The audit trail: entries written in the same transaction as the change
-- they record, then appended once to the transparency log; log_index is
-- set when the log has sequenced the entry.
CREATE TABLE audit_entries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,          -- the canonical entry: exactly the bytes in the log
    created_at      BIGINT NOT NULL,
    log_index       BIGINT,
    integrated_at   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX audit_entries_pending ON audit_entries(seq) WHERE log_index IS NULL;
CREATE UNIQUE INDEX audit_entries_index ON audit_entries(log_index) WHERE log_index IS NOT NULL;
CREATE INDEX audit_entries_subject ON audit_entries(subject);
