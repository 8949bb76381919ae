package nhsa_test

import (
	"context"
	"strings"
	"testing"
)

// TestReviewOnTheInterface: a fee upload (2204) with a duplicate charge
// is stored and answered with the finding as an early warning; the
// pre-settlement (2206) then refuses the bill, naming the line.
func TestReviewOnTheInterface(t *testing.T) {
	e := newEnv(t)
	reg := decode[struct {
		Data struct {
			MdtrtID string `json:"mdtrt_id"`
		} `json:"data"`
	}](t, e.call(t, e.his, "2201", map[string]any{"data": map[string]string{"psn_no": e.psn, "insutype": "310", "begntime": now(),
		"mdtrt_cert_type": "02", "mdtrt_cert_no": e.idNo, "ipt_otp_no": "JZ0001", "atddr_no": "D01", "dr_name": "王医生", "dept_code": "JZ",
		"dept_name": "急诊科", "caty": "A03"}}))
	md := reg.Data.MdtrtID
	line := func(sn, code, price string) map[string]any {
		return map[string]any{"feedetl_sn": sn, "mdtrt_id": md, "psn_no": e.psn, "chrg_bchno": "B1", "fee_ocur_time": now(), "med_list_codg": code,
			"medins_list_codg": "X" + sn, "det_item_fee_sumamt": price, "cnt": "1", "pric": price, "bilg_dept_codg": "JZ", "bilg_dept_name": "急诊科",
			"bilg_dr_codg": "D01", "bilg_dr_name": "王医生", "hosp_appr_flag": "1", "rx_circ_flag": "0"}
	}
	up := decode[struct {
		Result []map[string]any    `json:"result"`
		Review []map[string]string `json:"smart_review"`
	}](t, e.call(t, e.his, "2204", map[string]any{"feedetail": []map[string]any{line("1", "001103000010000", "120.00"), line("2", "001102000030000", "15.00")}}))
	if len(up.Result) != 2 {
		t.Fatalf("2204 stored %d lines", len(up.Result))
	}
	blocked := false
	for _, h := range up.Review {
		if h["feedetl_sn"] == "2" && h["action"] == "block" && h["rule_type"] == "duplicate" {
			blocked = true
		}
	}
	if !blocked {
		t.Fatalf("2204 did not warn of the duplicate charge: %+v", up.Review)
	}
	_, err := e.his.Call(context.Background(), "2206", map[string]any{"data": map[string]any{"psn_no": e.psn, "mdtrt_cert_type": "02",
		"mdtrt_cert_no": e.idNo, "med_type": "11", "medfee_sumamt": "135.00", "psn_setlway": "01", "mdtrt_id": md, "chrg_bchno": "B1",
		"insutype": "310", "acct_used_flag": "1"}})
	if err == nil || !strings.Contains(err.Error(), "review_blocked: 2:") {
		t.Fatalf("2206 of a bill with a duplicate charge: %v", err)
	}
}
