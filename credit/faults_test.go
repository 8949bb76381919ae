package credit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"yibao"
	"yibao/credit"
	"yibao/credit/bankapi"
	"yibao/gmcrypto"
	"yibao/ledger"
	"yibao/money"
	"yibao/pay"
	"yibao/sim/banksim"
)

// TestApplication: consent is required; a declined person gets the
// bank's reason; a bank whose answer is lost after approving leaves the
// agreement applying until the recovery asks again (once approved, never
// twice); a second live agreement with the same bank is refused.
func TestApplication(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	psn := e.people[6]
	cases := []struct {
		name string
		req  credit.ApplyRequest
		code yibao.Code
	}{
		{"no consent", credit.ApplyRequest{BankCode: banksim.DefaultBankCode, ConsentVersion: credit.ConsentVersion}, yibao.CodeInvalid},
		{"old consent text", credit.ApplyRequest{BankCode: banksim.DefaultBankCode, ConsentVersion: "credit-consent-2020-01", Accept: true}, yibao.CodeInvalid},
		{"unknown bank", credit.ApplyRequest{BankCode: "nobank", ConsentVersion: credit.ConsentVersion, Accept: true}, yibao.CodeNotFound},
		{"bad scene", credit.ApplyRequest{BankCode: banksim.DefaultBankCode, ConsentVersion: credit.ConsentVersion, Accept: true, Scene: "dental"}, yibao.CodeInvalid},
		{"huge limit", credit.ApplyRequest{BankCode: banksim.DefaultBankCode, ConsentVersion: credit.ConsentVersion, Accept: true, RequestedLimit: money.Yuan(1e6)}, yibao.CodeInvalid},
	}
	for _, c := range cases {
		if _, err := e.a.Credit.Apply(ctx, psn, c.req); !yibao.IsCode(err, c.code) {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
	}
	if list, _ := e.a.Credit.Agreements(ctx, psn); len(list) != 0 {
		t.Fatalf("refused applications left %d agreements", len(list))
	}
	before := len(e.a.Bank.Sim.State().Applications)
	// Declined: the last demo person has a low simulated score.
	last := e.d.Persons[len(e.d.Persons)-1].PsnNo
	ag, err := e.a.Credit.Apply(ctx, last, credit.ApplyRequest{BankCode: banksim.DefaultBankCode, ConsentVersion: credit.ConsentVersion, Accept: true})
	if err != nil || ag.Status != credit.StatusDeclined || !strings.Contains(ag.Reason, "score") {
		t.Fatalf("declined: %+v %v", ag, err)
	}
	// The bank approves, then its answer is lost.
	e.a.Credit.Tune(func(c *credit.Config) { c.BankTimeout = 300 * time.Millisecond })
	e.a.Bank.Sim.SetFaults(banksim.Faults{TimeoutAfterApproveNext: 1})
	ag, err = e.a.Credit.Apply(ctx, psn, credit.ApplyRequest{BankCode: banksim.DefaultBankCode, ConsentVersion: credit.ConsentVersion, Accept: true, RequestedLimit: money.Yuan(1000)})
	if err != nil || ag.Status != credit.StatusApplying || ag.Available != 0 {
		t.Fatalf("after the lost answer: %+v %v", ag, err)
	}
	if _, err := e.a.Credit.Apply(ctx, psn, credit.ApplyRequest{BankCode: banksim.DefaultBankCode, ConsentVersion: credit.ConsentVersion, Accept: true}); !yibao.IsCode(err, yibao.CodeConflict) {
		t.Fatalf("a second application while one is open: %v", err)
	}
	time.Sleep(2100 * time.Millisecond) // the recovery looks at applications at least 2 s old
	for range 2 {
		if _, err := e.a.Credit.RecoverApplications(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got := e.checkLine(psn, ag.AgreementNo)
	if got.Status != credit.StatusActive || got.Limit != money.Yuan(1000) || got.Available != money.Yuan(1000) {
		t.Fatalf("after recovery: %s, limit %s, available %s", got.Status, got.Limit, got.Available)
	}
	if n := len(e.a.Bank.Sim.State().Applications) - before; n != 2 {
		t.Fatalf("the bank decided %d applications, want 2 (one declined, one approved once)", n)
	}
}

type callbackCase struct {
	Name string `json:"name"`
	// Setup: the patient owes Owe yuan on a fresh line.
	Owe string `json:"owe"`
	// Action: a bank action through the simulator.
	Action     string `json:"action"` // repay | limit | suspend | reinstate | close
	Amount     string `json:"amount,omitempty"`
	Duplicates int    `json:"duplicates,omitempty"`
	// Expectations.
	WantStatus    string `json:"want_status"`
	WantOwed      string `json:"want_owed"`
	WantLimit     string `json:"want_limit"`
	WantExcess    string `json:"want_excess,omitempty"`
	WantCallbacks int    `json:"want_callbacks"` // rows in credit_callbacks for the agreement's events
}

// TestBankCallbacks runs testdata/callbacks.json: each bank-initiated
// event (a counter repayment, larger than the debt, sent several times; a
// limit change; a suspension …) is applied once, and the line keeps its
// invariant.
func TestBankCallbacks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, c := range load[[]callbackCase](t, "testdata/callbacks.json") {
		t.Run(c.Name, func(t *testing.T) {
			e.t = t
			psn, ag := e.fresh()
			if c.Owe != "" {
				o, err := e.pay(e.visit(psn, "general_outpatient", money.MustParseYuan(c.Owe)))
				if err != nil || o.Status != pay.StatusPaid {
					t.Fatalf("setup payment: %v %v", o, err)
				}
			}
			e.a.Bank.Sim.SetFaults(banksim.Faults{DuplicateCallbacks: c.Duplicates})
			defer e.a.Bank.Sim.SetFaults(banksim.Faults{})
			var err error
			switch c.Action {
			case "repay":
				_, err = e.a.Bank.Sim.RepayAtCounter(ctx, ag.AgreementNo, int64(money.MustParseYuan(c.Amount)))
			case "limit":
				err = e.a.Bank.Sim.ChangeLimit(ctx, ag.AgreementNo, int64(money.MustParseYuan(c.Amount)))
			case "suspend":
				err = e.a.Bank.Sim.Suspend(ctx, ag.AgreementNo, "risk review")
			case "suspend+reinstate":
				if err = e.a.Bank.Sim.Suspend(ctx, ag.AgreementNo, "risk review"); err == nil {
					err = e.a.Bank.Sim.Reinstate(ctx, ag.AgreementNo)
				}
			case "suspend+repay":
				if err = e.a.Bank.Sim.Suspend(ctx, ag.AgreementNo, "risk review"); err == nil {
					_, err = e.a.Bank.Sim.RepayAtCounter(ctx, ag.AgreementNo, int64(money.MustParseYuan(c.Amount)))
				}
			case "close":
				err = e.a.Bank.Sim.CloseAgreement(ctx, ag.AgreementNo, "customer request")
			}
			if err != nil {
				t.Fatal(err)
			}
			got := e.checkLine(psn, ag.AgreementNo)
			if got.Status != c.WantStatus || got.Outstanding != money.MustParseYuan(c.WantOwed) || got.Limit != money.MustParseYuan(c.WantLimit) {
				t.Fatalf("%s: owed %s, limit %s; want %s, %s, %s", got.Status, got.Outstanding, got.Limit, c.WantStatus, c.WantOwed, c.WantLimit)
			}
			var excess int64
			var n int
			e.a.DB.QueryRow(ctx, `SELECT COALESCE(SUM(excess), 0) FROM credit_repayments WHERE agreement_no = ?`, ag.AgreementNo).Scan(&excess)
			if c.WantExcess != "" && money.Fen(excess) != money.MustParseYuan(c.WantExcess) {
				t.Fatalf("excess %s, want %s", money.Fen(excess), c.WantExcess)
			}
			var events []string
			for _, cb := range e.a.Bank.Sim.State().Callbacks {
				if cb.Callback.AgreementNo == ag.AgreementNo {
					events = append(events, cb.Callback.EventID)
					if c.Duplicates > 0 && cb.Duplicates != c.Duplicates {
						t.Fatalf("the bank sent %d duplicates, want %d", cb.Duplicates, c.Duplicates)
					}
				}
			}
			for _, id := range events {
				var k int
				e.a.DB.QueryRow(ctx, `SELECT COUNT(*) FROM credit_callbacks WHERE event_id = ?`, id).Scan(&k)
				n += k
			}
			if n != c.WantCallbacks {
				t.Fatalf("%d callbacks recorded, want %d", n, c.WantCallbacks)
			}
		})
	}
}

// TestForgedCallbacks: a callback signed with another key, a replayed
// one and one with an altered body are refused and change nothing.
func TestForgedCallbacks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	psn, ag := e.fresh()
	if _, err := e.pay(e.visit(psn, "general_outpatient", money.Yuan(100))); err != nil {
		t.Fatal(err)
	}
	url := e.srv.URL + "/api/v1/credit/notify/" + banksim.DefaultBankCode
	cb := bankapi.Callback{Type: "repayment", EventID: "EV-forged-1", AgreementNo: ag.AgreementNo, BankAgreementID: ag.BankAgreementID,
		Repayment: &bankapi.Repayment{RepayID: "EV-forged-1", AgreementNo: ag.AgreementNo, BankAgreementID: ag.BankAgreementID, Channel: "counter",
			AmountFen: 10000, PaidAt: time.Now().UTC()}, At: time.Now().UTC()}
	other, _ := gmcrypto.GenerateKey(nil)
	if err := bankapi.SendCallback(ctx, http.DefaultClient, url, cb, banksim.DefaultBankKeyID, other); err == nil {
		t.Fatal("a callback signed with another key was taken")
	}
	// Altered body and replayed nonce: sign one request, send it changed, then twice.
	keys, err := banksim.LoadKeys(e.a.Config.BankKeys)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(cb)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	if err := bankapi.SignRequest(req, body, banksim.DefaultBankKeyID, keys.Bank); err != nil {
		t.Fatal(err)
	}
	altered := bytes.Replace(body, []byte(`10000`), []byte(`99999`), 1)
	send := func(b []byte) int {
		r, _ := http.NewRequest("POST", url, bytes.NewReader(b))
		r.Header = req.Header.Clone()
		r.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := send(altered); st != http.StatusUnauthorized {
		t.Fatalf("altered body: HTTP %d", st)
	}
	if st := send(body); st != http.StatusOK {
		t.Fatalf("the genuine callback: HTTP %d", st)
	}
	if st := send(body); st == http.StatusOK {
		t.Fatalf("the replayed callback: HTTP %d", st)
	}
	got := e.checkLine(psn, ag.AgreementNo)
	if got.Outstanding != 0 {
		t.Fatalf("owed %s after one genuine ¥100 repayment", got.Outstanding)
	}
}

// TestOverdue: a statement past its due date makes the agreement
// suspended with the line emptied and the bank told; a repayment while
// suspended lowers the debt but does not refill the line; the bank's
// reinstatement makes the rest of the limit usable again.
func TestOverdue(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	psn, ag := e.fresh()
	o, err := e.pay(e.visit(psn, "general_outpatient", money.Yuan(800)))
	if err != nil || o.Status != pay.StatusPaid {
		t.Fatalf("%v %v", o, err)
	}
	now := time.Now()
	for _, step := range []struct {
		days      int
		want      string
		reminders int
	}{
		{9, credit.StatusActive, 1},     // due tomorrow: reminded
		{10, credit.StatusActive, 2},    // due today: reminded again
		{10, credit.StatusActive, 2},    // the same day again: no new reminder
		{11, credit.StatusSuspended, 2}, // overdue
		{12, credit.StatusSuspended, 2}, // still overdue; suspended once
	} {
		at := now.AddDate(0, 0, step.days)
		e.a.Credit.SetClock(func() time.Time { return at })
		if _, err := e.a.Credit.Cycle(ctx); err != nil {
			t.Fatal(err)
		}
		got := e.checkLine(psn, ag.AgreementNo)
		ns, _ := e.a.Credit.Notices(ctx, psn)
		reminders := 0
		for _, n := range ns {
			if n.Kind == "reminder" || n.Kind == "due" {
				reminders++
			}
		}
		if got.Status != step.want || reminders != step.reminders {
			t.Fatalf("day +%d: %s with %d reminders, want %s and %d", step.days, got.Status, reminders, step.want, step.reminders)
		}
	}
	var reports []bankapi.StatusReport
	for _, r := range e.a.Bank.Sim.State().Reports {
		if r.AgreementNo == ag.AgreementNo {
			reports = append(reports, r)
		}
	}
	if len(reports) != 1 || reports[0].Status != "overdue" || reports[0].OverdueFen != 80000 {
		t.Fatalf("the bank was told %+v", reports)
	}
	if _, err := e.pay(e.visit(psn, "general_outpatient", money.Yuan(10))); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("paying on a suspended line: %v", err)
	}
	if _, err := e.a.Bank.Sim.RepayAtCounter(ctx, ag.AgreementNo, 30000); err != nil {
		t.Fatal(err)
	}
	got := e.checkLine(psn, ag.AgreementNo)
	if got.Outstanding != money.Yuan(500) || got.Available != 0 {
		t.Fatalf("suspended after repaying ¥300: owed %s, available %s", got.Outstanding, got.Available)
	}
	if err := e.a.Bank.Sim.Reinstate(ctx, ag.AgreementNo); err != nil {
		t.Fatal(err)
	}
	got = e.checkLine(psn, ag.AgreementNo)
	if got.Status != credit.StatusActive || got.Available != got.Limit-money.Yuan(500) || got.OverdueSince != nil {
		t.Fatalf("reinstated: %s, available %s of %s", got.Status, got.Available, got.Limit)
	}
}

// TestSettlementFileDifferences: the bank's reply leaves out one of our
// rows, adds a made-up one and changes an amount; the report lists each,
// and the hospitals' payouts show the difference.
func TestSettlementFileDifferences(t *testing.T) {
	e := newEnv(t)
	psn, _ := e.fresh()
	var draws []string
	for _, amt := range []money.Fen{money.Yuan(120), money.Yuan(130), money.Yuan(140)} {
		o, err := e.pay(e.visit(psn, "general_outpatient", amt))
		if err != nil || o.Status != pay.StatusPaid {
			t.Fatalf("%v %v", o, err)
		}
		draws = append(draws, o.OutTradeNo)
	}
	e.a.Bank.Sim.SetFaults(banksim.Faults{DayDrop: []string{draws[0]}, DayExtra: 1, DayAmountDelta: map[string]int64{draws[1]: -100}})
	rep, err := e.a.Credit.SettleDay(e.admin, banksim.DefaultBankCode, yibao.DateOf(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != "differences" || len(rep.Missing) != 1 || rep.Missing[0].ID != draws[0] || len(rep.Extra) != 1 || len(rep.Mismatched) != 1 ||
		rep.Mismatched[0].Ours.ID != draws[1] || rep.Matched != 1 {
		t.Fatalf("report: %+v", rep)
	}
	var diff money.Fen
	for _, h := range rep.Hospitals {
		diff += h.Difference
	}
	// Paid: 130 − 1 + 140 + 12.34 (the made-up row); owed 390.
	if want := money.Fen(-12000 - 100 + 1234); diff != want {
		t.Fatalf("payout difference %s, want %s", diff, want)
	}
	if _, err := e.a.Credit.SettleDay(e.cashier, banksim.DefaultBankCode, yibao.DateOf(time.Now())); !yibao.IsCode(err, yibao.CodeForbidden) {
		t.Fatalf("a cashier sent the settlement file: %v", err)
	}
	_ = ledger.CNY
}
