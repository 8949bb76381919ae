package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"yibao/chaos"
	"yibao/loadgen"
)

// runChaos holds the reliability tests that kill the platform's process
// or its database: yibao chaos crash (R1 of the reliability reference,
// docs/reliability.md), yibao chaos failover (R19, chaos/failover.go) and
// yibao chaos xr (R20, cross-region, chaos/xr.go).
func runChaos(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "failover" {
		return runFailover(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "xr" {
		return runChaosXR(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "crash" {
		return errors.New("usage: yibao chaos crash [--kills N] [--min 2s] [--max 20s] [--seed N] [--clients 64] [--pg DSN]\n" +
			"       yibao chaos failover [--duration 30s] [--clients 32] [--ports 5441,5442] [--compare 15s] [--keep]\n" +
			"       yibao chaos xr [--duration 40s] [--kills 6] [--workers 6] [--seed N] [--keep]")
	}
	fs := flag.NewFlagSet("yibao chaos crash", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kills := fs.Int("kills", 20, "how many times to kill -9 the server")
	minGap := fs.Duration("min", 2*time.Second, "shortest time from a recovery to the next kill")
	maxGap := fs.Duration("max", 20*time.Second, "longest time from a recovery to the next kill")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "seed of the kill times and the load")
	clients := fs.Int("clients", 64, "concurrent HIS clients")
	pg := fs.String("pg", "", "run on this PostgreSQL DSN (a throw-away schema) instead of SQLite")
	dir := fs.String("data-dir", "", "data folder (default: a temporary one, removed afterwards unless --keep)")
	keep := fs.Bool("keep", false, "keep the data folder (store, server.log)")
	history := fs.String("history", "", "write the history (invoke/ok/fail/info per call) as JSON lines here")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return crashTest(ctx, []string{exe}, nil, *dir, *keep, *pg, *history, chaos.CrashConfig{Kills: *kills, Min: *minGap, Max: *maxGap, Seed: *seed,
		Load: loadgen.Config{Clients: *clients, CreditPersons: 8, CreditFraction: 0.1, Seed: *seed}}, stdout, stderr)
}

func crashTest(ctx context.Context, command, env []string, dir string, keep bool, pg, history string, c chaos.CrashConfig, stdout, stderr io.Writer) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "yibao-chaos-")
		if err != nil {
			return err
		}
		dir = d
		if !keep {
			defer os.RemoveAll(dir)
		}
	}
	if pg != "" {
		fresh, drop, err := benchDSN(ctx, pg)
		if err != nil {
			return err
		}
		if !keep {
			defer drop()
		}
		c.DSN = fresh
	}
	c.Command, c.Env, c.Dir, c.Log = command, env, dir, stderr
	if history != "" {
		f, err := os.Create(history)
		if err != nil {
			return err
		}
		defer f.Close()
		c.History = f
	}
	store := "SQLite"
	if pg != "" {
		store = "PostgreSQL"
	}
	fmt.Fprintf(stdout, "crash test R1 — %s\n%s, seed %d\n", machine(), store, c.Seed)
	rep, err := chaos.Crash(ctx, c)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, rep.Summary())
	printFindings(stdout, rep)
	if !rep.OK() {
		return fmt.Errorf("crash test failed (seed %d)", c.Seed)
	}
	return nil
}

// printFindings lists what a run's checkers found beyond the figures.
func printFindings(stdout io.Writer, rep *chaos.Report) {
	if l := rep.NotOkLines(); len(l) > 0 {
		fmt.Fprintln(stdout, "transactions not ok (step, outcome, code):")
		for _, s := range l {
			fmt.Fprintln(stdout, " ", s)
		}
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(stdout, "  problem:", p)
	}
	for _, v := range rep.LedgerViolations {
		fmt.Fprintln(stdout, "  ledger:", v)
	}
}
