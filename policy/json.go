package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"yibao"
)

// Request is the `yibao calc` input: a policy version and one settlement's
// input, amounts as yuan strings.
type Request struct {
	Policy *Policy `json:"policy"`
	Input
	Explain bool `json:"explain,omitempty"` // also settable by the caller's flag
}

// maxRequest bounds a calc request (a policy plus a few thousand lines).
const maxRequest = 8 << 20

// decodeStrict decodes exactly one JSON value into v, rejecting unknown
// fields and trailing data.
func decodeStrict(r io.Reader, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, maxRequest+1))
	if err != nil {
		return yibao.Wrap(yibao.CodeMalformed, err, "cannot read the request")
	}
	if len(data) > maxRequest {
		return yibao.Errorf(yibao.CodeTooLarge, "request larger than %d bytes", maxRequest)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return yibao.Errorf(yibao.CodeMalformed, "bad JSON: %v", err)
	}
	if dec.More() {
		return yibao.Errorf(yibao.CodeMalformed, "bad JSON: data after the request")
	}
	return nil
}

// LoadPolicy decodes one policy version (unknown fields rejected) and
// validates it.
func LoadPolicy(r io.Reader) (*Policy, error) {
	var p Policy
	if err := decodeStrict(r, &p); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// DecodeRequest reads and validates one calc request.
func DecodeRequest(r io.Reader) (*Request, error) {
	var req Request
	if err := decodeStrict(r, &req); err != nil {
		return nil, err
	}
	if req.Policy == nil {
		return nil, yibao.FieldError("policy", "is required")
	}
	if err := req.Policy.Validate(); err != nil {
		var e *yibao.Error
		if errors.As(err, &e) {
			e.Field = "policy." + e.Field
		}
		return nil, err
	}
	return &req, nil
}

// EncodeResult writes the result as indented JSON, amounts as yuan strings.
func EncodeResult(w io.Writer, res *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(res)
}

// RunCalc is `yibao calc`: it reads one request from r, settles it and
// writes the result to w. explain (or the request's "explain") adds the
// bilingual step list.
func RunCalc(r io.Reader, w io.Writer, explain bool) error {
	req, err := DecodeRequest(r)
	if err != nil {
		return err
	}
	res, err := Calc(req.Policy, &req.Input, Options{Explain: explain || req.Explain})
	if err != nil {
		return err
	}
	return EncodeResult(w, res)
}
