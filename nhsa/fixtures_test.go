package nhsa_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

type fixtureStep struct {
	Name    string            `json:"name"`
	Infno   string            `json:"infno"`
	Input   json.RawMessage   `json:"input"`
	Expect  map[string]any    `json:"expect"`
	Capture map[string]string `json:"capture"`
	Err     string            `json:"err"`
}

// TestTransactionFixtures runs testdata/transactions.json in order: every
// supported transaction, succeeding and refused.
func TestTransactionFixtures(t *testing.T) {
	b, err := os.ReadFile("testdata/transactions.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Steps []fixtureStep }
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	vars := map[string]string{"psn": e.psn, "idno": e.idNo, "drug": e.drug, "now": now(), "today": e.today}
	for _, p := range e.data.Persons {
		if p.PsnNo != e.psn && vars["idno2"] == "" {
			vars["idno2"] = p.IDNumber
		}
	}
	covered := map[string][2]bool{}
	for _, st := range file.Steps {
		ok := t.Run(st.Name, func(t *testing.T) {
			in := string(st.Input)
			for k, v := range vars {
				in = strings.ReplaceAll(in, "${"+k+"}", v)
			}
			if strings.Contains(in, "${") {
				t.Fatalf("unset variable in %s", in)
			}
			msgid := e.his.NewMsgid()
			resp, err := e.his.Send(context.Background(), st.Infno, msgid, json.RawMessage(in))
			if err != nil {
				t.Fatal(err)
			}
			c := covered[st.Infno]
			if st.Err != "" {
				if resp.OK() || !strings.Contains(resp.ErrMsg, st.Err) {
					t.Fatalf("infcode %s err_msg %q, want a refusal mentioning %q", resp.Infcode, resp.ErrMsg, st.Err)
				}
				c[1] = true
				covered[st.Infno] = c
				return
			}
			if !resp.OK() {
				t.Fatalf("refused: %s", resp.ErrMsg)
			}
			c[0] = true
			covered[st.Infno] = c
			var out any
			json.Unmarshal(resp.Output, &out)
			for path, want := range st.Expect {
				got := walk(out, path)
				if w, ok := want.(string); ok {
					for k, v := range vars {
						w = strings.ReplaceAll(w, "${"+k+"}", v)
					}
					want = w
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s = %v, want %v", path, got, want)
				}
			}
			for name, path := range st.Capture {
				if path == "$msgid" {
					vars[name] = msgid
					continue
				}
				v, ok := walk(out, path).(string)
				if !ok || v == "" {
					t.Fatalf("capture %s: %s is %v", name, path, walk(out, path))
				}
				vars[name] = v
			}
		})
		if !ok && st.Capture != nil {
			t.Fatalf("step %q captures values later steps need", st.Name)
		}
	}
	// Every supported transaction has a success fixture.
	for _, infno := range []string{"9001", "9002", "1101", "2201", "2202", "2203", "2204", "2205", "2206", "2207", "2208", "2301", "2302",
		"2303", "2304", "2305", "2401", "2402", "2403", "2405", "2601", "3201", "5201", "5203", "5204", "5206", "9101"} {
		if !covered[infno][0] {
			t.Errorf("no success fixture for %s", infno)
		}
	}
}

// walk follows a dot path (numbers index arrays) through decoded JSON.
func walk(v any, path string) any {
	for _, p := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}
