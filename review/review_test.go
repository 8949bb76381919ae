package review_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"yibao"
	"yibao/app"
	"yibao/app/apptest"
	"yibao/demo"
	"yibao/money"
	"yibao/review"
	"yibao/settlement"
)

func newApp(t *testing.T) (*app.App, *demo.Dataset) { return apptest.Open(t, nil) }

// TestReviewInSettlement runs the demo's two review cases through real
// pre-settlements, table-driven: a restricted drug without its diagnosis
// is paid in full by the patient (and with the diagnosis is not), and a
// duplicate charge is refused.
func TestReviewInSettlement(t *testing.T) {
	a, d := newApp(t)
	cashier := yibao.WithPrincipal(context.Background(), &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "c1", Role: yibao.RoleCashier, Institution: "H37010000001"})
	var psn string
	for _, c := range d.Coverages {
		if c.Insutype == "310" && c.EndDate == "" && c.Admdvs == "370100" {
			psn = c.PsnNo
		}
	}
	cases := []struct {
		name, visitType, diagnosis string
		lines                      []settlement.FeeLineInput
		wantAction                 string // the hit on line 1 ("" none)
		wantBlocked                bool
	}{
		{"restricted drug without its diagnosis: self-pay", "general_outpatient", "J06.900",
			[]settlement.FeeLineInput{{FeedetlSn: "1", CatalogCode: app.DemoRestrictedDrug, UnitPrice: 30000, Quantity: money.MustRatio(1, 1)}}, "self_pay", false},
		{"restricted drug with type 2 diabetes: paid as usual", "general_outpatient", "E11.900",
			[]settlement.FeeLineInput{{FeedetlSn: "1", CatalogCode: app.DemoRestrictedDrug, UnitPrice: 30000, Quantity: money.MustRatio(1, 1)}}, "", false},
		{"emergency monitoring and consultation the same day: blocked", "emergency", "R10.400",
			[]settlement.FeeLineInput{{FeedetlSn: "1", CatalogCode: "001103000010000", UnitPrice: 12000, Quantity: money.MustRatio(1, 1)},
				{FeedetlSn: "2", CatalogCode: "001102000030000", UnitPrice: 1500, Quantity: money.MustRatio(1, 1)}}, "", true},
		{"consultation alone: fine", "emergency", "R10.400",
			[]settlement.FeeLineInput{{FeedetlSn: "1", CatalogCode: "001102000030000", UnitPrice: 1500, Quantity: money.MustRatio(1, 1)}}, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := a.Settle.OpenVisit(cashier, settlement.VisitRequest{PsnNo: psn, FixmedinsCode: "H37010000001", Type: c.visitType, DiseCodg: c.diagnosis})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Settle.AddFeeLines(cashier, v.MdtrtID, c.lines); err != nil {
				t.Fatal(err)
			}
			pv, err := a.Settle.PreSettle(cashier, v.MdtrtID, settlement.SettleRequest{})
			if c.wantBlocked {
				if !yibao.IsCode(err, yibao.CodePrecondition) || !strings.Contains(err.Error(), "review_blocked: 2:") {
					t.Fatalf("want the second line blocked, got %v", err)
				}
				if _, err := a.Settle.Settle(cashier, v.MdtrtID, settlement.SettleRequest{}); !yibao.IsCode(err, yibao.CodePrecondition) {
					t.Fatalf("settling a blocked bill: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got string
			for _, h := range pv.Review {
				if h.Sn == "1" && h.Action != "warn" {
					got = h.Action
				}
			}
			if got != c.wantAction {
				t.Fatalf("line 1: action %q, want %q; hits %+v", got, c.wantAction, pv.Review)
			}
			l := pv.Result.Lines[0]
			selfPaid := l.FulamtOwnpayAmt == l.Amount
			if selfPaid != (c.wantAction == "self_pay") {
				t.Fatalf("line 1 full self-pay %s of %s (want self-paid: %v)", l.FulamtOwnpayAmt, l.Amount, c.wantAction == "self_pay")
			}
		})
	}
}

// TestReviewQueue: the demo's person at three hospitals in one day is in
// the queue once; the bureau confirms it, once; cashiers see nothing.
func TestReviewQueue(t *testing.T) {
	a, _ := newApp(t)
	admin := yibao.WithPrincipal(context.Background(), yibao.System("test"))
	open, err := a.Review.Alerts(admin, review.AlertOpen, 50)
	if err != nil {
		t.Fatal(err)
	}
	var alert *review.Alert
	for i := range open {
		if open[i].Kind == review.AlertMultiInstitution {
			alert = &open[i]
		}
	}
	if alert == nil {
		t.Fatalf("no multi-institution alert: %+v", open)
	}
	if n, err := a.Review.Scan(admin, alert.Day); err != nil || n != 0 {
		t.Fatalf("scanning the day again raised %d (%v)", n, err)
	}
	if err := a.Review.Decide(admin, alert.ID, review.AlertConfirmed, "seen at three hospitals"); err != nil {
		t.Fatal(err)
	}
	if err := a.Review.Decide(admin, alert.ID, review.AlertDismissed, ""); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("deciding twice: %v", err)
	}
	cashier := yibao.WithPrincipal(context.Background(), &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "c1", Role: yibao.RoleCashier, Institution: "H37010000001"})
	if _, err := a.Review.Alerts(cashier, "", 10); !yibao.IsCode(err, yibao.CodeForbidden) {
		t.Fatalf("a cashier reads the queue: %v", err)
	}
	if _, err := a.Review.AddRule(admin, review.Rule{Kind: "sex", Code: "X", Value: "男"}); !yibao.IsCode(err, yibao.CodeInvalid) {
		t.Fatalf("a bureau rule of a library kind: %v", err)
	}
}

// TestRecoveryAndReport: a recovery proposed by one administrator is
// refused to the same administrator, approved by a second, and moves the
// money from the hospital's receivable to the fund exactly once; the
// month's report counts the settled bill's findings.
func TestRecoveryAndReport(t *testing.T) {
	a, d := newApp(t)
	ctx := context.Background()
	first := yibao.WithPrincipal(ctx, &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "admin", Role: yibao.RoleAdmin})
	second := yibao.WithPrincipal(ctx, &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "auditor", Role: yibao.RoleAdmin})
	open, _ := a.Review.Alerts(first, review.AlertOpen, 10)
	if len(open) == 0 {
		t.Fatal("no alert")
	}
	if _, err := a.Review.ProposeRecovery(first, open[0].ID, "H37010000001", "fund:370100:310", 10000, "billed at three hospitals"); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("a recovery for an open alert: %v", err)
	}
	if err := a.Review.Decide(first, open[0].ID, review.AlertConfirmed, ""); err != nil {
		t.Fatal(err)
	}
	rc, err := a.Review.ProposeRecovery(first, open[0].ID, "H37010000001", "fund:370100:310", 10000, "billed at three hospitals")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Review.DecideRecovery(first, rc.ID, true); !yibao.IsCode(err, yibao.CodeForbidden) {
		t.Fatalf("the proposer approves: %v", err)
	}
	bal := func(id string) money.Fen {
		b, err := a.Ledger.Balance(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return b.Posted
	}
	recv, fund := bal("recv:H37010000001"), bal("fund:370100:310")
	if rc, err = a.Review.DecideRecovery(second, rc.ID, true); err != nil || rc.Status != review.RecoveryApproved {
		t.Fatalf("approve: %v %+v", err, rc)
	}
	if _, err := a.Review.DecideRecovery(second, rc.ID, true); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("approving twice: %v", err)
	}
	if got := recv - bal("recv:H37010000001"); got != 10000 {
		t.Fatalf("the receivable moved %s", got)
	}
	if got := bal("fund:370100:310") - fund; got != 10000 {
		t.Fatalf("the fund got %s", got)
	}
	// The report: a bill whose restricted drug went to self-pay counts.
	cashier := yibao.WithPrincipal(ctx, &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "c1", Role: yibao.RoleCashier, Institution: "H37010000001"})
	var psn string
	for _, c := range d.Coverages {
		if c.Insutype == "310" && c.EndDate == "" && c.Admdvs == "370100" {
			psn = c.PsnNo
		}
	}
	v, _ := a.Settle.OpenVisit(cashier, settlement.VisitRequest{PsnNo: psn, FixmedinsCode: "H37010000001", Type: "general_outpatient"})
	a.Settle.AddFeeLines(cashier, v.MdtrtID, []settlement.FeeLineInput{{FeedetlSn: "1", CatalogCode: app.DemoRestrictedDrug, UnitPrice: 30000, Quantity: money.MustRatio(1, 1)}})
	if _, err := a.Settle.Settle(cashier, v.MdtrtID, settlement.SettleRequest{}); err != nil {
		t.Fatal(err)
	}
	month := yibao.DateOf(time.Now())[:7]
	rep, err := a.Review.MonthlyReport(cashier, "H37010000001", month)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rep.Rows {
		if r.Kind == "diagnosis" && r.Action == "self_pay" && r.Hits >= 1 && r.Affected >= 30000 {
			found = true
		}
	}
	if !found || rep.Trend[month] < 1 || len(rep.Trend) != 6 {
		t.Fatalf("report: %+v", rep)
	}
	if _, err := a.Review.MonthlyReport(cashier, "H37010000002", month); !yibao.IsCode(err, yibao.CodeForbidden) {
		t.Fatalf("another hospital's report: %v", err)
	}
}

// TestRegionAdoptsAKind: a child-only item billed for an adult only warns
// until the bureau switches age restrictions to self-pay; then the line
// is the patient's.
func TestRegionAdoptsAKind(t *testing.T) {
	a, d := newApp(t)
	ctx := context.Background()
	admin := yibao.WithPrincipal(ctx, yibao.System("test"))
	cashier := yibao.WithPrincipal(ctx, &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "c1", Role: yibao.RoleCashier, Institution: "H37010000001"})
	var psn string
	for _, c := range d.Coverages {
		if c.Insutype == "310" && c.EndDate == "" && c.Admdvs == "370100" {
			psn = c.PsnNo // employees are adults
		}
	}
	bill := func() (string, bool) {
		v, err := a.Settle.OpenVisit(cashier, settlement.VisitRequest{PsnNo: psn, FixmedinsCode: "H37010000001", Type: "general_outpatient"})
		if err != nil {
			t.Fatal(err)
		}
		// 儿童前牙树脂冠修复: the NHSA item rules limit it to children.
		if _, err := a.Settle.AddFeeLines(cashier, v.MdtrtID, []settlement.FeeLineInput{{FeedetlSn: "1", CatalogCode: "003105120040000", UnitPrice: 20000, Quantity: money.MustRatio(1, 1)}}); err != nil {
			t.Fatal(err)
		}
		pv, err := a.Settle.PreSettle(cashier, v.MdtrtID, settlement.SettleRequest{})
		if err != nil {
			t.Fatal(err)
		}
		action := ""
		for _, h := range pv.Review {
			if h.Kind == "age" {
				action = h.Action
			}
		}
		return action, pv.Result.Lines[0].FulamtOwnpayAmt == pv.Result.Lines[0].Amount
	}
	if action, selfPaid := bill(); action != "warn" || selfPaid {
		t.Fatalf("before: age finding %q, self-paid %v", action, selfPaid)
	}
	if err := a.Review.SetAction(cashier, "age", "self_pay"); !yibao.IsCode(err, yibao.CodeForbidden) {
		t.Fatalf("a cashier sets an action: %v", err)
	}
	if err := a.Review.SetAction(admin, "colour", "self_pay"); !yibao.IsCode(err, yibao.CodeInvalid) {
		t.Fatalf("an unknown kind: %v", err)
	}
	if err := a.Review.SetAction(admin, "age", "self_pay"); err != nil {
		t.Fatal(err)
	}
	if action, selfPaid := bill(); action != "self_pay" || !selfPaid {
		t.Fatalf("after: age finding %q, self-paid %v", action, selfPaid)
	}
	acts, _ := a.Review.Actions(admin)
	if acts["age"] != "self_pay" || acts["duplicate"] != "block" {
		t.Fatalf("actions: %v", acts)
	}
}
