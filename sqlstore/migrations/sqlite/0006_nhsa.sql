-- The NHSA national interface (infno messages): every answered message by
-- msgid, so a repeated message gets the original answer and changes
-- nothing; sign-ins (9001/9002); the HIS's own visit numbers.

CREATE TABLE nhsa_messages (
    msgid           TEXT PRIMARY KEY,         -- the sender's message id (fixmedins_code + time + seq)
    fixmedins_code  TEXT NOT NULL,
    infno           TEXT NOT NULL,
    request_hash    TEXT NOT NULL,            -- SM3 of infno and input: the same msgid with other content is refused
    response        TEXT NOT NULL,            -- the answer as sent
    ref_id          TEXT NOT NULL DEFAULT '', -- what it created: mdtrt_id, setl_id (for 2601)
    created_at      BIGINT NOT NULL
);
CREATE INDEX nhsa_messages_inst ON nhsa_messages(fixmedins_code, created_at);

CREATE TABLE nhsa_signins (
    sign_no         TEXT PRIMARY KEY,
    fixmedins_code  TEXT NOT NULL,
    opter_no        TEXT NOT NULL,
    sign_in_at      BIGINT NOT NULL,
    sign_out_at     BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE nhsa_visit_refs (
    mdtrt_id        TEXT PRIMARY KEY,
    ipt_otp_no      TEXT NOT NULL,            -- the HIS's own outpatient/inpatient number
    info            TEXT NOT NULL DEFAULT '{}'-- last 2203/2401/2402 payload (diagnoses etc.)
);

-- Files exchanged through 9101 (upload) and 9102 (download), e.g. the
-- detail reconciliation of 3202 and its result.
CREATE TABLE nhsa_files (
    file_qury_no    TEXT PRIMARY KEY,
    fixmedins_code  TEXT NOT NULL,
    filename        TEXT NOT NULL,
    content         BLOB NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
