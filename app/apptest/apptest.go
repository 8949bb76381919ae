// Package apptest opens a whole platform for end-to-end tests: a fresh
// database (SQLite, or a PostgreSQL schema when YIBAO_TEST_PG is set), a
// temporary data folder, the demo dataset seeded, closed when the test
// ends.
package apptest

import (
	"context"
	"io"
	"strings"
	"testing"

	"yibao/app"
	"yibao/demo"
	"yibao/sqlstore/sqltest"
)

// Open returns a seeded platform. tune, if not nil, adjusts the
// configuration first (wallets, log level, demo province, …); the defaults
// are quick password hashing, errors-only logs, no wallet simulators and
// the Shandong demo (37).
func Open(t testing.TB, tune func(*app.Config)) (*app.App, *demo.Dataset) {
	t.Helper()
	cfg := app.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.DB = sqltest.DSN(t)
	cfg.MasterKey = strings.Repeat("ab", 32)
	cfg.PasswordIterations = 1000
	cfg.LogLevel = "error"
	cfg.Wallets = "off"
	cfg.Face = "off" // loading the models takes a while; the face tests switch it on
	if tune != nil {
		tune(&cfg)
	}
	a, err := app.Open(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	d := a.DemoDataset() // demo.Build() unless tune sets DemoProvince
	if _, err := a.Seed(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	return a, d
}

// Regions starts province nodes (default 37, 32, 44) and the national hub
// on loopback, each node seeded and on its own fresh database (SQLite, or
// a PostgreSQL schema), serving until the test ends. A node stopped with
// Regions.StopNode reopens its own database.
func Regions(t testing.TB, provinces ...string) *app.Regions {
	t.Helper()
	if len(provinces) == 0 {
		provinces = []string{"37", "32", "44"}
	}
	ctx := context.Background()
	dsn := map[string]string{}
	r, err := app.OpenRegions(ctx, app.RegionsConfig{DataDir: t.TempDir(), Provinces: provinces, LogOut: io.Discard,
		Tune: func(prov string, c *app.Config) {
			if dsn[prov] == "" {
				dsn[prov] = sqltest.DSN(t)
			}
			c.DB = dsn[prov]
			c.MasterKey = strings.Repeat("cd", 32)
			c.PasswordIterations = 1000
			c.LogLevel = "error"
		}})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	t.Cleanup(func() { cancel(); r.Close() })
	if err := r.Serve(sctx); err != nil {
		t.Fatal(err)
	}
	return r
}
