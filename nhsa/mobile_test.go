package nhsa_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"yibao/money"
	"yibao/nhsa"
	"yibao/nhsa/client"
	"yibao/pay"
)

// mobile posts a mobile-payment center message the way a HIS does: the
// center's envelope, the transport signed with the institution's key.
func (e *env) mobile(t *testing.T, c *client.Client, infno string, data any, mutate func(map[string]any)) nhsa.MobileResponse {
	t.Helper()
	path := ""
	for p, n := range nhsa.MobilePaths {
		if n == infno {
			path = p
		}
	}
	signer := c.Signer
	env := map[string]any{"appId": signer.KeyID, "data": data, "timestamp": time.Now().In(time.FixedZone("CST", 8*3600)).Format("20060102150405"),
		"version": "2.0.1", "encType": "", "signType": "SM2"}
	if mutate != nil {
		mutate(env)
	}
	body, _ := json.Marshal(env)
	req, _ := http.NewRequestWithContext(context.Background(), "POST", e.srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if err := signer.Sign(req, body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out nhsa.MobileResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: HTTP %d %v", infno, resp.StatusCode, err)
	}
	return out
}

func field(t *testing.T, r nhsa.MobileResponse, key string) string {
	t.Helper()
	m, ok := r.Data.(map[string]any)
	if !ok {
		t.Fatalf("no data: %+v", r)
	}
	s, _ := m[key].(string)
	return s
}

// TestMobilePayment: 6201 uploads a bill for the phone, 6202 settles it
// once the patient has a withholding agreement, 6301 reports it, 6203
// refunds part of the cash, 6401 withdraws another upload; bad payToken,
// sums that do not add up, a stranger's appId and another hospital are
// refused.
func TestMobilePayment(t *testing.T) {
	e := newEnv(t)
	e.app.Pay.SetNotifyBase(e.srv.URL + "/api/v1/pay/notify")
	register := func() string {
		reg := decode[struct {
			Data struct {
				MdtrtID string `json:"mdtrt_id"`
			} `json:"data"`
		}](t, e.call(t, e.his, "2201", map[string]any{"data": map[string]string{"psn_no": e.psn, "insutype": "310", "begntime": now(),
			"mdtrt_cert_type": "02", "mdtrt_cert_no": e.idNo, "ipt_otp_no": "MZ" + now()[17:], "atddr_no": "D01", "dr_name": "王医生",
			"dept_code": "NK", "dept_name": "内科", "caty": "A03"}}))
		return reg.Data.MdtrtID
	}
	upload := func(md, ord string, sum string) nhsa.MobileResponse {
		return e.mobile(t, e.his, "6201", map[string]any{"psnNo": e.psn, "mdtrtId": md, "medOrgOrd": ord, "orgCodg": "H37010000001",
			"medfeeSumamt": sum, "acctUsedFlag": "0", "feedetailList": []map[string]any{
				{"feedetlSn": "1", "medListCodg": e.drug, "cnt": "2", "pric": "150.00", "detItemFeeSumamt": "300.00", "feeOcurTime": now()},
				{"feedetlSn": "2", "medListCodg": e.drug, "cnt": "1", "pric": "88.50", "detItemFeeSumamt": "88.50", "feeOcurTime": now()}}}, nil)
	}
	md := register()
	if r := upload(md, "ORD-BAD", "390.00"); r.Code != -1 || !strings.Contains(r.Message, "medfeeSumamt") {
		t.Fatalf("a sum that does not add up: %+v", r)
	}
	up := upload(md, "ORD-1", "388.50")
	if up.Code != 0 {
		t.Fatalf("6201: %+v", up)
	}
	id, tok := field(t, up, "payOrdId"), field(t, up, "payToken")
	pre := up.Data.(map[string]any)["extData"].(map[string]any)["preSetl"].(map[string]any)
	if pre["medfeeSumamt"] != "388.50" || pre["ownPayAmt"] == "0.00" {
		t.Fatalf("pre-settlement: %v", pre)
	}
	if again := upload(md, "ORD-1", "388.50"); field(t, again, "payOrdId") != id {
		t.Fatal("the same medOrgOrd made a second order")
	}
	if r := e.mobile(t, e.his, "6202", map[string]any{"payOrdId": id, "payToken": "nope"}, nil); r.Code != -1 {
		t.Fatalf("a wrong payToken: %+v", r)
	}
	if r := e.mobile(t, e.his, "6301", map[string]any{"payOrdId": id}, func(m map[string]any) { m["appId"] = "someone-else" }); r.Code != -1 {
		t.Fatalf("an appId that is not the signing key: %+v", r)
	}
	if r := e.mobile(t, e.other, "6301", map[string]any{"payOrdId": id}, nil); r.Code != -1 {
		t.Fatalf("another hospital queried the order: %+v", r)
	}
	// No agreement yet: 6202 leaves the bill for the patient.
	if r := e.mobile(t, e.his, "6202", map[string]any{"payOrdId": id, "payToken": tok}, nil); r.Code != 0 || field(t, r, "ordStas") != "0" {
		t.Fatalf("6202 without an agreement: %+v", r)
	}
	if _, err := e.app.Pay.SignAgreement(context.Background(), e.psn, "wechat", money.Yuan(1000)); err != nil {
		t.Fatal(err)
	}
	paid := e.mobile(t, e.his, "6202", map[string]any{"payOrdId": id, "payToken": tok}, nil)
	if paid.Code != 0 || field(t, paid, "ordStas") != "2" || field(t, paid, "traceNo") == "" {
		t.Fatalf("6202 with an agreement: %+v", paid)
	}
	q := e.mobile(t, e.his, "6301", map[string]any{"payOrdId": id}, nil)
	if field(t, q, "ordStas") != "2" || field(t, q, "feeSumamt") != "388.50" {
		t.Fatalf("6301: %+v", q)
	}
	own := money.MustParseYuan(field(t, q, "ownPayAmt"))
	fund := money.MustParseYuan(field(t, q, "fundPay"))
	acct := money.MustParseYuan(field(t, q, "psnAcctPay"))
	if own+fund+acct != money.MustParseYuan("388.50") {
		t.Fatalf("ownPayAmt + fundPay + psnAcctPay ≠ feeSumamt: %+v", q.Data)
	}
	ref := e.mobile(t, e.his, "6203", map[string]any{"payOrdId": id, "appRefdSn": "R1", "refdType": "CASH", "cashRefdAmt": "10.00"}, nil)
	if ref.Code != 0 || field(t, ref, "refStatus") != "SUCC" {
		t.Fatalf("6203: %+v", ref)
	}
	if r := e.mobile(t, e.his, "6203", map[string]any{"payOrdId": id, "appRefdSn": "R2", "refdType": "HI"}, nil); r.Code != -1 {
		t.Fatalf("6203 HI: %+v", r)
	}
	if o, _ := e.app.Pay.Get(systemCtx(), id); o.Refunded != money.Yuan(10) || o.Status != pay.StatusPartiallyRefunded {
		t.Fatalf("after 6203: %+v", o)
	}
	// 6401 withdraws an unpaid upload; a paid one is refused.
	md2 := register()
	other := upload(md2, "ORD-2", "388.50")
	if r := e.mobile(t, e.his, "6401", map[string]any{"payOrdId": field(t, other, "payOrdId")}, nil); r.Code != 0 {
		t.Fatalf("6401: %+v", r)
	}
	if r := e.mobile(t, e.his, "6301", map[string]any{"payOrdId": field(t, other, "payOrdId")}, nil); field(t, r, "ordStas") != "5" {
		t.Fatalf("6301 after 6401: %+v", r)
	}
	if r := e.mobile(t, e.his, "6401", map[string]any{"payOrdId": id}, nil); r.Code != -1 {
		t.Fatalf("6401 of a paid order: %+v", r)
	}
}
