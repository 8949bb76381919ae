package settlement

import (
	"context"
	"fmt"
	"sort"

	"yibao"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/sqlstore"
)

// Position is this node's view of one pair of regions for a clearing
// month: own is a region this node keeps, other a region of another node.
type Position struct {
	Own         string `json:"own"`
	Other       string `json:"other"`
	Receivable  int64  `json:"receivable"` // other's insured treated in own (fen)
	Payable     int64  `json:"payable"`    // own's insured treated in other
	Settlements int    `json:"settlements"`
	Reversals   int    `json:"reversals"`
}

// Positions is this node's answer for a month.
type Positions struct {
	Month     string     `json:"clr_month"`
	Positions []Position `json:"positions"`
	// Unreported counts reversals not yet told to the hub (they wait in
	// the outbox): the month cannot clear until they arrive.
	Unreported int `json:"unreported"`
	// LedgerProblems lists positions accounts (xr:…) whose posted balance
	// differs from the sum of the months this node has not cleared.
	LedgerProblems []string `json:"ledger_problems,omitempty"`
}

// PositionsFor sums this node's cross-region settlements of a clearing
// month by pair of regions, and checks its ledger against its records.
func (s *Service) PositionsFor(ctx context.Context, month string) (*Positions, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	out := &Positions{Month: month, Positions: []Position{}}
	by := map[[2]string]*Position{}
	pos := func(own, other string) *Position {
		k := [2]string{own, other}
		if by[k] == nil {
			by[k] = &Position{Own: own, Other: other}
		}
		return by[k]
	}
	// uncleared[other] is what the ledger's xr:other should hold: every
	// month not yet posted as cleared here.
	uncleared := map[string]int64{}
	cleared := map[string]bool{}
	rows, err := s.db.Query(ctx, `SELECT clr_month, counterpart FROM xr_clearings`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var m, c string
		if err := rows.Scan(&m, &c); err != nil {
			rows.Close()
			return nil, err
		}
		cleared[m+"/"+c] = true
	}
	rows.Close()
	add := func(q string, receivable bool) error {
		rows, err := s.db.Query(ctx, q)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var own, other, cm, rm, state string
			var amt int64
			if err := rows.Scan(&own, &other, &amt, &cm, &rm, &state); err != nil {
				return err
			}
			sign := int64(1)
			if !receivable {
				sign = -1
			}
			if cm != "" && !cleared[cm+"/"+other] {
				uncleared[other] += sign * amt
			}
			if state == XRReversed && rm != "" && !cleared[rm+"/"+other] {
				uncleared[other] -= sign * amt
			}
			if state == XRReversed && rm == "" {
				uncleared[other] -= sign * amt // reversed here, not yet reported: already on the ledger
			}
			if cm == month {
				p := pos(own, other)
				p.Settlements++
				if receivable {
					p.Receivable += amt
				} else {
					p.Payable += amt
				}
			}
			if state == XRReversed && rm == month {
				p := pos(own, other)
				p.Reversals++
				if receivable {
					p.Receivable -= amt
				} else {
					p.Payable -= amt
				}
			}
		}
		return rows.Err()
	}
	if err := add(`SELECT treating_admdvs, insu_admdvs, fund_pay + acct_pay, clr_month, rev_month, state FROM xr_treating
		WHERE state IN ('committed', 'reversed')`, true); err != nil {
		return nil, err
	}
	if err := add(`SELECT insu_admdvs, treating_admdvs, fund_pay + acct_pay, clr_month, rev_month, state FROM xr_insured
		WHERE state IN ('committed', 'reversed')`, false); err != nil {
		return nil, err
	}
	for _, p := range by {
		out.Positions = append(out.Positions, *p)
	}
	sort.Slice(out.Positions, func(i, j int) bool {
		a, b := out.Positions[i], out.Positions[j]
		return a.Own < b.Own || a.Own == b.Own && a.Other < b.Other
	})
	if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM xr_outbox WHERE done_at = 0`).Scan(&out.Unreported); err != nil {
		return nil, err
	}
	accts, err := s.db.Strings(ctx, `SELECT id FROM ledger_accounts WHERE kind = ?`, string(ledger.KindInterRegion))
	if err != nil {
		return nil, err
	}
	for _, id := range accts {
		other := id[len("xr:"):]
		if _, ok := uncleared[other]; !ok {
			uncleared[other] = 0
		}
	}
	others := make([]string, 0, len(uncleared))
	for o := range uncleared {
		others = append(others, o)
	}
	sort.Strings(others)
	for _, other := range others {
		var bal money.Fen
		if b, err := s.led.Balance(ctx, ledger.InterRegion(other).ID); err == nil {
			bal = -b.Posted // debit-normal here: posted is credits − debits
		} else if !yibao.IsCode(err, yibao.CodeNotFound) {
			return nil, err
		}
		if int64(bal) != uncleared[other] {
			out.LedgerProblems = append(out.LedgerProblems, fmt.Sprintf("ledger account xr:%s holds %d fen; the uncleared settlements with %s sum to %d",
				other, bal, other, uncleared[other]))
		}
	}
	return out, nil
}

// PostClearing posts a cleared month's nets (nets[other] > 0: the other
// region pays this node) against the hub's clearing account, bringing the
// month's positions to zero. Posting again is a no-op.
func (s *Service) PostClearing(ctx context.Context, month string, nets map[string]int64) error {
	ctx = yibao.WithPrincipal(ctx, yibao.System("cross-region"))
	hub := ledger.ClearingHouse("hub")
	accs := []ledger.Account{hub}
	var ts []ledger.Transfer
	others := make([]string, 0, len(nets))
	for o := range nets {
		if !yibao.ValidAdmdvs(o) {
			return yibao.FieldError("nets", "%q is not a region code", o)
		}
		others = append(others, o)
	}
	sort.Strings(others)
	for _, o := range others {
		n := nets[o]
		xr := ledger.InterRegion(o)
		accs = append(accs, xr)
		t := ledger.Transfer{ID: "clr:" + month + ":" + o, Ledger: ledger.CNY, Code: "clearing", UserData: month}
		switch {
		case n > 0:
			t.DebitAccountID, t.CreditAccountID, t.Amount = hub.ID, xr.ID, money.Fen(n)
		case n < 0:
			t.DebitAccountID, t.CreditAccountID, t.Amount = xr.ID, hub.ID, money.Fen(-n)
		default:
			continue
		}
		ts = append(ts, t)
	}
	unit := engine.Unit{Accounts: accs, Transfers: ts}
	unit.Statements = func(ctx context.Context, tx *sqlstore.Tx) error {
		for _, o := range others {
			if _, err := tx.Exec(ctx, `INSERT INTO xr_clearings (clr_month, counterpart, net, posted_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
				month, o, nets[o], micros(s.now())); err != nil {
				return err
			}
		}
		return nil
	}
	_, err := s.led.Submit(ctx, unit)
	return err
}

// PublishedDocs returns the published policy documents of a region this
// node keeps (a treating node calculates with them).
func (s *Service) PublishedDocs(ctx context.Context, admdvs string) ([][]byte, error) {
	if s.isRemote(admdvs) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "region %s is not insured on this node", admdvs)
	}
	docs, err := s.db.Strings(ctx, `SELECT doc FROM policies WHERE admdvs = ? AND status = 'published' ORDER BY version`, admdvs)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(docs))
	for i, d := range docs {
		out[i] = []byte(d)
	}
	return out, nil
}
