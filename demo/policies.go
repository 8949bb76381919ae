package demo

import (
	"bytes"
	"fmt"

	"yibao/policy"
)

// Policies returns the Shandong policy set, PolicyDocs("37"): 370100
// (Jinan-like) for 2026 and the same rules carried into 2027, and a 370200
// (Qingdao-like) variant with its own version names and slightly richer
// outpatient ratios. The figures are plausible demo data (see the notes
// field), not official schedules.
func Policies() [][]byte { return PolicyDocs("37") }

// PolicyDocs returns the published policies of province prov (see
// Provinces), four documents: the capital region for 2026 and 2027, then
// the second region for 2026 and 2027 with slightly richer outpatient
// ratios. Jiangsu and Guangdong are the Shandong policy with their own
// region codes and names and a few figures changed (provinceSpec), and
// their unregistered cross-region care adds a 10% personal first-pay and a
// higher out-of-province deductible (2500). Every document has a
// cross_region section: long-term filed = local, referred −5 points,
// temporary −10 points, unregistered −20 points. It panics for an unknown
// province.
func PolicyDocs(prov string) [][]byte {
	sp := spec(prov)
	base := policy.DemoPolicyJSON()
	if prov != "37" {
		edits := []string{
			`"version": "370100-`, `"version": "` + sp.capital + `-`,
			`"admdvs": "370100"`, `"admdvs": "` + sp.capital + `"`,
			`济南市（演示）`, parseDivisions(prov)[sp.capital] + `（演示）`,
			`Jinan-like`, sp.capitalEN + `-like`,
			`"unregistered": {"ratio_cut": "0.20", "deductible_by_scope": {"in_province": "1500.00", "out_of_province": "2000.00"}}`,
			`"unregistered": {"ratio_cut": "0.20", "first_pay": "0.10", "deductible_by_scope": {"in_province": "1500.00", "out_of_province": "2500.00"}}`,
			`unregistered −20 points with a 1500 (in province) / 2000 (out of province) deductible for inpatient`,
			`unregistered −20 points after a 10% personal first-pay, with a 1500 (in province) / 2500 (out of province) deductible for inpatient`,
		}
		base = replaceAll(base, append(edits, sp.policyEdits...)...)
	}
	next := replaceAll(base,
		`"version": "`+sp.capital+`-2026.1"`, `"version": "`+sp.capital+`-2027.1"`,
		`"effective_from": "2026-01-01"`, `"effective_from": "2027-01-01"`,
		`"effective_to": "2026-12-31"`, `"effective_to": "2027-12-31"`)
	city, second := parseDivisions(prov)[sp.capital], parseDivisions(prov)[sp.second]
	other := func(doc []byte) []byte {
		return replaceAll(doc,
			`"version": "`+sp.capital+`-`, `"version": "`+sp.second+`-`,
			`"admdvs": "`+sp.capital+`"`, `"admdvs": "`+sp.second+`"`,
			city+`（演示）`, second+`（演示）`,
			sp.capitalEN+`-like`, sp.secondEN+`-like`,
			`"1": "0.70", "2": "0.65", "3": "0.60"`, `"1": "0.75", "2": "0.70", "3": "0.65"`)
	}
	return [][]byte{base, next, other(base), other(next)}
}

// replaceAll applies old, new pairs in order. Every old string must occur:
// a policy edit that no longer matches its source panics instead of
// publishing an unchanged figure.
func replaceAll(doc []byte, pairs ...string) []byte {
	for i := 0; i+1 < len(pairs); i += 2 {
		if !bytes.Contains(doc, []byte(pairs[i])) {
			panic(fmt.Sprintf("demo: policy edit: %q not found", pairs[i]))
		}
		doc = bytes.ReplaceAll(doc, []byte(pairs[i]), []byte(pairs[i+1]))
	}
	return doc
}
