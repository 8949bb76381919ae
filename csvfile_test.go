package yibao_test

import (
	"strings"
	"testing"

	"yibao"
)

var header = []string{"psn_no", "insutype", "period", "kind", "amount"}

// FuzzReadCSV: any upload gets rows with their line numbers or a yibao
// error with a stable code; never a panic, never a row without its line.
func FuzzReadCSV(f *testing.F) {
	for _, s := range []string{
		"psn_no,insutype,period,kind,amount\n1,310,2026-12,employer,1.00\n",
		"\ufeffpsn_no,insutype,period,kind,amount\r\n1,310,2026-12,employer,1.00\r\n",
		"psn_no,insutype,period,kind,amount\n\"unterminated,310,2026-12,employer,1\n",
		"psn_no,insutype\n1,2\n",
		"",
		"psn_no,insutype,period,kind,amount\n",
		"psn_no,insutype,period,kind,amount\n1,2,3,4\n",
		"psn_no,insutype,period,kind,amount\n'; DROP TABLE contributions; --,310,2026-12,employer,1\n",
		"psn_no,insutype,period,kind,amount\n\xff\xfe,310,2026-12,employer,1\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		recs, err := yibao.ReadCSV(strings.NewReader(s), header, 1000)
		if err != nil {
			if yibao.ErrorCode(err) == yibao.CodeInternal {
				t.Fatalf("internal error for %q: %v", s, err)
			}
			return
		}
		last := 1
		for _, r := range recs {
			if len(r.Fields) != len(header) || r.Line <= last-1 || r.Line < 2 {
				t.Fatalf("record %+v after line %d", r, last)
			}
			last = r.Line
		}
	})
}

func TestReadCSV(t *testing.T) {
	cases := []struct {
		in   string
		rows int
		code yibao.Code
	}{
		{"psn_no,insutype,period,kind,amount\n1,310,2026-12,employer,1.00\n2,310,2026-12,individual,2.00\n", 2, ""},
		{"\ufeffpsn_no,insutype,period,kind,amount\n1,310,2026-12,employer, 1.00 \n", 1, ""},
		{"", 0, yibao.CodeMalformed},
		{"psn_no,amount\n1,2\n", 0, yibao.CodeMalformed},
		{"psn_no,insutype,period,kind,amount\n", 0, yibao.CodeInvalid},
		{"psn_no,insutype,period,kind,amount\n1,2\n", 0, yibao.CodeMalformed},
		{"psn_no,insutype,period,kind,amount\n" + strings.Repeat("1,310,2026-12,employer,1\n", 3), 0, yibao.CodeTooLarge},
	}
	for i, c := range cases {
		recs, err := yibao.ReadCSV(strings.NewReader(c.in), header, 2)
		if yibao.ErrorCode(err) != c.code && !(c.code == "" && err == nil) || len(recs) != c.rows {
			t.Errorf("case %d: %d rows, %v; want %d rows, %q", i, len(recs), err, c.rows, c.code)
		}
		if err == nil && recs[0].Line != 2 {
			t.Errorf("case %d: first row on line %d", i, recs[0].Line)
		}
	}
}
