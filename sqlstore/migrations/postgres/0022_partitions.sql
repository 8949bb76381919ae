-- Monthly partitions (PostgreSQL only) for the tables that only grow and
-- whose rows are identified by a random id: settlements, outbox events,
-- e-certificate self-service reads and face verifications. Each becomes a
-- table partitioned by RANGE on its creation instant (unix microseconds),
-- one partition per month in China time, plus a DEFAULT partition so that
-- an insert never fails for want of a partition. sqlstore.EnsurePartitions
-- (run by the server at start and daily, and by `yibao pg partitions`)
-- creates the coming months' partitions and moves rows out of DEFAULT.
--
-- PostgreSQL requires the partition key in every unique index, so the
-- primary keys become (id, instant). That is safe here because no caller
-- relies on the database to refuse a second row with the same id: the ids
-- are drawn at random when the row is created (ST…, EV…, rd_…, FV…), rows
-- are inserted once and found by id afterwards. Tables whose uniqueness on
-- an id alone does work — the ledger's transfer ids (idempotency), audit
-- entry ids (ON CONFLICT (id)), fee-line numbers, idempotency keys, used
-- e-certificate codes and request nonces (replay detection), NHSA message
-- ids, payment attempts and notifications — stay unpartitioned; the
-- reasoning per table is in docs/operations.md, "Monthly partitions".
--
-- Existing rows are copied into the DEFAULT partition here; the first
-- EnsurePartitions moves them into their months.
DO $$
DECLARE
    t    RECORD;
    pk   TEXT;
    defs TEXT[];
    d    TEXT;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('settlements', 'setl_id', 'created_at'),
        ('outbox', 'id', 'created_at'),
        ('ecert_reads', 'id', 'at'),
        ('face_verifications', 'id', 'at')) AS v(name, id, key)
    LOOP
        -- Every other index and foreign key, to be made again on the new table.
        SELECT COALESCE(array_agg(pg_get_indexdef(i.indexrelid)), '{}') INTO defs
            FROM pg_index i WHERE i.indrelid = t.name::regclass AND NOT i.indisprimary;
        SELECT defs || COALESCE(array_agg(format('ALTER TABLE %I ADD CONSTRAINT %I %s', t.name, c.conname, pg_get_constraintdef(c.oid))), '{}') INTO defs
            FROM pg_constraint c WHERE c.conrelid = t.name::regclass AND c.contype = 'f';
        SELECT c.conname INTO pk FROM pg_constraint c WHERE c.conrelid = t.name::regclass AND c.contype = 'p';
        EXECUTE format('ALTER TABLE %I RENAME TO %I', t.name, t.name || '_unpartitioned');
        EXECUTE format('ALTER INDEX %I RENAME TO %I', pk, t.name || '_unpartitioned_pkey');
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS, PRIMARY KEY (%I, %I)) PARTITION BY RANGE (%I)',
            t.name, t.name || '_unpartitioned', t.id, t.key, t.key);
        EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', t.name || '_default', t.name);
        EXECUTE format('INSERT INTO %I SELECT * FROM %I', t.name, t.name || '_unpartitioned');
        EXECUTE format('DROP TABLE %I', t.name || '_unpartitioned');
        FOREACH d IN ARRAY defs LOOP
            EXECUTE d;
        END LOOP;
    END LOOP;
END
$$;
