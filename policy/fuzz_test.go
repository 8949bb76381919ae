package policy

import (
	"bytes"
	"io"
	"testing"
)

// FuzzRunCalc: no request, however malformed, makes the calculator panic,
// and every accepted request satisfies the invariants.
func FuzzRunCalc(f *testing.F) {
	for _, c := range loadCasesF(f) {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeRequest(bytes.NewReader(data))
		if err != nil {
			return
		}
		res, err := Calc(req.Policy, &req.Input, Options{Explain: true})
		if err != nil {
			return
		}
		checkInvariants(t, req.Policy, &req.Input, res)
		_ = EncodeResult(io.Discard, res)
	})
}

func loadCasesF(f *testing.F) [][]byte {
	t := &testing.T{}
	var out [][]byte
	for _, c := range loadCases(t) {
		out = append(out, c.requestBytes(t))
	}
	return out
}
