package alipaysim_test

import (
	"archive/zip"
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"yibao/sim"
	"yibao/sim/alipaysim"
)

const appID = "2021000118600001"

var (
	keysOnce    sync.Once
	app, alipay *rsa.PrivateKey
	keysErr     error
)

type fixture struct {
	s    *alipaysim.Sim
	srv  *httptest.Server
	base string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	keysOnce.Do(func() { app, alipay, keysErr = alipaysim.GenerateKeys() })
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	s := alipaysim.New(alipaysim.Config{AppID: appID, AppPublicKey: &app.PublicKey, AlipayKey: alipay,
		Now: func() time.Time { return time.Date(2025, 3, 14, 10, 30, 0, 0, time.FixedZone("CST", 8*3600)) }})
	mux := http.NewServeMux()
	mux.Handle("/alipay/", http.StripPrefix("/alipay", s))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(s.Close)
	return &fixture{s: s, srv: srv, base: srv.URL + "/alipay"}
}

// content is Alipay's string to sign: non-empty parameters but the
// excluded, sorted, k=v joined by &.
func content(v url.Values, except ...string) string {
	var keys []string
	for k := range v {
		if v.Get(k) != "" && !contains(except, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+v.Get(k))
	}
	return strings.Join(parts, "&")
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func rsa2(t *testing.T, key *rsa.PrivateKey, s string) string {
	t.Helper()
	h := sha256.Sum256([]byte(s))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// call sends a signed gateway request built by hand (not with the SDK)
// and returns the response object, after checking its signature over the
// exact bytes.
func (f *fixture) call(t *testing.T, method string, biz any, tamper func(url.Values)) map[string]any {
	t.Helper()
	b, _ := json.Marshal(biz)
	v := url.Values{"app_id": {appID}, "method": {method}, "format": {"JSON"}, "charset": {"utf-8"}, "sign_type": {"RSA2"},
		"timestamp": {time.Now().Format("2006-01-02 15:04:05")}, "version": {"1.0"}, "biz_content": {string(b)}}
	v.Set("sign", rsa2(t, app, content(v, "sign")))
	if tamper != nil {
		tamper(v)
	}
	resp, err := http.PostForm(f.base+"/gateway.do", v)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("answer %s: %v", body, err)
	}
	key := strings.ReplaceAll(method, ".", "_") + "_response"
	obj, ok := raw[key]
	if !ok {
		obj, ok = raw["error_response"]
		if !ok {
			t.Fatalf("answer without %s: %s", key, body)
		}
	} else {
		var sig string
		json.Unmarshal(raw["sign"], &sig)
		sb, _ := base64.StdEncoding.DecodeString(sig)
		h := sha256.Sum256(obj)
		if err := rsa.VerifyPKCS1v15(&alipay.PublicKey, crypto.SHA256, h[:], sb); err != nil {
			t.Fatalf("answer signature does not verify over %s: %v", obj, err)
		}
	}
	var out map[string]any
	json.Unmarshal(obj, &out)
	return out
}

func TestGatewaySignatures(t *testing.T) {
	f := setup(t)
	query := map[string]string{"out_trade_no": "T1"}
	cases := []struct {
		name    string
		method  string
		tamper  func(url.Values)
		code    string
		subCode string
	}{
		{"good request", "alipay.trade.query", nil, "40004", "ACQ.TRADE_NOT_EXIST"},
		{"altered after signing", "alipay.trade.query", func(v url.Values) { v.Set("biz_content", `{"out_trade_no":"T2"}`) }, "40002", "isv.invalid-signature"},
		{"signed by another key", "alipay.trade.query", func(v url.Values) { v.Set("sign", rsa2(t, alipay, content(v, "sign"))) }, "40002", "isv.invalid-signature"},
		{"sign_type left out of the signature", "alipay.trade.query", func(v url.Values) { v.Set("sign", rsa2(t, app, content(v, "sign", "sign_type"))) }, "40002", "isv.invalid-signature"},
		{"no sign", "alipay.trade.query", func(v url.Values) { v.Del("sign") }, "40001", "isv.missing-signature"},
		{"RSA", "alipay.trade.query", func(v url.Values) { v.Set("sign_type", "RSA") }, "40002", "isv.invalid-signature-type"},
		{"another app", "alipay.trade.query", func(v url.Values) { v.Set("app_id", "2021000000000000") }, "40002", "isv.invalid-app-id"},
		{"bad timestamp", "alipay.trade.query", func(v url.Values) {
			v.Set("timestamp", "yesterday")
			v.Set("sign", rsa2(t, app, content(v, "sign")))
		}, "40002", "isv.invalid-timestamp"},
		{"unknown method", "alipay.trade.page.pay", nil, "40002", "isv.invalid-method"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := f.call(t, tc.method, query, tc.tamper)
			if got["code"] != tc.code || got["sub_code"] != tc.subCode {
				t.Fatalf("got %v, want %s %s", got, tc.code, tc.subCode)
			}
		})
	}
}

// The protocol end to end without the adapter: sign, charge, bill.
func TestGatewayByHand(t *testing.T) {
	f := setup(t)
	f.s.AddPayer("2088000000000001", 100_00)
	ag := f.call(t, "alipay.user.agreement.page.sign", map[string]any{"personal_product_code": "GENERAL_WITHHOLDING_P",
		"external_agreement_no": "E1", "identity_params": map[string]string{"sign_user_id": "2088000000000001"}}, nil)
	if ag["code"] != "10000" || ag["status"] != "NORMAL" || ag["agreement_no"] == "" {
		t.Fatalf("sign: %v", ag)
	}
	pay := map[string]any{"out_trade_no": "T1", "total_amount": "12.34", "subject": "门诊 <自付> & 药费", "product_code": "GENERAL_WITHHOLDING",
		"agreement_params": map[string]any{"agreement_no": ag["agreement_no"]}}
	got := f.call(t, "alipay.trade.pay", pay, nil)
	if got["code"] != "10000" || got["total_amount"] != "12.34" {
		t.Fatalf("pay: %v", got)
	}
	if again := f.call(t, "alipay.trade.pay", pay, nil); again["trade_no"] != got["trade_no"] || f.s.Debits("T1") != 1 {
		t.Fatalf("pay again: %v (%d debits)", again, f.s.Debits("T1"))
	}
	if f.s.Balance("2088000000000001") != 100_00-12_34 || f.s.TradeStatus("T1") != "TRADE_SUCCESS" {
		t.Fatal("not debited")
	}
	pay["total_amount"] = "12.35"
	if other := f.call(t, "alipay.trade.pay", pay, nil); other["sub_code"] != "ACQ.CONTEXT_INCONSISTENT" {
		t.Fatalf("another amount: %v", other)
	}
	if rf := f.call(t, "alipay.trade.refund", map[string]any{"out_trade_no": "T1", "refund_amount": "2.34", "out_request_no": "R1"}, nil); rf["fund_change"] != "Y" || rf["refund_fee"] != "2.34" {
		t.Fatalf("refund: %v", rf)
	}
	if q := f.call(t, "alipay.trade.fastpay.refund.query", map[string]any{"out_trade_no": "T1", "out_request_no": "R2"}, nil); q["code"] != "10000" || q["refund_status"] != nil {
		t.Fatalf("query of a refund never made: %v", q)
	}

	bill := f.call(t, "alipay.data.dataservice.bill.downloadurl.query", map[string]any{"bill_type": "trade", "bill_date": "2025-03-14"}, nil)
	u, _ := bill["bill_download_url"].(string)
	if !strings.HasPrefix(u, f.base+"/bill/download?token=") {
		t.Fatalf("bill url %q", u)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	archive, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		t.Fatal(err)
	}
	dec := simplifiedchinese.GBK.NewDecoder()
	var names []string
	var detail string
	for _, zf := range zr.File {
		name, _ := dec.String(zf.Name)
		names = append(names, name)
		if !zf.NonUTF8 {
			t.Errorf("%s: the UTF-8 flag is set; Alipay's names are GBK", name)
		}
		if strings.HasSuffix(name, "_业务明细.csv") {
			rc, _ := zf.Open()
			b, _ := io.ReadAll(rc)
			rc.Close()
			detail, _ = dec.String(string(b))
		}
	}
	want := []string{"2088621000000001_20250314_业务明细.csv", "2088621000000001_20250314_业务明细(汇总).csv"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("archive entries %q, want %q", names, want)
	}
	for _, s := range []string{"支付宝交易号,商户订单号,业务类型", "T1\t,交易\t,门诊 <自付> & 药费", "12.34\t,12.34\t", "-2.34\t,-2.34\t", "R1\t", "#交易合计：1笔"} {
		if !strings.Contains(detail, s) {
			t.Errorf("detail file lacks %q:\n%s", s, detail)
		}
	}
}

func TestAdmin(t *testing.T) {
	f := setup(t)
	f.s.AddPayer("2088000000000002", 5_00)
	resp, err := http.Post(f.base+"/sim/faults", "application/json", strings.NewReader(`{"decline_next":2,"decline_code":"ACQ.X","bill_drop":["T9"]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := f.s.Faults().Get(); resp.StatusCode != 200 || got.DeclineNext != 2 || got.DeclineCode != "ACQ.X" || len(got.BillDrop) != 1 {
		t.Fatalf("faults: %d %+v", resp.StatusCode, got)
	}
	if resp, _ := http.Post(f.base+"/sim/faults", "application/json", strings.NewReader(`{"no_such_fault":1}`)); resp.StatusCode != 400 {
		t.Fatalf("unknown fault accepted: %d", resp.StatusCode)
	}
	resp, err = http.Get(f.base + "/sim/payers/2088000000000002")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		BuyerID     string `json:"buyer_id"`
		Balance     int64  `json:"balance"`
		BalanceYuan string `json:"balance_yuan"`
	}
	json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if p.Balance != 5_00 || p.BalanceYuan != "5.00" || p.BuyerID != "2088000000000002" {
		t.Fatalf("payer: %+v", p)
	}
	if resp, _ := http.Get(f.base + "/sim/payers/2088999999999999"); resp.StatusCode != 404 {
		t.Fatalf("unknown payer: %d", resp.StatusCode)
	}
	// Only loopback callers.
	r := httptest.NewRequest(http.MethodGet, "/sim/faults", nil)
	r.RemoteAddr = "203.0.113.7:40000"
	w := httptest.NewRecorder()
	f.s.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Fatalf("remote admin call: %d", w.Code)
	}
}

// Close releases a call hanging on TimeoutNext, and the charge was made.
func TestCloseReleasesHangingCall(t *testing.T) {
	f := setup(t)
	f.s.AddPayer("2088000000000003", 10_00)
	ag := f.call(t, "alipay.user.agreement.page.sign", map[string]any{"personal_product_code": "GENERAL_WITHHOLDING_P",
		"identity_params": map[string]string{"sign_user_id": "2088000000000003"}}, nil)
	f.s.Faults().Set(sim.Faults{TimeoutNext: 1})
	done := make(chan struct{})
	go func() {
		defer close(done)
		b, _ := json.Marshal(map[string]any{"out_trade_no": "T3", "total_amount": "1.00", "subject": "x", "product_code": "GENERAL_WITHHOLDING",
			"agreement_params": map[string]any{"agreement_no": ag["agreement_no"]}})
		v := url.Values{"app_id": {appID}, "method": {"alipay.trade.pay"}, "charset": {"utf-8"}, "sign_type": {"RSA2"},
			"timestamp": {time.Now().Format("2006-01-02 15:04:05")}, "version": {"1.0"}, "biz_content": {string(b)}}
		v.Set("sign", rsa2(t, app, content(v, "sign")))
		if resp, err := http.PostForm(f.base+"/gateway.do", v); err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(2 * time.Second)
	for f.s.Debits("T3") == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if f.s.Debits("T3") != 1 {
		t.Fatal("the hanging charge was not made")
	}
	select {
	case <-done:
		t.Fatal("TimeoutNext answered")
	case <-time.After(50 * time.Millisecond):
	}
	f.s.Close()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not release the hanging call")
	}
}

func TestConfirmPaymentErrors(t *testing.T) {
	f := setup(t)
	if err := f.s.ConfirmPayment("nope"); err != alipaysim.ErrNoTrade {
		t.Fatalf("unknown trade: %v", err)
	}
	f.s.AddPayer("2088000000000004", 1_00)
	if got := f.call(t, "alipay.trade.create", map[string]any{"out_trade_no": "P1", "total_amount": "2.00", "subject": "x", "buyer_id": "2088000000000004"}, nil); got["code"] != "10000" {
		t.Fatalf("create: %v", got)
	}
	if err := f.s.ConfirmPayment("P1"); err != alipaysim.ErrNoBalance {
		t.Fatalf("poor payer: %v", err)
	}
	if f.s.TradeStatus("P1") != "WAIT_BUYER_PAY" {
		t.Fatal("a failed confirmation changed the trade")
	}
	f.s.AddPayer("2088000000000004", 2_00)
	if err := f.s.ConfirmPayment("P1"); err != nil || f.s.Balance("2088000000000004") != 0 {
		t.Fatalf("confirm: %v", err)
	}
}
