package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"yibao/httpapi"
)

// R7 across a restart: a reservation left by a stopped process is run
// again when its call provably changed nothing, and answered
// idempotency_outcome_lost when its changes had committed. A call's write
// transactions commit the mark with the change.
func TestIdempotencyAfterRestart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	db := e.app.DB
	h1 := e.vars["{H1}"]
	var psn string
	for _, c := range e.data.Coverages {
		if c.Insutype == "310" && c.Admdvs == "370100" && c.EndDate == "" {
			psn = c.PsnNo
			break
		}
	}
	body, _ := json.Marshal(map[string]any{"psn_no": psn, "fixmedins_code": h1, "visit_type": "general_outpatient", "dept_name": "内科"})
	send := func(key string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/visits", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+e.tokens["cashier"])
		req.Header.Set(httpapi.HeaderIdempotencyKey, key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	visits := func() int {
		var n int
		db.QueryRow(ctx, `SELECT COUNT(*) FROM visits WHERE psn_no = ?`, psn).Scan(&n)
		return n
	}

	// A normal call: its change committed the mark.
	first := e.idem()
	if st, out := send(first); st != 201 {
		t.Fatalf("open visit: %d %v", st, out)
	}
	var effects int
	if err := db.QueryRow(ctx, `SELECT effects FROM idempotency_keys WHERE idem_key = ?`, first).Scan(&effects); err != nil {
		t.Fatal(err)
	}
	if effects < 1 {
		t.Fatalf("the visit committed but its key records %d effects", effects)
	}

	cases := []struct {
		name       string
		epoch      string // "" = this process's
		stored     int    // a stored status code, 0 = none
		effects    int
		wantStatus int
		wantCode   string
		newVisits  int
	}{
		{"stopped before any change: runs again", "dead-process", 0, 0, 201, "", 1},
		{"stopped after its change committed: outcome lost", "dead-process", 0, 1, 409, "idempotency_outcome_lost", 0},
		// A database outage made this process fail to store or release
		// the key: nobody here runs it any more.
		{"this process lost the key before any change: runs again", "", 0, 0, 201, "", 1},
		{"this process lost the key after a change: outcome lost", "", 0, 1, 409, "idempotency_outcome_lost", 0},
		{"a stored 5xx after a partial change: outcome lost, not the 5xx forever", "dead-process", 500, 1, 409, "idempotency_outcome_lost", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := e.idem()
			// What a process killed mid-call leaves: a reservation of
			// another epoch, no stored answer (the same request as first).
			epoch := c.epoch
			if epoch == "" {
				epoch = e.app.API.Epoch()
			}
			var stored any
			if c.stored != 0 {
				stored = c.stored
			}
			if _, err := db.Exec(ctx, `INSERT INTO idempotency_keys (principal, idem_key, request_hash, created_at, epoch, effects, status_code, content_type, response)
				SELECT principal, ?, request_hash, created_at, ?, ?, ?, 'application/json', ? FROM idempotency_keys WHERE idem_key = ?`,
				key, epoch, c.effects, stored, []byte(`{"code":"internal"}`), first); err != nil {
				t.Fatal(err)
			}
			before := visits()
			st, out := send(key)
			if st != c.wantStatus || (c.wantCode != "" && out["code"] != c.wantCode) {
				t.Fatalf("retry after restart: %d %v; want %d %s", st, out, c.wantStatus, c.wantCode)
			}
			if got := visits() - before; got != c.newVisits {
				t.Errorf("%d visits opened, want %d", got, c.newVisits)
			}
			// A second retry gets the same answer as the first retry.
			st2, _ := send(key)
			if st2 != st {
				t.Errorf("second retry: %d, first %d", st2, st)
			}
			if got := visits() - before; got != c.newVisits {
				t.Errorf("after the second retry %d visits opened, want %d", got, c.newVisits)
			}
		})
	}
}
