package policy

import (
	"strconv"

	"yibao/money"
)

// Small exact helpers on money.Ratio that the money package does not have.
// Validate keeps every policy ratio's denominator ≤ maxDen, so products of
// two ratios fit in int64.

const maxDen = 1_000_000

func rAdd(a, b money.Ratio) money.Ratio {
	return money.MustRatio(a.Num()*b.Den()+b.Num()*a.Den(), a.Den()*b.Den())
}

// rSub returns a−b, or 0 when b ≥ a.
func rSub(a, b money.Ratio) money.Ratio {
	n := a.Num()*b.Den() - b.Num()*a.Den()
	if n <= 0 {
		return money.Ratio{}
	}
	return money.MustRatio(n, a.Den()*b.Den())
}

func rMul(a, b money.Ratio) money.Ratio {
	return money.MustRatio(a.Num()*b.Num(), a.Den()*b.Den())
}

func rMulInt(a money.Ratio, k int64) money.Ratio {
	return money.MustRatio(a.Num()*k, a.Den())
}

// rMin1 caps r at 1.
func rMin1(r money.Ratio) money.Ratio {
	if r.Cmp(money.One) > 0 {
		return money.One
	}
	return r
}

// divFen returns f ÷ r rounded with m (r > 0).
func divFen(f money.Fen, r money.Ratio, m money.Rounding) money.Fen {
	return f.Mul(money.MustRatio(r.Den(), r.Num()), m)
}

// levelKey is the map key of an institution level.
func levelKey(level int) string { return strconv.Itoa(level) }

// lookupLevel finds the entry for level, falling back to "*".
func lookupFen(m map[string]money.Fen, level int) (money.Fen, bool) {
	if v, ok := m[levelKey(level)]; ok {
		return v, true
	}
	v, ok := m["*"]
	return v, ok
}

func lookupRatio(m map[string]money.Ratio, level int) (money.Ratio, bool) {
	if v, ok := m[levelKey(level)]; ok {
		return v, true
	}
	v, ok := m["*"]
	return v, ok
}

func lookupBands(m map[string][]Band, level int) ([]Band, bool) {
	if v, ok := m[levelKey(level)]; ok {
		return v, true
	}
	v, ok := m["*"]
	return v, ok
}

func clampFen(v money.Fen) money.Fen {
	if v < 0 {
		return 0
	}
	return v
}
