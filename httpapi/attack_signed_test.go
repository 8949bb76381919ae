package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"yibao/auth"
	"yibao/httpapi"
)

// TestSignedRequestAttacksOverHTTP is the HTTP side of row X8
// (auth/attack_test.go has the full table): a signed, state-changing call
// — open a visit — sent stale, from the future, altered after signing,
// under a wrong or unknown key, or replayed, is refused with a stable
// code before anything runs: no visit is opened and its Idempotency-Key
// stays unused (the genuine request with that key then succeeds, once).
// The same signed request sent x8HTTPK times at once opens one visit.
func TestSignedRequestAttacksOverHTTP(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	h1, h2 := e.vars["{H1}"], e.vars["{H2}"]
	psn := e.vars["{PSN}"]
	var keyB *auth.Signer
	for _, k := range e.data.APIKeys {
		if k.FixmedinsCode == h2 {
			keyB = &auth.Signer{KeyID: k.KeyID, Secret: k.Secret}
		}
	}
	body := []byte(`{"psn_no":"` + psn + `","fixmedins_code":"` + h1 + `","visit_type":"general_outpatient","dept_name":"内科"}`)
	visits := func() int {
		var n int
		if err := e.app.DB.QueryRow(ctx, `SELECT COUNT(*) FROM visits WHERE psn_no = ? AND fixmedins_code = ?`, psn, h1).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// build signs a request at time at with sg, then lets mut change it.
	build := func(sg *auth.Signer, at time.Time, path string, signed []byte, key string, mut func(r *http.Request)) *http.Request {
		req, _ := http.NewRequest("POST", e.srv.URL+path, bytes.NewReader(signed))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(httpapi.HeaderIdempotencyKey, key)
		s := *sg
		s.Now = func() time.Time { return at }
		if err := s.Sign(req, signed); err != nil {
			t.Fatal(err)
		}
		if mut != nil {
			mut(req)
		}
		return req
	}
	do := func(req *http.Request) (int, string) {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var eb httpapi.ErrorBody
		json.NewDecoder(resp.Body).Decode(&eb)
		return resp.StatusCode, string(eb.Code)
	}
	withBody := func(b []byte) func(r *http.Request) {
		return func(r *http.Request) { r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b)) }
	}
	now := time.Now()
	key := e.idem()
	start := visits()
	cases := []struct {
		name string
		req  *http.Request
		code string
	}{
		{"timestamp 301 s old", build(e.signer, now.Add(-301*time.Second), "/api/v1/visits", body, key, nil), "replayed_request"},
		{"timestamp 301 s ahead", build(e.signer, now.Add(301*time.Second), "/api/v1/visits", body, key, nil), "replayed_request"},
		{"body altered after signing", build(e.signer, now, "/api/v1/visits", body, key,
			withBody(bytes.Replace(body, []byte(h1), []byte(h1+" "), 1))), "bad_signature"},
		{"query added after signing", build(e.signer, now, "/api/v1/visits", body, key, func(r *http.Request) { r.URL.RawQuery = "x=1" }), "bad_signature"},
		{"B's secret under A's key id", build(&auth.Signer{KeyID: e.signer.KeyID, Secret: keyB.Secret}, now, "/api/v1/visits", body, key, nil), "bad_signature"},
		{"A's signature under B's key id", build(e.signer, now, "/api/v1/visits", body, key, func(r *http.Request) { r.Header.Set(auth.HeaderKey, keyB.KeyID) }), "bad_signature"},
		{"unknown key", build(&auth.Signer{KeyID: "ak_nobody", Secret: keyB.Secret}, now, "/api/v1/visits", body, key, nil), "unauthenticated"},
		{"timestamp header moved after signing", build(e.signer, now, "/api/v1/visits", body, key, func(r *http.Request) {
			r.Header.Set(auth.HeaderTimestamp, strconv.FormatInt(now.Unix()-5, 10))
		}), "bad_signature"},
	}
	refused := 0
	for _, c := range cases {
		st, code := do(c.req)
		if st != 401 || code != c.code {
			t.Errorf("%s: %d %s, want 401 %s", c.name, st, code, c.code)
			continue
		}
		refused++
	}
	executed := visits() - start
	// The key was never used: the genuine request with it opens the visit.
	genuine := build(e.signer, now, "/api/v1/visits", body, key, nil)
	replay := genuine.Clone(ctx)
	replay.Body = io.NopCloser(bytes.NewReader(body))
	if st, code := do(genuine); st != 201 {
		t.Fatalf("the genuine request after the refusals: %d %s", st, code)
	}
	// Captured and sent again, byte for byte: refused, nothing more opened.
	if st, code := do(replay); st != 401 || code != "replayed_request" {
		t.Errorf("replayed request: %d %s", st, code)
	} else {
		refused++
	}
	if n := visits() - start; n != 1 {
		t.Errorf("%d visits opened, want 1", n)
	}
	// One signed request sent x8HTTPK times at once: one visit.
	const x8HTTPK = 8
	raced := build(e.signer, time.Now(), "/api/v1/visits", body, e.idem(), nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[int]int{}
	gate := make(chan struct{})
	for range x8HTTPK {
		r := raced.Clone(ctx)
		r.Body = io.NopCloser(bytes.NewReader(body))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			st, _ := do(r)
			mu.Lock()
			answers[st]++
			mu.Unlock()
		}()
	}
	close(gate)
	wg.Wait()
	if answers[201] != 1 || answers[401] != x8HTTPK-1 || visits()-start != 2 {
		t.Errorf("%d identical signed requests at once: answers %v, %d visits opened in all", x8HTTPK, answers, visits()-start)
	}
	t.Logf("X8 over HTTP: %d forged, stale or replayed state-changing requests refused %d, executed %d (the Idempotency-Key they carried stayed unused); %d identical requests at once: %v",
		len(cases)+1, refused, executed, x8HTTPK, answers)
	if executed != 0 {
		t.Fatal("a refused request opened a visit")
	}
}
