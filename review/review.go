// Package review is smart review (智能审核) as a service: the NHSA rule
// libraries (review/rules, loaded from the shipped data) plus the
// bureau's own rules, checked on every bill before it is calculated, and
// the review queue of alerts raised after settlement (docs/review.md).
package review

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"yibao"
	"yibao/ledger/engine"
	"yibao/review/rules"
	"yibao/sqlstore"
)

// Service checks bills and keeps the review queue.
type Service struct {
	db         *sqlstore.DB
	base       []rules.Rule // the NHSA libraries
	Thresholds Thresholds
	now        func() time.Time
	log        *slog.Logger

	// Ledger moves recovered money (nil: recoveries are recorded only).
	Ledger *engine.Engine

	mu  sync.RWMutex
	lib *rules.Library // base + the bureau's active rules

	kmu   sync.RWMutex
	kinds map[string]string // catalog code → kind
}

// Sources are the rule library files (CSV): drug rules, service-item
// rules and duplicate charges.
type Sources struct {
	Drugs, Items, Duplicates io.Reader
}

// New loads the libraries and the bureau's rules.
func New(ctx context.Context, db *sqlstore.DB, src Sources, log *slog.Logger) (*Service, error) {
	s := &Service{db: db, now: time.Now, log: log, Thresholds: Thresholds{Institutions: 3, JumpFactor: 2, JumpMinBills: 3}}
	for _, f := range []struct {
		name string
		r    io.Reader
		load func(io.Reader) ([]rules.Rule, rules.LoadReport, error)
	}{{"drug rules", src.Drugs, rules.LoadDrugRules}, {"item rules", src.Items, rules.LoadItemRules}, {"duplicate charges", src.Duplicates, rules.LoadDuplicates}} {
		if f.r == nil {
			continue
		}
		rs, _, err := f.load(f.r)
		if err != nil {
			return nil, fmt.Errorf("review: %s: %w", f.name, err)
		}
		s.base = append(s.base, rs...)
	}
	return s, s.reload(ctx)
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// reload rebuilds the library from the base rules and the bureau's
// active ones.
func (s *Service) reload(ctx context.Context) error {
	own, err := s.Rules(yibao.WithPrincipal(ctx, yibao.System("review")))
	if err != nil {
		return err
	}
	all := append([]rules.Rule{}, s.base...)
	for _, r := range own {
		if r.Status != "active" {
			continue
		}
		all = append(all, rules.Rule{ID: r.ID, Kind: rules.Kind(r.Kind), Code: r.Code, Name: r.Name, Value: r.Value, Note: r.Note,
			Action: rules.Action(r.Action), Source: "bureau"})
	}
	actions, err := s.Actions(yibao.WithPrincipal(ctx, yibao.System("review")))
	if err != nil {
		return err
	}
	lib := rules.NewLibrary(all, actions)
	s.mu.Lock()
	s.lib = lib
	s.mu.Unlock()
	return nil
}

// PlatformActions are the actions yibao starts with (docs/review.md):
// the NHSA library's restrictions warn until the bureau has reviewed
// their hits (a region switches a kind to self_pay when it adopts it);
// duplicate charges are refused; the bureau's own diagnosis rules move
// the line to self-pay; a price above the cap only warns, because the
// calculator already leaves the excess to the patient.
func PlatformActions() map[rules.Kind]rules.Action {
	a := map[rules.Kind]rules.Action{}
	for _, k := range rules.Kinds {
		a[k] = rules.ActionWarn
	}
	a[rules.KindDuplicate] = rules.ActionBlock
	a[rules.KindDiagnosis] = rules.ActionSelfPay
	return a
}

// Stats counts the rules in force by kind.
func (s *Service) Stats() map[rules.Kind]int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lib.Stats()
}

// Check runs the rules on a bill; lines the person had at other
// institutions the same day are looked up here.
func (s *Service) Check(ctx context.Context, b rules.Bill, psnNo, fixmedinsCode, date string) ([]rules.Hit, error) {
	rows, err := s.db.Query(ctx, `SELECT l.feedetl_sn, l.catalog_code, l.name, c.kind, l.fee_date FROM fee_lines l
		JOIN visits v ON v.mdtrt_id = l.mdtrt_id JOIN catalog_items c ON c.code = l.catalog_code
		WHERE v.psn_no = ? AND v.fixmedins_code <> ? AND l.fee_date = ? AND l.status = 'active'`, psnNo, fixmedinsCode, date)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var l rules.Line
		if err := rows.Scan(&l.Sn, &l.Code, &l.Name, &l.Kind, &l.Date); err != nil {
			rows.Close()
			return nil, err
		}
		b.Elsewhere = append(b.Elsewhere, l)
	}
	rows.Close()
	// Each line's kind (drug, service, material) from the catalog,
	// cached: a code's kind never changes once it is in the catalog.
	if err := s.fillKinds(ctx, b.Lines); err != nil {
		return nil, err
	}
	s.mu.RLock()
	lib := s.lib
	s.mu.RUnlock()
	return lib.Check(b), nil
}

// Rule is a rule the bureau wrote.
type Rule struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Code      string    `json:"code,omitempty"`
	Name      string    `json:"name,omitempty"`
	Value     string    `json:"value"`
	Action    string    `json:"action"`
	Note      string    `json:"note,omitempty"`
	Status    string    `json:"status"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// Rules lists the bureau's rules (administrators).
func (s *Service) Rules(ctx context.Context) ([]Rule, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT id, kind, code, name, value, action, note, status, created_by, created_at FROM review_rules ORDER BY created_at`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Rule{}
	for rows.Next() {
		var r Rule
		var at int64
		if err := rows.Scan(&r.ID, &r.Kind, &r.Code, &r.Name, &r.Value, &r.Action, &r.Note, &r.Status, &r.CreatedBy, &at); err != nil {
			return nil, err
		}
		r.CreatedAt = time.UnixMicro(at).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// AddRule writes a bureau rule and puts it in force (administrators).
// Today the bureau writes diagnosis restrictions (限定支付范围): Value
// holds the ICD-10 prefixes that allow the drug or item.
func (s *Service) AddRule(ctx context.Context, r Rule) (*Rule, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if r.Kind != string(rules.KindDiagnosis) {
		return nil, yibao.FieldError("kind", "the bureau writes %s rules; the others come from the NHSA libraries", rules.KindDiagnosis)
	}
	if r.Code == "" && r.Name == "" {
		return nil, yibao.FieldError("code", "a catalog code or a generic name")
	}
	if strings.TrimSpace(r.Value) == "" {
		return nil, yibao.FieldError("value", "ICD-10 prefixes, comma-separated (e.g. E10,E11)")
	}
	switch r.Action {
	case "":
		r.Action = string(rules.ActionSelfPay)
	case string(rules.ActionWarn), string(rules.ActionSelfPay), string(rules.ActionBlock):
	default:
		return nil, yibao.FieldError("action", "warn, self_pay or block")
	}
	b := make([]byte, 6)
	rand.Read(b)
	r.ID, r.Status, r.CreatedBy, r.CreatedAt = "RR"+hex.EncodeToString(b), "active", yibao.PrincipalFrom(ctx).ID(), s.now().UTC()
	if _, err := s.db.Exec(ctx, `INSERT INTO review_rules (id, kind, code, name, value, action, note, status, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.Kind, r.Code, r.Name, r.Value, r.Action, r.Note, r.Status, r.CreatedBy, r.CreatedAt.UnixMicro()); err != nil {
		return nil, err
	}
	return &r, s.reload(ctx)
}

// fillKinds sets each line's catalog kind, reading only codes not seen
// before.
func (s *Service) fillKinds(ctx context.Context, lines []rules.Line) error {
	var missing []any
	s.kmu.RLock()
	for _, l := range lines {
		if _, ok := s.kinds[l.Code]; !ok {
			missing = append(missing, l.Code)
		}
	}
	s.kmu.RUnlock()
	if len(missing) > 0 {
		rows, err := s.db.Query(ctx, `SELECT code, kind FROM catalog_items WHERE code IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(missing)), ", ")+`)`, missing...)
		if err != nil {
			return err
		}
		found := map[string]string{}
		for rows.Next() {
			var c, k string
			if err := rows.Scan(&c, &k); err != nil {
				rows.Close()
				return err
			}
			found[c] = k
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		s.kmu.Lock()
		if s.kinds == nil {
			s.kinds = map[string]string{}
		}
		for c, k := range found {
			s.kinds[c] = k
		}
		s.kmu.Unlock()
	}
	s.kmu.RLock()
	defer s.kmu.RUnlock()
	for i := range lines {
		lines[i].Kind = s.kinds[lines[i].Code]
	}
	return nil
}

// Actions are what each kind of finding does now: the platform's
// starting actions with the bureau's changes over them.
func (s *Service) Actions(ctx context.Context) (map[rules.Kind]rules.Action, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	a := PlatformActions()
	rows, err := s.db.Query(ctx, `SELECT kind, action FROM review_actions`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		a[rules.Kind(k)] = rules.Action(v)
	}
	return a, rows.Err()
}

// SetAction changes what a kind of finding does in this region
// (administrators): e.g. age restrictions from warn to self_pay once the
// bureau has reviewed their hits. It is in force for the next bill.
func (s *Service) SetAction(ctx context.Context, kind, action string) error {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return err
	}
	known := false
	for _, k := range rules.Kinds {
		known = known || string(k) == kind
	}
	if !known {
		return yibao.FieldError("kind", "one of the rule kinds (docs/review.md)")
	}
	switch rules.Action(action) {
	case rules.ActionWarn, rules.ActionSelfPay, rules.ActionBlock, rules.ActionOff:
	default:
		return yibao.FieldError("action", "warn, self_pay, block or off")
	}
	who := yibao.PrincipalFrom(ctx).ID()
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM review_actions WHERE kind = ?`, kind); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO review_actions (kind, action, updated_by, updated_at) VALUES (?, ?, ?, ?)`, kind, action, who, s.now().UnixMicro())
		return err
	})
	if err != nil {
		return err
	}
	return s.reload(ctx)
}
