package nhsa

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"yibao"
	"yibao/money"
	"yibao/policy"
	"yibao/settlement"
)

func init() {
	register("9001", signIn)
	register("9002", signOut)
	register("1101", personInfo)
	register("2201", outpatientRegister)
	register("2202", outpatientRegisterCancel)
	register("2203", visitInfo)
	register("2203A", visitInfo)
	register("2204", feeUpload)
	register("2205", feeCancel)
	register("2206", preSettle)
	register("2207", settle)
	register("2208", settleCancel)
	register("2401", admit)
	register("2402", discharge)
	register("2301", feeUpload)
	register("2302", feeCancel)
	register("2303", preSettle)
	register("2304", settle)
	register("2305", settleCancel)
	register("2601", reverse)
	register("5203", querySettlement)
	register("5206", queryAccumulators)
}

func sys(ctx context.Context) context.Context {
	return yibao.WithPrincipal(ctx, yibao.System("nhsa"))
}

// --- 9001 / 9002 ---

func signIn(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		SignIn struct {
			OpterNo string `json:"opter_no"`
			Mac     string `json:"mac"`
			IP      string `json:"ip"`
		} `json:"signIn"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	if err := need("signIn", "opter_no", in.SignIn.OpterNo); err != nil {
		return nil, "", err
	}
	if err := need("signIn", "ip", in.SignIn.IP); err != nil {
		return nil, "", err
	}
	now := s.now()
	no := fmt.Sprintf("%s%s%04d", r.FixmedinsCode, now.In(cst).Format("060102150405"), now.Nanosecond()%10000)
	if _, err := s.db.Exec(ctx, `INSERT INTO nhsa_signins (sign_no, fixmedins_code, opter_no, sign_in_at) VALUES (?, ?, ?, ?)`,
		no, r.FixmedinsCode, in.SignIn.OpterNo, now.UnixMicro()); err != nil {
		return nil, "", err
	}
	return map[string]any{"signinoutb": map[string]string{"sign_time": now.In(cst).Format(infTime), "sign_no": no}}, no, nil
}

func signOut(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		SignOut struct {
			SignNo  string `json:"sign_no"`
			OpterNo string `json:"opter_no"`
		} `json:"signOut"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	res, err := s.db.Exec(ctx, `UPDATE nhsa_signins SET sign_out_at = ? WHERE sign_no = ? AND fixmedins_code = ? AND sign_out_at = 0`,
		s.now().UnixMicro(), in.SignOut.SignNo, r.FixmedinsCode)
	if err != nil {
		return nil, "", err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, "", failf("签到流水号 %s 不存在或已签退", in.SignOut.SignNo)
	}
	return map[string]any{"signoutoutb": map[string]string{"sign_time": s.now().In(cst).Format(infTime)}}, "", nil
}

// --- 1101 ---

var psnTypes = map[yibao.PersonCategory]string{
	yibao.CategoryActive: "1101", yibao.CategoryRetired: "1201", yibao.CategoryStudent: "1403", yibao.CategoryResident: "1501",
	yibao.CategoryLowIncome: "1501", yibao.CategoryExtremePoverty: "1501", yibao.CategoryDisabled: "1501", yibao.CategorySpecialCare: "1501",
}

// certPerson resolves a credential (mdtrt_cert_type/no) to a psn_no, and
// gives the number a visit records for it: the certificate id of an
// ecToken, the masked number of a card.
func (s *Service) certPerson(ctx context.Context, node, certType, certNo string) (psn, record string, err error) {
	if err := need(node, "mdtrt_cert_no", certNo); err != nil {
		return "", "", err
	}
	switch certType {
	case "01":
		return s.ecert.TokenPerson(ctx, certNo)
	case "02", "03":
		// 03 (社会保障卡) carries the ID number as the card's certno here:
		// yibao issues no cards of its own.
		psn, err := s.reg.PersonByIDNumber(sys(ctx), certNo)
		if yibao.IsCode(err, yibao.CodeNotFound) {
			return "", "", failf("%s.mdtrt_cert_no: 无此参保人 (no insured person with that number)", node)
		}
		return psn, yibao.MaskID(certNo), err
	}
	return "", "", failf("%s.mdtrt_cert_type %q 不在字典中 (01 医保电子凭证, 02 居民身份证, 03 社会保障卡)", node, certType)
}

func (s *Service) person(ctx context.Context, psn string) (*yibao.Person, error) {
	return s.reg.Person(sys(ctx), psn, true)
}

func personInfo(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		Data struct {
			CertType string `json:"mdtrt_cert_type"`
			CertNo   string `json:"mdtrt_cert_no"`
			CardSn   string `json:"card_sn"`
		} `json:"data"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	if in.Data.CertType == "03" && in.Data.CardSn == "" {
		return nil, "", failf("data.card_sn 不能为空 (required with mdtrt_cert_type 03)")
	}
	psn, _, err := s.certPerson(ctx, "data", in.Data.CertType, in.Data.CertNo)
	if err != nil && in.Data.CertType != "01" {
		// Not known here: a patient of the insured region the envelope
		// names, if that is another node's (their first visit here).
		if guest := s.settle.GuestRegion(r.insuredElsewhere(), ""); guest != "" && r.InsuplcAdmdvs != "" {
			psn, err = s.importGuest(ctx, r, guest, in.Data.CertNo)
		}
	}
	if err != nil {
		return nil, "", err
	}
	p, err := s.person(ctx, psn)
	if err != nil {
		return nil, "", err
	}
	now := s.now()
	covs, err := s.reg.Coverages(sys(ctx), psn)
	if err != nil {
		return nil, "", err
	}
	var balc money.Fen
	if guest := s.settle.GuestRegion("", psn); guest != "" {
		// The personal account is kept by the insured node.
		snap, err := s.settle.Remote.Snapshot(ctx, settlement.SnapshotRequest{InsuAdmdvs: p.Admdvs, PsnNo: psn, Insutype: "310", Year: now.In(cst).Year(),
			Month: now.In(cst).Format("2006-01")})
		if err != nil {
			return nil, "", err
		}
		balc = snap.Account
	} else if acc, err := s.settle.Accumulators(sys(ctx), psn); err == nil && len(acc) > 0 {
		balc = acc[0].Account
	}
	insu := []map[string]any{}
	today := now.In(cst).Format(time.DateOnly)
	for _, c := range covs {
		stas := "1"
		if c.Status != yibao.CoverageActive || c.StartDate > today || (c.EndDate != "" && c.EndDate < today) {
			stas = "4" // 终止参保
		}
		b := money.Fen(0)
		if c.Insutype == "310" {
			b = balc
		}
		insu = append(insu, map[string]any{"balc": num(b), "insutype": c.Insutype, "psn_type": psnTypes[p.Category], "psn_insu_stas": stas,
			"psn_insu_date": c.StartDate, "paus_insu_date": c.EndDate, "cvlserv_flag": "0", "insuplc_admdvs": c.Admdvs, "emp_name": ""})
	}
	return map[string]any{
		"baseinfo": map[string]any{"psn_no": p.PsnNo, "psn_cert_type": "01", "certno": p.IDNumber, "psn_name": p.Name,
			"gend": string(p.Gender), "naty": "01", "brdy": p.BirthDate, "age": yibao.AgeOn(p.BirthDate, now.In(cst).Format(time.DateOnly))},
		"insuinfo": insu,
		"idetinfo": []any{},
	}, "", nil
}

// --- visits ---

// visitOf loads a visit named in input and checks the psn_no matches.
func (s *Service) visitOf(ctx context.Context, node, mdtrtID, psn string) (*settlement.Visit, error) {
	if err := need(node, "mdtrt_id", mdtrtID); err != nil {
		return nil, err
	}
	v, err := s.settle.GetVisit(ctx, mdtrtID)
	if err != nil {
		return nil, err
	}
	if psn != "" && v.PsnNo != psn {
		return nil, failf("%s.psn_no %s 与就诊 %s 的人员不一致", node, psn, mdtrtID)
	}
	return v, nil
}

func (s *Service) openVisit(ctx context.Context, r *Request, node, psn, certType, certNo, insutype, begntime, typ, dept, deptName, iptNo string) (*settlement.Visit, error) {
	for _, f := range [][2]string{{"psn_no", psn}, {"insutype", insutype}, {"mdtrt_cert_type", certType}, {"ipt_otp_no", iptNo}} {
		if err := need(node, f[0], f[1]); err != nil {
			return nil, err
		}
	}
	date, err := dateOf(node, "begntime", begntime)
	if err != nil {
		return nil, err
	}
	insuplc := r.insuredElsewhere()
	var who, certNoRec string
	if guest := s.settle.GuestRegion(insuplc, psn); guest != "" && (certType == "02" || certType == "03") {
		who, certNoRec, err = s.guestCert(ctx, r, node, guest, psn, certNo, date)
	} else {
		who, certNoRec, err = s.certPerson(ctx, node, certType, certNo)
	}
	if err != nil {
		return nil, err
	}
	if who != psn {
		return nil, failf("%s.mdtrt_cert_no 对应的人员与 psn_no %s 不一致", node, psn)
	}
	v, err := s.settle.OpenVisit(ctx, settlement.VisitRequest{PsnNo: psn, FixmedinsCode: r.FixmedinsCode, Type: typ, Insutype: insutype,
		DeptCode: dept, DeptName: deptName, BeginDate: date, InsuplcAdmdvs: insuplc, MdtrtCertType: certType, MdtrtCertNo: certNoRec})
	if err != nil {
		return nil, err
	}
	if certType == "01" {
		s.ecert.BindToken(ctx, certNo, v.MdtrtID)
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO nhsa_visit_refs (mdtrt_id, ipt_otp_no) VALUES (?, ?)`, v.MdtrtID, iptNo); err != nil {
		return nil, err
	}
	return v, nil
}

// insuredElsewhere is the envelope's insuplc_admdvs when it names a
// region other than the place of treatment (mdtrtarea_admvs): the
// patient's insured region, for the visit to be routed there. HIS
// systems send their own region for local patients, so that one is not
// passed on, and the psn_no keeps deciding.
func (r *Request) insuredElsewhere() string {
	if r.InsuplcAdmdvs == r.MdtrtareaAdmvs {
		return ""
	}
	return r.InsuplcAdmdvs
}

// importGuest finds a patient of another node's region by the ID number
// shown (1101 before their first visit here) and keeps a copy of them.
func (s *Service) importGuest(ctx context.Context, r *Request, insured, idNumber string) (string, error) {
	inst, err := s.reg.Institution(sys(ctx), r.FixmedinsCode)
	if err != nil {
		return "", err
	}
	psn, _, err := s.settle.ImportRemotePerson(ctx, settlement.PersonRequest{IDNumber: idNumber, InsuAdmdvs: insured, TreatingAdmdvs: inst.Admdvs,
		FixmedinsCode: r.FixmedinsCode, Date: s.now().In(cst).Format(time.DateOnly)})
	if yibao.IsCode(err, yibao.CodeNotFound) {
		return "", failf("data.mdtrt_cert_no: 无此参保人 (no insured person with that number in %s)", insured)
	}
	return psn, err
}

// guestCert checks the ID number (02) or card (03) a patient insured by
// another node presents, before their visit is opened: against the copy
// of the person this node keeps once they have been treated here, else
// against the person the insured node answers through the hub. Nothing
// is written here; OpenVisit then keeps the copy.
func (s *Service) guestCert(ctx context.Context, r *Request, node, insured, psn, certNo, date string) (string, string, error) {
	if err := need(node, "mdtrt_cert_no", certNo); err != nil {
		return "", "", err
	}
	who, err := s.reg.PersonByIDNumber(sys(ctx), certNo)
	if err == nil {
		return who, yibao.MaskID(certNo), nil
	}
	if !yibao.IsCode(err, yibao.CodeNotFound) {
		return "", "", err
	}
	inst, err := s.reg.Institution(sys(ctx), r.FixmedinsCode)
	if err != nil {
		return "", "", err
	}
	rp, err := s.settle.Remote.Person(ctx, settlement.PersonRequest{PsnNo: psn, InsuAdmdvs: insured, TreatingAdmdvs: inst.Admdvs,
		FixmedinsCode: r.FixmedinsCode, Date: date})
	if err != nil {
		return "", "", err
	}
	if rp.Person.PsnNo != psn || !strings.EqualFold(rp.Person.IDNumber, certNo) {
		return "", "", failf("%s.mdtrt_cert_no 对应的人员与 psn_no %s 不一致", node, psn)
	}
	return psn, yibao.MaskID(certNo), nil
}

func outpatientRegister(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		Data struct {
			PsnNo    string `json:"psn_no"`
			Insutype string `json:"insutype"`
			Begntime string `json:"begntime"`
			CertType string `json:"mdtrt_cert_type"`
			CertNo   string `json:"mdtrt_cert_no"`
			IptOtpNo string `json:"ipt_otp_no"`
			DeptCode string `json:"dept_code"`
			DeptName string `json:"dept_name"`
		} `json:"data"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	d := in.Data
	v, err := s.openVisit(ctx, r, "data", d.PsnNo, d.CertType, d.CertNo, d.Insutype, d.Begntime, policy.GeneralOutpatient, d.DeptCode, d.DeptName, d.IptOtpNo)
	if err != nil {
		return nil, "", err
	}
	return map[string]any{"data": map[string]string{"mdtrt_id": v.MdtrtID, "psn_no": v.PsnNo, "ipt_otp_no": d.IptOtpNo}}, v.MdtrtID, nil
}

func outpatientRegisterCancel(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		Data struct {
			PsnNo   string `json:"psn_no"`
			MdtrtID string `json:"mdtrt_id"`
		} `json:"data"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	if _, err := s.visitOf(ctx, "data", in.Data.MdtrtID, in.Data.PsnNo); err != nil {
		return nil, "", err
	}
	_, err := s.settle.CancelVisit(ctx, in.Data.MdtrtID)
	return nil, "", err
}

// visitInfo (2203/2203A) records the visit's diagnoses; the platform keeps
// them with the visit for review.
func visitInfo(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		Mdtrtinfo struct {
			MdtrtID string `json:"mdtrt_id"`
			PsnNo   string `json:"psn_no"`
			MedType string `json:"med_type"`
		} `json:"mdtrtinfo"`
		Diseinfo []map[string]any `json:"diseinfo"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	v, err := s.visitOf(ctx, "mdtrtinfo", in.Mdtrtinfo.MdtrtID, in.Mdtrtinfo.PsnNo)
	if err != nil {
		return nil, "", err
	}
	if in.Mdtrtinfo.MedType != "" && in.Mdtrtinfo.MedType != v.MedType {
		return nil, "", failf("mdtrtinfo.med_type %s 与就诊的医疗类别 %s 不一致", in.Mdtrtinfo.MedType, v.MedType)
	}
	_, err = s.db.Exec(ctx, `UPDATE nhsa_visit_refs SET info = ? WHERE mdtrt_id = ?`, string(r.Input), v.MdtrtID)
	return nil, "", err
}

func admit(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		Mdtrtinfo struct {
			PsnNo       string `json:"psn_no"`
			Insutype    string `json:"insutype"`
			Begntime    string `json:"begntime"`
			CertType    string `json:"mdtrt_cert_type"`
			CertNo      string `json:"mdtrt_cert_no"`
			IptNo       string `json:"ipt_no"`
			AdmDeptCodg string `json:"adm_dept_codg"`
			AdmDeptName string `json:"adm_dept_name"`
		} `json:"mdtrtinfo"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	d := in.Mdtrtinfo
	v, err := s.openVisit(ctx, r, "mdtrtinfo", d.PsnNo, d.CertType, d.CertNo, d.Insutype, d.Begntime, policy.Inpatient, d.AdmDeptCodg, d.AdmDeptName, d.IptNo)
	if err != nil {
		return nil, "", err
	}
	s.db.Exec(ctx, `UPDATE nhsa_visit_refs SET info = ? WHERE mdtrt_id = ?`, string(r.Input), v.MdtrtID)
	return map[string]any{"result": map[string]string{"mdtrt_id": v.MdtrtID}}, v.MdtrtID, nil
}

func discharge(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		Dscginfo struct {
			MdtrtID string `json:"mdtrt_id"`
			PsnNo   string `json:"psn_no"`
			Endtime string `json:"endtime"`
		} `json:"dscginfo"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	if _, err := s.visitOf(ctx, "dscginfo", in.Dscginfo.MdtrtID, in.Dscginfo.PsnNo); err != nil {
		return nil, "", err
	}
	date, err := dateOf("dscginfo", "endtime", in.Dscginfo.Endtime)
	if err != nil {
		return nil, "", err
	}
	_, err = s.settle.Discharge(ctx, in.Dscginfo.MdtrtID, date)
	return nil, "", err
}

// --- fee detail ---

type feeDetail struct {
	FeedetlSn   string  `json:"feedetl_sn"`
	MdtrtID     string  `json:"mdtrt_id"`
	PsnNo       string  `json:"psn_no"`
	ChrgBchno   string  `json:"chrg_bchno"`
	FeeOcurTime string  `json:"fee_ocur_time"`
	MedListCodg string  `json:"med_list_codg"`
	Sumamt      amount  `json:"det_item_fee_sumamt"`
	Cnt         decimal `json:"cnt"`
	Pric        decimal `json:"pric"`
}

var chrgitmLv = map[string]string{"A": "01", "B": "02", "C": "03"}

func feeUpload(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		Feedetail []feeDetail `json:"feedetail"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	if len(in.Feedetail) == 0 {
		return nil, "", failf("feedetail 不能为空")
	}
	mdtrt, psn := in.Feedetail[0].MdtrtID, in.Feedetail[0].PsnNo
	var lines []settlement.FeeLineInput
	for i, f := range in.Feedetail {
		node := fmt.Sprintf("feedetail[%d]", i)
		if f.MdtrtID != mdtrt || f.PsnNo != psn {
			return nil, "", failf("%s: 一次上传的明细须属于同一就诊和人员", node)
		}
		for _, x := range [][2]string{{"feedetl_sn", f.FeedetlSn}, {"med_list_codg", f.MedListCodg}, {"cnt", string(f.Cnt)}, {"pric", string(f.Pric)}} {
			if err := need(node, x[0], x[1]); err != nil {
				return nil, "", err
			}
		}
		price, err := money.ParseYuan(string(f.Pric))
		if err != nil {
			return nil, "", failf("%s.pric %s: 平台按分计价，单价至多两位小数 (yibao is stricter: at most two decimals)", node, f.Pric)
		}
		qty, err := money.ParseRatio(string(f.Cnt))
		if err != nil {
			return nil, "", failf("%s.cnt %s 不是数量", node, f.Cnt)
		}
		date, err := dateOf(node, "fee_ocur_time", f.FeeOcurTime)
		if err != nil {
			return nil, "", err
		}
		amt := money.Fen(f.Sumamt)
		lines = append(lines, settlement.FeeLineInput{FeedetlSn: f.FeedetlSn, CatalogCode: f.MedListCodg, UnitPrice: price, Quantity: qty, Amount: &amt, FeeDate: date})
	}
	if _, err := s.visitOf(ctx, "feedetail[0]", mdtrt, psn); err != nil {
		return nil, "", err
	}
	v, err := s.settle.AddFeeLines(ctx, mdtrt, lines)
	if err != nil {
		return nil, "", err
	}
	// Each line's split, from a pre-settlement of the visit's unsettled lines.
	pre, err := s.settle.PreSettle(ctx, mdtrt, settlement.SettleRequest{Kind: midOrNothing(v), KeepBlocked: true})
	if err != nil {
		return nil, "", err
	}
	split := map[string]policy.LineResult{}
	for _, l := range pre.Result.Lines {
		split[l.ID] = l
	}
	byID := map[string]settlement.FeeLine{}
	for _, l := range v.Lines {
		byID[l.FeedetlSn] = l
	}
	out := []map[string]any{}
	for _, f := range in.Feedetail {
		l, sp := byID[f.FeedetlSn], split[f.FeedetlSn]
		upl := money.Fen(0)
		if l.PriceCap != nil {
			upl = *l.PriceCap
		}
		out = append(out, map[string]any{"feedetl_sn": f.FeedetlSn, "det_item_fee_sumamt": num(l.Amount), "cnt": l.Quantity.String(),
			"pric": num(l.UnitPrice), "pric_uplmt_amt": num(upl), "selfpay_prop": sp.SelfpayProp.String(),
			"fulamt_ownpay_amt": num(sp.FulamtOwnpayAmt), "overlmt_amt": num(sp.OverlmtAmt), "preselfpay_amt": num(sp.PreselfpayAmt),
			"inscp_scp_amt": num(sp.InscpScpAmt), "chrgitm_lv": chrgitmLv[l.Class], "med_chrgitm_type": "09", "lmt_used_flag": "0", "memo": ""})
	}
	res := map[string]any{"result": out}
	if hits := reviewNode(pre.Review); hits != nil {
		res["smart_review"] = hits // early warning: a block here refuses the settlement (2207) until corrected
	}
	return res, mdtrt, nil
}

// midOrNothing picks the pre-settlement kind that works for a visit at any
// stage, to split lines.
func midOrNothing(v *settlement.Visit) string {
	if v.Type == policy.Inpatient && v.Status == settlement.VisitOpen {
		return settlement.KindMidStay
	}
	return ""
}

func feeCancel(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		Data struct {
			MdtrtID   string `json:"mdtrt_id"`
			PsnNo     string `json:"psn_no"`
			ChrgBchno string `json:"chrg_bchno"`
			FeedetlSn string `json:"feedetl_sn"`
		} `json:"data"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	v, err := s.visitOf(ctx, "data", in.Data.MdtrtID, in.Data.PsnNo)
	if err != nil {
		return nil, "", err
	}
	which := in.Data.FeedetlSn
	if r.Infno == "2205" {
		which = in.Data.ChrgBchno
	}
	var sns []string
	if which == "0000" {
		for _, l := range v.Lines {
			if l.Status == "active" && l.SetlID == "" {
				sns = append(sns, l.FeedetlSn)
			}
		}
		if len(sns) == 0 {
			return nil, "", nil
		}
	} else if which == "" {
		return nil, "", failf("data.%s 不能为空 (0000 = every unsettled line)", map[bool]string{true: "chrg_bchno", false: "feedetl_sn"}[r.Infno == "2205"])
	} else {
		sns = []string{which}
	}
	_, err = s.settle.CancelFeeLines(ctx, v.MdtrtID, sns)
	return nil, "", err
}

// --- settlement ---

type settleIn struct {
	Data struct {
		PsnNo       string  `json:"psn_no"`
		CertType    string  `json:"mdtrt_cert_type"`
		CertNo      string  `json:"mdtrt_cert_no"`
		MedType     string  `json:"med_type"`
		Medfee      amount  `json:"medfee_sumamt"`
		PsnSetlway  string  `json:"psn_setlway"`
		MdtrtID     string  `json:"mdtrt_id"`
		Insutype    string  `json:"insutype"`
		AcctUsed    string  `json:"acct_used_flag"`
		MidSetlFlag string  `json:"mid_setl_flag"`
		Fulamt      *amount `json:"fulamt_ownpay_amt"`
		Overlmt     *amount `json:"overlmt_selfpay"`
		Preself     *amount `json:"preselfpay_amt"`
		Inscp       *amount `json:"inscp_scp_amt"`
	} `json:"data"`
}

func (s *Service) settleRequest(ctx context.Context, r *Request) (*settleIn, *settlement.Visit, settlement.SettleRequest, error) {
	var in settleIn
	var req settlement.SettleRequest
	if err := decodeInput(r, &in); err != nil {
		return nil, nil, req, err
	}
	d := in.Data
	v, err := s.visitOf(ctx, "data", d.MdtrtID, d.PsnNo)
	if err != nil {
		return nil, nil, req, err
	}
	if d.MedType != "" && d.MedType != v.MedType {
		return nil, nil, req, failf("data.med_type %s 与就诊的医疗类别 %s 不一致", d.MedType, v.MedType)
	}
	if d.Insutype != "" && d.Insutype != v.Insutype {
		return nil, nil, req, failf("data.insutype %s 与就诊的险种 %s 不一致", d.Insutype, v.Insutype)
	}
	switch d.AcctUsed {
	case "1", "":
	case "0":
		f := false
		req.UseAccount = &f
	default:
		return nil, nil, req, failf("data.acct_used_flag %q 须为 0 或 1", d.AcctUsed)
	}
	if d.PsnSetlway != "" && d.PsnSetlway != "01" {
		return nil, nil, req, failf("data.psn_setlway %s: 平台只支持 01 按项目结算", d.PsnSetlway)
	}
	if v.Type == policy.Inpatient {
		req.Kind = settlement.KindDischarge
		if d.MidSetlFlag == "1" {
			req.Kind = settlement.KindMidStay
		}
	}
	if d.Medfee != amount(v.Totals.Unsettled) {
		return nil, nil, req, failf("data.medfee_sumamt %s 与已上传未结算明细合计 %s 不符 (amounts do not add up)", money.Fen(d.Medfee), v.Totals.Unsettled)
	}
	return &in, v, req, nil
}

// setlinfo renders the §5 setlinfo of a result.
func (s *Service) setlinfo(ctx context.Context, r *Request, v *settlement.Visit, res *policy.Result, setlID string, at time.Time, sign money.Fen) (map[string]any, error) {
	p, err := s.person(ctx, v.PsnNo)
	if err != nil {
		return nil, err
	}
	si := res.SetlInfo
	m := func(f money.Fen) json.Number { return num(sign * f) }
	info := map[string]any{
		"mdtrt_id": v.MdtrtID, "psn_no": p.PsnNo, "psn_name": p.Name, "psn_cert_type": "01", "certno": p.IDNumber, "gend": string(p.Gender),
		"naty": "01", "brdy": p.BirthDate, "age": yibao.AgeOn(p.BirthDate, at.In(cst).Format(time.DateOnly)), "insutype": si.Insutype, "psn_type": psnTypes[p.Category],
		"cvlserv_flag": "0", "setl_time": at.In(cst).Format(infTime), "mdtrt_cert_type": v.MdtrtCertType, "med_type": v.MedType,
		"medfee_sumamt": m(si.MedfeeSumamt), "fulamt_ownpay_amt": m(si.FulamtOwnpayAmt), "overlmt_selfpay": m(si.OverlmtSelfpay),
		"preselfpay_amt": m(si.PreselfpayAmt), "inscp_scp_amt": m(si.InscpScpAmt), "act_pay_dedc": m(si.ActPayDedc), "hifp_pay": m(si.HifpPay),
		"pool_prop_selfpay": json.Number(ratio4(si.PoolPropSelfpay)), "cvlserv_pay": m(si.CvlservPay), "hifes_pay": m(si.HifesPay),
		"hifmi_pay": m(si.HifmiPay), "hifob_pay": m(si.HifobPay), "maf_pay": m(si.MafPay), "oth_pay": m(si.OthPay),
		"fund_pay_sumamt": m(si.FundPaySumamt), "psn_part_amt": m(si.PsnPartAmt), "acct_pay": m(si.AcctPay), "psn_cash_pay": m(si.PsnCashPay),
		"hosp_part_amt": m(si.HospPartAmt), "balc": num(si.Balc), "acct_mulaid_pay": m(si.AcctMulaidPay), "medins_setl_id": r.Msgid,
		"clr_optins": v.InsuAdmdvs, "clr_way": "1", "clr_type": map[bool]string{true: "21", false: "11"}[v.Type == policy.Inpatient],
	}
	if setlID != "" {
		info["setl_id"] = setlID
	}
	return info, nil
}

func ratio4(r money.Ratio) string {
	f, _ := strconv.ParseFloat(r.String(), 64)
	return strconv.FormatFloat(f, 'f', 4, 64)
}

func setldetail(res *policy.Result, sign money.Fen) []map[string]any {
	out := []map[string]any{}
	for _, d := range res.SetlDetail {
		out = append(out, map[string]any{"fund_pay_type": d.FundPayType, "fund_pay_type_name": d.FundPayTypeName,
			"inscp_scp_amt": num(sign * d.InscpScpAmt), "crt_payb_lmt_amt": num(d.CrtPaybLmtAmt), "fund_payamt": num(sign * d.FundPayamt), "setl_proc_info": ""})
	}
	return out
}

func preSettle(s *Service, ctx context.Context, r *Request) (any, string, error) {
	_, v, req, err := s.settleRequest(ctx, r)
	if err != nil {
		return nil, "", err
	}
	pre, err := s.settle.PreSettle(ctx, v.MdtrtID, req)
	if err != nil {
		return nil, "", err
	}
	info, err := s.setlinfo(ctx, r, v, pre.Result, "", s.now(), 1)
	if err != nil {
		return nil, "", err
	}
	out := map[string]any{"setlinfo": info, "setldetail": setldetail(pre.Result, 1)}
	if hits := reviewNode(pre.Review); hits != nil {
		out["smart_review"] = hits
	}
	return out, "", nil
}

// reviewNode is smart review's findings, line by line: yibao's extra
// output node (HIS clients that do not know it ignore it); nil if none.
func reviewNode(review []settlement.ReviewHit) []map[string]string {
	if len(review) == 0 {
		return nil
	}
	hits := make([]map[string]string, 0, len(review))
	for _, h := range review {
		hits = append(hits, map[string]string{"feedetl_sn": h.Sn, "rule_id": h.Rule, "rule_type": h.Kind, "action": h.Action,
			"message": h.Message, "evidence": h.Evidence})
	}
	return hits
}

func settle(s *Service, ctx context.Context, r *Request) (any, string, error) {
	in, v, req, err := s.settleRequest(ctx, r)
	if err != nil {
		return nil, "", err
	}
	// The HIS sends the four sums it got from the fee upload; if it sends
	// them, they must agree with what the platform settles.
	req.Check = func(res *policy.Result) error {
		si := res.SetlInfo
		for _, c := range []struct {
			name string
			got  *amount
			want money.Fen
		}{{"fulamt_ownpay_amt", in.Data.Fulamt, si.FulamtOwnpayAmt}, {"overlmt_selfpay", in.Data.Overlmt, si.OverlmtSelfpay},
			{"preselfpay_amt", in.Data.Preself, si.PreselfpayAmt}, {"inscp_scp_amt", in.Data.Inscp, si.InscpScpAmt}} {
			if c.got != nil && money.Fen(*c.got) != c.want {
				return failf("data.%s %s 与平台计算 %s 不符 (amounts do not add up)", c.name, money.Fen(*c.got), c.want)
			}
		}
		return nil
	}
	st, err := s.settle.Settle(ctx, v.MdtrtID, req)
	if err != nil {
		return nil, "", err
	}
	info, err := s.setlinfo(ctx, r, v, st.Result, st.SetlID, st.CreatedAt, 1)
	if err != nil {
		return nil, "", err
	}
	return map[string]any{"setlinfo": info, "setldetail": setldetail(st.Result, 1)}, st.SetlID, nil
}

func settleCancel(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		Data struct {
			SetlID  string `json:"setl_id"`
			MdtrtID string `json:"mdtrt_id"`
			PsnNo   string `json:"psn_no"`
		} `json:"data"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	out, err := s.cancelSettlement(ctx, r, in.Data.SetlID, in.Data.MdtrtID, in.Data.PsnNo)
	return out, in.Data.SetlID, err
}

func (s *Service) cancelSettlement(ctx context.Context, r *Request, setlID, mdtrtID, psn string) (any, error) {
	if err := need("data", "setl_id", setlID); err != nil {
		return nil, err
	}
	st, err := s.settle.GetSettlement(ctx, setlID)
	if err != nil {
		return nil, err
	}
	if (mdtrtID != "" && st.MdtrtID != mdtrtID) || (psn != "" && st.PsnNo != psn) {
		return nil, failf("data.setl_id %s 不属于就诊 %s / 人员 %s", setlID, mdtrtID, psn)
	}
	var refunded money.Fen
	if s.RefundedFor != nil {
		if refunded, err = s.RefundedFor(ctx, setlID); err != nil {
			return nil, err
		}
	}
	rev, err := s.settle.ReverseRefunded(ctx, setlID, refunded)
	if err != nil {
		return nil, err
	}
	v, err := s.settle.GetVisit(ctx, st.MdtrtID)
	if err != nil {
		return nil, err
	}
	info, err := s.setlinfo(ctx, r, v, rev.Result, setlID, s.now(), -1)
	if err != nil {
		return nil, err
	}
	if r.Infno == "2208" {
		// The published 2208 spells field 26 "pdn_cash_pay"; HIS code reads
		// either spelling, so both are sent.
		info["pdn_cash_pay"] = info["psn_cash_pay"]
	}
	return map[string]any{"setlinfo": info, "setldetail": setldetail(rev.Result, -1)}, nil
}

// reverse (2601) undoes an earlier message named by its msgid, once.
func reverse(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		Data struct {
			PsnNo  string `json:"psn_no"`
			Omsgid string `json:"omsgid"`
			Oinfno string `json:"oinfno"`
		} `json:"data"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	if err := need("data", "omsgid", in.Data.Omsgid); err != nil {
		return nil, "", err
	}
	var inst, infno, ref, resp string
	err := s.db.QueryRow(ctx, `SELECT fixmedins_code, infno, ref_id, response FROM nhsa_messages WHERE msgid = ?`, in.Data.Omsgid).Scan(&inst, &infno, &ref, &resp)
	if err != nil || inst != r.FixmedinsCode || resp == "" {
		return nil, "", failf("原报文 omsgid %s 不存在 (no answered message of this institution with that msgid)", in.Data.Omsgid)
	}
	if in.Data.Oinfno != "" && in.Data.Oinfno != infno {
		return nil, "", failf("oinfno %s 与原报文的交易编号 %s 不一致", in.Data.Oinfno, infno)
	}
	switch infno {
	case "2207", "2304":
		_, err := s.cancelSettlement(ctx, r, ref, "", in.Data.PsnNo)
		return nil, ref, err
	case "2201", "2401":
		_, err := s.settle.CancelVisit(ctx, ref)
		return nil, ref, err
	case "2204", "2301":
		// Cancel exactly the lines that message uploaded (its answer lists them).
		var answer struct {
			Output struct {
				Result []struct {
					Sn string `json:"feedetl_sn"`
				} `json:"result"`
			} `json:"output"`
		}
		if err := json.Unmarshal([]byte(resp), &answer); err != nil {
			return nil, "", err
		}
		var sns []string
		for _, x := range answer.Output.Result {
			sns = append(sns, x.Sn)
		}
		_, err := s.settle.CancelFeeLines(ctx, ref, sns)
		return nil, ref, err
	}
	return nil, "", failf("交易 %s 不可冲正 (2601 reverses 2201, 2204, 2207, 2301, 2304, 2401)", infno)
}

// --- queries ---

func querySettlement(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		Data struct {
			PsnNo   string `json:"psn_no"`
			SetlID  string `json:"setl_id"`
			MdtrtID string `json:"mdtrt_id"`
		} `json:"data"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	if err := need("data", "setl_id", in.Data.SetlID); err != nil {
		return nil, "", err
	}
	st, err := s.settle.GetSettlement(ctx, in.Data.SetlID)
	if err != nil {
		return nil, "", err
	}
	if in.Data.PsnNo != "" && st.PsnNo != in.Data.PsnNo {
		return nil, "", failf("data.setl_id %s 不属于人员 %s", in.Data.SetlID, in.Data.PsnNo)
	}
	v, err := s.settle.GetVisit(ctx, st.MdtrtID)
	if err != nil {
		return nil, "", err
	}
	info, err := s.setlinfo(ctx, r, v, st.Result, st.SetlID, st.CreatedAt, 1)
	if err != nil {
		return nil, "", err
	}
	info["setl_stas"] = st.Status
	return map[string]any{"setlinfo": info, "setldetail": setldetail(st.Result, 1)}, "", nil
}

func queryAccumulators(s *Service, ctx context.Context, r *Request) (any, string, error) {
	var in struct {
		Data struct {
			PsnNo string `json:"psn_no"`
		} `json:"data"`
	}
	if err := decodeInput(r, &in); err != nil {
		return nil, "", err
	}
	acc, err := s.settle.Accumulators(ctx, in.Data.PsnNo)
	if err != nil {
		return nil, "", err
	}
	out := []map[string]any{}
	for _, a := range acc {
		for k, v := range a.Counters {
			out = append(out, map[string]any{"insutype": a.Insutype, "year": strconv.Itoa(a.Year), "cum_type_code": k, "cum": num(v)})
		}
	}
	return map[string]any{"cumInfo": out}, "", nil
}
