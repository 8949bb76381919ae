package policy

import "yibao/money"

// Bounds on input amounts, far above any real bill, so that no sum can
// overflow int64 fen.
const (
	MaxAmount   money.Fen = 1e15 // 10 trillion yuan: counters, balances, policy amounts
	MaxLineFen  money.Fen = 1e10 // 100 million yuan per line and per unit price
	MaxLines              = 10000
	maxQuantity           = 1_000_000
)

// Input is everything one settlement depends on besides the policy.
type Input struct {
	Person        Person         `json:"person"`
	Visit         Visit          `json:"visit"`
	Accumulators  Accumulators   `json:"accumulators"`
	Lines         []Line         `json:"lines"`
	UseAccount    *bool          `json:"acct_used_flag,omitempty"` // default true
	FamilyAccount *FamilyAccount `json:"family_account,omitempty"` // 家庭共济: a linked member's account
}

// Person is the insured person as the calculator needs them.
type Person struct {
	Insutype string   `json:"insutype"`         // scheme: "310", "390", …
	Category string   `json:"category"`         // active, retired, resident, …
	Groups   []string `json:"groups,omitempty"` // low_income, extreme_poverty, near_poverty, child, elderly, tier1, …
	Age      int      `json:"age"`
}

// InGroup reports whether the person is in group g (Category counts too).
func (p *Person) InGroup(g string) bool {
	if p.Category == g {
		return true
	}
	for _, x := range p.Groups {
		if x == g {
			return true
		}
	}
	return false
}

// pickGroup returns the entry of m for the person's category, else for the
// first of the person's groups that m has.
func pickGroup[V any](p *Person, m map[string]V) (V, bool) {
	var zero V
	if len(m) == 0 {
		return zero, false
	}
	if v, ok := m[p.Category]; ok {
		return v, true
	}
	for _, g := range p.Groups {
		if v, ok := m[g]; ok {
			return v, true
		}
	}
	return zero, false
}

// Visit is the encounter being settled.
type Visit struct {
	Type              string          `json:"type"`  // general_outpatient, chronic_outpatient, emergency, inpatient, pharmacy
	Level             int             `json:"level"` // institution level 1/2/3 (0 = unrated)
	CrossRegion       CrossRegionInfo `json:"cross_region"`
	AdmissionIndex    int             `json:"admission_index,omitempty"`     // 1 = first admission this year; 0 = accumulators.admissions+1
	TransferFromLevel int             `json:"transfer_from_level,omitempty"` // transfer within one stay: pay only the deductible difference
	StaySegment       int             `json:"stay_segment,omitempty"`        // inpatient: 2+ = a later settlement of a stay already settled mid-stay (中途结算)
	AdmissionDate     string          `json:"admission_date,omitempty"`      // YYYY-MM-DD
	DischargeDate     string          `json:"discharge_date,omitempty"`
	SettlementDate    string          `json:"settlement_date"`
}

// CrossRegionInfo says where the person is treated relative to the
// insured region.
type CrossRegionInfo struct {
	Status string `json:"status,omitempty"` // local (default), long_term, referred, temporary, unregistered
	Scope  string `json:"scope,omitempty"`  // in_province, out_of_province
}

// Accumulators are the person's year-to-date figures for this scheme (and,
// for monthly caps, the month), keyed by counter name. Missing counters are
// zero. Well-known names: deductible, fund, expense, inscp,
// large_amount_base, large_amount, ci_base, ci_paid, maf_base, maf_paid,
// maf_tilt_paid (policies may name their own).
type Accumulators struct {
	Admissions     int                  `json:"admissions"` // admissions settled earlier this year
	AccountBalance money.Fen            `json:"acct_balc"`  // personal account balance before
	Counters       map[string]money.Fen `json:"counters,omitempty"`
}

func (a *Accumulators) get(name string) money.Fen { return a.Counters[name] }

// FamilyAccount is a linked family member's account (家庭共济).
type FamilyAccount struct {
	PsnNo   string    `json:"psn_no,omitempty"`
	Balance money.Fen `json:"balance"`
}

// Line is one fee line.
type Line struct {
	ID         string       `json:"id"`
	Class      string       `json:"class"`                    // A/B/C or 甲/乙/丙
	SelfPay    *money.Ratio `json:"self_pay_ratio,omitempty"` // 乙 share override for this line
	PreSelfPay *money.Fen   `json:"preselfpay,omitempty"`     // pre-computed 先行自付 amount (overrides the ratio)
	PriceCap   *money.Fen   `json:"price_cap,omitempty"`      // 医保支付标准 per unit
	UnitPrice  money.Fen    `json:"unit_price,omitempty"`
	Quantity   *money.Ratio `json:"quantity,omitempty"` // exact decimal, e.g. "2.5"; default 1
	Amount     *money.Fen   `json:"amount,omitempty"`   // default round(unit_price × quantity)
}
