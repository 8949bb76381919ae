package money

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Ratio is an exact non-negative rational number num/den, used for
// reimbursement ratios (0.85), self-pay shares (0.1) and similar policy
// parameters. The zero value is 0.
type Ratio struct {
	num, den int64
}

// ErrRatio is returned for a ratio that cannot be parsed or is negative.
var ErrRatio = errors.New("money: invalid ratio")

// NewRatio returns num/den in lowest terms. den must be positive and num
// non-negative.
func NewRatio(num, den int64) (Ratio, error) {
	if den <= 0 || num < 0 {
		return Ratio{}, fmt.Errorf("%w: %d/%d", ErrRatio, num, den)
	}
	g := gcd(num, den)
	return Ratio{num / g, den / g}, nil
}

// MustRatio is NewRatio for constants.
func MustRatio(num, den int64) Ratio {
	r, err := NewRatio(num, den)
	if err != nil {
		panic(err)
	}
	return r
}

// Percent returns p/100.
func Percent(p int64) Ratio { return MustRatio(p, 100) }

// One is the ratio 1.
var One = Ratio{1, 1}

// ParseRatio parses "0.85", "85%", "1/3", "1" exactly.
func ParseRatio(s string) (Ratio, error) {
	bad := func() (Ratio, error) { return Ratio{}, fmt.Errorf("%w: %q", ErrRatio, s) }
	if s == "" || len(s) > 32 {
		return bad()
	}
	if n, d, ok := strings.Cut(s, "/"); ok {
		a, err1 := strconv.ParseInt(n, 10, 64)
		b, err2 := strconv.ParseInt(d, 10, 64)
		if err1 != nil || err2 != nil {
			return bad()
		}
		return NewRatio(a, b)
	}
	scale := int64(1)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		s, scale = p, 100
	}
	ip, fp, _ := strings.Cut(s, ".")
	if ip == "" || len(fp) > 12 {
		return bad()
	}
	for _, c := range ip + fp {
		if c < '0' || c > '9' {
			return bad()
		}
	}
	den := scale
	for range fp {
		den *= 10
	}
	num, err := strconv.ParseInt(ip+fp, 10, 64)
	if err != nil {
		return bad()
	}
	return NewRatio(num, den)
}

// IsZero reports whether r is 0.
func (r Ratio) IsZero() bool { return r.num == 0 }

// Num and Den return the parts of r in lowest terms (Den is 1 for zero).
func (r Ratio) Num() int64 { return r.num }

// Den returns the denominator (1 for the zero value).
func (r Ratio) Den() int64 {
	if r.den == 0 {
		return 1
	}
	return r.den
}

// Cmp compares r and s: -1, 0 or +1.
func (r Ratio) Cmp(s Ratio) int {
	hi1, lo1 := bits.Mul64(uint64(r.num), uint64(s.Den()))
	hi2, lo2 := bits.Mul64(uint64(s.num), uint64(r.Den()))
	switch {
	case hi1 < hi2 || (hi1 == hi2 && lo1 < lo2):
		return -1
	case hi1 == hi2 && lo1 == lo2:
		return 0
	}
	return 1
}

// Complement returns 1-r; r must not exceed 1.
func (r Ratio) Complement() Ratio {
	d := r.Den()
	if r.num > d {
		panic("money: complement of a ratio above 1")
	}
	return MustRatio(d-r.num, d)
}

// String formats r as a decimal when exact within 12 places, else as n/d.
func (r Ratio) String() string {
	d := r.Den()
	if r.num%d == 0 {
		return strconv.FormatInt(r.num/d, 10)
	}
	// Exact decimal iff d has only factors 2 and 5.
	x, places := d, 0
	for x%10 == 0 {
		x /= 10
		places++
	}
	for x%2 == 0 || x%5 == 0 {
		if x%2 == 0 {
			x /= 2
		} else {
			x /= 5
		}
		places++
	}
	if x != 1 || places > 12 {
		return fmt.Sprintf("%d/%d", r.num, d)
	}
	scale := int64(1)
	for range places {
		scale *= 10
	}
	n := r.num * (scale / d)
	s := fmt.Sprintf("%d.%0*d", n/scale, places, n%scale)
	return strings.TrimRight(s, "0")
}

// MarshalText encodes r with String.
func (r Ratio) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText decodes r with ParseRatio.
func (r *Ratio) UnmarshalText(b []byte) error {
	v, err := ParseRatio(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	if a == 0 {
		return 1
	}
	return a
}
