package httpapi_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"yibao/app"
	"yibao/auth"
	"yibao/demo"
	"yibao/gmcrypto"
	"yibao/httpapi"
	"yibao/sqlstore/sqltest"
)

// env is a running platform seeded with the demo dataset.
type env struct {
	t       *testing.T
	app     *app.App
	srv     *httptest.Server
	data    *demo.Dataset
	tokens  map[string]string
	signer  *auth.Signer
	router  routers.Router
	vars    map[string]string
	idemSeq atomic.Int64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cfg := app.Defaults()
	cfg.Face = "off"
	cfg.DataDir = t.TempDir()
	cfg.DB = sqltest.DSN(t)
	cfg.MasterKey = strings.Repeat("ab", 32)
	cfg.PasswordIterations = 1000 // fast tests; production uses the default
	cfg.LogLevel = "error"
	a, err := app.Open(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	d := demo.Build()
	if _, err := a.Seed(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, app: a, data: d, tokens: map[string]string{}}
	e.srv = httptest.NewServer(a.Handler())
	t.Cleanup(e.srv.Close)

	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: e.srv.URL}}
	if e.router, err = legacy.NewRouter(doc); err != nil {
		t.Fatal(err)
	}

	// Two hospitals, a cashier of the first, its HIS key, a person.
	var h1, h2 string
	for _, in := range d.Institutions {
		if in.Kind == "hospital" && in.Admdvs == "370100" {
			if h1 == "" {
				h1 = in.Code
			} else if h2 == "" {
				h2 = in.Code
			}
		}
	}
	e.vars = map[string]string{"{H1}": h1, "{H2}": h2, "{PSN}": d.Persons[0].PsnNo, "{ID}": d.Persons[0].IDNumber}
	for _, c := range d.Coverages {
		if c.PsnNo == d.Persons[0].PsnNo && c.EndDate == "" {
			e.vars["{INSUTYPE}"] = c.Insutype
			break
		}
	}
	for _, u := range d.Users {
		switch {
		case u.Role == "admin" && e.tokens["admin"] == "":
			e.tokens["admin"] = e.login(u.Username, u.Password)
		case u.Role == "admin" && e.tokens["auditor"] == "":
			e.tokens["auditor"] = e.login(u.Username, u.Password) // a second administrator, for dual control
		case u.Role == "cashier" && u.FixmedinsCode == h1:
			e.tokens["cashier"] = e.login(u.Username, u.Password)
		case u.Role == "his" && u.FixmedinsCode == h1:
			e.tokens["his"] = e.login(u.Username, u.Password)
		}
	}
	for _, k := range d.APIKeys {
		if k.FixmedinsCode == h1 {
			e.signer = &auth.Signer{KeyID: k.KeyID, Secret: k.Secret}
		}
	}
	if e.tokens["admin"] == "" || e.tokens["cashier"] == "" || e.tokens["his"] == "" || e.signer == nil {
		t.Fatalf("demo data lacks an admin, a cashier, an HIS user or a key for %s", h1)
	}
	return e
}

// dual sends a key change as the admin (stored, 202), checks the admin
// cannot approve it, approves it as the second administrator, and returns
// the replayed call's status and body.
func (e *env) dual(method, path string, body []byte) (int, []byte) {
	e.t.Helper()
	r, b := e.do("admin", method, path, body, map[string]string{httpapi.HeaderIdempotencyKey: e.idem()})
	if r.StatusCode != 202 {
		e.t.Fatalf("%s %s: %d %s, want 202 (stored for approval)", method, path, r.StatusCode, b)
	}
	var p struct {
		Approval struct {
			ApprovalID string `json:"approval_id"`
		} `json:"approval"`
	}
	json.Unmarshal(b, &p)
	if r, b := e.do("admin", "POST", "/api/v1/approvals/"+p.Approval.ApprovalID+"/approve", nil, nil); r.StatusCode != 403 || !strings.Contains(string(b), "dual_control") {
		e.t.Fatalf("the preparer approved their own change: %d %s", r.StatusCode, b)
	}
	r, b = e.do("auditor", "POST", "/api/v1/approvals/"+p.Approval.ApprovalID+"/approve", nil, nil)
	if r.StatusCode != 200 {
		e.t.Fatalf("approve: %d %s", r.StatusCode, b)
	}
	var a struct {
		Status       string          `json:"status"`
		ResultStatus int             `json:"result_status"`
		Result       json.RawMessage `json:"result"`
	}
	json.Unmarshal(b, &a)
	return a.ResultStatus, a.Result
}

func (e *env) login(user, pw string) string {
	e.t.Helper()
	resp, body := e.do("anon", "POST", "/api/v1/auth/login", []byte(`{"username":"`+user+`","password":"`+pw+`"}`), nil)
	if resp.StatusCode != 200 {
		e.t.Fatalf("login %s: %d %s", user, resp.StatusCode, body)
	}
	var s struct{ Token string }
	json.Unmarshal(body, &s)
	return s.Token
}

func (e *env) expand(s string) string {
	for k, v := range e.vars {
		s = strings.ReplaceAll(s, k, v)
	}
	return s
}

// do sends a request as a principal ("anon", "admin", "cashier", "his",
// "key" for a signed request, anything else as a bogus token) and checks
// the response against the OpenAPI document.
func (e *env) do(as, method, path string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	switch as {
	case "anon":
	case "key":
		if err := e.signer.Sign(req, body); err != nil {
			e.t.Fatal(err)
		}
	default:
		tok, ok := e.tokens[as]
		if !ok {
			tok = "not-a-real-token"
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	e.validate(req, body, resp, out)
	return resp, out
}

// validate checks an /api/v1 response against the OpenAPI document, and
// every error against the one error shape.
func (e *env) validate(req *http.Request, reqBody []byte, resp *http.Response, body []byte) {
	e.t.Helper()
	if resp.StatusCode >= 400 {
		var eb httpapi.ErrorBody
		if err := json.Unmarshal(body, &eb); err != nil || eb.Code == "" || eb.Message == "" || eb.RequestID == "" {
			e.t.Fatalf("%s %s: error body %q is not {code, message, request_id}", req.Method, req.URL.Path, body)
		}
		// A replay carries the first response's body, and so its request id.
		if eb.RequestID != resp.Header.Get("X-Request-Id") && resp.Header.Get("Idempotent-Replayed") == "" {
			e.t.Fatalf("request_id %s differs from X-Request-Id %s", eb.RequestID, resp.Header.Get("X-Request-Id"))
		}
	}
	if !strings.HasPrefix(req.URL.Path, "/api/v1/") || req.URL.Path == "/api/v1/openapi.json" {
		return
	}
	r2, _ := http.NewRequest(req.Method, req.URL.String(), bytes.NewReader(reqBody))
	route, params, err := e.router.FindRoute(r2)
	if err != nil {
		if resp.StatusCode == 404 {
			return // unknown routes are answered, and rightly absent from the spec
		}
		e.t.Fatalf("%s %s is not in openapi.yaml: %v", req.Method, req.URL.Path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: r2, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode,
		Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		e.t.Fatalf("%s %s → %d does not match openapi.yaml: %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
}

func (e *env) idem() string {
	return "test-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatInt(e.idemSeq.Add(1), 10)
}

type apiCase struct {
	Name        string          `json:"name"`
	As          string          `json:"as"`
	Method      string          `json:"method"`
	Path        string          `json:"path"`
	Body        json.RawMessage `json:"body"`
	Raw         *string         `json:"raw"`
	ContentType string          `json:"content_type"`
	Idem        bool            `json:"idem"`
	Status      int             `json:"status"`
	Code        string          `json:"code"`
	Field       string          `json:"field"`
	Contains    string          `json:"contains"`
	Absent      string          `json:"absent"`
}

func TestAPICases(t *testing.T) {
	var cases []apiCase
	b, err := os.ReadFile("testdata/api_cases.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			e.t = t
			var body []byte
			if c.Raw != nil {
				body = []byte(*c.Raw)
			} else if c.Body != nil {
				body = []byte(e.expand(string(c.Body)))
			}
			hdr := map[string]string{}
			if c.Idem {
				hdr[httpapi.HeaderIdempotencyKey] = e.idem()
			}
			if c.ContentType != "" {
				hdr["Content-Type"] = c.ContentType
			}
			resp, out := e.do(c.As, c.Method, e.expand(c.Path), body, hdr)
			if resp.StatusCode != c.Status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.Status, out)
			}
			if c.Code != "" || c.Field != "" {
				var eb httpapi.ErrorBody
				json.Unmarshal(out, &eb)
				if string(eb.Code) != c.Code || (c.Field != "" && eb.Field != c.Field) {
					t.Fatalf("error %s field %q, want %s field %q: %s", eb.Code, eb.Field, c.Code, c.Field, out)
				}
			}
			compact := compactJSON(out)
			if c.Contains != "" && !strings.Contains(compact, e.expand(c.Contains)) {
				t.Fatalf("response lacks %q: %s", e.expand(c.Contains), clip(compact))
			}
			if c.Absent != "" && strings.Contains(compact, e.expand(c.Absent)) {
				t.Fatalf("response must not contain %q: %s", e.expand(c.Absent), clip(compact))
			}
		})
	}
}

func clip(s string) string {
	if len(s) > 600 {
		return s[:600] + "…"
	}
	return s
}

func compactJSON(b []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) == nil {
		return buf.String()
	}
	return string(b)
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is invalid: %v", err)
	}
	var spec []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			spec = append(spec, method+" "+path)
		}
	}
	code := httpapi.RouteList()
	sort.Strings(spec)
	sort.Strings(code)
	if strings.Join(spec, "\n") != strings.Join(code, "\n") {
		t.Fatalf("routes and openapi.yaml differ\nin code:\n%s\n\nin openapi.yaml:\n%s", strings.Join(code, "\n"), strings.Join(spec, "\n"))
	}
}

func TestIdempotencyKeys(t *testing.T) {
	e := newEnv(t)
	key := e.idem()
	body := []byte(`{"admdvs":"370700","name":"潍坊市","parent":"370000"}`)
	r1, b1 := e.do("admin", "POST", "/api/v1/regions", body, map[string]string{httpapi.HeaderIdempotencyKey: key})
	r2, b2 := e.do("admin", "POST", "/api/v1/regions", body, map[string]string{httpapi.HeaderIdempotencyKey: key})
	if r1.StatusCode != 201 || r2.StatusCode != 201 || !bytes.Equal(b1, b2) {
		t.Fatalf("replay differs: %d %s / %d %s", r1.StatusCode, b1, r2.StatusCode, b2)
	}
	if r1.Header.Get("Idempotent-Replayed") != "" || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatal("Idempotent-Replayed header wrong")
	}
	other := []byte(`{"admdvs":"370800","name":"济宁市"}`)
	r3, b3 := e.do("admin", "POST", "/api/v1/regions", other, map[string]string{httpapi.HeaderIdempotencyKey: key})
	if r3.StatusCode != 409 || !strings.Contains(string(b3), "idempotency_conflict") {
		t.Fatalf("reuse with another body: %d %s", r3.StatusCode, b3)
	}
	// A 4xx answer is remembered too: the same mistake gets the same answer.
	bad := []byte(`{"admdvs":"1","name":"x"}`)
	k2 := e.idem()
	r4, b4 := e.do("admin", "POST", "/api/v1/regions", bad, map[string]string{httpapi.HeaderIdempotencyKey: k2})
	r5, b5 := e.do("admin", "POST", "/api/v1/regions", bad, map[string]string{httpapi.HeaderIdempotencyKey: k2})
	if r4.StatusCode != 422 || r5.StatusCode != 422 || !bytes.Equal(b4, b5) || r5.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("4xx replay: %d %s / %d %s", r4.StatusCode, b4, r5.StatusCode, b5)
	}
	// Keys are per principal: another admin's key with the same text is separate.
	var n int
	e.app.DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM regions WHERE admdvs = '370700'`).Scan(&n)
	if n != 1 {
		t.Fatalf("region written %d times", n)
	}
}

func TestSignedRequests(t *testing.T) {
	e := newEnv(t)
	h1, h2 := e.vars["{H1}"], e.vars["{H2}"]
	path := "/api/v1/institutions/" + h1
	send := func(mut func(r *http.Request)) (int, string) {
		req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
		if err := e.signer.Sign(req, nil); err != nil {
			t.Fatal(err)
		}
		if mut != nil {
			mut(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var eb httpapi.ErrorBody
		json.NewDecoder(resp.Body).Decode(&eb)
		return resp.StatusCode, string(eb.Code)
	}
	var replayed *http.Request
	cases := []struct {
		name   string
		mut    func(r *http.Request)
		status int
		code   string
	}{
		{"valid", func(r *http.Request) { replayed = r.Clone(context.Background()) }, 200, ""},
		{"tampered signature", func(r *http.Request) {
			s := r.Header.Get(auth.HeaderSignature)
			r.Header.Set(auth.HeaderSignature, strings.Repeat("0", len(s)))
		}, 401, "bad_signature"},
		{"signature for another path", func(r *http.Request) { r.URL.Path = "/api/v1/institutions/" + h2 }, 401, "bad_signature"},
		{"unknown key", func(r *http.Request) { r.Header.Set(auth.HeaderKey, "ak_unknown") }, 401, "unauthenticated"},
		{"short nonce", func(r *http.Request) { r.Header.Set(auth.HeaderNonce, "abc") }, 401, "unauthenticated"},
		{"stale timestamp", func(r *http.Request) {
			r.Header.Set(auth.HeaderTimestamp, strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10))
		}, 401, "replayed_request"},
		{"replayed nonce", func(r *http.Request) {
			for k, v := range replayed.Header {
				r.Header[k] = v
			}
		}, 401, "replayed_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, code := send(c.mut)
			if st != c.status || code != c.code {
				t.Fatalf("got %d %s, want %d %s", st, code, c.status, c.code)
			}
		})
	}
	// A suspended institution's key stops working at once.
	r, b := e.do("admin", "PUT", "/api/v1/institutions/"+h1+"/contract", []byte(`{"contract_status":"suspended"}`),
		map[string]string{httpapi.HeaderIdempotencyKey: e.idem()})
	if r.StatusCode != 200 {
		t.Fatalf("suspend: %d %s", r.StatusCode, b)
	}
	if st, code := send(nil); st != 403 || code != "permission_denied" {
		t.Fatalf("suspended institution: %d %s", st, code)
	}
}

func TestSM2KeyRegistration(t *testing.T) {
	e := newEnv(t)
	h1 := e.vars["{H1}"]
	priv := mustSM2(t)
	body := []byte(`{"alg":"SM2","public_key":"` + hex.EncodeToString(priv.Public().Bytes()) + `"}`)
	st, b := e.dual("POST", "/api/v1/institutions/"+h1+"/keys", body)
	if st != 201 {
		t.Fatalf("register: %d %s", st, b)
	}
	var k auth.APIKey
	json.Unmarshal(b, &k)
	if k.Secret != "" || k.Alg != "SM2" {
		t.Fatalf("key = %+v", k)
	}
	e.signer = &auth.Signer{KeyID: k.KeyID, SM2: priv}
	if r, b := e.do("key", "GET", "/api/v1/institutions/"+h1, nil, nil); r.StatusCode != 200 {
		t.Fatalf("SM2-signed request: %d %s", r.StatusCode, b)
	}
	// Revoked: refused at once.
	if st, b := e.dual("DELETE", "/api/v1/institutions/"+h1+"/keys/"+k.KeyID, nil); st != 200 {
		t.Fatalf("revoke: %d %s", st, b)
	}
	if r, _ := e.do("key", "GET", "/api/v1/institutions/"+h1, nil, nil); r.StatusCode != 401 {
		t.Fatalf("revoked key still works: %d", r.StatusCode)
	}
}

func mustSM2(t *testing.T) *gmcrypto.PrivateKey {
	t.Helper()
	k, err := gmcrypto.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t)
	big := []byte(`{"admdvs":"370900","name":"` + strings.Repeat("泰", 1<<19) + `"}`)
	r, b := e.do("admin", "POST", "/api/v1/regions", big, map[string]string{httpapi.HeaderIdempotencyKey: e.idem()})
	if r.StatusCode != 413 || !strings.Contains(string(b), "request_too_large") {
		t.Fatalf("oversize body: %d %s", r.StatusCode, b)
	}
}

func TestImportOverHTTP(t *testing.T) {
	e := newEnv(t)
	csv := demo.CatalogCSV(nil) // header only
	csv = append(csv, []byte("IMPORT0000001,导入测试药,drug,乙,0.1,3.50,片,片剂,X,,2025-01-01,\n")...)
	r, b := e.do("admin", "POST", "/api/v1/imports?kind=catalog", csv, map[string]string{
		httpapi.HeaderIdempotencyKey: e.idem(), "Content-Type": "text/csv"})
	if r.StatusCode != 202 {
		t.Fatalf("start: %d %s", r.StatusCode, b)
	}
	var job struct {
		ID, Status string
		Imported   int
	}
	json.Unmarshal(b, &job)
	deadline := time.Now().Add(10 * time.Second)
	for job.Status == "running" {
		if time.Now().After(deadline) {
			t.Fatal("import did not finish")
		}
		time.Sleep(20 * time.Millisecond)
		_, b = e.do("admin", "GET", "/api/v1/imports/"+job.ID, nil, nil)
		json.Unmarshal(b, &job)
	}
	if job.Status != "succeeded" || job.Imported != 1 {
		t.Fatalf("job: %s", b)
	}
	if r, b := e.do("cashier", "GET", "/api/v1/catalog/IMPORT0000001", nil, nil); r.StatusCode != 200 || !strings.Contains(string(b), `"price_cap":"3.50"`) {
		t.Fatalf("imported item: %d %s", r.StatusCode, b)
	}
}
