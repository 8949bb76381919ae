package demo

import (
	"bytes"
	"encoding/csv"
	"fmt"
)

// ContributionsCSV is a month's contribution file for the demo persons
// covered that month: employees (scheme 310) with an employer part of 7%
// and an individual part of 2% of a salary base between ¥4,000 and
// ¥15,000 (a deterministic function of the person), residents (390) with
// the 2025 individual payment of ¥400 and a ¥700 government subsidy.
// Retirees contribute nothing. The columns are funds.ContributionsCSVHeader.
func ContributionsCSV(d *Dataset, period string) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write([]string{"psn_no", "insutype", "period", "kind", "amount"})
	category := map[string]string{}
	for _, p := range d.Persons {
		category[p.PsnNo] = string(p.Category)
	}
	day := period + "-01"
	seen := map[string]bool{}
	for i, c := range d.Coverages {
		if c.StartDate > day || (c.EndDate != "" && c.EndDate < day) || seen[c.PsnNo+c.Insutype] {
			continue
		}
		seen[c.PsnNo+c.Insutype] = true
		switch {
		case c.Insutype == "310" && category[c.PsnNo] == "active":
			base := int64(400_000 + (i*7919)%1_100_000) // fen
			w.Write([]string{c.PsnNo, "310", period, "employer", yuan(base * 7 / 100)})
			w.Write([]string{c.PsnNo, "310", period, "individual", yuan(base * 2 / 100)})
		case c.Insutype == "390":
			w.Write([]string{c.PsnNo, "390", period, "resident", "400.00"})
			w.Write([]string{c.PsnNo, "390", period, "subsidy", "700.00"})
		}
	}
	w.Flush()
	return b.Bytes()
}

func yuan(fen int64) string { return fmt.Sprintf("%d.%02d", fen/100, fen%100) }
