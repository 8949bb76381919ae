package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"yibao"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/settlement"
	"yibao/sqlstore"
)

// Monthly clearing (清算). Every committed cross-region settlement counts
// in the clearing month the hub gave it when it decided; a reversal
// counts, negatively, in the month the hub learned of it. For a month the
// hub sums, for every pair of pooling regions, what the insured region
// owes the treating one, nets each pair, checks that every node's own
// books say the same to the fen, and only then posts: the nets on its own
// ledger and, to each node, the postings that bring its positions with
// the other regions back to zero.

// Flow is what one insured region owes one treating region for a month.
type Flow struct {
	Insured     string `json:"insu_admdvs"`
	Treating    string `json:"treating_admdvs"`
	Settlements int    `json:"settlements"`
	Reversals   int    `json:"reversals"`
	FundPay     int64  `json:"fund_pay"`
	AcctPay     int64  `json:"acct_pay"`
	Amount      int64  `json:"amount"` // fund_pay + acct_pay, less reversals
}

// Net is one pair of regions netted: From pays To.
type Net struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Amount int64  `json:"amount"`
}

// RegionTotal is one region's side of the month.
type RegionTotal struct {
	Admdvs     string `json:"admdvs"`
	Node       string `json:"node"`
	Receivable int64  `json:"receivable"` // others' insured treated here
	Payable    int64  `json:"payable"`    // this region's insured treated elsewhere
	Net        int64  `json:"net"`        // > 0: receives from the hub
}

// NodeCheck compares a node's books with the hub's for the month.
type NodeCheck struct {
	Node     string   `json:"node"`
	Agrees   bool     `json:"agrees"`
	Problems []string `json:"problems,omitempty"`
}

// Statement is a month's clearing statement.
type Statement struct {
	Month     string        `json:"clr_month"`
	Flows     []Flow        `json:"flows"`
	Nets      []Net         `json:"nets"`
	Regions   []RegionTotal `json:"regions"`
	Gross     int64         `json:"gross"`
	Netted    int64         `json:"netted"` // what actually moves after netting
	Checks    []NodeCheck   `json:"checks"`
	Posted    bool          `json:"posted"`
	CreatedAt *time.Time    `json:"created_at,omitempty"`
}

// flows sums the month from the hub's log.
func (h *Hub) flows(ctx context.Context, month string) ([]Flow, error) {
	rows, err := h.db.Query(ctx, `SELECT insu_admdvs, treating_admdvs, fund_pay, acct_pay, clr_month, reversed, rev_month FROM hub_txns
		WHERE state = 'committed' AND (clr_month = ? OR rev_month = ?) ORDER BY insu_admdvs, treating_admdvs`, month, month)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	by := map[[2]string]*Flow{}
	for rows.Next() {
		var ins, tr, cm, rm string
		var fund, acct int64
		var rev int
		if err := rows.Scan(&ins, &tr, &fund, &acct, &cm, &rev, &rm); err != nil {
			return nil, err
		}
		k := [2]string{ins, tr}
		f := by[k]
		if f == nil {
			f = &Flow{Insured: ins, Treating: tr}
			by[k] = f
		}
		if cm == month {
			f.Settlements++
			f.FundPay += fund
			f.AcctPay += acct
			f.Amount += fund + acct
		}
		if rev != 0 && rm == month {
			f.Reversals++
			f.FundPay -= fund
			f.AcctPay -= acct
			f.Amount -= fund + acct
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]Flow, 0, len(by))
	for _, f := range by {
		out = append(out, *f)
	}
	slices.SortFunc(out, func(a, b Flow) int {
		if a.Insured != b.Insured {
			return cmpStr(a.Insured, b.Insured)
		}
		return cmpStr(a.Treating, b.Treating)
	})
	return out, nil
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Statement computes a month's statement and checks every node's books
// against it, posting nothing. A month already cleared returns what was
// posted.
func (h *Hub) Statement(ctx context.Context, month string) (*Statement, error) {
	if _, err := time.Parse("2006-01", month); err != nil {
		return nil, yibao.FieldError("clr_month", "want YYYY-MM")
	}
	var doc string
	var created int64
	err := h.db.QueryRow(ctx, `SELECT statement, created_at FROM hub_clearings WHERE clr_month = ?`, month).Scan(&doc, &created)
	if err == nil {
		var st Statement
		if err := json.Unmarshal([]byte(doc), &st); err != nil {
			return nil, err
		}
		t := time.UnixMicro(created).UTC()
		st.Posted, st.CreatedAt = true, &t
		return &st, nil
	}
	if !notFound(err) {
		return nil, err
	}
	flows, err := h.flows(ctx, month)
	if err != nil {
		return nil, err
	}
	st := &Statement{Month: month, Flows: flows}
	regions := map[string]*RegionTotal{}
	region := func(ad string) *RegionTotal {
		if regions[ad] == nil {
			regions[ad] = &RegionTotal{Admdvs: ad}
			if n, err := h.nodeFor(ad); err == nil {
				regions[ad].Node = n.ID
			}
		}
		return regions[ad]
	}
	pair := map[[2]string]int64{} // [lo, hi] → what lo owes hi (negative: hi owes lo)
	for _, f := range flows {
		st.Gross += f.Amount
		region(f.Insured).Payable += f.Amount
		region(f.Treating).Receivable += f.Amount
		if f.Insured < f.Treating {
			pair[[2]string{f.Insured, f.Treating}] += f.Amount
		} else {
			pair[[2]string{f.Treating, f.Insured}] -= f.Amount
		}
	}
	for k, v := range pair {
		switch {
		case v > 0:
			st.Nets = append(st.Nets, Net{From: k[0], To: k[1], Amount: v})
		case v < 0:
			st.Nets = append(st.Nets, Net{From: k[1], To: k[0], Amount: -v})
		}
	}
	slices.SortFunc(st.Nets, func(a, b Net) int {
		if a.From != b.From {
			return cmpStr(a.From, b.From)
		}
		return cmpStr(a.To, b.To)
	})
	for _, n := range st.Nets {
		st.Netted += n.Amount
	}
	for _, r := range regions {
		r.Net = r.Receivable - r.Payable
		st.Regions = append(st.Regions, *r)
	}
	slices.SortFunc(st.Regions, func(a, b RegionTotal) int { return cmpStr(a.Admdvs, b.Admdvs) })
	st.Checks = h.check(ctx, month, flows)
	return st, nil
}

// check asks every node for its positions of the month and compares.
func (h *Hub) check(ctx context.Context, month string, flows []Flow) []NodeCheck {
	var out []NodeCheck
	for _, n := range h.cfg.Nodes {
		c := NodeCheck{Node: n.ID, Agrees: true}
		var ps settlement.Positions
		if err := h.client.Call(ctx, n.URL, "/xr/v1/positions", map[string]string{"clr_month": month}, &ps); err != nil {
			c.Agrees, c.Problems = false, []string{"the node did not answer: " + yibao.ErrorMessage(err)}
			out = append(out, c)
			continue
		}
		want := map[[2]string][2]int64{} // [own, other] → receivable, payable
		for _, f := range flows {
			if n.Serves(f.Treating) {
				v := want[[2]string{f.Treating, f.Insured}]
				v[0] += f.Amount
				want[[2]string{f.Treating, f.Insured}] = v
			}
			if n.Serves(f.Insured) {
				v := want[[2]string{f.Insured, f.Treating}]
				v[1] += f.Amount
				want[[2]string{f.Insured, f.Treating}] = v
			}
		}
		got := map[[2]string][2]int64{}
		for _, p := range ps.Positions {
			got[[2]string{p.Own, p.Other}] = [2]int64{p.Receivable, p.Payable}
		}
		for k, w := range want {
			if got[k] != w {
				c.Problems = append(c.Problems, fmt.Sprintf("%s↔%s: hub says receivable %d payable %d fen, the node %d and %d", k[0], k[1], w[0], w[1], got[k][0], got[k][1]))
			}
		}
		for k, g := range got {
			if _, ok := want[k]; !ok && g != [2]int64{} {
				c.Problems = append(c.Problems, fmt.Sprintf("%s↔%s: the node has receivable %d payable %d fen the hub does not know", k[0], k[1], g[0], g[1]))
			}
		}
		if ps.Unreported > 0 {
			c.Problems = append(c.Problems, fmt.Sprintf("%d reversal(s) not yet reported to the hub", ps.Unreported))
		}
		c.Problems = append(c.Problems, ps.LedgerProblems...)
		c.Agrees = len(c.Problems) == 0
		out = append(out, c)
	}
	return out
}

// Clear closes a month: the statement, provided every node agrees and
// nothing is undelivered, is recorded, the nets are posted on the hub's
// ledger, and each node is sent the postings that settle its positions.
// Months clear in order; a month clears once.
func (h *Hub) Clear(ctx context.Context, month string) (*Statement, error) {
	if _, err := time.Parse("2006-01", month); err != nil {
		return nil, yibao.FieldError("clr_month", "want YYYY-MM")
	}
	if month > h.now().In(yibao.ChinaTime).Format("2006-01") {
		return nil, yibao.Errorf(yibao.CodePrecondition, "clearing_not_ready: month %s has not begun", month)
	}
	if _, err := h.SweepTimeouts(ctx); err != nil {
		return nil, err
	}
	if _, err := h.Deliver(ctx); err != nil {
		return nil, err
	}
	var last string
	if err := h.db.QueryRow(ctx, `SELECT COALESCE(MAX(clr_month), '') FROM hub_clearings`).Scan(&last); err != nil {
		return nil, err
	}
	if last >= month {
		return h.Statement(ctx, month)
	}
	if n, err := h.Undelivered(ctx); err != nil {
		return nil, err
	} else if n > 0 {
		return nil, yibao.Errorf(yibao.CodePrecondition, "clearing_not_ready: %d message(s) still wait for delivery to a node", n)
	}
	var preparing int
	if err := h.db.QueryRow(ctx, `SELECT COUNT(*) FROM hub_txns WHERE state = 'preparing'`).Scan(&preparing); err != nil {
		return nil, err
	}
	if preparing > 0 {
		return nil, yibao.Errorf(yibao.CodePrecondition, "clearing_not_ready: %d settlement(s) are being decided", preparing)
	}
	st, err := h.Statement(ctx, month)
	if err != nil {
		return nil, err
	}
	for _, c := range st.Checks {
		if !c.Agrees {
			return st, yibao.Errorf(yibao.CodePrecondition, "clearing_disagreement: node %s: %v", c.Node, c.Problems)
		}
	}
	// The hub's ledger: each net moves from the payer region's account to
	// the payee's; a region account's balance is what it pays or gets.
	var accs []ledger.Account
	var ts []ledger.Transfer
	seen := map[string]bool{}
	for _, n := range st.Nets {
		for _, ad := range []string{n.From, n.To} {
			if !seen[ad] {
				seen[ad] = true
				accs = append(accs, ledger.ClearingHouse(ad))
			}
		}
		ts = append(ts, ledger.Transfer{ID: "clr:" + month + ":" + n.From + ":" + n.To, DebitAccountID: ledger.ClearingHouse(n.From).ID,
			CreditAccountID: ledger.ClearingHouse(n.To).ID, Amount: money.Fen(n.Amount), Ledger: ledger.CNY, Code: "clearing", UserData: month})
	}
	if len(accs) == 0 {
		accs = []ledger.Account{ledger.ClearingHouse("hub")}
	}
	now := h.now()
	st.Posted = true
	st.CreatedAt = &now
	doc, _ := json.Marshal(st)
	unit := engine.Unit{Accounts: accs, Transfers: ts}
	unit.Statements = func(ctx context.Context, tx *sqlstore.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO hub_clearings (clr_month, statement, created_at) VALUES (?, ?, ?)`, month, string(doc), micros(now)); err != nil {
			return err
		}
		for _, n := range h.cfg.Nodes {
			nets := map[string]int64{}
			for _, f := range st.Flows {
				if n.Serves(f.Treating) {
					nets[f.Insured] += f.Amount
				}
				if n.Serves(f.Insured) {
					nets[f.Treating] -= f.Amount
				}
			}
			if err := h.queue(ctx, tx, "clearing:"+month+":"+n.ID, n.ID, "/xr/v1/clearing", map[string]any{"clr_month": month, "nets": nets}); err != nil {
				return err
			}
		}
		return nil
	}
	if _, err := h.led.Submit(ctx, unit); err != nil {
		if sqlstore.IsUniqueViolation(err) {
			return h.Statement(ctx, month)
		}
		return nil, err
	}
	h.Kick()
	return st, nil
}
