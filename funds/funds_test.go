package funds_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"yibao"
	"yibao/app"
	"yibao/app/apptest"
	"yibao/demo"
	"yibao/funds"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/settlement"
)

type env struct {
	t       *testing.T
	a       *app.App
	d       *demo.Dataset
	maker   context.Context // prepares
	checker context.Context // approves
	period  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	a, d := apptest.Open(t, nil)
	return &env{t: t, a: a, d: d,
		maker:   yibao.WithPrincipal(context.Background(), &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "admin", Role: yibao.RoleAdmin}),
		checker: yibao.WithPrincipal(context.Background(), &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "auditor", Role: yibao.RoleAdmin}),
		period:  time.Now().In(yibao.ChinaTime).Format("2006-01")}
}

func (e *env) balance(id string) money.Fen {
	e.t.Helper()
	acc, err := e.a.Ledger.Account(context.Background(), id)
	if err != nil {
		if yibao.IsCode(err, yibao.CodeNotFound) {
			return 0
		}
		e.t.Fatal(err)
	}
	return acc.CreditBalance()
}

func (e *env) ledgerOK() {
	e.t.Helper()
	rep, err := engine.Check(context.Background(), e.a.DB, time.Now().UnixMicro())
	if err != nil || !rep.OK() {
		e.t.Fatalf("ledger check: %v %v", rep, err)
	}
}

// contributions prepares and approves the demo's contribution file of
// the period and returns the run.
func (e *env) contributions() *funds.Run {
	e.t.Helper()
	run, err := e.a.Funds.PrepareContributions(e.maker, strings.NewReader(string(demo.ContributionsCSV(e.d, e.period))), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	run, err = e.a.Funds.Approve(e.checker, run.RunID)
	if err != nil || run.Status != funds.StatusDone {
		e.t.Fatalf("approving contributions: %v %v", run, err)
	}
	return run
}

// TestMonthEndToEnd runs a month: contributions in, personal accounts
// credited, the institutions paid out, the bank's confirmation cleared;
// each run prepared by one administrator and approved by another, and
// the ledger's invariants hold at the end.
func TestMonthEndToEnd(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pool := ledger.FundPool("370100", "310").ID
	pool0 := e.balance(pool)
	dash0, err := e.a.Funds.Dashboard(e.checker, "370100", 3)
	if err != nil {
		t.Fatal(err)
	}
	file := demo.ContributionsCSV(e.d, e.period)
	run, err := e.a.Funds.PrepareContributions(e.maker, strings.NewReader(string(file)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.balance(pool) != pool0 {
		t.Fatal("a prepared run moved money")
	}
	if _, err := e.a.Funds.Approve(e.maker, run.RunID); !yibao.IsCode(err, yibao.CodeForbidden) {
		t.Fatalf("the preparer approved their own run: %v", err)
	}
	if _, err := e.a.Funds.PrepareContributions(e.maker, strings.NewReader(string(file)), nil); !yibao.IsCode(err, yibao.CodeConflict) && !yibao.IsCode(err, yibao.CodeInvalid) {
		t.Fatalf("the same file twice: %v", err)
	}
	run, err = e.a.Funds.Approve(e.checker, run.RunID)
	if err != nil || run.Status != funds.StatusDone || run.Posted != run.Lines {
		t.Fatalf("contributions: %+v %v", run, err)
	}
	// The employee pool got the employer and individual parts of 370100.
	var want310 money.Fen
	rows, _ := csv.NewReader(strings.NewReader(string(file))).ReadAll()
	covered := map[string]string{}
	for _, c := range e.d.Coverages {
		if c.Insutype == "310" {
			covered[c.PsnNo] = c.Admdvs
		}
	}
	for _, r := range rows[1:] {
		if r[1] == "310" && covered[r[0]] == "370100" {
			want310 += money.MustParseYuan(r[4])
		}
	}
	if got := e.balance(pool) - pool0; got != want310 {
		t.Fatalf("the 370100 employee pool got %s, want %s", got, want310)
	}

	// Crediting: employees get their 2%, retirees the monthly credit.
	var employee, retiree string
	for _, p := range e.d.Persons {
		if covered[p.PsnNo] != "370100" {
			continue
		}
		switch {
		case p.Category == yibao.CategoryActive && employee == "":
			employee = p.PsnNo
		case p.Category == yibao.CategoryRetired && retiree == "":
			retiree = p.PsnNo
		}
	}
	if employee == "" || retiree == "" {
		t.Fatal("the demo has no employee or retiree in 370100")
	}
	var individual money.Fen
	for _, r := range rows[1:] {
		if r[0] == employee && r[3] == "individual" {
			individual = money.MustParseYuan(r[4])
		}
	}
	emp0, ret0 := e.balance(ledger.PersonalAccount(employee).ID), e.balance(ledger.PersonalAccount(retiree).ID)
	cr, err := e.a.Funds.PrepareCrediting(e.maker, "370100", e.period)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := e.a.Funds.PrepareCrediting(e.checker, "370100", e.period); err != nil || again.RunID != cr.RunID {
		t.Fatalf("preparing the period again: %v %v", again, err)
	}
	if cr, err = e.a.Funds.Approve(e.checker, cr.RunID); err != nil || cr.Status != funds.StatusDone {
		t.Fatalf("crediting: %v %v", cr, err)
	}
	if got := e.balance(ledger.PersonalAccount(employee).ID) - emp0; got != individual {
		t.Fatalf("employee credited %s, want the individual part %s", got, individual)
	}
	if got := e.balance(ledger.PersonalAccount(retiree).ID) - ret0; got != money.Yuan(120) {
		t.Fatalf("retiree credited %s, want 120.00", got)
	}
	st, err := e.a.Funds.Statement(ctx, employee, 10)
	if err != nil || len(st.Lines) == 0 || st.Lines[0].What != "contribution credit" || st.Lines[0].Amount != individual {
		t.Fatalf("account statement: %+v %v", st, err)
	}

	// Payout: the seeded bills of this month at the first hospital.
	po, err := e.a.Funds.PreparePayout(e.maker, "370100", e.period)
	if err != nil {
		t.Fatal(err)
	}
	if po.Lines == 0 || po.Total <= 0 {
		t.Fatalf("payout run: %+v", po)
	}
	if _, err := e.a.Funds.BankFile(e.checker, po.RunID); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("a bank file before approval: %v", err)
	}
	if po, err = e.a.Funds.Approve(e.checker, po.RunID); err != nil || po.Status != funds.StatusDone {
		t.Fatalf("payout: %v %v", po, err)
	}
	pays, err := e.a.Funds.Payouts(e.checker, po.RunID, "")
	if err != nil || len(pays) != po.Lines {
		t.Fatalf("payouts: %v %v", pays, err)
	}
	for _, p := range pays {
		s := p.Statement
		if s.Net != p.Amount || s.DepositHeld != s.Settled.Mul(money.Percent(5), money.Up) || s.Net != s.Owed-s.DepositHeld-s.ReviewHeld {
			t.Fatalf("statement of %s: %+v", p.FixmedinsCode, s)
		}
	}
	bankFile, err := e.a.Funds.BankFile(e.checker, po.RunID)
	if err != nil {
		t.Fatal(err)
	}
	recv0 := map[string]money.Fen{}
	for _, p := range pays {
		recv0[p.FixmedinsCode] = e.balance(ledger.HospitalReceivable(p.FixmedinsCode).ID)
	}
	conf := confirmation(t, bankFile, nil)
	res, err := e.a.Funds.Confirm(e.checker, strings.NewReader(conf))
	if err != nil || res.Confirmed != len(pays) || res.Cleared != po.Total {
		t.Fatalf("confirmation: %+v %v", res, err)
	}
	for _, p := range pays {
		if got := recv0[p.FixmedinsCode] - e.balance(ledger.HospitalReceivable(p.FixmedinsCode).ID); got != p.Amount {
			t.Fatalf("%s's receivable cleared by %s, want %s", p.FixmedinsCode, got, p.Amount)
		}
	}
	if res, err = e.a.Funds.Confirm(e.checker, strings.NewReader(conf)); err != nil || res.Already != len(pays) || res.Confirmed != 0 {
		t.Fatalf("the confirmation again: %+v %v", res, err)
	}
	e.ledgerOK()

	dash, err := e.a.Funds.Dashboard(e.checker, "370100", 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range dash {
		last, last0 := f.Months[len(f.Months)-1], dash0[i].Months[len(f.Months)-1]
		if f.Account == pool && (last.Income-last0.Income != want310 || last.Balance != f.Balance || f.DaysOfCover == nil) {
			t.Fatalf("dashboard of %s: %+v (before %+v), balance %s", pool, last, last0, f.Balance)
		}
	}
	if _, err := e.a.Funds.Dashboard(yibao.WithPrincipal(ctx, &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "c", Role: yibao.RoleCashier, Institution: "H37010000001"}), "370100", 3); !yibao.IsCode(err, yibao.CodeForbidden) {
		t.Fatalf("a cashier read the fund dashboard: %v", err)
	}
}

// confirmation answers a bank file: every row paid, except the ids in
// failed.
func confirmation(t *testing.T, bankFile []byte, failed map[string]bool) string {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(string(bankFile))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write(funds.ConfirmationFileHeader)
	for _, r := range rows[1:] {
		status := "paid"
		if failed[r[0]] {
			status = "failed"
		}
		w.Write([]string{r[0], r[3], status, "BK-" + r[0]})
	}
	w.Flush()
	return b.String()
}

// TestBadContributionFile: a file with unknown persons, duplicates, bad
// amounts, wrong kinds and missing coverage imports nothing and names
// every bad line.
func TestBadContributionFile(t *testing.T) {
	e := newEnv(t)
	b, err := os.ReadFile("testdata/contributions_bad.csv")
	if err != nil {
		t.Fatal(err)
	}
	var want []struct {
		Line     int    `json:"line"`
		Field    string `json:"field"`
		Contains string `json:"contains"`
	}
	wb, _ := os.ReadFile("testdata/contributions_bad.json")
	if err := json.Unmarshal(wb, &want); err != nil {
		t.Fatal(err)
	}
	pool0 := e.balance(ledger.FundPool("370100", "310").ID)
	_, err = e.a.Funds.PrepareContributions(e.maker, strings.NewReader(strings.ReplaceAll(string(b), "2026-11", e.period)), nil)
	var ye *yibao.Error
	if !errors.As(err, &ye) || ye.Code != yibao.CodeInvalid {
		t.Fatalf("bad file: %v", err)
	}
	if len(ye.Issues) != len(want) {
		t.Fatalf("%d issues, want %d: %+v", len(ye.Issues), len(want), ye.Issues)
	}
	for i, w := range want {
		is := ye.Issues[i]
		if is.Line != w.Line || is.Field != w.Field || !strings.Contains(is.Message, w.Contains) {
			t.Errorf("issue %d: line %d %s %q, want line %d %s ~%q", i, is.Line, is.Field, is.Message, w.Line, w.Field, w.Contains)
		}
	}
	if runs, _ := e.a.Funds.Runs(e.maker, "", 10); len(runs) != 0 || e.balance(ledger.FundPool("370100", "310").ID) != pool0 {
		t.Fatalf("a bad file left %d runs or moved money", len(runs))
	}
	for _, bad := range []string{"", "psn_no,amount\n1,2\n", "psn_no,insutype,period,kind,amount\n"} {
		if _, err := e.a.Funds.PrepareContributions(e.maker, strings.NewReader(bad), nil); err == nil {
			t.Errorf("file %q was taken", bad)
		}
	}
}

// TestInterruptedRuns: a crediting run and a bank confirmation that stop
// midway are resumed and move every amount exactly once.
func TestInterruptedRuns(t *testing.T) {
	e := newEnv(t)
	e.contributions()
	cr, err := e.a.Funds.PrepareCrediting(e.maker, "370100", e.period)
	if err != nil {
		t.Fatal(err)
	}
	lines, _ := e.a.Funds.Lines(e.maker, cr.RunID, 1000)
	before := map[string]money.Fen{}
	for _, l := range lines {
		before[l.Credit] = e.balance(l.Credit)
	}
	crash := true
	e.a.Funds.CrashAfter = func(string, int) bool { return crash }
	if _, err := e.a.Funds.Approve(e.checker, cr.RunID); err == nil {
		t.Fatal("the simulated crash did not stop the run")
	}
	if r, _ := e.a.Funds.Get(e.maker, cr.RunID); r.Status != funds.StatusApproved {
		t.Fatalf("after the crash: %s", r.Status)
	}
	crash = false
	for range 2 { // resume, then approve a finished run again
		if cr, err = e.a.Funds.Approve(e.checker, cr.RunID); err != nil || cr.Status != funds.StatusDone {
			t.Fatalf("resumed: %v %v", cr, err)
		}
	}
	for _, l := range lines {
		if got := e.balance(l.Credit) - before[l.Credit]; got != l.Amount {
			t.Fatalf("%s credited %s, want %s once", l.Credit, got, l.Amount)
		}
	}
	po, err := e.a.Funds.PreparePayout(e.maker, "370100", e.period)
	if err != nil {
		t.Fatal(err)
	}
	if po, err = e.a.Funds.Approve(e.checker, po.RunID); err != nil {
		t.Fatal(err)
	}
	bankFile, _ := e.a.Funds.BankFile(e.checker, po.RunID)
	pays, _ := e.a.Funds.Payouts(e.checker, po.RunID, "")
	recv0 := map[string]money.Fen{}
	for _, p := range pays {
		recv0[p.FixmedinsCode] = e.balance(ledger.HospitalReceivable(p.FixmedinsCode).ID)
	}
	crash = true
	if _, err := e.a.Funds.Confirm(e.checker, strings.NewReader(confirmation(t, bankFile, nil))); err == nil {
		t.Fatal("the simulated crash did not stop the confirmation")
	}
	crash = false
	if _, err := e.a.Funds.Confirm(e.checker, strings.NewReader(confirmation(t, bankFile, nil))); err != nil {
		t.Fatal(err)
	}
	for _, p := range pays {
		if got := recv0[p.FixmedinsCode] - e.balance(ledger.HospitalReceivable(p.FixmedinsCode).ID); got != p.Amount {
			t.Fatalf("%s cleared %s, want %s once", p.FixmedinsCode, got, p.Amount)
		}
	}
	e.ledgerOK()
}

// TestReversalAfterPayoutCarries: a settlement paid out and then reversed
// is taken off the next payout (a negative carry pays nothing); a failed
// payment is owed again.
func TestReversalAfterPayoutCarries(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	po, err := e.a.Funds.PreparePayout(e.maker, "370100", e.period)
	if err != nil {
		t.Fatal(err)
	}
	if po, err = e.a.Funds.Approve(e.checker, po.RunID); err != nil {
		t.Fatal(err)
	}
	pays, _ := e.a.Funds.Payouts(e.checker, po.RunID, "")
	if len(pays) == 0 {
		t.Fatal("nothing paid out")
	}
	h := pays[0].FixmedinsCode
	bankFile, _ := e.a.Funds.BankFile(e.checker, po.RunID)
	if _, err := e.a.Funds.Confirm(e.checker, strings.NewReader(confirmation(t, bankFile, nil))); err != nil {
		t.Fatal(err)
	}
	// Reverse one of the hospital's completed settlements.
	ids, err := e.a.DB.Strings(ctx, `SELECT setl_id FROM settlements WHERE fixmedins_code = ? AND status = 'completed' ORDER BY created_at DESC LIMIT 1`, h)
	if err != nil || len(ids) == 0 {
		t.Fatalf("no settlement to reverse: %v", err)
	}
	st, err := e.a.Settle.Reverse(e.checker, ids[0])
	if err != nil || st.Status != settlement.StatusReversed {
		t.Fatalf("reverse: %v %v", st, err)
	}
	var reversed money.Fen
	for _, l := range st.Legs {
		if strings.HasPrefix(l.Leg, "fund:") || strings.HasPrefix(l.Leg, "acct_") {
			reversed += l.Amount
		}
	}
	next := time.Now().In(yibao.ChinaTime).AddDate(0, 1, 0)
	e.a.Funds.SetClock(func() time.Time { return next })
	nextPeriod := next.Format("2006-01")
	po2, err := e.a.Funds.PreparePayout(e.maker, "370100", nextPeriod)
	if err != nil {
		t.Fatal(err)
	}
	sts, _ := json.Marshal(po2.Summary["statements"])
	var statements []funds.Statement
	json.Unmarshal(sts, &statements)
	var found bool
	for _, s := range statements {
		if s.FixmedinsCode == h {
			found = true
			// Owed: what was withheld last month, less the reversal.
			prev := pays[0].Statement
			if s.Settled != 0 || s.Reversed != 0 || s.Owed != prev.Owed-prev.Net-reversed || s.CarriedIn != s.Owed ||
				s.Net != max(0, s.Owed-s.DepositHeld-s.ReviewHeld) {
				t.Fatalf("next month's statement: %+v (last month %+v, reversed %s)", s, prev, reversed)
			}
		}
	}
	if !found {
		t.Fatalf("no statement for %s next month", h)
	}
}

// TestCorrection: a manual correction is a new mirrored transfer with a
// reason, prepared by one administrator and approved by another.
func TestCorrection(t *testing.T) {
	e := newEnv(t)
	e.contributions()
	cr, err := e.a.Funds.PrepareCrediting(e.maker, "370100", e.period)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Funds.Approve(e.checker, cr.RunID); err != nil {
		t.Fatal(err)
	}
	lines, _ := e.a.Funds.Lines(e.maker, cr.RunID, 1)
	l := lines[0]
	tid := cr.RunID + ":1"
	if _, err := e.a.Funds.PrepareCorrection(e.maker, funds.CorrectionRequest{TransferID: tid}); !yibao.IsCode(err, yibao.CodeInvalid) {
		t.Fatalf("a correction without a reason: %v", err)
	}
	if _, err := e.a.Funds.PrepareCorrection(e.maker, funds.CorrectionRequest{TransferID: tid, Reason: "wrong", Amount: l.Amount + 1}); !yibao.IsCode(err, yibao.CodeInvalid) {
		t.Fatalf("a correction above the transfer: %v", err)
	}
	bal := e.balance(l.Credit)
	run, err := e.a.Funds.PrepareCorrection(e.maker, funds.CorrectionRequest{TransferID: tid, Reason: "credited the wrong person", Amount: l.Amount})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Funds.Approve(e.maker, run.RunID); !yibao.IsCode(err, yibao.CodeForbidden) {
		t.Fatalf("self-approved correction: %v", err)
	}
	if run, err = e.a.Funds.Approve(e.checker, run.RunID); err != nil || run.Status != funds.StatusDone {
		t.Fatalf("correction: %v %v", run, err)
	}
	if got := e.balance(l.Credit); got != bal-l.Amount {
		t.Fatalf("after the correction: %s, want %s", got, bal-l.Amount)
	}
	orig, err := e.a.Ledger.GetTransfer(context.Background(), tid)
	if err != nil || orig.Amount != l.Amount {
		t.Fatalf("the original transfer changed: %v %v", orig, err)
	}
	e.ledgerOK()
}
