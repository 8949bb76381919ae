package demo

import (
	"bytes"
	"reflect"
	"testing"

	"yibao/money"
	"yibao/policy"
)

func TestDemoPoliciesLoadAndDiffer(t *testing.T) {
	if !reflect.DeepEqual(Policies(), PolicyDocs("37")) {
		t.Fatal(`Policies is not PolicyDocs("37")`)
	}
	seen := map[string]bool{}
	capital := map[string]*policy.Policy{}
	for _, prov := range Provinces() {
		regions := map[string]bool{}
		for _, r := range BuildProvince(prov).Regions {
			regions[r.Admdvs] = true
		}
		docs := PolicyDocs(prov)
		for _, doc := range docs {
			p, err := policy.LoadPolicy(bytes.NewReader(doc))
			if err != nil {
				t.Fatalf("province %s: %v", prov, err)
			}
			key := p.Admdvs + "/" + p.Version
			if seen[key] {
				t.Fatalf("%s twice", key)
			}
			seen[key] = true
			if p.Version[:6] != p.Admdvs || !regions[p.Admdvs] {
				t.Fatalf("province %s: version %s of region %s", prov, p.Version, p.Admdvs)
			}
			checkCrossRegion(t, prov, p)
			if p.Admdvs == BuildProvince(prov).CapitalRegion() && capital[prov] == nil {
				capital[prov] = p
			}
		}
		if len(docs) != 4 {
			t.Fatalf("province %s: %d policies", prov, len(docs))
		}
	}
	if len(seen) != 4*len(Provinces()) {
		t.Fatalf("%d policies", len(seen))
	}
	// A few figures differ between provinces.
	for _, a := range Provinces() {
		for _, b := range Provinces() {
			if a < b && reflect.DeepEqual(capital[a].Schemes, capital[b].Schemes) {
				t.Errorf("provinces %s and %s have the same schemes", a, b)
			}
		}
	}
}

// checkCrossRegion: long-term filed as local, referred −5 points,
// temporary −10, unregistered −20 with a higher out-of-province deductible;
// Jiangsu and Guangdong add a 10% first-pay for the unregistered.
func checkCrossRegion(t *testing.T, prov string, p *policy.Policy) {
	t.Helper()
	for insutype, s := range p.Schemes {
		cr := s.CrossRegion
		if cr == nil {
			t.Errorf("%s %s: no cross_region", p.Version, insutype)
			continue
		}
		cut := func(st string) string {
			if r := cr.ByStatus[st]; r != nil && r.RatioCut != nil {
				return r.RatioCut.String()
			}
			return ""
		}
		lt := cr.ByStatus[policy.LongTerm]
		if lt == nil || !reflect.DeepEqual(*lt, policy.CrossRule{}) {
			t.Errorf("%s %s: long_term %+v, want local rules", p.Version, insutype, lt)
		}
		if cut(policy.Referred) != "0.05" || cut(policy.Temporary) != "0.1" || cut(policy.Unregistered) != "0.2" {
			t.Errorf("%s %s: cuts %s %s %s", p.Version, insutype, cut(policy.Referred), cut(policy.Temporary), cut(policy.Unregistered))
		}
		un := cr.ByStatus[policy.Unregistered]
		if un.DeductibleByScope["out_of_province"] <= un.DeductibleByScope["in_province"] {
			t.Errorf("%s %s: unregistered deductibles %v", p.Version, insutype, un.DeductibleByScope)
		}
		wantFirst := prov != "37" // Shandong's published demo policy has none
		if (un.FirstPay != nil) != wantFirst || (wantFirst && un.FirstPay.Cmp(money.Percent(10)) != 0) {
			t.Errorf("%s %s: unregistered first pay %v", p.Version, insutype, un.FirstPay)
		}
	}
}
