package money

import "math/bits"

// Rounding names how a product of an amount and a ratio becomes whole fen.
// Every call that can produce a fraction of a fen names its rounding.
type Rounding uint8

const (
	// HalfUp rounds to the nearest fen, halves away from zero (四舍五入).
	// This is what the national settlement examples use.
	HalfUp Rounding = iota
	// Down truncates toward zero.
	Down
	// Up rounds away from zero.
	Up
	// HalfEven rounds to the nearest fen, halves to the even fen (banker's).
	HalfEven
)

// String names the rounding as it appears in policy files.
func (m Rounding) String() string {
	switch m {
	case HalfUp:
		return "half_up"
	case Down:
		return "down"
	case Up:
		return "up"
	case HalfEven:
		return "half_even"
	}
	return "unknown"
}

// ParseRounding is the inverse of Rounding.String.
func ParseRounding(s string) (Rounding, bool) {
	for _, m := range []Rounding{HalfUp, Down, Up, HalfEven} {
		if m.String() == s {
			return m, true
		}
	}
	return 0, false
}

// Mul returns f×r rounded to whole fen with mode m. The product is computed
// in 128 bits, so it is exact for every int64 amount and ratio; it panics
// only if the rounded result itself overflows int64.
func (f Fen) Mul(r Ratio, m Rounding) Fen {
	neg := f < 0
	a := uint64(f)
	if neg {
		a = uint64(-(f + 1)) + 1
	}
	d := uint64(r.Den())
	hi, lo := bits.Mul64(a, uint64(r.num))
	if hi >= d {
		panic("money: product overflows")
	}
	q, rem := bits.Div64(hi, lo, d)
	if rem != 0 {
		twice := rem * 2 // rem < d ≤ MaxInt64, so no overflow
		switch m {
		case Up:
			q++
		case HalfUp:
			if twice >= d {
				q++
			}
		case HalfEven:
			if twice > d || (twice == d && q%2 == 1) {
				q++
			}
		}
	}
	if q > 1<<63-1 {
		panic("money: product overflows")
	}
	if neg {
		return -Fen(q)
	}
	return Fen(q)
}

// Split divides total into parts proportional to weights so that the parts
// sum to total exactly (largest-remainder method, ties to the earlier part).
// Weights must be non-negative; if all are zero the first part gets total.
func Split(total Fen, weights []Fen) []Fen {
	out := make([]Fen, len(weights))
	if len(weights) == 0 {
		return out
	}
	var wsum Fen
	for _, w := range weights {
		wsum += w
	}
	if wsum == 0 {
		out[0] = total
		return out
	}
	var given Fen
	rems := make([]uint64, len(weights))
	for i, w := range weights {
		r, _ := NewRatio(int64(w), int64(wsum))
		out[i] = total.Mul(r, Down)
		given += out[i]
		hi, lo := bits.Mul64(uint64(abs(total)), uint64(w))
		_, rems[i] = bits.Div64(hi, lo, uint64(wsum))
	}
	left := total - given
	step := Fen(1)
	if left < 0 {
		step = -1
	}
	for left != 0 {
		best := -1
		for i := range weights {
			if best == -1 || rems[i] > rems[best] {
				best = i
			}
		}
		out[best] += step
		rems[best] = 0
		left -= step
	}
	return out
}

func abs(f Fen) Fen {
	if f < 0 {
		return -f
	}
	return f
}
