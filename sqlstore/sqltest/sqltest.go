// Package sqltest opens fresh, migrated databases for tests: SQLite in a
// temporary directory by default, or a fresh PostgreSQL schema when the
// environment variable YIBAO_TEST_PG holds a DSN. The same test suite thus
// runs against both engines.
package sqltest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"yibao/sqlstore"
)

// EnvPG names the environment variable with the PostgreSQL test DSN.
const EnvPG = "YIBAO_TEST_PG"

// DSN returns a DSN for a fresh database and a cleanup function. With
// YIBAO_TEST_PG set it creates a new schema and points search_path at it; a
// set but unreachable server fails the test loudly.
func DSN(t testing.TB) string {
	t.Helper()
	pg := os.Getenv(EnvPG)
	if pg == "" {
		return filepath.Join(t.TempDir(), "yibao.db")
	}
	ctx := context.Background()
	admin, err := sqlstore.Open(ctx, pg)
	if err != nil {
		t.Fatalf("%s is set but PostgreSQL is unreachable: %v", EnvPG, err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("create test schema: %v", err)
	}
	t.Cleanup(func() {
		admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	})
	u, err := url.Parse(pg)
	if err != nil {
		t.Fatalf("%s: %v", EnvPG, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open returns a fresh migrated database, closed when the test ends.
func Open(t testing.TB) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}
