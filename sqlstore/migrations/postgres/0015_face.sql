-- Face payment: separate, revocable consent; templates sealed with SM4-GCM
-- (never images); registered face terminals with their own SM2 keys;
-- one-time challenges, nonces and frame hashes against replays; every
-- verification recorded without the image. docs/face.md.

CREATE TABLE face_consents (
    psn_no          TEXT PRIMARY KEY,
    status          TEXT NOT NULL,            -- given | withdrawn
    version         TEXT NOT NULL,
    channel         TEXT NOT NULL,            -- app | counter
    actor           TEXT NOT NULL,
    given_at        BIGINT NOT NULL,
    withdrawn_at    BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE face_templates (
    id              BIGINT PRIMARY KEY,       -- random 63-bit; the in-memory gallery's key
    psn_no          TEXT NOT NULL,
    space           TEXT NOT NULL,            -- the embedding space (model and version)
    key_id          TEXT NOT NULL,            -- the SM4 key that sealed it
    sealed          BYTEA NOT NULL,           -- SM4-GCM(float32 vector), bound to psn_no and id
    scope           TEXT NOT NULL,            -- HMAC-SM3(region, last 4 phone digits): the 1:N gallery
    admdvs          TEXT NOT NULL,
    quality         TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL
);
CREATE INDEX face_templates_psn ON face_templates(psn_no);
CREATE INDEX face_templates_scope ON face_templates(scope);

CREATE TABLE face_terminals (
    terminal_id     TEXT PRIMARY KEY,
    fixmedins_code  TEXT NOT NULL,
    name            TEXT NOT NULL,
    public_key      TEXT NOT NULL,            -- SM2, PEM
    status          TEXT NOT NULL,            -- active | revoked
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX face_terminals_inst ON face_terminals(fixmedins_code);

CREATE TABLE face_challenges (
    challenge_id    TEXT PRIMARY KEY,
    terminal_id     TEXT NOT NULL,
    kind            TEXT NOT NULL,            -- closer | farther
    expires_at      BIGINT NOT NULL,
    used            SMALLINT NOT NULL DEFAULT 0
);

-- A nonce or a frame (by SM3) seen from a terminal: never accepted twice.
CREATE TABLE face_seen (
    terminal_id     TEXT NOT NULL,
    what            TEXT NOT NULL,            -- nonce:<n> | frame:<sm3>
    at              BIGINT NOT NULL,
    PRIMARY KEY (terminal_id, what)
);

CREATE TABLE face_verifications (
    id              TEXT PRIMARY KEY,
    terminal_id     TEXT NOT NULL,
    fixmedins_code  TEXT NOT NULL,
    mode            TEXT NOT NULL,            -- one_to_one | one_to_n
    psn_no          TEXT NOT NULL DEFAULT '',
    outcome         TEXT NOT NULL,            -- matched | refused reason
    score           REAL NOT NULL DEFAULT 0,
    margin          REAL NOT NULL DEFAULT 0,
    liveness        REAL NOT NULL DEFAULT 0,
    at              BIGINT NOT NULL
);
CREATE INDEX face_verifications_at ON face_verifications(fixmedins_code, at);
