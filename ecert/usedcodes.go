package ecert

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"yibao/ecert/code"
	"yibao/gmcrypto"
	"yibao/sqlstore"
)

// A used code is remembered (ecert_used_codes) for usedCodeMemory after
// its use — longer than any code lives — and then forgotten, by the
// platform clock. If that clock jumps forward (a bad NTP step) and back,
// the uses forgotten while it was ahead would become acceptable again
// once it is back. So the newest use ever forgotten is itself remembered,
// in one marker row, and a code that may be one of the forgotten is
// refused: after such a jump the platform refuses old codes (for at most
// two steps after the newest forgotten use) rather than accept one twice.
// In normal running the marker is ten minutes old and refuses nothing the
// time window does not already refuse.

const usedCodeMemory = 10 * time.Minute

// forgottenMark is the code_id of the marker row; its used_at is the
// newest use forgotten so far. No code's SM3 is this value.
var forgottenMark = gmcrypto.SM3([]byte("yibao/ecert/used-codes/forgotten-until"))

// forgottenUntil returns the marker: the newest forgotten use (unix µs),
// 0 if nothing was ever forgotten.
func forgottenUntil(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) *sql.Row
}) (int64, error) {
	var at int64
	err := q.QueryRow(ctx, `SELECT used_at FROM ecert_used_codes WHERE code_id = ?`, forgottenMark[:]).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return at, err
}

// mayBeForgotten refuses a code that could have been used before the
// marker: a code is used within skew steps of its own step, so any code
// of a step up to the marker's step + skew may have been forgotten.
func (s *Service) mayBeForgotten(c *code.Code, until int64) error {
	if until == 0 || c.StepSeconds == 0 {
		return nil
	}
	skew := int64(max(s.verify.Skew, 1))
	if int64(c.Step) <= until/1e6/int64(c.StepSeconds)+skew {
		return &code.Error{Reason: code.Expired, Detail: fmt.Sprintf("the code is older than the platform's memory of used codes (%s; its clock has moved back); show a fresh one",
			time.UnixMicro(until).UTC().Format(time.RFC3339))}
	}
	return nil
}

// forgetOldCodes deletes the uses older than usedCodeMemory and moves
// the marker to the newest of them. It runs at most once per minute of
// uses, so the marker row is written rarely.
func forgetOldCodes(ctx context.Context, tx *sqlstore.Tx, now time.Time, until int64) error {
	cutoff := now.Add(-usedCodeMemory).UnixMicro()
	if cutoff-until < time.Minute.Microseconds() {
		return nil
	}
	var newest sql.NullInt64
	if err := tx.QueryRow(ctx, `SELECT MAX(used_at) FROM ecert_used_codes WHERE used_at < ? AND code_id <> ?`, cutoff, forgottenMark[:]).Scan(&newest); err != nil {
		return err
	}
	if !newest.Valid {
		return nil
	}
	if _, err := tx.Exec(ctx, `DELETE FROM ecert_used_codes WHERE used_at <= ? AND code_id <> ?`, newest.Int64, forgottenMark[:]); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO ecert_used_codes (code_id, cert_id, fixmedins_code, binding_id, proxy_psn_no, used_at) VALUES (?, '', '', '', '', ?)
		ON CONFLICT (code_id) DO UPDATE SET used_at = excluded.used_at WHERE ecert_used_codes.used_at < excluded.used_at`, forgottenMark[:], newest.Int64)
	return err
}
