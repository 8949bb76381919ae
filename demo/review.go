package demo

import _ "embed"

// The NHSA smart-review rule libraries ("两库"), as staged with their
// provenance in data/review/README.md: demo and test data only.
var (
	//go:embed data/review/nhsa_drug_codes_rules.csv
	reviewDrugs []byte
	//go:embed data/review/nhsa_service_item_rules.csv
	reviewItems []byte
	//go:embed data/review/nhsa_service_item_duplicate_charge.csv
	reviewDuplicates []byte
)

// ReviewRules returns the rule library files: drug rules, service-item
// rules and duplicate charges (CSV).
func ReviewRules() (drugs, items, duplicates []byte) {
	return reviewDrugs, reviewItems, reviewDuplicates
}
