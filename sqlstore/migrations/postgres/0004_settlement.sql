-- Settlement: policy versions (drafted, approved by a second administrator,
-- published), visits, fee lines, settlements and the year-to-date
-- accumulators they change. Money is fen; times are unix microseconds.

CREATE TABLE policies (
    admdvs          TEXT NOT NULL,
    version         TEXT NOT NULL,
    effective_from  TEXT NOT NULL,
    effective_to    TEXT NOT NULL,            -- '' = open
    status          TEXT NOT NULL,            -- draft | submitted | published | rejected
    doc             TEXT NOT NULL,            -- the policy JSON
    created_by      TEXT NOT NULL,
    submitted_by    TEXT NOT NULL DEFAULT '',
    decided_by      TEXT NOT NULL DEFAULT '', -- the second administrator
    note            TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (admdvs, version)
);

CREATE TABLE visits (
    mdtrt_id        TEXT PRIMARY KEY,
    psn_no          TEXT NOT NULL REFERENCES persons(psn_no),
    fixmedins_code  TEXT NOT NULL REFERENCES institutions(fixmedins_code),
    insutype        TEXT NOT NULL,
    insu_admdvs     TEXT NOT NULL,            -- the insured region: its policy and funds apply
    visit_type      TEXT NOT NULL,            -- general_outpatient | chronic_outpatient | emergency | inpatient | pharmacy
    med_type        TEXT NOT NULL,            -- NHSA med_type: 11, 14, 21, 41, …
    dept_code       TEXT NOT NULL DEFAULT '',
    dept_name       TEXT NOT NULL DEFAULT '',
    level           INTEGER NOT NULL,         -- institution level at admission
    transfer_from_level INTEGER NOT NULL DEFAULT 0,
    cross_status    TEXT NOT NULL DEFAULT 'local',
    cross_scope     TEXT NOT NULL DEFAULT '',
    dise_codg       TEXT NOT NULL DEFAULT '',
    slot_id         TEXT NOT NULL DEFAULT '',
    mdtrt_cert_type TEXT NOT NULL DEFAULT '02', -- how the patient identified: 01 e-certificate, 02 ID card, 03 social-security card
    mdtrt_cert_no   TEXT NOT NULL DEFAULT '',   -- e-certificate id, or the masked card number
    begin_date      TEXT NOT NULL,
    end_date        TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL,            -- open | discharged | settled | cancelled
    segments        INTEGER NOT NULL DEFAULT 0, -- settlements of this visit so far (mid-stay + final)
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX visits_psn ON visits(psn_no, created_at);
CREATE INDEX visits_institution ON visits(fixmedins_code, created_at);

CREATE TABLE fee_lines (
    mdtrt_id        TEXT NOT NULL REFERENCES visits(mdtrt_id),
    feedetl_sn      TEXT NOT NULL,
    catalog_code    TEXT NOT NULL,
    name            TEXT NOT NULL,
    class           TEXT NOT NULL,            -- A | B | C
    self_pay_ratio  TEXT NOT NULL,            -- 乙类先行自付, exact decimal
    price_cap       BIGINT,                   -- fen per unit; NULL = none
    unit_price      BIGINT NOT NULL,
    quantity        TEXT NOT NULL,            -- exact decimal
    amount          BIGINT NOT NULL,
    fee_date        TEXT NOT NULL,
    status          TEXT NOT NULL,            -- active | cancelled
    setl_id         TEXT NOT NULL DEFAULT '', -- the settlement that holds it ('' = not yet)
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (mdtrt_id, feedetl_sn)
);

CREATE TABLE settlements (
    setl_id         TEXT PRIMARY KEY,
    mdtrt_id        TEXT NOT NULL REFERENCES visits(mdtrt_id),
    psn_no          TEXT NOT NULL,
    fixmedins_code  TEXT NOT NULL,
    insutype        TEXT NOT NULL,
    insu_admdvs     TEXT NOT NULL,
    policy_version  TEXT NOT NULL,
    kind            TEXT NOT NULL,            -- outpatient | mid_stay | discharge | pharmacy
    segment         INTEGER NOT NULL,         -- 1 for a visit's first settlement, 2 for the next, …
    pay_mode        TEXT NOT NULL,            -- cash | later
    status          TEXT NOT NULL,            -- pending | completed | voided | reversed
    acc_year        INTEGER NOT NULL,
    medfee_sumamt   BIGINT NOT NULL,
    fund_pay_sumamt BIGINT NOT NULL,
    acct_pay        BIGINT NOT NULL,
    psn_cash_pay    BIGINT NOT NULL,
    input           TEXT NOT NULL,            -- the calculator input JSON (for replay)
    result          TEXT NOT NULL,            -- the calculator's result JSON
    legs            TEXT NOT NULL,            -- the ledger legs JSON
    channel         TEXT NOT NULL DEFAULT '', -- how the out-of-pocket part was paid
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL DEFAULT 0,-- pending only
    resolved_at     BIGINT NOT NULL DEFAULT 0,
    reversed_at     BIGINT NOT NULL DEFAULT 0,
    reversed_by     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX settlements_psn ON settlements(psn_no, created_at);
CREATE INDEX settlements_visit ON settlements(mdtrt_id);
CREATE INDEX settlements_pending ON settlements(expires_at) WHERE status = 'pending';

CREATE TABLE accumulators (
    psn_no          TEXT NOT NULL,
    insutype        TEXT NOT NULL,
    acc_year        INTEGER NOT NULL,
    admissions      INTEGER NOT NULL,
    counters        TEXT NOT NULL,            -- JSON {"deductible": "900.00", …} (yuan strings)
    version         BIGINT NOT NULL,          -- bumped on every change: optimistic concurrency
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (psn_no, insutype, acc_year)
);

-- Bookable appointment slots (号源) per department.
CREATE TABLE slots (
    slot_id         TEXT PRIMARY KEY,
    fixmedins_code  TEXT NOT NULL REFERENCES institutions(fixmedins_code),
    dept_code       TEXT NOT NULL,
    dept_name       TEXT NOT NULL,
    doctor_name     TEXT NOT NULL DEFAULT '',
    slot_date       TEXT NOT NULL,
    start_time      TEXT NOT NULL,            -- HH:MM
    end_time        TEXT NOT NULL,
    capacity        INTEGER NOT NULL,
    booked          INTEGER NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX slots_day ON slots(fixmedins_code, slot_date, dept_code);

-- Family mutual aid (家庭共济): the account holder consents that a family
-- member's bills may draw on their personal account.
CREATE TABLE family_links (
    holder_psn_no   TEXT NOT NULL REFERENCES persons(psn_no),
    member_psn_no   TEXT NOT NULL REFERENCES persons(psn_no),
    relation        TEXT NOT NULL,            -- spouse | parent | child
    status          TEXT NOT NULL,            -- active | revoked
    consented_by    TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    revoked_at      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (holder_psn_no, member_psn_no)
);
CREATE INDEX family_links_member ON family_links(member_psn_no);

-- Events for other parts of the platform (patient notices, the
-- transparency log), written in the same transaction as the change.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    topic           TEXT NOT NULL,            -- settlement.pending | settlement.completed | settlement.voided | settlement.reversed
    subject         TEXT NOT NULL,            -- the settlement id
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    published_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX outbox_unpublished ON outbox(created_at) WHERE published_at = 0;
