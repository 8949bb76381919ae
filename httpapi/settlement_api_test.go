package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"yibao"
	"yibao/httpapi"
)

// TestSettlementFlowOverHTTP walks a cashier through a whole visit over
// the API — register, upload lines, pre-settle, settle to pay later,
// complete through a wallet, read the legs, reverse — and checks every
// response against openapi.yaml on the way.
func TestSettlementFlowOverHTTP(t *testing.T) {
	e := newEnv(t)
	h1 := e.vars["{H1}"]
	var psn string
	for _, c := range e.data.Coverages {
		if c.Insutype == "310" && c.Admdvs == "370100" && c.EndDate == "" {
			psn = c.PsnNo
			break
		}
	}
	today := time.Now().In(time.FixedZone("CST", 8*3600)).Format(time.DateOnly)
	var drug string
	for _, it := range e.data.Catalog {
		if it.Kind == "drug" && it.Class == "A" && it.ValidFrom <= today && (it.ValidTo == "" || it.ValidTo >= today) {
			drug = it.Code
			break
		}
	}
	if psn == "" || drug == "" {
		t.Fatal("demo data lacks an employee or a current class A drug")
	}
	step := func(as, method, path string, body any, status int) map[string]any {
		t.Helper()
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
			t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, status, out)
		}
		var m map[string]any
		json.Unmarshal(out, &m)
		return m
	}
	v := step("cashier", "POST", "/api/v1/visits", map[string]any{"psn_no": psn, "fixmedins_code": h1, "visit_type": "general_outpatient",
		"dept_code": "NK", "dept_name": "内科"}, 201)
	id := v["mdtrt_id"].(string)
	step("cashier", "POST", "/api/v1/visits/"+id+"/fee-lines", map[string]any{"lines": []map[string]any{
		{"feedetl_sn": "1", "catalog_code": drug, "unit_price": "520.50", "quantity": "2"},
		{"feedetl_sn": "2", "catalog_code": drug, "unit_price": "30.00", "quantity": "1", "amount": "30.00"},
	}}, 200)
	bad := step("cashier", "POST", "/api/v1/visits/"+id+"/fee-lines", map[string]any{"lines": []map[string]any{
		{"feedetl_sn": "3", "catalog_code": "NO-SUCH-CODE", "unit_price": "1.00", "quantity": "1"}}}, 422)
	if !strings.Contains(fmt.Sprint(bad["issues"]), "lines[0].catalog_code") {
		t.Fatalf("issues: %v", bad)
	}
	got := step("cashier", "GET", "/api/v1/visits/"+id, nil, 200)
	if tot := got["totals"].(map[string]any); tot["amount"] != "1071.00" || tot["lines"] != 2.0 {
		t.Fatalf("totals %v", tot)
	}
	pre := step("cashier", "POST", "/api/v1/visits/"+id+"/presettle", map[string]any{"explain": true}, 200)
	preInfo := pre["result"].(map[string]any)["setlinfo"].(map[string]any)
	if preInfo["medfee_sumamt"] != "1071.00" || len(pre["result"].(map[string]any)["explain"].([]any)) == 0 {
		t.Fatalf("presettle %v", preInfo)
	}
	// Another hospital sees nothing of it.
	step("admin", "GET", "/api/v1/visits/"+id, nil, 200)
	st := step("cashier", "POST", "/api/v1/visits/"+id+"/settle", map[string]any{"pay_mode": "later", "acct_used_flag": false}, 201)
	setl := st["setl_id"].(string)
	if st["status"] != "pending" || st["psn_cash_pay"] == "0.00" {
		t.Fatalf("settle %v", st)
	}
	done := step("cashier", "POST", "/api/v1/settlements/"+setl+"/complete", map[string]any{"channel": "wechat"}, 200)
	if done["status"] != "completed" || done["channel"] != "wechat" {
		t.Fatalf("complete %v", done)
	}
	legs := step("cashier", "GET", "/api/v1/ledger/transfers?user_data="+setl, nil, 200)
	if n := len(legs["items"].([]any)); n < 3 {
		t.Fatalf("ledger legs: %d", n)
	}
	recv := step("cashier", "GET", "/api/v1/ledger/accounts/recv:"+h1, nil, 200)
	if recv["balance"].(map[string]any)["posted"] == "0.00" {
		t.Fatalf("receivable %v", recv)
	}
	step("cashier", "GET", "/api/v1/ledger/accounts/fund:370100:310", nil, 403)
	stm := step("admin", "GET", "/api/v1/ledger/accounts/recv:"+h1+"/statement?limit=2", nil, 200)
	if len(stm["items"].([]any)) != 2 || stm["next"] == nil {
		t.Fatalf("statement page %v", stm)
	}
	acc := step("cashier", "GET", "/api/v1/persons/"+psn+"/accumulators", nil, 200)
	if len(acc["items"].([]any)) == 0 {
		t.Fatal("no accumulators")
	}
	hist := step("cashier", "GET", "/api/v1/persons/"+psn+"/settlements", nil, 200)
	if len(hist["items"].([]any)) == 0 {
		t.Fatal("no history")
	}
	// The hospital's webhook receives the settlement's events, signed.
	topics := make(chan string, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		topics <- r.Header.Get("X-Yibao-Topic")
		w.WriteHeader(204)
	}))
	defer hook.Close()
	skipped := firstSkipped(t, e) // no webhook yet: the dispatcher set it aside
	step("cashier", "PUT", "/api/v1/institutions/"+h1+"/webhook", map[string]any{"url": hook.URL}, 200)
	step("admin", "POST", "/api/v1/events/"+skipped+"/retry", nil, 200)
	if n, err := e.app.Delivery.DeliverDue(context.Background()); err != nil || n == 0 {
		t.Fatalf("delivered %d: %v", n, err)
	}
	if topic := <-topics; !strings.HasPrefix(topic, "settlement.") {
		t.Fatalf("topic %q", topic)
	}
	rev := step("cashier", "POST", "/api/v1/settlements/"+setl+"/reverse", nil, 200)
	if rev["status"] != "reversed" {
		t.Fatalf("reverse %v", rev)
	}
	step("cashier", "POST", "/api/v1/settlements/"+setl+"/void", nil, 409)
	// The policies the demo publishes, and a replay of today's bills under one.
	pols := step("cashier", "GET", "/api/v1/policies?admdvs=370100", nil, 200)
	if len(pols["items"].([]any)) < 2 {
		t.Fatalf("policies %v", pols)
	}
	one := step("cashier", "GET", "/api/v1/policies/370100/370100-2026.1", nil, 200)
	if one["policy"] == nil {
		t.Fatal("policy document missing")
	}
	rep := step("admin", "POST", "/api/v1/policies/370100/370100-2027.1/replay", map[string]any{"from": today, "to": today}, 200)
	if rep["bills"].(float64) < 1 {
		t.Fatalf("replay %v", rep)
	}
	step("cashier", "POST", "/api/v1/policies/370100/370100-2027.1/replay", map[string]any{"from": today, "to": today}, 403)
	slots := step("cashier", "GET", "/api/v1/institutions/"+h1+"/slots?date="+today, nil, 200)
	if len(slots["items"].([]any)) == 0 {
		t.Fatal("the demo publishes today's slots")
	}
}

// firstSkipped returns an event the dispatcher skipped for want of a webhook.
func firstSkipped(t *testing.T, e *env) string {
	t.Helper()
	if _, err := e.app.Delivery.DeliverDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	list, err := e.app.Delivery.Events(yibao.WithPrincipal(context.Background(), yibao.System("test")), "skipped", 50)
	if err != nil || len(list) == 0 {
		t.Fatalf("no skipped events: %v", err)
	}
	return list[0].ID
}
