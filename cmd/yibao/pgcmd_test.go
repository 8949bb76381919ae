package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"yibao"
	"yibao/app"
	"yibao/app/apptest"
	"yibao/ledger/engine"
	"yibao/sqlstore"
	"yibao/sqlstore/sqltest"
)

// freshDatabase creates an empty database on the test server, dropped when
// the test ends, and returns its DSN.
func freshDatabase(t *testing.T, pg, prefix string) string {
	t.Helper()
	ctx := context.Background()
	admin, err := sqlstore.Open(ctx, pg)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	rand.Read(b)
	name := "yibao_" + prefix + "_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		admin.Close()
	})
	u, err := url.Parse(pg)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	q := u.Query()
	q.Del("search_path")
	u.RawQuery = q.Encode()
	return u.String()
}

func pgCmd(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), append([]string{"pg"}, args...), &out, &errOut); err != nil {
		t.Fatalf("yibao pg %s: %v\n%s%s", args[0], err, out.String(), errOut.String())
	}
	return out.String()
}

// strings1 runs a one-column query.
func strings1(t *testing.T, db *sqlstore.DB, q string) []string {
	t.Helper()
	v, err := db.Strings(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// TestPGBackupRestore is the round trip an operator relies on: a platform
// with real settlements (the demo seed's, in a month partition, plus an
// event waiting in a DEFAULT partition) is backed up with `yibao pg
// backup`, restored with `yibao pg restore` into a fresh database, and the
// restored database has every table's rows, the same settlements in the
// same partitions, a balanced ledger with the same balances — and a
// platform opened on it reverses a settlement.
func TestPGBackupRestore(t *testing.T) {
	pg := os.Getenv(sqltest.EnvPG)
	if pg == "" {
		t.Skip("PostgreSQL backup and restore: set " + sqltest.EnvPG + " (pg_dump and pg_restore must be on PATH)")
	}
	ctx := context.Background()
	src, dst := freshDatabase(t, pg, "bk"), freshDatabase(t, pg, "rs")
	a, _ := apptest.Open(t, func(c *app.Config) { c.DB = src })
	if _, err := a.DB.Exec(ctx, `INSERT INTO outbox (id, topic, subject, payload, created_at, status) VALUES ('EV-2019', 'test', 'x', '{}', ?, 'delivered')`,
		time.Date(2019, 5, 1, 0, 0, 0, 0, time.UTC).UnixMicro()); err != nil {
		t.Fatal(err)
	}
	setls := strings1(t, a.DB, `SELECT row_to_json(s)::text || tableoid::regclass::text FROM settlements s ORDER BY setl_id`)
	if len(setls) == 0 {
		t.Fatal("the seeded platform has no settlements")
	}
	if !strings.Contains(setls[0], "settlements_p") {
		t.Fatalf("settlement not in a month partition: %s", setls[0])
	}
	wantCounts, err := tableCounts(ctx, a.DB) // every table, and every partition
	if err != nil {
		t.Fatal(err)
	}
	wantAccounts := strings1(t, a.DB, `SELECT id || ' ' || debits_posted || ' ' || credits_posted || ' ' || debits_pending || ' ' || credits_pending FROM ledger_accounts ORDER BY id`)
	var rows int64
	for _, n := range wantCounts {
		rows += n
	}

	file := filepath.Join(t.TempDir(), "yibao.dump")
	start := time.Now()
	backupOut := pgCmd(t, "backup", "--dsn", src, "--out", file)
	backupTook := time.Since(start)
	if !strings.Contains(backupOut, "backed up database") {
		t.Fatalf("backup said:\n%s", backupOut)
	}
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", st, err)
	}
	start = time.Now()
	out := pgCmd(t, "restore", "--dsn", dst, "--in", file)
	restoreTook := time.Since(start)
	if !strings.Contains(out, "checked against the manifest") {
		t.Fatalf("restore said:\n%s", out)
	}
	t.Logf("yibao pg backup:\n%syibao pg restore:\n%s", backupOut, out)
	t.Logf("%d tables and partitions, %d rows counted through both (%d settlements, %d ledger transfers): backup %s (%d bytes), restore with ANALYZE and check %s",
		len(wantCounts), rows, len(setls), wantCounts["ledger_transfers"], backupTook.Round(time.Millisecond), st.Size(), restoreTook.Round(time.Millisecond))

	restoredDB, err := sqlstore.Open(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer restoredDB.Close()
	got, err := tableCounts(ctx, restoredDB)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(wantCounts) {
		t.Fatalf("%d tables restored, %d backed up", len(got), len(wantCounts))
	}
	for name, n := range wantCounts {
		if got[name] != n {
			t.Errorf("table %s: %d rows restored, %d backed up", name, got[name], n)
		}
	}
	for _, main := range []string{"settlements", "ledger_transfers", "ledger_accounts", "fee_lines", "visits", "persons", "audit_entries", "outbox", "crypto_keys"} {
		if wantCounts[main] == 0 {
			t.Errorf("the source has no %s: the round trip proves little", main)
		}
	}
	if g := strings1(t, restoredDB, `SELECT row_to_json(s)::text || tableoid::regclass::text FROM settlements s ORDER BY setl_id`); strings.Join(g, "\n") != strings.Join(setls, "\n") {
		t.Fatalf("settlements differ:\n%s\nbacked up:\n%s", strings.Join(g, "\n"), strings.Join(setls, "\n"))
	}
	if g := strings1(t, restoredDB, `SELECT tableoid::regclass::text FROM outbox WHERE id = 'EV-2019'`); len(g) != 1 || g[0] != "outbox_default" {
		t.Fatalf("the DEFAULT partition's event: %v", g)
	}
	if g := strings1(t, restoredDB, `SELECT id || ' ' || debits_posted || ' ' || credits_posted || ' ' || debits_pending || ' ' || credits_pending FROM ledger_accounts ORDER BY id`); strings.Join(g, "\n") != strings.Join(wantAccounts, "\n") {
		t.Fatal("account balances differ")
	}
	rep, err := engine.Check(ctx, restoredDB, time.Now().UnixMicro())
	if err != nil {
		t.Fatal(err)
	}
	var balance int64
	if err := restoredDB.QueryRow(ctx, `SELECT COALESCE(SUM(credits_posted - debits_posted), 0) FROM ledger_accounts`).Scan(&balance); err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || balance != 0 || rep.Transfers != wantCounts["ledger_transfers"] {
		t.Fatalf("restored ledger: %+v, trial balance %d fen", rep, balance)
	}

	// A platform on the restored database (same master key, new data
	// folder) opens, reads sealed personal data and moves money.
	cfg := a.Config
	cfg.DB, cfg.DataDir = dst, t.TempDir()
	r, err := app.Open(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sys := yibao.WithPrincipal(ctx, yibao.System("restore-test"))
	var setlID, psn string
	if err := restoredDB.QueryRow(ctx, `SELECT setl_id, psn_no FROM settlements WHERE status = 'completed' ORDER BY setl_id LIMIT 1`).Scan(&setlID, &psn); err != nil {
		t.Fatal(err)
	}
	if p, err := r.Registry.Person(sys, psn, true); err != nil || p.IDNumber == "" || strings.Contains(p.IDNumber, "*") {
		t.Fatalf("sealed person after restore: %+v %v", p, err)
	}
	if s, err := r.Settle.Reverse(sys, setlID); err != nil || s.Status != "reversed" {
		t.Fatalf("reverse on the restored platform: %+v %v", s, err)
	}
	if rep, err := engine.Check(ctx, restoredDB, time.Now().UnixMicro()); err != nil || !rep.OK() || rep.Transfers <= wantCounts["ledger_transfers"] {
		t.Fatalf("after the reversal: %+v %v", rep, err)
	}

	// Restoring over a database that has tables is refused.
	var errOut bytes.Buffer
	if err := run(ctx, []string{"pg", "restore", "--dsn", dst, "--in", file}, io.Discard, &errOut); err == nil || !strings.Contains(err.Error(), "restore into an empty database") {
		t.Fatalf("restore over existing tables: %v", err)
	}
}

// TestPGBackupRestoreSchema backs up a database whose DSN names a schema
// (search_path): only that schema is dumped, and restored under the same
// name in another database.
func TestPGBackupRestoreSchema(t *testing.T) {
	pg := os.Getenv(sqltest.EnvPG)
	if pg == "" {
		t.Skip("PostgreSQL backup and restore: set " + sqltest.EnvPG)
	}
	ctx := context.Background()
	src := sqltest.DSN(t)
	db, err := sqlstore.Open(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO regions (admdvs, name, created_at) VALUES ('370100', '济南市', 1)`); err != nil {
		t.Fatal(err)
	}
	schema := strings1(t, db, `SELECT current_schema()::text`)[0]
	dst := freshDatabase(t, pg, "rs")
	file := filepath.Join(t.TempDir(), "schema.dump")
	if out := pgCmd(t, "backup", "--dsn", src, "--out", file); !strings.Contains(out, "schema "+schema) {
		t.Fatalf("backup said:\n%s", out)
	}
	out := pgCmd(t, "restore", "--dsn", dst, "--in", file)
	if !strings.Contains(out, "checked against the manifest") || !strings.Contains(out, "search_path="+schema) {
		t.Fatalf("restore said:\n%s", out)
	}
	u, _ := url.Parse(dst)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	r, err := sqlstore.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := strings1(t, r, `SELECT name FROM regions`); len(got) != 1 || got[0] != "济南市" {
		t.Fatalf("restored regions: %v", got)
	}
}

// TestPGPartitionsCommand runs the maintenance as an operator would: the
// months ahead, then a row waiting in DEFAULT reported and, with --move,
// moved into a partition of its month.
func TestPGPartitionsCommand(t *testing.T) {
	if os.Getenv(sqltest.EnvPG) == "" {
		t.Skip("partitions are PostgreSQL's: set " + sqltest.EnvPG)
	}
	ctx := context.Background()
	dsn := sqltest.DSN(t)
	db, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// The migration made this month and the next; three ahead adds two.
	far := sqlstore.PartitionName("settlements", sqlstore.MonthStart(time.Now()).AddDate(0, 3, 0))
	if out := pgCmd(t, "partitions", "--dsn", dsn, "--months-ahead", "3"); !strings.Contains(out, "created 8 partitions") || !strings.Contains(out, far) {
		t.Fatalf("partitions said:\n%s", out)
	}
	if out := pgCmd(t, "partitions", "--dsn", dsn, "--months-ahead", "3"); !strings.Contains(out, "created 0 partitions") {
		t.Fatalf("second run said:\n%s", out)
	}
	if _, err := db.Exec(ctx, `INSERT INTO outbox (id, topic, subject, payload, created_at) VALUES ('EV-2019', 't', 's', '{}', ?)`,
		time.Date(2019, 5, 1, 0, 0, 0, 0, yibao.ChinaTime).UnixMicro()); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"pg", "partitions", "--dsn", dsn}, &out, &out); err == nil || !strings.Contains(err.Error(), "1 rows of 2019-05 in outbox_default") {
		t.Fatalf("a row waiting in DEFAULT: %v\n%s", err, out.String())
	}
	if out := pgCmd(t, "partitions", "--dsn", dsn, "--move"); !strings.Contains(out, "into 1 new partitions [outbox_p201905]") {
		t.Fatalf("--move said:\n%s", out)
	}
	if got := strings1(t, db, `SELECT tableoid::regclass::text FROM outbox WHERE id = 'EV-2019'`); len(got) != 1 || got[0] != "outbox_p201905" {
		t.Fatalf("moved row in %v", got)
	}
}
