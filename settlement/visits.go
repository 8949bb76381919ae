package settlement

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"yibao"
	"yibao/money"
	"yibao/policy"
	"yibao/sqlstore"
)

// Visit states.
const (
	VisitOpen       = "open"       // registered / admitted; fee lines may be added
	VisitDischarged = "discharged" // inpatient left; awaiting the discharge settlement
	VisitSettled    = "settled"    // finally settled
	VisitCancelled  = "cancelled"  // registration withdrawn before any settlement
)

// medTypes maps a visit type to the NHSA med_type code.
var medTypes = map[string]string{
	policy.GeneralOutpatient: "11",
	policy.Emergency:         "13",
	policy.ChronicOutpatient: "14",
	policy.Inpatient:         "21",
	policy.Pharmacy:          "41",
}

// Visit is one encounter (就诊): an outpatient registration, an emergency
// visit, an inpatient stay or a pharmacy purchase.
type Visit struct {
	MdtrtID           string     `json:"mdtrt_id"`
	PsnNo             string     `json:"psn_no"`
	FixmedinsCode     string     `json:"fixmedins_code"`
	Insutype          string     `json:"insutype"`
	InsuAdmdvs        string     `json:"insu_admdvs"`
	Type              string     `json:"visit_type"`
	MedType           string     `json:"med_type"`
	DeptCode          string     `json:"dept_code,omitempty"`
	DeptName          string     `json:"dept_name,omitempty"`
	Level             int        `json:"level"`
	TransferFromLevel int        `json:"transfer_from_level,omitempty"`
	CrossStatus       string     `json:"cross_status"`
	CrossScope        string     `json:"cross_scope,omitempty"`
	DiseCodg          string     `json:"dise_codg,omitempty"`
	SlotID            string     `json:"slot_id,omitempty"`
	MdtrtCertType     string     `json:"mdtrt_cert_type"`         // 01 e-certificate, 02 ID card, 03 social-security card
	MdtrtCertNo       string     `json:"mdtrt_cert_no,omitempty"` // the e-certificate id or the masked card number
	BeginDate         string     `json:"begin_date"`
	EndDate           string     `json:"end_date,omitempty"`
	Status            string     `json:"status"`
	Segments          int        `json:"settlements"`
	CreatedBy         string     `json:"created_by"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
	Lines             []FeeLine  `json:"fee_lines,omitempty"`
	Totals            *FeeTotals `json:"totals,omitempty"`
}

// FeeTotals sums a visit's active fee lines.
type FeeTotals struct {
	Lines     int       `json:"lines"`
	Amount    money.Fen `json:"amount"`
	Unsettled money.Fen `json:"unsettled"`
}

// FeeLine is one uploaded fee line (费用明细), resolved against the catalog.
type FeeLine struct {
	FeedetlSn    string      `json:"feedetl_sn"`
	CatalogCode  string      `json:"catalog_code"`
	Name         string      `json:"name"`
	Class        string      `json:"class"`
	SelfPayRatio money.Ratio `json:"self_pay_ratio"`
	PriceCap     *money.Fen  `json:"price_cap,omitempty"`
	UnitPrice    money.Fen   `json:"unit_price"`
	Quantity     money.Ratio `json:"quantity"`
	Amount       money.Fen   `json:"amount"`
	FeeDate      string      `json:"fee_date"`
	Status       string      `json:"status"`
	SetlID       string      `json:"setl_id,omitempty"`
}

// VisitRequest opens a visit.
type VisitRequest struct {
	PsnNo         string `json:"psn_no"`
	FixmedinsCode string `json:"fixmedins_code"`
	Type          string `json:"visit_type"`
	Insutype      string `json:"insutype,omitempty"` // default: the person's basic scheme in force
	DeptCode      string `json:"dept_code,omitempty"`
	DeptName      string `json:"dept_name,omitempty"`
	BeginDate     string `json:"begin_date,omitempty"` // default today
	DiseCodg      string `json:"dise_codg,omitempty"`
	CrossStatus   string `json:"cross_status,omitempty"` // default local, or unregistered when treated outside the insured region
	CrossScope    string `json:"cross_scope,omitempty"`
	// InsuplcAdmdvs is the insured region (NHSA insuplc_admdvs). For a
	// person insured by another region's node it routes the look-up; by
	// default the region is read from the psn_no's first four digits.
	InsuplcAdmdvs     string `json:"insuplc_admdvs,omitempty"`
	TransferFromLevel int    `json:"transfer_from_level,omitempty"`
	SlotID            string `json:"slot_id,omitempty"`
	// How the patient identified (NHSA mdtrt_cert_type): set by the API
	// from an ecToken ("01"); "02" ID card by default, "03" card.
	MdtrtCertType string `json:"mdtrt_cert_type,omitempty"`
	MdtrtCertNo   string `json:"mdtrt_cert_no,omitempty"`
}

var (
	deptRe = regexp.MustCompile(`^[A-Za-z0-9._-]{0,30}$`)
	snRe   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,30}$`)
)

const visitCols = `mdtrt_id, psn_no, fixmedins_code, insutype, insu_admdvs, visit_type, med_type, dept_code, dept_name, level,
	transfer_from_level, cross_status, cross_scope, dise_codg, slot_id, mdtrt_cert_type, mdtrt_cert_no, begin_date, end_date, status, segments,
	created_by, created_at, updated_at`

func scanVisit(sc interface{ Scan(...any) error }) (*Visit, error) {
	var v Visit
	var c, u int64
	err := sc.Scan(&v.MdtrtID, &v.PsnNo, &v.FixmedinsCode, &v.Insutype, &v.InsuAdmdvs, &v.Type, &v.MedType, &v.DeptCode, &v.DeptName,
		&v.Level, &v.TransferFromLevel, &v.CrossStatus, &v.CrossScope, &v.DiseCodg, &v.SlotID, &v.MdtrtCertType, &v.MdtrtCertNo, &v.BeginDate, &v.EndDate, &v.Status,
		&v.Segments, &v.CreatedBy, &c, &u)
	if err != nil {
		return nil, err
	}
	v.CreatedAt, v.UpdatedAt = fromMicros(c), fromMicros(u)
	return &v, nil
}

func validDate(s string) bool { return yibao.ValidDate(s) }

// basicSchemes are the schemes a visit settles under, in order of preference.
var basicSchemes = []string{"310", "390"}

// OpenVisit registers an outpatient or emergency visit, admits an
// inpatient or starts a pharmacy purchase. The person must be covered on
// the visit date and the institution under an active agreement; staff may
// open visits only at their own institution.
func (s *Service) OpenVisit(ctx context.Context, r VisitRequest) (*Visit, error) {
	p, err := access(ctx, r.FixmedinsCode)
	if err != nil {
		return nil, err
	}
	if _, ok := medTypes[r.Type]; !ok {
		return nil, yibao.FieldError("visit_type", "want one of general_outpatient, chronic_outpatient, emergency, inpatient, pharmacy")
	}
	if r.BeginDate == "" {
		r.BeginDate = s.today()
	} else if !validDate(r.BeginDate) {
		return nil, yibao.FieldError("begin_date", "want a date YYYY-MM-DD")
	}
	if r.BeginDate > s.today() {
		return nil, yibao.FieldError("begin_date", "a visit cannot begin in the future")
	}
	if !deptRe.MatchString(r.DeptCode) || len(r.DeptName) > 100 || len(r.DiseCodg) > 30 {
		return nil, yibao.FieldError("dept_code", "dept_code ≤ 30 letters/digits, dept_name ≤ 100 bytes, dise_codg ≤ 30")
	}
	if r.TransferFromLevel < 0 || r.TransferFromLevel > 3 || (r.TransferFromLevel > 0 && r.Type != policy.Inpatient) {
		return nil, yibao.FieldError("transfer_from_level", "an inpatient transfer names the previous level 1–3")
	}
	var kind, admdvs, contract string
	var level int
	err = s.db.QueryRow(ctx, `SELECT kind, level, admdvs, contract_status FROM institutions WHERE fixmedins_code = ?`, r.FixmedinsCode).
		Scan(&kind, &level, &admdvs, &contract)
	if notFound(err) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "institution %s not found", r.FixmedinsCode)
	}
	if err != nil {
		return nil, err
	}
	if contract != string(yibao.ContractActive) {
		return nil, yibao.Errorf(yibao.CodePrecondition, "institution %s agreement is %s", r.FixmedinsCode, contract)
	}
	if (kind == string(yibao.KindPharmacy)) != (r.Type == policy.Pharmacy) {
		return nil, yibao.FieldError("visit_type", "pharmacies sell (visit_type pharmacy); hospitals treat")
	}
	if r.InsuplcAdmdvs != "" && !yibao.ValidAdmdvs(r.InsuplcAdmdvs) {
		return nil, yibao.FieldError("insuplc_admdvs", "want the insured region's 6-digit code")
	}
	if ad := s.GuestRegion(r.InsuplcAdmdvs, r.PsnNo); ad != "" {
		// Insured by another region's node: fetch the person, their
		// coverage and the filing that applies here, and keep a copy.
		_, status, err := s.ImportRemotePerson(ctx, PersonRequest{PsnNo: r.PsnNo, InsuAdmdvs: ad, TreatingAdmdvs: admdvs, FixmedinsCode: r.FixmedinsCode, Date: r.BeginDate})
		if err != nil {
			return nil, err
		}
		if r.CrossStatus == "" {
			r.CrossStatus = status
		}
	}
	var n int
	if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM persons WHERE psn_no = ?`, r.PsnNo).Scan(&n); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, yibao.Errorf(yibao.CodeNotFound, "person %s not found", r.PsnNo)
	}
	covs, err := s.reg.CoveragesOn(ctx, r.PsnNo, r.BeginDate)
	if err != nil {
		return nil, err
	}
	var cov *yibao.Coverage
	for _, want := range append([]string{r.Insutype}, basicSchemes...) {
		for i := range covs {
			if want != "" && covs[i].Insutype == want && cov == nil {
				cov = &covs[i]
			}
		}
		if r.Insutype != "" {
			break
		}
	}
	if cov == nil {
		return nil, yibao.Errorf(yibao.CodePrecondition, "person %s has no active basic coverage on %s", r.PsnNo, r.BeginDate)
	}
	if r.CrossStatus == "" {
		r.CrossStatus = policy.Local
		if cov.Admdvs != admdvs {
			r.CrossStatus = policy.Unregistered
		}
	}
	switch r.CrossStatus {
	case policy.Local, policy.LongTerm, policy.Referred, policy.Temporary, policy.Unregistered:
	default:
		return nil, yibao.FieldError("cross_status", "want local, long_term, referred, temporary or unregistered")
	}
	if r.CrossScope == "" && r.CrossStatus != policy.Local {
		r.CrossScope = "in_province"
		if cov.Admdvs[:2] != admdvs[:2] {
			r.CrossScope = "out_of_province"
		}
	}
	switch r.MdtrtCertType {
	case "":
		r.MdtrtCertType = "02"
	case "01", "02", "03":
	default:
		return nil, yibao.FieldError("mdtrt_cert_type", "want 01 (e-certificate), 02 (ID card) or 03 (social-security card)")
	}
	if len(r.MdtrtCertNo) > 40 {
		return nil, yibao.FieldError("mdtrt_cert_no", "at most 40 characters")
	}
	now := s.now()
	v := &Visit{MdtrtID: newID("MD"), MdtrtCertType: r.MdtrtCertType, MdtrtCertNo: r.MdtrtCertNo, PsnNo: r.PsnNo, FixmedinsCode: r.FixmedinsCode, Insutype: cov.Insutype, InsuAdmdvs: cov.Admdvs,
		Type: r.Type, MedType: medTypes[r.Type], DeptCode: r.DeptCode, DeptName: r.DeptName, Level: level,
		TransferFromLevel: r.TransferFromLevel, CrossStatus: r.CrossStatus, CrossScope: r.CrossScope, DiseCodg: r.DiseCodg,
		SlotID: r.SlotID, BeginDate: r.BeginDate, Status: VisitOpen, CreatedBy: p.ID(), CreatedAt: now.UTC(), UpdatedAt: now.UTC()}
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		if r.SlotID != "" {
			if err := s.bookSlot(ctx, tx, r.SlotID, v); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO visits (`+visitCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, 0, ?, ?, ?)`,
			v.MdtrtID, v.PsnNo, v.FixmedinsCode, v.Insutype, v.InsuAdmdvs, v.Type, v.MedType, v.DeptCode, v.DeptName, v.Level,
			v.TransferFromLevel, v.CrossStatus, v.CrossScope, v.DiseCodg, v.SlotID, v.MdtrtCertType, v.MdtrtCertNo, v.BeginDate, v.Status, v.CreatedBy, micros(now), micros(now))
		return err
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// loadVisit reads a visit and checks the caller may act for it.
func (s *Service) loadVisit(ctx context.Context, q querier, id string) (*Visit, error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	v, err := scanVisit(q.QueryRow(ctx, `SELECT `+visitCols+` FROM visits WHERE mdtrt_id = ?`, id))
	if notFound(err) || (err == nil && !p.ActsFor(v.FixmedinsCode)) {
		// Another institution's visit is indistinguishable from none.
		return nil, yibao.Errorf(yibao.CodeNotFound, "visit %s not found", id)
	}
	return v, err
}

// GetVisit returns a visit with its fee lines and totals.
func (s *Service) GetVisit(ctx context.Context, id string) (*Visit, error) {
	v, err := s.loadVisit(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	if v.Lines, err = s.feeLines(ctx, s.db, id, false); err != nil {
		return nil, err
	}
	t := &FeeTotals{}
	for _, l := range v.Lines {
		if l.Status == "active" {
			t.Lines++
			t.Amount += l.Amount
			if l.SetlID == "" {
				t.Unsettled += l.Amount
			}
		}
	}
	v.Totals = t
	return v, nil
}

// VisitFilter narrows a visit listing.
type VisitFilter struct {
	FixmedinsCode string // required for institution staff (defaults to theirs)
	PsnNo         string
	Status        string
	Limit         int
	Before        string // cursor: created_at micros of the last item
}

// Visits lists visits newest first: administrators see all, institutions
// their own.
func (s *Service) Visits(ctx context.Context, f VisitFilter) ([]Visit, string, error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, "", err
	}
	if !p.IsAdmin() {
		if f.FixmedinsCode == "" {
			f.FixmedinsCode = p.Institution
		}
		if !p.ActsFor(f.FixmedinsCode) {
			return nil, "", yibao.Errorf(yibao.CodeForbidden, "you may list only your own institution's visits")
		}
	}
	q, args := `SELECT `+visitCols+` FROM visits WHERE 1 = 1`, []any{}
	if f.FixmedinsCode != "" {
		q += ` AND fixmedins_code = ?`
		args = append(args, f.FixmedinsCode)
	}
	if f.PsnNo != "" {
		q += ` AND psn_no = ?`
		args = append(args, f.PsnNo)
	}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, f.Status)
	}
	if f.Before != "" {
		b, err := strconv.ParseInt(f.Before, 10, 64)
		if err != nil {
			return nil, "", yibao.FieldError("before", "bad cursor")
		}
		q += ` AND created_at < ?`
		args = append(args, b)
	}
	limit := f.Limit
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	rows, err := s.db.Query(ctx, q+fmt.Sprintf(` ORDER BY created_at DESC LIMIT %d`, limit+1), args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	out := []Visit{}
	for rows.Next() {
		v, err := scanVisit(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, *v)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = strconv.FormatInt(micros(out[limit-1].CreatedAt), 10)
	}
	return out, next, rows.Err()
}

// Discharge ends an inpatient stay; the discharge settlement follows.
func (s *Service) Discharge(ctx context.Context, id, date string) (*Visit, error) {
	return s.updateVisit(ctx, id, func(v *Visit) error {
		if v.Type != policy.Inpatient {
			return yibao.Errorf(yibao.CodePrecondition, "only inpatient stays are discharged")
		}
		if v.Status != VisitOpen {
			return yibao.Errorf(yibao.CodePrecondition, "visit %s is %s", v.MdtrtID, v.Status)
		}
		if date == "" {
			date = s.today()
		}
		if !validDate(date) || date < v.BeginDate || date > s.today() {
			return yibao.FieldError("end_date", "want a date between admission and today")
		}
		v.EndDate, v.Status = date, VisitDischarged
		return nil
	})
}

// TransferDept moves an inpatient to another department within the stay.
func (s *Service) TransferDept(ctx context.Context, id, deptCode, deptName string) (*Visit, error) {
	if !deptRe.MatchString(deptCode) || deptCode == "" || len(deptName) > 100 {
		return nil, yibao.FieldError("dept_code", "want a department code (≤ 30 letters/digits)")
	}
	return s.updateVisit(ctx, id, func(v *Visit) error {
		if v.Type != policy.Inpatient || v.Status != VisitOpen {
			return yibao.Errorf(yibao.CodePrecondition, "only an open inpatient stay changes department")
		}
		v.DeptCode, v.DeptName = deptCode, deptName
		return nil
	})
}

// CancelVisit withdraws a visit that has no settlement and no active fee
// lines (退号); a booked slot is released.
func (s *Service) CancelVisit(ctx context.Context, id string) (*Visit, error) {
	return s.updateVisitTx(ctx, id, func(tx *sqlstore.Tx, v *Visit) error {
		if v.Status != VisitOpen || v.Segments > 0 {
			return yibao.Errorf(yibao.CodePrecondition, "visit %s is %s with %d settlements; reverse them first", v.MdtrtID, v.Status, v.Segments)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM fee_lines WHERE mdtrt_id = ? AND status = 'active'`, id).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return yibao.Errorf(yibao.CodePrecondition, "visit %s has %d active fee lines; cancel them first", id, n)
		}
		if v.SlotID != "" {
			if err := releaseSlot(ctx, tx, v.SlotID); err != nil {
				return err
			}
		}
		v.Status = VisitCancelled
		return nil
	})
}

func (s *Service) updateVisit(ctx context.Context, id string, change func(*Visit) error) (*Visit, error) {
	return s.updateVisitTx(ctx, id, func(_ *sqlstore.Tx, v *Visit) error { return change(v) })
}

func (s *Service) updateVisitTx(ctx context.Context, id string, change func(*sqlstore.Tx, *Visit) error) (*Visit, error) {
	var out *Visit
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		v, err := s.loadVisit(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := change(tx, v); err != nil {
			return err
		}
		now := s.now()
		v.UpdatedAt = now.UTC()
		_, err = tx.Exec(ctx, `UPDATE visits SET dept_code = ?, dept_name = ?, end_date = ?, status = ?, updated_at = ? WHERE mdtrt_id = ?`,
			v.DeptCode, v.DeptName, v.EndDate, v.Status, micros(now), id)
		out = v
		return err
	})
	return out, err
}

// CancelDischarge takes back a discharge (出院撤销) that has no final
// settlement yet: the stay is open again.
func (s *Service) CancelDischarge(ctx context.Context, id string) (*Visit, error) {
	return s.updateVisit(ctx, id, func(v *Visit) error {
		if v.Type != policy.Inpatient || v.Status != VisitDischarged {
			return yibao.Errorf(yibao.CodePrecondition, "visit %s is %s: only a discharged, unsettled stay can be reopened", v.MdtrtID, v.Status)
		}
		v.EndDate, v.Status = "", VisitOpen
		return nil
	})
}
