package policy

import (
	"fmt"

	"yibao/money"
)

// explainer collects the bilingual steps; it exists only when asked for.
type explainer struct {
	steps []Step
}

func (e *explainer) add(code, zh, en string) {
	e.steps = append(e.steps, Step{Code: code, ZH: zh, EN: en})
}

func pct(r money.Ratio) string {
	return rMulInt(r, 100).String() + "%"
}

func (e *explainer) classify(si *SetlInfo) {
	e.add("lines",
		fmt.Sprintf("医疗费总额 %s = 全自费 %s + 超限价自费 %s + 乙类先行自付 %s + 符合政策范围 %s",
			si.MedfeeSumamt, si.FulamtOwnpayAmt, si.OverlmtSelfpay, si.PreselfpayAmt, si.InscpScpAmt),
		fmt.Sprintf("bill total %s = full self-pay %s + over price cap %s + class-B pre-self-pay %s + policy range %s",
			si.MedfeeSumamt, si.FulamtOwnpayAmt, si.OverlmtSelfpay, si.PreselfpayAmt, si.InscpScpAmt))
}

func (e *explainer) noFund() {
	e.add("no_fund", "本类就诊统筹基金不支付", "the basic fund pays nothing for this visit type")
}

func (e *explainer) basic(c *calc, pos, expRoom, fundRoom money.Fen) {
	if c.firstPay > 0 {
		e.add("first_pay",
			fmt.Sprintf("异地就医（%s）个人先行自付 %s，余 %s 进入起付线", c.status, c.firstPay, c.c1),
			fmt.Sprintf("cross-region (%s) personal first-pay %s; %s goes on to the deductible", c.status, c.firstPay, c.c1))
	}
	d := &c.b.Deductible
	if d.Unit == "year" {
		used := c.in.Accumulators.get(c.deductibleCounter())
		e.add("deductible",
			fmt.Sprintf("起付线 %s，本年度已累计 %s，本次尚需 %s，实际支付起付线 %s", c.dedBase, used, c.dedDue, c.ded),
			fmt.Sprintf("deductible %s of which %s already met this year: %s still due, %s paid now", c.dedBase, used, c.dedDue, c.ded))
	} else if c.continuesStay() && !d.PerSegment {
		e.add("deductible",
			fmt.Sprintf("同一次住院的第%d次结算，起付线已在首次结算中支付，本次不再计起付线", c.in.Visit.StaySegment),
			fmt.Sprintf("settlement %d of the same stay: the deductible was paid at the stay's first settlement, none now", c.in.Visit.StaySegment))
	} else if c.in.Visit.Type == Inpatient {
		e.add("deductible",
			fmt.Sprintf("起付线（%d级医院，本年第%d次住院）%s，实际支付 %s", c.level, c.admissionIndex(), c.dedDue, c.ded),
			fmt.Sprintf("deductible (level %d, admission %d this year) %s, %s paid", c.level, c.admissionIndex(), c.dedDue, c.ded))
	} else {
		e.add("deductible",
			fmt.Sprintf("本次就诊起付线（%d级）%s，实际支付 %s", c.level, c.dedDue, c.ded),
			fmt.Sprintf("per-visit deductible (level %d) %s, %s paid", c.level, c.dedDue, c.ded))
	}
	if expRoom >= 0 {
		e.add("expense_cap",
			fmt.Sprintf("纳入统筹的费用限额尚余 %s", expRoom),
			fmt.Sprintf("eligible-expense cap: %s left", expRoom))
	}
	if fundRoom >= 0 {
		e.add("fund_cap",
			fmt.Sprintf("统筹基金最高支付限额尚余 %s", fundRoom),
			fmt.Sprintf("fund cap: %s left", fundRoom))
	}
	e.add("basic",
		fmt.Sprintf("进入统筹的费用 %s（区间 %s–%s），统筹基金支付 %s，起始比例 %s，按比例自付 %s，超限额 %s",
			c.consumed, pos+c.ded, pos+c.ded+c.consumed, c.hifp, pct(c.res.SetlInfo.PoolPropSelfpay), c.consumed-c.hifp, c.overCap),
		fmt.Sprintf("eligible expense %s (positions %s–%s): basic fund pays %s at a starting ratio of %s; coinsurance %s; over the caps %s",
			c.consumed, pos+c.ded, pos+c.ded+c.consumed, c.hifp, pct(c.res.SetlInfo.PoolPropSelfpay), c.consumed-c.hifp, c.overCap))
}

func (e *explainer) largeAmount(b0, base, lim, paid money.Fen) {
	e.add("large_amount",
		fmt.Sprintf("大额医疗补助：超出基本封顶的费用 %s（本年此前 %s），支付 %s", base, b0, paid),
		fmt.Sprintf("large-amount layer: %s beyond the basic caps (%s earlier this year), pays %s", base, b0, paid))
}

func (e *explainer) critical(b0, base, thr, lim, paid money.Fen) {
	e.add("critical_illness",
		fmt.Sprintf("大病保险：本次计入 %s，本年累计由 %s 至 %s，起付标准 %s，支付 %s", base, b0, b0+base, thr, paid),
		fmt.Sprintf("critical illness: %s counted, cumulative %s → %s, threshold %s, pays %s", base, b0, b0+base, thr, paid))
}

func (e *explainer) assistance(r *AssistanceRule, b0, base, main, tilt money.Fen) {
	e.add("assistance",
		fmt.Sprintf("医疗救助：救助基数 %s（本年此前 %s），起付 %s，比例 %s，支付 %s；倾斜救助 %s", base, b0, r.Threshold, pct(r.Ratio), main, tilt),
		fmt.Sprintf("medical assistance: base %s (%s earlier this year), threshold %s, ratio %s, pays %s; second pass %s", base, b0, r.Threshold, pct(r.Ratio), main, tilt))
}

func (e *explainer) account(allowed, own, fam money.Fen, si *SetlInfo) {
	e.add("account",
		fmt.Sprintf("个人账户可支付 %s：本人账户支付 %s（余额 %s），家庭共济支付 %s", allowed, own, si.Balc, fam),
		fmt.Sprintf("personal account may pay %s: own account %s (balance after %s), family mutual aid %s", allowed, own, si.Balc, fam))
}

func (e *explainer) total(si *SetlInfo) {
	e.add("total",
		fmt.Sprintf("基金支付合计 %s，个人负担 %s = 个人账户 %s + 现金 %s", si.FundPaySumamt, si.PsnPartAmt, si.AcctPay, si.PsnCashPay),
		fmt.Sprintf("funds pay %s in total; the person bears %s = account %s + cash %s", si.FundPaySumamt, si.PsnPartAmt, si.AcctPay, si.PsnCashPay))
}
