package yibao_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"yibao"
)

func TestCheckJSON(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, c := range []struct {
		in string
		ok bool
	}{
		{`{"name":"王小明","dept":"内科","lines":[{"a":1},{"a":2}]}`, true},
		{`{"a":{"b":1},"b":{"a":1}}`, true},              // the same key in different objects
		{`{"name":"\ud83d\ude00 \u00e9 \\u0000"}`, true}, // a pair, and an escaped backslash before u0000
		{`{"memo":"'; DROP TABLE visits;--"}`, true},     // SQL is just text
		{`"\ufffd"`, true}, // a replacement character the client meant
		{deep(yibao.MaxJSONDepth), true},
		{deep(yibao.MaxJSONDepth + 1), false},
		{deep(10000), false},
		{`{"name":"a","name":"b"}`, false},             // duplicate key
		{`{"name":"a","NAME":"b"}`, false},             // the same struct field for encoding/json
		{`{"name":"a","n\u0061me":"b"}`, false},        // the same key, escaped
		{`{"status":"a","\u017ftatus":"b"}`, false},    // ſ folds to s
		{`{"kind":"a","\u212aind":"b"}`, false},        // the Kelvin sign folds to k
		{`{"a":[{"x":1,"y":2},{"x":1,"x":2}]}`, false}, // inside an array
		{`{"name":"a\u0000b"}`, false},                 // NUL
		{`{"name":"\ud800"}`, false},                   // unpaired high surrogate
		{`{"name":"\udc00x"}`, false},                  // unpaired low surrogate
		{`{"name":"\ud800\u0041"}`, false},             // high surrogate, then not a low one
		{"{\"name\":\"\xff\"}", false},                 // invalid byte
		{"{\"name\":\"\xc0\xaf\"}", false},             // overlong '/'
		{"{\"name\":\"\xed\xa0\x80\"}", false},         // a surrogate encoded in UTF-8
		{"{\"name\":\"\xe0\x80\xaf\"}", false},         // overlong, three bytes
		{`{"a":"unterminated`, true},                   // not JSON: left to the decoder
		{`{"a":"\u12`, true},
		{`{"a":"x\`, true},
	} {
		err := yibao.CheckJSON([]byte(c.in))
		if (err == nil) != c.ok {
			t.Errorf("CheckJSON(%.60q) = %v, want ok=%v", c.in, err, c.ok)
		}
		if err != nil && !yibao.IsCode(err, yibao.CodeMalformed) {
			t.Errorf("CheckJSON(%.60q): code %s, want malformed_request", c.in, yibao.ErrorCode(err))
		}
	}
}

// FuzzCheckJSON compares CheckJSON on every valid JSON text with a
// reference walk over encoding/json's tokens: it must refuse exactly the
// bodies with a repeated (case-folded) key, a NUL, nesting deeper than
// MaxJSONDepth or an unpaired surrogate, and whatever it accepts must
// still be accepted after a decode/encode round trip. On any other input
// it must not panic.
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{
		`{"psn_no":"37010099990000000001","name":"王小明","lines":[{"feedetl_sn":"1","unit_price":"12.30"}]}`,
		`{"name":"a","Name":"b"}`, `{"a":"\u0000"}`, `{"a":"\ud800\udc00"}`, `{"a":"\udc00"}`,
		`[[[[[[[[[[]]]]]]]]]]`, "{\"a\":\"\xff\"}", `"\\ud800"`, `{"a":1} x`, `{"a":"\ufffd\\ufffd"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := yibao.CheckJSON(b)
		if err != nil && !yibao.IsCode(err, yibao.CodeMalformed) {
			t.Fatalf("code %s", yibao.ErrorCode(err))
		}
		if !json.Valid(b) {
			return
		}
		if !utf8.Valid(b) {
			if err == nil {
				t.Fatalf("accepted invalid UTF-8 %q", b)
			}
			return
		}
		bad, unsure := referenceCheck(t, b)
		switch {
		case bad != "" && err == nil:
			t.Fatalf("accepted %q: %s", b, bad)
		case bad == "" && !unsure && err != nil:
			t.Fatalf("refused %q: %v", b, err)
		}
		if err != nil {
			return
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		again, _ := json.Marshal(v)
		if err := yibao.CheckJSON(again); err != nil {
			t.Fatalf("%q accepted, its re-encoding %q refused: %v", b, again, err)
		}
	})
}

// referenceCheck walks b (valid JSON, valid UTF-8) with json.Decoder.Token
// and names the first problem CheckJSON must refuse. unsure is set when a
// string decoded to U+FFFD and the text has an escape that could be either
// a written U+FFFD or an escaped backslash.
func referenceCheck(t *testing.T, b []byte) (bad string, unsure bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		obj  bool
		n    int // tokens seen in an object: keys are the even ones
		keys map[string]bool
	}
	var stack []*frame
	prev := int64(0)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return bad, unsure
		}
		if err != nil {
			t.Fatalf("Token on valid JSON %q: %v", b, err)
		}
		seg := b[prev:dec.InputOffset()]
		prev = dec.InputOffset()
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if top != nil && top.obj {
					top.n++
				}
				stack = append(stack, &frame{obj: d == '{', keys: map[string]bool{}})
				if len(stack) > yibao.MaxJSONDepth && bad == "" {
					bad = "too deep"
				}
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		}
		isKey := top != nil && top.obj && top.n%2 == 0
		if top != nil && top.obj {
			top.n++
		}
		s, ok := tok.(string)
		if !ok {
			continue
		}
		if strings.ContainsRune(s, 0) && bad == "" {
			bad = "NUL"
		}
		if strings.ContainsRune(s, utf8.RuneError) {
			written := bytes.ContainsRune(seg, utf8.RuneError) || bytes.Contains(bytes.ToLower(seg), []byte(`\ufffd`))
			if !written && bad == "" {
				bad = "unpaired surrogate"
			}
			if written {
				unsure = true
			}
		}
		if isKey {
			// encoding/json folds case; for ASCII keys that is ToUpper.
			// Other keys are compared exactly, and their folds make the
			// answer unsure.
			k := s
			if isASCII(s) {
				k = strings.ToUpper(s)
			} else {
				unsure = true
			}
			if top.keys[k] && bad == "" {
				bad = "duplicate key " + s
			}
			top.keys[k] = true
		}
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
