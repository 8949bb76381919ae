package money_test

import (
	"encoding/json"
	"errors"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"yibao/money"
)

// yuanRe is the accepted yuan syntax, written out independently of
// ParseYuan: a sign, digits, and at most two decimals.
var yuanRe = regexp.MustCompile(`^[+-]?([0-9]+)(?:\.([0-9]{1,2}))?$`)

// refYuan is the decimal reference: s in fen as a big integer, or false
// when ParseYuan must refuse s.
func refYuan(s string) (*big.Int, bool) {
	m := yuanRe.FindStringSubmatch(s)
	if m == nil || len(s) > 24 {
		return nil, false
	}
	n, ok := new(big.Int).SetString(m[1]+(m[2] + "00")[:2], 10)
	if !ok {
		return nil, false
	}
	if s[0] == '-' {
		n.Neg(n)
	}
	if n.CmpAbs(big.NewInt(int64(money.MaxAmount))) > 0 {
		return nil, false
	}
	return n, true
}

// refString formats fen as yuan with two decimals, with math/big.
func refString(fen *big.Int) string {
	q, r := new(big.Int).QuoRem(new(big.Int).Abs(fen), big.NewInt(100), new(big.Int))
	sign := ""
	if fen.Sign() < 0 {
		sign = "-"
	}
	return sign + q.String() + "." + strconv.Itoa(int(r.Int64())/10) + strconv.Itoa(int(r.Int64())%10)
}

// FuzzParseYuan: ParseYuan accepts exactly what the reference grammar
// accepts within ±MaxAmount, and then equals the amount computed with
// math/big (also as big.Rat × 100); an accepted amount formats as the
// reference formats it and parses back to itself; the JSON forms agree:
// a yuan string in a Fen field decodes to the same amount or fails the same
// way, a JSON number is never an amount, and a Fen survives
// marshal/unmarshal.
func FuzzParseYuan(f *testing.F) {
	for _, s := range []string{
		"0", "12", "12.3", "12.30", "-0.05", "+7.01", "1234.56", "0.1", "007.00", "-0",
		"90071992547409.91", "90071992547409.92", "-90071992547409.91", "92233720368547758.07",
		"1.234", "1.", ".5", "1e3", "1E-2", "NaN", "-Inf", "0x10", "1_000", "1,000.00", " 1", "1 ", "--1", "+-1",
		"١٢", "１２", "12.3\x00", "\xff", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := money.ParseYuan(s)
		want, ok := refYuan(s)
		if !ok {
			if err == nil {
				t.Fatalf("ParseYuan(%q) = %d, want an error", s, got)
			}
			if !errors.Is(err, money.ErrSyntax) && !errors.Is(err, money.ErrRange) {
				t.Fatalf("ParseYuan(%q): %v is neither ErrSyntax nor ErrRange", s, err)
			}
		} else {
			if err != nil {
				t.Fatalf("ParseYuan(%q): %v, want %s fen", s, err, want)
			}
			if big.NewInt(int64(got)).Cmp(want) != 0 {
				t.Fatalf("ParseYuan(%q) = %d fen, want %s", s, got, want)
			}
			r, ok := new(big.Rat).SetString(strings.TrimPrefix(s, "+"))
			if !ok || !r.Mul(r, big.NewRat(100, 1)).IsInt() || r.Num().Cmp(want) != 0 {
				t.Fatalf("ParseYuan(%q) = %d fen, big.Rat says %v", s, got, r)
			}
			if got.String() != refString(want) {
				t.Fatalf("%d fen formats as %q, want %q", got, got.String(), refString(want))
			}
			if back, err := money.ParseYuan(got.String()); err != nil || back != got {
				t.Fatalf("%q → %d → %q → %d, %v", s, got, got.String(), back, err)
			}
		}

		// The same text as a JSON string in a Fen field.
		q, _ := json.Marshal(s)
		var v struct {
			A money.Fen `json:"a"`
		}
		jerr := json.Unmarshal([]byte(`{"a":`+string(q)+`}`), &v)
		if (jerr == nil) != ok || (ok && v.A != got) {
			if !strings.ContainsRune(s, 0xFFFD) && strings.ToValidUTF8(s, "") == s { // JSON turns invalid UTF-8 into U+FFFD
				t.Fatalf("JSON %s: %d, %v; ParseYuan: %d, %v", q, v.A, jerr, got, err)
			}
		}
		// As a bare JSON number it is refused, whatever it says.
		if json.Valid([]byte(s)) && !strings.ContainsAny(s, `"[{tfn`) {
			if err := json.Unmarshal([]byte(`{"a":`+s+`}`), &v); err == nil {
				t.Fatalf("a JSON number %s was taken as an amount", s)
			}
		}
		if ok {
			b, err := json.Marshal(struct {
				A money.Fen `json:"a"`
			}{got})
			if err != nil || string(b) != `{"a":"`+refString(want)+`"}` {
				t.Fatalf("marshal %d: %s %v", got, b, err)
			}
			if err := json.Unmarshal(b, &v); err != nil || v.A != got {
				t.Fatalf("unmarshal %s: %d %v", b, v.A, err)
			}
		}
	})
}

// FuzzParseRatio: a ratio parses exactly to the value computed with
// math/big from the same text (decimal, percent or fraction), is never
// negative, and survives String and JSON round trips.
func FuzzParseRatio(f *testing.F) {
	for _, s := range []string{"0", "0.85", "85%", "1/3", "1", "12.5%", "2/4", "0.000000000001", "1/0", "-1", "-1/3",
		"1e2", "NaN", "%", ".5", "5.", "1/+3", "010/3", "99999999999999999999", "0.1234567890123", "3/9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := money.ParseRatio(s)
		if err != nil {
			return
		}
		ref := refRatio(s)
		if ref == nil {
			t.Fatalf("ParseRatio(%q) = %s, the reference refuses it", s, r)
		}
		if ref.Sign() < 0 || ref.Cmp(big.NewRat(r.Num(), r.Den())) != 0 {
			t.Fatalf("ParseRatio(%q) = %d/%d, math/big says %s", s, r.Num(), r.Den(), ref)
		}
		back, err := money.ParseRatio(r.String())
		if err != nil || back.Cmp(r) != 0 {
			t.Fatalf("%q → %s → %v, %v", s, r, back, err)
		}
		b, _ := json.Marshal(r)
		var again money.Ratio
		if err := json.Unmarshal(b, &again); err != nil || again.Cmp(r) != 0 {
			t.Fatalf("JSON %s: %v %v", b, again, err)
		}
	})
}

var ratioRe = regexp.MustCompile(`^([0-9]+)(?:\.([0-9]*))?(%?)$`)

// refRatio is the value of a ratio's text in math/big, nil if malformed.
func refRatio(s string) *big.Rat {
	if n, d, ok := strings.Cut(s, "/"); ok {
		a, ok1 := new(big.Int).SetString(n, 10)
		b, ok2 := new(big.Int).SetString(d, 10)
		if !ok1 || !ok2 || b.Sign() == 0 {
			return nil
		}
		return new(big.Rat).SetFrac(a, b)
	}
	m := ratioRe.FindStringSubmatch(s)
	if m == nil {
		return nil
	}
	num, _ := new(big.Int).SetString(m[1]+m[2], 10)
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(m[2]))), nil)
	if m[3] == "%" {
		den.Mul(den, big.NewInt(100))
	}
	return new(big.Rat).SetFrac(num, den)
}
