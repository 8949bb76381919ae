// Package policy is the pure settlement calculator: a region's policy
// (declarative data), a person, a visit, the person's year-to-date
// accumulators and the fee lines go in; the NHSA setlinfo/setldetail
// figures, a per-line breakdown, the accumulator changes and, on request, a
// bilingual explanation come out.
//
// Nothing here does I/O, reads a clock or mutates a global: the same inputs
// always give the same split. Money is money.Fen; ratios are money.Ratio;
// every rounding is half-up to the fen unless the policy names another.
// docs/policy.md documents every field for the bureaus that write policies.
package policy

import (
	"yibao/money"
)

// Visit types (the keys of Scheme.Visits).
const (
	GeneralOutpatient = "general_outpatient"
	ChronicOutpatient = "chronic_outpatient"
	Emergency         = "emergency"
	Inpatient         = "inpatient"
	Pharmacy          = "pharmacy"
)

// VisitTypes lists the visit types in a stable order.
var VisitTypes = []string{GeneralOutpatient, ChronicOutpatient, Emergency, Inpatient, Pharmacy}

// Cross-region filing statuses (Visit.CrossRegion.Status).
const (
	Local        = "local"        // treated inside the insured region
	LongTerm     = "long_term"    // 长期居住备案 (resident/worker filed)
	Referred     = "referred"     // 转诊转院 / 急诊抢救
	Temporary    = "temporary"    // 临时外出就医备案
	Unregistered = "unregistered" // 未备案
)

// Dates select the policy version and the accumulator year.
const (
	BySettlement = "settlement"
	ByDischarge  = "discharge"
	ByAdmission  = "admission"
)

// Policy is one version of a region's settlement rules. It is plain data:
// decode it from JSON, call Validate, then pass it to Calc.
type Policy struct {
	Version       string    `json:"version"`
	Admdvs        string    `json:"admdvs"`
	Name          string    `json:"name,omitempty"`
	EffectiveFrom string    `json:"effective_from"`         // YYYY-MM-DD, inclusive
	EffectiveTo   string    `json:"effective_to,omitempty"` // YYYY-MM-DD, inclusive; empty = open
	DateBasis     DateBasis `json:"date_basis,omitempty"`
	YearStart     int       `json:"year_start_month,omitempty"` // 1 (calendar year) by default; 10 = Oct–Sep
	Rounding      string    `json:"rounding,omitempty"`         // half_up (default), half_even, down, up
	valid         bool
	Notes         string             `json:"notes,omitempty"`
	Schemes       map[string]*Scheme `json:"schemes"` // by insutype: "310", "390", …

	rounding money.Rounding
}

// DateBasis says which visit date picks the policy version and the
// accumulator year. Empty fields take the defaults: discharge date for
// inpatient stays, settlement date for everything else.
type DateBasis struct {
	Inpatient string `json:"inpatient,omitempty"`
	Other     string `json:"other,omitempty"`
}

// Scheme is the rule set of one insurance scheme (险种).
type Scheme struct {
	Name              string           `json:"name,omitempty"`
	FundPayType       string           `json:"fund_pay_type,omitempty"`      // setldetail code of the basic fund; default 310100 / 390100
	BSelfPay          money.Ratio      `json:"b_self_pay"`                   // 乙类先行自付 share, e.g. "0.1"
	GeneralOutpatient *Benefit         `json:"general_outpatient,omitempty"` // 普通门诊
	ChronicOutpatient *Benefit         `json:"chronic_outpatient,omitempty"` // 门诊慢特病
	Emergency         *Benefit         `json:"emergency,omitempty"`          // 急诊; absent = general_outpatient
	Inpatient         *Benefit         `json:"inpatient,omitempty"`          // 住院
	Pharmacy          *Benefit         `json:"pharmacy,omitempty"`           // 定点药店购药
	Account           *AccountRule     `json:"account,omitempty"`            // nil: no personal account (residents)
	LargeAmount       *LargeAmount     `json:"large_amount,omitempty"`
	CivilServant      *CivilServant    `json:"civil_servant,omitempty"`
	CriticalIllness   *CriticalIllness `json:"critical_illness,omitempty"`
	Assistance        *Assistance      `json:"assistance,omitempty"`
	CrossRegion       *CrossRegion     `json:"cross_region,omitempty"`
}

// Benefit is what the basic fund pays for one visit type.
type Benefit struct {
	SameAs     string       `json:"same_as,omitempty"`    // use another visit type's benefit (e.g. emergency → inpatient)
	BSelfPay   *money.Ratio `json:"b_self_pay,omitempty"` // overrides Scheme.BSelfPay for this visit type
	Deductible Deductible   `json:"deductible"`           // 起付线
	Ratio      RatioRule    `json:"ratio"`                // 支付比例
	Caps       []Cap        `json:"caps,omitempty"`       // 最高支付限额 / 封顶
	Layers     []string     `json:"layers,omitempty"`     // which layers apply; nil = all the scheme has
	Account    *AccountRule `json:"account,omitempty"`    // overrides Scheme.Account for this visit type
	NoFund     bool         `json:"no_fund,omitempty"`    // the basic fund pays nothing (e.g. pharmacy: account only)
}

// Deductible (起付线) is taken from the policy-range amount only.
type Deductible struct {
	Unit      string               `json:"unit,omitempty"`       // "admission" (each settlement, default) or "year" (accumulated)
	ByLevel   map[string]money.Fen `json:"by_level"`             // institution level "1","2","3", "*" = any other
	ByGroup   map[string]LevelFen  `json:"by_group,omitempty"`   // person group → by-level amounts (first matching group wins)
	Counter   string               `json:"counter,omitempty"`    // accumulator name; default "deductible"
	AnnualCap *money.Fen           `json:"annual_cap,omitempty"` // total deductible a person pays in a year (长沙 900)
	Repeat    *Repeat              `json:"repeat,omitempty"`     // repeat admissions in the year
	// PerSegment charges the per-admission deductible again on every
	// mid-stay settlement of a long stay (some regions count each 90-day
	// segment as an admission); by default a stay pays it once.
	PerSegment bool `json:"per_segment,omitempty"`
}

// LevelFen is an amount per institution level ("1","2","3","*").
type LevelFen map[string]money.Fen

// Repeat lowers the per-admission deductible for the 2nd and later
// admissions of the year. Rules are applied in this order: ZeroFrom,
// Schedule, Ratios, Compound; Floor last.
type Repeat struct {
	ZeroFrom int                    `json:"zero_from,omitempty"`         // no deductible from the Nth admission (2 = from the 2nd)
	Schedule map[string][]money.Fen `json:"schedule_by_level,omitempty"` // amount of the 1st, 2nd, … admission; the last repeats
	Ratios   []money.Ratio          `json:"ratios,omitempty"`            // share of the level amount for the 1st, 2nd, …; the last repeats
	Compound *money.Ratio           `json:"compound,omitempty"`          // factor per extra admission, compounding (0.9 = −10% each)
	Floor    LevelFen               `json:"floor_by_level,omitempty"`    // minimum after reductions
}

// RatioRule is the basic fund's share of the eligible amount.
type RatioRule struct {
	ByLevel map[string]money.Ratio `json:"by_level,omitempty"` // flat fund share per level
	Bands   map[string][]Band      `json:"bands_by_level,omitempty"`
	// BandsAre says whether band ratios are the fund's share ("fund",
	// default) or the person's share ("personal": 32% → fund 68%).
	BandsAre string `json:"bands_are,omitempty"`
	// BandBasis: "admission" (position restarts each settlement, default) or
	// "annual" (position is the year's cumulative policy-range amount).
	BandBasis string                `json:"band_basis,omitempty"`
	ByGroup   map[string]*RatioRule `json:"by_group,omitempty"` // person group (child, tier1, …) → replacement rule
	Age       *AgeFormula           `json:"age,omitempty"`      // ratio = base + age × per_year
	Retiree   *RetireeUplift        `json:"retiree,omitempty"`
	Counter   string                `json:"counter,omitempty"` // annual band position; default "inscp"
}

// Band is one segment of a banded ratio. From is the lower edge on the
// policy-range amount measured from 0 (or on the cumulative burden for
// critical illness); the band runs to the next band's From.
type Band struct {
	From  money.Fen   `json:"from"`
	Ratio money.Ratio `json:"ratio"`
}

// AgeFormula replaces the level ratio by base + age × per_year, capped at Max.
type AgeFormula struct {
	Base    money.Ratio `json:"base"`
	PerYear money.Ratio `json:"per_year"`
	Max     money.Ratio `json:"max"`
}

// RetireeUplift raises the ratio for retired persons (category "retired"):
// either Plus percentage points, or the personal share times PersonalFactor.
type RetireeUplift struct {
	Plus           *money.Ratio `json:"plus,omitempty"`
	PersonalFactor *money.Ratio `json:"personal_factor,omitempty"`
}

// Cap limits the basic fund: Kind "fund" limits what the fund pays, Kind
// "expense" limits the eligible expense the ratio is applied to. Period is
// "year" (default) or "month"; the caller passes the month's counter.
type Cap struct {
	Kind    string    `json:"kind"`
	Period  string    `json:"period,omitempty"`
	Amount  money.Fen `json:"amount"`
	Groups  []string  `json:"groups,omitempty"`  // applies only to these person groups; empty = everyone
	Counter string    `json:"counter,omitempty"` // default "fund" / "expense" (+ ".month")
}

// AccountRule says what the personal account (个人账户) may pay.
type AccountRule struct {
	Own             *bool `json:"own,omitempty"`               // the person's own account pays; default true (false: only family mutual aid)
	InRange         *bool `json:"in_range,omitempty"`          // deductible, coinsurance, over-cap in-range share; default true
	PreSelfPay      *bool `json:"preselfpay,omitempty"`        // 乙类先行自付; default true
	OverLimit       bool  `json:"overlimit,omitempty"`         // 超限价 amounts
	FullOwnPay      bool  `json:"fulamt_ownpay,omitempty"`     // 丙类 / 全自费
	FamilyMutualAid bool  `json:"family_mutual_aid,omitempty"` // a linked family member's account may pay (家庭共济)
}

// LargeAmount is the employee supplementary layer (大额医疗费用补助):
// it pays a share of the eligible expense the basic fund did not cover
// because a basic cap was reached.
type LargeAmount struct {
	FundPayType string    `json:"fund_pay_type,omitempty"` // default 330100
	Field       string    `json:"setl_field,omitempty"`    // default hifob_pay
	Threshold   money.Fen `json:"threshold,omitempty"`     // annual, on the cumulative base; 0 = pays from the first fen
	BandsOn     string    `json:"bands_on,omitempty"`      // "absolute" (default) or "excess" over the threshold
	Bands       []Band    `json:"bands"`                   // on the year's cumulative base
	AnnualCap   money.Fen `json:"annual_cap,omitempty"`    // 0 = none
	BaseCounter string    `json:"base_counter,omitempty"`  // default "large_amount_base"
	PaidCounter string    `json:"paid_counter,omitempty"`  // default "large_amount"
}

// CivilServant is the civil-servant medical subsidy (公务员医疗补助, 320100):
// a share of the in-range burden left after the basic fund and the
// large-amount layer, for the listed person groups.
type CivilServant struct {
	FundPayType       string      `json:"fund_pay_type,omitempty"` // default 320100
	Groups            []string    `json:"groups"`                  // e.g. civil_servant
	Ratio             money.Ratio `json:"ratio"`
	IncludeDeductible bool        `json:"include_deductible,omitempty"`
	AnnualCap         money.Fen   `json:"annual_cap,omitempty"`   // 0 = none
	PaidCounter       string      `json:"paid_counter,omitempty"` // default "cvlserv_paid"
}

// CriticalIllness is the 大病保险 layer, annual and cumulative.
type CriticalIllness struct {
	FundPayType       string    `json:"fund_pay_type,omitempty"` // default 390200
	Field             string    `json:"setl_field,omitempty"`    // default hifmi_pay
	Threshold         money.Fen `json:"threshold"`               // 起付标准, borne once a year
	BandsOn           string    `json:"bands_on,omitempty"`      // "absolute" (default) or "excess" over the threshold
	Bands             []Band    `json:"bands"`
	AnnualCap         money.Fen `json:"annual_cap,omitempty"` // 0 = none
	IncludeDeductible bool      `json:"include_deductible,omitempty"`
	IncludePreSelfPay bool      `json:"include_preselfpay,omitempty"`
	Special           *Special  `json:"special,omitempty"`      // 特困/低保/返贫 tilt
	BaseCounter       string    `json:"base_counter,omitempty"` // default "ci_base"
	PaidCounter       string    `json:"paid_counter,omitempty"` // default "ci_paid"
}

// Special is the critical-illness tilt for special groups.
type Special struct {
	Groups         []string    `json:"groups"`
	ThresholdShare money.Ratio `json:"threshold_share"` // threshold × share (0.5 = halved)
	BandPlus       money.Ratio `json:"band_plus"`       // + points on every band
	NoCap          bool        `json:"no_cap,omitempty"`
}

// Assistance is medical assistance (医疗救助) by person group.
type Assistance struct {
	FundPayType string                     `json:"fund_pay_type,omitempty"` // default 610100
	ByGroup     map[string]*AssistanceRule `json:"by_group"`                // low_income, extreme_poverty, …
	Tilt        *Tilt                      `json:"tilt,omitempty"`          // 倾斜救助 second pass
}

// AssistanceRule is the assistance one group gets.
type AssistanceRule struct {
	Ratio             money.Ratio `json:"ratio"`
	Threshold         money.Fen   `json:"threshold,omitempty"`  // annual, on the cumulative base
	AnnualCap         money.Fen   `json:"annual_cap,omitempty"` // 0 = none
	IncludePreSelfPay bool        `json:"include_preselfpay,omitempty"`
	Priority          int         `json:"priority,omitempty"` // when a person is in several groups, highest wins
}

// Tilt is a second assistance pass on what is still left of one settlement.
type Tilt struct {
	Groups    []string    `json:"groups,omitempty"` // empty = every assisted group
	Threshold money.Fen   `json:"threshold"`        // per settlement
	Ratio     money.Ratio `json:"ratio"`
	AnnualCap money.Fen   `json:"annual_cap,omitempty"`
}

// CrossRegion holds the rules for treatment outside the insured region.
type CrossRegion struct {
	ByStatus    map[string]*CrossRule `json:"by_status"`
	EmergencyAs string                `json:"emergency_as,omitempty"` // status an unregistered emergency counts as; default "referred"
}

// CrossRule adjusts the local rules for one filing status.
type CrossRule struct {
	RatioCut          *money.Ratio         `json:"ratio_cut,omitempty"`           // points off every fund ratio
	FirstPay          *money.Ratio         `json:"first_pay,omitempty"`           // 个人先行自付 share of the policy-range amount
	Level             int                  `json:"level,omitempty"`               // use this level's deductible and ratio (3 = 参保地三级)
	Deductible        *money.Fen           `json:"deductible,omitempty"`          // replaces the level deductible
	DeductibleByScope map[string]money.Fen `json:"deductible_by_scope,omitempty"` // "in_province" / "out_of_province"
	DeductibleShare   *ShareDeductible     `json:"deductible_share,omitempty"`    // % of the bill total, bounded
}

// ShareDeductible is a deductible set as a share of the bill total.
type ShareDeductible struct {
	Ratio money.Ratio `json:"ratio"`
	Min   money.Fen   `json:"min"`
	Max   money.Fen   `json:"max"`
}

// visit returns the benefit configured for a visit type (nil if none).
func (s *Scheme) visit(t string) *Benefit {
	switch t {
	case GeneralOutpatient:
		return s.GeneralOutpatient
	case ChronicOutpatient:
		return s.ChronicOutpatient
	case Emergency:
		return s.Emergency
	case Inpatient:
		return s.Inpatient
	case Pharmacy:
		return s.Pharmacy
	}
	return nil
}
