// Package chaos runs the reliability tests that need a whole platform in
// a process of its own: the crash test R1 (kill -9 of the server under
// load, restart, and check that nothing acknowledged was lost and nothing
// happened by halves) and the checkers every such run ends with. The
// load comes from loadgen over HTTP; the checkers read the store
// directly once the server is stopped.
package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	"yibao/ledger/engine"
	"yibao/loadgen"
	"yibao/money"
	"yibao/policy"
	"yibao/sqlstore"
)

// Report holds the figures of a run (reliability reference §8.1).
type Report struct {
	Kills    int
	Recovery []time.Duration // restart → first successful settlement, per kill
	Elapsed  time.Duration

	Transactions int // transactions started
	TxOk         int
	TxFail       int
	TxInfo       int
	Ops          int // calls recorded in the history
	OpsOk        int
	OpsFail      int
	OpsInfo      int

	AckedOk  int // transactions whose pay was acknowledged
	FoundOk  int // … whose settlement is in the store with every leg
	Lost     int // AckedOk − FoundOk: must be 0
	LostIDs  []string
	Unlogged int // found settlements without their audit entry: must be 0
	Voided   int // acknowledged settlements later voided (a credit draw the bank refused)

	Phantom      int // settlements of transactions whose pay definitely failed, or that nobody asked for: must be 0
	InfoPresent  int // unknown pay outcomes resolved as done …
	InfoAbsent   int // … and as not done
	Partial      int // a settlement without all its legs, or legs without their settlement: must be 0
	Duplicate    int // visits with more than one live settlement: must be 0
	TrialBalance int64
	// NegativeBalance counts accounts that break their balance flag (a
	// fund or personal account overdrawn, holds counted).
	NegativeBalance       int
	LedgerViolations      []string
	AccumulatorMismatches int
	AccumulatorRows       int
	Settlements           int // settlements in the store (all, seed included)
	// NotOk counts the transactions not ok by step, outcome and code.
	NotOk    map[string]int
	Problems []string
}

// OK reports whether every checker passed.
func (r *Report) OK() bool {
	return r.Lost == 0 && r.Unlogged == 0 && r.Phantom == 0 && r.Partial == 0 && r.Duplicate == 0 && r.TrialBalance == 0 &&
		r.NegativeBalance == 0 && len(r.LedgerViolations) == 0 && r.AccumulatorMismatches == 0
}

type setl struct {
	id, mdtrt, status string
	created           int64
	legs              []string
	acc               *policy.AccumulatorChange
	psn, insutype     string
}

// Check is the final read and the checkers: it resolves every
// transaction's outcome against the store (settlements by visit, legs by
// transfer id, audit entries by subject) and checks the ledger and the
// accumulators. since (unix µs) is when the load began: settlements
// created from then on must each belong to a transaction of txs.
func Check(ctx context.Context, db *sqlstore.DB, txs []loadgen.Tx, since int64) (*Report, error) {
	r := &Report{NotOk: map[string]int{}}
	byID := map[string]*setl{}
	byVisit := map[string][]*setl{}
	rows, err := db.Query(ctx, `SELECT setl_id, mdtrt_id, status, created_at, legs, result, psn_no, insutype FROM settlements`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		s := &setl{}
		var legs, result string
		if err := rows.Scan(&s.id, &s.mdtrt, &s.status, &s.created, &legs, &result, &s.psn, &s.insutype); err != nil {
			rows.Close()
			return nil, err
		}
		var ls []struct {
			Leg string `json:"leg"`
		}
		if err := json.Unmarshal([]byte(legs), &ls); err != nil {
			rows.Close()
			return nil, fmt.Errorf("settlement %s legs: %w", s.id, err)
		}
		for _, l := range ls {
			s.legs = append(s.legs, l.Leg)
		}
		var res struct {
			Accumulators policy.AccumulatorChange `json:"accumulators"`
		}
		if err := json.Unmarshal([]byte(result), &res); err != nil {
			rows.Close()
			return nil, fmt.Errorf("settlement %s result: %w", s.id, err)
		}
		s.acc = &res.Accumulators
		byID[s.id] = s
		byVisit[s.mdtrt] = append(byVisit[s.mdtrt], s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	r.Settlements = len(byID)

	logged := map[string]bool{}
	subjects, err := db.Strings(ctx, `SELECT DISTINCT subject FROM audit_entries WHERE kind = 'settlement'`)
	if err != nil {
		return nil, err
	}
	for _, s := range subjects {
		logged[s] = true
	}
	transfers := map[string]bool{}
	legOwners := map[string]bool{}
	rows, err = db.Query(ctx, `SELECT id, user_data FROM ledger_transfers WHERE code = 'settlement'`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id, ud string
		if err := rows.Scan(&id, &ud); err != nil {
			rows.Close()
			return nil, err
		}
		transfers[id] = true
		legOwners[ud] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	whole := func(s *setl) bool {
		for _, l := range s.legs {
			if !transfers[s.id+":"+l] {
				return false
			}
		}
		return true
	}
	for _, s := range byID {
		if !whole(s) {
			r.Partial++
			r.problem("settlement %s lacks a leg", s.id)
		}
	}
	for ud := range legOwners {
		if byID[ud] == nil {
			r.Partial++
			r.problem("ledger legs of %s, which is not a settlement", ud)
		}
	}
	live := func(v string) []*setl {
		var out []*setl
		for _, s := range byVisit[v] {
			if s.status != "voided" {
				out = append(out, s)
			}
		}
		return out
	}

	// The final read: each transaction against the store.
	asked := map[string]bool{}
	for _, tx := range txs {
		r.Transactions++
		switch tx.Outcome {
		case loadgen.Ok:
			r.TxOk++
		case loadgen.Fail:
			r.TxFail++
		default:
			r.TxInfo++
		}
		if tx.Outcome != loadgen.Ok {
			r.NotOk[tx.FailStep.String()+" "+tx.Outcome.String()+" "+tx.Code]++
		}
		if tx.MdtrtID == "" {
			continue
		}
		asked[tx.MdtrtID] = true
		if n := len(live(tx.MdtrtID)); n > 1 {
			r.Duplicate++
			r.problem("visit %s has %d live settlements", tx.MdtrtID, n)
		}
		if tx.Outcome == loadgen.Ok {
			r.AckedOk++
			s := byID[tx.SetlID]
			if s == nil || s.mdtrt != tx.MdtrtID || !whole(s) {
				r.Lost++
				r.LostIDs = append(r.LostIDs, tx.SetlID)
				continue
			}
			r.FoundOk++
			if !logged[s.id] {
				r.Unlogged++
				r.problem("settlement %s has no audit entry", s.id)
			}
			if s.status == "voided" || s.status == "reversed" {
				r.Voided++
			}
			continue
		}
		present := len(byVisit[tx.MdtrtID]) > 0
		switch {
		case tx.PayInfo && present:
			r.InfoPresent++
		case tx.PayInfo:
			r.InfoAbsent++
		case present:
			// Every pay call definitely failed (or none was made), yet
			// the visit was settled.
			r.Phantom++
			r.problem("visit %s was settled though its transaction failed at %s (%s)", tx.MdtrtID, tx.FailStep, tx.Code)
		}
	}
	for _, s := range byID {
		if s.created >= since && !asked[s.mdtrt] {
			r.Phantom++
			r.problem("settlement %s of visit %s that no transaction paid", s.id, s.mdtrt)
		}
	}

	// The ledger: Σ over every account is zero, and the engine's own
	// invariants (flags, balances equal their transfers, pendings).
	var dp, dpo, cp, cpo int64
	if err := db.QueryRow(ctx, `SELECT COALESCE(SUM(debits_pending), 0), COALESCE(SUM(debits_posted), 0), COALESCE(SUM(credits_pending), 0),
		COALESCE(SUM(credits_posted), 0) FROM ledger_accounts`).Scan(&dp, &dpo, &cp, &cpo); err != nil {
		return nil, err
	}
	r.TrialBalance = abs(cpo-dpo) + abs(cp-dp)
	rep, err := engine.Check(ctx, db, time.Now().UnixMicro())
	if err != nil {
		return nil, err
	}
	for _, v := range rep.Violations {
		if strings.Contains(v, "breaks ") {
			r.NegativeBalance++
		}
		r.LedgerViolations = append(r.LedgerViolations, v)
	}

	// Accumulators: every row equals the replay of the live settlements'
	// changes (voided and reversed ones gave theirs back).
	type key struct {
		psn, insutype string
		year          int
	}
	want := map[key]map[string]money.Fen{}
	adm := map[key]int{}
	for _, s := range byID {
		if s.status != "completed" && s.status != "pending" {
			continue
		}
		k := key{s.psn, s.insutype, s.acc.Year}
		m := want[k]
		if m == nil {
			m = map[string]money.Fen{}
			want[k] = m
		}
		for c, d := range s.acc.Delta {
			if strings.HasSuffix(c, ".month") {
				c += "@" + s.acc.Month
			}
			m[c] += d
			if m[c] == 0 {
				delete(m, c)
			}
		}
		adm[k] += s.acc.Admissions
	}
	rows, err = db.Query(ctx, `SELECT psn_no, insutype, acc_year, admissions, counters FROM accumulators`)
	if err != nil {
		return nil, err
	}
	seen := map[key]bool{}
	for rows.Next() {
		var k key
		var admissions int
		var counters string
		if err := rows.Scan(&k.psn, &k.insutype, &k.year, &admissions, &counters); err != nil {
			rows.Close()
			return nil, err
		}
		r.AccumulatorRows++
		seen[k] = true
		got := map[string]money.Fen{}
		if err := json.Unmarshal([]byte(counters), &got); err != nil {
			rows.Close()
			return nil, fmt.Errorf("accumulators of %s: %w", k.psn, err)
		}
		for c, v := range got {
			if v == 0 {
				delete(got, c)
			}
		}
		w := want[k]
		if w == nil {
			w = map[string]money.Fen{}
		}
		if !maps.Equal(got, w) || admissions != adm[k] {
			r.AccumulatorMismatches++
			r.problem("accumulators of %s %s %d: stored %v, replay %v", k.psn, k.insutype, k.year, got, w)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for k, w := range want {
		if !seen[k] && len(w) > 0 {
			r.AccumulatorMismatches++
			r.problem("accumulators of %s %s %d missing; replay %v", k.psn, k.insutype, k.year, w)
		}
	}
	return r, nil
}

func (r *Report) problem(format string, args ...any) {
	if len(r.Problems) < 20 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// CountOps fills the history's figures.
func (r *Report) CountOps(h *loadgen.History) {
	r.OpsOk, r.OpsFail, r.OpsInfo = h.Counts()
	r.Ops = r.OpsOk + r.OpsFail + r.OpsInfo
}
