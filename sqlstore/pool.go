package sqlstore

import (
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgreSQL connection pool. Every setting comes from the DSN's query
// parameters, which pgxpool parses (pool_max_conns, pool_min_conns,
// pool_max_conn_lifetime, pool_max_conn_lifetime_jitter,
// pool_max_conn_idle_time, pool_health_check_period, connect_timeout,
// default_query_exec_mode); a parameter the DSN leaves out gets the
// platform's default below rather than pgx's (which sizes the pool by the
// number of CPUs). docs/operations.md, "PostgreSQL connection pooling".
const (
	// DefaultMaxConns is the pool size. The ledger writer keeps one
	// connection for its lock and writes each batch on another; requests
	// and background loops share the rest.
	DefaultMaxConns = 16
	// MinMaxConns is the smallest pool_max_conns accepted: below it the
	// writer's lock, the writer and a request can starve each other.
	MinMaxConns = 4
	// DefaultMinConns connections are kept open even when idle, so the
	// first requests after a quiet night do not pay for connecting.
	DefaultMinConns = 2
	// DefaultMaxConnLifetime recycles connections (memory a backend keeps,
	// DNS changes after a failover); a sixth of it is added at random
	// (pool_max_conn_lifetime_jitter) so they do not all reconnect at once.
	DefaultMaxConnLifetime = 30 * time.Minute
	// DefaultMaxConnIdleTime closes connections idle that long (down to
	// the minimum).
	DefaultMaxConnIdleTime = 5 * time.Minute
	// DefaultHealthCheckPeriod is how often idle connections are checked
	// and the minimum restored.
	DefaultHealthCheckPeriod = 30 * time.Second
	// DefaultConnectTimeout bounds one connection attempt (a dead host
	// otherwise takes the TCP timeout, minutes).
	DefaultConnectTimeout = 10 * time.Second
)

// PoolConfig parses a PostgreSQL DSN into the pool configuration Open
// uses: the DSN's own settings, the defaults above for the ones it leaves
// out, and plan_cache_mode=force_custom_plan when statements are prepared
// and cached (pgx's default mode).
func PoolConfig(dsn string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: parse PostgreSQL DSN: %w", err)
	}
	// pgxpool removes the pool_* parameters it read, so whether the DSN
	// set one is read from the DSN itself.
	q := url.Values{}
	if u, err := url.Parse(dsn); err == nil {
		q = u.Query()
	}
	if !q.Has("pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	} else if cfg.MaxConns < MinMaxConns {
		return nil, fmt.Errorf("sqlstore: pool_max_conns=%d is below %d: the ledger writer keeps one connection for its lock and writes on another", cfg.MaxConns, MinMaxConns)
	}
	if !q.Has("pool_min_conns") {
		cfg.MinConns = min(DefaultMinConns, cfg.MaxConns)
	} else if cfg.MinConns > cfg.MaxConns {
		return nil, fmt.Errorf("sqlstore: pool_min_conns=%d exceeds pool_max_conns=%d", cfg.MinConns, cfg.MaxConns)
	}
	if !q.Has("pool_max_conn_lifetime") {
		cfg.MaxConnLifetime = DefaultMaxConnLifetime
	}
	if !q.Has("pool_max_conn_lifetime_jitter") {
		cfg.MaxConnLifetimeJitter = cfg.MaxConnLifetime / 6
	}
	if !q.Has("pool_max_conn_idle_time") {
		cfg.MaxConnIdleTime = DefaultMaxConnIdleTime
	}
	if !q.Has("pool_health_check_period") {
		cfg.HealthCheckPeriod = DefaultHealthCheckPeriod
	}
	if !q.Has("connect_timeout") && os.Getenv("PGCONNECT_TIMEOUT") == "" {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	// In the default mode pgx prepares every statement and PostgreSQL then
	// switches to a generic plan after five runs. A generic plan made while
	// a table was still small (a fresh ledger) can be a sequential scan
	// that is kept as the table grows; custom plans cost a little planning
	// and never do that. The other modes (exec, simple_protocol: what a
	// PgBouncer in transaction mode needs) use the unnamed statement, which
	// is planned afresh at every execution anyway; and PgBouncer refuses
	// startup parameters it does not know, such as this one.
	if _, ok := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !ok && cfg.ConnConfig.DefaultQueryExecMode == pgx.QueryExecModeCacheStatement {
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	return cfg, nil
}
