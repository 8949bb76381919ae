package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"yibao"
)

// caseFile is one worked example in testdata/cases.
type caseFile struct {
	Name       string          `json:"name"`
	Source     string          `json:"source"`
	Quality    string          `json:"quality"`
	Notes      string          `json:"notes"`
	Covers     []string        `json:"covers"`
	PolicyFile string          `json:"policy_file,omitempty"`
	Request    json.RawMessage `json:"request"`
	Expect     json.RawMessage `json:"expect,omitempty"`
	ExpectErr  *struct {
		Code  string `json:"code"`
		Field string `json:"field"`
	} `json:"expect_error,omitempty"`
}

func loadCases(t *testing.T) map[string]*caseFile {
	t.Helper()
	files, err := filepath.Glob("testdata/cases/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	out := map[string]*caseFile{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c caseFile
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if c.Source == "" || c.Quality == "" || len(c.Covers) == 0 {
			t.Fatalf("%s: every case needs source, quality and covers", f)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = &c
	}
	return out
}

// requestBytes returns the case's calc request, with the policy file
// spliced in when the case names one.
func (c *caseFile) requestBytes(t *testing.T) []byte {
	t.Helper()
	if c.PolicyFile == "" {
		return c.Request
	}
	pol, err := os.ReadFile(filepath.Join("testdata", c.PolicyFile))
	if err != nil {
		t.Fatal(err)
	}
	var req map[string]json.RawMessage
	if err := json.Unmarshal(c.Request, &req); err != nil {
		t.Fatal(err)
	}
	req["policy"] = pol
	b, _ := json.Marshal(req)
	return b
}

func TestCases(t *testing.T) {
	for name, c := range loadCases(t) {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			err := RunCalc(bytes.NewReader(c.requestBytes(t)), &out, true)
			if c.ExpectErr != nil {
				if err == nil {
					t.Fatalf("want error %s on %s, got success", c.ExpectErr.Code, c.ExpectErr.Field)
				}
				var e *yibao.Error
				if !asError(err, &e) || string(e.Code) != c.ExpectErr.Code || e.Field != c.ExpectErr.Field {
					t.Fatalf("want %s on %q, got %v (field %q)", c.ExpectErr.Code, c.ExpectErr.Field, err, fieldOf(err))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got, want any
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(c.Expect, &want); err != nil {
				t.Fatal(err)
			}
			for _, d := range subset("", want, got) {
				t.Error(d)
			}
			if t.Failed() {
				t.Logf("result:\n%s", out.String())
			}
			req, _ := DecodeRequest(bytes.NewReader(c.requestBytes(t)))
			res, _ := Calc(req.Policy, &req.Input, Options{})
			checkInvariants(t, req.Policy, &req.Input, res)
		})
	}
}

// subset reports every value of want that got lacks or differs on.
func subset(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want object, got %v", path, got)}
		}
		var ds []string
		for k, v := range w {
			ds = append(ds, subset(path+"."+k, v, g[k])...)
		}
		return ds
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: want %d items, got %v", path, len(w), got)}
		}
		var ds []string
		for i := range w {
			ds = append(ds, subset(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return ds
	}
	if !reflect.DeepEqual(want, got) {
		return []string{fmt.Sprintf("%s: want %v, got %v", path, want, got)}
	}
	return nil
}

func asError(err error, e **yibao.Error) bool {
	x, ok := err.(*yibao.Error)
	*e = x
	return ok
}

func fieldOf(err error) string {
	if e, ok := err.(*yibao.Error); ok {
		return e.Field
	}
	return ""
}
