package policy

import (
	"fmt"
	"sort"
	"strings"

	"yibao"
	"yibao/money"
)

// validator collects every problem with its field path.
type validator struct {
	errs []*yibao.Error
}

func (v *validator) fail(path, format string, args ...any) {
	v.errs = append(v.errs, yibao.FieldError(path, format, args...))
}

// Validate checks the policy and prepares it for Calc. The error is a
// *yibao.Error with CodeInvalid whose Field is the first offending path
// (e.g. "schemes[310].inpatient.deductible.by_level[3]") and whose message
// lists every problem found.
func (p *Policy) Validate() error {
	var v validator
	p.valid = false
	if p.Version == "" {
		v.fail("version", "must not be empty")
	}
	if len(p.Admdvs) != 6 || !digits(p.Admdvs) {
		v.fail("admdvs", "want a 6-digit division code, got %q", p.Admdvs)
	}
	if _, _, _, ok := parseDate(p.EffectiveFrom); !ok {
		v.fail("effective_from", "want YYYY-MM-DD, got %q", p.EffectiveFrom)
	}
	if p.EffectiveTo != "" {
		if _, _, _, ok := parseDate(p.EffectiveTo); !ok {
			v.fail("effective_to", "want YYYY-MM-DD, got %q", p.EffectiveTo)
		} else if p.EffectiveTo < p.EffectiveFrom {
			v.fail("effective_to", "must not be before effective_from")
		}
	}
	for _, f := range [][2]string{{"date_basis.inpatient", p.DateBasis.Inpatient}, {"date_basis.other", p.DateBasis.Other}} {
		if f[1] != "" && f[1] != BySettlement && f[1] != ByDischarge && f[1] != ByAdmission {
			v.fail(f[0], "want settlement, discharge or admission, got %q", f[1])
		}
	}
	if p.YearStart < 0 || p.YearStart > 12 {
		v.fail("year_start_month", "want 1…12, got %d", p.YearStart)
	}
	p.rounding = money.HalfUp
	if p.Rounding != "" {
		r, ok := money.ParseRounding(p.Rounding)
		if !ok {
			v.fail("rounding", "want half_up, half_even, down or up, got %q", p.Rounding)
		}
		p.rounding = r
	}
	if len(p.Schemes) == 0 {
		v.fail("schemes", "must have at least one scheme")
	}
	for _, k := range sortedKeys(p.Schemes) {
		path := "schemes[" + k + "]"
		if len(k) != 3 || !digits(k) {
			v.fail(path, "want a 3-digit insutype key")
		}
		if p.Schemes[k] == nil {
			v.fail(path, "must not be null")
			continue
		}
		v.scheme(path, p.Schemes[k])
	}
	if len(v.errs) == 0 {
		p.valid = true
		return nil
	}
	first := v.errs[0]
	if len(v.errs) > 1 {
		msgs := make([]string, len(v.errs))
		for i, e := range v.errs {
			msgs[i] = e.Message
		}
		first = &yibao.Error{Code: yibao.CodeInvalid, Field: first.Field, Message: strings.Join(msgs, "; ")}
	}
	return first
}

func (v *validator) scheme(path string, s *Scheme) {
	v.ratio(path+".b_self_pay", s.BSelfPay, true)
	some := false
	for _, t := range VisitTypes {
		b := s.visit(t)
		if b == nil {
			continue
		}
		some = true
		bp := path + "." + t
		if b.SameAs != "" {
			target := s.visit(b.SameAs)
			switch {
			case target == nil:
				v.fail(bp+".same_as", "scheme has no %q benefit", b.SameAs)
			case target.SameAs != "":
				v.fail(bp+".same_as", "%q itself uses same_as; point at the final benefit", b.SameAs)
			}
			continue
		}
		v.benefit(bp, b)
	}
	if !some {
		v.fail(path, "must configure at least one visit type")
	}
	if s.Account != nil {
		v.account(path+".account", s.Account)
	}
	if la := s.LargeAmount; la != nil {
		v.bands(path+".large_amount.bands", la.Bands, true)
		v.nonNeg(path+".large_amount.threshold", la.Threshold)
		if la.BandsOn != "" && la.BandsOn != "absolute" && la.BandsOn != "excess" {
			v.fail(path+".large_amount.bands_on", "want absolute or excess, got %q", la.BandsOn)
		}
		v.nonNeg(path+".large_amount.annual_cap", la.AnnualCap)
		v.field(path+".large_amount.setl_field", la.Field)
	}
	if cs := s.CivilServant; cs != nil {
		if len(cs.Groups) == 0 {
			v.fail(path+".civil_servant.groups", "must name at least one group")
		}
		v.ratio(path+".civil_servant.ratio", cs.Ratio, true)
		v.nonNeg(path+".civil_servant.annual_cap", cs.AnnualCap)
	}
	if ci := s.CriticalIllness; ci != nil {
		p := path + ".critical_illness"
		v.nonNeg(p+".threshold", ci.Threshold)
		v.nonNeg(p+".annual_cap", ci.AnnualCap)
		v.bands(p+".bands", ci.Bands, true)
		v.field(p+".setl_field", ci.Field)
		if ci.BandsOn != "" && ci.BandsOn != "absolute" && ci.BandsOn != "excess" {
			v.fail(p+".bands_on", "want absolute or excess, got %q", ci.BandsOn)
		}
		if sp := ci.Special; sp != nil {
			if len(sp.Groups) == 0 {
				v.fail(p+".special.groups", "must name at least one group")
			}
			v.ratio(p+".special.threshold_share", sp.ThresholdShare, true)
			v.ratio(p+".special.band_plus", sp.BandPlus, true)
		}
	}
	if as := s.Assistance; as != nil {
		p := path + ".assistance"
		if len(as.ByGroup) == 0 {
			v.fail(p+".by_group", "must name at least one group")
		}
		for _, g := range sortedKeys(as.ByGroup) {
			r := as.ByGroup[g]
			gp := p + ".by_group[" + g + "]"
			if r == nil {
				v.fail(gp, "must not be null")
				continue
			}
			v.ratio(gp+".ratio", r.Ratio, true)
			v.nonNeg(gp+".threshold", r.Threshold)
			v.nonNeg(gp+".annual_cap", r.AnnualCap)
		}
		if t := as.Tilt; t != nil {
			v.ratio(p+".tilt.ratio", t.Ratio, true)
			v.nonNeg(p+".tilt.threshold", t.Threshold)
			v.nonNeg(p+".tilt.annual_cap", t.AnnualCap)
		}
	}
	if cr := s.CrossRegion; cr != nil {
		v.cross(path+".cross_region", cr)
	}
}

func (v *validator) benefit(path string, b *Benefit) {
	if b.BSelfPay != nil {
		v.ratio(path+".b_self_pay", *b.BSelfPay, true)
	}
	for i, l := range b.Layers {
		if l != LayerLargeAmount && l != LayerCriticalIllness && l != LayerAssistance && l != LayerCivilServant {
			v.fail(fmt.Sprintf("%s.layers[%d]", path, i), "want large_amount, civil_servant, critical_illness or assistance, got %q", l)
		}
	}
	if b.Account != nil {
		v.account(path+".account", b.Account)
	}
	if b.NoFund {
		return
	}
	v.deductible(path+".deductible", &b.Deductible)
	v.ratioRule(path+".ratio", &b.Ratio, 0)
	kinds := map[string]string{}
	for i := range b.Caps {
		cp := &b.Caps[i]
		cpath := fmt.Sprintf("%s.caps[%d]", path, i)
		if cp.Kind != "fund" && cp.Kind != "expense" {
			v.fail(cpath+".kind", "want fund or expense, got %q", cp.Kind)
		}
		if cp.Period != "" && cp.Period != "year" && cp.Period != "month" {
			v.fail(cpath+".period", "want year or month, got %q", cp.Period)
		}
		v.nonNeg(cpath+".amount", cp.Amount)
		name := cp.counter()
		if k, ok := kinds[name]; ok && k != cp.Kind {
			v.fail(cpath+".counter", "counter %q already counts %s", name, k)
		}
		kinds[name] = cp.Kind
		if name == CounterFund && cp.Kind == "expense" || name == CounterExpense && cp.Kind == "fund" {
			v.fail(cpath+".counter", "counter %q is reserved for %s caps", name, name)
		}
	}
}

func (v *validator) deductible(path string, d *Deductible) {
	if d.Unit != "" && d.Unit != "admission" && d.Unit != "year" {
		v.fail(path+".unit", "want admission or year, got %q", d.Unit)
	}
	if len(d.ByLevel) == 0 {
		v.fail(path+".by_level", "must give at least one level (use \"*\" for all)")
	}
	v.levels(path+".by_level", d.ByLevel)
	for _, g := range sortedKeys(d.ByGroup) {
		v.levels(path+".by_group["+g+"]", d.ByGroup[g])
	}
	if d.AnnualCap != nil {
		v.nonNeg(path+".annual_cap", *d.AnnualCap)
	}
	if r := d.Repeat; r != nil {
		p := path + ".repeat"
		if r.ZeroFrom < 0 {
			v.fail(p+".zero_from", "must be ≥ 0")
		}
		for _, k := range sortedKeys(r.Schedule) {
			v.levelKey(p+".schedule_by_level["+k+"]", k)
			for i, a := range r.Schedule[k] {
				v.nonNeg(fmt.Sprintf("%s.schedule_by_level[%s][%d]", p, k, i), a)
			}
		}
		for i, x := range r.Ratios {
			v.ratio(fmt.Sprintf("%s.ratios[%d]", p, i), x, true)
		}
		if r.Compound != nil {
			v.ratio(p+".compound", *r.Compound, true)
		}
		v.levels(p+".floor_by_level", r.Floor)
	}
}

func (v *validator) ratioRule(path string, r *RatioRule, depth int) {
	if r == nil {
		v.fail(path, "must not be null")
		return
	}
	if len(r.ByLevel) == 0 && len(r.Bands) == 0 && r.Age == nil {
		v.fail(path, "must give by_level, bands_by_level or age")
	}
	for _, k := range sortedKeys(r.ByLevel) {
		v.levelKey(path+".by_level["+k+"]", k)
		v.ratio(path+".by_level["+k+"]", r.ByLevel[k], true)
	}
	for _, k := range sortedKeys(r.Bands) {
		v.levelKey(path+".bands_by_level["+k+"]", k)
		v.bands(path+".bands_by_level["+k+"]", r.Bands[k], false)
	}
	if r.BandsAre != "" && r.BandsAre != "fund" && r.BandsAre != "personal" {
		v.fail(path+".bands_are", "want fund or personal, got %q", r.BandsAre)
	}
	if r.BandBasis != "" && r.BandBasis != "admission" && r.BandBasis != "annual" {
		v.fail(path+".band_basis", "want admission or annual, got %q", r.BandBasis)
	}
	if a := r.Age; a != nil {
		v.ratio(path+".age.base", a.Base, true)
		v.ratio(path+".age.per_year", a.PerYear, true)
		v.ratio(path+".age.max", a.Max, true)
	}
	if rt := r.Retiree; rt != nil {
		if rt.Plus != nil {
			v.ratio(path+".retiree.plus", *rt.Plus, true)
		}
		if rt.PersonalFactor != nil {
			v.ratio(path+".retiree.personal_factor", *rt.PersonalFactor, false)
		}
		if (rt.Plus == nil) == (rt.PersonalFactor == nil) {
			v.fail(path+".retiree", "give exactly one of plus and personal_factor")
		}
	}
	if depth > 0 && len(r.ByGroup) > 0 {
		v.fail(path+".by_group", "must not nest")
	}
	for _, g := range sortedKeys(r.ByGroup) {
		v.ratioRule(path+".by_group["+g+"]", r.ByGroup[g], depth+1)
	}
}

func (v *validator) cross(path string, cr *CrossRegion) {
	if cr.EmergencyAs != "" && !validStatus(cr.EmergencyAs) {
		v.fail(path+".emergency_as", "unknown status %q", cr.EmergencyAs)
	}
	for _, st := range sortedKeys(cr.ByStatus) {
		p := path + ".by_status[" + st + "]"
		r := cr.ByStatus[st]
		if !validStatus(st) || st == Local {
			v.fail(p, "want long_term, referred, temporary or unregistered")
		}
		if r == nil {
			v.fail(p, "must not be null")
			continue
		}
		if r.RatioCut != nil {
			v.ratio(p+".ratio_cut", *r.RatioCut, true)
		}
		if r.FirstPay != nil {
			v.ratio(p+".first_pay", *r.FirstPay, true)
		}
		if r.Level < 0 || r.Level > 9 {
			v.fail(p+".level", "want 0…9, got %d", r.Level)
		}
		if r.Deductible != nil {
			v.nonNeg(p+".deductible", *r.Deductible)
		}
		for _, sc := range sortedKeys(r.DeductibleByScope) {
			if sc != "in_province" && sc != "out_of_province" {
				v.fail(p+".deductible_by_scope["+sc+"]", "want in_province or out_of_province")
			}
			v.nonNeg(p+".deductible_by_scope["+sc+"]", r.DeductibleByScope[sc])
		}
		if sh := r.DeductibleShare; sh != nil {
			v.ratio(p+".deductible_share.ratio", sh.Ratio, true)
			v.nonNeg(p+".deductible_share.min", sh.Min)
			v.nonNeg(p+".deductible_share.max", sh.Max)
			if sh.Max > 0 && sh.Max < sh.Min {
				v.fail(p+".deductible_share.max", "must be ≥ min")
			}
		}
	}
}

func (v *validator) account(path string, a *AccountRule) {
	if !boolOr(a.Own, true) && !a.FamilyMutualAid {
		v.fail(path, "an account rule with own=false must allow family_mutual_aid")
	}
}

func (v *validator) bands(path string, bs []Band, positive bool) {
	if len(bs) == 0 {
		v.fail(path, "must have at least one band")
	}
	for i, b := range bs {
		p := fmt.Sprintf("%s[%d]", path, i)
		v.nonNeg(p+".from", b.From)
		v.ratio(p+".ratio", b.Ratio, true)
		if i > 0 && b.From <= bs[i-1].From {
			v.fail(p+".from", "must be above the previous band's from (%s)", bs[i-1].From)
		}
	}
}

func (v *validator) levels(path string, m map[string]money.Fen) {
	for _, k := range sortedKeys(m) {
		v.levelKey(path+"["+k+"]", k)
		v.nonNeg(path+"["+k+"]", m[k])
	}
}

func (v *validator) levelKey(path, k string) {
	if k != "*" && (len(k) != 1 || !digits(k)) {
		v.fail(path, "want a level 0…9 or \"*\"")
	}
}

func (v *validator) nonNeg(path string, f money.Fen) {
	if f < 0 {
		v.fail(path, "must be ≥ 0")
	}
	if f > MaxAmount {
		v.fail(path, "must be ≤ %s", MaxAmount)
	}
}

func (v *validator) ratio(path string, r money.Ratio, atMostOne bool) {
	if r.Den() > maxDen {
		v.fail(path, "too many decimal places (at most 6)")
	}
	if atMostOne && r.Cmp(money.One) > 0 {
		v.fail(path, "must be ≤ 1")
	}
	if !atMostOne && r.Cmp(money.MustRatio(10, 1)) > 0 {
		v.fail(path, "must be ≤ 10")
	}
}

func (v *validator) field(path, f string) {
	switch f {
	case "", "hifmi_pay", "hifob_pay", "cvlserv_pay", "hifes_pay", "oth_pay":
	default:
		v.fail(path, "want hifmi_pay, hifob_pay, cvlserv_pay, hifes_pay or oth_pay, got %q", f)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// parseDate checks a YYYY-MM-DD date without the time package's
// allocations.
func parseDate(s string) (y, m, d int, ok bool) {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' || !digits(s[:4]) || !digits(s[5:7]) || !digits(s[8:]) {
		return 0, 0, 0, false
	}
	y = int(s[0]-'0')*1000 + int(s[1]-'0')*100 + int(s[2]-'0')*10 + int(s[3]-'0')
	m = int(s[5]-'0')*10 + int(s[6]-'0')
	d = int(s[8]-'0')*10 + int(s[9]-'0')
	days := [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
	if m < 1 || m > 12 || d < 1 || d > days[m] || (m == 2 && d == 29 && !(y%4 == 0 && (y%100 != 0 || y%400 == 0))) {
		return 0, 0, 0, false
	}
	return y, m, d, true
}

// basisDate returns the visit date that selects the version and the
// accumulator year, and the name of its input field.
func (p *Policy) basisDate(v *Visit) (string, string) {
	basis := p.DateBasis.Other
	if v.Type == Inpatient {
		basis = p.DateBasis.Inpatient
		if basis == "" {
			basis = ByDischarge
		}
	}
	switch basis {
	case ByDischarge:
		if v.DischargeDate != "" {
			return v.DischargeDate, "visit.discharge_date"
		}
	case ByAdmission:
		if v.AdmissionDate != "" {
			return v.AdmissionDate, "visit.admission_date"
		}
	}
	return v.SettlementDate, "visit.settlement_date"
}

// BasisDate returns the date that selects the policy version and the
// accumulator year for v: by default the discharge date for inpatient stays
// (the settlement date for a mid-stay settlement) and the settlement date
// for everything else.
func (p *Policy) BasisDate(v *Visit) string {
	d, _ := p.basisDate(v)
	return d
}

// Covers reports whether date (YYYY-MM-DD) falls within the version's
// effective dates.
func (p *Policy) Covers(date string) bool {
	return date >= p.EffectiveFrom && (p.EffectiveTo == "" || date <= p.EffectiveTo)
}

// Select returns the version among ps for region admdvs that covers the
// visit's basis date, or a CodeNotFound error.
func Select(ps []*Policy, admdvs string, v *Visit) (*Policy, error) {
	for _, p := range ps {
		if p.Admdvs == admdvs && p.Covers(p.BasisDate(v)) {
			return p, nil
		}
	}
	return nil, yibao.Errorf(yibao.CodeNotFound, "no policy version of %s covers the visit", admdvs)
}

// AccountingYear returns the accumulator year and month (YYYY-MM) of the
// visit under p: the year of the basis date, shifted back when the policy's
// year starts later than January.
func (p *Policy) AccountingYear(v *Visit) (year int, month string, err error) {
	date, field := p.basisDate(v)
	y, m, _, ok := parseDate(date)
	if !ok {
		return 0, "", yibao.FieldError(field, "want a date YYYY-MM-DD, got %q", date)
	}
	if p.YearStart > 1 && m < p.YearStart {
		y--
	}
	return y, date[:7], nil
}
