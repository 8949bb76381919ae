package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"yibao"
	"yibao/sqlstore"
	"yibao/sqlstore/sqltest"
)

func cst(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04:05.999999", s, yibao.ChinaTime)
	if err != nil {
		panic(err)
	}
	return t
}

func TestPartitionNames(t *testing.T) {
	// Months begin at midnight China time: 16:00 UTC on the last day of
	// the month before.
	if got := sqlstore.PartitionName("outbox", time.Date(2025, 3, 31, 16, 0, 0, 0, time.UTC)); got != "outbox_p202504" {
		t.Fatalf("got %s", got)
	}
	if got := sqlstore.PartitionName("outbox", cst("2025-03-31 23:59:59.999999")); got != "outbox_p202503" {
		t.Fatalf("got %s", got)
	}
}

// whereIs returns the partition that holds the outbox row id.
func whereIs(t *testing.T, db *sqlstore.DB, id string) string {
	t.Helper()
	var p string
	if err := db.QueryRow(context.Background(), `SELECT tableoid::regclass::text FROM outbox WHERE id = ?`, id).Scan(&p); err != nil {
		t.Fatalf("outbox %s: %v", id, err)
	}
	return p
}

func insertEvent(t *testing.T, db *sqlstore.DB, id string, at time.Time) {
	t.Helper()
	if _, err := db.Exec(context.Background(), `INSERT INTO outbox (id, topic, subject, payload, created_at) VALUES (?, 'test', 's', '{}', ?)`,
		id, at.UnixMicro()); err != nil {
		t.Fatal(err)
	}
}

// TestMonthlyPartitions: a fresh database has this month's and next
// month's partitions; EnsurePartitions makes the months asked for, and
// events either side of a month boundary (China time) land in two
// different partitions; a row of a month without a partition waits in
// DEFAULT, EnsurePartitions leaves that month alone and says so, and
// MoveDefaultRows (two at once here) makes its partition and moves it.
func TestMonthlyPartitions(t *testing.T) {
	db := sqltest.Open(t)
	ctx := context.Background()
	if db.Dialect != sqlstore.Postgres {
		if made, err := sqlstore.EnsurePartitions(ctx, db, time.Now(), 3); err != nil || made != nil {
			t.Fatalf("SQLite: %v %v", made, err)
		}
		t.Skip("partitions are PostgreSQL's (set " + sqltest.EnvPG + "); on SQLite EnsurePartitions does nothing")
	}
	parts, err := sqlstore.Partitions(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	now := sqlstore.MonthStart(time.Now())
	bounds := map[string]string{}
	for _, p := range parts {
		bounds[p.Name] = p.Bound
	}
	for _, tab := range sqlstore.PartitionedTables {
		for _, m := range []time.Time{now, now.AddDate(0, 1, 0)} {
			want := fmt.Sprintf("FOR VALUES FROM ('%d') TO ('%d')", m.UnixMicro(), m.AddDate(0, 1, 0).UnixMicro())
			if got := bounds[sqlstore.PartitionName(tab.Name, m)]; got != want {
				t.Fatalf("the migration's %s: %q, want %q", sqlstore.PartitionName(tab.Name, m), got, want)
			}
		}
		if bounds[tab.Name+"_default"] != "DEFAULT" {
			t.Fatalf("%s has no DEFAULT partition: %v", tab.Name, bounds)
		}
	}
	if made, err := sqlstore.EnsurePartitions(ctx, db, time.Now(), 1); err != nil || len(made) != 0 {
		t.Fatalf("nothing to make: %v %v", made, err)
	}

	made, err := sqlstore.EnsurePartitions(ctx, db, cst("2025-03-10 08:00:00"), 1)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, tab := range sqlstore.PartitionedTables {
		want[tab.Name+"_p202503"], want[tab.Name+"_p202504"] = true, true
	}
	if len(made) != len(want) {
		t.Fatalf("made %v, want %d partitions", made, len(want))
	}
	for _, p := range made {
		if !want[p] {
			t.Fatalf("made %s, not among %v", p, want)
		}
	}
	insertEvent(t, db, "EV-march", cst("2025-03-31 23:59:59.999999"))
	insertEvent(t, db, "EV-april", cst("2025-04-01 00:00:00"))
	if p, q := whereIs(t, db, "EV-march"), whereIs(t, db, "EV-april"); p != "outbox_p202503" || q != "outbox_p202504" {
		t.Fatalf("march in %s, april in %s", p, q)
	}

	// June has no partition: its row waits in DEFAULT, and a server's run
	// makes May but not June, whose partition would take the row.
	insertEvent(t, db, "EV-june", cst("2025-06-15 12:00:00"))
	if p := whereIs(t, db, "EV-june"); p != "outbox_default" {
		t.Fatalf("june row in %s", p)
	}
	made, err = sqlstore.EnsurePartitions(ctx, db, cst("2025-05-10 08:00:00"), 1)
	if !errors.Is(err, sqlstore.ErrRowsInDefault) || !strings.Contains(err.Error(), "1 rows of 2025-06 in outbox_default") {
		t.Fatalf("run with a row waiting: %v", err)
	}
	if len(made) != 2*len(sqlstore.PartitionedTables)-1 {
		t.Fatalf("made %v: May of every table, June of all but the outbox", made)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var moved []string
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			made, err := sqlstore.MoveDefaultRows(ctx, db)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			moved = append(moved, made...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(moved) != 1 || moved[0] != "outbox_p202506" {
		t.Fatalf("moving made %v, want only outbox_p202506", moved)
	}
	if p := whereIs(t, db, "EV-june"); p != "outbox_p202506" {
		t.Fatalf("june row in %s after the move", p)
	}
	if _, err := sqlstore.EnsurePartitions(ctx, db, cst("2025-05-10 08:00:00"), 1); err != nil {
		t.Fatalf("after the move: %v", err)
	}
	// Rows are still found, updated and counted through the parent.
	if _, err := db.Exec(ctx, `UPDATE outbox SET status = 'delivered' WHERE id = ?`, "EV-march"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM outbox WHERE status = 'pending'`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("pending events: %d (%v)", n, err)
	}
}

// TestPartitionMigrationKeepsRows applies the migrations before 0022 by
// hand, writes rows into the still plain tables, then lets Migrate apply
// 0022: every row is in its month's partition and the indexes are back.
func TestPartitionMigrationKeepsRows(t *testing.T) {
	dsn := sqltest.DSN(t)
	if !sqlstore.IsPostgresDSN(dsn) {
		t.Skip("PostgreSQL only (set " + sqltest.EnvPG + ")")
	}
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ms, err := sqlstore.Migrations(db.Dialect)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version >= 22 {
			break
		}
		if _, err := db.Exec(ctx, m.SQL); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if _, err := db.Exec(ctx, `INSERT INTO schema_migrations VALUES (?, ?, 0)`, m.Version, m.Name); err != nil {
			t.Fatal(err)
		}
	}
	insertEvent(t, db, "EV-old", cst("2024-11-30 10:00:00"))
	insertEvent(t, db, "EV-new", cst("2024-12-01 10:00:00"))
	if _, err := db.Exec(ctx, `INSERT INTO ecert_reads (id, cert_id, channel_id, binding_id, what, at) VALUES ('rd_1', 'c', 'ch', 'b', 'code', ?)`,
		cst("2024-12-02 10:00:00").UnixMicro()); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if p, q := whereIs(t, db, "EV-old"), whereIs(t, db, "EV-new"); p != "outbox_p202411" || q != "outbox_p202412" {
		t.Fatalf("old row in %s, new in %s", p, q)
	}
	var p string
	if err := db.QueryRow(ctx, `SELECT tableoid::regclass::text FROM ecert_reads WHERE id = 'rd_1'`).Scan(&p); err != nil || p != "ecert_reads_p202412" {
		t.Fatalf("read row in %s (%v)", p, err)
	}
	var idx, fk int
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema()
		AND indexname IN ('settlements_psn', 'settlements_visit', 'settlements_pending', 'outbox_unpublished', 'outbox_due', 'ecert_reads_cert', 'face_verifications_at')`).Scan(&idx); err != nil {
		t.Fatal(err)
	}
	// The foreign key to visits is left out on purpose (see the migration).
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM pg_constraint WHERE conrelid = 'settlements'::regclass AND contype = 'f'`).Scan(&fk); err != nil {
		t.Fatal(err)
	}
	if idx != 7 || fk != 0 {
		t.Fatalf("after 0022: %d of 7 indexes, %d foreign keys", idx, fk)
	}
	if made, err := sqlstore.EnsurePartitions(ctx, db, time.Now(), 1); err != nil || len(made) != 0 {
		t.Fatalf("after the migration: made %v, %v", made, err)
	}
}
