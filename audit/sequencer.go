package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"yibao"
	"yibao/audit/tlog"
	"yibao/gmcrypto"
	"yibao/sqlstore"
)

// Keys are the log's two checkpoint signers and the verifier keys that
// anyone uses to check receipts offline.
type Keys struct {
	Ed25519     note.Signer
	SM2         note.Signer
	VerifierKey []string // note verifier keys: Ed25519 first, then SM2
}

// DeriveKeys makes the log's keys from the platform's master secret, so
// that they survive restarts without another file to keep.
func DeriveKeys(master []byte, name string) (*Keys, error) {
	skey, vkey, err := tlog.Ed25519FromSeed(name, gmcrypto.DeriveKey(master, "yibao/audit/checkpoint-ed25519", 32))
	if err != nil {
		return nil, err
	}
	ed, err := tlog.NewEd25519Signer(skey)
	if err != nil {
		return nil, err
	}
	smKey := gmcrypto.DeterministicKey(gmcrypto.DeriveKey(master, "yibao/audit/checkpoint-sm2", 32))
	sm, err := tlog.NewSM2Signer(name, smKey)
	if err != nil {
		return nil, err
	}
	return &Keys{Ed25519: ed, SM2: sm, VerifierKey: []string{vkey, tlog.SM2VerifierKey(name, smKey.Public())}}, nil
}

// Verifiers returns note verifiers that require a signature by every one
// of the given verifier keys (Ed25519 or SM2).
func Verifiers(vkeys ...string) (note.Verifiers, error) {
	var vs []note.Verifier
	for _, k := range vkeys {
		v, err := tlog.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("verifier key %q: %w", k, err)
		}
		vs = append(vs, v)
	}
	return tlog.RequireAll(vs...), nil
}

// Sequencer appends recorded entries to the log exactly once: entries
// are read in recording order, appended, and their log index written
// back. An append whose index was not written back (a crash in between)
// is found again by Recover from the log itself, never appended twice.
type Sequencer struct {
	db    *sqlstore.DB
	log   *tlog.Log
	slog  *slog.Logger
	batch int

	mu      sync.Mutex
	dirty   bool // an append may have happened without its write-back
	appends int64
}

// NewSequencer returns a sequencer for db's entries into l.
func NewSequencer(db *sqlstore.DB, l *tlog.Log, log *slog.Logger) *Sequencer {
	return &Sequencer{db: db, log: l, slog: log, batch: 512, dirty: true}
}

// Recover records the index of every log leaf whose entry lacks one:
// leaves beyond the highest recorded index are entries appended before a
// crash took the write-back.
func (q *Sequencer) Recover(ctx context.Context) (int, error) {
	size, err := q.log.Size(ctx)
	if err != nil {
		return 0, err
	}
	var top int64 = -1
	if err := q.db.QueryRow(ctx, `SELECT COALESCE(MAX(log_index), -1) FROM audit_entries`).Scan(&top); err != nil {
		return 0, err
	}
	n := 0
	for i := uint64(top + 1); i < size; i++ {
		data, err := q.log.Entry(ctx, i)
		if err != nil {
			return n, fmt.Errorf("reading log leaf %d: %w", i, err)
		}
		var e struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(data, &e); err != nil || e.ID == "" {
			return n, fmt.Errorf("log leaf %d is not an entry", i)
		}
		res, err := q.db.Exec(ctx, `UPDATE audit_entries SET log_index = ?, integrated_at = ? WHERE id = ? AND log_index IS NULL`,
			int64(i), time.Now().UnixMicro(), e.ID)
		if err != nil {
			return n, err
		}
		if k, _ := res.RowsAffected(); k == 1 {
			n++
		}
	}
	return n, nil
}

// Step appends the next batch of unsequenced entries and returns how many.
func (q *Sequencer) Step(ctx context.Context) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dirty {
		if n, err := q.Recover(ctx); err != nil {
			return 0, err
		} else if n > 0 {
			q.slog.Warn("audit entries found in the log without their index; recorded", "count", n)
		}
		q.dirty = false
	}
	rows, err := q.db.Query(ctx, `SELECT id, body FROM audit_entries WHERE log_index IS NULL ORDER BY seq LIMIT ?`, q.batch)
	if err != nil {
		return 0, err
	}
	var ids []string
	var bodies [][]byte
	for rows.Next() {
		var id, body string
		if err := rows.Scan(&id, &body); err != nil {
			rows.Close()
			return 0, err
		}
		ids, bodies = append(ids, id), append(bodies, []byte(body))
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(ids) == 0 {
		return 0, err
	}
	q.dirty = true // from here until the write-back commits
	idx, err := q.log.AddMany(ctx, bodies)
	if err != nil {
		return 0, err
	}
	err = q.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		now := time.Now().UnixMicro()
		for i, id := range ids {
			if _, err := tx.Exec(ctx, `UPDATE audit_entries SET log_index = ?, integrated_at = ? WHERE id = ?`, int64(idx[i]), now, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	q.dirty = false
	q.appends += int64(len(ids))
	return len(ids), nil
}

// Run appends until ctx ends, polling every interval when idle.
func (q *Sequencer) Run(ctx context.Context, interval time.Duration) {
	for {
		n, err := q.Step(ctx)
		if err != nil && ctx.Err() == nil {
			q.slog.Error("audit sequencer", "err", err)
		}
		if n > 0 && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// Record is a stored entry as the audit browser shows it.
type Record struct {
	Seq       int64           `json:"seq"`
	ID        string          `json:"id"`
	Kind      string          `json:"kind"`
	Subject   string          `json:"subject"`
	Entry     json.RawMessage `json:"entry"`
	LogIndex  *int64          `json:"log_index,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}

// Store reads entries and makes receipts. Administrators only, except
// ReceiptFor which callers authorise themselves.
type Store struct {
	DB  *sqlstore.DB
	Log *tlog.Log
}

// Entries lists entries newest first, optionally of one kind or subject,
// before a sequence number (paging).
func (s *Store) Entries(ctx context.Context, kind, subject string, before int64, limit int) ([]Record, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	q, args := `SELECT seq, id, kind, subject, body, log_index, created_at FROM audit_entries WHERE 1 = 1`, []any{}
	if kind != "" {
		q, args = q+` AND kind = ?`, append(args, kind)
	}
	if subject != "" {
		q, args = q+` AND subject = ?`, append(args, subject)
	}
	if before > 0 {
		q, args = q+` AND seq < ?`, append(args, before)
	}
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	rows, err := s.DB.Query(ctx, q+` ORDER BY seq DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Record{}
	for rows.Next() {
		var r Record
		var body string
		var idx *int64
		var at int64
		if err := rows.Scan(&r.Seq, &r.ID, &r.Kind, &r.Subject, &body, &idx, &at); err != nil {
			return nil, err
		}
		r.Entry, r.LogIndex, r.CreatedAt = json.RawMessage(body), idx, time.UnixMicro(at).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// Receipt is an entry with its inclusion proof and the signed checkpoint
// it is proven against: everything `yibao verify` needs, offline.
type Receipt = tlog.Receipt

// ReceiptFor returns the receipt of an entry, once the log has it (a few
// seconds after the change). Errors: not_found, or unavailable while the
// entry waits for the log.
func (s *Store) ReceiptFor(ctx context.Context, id string) (*Receipt, error) {
	var body string
	var idx *int64
	err := s.DB.QueryRow(ctx, `SELECT body, log_index FROM audit_entries WHERE id = ?`, id).Scan(&body, &idx)
	if err != nil {
		return nil, yibao.Errorf(yibao.CodeNotFound, "audit entry %s not found", id)
	}
	if idx == nil {
		return nil, yibao.Errorf(yibao.CodeUnavailable, "audit entry %s is not in the log yet; ask again in a few seconds", id)
	}
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.Log.AwaitIntegrated(wait, uint64(*idx)); err != nil {
		return nil, yibao.Errorf(yibao.CodeUnavailable, "the log has not published a checkpoint covering entry %d yet: %v", *idx, err)
	}
	r, err := s.Log.Receipt(ctx, uint64(*idx), []byte(body))
	if err != nil {
		return nil, yibao.Errorf(yibao.CodeUnavailable, "the log has not published a checkpoint covering entry %d yet: %v", *idx, err)
	}
	return r, nil
}

// LatestFor returns the id of the newest entry about subject.
func (s *Store) LatestFor(ctx context.Context, subject string) (string, error) {
	var id string
	err := s.DB.QueryRow(ctx, `SELECT id FROM audit_entries WHERE subject = ? ORDER BY seq DESC LIMIT 1`, subject).Scan(&id)
	if err != nil {
		return "", yibao.Errorf(yibao.CodeNotFound, "no audit entry about %s", subject)
	}
	return id, nil
}

// CheckReport compares the stored entries with the log.
type CheckReport struct {
	Entries     int      `json:"entries"`     // rows in audit_entries
	Sequenced   int      `json:"sequenced"`   // rows with a log index
	Pending     int      `json:"pending"`     // rows still waiting for the log
	LogSize     uint64   `json:"log_size"`    // leaves in the log
	Mismatches  []string `json:"mismatches"`  // rows whose bytes differ from their leaf, or leaves no row claims
	Unsequenced []string `json:"unsequenced"` // log leaves beyond every recorded index (a crash before write-back)
}

// Check reads every sequenced row and the leaf at its index: a row
// edited after it was logged, a leaf nobody recorded, or a log shorter
// than the rows claim is reported.
func Check(ctx context.Context, db *sqlstore.DB, l *tlog.Log) (*CheckReport, error) {
	size, err := l.Size(ctx)
	if err != nil {
		return nil, err
	}
	return CheckLeaves(ctx, db, size, l.Entry)
}

// CheckLeaves is Check against any reader of a log's first size leaves
// (`yibao log verify` reads them from the tile files of a live log).
func CheckLeaves(ctx context.Context, db *sqlstore.DB, size uint64, leaf func(context.Context, uint64) ([]byte, error)) (*CheckReport, error) {
	rep := &CheckReport{Mismatches: []string{}, Unsequenced: []string{}, LogSize: size}
	rows, err := db.Query(ctx, `SELECT id, body, log_index FROM audit_entries ORDER BY seq`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	claimed := map[uint64]bool{}
	for rows.Next() {
		var id, body string
		var idx *int64
		if err := rows.Scan(&id, &body, &idx); err != nil {
			return nil, err
		}
		rep.Entries++
		if idx == nil {
			rep.Pending++
			continue
		}
		rep.Sequenced++
		i := uint64(*idx)
		claimed[i] = true
		if i >= size {
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf("%s claims leaf %d; the log has %d leaves", id, i, size))
			continue
		}
		leaf, err := leaf(ctx, i)
		if err != nil {
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf("%s: leaf %d unreadable: %v", id, i, err))
			continue
		}
		if string(leaf) != body {
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf("%s: the stored entry differs from leaf %d", id, i))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := uint64(0); i < size; i++ {
		if !claimed[i] {
			rep.Unsequenced = append(rep.Unsequenced, fmt.Sprintf("leaf %d", i))
		}
	}
	return rep, nil
}

// OK reports whether the check found nothing wrong (entries waiting for
// the log are not wrong).
func (r *CheckReport) OK() bool { return len(r.Mismatches) == 0 && len(r.Unsequenced) == 0 }
