package nhsa_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestReconciliationAndFiles settles two outpatient bills, reconciles the
// totals (3201) right and wrong, uploads a detail file (9101), reconciles
// it (3202) and downloads the result (9102); then exercises 2404, 2405,
// 2403, 5201, 5204 and 2202.
func TestReconciliationAndFiles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var setls []map[string]any
	for i := range 2 {
		reg := decode[struct {
			Data struct {
				MdtrtID string `json:"mdtrt_id"`
			} `json:"data"`
		}](t, e.call(t, e.his, "2201", map[string]any{"data": map[string]string{"psn_no": e.psn, "insutype": "310", "begntime": now(),
			"mdtrt_cert_type": "02", "mdtrt_cert_no": e.idNo, "ipt_otp_no": fmt.Sprint("R", i), "dept_code": "NK", "dept_name": "内科"}}))
		md := reg.Data.MdtrtID
		e.call(t, e.his, "2204", map[string]any{"feedetail": []map[string]any{{"feedetl_sn": "1", "mdtrt_id": md, "psn_no": e.psn,
			"fee_ocur_time": now(), "med_list_codg": e.drug, "det_item_fee_sumamt": 100 + i, "cnt": 1, "pric": 100 + i}}})
		if i == 0 {
			fees := decode[struct {
				Feedetail []map[string]any `json:"feedetail"`
			}](t, e.call(t, e.his, "5204", map[string]any{"data": map[string]string{"mdtrt_id": md, "psn_no": e.psn}}))
			if len(fees.Feedetail) != 1 {
				t.Fatalf("5204: %v", fees)
			}
		}
		st := decode[struct {
			Setlinfo map[string]any `json:"setlinfo"`
		}](t, e.call(t, e.his, "2207", map[string]any{"data": map[string]any{"psn_no": e.psn, "mdtrt_cert_type": "02", "mdtrt_cert_no": e.idNo,
			"med_type": "11", "medfee_sumamt": 100 + i, "psn_setlway": "01", "mdtrt_id": md, "insutype": "310", "acct_used_flag": "1"}}))
		setls = append(setls, st.Setlinfo)
	}
	// The demo seed settled a few bills at this hospital today; they count.
	var medfee, fund, acct float64
	var seeded int
	var m0, f0, a0 int64
	if err := e.app.DB.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(medfee_sumamt), 0), COALESCE(SUM(fund_pay_sumamt), 0), COALESCE(SUM(acct_pay), 0)
		FROM settlements WHERE fixmedins_code = 'H37010000001' AND status = 'completed' AND setl_id NOT IN (?, ?)`,
		setls[0]["setl_id"], setls[1]["setl_id"]).Scan(&seeded, &m0, &f0, &a0); err != nil {
		t.Fatal(err)
	}
	medfee, fund, acct = float64(m0)/100, float64(f0)/100, float64(a0)/100
	for _, s := range setls {
		medfee += s["medfee_sumamt"].(float64)
		fund += s["fund_pay_sumamt"].(float64)
		acct += s["acct_pay"].(float64)
	}
	stmt := func(m float64, cnt int) map[string]string {
		out := decode[struct {
			Stmtinfo map[string]string `json:"stmtinfo"`
		}](t, e.call(t, e.his, "3201", map[string]any{"data": map[string]any{"insutype": "310", "clr_type": "11", "setl_optins": "370100",
			"stmt_begndate": e.today, "stmt_enddate": e.today, "medfee_sumamt": fmt.Sprintf("%.2f", m), "fund_pay_sumamt": fmt.Sprintf("%.2f", fund),
			"acct_pay": fmt.Sprintf("%.2f", acct), "fixmedins_setl_cnt": cnt}}))
		return out.Stmtinfo
	}
	if got := stmt(medfee, seeded+2); got["stmt_rslt"] != "0" {
		t.Fatalf("3201 balanced: %v", got)
	}
	if got := stmt(medfee+1, seeded+3); got["stmt_rslt"] != "1" || !strings.Contains(got["stmt_rslt_dscr"], fmt.Sprintf("fixmedins_setl_cnt 机构 %d / 平台 %d", seeded+3, seeded+2)) {
		t.Fatalf("3201 unbalanced: %v", got)
	}
	// Detail file: the first line right, the second with a wrong amount, a third unknown.
	lines := fmt.Sprintf("%s\t%s\t%s\t%.2f\t%.2f\t%.2f\t0\n%s\t%s\t%s\t999.00\t%.2f\t%.2f\t0\nST-NOPE\tMD\t%s\t1.00\t0\t0\t0\n",
		setls[0]["setl_id"], setls[0]["mdtrt_id"], e.psn, setls[0]["medfee_sumamt"], setls[0]["fund_pay_sumamt"], setls[0]["acct_pay"],
		setls[1]["setl_id"], setls[1]["mdtrt_id"], e.psn, setls[1]["fund_pay_sumamt"], setls[1]["acct_pay"], e.psn)
	raw := []int{}
	for _, b := range []byte(lines) {
		raw = append(raw, int(b))
	}
	up := decode[map[string]any](t, e.call(t, e.his, "9101", map[string]any{"fsUploadIn": map[string]any{"in": raw, "filename": "detail.txt", "fixmedins_code": "H37010000001"}}))
	res := decode[struct {
		Fileinfo struct {
			No         string `json:"file_qury_no"`
			Name       string `json:"filename"`
			Mismatched int    `json:"mismatched"`
		} `json:"fileinfo"`
	}](t, e.call(t, e.his, "3202", map[string]any{"data": map[string]any{"setl_optins": "370100", "file_qury_no": up["file_qury_no"],
		"stmt_begndate": e.today, "stmt_enddate": e.today, "medfee_sumamt": fmt.Sprintf("%.2f", medfee), "fund_pay_sumamt": fmt.Sprintf("%.2f", fund),
		"cash_payamt": 0, "fixmedins_setl_cnt": 2}}))
	if res.Fileinfo.Mismatched != 2 {
		t.Fatalf("3202: %+v", res)
	}
	file, err := e.his.Download(ctx, res.Fileinfo.No, res.Fileinfo.Name)
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(string(file)), "\n")
	if len(rows) != 3 || !strings.Contains(rows[0], "\t0\t平") || !strings.Contains(rows[1], "medfee_sumamt 机构 999.00") || !strings.Contains(rows[2], "平台无此结算") {
		t.Fatalf("3202 result:\n%s", file)
	}
	if _, err := e.other.Download(ctx, res.Fileinfo.No, res.Fileinfo.Name); err == nil {
		t.Fatal("another hospital downloaded the file")
	}

	// Inpatient cancellations: admit, discharge, take the discharge back,
	// change the department, cancel the admission.
	adm := decode[struct {
		Result struct {
			MdtrtID string `json:"mdtrt_id"`
		} `json:"result"`
	}](t, e.call(t, e.his, "2401", map[string]any{"mdtrtinfo": map[string]string{"psn_no": e.psn, "insutype": "310", "begntime": now(),
		"mdtrt_cert_type": "02", "mdtrt_cert_no": e.idNo, "med_type": "21", "ipt_no": "ZY9", "adm_dept_codg": "HXK", "adm_dept_name": "呼吸科"}}))
	md := adm.Result.MdtrtID
	e.call(t, e.his, "2402", map[string]any{"dscginfo": map[string]string{"mdtrt_id": md, "psn_no": e.psn, "endtime": now()}})
	e.call(t, e.his, "2405", map[string]any{"data": map[string]string{"mdtrt_id": md, "psn_no": e.psn}})
	e.call(t, e.his, "2403", map[string]any{"adminfo": map[string]string{"mdtrt_id": md, "psn_no": e.psn, "adm_dept_codg": "XNK", "adm_dept_name": "心内科"}})
	vis := decode[struct {
		Mdtrtinfo []map[string]any `json:"mdtrtinfo"`
	}](t, e.call(t, e.his, "5201", map[string]any{"data": map[string]string{"mdtrt_id": md, "psn_no": e.psn}}))
	if vis.Mdtrtinfo[0]["dept_code"] != "XNK" || vis.Mdtrtinfo[0]["ipt_otp_no"] != "ZY9" || vis.Mdtrtinfo[0]["endtime"] != "" {
		t.Fatalf("5201: %v", vis)
	}
	e.call(t, e.his, "2404", map[string]any{"data": map[string]string{"mdtrt_id": md, "psn_no": e.psn}})
	if _, err := e.his.Call(ctx, "2404", map[string]any{"data": map[string]string{"mdtrt_id": md, "psn_no": e.psn}}); err == nil {
		t.Fatal("cancelling a cancelled admission")
	}
	// 2202 cancels an outpatient registration without lines.
	reg := decode[struct {
		Data struct {
			MdtrtID string `json:"mdtrt_id"`
		} `json:"data"`
	}](t, e.call(t, e.his, "2201", map[string]any{"data": map[string]string{"psn_no": e.psn, "insutype": "310", "begntime": now(),
		"mdtrt_cert_type": "02", "mdtrt_cert_no": e.idNo, "ipt_otp_no": "X", "dept_code": "NK", "dept_name": "内科"}}))
	e.call(t, e.his, "2202", map[string]any{"data": map[string]string{"mdtrt_id": reg.Data.MdtrtID, "psn_no": e.psn, "ipt_otp_no": "X"}})
}
