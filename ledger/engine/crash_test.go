package engine_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/sqlstore"
	"yibao/sqlstore/sqltest"
)

const crashEnv = "YIBAO_LEDGER_CRASH_CHILD"

// TestCrashChild is the child side of TestCrashLosesNothing; it does
// nothing unless started by it.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashEnv)
	if spec == "" {
		t.Skip("run by TestCrashLosesNothing")
	}
	dsn, round, _ := strings.Cut(spec, "|")
	db, err := sqlstore.Open(context.Background(), dsn)
	if err != nil {
		panic(err)
	}
	e, err := engine.Open(context.Background(), db, engine.Options{ExpiryInterval: -1})
	if err != nil {
		panic(err)
	}
	var mu sync.Mutex
	ack := func(id string) {
		mu.Lock()
		os.Stdout.WriteString("ack " + id + "\n")
		mu.Unlock()
	}
	// Replay the previous round's last units: they must come back as
	// already applied, never applied twice.
	if prev := os.Getenv(crashEnv + "_REPLAY"); prev != "" {
		for _, id := range strings.Split(prev, ",") {
			res, err := e.Submit(context.Background(), crashUnit(id))
			if err != nil || !res.Replayed {
				os.Stdout.WriteString(fmt.Sprintf("replay-failed %s %v\n", id, err))
			}
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("r%s-g%d-%d", round, g, i)
				if _, err := e.Submit(context.Background(), crashUnit(id)); err == nil {
					ack(id)
				}
			}
		}()
	}
	wg.Wait()
}

// crashUnit is a settlement-like unit: two linked legs.
func crashUnit(id string) engine.Unit {
	return engine.Unit{Transfers: []ledger.Transfer{
		{ID: id + "/a", DebitAccountID: "crash:fund", CreditAccountID: "crash:recv", Amount: 7, UserData: id, Leg: "a"},
		{ID: id + "/b", DebitAccountID: "crash:cash", CreditAccountID: "crash:recv", Amount: 3, UserData: id, Leg: "b"},
	}}
}

// TestCrashLosesNothing kills a writer process with SIGKILL at random
// moments, five times, and checks that every unit it acknowledged is
// stored exactly once and that the invariants hold after each crash.
func TestCrashLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test in -short mode")
	}
	dsn := sqltest.DSN(t)
	db, err := sqlstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	e, err := engine.Open(context.Background(), db, engine.Options{ExpiryInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	e.CreateAccounts(context.Background(),
		ledger.Account{ID: "crash:income", Ledger: ledger.CNY, Kind: ledger.KindSystem},
		ledger.Account{ID: "crash:fund", Ledger: ledger.CNY, Kind: ledger.KindFundPool, Flags: ledger.DebitsMustNotExceedCredits},
		ledger.Account{ID: "crash:recv", Ledger: ledger.CNY, Kind: ledger.KindSystem},
		ledger.Account{ID: "crash:cash", Ledger: ledger.CNY, Kind: ledger.KindSystem})
	e.Transfer(context.Background(), ledger.Transfer{ID: "crash:seed", DebitAccountID: "crash:income", CreditAccountID: "crash:fund", Amount: 1 << 40})
	e.Close()

	r := rand.New(rand.NewPCG(7, 7))
	acked := map[string]bool{}
	var lastAcked []string
	for round := 1; round <= 5; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dsn+"|"+fmt.Sprint(round))
		if n := len(lastAcked); n > 0 {
			cmd.Env = append(cmd.Env, crashEnv+"_REPLAY="+strings.Join(lastAcked[max(0, n-20):], ","))
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Let it run until it has acknowledged some work, then kill it at a
		// random moment.
		deadline := time.After(time.Duration(300+r.IntN(700)) * time.Millisecond)
		roundAcks := 0
		killed := false
		for !killed {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("round %d: child exited early", round)
				}
				handleLine(t, l, acked, &lastAcked, &roundAcks)
			case <-deadline:
				if roundAcks == 0 {
					deadline = time.After(100 * time.Millisecond)
					continue
				}
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		for l := range lines {
			handleLine(t, l, acked, &lastAcked, &roundAcks)
		}
		cmd.Wait()
		// Every acknowledged unit is there, both legs, exactly once.
		for id := range acked {
			var n int
			if err := db.QueryRow(context.Background(), `SELECT COUNT(*) FROM ledger_transfers WHERE user_data = ?`, id).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 2 {
				t.Fatalf("round %d: acknowledged unit %s has %d legs stored", round, id, n)
			}
		}
		rep, err := engine.Check(context.Background(), db, time.Now().UnixMicro())
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Fatalf("round %d: invariants broken after kill -9: %v", round, rep.Violations)
		}
		t.Logf("round %d: %d units acknowledged before SIGKILL; %d transfers stored; invariants hold", round, roundAcks, rep.Transfers)
	}
}

func handleLine(t *testing.T, l string, acked map[string]bool, last *[]string, n *int) {
	t.Helper()
	switch {
	case strings.HasPrefix(l, "ack "):
		id := strings.TrimPrefix(l, "ack ")
		acked[id] = true
		*last = append(*last, id)
		*n++
	case strings.HasPrefix(l, "replay-failed"):
		t.Fatalf("a replayed unit was not recognised as applied: %s", l)
	}
}
