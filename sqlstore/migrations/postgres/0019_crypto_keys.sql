-- The key hierarchy (docs/security.md, "Keys"): every data-encryption key,
-- derivation secret and private signing key, wrapped under the key store's
-- key-encryption key (the master key, or a key in a PKCS#11 module), with
-- its id, purpose and state. Signing keys keep their public half in clear
-- so old receipts and checkpoints verify after a rotation.

CREATE TABLE crypto_keys (
    id              TEXT PRIMARY KEY,          -- k1, k2, root1, cp-sm2-1, cp-ed-1, bank-sm2-1, …
    kind            TEXT NOT NULL,             -- data | secret | signing
    purpose         TEXT NOT NULL,             -- pii | derivation-root | checkpoint-sm2 | checkpoint-ed25519 | bank-request
    alg             TEXT NOT NULL,             -- SM4 | HKDF-SM3 | SM2 | Ed25519
    state           TEXT NOT NULL,             -- active | decrypt-only | retired
    key_store       TEXT NOT NULL,             -- the KEK that wrapped it: software:<fingerprint> | pkcs11:<token>/<label>
    wrapped         BYTEA,                     -- the key wrapped under that KEK, or a hardware object's reference; NULL once retired
    public_key      BYTEA,                     -- signing keys: SM2 65-byte point or Ed25519 32 bytes
    origin          TEXT NOT NULL,             -- generated | imported from the pre-catalog derivation (its label)
    created_at      BIGINT NOT NULL,
    changed_at      BIGINT NOT NULL            -- when the state last changed
);
CREATE UNIQUE INDEX crypto_keys_one_active ON crypto_keys(purpose) WHERE state = 'active';

-- The re-encryption job after a data-key rotation: a cursor per sealed
-- table, so an interrupted job resumes where it stopped.
CREATE TABLE crypto_reencrypt_jobs (
    key_id          TEXT NOT NULL,             -- the active data key values are re-sealed under
    target          TEXT NOT NULL,             -- the table
    cursor_key      TEXT NOT NULL,             -- the last primary key done
    done            BIGINT NOT NULL,
    total           BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (key_id, target)
);
