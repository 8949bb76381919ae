package rules

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Bill is what smart review sees of one bill (one visit, admission or
// pharmacy purchase).
type Bill struct {
	// VisitType is general_outpatient, chronic_outpatient, emergency,
	// inpatient or pharmacy (policy.VisitTypes); "outpatient" is accepted.
	VisitType string `json:"visit_type"`
	Level     int    `json:"level"`    // institution level 1–3; 0 = unrated (pharmacies, clinics)
	Insutype  string `json:"insutype"` // NHSA 险种: 310, 390, 510 …
	Age       int    `json:"age"`      // whole years (周岁) on the visit date
	// AgeDays is the age in days when known (newborns); 0 = not given.
	AgeDays   int      `json:"age_days,omitempty"`
	Sex       string   `json:"sex"`                 // NHSA gend: "1" male, "2" female, other = unknown
	Diagnoses []string `json:"diagnoses,omitempty"` // ICD-10 codes, e.g. I63.900
	Lines     []Line   `json:"lines"`
	// Elsewhere are the person's lines at other institutions the same
	// day (KindSameDayElsewhere).
	Elsewhere []Line `json:"elsewhere,omitempty"`
	// History are the person's earlier lines (any institution, e.g. the
	// last year): course, frequency and period rules count them, but
	// they are never hit themselves.
	History []Line `json:"history,omitempty"`
}

// Line is one fee line.
type Line struct {
	Sn   string `json:"sn"`
	Code string `json:"code"`
	Name string `json:"name"`
	// Kind is drug, service ("item" is accepted) or material; "" =
	// unknown (then drug and service rules both apply).
	Kind string `json:"kind"`
	// Quantity counts for frequency and period rules; 0 counts as 1, a
	// negative quantity (a refund) offsets.
	Quantity float64 `json:"quantity"`
	Days     int     `json:"days,omitempty"` // days supplied (drugs); 0 = unknown
	// Date is YYYY-MM-DD, optionally followed by " HH:MM[:SS]" or
	// "THH:MM[:SS]" (YYYYMMDD[HHMMSS] too); other forms count as no date.
	Date      string `json:"date,omitempty"`
	UnitPrice int64  `json:"unit_price,omitempty"` // fen
	PriceCap  int64  `json:"price_cap,omitempty"`  // fen, from the catalog; 0 = none
}

// Hit is one rule hit on one line of the bill.
type Hit struct {
	Rule     string `json:"rule"` // the rule ID, or a built-in check's
	Kind     Kind   `json:"kind"`
	Sn       string `json:"sn"`
	Action   Action `json:"action"`
	Message  string `json:"message"`  // 中文 / English: what is wrong and why
	Evidence string `json:"evidence"` // the bill facts that triggered it

	line int
}

// The built-in checks' rule IDs.
const (
	RuleCatalogPriceCap  = "builtin:price_cap"
	RuleSameDayElsewhere = "builtin:same_day_elsewhere"
)

type when struct {
	day, min        int // days since 1970-01-01; minutes since then
	hasDay, hasTime bool
}

var layouts = []struct {
	layout string
	time   bool
}{
	{"2006-01-02", false}, {"2006-01-02 15:04:05", true}, {"2006-01-02T15:04:05", true}, {"2006-01-02 15:04", true},
	{"2006-01-02T15:04", true}, {time.RFC3339, true}, {"20060102", false}, {"20060102150405", true},
}

func parseWhen(s string) when {
	s = strings.TrimSpace(s)
	if s == "" {
		return when{}
	}
	for _, l := range layouts {
		if len(s) != len(l.layout) && l.layout != time.RFC3339 {
			continue
		}
		t, err := time.Parse(l.layout, s)
		if err != nil {
			continue
		}
		y, m, d := t.Date()
		day := int(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
		w := when{day: day, hasDay: true, hasTime: l.time}
		w.min = day*1440 + t.Hour()*60 + t.Minute()
		return w
	}
	return when{}
}

func (w when) sameDay(o when) bool {
	return w.hasDay == o.hasDay && w.day == o.day
}

type occ struct {
	line  int // index in Lines; -1 for History
	order int // history first, then bill order
	w     when
	ln    *Line
	m     matched // the line's own rule (bill lines)
}

type counter struct {
	c    *compiled
	occs []occ
}

type checker struct {
	l     *Library
	b     *Bill
	whens []when
	codes []string // normalised codes and names of the lines
	names []string
	hits  []Hit
	buf   []matched

	counts    map[string]*counter      // course, frequency, period: by kind, restriction and item
	groups    map[string][]matchedLine // primary-secondary: by group and day
	codeLines map[string][]int         // duplicate: lines by code and by name, built on first need
	nameLines map[string][]int
}

// Check returns the hits of the bill, ordered by line, kind ([Kinds]) and
// rule ID. Only the bill's own Lines are hit; Elsewhere and History are
// evidence.
func (l *Library) Check(b Bill) []Hit {
	n := len(b.Lines)
	ck := &checker{l: l, b: &b, whens: make([]when, n), codes: make([]string, n), names: make([]string, n), buf: make([]matched, 0, 8)}
	for i := range b.Lines {
		ck.whens[i] = parseWhen(b.Lines[i].Date)
		ck.codes[i], ck.names[i] = normCode(b.Lines[i].Code), normName(b.Lines[i].Name)
	}
	for i := range b.Lines {
		ck.buf = l.match(&b.Lines[i], ck.codes[i], ck.names[i], ck.buf)
		for _, m := range ck.buf {
			ck.line(i, m)
		}
		ck.builtins(i)
	}
	if len(ck.counts) > 0 {
		for h := range b.History {
			ln := &b.History[h]
			ck.buf = l.match(ln, normCode(ln.Code), normName(ln.Name), ck.buf)
			for _, m := range ck.buf {
				if cn := ck.counts[countKey(m.c)]; cn != nil {
					cn.occs = append(cn.occs, occ{line: -1, order: h - len(b.History), w: parseWhen(ln.Date), ln: ln})
				}
			}
		}
		for _, cn := range ck.counts {
			if cn.c.Kind == KindCourse {
				ck.course(cn)
			} else {
				ck.frequency(cn)
			}
		}
	}
	for _, g := range ck.groups {
		ck.primarySecondary(g)
	}
	slices.SortFunc(ck.hits, func(a, b Hit) int {
		return cmp.Or(cmp.Compare(a.line, b.line), cmp.Compare(kindIndex(a.Kind), kindIndex(b.Kind)), strings.Compare(a.Rule, b.Rule))
	})
	return ck.hits
}

func countKey(c *compiled) string { return c.dkey + "\x00" + c.ident }

func (ck *checker) hit(i int, c *compiled, a Action, byName bool, msg, evidence string) {
	if byName {
		evidence += fmt.Sprintf("; 按名称匹配 matched by name %q", c.Name)
		if c.Code != "" {
			evidence += " (rule code " + c.Code + ")"
		}
	}
	ck.hits = append(ck.hits, Hit{Rule: c.ID, Kind: c.Kind, Sn: ck.b.Lines[i].Sn, Action: a, Message: msg, Evidence: evidence, line: i})
}

// line checks one rule on line i, or files the line for the rules that
// look at several lines.
func (ck *checker) line(i int, m matched) {
	c, b, ln := m.c, ck.b, &ck.b.Lines[i]
	a := ck.l.action(c)
	if a == ActionOff {
		return
	}
	say := func(zh, en, evidence string) { ck.hit(i, c, a, m.byName, zh+" / "+en, evidence) }
	switch c.Kind {
	case KindSex:
		if (b.Sex == "1" || b.Sex == "2") && b.Sex != c.sex {
			say("限"+sexZh(c.sex)+"性使用，参保人为"+sexZh(b.Sex)+"性", "restricted to "+sexEn(c.sex)+" patients; the patient is "+sexEn(b.Sex),
				"sex="+b.Sex)
		}
	case KindAge:
		if hit, zh, en := ageHit(c.age, b); hit {
			ev := "age=" + strconv.Itoa(b.Age)
			if b.AgeDays > 0 {
				ev += "; age_days=" + strconv.Itoa(b.AgeDays)
			}
			if c.age.working {
				ev += "; sex=" + b.Sex
			}
			say("限"+c.Value+"（"+zh+"）使用，参保人"+strconv.Itoa(b.Age)+"岁",
				"restricted to "+en+"; the patient is "+strconv.Itoa(b.Age), ev)
		}
	case KindSetting:
		inpatient := b.VisitType == "inpatient"
		if c.inpat && !inpatient {
			say("限住院使用，本次为"+visitZh(b.VisitType), "inpatient use only; this is a "+visitEn(b.VisitType)+" bill", "visit_type="+b.VisitType)
		} else if !c.inpat && inpatient {
			say("限门诊使用，本次为住院", "outpatient use only; this is an inpatient bill", "visit_type="+b.VisitType)
		}
	case KindLevel:
		if b.Level < c.level {
			say(fmt.Sprintf("限%s及以上医疗机构使用，本机构为%s", levelZh(c.level), levelZh(b.Level)),
				fmt.Sprintf("restricted to level-%d or higher institutions; this institution is %s", c.level, levelEn(b.Level)),
				"level="+strconv.Itoa(b.Level))
		}
	case KindInsurance:
		if c.insu == "工伤" {
			say("限工伤保险支付，基本医疗保险不予支付", "payable by work-injury insurance only, not by medical insurance",
				"insutype="+orDash(b.Insutype))
		} else if b.Insutype != "510" {
			say("限生育保险支付，本次险种为"+orDash(b.Insutype), "payable by maternity insurance (510) only; this bill is under "+orDash(b.Insutype),
				"insutype="+orDash(b.Insutype))
		}
	case KindDiagnosis:
		if !diagnosisOK(c.prefixes, b.Diagnoses) {
			d := strings.Join(b.Diagnoses, ",")
			if d == "" {
				d = "none"
			}
			say("限定支付范围：须有诊断 "+c.Value, "payable only with a diagnosis starting "+c.Value, "diagnoses="+d)
		}
	case KindPriceCap:
		if ln.UnitPrice > c.cap {
			say("单价 "+yuan(ln.UnitPrice)+" 元超过限价 "+yuan(c.cap)+" 元", "unit price "+yuan(ln.UnitPrice)+" above the cap "+yuan(c.cap)+" yuan",
				fmt.Sprintf("unit_price=%d fen; cap=%d fen", ln.UnitPrice, c.cap))
		}
	case KindDuplicate:
		ck.duplicate(i, m, a)
	case KindCourse, KindFrequency, KindPeriod:
		key := countKey(c)
		if ck.counts == nil {
			ck.counts = map[string]*counter{}
		}
		cn := ck.counts[key]
		if cn == nil {
			cn = &counter{c: c}
			ck.counts[key] = cn
		}
		cn.occs = append(cn.occs, occ{line: i, order: i, w: ck.whens[i], ln: ln, m: m})
	case KindPrimarySecondary:
		key := c.Value + "\x00" + dayKey(ck.whens[i])
		if ck.groups == nil {
			ck.groups = map[string][]matchedLine{}
		}
		ck.groups[key] = append(ck.groups[key], matchedLine{i, m})
	}
}

func (ck *checker) builtins(i int) {
	ln, b := &ck.b.Lines[i], ck.b
	add := func(id string, k Kind, zh, en, ev string) {
		if a := ck.l.actions[k]; a != ActionOff {
			ck.hits = append(ck.hits, Hit{Rule: id, Kind: k, Sn: ln.Sn, Action: a, Message: zh + " / " + en, Evidence: ev, line: i})
		}
	}
	if ln.PriceCap > 0 && ln.UnitPrice > ln.PriceCap {
		add(RuleCatalogPriceCap, KindPriceCap, "单价 "+yuan(ln.UnitPrice)+" 元超过目录限价 "+yuan(ln.PriceCap)+" 元",
			"unit price "+yuan(ln.UnitPrice)+" above the catalog cap "+yuan(ln.PriceCap)+" yuan",
			fmt.Sprintf("unit_price=%d fen; price_cap=%d fen", ln.UnitPrice, ln.PriceCap))
	}
	if ln.Kind == TargetDrug && len(b.Elsewhere) > 0 {
		code, name := ck.codes[i], ck.names[i]
		for e := range b.Elsewhere {
			el := &b.Elsewhere[e]
			if el.Kind != "" && el.Kind != TargetDrug {
				continue
			}
			if !(code != "" && normCode(el.Code) == code || name != "" && normName(el.Name) == name) {
				continue
			}
			if we := parseWhen(el.Date); we.hasDay && ck.whens[i].hasDay && we.day != ck.whens[i].day {
				continue
			}
			add(RuleSameDayElsewhere, KindSameDayElsewhere, "同日已在其他机构开具同一药品", "the same drug was dispensed at another institution the same day",
				fmt.Sprintf("elsewhere sn=%s code=%s name=%s date=%s", el.Sn, el.Code, el.Name, orDash(el.Date)))
			break
		}
	}
}

// duplicate: the line is the sub item; the main item on the same day
// (visit, hour window) makes it a hit.
func (ck *checker) duplicate(i int, m matched, a Action) {
	c, lines := m.c, ck.b.Lines
	if ck.codeLines == nil {
		ck.codeLines, ck.nameLines = map[string][]int{}, map[string][]int{}
		for j := range lines {
			if k := ck.codes[j]; k != "" {
				ck.codeLines[k] = append(ck.codeLines[k], j)
			}
			if k := ck.names[j]; k != "" {
				ck.nameLines[k] = append(ck.nameLines[k], j)
			}
		}
	}
	var cand []int
	if c.mainCode != "" {
		cand = append(cand, ck.codeLines[c.mainCode]...)
	}
	if c.mainName != "" {
		cand = append(cand, ck.nameLines[c.mainName]...)
	}
	wi := ck.whens[i]
	found, unsure := -1, -1
	for _, j := range cand {
		if j == i || lineTarget(lines[j].Kind) == TargetDrug {
			continue
		}
		wj := ck.whens[j]
		switch c.scope {
		case "visit":
			found = j
		case "day":
			if wi.sameDay(wj) {
				found = j
			}
		case "hours":
			if wi.hasTime && wj.hasTime {
				if d := wi.min - wj.min; d < c.minutes && -d < c.minutes {
					found = j
				}
			} else if wi.sameDay(wj) && unsure < 0 {
				unsure = j
			}
		}
		if found >= 0 {
			break
		}
	}
	j := found
	scopeZh := map[string]string{"visit": "同次就诊", "day": "同日", "hours": c.Value + "内"}[c.scope]
	scopeEn := map[string]string{"visit": "in the same visit", "day": "on the same day",
		"hours": fmt.Sprintf("within %d hours", c.minutes/60)}[c.scope]
	if c.minutes == 60 {
		scopeEn = "within the same hour"
	}
	zhNote, enNote := "", ""
	if j < 0 {
		if j = unsure; j < 0 {
			return
		}
		// The hour window cannot be proven without times: warn only.
		a, zhNote, enNote = ActionWarn, "；收费时间不详，同日仅提示", "; time of day unknown (same day): warning only"
	}
	zh := fmt.Sprintf("重复收费：%s已收主项目「%s」", scopeZh, c.MainName)
	if c.Note != "" {
		zh += "（" + c.Note + "）"
	}
	mn := lines[j]
	ck.hit(i, c, a, m.byName, zh+zhNote+" / "+fmt.Sprintf("duplicate charge: main item %s %s, billed %s, includes this one", c.MainCode, c.MainName, scopeEn)+enNote,
		fmt.Sprintf("main sn=%s code=%s name=%s date=%s; this date=%s", mn.Sn, mn.Code, mn.Name, orDash(mn.Date), orDash(lines[i].Date)))
}

// course: the days a drug or item was used, counted over History and the
// bill; the line that takes the total above the limit, and every later
// one, is hit.
func (ck *checker) course(cn *counter) {
	sortOccs(cn.occs)
	c := cn.c
	covered := map[int]bool{}
	undated := 0
	var sns []string
	for _, o := range cn.occs {
		added := 0
		if o.w.hasDay {
			for d := range max(o.ln.Days, 1) {
				if !covered[o.w.day+d] {
					covered[o.w.day+d] = true
					added++
				}
			}
		} else if o.ln.Days > 0 {
			undated += o.ln.Days
			added = o.ln.Days
		}
		if added > 0 {
			sns = append(sns, snLabel(o))
		}
		used := len(covered) + undated
		if o.line >= 0 && added > 0 && used > c.days {
			ck.hit(o.line, o.m.c, ck.l.action(o.m.c), o.m.byName, fmt.Sprintf("限支付%d天，累计已%d天 / payable for at most %d days; %d days used with this line", c.days, used, c.days, used),
				fmt.Sprintf("days=%d; lines %s", used, strings.Join(sns, ", ")))
		}
	}
}

// frequency (and period): at most count units within window days.
func (ck *checker) frequency(cn *counter) {
	sortOccs(cn.occs)
	c := cn.c
	for k, o := range cn.occs {
		if o.line < 0 || qty(o.ln) <= 0 {
			continue
		}
		total := 0.0
		var parts []string
		for _, p := range cn.occs[:k+1] {
			if within(p.w, o.w, c.window) {
				total += qty(p.ln)
				parts = append(parts, snLabel(p)+"×"+strconv.FormatFloat(qty(p.ln), 'f', -1, 64))
			}
		}
		if total > c.count+1e-9 {
			span, spanEn, per := "当日", "on "+orDash(o.ln.Date), "day"
			if c.window > 1 {
				span, spanEn = fmt.Sprintf("%d天内", c.window), fmt.Sprintf("within %d days up to %s", c.window, orDash(o.ln.Date))
				per = fmt.Sprintf("%d days", c.window)
			}
			t := strconv.FormatFloat(total, 'f', -1, 64)
			ck.hit(o.line, o.m.c, ck.l.action(o.m.c), o.m.byName, fmt.Sprintf("限%s，%s累计%s次 / at most %g per %s; %s billed %s", c.Value, span, t, c.count, per, t, spanEn),
				"lines "+strings.Join(parts, ", "))
		}
	}
}

// primarySecondary: several different operations of one surgery group on
// one day: the most expensive is the main one, the others must be charged
// at the reduced rate.
func (ck *checker) primarySecondary(g []matchedLine) {
	lines := ck.b.Lines
	ident := func(j int) string {
		if ck.codes[j] != "" {
			return ck.codes[j]
		}
		return ck.names[j]
	}
	main := g[0].i
	distinct := map[string]bool{}
	for _, o := range g {
		j := o.i
		distinct[ident(j)] = true
		if lines[j].UnitPrice > lines[main].UnitPrice || lines[j].UnitPrice == lines[main].UnitPrice && j < main {
			main = j
		}
	}
	if len(distinct) < 2 {
		return
	}
	mn := lines[main]
	for _, o := range g {
		j, c := o.i, o.m.c
		if ident(j) == ident(main) {
			continue
		}
		ck.hit(j, c, ck.l.action(c), o.m.byName,
			fmt.Sprintf("同日同组（%s）多项手术，本项为次要手术，应按规定折价收费 / several operations of group %s on one day: this is a secondary operation and must be charged at the reduced rate", c.Value, c.Value),
			fmt.Sprintf("main sn=%s code=%s name=%s unit_price=%d fen; this unit_price=%d fen; date=%s", mn.Sn, mn.Code, mn.Name, mn.UnitPrice, lines[j].UnitPrice, orDash(lines[j].Date)))
	}
}

type matchedLine struct {
	i int
	m matched
}

func sortOccs(o []occ) {
	slices.SortStableFunc(o, func(a, b occ) int {
		da, db := a.w.day, b.w.day
		if !a.w.hasDay {
			da = math.MaxInt
		}
		if !b.w.hasDay {
			db = math.MaxInt
		}
		return cmp.Or(cmp.Compare(da, db), cmp.Compare(a.order, b.order))
	})
}

func within(earlier, later when, window int) bool {
	if !earlier.hasDay || !later.hasDay {
		return !earlier.hasDay && !later.hasDay
	}
	d := later.day - earlier.day
	return d >= 0 && d < window
}

func qty(l *Line) float64 {
	if l.Quantity == 0 {
		return 1
	}
	return l.Quantity
}

func snLabel(o occ) string {
	if o.line < 0 {
		return "history sn " + o.ln.Sn + " (" + orDash(o.ln.Date) + ")"
	}
	return "sn " + o.ln.Sn
}

func dayKey(w when) string {
	if !w.hasDay {
		return "-"
	}
	return strconv.Itoa(w.day)
}

func ageHit(a ageLimit, b *Bill) (hit bool, zh, en string) {
	switch {
	case a.newborn:
		if b.AgeDays > 0 {
			return b.AgeDays > NewbornMaxDays, "出生28天内", "newborns (first 28 days)"
		}
		return b.Age >= 1, "出生28天内", "newborns (first 28 days)"
	case a.working:
		hi := WorkingAgeMaxMale
		if b.Sex == "2" {
			hi = WorkingAgeMaxFemale
		}
		return b.Age < a.min || b.Age > hi, fmt.Sprintf("%d至%d岁", a.min, hi), fmt.Sprintf("working age (%d–%d)", a.min, hi)
	}
	switch {
	case a.min >= 0 && a.max >= 0:
		zh, en = fmt.Sprintf("%d至%d岁", a.min, a.max), fmt.Sprintf("ages %d–%d", a.min, a.max)
	case a.min >= 0:
		zh, en = fmt.Sprintf("%d岁及以上", a.min), fmt.Sprintf("ages %d and over", a.min)
	default:
		zh, en = fmt.Sprintf("不满%d岁", a.max+1), fmt.Sprintf("under %d", a.max+1)
	}
	return a.min >= 0 && b.Age < a.min || a.max >= 0 && b.Age > a.max, zh, en
}

func diagnosisOK(prefixes, diagnoses []string) bool {
	for _, d := range diagnoses {
		d = strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(d), ".", ""))
		for _, p := range prefixes {
			if strings.HasPrefix(d, p) {
				return true
			}
		}
	}
	return false
}

func sexZh(s string) string {
	switch s {
	case "1":
		return "男"
	case "2":
		return "女"
	}
	return "未知"
}

func sexEn(s string) string {
	switch s {
	case "1":
		return "male"
	case "2":
		return "female"
	}
	return "unknown"
}

func levelZh(l int) string {
	if l >= 1 && l <= 3 {
		return []string{"一级", "二级", "三级"}[l-1]
	}
	return "未定级"
}

func levelEn(l int) string {
	if l >= 1 && l <= 3 {
		return "level " + strconv.Itoa(l)
	}
	return "unrated"
}

var visits = map[string][2]string{
	"general_outpatient": {"普通门诊", "general outpatient"}, "chronic_outpatient": {"门诊慢特病", "chronic outpatient"},
	"outpatient": {"门诊", "outpatient"}, "emergency": {"急诊", "emergency"}, "pharmacy": {"定点药店购药", "pharmacy"},
	"inpatient": {"住院", "inpatient"},
}

func visitZh(v string) string {
	if s, ok := visits[v]; ok {
		return s[0]
	}
	return orDash(v)
}

func visitEn(v string) string {
	if s, ok := visits[v]; ok {
		return s[1]
	}
	return orDash(v)
}

func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
