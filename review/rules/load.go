package rules

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// LoadReport says what a loader made of a file.
type LoadReport struct {
	Rows   int          `json:"rows"`   // data rows read (without the header)
	Loaded map[Kind]int `json:"loaded"` // rules made, by kind
	// Derived counts rules whose empty rule_value was read from rule_note
	// (e.g. 限定疗程 "支付不超过30天。" → 30天).
	Derived int    `json:"derived"`
	Skipped []Skip `json:"skipped"` // rows not loaded
}

// Skip is a row a loader could not interpret.
type Skip struct {
	Row      int    `json:"row"` // line number in the file; the header is line 1
	RuleType string `json:"rule_type"`
	Value    string `json:"value"`
	Reason   string `json:"reason"`
}

// Total is the number of rules loaded.
func (r LoadReport) Total() int {
	n := 0
	for _, v := range r.Loaded {
		n += v
	}
	return n
}

// SkippedBy counts the skipped rows by reason.
func (r LoadReport) SkippedBy() map[string]int {
	m := map[string]int{}
	for _, s := range r.Skipped {
		m[s.Reason]++
	}
	return m
}

// String is a one-line summary: rows, rules by kind, derived, skipped.
func (r LoadReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d rows, %d rules", r.Rows, r.Total())
	for _, k := range Kinds {
		if n := r.Loaded[k]; n > 0 {
			fmt.Fprintf(&b, " %s=%d", k, n)
		}
	}
	fmt.Fprintf(&b, ", %d derived from notes, %d skipped", r.Derived, len(r.Skipped))
	by := r.SkippedBy()
	for _, reason := range slices.Sorted(maps.Keys(by)) {
		fmt.Fprintf(&b, "; %d× %s", by[reason], reason)
	}
	return b.String()
}

// ruleTypes maps the NHSA rule_type to a kind.
var ruleTypes = map[string]Kind{
	"限定性别对象": KindSex,
	"限定年龄对象": KindAge,
	"限定年龄":   KindAge,
	"限定支付疗程": KindCourse,
	"限定疗程":   KindCourse,
	"限定机构等级": KindLevel,
	"限定就医方式": KindSetting,
	"限定保险类型": KindInsurance,
	"限定频次":   KindFrequency,
	"限定周期":   KindPeriod,
	"限定主次操作": KindPrimarySecondary,
}

// LoadDrugRules reads the NHSA drug rule library (nhsa_drug_codes_rules.csv:
// nhsa_drug_code, generic_name, rule_type, rule_value, rule_note,
// nhsa_batch). Rule IDs are "drug:<kind>:<code>".
func LoadDrugRules(r io.Reader) ([]Rule, LoadReport, error) {
	return load(r, []string{"nhsa_drug_code", "generic_name", "rule_type", "rule_value", "rule_note", "nhsa_batch"},
		func(f []string) rowRule {
			return rowRule{target: TargetDrug, prefix: "drug", code: f[0], name: f[1], typ: f[2], value: f[3], note: f[4], batch: f[5], library: "药品规则库"}
		})
}

// LoadItemRules reads the NHSA service-item rule library
// (nhsa_service_item_rules.csv: item_code, item_name, rule_type,
// rule_value, rule_note, nhsa_batch). Rule IDs are "item:<kind>:<code>",
// with ":<value>" added when an item has several rules of one kind (an
// operation in several surgery groups).
func LoadItemRules(r io.Reader) ([]Rule, LoadReport, error) {
	return load(r, []string{"item_code", "item_name", "rule_type", "rule_value", "rule_note", "nhsa_batch"},
		func(f []string) rowRule {
			return rowRule{target: TargetService, prefix: "item", code: f[0], name: f[1], typ: f[2], value: f[3], note: f[4], batch: f[5], library: "项目规则库"}
		})
}

// LoadDuplicates reads the NHSA duplicate-charge library
// (nhsa_service_item_duplicate_charge.csv: frequency_scope,
// main_item_code, main_item_name, sub_item_code, sub_item_name, note,
// nhsa_batch). Each row is a KindDuplicate rule on the sub item; rule IDs
// are "dup:<main code>:<sub code>".
func LoadDuplicates(r io.Reader) ([]Rule, LoadReport, error) {
	return load(r, []string{"frequency_scope", "main_item_code", "main_item_name", "sub_item_code", "sub_item_name", "note", "nhsa_batch"},
		func(f []string) rowRule {
			return rowRule{target: TargetService, prefix: "dup", typ: "重复收费", kind: KindDuplicate, value: f[0], mainCode: f[1], mainName: f[2],
				code: f[3], name: f[4], note: f[5], batch: f[6], library: "项目规则库"}
		})
}

type rowRule struct {
	target, prefix, library      string
	code, name, typ, value, note string
	batch, mainCode, mainName    string
	kind                         Kind // set by LoadDuplicates; otherwise from typ
}

var (
	reNoteDays = regexp.MustCompile(`不超过(\d{1,4})天`)
	reNoteYear = regexp.MustCompile(`不超过(一|1)年`)
)

// derive reads a rule value the file left empty from its note.
func derive(k Kind, note string) (string, bool) {
	switch k {
	case KindCourse:
		if m := reNoteDays.FindStringSubmatch(note); m != nil {
			return m[1] + "天", true
		}
		if reNoteYear.MatchString(note) {
			return "365天", true
		}
	case KindAge:
		if strings.Contains(note, "就业年龄") {
			return "法定就业年龄", true
		}
	}
	return "", false
}

func load(r io.Reader, header []string, row func([]string) rowRule) ([]Rule, LoadReport, error) {
	rep := LoadReport{Loaded: map[Kind]int{}, Skipped: []Skip{}}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, rep, errors.New("rules: empty file")
	}
	if err != nil {
		return nil, rep, fmt.Errorf("rules: header: %w", err)
	}
	if len(head) > 0 {
		head[0] = strings.TrimPrefix(head[0], "\ufeff")
	}
	col := make([]int, len(header))
	for i, h := range header {
		col[i] = slices.Index(head, h)
		if col[i] < 0 {
			return nil, rep, fmt.Errorf("rules: header has no column %q (have %s)", h, strings.Join(head, ","))
		}
	}
	var out []Rule
	ids := map[string]bool{}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, rep, fmt.Errorf("rules: line %d: %w", line, err)
		}
		rep.Rows++
		f := make([]string, len(header))
		short := false
		for i, c := range col {
			if c >= len(rec) {
				short = true
				break
			}
			f[i] = strings.TrimSpace(rec[c])
		}
		if short {
			rep.Skipped = append(rep.Skipped, Skip{Row: line, Reason: fmt.Sprintf("%d fields, want %d", len(rec), len(head))})
			continue
		}
		rr := row(f)
		kind := rr.kind
		if kind == "" {
			var ok bool
			if kind, ok = ruleTypes[rr.typ]; !ok {
				rep.Skipped = append(rep.Skipped, Skip{Row: line, RuleType: rr.typ, Value: rr.value, Reason: "unknown rule_type"})
				continue
			}
		}
		value := rr.value
		derived := false
		if value == "" {
			if value, derived = derive(kind, rr.note); !derived {
				rep.Skipped = append(rep.Skipped, Skip{Row: line, RuleType: rr.typ, Value: rr.value, Reason: "empty rule_value, none in rule_note"})
				continue
			}
		}
		id := rr.prefix + ":" + string(kind) + ":" + rr.code
		if kind == KindDuplicate {
			id = rr.prefix + ":" + rr.mainCode + ":" + rr.code
		}
		if ids[id] {
			id += ":" + value
		}
		if ids[id] {
			id += "#" + strconv.Itoa(line)
		}
		src := fmt.Sprintf("%s %s %s, line %d", rr.library, rr.batch, rr.typ, line)
		if derived {
			src += " (value from rule_note)"
		}
		ru := Rule{ID: id, Kind: kind, Target: rr.target, Code: rr.code, Name: rr.name, Value: value,
			MainCode: rr.mainCode, MainName: rr.mainName, Note: rr.note, Source: src}
		if err := ru.Validate(); err != nil {
			msg := err.Error()
			if i := strings.LastIndex(msg, "): "); i >= 0 {
				msg = msg[i+3:]
			}
			rep.Skipped = append(rep.Skipped, Skip{Row: line, RuleType: rr.typ, Value: rr.value, Reason: msg})
			continue
		}
		ids[id] = true
		if derived {
			rep.Derived++
		}
		rep.Loaded[kind]++
		out = append(out, ru)
	}
	return out, rep, nil
}
