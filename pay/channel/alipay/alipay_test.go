package alipay_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"yibao/pay/channel"
	"yibao/pay/channel/alipay"
	"yibao/sim"
	"yibao/sim/alipaysim"
)

const (
	appID = "2021000118600001"
	buyer = "2088102146225135"
)

var chinaTime = time.FixedZone("CST", 8*3600)

// The simulator's business clock: fixed, so the bill day is known.
var simNow = time.Date(2025, 3, 14, 10, 30, 0, 0, chinaTime)

var (
	keysOnce               sync.Once
	appKey, aliKey, otherK *rsa.PrivateKey
	keysErr                error
)

func keys(t *testing.T) (app, ali, other *rsa.PrivateKey) {
	t.Helper()
	keysOnce.Do(func() {
		appKey, aliKey, keysErr = alipaysim.GenerateKeys()
		if keysErr == nil {
			otherK, keysErr = rsa.GenerateKey(rand.Reader, 2048)
		}
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return appKey, aliKey, otherK
}

// receiver is the merchant's notification endpoint: it parses each
// notification with the adapter and acknowledges it.
type receiver struct {
	ch        *alipay.Channel
	mu        sync.Mutex
	got       []*channel.Notification
	errs      []error
	raw       []string // form bodies as received
	failFirst int      // answer "fail" to this many first deliveries
	srv       *httptest.Server
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	n, err := rc.ch.ParseNotification(r)
	rc.mu.Lock()
	rc.raw = append(rc.raw, string(body))
	if err != nil {
		rc.errs = append(rc.errs, err)
	} else {
		rc.got = append(rc.got, n)
	}
	if err == nil && rc.failFirst > 0 {
		rc.failFirst--
		err = errors.New("not now")
	}
	rc.mu.Unlock()
	rc.ch.AckNotification(w, err)
}

func (rc *receiver) notes() []*channel.Notification {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]*channel.Notification(nil), rc.got...)
}

// waitFor polls until cond holds on the notifications received so far.
func (rc *receiver) waitFor(t *testing.T, what string, cond func([]*channel.Notification) bool) []*channel.Notification {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		ns := rc.notes()
		if cond(ns) {
			return ns
		}
		if time.Now().After(deadline) {
			rc.mu.Lock()
			errs := rc.errs
			rc.mu.Unlock()
			t.Fatalf("timed out waiting for %s; got %d notifications, errors %v", what, len(ns), errs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func count(ns []*channel.Notification, f func(*channel.Notification) bool) int {
	n := 0
	for _, x := range ns {
		if f(x) {
			n++
		}
	}
	return n
}

type env struct {
	sim  *alipaysim.Sim
	srv  *httptest.Server
	base string
	ch   *alipay.Channel
	rcv  *receiver
}

func setup(t *testing.T) *env {
	t.Helper()
	app, ali, _ := keys(t)
	s := alipaysim.New(alipaysim.Config{AppID: appID, AppPublicKey: &app.PublicKey, AlipayKey: ali,
		Now: func() time.Time { return simNow }, NotifySchedule: []time.Duration{20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond}})
	mux := http.NewServeMux()
	mux.Handle("/alipay/", http.StripPrefix("/alipay", s))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(s.Close) // first: stops senders and releases hanging calls
	e := &env{sim: s, srv: srv, base: srv.URL + "/alipay"}
	e.ch = newChannel(t, e.base, app, &ali.PublicKey, 5*time.Second)
	e.rcv = &receiver{ch: e.ch}
	e.rcv.srv = httptest.NewServer(e.rcv)
	t.Cleanup(e.rcv.srv.Close)
	s.AddPayer(buyer, 1_000_00) // 1000.00 yuan
	return e
}

func newChannel(t *testing.T, base string, app *rsa.PrivateKey, ali *rsa.PublicKey, timeout time.Duration) *alipay.Channel {
	t.Helper()
	ch, err := alipay.New(alipay.Config{BaseURL: base, AppID: appID, AppKey: app, AlipayPublicKey: ali, HTTPClient: &http.Client{Timeout: timeout}})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func (e *env) sign(t *testing.T, ext string, limit int64) *channel.Agreement {
	t.Helper()
	a, err := e.ch.SignAgreement(context.Background(), channel.AgreementRequest{ExternalNo: ext, PayerRef: buyer, Limit: limit, NotifyURL: e.rcv.srv.URL})
	if err != nil {
		t.Fatalf("SignAgreement: %v", err)
	}
	return a
}

func (e *env) charge(no string, amount int64, ag *channel.Agreement) (*channel.Order, error) {
	return e.ch.Charge(context.Background(), channel.ChargeRequest{OutTradeNo: no, Amount: amount, Description: "医保自付 " + no,
		AgreementID: ag.AgreementID, PayerRef: buyer, NotifyURL: e.rcv.srv.URL})
}

func declineCode(t *testing.T, err error) string {
	t.Helper()
	var d *channel.DeclineError
	if !errors.As(err, &d) {
		t.Fatalf("want a *DeclineError, got %v", err)
	}
	return d.Code
}

// The whole withholding life: sign, charge, query, two partial refunds
// (one sent twice), an over-refund refused, the last refund closing the
// trade, the day's bill, termination.
func TestWithholdingLifecycle(t *testing.T) {
	e := setup(t)
	ctx := context.Background()

	ag := e.sign(t, "AG0001", 500_00)
	if ag.State != channel.AgreementActive || ag.AgreementID == "" || ag.PayerRef != buyer || ag.Limit != 500_00 || ag.ExternalNo != "AG0001" {
		t.Fatalf("agreement: %+v", ag)
	}
	again := e.sign(t, "AG0001", 500_00)
	if again.AgreementID != ag.AgreementID {
		t.Fatalf("signing the same external number again made a new agreement: %s, %s", again.AgreementID, ag.AgreementID)
	}
	e.rcv.waitFor(t, "the dut_user_sign notification", func(ns []*channel.Notification) bool {
		return count(ns, func(n *channel.Notification) bool {
			return n.Kind == channel.NotifyAgreement && n.Agreement.State == channel.AgreementActive && n.Agreement.AgreementID == ag.AgreementID
		}) == 1
	})

	o, err := e.charge("T0001", 123_45, ag)
	if err != nil {
		t.Fatalf("Charge: %v", err)
	}
	if o.State != channel.StateSuccess || o.Amount != 123_45 || o.TransactionID == "" || o.PayerRef != buyer || !o.PaidAt.Equal(simNow) {
		t.Fatalf("charge: %+v", o)
	}
	if got := e.sim.Balance(buyer); got != 1_000_00-123_45 {
		t.Fatalf("balance after charge: %d", got)
	}
	q, err := e.ch.Query(ctx, "T0001")
	if err != nil || q.State != channel.StateSuccess || q.Amount != 123_45 || q.TransactionID != o.TransactionID || !q.PaidAt.Equal(simNow) {
		t.Fatalf("Query: %+v, %v", q, err)
	}
	e.rcv.waitFor(t, "the payment notification", func(ns []*channel.Notification) bool {
		return count(ns, func(n *channel.Notification) bool {
			return n.Kind == channel.NotifyPayment && n.Order.OutTradeNo == "T0001" && n.Order.State == channel.StateSuccess && n.Order.Amount == 123_45
		}) == 1
	})

	refunds := []struct {
		no     string
		amount int64
	}{{"R0001", 30_00}, {"R0002", 1}, {"R0001", 30_00}} // R0001 sent twice
	for _, r := range refunds {
		rf, err := e.ch.Refund(ctx, channel.RefundRequest{OutTradeNo: "T0001", OutRefundNo: r.no, Amount: r.amount, Total: 123_45, Reason: "退费"})
		if err != nil || rf.Status != channel.RefundSuccess || rf.Amount != r.amount || rf.RefundID != o.TransactionID {
			t.Fatalf("Refund %s: %+v, %v", r.no, rf, err)
		}
	}
	if got := e.sim.Balance(buyer); got != 1_000_00-123_45+30_01 {
		t.Fatalf("balance after refunds: %d (a refund sent twice must credit once)", got)
	}
	rf, err := e.ch.QueryRefund(ctx, "T0001", "R0001")
	if err != nil || rf.Status != channel.RefundSuccess || rf.Amount != 30_00 {
		t.Fatalf("QueryRefund: %+v, %v", rf, err)
	}
	if _, err := e.ch.QueryRefund(ctx, "T0001", "R9999"); !errors.Is(err, channel.ErrNotFound) {
		t.Fatalf("QueryRefund of an unknown refund: %v, want ErrNotFound", err)
	}
	if _, err := e.ch.QueryRefund(ctx, "T9999", "R0001"); !errors.Is(err, channel.ErrNotFound) {
		t.Fatalf("QueryRefund of an unknown trade: %v, want ErrNotFound", err)
	}

	// 123.45 - 30.01 = 93.44 left: one fen more is refused.
	_, err = e.ch.Refund(ctx, channel.RefundRequest{OutTradeNo: "T0001", OutRefundNo: "R0003", Amount: 93_45, Total: 123_45})
	if code := declineCode(t, err); code != "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL" {
		t.Fatalf("over-refund: %s", code)
	}
	if _, err := e.ch.QueryRefund(ctx, "T0001", "R0003"); !errors.Is(err, channel.ErrNotFound) {
		t.Fatalf("the refused refund exists: %v", err)
	}
	if rf, err := e.ch.Refund(ctx, channel.RefundRequest{OutTradeNo: "T0001", OutRefundNo: "R0004", Amount: 93_44, Total: 123_45}); err != nil || rf.Status != channel.RefundSuccess {
		t.Fatalf("refunding the rest: %+v, %v", rf, err)
	}
	if q, err := e.ch.Query(ctx, "T0001"); err != nil || q.State != channel.StateRefund {
		t.Fatalf("Query after a full refund: %+v, %v (want REFUND)", q, err)
	}
	if got := e.sim.Balance(buyer); got != 1_000_00 {
		t.Fatalf("balance after refunding everything: %d", got)
	}
	ns := e.rcv.waitFor(t, "three refund notifications", func(ns []*channel.Notification) bool {
		return count(ns, func(n *channel.Notification) bool { return n.Kind == channel.NotifyRefund }) == 3
	})
	byNo := map[string]int64{}
	for _, n := range ns {
		if n.Kind == channel.NotifyRefund {
			if n.Refund.Status != channel.RefundSuccess || n.Refund.OutTradeNo != "T0001" {
				t.Fatalf("refund notification: %+v", n.Refund)
			}
			byNo[n.Refund.OutRefundNo] = n.Refund.Amount
		}
	}
	if want := map[string]int64{"R0001": 30_00, "R0002": 1, "R0004": 93_44}; !equalMaps(byNo, want) {
		t.Fatalf("refund notifications %v, want %v", byNo, want)
	}

	// The day's bill has every row, to the fen.
	rows, err := e.ch.Bill(ctx, simNow.Format("2006-01-02"))
	if err != nil {
		t.Fatalf("Bill: %v", err)
	}
	got := billKeys(rows)
	want := []string{"payment T0001  12345 " + o.TransactionID, "refund T0001 R0001 3000 " + o.TransactionID,
		"refund T0001 R0002 1 " + o.TransactionID, "refund T0001 R0004 9344 " + o.TransactionID}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("bill rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range rows {
		if !r.Time.Equal(simNow) {
			t.Fatalf("bill row time %v, want %v", r.Time, simNow)
		}
	}
	if rows, err := e.ch.Bill(ctx, "2025-03-13"); err != nil || len(rows) != 0 {
		t.Fatalf("the day before: %v, %v", rows, err)
	}

	// Over the agreement's per-payment limit.
	if _, err := e.charge("T0002", 500_01, ag); declineCode(t, err) != "ACQ.PRODUCT_AMOUNT_LIMIT_ERROR" {
		t.Fatal(err)
	}
	// The same order number with another amount.
	if _, err := e.charge("T0001", 1_00, ag); declineCode(t, err) != "ACQ.CONTEXT_INCONSISTENT" {
		t.Fatal(err)
	}

	if err := e.ch.TerminateAgreement(ctx, ag.AgreementID); err != nil {
		t.Fatalf("TerminateAgreement: %v", err)
	}
	if _, err := e.charge("T0003", 1_00, ag); declineCode(t, err) != "ACQ.AGREEMENT_STATUS_NOT_NORMAL" {
		t.Fatal(err)
	}
	if err := e.ch.TerminateAgreement(ctx, "20990101000000000000"); !errors.Is(err, channel.ErrNotFound) {
		t.Fatalf("terminating an unknown agreement: %v", err)
	}
	e.rcv.waitFor(t, "the dut_user_unsign notification", func(ns []*channel.Notification) bool {
		return count(ns, func(n *channel.Notification) bool {
			return n.Kind == channel.NotifyAgreement && n.Agreement.State == channel.AgreementTerminated && n.Agreement.ExternalNo == "AG0001"
		}) == 1
	})
	if _, err := e.ch.Query(ctx, "T0404"); !errors.Is(err, channel.ErrNotFound) {
		t.Fatalf("Query of an unknown trade: %v", err)
	}
}

func equalMaps(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func billKeys(rows []channel.BillRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, strings.Join([]string{r.Kind, r.OutTradeNo, r.OutRefundNo, strconv.FormatInt(r.Amount, 10), r.TransactionID}, " "))
	}
	sort.Strings(out)
	return out
}

// A payment the payer confirms in the app: trade.create, the simulator's
// confirmation, the notification through the merchant's endpoint.
func TestPrepayConfirmNotification(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	req := channel.PrepayRequest{OutTradeNo: "P0001", Amount: 8_88, Description: "门诊自付", PayerRef: buyer,
		NotifyURL: e.rcv.srv.URL, ExpireAt: simNow.Add(15 * time.Minute)}
	pp, err := e.ch.Prepay(ctx, req)
	if err != nil {
		t.Fatalf("Prepay: %v", err)
	}
	if pp.PrepayID == "" || pp.PayURL != e.base+"/pay/P0001" || pp.OutTradeNo != "P0001" {
		t.Fatalf("prepay: %+v", pp)
	}
	if again, err := e.ch.Prepay(ctx, req); err != nil || again.PrepayID != pp.PrepayID {
		t.Fatalf("Prepay again: %+v, %v (want the same trade_no)", again, err)
	}
	if q, err := e.ch.Query(ctx, "P0001"); err != nil || q.State != channel.StateNotPay || q.Amount != 8_88 {
		t.Fatalf("Query before paying: %+v, %v", q, err)
	}
	resp, err := http.Get(pp.PayURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "确认付款") || !strings.Contains(string(page), "8.88") {
		t.Fatalf("pay page: %d\n%s", resp.StatusCode, page)
	}

	if err := e.sim.ConfirmPayment("P0001"); err != nil {
		t.Fatalf("ConfirmPayment: %v", err)
	}
	ns := e.rcv.waitFor(t, "the payment notification", func(ns []*channel.Notification) bool { return len(ns) >= 1 })
	n := ns[0]
	if n.Kind != channel.NotifyPayment || n.ID == "" || n.Order.OutTradeNo != "P0001" || n.Order.State != channel.StateSuccess ||
		n.Order.Amount != 8_88 || n.Order.TransactionID != pp.PrepayID || n.Order.PayerRef != buyer || !n.Order.PaidAt.Equal(simNow) {
		t.Fatalf("notification: %+v %+v", n, n.Order)
	}
	if q, err := e.ch.Query(ctx, "P0001"); err != nil || q.State != channel.StateSuccess {
		t.Fatalf("Query after paying: %+v, %v", q, err)
	}
	if got := e.sim.Balance(buyer); got != 1_000_00-8_88 {
		t.Fatalf("balance: %d", got)
	}
	if err := e.sim.ConfirmPayment("P0001"); !errors.Is(err, alipaysim.ErrNotPayable) {
		t.Fatalf("paying twice: %v", err)
	}
	if _, err := e.ch.Prepay(ctx, req); declineCode(t, err) != "ACQ.TRADE_HAS_SUCCESS" {
		t.Fatal(err)
	}
	if err := e.ch.Close(ctx, "P0001"); declineCode(t, err) != "ACQ.TRADE_STATUS_ERROR" {
		t.Fatal(err)
	}

	// Closed before paying: can never be paid.
	if _, err := e.ch.Prepay(ctx, channel.PrepayRequest{OutTradeNo: "P0002", Amount: 1_00, PayerRef: buyer}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // closing twice is fine
		if err := e.ch.Close(ctx, "P0002"); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if q, err := e.ch.Query(ctx, "P0002"); err != nil || q.State != channel.StateClosed {
		t.Fatalf("Query after Close: %+v, %v", q, err)
	}
	if err := e.sim.ConfirmPayment("P0002"); !errors.Is(err, alipaysim.ErrNotPayable) {
		t.Fatalf("paying a closed trade: %v", err)
	}
	if err := e.ch.Close(ctx, "P0404"); !errors.Is(err, channel.ErrNotFound) {
		t.Fatalf("closing an unknown trade: %v", err)
	}

	// The confirmation page pays too.
	if _, err := e.ch.Prepay(ctx, channel.PrepayRequest{OutTradeNo: "P0003", Amount: 2_00, PayerRef: buyer, NotifyURL: e.rcv.srv.URL}); err != nil {
		t.Fatal(err)
	}
	resp, err = http.PostForm(e.base+"/pay/P0003", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if q, err := e.ch.Query(ctx, "P0003"); err != nil || q.State != channel.StateSuccess {
		t.Fatalf("Query after paying on the page: %+v, %v", q, err)
	}
}

// signForm signs a notification as Alipay does (test helper, with any key).
func signForm(t *testing.T, v url.Values, key *rsa.PrivateKey) {
	t.Helper()
	v.Del("sign")
	var keys []string
	for k := range v {
		if k != "sign_type" && v.Get(k) != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+v.Get(k))
	}
	h := sha256.Sum256([]byte(strings.Join(parts, "&")))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	v.Set("sign", base64.StdEncoding.EncodeToString(sig))
}

func TestForgedNotification(t *testing.T) {
	e := setup(t)
	app, ali, other := keys(t)
	ag := e.sign(t, "AG0002", 0)
	if _, err := e.charge("T0100", 50_00, ag); err != nil {
		t.Fatal(err)
	}
	e.rcv.waitFor(t, "the payment notification", func(ns []*channel.Notification) bool {
		return count(ns, func(n *channel.Notification) bool { return n.Kind == channel.NotifyPayment }) == 1
	})
	var genuine url.Values
	e.rcv.mu.Lock()
	for _, raw := range e.rcv.raw {
		if v, _ := url.ParseQuery(raw); v.Get("notify_type") == "trade_status_sync" {
			genuine = v
		}
	}
	e.rcv.mu.Unlock()

	clone := func() url.Values {
		v := url.Values{}
		for k, x := range genuine {
			v[k] = append([]string(nil), x...)
		}
		return v
	}
	cases := []struct {
		name   string
		form   func() url.Values
		ch     *alipay.Channel
		forged bool
	}{
		{"genuine", clone, e.ch, false},
		{"genuine, extra query parameter on the notify_url", clone, e.ch, false},
		{"amount altered", func() url.Values { v := clone(); v.Set("total_amount", "5000.00"); return v }, e.ch, true},
		{"field added", func() url.Values { v := clone(); v.Set("refund_fee", "50.00"); return v }, e.ch, true},
		{"signed with another key", func() url.Values { v := clone(); signForm(t, v, other); return v }, e.ch, true},
		{"verified with another Alipay key", clone, newChannel(t, e.base, app, &other.PublicKey, time.Second), true},
		{"no sign", func() url.Values { v := clone(); v.Del("sign"); return v }, e.ch, true},
		{"sign_type RSA", func() url.Values { v := clone(); v.Set("sign_type", "RSA"); return v }, e.ch, true},
		{"another app, signed by Alipay", func() url.Values { v := clone(); v.Set("app_id", "2021000000000000"); signForm(t, v, ali); return v }, e.ch, true},
		{"re-signed by Alipay's key (control)", func() url.Values { v := clone(); signForm(t, v, ali); return v }, e.ch, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := "http://merchant.example/notify/alipay"
			if strings.Contains(tc.name, "query parameter") {
				target += "?src=alipay"
			}
			r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(tc.form().Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
			n, err := tc.ch.ParseNotification(r)
			if tc.forged {
				if !errors.Is(err, channel.ErrForged) {
					t.Fatalf("got %+v, %v; want ErrForged", n, err)
				}
				rec := httptest.NewRecorder()
				tc.ch.AckNotification(rec, err)
				if rec.Body.String() != "fail" {
					t.Fatalf("ack of a forged notification: %q", rec.Body.String())
				}
				return
			}
			if err != nil || n.ID != genuine.Get("notify_id") || n.Order.Amount != 50_00 || n.Order.OutTradeNo != "T0100" {
				t.Fatalf("got %+v, %v", n, err)
			}
			rec := httptest.NewRecorder()
			tc.ch.AckNotification(rec, nil)
			if rec.Body.String() != "success" {
				t.Fatalf("ack: %q", rec.Body.String())
			}
		})
	}
}

func TestDecline(t *testing.T) {
	cases := []struct {
		name     string
		faults   sim.Faults
		balance  int64
		amount   int64
		agreeNo  string // "" = the signed agreement
		wantCode string
	}{
		{"injected, default code", sim.Faults{DeclineNext: 1}, 1_000_00, 10_00, "", "ACQ.BUYER_BALANCE_NOT_ENOUGH"},
		{"injected, named code", sim.Faults{DeclineNext: 1, DeclineCode: "ACQ.PAYMENT_REQUEST_HAS_RISK"}, 1_000_00, 10_00, "", "ACQ.PAYMENT_REQUEST_HAS_RISK"},
		{"balance too low", sim.Faults{}, 9_99, 10_00, "", "ACQ.BUYER_BALANCE_NOT_ENOUGH"},
		{"no such agreement", sim.Faults{}, 1_000_00, 10_00, "20250314000000009999", "ACQ.AGREEMENT_NOT_EXIST"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			ag := e.sign(t, "AG0003", 0)
			if tc.agreeNo != "" {
				ag = &channel.Agreement{AgreementID: tc.agreeNo}
			}
			e.sim.AddPayer(buyer, tc.balance)
			e.sim.Faults().Set(tc.faults)
			_, err := e.charge("T0200", tc.amount, ag)
			if code := declineCode(t, err); code != tc.wantCode {
				t.Fatalf("code %s, want %s", code, tc.wantCode)
			}
			if errors.Is(err, channel.ErrUnknown) {
				t.Fatal("a decline must not be ErrUnknown")
			}
			if got := e.sim.Balance(buyer); got != tc.balance {
				t.Fatalf("balance %d, want %d unchanged", got, tc.balance)
			}
			if n := e.sim.Debits("T0200"); n != 0 {
				t.Fatalf("%d debits", n)
			}
			if _, err := e.ch.Query(context.Background(), "T0200"); !errors.Is(err, channel.ErrNotFound) {
				t.Fatalf("Query after a decline: %v", err)
			}
		})
	}
}

// The charge is made but the answer never comes: ErrUnknown; the query
// finds it paid; the same charge sent again takes nothing more.
func TestTimeoutThenQuery(t *testing.T) {
	e := setup(t)
	app, ali, _ := keys(t)
	impatient := newChannel(t, e.base, app, &ali.PublicKey, 300*time.Millisecond)
	ag := e.sign(t, "AG0004", 0)
	e.sim.Faults().Set(sim.Faults{TimeoutNext: 1})
	req := channel.ChargeRequest{OutTradeNo: "T0300", Amount: 66_66, AgreementID: ag.AgreementID, PayerRef: buyer, NotifyURL: e.rcv.srv.URL}
	if _, err := impatient.Charge(context.Background(), req); !errors.Is(err, channel.ErrUnknown) || channel.IsDeclined(err) {
		t.Fatalf("Charge: %v, want ErrUnknown", err)
	}
	q, err := e.ch.Query(context.Background(), "T0300")
	if err != nil || q.State != channel.StateSuccess || q.Amount != 66_66 {
		t.Fatalf("Query: %+v, %v", q, err)
	}
	o, err := impatient.Charge(context.Background(), req)
	if err != nil || o.State != channel.StateSuccess || o.TransactionID != q.TransactionID {
		t.Fatalf("the same charge again: %+v, %v", o, err)
	}
	if n := e.sim.Debits("T0300"); n != 1 {
		t.Fatalf("%d debits, want 1", n)
	}
	if got := e.sim.Balance(buyer); got != 1_000_00-66_66 {
		t.Fatalf("balance %d", got)
	}

	// The same for a refund.
	e.sim.Faults().Set(sim.Faults{TimeoutNext: 1})
	rreq := channel.RefundRequest{OutTradeNo: "T0300", OutRefundNo: "R0300", Amount: 6_66, Total: 66_66}
	if _, err := impatient.Refund(context.Background(), rreq); !errors.Is(err, channel.ErrUnknown) {
		t.Fatalf("Refund: %v, want ErrUnknown", err)
	}
	if rf, err := e.ch.QueryRefund(context.Background(), "T0300", "R0300"); err != nil || rf.Status != channel.RefundSuccess || rf.Amount != 6_66 {
		t.Fatalf("QueryRefund: %+v, %v", rf, err)
	}
	if rf, err := impatient.Refund(context.Background(), rreq); err != nil || rf.Status != channel.RefundSuccess || rf.Amount != 6_66 {
		t.Fatalf("the same refund again: %+v, %v", rf, err)
	}
	if got := e.sim.Balance(buyer); got != 1_000_00-66_66+6_66 {
		t.Fatalf("balance %d (refund credited more than once?)", got)
	}
}

func TestPayingThenQuery(t *testing.T) {
	e := setup(t)
	ag := e.sign(t, "AG0005", 0)
	e.sim.Faults().Set(sim.Faults{PayingNext: 1})
	o, err := e.charge("T0400", 12_00, ag)
	if err != nil || o.State != channel.StatePaying {
		t.Fatalf("Charge: %+v, %v; want USERPAYING", o, err)
	}
	if n := e.sim.Debits("T0400"); n != 0 {
		t.Fatalf("%d debits while paying", n)
	}
	q, err := e.ch.Query(context.Background(), "T0400")
	if err != nil || q.State != channel.StateSuccess || q.Amount != 12_00 {
		t.Fatalf("Query: %+v, %v", q, err)
	}
	if n := e.sim.Debits("T0400"); n != 1 {
		t.Fatalf("%d debits", n)
	}
	e.rcv.waitFor(t, "the payment notification", func(ns []*channel.Notification) bool {
		return count(ns, func(n *channel.Notification) bool {
			return n.Kind == channel.NotifyPayment && n.Order.OutTradeNo == "T0400"
		}) == 1
	})
}

func TestNotificationFaults(t *testing.T) {
	cases := []struct {
		name   string
		faults sim.Faults
		check  func(t *testing.T, e *env, charged time.Time, ns []*channel.Notification)
		want   int // payment notifications to wait for
	}{
		{"duplicates", sim.Faults{NotifyDuplicates: 2}, func(t *testing.T, e *env, _ time.Time, ns []*channel.Notification) {
			if ns[0].ID != ns[1].ID || ns[1].ID != ns[2].ID {
				t.Fatalf("ids %s %s %s, want the same notify_id thrice", ns[0].ID, ns[1].ID, ns[2].ID)
			}
		}, 3},
		{"wrong amount", sim.Faults{NotifyWrongAmount: true}, func(t *testing.T, e *env, _ time.Time, ns []*channel.Notification) {
			if ns[0].Order.Amount != 20_01 {
				t.Fatalf("amount %d, want 2001", ns[0].Order.Amount)
			}
		}, 1},
		{"early", sim.Faults{NotifyEarly: true}, nil, 1},
		{"drop", sim.Faults{NotifyDrop: true}, nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			ag := e.sign(t, "AG0006", 0)
			e.sim.Faults().Set(tc.faults)
			if _, err := e.charge("T0500", 20_00, ag); err != nil {
				t.Fatal(err)
			}
			isPay := func(n *channel.Notification) bool { return n.Kind == channel.NotifyPayment }
			if tc.faults.NotifyEarly {
				// Delivered (and parsed) before Charge returned.
				if count(e.rcv.notes(), isPay) != 1 {
					t.Fatal("an early notification had not arrived when the charge was answered")
				}
			}
			if tc.want == 0 {
				time.Sleep(100 * time.Millisecond)
				if n := count(e.rcv.notes(), isPay); n != 0 {
					t.Fatalf("%d notifications despite NotifyDrop", n)
				}
				return
			}
			var pays []*channel.Notification
			e.rcv.waitFor(t, "the notifications", func(ns []*channel.Notification) bool {
				pays = pays[:0]
				for _, n := range ns {
					if isPay(n) {
						pays = append(pays, n)
					}
				}
				return len(pays) >= tc.want
			})
			if tc.check != nil {
				tc.check(t, e, time.Now(), pays)
			}
		})
	}
}

// A notification answered "fail" comes again, on the schedule, until it
// is answered "success".
func TestNotificationRetried(t *testing.T) {
	e := setup(t)
	e.rcv.failFirst = 2
	if err := func() error {
		_, err := e.ch.Prepay(context.Background(), channel.PrepayRequest{OutTradeNo: "P0600", Amount: 3_00, PayerRef: buyer, NotifyURL: e.rcv.srv.URL})
		return err
	}(); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.ConfirmPayment("P0600"); err != nil {
		t.Fatal(err)
	}
	ns := e.rcv.waitFor(t, "three deliveries", func(ns []*channel.Notification) bool { return len(ns) >= 3 })
	time.Sleep(150 * time.Millisecond) // no fourth once acknowledged
	ns = e.rcv.notes()
	if len(ns) != 3 || ns[0].ID != ns[2].ID {
		t.Fatalf("%d deliveries", len(ns))
	}
	d := e.sim.Deliveries()
	if len(d) != 3 || d[0].Acked || d[1].Acked || !d[2].Acked {
		t.Fatalf("deliveries: %+v", d)
	}
}

func TestBillFaults(t *testing.T) {
	e := setup(t)
	ag := e.sign(t, "AG0007", 0)
	for _, no := range []string{"T0701", "T0702", "T0703"} {
		if _, err := e.charge(no, 10_00, ag); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.ch.Refund(context.Background(), channel.RefundRequest{OutTradeNo: "T0702", OutRefundNo: "R0702", Amount: 2_50, Total: 10_00}); err != nil {
		t.Fatal(err)
	}
	e.sim.Faults().Set(sim.Faults{BillDrop: []string{"T0702"}, BillExtra: 2, BillAmountDelta: map[string]int64{"T0703": -1}})
	rows, err := e.ch.Bill(context.Background(), "2025-03-14")
	if err != nil {
		t.Fatal(err)
	}
	amounts := map[string]int64{}
	extra := 0
	for _, r := range rows {
		switch {
		case strings.HasPrefix(r.OutTradeNo, "SIMEXTRA"):
			extra++
		case r.Kind == channel.BillPayment:
			amounts[r.OutTradeNo] = r.Amount
		default:
			amounts["refund "+r.OutRefundNo] = r.Amount
		}
	}
	if want := map[string]int64{"T0701": 10_00, "T0703": 9_99}; !equalMaps(amounts, want) || extra != 2 {
		t.Fatalf("bill %v (+%d extra), want %v (+2)", amounts, extra, want)
	}
}

// A request signed with another app key is refused by the gateway
// (40002 isv.invalid-signature); an answer signed with a key the adapter
// does not trust is an unknown outcome.
func TestSignatures(t *testing.T) {
	e := setup(t)
	_, ali, other := keys(t)
	ctx := context.Background()

	wrongApp := newChannel(t, e.base, other, &ali.PublicKey, time.Second)
	_, err := wrongApp.Charge(ctx, channel.ChargeRequest{OutTradeNo: "T0800", Amount: 1_00, AgreementID: "x", PayerRef: buyer})
	if code := declineCode(t, err); code != "isv.invalid-signature" {
		t.Fatalf("code %s", code)
	}
	if _, err := wrongApp.Query(ctx, "T0800"); err == nil || !strings.Contains(err.Error(), "isv.invalid-signature") {
		t.Fatalf("Query with a wrong app key: %v", err)
	}
	if e.sim.Debits("T0800") != 0 {
		t.Fatal("a refused request charged")
	}

	app, _, _ := keys(t)
	wrongAlipay := newChannel(t, e.base, app, &other.PublicKey, time.Second)
	if _, err := wrongAlipay.Query(ctx, "T0800"); !errors.Is(err, channel.ErrUnknown) {
		t.Fatalf("an answer with a bad signature: %v, want ErrUnknown", err)
	}

	// Nobody listening: a connection error is an unknown outcome.
	dead := newChannel(t, "http://127.0.0.1:1", app, &ali.PublicKey, time.Second)
	if _, err := dead.Charge(ctx, channel.ChargeRequest{OutTradeNo: "T0801", Amount: 1_00, AgreementID: "x"}); !errors.Is(err, channel.ErrUnknown) {
		t.Fatalf("connection refused: %v, want ErrUnknown", err)
	}
}

func TestNewValidates(t *testing.T) {
	app, ali, _ := keys(t)
	for _, cfg := range []alipay.Config{
		{AppKey: app, AlipayPublicKey: &ali.PublicKey},
		{AppID: appID, AlipayPublicKey: &ali.PublicKey},
		{AppID: appID, AppKey: app},
		{AppID: appID, AppKey: app, AlipayPublicKey: &ali.PublicKey, BaseURL: "not a url"},
	} {
		if _, err := alipay.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	ch, err := alipay.New(alipay.Config{AppID: appID, AppKey: app, AlipayPublicKey: &ali.PublicKey})
	if err != nil || ch.Name() != "alipay" {
		t.Fatalf("New: %v", err)
	}
}
