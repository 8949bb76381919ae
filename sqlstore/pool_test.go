package sqlstore_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"yibao/sqlstore"
	"yibao/sqlstore/sqltest"
)

// withParams returns dsn with the query parameters of extra added.
func withParams(t *testing.T, dsn, extra string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	add, err := url.ParseQuery(extra)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range add {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// TestPoolSettings opens PostgreSQL pools and reads back what they were
// built with: the platform's defaults when the DSN says nothing, the DSN's
// values when it does, the exec mode a PgBouncer in transaction mode needs
// (without plan_cache_mode, which it would refuse), and the refusals.
func TestPoolSettings(t *testing.T) {
	dsn := sqltest.DSN(t)
	if !sqlstore.IsPostgresDSN(dsn) {
		t.Skip("PostgreSQL only (set " + sqltest.EnvPG + "): SQLite's pools are fixed, one writer and eight readers")
	}
	ctx := context.Background()
	open := func(dsn string) *sqlstore.DB {
		t.Helper()
		db, err := sqlstore.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	show := func(db *sqlstore.DB, setting string) string {
		t.Helper()
		var v string
		if err := db.QueryRow(ctx, "SHOW "+setting).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	db := open(dsn)
	c := db.Pgx().Config()
	if c.MaxConns != sqlstore.DefaultMaxConns || c.MinConns != sqlstore.DefaultMinConns || c.MaxConnLifetime != 30*time.Minute ||
		c.MaxConnLifetimeJitter != 5*time.Minute || c.MaxConnIdleTime != 5*time.Minute || c.HealthCheckPeriod != 30*time.Second ||
		c.ConnConfig.ConnectTimeout != 10*time.Second || c.ConnConfig.DefaultQueryExecMode != pgx.QueryExecModeCacheStatement {
		t.Fatalf("defaults: max %d min %d lifetime %s jitter %s idle %s health %s connect %s mode %s", c.MaxConns, c.MinConns, c.MaxConnLifetime,
			c.MaxConnLifetimeJitter, c.MaxConnIdleTime, c.HealthCheckPeriod, c.ConnConfig.ConnectTimeout, c.ConnConfig.DefaultQueryExecMode)
	}
	if v := show(db, "plan_cache_mode"); v != "force_custom_plan" {
		t.Fatalf("plan_cache_mode = %s", v)
	}
	// The minimum is kept open in the background.
	deadline := time.Now().Add(5 * time.Second)
	for db.Pgx().Stat().TotalConns() < sqlstore.DefaultMinConns {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want at least %d", db.Pgx().Stat().TotalConns(), sqlstore.DefaultMinConns)
		}
		time.Sleep(20 * time.Millisecond)
	}

	db = open(withParams(t, dsn, "pool_max_conns=5&pool_min_conns=1&pool_max_conn_lifetime=1h&pool_max_conn_idle_time=1m"+
		"&pool_health_check_period=15s&connect_timeout=3&default_query_exec_mode=exec"))
	c = db.Pgx().Config()
	if c.MaxConns != 5 || c.MinConns != 1 || c.MaxConnLifetime != time.Hour || c.MaxConnLifetimeJitter != 10*time.Minute ||
		c.MaxConnIdleTime != time.Minute || c.HealthCheckPeriod != 15*time.Second || c.ConnConfig.ConnectTimeout != 3*time.Second ||
		c.ConnConfig.DefaultQueryExecMode != pgx.QueryExecModeExec {
		t.Fatalf("from the DSN: max %d min %d lifetime %s jitter %s idle %s health %s connect %s mode %s", c.MaxConns, c.MinConns, c.MaxConnLifetime,
			c.MaxConnLifetimeJitter, c.MaxConnIdleTime, c.HealthCheckPeriod, c.ConnConfig.ConnectTimeout, c.ConnConfig.DefaultQueryExecMode)
	}
	if _, ok := c.ConnConfig.RuntimeParams["plan_cache_mode"]; ok {
		t.Fatal("exec mode sends plan_cache_mode, which PgBouncer refuses")
	}
	if v := show(db, "plan_cache_mode"); v != "auto" {
		t.Fatalf("plan_cache_mode in exec mode = %s, want the server's auto", v)
	}
	// Exec mode migrates, writes and reads with parameters.
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO regions (admdvs, name, created_at) VALUES (?, ?, ?)`, "370100", "济南市", time.Now().UnixMicro()); err != nil {
		t.Fatal(err)
	}
	var name string
	if err := db.QueryRow(ctx, `SELECT name FROM regions WHERE admdvs = ?`, "370100").Scan(&name); err != nil || name != "济南市" {
		t.Fatalf("read back %q, %v", name, err)
	}

	for _, bad := range []struct{ params, want string }{
		{"pool_max_conns=3", "pool_max_conns=3 is below 4"},
		{"pool_max_conns=8&pool_min_conns=9", "pool_min_conns=9 exceeds pool_max_conns=8"},
	} {
		if _, err := sqlstore.Open(ctx, withParams(t, dsn, bad.params)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: got %v, want %q", bad.params, err, bad.want)
		}
	}
}
