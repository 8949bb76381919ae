package policy

import (
	"yibao"
	"yibao/money"
)

// Options tune one calculation.
type Options struct {
	Explain bool // build the bilingual step list (slower; off on the hot path)
}

// calc holds the state of one calculation.
type calc struct {
	p      *Policy
	s      *Scheme
	b      *Benefit
	in     *Input
	res    *Result
	rnd    money.Rounding
	level  int
	cross  *CrossRule
	status string
	adj    adjuster
	ex     *explainer
	delta  map[string]money.Fen

	// running figures
	c1, firstPay, dedDue, ded, elig, consumed, overCap money.Fen
	hifp, la, cvl, ci, maf, dedBase                    money.Fen
}

// Calc splits one settlement. p must have passed Validate. The result's
// invariants (legs sum to the bill, no leg negative, caps kept) hold for
// every input Calc accepts; inputs it cannot settle give a *yibao.Error
// with CodeInvalid naming the field.
func Calc(p *Policy, in *Input, opt Options) (*Result, error) {
	if p == nil || !p.valid {
		return nil, yibao.Errorf(yibao.CodeInvalid, "policy: not validated")
	}
	c := calc{p: p, in: in, rnd: p.rounding, res: &Result{PolicyVersion: p.Version, Admdvs: p.Admdvs}}
	if opt.Explain {
		c.ex = &explainer{}
	}
	if err := c.setup(); err != nil {
		return nil, err
	}
	if err := c.classify(); err != nil {
		return nil, err
	}
	if err := c.basic(); err != nil {
		return nil, err
	}
	c.layers()
	c.personal()
	c.finish()
	if c.ex != nil {
		c.res.Explain = c.ex.steps
	}
	return c.res, nil
}

// setup picks the scheme, benefit, date, level and cross-region rule.
func (c *calc) setup() error {
	in := c.in
	s := c.p.Schemes[in.Person.Insutype]
	if s == nil {
		return yibao.FieldError("person.insutype", "policy %s has no scheme %q", c.p.Version, in.Person.Insutype)
	}
	c.s = s
	b, err := s.benefit(in.Visit.Type)
	if err != nil {
		return err
	}
	c.b = b
	date, field := c.p.basisDate(&in.Visit)
	y, m, _, ok := parseDate(date)
	if !ok {
		return yibao.FieldError(field, "want a date YYYY-MM-DD, got %q", date)
	}
	if date < c.p.EffectiveFrom || (c.p.EffectiveTo != "" && date > c.p.EffectiveTo) {
		return yibao.FieldError(field, "%s is outside policy %s (%s…%s)", date, c.p.Version, c.p.EffectiveFrom, c.p.EffectiveTo)
	}
	c.res.BasisDate = date
	c.res.Accumulators.Month = date[:7]
	c.res.Accumulators.Year = y
	if c.p.YearStart > 1 && m < c.p.YearStart {
		c.res.Accumulators.Year = y - 1
	}
	if in.Visit.Level < 0 || in.Visit.Level > 9 {
		return yibao.FieldError("visit.level", "want 0…9, got %d", in.Visit.Level)
	}
	c.level = in.Visit.Level
	c.status = in.Visit.CrossRegion.Status
	if c.status == "" {
		c.status = Local
	}
	if !validStatus(c.status) {
		return yibao.FieldError("visit.cross_region.status", "unknown status %q", c.status)
	}
	if cr := s.CrossRegion; cr != nil && c.status != Local {
		if c.status == Unregistered && in.Visit.Type == Emergency {
			c.status = cr.EmergencyAs
			if c.status == "" {
				c.status = Referred
			}
		}
		c.cross = cr.ByStatus[c.status]
		if c.cross != nil && c.cross.Level > 0 {
			c.level = c.cross.Level
		}
	}
	if err := in.checkBounds(); err != nil {
		return err
	}
	c.res.Breakdown.Level = c.level
	c.res.Breakdown.CrossStatus = c.status
	c.delta = make(map[string]money.Fen, 8)
	return nil
}

func validStatus(s string) bool {
	switch s {
	case Local, LongTerm, Referred, Temporary, Unregistered:
		return true
	}
	return false
}

// benefit resolves same_as and the emergency fallback.
func (s *Scheme) benefit(visitType string) (*Benefit, error) {
	b := s.visit(visitType)
	if b == nil && visitType == Emergency {
		b = s.GeneralOutpatient
	}
	if b != nil && b.SameAs != "" {
		b = s.visit(b.SameAs)
	}
	if b == nil {
		return nil, yibao.FieldError("visit.type", "scheme has no benefit for visit type %q", visitType)
	}
	return b, nil
}

// classify splits each line into full self-pay, over-limit, 乙 pre-self-pay
// and in-range parts.
func (c *calc) classify() error {
	in := c.in
	si := &c.res.SetlInfo
	si.Insutype = in.Person.Insutype
	bShare := c.s.BSelfPay
	if c.b.BSelfPay != nil {
		bShare = *c.b.BSelfPay
	}
	c.res.Lines = make([]LineResult, len(in.Lines))
	for i := range in.Lines {
		l := &in.Lines[i]
		out := &c.res.Lines[i]
		if err := c.line(i, l, out, bShare); err != nil {
			return err
		}
		si.MedfeeSumamt += out.Amount
		si.FulamtOwnpayAmt += out.FulamtOwnpayAmt
		si.OverlmtSelfpay += out.OverlmtAmt
		si.PreselfpayAmt += out.PreselfpayAmt
		si.InscpScpAmt += out.InscpScpAmt
	}
	if c.ex != nil {
		c.ex.classify(si)
	}
	return nil
}

func (c *calc) line(i int, l *Line, out *LineResult, bShare money.Ratio) error {
	qty := money.One
	if l.Quantity != nil {
		qty = *l.Quantity
	}
	var amt money.Fen
	if l.Amount != nil {
		amt = *l.Amount
	} else {
		amt = l.UnitPrice.Mul(qty, c.rnd)
	}
	if amt < 0 || l.UnitPrice < 0 {
		return yibao.FieldError(lineField(i, "amount"), "must be ≥ 0")
	}
	out.ID, out.Amount = l.ID, amt
	class, ok := parseClass(l.Class)
	if !ok {
		return yibao.FieldError(lineField(i, "class"), "want A/B/C or 甲/乙/丙, got %q", l.Class)
	}
	if class == 'C' {
		out.FulamtOwnpayAmt = amt
		out.SelfpayProp = money.One
		return nil
	}
	rest := amt
	if l.PriceCap != nil {
		if *l.PriceCap < 0 {
			return yibao.FieldError(lineField(i, "price_cap"), "must be ≥ 0")
		}
		allowed := l.PriceCap.Mul(qty, c.rnd)
		if rest > allowed {
			out.OverlmtAmt = rest - allowed
			rest = allowed
		}
	}
	if class == 'B' {
		share := bShare
		if l.SelfPay != nil {
			if l.SelfPay.Cmp(money.One) > 0 {
				return yibao.FieldError(lineField(i, "self_pay_ratio"), "must be ≤ 1")
			}
			share = *l.SelfPay
		}
		out.SelfpayProp = share
		if l.PreSelfPay != nil {
			if *l.PreSelfPay < 0 || *l.PreSelfPay > rest {
				return yibao.FieldError(lineField(i, "preselfpay"), "must be between 0 and the in-limit amount %s", rest)
			}
			out.PreselfpayAmt = *l.PreSelfPay
		} else {
			out.PreselfpayAmt = rest.Mul(share, c.rnd)
		}
		rest -= out.PreselfpayAmt
	}
	out.InscpScpAmt = rest
	return nil
}

func parseClass(s string) (byte, bool) {
	switch s {
	case "A", "甲", "甲类":
		return 'A', true
	case "B", "乙", "乙类":
		return 'B', true
	case "C", "丙", "丙类":
		return 'C', true
	}
	return 0, false
}

func lineField(i int, name string) string {
	return "lines[" + levelKey(i) + "]." + name
}

// checkBounds rejects amounts outside what a bill can hold.
func (in *Input) checkBounds() error {
	if len(in.Lines) > MaxLines {
		return yibao.FieldError("lines", "at most %d lines", MaxLines)
	}
	a := &in.Accumulators
	if a.AccountBalance < -MaxAmount || a.AccountBalance > MaxAmount {
		return yibao.FieldError("accumulators.acct_balc", "out of range")
	}
	if a.Admissions < 0 || a.Admissions > 10000 {
		return yibao.FieldError("accumulators.admissions", "want 0…10000, got %d", a.Admissions)
	}
	for k, v := range a.Counters {
		if v < 0 || v > MaxAmount {
			return yibao.FieldError("accumulators.counters["+k+"]", "must be between 0 and %s", MaxAmount)
		}
	}
	if f := in.FamilyAccount; f != nil && (f.Balance < -MaxAmount || f.Balance > MaxAmount) {
		return yibao.FieldError("family_account.balance", "out of range")
	}
	for i := range in.Lines {
		l := &in.Lines[i]
		if l.UnitPrice < 0 || l.UnitPrice > MaxLineFen {
			return yibao.FieldError(lineField(i, "unit_price"), "must be between 0 and %s", MaxLineFen)
		}
		if l.Amount != nil && (*l.Amount < 0 || *l.Amount > MaxLineFen) {
			return yibao.FieldError(lineField(i, "amount"), "must be between 0 and %s", MaxLineFen)
		}
		if l.PriceCap != nil && (*l.PriceCap < 0 || *l.PriceCap > MaxLineFen) {
			return yibao.FieldError(lineField(i, "price_cap"), "must be between 0 and %s", MaxLineFen)
		}
		if l.Quantity != nil && l.Quantity.Cmp(money.MustRatio(maxQuantity, 1)) > 0 {
			return yibao.FieldError(lineField(i, "quantity"), "at most %d", maxQuantity)
		}
		if l.Amount == nil && l.UnitPrice.Mul(qtyOf(l), money.Down) > MaxLineFen {
			return yibao.FieldError(lineField(i, "amount"), "unit_price × quantity above %s", MaxLineFen)
		}
	}
	return nil
}

func qtyOf(l *Line) money.Ratio {
	if l.Quantity != nil {
		return *l.Quantity
	}
	return money.One
}
