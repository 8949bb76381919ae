package policy

import "yibao/money"

// Limit is one "how much is left" figure for a person: a cap on fund pay
// or eligible expense, or a yearly deductible, with what the accumulators
// say is used.
type Limit struct {
	VisitType string    `json:"visit_type"`
	Kind      string    `json:"kind"`            // cap_fund | cap_expense | deductible
	Period    string    `json:"period"`          // year | month | admission
	Level     string    `json:"level,omitempty"` // deductible: institution level ("*" = any)
	Counter   string    `json:"counter"`
	Amount    money.Fen `json:"amount"`
	Used      money.Fen `json:"used"`
	Left      money.Fen `json:"left"`
}

// Limits lists the caps and deductibles of a person's scheme with what is
// used and left, from the person's accumulators (monthly counters are the
// current month's). person decides group-specific caps.
func (p *Policy) Limits(person Person, acc Accumulators) []Limit {
	s := p.Schemes[person.Insutype]
	if s == nil {
		return nil
	}
	var out []Limit
	for _, t := range VisitTypes {
		b, err := s.benefit(t)
		if err != nil || b.NoFund || (t == Emergency && s.Emergency == nil) {
			continue
		}
		d := &b.Deductible
		table := d.ByLevel
		if g, ok := pickGroup(&person, d.ByGroup); ok {
			table = g
		}
		counter := orDefault(d.Counter, CounterDeductible)
		for _, lv := range sortedKeys(table) {
			l := Limit{VisitType: t, Kind: "deductible", Period: "admission", Level: lv, Counter: counter, Amount: table[lv], Left: table[lv]}
			if d.Unit == "year" {
				l.Period, l.Used = "year", acc.get(counter)
				l.Left = clampFen(l.Amount - l.Used)
			}
			out = append(out, l)
		}
		c := calc{in: &Input{Person: person}}
		for i := range b.Caps {
			cp := &b.Caps[i]
			if !c.capApplies(cp) {
				continue
			}
			name := cp.counter()
			period := cp.Period
			if period == "" {
				period = "year"
			}
			used := acc.get(name)
			out = append(out, Limit{VisitType: t, Kind: "cap_" + orDefault(cp.Kind, "fund"), Period: period, Counter: name,
				Amount: cp.Amount, Used: used, Left: clampFen(cp.Amount - used)})
		}
	}
	return out
}
