package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"testing"
	"unicode/utf8"

	"yibao"
	"yibao/pay"
	"yibao/settlement"
)

// decodeTargets are request bodies as the handlers declare them: settle,
// fee lines, visit, person, institution, catalog item, one-code payment.
var decodeTargets = []func() any{
	func() any { return new(settlement.SettleRequest) },
	func() any {
		return new(struct {
			Lines []settlement.FeeLineInput `json:"lines"`
		})
	},
	func() any {
		return new(struct {
			settlement.VisitRequest
			EcToken string `json:"ec_token"`
		})
	},
	func() any {
		return new(struct {
			PsnNo    string               `json:"psn_no"`
			IDNumber string               `json:"id_number"`
			Name     string               `json:"name"`
			Phone    string               `json:"phone"`
			Category yibao.PersonCategory `json:"category"`
			Admdvs   string               `json:"admdvs"`
		})
	},
	func() any {
		return new(struct {
			Code           string                `json:"fixmedins_code"`
			Name           string                `json:"name"`
			Kind           yibao.InstitutionKind `json:"kind"`
			Level          int                   `json:"level"`
			Admdvs         string                `json:"admdvs"`
			ContractStatus yibao.ContractStatus  `json:"contract_status"`
		})
	},
	func() any { return new(yibao.CatalogItem) },
	func() any { return new(pay.PayRequest) },
}

func decodeBody(body []byte, v any) error {
	r := httptest.NewRequest("POST", "/api/v1/x", nil)
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	return (&call{r: r, body: body}).decode(v)
}

func TestDecodeStrict(t *testing.T) {
	lines := decodeTargets[1]
	for _, c := range []struct {
		name, body string
		ok         bool
	}{
		{"one line", `{"lines":[{"feedetl_sn":"1","catalog_code":"X","unit_price":"12.30","quantity":"2"}]}`, true},
		{"trailing whitespace", "{\"lines\":[]}\r\n\t ", true},
		{"trailing }", `{"lines":[]}}`, false},
		{"trailing ]", `{"lines":[]}]`, false},
		{"trailing text", `{"lines":[]} x`, false},
		{"second object", `{"lines":[]}{"lines":[]}`, false},
		{"null", `null`, false},
		{"an array", `[]`, false},
		{"duplicate key", `{"lines":[],"lines":[]}`, false},
		{"duplicate key, other case", `{"lines":[],"LINES":[]}`, false},
		{"duplicate key in a line", `{"lines":[{"unit_price":"1.00","unit_price":"100.00"}]}`, false},
		{"invalid UTF-8", "{\"lines\":[{\"feedetl_sn\":\"\xff\"}]}", false},
		{"overlong", "{\"lines\":[{\"feedetl_sn\":\"\xc0\xaf\"}]}", false},
		{"NUL", `{"lines":[{"feedetl_sn":"1\u0000"}]}`, false},
		{"unpaired surrogate", `{"lines":[{"feedetl_sn":"\udfff"}]}`, false},
		{"amount as number", `{"lines":[{"unit_price":12.3}]}`, false},
		{"amount with 3 decimals", `{"lines":[{"unit_price":"12.345"}]}`, false},
		{"amount beyond 2^53 fen", `{"lines":[{"unit_price":"90071992547409.92"}]}`, false},
	} {
		err := decodeBody([]byte(c.body), lines())
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && !yibao.IsCode(err, yibao.CodeMalformed) {
			t.Errorf("%s: code %s, want malformed_request", c.name, yibao.ErrorCode(err))
		}
	}
}

// FuzzDecode runs the handlers' strict decoding over any body for the
// real request types. Properties: no panic; a refusal is
// malformed_request; an accepted body is one JSON object of valid UTF-8
// with nothing after it that CheckJSON passes; what the strict decoder
// reads equals what encoding/json reads leniently (strictness never
// changes a value); and the decoded value re-encodes to a body that
// decodes to the same value (encode∘decode is a fixed point).
func FuzzDecode(f *testing.F) {
	for _, s := range []struct {
		target uint8
		body   string
	}{
		{0, `{"pay_mode":"later","acct_used_flag":false}`},
		{0, `{"kind":"discharge","family_psn_no":"37010099990000000002","explain":false}`},
		{1, `{"lines":[{"feedetl_sn":"1","catalog_code":"XA01AAA","unit_price":"520.50","quantity":"2"},{"feedetl_sn":"2","catalog_code":"XA01AAA","unit_price":"30.00","quantity":"1/3","amount":"10.00","fee_date":"2026-01-10"}]}`},
		{1, `{"lines":[{"feedetl_sn":"'; DROP TABLE visits;--","catalog_code":"\" OR 1=1 --","unit_price":"1.00","quantity":"1"}]}`},
		{2, `{"psn_no":"37010099990000000001","fixmedins_code":"H37010000001","visit_type":"general_outpatient","dept_code":"NK","dept_name":"内科","transfer_from_level":2}`},
		{3, `{"psn_no":"37010099990000000001","id_number":"110101199003074477","name":"王小明","phone":"13700000001","category":"active","admdvs":"370100"}`},
		{4, `{"fixmedins_code":"H37010099999","name":"测试医院) UNION SELECT","kind":"hospital","level":3,"admdvs":"370100","contract_status":"active"}`},
		{5, `{"code":"TEST000000001","name":"测试药","kind":"drug","class":"B","self_pay_ratio":"0.1","price_cap":"12.50","unit":"片","valid_from":"2025-01-01","created_at":"2025-01-01T00:00:00+08:00"}`},
		{6, `{"channel":"wechat","acct_used_flag":true}`},
		{1, `{"lines":[]}]`},
		{3, `{"name":"a","NAME":"b"}`},
		{3, "{\"name\":\"\xc0\xaf\"}"},
		{4, `{"level":"3"}`},
		{4, `{"level":3.0}`},
		{4, `{"level":1e400}`},
		{1, `{"lines":[{"unit_price":"1e3"}]}`},
	} {
		f.Add(s.target, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, target uint8, body []byte) {
		mk := decodeTargets[int(target)%len(decodeTargets)]
		v := mk()
		err := decodeBody(body, v)
		if err != nil {
			if c := yibao.ErrorCode(err); c != yibao.CodeMalformed {
				t.Fatalf("refused with %s: %v", c, err)
			}
			return
		}
		trimmed := bytes.TrimSpace(body)
		if !utf8.Valid(body) || !json.Valid(body) || trimmed[0] != '{' || yibao.CheckJSON(body) != nil {
			t.Fatalf("accepted %q", body)
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		var first json.RawMessage
		if err := dec.Decode(&first); err != nil {
			t.Fatal(err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			t.Fatalf("accepted %q with something after the object", body)
		}
		got, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		lenient := mk()
		if err := json.Unmarshal(body, lenient); err != nil {
			t.Fatalf("strict decode took %q, encoding/json refuses it: %v", body, err)
		}
		if want, _ := json.Marshal(lenient); !bytes.Equal(got, want) {
			t.Fatalf("strict decode read %s, encoding/json reads %s", got, want)
		}
		v2 := mk()
		if err := decodeBody(got, v2); err != nil {
			t.Fatalf("re-encoded %s refused: %v", got, err)
		}
		if again, _ := json.Marshal(v2); !bytes.Equal(again, got) {
			t.Fatalf("not a fixed point: %s → %s", got, again)
		}
	})
}

// TestDecodeFieldPath: a mistyped field is named as the body names it,
// also inside an embedded struct (encoding/json says "VisitRequest.psn_no").
func TestDecodeFieldPath(t *testing.T) {
	for _, c := range []struct {
		target int
		body   string
		field  string
	}{
		{2, `{"psn_no":37010099990000000001}`, "psn_no"},
		{2, `{"transfer_from_level":"2"}`, "transfer_from_level"},
		{2, `{"ec_token":1}`, "ec_token"},
		{1, `{"lines":[{"quantity":2}]}`, "lines.quantity"},
		{1, `{"lines":{"a":1}}`, "lines"},
		{4, `{"level":"3"}`, "level"},
		{0, `{"acct_used_flag":"false"}`, "acct_used_flag"},
	} {
		err := decodeBody([]byte(c.body), decodeTargets[c.target]())
		var ye *yibao.Error
		if !errors.As(err, &ye) || ye.Code != yibao.CodeMalformed || ye.Field != c.field {
			t.Errorf("%s: %#v, want malformed_request naming %q", c.body, err, c.field)
		}
	}
}
