package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers/legacy"

	"yibao"
	"yibao/app"
	"yibao/app/apptest"
	"yibao/auth"
	"yibao/httpapi"
	"yibao/money"
)

// xrCase is one row of testdata/xregion_cases.json: an api_cases.json
// row, plus a fixed idempotency key, values saved for later rows, and
// whether the refusal must be audited.
type xrCase struct {
	apiCase
	IdemKey  string            `json:"idem_key"`
	Replayed bool              `json:"replayed"`
	Save     map[string]string `json:"save"`
	Audited  bool              `json:"audited"`
}

// TestXRegionCases runs testdata/xregion_cases.json in order on one node
// without a hub: filings created, listed and revoked by the bureau,
// refused to everyone else (each refusal audited once), refused with
// the offending field; positions; a visit naming its insured region.
func TestXRegionCases(t *testing.T) {
	var file struct{ Cases []xrCase }
	b, err := os.ReadFile("testdata/xregion_cases.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.vars["{PSN_ADMDVS}"] = e.data.Persons[0].Admdvs
	audited := map[string]string{} // request id → case
	for _, c := range file.Cases {
		ok := t.Run(c.Name, func(t *testing.T) {
			e.t = t
			var body []byte
			if c.Raw != nil {
				body = []byte(*c.Raw)
			} else if c.Body != nil {
				body = []byte(e.expand(string(c.Body)))
			}
			hdr := map[string]string{}
			switch {
			case c.IdemKey != "":
				hdr[httpapi.HeaderIdempotencyKey] = c.IdemKey
			case c.Idem:
				hdr[httpapi.HeaderIdempotencyKey] = e.idem()
			}
			resp, out := e.do(c.As, c.Method, e.expand(c.Path), body, hdr)
			if resp.StatusCode != c.Status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.Status, out)
			}
			if c.Code != "" || c.Field != "" {
				var eb httpapi.ErrorBody
				json.Unmarshal(out, &eb)
				if string(eb.Code) != c.Code || eb.Field != c.Field {
					t.Fatalf("error %s field %q, want %s field %q: %s", eb.Code, eb.Field, c.Code, c.Field, out)
				}
			}
			if replayed := resp.Header.Get("Idempotent-Replayed") == "true"; replayed != c.Replayed {
				t.Fatalf("Idempotent-Replayed %v, want %v", replayed, c.Replayed)
			}
			compact := compactJSON(out)
			if c.Contains != "" && !strings.Contains(compact, e.expand(c.Contains)) {
				t.Fatalf("response lacks %q: %s", e.expand(c.Contains), clip(compact))
			}
			if c.Absent != "" && strings.Contains(compact, e.expand(c.Absent)) {
				t.Fatalf("response must not contain %q: %s", e.expand(c.Absent), clip(compact))
			}
			var m map[string]any
			json.Unmarshal(out, &m)
			for name, field := range c.Save {
				v, ok := m[field].(string)
				if !ok || v == "" {
					t.Fatalf("save %s: %s is %v", name, field, m[field])
				}
				e.vars[name] = v
			}
			if c.Audited {
				audited[resp.Header.Get("X-Request-Id")] = c.Name
			}
		})
		if !ok && c.Save != nil {
			t.Fatalf("%q saves values later cases need", c.Name)
		}
	}
	e.t = t

	// Each audited refusal left one access entry, and nothing else did
	// (a 404 to an administrator and a 422 are not refusals of access).
	rows, err := e.app.DB.Query(context.Background(), `SELECT body FROM audit_entries WHERE kind = ?`, httpapi.AuditKindAccess)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]int{}
	for rows.Next() {
		var body string
		rows.Scan(&body)
		var en struct {
			Actor string
			Data  struct {
				RequestID string `json:"request_id"`
			}
		}
		json.Unmarshal([]byte(body), &en)
		entries[en.Data.RequestID]++
		if en.Actor == "" || strings.Contains(body, e.vars["{PSN}"]) {
			t.Errorf("access entry without an actor or with the person number in clear: %s", body)
		}
	}
	rows.Close()
	for id, name := range audited {
		if entries[id] != 1 {
			t.Errorf("%s: %d access entries, want 1", name, entries[id])
		}
	}
	if len(entries) != len(audited) {
		t.Errorf("%d requests audited as refused, want %d", len(entries), len(audited))
	}
}

// nodeEnv is an env on one node of app.Regions: its own test server,
// checked against openapi.yaml, its administrator logged in.
func nodeEnv(t *testing.T, n *app.RegionNode) *env {
	t.Helper()
	e := &env{t: t, app: n.App, data: n.Dataset, tokens: map[string]string{}, vars: map[string]string{}}
	e.srv = httptest.NewServer(n.App.Handler())
	t.Cleanup(e.srv.Close)
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: e.srv.URL}}
	if e.router, err = legacy.NewRouter(doc); err != nil {
		t.Fatal(err)
	}
	for _, u := range n.Dataset.Users {
		if u.Role == "admin" && e.tokens["admin"] == "" {
			e.tokens["admin"] = e.login(u.Username, u.Password)
		}
	}
	return e
}

// step sends one request, expects status and decodes the answer.
func (e *env) step(as, method, path string, body any, status int) map[string]any {
	e.t.Helper()
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	hdr := map[string]string{}
	if method != "GET" {
		hdr[httpapi.HeaderIdempotencyKey] = e.idem()
	}
	resp, out := e.do(as, method, path, b, hdr)
	if resp.StatusCode != status {
		e.t.Fatalf("%s %s as %s: %d, want %d: %s", method, path, as, resp.StatusCode, status, out)
	}
	var m map[string]any
	json.Unmarshal(out, &m)
	return m
}

// TestXRegionOverHTTP runs the cross-region routes between two province
// nodes and the hub: a Nanjing hospital opens visits for a Shandong
// patient naming the insured region; Shandong's bureau revokes and files
// over REST, and the next visit in Nanjing follows; Jiangsu's bureau
// cannot file for its guest; after a settlement both nodes' positions
// for the month mirror each other.
func TestXRegionOverHTTP(t *testing.T) {
	ctx := context.Background()
	r := apptest.Regions(t, "37", "32")
	sd, js := nodeEnv(t, r.Node("37")), nodeEnv(t, r.Node("32")) // insured, treating
	var hosp string
	for _, in := range js.data.Institutions {
		for _, k := range js.data.APIKeys {
			if hosp == "" && in.Kind == yibao.KindHospital && in.Admdvs == "320100" && k.FixmedinsCode == in.Code {
				hosp, js.signer = in.Code, &auth.Signer{KeyID: k.KeyID, Secret: k.Secret}
			}
		}
	}
	today := yibao.DateOf(time.Now())
	var drug string
	for _, it := range js.data.Catalog {
		if drug == "" && it.Kind == yibao.ItemDrug && it.Class == yibao.ClassA && it.ValidFrom <= today && (it.ValidTo == "" || it.ValidTo >= today) {
			drug = it.Code
		}
	}
	ps := app.DemoCrossRegionPersons(sd.data) // ps[0] has a long-term filing for Jiangsu
	if hosp == "" || drug == "" || len(ps) < 2 {
		t.Fatal("demo data lacks a Nanjing hospital with a key, a current class A drug or Shandong employees")
	}
	visit := func(psn, insuplc string, status int) map[string]any {
		t.Helper()
		in := map[string]any{"psn_no": psn, "fixmedins_code": hosp, "visit_type": "general_outpatient", "dept_name": "内科"}
		if insuplc != "" {
			in["insuplc_admdvs"] = insuplc
		}
		return js.step("key", "POST", "/api/v1/visits", in, status)
	}

	v := visit(ps[0], "370100", 201)
	if v["insu_admdvs"] != "370100" || v["cross_status"] != "long_term" || v["cross_scope"] != "out_of_province" {
		t.Fatalf("visit naming the insured region: %v", v)
	}
	// insuplc_admdvs routes the look-up: a region no node keeps is refused
	// (the psn_no alone would have found Shandong).
	if e := visit(ps[1], "440100", 404); e["code"] != "not_found" || !strings.Contains(e["message"].(string), "440100") {
		t.Fatalf("unknown insured region: %v", e)
	}
	// Filings live at the insured node: Jiangsu keeps only a copy of the patient.
	filing := map[string]any{"kind": "referred", "dest_admdvs": "320100", "begin_date": today}
	if e := js.step("admin", "POST", "/api/v1/persons/"+ps[0]+"/filings", filing, 409); e["code"] != "failed_precondition" {
		t.Fatalf("a filing for a guest: %v", e)
	}
	// Shandong's bureau revokes the long-term filing: the next visit in
	// Nanjing is unregistered; a referral to this hospital makes it referred.
	list := sd.step("admin", "GET", "/api/v1/persons/"+ps[0]+"/filings", nil, 200)["items"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["kind"] != "long_term" || list[0].(map[string]any)["status"] != "active" {
		t.Fatalf("Shandong's filings of %s: %v", ps[0], list)
	}
	sd.step("admin", "POST", "/api/v1/filings/"+list[0].(map[string]any)["filing_id"].(string)+"/revoke", nil, 200)
	if v := visit(ps[0], "", 201); v["cross_status"] != "unregistered" {
		t.Fatalf("visit after the revocation: %v", v)
	}
	filing["fixmedins_code"], filing["end_date"] = hosp, yibao.DateOf(time.Now().AddDate(0, 1, 0))
	sd.step("admin", "POST", "/api/v1/persons/"+ps[0]+"/filings", filing, 201)
	v = visit(ps[0], "370100", 201)
	if v["cross_status"] != "referred" {
		t.Fatalf("visit after the referral: %v", v)
	}

	// Settle it; the month's positions at both nodes mirror each other.
	id := v["mdtrt_id"].(string)
	js.step("key", "POST", "/api/v1/visits/"+id+"/fee-lines", map[string]any{"lines": []map[string]any{
		{"feedetl_sn": "1", "catalog_code": drug, "unit_price": "150.00", "quantity": "4"}}}, 200)
	st := js.step("key", "POST", "/api/v1/visits/"+id+"/settle", map[string]any{}, 201)
	fund, _ := money.ParseYuan(st["fund_pay_sumamt"].(string))
	acct, _ := money.ParseYuan(st["acct_pay"].(string))
	if st["status"] != "completed" || fund <= 0 {
		t.Fatalf("settlement: %v", st)
	}
	var month string
	if err := js.app.DB.QueryRow(ctx, `SELECT clr_month FROM xr_treating WHERE setl_id = ?`, st["setl_id"]).Scan(&month); err != nil || month == "" {
		t.Fatalf("clearing month: %q %v", month, err)
	}
	one := func(e *env) map[string]any {
		t.Helper()
		p := e.step("admin", "GET", "/api/v1/xr/positions?clr_month="+month, nil, 200)
		if p["clr_month"] != month || p["unreported"] != 0.0 || len(p["ledger_problems"].([]any)) != 0 {
			t.Fatalf("positions: %v", p)
		}
		if items := p["positions"].([]any); len(items) == 1 {
			return items[0].(map[string]any)
		}
		return nil
	}
	deadline := time.Now().Add(15 * time.Second)
	pa := one(sd)
	for pa == nil { // the commit reaches Shandong through the hub's deliveries
		if time.Now().After(deadline) {
			t.Fatal("Shandong never counted the settlement")
		}
		time.Sleep(50 * time.Millisecond)
		pa = one(sd)
	}
	pb := one(js)
	paid := (fund + acct).String()
	want := map[string]any{"own": "320100", "other": "370100", "receivable": paid, "payable": "0.00", "net": paid, "settlements": 1.0, "reversals": 0.0}
	for k, w := range want {
		if pb[k] != w {
			t.Errorf("Jiangsu's position %s = %v, want %v (%v)", k, pb[k], w, pb)
		}
	}
	want = map[string]any{"own": "370100", "other": "320100", "receivable": "0.00", "payable": paid, "net": (-(fund + acct)).String(),
		"settlements": 1.0, "reversals": 0.0}
	for k, w := range want {
		if pa[k] != w {
			t.Errorf("Shandong's position %s = %v, want %v (%v)", k, pa[k], w, pa)
		}
	}
}
