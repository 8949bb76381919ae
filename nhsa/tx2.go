package nhsa

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"yibao/money"
	"yibao/policy"
	"yibao/settlement"
)

func init() {
	register("2403", admissionChange)
	register("2404", admissionCancel)
	register("2405", dischargeCancel)
	register("5201", queryVisit)
	register("5204", queryFees)
	register("3201", reconcileTotals)
	register("9101", fileUpload)
	register("9102", fileDownload)
	register("3202", reconcileDetail)
}

func admissionChange(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		Adminfo struct {
			MdtrtID     string `json:"mdtrt_id"`
			PsnNo       string `json:"psn_no"`
			AdmDeptCodg string `json:"adm_dept_codg"`
			AdmDeptName string `json:"adm_dept_name"`
		} `json:"adminfo"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	a := in.Adminfo
	v, err := s.visitOf(ctx, "adminfo", a.MdtrtID, a.PsnNo)
	if err != nil {
		return nil, "", err
	}
	if a.AdmDeptCodg != "" && a.AdmDeptCodg != v.DeptCode {
		if _, err := s.settle.TransferDept(ctx, v.MdtrtID, a.AdmDeptCodg, a.AdmDeptName); err != nil {
			return nil, "", err
		}
	}
	_, err = s.db.Exec(ctx, `UPDATE nhsa_visit_refs SET info = ? WHERE mdtrt_id = ?`, string(r.Input), v.MdtrtID)
	return nil, "", err
}

type cancelData struct {
	Data struct {
		MdtrtID string `json:"mdtrt_id"`
		PsnNo   string `json:"psn_no"`
	} `json:"data"`
}

func admissionCancel(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in cancelData
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	v, err := s.visitOf(ctx, "data", in.Data.MdtrtID, in.Data.PsnNo)
	if err != nil {
		return nil, "", err
	}
	if v.Type != policy.Inpatient {
		return nil, "", failf("data.mdtrt_id %s 不是住院就诊", v.MdtrtID)
	}
	_, err = s.settle.CancelVisit(ctx, v.MdtrtID)
	return nil, "", err
}

func dischargeCancel(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in cancelData
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	if _, err := s.visitOf(ctx, "data", in.Data.MdtrtID, in.Data.PsnNo); err != nil {
		return nil, "", err
	}
	_, err := s.settle.CancelDischarge(ctx, in.Data.MdtrtID)
	return nil, "", err
}

func queryVisit(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in cancelData
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	v, err := s.visitOf(ctx, "data", in.Data.MdtrtID, in.Data.PsnNo)
	if err != nil {
		return nil, "", err
	}
	var ipt string
	s.db.QueryRow(ctx, `SELECT ipt_otp_no FROM nhsa_visit_refs WHERE mdtrt_id = ?`, v.MdtrtID).Scan(&ipt)
	return map[string]any{"mdtrtinfo": []map[string]any{{"mdtrt_id": v.MdtrtID, "psn_no": v.PsnNo, "insutype": v.Insutype, "med_type": v.MedType,
		"begntime": v.BeginDate + " 00:00:00", "endtime": dateTime(v.EndDate), "ipt_otp_no": ipt, "fixmedins_code": v.FixmedinsCode,
		"dept_code": v.DeptCode, "dept_name": v.DeptName, "mdtrt_cert_type": v.MdtrtCertType, "vali_flag": map[bool]string{true: "0", false: "1"}[v.Status == settlement.VisitCancelled]}}}, "", nil
}

func dateTime(d string) string {
	if d == "" {
		return ""
	}
	return d + " 00:00:00"
}

func queryFees(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in cancelData
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	v, err := s.visitOf(ctx, "data", in.Data.MdtrtID, in.Data.PsnNo)
	if err != nil {
		return nil, "", err
	}
	out := []map[string]any{}
	for _, l := range v.Lines {
		out = append(out, map[string]any{"feedetl_sn": l.FeedetlSn, "mdtrt_id": v.MdtrtID, "setl_id": l.SetlID, "med_list_codg": l.CatalogCode,
			"medins_list_name": l.Name, "det_item_fee_sumamt": num(l.Amount), "cnt": l.Quantity.String(), "pric": num(l.UnitPrice),
			"fee_ocur_time": dateTime(l.FeeDate), "chrgitm_lv": chrgitmLv[l.Class], "vali_flag": map[bool]string{true: "1", false: "0"}[l.Status == "active"]})
	}
	return map[string]any{"feedetail": out}, "", nil
}

// --- reconciliation (对账) ---

type totals struct {
	medfee, fund, acct, cash money.Fen
	count                    int
}

// institutionTotals sums the institution's completed settlements of a
// scheme and clearing type (11 outpatient, 21 inpatient) settled between
// two dates (China time, inclusive).
func (s *Service) institutionTotals(ctx context.Context, inst, insutype, clrType, from, to string) (*totals, error) {
	f, err1 := time.ParseInLocation(time.DateOnly, from, cst)
	t, err2 := time.ParseInLocation(time.DateOnly, to, cst)
	if err1 != nil || err2 != nil || t.Before(f) {
		return nil, failf("data.stmt_begndate/stmt_enddate 须为 yyyy-MM-dd 且起始不晚于终止")
	}
	q := `SELECT COALESCE(SUM(medfee_sumamt), 0), COALESCE(SUM(fund_pay_sumamt), 0), COALESCE(SUM(acct_pay), 0), COALESCE(SUM(psn_cash_pay), 0), COUNT(*)
		FROM settlements WHERE fixmedins_code = ? AND status = 'completed' AND created_at >= ? AND created_at < ?`
	args := []any{inst, f.UnixMicro(), t.AddDate(0, 0, 1).UnixMicro()}
	if insutype != "" {
		q += ` AND insutype = ?`
		args = append(args, insutype)
	}
	switch clrType {
	case "11":
		q += ` AND kind IN ('outpatient', 'pharmacy')`
	case "21":
		q += ` AND kind IN ('mid_stay', 'discharge')`
	case "":
	default:
		return nil, failf("data.clr_type %s: 平台支持 11 门诊 / 21 住院", clrType)
	}
	var x totals
	err := s.db.QueryRow(ctx, q, args...).Scan(&x.medfee, &x.fund, &x.acct, &x.cash, &x.count)
	return &x, err
}

func reconcileTotals(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		Data struct {
			Insutype   string `json:"insutype"`
			ClrType    string `json:"clr_type"`
			SetlOptins string `json:"setl_optins"`
			Begn       string `json:"stmt_begndate"`
			End        string `json:"stmt_enddate"`
			Medfee     amount `json:"medfee_sumamt"`
			Fund       amount `json:"fund_pay_sumamt"`
			Acct       amount `json:"acct_pay"`
			Count      int    `json:"fixmedins_setl_cnt"`
		} `json:"data"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	d := in.Data
	if err := need("data", "insutype", d.Insutype); err != nil {
		return nil, "", err
	}
	x, err := s.institutionTotals(ctx, r.FixmedinsCode, d.Insutype, d.ClrType, d.Begn, d.End)
	if err != nil {
		return nil, "", err
	}
	var diffs []string
	for _, c := range []struct {
		name      string
		his, ours money.Fen
	}{{"medfee_sumamt", money.Fen(d.Medfee), x.medfee}, {"fund_pay_sumamt", money.Fen(d.Fund), x.fund}, {"acct_pay", money.Fen(d.Acct), x.acct}} {
		if c.his != c.ours {
			diffs = append(diffs, fmt.Sprintf("%s 机构 %s / 平台 %s", c.name, c.his, c.ours))
		}
	}
	if d.Count != x.count {
		diffs = append(diffs, fmt.Sprintf("fixmedins_setl_cnt 机构 %d / 平台 %d", d.Count, x.count))
	}
	rslt, dscr := "0", "对账平"
	if len(diffs) > 0 {
		rslt, dscr = "1", "对账不平: "+strings.Join(diffs, "; ")
	}
	return map[string]any{"stmtinfo": map[string]string{"setl_optins": d.SetlOptins, "stmt_rslt": rslt, "stmt_rslt_dscr": dscr}}, "", nil
}

// fileBytes accepts the 9101 `in` field as a JSON array of bytes (what the
// NHSA demo sends) or a base64 string.
func fileBytes(raw json.RawMessage) ([]byte, error) {
	var arr []int
	if json.Unmarshal(raw, &arr) == nil {
		b := make([]byte, len(arr))
		for i, v := range arr {
			if v < -128 || v > 255 {
				return nil, failf("fsUploadIn.in: byte %d out of range", i)
			}
			b[i] = byte(v)
		}
		return b, nil
	}
	var s64 string
	if json.Unmarshal(raw, &s64) == nil {
		if b, err := base64.StdEncoding.DecodeString(s64); err == nil {
			return b, nil
		}
	}
	return nil, failf("fsUploadIn.in 须为字节数组或 base64")
}

const maxFile = 8 << 20

func (s *Service) storeFile(ctx context.Context, inst, name string, content []byte) (string, time.Time, error) {
	no := fmt.Sprintf("F%s%s", inst, s.now().In(cst).Format("20060102150405.000000"))
	no = strings.ReplaceAll(no, ".", "")
	exp := s.now().Add(24 * time.Hour)
	_, err := s.db.Exec(ctx, `INSERT INTO nhsa_files (file_qury_no, fixmedins_code, filename, content, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		no, inst, name, content, s.now().UnixMicro(), exp.UnixMicro())
	return no, exp, err
}

func fileUpload(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		Up struct {
			In            json.RawMessage `json:"in"`
			Filename      string          `json:"filename"`
			FixmedinsCode string          `json:"fixmedins_code"`
		} `json:"fsUploadIn"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	if err := need("fsUploadIn", "filename", in.Up.Filename); err != nil {
		return nil, "", err
	}
	if in.Up.FixmedinsCode != "" && in.Up.FixmedinsCode != r.FixmedinsCode {
		return nil, "", failf("fsUploadIn.fixmedins_code 与调用方不一致")
	}
	b, err := fileBytes(in.Up.In)
	if err != nil {
		return nil, "", err
	}
	if len(b) == 0 || len(b) > maxFile {
		return nil, "", failf("fsUploadIn.in: 1 byte to %d bytes", maxFile)
	}
	no, exp, err := s.storeFile(ctx, r.FixmedinsCode, in.Up.Filename, b)
	if err != nil {
		return nil, "", err
	}
	return map[string]any{"file_qury_no": no, "filename": in.Up.Filename, "fixmedins_code": r.FixmedinsCode,
		"dld_endtime": exp.In(cst).Format(infTime)}, no, nil
}

// File is a 9102 answer: the raw bytes, sent as application/octet-stream.
type File struct {
	Name    string
	Content []byte
}

func fileDownload(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		Down struct {
			No       string `json:"file_qury_no"`
			Filename string `json:"filename"`
		} `json:"fsDownloadIn"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	var inst, name string
	var content []byte
	var exp int64
	err := s.db.QueryRow(ctx, `SELECT fixmedins_code, filename, content, expires_at FROM nhsa_files WHERE file_qury_no = ?`, in.Down.No).Scan(&inst, &name, &content, &exp)
	if err != nil || inst != r.FixmedinsCode {
		return nil, "", failf("文件 %s 不存在", in.Down.No)
	}
	if s.now().UnixMicro() > exp {
		return nil, "", failf("文件 %s 已过下载期限", in.Down.No)
	}
	return &File{Name: name, Content: content}, "", nil
}

// reconcileDetail (3202) compares an uploaded detail file — one settlement
// a line, tab- or comma-separated: setl_id, mdtrt_id, psn_no,
// medfee_sumamt, fund_pay_sumamt, acct_pay, refd_setl_flag; plain text or a
// zip holding one — with the platform's settlements, and leaves the result
// as a file to download with 9102.
func reconcileDetail(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		Data struct {
			FileNo string `json:"file_qury_no"`
			Begn   string `json:"stmt_begndate"`
			End    string `json:"stmt_enddate"`
		} `json:"data"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	var inst string
	var content []byte
	err := s.db.QueryRow(ctx, `SELECT fixmedins_code, content FROM nhsa_files WHERE file_qury_no = ?`, in.Data.FileNo).Scan(&inst, &content)
	if err != nil || inst != r.FixmedinsCode {
		return nil, "", failf("data.file_qury_no %s 不存在 (upload the detail with 9101 first)", in.Data.FileNo)
	}
	if zr, err := zip.NewReader(bytes.NewReader(content), int64(len(content))); err == nil && len(zr.File) > 0 {
		f, err := zr.File[0].Open()
		if err != nil {
			return nil, "", failf("明细文件 zip 无法读取")
		}
		content, err = io.ReadAll(io.LimitReader(f, maxFile))
		f.Close()
		if err != nil {
			return nil, "", err
		}
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(content))
	line, mismatched := 0, 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		sep := "\t"
		if !strings.Contains(text, "\t") {
			sep = ","
		}
		f := strings.Split(text, sep)
		if len(f) < 6 {
			return nil, "", failf("明细文件第 %d 行: 至少 6 列 (setl_id, mdtrt_id, psn_no, medfee_sumamt, fund_pay_sumamt, acct_pay)", line)
		}
		rslt, memo := "0", "平"
		var medfee, fund, acct money.Fen
		var psn, mdtrt, status string
		err := s.db.QueryRow(ctx, `SELECT psn_no, mdtrt_id, status, medfee_sumamt, fund_pay_sumamt, acct_pay FROM settlements WHERE setl_id = ? AND fixmedins_code = ?`,
			f[0], r.FixmedinsCode).Scan(&psn, &mdtrt, &status, &medfee, &fund, &acct)
		switch {
		case err != nil:
			rslt, memo = "1", "平台无此结算"
		case status != "completed" && !(len(f) > 6 && f[6] == "1" && status == "reversed"):
			rslt, memo = "1", "平台结算状态为 "+status
		default:
			for i, want := range []money.Fen{medfee, fund, acct} {
				got, perr := money.ParseYuan(strings.TrimSpace(f[3+i]))
				if perr != nil || got != want {
					rslt, memo = "1", fmt.Sprintf("%s 机构 %s / 平台 %s", []string{"medfee_sumamt", "fund_pay_sumamt", "acct_pay"}[i], f[3+i], want)
					break
				}
			}
		}
		if rslt != "0" {
			mismatched++
		}
		fmt.Fprintf(&out, "%s\t%s\t%s\t%s\t%s\t%s\n", psn, mdtrt, f[0], r.Msgid, rslt, memo)
	}
	name := fmt.Sprintf("3202_result_%s_%s.txt", in.Data.Begn, in.Data.End)
	no, exp, err := s.storeFile(ctx, r.FixmedinsCode, name, out.Bytes())
	if err != nil {
		return nil, "", err
	}
	return map[string]any{"fileinfo": map[string]any{"file_qury_no": no, "filename": name, "dld_endtime": exp.In(cst).Format(infTime),
		"lines": line, "mismatched": mismatched}}, no, nil
}
