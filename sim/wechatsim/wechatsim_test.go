package wechatsim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"yibao/sim"
)

// These tests speak the protocol by hand (no SDK client, no adapter), so
// they check the simulator against the documented wire format itself.

const (
	tMch    = "1900000109"
	tApp    = "wxd678efh567hg6787"
	tV3Key  = "0123456789abcdef0123456789ABCDEF"
	tMchSer = "MCHSERIAL01"
	tPubSer = "PUB_KEY_ID_01"
)

var testKeys = sync.OnceValues(func() (*rsa.PrivateKey, *rsa.PrivateKey) {
	m, p, err := GenerateKeys()
	if err != nil {
		panic(err)
	}
	return m, p
})

type harness struct {
	t   *testing.T
	sim *Sim
	srv *httptest.Server
	mk  *rsa.PrivateKey // merchant
	pk  *rsa.PrivateKey // platform
}

func newHarness(t *testing.T, schedule ...time.Duration) *harness {
	t.Helper()
	mk, pk := testKeys()
	if schedule == nil {
		schedule = []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}
	}
	s := New(Config{MchID: tMch, AppID: tApp, MerchantSerial: tMchSer, MerchantKey: &mk.PublicKey,
		PlatformSerial: tPubSer, PlatformKey: pk, APIv3Key: tV3Key, NotifySchedule: schedule})
	srv := httptest.NewServer(s)
	t.Cleanup(func() { s.Close(); srv.Close() })
	return &harness{t: t, sim: s, srv: srv, mk: mk, pk: pk}
}

// authorization signs a request as a merchant does.
func authorization(key *rsa.PrivateKey, mch, serial, method, uri string, ts int64, body []byte) string {
	nonce := "NONCE" + strconv.FormatInt(ts, 10)
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\n%s\n%d\n%s\n%s\n", method, uri, ts, nonce, body)))
	sig, _ := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	return fmt.Sprintf(`WECHATPAY2-SHA256-RSA2048 mchid="%s",nonce_str="%s",timestamp="%d",serial_no="%s",signature="%s"`,
		mch, nonce, ts, serial, base64.StdEncoding.EncodeToString(sig))
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) code() string {
	var e apiError
	_ = json.Unmarshal(a.body, &e)
	return e.Code
}

// call sends a signed request; edit may spoil it.
func (h *harness) call(method, uri string, body any, edit func(*http.Request)) answer {
	h.t.Helper()
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+uri, bytes.NewReader(b))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", authorization(h.mk, tMch, tMchSer, method, uri, time.Now().Unix(), b))
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, rb}
}

// checkSigned verifies an answer's Wechatpay-Signature with the platform key.
func (h *harness) checkSigned(a answer) {
	h.t.Helper()
	if a.header.Get("Wechatpay-Serial") != tPubSer {
		h.t.Fatalf("Wechatpay-Serial %q", a.header.Get("Wechatpay-Serial"))
	}
	msg := a.header.Get("Wechatpay-Timestamp") + "\n" + a.header.Get("Wechatpay-Nonce") + "\n" + string(a.body) + "\n"
	sig, _ := base64.StdEncoding.DecodeString(a.header.Get("Wechatpay-Signature"))
	sum := sha256.Sum256([]byte(msg))
	if err := rsa.VerifyPKCS1v15(&h.pk.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		h.t.Fatalf("answer signature: %v", err)
	}
}

// setup makes a payer with a contract and returns the contract id.
func (h *harness) setup(openid string, balance, limit int64, notify string) string {
	h.t.Helper()
	h.sim.AddPayer(openid, balance)
	a := h.call("POST", "/v3/papay/contracts", map[string]any{"appid": tApp, "mchid": tMch, "out_contract_code": "C" + openid,
		"openid": openid, "limit": limit, "notify_url": notify}, nil)
	var k contractJSON
	if a.status != 200 || json.Unmarshal(a.body, &k) != nil || k.ContractState != "SIGNED" {
		h.t.Fatalf("sign: %d %s", a.status, a.body)
	}
	return k.ContractID
}

func (h *harness) apply(no, contractID string, amount int64, notify string) answer {
	return h.call("POST", "/v3/papay/pay-transactions/apply", map[string]any{"appid": tApp, "mchid": tMch,
		"description": "d", "out_trade_no": no, "notify_url": notify, "contract_id": contractID,
		"amount": map[string]any{"total": amount, "currency": "CNY"}}, nil)
}

func TestRequestAuthentication(t *testing.T) {
	h := newHarness(t)
	uri := "/v3/pay/transactions/out-trade-no/PO1?mchid=" + tMch
	wrongKey, _, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(*http.Request)
		want int
	}{
		{"genuine", nil, http.StatusNotFound}, // signed and verified; the order does not exist
		{"no Authorization", func(r *http.Request) { r.Header.Del("Authorization") }, 401},
		{"another key", func(r *http.Request) {
			r.Header.Set("Authorization", authorization(wrongKey, tMch, tMchSer, "GET", uri, time.Now().Unix(), nil))
		}, 401},
		{"10 minutes old", func(r *http.Request) {
			r.Header.Set("Authorization", authorization(h.mk, tMch, tMchSer, "GET", uri, time.Now().Unix()-600, nil))
		}, 401},
		{"another merchant", func(r *http.Request) {
			r.Header.Set("Authorization", authorization(h.mk, "1900000110", tMchSer, "GET", uri, time.Now().Unix(), nil))
		}, 401},
		{"another serial", func(r *http.Request) {
			r.Header.Set("Authorization", authorization(h.mk, tMch, "OTHER", "GET", uri, time.Now().Unix(), nil))
		}, 401},
		{"signed for another path", func(r *http.Request) {
			r.Header.Set("Authorization", authorization(h.mk, tMch, tMchSer, "GET", "/v3/pay/transactions/out-trade-no/PO2?mchid="+tMch, time.Now().Unix(), nil))
		}, 401},
		{"signed with another body", func(r *http.Request) {
			r.Header.Set("Authorization", authorization(h.mk, tMch, tMchSer, "GET", uri, time.Now().Unix(), []byte("{}")))
		}, 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := h.call("GET", uri, nil, c.edit)
			if a.status != c.want {
				t.Fatalf("status %d, want %d: %s", a.status, c.want, a.body)
			}
			if c.want == 401 && a.code() != "SIGN_ERROR" {
				t.Fatalf("code %q", a.code())
			}
			h.checkSigned(a)
		})
	}
}

func TestChargeIdempotency(t *testing.T) {
	h := newHarness(t)
	k := h.setup("o-1", 1_000, 1_000, "")
	if a := h.apply("PO-1", k, 300, ""); a.status != http.StatusNoContent {
		t.Fatalf("apply: %d %s", a.status, a.body)
	}
	if a := h.apply("PO-1", k, 300, ""); a.status != http.StatusNoContent {
		t.Fatalf("apply again: %d %s", a.status, a.body)
	}
	if a := h.apply("PO-1", k, 301, ""); a.status != http.StatusForbidden || a.code() != "OUT_TRADE_NO_USED" {
		t.Fatalf("apply with another amount: %d %s", a.status, a.body)
	}
	if d, b := h.sim.Debits("PO-1"), h.sim.Balance("o-1"); d != 1 || b != 700 {
		t.Fatalf("debits %d balance %d", d, b)
	}
	a := h.call("GET", "/v3/pay/transactions/out-trade-no/PO-1?mchid="+tMch, nil, nil)
	var tx transaction
	if a.status != 200 || json.Unmarshal(a.body, &tx) != nil || tx.TradeState != "SUCCESS" || tx.Amount.Total != 300 ||
		tx.Payer.OpenID != "o-1" || tx.TransactionID == "" || tx.SuccessTime == "" {
		t.Fatalf("query: %d %s", a.status, a.body)
	}
	h.checkSigned(a)
	byID := h.call("GET", "/v3/pay/transactions/id/"+tx.TransactionID+"?mchid="+tMch, nil, nil)
	if byID.status != 200 || !strings.Contains(string(byID.body), `"out_trade_no":"PO-1"`) {
		t.Fatalf("query by id: %d %s", byID.status, byID.body)
	}
	// Bad requests are not recorded.
	for name, body := range map[string]map[string]any{
		"zero amount":     {"appid": tApp, "mchid": tMch, "description": "d", "out_trade_no": "PO-2", "contract_id": k, "amount": map[string]any{"total": 0}},
		"another appid":   {"appid": "wx0", "mchid": tMch, "description": "d", "out_trade_no": "PO-2", "contract_id": k, "amount": map[string]any{"total": 1}},
		"bad order no.":   {"appid": tApp, "mchid": tMch, "description": "d", "out_trade_no": "PO 2", "contract_id": k, "amount": map[string]any{"total": 1}},
		"no description":  {"appid": tApp, "mchid": tMch, "out_trade_no": "PO-2", "contract_id": k, "amount": map[string]any{"total": 1}},
		"dollars":         {"appid": tApp, "mchid": tMch, "description": "d", "out_trade_no": "PO-2", "contract_id": k, "amount": map[string]any{"total": 1, "currency": "USD"}},
		"no contract id.": {"appid": tApp, "mchid": tMch, "description": "d", "out_trade_no": "PO-2", "amount": map[string]any{"total": 1}},
	} {
		if a := h.call("POST", "/v3/papay/pay-transactions/apply", body, nil); a.status != 400 {
			t.Errorf("%s: %d %s", name, a.status, a.body)
		}
	}
	if a := h.call("GET", "/v3/pay/transactions/out-trade-no/PO-2?mchid="+tMch, nil, nil); a.code() != "ORDER_NOT_EXIST" {
		t.Fatalf("a refused request left an order: %s", a.body)
	}
	// Prepay: same number, same order; another amount, refused.
	h.sim.AddPayer("o-2", 0)
	pre := func(amount int64) answer {
		return h.call("POST", "/v3/pay/transactions/jsapi", map[string]any{"appid": tApp, "mchid": tMch, "description": "d",
			"out_trade_no": "PO-3", "notify_url": "http://127.0.0.1:1/n", "amount": map[string]any{"total": amount, "currency": "CNY"},
			"payer": map[string]any{"openid": "o-2"}}, nil)
	}
	a1, a2, a3 := pre(5), pre(5), pre(6)
	if a1.status != 200 || !bytes.Equal(a1.body, a2.body) || a3.code() != "OUT_TRADE_NO_USED" {
		t.Fatalf("prepay: %s / %s / %s", a1.body, a2.body, a3.body)
	}
	var p struct {
		PrepayID string `json:"prepay_id"`
	}
	_ = json.Unmarshal(a1.body, &p)
	var e *Error
	if err := h.sim.ConfirmPrepay(p.PrepayID); !errors.As(err, &e) || e.Code != "NOTENOUGH" {
		t.Fatalf("confirm without money: %v", err)
	}
	h.sim.AddPayer("o-2", 5)
	if err := h.sim.ConfirmPrepay(p.PrepayID); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.ConfirmPrepay(p.PrepayID); err != nil || h.sim.Debits("PO-3") != 1 {
		t.Fatalf("confirming twice: %v, debits %d", err, h.sim.Debits("PO-3"))
	}
}

func TestRefundRules(t *testing.T) {
	h := newHarness(t)
	k := h.setup("o-1", 1_000, 1_000, "")
	h.apply("PO-1", k, 500, "")
	refund := func(no, order string, amount, total int64) answer {
		return h.call("POST", "/v3/refund/domestic/refunds", map[string]any{"out_trade_no": order, "out_refund_no": no,
			"amount": map[string]any{"refund": amount, "total": total, "currency": "CNY"}}, nil)
	}
	cases := []struct {
		name          string
		no, order     string
		amount, total int64
		status        int
		code          string
	}{
		{"partial", "R1", "PO-1", 200, 500, 200, ""},
		{"the same again", "R1", "PO-1", 200, 500, 200, ""},
		{"same number, another amount", "R1", "PO-1", 201, 500, 400, "INVALID_REQUEST"},
		{"wrong total", "R2", "PO-1", 100, 501, 400, "PARAM_ERROR"},
		{"more than is left", "R2", "PO-1", 301, 500, 400, "INVALID_REQUEST"},
		{"all that is left", "R2", "PO-1", 300, 500, 200, ""},
		{"nothing left", "R3", "PO-1", 1, 500, 400, "INVALID_REQUEST"},
		{"unknown order", "R4", "PO-9", 1, 500, 404, "RESOURCE_NOT_EXISTS"},
	}
	for _, c := range cases {
		a := refund(c.no, c.order, c.amount, c.total)
		if a.status != c.status || (c.code != "" && a.code() != c.code) {
			t.Fatalf("%s: %d %s", c.name, a.status, a.body)
		}
	}
	if b := h.sim.Balance("o-1"); b != 1_000 {
		t.Fatalf("balance %d after refunding everything", b)
	}
	var credits int64
	for _, e := range h.sim.Ledger("o-1") {
		if e.Amount > 0 {
			credits += e.Amount
		}
	}
	if credits != 500 {
		t.Fatalf("credited %d fen, want 500", credits)
	}
	a := h.call("GET", "/v3/refund/domestic/refunds/R2", nil, nil)
	if a.status != 200 || !strings.Contains(string(a.body), `"status":"SUCCESS"`) || !strings.Contains(string(a.body), `"refund":300`) {
		t.Fatalf("query refund: %s", a.body)
	}
	if a := h.call("GET", "/v3/refund/domestic/refunds/R9", nil, nil); a.status != 404 {
		t.Fatalf("unknown refund: %d", a.status)
	}
}

// callbackReceiver records callbacks, answering with status.
type callbackReceiver struct {
	mu     sync.Mutex
	status int
	got    []*http.Request
	bodies [][]byte
}

func (c *callbackReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.got, c.bodies = append(c.got, r), append(c.bodies, b)
	st := c.status
	c.mu.Unlock()
	w.WriteHeader(st)
}

func (c *callbackReceiver) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func TestCallbacks(t *testing.T) {
	h := newHarness(t, 10*time.Millisecond, 10*time.Millisecond)
	rc := &callbackReceiver{status: http.StatusInternalServerError}
	rs := httptest.NewServer(rc)
	defer rs.Close()
	k := h.setup("o-1", 1_000, 1_000, "")
	h.apply("PO-1", k, 123, rs.URL)
	// Refused every time: the first attempt and one per schedule entry.
	deadline := time.Now().Add(2 * time.Second)
	for rc.count() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := rc.count(); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	rc.mu.Lock()
	r, body := rc.got[0], rc.bodies[0]
	rc.mu.Unlock()
	// Signed with the platform key over timestamp, nonce and body.
	msg := r.Header.Get("Wechatpay-Timestamp") + "\n" + r.Header.Get("Wechatpay-Nonce") + "\n" + string(body) + "\n"
	sig, _ := base64.StdEncoding.DecodeString(r.Header.Get("Wechatpay-Signature"))
	sum := sha256.Sum256([]byte(msg))
	if rsa.VerifyPKCS1v15(&h.pk.PublicKey, crypto.SHA256, sum[:], sig) != nil || r.Header.Get("Wechatpay-Serial") != tPubSer {
		t.Fatal("callback signature does not verify")
	}
	var n notification
	if err := json.Unmarshal(body, &n); err != nil {
		t.Fatal(err)
	}
	if n.EventType != "TRANSACTION.SUCCESS" || n.ResourceType != "encrypt-resource" || n.Resource.Algorithm != "AEAD_AES_256_GCM" ||
		!strings.HasPrefix(n.ID, "EV-") || len(n.Resource.Nonce) != 12 {
		t.Fatalf("callback %s", body)
	}
	plain, err := utils.DecryptAES256GCM(tV3Key, n.Resource.AssociatedData, n.Resource.Nonce, n.Resource.Ciphertext)
	if err != nil {
		t.Fatal(err)
	}
	var tx transaction
	if err := json.Unmarshal([]byte(plain), &tx); err != nil || tx.OutTradeNo != "PO-1" || tx.Amount.Total != 123 || tx.TradeState != "SUCCESS" || tx.MchID != tMch {
		t.Fatalf("resource %s", plain)
	}
	for i := range rc.bodies {
		if !bytes.Equal(rc.bodies[i], body) {
			t.Fatal("a retry is not the same callback")
		}
	}
}

func TestCloseStopsSendersAndReleasesHangs(t *testing.T) {
	h := newHarness(t, time.Hour)
	rc := &callbackReceiver{status: http.StatusInternalServerError}
	rs := httptest.NewServer(rc)
	defer rs.Close()
	k := h.setup("o-1", 1_000, 1_000, "")
	h.sim.Faults().Set(sim.Faults{TimeoutNext: 1})
	done := make(chan answer, 1)
	go func() { done <- h.apply("PO-1", k, 100, rs.URL) }()
	deadline := time.Now().Add(2 * time.Second)
	for h.sim.Debits("PO-1") == 0 || rc.count() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the charge was not done")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case a := <-done:
		t.Fatalf("answered despite TimeoutNext: %d", a.status)
	case <-time.After(100 * time.Millisecond):
	}
	start := time.Now()
	h.sim.Close() // the hour-long retry wait and the hanging answer both end
	if time.Since(start) > time.Second {
		t.Fatal("Close waited for the retry schedule")
	}
	if a := <-done; a.status != http.StatusInternalServerError {
		t.Fatalf("released hang: %d", a.status)
	}
}

func TestTimeoutNextHangsUntilTheClientGivesUp(t *testing.T) {
	h := newHarness(t)
	k := h.setup("o-1", 1_000, 1_000, "")
	h.sim.Faults().Set(sim.Faults{TimeoutNext: 1})
	body, _ := json.Marshal(map[string]any{"appid": tApp, "mchid": tMch, "description": "d", "out_trade_no": "PO-1",
		"contract_id": k, "amount": map[string]any{"total": 100, "currency": "CNY"}})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", h.srv.URL+"/v3/papay/pay-transactions/apply", bytes.NewReader(body))
	req.Header.Set("Authorization", authorization(h.mk, tMch, tMchSer, "POST", "/v3/papay/pay-transactions/apply", time.Now().Unix(), body))
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the client's deadline", err)
	}
	if h.sim.Debits("PO-1") != 1 || h.sim.Faults().Get().TimeoutNext != 0 {
		t.Fatal("the charge was not carried out, or the fault did not wear off")
	}
	if a := h.apply("PO-1", k, 100, ""); a.status != http.StatusNoContent || h.sim.Debits("PO-1") != 1 {
		t.Fatalf("re-sent: %d, debits %d", a.status, h.sim.Debits("PO-1"))
	}
}

func TestBillFile(t *testing.T) {
	h := newHarness(t)
	k := h.setup("o-1", 10_000_000, 10_000_000, "")
	h.apply("PO-1", k, 1, "")
	h.apply("PO-2", k, 1_234_567, "")
	h.apply("PO-3", k, 250, "")
	h.call("POST", "/v3/refund/domestic/refunds", map[string]any{"out_trade_no": "PO-2", "out_refund_no": "R1",
		"amount": map[string]any{"refund": 67, "total": 1_234_567, "currency": "CNY"}}, nil)
	h.sim.Faults().Set(sim.Faults{BillDrop: []string{"PO-3"}, BillExtra: 1, BillAmountDelta: map[string]int64{"PO-1": 5}})
	today := time.Now().In(chinaTime).Format(time.DateOnly)
	a := h.call("GET", "/v3/bill/tradebill?bill_date="+today+"&bill_type=ALL", nil, nil)
	var tb struct {
		DownloadURL string `json:"download_url"`
		HashType    string `json:"hash_type"`
		HashValue   string `json:"hash_value"`
	}
	if a.status != 200 || json.Unmarshal(a.body, &tb) != nil {
		t.Fatalf("tradebill: %d %s", a.status, a.body)
	}
	h.checkSigned(a)
	u, err := url.Parse(tb.DownloadURL)
	if err != nil || u.Host != "api.mch.weixin.qq.com" || u.Path != "/v3/billdownload/file" || tb.HashType != "SHA1" {
		t.Fatalf("tradebill answer %+v", tb)
	}
	f := h.call("GET", u.RequestURI(), nil, nil)
	sum := sha1.Sum(f.body)
	if f.status != 200 || hex.EncodeToString(sum[:]) != tb.HashValue {
		t.Fatalf("download: %d, sha1 mismatch", f.status)
	}
	lines := strings.Split(strings.TrimSuffix(string(f.body), "\r\n"), "\r\n")
	// header, PO-1, PO-2, refund R1, one extra row, summary header, summary.
	if len(lines) != 7 || !strings.HasPrefix(lines[0], "交易时间,公众账号ID,商户号,") || !strings.HasPrefix(lines[5], "总交易单数,") {
		t.Fatalf("bill:\n%s", f.body)
	}
	body := string(f.body)
	for _, want := range []string{"`PO-1,`o-1,`PAP,`SUCCESS,`OTHERS,`CNY,`0.06,", "`PO-2,`o-1,`PAP,`SUCCESS,`OTHERS,`CNY,`12345.67,",
		"`REFUND,`OTHERS,`CNY,`0.00,`0.00,`", "`R1,`0.67,`0.00,`ORIGINAL,`SUCCESS,", "`SIMEXTRA"} {
		if !strings.Contains(body, want) {
			t.Errorf("bill lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "PO-3") {
		t.Error("dropped order in the bill")
	}
	for _, l := range lines[1:5] {
		if n := strings.Count(l, ",`") + 1; n != len(billHeader) || !strings.HasPrefix(l, "`") {
			t.Errorf("line with %d fields: %s", n, l)
		}
	}
	// Summary: 4 rows; 0.06 + 12345.67 + 1.01 (the extra row) settled; 0.67 refunded.
	if !strings.HasPrefix(lines[6], "`4,`12346.74,`0.67,`0.00,`") {
		t.Errorf("summary %s", lines[6])
	}
	h.sim.Faults().Set(sim.Faults{}) // (BillExtra would put rows into any day)
	if a := h.call("GET", "/v3/bill/tradebill?bill_date=2001-01-01&bill_type=ALL", nil, nil); a.code() != "NO_STATEMENT_EXIST" {
		t.Errorf("empty day: %d %s", a.status, a.body)
	}
	if a := h.call("GET", "/v3/billdownload/file?token=nope", nil, nil); a.status != 404 {
		t.Errorf("unknown token: %d", a.status)
	}
	unsigned, _ := http.Get(h.srv.URL + u.RequestURI())
	unsigned.Body.Close()
	if unsigned.StatusCode != 401 {
		t.Errorf("unsigned download: %d", unsigned.StatusCode)
	}
}

func TestAdmin(t *testing.T) {
	h := newHarness(t)
	post := func(path, body string) (int, []byte) {
		resp, err := http.Post(h.srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if st, b := post("/sim/faults", `{"decline_next":2,"decline_code":"NOTENOUGH","bill_drop":["X"]}`); st != 200 || !strings.Contains(string(b), `"decline_next":2`) {
		t.Fatalf("set faults: %d %s", st, b)
	}
	if f := h.sim.Faults().Get(); f.DeclineNext != 2 || f.DeclineCode != "NOTENOUGH" || len(f.BillDrop) != 1 {
		t.Fatalf("faults %+v", f)
	}
	if st, _ := post("/sim/faults", `{}`); st != 200 || h.sim.Faults().Get().DeclineNext != 0 {
		t.Fatal("clearing faults")
	}
	if st, _ := post("/sim/faults", `nonsense`); st != 400 {
		t.Fatalf("bad faults: %d", st)
	}
	if st, b := post("/sim/payers/o-9", `{"balance":1000}`); st != 200 || !strings.Contains(string(b), `"balance":1000`) {
		t.Fatalf("set payer: %d %s", st, b)
	}
	k := h.setup("o-9", 1_000, 1_000, "")
	h.apply("PO-1", k, 300, "")
	resp, err := http.Get(h.srv.URL + "/sim/payers/o-9")
	if err != nil {
		t.Fatal(err)
	}
	var v payerView
	_ = json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if v.Balance != 700 || len(v.Debits) != 1 || v.Debits[0].OutTradeNo != "PO-1" || v.Debits[0].Amount != -300 {
		t.Fatalf("payer %+v", v)
	}
	if resp, _ := http.Get(h.srv.URL + "/sim/payers/o-none"); resp.StatusCode != 404 {
		t.Fatalf("unknown payer: %d", resp.StatusCode)
	}
	// Not from loopback: refused.
	r := httptest.NewRequest("POST", "/sim/faults", strings.NewReader(`{"timeout_next":1}`))
	r.RemoteAddr = "192.0.2.7:4242"
	w := httptest.NewRecorder()
	h.sim.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden || h.sim.Faults().Get().TimeoutNext != 0 {
		t.Fatalf("remote admin: %d", w.Code)
	}
}

func TestYuan(t *testing.T) {
	for fen, want := range map[int64]string{0: "0.00", 1: "0.01", 10: "0.10", 100: "1.00", 1_234_567: "12345.67", -1: "-0.01", -250: "-2.50"} {
		if got := yuan(fen); got != want {
			t.Errorf("yuan(%d) = %s, want %s", fen, got, want)
		}
	}
	for fen, want := range map[int64]int64{1: 0, 84: 1, 83: 0, 12_345: 74, -12_345: -74} {
		if got := fee(fen); got != want {
			t.Errorf("fee(%d) = %d, want %d", fen, got, want)
		}
	}
}
