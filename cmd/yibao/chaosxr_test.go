package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"yibao/chaos"
)

// TestCrossRegionKills is a short cross-region crash test R20: the hub and
// three province nodes (this binary re-executed, each on its own SQLite
// database) under four HIS workers settling cross-region bills for 20 s,
// while three times a random one of the four processes is killed with
// SIGKILL and restarted. Afterwards no acknowledged settlement is lost,
// none is half-done anywhere, every node agrees with the hub and every
// ledger passes its check.
func TestCrossRegionKills(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes and kills three of them")
	}
	if os.Getenv("YIBAO_TEST_PG") != "" {
		t.Skip("runs in the pass without YIBAO_TEST_PG (every node is on its own SQLite database)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out, log bytes.Buffer
	err = xrCrashTest(context.Background(), []string{exe}, []string{"YIBAO_CHAOS_CHILD=1"}, false, "",
		chaos.XRConfig{Duration: 20 * time.Second, Kills: 3, Workers: 4, Seed: uint64(time.Now().UnixNano())}, &out, &log)
	t.Logf("%s", out.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if !strings.Contains(out.String(), "lost 0, half-done 0,") {
		t.Fatalf("no figures:\n%s", out.String())
	}
}
