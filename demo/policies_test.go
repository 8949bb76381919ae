package demo

import (
	"bytes"
	"testing"

	"yibao/policy"
)

func TestDemoPoliciesLoadAndDiffer(t *testing.T) {
	seen := map[string]bool{}
	for _, doc := range Policies() {
		p, err := policy.LoadPolicy(bytes.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		key := p.Admdvs + "/" + p.Version
		if seen[key] {
			t.Fatalf("%s twice", key)
		}
		seen[key] = true
		if p.Version[:6] != p.Admdvs {
			t.Fatalf("version %s of region %s", p.Version, p.Admdvs)
		}
	}
	if len(seen) != 4 {
		t.Fatalf("%d policies", len(seen))
	}
}
