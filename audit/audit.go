// Package audit writes the platform's tamper-evident record: every
// settlement and its state changes, every payment order's final states
// and refunds, every policy version moved, every key or channel change
// becomes a canonical entry, inserted in the same database transaction as
// the change itself (so an entry can be neither lost nor invented), and
// later appended once to the transparency log (audit/tlog) by the
// sequencer. Personal data never enters an entry in clear: persons appear
// as salted SM3-HMAC references.
package audit

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"time"

	"yibao/gmcrypto"
	"yibao/sqlstore"
)

// Entry kinds.
const (
	KindSettlement = "settlement"   // a settlement's creation and every state change
	KindPayment    = "payment"      // a payment order's final states
	KindRefund     = "refund"       // a refund finished at the wallet or counter
	KindPolicy     = "policy"       // a policy version drafted, submitted, approved, rejected
	KindKey        = "key"          // institution keys, channels, webhooks
	KindCredit     = "credit"       // credit agreements, repayments, limits, bank settlement files
	KindFace       = "face"         // face consents, enrolments and deletions (never a template or an image)
	KindFund       = "fund"         // fund runs: contributions, crediting, payouts, corrections (prepared, approved, done)
	KindXR         = "cross_region" // the insured node's side of cross-region care: a person disclosed to another node, funds prepared, committed, aborted, reversed
)

// Entry is one audit record. Its canonical form (Canonical) is what the
// log holds; the ID makes recording idempotent.
type Entry struct {
	V       int            `json:"v"`       // format version, 1
	ID      string         `json:"id"`      // unique per event, e.g. settlement:ST…:completed
	Kind    string         `json:"kind"`    // one of the Kind* constants
	At      string         `json:"at"`      // RFC 3339 UTC with microseconds
	Actor   string         `json:"actor"`   // principal id (kind:subject)
	Subject string         `json:"subject"` // the record's id (setl_id, pay_ord_id, …)
	Data    map[string]any `json:"data"`    // figures; persons only as references
}

// Canonical is the entry's bytes in the log: JSON with a fixed field
// order and map keys sorted (encoding/json sorts them), no HTML escaping.
func (e Entry) Canonical() []byte {
	b, _ := json.Marshal(e)
	return b
}

// Writer records entries. A nil *Writer records nothing (tools and tests
// that do not keep an audit trail).
type Writer struct {
	salt []byte
}

// NewWriter derives the person-reference salt from the platform's master
// secret.
func NewWriter(master []byte) *Writer {
	return &Writer{salt: gmcrypto.DeriveKey(master, "yibao/audit/person-salt", 32)}
}

// Person is the reference an entry uses for a person: HMAC-SM3 of the
// person number under the deployment's salt. The bureau, holding the
// salt, can match it; nobody else learns who was treated.
func (w *Writer) Person(psnNo string) string {
	if w == nil || psnNo == "" {
		return ""
	}
	return "psn:" + hex.EncodeToString(gmcrypto.HMACSM3(w.salt, []byte(psnNo))[:16])
}

// Record inserts the entry inside tx. Recording the same ID again does
// nothing: replays and retries cannot double an entry.
func (w *Writer) Record(ctx context.Context, tx *sqlstore.Tx, e Entry) error {
	if w == nil {
		return nil
	}
	if e.V == 0 {
		e.V = 1
	}
	if e.At == "" {
		e.At = time.Now().UTC().Format("2006-01-02T15:04:05.000000Z")
	}
	_, err := tx.Exec(ctx, `INSERT INTO audit_entries (id, kind, subject, body, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		e.ID, e.Kind, e.Subject, string(e.Canonical()), time.Now().UnixMicro())
	return err
}

// Stamp formats t as an entry time.
func Stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }
