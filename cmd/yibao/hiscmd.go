package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"yibao"
	"yibao/auth"
	"yibao/demo"
	"yibao/nhsa/client"
)

// runHIS is a hospital integrator's smoke test: it drives the national
// interface (infno messages) of a running platform through the Go client
// package, as a HIS would, and prints each transaction.
func runHIS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "demo" {
		return errors.New("usage: yibao his demo [--url URL] [--key KEY_ID] [--tif] (drives every supported transaction against yibao demo)")
	}
	fs := flag.NewFlagSet("yibao his demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "platform URL")
	keyID := fs.String("key", "ak_demo_h37010000001", "the demo institution key to sign with")
	tif := fs.Bool("tif", false, "authenticate with the TIF gateway headers instead of the platform's signature")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	d := demo.Build()
	var key *demo.DemoAPIKey
	for i := range d.APIKeys {
		if d.APIKeys[i].KeyID == *keyID {
			key = &d.APIKeys[i]
		}
	}
	if key == nil {
		return fmt.Errorf("no demo key %q", *keyID)
	}
	c := &client.Client{BaseURL: strings.TrimRight(*url, "/"), FixmedinsCode: key.FixmedinsCode, FixmedinsName: "演示医院", Admvs: "370100",
		Opter: "0001", OpterName: "演示收费员"}
	if *tif {
		c.TIFPaasid, c.TIFSecretHex = key.KeyID, fmt.Sprintf("%x", key.Secret)
	} else {
		c.Signer = &auth.Signer{KeyID: key.KeyID, Secret: key.Secret}
	}
	// A person insured in the hospital's region, and a current class A drug.
	today := yibao.DateOf(time.Now())
	var psn, idNo, drug string
	for _, cov := range d.Coverages {
		if cov.Insutype == "310" && cov.Admdvs == "370100" && cov.EndDate == "" && psn == "" {
			psn = cov.PsnNo
		}
	}
	for _, p := range d.Persons {
		if p.PsnNo == psn {
			idNo = p.IDNumber
		}
	}
	for _, it := range d.Catalog {
		if it.Kind == "drug" && it.Class == "A" && it.ValidFrom <= today && (it.ValidTo == "" || it.ValidTo >= today) && drug == "" {
			drug = it.Code
		}
	}
	now := func() string { return time.Now().In(yibao.ChinaTime).Format("2006-01-02 15:04:05") }
	step := func(infno, what string, input any) (map[string]any, error) {
		out, err := c.Call(ctx, infno, input)
		if err != nil {
			fmt.Fprintf(stdout, "  %-5s %-22s FAILED: %v\n", infno, what, err)
			return nil, err
		}
		var m map[string]any
		json.Unmarshal(out, &m)
		fmt.Fprintf(stdout, "  %-5s %-22s ok  %s\n", infno, what, summarize(m))
		return m, nil
	}
	fmt.Fprintf(stdout, "national interface smoke test against %s as %s (%s)\n", c.BaseURL, c.FixmedinsCode, map[bool]string{true: "TIF headers", false: "signed requests"}[*tif])
	if err := c.SignIn(ctx, "127.0.0.1"); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  9001  sign in                ok  sign_no=%s\n", c.SignNo)
	if _, err := step("1101", "person info (ID card)", map[string]any{"data": map[string]string{"mdtrt_cert_type": "02", "mdtrt_cert_no": idNo}}); err != nil {
		return err
	}
	reg := func(ipt string) (string, error) {
		m, err := step("2201", "registration", map[string]any{"data": map[string]string{"psn_no": psn, "insutype": "310", "begntime": now(),
			"mdtrt_cert_type": "02", "mdtrt_cert_no": idNo, "ipt_otp_no": ipt, "atddr_no": "D01", "dr_name": "王医生",
			"dept_code": "NK", "dept_name": "内科", "caty": "A03"}})
		if err != nil {
			return "", err
		}
		return m["data"].(map[string]any)["mdtrt_id"].(string), nil
	}
	line := func(md, sn, infno string, price float64) map[string]any {
		l := map[string]any{"feedetl_sn": sn, "mdtrt_id": md, "psn_no": psn, "chrg_bchno": sn, "fee_ocur_time": now(), "med_list_codg": drug,
			"medins_list_codg": "H-1", "det_item_fee_sumamt": price * 2, "cnt": 2, "pric": price, "bilg_dept_codg": "NK", "bilg_dept_name": "内科",
			"bilg_dr_codg": "D01", "bilg_dr_name": "王医生", "hosp_appr_flag": "1", "rx_circ_flag": "0"}
		if infno == "2301" {
			l["med_type"] = "21"
		}
		return l
	}
	settleData := func(md, medType string, total float64, mid string) map[string]any {
		d := map[string]any{"psn_no": psn, "mdtrt_cert_type": "02", "mdtrt_cert_no": idNo, "med_type": medType, "medfee_sumamt": total,
			"psn_setlway": "01", "mdtrt_id": md, "chrg_bchno": "1", "insutype": "310", "acct_used_flag": "1"}
		if mid != "" {
			d["mid_setl_flag"] = mid
		}
		return map[string]any{"data": d}
	}
	setlID := func(m map[string]any) string { return m["setlinfo"].(map[string]any)["setl_id"].(string) }
	tag := fmt.Sprint(time.Now().Unix())

	fmt.Fprintln(stdout, "outpatient:")
	md, err := reg("MZ" + tag)
	if err != nil {
		return err
	}
	for _, s := range []struct {
		infno, what string
		input       any
	}{
		{"2203", "visit info", map[string]any{"mdtrtinfo": map[string]string{"mdtrt_id": md, "psn_no": psn, "med_type": "11", "begntime": now()}, "diseinfo": []any{}}},
		{"2204", "fee detail upload", map[string]any{"feedetail": []map[string]any{line(md, "1", "2204", 234), line(md, "2", "2204", 10)}}},
		{"2205", "fee detail cancel", map[string]any{"data": map[string]string{"mdtrt_id": md, "chrg_bchno": "2", "psn_no": psn}}},
		{"5204", "fee detail query", map[string]any{"data": map[string]string{"mdtrt_id": md, "psn_no": psn}}},
		{"2206", "pre-settlement", settleData(md, "11", 468, "")},
	} {
		if _, err := step(s.infno, s.what, s.input); err != nil {
			return err
		}
	}
	first, err := step("2207", "settlement", settleData(md, "11", 468, ""))
	if err != nil {
		return err
	}
	queries := []struct {
		infno, what string
		input       any
	}{
		{"5203", "settlement query", map[string]any{"data": map[string]string{"psn_no": psn, "setl_id": setlID(first)}}},
		{"5201", "visit query", map[string]any{"data": map[string]string{"psn_no": psn, "mdtrt_id": md}}},
		{"5206", "accumulators query", map[string]any{"data": map[string]string{"psn_no": psn}}},
		{"2208", "settlement cancel", map[string]any{"data": map[string]string{"setl_id": setlID(first), "mdtrt_id": md, "psn_no": psn}}},
	}
	for _, s := range queries {
		if _, err := step(s.infno, s.what, s.input); err != nil {
			return err
		}
	}
	again, err := step("2207", "settlement (again)", settleData(md, "11", 468, ""))
	if err != nil {
		return err
	}
	settleMsg := c.LastMsg
	if _, err := step("2601", "reversal of that 2207", map[string]any{"data": map[string]string{"psn_no": psn, "omsgid": settleMsg, "oinfno": "2207"}}); err != nil {
		return err
	}
	final, err := step("2207", "settlement (final)", settleData(md, "11", 468, ""))
	if err != nil {
		return err
	}
	_ = again
	md2, err := reg("MZX" + tag)
	if err != nil {
		return err
	}
	if _, err := step("2202", "registration cancel", map[string]any{"data": map[string]string{"psn_no": psn, "mdtrt_id": md2, "ipt_otp_no": "MZX" + tag}}); err != nil {
		return err
	}

	fmt.Fprintln(stdout, "inpatient:")
	admit := func(ipt string) (string, error) {
		m, err := step("2401", "admission", map[string]any{"mdtrtinfo": map[string]string{"psn_no": psn, "insutype": "310", "begntime": now(),
			"mdtrt_cert_type": "02", "mdtrt_cert_no": idNo, "med_type": "21", "ipt_no": ipt, "atddr_no": "D02", "chfpdr_name": "李医生",
			"adm_diag_dscr": "肺炎", "adm_dept_codg": "HXK", "adm_dept_name": "呼吸科", "adm_bed": "12", "dscg_maindiag_code": "J18.900",
			"dscg_maindiag_name": "肺炎"}, "diseinfo": []any{}})
		if err != nil {
			return "", err
		}
		return m["result"].(map[string]any)["mdtrt_id"].(string), nil
	}
	imd, err := admit("ZY" + tag)
	if err != nil {
		return err
	}
	dscg := map[string]any{"dscginfo": map[string]string{"mdtrt_id": imd, "psn_no": psn, "insutype": "310", "endtime": now(),
		"dscg_dept_codg": "HXK", "dscg_dept_name": "呼吸科", "dscg_way": "1"}, "diseinfo": []any{}}
	inSteps := []struct {
		infno, what string
		input       any
	}{
		{"2403", "admission change", map[string]any{"adminfo": map[string]string{"mdtrt_id": imd, "psn_no": psn, "adm_dept_codg": "XNK", "adm_dept_name": "心内科"}}},
		{"2301", "fee detail upload", map[string]any{"feedetail": []map[string]any{line(imd, "1", "2301", 3200), line(imd, "2", "2301", 50)}}},
		{"2302", "fee detail cancel", map[string]any{"data": map[string]string{"feedetl_sn": "2", "mdtrt_id": imd, "psn_no": psn}}},
		{"2303", "mid-stay pre-settlement", settleData(imd, "21", 6400, "1")},
		{"2402", "discharge", dscg},
		{"2405", "discharge cancel", map[string]any{"data": map[string]string{"mdtrt_id": imd, "psn_no": psn}}},
		{"2402", "discharge (again)", dscg},
		{"2303", "pre-settlement", settleData(imd, "21", 6400, "0")},
	}
	for _, s := range inSteps {
		if _, err := step(s.infno, s.what, s.input); err != nil {
			return err
		}
	}
	ist, err := step("2304", "settlement", settleData(imd, "21", 6400, "0"))
	if err != nil {
		return err
	}
	if _, err := step("2305", "settlement cancel", map[string]any{"data": map[string]string{"mdtrt_id": imd, "setl_id": setlID(ist), "psn_no": psn}}); err != nil {
		return err
	}
	imd2, err := admit("ZYX" + tag)
	if err != nil {
		return err
	}
	if _, err := step("2404", "admission cancel", map[string]any{"data": map[string]string{"mdtrt_id": imd2, "psn_no": psn}}); err != nil {
		return err
	}

	fmt.Fprintln(stdout, "reconciliation:")
	fi := final["setlinfo"].(map[string]any)
	if _, err := step("3201", "totals reconciliation", map[string]any{"data": map[string]any{"insutype": "310", "clr_type": "11", "setl_optins": "370100",
		"stmt_begndate": today, "stmt_enddate": today, "medfee_sumamt": fi["medfee_sumamt"], "fund_pay_sumamt": fi["fund_pay_sumamt"],
		"acct_pay": fi["acct_pay"], "fixmedins_setl_cnt": 1}}); err != nil {
		return err
	}
	detail := fmt.Sprintf("%s\t%s\t%s\t%v\t%v\t%v\t0\n", fi["setl_id"], md, psn, fi["medfee_sumamt"], fi["fund_pay_sumamt"], fi["acct_pay"])
	up, err := step("9101", "file upload", map[string]any{"fsUploadIn": map[string]any{"in": base64.StdEncoding.EncodeToString([]byte(detail)),
		"filename": "detail.txt", "fixmedins_code": c.FixmedinsCode}})
	if err != nil {
		return err
	}
	res, err := step("3202", "detail reconciliation", map[string]any{"data": map[string]any{"setl_optins": "370100", "file_qury_no": up["file_qury_no"],
		"stmt_begndate": today, "stmt_enddate": today, "medfee_sumamt": fi["medfee_sumamt"], "fund_pay_sumamt": fi["fund_pay_sumamt"],
		"cash_payamt": fi["psn_cash_pay"], "fixmedins_setl_cnt": 1}})
	if err != nil {
		return err
	}
	info := res["fileinfo"].(map[string]any)
	file, err := c.Download(ctx, info["file_qury_no"].(string), info["filename"].(string))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  %-5s %-22s ok  %q\n", "9102", "file download", strings.TrimSpace(string(file)))
	if _, err := c.Call(ctx, "9002", map[string]any{"signOut": map[string]string{"sign_no": c.SignNo, "opter_no": c.Opter}}); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "  9002  sign out               ok\nevery transaction succeeded")
	return nil
}

func summarize(m map[string]any) string {
	if si, ok := m["setlinfo"].(map[string]any); ok {
		return fmt.Sprintf("medfee=%v fund=%v acct=%v cash=%v", si["medfee_sumamt"], si["fund_pay_sumamt"], si["acct_pay"], si["psn_cash_pay"])
	}
	if r, ok := m["result"].([]any); ok {
		return fmt.Sprintf("%d line(s) classified", len(r))
	}
	b, _ := json.Marshal(m)
	if len(b) > 90 {
		b = append(b[:90], "…"...)
	}
	return string(b)
}
