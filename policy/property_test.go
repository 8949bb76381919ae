package policy

import (
	"math/rand/v2"
	"testing"

	"yibao/money"
)

// checkInvariants asserts what must hold for every result.
func checkInvariants(t *testing.T, p *Policy, in *Input, r *Result) {
	t.Helper()
	si := &r.SetlInfo
	legs := []money.Fen{si.MedfeeSumamt, si.FulamtOwnpayAmt, si.OverlmtSelfpay, si.PreselfpayAmt, si.InscpScpAmt,
		si.ActPayDedc, si.HifpPay, si.CvlservPay, si.HifesPay, si.HifmiPay, si.HifobPay, si.MafPay, si.OthPay,
		si.FundPaySumamt, si.PsnPartAmt, si.AcctPay, si.PsnCashPay, si.HospPartAmt, si.AcctMulaidPay}
	for i, l := range legs {
		if l < 0 {
			t.Fatalf("leg %d negative: %+v", i, si)
		}
	}
	if si.Balc < 0 && in.Accumulators.AccountBalance >= 0 {
		t.Fatalf("balance went negative: %s", si.Balc)
	}
	fund := si.HifpPay + si.CvlservPay + si.HifesPay + si.HifmiPay + si.HifobPay + si.MafPay + si.OthPay
	if fund != si.FundPaySumamt {
		t.Fatalf("fund legs %s ≠ fund_pay_sumamt %s", fund, si.FundPaySumamt)
	}
	if fund+si.AcctPay+si.PsnCashPay != si.MedfeeSumamt {
		t.Fatalf("legs %s + %s + %s ≠ bill %s", fund, si.AcctPay, si.PsnCashPay, si.MedfeeSumamt)
	}
	if si.PsnPartAmt != si.MedfeeSumamt-si.FundPaySumamt || si.PsnPartAmt != si.AcctPay+si.PsnCashPay {
		t.Fatalf("psn_part_amt %s inconsistent", si.PsnPartAmt)
	}
	if si.FulamtOwnpayAmt+si.OverlmtSelfpay+si.PreselfpayAmt+si.InscpScpAmt != si.MedfeeSumamt {
		t.Fatalf("line classes do not add up to the bill")
	}
	var lineSum money.Fen
	for _, l := range r.Lines {
		if l.FulamtOwnpayAmt+l.OverlmtAmt+l.PreselfpayAmt+l.InscpScpAmt != l.Amount {
			t.Fatalf("line %s does not add up", l.ID)
		}
		lineSum += l.Amount
	}
	if lineSum != si.MedfeeSumamt {
		t.Fatalf("lines %s ≠ bill %s", lineSum, si.MedfeeSumamt)
	}
	if si.AcctMulaidPay > si.AcctPay {
		t.Fatalf("mutual aid above acct_pay")
	}
	if own := si.AcctPay - si.AcctMulaidPay; own > money.Max(in.Accumulators.AccountBalance, 0) {
		t.Fatalf("own account paid %s above balance %s", own, in.Accumulators.AccountBalance)
	}
	var detailFunds, detailAcct money.Fen
	for _, d := range r.SetlDetail {
		if d.FundPayamt < 0 {
			t.Fatalf("negative setldetail %+v", d)
		}
		if d.FundPayType == "310200" {
			detailAcct += d.FundPayamt
		} else {
			detailFunds += d.FundPayamt
		}
	}
	if detailFunds != si.FundPaySumamt || detailAcct != si.AcctPay {
		t.Fatalf("setldetail funds %s / acct %s ≠ %s / %s", detailFunds, detailAcct, si.FundPaySumamt, si.AcctPay)
	}
	checkCaps(t, p, in, r)
}

// checkCaps asserts that no cap is exceeded given the accumulators.
func checkCaps(t *testing.T, p *Policy, in *Input, r *Result) {
	t.Helper()
	s := p.Schemes[in.Person.Insutype]
	b, _ := s.benefit(in.Visit.Type)
	c := calc{in: in}
	after := func(name string) money.Fen { return in.Accumulators.get(name) + r.Accumulators.Delta[name] }
	for i := range b.Caps {
		cp := &b.Caps[i]
		if !c.capApplies(cp) {
			continue
		}
		before := in.Accumulators.get(cp.counter())
		if a := after(cp.counter()); a > money.Max(cp.Amount, before) {
			t.Fatalf("cap %s %s exceeded: %s → %s", cp.counter(), cp.Amount, before, a)
		}
	}
	layer := func(capAmt money.Fen, counter, def string) {
		name := orDefault(counter, def)
		if capAmt > 0 && after(name) > money.Max(capAmt, in.Accumulators.get(name)) {
			t.Fatalf("layer cap %s %s exceeded: %s", name, capAmt, after(name))
		}
	}
	if la := s.LargeAmount; la != nil {
		layer(la.AnnualCap, la.PaidCounter, CounterLAPaid)
	}
	if cs := s.CivilServant; cs != nil {
		layer(cs.AnnualCap, cs.PaidCounter, CounterCvlPaid)
	}
	if ci := s.CriticalIllness; ci != nil && (ci.Special == nil || !ci.Special.NoCap || !anyGroup(&in.Person, ci.Special.Groups)) {
		layer(ci.AnnualCap, ci.PaidCounter, CounterCIPaid)
	}
	if as := s.Assistance; as != nil {
		if rule, ok := c.assistRule(as); ok {
			layer(rule.AnnualCap, "", CounterMAFPaid)
		}
		if as.Tilt != nil {
			layer(as.Tilt.AnnualCap, "", CounterMAFTiltPaid)
		}
	}
	if dd := b.Deductible.AnnualCap; dd != nil {
		layer(*dd, b.Deductible.Counter, CounterDeductible)
	}
}

func rfen(r *rand.Rand, max int64) money.Fen { return money.Fen(r.Int64N(max + 1)) }

func rratio(r *rand.Rand) money.Ratio { return money.MustRatio(r.Int64N(101), 100) }

func ptr[T any](v T) *T { return &v }

func randBands(r *rand.Rand, n int) []Band {
	bs := make([]Band, n)
	var from money.Fen
	for i := range bs {
		bs[i] = Band{From: from, Ratio: rratio(r)}
		from += 1 + rfen(r, 3_000_000)
	}
	return bs
}

// randPolicy builds a random valid one-scheme policy.
func randPolicy(r *rand.Rand) *Policy {
	b := &Benefit{
		Deductible: Deductible{ByLevel: LevelFen{"*": rfen(r, 200_000)}},
		Ratio:      RatioRule{ByLevel: map[string]money.Ratio{"*": rratio(r)}},
	}
	if r.IntN(2) == 0 {
		b.Deductible.Unit = "year"
	}
	if r.IntN(3) == 0 {
		b.Deductible.Repeat = &Repeat{Ratios: []money.Ratio{money.One, rratio(r)}, Floor: LevelFen{"*": rfen(r, 50_000)}}
	}
	if r.IntN(3) == 0 {
		b.Deductible.AnnualCap = ptr(rfen(r, 300_000))
	}
	if r.IntN(2) == 0 {
		b.Ratio.Bands = map[string][]Band{"*": randBands(r, 1+r.IntN(4))}
		if r.IntN(2) == 0 {
			b.Ratio.BandBasis = "annual"
		}
		if r.IntN(3) == 0 {
			b.Ratio.BandsAre = "personal"
		}
	}
	if r.IntN(2) == 0 {
		b.Ratio.Retiree = &RetireeUplift{Plus: ptr(money.Percent(r.Int64N(10)))}
	}
	for range r.IntN(3) {
		kind := "fund"
		if r.IntN(2) == 0 {
			kind = "expense"
		}
		period := "year"
		if r.IntN(4) == 0 {
			period = "month"
		}
		b.Caps = append(b.Caps, Cap{Kind: kind, Period: period, Amount: rfen(r, 5_000_000)})
	}
	s := &Scheme{BSelfPay: money.Percent(r.Int64N(31)), Inpatient: b, GeneralOutpatient: b}
	if r.IntN(2) == 0 {
		s.Account = &AccountRule{FullOwnPay: r.IntN(2) == 0, OverLimit: r.IntN(2) == 0, FamilyMutualAid: r.IntN(2) == 0}
	}
	if r.IntN(2) == 0 {
		s.LargeAmount = &LargeAmount{Bands: randBands(r, 1+r.IntN(3)), AnnualCap: rfen(r, 3_000_000)}
	}
	if r.IntN(3) == 0 {
		s.CivilServant = &CivilServant{Groups: []string{"low_income"}, Ratio: rratio(r), AnnualCap: rfen(r, 500_000), IncludeDeductible: r.IntN(2) == 0}
	}
	if r.IntN(2) == 0 {
		s.LargeAmount = &LargeAmount{Bands: randBands(r, 1+r.IntN(3)), AnnualCap: rfen(r, 3_000_000), Threshold: rfen(r, 1_000_000)}
		if r.IntN(2) == 0 {
			s.LargeAmount.BandsOn = "excess"
		}
	}
	if r.IntN(2) == 0 {
		ci := &CriticalIllness{Threshold: rfen(r, 2_000_000), Bands: randBands(r, 1+r.IntN(3)), AnnualCap: rfen(r, 5_000_000),
			IncludeDeductible: r.IntN(2) == 0, IncludePreSelfPay: r.IntN(2) == 0}
		if r.IntN(2) == 0 {
			ci.BandsOn = "excess"
		}
		if r.IntN(2) == 0 {
			ci.Special = &Special{Groups: []string{"low_income"}, ThresholdShare: money.Percent(50), BandPlus: money.Percent(5), NoCap: r.IntN(2) == 0}
		}
		s.CriticalIllness = ci
	}
	if r.IntN(2) == 0 {
		s.Assistance = &Assistance{ByGroup: map[string]*AssistanceRule{
			"low_income": {Ratio: rratio(r), Threshold: rfen(r, 300_000), AnnualCap: rfen(r, 2_000_000), IncludePreSelfPay: r.IntN(2) == 0},
		}}
		if r.IntN(2) == 0 {
			s.Assistance.Tilt = &Tilt{Threshold: rfen(r, 300_000), Ratio: rratio(r), AnnualCap: rfen(r, 1_000_000)}
		}
	}
	if r.IntN(2) == 0 {
		s.CrossRegion = &CrossRegion{ByStatus: map[string]*CrossRule{
			Unregistered: {RatioCut: ptr(money.Percent(r.Int64N(30))), FirstPay: ptr(money.Percent(r.Int64N(40)))},
			Temporary:    {DeductibleShare: &ShareDeductible{Ratio: money.Percent(20), Min: 200_000, Max: 1_000_000}},
		}}
	}
	p := &Policy{Version: "rand", Admdvs: "370100", EffectiveFrom: "2026-01-01", Schemes: map[string]*Scheme{"310": s}}
	return p
}

func randInput(r *rand.Rand) *Input {
	n := 1 + r.IntN(25)
	lines := make([]Line, n)
	classes := []string{"A", "B", "C", "甲", "乙"}
	for i := range lines {
		l := Line{ID: "x", Class: classes[r.IntN(len(classes))], UnitPrice: rfen(r, 2_000_000)}
		q := money.MustRatio(1+r.Int64N(40), 1+r.Int64N(4))
		l.Quantity = &q
		if r.IntN(3) == 0 {
			l.PriceCap = ptr(rfen(r, 2_000_000))
		}
		if r.IntN(5) == 0 {
			l.SelfPay = ptr(rratio(r))
		}
		lines[i] = l
	}
	cats := []string{"active", "retired"}
	statuses := []string{Local, Unregistered, Temporary, LongTerm}
	types := []string{Inpatient, GeneralOutpatient, Emergency}
	in := &Input{
		Person: Person{Insutype: "310", Category: cats[r.IntN(2)], Age: r.IntN(100)},
		Visit: Visit{Type: types[r.IntN(len(types))], Level: 1 + r.IntN(3), SettlementDate: "2026-06-01",
			CrossRegion: CrossRegionInfo{Status: statuses[r.IntN(len(statuses))]}},
		Accumulators: Accumulators{Admissions: r.IntN(4), AccountBalance: rfen(r, 1_000_000), Counters: map[string]money.Fen{}},
		Lines:        lines,
	}
	if r.IntN(2) == 0 {
		in.Person.Groups = []string{"low_income"}
	}
	if r.IntN(3) == 0 {
		in.FamilyAccount = &FamilyAccount{Balance: rfen(r, 500_000)}
	}
	for _, k := range []string{CounterDeductible, CounterFund, CounterExpense, "fund.month", "expense.month", CounterInscp,
		CounterLAPaid, CounterLABase, CounterCvlPaid, CounterCIBase, CounterCIPaid, CounterMAFBase, CounterMAFPaid, CounterMAFTiltPaid} {
		if r.IntN(2) == 0 {
			in.Accumulators.Counters[k] = rfen(r, 6_000_000)
		}
	}
	return in
}

func TestPropertiesRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(20260101, 4))
	for i := range 20000 {
		p := randPolicy(r)
		if err := p.Validate(); err != nil {
			t.Fatalf("policy %d invalid: %v", i, err)
		}
		in := randInput(r)
		res, err := Calc(p, in, Options{Explain: i%10 == 0})
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		checkInvariants(t, p, in, res)
		again, _ := Calc(p, in, Options{Explain: i%10 == 0})
		if again.SetlInfo != res.SetlInfo {
			t.Fatalf("case %d: not deterministic", i)
		}
	}
}

// apply returns the accumulators after a settlement.
func apply(a Accumulators, r *Result) Accumulators {
	out := Accumulators{Admissions: a.Admissions + r.Accumulators.Admissions, AccountBalance: r.SetlInfo.Balc, Counters: map[string]money.Fen{}}
	for k, v := range a.Counters {
		out.Counters[k] = v
	}
	for k, v := range r.Accumulators.After {
		out.Counters[k] = v
	}
	return out
}

// TestSplitNeverBeatsCap: settling a bill as two visits never lets a
// capped fund pay more than the cap allows.
func TestSplitNeverBeatsCap(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for i := range 10000 {
		p := randPolicy(r)
		s := p.Schemes["310"]
		capAmt := rfen(r, 3_000_000)
		s.Inpatient.Caps = []Cap{{Kind: "fund", Amount: capAmt}}
		if s.LargeAmount != nil && s.LargeAmount.AnnualCap == 0 {
			s.LargeAmount.AnnualCap = 1
		}
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		in := randInput(r)
		in.Visit.Type = Inpatient
		in.Accumulators.Counters[CounterFund] = rfen(r, int64(capAmt))
		k := r.IntN(len(in.Lines) + 1)
		first, second := *in, *in
		first.Lines, second.Lines = in.Lines[:k], in.Lines[k:]
		r1, err := Calc(p, &first, Options{})
		if err != nil {
			t.Fatal(err)
		}
		second.Accumulators = apply(in.Accumulators, r1)
		r2, err := Calc(p, &second, Options{})
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, p, &second, r2)
		room := capAmt - in.Accumulators.Counters[CounterFund]
		if got := r1.SetlInfo.HifpPay + r2.SetlInfo.HifpPay; got > room {
			t.Fatalf("case %d: split visits paid %s from the fund, room was %s", i, got, room)
		}
		whole, _ := Calc(p, in, Options{})
		if whole.SetlInfo.HifpPay > room {
			t.Fatalf("case %d: whole bill paid %s, room %s", i, whole.SetlInfo.HifpPay, room)
		}
	}
}
