package credit_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"yibao"
	"yibao/credit"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/pay"
	"yibao/settlement"
	"yibao/sim/banksim"
)

// TestInpatientOnCredit is the scenario: a patient with an
// agreement is admitted with a credit guarantee instead of a deposit; the
// hold grows with the daily fees; the discharge settlement takes the
// out-of-pocket part on credit; a statement with items and a due date is
// issued; the patient repays through the wallet and the line is whole
// again; the bank's settlement file matches and its payout clears the
// hospital's receivable.
func TestInpatientOnCredit(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	psn, ag := e.holder()
	v, err := e.a.Settle.OpenVisit(e.cashier, settlement.VisitRequest{PsnNo: psn, FixmedinsCode: hospital, Type: "inpatient", DeptCode: "NK", DeptName: "内科"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := e.a.Credit.OpenGuarantee(e.cashier, v.MdtrtID)
	if err != nil {
		t.Fatal(err)
	}
	if g.Held != money.Yuan(2000) || g.Status != credit.GuaranteeOpen || g.Available != money.Yuan(3000) {
		t.Fatalf("guarantee at admission: held %s, %s, line left %s", g.Held, g.Status, g.Available)
	}
	e.checkLine(psn, ag.AgreementNo)
	// Another hospital cannot see the stay's guarantee.
	other := yibao.WithPrincipal(ctx, &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "c2", Role: yibao.RoleCashier, Institution: "H37010000002"})
	if _, err := e.a.Credit.Guarantee(other, v.MdtrtID); !yibao.IsCode(err, yibao.CodeNotFound) {
		t.Fatalf("another hospital read the guarantee: %v", err)
	}
	// Three days of fees; the not-covered one alone is ¥2,600 out of pocket.
	e.addLine(v.MdtrtID, "1", e.drugs[0], money.Yuan(800))
	e.addLine(v.MdtrtID, "2", e.extras[0], money.Yuan(2600))
	e.addLine(v.MdtrtID, "3", e.drugs[1], money.Yuan(900))
	g, err = e.a.Credit.Guarantee(e.cashier, v.MdtrtID)
	if err != nil {
		t.Fatal(err)
	}
	if g.Estimate < money.Yuan(2600) || g.Held < g.Estimate || g.Holds != 2 || g.Shortfall != 0 || g.Held%money.Yuan(500) != 0 {
		t.Fatalf("grown guarantee: held %s in %d holds for an estimate of %s, shortfall %s", g.Held, g.Holds, g.Estimate, g.Shortfall)
	}
	e.checkLine(psn, ag.AgreementNo)
	if _, err := e.a.Settle.Discharge(e.cashier, v.MdtrtID, ""); err != nil {
		t.Fatal(err)
	}
	o, err := e.pay(v.MdtrtID)
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != pay.StatusPaid || o.Channel != pay.ChannelCredit || o.SelfPay < money.Yuan(2600) {
		t.Fatalf("discharge on credit: %s via %s, self %s (%s)", o.Status, o.Channel, o.SelfPay, o.Reason)
	}
	g, _ = e.a.Credit.Guarantee(e.cashier, v.MdtrtID)
	if g.Status != credit.GuaranteeSettled {
		t.Fatalf("guarantee after discharge: %s", g.Status)
	}
	line := e.account(ledger.CreditLine(ag.AgreementNo).ID)
	if line.DebitsPending != 0 || line.DebitsPosted != o.SelfPay {
		t.Fatalf("line after discharge: pending %s, posted %s, want 0 and %s", line.DebitsPending, line.DebitsPosted, o.SelfPay)
	}
	got := e.checkLine(psn, ag.AgreementNo)
	if got.Outstanding != o.SelfPay {
		t.Fatalf("owed %s, want %s", got.Outstanding, o.SelfPay)
	}
	sts, err := e.a.Credit.Statements(ctx, psn)
	if err != nil || len(sts) != 1 {
		t.Fatalf("statements: %v %v", sts, err)
	}
	st := sts[0]
	wantDue := yibao.DateOf(time.Now().In(yibao.ChinaTime).AddDate(0, 0, 10))
	if st.FixmedinsName == "" {
		t.Fatalf("statement without the hospital's name: %+v", st)
	}
	if st.Amount != o.SelfPay || st.DueDate != wantDue || st.Status != "open" || len(st.Items.Lines) != 3 || st.Items.PsnCashPay != o.SelfPay {
		t.Fatalf("statement: %s due %s (want %s), %s, %d lines", st.Amount, st.DueDate, wantDue, st.Status, len(st.Items.Lines))
	}
	// The hospital's receivable got the out-of-pocket part through the bank's clearing.
	if c := e.account(ledger.ChannelClearing(banksim.DefaultBankCode).ID); c.CreditsPosted != c.DebitsPosted {
		t.Fatalf("bank clearing not flat: %s / %s", c.DebitsPosted, c.CreditsPosted)
	}
	// Repay through the WeChat agreement (¥2,000 per payment at most):
	// a part, then the rest.
	if _, err := e.a.Credit.Repay(ctx, psn, ag.AgreementNo, credit.RepayRequest{Wallet: "wechat"}); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("repaying above the wallet agreement's limit: %v", err)
	}
	rp, err := e.a.Credit.Repay(ctx, psn, ag.AgreementNo, credit.RepayRequest{Wallet: "wechat", Amount: money.Yuan(2000)})
	if err != nil || rp.Status != "applied" || rp.Applied != money.Yuan(2000) {
		t.Fatalf("first repayment: %+v %v", rp, err)
	}
	if sts, _ := e.a.Credit.Statements(ctx, psn); sts[0].Status != "open" || sts[0].Repaid != money.Yuan(2000) {
		t.Fatalf("statement after a part: %s, repaid %s", sts[0].Status, sts[0].Repaid)
	}
	e.checkLine(psn, ag.AgreementNo)
	rp, err = e.a.Credit.Repay(ctx, psn, ag.AgreementNo, credit.RepayRequest{Wallet: "wechat"})
	if err != nil {
		t.Fatal(err)
	}
	if rp.Status != "applied" || rp.Applied != o.SelfPay-money.Yuan(2000) || rp.Excess != 0 {
		t.Fatalf("repayment: %+v", rp)
	}
	got = e.checkLine(psn, ag.AgreementNo)
	if got.Outstanding != 0 || got.Available != got.Limit {
		t.Fatalf("after repaying: owed %s, available %s of %s", got.Outstanding, got.Available, got.Limit)
	}
	if sts, _ = e.a.Credit.Statements(ctx, psn); sts[0].Status != "paid" || sts[0].Repaid != o.SelfPay {
		t.Fatalf("statement after repaying: %s, repaid %s", sts[0].Status, sts[0].Repaid)
	}
	// The day's settlement file: our draw and repayment match the bank's
	// rows; the payout is booked once even when the file is sent twice.
	day := yibao.DateOf(time.Now())
	recv0 := e.account(ledger.HospitalReceivable(hospital).ID)
	for range 2 {
		rep, err := e.a.Credit.SettleDay(e.admin, banksim.DefaultBankCode, day)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Status != "matched" || rep.Matched != 3 || rep.PayoutsFen != o.SelfPay {
			t.Fatalf("settlement file: %s, %d matched, payouts %s: %+v", rep.Status, rep.Matched, rep.PayoutsFen, rep)
		}
	}
	recv1 := e.account(ledger.HospitalReceivable(hospital).ID)
	if recv1.DebitsPosted-recv0.DebitsPosted != o.SelfPay {
		t.Fatalf("the bank's payout cleared %s of the receivable, want %s once", recv1.DebitsPosted-recv0.DebitsPosted, o.SelfPay)
	}
	// Closing works once nothing is owed; the line is emptied.
	closed, err := e.a.Credit.Close(ctx, psn, ag.AgreementNo)
	if err != nil || closed.Status != credit.StatusClosed {
		t.Fatalf("close: %v %v", closed, err)
	}
	e.checkLine(psn, ag.AgreementNo)
	if _, err := e.a.Pay.PayVisit(e.cashier, e.visit(psn, "general_outpatient", money.Yuan(10)), pay.PayRequest{Channel: pay.ChannelCredit}); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("paying on a closed agreement: %v", err)
	}
}

// TestLimitRace: 64 payments of one patient at once, together well over
// the limit. What is approved never exceeds the limit (holds counted);
// the rest are refused with credit_limit_exceeded and leave nothing
// behind. Run both through the payment service and straight at the
// ledger (where no per-person lock serialises them).
func TestLimitRace(t *testing.T) {
	e := newEnv(t)
	psn, ag := e.fresh()
	const n = 64
	amount := money.Yuan(137) // 64 × ¥137 = ¥8,768 > ¥5,000
	visits := make([]string, n)
	for i := range visits {
		visits[i] = e.visit(psn, "general_outpatient", amount)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var paid money.Fen
	var ok, refused int
	for _, id := range visits {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := e.pay(id)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && o.Status == pay.StatusPaid:
				ok++
				paid += o.SelfPay
			case yibao.IsCode(err, yibao.CodeCreditLimitExceeded):
				refused++
			default:
				t.Errorf("payment of %s: %v %v", id, o, err)
			}
		}()
	}
	wg.Wait()
	got := e.checkLine(psn, ag.AgreementNo)
	if paid > ag.Limit || got.Outstanding != paid || ok+refused != n || ok != int(ag.Limit/amount) {
		t.Fatalf("paid %s in %d payments (%d refused) on a %s line; owed %s", paid, ok, refused, ag.Limit, got.Outstanding)
	}
	t.Logf("R10: %d concurrent credit payments on a %s line: %d approved (%s), %d refused credit_limit_exceeded, overdraft 0", n, ag.Limit, ok, paid, refused)

	// Straight at the ledger: 64 concurrent pending holds on a fresh line.
	psn2, ag2 := e.fresh()
	line := ledger.CreditLine(ag2.AgreementNo)
	clear := ledger.ChannelClearing(banksim.DefaultBankCode)
	var held money.Fen
	var won int
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.a.Ledger.Submit(context.Background(), engine.Unit{Accounts: []ledger.Account{line, clear}, Transfers: []ledger.Transfer{{
				ID: ag2.AgreementNo + ":race:" + string(rune('A'+i/26)) + string(rune('a'+i%26)), DebitAccountID: line.ID, CreditAccountID: clear.ID,
				Amount: amount, Ledger: ledger.CNY, Code: "test_hold", Flags: ledger.Pending}}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
				held += amount
			case ledger.ReasonOf(err) == ledger.ReasonExceedsCredits:
			default:
				t.Errorf("hold: %v", err)
			}
		}()
	}
	wg.Wait()
	acc := e.account(line.ID)
	if held > ag2.Limit || acc.DebitsPending != held || acc.Available() < 0 || won != int(ag2.Limit/amount) {
		t.Fatalf("ledger race: %d holds of %s = %s on a %s line; pending %s, available %s", won, amount, held, ag2.Limit, acc.DebitsPending, acc.Available())
	}
	_ = psn2
}

// TestCrashMidHold: the process dies after the settlement held the
// out-of-pocket part and before the bank heard of the draw. The pending
// settlement is not voided by the expiry sweeper; the recovery loop tells
// the bank (once) and completes the payment; nothing is paid twice.
func TestCrashMidHold(t *testing.T) {
	e := newEnv(t)
	psn, ag := e.fresh()
	crash := true
	e.a.Pay.Tune(func(c *pay.Config) { c.CrashAfterCharge = func(string) bool { return crash } })
	o, err := e.pay(e.visit(psn, "general_outpatient", money.Yuan(300)))
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != pay.StatusPaying {
		t.Fatalf("after the crash: %s", o.Status)
	}
	if acc := e.account(ledger.CreditLine(ag.AgreementNo).ID); acc.DebitsPending != money.Yuan(300) {
		t.Fatalf("hold after the crash: %s", acc.DebitsPending)
	}
	e.checkLine(psn, ag.AgreementNo)
	if n, err := e.a.Settle.ExpirePending(context.Background()); err != nil || n != 0 {
		t.Fatalf("the expiry sweeper voided %d (%v)", n, err)
	}
	crash = false
	time.Sleep(30 * time.Millisecond)
	o = e.settleOrder(o.PayOrdID)
	if o.Status != pay.StatusPaid {
		t.Fatalf("after recovery: %s (%s)", o.Status, o.Reason)
	}
	got := e.checkLine(psn, ag.AgreementNo)
	if got.Outstanding != money.Yuan(300) || got.Held != 0 {
		t.Fatalf("after recovery: owed %s, held %s", got.Outstanding, got.Held)
	}
	draws := 0
	for _, d := range e.a.Bank.Sim.State().Draws {
		if d.AgreementNo == ag.AgreementNo {
			draws++
		}
	}
	if draws != 1 {
		t.Fatalf("the bank has %d draws, want 1", draws)
	}
}

// TestBankRefusesDraw: the bank closed the agreement on its side and the
// platform has not heard yet; the draw is refused, the settlement voided,
// the hold released, and nothing is owed.
func TestBankRefusesDraw(t *testing.T) {
	e := newEnv(t)
	psn, ag := e.fresh()
	e.a.Bank.Sim.SetCallbackURL("") // the bank's callback is lost
	if err := e.a.Bank.Sim.CloseAgreement(context.Background(), ag.AgreementNo, "test"); err != nil && !errors.Is(err, banksim.ErrNotDelivered) {
		t.Fatal(err)
	}
	o, err := e.pay(e.visit(psn, "general_outpatient", money.Yuan(200)))
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != pay.StatusVoided {
		t.Fatalf("refused draw: order %s (%s)", o.Status, o.Reason)
	}
	if st, err := e.a.Settle.GetSettlement(e.cashier, o.SetlID); err != nil || st.Status != settlement.StatusVoided {
		t.Fatalf("settlement after the refusal: %v %v", st, err)
	}
	got := e.checkLine(psn, ag.AgreementNo)
	if got.Outstanding != 0 || got.Held != 0 {
		t.Fatalf("after the refusal: owed %s, held %s", got.Outstanding, got.Held)
	}
}

// TestMobileBillOnCredit: a bill pushed to the phone is confirmed with
// credit as the payer: held, drawn and posted like a one-code payment,
// with its statement.
func TestMobileBillOnCredit(t *testing.T) {
	e := newEnv(t)
	psn, ag := e.fresh()
	md := e.visit(psn, "general_outpatient", money.Yuan(420))
	o, err := e.a.Pay.CreateMobile(e.cashier, pay.MobileRequest{MdtrtID: md, MedOrgOrd: "HIS-CREDIT-1", MedfeeSumamt: money.Yuan(420)})
	if err != nil {
		t.Fatal(err)
	}
	o, err = e.a.Pay.Confirm(context.Background(), psn, o.PayOrdID, pay.ConfirmRequest{Channel: pay.ChannelCredit})
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != pay.StatusPaid || o.Channel != pay.ChannelCredit || o.SelfPay != money.Yuan(420) {
		t.Fatalf("mobile bill on credit: %s via %s, self %s (%s)", o.Status, o.Channel, o.SelfPay, o.Reason)
	}
	got := e.checkLine(psn, ag.AgreementNo)
	if got.Outstanding != money.Yuan(420) {
		t.Fatalf("owed %s", got.Outstanding)
	}
	if sts, _ := e.a.Credit.Statements(context.Background(), psn); len(sts) != 1 || sts[0].Amount != money.Yuan(420) {
		t.Fatalf("statements: %+v", sts)
	}
}
