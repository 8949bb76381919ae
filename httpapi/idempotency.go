package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
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
//
// A reservation left by a process that stopped before answering is
// released if the call provably changed nothing (no effect mark committed,
// sqlstore/effect.go), so the retry runs it; if it did change something,
// the retry gets idempotency_outcome_lost and must read the result.
func (s *Server) idempotent(c *call, rt route) error {
	for attempt := 0; ; attempt++ {
		err := s.idempotentOnce(c, rt)
		if errors.Is(err, errOrphanReleased) && attempt == 0 {
			continue
		}
		return err
	}
}

// errOrphanReleased: a stopped process's reservation was released; reserve again.
var errOrphanReleased = errors.New("orphaned idempotency reservation released")

func newEpoch() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) idempotentOnce(c *call, rt route) error {
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
	nonce := c.nonce
	k := principal + "\x00" + key
	s.run(k, 1) // before the reservation commits: a repeat never sees it unowned
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		if nonce != nil {
			if err := nonce.Record(tx); err != nil {
				return err
			}
		}
		res, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (principal, idem_key, request_hash, created_at, epoch) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (principal, idem_key) DO NOTHING`, principal, key, h[:], now.UnixMicro(), s.epoch)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		reserved = n == 1
		return err
	})
	c.nonce = nil // recorded with the reservation, or refused with it
	if err != nil || !reserved {
		s.run(k, -1)
	}
	if err != nil {
		return err
	}
	if !reserved {
		return s.replay(c, principal, key, h[:], false)
	}
	return s.runOnce(c, rt, principal, key, now)
}

// Epoch names this process in its idempotency reservations.
func (s *Server) Epoch() string { return s.epoch }

// run counts a request of this process in (+1) or out (-1) of key k.
func (s *Server) run(k string, d int) {
	s.runningMu.Lock()
	defer s.runningMu.Unlock()
	if s.running == nil {
		s.running = map[string]int{}
	}
	if s.running[k] += d; s.running[k] <= 0 {
		delete(s.running, k)
	}
}

// runs reports whether a request of this process holds key k.
func (s *Server) runs(k string) bool {
	s.runningMu.Lock()
	defer s.runningMu.Unlock()
	return s.running[k] > 0
}

// replay answers a repeated key from the stored response; waited: it
// already waited once for this process to store the answer.
func (s *Server) replay(c *call, principal, key string, h []byte, waited bool) error {
	ctx := c.r.Context()
	// Whether a request of this process holds the key, asked before the
	// row is read: its answer is stored before it lets go, so a row read
	// after it let go shows the answer, unless the store failed.
	held := s.runs(principal + "\x00" + key)
	var stored []byte
	var status sql.NullInt64
	var ctype sql.NullString
	var resp []byte
	var epoch string
	var effects int64
	err := s.db.Write().QueryRowContext(ctx, s.db.Rebind(`SELECT request_hash, status_code, content_type, response, epoch, effects
		FROM idempotency_keys WHERE principal = ? AND idem_key = ?`), principal, key).Scan(&stored, &status, &ctype, &resp, &epoch, &effects)
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
	if status.Valid && status.Int64 >= 500 && effects > 0 {
		// The call failed after committing part of its work: replaying
		// its 5xx would tell the client to retry forever.
		return yibao.Errorf(yibao.CodeIdemLost, "the request with this %s failed after committing part of its changes; read the result (e.g. GET the visit or payment) instead of retrying", HeaderIdempotencyKey)
	}
	if !status.Valid && (epoch != s.epoch || !held) {
		// Reserved by a process that has stopped (one ledger writer runs
		// per database, so no other live process holds reservations), or
		// by this one when storing its answer failed.
		if effects > 0 {
			return yibao.Errorf(yibao.CodeIdemLost, "the platform restarted after the request with this %s had committed changes but before it answered; read the result (e.g. GET the visit or payment) instead of retrying", HeaderIdempotencyKey)
		}
		var released bool
		err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
			res, err := tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE principal = ? AND idem_key = ? AND epoch = ? AND effects = 0 AND status_code IS NULL`,
				principal, key, epoch)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			released = n == 1
			return err
		})
		if err != nil {
			return err
		}
		if released {
			return errOrphanReleased
		}
		return yibao.Errorf(yibao.CodeIdemConflict, "a request with this %s is being retried concurrently; retry shortly", HeaderIdempotencyKey)
	}
	if !status.Valid {
		if !waited {
			// Answered a moment ago, its answer being stored (or stored
			// since the row was read): wait for it and read again, rather
			// than tell a sequential client "in flight".
			if ch, ok := s.storing.Load(principal + "\x00" + key); ok {
				select {
				case <-ch.(chan struct{}):
				case <-ctx.Done():
					return yibao.Errorf(yibao.CodeIdemConflict, "a request with this %s is still being processed; retry shortly", HeaderIdempotencyKey)
				}
			}
			return s.replay(c, principal, key, h, true)
		}
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
	// The reserved call runs to its end even if the client hangs up: a
	// handler cut short after its commit would answer 5xx, release the key
	// and let the retry run the call again instead of replaying its answer.
	c.r = c.r.WithContext(sqlstore.WithEffect(context.WithoutCancel(ctx), func(ctx context.Context, tx *sqlstore.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE idempotency_keys SET effects = effects + 1 WHERE principal = ? AND idem_key = ?`, principal, key)
		return err
	}))
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
		// Released only if the call changed nothing; a call that committed
		// part of its work keeps its (error) answer, so a retry replays it
		// instead of running the rest twice.
		released := false
		s.db.WriteTx(bg, func(tx *sqlstore.Tx) error {
			res, err := tx.Exec(bg, `DELETE FROM idempotency_keys WHERE principal = ? AND idem_key = ? AND effects = 0`, principal, key)
			if err == nil {
				n, _ := res.RowsAffected()
				released = n == 1
			}
			return err
		})
		if released {
			s.run(principal+"\x00"+key, -1)
			return nil
		}
		if st == 0 {
			st = s.writeError(rec, c.r, yibao.Errorf(yibao.CodeInternal, "the call ended without an answer after committing changes"))
		}
	}
	// The answer is stored after it is sent, not before: the call's
	// changes are already durable, and until the answer is stored a
	// repeat gets "in flight" (or, after a crash, outcome_lost). Waiting
	// for this commit before answering cost a third of a call's time.
	ctype, resp := rec.Header().Get("Content-Type"), bytes.Clone(rec.buf.Bytes())
	stored := make(chan struct{})
	s.storing.Store(principal+"\x00"+key, stored)
	s.pending.Add(1)
	go func() {
		defer s.pending.Done()
		defer func() {
			s.storing.Delete(principal + "\x00" + key)
			s.run(principal+"\x00"+key, -1)
			close(stored)
		}()
		if err := s.db.WriteTx(bg, func(tx *sqlstore.Tx) error {
			if _, err := tx.Exec(bg, `DELETE FROM idempotency_keys WHERE created_at < ?`, now.Add(-idemRetention).UnixMicro()); err != nil {
				return err
			}
			_, err := tx.Exec(bg, `UPDATE idempotency_keys SET status_code = ?, content_type = ?, response = ? WHERE principal = ? AND idem_key = ?`,
				st, ctype, resp, principal, key)
			return err
		}); err != nil {
			s.log.ErrorContext(bg, "idempotency record not stored", "request_id", RequestID(ctx), "err", err)
		}
	}()
	return nil
}

// Close waits for the answers still being stored (call before closing the
// database).
func (s *Server) Close() { s.pending.Wait() }
