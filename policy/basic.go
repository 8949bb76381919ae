package policy

import (
	"yibao"
	"yibao/money"
)

// Default counter names.
const (
	CounterDeductible  = "deductible"
	CounterFund        = "fund"
	CounterExpense     = "expense"
	CounterInscp       = "inscp"
	CounterLABase      = "large_amount_base"
	CounterLAPaid      = "large_amount"
	CounterCIBase      = "ci_base"
	CounterCIPaid      = "ci_paid"
	CounterMAFBase     = "maf_base"
	CounterMAFPaid     = "maf_paid"
	CounterMAFTiltPaid = "maf_tilt_paid"
	CounterCvlPaid     = "cvlserv_paid"
)

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// basic runs the basic fund: cross-region first pay, deductible, expense
// and fund caps, ratio or bands.
func (c *calc) basic() error {
	si := &c.res.SetlInfo
	acc := &c.in.Accumulators
	c.c1 = si.InscpScpAmt
	if c.cross != nil && c.cross.FirstPay != nil {
		c.firstPay = c.c1.Mul(*c.cross.FirstPay, c.rnd)
		c.c1 -= c.firstPay
	}
	if c.b.NoFund {
		c.elig, c.consumed = c.c1, c.c1
		c.res.Breakdown.Coinsurance = c.c1
		c.res.Breakdown.FirstPay = c.firstPay
		if c.ex != nil {
			c.ex.noFund()
		}
		return nil
	}
	due, err := c.deductible()
	if err != nil {
		return err
	}
	c.dedDue = due
	c.ded = money.Min(due, c.c1)
	c.elig = c.c1 - c.ded

	var flat [1]Band
	bands, rule, err := c.ratioBands(&flat)
	if err != nil {
		return err
	}
	var pos money.Fen
	posCounter := orDefault(rule.Counter, CounterInscp)
	if rule.BandBasis == "annual" {
		pos = acc.get(posCounter)
	}
	c.delta[posCounter] = c.c1

	expRoom, fundRoom := c.capRooms()
	eCap := c.elig
	if expRoom >= 0 && expRoom < eCap {
		eCap = expRoom
	}
	lo := pos + c.ded
	c.hifp, c.consumed = bandPay(bands, 0, lo, lo+eCap, fundRoom, &c.adj, c.rnd)
	c.overCap = c.elig - c.consumed
	si.ActPayDedc = c.ded
	si.HifpPay = c.hifp
	si.PoolPropSelfpay = bandRatio(bands, 0, lo, &c.adj)
	c.delta[c.deductibleCounter()] = c.ded
	c.delta[CounterFund] = c.hifp
	c.delta[CounterExpense] = c.consumed
	c.recordCaps()
	c.detail(c.s.fundPayType(c.in.Person.Insutype), c.c1, fundRoom, c.hifp)
	bd := &c.res.Breakdown
	bd.FirstPay, bd.Deductible, bd.DeductibleDue = c.firstPay, c.ded, c.dedDue
	bd.Coinsurance = c.consumed - c.hifp
	bd.OverCap = c.overCap
	if c.ex != nil {
		c.ex.basic(c, pos, expRoom, fundRoom)
	}
	return nil
}

func (cp *Cap) counter() string {
	if cp.Counter != "" {
		return cp.Counter
	}
	name := CounterFund
	if cp.Kind == "expense" {
		name = CounterExpense
	}
	if cp.Period == "month" {
		name += ".month"
	}
	return name
}

func (c *calc) capApplies(cp *Cap) bool {
	if len(cp.Groups) == 0 {
		return true
	}
	for _, g := range cp.Groups {
		if c.in.Person.InGroup(g) {
			return true
		}
	}
	return false
}

func (c *calc) deductibleCounter() string {
	return orDefault(c.b.Deductible.Counter, CounterDeductible)
}

// deductible returns the deductible due for this settlement before it is
// limited to the policy-range amount.
func (c *calc) deductible() (money.Fen, error) {
	d := &c.b.Deductible
	acc := &c.in.Accumulators
	table := d.ByLevel
	if t, ok := pickGroup(&c.in.Person, d.ByGroup); ok {
		table = t
	}
	base, ok := lookupFen(table, c.level)
	if !ok {
		return 0, yibao.FieldError("visit.level", "policy has no deductible for %s level %d", c.in.Visit.Type, c.level)
	}
	if cr := c.cross; cr != nil {
		if cr.DeductibleShare != nil {
			sh := cr.DeductibleShare
			base = c.res.SetlInfo.MedfeeSumamt.Mul(sh.Ratio, c.rnd)
			base = money.Max(sh.Min, base)
			if sh.Max > 0 {
				base = money.Min(sh.Max, base)
			}
		} else if v, ok := cr.DeductibleByScope[c.in.Visit.CrossRegion.Scope]; ok {
			base = v
		} else if cr.Deductible != nil {
			base = *cr.Deductible
		}
	}
	c.dedBase = base
	counter := c.deductibleCounter()
	var due money.Fen
	if d.Unit == "year" {
		due = clampFen(base - acc.get(counter))
	} else if c.continuesStay() && !d.PerSegment {
		due = 0 // the stay's first settlement paid it
	} else {
		due = c.repeat(base, table)
		if from := c.in.Visit.TransferFromLevel; from > 0 {
			prev, ok := lookupFen(table, from)
			if !ok {
				return 0, yibao.FieldError("visit.transfer_from_level", "policy has no deductible for level %d", from)
			}
			due = clampFen(due - prev)
		}
	}
	if d.AnnualCap != nil {
		due = money.Min(due, clampFen(*d.AnnualCap-acc.get(counter)))
	}
	return due, nil
}

// continuesStay reports a later settlement of an inpatient stay that was
// already settled mid-stay: not a new admission.
func (c *calc) continuesStay() bool {
	return c.in.Visit.Type == Inpatient && c.in.Visit.StaySegment > 1
}

// admissionIndex is 1 for the first admission of the year.
func (c *calc) admissionIndex() int {
	if n := c.in.Visit.AdmissionIndex; n > 0 {
		return n
	}
	return c.in.Accumulators.Admissions + 1
}

// repeat applies the repeat-admission rules to the level amount.
func (c *calc) repeat(base money.Fen, table LevelFen) money.Fen {
	r := c.b.Deductible.Repeat
	if r == nil || c.in.Visit.Type != Inpatient {
		return base
	}
	n := c.admissionIndex()
	if r.ZeroFrom > 0 && n >= r.ZeroFrom {
		return 0
	}
	amt := base
	if sch, ok := r.Schedule[levelKey(c.level)]; ok && len(sch) > 0 {
		amt = sch[min(n, len(sch))-1]
	} else if sch, ok := r.Schedule["*"]; ok && len(sch) > 0 {
		amt = sch[min(n, len(sch))-1]
	}
	if len(r.Ratios) > 0 {
		amt = amt.Mul(r.Ratios[min(n, len(r.Ratios))-1], c.rnd)
	}
	if r.Compound != nil {
		for k := 1; k < n && k < 100; k++ {
			amt = amt.Mul(*r.Compound, c.rnd)
		}
	}
	if fl, ok := lookupFen(r.Floor, c.level); ok && amt < fl {
		amt = money.Min(fl, base)
	}
	return amt
}

// setAdjuster prepares the ratio adjustments for this person and visit.
func (c *calc) setAdjuster(rule *RatioRule) error {
	a := adjuster{personal: rule.BandsAre == "personal"}
	if ag := rule.Age; ag != nil {
		if c.in.Person.Age < 0 || c.in.Person.Age > 150 {
			return yibao.FieldError("person.age", "want 0…150, got %d", c.in.Person.Age)
		}
		a.fixed = true
		a.fixedR = rAdd(ag.Base, rMulInt(ag.PerYear, int64(c.in.Person.Age)))
		if !ag.Max.IsZero() && a.fixedR.Cmp(ag.Max) > 0 {
			a.fixedR = ag.Max
		}
		a.fixedR = rMin1(a.fixedR)
		a.personal = false
	}
	if rt := rule.Retiree; rt != nil && c.in.Person.Category == "retired" {
		if rt.Plus != nil {
			a.plus = *rt.Plus
		}
		if rt.PersonalFactor != nil {
			a.hasFactor, a.factor = true, *rt.PersonalFactor
		}
	}
	if c.cross != nil && c.cross.RatioCut != nil {
		a.cut = *c.cross.RatioCut
	}
	c.adj = a
	return nil
}

// fundPayType is the setldetail code of the scheme's basic fund.
func (s *Scheme) fundPayType(insutype string) string {
	if s.FundPayType != "" {
		return s.FundPayType
	}
	if insutype == "310" {
		return "310100"
	}
	return insutype + "100"
}

// capRooms returns what is left under the tightest expense cap and fund cap
// that apply (−1 = no such cap).
func (c *calc) capRooms() (expRoom, fundRoom money.Fen) {
	expRoom, fundRoom = -1, -1
	for i := range c.b.Caps {
		cp := &c.b.Caps[i]
		if !c.capApplies(cp) {
			continue
		}
		room := clampFen(cp.Amount - c.in.Accumulators.get(cp.counter()))
		if cp.Kind == "expense" {
			if expRoom < 0 || room < expRoom {
				expRoom = room
			}
		} else if fundRoom < 0 || room < fundRoom {
			fundRoom = room
		}
	}
	return expRoom, fundRoom
}

// recordCaps adds this settlement to every applicable cap's counter.
func (c *calc) recordCaps() {
	for i := range c.b.Caps {
		cp := &c.b.Caps[i]
		if !c.capApplies(cp) {
			continue
		}
		if cp.Kind == "expense" {
			c.delta[cp.counter()] = c.consumed
		} else {
			c.delta[cp.counter()] = c.hifp
		}
	}
}

// ratioBands picks the ratio rule for the person, prepares its adjustments
// and returns the bands of the visit's level (a flat ratio becomes one band
// stored in flat).
func (c *calc) ratioBands(flat *[1]Band) ([]Band, *RatioRule, error) {
	rule := &c.b.Ratio
	if r, ok := pickGroup(&c.in.Person, rule.ByGroup); ok {
		rule = r
	}
	if err := c.setAdjuster(rule); err != nil {
		return nil, nil, err
	}
	if bands, ok := lookupBands(rule.Bands, c.level); ok {
		return bands, rule, nil
	}
	r, ok := lookupRatio(rule.ByLevel, c.level)
	if !ok && rule.Age == nil {
		return nil, nil, yibao.FieldError("visit.level", "policy has no ratio for %s level %d", c.in.Visit.Type, c.level)
	}
	flat[0] = Band{Ratio: r}
	return flat[:], rule, nil
}
