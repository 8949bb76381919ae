package policy

import (
	"math/big"
	"strconv"

	"yibao/money"
)

// Small exact helpers on money.Ratio that the money package does not have.
// Validate keeps every policy ratio's denominator ≤ maxDen, so products of
// two ratios fit in int64.

const maxDen = 1_000_000

// small reports whether a and b are small enough for exact int64
// arithmetic (every ratio Validate accepts is).
func small(a, b money.Ratio) bool {
	return a.Den() <= maxDen && b.Den() <= maxDen && a.Num() <= 10*maxDen && b.Num() <= 10*maxDen
}

// approx returns n/d exactly when it fits, else rounded down to 1e-12 (only
// reached by ratios built from several adjustments with odd denominators).
func approx(n, d *big.Int) money.Ratio {
	if n.Sign() <= 0 {
		return money.Ratio{}
	}
	g := new(big.Int).GCD(nil, nil, n, d)
	n, d = new(big.Int).Quo(n, g), new(big.Int).Quo(d, g)
	if n.IsInt64() && d.IsInt64() && d.Int64() <= 1e12 && n.Int64() <= 1e13 {
		return money.MustRatio(n.Int64(), d.Int64())
	}
	q := new(big.Int).Mul(n, big.NewInt(1e12))
	q.Quo(q, d)
	if !q.IsInt64() {
		return money.MustRatio(1e13, 1)
	}
	return money.MustRatio(q.Int64(), 1e12)
}

func bigOp(a, b money.Ratio, op byte) money.Ratio {
	an, ad := big.NewInt(a.Num()), big.NewInt(a.Den())
	bn, bd := big.NewInt(b.Num()), big.NewInt(b.Den())
	switch op {
	case '*':
		return approx(an.Mul(an, bn), ad.Mul(ad, bd))
	case '+':
		n := new(big.Int).Add(new(big.Int).Mul(an, bd), new(big.Int).Mul(bn, ad))
		return approx(n, ad.Mul(ad, bd))
	}
	n := new(big.Int).Sub(new(big.Int).Mul(an, bd), new(big.Int).Mul(bn, ad))
	return approx(n, ad.Mul(ad, bd))
}

func rAdd(a, b money.Ratio) money.Ratio {
	if !small(a, b) {
		return bigOp(a, b, '+')
	}
	return money.MustRatio(a.Num()*b.Den()+b.Num()*a.Den(), a.Den()*b.Den())
}

// rSub returns a−b, or 0 when b ≥ a.
func rSub(a, b money.Ratio) money.Ratio {
	if !small(a, b) {
		return bigOp(a, b, '-')
	}
	n := a.Num()*b.Den() - b.Num()*a.Den()
	if n <= 0 {
		return money.Ratio{}
	}
	return money.MustRatio(n, a.Den()*b.Den())
}

func rMul(a, b money.Ratio) money.Ratio {
	if !small(a, b) {
		return bigOp(a, b, '*')
	}
	return money.MustRatio(a.Num()*b.Num(), a.Den()*b.Den())
}

func rMulInt(a money.Ratio, k int64) money.Ratio {
	return rMul(a, money.MustRatio(k, 1))
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
