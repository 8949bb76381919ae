package demo

import (
	"bytes"

	"yibao/policy"
)

// Policies returns the demo region's policy set: 370100 (Jinan-like) for
// 2026 and the same rules carried into 2027, and a 370200 (Qingdao-like)
// variant with its own version names and slightly richer outpatient
// ratios. The figures are plausible demo data (see the notes field), not
// official schedules.
func Policies() [][]byte {
	base := policy.DemoPolicyJSON()
	next := replaceAll(base,
		`"version": "370100-2026.1"`, `"version": "370100-2027.1"`,
		`"effective_from": "2026-01-01"`, `"effective_from": "2027-01-01"`,
		`"effective_to": "2026-12-31"`, `"effective_to": "2027-12-31"`)
	qd := func(doc []byte) []byte {
		return replaceAll(doc,
			`"version": "370100-`, `"version": "370200-`,
			`"admdvs": "370100"`, `"admdvs": "370200"`,
			`济南市（演示）`, `青岛市（演示）`,
			`Jinan-like`, `Qingdao-like`,
			`"1": "0.70", "2": "0.65", "3": "0.60"`, `"1": "0.75", "2": "0.70", "3": "0.65"`)
	}
	return [][]byte{base, next, qd(base), qd(next)}
}

func replaceAll(doc []byte, pairs ...string) []byte {
	for i := 0; i+1 < len(pairs); i += 2 {
		doc = bytes.ReplaceAll(doc, []byte(pairs[i]), []byte(pairs[i+1]))
	}
	return doc
}
