package nhsa

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"yibao"
	"yibao/money"
)

// fuzzNow is the platform clock of the envelope tests; the seeds' inf_time
// is a minute before it.
var fuzzNow = time.Date(2026, 1, 10, 10, 0, 0, 0, cst)

const goodEnvelope = `{"infno":"2207","msgid":"H37010000001202601100959000001","mdtrtarea_admvs":"370100","insuplc_admdvs":"370100",` +
	`"recer_sys_code":"HIS","dev_no":"","dev_safe_info":"","cainfo":"","signtype":"","infver":"V1.0","opter_type":"1",` +
	`"opter":"001","opter_name":"收费员","inf_time":"2026-01-10 09:59:00","fixmedins_code":"H37010000001",` +
	`"fixmedins_name":"济南市第一人民医院","sign_no":"","input":{"data":{"psn_no":"37010099990000000001","medfee_sumamt":1071.00}}}`

// handleUnsigned runs Handle without a caller: every message is refused,
// after the envelope checks and before anything touches the database.
func handleUnsigned(body []byte) *Response {
	s := New(nil, nil, nil, nil, nil)
	s.SetClock(func() time.Time { return fuzzNow })
	return s.Handle(context.Background(), body, "")
}

func TestEnvelopeRefusals(t *testing.T) {
	long := strings.Replace(goodEnvelope, `"fixmedins_code":"H37010000001"`, `"fixmedins_code":"H370100000012345678"`, 1)
	long = strings.Replace(long, `"msgid":"H37010000001202601100959000001"`, `"msgid":"H37010000001234567820260110095"`, 1)
	for _, c := range []struct {
		name, body, want string
	}{
		{"a well-formed envelope reaches authentication", goodEnvelope, "调用方未认证"},
		// A fixmedins_code longer than 16 bytes left no room for the
		// timestamp in a 30-character msgid: validate sliced past its end.
		{"fixmedins_code too long for its msgid", long, "msgid"},
		{"trailing garbage", goodEnvelope + `}`, "nothing after it"},
		{"a second object", goodEnvelope + ` {}`, "nothing after it"},
		{"duplicate key", strings.Replace(goodEnvelope, `{"infno":"2207",`, `{"infno":"2207","infno":"9001",`, 1), "twice"},
		{"duplicate key in another case", strings.Replace(goodEnvelope, `{"infno":"2207",`, `{"INFNO":"9001","infno":"2207",`, 1), "twice"},
		{"duplicate key inside input", strings.Replace(goodEnvelope, `"psn_no":"37010099990000000001"`, `"psn_no":"1","psn_no":"2"`, 1), "twice"},
		{"invalid UTF-8", strings.Replace(goodEnvelope, "收费员", "\xff\xfe", 1), "UTF-8"},
		{"overlong encoding", strings.Replace(goodEnvelope, "收费员", "\xc0\xaf", 1), "UTF-8"},
		{"NUL in a string", strings.Replace(goodEnvelope, "收费员", `\u0000`, 1), "NUL"},
		{"unpaired surrogate", strings.Replace(goodEnvelope, "收费员", `\ud800`, 1), "surrogate"},
		{"not JSON", `infno=2207`, "报文不是合法的JSON"},
		{"input over 40,000 bytes", strings.Replace(goodEnvelope, `"data":{`, `"pad":"`+strings.Repeat("x", 40001)+`","data":{`, 1), "input 超长"},
		{"input null", strings.Replace(goodEnvelope, `"input":{"data":{"psn_no":"37010099990000000001","medfee_sumamt":1071.00}}`, `"input":null`, 1), "input 不能为空"},
		{"an array", `[` + goodEnvelope + `]`, "报文不是合法的JSON"},
		{"deep nesting", strings.Replace(goodEnvelope, `"data":{`, `"deep":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`,"data":{`, 1), "nest"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := handleUnsigned([]byte(c.body))
			if resp.Infcode != -1 || !strings.Contains(resp.ErrMsg, c.want) {
				t.Fatalf("infcode %d err_msg %q, want -1 mentioning %q", resp.Infcode, resp.ErrMsg, c.want)
			}
		})
	}
}

// FuzzEnvelope decodes and validates any body as Handle does. Nothing
// panics; Handle always answers infcode -1 with an err_msg (there is no
// caller); and an envelope that passes is UTF-8 without surprises and
// re-encodes to an envelope that passes again with the same fields.
func FuzzEnvelope(f *testing.F) {
	f.Add([]byte(goodEnvelope))
	f.Add([]byte(strings.Replace(goodEnvelope, `"H37010000001"`, `"H370100000012345678"`, 1)))
	f.Add([]byte(`{"infno":"2207","msgid":"H370100000012345678901234567","fixmedins_code":"H3701000000123456789012345678"}`))
	f.Add([]byte(goodEnvelope + `]`))
	f.Add([]byte(`{"input":{"a":1,"A":2}}`))
	f.Add([]byte("{\"opter_name\":\"\xc0\xaf\"}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		resp := handleUnsigned(body)
		if resp.Infcode != -1 || resp.ErrMsg == "" || resp.Output != nil {
			t.Fatalf("unsigned message answered %+v", resp)
		}
		if _, err := json.Marshal(resp); err != nil {
			t.Fatalf("answer does not encode: %v", err)
		}
		r, err := parseEnvelope(body)
		if err != nil {
			return
		}
		if !utf8.Valid(body) || yibao.CheckJSON(body) != nil {
			t.Fatalf("accepted %q", body)
		}
		if r.validate("", fuzzNow) != nil {
			return
		}
		if len(r.Msgid) != 30 || !strings.HasPrefix(r.Msgid, r.FixmedinsCode) || !infnoRe.MatchString(r.Infno) ||
			len(r.Input) == 0 || len(r.Input) > maxInput {
			t.Fatalf("validated %+v", r)
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", r, err)
		}
		r2, err := parseEnvelope(again)
		if err != nil {
			t.Fatalf("re-encoded %s refused: %v", again, err)
		}
		if err := r2.validate("", fuzzNow); err != nil {
			t.Fatalf("re-encoded %s invalid: %v", again, err)
		}
		in1, in2 := decodeAny(t, r.Input), decodeAny(t, r2.Input)
		raw1, raw2 := r.Input, r2.Input
		r.Input, r2.Input = nil, nil
		if !reflect.DeepEqual(r, r2) || !reflect.DeepEqual(in1, in2) {
			t.Fatalf("round trip changed the envelope:\n%+v %s\n%+v %s", r, raw1, r2, raw2)
		}
	})
}

func decodeAny(t *testing.T, b []byte) any {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}

// FuzzAmount: an NHSA amount (a JSON number, or a numeric string) is
// taken exactly as money.ParseYuan reads its digits, or refused; what is
// taken marshals as a JSON number and reads back to the same fen.
func FuzzAmount(f *testing.F) {
	for _, s := range []string{`1071.00`, `"1071.5"`, `0`, `-3.20`, `1.005`, `1e3`, `"NaN"`, `null`, `""`, `9007199254740993`,
		`90071992547409.91`, `true`, `[1]`, `{"a":1}`, `"\u0031"`, `0.1`, `-0`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v struct {
			A amount `json:"a"`
		}
		doc := []byte(`{"a":` + s + `}`)
		if !json.Valid(doc) {
			return
		}
		err := json.Unmarshal(doc, &v)
		text := strings.TrimSpace(s)
		if len(text) >= 2 && text[0] == '"' {
			text = text[1 : len(text)-1]
		}
		want, werr := money.ParseYuan(text)
		switch {
		case text == "" || text == "null":
			if err != nil || v.A != 0 {
				t.Fatalf("%s: %d %v, want 0 (absent)", s, v.A, err)
			}
			return
		case werr != nil:
			if err == nil {
				t.Fatalf("%s taken as %d fen; ParseYuan refuses %q", s, v.A, text)
			}
			return
		case err != nil || money.Fen(v.A) != want:
			t.Fatalf("%s: %d %v, want %d", s, v.A, err, want)
		}
		b, err := json.Marshal(v)
		if err != nil || !json.Valid(b) || bytes.Contains(b, []byte(`"a":"`)) {
			t.Fatalf("marshal %d: %s %v", v.A, b, err)
		}
		var back struct {
			A amount `json:"a"`
		}
		if err := json.Unmarshal(b, &back); err != nil || back.A != v.A {
			t.Fatalf("%s → %s → %d %v", s, b, back.A, err)
		}
	})
}
