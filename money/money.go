// Package money holds exact amounts of Chinese yuan in integer fen (分) and
// exact ratios, with rounding that is always named at the call site.
//
// Nothing here uses floating point. Amounts cross the API as yuan strings
// ("1234.56") and live everywhere else as Fen.
package money

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Fen is an amount of money in fen (1 yuan = 100 fen). Negative amounts are
// allowed in arithmetic; validation of sign belongs to the caller.
type Fen int64

// Yuan returns n whole yuan as Fen.
func Yuan(n int64) Fen { return Fen(n * 100) }

// ErrSyntax is returned when a yuan string cannot be parsed.
var ErrSyntax = errors.New("money: invalid yuan amount")

// ErrRange is returned when an amount is larger than MaxAmount.
var ErrRange = errors.New("money: amount out of range")

// MaxAmount is the largest amount ParseYuan accepts, of either sign:
// 2^53−1 fen, about 90 trillion yuan. No real amount comes near it, and
// beyond it a client that holds amounts as IEEE doubles would lose fen.
const MaxAmount Fen = 1<<53 - 1

// ParseYuan parses a decimal yuan string such as "12", "12.3", "-0.05" or
// "1234.56" into Fen. More than two decimal places, exponents, spaces,
// thousands separators, empty strings and amounts beyond MaxAmount are
// rejected: an amount from a hospital is either exact to the fen or wrong.
func ParseYuan(s string) (Fen, error) {
	if s == "" || len(s) > 24 {
		return 0, fmt.Errorf("%w: %q", ErrSyntax, s)
	}
	neg := false
	body := s
	switch body[0] {
	case '-':
		neg, body = true, body[1:]
	case '+':
		body = body[1:]
	}
	intPart, fracPart, hasDot := strings.Cut(body, ".")
	if intPart == "" || (hasDot && (fracPart == "" || len(fracPart) > 2)) {
		return 0, fmt.Errorf("%w: %q", ErrSyntax, s)
	}
	for _, c := range intPart + fracPart {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %q", ErrSyntax, s)
		}
	}
	for len(fracPart) < 2 {
		fracPart += "0"
	}
	y, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil || y > math.MaxInt64/100-1 {
		return 0, fmt.Errorf("%w: %q", ErrRange, s)
	}
	f, _ := strconv.ParseInt(fracPart, 10, 64)
	v := Fen(y*100 + f)
	if v > MaxAmount {
		return 0, fmt.Errorf("%w: %q", ErrRange, s)
	}
	if neg {
		v = -v
	}
	return v, nil
}

// MustParseYuan is ParseYuan for constants in tests and seed data.
func MustParseYuan(s string) Fen {
	v, err := ParseYuan(s)
	if err != nil {
		panic(err)
	}
	return v
}

// String formats f as yuan with exactly two decimals: "1234.56", "-0.05".
func (f Fen) String() string {
	v := int64(f)
	sign := ""
	var u uint64
	if v < 0 {
		sign = "-"
		u = uint64(-(v + 1)) + 1 // safe for MinInt64
	} else {
		u = uint64(v)
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}

// MarshalText encodes f as a yuan string, so JSON carries "12.30" not 1230.
func (f Fen) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText decodes a yuan string.
func (f *Fen) UnmarshalText(b []byte) error {
	v, err := ParseYuan(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// Add returns f+g, reporting overflow.
func (f Fen) Add(g Fen) (Fen, error) {
	r := f + g // wraps on overflow, detected below
	if (f > 0 && g > 0 && r < 0) || (f < 0 && g < 0 && r >= 0) {
		return 0, ErrRange
	}
	return r, nil
}

// Min returns the smaller of a and b.
func Min(a, b Fen) Fen {
	if a < b {
		return a
	}
	return b
}

// Max returns the larger of a and b.
func Max(a, b Fen) Fen {
	if a > b {
		return a
	}
	return b
}

// Sum adds amounts; it panics on overflow, which cannot happen for any real
// bill (int64 fen holds 92 trillion yuan).
func Sum(xs ...Fen) Fen {
	var t Fen
	for _, x := range xs {
		var err error
		if t, err = t.Add(x); err != nil {
			panic(err)
		}
	}
	return t
}
