package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"yibao/sqlstore/sqltest"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var urlRe = regexp.MustCompile(`running on (http://[0-9.:]+)`)

// TestDemoAnswersWithinTenSeconds runs `yibao demo` as a user would and
// checks the promise of the README: /healthz answers within 10 s and the
// seeded registry is served over the API.
func TestDemoAnswersWithinTenSeconds(t *testing.T) {
	dir := t.TempDir()
	// Loading the face models through cgo is several times slower under
	// the race detector; the browser suites start the demo with them.
	t.Setenv("YIBAO_FACE", "off")
	args := []string{"demo", "--addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "demo"), "--log-level", "warn"}
	if os.Getenv(sqltest.EnvPG) != "" {
		args = append(args, "--db", sqltest.DSN(t))
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- run(ctx, args, &out, &errOut) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo exited with %v\n%s", err, errOut.String())
		}
	}()
	var base string
	for base == "" {
		if m := urlRe.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("demo stopped: %v\n%s\n%s", err, out.String(), errOut.String())
		default:
		}
		if time.Since(start) > startLimit {
			t.Fatalf("demo did not start within %s\n%s\n%s", startLimit, out.String(), errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	if took := time.Since(start); took > startLimit {
		t.Fatalf("healthz answered after %s", took)
	}
	t.Logf("demo answered /healthz after %s", time.Since(start).Round(time.Millisecond))

	// The printed admin login works and the registry is there.
	m := regexp.MustCompile(`"username":"admin","password":"([^"]+)"`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no admin login printed:\n%s", out.String())
	}
	resp, err = http.Post(base+"/api/v1/auth/login", "application/json", strings.NewReader(`{"username":"admin","password":"`+m[1]+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var sess struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&sess)
	resp.Body.Close()
	req, _ := http.NewRequest("GET", base+"/api/v1/catalog?limit=500", nil)
	req.Header.Set("Authorization", "Bearer "+sess.Token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page struct{ Items []json.RawMessage }
	json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if len(page.Items) < 200 {
		t.Fatalf("catalog has %d items, want ≥ 200", len(page.Items))
	}

	// The hospital integrator's smoke test passes against the demo, with
	// both authentication modes.
	for _, mode := range [][]string{{}, {"--tif"}} {
		var hisOut syncBuffer
		if err := run(context.Background(), append([]string{"his", "demo", "--url", base}, mode...), &hisOut, &hisOut); err != nil {
			t.Fatalf("yibao his demo %v: %v\n%s", mode, err, hisOut.String())
		}
		if !strings.Contains(hisOut.String(), "every transaction succeeded") {
			t.Fatalf("his demo:\n%s", hisOut.String())
		}
	}

	// The transparency log re-derives from its files and agrees with the
	// stored entries (the seeded bills are in it once the sequencer ran).
	logArgs := []string{"log", "verify", "--data-dir", filepath.Join(dir, "demo"), "--log-level", "error"}
	if os.Getenv(sqltest.EnvPG) != "" {
		logArgs = append(logArgs, "--db", args[len(args)-1])
	}
	var logOut syncBuffer
	deadline := time.Now().Add(15 * time.Second)
	for {
		logOut = syncBuffer{}
		err := run(context.Background(), logArgs, &logOut, &logOut)
		if err == nil && strings.Contains(logOut.String(), "ok  the log and the stored entries agree") && !strings.Contains(logOut.String(), ": 0 sequenced") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("yibao log verify: %v\n%s", err, logOut.String())
		}
		time.Sleep(300 * time.Millisecond)
	}

	// The bureau reconciles today's bill of each simulated wallet.
	for _, ch := range []string{"wechat", "alipay"} {
		var recOut syncBuffer
		if err := run(context.Background(), []string{"reconcile", "channel", "--url", base, "--channel", ch, "--password", m[1]}, &recOut, &recOut); err != nil {
			t.Fatalf("yibao reconcile channel %s: %v\n%s", ch, err, recOut.String())
		}
		if !strings.Contains(recOut.String(), ch+" "+time.Now().In(time.FixedZone("CST", 8*3600)).Format(time.DateOnly)+": all") {
			t.Fatalf("reconcile %s:\n%s", ch, recOut.String())
		}
	}
}

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "bad.csv")
	os.WriteFile(csv, []byte("code,name,kind,class,self_pay_ratio,price_cap,unit,spec,category,restriction,valid_from,valid_to\nX1,药,drug,丁,,,片,,,,2025-01-01,\n"), 0o600)
	example, err := os.ReadFile("../../policy/testdata/calc_example_request.json")
	if err != nil {
		t.Fatal(err)
	}
	badReq := filepath.Join(dir, "bad.json")
	os.WriteFile(badReq, bytes.Replace(example, []byte(`"insutype": "310", "category"`), []byte(`"insutype": "999", "category"`), 1), 0o600)
	cases := []struct {
		name    string
		args    []string
		wantErr bool
		out     string
	}{
		{"version", []string{"version"}, false, "yibao"},
		{"unknown command", []string{"frobnicate"}, true, ""},
		{"migrate", []string{"migrate", "--data-dir", dir}, false, "at migration"},
		{"bad log level", []string{"migrate", "--data-dir", dir, "--log-level", "loud"}, true, ""},
		{"import usage", []string{"import", "--data-dir", dir, "catalog"}, true, ""},
		{"import bad file names the line", []string{"import", "--data-dir", dir, "catalog", csv}, true, "line 2"},
		{"calc settles the example", []string{"calc", "--request", "../../policy/testdata/calc_example_request.json"}, false, `"hifp_pay": "24040.50"`},
		{"calc explains on request", []string{"calc", "--explain", "--request", "../../policy/testdata/calc_example_request.json"}, false, `"explain": [`},
		{"calc rejects a bad request", []string{"calc", "--request", badReq}, true, "person.insutype"},
		{"calc missing file", []string{"calc", "--request", filepath.Join(dir, "nope.json")}, true, "no such file"},
		{"bench calc", []string{"bench", "calc", "--bills", "2000", "--runs", "1"}, false, "bills/s per core"},
		{"his usage", []string{"his"}, true, "usage: yibao his demo"},
		{"bench unknown", []string{"bench", "frob"}, true, "have: ledger, calc, qr"},
		{"bench qr", []string{"bench", "qr", "--codes", "300", "--devices", "20"}, false, "code verification, one core"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut syncBuffer
			err := run(context.Background(), c.args, &out, &errOut)
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v\n%s", err, errOut.String())
			}
			all := out.String() + errOut.String()
			if err != nil {
				all += err.Error()
			}
			if c.out != "" && !strings.Contains(all, c.out) {
				t.Fatalf("output lacks %q:\n%s%s", c.out, out.String(), errOut.String())
			}
		})
	}
}
