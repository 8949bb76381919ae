package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
)

// HeldLock is a PostgreSQL advisory lock kept for as long as its holder
// lives: a transaction-scoped lock taken in a transaction that stays open
// until Release, or until its connection is lost (a crashed process, a
// killed backend), which ends the transaction and frees the lock.
//
// A session-scoped lock (pg_advisory_lock) would do the same on a direct
// connection, but behind a PgBouncer in transaction mode the session is
// whichever server connection ran that one statement: the lock would stay
// there, in PgBouncer's pool, after the holder is gone — refusing the
// holder's own restart, or granted again to whoever else lands on that
// connection. An open transaction keeps its server connection to itself,
// and so does its lock. The transaction takes no snapshot between
// statements, so it does not hold back vacuum; it turns its own
// idle_in_transaction_session_timeout off.
type HeldLock struct {
	tx *sql.Tx
}

// TryHoldLock takes the advisory lock key, or returns nil if another
// session holds it. It occupies one pool connection until Release.
func (db *DB) TryHoldLock(ctx context.Context, key int64) (*HeldLock, error) {
	if db.Dialect != Postgres {
		return nil, errors.New("sqlstore: advisory locks are PostgreSQL's")
	}
	// The transaction outlives ctx: database/sql rolls a transaction back
	// when the context it began with ends.
	tx, err := db.write.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return nil, err
	}
	var ok bool
	if err := tx.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock(`+strconv.FormatInt(key, 10)+`)`).Scan(&ok); err != nil {
		tx.Rollback()
		return nil, err
	}
	// A statement without parameters goes by the simple protocol, which
	// also closes the query's portal above: left open, the portal would
	// keep its snapshot, and with it vacuum's horizon, for as long as the
	// lock is held.
	if _, err := tx.ExecContext(ctx, `SET LOCAL idle_in_transaction_session_timeout = 0`); err != nil {
		tx.Rollback()
		return nil, err
	}
	if !ok {
		tx.Rollback()
		return nil, nil
	}
	return &HeldLock{tx: tx}, nil
}

// Release frees the lock and its connection.
func (l *HeldLock) Release() {
	if l != nil {
		l.tx.Rollback()
	}
}
