package yibao

import (
	"encoding/json"
	"unicode"
	"unicode/utf8"
)

// MaxJSONDepth is how deeply objects and arrays may nest in a JSON body.
// No request of the API or the national interface comes near it.
const MaxJSONDepth = 64

// CheckJSON refuses what encoding/json silently lets through in a JSON
// body it has already parsed: bytes that are not UTF-8 (it would turn them
// into U+FFFD), escaped NUL characters and unpaired surrogates (\u0000,
// \ud800), keys repeated in one object — also when they differ only in
// letter case, because struct fields match either and the last one would
// win — and nesting deeper than MaxJSONDepth. b is expected to be one
// syntactically valid JSON value; on anything else CheckJSON reports
// what it sees and never panics, and the decoder names the syntax error.
// The error is malformed_request.
func CheckJSON(b []byte) error {
	if !utf8.Valid(b) {
		return Errorf(CodeMalformed, "the body is not valid UTF-8 (invalid or overlong byte sequences)")
	}
	type frame struct {
		obj, wantKey bool
		keys         map[string]struct{}
	}
	var stack []frame
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '{', '[':
			if len(stack) == MaxJSONDepth {
				return Errorf(CodeMalformed, "objects and arrays nest deeper than %d levels", MaxJSONDepth)
			}
			stack = append(stack, frame{obj: c == '{', wantKey: c == '{'})
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case ',':
			if n := len(stack); n > 0 && stack[n-1].obj {
				stack[n-1].wantKey = true
			}
		case '"':
			end, escaped, err := scanJSONString(b, i)
			if err != nil {
				return err
			}
			if end >= len(b) {
				return nil // unterminated string: not valid JSON
			}
			if n := len(stack); n > 0 && stack[n-1].wantKey {
				f := &stack[n-1]
				f.wantKey = false
				key := string(b[i+1 : end])
				if escaped {
					if json.Unmarshal(b[i:end+1], &key) != nil {
						return nil // not valid JSON: the decoder says why
					}
				}
				folded := foldKey(key)
				if _, dup := f.keys[folded]; dup {
					return Errorf(CodeMalformed, "the key %q appears twice in one object (keys are matched ignoring case)", key)
				}
				if f.keys == nil {
					f.keys = map[string]struct{}{}
				}
				f.keys[folded] = struct{}{}
			}
			i = end
		}
	}
	return nil
}

// scanJSONString reads the string literal starting at b[start] == '"' and
// returns the index of its closing quote (len(b) if there is none) and
// whether it holds escapes. An escaped NUL or an unpaired surrogate is an
// error, and so is a raw NUL byte.
func scanJSONString(b []byte, start int) (end int, escaped bool, err error) {
	for j := start + 1; j < len(b); j++ {
		switch b[j] {
		case '"':
			return j, escaped, nil
		case 0:
			return 0, false, Errorf(CodeMalformed, "a string holds a NUL character")
		case '\\':
			escaped = true
			if j+1 >= len(b) {
				return len(b), escaped, nil
			}
			j++
			if b[j] != 'u' {
				continue
			}
			r, ok := hex4(b, j+1)
			if !ok {
				return len(b), escaped, nil // not valid JSON
			}
			j += 4
			switch {
			case r == 0:
				return 0, false, Errorf(CodeMalformed, `a string holds a NUL character (\u0000)`)
			case r >= 0xDC00 && r <= 0xDFFF:
				return 0, false, Errorf(CodeMalformed, `a string holds an unpaired surrogate (\u%04x)`, r)
			case r >= 0xD800 && r <= 0xDBFF:
				var lo rune
				if j+2 < len(b) && b[j+1] == '\\' && b[j+2] == 'u' {
					lo, ok = hex4(b, j+3)
				}
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return 0, false, Errorf(CodeMalformed, `a string holds an unpaired surrogate (\u%04x)`, r)
				}
				j += 6
			}
		}
	}
	return len(b), escaped, nil
}

// hex4 reads four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// foldKey maps keys that encoding/json would match to the same struct
// field onto one string (its own rule: ASCII upper case, other runes the
// smallest of their simple case-fold orbit).
func foldKey(s string) string {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			out = append(out, byte(r))
			continue
		}
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		out = utf8.AppendRune(out, r)
	}
	return string(out)
}
