package pay_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"yibao"
	"yibao/app"
	"yibao/app/apptest"
	"yibao/demo"
	"yibao/ledger"
	"yibao/money"
	"yibao/pay"
	"yibao/pay/channel"
	"yibao/settlement"
	"yibao/sim"
)

const hospital = "H37010000001"

type env struct {
	t       *testing.T
	a       *app.App
	srv     *httptest.Server
	d       *demo.Dataset
	cashier context.Context
	admin   context.Context
	drugs   []string
	people  []string // employees of 370100: [0] has no agreement, [1:4] a WeChat one
	next    int
	used    int // people[4:] handed out by fresh
}

// fresh returns an employee no test has used yet (so caps and
// deductibles start from zero), with an agreement for ch.
func (e *env) fresh(ch string) string {
	e.t.Helper()
	if 4+e.used >= len(e.people) {
		e.t.Fatalf("the demo has only %d employees", len(e.people))
	}
	psn := e.people[4+e.used]
	e.used++
	if _, err := e.a.Pay.SignAgreement(context.Background(), psn, ch, money.Yuan(2000)); err != nil {
		e.t.Fatal(err)
	}
	return psn
}

func newEnv(t *testing.T) *env {
	t.Helper()
	a, d := apptest.Open(t, func(c *app.Config) { c.Wallets = "sim" })
	e := &env{t: t, a: a, d: d,
		cashier: yibao.WithPrincipal(context.Background(), &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "c1", Role: yibao.RoleCashier, Institution: hospital}),
		admin:   yibao.WithPrincipal(context.Background(), yibao.System("test"))}
	e.srv = httptest.NewServer(a.Handler())
	t.Cleanup(e.srv.Close)
	a.Pay.SetNotifyBase(e.srv.URL + "/api/v1/pay/notify")
	a.Pay.Tune(func(c *pay.Config) { c.ChargeTimeout, c.CheckAfter = time.Second, 200*time.Millisecond })
	today := yibao.DateOf(time.Now())
	for _, it := range d.Catalog {
		if it.Kind == yibao.ItemDrug && it.Class == "A" && it.ValidFrom <= today && (it.ValidTo == "" || it.ValidTo >= today) {
			e.drugs = append(e.drugs, it.Code)
		}
	}
	for _, c := range d.Coverages {
		if c.Insutype == "310" && c.EndDate == "" && c.Admdvs == "370100" {
			e.people = append(e.people, c.PsnNo)
		}
	}
	return e
}

// visit opens an outpatient visit with fee lines worth ~800 yuan, so
// that every leg (fund, account, out of pocket) is non-zero.
func (e *env) visit(psn string) string {
	e.t.Helper()
	v, err := e.a.Settle.OpenVisit(e.cashier, settlement.VisitRequest{PsnNo: psn, FixmedinsCode: hospital, Type: "general_outpatient", DeptCode: "NK", DeptName: "内科"})
	if err != nil {
		e.t.Fatal(err)
	}
	e.next++
	if _, err := e.a.Settle.AddFeeLines(e.cashier, v.MdtrtID, []settlement.FeeLineInput{
		{FeedetlSn: "1", CatalogCode: e.drugs[e.next%len(e.drugs)], UnitPrice: money.Fen(48000 + 100*e.next), Quantity: money.MustRatio(1, 1)},
		{FeedetlSn: "2", CatalogCode: e.drugs[(e.next+1)%len(e.drugs)], UnitPrice: money.Fen(32000), Quantity: money.MustRatio(1, 1)},
	}); err != nil {
		e.t.Fatal(err)
	}
	return v.MdtrtID
}

func (e *env) faults(ch string, f sim.Faults) { e.a.Wallets.Faults(ch).Set(f) }

func (e *env) debits(ch, outTradeNo string) int {
	if ch == "alipay" {
		return e.a.Wallets.Alipay.Debits(outTradeNo)
	}
	return e.a.Wallets.Wechat.Debits(outTradeNo)
}

func (e *env) balance(ch, psn string) money.Fen {
	if ch == "alipay" {
		return money.Fen(e.a.Wallets.Alipay.Balance(pay.PayerRef(ch, psn)))
	}
	return money.Fen(e.a.Wallets.Wechat.Balance(pay.PayerRef(ch, psn)))
}

// settle waits until the order leaves paying (the recovery loop is
// driven by hand here) and returns it.
func (e *env) settle(id string) *pay.Order {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		o, err := e.a.Pay.Get(e.admin, id)
		if err != nil {
			e.t.Fatal(err)
		}
		if o.Status != pay.StatusPaying || time.Now().After(deadline) {
			return o
		}
		if _, err := e.a.Pay.Sweep(context.Background()); err != nil {
			e.t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) balanceOf(acc string) money.Fen {
	e.t.Helper()
	b, err := e.a.Ledger.Balance(context.Background(), acc)
	if err != nil {
		e.t.Fatal(err)
	}
	return b.Posted
}

type scenario struct {
	Name       string     `json:"name"`
	Channel    string     `json:"channel"`
	Faults     sim.Faults `json:"faults"`
	Crash      bool       `json:"crash"`
	WantStatus string     `json:"want_status"`
	WantSelf   string     `json:"want_self"`
	WantDebits int        `json:"want_debits"`
}

func load[T any](t *testing.T, path string) T {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// TestOneCode runs the one-code payment through each wallet simulator
// with each fault of testdata/onecode.json: the patient is charged at
// most once, exactly the out-of-pocket part, and the order ends in the
// state the table names.
func TestOneCode(t *testing.T) {
	e := newEnv(t)
	cases := load[[]scenario](t, "testdata/onecode.json")
	var crashed sync.Map
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			e.t = t
			e.faults(c.Channel, c.Faults)
			defer e.faults(c.Channel, sim.Faults{})
			if c.Crash {
				e.a.Pay.Tune(func(c *pay.Config) {
					c.CrashAfterCharge = func(id string) bool { _, seen := crashed.LoadOrStore(id, true); return !seen }
				})
				defer e.a.Pay.Tune(func(c *pay.Config) { c.CrashAfterCharge = nil })
			}
			psn := e.fresh(c.Channel)
			before := e.balance(c.Channel, psn)
			md := e.visit(psn)
			o, err := e.a.Pay.PayVisit(e.cashier, md, pay.PayRequest{Channel: c.Channel, UseAccount: noAcct})
			if err != nil {
				t.Fatal(err)
			}
			if o.SelfPay <= 0 || o.FundPay <= 0 {
				t.Fatalf("the bill should have fund and out-of-pocket parts: %+v", o)
			}
			o = e.settle(o.PayOrdID)
			// Late notifications (duplicates, retries) must not move it.
			time.Sleep(300 * time.Millisecond)
			o = e.settle(o.PayOrdID)
			if o.Status != c.WantStatus || o.Legs[2].Status != c.WantSelf {
				t.Fatalf("order %s: status %s self %s, want %s/%s; events %+v", o.PayOrdID, o.Status, o.Legs[2].Status, c.WantStatus, c.WantSelf, o.Events)
			}
			if n := e.debits(c.Channel, o.OutTradeNo); n != c.WantDebits {
				t.Fatalf("the payer was debited %d times, want %d", n, c.WantDebits)
			}
			wantTaken := money.Fen(0)
			if c.WantDebits == 1 {
				wantTaken = o.SelfPay
			}
			if got := before - e.balance(c.Channel, psn); got != wantTaken {
				t.Fatalf("the wallet lost %s yuan, want %s", got, wantTaken)
			}
			st, err := e.a.Settle.GetSettlement(e.admin, o.SetlID)
			if err != nil {
				t.Fatal(err)
			}
			wantSetl := map[string]string{pay.StatusPaid: settlement.StatusCompleted, pay.StatusDeclined: settlement.StatusPending,
				pay.StatusReview: settlement.StatusPending}[c.WantStatus]
			if st.Status != wantSetl {
				t.Fatalf("settlement %s is %s, want %s", st.SetlID, st.Status, wantSetl)
			}
			if c.WantStatus == pay.StatusDeclined {
				// The cashier takes the rest at the counter: every leg posts.
				o, err = e.a.Pay.Collect(e.cashier, o.PayOrdID, pay.CollectRequest{Channel: pay.ChannelCounter})
				if err != nil {
					t.Fatal(err)
				}
				if o.Status != pay.StatusPaid || o.Channel != pay.ChannelCounter {
					t.Fatalf("after collecting at the counter: %s via %s", o.Status, o.Channel)
				}
			}
			if c.WantStatus == pay.StatusReview {
				// Held: nothing posted, and it cannot be cancelled into a lost payment silently.
				if _, err := e.a.Pay.Refund(e.cashier, o.PayOrdID, pay.RefundRequest{RefundNo: "r1", Kind: pay.RefundAll}); !yibao.IsCode(err, yibao.CodePrecondition) {
					t.Fatalf("refund of a held order: %v", err)
				}
				if _, err := e.a.Pay.Resolve(e.cashier, o.PayOrdID); !yibao.IsCode(err, yibao.CodeForbidden) {
					t.Fatalf("a cashier resolves a review: %v", err)
				}
				// The bureau asks the wallet: it took exactly the order's amount (the notification lied).
				o, err = e.a.Pay.Resolve(e.admin, o.PayOrdID)
				if err != nil || o.Status != pay.StatusPaid {
					t.Fatalf("resolve: %v %+v", err, o)
				}
			}
		})
	}
	e.t = t
}

// TestOneCodeRefusals: no agreement, a revoked agreement, above the
// agreement's limit, and another hospital's order.
func TestOneCodeRefusals(t *testing.T) {
	e := newEnv(t)
	md := e.visit(e.people[0]) // no agreement
	if _, err := e.a.Pay.PayVisit(e.cashier, md, pay.PayRequest{Channel: "auto"}); !yibao.IsCode(err, yibao.CodePrecondition) || !strings.Contains(err.Error(), "no_withholding_agreement") {
		t.Fatalf("no agreement: %v", err)
	}
	psn := e.people[2]
	ags, _ := e.a.Pay.Agreements(context.Background(), psn)
	if _, err := e.a.Pay.RevokeAgreement(context.Background(), psn, ags[0].AgreementNo); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Pay.PayVisit(e.cashier, e.visit(psn), pay.PayRequest{Channel: "wechat", UseAccount: noAcct}); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("revoked agreement: %v", err)
	}
	if _, err := e.a.Pay.SignAgreement(context.Background(), psn, "alipay", money.Yuan(1)); err != nil {
		t.Fatal(err)
	}
	o, err := e.a.Pay.PayVisit(e.cashier, e.visit(psn), pay.PayRequest{Channel: "alipay", UseAccount: noAcct})
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != pay.StatusDeclined || !strings.HasPrefix(o.Reason, "exceeds_agreement_limit") || o.OutTradeNo != "" {
		t.Fatalf("above the limit: %+v", o)
	}
	other := yibao.WithPrincipal(context.Background(), &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "c2", Role: yibao.RoleCashier, Institution: "H37010000002"})
	if _, err := e.a.Pay.Get(other, o.PayOrdID); !yibao.IsCode(err, yibao.CodeNotFound) {
		t.Fatalf("another hospital reads the order: %v", err)
	}
	// Cancel: the reserved legs are released, the account gets its money back.
	acct := ledger.PersonalAccount(psn).ID
	before := e.balanceOf(acct)
	if o, err = e.a.Pay.Cancel(e.cashier, o.PayOrdID); err != nil || o.Status != pay.StatusVoided || o.Legs[0].Status != pay.LegReleased {
		t.Fatalf("cancel: %v %+v", err, o)
	}
	if after := e.balanceOf(acct); after != before {
		t.Fatalf("posted account balance moved from %s to %s by a cancelled order", before, after)
	}
}

// TestRefunds: partial refunds up to what was paid and not a fen more,
// the same refund number twice is one refund at the wallet, concurrent
// refunds never overdraw, and a full refund reverses the settlement.
func TestRefunds(t *testing.T) {
	e := newEnv(t)
	psn := e.people[3]
	o, err := e.a.Pay.PayVisit(e.cashier, e.visit(psn), pay.PayRequest{Channel: "wechat", UseAccount: noAcct})
	if err != nil {
		t.Fatal(err)
	}
	if o = e.settle(o.PayOrdID); o.Status != pay.StatusPaid {
		t.Fatalf("paid? %s", o.Status)
	}
	wallet := e.balance("wechat", psn)
	recv := e.balanceOf(ledger.HospitalReceivable(hospital).ID)
	r1, err := e.a.Pay.Refund(e.cashier, o.PayOrdID, pay.RefundRequest{RefundNo: "r1", Kind: pay.RefundCash, Amount: 100})
	if err != nil || r1.Status != pay.RefundSucceeded {
		t.Fatalf("refund r1: %v %+v", err, r1)
	}
	again, err := e.a.Pay.Refund(e.cashier, o.PayOrdID, pay.RefundRequest{RefundNo: "r1", Kind: pay.RefundCash, Amount: 100})
	if err != nil || again.OutRefundNo != r1.OutRefundNo {
		t.Fatalf("the same refund again: %v %+v", err, again)
	}
	if _, err := e.a.Pay.Refund(e.cashier, o.PayOrdID, pay.RefundRequest{RefundNo: "r1", Kind: pay.RefundCash, Amount: 200}); !yibao.IsCode(err, yibao.CodeConflict) {
		t.Fatalf("the same number with another amount: %v", err)
	}
	if _, err := e.a.Pay.Refund(e.cashier, o.PayOrdID, pay.RefundRequest{RefundNo: "big", Kind: pay.RefundCash, Amount: o.SelfPay}); !yibao.IsCode(err, yibao.CodeInvalid) {
		t.Fatalf("refund above what is left: %v", err)
	}
	// Eight concurrent refunds of a quarter of what is left: at most four fit.
	left := o.SelfPay - 100
	quarter := left / 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	okN := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.a.Pay.Refund(e.cashier, o.PayOrdID, pay.RefundRequest{RefundNo: "q" + string(rune('a'+i)), Kind: pay.RefundCash, Amount: quarter})
			if err == nil {
				mu.Lock()
				okN++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	o, _ = e.a.Pay.Get(e.admin, o.PayOrdID)
	if o.Refunded > o.SelfPay || o.Refunded != 100+money.Fen(okN)*quarter || okN > 4 || okN == 0 {
		t.Fatalf("%d concurrent refunds went through, refunded %s of %s", okN, o.Refunded, o.SelfPay)
	}
	if got := e.balance("wechat", psn) - wallet; got != o.Refunded {
		t.Fatalf("the wallet got %s yuan back, the order says %s", got, o.Refunded)
	}
	if got := recv - e.balanceOf(ledger.HospitalReceivable(hospital).ID); got != o.Refunded {
		t.Fatalf("the receivable went down %s, want %s", got, o.Refunded)
	}
	// Everything else back: the settlement is reversed, the rest refunded.
	all, err := e.a.Pay.Refund(e.cashier, o.PayOrdID, pay.RefundRequest{RefundNo: "all", Kind: pay.RefundAll})
	if err != nil || all.Status != pay.RefundSucceeded || all.Amount != o.SelfPay-o.Refunded {
		t.Fatalf("refund all: %v %+v", err, all)
	}
	o, _ = e.a.Pay.Get(e.admin, o.PayOrdID)
	if o.Status != pay.StatusRefunded || o.Refunded != o.SelfPay || o.Legs[0].Status != pay.LegRefunded {
		t.Fatalf("after refund all: %+v", o)
	}
	if got := e.balance("wechat", psn) - wallet; got != o.SelfPay {
		t.Fatalf("the wallet got %s back in all, paid %s", got, o.SelfPay)
	}
	if got := recv - e.balanceOf(ledger.HospitalReceivable(hospital).ID); got != o.MedfeeSumamt {
		t.Fatalf("the hospital's receivable went down %s, the bill was %s", got, o.MedfeeSumamt)
	}
	st, _ := e.a.Settle.GetSettlement(e.admin, o.SetlID)
	if st.Status != settlement.StatusReversed {
		t.Fatalf("settlement %s", st.Status)
	}
	if _, err := e.a.Pay.Refund(e.cashier, o.PayOrdID, pay.RefundRequest{RefundNo: "more", Kind: pay.RefundCash, Amount: 1}); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("refund after refund all: %v", err)
	}
}

// TestNotifications: forged and replayed callbacks are refused over HTTP
// and change nothing; a callback for an order not there yet is refused so
// that the wallet sends it again.
func TestNotifications(t *testing.T) {
	e := newEnv(t)
	for _, ch := range []string{"wechat", "alipay"} {
		for _, body := range []string{`{"id":"x","event_type":"TRANSACTION.SUCCESS"}`, "notify_id=1&out_trade_no=PO1-01&trade_status=TRADE_SUCCESS&sign=AAAA&sign_type=RSA2"} {
			ct := "application/json"
			if !strings.HasPrefix(body, "{") {
				ct = "application/x-www-form-urlencoded"
			}
			r, err := http.Post(e.srv.URL+"/api/v1/pay/notify/"+ch, ct, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode != http.StatusUnauthorized {
				t.Fatalf("%s forged notification: HTTP %d", ch, r.StatusCode)
			}
		}
	}
	w := &channel.Order{OutTradeNo: "PO000000UNKNOWN-01", State: channel.StateSuccess, Amount: 100, TransactionID: "T1"}
	err := e.a.Pay.Notify(context.Background(), "wechat", &channel.Notification{ID: "N1", Kind: channel.NotifyPayment, Order: w})
	if !errors.Is(err, pay.ErrOrphan) {
		t.Fatalf("notification before its order: %v", err)
	}
	var n int
	e.a.DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM channel_notifications WHERE notify_id = 'N1'`).Scan(&n)
	if n != 0 {
		t.Fatal("an orphan notification was recorded; its retry would be taken for a duplicate")
	}
}

// TestMobile: the HIS uploads a bill, the patient confirms it; with an
// agreement it is charged at once, without one the payer confirms in the
// wallet (the simulator's page); an unconfirmed one expires closed.
func TestMobile(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		name, psn, channel string
	}{{"agreement", e.people[1], "wechat"}, {"wallet page, alipay", e.people[0], "alipay"}, {"wallet page, wechat", e.people[0], "wechat"}} {
		t.Run(c.name, func(t *testing.T) {
			md := e.visit(c.psn)
			v, _ := e.a.Settle.GetVisit(e.cashier, md)
			total := money.Fen(0)
			for _, l := range v.Lines {
				total += l.Amount
			}
			o, err := e.a.Pay.CreateMobile(e.cashier, pay.MobileRequest{MdtrtID: md, MedOrgOrd: "HIS-" + md, MedfeeSumamt: total, UseAccount: noAcct})
			if err != nil {
				t.Fatal(err)
			}
			if o.Status != pay.StatusAwaiting || o.Preview == nil || o.SelfPay <= 0 {
				t.Fatalf("uploaded: %+v", o)
			}
			again, err := e.a.Pay.CreateMobile(e.cashier, pay.MobileRequest{MdtrtID: md, MedOrgOrd: "HIS-" + md, MedfeeSumamt: total, UseAccount: noAcct})
			if err != nil || again.PayOrdID != o.PayOrdID {
				t.Fatalf("the same HIS order again: %v", err)
			}
			bills, _ := e.a.Pay.Bills(context.Background(), c.psn)
			if len(bills) == 0 || bills[0].PayOrdID != o.PayOrdID {
				t.Fatalf("the patient does not see the bill")
			}
			if _, err := e.a.Pay.Confirm(context.Background(), e.people[5], o.PayOrdID, pay.ConfirmRequest{Channel: c.channel}); !yibao.IsCode(err, yibao.CodeNotFound) {
				t.Fatalf("another person confirms: %v", err)
			}
			o, err = e.a.Pay.Confirm(context.Background(), c.psn, o.PayOrdID, pay.ConfirmRequest{Channel: c.channel})
			if err != nil {
				t.Fatal(err)
			}
			if o.PayURL != "" {
				if o.Legs[2].Status != pay.LegAwaiting {
					t.Fatalf("waiting for the payer: %+v", o)
				}
				r, err := http.PostForm(o.PayURL, url.Values{})
				if err != nil {
					t.Fatal(err)
				}
				r.Body.Close()
				if r.StatusCode >= 400 {
					t.Fatalf("the wallet page: HTTP %d", r.StatusCode)
				}
			}
			o = e.settle(o.PayOrdID)
			deadline := time.Now().Add(10 * time.Second)
			for o.Status == pay.StatusPaying && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
				o = e.settle(o.PayOrdID)
			}
			if o.Status != pay.StatusPaid || e.debits(c.channel, o.OutTradeNo) != 1 {
				t.Fatalf("mobile bill: %s, debits %d; %+v", o.Status, e.debits(c.channel, o.OutTradeNo), o.Events)
			}
		})
	}
	t.Run("expires unconfirmed in the wallet", func(t *testing.T) {
		psn := e.people[0]
		md := e.visit(psn)
		pv, _ := e.a.Settle.PreSettle(e.cashier, md, settlement.SettleRequest{})
		o, err := e.a.Pay.CreateMobile(e.cashier, pay.MobileRequest{MdtrtID: md, MedOrgOrd: "EXP-" + md, MedfeeSumamt: pv.Result.SetlInfo.MedfeeSumamt, UseAccount: noAcct})
		if err != nil {
			t.Fatal(err)
		}
		if o, err = e.a.Pay.Confirm(context.Background(), psn, o.PayOrdID, pay.ConfirmRequest{Channel: "wechat"}); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Hour)
		e.a.Pay.SetClock(func() time.Time { return later })
		defer e.a.Pay.SetClock(time.Now)
		e.a.DB.Exec(context.Background(), `UPDATE payment_orders SET check_at = 1 WHERE pay_ord_id = ?`, o.PayOrdID)
		if _, err := e.a.Pay.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
		o, _ = e.a.Pay.Get(e.admin, o.PayOrdID)
		if o.Status != pay.StatusVoided {
			t.Fatalf("expired mobile bill: %s %+v", o.Status, o.Events)
		}
		r, err := http.PostForm(o.PayURL, url.Values{})
		if err == nil {
			r.Body.Close()
		}
		if e.debits("wechat", o.OutTradeNo) != 0 {
			t.Fatal("a closed wallet order was paid")
		}
	})
}

// TestReconcile pays a few orders through each wallet, injects bill
// mismatches, and expects the report to name each one.
func TestReconcile(t *testing.T) {
	e := newEnv(t)
	psn := e.people[1]
	if _, err := e.a.Pay.SignAgreement(context.Background(), psn, "alipay", money.Yuan(2000)); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []string{"wechat", "alipay"} {
		t.Run(ch, func(t *testing.T) {
			var orders []*pay.Order
			for range 4 {
				o, err := e.a.Pay.PayVisit(e.cashier, e.visit(psn), pay.PayRequest{Channel: ch, UseAccount: noAcct})
				if err != nil {
					t.Fatal(err)
				}
				if o = e.settle(o.PayOrdID); o.Status != pay.StatusPaid {
					t.Fatalf("%s", o.Status)
				}
				orders = append(orders, o)
			}
			if _, err := e.a.Pay.Refund(e.cashier, orders[3].PayOrdID, pay.RefundRequest{RefundNo: "r1", Kind: pay.RefundCash, Amount: 50}); err != nil {
				t.Fatal(err)
			}
			date := yibao.DateOf(time.Now())
			clean, err := e.a.Pay.Reconcile(e.admin, ch, date)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range clean.Differences {
				if d.PayOrdID != "" && strings.HasPrefix(d.OutTradeNo, orders[0].PayOrdID[:2]) && (d.OutTradeNo == orders[0].OutTradeNo || d.OutTradeNo == orders[1].OutTradeNo) {
					t.Fatalf("a clean day reports %+v", d)
				}
			}
			e.faults(ch, sim.Faults{BillDrop: []string{orders[0].OutTradeNo}, BillExtra: 1, BillAmountDelta: map[string]int64{orders[1].OutTradeNo: 5}})
			defer e.faults(ch, sim.Faults{})
			rep, err := e.a.Pay.Reconcile(e.admin, ch, date)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			for _, d := range rep.Differences {
				got[d.Kind]++
				switch d.Kind {
				case pay.DiffMissingInBill:
					if d.OutTradeNo != orders[0].OutTradeNo || d.Ours != orders[0].SelfPay {
						t.Fatalf("missing in bill: %+v", d)
					}
				case pay.DiffAmount:
					if d.OutTradeNo != orders[1].OutTradeNo || d.Theirs-d.Ours != 5 {
						t.Fatalf("amount: %+v", d)
					}
				}
			}
			if got[pay.DiffMissingInBill] != 1 || got[pay.DiffAmount] != 1 || got[pay.DiffMissingHere] != 1 || len(rep.Differences) != 3 {
				t.Fatalf("differences %v: %+v\n%s", got, rep.Differences, rep.Summary())
			}
			if rep.Ours.Refunds < 1 || !strings.Contains(rep.Summary(), "3 differ") {
				t.Fatalf("summary: %s", rep.Summary())
			}
			if _, err := e.a.Pay.Reconcile(e.cashier, ch, date); !yibao.IsCode(err, yibao.CodeForbidden) {
				t.Fatalf("a cashier reconciles: %v", err)
			}
		})
	}
}

// noAcct keeps the personal account out, so the out-of-pocket leg is
// the whole self-pay part and the wallet is always charged.
var noAcct = new(bool)
