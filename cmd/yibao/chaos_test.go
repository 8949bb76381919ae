package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"yibao/chaos"
	"yibao/loadgen"
)

// TestMain lets the crash test run this test binary as the server: with
// YIBAO_CHAOS_CHILD=1 it is the yibao command, not the tests.
func TestMain(m *testing.M) {
	if os.Getenv("YIBAO_CHAOS_CHILD") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		if err != nil {
			os.Stderr.WriteString("yibao: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestCrashR1 is a short crash test R1: the server (this binary
// re-executed) is killed with SIGKILL three times, 1–3 s apart, under the
// load of eight HIS clients that retry unknown outcomes; afterwards no
// acknowledged settlement is lost, none is partial or doubled, the ledger
// balances and the accumulators equal the replay of the settlements.
// With YIBAO_TEST_PG it runs on a fresh PostgreSQL schema.
func TestCrashR1(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills the platform four times")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pg := os.Getenv("YIBAO_TEST_PG")
	if pg != "" {
		if u, err := url.Parse(pg); err != nil || u.Scheme == "" {
			t.Fatalf("YIBAO_TEST_PG %q is not a DSN", pg)
		}
	}
	var out, log bytes.Buffer
	err = crashTest(context.Background(), []string{exe}, []string{"YIBAO_CHAOS_CHILD=1"}, t.TempDir(), false, pg, "",
		chaos.CrashConfig{Kills: 3, Min: time.Second, Max: 3 * time.Second, Seed: uint64(time.Now().UnixNano()),
			Load: loadgen.Config{Clients: 8, CreditPersons: 4, CreditFraction: 0.2, Persons: 24}}, &out, &log)
	t.Logf("%s", out.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if !strings.Contains(out.String(), "lost 0,") {
		t.Fatalf("no figures:\n%s", out.String())
	}
}
