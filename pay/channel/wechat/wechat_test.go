package wechat_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"yibao/pay/channel"
	"yibao/pay/channel/wechat"
	"yibao/sim"
	"yibao/sim/wechatsim"
)

const (
	mchID    = "1900000109"
	appID    = "wxd678efh567hg6787"
	apiV3Key = "0123456789abcdef0123456789ABCDEF"
	mchSer   = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
	platSer  = "PUB_KEY_ID_0119000001092024000000000000"
)

var cst = time.FixedZone("CST", 8*3600)

// Keys are made once: 2048-bit RSA generation is slow.
var keys = sync.OnceValues(func() (*rsa.PrivateKey, *rsa.PrivateKey) {
	m, p, err := wechatsim.GenerateKeys()
	if err != nil {
		panic(err)
	}
	return m, p
})

// env is the adapter talking to the simulator over HTTP, and a merchant
// server receiving the simulator's callbacks through the adapter.
type env struct {
	t    *testing.T
	sim  *wechatsim.Sim
	ch   *wechat.Channel
	cfg  wechat.Config
	recv *receiver
	day  string // the simulator's business day (China time)
}

type envOpt struct {
	clientTimeout time.Duration
}

func newEnv(t *testing.T, o envOpt) *env {
	t.Helper()
	mk, pk := keys()
	// A fixed business day, with time moving on from noon, so bills
	// have a known date wherever and whenever the test runs.
	start, noon := time.Now(), time.Date(2024, 5, 20, 12, 0, 0, 0, cst)
	s := wechatsim.New(wechatsim.Config{
		MchID: mchID, AppID: appID, MerchantSerial: mchSer, MerchantKey: &mk.PublicKey,
		PlatformSerial: platSer, PlatformKey: pk, APIv3Key: apiV3Key,
		Now:            func() time.Time { return noon.Add(time.Since(start)) },
		NotifySchedule: []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond},
	})
	// Mounted under a prefix, as in the demo, to exercise the rewrite.
	mux := http.NewServeMux()
	mux.Handle("/sim/wechat/", http.StripPrefix("/sim/wechat", s))
	srv := httptest.NewServer(mux)
	cfg := wechat.Config{
		BaseURL: srv.URL + "/sim/wechat", MchID: mchID, AppID: appID,
		MerchantSerial: mchSer, MerchantKey: mk, PlatformSerial: platSer, PlatformKey: &pk.PublicKey,
		APIv3Key: apiV3Key,
	}
	if o.clientTimeout > 0 {
		cfg.HTTPClient = &http.Client{Timeout: o.clientTimeout}
	}
	ch, err := wechat.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{ch: ch}
	rc.srv = httptest.NewServer(rc)
	t.Cleanup(func() {
		s.Close()
		srv.Close()
		rc.srv.Close()
	})
	return &env{t: t, sim: s, ch: ch, cfg: cfg, recv: rc, day: "2024-05-20"}
}

func (e *env) notifyURL() string { return e.recv.srv.URL + "/notify/wechat" }

// sign makes an agreement for a new payer with the balance and limit.
func (e *env) sign(openid string, balance, limit int64) *channel.Agreement {
	e.t.Helper()
	e.sim.AddPayer(openid, balance)
	a, err := e.ch.SignAgreement(context.Background(), channel.AgreementRequest{
		ExternalNo: "AG" + openid, PayerRef: openid, Limit: limit, NotifyURL: e.notifyURL(),
	})
	if err != nil {
		e.t.Fatalf("SignAgreement: %v", err)
	}
	return a
}

func (e *env) charge(a *channel.Agreement, no string, amount int64) (*channel.Order, error) {
	return e.ch.Charge(context.Background(), channel.ChargeRequest{
		OutTradeNo: no, Amount: amount, Description: "医保自付 测试", AgreementID: a.AgreementID,
		PayerRef: a.PayerRef, NotifyURL: e.notifyURL(),
	})
}

// receiver is the merchant's callback endpoint.
type receiver struct {
	ch  *wechat.Channel
	srv *httptest.Server

	mu        sync.Mutex
	failFirst int // answer this many deliveries with 500 before parsing
	deliv     int
	raw       []captured
	got       []*channel.Notification
	errs      []error
}

type captured struct {
	header http.Header
	body   []byte
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rc.mu.Lock()
	rc.deliv++
	rc.raw = append(rc.raw, captured{r.Header.Clone(), body})
	fail := rc.failFirst > 0
	if fail {
		rc.failFirst--
	}
	rc.mu.Unlock()
	if fail {
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	n, err := rc.ch.ParseNotification(r)
	rc.mu.Lock()
	if err != nil {
		rc.errs = append(rc.errs, err)
	} else {
		rc.got = append(rc.got, n)
	}
	rc.mu.Unlock()
	rc.ch.AckNotification(w, err)
}

func (rc *receiver) notifications() []*channel.Notification {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]*channel.Notification(nil), rc.got...)
}

func (rc *receiver) deliveries() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.deliv
}

// find returns the notifications matching pred.
func (rc *receiver) find(pred func(*channel.Notification) bool) []*channel.Notification {
	var out []*channel.Notification
	for _, n := range rc.notifications() {
		if pred(n) {
			out = append(out, n)
		}
	}
	return out
}

func payment(no string) func(*channel.Notification) bool {
	return func(n *channel.Notification) bool {
		return n.Kind == channel.NotifyPayment && n.Order.OutTradeNo == no
	}
}

// waitFor polls until cond holds, failing after 3 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wantDecline(t *testing.T, err error, code string) {
	t.Helper()
	var d *channel.DeclineError
	if !errors.As(err, &d) {
		t.Fatalf("got %v, want a *DeclineError %s", err, code)
	}
	if d.Code != code {
		t.Fatalf("decline code %q, want %q (%v)", d.Code, code, err)
	}
}

// The whole withholding life: sign, charge, query, refunds, bill.
func TestAgreementChargeRefundBill(t *testing.T) {
	e := newEnv(t, envOpt{})
	ctx := context.Background()
	a := e.sign("o-alice", 5_000_000, 2_000_000)
	if a.State != channel.AgreementActive || a.AgreementID == "" || a.PayerRef != "o-alice" || a.Limit != 2_000_000 || a.ExternalNo != "AGo-alice" {
		t.Fatalf("agreement %+v", a)
	}
	// Signing again with the same number is the same agreement.
	again, err := e.ch.SignAgreement(ctx, channel.AgreementRequest{ExternalNo: "AGo-alice", PayerRef: "o-alice", Limit: 2_000_000})
	if err != nil || again.AgreementID != a.AgreementID {
		t.Fatalf("re-sign: %+v %v", again, err)
	}

	charges := []struct {
		no     string
		amount int64
	}{{"PO|1*FEN_01", 1}, {"PO-BIG-01", 1_234_567}, {"PO-MAIN-01", 12_345}}
	want := int64(5_000_000)
	for _, c := range charges {
		o, err := e.charge(a, c.no, c.amount)
		if err != nil {
			t.Fatalf("charge %s: %v", c.no, err)
		}
		if o.State != channel.StateSuccess || o.Amount != c.amount || o.OutTradeNo != c.no ||
			o.TransactionID == "" || o.PayerRef != "o-alice" || o.PaidAt.IsZero() {
			t.Fatalf("charge %s: %+v", c.no, o)
		}
		want -= c.amount
		if got := e.sim.Balance("o-alice"); got != want {
			t.Fatalf("balance %d, want %d", got, want)
		}
	}
	q, err := e.ch.Query(ctx, "PO-MAIN-01")
	if err != nil || q.State != channel.StateSuccess || q.Amount != 12_345 {
		t.Fatalf("query: %+v %v", q, err)
	}
	if _, err := e.ch.Query(ctx, "PO-NOPE-01"); !errors.Is(err, channel.ErrNotFound) {
		t.Fatalf("query unknown: %v, want ErrNotFound", err)
	}

	// Two partial refunds, a re-sent one, then one too many.
	refunds := []struct {
		no     string
		amount int64
	}{{"RF-1", 1_000}, {"RF-2", 2_345}, {"RF-1", 1_000}}
	var ids []string
	for _, r := range refunds {
		rf, err := e.ch.Refund(ctx, channel.RefundRequest{OutTradeNo: "PO-MAIN-01", OutRefundNo: r.no, Amount: r.amount, Total: 12_345,
			Reason: "退费", NotifyURL: e.notifyURL()})
		if err != nil {
			t.Fatalf("refund %s: %v", r.no, err)
		}
		if rf.Status != channel.RefundSuccess || rf.Amount != r.amount || rf.RefundID == "" || rf.OutTradeNo != "PO-MAIN-01" {
			t.Fatalf("refund %s: %+v", r.no, rf)
		}
		ids = append(ids, rf.RefundID)
	}
	if ids[0] != ids[2] {
		t.Fatalf("re-sent refund got a new id: %v", ids)
	}
	want += 1_000 + 2_345
	if got := e.sim.Balance("o-alice"); got != want {
		t.Fatalf("balance after refunds %d, want %d (a re-sent refund credited twice?)", got, want)
	}
	_, err = e.ch.Refund(ctx, channel.RefundRequest{OutTradeNo: "PO-MAIN-01", OutRefundNo: "RF-3", Amount: 12_345 - 3_345 + 1, Total: 12_345})
	wantDecline(t, err, "INVALID_REQUEST")
	if got := e.sim.Balance("o-alice"); got != want {
		t.Fatalf("balance after a refused refund %d, want %d", got, want)
	}
	// What is left can be refunded exactly.
	if _, err := e.ch.Refund(ctx, channel.RefundRequest{OutTradeNo: "PO|1*FEN_01", OutRefundNo: "RF-1FEN", Amount: 1, Total: 1}); err != nil {
		t.Fatalf("refund 1 fen: %v", err)
	}
	rq, err := e.ch.QueryRefund(ctx, "PO-MAIN-01", "RF-2")
	if err != nil || rq.Status != channel.RefundSuccess || rq.Amount != 2_345 || rq.RefundID != ids[1] {
		t.Fatalf("query refund: %+v %v", rq, err)
	}
	if _, err := e.ch.QueryRefund(ctx, "PO-MAIN-01", "RF-NOPE"); !errors.Is(err, channel.ErrNotFound) {
		t.Fatalf("query unknown refund: %v, want ErrNotFound", err)
	}
	if q, _ := e.ch.Query(ctx, "PO-MAIN-01"); q.State != channel.StateRefund {
		t.Fatalf("refunded order state %s, want REFUND", q.State)
	}

	// The day's bill has every payment and refund, to the fen.
	rows, err := e.ch.Bill(ctx, e.day)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]channel.BillRow{}
	for _, r := range rows {
		key := r.OutTradeNo
		if r.Kind == channel.BillRefund {
			key = "R:" + r.OutRefundNo
		}
		got[key] = r
	}
	wantRows := map[string]struct {
		kind   string
		amount int64
		id     string
	}{
		"PO|1*FEN_01": {channel.BillPayment, 1, ""}, "PO-BIG-01": {channel.BillPayment, 1_234_567, ""},
		"PO-MAIN-01": {channel.BillPayment, 12_345, ""},
		"R:RF-1":     {channel.BillRefund, 1_000, ids[0]}, "R:RF-2": {channel.BillRefund, 2_345, ids[1]},
		"R:RF-1FEN": {channel.BillRefund, 1, ""},
	}
	if len(rows) != len(wantRows) {
		t.Fatalf("bill has %d rows, want %d: %+v", len(rows), len(wantRows), rows)
	}
	for k, w := range wantRows {
		r, found := got[k]
		if !found {
			t.Fatalf("bill lacks %s: %+v", k, rows)
		}
		if r.Kind != w.kind || r.Amount != w.amount || r.TransactionID == "" || r.State != channel.StateSuccess ||
			r.Time.Format(time.DateOnly) != e.day || (w.id != "" && r.RefundID != w.id) {
			t.Fatalf("bill row %s: %+v, want %+v", k, r, w)
		}
	}
	if rows, err := e.ch.Bill(ctx, "2024-05-19"); err != nil || len(rows) != 0 {
		t.Fatalf("bill of a day without trades: %v %v", rows, err)
	}

	// Callbacks: the agreement, three payments, two refunds (a re-sent
	// refund is not news; RF-1FEN named no notify_url).
	waitFor(t, "callbacks", func() bool { return len(e.recv.notifications()) >= 6 })
	kinds := map[string]int{}
	for _, n := range e.recv.notifications() {
		kinds[n.Kind]++
		if n.ID == "" {
			t.Fatalf("notification without id: %+v", n)
		}
	}
	if kinds[channel.NotifyAgreement] != 1 || kinds[channel.NotifyPayment] != 3 || kinds[channel.NotifyRefund] != 2 {
		t.Fatalf("notifications by kind: %v", kinds)
	}
	p := e.recv.find(payment("PO-BIG-01"))[0]
	if p.Order.Amount != 1_234_567 || p.Order.State != channel.StateSuccess {
		t.Fatalf("payment notification %+v", p.Order)
	}

	// Terminated: no more charges.
	if err := e.ch.TerminateAgreement(ctx, a.AgreementID); err != nil {
		t.Fatal(err)
	}
	if err := e.ch.TerminateAgreement(ctx, a.AgreementID); err != nil {
		t.Fatalf("terminating twice: %v", err)
	}
	if err := e.ch.TerminateAgreement(ctx, "Wx-nope"); !errors.Is(err, channel.ErrNotFound) {
		t.Fatalf("terminating an unknown agreement: %v", err)
	}
	_, err = e.charge(a, "PO-AFTER-01", 100)
	wantDecline(t, err, "CONTRACT_NOT_EXIST")
	waitFor(t, "the termination callback", func() bool {
		return len(e.recv.find(func(n *channel.Notification) bool {
			return n.Kind == channel.NotifyAgreement && n.Agreement.State == channel.AgreementTerminated && n.Agreement.AgreementID == a.AgreementID
		})) == 1
	})
}

func TestPrepayConfirmAndClose(t *testing.T) {
	e := newEnv(t, envOpt{})
	ctx := context.Background()
	e.sim.AddPayer("o-bob", 10_000)
	pre := func(no string, amount int64) *channel.Prepay {
		t.Helper()
		p, err := e.ch.Prepay(ctx, channel.PrepayRequest{OutTradeNo: no, Amount: amount, Description: "医保移动支付",
			PayerRef: "o-bob", NotifyURL: e.notifyURL(), ExpireAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatalf("prepay %s: %v", no, err)
		}
		return p
	}
	p := pre("PO-MOB-01", 4_321)
	if p.PrepayID == "" || p.PayURL != e.cfg.BaseURL+"/pay/"+p.PrepayID {
		t.Fatalf("prepay %+v", p)
	}
	if again := pre("PO-MOB-01", 4_321); again.PrepayID != p.PrepayID {
		t.Fatalf("the same prepay twice gave %s and %s", p.PrepayID, again.PrepayID)
	}
	if o, err := e.ch.Query(ctx, "PO-MOB-01"); err != nil || o.State != channel.StateNotPay {
		t.Fatalf("before paying: %+v %v", o, err)
	}
	resp, err := http.Get(p.PayURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "43.21") {
		t.Fatalf("pay page %d: %s", resp.StatusCode, page)
	}
	if err := e.sim.ConfirmPrepay(p.PrepayID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the payment callback", func() bool { return len(e.recv.find(payment("PO-MOB-01"))) == 1 })
	n := e.recv.find(payment("PO-MOB-01"))[0]
	if n.Order.State != channel.StateSuccess || n.Order.Amount != 4_321 || n.Order.PayerRef != "o-bob" || n.Order.TransactionID == "" {
		t.Fatalf("notification %+v", n.Order)
	}
	if o, err := e.ch.Query(ctx, "PO-MOB-01"); err != nil || o.State != channel.StateSuccess || o.TransactionID != n.Order.TransactionID {
		t.Fatalf("after paying: %+v %v", o, err)
	}
	if e.sim.Balance("o-bob") != 10_000-4_321 || e.sim.Debits("PO-MOB-01") != 1 {
		t.Fatalf("balance %d, debits %d", e.sim.Balance("o-bob"), e.sim.Debits("PO-MOB-01"))
	}
	_, err = e.ch.Prepay(ctx, channel.PrepayRequest{OutTradeNo: "PO-MOB-01", Amount: 4_321, Description: "x", PayerRef: "o-bob", NotifyURL: e.notifyURL()})
	wantDecline(t, err, "ORDERPAID")
	_, err = e.ch.Prepay(ctx, channel.PrepayRequest{OutTradeNo: "PO-MOB-01", Amount: 4_322, Description: "x", PayerRef: "o-bob", NotifyURL: e.notifyURL()})
	wantDecline(t, err, "OUT_TRADE_NO_USED")
	wantDecline(t, e.ch.Close(ctx, "PO-MOB-01"), "ORDERPAID")

	// The payer's page form pays too.
	p2 := pre("PO-MOB-02", 100)
	resp, err = http.Post(p2.PayURL, "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || e.sim.Debits("PO-MOB-02") != 1 {
		t.Fatalf("paying through the page: %d, debits %d", resp.StatusCode, e.sim.Debits("PO-MOB-02"))
	}

	// Closed orders stay unpaid.
	p3 := pre("PO-MOB-03", 200)
	if err := e.ch.Close(ctx, "PO-MOB-03"); err != nil {
		t.Fatal(err)
	}
	if err := e.ch.Close(ctx, "PO-MOB-03"); err != nil {
		t.Fatalf("closing twice: %v", err)
	}
	if o, _ := e.ch.Query(ctx, "PO-MOB-03"); o.State != channel.StateClosed {
		t.Fatalf("closed order state %s", o.State)
	}
	if err := e.sim.ConfirmPrepay(p3.PrepayID); err == nil || e.sim.Debits("PO-MOB-03") != 0 {
		t.Fatalf("paying a closed order: %v, debits %d", err, e.sim.Debits("PO-MOB-03"))
	}
	if err := e.ch.Close(ctx, "PO-MOB-NOPE"); !errors.Is(err, channel.ErrNotFound) {
		t.Fatalf("closing an unknown order: %v", err)
	}
	// Not enough money: the order stays NOTPAY.
	p4 := pre("PO-MOB-04", 1_000_000)
	if err := e.sim.ConfirmPrepay(p4.PrepayID); err == nil {
		t.Fatal("paid without the money")
	}
	if o, _ := e.ch.Query(ctx, "PO-MOB-04"); o.State != channel.StateNotPay {
		t.Fatalf("state %s after a failed payment", o.State)
	}
}

// encryptResource seals a callback resource as WeChat does.
func encryptResource(key, nonce, ad string, plain []byte) string {
	block, _ := aes.NewCipher([]byte(key))
	gcm, _ := cipher.NewGCM(block)
	return base64.StdEncoding.EncodeToString(gcm.Seal(nil, []byte(nonce), plain, []byte(ad)))
}

// signed builds a callback request: body signed with key at ts.
func signed(t *testing.T, body []byte, key *rsa.PrivateKey, serial string, ts int64) *http.Request {
	t.Helper()
	nonce := "n0nce" + strconv.FormatInt(ts, 36)
	sig, err := utils.SignSHA256WithRSA(fmt.Sprintf("%d\n%s\n%s\n", ts, nonce, body), key)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/notify/wechat", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Wechatpay-Serial", serial)
	r.Header.Set("Wechatpay-Timestamp", strconv.FormatInt(ts, 10))
	r.Header.Set("Wechatpay-Nonce", nonce)
	r.Header.Set("Wechatpay-Signature", sig)
	r.Header.Set("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048")
	return r
}

func callbackBody(key string, resource map[string]any) []byte {
	plain, _ := json.Marshal(resource)
	b, _ := json.Marshal(map[string]any{
		"id": "EV-2024052012000000001", "create_time": "2024-05-20T12:00:00+08:00", "event_type": "TRANSACTION.SUCCESS",
		"resource_type": "encrypt-resource", "summary": "支付成功",
		"resource": map[string]string{
			"algorithm": "AEAD_AES_256_GCM", "associated_data": "transaction", "original_type": "transaction",
			"nonce": "abcdefghijkl", "ciphertext": encryptResource(key, "abcdefghijkl", "transaction", plain),
		},
	})
	return b
}

func TestNotificationVerification(t *testing.T) {
	e := newEnv(t, envOpt{})
	_, pk := keys()
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tx := map[string]any{"mchid": mchID, "appid": appID, "out_trade_no": "PO-N-01", "transaction_id": "4200000001",
		"trade_type": "PAP", "trade_state": "SUCCESS", "success_time": "2024-05-20T12:00:01+08:00",
		"payer": map[string]string{"openid": "o-x"}, "amount": map[string]any{"total": 1234567, "currency": "CNY"}}
	good := callbackBody(apiV3Key, tx)
	now := time.Now().Unix()
	altered := bytes.Replace(good, []byte(`"summary":"支付成功"`), []byte(`"summary":"支付成功 "`), 1)
	cases := []struct {
		name   string
		req    *http.Request
		forged bool
	}{
		{"genuine", signed(t, good, pk, platSer, now), false},
		{"signed with another key", signed(t, good, other, platSer, now), true},
		{"unknown serial", signed(t, good, pk, "PUB_KEY_ID_OTHER", now), true},
		{"body altered after signing", func() *http.Request {
			r := signed(t, good, pk, platSer, now)
			r.Body = io.NopCloser(bytes.NewReader(altered))
			return r
		}(), true},
		{"encrypted with another API v3 key", signed(t, callbackBody("ffffffffffffffffffffffffffffffff", tx), pk, platSer, now), true},
		{"replayed: 6 minutes old", signed(t, good, pk, platSer, now-360), true},
		{"from the future", signed(t, good, pk, platSer, now+360), true},
		{"no signature headers", httptest.NewRequest(http.MethodPost, "/notify", bytes.NewReader(good)), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, err := e.ch.ParseNotification(c.req)
			if c.forged {
				if !errors.Is(err, channel.ErrForged) {
					t.Fatalf("got %+v, %v; want ErrForged", n, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.ID != "EV-2024052012000000001" || n.Kind != channel.NotifyPayment || n.Order.Amount != 1_234_567 ||
				n.Order.State != channel.StateSuccess || n.Order.OutTradeNo != "PO-N-01" || n.Order.PayerRef != "o-x" {
				t.Fatalf("parsed %+v %+v", n, n.Order)
			}
		})
	}

	// A genuine callback from the simulator, replayed later, is refused;
	// the same bytes re-signed at an old time too.
	a := e.sign("o-carol", 1_000, 1_000)
	if _, err := e.charge(a, "PO-N-02", 10); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the callback", func() bool { return len(e.recv.find(payment("PO-N-02"))) == 1 })
	e.recv.mu.Lock()
	last := e.recv.raw[len(e.recv.raw)-1]
	e.recv.mu.Unlock()
	replay := signed(t, last.body, pk, platSer, now-600)
	if _, err := e.ch.ParseNotification(replay); !errors.Is(err, channel.ErrForged) {
		t.Fatalf("replayed callback: %v", err)
	}
	fresh := signed(t, last.body, pk, platSer, now)
	if n, err := e.ch.ParseNotification(fresh); err != nil || n.Order.OutTradeNo != "PO-N-02" {
		t.Fatalf("the captured callback itself: %+v %v", n, err)
	}
}

func TestAckNotification(t *testing.T) {
	e := newEnv(t, envOpt{})
	w := httptest.NewRecorder()
	e.ch.AckNotification(w, nil)
	if w.Code != http.StatusNoContent {
		t.Fatalf("ack: %d", w.Code)
	}
	w = httptest.NewRecorder()
	e.ch.AckNotification(w, errors.New("order unknown"))
	var body struct{ Code, Message string }
	if w.Code != http.StatusInternalServerError || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Code != "FAIL" || body.Message != "order unknown" {
		t.Fatalf("nack: %d %s", w.Code, w.Body)
	}
}

func TestDeclines(t *testing.T) {
	cases := []struct {
		name   string
		faults sim.Faults
		amount int64
		code   string
	}{
		{"injected decline", sim.Faults{DeclineNext: 1, DeclineCode: "NOTENOUGH"}, 500, "NOTENOUGH"},
		{"injected decline, other code", sim.Faults{DeclineNext: 1, DeclineCode: "ACCOUNTERROR"}, 500, "ACCOUNTERROR"},
		{"balance too low", sim.Faults{}, 2_001, "NOTENOUGH"},
		{"over the agreement's limit", sim.Faults{}, 3_001, "RULE_LIMIT"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOpt{})
			a := e.sign("o-dave", 2_000, 3_000)
			e.sim.Faults().Set(c.faults)
			no := fmt.Sprintf("PO-DECL-%02d", i)
			_, err := e.charge(a, no, c.amount)
			wantDecline(t, err, c.code)
			if !channel.IsDeclined(err) {
				t.Fatal("IsDeclined is false")
			}
			if e.sim.Balance("o-dave") != 2_000 || e.sim.Debits(no) != 0 {
				t.Fatalf("balance %d, debits %d after a decline", e.sim.Balance("o-dave"), e.sim.Debits(no))
			}
			if o, err := e.ch.Query(context.Background(), no); err != nil || o.State != channel.StatePayError {
				t.Fatalf("query after a decline: %+v %v", o, err)
			}
			// The same order number again: the same answer, still nothing taken.
			_, err = e.charge(a, no, c.amount)
			wantDecline(t, err, c.code)
			if e.sim.Balance("o-dave") != 2_000 {
				t.Fatal("a re-sent declined charge took money")
			}
		})
	}
}

func TestTimeoutThenQueryThenResend(t *testing.T) {
	e := newEnv(t, envOpt{clientTimeout: 300 * time.Millisecond})
	ctx := context.Background()
	a := e.sign("o-erin", 10_000, 10_000)
	e.sim.Faults().Set(sim.Faults{TimeoutNext: 1})
	_, err := e.charge(a, "PO-TO-01", 2_500)
	if !errors.Is(err, channel.ErrUnknown) || channel.IsDeclined(err) {
		t.Fatalf("charge with no answer: %v, want ErrUnknown", err)
	}
	o, err := e.ch.Query(ctx, "PO-TO-01")
	if err != nil || o.State != channel.StateSuccess || o.Amount != 2_500 {
		t.Fatalf("query after the timeout: %+v %v", o, err)
	}
	if d := e.sim.Debits("PO-TO-01"); d != 1 {
		t.Fatalf("debited %d times", d)
	}
	o2, err := e.charge(a, "PO-TO-01", 2_500)
	if err != nil || o2.State != channel.StateSuccess || o2.TransactionID != o.TransactionID {
		t.Fatalf("re-sent charge: %+v %v", o2, err)
	}
	if d, b := e.sim.Debits("PO-TO-01"), e.sim.Balance("o-erin"); d != 1 || b != 7_500 {
		t.Fatalf("after re-sending: debited %d times, balance %d", d, b)
	}
	// A refund without an answer, likewise.
	e.sim.Faults().Set(sim.Faults{TimeoutNext: 1})
	rr := channel.RefundRequest{OutTradeNo: "PO-TO-01", OutRefundNo: "RF-TO-1", Amount: 500, Total: 2_500}
	if _, err := e.ch.Refund(ctx, rr); !errors.Is(err, channel.ErrUnknown) {
		t.Fatalf("refund with no answer: %v", err)
	}
	if rf, err := e.ch.QueryRefund(ctx, "PO-TO-01", "RF-TO-1"); err != nil || rf.Status != channel.RefundSuccess {
		t.Fatalf("query refund: %+v %v", rf, err)
	}
	if rf, err := e.ch.Refund(ctx, rr); err != nil || rf.Amount != 500 || e.sim.Balance("o-erin") != 8_000 {
		t.Fatalf("re-sent refund: %+v %v, balance %d", rf, err, e.sim.Balance("o-erin"))
	}
	// The wallet unreachable: unknown as well.
	down, err := wechat.New(wechat.Config{BaseURL: "http://127.0.0.1:1/sim", MchID: mchID, AppID: appID,
		MerchantSerial: mchSer, MerchantKey: e.cfg.MerchantKey, PlatformSerial: platSer, PlatformKey: e.cfg.PlatformKey, APIv3Key: apiV3Key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := down.Query(ctx, "PO-TO-01"); !errors.Is(err, channel.ErrUnknown) {
		t.Fatalf("unreachable: %v", err)
	}
}

func TestPayingThenSuccess(t *testing.T) {
	e := newEnv(t, envOpt{})
	a := e.sign("o-frank", 1_000, 1_000)
	e.sim.Faults().Set(sim.Faults{PayingNext: 1})
	o, err := e.charge(a, "PO-PAYING-01", 300)
	if err != nil || o.State != channel.StatePaying {
		t.Fatalf("charge: %+v %v, want USERPAYING", o, err)
	}
	if e.sim.Debits("PO-PAYING-01") != 0 {
		t.Fatal("debited while still paying")
	}
	o, err = e.ch.Query(context.Background(), "PO-PAYING-01")
	if err != nil || o.State != channel.StateSuccess || o.Amount != 300 {
		t.Fatalf("query: %+v %v, want SUCCESS", o, err)
	}
	if e.sim.Debits("PO-PAYING-01") != 1 || e.sim.Balance("o-frank") != 700 {
		t.Fatalf("debits %d balance %d", e.sim.Debits("PO-PAYING-01"), e.sim.Balance("o-frank"))
	}
	waitFor(t, "the callback", func() bool { return len(e.recv.find(payment("PO-PAYING-01"))) == 1 })
}

func TestCallbackFaults(t *testing.T) {
	t.Run("duplicates", func(t *testing.T) {
		e := newEnv(t, envOpt{})
		a := e.sign("o-g", 1_000, 1_000)
		e.sim.Faults().Set(sim.Faults{NotifyDuplicates: 2})
		if _, err := e.charge(a, "PO-DUP-01", 100); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "3 copies", func() bool { return len(e.recv.find(payment("PO-DUP-01"))) == 3 })
		ns := e.recv.find(payment("PO-DUP-01"))
		if ns[0].ID != ns[1].ID || ns[1].ID != ns[2].ID {
			t.Fatalf("copies with different ids: %s %s %s", ns[0].ID, ns[1].ID, ns[2].ID)
		}
		time.Sleep(100 * time.Millisecond)
		if n := len(e.recv.find(payment("PO-DUP-01"))); n != 3 {
			t.Fatalf("%d copies, want 3", n)
		}
	})
	t.Run("retried until acknowledged", func(t *testing.T) {
		e := newEnv(t, envOpt{})
		a := e.sign("o-h", 1_000, 1_000)
		waitFor(t, "the agreement callback", func() bool { return len(e.recv.notifications()) == 1 })
		e.recv.mu.Lock()
		e.recv.failFirst, e.recv.deliv = 2, 0
		e.recv.mu.Unlock()
		if _, err := e.charge(a, "PO-RETRY-01", 100); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the callback", func() bool { return len(e.recv.find(payment("PO-RETRY-01"))) == 1 })
		if d := e.recv.deliveries(); d != 3 {
			t.Fatalf("%d deliveries, want 3 (two refused, one accepted)", d)
		}
	})
	t.Run("wrong amount", func(t *testing.T) {
		e := newEnv(t, envOpt{})
		a := e.sign("o-i", 1_000, 1_000)
		e.sim.Faults().Set(sim.Faults{NotifyWrongAmount: true})
		if _, err := e.charge(a, "PO-WRONG-01", 100); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the callback", func() bool { return len(e.recv.find(payment("PO-WRONG-01"))) == 1 })
		if n := e.recv.find(payment("PO-WRONG-01"))[0]; n.Order.Amount != 101 {
			t.Fatalf("callback amount %d, want 101", n.Order.Amount)
		}
		if o, _ := e.ch.Query(context.Background(), "PO-WRONG-01"); o.Amount != 100 {
			t.Fatalf("the real order says %d", o.Amount)
		}
	})
	t.Run("early", func(t *testing.T) {
		e := newEnv(t, envOpt{})
		a := e.sign("o-j", 1_000, 1_000)
		e.sim.Faults().Set(sim.Faults{NotifyEarly: true})
		if _, err := e.charge(a, "PO-EARLY-01", 100); err != nil {
			t.Fatal(err)
		}
		if n := len(e.recv.find(payment("PO-EARLY-01"))); n != 1 {
			t.Fatalf("%d callbacks when the charge returned, want 1", n)
		}
	})
	t.Run("dropped", func(t *testing.T) {
		e := newEnv(t, envOpt{})
		a := e.sign("o-k", 1_000, 1_000)
		waitFor(t, "the agreement callback", func() bool { return len(e.recv.notifications()) == 1 })
		e.sim.Faults().Set(sim.Faults{NotifyDrop: true})
		if _, err := e.charge(a, "PO-DROP-01", 100); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if d := e.recv.deliveries(); d != 1 {
			t.Fatalf("%d deliveries, want only the agreement's", d)
		}
	})
}

func TestBillFaults(t *testing.T) {
	e := newEnv(t, envOpt{})
	a := e.sign("o-l", 100_000, 100_000)
	for i, amt := range []int64{100, 200, 300} {
		if _, err := e.charge(a, fmt.Sprintf("PO-BILL-%02d", i), amt); err != nil {
			t.Fatal(err)
		}
	}
	e.sim.Faults().Set(sim.Faults{BillDrop: []string{"PO-BILL-00"}, BillExtra: 2, BillAmountDelta: map[string]int64{"PO-BILL-01": -7}})
	rows, err := e.ch.Bill(context.Background(), e.day)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range rows {
		got[r.OutTradeNo] = r.Amount
	}
	if _, found := got["PO-BILL-00"]; found {
		t.Fatal("dropped order in the bill")
	}
	if got["PO-BILL-01"] != 193 || got["PO-BILL-02"] != 300 || len(rows) != 4 {
		t.Fatalf("bill %v", got)
	}
}

func TestYuanToFen(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"0.01", 1}, {"12345.67", 1_234_567}, {"0", 0}, {"0.00", 0}, {"0.0", 0}, {"0.1", 10}, {"1", 100},
		{"1.", 100}, {"-0.01", -1}, {"-12.30", -1_230}, {"12.340", 1_234}, {"99999999.99", 9_999_999_999},
	}
	for _, c := range good {
		if got, err := wechat.YuanToFen(c.in); err != nil || got != c.want {
			t.Errorf("YuanToFen(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "abc", "1.234", "1,00", ".5", "1e3", "0x10", "--1", "1.2.3", " 1"} {
		if got, err := wechat.YuanToFen(in); err == nil {
			t.Errorf("YuanToFen(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseTradeBill(t *testing.T) {
	file := "\ufeff交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\r\n" +
		"`2024-05-20 10:00:00,`wx1,`1900000109,`0,`,`4200001,`PO-A,`o1,`JSAPI,`SUCCESS,`OTHERS,`CNY,`12345.67,`0.00,`0,`0,`0.00,`0.00,`,`,`药品,一盒,`,`74.07,`0.60%,`12345.67,`0.00,`\r\n" +
		"`2024-05-20 11:00:00,`wx1,`1900000109,`0,`,`4200001,`PO-A,`o1,`JSAPI,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`5030001,`RF-A,`0.01,`0.00,`ORIGINAL,`SUCCESS,`药品,`,`0.00,`0.60%,`0.00,`0.01,`\r\n" +
		"`2024-05-20 12:00:00,`wx1,`1900000109,`0,`,`4200002,`PO-B,`o1,`MICROPAY,`REVOKED,`OTHERS,`CNY,`0.00,`0.00,`0,`0,`0.00,`0.00,`,`,`x,`,`0.00,`0.60%,`1.00,`0.00,`\r\n" +
		"总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n" +
		"`3,`12345.67,`0.01,`0.00,`74.07,`12346.67,`0.01\r\n"
	rows, err := wechat.ParseTradeBill([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows: %+v", len(rows), rows)
	}
	p, r := rows[0], rows[1]
	if p.Kind != channel.BillPayment || p.Amount != 1_234_567 || p.OutTradeNo != "PO-A" || p.TransactionID != "4200001" ||
		p.State != channel.StateSuccess || !p.Time.Equal(time.Date(2024, 5, 20, 10, 0, 0, 0, cst)) {
		t.Fatalf("payment row %+v", p)
	}
	if r.Kind != channel.BillRefund || r.Amount != 1 || r.OutRefundNo != "RF-A" || r.RefundID != "5030001" || r.State != "SUCCESS" {
		t.Fatalf("refund row %+v", r)
	}
	bad := []string{
		"交易时间,商户订单号,交易状态,订单金额\n`2024-05-20 10:00:00,`PO,`SUCCESS,`1.234\n",
		"交易时间,商户订单号,交易状态,订单金额\n`yesterday,`PO,`SUCCESS,`1.00\n",
		"交易时间,商户订单号,交易状态,订单金额\n2024-05-20 10:00:00,PO,SUCCESS,1.00\n",
		"商户订单号,交易状态\n`PO,`SUCCESS\n",
	}
	for _, b := range bad {
		if rows, err := wechat.ParseTradeBill([]byte(b)); err == nil {
			t.Errorf("parsed %q: %+v", b, rows)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	mk, pk := keys()
	good := wechat.Config{MchID: mchID, AppID: appID, MerchantSerial: mchSer, MerchantKey: mk,
		PlatformSerial: platSer, PlatformKey: &pk.PublicKey, APIv3Key: apiV3Key}
	if c, err := wechat.New(good); err != nil || c.Name() != "wechat" {
		t.Fatalf("New: %v", err)
	}
	for name, mut := range map[string]func(*wechat.Config){
		"no mchid":      func(c *wechat.Config) { c.MchID = "" },
		"short v3 key":  func(c *wechat.Config) { c.APIv3Key = "short" },
		"no key":        func(c *wechat.Config) { c.MerchantKey = nil },
		"no platform":   func(c *wechat.Config) { c.PlatformKey = nil },
		"bad base URL":  func(c *wechat.Config) { c.BaseURL = "127.0.0.1:8080" },
		"no serial no.": func(c *wechat.Config) { c.MerchantSerial = "" },
	} {
		c := good
		mut(&c)
		if _, err := wechat.New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
