package settlement_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"yibao"
	"yibao/money"
	"yibao/policy"
	"yibao/settlement"
)

func TestPendingCompletesOnceOrVoidsOnce(t *testing.T) {
	w := newWorld(t)
	start := w.snapshot()
	v := w.visit(w.h1, Active, H1, policy.GeneralOutpatient, "DRUG-A 1000.00 1", "SVC-C 200.00 1")
	st, err := w.svc.Settle(w.h1, v.MdtrtID, settlement.SettleRequest{PayMode: settlement.PayLater})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != settlement.StatusPending || st.ExpiresAt == nil {
		t.Fatalf("status %s expires %v", st.Status, st.ExpiresAt)
	}
	// Reserved: the fund's and the account's available balances drop, posted ones do not.
	if got := w.available("acct:" + Active); got != money.Yuan(2000)-st.AcctPay {
		t.Fatalf("account available %s", got)
	}
	if got := w.balance("acct:" + Active); got != money.Yuan(2000) {
		t.Fatalf("account posted %s", got)
	}
	// A second settlement of the same visit is refused while pending.
	if _, err := w.svc.Settle(w.h1, v.MdtrtID, settlement.SettleRequest{}); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("second settle: %v", err)
	}
	done, err := w.svc.Complete(w.h1, st.SetlID, "wechat")
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != settlement.StatusCompleted || done.Channel != "wechat" {
		t.Fatalf("%+v", done)
	}
	again, err := w.svc.Complete(w.h1, st.SetlID, "wechat")
	if err != nil || again.Status != settlement.StatusCompleted {
		t.Fatalf("complete twice: %v", err)
	}
	if _, err := w.svc.Complete(w.h1, st.SetlID, "alipay"); !yibao.IsCode(err, yibao.CodeConflict) {
		t.Fatalf("complete through another channel: %v", err)
	}
	if _, err := w.svc.Void(w.h1, st.SetlID); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("void after complete: %v", err)
	}
	if got := w.balance("acct:" + Active); got != money.Yuan(2000)-st.AcctPay {
		t.Fatalf("account posted after completion %s", got)
	}
	if got := w.balance("recv:" + H1); got != st.Result.SetlInfo.MedfeeSumamt {
		t.Fatalf("receivable %s, want the whole bill %s (funds, account and the wallet's part)", got, st.Result.SetlInfo.MedfeeSumamt)
	}
	if got := w.balance("clear:wechat"); got != -st.PsnCashPay {
		t.Fatalf("wechat clearing %s", got)
	}
	w.checkLedger()

	// Reverse it: everything returns, wallet refunded.
	rev, err := w.svc.Reverse(w.h1, st.SetlID)
	if err != nil || rev.Status != settlement.StatusReversed {
		t.Fatalf("reverse: %v", err)
	}
	if _, err := w.svc.Reverse(w.h1, st.SetlID); err != nil {
		t.Fatalf("reverse twice: %v", err)
	}
	w.assertRestored(start, "clear:wechat", "recv:"+H1)
	w.checkLedger()

	// Settle again, pending, and void: nothing remains reserved.
	st2, err := w.svc.Settle(w.h1, v.MdtrtID, settlement.SettleRequest{PayMode: settlement.PayLater})
	if err != nil {
		t.Fatal(err)
	}
	if st2.Result.SetlInfo != st.Result.SetlInfo {
		t.Fatalf("re-settlement after reversal differs:\n%+v\n%+v", st2.Result.SetlInfo, st.Result.SetlInfo)
	}
	vd, err := w.svc.Void(w.h1, st2.SetlID)
	if err != nil || vd.Status != settlement.StatusVoided {
		t.Fatalf("void: %v", err)
	}
	if _, err := w.svc.Complete(w.h1, st2.SetlID, "wechat"); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("complete after void: %v", err)
	}
	w.assertRestored(start, "clear:wechat", "recv:"+H1)

	// Settle pending once more and let it expire.
	st3, err := w.svc.Settle(w.h1, v.MdtrtID, settlement.SettleRequest{PayMode: settlement.PayLater})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := w.svc.ExpirePending(context.Background()); n != 0 {
		t.Fatalf("expired %d before the deadline", n)
	}
	w.now = w.now.Add(16 * time.Minute)
	if n, err := w.svc.ExpirePending(context.Background()); n != 1 || err != nil {
		t.Fatalf("expired %d, %v", n, err)
	}
	got, err := w.svc.GetSettlement(w.h1, st3.SetlID)
	if err != nil || got.Status != settlement.StatusVoided {
		t.Fatalf("after expiry: %v %v", got.Status, err)
	}
	w.assertRestored(start, "clear:wechat", "recv:"+H1)
	w.checkLedger()
}

// assertRestored compares every balance and accumulator with an earlier
// snapshot, except the accounts named (which carry a completed round trip
// in their totals but must be back to the same balance anyway).
func (w *world) assertRestored(before map[string]string, _ ...string) {
	w.t.Helper()
	after := w.snapshot()
	for k, v := range before {
		if after[k] != v {
			w.t.Errorf("%s: %s, was %s", k, after[k], v)
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok && v != "0 pending 0" {
			w.t.Errorf("%s: new state %s", k, v)
		}
	}
}

// TestSettleThenReverseRestoresEverything is a property test: random
// bills for random persons, settled in random modes, then reversed (or
// voided) in random order, leave every balance and accumulator as it was.
func TestSettleThenReverseRestoresEverything(t *testing.T) {
	w := newWorld(t)
	start := w.snapshot()
	r := rand.New(rand.NewPCG(7, 11))
	codes := []string{"DRUG-A", "DRUG-B", "DRUG-B-CAP", "SVC-C"}
	type done struct {
		ctx context.Context
		st  *settlement.Settlement
	}
	var settled []done
	for i := range 25 {
		psn := []string{Active, Retired, Resident, Poor, Broke}[r.IntN(5)]
		code, ctx := H1, w.h1
		if r.IntN(2) == 0 {
			code, ctx = H2, w.h2
		}
		typ := []string{policy.GeneralOutpatient, policy.Emergency, policy.Inpatient}[r.IntN(3)]
		var lines []string
		for range 1 + r.IntN(6) {
			lines = append(lines, fmt.Sprintf("%s %d.%02d %d", codes[r.IntN(4)], 1+r.IntN(3000), r.IntN(100), 1+r.IntN(3)))
		}
		v := w.visit(ctx, psn, code, typ, lines...)
		if typ == policy.Inpatient {
			if _, err := w.svc.Discharge(ctx, v.MdtrtID, ""); err != nil {
				t.Fatal(err)
			}
		}
		mode := []string{settlement.PayCash, settlement.PayLater}[r.IntN(2)]
		st, err := w.svc.Settle(ctx, v.MdtrtID, settlement.SettleRequest{PayMode: mode})
		if err != nil {
			t.Fatalf("bill %d: %v", i, err)
		}
		if mode == settlement.PayLater && r.IntN(2) == 0 {
			if st, err = w.svc.Complete(ctx, st.SetlID, "alipay"); err != nil {
				t.Fatal(err)
			}
		}
		si := st.Result.SetlInfo
		if si.FundPaySumamt+si.AcctPay+si.PsnCashPay != si.MedfeeSumamt || si.FundPaySumamt < 0 || si.AcctPay < 0 || si.PsnCashPay < 0 {
			t.Fatalf("bill %d legs: %+v", i, si)
		}
		settled = append(settled, done{ctx, st})
	}
	w.checkLedger()
	r.Shuffle(len(settled), func(i, j int) { settled[i], settled[j] = settled[j], settled[i] })
	for _, d := range settled {
		var err error
		if d.st.Status == settlement.StatusPending {
			_, err = w.svc.Void(d.ctx, d.st.SetlID)
		} else {
			_, err = w.svc.Reverse(d.ctx, d.st.SetlID)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	w.assertRestored(start)
	w.checkLedger()
}

// TestConcurrentSettlementsNeverDoubleUseTheDeductible: many outpatient
// visits of one person settle at once. The yearly deductible (700) and
// the fund cap (4,000) must each be consumed exactly once in total, as if
// the settlements had run one after another.
func TestConcurrentSettlementsNeverDoubleUseTheDeductible(t *testing.T) {
	w := newWorld(t)
	const n = 12
	var visits []*settlement.Visit
	for range n {
		visits = append(visits, w.visit(w.h1, Retired, H1, policy.GeneralOutpatient, "DRUG-A 1000.00 1"))
	}
	// A second service instance on the same database stands for another
	// node: its settlements are not serialised by the first one's person
	// lock, so only the accumulator version check keeps them apart.
	other := settlement.New(w.db, w.reg, w.led, nil)
	other.SetClock(func() time.Time { return w.now })
	var wg sync.WaitGroup
	results := make([]*settlement.Settlement, n)
	errs := make([]error, n)
	for i, v := range visits {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := w.svc
			if i%2 == 1 {
				svc = other
			}
			results[i], errs[i] = svc.Settle(w.h1, v.MdtrtID, settlement.SettleRequest{UseAccount: new(bool)})
		}()
	}
	wg.Wait()
	t.Logf("recalculated after losing a race: %d + %d", w.svc.Recalculations(), other.Recalculations())
	var ded, fund money.Fen
	for i, st := range results {
		if errs[i] != nil {
			t.Fatalf("settlement %d: %v", i, errs[i])
		}
		ded += st.Result.SetlInfo.ActPayDedc
		fund += st.Result.SetlInfo.HifpPay
	}
	// 12 bills of 1000: deductible 700 once; retiree level 3 ratio 0.65;
	// fund (12000 - 700) x 0.65 = 7345, capped at 4000.
	if ded != money.Yuan(700) {
		t.Errorf("deductible used %s in total, want 700.00", ded)
	}
	if fund != money.Yuan(4000) {
		t.Errorf("fund paid %s in total, want the cap 4000.00", fund)
	}
	acc, err := w.svc.Accumulators(w.adm, Retired)
	if err != nil {
		t.Fatal(err)
	}
	if c := acc[0].Counters; c["deductible.outpatient"] != money.Yuan(700) || c["fund.outpatient"] != money.Yuan(4000) {
		t.Errorf("accumulators %v", c)
	}
	for _, l := range acc[0].Limits {
		if l.VisitType == policy.GeneralOutpatient && l.Kind == "cap_fund" && l.Left != 0 {
			t.Errorf("outpatient fund cap left %s, want 0", l.Left)
		}
	}
	w.checkLedger()
}

func TestInpatientMidStayThenDischarge(t *testing.T) {
	w := newWorld(t)
	v := w.visit(w.h1, Active, H1, policy.Inpatient, "DRUG-A 3000.00 1")
	mid, err := w.svc.Settle(w.h1, v.MdtrtID, settlement.SettleRequest{Kind: settlement.KindMidStay})
	if err != nil {
		t.Fatal(err)
	}
	// First segment: deductible 900, (3000 - 900) x 0.90 = 1890.
	if si := mid.Result.SetlInfo; si.ActPayDedc != money.Yuan(900) || si.HifpPay != money.Yuan(1890) {
		t.Fatalf("mid-stay %+v", si)
	}
	if _, err := w.svc.AddFeeLines(w.h1, v.MdtrtID, parseLines(t, []string{"DRUG-A 2000.00 1"})); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Discharge(w.h1, v.MdtrtID, ""); err != nil {
		t.Fatal(err)
	}
	fin, err := w.svc.Settle(w.h1, v.MdtrtID, settlement.SettleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Second segment of the same stay: no second deductible: 2000 x 0.90 = 1800.
	if si := fin.Result.SetlInfo; si.ActPayDedc != 0 || si.HifpPay != money.Yuan(1800) || si.MedfeeSumamt != money.Yuan(2000) {
		t.Fatalf("discharge %+v", si)
	}
	acc, _ := w.svc.Accumulators(w.adm, Active)
	if acc[0].Admissions != 1 {
		t.Fatalf("admissions %d, want 1 for one stay", acc[0].Admissions)
	}
	got, _ := w.svc.GetVisit(w.h1, v.MdtrtID)
	if got.Status != settlement.VisitSettled || got.Segments != 2 || got.Totals.Unsettled != 0 {
		t.Fatalf("visit %+v", got)
	}
	// Only the latest settlement may be reversed.
	if _, err := w.svc.Reverse(w.h1, mid.SetlID); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("reverse the earlier segment: %v", err)
	}
	if _, err := w.svc.Reverse(w.h1, fin.SetlID); err != nil {
		t.Fatal(err)
	}
	got, _ = w.svc.GetVisit(w.h1, v.MdtrtID)
	if got.Status != settlement.VisitDischarged || got.Segments != 1 {
		t.Fatalf("after reversing the discharge settlement: %s %d", got.Status, got.Segments)
	}
	if _, err := w.svc.Reverse(w.h1, mid.SetlID); err != nil {
		t.Fatal(err)
	}
	w.checkLedger()
}

func TestInstitutionsSeeOnlyTheirOwn(t *testing.T) {
	w := newWorld(t)
	v := w.visit(w.h1, Active, H1, policy.GeneralOutpatient, "DRUG-A 100.00 1")
	st, err := w.svc.Settle(w.h1, v.MdtrtID, settlement.SettleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		call func() error
		code yibao.Code
	}{
		{"open a visit for another hospital", func() error {
			_, err := w.svc.OpenVisit(w.h2, settlement.VisitRequest{PsnNo: Active, FixmedinsCode: H1, Type: policy.GeneralOutpatient})
			return err
		}, yibao.CodeForbidden},
		{"read another hospital's visit", func() error { _, err := w.svc.GetVisit(w.h2, v.MdtrtID); return err }, yibao.CodeNotFound},
		{"add lines to it", func() error {
			_, err := w.svc.AddFeeLines(w.h2, v.MdtrtID, parseLines(t, []string{"DRUG-A 1.00 1"}))
			return err
		}, yibao.CodeNotFound},
		{"settle it", func() error { _, err := w.svc.Settle(w.h2, v.MdtrtID, settlement.SettleRequest{}); return err }, yibao.CodeNotFound},
		{"read its settlement", func() error { _, err := w.svc.GetSettlement(w.h2, st.SetlID); return err }, yibao.CodeNotFound},
		{"reverse its settlement", func() error { _, err := w.svc.Reverse(w.h2, st.SetlID); return err }, yibao.CodeNotFound},
		{"read a person it never treated", func() error { _, err := w.svc.Accumulators(w.h2, Active); return err }, yibao.CodeNotFound},
		{"list another hospital's visits", func() error {
			_, _, err := w.svc.Visits(w.h2, settlement.VisitFilter{FixmedinsCode: H1})
			return err
		}, yibao.CodeForbidden},
		{"no principal", func() error { _, err := w.svc.GetVisit(context.Background(), v.MdtrtID); return err }, yibao.CodeUnauthenticated},
		{"a cashier drafts policy", func() error { _, err := w.svc.DraftPolicy(w.h1, policy.DemoPolicyJSON()); return err }, yibao.CodeForbidden},
		{"a cashier links families", func() error { _, err := w.svc.LinkFamily(w.h1, Active, Spouse, "spouse"); return err }, yibao.CodeForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !yibao.IsCode(err, c.code) {
				t.Fatalf("err = %v, want %s", err, c.code)
			}
		})
	}
	// The own hospital and the bureau do see it.
	if _, err := w.svc.Accumulators(w.h1, Active); err != nil {
		t.Fatal(err)
	}
	h, err := w.svc.History(w.adm, Active, 10)
	if err != nil || len(h) != 1 {
		t.Fatalf("history %d %v", len(h), err)
	}
}

// TestOutpatientPayDoesNotUseTheInpatientCap: in the demo policy general
// outpatient pooling has its own counters; the inpatient and chronic cap
// (fund.pool) is untouched by an outpatient bill.
func TestOutpatientPayDoesNotUseTheInpatientCap(t *testing.T) {
	w := newWorld(t)
	v := w.visit(w.h1, Active, H1, policy.GeneralOutpatient, "DRUG-A 2000.00 1")
	st, err := w.svc.Settle(w.h1, v.MdtrtID, settlement.SettleRequest{})
	if err != nil || st.Result.SetlInfo.HifpPay == 0 {
		t.Fatalf("%v %+v", err, st)
	}
	acc, _ := w.svc.Accumulators(w.adm, Active)
	for _, l := range acc[0].Limits {
		switch {
		case l.VisitType == policy.Inpatient && l.Kind == "cap_fund" && l.Used != 0:
			t.Errorf("inpatient cap used %s by an outpatient bill", l.Used)
		case l.VisitType == policy.GeneralOutpatient && l.Kind == "cap_fund" && l.Used != st.Result.SetlInfo.HifpPay:
			t.Errorf("outpatient cap used %s, want %s", l.Used, st.Result.SetlInfo.HifpPay)
		}
	}
}
