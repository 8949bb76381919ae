package policy

import (
	"bytes"
	_ "embed"
	"strconv"
	"time"

	"yibao/money"
)

//go:embed testdata/policy_370100.json
var demo370100 []byte

// DemoPolicy returns a fresh, validated copy of the demo policy for region
// 370100 (Jinan-like; plausible demo figures, see its notes field) that the
// platform seeds.
func DemoPolicy() (*Policy, error) {
	return LoadPolicy(bytes.NewReader(demo370100))
}

// DemoPolicyJSON returns the demo policy as JSON.
func DemoPolicyJSON() []byte { return bytes.Clone(demo370100) }

// BenchInput returns the standard benchmark bill: a 20-line inpatient stay
// of a retired employee at a level-3 hospital under the demo policy, with
// 甲, 乙 (some with a price cap exceeded) and 丙 lines.
func BenchInput() *Input {
	lines := make([]Line, 20)
	for i := range lines {
		price := money.Fen(12340 + 9770*i)
		qty := money.MustRatio(int64(1+i%4), 1)
		l := Line{ID: "L" + strconv.Itoa(i+1), UnitPrice: price, Quantity: &qty}
		switch i % 5 {
		case 0, 3:
			l.Class = "A"
		case 1, 4:
			l.Class = "B"
			if i%10 == 4 {
				pc := price - 100
				l.PriceCap = &pc
			}
		case 2:
			l.Class = "C"
		}
		lines[i] = l
	}
	return &Input{
		Person:       Person{Insutype: "310", Category: "retired", Age: 66},
		Visit:        Visit{Type: Inpatient, Level: 3, AdmissionDate: "2026-03-01", DischargeDate: "2026-03-09", SettlementDate: "2026-03-09"},
		Accumulators: Accumulators{Admissions: 1, AccountBalance: money.Yuan(1500), Counters: map[string]money.Fen{"fund": money.Yuan(20000), "deductible": money.Yuan(900)}},
		Lines:        lines,
	}
}

// BenchCalc settles the standard benchmark bill n times without the
// explanation and returns bills per second, timed with now (pass
// time.Now; the package itself reads no clock).
func BenchCalc(n int, now func() time.Time) (perSecond float64, err error) {
	p, err := DemoPolicy()
	if err != nil {
		return 0, err
	}
	in := BenchInput()
	if n < 1 {
		n = 1
	}
	start := now()
	for range n {
		if _, err := Calc(p, in, Options{}); err != nil {
			return 0, err
		}
	}
	el := now().Sub(start)
	if el <= 0 {
		el = 1
	}
	return float64(n) / el.Seconds(), nil
}
