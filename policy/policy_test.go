package policy

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"yibao"
	"yibao/money"
)

func TestValidateNamesTheField(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(p *Policy)
		field string
	}{
		{"negative deductible", func(p *Policy) { p.Schemes["310"].Inpatient.Deductible.ByLevel["3"] = -1 }, "schemes[310].inpatient.deductible.by_level[3]"},
		{"ratio above one", func(p *Policy) { p.Schemes["390"].Inpatient.Ratio.ByLevel["2"] = money.MustRatio(11, 10) }, "schemes[390].inpatient.ratio.by_level[2]"},
		{"bad admdvs", func(p *Policy) { p.Admdvs = "37" }, "admdvs"},
		{"bad date", func(p *Policy) { p.EffectiveFrom = "2026-02-30" }, "effective_from"},
		{"bands out of order", func(p *Policy) {
			p.Schemes["390"].CriticalIllness.Bands[1].From = 0
		}, "schemes[390].critical_illness.bands[1].from"},
		{"unknown cap kind", func(p *Policy) { p.Schemes["310"].Inpatient.Caps[0].Kind = "total" }, "schemes[310].inpatient.caps[0].kind"},
		{"same_as chain", func(p *Policy) { p.Schemes["310"].Emergency.SameAs = "nowhere" }, "schemes[310].emergency.same_as"},
		{"unknown status", func(p *Policy) { p.Schemes["310"].CrossRegion.ByStatus["abroad"] = &CrossRule{} }, "schemes[310].cross_region.by_status[abroad]"},
		{"bad layer", func(p *Policy) { p.Schemes["310"].Inpatient.Layers = []string{"dental"} }, "schemes[310].inpatient.layers[0]"},
		{"bad rounding", func(p *Policy) { p.Rounding = "bankers" }, "rounding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := DemoPolicy()
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(p)
			err = p.Validate()
			e, ok := err.(*yibao.Error)
			if !ok || e.Code != yibao.CodeInvalid || e.Field != tt.field {
				t.Fatalf("want invalid %s, got %v (%#v)", tt.field, err, err)
			}
			if _, err := Calc(p, BenchInput(), Options{}); err == nil {
				t.Fatal("Calc accepted a policy that failed validation")
			}
		})
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	p, _ := DemoPolicy()
	p.Version = ""
	p.Schemes["310"].Inpatient.Deductible.ByLevel["1"] = -5
	err := p.Validate()
	if err == nil || !strings.Contains(err.Error(), "version") || !strings.Contains(err.Error(), "by_level[1]") {
		t.Fatalf("want both problems, got %v", err)
	}
}

func TestRunCalcRejectsUnknownFields(t *testing.T) {
	var out bytes.Buffer
	req := `{"policy": ` + string(DemoPolicyJSON()) + `, "person": {"insutype": "310", "category": "active", "age": 40, "salary": 1},
	  "visit": {"type": "general_outpatient", "level": 1, "settlement_date": "2026-02-01"}, "accumulators": {"admissions": 0, "acct_balc": "0"}, "lines": []}`
	err := RunCalc(strings.NewReader(req), &out, false)
	if yibao.ErrorCode(err) != yibao.CodeMalformed || !strings.Contains(err.Error(), "salary") {
		t.Fatalf("want malformed on salary, got %v", err)
	}
	bad := strings.Replace(req, `, "salary": 1`, "", 1)
	bad = strings.Replace(bad, `"acct_balc": "0"`, `"acct_balc": 12.5`, 1)
	if err := RunCalc(strings.NewReader(bad), &out, false); yibao.ErrorCode(err) != yibao.CodeMalformed {
		t.Fatalf("amounts must be yuan strings, got %v", err)
	}
}

func TestExplainOnlyWhenAsked(t *testing.T) {
	p, _ := DemoPolicy()
	res, err := Calc(p, BenchInput(), Options{})
	if err != nil || res.Explain != nil {
		t.Fatalf("explain built without being asked: %v", err)
	}
	res, _ = Calc(p, BenchInput(), Options{Explain: true})
	if len(res.Explain) < 3 || res.Explain[0].ZH == "" || res.Explain[0].EN == "" {
		t.Fatalf("explain missing: %+v", res.Explain)
	}
}

func TestSelectByBasisDate(t *testing.T) {
	a, _ := DemoPolicy()
	b, _ := DemoPolicy()
	a.Version, a.EffectiveFrom, a.EffectiveTo = "2025", "2025-01-01", "2025-12-31"
	b.Version = "2026"
	stay := &Visit{Type: Inpatient, AdmissionDate: "2025-12-20", DischargeDate: "2026-01-03", SettlementDate: "2026-01-03"}
	got, err := Select([]*Policy{a, b}, "370100", stay)
	if err != nil || got.Version != "2026" {
		t.Fatalf("want 2026 by discharge date, got %v %v", got, err)
	}
	a.DateBasis.Inpatient = ByAdmission
	b.DateBasis.Inpatient = ByAdmission
	if got, _ := Select([]*Policy{a, b}, "370100", stay); got == nil || got.Version != "2025" {
		t.Fatalf("want 2025 by admission date, got %v", got)
	}
	if _, err := Select([]*Policy{a, b}, "110100", stay); yibao.ErrorCode(err) != yibao.CodeNotFound {
		t.Fatalf("want not_found, got %v", err)
	}
}

func TestInputBounds(t *testing.T) {
	p, _ := DemoPolicy()
	in := BenchInput()
	huge := MaxLineFen + 1
	in.Lines[0].Amount = &huge
	if _, err := Calc(p, in, Options{}); yibao.ErrorCode(err) != yibao.CodeInvalid {
		t.Fatalf("want invalid for a huge line, got %v", err)
	}
	in = BenchInput()
	in.Accumulators.Counters["fund"] = -1
	if _, err := Calc(p, in, Options{}); yibao.ErrorCode(err) != yibao.CodeInvalid {
		t.Fatalf("want invalid for a negative counter, got %v", err)
	}
}

// TestDocsExample keeps the full example in docs/policy.md in step with
// the calculator.
func TestDocsExample(t *testing.T) {
	req, err := os.ReadFile("testdata/calc_example_request.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/policy.md")
	if err != nil {
		t.Skip("docs/policy.md not present")
	}
	var out bytes.Buffer
	if err := RunCalc(bytes.NewReader(req), &out, true); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc, bytes.TrimSpace(req)) {
		t.Error("docs/policy.md does not show testdata/calc_example_request.json")
	}
	if !bytes.Contains(doc, bytes.TrimSpace(out.Bytes())) {
		t.Errorf("docs/policy.md shows a stale response; the calculator now gives:\n%s", out.String())
	}
}
