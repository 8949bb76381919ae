package httpapi

import (
	"bytes"
	"context"
	"database/sql"
	"regexp"
	"time"

	"yibao"
	"yibao/gmcrypto"
	"yibao/sqlstore"
)

// HeaderIdempotencyKey names the header every state-changing call carries.
const HeaderIdempotencyKey = "Idempotency-Key"

var idemKeyRe = regexp.MustCompile(`^[\x21-\x7e]{1,255}$`)

// idemRetention is how long a key is remembered.
const idemRetention = 24 * time.Hour

// idempotent runs a state-changing call at most once per (principal, key).
// The first request reserves the key; a repeat with the same method, URI
// and body gets the stored response with Idempotent-Replayed: true; a
// repeat with anything different, or while the first is still running, is
// refused with idempotency_conflict. A response with a 5xx status releases
// the key, so the caller can retry.
func (s *Server) idempotent(c *call, rt route) error {
	key := c.r.Header.Get(HeaderIdempotencyKey)
	if key == "" {
		return yibao.Errorf(yibao.CodeIdemRequired, "state-changing calls need an %s header (any unique string, e.g. a UUID)", HeaderIdempotencyKey)
	}
	if !idemKeyRe.MatchString(key) {
		return yibao.Errorf(yibao.CodeIdemRequired, "%s must be 1–255 printable ASCII characters", HeaderIdempotencyKey)
	}
	ctx := c.r.Context()
	principal := c.principal.ID()
	h := gmcrypto.SM3(bytes.Join([][]byte{[]byte(c.r.Method), []byte(c.r.URL.RequestURI()), c.body}, []byte{0}))
	now := s.now()
	reserved := false
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		res, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (principal, idem_key, request_hash, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (principal, idem_key) DO NOTHING`, principal, key, h[:], now.UnixMicro())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		reserved = n == 1
		return err
	})
	if err != nil {
		return err
	}
	if !reserved {
		return s.replay(c, principal, key, h[:])
	}
	return s.runOnce(c, rt, principal, key, now)
}

// replay answers a repeated key from the stored response.
func (s *Server) replay(c *call, principal, key string, h []byte) error {
	ctx := c.r.Context()
	var stored []byte
	var status sql.NullInt64
	var ctype sql.NullString
	var resp []byte
	err := s.db.Write().QueryRowContext(ctx, s.db.Rebind(`SELECT request_hash, status_code, content_type, response
		FROM idempotency_keys WHERE principal = ? AND idem_key = ?`), principal, key).Scan(&stored, &status, &ctype, &resp)
	if err == sql.ErrNoRows {
		// The first request failed with 5xx and released the key just now.
		return yibao.Errorf(yibao.CodeIdemConflict, "the first request with this %s failed; retry", HeaderIdempotencyKey)
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(stored, h) {
		return yibao.Errorf(yibao.CodeIdemConflict, "this %s was used for a different request", HeaderIdempotencyKey)
	}
	if !status.Valid {
		return yibao.Errorf(yibao.CodeIdemConflict, "a request with this %s is still being processed; retry shortly", HeaderIdempotencyKey)
	}
	c.w.Header().Set("Content-Type", ctype.String)
	c.w.Header().Set("Idempotent-Replayed", "true")
	c.w.WriteHeader(int(status.Int64))
	c.w.Write(resp)
	return nil
}

// runOnce runs the handler for a freshly reserved key and stores its
// response (or releases the key on a server error).
func (s *Server) runOnce(c *call, rt route, principal, key string, now time.Time) error {
	ctx := c.r.Context()
	herr := rt.h(c)
	rec := c.w.(*recorder)
	st := rec.status
	if herr != nil {
		// Render the error now so that it is stored like any response.
		st = s.writeError(rec, c.r, herr)
		rec.status = st
	}
	bg := context.WithoutCancel(ctx)
	if st >= 500 || st == 0 {
		s.db.WriteTx(bg, func(tx *sqlstore.Tx) error {
			_, err := tx.Exec(bg, `DELETE FROM idempotency_keys WHERE principal = ? AND idem_key = ?`, principal, key)
			return err
		})
		return nil
	}
	if err := s.db.WriteTx(bg, func(tx *sqlstore.Tx) error {
		if _, err := tx.Exec(bg, `DELETE FROM idempotency_keys WHERE created_at < ?`, now.Add(-idemRetention).UnixMicro()); err != nil {
			return err
		}
		_, err := tx.Exec(bg, `UPDATE idempotency_keys SET status_code = ?, content_type = ?, response = ? WHERE principal = ? AND idem_key = ?`,
			st, rec.Header().Get("Content-Type"), rec.buf.Bytes(), principal, key)
		return err
	}); err != nil {
		s.log.ErrorContext(bg, "idempotency record not stored", "request_id", RequestID(ctx), "err", err)
	}
	return nil
}
