package wire

import (
	"context"
	"time"

	"yibao/sqlstore"
)

// Outboxes: the hub's hub_deliveries and a node's xr_outbox hold messages
// sent until the other side takes them, with the same columns (attempts,
// next_at, done_at, last_error).

// Backoff is the wait before attempt n+1 of a message: 1, 2, 4 … 60 s.
func Backoff(attempts int) time.Duration {
	return min(time.Duration(1<<min(attempts, 6))*time.Second, time.Minute)
}

// Outcome records one attempt of a message of table (hub_deliveries or
// xr_outbox): taken (sendErr nil), or to be tried again after Backoff.
func Outcome(ctx context.Context, db *sqlstore.DB, table, id string, attempts int, now time.Time, sendErr error) error {
	return db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		if sendErr == nil {
			_, err := tx.Exec(ctx, `UPDATE `+table+` SET done_at = ?, attempts = attempts + 1, last_error = '' WHERE id = ?`, now.UnixMicro(), id)
			return err
		}
		msg := sendErr.Error()
		if len(msg) > 300 {
			msg = msg[:300]
		}
		_, err := tx.Exec(ctx, `UPDATE `+table+` SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE id = ?`,
			now.Add(Backoff(attempts)).UnixMicro(), msg, id)
		return err
	})
}
