package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"yibao/chaos"
	"yibao/loadgen"
)

// TestFailoverDrill is a short failover drill R19: two PostgreSQL clusters
// made for the test (a primary with a synchronous standby), the platform
// (this binary re-executed) on a DSN naming both, eight HIS clients; 6 s
// in the primary is stopped with -m immediate and the standby promoted,
// and the load goes on for 14 s more against the same platform process.
// Afterwards no acknowledged settlement is lost, none is partial or
// doubled, the ledger balances and the accumulators equal the replay.
func TestFailoverDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("makes two PostgreSQL clusters and runs 20 s of load")
	}
	bin, err := chaos.FindPGBin()
	if err != nil {
		t.Skipf("no PostgreSQL server binaries to make clusters with: %v", err)
	}
	if os.Getenv("YIBAO_TEST_PG") != "" {
		// The drill makes its own clusters and does not use the shared
		// server: it runs once, in the pass without YIBAO_TEST_PG.
		t.Skip("runs in the pass without YIBAO_TEST_PG (it makes its own clusters)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A deadline well inside go test's own: a drill that hangs then ends
	// through its cleanup (clusters stopped, folder removed) instead of
	// with the test binary killed under it.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var out, log bytes.Buffer
	err = failoverDrill(ctx, []string{exe}, []string{"YIBAO_CHAOS_CHILD=1"}, false, "",
		chaos.FailoverConfig{PGBin: bin, Duration: 20 * time.Second, KillAfter: 6 * time.Second,
			Load: loadgen.Config{Clients: 8, CreditPersons: 4, CreditFraction: 0.2, Persons: 24, Seed: uint64(time.Now().UnixNano())}},
		&out, &log)
	t.Logf("%s", out.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if !strings.Contains(out.String(), "lost 0,") || !strings.Contains(out.String(), "first settlement on the new primary") {
		t.Fatalf("no figures:\n%s", out.String())
	}
}
