-- The medical-insurance e-certificate: channels (apps that carry it),
-- certificates (one per person), activations with a one-time code to the
-- registered phone, device bindings with their platform-certified
-- credentials, codes already used (one-time), ecTokens handed to
-- institutions, the development SMS outbox and the log of self-service reads.

CREATE TABLE channels (
    channel_id      TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    public_key      BYTEA NOT NULL,          -- SM2, 65-byte point: every channel request is signed
    status          TEXT NOT NULL,            -- active | suspended
    created_at      BIGINT NOT NULL
);

CREATE TABLE ecerts (
    cert_id         TEXT PRIMARY KEY,         -- 20 base32 characters, stable for the person
    psn_no          TEXT NOT NULL UNIQUE REFERENCES persons(psn_no),
    admdvs          TEXT NOT NULL,            -- the issuing (insured) region
    created_at      BIGINT NOT NULL
);

CREATE TABLE ecert_activations (
    activation_id   TEXT PRIMARY KEY,
    psn_no          TEXT NOT NULL,
    channel_id      TEXT NOT NULL,
    proxy_psn_no    TEXT NOT NULL DEFAULT '', -- a guardian activating for a minor or a consenting relative
    otp_mac         BYTEA NOT NULL,          -- HMAC-SM3 of the one-time code
    attempts        INTEGER NOT NULL,
    status          TEXT NOT NULL,            -- pending | done | failed
    expires_at      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE ecert_devices (
    binding_id      TEXT PRIMARY KEY,
    cert_id         TEXT NOT NULL REFERENCES ecerts(cert_id),
    channel_id      TEXT NOT NULL REFERENCES channels(channel_id),
    proxy_psn_no    TEXT NOT NULL DEFAULT '', -- set when a guardian holds this device
    device_key_hash BYTEA NOT NULL UNIQUE,   -- SM3 of the device public key
    credential      BYTEA NOT NULL,          -- the 154-byte platform-certified credential
    status          TEXT NOT NULL,            -- active | revoked
    created_at      BIGINT NOT NULL,
    revoked_at      BIGINT NOT NULL DEFAULT 0,
    revoked_by      TEXT NOT NULL DEFAULT '',
    revoked_reason  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX ecert_devices_cert ON ecert_devices(cert_id);

CREATE TABLE ecert_used_codes (
    code_id         BYTEA PRIMARY KEY,       -- SM3 of the code's bytes
    cert_id         TEXT NOT NULL,
    fixmedins_code  TEXT NOT NULL,
    binding_id      TEXT NOT NULL,
    proxy_psn_no    TEXT NOT NULL DEFAULT '', -- the guardian whose device showed it: a use is attributed to both
    used_at         BIGINT NOT NULL
);
CREATE INDEX ecert_used_codes_age ON ecert_used_codes(used_at);

CREATE TABLE ec_tokens (
    token_hash      BYTEA PRIMARY KEY,       -- SM3 of the token; the token itself is never stored
    cert_id         TEXT NOT NULL,
    psn_no          TEXT NOT NULL,
    fixmedins_code  TEXT NOT NULL,
    binding_id      TEXT NOT NULL,
    mdtrt_id        TEXT NOT NULL DEFAULT '', -- bound when the visit is registered
    expires_at      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE sms_outbox (
    id              TEXT PRIMARY KEY,
    phone_masked    TEXT NOT NULL,
    text            TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE ecert_reads (
    id              TEXT PRIMARY KEY,
    cert_id         TEXT NOT NULL,
    channel_id      TEXT NOT NULL,
    binding_id      TEXT NOT NULL,
    what            TEXT NOT NULL,
    at              BIGINT NOT NULL
);
CREATE INDEX ecert_reads_cert ON ecert_reads(cert_id, at);
