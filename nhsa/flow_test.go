package nhsa_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"yibao/app"
	"yibao/auth"
	"yibao/demo"
	"yibao/nhsa/client"
	"yibao/sqlstore/sqltest"
)

type env struct {
	srv   *httptest.Server
	his   *client.Client
	other *client.Client // another hospital's HIS
	data  *demo.Dataset
	drug  string
	idNo  string
	psn   string
	today string
	app   *app.App
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cfg := app.Defaults()
	cfg.Face = "off"
	cfg.DataDir = t.TempDir()
	cfg.DB = sqltest.DSN(t)
	cfg.MasterKey = strings.Repeat("cd", 32)
	cfg.PasswordIterations = 1000
	cfg.LogLevel = "error"
	a, err := app.Open(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	d := demo.Build()
	if _, err := a.Seed(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	e := &env{app: a, data: d, today: time.Now().In(time.FixedZone("CST", 8*3600)).Format(time.DateOnly)}
	e.srv = httptest.NewServer(a.Handler())
	t.Cleanup(e.srv.Close)
	mk := func(code string) *client.Client {
		for _, k := range d.APIKeys {
			if k.FixmedinsCode == code {
				return &client.Client{BaseURL: e.srv.URL, FixmedinsCode: code, FixmedinsName: "测试医院", Admvs: "370100", Opter: "001",
					OpterName: "收费员", Signer: &auth.Signer{KeyID: k.KeyID, Secret: k.Secret}}
			}
		}
		t.Fatalf("no key for %s", code)
		return nil
	}
	e.his, e.other = mk("H37010000001"), mk("H37010000002")
	for _, c := range d.Coverages {
		if c.Insutype == "310" && c.Admdvs == "370100" && c.EndDate == "" {
			e.psn = c.PsnNo
			break
		}
	}
	for _, p := range d.Persons {
		if p.PsnNo == e.psn {
			e.idNo = p.IDNumber
		}
	}
	for _, it := range d.Catalog {
		if it.Kind == "drug" && it.Class == "A" && it.ValidFrom <= e.today && (it.ValidTo == "" || it.ValidTo >= e.today) {
			e.drug = it.Code
			break
		}
	}
	return e
}

func decode[T any](t *testing.T, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return v
}

func (e *env) call(t *testing.T, c *client.Client, infno string, input any) json.RawMessage {
	t.Helper()
	out, err := c.Call(context.Background(), infno, input)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func now() string { return time.Now().In(time.FixedZone("CST", 8*3600)).Format("2006-01-02 15:04:05") }

// TestOutpatientFlow walks a HIS through 9001, 1101, 2201, 2203, 2204,
// 2206, 2207 (and its msgid replay), 5203, 5206, 2208 and 2601 with the
// client package, checking amounts against the settlement engine.
func TestOutpatientFlow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.his.SignIn(ctx, "10.0.0.8"); err != nil || e.his.SignNo == "" {
		t.Fatalf("9001: %v", err)
	}
	info := decode[struct {
		Baseinfo struct {
			PsnNo string `json:"psn_no"`
			Name  string `json:"psn_name"`
		} `json:"baseinfo"`
		Insuinfo []struct {
			Insutype string      `json:"insutype"`
			Balc     json.Number `json:"balc"`
		} `json:"insuinfo"`
	}](t, e.call(t, e.his, "1101", map[string]any{"data": map[string]string{"mdtrt_cert_type": "02", "mdtrt_cert_no": e.idNo}}))
	if info.Baseinfo.PsnNo != e.psn || len(info.Insuinfo) == 0 {
		t.Fatalf("1101: %+v", info)
	}
	reg := decode[struct {
		Data struct {
			MdtrtID string `json:"mdtrt_id"`
		} `json:"data"`
	}](t, e.call(t, e.his, "2201", map[string]any{"data": map[string]string{"psn_no": e.psn, "insutype": "310", "begntime": now(),
		"mdtrt_cert_type": "02", "mdtrt_cert_no": e.idNo, "ipt_otp_no": "MZ0001", "atddr_no": "D01", "dr_name": "王医生", "dept_code": "NK",
		"dept_name": "内科", "caty": "A03"}}))
	md := reg.Data.MdtrtID
	e.call(t, e.his, "2203", map[string]any{"mdtrtinfo": map[string]string{"mdtrt_id": md, "psn_no": e.psn, "med_type": "11", "begntime": now()},
		"diseinfo": []map[string]any{{"diag_type": "1", "diag_srt_no": 1, "diag_code": "J06.900", "diag_name": "急性上呼吸道感染"}}})
	fees := decode[struct {
		Result []struct {
			Sn    string      `json:"feedetl_sn"`
			Inscp json.Number `json:"inscp_scp_amt"`
			Lv    string      `json:"chrgitm_lv"`
		} `json:"result"`
	}](t, e.call(t, e.his, "2204", map[string]any{"feedetail": []map[string]any{
		{"feedetl_sn": "F1", "mdtrt_id": md, "psn_no": e.psn, "chrg_bchno": "B1", "fee_ocur_time": now(), "med_list_codg": e.drug,
			"medins_list_codg": "X1", "det_item_fee_sumamt": 900.00, "cnt": 3, "pric": 300, "bilg_dept_codg": "NK", "bilg_dept_name": "内科",
			"bilg_dr_codg": "D01", "bilg_dr_name": "王医生", "hosp_appr_flag": "1", "rx_circ_flag": "0"},
		{"feedetl_sn": "F2", "mdtrt_id": md, "psn_no": e.psn, "chrg_bchno": "B1", "fee_ocur_time": now(), "med_list_codg": e.drug,
			"medins_list_codg": "X1", "det_item_fee_sumamt": "120.50", "cnt": "1", "pric": "120.50", "bilg_dept_codg": "NK", "bilg_dept_name": "内科",
			"bilg_dr_codg": "D01", "bilg_dr_name": "王医生", "hosp_appr_flag": "1", "rx_circ_flag": "0"},
	}}))
	if len(fees.Result) != 2 || fees.Result[0].Lv != "01" || fees.Result[0].Inscp.String() != "900.00" {
		t.Fatalf("2204: %+v", fees)
	}
	sdata := map[string]any{"psn_no": e.psn, "mdtrt_cert_type": "02", "mdtrt_cert_no": e.idNo, "med_type": "11", "medfee_sumamt": 1020.50,
		"psn_setlway": "01", "mdtrt_id": md, "chrg_bchno": "B1", "insutype": "310", "acct_used_flag": "1"}
	type setl struct {
		Setlinfo map[string]any `json:"setlinfo"`
	}
	pre := decode[setl](t, e.call(t, e.his, "2206", map[string]any{"data": sdata}))
	if _, has := pre.Setlinfo["setl_id"]; has || pre.Setlinfo["medfee_sumamt"] != 1020.5 {
		t.Fatalf("2206: %v", pre.Setlinfo)
	}
	sdata["inscp_scp_amt"] = 1020.50
	msgid := e.his.NewMsgid()
	out, err := e.his.CallMsgid(ctx, "2207", msgid, map[string]any{"data": sdata})
	if err != nil {
		t.Fatal(err)
	}
	st := decode[setl](t, out)
	setlID, _ := st.Setlinfo["setl_id"].(string)
	// Amounts agree with the settlement engine and add up.
	got, err := e.app.Settle.GetSettlement(systemCtx(), setlID)
	if err != nil {
		t.Fatal(err)
	}
	si := got.Result.SetlInfo
	for k, want := range map[string]string{"medfee_sumamt": si.MedfeeSumamt.String(), "hifp_pay": si.HifpPay.String(),
		"acct_pay": si.AcctPay.String(), "psn_cash_pay": si.PsnCashPay.String(), "fund_pay_sumamt": si.FundPaySumamt.String()} {
		w, _ := strconv.ParseFloat(want, 64)
		if g, ok := st.Setlinfo[k].(float64); !ok || g != w {
			t.Errorf("2207 %s = %v, engine says %s", k, st.Setlinfo[k], want)
		}
	}
	if st.Setlinfo["medins_setl_id"] != msgid {
		t.Errorf("medins_setl_id %v, want the msgid", st.Setlinfo["medins_setl_id"])
	}
	// The same msgid again: the original answer, no second settlement.
	again, err := e.his.CallMsgid(ctx, "2207", msgid, map[string]any{"data": sdata})
	if err != nil || decode[setl](t, again).Setlinfo["setl_id"] != setlID {
		t.Fatalf("2207 replay: %v %s", err, again)
	}
	// Another institution cannot touch it.
	if _, err := e.other.Call(ctx, "5203", map[string]any{"data": map[string]string{"psn_no": e.psn, "setl_id": setlID}}); err == nil {
		t.Fatal("another hospital read the settlement")
	}
	q := decode[setl](t, e.call(t, e.his, "5203", map[string]any{"data": map[string]string{"psn_no": e.psn, "setl_id": setlID}}))
	if q.Setlinfo["setl_stas"] != "completed" {
		t.Fatalf("5203: %v", q.Setlinfo)
	}
	e.call(t, e.his, "5206", map[string]any{"data": map[string]string{"psn_no": e.psn}})
	// 2601 reverses the 2207 by its msgid, once.
	e.call(t, e.his, "2601", map[string]any{"data": map[string]string{"psn_no": e.psn, "omsgid": msgid, "oinfno": "2207"}})
	after, _ := e.app.Settle.GetSettlement(systemCtx(), setlID)
	if after.Status != "reversed" {
		t.Fatalf("after 2601: %s", after.Status)
	}
	// Settle again and cancel with 2208: negated figures, both cash spellings.
	delete(sdata, "inscp_scp_amt")
	st2 := decode[setl](t, e.call(t, e.his, "2207", map[string]any{"data": sdata}))
	id2 := st2.Setlinfo["setl_id"].(string)
	cancel := decode[setl](t, e.call(t, e.his, "2208", map[string]any{"data": map[string]string{"setl_id": id2, "mdtrt_id": md, "psn_no": e.psn}}))
	if cancel.Setlinfo["medfee_sumamt"] != -1020.5 || cancel.Setlinfo["pdn_cash_pay"] != cancel.Setlinfo["psn_cash_pay"] {
		t.Fatalf("2208: %v", cancel.Setlinfo)
	}
}

// TestInpatientFlow: 2401 admission, 2301 fees, 2303 pre-settle, 2402
// discharge, 2304 settlement, 2305 cancellation, through the TIF
// gateway headers and the /{infno} path form.
func TestInpatientFlow(t *testing.T) {
	e := newEnv(t)
	var k demo.DemoAPIKey
	for _, x := range e.data.APIKeys {
		if x.FixmedinsCode == "H37010000001" {
			k = x
		}
	}
	his := &client.Client{BaseURL: e.srv.URL, FixmedinsCode: "H37010000001", FixmedinsName: "测试医院", Admvs: "370100", Opter: "001",
		OpterName: "收费员", TIFPaasid: k.KeyID, TIFSecretHex: hexOf(k.Secret), AppendInfno: true}
	adm := decode[struct {
		Result struct {
			MdtrtID string `json:"mdtrt_id"`
		} `json:"result"`
	}](t, e.call(t, his, "2401", map[string]any{"mdtrtinfo": map[string]string{"psn_no": e.psn, "insutype": "310", "begntime": now(),
		"mdtrt_cert_type": "02", "mdtrt_cert_no": e.idNo, "med_type": "21", "ipt_no": "ZY0001", "atddr_no": "D02", "chfpdr_name": "李医生",
		"adm_diag_dscr": "肺炎", "adm_dept_codg": "HXK", "adm_dept_name": "呼吸科", "adm_bed": "12", "dscg_maindiag_code": "J18.900",
		"dscg_maindiag_name": "肺炎"}, "diseinfo": []any{}}))
	md := adm.Result.MdtrtID
	e.call(t, his, "2301", map[string]any{"feedetail": []map[string]any{{"feedetl_sn": "Z1", "mdtrt_id": md, "psn_no": e.psn, "med_type": "21",
		"fee_ocur_time": now(), "med_list_codg": e.drug, "medins_list_codg": "X1", "det_item_fee_sumamt": 5000, "cnt": 10, "pric": 500,
		"bilg_dept_codg": "HXK", "bilg_dept_name": "呼吸科", "bilg_dr_codg": "D02", "bilg_dr_name": "李医生"}}})
	sdata := map[string]any{"psn_no": e.psn, "mdtrt_cert_type": "02", "mdtrt_cert_no": e.idNo, "medfee_sumamt": 5000, "psn_setlway": "01",
		"mdtrt_id": md, "insutype": "310", "acct_used_flag": "1", "mid_setl_flag": "1"}
	e.call(t, his, "2303", map[string]any{"data": sdata})
	e.call(t, his, "2402", map[string]any{"dscginfo": map[string]string{"mdtrt_id": md, "psn_no": e.psn, "insutype": "310", "endtime": now(),
		"dscg_dept_codg": "HXK", "dscg_dept_name": "呼吸科", "dscg_way": "1"}, "diseinfo": []any{}})
	sdata["mid_setl_flag"] = "0"
	st := decode[struct {
		Setlinfo map[string]any `json:"setlinfo"`
	}](t, e.call(t, his, "2304", map[string]any{"data": sdata}))
	if st.Setlinfo["clr_type"] != "21" || st.Setlinfo["med_type"] != "21" || st.Setlinfo["act_pay_dedc"] == 0.0 {
		t.Fatalf("2304: %v", st.Setlinfo)
	}
	e.call(t, his, "2305", map[string]any{"data": map[string]string{"mdtrt_id": md, "setl_id": st.Setlinfo["setl_id"].(string), "psn_no": e.psn}})
}

func hexOf(b []byte) string {
	const h = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, x := range b {
		out = append(out, h[x>>4], h[x&15])
	}
	return string(out)
}

// TestRefusals: envelope and business errors come back as infcode -1 with
// a precise err_msg, over HTTP 200.
func TestRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	good := map[string]any{"data": map[string]string{"mdtrt_cert_type": "02", "mdtrt_cert_no": e.idNo}}
	cases := []struct {
		name  string
		infno string
		msgid string
		input any
		c     *client.Client
		want  string
	}{
		{"unknown infno", "9999", "", good, e.his, "不支持的交易编号"},
		{"bad infno", "22O4", "", good, e.his, "infno"},
		{"msgid of another institution", "1101", "H37010000002" + "20261123101010" + "0001", good, e.his, "msgid"},
		{"short msgid", "1101", "H3701000000120261123", good, e.his, "msgid"},
		{"null input", "1101", "", nil, e.his, "input"},
		{"unknown credential type", "1101", "", map[string]any{"data": map[string]string{"mdtrt_cert_type": "09", "mdtrt_cert_no": "x"}}, e.his, "mdtrt_cert_type"},
		{"card without card_sn", "1101", "", map[string]any{"data": map[string]string{"mdtrt_cert_type": "03", "mdtrt_cert_no": e.idNo}}, e.his, "card_sn"},
		{"unknown person", "1101", "", map[string]any{"data": map[string]string{"mdtrt_cert_type": "02", "mdtrt_cert_no": "110101199003074477"}}, e.his, "无此参保人"},
		{"settle a visit that does not exist", "2207", "", map[string]any{"data": map[string]any{"mdtrt_id": "MDNOPE", "psn_no": e.psn, "medfee_sumamt": 1}}, e.his, "not_found"},
		{"amount with three decimals", "2207", "", map[string]any{"data": map[string]any{"mdtrt_id": "MDNOPE", "medfee_sumamt": 1.005}}, e.his, "两位小数"},
		{"reverse an unknown message", "2601", "", map[string]any{"data": map[string]string{"psn_no": e.psn, "omsgid": "H37010000001202611230000000000", "oinfno": "2207"}}, e.his, "omsgid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msgid := tc.msgid
			if msgid == "" {
				msgid = tc.c.NewMsgid()
			}
			resp, err := tc.c.Send(ctx, tc.infno, msgid, tc.input)
			if err != nil {
				t.Fatal(err)
			}
			if resp.OK() || !strings.Contains(resp.ErrMsg, tc.want) {
				t.Fatalf("infcode %s err_msg %q, want -1 mentioning %q", resp.Infcode, resp.ErrMsg, tc.want)
			}
		})
	}
	// The same msgid with other content is refused.
	msgid := e.his.NewMsgid()
	if _, err := e.his.CallMsgid(ctx, "1101", msgid, good); err != nil {
		t.Fatal(err)
	}
	other := map[string]any{"data": map[string]string{"mdtrt_cert_type": "02", "mdtrt_cert_no": e.data.Persons[1].IDNumber}}
	if _, err := e.his.CallMsgid(ctx, "1101", msgid, other); err == nil || !strings.Contains(err.Error(), "已被另一笔报文使用") {
		t.Fatalf("reused msgid: %v", err)
	}
	// No credentials: still an envelope.
	req, _ := http.NewRequest("POST", e.srv.URL+"/fsi/api/rsfComIfsService/callService", strings.NewReader(`{"infno":"1101"}`))
	req.Header.Set("Content-Type", "text/plain")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.Contains(string(b), `"infcode":-1`) {
		t.Fatalf("unauthenticated: %d %s", res.StatusCode, b)
	}
	// An institution acts only for itself.
	fake := &client.Client{BaseURL: e.srv.URL, FixmedinsCode: "H37010000001", FixmedinsName: "x", Admvs: "370100", Opter: "1", OpterName: "x",
		Signer: e.other.Signer}
	resp, _ := fake.Send(ctx, "1101", fake.NewMsgid(), good)
	if resp.OK() || !strings.Contains(resp.ErrMsg, "acts only for itself") {
		t.Fatalf("impersonation: %s", resp.ErrMsg)
	}
}
