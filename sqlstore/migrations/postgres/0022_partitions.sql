-- Monthly partitions (PostgreSQL only) for the tables that only grow and
-- whose rows are identified by a random id: settlements, outbox events,
-- e-certificate self-service reads and face verifications. Each becomes a
-- table partitioned by RANGE on its creation instant (unix microseconds),
-- one partition per month in China time named <table>_pYYYYMM, plus a
-- DEFAULT partition so that an insert never fails for want of a partition.
-- sqlstore.EnsurePartitions (run by the server at start and daily, and by
-- `yibao pg partitions`) keeps the coming months' partitions in place.
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
-- The foreign key settlements.mdtrt_id → visits is not made again. Adding
-- a partition to a table with a foreign key adds the key's triggers on the
-- referenced table, which locks visits against every write for as long
-- as the attach waits, and can deadlock with a settlement transaction that
-- holds visits and waits for settlements. The key guarded nothing the code
-- can do: a settlement is written in the transaction that updates its
-- visit row (the optimistic check on segments and status), and visits are
-- never deleted.
--
-- The partitions made here are those of every month the existing rows fall
-- in, and of the current month and the next, so the copy below
-- puts each row in its month and a running server never has to move rows
-- out of DEFAULT (sqlstore/partition.go says why it must not).
DO $$
DECLARE
    t    RECORD;
    m    TIMESTAMP;  -- a month's first instant, wall-clock China time
    pk   TEXT;
    defs TEXT[];
    d    TEXT;
    old  TEXT;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('settlements', 'setl_id', 'created_at'),
        ('outbox', 'id', 'created_at'),
        ('ecert_reads', 'id', 'at'),
        ('face_verifications', 'id', 'at')) AS v(name, id, key)
    LOOP
        old := t.name || '_unpartitioned';
        -- Every other index, to be made again on the new table.
        SELECT COALESCE(array_agg(pg_get_indexdef(i.indexrelid)), '{}') INTO defs
            FROM pg_index i WHERE i.indrelid = t.name::regclass AND NOT i.indisprimary;
        SELECT c.conname INTO pk FROM pg_constraint c WHERE c.conrelid = t.name::regclass AND c.contype = 'p';
        EXECUTE format('ALTER TABLE %I RENAME TO %I', t.name, old);
        EXECUTE format('ALTER INDEX %I RENAME TO %I', pk, old || '_pkey');
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS, PRIMARY KEY (%I, %I)) PARTITION BY RANGE (%I)',
            t.name, old, t.id, t.key, t.key);
        EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', t.name || '_default', t.name);
        FOR m IN EXECUTE format(
            'SELECT date_trunc(''month'', (to_timestamp(%I / 1000000.0) AT TIME ZONE ''UTC'') + INTERVAL ''8 hours'') FROM %I
             UNION SELECT date_trunc(''month'', (now() AT TIME ZONE ''UTC'') + INTERVAL ''8 hours'') + n * INTERVAL ''1 month'' FROM generate_series(0, 1) n',
            t.key, old)
        LOOP
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%s) TO (%s)', t.name || '_p' || to_char(m, 'YYYYMM'), t.name,
                ((extract(epoch FROM m) - 8 * 3600) * 1000000)::BIGINT,
                ((extract(epoch FROM m + INTERVAL '1 month') - 8 * 3600) * 1000000)::BIGINT);
        END LOOP;
        EXECUTE format('INSERT INTO %I SELECT * FROM %I', t.name, old);
        EXECUTE format('DROP TABLE %I', old);
        FOREACH d IN ARRAY defs LOOP
            EXECUTE d;
        END LOOP;
    END LOOP;
END
$$;
