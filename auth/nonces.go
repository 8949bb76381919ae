package auth

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"yibao"
	"yibao/sqlstore"
)

// A nonce is remembered (request_nonces) for two windows after its use
// and then forgotten, by the server clock. If that clock jumps forward (a
// bad NTP step) and back, the nonces forgotten while it was ahead would
// be accepted again once it is back, with their requests' timestamps in
// the window again. So the newest use ever forgotten is itself
// remembered, in one marker row, and a request that may be one of the
// forgotten is refused as a replay. In normal running the marker is two
// windows old and refuses nothing the window does not already refuse.

// The marker row: no key has an empty id (Verify refuses one).
const markerKey, markerNonce = "", "forgotten-until"

// forgottenUntil returns the newest forgotten use (unix µs), 0 if none.
func forgottenUntil(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) *sql.Row
}) (int64, error) {
	var at int64
	err := q.QueryRow(ctx, `SELECT seen_at FROM request_nonces WHERE key_id = ? AND nonce = ?`, markerKey, markerNonce).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return at, err
}

// mayBeForgotten refuses a request whose timestamp (unix s) is within the
// window of a forgotten use.
func (s *Service) mayBeForgotten(ts, until int64) error {
	if until != 0 && !time.Unix(ts, 0).After(time.UnixMicro(until).Add(s.Window)) {
		return yibao.Errorf(yibao.CodeReplay, "the request is older than the server's memory of used nonces (its clock has moved back); retry shortly")
	}
	return nil
}

// forgetOldNonces deletes the nonces older than two windows and moves the
// marker to the newest of them. It runs at most once per minute of
// requests, so the marker row is written rarely.
func (s *Service) forgetOldNonces(ctx context.Context, tx *sqlstore.Tx, now time.Time, until int64) error {
	cutoff := now.Add(-2 * s.Window).UnixMicro()
	if cutoff-until < time.Minute.Microseconds() {
		return nil
	}
	var newest sql.NullInt64
	if err := tx.QueryRow(ctx, `SELECT MAX(seen_at) FROM request_nonces WHERE seen_at < ? AND key_id <> ?`, cutoff, markerKey).Scan(&newest); err != nil {
		return err
	}
	if !newest.Valid {
		return nil
	}
	if _, err := tx.Exec(ctx, `DELETE FROM request_nonces WHERE seen_at <= ? AND key_id <> ?`, newest.Int64, markerKey); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO request_nonces (key_id, nonce, seen_at) VALUES (?, ?, ?)
		ON CONFLICT (key_id, nonce) DO UPDATE SET seen_at = excluded.seen_at WHERE request_nonces.seen_at < excluded.seen_at`, markerKey, markerNonce, newest.Int64)
	return err
}
