package sqlstore_test

import (
	"context"
	"errors"
	"testing"

	"yibao/sqlstore"
	"yibao/sqlstore/sqltest"
)

func TestRebind(t *testing.T) {
	pg := &sqlstore.DB{Dialect: sqlstore.Postgres}
	lite := &sqlstore.DB{Dialect: sqlstore.SQLite}
	cases := []struct{ in, pg string }{
		{"SELECT 1", "SELECT 1"},
		{"SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = $1 AND b = $2"},
		{"SELECT '?' FROM t WHERE a = ?", "SELECT '?' FROM t WHERE a = $1"},
	}
	for _, c := range cases {
		if got := pg.Rebind(c.in); got != c.pg {
			t.Errorf("postgres Rebind(%q) = %q, want %q", c.in, got, c.pg)
		}
		if got := lite.Rebind(c.in); got != c.in {
			t.Errorf("sqlite Rebind(%q) = %q, want unchanged", c.in, got)
		}
	}
}

func TestMigrateIsIdempotentAndComplete(t *testing.T) {
	db := sqltest.Open(t)
	ctx := context.Background()
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	ms, err := sqlstore.Migrations(db.Dialect)
	if err != nil {
		t.Fatal(err)
	}
	v, err := db.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := ms[len(ms)-1].Version; v != want {
		t.Fatalf("version = %d, want %d", v, want)
	}
	// Both dialects carry the same migration numbers.
	other := sqlstore.SQLite
	if db.Dialect == sqlstore.SQLite {
		other = sqlstore.Postgres
	}
	ms2, err := sqlstore.Migrations(other)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != len(ms2) {
		t.Fatalf("%v has %d migrations, %v has %d", db.Dialect, len(ms), other, len(ms2))
	}
	for i := range ms {
		if ms[i].Name != ms2[i].Name {
			t.Errorf("migration %d: %s vs %s", i, ms[i].Name, ms2[i].Name)
		}
	}
}

func TestConstraintErrors(t *testing.T) {
	db := sqltest.Open(t)
	ctx := context.Background()
	ins := func() error {
		return db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO regions (admdvs, name, created_at) VALUES (?, ?, ?)`, "370100", "济南市", 1)
			return err
		})
	}
	if err := ins(); err != nil {
		t.Fatal(err)
	}
	if err := ins(); !sqlstore.IsUniqueViolation(err) {
		t.Fatalf("duplicate insert: got %v, want unique violation", err)
	}
	err := db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO institutions (fixmedins_code, name, kind, level, admdvs, contract_status, created_at, updated_at)
			VALUES ('H37010000001', 'x', 'hospital', 3, '999999', 'active', 1, 1)`)
		return err
	})
	if !sqlstore.IsForeignKeyViolation(err) {
		t.Fatalf("bad region: got %v, want foreign-key violation", err)
	}
}

func TestWriteTxRollsBackOnError(t *testing.T) {
	db := sqltest.Open(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO regions (admdvs, name, created_at) VALUES ('370100', 'x', 1)`); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM regions`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("rolled-back insert is visible: %d rows", n)
	}
}
