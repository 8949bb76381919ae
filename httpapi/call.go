package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"yibao"
	"yibao/auth"
)

// access says who may reach a route at all; finer rules live in services.
type access int

const (
	public access = iota // no credentials
	anyone               // any authenticated principal
	staff                // users only (bearer), not API keys
)

// route is one entry of the route table; the OpenAPI test checks the table
// against openapi.yaml.
type route struct {
	method, path string
	access       access
	idempotent   bool  // state-changing call that needs an Idempotency-Key
	maxBody      int64 // 0: the JSON default
	// dual: a key change; a staff user's call is stored for a second
	// administrator's approval instead of running (approvals.go).
	dual bool
	h    func(c *call) error
	// refuse, if set, renders the errors raised before the handler runs
	// (an oversized body, say) in the route's own format instead of the
	// REST error object; it returns the HTTP status it wrote.
	refuse func(w http.ResponseWriter, err error) int
}

// call is one request in flight.
type call struct {
	w         http.ResponseWriter
	r         *http.Request
	body      []byte
	principal *yibao.Principal
	status    int
	// nonce: a signed request's nonce, not yet recorded (serve).
	nonce *auth.NonceWrite
}

// decode reads the JSON body into v, strictly: one object and nothing
// after it, UTF-8, no unknown fields, right types, no key twice (nor in
// another letter case), no NUL or unpaired surrogate in a string, at most
// yibao.MaxJSONDepth levels deep. Every refusal is malformed_request.
func (c *call) decode(v any) error {
	ct := c.r.Header.Get("Content-Type")
	if mt, _, _ := mime.ParseMediaType(ct); ct != "" && mt != "application/json" {
		return yibao.Errorf(yibao.CodeUnsupportedType, "send application/json, not %s", mt)
	}
	body := bytes.TrimSpace(c.body)
	if len(body) == 0 {
		return yibao.Errorf(yibao.CodeMalformed, "the request body is empty; send a JSON object")
	}
	if !utf8.Valid(body) {
		return yibao.CheckJSON(body)
	}
	if body[0] != '{' {
		return yibao.Errorf(yibao.CodeMalformed, "the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			te.Field = bodyPath(reflect.TypeOf(v), te.Field)
		}
		return jsonError(err)
	}
	// More() is false before a stray '}' or ']', so ask for the next token.
	if _, err := dec.Token(); err != io.EOF {
		return yibao.Errorf(yibao.CodeMalformed, "the body must hold exactly one JSON value, with nothing after it")
	}
	return yibao.CheckJSON(body)
}

// decodeOptional is decode for bodies that may be left out entirely.
func (c *call) decodeOptional(v any) error {
	if len(bytes.TrimSpace(c.body)) == 0 {
		return nil
	}
	return c.decode(v)
}

// requireJSON checks the content type of a body passed on unparsed.
func (c *call) requireJSON() error {
	ct := c.r.Header.Get("Content-Type")
	if mt, _, _ := mime.ParseMediaType(ct); ct != "" && mt != "application/json" {
		return yibao.Errorf(yibao.CodeUnsupportedType, "send application/json, not %s", mt)
	}
	if len(bytes.TrimSpace(c.body)) == 0 {
		return yibao.Errorf(yibao.CodeMalformed, "the request body is empty; send a JSON object")
	}
	return nil
}

// jsonError turns a decoding error into a message that names the problem.
func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return yibao.Errorf(yibao.CodeMalformed, "invalid JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		return &yibao.Error{Code: yibao.CodeMalformed, Field: te.Field,
			Message: fmt.Sprintf("field %q must be %s, not %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return yibao.Errorf(yibao.CodeMalformed, "the JSON body ends too early")
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return yibao.Errorf(yibao.CodeMalformed, "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	var ye *yibao.Error
	if errors.As(err, &ye) {
		return ye
	}
	// Errors from UnmarshalText of typed fields (amounts, ratios).
	return yibao.Errorf(yibao.CodeMalformed, "invalid value: %v", err)
}

// bodyPath turns encoding/json's path of a mistyped field into the
// body's: the Go names of embedded structs, which are not in the body, are
// dropped ("VisitRequest.psn_no" is "psn_no").
func bodyPath(t reflect.Type, path string) string {
	var out []string
	for _, name := range strings.Split(path, ".") {
		for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map) {
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct {
			out, t = append(out, name), nil
			continue
		}
		var next reflect.Type
		embedded := false
		for _, f := range reflect.VisibleFields(t) {
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			switch {
			case f.Anonymous && tag == "" && f.Name == name:
				next, embedded = f.Type, true
			case next == nil && (tag == name || (tag == "" && f.Name == name)):
				next = f.Type
			}
		}
		if !embedded {
			out = append(out, name)
		}
		t = next
	}
	return strings.Join(out, ".")
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return k
}

// json writes v with status.
func (c *call) json(status int, v any) error {
	c.status = status
	writeJSON(c.w, status, v)
	return nil
}

// raw writes a non-JSON body.
func (c *call) raw(status int, contentType string, b []byte) error {
	c.status = status
	c.w.Header().Set("Content-Type", contentType)
	c.w.WriteHeader(status)
	c.w.Write(b)
	return nil
}

func (c *call) path(name string) string { return c.r.PathValue(name) }

func (c *call) query(name string) string { return c.r.URL.Query().Get(name) }

// limit parses ?limit=, 0 when absent.
func (c *call) limit() (int, error) {
	s := c.query("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 500 {
		return 0, yibao.FieldError("limit", "must be a whole number from 1 to 500")
	}
	return n, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// statusOf maps an error code to its HTTP status. Every code in
// yibao.Codes has an entry; a test checks it.
var statusOf = map[yibao.Code]int{
	yibao.CodeInvalid:             http.StatusUnprocessableEntity,
	yibao.CodeMalformed:           http.StatusBadRequest,
	yibao.CodeTooLarge:            http.StatusRequestEntityTooLarge,
	yibao.CodeUnsupportedType:     http.StatusUnsupportedMediaType,
	yibao.CodeIdemRequired:        http.StatusBadRequest,
	yibao.CodeIdemConflict:        http.StatusConflict,
	yibao.CodeIdemLost:            http.StatusConflict,
	yibao.CodeUnauthenticated:     http.StatusUnauthorized,
	yibao.CodeBadSignature:        http.StatusUnauthorized,
	yibao.CodeReplay:              http.StatusUnauthorized,
	yibao.CodeForbidden:           http.StatusForbidden,
	yibao.CodeNotFound:            http.StatusNotFound,
	yibao.CodeConflict:            http.StatusConflict,
	yibao.CodePrecondition:        http.StatusConflict,
	yibao.CodeRateLimited:         http.StatusTooManyRequests,
	yibao.CodeInsufficientFunds:   http.StatusUnprocessableEntity,
	yibao.CodeCreditLimitExceeded: http.StatusUnprocessableEntity,
	yibao.CodeInternal:            http.StatusInternalServerError,
	yibao.CodeUnavailable:         http.StatusServiceUnavailable,
}

// ErrorBody is the one error shape of the API.
type ErrorBody struct {
	Code      yibao.Code    `json:"code"`
	Message   string        `json:"message"`
	Field     string        `json:"field,omitempty"`
	Issues    []yibao.Issue `json:"issues,omitempty"`
	RequestID string        `json:"request_id"`
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) int {
	code := yibao.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	body := ErrorBody{Code: code, Message: yibao.ErrorMessage(err), RequestID: RequestID(r.Context())}
	var ye *yibao.Error
	if errors.As(err, &ye) {
		body.Field, body.Issues = ye.Field, ye.Issues
	}
	if status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "request_id", body.RequestID, "method", r.Method,
			"path", r.URL.Path, "err", err.Error())
		if code == yibao.CodeInternal {
			body.Message = "internal error; quote the request id to support"
		}
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="yibao"`)
	}
	writeJSON(w, status, body)
	return status
}

// recorder captures the status and body a handler writes, for logs,
// metrics and idempotent replay.
type recorder struct {
	http.ResponseWriter
	status    int
	buf       bytes.Buffer
	keep      bool
	principal *yibao.Principal // who was authenticated, for logs and refusal audit
}

func (rw *recorder) WriteHeader(code int) {
	if rw.status == 0 {
		rw.status = code
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *recorder) Write(b []byte) (int, error) {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	if rw.keep {
		rw.buf.Write(b)
	}
	return rw.ResponseWriter.Write(b)
}

// wrap turns a route into a handler: body limit, authentication,
// idempotency, the handler, errors, logs and metrics.
func (s *Server) wrap(rt route) http.Handler {
	limit := rt.maxBody
	switch {
	case limit == 0:
		limit = s.cfg.MaxBodyBytes
	case limit < 0:
		limit = s.cfg.MaxImportBytes
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, keep: rt.idempotent}
		err := s.serve(rec, r, rt, limit)
		switch {
		case err != nil && rt.refuse != nil:
			rec.status = rt.refuse(rec, err)
		case err != nil:
			rec.status = s.writeError(rec, r, err)
		}
		s.auditRefusal(r, rt, rec)
		dur := time.Since(start)
		s.metrics.requests.WithLabelValues(rt.method+" "+rt.path, strconv.Itoa(rec.status)).Inc()
		s.metrics.duration.WithLabelValues(rt.method + " " + rt.path).Observe(dur.Seconds())
		attrs := []any{"request_id", RequestID(r.Context()), "method", r.Method, "route", rt.path,
			"status", rec.status, "duration_ms", float64(dur.Microseconds()) / 1000}
		if p := rec.principal; p != nil {
			attrs = append(attrs, "principal", p.ID())
		}
		if err != nil {
			attrs = append(attrs, "code", yibao.ErrorCode(err))
		}
		s.log.InfoContext(r.Context(), "http", attrs...)
	})
}

func (s *Server) serve(w *recorder, r *http.Request, rt route, limit int64) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return yibao.Errorf(yibao.CodeTooLarge, "the body is larger than %d bytes", limit)
		}
		return yibao.Wrap(yibao.CodeMalformed, err, "the request body could not be read")
	}
	c := &call{w: w, r: r, body: body}
	if rt.access != public {
		p, nonce, err := s.authenticateLater(r, body)
		if err != nil {
			return err
		}
		if nonce != nil {
			// The nonce commits with the idempotency reservation; any
			// other path records it before the request goes further.
			c.nonce = nonce
			defer func() {
				if c.nonce != nil {
					if err := s.db.WriteTx(r.Context(), c.nonce.Record); err != nil {
						s.log.ErrorContext(r.Context(), "request nonce not recorded", "err", err)
					}
				}
			}()
			if !rt.idempotent {
				if err := s.db.WriteTx(r.Context(), nonce.Record); err != nil {
					c.nonce = nil
					return err
				}
				c.nonce = nil
			}
		}
		w.principal = p
		if rt.access == staff && p.Kind != yibao.PrincipalUser {
			return yibao.Errorf(yibao.CodeForbidden, "this call is for staff sessions, not API keys")
		}
		c.principal = p
		c.r = r.WithContext(yibao.WithPrincipal(r.Context(), p))
		// JSON is UTF-8 (RFC 8259): refuse other bytes before any
		// handler, or a stored approval, keeps them.
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); (mt == "" || mt == "application/json") && !utf8.Valid(body) {
			return yibao.Errorf(yibao.CodeMalformed, "the body is not valid UTF-8 (invalid or overlong byte sequences)")
		}
	}
	if rt.dual && c.principal != nil && c.principal.Kind == yibao.PrincipalUser && r.Context().Value(approvedKey{}) == nil {
		rt.h = s.prepareApproval(rt)
	}
	if rt.idempotent {
		return s.idempotent(c, rt)
	}
	return rt.h(c)
}

// authenticate accepts a signed institution request or a bearer session.
func (s *Server) authenticate(r *http.Request, body []byte) (*yibao.Principal, error) {
	p, nonce, err := s.authenticateLater(r, body)
	if err == nil && nonce != nil {
		err = s.db.WriteTx(r.Context(), nonce.Record)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// authenticateLater is authenticate that leaves a signed request's nonce
// for the caller to record (auth.VerifyLater).
func (s *Server) authenticateLater(r *http.Request, body []byte) (*yibao.Principal, *auth.NonceWrite, error) {
	// Credentials are printable ASCII. HTTP lets other bytes through in
	// header values, and a key id that is not UTF-8 would reach the key
	// lookup, where PostgreSQL fails the query (a 500, not a 401).
	for _, h := range credentialHeaders {
		if v := r.Header.Get(h); !printableASCII(v) {
			return nil, nil, yibao.Errorf(yibao.CodeUnauthenticated, "the %s header must be printable ASCII", h)
		}
	}
	if auth.IsSigned(r) {
		return s.auth.VerifyLater(r.Context(), auth.FromRequest(r, body))
	}
	var p *yibao.Principal
	var err error
	switch {
	case r.Header.Get(auth.HeaderTIFPaasid) != "":
		p, err = s.auth.VerifyTIF(r.Context(), r.Header.Get(auth.HeaderTIFPaasid), r.Header.Get(auth.HeaderTIFTimestamp),
			r.Header.Get(auth.HeaderTIFNonce), r.Header.Get(auth.HeaderTIFSignature))
	case bearer(r) != "":
		p, err = s.auth.Authenticate(r.Context(), bearer(r))
	default:
		err = yibao.Errorf(yibao.CodeUnauthenticated, "send a bearer token (POST /api/v1/auth/login) or sign the request with an institution key")
	}
	return p, nil, err
}

// credentialHeaders are the headers authenticate reads.
var credentialHeaders = []string{"Authorization", auth.HeaderKey, auth.HeaderTimestamp, auth.HeaderNonce, auth.HeaderSignature,
	auth.HeaderTIFPaasid, auth.HeaderTIFTimestamp, auth.HeaderTIFNonce, auth.HeaderTIFSignature}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
