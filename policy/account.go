package policy

import "yibao/money"

func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

// personal splits the person's part between the accounts and cash.
func (c *calc) personal() {
	si := &c.res.SetlInfo
	bd := &c.res.Breakdown
	// Assistance relieves the in-range burden first, then 先行自付.
	inRange := c.inRangeBurden() - c.ci
	mafIn := money.Min(c.maf, inRange)
	bd.InRangeLeft = inRange - mafIn
	bd.PreSelfPayLeft = si.PreselfpayAmt - (c.maf - mafIn)

	si.FundPaySumamt = si.HifpPay + si.CvlservPay + si.HifesPay + si.HifmiPay + si.HifobPay + si.MafPay + si.OthPay
	si.PsnPartAmt = si.MedfeeSumamt - si.FundPaySumamt
	si.Balc = c.in.Accumulators.AccountBalance
	c.res.Accumulators.AcctBalc = si.Balc

	rule := c.b.Account
	if rule == nil {
		rule = c.s.Account
	}
	if rule == nil || !boolOr(c.in.UseAccount, true) {
		si.PsnCashPay = si.PsnPartAmt
		return
	}
	var allowed money.Fen
	if boolOr(rule.InRange, true) {
		allowed += bd.InRangeLeft
	}
	if boolOr(rule.PreSelfPay, true) {
		allowed += bd.PreSelfPayLeft
	}
	if rule.OverLimit {
		allowed += si.OverlmtSelfpay
	}
	if rule.FullOwnPay {
		allowed += si.FulamtOwnpayAmt
	}
	allowed = money.Min(allowed, si.PsnPartAmt)
	var own money.Fen
	if boolOr(rule.Own, true) {
		own = money.Min(allowed, clampFen(si.Balc))
	}
	var fam money.Fen
	if rule.FamilyMutualAid && c.in.FamilyAccount != nil {
		fam = money.Min(allowed-own, clampFen(c.in.FamilyAccount.Balance))
	}
	si.AcctPay = own + fam
	si.AcctMulaidPay = fam
	si.PsnCashPay = si.PsnPartAmt - si.AcctPay
	si.Balc -= own
	c.res.Accumulators.AcctBalc = si.Balc
	bd.AccountOwn = own
	if si.AcctPay > 0 {
		c.detail("310200", allowed, 0, si.AcctPay)
	}
	if c.ex != nil {
		c.ex.account(allowed, own, fam, si)
	}
}

// finish fills the accumulator change.
func (c *calc) finish() {
	ac := &c.res.Accumulators
	if c.in.Visit.Type == Inpatient && !c.continuesStay() {
		ac.Admissions = 1
	}
	ac.Delta = c.delta
	ac.After = make(map[string]money.Fen, len(c.delta))
	for k, v := range c.delta {
		ac.After[k] = c.in.Accumulators.get(k) + v
	}
	if c.ex != nil {
		c.ex.total(&c.res.SetlInfo)
	}
}
