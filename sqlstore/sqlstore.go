// Package sqlstore opens the platform's database — embedded SQLite by
// default, PostgreSQL by DSN — applies the embedded migrations of the
// matching dialect, and smooths over the few differences between the two
// (placeholders, constraint errors, the single SQLite writer).
//
// Conventions shared by every table: money is BIGINT fen, instants are
// BIGINT unix microseconds, calendar dates are TEXT 'YYYY-MM-DD', booleans are
// SMALLINT 0/1, identifiers are TEXT.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names the SQL engine behind a DB.
type Dialect int

const (
	// SQLite is the embedded default (modernc.org/sqlite, WAL, one writer).
	SQLite Dialect = iota
	// Postgres is PostgreSQL through pgx.
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// DB is an open database. It is safe for concurrent use.
type DB struct {
	Dialect Dialect
	write   *sql.DB
	read    *sql.DB
	pool    *pgxpool.Pool
	group   *grouper // SQLite: the group committer behind WriteTx and Exec
	wstmts  *stmtCache
	rstmts  *stmtCache
	rebinds sync.Map // query string → rebound string (Postgres)
}

// IsPostgresDSN reports whether dsn selects PostgreSQL.
func IsPostgresDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open opens dsn: "postgres://…" selects PostgreSQL; anything else is a
// SQLite file path (optionally prefixed "sqlite:"), created if missing. It
// does not migrate; call Migrate.
func Open(ctx context.Context, dsn string) (*DB, error) {
	if IsPostgresDSN(dsn) {
		return openPostgres(ctx, dsn)
	}
	return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"))
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("sqlstore: empty SQLite path")
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sqlstore: create data directory: %w", err)
		}
	}
	base := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
		// Each connection caches 16 MiB of pages and reads the file through
		// a memory map: profiles showed page reads (a pread each) at an
		// eighth of a settlement's CPU with SQLite's 2 MB default.
		"&_pragma=cache_size(-16384)&_pragma=mmap_size(1073741824)"
	w, err := sql.Open("sqlite", base+"&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	// One writer: SQLite allows one, and queuing in Go is cheaper than
	// SQLITE_BUSY retries.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	db := &DB{Dialect: SQLite, write: w, read: r, wstmts: &stmtCache{pool: w, deferred: true}, rstmts: &stmtCache{pool: r}}
	db.group = newGrouper(db)
	return db, nil
}

func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := PoolConfig(dsn)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: connect PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("sqlstore: connect PostgreSQL at %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	db := stdlib.OpenDBFromPool(pool)
	return &DB{Dialect: Postgres, write: db, read: db, pool: pool}, nil
}

// Close closes every pool.
func (db *DB) Close() error {
	var err error
	if db.group != nil {
		db.group.close()
	}
	db.wstmts.close()
	db.rstmts.close()
	if db.read != db.write {
		err = db.read.Close()
	}
	if e := db.write.Close(); e != nil {
		err = e
	}
	if db.pool != nil {
		db.pool.Close()
	}
	return err
}

// Write returns the pool for writes. For SQLite it has exactly one
// connection and its transactions begin IMMEDIATE.
func (db *DB) Write() *sql.DB { return db.write }

// Read returns the pool for reads (read-only connections on SQLite).
func (db *DB) Read() *sql.DB { return db.read }

// Pgx returns the native pool for PostgreSQL hot paths (COPY, batches); nil
// for SQLite.
func (db *DB) Pgx() *pgxpool.Pool { return db.pool }

// Rebind rewrites '?' placeholders as '$1, $2, …' for PostgreSQL. Question
// marks inside single-quoted literals are left alone. Results are cached.
func (db *DB) Rebind(query string) string {
	if db.Dialect != Postgres {
		return query
	}
	if v, ok := db.rebinds.Load(query); ok {
		return v.(string)
	}
	var b strings.Builder
	n, inQuote := 0, false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			inQuote = !inQuote
			b.WriteByte(c)
		case c == '?' && !inQuote:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	s := b.String()
	db.rebinds.Store(query, s)
	return s
}

// Exec runs a write statement in a transaction of its own, with '?'
// placeholders. On SQLite it joins the group commit (see WriteTx).
func (db *DB) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if db.group != nil || HasEffect(ctx) {
		return db.execTx(ctx, query, args...)
	}
	return db.write.ExecContext(ctx, db.Rebind(query), args...)
}

// Query runs a read query with '?' placeholders.
func (db *DB) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := db.rstmts.get(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return db.read.QueryContext(ctx, db.Rebind(query), args...)
}

// QueryRow runs a single-row read query with '?' placeholders.
func (db *DB) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := db.rstmts.get(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return db.read.QueryRowContext(ctx, db.Rebind(query), args...)
}

// Tx is a write transaction whose methods take '?' placeholders.
type Tx struct {
	*sql.Tx
	db *DB
	// detached: the transaction is shared by a group commit, so one
	// caller's cancelled context must not interrupt its statements.
	detached bool
}

func (tx *Tx) ctx(ctx context.Context) context.Context {
	if tx.detached {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// Exec runs a statement in the transaction.
func (tx *Tx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = tx.ctx(ctx)
	if st := tx.db.wstmts.get(ctx, query); st != nil {
		ts := tx.Tx.StmtContext(ctx, st)
		defer ts.Close()
		return ts.ExecContext(ctx, args...)
	}
	return tx.Tx.ExecContext(ctx, tx.db.Rebind(query), args...)
}

// Query runs a query in the transaction.
func (tx *Tx) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = tx.ctx(ctx)
	if st := tx.db.wstmts.get(ctx, query); st != nil {
		// The transaction closes the statement when it ends.
		return tx.Tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return tx.Tx.QueryContext(ctx, tx.db.Rebind(query), args...)
}

// QueryRow runs a single-row query in the transaction.
func (tx *Tx) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = tx.ctx(ctx)
	if st := tx.db.wstmts.get(ctx, query); st != nil {
		return tx.Tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.Tx.QueryRowContext(ctx, tx.db.Rebind(query), args...)
}

// Dialect returns the dialect of the transaction's database.
func (tx *Tx) Dialect() Dialect { return tx.db.Dialect }

// WriteTx runs fn in a write transaction and commits if fn returns nil; it
// rolls back on error or panic. fn may run more than once, so it must not
// keep effects outside the transaction: on PostgreSQL a serialization
// failure or deadlock is retried up to three times, and on SQLite calls
// share group commits (group.go) and run again alone if a shared commit
// fails. On SQLite fn must not call WriteTx or Exec itself.
func (db *DB) WriteTx(ctx context.Context, fn func(*Tx) error) error {
	fn = withEffect(ctx, fn)
	if db.group != nil {
		return db.group.submit(ctx, fn)
	}
	for attempt := 0; ; attempt++ {
		err := db.writeTxOnce(ctx, fn)
		if err != nil && attempt < 3 && isRetryable(err) {
			continue
		}
		return err
	}
}

// WriteTxOnce is WriteTx without retries, for callers that keep state
// outside the database and must not run fn twice.
func (db *DB) WriteTxOnce(ctx context.Context, fn func(*Tx) error) error {
	return db.writeTxOnce(ctx, fn)
}

func (db *DB) writeTxOnce(ctx context.Context, fn func(*Tx) error) (err error) {
	db.wstmts.preparePending()
	stx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlstore: begin: %w", err)
	}
	tx := &Tx{Tx: stx, db: db}
	defer func() {
		if p := recover(); p != nil {
			stx.Rollback()
			panic(p)
		}
		if err != nil {
			stx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = stx.Commit(); err != nil {
		return fmt.Errorf("sqlstore: commit: %w", err)
	}
	return nil
}

// IsUniqueViolation reports whether err is a unique or primary-key
// constraint failure on either engine.
func IsUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// IsForeignKeyViolation reports whether err is a foreign-key failure.
func IsForeignKeyViolation(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23503"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	return false
}

func isRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// Strings runs a query of one text column and returns its values.
func (db *DB) Strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
