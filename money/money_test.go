package money

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"testing"
)

func load(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func TestParseYuan(t *testing.T) {
	var cases []struct {
		In  string `json:"in"`
		Fen int64  `json:"fen"`
		Err bool   `json:"err"`
	}
	load(t, "parse_yuan.json", &cases)
	for _, c := range cases {
		got, err := ParseYuan(c.In)
		if c.Err {
			if err == nil {
				t.Errorf("ParseYuan(%q) = %d, want error", c.In, got)
			}
			continue
		}
		if err != nil || int64(got) != c.Fen {
			t.Errorf("ParseYuan(%q) = %d, %v; want %d", c.In, got, err, c.Fen)
		}
	}
}

func TestFormatRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		f := Fen(r.Int64N(1<<50) - 1<<49)
		back, err := ParseYuan(f.String())
		if err != nil || back != f {
			t.Fatalf("%d → %q → %d, %v", f, f.String(), back, err)
		}
	}
	for _, c := range []struct {
		f    Fen
		want string
	}{{0, "0.00"}, {5, "0.05"}, {-5, "-0.05"}, {123456, "1234.56"}, {-100, "-1.00"}} {
		if got := c.f.String(); got != c.want {
			t.Errorf("%d.String() = %q, want %q", c.f, got, c.want)
		}
	}
}

func TestMul(t *testing.T) {
	var cases []struct {
		Note     string `json:"note"`
		Fen      int64  `json:"fen"`
		Ratio    string `json:"ratio"`
		HalfUp   int64  `json:"half_up"`
		Down     int64  `json:"down"`
		Up       int64  `json:"up"`
		HalfEven int64  `json:"half_even"`
	}
	load(t, "mul.json", &cases)
	for _, c := range cases {
		r, err := ParseRatio(c.Ratio)
		if err != nil {
			t.Fatalf("%s: %v", c.Note, err)
		}
		for _, m := range []struct {
			mode Rounding
			want int64
		}{{HalfUp, c.HalfUp}, {Down, c.Down}, {Up, c.Up}, {HalfEven, c.HalfEven}} {
			if got := Fen(c.Fen).Mul(r, m.mode); int64(got) != m.want {
				t.Errorf("%s: %d × %s (%s) = %d, want %d", c.Note, c.Fen, c.Ratio, m.mode, got, m.want)
			}
		}
	}
}

func TestParseRatio(t *testing.T) {
	for _, c := range []struct {
		in, want string
		err      bool
	}{
		{"0.1", "0.1", false}, {"10%", "0.1", false}, {"85%", "0.85", false}, {"1/3", "1/3", false},
		{"0.125", "0.125", false}, {"1", "1", false}, {"2/4", "0.5", false}, {"0", "0", false},
		{"-0.1", "", true}, {"abc", "", true}, {"1/0", "", true}, {"", "", true}, {".5", "", true},
	} {
		r, err := ParseRatio(c.in)
		if c.err {
			if err == nil {
				t.Errorf("ParseRatio(%q) = %v, want error", c.in, r)
			}
			continue
		}
		if err != nil || r.String() != c.want {
			t.Errorf("ParseRatio(%q) = %v, %v; want %s", c.in, r, err, c.want)
		}
	}
	if Percent(10).Cmp(MustRatio(1, 10)) != 0 || Percent(10).Cmp(Percent(11)) != -1 || One.Cmp(Percent(99)) != 1 {
		t.Error("Cmp is wrong")
	}
	if got := Percent(85).Complement(); got.Cmp(Percent(15)) != 0 {
		t.Errorf("1 - 0.85 = %v", got)
	}
}

func TestSplitSumsExactly(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		n := 1 + r.IntN(8)
		w := make([]Fen, n)
		for i := range w {
			w[i] = Fen(r.Int64N(100000))
		}
		total := Fen(r.Int64N(10_000_000))
		parts := Split(total, w)
		var sum Fen
		for i, p := range parts {
			if p < 0 {
				t.Fatalf("negative part %d", p)
			}
			if w[i] == 0 && p != 0 && sumFen(w) != 0 {
				t.Fatalf("zero weight got %d", p)
			}
			sum += p
		}
		if sum != total {
			t.Fatalf("Split(%d, %v) = %v sums to %d", total, w, parts, sum)
		}
	}
}

func sumFen(xs []Fen) Fen {
	var s Fen
	for _, x := range xs {
		s += x
	}
	return s
}

func TestAddOverflow(t *testing.T) {
	if _, err := Fen(1 << 62).Add(1 << 62); err == nil {
		t.Error("overflow not reported")
	}
	if v, err := Fen(5).Add(-7); err != nil || v != -2 {
		t.Errorf("5 + -7 = %d, %v", v, err)
	}
}

func BenchmarkMulHalfUp(b *testing.B) {
	r := Percent(85)
	var s Fen
	for i := 0; b.Loop(); i++ {
		s += Fen(i).Mul(r, HalfUp)
	}
	_ = s
}
