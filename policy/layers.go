package policy

import (
	"fmt"

	"yibao/money"
)

// Layer names (Benefit.Layers).
const (
	LayerLargeAmount     = "large_amount"
	LayerCriticalIllness = "critical_illness"
	LayerAssistance      = "assistance"
	LayerCivilServant    = "civil_servant"
)

func (c *calc) layerOn(name string) bool {
	if c.b.Layers == nil {
		return true
	}
	for _, l := range c.b.Layers {
		if l == name {
			return true
		}
	}
	return false
}

// limit returns the room under an annual cap (−1 = no cap).
func (c *calc) limit(capAmt money.Fen, counter string) money.Fen {
	if capAmt <= 0 {
		return -1
	}
	return clampFen(capAmt - c.in.Accumulators.get(counter))
}

// layers runs the supplementary, critical-illness and assistance layers.
func (c *calc) layers() {
	c.largeAmount()
	c.civilServant()
	c.criticalIllness()
	c.assistance()
}

// largeAmount pays a share of the eligible expense beyond the basic caps.
func (c *calc) largeAmount() {
	la := c.s.LargeAmount
	if la == nil || !c.layerOn(LayerLargeAmount) || c.overCap == 0 {
		return
	}
	baseC, paidC := orDefault(la.BaseCounter, CounterLABase), orDefault(la.PaidCounter, CounterLAPaid)
	b0 := c.in.Accumulators.get(baseC)
	lim := c.limit(la.AnnualCap, paidC)
	var none adjuster
	c.la = cumulative(la.Bands, la.BandsOn, la.Threshold, b0, c.overCap, lim, &none, c.rnd)
	c.delta[baseC] = c.overCap
	c.delta[paidC] = c.la
	c.res.Breakdown.LargeAmountIn = c.overCap
	c.setField(la.Field, "hifob_pay", c.la)
	c.detail(orDefault(la.FundPayType, "330100"), c.overCap, lim, c.la)
	if c.ex != nil {
		c.ex.largeAmount(b0, c.overCap, lim, c.la)
	}
}

// cumulative pays an annual layer on the cumulative base b0 → b0+base:
// only the part above the threshold is paid, with band edges absolute or
// measured from the threshold ("excess").
func cumulative(bands []Band, on string, thr, b0, base, lim money.Fen, adj *adjuster, rnd money.Rounding) money.Fen {
	var offset money.Fen
	if on == "excess" {
		offset = thr
	}
	lo, hi := money.Max(b0, thr), money.Max(b0+base, thr)
	paid, _ := bandPay(bands, offset, lo, hi, lim, adj, rnd)
	return paid
}

// civilServant pays the civil-servant subsidy.
func (c *calc) civilServant() {
	cs := c.s.CivilServant
	if cs == nil || !c.layerOn(LayerCivilServant) || !anyGroup(&c.in.Person, cs.Groups) {
		return
	}
	base := c.inRangeBurden()
	if !cs.IncludeDeductible {
		base -= c.ded
	}
	base = clampFen(base)
	paidC := orDefault(cs.PaidCounter, CounterCvlPaid)
	lim := c.limit(cs.AnnualCap, paidC)
	c.cvl = base.Mul(cs.Ratio, c.rnd)
	if lim >= 0 {
		c.cvl = money.Min(c.cvl, lim)
	}
	c.delta[paidC] = c.cvl
	c.res.SetlInfo.CvlservPay += c.cvl
	c.detail(orDefault(cs.FundPayType, "320100"), base, lim, c.cvl)
	if c.ex != nil {
		c.ex.add("civil_servant",
			fmt.Sprintf("公务员医疗补助：基数 %s，比例 %s，支付 %s", base, pct(cs.Ratio), c.cvl),
			fmt.Sprintf("civil-servant subsidy: base %s at %s pays %s", base, pct(cs.Ratio), c.cvl))
	}
}

// inRangeBurden is the policy-range amount the person still bears after
// the basic fund and the supplementary layer.
func (c *calc) inRangeBurden() money.Fen {
	return c.firstPay + c.ded + c.elig - c.hifp - c.la - c.cvl
}

// criticalIllness pays the 大病 layer on the year's cumulative burden.
func (c *calc) criticalIllness() {
	ci := c.s.CriticalIllness
	if ci == nil || !c.layerOn(LayerCriticalIllness) {
		return
	}
	base := c.inRangeBurden()
	if !ci.IncludeDeductible {
		base -= c.ded
	}
	if ci.IncludePreSelfPay {
		base += c.res.SetlInfo.PreselfpayAmt
	}
	base = clampFen(base)
	if base == 0 {
		return
	}
	baseC, paidC := orDefault(ci.BaseCounter, CounterCIBase), orDefault(ci.PaidCounter, CounterCIPaid)
	b0 := c.in.Accumulators.get(baseC)
	thr := ci.Threshold
	lim := c.limit(ci.AnnualCap, paidC)
	var adj adjuster
	if sp := ci.Special; sp != nil && anyGroup(&c.in.Person, sp.Groups) {
		thr = thr.Mul(sp.ThresholdShare, c.rnd)
		adj.plus = sp.BandPlus
		if sp.NoCap {
			lim = -1
		}
	}
	c.ci = cumulative(ci.Bands, ci.BandsOn, thr, b0, base, lim, &adj, c.rnd)
	c.delta[baseC] = base
	c.delta[paidC] = c.ci
	c.res.Breakdown.CriticalBase = base
	c.setField(ci.Field, "hifmi_pay", c.ci)
	c.detail(orDefault(ci.FundPayType, "390200"), base, lim, c.ci)
	if c.ex != nil {
		c.ex.critical(b0, base, thr, lim, c.ci)
	}
}

func anyGroup(p *Person, groups []string) bool {
	for _, g := range groups {
		if p.InGroup(g) {
			return true
		}
	}
	return false
}

// assistance pays medical assistance for the person's group, then the
// optional second (倾斜) pass.
func (c *calc) assistance() {
	as := c.s.Assistance
	if as == nil || !c.layerOn(LayerAssistance) {
		return
	}
	rule, ok := c.assistRule(as)
	if !ok {
		return
	}
	base := c.inRangeBurden() - c.ci
	if rule.IncludePreSelfPay {
		base += c.res.SetlInfo.PreselfpayAmt
	}
	base = clampFen(base)
	acc := &c.in.Accumulators
	b0 := acc.get(CounterMAFBase)
	over := clampFen(b0+base-rule.Threshold) - clampFen(b0-rule.Threshold)
	main := over.Mul(rule.Ratio, c.rnd)
	lim := c.limit(rule.AnnualCap, CounterMAFPaid)
	if lim >= 0 {
		main = money.Min(main, lim)
	}
	var tilt money.Fen
	tiltLim := money.Fen(-1)
	if t := as.Tilt; t != nil && (len(t.Groups) == 0 || anyGroup(&c.in.Person, t.Groups)) {
		tilt = clampFen(base-main-t.Threshold).Mul(t.Ratio, c.rnd)
		tiltLim = c.limit(t.AnnualCap, CounterMAFTiltPaid)
		if tiltLim >= 0 {
			tilt = money.Min(tilt, tiltLim)
		}
		c.delta[CounterMAFTiltPaid] = tilt
	}
	c.maf = main + tilt
	c.delta[CounterMAFBase] = base
	c.delta[CounterMAFPaid] = main
	c.res.Breakdown.AssistanceBase = base
	c.res.SetlInfo.MafPay += c.maf
	if c.maf > 0 || base > 0 {
		c.detail(orDefault(as.FundPayType, "610100"), base, lim, c.maf)
	}
	if c.ex != nil {
		c.ex.assistance(rule, b0, base, main, tilt)
	}
}

// assistRule picks the rule of the person's highest-priority group.
func (c *calc) assistRule(as *Assistance) (*AssistanceRule, bool) {
	var best *AssistanceRule
	try := func(g string) {
		if r := as.ByGroup[g]; r != nil && (best == nil || r.Priority > best.Priority) {
			best = r
		}
	}
	try(c.in.Person.Category)
	for _, g := range c.in.Person.Groups {
		try(g)
	}
	return best, best != nil
}

// setField adds amt to the setlinfo field a layer reports in.
func (c *calc) setField(field, def string, amt money.Fen) {
	si := &c.res.SetlInfo
	switch orDefault(field, def) {
	case "hifmi_pay":
		si.HifmiPay += amt
	case "hifob_pay":
		si.HifobPay += amt
	case "cvlserv_pay":
		si.CvlservPay += amt
	case "hifes_pay":
		si.HifesPay += amt
	default:
		si.OthPay += amt
	}
}

// detail adds a setldetail row, merging rows of the same fund type.
func (c *calc) detail(code string, base, lim, paid money.Fen) {
	for i := range c.res.SetlDetail {
		if d := &c.res.SetlDetail[i]; d.FundPayType == code {
			d.FundPayamt += paid
			d.InscpScpAmt += base
			return
		}
	}
	if lim < 0 {
		lim = 0
	}
	c.res.SetlDetail = append(c.res.SetlDetail, SetlDetail{
		FundPayType: code, FundPayTypeName: fundName(code), InscpScpAmt: base, CrtPaybLmtAmt: lim, FundPayamt: paid,
	})
}

// fundName names the fund_pay_type codes of the national dictionary.
func fundName(code string) string {
	switch code {
	case "310100":
		return "职工基本医疗保险统筹基金"
	case "310200":
		return "职工基本医疗保险个人账户基金"
	case "320100":
		return "公务员医疗补助基金"
	case "330100":
		return "大额医疗费用补助基金"
	case "340100":
		return "离休人员医疗保障基金"
	case "370100":
		return "企业补充医疗保险基金"
	case "390100":
		return "城乡居民基本医疗保险基金"
	case "390200":
		return "城乡居民大病医疗保险基金"
	case "610100":
		return "医疗救助基金"
	case "999996":
		return "医院垫付/负担"
	case "999997":
		return "其他基金"
	}
	return code
}
