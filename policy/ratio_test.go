package policy

import (
	"testing"

	"yibao/money"
)

func TestRatioHelpers(t *testing.T) {
	r := func(s string) money.Ratio { x, _ := money.ParseRatio(s); return x }
	if got := rAdd(r("0.85"), r("0.03")); got.Cmp(r("0.88")) != 0 {
		t.Fatal(got)
	}
	if got := rSub(r("0.1"), r("0.2")); !got.IsZero() {
		t.Fatal(got)
	}
	// Odd denominators chained beyond int64 fall back to 1e-12 precision.
	odd := money.MustRatio(1, 999_983)
	x := rAdd(rAdd(rAdd(odd, money.MustRatio(1, 999_979)), money.MustRatio(1, 999_961)), money.MustRatio(1, 999_959))
	want := 1/999_983.0 + 1/999_979.0 + 1/999_961.0 + 1/999_959.0
	if got := float64(x.Num()) / float64(x.Den()); got < want-1e-11 || got > want+1e-11 {
		t.Fatalf("approx sum %v, want ≈ %v", got, want)
	}
	a := adjuster{fixed: true, fixedR: money.MustRatio(7, 999_983), plus: money.MustRatio(3, 999_979), cut: money.MustRatio(1, 999_961)}
	_ = a.apply(money.One) // must not panic or overflow
}
