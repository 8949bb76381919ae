package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"yibao/httpapi"
)

// TestIdempotencyRace sends one settlement 50 times at once under the same
// Idempotency-Key, then once more with another body under that key: the
// settlement happens exactly once (one settlement row, one set of ledger
// legs), every answer is either that settlement or "still in flight", and
// the different body is refused.
func TestIdempotencyRace(t *testing.T) {
	e := newEnv(t)
	h1 := e.vars["{H1}"]
	var psn, drug string
	for _, c := range e.data.Coverages {
		if c.Insutype == "310" && c.Admdvs == "370100" && c.EndDate == "" {
			psn = c.PsnNo
			break
		}
	}
	today := time.Now().In(time.FixedZone("CST", 8*3600)).Format(time.DateOnly)
	for _, it := range e.data.Catalog {
		if it.Kind == "drug" && it.Class == "A" && it.ValidFrom <= today && (it.ValidTo == "" || it.ValidTo >= today) {
			drug = it.Code
			break
		}
	}
	send := func(method, path, key string, body any) (int, []byte) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+e.tokens["cashier"])
		req.Header.Set(httpapi.HeaderIdempotencyKey, key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, []byte(err.Error())
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		out.ReadFrom(resp.Body)
		return resp.StatusCode, out.Bytes()
	}
	st, b := send("POST", "/api/v1/visits", e.idem(), map[string]any{"psn_no": psn, "fixmedins_code": h1, "visit_type": "general_outpatient", "dept_name": "内科"})
	if st != 201 {
		t.Fatalf("visit: %d %s", st, b)
	}
	var v struct {
		MdtrtID string `json:"mdtrt_id"`
	}
	json.Unmarshal(b, &v)
	if st, b := send("POST", "/api/v1/visits/"+v.MdtrtID+"/fee-lines", e.idem(), map[string]any{"lines": []map[string]any{
		{"feedetl_sn": "1", "catalog_code": drug, "unit_price": "300.00", "quantity": "2"}}}); st != 200 {
		t.Fatalf("lines: %d %s", st, b)
	}
	key := e.idem()
	const n = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	bodies := map[string]int{}
	statuses := map[int]int{}
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, b := send("POST", "/api/v1/visits/"+v.MdtrtID+"/settle", key, map[string]any{"pay_mode": "cash"})
			mu.Lock()
			defer mu.Unlock()
			statuses[st]++
			if st == 201 {
				bodies[string(b)]++
			}
		}()
	}
	wg.Wait()
	if statuses[201] == 0 || statuses[201]+statuses[409] != n || len(bodies) != 1 {
		t.Fatalf("answers %v, %d different settlement bodies", statuses, len(bodies))
	}
	var count int
	if err := e.app.DB.QueryRow(t.Context(), `SELECT COUNT(*) FROM settlements WHERE mdtrt_id = ?`, v.MdtrtID).Scan(&count); err != nil || count != 1 {
		t.Fatalf("%d settlements for one visit (%v)", count, err)
	}
	var legs int
	e.app.DB.QueryRow(t.Context(), `SELECT COUNT(*) FROM ledger_transfers WHERE user_data IN (SELECT setl_id FROM settlements WHERE mdtrt_id = ?)`, v.MdtrtID).Scan(&legs)
	if legs == 0 {
		t.Fatal("the settlement moved no money")
	}
	// The same key again: the stored answer; with another body: refused.
	if st, b := send("POST", "/api/v1/visits/"+v.MdtrtID+"/settle", key, map[string]any{"pay_mode": "cash"}); st != 201 || bodies[string(b)] == 0 {
		t.Fatalf("the same request again: %d %s", st, b)
	}
	if st, b := send("POST", "/api/v1/visits/"+v.MdtrtID+"/settle", key, map[string]any{"pay_mode": "later"}); st != 409 || !bytes.Contains(b, []byte("idempotency_conflict")) {
		t.Fatalf("the same key with another body: %d %s", st, b)
	}
	t.Logf("answers: %v; one settlement, %d ledger transfers", statuses, legs)
}
