package policy

import "yibao/money"

// SetlInfo carries the NHSA setlinfo money figures (2206/2207/2303/2304).
//
// Invariants: medfee_sumamt = fulamt_ownpay_amt + overlmt_selfpay +
// preselfpay_amt + inscp_scp_amt; fund_pay_sumamt = hifp_pay + cvlserv_pay +
// hifes_pay + hifmi_pay + hifob_pay + maf_pay + oth_pay; psn_part_amt =
// medfee_sumamt − fund_pay_sumamt = acct_pay + psn_cash_pay (the calculator
// never assigns a hospital-borne part, so hosp_part_amt is 0); acct_pay
// includes acct_mulaid_pay.
type SetlInfo struct {
	Insutype        string      `json:"insutype"`
	MedfeeSumamt    money.Fen   `json:"medfee_sumamt"`
	FulamtOwnpayAmt money.Fen   `json:"fulamt_ownpay_amt"`
	OverlmtSelfpay  money.Fen   `json:"overlmt_selfpay"`
	PreselfpayAmt   money.Fen   `json:"preselfpay_amt"`
	InscpScpAmt     money.Fen   `json:"inscp_scp_amt"`
	ActPayDedc      money.Fen   `json:"act_pay_dedc"`
	HifpPay         money.Fen   `json:"hifp_pay"`
	PoolPropSelfpay money.Ratio `json:"pool_prop_selfpay"`
	CvlservPay      money.Fen   `json:"cvlserv_pay"`
	HifesPay        money.Fen   `json:"hifes_pay"`
	HifmiPay        money.Fen   `json:"hifmi_pay"`
	HifobPay        money.Fen   `json:"hifob_pay"`
	MafPay          money.Fen   `json:"maf_pay"`
	OthPay          money.Fen   `json:"oth_pay"`
	FundPaySumamt   money.Fen   `json:"fund_pay_sumamt"`
	PsnPartAmt      money.Fen   `json:"psn_part_amt"`
	AcctPay         money.Fen   `json:"acct_pay"`
	PsnCashPay      money.Fen   `json:"psn_cash_pay"`
	HospPartAmt     money.Fen   `json:"hosp_part_amt"`
	Balc            money.Fen   `json:"balc"`
	AcctMulaidPay   money.Fen   `json:"acct_mulaid_pay"`
}

// SetlDetail is one setldetail row (基金分项): a fund, the account or the
// hospital.
type SetlDetail struct {
	FundPayType     string    `json:"fund_pay_type"`
	FundPayTypeName string    `json:"fund_pay_type_name"`
	InscpScpAmt     money.Fen `json:"inscp_scp_amt"`
	CrtPaybLmtAmt   money.Fen `json:"crt_payb_lmt_amt"` // what was still payable before this settlement (0 = no limit)
	FundPayamt      money.Fen `json:"fund_payamt"`
}

// LineResult is the split of one fee line (the 2204/2301 result fields).
type LineResult struct {
	ID              string      `json:"feedetl_sn"`
	Amount          money.Fen   `json:"det_item_fee_sumamt"`
	SelfpayProp     money.Ratio `json:"selfpay_prop"`
	FulamtOwnpayAmt money.Fen   `json:"fulamt_ownpay_amt"`
	OverlmtAmt      money.Fen   `json:"overlmt_amt"`
	PreselfpayAmt   money.Fen   `json:"preselfpay_amt"`
	InscpScpAmt     money.Fen   `json:"inscp_scp_amt"`
}

// Breakdown names the parts of the personal burden that setlinfo folds
// together.
type Breakdown struct {
	FirstPay       money.Fen `json:"cross_region_first_pay"` // 异地个人先行自付
	Deductible     money.Fen `json:"deductible"`             // = act_pay_dedc
	Coinsurance    money.Fen `json:"coinsurance"`            // 按比例自付
	OverCap        money.Fen `json:"over_cap"`               // eligible expense beyond the basic caps
	LargeAmountIn  money.Fen `json:"large_amount_base"`      // what entered the supplementary layer
	CriticalBase   money.Fen `json:"critical_illness_base"`
	AssistanceBase money.Fen `json:"assistance_base"`
	InRangeLeft    money.Fen `json:"in_range_personal"` // in-range share the person still bears
	PreSelfPayLeft money.Fen `json:"preselfpay_personal"`
	AccountOwn     money.Fen `json:"acct_own_pay"`
	Level          int       `json:"level"`          // level whose rules were used
	CrossStatus    string    `json:"cross_status"`   // filing status the rules used
	DeductibleDue  money.Fen `json:"deductible_due"` // deductible before limiting to the amount
}

// AccumulatorChange is the delta and the new value of every counter the
// settlement touched.
type AccumulatorChange struct {
	Year       int                  `json:"year"`  // accounting year (its first month is year_start_month)
	Month      string               `json:"month"` // YYYY-MM of the basis date (for monthly caps)
	Admissions int                  `json:"admissions_delta"`
	Delta      map[string]money.Fen `json:"delta"`
	After      map[string]money.Fen `json:"after"`
	AcctBalc   money.Fen            `json:"acct_balc"` // balance after
}

// Step is one line of the explanation, in Chinese and English.
type Step struct {
	Code string `json:"code"`
	ZH   string `json:"zh"`
	EN   string `json:"en"`
}

// Result is the outcome of one calculation.
type Result struct {
	PolicyVersion string            `json:"policy_version"`
	Admdvs        string            `json:"admdvs"`
	BasisDate     string            `json:"basis_date"`
	SetlInfo      SetlInfo          `json:"setlinfo"`
	SetlDetail    []SetlDetail      `json:"setldetail"`
	Lines         []LineResult      `json:"lines"`
	Breakdown     Breakdown         `json:"breakdown"`
	Accumulators  AccumulatorChange `json:"accumulators"`
	Explain       []Step            `json:"explain,omitempty"`
}
