package funds

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"yibao"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/sqlstore"
)

// Statement is what a payout tells an institution.
type Statement struct {
	FixmedinsCode string               `json:"fixmedins_code"`
	Name          string               `json:"name"`
	Period        string               `json:"period"`
	Cutoff        time.Time            `json:"cutoff"`
	ByFund        map[string]money.Fen `json:"by_fund"`    // settled minus reversed in the period, per paying account
	Settled       money.Fen            `json:"settled"`    // completed in the period
	Reversed      money.Fen            `json:"reversed"`   // reversed in the period (also of earlier periods)
	Recovered     money.Fen            `json:"recovered"`  // review recoveries approved
	CarriedIn     money.Fen            `json:"carried_in"` // owed from before the period and not paid (negative: reversals after payout)
	DepositHeld   money.Fen            `json:"deposit_held"`
	ReviewHeld    money.Fen            `json:"review_held"`
	Owed          money.Fen            `json:"owed"` // everything owed and not paid, before withholdings
	Net           money.Fen            `json:"net"`  // paid now
	PayoutID      string               `json:"payout_id,omitempty"`
	Status        string               `json:"status,omitempty"`
}

// settledLeg is one leg of a stored settlement.
type settledLeg struct {
	Leg    string    `json:"leg"`
	Debit  string    `json:"debit"`
	Amount money.Fen `json:"amount"`
}

// fundLeg reports whether a settlement leg is money the funds (or a
// personal account) owe the institution, as opposed to out-of-pocket
// money collected through a channel or at the counter.
func fundLeg(l settledLeg) bool {
	return strings.HasPrefix(l.Leg, "fund:") || l.Leg == "acct_pay" || l.Leg == "acct_mulaid_pay"
}

// PreparePayout prepares the payout (拨付) of a region's institutions for
// a month: for each, what the funds owe (settled and not reversed, less
// approved review recoveries, less what earlier payouts instructed), less
// the quality deposit (the region's share of the year's settlements so
// far) and the lines flagged by smart review in the month. Reversals
// after a payout carry into the next one (a negative carry pays
// nothing). Nothing moves until the run is approved (instructions to the
// bank) and the bank confirms each payment (the receivable clears). One
// run per region and month.
func (s *Service) PreparePayout(ctx context.Context, admdvs, period string) (*Run, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	start, end, err := periodRange(period)
	if err != nil {
		return nil, err
	}
	if r, err := s.existing(ctx, KindPayout, admdvs, period); err != nil || r != nil {
		return r, err
	}
	now := s.now()
	if start > micros(now) {
		return nil, yibao.FieldError("period", "%s has not begun", period)
	}
	cutoff := min(end, micros(now))
	rules, err := s.RulesOn(ctx, admdvs, yibao.DateOf(time.UnixMicro(start)))
	if err != nil {
		return nil, err
	}
	yearStart := time.UnixMicro(start).In(yibao.ChinaTime)
	yearStart = time.Date(yearStart.Year(), 1, 1, 0, 0, 0, 0, yibao.ChinaTime)
	rows, err := s.db.Query(ctx, `SELECT fixmedins_code, name FROM institutions WHERE admdvs = ? ORDER BY fixmedins_code`, admdvs)
	if err != nil {
		return nil, err
	}
	var insts [][2]string
	for rows.Next() {
		var c, n string
		if err := rows.Scan(&c, &n); err != nil {
			rows.Close()
			return nil, err
		}
		insts = append(insts, [2]string{c, n})
	}
	rows.Close()
	var lines []Line
	var statements []Statement
	var total money.Fen
	for _, in := range insts {
		st, err := s.statement(ctx, in[0], in[1], period, start, cutoff, yearStart.UnixMicro(), rules)
		if err != nil {
			return nil, err
		}
		if st.Settled == 0 && st.Reversed == 0 && st.Owed == 0 {
			continue
		}
		statements = append(statements, *st)
		if st.Net > 0 {
			detail, _ := json.Marshal(st)
			var d map[string]any
			json.Unmarshal(detail, &d)
			lines = append(lines, Line{FixmedinsCode: in[0], Kind: "payout", Period: period, Debit: ledger.HospitalReceivable(in[0]).ID,
				Credit: ledger.HospitalBank(in[0]).ID, Amount: st.Net, Detail: d})
			total += st.Net
		}
	}
	if len(statements) == 0 {
		return nil, yibao.Errorf(yibao.CodePrecondition, "nothing is owed to the institutions of %s for %s", admdvs, period)
	}
	r := &Run{Kind: KindPayout, Admdvs: admdvs, Period: period, Summary: map[string]any{"cutoff": time.UnixMicro(cutoff).UTC(), "institutions": len(statements),
		"payouts": len(lines), "quality_deposit": rules.QualityDeposit, "statements": statements}}
	out, err := s.prepared(ctx, r, "", lines, nil)
	if err == errExists {
		return s.existing(ctx, KindPayout, admdvs, period)
	}
	return out, err
}

// statement works out what one institution is owed and paid now.
func (s *Service) statement(ctx context.Context, code, name, period string, start, cutoff, yearStart int64, rules Rules) (*Statement, error) {
	st := &Statement{FixmedinsCode: code, Name: name, Period: period, Cutoff: time.UnixMicro(cutoff).UTC(), ByFund: map[string]money.Fen{}}
	var owedAll, yearGross money.Fen
	rows, err := s.db.Query(ctx, `SELECT status, resolved_at, reversed_at, legs FROM settlements WHERE fixmedins_code = ? AND status IN ('completed', 'reversed')
		AND resolved_at > 0 AND resolved_at < ?`, code, cutoff)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var status, legsJSON string
		var resolved, reversed int64
		if err := rows.Scan(&status, &resolved, &reversed, &legsJSON); err != nil {
			return nil, err
		}
		var legs []settledLeg
		if err := json.Unmarshal([]byte(legsJSON), &legs); err != nil {
			return nil, fmt.Errorf("settlement legs: %w", err)
		}
		var amt money.Fen
		for _, l := range legs {
			if !fundLeg(l) {
				continue
			}
			amt += l.Amount
			if resolved >= start {
				st.ByFund[fundKey(l.Debit)] += l.Amount
			}
			if status == "reversed" && reversed > 0 && reversed >= start && reversed < cutoff {
				st.ByFund[fundKey(l.Debit)] -= l.Amount
			}
		}
		owedAll += amt
		if resolved >= yearStart {
			yearGross += amt
		}
		if resolved >= start {
			st.Settled += amt
		}
		if status == "reversed" && reversed > 0 && reversed < cutoff {
			owedAll -= amt
			if resolved >= yearStart {
				yearGross -= amt
			}
			if reversed >= start {
				st.Reversed += amt
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := s.db.QueryRow(ctx, `SELECT COALESCE(SUM(amount), 0) FROM review_recoveries WHERE fixmedins_code = ? AND status = 'approved'`, code).Scan(&st.Recovered); err != nil {
		return nil, err
	}
	var paid money.Fen
	if err := s.db.QueryRow(ctx, `SELECT COALESCE(SUM(amount), 0) FROM fund_payouts WHERE fixmedins_code = ? AND status IN ('instructed', 'confirmed')`, code).Scan(&paid); err != nil {
		return nil, err
	}
	st.Owed = owedAll - st.Recovered - paid
	st.CarriedIn = st.Owed - (st.Settled - st.Reversed)
	st.DepositHeld = max(0, yearGross.Mul(rules.QualityDeposit, money.Up))
	// A line flagged by several rules is held once.
	if err := s.db.QueryRow(ctx, `SELECT COALESCE(SUM(amount), 0) FROM (SELECT DISTINCT setl_id, feedetl_sn, amount FROM review_hits
		WHERE fixmedins_code = ? AND month = ? AND action = 'warn') flagged`, code, period).Scan(&st.ReviewHeld); err != nil {
		return nil, err
	}
	// Flagged lines are held at most up to what the month settled (a line's
	// amount includes parts the funds did not pay).
	st.ReviewHeld = min(st.ReviewHeld, max(0, st.Settled-st.Reversed))
	st.Net = max(0, st.Owed-st.DepositHeld-st.ReviewHeld)
	return st, nil
}

func fundKey(debit string) string {
	if strings.HasPrefix(debit, "acct:") {
		return "personal_account"
	}
	return debit
}

// instruct turns an approved payout run's lines into payment
// instructions (nothing moves yet) and finishes the run.
func (s *Service) instruct(ctx context.Context, r *Run) error {
	lines, err := s.lines(ctx, s.db, r.RunID, "", 100000)
	if err != nil {
		return err
	}
	return s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		for _, l := range lines {
			if l.Status != "pending" {
				continue
			}
			st, _ := json.Marshal(l.Detail)
			if _, err := tx.Exec(ctx, `INSERT INTO fund_payouts (payout_id, run_id, fixmedins_code, period, amount, status, statement) VALUES (?, ?, ?, ?, ?, 'instructed', ?)
				ON CONFLICT DO NOTHING`, payoutID(r.RunID, l.Seq), r.RunID, l.FixmedinsCode, r.Period, int64(l.Amount), string(st)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE fund_run_lines SET status = 'instructed' WHERE run_id = ? AND seq = ?`, r.RunID, l.Seq); err != nil {
				return err
			}
		}
		res, err := tx.Exec(ctx, `UPDATE fund_runs SET status = 'done', done_at = ?, posted = lines WHERE run_id = ? AND status = 'approved'`, micros(s.now()), r.RunID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return s.record(ctx, tx, r, "instructed")
		}
		return nil
	})
}

func payoutID(runID string, seq int) string { return fmt.Sprintf("%s-%04d", runID, seq) }

// Payout is an instruction to pay an institution.
type Payout struct {
	PayoutID      string     `json:"payout_id"`
	RunID         string     `json:"run_id"`
	FixmedinsCode string     `json:"fixmedins_code"`
	Period        string     `json:"period"`
	Amount        money.Fen  `json:"amount"`
	Status        string     `json:"status"` // instructed | confirmed | failed
	BankRef       string     `json:"bank_ref,omitempty"`
	ConfirmedAt   *time.Time `json:"confirmed_at,omitempty"`
	Statement     Statement  `json:"statement"`
}

// Payouts lists the instructions of a run (administrators), or, for an
// institution, its own.
func (s *Service) Payouts(ctx context.Context, runID, fixmedinsCode string) ([]Payout, error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	q, args := `SELECT payout_id, run_id, fixmedins_code, period, amount, status, bank_ref, confirmed_at, statement FROM fund_payouts WHERE 1 = 1`, []any{}
	if !p.IsAdmin() {
		if p.Institution == "" || (fixmedinsCode != "" && fixmedinsCode != p.Institution) {
			return nil, yibao.Errorf(yibao.CodeForbidden, "an institution sees only its own payouts")
		}
		fixmedinsCode = p.Institution
	}
	if runID != "" {
		q, args = q+` AND run_id = ?`, append(args, runID)
	}
	if fixmedinsCode != "" {
		q, args = q+` AND fixmedins_code = ?`, append(args, fixmedinsCode)
	}
	rows, err := s.db.Query(ctx, q+` ORDER BY payout_id DESC LIMIT 500`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Payout{}
	for rows.Next() {
		var po Payout
		var c int64
		var st string
		if err := rows.Scan(&po.PayoutID, &po.RunID, &po.FixmedinsCode, &po.Period, &po.Amount, &po.Status, &po.BankRef, &c, &st); err != nil {
			return nil, err
		}
		json.Unmarshal([]byte(st), &po.Statement)
		po.Statement.PayoutID, po.Statement.Status = po.PayoutID, po.Status
		if c != 0 {
			t := fromMicros(c)
			po.ConfirmedAt = &t
		}
		out = append(out, po)
	}
	return out, rows.Err()
}

// BankFileHeader is the header of the payment-instruction file and of
// the bank's confirmation file.
var (
	BankFileHeader         = []string{"payout_id", "fixmedins_code", "name", "amount", "period"}
	ConfirmationFileHeader = []string{"payout_id", "amount", "status", "bank_ref"}
)

// BankFile is a payout run's payment instructions as the CSV the bank
// takes (administrators).
func (s *Service) BankFile(ctx context.Context, runID string) ([]byte, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	r, err := s.load(ctx, s.db, runID)
	if err != nil {
		return nil, err
	}
	if r.Kind != KindPayout || r.Status != StatusDone {
		return nil, yibao.Errorf(yibao.CodePrecondition, "run %s is a %s run, %s; only an approved payout run has a bank file", runID, r.Kind, r.Status)
	}
	pos, err := s.Payouts(ctx, runID, "")
	if err != nil {
		return nil, err
	}
	sort.Slice(pos, func(i, j int) bool { return pos[i].PayoutID < pos[j].PayoutID })
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(BankFileHeader)
	for _, p := range pos {
		w.Write([]string{p.PayoutID, p.FixmedinsCode, p.Statement.Name, p.Amount.String(), p.Period})
	}
	w.Flush()
	return b.Bytes(), w.Error()
}

// ConfirmResult is what a confirmation file did.
type ConfirmResult struct {
	Confirmed int       `json:"confirmed"` // newly confirmed: the receivable cleared
	Failed    int       `json:"failed"`    // the bank could not pay: owed again in the next run
	Already   int       `json:"already"`   // confirmed before (a resent file)
	Cleared   money.Fen `json:"cleared"`
}

// Confirm applies the bank's confirmation file (payout_id, amount,
// status paid|failed, bank_ref): each paid instruction clears the
// institution's receivable (recv → bank) once; a failed one is owed
// again in the next run. A file with an unknown payout, a different
// amount or a bad status applies nothing and lists every bad line. A file
// sent again (or an interrupted one resumed) clears nothing twice.
func (s *Service) Confirm(ctx context.Context, r io.Reader) (*ConfirmResult, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	recs, err := yibao.ReadCSV(io.LimitReader(r, 16<<20), ConfirmationFileHeader, 100_000)
	if err != nil {
		return nil, err
	}
	type conf struct {
		po     Payout
		status string
		ref    string
	}
	var list []conf
	var issues []yibao.Issue
	seen := map[string]int{}
	for _, rc := range recs {
		line, rec := rc.Line, rc.Fields
		id, amt, status, ref := rec[0], rec[1], rec[2], rec[3]
		badf := func(field, msg string) {
			if len(issues) < 100 {
				issues = append(issues, yibao.Issue{Line: line, Field: field, Message: msg})
			}
		}
		if first, dup := seen[id]; dup {
			badf("payout_id", fmt.Sprintf("duplicate of line %d", first))
			continue
		}
		seen[id] = line
		var po Payout
		err = s.db.QueryRow(ctx, `SELECT payout_id, run_id, fixmedins_code, period, amount, status FROM fund_payouts WHERE payout_id = ?`, id).
			Scan(&po.PayoutID, &po.RunID, &po.FixmedinsCode, &po.Period, &po.Amount, &po.Status)
		if err != nil {
			badf("payout_id", fmt.Sprintf("unknown payout %q", id))
			continue
		}
		a, aerr := money.ParseYuan(amt)
		if aerr != nil || a != po.Amount {
			badf("amount", fmt.Sprintf("%s: the instruction is for %s yuan, the file says %q", id, po.Amount, amt))
			continue
		}
		if status != "paid" && status != "failed" {
			badf("status", fmt.Sprintf("status %q: want paid or failed", status))
			continue
		}
		if po.Status == "failed" || (po.Status == "confirmed" && status == "failed") {
			badf("status", fmt.Sprintf("%s is %s already", id, po.Status))
			continue
		}
		list = append(list, conf{po, status, ref})
	}
	if len(issues) > 0 {
		return nil, &yibao.Error{Code: yibao.CodeInvalid, Issues: issues,
			Message: fmt.Sprintf("%d bad line(s), nothing applied; first: line %d: %s", len(issues), issues[0].Line, issues[0].Message)}
	}
	res := &ConfirmResult{}
	for i, c := range list {
		if c.po.Status == "confirmed" {
			res.Already++
			continue
		}
		now := s.now()
		if c.status == "failed" {
			if _, err := s.db.Exec(ctx, `UPDATE fund_payouts SET status = 'failed', bank_ref = ?, confirmed_at = ? WHERE payout_id = ? AND status = 'instructed'`,
				c.ref, micros(now), c.po.PayoutID); err != nil {
				return nil, err
			}
			res.Failed++
			continue
		}
		h := c.po.FixmedinsCode
		unit := engine.Unit{
			Accounts: []ledger.Account{ledger.HospitalReceivable(h), ledger.HospitalBank(h)},
			Transfers: []ledger.Transfer{{ID: "FP:" + c.po.PayoutID, DebitAccountID: ledger.HospitalReceivable(h).ID, CreditAccountID: ledger.HospitalBank(h).ID,
				Amount: c.po.Amount, Ledger: ledger.CNY, Code: "fund_payout", UserData: c.po.RunID, Leg: c.po.Period}},
		}
		po := c
		unit.Statements = func(ctx context.Context, tx *sqlstore.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE fund_payouts SET status = 'confirmed', bank_ref = ?, confirmed_at = ? WHERE payout_id = ? AND status = 'instructed'`,
				po.ref, micros(now), po.po.PayoutID)
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `UPDATE fund_run_lines SET status = 'confirmed' WHERE run_id = ? AND fixmedins_code = ? AND status = 'instructed'`, po.po.RunID, po.po.FixmedinsCode)
			return err
		}
		if _, err := s.led.Submit(ctx, unit); err != nil {
			return nil, fmt.Errorf("confirming %s: %w", c.po.PayoutID, err)
		}
		res.Confirmed++
		res.Cleared += c.po.Amount
		if s.CrashAfter != nil && s.CrashAfter(c.po.RunID, i+1) {
			return res, errCrash
		}
	}
	return res, nil
}
