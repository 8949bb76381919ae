package policy

import "yibao/money"

// adjuster turns a configured ratio into the ratio that applies to this
// person and visit.
type adjuster struct {
	personal  bool        // configured ratios are the person's share
	fixed     bool        // replace every ratio by fixedR (age formula)
	fixedR    money.Ratio //
	plus      money.Ratio // + points (retiree, special groups)
	hasFactor bool        // personal share × factor (retiree)
	factor    money.Ratio //
	cut       money.Ratio // − points (cross-region)
}

func (a *adjuster) apply(r money.Ratio) money.Ratio {
	if a.personal {
		r = r.Complement()
	}
	if a.fixed {
		r = a.fixedR
	}
	if a.hasFactor {
		p := rMul(r.Complement(), a.factor)
		if p.Cmp(money.One) >= 0 {
			r = money.Ratio{}
		} else {
			r = p.Complement()
		}
	}
	if !a.plus.IsZero() {
		r = rMin1(rAdd(r, a.plus))
	}
	if !a.cut.IsZero() {
		r = rSub(r, a.cut)
	}
	return r
}

// bandPay pays each band's ratio on the part of the positions [lo, hi)
// inside the band; band edges are shifted by offset and each band runs to
// the next band's From. Positions below the first band are not paid. Each
// band's product is rounded on its own. With limit ≥ 0 the payment stops at
// limit, and consumed says how much of [lo, hi) the paid amount used up (the
// partial band's part is limit÷ratio, rounded); otherwise consumed = hi−lo.
func bandPay(bands []Band, offset, lo, hi, limit money.Fen, adj *adjuster, rnd money.Rounding) (paid, consumed money.Fen) {
	if hi <= lo {
		return 0, 0
	}
	for i := range bands {
		from := bands[i].From + offset
		to := hi
		if i+1 < len(bands) {
			to = bands[i+1].From + offset
		}
		s, e := money.Max(from, lo), money.Min(to, hi)
		if e <= s {
			continue
		}
		r := adj.apply(bands[i].Ratio)
		seg := e - s
		p := seg.Mul(r, rnd)
		if limit >= 0 && paid+p > limit {
			rest := limit - paid
			return limit, s - lo + money.Min(seg, divFen(rest, r, rnd))
		}
		paid += p
	}
	return paid, hi - lo
}

// bandRatio is the adjusted ratio of the band holding position pos (0 below
// the first band).
func bandRatio(bands []Band, offset, pos money.Fen, adj *adjuster) money.Ratio {
	var r money.Ratio
	found := false
	for i := range bands {
		if bands[i].From+offset <= pos {
			r, found = bands[i].Ratio, true
		}
	}
	if !found {
		return money.Ratio{}
	}
	return adj.apply(r)
}
