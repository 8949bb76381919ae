package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"yibao/sqlstore"
	"yibao/sqlstore/sqltest"
)

// TestHeldLock: one holder at a time, free again after Release; the
// holding transaction outlives a server-side idle-in-transaction timeout
// and keeps no snapshot (vacuum's horizon).
func TestHeldLock(t *testing.T) {
	dsn := sqltest.DSN(t)
	if !sqlstore.IsPostgresDSN(dsn) {
		t.Skip("PostgreSQL only (set " + sqltest.EnvPG + ")")
	}
	ctx := context.Background()
	// Every connection of this pool times out after 300 ms idle in a
	// transaction, as a server might be configured.
	db, err := sqlstore.Open(ctx, withParams(t, dsn, "idle_in_transaction_session_timeout=300"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.TryHoldLock(ctx, 4242)
	if err != nil || l == nil {
		t.Fatalf("first: %v %v", l, err)
	}
	defer func() { l.Release() }()
	time.Sleep(time.Second)
	if again, err := db.TryHoldLock(ctx, 4242); err != nil || again != nil {
		t.Fatalf("second while held: %v %v", again, err)
	}
	var held, withXmin int
	if err := db.QueryRow(ctx, `SELECT COUNT(*), COUNT(a.backend_xmin) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.objid = 4242 AND l.granted`).Scan(&held, &withXmin); err != nil {
		t.Fatal(err)
	}
	if held != 1 || withXmin != 0 {
		t.Fatalf("%d holders, %d of them holding a snapshot", held, withXmin)
	}
	l.Release()
	l = nil
	l2, err := db.TryHoldLock(ctx, 4242)
	if err != nil || l2 == nil {
		t.Fatalf("after release: %v %v", l2, err)
	}
	l2.Release()
}
