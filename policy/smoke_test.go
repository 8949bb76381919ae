package policy

import (
	"os"
	"testing"
)

func TestSmoke(t *testing.T) {
	p, err := DemoPolicy()
	if err != nil {
		t.Fatal(err)
	}
	res, err := Calc(p, BenchInput(), Options{Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	EncodeResult(os.Stdout, res)
}
