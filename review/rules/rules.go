// Package rules is the smart-review (智能审核) rule engine: it checks one
// bill against the NHSA rule libraries (the "两库") and the bureau's own
// rules and says, line by line, which rule is hit, on what evidence, and
// what to do about it. It is pure calculation: no clock, files, network
// or database. docs/review.md documents every rule kind for the bureau.
//
// # Rules
//
// A [Rule] restricts a drug or service item, named by its NHSA code
// (Code) or, for lines whose code is not in the library, by its generic
// name (Name). Its Kind says what is restricted and Value how:
//
//	KindSex               男 | 女                          (限定性别对象)
//	KindAge               儿童 | 婴幼儿 | 新生儿 | 法定就业年龄 | N岁以上 | N岁以下 | 不满N岁 | N-M岁
//	KindCourse            N天: payable for at most N days  (限定支付疗程, 限定疗程)
//	KindLevel             一级 | 二级 | 三级 [及以上]: minimum institution level (限定机构等级)
//	KindSetting           住院 | 门诊                       (限定就医方式)
//	KindInsurance         工伤 | 生育                       (限定保险类型)
//	KindFrequency         N次/日 | N次/天 | 24次/小时 | N次/M天 | N次/周  (限定频次)
//	KindPeriod            same grammar as KindFrequency    (限定周期)
//	KindPrimarySecondary  the surgery group, e.g. 胃肠手术组 (限定主次操作)
//	KindDuplicate         单日 | 单次就诊 | N小时 | 同一小时, with MainCode/MainName (重复收费)
//	KindDiagnosis         ICD-10 prefixes, comma-separated (限定支付范围; bureau-authored)
//	KindPriceCap          cap in fen ("2500") or yuan ("25.00元")
//	KindSameDayElsewhere  built in (no rules): a drug also dispensed elsewhere that day
//
// [LoadDrugRules], [LoadItemRules] and [LoadDuplicates] read the NHSA
// files (demo/data/review); rows they cannot interpret are listed in the
// [LoadReport], never dropped silently. [Rule.Validate] checks a rule a
// bureau writes.
//
// # Checking
//
// [NewLibrary] indexes the rules by code and by normalised generic name
// and fixes one [Action] per kind (defaults in [DefaultActions]); a rule
// may override its kind's action. [Library.Check] returns the [Hit]s of a
// [Bill] in a deterministic order: by line, then kind (the order of
// [Kinds]), then rule ID. A Library is immutable and safe for concurrent
// use.
//
// # Interpretation (details in docs/review.md)
//
//   - 儿童: under 18; 婴幼儿: under 3; 新生儿: at most 28 days old
//     ([Bill.AgeDays], else age 0); 法定就业年龄: 16 to 60 (men) or 55
//     (women); 以上/以下 include the number, 不满 excludes it.
//   - Levels are minimums (二级 → level ≥ 2; 0 = unrated fails them all).
//   - 住院: only inpatient bills; 工伤: always a hit; 生育: a hit unless
//     insutype 510.
//   - Course: covered calendar days (a dated line covers Days from its
//     date, at least its own day) over History and the bill, above N.
//   - Frequency and period: quantity within any window of M calendar
//     days above N; 24次/小时 is 24 hour-units per day.
//   - Primary-secondary: on one day, different operations of one group:
//     every one but the dearest is hit.
//   - Duplicate: main and sub in scope → the sub line is hit; hour
//     scopes without times on one day are warned only.
//   - Diagnosis: a hit unless a diagnosis starts with a listed prefix.
//   - Price cap: unit price above [Line.PriceCap] or a rule's cap.
//   - Same day elsewhere: a drug line whose code or name is among
//     [Bill.Elsewhere] drug lines (same date when both are dated).
package rules

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Action is what settlement does with a hit.
type Action string

// Actions.
const (
	ActionWarn    Action = "warn"     // tell the cashier and the reviewer; pay as usual
	ActionSelfPay Action = "self_pay" // move the line to full self-pay (全自费)
	ActionBlock   Action = "block"    // refuse the bill until the line is corrected
	ActionOff     Action = "off"      // do not check this kind (library configuration only)
)

func (a Action) valid() bool {
	switch a {
	case ActionWarn, ActionSelfPay, ActionBlock, ActionOff:
		return true
	}
	return false
}

// Kind is the kind of restriction a rule expresses.
type Kind string

// Rule kinds.
const (
	KindSex              Kind = "sex"                // 限定性别对象
	KindAge              Kind = "age"                // 限定年龄对象, 限定年龄
	KindCourse           Kind = "course"             // 限定支付疗程 (drugs), 限定疗程 (items)
	KindLevel            Kind = "level"              // 限定机构等级
	KindSetting          Kind = "setting"            // 限定就医方式
	KindInsurance        Kind = "insurance"          // 限定保险类型
	KindFrequency        Kind = "frequency"          // 限定频次
	KindPeriod           Kind = "period"             // 限定周期
	KindPrimarySecondary Kind = "primary_secondary"  // 限定主次操作
	KindDuplicate        Kind = "duplicate"          // 重复收费
	KindDiagnosis        Kind = "diagnosis"          // 限定支付范围 by diagnosis (bureau)
	KindPriceCap         Kind = "price_cap"          // unit price above the cap
	KindSameDayElsewhere Kind = "same_day_elsewhere" // the same drug at another institution that day (built in)
)

// Kinds lists the kinds in the order hits of one line are reported.
var Kinds = []Kind{KindSex, KindAge, KindSetting, KindLevel, KindInsurance, KindDiagnosis, KindCourse,
	KindFrequency, KindPeriod, KindPrimarySecondary, KindDuplicate, KindPriceCap, KindSameDayElsewhere}

func kindIndex(k Kind) int {
	for i, x := range Kinds {
		if x == k {
			return i
		}
	}
	return len(Kinds)
}

// DefaultActions returns the action of each kind when the library is not
// told otherwise.
func DefaultActions() map[Kind]Action {
	return map[Kind]Action{
		KindSex: ActionSelfPay, KindAge: ActionSelfPay, KindSetting: ActionSelfPay, KindLevel: ActionSelfPay,
		KindInsurance: ActionSelfPay, KindDiagnosis: ActionSelfPay, KindDuplicate: ActionBlock,
		KindFrequency: ActionWarn, KindCourse: ActionWarn, KindPeriod: ActionWarn, KindPrimarySecondary: ActionWarn,
		KindPriceCap: ActionSelfPay, KindSameDayElsewhere: ActionWarn,
	}
}

// Line kinds a rule can target (the catalog's item kinds).
const (
	TargetDrug    = "drug"
	TargetService = "service"
)

// Rule is one restriction of a drug or service item.
type Rule struct {
	ID   string `json:"id"`
	Kind Kind   `json:"kind"`
	// Target is the kind of line the rule applies to: "drug", "service",
	// or "" for any line.
	Target string `json:"target,omitempty"`
	// Code is the NHSA drug or service-item code, or "".
	Code string `json:"code,omitempty"`
	// Name is the generic (drug) or item name, matched (normalised) when
	// the line's code is not the rule's.
	Name  string `json:"name,omitempty"`
	Value string `json:"value"`
	// MainCode and MainName name the main item of a KindDuplicate rule
	// (the item that already includes this one).
	MainCode string `json:"main_code,omitempty"`
	MainName string `json:"main_name,omitempty"`
	// Action, if set, overrides the library's action for this rule.
	Action Action `json:"action,omitempty"`
	Note   string `json:"note,omitempty"`
	Source string `json:"source,omitempty"`
}

// Validate checks the rule: an ID, a kind that rules can express, a code
// or a name, and a value the kind understands.
func (r Rule) Validate() error {
	_, err := compile(r)
	return err
}

// compiled is a rule with its value parsed.
type compiled struct {
	Rule
	seq   int    // position in the library
	dkey  string // kind, value and main item: one hit per line and dkey
	ident string // the item a counting rule counts (normalised name or code)

	sex      string // "1" or "2"
	age      ageLimit
	level    int
	inpat    bool // KindSetting: true = inpatient only, false = outpatient only
	insu     string
	days     int     // KindCourse
	count    float64 // KindFrequency, KindPeriod: at most count …
	window   int     // … per window days
	scope    string  // KindDuplicate: "day", "visit" or "hours"
	minutes  int     // KindDuplicate hour window
	prefixes []string
	cap      int64
	mainCode string
	mainName string
}

type ageLimit struct {
	min, max int // whole years, inclusive; -1 = none
	newborn  bool
	working  bool
}

var (
	reAgeAbove  = regexp.MustCompile(`^(\d{1,3})周?岁(及)?以上$`)
	reAgeBelow  = regexp.MustCompile(`^(\d{1,3})周?岁(及)?以下$`)
	reAgeUnder  = regexp.MustCompile(`^[不未]满(\d{1,3})周?岁$`)
	reAgeRange  = regexp.MustCompile(`^(\d{1,3})\s*(?:-|~|～|—|至|到)\s*(\d{1,3})周?岁$`)
	reLevel     = regexp.MustCompile(`^(一|二|三|1|2|3)级(及以上)?(医疗机构)?$`)
	reDays      = regexp.MustCompile(`^(\d{1,4})天$`)
	reCountDay  = regexp.MustCompile(`^(\d{1,4})次/(?:日|天|1天)$`)
	reCountDays = regexp.MustCompile(`^(\d{1,4})次/(\d{1,4})天$`)
	reCountWeek = regexp.MustCompile(`^(\d{1,4})次/周$`)
	reHours     = regexp.MustCompile(`^(\d{1,3})小时$`)
	reFen       = regexp.MustCompile(`^\d{1,12}$`)
	reYuan      = regexp.MustCompile(`^(\d{1,10})(?:\.(\d{1,2}))?元$`)
	reICD       = regexp.MustCompile(`^[A-Z][0-9A-Z.]{0,15}$`)
)

func compile(r Rule) (*compiled, error) {
	c := &compiled{Rule: r}
	v := strings.TrimSpace(r.Value)
	c.Value = v
	fail := func(format string, a ...any) (*compiled, error) {
		return nil, fmt.Errorf("rule %q (%s): %s", r.ID, r.Kind, fmt.Sprintf(format, a...))
	}
	if strings.TrimSpace(r.ID) == "" {
		return fail("no id")
	}
	if strings.TrimSpace(r.Code) == "" && normName(r.Name) == "" {
		return fail("needs a code or a name")
	}
	switch r.Target {
	case "", TargetDrug, TargetService:
	default:
		return fail("target %q: want drug, service or empty", r.Target)
	}
	if r.Action != "" && (!r.Action.valid() || r.Action == ActionOff) {
		return fail("action %q: want warn, self_pay or block", r.Action)
	}
	if v == "" {
		return fail("empty value")
	}
	switch r.Kind {
	case KindSex:
		switch v {
		case "男", "男性":
			c.sex = "1"
		case "女", "女性":
			c.sex = "2"
		default:
			return fail("value %q: want 男 or 女", v)
		}
	case KindAge:
		a, ok := parseAge(v)
		if !ok {
			return fail("value %q: want 儿童, 婴幼儿, 新生儿, 法定就业年龄, N岁以上, N岁以下, 不满N岁 or N-M岁", v)
		}
		c.age = a
	case KindCourse:
		m := reDays.FindStringSubmatch(v)
		if m == nil {
			return fail("value %q: want N天", v)
		}
		c.days, _ = strconv.Atoi(m[1])
		if c.days <= 0 {
			return fail("value %q: at least 1 day", v)
		}
	case KindLevel:
		m := reLevel.FindStringSubmatch(v)
		if m == nil {
			return fail("value %q: want 一级, 二级 or 三级", v)
		}
		c.level = map[string]int{"一": 1, "二": 2, "三": 3, "1": 1, "2": 2, "3": 3}[m[1]]
	case KindSetting:
		switch v {
		case "住院":
			c.inpat = true
		case "门诊":
		default:
			return fail("value %q: want 住院 or 门诊", v)
		}
	case KindInsurance:
		switch strings.TrimSuffix(v, "保险") {
		case "工伤":
			c.insu = "工伤"
		case "生育":
			c.insu = "生育"
		default:
			return fail("value %q: want 工伤 or 生育", v)
		}
	case KindFrequency, KindPeriod:
		n, w, ok := parseCount(v)
		if !ok {
			return fail("value %q: want N次/日, N次/M天, N次/周 or 24次/小时", v)
		}
		c.count, c.window = float64(n), w
	case KindPrimarySecondary:
		// the surgery group: any name
	case KindDuplicate:
		switch {
		case v == "单日":
			c.scope = "day"
		case v == "单次就诊":
			c.scope = "visit"
		case v == "同一小时":
			c.scope, c.minutes = "hours", 60
		default:
			m := reHours.FindStringSubmatch(v)
			if m == nil {
				return fail("value %q: want 单日, 单次就诊, 同一小时 or N小时", v)
			}
			h, _ := strconv.Atoi(m[1])
			if h <= 0 {
				return fail("value %q: at least 1 hour", v)
			}
			c.scope, c.minutes = "hours", h*60
		}
		c.mainCode, c.mainName = normCode(r.MainCode), normName(r.MainName)
		if c.mainCode == "" && c.mainName == "" {
			return fail("needs the main item's code or name")
		}
		if c.mainCode != "" && c.mainCode == normCode(r.Code) {
			return fail("main and sub item are the same")
		}
	case KindDiagnosis:
		for _, p := range strings.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune(",，、;； ", r) }) {
			p = strings.ToUpper(p)
			if !reICD.MatchString(p) {
				return fail("value %q: %q is not an ICD-10 code prefix", v, p)
			}
			c.prefixes = append(c.prefixes, strings.ReplaceAll(p, ".", ""))
		}
		if len(c.prefixes) == 0 {
			return fail("value %q: no ICD-10 prefix", v)
		}
	case KindPriceCap:
		fen, ok := parseFen(v)
		if !ok {
			return fail("value %q: want fen (2500) or yuan (25.00元)", v)
		}
		c.cap = fen
	case KindSameDayElsewhere:
		return fail("built in: configure its action, not rules")
	default:
		return fail("unknown kind")
	}
	c.dkey = string(r.Kind) + "\x00" + c.Value + "\x00" + c.mainCode + "\x00" + c.mainName
	if n := normName(r.Name); n != "" {
		c.ident = "n:" + n
	} else {
		c.ident = "c:" + normCode(r.Code)
	}
	return c, nil
}

func parseAge(v string) (ageLimit, bool) {
	a := ageLimit{min: -1, max: -1}
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	switch v {
	case "儿童":
		a.max = ChildMaxAge
	case "婴幼儿":
		a.max = 2
	case "新生儿":
		a.newborn, a.max = true, 0
	case "法定就业年龄", "就业年龄":
		a.working, a.min = true, WorkingAgeMin
	default:
		if m := reAgeAbove.FindStringSubmatch(v); m != nil {
			a.min = atoi(m[1])
		} else if m := reAgeBelow.FindStringSubmatch(v); m != nil {
			a.max = atoi(m[1])
		} else if m := reAgeUnder.FindStringSubmatch(v); m != nil {
			if a.max = atoi(m[1]) - 1; a.max < 0 {
				return a, false
			}
		} else if m := reAgeRange.FindStringSubmatch(v); m != nil {
			a.min, a.max = atoi(m[1]), atoi(m[2])
			if a.min > a.max {
				return a, false
			}
		} else {
			return a, false
		}
	}
	return a, true
}

// Age limits (whole years, 周岁).
const (
	// ChildMaxAge: 儿童 are under 18 (the drug list's own wording, e.g.
	// "2岁至<18岁…儿童患者", and the Minors Protection Law).
	ChildMaxAge = 17
	// WorkingAgeMin is the legal minimum working age (劳动法 第十五条).
	WorkingAgeMin = 16
	// WorkingAgeMaxMale and WorkingAgeMaxFemale approximate the statutory
	// retirement age for 法定就业年龄: a hit above them. They are the
	// pre-2025 ages (60 for men, 55 for female cadres); the 2025 reform
	// raises them gradually (to 63 and 58 by 2040), so persons just above
	// these ages may still be working: revisit each year.
	WorkingAgeMaxMale   = 60
	WorkingAgeMaxFemale = 55
	// NewbornMaxDays: 新生儿 are in their first 28 days.
	NewbornMaxDays = 28
)

func parseCount(v string) (n, window int, ok bool) {
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	switch {
	case v == "24次/小时":
		// Items charged by the hour: at most 24 hours in a calendar day.
		n, window = 24, 1
	case reCountDay.MatchString(v):
		n, window = atoi(reCountDay.FindStringSubmatch(v)[1]), 1
	case reCountDays.MatchString(v):
		m := reCountDays.FindStringSubmatch(v)
		n, window = atoi(m[1]), atoi(m[2])
	case reCountWeek.MatchString(v):
		n, window = atoi(reCountWeek.FindStringSubmatch(v)[1]), 7
	default:
		return 0, 0, false
	}
	return n, window, n > 0 && window > 0
}

func parseFen(v string) (int64, bool) {
	if reFen.MatchString(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	m := reYuan.FindStringSubmatch(v)
	if m == nil {
		return 0, false
	}
	y, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, false
	}
	frac := m[2]
	for len(frac) < 2 {
		frac += "0"
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	return y*100 + f, true
}

// normCode trims and upper-cases a code.
func normCode(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 'a' && c <= 'z' || c >= 0x80 {
			return strings.ToUpper(strings.TrimSpace(s))
		}
	}
	return s
}

var roman = map[rune]string{'Ⅰ': "I", 'Ⅱ': "II", 'Ⅲ': "III", 'Ⅳ': "IV", 'Ⅴ': "V", 'Ⅵ': "VI", 'Ⅶ': "VII",
	'Ⅷ': "VIII", 'Ⅸ': "IX", 'Ⅹ': "X", 'Ⅺ': "XI", 'Ⅻ': "XII"}

// normName makes names comparable: no white space, full-width ASCII
// (including （）) as half-width, Roman-numeral characters as letters,
// letters upper-case.
func normName(s string) string {
	clean := true
	for _, r := range s {
		if r <= ' ' || r == '\u00a0' || r == '\u3000' || r >= 'a' && r <= 'z' || r >= 0xFF01 && r <= 0xFF5E || r >= 'Ⅰ' && r <= 'ⅻ' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\u3000' || r == '\u00a0':
			continue
		case r >= 0xFF01 && r <= 0xFF5E:
			r -= 0xFEE0
		case r >= 'ⅰ' && r <= 'ⅻ':
			r -= 'ⅰ' - 'Ⅰ'
		}
		if s, ok := roman[r]; ok {
			b.WriteString(s)
			continue
		}
		if r >= 'a' && r <= 'z' {
			r -= 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
