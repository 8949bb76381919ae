package rules

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
)

const dataDir = "../../demo/data/review/"

var files = []struct {
	name string
	load func(io.Reader) ([]Rule, LoadReport, error)
}{
	{"nhsa_drug_codes_rules.csv", LoadDrugRules},
	{"nhsa_service_item_rules.csv", LoadItemRules},
	{"nhsa_service_item_duplicate_charge.csv", LoadDuplicates},
}

var (
	realOnce  sync.Once
	realRules []Rule
	realReps  []LoadReport
	realErr   error
)

// loadReal loads the three NHSA files shipped in demo/data/review.
func loadReal(tb testing.TB) ([]Rule, []LoadReport) {
	tb.Helper()
	realOnce.Do(func() {
		for _, f := range files {
			b, err := os.ReadFile(dataDir + f.name)
			if err != nil {
				realErr = err
				return
			}
			rs, rep, err := f.load(strings.NewReader(string(b)))
			if err != nil {
				realErr = fmt.Errorf("%s: %w", f.name, err)
				return
			}
			realRules = append(realRules, rs...)
			realReps = append(realReps, rep)
		}
	})
	if realErr != nil {
		tb.Fatal(realErr)
	}
	return realRules, realReps
}

func TestLoadRealFiles(t *testing.T) {
	_, reps := loadReal(t)
	want := []struct {
		rows, derived int
		loaded        map[Kind]int
	}{
		{13827, 0, map[Kind]int{KindSex: 6472, KindAge: 4398, KindCourse: 1147, KindLevel: 962, KindSetting: 736, KindInsurance: 112}},
		{891, 12, map[Kind]int{KindSex: 390, KindAge: 31, KindPrimarySecondary: 378, KindFrequency: 67, KindPeriod: 14, KindCourse: 11}},
		{900, 0, map[Kind]int{KindDuplicate: 900}},
	}
	for i, w := range want {
		r := reps[i]
		t.Logf("%s: %s", files[i].name, r)
		if r.Rows != w.rows || r.Derived != w.derived || !reflect.DeepEqual(r.Loaded, w.loaded) || len(r.Skipped) != 0 {
			t.Errorf("%s: got rows %d derived %d loaded %v skipped %v; want %d %d %v none",
				files[i].name, r.Rows, r.Derived, r.Loaded, r.Skipped, w.rows, w.derived, w.loaded)
		}
	}
}

func TestRealLibrary(t *testing.T) {
	rules, _ := loadReal(t)
	lib := NewLibrary(rules, nil)
	if errs := lib.Rejected(); len(errs) != 0 {
		t.Fatalf("rejected: %v", errs[:min(len(errs), 5)])
	}
	want := map[Kind]int{KindSex: 6862, KindAge: 4429, KindCourse: 1158, KindLevel: 962, KindSetting: 736, KindInsurance: 112,
		KindPrimarySecondary: 378, KindFrequency: 67, KindPeriod: 14, KindDuplicate: 900}
	if got := lib.Stats(); !reflect.DeepEqual(got, want) {
		t.Errorf("stats %v, want %v", got, want)
	}
	if lib.Len() != 13827+891+900 {
		t.Errorf("len %d", lib.Len())
	}
	// Values derived from notes.
	for id, v := range map[string]string{"item:age:003402000320000": "法定就业年龄", "item:course:003402000210000": "30天",
		"item:course:003402000350000": "365天", "item:course:003402000050000": "90天", "drug:course:XL01FDP138B002010181735": "365天"} {
		if r, ok := lib.Rule(id); !ok || r.Value != v {
			t.Errorf("%s: %+v, want value %s", id, r, v)
		}
	}
	// An operation in four surgery groups keeps four rules.
	for _, g := range []string{"女性生殖系统手术组", "肝胆手术组", "经腹直肠手术组", "胃肠手术组"} {
		if _, ok := lib.Rule("item:primary_secondary:003310030080000:" + g); !ok {
			if r, ok := lib.Rule("item:primary_secondary:003310030080000"); !ok || r.Value != g {
				t.Errorf("003310030080000 in %s: no rule", g)
			}
		}
	}
}

func TestLoadSkips(t *testing.T) {
	in := "nhsa_batch,rule_note,rule_value,rule_type,generic_name,nhsa_drug_code,extra\n" + // columns in another order
		"第一批,,男,限定性别对象,甲药,X001,\n" +
		"第一批,,3次/月,限定频次,乙药,X002,\n" + // cannot read the value
		"第一批,,,限定支付疗程,丙药,X003,\n" + // empty, nothing in the note
		"第一批,支付不超过30天。,,限定支付疗程,丁药,X004,\n" + // from the note
		"第九批,,限门诊,限定支付范围,戊药,X005,\n" + // unknown type
		"第一批,,男\n" + // short row
		"第一批,,未成年,限定年龄对象,己药,X006,\n"
	rules, rep, err := LoadDrugRules(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 || rules[0].ID != "drug:sex:X001" || rules[1].Value != "30天" || rep.Derived != 1 || rep.Rows != 7 {
		t.Fatalf("rules %+v report %+v", rules, rep)
	}
	got := map[int]string{}
	for _, s := range rep.Skipped {
		got[s.Row] = s.Reason
	}
	want := map[int]string{3: "value \"3次/月\"", 4: "empty rule_value", 6: "unknown rule_type", 7: "fields", 8: "value \"未成年\""}
	for row, w := range want {
		if !strings.Contains(got[row], w) {
			t.Errorf("line %d: reason %q, want %q", row, got[row], w)
		}
	}
	if len(rep.Skipped) != len(want) {
		t.Errorf("skipped %+v", rep.Skipped)
	}
	if s := rep.String(); !strings.Contains(s, "5 skipped") || !strings.Contains(s, "1× unknown rule_type") {
		t.Errorf("summary %q", s)
	}
	if _, _, err := LoadItemRules(strings.NewReader("item_code,item_name\n")); err == nil {
		t.Error("missing columns: no error")
	}
	if _, _, err := LoadDuplicates(strings.NewReader("")); err == nil {
		t.Error("empty file: no error")
	}
	if _, _, err := LoadDuplicates(strings.NewReader("frequency_scope,main_item_code,main_item_name,sub_item_code,sub_item_name,note,nhsa_batch\n\"x,\n")); err == nil {
		t.Error("bad CSV: no error")
	}
}

type testCase struct {
	Name string `json:"name"`
	Note string `json:"note"`
	Bill Bill   `json:"bill"`
	Want []Hit  `json:"want"`
}

func TestCases(t *testing.T) {
	b, err := os.ReadFile("testdata/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Rules []Rule     `json:"rules"`
		Cases []testCase `json:"cases"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	real, _ := loadReal(t)
	lib := NewLibrary(append(append([]Rule{}, real...), doc.Rules...), nil)
	if errs := lib.Rejected(); len(errs) != 0 {
		t.Fatal(errs)
	}
	kinds := map[Kind]bool{}
	for _, c := range doc.Cases {
		t.Run(c.Name, func(t *testing.T) {
			hits := lib.Check(c.Bill)
			got := make([]Hit, len(hits))
			for i, h := range hits {
				got[i] = Hit{Rule: h.Rule, Kind: h.Kind, Sn: h.Sn, Action: h.Action}
				kinds[h.Kind] = true
				zh, en, ok := strings.Cut(h.Message, " / ")
				if !ok || zh == "" || en == "" || h.Evidence == "" {
					t.Errorf("hit %+v: want a bilingual message and evidence", h)
				}
				t.Logf("%s %s: %s [%s]", h.Sn, h.Rule, h.Message, h.Evidence)
			}
			want := c.Want
			if want == nil {
				want = []Hit{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
			if again := lib.Check(c.Bill); !reflect.DeepEqual(again, hits) {
				t.Error("not deterministic")
			}
		})
	}
	for _, k := range Kinds {
		if !kinds[k] {
			t.Errorf("no case hits kind %s", k)
		}
	}
}

func TestActions(t *testing.T) {
	rules := []Rule{
		{ID: "a", Kind: KindSex, Code: "X1", Value: "男"},
		{ID: "b", Kind: KindAge, Code: "X1", Value: "儿童", Action: ActionBlock},
		{ID: "c", Kind: KindLevel, Code: "X1", Value: "三级"},
		{ID: "c", Kind: KindLevel, Code: "X2", Value: "三级"},           // duplicate id
		{ID: "d", Kind: KindSex, Code: "X1", Value: "中性"},             // bad value
		{ID: "e", Kind: KindSameDayElsewhere, Code: "X1", Value: "x"}, // built in
		{ID: "f", Kind: KindAge, Value: "儿童"},                         // no code, no name
		{ID: "g", Kind: KindDuplicate, Code: "S1", Value: "单日"},       // no main item
		{ID: "h", Kind: KindDiagnosis, Code: "X1", Value: "肺炎"},       // not ICD-10
	}
	lib := NewLibrary(rules, map[Kind]Action{KindLevel: ActionOff, KindSex: ActionWarn, "colour": ActionWarn, KindAge: "maybe"})
	if n := len(lib.Rejected()); n != 8 {
		t.Errorf("rejected %d: %v", n, lib.Rejected())
	}
	hits := lib.Check(Bill{Sex: "2", Age: 30, Level: 1, Lines: []Line{{Sn: "1", Code: "x1", Kind: "drug"}}})
	if len(hits) != 2 || hits[0].Action != ActionWarn || hits[1].Rule != "b" || hits[1].Action != ActionBlock {
		t.Errorf("hits %+v", hits)
	}
	if a := lib.Actions(); a[KindLevel] != ActionOff || a[KindAge] != ActionSelfPay || a[KindDuplicate] != ActionBlock {
		t.Errorf("actions %v", a)
	}
	off := NewLibrary(nil, map[Kind]Action{KindPriceCap: ActionOff, KindSameDayElsewhere: ActionBlock})
	hits = off.Check(Bill{Lines: []Line{{Sn: "1", Code: "D", Kind: "drug", UnitPrice: 9, PriceCap: 1}},
		Elsewhere: []Line{{Code: "D", Kind: "drug"}}})
	if len(hits) != 1 || hits[0].Kind != KindSameDayElsewhere || hits[0].Action != ActionBlock {
		t.Errorf("hits %+v", hits)
	}
}

func TestValues(t *testing.T) {
	ok := map[Kind][]string{
		KindSex:              {"男", "女", "女性"},
		KindAge:              {"儿童", "婴幼儿", "新生儿", "法定就业年龄", "60岁以上", "60岁及以上", "14岁以下", "不满6岁", "6-17岁", "1至14岁", "65周岁以上"},
		KindCourse:           {"3天", "365天"},
		KindLevel:            {"二级", "三级", "二级及以上", "2级"},
		KindSetting:          {"住院", "门诊"},
		KindInsurance:        {"工伤", "生育", "生育保险"},
		KindFrequency:        {"1次/日", "1次/天", "24次/小时", "2次/7天", "3次/周"},
		KindPeriod:           {"1次/14天"},
		KindPrimarySecondary: {"胃肠手术组"},
		KindDiagnosis:        {"I63", "E10,E11", "E11.9、O24", "c50"},
		KindPriceCap:         {"2500", "25元", "25.5元", "25.50元"},
	}
	bad := map[Kind][]string{
		KindSex:       {"", "M"},
		KindAge:       {"成人", "17-6岁", "不满0岁"},
		KindCourse:    {"0天", "两周", "12个月"},
		KindLevel:     {"四级", "二甲"},
		KindSetting:   {"急诊"},
		KindInsurance: {"大病"},
		KindFrequency: {"3次/月", "0次/日", "12次/小时"},
		KindDiagnosis: {"肺炎", ",", "I63;*"},
		KindPriceCap:  {"25.555元", "-1", "25.00"},
	}
	for k, vs := range ok {
		for _, v := range vs {
			if err := (Rule{ID: "x", Kind: k, Code: "C", Value: v}).Validate(); err != nil {
				t.Errorf("%s %q: %v", k, v, err)
			}
		}
	}
	for k, vs := range bad {
		for _, v := range vs {
			if err := (Rule{ID: "x", Kind: k, Code: "C", Value: v}).Validate(); err == nil {
				t.Errorf("%s %q: no error", k, v)
			}
		}
	}
	c, _ := compile(Rule{ID: "x", Kind: KindPriceCap, Code: "C", Value: "25.5元"})
	if c.cap != 2550 {
		t.Errorf("25.5元 = %d fen", c.cap)
	}
	for _, v := range []string{"单日", "单次就诊", "6小时", "同一小时"} {
		if err := (Rule{ID: "x", Kind: KindDuplicate, Code: "S", MainCode: "M", Value: v}).Validate(); err != nil {
			t.Errorf("duplicate %q: %v", v, err)
		}
	}
	if err := (Rule{ID: "x", Kind: KindDuplicate, Code: "S", MainCode: "s", Value: "单日"}).Validate(); err == nil {
		t.Error("main = sub: no error")
	}
}

func TestAgeBoundaries(t *testing.T) {
	cases := []struct {
		value     string
		age, days int
		sex       string
		hit       bool
	}{
		{"儿童", 0, 0, "1", false}, {"儿童", 17, 0, "1", false}, {"儿童", 18, 0, "1", true},
		{"婴幼儿", 2, 0, "1", false}, {"婴幼儿", 3, 0, "1", true},
		{"新生儿", 0, 28, "1", false}, {"新生儿", 0, 29, "1", true}, {"新生儿", 0, 0, "1", false}, {"新生儿", 1, 0, "1", true},
		{"法定就业年龄", 15, 0, "1", true}, {"法定就业年龄", 16, 0, "1", false}, {"法定就业年龄", 60, 0, "1", false},
		{"法定就业年龄", 61, 0, "1", true}, {"法定就业年龄", 55, 0, "2", false}, {"法定就业年龄", 56, 0, "2", true},
		{"14岁以下", 14, 0, "1", false}, {"14岁以下", 15, 0, "1", true}, {"不满6岁", 5, 0, "1", false}, {"不满6岁", 6, 0, "1", true},
		{"6-17岁", 5, 0, "1", true}, {"6-17岁", 6, 0, "1", false}, {"6-17岁", 17, 0, "1", false}, {"6-17岁", 18, 0, "1", true},
	}
	for _, c := range cases {
		lib := NewLibrary([]Rule{{ID: "r", Kind: KindAge, Code: "C", Value: c.value}}, nil)
		hits := lib.Check(Bill{Age: c.age, AgeDays: c.days, Sex: c.sex, Lines: []Line{{Sn: "1", Code: "C"}}})
		if (len(hits) == 1) != c.hit {
			t.Errorf("%s age %d days %d sex %s: hits %v, want hit=%v", c.value, c.age, c.days, c.sex, hits, c.hit)
		}
	}
}

func TestLevelsAndDiagnoses(t *testing.T) {
	lib := NewLibrary([]Rule{
		{ID: "l2", Kind: KindLevel, Code: "A", Value: "二级"},
		{ID: "l3", Kind: KindLevel, Code: "B", Value: "三级"},
		{ID: "dx", Kind: KindDiagnosis, Code: "C", Value: "E11.9, O24"},
	}, nil)
	for level, want := range map[int]string{0: "l2 l3", 1: "l2 l3", 2: "l3", 3: ""} {
		var got []string
		for _, h := range lib.Check(Bill{Level: level, Lines: []Line{{Sn: "1", Code: "A"}, {Sn: "2", Code: "B"}}}) {
			got = append(got, h.Rule)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("level %d: %v, want %s", level, got, want)
		}
	}
	for dx, hit := range map[string]bool{"E11.900": false, "e11.9": false, "E119": false, "E11.0": true, "O24.4": false, "O2": true, "": true} {
		var ds []string
		if dx != "" {
			ds = []string{"J18.9", dx}
		}
		if got := len(lib.Check(Bill{Diagnoses: ds, Lines: []Line{{Sn: "1", Code: "C"}}})) == 1; got != hit {
			t.Errorf("diagnosis %q: hit %v, want %v", dx, got, hit)
		}
	}
}

func TestNames(t *testing.T) {
	for a, b := range map[string]string{
		"小儿复方氨基酸注射液(18AA-Ⅰ)": "小儿复方氨基酸注射液（18aa-I）",
		"注射用 尤瑞克林":           "注射用尤瑞克林",
		"ω-3鱼油脂肪乳注射液":        "ω－3鱼油脂肪乳注射液",
	} {
		if normName(a) != normName(b) {
			t.Errorf("%q (%q) != %q (%q)", a, normName(a), b, normName(b))
		}
	}
	lib := NewLibrary([]Rule{{ID: "r", Kind: KindSex, Target: TargetDrug, Code: "X1", Name: "小儿复方氨基酸注射液(18AA-Ⅰ)", Value: "女"}}, nil)
	if hits := lib.Check(Bill{Sex: "1", Lines: []Line{{Sn: "7", Code: "LOCAL", Name: "小儿复方氨基酸注射液（18AA-I）", Kind: "drug"}}}); len(hits) != 1 ||
		!strings.Contains(hits[0].Evidence, "matched by name") {
		t.Errorf("hits %+v", hits)
	}
}

func TestDates(t *testing.T) {
	for s, w := range map[string]when{
		"2025-03-01":          {day: 20148, min: 20148 * 1440, hasDay: true},
		"2025-03-01 08:30:00": {day: 20148, min: 20148*1440 + 510, hasDay: true, hasTime: true},
		"2025-03-01T08:30":    {day: 20148, min: 20148*1440 + 510, hasDay: true, hasTime: true},
		"20250301":            {day: 20148, min: 20148 * 1440, hasDay: true},
		"20250301083000":      {day: 20148, min: 20148*1440 + 510, hasDay: true, hasTime: true},
		"03/01/2025":          {},
		"":                    {},
	} {
		if got := parseWhen(s); got != w {
			t.Errorf("%q: %+v, want %+v", s, got, w)
		}
	}
}

func TestRefundOffsets(t *testing.T) {
	lib := NewLibrary([]Rule{{ID: "f", Kind: KindFrequency, Code: "S", Value: "1次/日"}}, nil)
	hits := lib.Check(Bill{Lines: []Line{
		{Sn: "1", Code: "S", Quantity: 1, Date: "2025-03-01"},
		{Sn: "2", Code: "S", Quantity: -1, Date: "2025-03-01"},
		{Sn: "3", Code: "S", Quantity: 1, Date: "2025-03-01"},
	}})
	if len(hits) != 0 {
		t.Errorf("hits %+v", hits)
	}
}
