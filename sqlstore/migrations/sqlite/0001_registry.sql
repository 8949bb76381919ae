-- Registry (the bureau's master data), users, institution API keys,
-- replay nonces, idempotency records and import jobs.

CREATE TABLE regions (
    admdvs      TEXT PRIMARY KEY,          -- 6-digit administrative division code
    name        TEXT NOT NULL,
    parent      TEXT,                      -- province/city above it, if registered
    created_at  BIGINT NOT NULL
);

CREATE TABLE schemes (
    insutype    TEXT PRIMARY KEY,          -- 310 employee basic, 390 resident basic, …
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,             -- employee_basic | resident_basic | civil_servant | large_amount | critical_illness | assistance | supplementary
    created_at  BIGINT NOT NULL
);

CREATE TABLE persons (
    psn_no        TEXT PRIMARY KEY,
    id_cipher     BLOB NOT NULL,           -- SM4-GCM sealed ID number
    id_index      BLOB NOT NULL UNIQUE,    -- SM3-HMAC blind index of the ID number
    id_masked     TEXT NOT NULL,           -- 370102********123X
    name_cipher   BLOB NOT NULL,
    name_index    BLOB NOT NULL,
    name_masked   TEXT NOT NULL,           -- 张*
    phone_cipher  BLOB,
    phone_index   BLOB,
    phone_masked  TEXT,
    birth_date    TEXT NOT NULL,
    gender        TEXT NOT NULL,           -- 1 male, 2 female (GB/T 2261.1)
    category      TEXT NOT NULL,           -- active | retired | resident | student | low_income | extreme_poverty | disabled | special_care
    admdvs        TEXT NOT NULL REFERENCES regions(admdvs),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX persons_name_index ON persons(name_index);
CREATE INDEX persons_phone_index ON persons(phone_index);
CREATE INDEX persons_admdvs ON persons(admdvs, psn_no);

CREATE TABLE coverages (
    id          TEXT PRIMARY KEY,
    psn_no      TEXT NOT NULL REFERENCES persons(psn_no),
    insutype    TEXT NOT NULL REFERENCES schemes(insutype),
    admdvs      TEXT NOT NULL REFERENCES regions(admdvs),
    start_date  TEXT NOT NULL,
    end_date    TEXT,                      -- NULL: open-ended
    status      TEXT NOT NULL,             -- active | suspended | ended
    created_at  BIGINT NOT NULL
);
CREATE INDEX coverages_person ON coverages(psn_no, insutype);

CREATE TABLE institutions (
    fixmedins_code   TEXT PRIMARY KEY,     -- H + 11 digits (hospital) or P + 11 digits (pharmacy)
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,        -- hospital | pharmacy
    level            SMALLINT NOT NULL,    -- 1, 2, 3 for hospitals; 0 for pharmacies
    admdvs           TEXT NOT NULL REFERENCES regions(admdvs),
    contract_status  TEXT NOT NULL,        -- active | suspended | terminated
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE catalog_items (
    code            TEXT PRIMARY KEY,      -- national code (drug XA01…, service item 15 digits, material C…)
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL,         -- drug | service | material
    class           TEXT NOT NULL,         -- A (甲) | B (乙) | C (丙)
    self_pay_ratio  TEXT NOT NULL,         -- exact ratio, B only, e.g. "0.1"
    price_cap       BIGINT,                -- fen per unit; NULL: no cap
    unit            TEXT NOT NULL,
    spec            TEXT NOT NULL,         -- dosage form / specification
    category        TEXT NOT NULL,         -- national category code or name
    restriction     TEXT NOT NULL,         -- 限定支付范围, free text
    valid_from      TEXT NOT NULL,
    valid_to        TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX catalog_items_name ON catalog_items(name);

CREATE TABLE users (
    username        TEXT PRIMARY KEY,
    password_hash   TEXT NOT NULL,
    role            TEXT NOT NULL,         -- admin | cashier | his
    fixmedins_code  TEXT REFERENCES institutions(fixmedins_code),
    display_name    TEXT NOT NULL,
    disabled        SMALLINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash  BLOB PRIMARY KEY,          -- SM3 of the bearer token
    username    TEXT NOT NULL REFERENCES users(username),
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    key_id          TEXT PRIMARY KEY,
    fixmedins_code  TEXT NOT NULL REFERENCES institutions(fixmedins_code),
    alg             TEXT NOT NULL,         -- HMAC-SM3 | SM2
    secret_cipher   BLOB,                  -- SM4-GCM sealed HMAC secret
    public_key      BLOB,                  -- SM2 public key, 65-byte uncompressed point
    status          TEXT NOT NULL,         -- active | revoked
    created_at      BIGINT NOT NULL
);

CREATE TABLE request_nonces (
    key_id   TEXT NOT NULL,
    nonce    TEXT NOT NULL,
    seen_at  BIGINT NOT NULL,
    PRIMARY KEY (key_id, nonce)
);
CREATE INDEX request_nonces_seen ON request_nonces(seen_at);

CREATE TABLE idempotency_keys (
    principal     TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    request_hash  BLOB NOT NULL,
    status_code   BIGINT,                  -- NULL while the first request is in flight
    content_type  TEXT,
    response      BLOB,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (principal, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);

CREATE TABLE import_jobs (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,            -- catalog | persons
    status       TEXT NOT NULL,            -- running | succeeded | failed
    total        BIGINT NOT NULL,
    done         BIGINT NOT NULL,
    imported     BIGINT NOT NULL,
    errors       TEXT NOT NULL,            -- JSON list of {line, field, message}
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
