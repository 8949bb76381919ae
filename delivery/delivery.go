// Package delivery sends outbox events to institutions' webhooks, at
// least once: an event is retried with exponential backoff until the
// receiver answers 2xx; after the last attempt it is dead and waits in the
// dead-letter view, where an operator can send it again. Receivers
// deduplicate by the event id (X-Yibao-Event-Id), which never changes.
//
// Each delivery is signed: X-Yibao-Signature is the hex HMAC-SM3, under
// the institution's webhook secret, of "<timestamp>\n<event id>\n<body>",
// with the timestamp in X-Yibao-Timestamp.
package delivery

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"yibao"
	"yibao/gmcrypto"
	"yibao/sqlstore"
)

// Headers of a delivery.
const (
	HeaderEventID   = "X-Yibao-Event-Id"
	HeaderTopic     = "X-Yibao-Topic"
	HeaderTimestamp = "X-Yibao-Timestamp"
	HeaderSignature = "X-Yibao-Signature"
)

// Service delivers events and manages webhooks.
type Service struct {
	db   *sqlstore.DB
	keys *gmcrypto.Keyring
	http *http.Client
	now  func() time.Time
	log  *slog.Logger

	MaxAttempts int           // default 8
	BaseDelay   time.Duration // first retry after this (default 2 s), doubling, at most MaxDelay
	MaxDelay    time.Duration // default 10 min
}

// New builds the service.
func New(db *sqlstore.DB, keys *gmcrypto.Keyring, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{db: db, keys: keys, http: &http.Client{Timeout: 10 * time.Second}, now: time.Now, log: log,
		MaxAttempts: 8, BaseDelay: 2 * time.Second, MaxDelay: 10 * time.Minute}
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Sign is what a receiver recomputes to check a delivery.
func Sign(secret []byte, timestamp, eventID string, body []byte) string {
	msg := append([]byte(timestamp+"\n"+eventID+"\n"), body...)
	return hex.EncodeToString(gmcrypto.HMACSM3(secret, msg))
}

// Webhook is an institution's endpoint.
type Webhook struct {
	FixmedinsCode string    `json:"fixmedins_code"`
	URL           string    `json:"url"`
	Secret        string    `json:"secret,omitempty"` // hex; only when set
	Status        string    `json:"status"`
	CreatedAt     time.Time `json:"created_at"`
}

// SetWebhook sets (or replaces) an institution's webhook and returns a
// new secret, shown once. Institution staff for their own, or the bureau.
func (s *Service) SetWebhook(ctx context.Context, code, rawURL string) (*Webhook, error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if !p.ActsFor(code) {
		return nil, yibao.Errorf(yibao.CodeForbidden, "you may set only your own institution's webhook")
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(rawURL) > 500 {
		return nil, yibao.FieldError("url", "want an http(s) URL of at most 500 characters")
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	sealed, err := s.keys.Seal(secret, []byte("webhook/"+code))
	if err != nil {
		return nil, err
	}
	now := s.now()
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM webhooks WHERE fixmedins_code = ?`, code); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO webhooks (fixmedins_code, url, secret_cipher, status, created_at) VALUES (?, ?, ?, 'active', ?)`,
			code, rawURL, sealed, now.UnixMicro())
		return err
	})
	if sqlstore.IsForeignKeyViolation(err) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "institution %s not found", code)
	}
	if err != nil {
		return nil, err
	}
	return &Webhook{FixmedinsCode: code, URL: rawURL, Secret: hex.EncodeToString(secret), Status: "active", CreatedAt: now.UTC()}, nil
}

// Event is an outbox row as the dead-letter view shows it.
type Event struct {
	ID            string    `json:"id"`
	Topic         string    `json:"topic"`
	Subject       string    `json:"subject"`
	FixmedinsCode string    `json:"fixmedins_code"`
	Status        string    `json:"status"`
	Attempts      int       `json:"attempts"`
	LastError     string    `json:"last_error,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	NextAttemptAt time.Time `json:"next_attempt_at"`
}

// Events lists events by status (pending, delivered, dead, skipped),
// newest first: administrators see all, institutions their own.
func (s *Service) Events(ctx context.Context, status string, limit int) ([]Event, error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	switch status {
	case "pending", "delivered", "dead", "skipped":
	default:
		return nil, yibao.FieldError("status", "want pending, delivered, dead or skipped")
	}
	q, args := `SELECT id, topic, subject, fixmedins_code, status, attempts, last_error, created_at, next_attempt_at FROM outbox WHERE status = ?`, []any{status}
	if !p.IsAdmin() {
		q += ` AND fixmedins_code = ?`
		args = append(args, p.Institution)
	}
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	rows, err := s.db.Query(ctx, q+` ORDER BY created_at DESC LIMIT `+strconv.Itoa(limit), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Event{}
	for rows.Next() {
		var e Event
		var c, n int64
		if err := rows.Scan(&e.ID, &e.Topic, &e.Subject, &e.FixmedinsCode, &e.Status, &e.Attempts, &e.LastError, &c, &n); err != nil {
			return nil, err
		}
		e.CreatedAt, e.NextAttemptAt = time.UnixMicro(c).UTC(), time.UnixMicro(n).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// Retry puts a dead (or skipped) event back in the queue, due now.
func (s *Service) Retry(ctx context.Context, id string) error {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return err
	}
	q, args := `UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ? WHERE id = ? AND status IN ('dead', 'skipped')`,
		[]any{s.now().UnixMicro(), id}
	if !p.IsAdmin() {
		q += ` AND fixmedins_code = ?`
		args = append(args, p.Institution)
	}
	res, err := s.db.Exec(ctx, q, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return yibao.Errorf(yibao.CodeNotFound, "no dead or skipped event %s", id)
	}
	return nil
}

// DeliverDue sends every due event once and returns how many were
// delivered. Events of institutions without a webhook are skipped (kept,
// visible, retriable once a webhook exists).
func (s *Service) DeliverDue(ctx context.Context) (int, error) {
	now := s.now()
	rows, err := s.db.Query(ctx, `SELECT o.id, o.topic, o.payload, o.fixmedins_code, o.attempts, COALESCE(w.url, ''), w.secret_cipher
		FROM outbox o LEFT JOIN webhooks w ON w.fixmedins_code = o.fixmedins_code AND w.status = 'active'
		WHERE o.status = 'pending' AND o.next_attempt_at <= ? ORDER BY o.next_attempt_at LIMIT 200`, now.UnixMicro())
	if err != nil {
		return 0, err
	}
	type due struct {
		id, topic, payload, code, url string
		attempts                      int
		secretC                       []byte
	}
	var list []due
	for rows.Next() {
		var d due
		if err := rows.Scan(&d.id, &d.topic, &d.payload, &d.code, &d.attempts, &d.url, &d.secretC); err != nil {
			rows.Close()
			return 0, err
		}
		list = append(list, d)
	}
	rows.Close()
	delivered := 0
	for _, d := range list {
		if d.url == "" {
			s.db.Exec(ctx, `UPDATE outbox SET status = 'skipped', last_error = 'no webhook' WHERE id = ? AND status = 'pending'`, d.id)
			continue
		}
		secret, err := s.keys.Open(d.secretC, []byte("webhook/"+d.code))
		if err != nil {
			return delivered, err
		}
		err = s.post(ctx, d.url, d.id, d.topic, []byte(d.payload), secret)
		if err == nil {
			s.db.Exec(ctx, `UPDATE outbox SET status = 'delivered', published_at = ?, attempts = attempts + 1, last_error = '' WHERE id = ?`,
				s.now().UnixMicro(), d.id)
			delivered++
			continue
		}
		attempts := d.attempts + 1
		status, next := "pending", now.Add(s.backoff(attempts))
		if attempts >= s.MaxAttempts {
			status = "dead"
		}
		msg := err.Error()
		if len(msg) > 300 {
			msg = msg[:300]
		}
		s.db.Exec(ctx, `UPDATE outbox SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?`,
			status, attempts, next.UnixMicro(), msg, d.id)
		s.log.WarnContext(ctx, "webhook delivery failed", "event", d.id, "attempt", attempts, "status", status, "err", msg)
	}
	return delivered, nil
}

// backoff is BaseDelay × 2^(attempt−1), at most MaxDelay, with ±20% jitter.
func (s *Service) backoff(attempt int) time.Duration {
	d := s.BaseDelay << min(attempt-1, 20)
	if d > s.MaxDelay || d <= 0 {
		d = s.MaxDelay
	}
	var b [1]byte
	rand.Read(b[:])
	return d - d/5 + time.Duration(int64(d)*2/5*int64(b[0])/255)
}

func (s *Service) post(ctx context.Context, url, id, topic string, body, secret []byte) error {
	ts := strconv.FormatInt(s.now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderEventID, id)
	req.Header.Set(HeaderTopic, topic)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(secret, ts, id, body))
	res, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("HTTP %d", res.StatusCode)
	}
	return nil
}

// Run delivers due events every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	yibao.Every(ctx, interval, func(ctx context.Context) {
		if _, err := s.DeliverDue(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("webhook delivery", "err", err)
		}
	})
}
