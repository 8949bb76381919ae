package policy

import (
	"testing"
	"time"
)

func BenchmarkCalc20Lines(b *testing.B) {
	p, err := DemoPolicy()
	if err != nil {
		b.Fatal(err)
	}
	in := BenchInput()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Calc(p, in, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCalc20LinesExplain(b *testing.B) {
	p, _ := DemoPolicy()
	in := BenchInput()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Calc(p, in, Options{Explain: true}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBenchCalc(t *testing.T) {
	ps, err := BenchCalc(2000, time.Now)
	if err != nil || ps <= 0 {
		t.Fatalf("BenchCalc: %v %v", ps, err)
	}
}
