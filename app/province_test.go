package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"yibao"
	"yibao/app"
	"yibao/app/apptest"
	"yibao/demo"
)

// TestNodeSeedsItsProvince starts a node with demo_province 32 (Jiangsu):
// it seeds the Jiangsu dataset (policies, bills and review at 南京), serves,
// and a Nanjing cashier finds a Jiangsu person by ID number.
func TestNodeSeedsItsProvince(t *testing.T) {
	a, d := apptest.Open(t, func(c *app.Config) {
		c.DemoProvince = "32"
		c.Addr = "127.0.0.1:0"
	})
	if d.Province != "32" || d.CapitalRegion() != "320100" {
		t.Fatalf("seeded province %s, capital %s", d.Province, d.CapitalRegion())
	}
	// Seeding another province's dataset into this node is refused.
	if _, err := a.Seed(context.Background(), demo.Build()); !yibao.IsCode(err, yibao.CodePrecondition) || !strings.Contains(err.Error(), "demo_province") {
		t.Fatalf("seeding Shandong into a Jiangsu node: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, func(addr string) { ready <- addr }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var base string
	select {
	case addr := <-ready:
		base = "http://" + addr
	case err := <-done:
		t.Fatal(err)
	}

	call := func(method, path, token, body string, out any) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %s", method, path, resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	var sess struct{ Token string }
	call("POST", "/api/v1/auth/login", "", `{"username":"cashier.h32010000001","password":"cashier123"}`, &sess)
	p := d.Persons[len(d.Persons)/2]
	var info struct {
		Person struct {
			PsnNo  string `json:"psn_no"`
			Admdvs string `json:"admdvs"`
		}
		Coverages []json.RawMessage
	}
	call("POST", "/api/v1/persons/lookup", sess.Token, `{"id_number":"`+p.IDNumber+`"}`, &info)
	if info.Person.PsnNo != p.PsnNo || !strings.HasPrefix(info.Person.PsnNo, "32") || info.Person.Admdvs[:2] != "32" || len(info.Coverages) == 0 {
		t.Fatalf("lookup of %s: %+v", p.IDNumber, info)
	}
}
